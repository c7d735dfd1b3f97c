/* One YAML document as a tree of nodes that remember where they start
 * (engine/yaml_tree.h), built from libyaml's event API, and the YAML 1.2
 * core schema for plain scalars.
 *
 * Collections are attached to their parent when they open; their kids
 * gather on one stack while they are open and get an array of the exact
 * size when they close. Every node, text and kid array comes from one
 * arena, which is freed at once, on error or with the root. Anchors are
 * registered
 * when their node is complete; an alias copies the node (its own position
 * becomes the alias's, the inside keeps the anchor's), after checking
 * the node-count and depth limits, so expansion cannot blow up. */
#include "engine/yaml_tree.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/huge.h"

#define YT_MAX_NODES 1000000 /* after alias expansion */
#define YT_MAX_DEPTH 128     /* nesting, after alias expansion */

/* Short names for this file. */
typedef struct engine__ynode ynode;
#define Y_SCALAR ENGINE__YSCALAR
#define Y_SEQ ENGINE__YSEQ
#define Y_MAP ENGINE__YMAP
#define S_NULL ENGINE__YNULL
#define S_BOOL ENGINE__YBOOL
#define S_INT ENGINE__YINT
#define S_FLOAT ENGINE__YFLOAT
#define S_STR ENGINE__YSTR

struct yctx {
  const char *fname; /* names the file in messages */
  struct cairn_error *err;
};

/* Errors read "FILE:LINE:COL: error: WHAT (hint: HOW)". */
#define lerr_at(L, line, col, ...)                                            \
  engine__yerror((L)->err, (L)->fname, (line), (col), __VA_ARGS__)
#define lerr(L, node, ...) lerr_at((L), (node)->line, (node)->col, __VA_ARGS__)

int engine__yerror(struct cairn_error *err, const char *fname, int line,
                   int col, const char *fmt, ...)
{
  char what[CAIRN_ERRMSG_MAX];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return cairn_error_set(err, CAIRN_E_WORKFLOW, "%s:%d:%d: error: %s", fname,
                         line, col, what);
}

static int nomem(const struct yctx *L)
{
  return cairn_error_set(L->err, CAIRN_E_NOMEM, "out of memory");
}

size_t engine__hash(const char *s)
{
  uint64_t h = 1469598103934665603u; /* FNV-1a */

  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    h = (h ^ *p) * 1099511628211u;
  return (size_t)h;
}

/* ---- the tree ----------------------------------------------------------- */

/* The memory of one tree: nodes, texts and kid arrays carved from large
 * blocks and freed together. A workflow of 10,000 states is some 155,000
 * nodes; a malloc and a free for each, and for each text, cost more than
 * libyaml's parsing. Past YA_HUGE_AFTER bytes (a large workflow's tree
 * takes some 10 MB), the blocks are huge pages where the kernel gives
 * them (common/huge.h): a page fault per 2 MiB instead of per 4 KiB. */
struct yblock {
  struct yblock *next;
  size_t used, size;   /* size: bytes of data */
  int huge;            /* from cairn_huge_alloc, else malloc's */
  max_align_t data[];
};

struct engine__yarena {
  struct yblock *head; /* the block being carved; the rest are full */
  size_t total;        /* bytes of all blocks */
};

#define YA_BLOCK (64 * 1024)
#define YA_HUGE_AFTER ((size_t)1 << 20)

static void ya_free(struct engine__yarena *a)
{
  if (a == NULL)
    return;
  for (struct yblock *k = a->head, *next; k != NULL; k = next) {
    next = k->next;
    if (k->huge)
      cairn_huge_free(k, CAIRN_HUGE);
    else
      free(k);
  }
  free(a);
}

/* What the tree holds needs no more alignment than a pointer. */
#define YA_ALIGN _Alignof(ynode)

/* n bytes aligned for a node, a pointer or text, or NULL when out of
 * memory. */
