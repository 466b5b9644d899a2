/* test_kldiv.c - kl_div (lib/src/kldiv.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void golden(void **state)
{
  (void)state;
  GOLDEN("kl_div");
}

static void fd_random(void **state)
{
  (void)state;
  unsigned long long s = 31;
  size_t sh[2] = {4, 3};
  char *x = jt_rand(&s, 2, sh, -3, 0), *p = jt_rand(&s, 2, sh, 0.05, 1),
       *t = jt_rand(&s, 2, sh, -3, 0);
  const char *reds[4] = {"mean", "batchmean", "sum", "none"};
  for (int k = 0; k < 4; k++) {
    FD_OK(strf("{\"loss\":\"kl_div\",\"inputs\":{\"input\":%s,\"target\":%s},\"reduction\":\"%s\"}",
               x, p, reds[k]),
          1e-6, 1e-6, 1e-10);
    FD_OK(strf("{\"loss\":\"kl_div\",\"inputs\":{\"input\":%s,\"target\":%s},\"reduction\":\"%s\","
               "\"params\":{\"log_target\":true}}",
               x, t, reds[k]),
          1e-6, 1e-6, 1e-10);
  }
  free(x), free(p), free(t);
}

/* The reductions' denominators, and a finite target gradient at p = 0. */
static void reductions_and_zero_target(void **state)
{
  (void)state;
  const char *body = "{\"loss\":\"kl_div\",\"inputs\":{\"input\":[[-1,-2,-0.5],[-1,-1,-1],"
                     "[-3,-0.1,-2],[-0.2,-2,-4]],\"target\":[[1,0,0],[0.2,0.3,0.5],[0,1,0],"
                     "[0.5,0.5,0]]},\"reduction\":\"%s\"}";
  loss_result_t a, b, c;
  char *j = strf(body, "sum");
  assert_int_equal(run_request(j, &a), LOSS_OK);
  free(j);
  j = strf(body, "batchmean");
  assert_int_equal(run_request(j, &b), LOSS_OK);
  free(j);
  j = strf(body, "mean");
  assert_int_equal(run_request(j, &c), LOSS_OK);
  free(j);
  assert_true(close_enough(b.loss, a.loss / 4, 1e-15, 0));
  assert_true(close_enough(c.loss, a.loss / 12, 1e-15, 0));
  const loss_output_t *gt = loss_result_grad(&a, "target");
  for (int i = 0; i < 12; i++) assert_true(isfinite(((double *)gt->data)[i]));
  assert_true(((double *)gt->data)[1] == 0.0);
  loss_result_free(&a), loss_result_free(&b), loss_result_free(&c);
}

/* float32 vector path (vector log) against the float64 path; a subnormal target used to make
 * the loss and its gradient NaN (the vector log flushed it to -inf; issue 2). */
static void f32_matches_f64(void **state)
{
  (void)state;
  enum { N = 9, C = 301 };
  static float x32[N * C], p32[N * C];
  static double x64[N * C], p64[N * C];
  unsigned long long s = 7;
  for (size_t i = 0; i < N * C; i++) {
    x64[i] = x32[i] = (float)rnd(&s, -8, 0);
    /* zeros, and subnormal probabilities as a float32 softmax's tail holds them */
    p64[i] = p32[i] = i % 17 == 0   ? 0.0f
                      : i % 13 == 0 ? 1e-40f * (float)(1 + i % 5)
                                    : (float)rnd(&s, 1e-6, 1);
  }
  size_t sh[2] = {N, C};
  loss_tensor_t a32 = tview(x32, LOSS_FLOAT32, 2, sh), b32 = tview(p32, LOSS_FLOAT32, 2, sh);
  loss_tensor_t a64 = tview(x64, LOSS_FLOAT64, 2, sh), b64 = tview(p64, LOSS_FLOAT64, 2, sh);
  loss_opts_t o = loss_opts_default();
  o.reduction = LOSS_REDUCTION_SUM;
  loss_result_t r32, r64;
  loss_result_init(&r32);
  loss_result_init(&r64);
  assert_int_equal(loss_kl_div(&a32, &b32, 0, &o, &r32), LOSS_OK);
  assert_int_equal(loss_kl_div(&a64, &b64, 0, &o, &r64), LOSS_OK);
  assert_true(close_enough(r32.loss, r64.loss, 1e-6, 0));
  for (int g = 0; g < 2; g++) {
    const float *u = r32.grads[g].data;
    const double *v = r64.grads[g].data;
    for (size_t i = 0; i < N * C; i++) assert_true(close_enough(u[i], v[i], 2e-6, 1e-6));
  }
  loss_result_free(&r32), loss_result_free(&r64);
}

static void invalid(void **state)
{
  (void)state;
  EXPECT_STATUS(strf("{\"loss\":\"kl_div\",\"inputs\":{\"input\":[-1,-2],\"target\":[-0.5,1.5]}}"),
                LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"kl_div\",\"inputs\":{\"input\":[-1,-2],\"target\":[0.5]}}"),
                LOSS_ESHAPE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_random),
                                     cmocka_unit_test(reductions_and_zero_target),
                                     cmocka_unit_test(f32_matches_f64), cmocka_unit_test(invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
