/* The workflow loader: YAML text -> a checked struct engine_workflow.
 *
 * Three steps, the first error stops them all:
 *  1. engine/yaml_tree.c turns the text into a tree of nodes that keep
 *     where they start (aliases copied; merge keys, duplicate keys, other
 *     tags and second documents refused there).
 *  2. The tree is read into the model section by section (cairn, name,
 *     params, secrets, environments, states, start), with every check that
 *     needs only the declarations: keys, types, names, durations, retry
 *     values, adapters and their inputs, transitions, templates and the
 *     references they make. A first look over `states` learns every
 *     state's name and kind, so a state may name a later one.
 *  3. The graph: every state reachable from start, every state able to
 *     reach a terminal (or the end of the run through on_failure rollback
 *     or fail, or a choice without default).
 *
 * Errors read "FILE:LINE:COL: error: WHAT (hint: HOW)", 1-based; WHAT
 * names where ("in state 'build'", "in the retry of state 'build'"). A
 * template error points at the byte in a one-line scalar (its column, +1
 * past a quote, + the offset), else at the scalar. */
#include "engine/workflow.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "adapters/adapter.h"
#include "common/duration.h"
#include "common/huge.h"
#include "common/utf8.h"
#include "engine/template.h"
#include "engine/yaml_tree.h"

#define LOAD_MAX_BYTES ((size_t)16 * 1024 * 1024)

static const char *const kind_names[] = {
  [ENGINE_DO] = "do", [ENGINE_PARALLEL] = "parallel",
  [ENGINE_CHOICE] = "choice", [ENGINE_WAIT] = "wait",
  [ENGINE_SUCCEED] = "succeed", [ENGINE_FAIL] = "fail",
  [ENGINE_APPROVAL] = "approval", [ENGINE_USE] = "use", [ENGINE_MAP] = "map",
  NULL,
};

const char *engine_kind_name(enum engine_kind k)
{
  if ((unsigned)k > ENGINE_MAP)
    return "unknown";
  return kind_names[k];
}

/* Short names for the tree (engine/yaml_tree.h). */
typedef struct engine__ynode ynode;
#define Y_SCALAR ENGINE__YSCALAR
#define Y_SEQ ENGINE__YSEQ
#define Y_MAP ENGINE__YMAP
#define S_NULL ENGINE__YNULL
#define S_BOOL ENGINE__YBOOL
#define S_INT ENGINE__YINT
#define S_FLOAT ENGINE__YFLOAT
#define S_STR ENGINE__YSTR
#define DIGITS "0123456789"

static enum engine__ystype stype_of(const ynode *n)
{
  return engine__ynode_stype(n);
}

static int int_of(const ynode *n, long long *v)
{
  return engine__ynode_int(n, v);
}

static double num_of(const ynode *n)
{
  return engine__ynode_num(n);
}

static const char *tname(const ynode *n)
{
  return engine__ynode_tname(n);
}

static int is_str(const ynode *n)
{
  return n->type == Y_SCALAR && stype_of(n) == S_STR;
}

static int is_true(const ynode *n)
{
  return n->type == Y_SCALAR && stype_of(n) == S_BOOL && n->text[0] != 'f' &&
         n->text[0] != 'F';
}

static int all_of(const char *s, const char *set)
{
  return *s != '\0' && s[strspn(s, set)] == '\0';
}

/* Names sorted for lookups: a 16 MiB file may name 100000s of things,
 * and each is looked up from many places. */
struct named {
  const char *name; /* borrowed */
  size_t i;         /* its index in file order */
};

struct nindex {
  struct named *v;
  size_t n;
};

/* The files being loaded through `use`, innermost first (cycles). */
struct use_stack {
  const char *file;
  const struct use_stack *up;
};

struct loader {
  const char *fname;       /* names the file in messages */
  const struct use_stack *stack;
  struct engine_workflow **subs; /* per state: the used workflow, loaded */
  size_t nsubs;
  int in_map;              /* parsing a map's action: `item` is allowed */
  struct cairn_error *err;
  struct engine_workflow *wf;
  int *kinds;              /* per state, from the first look; -1: none */
  struct nindex params, secrets, envs;
  json_t *vars;            /* every var name of every environment */
  struct engine__ystrings *strings; /* the JSON's strings, one a text */
};

/* Errors read "FILE:LINE:COL: error: WHAT (hint: HOW)". */
#define lerr_at(L, line, col, ...)                                            \
  engine__yerror((L)->err, (L)->fname, (line), (col), __VA_ARGS__)
#define lerr(L, node, ...) lerr_at((L), (node)->line, (node)->col, __VA_ARGS__)

static int nomem(struct loader *L)
{
  return cairn_error_set(L->err, CAIRN_E_NOMEM, "out of memory");
}

static int node_json(struct loader *L, const ynode *n, json_t **out)
{
  return engine__ynode_json(L->fname, n, L->strings, out, L->err);
}

/* snprintf for message parts, where a long name may be cut short. */
static void fmt(char *buf, size_t size, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t size, const char *f, ...)
{
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, size, f, ap);
  va_end(ap);
}

/* The strings given, up to a NULL, one after the other in buf (cut short
 * as snprintf would): the subjects of messages, made for every state
 * though a message needs them only on error, cost a format each. */
static void cat(char *buf, size_t size, ...)
{
  va_list ap;
  size_t used = 0;

  va_start(ap, size);
  for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
    size_t n = strlen(s);
    if (n > size - 1 - used)
      n = size - 1 - used;
    memcpy(buf + used, s, n);
    used += n;
  }
  va_end(ap);
  buf[used] = '\0';
}

/* ---- names, suggestions, small helpers ---------------------------------- */

/* A list of names read through a stride, so the `name` member of an array
 * of structs can be listed as well as an array of strings. */
struct names {
  const void *base;
  size_t stride, n;
};

static const char *name_at(struct names nl, size_t i)
{
  return *(const char *const *)(const void *)((const char *)nl.base +
                                              i * nl.stride);
}

static struct names list_names(const char *const *list)
{
  size_t n = 0;
  while (list[n] != NULL)
    n++;
  return (struct names){list, sizeof *list, n};
}

static struct names state_names(const struct engine_workflow *wf)
{
  return (struct names){wf->nstates ? (const void *)&wf->states[0].name : NULL,
                        sizeof *wf->states, wf->nstates};
}

/* The index of s in a NULL-ended list of names, or -1. The loader asks
 * for every key of every state: a first byte tells most of them apart
 * without a call. */
static int in_list(const char *const *list, const char *s)
{
  for (int i = 0; list[i] != NULL; i++)
    if (list[i][0] == s[0] && strcmp(list[i], s) == 0)
      return i;
  return -1;
}

static int named_cmp(const void *a, const void *b)
{
  const struct named *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

/* ix over the names of nl, which must outlive it. */
static int nindex_build(struct loader *L, struct nindex *ix, struct names nl)
{
  ix->n = 0;
  if (nl.n == 0)
    return 0;
  if ((ix->v = malloc(nl.n * sizeof *ix->v)) == NULL)
    return nomem(L);
  for (size_t i = 0; i < nl.n; i++)
    ix->v[i] = (struct named){name_at(nl, i), i};
  ix->n = nl.n;
  qsort(ix->v, nl.n, sizeof *ix->v, named_cmp);
  return 0;
}

/* The index of name's first occurrence, or -1. */
static int nindex_find(const struct nindex *ix, const char *name)
{
  size_t lo = 0, hi = ix->n;

  if (name == NULL)
    return -1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(ix->v[mid].name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < ix->n && strcmp(ix->v[lo].name, name) == 0 ? (int)ix->v[lo].i
                                                         : -1;
}

/* The name index of wf's states (wf->name_slots): the runtime looks a
 * state up at every transition and the loader at every reference, so
 * neither scans nor sorts 10,000 names. The slot of name: where it is,
 * or the empty slot where it would go. */
static size_t name_slot(const struct engine_workflow *wf, const char *name)
{
  size_t mask = wf->nname_slots - 1, i = engine__hash(name) & mask;

  while (wf->name_slots[i] != 0 &&
         strcmp(wf->states[wf->name_slots[i] - 1].name, name) != 0)
    i = (i + 1) & mask;
  return i;
}

/* (Re)builds wf->name_slots over wf->states; the first of equal names
 * wins (they are distinct: YAML keys, then prefixed). 0 or -1. */
static int names_index(struct engine_workflow *wf)
{
  size_t n = 16;

  while (n < 2 * wf->nstates + 1)
    n *= 2;
  free(wf->name_slots);
  if ((wf->name_slots = calloc(n, sizeof *wf->name_slots)) == NULL) {
    wf->nname_slots = 0;
    return -1;
  }
  wf->nname_slots = n;
  for (size_t i = 0; i < wf->nstates; i++) {
    size_t at = name_slot(wf, wf->states[i].name);
    if (wf->name_slots[at] == 0)
      wf->name_slots[at] = i + 1;
  }
  return 0;
}

/* The index of the state named name, or -1 (name NULL too). */
static int state_index(const struct engine_workflow *wf, const char *name)
{
  size_t at;

  if (name == NULL || wf->name_slots == NULL)
    return -1;
  at = name_slot(wf, name);
  return wf->name_slots[at] ? (int)(wf->name_slots[at] - 1) : -1;
}

/* Edit distance with transpositions (optimal string alignment); 99 when
 * clearly far. */
static int edist(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  int d[3][66];

  if (la > 64 || lb > 64 || la > lb + 2 || lb > la + 2)
    return 99;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int *cur = d[i % 3], *prev = d[(i - 1) % 3], *pp = d[(i + 1) % 3];
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int v = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (prev[j] + 1 < v)
        v = prev[j] + 1;
      if (cur[j - 1] + 1 < v)
        v = cur[j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          pp[j - 2] + 1 < v)
        v = pp[j - 2] + 1;
      cur[j] = v;
    }
  }
  return d[la % 3][lb];
}

/* The closest name within edit distance 2, or NULL. The distance must
 * also be less than the longer word's length: "x" suggests nothing. */
static const char *suggest(const char *bad, struct names nl)
{
  const char *best = NULL;
  int bd = 3;

  /* An abbreviation ("int", "str") means the name it starts. */
  for (size_t i = 0; strlen(bad) >= 3 && i < nl.n; i++)
    if (strncmp(name_at(nl, i), bad, strlen(bad)) == 0)
      return name_at(nl, i);
  for (size_t i = 0; i < nl.n; i++) {
    const char *s = name_at(nl, i);
    size_t longest = strlen(s) > strlen(bad) ? strlen(s) : strlen(bad);
    int d = edist(bad, s);
    if (d < bd && (size_t)d < longest) {
      bd = d;
      best = s;
    }
  }
  return best;
}

static void append(char *buf, size_t size, const char *s)
{
  size_t used = strlen(buf);
  if (used + 1 < size)
    snprintf(buf + used, size - used, "%s", s);
}

/* "a, b, c, ..." with at most max names. */
static void join(char *buf, size_t size, struct names nl, size_t max)
{
  buf[0] = '\0';
  for (size_t i = 0; i < nl.n && i < max; i++) {
    if (i > 0)
      append(buf, size, ", ");
    append(buf, size, name_at(nl, i));
  }
  if (nl.n > max)
    append(buf, size, ", ...");
}

/* "did you mean 'x'?" or "<intro> a, b, c, ..." */
static void name_hint(char *buf, size_t size, const char *bad, struct names nl,
                      const char *intro)
{
  const char *s = suggest(bad, nl);
  char list[512];

  if (s != NULL) {
    snprintf(buf, size, "did you mean '%s'?", s);
    return;
  }
  join(list, sizeof list, nl, 5);
  snprintf(buf, size, "%s %s", intro, list);
}

/* msg (another module's) with " in SUBJ" put before a closing
 * parenthesis, which becomes a "(hint: ...)" if it is not one. */
static void add_context(char *out, size_t size, const char *msg,
                        const char *subj)
{
  const char *paren = strstr(msg, " (");
  size_t len = strlen(msg);

  if (paren == NULL || msg[len - 1] != ')')
    snprintf(out, size, "%s in %s", msg, subj);
  else if (strncmp(paren, " (hint: ", 8) == 0)
    snprintf(out, size, "%.*s in %s%s", (int)(paren - msg), msg, subj, paren);
  else
    snprintf(out, size, "%.*s in %s (hint: %s", (int)(paren - msg), msg, subj,
             paren + 2);
}

enum name_rule { N_WORKFLOW, N_STATE, N_SECRET, N_PARAM };

static int name_ok(const char *s, enum name_rule r)
{
#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  switch (r) {
  case N_WORKFLOW:
    return *s && (strchr(LOWER, *s) || strchr(DIGITS, *s)) &&
           all_of(s, LOWER DIGITS "_.-");
  case N_STATE:
    return all_of(s, LOWER UPPER DIGITS "_-");
  case N_SECRET:
    return *s && (strchr(UPPER, *s) || *s == '_') &&
           all_of(s, UPPER DIGITS "_");
  case N_PARAM:
    return *s && !strchr(DIGITS, *s) && all_of(s, LOWER UPPER DIGITS "_");
  }
#undef LOWER
#undef UPPER
  return 0;
}

static const ynode *map_get(const ynode *m, const char *key,
                            const ynode **k)
{
  for (size_t i = 0; i + 1 < m->n; i += 2)
    if (m->kids[i]->text[0] == key[0] && strcmp(m->kids[i]->text, key) == 0) {
      if (k != NULL)
        *k = m->kids[i];
      return m->kids[i + 1];
    }
  return NULL;
}

static int unknown_key(struct loader *L, const ynode *k,
                       const char *const *allowed, const char *subj)
{
  const char *s = suggest(k->text, list_names(allowed));
  char list[512];

  if (s != NULL)
    return lerr(L, k, "unknown key '%s' in %s (hint: did you mean '%s'?)",
                k->text, subj, s);
  join(list, sizeof list, list_names(allowed), SIZE_MAX);
  return lerr(L, k, "unknown key '%s' in %s (hint: allowed keys are %s)",
              k->text, subj, list);
}

static int check_keys(struct loader *L, const ynode *m,
                      const char *const *allowed, const char *subj)
{
  for (size_t i = 0; i < m->n; i += 2)
    if (in_list(allowed, m->kids[i]->text) < 0)
      return unknown_key(L, m->kids[i], allowed, subj);
  return 0;
}

static int want_map(struct loader *L, const ynode *v, const char *key,
                    const char *subj)
{
  if (v->type == Y_MAP)
    return 0;
  return lerr(L, v, "'%s' in %s must be a mapping, got %s", key, subj,
              tname(v));
}

