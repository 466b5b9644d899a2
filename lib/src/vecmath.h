/* vecmath.h - vector exp and log for the hot kernels (float32: 8 lanes; float64 exp: 4).
 *
 * GCC does not vectorise calls to expf/logf without -ffast-math (banned here: it assumes no
 * NaN/Inf), so the float32 kernels use these polynomial forms written with vector extensions.
 * Accuracy (tested in tests/lib/test_vecmath.c against libm in double):
 *   loss__vexp: relative error <= 1.5e-7 on [-87.33, 88.72] (every float checked); 0 below
 *               -87.33654 (where expf itself returns subnormals below 1.2e-38); +inf above
 *               88.72283; NaN propagates. loss__vexp_neg is the same on x <= 0.
 *   loss__vexp_d (float64): within 1 ulp of libm's exp on [-708, 709] (9% of results differ
 *               from glibc's by 1 ulp); callers route other arguments to exp().
 *   loss__vlog1p_unit: log(1 + e) for e in [0, 1], relative error <= 1.5e-7.
 *   loss__vlog: relative error <= 3e-7 for every positive x, subnormals included; -inf at 0,
 *               NaN for x < 0 or NaN, +inf at +inf. */
#ifndef LOSS_VECMATH_H
#define LOSS_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float loss__v8f __attribute__((vector_size(32)));
typedef int32_t loss__v8i __attribute__((vector_size(32)));
typedef uint32_t loss__v8u __attribute__((vector_size(32))); /* bit arithmetic that may wrap */
typedef double loss__v4d __attribute__((vector_size(32)));
typedef int64_t loss__v4l __attribute__((vector_size(32)));  /* a loss__v4d comparison's mask */
typedef uint64_t loss__v4u __attribute__((vector_size(32))); /* float64 bit arithmetic */

static inline __attribute__((always_inline)) loss__v8f loss__v8f_splat(float x)
{
  return (loss__v8f){0} + x; /* GCC broadcasts the scalar: one vbroadcastss, hoisted */
}

