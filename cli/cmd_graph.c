/* cairn graph FILE [--format dot|mermaid]: print a workflow's state machine
 * as Graphviz dot or a Mermaid flowchart. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/duration.h"

enum graph_format { GRAPH_DOT, GRAPH_MERMAID };

/* How each kind of state looks. Both formats take their colours from here
 * so that a dot picture and a Mermaid one of the same workflow read alike. */
static const struct {
  const char *dot_shape;  /* ENGINE_PARALLEL is a cluster, not a node */
  const char *fill;
  const char *stroke;
  const char *mm_open;    /* Mermaid node shape around the quoted label */
  const char *mm_close;
} kind_style[] = {
  [ENGINE_DO] = {"box", "#e3f2fd", "#1565c0", "[\"", "\"]"},
  [ENGINE_PARALLEL] = {NULL, "#f5f5f5", "#616161", NULL, NULL},
  [ENGINE_CHOICE] = {"diamond", "#fff8e1", "#f9a825", "{\"", "\"}"},
  [ENGINE_WAIT] = {"ellipse", "#ede7f6", "#5e35b1", "([\"", "\"])"},
  [ENGINE_SUCCEED] = {"doublecircle", "#e8f5e9", "#2e7d32", "(((\"",
                      "\")))"},
  [ENGINE_FAIL] = {"doubleoctagon", "#ffebee", "#c62828", "{{\"", "\"}}"},
  /* A gate a person opens: a house in dot, a trapezoid in Mermaid. */
  [ENGINE_APPROVAL] = {"house", "#fce4ec", "#ad1457", "[/\"", "\"\\]"},
  /* A used workflow: a folder-like tab; a map: a stack of boxes. */
  [ENGINE_USE] = {"tab", "#e0f2f1", "#00695c", "[[\"", "\"]]"},
  [ENGINE_MAP] = {"box3d", "#e3f2fd", "#1565c0", "[\"", "\"]"},
};

#define RED "#c62828"
#define ORANGE "#e65100"
#define UNDO_MARK "\xe2\x86\xb6 undo: " /* U+21B6 "↶" */
/* U+25F7 "◷": a clock face that common fonts have (U+23F1 "⏱" is in
 * few, and dot draws a box for a missing glyph). */
#define WAIT_MARK "\xe2\x97\xb7 "
#define MAP_MARK " \xc3\x97 " /* U+00D7 "×": once per item */
/* A used workflow's cluster: dashed, lighter than its use state. */
#define FRAME_FILL "#f4faf9"

/* ---- edges, shared by both formats ---------------------------------------
 *
 * The two writers draw the same edges in the same order: the walk below is
 * the one place that knows which transitions a state has. */

enum graph_edge_kind {
  EDGE_START,      /* the entry point to the start state */
  EDGE_NEXT,
  EDGE_WHEN,       /* a choice's when/next pair; label is its expression */
  EDGE_DEFAULT,    /* a choice's default */
  EDGE_USE,        /* a use state to the start of its workflow */
  EDGE_RETURN,     /* a used workflow's succeed to the use state's next */
  EDGE_ON_FAILURE, /* on_failure: STATE */
  EDGE_ROLLBACK,   /* on_failure: rollback, to the shared pseudo-node */
  EDGE_FAIL,       /* on_failure: fail, to the shared pseudo-node */
};

struct graph_edge {
  enum graph_edge_kind kind;
  const struct engine_state *from; /* NULL for EDGE_START */
  const struct engine_state *to;   /* NULL for EDGE_ROLLBACK, EDGE_FAIL */
  const char *label;               /* EDGE_WHEN: the expression, else NULL */
};

/* Called once per edge; a non-zero return stops the walk and is returned. */
typedef int (*graph_edge_fn)(const struct engine_workflow *wf,
                             const struct graph_edge *e, void *ud);

static int edge_to(const struct engine_workflow *wf, graph_edge_fn fn,
                   void *ud, enum graph_edge_kind kind,
                   const struct engine_state *from, const char *to,
                   const char *label)
{
  struct graph_edge e = {kind, from, NULL, label};
  if (kind != EDGE_ROLLBACK && kind != EDGE_FAIL &&
      (e.to = engine_workflow_state(wf, to)) == NULL)
    return CAIRN_E_WORKFLOW; /* the loader checked every target */
  return fn(wf, &e, ud);
}

/* The use state of the frame s is in (s->frame >= 0). */
static const struct engine_state *frame_user(const struct engine_workflow *wf,
                                             const struct engine_state *s)
{
  return &wf->states[wf->frames[s->frame].use_state];
}

