/* b64.c - base64 (RFC 4648, padded) for tensors: a scalar codec and AVX2 bulk loops.
 *
 * Large requests are mostly base64 text, and the scalar table lookups cost about twice the
 * cross-entropy kernel on a 87 MB request. The AVX2 loops (after W. Mula and D. Lemire, "Faster
 * Base64 Encoding and Decoding Using AVX2 Instructions", 2018) turn 24 bytes into 32 characters
 * and back per iteration; the scalar code finishes the tail and is the fallback on CPUs without
 * AVX2. Both paths give identical bytes and reject the same texts (tests/server/test_b64.c).
 * Past B64_SPLIT_MIN a helper thread codes the second half: these loops run at the speed of one
 * core's memory traffic, which a second core nearly doubles. */
#include "b64.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define B64_AVX2 1
#endif

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The reverse table, one more than each character's 6-bit value and 0 for the rest; built at
 * compile time so that no thread ever writes it. */
#define R(c, v) [c] = (v) + 1
#define ROW8(c, v)                                                                                 \
  R(c, v), R(c + 1, v + 1), R(c + 2, v + 2), R(c + 3, v + 3), R(c + 4, v + 4), R(c + 5, v + 5),    \
      R(c + 6, v + 6), R(c + 7, v + 7)
static const signed char b64rev[256] = {ROW8('A', 0), ROW8('I', 8),  ROW8('Q', 16), R('Y', 24),
                                        R('Z', 25),   ROW8('a', 26), ROW8('i', 34), ROW8('q', 42),
                                        R('y', 50),   R('z', 51),    ROW8('0', 52), R('8', 60),
                                        R('9', 61),   R('+', 62),    R('/', 63)};
#undef ROW8
#undef R

static int rev(unsigned char c)
{
  return b64rev[c] - 1;
}

long b64_decoded_size(const char *in, size_t n)
{
  if (n % 4) return -1;
  size_t pad = n && in[n - 1] == '=' ? (n > 1 && in[n - 2] == '=' ? 2 : 1) : 0;
  return (long)(n / 4 * 3 - pad);
}

/* One quad of four alphabet characters into three bytes; -1 (nothing written) when a
 * character is not in the alphabet. */
static int decode_quad(const unsigned char *q, unsigned char *out)
{
  int a = rev(q[0]), b = rev(q[1]), c = rev(q[2]), d = rev(q[3]);
  if ((a | b | c | d) < 0) return -1; /* any -1 sets the sign bit */
  unsigned w = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
  out[0] = (unsigned char)(w >> 16), out[1] = (unsigned char)(w >> 8), out[2] = (unsigned char)w;
  return 0;
}

/* Whole quads from u[0..n) while they are in the alphabet; returns the characters decoded. */
static size_t decode_quads(const unsigned char *u, size_t n, unsigned char *out)
{
  size_t i = 0;
  while (i + 4 <= n && !decode_quad(u + i, out + i / 4 * 3)) i += 4;
  return i;
}

static void encode_triples(const unsigned char *p, size_t n, char *o)
{
  for (size_t i = 0; i + 2 < n; i += 3, o += 4) {
    unsigned w = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    o[0] = b64chars[w >> 18], o[1] = b64chars[(w >> 12) & 63];
    o[2] = b64chars[(w >> 6) & 63], o[3] = b64chars[w & 63];
  }
}

#ifdef B64_AVX2
/* 32 characters -> 24 bytes per iteration while 32 output bytes fit (the store is 32 wide).
 * Validity: a character is in the alphabet iff its low-nibble class and high-nibble class share
 * no bit; the offset to its 6-bit value depends on its high nibble, '/' set apart from '+'.
 * Stops before the first block that holds a character outside the alphabet; returns the
 * characters consumed (a multiple of 32). */