/* 0 when v, the value of key, is a string. */
static int want_str(struct loader *L, const ynode *v, const char *key,
                    const char *subj)
{
  if (!is_str(v))
    return lerr(L, v, "'%s' in %s must be a string, got %s%s", key, subj,
                tname(v), v->type == Y_SCALAR && stype_of(v) != S_NULL
                              ? " (hint: quote it to make it a string)" : "");
  return 0;
}

/* *out: a copy of the string value v of key. */
static int get_str(struct loader *L, const ynode *v, const char *key,
                   const char *subj, char **out)
{
  int rc = want_str(L, v, key, subj);

  if (rc != 0)
    return rc;
  free(*out);
  if ((*out = strdup(v->text)) == NULL)
    return nomem(L);
  return 0;
}

/* An integer >= min that fits an int; hint (may be "") follows the
 * too-small message. */
static int get_int(struct loader *L, const ynode *v, const char *key,
                   const char *subj, int min, const char *hint, int *out)
{
  long long x = 0;
  int range;

  if (v->type != Y_SCALAR || stype_of(v) != S_INT)
    return lerr(L, v, "'%s' in %s must be an integer, got %s", key, subj,
                tname(v));
  range = int_of(v, &x);
  if ((range && v->text[0] == '-') || (!range && x < min))
    return lerr(L, v, "'%s' in %s must be at least %d, got %s%s", key, subj,
                min, v->text, hint);
  if (range || x > INT_MAX)
    return lerr(L, v, "'%s' in %s is too large, got %s", key, subj, v->text);
  *out = (int)x;
  return 0;
}

static int get_duration(struct loader *L, const ynode *v,
                        const char *key, const char *subj, int64_t *ms)
{
  struct cairn_error e = {0};
  enum engine__ystype t = stype_of(v);

  if (v->type != Y_SCALAR || t == S_NULL || t == S_BOOL)
    return lerr(L, v, "'%s' in %s must be a duration, got %s (hint: "
                CAIRN_DURATION_HINT ")", key, subj, tname(v));
  if (cairn_duration_parse(v->text, ms, &e) != 0)
    return lerr(L, v, "invalid '%s' in %s: %s (hint: " CAIRN_DURATION_HINT
                ")", key, subj, e.msg);
  return 0;
}

/* ---- templates and references ------------------------------------------- */

struct tctx {
  struct loader *L;
  size_t state;        /* whose action this is */
  int in_undo, in_probe;
  int failed;          /* set by ref_cb */
  size_t offset;
  char msg[CAIRN_ERRMSG_MAX];
};

static int tfail(struct tctx *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int tfail(struct tctx *t, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->msg, sizeof t->msg, fmt, ap);
  va_end(ap);
  return -1;
}

static int ref_check(struct tctx *t, const char *const *path, size_t n)
{
  const struct engine_workflow *wf = t->L->wf;
  const char *root = path[0], *name = n > 1 ? path[1] : NULL;
  char hint[640], full[256];
  int j;

  if (strcmp(root, "params") == 0) {
    struct names nl = {wf->nparams ? (const void *)&wf->params[0].name : NULL,
                       sizeof *wf->params, wf->nparams};
    if (name == NULL || nindex_find(&t->L->params, name) >= 0)
      return 0;
    if (wf->nparams == 0)
      return tfail(t, "unknown param '%s' (hint: declare it under 'params')",
                   name);
    name_hint(hint, sizeof hint, name, nl, "declared params are");
    return tfail(t, "unknown param '%s' (hint: %s)", name, hint);
  }
  if (strcmp(root, "vars") == 0) {
    if (wf->nenvs == 0)
      return tfail(t, "use of 'vars' without environments (hint: declare "
                   "'environments' with 'vars')");
    if (name == NULL || json_object_get(t->L->vars, name) != NULL)
      return 0;
    return tfail(t, "unknown var '%s' (hint: declare it in the 'vars' of an "
                 "environment)", name);
  }
  if (strcmp(root, "secrets") == 0) {
    struct names nl = {wf->secrets, sizeof *wf->secrets, wf->nsecrets};
    if (name == NULL || nindex_find(&t->L->secrets, name) >= 0)
      return 0;
    if (suggest(name, nl) != NULL)
      return tfail(t, "unknown secret '%s' (hint: did you mean '%s'?)", name,
                   suggest(name, nl));
    return tfail(t, "unknown secret '%s' (hint: add it to 'secrets')", name);
  }
  if (strcmp(root, "states") == 0) {
    if (name == NULL)
      return tfail(t, "'states' without a state name (hint: write "
                   "states.NAME.output.KEY)");
    if ((j = state_index(wf, name)) < 0) {
      name_hint(hint, sizeof hint, name, state_names(wf), "states are");
      return tfail(t, "reference to unknown state '%s' (hint: %s)", name,
                   hint);
    }
    if (t->L->kinds[j] != ENGINE_DO && t->L->kinds[j] != ENGINE_PARALLEL &&
        t->L->kinds[j] != ENGINE_MAP && t->L->kinds[j] != ENGINE_USE)
      return tfail(t, "reference to the output of %s state '%s' (hint: only "
                   "do, parallel, map and use states have outputs)",
                   t->L->kinds[j] >= 0 ? kind_names[t->L->kinds[j]]
                                       : "invalid", name);
    if ((size_t)j == t->state && !t->in_undo)
      return tfail(t, "reference to the state's own output (hint: "
                   "states.%s.output is only available in its undo)", name);
    return 0;
  }
  if (strcmp(root, "run") == 0) {
    if (n == 2 && (!strcmp(name, "id") || !strcmp(name, "dir")))
      return 0;
    full[0] = '\0';
    for (size_t i = 0; i < n; i++) {
      if (i > 0)
        append(full, sizeof full, ".");
      append(full, sizeof full, path[i]);
    }
    return tfail(t, "unknown reference '%s' (hint: use run.id or run.dir)",
                 full);
  }
  if (strcmp(root, "env") == 0)
    return name != NULL ? 0 : tfail(t, "'env' needs a variable name (hint: "
                                    "write env.NAME)");
  if (strcmp(root, "self") == 0)
    return t->in_undo || t->in_probe
               ? 0 : tfail(t, "use of 'self' outside undo, probe and ready (hint: "
                           "use states.NAME.output)");
  if (strcmp(root, "item") == 0)
    return t->L->in_map ? 0 : tfail(t, "use of 'item' outside a map state (hint: item is only "
                 "available inside map states)");
  return tfail(t, "unknown reference '%s' (hint: use params, vars, env, "
               "secrets, states or run)", root);
}

static int ref_cb(void *ud, const char *const *path, size_t n, size_t offset,
                  struct cairn_error *err)
{
  struct tctx *t = ud;

  if (n == 0 || ref_check(t, path, n) == 0)
    return 0;
  t->failed = 1;
  t->offset = offset;
  return cairn_error_set(err, CAIRN_E_TEMPLATE, "%s", t->msg);
}

/* Checks text (a template string, or a bare expression when is_expr),
 * found at byte base of node n's value. */
static int check_text(struct tctx *t, const ynode *n, const char *text,
                      size_t base, int is_expr, const char *subj)
{
  struct cairn_error e = {0};
  size_t off = 0;
  char msg[CAIRN_ERRMSG_MAX];
  int rc, col = n->col;

  t->failed = 0;
  rc = is_expr ? engine_template_check_expr(text, ref_cb, t, &off, &e)
               : engine_template_check(text, ref_cb, t, &off, &e);
  if (rc == 0)
    return 0;
  if (rc == CAIRN_E_NOMEM)
    return nomem(t->L);
  if (t->failed)
    off = t->offset;
  if (n->one_line && base + off < (size_t)INT_MAX / 2)
    col += n->quoted + (int)(base + off);
  add_context(msg, sizeof msg, t->failed ? t->msg
                               : e.msg[0] ? e.msg : "invalid template", subj);
  return lerr_at(t->L, n->line, col, "%s", msg);
}

/* Every string under n (values, not keys). */
static int check_tree(struct tctx *t, const ynode *n, const char *subj)
{
  int rc = 0;

  if (n->type == Y_SCALAR)
    return is_str(n) ? check_text(t, n, n->text, 0, 0, subj) : 0;
  for (size_t i = n->type == Y_MAP; rc == 0 && i < n->n;
       i += n->type == Y_MAP ? 2 : 1)
    rc = check_tree(t, n->kids[i], subj);
  return rc;
}

/* ---- states and actions ------------------------------------------------- */

/* what + subj name the transition in the message (made only then). */
static int check_target(struct loader *L, const ynode *v, const char *name,
                        const char *what, const char *subj, int on_failure)
{
  static const char *const ends[] = {"rollback", "fail", NULL};
  const char *s;
  char hint[640], list[512];

  if (on_failure && in_list(ends, name) >= 0)
    return 0;
  if (state_index(L->wf, name) >= 0)
    return 0;
  s = suggest(name, state_names(L->wf));
  if (s == NULL && on_failure)
    s = suggest(name, list_names(ends));
  join(list, sizeof list, state_names(L->wf), 5);
  if (s != NULL)
    snprintf(hint, sizeof hint, "did you mean '%s'?", s);
  else if (on_failure)
    snprintf(hint, sizeof hint, "use rollback, fail or a state: %s", list);
  else
    snprintf(hint, sizeof hint, "states are %s", list);
  return lerr(L, v, "unknown state '%s' in %s%s (hint: %s)", name, what,
              subj, hint);
}

static const char *const retry_keys[] = {"attempts", "delay", "backoff",
                                         "max_delay", NULL};

static int parse_retry(struct loader *L, const ynode *m,
                       const char *owner, struct engine_retry *r)
{
  const ynode *v;
  char subj[300];
  int rc;

  fmt(subj, sizeof subj, "the retry of %s", owner);
  if (m->type != Y_MAP)
    return lerr(L, m, "'retry' in %s must be a mapping, got %s (hint: write "
                "'retry: { attempts: 3, delay: 1s }')", owner, tname(m));
  if ((rc = check_keys(L, m, retry_keys, subj)) != 0)
    return rc;
  if ((v = map_get(m, "attempts", NULL)) != NULL &&
      (rc = get_int(L, v, "attempts", subj, 1, " (hint: 1 means no retry)",
                    &r->attempts)) != 0)
    return rc;
  if ((v = map_get(m, "delay", NULL)) != NULL &&
      (rc = get_duration(L, v, "delay", subj, &r->delay_ms)) != 0)
    return rc;
  if ((v = map_get(m, "backoff", NULL)) != NULL) {
    enum engine__ystype t = stype_of(v);
    if (v->type != Y_SCALAR || (t != S_INT && t != S_FLOAT))
      return lerr(L, v, "'backoff' in %s must be a number, got %s", subj,
                  tname(v));
    r->backoff = num_of(v);
    if (isnan(r->backoff) || r->backoff < 1)
      return lerr(L, v, "'backoff' in %s must be at least 1, got %s (hint: 1 "
                  "keeps the delay constant)", subj, v->text);
  }
  if ((v = map_get(m, "max_delay", NULL)) != NULL &&
      (rc = get_duration(L, v, "max_delay", subj, &r->max_delay_ms)) != 0)
    return rc;
  return 0;
}

enum role { R_STATE, R_BRANCH, R_PROBE, R_UNDO, R_READY, R_MAP };

static const char *const branch_keys[] = {"do", "with", "retry", "timeout",
                                          "idempotent", "probe", "undo",
                                          "ready", NULL};
static const char *const sub_keys[] = {"do", "with", "timeout", "retry", NULL};
/* An undo may be interrupted like any action, so it may say whether it
 * can run again, or how to learn whether it took effect. */
static const char *const undo_keys[] = {"do", "with", "timeout", "retry",
                                        "idempotent", "probe", NULL};

static int unknown_adapter(struct loader *L, const ynode *v,
                           const char *subj)
{
  char list[512] = "";
  const char *best = NULL;
  int bd = 3;

  for (size_t i = 0; adapter_registry[i] != NULL; i++) {
    const char *name = adapter_registry[i]->name;
    int d = edist(v->text, name);
    if (d < bd && (size_t)d < strlen(name)) {
      bd = d;
      best = name;
    }
    if (i > 0)
      append(list, sizeof list, ", ");
    append(list, sizeof list, name);
  }
  if (best != NULL)
    return lerr(L, v, "unknown adapter '%s' in %s (hint: did you mean '%s'? "
                "known adapters are %s)", v->text, subj, best, list);
  return lerr(L, v, "unknown adapter '%s' in %s (hint: known adapters are "
              "%s)", v->text, subj, list);
}

static int parse_action(struct loader *L, const ynode *m,
                        struct engine_action *a, enum role role,
                        const char *subj, size_t state);

/* The undo an adapter gives a state that writes none (its description's
 * undo_adapter and undo_with). */
static int default_undo(struct loader *L, struct engine_action *a,
                        const struct adapter_desc *desc, const char *subj)
{
  json_error_t je;
  struct engine_action *u = calloc(1, sizeof *u);
  const struct adapter_desc *ud = adapter_find(desc->undo_adapter);

  if (u == NULL)
    return nomem(L);
  u->adapter = ud != NULL ? ud->name : NULL;
  u->with = desc->undo_with ? json_loads(desc->undo_with, 0, &je)
                            : json_object();
  if (u->with == NULL || u->adapter == NULL) {
    json_decref(u->with);
    free(u);
    return cairn_error_set(L->err, CAIRN_E_WORKFLOW,
                           "%s: adapter '%s' has a broken default undo "
                           "(a bug in cairn)", subj, desc->name);
  }
  u->retry = (struct engine_retry){1, 1000, 2.0, 0};
  u->idempotent = -1;
  u->pos = a->pos;
  a->undo = u;
  a->undo_default = 1;
  return 0;
}

static int parse_sub(struct loader *L, const ynode *m,
                     struct engine_action **out, enum role role,
                     const char *owner, size_t state)
{
  const char *key = role == R_PROBE ? "probe" : role == R_READY ? "ready"
                                                                : "undo";
  char subj[300];

  cat(subj, sizeof subj, "the ", key, " of ", owner, (char *)NULL);
  if (m->type != Y_MAP)
    return lerr(L, m, "'%s' in %s must be a mapping, got %s (hint: write "
                "'%s: { do: ADAPTER, with: {...} }')", key, owner, tname(m),
                key);
  if ((*out = calloc(1, sizeof **out)) == NULL)
    return nomem(L);
  return parse_action(L, m, *out, role, subj, state);
}