/* The failure edge of from, where the on_failure of owner sends it (owner
 * is from itself, or the use state a used workflow's failure fails). */
static int failure_edge(const struct engine_workflow *wf, graph_edge_fn fn,
                        void *ud, const struct engine_state *from,
                        const struct engine_state *owner)
{
  owner = cli_failure_owner(wf, owner);
  if (strcmp(owner->on_failure, "rollback") == 0)
    return edge_to(wf, fn, ud, EDGE_ROLLBACK, from, NULL, NULL);
  if (strcmp(owner->on_failure, "fail") == 0)
    return edge_to(wf, fn, ud, EDGE_FAIL, from, NULL, NULL);
  return edge_to(wf, fn, ud, EDGE_ON_FAILURE, from, owner->on_failure, NULL);
}

/* Every edge of wf: the entry, then each state's in file order (next, the
 * choice pairs in order, default, on_failure). A use state leads into its
 * workflow, whose succeed states return to the use state's next; inside a
 * used workflow, on_failure rollback or fail and a fail state lead where
 * the use state's failure does. Only do, parallel, map and use states have
 * an on_failure: the loader gives every state the default "rollback", but
 * nothing else can fail. */
static int graph_each_edge(const struct engine_workflow *wf, graph_edge_fn fn,
                           void *ud)
{
  int rc = edge_to(wf, fn, ud, EDGE_START, NULL, wf->start, NULL);
  for (size_t i = 0; rc == 0 && i < wf->nstates; i++) {
    const struct engine_state *s = &wf->states[i];
    if (s->use_frame >= 0) /* a use, or a map over a used workflow */
      rc = edge_to(wf, fn, ud, EDGE_USE, s, wf->frames[s->use_frame].start,
                   NULL);
    else if (s->next != NULL)
      rc = edge_to(wf, fn, ud, EDGE_NEXT, s, s->next, NULL);
    for (size_t k = 0; rc == 0 && k < s->nwhens; k++)
      rc = edge_to(wf, fn, ud, EDGE_WHEN, s, s->whens[k].next,
                   s->whens[k].expr);
    if (rc == 0 && s->default_next != NULL)
      rc = edge_to(wf, fn, ud, EDGE_DEFAULT, s, s->default_next, NULL);
    if (rc != 0)
      break;
    switch (s->kind) {
    case ENGINE_DO:
    case ENGINE_PARALLEL:
    case ENGINE_MAP:
    case ENGINE_USE:
      rc = failure_edge(wf, fn, ud, s, s);
      break;
    case ENGINE_SUCCEED:
      if (s->frame >= 0)
        rc = edge_to(wf, fn, ud, EDGE_RETURN, s, frame_user(wf, s)->next,
                     NULL);
      break;
    case ENGINE_FAIL:
      if (s->frame >= 0)
        rc = failure_edge(wf, fn, ud, s, frame_user(wf, s));
      break;
    default:
      break;
    }
  }
  return rc;
}

/* Which pseudo-nodes the edges need: bit 1 << EDGE_ROLLBACK, 1 << EDGE_FAIL. */
static int note_pseudo(const struct engine_workflow *wf,
                       const struct graph_edge *e, void *ud)
{
  (void)wf;
  if (e->kind == EDGE_ROLLBACK || e->kind == EDGE_FAIL)
    *(unsigned *)ud |= 1u << e->kind;
  return 0;
}

static unsigned graph_pseudo_nodes(const struct engine_workflow *wf)
{
  unsigned used = 0;
  graph_each_edge(wf, note_pseudo, &used);
  return used;
}

/* ---- text ---------------------------------------------------------------- */

/* Writes text escaped for inside a double-quoted label. A newline breaks
 * the line; other control characters become spaces. dot reads "\\" and
 * "\"" in a string; Mermaid has no backslash escapes, only entity codes
 * (#quot;), and renders labels as HTML, so '<', '>' and '&' are entities
 * too, '#' so that it cannot start one, '|' so that it cannot end an edge
 * label and '`' so that it cannot start a Markdown string. */
static void put_textn(FILE *f, enum graph_format fmt, const char *s,
                     size_t n)
{
  for (const char *end = s + n; s < end; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '\n') {
      fputs(fmt == GRAPH_DOT ? "\\n" : "<br/>", f);
    } else if (c < 0x20 || c == 0x7f) {
      fputc(' ', f);
    } else if (fmt == GRAPH_DOT) {
      if (c == '"' || c == '\\')
        fputc('\\', f);
      fputc(c, f);
    } else {
      switch (c) {
      case '"': fputs("#quot;", f); break;
      case '#': fputs("#35;", f); break;
      case '<': fputs("#lt;", f); break;
      case '>': fputs("#gt;", f); break;
      case '&': fputs("#amp;", f); break;
      case '|': fputs("#124;", f); break;
      case '`': fputs("#96;", f); break;
      default: fputc(c, f);
      }
    }
  }
}

