/* Template expressions: a lexer over the bytes between "{{" and "}}", a
 * recursive-descent parser that builds a small tree, an evaluator over
 * jansson values, and the renderer that interpolates or keeps the type.
 *
 * Nothing here is global: every call works on its own parser and tree, so
 * the module is re-entrant. The grammar is the one in engine/template.h.
 *
 * Values: integers stay integers (overflow is an error), a real on either
 * side makes a real, `/` of integers stays an integer when it divides
 * exactly. Truth: false, null, 0, 0.0, "", [] and {} are false. */
#include "engine/template.h"

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deepest parse recursion and deepest tree; fuzzers find the stack
 * otherwise. Real templates nest a few levels. */
#define TPL_MAX_DEPTH 256
/* Cap on one rendered string (curl's dynbuf habit). */
#define TPL_MAX_OUT ((size_t)16 << 20)
/* How much of a name or token an error message quotes. */
#define TPL_SHOW 64

#define NO_INDEX SIZE_MAX
#define NOT_FOUND SIZE_MAX

/* ---- tokens ------------------------------------------------------------ */

enum tok {
  T_NONE, T_EOF, T_END, T_INT, T_REAL, T_STR, T_NAME,
  T_DOT, T_LBRACK, T_RBRACK, T_LPAREN, T_RPAREN,
  T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT,
  T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
  T_AND, T_OR, T_NOT, T_TRUE, T_FALSE, T_NULL,
};

struct token {
  enum tok kind;
  size_t off; /* byte offset in the whole string */
  size_t len;
};

/* ---- tree -------------------------------------------------------------- */

enum node_kind { N_LIT, N_REF, N_NEG, N_NOT, N_AND, N_OR, N_BIN };

struct node {
  enum node_kind kind;
  enum tok op;        /* N_BIN: the operator */
  unsigned depth;     /* 1 for a leaf */
  json_t *lit;        /* N_LIT: owned */
  struct node *a, *b; /* operands, owned */
  char **path;        /* N_REF: root then each segment, owned */
  size_t *index;      /* N_REF: NO_INDEX for a name, else the [N] */
  size_t n;
};

struct parser {
  const char *src;
  size_t len;
  size_t pos;         /* where the lexer resumes */
  struct token tok;   /* current token */
  struct token prev;  /* the one before it */
  int in_template;    /* 1 between "{{" and "}}", 0 for a bare expr */
  size_t open_off;    /* offset of the "{{" being parsed */
  unsigned depth;     /* parse recursion */
  engine_template_ref_cb cb;
  void *ud;
  struct cairn_error *err;
  size_t err_off;     /* where the last error is */
};

static const char *const roots[] = {
  "params", "vars", "env", "secrets", "states", "run", "item", "self",
};

/* ---- small helpers ----------------------------------------------------- */

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_name_start(int c) { return is_alpha(c) || c == '_'; }
static int is_name_char(int c)
{
  return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
}
static int is_space(int c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* RFC 3629, as jansson checks it: no overlongs, surrogates or > U+10FFFF. */
static int utf8_valid(const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;

  while (i < n) {
    unsigned c = u[i], cp;
    size_t k;

    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      k = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      k = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i - 1 < k)
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((u[i + j] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (u[i + j] & 0x3F);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += k + 1;
  }
  return 1;
}

static int nomem(struct cairn_error *err)
{
  return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
}

static const char *type_name(const json_t *v)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a real";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "a value";
}

static int truthy(const json_t *v)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT: return json_object_size(v) > 0;
  case JSON_ARRAY: return json_array_size(v) > 0;
  case JSON_STRING: return json_string_length(v) > 0;
  case JSON_INTEGER: return json_integer_value(v) != 0;
  case JSON_REAL: return json_real_value(v) != 0.0;
  case JSON_TRUE: return 1;
  case JSON_FALSE:
  case JSON_NULL: return 0;
  }
  return 0;
}

/* strtod and printf follow LC_NUMERIC; templates always use '.'. */
static char locale_point(void)
{
  const struct lconv *lc = localeconv();
  return lc && lc->decimal_point && lc->decimal_point[0] ? lc->decimal_point[0]
                                                         : '.';
}

/* Parses len bytes of a real literal; 0, or -1 if it is not finite or the
 * copy cannot be made (*nomem set then). */
static int parse_real(const char *txt, size_t len, double *out, int *no_mem)
{
  char small[64];
  char *buf = len < sizeof small ? small : malloc(len + 1);
  char point = locale_point();
  char *end;

  *no_mem = 0;
  if (buf == NULL) {
    *no_mem = 1;
    return -1;
  }
  memcpy(buf, txt, len);
  buf[len] = '\0';
  if (point != '.')
    for (char *c = buf; *c; c++)
      if (*c == '.')
        *c = point;
  *out = strtod(buf, &end);
  if (buf != small)
    free(buf);
  return isfinite(*out) ? 0 : -1;
}

/* Shortest of %.15g..%.17g that reads back exactly, with a ".0" when it
 * would look like an integer (what jansson writes). */
static void format_real(double d, char *buf, size_t size)
{
  char point = locale_point();

  for (int prec = 15; prec <= 17; prec++) {
    double back;
    int no_mem;

    snprintf(buf, size, "%.*g", prec, d);
    if (point != '.')
      for (char *c = buf; *c; c++)
        if (*c == point)
          *c = '.';
    if (parse_real(buf, strlen(buf), &back, &no_mem) == 0 && back == d)
      break;
  }
  if (strpbrk(buf, ".eE") == NULL && strlen(buf) + 2 < size)
    strcat(buf, ".0");
}

/* ---- growable string with a cap ---------------------------------------- */

struct buf {
  char *p;
  size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n,
                   struct cairn_error *err)
{
  if (n == 0)
    return 0;
  if (n > TPL_MAX_OUT - b->len)
    return cairn_error_set(err, CAIRN_E_TEMPLATE,
                           "rendered string is longer than %zu bytes",
                           TPL_MAX_OUT);
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    char *p;