static void *ya_alloc(struct engine__yarena *a, size_t n)
{
  struct yblock *k = a->head;
  size_t at = 0;
  int own;

  n = (n + YA_ALIGN - 1) & ~(YA_ALIGN - 1);
  if (k != NULL && n <= k->size - k->used) {
    at = k->used;
    k->used += n;
    return (char *)k->data + at;
  }
  own = n > YA_BLOCK / 4; /* large: a block of its own */
  k = !own && a->total >= YA_HUGE_AFTER ? cairn_huge_alloc(CAIRN_HUGE, 0)
                                        : NULL;
  if (k != NULL) {
    k->huge = 1;
    k->size = CAIRN_HUGE - sizeof *k;
  } else {
    size_t size = own ? n : YA_BLOCK;
    if ((k = malloc(sizeof *k + size)) == NULL)
      return NULL;
    k->huge = 0;
    k->size = size;
  }
  a->total += k->size;
  k->used = n;
  if (own && a->head != NULL) {
    /* a large one of its own, behind the block being carved */
    k->next = a->head->next;
    a->head->next = k;
  } else {
    k->next = a->head;
    a->head = k;
  }
  return k->data;
}

void engine__ynode_free(ynode *n)
{
  if (n != NULL)
    ya_free(n->arena);
}

static ynode *ynode_copy(struct engine__yarena *a, const ynode *n)
{
  ynode *c = ya_alloc(a, sizeof *c);

  if (c == NULL)
    return NULL;
  *c = *n;
  c->kids = NULL;
  c->n = 0;
  if (n->text != NULL) {
    size_t len = strlen(n->text) + 1;
    if ((c->text = ya_alloc(a, len)) == NULL)
      return NULL;
    memcpy(c->text, n->text, len);
  }
  if (n->n > 0) {
    if ((c->kids = ya_alloc(a, n->n * sizeof *c->kids)) == NULL)
      return NULL;
    for (; c->n < n->n; c->n++)
      if ((c->kids[c->n] = ynode_copy(a, n->kids[c->n])) == NULL)
        return NULL;
  }
  return c;
}

/* p grown to hold need elements of size bytes; NULL (p untouched) when
 * out of memory. */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
  size_t nc;
  void *q;

  if (need <= *cap)
    return p;
  nc = *cap ? *cap * 2 : 4;
  while (nc < need)
    nc *= 2;
  if ((q = realloc(p, nc * size)) != NULL)
    *cap = nc;
  return q;
}

struct yanchor {
  char *name;
  const ynode *node; /* borrowed from the tree */
};

struct yframe {
  ynode *node;
  char *anchor;  /* registered when the node is complete */
  size_t base;   /* where its kids start on the kid stack */
  size_t *slots; /* a mapping's keys: open addressing, kid index + 1 */
  size_t nslots, used;
};

struct ybuild {
  const struct yctx *L;
  struct engine__yarena *arena;
  struct yframe *stack;
  size_t depth, scap;
  size_t sinit;  /* frames of stack initialised (their slots kept) */
  ynode **kids;  /* the kids of the open collections, innermost last */
  size_t nkids, capkids;
  struct yanchor *anchors;
  size_t nanchors, acap;
  size_t nnodes;
  int ndocs;
  ynode *root;
};

static int mark_err(struct ybuild *b, const yaml_mark_t *m, const char *what)
{
  return lerr_at(b->L, (int)m->line + 1, (int)m->column + 1, "%s", what);
}

static int too_deep(struct ybuild *b, const yaml_mark_t *m)
{
  return lerr_at(b->L, (int)m->line + 1, (int)m->column + 1,
                 "nesting is deeper than %d levels (hint: flatten the data, "
                 "or keep it in a file the step reads)", YT_MAX_DEPTH);
}