static void put_text(FILE *f, enum graph_format fmt, const char *s)
{
  put_textn(f, fmt, s, strlen(s));
}

/* A map's items as written: the expression of a lone template
 * ("params.services" for "{{ params.services }}"), other text as it is,
 * a list by its length. */
static void put_items(FILE *f, enum graph_format fmt, const json_t *items)
{
  const char *t = json_string_value(items);
  char n[48];
  if (t == NULL) {
    snprintf(n, sizeof n, "%zu item%s", json_array_size(items),
             json_array_size(items) == 1 ? "" : "s");
    put_text(f, fmt, n);
    return;
  }
  const char *b = t, *e = t + strlen(t);
  if (e - b >= 4 && strncmp(b, "{{", 2) == 0 && strcmp(e - 2, "}}") == 0 &&
      strstr(b + 2, "{{") == NULL) {
    for (b += 2, e -= 2; b < e && *b == ' '; b++)
      ;
    while (e > b && e[-1] == ' ')
      e--;
  }
  put_textn(f, fmt, b, (size_t)(e - b));
}

/* A wait's duration as a workflow would write it: "30s", "1m30s",
 * "250ms" (cairn_duration_format rounds, for people reading timings). */
static void put_wait(FILE *f, int64_t ms)
{
  char d[64];

  fputs(WAIT_MARK, f);
  fputs(cairn_duration_exact(ms, d, sizeof d), f);
}

/* The label of a state or a branch, without its quotes: the name, then
 * for an action the adapter (times the items of a map) and its undo, for
 * a wait the duration. */
static void put_label(FILE *f, enum graph_format fmt, const char *name,
                      const struct engine_action *a, const json_t *items,
                      const int64_t *wait_ms)
{
  put_text(f, fmt, name);
  if (a != NULL) {
    put_text(f, fmt, "\n");
    /* a map over a used workflow: "use", its frame's cluster says which */
    put_text(f, fmt, a->adapter ? a->adapter : "use");
    if (items != NULL) {
      put_text(f, fmt, MAP_MARK);
      put_items(f, fmt, items);
    }
    if (a->undo != NULL) {
      put_text(f, fmt, "\n" UNDO_MARK);
      put_text(f, fmt, a->undo->adapter);
    }
  }
  if (wait_ms != NULL) {
    put_text(f, fmt, "\n");
    put_wait(f, *wait_ms);
  }
}

/* A state's name inside its used workflow ("start" for "db/start"): the
 * cluster around it says which workflow. */
static const char *local_name(const struct engine_workflow *wf,
                              const struct engine_state *s)
{
  const struct engine_frame *fr = engine_workflow_frame(wf, s);
  return fr ? s->name + strlen(fr->prefix) : s->name;
}

/* The label of state s (a parallel state's is its cluster's). */
static void put_state_label(FILE *f, enum graph_format fmt,
                            const struct engine_workflow *wf,
                            const struct engine_state *s)
{
  int action = s->kind == ENGINE_DO || s->kind == ENGINE_MAP;
  put_label(f, fmt, local_name(wf, s), action ? &s->action : NULL,
            s->kind == ENGINE_MAP ? s->map_items : NULL,
            s->kind == ENGINE_WAIT ? &s->wait_ms : NULL);
  if (s->kind == ENGINE_MAP && s->max_concurrency > 0) {
    char n[48];
    snprintf(n, sizeof n, "\nmax_concurrency: %d", s->max_concurrency);
    put_text(f, fmt, n);
  }
  if (s->kind == ENGINE_MAP && s->map_fail_late)
    put_text(f, fmt, "\nfail_fast: false");
}

/* A used workflow's label: "db: use postgres.yaml" (the use state's path
 * and the file's name). */
static void put_frame_label(FILE *f, enum graph_format fmt,
                            const struct engine_workflow *wf, size_t fi)
{
  const struct engine_frame *fr = &wf->frames[fi];
  const char *base = strrchr(fr->file, '/');
  put_text(f, fmt, wf->states[fr->use_state].name);
  put_text(f, fmt, ": use ");
  put_text(f, fmt, base ? base + 1 : fr->file);
  if (wf->states[fr->use_state].kind == ENGINE_MAP)
    put_text(f, fmt, " per item");
}

