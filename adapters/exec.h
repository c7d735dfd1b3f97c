/* Internal to adapters/: a command run through the exec adapter as one
 * step of another adapter (sql.migrate's psql, kubectl, helm and docker,
 * switch.blue-green's nginx), so that every child process cairn runs has
 * the same life: its own session and process group, output redacted,
 * and on cancel SIGTERM to the group, the grace, then SIGKILL, with
 * on_done only once no member of the group is left. */
#ifndef CAIRN_ADAPTERS_EXEC_H
#define CAIRN_ADAPTERS_EXEC_H

#include "adapters/adapter.h"

/* What the parent sees of the command's output as it comes. Both may be
 * NULL; p is borrowed for the call only. */
struct adapter__exec_hooks {
  /* stdout as read, before redaction: to parse, never to log or show */
  void (*on_stdout_raw)(void *ud, const char *p, size_t n);
  /* both streams, redacted, as they go to the log */
  void (*on_output)(void *ud, int is_stdout, const char *p, size_t n);
  void *ud;
};

/* adapter_exec.start with hooks (copied; NULL: none). */
int adapter__exec_start(struct adapter_call *call,
                        const struct adapter__exec_hooks *hooks,
                        struct cairn_error *err);

/* One child at a time of a parent call. The parent sets parent, on_done
 * and data once; the rest is this module's. */
struct adapter__child {
  struct adapter_call call; /* the exec call; first, see exec.c */
  struct adapter_call *parent;
  /* The command ended (every handle closed, its group empty or killed):
   * res as exec reports it; spawned says whether it started at all (when
   * not, res->error says why: "cannot run 'x': ..."). May start the next
   * command. */
  void (*on_done)(struct adapter__child *c, const struct adapter_result *res);
  void *data;
  json_t *inputs; /* owned */
  int running;    /* started, on_done not come yet */
  int spawned;
};

struct adapter__child_spec {
  const char *const *argv;   /* NULL-terminated, argv[0] looked up in PATH */
  json_t *env;               /* strings added to the environment, may be
                                NULL (borrowed) */
  const char *log_path;      /* output appended here; NULL: not logged */
  const char *log_header;    /* written first, as it is (redact it before);
                                kept valid while the command runs */
  const char *const *redact; /* NULL: the parent's */
  const struct adapter__exec_hooks *hooks; /* may be NULL */
  int64_t timeout_ms;        /* 0: none (the parent's timer decides) */
};

/* Starts a command for c->parent, with the parent's grace and env_extra;
 * its pid goes to the parent's on_spawned. Usually the parent's timer
 * decides when it stops (adapter__child_cancel); a command the parent
 * runs after its own stop bounds itself with spec->timeout_ms. On error
 * nothing runs and on_done will not come. */
int adapter__child_start(struct adapter__child *c,
                         const struct adapter__child_spec *spec,
                         struct cairn_error *err);

/* Stops a running command (exec's cancel); nothing when none runs. A
 * command that already exited by itself keeps its outcome. */
void adapter__child_cancel(struct adapter__child *c);

/* Frees what the last command left (call after on_done). */
void adapter__child_release(struct adapter__child *c);

#endif
