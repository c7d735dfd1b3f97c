/* cairn's error codes and the error struct every layer fills.
 * Functions return 0 or a negative code; the struct carries the one-line
 * message (git style: lowercase, no full stop, subject quoted). */
#ifndef CAIRN_ERROR_H
#define CAIRN_ERROR_H

#include <stdarg.h>

/* X(name, value, default message). Values stay clear of -errno (< -4095)
 * so a libuv or errno code can be passed through untouched. */
#define CAIRN_ERROR_MAP(X)                                                   \
  X(INVAL,        -5001, "invalid argument")                                 \
  X(NOMEM,        -5002, "out of memory")                                    \
  X(IO,           -5003, "input/output error")                               \
  X(WORKFLOW,     -5004, "invalid workflow")                                 \
  X(TEMPLATE,     -5005, "invalid template")                                 \
  X(JOURNAL,      -5006, "journal error")                                    \
  X(NOTJOURNAL,   -5007, "not a cairn journal")                              \
  X(SCHEMA,       -5008, "journal schema is newer than this cairn")          \
  X(NORUN,        -5009, "no such run")                                      \
  X(LOCKED,       -5010, "locked by another run")                            \
  X(CHANGED,      -5011, "workflow file changed since the run started")      \
  X(FAILED,       -5014, "failed")                                           \
  X(CHAIN,        -5015, "journal hash chain is broken")                     \
  X(NOTFOUND,     -5016, "not found")                                        \
  X(STATE,        -5017, "run is not in a state that allows this")           \
  X(AMBIGUOUS,    -5018, "ambiguous")                                      \
  X(KEY,          -5019, "journal key missing, wrong or unsafe")

enum cairn_errcode {
#define CAIRN__ENUM(name, val, msg) CAIRN_E_##name = (val),
  CAIRN_ERROR_MAP(CAIRN__ENUM)
#undef CAIRN__ENUM
};

#define CAIRN_ERRMSG_MAX 1024

struct cairn_error {
  int code;                      /* 0 or a negative code */
  char msg[CAIRN_ERRMSG_MAX];    /* one line, no trailing newline */
};

/* Fills err (may be NULL) with code and a printf-style message and returns
 * code, so callers can write `return cairn_error_set(err, ...)`. A newline
 * in the formatted text is replaced by a space: messages are one line. */
int cairn_error_set(struct cairn_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cairn_error_vset(struct cairn_error *err, int code, const char *fmt,
                     va_list ap);

/* Prepends "prefix: " to err->msg (for adding context on the way up). */
void cairn_error_prefix(struct cairn_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void cairn_error_clear(struct cairn_error *err);

/* A message made only when first needed, for what most objects never have
 * (why a task or a check failed): formats into *slot, CAIRN_MSG_MAX
 * bytes malloc'd at the first call and owned by the caller, who frees it.
 * On no memory *slot stays as it was. cairn_msg(s) is s, or "" for NULL. */
#define CAIRN_MSG_MAX 512
void cairn_msg_set(char **slot, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *cairn_msg(const char *s);

/* Static text for a cairn code, a -errno or a libuv code. Never NULL. */
const char *cairn_strerror(int code);
/* "E_LOCKED"-style name of a cairn code, or "errno" for anything else. */
const char *cairn_errname(int code);

#endif
