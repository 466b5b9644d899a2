/* cosent.c - CoSENT and AnglE ranking losses over pair similarities, and their gradients.
 *
 * L = log(1 + sum_{y_i < y_j} exp(scale (s_i - s_j)))   (LOSSES.md §2.1, §2.2)
 * Sorted by label, the pair sum factors as sum_i exp(scale s_i + A_i) with A_i the log-sum-exp
 * of -scale s_j over the strictly higher labels, so the loss and its gradient take
 * O(N log N) instead of the reference's N x N matrix:
 *   dL/ds_k = scale (exp(t_k - log Z) - exp(B_k - scale s_k - log Z)),  t_k = scale s_k + A_k,
 *   B_k = log-sum-exp of scale s_i over the strictly lower labels, Z = 1 + sum_i exp(t_i). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define NORM_EPS 1e-12 /* F.normalize */

typedef struct {
  double y;
  size_t i;
} by_label_t;

static int cmp_label(const void *a, const void *b)
{
  double x = ((const by_label_t *)a)->y, y = ((const by_label_t *)b)->y;
  return x < y ? -1 : x > y;
}

/* The CoSENT core on similarities s[n] and labels; ds (may be NULL) receives dL/ds. */
static int cosent_core(const double *s, const loss_tensor_t *labels, size_t n, double scale,
                       double *ds, double *loss, loss_result_t *out)
{
  by_label_t *ord = loss__scratch(out, n, sizeof *ord);
  double *acc = loss__scratch(out, 2 * n, sizeof *acc); /* A_i then B_i, by original index */
  if (!ord || !acc) {
    free(ord);
    free(acc);
    return LOSS_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) ord[i] = (by_label_t){loss__get(labels, i), i};
  qsort(ord, n, sizeof *ord, cmp_label);
  double *A = acc, *B = acc + n;
  loss__lse_t run;
  /* Suffix pass: A over strictly higher labels (a group sees the groups after it). */
  loss__lse_init(&run);
  for (size_t e = n; e > 0;) {
    size_t b = e;
    while (b > 0 && ord[b - 1].y == ord[e - 1].y) b--;
    double a = loss__lse_get(&run);
    for (size_t j = b; j < e; j++) A[ord[j].i] = a;
    for (size_t j = b; j < e; j++) loss__lse_add(&run, -scale * s[ord[j].i]);
    e = b;
  }
  /* Prefix pass: B over strictly lower labels. */
  loss__lse_init(&run);
  for (size_t b = 0; b < n;) {
    size_t e = b;
    while (e < n && ord[e].y == ord[b].y) e++;
    double v = loss__lse_get(&run);
    for (size_t j = b; j < e; j++) B[ord[j].i] = v;
    for (size_t j = b; j < e; j++) loss__lse_add(&run, scale * s[ord[j].i]);
    b = e;
  }
  loss__lse_t tot;
  loss__lse_init(&tot);
  for (size_t i = 0; i < n; i++) loss__lse_add(&tot, scale * s[i] + A[i]);
  double T = loss__lse_get(&tot);
  double logz = T == -INFINITY ? 0.0 : loss__softplus(T);
  *loss = logz;
  if (ds)
    for (size_t k = 0; k < n; k++)
      ds[k] = scale * (exp(scale * s[k] + A[k] - logz) - exp(B[k] - scale * s[k] - logz));
  free(ord);
  free(acc);
  return LOSS_OK;
}

/* Row norm of an [N, D] tensor in double. */
static double row_norm(const double *v, size_t d)
{
  double s = 0;
  for (size_t j = 0; j < d; j++) s += v[j] * v[j];
  return sqrt(s);
}

static int check_pairs(const loss_tensor_t *a, const loss_tensor_t *b, const loss_tensor_t *y,
                       size_t *n, loss_result_t *out)
{
  size_t na, ny;
  int rc = loss__check_float(a, "inputs.a", out);
  if (!rc) rc = loss__check_float(b, "inputs.b", out);
  if (!rc) rc = loss__numel(a, "inputs.a", out, &na);
  if (!rc) rc = loss__check_rank(a, 2, "inputs.a", out);
  if (!rc) rc = loss__check_same_shape(a, b, "inputs.b", out);
  if (!rc) rc = loss__check_finite(a, 0, "inputs.a", out);
  if (!rc) rc = loss__check_finite(b, 0, "inputs.b", out);
  if (!rc) rc = loss__numel(y, "inputs.labels", out, &ny);
  if (!rc && (y->rank != 1 || y->shape[0] != a->shape[0]))
    rc = loss__fail(out, LOSS_ESHAPE, "inputs.labels", "labels must be [N] with N = %zu",
                    a->shape[0]);
  if (!rc) rc = loss__check_finite(y, 0, "inputs.labels", out);
  *n = rc ? 0 : a->shape[0];
  return rc;
}

