/* test_global_pointer.c - GlobalPointer and sparse MCCE (lib/src/global_pointer.c). */
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
  GOLDEN("global_pointer");
}

static void fd_forms(void **state)
{
  (void)state;
  unsigned long long s = 81;
  size_t ss[4] = {2, 2, 4, 4}, qs[4] = {2, 4, 2, 4}, es[3] = {2, 4, 4}, hs[3] = {2, 4, 4};
  char *sc = jt_rand(&s, 4, ss, -3, 3), *q = jt_rand(&s, 4, qs, -1, 1),
       *k = jt_rand(&s, 4, qs, -1, 1);
  char *qe = jt_rand(&s, 3, es, -1, 1), *ke = jt_rand(&s, 3, es, -1, 1),
       *hb = jt_rand(&s, 3, hs, -1, 1);
  const char *sp = "\"spans\":[[0,0,1,2],[1,1,0,0],[1,0,2,3]],\"mask\":[[1,1,1,0],[1,1,1,1]]";
  FD_OK(strf("{\"loss\":\"global_pointer\",\"inputs\":{\"scores\":%s,%s}}", sc, sp), 1e-6, 1e-6,
        1e-9);
  FD_OK(strf("{\"loss\":\"global_pointer\",\"inputs\":{\"scores\":%s,%s},\"params\":{\"variant\":"
             "\"bce\"}}",
             sc, sp),
        1e-6, 1e-6, 1e-9);
  FD_OK(strf("{\"loss\":\"global_pointer\",\"inputs\":{\"q\":%s,\"k\":%s,%s}}", q, k, sp), 1e-6,
        1e-6, 1e-9);
  FD_OK(strf("{\"loss\":\"global_pointer\",\"inputs\":{\"q\":%s,\"k\":%s,\"head_bias\":%s,%s}}", qe,
             ke, hb, sp),
        1e-6, 1e-6, 1e-9);
  free(sc), free(q), free(k), free(qe), free(ke), free(hb);
}

/* With the same q and k at every position, RoPE makes s(m, n) depend on n - m only. */
static void rope_is_relative(void **state)
{
  (void)state;
  enum { L = 6, D = 8 };
  double q[L * D], k[L * D];
  unsigned long long s = 9;
  for (int d = 0; d < D; d++) {
    double a = rnd(&s, -1, 1), b = rnd(&s, -1, 1);
    for (int l = 0; l < L; l++) q[l * D + d] = a, k[l * D + d] = b;
  }
  double lab[L * L] = {0};
  size_t qs[4] = {1, L, 1, D}, ls[4] = {1, 1, L, L};
  loss_tensor_t tq = tview(q, LOSS_FLOAT64, 4, qs), tk = tview(k, LOSS_FLOAT64, 4, qs);
  loss_tensor_t tl = tview(lab, LOSS_FLOAT64, 4, ls);
  loss_gp_params_t p = loss_gp_params_default();
  p.tril_mask = 0;
  p.threshold = -1e300; /* every cell is a prediction: entities list all scores */
  loss_opts_t o = loss_opts_default();
  loss_result_t r;
  loss_result_init(&r);
  assert_int_equal(loss_global_pointer(NULL, &tq, &tk, NULL, &tl, NULL, NULL, &p, &o, &r), LOSS_OK);
  const loss_output_t *e = loss_result_extra(&r, "entities");
  assert_int_equal(e->shape[0], L * L);
  const double *v = e->data;
  for (int m = 0; m + 1 < L; m++)
    for (int n = 0; n + 1 < L; n++)
      assert_true(
          close_enough(v[(m * L + n) * 5 + 4], v[((m + 1) * L + n + 1) * 5 + 4], 1e-12, 1e-12));
  loss_result_free(&r);
}

