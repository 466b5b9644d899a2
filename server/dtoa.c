/* dtoa.c - shortest round-trip text of a double or a float (Grisu2, as in Loitsch 2010 and
 * RapidJSON; the float uses the same steps on its 24-bit significand and narrower interval).
 *
 * glibc's printf("%.17g") computes every digit with multi-precision arithmetic; on a small loss
 * request it was a third of the server's CPU. Grisu2 needs one 64x64->128 multiplication per
 * number and always produces digits that read back to the same double (not always the very
 * shortest such digits). tests/server/test_dtoa.c checks the round trip on random doubles. */
#include "dtoa.h"

#include <stdint.h>
#include <string.h>

/* 10^k = f 2^e for k = -348, -340, ..., 340 (rounded to nearest; generated exactly). */
static const uint64_t cached_f[87] = {
    0xfa8fd5a0081c0288ull, 0xbaaee17fa23ebf76ull, 0x8b16fb203055ac76ull, 0xcf42894a5dce35eaull,
    0x9a6bb0aa55653b2dull, 0xe61acf033d1a45dfull, 0xab70fe17c79ac6caull, 0xff77b1fcbebcdc4full,
    0xbe5691ef416bd60cull, 0x8dd01fad907ffc3cull, 0xd3515c2831559a83ull, 0x9d71ac8fada6c9b5ull,
    0xea9c227723ee8bcbull, 0xaecc49914078536dull, 0x823c12795db6ce57ull, 0xc21094364dfb5637ull,
    0x9096ea6f3848984full, 0xd77485cb25823ac7ull, 0xa086cfcd97bf97f4ull, 0xef340a98172aace5ull,
    0xb23867fb2a35b28eull, 0x84c8d4dfd2c63f3bull, 0xc5dd44271ad3cdbaull, 0x936b9fcebb25c996ull,
    0xdbac6c247d62a584ull, 0xa3ab66580d5fdaf6ull, 0xf3e2f893dec3f126ull, 0xb5b5ada8aaff80b8ull,
    0x87625f056c7c4a8bull, 0xc9bcff6034c13053ull, 0x964e858c91ba2655ull, 0xdff9772470297ebdull,
    0xa6dfbd9fb8e5b88full, 0xf8a95fcf88747d94ull, 0xb94470938fa89bcfull, 0x8a08f0f8bf0f156bull,
    0xcdb02555653131b6ull, 0x993fe2c6d07b7facull, 0xe45c10c42a2b3b06ull, 0xaa242499697392d3ull,
    0xfd87b5f28300ca0eull, 0xbce5086492111aebull, 0x8cbccc096f5088ccull, 0xd1b71758e219652cull,
    0x9c40000000000000ull, 0xe8d4a51000000000ull, 0xad78ebc5ac620000ull, 0x813f3978f8940984ull,
    0xc097ce7bc90715b3ull, 0x8f7e32ce7bea5c70ull, 0xd5d238a4abe98068ull, 0x9f4f2726179a2245ull,
    0xed63a231d4c4fb27ull, 0xb0de65388cc8ada8ull, 0x83c7088e1aab65dbull, 0xc45d1df942711d9aull,
    0x924d692ca61be758ull, 0xda01ee641a708deaull, 0xa26da3999aef774aull, 0xf209787bb47d6b85ull,
    0xb454e4a179dd1877ull, 0x865b86925b9bc5c2ull, 0xc83553c5c8965d3dull, 0x952ab45cfa97a0b3ull,
    0xde469fbd99a05fe3ull, 0xa59bc234db398c25ull, 0xf6c69a72a3989f5cull, 0xb7dcbf5354e9beceull,
    0x88fcf317f22241e2ull, 0xcc20ce9bd35c78a5ull, 0x98165af37b2153dfull, 0xe2a0b5dc971f303aull,
    0xa8d9d1535ce3b396ull, 0xfb9b7cd9a4a7443cull, 0xbb764c4ca7a44410ull, 0x8bab8eefb6409c1aull,
    0xd01fef10a657842cull, 0x9b10a4e5e9913129ull, 0xe7109bfba19c0c9dull, 0xac2820d9623bf429ull,
    0x80444b5e7aa7cf85ull, 0xbf21e44003acdd2dull, 0x8e679c2f5e44ff8full, 0xd433179d9c8cb841ull,
    0x9e19db92b4e31ba9ull, 0xeb96bf6ebadf77d9ull, 0xaf87023b9bf0ee6bull,
};
static const int16_t cached_e[87] = {
    -1220, -1193, -1166, -1140, -1113, -1087, -1060, -1034, -1007, -980, -954, -927, -901,
    -874,  -847,  -821,  -794,  -768,  -741,  -715,  -688,  -661,  -635, -608, -582, -555,
    -529,  -502,  -475,  -449,  -422,  -396,  -369,  -343,  -316,  -289, -263, -236, -210,
    -183,  -157,  -130,  -103,  -77,   -50,   -24,   3,     30,    56,   83,   109,  136,
    162,   189,   216,   242,   269,   295,   322,   348,   375,   402,  428,  455,  481,
    508,   534,   561,   588,   614,   641,   667,   694,   720,   747,  774,  800,  827,
    853,   880,   907,   933,   960,   986,   1013,  1039,  1066,
};

