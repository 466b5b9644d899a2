/* multitask.c - multitask loss weighting arithmetic: static and uncertainty combination, the
 * optimisers that learn the weights, GradNorm's weight gradient and DWA (LOSSES.md §4).
 *
 *   uncertainty libmtl: total = sum L_i / (2 e^s_i) + s_i / 2     (LibMTL UW, s0 = -0.5)
 *   uncertainty kendall: total = sum e^-s_i L_i + s_i              (s0 = 0)
 *   GradNorm: w = T softmax(l), L_grad = sum |w_i n_i - sg(mean(w n) r_i^alpha)|
 *   DWA: w = T softmax(r / temperature), r_i = L_i(k-1) / L_i(k-2) */
#include "internal.h"

#include <stdlib.h>

double loss_uw_init(loss_uw_form_t form)
{
  return form == LOSS_UW_KENDALL ? 0.0 : -0.5;
}

void loss_uw_weights(loss_uw_form_t form, const double *s, size_t t, double *w)
{
  for (size_t i = 0; i < t; i++) w[i] = form == LOSS_UW_KENDALL ? exp(-s[i]) : 0.5 * exp(-s[i]);
}

double loss_uw_total(loss_uw_form_t form, const double *L, const double *s, size_t t, double *ds)
{
  double tot = 0;
  for (size_t i = 0; i < t; i++) {
    if (form == LOSS_UW_KENDALL) {
      tot += exp(-s[i]) * L[i] + s[i];
      if (ds) ds[i] = 1 - exp(-s[i]) * L[i];
    } else {
      tot += L[i] * 0.5 * exp(-s[i]) + 0.5 * s[i];
      if (ds) ds[i] = 0.5 - 0.5 * exp(-s[i]) * L[i];
    }
  }
  return tot;
}

void loss_optim_step(loss_optim_t *opt, double *theta, const double *g, double *m, double *v,
                     size_t t)
{
  opt->step++;
  if (opt->kind == LOSS_OPT_SGD) {
    for (size_t i = 0; i < t; i++) theta[i] -= opt->lr * g[i];
    return;
  }
  /* torch.optim.Adam: theta -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). */
  double bc1 = 1 - pow(opt->beta1, (double)opt->step), bc2 = 1 - pow(opt->beta2, (double)opt->step);
  for (size_t i = 0; i < t; i++) {
    m[i] = opt->beta1 * m[i] + (1 - opt->beta1) * g[i];
    v[i] = opt->beta2 * v[i] + (1 - opt->beta2) * g[i] * g[i];
    theta[i] -= opt->lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + opt->eps);
  }
}

static void softmax(const double *x, size_t t, double scale, double *p)
{
  double mx = -INFINITY, s = 0;
  for (size_t i = 0; i < t; i++) mx = fmax(mx, x[i] * scale);
  for (size_t i = 0; i < t; i++) s += (p[i] = exp(x[i] * scale - mx));
  for (size_t i = 0; i < t; i++) p[i] /= s;
}

double loss_gradnorm_grad(const double *logits, const double *L, const double *L0,
                          const double *grad_norms, double alpha, size_t t, double *w,
                          double *dlogits)
{
  double gbar = 0, rbar = 0, lg = 0;
  softmax(logits, t, 1.0, w); /* w holds pi for now */
  for (size_t i = 0; i < t; i++) {
    gbar += (double)t * w[i] * grad_norms[i];
    rbar += L[i] / L0[i];
  }
  gbar /= (double)t, rbar /= (double)t;
  for (size_t j = 0; j < t; j++) dlogits[j] = 0;
  /* dL_grad/dl_j = sum_i sign(G_i - target_i) n_i w_i (d_ij - pi_j) */
  double acc = 0;
  for (size_t i = 0; i < t; i++) {
    double wi = (double)t * w[i], Gi = wi * grad_norms[i];
    double target = gbar * pow((L[i] / L0[i]) / rbar, alpha);
    double sg = (Gi > target) - (Gi < target);
    lg += fabs(Gi - target);
    dlogits[i] += sg * grad_norms[i] * wi;
    acc += sg * grad_norms[i] * wi;
  }
  for (size_t j = 0; j < t; j++) dlogits[j] -= acc * w[j];
  for (size_t i = 0; i < t; i++) w[i] *= (double)t;
  return lg;
}

