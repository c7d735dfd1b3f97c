/* The events of an unchained journal (JOURNAL_UNCHAINED, a simulation's):
 * a plain list in memory instead of rows of the events table, which an
 * INSERT each made most of a simulation's cost. Runs and locks stay in the
 * in-memory database, and the transactions with them: a rollback takes
 * the list back to where the transaction began. */
#include "journal/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/huge.h"

/* Strings are carved from blocks that never move, so an event's kind,
 * state and payload stay where they were written; events are kept in
 * chunks (no copy as the list grows). A page the process touches for the
 * first time costs a page fault: where the kernel gives transparent huge
 * pages, blocks and chunks are huge pages (common/huge.h: the blocks a
 * simulation's loading freed, used again); else they are small enough
 * for malloc to carve them from memory the process has used before
 * rather than map fresh pages. */
#define ELIST_BLOCK (60 * 1024)
#define ELIST_SHIFT 10        /* 1,024 events a chunk from malloc */
#define ELIST_HUGE_SHIFT 15   /* 32,768 (1.5 MiB) in a huge page */

struct eblock {
  struct eblock *prev;
  size_t used, size;
  int huge;                           /* from cairn_huge_alloc */
  char data[];
};

struct elist_event {
  int64_t time_ms;
  const char *kind, *state, *payload; /* in the blocks, NUL-terminated */
  size_t payload_len;
  int attempt;
  unsigned run;                       /* index into runs */
};

_Static_assert((sizeof(struct elist_event) << ELIST_HUGE_SHIFT) <= CAIRN_HUGE,
               "a chunk of events fits a huge page");

/* A run id events were appended for; checked against the runs table (the
 * foreign key) once per transaction that appends for it. */
struct elist_run {
  char id[JOURNAL_RUN_ID_LEN];
  int checked;
};

/* Kinds an event list keeps once (there are a few dozen). */
#define ELIST_KINDS 64

struct journal__elist {
  struct elist_event **chunk;         /* seq i + 1 is chunk[i >> shift]
                                         [i & (1 << shift) - 1] */
  size_t n, nchunks, capchunks;
  int huge;                           /* chunks and blocks in huge pages */
  unsigned shift;
  struct elist_run *runs;
  size_t nruns;
  struct eblock *block;               /* the one being carved; ->prev older */
  size_t mark;                        /* n when the transaction began */
  struct eblock *mark_block;
  size_t mark_used;
  /* Strings kept once rather than once an event: the kinds, and the state
   * of the last event (a state's events come one after the other). */
  const char *kinds[ELIST_KINDS];
  size_t nkinds;
  const char *last_state;
};

int journal__elist_new(struct journal__elist **out)
{
  if ((*out = calloc(1, sizeof **out)) == NULL)
    return -1;
  (*out)->huge = cairn_huge_available();
  (*out)->shift = (*out)->huge ? ELIST_HUGE_SHIFT : ELIST_SHIFT;
  return 0;
}

static void block_free(struct eblock *b)
{
  if (b->huge)
    cairn_huge_free(b, CAIRN_HUGE);
  else
    free(b);
}

void journal__elist_free(struct journal__elist *l)
{
  if (l == NULL)
    return;
  for (struct eblock *b = l->block, *prev; b != NULL; b = prev) {
    prev = b->prev;
    block_free(b);
  }
  for (size_t i = 0; i < l->nchunks; i++)
    if (l->huge)
      cairn_huge_free(l->chunk[i], CAIRN_HUGE);
    else
      free(l->chunk[i]);
  free(l->chunk);
  free(l->runs);
  free(l);
}

void journal__elist_mark(struct journal__elist *l)
{
  l->mark = l->n;
  l->mark_block = l->block;
  l->mark_used = l->block != NULL ? l->block->used : 0;
}