    while (cap < b->len + n + 1)
      cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL)
      return nomem(err);
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

/* Appends v as interpolation writes it: strings raw, numbers and bools as
 * JSON, null as nothing, objects and arrays as compact JSON. */
static int buf_add_value(struct buf *b, const json_t *v, struct cairn_error *err)
{
  char num[64];
  char *dump;
  int rc;

  switch (json_typeof(v)) {
  case JSON_STRING:
    return buf_add(b, json_string_value(v), json_string_length(v), err);
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return buf_add(b, num, strlen(num), err);
  case JSON_REAL:
    format_real(json_real_value(v), num, sizeof num);
    return buf_add(b, num, strlen(num), err);
  case JSON_TRUE:
    return buf_add(b, "true", 4, err);
  case JSON_FALSE:
    return buf_add(b, "false", 5, err);
  case JSON_NULL:
    return 0;
  case JSON_OBJECT:
  case JSON_ARRAY:
    dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dump == NULL)
      return nomem(err);
    rc = buf_add(b, dump, strlen(dump), err);
    free(dump);
    return rc;
  }
  return 0;
}

/* New string value from b; b stays the caller's to free. */
static int buf_to_string(const struct buf *b, json_t **out,
                         struct cairn_error *err)
{
  const char *s = b->p ? b->p : "";

  if (!utf8_valid(s, b->len))
    return cairn_error_set(err, CAIRN_E_TEMPLATE,
                           "rendered string is not valid UTF-8");
  *out = json_stringn_nocheck(s, b->len);
  return *out ? 0 : nomem(err);
}

/* ---- tree helpers ------------------------------------------------------ */

static void node_free(struct node *n)
{
  if (n == NULL)
    return;
  node_free(n->a);
  node_free(n->b);
  json_decref(n->lit);
  for (size_t i = 0; i < n->n; i++)
    free(n->path[i]);
  free(n->path);
  free(n->index);
  free(n);
}

/* ---- errors ------------------------------------------------------------ */

static int perr(struct parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, size_t off, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  cairn_error_vset(p->err, CAIRN_E_TEMPLATE, fmt, ap);
  va_end(ap);
  p->err_off = off;
  return CAIRN_E_TEMPLATE;
}

static int pnomem(struct parser *p, size_t off)
{
  p->err_off = off;
  return nomem(p->err);
}

#define TPL_UNTERMINATED "unterminated '{{' (hint: end it with '}}')"

/* Reaching the end of the string inside "{{" means the "}}" is missing,
 * whatever else was expected there. */
#define SYNTAX(p, off, ...)                                                  \
  ((p)->in_template && (off) >= (p)->len                                     \
       ? perr((p), (p)->open_off, TPL_UNTERMINATED)                       \
       : perr((p), (off), __VA_ARGS__))

static int show_len(size_t len) { return len > TPL_SHOW ? TPL_SHOW : (int)len; }

static int unexpected(struct parser *p)
{
  const struct token *t = &p->tok;

  if (t->kind == T_EOF)
    return SYNTAX(p, t->off, "unexpected end of expression");
  if (t->kind == T_STR)
    return perr(p, t->off, "unexpected string");
  return perr(p, t->off, "unexpected '%.*s'", show_len(t->len),
              p->src + t->off);
}

/* ---- lexer ------------------------------------------------------------- */

static int keyword(const char *s, size_t n, enum tok *kind)
{
  static const struct {
    const char *word;
    enum tok kind;
  } words[] = {
    { "and", T_AND }, { "or", T_OR }, { "not", T_NOT },
    { "true", T_TRUE }, { "false", T_FALSE }, { "null", T_NULL },
  };
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strlen(words[i].word) == n && memcmp(words[i].word, s, n) == 0) {
      *kind = words[i].kind;
      return 1;
    }
  return 0;
}

/* Length of a name at s[i..n): letters, digits, '_' and '-', not ending
 * in '-' (so "x- 1" is x minus 1). */
static size_t name_len(const char *s, size_t i, size_t n)
{
  size_t j = i;

  while (j < n && is_name_char((unsigned char)s[j]))
    j++;
  while (j > i && s[j - 1] == '-')
    j--;
  return j - i;
}

