/* sinkhorn.c - entropic optimal transport by log-domain Sinkhorn, with envelope gradients.
 *
 * As POT's sinkhorn_log (LOSSES.md §5.2): v = log b - lse_i(-C/reg + u), u = log a -
 * lse_j(-C/reg + v); every 10 iterations the L2 norm of the column-marginal error is compared
 * with tol. T = exp(-C/reg + u_i + v_j). The objective is stated, not implied:
 *   kl:      <T,C> + reg sum T log(T / (a b^T)),  f = reg (u - log a), g = reg (v - log b)
 *   entropy: <T,C> + reg sum T log T,             f = reg u,           g = reg v
 * d/dC = T, d/da = f - mean f, d/db = g - mean g (the KL form corrects POT's envelope, which
 * returns the entropy-objective potentials for both, LOSSES.md §5.3). */
#include "internal.h"
#include "vecmath.h"

#include <stdlib.h>
#include <string.h>

loss_sinkhorn_params_t loss_sinkhorn_params_default(void)
{
  loss_sinkhorn_params_t p = {NAN, LOSS_METRIC_SQEUCLIDEAN, LOSS_REG_KL, 1000, 1e-9, 0};
  return p;
}

/* Cost between rows x_i and y_j, and its gradient w.r.t. x_i scaled by w added into gx (and
 * w.r.t. y_j into gy) when they are not NULL. */
static double metric_cost(loss_metric_t mt, const double *x, const double *y, size_t d, double w,
                          double *gx, double *gy)
{
  double s = 0, nx = 0, ny = 0, dot = 0;
  switch (mt) {
  case LOSS_METRIC_SQEUCLIDEAN:
    for (size_t k = 0; k < d; k++) s += (x[k] - y[k]) * (x[k] - y[k]);
    if (gx || gy)
      for (size_t k = 0; k < d; k++) {
        if (gx) gx[k] += w * 2 * (x[k] - y[k]);
        if (gy) gy[k] -= w * 2 * (x[k] - y[k]);
      }
    return s;
  case LOSS_METRIC_EUCLIDEAN:
    for (size_t k = 0; k < d; k++) s += (x[k] - y[k]) * (x[k] - y[k]);
    s = sqrt(s);
    if ((gx || gy) && s > 0)
      for (size_t k = 0; k < d; k++) {
        if (gx) gx[k] += w * (x[k] - y[k]) / s;
        if (gy) gy[k] -= w * (x[k] - y[k]) / s;
      }
    return s;
  case LOSS_METRIC_COSINE:
    for (size_t k = 0; k < d; k++) {
      nx += x[k] * x[k];
      ny += y[k] * y[k];
      dot += x[k] * y[k];
    }
    nx = sqrt(nx), ny = sqrt(ny);
    {
      double c = dot / (nx * ny);
      if (gx || gy)
        for (size_t k = 0; k < d; k++) {
          if (gx) gx[k] -= w * (y[k] / ny - c * x[k] / nx) / nx;
          if (gy) gy[k] -= w * (x[k] / nx - c * y[k] / ny) / ny;
        }
      return 1 - c;
    }
  }
  return NAN;
}