/* ---- node ids ------------------------------------------------------------ */

/* The node id of a state, one rule per format. dot ids are the quoted
 * name, so they stay readable; a parallel state is entered at its fork
 * node (its own name) and left from its join node "NAME:join" (':' and '/'
 * cannot be in a state name, so no id collides). Mermaid would read the
 * '-' of a name such as "deploy-app" as the start of an arrow, so states
 * are numbered in file order (s0, s1, ...; a branch s1b0) with the name in
 * the label; a parallel state is its subgraph, which edges can enter and
 * leave. mermaid_id writes into buf and returns it; put_state_id writes
 * either format's id to f. */
static const char *mermaid_id(const struct engine_workflow *wf,
                              const struct engine_state *s, char *buf,
                              size_t n)
{
  snprintf(buf, n, "s%zu", (size_t)(s - wf->states));
  return buf;
}

static void put_state_id(FILE *f, const struct engine_workflow *wf,
                         const struct engine_state *s, enum graph_format fmt,
                         int leaving)
{
  char id[32];
  if (fmt == GRAPH_MERMAID) {
    fputs(mermaid_id(wf, s, id, sizeof id), f);
    return;
  }
  fputc('"', f);
  put_text(f, fmt, s->name);
  if (leaving && s->kind == ENGINE_PARALLEL)
    fputs(":join", f);
  fputc('"', f);
}

/* Ids of the pseudo-nodes: parentheses in dot (never in a state name),
 * words in Mermaid (state ids all start with 's' and a digit). */
static const char *pseudo_id(enum graph_edge_kind kind, enum graph_format fmt)
{
  if (fmt == GRAPH_DOT)
    return kind == EDGE_START ? "\"(start)\""
           : kind == EDGE_ROLLBACK ? "\"(rollback)\"" : "\"(fail)\"";
  return kind == EDGE_START ? "start"
         : kind == EDGE_ROLLBACK ? "rollback" : "fail";
}

static void put_edge_from(FILE *f, const struct engine_workflow *wf,
                          const struct graph_edge *e, enum graph_format fmt)
{
  fputs("  ", f);
  if (e->from == NULL)
    fputs(pseudo_id(EDGE_START, fmt), f);
  else
    put_state_id(f, wf, e->from, fmt, 1);
}

static void put_edge_to(FILE *f, const struct engine_workflow *wf,
                        const struct graph_edge *e, enum graph_format fmt)
{
  if (e->to == NULL)
    fputs(pseudo_id(e->kind, fmt), f);
  else
    put_state_id(f, wf, e->to, fmt, 0);
}

/* ---- dot ----------------------------------------------------------------- */

static void dot_style(FILE *f, enum engine_kind k)
{
  fprintf(f, "shape=%s, style=\"%sfilled\", fillcolor=\"%s\", color=\"%s\"",
          kind_style[k].dot_shape, k == ENGINE_DO ? "rounded," : "",
          kind_style[k].fill, kind_style[k].stroke);
}

/* The attributes of an action node (a do or map state, or a branch) from
 * " [" to the label's closing quote; the id is written by the caller. */
static void dot_action_attrs(FILE *f, enum engine_kind k,
                             const struct engine_action *a)
{
  fputs(" [", f);
  dot_style(f, k);
  fprintf(f, "%s, class=\"kind_%s%s\", label=\"",
          a->undo ? ", penwidth=2" : "", engine_kind_name(k),
          a->undo ? " has_undo" : "");
}

static void dot_tooltip(FILE *f, const char *description)
{
  if (description == NULL)
    return;
  fputs(", tooltip=\"", f);
  put_text(f, GRAPH_DOT, description);
  fputs("\"", f);
}

/* The id of a node of parallel state s: its fork bar (suffix ""), a
 * branch ("/BRANCH") or its join bar (":join"). */
static void dot_part_id(FILE *f, const struct engine_state *s,
                        const char *sep, const char *part)
{
  fputc('"', f);
  put_text(f, GRAPH_DOT, s->name);
  fputs(sep, f);
  put_text(f, GRAPH_DOT, part);
  fputc('"', f);
}

static void dot_bar(FILE *f, int ind, const struct engine_state *s,
                    const char *sep, const char *part)
{
  fprintf(f, "%*s", ind, "");
  dot_part_id(f, s, sep, part);
  fprintf(f, " [shape=box, style=filled, fillcolor=\"%s\", color=\"%s\", "
             "height=0.05, width=1.2, fixedsize=true, label=\"\"",
          kind_style[ENGINE_PARALLEL].stroke,
          kind_style[ENGINE_PARALLEL].stroke);
  dot_tooltip(f, s->description);
  fputs("];\n", f);
}