static int parse_action(struct loader *L, const ynode *m,
                        struct engine_action *a, enum role role,
                        const char *subj, size_t state)
{
  const struct adapter_desc *desc;
  const ynode *k = NULL, *v, *w;
  struct cairn_error e = {0};
  const char *bad = NULL;
  char msg[CAIRN_ERRMSG_MAX];
  struct tctx t = {.L = L, .state = state, .in_undo = role == R_UNDO,
                   .in_probe = role == R_PROBE || role == R_READY};
  int rc;

  a->retry = (struct engine_retry){1, 1000, 2.0, 0};
  a->idempotent = -1;
  if (role == R_PROBE || role == R_UNDO || role == R_READY) {
    const char *const *keys = role == R_UNDO ? undo_keys : sub_keys;
    for (size_t i = 0; i < m->n; i += 2)
      if (in_list(keys, m->kids[i]->text) < 0 &&
          in_list(branch_keys, m->kids[i]->text) >= 0)
        return lerr(L, m->kids[i], "key '%s' is not allowed in %s (hint: %s)",
                    m->kids[i]->text, subj,
                    role == R_UNDO ? "an undo takes do, with, timeout, retry, "
                                     "idempotent and probe"
                    : role == R_READY ? "a ready check takes do, with, "
                                        "timeout and retry"
                                      : "a probe takes do, with, timeout and "
                                        "retry");
    if ((rc = check_keys(L, m, keys, subj)) != 0)
      return rc;
  } else if (role == R_BRANCH && (rc = check_keys(L, m, branch_keys, subj)))
    return rc;

  if ((v = map_get(m, "do", &k)) == NULL)
    return lerr(L, m, "missing key 'do' in %s (hint: name an adapter, e.g. "
                "'do: exec')", subj);
  a->pos = (struct engine_pos){k->line, k->col};
  if ((rc = want_str(L, v, "do", subj)) != 0)
    return rc;
  if ((desc = adapter_find(v->text)) == NULL)
    return unknown_adapter(L, v, subj);
  a->adapter = desc->name;
  if ((w = map_get(m, "with", NULL)) != NULL) {
    if ((rc = want_map(L, w, "with", subj)) != 0 ||
        (rc = node_json(L, w, &a->with)) != 0)
      return rc;
  } else if ((a->with = json_object()) == NULL) {
    return nomem(L);
  }
  if (adapter_check_with(desc, a->with, &bad, &e) != 0) {
    const ynode *at = w != NULL ? w : k;
    if (bad != NULL && w != NULL)
      map_get(w, bad, &at);
    add_context(msg, sizeof msg, e.msg[0] ? e.msg : "invalid 'with'", subj);
    return lerr(L, at, "%s", msg);
  }
  if ((v = map_get(m, "retry", NULL)) != NULL &&
      (rc = parse_retry(L, v, subj, &a->retry)) != 0)
    return rc;
  if ((v = map_get(m, "timeout", NULL)) != NULL &&
      (rc = get_duration(L, v, "timeout", subj, &a->timeout_ms)) != 0)
    return rc;
  if ((v = map_get(m, "idempotent", NULL)) != NULL) {
    if (v->type != Y_SCALAR || stype_of(v) != S_BOOL)
      return lerr(L, v, "'idempotent' in %s must be a boolean, got %s (hint: write true or false, without quotes)", subj,
                  tname(v));
    a->idempotent = is_true(v);
  }
  if (w != NULL && (rc = check_tree(&t, w, subj)) != 0)
    return rc;
  if ((v = map_get(m, "probe", NULL)) != NULL &&
      (rc = parse_sub(L, v, &a->probe, R_PROBE, subj, state)) != 0)
    return rc;
  if ((v = map_get(m, "ready", NULL)) != NULL &&
      (rc = parse_sub(L, v, &a->ready, R_READY, subj, state)) != 0)
    return rc;
  v = map_get(m, "undo", NULL);
  if (v != NULL && v->type == Y_SCALAR && stype_of(v) == S_BOOL && !is_true(v))
    return 0; /* undo: false: none, not even the adapter's own */
  if (v != NULL)
    return parse_sub(L, v, &a->undo, R_UNDO, subj, state);
  if ((role == R_STATE || role == R_BRANCH || role == R_MAP) &&
      desc->undo_adapter != NULL)
    return default_undo(L, a, desc, subj);
  return 0;
}

static int parse_parallel(struct loader *L, struct engine_state *s,
                          const ynode *m, const char *subj,
                          size_t state)
{
  char bsubj[300];
  int rc;

  if (m->type != Y_MAP)
    return lerr(L, m, "'parallel' in %s must be a mapping of branches, got %s",
                subj, tname(m));
  if (m->n == 0)
    return lerr(L, m, "'parallel' in %s has no branches (hint: add at least "
                "one, e.g. 'db: { do: exec, with: {...} }')", subj);
  if ((s->branches = calloc(m->n / 2, sizeof *s->branches)) == NULL)
    return nomem(L);
  s->nbranches = m->n / 2;
  for (size_t i = 0; i < s->nbranches; i++) {
    const ynode *k = m->kids[2 * i], *v = m->kids[2 * i + 1];
    struct engine_branch *b = &s->branches[i];
    if ((b->name = strdup(k->text)) == NULL)
      return nomem(L);
    b->pos = (struct engine_pos){k->line, k->col};
    if (!name_ok(b->name, N_STATE))
      return lerr(L, k, "invalid branch name '%s' in %s (hint: use letters, "
                  "digits, '_' and '-')", b->name, subj);
    fmt(bsubj, sizeof bsubj, "branch '%s' of %s", b->name, subj);
    if (v->type != Y_MAP)
      return lerr(L, v, "%s must be a mapping, got %s (hint: write '%s: { do: "
                  "ADAPTER, with: {...} }')", bsubj, tname(v), b->name);
    {
      const ynode *uk = NULL;
      if (map_get(v, "use", &uk) != NULL)
        return lerr(L, uk, "'use' in %s is not supported (hint: make it a "
                    "use state of its own, before or after the parallel "
                    "state)", bsubj);
    }
    if ((rc = parse_action(L, v, &b->action, R_BRANCH, bsubj, state)) != 0)
      return rc;
  }
  return 0;
}

/* The expression of a `when`: s trimmed, without one pair of surrounding
 * braces; [*b, *e) in s. */
static void when_span(const char *s, size_t *b, size_t *e)
{
  size_t i = 0, j = strlen(s);

  for (int pass = 0; pass < 2; pass++) {
    while (i < j && strchr(" \t\r\n", s[i]))
      i++;
    while (j > i && strchr(" \t\r\n", s[j - 1]))
      j--;
    if (pass == 0 && j - i >= 4 && !strncmp(s + i, "{{", 2) &&
        !strncmp(s + j - 2, "}}", 2)) {
      char *inner = strndup(s + i + 2, j - i - 4);
      int single = inner && !strstr(inner, "{{") && !strstr(inner, "}}");
      free(inner);
      if (!single)
        break;
      i += 2;
      j -= 2;
    }
  }
  *b = i;
  *e = j;
}

static const char *const when_keys[] = {"when", "next", NULL};

static int parse_choice(struct loader *L, struct engine_state *s,
                        const ynode *m, const char *subj, size_t state)
{
  struct tctx t = {.L = L, .state = state};
  char csubj[300];
  int rc;

  if (m->type != Y_SEQ)
    return lerr(L, m, "'choice' in %s must be a list of 'when' and 'next', "
                "got %s", subj, tname(m));
  if (m->n == 0)
    return lerr(L, m, "'choice' in %s is empty (hint: add '- when: EXPR' "
                "with 'next: STATE')", subj);
  if ((s->whens = calloc(m->n, sizeof *s->whens)) == NULL)
    return nomem(L);
  s->nwhens = m->n;
  for (size_t i = 0; i < m->n; i++) {
    const ynode *it = m->kids[i], *wv, *nv;
    struct engine_when *w = &s->whens[i];
    size_t b, e;
    fmt(csubj, sizeof csubj, "choice %zu of %s", i + 1, subj);
    w->pos = (struct engine_pos){it->line, it->col};
    if (it->type != Y_MAP)
      return lerr(L, it, "%s must be a mapping, got %s (hint: write '- when: "
                  "EXPR' with 'next: STATE')", csubj, tname(it));
    if ((rc = check_keys(L, it, when_keys, csubj)) != 0)
      return rc;
    if ((wv = map_get(it, "when", NULL)) == NULL)
      return lerr(L, it, "missing key 'when' in %s (hint: add 'when: EXPR', "
                  "e.g. 'when: params.replicas > 1')", csubj);
    if ((nv = map_get(it, "next", NULL)) == NULL)
      return lerr(L, it, "missing key 'next' in %s (hint: add 'next: STATE')",
                  csubj);
    if (!is_str(wv))
      return get_str(L, wv, "when", csubj, &w->expr);
    when_span(wv->text, &b, &e);
    if ((w->expr = strndup(wv->text + b, e - b)) == NULL)
      return nomem(L);
    if (w->expr[0] == '\0')
      return lerr(L, wv, "'when' in %s is empty (hint: write an expression, "
                  "e.g. 'params.replicas > 1')", csubj);
    if ((rc = check_text(&t, wv, w->expr, b, 1, csubj)) != 0 ||
        (rc = get_str(L, nv, "next", csubj, &w->next)) != 0)
      return rc;
    if ((rc = check_target(L, nv, w->next, "'next' of ", csubj, 0)) != 0)
      return rc;
  }
  return 0;
}

/* A non-empty list of distinct actor names (approvers). */
static int get_names(struct loader *L, const ynode *v, const char *key,
                     const char *subj, char ***out, size_t *n)
{
  if (v->type != Y_SEQ || v->n == 0)
    return lerr(L, v, "'%s' in %s must be a non-empty list of actor names, "
                "got %s (hint: e.g. [alice, bob])", key, subj,
                v->type == Y_SEQ ? "an empty list" : tname(v));
  if ((*out = calloc(v->n, sizeof **out)) == NULL)
    return nomem(L);
  *n = v->n;
  for (size_t i = 0; i < v->n; i++) {
    const ynode *x = v->kids[i];
    if (!is_str(x) || x->text[0] == '\0')
      return lerr(L, x, "'%s' in %s must hold actor names (strings), got %s",
                  key, subj, tname(x));
    for (size_t j = 0; j < i; j++)
      if (strcmp((*out)[j], x->text) == 0)
        return lerr(L, x, "duplicate approver '%s' in %s (hint: list each "
                    "actor once)", x->text, subj);
    if (((*out)[i] = strdup(x->text)) == NULL)
      return nomem(L);
  }
  return 0;
}

/* An approval state's or an environment's (m, what) approvals against
 * the approvers it lists (listed: it lists some): more approvals than
 * approvers is a gate nobody can pass. */
static int check_approvers(struct loader *L, const ynode *m, const char *what,
                           int approvals, size_t napprovers, int listed)
{
  if (listed && approvals > 0 && (size_t)approvals > napprovers)
    return lerr(L, map_get(m, "approvals", NULL), "%s needs %d approvals but "
                "lists only %zu approvers (hint: lower 'approvals' or add "
                "approvers)", what, approvals, napprovers);
  return 0;
}

static const char *const approval_keys[] = {"approvals", "approvers", NULL};

/* approval: {} (the environment's approvals and approvers) or
 * approval: { approvals: N, approvers: [...] }. */
static int parse_approval(struct loader *L, struct engine_state *s,
                          const ynode *v, const char *subj)
{
  const ynode *x;
  char what[340];
  int rc;

  if (v->type != Y_MAP && !(v->type == Y_SCALAR && stype_of(v) == S_NULL))
    return lerr(L, v, "'approval' in %s must be a mapping, got %s (hint: "
                "write 'approval: {}' to use the environment's approvals, "
                "or 'approval: { approvals: 2, approvers: [alice, bob] }')",
                subj, tname(v));
  if (v->type != Y_MAP)
    return 0;
  fmt(what, sizeof what, "'approval' of %s", subj);
  if ((rc = check_keys(L, v, approval_keys, what)) != 0)
    return rc;
  if ((x = map_get(v, "approvals", NULL)) != NULL &&
      (rc = get_int(L, x, "approvals", what, 1, " (hint: at least one "
                    "approval is needed)", &s->approvals)) != 0)
    return rc;
  if ((x = map_get(v, "approvers", NULL)) != NULL &&
      (rc = get_names(L, x, "approvers", what, &s->approvers,
                      &s->napprovers)) != 0)
    return rc;
  return check_approvers(L, v, what, s->approvals, s->napprovers,
                         s->approvers != NULL);
}

/* ---- use and map ------------------------------------------------------- */

static int load_file(struct engine_workflow **out, const char *path,
                     const struct use_stack *stack, struct cairn_error *err);

/* Where `use: REF` points: "cairn:NAME.yaml" in $CAIRN_WORKFLOWS, else the
 * installed workflows/, else the source tree's (a build never installed);
 * any other REF relative to the using file's folder. 0, or -1 with why
 * and a hint (hint: ...). */