typedef struct {
  uint64_t f;
  int e;
} diyfp;

__extension__ typedef unsigned __int128 u128; /* GCC and Clang on 64-bit targets */

static diyfp mul(diyfp a, diyfp b)
{
  u128 p = (u128)a.f * b.f;
  uint64_t h = (uint64_t)(p >> 64), l = (uint64_t)p;
  if (l & ((uint64_t)1 << 63)) h++; /* round */
  return (diyfp){h, a.e + b.e + 64};
}

static diyfp normalize(diyfp x)
{
  int s = __builtin_clzll(x.f);
  return (diyfp){x.f << s, x.e - s};
}

static const uint32_t pow10_32[] = {1,      10,      100,      1000,      10000,
                                    100000, 1000000, 10000000, 100000000, 1000000000};

static int digits32(uint32_t n)
{
  int k = 1;
  while (k < 10 && n >= pow10_32[k]) k++;
  return k;
}

/* p / 10^k with a constant divisor in each case: the compiler turns each into a multiply and a
 * shift, where a divisor loaded from a table costs a hardware division (~25 cycles) per digit. */
static inline uint32_t div10(int k, uint32_t p)
{
  switch (k) {
  case 9:
    return p / 1000000000u;
  case 8:
    return p / 100000000u;
  case 7:
    return p / 10000000u;
  case 6:
    return p / 1000000u;
  case 5:
    return p / 100000u;
  case 4:
    return p / 10000u;
  case 3:
    return p / 1000u;
  case 2:
    return p / 100u;
  case 1:
    return p / 10u;
  default:
    return p;
  }
}

static void grisu_round(char *buf, int len, uint64_t delta, uint64_t rest, uint64_t ten_kappa,
                        uint64_t wp_w)
{
  while (rest < wp_w && delta - rest >= ten_kappa &&
         (rest + ten_kappa < wp_w || wp_w - rest > rest + ten_kappa - wp_w)) {
    buf[len - 1]--;
    rest += ten_kappa;
  }
}

static void digit_gen(diyfp W, diyfp Mp, uint64_t delta, char *buf, int *len, int *K)
{
  static const uint64_t pow10_64[] = {1ull,
                                      10ull,
                                      100ull,
                                      1000ull,
                                      10000ull,
                                      100000ull,
                                      1000000ull,
                                      10000000ull,
                                      100000000ull,
                                      1000000000ull,
                                      10000000000ull,
                                      100000000000ull,
                                      1000000000000ull,
                                      10000000000000ull,
                                      100000000000000ull,
                                      1000000000000000ull,
                                      10000000000000000ull,
                                      100000000000000000ull,
                                      1000000000000000000ull,
                                      10000000000000000000ull};
  diyfp one = {(uint64_t)1 << -Mp.e, Mp.e};
  uint64_t wp_w = Mp.f - W.f;
  uint32_t p1 = (uint32_t)(Mp.f >> -one.e);
  uint64_t p2 = Mp.f & (one.f - 1);
  int kappa = digits32(p1), n = 0; /* n: digits so far (a local: *len would alias buf) */
  if (p2 > delta) {                /* no prefix of p1 can end the number: all its digits at once */
    if (p1) {
      for (int i = kappa; i > 0; p1 /= 10) buf[--i] = (char)('0' + p1 % 10);
      n = kappa;
    }
    kappa = 0;
  }
  while (kappa > 0) {
    uint32_t d = div10(kappa - 1, p1);
    p1 -= d * pow10_32[kappa - 1];
    if (d || n) buf[n++] = (char)('0' + d);
    kappa--;
    uint64_t tmp = ((uint64_t)p1 << -one.e) + p2;
    if (tmp <= delta) {
      *K += kappa;
      *len = n;
      grisu_round(buf, n, delta, tmp, pow10_64[kappa] << -one.e, wp_w);
      return;
    }
  }
  for (;;) {
    p2 *= 10;
    delta *= 10;
    char d = (char)(p2 >> -one.e);
    if (d || n) buf[n++] = (char)('0' + d);
    p2 &= one.f - 1;
    kappa--;
    if (p2 < delta) {
      *K += kappa;
      *len = n;
      int idx = -kappa;
      grisu_round(buf, n, delta, p2, one.f, wp_w * (idx < 20 ? pow10_64[idx] : 0));
      return;
    }
  }
}