/* A parallel state: a cluster holding a fork bar, one node per branch, a
 * join bar and the edges between them. Bars rather than edges to the
 * cluster itself (compound=true with lhead/ltail) so that the branches sit
 * side by side on one rank and no branch has to stand for the cluster as
 * an edge's anchor, which a parallel state looping to itself would defeat.
 * ind: the indent of the subgraph line (its contents get two more). */
static void dot_parallel(FILE *f, const struct engine_workflow *wf,
                         const struct engine_state *s, int ind)
{
  fprintf(f, "%*ssubgraph \"cluster_", ind, "");
  put_text(f, GRAPH_DOT, s->name);
  fprintf(f, "\" {\n%*slabel=\"", ind + 2, "");
  put_text(f, GRAPH_DOT, local_name(wf, s));
  fprintf(f, "\";\n%*sstyle=\"rounded,filled\"; fillcolor=\"%s\"; "
             "color=\"%s\"; class=\"kind_parallel\";\n",
          ind + 2, "", kind_style[ENGINE_PARALLEL].fill,
          kind_style[ENGINE_PARALLEL].stroke);
  dot_bar(f, ind + 2, s, "", "");
  for (size_t b = 0; b < s->nbranches; b++) {
    const struct engine_branch *br = &s->branches[b];
    fprintf(f, "%*s", ind + 2, "");
    dot_part_id(f, s, "/", br->name);
    dot_action_attrs(f, ENGINE_DO, &br->action);
    put_label(f, GRAPH_DOT, br->name, &br->action, NULL, NULL);
    fputs("\"];\n", f);
  }
  dot_bar(f, ind + 2, s, ":join", "");
  for (size_t b = 0; b < s->nbranches; b++) {
    fprintf(f, "%*s", ind + 2, "");
    dot_part_id(f, s, "", "");
    fputs(" -> ", f);
    dot_part_id(f, s, "/", s->branches[b].name);
    fprintf(f, ";\n%*s", ind + 2, "");
    dot_part_id(f, s, "/", s->branches[b].name);
    fputs(" -> ", f);
    dot_part_id(f, s, ":join", "");
    fputs(";\n", f);
  }
  fprintf(f, "%*s}\n", ind, "");
}

static void dot_state(FILE *f, const struct engine_workflow *wf,
                      const struct engine_state *s, int ind)
{
  if (s->kind == ENGINE_PARALLEL) {
    dot_parallel(f, wf, s, ind);
    return;
  }
  fprintf(f, "%*s", ind, "");
  put_state_id(f, wf, s, GRAPH_DOT, 0);
  if (s->kind == ENGINE_DO || s->kind == ENGINE_MAP) {
    dot_action_attrs(f, s->kind, &s->action);
  } else {
    fputs(" [", f);
    dot_style(f, s->kind);
    if (s->kind == ENGINE_SUCCEED || s->kind == ENGINE_FAIL)
      fputs(", penwidth=2", f);
    fprintf(f, ", class=\"kind_%s\", label=\"", engine_kind_name(s->kind));
  }
  put_state_label(f, GRAPH_DOT, wf, s);
  fputs("\"", f);
  dot_tooltip(f, s->description);
  fputs("];\n", f);
}

static void dot_states(FILE *f, const struct engine_workflow *wf, int frame,
                       int ind);

/* A used workflow: a dashed cluster of its states (nested ones inside),
 * right after its use state. */
static void dot_frame(FILE *f, const struct engine_workflow *wf, int fi,
                      int ind)
{
  const char *stroke = kind_style[ENGINE_USE].stroke;
  fprintf(f, "%*ssubgraph \"cluster_", ind, "");
  put_text(f, GRAPH_DOT, wf->states[wf->frames[fi].use_state].name);
  fprintf(f, "\" {\n%*slabel=\"", ind + 2, "");
  put_frame_label(f, GRAPH_DOT, wf, (size_t)fi);
  fprintf(f, "\";\n%*sstyle=\"rounded,dashed,filled\"; fillcolor=\"%s\"; "
             "color=\"%s\"; fontcolor=\"%s\"; class=\"use_frame\";\n",
          ind + 2, "", FRAME_FILL, stroke, stroke);
  dot_states(f, wf, fi, ind + 2);
  fprintf(f, "%*s}\n", ind, "");
}

