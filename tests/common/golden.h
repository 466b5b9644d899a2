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

/* Finite-difference check of every gradient a request returns (request as JSON text with a
 * "loss" key; float inputs in the JSON data form decode to float64 and are perturbed in place).
 * The scalar differentiated is the loss, or sum(grad_output * losses) for reduction "none".
 * Returns the worst ratio |analytic - fd| / (atol + rtol |fd|) (<= 1 passes), or 1e300 when
 * the request fails. */
double fd_request(const char *json, double h, double rtol, double atol);

/* Run a request (JSON text with "loss"); returns the lib status; *r must be freed by caller. */
int run_request(const char *json, loss_result_t *r);

/* Random tensors as JSON text {"shape": [...], "data": [...]} (malloc'd; free them). */
char *jt_rand(unsigned long long *s, int rank, const size_t *shape, double lo, double hi);
char *jt_randint(unsigned long long *s, int rank, const size_t *shape, long lo, long hi);
/* printf into a malloc'd string. */
char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cmocka glue: assert a golden family passes and an FD ratio is within tolerance. */
#define GOLDEN(fam)                                                                                \
  do {                                                                                             \
    int ran_;                                                                                      \
    assert_int_equal(golden_run(fam, &ran_), 0);                                                   \
    assert_true(ran_ > 0);                                                                         \
  } while (0)
#define FD_OK(json, h, rtol, atol)                                                                 \
  do {                                                                                             \
    char *j_ = (json);                                                                             \
    double w_ = fd_request(j_, h, rtol, atol);                                                     \
    if (!(w_ <= 1.0)) fprintf(stderr, "fd failed (worst %g) for %s\n", w_, j_);                    \
    free(j_);                                                                                      \
    assert_true(w_ <= 1.0);                                                                        \
  } while (0)
/* Expect a lib status from a request. */
#define EXPECT_STATUS(json, status)                                                                \
  do {                                                                                             \
    loss_result_t r_;                                                                              \
    char *j_ = (json);                                                                             \
    int rc_ = run_request(j_, &r_);                                                                \
    if (rc_ != (status)) fprintf(stderr, "status %d, expected %d: %s\n", rc_, status, j_);         \
    free(j_);                                                                                      \
    assert_int_equal(rc_, status);                                                                 \
    assert_int_equal(r_.n_grads, 0);                                                               \
    loss_result_free(&r_);                                                                         \
  } while (0)
