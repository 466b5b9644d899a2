/* ce.c - softmax cross-entropy (index and probability targets, weights, ignore_index, label
 * smoothing, K-dim), with PyTorch's reductions and its gradient (LOSSES.md §1.1).
 *
 *   index:  l_i = (1-e) w_y (lse - z_y) + (e/C) sum_c w_c (lse - z_c)
 *   probs:  l_i = sum_c w_c t'_c (lse - z_c),  t' = (1-e) t + e/C
 *   dl/dz_k = p_k [(1-e) w_y + e W/C] - (1-e) w_y d_ky - e w_k/C     (index)
 *           = p_k sum_c w_c t'_c - w_k t'_k                          (probs) */
#include "internal.h"
#include "vecmath.h"

#include <stdlib.h>
#include <string.h>

loss_ce_params_t loss_ce_params_default(void)
{
  loss_ce_params_t p = {NULL, -100, 0.0};
  return p;
}

typedef struct {
  size_t n, c, s;  /* samples, classes, positions per sample (class stride) */
  int probs;       /* probability targets */
  const double *w; /* class weights or NULL */
  double wsum;     /* sum of weights (C without weights) */
  double eps;      /* label smoothing */
  int64_t ignore;
  const loss_tensor_t *z, *t;
} ce_t;

static double wt(const ce_t *ce, size_t c)
{
  return ce->w ? ce->w[c] : 1.0;
}

/* An index-target sample's loss from its lse: (1-e) w_y (lse - z_y) + (e/C)(W lse - sz), with
 * sz = sum_c w_c z_c (read only when e > 0). */
static double index_loss(const ce_t *ce, double lse, double zy, int64_t y, double sz)
{
  double eps = ce->eps, l = (1 - eps) * wt(ce, (size_t)y) * (lse - zy);
  return eps > 0 ? l + eps / (double)ce->c * (ce->wsum * lse - sz) : l;
}

/* The factor of p_k in an index-target sample's gradient, times sc: (1-e) w_y + e W/C. */
static double index_pscale(const ce_t *ce, int64_t y, double sc)
{
  double eps = ce->eps;
  return sc * ((1 - eps) * wt(ce, (size_t)y) + eps * ce->wsum / (double)ce->c);
}

/* The float32 [N, C] index-target kernel: three passes over a row that stays in L2 (max, exp
 * stored into the gradient, scale), so DRAM sees one read of z and one write of the gradient.
 * Four independent vectors per step keep the out-of-order core fed (exp is a long dependency
 * chain); sums run in float within 128-element blocks and in double across blocks.
 * Returns 0, or -1 when the row holds a non-finite logit. */
