/* b64.h - base64 (RFC 4648, padded), vectorised where the CPU allows. */
#ifndef LOSSD_B64_H
#define LOSSD_B64_H

#include <stddef.h>

/* The byte count the text decodes to, or -1 when its length cannot be base64. */
long b64_decoded_size(const char *in, size_t n);
/* Decode n characters into out (cap bytes); the byte count, or -1 on a bad character, bad
 * padding or too small a buffer. */
long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap);
/* Decode the longest run of whole quads of alphabet characters (no padding) at the start of
 * in[0..n) into out, which holds n / 4 * 3 bytes; returns the characters consumed (a multiple of
 * 4: the bytes decoded are that / 4 * 3; out's bytes after them are unspecified). For text
 * whose end is not known yet. */
size_t b64_decode_run(const char *in, size_t n, unsigned char *out);
/* Write the (n + 2) / 3 * 4 characters of n bytes to out (no terminator). */
void b64_encode_raw(const unsigned char *p, size_t n, char *out);

/* Texts of B64_SPLIT_MIN characters or more (and byte strings of 3/4 of that) are coded in two
 * halves, the second on a helper thread, which nearly halves the time of a large tensor. */
#define B64_SPLIT_MIN ((size_t)4 << 20)

/* The same with the paths chosen by flags: B64_SIMD for the vector loops (where the CPU has
 * them), B64_SPLIT for two threads at any size. For tests that hold every path to the same
 * answers; the functions above use B64_SIMD, and B64_SPLIT from B64_SPLIT_MIN on. */
#define B64_SIMD  1
#define B64_SPLIT 2
long b64_decode_with(const char *in, size_t n, unsigned char *out, size_t cap, int flags);
size_t b64_decode_run_with(const char *in, size_t n, unsigned char *out, int flags);
void b64_encode_with(const unsigned char *p, size_t n, char *out, int flags);

#endif /* LOSSD_B64_H */
