/* test_vecmath.c - accuracy of the vector exp and log used by the kernels (lib/src/vecmath.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"
#include "vecmath.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One lane of each vector function, as the kernels call them. */
static float lane_expf(float x)
{
  return loss__vexp(loss__v8f_splat(x))[0];
}

static float lane_expf_neg(float x)
{
  return loss__vexp_neg(loss__v8f_splat(x))[0];
}

static float lane_logf(float x)
{
  return loss__vlog(loss__v8f_splat(x))[0];
}

static float lane_log1pf_unit(float e)
{
  return loss__vlog1p_unit(loss__v8f_splat(e))[0];
}

static double lane_exp(double x)
{
  loss__v4d v = {x, x, x, x};
  return loss__vexp_d(v)[0];
}

/* Every 61st float of [-87.33654, 88.72283] (about 35 million), against exp in double. The
 * whole range, every float, gives 1.12e-7 for both functions. */
static void exp_accuracy(void **state)
{
  (void)state;
  double worst = 0, worst_neg = 0, wx = 0;
  const float lo = -87.33654f, hi = 88.72283f;
  uint32_t blo, bhi;
  memcpy(&blo, &lo, 4), memcpy(&bhi, &hi, 4);
  for (int side = 0; side < 2; side++) { /* negative floats from -0, then positive from +0 */
    uint32_t end = side ? bhi : blo;
    for (uint32_t b = side ? 0 : 0x80000000u; b <= end; b += 61) {
      float xf;
      memcpy(&xf, &b, 4);
      double ref = exp((double)xf), rel = fabs(lane_expf(xf) - ref) / ref;
      if (rel > worst) worst = rel, wx = xf;
      if (!side) worst_neg = fmax(worst_neg, fabs(lane_expf_neg(xf) - ref) / ref);
    }
  }
  fprintf(stderr, "expf approx: max relative error %.3g at %.6g (x <= 0 variant %.3g)\n", worst, wx,
          worst_neg);
  assert_true(worst <= 1.5e-7);
  assert_true(worst_neg <= 1.5e-7);
  /* The edges: the last normal result, the cutoffs, infinities, NaN, zeros. */
  assert_true(lane_expf(lo) > 1.1754e-38f && lane_expf_neg(lo) > 1.1754e-38f);
  assert_true(lane_expf(nextafterf(lo, -INFINITY)) == 0.0f);
  assert_true(lane_expf_neg(nextafterf(lo, -INFINITY)) == 0.0f);
  assert_true(lane_expf(hi) > 3.4027e38f && isfinite(lane_expf(hi)));
  assert_true(isinf(lane_expf(nextafterf(hi, INFINITY))));
  float special[] = {-100.0f, -1e30f, -INFINITY};
  for (int i = 0; i < 3; i++)
    assert_true(lane_expf(special[i]) == 0.0f && lane_expf_neg(special[i]) == 0.0f);
  assert_true(isinf(lane_expf(100.0f)) && isinf(lane_expf(INFINITY)));
  assert_true(isnan(lane_expf(NAN)) && isnan(lane_expf_neg(NAN)));
  assert_true(lane_expf(0.0f) == 1.0f && lane_expf_neg(-0.0f) == 1.0f);
  assert_true(lane_expf_neg(-1e-30f) == 1.0f);
}

/* float64: 4M arguments over [-708, 709] and 4M over [-40, 5] (Sinkhorn's usual range),
 * against glibc's exp, in ulps; and the ends of the range. */
static void exp_d_accuracy(void **state)
{
  (void)state;
  uint64_t s = 1;
  double worst = 0, wx = 0;
  for (long i = 0; i < 8000000; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    double u = (double)(s >> 11) * 0x1p-53;
    double x = (i & 1) ? -708 + u * 1417 : -40 + u * 45, ref = exp(x), got = lane_exp(x);
    int64_t a, b;
    memcpy(&a, &got, 8), memcpy(&b, &ref, 8);
    double ulp = fabs((double)(a - b));
    if (ulp > worst) worst = ulp, wx = x;
  }
  fprintf(stderr, "exp approx (float64): max %g ulp at %.17g\n", worst, wx);
  assert_true(worst <= 1);
  double ends[] = {-708, 709, 0, -0.0, 1e-300, -0.34657359027997264, 0.34657359027997264};
  for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
    double r = exp(ends[i]), g = lane_exp(ends[i]);
    assert_true(fabs(g - r) <= 2.3e-16 * r);
  }
  assert_true(lane_exp(0.0) == 1.0);
}

/* Every 7th float of [0, 1] against log1p in double. The loss__vlog(1 + e) it replaced in
 * sigmoid_focal was off by 6e-4 just above e = 1e-4, where 1 + e drops e's low bits. */
static void log1p_unit_accuracy(void **state)
{
  (void)state;
  double worst = 0, wx = 0;
  const float one = 1.0f;
  uint32_t hi;
  memcpy(&hi, &one, 4);
  for (uint32_t b = 0; b <= hi; b += 7) {
    float e;
    memcpy(&e, &b, 4);
    double ref = log1p((double)e), got = lane_log1pf_unit(e);
    double rel = ref > 0 ? fabs(got - ref) / ref : fabs(got);
    if (rel > worst) worst = rel, wx = e;
  }
  fprintf(stderr, "log1pf unit approx: max relative error %.3g at %.9g\n", worst, wx);
  assert_true(worst <= 1.5e-7);
  assert_true(lane_log1pf_unit(0.0f) == 0.0f);
  assert_true(fabs(lane_log1pf_unit(1.0f) - 0.69314718f) <= 1e-7);
}

static void log_accuracy(void **state)
{
  (void)state;
  double worst = 0, wx = 0;
  for (double e = -149; e < 127; e += 0.01) { /* subnormals from 2^-149 */
    float xf = (float)pow(2.0, e);
    double ref = log((double)xf), got = lane_logf(xf);
    double err = fabs(got - ref) / fmax(fabs(ref), 1e-30);
    /* Near x = 1 log is near 0: measure absolute error in ulps of the argument there. */
    if (fabs(ref) < 1e-3) err = fabs(got - ref) / 1.2e-7;
    if (err > worst) worst = err, wx = xf;
  }
  fprintf(stderr, "logf approx: max relative error %.3g at %.6g\n", worst, wx);
  assert_true(worst <= 3e-7);
  assert_true(isinf(lane_logf(0.0f)) && lane_logf(0.0f) < 0);
  assert_true(isnan(lane_logf(-1.0f)));
  assert_true(isinf(lane_logf(INFINITY)));
  assert_true(lane_logf(1.0f) == 0.0f);
  assert_true(fabs(lane_logf(1e-45f) - log(1e-45f)) <= 3e-7 * 103.3); /* 2^-149 */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(exp_accuracy), cmocka_unit_test(exp_d_accuracy),
      cmocka_unit_test(log1p_unit_accuracy), cmocka_unit_test(log_accuracy)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