static inline __attribute__((always_inline)) loss__v8f loss__v8f_load(const float *p)
{
  loss__v8f v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline __attribute__((always_inline)) void loss__v8f_store(float *p, loss__v8f v)
{
  memcpy(p, &v, sizeof v);
}

static inline __attribute__((always_inline)) loss__v8f loss__vselect(loss__v8i mask, loss__v8f a,
                                                                     loss__v8f b)
{
  loss__v8i r = (mask & (loss__v8i)a) | (~mask & (loss__v8i)b);
  return (loss__v8f)r;
}

/* e^x = 2^k 2^(j/8) e^r with n = 8k + j = round(8x / ln2): a two-constant Cody-Waite reduction
 * to |r| <= ln2/16, 2^(j/8) from an 8-entry table in one register (vpermps), and e^r - 1 as a
 * degree-3 polynomial (minimax for relative error on [-ln2/16, ln2/16], 2.6e-8). Seven
 * multiply-adds and a shallow dependency chain: Zen 1's small FP scheduler holds few 256-bit
 * operations, so a short chain matters as much as a short count. Returns y = 2^(j/8) e^r, in
 * [0.95, 1.92], and the bits of the rounding register t, whose value is n + 1.5 2^23 (so its
 * low 3 bits are j and (t << 20) & 0xff800000 is k << 23). */
static inline __attribute__((always_inline)) loss__v8f loss__vexp_core(loss__v8f x, loss__v8i *ti)
{
  const loss__v8f magic = loss__v8f_splat(12582912.0f); /* 1.5 * 2^23: rounds to integer */
  const loss__v8f tab = {1.0f,
                         1.0905077326652577f,
                         1.1892071150027210f,
                         1.2968395546510096f,
                         1.4142135623730951f,
                         1.5422108254079408f,
                         1.6817928305074290f,
                         1.8340080864093424f};   /* 2^(j/8) */
  loss__v8f t = x * 11.541560327111707f + magic; /* 8 / ln2 */
  loss__v8f n = t - magic;
  *ti = (loss__v8i)t;
  loss__v8f r = x - n * 0.086669921875f; /* ln2/8 in 10 bits: n * this is exact */
  r = r - n * -2.65243050e-5f;           /* ln2/8 - 0.086669921875 */
#if defined(__clang__)                   /* no variable-index __builtin_shuffle; lane by lane */
  loss__v8f tj;
  for (int l = 0; l < 8; l++) tj[l] = tab[(*ti)[l] & 7];
#else
  loss__v8f tj = __builtin_shuffle(tab, *ti); /* vpermps: j = the low 3 bits */
#endif
  loss__v8f q = (r * 0.1666685789823532f + 0.500064492225647f) * (r * r) + r;
  return tj * q + tj;
}

/* e^x for x <= 0 (no overflow path): the kernels' exp(z - max z). 2^k is applied by adding k to
 * the exponent field, which is exact while the result is normal, i.e. down to the cutoff. */
static inline __attribute__((always_inline)) loss__v8f loss__vexp_neg(loss__v8f x)
{
  loss__v8i ti;
  loss__v8f y = loss__vexp_core(x, &ti);
  y = (loss__v8f)((loss__v8u)y + (((loss__v8u)ti << 20) & 0xff800000u));
  return loss__vselect(x < -87.33654f, loss__v8f_splat(0.0f), y);
}

static inline __attribute__((always_inline)) loss__v8f loss__vexp(loss__v8f x)
{
  loss__v8i ti;
  loss__v8f p = loss__vexp_core(x, &ti);
  loss__v8i k = (loss__v8i)((loss__v8u)ti - (loss__v8u)loss__v8f_splat(12582912.0f)) >> 3;
  loss__v8i top = k > 127; /* 2^128 does not exist: scale by 2^(k-1), then double */
  loss__v8f y = p * (loss__v8f)((loss__v8u)(k + top + 127) << 23);
  y = loss__vselect(top, y * 2.0f, y);
  y = loss__vselect(x < -87.33654f, loss__v8f_splat(0.0f), y);
  y = loss__vselect(x > 88.72283f, loss__v8f_splat(__builtin_inff()), y);
  return loss__vselect(x != x, x, y); /* NaN propagates */
}

/* e^x in float64, 4 lanes, for x in [-708, 709] (callers send other lanes to libm): n =
 * round(x / ln2), r = x - n ln2 in two parts (fdlibm's split, n ln2_hi exact), e^r by its
 * Taylor series to degree 13 (truncation below 4e-18 at |r| <= ln2/2) summed as
 * 1 + (r + r^2 (1/2 + r (1/6 + ...))), and 2^n added to the exponent field. */
static inline __attribute__((always_inline)) loss__v4d loss__vexp_d(loss__v4d x)
{
  const loss__v4d magic = {6755399441055744.0, 6755399441055744.0, 6755399441055744.0,
                           6755399441055744.0}; /* 1.5 * 2^52: rounds to integer */
  loss__v4d t = x * 1.4426950408889634 + magic;
  loss__v4d n = t - magic;
  loss__v4d r = x - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  loss__v4d p = r * (1.0 / 6227020800.0) + (1.0 / 479001600.0);
  p = p * r + (1.0 / 39916800.0);
  p = p * r + (1.0 / 3628800.0);
  p = p * r + (1.0 / 362880.0);
  p = p * r + (1.0 / 40320.0);
  p = p * r + (1.0 / 5040.0);
  p = p * r + (1.0 / 720.0);
  p = p * r + (1.0 / 120.0);
  p = p * r + (1.0 / 24.0);
  p = p * r + (1.0 / 6.0);
  p = p * r + 0.5;
  loss__v4d y = 1.0 + (r + (r * r) * p);
  loss__v4u ni = (loss__v4u)t - (loss__v4u)magic;
  return (loss__v4d)((loss__v4u)y + (ni << 52));
}

/* e^x in every lane: loss__vexp_d on [-708, 709], libm's exp for lanes outside it (underflow
 * to subnormals and 0, overflow, NaN), which are rare where this is used. */
static inline __attribute__((always_inline)) loss__v4d loss__vexp_d_all(loss__v4d x)
{
  const loss__v4d lo = {-708, -708, -708, -708}, hi = {709, 709, 709, 709};
  loss__v4d k = loss__vexp_d(x);
  loss__v4l in = (x >= lo) & (x <= hi);
  if (!(in[0] & in[1] & in[2] & in[3]))
    for (int l = 0; l < 4; l++)
      if (!in[l]) k[l] = exp(x[l]);
  return k;
}

/* log(1 + f) + k ln2 for f in [sqrt(1/2) - 1, sqrt(2) - 1]: f - f^2/2 + f^3 P(f) (Cephes logf,
 * no division), ln2 in two parts so that k ln2 adds no rounding of its own. */
static inline __attribute__((always_inline)) loss__v8f loss__vlog1p_ln2(loss__v8f f, loss__v8f k)
{
  loss__v8f f2 = f * f;
  loss__v8f q = f * 7.0376836292e-2f - 1.1514610310e-1f;
  q = q * f + 1.1676998740e-1f;
  q = q * f - 1.2420140846e-1f;
  q = q * f + 1.4249322787e-1f;
  q = q * f - 1.6668057665e-1f;
  q = q * f + 2.0000714765e-1f;
  q = q * f - 2.4999993993e-1f;
  q = q * f + 3.3333331174e-1f;
  loss__v8f lg = f2 * f * q - f2 * 0.5f + f;
  return k * 0.693145751953125f + lg + k * 1.428606765330187045e-06f;
}

static inline __attribute__((always_inline)) loss__v8f loss__vlog(loss__v8f x0)
{
  /* subnormals (a float32 softmax's tail can hold them) scaled into the normal range first */
  loss__v8i sub = (x0 < loss__v8f_splat(1.17549435e-38f)) & (x0 > loss__v8f_splat(0.0f));
  loss__v8f x = loss__vselect(sub, x0 * 8388608.0f, x0); /* 2^23 */
  loss__v8i bits = (loss__v8i)x;
  loss__v8i e = ((bits >> 23) & 0xff) - 127 - (sub & 23);
  loss__v8f m = (loss__v8f)((bits & 0x007fffff) | 0x3f800000); /* [1, 2) */
  /* Move m into [sqrt(1/2), sqrt(2)) so that log1p's argument is small. */
  loss__v8i big = m > loss__v8f_splat(1.41421356f);
  m = loss__vselect(big, m * loss__v8f_splat(0.5f), m);
  e = e + (big & 1);
  loss__v8f y = loss__vlog1p_ln2(m - loss__v8f_splat(1.0f), __builtin_convertvector(e, loss__v8f));
  y = loss__vselect(x0 == loss__v8f_splat(0.0f), loss__v8f_splat(-__builtin_inff()), y);
  y = loss__vselect(x0 == loss__v8f_splat(__builtin_inff()), x0, y);
  y = loss__vselect(x0 < loss__v8f_splat(0.0f), loss__v8f_splat(__builtin_nanf("")), y);
  y = loss__vselect(x0 != x0, x0, y);
  return y;
}

/* log(1 + e) for e in [0, 1], the softplus term log1p(exp(-|x|)): 1 + e is in [1, 2], so no
 * exponent extraction; above sqrt(2) it is halved (f = (e - 1) / 2, plus ln2), else f = e
 * exactly, so small e keeps its low bits (log(1 + e) through a rounded 1 + e loses them), and
 * the same log1p polynomial as loss__vlog. Relative error <= 1.5e-7 on [0, 1]. */
static inline __attribute__((always_inline)) loss__v8f loss__vlog1p_unit(loss__v8f e)
{
  loss__v8i big = e > loss__v8f_splat(1.41421356f - 1.0f);
  loss__v8f f = loss__vselect(big, (e - 1.0f) * 0.5f, e);
  loss__v8f k = (loss__v8f)(big & (loss__v8i)loss__v8f_splat(1.0f)); /* 1 or 0 */
  return loss__vlog1p_ln2(f, k);
}

/* The eight lanes of v in double, added pairwise into four (lane i + lane i+4): how a float
 * block sum joins a double accumulator without a horizontal sum per block. */
static inline __attribute__((always_inline)) loss__v4d loss__v8f_widen_add(loss__v8f v)
{
  return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), loss__v4d) +
         __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), loss__v4d);
}

/* Horizontal sums and max, in double for the sums. */
static inline __attribute__((always_inline)) double loss__vsum_d(loss__v8f v)
{
  double s = 0;
  for (int i = 0; i < 8; i++) s += v[i];
  return s;
}

#endif /* LOSS_VECMATH_H */