LOSS__HOT static int ce_row_f32(const ce_t *ce, const float *z, int64_t y, double sc, float *g,
                                double *loss)
{
  size_t C = ce->c, k = 0, C32 = C & ~(size_t)31, C8 = C & ~(size_t)7;
  loss__v8f m0 = loss__v8f_splat(-__builtin_inff()), m1 = m0, m2 = m0, m3 = m0;
  loss__v8f b0 = loss__v8f_splat(0.0f), b1 = b0;
  for (; k < C32; k += 32) {
    loss__v8f x0 = loss__v8f_load(z + k), x1 = loss__v8f_load(z + k + 8);
    loss__v8f x2 = loss__v8f_load(z + k + 16), x3 = loss__v8f_load(z + k + 24);
    m0 = loss__vselect(x0 > m0, x0, m0), m1 = loss__vselect(x1 > m1, x1, m1);
    m2 = loss__vselect(x2 > m2, x2, m2), m3 = loss__vselect(x3 > m3, x3, m3);
    b0 += (x0 + x1) * 0.0f; /* NaN iff some x is NaN or infinite */
    b1 += (x2 + x3) * 0.0f;
  }
  for (; k < C8; k += 8) {
    loss__v8f x0 = loss__v8f_load(z + k);
    m0 = loss__vselect(x0 > m0, x0, m0);
    b0 += x0 * 0.0f;
  }
  m0 = loss__vselect(m1 > m0, m1, m0), m2 = loss__vselect(m3 > m2, m3, m2);
  m0 = loss__vselect(m2 > m0, m2, m0), b0 += b1;
  float m = -__builtin_inff(), bad = 0.0f;
  for (int j = 0; j < 8; j++) {
    m = m0[j] > m ? m0[j] : m;
    bad += b0[j];
  }
  for (; k < C; k++) {
    m = z[k] > m ? z[k] : m;
    bad += z[k] * 0.0f;
  }
  if (bad != 0.0f || !isfinite(m)) return -1;

  double sum = 0;
  loss__v8f vm = loss__v8f_splat(m);
  loss__v4d acc = {0, 0, 0, 0}; /* the blocks' float sums, widened lane-wise */
  for (k = 0; k < C32;) {
    loss__v8f s0 = loss__v8f_splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
    size_t end = k + 128 < C32 ? k + 128 : C32;
    for (; k < end; k += 32) {
      /* the next row, while this one computes: its max pass then reads from cache */
      __builtin_prefetch(z + C + k), __builtin_prefetch(z + C + k + 16);
      loss__v8f e0 = loss__vexp_neg(loss__v8f_load(z + k) - vm);
      loss__v8f e1 = loss__vexp_neg(loss__v8f_load(z + k + 8) - vm);
      loss__v8f e2 = loss__vexp_neg(loss__v8f_load(z + k + 16) - vm);
      loss__v8f e3 = loss__vexp_neg(loss__v8f_load(z + k + 24) - vm);
      if (g) {
        loss__v8f_store(g + k, e0), loss__v8f_store(g + k + 8, e1);
        loss__v8f_store(g + k + 16, e2), loss__v8f_store(g + k + 24, e3);
      }
      s0 += e0, s1 += e1, s2 += e2, s3 += e3;
    }
    acc += loss__v8f_widen_add((s0 + s1) + (s2 + s3));
  }
  sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  for (; k < C8; k += 8) {
    __builtin_prefetch(z + C + k);
    loss__v8f e0 = loss__vexp_neg(loss__v8f_load(z + k) - vm);
    if (g) loss__v8f_store(g + k, e0);
    sum += loss__vsum_d(e0);
  }
  for (; k < C; k++) {
    float e = loss__vexp_neg(loss__v8f_splat(z[k] - m))[0];
    if (g) g[k] = e;
    sum += e;
  }
  double lse = m + log(sum), wy = wt(ce, (size_t)y), eps = ce->eps, sz = 0;
  if (eps > 0) {
    if (!ce->w) {
      loss__v8f a0 = loss__v8f_splat(0.0f), a1 = a0;
      for (k = 0; k + 16 <= C;) {
        size_t end = k + 256 < C ? k + 256 : (C & ~(size_t)15);
        for (; k < end; k += 16) a0 += loss__v8f_load(z + k), a1 += loss__v8f_load(z + k + 8);
        sz += loss__vsum_d(a0 + a1);
        a0 = a1 = loss__v8f_splat(0.0f);
      }
      for (; k < C; k++) sz += z[k];
    } else {
      for (k = 0; k < C; k++) sz += ce->w[k] * z[k];
    }
  }
  *loss = index_loss(ce, lse, z[y], y, sz);
  if (!g) return 0;
  float a = (float)(index_pscale(ce, y, sc) / sum);
  float b = (float)(sc * eps / (double)C);
  if (!ce->w) {
    loss__v8f va = loss__v8f_splat(a), vb = loss__v8f_splat(b);
    for (k = 0; k + 8 <= C; k += 8) loss__v8f_store(g + k, loss__v8f_load(g + k) * va - vb);
    for (; k < C; k++) g[k] = g[k] * a - b;
  } else {
    for (k = 0; k < C; k++) g[k] = g[k] * a - b * (float)ce->w[k];
  }
  g[y] -= (float)(sc * (1 - eps) * wy);
  return 0;
}

/* The float64 [N, C] index-target kernel (every JSON request's dtype): a max pass, then e^(z-m)
 * once per element, four lanes of loss__vexp_d_all (within 1 ulp of libm), stored into the
 * gradient and scaled by a / sum, where the general path below takes exp twice per element.
 * Returns 0, or -1 when the row holds a non-finite logit. */
