/* test_focal.c - sigmoid and softmax focal losses (lib/src/focal.c). */
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
  GOLDEN("focal");
}

static void fd_random(void **state)
{
  (void)state;
  unsigned long long s = 51;
  size_t sh[2] = {4, 5};
  char *x = jt_rand(&s, 2, sh, -6, 6), *y = jt_rand(&s, 2, sh, 0, 1);
  double gammas[3] = {0, 0.5, 2};
  for (int k = 0; k < 3; k++) {
    FD_OK(strf("{\"loss\":\"sigmoid_focal\",\"inputs\":{\"logits\":%s,\"target\":%s},"
               "\"params\":{\"gamma\":%g},\"reduction\":\"mean\"}",
               x, y, gammas[k]),
          1e-6, 1e-6, 1e-8);
    FD_OK(strf("{\"loss\":\"softmax_focal\",\"inputs\":{\"logits\":%s,\"target\":[0,4,2,1]},"
               "\"params\":{\"gamma\":%g,\"alpha\":[0.2,0.4,1,2,0.7]}}",
               x, gammas[k]),
          1e-6, 1e-6, 1e-8);
  }
  free(x), free(y);
}

/* gamma < 1 at saturated logits: finite where torch autograd gives NaN (LOSSES.md §7). */
static void saturated_small_gamma(void **state)
{
  (void)state;
  loss_result_t r;
  assert_int_equal(run_request("{\"loss\":\"sigmoid_focal\",\"inputs\":{\"logits\":[-800,-100,100,"
                               "800,30],\"target\":[0,0,1,1,1]},\"params\":{\"gamma\":0.5}}",
                               &r),
                   LOSS_OK);
  for (int i = 0; i < 5; i++) {
    assert_true(isfinite(((double *)r.losses.data)[i]));
    assert_true(isfinite(((double *)r.grads[0].data)[i]));
  }
  loss_result_free(&r);
  assert_int_equal(run_request("{\"loss\":\"softmax_focal\",\"inputs\":{\"logits\":[[800,0,0],"
                               "[0,-900,0]],\"target\":[0,1]},\"params\":{\"gamma\":0.3}}",
                               &r),
                   LOSS_OK);
  assert_true(isfinite(r.loss));
  for (int i = 0; i < 6; i++) assert_true(isfinite(((double *)r.grads[0].data)[i]));
  loss_result_free(&r);
}

static void invalid(void **state)
{
  (void)state;
  EXPECT_STATUS(strf("{\"loss\":\"sigmoid_focal\",\"inputs\":{\"logits\":[1],\"target\":[1]},"
                     "\"params\":{\"gamma\":-1}}"),
                LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"sigmoid_focal\",\"inputs\":{\"logits\":[1],\"target\":[2]}}"),
                LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"softmax_focal\",\"inputs\":{\"logits\":[[1,2]],\"target\":[0]},"
                     "\"params\":{\"alpha\":[1,2,3]}}"),
                LOSS_ESHAPE);
  EXPECT_STATUS(strf("{\"loss\":\"softmax_focal\",\"inputs\":{\"logits\":[[1,2]],\"target\":[2]}}"),
                LOSS_ERANGE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_random),
                                     cmocka_unit_test(saturated_small_gamma),
                                     cmocka_unit_test(invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
