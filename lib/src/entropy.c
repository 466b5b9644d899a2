/* entropy.c - entropy of Categorical(logits) per row, as torch.distributions (LOSSES.md §1.4).
 *
 *   H = lse(z) - sum_c p_c z_c,   dH/dz_k = p_k (zbar - z_k),  zbar = sum_c p_c z_c
 * -inf logits are masked classes: p = 0 there, they add nothing to H and get a zero gradient. */
#include "internal.h"

#include <stdlib.h>

int loss_entropy(const loss_tensor_t *logits, const loss_opts_t *o, loss_result_t *out)
{
  loss_reduction_t red;
  size_t n = 0;
  double *ls = NULL, *g = NULL;
  int rc = loss__require(logits, "inputs.logits", out);
  if (!rc) rc = loss__check_float(logits, "inputs.logits", out);
  if (!rc) rc = loss__numel(logits, "inputs.logits", out, &n);
  if (!rc && logits->rank != 1 && logits->rank != 2)
    rc = loss__fail(out, LOSS_ESHAPE, "inputs.logits", "logits must be [N, C] or [C]");
  if (!rc) rc = loss__check_finite(logits, 1, "inputs.logits", out);
  if (!rc) rc = loss__reduction(o, 7, LOSS_REDUCTION_MEAN, &red, out);
  if (rc) return loss__finish(out, rc);
  size_t C = logits->shape[logits->rank - 1], N = n / C;
  size_t rshape[1] = {N};
  if ((rc = loss__check_grad_output(o, logits->rank - 1, rshape, out))) goto cleanup;
  if (!(ls = red == LOSS_REDUCTION_NONE ? loss__losses(out, logits->rank - 1, rshape)
                                        : loss__scratch(out, N, sizeof *ls)))
    goto nomem;
  if ((o->grad_mask & 1) && !(g = loss__grad(out, "logits", logits))) goto nomem;
  double sc = red == LOSS_REDUCTION_MEAN ? 1.0 / (double)N : 1.0;
  for (size_t i = 0; i < N; i++) {
    loss__lse_t acc;
    loss__lse_init(&acc);
    for (size_t k = 0; k < C; k++) loss__lse_add(&acc, loss__get(logits, i * C + k));
    double lse = loss__lse_get(&acc), zbar = 0;
    if (lse == -INFINITY) {
      rc = loss__fail(out, LOSS_EPARAM, "inputs.logits", "row %zu of logits masks every class", i);
      goto cleanup;
    }
    for (size_t k = 0; k < C; k++) {
      double z = loss__get(logits, i * C + k);
      if (z != -INFINITY) zbar += exp(z - lse) * z;
    }
    ls[i] = lse - zbar;
    if (!g) continue;
    double s = o->grad_output ? loss__get(o->grad_output, i) : sc;
    for (size_t k = 0; k < C; k++) {
      double z = loss__get(logits, i * C + k);
      g[i * C + k] = z == -INFINITY ? 0.0 : s * exp(z - lse) * (zbar - z);
    }
  }
  out->loss = red == LOSS_REDUCTION_NONE ? NAN : loss__reduce(ls, N, red, (double)N);
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  if (red != LOSS_REDUCTION_NONE) free(ls);
  return loss__finish(out, rc);
}
