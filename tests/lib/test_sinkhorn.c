/* test_sinkhorn.c - entropic OT (lib/src/sinkhorn.c). */
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
  GOLDEN("sinkhorn");
}

typedef struct {
  double *a, *b, *C;
  size_t n, m;
  int which; /* 0: a, 1: b, 2: C */
  loss_reg_type_t rt;
} sk_t;

static double sk_value(sk_t *c)
{
  size_t cs[2] = {c->n, c->m};
  loss_tensor_t ta = tview(c->a, LOSS_FLOAT64, 1, &c->n), tb = tview(c->b, LOSS_FLOAT64, 1, &c->m);
  loss_tensor_t tc = tview(c->C, LOSS_FLOAT64, 2, cs);
  loss_sinkhorn_params_t p = loss_sinkhorn_params_default();
  p.reg = 0.3, p.reg_type = c->rt, p.tol = 1e-13, p.max_iter = 100000;
  loss_opts_t o = loss_opts_default();
  o.grad_mask = 0;
  loss_result_t r;
  loss_result_init(&r);
  int rc = loss_sinkhorn(&ta, &tb, &tc, NULL, NULL, &p, &o, &r);
  double v = rc ? NAN : r.loss;
  loss_result_free(&r);
  return v;
}

/* Directional derivatives along e_i - e_0, which keep the sums equal: g_i - g_0. */
static void fd_envelope(void **state)
{
  (void)state;
  double a[3] = {0.5, 0.3, 0.2}, b[4] = {0.1, 0.4, 0.25, 0.25}, C[12];
  unsigned long long s = 101;
  for (int i = 0; i < 12; i++) C[i] = rnd(&s, 0, 1);
  for (int rt = 0; rt < 2; rt++) {
    sk_t c = {a, b, C, 3, 4, 0, (loss_reg_type_t)rt};
    size_t cs[2] = {3, 4}, n = 3, m = 4;
    loss_tensor_t ta = tview(a, LOSS_FLOAT64, 1, &n), tb = tview(b, LOSS_FLOAT64, 1, &m);
    loss_tensor_t tc = tview(C, LOSS_FLOAT64, 2, cs);
    loss_sinkhorn_params_t p = loss_sinkhorn_params_default();
    p.reg = 0.3, p.reg_type = c.rt, p.tol = 1e-13, p.max_iter = 100000;
    loss_opts_t o = loss_opts_default();
    loss_result_t r;
    loss_result_init(&r);
    assert_int_equal(loss_sinkhorn(&ta, &tb, &tc, NULL, NULL, &p, &o, &r), LOSS_OK);
    const double *ga = loss_result_grad(&r, "a")->data, *gb = loss_result_grad(&r, "b")->data;
    const double *gc = loss_result_grad(&r, "cost")->data;
    double h = 1e-6;
    for (int w = 0; w < 2; w++) {
      double *v = w ? b : a;
      const double *g = w ? gb : ga;
      for (size_t i = 1; i < (w ? m : n); i++) {
        v[i] += h, v[0] -= h;
        double fp = sk_value(&c);
        v[i] -= 2 * h, v[0] += 2 * h;
        double fm = sk_value(&c);
        v[i] += h, v[0] -= h;
        assert_true(close_enough(g[i] - g[0], (fp - fm) / (2 * h), 1e-5, 1e-8));
      }
    }
    for (size_t i = 0; i < 12; i++) {
      double c0 = C[i];
      C[i] = c0 + h;
      double fp = sk_value(&c);
      C[i] = c0 - h;
      double fm = sk_value(&c);
      C[i] = c0;
      assert_true(close_enough(gc[i], (fp - fm) / (2 * h), 1e-5, 1e-8));
    }
    loss_result_free(&r);
  }
}