static int lex(struct parser *p)
{
  const char *s = p->src;
  size_t n = p->len, i = p->pos, j;
  struct token t;
  unsigned char c;

  while (i < n && is_space((unsigned char)s[i]))
    i++;
  p->prev = p->tok;
  t.off = i;
  t.kind = T_EOF;
  if (i >= n) {
    t.len = 0;
    p->tok = t;
    p->pos = i;
    return 0;
  }
  c = (unsigned char)s[i];
  j = i + 1;
  switch (c) {
  case '}':
    if (p->in_template && j < n && s[j] == '}') {
      t.kind = T_END;
      j++;
      break;
    }
    return perr(p, i, "unexpected '}'");
  case '.': t.kind = T_DOT; break;
  case '[': t.kind = T_LBRACK; break;
  case ']': t.kind = T_RBRACK; break;
  case '(': t.kind = T_LPAREN; break;
  case ')': t.kind = T_RPAREN; break;
  case '+': t.kind = T_PLUS; break;
  case '-': t.kind = T_MINUS; break;
  case '*': t.kind = T_STAR; break;
  case '/': t.kind = T_SLASH; break;
  case '%': t.kind = T_PERCENT; break;
  case '=':
    if (j < n && s[j] == '=') {
      t.kind = T_EQ;
      j++;
      break;
    }
    return perr(p, i, "unexpected '=' (use '==' to compare)");
  case '!':
    if (j < n && s[j] == '=') {
      t.kind = T_NE;
      j++;
      break;
    }
    return perr(p, i, "unexpected '!' (use 'not' or '!=')");
  case '<':
  case '>':
    if (j < n && s[j] == '=') {
      t.kind = c == '<' ? T_LE : T_GE;
      j++;
    } else {
      t.kind = c == '<' ? T_LT : T_GT;
    }
    break;
  case '&':
    return perr(p, i, "unexpected '&' (use 'and')");
  case '|':
    return perr(p, i, "unexpected '|' (use 'or')");
  case '\'':
  case '"':
    while (j < n && s[j] != (char)c) {
      if (s[j] == '\\')
        j++;
      j++;
    }
    if (j >= n)
      return perr(p, i, "unterminated string");
    j++;
    t.kind = T_STR;
    break;
  default:
    if (is_digit(c)) {
      t.kind = T_INT;
      while (j < n && is_digit((unsigned char)s[j]))
        j++;
      if (j + 1 < n && s[j] == '.' && is_digit((unsigned char)s[j + 1])) {
        t.kind = T_REAL;
        j++;
        while (j < n && is_digit((unsigned char)s[j]))
          j++;
      }
      if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;

        if (k < n && (s[k] == '+' || s[k] == '-'))
          k++;
        if (k < n && is_digit((unsigned char)s[k])) {
          t.kind = T_REAL;
          j = k;
          while (j < n && is_digit((unsigned char)s[j]))
            j++;
        }
      }
      break;
    }
    if (is_name_start(c)) {
      j = i + name_len(s, i, n);
      if (!keyword(s + i, j - i, &t.kind))
        t.kind = T_NAME;
      break;
    }
    if (c >= 0x20 && c < 0x7F)
      return perr(p, i, "unexpected character '%c'", c);
    return perr(p, i, "unexpected byte 0x%02X", c);
  }
  t.len = j - i;
  p->tok = t;
  p->pos = j;
  return 0;
}

/* After a '.', the next name is read right there, without spaces and
 * with digits allowed first ("states.2fa", "params.0"). */
static int lex_segment(struct parser *p)
{
  size_t i = p->pos, len = name_len(p->src, i, p->len);

  if (len == 0)
    return SYNTAX(p, i, "expected a name after '.'");
  p->prev = p->tok;
  p->tok.kind = T_NAME;
  p->tok.off = i;
  p->tok.len = len;
  p->pos = i + len;
  return 0;
}

/* ---- parser ------------------------------------------------------------ */

static int parse_or(struct parser *p, struct node **out);

static int enter(struct parser *p, size_t off)
{
  if (++p->depth > TPL_MAX_DEPTH)
    return perr(p, off, "expression is too complex");
  return 0;
}

/* Takes a and b (freed on error). */
static int make_node(struct parser *p, enum node_kind kind, enum tok op,
                     size_t off, struct node *a, struct node *b,
                     struct node **out)
{
  struct node *n = calloc(1, sizeof *n);
  unsigned da = a ? a->depth : 0, db = b ? b->depth : 0;

  if (n == NULL) {
    node_free(a);
    node_free(b);
    return pnomem(p, off);
  }
  n->kind = kind;
  n->op = op;
  n->a = a;
  n->b = b;
  n->depth = 1 + (da > db ? da : db);
  if (n->depth > TPL_MAX_DEPTH) {
    node_free(n);
    return perr(p, off, "expression is too complex");
  }
  *out = n;
  return 0;
}

/* Takes v. */
static int make_lit(struct parser *p, json_t *v, size_t off, struct node **out)
{
  int rc;

  if (v == NULL)
    return pnomem(p, off);
  rc = make_node(p, N_LIT, T_NONE, off, NULL, NULL, out);
  if (rc != 0) {
    json_decref(v);
    return rc;
  }
  (*out)->lit = v;
  return 0;
}

static int parse_uint(struct parser *p, const struct token *t, json_int_t *out)
{
  json_int_t v = 0;

  for (size_t i = 0; i < t->len; i++) {
    int d = p->src[t->off + i] - '0';

    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v))
      return perr(p, t->off, "integer '%.*s' is too large", show_len(t->len),
                  p->src + t->off);
  }
  *out = v;
  return 0;
}

static int parse_string(struct parser *p, const struct token *t, json_t **out)
{
  const char *s = p->src + t->off + 1;
  size_t n = t->len - 2, k = 0;
  char *buf = malloc(n + 1);

  if (buf == NULL)
    return pnomem(p, t->off);
  for (size_t i = 0; i < n; i++) {
    char c = s[i];

    if (c == '\\') {
      char e = s[++i]; /* the lexer saw a character after every '\' */

      switch (e) {
      case 'n': c = '\n'; break;
      case 't': c = '\t'; break;
      case 'r': c = '\r'; break;
      case '\\':
      case '\'':
      case '"': c = e; break;
      default:
        free(buf);
        if (e >= 0x20 && e < 0x7F)
          return perr(p, t->off + i, "unknown escape '\\%c'", e);
        return perr(p, t->off + i, "unknown escape in string");
      }
    }
    buf[k++] = c;
  }
  if (!utf8_valid(buf, k)) {
    free(buf);
    return perr(p, t->off, "string is not valid UTF-8");
  }
  *out = json_stringn_nocheck(buf, k);
  free(buf);
  return *out ? 0 : pnomem(p, t->off);
}

static int ref_add(struct parser *p, struct node *r, const char *text,
                   size_t len, size_t index, size_t off)
{
  char **path = realloc(r->path, (r->n + 1) * sizeof *path);
  size_t *idx;

  if (path == NULL)
    return pnomem(p, off);
  r->path = path;
  idx = realloc(r->index, (r->n + 1) * sizeof *idx);
  if (idx == NULL)
    return pnomem(p, off);
  r->index = idx;
  r->path[r->n] = malloc(len + 1);
  if (r->path[r->n] == NULL)
    return pnomem(p, off);
  memcpy(r->path[r->n], text, len);
  r->path[r->n][len] = '\0';
  r->index[r->n] = index;
  r->n++;
  return 0;
}