/* The states of one frame (-1: the top workflow), in file order. */
static void dot_states(FILE *f, const struct engine_workflow *wf, int frame,
                       int ind)
{
  for (size_t i = 0; i < wf->nstates; i++) {
    const struct engine_state *s = &wf->states[i];
    if (s->frame != frame)
      continue;
    dot_state(f, wf, s, ind);
    if (s->use_frame >= 0)
      dot_frame(f, wf, s->use_frame, ind);
  }
}

static int dot_edge(const struct engine_workflow *wf,
                    const struct graph_edge *e, void *ud)
{
  FILE *f = ud;
  put_edge_from(f, wf, e, GRAPH_DOT);
  fputs(" -> ", f);
  put_edge_to(f, wf, e, GRAPH_DOT);
  switch (e->kind) {
  case EDGE_START:
  case EDGE_NEXT:
  case EDGE_USE:
    break;
  case EDGE_WHEN:
    fputs(" [label=\"", f);
    put_text(f, GRAPH_DOT, e->label);
    fputs("\"]", f);
    break;
  case EDGE_DEFAULT:
    fputs(" [label=\"default\"]", f);
    break;
  case EDGE_RETURN:
    fputs(" [label=\"return\"]", f);
    break;
  case EDGE_ON_FAILURE:
    fputs(" [style=dashed, color=\"" RED "\", fontcolor=\"" RED "\", "
          "label=\"on_failure\"]", f);
    break;
  case EDGE_ROLLBACK:
    fputs(" [style=dashed, color=\"" ORANGE "\"]", f);
    break;
  case EDGE_FAIL:
    fputs(" [style=dashed, color=\"" RED "\"]", f);
    break;
  }
  fputs(";\n", f);
  return 0;
}

static int graph_dot(FILE *f, const struct engine_workflow *wf)
{
  unsigned pseudo = graph_pseudo_nodes(wf);

  fputs("digraph \"", f);
  put_text(f, GRAPH_DOT, wf->name);
  fputs("\" {\n", f);
  fputs("  graph [fontname=\"Helvetica\", fontsize=11];\n"
        "  node [fontname=\"Helvetica\", fontsize=11];\n"
        "  edge [fontname=\"Helvetica\", fontsize=10];\n", f);
  fputs("  \"(start)\" [shape=circle, style=filled, fillcolor=black, "
        "width=0.2, fixedsize=true, label=\"\", class=\"entry\"];\n", f);
  dot_states(f, wf, -1, 2);
  if (pseudo & (1u << EDGE_ROLLBACK))
    fputs("  \"(rollback)\" [shape=octagon, style=dashed, color=\"" ORANGE
          "\", fontcolor=\"" ORANGE "\", class=\"pseudo_rollback\", "
          "label=\"rollback\"];\n", f);
  if (pseudo & (1u << EDGE_FAIL))
    fputs("  \"(fail)\" [shape=octagon, style=dashed, color=\"" RED
          "\", fontcolor=\"" RED "\", class=\"pseudo_fail\", "
          "label=\"fail\"];\n", f);
  int rc = graph_each_edge(wf, dot_edge, f);
  fputs("}\n", f);
  return rc;
}

/* ---- Mermaid ------------------------------------------------------------- */

static void mermaid_state(FILE *f, const struct engine_workflow *wf,
                          const struct engine_state *s, int ind)
{
  char id[32];
  mermaid_id(wf, s, id, sizeof id);
  if (s->kind == ENGINE_PARALLEL) {
    fprintf(f, "%*ssubgraph %s[\"", ind, "", id);
    put_text(f, GRAPH_MERMAID, local_name(wf, s));
    fputs("\"]\n", f);
    for (size_t b = 0; b < s->nbranches; b++) {
      fprintf(f, "%*s%sb%zu%s", ind + 2, "", id, b,
              kind_style[ENGINE_DO].mm_open);
      put_label(f, GRAPH_MERMAID, s->branches[b].name,
                &s->branches[b].action, NULL, NULL);
      fprintf(f, "%s:::kind_do\n", kind_style[ENGINE_DO].mm_close);
    }
    fprintf(f, "%*send\n", ind, "");
    return;
  }
  fprintf(f, "%*s%s%s", ind, "", id, kind_style[s->kind].mm_open);
  put_state_label(f, GRAPH_MERMAID, wf, s);
  fprintf(f, "%s:::kind_%s\n", kind_style[s->kind].mm_close,
          engine_kind_name(s->kind));
}