static void fd_point_clouds(void **state)
{
  (void)state;
  unsigned long long s = 111;
  size_t xs[2] = {4, 2}, ys[2] = {3, 2};
  char *x = jt_rand(&s, 2, xs, -1, 1), *y = jt_rand(&s, 2, ys, -1, 1);
  const char *metrics[3] = {"sqeuclidean", "euclidean", "cosine"};
  for (int k = 0; k < 3; k++)
    FD_OK(strf("{\"loss\":\"sinkhorn\",\"inputs\":{\"a\":[0.25,0.25,0.25,0.25],\"b\":[0.3,0.3,0.4],"
               "\"x\":%s,\"y\":%s},\"params\":{\"reg\":0.2,\"metric\":\"%s\",\"tol\":1e-14,"
               "\"max_iter\":100000},\"grad\":[\"x\",\"y\"]}",
               x, y, metrics[k]),
          1e-6, 1e-5, 1e-8);
  free(x), free(y);
}

/* reg = 1e-3 * max cost: the log domain stays finite (the scaling form underflows). */
static void small_reg_stable(void **state)
{
  (void)state;
  enum { N = 48 };
  double a[N], b[N], C[N * N], mx = 0;
  unsigned long long s = 5;
  for (int i = 0; i < N; i++) a[i] = b[i] = 1.0 / N;
  for (int i = 0; i < N * N; i++) mx = fmax(mx, C[i] = rnd(&s, 0, 10));
  size_t n = N, cs[2] = {N, N};
  loss_tensor_t ta = tview(a, LOSS_FLOAT64, 1, &n), tb = tview(b, LOSS_FLOAT64, 1, &n);
  loss_tensor_t tc = tview(C, LOSS_FLOAT64, 2, cs);
  loss_sinkhorn_params_t p = loss_sinkhorn_params_default();
  p.reg = 1e-3 * mx, p.max_iter = 5000;
  loss_opts_t o = loss_opts_default();
  loss_result_t r;
  loss_result_init(&r);
  assert_int_equal(loss_sinkhorn(&ta, &tb, &tc, NULL, NULL, &p, &o, &r), LOSS_OK);
  assert_true(isfinite(r.loss));
  double err = *(double *)loss_result_extra(&r, "marginal_error")->data;
  fprintf(stderr, "reg %.3g: marginal error %.3g after %lld iterations\n", p.reg, err,
          (long long)*(int64_t *)loss_result_extra(&r, "iterations")->data);
  assert_true(err < 1e-3);
  for (int g = 0; g < r.n_grads; g++) {
    size_t cnt = r.grads[g].rank == 2 ? N * N : N;
    for (size_t i = 0; i < cnt; i++) assert_true(isfinite(((double *)r.grads[g].data)[i]));
  }
  loss_result_free(&r);
}

static void invalid(void **state)
{
  (void)state;
  const char *c = "\"cost\":[[0,1],[1,0]]";
  EXPECT_STATUS(strf("{\"loss\":\"sinkhorn\",\"inputs\":{\"a\":[0.5,0.5],\"b\":[0.5,0.6],%s},"
                     "\"params\":{\"reg\":1}}",
                     c),
                LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"sinkhorn\",\"inputs\":{\"a\":[1,0],\"b\":[0.5,0.5],%s},"
                     "\"params\":{\"reg\":1}}",
                     c),
                LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"sinkhorn\",\"inputs\":{\"a\":[0.5,0.5],\"b\":[0.5,0.5],%s}}", c),
                LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"sinkhorn\",\"inputs\":{\"a\":[0.5,0.5],\"b\":[0.5,0.5],%s,"
                     "\"x\":[[1],[2]],\"y\":[[1],[2]]},\"params\":{\"reg\":1}}",
                     c),
                LOSS_ECONFLICT);
  EXPECT_STATUS(strf("{\"loss\":\"sinkhorn\",\"inputs\":{\"a\":[0.5,0.5],\"b\":[0.5,0.5],"
                     "\"cost\":[[0,1,2],[1,0,2]]},\"params\":{\"reg\":1}}"),
                LOSS_ESHAPE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_envelope),
                                     cmocka_unit_test(fd_point_clouds),
                                     cmocka_unit_test(small_reg_stable), cmocka_unit_test(invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
