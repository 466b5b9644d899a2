/* common.c - status table, results and their outputs, argument checks shared by every family. */
#include "internal.h"
#include "vecmath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

const char *loss_strerror(int status)
{
  switch (status) {
#define LOSS__STATUS_MSG(name, value, msg)                                                         \
  case value:                                                                                      \
    return msg;
    LOSS_STATUS_MAP(LOSS__STATUS_MSG)
#undef LOSS__STATUS_MSG
  }
  return "unknown status";
}

const char *loss_status_name(int status)
{
  switch (status) {
#define LOSS__STATUS_NAME(name, value, msg)                                                        \
  case value:                                                                                      \
    return #name;
    LOSS_STATUS_MAP(LOSS__STATUS_NAME)
#undef LOSS__STATUS_NAME
  }
  return "UNKNOWN";
}

size_t loss_dtype_size(loss_dtype_t d)
{
  switch (d) {
  case LOSS_FLOAT32:
    return 4;
  case LOSS_FLOAT64:
    return 8;
  case LOSS_INT32:
    return 4;
  case LOSS_INT64:
    return 8;
  }
  return 0;
}

const char *loss_dtype_name(loss_dtype_t d)
{
  switch (d) {
  case LOSS_FLOAT32:
    return "float32";
  case LOSS_FLOAT64:
    return "float64";
  case LOSS_INT32:
    return "int32";
  case LOSS_INT64:
    return "int64";
  }
  return "unknown";
}

size_t loss_tensor_numel(const loss_tensor_t *t)
{
  size_t n = 1;
  for (int i = 0; i < t->rank; i++) {
    if (t->shape[i] == 0) return 0;
    if (n > SIZE_MAX / t->shape[i]) return 0;
    n *= t->shape[i];
  }
  return n;
}

loss_opts_t loss_opts_default(void)
{
  loss_opts_t o = {LOSS_REDUCTION_DEFAULT, LOSS_GRAD_ALL, NULL};
  return o;
}

void loss_result_init(loss_result_t *r)
{
  memset(r, 0, sizeof *r);
}

void loss_result_free(loss_result_t *r)
{
  if (!r) return;
  free(r->losses.data);
  for (int i = 0; i < r->n_grads; i++) free(r->grads[i].data);
  for (int i = 0; i < r->n_extras; i++) free(r->extras[i].data);
  loss_result_init(r);
}

static const loss_output_t *find_output(const loss_output_t *v, int n, const char *name)
{
  for (int i = 0; i < n; i++)
    if (strcmp(v[i].name, name) == 0) return &v[i];
  return NULL;
}

const loss_output_t *loss_result_grad(const loss_result_t *r, const char *name)
{
  return find_output(r->grads, r->n_grads, name);
}

const loss_output_t *loss_result_extra(const loss_result_t *r, const char *name)
{
  return find_output(r->extras, r->n_extras, name);
}

int loss__fail(loss_result_t *out, int status, const char *field, const char *fmt, ...)
{
  out->err_field = field;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->err_msg, sizeof out->err_msg, fmt, ap);
  va_end(ap);
  return status;
}

static void shape_str(const loss_tensor_t *t, char *buf, size_t cap)
{
  size_t len = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < t->rank && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, i ? ", %zu" : "%zu", t->shape[i]);
  if (len < cap) snprintf(buf + len, cap - len, "]");
}

int loss__require(const loss_tensor_t *t, const char *field, loss_result_t *out)
{
  if (t) return LOSS_OK;
  return loss__fail(out, LOSS_EMISSING, field, "%s is required", field + 7);
}

int loss__check_pointwise(const loss_tensor_t *x, const char *fx, const loss_tensor_t *t,
                          const char *ft, loss_result_t *out, size_t *n)
{
  int rc = loss__require(x, fx, out);
  if (!rc) rc = loss__require(t, ft, out);
  if (!rc) rc = loss__check_float(x, fx, out);
  if (!rc) rc = loss__check_float(t, ft, out);
  if (!rc) rc = loss__numel(x, fx, out, n);
  if (!rc) rc = loss__check_same_shape(x, t, ft, out);
  if (!rc) rc = loss__check_finite(x, 0, fx, out);
  if (!rc) rc = loss__check_finite(t, 0, ft, out);
  return rc;
}

int loss__check_float(const loss_tensor_t *t, const char *field, loss_result_t *out)
{
  if (t->dtype != LOSS_FLOAT32 && t->dtype != LOSS_FLOAT64)
    return loss__fail(out, LOSS_EDTYPE, field, "%s must be float32 or float64, got %s", field + 7,
                      loss_dtype_name(t->dtype));
  return LOSS_OK;
}

