/* focal.c - sigmoid focal loss (torchvision) and softmax focal loss (LOSSES.md §6).
 *
 *   sigmoid: l = a_t (1 - p_t)^g ce,  ce = BCE-with-logits,  1 - p_t = y s(-x) + (1-y) s(x)
 *     dl/dx = a_t [(1-p_t)^g (p - y) + g (1-p_t)^(g-1) (1-2y) p(1-p) ce]
 *   softmax: l = -a_y (1 - p_y)^g log p_y
 *     dl/dz_k = a_y (d_ky - p_k) k,  k = g (1-p_y)^(g-1) p_y log p_y - (1-p_y)^g
 * Both evaluate (1-p)^(g-1) in the log domain so that g < 1 at saturated logits stays finite,
 * where torch autograd produces 0 * inf = NaN. */
#include "internal.h"
#include "vecmath.h"

#include <stdlib.h>

/* One sigmoid-focal element: value, and d/dx in *dx. */
static double sfocal(double x, double y, double alpha, double g, double *dx)
{
  double ls_p = loss__log_sigmoid(x), ls_n = loss__log_sigmoid(-x); /* log p, log(1-p) */
  double ce = -(y * ls_p + (1 - y) * ls_n);
  /* log(1 - p_t) = log(y (1-p) + (1-y) p), as a log-add-exp of the two non-negative terms. */
  double la = y > 0 ? log(y) + ls_n : -INFINITY, lb = y < 1 ? log1p(-y) + ls_p : -INFINITY;
  double mx = fmax(la, lb);
  double lq = mx == -INFINITY ? -INFINITY : mx + log(exp(la - mx) + exp(lb - mx));
  double at = alpha >= 0 ? alpha * y + (1 - alpha) * (1 - y) : 1.0;
  double qg = g == 0 ? 1.0 : exp(g * lq);
  double p = exp(ls_p);
  double t2 = g == 0 ? 0.0 : g * (1 - 2 * y) * exp((g - 1) * lq + ls_p + ls_n) * ce;
  *dx = at * (qg * (p - y) + t2);
  return at * qg * ce;
}

/* float32 logits and binary float32 targets, 8 lanes: with e = exp(-|x|) and l = log1p(e),
 * softplus(+-x) = max(+-x, 0) + l, p = sigmoid(x), q = 1 - p_t = sigmoid(-+x) and
 * log q = -softplus(+-x), so q^gamma = exp(gamma log q) is finite for every gamma >= 0 and
 *   l = a_t q^g ce,  dl/dx = a_t q^g [(p - y) - g (2y - 1) p_t ce].
 * Writes per-element losses (ls, may be NULL) and gradients scaled by sc; returns the sum. */
LOSS__HOT static double sfocal_f32(const float *x, const float *y, size_t n, float alpha, float g,
                                   float sc, float *grad, double *ls)
{
  double total = 0;
  size_t i = 0;
  const loss__v8f one = loss__v8f_splat(1.0f), zero = loss__v8f_splat(0.0f);
  while (i + 8 <= n) {
    loss__v8f acc = zero;
    size_t end = i + 256 < n ? i + 256 : n;
    for (; i + 8 <= end; i += 8) {
      loss__v8f vx = loss__v8f_load(x + i), vy = loss__v8f_load(y + i);
      loss__v8f ax = loss__vselect(vx < 0.0f, -vx, vx);
      loss__v8f e = loss__vexp_neg(-ax);
      loss__v8f l1 = loss__vlog1p_unit(e);                     /* log1p(e), e in (0, 1] */
      loss__v8f sp = loss__vselect(vx > zero, vx, zero) + l1;  /* softplus(x)  */
      loss__v8f sn = loss__vselect(vx < zero, -vx, zero) + l1; /* softplus(-x) */
      loss__v8f inv = one / (one + e);
      loss__v8i pos = vx >= zero, y1 = vy > 0.5f;
      loss__v8f p = loss__vselect(pos, inv, e * inv);
      loss__v8f q = loss__vselect(y1, loss__vselect(pos, e * inv, inv), p); /* 1 - p_t */
      loss__v8f ce = loss__vselect(y1, sn, sp);
      loss__v8f qg = g == 2.0f   ? q * q
                     : g == 0.0f ? one
                                 : loss__vexp(-g * loss__vselect(y1, sp, sn));
      loss__v8f at =
          alpha < 0 ? one : loss__vselect(y1, loss__v8f_splat(alpha), loss__v8f_splat(1 - alpha));
      loss__v8f l = at * qg * ce;
      acc += l;
      /* p - y without cancellation: for y = 1 it is -(1 - p) = -q, which q holds exactly */
      loss__v8f pmy = loss__vselect(y1, -q, p), sgn = loss__vselect(y1, one, -one);
      loss__v8f d = at * qg * (pmy - g * sgn * (one - q) * ce);
      if (grad) loss__v8f_store(grad + i, d * sc);
      if (ls)
        for (int k = 0; k < 8; k++) ls[i + k] = l[k];
    }
    total += loss__vsum_d(acc);
  }
  for (; i < n; i++) {
    double dx, l = 0;
    l = sfocal(x[i], y[i], alpha, g, &dx);
    if (grad) grad[i] = (float)(dx * sc);
    if (ls) ls[i] = l;
    total += l;
  }
  return total;
}