static int check_scale(double scale, const loss_opts_t *o, loss_result_t *out)
{
  if (o->reduction != LOSS_REDUCTION_DEFAULT)
    return loss__fail(out, LOSS_EREDUCTION, "reduction", "this loss is a scalar: no reduction");
  if (!isfinite(scale)) return loss__fail(out, LOSS_EPARAM, "params.scale", "scale must be finite");
  return LOSS_OK;
}

int loss_cosent(const loss_tensor_t *scores, const loss_tensor_t *a, const loss_tensor_t *b,
                const loss_tensor_t *labels, double scale, const loss_opts_t *o, loss_result_t *out)
{
  size_t n = 0, d = 0;
  double *s = NULL, *ds = NULL, *ea = NULL, *eb = NULL;
  int rc = check_scale(scale, o, out);
  if (rc) return loss__finish(out, rc);
  if (!labels)
    return loss__finish(out, loss__fail(out, LOSS_EMISSING, "inputs.labels", "labels is required"));
  if (scores && (a || b))
    return loss__finish(
        out, loss__fail(out, LOSS_ECONFLICT, "inputs.scores", "give scores or a and b, not both"));
  if (scores) {
    size_t ny;
    rc = loss__check_float(scores, "inputs.scores", out);
    if (!rc) rc = loss__numel(scores, "inputs.scores", out, &n);
    if (!rc) rc = loss__check_rank(scores, 1, "inputs.scores", out);
    if (!rc) rc = loss__check_finite(scores, 0, "inputs.scores", out);
    if (!rc) rc = loss__numel(labels, "inputs.labels", out, &ny);
    if (!rc && (labels->rank != 1 || ny != n))
      rc = loss__fail(out, LOSS_ESHAPE, "inputs.labels", "labels must be [N] with N = %zu", n);
    if (!rc) rc = loss__check_finite(labels, 0, "inputs.labels", out);
  } else if (a && b) {
    rc = check_pairs(a, b, labels, &n, out);
    d = rc ? 0 : a->shape[1];
  } else {
    rc = loss__fail(out, LOSS_EMISSING, a ? "inputs.b" : "inputs.a",
                    "give scores [N], or a and b [N, D]");
  }
  if (rc) return loss__finish(out, rc);
  if (!(s = loss__scratch(out, n, sizeof *s)) || !(ds = loss__scratch(out, n, sizeof *ds)))
    goto nomem;
  if (scores) {
    loss__to_f64(scores, s, n);
  } else {
    if (!(ea = loss__scratch(out, n * d, sizeof *ea)) ||
        !(eb = loss__scratch(out, n * d, sizeof *eb)))
      goto nomem;
    loss__to_f64(a, ea, n * d);
    loss__to_f64(b, eb, n * d);
    for (size_t i = 0; i < n; i++) {
      double na = fmax(row_norm(ea + i * d, d), NORM_EPS),
             nb = fmax(row_norm(eb + i * d, d), NORM_EPS);
      double dot = 0;
      for (size_t j = 0; j < d; j++) dot += ea[i * d + j] * eb[i * d + j];
      s[i] = dot / (na * nb);
    }
  }
  if ((rc = cosent_core(s, labels, n, scale, ds, &out->loss, out))) goto cleanup;
  if (scores) {
    double *g = (o->grad_mask & 1) ? loss__grad(out, "scores", scores) : NULL;
    if ((o->grad_mask & 1) && !g) goto nomem;
    if (g) memcpy(g, ds, n * sizeof *g);
    goto cleanup;
  }
  double *ga = (o->grad_mask & 2) ? loss__grad(out, "a", a) : NULL;
  double *gb = (o->grad_mask & 4) ? loss__grad(out, "b", b) : NULL;
  if (((o->grad_mask & 2) && !ga) || ((o->grad_mask & 4) && !gb)) goto nomem;
  for (size_t i = 0; i < n; i++) {
    const double *x = ea + i * d, *y = eb + i * d;
    double nx = row_norm(x, d), ny = row_norm(y, d);
    double cx = fmax(nx, NORM_EPS), cy = fmax(ny, NORM_EPS);
    /* c = xhat . yhat; dc/dx = (yhat - [nx >= eps] c' xhat)/cx with c' = xhat . yhat. */
    for (size_t j = 0; j < d; j++) {
      double xh = x[j] / cx, yh = y[j] / cy;
      if (ga) ga[i * d + j] = ds[i] * (yh - (nx >= NORM_EPS ? s[i] * xh : 0)) / cx;
      if (gb) gb[i * d + j] = ds[i] * (xh - (ny >= NORM_EPS ? s[i] * yh : 0)) / cy;
    }
  }
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  free(s);
  free(ds);
  free(ea);
  free(eb);
  return loss__finish(out, rc);
}