void journal__elist_undo(struct journal__elist *l)
{
  while (l->block != l->mark_block) {
    struct eblock *b = l->block;
    l->block = b->prev;
    block_free(b);
  }
  if (l->block != NULL)
    l->block->used = l->mark_used;
  l->n = l->mark;
  /* what was kept once may be in what was undone */
  l->nkinds = 0;
  l->last_state = NULL;
  /* the run may have been inserted in the transaction undone */
  for (size_t i = 0; i < l->nruns; i++)
    l->runs[i].checked = 0;
}

/* A copy of n bytes of s and a NUL in the blocks, or NULL. */
static const char *put(struct journal__elist *l, const char *s, size_t n)
{
  struct eblock *b = l->block;
  char *p;

  if (b == NULL || b->size - b->used < n + 1) {
    size_t size = n + 1 > ELIST_BLOCK ? n + 1 : ELIST_BLOCK;
    b = l->huge && sizeof *b + n + 1 <= CAIRN_HUGE
            ? cairn_huge_alloc(CAIRN_HUGE, 0) : NULL;
    if (b != NULL) {
      b->huge = 1;
      size = CAIRN_HUGE - sizeof *b;
    } else if ((b = malloc(sizeof *b + size)) != NULL) {
      b->huge = 0;
    } else {
      return NULL;
    }
    b->prev = l->block;
    b->used = 0;
    b->size = size;
    l->block = b;
  }
  p = b->data + b->used;
  memcpy(p, s, n);
  p[n] = '\0';
  b->used += n + 1;
  return p;
}

/* kind in the blocks, once. */
static const char *put_kind(struct journal__elist *l, const char *kind)
{
  const char *p;

  for (size_t i = 0; i < l->nkinds; i++)
    if (strcmp(l->kinds[i], kind) == 0)
      return l->kinds[i];
  if ((p = put(l, kind, strlen(kind))) != NULL && l->nkinds < ELIST_KINDS)
    l->kinds[l->nkinds++] = p;
  return p;
}

/* The index of run_id in l->runs, checked against the runs table: 0 and
 * *at set, or CAIRN_E_NORUN (no such run), another code on error. */
static int run_index(struct journal *j, const char *run_id, unsigned *at,
                     struct cairn_error *err)
{
  struct journal__elist *l = j->elist;
  sqlite3_stmt *st = NULL;
  size_t i;
  int rc;

  for (i = 0; i < l->nruns && strcmp(l->runs[i].id, run_id) != 0; i++)
    ;
  if (i < l->nruns && l->runs[i].checked) {
    *at = (unsigned)i;
    return 0;
  }
  rc = journal__stmt(j, JOURNAL__ST_RUN_EXISTS,
                     "SELECT 1 FROM runs WHERE id = ?1", &st, err);
  if (rc != 0)
    return rc;
  sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
  switch (sqlite3_step(st)) {
  case SQLITE_ROW:
    break;
  case SQLITE_DONE:
    rc = cairn_error_set(err, CAIRN_E_NORUN,
                         "no run '%s' in journal '%s' (insert the run before "
                         "its events)",
                         run_id, j->path);
    break;
  default:
    rc = journal__sqlite_error(j, err, "cannot read journal");
    break;
  }
  journal__stmt_done(j, JOURNAL__ST_RUN_EXISTS, st);
  if (rc != 0)
    return rc;
  if (i == l->nruns) {
    struct elist_run *r = realloc(l->runs, (l->nruns + 1) * sizeof *r);
    if (r == NULL)
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    l->runs = r;
    memcpy(r[i].id, run_id, strlen(run_id) + 1);
    l->nruns++;
  }
  l->runs[i].checked = 1;
  *at = (unsigned)i;
  return 0;
}

/* Event i (i < n). */
static struct elist_event *ev_at(const struct journal__elist *l, size_t i)
{
  return &l->chunk[i >> l->shift][i & (((size_t)1 << l->shift) - 1)];
}