int loss_sigmoid_focal(const loss_tensor_t *logits, const loss_tensor_t *target, double alpha,
                       double gamma, const loss_opts_t *o, loss_result_t *out)
{
  loss_reduction_t red;
  size_t n = 0;
  double *ls = NULL, *g = NULL;
  int rc = loss__check_pointwise(logits, "inputs.logits", target, "inputs.target", out, &n);
  if (!rc && !(gamma >= 0 && isfinite(gamma)))
    rc = loss__fail(out, LOSS_EPARAM, "params.gamma", "gamma must be finite and >= 0");
  if (!rc && !isfinite(alpha))
    rc = loss__fail(out, LOSS_EPARAM, "params.alpha", "alpha must be finite");
  if (!rc) rc = loss__reduction(o, 7, LOSS_REDUCTION_NONE, &red, out);
  if (!rc) rc = loss__check_grad_output(o, logits->rank, logits->shape, out);
  if (rc) return loss__finish(out, rc);
  int binary = 1, range_ok = 1;
  if (target->dtype == LOSS_FLOAT32) {
    loss__unit_scan_f32(target->data, n, &range_ok, &binary);
  } else {
    for (size_t i = 0; i < n; i++) {
      double y = loss__get(target, i);
      range_ok &= y >= 0 && y <= 1;
      binary &= y == 0 || y == 1;
    }
  }
  if (!range_ok) {
    rc = loss__fail(out, LOSS_EPARAM, "inputs.target", "target must lie in [0, 1]");
    return loss__finish(out, rc);
  }
  if (binary && logits->dtype == LOSS_FLOAT32 && target->dtype == LOSS_FLOAT32 && !o->grad_output) {
    double sc = red == LOSS_REDUCTION_MEAN ? 1.0 / (double)n : 1.0;
    float *gf = NULL;
    if ((o->grad_mask & 1) && !(gf = loss__grad_native(out, "logits", logits)))
      return loss__finish(out, LOSS_ENOMEM);
    if (red == LOSS_REDUCTION_NONE && !(ls = loss__losses(out, logits->rank, logits->shape)))
      return loss__finish(out, LOSS_ENOMEM);
    double total =
        sfocal_f32(logits->data, target->data, n, (float)alpha, (float)gamma, (float)sc, gf, ls);
    out->loss = red == LOSS_REDUCTION_NONE ? NAN : total * sc;
    return loss__finish(out, LOSS_OK);
  }
  if (!(ls = red == LOSS_REDUCTION_NONE ? loss__losses(out, logits->rank, logits->shape)
                                        : loss__scratch(out, n, sizeof *ls)))
    goto nomem;
  if ((o->grad_mask & 1) && !(g = loss__grad(out, "logits", logits))) goto nomem;
  double sc = red == LOSS_REDUCTION_MEAN ? 1.0 / (double)n : 1.0;
  for (size_t i = 0; i < n; i++) {
    double dx;
    ls[i] = sfocal(loss__get(logits, i), loss__get(target, i), alpha, gamma, &dx);
    if (g) g[i] = dx * (o->grad_output ? loss__get(o->grad_output, i) : sc);
  }
  out->loss = red == LOSS_REDUCTION_NONE ? NAN : loss__reduce(ls, n, red, (double)n);
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  if (red != LOSS_REDUCTION_NONE) free(ls);
  return loss__finish(out, rc);
}