static int use_path(const char *from_file, const char *ref, char *out,
                    size_t n, char *why, size_t nwhy, char *hint,
                    size_t nhint)
{
  const char *dirs[3], *env = getenv("CAIRN_WORKFLOWS");
  size_t nd = 0;
  struct stat sb;
  int w;

  if (strncmp(ref, "cairn:", 6) == 0) {
    const char *name = ref + 6;
    if (*name == '\0' || strchr(name, '/') != NULL || name[0] == '.') {
      snprintf(why, nwhy, "'%s' names no standard workflow", ref);
      snprintf(hint, nhint, "write cairn:NAME.yaml, e.g. "
               "cairn:postgres.yaml");
      return -1;
    }
    if (env && *env)
      dirs[nd++] = env;
    dirs[nd++] = CAIRN_WORKFLOWS_DIR;
#ifdef CAIRN_SOURCE_WORKFLOWS_DIR
    dirs[nd++] = CAIRN_SOURCE_WORKFLOWS_DIR;
#endif
    for (size_t i = 0; i < nd; i++) {
      w = snprintf(out, n, "%s/%s", dirs[i], name);
      if (w > 0 && (size_t)w < n && access(out, F_OK) == 0)
        return 0;
    }
    {
      size_t used = (size_t)snprintf(why, nwhy, "no standard workflow '%s' "
                                     "in ", name);
      for (size_t i = 0; i < nd && used < nwhy; i++)
        used += (size_t)snprintf(why + used, nwhy - used, "%s%s",
                                 i == 0 ? "" : i + 1 == nd ? " or " : ", ",
                                 dirs[i]);
    }
    snprintf(hint, nhint, "the standard workflows are the .yaml files of "
             "those folders; set CAIRN_WORKFLOWS to look in another");
    return -1;
  }
  if (ref[0] == '/') {
    w = snprintf(out, n, "%s", ref);
  } else {
    const char *slash = strrchr(from_file, '/');
    w = slash ? snprintf(out, n, "%.*s/%s", (int)(slash - from_file),
                         from_file, ref)
              : snprintf(out, n, "%s", ref);
  }
  if (w < 0 || (size_t)w >= n) {
    snprintf(why, nwhy, "path of '%s' is too long", ref);
    snprintf(hint, nhint, "use a shorter path");
    return -1;
  }
  if (access(out, R_OK) != 0 || stat(out, &sb) != 0) {
    snprintf(why, nwhy, "cannot read '%s': %s", out, strerror(errno));
    snprintf(hint, nhint, "%s", ref[0] == '/'
             ? "check the path and its permissions"
             : "the path is relative to the folder of the file that says "
               "'use'");
    return -1;
  }
  /* A folder fails only when read, a device or a FIFO may never end:
   * refused here, where the error can point at the `use`. */
  if (!S_ISREG(sb.st_mode)) {
    snprintf(why, nwhy, "'%s' is not a file (%s)", out,
             S_ISDIR(sb.st_mode) ? "a folder" : "a device, FIFO or socket");
    snprintf(hint, nhint, "'use' names a workflow's .yaml file");
    return -1;
  }
  return 0;
}

/* Does the tree hold a template ("{{")? Its value is known only when the
 * state is entered. */
static int node_templated(const ynode *n)
{
  if (n->type == Y_SCALAR)
    return n->text != NULL && strstr(n->text, "{{") != NULL;
  for (size_t i = 0; i < n->n; i++)
    if (node_templated(n->kids[i]))
      return 1;
  return 0;
}

/* A value written as it is in a use state's `with` is checked now against
 * the used workflow's param (type, pattern), as it would be on entry, so
 * that `cairn validate` names its line instead of a run failing on it. */
static int check_literal_param(struct loader *L,
                               const struct engine_workflow *sub,
                               const ynode *key, const ynode *v,
                               const char *subj)
{
  const struct engine_param *p = engine_workflow_param(sub, key->text);
  struct cairn_error e = {0};
  json_t *val = NULL, *out = NULL;
  int rc;

  if (p == NULL || node_templated(v))
    return 0;
  size_t vn = v->type == Y_SCALAR ? engine_secret_too_short(v->text) : 0;
  if (p->secret && vn > 0)
    return lerr(L, v, "the value of secret param '%s' of '%s' in the 'with' "
                "of %s is %zu character%s long: too short to keep out of the "
                "output (hint: give it at least %d characters)", key->text,
                sub->file, subj, vn, vn == 1 ? "" : "s", ENGINE_SECRET_MIN);
  if ((rc = node_json(L, v, &val)) != 0)
    return rc;
  rc = engine_param_value(p, val, &out, &e);
  json_decref(val);
  json_decref(out);
  if (rc == 0)
    return 0;
  if (p->secret) /* its pattern's message would quote the value */
    return lerr(L, v, "the value of secret param '%s' of '%s' in the 'with' "
                "of %s is not valid for it (hint: see its type and pattern "
                "in '%s')", key->text, sub->file, subj, sub->file);
  return lerr(L, v, "%s, in the 'with' of %s (hint: see param '%s' in '%s')",
              e.msg, subj, key->text, sub->file);
}

static int parse_use(struct loader *L, struct engine_state *s,
                     const ynode *m, const char *subj, size_t idx)
{
  struct tctx t = {.L = L, .state = idx};
  const ynode *k = NULL, *v = map_get(m, "use", &k), *w;
  struct engine_workflow *sub = NULL;
  struct cairn_error e = {0};
  char *ref = NULL, path[4096], why[700], hint[300];
  int rc;

  if ((rc = get_str(L, v, "use", subj, &ref)) != 0)
    return rc;
  rc = use_path(L->wf->file, ref, path, sizeof path, why, sizeof why, hint,
                sizeof hint);
  if (rc != 0) {
    free(ref);
    return lerr(L, v, "%s in %s (hint: %s)", why, subj, hint);
  }
  {
    char *abs = realpath(path, NULL);
    for (const struct use_stack *u = L->stack; abs && u; u = u->up)
      if (strcmp(u->file, abs) == 0) {
        free(abs);
        rc = lerr(L, v, "'%s' in %s uses itself through 'use' (hint: a "
                  "workflow cannot use a workflow that uses it)", ref, subj);
        free(ref);
        return rc;
      }
    free(abs);
  }
  free(ref);
  rc = load_file(&sub, path, L->stack, &e);
  if (rc != 0) {
    /* the used file's own error names its file, line and column */
    return cairn_error_set(L->err, rc, "%s", e.msg);
  }
  L->subs[idx] = sub;
  if ((w = map_get(m, "with", NULL)) != NULL) {
    if ((rc = want_map(L, w, "with", subj)) != 0 ||
        (rc = node_json(L, w, &s->use_with)) != 0 ||
        (rc = check_tree(&t, w, subj)) != 0)
      return rc;
    for (size_t i = 0; i < w->n; i += 2) {
      const ynode *key = w->kids[i];
      if (engine_workflow_param(sub, key->text) == NULL) {
        struct names nl = {sub->nparams ? (const void *)&sub->params[0].name
                                        : NULL,
                           sizeof *sub->params, sub->nparams};
        char names_hint[640];
        name_hint(names_hint, sizeof names_hint, key->text, nl,
                  "its params are");
        return lerr(L, key, "unknown param '%s' of '%s' in the 'with' of %s "
                    "(hint: %s)", key->text, sub->file, subj,
                    sub->nparams ? names_hint : "it declares no params");
      }
      if ((rc = check_literal_param(L, sub, key, w->kids[i + 1], subj)) != 0)
        return rc;
    }
  } else if ((s->use_with = json_object()) == NULL) {
    return nomem(L);
  }
  for (size_t j = 0; j < sub->nparams; j++)
    if (sub->params[j].default_value == NULL &&
        json_object_get(s->use_with, sub->params[j].name) == NULL)
      return lerr(L, k, "%s does not give param '%s' of '%s', which has no "
                  "default (hint: add '%s: VALUE' to its 'with')", subj,
                  sub->params[j].name, sub->file, sub->params[j].name);
  for (size_t j = 0; j < sub->nsecrets; j++)
    if (nindex_find(&L->secrets, sub->secrets[j]) < 0)
      return lerr(L, k, "'%s', used by %s, needs secret '%s' (hint: add it "
                  "to this workflow's 'secrets')", sub->file, subj,
                  sub->secrets[j]);
  return 0;
}

static const char *const map_keys[] = {"items", "key", "max_concurrency",
                                       "fail_fast", "do", "with", "retry", "timeout",
                                       "idempotent", "probe", "undo", "ready",
                                       "use", NULL};


/* items: "{{ params.NAME }}" alone, of a param declared as another type
 * than a list: every run would fail at the map, so validate says so. */