__attribute__((target("avx2"))) static size_t decode_avx2(const unsigned char *u, size_t n,
                                                          unsigned char *out)
{
  const __m256i lut_lo =
      _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B,
                       0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                       0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
  const __m256i lut_hi =
      _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10,
                       0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10,
                       0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
  const __m256i lut_roll =
      _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4, -65,
                       -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m256i nib = _mm256_set1_epi8(0x0f), slash = _mm256_set1_epi8('/');
  /* Each 32-bit lane holds a<<18|b<<12|c<<6|d little-endian; take bytes 2,1,0 of each. */
  const __m256i pack = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2,
                                        1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
  const __m256i gather = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7);
  size_t i = 0;
  for (; i + 44 <= n; i += 32, out += 24) { /* 44: the 24 bytes written + 8 of slack, as text */
    __m256i s = _mm256_loadu_si256((const __m256i *)(u + i));
    __m256i hi = _mm256_and_si256(_mm256_srli_epi32(s, 4), nib);
    __m256i lo = _mm256_and_si256(s, nib);
    __m256i err =
        _mm256_and_si256(_mm256_shuffle_epi8(lut_lo, lo), _mm256_shuffle_epi8(lut_hi, hi));
    if (!_mm256_testz_si256(err, err)) break;
    __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(_mm256_cmpeq_epi8(s, slash), hi));
    __m256i v = _mm256_add_epi8(s, roll);
    v = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140)); /* a*64+b, c*64+d */
    v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x00011000));    /* (a*64+b)*4096 + c*64+d */
    v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pack), gather);
    _mm256_storeu_si256((__m256i *)out, v);
  }
  return i;
}

/* 24 bytes -> 32 characters per iteration while 28 input bytes can be read (two 16-byte loads
 * 12 bytes apart). Each 32-bit lane gets bytes [s1 s0 s2 s1]; multiplies shift the four 6-bit
 * fields into place, and a 14-entry table maps each value range to its ASCII offset. Returns the
 * bytes consumed. */
__attribute__((target("avx2"))) static size_t encode_avx2(const unsigned char *p, size_t n, char *o)
{
  const __m256i spread = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1, 0,
                                          2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
  const __m256i offsets =
      _mm256_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0, 71, -4, -4,
                       -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0);
  size_t i = 0;
  for (; i + 28 <= n; i += 24, o += 32) {
    __m256i s =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(p + i))),
                                _mm_loadu_si128((const __m128i *)(p + i + 12)), 1);
    s = _mm256_shuffle_epi8(s, spread);
    __m256i ac = _mm256_mulhi_epu16(_mm256_and_si256(s, _mm256_set1_epi32(0x0fc0fc00)),
                                    _mm256_set1_epi32(0x04000040));
    __m256i bd = _mm256_mullo_epi16(_mm256_and_si256(s, _mm256_set1_epi32(0x003f03f0)),
                                    _mm256_set1_epi32(0x01000010));
    __m256i idx = _mm256_or_si256(ac, bd);                     /* one 6-bit value per byte */
    __m256i k = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));   /* 52..63 -> 1..12, else 0 */
    __m256i az = _mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx); /* 0..25 */
    k = _mm256_or_si256(k, _mm256_and_si256(az, _mm256_set1_epi8(13)));
    _mm256_storeu_si256((__m256i *)o, _mm256_add_epi8(idx, _mm256_shuffle_epi8(offsets, k)));
  }
  return i;
}

static int have_avx2(void)
{
  return __builtin_cpu_supports("avx2"); /* reads what libgcc's constructor found: no state here */
}
#endif

long b64_decode_with(const char *in, size_t n, unsigned char *out, size_t cap, int flags)
{
  long size = b64_decoded_size(in, n);
  if (size < 0 || (size_t)size > cap) return -1;
  const unsigned char *u = (const unsigned char *)in;
  size_t full = n >= 4 && in[n - 1] == '=' ? n - 4 : n;
  if (b64_decode_run_with(in, full, out, flags) != full) return -1; /* a bad character */
  size_t o = full / 4 * 3;
  if (full < n) { /* the padded last quad */
    const unsigned char *q = u + full;
    int a = rev(q[0]), b = rev(q[1]), c = q[2] == '=' ? 0 : rev(q[2]);
    if (a < 0 || b < 0 || c < 0 || (q[2] == '=' && q[3] != '=')) return -1;
    unsigned w = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6;
    out[o++] = (unsigned char)(w >> 16);
    if (q[2] != '=') out[o++] = (unsigned char)(w >> 8);
  }
  return (long)o;
}

long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
  return b64_decode_with(in, n, out, cap, B64_SIMD | (n >= B64_SPLIT_MIN ? B64_SPLIT : 0));
}

/* One thread's part of a run: the vector loop where the CPU has it, the scalar quads after. */
static size_t decode_run_serial(const char *in, size_t n, unsigned char *out, int simd)
{
  const unsigned char *u = (const unsigned char *)in;
  size_t i = 0;
#ifdef B64_AVX2
  if (simd && have_avx2()) i = decode_avx2(u, n, out);
#else
  (void)simd;
#endif
  return i + decode_quads(u + i, n - i, out + i / 4 * 3);
}

