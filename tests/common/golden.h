/* golden.h - test helpers: golden-vector runner, finite-difference checks, tolerant compare. */
#ifndef LOSSD_TEST_GOLDEN_H
#define LOSSD_TEST_GOLDEN_H

#include "loss.h"

#include <stddef.h>

/* Run every case of tests/golden/<family>.json through the codec and catalogue (the server's
 * path) and compare loss, gradients and extras. Prints each failure; returns the number of
 * failed cases and stores the number run in *ran. */
int golden_run(const char *family, int *ran);

/* |a - b| <= atol + rtol |b|, NaN equal to NaN. */
int close_enough(double a, double b, double rtol, double atol);

/* A loss as a function of one float64 input buffer x[n] (the harness perturbs x). */
typedef double (*fd_fn)(void *ctx, const double *x);
/* Max over i of |analytic_i - central difference_i| / (atol + rtol |fd_i|); <= 1 passes. */
double fd_check(fd_fn f, void *ctx, double *x, size_t n, const double *analytic, double h,
                double rtol, double atol);

/* Deterministic uniform in [lo, hi) (xorshift). */
double rnd(unsigned long long *state, double lo, double hi);

/* A float64 tensor view over data with the given shape. */
loss_tensor_t tview(const void *data, loss_dtype_t dt, int rank, const size_t *shape);

#endif