static int check_inputs(const loss_tensor_t *a, const loss_tensor_t *b, const loss_tensor_t *C,
                        const loss_tensor_t *x, const loss_tensor_t *y,
                        const loss_sinkhorn_params_t *p, loss_result_t *out)
{
  size_t n;
  int rc;
  if (!a || !b)
    return loss__fail(out, LOSS_EMISSING, a ? "inputs.b" : "inputs.a", "sinkhorn needs a and b");
  if (C && (x || y))
    return loss__fail(out, LOSS_ECONFLICT, "inputs.cost", "give cost or x and y, not both");
  if (!C && (!x || !y))
    return loss__fail(out, LOSS_EMISSING, x ? "inputs.y" : "inputs.cost",
                      "give cost [n, m], or x [n, d] and y [m, d]");
  const loss_tensor_t *v[2] = {a, b};
  const char *f[2] = {"inputs.a", "inputs.b"};
  for (int i = 0; i < 2; i++) {
    if ((rc = loss__check_float(v[i], f[i], out)) || (rc = loss__numel(v[i], f[i], out, &n)) ||
        (rc = loss__check_rank(v[i], 1, f[i], out)) ||
        (rc = loss__check_finite(v[i], 0, f[i], out)))
      return rc;
    for (size_t j = 0; j < n; j++)
      if (!(loss__get(v[i], j) > 0))
        return loss__fail(out, LOSS_EPARAM, f[i], "%s must be strictly positive", f[i] + 7);
  }
  double sa = 0, sb = 0;
  for (size_t j = 0; j < a->shape[0]; j++) sa += loss__get(a, j);
  for (size_t j = 0; j < b->shape[0]; j++) sb += loss__get(b, j);
  if (fabs(sa - sb) > 1e-6 * fmax(sa, sb))
    return loss__fail(out, LOSS_EPARAM, "inputs.b", "a and b must have equal sums (%.17g vs %.17g)",
                      sa, sb);
  if (C) {
    if ((rc = loss__check_float(C, "inputs.cost", out)) ||
        (rc = loss__check_rank(C, 2, "inputs.cost", out)) ||
        (rc = loss__check_finite(C, 0, "inputs.cost", out)))
      return rc;
    if (C->shape[0] != a->shape[0] || C->shape[1] != b->shape[0])
      return loss__fail(out, LOSS_ESHAPE, "inputs.cost", "cost must be [n, m] = [%zu, %zu]",
                        a->shape[0], b->shape[0]);
  } else {
    if ((rc = loss__check_float(x, "inputs.x", out)) ||
        (rc = loss__check_float(y, "inputs.y", out)) ||
        (rc = loss__check_rank(x, 2, "inputs.x", out)) ||
        (rc = loss__check_rank(y, 2, "inputs.y", out)) ||
        (rc = loss__numel(x, "inputs.x", out, &n)) || (rc = loss__numel(y, "inputs.y", out, &n)) ||
        (rc = loss__check_finite(x, 0, "inputs.x", out)) ||
        (rc = loss__check_finite(y, 0, "inputs.y", out)))
      return rc;
    if (x->shape[0] != a->shape[0] || y->shape[0] != b->shape[0] || x->shape[1] != y->shape[1])
      return loss__fail(out, LOSS_ESHAPE, "inputs.x",
                        "x must be [n, d] and y [m, d] with n = "
                        "len(a), m = len(b)");
  }
  if (!(p->reg > 0 && isfinite(p->reg)))
    return loss__fail(out, LOSS_EPARAM, "params.reg", "reg is required and must be > 0");
  if (p->max_iter < 1 || p->max_iter > 1000000)
    return loss__fail(out, LOSS_EPARAM, "params.max_iter", "max_iter must be in [1, 1000000]");
  if (!(p->tol >= 0 && isfinite(p->tol)))
    return loss__fail(out, LOSS_EPARAM, "params.tol", "tol must be >= 0");
  return LOSS_OK;
}

/* The log kernel K_ij = -C_ij / reg, as POT forms it; computed where it is read rather than
 * stored, which saves a pass over n m doubles and their memory. */
static inline double logk(const double *C, size_t ij, double reg)
{
  return -C[ij] / reg;
}

/* One half-iteration: out_i = logw_i - lse_j(K_ij + in_j) over rows (trans 0) or columns. */
static void half_step(const double *C, double reg, size_t n, size_t m, const double *in,
                      const double *logw, double *res, double *tmp, int trans)
{
  if (!trans) {
    for (size_t i = 0; i < n; i++) {
      double mx = -INFINITY;
      for (size_t j = 0; j < m; j++) mx = fmax(mx, logk(C, i * m + j, reg) + in[j]);
      double s = 0;
      for (size_t j = 0; j < m; j++) s += exp(logk(C, i * m + j, reg) + in[j] - mx);
      res[i] = logw[i] - (mx + log(s));
    }
    return;
  }
  /* Column pass, row-major friendly: running max then running sum per column. */
  for (size_t j = 0; j < m; j++) tmp[j] = -INFINITY;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < m; j++) tmp[j] = fmax(tmp[j], logk(C, i * m + j, reg) + in[i]);
  for (size_t j = 0; j < m; j++) res[j] = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < m; j++) res[j] += exp(logk(C, i * m + j, reg) + in[i] - tmp[j]);
  for (size_t j = 0; j < m; j++) res[j] = logw[j] - (tmp[j] + log(res[j]));
}

