/* test_cosent.c - CoSENT and AnglE (lib/src/cosent.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void golden(void **state)
{
  (void)state;
  GOLDEN("ranking");
}

static void fd_random(void **state)
{
  (void)state;
  unsigned long long s = 61;
  size_t n[1] = {9}, e[2] = {6, 4};
  char *sc = jt_rand(&s, 1, n, -1, 1), *lab = jt_randint(&s, 1, n, 0, 3);
  char *a = jt_rand(&s, 2, e, -2, 2), *b = jt_rand(&s, 2, e, -2, 2);
  FD_OK(strf("{\"loss\":\"cosent\",\"inputs\":{\"scores\":%s,\"labels\":%s}}", sc, lab), 1e-6, 1e-5,
        1e-7);
  FD_OK(strf("{\"loss\":\"cosent\",\"inputs\":{\"a\":%s,\"b\":%s,\"labels\":[0,1,0.5,2,1,0.5]},"
             "\"params\":{\"scale\":5}}",
             a, b),
        1e-6, 1e-5, 1e-8);
  FD_OK(strf("{\"loss\":\"angle\",\"inputs\":{\"a\":%s,\"b\":%s,\"labels\":[0,1,0.5,2,1,0.5]},"
             "\"params\":{\"scale\":5}}",
             a, b),
        1e-6, 1e-5, 1e-8);
  free(sc), free(lab), free(a), free(b);
}

/* The O(N log N) form equals the reference's sum over all ordered pairs. */
static void matches_pairwise_sum(void **state)
{
  (void)state;
  enum { N = 300 };
  double sc[N], lab[N];
  unsigned long long s = 3;
  for (int i = 0; i < N; i++) sc[i] = rnd(&s, -1, 1), lab[i] = floor(rnd(&s, 0, 7));
  double m = -INFINITY, acc = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) {
        if (!(lab[i] < lab[j])) continue;
        double v = 20 * (sc[i] - sc[j]);
        if (pass == 0)
          m = fmax(m, v);
        else
          acc += exp(v - m);
      }
  double ref = m + log(exp(-m) + acc);
  size_t n[1] = {N};
  loss_tensor_t ts = tview(sc, LOSS_FLOAT64, 1, n), tl = tview(lab, LOSS_FLOAT64, 1, n);
  loss_opts_t o = loss_opts_default();
  loss_result_t r;
  loss_result_init(&r);
  assert_int_equal(loss_cosent(&ts, NULL, NULL, &tl, 20, &o, &r), LOSS_OK);
  assert_true(close_enough(r.loss, ref, 1e-12, 0));
  loss_result_free(&r);
}

static void edge_cases(void **state)
{
  (void)state;
  loss_result_t r;
  assert_int_equal(run_request("{\"loss\":\"cosent\",\"inputs\":{\"scores\":[0.3,-0.2,0.9],"
                               "\"labels\":[1,1,1]}}",
                               &r),
                   LOSS_OK);
  assert_true(r.loss == 0.0);
  for (int i = 0; i < 3; i++) assert_true(((double *)r.grads[0].data)[i] == 0.0);
  loss_result_free(&r);
  /* Opposite cosines at scale 20: lse without overflow. */
  assert_int_equal(run_request("{\"loss\":\"cosent\",\"inputs\":{\"scores\":[1,-1],"
                               "\"labels\":[0,1]},\"params\":{\"scale\":400}}",
                               &r),
                   LOSS_OK);
  assert_true(close_enough(r.loss, 800, 1e-12, 0));
  loss_result_free(&r);
  EXPECT_STATUS(
      strf("{\"loss\":\"cosent\",\"inputs\":{\"scores\":[1],\"a\":[[1]],\"labels\":[0]}}"),
      LOSS_ECONFLICT);
  EXPECT_STATUS(strf("{\"loss\":\"cosent\",\"inputs\":{\"a\":[[1]],\"labels\":[0]}}"),
                LOSS_EMISSING);
  EXPECT_STATUS(strf("{\"loss\":\"cosent\",\"inputs\":{\"scores\":[1,2],\"labels\":[0]}}"),
                LOSS_ESHAPE);
  EXPECT_STATUS(
      strf("{\"loss\":\"angle\",\"inputs\":{\"a\":[[1,2,3]],\"b\":[[1,2,3]],\"labels\":[0]}}"),
      LOSS_ESHAPE);
  EXPECT_STATUS(
      strf("{\"loss\":\"angle\",\"inputs\":{\"a\":[[0,0]],\"b\":[[1,2]],\"labels\":[0]}}"),
      LOSS_EPARAM);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_random),
                                     cmocka_unit_test(matches_pairwise_sum),
                                     cmocka_unit_test(edge_cases)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