/* The states of one frame (-1: the top workflow); a used workflow is a
 * subgraph "fN" (N: its frame) right after its use state. */
static void mermaid_states(FILE *f, const struct engine_workflow *wf,
                           int frame, int ind)
{
  for (size_t i = 0; i < wf->nstates; i++) {
    const struct engine_state *s = &wf->states[i];
    if (s->frame != frame)
      continue;
    mermaid_state(f, wf, s, ind);
    if (s->use_frame < 0)
      continue;
    fprintf(f, "%*ssubgraph f%d[\"", ind, "", s->use_frame);
    put_frame_label(f, GRAPH_MERMAID, wf, (size_t)s->use_frame);
    fputs("\"]\n", f);
    mermaid_states(f, wf, s->use_frame, ind + 2);
    fprintf(f, "%*send\n", ind, "");
  }
}

/* Mermaid styles a link by its index among all links; the same walk gives
 * the same indices, so the edges are written on one walk and their
 * linkStyle lines collected on others (no list to keep). */
struct mermaid_links {
  FILE *f;
  size_t n;                  /* links seen so far */
  enum graph_edge_kind want; /* for linkStyle: the kind to list */
  size_t found;              /* links of that kind listed */
};

static int mermaid_edge(const struct engine_workflow *wf,
                        const struct graph_edge *e, void *ud)
{
  struct mermaid_links *ml = ud;
  FILE *f = ml->f;
  int failure = e->kind == EDGE_ON_FAILURE || e->kind == EDGE_ROLLBACK ||
                e->kind == EDGE_FAIL;
  put_edge_from(f, wf, e, GRAPH_MERMAID);
  fputs(failure ? " -.->" : " -->", f);
  if (e->kind == EDGE_WHEN) {
    fputs("|\"", f);
    put_text(f, GRAPH_MERMAID, e->label);
    fputs("\"|", f);
  } else if (e->kind == EDGE_DEFAULT) {
    fputs("|\"default\"|", f);
  } else if (e->kind == EDGE_RETURN) {
    fputs("|\"return\"|", f);
  } else if (e->kind == EDGE_ON_FAILURE) {
    fputs("|\"on_failure\"|", f);
  }
  fputc(' ', f);
  put_edge_to(f, wf, e, GRAPH_MERMAID);
  fputc('\n', f);
  ml->n++;
  return 0;
}

static int mermaid_link_index(const struct engine_workflow *wf,
                              const struct graph_edge *e, void *ud)
{
  struct mermaid_links *ml = ud;
  (void)wf;
  if (e->kind == ml->want)
    fprintf(ml->f, "%s%zu", ml->found++ == 0 ? "  linkStyle " : ",", ml->n);
  ml->n++;
  return 0;
}