/* Makes room for `more` nodes under the limit. */
static int yb_count(struct ybuild *b, size_t more, const yaml_mark_t *m)
{
  char what[160];

  if (more > YT_MAX_NODES - b->nnodes) {
    snprintf(what, sizeof what,
             "the document has more than %d nodes (hint: split the "
             "workflow; an alias counts as a copy of its anchor)",
             YT_MAX_NODES);
    return mark_err(b, m, what);
  }
  b->nnodes += more;
  return 0;
}

static int yb_anchor(struct ybuild *b, char *name, const ynode *node)
{
  struct yanchor *a = grow(b->anchors, &b->acap, b->nanchors + 1, sizeof *a);

  if (a == NULL) {
    free(name);
    return nomem(b->L);
  }
  b->anchors = a;
  a[b->nanchors].name = name;
  a[b->nanchors++].node = node;
  return 0;
}

/* Kid k of f's collection, while it is open. */
static ynode *kid_of(const struct ybuild *b, const struct yframe *f, size_t k)
{
  return b->kids[f->base + k];
}

/* The slot of key text in f's table: where it is, or the empty slot
 * where it would go. The table is never full. */
static size_t key_slot(const struct ybuild *b, const struct yframe *f,
                       const char *text)
{
  size_t i;

  for (i = engine__hash(text) & (f->nslots - 1); f->slots[i] != 0;
       i = (i + 1) & (f->nslots - 1))
    if (strcmp(kid_of(b, f, f->slots[i] - 1)->text, text) == 0)
      break;
  return i;
}

/* Records that kid k of f's mapping is a key; grows the table at half
 * full. */
static int key_add(struct ybuild *b, struct yframe *f, size_t k)
{
  if ((f->used + 1) * 2 > f->nslots) {
    size_t n = f->nslots ? f->nslots * 2 : 16, *old = f->slots;
    if ((f->slots = calloc(n, sizeof *f->slots)) == NULL) {
      f->slots = old;
      return nomem(b->L);
    }
    f->nslots = n;
    free(old);
    for (size_t i = 0; i < k; i += 2)
      f->slots[key_slot(b, f, kid_of(b, f, i)->text)] = i + 1;
  }
  f->slots[key_slot(b, f, kid_of(b, f, k)->text)] = k + 1;
  f->used++;
  return 0;
}

/* Hands node to the tree (as the root, a sequence item, a key or a
 * value). */
static int yb_attach(struct ybuild *b, ynode *node)
{
  struct yframe *f;
  ynode *p;
  int is_key;

  if (b->depth == 0) {
    b->root = node;
    return 0;
  }
  f = &b->stack[b->depth - 1];
  p = f->node;
  is_key = p->type == Y_MAP && p->n % 2 == 0;
  if (is_key) {
    int rc = 0;
    size_t slot;
    if (node->type == Y_MAP && p->n == 0)
      /* `x: {{ params.a }}` reads as a mapping whose first key is one */
      rc = lerr(b->L, node, "mapping keys must be scalars (hint: a value "
                "that starts with '{{' is a template: quote it, as in "
                "\"{{ params.name }}\")");
    else if (node->type != Y_SCALAR)
      rc = lerr(b->L, node, "mapping keys must be scalars (hint: use a "
                "plain name as the key)");
    else if (node->plain && strcmp(node->text, "<<") == 0)
      rc = lerr(b->L, node, "merge keys ('<<') are not supported (hint: "
                "repeat the keys, or alias the whole mapping with '*name')");
    else if (f->nslots > 0 &&
             f->slots[slot = key_slot(b, f, node->text)] != 0)
      rc = lerr(b->L, node, "duplicate key '%s' (hint: first defined on "
                "line %d)", node->text,
                kid_of(b, f, f->slots[slot] - 1)->line);
    if (rc)
      return rc;
  }
  if (b->nkids == b->capkids) {
    ynode **k = grow(b->kids, &b->capkids, b->nkids + 1, sizeof *k);
    if (k == NULL)
      return nomem(b->L);
    b->kids = k;
  }
  b->kids[b->nkids++] = node;
  p->n++;
  return is_key ? key_add(b, f, p->n - 1) : 0;
}

