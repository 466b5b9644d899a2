/* kldiv.c - torch.nn.functional.kl_div with its four reductions (LOSSES.md §1.2).
 *
 *   log_target false: l = xlogy(p, p) - p x,  dl/dx = -p,     dl/dp = log p + 1 - x (0 at p=0)
 *   log_target true:  l = e^t (t - x),        dl/dx = -e^t,   dl/dt = e^t (t - x + 1)
 * At p = 0 the reference's target gradient is not finite (the derivative of p log p is -inf
 * there); lossd returns 0, the value of the gradient's continuous extension along the simplex
 * face the target lies on, and documents it in loss.h. */
#include "internal.h"
#include "vecmath.h"

#include <stdlib.h>

/* float32, log_target false, contiguous: one pass of vector log. ls may be NULL (sum only). */
LOSS__HOT static double kl_f32(const float *x, const float *p, size_t n, float sx, float sp,
                               float *gx, float *gp, double *ls)
{
  size_t i = 0, n8 = n & ~(size_t)7;
  loss__v4d s0 = {0, 0, 0, 0};
  const loss__v8f zero = loss__v8f_splat(0.0f);
  for (; i < n8 && !ls; i += 8) {
    loss__v8f vx = loss__v8f_load(x + i), vp = loss__v8f_load(p + i);
    loss__v8i pos = vp > zero;
    loss__v8f lp = loss__vselect(pos, loss__vlog(vp), zero);
    loss__v8f l = loss__vselect(pos, vp * (lp - vx), zero);
    s0 += loss__v8f_widen_add(l);
    if (gx) loss__v8f_store(gx + i, vp * loss__v8f_splat(-sx));
    if (gp)
      loss__v8f_store(
          gp + i,
          loss__vselect(pos, (lp + loss__v8f_splat(1.0f) - vx) * loss__v8f_splat(sp), zero));
  }
  double s = (s0[0] + s0[1]) + (s0[2] + s0[3]);
  for (; i < n; i++) {
    double pi = p[i], xi = x[i], lp = pi > 0 ? log(pi) : 0;
    double l = pi > 0 ? pi * (lp - xi) : 0;
    if (ls) ls[i] = l;
    s += l;
    if (gx) gx[i] = (float)(-pi * sx);
    if (gp) gp[i] = pi > 0 ? (float)((lp + 1 - xi) * sp) : 0.0f;
  }
  return s;
}

int loss_kl_div(const loss_tensor_t *input, const loss_tensor_t *target, int log_target,
                const loss_opts_t *o, loss_result_t *out)
{
  loss_reduction_t red;
  size_t n = 0;
  double *ls = NULL;
  int rc = loss__check_pointwise(input, "inputs.input", target, "inputs.target", out, &n);
  if (!rc) rc = loss__reduction(o, 15, LOSS_REDUCTION_MEAN, &red, out);
  if (!rc) rc = loss__check_grad_output(o, input->rank, input->shape, out);
  if (rc) return loss__finish(out, rc);
  if (!log_target)
    for (size_t i = 0; i < n; i++)
      if (loss__get(target, i) < 0) {
        rc = loss__fail(out, LOSS_EPARAM, "inputs.target",
                        "target must be probabilities (>= 0) unless log_target is true");
        return loss__finish(out, rc);
      }
  double denom =
      red == LOSS_REDUCTION_BATCHMEAN ? (double)(input->rank ? input->shape[0] : 1) : (double)n;
  double sc = red == LOSS_REDUCTION_MEAN || red == LOSS_REDUCTION_BATCHMEAN ? 1.0 / denom : 1.0;
  int fast = !log_target && input->dtype == LOSS_FLOAT32 && target->dtype == LOSS_FLOAT32 &&
             !o->grad_output;
  void *gx = NULL, *gp = NULL;
  if (o->grad_mask & 1)
    gx = fast ? loss__grad_native(out, "input", input) : (void *)loss__grad(out, "input", input);
  if (o->grad_mask & 2)
    gp =
        fast ? loss__grad_native(out, "target", target) : (void *)loss__grad(out, "target", target);
  if (((o->grad_mask & 1) && !gx) || ((o->grad_mask & 2) && !gp)) goto nomem;
  if (red == LOSS_REDUCTION_NONE && !(ls = loss__losses(out, input->rank, input->shape)))
    goto nomem;
  double total = 0;
  if (fast) {
    total = kl_f32(input->data, target->data, n, (float)sc, (float)sc, gx, gp, ls);
  } else {
    double *dx = gx, *dp = gp;
    for (size_t i = 0; i < n; i++) {
      double x = loss__get(input, i), t = loss__get(target, i), l, ex, et;
      double s = o->grad_output ? loss__get(o->grad_output, i) : sc;
      if (log_target) {
        double e = exp(t);
        l = e * (t - x);
        ex = -e;
        et = e * (t - x + 1);
      } else {
        double lp = t > 0 ? log(t) : 0;
        l = t > 0 ? t * (lp - x) : 0;
        ex = -t;
        et = t > 0 ? lp + 1 - x : 0;
      }
      total += l;
      if (ls) ls[i] = l;
      if (dx) dx[i] = s * ex;
      if (dp) dp[i] = s * et;
    }
  }
  out->loss = red == LOSS_REDUCTION_NONE ? NAN : total * sc;
  return loss__finish(out, LOSS_OK);
nomem:
  return loss__finish(out, LOSS_ENOMEM);
}