static int check_items_param(struct loader *L, const ynode *v,
                             const char *subj)
{
  const char *p = v->text, *name;
  size_t len = 0;

  if (!is_str(v))
    return 0;
  while (*p == ' ')
    p++;
  if (strncmp(p, "{{", 2) != 0)
    return 0;
  for (p += 2; *p == ' '; p++)
    ;
  if (strncmp(p, "params.", 7) != 0)
    return 0;
  name = p += 7;
  while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
         (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
    p++, len++;
  while (*p == ' ')
    p++;
  if (len == 0 || strncmp(p, "}}", 2) != 0)
    return 0;
  for (p += 2; *p == ' '; p++)
    ;
  if (*p != '\0')
    return 0;
  static const char *const what[] = {"a string", "an integer", "a number",
                                      "a boolean", "a list", "an object"};
  for (size_t i = 0; i < L->wf->nparams; i++) {
    const struct engine_param *pm = &L->wf->params[i];
    if (strlen(pm->name) == len && strncmp(pm->name, name, len) == 0 &&
        pm->type != ENGINE_PARAM_LIST)
      return lerr(L, v, "'items' in %s reads param '%s', which is %s, not "
                  "a list (hint: declare it 'type: list')", subj, pm->name,
                  what[pm->type]);
  }
  return 0;
}

static int parse_map(struct loader *L, struct engine_state *s,
                     const ynode *m, const char *subj, size_t idx)
{
  struct tctx t = {.L = L, .state = idx};
  const ynode *v;
  int rc;

  if (m->type != Y_MAP)
    return lerr(L, m, "'map' in %s must be a mapping, got %s (hint: write "
                "'map: { items: \"{{ params.list }}\", do: ADAPTER, with: "
                "{...} }')", subj, tname(m));
  if ((rc = check_keys(L, m, map_keys, subj)) != 0)
    return rc;
  if ((v = map_get(m, "items", NULL)) == NULL)
    return lerr(L, m, "missing key 'items' in the map of %s (hint: a list, "
                "or a template that gives one, e.g. \"{{ params.services "
                "}}\")", subj);
  if (!(v->type == Y_SEQ || is_str(v)))
    return lerr(L, v, "'items' in %s must be a list or a template string, "
                "got %s", subj, tname(v));
  if ((rc = node_json(L, v, &s->map_items)) != 0 ||
      (rc = check_tree(&t, v, subj)) != 0 ||
      (rc = check_items_param(L, v, subj)) != 0)
    return rc;
  L->in_map = 1; /* from here on, templates may read `item` */
  if ((v = map_get(m, "key", NULL)) != NULL &&
      ((rc = get_str(L, v, "key", subj, &s->map_key)) != 0 ||
       (rc = check_text(&t, v, s->map_key, 0, 0, subj)) != 0))
    goto out;
  if ((v = map_get(m, "max_concurrency", NULL)) != NULL) {
    /* a number, or a template for one ("{{ params.parallel }}") */
    if (is_str(v) && strstr(v->text, "{{") != NULL) {
      if ((rc = get_str(L, v, "max_concurrency", subj,
                        &s->map_concurrency)) != 0 ||
          (rc = check_text(&t, v, s->map_concurrency, 0, 0, subj)) != 0)
        goto out;
    } else if ((rc = get_int(L, v, "max_concurrency", subj, 1,
                             " (hint: 1 runs one instance at a time)",
                             &s->max_concurrency)) != 0) {
      goto out;
    }
  }
  if ((v = map_get(m, "fail_fast", NULL)) != NULL) {
    if (v->type != Y_SCALAR || stype_of(v) != S_BOOL) {
      rc = lerr(L, v, "'fail_fast' in the map of %s must be a boolean, got "
                "%s (hint: write true or false, without quotes)", subj,
                tname(v));
      goto out;
    }
    s->map_fail_late = !is_true(v);
  }
  if ((v = map_get(m, "use", NULL)) != NULL) {
    /* each instance runs the used workflow; `with` gives its params */
    static const char *const action_only[] = {"do", "retry", "timeout",
                                              "idempotent", "probe", "undo",
                                              "ready", NULL};
    for (const char *const *a = action_only; *a; a++) {
      const ynode *k2 = NULL;
      if (map_get(m, *a, &k2) != NULL)
        return lerr(L, k2, "the map of %s has both 'use' and '%s' (hint: a "
                    "map runs either one action (do, with, retry, ...) or "
                    "a used workflow (use, with) per item)", subj, *a);
    }
    rc = parse_use(L, s, m, subj, idx);
    for (size_t i = 0; rc == 0 && L->subs[idx] && i < L->subs[idx]->nstates;
         i++)
      if (L->subs[idx]->states[i].kind == ENGINE_APPROVAL)
        rc = lerr(L, v, "'%s', used by the map of %s, has approval state "
                  "'%s' (hint: an instance of a map cannot stop the run for "
                  "an approval; put the approval before the map)",
                  L->subs[idx]->file, subj, L->subs[idx]->states[i].name);
      else if (L->subs[idx]->states[i].kind == ENGINE_MAP &&
               L->subs[idx]->states[i].use_frame >= 0)
        /* resume keeps one level of instance cursors */
        rc = lerr(L, v, "'%s', used by the map of %s, has a map over a used "
                  "workflow itself ('%s') (hint: one level of map over use "
                  "only; give the inner map a do action, or flatten the "
                  "items)", L->subs[idx]->file, subj,
                  L->subs[idx]->states[i].name);
    goto out;
  }
  rc = parse_action(L, m, &s->action, R_MAP, subj, idx);
out:
  L->in_map = 0;
  return rc;
}

/* The on_failure of every state that names none: one string, not a copy
 * a state (engine_workflow_destroy does not free it). */
static char on_failure_default[] = "rollback";

static const char *const kind_keys[] = {"do", "parallel", "choice", "wait",
                                        "succeed", "fail", "approval", "use",
                                        "map", NULL};
static const char *const keys_by_kind[][12] = {
  [ENGINE_USE] = {"description", "use", "with", "next", "on_failure", NULL},
  [ENGINE_MAP] = {"description", "map", "next", "on_failure", NULL},
  [ENGINE_DO] = {"description", "do", "with", "retry", "timeout",
                 "idempotent", "probe", "undo", "ready", "next",
                 "on_failure", NULL},
  [ENGINE_PARALLEL] = {"description", "parallel", "next", "on_failure", NULL},
  [ENGINE_CHOICE] = {"description", "choice", "default", NULL},
  [ENGINE_WAIT] = {"description", "wait", "next", NULL},
  [ENGINE_SUCCEED] = {"description", "succeed", NULL},
  [ENGINE_FAIL] = {"description", "fail", "message", NULL},
  [ENGINE_APPROVAL] = {"description", "approval", "next", NULL},
};
static const char *const state_keys[] = {
  "description", "do", "with", "retry", "timeout", "idempotent", "probe",
  "undo", "ready", "next", "on_failure", "parallel", "choice", "default",
  "wait", "succeed", "fail", "message", "approval", "use", "map", NULL,
};

/* The first kind key of a state's mapping, or -1. */
static int kind_of(const ynode *m, const ynode **kk)
{
  if (m->type != Y_MAP)
    return -1;
  for (size_t i = 0; i < m->n; i += 2) {
    int k = in_list(kind_keys, m->kids[i]->text);
    if (k >= 0) {
      if (kk != NULL)
        *kk = m->kids[i];
      return k;
    }
  }
  return -1;
}

static int parse_state(struct loader *L, size_t idx, const ynode *k,
                       const ynode *m)
{
  struct engine_state *s = &L->wf->states[idx];
  const ynode *v, *kk = NULL;
  char subj[300], list[512];
  int kind, rc = 0;

  s->pos = (struct engine_pos){k->line, k->col};
  s->frame = s->use_frame = -1;
  cat(subj, sizeof subj, "state '", s->name, "'", (char *)NULL);
  if (!strcmp(s->name, "rollback") || !strcmp(s->name, "fail"))
    return lerr(L, k, "'%s' cannot be a state name (hint: it is reserved for "
                "on_failure; rename the state)", s->name);
  if (!name_ok(s->name, N_STATE))
    return lerr(L, k, "invalid state name '%s' (hint: use letters, digits, "
                "'_' and '-')", s->name);
  if (m->type != Y_MAP)
    return lerr(L, m, "state '%s' must be a mapping, got %s (hint: give it a "
                "kind, e.g. 'do: exec')", s->name, tname(m));
  kind = kind_of(m, &kk);
  for (size_t i = 0; i < m->n; i += 2) {
    const ynode *key = m->kids[i];
    if (kind >= 0 && key != kk &&
        in_list(kind_keys, key->text) >= 0)
      return lerr(L, key, "state '%s' has both '%s' and '%s' (hint: a state "
                  "has exactly one of do, parallel, choice, wait, succeed, "
                  "fail, approval, use, map)", s->name, kk->text, key->text);
  }
  for (size_t i = 0; i < m->n; i += 2) {
    const ynode *key = m->kids[i];
    if (kind < 0 && in_list(state_keys, key->text) < 0)
      return unknown_key(L, key, state_keys, subj);
    if (kind < 0 || in_list(keys_by_kind[kind], key->text) >= 0)
      continue;
    if (in_list(state_keys, key->text) < 0)
      return unknown_key(L, key, keys_by_kind[kind], subj);
    join(list, sizeof list, list_names(keys_by_kind[kind]), SIZE_MAX);
    return lerr(L, key, "key '%s' is not allowed in %s state '%s' (hint: "
                "%s states take %s)", key->text, kind_names[kind], s->name,
                kind_names[kind], list);
  }
  if (kind < 0)
    return lerr(L, k, "state '%s' has no kind (hint: give it one of do, "
                "parallel, choice, wait, succeed, fail, approval, use, map)",
                s->name);
  s->kind = (enum engine_kind)kind;
  if ((v = map_get(m, "description", NULL)) != NULL &&
      (rc = get_str(L, v, "description", subj, &s->description)) != 0)
    return rc;
  s->on_failure = on_failure_default;
  s->on_failure_pos = s->pos;

  v = map_get(m, kind_names[kind], NULL);
  switch (s->kind) {
  case ENGINE_DO:
    rc = parse_action(L, m, &s->action, R_STATE, subj, idx);
    break;
  case ENGINE_PARALLEL:
    rc = parse_parallel(L, s, v, subj, idx);
    break;
  case ENGINE_CHOICE:
    rc = parse_choice(L, s, v, subj, idx);
    if (rc == 0 && (v = map_get(m, "default", NULL)) != NULL &&
        (rc = get_str(L, v, "default", subj, &s->default_next)) == 0)
      rc = check_target(L, v, s->default_next, "'default' of ", subj, 0);
    break;
  case ENGINE_WAIT:
    rc = get_duration(L, v, "wait", subj, &s->wait_ms);
    break;
  case ENGINE_APPROVAL:
    rc = parse_approval(L, s, v, subj);
    break;
  case ENGINE_USE:
    rc = parse_use(L, s, m, subj, idx);
    break;
  case ENGINE_MAP:
    rc = parse_map(L, s, v, subj, idx);
    break;
  case ENGINE_SUCCEED:
  case ENGINE_FAIL:
    if (!is_true(v))
      return lerr(L, v, "'%s' in %s must be true, got %s (hint: %s)",
                  kind_names[kind], subj, v->type == Y_SCALAR &&
                  stype_of(v) == S_BOOL ? "false" : tname(v),
                  kind == ENGINE_SUCCEED
                      ? "write 'succeed: true', or 'fail: true' to end the "
                        "run as failed"
                      : "write 'fail: true', or 'succeed: true' to end the "
                        "run as succeeded");
    if ((v = map_get(m, "message", NULL)) != NULL &&
        (rc = get_str(L, v, "message", subj, &s->message)) == 0) {
      /* rendered when the run reaches the state (engine/run.c) */
      struct tctx t = {.L = L, .state = idx};
      rc = check_text(&t, v, s->message, 0, 0, subj);
    }
    break;
  }
  if (rc != 0)
    return rc;
  if (s->kind != ENGINE_CHOICE && s->kind != ENGINE_SUCCEED &&
      s->kind != ENGINE_FAIL) {
    if ((v = map_get(m, "next", NULL)) == NULL)
      return lerr(L, k, "missing key 'next' in %s (hint: name the state that "
                  "comes after it)", subj);
    if ((rc = get_str(L, v, "next", subj, &s->next)) != 0 ||
        (rc = check_target(L, v, s->next, "'next' of ", subj, 0)) != 0)
      return rc;
  }
  if ((v = map_get(m, "on_failure", NULL)) != NULL) {
    char *of = NULL;
    s->on_failure_pos = (struct engine_pos){v->line, v->col};
    if ((rc = get_str(L, v, "on_failure", subj, &of)) != 0)
      return rc;
    s->on_failure = of;
    if ((rc = check_target(L, v, s->on_failure, "'on_failure' of ", subj,
                           1)) != 0)
      return rc;
  }
  return 0;
}

/* ---- params, secrets, environments -------------------------------------- */

static const char *const param_keys[] = {"default", "type", "pattern",
                                         "description", "secret", NULL};
static const char *const type_names[] = {"string", "integer", "number",
                                         "boolean", "list", "object", NULL};
static const char *const type_a[] = {"a string", "an integer", "a number",
                                     "a boolean", "a list", "an object"};

/* glibc's regcomp copies a repeated atom once per repetition, and
 * repetitions in a row ("a+++", undefined in POSIX) double the copies
 * each time, so a short pattern can take exponential time and memory; a
 * back-reference makes matching exponential. So a pattern is refused for
 * repetitions in a row, back-references, groups nested deeper than 32,
 * or an estimated compiled size past 10000 nodes. 0, or -1 with why. */
#define PATTERN_MAX_COST 10000.0
#define PATTERN_MAX_DEPTH 32

static int pattern_refused(const char *p, char *why, size_t n)
{
  struct {
    double cur, last;
  } st[PATTERN_MAX_DEPTH];
  size_t depth = 0;
  double cur = 0, last = 0, k;
  int quant = 0; /* the previous token was a repetition */

  while (*p) {
    double atom = 1;
    char c = *p;
    if (c == '\\') {
      if (p[1] >= '1' && p[1] <= '9') {
        fmt(why, n, "back-references such as '\\%c' are not supported", p[1]);
        return -1;
      }
      p += p[1] ? 2 : 1;
    } else if (c == '[') { /* a bracket expression is one atom */
      const char *q = p + 1 + (p[1] == '^');
      if (*q == ']')
        q++;
      while (*q && *q != ']') {
        if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
          const char *e = q + 2;
          while (*e && !(e[0] == q[1] && e[1] == ']'))
            e++;
          q = *e ? e + 2 : e;
        } else {
          q++;
        }
      }
      p = *q ? q + 1 : q;
    } else if (c == '(') {
      if (depth == PATTERN_MAX_DEPTH) {
        fmt(why, n, "groups nest deeper than %d", PATTERN_MAX_DEPTH);
        return -1;
      }
      st[depth].cur = cur;
      st[depth++].last = last;
      cur = last = 0;
      quant = 0;
      p++;
      continue;
    } else if (c == ')' && depth > 0) { /* the group is the atom */
      atom = cur > 1 ? cur : 1;
      depth--;
      cur = st[depth].cur;
      last = st[depth].last;
      p++;
    } else if (c == '|') {
      last = 0;
      quant = 0;
      p++;
      continue;
    } else if (c == '*' || c == '?' || c == '+' ||
               (c == '{' && p[1] >= '0' && p[1] <= '9')) {
      if (quant) {
        fmt(why, n, "repetition operator '%c' right after another", c);
        return -1;
      }
      k = c == '+' ? 2 : 1;
      p++;
      if (c == '{') { /* {m}, {m,} or {m,n}: up to max(m, n) copies */
        double m = 0, x = 0;
        while (*p >= '0' && *p <= '9')
          m = m * 10 + (*p++ - '0');
        if (*p == ',')
          for (p++; *p >= '0' && *p <= '9';)
            x = x * 10 + (*p++ - '0');
        k = (m > x ? m : x) + 1;
      }
      cur += last * k;
      last *= k;
      quant = 1;
      if (cur > PATTERN_MAX_COST)
        break;
      continue;
    } else {
      p++;
    }
    cur += atom;
    last = atom;
    quant = 0;
    if (cur > PATTERN_MAX_COST)
      break;
  }
  for (size_t i = 0; i < depth; i++)
    cur += st[i].cur;
  if (cur > PATTERN_MAX_COST) {
    fmt(why, n, "too complex: its repetitions make more than %.0f copies",
        PATTERN_MAX_COST);
    return -1;
  }
  return 0;
}

static int parse_param(struct loader *L, struct engine_param *p,
                       const ynode *k, const ynode *m)
{
  const ynode *tv, *dv, *pv, *v;
  enum engine_param_type natural = ENGINE_PARAM_STRING;
  char subj[300], hint[640];
  int rc;

  if ((p->name = strdup(k->text)) == NULL)
    return nomem(L);
  p->pos = (struct engine_pos){k->line, k->col};
  if (!name_ok(p->name, N_PARAM))
    return lerr(L, k, "invalid param name '%s' (hint: use letters, digits and "
                "'_', not starting with a digit)", p->name);
  fmt(subj, sizeof subj, "param '%s'", p->name);
  if (m->type != Y_MAP)
    return lerr(L, m, "param '%s' must be a mapping, got %s (hint: write '%s: "
                "{ default: VALUE }', or '%s: {}' for a required string)",
                p->name, tname(m), p->name, p->name);
  if ((rc = check_keys(L, m, param_keys, subj)) != 0)
    return rc;
  p->type = ENGINE_PARAM_STRING;
  if ((tv = map_get(m, "type", NULL)) != NULL) {
    char *t = NULL;
    int ti;
    if ((rc = get_str(L, tv, "type", subj, &t)) != 0)
      return rc;
    ti = in_list(type_names, t);
    free(t);
    if (ti < 0) {
      const char *s = suggest(tv->text, list_names(type_names));
      if (s != NULL)
        snprintf(hint, sizeof hint, "did you mean '%s'?", s);
      else
        snprintf(hint, sizeof hint, "use string, integer, number, boolean, "
                 "list or object");
      return lerr(L, tv, "unknown type '%s' in %s (hint: %s)", tv->text, subj,
                  hint);
    }
    p->type = (enum engine_param_type)ti;
  }
  if ((dv = map_get(m, "default", NULL)) != NULL) {
    if (dv->type == Y_SEQ)
      natural = ENGINE_PARAM_LIST;
    else if (dv->type == Y_MAP)
      natural = ENGINE_PARAM_OBJECT;
    else switch (stype_of(dv)) {
    case S_NULL:
      return lerr(L, dv, "'default' in %s cannot be null (hint: remove "
                  "'default' to make the param required)", subj);
    case S_BOOL: natural = ENGINE_PARAM_BOOLEAN; break;
    case S_INT: natural = ENGINE_PARAM_INTEGER; break;
    case S_FLOAT: natural = ENGINE_PARAM_NUMBER; break;
    case S_STR: natural = ENGINE_PARAM_STRING; break;
    }
    if (tv == NULL)
      p->type = natural;
    else if (natural != p->type && !(p->type == ENGINE_PARAM_NUMBER &&
                                     natural == ENGINE_PARAM_INTEGER))
      return lerr(L, dv, "'default' in %s must be %s, got %s (hint: the param "
                  "is declared 'type: %s')", subj, type_a[p->type], tname(dv),
                  type_names[p->type]);
    if ((rc = node_json(L, dv, &p->default_value)) != 0)
      return rc;
  }
  if ((pv = map_get(m, "pattern", NULL)) != NULL) {
    regex_t re;
    int rerr;
    if ((rc = get_str(L, pv, "pattern", subj, &p->pattern)) != 0)
      return rc;
    if (p->type != ENGINE_PARAM_STRING)
      return lerr(L, pv, "'pattern' in %s only applies to strings (hint: "
                  "remove it, or declare 'type: string')", subj);
    if (pattern_refused(p->pattern, hint, sizeof hint) != 0)
      return lerr(L, pv, "invalid 'pattern' in %s: %s (hint: patterns are "
                  "POSIX extended regular expressions)", subj, hint);
    if ((rerr = regcomp(&re, p->pattern, REG_EXTENDED | REG_NOSUB)) != 0) {
      char rmsg[256];
      regerror(rerr, &re, rmsg, sizeof rmsg);
      return lerr(L, pv, "invalid 'pattern' in %s: %s (hint: patterns are "
                  "POSIX extended regular expressions)", subj, rmsg);
    }
    rerr = dv != NULL && dv->type == Y_SCALAR
               ? regexec(&re, dv->text, 0, NULL, 0) : 0;
    /* kept: every value given to the param is matched against it */
    if (rerr == 0 && (p->re = malloc(sizeof *p->re)) != NULL)
      *p->re = re;
    else
      regfree(&re);
    if (rerr != 0)
      return lerr(L, dv, "'default' in %s must match '%s', got '%s' (hint: "
                  "change the default or the pattern)", subj, p->pattern,
                  dv->text);
  }
  if ((v = map_get(m, "description", NULL)) != NULL &&
      (rc = get_str(L, v, "description", subj, &p->description)) != 0)
    return rc;
  if ((v = map_get(m, "secret", NULL)) != NULL) {
    if (v->type != Y_SCALAR || stype_of(v) != S_BOOL)
      return lerr(L, v, "'secret' in %s must be a boolean, got %s (hint: write true or false, without quotes)", subj,
                  tname(v));
    p->secret = is_true(v);
    if (p->secret && p->type != ENGINE_PARAM_STRING)
      return lerr(L, v, "'secret' in %s only applies to strings (hint: "
                  "remove it, or declare 'type: string')", subj);
    size_t dn = dv != NULL && dv->type == Y_SCALAR
                    ? engine_secret_too_short(dv->text) : 0;
    if (p->secret && dn > 0)
      return lerr(L, dv, "the default of secret param '%s' is %zu "
                  "character%s long: too short to keep out of the output "
                  "(hint: give it at least %d characters, or no default)",
                  p->name, dn, dn == 1 ? "" : "s", ENGINE_SECRET_MIN);
  }
  /* The release is the label the journal records for the run, shows in
   * `history` and matches in promotion gates: a text, never a secret. */
  if (strcmp(p->name, "release") == 0 && p->type != ENGINE_PARAM_STRING) {
    if (tv != NULL)
      snprintf(hint, sizeof hint, "declare it 'type: string'%s",
               dv ? " and quote its default" : "");
    else
      snprintf(hint, sizeof hint, "quote its default: 'default: \"%.40s\"'",
               dv->type == Y_SCALAR ? dv->text : "1.0.0");
    return lerr(L, tv ? tv : dv, "param 'release' must be a string, not %s: "
                "it is the label cairn records, shows and promotes (hint: "
                "%s)", type_a[p->type], hint);
  }
  if (strcmp(p->name, "release") == 0 && p->secret)
    return lerr(L, map_get(m, "secret", NULL), "param 'release' cannot be "
                "secret: cairn records the release in the clear, in the "
                "journal and in 'cairn history' (hint: remove 'secret: "
                "true', and pass secrets as other params or 'secrets')");
  return 0;
}

