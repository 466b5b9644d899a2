/* dtoa.c - the shortest text that reads back to the same double or float (Schubfach, as in
 * Giulietti 2020, "The Schubfach way to render doubles"; the float uses the same steps on its
 * 24-bit significand).
 *
 * glibc's printf("%.17g") computes every digit with multi-precision arithmetic; on a small loss
 * request it was a third of the server's CPU. Schubfach needs three 64x128-bit multiplications
 * per number and gives the shortest digits in the value's rounding interval, and of those the
 * closest to the value: what Python's repr and JavaScript print. tests/server/test_dtoa.c holds
 * it to glibc's correctly rounded "%.{p}e" at the shortest p that reads back. */
#include "dtoa.h"

#include <stdint.h>
#include <string.h>

#include "pow5.h"

__extension__ typedef unsigned __int128 u128; /* GCC and Clang on 64-bit targets */

/* floor(g cp / 2^128) for the 128-bit g, its last bit set when the remainder is not 0 (round
 * to odd): the two extra bits below the decimal point and this sticky bit are all Schubfach
 * needs to compare the scaled value and its boundaries exactly. With g an upper bound of the
 * power, the remainder of an exact integer is below 2^64 and every other remainder
 * is above it (the paper's §9), so the top 64 bits of the remainder decide. */
static inline uint64_t round_to_odd(const uint64_t g[2], uint64_t cp)
{
  u128 x = (u128)g[1] * cp, y = (u128)g[0] * cp;
  u128 z = (y & UINT64_MAX) + (x >> 64);
  uint64_t hi = (uint64_t)(y >> 64) + (uint64_t)(z >> 64);
  return hi | ((uint64_t)z > 1);
}

/* Schubfach: the decimal m 10^K in the rounding interval of v = c 2^q with the fewest digits,
 * and of those the closest to v (ties to even m); m may end in zeros. lower_closer: c is the
 * smallest significand of its binade, so the next value down is half as far away. */
static uint64_t schubfach(uint64_t c, int q, int lower_closer, int *K)
{
  int even = !(c & 1);
  uint64_t cb = c << 2, cbl = cb - 2 + (uint64_t)lower_closer, cbr = cb + 2;
  /* k = floor(log10 of the interval's width), so it holds one or more multiples of 10^k and
   * at most one of 10^(k+1); the formulas hold for |q| <= 1500 (checked by the generator) */
  int k = (q * 1262611 - (lower_closer ? 524031 : 0)) >> 22;
  int h = q + ((-k * 1741647) >> 19) + 1; /* 1..4: aligns v 10^-k to the table's scale */
  /* g: 10^-k as an upper bound, from the reader's table of 5^q significands (pow5.h): its
   * entry plus 1, except for q in [-27, -1], which are stored as upper bounds already */
  const uint64_t *t = pow5_128[-k - POW5_QMIN];
  uint64_t g[2] = {t[0], t[1]};
  if (k > 27 || k <= 0) g[0] += ++g[1] == 0; /* never carries out: checked by the generator */
  uint64_t vb = round_to_odd(g, cb << h), vbl = round_to_odd(g, cbl << h),
           vbr = round_to_odd(g, cbr << h);
  uint64_t lower = vbl + !even, upper = vbr - !even; /* the boundaries belong to an even c */
  uint64_t s = vb >> 2;                              /* floor(v 10^-k) */
  if (s >= 10) { /* one digit fewer: at most one multiple of 10^(k+1) is inside */
    uint64_t sp = s / 10;
    int up = lower <= 40 * sp, wp = 40 * sp + 40 <= upper;
    if (up != wp) {
      *K = k + 1;
      return sp + (uint64_t)wp;
    }
  }
  int u = lower <= 4 * s, w = 4 * s + 4 <= upper;
  *K = k;
  if (u != w) return s + (uint64_t)w;
  uint64_t mid = 4 * s + 2; /* both inside: the closer, ties to even */
  return s + (uint64_t)(vb > mid || (vb == mid && (s & 1)));
}

/* The 8 digits of n < 10^8 as ASCII, the first in the lowest byte: 4+4, then 2+2 in each
 * half, then 1+1 in each quarter, each split by a multiply and a shift in all lanes at once
 * (exact for every n < 10^8; checked exhaustively once). */
static inline uint64_t digits8(uint32_t n)
{
  uint64_t x = n, hi = x / 10000, lo = x % 10000;
  uint64_t m = hi | lo << 32;                                 /* 4+4 digits, first half low */
  uint64_t top = ((m * 10486) >> 20) & 0x0000007F0000007Full; /* /100 in each 32-bit lane */
  uint64_t h = top | (m - 100 * top) << 16;                   /* 2-digit groups, 16-bit lanes */
  uint64_t t = ((h * 103) >> 10) & 0x000F000F000F000Full;     /* /10 in each 16-bit lane */
  return (t | (h - 10 * t) << 8) + 0x3030303030303030ull;
}

