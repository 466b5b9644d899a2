/* test_vecmath.c - accuracy of the vector exp and log used by the float32 kernels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"

#include <math.h>
#include <stdio.h>

static void exp_accuracy(void **state)
{
  (void)state;
  double worst = 0, wx = 0;
  for (double x = -87.3; x <= 88.7; x += 0.000731) {
    float xf = (float)x;
    double ref = exp((double)xf), got = loss_expf_approx(xf);
    double rel = fabs(got - ref) / ref;
    if (rel > worst) worst = rel, wx = xf;
  }
  fprintf(stderr, "expf approx: max relative error %.3g at %.6g\n", worst, wx);
  assert_true(worst <= 2e-7);
  assert_true(loss_expf_approx(-100.0f) == 0.0f);
  assert_true(loss_expf_approx(-INFINITY) == 0.0f);
  assert_true(isinf(loss_expf_approx(100.0f)));
  assert_true(isnan(loss_expf_approx(NAN)));
  assert_true(loss_expf_approx(0.0f) == 1.0f);
}

static void log_accuracy(void **state)
{
  (void)state;
  double worst = 0, wx = 0;
  for (double e = -125; e < 127; e += 0.01) {
    float xf = (float)pow(2.0, e);
    double ref = log((double)xf), got = loss_logf_approx(xf);
    double err = fabs(got - ref) / fmax(fabs(ref), 1e-30);
    /* Near x = 1 log is near 0: measure absolute error in ulps of the argument there. */
    if (fabs(ref) < 1e-3) err = fabs(got - ref) / 1.2e-7;
    if (err > worst) worst = err, wx = xf;
  }
  fprintf(stderr, "logf approx: max relative error %.3g at %.6g\n", worst, wx);
  assert_true(worst <= 3e-7);
  assert_true(isinf(loss_logf_approx(0.0f)) && loss_logf_approx(0.0f) < 0);
  assert_true(isnan(loss_logf_approx(-1.0f)));
  assert_true(isinf(loss_logf_approx(INFINITY)));
  assert_true(loss_logf_approx(1.0f) == 0.0f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(exp_accuracy),
                                     cmocka_unit_test(log_accuracy)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