static int parse_params(struct loader *L, const ynode *m)
{
  struct engine_workflow *wf = L->wf;
  int rc;

  if ((rc = want_map(L, m, "params", "the workflow")) != 0 || m->n == 0)
    return rc;
  if ((wf->params = calloc(m->n / 2, sizeof *wf->params)) == NULL)
    return nomem(L);
  wf->nparams = m->n / 2;
  for (size_t i = 0; i < wf->nparams; i++)
    if ((rc = parse_param(L, &wf->params[i], m->kids[2 * i],
                          m->kids[2 * i + 1])) != 0)
      return rc;
  return nindex_build(L, &L->params,
                      (struct names){&wf->params[0].name, sizeof *wf->params,
                                     wf->nparams});
}

static int parse_secrets(struct loader *L, const ynode *m)
{
  struct engine_workflow *wf = L->wf;
  const struct named *first = NULL, *second = NULL;
  int rc;

  if (m->type != Y_SEQ)
    return lerr(L, m, "'secrets' in the workflow must be a list of names, got "
                "%s", tname(m));
  if (m->n == 0)
    return 0;
  if ((wf->secrets = calloc(m->n, sizeof *wf->secrets)) == NULL)
    return nomem(L);
  wf->nsecrets = m->n;
  for (size_t i = 0; i < m->n; i++) {
    const ynode *v = m->kids[i];
    if (!is_str(v))
      return lerr(L, v, "secret names must be strings, got %s", tname(v));
    if (!name_ok(v->text, N_SECRET))
      return lerr(L, v, "invalid secret name '%s' (hint: use upper-case "
                  "letters, digits and '_', e.g. 'JWT_SECRET')", v->text);
    if ((wf->secrets[i] = strdup(v->text)) == NULL)
      return nomem(L);
  }
  if ((rc = nindex_build(L, &L->secrets,
                         (struct names){wf->secrets, sizeof *wf->secrets,
                                        wf->nsecrets})) != 0)
    return rc;
  /* a repeat: the earliest second occurrence, with its group's first */
  for (size_t k = 1; k < L->secrets.n; k++) {
    const struct named *a = &L->secrets.v[k - 1], *b = &L->secrets.v[k];
    if (strcmp(a->name, b->name) == 0 && (k < 2 ||
        strcmp(L->secrets.v[k - 2].name, a->name) != 0) &&
        (second == NULL || b->i < second->i)) {
      first = a;
      second = b;
    }
  }
  if (second != NULL)
    return lerr(L, m->kids[second->i], "duplicate secret '%s' (hint: first "
                "listed on line %d)", second->name, m->kids[first->i]->line);
  return 0;
}

static const char *const env_keys[] = {"vars", "after", "approvals",
                                       "approvers", NULL};


/* After every environment is read: `after` names one, without cycles. */
static int check_after(struct loader *L, const ynode *m)
{
  struct engine_workflow *wf = L->wf;
  struct names nl = {&wf->envs[0].name, sizeof *wf->envs, wf->nenvs};
  size_t n = wf->nenvs;
  size_t *mark = calloc(n, sizeof *mark);
  int *after = malloc(n * sizeof *after); /* index, or -1 */
  char hint[640], path[640];
  int rc = 0;

  if (mark == NULL || after == NULL) {
    rc = nomem(L);
    goto out;
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    const char *name = wf->envs[i].after;
    if ((after[i] = nindex_find(&L->envs, name)) >= 0 || name == NULL)
      continue;
    name_hint(hint, sizeof hint, name, nl, "environments are");
    rc = lerr(L, map_get(m->kids[2 * i + 1], "after", NULL),
              "unknown environment '%s' in 'after' of environment '%s' "
              "(hint: %s)", name, wf->envs[i].name, hint);
  }
  /* Follow each chain, marking it with where it began; meeting that mark
   * again closes a cycle. */
  for (size_t i = 0; i < n && rc == 0; i++) {
    int j = (int)i, first;
    while (j >= 0 && mark[j] == 0) {
      mark[j] = i + 1;
      j = after[j];
    }
    if (j < 0 || mark[j] != i + 1)
      continue;
    first = j; /* report the cycle at its first environment */
    for (int c = after[j]; c != j; c = after[c])
      if (c < first)
        first = c;
    snprintf(path, sizeof path, "%s", wf->envs[first].name);
    j = first;
    do {
      j = after[j];
      append(path, sizeof path, " -> ");
      append(path, sizeof path, wf->envs[j].name);
    } while (j != first);
    rc = lerr(L, map_get(m->kids[2 * first + 1], "after", NULL),
              "environment '%s' comes after itself: %s (hint: remove one of "
              "these 'after' keys)", wf->envs[first].name, path);
  }
out:
  free(mark);
  free(after);
  return rc;
}

static int parse_envs(struct loader *L, const ynode *m)
{
  struct engine_workflow *wf = L->wf;
  char subj[300];
  int rc;

  if ((rc = want_map(L, m, "environments", "the workflow")) != 0 || m->n == 0)
    return rc;
  if ((wf->envs = calloc(m->n / 2, sizeof *wf->envs)) == NULL)
    return nomem(L);
  wf->nenvs = m->n / 2;
  for (size_t i = 0; i < wf->nenvs; i++) {
    const ynode *k = m->kids[2 * i], *v = m->kids[2 * i + 1], *x;
    struct engine_environment *e = &wf->envs[i];
    if ((e->name = strdup(k->text)) == NULL)
      return nomem(L);
    e->pos = (struct engine_pos){k->line, k->col};
    if (!name_ok(e->name, N_STATE))
      return lerr(L, k, "invalid environment name '%s' (hint: use letters, "
                  "digits, '_' and '-')", e->name);
    fmt(subj, sizeof subj, "environment '%s'", e->name);
    if (v->type != Y_MAP)
      return lerr(L, v, "environment '%s' must be a mapping, got %s (hint: "
                  "write '%s: {}' for an environment without settings)",
                  e->name, tname(v), e->name);
    if ((rc = check_keys(L, v, env_keys, subj)) != 0)
      return rc;
    if ((x = map_get(v, "vars", NULL)) != NULL) {
      if ((rc = want_map(L, x, "vars", subj)) != 0 ||
          (rc = node_json(L, x, &e->vars)) != 0)
        return rc;
    } else if ((e->vars = json_object()) == NULL) {
      return nomem(L);
    }
    if ((x = map_get(v, "after", NULL)) != NULL &&
        (rc = get_str(L, x, "after", subj, &e->after)) != 0)
      return rc;
    if ((x = map_get(v, "approvals", NULL)) != NULL &&
        (rc = get_int(L, x, "approvals", subj, 0, "", &e->approvals)) != 0)
      return rc;
    if ((x = map_get(v, "approvers", NULL)) != NULL &&
        (rc = get_names(L, x, "approvers", subj, &e->approvers,
                        &e->napprovers)) != 0)
      return rc;
    if ((rc = check_approvers(L, v, subj, e->approvals, e->napprovers,
                              e->approvers != NULL)) != 0)
      return rc;
  }
  if ((rc = nindex_build(L, &L->envs,
                         (struct names){&wf->envs[0].name, sizeof *wf->envs,
                                        wf->nenvs})) != 0 ||
      (rc = check_after(L, m)) != 0)
    return rc;
  if ((L->vars = json_object()) == NULL)
    return nomem(L);
  for (size_t i = 0; i < wf->nenvs; i++) {
    const char *key;
    json_t *v;
    json_object_foreach(wf->envs[i].vars, key, v) {
      if (json_object_set_new(L->vars, key, json_true()) != 0)
        return nomem(L);
    }
  }
  return 0;
}

/* ---- the states array ---------------------------------------------------- */

/* A zeroed array of n states; *mapped gets the bytes of the huge pages
 * it is in (from 256 KiB up), or 0 when it is calloc'd. A 10,000-state
 * workflow's array is 3 MB, which costs some 740 page faults in 4 KiB
 * pages and two in huge ones (common/huge.h). */
static struct engine_state *states_new(size_t n, size_t *mapped)
{
  size_t bytes = n * sizeof(struct engine_state);
  struct engine_state *s = NULL;

  *mapped = 0;
  if (bytes / sizeof(struct engine_state) == n && bytes >= CAIRN_HUGE / 8 &&
      (s = cairn_huge_alloc(bytes, 1)) != NULL) {
    *mapped = bytes;
    return s;
  }
  return calloc(n ? n : 1, sizeof *s);
}

static void states_release(struct engine_state *s, size_t mapped)
{
  if (mapped)
    cairn_huge_free(s, mapped);
  else
    free(s);
}

/* ---- the graph ---------------------------------------------------------- */

/* Every state reachable from start (a search forwards), and every state
 * able to end the run (a search backwards from the states that can: the
 * terminals, a do or parallel state whose on_failure ends the run, a
 * choice without default). The edges (next, on_failure, default, then
 * each choice; none for the end of the run) are looked up once, into
 * `to`, in CSR form by source state (`at`). */
/* A breadth-first search from the tail states in queue (marked): marks
 * every state reachable over the edges edge[at[i] .. at[i + 1]) of each
 * state i. queue has room for every state. */
static void spread(size_t *queue, size_t tail, const size_t *at,
                   const size_t *edge, char *mark)
{
  for (size_t head = 0; head < tail;) {
    size_t i = queue[head++];
    for (size_t k = at[i]; k < at[i + 1]; k++)
      if (!mark[edge[k]]) {
        mark[edge[k]] = 1;
        queue[tail++] = edge[k];
      }
  }
}

