/* emo.c - EMO (Earth Mover distance Optimisation, DRSY/EMO emo_patch.py), LOSSES.md §5.1.
 *
 * With a one-hot target the transport plan is forced: EMD = sum_v q_v C[v,y], q = softmax z,
 * C = 1 - cos of embedding rows or a given cost. The reference detaches q_y inside its value,
 * so its emo term is q_y + sum_{v != y} q_v C[v,y] while its gradient is that of EMD:
 *   dEMD/dz_k = q_k (C[k,y] - EMD).
 * Modes: emd -> EMD; 1 -> 0.5 (mle + sg(mle/(emo+1e-10)) emo); 2 -> sg(emo/(mle+1e-10)) mle + emo.
 * L = sum_t l_t mask_t / (1e-15 + sum_t mask_t). */
#include "internal.h"

#include <stdlib.h>

int loss_emo(const loss_tensor_t *logits, const loss_tensor_t *target,
             const loss_tensor_t *embeddings, const loss_tensor_t *cost, loss_emo_mode_t mode,
             int64_t ignore_index, const loss_opts_t *o, loss_result_t *out)
{
  size_t nz = 0, nt = 0;
  double *z = NULL, *ce = NULL, *nrm = NULL, *g = NULL;
  int rc = LOSS_OK;
  if (o->reduction != LOSS_REDUCTION_DEFAULT)
    rc = loss__fail(out, LOSS_EREDUCTION, "reduction", "this loss is a scalar: no reduction");
  if (!rc && embeddings && cost)
    rc = loss__fail(out, LOSS_ECONFLICT, "inputs.cost", "give embeddings or cost, not both");
  if (!rc && !embeddings && !cost)
    rc = loss__fail(out, LOSS_EMISSING, "inputs.embeddings",
                    "give embeddings [V, d] or cost [V, V]");
  if (!rc) rc = loss__require(logits, "inputs.logits", out);
  if (!rc) rc = loss__require(target, "inputs.target", out);
  if (!rc) rc = loss__check_float(logits, "inputs.logits", out);
  if (!rc) rc = loss__numel(logits, "inputs.logits", out, &nz);
  if (!rc) rc = loss__check_rank(logits, 2, "inputs.logits", out);
  if (!rc) rc = loss__check_finite(logits, 0, "inputs.logits", out);
  if (!rc) rc = loss__check_int(target, "inputs.target", out);
  if (!rc) rc = loss__numel(target, "inputs.target", out, &nt);
  if (!rc && (target->rank != 1 || nt != logits->shape[0]))
    rc = loss__fail(out, LOSS_ESHAPE, "inputs.target", "target must be [N]");
  if (rc) return loss__finish(out, rc);
  size_t N = logits->shape[0], V = logits->shape[1], d = 0;
  if (embeddings) {
    size_t ne;
    if ((rc = loss__check_float(embeddings, "inputs.embeddings", out)) ||
        (rc = loss__numel(embeddings, "inputs.embeddings", out, &ne)) ||
        (rc = loss__check_rank(embeddings, 2, "inputs.embeddings", out)) ||
        (rc = loss__check_finite(embeddings, 0, "inputs.embeddings", out)))
      return loss__finish(out, rc);
    if (embeddings->shape[0] != V)
      return loss__finish(out, loss__fail(out, LOSS_ESHAPE, "inputs.embeddings",
                                          "embeddings must be [V, d] with V = %zu", V));
    d = embeddings->shape[1];
  } else {
    if ((rc = loss__check_float(cost, "inputs.cost", out)) ||
        (rc = loss__check_rank(cost, 2, "inputs.cost", out)) ||
        (rc = loss__check_finite(cost, 0, "inputs.cost", out)))
      return loss__finish(out, rc);
    if (cost->shape[0] != V || cost->shape[1] != V)
      return loss__finish(
          out, loss__fail(out, LOSS_ESHAPE, "inputs.cost", "cost must be [V, V] with V = %zu", V));
  }
  for (size_t t = 0; t < N; t++) {
    int64_t y = loss__geti(target, t);
    if (y != ignore_index && (y < 0 || (uint64_t)y >= V))
      return loss__finish(out, loss__fail(out, LOSS_ERANGE, "inputs.target",
                                          "target %lld is out of bounds for %zu classes",
                                          (long long)y, V));
  }
  if (!(z = loss__scratch(out, 2 * V, sizeof *z))) goto nomem;
  ce = z + V; /* the cost column C[., y] of the current token */
  if (embeddings) {
    if (!(nrm = loss__scratch(out, V * d + V, sizeof *nrm))) goto nomem;
    double *e = nrm + V;
    loss__to_f64(embeddings, e, V * d);
    for (size_t v = 0; v < V; v++) {
      double s = 0;
      for (size_t k = 0; k < d; k++) s += e[v * d + k] * e[v * d + k];
      if (s == 0) {
        rc = loss__fail(out, LOSS_EPARAM, "inputs.embeddings", "row %zu is a zero vector", v);
        goto cleanup;
      }
      nrm[v] = sqrt(s);
    }
  }
  if ((o->grad_mask & 1) && !(g = loss__grad(out, "logits", logits))) goto nomem;
  double msum = 0;
  for (size_t t = 0; t < N; t++) msum += loss__geti(target, t) != ignore_index;
  double denom = 1e-15 + msum, tot = 0, tot_emd = 0, tot_mle = 0;
  for (size_t t = 0; t < N; t++) {
    int64_t yy = loss__geti(target, t);
    if (yy == ignore_index) continue;
    size_t y = (size_t)yy;
    for (size_t v = 0; v < V; v++) z[v] = loss__get(logits, t * V + v);
    double lse = loss__lse(z, V), emd = 0;
    for (size_t v = 0; v < V; v++) {
      if (embeddings) {
        const double *e = nrm + V;
        double dot = 0;
        for (size_t k = 0; k < d; k++) dot += e[v * d + k] * e[y * d + k];
        ce[v] = 1 - dot / (nrm[v] * nrm[y]);
      } else {
        ce[v] = loss__get(cost, v * V + y);
      }
      emd += exp(z[v] - lse) * ce[v];
    }
    double qy = exp(z[y] - lse), mle = lse - z[y];
    double emo = qy + emd - qy * ce[y]; /* the reference's value: q_y + sum_{v != y} q_v C */
    double l, a_mle, a_emd;             /* value; coefficients of grad mle, grad EMD */
    switch (mode) {
    case LOSS_EMO_MODE1:
      l = 0.5 * (mle + mle / (emo + 1e-10) * emo);
      a_mle = 0.5, a_emd = 0.5 * mle / (emo + 1e-10);
      break;
    case LOSS_EMO_MODE2:
      l = emo / (mle + 1e-10) * mle + emo;
      a_mle = emo / (mle + 1e-10), a_emd = 1;
      break;
    default:
      l = emd;
      a_mle = 0, a_emd = 1;
    }
    tot += l;
    tot_emd += emd;
    tot_mle += mle;
    if (!g) continue;
    for (size_t v = 0; v < V; v++) {
      double q = exp(z[v] - lse);
      g[t * V + v] = (a_mle * (q - (v == y)) + a_emd * q * (ce[v] - emd)) / denom;
    }
  }
  out->loss = tot / denom;
  if ((rc = loss__extra_scalar(out, "emd", tot_emd / denom)) ||
      (rc = loss__extra_scalar(out, "mle", tot_mle / denom)))
    goto cleanup;
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  free(z);
  free(nrm);
  return loss__finish(out, rc);
}