static ynode *yb_new(struct ybuild *b, enum engine__ytype t,
                     const yaml_mark_t *m, int *rc)
{
  ynode *n;

  if ((*rc = yb_count(b, 1, m)) != 0)
    return NULL;
  if ((n = ya_alloc(b->arena, sizeof *n)) == NULL) {
    *rc = nomem(b->L);
    return NULL;
  }
  memset(n, 0, sizeof *n);
  n->type = t;
  n->line = (int)m->line + 1;
  n->col = (int)m->column + 1;
  n->size = 1;
  return n;
}

/* 0 when tag is "!" or the core tag `core` ("str", "map", "seq"), else an
 * error: the core schema is implied, other tags are refused. */
static int yb_tag(struct ybuild *b, const yaml_mark_t *m, const char *tag,
                  const char *core)
{
  static const char prefix[] = "tag:yaml.org,2002:";
  size_t pl = sizeof prefix - 1;
  char what[CAIRN_ERRMSG_MAX];
  int core_form = strncmp(tag, prefix, pl) == 0;

  if (strcmp(tag, "!") == 0 || (core_form && strcmp(tag + pl, core) == 0))
    return 0;
  snprintf(what, sizeof what, "unsupported tag '%s%.200s' (hint: remove it; "
           "only !!str is supported)", core_form ? "!!" : "",
           tag + (core_form ? pl : 0));
  return mark_err(b, m, what);
}

static int yb_scalar(struct ybuild *b, const yaml_event_t *ev)
{
  const char *tag = (const char *)ev->data.scalar.tag;
  const char *val = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  yaml_scalar_style_t style = ev->data.scalar.style;
  ynode *n;
  int rc;

  if (tag != NULL && (rc = yb_tag(b, &ev->start_mark, tag, "str")) != 0)
    return rc;
  if (memchr(val, '\0', len) != NULL)
    return mark_err(b, &ev->start_mark, "NUL character in a scalar (hint: "
                    "remove the \\0 escape)");
  if ((n = yb_new(b, Y_SCALAR, &ev->start_mark, &rc)) == NULL)
    return rc;
  if ((n->text = ya_alloc(b->arena, len + 1)) == NULL)
    return nomem(b->L);
  memcpy(n->text, val, len);
  n->text[len] = '\0';
  n->plain = style == YAML_PLAIN_SCALAR_STYLE && tag == NULL;
  n->quoted = style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
              style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  n->one_line = ev->start_mark.line == ev->end_mark.line &&
                (n->quoted || style == YAML_PLAIN_SCALAR_STYLE);
  if ((rc = yb_attach(b, n)) != 0)
    return rc;
  if (ev->data.scalar.anchor != NULL) {
    char *name = strdup((const char *)ev->data.scalar.anchor);
    if (name == NULL)
      return nomem(b->L);
    return yb_anchor(b, name, n);
  }
  return 0;
}

static int yb_open(struct ybuild *b, const yaml_event_t *ev)
{
  int is_map = ev->type == YAML_MAPPING_START_EVENT;
  const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag
                                          : ev->data.sequence_start.tag);
  const char *anchor = (const char *)(is_map ? ev->data.mapping_start.anchor
                                             : ev->data.sequence_start.anchor);
  struct yframe *st;
  ynode *n;
  int rc;

  if (tag != NULL && (rc = yb_tag(b, &ev->start_mark, tag,
                                  is_map ? "map" : "seq")) != 0)
    return rc;
  if (b->depth >= YT_MAX_DEPTH)
    return too_deep(b, &ev->start_mark);
  if ((st = grow(b->stack, &b->scap, b->depth + 1, sizeof *st)) == NULL)
    return nomem(b->L);
  b->stack = st;
  if ((n = yb_new(b, is_map ? Y_MAP : Y_SEQ, &ev->start_mark, &rc)) == NULL)
    return rc;
  if ((rc = yb_attach(b, n)) != 0)
    return rc;
  if (b->depth == b->sinit) {
    st[b->depth] = (struct yframe){.node = n};
    b->sinit++;
  } else { /* keeps the key table the last mapping at this depth left */
    st[b->depth].node = n;
    st[b->depth].anchor = NULL;
  }
  st[b->depth].base = b->nkids;
  b->depth++;
  if (anchor != NULL && (st[b->depth - 1].anchor = strdup(anchor)) == NULL)
    return nomem(b->L);
  return 0;
}

