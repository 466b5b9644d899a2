/* test_ce.c - cross_entropy (lib/src/ce.c): golden vectors, finite differences, edge cases. */
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
  GOLDEN("cross_entropy");
}

static void fd_index_targets(void **state)
{
  (void)state;
  unsigned long long s = 11;
  size_t zs[2] = {6, 5}, ys[1] = {6}, ws[1] = {5};
  const char *reds[3] = {"mean", "sum", "none"};
  for (int k = 0; k < 3; k++) {
    char *z = jt_rand(&s, 2, zs, -4, 4), *w = jt_rand(&s, 1, ws, 0.2, 2);
    char *go = jt_rand(&s, 1, ys, -2, 2);
    FD_OK(
        strf("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":%s,\"target\":[0,4,-100,2,"
             "1,3]%s%s},\"params\":{\"weight\":%s,\"label_smoothing\":0.15},\"reduction\":\"%s\"}",
             z, k == 2 ? ",\"grad_output\":" : "", k == 2 ? go : "", w, reds[k]),
        1e-6, 1e-6, 1e-9);
    free(z), free(w), free(go);
  }
}

static void fd_kdim_and_probs(void **state)
{
  (void)state;
  unsigned long long s = 12;
  size_t zs[4] = {2, 4, 3, 2}, ps[2] = {3, 6};
  char *z = jt_rand(&s, 4, zs, -3, 3);
  FD_OK(strf("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":%s,\"target\":[[[0,3],[1,-100],"
             "[2,2]],[[3,0],[-100,1],[1,2]]]},\"params\":{\"label_smoothing\":0.3}}",
             z),
        1e-6, 1e-6, 1e-9);
  char *zp = jt_rand(&s, 2, ps, -3, 3), *tp = jt_rand(&s, 2, ps, 0, 0.3);
  FD_OK(strf("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":%s,\"target\":%s},"
             "\"params\":{\"label_smoothing\":0.1,\"weight\":[1,2,0.5,1,1.5,3]}}",
             zp, tp),
        1e-6, 1e-6, 1e-9);
  free(z), free(zp), free(tp);
}

/* The float32 vector kernel agrees with the float64 path to float32 precision. */
static void f32_matches_f64(void **state)
{
  (void)state;
  enum { N = 13, C = 1003 };
  static float z32[N * C];
  static double z64[N * C];
  int64_t y[N];
  unsigned long long s = 5;
  for (size_t i = 0; i < N * C; i++) z64[i] = z32[i] = (float)rnd(&s, -20, 20);
  for (int i = 0; i < N; i++) y[i] = (int64_t)rnd(&s, 0, C);
  y[4] = -100;
  size_t zs[2] = {N, C}, ys[1] = {N};
  loss_tensor_t t32 = tview(z32, LOSS_FLOAT32, 2, zs), t64 = tview(z64, LOSS_FLOAT64, 2, zs);
  loss_tensor_t ty = tview(y, LOSS_INT64, 1, ys);
  for (int ls = 0; ls < 2; ls++) {
    loss_ce_params_t p = loss_ce_params_default();
    p.label_smoothing = ls ? 0.25 : 0;
    loss_opts_t o = loss_opts_default();
    loss_result_t a, b;
    loss_result_init(&a);
    loss_result_init(&b);
    assert_int_equal(loss_cross_entropy(&t32, &ty, &p, &o, &a), LOSS_OK);
    assert_int_equal(loss_cross_entropy(&t64, &ty, &p, &o, &b), LOSS_OK);
    assert_true(close_enough(a.loss, b.loss, 1e-6, 0));
    const float *ga = a.grads[0].data;
    const double *gb = b.grads[0].data;
    for (size_t i = 0; i < N * C; i++) assert_true(close_enough(ga[i], gb[i], 1e-5, 1e-9));
    loss_result_free(&a);
    loss_result_free(&b);
  }
}

/* The float64 row kernel against the formula in long double, row by row: widths that take the
 * vector loop and the tail, weights, smoothing, an ignored row (its gradient row must be
 * written as zeros: the buffer is not zeroed) and logits 800 apart, whose exp underflows in
 * the lanes that go to libm. */