/* A positive label at a masked cell counts nowhere (bert4keras HEAD). */
static void masked_positive_ignored(void **state)
{
  (void)state;
  loss_result_t a, b;
  const char *base = "{\"loss\":\"global_pointer\",\"inputs\":{\"scores\":[[[[1,-2],[0.5,3]]]],"
                     "\"spans\":[[0,0,0,1]%s]}}";
  char *j1 = strf(base, ""), *j2 = strf(base, ",[0,0,1,0]");
  assert_int_equal(run_request(j1, &a), LOSS_OK);
  assert_int_equal(run_request(j2, &b), LOSS_OK);
  assert_true(a.loss == b.loss);
  assert_true(loss_result_extra(&a, "recall")->data != NULL);
  assert_true(*(double *)loss_result_extra(&a, "recall")->data ==
              *(double *)loss_result_extra(&b, "recall")->data);
  free(j1), free(j2);
  loss_result_free(&a), loss_result_free(&b);
}

static void sparse_mcce(void **state)
{
  (void)state;
  unsigned long long s = 91;
  size_t ss[2] = {3, 8};
  char *sc = jt_rand(&s, 2, ss, -4, 4);
  FD_OK(strf("{\"loss\":\"sparse_mcce\",\"inputs\":{\"scores\":%s,\"positives\":[[1,2],[7,0],"
             "[3,5]]}}",
             sc),
        1e-6, 1e-6, 1e-9);
  FD_OK(strf("{\"loss\":\"sparse_mcce\",\"inputs\":{\"scores\":%s,\"positives\":[[1,0],[0,0],"
             "[3,5]]},\"params\":{\"mask_zero\":true},\"reduction\":\"sum\"}",
             sc),
        1e-6, 1e-6, 1e-9);
  free(sc);
  /* Positives dominate: exact value log(1 + e^-60 + e^-61) + log(1 + e^-5 + e^-6) where the
   * reference's clip would give a different number. */
  loss_result_t r;
  assert_int_equal(run_request("{\"loss\":\"sparse_mcce\",\"inputs\":{\"scores\":[[60,61,-5,-6]],"
                               "\"positives\":[[0,1]]}}",
                               &r),
                   LOSS_OK);
  assert_true(
      close_enough(r.loss, log1p(exp(-60) + exp(-61)) + log1p(exp(-5) + exp(-6)), 1e-13, 0));
  loss_result_free(&r);
  EXPECT_STATUS(
      strf("{\"loss\":\"sparse_mcce\",\"inputs\":{\"scores\":[[1,2,3]],\"positives\":[[1,1]]}}"),
      LOSS_EDUP);
  EXPECT_STATUS(
      strf("{\"loss\":\"sparse_mcce\",\"inputs\":{\"scores\":[[1,2,3]],\"positives\":[[3]]}}"),
      LOSS_ERANGE);
}

static void invalid(void **state)
{
  (void)state;
  const char *sc = "\"scores\":[[[[1,2],[3,4]]]]";
  EXPECT_STATUS(strf("{\"loss\":\"global_pointer\",\"inputs\":{%s}}", sc), LOSS_EMISSING);
  EXPECT_STATUS(strf("{\"loss\":\"global_pointer\",\"inputs\":{%s,\"spans\":[[0,0,0,1]],"
                     "\"labels\":[[[[0,1],[0,0]]]]}}",
                     sc),
                LOSS_ECONFLICT);
  EXPECT_STATUS(
      strf("{\"loss\":\"global_pointer\",\"inputs\":{%s,\"q\":[[[[1,2]]]],\"k\":[[[[1,2]]]],"
           "\"spans\":[[0,0,0,1]]}}",
           sc),
      LOSS_ECONFLICT);
  EXPECT_STATUS(strf("{\"loss\":\"global_pointer\",\"inputs\":{%s,\"spans\":[[0,0,0,2]]}}", sc),
                LOSS_ERANGE);
  EXPECT_STATUS(
      strf("{\"loss\":\"global_pointer\",\"inputs\":{%s,\"labels\":[[[[0,2],[0,0]]]]}}", sc),
      LOSS_EPARAM);
  EXPECT_STATUS(
      strf("{\"loss\":\"global_pointer\",\"inputs\":{\"q\":[[[[1,2,3]]]],\"k\":[[[[1,2,3]]]],"
           "\"spans\":[]}}"),
      LOSS_ESHAPE);
}