static int yb_close(struct ybuild *b)
{
  struct yframe *f = &b->stack[--b->depth];
  ynode *n = f->node;
  char *anchor = f->anchor;

  /* The key table is left empty for the next mapping at this depth. */
  if (f->used > 0)
    memset(f->slots, 0, f->nslots * sizeof *f->slots);
  f->used = 0;
  if (n->n > 0) {
    if ((n->kids = ya_alloc(b->arena, n->n * sizeof *n->kids)) == NULL) {
      free(anchor);
      f->anchor = NULL;
      return nomem(b->L);
    }
    memcpy(n->kids, b->kids + f->base, n->n * sizeof *n->kids);
    b->nkids = f->base;
  }
  for (size_t i = 0; i < n->n; i++) {
    n->size += n->kids[i]->size;
    if (n->kids[i]->height + 1 > n->height)
      n->height = (unsigned char)(n->kids[i]->height + 1);
  }
  if (n->height == 0)
    n->height = 1;
  f->anchor = NULL;
  return anchor != NULL ? yb_anchor(b, anchor, n) : 0;
}

static int yb_alias(struct ybuild *b, const yaml_event_t *ev)
{
  const char *name = (const char *)ev->data.alias.anchor;
  const ynode *a = NULL;
  char what[CAIRN_ERRMSG_MAX];
  ynode *c;
  int rc;

  for (size_t i = b->nanchors; i-- > 0 && a == NULL;)
    if (strcmp(b->anchors[i].name, name) == 0)
      a = b->anchors[i].node;
  if (a == NULL) {
    int open = 0;
    for (size_t i = 0; i < b->depth; i++)
      if (b->stack[i].anchor && strcmp(b->stack[i].anchor, name) == 0)
        open = 1;
    if (open)
      snprintf(what, sizeof what, "alias '*%.200s' is inside its own anchor "
               "(hint: recursive aliases are not supported)", name);
    else
      snprintf(what, sizeof what, "unknown alias '*%.200s' (hint: define "
               "'&%.200s' before using it)", name, name);
    return mark_err(b, &ev->start_mark, what);
  }
  if (b->depth + (size_t)a->height > YT_MAX_DEPTH)
    return too_deep(b, &ev->start_mark);
  if ((rc = yb_count(b, a->size, &ev->start_mark)) != 0)
    return rc;
  if ((c = ynode_copy(b->arena, a)) == NULL)
    return nomem(b->L);
  /* The copy stands where the alias is; what is inside keeps its own
   * place (template offsets are not added to an aliased scalar). */
  c->line = (int)ev->start_mark.line + 1;
  c->col = (int)ev->start_mark.column + 1;
  c->one_line = 0;
  return yb_attach(b, c);
}

static int yb_event(struct ybuild *b, const yaml_event_t *ev, int *done)
{
  switch (ev->type) {
  case YAML_STREAM_END_EVENT:
    *done = 1;
    return 0;
  case YAML_DOCUMENT_START_EVENT:
    if (b->ndocs++ > 0)
      return mark_err(b, &ev->start_mark, "more than one document in the "
                      "file (hint: keep one workflow per file, without a "
                      "second '---')");
    return 0;
  case YAML_ALIAS_EVENT:
    return yb_alias(b, ev);
  case YAML_SCALAR_EVENT:
    return yb_scalar(b, ev);
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT:
    return yb_open(b, ev);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    return yb_close(b);
  default:
    return 0;
  }
}

