/* Template expressions: "{{ expr }}" inside strings.
 *
 * expr := or ; or := and ("or" and)* ; and := not ("and" not)* ;
 * not := "not" not | cmp ; cmp := sum (("=="|"!="|"<"|"<="|">"|">=") sum)? ;
 * sum := prod (("+"|"-") prod)* ; prod := unary (("*"|"/"|"%") unary)* ;
 * unary := "-" unary | atom ; atom := number | 'str' | "str" | true |
 * false | null | ref | "(" expr ")" ; ref := name ("." name | "[" int "]")*
 *
 * Roots: params, vars, env, secrets, states, run, item, self. `+` adds
 * numbers and concatenates when either side is a string.
 *
 * Memory: scope and values passed in are borrowed; every json_t ** out
 * gets a new reference the caller owns. */
#ifndef CAIRN_ENGINE_TEMPLATE_H
#define CAIRN_ENGINE_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "common/error.h"

/* Called by engine_template_check for each reference: path[0] is the
 * root ("params", "states", ...), then each name or index as text.
 * offset is the byte offset of the reference in the checked string.
 * Return 0 to accept, or fill err and return a negative code. */
typedef int (*engine_template_ref_cb)(void *ud, const char *const *path,
                                      size_t n, size_t offset,
                                      struct cairn_error *err);

/* Parses every {{ }} of s without evaluating. On a syntax error returns
 * CAIRN_E_TEMPLATE, sets *offset (may be NULL) to the byte offset of the
 * problem in s and err->msg to what is wrong (no position in the text:
 * the caller adds file:line:col). An unknown root is an error here. */
int engine_template_check(const char *s, engine_template_ref_cb cb, void *ud,
                          size_t *offset, struct cairn_error *err);
/* The same for a bare expression (a choice's `when`). */
int engine_template_check_expr(const char *expr, engine_template_ref_cb cb,
                               void *ud, size_t *offset,
                               struct cairn_error *err);

/* Renders one string against scope, an object with keys params, vars,
 * secrets, states, run, item, self (each may be missing); env.X reads
 * getenv. A string that is exactly one "{{ expr }}" (spaces around
 * allowed) yields expr's value with its type; otherwise the result is a
 * string with each value interpolated (strings as is, numbers and bools
 * as JSON, null as ""). A missing reference is CAIRN_E_TEMPLATE naming
 * it (e.g. "states.build.output.image is not set"). */
int engine_template_render_string(const char *s, json_t *scope, json_t **out,
                                  struct cairn_error *err);
/* Renders every string inside value (objects and arrays deeply, keys
 * untouched) into a new value. */
int engine_template_render(json_t *value, json_t *scope, json_t **out,
                           struct cairn_error *err);
/* The same, sharing what holds no template: *out (a new reference) is
 * value itself, or has value's own parts, where no string in them holds
 * "{{". For a result only read (as a state's `with`, to resolve its
 * inputs): neither *out nor value may be changed while both are kept. */
int engine_template_render_shared(json_t *value, json_t *scope, json_t **out,
                                  struct cairn_error *err);
/* Evaluates a bare expression; *out gets its truth (false, null, 0, ""
 * and empty containers are false). */
int engine_template_eval_bool(const char *expr, json_t *scope, int *out,
                              struct cairn_error *err);

#endif