LOSS__HOT static int ce_row_f64(const ce_t *ce, const double *z, int64_t y, double sc, double *g,
                                double *loss)
{
  size_t C = ce->c, k = 0;
  const loss__v4d zero = {0, 0, 0, 0};
  loss__v4d m0 = zero - INFINITY, m1 = m0, b0 = zero, b1 = zero;
  for (; k + 8 <= C; k += 8) {
    loss__v4d x0, x1;
    memcpy(&x0, z + k, sizeof x0), memcpy(&x1, z + k + 4, sizeof x1);
    m0 = (loss__v4d)(((loss__v4l)x0 & (x0 > m0)) | ((loss__v4l)m0 & ~(x0 > m0)));
    m1 = (loss__v4d)(((loss__v4l)x1 & (x1 > m1)) | ((loss__v4l)m1 & ~(x1 > m1)));
    b0 += x0 * 0.0, b1 += x1 * 0.0; /* NaN iff some x is NaN or infinite */
  }
  double m = -INFINITY, bad = 0;
  for (int j = 0; j < 4; j++) {
    m = m0[j] > m ? m0[j] : m, m = m1[j] > m ? m1[j] : m;
    bad += b0[j] + b1[j];
  }
  for (; k < C; k++) {
    m = z[k] > m ? z[k] : m;
    bad += z[k] * 0.0;
  }
  if (bad != 0 || !isfinite(m)) return -1;

  loss__v4d s0 = zero, s1 = zero, vm = zero + m;
  for (k = 0; k + 8 <= C; k += 8) {
    loss__v4d x0, x1;
    memcpy(&x0, z + k, sizeof x0), memcpy(&x1, z + k + 4, sizeof x1);
    loss__v4d e0 = loss__vexp_d_all(x0 - vm), e1 = loss__vexp_d_all(x1 - vm);
    if (g) memcpy(g + k, &e0, sizeof e0), memcpy(g + k + 4, &e1, sizeof e1);
    s0 += e0, s1 += e1;
  }
  s0 += s1;
  double sum = (s0[0] + s0[1]) + (s0[2] + s0[3]);
  for (; k < C; k++) {
    double e = exp(z[k] - m);
    if (g) g[k] = e;
    sum += e;
  }
  double lse = m + log(sum), wy = wt(ce, (size_t)y), eps = ce->eps, sz = 0;
  if (eps > 0)
    for (k = 0; k < C; k++) sz += wt(ce, k) * z[k];
  *loss = index_loss(ce, lse, z[y], y, sz);
  if (!g) return 0;
  double a = index_pscale(ce, y, sc) / sum, b = sc * eps / (double)C;
  if (!ce->w) {
    loss__v4d va = zero + a, vb = zero + b;
    for (k = 0; k + 4 <= C; k += 4) {
      loss__v4d e;
      memcpy(&e, g + k, sizeof e);
      e = e * va - vb;
      memcpy(g + k, &e, sizeof e);
    }
    for (; k < C; k++) g[k] = g[k] * a - b;
  } else {
    for (k = 0; k < C; k++) g[k] = g[k] * a - b * ce->w[k];
  }
  g[y] -= sc * (1 - eps) * wy;
  return 0;
}

/* The general sample: z and t gathered into double rows (t only for probability targets).
 * Writes the loss, the extras' entropy and kl (probability targets), and the gradient. */
static void ce_sample(const ce_t *ce, const double *z, const double *t, int64_t y, double sc,
                      double *g, double *loss, double *ent, double *kl)
{
  size_t C = ce->c;
  double lse = loss__lse(z, C), eps = ce->eps;
  if (!ce->probs) {
    double wy = wt(ce, (size_t)y), sz = 0;
    if (eps > 0)
      for (size_t k = 0; k < C; k++) sz += wt(ce, k) * z[k];
    *loss = index_loss(ce, lse, z[y], y, sz);
    if (!g) return;
    double a = index_pscale(ce, y, sc);
    for (size_t k = 0; k < C; k++) g[k] = a * exp(z[k] - lse) - sc * eps / (double)C * wt(ce, k);
    g[y] -= sc * (1 - eps) * wy;
    return;
  }
  double l = 0, lu = 0, h = 0, wtsum = 0;
  for (size_t k = 0; k < C; k++) {
    double tk = (1 - eps) * t[k] + eps / (double)C;
    l += wt(ce, k) * tk * (lse - z[k]);
    lu += tk * (lse - z[k]);
    h -= tk == 0 ? 0 : tk * log(tk);
    wtsum += wt(ce, k) * tk;
  }
  *loss = l;
  *ent = h;
  *kl = lu - h;
  if (!g) return;
  for (size_t k = 0; k < C; k++) {
    double tk = (1 - eps) * t[k] + eps / (double)C;
    g[k] = sc * (exp(z[k] - lse) * wtsum - wt(ce, k) * tk);
  }
}