/* The byte that starts character column (0-based, in characters as
 * libyaml counts them) of line (0-based) in buf, or -1 past the end. */
static int char_at(const char *buf, size_t len, size_t line, size_t column)
{
  size_t i = 0;

  for (; line > 0 && i < len; i++)
    if (buf[i] == '\n')
      line--;
  for (; column > 0 && i < len; column--)
    do /* past one UTF-8 character: its lead byte, then continuations */
      i++;
    while (i < len && ((unsigned char)buf[i] & 0xc0) == 0x80);
  return i < len ? (unsigned char)buf[i] : -1;
}

static int yaml_syntax_error(const struct yctx *L, const yaml_parser_t *p,
                             const char *buf, size_t len)
{
  const char *problem = p->problem ? p->problem : "syntax error";
  int line = 1, col = 1;

  if (p->error == YAML_MEMORY_ERROR)
    return nomem(L);
  if (p->error == YAML_READER_ERROR) {
    for (size_t i = 0; i < p->problem_offset && i < len; i++) {
      col++;
      if (buf[i] == '\n') {
        line++;
        col = 1;
      }
    }
    return lerr_at(L, line, col, "malformed YAML: %s (hint: a workflow is "
                   "UTF-8 text without control characters)", problem);
  }
  line = (int)p->problem_mark.line + 1;
  col = (int)p->problem_mark.column + 1;
  /* libyaml only says the character "cannot start any token" */
  if (char_at(buf, len, p->problem_mark.line, p->problem_mark.column) == '\t')
    return lerr_at(L, line, col, "malformed YAML: a tab where YAML wants "
                   "spaces (hint: indent with spaces; a tab may only stand "
                   "inside a quoted string)");
  if (p->context != NULL)
    return lerr_at(L, line, col, "malformed YAML: %s %s started on line %d "
                   "(hint: check the indentation and quoting)", problem,
                   p->context, (int)p->context_mark.line + 1);
  return lerr_at(L, line, col, "malformed YAML: %s (hint: check the "
                 "indentation and quoting)", problem);
}

int engine__yaml_parse(const char *fname, const char *buf, size_t len,
                       ynode **out, struct cairn_error *err)
{
  const struct yctx ctx = {fname, err}, *L = &ctx;
  struct ybuild b = {.L = L};
  yaml_parser_t p;
  yaml_event_t ev;
  int rc = 0, done = 0;

  if ((b.arena = calloc(1, sizeof *b.arena)) == NULL)
    return nomem(L);
  if (!yaml_parser_initialize(&p)) {
    free(b.arena);
    return nomem(L);
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
  while (!done && rc == 0) {
    if (!yaml_parser_parse(&p, &ev)) {
      rc = yaml_syntax_error(L, &p, buf, len);
      break;
    }
    rc = yb_event(&b, &ev, &done);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  for (size_t i = 0; i < b.depth; i++)
    free(b.stack[i].anchor);
  for (size_t i = 0; i < b.sinit; i++)
    free(b.stack[i].slots);
  for (size_t i = 0; i < b.nanchors; i++)
    free(b.anchors[i].name);
  free(b.stack);
  free(b.kids);
  free(b.anchors);
  if (rc != 0 || b.root == NULL) {
    ya_free(b.arena);
    if (rc == 0)
      *out = NULL; /* no document */
    return rc;
  }
  b.root->arena = b.arena;
  *out = b.root;
  return 0;
}

/* ---- scalars: the YAML 1.2 core schema ---------------------------------- */

#define DIGITS "0123456789"

static int all_of(const char *s, const char *set)
{
  return *s != '\0' && s[strspn(s, set)] == '\0';
}

static int is_int(const char *s)
{
  if (s[0] == '0' && s[1] == 'o')
    return all_of(s + 2, "01234567");
  if (s[0] == '0' && s[1] == 'x')
    return all_of(s + 2, DIGITS "abcdefABCDEF");
  if (*s == '-' || *s == '+')
    s++;
  return all_of(s, DIGITS);
}

static int is_float(const char *s)
{
  size_t whole, frac = 0;

  if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))
    return 1;
  if (*s == '-' || *s == '+')
    s++;
  if (!strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, ".INF"))
    return 1;
  whole = strspn(s, DIGITS);
  s += whole;
  if (*s == '.') {
    frac = strspn(++s, DIGITS);
    s += frac;
  }
  if (whole == 0 && frac == 0)
    return 0;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+')
      s++;
    if (strspn(s, DIGITS) == 0)
      return 0;
    s += strspn(s, DIGITS);
  }
  return *s == '\0';
}

