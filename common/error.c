/* The error table and the helpers that fill struct cairn_error. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int cairn_error_vset(struct cairn_error *err, int code, const char *fmt,
                     va_list ap)
{
  if (err == NULL)
    return code;
  err->code = code;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  for (char *p = err->msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return code;
}

int cairn_error_set(struct cairn_error *err, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  cairn_error_vset(err, code, fmt, ap);
  va_end(ap);
  return code;
}

void cairn_error_prefix(struct cairn_error *err, const char *fmt, ...)
{
  char out[CAIRN_ERRMSG_MAX];
  va_list ap;
  int n;

  if (err == NULL)
    return;
  va_start(ap, fmt);
  n = vsnprintf(out, sizeof out, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  /* Append ": old message", cut where the buffer ends. */
  size_t len = (size_t)n < sizeof out ? (size_t)n : sizeof out - 1;
  size_t left = sizeof out - len - 1;
  const char sep[] = ": ";
  size_t k = left < 2 ? left : 2;
  memcpy(out + len, sep, k);
  len += k;
  left -= k;
  size_t old = strlen(err->msg);
  k = old < left ? old : left;
  memcpy(out + len, err->msg, k);
  len += k;
  out[len] = '\0';
  memcpy(err->msg, out, len + 1);
}

void cairn_error_clear(struct cairn_error *err)
{
  if (err == NULL)
    return;
  err->code = 0;
  err->msg[0] = '\0';
}

const char *cairn_strerror(int code)
{
  switch (code) {
  case 0:
    return "success";
#define CAIRN__MSG(name, val, msg) case val: return msg;
  CAIRN_ERROR_MAP(CAIRN__MSG)
#undef CAIRN__MSG
  default:
    break;
  }
  if (code < 0 && code > -4096)
    return uv_strerror(code);
  return "unknown error";
}

const char *cairn_errname(int code)
{
  switch (code) {
#define CAIRN__NAME(name, val, msg) case val: return "E_" #name;
  CAIRN_ERROR_MAP(CAIRN__NAME)
#undef CAIRN__NAME
  default:
    return "errno";
  }
}

void cairn_msg_set(char **slot, const char *fmt, ...)
{
  va_list ap;

  if (*slot == NULL && (*slot = malloc(CAIRN_MSG_MAX)) == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(*slot, CAIRN_MSG_MAX, fmt, ap);
  va_end(ap);
}

const char *cairn_msg(const char *s)
{
  return s ? s : "";
}
