/* vecmath.h - 8-lane float32 exp and log for the bandwidth-bound kernels.
 *
 * GCC does not vectorise calls to expf/logf without -ffast-math (banned here: it assumes no
 * NaN/Inf), so the float32 kernels use these polynomial forms written with vector extensions.
 * Accuracy (tested in tests/lib/test_vecmath.c against libm in double):
 *   loss__vexp: relative error <= 2e-7 on [-87.3, 88.7]; 0 below -87.33 (where expf itself
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

static inline loss__v8f loss__v8f_splat(float x)
{
  return (loss__v8f){x, x, x, x, x, x, x, x};
}

static inline loss__v8f loss__v8f_load(const float *p)
{
  loss__v8f v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void loss__v8f_store(float *p, loss__v8f v)
{
  memcpy(p, &v, sizeof v);
}

static inline loss__v8f loss__vselect(loss__v8i mask, loss__v8f a, loss__v8f b)
{
  loss__v8i r = (mask & (loss__v8i)a) | (~mask & (loss__v8i)b);
  return (loss__v8f)r;
}

static inline loss__v8f loss__vexp(loss__v8f x)
{
  const loss__v8f magic = loss__v8f_splat(12582912.0f); /* 1.5 * 2^23: rounds to integer */
  loss__v8f t = x * loss__v8f_splat(1.44269504088896341f) + magic;
  loss__v8f n = t - magic;
  loss__v8i ni = (loss__v8i)t - (loss__v8i)magic;
  /* r = x - n ln2 in two parts (Cody-Waite) so that r is exact to float precision. */
  loss__v8f r = x - n * loss__v8f_splat(0.693145751953125f);
  r = r - n * loss__v8f_splat(1.428606765330187045e-06f);
  /* Taylor to degree 7 on |r| <= ln2/2: truncation below 7e-9. */
  loss__v8f p = loss__v8f_splat(1.0f / 5040.0f);
  p = p * r + loss__v8f_splat(1.0f / 720.0f);
  p = p * r + loss__v8f_splat(1.0f / 120.0f);
  p = p * r + loss__v8f_splat(1.0f / 24.0f);
  p = p * r + loss__v8f_splat(1.0f / 6.0f);
  p = p * r + loss__v8f_splat(0.5f);
  p = p * r + loss__v8f_splat(1.0f);
  p = p * r + loss__v8f_splat(1.0f);
  /* 2^n split in two factors so that n = 128 (x near 88.7) does not overflow the exponent. */
  loss__v8i h = ni >> 1;
  loss__v8f s1 = (loss__v8f)((h + 127) << 23);
  loss__v8f s2 = (loss__v8f)((ni - h + 127) << 23);
  loss__v8f y = p * s1 * s2;
  y = loss__vselect(x < loss__v8f_splat(-87.33654f), loss__v8f_splat(0.0f), y);
  y = loss__vselect(x > loss__v8f_splat(88.72283f), loss__v8f_splat(__builtin_inff()), y);
  return y;
}

static inline loss__v8f loss__vlog(loss__v8f x)
{
  loss__v8i bits = (loss__v8i)x;
  loss__v8i e = ((bits >> 23) & 0xff) - 127;
  loss__v8f m = (loss__v8f)((bits & 0x007fffff) | 0x3f800000); /* [1, 2) */
  /* Move m into [sqrt(1/2), sqrt(2)) so that log1p's argument is small. */
  loss__v8i big = m > loss__v8f_splat(1.41421356f);
  m = loss__vselect(big, m * loss__v8f_splat(0.5f), m);
  e = e + (big & 1);
  loss__v8f f = m - loss__v8f_splat(1.0f);
  /* log(1+f) = 2 atanh(f/(2+f)) = 2(u + u^3/3 + u^5/5 + ...), |u| <= 0.172. */
  loss__v8f u = f / (f + loss__v8f_splat(2.0f));
  loss__v8f u2 = u * u;
  loss__v8f q = loss__v8f_splat(1.0f / 11.0f);
  q = q * u2 + loss__v8f_splat(1.0f / 9.0f);
  q = q * u2 + loss__v8f_splat(1.0f / 7.0f);
  q = q * u2 + loss__v8f_splat(1.0f / 5.0f);
  q = q * u2 + loss__v8f_splat(1.0f / 3.0f);
  loss__v8f lg = u * u2 * q * loss__v8f_splat(2.0f) + u * loss__v8f_splat(2.0f);
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
static inline double loss__vsum_d(loss__v8f v)
{
  double s = 0;
  for (int i = 0; i < 8; i++) s += v[i];
  return s;
}

#endif /* LOSS_VECMATH_H */