/* The type of scalar n's text by the schema (engine__ynode_stype). */
static enum engine__ystype scalar_type(const ynode *n)
{
  const char *s = n->text;

  if (!n->plain)
    return S_STR;
  /* Most plain scalars are names and words: nothing below can match
   * one that does not start with one of these. */
  if (*s && !strchr("~nNtTfF0123456789+-.", *s))
    return S_STR;
  if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
      !strcmp(s, "NULL"))
    return S_NULL;
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") ||
      !strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
    return S_BOOL;
  if (is_int(s))
    return S_INT;
  if (is_float(s))
    return S_FLOAT;
  return S_STR;
}

enum engine__ystype engine__ynode_stype(const ynode *n)
{
  if (n->type != Y_SCALAR)
    return S_STR;
  if (n->stype == 0) /* a memo: the tree's nodes are never const objects */
    ((ynode *)n)->stype = (unsigned char)(1 + scalar_type(n));
  return (enum engine__ystype)(n->stype - 1);
}

static int is_true(const ynode *n)
{
  return n->type == Y_SCALAR && engine__ynode_stype(n) == S_BOOL &&
         n->text[0] != 'f' && n->text[0] != 'F';
}

/* 0, or -1 when out of range. Only for S_INT scalars. */
int engine__ynode_int(const ynode *n, long long *v)
{
  const char *s = n->text;
  int base = 10;

  if (s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    base = s[1] == 'o' ? 8 : 16;
    s += 2;
  }
  errno = 0;
  *v = strtoll(s, NULL, base);
  return errno == ERANGE ? -1 : 0;
}

/* The value of an S_FLOAT or S_INT scalar, NAN when not finite. */
double engine__ynode_num(const ynode *n)
{
  locale_t c;
  double d;

  if (engine__ynode_stype(n) == S_INT) {
    long long v;
    return engine__ynode_int(n, &v) ? NAN : (double)v;
  }
  if (strchr(n->text, 'i') || strchr(n->text, 'I') || strchr(n->text, 'a') ||
      strchr(n->text, 'A'))
    return NAN; /* .inf, .nan */
  c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  d = c ? strtod_l(n->text, NULL, c) : strtod(n->text, NULL);
  if (c)
    freelocale(c);
  return isfinite(d) ? d : NAN;
}

const char *engine__ynode_tname(const ynode *n)
{
  static const char *const names[] = {
    [S_NULL] = "null", [S_BOOL] = "a boolean", [S_INT] = "an integer",
    [S_FLOAT] = "a number", [S_STR] = "a string",
  };
  if (n->type == Y_SEQ)
    return "a list";
  if (n->type == Y_MAP)
    return "a mapping";
  return names[engine__ynode_stype(n)];
}

/* The strings of the JSON made from one tree, one json_t a text: values
 * repeat (commands, hosts, ports), and a string's object and copy cost
 * more than the lookup. Sharing is safe because nothing changes a
 * scalar in place (json_string_set is never called). Open addressing
 * over the strings, each holding a reference. */