/* colsum += row * ai, four lanes at a time. */
static inline __attribute__((always_inline)) void axpy_row(const double *row, double ai, size_t m,
                                                           double *colsum)
{
  loss__v4d va = {ai, ai, ai, ai};
  size_t j = 0;
  for (; j + 4 <= m; j += 4) {
    loss__v4d k0, c0;
    memcpy(&k0, row + j, sizeof k0), memcpy(&c0, colsum + j, sizeof c0);
    c0 += k0 * va;
    memcpy(colsum + j, &c0, sizeof c0);
  }
  for (; j < m; j++) colsum[j] += row[j] * ai;
}

/* colsum += q0 * a0 + q1 * a1: the column update of a pair of rows. */
static inline __attribute__((always_inline)) void
axpy2_row(const double *q0, double a0, const double *q1, double a1, size_t m, double *colsum)
{
  loss__v4d va = {a0, a0, a0, a0}, vb = {a1, a1, a1, a1};
  size_t j = 0;
  for (; j + 4 <= m; j += 4) {
    loss__v4d p0, s0, c0;
    memcpy(&p0, q0 + j, sizeof p0), memcpy(&s0, q1 + j, sizeof s0);
    memcpy(&c0, colsum + j, sizeof c0);
    c0 += p0 * va + s0 * vb;
    memcpy(colsum + j, &c0, sizeof c0);
  }
  for (; j < m; j++) colsum[j] += q0[j] * a0 + q1[j] * a1;
}

static inline double hsum2(loss__v4d d0, loss__v4d d1)
{
  return (d0[0] + d0[1]) + (d0[2] + d0[3]) + (d1[0] + d1[1]) + (d1[2] + d1[3]);
}

/* One pass over the scaled kernel Kt [n, m]: as_i = aw_i / (Kt bs)_i, and the column sums of
 * Kt diag(as) for the next v-update accumulated on the way (one read of Kt per iteration).
 * The pass is bound by memory bandwidth, so the work around the stream is kept small: rows go
 * in pairs, the two dot products streamed together, and the column update of the previous pair
 * (in cache) rides along as one multiply-add pair per column, which halves the loads and
 * stores of colsum per row. The pass runs backward on odd iterations so that it starts on the
 * rows the last one left in cache. The sums are the same row by row, in either order, up to
 * the order of additions. Returns -1 when a row sum is 0 or not finite (the caller falls back
 * to the log domain). */