static int unknown_name(struct parser *p, const struct token *t)
{
  char upper[TPL_SHOW + 1];
  int n = show_len(t->len);
  const char *s = p->src + t->off;

  for (int i = 0; i < n; i++)
    upper[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
  upper[n] = '\0';
  return perr(p, t->off,
              "unknown name '%.*s' (hint: use params.%.*s, vars.%.*s, "
              "env.%s, secrets.%s, states.NAME.output.KEY, run.id or run.dir)",
              n, s, n, s, n, s, upper, upper);
}

static int parse_ref(struct parser *p, struct node **out)
{
  struct token root = p->tok;
  struct node *r = NULL;
  int rc, known = 0;

  for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
    if (strlen(roots[i]) == root.len &&
        memcmp(roots[i], p->src + root.off, root.len) == 0)
      known = 1;
  if (!known)
    return unknown_name(p, &root);

  rc = make_node(p, N_REF, T_NONE, root.off, NULL, NULL, &r);
  if (rc != 0)
    return rc;
  rc = ref_add(p, r, p->src + root.off, root.len, NO_INDEX, root.off);
  if (rc == 0)
    rc = lex(p);
  while (rc == 0) {
    if (p->tok.kind == T_DOT) {
      rc = lex_segment(p);
      if (rc == 0)
        rc = ref_add(p, r, p->src + p->tok.off, p->tok.len, NO_INDEX,
                     p->tok.off);
      if (rc == 0)
        rc = lex(p);
    } else if (p->tok.kind == T_LBRACK) {
      json_int_t v = 0;
      char text[32];

      rc = lex(p);
      if (rc != 0)
        break;
      if (p->tok.kind != T_INT) {
        rc = SYNTAX(p, p->tok.off, "expected an index after '['");
        break;
      }
      rc = parse_uint(p, &p->tok, &v);
      if (rc != 0)
        break;
      snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, v);
      rc = ref_add(p, r, text, strlen(text), (size_t)v, p->tok.off);
      if (rc == 0)
        rc = lex(p);
      if (rc != 0)
        break;
      if (p->tok.kind != T_RBRACK) {
        rc = SYNTAX(p, p->tok.off, "expected ']'");
        break;
      }
      rc = lex(p);
    } else {
      break;
    }
  }
  if (rc == 0 && strcmp(r->path[0], "env") == 0 &&
      (r->n != 2 || r->index[1] != NO_INDEX))
    rc = perr(p, root.off, "expected env.NAME");
  if (rc == 0 && p->cb != NULL) {
    rc = p->cb(p->ud, (const char *const *)r->path, r->n, root.off, p->err);
    if (rc != 0) {
      p->err_off = root.off;
      if (rc > 0)
        rc = CAIRN_E_TEMPLATE;
    }
  }
  if (rc != 0) {
    node_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

static int is_operator(enum tok k)
{
  return (k >= T_PLUS && k <= T_GE) || k == T_AND || k == T_OR ||
         k == T_NOT || k == T_LPAREN;
}

/* An atom was needed and p->tok is not one. */
static int value_error(struct parser *p)
{
  const struct token *t = &p->tok;

  if (t->kind == T_EOF && p->in_template)
    return perr(p, p->open_off, TPL_UNTERMINATED);
  if (is_operator(p->prev.kind))
    return perr(p, t->off, "expected a value after '%.*s' (hint: write "
                "a literal or a reference after it, or remove it)",
                (int)p->prev.len, p->src + p->prev.off);
  if (p->prev.kind == T_NONE && (t->kind == T_END || t->kind == T_EOF))
    return perr(p, p->in_template ? p->open_off : 0, "empty expression");
  return unexpected(p);
}

static int parse_atom(struct parser *p, struct node **out)
{
  struct token t = p->tok;
  json_t *v = NULL;
  json_int_t i = 0;
  double d;
  int rc, no_mem;

  switch (t.kind) {
  case T_INT:
    rc = parse_uint(p, &t, &i);
    if (rc != 0)
      return rc;
    v = json_integer(i);
    break;
  case T_REAL:
    if (parse_real(p->src + t.off, t.len, &d, &no_mem) != 0)
      return no_mem ? pnomem(p, t.off)
                    : perr(p, t.off, "number '%.*s' is out of range",
                           show_len(t.len), p->src + t.off);
    v = json_real(d);
    break;
  case T_STR:
    rc = parse_string(p, &t, &v);
    if (rc != 0)
      return rc;
    break;
  case T_TRUE: v = json_true(); break;
  case T_FALSE: v = json_false(); break;
  case T_NULL: v = json_null(); break;
  case T_NAME:
    return parse_ref(p, out);
  case T_LPAREN:
    rc = enter(p, t.off);
    if (rc == 0)
      rc = lex(p);
    if (rc == 0)
      rc = parse_or(p, out);
    if (rc != 0)
      return rc;
    p->depth--;
    if (p->tok.kind != T_RPAREN) {
      node_free(*out);
      return SYNTAX(p, p->tok.off, "expected ')'");
    }
    rc = lex(p);
    if (rc != 0)
      node_free(*out);
    return rc;
  default:
    return value_error(p);
  }
  rc = make_lit(p, v, t.off, out);
  if (rc == 0) {
    rc = lex(p);
    if (rc != 0)
      node_free(*out);
  }
  return rc;
}

typedef int (*parse_fn)(struct parser *p, struct node **out);

/* A prefix operator (unary minus, not): `op` applied to itself again, or
 * the next level down when the token is not `op`. */
static int parse_prefix(struct parser *p, enum tok op, enum node_kind kind,
                        parse_fn self, parse_fn below, struct node **out)
{
  struct node *a;
  size_t off = p->tok.off;
  int rc;

  if (p->tok.kind != op)
    return below(p, out);
  rc = enter(p, off);
  if (rc == 0)
    rc = lex(p);
  if (rc == 0)
    rc = self(p, &a);
  if (rc != 0)
    return rc;
  p->depth--;
  return make_node(p, kind, op, off, a, NULL, out);
}

static int parse_unary(struct parser *p, struct node **out)
{
  return parse_prefix(p, T_MINUS, N_NEG, parse_unary, parse_atom, out);
}

static int parse_prod(struct parser *p, struct node **out)
{
  struct node *a, *b;
  int rc = parse_unary(p, &a);

  while (rc == 0 && (p->tok.kind == T_STAR || p->tok.kind == T_SLASH ||
                     p->tok.kind == T_PERCENT)) {
    struct token op = p->tok;

    rc = lex(p);
    if (rc == 0)
      rc = parse_unary(p, &b);
    if (rc != 0) {
      node_free(a);
      return rc;
    }
    rc = make_node(p, N_BIN, op.kind, op.off, a, b, &a);
  }
  if (rc == 0)
    *out = a;
  return rc;
}

static int parse_sum(struct parser *p, struct node **out)
{
  struct node *a, *b;
  int rc = parse_prod(p, &a);

  while (rc == 0 && (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS)) {
    struct token op = p->tok;

    rc = lex(p);
    if (rc == 0)
      rc = parse_prod(p, &b);
    if (rc != 0) {
      node_free(a);
      return rc;
    }
    rc = make_node(p, N_BIN, op.kind, op.off, a, b, &a);
  }
  if (rc == 0)
    *out = a;
  return rc;
}

static int is_cmp(enum tok k) { return k >= T_EQ && k <= T_GE; }

static int parse_cmp(struct parser *p, struct node **out)
{
  struct node *a, *b;
  struct token op;
  int rc = parse_sum(p, &a);

  if (rc != 0)
    return rc;
  if (!is_cmp(p->tok.kind)) {
    *out = a;
    return 0;
  }
  op = p->tok;
  rc = lex(p);
  if (rc == 0)
    rc = parse_sum(p, &b);
  if (rc != 0) {
    node_free(a);
    return rc;
  }
  rc = make_node(p, N_BIN, op.kind, op.off, a, b, &a);
  if (rc != 0)
    return rc;
  if (is_cmp(p->tok.kind)) {
    node_free(a);
    return perr(p, p->tok.off, "comparisons cannot be chained");
  }
  *out = a;
  return 0;
}

static int parse_not(struct parser *p, struct node **out)
{
  return parse_prefix(p, T_NOT, N_NOT, parse_not, parse_cmp, out);
}

static int parse_and(struct parser *p, struct node **out)
{
  struct node *a, *b;
  int rc = parse_not(p, &a);

  while (rc == 0 && p->tok.kind == T_AND) {
    struct token op = p->tok;

    rc = lex(p);
    if (rc == 0)
      rc = parse_not(p, &b);
    if (rc != 0) {
      node_free(a);
      return rc;
    }
    rc = make_node(p, N_AND, T_AND, op.off, a, b, &a);
  }
  if (rc == 0)
    *out = a;
  return rc;
}

static int parse_or(struct parser *p, struct node **out)
{
  struct node *a, *b;
  int rc = parse_and(p, &a);

  while (rc == 0 && p->tok.kind == T_OR) {
    struct token op = p->tok;

    rc = lex(p);
    if (rc == 0)
      rc = parse_and(p, &b);
    if (rc != 0) {
      node_free(a);
      return rc;
    }
    rc = make_node(p, N_OR, T_OR, op.off, a, b, &a);
  }
  if (rc == 0)
    *out = a;
  return rc;
}

static void parser_init(struct parser *p, const char *s, size_t len,
                        engine_template_ref_cb cb, void *ud,
                        struct cairn_error *err)
{
  memset(p, 0, sizeof *p);
  p->src = s;
  p->len = len;
  p->cb = cb;
  p->ud = ud;
  p->err = err;
}

/* Parses the "{{ }}" that opens at open; *end gets the offset just after
 * its "}}". */
static int parse_region(struct parser *p, size_t open, struct node **out,
                        size_t *end)
{
  struct node *n;
  int rc;

  p->in_template = 1;
  p->open_off = open;
  p->pos = open + 2;
  p->depth = 0;
  p->tok.kind = T_NONE;
  p->tok.off = open;
  p->tok.len = 2;
  rc = lex(p);
  if (rc == 0)
    rc = parse_or(p, &n);
  if (rc != 0)
    return rc;
  if (p->tok.kind != T_END) {
    node_free(n);
    return unexpected(p);
  }
  *end = p->tok.off + p->tok.len;
  *out = n;
  return 0;
}

/* Parses all of p->src as one bare expression. */
static int parse_bare(struct parser *p, struct node **out)
{
  struct node *n;
  int rc;

  p->in_template = 0;
  p->pos = 0;
  p->tok.kind = T_NONE;
  rc = lex(p);
  if (rc == 0)
    rc = parse_or(p, &n);
  if (rc != 0)
    return rc;
  if (p->tok.kind != T_EOF) {
    node_free(n);
    return unexpected(p);
  }
  *out = n;
  return 0;
}

static size_t find_open(const char *s, size_t len, size_t from)
{
  for (size_t i = from; i + 1 < len; i++)
    if (s[i] == '{' && s[i + 1] == '{')
      return i;
  return NOT_FOUND;
}

/* ---- evaluation -------------------------------------------------------- */

struct eval {
  json_t *scope;
  struct cairn_error *err;
};

static int eval(struct eval *e, const struct node *n, json_t **out);

/* "states.build.output.image" from the first count segments. */
static void ref_text(const struct node *r, size_t count, char *buf,
                     size_t size)
{
  size_t used = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < count && used < size; i++) {
    int w;

    if (r->index[i] != NO_INDEX)
      w = snprintf(buf + used, size - used, "[%s]", r->path[i]);
    else
      w = snprintf(buf + used, size - used, "%s%s", i ? "." : "", r->path[i]);
    if (w < 0)
      break;
    used += (size_t)w;
  }
}

/* Segment i of r could not be read from cur (NULL when the key is absent). */
static int ref_missing(struct eval *e, const struct node *r, size_t i,
                       const json_t *cur)
{
  char full[400], head[400];

  ref_text(r, r->n, full, sizeof full);
  if (cur == NULL && r->n == 2 && strcmp(r->path[0], "secrets") == 0)
    /* a declared secret comes from the environment at the start, or from
     * a state that generates it: only a template rendered after that
     * state can read a generated one */
    return cairn_error_set(e->err, CAIRN_E_TEMPLATE,
                           "%s is not set (hint: export %s before the run, "
                           "or generate it in a state that finishes before "
                           "this one; a use state's 'with' is rendered when "
                           "it is entered, before the used workflow's own "
                           "states run)", full, r->path[1]);
  if (cur == NULL)
    return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "%s is not set", full);
  ref_text(r, i, head, sizeof head);
  if (json_is_array(cur) && r->index[i] != NO_INDEX)
    return cairn_error_set(e->err, CAIRN_E_TEMPLATE,
                           "%s is not set (%s has %zu items)", full, head,
                           json_array_size(cur));
  return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "%s is not set (%s is %s)",
                         full, head, type_name(cur));
}