static int ce_check(const loss_tensor_t *z, const loss_tensor_t *t, const loss_ce_params_t *p,
                    ce_t *ce, loss_result_t *out)
{
  size_t nz, nt;
  int rc = loss__check_float(z, "inputs.logits", out);
  if (!rc) rc = loss__numel(z, "inputs.logits", out, &nz);
  if (!rc) rc = loss__numel(t, "inputs.target", out, &nt);
  if (rc) return rc;
  if (z->rank < 1)
    return loss__fail(out, LOSS_ESHAPE, "inputs.logits", "logits must be [N, C] or [N, C, d...]");
  memset(ce, 0, sizeof *ce);
  ce->z = z;
  ce->t = t;
  ce->n = z->rank == 1 ? 1 : z->shape[0];
  ce->c = z->rank == 1 ? z->shape[0] : z->shape[1];
  ce->s = nz / ce->n / ce->c;
  ce->eps = p->label_smoothing;
  ce->ignore = p->ignore_index;
  if (!(ce->eps >= 0 && ce->eps <= 1))
    return loss__fail(out, LOSS_EPARAM, "params.label_smoothing",
                      "label_smoothing must be in [0, 1]");
  if (t->dtype == LOSS_FLOAT32 || t->dtype == LOSS_FLOAT64) {
    ce->probs = 1;
    if ((rc = loss__check_same_shape(z, t, "inputs.target", out))) return rc;
    if ((rc = loss__check_finite(t, 0, "inputs.target", out))) return rc;
    if (p->ignore_index >= 0)
      return loss__fail(out, LOSS_EPARAM, "params.ignore_index",
                        "ignore_index is not supported with probability targets");
  } else {
    int ok = t->rank == z->rank - 1 || (z->rank == 1 && t->rank == 0);
    for (int i = 0; ok && i < t->rank; i++) ok = t->shape[i] == z->shape[i ? i + 1 : 0];
    if (!ok)
      return loss__fail(out, LOSS_ESHAPE, "inputs.target",
                        "target must be class indices [N, d...] or probabilities shaped like "
                        "logits");
    for (size_t i = 0; i < nt; i++) {
      int64_t y = loss__geti(t, i);
      if (y != ce->ignore && (y < 0 || (uint64_t)y >= ce->c))
        return loss__fail(out, LOSS_ERANGE, "inputs.target",
                          "target %lld is out of bounds for %zu classes", (long long)y, ce->c);
    }
  }
  return LOSS_OK;
}