LOSS__HOT static int row_pass(const double *Kt, size_t n, size_t m, const double *bs,
                              const double *aw, double *as, double *colsum, int backward)
{
  for (size_t j = 0; j < m; j++) colsum[j] = 0;
  const double *q0 = NULL, *q1 = NULL;
  double a0 = 0, a1 = 0;
  size_t r = 0;
  for (; r + 2 <= n; r += 2) {
    size_t i0 = backward ? n - 1 - r : r, i1 = backward ? n - 2 - r : r + 1;
    const double *r0 = Kt + i0 * m, *r1 = Kt + i1 * m;
    loss__v4d d0 = {0, 0, 0, 0}, d1 = d0, e0 = d0, e1 = d0;
    loss__v4d va = {a0, a0, a0, a0}, vb = {a1, a1, a1, a1};
    size_t j = 0;
    if (q0) {
      for (; j + 8 <= m; j += 8) {
        loss__v4d k0, k1, l0, l1, b0, b1, p0, p1, s0, s1, c0, c1;
        memcpy(&k0, r0 + j, sizeof k0), memcpy(&k1, r0 + j + 4, sizeof k1);
        memcpy(&l0, r1 + j, sizeof l0), memcpy(&l1, r1 + j + 4, sizeof l1);
        memcpy(&b0, bs + j, sizeof b0), memcpy(&b1, bs + j + 4, sizeof b1);
        d0 += k0 * b0, d1 += k1 * b1, e0 += l0 * b0, e1 += l1 * b1;
        memcpy(&p0, q0 + j, sizeof p0), memcpy(&p1, q0 + j + 4, sizeof p1);
        memcpy(&s0, q1 + j, sizeof s0), memcpy(&s1, q1 + j + 4, sizeof s1);
        memcpy(&c0, colsum + j, sizeof c0), memcpy(&c1, colsum + j + 4, sizeof c1);
        c0 += p0 * va + s0 * vb, c1 += p1 * va + s1 * vb;
        memcpy(colsum + j, &c0, sizeof c0), memcpy(colsum + j + 4, &c1, sizeof c1);
      }
      for (size_t t = j; t < m; t++) colsum[t] += q0[t] * a0 + q1[t] * a1;
    } else {
      for (; j + 8 <= m; j += 8) {
        loss__v4d k0, k1, l0, l1, b0, b1;
        memcpy(&k0, r0 + j, sizeof k0), memcpy(&k1, r0 + j + 4, sizeof k1);
        memcpy(&l0, r1 + j, sizeof l0), memcpy(&l1, r1 + j + 4, sizeof l1);
        memcpy(&b0, bs + j, sizeof b0), memcpy(&b1, bs + j + 4, sizeof b1);
        d0 += k0 * b0, d1 += k1 * b1, e0 += l0 * b0, e1 += l1 * b1;
      }
    }
    double dot0 = hsum2(d0, d1), dot1 = hsum2(e0, e1);
    for (; j < m; j++) dot0 += r0[j] * bs[j], dot1 += r1[j] * bs[j];
    if (!(dot0 > 0) || !isfinite(dot0) || !(dot1 > 0) || !isfinite(dot1)) return -1;
    as[i0] = a0 = aw[i0] / dot0;
    as[i1] = a1 = aw[i1] / dot1;
    q0 = r0, q1 = r1;
  }
  if (q0) axpy2_row(q0, a0, q1, a1, m, colsum);
  if (r < n) { /* n odd: the last row alone (row 0 when backward) */
    size_t i = backward ? 0 : n - 1;
    const double *row = Kt + i * m;
    double dot = 0;
    for (size_t j = 0; j < m; j++) dot += row[j] * bs[j];
    if (!(dot > 0) || !isfinite(dot)) return -1;
    as[i] = aw[i] / dot;
    axpy_row(row, as[i], m, colsum);
  }
  return 0;
}

/* Kt = exp(K + al_i + be_j) and its column sums weighted by as: four lanes of loss__vexp_d
 * (within 1 ulp of libm), libm for lanes outside its range (underflow, overflow). */
LOSS__HOT static void rebuild(const double *C, double reg, size_t n, size_t m, const double *al,
                              const double *be, const double *as, double *Kt, double *colsum)
{
  for (size_t j = 0; j < m; j++) colsum[j] = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    const loss__v4d a = {as[i], as[i], as[i], as[i]};
    for (; j + 4 <= m; j += 4) {
      loss__v4d c, b, cs;
      memcpy(&c, C + i * m + j, sizeof c), memcpy(&b, be + j, sizeof b);
      loss__v4d k = loss__vexp_d_all(-c / reg + al[i] + b); /* logk + al_i + be_j, that order */
      memcpy(Kt + i * m + j, &k, sizeof k);
      memcpy(&cs, colsum + j, sizeof cs);
      cs += k * a;
      memcpy(colsum + j, &cs, sizeof cs);
    }
    for (; j < m; j++) {
      double k = exp(logk(C, i * m + j, reg) + al[i] + be[j]);
      Kt[i * m + j] = k;
      colsum[j] += k * as[i];
    }
  }
}

