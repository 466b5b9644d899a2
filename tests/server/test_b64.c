/* test_b64.c - base64 (server/b64.c): RFC 4648 vectors, and the AVX2 loops and the two-thread
 * split held to the scalar codec byte for byte, on every length and every bad character in
 * every lane; runs of text whose end is found as they are decoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "b64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void rfc4648_vectors(void **state)
{
  (void)state;
  const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *text[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int simd = 0; simd < 2; simd++)
    for (int i = 0; i < 7; i++) {
      char enc[16] = {0};
      unsigned char dec[16];
      size_t n = strlen(plain[i]);
      b64_encode_with((const unsigned char *)plain[i], n, enc, simd);
      assert_string_equal(enc, text[i]);
      assert_int_equal(b64_decoded_size(text[i], strlen(text[i])), (long)n);
      assert_int_equal(b64_decode_with(text[i], strlen(text[i]), dec, sizeof dec, simd), (long)n);
      assert_memory_equal(dec, plain[i], n);
    }
}

/* Every 6-bit value in every position of the vector loop: the alphabet four times, rotated. */
static void whole_alphabet(void **state)
{
  (void)state;
  char text[257], again[257] = {0};
  unsigned char bytes[192];
  for (int rot = 0; rot < 64; rot++) {
    for (int i = 0; i < 256; i++) text[i] = alphabet[(i + rot) % 64];
    text[256] = 0;
    assert_int_equal(b64_decode(text, 256, bytes, sizeof bytes), 192);
    b64_encode_raw(bytes, 192, again);
    assert_string_equal(again, text);
    unsigned char ref[192];
    assert_int_equal(b64_decode_with(text, 256, ref, sizeof ref, 0), 192);
    assert_memory_equal(bytes, ref, 192);
  }
}

/* Every length up to 400 through every path (scalar or vector, one thread or two halves): the
 * same text, and the same bytes back. */
static void random_lengths(void **state)
{
  (void)state;
  enum { MAX = 400 };
  unsigned char in[MAX], out[MAX], ref[MAX];
  char a[MAX / 3 * 4 + 8], b[MAX / 3 * 4 + 8];
  srand(7);
  for (size_t n = 0; n < MAX; n++) {
    for (size_t i = 0; i < n; i++) in[i] = (unsigned char)rand();
    size_t len = (n + 2) / 3 * 4;
    b64_encode_with(in, n, b, 0);
    assert_int_equal(b64_decoded_size(b, len), (long)n);
    assert_int_equal(b64_decode_with(b, len, ref, n, 0), (long)n);
    assert_memory_equal(ref, in, n);
    for (int flags = 1; flags < 4; flags++) {
      b64_encode_with(in, n, a, flags);
      if (memcmp(a, b, len)) fail_msg("length %zu, flags %d: encodings differ", n, flags);
      assert_int_equal(b64_decode_with(a, len, out, n, flags), (long)n);
      assert_memory_equal(out, in, n);
      if (n) assert_int_equal(b64_decode_with(a, len, out, n - 1, flags), -1); /* too small */
    }
  }
}

/* Each of the 256 byte values at each of the first 96 positions of a 128-character text: both
 * paths accept exactly the alphabet and decode it to the same bytes. */
static void every_bad_byte(void **state)
{
  (void)state;
  char text[128];
  unsigned char x[96], y[96];
  for (int pos = 0; pos < 96; pos++)
    for (int c = 0; c < 256; c++) {
      for (int i = 0; i < 128; i++) text[i] = alphabet[(i * 7) % 64];
      text[pos] = (char)c;
      long s = b64_decode_with(text, 128, x, sizeof x, 1);
      long r = b64_decode_with(text, 128, y, sizeof y, 0);
      int valid = c && strchr(alphabet, c) != NULL;
      if (s != r || s != (valid ? 96 : -1))
        fail_msg("byte 0x%02x at %d: simd %ld, scalar %ld", c, pos, s, r);
      if (valid) assert_memory_equal(x, y, 96);
    }
}

/* A run stops at the quad that holds the first character outside the alphabet, wherever it
 * falls (in a vector block, in the slack before the end, in the scalar tail, in either half of
 * a split), and every path decodes the same run to the same bytes as b64_decode of that
 * prefix. */
static void runs(void **state)
{
  (void)state;
  enum { N = 200 };
  char text[N];
  unsigned char x[N], ref[N];
  const char stops[] = {'"', '\\', '=', '*', 0};
  for (int pos = 0; pos <= N; pos++)
    for (int k = 0; k < (int)sizeof stops; k++) {
      for (int i = 0; i < N; i++) text[i] = alphabet[(i * 11 + pos) % 64];
      if (pos < N) text[pos] = stops[k];
      size_t want = pos < N ? (size_t)pos / 4 * 4 : N;
      assert_int_equal(b64_decode(text, want, ref, sizeof ref), (long)(want / 4 * 3));
      for (int flags = 0; flags < 4; flags++) {
        size_t got = b64_decode_run_with(text, N, x, flags);
        if (got != want) fail_msg("stop at %d, flags %d: run of %zu", pos, flags, got);
        assert_memory_equal(x, ref, want / 4 * 3);
      }
    }
}

/* Past B64_SPLIT_MIN the public functions split the work: a large tensor codes to the same text
 * and bytes as one thread does, and a run over large text stops where one thread stops, whether
 * the end falls in the first half or the second. */
static void large_split(void **state)
{
  (void)state;
  size_t n = B64_SPLIT_MIN / 4 * 3 + 1000, len = (n + 2) / 3 * 4;
  unsigned char *in = malloc(n), *out = malloc(n + 3);
  char *a = malloc(len), *b = malloc(len);
  assert_non_null(in), assert_non_null(out), assert_non_null(a), assert_non_null(b);
  srand(11);
  for (size_t i = 0; i < n; i++) in[i] = (unsigned char)rand();
  b64_encode_raw(in, n, a);
  b64_encode_with(in, n, b, B64_SIMD);
  assert_memory_equal(a, b, len);
  assert_int_equal(b64_decode(a, len, out, n), (long)n);
  assert_memory_equal(out, in, n);
  size_t stops[] = {len / 4 + 1, len / 2 - 2, len / 2 + 6, len - 9};
  for (size_t k = 0; k < sizeof stops / sizeof *stops; k++) {
    memcpy(b, a, len);
    b[stops[k]] = '"';
    size_t want = stops[k] / 4 * 4;
    if (b64_decode_run(b, len, out) != want) fail_msg("stop at %zu", stops[k]);
    assert_memory_equal(out, in, want / 4 * 3);
  }
  free(in), free(out), free(a), free(b);
}

static void bad_texts(void **state)
{
  (void)state;
  unsigned char out[64];
  assert_int_equal(b64_decoded_size("AAA", 3), -1);
  const char *bad[] = {"AB=C", "A===", "AB*D", "AAAA=AAA", "AAAAAA==AAAA", "AA=A"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    for (int simd = 0; simd < 2; simd++)
      assert_int_equal(b64_decode_with(bad[i], strlen(bad[i]), out, sizeof out, simd), -1);
  assert_int_equal(b64_decode("AAAAAQ==", 8, out, sizeof out), 4);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(rfc4648_vectors),
                                     cmocka_unit_test(whole_alphabet),
                                     cmocka_unit_test(random_lengths),
                                     cmocka_unit_test(every_bad_byte),
                                     cmocka_unit_test(runs),
                                     cmocka_unit_test(large_split),
                                     cmocka_unit_test(bad_texts)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