static int eval_ref(struct eval *e, const struct node *r, json_t **out)
{
  json_t *cur;

  if (strcmp(r->path[0], "env") == 0) {
    const char *v = getenv(r->path[1]);

    if (v == NULL)
      return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "env.%s is not set",
                             r->path[1]);
    if (!utf8_valid(v, strlen(v)))
      return cairn_error_set(e->err, CAIRN_E_TEMPLATE,
                             "env.%s is not valid UTF-8", r->path[1]);
    *out = json_string_nocheck(v);
    return *out ? 0 : nomem(e->err);
  }
  cur = json_is_object(e->scope) ? json_object_get(e->scope, r->path[0]) : NULL;
  if (cur == NULL)
    return ref_missing(e, r, 0, NULL);
  for (size_t i = 1; i < r->n; i++) {
    json_t *next = NULL;

    if (r->index[i] != NO_INDEX) {
      if (!json_is_array(cur) || r->index[i] >= json_array_size(cur))
        return ref_missing(e, r, i, cur);
      next = json_array_get(cur, r->index[i]);
    } else {
      if (!json_is_object(cur))
        return ref_missing(e, r, i, cur);
      next = json_object_get(cur, r->path[i]);
      if (next == NULL)
        return ref_missing(e, r, i, NULL);
    }
    cur = next;
  }
  *out = json_incref(cur);
  return 0;
}

