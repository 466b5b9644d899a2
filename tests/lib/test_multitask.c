/* test_multitask.c - multitask arithmetic and update rules (lib/src/multitask.c). */
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
  GOLDEN("multitask");
}

static void fd_uncertainty(void **state)
{
  (void)state;
  FD_OK(
      strf(
          "{\"loss\":\"multitask\",\"inputs\":{\"losses\":[0.3,2.5,1.1],\"log_vars\":[-0.2,0.4,1]},"
          "\"params\":{\"method\":\"uncertainty\"}}"),
      1e-6, 1e-7, 1e-10);
  FD_OK(
      strf(
          "{\"loss\":\"multitask\",\"inputs\":{\"losses\":[0.3,2.5,1.1],\"log_vars\":[-0.2,0.4,1]},"
          "\"params\":{\"method\":\"uncertainty\",\"form\":\"kendall\"}}"),
      1e-6, 1e-7, 1e-10);
  /* The stationary point of the objective is s* = log L (libmtl: d/ds = 1/2 - L/(2e^s)). */
  double L[2] = {0.7, 3.0}, s[2] = {log(0.7), log(3.0)}, ds[2];
  loss_uw_total(LOSS_UW_LIBMTL, L, s, 2, ds);
  assert_true(fabs(ds[0]) < 1e-15 && fabs(ds[1]) < 1e-15);
}

/* torch.optim semantics: SGD theta -= lr g; Adam's first step moves every coordinate by lr. */
static void optimisers(void **state)
{
  (void)state;
  double th[2] = {1, -1}, g[2] = {0.5, -2}, m[2] = {0}, v[2] = {0};
  loss_optim_t sgd = {LOSS_OPT_SGD, 0.1, 0.9, 0.999, 1e-8, 0};
  loss_optim_step(&sgd, th, g, m, v, 2);
  assert_true(close_enough(th[0], 0.95, 1e-15, 0) && close_enough(th[1], -0.8, 1e-15, 0));
  loss_optim_t adam = {LOSS_OPT_ADAM, 0.01, 0.9, 0.999, 1e-8, 0};
  double t2[2] = {0, 0};
  loss_optim_step(&adam, t2, g, m, v, 2);
  assert_true(close_enough(t2[0], -0.01 * 0.5 / (0.5 + 1e-8), 1e-12, 0));
  assert_true(close_enough(t2[1], 0.01 * 2 / (2 + 1e-8), 1e-12, 0));
  /* Second step by the closed form. */
  double g2[2] = {1, 1};
  loss_optim_step(&adam, t2, g2, m, v, 2);
  double m0 = 0.9 * 0.05 + 0.1, v0 = 0.999 * 0.00025 + 0.001;
  double expect =
      -0.01 * 0.5 / (0.5 + 1e-8) - 0.01 / (1 - 0.81) * m0 / (sqrt(v0) / sqrt(1 - 0.998001) + 1e-8);
  assert_true(close_enough(t2[0], expect, 1e-12, 0));
  assert_int_equal(adam.step, 2);
}

typedef struct {
  const double *L, *L0, *n, *target;
  double alpha;
} gn_t;

/* L_grad with the targets frozen at the unperturbed point, as in LibMTL (detached). */
static double lgrad(void *ctx, const double *logits)
{
  gn_t *c = ctx;
  double mx = fmax(fmax(logits[0], logits[1]), logits[2]), s = 0, p[3], tot = 0;
  for (int i = 0; i < 3; i++) s += (p[i] = exp(logits[i] - mx));
  for (int i = 0; i < 3; i++) tot += fabs(3 * p[i] / s * c->n[i] - c->target[i]);
  return tot;
}

static void gradnorm(void **state)
{
  (void)state;
  double logits[3] = {0.1, -0.3, 0.25}, L[3] = {0.8, 1.5, 0.2}, L0[3] = {1.0, 2.0, 0.5};
  double n[3] = {0.7, 1.9, 0.4}, w[3], dl[3], target[3];
  double lg = loss_gradnorm_grad(logits, L, L0, n, 1.5, 3, w, dl);
  double gbar = (w[0] * n[0] + w[1] * n[1] + w[2] * n[2]) / 3, rbar = 0;
  for (int i = 0; i < 3; i++) rbar += L[i] / L0[i] / 3;
  for (int i = 0; i < 3; i++) target[i] = gbar * pow(L[i] / L0[i] / rbar, 1.5);
  gn_t c = {L, L0, n, target, 1.5};
  assert_true(close_enough(lg, lgrad(&c, logits), 1e-14, 0));
  assert_true(close_enough(w[0] + w[1] + w[2], 3, 1e-15, 0));
  assert_true(fd_check(lgrad, &c, logits, 3, dl, 1e-7, 1e-6, 1e-10) <= 1);
}

static void dwa(void **state)
{
  (void)state;
  double p1[3] = {1, 2, 3}, p2[3] = {1, 2, 3}, w[3];
  loss_dwa_weights(p1, p2, 2.0, 3, w);
  for (int i = 0; i < 3; i++) assert_true(close_enough(w[i], 1, 1e-15, 0));
  double q1[2] = {2, 1}, q2[2] = {1, 1};
  loss_dwa_weights(q1, q2, 2.0, 2, w);
  double e = exp(1.0), f = exp(0.5);
  assert_true(close_enough(w[0], 2 * e / (e + f), 1e-15, 0));
}

static void invalid(void **state)
{
  (void)state;
  EXPECT_STATUS(strf("{\"loss\":\"multitask\",\"inputs\":{\"losses\":[1,2],\"log_vars\":[0]},"
                     "\"params\":{\"method\":\"uncertainty\"}}"),
                LOSS_ESHAPE);
  EXPECT_STATUS(strf("{\"loss\":\"multitask\",\"inputs\":{\"losses\":[1,2],\"log_vars\":[0,0]}}"),
                LOSS_EINVAL);
  EXPECT_STATUS(
      strf("{\"loss\":\"multitask\",\"inputs\":{\"losses\":[1,2]},\"params\":{\"weights\":"
           "[1,2],\"method\":\"uncertainty\"}}"),
      LOSS_EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden),     cmocka_unit_test(fd_uncertainty),
                                     cmocka_unit_test(optimisers), cmocka_unit_test(gradnorm),
                                     cmocka_unit_test(dwa),        cmocka_unit_test(invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