/* T = diag(as) Kt diag(bs) in place, <T, C> into *lin and sum T (log T - la_i - lb_j) (KL; la
 * NULL: sum T log T) into *ent, with log T = -C/reg + u_i + v_j and 0 log 0 = 0. Four lanes of
 * partial sums per row. */
LOSS__HOT static void plan_objective(const double *C, double reg, size_t n, size_t m,
                                     const double *as, const double *bs, const double *u,
                                     const double *v, const double *la, const double *lb, double *T,
                                     double *lin, double *ent)
{
  for (size_t i = 0; i < n; i++) {
    double li = 0, ei = 0, off = u[i] - (la ? la[i] : 0);
    loss__v4d l4 = {0, 0, 0, 0}, e4 = l4, z = l4;
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
      loss__v4d k, c, b, vv, lbj = z, t;
      memcpy(&k, T + i * m + j, sizeof k), memcpy(&c, C + i * m + j, sizeof c);
      memcpy(&b, bs + j, sizeof b), memcpy(&vv, v + j, sizeof vv);
      if (la) memcpy(&lbj, lb + j, sizeof lbj);
      t = k * as[i] * b;
      memcpy(T + i * m + j, &t, sizeof t);
      l4 += t * c;
      loss__v4d lt = -c / reg + off + vv - lbj;
      loss__v4l pos = t > z;
      e4 += (loss__v4d)(pos & (loss__v4l)(t * lt)); /* 0 log 0 = 0, even where lt is infinite */
    }
    for (; j < m; j++) {
      double t = T[i * m + j] * as[i] * bs[j], lt = logk(C, i * m + j, reg) + off + v[j];
      T[i * m + j] = t;
      li += t * C[i * m + j];
      if (t > 0) ei += t * (la ? lt - lb[j] : lt);
    }
    *lin += ((l4[0] + l4[1]) + (l4[2] + l4[3])) + li;
    *ent += ((e4[0] + e4[1]) + (e4[2] + e4[3])) + ei;
  }
}

/* The Sinkhorn iterates of POT's sinkhorn_log (u, v log-scalings from 0), computed in the
 * scaling domain: u = al + log as, v = be + log bs with Kt = exp(-C/reg + al_i + be_j), so an
 * iteration is one pass of multiply-adds over Kt instead of 2 n m exponentials. When scalings
 * drift past e^+-30 they are absorbed into (al, be) and Kt is rebuilt; a half-step whose sums
 * underflow (small reg, early iterations) is done exactly in the log domain and absorbed. The
 * iterates are the log domain's, up to rounding. Writes u, v; returns the iterations done. */