int loss__check_int(const loss_tensor_t *t, const char *field, loss_result_t *out)
{
  if (t->dtype != LOSS_INT32 && t->dtype != LOSS_INT64)
    return loss__fail(out, LOSS_EDTYPE, field, "%s must hold integers, got %s", field + 7,
                      loss_dtype_name(t->dtype));
  return LOSS_OK;
}

int loss__check_rank(const loss_tensor_t *t, int rank, const char *field, loss_result_t *out)
{
  if (t->rank != rank) {
    char s[96];
    shape_str(t, s, sizeof s);
    return loss__fail(out, LOSS_ESHAPE, field, "%s must be %d-D, got %s", field + 7, rank, s);
  }
  return LOSS_OK;
}

int loss__check_same_shape(const loss_tensor_t *a, const loss_tensor_t *b, const char *field,
                           loss_result_t *out)
{
  int same = a->rank == b->rank;
  for (int i = 0; same && i < a->rank; i++) same = a->shape[i] == b->shape[i];
  if (!same) {
    char sa[96], sb[96];
    shape_str(a, sa, sizeof sa);
    shape_str(b, sb, sizeof sb);
    return loss__fail(out, LOSS_ESHAPE, field, "%s has shape %s, expected %s", field + 7, sb, sa);
  }
  return LOSS_OK;
}

int loss__numel(const loss_tensor_t *t, const char *field, loss_result_t *out, size_t *n)
{
  if (t->rank < 0 || t->rank > LOSS_MAX_RANK)
    return loss__fail(out, LOSS_ESHAPE, field, "%s has rank %d", field + 7, t->rank);
  for (int i = 0; i < t->rank; i++)
    if (t->shape[i] == 0) return loss__fail(out, LOSS_EEMPTY, field, "%s is empty", field + 7);
  *n = loss_tensor_numel(t);
  if (*n == 0) return loss__fail(out, LOSS_ETOOBIG, field, "%s is too large", field + 7);
  return LOSS_OK;
}

/* x * 0 is 0 for finite x and NaN for NaN and +-inf: 8 lanes of that per step. */
LOSS__HOT static int all_finite_f32(const float *x, size_t n)
{
  loss__v8f a0 = loss__v8f_splat(0.0f), a1 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 += loss__v8f_load(x + i) * 0.0f;
    a1 += loss__v8f_load(x + i + 8) * 0.0f;
  }
  float acc = 0;
  for (int k = 0; k < 8; k++) acc += a0[k] + a1[k];
  for (; i < n; i++) acc += x[i] * 0.0f;
  return acc == 0.0f;
}

LOSS__HOT static int all_finite_f64(const double *x, size_t n)
{
  loss__v4d a0 = {0, 0, 0, 0}, a1 = a0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    loss__v4d u, v;
    memcpy(&u, x + i, sizeof u);
    memcpy(&v, x + i + 4, sizeof v);
    a0 += u * 0.0;
    a1 += v * 0.0;
  }
  double acc = 0;
  for (int k = 0; k < 4; k++) acc += a0[k] + a1[k];
  for (; i < n; i++) acc += x[i] * 0.0;
  return acc == 0.0;
}

/* Whether every target lies in [0, 1], and whether every one is exactly 0 or 1. */
LOSS__HOT void loss__unit_scan_f32(const float *y, size_t n, int *in_range, int *binary)
{
  loss__v8i out = {0}, soft = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    loss__v8f v = loss__v8f_load(y + i);
    out |= (v < 0.0f) | (v > 1.0f) | (v != v);
    soft |= (v != 0.0f) & (v != 1.0f);
  }
  int o = 0, sf = 0;
  for (int k = 0; k < 8; k++) o |= out[k], sf |= soft[k];
  for (; i < n; i++) {
    o |= !(y[i] >= 0 && y[i] <= 1);
    sf |= y[i] != 0 && y[i] != 1;
  }
  *in_range = !o;
  *binary = !sf;
}

/* No NaN and no +inf (-inf allowed: masks). */
LOSS__HOT static int no_nan_posinf_f32(const float *x, size_t n)
{
  loss__v8i bad = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    loss__v8f v = loss__v8f_load(x + i);
    bad |= (v != v) | (v == __builtin_inff());
  }
  int b = 0;
  for (int k = 0; k < 8; k++) b |= bad[k];
  for (; i < n; i++) b |= x[i] != x[i] || x[i] == __builtin_inff();
  return !b;
}