/* Digits of w = f 2^e > 0 into buf (up to 17), their count in *len, and w = digits * 10^K.
 * lower_closer: f is the smallest significand of its binade, so the next value down is half as
 * far away as the next value up (the boundaries of the rounding interval are then asymmetric). */
static void grisu2(uint64_t f, int e, int lower_closer, char *buf, int *len, int *K)
{
  diyfp w = {f, e};
  /* boundaries m- and m+, normalised to m+'s exponent */
  diyfp pl = normalize((diyfp){(w.f << 1) + 1, w.e - 1});
  diyfp mi = lower_closer ? (diyfp){(w.f << 2) - 1, w.e - 2} : (diyfp){(w.f << 1) - 1, w.e - 1};
  mi.f <<= mi.e - pl.e;
  mi.e = pl.e;
  /* a cached power c = 10^-k with exponent such that the product lands in [-60, -32] */
  double dk = (-61 - pl.e) * 0.30102999566398114 + 347;
  int k = (int)dk;
  if (dk - k > 0.0) k++;
  unsigned idx = (unsigned)((k >> 3) + 1);
  *K = -(-348 + (int)(idx << 3));
  diyfp c = {cached_f[idx], cached_e[idx]};
  diyfp W = mul(normalize(w), c), Wp = mul(pl, c), Wm = mul(mi, c);
  Wm.f++;
  Wp.f--;
  digit_gen(W, Wp, Wp.f - Wm.f, buf, len, K);
}

/* JSON text of the value digits * 10^K (a leading '-' when neg) into p; returns the length. */
static int format(const char *d, int len, int K, int neg, char *out)
{
  char *p = out;
  if (neg) *p++ = '-';
  int exp10 = len + K; /* v = 0.d1d2... * 10^exp10 */
  if (exp10 > 0 && exp10 <= 21) {
    if (len <= exp10) { /* an integer: digits, zeros, ".0" */
      memcpy(p, d, (size_t)len);
      memset(p + len, '0', (size_t)(exp10 - len));
      p += exp10;
      memcpy(p, ".0", 2);
      p += 2;
    } else {
      memcpy(p, d, (size_t)exp10);
      p += exp10;
      *p++ = '.';
      memcpy(p, d + exp10, (size_t)(len - exp10));
      p += len - exp10;
    }
  } else if (exp10 <= 0 && exp10 > -6) { /* 0.000ddd */
    memcpy(p, "0.", 2);
    p += 2;
    memset(p, '0', (size_t)-exp10);
    p += -exp10;
    memcpy(p, d, (size_t)len);
    p += len;
  } else { /* d.ddde+-x */
    *p++ = d[0];
    *p++ = '.';
    if (len > 1) {
      memcpy(p, d + 1, (size_t)(len - 1));
      p += len - 1;
    } else {
      *p++ = '0';
    }
    int e = exp10 - 1;
    *p++ = 'e';
    if (e < 0) {
      *p++ = '-';
      e = -e;
    }
    char t[4];
    int n = 0;
    do {
      t[n++] = (char)('0' + e % 10);
      e /= 10;
    } while (e);
    while (n) *p++ = t[--n];
  }
  *p = 0;
  return (int)(p - out);
}

/* The shortest text of the binary value with biased exponent be and significand field sig of
 * mbits bits (ebias the exponent bias): the format-independent part of both entry points. */
static int shortest(uint64_t sig, int be, int mbits, int ebias, int neg, char *out)
{
  if (!be && !sig) return format("0", 1, -1, neg, out); /* "0.0", "-0.0" */
  char d[24];
  int len, K, emin = 1 - ebias - mbits; /* the exponent of the subnormals' unit */
  if (be)
    grisu2(sig | (uint64_t)1 << mbits, be - 1 + emin, !sig && be > 1, d, &len, &K);
  else
    grisu2(sig, emin, 0, d, &len, &K);
  return format(d, len, K, neg, out);
}

int lossd_dtoa(double v, char *out)
{
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return shortest(u & 0x000FFFFFFFFFFFFFull, (int)((u >> 52) & 0x7FF), 52, 1023, (int)(u >> 63),
                  out);
}

int lossd_ftoa(float v, char *out)
{
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return shortest(u & 0x007FFFFFu, (int)((u >> 23) & 0xFF), 23, 127, (int)(u >> 31), out);
}