static int graph_mermaid(FILE *f, const struct engine_workflow *wf)
{
  static const struct { enum graph_edge_kind kind; const char *style; }
  link_styles[] = {
    {EDGE_ON_FAILURE, "stroke:" RED ",color:" RED},
    {EDGE_ROLLBACK, "stroke:" ORANGE},
    {EDGE_FAIL, "stroke:" RED},
  };
  unsigned pseudo = graph_pseudo_nodes(wf);
  struct mermaid_links ml = {f, 0, EDGE_START, 0};
  int rc;

  fputs("flowchart TD\n", f);
  fputs("  start((\"start\")):::entry\n", f);
  mermaid_states(f, wf, -1, 2);
  if (pseudo & (1u << EDGE_ROLLBACK))
    fputs("  rollback>\"rollback\"]:::pseudo_rollback\n", f);
  if (pseudo & (1u << EDGE_FAIL))
    fputs("  fail>\"fail\"]:::pseudo_fail\n", f);
  if ((rc = graph_each_edge(wf, mermaid_edge, &ml)) != 0)
    return rc;
  for (size_t k = 0; k < sizeof link_styles / sizeof link_styles[0]; k++) {
    ml = (struct mermaid_links){f, 0, link_styles[k].kind, 0};
    graph_each_edge(wf, mermaid_link_index, &ml);
    if (ml.found > 0)
      fprintf(f, " %s\n", link_styles[k].style);
  }
  for (int k = ENGINE_DO; k <= ENGINE_MAP; k++)
    fprintf(f, "  classDef kind_%s fill:%s,stroke:%s\n",
            engine_kind_name((enum engine_kind)k), kind_style[k].fill,
            kind_style[k].stroke);
  fputs("  classDef entry fill:#212121,stroke:#212121,color:#fff\n", f);
  if (pseudo & (1u << EDGE_ROLLBACK))
    fputs("  classDef pseudo_rollback fill:#fff,stroke:" ORANGE ",color:"
          ORANGE ",stroke-dasharray:4\n", f);
  if (pseudo & (1u << EDGE_FAIL))
    fputs("  classDef pseudo_fail fill:#fff,stroke:" RED ",color:" RED
          ",stroke-dasharray:4\n", f);
  fputs("  classDef has_undo stroke-width:3px\n", f);
  if (wf->nframes > 0)
    fprintf(f, "  classDef use_frame fill:" FRAME_FILL ",stroke:%s,"
               "color:%s,stroke-dasharray:4\n",
            kind_style[ENGINE_USE].stroke, kind_style[ENGINE_USE].stroke);
  /* One class per node with ':::'; the undo mark is a second class. */
  size_t nundo = 0;
  for (size_t i = 0; i < wf->nstates; i++) {
    const struct engine_state *s = &wf->states[i];
    if ((s->kind == ENGINE_DO || s->kind == ENGINE_MAP) &&
        s->action.undo != NULL) {
      fputs(nundo++ ? "," : "  class ", f);
      put_state_id(f, wf, s, GRAPH_MERMAID, 0);
    }
    for (size_t b = 0; b < s->nbranches; b++) {
      if (s->branches[b].action.undo == NULL)
        continue;
      fputs(nundo++ ? "," : "  class ", f);
      put_state_id(f, wf, s, GRAPH_MERMAID, 0);
      fprintf(f, "b%zu", b);
    }
  }
  if (nundo > 0)
    fputs(" has_undo\n", f);
  for (size_t i = 0; i < wf->nstates; i++) {
    if (wf->states[i].kind != ENGINE_PARALLEL)
      continue;
    fputs("  class ", f);
    put_state_id(f, wf, &wf->states[i], GRAPH_MERMAID, 0);
    fputs(" kind_parallel\n", f);
  }
  for (size_t i = 0; i < wf->nframes; i++)
    fprintf(f, "%sf%zu%s", i ? "," : "  class ", i,
            i + 1 == wf->nframes ? " use_frame\n" : "");
  return 0;
}

/* ---- the command --------------------------------------------------------- */

int cli_cmd_graph(int argc, char **argv, struct cli_ctx *ctx)
{
  const char *format = "dot";
  const struct cli_option opts[] = {
    {"format", CLI_OPT_STRING, &format, "dot|mermaid",
     "the language to print (default: dot)"},
    {NULL, 0, NULL, NULL, NULL},
  };
  struct engine_workflow *wf = NULL;
  struct cairn_error err = {0};
  enum graph_format fmt;
  int npos = 0;
  int code = cli_parse(argc, argv, ctx, opts,
                       "cairn graph FILE [--format dot|mermaid]",
                       "Prints the state machine of FILE as Graphviz dot "
                       "(the default) or a Mermaid flowchart:\nevery state "
                       "shaped by its kind, the start, next and choice "
                       "edges, failure edges\ndashed, parallel branches "
                       "grouped, undo steps marked. For example:\n"
                       "  cairn graph deploy.yaml | dot -Tsvg > deploy.svg",
                       &npos);
  if (code != 0)
    return code == 1 ? CLI_EXIT_OK : code;
  if (strcmp(format, "dot") == 0) {
    fmt = GRAPH_DOT;
  } else if (strcmp(format, "mermaid") == 0) {
    fmt = GRAPH_MERMAID;
  } else {
    cli_error("option '--format' must be dot or mermaid, got '%s'", format);
    return CLI_EXIT_USAGE;
  }
  if (ctx->json) {
    cli_error("graph has no JSON output (hint: --format dot or --format "
              "mermaid)");
    return CLI_EXIT_USAGE;
  }
  if (npos != 1) {
    cli_error("graph needs one workflow file (usage: cairn graph FILE "
              "[--format dot|mermaid])");
    return CLI_EXIT_USAGE;
  }
  int rc = engine_workflow_load(&wf, argv[1], &err);
  if (rc != 0) {
    cli_workflow_error(&err, NULL);
    return cli_exit_for(rc);
  }
  rc = fmt == GRAPH_DOT ? graph_dot(stdout, wf) : graph_mermaid(stdout, wf);
  engine_workflow_destroy(wf);
  if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout)))
    rc = CAIRN_E_IO;
  if (rc != 0) {
    cli_error("cannot print the graph: %s", cairn_strerror(rc));
    return CLI_EXIT_FAILED;
  }
  return CLI_EXIT_OK;
}
