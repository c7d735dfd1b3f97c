/* pyairtable-service: flags, signals and the loop. See service.h for the
 * modules and examples/pyairtable-local/README.md for the flags. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"

static const char usage[] =
    "usage: pyairtable-service --name NAME --port PORT --release RELEASE\n"
    "                          [--postgres HOST:PORT] [--redis HOST:PORT]\n"
    "                          [--config FILE] [--upstream NAME=HOST:PORT]...\n"
    "                          [--secret VAR]...\n";

static int fail_usage(const char *fmt, const char *arg) {
  fputs("pyairtable-service: ", stderr);
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  fputs(usage, stderr);
  return 2;
}

/* A name or release: 1 to 63 of [A-Za-z0-9._-] (it goes into JSON and
 * log lines as it is). */
static int valid_word(const char *w) {
  size_t n = strlen(w);
  if (n == 0 || n > 63)
    return 0;
  return strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789._-") == n;
}

/* HOST:PORT with an IPv4 address or "localhost" (127.0.0.1). */
static int parse_endpoint(const char *text, svc_endpoint *ep) {
  char host[64];
  const char *colon = strrchr(text, ':');
  char *end;
  long port;
  if (!colon || colon == text || (size_t)(colon - text) >= sizeof host ||
      strlen(text) >= sizeof ep->text)
    return -1;
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 1 || port > 65535)
    return -1;
  if (strcmp(host, "localhost") == 0)
    strcpy(host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, &ep->addr) != 0)
    return -1;
  snprintf(ep->text, sizeof ep->text, "%s", text);
  return 0;
}

static int add_secret(svc *s, const char *name) {
  for (int i = 0; i < s->n_secrets; i++)
    if (strcmp(s->secrets[i], name) == 0)
      return 0;
  if (s->n_secrets == SVC_MAX_SECRETS)
    return -1;
  s->secrets[s->n_secrets++] = name;
  return 0;
}

static int parse_args(svc *s, int argc, char **argv) {
  enum { O_NAME = 256, O_PORT, O_RELEASE, O_POSTGRES, O_REDIS, O_CONFIG,
         O_UPSTREAM, O_SECRET, O_HELP };
  static const struct option opts[] = {
      {"name", required_argument, NULL, O_NAME},
      {"port", required_argument, NULL, O_PORT},
      {"release", required_argument, NULL, O_RELEASE},
      {"postgres", required_argument, NULL, O_POSTGRES},
      {"redis", required_argument, NULL, O_REDIS},
      {"config", required_argument, NULL, O_CONFIG},
      {"upstream", required_argument, NULL, O_UPSTREAM},
      {"secret", required_argument, NULL, O_SECRET},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0},
  };
  int o;
  char *end;
  long port = -1;

  opterr = 0;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case O_NAME:
      if (!valid_word(optarg))
        return fail_usage("bad service name '%s'", optarg);
      s->name = optarg;
      break;
    case O_PORT:
      port = strtol(optarg, &end, 10);
      if (*end || end == optarg || port < 0 || port > 65535)
        return fail_usage("bad port '%s'", optarg);
      break;
    case O_RELEASE:
      if (!valid_word(optarg))
        return fail_usage("bad release '%s'", optarg);
      s->release = optarg;
      break;
    case O_POSTGRES:
      if (parse_endpoint(optarg, &s->pg) < 0)
        return fail_usage("bad --postgres '%s' (want HOST:PORT)", optarg);
      s->has_pg = 1;
      break;
    case O_REDIS:
      if (parse_endpoint(optarg, &s->redis) < 0)
        return fail_usage("bad --redis '%s' (want HOST:PORT)", optarg);
      s->has_redis = 1;
      break;
    case O_CONFIG:
      s->config = optarg;
      break;
    case O_UPSTREAM: {
      char *eq = strchr(optarg, '=');
      svc_upstream *up = &s->upstreams[s->n_upstreams];
      if (s->n_upstreams == SVC_MAX_UPSTREAMS)
        return fail_usage("too many upstreams at '%s'", optarg);
      if (!eq || (size_t)(eq - optarg) >= sizeof up->name)
        return fail_usage("bad --upstream '%s' (want NAME=HOST:PORT)", optarg);
      memcpy(up->name, optarg, (size_t)(eq - optarg));
      up->name[eq - optarg] = '\0';
      if (!valid_word(up->name) || parse_endpoint(eq + 1, &up->at) < 0)
        return fail_usage("bad --upstream '%s' (want NAME=HOST:PORT)", optarg);
      s->n_upstreams++;
      break;
    }
    case O_SECRET:
      if (!valid_word(optarg) || add_secret(s, optarg) < 0)
        return fail_usage("bad or too many --secret '%s'", optarg);
      break;
    case O_HELP:
      fputs(usage, stdout);
      exit(0);
    default:
      return fail_usage("unknown option or missing value: '%s'",
                        argv[optind - 1]);
    }
  }
  if (optind < argc)
    return fail_usage("unexpected argument '%s'", argv[optind]);
  if (!s->name || !s->release || port < 0)
    return fail_usage("%s", "--name, --port and --release are required");
  s->port = (int)port;
  /* The secrets the PyAirtable services share (see the README). */
  add_secret(s, "JWT_SECRET");
  if (s->has_pg)
    add_secret(s, "POSTGRES_PASSWORD");
  if (s->has_redis)
    add_secret(s, "REDIS_PASSWORD");
  return 0;
}

static void on_signal(uv_signal_t *sig, int signum) {
  svc *s = sig->data;
  if (s->stopping)
    return;
  s->stopping = 1;
  printf("%s stopping on %s\n", s->name,
         signum == SIGTERM ? "SIGTERM" : "SIGINT");
  uv_close((uv_handle_t *)&s->listener, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  svc_health_cancel(s);
  svc_server_close_all(s);
}

int main(int argc, char **argv) {
  svc s;
  uv_loop_t loop;
  int rc;

  memset(&s, 0, sizeof s);
  rc = parse_args(&s, argc, argv);
  if (rc)
    return rc;
  /* One line per request, as it happens, also into a file or a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);

  uv_loop_init(&loop);
  s.loop = &loop;
  rc = svc_server_listen(&s);
  if (rc < 0) {
    fprintf(stderr, "pyairtable-service: cannot listen on 127.0.0.1:%d: %s\n",
            s.port, uv_strerror(rc));
    uv_close((uv_handle_t *)&s.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  uv_signal_init(&loop, &s.sigterm);
  uv_signal_init(&loop, &s.sigint);
  s.sigterm.data = s.sigint.data = &s;
  uv_signal_start(&s.sigterm, on_signal, SIGTERM);
  uv_signal_start(&s.sigint, on_signal, SIGINT);

  printf("%s %s listening on 127.0.0.1:%d\n", s.name, s.release, s.port);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&loop);
  if (rc != 0) {
    fprintf(stderr, "pyairtable-service: handles left open at exit: %s\n",
            uv_strerror(rc));
    return 1;
  }
  return 0;
}