static void f64_rows_match_long_double(void **state)
{
  (void)state;
  enum { N = 7, C = 37 };
  static double z[N * C], w[C];
  int64_t y[N];
  unsigned long long s = 6;
  for (size_t i = 0; i < N * C; i++) z[i] = rnd(&s, -30, 30);
  for (int k = 0; k < C; k++) w[k] = rnd(&s, 0.5, 2);
  for (int i = 0; i < N; i++) y[i] = (int64_t)rnd(&s, 0, C);
  y[2] = -100;
  z[3 * C + 5] = 800, z[3 * C + 6] = -1e300; /* the max, and far below it */
  size_t zs[2] = {N, C}, ys[1] = {N}, wsh[1] = {C};
  loss_tensor_t tz = tview(z, LOSS_FLOAT64, 2, zs), ty = tview(y, LOSS_INT64, 1, ys);
  loss_tensor_t tw = tview(w, LOSS_FLOAT64, 1, wsh);
  for (int v = 0; v < 3; v++) {
    loss_ce_params_t p = loss_ce_params_default();
    p.label_smoothing = v ? 0.2 : 0;
    p.weight = v == 2 ? &tw : NULL;
    loss_opts_t o = loss_opts_default();
    o.reduction = LOSS_REDUCTION_SUM;
    loss_result_t r;
    loss_result_init(&r);
    assert_int_equal(loss_cross_entropy(&tz, &ty, &p, &o, &r), LOSS_OK);
    const double *g = r.grads[0].data;
    long double total = 0, W = 0;
    for (int k = 0; k < C; k++) W += v == 2 ? w[k] : 1;
    for (int i = 0; i < N; i++) {
      const double *zi = z + i * C;
      if (y[i] == -100) {
        for (int k = 0; k < C; k++) assert_true(g[i * C + k] == 0.0);
        continue;
      }
      long double m = zi[0], sum = 0, sz = 0;
      for (int k = 1; k < C; k++) m = zi[k] > m ? zi[k] : m;
      for (int k = 0; k < C; k++) sum += expl(zi[k] - m);
      long double lse = m + logl(sum), e = p.label_smoothing;
      long double wy = v == 2 ? w[y[i]] : 1;
      for (int k = 0; k < C; k++) sz += (v == 2 ? w[k] : 1) * (long double)zi[k];
      total += (1 - e) * wy * (lse - zi[y[i]]) + e / C * (W * lse - sz);
      for (int k = 0; k < C; k++) {
        long double gk = expl(zi[k] - lse) * ((1 - e) * wy + e * W / C) -
                         e / C * (v == 2 ? w[k] : 1) - (k == y[i] ? (1 - e) * wy : 0);
        assert_true(close_enough(g[i * C + k], (double)gk, 1e-13, 1e-15));
      }
    }
    assert_true(close_enough(r.loss, (double)total, 1e-13, 0));
    loss_result_free(&r);
  }
}

static void edge_cases(void **state)
{
  (void)state;
  /* All ignored: NaN value, zero gradient. */
  loss_result_t r;
  assert_int_equal(run_request("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":[[1,2],[3,4]],"
                               "\"target\":[-100,-100]}}",
                               &r),
                   LOSS_OK);
  assert_true(isnan(r.loss));
  for (int i = 0; i < 4; i++) assert_true(((double *)r.grads[0].data)[i] == 0.0);
  loss_result_free(&r);
  /* Large logits do not overflow. */
  assert_int_equal(run_request("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":[[1e4,-1e4,0]],"
                               "\"target\":[1]}}",
                               &r),
                   LOSS_OK);
  assert_true(close_enough(r.loss, 2e4, 1e-12, 0));
  loss_result_free(&r);
  /* Sum over an empty set of kept samples is 0 with sum. */
  assert_int_equal(run_request("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":[[1,2]],"
                               "\"target\":[-100]},\"reduction\":\"sum\"}",
                               &r),
                   LOSS_OK);
  assert_true(r.loss == 0.0);
  loss_result_free(&r);
}

static void invalid(void **state)
{
  (void)state;
  const char *z = "\"logits\":[[1,2,3],[4,5,6]]";
  EXPECT_STATUS(strf("{\"loss\":\"cross_entropy\",\"inputs\":{%s,\"target\":[0,3]}}", z),
                LOSS_ERANGE);
  EXPECT_STATUS(strf("{\"loss\":\"cross_entropy\",\"inputs\":{%s,\"target\":[0,-1]}}", z),
                LOSS_ERANGE);
  EXPECT_STATUS(strf("{\"loss\":\"cross_entropy\",\"inputs\":{%s,\"target\":[0,1,2]}}", z),
                LOSS_ESHAPE);
  EXPECT_STATUS(strf("{\"loss\":\"cross_entropy\",\"inputs\":{%s,\"target\":[0,1]},"
                     "\"params\":{\"label_smoothing\":1.5}}",
                     z),
                LOSS_EPARAM);
  EXPECT_STATUS(
      strf("{\"loss\":\"cross_entropy\",\"inputs\":{%s,\"target\":[[0.5,0.5,0],[0,0,1.0]]},"
           "\"params\":{\"ignore_index\":0}}",
           z),
      LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"cross_entropy\",\"inputs\":{%s,\"target\":[0,1]},"
                     "\"params\":{\"weight\":[1,2]}}",
                     z),
                LOSS_ESHAPE);
  EXPECT_STATUS(strf("{\"loss\":\"cross_entropy\",\"inputs\":{%s,\"target\":[0,1],"
                     "\"grad_output\":[1,1]}}",
                     z),
                LOSS_EINVAL);
  EXPECT_STATUS(strf("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":{\"shape\":[2,0],"
                     "\"data\":[]},\"target\":[0,1]}}"),
                LOSS_EEMPTY);
  /* Non-finite logits in both the float64 path and the float32 kernel. */
  EXPECT_STATUS(
      strf("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":{\"shape\":[1,2],"
           "\"dtype\":\"float64\",\"b64\":\"AAAAAAAA+H8AAAAAAADwPw==\"},\"target\":[0]}}"),
      LOSS_ENONFINITE);
  EXPECT_STATUS(
      strf("{\"loss\":\"cross_entropy\",\"inputs\":{\"logits\":{\"shape\":[1,9],"
           "\"dtype\":\"float32\",\"b64\":\"AACAPwAAgD8AAIA/AACAfwAAgD8AAIA/AACAPwAAgD8AAIA/\"},"
           "\"target\":[0]}}"),
      LOSS_ENONFINITE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden),
                                     cmocka_unit_test(fd_index_targets),
                                     cmocka_unit_test(fd_kdim_and_probs),
                                     cmocka_unit_test(f32_matches_f64),
                                     cmocka_unit_test(f64_rows_match_long_double),
                                     cmocka_unit_test(edge_cases),
                                     cmocka_unit_test(invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