int loss__check_finite(const loss_tensor_t *t, int allow_neg_inf, const char *field,
                       loss_result_t *out)
{
  size_t n = loss_tensor_numel(t);
  if (t->dtype == LOSS_FLOAT32) {
    const float *x = t->data;
    if (!(allow_neg_inf ? no_nan_posinf_f32(x, n) : all_finite_f32(x, n))) goto bad;
    return LOSS_OK;
  } else if (t->dtype == LOSS_FLOAT64) {
    const double *x = t->data;
    if (!allow_neg_inf) {
      if (!all_finite_f64(x, n)) goto bad;
      return LOSS_OK;
    }
    for (size_t i = 0; i < n; i++)
      if (!isfinite(x[i]) && x[i] != -INFINITY) goto bad;
  }
  return LOSS_OK;
bad:
  return loss__fail(out, LOSS_ENONFINITE, field, "%s holds a non-finite value", field + 7);
}

int loss__reduction(const loss_opts_t *o, unsigned allowed, loss_reduction_t dflt,
                    loss_reduction_t *r, loss_result_t *out)
{
  *r = o->reduction == LOSS_REDUCTION_DEFAULT ? dflt : o->reduction;
  if ((unsigned)*r > LOSS_REDUCTION_BATCHMEAN || !(allowed & (1u << *r)))
    return loss__fail(out, LOSS_EREDUCTION, "reduction", "this loss does not take that reduction");
  if (*r != LOSS_REDUCTION_NONE && o->grad_output)
    return loss__fail(out, LOSS_EINVAL, "inputs.grad_output",
                      "grad_output is only accepted with reduction \"none\"");
  return LOSS_OK;
}

int loss__check_grad_output(const loss_opts_t *o, int rank, const size_t *shape, loss_result_t *out)
{
  if (!o->grad_output) return LOSS_OK;
  loss_tensor_t like = {NULL, LOSS_FLOAT64, rank, {0}};
  for (int i = 0; i < rank; i++) like.shape[i] = shape[i];
  int rc = loss__check_float(o->grad_output, "inputs.grad_output", out);
  if (!rc) rc = loss__check_same_shape(&like, o->grad_output, "inputs.grad_output", out);
  if (!rc) rc = loss__check_finite(o->grad_output, 0, "inputs.grad_output", out);
  return rc;
}

void loss__to_f64(const loss_tensor_t *t, double *dst, size_t n)
{
  if (t->dtype == LOSS_FLOAT64) {
    memcpy(dst, t->data, n * sizeof *dst);
    return;
  }
  for (size_t i = 0; i < n; i++) dst[i] = loss__get(t, i);
}

#define HUGE_MIN     ((size_t)8 << 20)
#define SMALL_ZEROED ((size_t)1024)

/* A buffer of `bytes`; zeroed when `zero`. Small zeroed ones come from malloc and memset:
 * glibc 2.36 serves calloc from an arena under its lock, never from the thread's cache, and a
 * server shares its one arena between threads. Large ones ask for transparent huge pages (advice
 * only: errors are ignored). calloc leaves fresh memory untouched, so the advice comes before
 * the first touch of those pages: a pass over 8 MB then walks four page-table entries instead
 * of 2048, its first touch takes a few faults instead of thousands, and a pass over a Sinkhorn
 * kernel matrix measured ~15% faster. */