struct engine__ystrings {
  json_t **slot;
  size_t nslots, used;
};

struct engine__ystrings *engine__ystrings_new(void)
{
  return calloc(1, sizeof(struct engine__ystrings));
}

void engine__ystrings_free(struct engine__ystrings *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nslots; i++)
    json_decref(t->slot[i]);
  free(t->slot);
  free(t);
}

/* The slot of text in t: where it is, or the empty one where it goes. */
static size_t text_slot(const struct engine__ystrings *t, const char *text)
{
  size_t mask = t->nslots - 1, i = engine__hash(text) & mask;

  while (t->slot[i] != NULL && strcmp(json_string_value(t->slot[i]), text))
    i = (i + 1) & mask;
  return i;
}

/* A new reference to the string text (UTF-8, no NUL), or NULL. */
static json_t *shared_string(struct engine__ystrings *t, const char *text)
{
  size_t i;

  if (t == NULL)
    return json_string(text);
  if ((t->used + 1) * 2 > t->nslots) {
    size_t n = t->nslots ? t->nslots * 2 : 256;
    struct engine__ystrings g = {calloc(n, sizeof *g.slot), n, t->used};
    if (g.slot == NULL)
      return NULL;
    for (size_t k = 0; k < t->nslots; k++)
      if (t->slot[k] != NULL)
        g.slot[text_slot(&g, json_string_value(t->slot[k]))] = t->slot[k];
    free(t->slot);
    *t = g;
  }
  i = text_slot(t, text);
  if (t->slot[i] == NULL) {
    if ((t->slot[i] = json_string(text)) == NULL)
      return NULL;
    t->used++;
  }
  return json_incref(t->slot[i]);
}

/* *out: a new json value for the node. */
static int node_json(const struct yctx *L, struct engine__ystrings *strings,
                     const ynode *n, json_t **out)
{
  json_t *j = NULL, *kid = NULL;
  int rc = 0;

  *out = NULL;
  if (n->type == Y_SCALAR) {
    long long v;
    double d;
    switch (engine__ynode_stype(n)) {
    case S_NULL:
      j = json_null();
      break;
    case S_BOOL:
      j = json_boolean(is_true(n));
      break;
    case S_INT:
      if (engine__ynode_int(n, &v))
        return lerr(L, n, "integer '%s' is out of range (hint: quote it to "
                    "keep it as a string)", n->text);
      j = json_integer(v);
      break;
    case S_FLOAT:
      if (isnan(d = engine__ynode_num(n)))
        return lerr(L, n, "'%s' is not a finite number (hint: quote it to "
                    "keep it as a string)", n->text);
      j = json_real(d);
      break;
    case S_STR: /* libyaml only yields UTF-8 (and NUL is refused) */
      j = shared_string(strings, n->text);
      break;
    }
    if (j == NULL)
      return nomem(L);
    *out = j;
    return 0;
  }
  if ((j = n->type == Y_MAP ? json_object() : json_array()) == NULL)
    return nomem(L);
  for (size_t i = n->type == Y_MAP; i < n->n; i += n->type == Y_MAP ? 2 : 1) {
    if ((rc = node_json(L, strings, n->kids[i], &kid)) != 0)
      break;
    if (n->type == Y_MAP ? json_object_set_new(j, n->kids[i - 1]->text, kid)
                         : json_array_append_new(j, kid)) {
      rc = nomem(L);
      break;
    }
  }
  if (rc != 0) {
    json_decref(j);
    return rc;
  }
  *out = j;
  return 0;
}

int engine__ynode_json(const char *fname, const ynode *n,
                       struct engine__ystrings *strings, json_t **out,
                       struct cairn_error *err)
{
  const struct yctx ctx = {fname, err};
  return node_json(&ctx, strings, n, out);
}