int journal__elist_append(struct journal *j, const char *run_id,
                          const char *kind, const char *state, int attempt,
                          int64_t time_ms, const char *payload, size_t len,
                          int64_t *seq, struct cairn_error *err)
{
  struct journal__elist *l = j->elist;
  struct elist_event *e;
  unsigned run = 0;
  int rc = run_index(j, run_id, &run, err);

  if (rc != 0)
    return rc;
  if (l->n == l->nchunks << l->shift) { /* chunks stay after an undo */
    struct elist_event *c;
    if (l->nchunks == l->capchunks) {
      size_t cap = l->capchunks ? l->capchunks * 2 : 16;
      struct elist_event **v = realloc(l->chunk, cap * sizeof *v);
      if (v == NULL)
        return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
      l->chunk = v;
      l->capchunks = cap;
    }
    c = l->huge ? cairn_huge_alloc(sizeof *c << l->shift, 0)
                : malloc(sizeof *c << l->shift);
    if (c == NULL)
      return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
    l->chunk[l->nchunks++] = c;
  }
  e = ev_at(l, l->n);
  e->time_ms = time_ms;
  e->attempt = attempt;
  e->run = run;
  e->payload_len = len;
  if (l->last_state != NULL && strcmp(l->last_state, state) == 0)
    e->state = l->last_state;
  else
    e->state = l->last_state = put(l, state, strlen(state));
  if ((e->kind = put_kind(l, kind)) == NULL || e->state == NULL ||
      (e->payload = put(l, payload, len)) == NULL)
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  *seq = (int64_t)++l->n;
  return 0;
}

/* Fills ev from event i; ev owns what it gets (as from a row). */
static int event_at(struct journal *j, size_t i, struct journal_event *ev,
                    struct cairn_error *err)
{
  const struct elist_event *e = ev_at(j->elist, i);
  json_error_t jerr;

  memset(ev, 0, sizeof *ev);
  ev->seq = (int64_t)i + 1;
  memcpy(ev->run_id, j->elist->runs[e->run].id, sizeof ev->run_id);
  ev->attempt = e->attempt;
  ev->time_ms = e->time_ms;
  ev->kind = strdup(e->kind);
  ev->state = strdup(e->state);
  /* a string the engine journaled may hold a NUL ("\u0000") */
  ev->payload = json_loadb(e->payload, e->payload_len, JSON_ALLOW_NUL, &jerr);
  if (ev->kind == NULL || ev->state == NULL || ev->payload == NULL) {
    journal_event_release(ev);
    return cairn_error_set(err, CAIRN_E_NOMEM, "out of memory");
  }
  return 0;
}

int journal__elist_foreach(struct journal *j, const char *run_id,
                           int64_t after_seq,
                           int (*cb)(const struct journal_event *ev, void *ud),
                           void *ud, struct cairn_error *err)
{
  struct journal__elist *l = j->elist;
  size_t run = SIZE_MAX, n = l->n; /* what a callback appends is not seen */
  struct journal_event ev;
  int rc = 0;

  if (run_id != NULL) {
    for (run = 0; run < l->nruns && strcmp(l->runs[run].id, run_id) != 0;
         run++)
      ;
    if (run == l->nruns)
      return 0;
  }
  for (size_t i = after_seq > 0 ? (size_t)after_seq : 0;
       rc == 0 && i < n && i < l->n; i++) {
    if (run != SIZE_MAX && ev_at(l, i)->run != run)
      continue;
    if ((rc = event_at(j, i, &ev, err)) != 0)
      break;
    rc = cb(&ev, ud);
    journal_event_release(&ev);
  }
  return rc;
}

int journal__elist_get(struct journal *j, int64_t seq,
                       struct journal_event *out, struct cairn_error *err)
{
  if (seq < 1 || (uint64_t)seq > j->elist->n)
    return cairn_error_set(err, CAIRN_E_NOTFOUND,
                           "no event %" PRId64 " in journal '%s'", seq,
                           j->path);
  return event_at(j, (size_t)seq - 1, out, err);
}