static const char *op_text(enum tok op)
{
  switch (op) {
  case T_PLUS: return "+";
  case T_MINUS: return "-";
  case T_STAR: return "*";
  case T_SLASH: return "/";
  case T_PERCENT: return "%";
  case T_EQ: return "==";
  case T_NE: return "!=";
  case T_LT: return "<";
  case T_LE: return "<=";
  case T_GT: return ">";
  case T_GE: return ">=";
  default: return "?";
  }
}

static int is_number(const json_t *v)
{
  return json_is_integer(v) || json_is_real(v);
}

static double num(const json_t *v)
{
  return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static int make_real(struct eval *e, enum tok op, double d, json_t **out)
{
  if (!isfinite(d))
    return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "real overflow in '%s'",
                           op_text(op));
  *out = json_real(d);
  return *out ? 0 : nomem(e->err);
}

static int make_int(struct eval *e, json_int_t i, json_t **out)
{
  *out = json_integer(i);
  return *out ? 0 : nomem(e->err);
}

static int int_overflow(struct eval *e, enum tok op)
{
  return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "integer overflow in '%s'",
                         op_text(op));
}

static int concat(struct eval *e, const json_t *a, const json_t *b,
                  json_t **out)
{
  struct buf buf = { 0 };
  int rc = buf_add_value(&buf, a, e->err);

  if (rc == 0)
    rc = buf_add_value(&buf, b, e->err);
  if (rc == 0)
    rc = buf_to_string(&buf, out, e->err);
  free(buf.p);
  return rc;
}

static int arith(struct eval *e, enum tok op, const json_t *a, const json_t *b,
                 json_t **out)
{
  json_int_t x, y, r;

  if (op == T_PLUS && (json_is_string(a) || json_is_string(b)))
    return concat(e, a, b, out);
  if (op == T_PERCENT && !(json_is_integer(a) && json_is_integer(b)))
    return cairn_error_set(e->err, CAIRN_E_TEMPLATE,
                           "'%%' needs integers, got %s and %s", type_name(a),
                           type_name(b));
  if (!is_number(a) || !is_number(b))
    return cairn_error_set(e->err, CAIRN_E_TEMPLATE,
                           "'%s' needs numbers%s, got %s and %s", op_text(op),
                           op == T_PLUS ? " or a string" : "", type_name(a),
                           type_name(b));
  if (json_is_real(a) || json_is_real(b)) {
    double u = num(a), v = num(b);

    switch (op) {
    case T_PLUS: return make_real(e, op, u + v, out);
    case T_MINUS: return make_real(e, op, u - v, out);
    case T_STAR: return make_real(e, op, u * v, out);
    default:
      if (v == 0.0)
        return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "division by zero");
      return make_real(e, op, u / v, out);
    }
  }
  x = json_integer_value(a);
  y = json_integer_value(b);
  switch (op) {
  case T_PLUS:
    if (__builtin_add_overflow(x, y, &r))
      return int_overflow(e, op);
    return make_int(e, r, out);
  case T_MINUS:
    if (__builtin_sub_overflow(x, y, &r))
      return int_overflow(e, op);
    return make_int(e, r, out);
  case T_STAR:
    if (__builtin_mul_overflow(x, y, &r))
      return int_overflow(e, op);
    return make_int(e, r, out);
  case T_SLASH:
  case T_PERCENT:
    if (y == 0)
      return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "division by zero");
    if (y == -1) { /* x / -1 overflows for the smallest x; x % -1 is 0 */
      if (op == T_PERCENT)
        return make_int(e, 0, out);
      if (__builtin_sub_overflow((json_int_t)0, x, &r))
        return int_overflow(e, op);
      return make_int(e, r, out);
    }
    if (op == T_PERCENT)
      return make_int(e, x % y, out);
    if (x % y == 0)
      return make_int(e, x / y, out);
    return make_real(e, op, (double)x / (double)y, out);
  default:
    break;
  }
  return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "unknown operator");
}

