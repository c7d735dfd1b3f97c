/* Text for JSON from bytes that may not be UTF-8: a child's output, a
 * server's message, a message cut at a fixed size; and how many
 * characters such text takes in a column. */
#ifndef CAIRN_UTF8_H
#define CAIRN_UTF8_H

#include <stddef.h>

/* Replaces, in place, every byte of s[0..len) that is not part of a valid
 * UTF-8 character (an invalid or cut sequence, an overlong form, a
 * surrogate) and every NUL with '?', so that the text is valid UTF-8 of
 * the same length. Returns how many bytes it replaced. */
size_t cairn_utf8_scrub(char *s, size_t len);

/* The length of the valid UTF-8 character that starts s[0..len), or 0
 * when none does (NUL counts as invalid). */
size_t cairn_utf8_char_len(const unsigned char *s, size_t len);

/* How many of the n bytes of s to keep so as not to cut a character in
 * two: n, or less when s[n] continues a character. s has more than n
 * bytes. */
size_t cairn_utf8_cut(const char *s, size_t n);

/* 1 when the NUL-terminated s is valid UTF-8 throughout (JSON can hold
 * it), else 0. */
int cairn_utf8_valid(const char *s);

/* How many characters the NUL-terminated s holds: one for each valid
 * UTF-8 character and one for each byte that begins none (a terminal
 * shows it as one replacement character). Not display columns: a wide
 * (CJK) character counts one, a combining mark one. */
size_t cairn_utf8_chars(const char *s);

/* The last line of s[0..len) that holds more than blanks, trimmed of
 * blanks and '\r' on both sides: its start (in s) and *n its length; s
 * itself and *n = 0 when there is none. */
const char *cairn_last_line(const char *s, size_t len, size_t *n);

#endif