static void encode_serial(const unsigned char *p, size_t n, char *o, int simd)
{
  size_t i = 0;
#ifdef B64_AVX2
  if (simd && have_avx2()) i = encode_avx2(p, n, o);
#else
  (void)simd;
#endif
  encode_triples(p + i, n - i, o + i / 3 * 4);
  size_t whole = n / 3 * 3;
  o += whole / 3 * 4;
  if (whole < n) {
    unsigned w = (unsigned)p[whole] << 16 | (whole + 1 < n ? (unsigned)p[whole + 1] << 8 : 0);
    o[0] = b64chars[w >> 18], o[1] = b64chars[(w >> 12) & 63];
    o[2] = whole + 1 < n ? b64chars[(w >> 6) & 63] : '=';
    o[3] = '=';
  }
}

/* The second half of a split job, on a helper thread. */
typedef struct {
  const void *in;
  size_t n;
  void *out;
  int simd, decode;
  size_t done;        /* decode: the characters consumed */
  atomic_int stopped; /* decode: the first half's run ended early, so this half's is not wanted */
} half_t;

/* A decode's second half goes in steps of this many characters, checking between them whether
 * the first half has found the run's end already: a run over text whose end is not known (a
 * string in the rest of a body) may end long before the middle, and the helper would otherwise
 * decode whatever lies there (another tensor's base64, say) while the caller waits for it. */
#define HALF_STEP ((size_t)1 << 20)

static void *run_half(void *arg)
{
  half_t *h = arg;
  if (!h->decode) {
    encode_serial(h->in, h->n, h->out, h->simd);
    return NULL;
  }
  const char *in = h->in;
  unsigned char *out = h->out;
  while (h->done < h->n && !atomic_load_explicit(&h->stopped, memory_order_relaxed)) {
    size_t k = h->n - h->done < HALF_STEP ? h->n - h->done : HALF_STEP;
    size_t got = decode_run_serial(in + h->done, k, out + h->done / 4 * 3, h->simd);
    h->done += got;
    if (got < k) break;
  }
  return NULL;
}

/* Start h on a helper thread (small stack: the codec uses a few hundred bytes); 0 on success.
 * Base64 of a large tensor runs at the speed of one core's memory traffic, and a second core
 * adds nearly as much again (1.8x measured on the 87 MB request); lossd's pool threads compute
 * other requests meanwhile, so this is the one place a request uses two threads. */
static int start_half(pthread_t *t, half_t *h)
{
  pthread_attr_t a;
  if (pthread_attr_init(&a)) return -1;
  int rc = pthread_attr_setstacksize(&a, (size_t)256 << 10) || pthread_create(t, &a, run_half, h);
  pthread_attr_destroy(&a);
  return rc ? -1 : 0;
}

size_t b64_decode_run_with(const char *in, size_t n, unsigned char *out, int flags)
{
  int simd = flags & B64_SIMD;
  /* Halves at a quad boundary: the run is the first half's when that stops early (the helper's
   * bytes past it are then unspecified, as the contract allows), else both halves' joined. */
  size_t mid = n / 2 / 4 * 4;
  pthread_t t;
  half_t h = {in + mid, n - mid, out + mid / 4 * 3, simd, 1, 0, 0};
  if ((flags & B64_SPLIT) && mid >= 4 && !start_half(&t, &h)) {
    size_t a = decode_run_serial(in, mid, out, simd);
    if (a < mid) atomic_store_explicit(&h.stopped, 1, memory_order_relaxed);
    pthread_join(t, NULL);
    return a < mid ? a : mid + h.done;
  }
  return decode_run_serial(in, n, out, simd);
}

size_t b64_decode_run(const char *in, size_t n, unsigned char *out)
{
  return b64_decode_run_with(in, n, out, B64_SIMD | (n >= B64_SPLIT_MIN ? B64_SPLIT : 0));
}

void b64_encode_with(const unsigned char *p, size_t n, char *o, int flags)
{
  int simd = flags & B64_SIMD;
  size_t half = n / 2 / 3 * 3; /* whole triples: the padding, if any, is the helper's */
  pthread_t t;
  half_t h = {p + half, n - half, o + half / 3 * 4, simd, 0, 0, 0};
  if ((flags & B64_SPLIT) && half >= 3 && !start_half(&t, &h)) {
    encode_serial(p, half, o, simd);
    pthread_join(t, NULL);
    return;
  }
  encode_serial(p, n, o, simd);
}

void b64_encode_raw(const unsigned char *p, size_t n, char *out)
{
  b64_encode_with(p, n, out, B64_SIMD | (n >= B64_SPLIT_MIN / 4 * 3 ? B64_SPLIT : 0));
}