int loss_angle(const loss_tensor_t *a, const loss_tensor_t *b, const loss_tensor_t *labels,
               double scale, const loss_opts_t *o, loss_result_t *out)
{
  size_t n = 0, d = 0;
  double *s = NULL, *ds = NULL, *ea = NULL, *eb = NULL, *u = NULL;
  int rc = check_scale(scale, o, out);
  if (!rc && (!a || !b || !labels))
    rc = loss__fail(out, LOSS_EMISSING,
                    !a   ? "inputs.a"
                    : !b ? "inputs.b"
                         : "inputs.labels",
                    "angle needs a, b and labels");
  if (!rc) rc = check_pairs(a, b, labels, &n, out);
  if (!rc && a->shape[1] % 2)
    rc = loss__fail(out, LOSS_ESHAPE, "inputs.a", "the embedding dimension must be even");
  if (rc) return loss__finish(out, rc);
  d = a->shape[1];
  size_t h = d / 2;
  if (!(s = loss__scratch(out, 3 * n, sizeof *s)) ||
      !(ea = loss__scratch(out, n * d, sizeof *ea)) ||
      !(eb = loss__scratch(out, n * d, sizeof *eb)))
    goto nomem;
  ds = s + n;
  u = s + 2 * n;
  loss__to_f64(a, ea, n * d);
  loss__to_f64(b, eb, n * d);
  /* x = [p|q], y = [r|t]: u = x.y + q.r - p.t, angle_sim = |u| / (|x||y|). */
  for (size_t i = 0; i < n; i++) {
    const double *x = ea + i * d, *y = eb + i * d;
    double nx = row_norm(x, d), ny = row_norm(y, d), ui = 0;
    if (nx == 0 || ny == 0) {
      rc = loss__fail(out, LOSS_EPARAM, nx == 0 ? "inputs.a" : "inputs.b",
                      "row %zu is a zero vector: its angle is undefined", i);
      goto cleanup;
    }
    for (size_t j = 0; j < h; j++)
      ui += x[j] * y[j] + x[h + j] * y[h + j] + x[h + j] * y[j] - x[j] * y[h + j];
    u[i] = ui;
    s[i] = fabs(ui) / (nx * ny);
  }
  if ((rc = cosent_core(s, labels, n, scale, ds, &out->loss, out))) goto cleanup;
  double *ga = (o->grad_mask & 1) ? loss__grad(out, "a", a) : NULL;
  double *gb = (o->grad_mask & 2) ? loss__grad(out, "b", b) : NULL;
  if (((o->grad_mask & 1) && !ga) || ((o->grad_mask & 2) && !gb)) goto nomem;
  for (size_t i = 0; i < n; i++) {
    const double *x = ea + i * d, *y = eb + i * d;
    double nx = row_norm(x, d), ny = row_norm(y, d);
    double sg = (u[i] > 0) - (u[i] < 0), k = ds[i] * sg / (nx * ny);
    for (size_t j = 0; j < h; j++) {
      double p = x[j], q = x[h + j], r = y[j], t = y[h + j];
      if (ga) {
        ga[i * d + j] = k * (r - t) - ds[i] * s[i] * p / (nx * nx);
        ga[i * d + h + j] = k * (t + r) - ds[i] * s[i] * q / (nx * nx);
      }
      if (gb) {
        gb[i * d + j] = k * (p + q) - ds[i] * s[i] * r / (ny * ny);
        gb[i * d + h + j] = k * (q - p) - ds[i] * s[i] * t / (ny * ny);
      }
    }
  }
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  free(s);
  free(ea);
  free(eb);
  return loss__finish(out, rc);
}
