/* test_bce.c - binary_cross_entropy_with_logits (lib/src/bce.c). */
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
  GOLDEN("bce");
}

static void fd_random(void **state)
{
  (void)state;
  unsigned long long s = 21;
  size_t sh[2] = {3, 4}, c[1] = {4};
  char *x = jt_rand(&s, 2, sh, -5, 5), *y = jt_rand(&s, 2, sh, 0, 1),
       *w = jt_rand(&s, 2, sh, 0.1, 2);
  char *pw = jt_rand(&s, 1, c, 0.5, 3), *go = jt_rand(&s, 2, sh, -1, 1);
  FD_OK(
      strf(
          "{\"loss\":\"binary_cross_entropy_with_logits\",\"inputs\":{\"logits\":%s,\"target\":%s},"
          "\"params\":{\"weight\":%s,\"pos_weight\":%s}}",
          x, y, w, pw),
      1e-6, 1e-6, 1e-10);
  FD_OK(
      strf("{\"loss\":\"binary_cross_entropy_with_logits\",\"inputs\":{\"logits\":%s,\"target\":%s,"
           "\"grad_output\":%s},\"reduction\":\"none\"}",
           x, y, go),
      1e-6, 1e-6, 1e-10);
  free(x), free(y), free(w), free(pw), free(go);
}

static void saturated(void **state)
{
  (void)state;
  loss_result_t r;
  assert_int_equal(run_request("{\"loss\":\"binary_cross_entropy_with_logits\",\"inputs\":{"
                               "\"logits\":[-100,100,-800,800],\"target\":[1,0,1,0]},"
                               "\"params\":{\"pos_weight\":[2]},\"reduction\":\"none\"}",
                               &r),
                   LOSS_OK);
  const double *l = r.losses.data, *g = r.grads[0].data;
  assert_true(close_enough(l[0], 200, 1e-12, 0) && close_enough(l[1], 100, 1e-12, 0));
  assert_true(close_enough(l[2], 1600, 1e-12, 0) && close_enough(l[3], 800, 1e-12, 0));
  assert_true(close_enough(g[0], -2, 1e-12, 0) && close_enough(g[1], 1, 1e-12, 0));
  loss_result_free(&r);
}

static void invalid(void **state)
{
  (void)state;
  EXPECT_STATUS(
      strf("{\"loss\":\"binary_cross_entropy_with_logits\",\"inputs\":{\"logits\":[[1,2,3]],"
           "\"target\":[[1,0,1]]},\"params\":{\"weight\":[1,2]}}"),
      LOSS_ESHAPE);
  EXPECT_STATUS(
      strf("{\"loss\":\"binary_cross_entropy_with_logits\",\"inputs\":{\"logits\":[[1,2,3]],"
           "\"target\":[[1,0]]}}"),
      LOSS_ESHAPE);
  EXPECT_STATUS(
      strf("{\"loss\":\"binary_cross_entropy_with_logits\",\"inputs\":{\"logits\":[[1,2,3]],"
           "\"target\":[[1,0,1]]},\"params\":{\"pos_weight\":[1,2]}}"),
      LOSS_ESHAPE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_random),
                                     cmocka_unit_test(saturated), cmocka_unit_test(invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
