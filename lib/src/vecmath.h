/* vecmath.h - 8-lane float32 exp and log for the bandwidth-bound kernels.
 *
 * GCC does not vectorise calls to expf/logf without -ffast-math (banned here: it assumes no
 * NaN/Inf), so the float32 kernels use these polynomial forms written with vector extensions.
 * Accuracy (tested in tests/lib/test_vecmath.c against libm in double):
 *   loss__vexp: relative error <= 2e-7 on [-87.3, 88.72]; 0 below -87.33 (where expf itself
 *               returns subnormals below 1.2e-38); +inf above 88.72; NaN propagates.
 *   loss__vlog: relative error <= 3e-7 for normal positive x; -inf at 0 (and for subnormals,
 *               which are flushed), NaN for x < 0 or NaN, +inf at +inf. */
#ifndef LOSS_VECMATH_H
#define LOSS_VECMATH_H

#include <stdint.h>
#include <string.h>

typedef float loss__v8f __attribute__((vector_size(32)));
typedef int32_t loss__v8i __attribute__((vector_size(32)));
typedef double loss__v4d __attribute__((vector_size(32)));

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

/* e^x = p(r) 2^n: Cody-Waite reduction to |r| <= ln2/2 and a degree-5 polynomial (Cephes expf
 * coefficients). Returns p and n. */
static inline __attribute__((always_inline)) loss__v8f loss__vexp_poly(loss__v8f x, loss__v8i *ni)
{
  const loss__v8f magic = loss__v8f_splat(12582912.0f); /* 1.5 * 2^23: rounds to integer */
  loss__v8f t = x * 1.44269504088896341f + magic;
  loss__v8f n = t - magic;
  *ni = (loss__v8i)t - (loss__v8i)magic;
  loss__v8f r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  loss__v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * (r * r) + r + 1.0f;
}

/* e^x for x <= 0 (no overflow path): the cross-entropy kernel's exp(z - max z). */
static inline __attribute__((always_inline)) loss__v8f loss__vexp_neg(loss__v8f x)
{
  loss__v8i ni;
  loss__v8f y = loss__vexp_poly(x, &ni) * (loss__v8f)((ni + 127) << 23);
  return loss__vselect(x < -87.33654f, loss__v8f_splat(0.0f), y);
}

static inline __attribute__((always_inline)) loss__v8f loss__vexp(loss__v8f x)
{
  loss__v8i ni;
  loss__v8f p = loss__vexp_poly(x, &ni);
  loss__v8i top = ni > 127; /* 2^128 does not exist: scale by 2^(n-1), then double */
  loss__v8f y = p * (loss__v8f)((ni + top + 127) << 23);
  y = loss__vselect(top, y * 2.0f, y);
  y = loss__vselect(x < -87.33654f, loss__v8f_splat(0.0f), y);
  y = loss__vselect(x > 88.72283f, loss__v8f_splat(__builtin_inff()), y);
  return loss__vselect(x != x, x, y); /* NaN propagates */
}

static inline __attribute__((always_inline)) loss__v8f loss__vlog(loss__v8f x)
{
  loss__v8i bits = (loss__v8i)x;
  loss__v8i e = ((bits >> 23) & 0xff) - 127;
  loss__v8f m = (loss__v8f)((bits & 0x007fffff) | 0x3f800000); /* [1, 2) */
  /* Move m into [sqrt(1/2), sqrt(2)) so that log1p's argument is small. */
  loss__v8i big = m > loss__v8f_splat(1.41421356f);
  m = loss__vselect(big, m * loss__v8f_splat(0.5f), m);
  e = e + (big & 1);
  loss__v8f f = m - loss__v8f_splat(1.0f);
  /* log(1+f) = f - f^2/2 + f^3 P(f) on [sqrt(1/2)-1, sqrt(2)-1] (Cephes logf): no division. */
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
  loss__v8f ef = __builtin_convertvector(e, loss__v8f);
  loss__v8f y = ef * loss__v8f_splat(0.693145751953125f) + lg +
                ef * loss__v8f_splat(1.428606765330187045e-06f);
  y = loss__vselect(x < loss__v8f_splat(1.17549435e-38f), loss__v8f_splat(-__builtin_inff()), y);
  y = loss__vselect(x == loss__v8f_splat(__builtin_inff()), x, y);
  y = loss__vselect(x < loss__v8f_splat(0.0f), loss__v8f_splat(__builtin_nanf("")), y);
  y = loss__vselect(x != x, x, y);
  return y;
}

/* Horizontal sums and max, in double for the sums. */
static inline __attribute__((always_inline)) double loss__vsum_d(loss__v8f v)
{
  double s = 0;
  for (int i = 0; i < 8; i++) s += v[i];
  return s;
}

#endif /* LOSS_VECMATH_H */