static int compare(struct eval *e, enum tok op, const json_t *a,
                   const json_t *b, json_t **out)
{
  int c, res;

  if (op == T_EQ || op == T_NE) {
    if (is_number(a) && is_number(b))
      res = json_is_integer(a) && json_is_integer(b)
                ? json_integer_value(a) == json_integer_value(b)
                : num(a) == num(b);
    else
      res = json_equal(a, b);
    *out = json_boolean(op == T_EQ ? res : !res);
    return 0;
  }
  if (is_number(a) && is_number(b)) {
    if (json_is_integer(a) && json_is_integer(b)) {
      json_int_t x = json_integer_value(a), y = json_integer_value(b);
      c = x < y ? -1 : x > y;
    } else {
      double x = num(a), y = num(b);
      c = x < y ? -1 : x > y;
    }
  } else if (json_is_string(a) && json_is_string(b)) {
    size_t la = json_string_length(a), lb = json_string_length(b);

    c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    if (c == 0)
      c = la < lb ? -1 : la > lb;
  } else {
    return cairn_error_set(e->err, CAIRN_E_TEMPLATE,
                           "'%s' needs two numbers or two strings, got %s and %s",
                           op_text(op), type_name(a), type_name(b));
  }
  switch (op) {
  case T_LT: res = c < 0; break;
  case T_LE: res = c <= 0; break;
  case T_GT: res = c > 0; break;
  default: res = c >= 0; break;
  }
  *out = json_boolean(res);
  return 0;
}

static int eval(struct eval *e, const struct node *n, json_t **out)
{
  json_t *a = NULL, *b = NULL;
  int rc;

  switch (n->kind) {
  case N_LIT:
    *out = json_incref(n->lit);
    return 0;
  case N_REF:
    return eval_ref(e, n, out);
  case N_NOT:
    rc = eval(e, n->a, &a);
    if (rc != 0)
      return rc;
    *out = json_boolean(!truthy(a));
    json_decref(a);
    return 0;
  case N_NEG:
    rc = eval(e, n->a, &a);
    if (rc != 0)
      return rc;
    if (json_is_integer(a)) {
      json_int_t r;

      if (__builtin_sub_overflow((json_int_t)0, json_integer_value(a), &r))
        rc = int_overflow(e, T_MINUS);
      else
        rc = make_int(e, r, out);
    } else if (json_is_real(a)) {
      rc = make_real(e, T_MINUS, -json_real_value(a), out);
    } else {
      rc = cairn_error_set(e->err, CAIRN_E_TEMPLATE,
                           "'-' needs a number, got %s", type_name(a));
    }
    json_decref(a);
    return rc;
  case N_AND:
  case N_OR:
    rc = eval(e, n->a, &a);
    if (rc != 0)
      return rc;
    if (truthy(a) == (n->kind == N_OR)) { /* decided by the left side */
      json_decref(a);
      *out = json_boolean(n->kind == N_OR);
      return 0;
    }
    json_decref(a);
    rc = eval(e, n->b, &b);
    if (rc != 0)
      return rc;
    *out = json_boolean(truthy(b));
    json_decref(b);
    return 0;
  case N_BIN:
    rc = eval(e, n->a, &a);
    if (rc == 0)
      rc = eval(e, n->b, &b);
    if (rc == 0)
      rc = is_cmp(n->op) ? compare(e, n->op, a, b, out)
                         : arith(e, n->op, a, b, out);
    json_decref(a);
    json_decref(b);
    return rc;
  }
  return cairn_error_set(e->err, CAIRN_E_TEMPLATE, "unknown expression");
}

/* ---- public ------------------------------------------------------------ */