int loss_cross_entropy(const loss_tensor_t *logits, const loss_tensor_t *target,
                       const loss_ce_params_t *p, const loss_opts_t *o, loss_result_t *out)
{
  ce_t ce;
  loss_reduction_t red;
  double *w = NULL, *zr = NULL, *gr = NULL, *ls = NULL, *ents = NULL, *kls = NULL, *go = NULL;
  void *grad = NULL;
  int rc = loss__require(logits, "inputs.logits", out);
  if (!rc) rc = loss__require(target, "inputs.target", out);
  if (!rc) rc = ce_check(logits, target, p, &ce, out);
  if (!rc) rc = loss__reduction(o, 7, LOSS_REDUCTION_MEAN, &red, out);
  if (rc) return loss__finish(out, rc);

  size_t N = ce.n, C = ce.c, S = ce.s, M = N * S; /* M samples */
  size_t sshape[LOSS_MAX_RANK] = {0};
  int srank = logits->rank == 1 ? 0 : logits->rank - 1;
  for (int i = 0; i < srank; i++) sshape[i] = logits->shape[i ? i + 1 : 0];
  if ((rc = loss__check_grad_output(o, srank, sshape, out))) goto cleanup;

  ce.wsum = (double)C;
  if (p->weight) {
    const loss_tensor_t *wt_ = p->weight;
    if ((rc = loss__check_float(wt_, "params.weight", out))) goto cleanup;
    if (wt_->rank != 1 || wt_->shape[0] != C) {
      rc = loss__fail(out, LOSS_ESHAPE, "params.weight", "weight must be [C] = [%zu]", C);
      goto cleanup;
    }
    if ((rc = loss__check_finite(wt_, 0, "params.weight", out))) goto cleanup;
    if (!(w = loss__scratch(out, C, sizeof *w))) goto nomem;
    loss__to_f64(wt_, w, C);
    ce.w = w;
    ce.wsum = 0;
    for (size_t k = 0; k < C; k++) ce.wsum += w[k];
  }

  /* Denominator of the mean: weighted count of kept samples (index), or M (probabilities). */
  double denom = (double)M;
  if (!ce.probs) {
    denom = 0;
    for (size_t i = 0; i < M; i++) {
      int64_t y = loss__geti(target, i);
      if (y != ce.ignore) denom += wt(&ce, (size_t)y);
    }
  }
  if (o->grad_output) {
    if (!(go = loss__scratch(out, M, sizeof *go))) goto nomem;
    loss__to_f64(o->grad_output, go, M);
  }
  int want_grad = (o->grad_mask & 1) != 0;
  int fast = S == 1 && !ce.probs; /* the row kernels, in the logits' dtype */
  if (want_grad) {
    grad = fast ? loss__grad_native(out, "logits", logits) : loss__grad(out, "logits", logits);
    if (!grad) goto nomem;
  }
  if (!(ls = red == LOSS_REDUCTION_NONE ? loss__losses(out, srank, sshape)
                                        : loss__scratch(out, M, sizeof *ls)))
    goto nomem;
  if (ce.probs) {
    ents = red == LOSS_REDUCTION_NONE ? loss__extra(out, "entropy", srank, sshape)
                                      : loss__scratch(out, M, sizeof *ents);
    kls = red == LOSS_REDUCTION_NONE ? loss__extra(out, "kl", srank, sshape)
                                     : loss__scratch(out, M, sizeof *kls);
    if (!ents || !kls) goto nomem;
  }
  if (!fast &&
      (!(zr = loss__scratch(out, 2 * C, sizeof *zr)) || !(gr = loss__scratch(out, C, sizeof *gr))))
    goto nomem;

  double base = red == LOSS_REDUCTION_MEAN ? 1.0 / denom : 1.0;
  for (size_t i = 0; i < M; i++) {
    size_t n = i / S, d = i % S, row = n * C * S + d; /* first element of sample i */
    int64_t y = ce.probs ? 0 : loss__geti(target, i);
    double sc = go ? go[i] : base;
    if (!ce.probs && y == ce.ignore) {
      ls[i] = 0;
      if (fast && grad) /* the row kernels' gradient is not zeroed; the general path's is */
        memset((char *)grad + row * loss_dtype_size(logits->dtype), 0,
               C * loss_dtype_size(logits->dtype));
      continue;
    }
    if (fast && logits->dtype == LOSS_FLOAT32) {
      float *g = grad ? (float *)grad + row : NULL;
      if (ce_row_f32(&ce, (const float *)logits->data + row, y, sc, g, &ls[i])) goto nonfinite;
      continue;
    }
    if (fast) {
      double *g = grad ? (double *)grad + row : NULL;
      if (ce_row_f64(&ce, (const double *)logits->data + row, y, sc, g, &ls[i])) goto nonfinite;
      continue;
    }
    for (size_t k = 0; k < C; k++) {
      zr[k] = loss__get(logits, row + k * S);
      if (!isfinite(zr[k])) goto nonfinite;
      if (ce.probs) zr[C + k] = loss__get(target, row + k * S);
    }
    ce_sample(&ce, zr, zr + C, y, sc, grad ? gr : NULL, &ls[i], ents ? &ents[i] : NULL,
              kls ? &kls[i] : NULL);
    if (grad)
      for (size_t k = 0; k < C; k++) ((double *)grad)[row + k * S] = gr[k];
  }
  if (red == LOSS_REDUCTION_NONE) {
    out->loss = NAN;
  } else {
    out->loss = loss__reduce(ls, M, red, denom);
    if (ce.probs && ((rc = loss__extra_scalar(out, "entropy", loss__reduce(ents, M, red, denom))) ||
                     (rc = loss__extra_scalar(out, "kl", loss__reduce(kls, M, red, denom)))))
      goto cleanup;
  }
  rc = LOSS_OK;
  goto cleanup;
nonfinite:
  rc = loss__fail(out, LOSS_ENONFINITE, "inputs.logits", "logits holds a non-finite value");
  goto cleanup;
nomem:
  rc = out->err_msg[0] ? LOSS_ENOMEM : loss__fail(out, LOSS_ENOMEM, NULL, "out of memory");
cleanup:
  if (red != LOSS_REDUCTION_NONE) {
    free(ls);
    free(ents);
    free(kls);
  }
  free(w);
  free(zr);
  free(gr);
  free(go);
  return loss__finish(out, rc);
}
