/* test_circle.c - Circle loss (lib/src/circle.c). */
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

enum { N = 7, D = 3 };
typedef struct {
  const int64_t *y;
  double alpha[N][N]; /* frozen, as the reference detaches it */
  double m, g;
} circ_t;

static void sims(const double *e, double S[N][N])
{
  double u[N][D];
  for (int i = 0; i < N; i++) {
    double n = 0;
    for (int k = 0; k < D; k++) n += e[i * D + k] * e[i * D + k];
    for (int k = 0; k < D; k++) u[i][k] = e[i * D + k] / sqrt(n);
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      S[i][j] = 0;
      for (int k = 0; k < D; k++) S[i][j] += u[i][k] * u[j][k];
    }
}

/* An independent Circle loss with alpha held at the values of the unperturbed point. */
static double circle_frozen(void *ctx, const double *e)
{
  circ_t *c = ctx;
  double S[N][N], tot = 0;
  int cnt = 0;
  sims(e, S);
  for (int i = 0; i < N; i++) {
    double sp = 0, sn = 0;
    int hp = 0, hn = 0;
    for (int j = 0; j < N; j++) {
      if (c->y[j] == c->y[i] && j != i) {
        sp += exp(-c->g * c->alpha[i][j] * (S[i][j] - (1 - c->m)));
        hp = 1;
      } else if (c->y[j] != c->y[i]) {
        sn += exp(c->g * c->alpha[i][j] * (S[i][j] - c->m));
        hn = 1;
      }
    }
    if (!hp || !hn) continue;
    tot += log1p(sp * sn);
    cnt++;
  }
  return cnt ? tot / cnt : 0;
}

static void fd_alpha_frozen(void **state)
{
  (void)state;
  double e[N * D];
  int64_t y[N] = {0, 0, 1, 1, 1, 2, 3};
  unsigned long long s = 71;
  for (int i = 0; i < N * D; i++) e[i] = rnd(&s, -1, 1);
  circ_t c = {y, {{0}}, 0.4, 8};
  double S[N][N];
  sims(e, S);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      c.alpha[i][j] = y[i] == y[j] ? fmax(1 + c.m - S[i][j], 0) : fmax(S[i][j] + c.m, 0);
  size_t es[2] = {N, D}, ys[1] = {N};
  loss_tensor_t te = tview(e, LOSS_FLOAT64, 2, es), ty = tview(y, LOSS_INT64, 1, ys);
  loss_opts_t o = loss_opts_default();
  loss_result_t r;
  loss_result_init(&r);
  assert_int_equal(loss_circle(&te, &ty, c.m, c.g, &o, &r), LOSS_OK);
  assert_true(close_enough(r.loss, circle_frozen(&c, e), 1e-12, 1e-14));
  assert_true(fd_check(circle_frozen, &c, e, N * D, r.grads[0].data, 1e-6, 1e-5, 1e-8) <= 1);
  loss_result_free(&r);
}

static void edge_cases(void **state)
{
  (void)state;
  loss_result_t r;
  /* Every anchor lacks a positive: loss 0, zero gradient. */
  assert_int_equal(run_request("{\"loss\":\"circle\",\"inputs\":{\"embeddings\":[[1,0],[0,1],"
                               "[1,1]],\"labels\":[0,1,2]}}",
                               &r),
                   LOSS_OK);
  assert_true(r.loss == 0.0);
  for (int i = 0; i < 6; i++) assert_true(((double *)r.grads[0].data)[i] == 0.0);
  loss_result_free(&r);
  /* gamma 256 with similarities near +-1 stays finite. */
  assert_int_equal(run_request("{\"loss\":\"circle\",\"inputs\":{\"embeddings\":[[1,0],[1,1e-9],"
                               "[-1,0],[-1,1e-9]],\"labels\":[0,0,1,1]},\"params\":{\"gamma\":256,"
                               "\"m\":0.25}}",
                               &r),
                   LOSS_OK);
  assert_true(isfinite(r.loss));
  loss_result_free(&r);
  EXPECT_STATUS(strf("{\"loss\":\"circle\",\"inputs\":{\"embeddings\":[[1,0]],\"labels\":[0.5]}}"),
                -1001);
  EXPECT_STATUS(strf("{\"loss\":\"circle\",\"inputs\":{\"embeddings\":[[1,0]],\"labels\":[0,1]}}"),
                LOSS_ESHAPE);
  EXPECT_STATUS(strf("{\"loss\":\"circle\",\"inputs\":{\"embeddings\":[[1,0]],\"labels\":[0]},"
                     "\"params\":{\"gamma\":0}}"),
                LOSS_EPARAM);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_alpha_frozen),
                                     cmocka_unit_test(edge_cases)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