/* The float32 scores path (vector, hard labels) agrees with the float64 general path. */
static void f32_fast_path_matches(void **state)
{
  (void)state;
  enum { B = 2, H = 3, L = 21 };
  static float s32[B * H * L * L], y32[B * H * L * L];
  static double s64[B * H * L * L], y64[B * H * L * L];
  double mask[B * L];
  unsigned long long seed = 17;
  for (int i = 0; i < B * H * L * L; i++) {
    s64[i] = s32[i] = (float)rnd(&seed, -6, 4);
    y64[i] = y32[i] = rnd(&seed, 0, 1) < 0.03 ? 1.0f : 0.0f;
  }
  s32[5] = -INFINITY, s64[5] = -INFINITY; /* a masked cell, labelled */
  y32[5] = 1, y64[5] = 1;
  for (int i = 0; i < B * L; i++) mask[i] = (i % L) < L - 3 - (i / L);
  size_t ss[4] = {B, H, L, L}, ms[2] = {B, L};
  loss_tensor_t t32 = tview(s32, LOSS_FLOAT32, 4, ss), t64 = tview(s64, LOSS_FLOAT64, 4, ss);
  loss_tensor_t l32 = tview(y32, LOSS_FLOAT32, 4, ss), l64 = tview(y64, LOSS_FLOAT64, 4, ss);
  loss_tensor_t tm = tview(mask, LOSS_FLOAT64, 2, ms);
  for (int tril = 0; tril < 2; tril++) {
    loss_gp_params_t p = loss_gp_params_default();
    p.tril_mask = tril;
    p.threshold = 0.5;
    loss_opts_t o = loss_opts_default();
    loss_result_t a, b;
    loss_result_init(&a);
    loss_result_init(&b);
    assert_int_equal(loss_global_pointer(&t32, NULL, NULL, NULL, &l32, NULL, &tm, &p, &o, &a),
                     LOSS_OK);
    assert_int_equal(loss_global_pointer(&t64, NULL, NULL, NULL, &l64, NULL, &tm, &p, &o, &b),
                     LOSS_OK);
    assert_int_equal(a.grads[0].dtype, LOSS_FLOAT32);
    assert_true(close_enough(a.loss, b.loss, 1e-5, 1e-7));
    const float *ga = a.grads[0].data;
    const double *gb = b.grads[0].data;
    for (int i = 0; i < B * H * L * L; i++) assert_true(close_enough(ga[i], gb[i], 1e-4, 1e-8));
    const char *names[3] = {"f1", "precision", "recall"};
    for (int k = 0; k < 3; k++)
      assert_true(close_enough(*(double *)loss_result_extra(&a, names[k])->data,
                               *(double *)loss_result_extra(&b, names[k])->data, 1e-12, 0));
    const loss_output_t *ea = loss_result_extra(&a, "entities"),
                        *eb = loss_result_extra(&b, "entities");
    assert_int_equal(ea->shape[0], eb->shape[0]);
    for (size_t i = 0; i < ea->shape[0] * 5; i++)
      assert_true(close_enough(((double *)ea->data)[i], ((double *)eb->data)[i], 1e-6, 0));
    loss_result_free(&a);
    loss_result_free(&b);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden),
                                     cmocka_unit_test(fd_forms),
                                     cmocka_unit_test(rope_is_relative),
                                     cmocka_unit_test(masked_positive_ignored),
                                     cmocka_unit_test(sparse_mcce),
                                     cmocka_unit_test(invalid),
                                     cmocka_unit_test(f32_fast_path_matches)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
