/* internal.h - helpers shared by the loss families: argument checks, tensor access in double,
 * stable log-sum-exp and sigmoid forms, and output allocation. Not installed. */
#ifndef LOSS_INTERNAL_H
#define LOSS_INTERNAL_H

#include "loss.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(LOSS_NO_CLONES) &&                        \
    !defined(__SANITIZE_ADDRESS__)
#define LOSS__HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LOSS__HOT
#endif

/* Record an error in out (field may be NULL) and return status. */
int loss__fail(loss_result_t *out, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks that return a status after recording it. */
/* The pointwise pair of bce, kl_div and sigmoid_focal: x and t given, float, the same
 * non-empty shape, finite; *n receives the element count. */
int loss__check_pointwise(const loss_tensor_t *x, const char *fx, const loss_tensor_t *t,
                          const char *ft, loss_result_t *out, size_t *n);
/* A required input given as NULL: LOSS_EMISSING. */
int loss__require(const loss_tensor_t *t, const char *field, loss_result_t *out);
int loss__check_float(const loss_tensor_t *t, const char *field, loss_result_t *out);
int loss__check_int(const loss_tensor_t *t, const char *field, loss_result_t *out);
int loss__check_rank(const loss_tensor_t *t, int rank, const char *field, loss_result_t *out);
int loss__check_same_shape(const loss_tensor_t *a, const loss_tensor_t *b, const char *field,
                           loss_result_t *out);
/* All elements finite (float tensors). allow_neg_inf lets -inf through (masks). */
int loss__check_finite(const loss_tensor_t *t, int allow_neg_inf, const char *field,
                       loss_result_t *out);
/* Whether all of y[0..n) lie in [0, 1] (no NaN), and whether all are exactly 0 or 1. */
void loss__unit_scan_f32(const float *y, size_t n, int *in_range, int *binary);
/* Numel > 0 and no overflow; *n receives it. */
int loss__numel(const loss_tensor_t *t, const char *field, loss_result_t *out, size_t *n);
/* Reject any reduction not in the allowed bitmask (1 << loss_reduction_t); map DEFAULT. */
int loss__reduction(const loss_opts_t *o, unsigned allowed, loss_reduction_t dflt,
                    loss_reduction_t *r, loss_result_t *out);
/* Validate grad_output against the per-element shape (rank, shape); NULL if absent. */
int loss__check_grad_output(const loss_opts_t *o, int rank, const size_t *shape,
                            loss_result_t *out);

/* Element i as double (any dtype). */
static inline double loss__get(const loss_tensor_t *t, size_t i)
{
  switch (t->dtype) {
  case LOSS_FLOAT32:
    return ((const float *)t->data)[i];
  case LOSS_FLOAT64:
    return ((const double *)t->data)[i];
  case LOSS_INT32:
    return ((const int32_t *)t->data)[i];
  case LOSS_INT64:
    return (double)((const int64_t *)t->data)[i];
  }
  return NAN;
}
static inline int64_t loss__geti(const loss_tensor_t *t, size_t i)
{
  switch (t->dtype) {
  case LOSS_INT32:
    return ((const int32_t *)t->data)[i];
  case LOSS_INT64:
    return ((const int64_t *)t->data)[i];
  case LOSS_FLOAT32:
    return (int64_t)((const float *)t->data)[i];
  case LOSS_FLOAT64:
    return (int64_t)((const double *)t->data)[i];
  }
  return 0;
}
/* Copy n elements of t into dst as double. */
void loss__to_f64(const loss_tensor_t *t, double *dst, size_t n);

/* Allocate an output in out->grads / out->extras / out->losses. Gradients are allocated as
 * float64 and narrowed to the input's dtype by loss__finish(). Returns NULL on ENOMEM (after
 * recording it). */
double *loss__grad(loss_result_t *out, const char *name, const loss_tensor_t *like);
double *loss__extra(loss_result_t *out, const char *name, int rank, const size_t *shape);
int loss__extra_scalar(loss_result_t *out, const char *name, double v);
int loss__extra_int(loss_result_t *out, const char *name, loss_out_kind_t kind, int64_t v);
double *loss__losses(loss_result_t *out, int rank, const size_t *shape);
/* Output that a kernel writes directly in the input's dtype (hot kernels). NOT zeroed: the
 * kernel must write every element. */
void *loss__grad_native(loss_result_t *out, const char *name, const loss_tensor_t *like);
/* Narrow float64 gradients of float32 inputs; free everything on error. Returns rc. */
int loss__finish(loss_result_t *out, int rc);

/* Scratch: one calloc'ed block; NULL + ENOMEM recorded on failure (n may be 0). */
void *loss__scratch(loss_result_t *out, size_t count, size_t size);

/* Stable forms (LOSSES.md §0). */
static inline double loss__log_sigmoid(double x)
{
  return fmin(x, 0.0) - log1p(exp(-fabs(x)));
}
static inline double loss__softplus(double x)
{
  return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}
static inline double loss__sigmoid(double x)
{
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}
/* log(1 - e^x) for x <= 0, accurate near both ends. */
static inline double loss__log1mexp(double x)
{
  return x > -0.6931471805599453 ? log(-expm1(x)) : log1p(-exp(x));
}
/* log-sum-exp of n doubles with stride; -inf for an empty or all -inf set. */
double loss__lse(const double *x, size_t n);
/* Online log-sum-exp accumulator. */
typedef struct {
  double m, s;
} loss__lse_t;
static inline void loss__lse_init(loss__lse_t *a)
{
  a->m = -INFINITY;
  a->s = 0.0;
}
static inline void loss__lse_add(loss__lse_t *a, double x)
{
  if (x == -INFINITY) return;
  if (x <= a->m) {
    a->s += exp(x - a->m);
  } else {
    a->s = a->s * exp(a->m - x) + 1.0;
    a->m = x;
  }
}
static inline double loss__lse_get(const loss__lse_t *a)
{
  return a->m == -INFINITY ? -INFINITY : a->m + log(a->s);
}

/* Reduce n per-element losses (or write them for NONE with grad scale). The common pattern of
 * the element-wise families: returns the factor by which per-element gradients are scaled. */
double loss__reduce(const double *l, size_t n, loss_reduction_t r, double denom);

#endif /* LOSS_INTERNAL_H */