static void *alloc_big(size_t bytes, int zero)
{
  if (zero && bytes <= SMALL_ZEROED) { /* malloc's per-thread cache; glibc's calloc skips it */
    /* GCC turns malloc(n) then memset(p, 0, n) back into calloc(n); the sizes differ here (a
     * 0-byte request allocates 1), which keeps the two calls: checked in the object code. */
    void *p = malloc(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
  }
  void *p = zero ? calloc(bytes ? bytes : 1, 1) : malloc(bytes ? bytes : 1);
#ifdef MADV_HUGEPAGE
  if (p && bytes >= HUGE_MIN) {
    uintptr_t lo = ((uintptr_t)p + ((1u << 21) - 1)) & ~(uintptr_t)((1u << 21) - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)((1u << 21) - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
  }
#endif
  return p;
}

static loss_output_t *new_output(loss_result_t *out, loss_output_t *v, int *n, const char *name,
                                 loss_dtype_t dtype, int rank, const size_t *shape)
{
  if (*n >= LOSS_MAX_OUTPUTS) return NULL;
  loss_output_t *o = &v[*n];
  memset(o, 0, sizeof *o);
  o->name = name;
  o->kind = LOSS_OUT_TENSOR;
  o->dtype = dtype;
  o->rank = rank;
  size_t count = 1, size = loss_dtype_size(dtype);
  for (int i = 0; i < rank; i++) {
    o->shape[i] = shape[i];
    count = shape[i] && count > SIZE_MAX / shape[i] ? SIZE_MAX : count * shape[i];
  }
  o->data = count <= SIZE_MAX / size ? alloc_big(count * size, 1) : NULL;
  if (!o->data) {
    loss__fail(out, LOSS_ENOMEM, NULL, "out of memory");
    return NULL;
  }
  (*n)++;
  return o;
}

double *loss__grad(loss_result_t *out, const char *name, const loss_tensor_t *like)
{
  loss_output_t *o =
      new_output(out, out->grads, &out->n_grads, name, LOSS_FLOAT64, like->rank, like->shape);
  if (!o) return NULL;
  out->narrow_[out->n_grads - 1] = like->dtype == LOSS_FLOAT32;
  return o->data;
}

void *loss__grad_native(loss_result_t *out, const char *name, const loss_tensor_t *like)
{
  /* The kernel writes every element, so the buffer need not be zeroed. */
  if (out->n_grads >= LOSS_MAX_OUTPUTS) return NULL;
  size_t n = loss_tensor_numel(like), bytes = n * loss_dtype_size(like->dtype);
  void *p = alloc_big(bytes, 0);
  if (!p) {
    loss__fail(out, LOSS_ENOMEM, NULL, "out of memory");
    return NULL;
  }
  loss_output_t *o = &out->grads[out->n_grads++];
  memset(o, 0, sizeof *o);
  o->name = name;
  o->kind = LOSS_OUT_TENSOR;
  o->dtype = like->dtype;
  o->rank = like->rank;
  memcpy(o->shape, like->shape, sizeof o->shape);
  o->data = p;
  return p;
}

double *loss__extra(loss_result_t *out, const char *name, int rank, const size_t *shape)
{
  loss_output_t *o = new_output(out, out->extras, &out->n_extras, name, LOSS_FLOAT64, rank, shape);
  return o ? o->data : NULL;
}

int loss__extra_scalar(loss_result_t *out, const char *name, double v)
{
  double *p = loss__extra(out, name, 0, NULL);
  if (!p) return LOSS_ENOMEM;
  *p = v;
  return LOSS_OK;
}

int loss__extra_int(loss_result_t *out, const char *name, loss_out_kind_t kind, int64_t v)
{
  loss_output_t *o = new_output(out, out->extras, &out->n_extras, name, LOSS_INT64, 0, NULL);
  if (!o) return LOSS_ENOMEM;
  o->kind = kind;
  *(int64_t *)o->data = v;
  return LOSS_OK;
}

double *loss__losses(loss_result_t *out, int rank, const size_t *shape)
{
  int n = 0;
  loss_output_t *o = new_output(out, &out->losses, &n, "loss", LOSS_FLOAT64, rank, shape);
  if (!o) return NULL;
  out->has_losses = 1;
  return o->data;
}

void *loss__scratch(loss_result_t *out, size_t count, size_t size)
{
  if (size && count > SIZE_MAX / size) {
    loss__fail(out, LOSS_ETOOBIG, NULL, "scratch size overflows");
    return NULL;
  }
  void *p = alloc_big(count * size, 1);
  if (!p) loss__fail(out, LOSS_ENOMEM, NULL, "out of memory");
  return p;
}

int loss__finish(loss_result_t *out, int rc)
{
  if (rc != LOSS_OK) {
    const char *field = out->err_field;
    char msg[sizeof out->err_msg];
    memcpy(msg, out->err_msg, sizeof msg);
    loss_result_free(out);
    out->err_field = field;
    memcpy(out->err_msg, msg, sizeof msg);
    if (!out->err_msg[0]) snprintf(out->err_msg, sizeof out->err_msg, "%s", loss_strerror(rc));
    return rc;
  }
  /* Gradients of float32 inputs were computed in double: narrow them in place. */
  for (int g = 0; g < out->n_grads; g++) {
    loss_output_t *o = &out->grads[g];
    if (!out->narrow_[g]) continue;
    out->narrow_[g] = 0;
    size_t n = 1;
    for (int d = 0; d < o->rank; d++) n *= o->shape[d];
    float *dst = malloc(n * sizeof *dst);
    if (!dst) return loss__finish(out, loss__fail(out, LOSS_ENOMEM, NULL, "out of memory"));
    const double *src = o->data;
    for (size_t j = 0; j < n; j++) dst[j] = (float)src[j];
    free(o->data);
    o->data = dst;
    o->dtype = LOSS_FLOAT32;
  }
  return LOSS_OK;
}

double loss__lse(const double *x, size_t n)
{
  double m = -INFINITY;
  for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  if (m == -INFINITY) return -INFINITY;
  double s = 0;
  for (size_t i = 0; i < n; i++) s += exp(x[i] - m);
  return m + log(s);
}

double loss__reduce(const double *l, size_t n, loss_reduction_t r, double denom)
{
  double s = 0;
  for (size_t i = 0; i < n; i++) s += l[i];
  if (r == LOSS_REDUCTION_MEAN || r == LOSS_REDUCTION_BATCHMEAN) return s / denom;
  return s;
}