static int64_t iterate(const double *C, double reg, size_t n, size_t m, const double *la,
                       const double *lb, const loss_sinkhorn_params_t *p, double *Kt, double *w,
                       double *u, double *v, double *err, int *converged)
{
  double *al = w, *be = al + n, *as = be + m, *bs = as + n, *aw = bs + m, *bw = aw + n;
  double *colsum = bw + m, *tmp = colsum + m;
  for (size_t i = 0; i < n; i++) al[i] = 0, as[i] = 1, aw[i] = exp(la[i]);
  for (size_t j = 0; j < m; j++) be[j] = 0, bs[j] = 1, bw[j] = exp(lb[j]);
  rebuild(C, reg, n, m, al, be, as, Kt, colsum);
  int64_t it;
  *err = INFINITY;
  *converged = 0;
  for (it = 0; it < p->max_iter; it++) {
    int exact = 0;
    for (size_t j = 0; j < m && !exact; j++) exact = !(colsum[j] > 0) || !isfinite(colsum[j]);
    if (exact) { /* v exactly, absorbed */
      for (size_t i = 0; i < n; i++) u[i] = al[i] + log(as[i]);
      half_step(C, reg, n, m, u, lb, v, tmp, 1);
      for (size_t i = 0; i < n; i++) al[i] = u[i], as[i] = 1;
      for (size_t j = 0; j < m; j++) be[j] = v[j], bs[j] = 1;
      rebuild(C, reg, n, m, al, be, as, Kt, colsum);
    } else {
      for (size_t j = 0; j < m; j++) bs[j] = bw[j] / colsum[j];
    }
    if (row_pass(Kt, n, m, bs, aw, as, colsum, (int)(it & 1))) { /* u exactly, absorbed */
      for (size_t j = 0; j < m; j++) v[j] = be[j] + log(bs[j]);
      half_step(C, reg, n, m, v, la, u, tmp, 0);
      for (size_t i = 0; i < n; i++) al[i] = u[i], as[i] = 1;
      for (size_t j = 0; j < m; j++) be[j] = v[j], bs[j] = 1;
      rebuild(C, reg, n, m, al, be, as, Kt, colsum);
    }
    int drift = 0;
    for (size_t i = 0; i < n && !drift; i++) drift = !(as[i] < 1e13 && as[i] > 1e-13);
    for (size_t j = 0; j < m && !drift; j++) drift = !(bs[j] < 1e13 && bs[j] > 1e-13);
    if (it % 10 == 0) { /* the column marginal of T = diag(as) Kt diag(bs) */
      double e2 = 0;
      for (size_t j = 0; j < m; j++)
        e2 += (bs[j] * colsum[j] - bw[j]) * (bs[j] * colsum[j] - bw[j]);
      *err = sqrt(e2);
      if (*err < p->tol) {
        *converged = 1;
        it++;
        break;
      }
    }
    if (drift) {
      for (size_t i = 0; i < n; i++) al[i] += log(as[i]), as[i] = 1;
      for (size_t j = 0; j < m; j++) be[j] += log(bs[j]), bs[j] = 1;
      rebuild(C, reg, n, m, al, be, as, Kt, colsum);
    }
  }
  for (size_t i = 0; i < n; i++) u[i] = al[i] + log(as[i]);
  for (size_t j = 0; j < m; j++) v[j] = be[j] + log(bs[j]);
  return it;
}