void loss_dwa_weights(const double *prev1, const double *prev2, double temperature, size_t t,
                      double *w)
{
  double *r = w; /* r in place, then the softmax over it */
  for (size_t i = 0; i < t; i++) r[i] = prev1[i] / prev2[i];
  softmax(r, t, 1.0 / temperature, w);
  for (size_t i = 0; i < t; i++) w[i] *= (double)t;
}

int loss_multitask(const loss_tensor_t *losses, const loss_tensor_t *log_vars,
                   loss_mt_method_t method, const loss_tensor_t *weights, loss_uw_form_t form,
                   const loss_opts_t *o, loss_result_t *out)
{
  size_t t = 0;
  double *buf = NULL;
  int rc = LOSS_OK;
  if (o->reduction != LOSS_REDUCTION_DEFAULT)
    rc = loss__fail(out, LOSS_EREDUCTION, "reduction", "this loss is a scalar: no reduction");
  if (!rc && !losses) rc = loss__fail(out, LOSS_EMISSING, "inputs.losses", "losses is required");
  if (!rc) rc = loss__check_float(losses, "inputs.losses", out);
  if (!rc) rc = loss__numel(losses, "inputs.losses", out, &t);
  if (!rc) rc = loss__check_rank(losses, 1, "inputs.losses", out);
  if (!rc) rc = loss__check_finite(losses, 0, "inputs.losses", out);
  if (!rc && method != LOSS_MT_STATIC && method != LOSS_MT_UNCERTAINTY)
    rc = loss__fail(out, LOSS_EPARAM, "params.method",
                    "the stateless multitask loss takes static or uncertainty");
  const loss_tensor_t *vecs[2] = {log_vars, weights};
  const char *names[2] = {"inputs.log_vars", "params.weights"};
  for (int i = 0; !rc && i < 2; i++) {
    if (!vecs[i]) continue;
    rc = loss__check_float(vecs[i], names[i], out);
    if (!rc && (vecs[i]->rank != 1 || vecs[i]->shape[0] != t))
      rc = loss__fail(out, LOSS_ESHAPE, names[i], "%s must be [T] = [%zu]", names[i] + 7, t);
    if (!rc) rc = loss__check_finite(vecs[i], 0, names[i], out);
  }
  if (!rc && log_vars && method != LOSS_MT_UNCERTAINTY)
    rc = loss__fail(out, LOSS_EINVAL, "inputs.log_vars", "log_vars is for method uncertainty");
  if (!rc && weights && method != LOSS_MT_STATIC)
    rc = loss__fail(out, LOSS_EINVAL, "params.weights", "weights is for method static");
  if (rc) return loss__finish(out, rc);
  if (!(buf = loss__scratch(out, 4 * t, sizeof *buf))) goto nomem;
  double *L = buf, *s = buf + t, *w = buf + 2 * t, *ds = buf + 3 * t;
  loss__to_f64(losses, L, t);
  if (method == LOSS_MT_STATIC) {
    out->loss = 0;
    for (size_t i = 0; i < t; i++) {
      w[i] = weights ? loss__get(weights, i) : 1.0;
      out->loss += w[i] * L[i];
    }
  } else {
    for (size_t i = 0; i < t; i++) s[i] = log_vars ? loss__get(log_vars, i) : loss_uw_init(form);
    loss_uw_weights(form, s, t, w);
    out->loss = loss_uw_total(form, L, s, t, ds);
  }
  double *gw = loss__extra(out, "weights", 1, &t);
  if (!gw) goto nomem;
  for (size_t i = 0; i < t; i++) gw[i] = w[i];
  if (o->grad_mask & 1) {
    double *gl = loss__grad(out, "losses", losses);
    if (!gl) goto nomem;
    for (size_t i = 0; i < t; i++) gl[i] = w[i];
  }
  if ((o->grad_mask & 2) && method == LOSS_MT_UNCERTAINTY && log_vars) {
    double *gs = loss__grad(out, "log_vars", log_vars);
    if (!gs) goto nomem;
    for (size_t i = 0; i < t; i++) gs[i] = ds[i];
  }
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  free(buf);
  return loss__finish(out, rc);
}