int loss_softmax_focal(const loss_tensor_t *logits, const loss_tensor_t *target,
                       const loss_tensor_t *alpha, double gamma, const loss_opts_t *o,
                       loss_result_t *out)
{
  loss_reduction_t red;
  size_t n = 0, nt = 0;
  double *ls = NULL, *g = NULL, *z = NULL;
  int rc = loss__require(logits, "inputs.logits", out);
  if (!rc) rc = loss__require(target, "inputs.target", out);
  if (!rc) rc = loss__check_float(logits, "inputs.logits", out);
  if (!rc) rc = loss__numel(logits, "inputs.logits", out, &n);
  if (!rc) rc = loss__check_rank(logits, 2, "inputs.logits", out);
  if (!rc) rc = loss__check_int(target, "inputs.target", out);
  if (!rc) rc = loss__numel(target, "inputs.target", out, &nt);
  if (!rc && (target->rank != 1 || target->shape[0] != logits->shape[0]))
    rc = loss__fail(out, LOSS_ESHAPE, "inputs.target", "target must be [N] class indices");
  if (!rc) rc = loss__check_finite(logits, 0, "inputs.logits", out);
  if (!rc && !(gamma >= 0 && isfinite(gamma)))
    rc = loss__fail(out, LOSS_EPARAM, "params.gamma", "gamma must be finite and >= 0");
  if (!rc) rc = loss__reduction(o, 7, LOSS_REDUCTION_MEAN, &red, out);
  if (rc) return loss__finish(out, rc);
  size_t N = logits->shape[0], C = logits->shape[1];
  if ((rc = loss__check_grad_output(o, 1, &N, out))) goto cleanup;
  if (alpha) {
    size_t na = loss_tensor_numel(alpha);
    if ((rc = loss__check_float(alpha, "params.alpha", out))) goto cleanup;
    if ((rc = loss__check_finite(alpha, 0, "params.alpha", out))) goto cleanup;
    if (!(alpha->rank == 0 || (alpha->rank == 1 && na == C))) {
      rc = loss__fail(out, LOSS_ESHAPE, "params.alpha", "alpha must be a scalar or [C]");
      goto cleanup;
    }
  }
  for (size_t i = 0; i < N; i++) {
    int64_t y = loss__geti(target, i);
    if (y < 0 || (uint64_t)y >= C) {
      rc = loss__fail(out, LOSS_ERANGE, "inputs.target",
                      "target %lld is out of bounds for %zu "
                      "classes",
                      (long long)y, C);
      goto cleanup;
    }
  }
  if (!(ls = red == LOSS_REDUCTION_NONE ? loss__losses(out, 1, &N)
                                        : loss__scratch(out, N, sizeof *ls)))
    goto nomem;
  if ((o->grad_mask & 1) && !(g = loss__grad(out, "logits", logits))) goto nomem;
  if (!(z = loss__scratch(out, C, sizeof *z))) goto nomem;
  double sc = red == LOSS_REDUCTION_MEAN ? 1.0 / (double)N : 1.0;
  for (size_t i = 0; i < N; i++) {
    size_t y = (size_t)loss__geti(target, i);
    for (size_t k = 0; k < C; k++) z[k] = loss__get(logits, i * C + k);
    double lse = loss__lse(z, C), lpy = z[y] - lse, q = 0;
    for (size_t k = 0; k < C; k++)
      if (k != y) q += exp(z[k] - lse);
    double ay = !alpha ? 1.0 : loss__get(alpha, alpha->rank == 0 ? 0 : y);
    double qg = gamma == 0 ? 1.0 : pow(q, gamma);
    ls[i] = -ay * qg * lpy;
    if (!g) continue;
    /* kappa = g q^(g-1) p_y log p_y - q^g; as q -> 0, q^(g-1) log p_y -> -q^g -> 0 (g > 0). */
    double kappa = -qg;
    if (gamma != 0 && q > 0) kappa += gamma * pow(q, gamma - 1) * exp(lpy) * lpy;
    double s = o->grad_output ? loss__get(o->grad_output, i) : sc;
    for (size_t k = 0; k < C; k++) g[i * C + k] = s * ay * ((k == y) - exp(z[k] - lse)) * kappa;
  }
  out->loss = red == LOSS_REDUCTION_NONE ? NAN : loss__reduce(ls, N, red, (double)N);
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  if (red != LOSS_REDUCTION_NONE) free(ls);
  free(z);
  return loss__finish(out, rc);
}