static int check_graph(struct loader *L)
{
  const struct engine_workflow *wf = L->wf;
  size_t n = wf->nstates, tail = 0, nedges = 0;
  size_t *queue = malloc(n * sizeof *queue);
  size_t *at = calloc(n + 1, sizeof *at), *first = calloc(n + 1, sizeof *first);
  size_t *fill = malloc(n * sizeof *fill), *from = NULL, *to = NULL;
  char *seen = calloc(n, 1), *ends = calloc(n, 1);
  int rc = 0;

  if (queue == NULL || at == NULL || first == NULL || fill == NULL ||
      seen == NULL || ends == NULL) {
    rc = nomem(L);
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    nedges += 3 + wf->states[i].nwhens;
  if ((to = malloc(nedges * sizeof *to)) == NULL) {
    rc = nomem(L);
    goto out;
  }
  nedges = 0;
  for (size_t i = 0; i < n; i++) {
    const struct engine_state *s = &wf->states[i];
    at[i] = nedges;
    for (size_t j = 0; j < 3 + s->nwhens; j++) {
      const char *name = j == 0 ? s->next : j == 1 ? s->on_failure
                         : j == 2 ? s->default_next : s->whens[j - 3].next;
      int t = state_index(wf, name);
      if (t >= 0) {
        to[nedges++] = (size_t)t;
        first[t + 1]++;
      }
    }
  }
  at[n] = nedges;

  queue[0] = (size_t)state_index(wf, wf->start);
  seen[queue[0]] = 1;
  spread(queue, 1, at, to, seen);
  for (size_t i = 0; i < n; i++)
    if (!seen[i]) {
      rc = lerr_at(L, wf->states[i].pos.line, wf->states[i].pos.col,
                   "state '%s' is unreachable from '%s' (hint: go to it with "
                   "next, on_failure or a choice, or remove it)",
                   wf->states[i].name, wf->start);
      goto out;
    }

  for (size_t t = 0; t < n; t++) {
    first[t + 1] += first[t];
    fill[t] = first[t];
  }
  if ((from = malloc((nedges ? nedges : 1) * sizeof *from)) == NULL) {
    rc = nomem(L);
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const struct engine_state *s = &wf->states[i];
    for (size_t k = at[i]; k < at[i + 1]; k++)
      from[fill[to[k]]++] = i;
    if (s->kind == ENGINE_SUCCEED || s->kind == ENGINE_FAIL ||
        (s->kind == ENGINE_CHOICE && s->default_next == NULL) ||
        ((s->kind == ENGINE_DO || s->kind == ENGINE_PARALLEL ||
          s->kind == ENGINE_USE || s->kind == ENGINE_MAP) &&
         (!strcmp(s->on_failure, "rollback") ||
          !strcmp(s->on_failure, "fail")))) {
      ends[i] = 1;
      queue[tail++] = i;
    }
  }
  spread(queue, tail, first, from, ends);
  for (size_t i = 0; i < n; i++)
    if (!ends[i]) {
      rc = lerr_at(L, wf->states[i].pos.line, wf->states[i].pos.col,
                   "state '%s' has no path to a succeed or fail state (hint: "
                   "give its loop a way out, e.g. a choice 'default' that "
                   "leads to a terminal)", wf->states[i].name);
      goto out;
    }

  /* A loop of choices alone runs nothing between its decisions, so
   * nothing changes what they decide: once taken it never ends. Found
   * by a depth-first walk of the choices (seen: 1 on the walk's path, 2
   * done; queue the path, fill each one's next edge). */
  memset(seen, 0, n);
  for (size_t r = 0; r < n && rc == 0; r++) {
    size_t depth = 0;
    if (wf->states[r].kind != ENGINE_CHOICE || seen[r])
      continue;
    queue[depth] = r;
    fill[depth++] = at[r];
    seen[r] = 1;
    while (depth > 0) {
      size_t i = queue[depth - 1];
      if (fill[depth - 1] == at[i + 1]) {
        seen[i] = 2;
        depth--;
        continue;
      }
      size_t t = to[fill[depth - 1]++];
      if (wf->states[t].kind != ENGINE_CHOICE || seen[t] == 2)
        continue;
      if (seen[t] == 0) {
        seen[t] = 1;
        queue[depth] = t;
        fill[depth++] = at[t];
        continue;
      }
      /* t is on the path: the path from t back to it is the loop */
      char loop[600];
      size_t len = 0, k = depth;
      while (k > 0 && queue[k - 1] != t)
        k--;
      for (size_t m = k - 1; m < depth && len < sizeof loop; m++)
        len += (size_t)snprintf(loop + len, sizeof loop - len, "%s → ",
                                wf->states[queue[m]].name);
      if (len < sizeof loop)
        snprintf(loop + len, sizeof loop - len, "%s", wf->states[t].name);
      rc = lerr_at(L, wf->states[t].pos.line, wf->states[t].pos.col,
                   "the choices %s form a loop that runs nothing between "
                   "its decisions, so nothing can change them and once "
                   "taken it never ends (hint: put an action or a wait "
                   "state in the loop, or lead the branch elsewhere)", loop);
      break;
    }
  }
out:
  free(queue);
  free(at);
  free(first);
  free(fill);
  free(from);
  free(to);
  free(seen);
  free(ends);
  return rc;
}

/* ---- the workflow ------------------------------------------------------- */

static const char *const top_keys[] = {"cairn", "name", "description",
                                       "params", "secrets", "environments",
                                       "start", "states", "outputs", NULL};

static int parse_states_and_start(struct loader *L, const ynode *r)
{
  struct engine_workflow *wf = L->wf;
  const ynode *m = map_get(r, "states", NULL), *v;
  int rc;

  if (m == NULL)
    return lerr(L, r, "missing key 'states' in the workflow (hint: add "
                "'states:' with at least one state)");
  if ((rc = want_map(L, m, "states", "the workflow")) != 0)
    return rc;
  if (m->n == 0)
    return lerr(L, m, "'states' in the workflow is empty (hint: add at least "
                "one state)");
  if ((wf->states = states_new(m->n / 2, &wf->states_mapped)) == NULL ||
      (L->kinds = calloc(m->n / 2, sizeof *L->kinds)) == NULL ||
      (L->subs = calloc(m->n / 2, sizeof *L->subs)) == NULL)
    return nomem(L);
  L->nsubs = m->n / 2;
  wf->nstates = m->n / 2;
  for (size_t i = 0; i < wf->nstates; i++) {
    if ((wf->states[i].name = strdup(m->kids[2 * i]->text)) == NULL)
      return nomem(L);
    L->kinds[i] = kind_of(m->kids[2 * i + 1], NULL);
  }
  if (names_index(wf) != 0)
    return nomem(L);
  if ((v = map_get(r, "start", NULL)) == NULL)
    return lerr(L, r, "missing key 'start' in the workflow (hint: add 'start: "
                "%s')", wf->states[0].name);
  if ((rc = get_str(L, v, "start", "the workflow", &wf->start)) != 0 ||
      (rc = check_target(L, v, wf->start, "'start'", "", 0)) != 0)
    return rc;
  for (size_t i = 0; i < wf->nstates; i++)
    if ((rc = parse_state(L, i, m->kids[2 * i], m->kids[2 * i + 1])) != 0)
      return rc;
  return check_graph(L);
}

static int parse_workflow(struct loader *L, const ynode *r)
{
  struct engine_workflow *wf = L->wf;
  const ynode *v;
  long long ver;
  int rc;

  if (r == NULL)
    return lerr_at(L, 1, 1, "the file is empty (hint: a workflow starts with "
                   "'cairn: 1')");
  if (r->type != Y_MAP)
    return lerr(L, r, "a workflow must be a mapping, got %s (hint: a workflow "
                "starts with 'cairn: 1')", tname(r));
  if ((v = map_get(r, "cairn", NULL)) == NULL)
    return lerr(L, r, "missing key 'cairn' in the workflow (hint: add 'cairn: "
                "1' as the first line)");
  if (v->type != Y_SCALAR || stype_of(v) != S_INT)
    return lerr(L, v, "'cairn' in the workflow must be an integer, got %s "
                "(hint: write 'cairn: 1')", tname(v));
  if (int_of(v, &ver) != 0 || ver != 1)
    return lerr(L, v, "unsupported format version '%s' (hint: this cairn "
                "reads 'cairn: 1')", v->text);
  if ((rc = check_keys(L, r, top_keys, "the workflow")) != 0)
    return rc;
  if ((v = map_get(r, "name", NULL)) == NULL)
    return lerr(L, r, "missing key 'name' in the workflow (hint: add 'name: "
                "my-app')");
  if ((rc = get_str(L, v, "name", "the workflow", &wf->name)) != 0)
    return rc;
  if (!name_ok(wf->name, N_WORKFLOW))
    return lerr(L, v, "invalid workflow name '%s' (hint: use lower-case "
                "letters, digits, '_', '.' and '-', starting with a letter or "
                "digit)", wf->name);
  if ((v = map_get(r, "description", NULL)) != NULL &&
      (rc = get_str(L, v, "description", "the workflow",
                    &wf->description)) != 0)
    return rc;
  if ((v = map_get(r, "params", NULL)) != NULL &&
      (rc = parse_params(L, v)) != 0)
    return rc;
  if ((v = map_get(r, "secrets", NULL)) != NULL &&
      (rc = parse_secrets(L, v)) != 0)
    return rc;
  if ((v = map_get(r, "environments", NULL)) != NULL &&
      (rc = parse_envs(L, v)) != 0)
    return rc;
  if ((rc = parse_states_and_start(L, r)) != 0)
    return rc;
  if ((v = map_get(r, "outputs", NULL)) != NULL) {
    struct tctx t = {.L = L, .state = SIZE_MAX};
    if ((rc = want_map(L, v, "outputs", "the workflow")) != 0 ||
        (rc = node_json(L, v, &wf->outputs)) != 0 ||
        (rc = check_tree(&t, v, "the outputs of the workflow")) != 0)
      return rc;
  } else if ((wf->outputs = json_object()) == NULL) {
    return nomem(L);
  }
  return 0;
}

/* ---- inlining used workflows -------------------------------------------- */

/* "PREFIX" + name, or NULL for NULL and the on_failure ends. */
static int prefixed(char **name, const char *prefix, int keep_ends)
{
  char *p;
  if (*name == NULL ||
      (keep_ends && (!strcmp(*name, "rollback") || !strcmp(*name, "fail"))))
    return 0;
  if ((p = malloc(strlen(prefix) + strlen(*name) + 1)) == NULL)
    return -1;
  strcpy(p, prefix);
  strcat(p, *name);
  free(*name);
  *name = p;
  return 0;
}

/* Moves the states and frames of sub (already inlined itself) into
 * states/frames after the use state at index ui, renaming them under
 * "USE/". sub keeps only what engine_workflow_destroy frees. */
static int inline_one(struct loader *L, struct engine_state *states,
                      size_t *ns, struct engine_frame *frames, size_t *nf,
                      size_t ui, struct engine_workflow *sub)
{
  struct engine_state *u = &states[ui];
  size_t f = (*nf)++, base = *nf, first = *ns;
  struct engine_frame *fr = &frames[f];
  char *prefix = malloc(strlen(u->name) + 2);

  if (prefix == NULL)
    return nomem(L);
  sprintf(prefix, "%s/", u->name);
  memset(fr, 0, sizeof *fr);
  fr->prefix = prefix;
  fr->use_state = ui;
  fr->parent = u->frame;
  fr->file = sub->file;
  sub->file = NULL;
  memcpy(fr->sha256, sub->sha256, sizeof fr->sha256);
  fr->params = sub->params;
  fr->nparams = sub->nparams;
  sub->params = NULL;
  sub->nparams = 0;
  fr->outputs = sub->outputs;
  sub->outputs = NULL;
  u->use_frame = (int)f;
  for (size_t i = 0; i < sub->nframes; i++) {
    struct engine_frame *g = &frames[(*nf)++];
    *g = sub->frames[i];
    memset(&sub->frames[i], 0, sizeof sub->frames[i]);
    if (prefixed(&g->prefix, prefix, 0) != 0 ||
        prefixed(&g->start, prefix, 0) != 0)
      return nomem(L);
    g->use_state += first;
    g->parent = g->parent < 0 ? (int)f : g->parent + (int)base;
  }
  free(sub->frames);
  sub->frames = NULL;
  sub->nframes = 0;
  for (size_t i = 0; i < sub->nstates; i++) {
    struct engine_state *s = &states[(*ns)++];
    *s = sub->states[i];
    memset(&sub->states[i], 0, sizeof sub->states[i]);
    s->frame = s->frame < 0 ? (int)f : s->frame + (int)base;
    if (s->use_frame >= 0)
      s->use_frame += (int)base;
    if (prefixed(&s->name, prefix, 0) || prefixed(&s->next, prefix, 0) ||
        prefixed(&s->default_next, prefix, 0) ||
        prefixed(&s->on_failure, prefix, 1))
      return nomem(L);
    for (size_t j = 0; j < s->nwhens; j++)
      if (prefixed(&s->whens[j].next, prefix, 0))
        return nomem(L);
  }
  fr->start = sub->start;
  sub->start = NULL;
  if (prefixed(&fr->start, prefix, 0) != 0)
    return nomem(L);
  states_release(sub->states, sub->states_mapped);
  sub->states_mapped = 0;
  sub->states = NULL;
  sub->nstates = 0;
  return 0;
}

/* An approval state takes its approvals and approvers from itself or
 * else the run's environment (engine_approval_rule): each is checked
 * alone as it is parsed, but a mix of the two (a state listing two
 * approvers in an environment that needs three approvals) can need more
 * approvals than it has approvers, a gate nobody can pass. Said at the
 * state, or for a state of a used workflow at the top use state. */
static int check_approval_envs(struct loader *L)
{
  const struct engine_workflow *wf = L->wf;

  for (size_t i = 0; i < wf->nstates; i++) {
    const struct engine_state *st = &wf->states[i];
    if (st->kind != ENGINE_APPROVAL)
      continue;
    for (size_t k = 0; k < wf->nenvs; k++) {
      const struct engine_environment *e = &wf->envs[k];
      char *const *approvers;
      size_t n;
      int need;
      engine_approval_rule(wf, st, e->name, &need, &approvers, &n);
      if (n == 0 || (size_t)need <= n)
        continue;
      struct engine_pos at = st->pos;
      int f = st->frame;
      while (f >= 0 && wf->frames[f].parent >= 0)
        f = wf->frames[f].parent;
      if (f >= 0)
        at = wf->states[wf->frames[f].use_state].pos;
      return lerr_at(L, at.line, at.col,
                     "approval state '%s' can never pass in environment "
                     "'%s': it needs %d approvals (%s) but only %zu "
                     "approver%s count (%s) (hint: lower 'approvals' or "
                     "list more approvers)", st->name, e->name, need,
                     st->approvals > 0 ? "its own" : "the environment's",
                     n, n == 1 ? "" : "s",
                     st->approvers ? "its own" : "the environment's");
    }
  }
  return 0;
}

/* Replaces each use state's file by its states, inlined (see struct
 * engine_frame), and makes the workflow's hash cover the used files. */
static int inline_uses(struct loader *L)
{
  struct engine_workflow *wf = L->wf;
  size_t total = 0, ftotal = 0, ns = 0, nf = 0, mapped = 0;
  struct engine_state *states;
  struct engine_frame *frames;
  int rc = 0;

  for (size_t i = 0; i < wf->nstates; i++) {
    total++;
    if (L->subs[i]) {
      total += L->subs[i]->nstates;
      ftotal += 1 + L->subs[i]->nframes;
    }
  }
  if (ftotal == 0)
    return 0;
  states = states_new(total, &mapped);
  frames = calloc(ftotal, sizeof *frames);
  if (states == NULL || frames == NULL) {
    states_release(states, mapped);
    free(frames);
    return nomem(L);
  }
  for (size_t i = 0; i < wf->nstates; i++) {
    states[ns++] = wf->states[i];
    if (L->subs[i] && rc == 0)
      rc = inline_one(L, states, &ns, frames, &nf, ns - 1, L->subs[i]);
  }
  states_release(wf->states, wf->states_mapped);
  wf->states = states;
  wf->states_mapped = mapped;
  wf->nstates = ns;
  wf->frames = frames;
  wf->nframes = nf;
  if (rc != 0)
    return rc;
  {
    /* the run's hash: the file's, then each used file's, in order */
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, wf->sha256, 64);
    for (size_t i = 0; ok && i < nf; i++)
      ok = EVP_DigestUpdate(c, frames[i].sha256, 64);
    ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) && mdlen == 32;
    EVP_MD_CTX_free(c);
    if (!ok)
      return nomem(L);
    for (unsigned i = 0; i < mdlen; i++)
      snprintf(wf->sha256 + 2 * i, 3, "%02x", md[i]);
  }
  return 0;
}

static int load(struct engine_workflow **out, const char *msgname,
                const char *file, const char *buf, size_t len,
                const struct use_stack *up, struct cairn_error *err)
{
  struct use_stack here = {file, up};
  struct loader L = {.fname = msgname, .err = err, .stack = &here};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  ynode *root = NULL;
  int rc;

  if (len > LOAD_MAX_BYTES)
    return cairn_error_set(err, CAIRN_E_WORKFLOW, "%s: error: the file is "
                           "larger than 16 MiB", msgname);
  if ((L.wf = calloc(1, sizeof *L.wf)) == NULL ||
      (L.wf->file = strdup(file)) == NULL) {
    rc = nomem(&L);
    goto out;
  }
  if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
    rc = cairn_error_set(err, CAIRN_E_NOMEM, "cannot compute SHA-256 of '%s'",
                         msgname);
    goto out;
  }
  for (unsigned i = 0; i < mdlen; i++)
    snprintf(L.wf->sha256 + 2 * i, 3, "%02x", md[i]);
  if ((L.strings = engine__ystrings_new()) == NULL)
    rc = nomem(&L);
  else if ((rc = engine__yaml_parse(msgname, buf, len, &root, err)) == 0)
    rc = parse_workflow(&L, root);
  if (rc == 0)
    rc = inline_uses(&L);
  if (rc == 0)
    rc = check_approval_envs(&L);
  /* The runtime looks a state up at every transition: by name, not by a
   * scan, so a 10,000-state workflow is not quadratic (the index the
   * loader used, again when used workflows were inlined). */
  if (rc == 0 && L.wf->nframes > 0 && names_index(L.wf) != 0)
    rc = nomem(&L);
  /* and a branch by its path: the undo planner looks up every completion
   * (a scan of a 1,000-branch state's names was quadratic) */
  if (rc == 0 && (L.wf->branch_at = json_object()) == NULL)
    rc = nomem(&L);
  for (size_t i = 0; rc == 0 && i < L.wf->nstates; i++) {
    const struct engine_state *st = &L.wf->states[i];
    for (size_t b = 0; rc == 0 && st->kind == ENGINE_PARALLEL &&
                       b < st->nbranches; b++) {
      char path[640];
      snprintf(path, sizeof path, "%s/%s", st->name, st->branches[b].name);
      if (json_object_set_new(L.wf->branch_at, path,
                              json_integer((json_int_t)b)) != 0)
        rc = nomem(&L);
    }
  }
