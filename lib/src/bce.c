/* bce.c - binary cross-entropy with logits (torch binary_cross_entropy_with_logits).
 *
 *   l = w [(1 - y) x - (1 + (pw - 1) y) log sigma(x)]
 *   dl/dx = w [(pw y + 1 - y) sigma(x) - pw y]                        (LOSSES.md §1.3) */
#include "internal.h"

#include <stdlib.h>

/* Expand a tensor broadcast (NumPy rules, trailing dimensions) against `like` into dst. */
static int broadcast(const loss_tensor_t *t, const loss_tensor_t *like, const char *field,
                     double *dst, loss_result_t *out)
{
  int rc = loss__check_float(t, field, out);
  if (!rc) rc = loss__check_finite(t, 0, field, out);
  if (rc) return rc;
  if (t->rank > like->rank)
    return loss__fail(out, LOSS_ESHAPE, field, "%s has more dimensions than logits", field + 7);
  int off = like->rank - t->rank;
  for (int d = 0; d < t->rank; d++)
    if (t->shape[d] != 1 && t->shape[d] != like->shape[d + off])
      return loss__fail(out, LOSS_ESHAPE, field, "%s does not broadcast against logits", field + 7);
  size_t n = loss_tensor_numel(like);
  for (size_t i = 0; i < n; i++) {
    size_t rem = i, src = 0, stride = 1;
    for (int d = like->rank - 1; d >= off; d--) {
      size_t idx = rem % like->shape[d];
      rem /= like->shape[d];
      size_t dim = t->shape[d - off];
      src += (dim == 1 ? 0 : idx) * stride;
      stride *= dim;
    }
    dst[i] = loss__get(t, src);
  }
  return LOSS_OK;
}

int loss_bce_with_logits(const loss_tensor_t *logits, const loss_tensor_t *target,
                         const loss_bce_params_t *p, const loss_opts_t *o, loss_result_t *out)
{
  loss_reduction_t red;
  size_t n = 0;
  double *w = NULL, *pw = NULL, *ls = NULL, *g = NULL;
  int rc = loss__check_pointwise(logits, "inputs.logits", target, "inputs.target", out, &n);
  if (!rc) rc = loss__reduction(o, 7, LOSS_REDUCTION_MEAN, &red, out);
  if (!rc) rc = loss__check_grad_output(o, logits->rank, logits->shape, out);
  if (rc) return loss__finish(out, rc);
  if (p && p->weight) {
    if (!(w = loss__scratch(out, n, sizeof *w))) goto nomem;
    if ((rc = broadcast(p->weight, logits, "params.weight", w, out))) goto cleanup;
  }
  if (p && p->pos_weight) {
    const loss_tensor_t *t = p->pos_weight;
    size_t last = logits->rank ? logits->shape[logits->rank - 1] : 1;
    if (t->rank > 1 || (t->rank == 1 && t->shape[0] != last && t->shape[0] != 1)) {
      rc = loss__fail(out, LOSS_ESHAPE, "params.pos_weight",
                      "pos_weight must be [C] along the last dimension of logits");
      goto cleanup;
    }
    if (!(pw = loss__scratch(out, n, sizeof *pw))) goto nomem;
    if ((rc = broadcast(t, logits, "params.pos_weight", pw, out))) goto cleanup;
  }
  if (!(ls = red == LOSS_REDUCTION_NONE ? loss__losses(out, logits->rank, logits->shape)
                                        : loss__scratch(out, n, sizeof *ls)))
    goto nomem;
  if ((o->grad_mask & 1) && !(g = loss__grad(out, "logits", logits))) goto nomem;
  double sc = red == LOSS_REDUCTION_MEAN ? 1.0 / (double)n : 1.0;
  for (size_t i = 0; i < n; i++) {
    double x = loss__get(logits, i), y = loss__get(target, i);
    double wi = w ? w[i] : 1.0, pwi = pw ? pw[i] : 1.0;
    double lw = 1 + (pwi - 1) * y;
    ls[i] = wi * ((1 - y) * x - lw * loss__log_sigmoid(x));
    if (g) {
      double s = o->grad_output ? loss__get(o->grad_output, i) : sc;
      g[i] = s * wi * ((pwi * y + 1 - y) * loss__sigmoid(x) - pwi * y);
    }
  }
  out->loss = red == LOSS_REDUCTION_NONE ? NAN : loss__reduce(ls, n, red, (double)n);
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  if (red != LOSS_REDUCTION_NONE) free(ls);
  free(w);
  free(pw);
  return loss__finish(out, rc);
}
