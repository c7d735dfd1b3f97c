/* Internal to the loader (engine/load.c): one YAML document as a small
 * tree of nodes that remember where they start, typed by the YAML 1.2
 * core schema. Not part of libcairn's API.
 *
 * engine__yaml_parse refuses, with "FILE:LINE:COL: error: WHAT (hint:
 * HOW)": malformed YAML (libyaml's problem and mark), a second document,
 * duplicate keys (at the second, naming the first's line), merge keys
 * ('<<'), keys that are not scalars, tags other than !!str (and !!map,
 * !!seq on collections), NUL characters in scalars, unknown or recursive
 * aliases, nesting deeper than 128 and more than 1,000,000 nodes (an
 * alias becomes, and counts as, a copy of its anchored node).
 *
 * Memory: the tree owns its nodes and strings, all carved from blocks
 * that engine__ynode_free(root) frees at once (a node that is not a root
 * frees nothing). Nothing points into the parsed buffer. */
#ifndef CAIRN_ENGINE_YAML_TREE_H
#define CAIRN_ENGINE_YAML_TREE_H

#include <jansson.h>
#include <stddef.h>

#include "common/error.h"

enum engine__ytype { ENGINE__YSCALAR, ENGINE__YSEQ, ENGINE__YMAP };

/* What a scalar is under the core schema. Only plain, untagged scalars
 * are typed: null (~, null, empty), bool (true/false in three cases), int
 * (decimal, 0o octal, 0x hex), float (with .inf and .nan); anything
 * quoted, tagged !!str or not matching is a string ("yes" and "on"
 * included; "010" is the integer 10). */
enum engine__ystype {
  ENGINE__YNULL, ENGINE__YBOOL, ENGINE__YINT, ENGINE__YFLOAT, ENGINE__YSTR,
};

struct engine__yarena;

struct engine__ynode {
  unsigned char type;  /* enum engine__ytype */
  unsigned char plain; /* scalar: plain and untagged, typed by the schema */
  unsigned char quoted; /* scalar: single- or double-quoted */
  unsigned char one_line; /* scalar: its source is one line, from col on,
                          so col + quoted + a byte offset points into it
                          (0 for an alias: it points at the alias) */
  unsigned char stype; /* scalar: 1 + its enum engine__ystype once asked
                          for (the loader asks ~80 times a state), else 0 */
  unsigned char height; /* 0 for a scalar, else 1 + the deepest child's
                          (at most the nesting limit, 128) */
  int line, col;       /* 1-based, where the node starts */
  unsigned size;       /* nodes in this subtree, itself included (at most
                          the node limit, 1,000,000) */
  unsigned n;          /* kids */
  char *text;          /* scalar, NUL-terminated (NUL is refused inside) */
  struct engine__ynode **kids; /* seq: items; map: key, value, key, ...
                                  (exactly n) */
  struct engine__yarena *arena; /* the root's: the whole tree's memory */
};

/* *out: the tree of the one document in buf[0..len), or NULL for a file
 * with no document (empty, or only comments). fname names the file in
 * messages. On error returns CAIRN_E_WORKFLOW (CAIRN_E_NOMEM) with err
 * filled, and *out is untouched. */
int engine__yaml_parse(const char *fname, const char *buf, size_t len,
                       struct engine__ynode **out, struct cairn_error *err);
void engine__ynode_free(struct engine__ynode *n);

/* ENGINE__YSTR for sequences and mappings too. */
enum engine__ystype engine__ynode_stype(const struct engine__ynode *n);
/* An ENGINE__YINT scalar's value: 0, or -1 when out of range. */
int engine__ynode_int(const struct engine__ynode *n, long long *v);
/* An ENGINE__YINT or ENGINE__YFLOAT scalar's value; NAN when it is not
 * finite or out of range. */
double engine__ynode_num(const struct engine__ynode *n);
/* "a string", "an integer", "a number", "a boolean", "null", "a list",
 * "a mapping". */
const char *engine__ynode_tname(const struct engine__ynode *n);
/* One string object a text for the JSON made from a tree (a json_t each
 * time the same value is written costs memory and time); strings shared
 * this way must never be changed in place. engine__ystrings_free drops
 * the table's references (the JSON keeps its own). new gives NULL when
 * out of memory; free(NULL) does nothing. */
struct engine__ystrings;
struct engine__ystrings *engine__ystrings_new(void);
void engine__ystrings_free(struct engine__ystrings *strings);

/* *out: a new json value for n (mappings keep their key order), its
 * strings taken from strings (may be NULL: new ones). An integer out of
 * range, a float that is not finite or a string that is not UTF-8 is
 * CAIRN_E_WORKFLOW at the node. */
int engine__ynode_json(const char *fname, const struct engine__ynode *n,
                       struct engine__ystrings *strings, json_t **out,
                       struct cairn_error *err);

/* A hash of the text s (FNV-1a), for the loader's tables of names. */
size_t engine__hash(const char *s);

/* Fills err with "FNAME:LINE:COL: error: WHAT" (CAIRN_E_WORKFLOW) and
 * returns that code: the one form of every loader error. */
int engine__yerror(struct cairn_error *err, const char *fname, int line,
                   int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