out:
  engine__ynode_free(root);
  for (size_t i = 0; i < L.nsubs; i++)
    engine_workflow_destroy(L.subs[i]);
  free(L.subs);
  free(L.kinds);
  free(L.params.v);
  free(L.secrets.v);
  free(L.envs.v);
  json_decref(L.vars);
  engine__ystrings_free(L.strings);
  if (rc != 0) {
    engine_workflow_destroy(L.wf);
    return rc;
  }
  *out = L.wf;
  return 0;
}

int engine_workflow_load_buffer(struct engine_workflow **out, const char *name,
                                const char *buf, size_t len,
                                struct cairn_error *err)
{
  if (out == NULL || name == NULL || (buf == NULL && len > 0))
    return cairn_error_set(err, CAIRN_E_INVAL, "invalid argument");
  *out = NULL;
  return load(out, name, name, buf != NULL ? buf : "", len, NULL, err);
}

int engine_workflow_load(struct engine_workflow **out, const char *path,
                         struct cairn_error *err)
{
  if (out == NULL || path == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "invalid argument");
  return load_file(out, path, NULL, err);
}

static int load_file(struct engine_workflow **out, const char *path,
                     const struct use_stack *stack, struct cairn_error *err)
{
  char *buf = NULL, *abs = NULL, eb[128];
  size_t n = 0, cap = 0, first = 65536, mapped = 0;
  struct stat sb;
  int fd, rc;

  if (out == NULL || path == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL, "invalid argument");
  *out = NULL;
  /* O_NONBLOCK: a FIFO without a writer would block the open for ever;
   * it is refused below, as a device or a folder is (a run reads its
   * file again on resume). A regular file ignores the flag. */
  if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
    return cairn_error_set(err, CAIRN_E_IO, "cannot read '%s': %s", path,
                           strerror_r(errno, eb, sizeof eb));
  if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    close(fd);
    return cairn_error_set(err, CAIRN_E_IO, "cannot read '%s': it is not a "
                           "file (%s) (hint: a workflow is a .yaml file, "
                           "which resume reads again)", path,
                           S_ISDIR(sb.st_mode) ? "a folder"
                                               : "a device, FIFO or socket");
  }
  /* Room for the whole file and the read that finds its end; a large
   * one in huge pages (common/huge.h), given back for the next user. */
  if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
      (uint64_t)sb.st_size < LOAD_MAX_BYTES)
    first = (size_t)sb.st_size + 1 > first ? (size_t)sb.st_size + 1 : first;
  if (first >= CAIRN_HUGE / 8 && (buf = cairn_huge_alloc(first, 0)) != NULL)
    cap = mapped = first;
  for (;;) {
    ssize_t r;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : first;
      char *q;
      if (cap > LOAD_MAX_BYTES) {
        rc = cairn_error_set(err, CAIRN_E_WORKFLOW, "%s: error: the file is "
                             "larger than 16 MiB", path);
        goto out;
      }
      if (nc > LOAD_MAX_BYTES + 1)
        nc = LOAD_MAX_BYTES + 1;
      if ((q = realloc(mapped ? NULL : buf, nc)) == NULL) {
        rc = cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
        goto out;
      }
      if (mapped) { /* it grew as it was read */
        memcpy(q, buf, n);
        cairn_huge_free(buf, mapped);
        mapped = 0;
      }
      buf = q;
      cap = nc;
    }
    if ((r = read(fd, buf + n, cap - n)) < 0) {
      if (errno == EINTR)
        continue;
      rc = cairn_error_set(err, CAIRN_E_IO, "cannot read '%s': %s", path,
                           strerror_r(errno, eb, sizeof eb));
      goto out;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  abs = realpath(path, NULL);
  if (!cairn_utf8_valid(abs != NULL ? abs : path)) {
    /* the journal keeps the path as JSON text: it could not say it */
    rc = cairn_error_set(err, CAIRN_E_WORKFLOW,
                         "%s: its path is not UTF-8 text, which the journal "
                         "needs (hint: rename the file, or the folder it is "
                         "in)", path);
    goto out;
  }
  rc = load(out, path, abs != NULL ? abs : path, buf, n, stack, err);
out:
  close(fd);
  if (mapped)
    cairn_huge_free(buf, mapped);
  else
    free(buf);
  free(abs);
  return rc;
}

/* ---- the model ---------------------------------------------------------- */

static void action_release(struct engine_action *a)
{
  json_decref(a->with);
  if (a->probe != NULL)
    action_release(a->probe);
  if (a->undo != NULL)
    action_release(a->undo);
  if (a->ready != NULL)
    action_release(a->ready);
  free(a->probe);
  free(a->undo);
  free(a->ready);
}

static void params_release(struct engine_param *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(p[i].name);
    json_decref(p[i].default_value);
    free(p[i].pattern);
    if (p[i].re != NULL) {
      regfree(p[i].re);
      free(p[i].re);
    }
    free(p[i].description);
  }
  free(p);
}

void engine_workflow_destroy(struct engine_workflow *wf)
{
  if (wf == NULL)
    return;
  free(wf->name_slots);
  json_decref(wf->branch_at);
  params_release(wf->params, wf->nparams);
  for (size_t i = 0; i < wf->nsecrets; i++)
    free(wf->secrets[i]);
  for (size_t i = 0; i < wf->nenvs; i++) {
    free(wf->envs[i].name);
    json_decref(wf->envs[i].vars);
    free(wf->envs[i].after);
    for (size_t j = 0; j < wf->envs[i].napprovers; j++)
      free(wf->envs[i].approvers[j]);
    free(wf->envs[i].approvers);
  }
  for (size_t i = 0; i < wf->nstates; i++) {
    struct engine_state *s = &wf->states[i];
    free(s->name);
    free(s->description);
    action_release(&s->action);
    for (size_t j = 0; j < s->nbranches; j++) {
      free(s->branches[j].name);
      action_release(&s->branches[j].action);
    }
    for (size_t j = 0; j < s->nwhens; j++) {
      free(s->whens[j].expr);
      free(s->whens[j].next);
    }
    free(s->branches);
    free(s->whens);
    free(s->default_next);
    free(s->next);
    if (s->on_failure != on_failure_default)
      free(s->on_failure);
    free(s->message);
    for (size_t j = 0; j < s->napprovers; j++)
      free(s->approvers[j]);
    free(s->approvers);
    json_decref(s->use_with);
    json_decref(s->map_items);
    free(s->map_key);
    free(s->map_concurrency);
  }
  for (size_t i = 0; i < wf->nframes; i++) {
    struct engine_frame *f = &wf->frames[i];
    free(f->prefix);
    free(f->start);
    free(f->file);
    params_release(f->params, f->nparams);
    json_decref(f->outputs);
  }
  free(wf->frames);
  json_decref(wf->outputs);
  free(wf->file);
  free(wf->name);
  free(wf->description);
  free(wf->secrets);
  free(wf->envs);
  free(wf->start);
  states_release(wf->states, wf->states_mapped);
  free(wf);
}

size_t engine_state_branches_heap(const struct engine_state *st)
{
  size_t bytes = 0;

  if (st == NULL || st->kind != ENGINE_PARALLEL ||
      st->nbranches < ENGINE_RESERVE_BRANCHES)
    return 0;
  for (size_t i = 0; i < st->nbranches; i++) {
    const struct adapter_desc *d = adapter_find(st->branches[i].action.adapter);
    bytes += d != NULL && d->heap_hint ? d->heap_hint : ENGINE_BRANCH_HEAP;
  }
  return bytes;
}

const struct engine_state *engine_workflow_state(
    const struct engine_workflow *wf, const char *name)
{
  int i;
  if (wf == NULL || name == NULL)
    return NULL;
  if (wf->name_slots != NULL) {
    i = state_index(wf, name);
    return i >= 0 ? &wf->states[i] : NULL;
  }
  for (size_t k = 0; k < wf->nstates; k++) /* still loading */
    if (strcmp(wf->states[k].name, name) == 0)
      return &wf->states[k];
  return NULL;
}

const struct engine_state *engine_workflow_path_state(
    const struct engine_workflow *wf, const char *path, const char **key)
{
  const struct engine_state *st = engine_workflow_state(wf, path);
  const char *slash;
  char name[320];

  if (key != NULL)
    *key = NULL;
  if (st != NULL || path == NULL || (slash = strrchr(path, '/')) == NULL)
    return st;
  {
    /* inside an instance of a map over a used workflow, "M/KEY/S" is a
     * path of its state "M/S" */
    size_t il = engine_workflow_instance_len(wf, path);
    const char *rest = il ? path + il : NULL;
    if (rest != NULL && *rest == '/') {
      size_t ml, pl;
      char buf[320];
      const char *k2 = NULL;
      /* the map's name: up to the '/' before KEY */
      for (ml = il; ml > 0 && path[ml - 1] != '/'; ml--)
        ;
      pl = (size_t)snprintf(buf, sizeof buf, "%.*s%s", (int)ml, path, rest + 1);
      if (pl >= sizeof buf)
        return NULL;
      st = engine_workflow_path_state(wf, buf, &k2);
      if (key != NULL && k2 != NULL)
        *key = path + strlen(path) - strlen(k2);
      return st;
    }
  }
  if (key != NULL)
    *key = slash + 1;
  snprintf(name, sizeof name, "%.*s", (int)(slash - path), path);
  return engine_workflow_state(wf, name);
}

size_t engine_workflow_instance_len(const struct engine_workflow *wf,
                                    const char *path)
{
  char name[320];

  for (const char *p = path ? strchr(path, '/') : NULL; p;
       p = strchr(p + 1, '/')) {
    const struct engine_state *st;
    size_t n = (size_t)(p - path);
    if (n >= sizeof name)
      return 0;
    memcpy(name, path, n);
    name[n] = '\0';
    st = engine_workflow_state(wf, name);
    if (st != NULL && st->kind == ENGINE_MAP && st->use_frame >= 0 &&
        p[1] != '\0') {
      size_t kl = strcspn(p + 1, "/");
      /* "M/S/..." with S a state of the used workflow is that state's
       * path in every instance ("M/par/p", a branch of "M/par"), not an
       * instance: a key may not name one of its states */
      if (n + 1 + kl < sizeof name) {
        memcpy(name, path, n + 1 + kl);
        name[n + 1 + kl] = '\0';
        if (engine_workflow_state(wf, name) != NULL)
          return 0;
      }
      return n + 1 + kl;
    }
  }
  return 0;
}

const struct engine_frame *engine_workflow_frame(
    const struct engine_workflow *wf, const struct engine_state *st)
{
  if (wf == NULL || st == NULL || st->frame < 0 ||
      (size_t)st->frame >= wf->nframes)
    return NULL;
  return &wf->frames[st->frame];
}

const struct engine_environment *engine_workflow_env(
    const struct engine_workflow *wf, const char *name)
{
  for (size_t i = 0; wf != NULL && name != NULL && i < wf->nenvs; i++)
    if (strcmp(wf->envs[i].name, name) == 0)
      return &wf->envs[i];
  return NULL;
}

/* wf's environment names, ", " between them, "..." when out is full */
static void env_names(const struct engine_workflow *wf, char *out, size_t n)
{
  size_t used = 0;

  out[0] = '\0';
  for (size_t i = 0; i < wf->nenvs; i++) {
    int w = snprintf(out + used, n - used, "%s%s", i ? ", " : "",
                     wf->envs[i].name);
    if (w < 0 || (size_t)w >= n - used) {
      if (n >= 4)
        memcpy(out + n - 4, "...", 4);
      return;
    }
    used += (size_t)w;
  }
}

int engine_workflow_env_check(const struct engine_workflow *wf,
                              const char *env, struct cairn_error *err)
{
  char names[512];

  if (env != NULL && engine_workflow_env(wf, env) != NULL)
    return 0;
  if (env == NULL && wf->nenvs == 0)
    return 0;
  env_names(wf, names, sizeof names);
  if (env == NULL)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "workflow '%s' declares environments: choose one "
                           "with --env (%s)", wf->name, names);
  if (wf->nenvs == 0)
    return cairn_error_set(err, CAIRN_E_INVAL,
                           "workflow '%s' has no environment '%s' (hint: it "
                           "declares none: leave out --env)", wf->name, env);
  return cairn_error_set(err, CAIRN_E_INVAL,
                         "workflow '%s' has no environment '%s' (hint: its "
                         "environments are %s)", wf->name, env, names);
}

const struct engine_param *engine_param_find(const struct engine_param *params,
                                             size_t n, const char *name)
{
  for (size_t i = 0; name != NULL && i < n; i++)
    if (strcmp(params[i].name, name) == 0)
      return &params[i];
  return NULL;
}

const struct engine_param *engine_workflow_param(
    const struct engine_workflow *wf, const char *name)
{
  return wf ? engine_param_find(wf->params, wf->nparams, name) : NULL;
}

void engine_approval_rule(const struct engine_workflow *wf,
                          const struct engine_state *st, const char *env,
                          int *need, char *const **approvers, size_t *n)
{
  const struct engine_environment *e = engine_workflow_env(wf, env);
  *need = st && st->approvals > 0 ? st->approvals
          : e && e->approvals > 0 ? e->approvals : 1;
  if (st && st->approvers) {
    *approvers = st->approvers;
    *n = st->napprovers;
  } else {
    *approvers = e ? e->approvers : NULL;
    *n = e ? e->napprovers : 0;
  }
}