static const uint64_t pow10_64[18] = {1ull,
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
                                      100000000000000000ull};

/* The digits of m < 10^17 as 24 characters D, zero-padded on the left: D[7] in top, D[8..16)
 * in w[0] and D[16..24) in w[1], the way digits8 lays them out. */
typedef struct {
  uint64_t w[2];
  char top;
} digits_t;

/* Writes D[s .. s+n) at p (s >= 7) with unaligned 8-byte stores, never reading them back (a
 * load across several smaller stores stalls store forwarding); bytes up to p + 24 - s may be
 * overwritten with later digits, which the caller writes over. */
static inline void put_digits(const digits_t *D, int s, char *p)
{
  if (s >= 16) {
    uint64_t a = D->w[1] >> 8 * (s - 16);
    memcpy(p, &a, 8);
    return;
  }
  if (s == 7) *p++ = D->top, s = 8;
  uint64_t a = D->w[0] >> 8 * (s - 8);
  memcpy(p, &a, 8);
  memcpy(p + 16 - s, &D->w[1], 8);
}

/* JSON text of m 10^K (m > 0, m < 10^17; a leading '-' when neg) at out (32 bytes); returns
 * its length: "12.5", "0.00125" (down to 1e-6), "1.25e-7", "1.0e21", integers with ".0". */
static int format(uint64_t m, int K, int neg, char *out)
{
  digits_t D;
  uint64_t hi = m / 100000000;
  D.w[1] = digits8((uint32_t)(m - hi * 100000000));
  uint64_t top = hi / 100000000;
  D.w[0] = digits8((uint32_t)(hi - top * 100000000));
  D.top = (char)('0' + top);
  int bits = 64 - __builtin_clzll(m), t = (bits * 1233) >> 12;
  int len = t + (m >= pow10_64[t]); /* decimal digits of m */
  int tz;                           /* its trailing zeros: the '0' bytes at the top of the words */
  uint64_t x1 = D.w[1] ^ 0x3030303030303030ull, x0 = D.w[0] ^ 0x3030303030303030ull;
  if (x1)
    tz = __builtin_clzll(x1) >> 3;
  else
    tz = x0 ? 8 + (__builtin_clzll(x0) >> 3) : 16;
  int s = 24 - len; /* the first digit in D */
  len -= tz;
  K += tz;
  char *p = out;
  if (neg) *p++ = '-';
  int exp10 = len + K; /* v = 0.d1d2... * 10^exp10 */
  if (exp10 > 0 && exp10 <= 21) {
    if (len <= exp10) { /* an integer: digits, zeros, ".0" */
      put_digits(&D, s, p);
      memset(p + len, '0', (size_t)(exp10 - len));
      p += exp10;
      memcpy(p, ".0", 2);
      p += 2;
    } else { /* digits shifted one right, then the integer part moved back over the gap */
      put_digits(&D, s, p + 1);
      for (int i = 0; i < exp10; i++) p[i] = p[i + 1];
      p[exp10] = '.';
      p += len + 1;
    }
  } else if (exp10 <= 0 && exp10 > -6) { /* 0.000ddd */
    memcpy(p, "0.00000000", 8);
    p += 2 - exp10;
    put_digits(&D, s, p);
    p += len;
  } else { /* d.ddde+-x */
    put_digits(&D, s, p + 1);
    p[0] = p[1];
    p[1] = '.';
    if (len == 1) p[2] = '0';
    p += len > 1 ? len + 1 : 3;
    int e = exp10 - 1;
    *p++ = 'e';
    if (e < 0) {
      *p++ = '-';
      e = -e;
    }
    if (e >= 100) *p++ = (char)('0' + e / 100);
    if (e >= 10) *p++ = (char)('0' + e / 10 % 10);
    *p++ = (char)('0' + e % 10);
  }
  *p = 0;
  return (int)(p - out);
}

/* The shortest text of the binary value with biased exponent be and significand field sig of
 * mbits bits (ebias the exponent bias): the format-independent part of both entry points. */
static int shortest(uint64_t sig, int be, int mbits, int ebias, int neg, char *out)
{
  if (!be && !sig) { /* "0.0", "-0.0" */
    memcpy(out, "-0.0", 5);
    if (!neg) memmove(out, out + 1, 4);
    return 3 + neg;
  }
  int K = 0, q = (be ? be - 1 : 0) + 1 - ebias - mbits; /* v = c 2^q */
  uint64_t c = be ? sig | (uint64_t)1 << mbits : sig, m;
  if (be && q <= 0 && q > -mbits - 1 && !(c & (((uint64_t)1 << -q) - 1)))
    m = c >> -q; /* an integer below 2^(mbits+1): its own shortest digits */
  else
    m = schubfach(c, q, be > 1 && !sig, &K);
  return format(m, K, neg, out);
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
