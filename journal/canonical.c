/* Canonical JSON (the journal's payload text and hash input) written
 * straight into a buffer: the bytes of jansson's json_dumps(JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENCODE_ANY), without its allocation and sorting
 * of a fresh key array per object and its copy of the result. */
#include "journal/journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper than this, the rest is left to jansson (which also finds a value
 * that contains itself) rather than risk the stack. */
#define CANON_MAX_DEPTH 512

/* A key's length: keys may hold NUL from jansson 2.14 on (json_object_setn);
 * before, they are C strings. */
#if JANSSON_VERSION_HEX >= 0x020e00
#define KEY_LEN(it, key) json_object_iter_key_len(it)
#else
#define KEY_LEN(it, key) strlen(key)
#endif

/* Objects with at most this many keys sort on the stack. */
#define CANON_SMALL 32

struct key_len {
  const char *key;
  size_t len;
  json_t *value;
};

/* jansson's compare_keys: bytes, then length (keys may hold NUL). */
static int key_cmp(const struct key_len *a, const struct key_len *b)
{
  size_t n = a->len < b->len ? a->len : b->len;
  int r = memcmp(a->key, b->key, n);

  if (r != 0)
    return r;
  return a->len < b->len ? -1 : a->len > b->len;
}

static int key_cmp_q(const void *a, const void *b)
{
  return key_cmp(a, b);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid:
 * jansson's utf8_check_first/utf8_check_full (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t size;
  uint32_t v;

  if (c < 0x80)
    return 1;
  if (c < 0xc2)
    return 0;
  if (c < 0xe0) {
    size = 2;
    v = c & 0x1f;
  } else if (c < 0xf0) {
    size = 3;
    v = c & 0x0f;
  } else if (c < 0xf5) {
    size = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (size > n)
    return 0;
  for (size_t i = 1; i < size; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    v = (v << 6) | (s[i] & 0x3f);
  }
  if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) ||
      (size == 3 && v < 0x800) || (size == 4 && v < 0x10000))
    return 0;
  return size;
}

/* The bytes written as they are: printable ASCII but '"' and '\\'. */
#define P16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char plain[256] = {
  [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
  [0x30] = P16, P16,
  [0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x5c '\\' */
  [0x60] = P16, P16,
};
#undef P16

int journal_canonical_string(struct cairn_buf *b, const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t run = 0, i = 0;

  /* Most strings (names, kinds, paths) need no escape: one scan, one
   * copy. */
  while (i < n && plain[s[i]])
    i++;
  cairn_buf_add(b, "\"", 1);
  if (i == n) {
    cairn_buf_add(b, str, n);
    cairn_buf_add(b, "\"", 1);
    return b->failed ? -1 : 0;
  }
  while (i < n) {
    unsigned char c = s[i];
    const char *esc = NULL;
    char u[8];

    if (c >= 0x80) {
      size_t k = utf8_len(s + i, n - i);
      if (k == 0)
        return -1;
      i += k;
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default:
      snprintf(u, sizeof u, "\\u%04X", (unsigned)c);
      esc = u;
      break;
    }
    cairn_buf_add(b, str + run, i - run);
    cairn_buf_add(b, esc, strlen(esc));
    run = ++i;
  }
  cairn_buf_add(b, str + run, n - run);
  cairn_buf_add(b, "\"", 1);
  return b->failed ? -1 : 0;
}

/* A value jansson writes for us: a real (its precision and format are
 * jansson's build choice) or a subtree too deep to walk here. */
static int by_jansson(struct cairn_buf *b, const json_t *v)
{
  json_malloc_t jmalloc;
  json_free_t jfree;
  char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

  if (s == NULL)
    return -1;
  cairn_buf_add(b, s, strlen(s));
  json_get_alloc_funcs(&jmalloc, &jfree);
  jfree(s);
  return b->failed ? -1 : 0;
}

static int canon(struct cairn_buf *b, const json_t *v, int depth);

static int canon_object(struct cairn_buf *b, const json_t *v, int depth)
{
  struct key_len small[CANON_SMALL], *keys = small;
  size_t n = json_object_size(v), i = 0;
  int rc = 0;

  if (n == 0) {
    cairn_buf_add(b, "{}", 2);
    return b->failed ? -1 : 0;
  }
  if (n > CANON_SMALL && (keys = malloc(n * sizeof *keys)) == NULL)
    return -1;
  for (void *it = json_object_iter((json_t *)v); it != NULL && i < n;
       it = json_object_iter_next((json_t *)v, it), i++) {
    keys[i].key = json_object_iter_key(it);
    keys[i].len = KEY_LEN(it, keys[i].key);
    keys[i].value = json_object_iter_value(it);
  }
  n = i;
  if (n > CANON_SMALL) {
    qsort(keys, n, sizeof *keys, key_cmp_q);
  } else {
    for (size_t a = 1; a < n; a++) { /* insertion sort: a handful of keys */
      struct key_len k = keys[a];
      size_t c = a;
      for (; c > 0 && key_cmp(&keys[c - 1], &k) > 0; c--)
        keys[c] = keys[c - 1];
      keys[c] = k;
    }
  }
  cairn_buf_add(b, "{", 1);
  for (i = 0; i < n && rc == 0; i++) {
    if (i > 0)
      cairn_buf_add(b, ",", 1);
    rc = journal_canonical_string(b, keys[i].key, keys[i].len);
    cairn_buf_add(b, ":", 1);
    if (rc == 0)
      rc = canon(b, keys[i].value, depth + 1);
  }
  cairn_buf_add(b, "}", 1);
  if (keys != small)
    free(keys);
  return rc != 0 || b->failed ? -1 : 0;
}

static int canon(struct cairn_buf *b, const json_t *v, int depth)
{
  int rc = 0;

  if (v == NULL)
    return -1;
  if (depth > CANON_MAX_DEPTH)
    return by_jansson(b, v);
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return canon_object(b, v, depth);
  case JSON_ARRAY:
    cairn_buf_add(b, "[", 1);
    for (size_t i = 0, n = json_array_size(v); i < n && rc == 0; i++) {
      if (i > 0)
        cairn_buf_add(b, ",", 1);
      rc = canon(b, json_array_get(v, i), depth + 1);
    }
    cairn_buf_add(b, "]", 1);
    break;
  case JSON_STRING:
    return journal_canonical_string(b, json_string_value(v),
                                    json_string_length(v));
  case JSON_INTEGER:
    /* json_int_t is long long, 64 bits on every platform we build on */
    cairn_buf_add_i64(b, (int64_t)json_integer_value(v));
    break;
  case JSON_REAL:
    return by_jansson(b, v);
  case JSON_TRUE:
    cairn_buf_add(b, "true", 4);
    break;
  case JSON_FALSE:
    cairn_buf_add(b, "false", 5);
    break;
  case JSON_NULL:
    cairn_buf_add(b, "null", 4);
    break;
  }
  return rc != 0 || b->failed ? -1 : 0;
}

int journal_canonical_add(struct cairn_buf *b, const json_t *value)
{
  size_t len = b->len;

  if (b->failed)
    return -1;
  if (canon(b, value, 0) == 0)
    return 0;
  /* Leave the buffer as it was, usable again. */
  b->failed = 0;
  b->len = len;
  if (b->p != NULL)
    b->p[len] = '\0';
  return -1;
}

char *journal_canonical_json(const json_t *value)
{
  struct cairn_buf b = {0};

  if (journal_canonical_add(&b, value) != 0) {
    cairn_buf_release(&b);
    return NULL;
  }
  return b.p; /* NULL only for an empty text, which no value has */
}