int loss_sinkhorn(const loss_tensor_t *a, const loss_tensor_t *b, const loss_tensor_t *cost,
                  const loss_tensor_t *x, const loss_tensor_t *y, const loss_sinkhorn_params_t *p,
                  const loss_opts_t *o, loss_result_t *out)
{
  double *buf = NULL;
  int rc = LOSS_OK;
  if (o->reduction != LOSS_REDUCTION_DEFAULT)
    rc = loss__fail(out, LOSS_EREDUCTION, "reduction", "this loss is a scalar: no reduction");
  if (!rc) rc = check_inputs(a, b, cost, x, y, p, out);
  if (rc) return loss__finish(out, rc);
  size_t n = a->shape[0], m = b->shape[0], d = cost ? 0 : x->shape[1], nm = n * m;
  /* A float64 cost matrix is read in place; any other is converted or computed once. */
  int own_c = !cost || cost->dtype != LOSS_FLOAT64;
  size_t need = (own_c ? nm : 0) + 4 * (n + m) + (cost ? 0 : (n + m) * d);
  double *work = NULL, *Kt = NULL, *gc = NULL;
  if (!(buf = loss__scratch(out, need, sizeof *buf))) goto nomem;
  if (!(work = loss__scratch(out, 8 * (n + m) + (n > m ? n : m), sizeof *work))) goto nomem;
  double *la = buf, *lb = la + n, *u = lb + m, *v = u + n;
  double *tmp = v + m, *col = tmp + (n > m ? n : m), *ex = col + m, *ey = ex + n * d;
  double *own = ey + m * d;
  const double *C = own_c ? own : cost->data;
  double reg = p->reg;
  for (size_t i = 0; i < n; i++) la[i] = log(loss__get(a, i));
  for (size_t j = 0; j < m; j++) lb[j] = log(loss__get(b, j));
  if (cost) {
    if (own_c) loss__to_f64(cost, own, nm);
  } else {
    loss__to_f64(x, ex, n * d);
    loss__to_f64(y, ey, m * d);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < m; j++)
        own[i * m + j] = metric_cost(p->metric, ex + i * d, ey + j * d, d, 0, NULL, NULL);
    for (size_t i = 0; i < nm; i++)
      if (!isfinite(own[i])) {
        rc = loss__fail(out, LOSS_EPARAM, "inputs.x", "the cosine metric needs nonzero rows");
        goto cleanup;
      }
  }
  /* The scaled kernel lives where the plan is wanted: the cost gradient when asked for (the
   * plan is dL/dC), scratch otherwise. */
  if (cost && (o->grad_mask & 4)) {
    if (!(gc = loss__grad(out, "cost", cost))) goto nomem;
    Kt = gc;
  }
  if (!Kt && !(Kt = loss__scratch(out, nm, sizeof *Kt))) goto nomem;
  double err;
  int converged;
  int64_t it = iterate(C, reg, n, m, la, lb, p, Kt, work, u, v, &err, &converged);
  /* The plan T = diag(as) Kt diag(bs) = exp(-C/reg + u_i + v_j), formed in place in Kt without
   * exponentials; then the objective. */
  const double *as = work + n + m, *bs = as + n;
  double lin = 0, ent = 0;
  plan_objective(C, reg, n, m, as, bs, u, v, p->reg_type == LOSS_REG_KL ? la : NULL, lb, Kt, &lin,
                 &ent);
  double *T = Kt;
  out->loss = lin + reg * ent;
  double *f = loss__extra(out, "f", 1, &n), *g = loss__extra(out, "g", 1, &m);
  if (!f || !g) goto nomem;
  double mf = 0, mg = 0;
  for (size_t i = 0; i < n; i++)
    mf += (f[i] = reg * (u[i] - (p->reg_type == LOSS_REG_KL ? la[i] : 0)));
  for (size_t j = 0; j < m; j++)
    mg += (g[j] = reg * (v[j] - (p->reg_type == LOSS_REG_KL ? lb[j] : 0)));
  mf /= (double)n, mg /= (double)m;
  for (size_t i = 0; i < n; i++) f[i] -= mf;
  for (size_t j = 0; j < m; j++) g[j] -= mg;
  if ((rc = loss__extra_scalar(out, "value_linear", lin)) ||
      (rc = loss__extra_int(out, "iterations", LOSS_OUT_INT, it)) ||
      (rc = loss__extra_int(out, "converged", LOSS_OUT_BOOL, converged)) ||
      (rc = loss__extra_scalar(out, "marginal_error", err)))
    goto cleanup;
  if (p->return_plan) {
    size_t shp[2] = {n, m};
    double *P = loss__extra(out, "plan", 2, shp);
    if (!P) goto nomem;
    memcpy(P, T, nm * sizeof *P);
  }
  if (o->grad_mask & 1) {
    double *ga = loss__grad(out, "a", a);
    if (!ga) goto nomem;
    memcpy(ga, f, n * sizeof *ga);
  }
  if (o->grad_mask & 2) {
    double *gb = loss__grad(out, "b", b);
    if (!gb) goto nomem;
    memcpy(gb, g, m * sizeof *gb);
  }
  if (!cost && (o->grad_mask & 24)) {
    double *gx = (o->grad_mask & 8) ? loss__grad(out, "x", x) : NULL;
    double *gy = (o->grad_mask & 16) ? loss__grad(out, "y", y) : NULL;
    if (((o->grad_mask & 8) && !gx) || ((o->grad_mask & 16) && !gy)) goto nomem;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < m; j++)
        metric_cost(p->metric, ex + i * d, ey + j * d, d, T[i * m + j], gx ? gx + i * d : NULL,
                    gy ? gy + j * d : NULL);
  }
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  free(buf);
  free(work);
  if (Kt != gc) free(Kt);
  return loss__finish(out, rc);
}