int engine_template_check(const char *s, engine_template_ref_cb cb, void *ud,
                          size_t *offset, struct cairn_error *err)
{
  struct parser p;
  size_t len, i = 0, open, end = 0;

  if (s == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no template");
  len = strlen(s);
  parser_init(&p, s, len, cb, ud, err);
  while ((open = find_open(s, len, i)) != NOT_FOUND) {
    struct node *n = NULL;
    int rc = parse_region(&p, open, &n, &end);

    if (rc != 0) {
      if (offset)
        *offset = p.err_off;
      return rc;
    }
    node_free(n);
    i = end;
  }
  return 0;
}

int engine_template_check_expr(const char *expr, engine_template_ref_cb cb,
                               void *ud, size_t *offset,
                               struct cairn_error *err)
{
  struct parser p;
  struct node *n = NULL;
  int rc;

  if (expr == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no expression");
  parser_init(&p, expr, strlen(expr), cb, ud, err);
  rc = parse_bare(&p, &n);
  if (rc != 0) {
    if (offset)
      *offset = p.err_off;
    return rc;
  }
  node_free(n);
  return 0;
}

/* The renderer for a string of len bytes (jansson strings may hold NULs). */
static int render_n(const char *s, size_t len, json_t *scope, json_t **out,
                    struct cairn_error *err)
{
  struct parser p;
  struct eval e = { scope, err };
  struct buf b = { 0 };
  size_t i = 0, end = 0, open = find_open(s, len, 0);
  int rc = 0;

  if (open == NOT_FOUND) {
    if (!utf8_valid(s, len))
      return cairn_error_set(err, CAIRN_E_TEMPLATE,
                             "template is not valid UTF-8");
    *out = json_stringn_nocheck(s, len);
    return *out ? 0 : nomem(err);
  }
  parser_init(&p, s, len, NULL, NULL, err);
  while (open != NOT_FOUND) {
    struct node *n = NULL;
    json_t *v;

    rc = parse_region(&p, open, &n, &end);
    if (rc != 0)
      goto out;
    rc = eval(&e, n, &v);
    node_free(n);
    if (rc != 0)
      goto out;
    if (open == 0 && end == len) { /* exactly one {{ expr }}: keep the type */
      *out = json_deep_copy(v);
      json_decref(v);
      rc = *out ? 0 : nomem(err);
      goto out;
    }
    rc = buf_add(&b, s + i, open - i, err);
    if (rc == 0)
      rc = buf_add_value(&b, v, err);
    json_decref(v);
    if (rc != 0)
      goto out;
    i = end;
    open = find_open(s, len, i);
  }
  rc = buf_add(&b, s + i, len - i, err);
  if (rc == 0)
    rc = buf_to_string(&b, out, err);
out:
  free(b.p);
  return rc;
}

int engine_template_render_string(const char *s, json_t *scope, json_t **out,
                                  struct cairn_error *err)
{
  if (s == NULL || out == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no template");
  *out = NULL;
  return render_n(s, strlen(s), scope, out, err);
}

int engine_template_render(json_t *value, json_t *scope, json_t **out,
                           struct cairn_error *err)
{
  json_t *copy = NULL, *r;
  const char *key;
  json_t *v;
  int rc;

  if (value == NULL || out == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no value to render");
  *out = NULL;
  switch (json_typeof(value)) {
  case JSON_STRING:
    return render_n(json_string_value(value), json_string_length(value), scope,
                    out, err);
  case JSON_OBJECT:
    copy = json_object();
    if (copy == NULL)
      return nomem(err);
    json_object_foreach(value, key, v) {
      rc = engine_template_render(v, scope, &r, err);
      if (rc != 0)
        goto fail;
      if (json_object_set_new(copy, key, r) != 0) {
        rc = nomem(err);
        goto fail;
      }
    }
    break;
  case JSON_ARRAY:
    copy = json_array();
    if (copy == NULL)
      return nomem(err);
    for (size_t i = 0; i < json_array_size(value); i++) {
      rc = engine_template_render(json_array_get(value, i), scope, &r, err);
      if (rc != 0)
        goto fail;
      if (json_array_append_new(copy, r) != 0) {
        rc = nomem(err);
        goto fail;
      }
    }
    break;
  default:
    copy = json_copy(value);
    if (copy == NULL)
      return nomem(err);
    break;
  }
  *out = copy;
  return 0;
fail:
  json_decref(copy);
  return rc;
}

/* The kids of one object or array rendered by render_shared, on the
 * stack up to this many. */
#define SHARED_KIDS 16

static int render_shared(json_t *value, json_t *scope, json_t **out,
                         struct cairn_error *err)
{
  json_t *small[SHARED_KIDS], **kid = small, *copy = NULL, *v;
  size_t n = 0, i = 0;
  int changed = 0, rc = 0;
  const char *key;

  switch (json_typeof(value)) {
  case JSON_STRING:
    if (find_open(json_string_value(value), json_string_length(value), 0) ==
        NOT_FOUND) {
      *out = json_incref(value);
      return 0;
    }
    return render_n(json_string_value(value), json_string_length(value),
                    scope, out, err);
  case JSON_OBJECT:
    n = json_object_size(value);
    break;
  case JSON_ARRAY:
    n = json_array_size(value);
    break;
  default:
    *out = json_incref(value);
    return 0;
  }
  if (n > SHARED_KIDS && (kid = malloc(n * sizeof *kid)) == NULL)
    return nomem(err);
  if (json_is_object(value)) {
    json_object_foreach(value, key, v) {
      if (i == n || (rc = render_shared(v, scope, &kid[i], err)) != 0)
        break;
      changed |= kid[i++] != v;
    }
  } else {
    for (; i < n; i++) {
      v = json_array_get(value, i);
      if ((rc = render_shared(v, scope, &kid[i], err)) != 0)
        break;
      changed |= kid[i] != v;
    }
  }
  if (rc == 0 && !changed) {
    *out = json_incref(value);
  } else if (rc == 0) {
    size_t k = 0;
    copy = json_is_object(value) ? json_object() : json_array();
    if (copy == NULL)
      rc = nomem(err);
    else if (json_is_object(value)) {
      json_object_foreach(value, key, v) {
        if (k == i || json_object_set(copy, key, kid[k++]) != 0) {
          rc = k == i ? 0 : nomem(err);
          break;
        }
      }
    } else {
      for (; k < i && rc == 0; k++)
        if (json_array_append(copy, kid[k]) != 0)
          rc = nomem(err);
    }
    if (rc == 0)
      *out = copy;
    else
      json_decref(copy);
  }
  while (i-- > 0)
    json_decref(kid[i]);
  if (kid != small)
    free(kid);
  return rc;
}

int engine_template_render_shared(json_t *value, json_t *scope, json_t **out,
                                  struct cairn_error *err)
{
  if (value == NULL || out == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no value to render");
  *out = NULL;
  return render_shared(value, scope, out, err);
}

int engine_template_eval_bool(const char *expr, json_t *scope, int *out,
                              struct cairn_error *err)
{
  struct parser p;
  struct eval e = { scope, err };
  struct node *n = NULL;
  json_t *v;
  int rc;

  if (expr == NULL || out == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "no expression");
  parser_init(&p, expr, strlen(expr), NULL, NULL, err);
  rc = parse_bare(&p, &n);
  if (rc != 0)
    return rc;
  rc = eval(&e, n, &v);
  node_free(n);
  if (rc != 0)
    return rc;
  *out = truthy(v);
  json_decref(v);
  return 0;
}
