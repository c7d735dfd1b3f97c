/* The secrets.generate adapter on a real libuv loop (its file work runs on
 * the thread pool): value lengths and alphabets, uniformity of alnum, the
 * env file (kept values, other lines, modes), bad inputs, secrets_of. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters/adapter.h"
#include "adapters/secrets.h"
#include "common/random.h"

struct fixture {
  char dir[PATH_MAX];
  char file[PATH_MAX + 32];
};

struct t_call {
  struct adapter_call call;
  int done;
  enum adapter_outcome outcome;
  char error[512];
  json_t *outputs;
  json_t *secrets;
};

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof *f);
  char tmpl[] = "/tmp/cairn-secrets-XXXXXX";

  if (f == NULL || mkdtemp(tmpl) == NULL || realpath(tmpl, f->dir) == NULL)
    return -1;
  snprintf(f->file, sizeof f->file, "%s/conf/app.env", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;
  nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static void on_done(struct adapter_call *call, const struct adapter_result *r)
{
  struct t_call *t = call->data;
  t->done++;
  t->outcome = r->outcome;
  snprintf(t->error, sizeof t->error, "%s", r->error);
  t->outputs = json_deep_copy(r->outputs);
  t->secrets = r->secrets ? json_deep_copy(r->secrets) : NULL;
}

/* Runs secrets.generate with `with` (JSON text) to the end. */
static void run(const char *with_text, struct t_call *t)
{
  uv_loop_t loop;
  struct cairn_error err = { 0 };
  json_t *with = json_loads(with_text, 0, NULL);
  json_t *in = NULL;

  assert_non_null(with);
  memset(t, 0, sizeof *t);
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(adapter_apply_defaults(&adapter_secrets_generate, with,
                                          &in, &err), 0);
  t->call.loop = &loop;
  t->call.desc = &adapter_secrets_generate;
  t->call.inputs = in;
  t->call.on_done = on_done;
  t->call.data = t;
  assert_int_equal(adapter_secrets_generate.start(&t->call, &err), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(t->done, 1);
  json_decref(in);
  json_decref(with);
}

static void t_release(struct t_call *t)
{
  json_decref(t->outputs);
  json_decref(t->secrets);
}

static char *slurp(const char *path)
{
  FILE *fp = fopen(path, "r");
  char *buf = calloc(1, 65536);
  size_t n;
  assert_non_null(fp);
  n = fread(buf, 1, 65535, fp);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

static void spit(const char *path, const char *text, mode_t mode)
{
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
  chmod(path, mode);
}

static char *with_file(const struct fixture *f, const char *rest)
{
  static char buf[PATH_MAX + 512];
  snprintf(buf, sizeof buf, "{\"file\": \"%s\", %s}", f->file, rest);
  return buf;
}

/* ---- values ------------------------------------------------------------- */

static void all_in(const char *s, const char *alphabet)
{
  for (; *s; s++)
    if (strchr(alphabet, *s) == NULL)
      fail_msg("character '%c' is not in the alphabet", *s);
}

/* Providers without the hash DRBG (a test hook names one no provider has):
 * the draw still works, from OpenSSL's default. In a child, as the choice
 * is made once a process; before anything here draws. */
static void test_drbg_fallback(void **state)
{
#ifdef CAIRN_TEST_HOOKS
  int status = -1;
  pid_t p;

  (void)state;
  fflush(NULL);
  p = fork();
  assert_true(p >= 0);
  if (p == 0) {
    unsigned char a[16];
    struct cairn_error err = {0};
    EVP_RAND_CTX *pub;
    int ok;

    setenv("CAIRN_TEST_DRBG", "NO-SUCH-DRBG", 1);
    ok = cairn_random_bytes(a, sizeof a, &err) == 0 &&
         (pub = RAND_get0_public(NULL)) != NULL &&
         strcmp(EVP_RAND_get0_name(EVP_RAND_CTX_get0_rand(pub)),
                "CTR-DRBG") == 0;
    if (!ok)
      fprintf(stderr, "fallback: %s\n", err.msg);
    _exit(ok ? 0 : 1);
  }
  assert_int_equal(waitpid(p, &status, 0), p);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
#else
  (void)state;
  skip(); /* the hook is only in builds with -Dtest_hooks=true */
#endif
}

/* First in this process: the DRBG cairn_random_bytes sets up is the hash
 * DRBG on SHA-256, and it gives different bytes each time. */
static void test_drbg_choice(void **state)
{
  unsigned char a[32], b[32];
  struct cairn_error err = {0};
  char digest[64] = "";
  OSSL_PARAM params[2];
  EVP_RAND_CTX *pub;

  (void)state;
  assert_int_equal(cairn_random_bytes(a, sizeof a, &err), 0);
  assert_int_equal(cairn_random_bytes(b, sizeof b, &err), 0);
  assert_memory_not_equal(a, b, sizeof a);
  pub = RAND_get0_public(NULL);
  assert_non_null(pub);
  assert_string_equal(EVP_RAND_get0_name(EVP_RAND_CTX_get0_rand(pub)),
                      "HASH-DRBG");
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_DRBG_PARAM_DIGEST, digest,
                                               sizeof digest);
  params[1] = OSSL_PARAM_construct_end();
  assert_int_equal(EVP_RAND_CTX_get_params(pub, params), 1);
  assert_non_null(strstr(digest, "256"));
}

static void test_lengths_and_alphabets(void **state)
{
  static const struct {
    const char *alphabet;
    size_t length, chars;
    const char *set;
  } cases[] = {
    { "base64url", 32, 43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789-_" },
    { "base64url", 1, 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789-_" },
    { "base64url", 3, 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789-_" },
    { "hex", 32, 64, "0123456789abcdef" },
    { "hex", 1, 2, "0123456789abcdef" },
    /* 62^43 >= 2^256 > 62^42 */
    { "alnum", 32, 43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789" },
    { "alnum", 16, 22, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789" },
  };
  struct cairn_error err = { 0 };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *a, *b;
    assert_int_equal(adapter__secret_chars(cases[i].alphabet,
                                           cases[i].length), cases[i].chars);
    assert_int_equal(adapter__secret_value(cases[i].alphabet, cases[i].length,
                                           &a, &err), 0);
    assert_int_equal(adapter__secret_value(cases[i].alphabet, cases[i].length,
                                           &b, &err), 0);
    assert_int_equal(strlen(a), cases[i].chars);
    all_in(a, cases[i].set);
    if (cases[i].length >= 16)
      assert_string_not_equal(a, b);
    free(a);
    free(b);
  }
  assert_int_equal(adapter__secret_chars("base32", 32), 0);
  assert_int_not_equal(adapter__secret_value("alnum", 0, &(char *){0}, &err),
                       0);
}

/* Each of the 62 characters' count c over N draws is Binomial(N, 1/62).
 * Hoeffding: P(|c - N/62| >= t) <= 2 exp(-2 t^2 / N); over 62 characters
 * (union bound) the test fails by chance with probability at most
 * 124 exp(-2 t^2 / N), which is 1e-9 for t = sqrt(N / 2 * ln(1.24e11)).
 * With N = 6.2e6, t is about 8,900 around a mean of 100,000 (8.9%), while
 * a modulo bias (byte % 62) gives 8 characters 5/256 instead of 1/62: a
 * count near 121,000, far outside. */
static void test_alnum_uniform(void **state)
{
  const char *set =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const double n_total = 62.0 * 100000;
  double t = sqrt(n_total / 2 * log(124.0 / 1e-9));
  long count[62] = { 0 };
  double drawn = 0;
  struct cairn_error err = { 0 };
  (void)state;

  while (drawn < n_total) {
    char *v;
    assert_int_equal(adapter__secret_value("alnum", 4096, &v, &err), 0);
    for (char *p = v; *p && drawn < n_total; p++, drawn++)
      count[strchr(set, *p) - set]++;
    free(v);
  }
  for (int i = 0; i < 62; i++)
    if (fabs((double)count[i] - n_total / 62) >= t)
      fail_msg("character '%c' drawn %ld times of %.0f (expected %.0f +- "
               "%.0f)", set[i], count[i], n_total, n_total / 62, t);
}

/* ---- the env file ------------------------------------------------------- */

static void test_new_file(void **state)
{
  struct fixture *f = *state;
  struct t_call t;
  struct stat st;
  char dir[PATH_MAX + 8], line[256];
  char *text;
  const char *a, *b;

  run(with_file(f, "\"names\": [\"DB_PASSWORD\", \"JWT_SECRET\"], "
                   "\"alphabet\": \"hex\", \"length\": 16"), &t);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_int_equal(stat(f->file, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  snprintf(dir, sizeof dir, "%s/conf", f->dir);
  assert_int_equal(stat(dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);

  a = json_string_value(json_object_get(t.secrets, "DB_PASSWORD"));
  b = json_string_value(json_object_get(t.secrets, "JWT_SECRET"));
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(strlen(a), 32);
  text = slurp(f->file);
  snprintf(line, sizeof line, "DB_PASSWORD=%s\nJWT_SECRET=%s\n", a, b);
  assert_string_equal(text, line);
  free(text);
  /* outputs hold names, never values */
  text = json_dumps(t.outputs, JSON_SORT_KEYS | JSON_COMPACT);
  assert_null(strstr(text, a));
  assert_null(strstr(text, b));
  snprintf(line, sizeof line,
           "{\"file\":\"%s\",\"generated\":[\"DB_PASSWORD\",\"JWT_SECRET\"],"
           "\"kept\":[]}", f->file);
  assert_string_equal(text, line);
  free(text);
  t_release(&t);
}

static void test_keeps_values_and_lines(void **state)
{
  struct fixture *f = *state;
  struct t_call t;
  struct stat st;
  char dir[PATH_MAX + 8], want[512];
  char *text;
  const char *e, *n;

  snprintf(dir, sizeof dir, "%s/conf", f->dir);
  mkdir(dir, 0755);
  spit(f->file, "# settings\nPORT=8080\nDB=kept-value\n\nEMPTY=\n", 0644);
  run(with_file(f, "\"names\": [\"DB\", \"EMPTY\", \"NEW\"]"), &t);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(json_string_value(json_object_get(t.secrets, "DB")),
                      "kept-value");
  e = json_string_value(json_object_get(t.secrets, "EMPTY"));
  n = json_string_value(json_object_get(t.secrets, "NEW"));
  assert_int_equal(strlen(e), 43);
  assert_int_equal(strlen(n), 43);
  text = slurp(f->file);
  snprintf(want, sizeof want,
           "# settings\nPORT=8080\nDB=kept-value\n\nEMPTY=%s\nNEW=%s\n", e, n);
  assert_string_equal(text, want);
  free(text);
  assert_int_equal(stat(f->file, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  text = json_dumps(json_object_get(t.outputs, "kept"), JSON_COMPACT);
  assert_string_equal(text, "[\"DB\"]");
  free(text);
  n = strdup(n); /* t.secrets goes */
  t_release(&t);

  /* a second run draws nothing, changes nothing */
  chmod(f->file, 0644);
  text = slurp(f->file);
  run(with_file(f, "\"names\": [\"DB\", \"EMPTY\", \"NEW\"]"), &t);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  assert_string_equal(json_string_value(json_object_get(t.secrets, "NEW")),
                      n);
  assert_int_equal(json_array_size(json_object_get(t.outputs, "generated")),
                   0);
  {
    char *again = slurp(f->file);
    assert_string_equal(again, text);
    free(again);
  }
  free(text);
  assert_int_equal(stat(f->file, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600); /* tightened */
  free((char *)n);
  t_release(&t);
}

static void test_bad_names(void **state)
{
  static const struct {
    const char *with;
    const char *msg;
  } cases[] = {
    { "{\"file\": \"x\", \"names\": [\"lower\"]}",
      "bad secret name 'lower' (use [A-Z_][A-Z0-9_]*)" },
    { "{\"file\": \"x\", \"names\": [\"1ABC\"]}",
      "bad secret name '1ABC' (use [A-Z_][A-Z0-9_]*)" },
    { "{\"file\": \"x\", \"names\": [\"A-B\"]}",
      "bad secret name 'A-B' (use [A-Z_][A-Z0-9_]*)" },
    { "{\"file\": \"x\", \"names\": [\"A\", \"B\", \"A\"]}",
      "secret name 'A' is listed twice" },
    { "{\"file\": \"x\", \"names\": []}",
      "input 'names' must be a non-empty list of strings, not a list" },
    { "{\"file\": \"x\", \"names\": [\"A\"], \"length\": 0}",
      "value 0 is out of range for input 'length' (hint: bytes of "
      "randomness, from 8 to 4096; 32 is the default)" },
    { "{\"file\": \"x\", \"names\": [\"A\"], \"length\": 7}",
      "value 7 is out of range for input 'length' (hint: bytes of "
      "randomness, from 8 to 4096; 32 is the default)" },
    { "{\"file\": \"x\", \"names\": [\"A\"], \"alphabet\": \"base32\"}",
      "unknown alphabet 'base32' (use base64url, hex or alnum)" },
    { "{\"names\": [\"A\"]}",
      "missing required input 'file' for secrets.generate" },
  };
  (void)state;

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct cairn_error err = { 0 };
    json_t *with = json_loads(cases[i].with, 0, NULL);
    assert_int_equal(adapter_check_with(&adapter_secrets_generate, with,
                                        NULL, &err), CAIRN_E_INVAL);
    assert_string_equal(err.msg, cases[i].msg);
    json_decref(with);
  }
}

static void test_unreadable_file(void **state)
{
  struct fixture *f = *state;
  struct t_call t;
  char want[PATH_MAX + 128];

  /* a folder where the file should be: unreadable as a file, even for
   * root (who ignores mode bits) */
  assert_int_equal(mkdir(f->dir, 0700) == 0 || 1, 1);
  snprintf(f->file, sizeof f->file, "%s", f->dir);
  run(with_file(f, "\"names\": [\"A\"]"), &t);
  assert_int_equal(t.outcome, ADAPTER_FAILED);
  snprintf(want, sizeof want,
           "cannot read secrets file '%s': not a regular file", f->dir);
  assert_string_equal(t.error, want);
  assert_null(t.secrets);
  t_release(&t);
}

static void test_secrets_of(void **state)
{
  struct fixture *f = *state;
  struct t_call t;
  struct cairn_error err = { 0 };
  json_t *inputs, *got = NULL;
  char want[PATH_MAX + 256];

  run(with_file(f, "\"names\": [\"A\", \"B\"]"), &t);
  assert_int_equal(t.outcome, ADAPTER_SUCCEEDED);
  inputs = json_pack("{s:s,s:[s,s]}", "file", f->file, "names", "A", "B");
  assert_int_equal(adapter_secrets_generate.secrets_of(inputs, t.outputs,
                                                       &got, &err), 0);
  assert_true(json_equal(got, t.secrets));
  json_decref(got);

  unlink(f->file);
  assert_int_equal(adapter_secrets_generate.secrets_of(inputs, t.outputs,
                                                       &got, &err),
                   CAIRN_E_IO);
  snprintf(want, sizeof want, "the generated secrets are lost: cannot read "
           "secrets file '%s': No such file or directory", f->file);
  assert_string_equal(err.msg, want);
  assert_null(got);

  spit(f->file, "A=1\n", 0600);
  assert_int_equal(adapter_secrets_generate.secrets_of(inputs, t.outputs,
                                                       &got, &err),
                   CAIRN_E_NOTFOUND);
  snprintf(want, sizeof want, "secret 'B' is no longer in '%s' (it was "
           "generated there; restore the file or start a new run)", f->file);
  assert_string_equal(err.msg, want);
  json_decref(inputs);
  t_release(&t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    /* these two first: before any other draw */
    cmocka_unit_test(test_drbg_fallback),
    cmocka_unit_test(test_drbg_choice),
    cmocka_unit_test(test_lengths_and_alphabets),
    cmocka_unit_test(test_alnum_uniform),
    cmocka_unit_test_setup_teardown(test_new_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_keeps_values_and_lines, setup,
                                    teardown),
    cmocka_unit_test(test_bad_names),
    cmocka_unit_test_setup_teardown(test_unreadable_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_secrets_of, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
