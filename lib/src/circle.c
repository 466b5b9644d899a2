/* circle.c - Circle loss as pytorch-metric-learning's CircleLoss (LOSSES.md §2.3).
 *
 * s = cosine similarity matrix; per anchor i, over positives p (same label, j != i) and
 * negatives n (other labels), with alpha detached:
 *   logit_p = -gamma [1+m - s]_+ (s - (1-m)),  logit_n = gamma [s + m]_+ (s - m)
 *   L_i = softplus(lse_p + lse_n), 0 for anchors lacking positives or negatives;
 *   L = mean of L_i over the anchors with L_i > 0 (AvgNonZeroReducer), 0 if none. */
#include "internal.h"

#include <stdlib.h>

#define NORM_EPS 1e-12

int loss_circle(const loss_tensor_t *embeddings, const loss_tensor_t *labels, double m,
                double gamma, const loss_opts_t *o, loss_result_t *out)
{
  size_t ne = 0, ny = 0;
  double *e = NULL, *nrm = NULL, *S = NULL, *G = NULL;
  const loss_tensor_t *E = embeddings;
  int rc = LOSS_OK;
  if (o->reduction != LOSS_REDUCTION_DEFAULT)
    rc = loss__fail(out, LOSS_EREDUCTION, "reduction", "this loss is a scalar: no reduction");
  if (!rc && (!E || !labels))
    rc = loss__fail(out, LOSS_EMISSING, E ? "inputs.labels" : "inputs.embeddings",
                    "circle needs embeddings and labels");
  if (!rc) rc = loss__check_float(E, "inputs.embeddings", out);
  if (!rc) rc = loss__numel(E, "inputs.embeddings", out, &ne);
  if (!rc) rc = loss__check_rank(E, 2, "inputs.embeddings", out);
  if (!rc) rc = loss__check_finite(E, 0, "inputs.embeddings", out);
  if (!rc) rc = loss__check_int(labels, "inputs.labels", out);
  if (!rc) rc = loss__numel(labels, "inputs.labels", out, &ny);
  if (!rc && (labels->rank != 1 || ny != E->shape[0]))
    rc = loss__fail(out, LOSS_ESHAPE, "inputs.labels", "labels must be [N] with N = %zu",
                    E->shape[0]);
  if (!rc && !(isfinite(m) && isfinite(gamma) && gamma > 0))
    rc = loss__fail(out, LOSS_EPARAM, isfinite(m) ? "params.gamma" : "params.m",
                    "m must be finite and gamma finite and > 0");
  if (rc) return loss__finish(out, rc);
  size_t N = E->shape[0], D = E->shape[1];
  if (!(e = loss__scratch(out, N * D, sizeof *e)) || !(nrm = loss__scratch(out, N, sizeof *nrm)) ||
      !(S = loss__scratch(out, N * N, sizeof *S)) || !(G = loss__scratch(out, N * N, sizeof *G)))
    goto nomem;
  loss__to_f64(E, e, N * D);
  for (size_t i = 0; i < N; i++) {
    double s = 0;
    for (size_t j = 0; j < D; j++) s += e[i * D + j] * e[i * D + j];
    nrm[i] = sqrt(s);
    double c = fmax(nrm[i], NORM_EPS);
    for (size_t j = 0; j < D; j++) e[i * D + j] /= c; /* e now holds the unit rows */
  }
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < N; j++) {
      double s = 0;
      for (size_t k = 0; k < D; k++) s += e[i * D + k] * e[j * D + k];
      S[i * N + j] = s;
    }
  double op = 1 + m, on = -m, dp = 1 - m, dn = m, total = 0;
  size_t nonzero = 0;
  for (size_t i = 0; i < N; i++) {
    loss__lse_t lp, ln;
    loss__lse_init(&lp);
    loss__lse_init(&ln);
    int64_t yi = loss__geti(labels, i);
    for (size_t j = 0; j < N; j++) {
      double s = S[i * N + j];
      if (loss__geti(labels, j) == yi) {
        if (j != i) loss__lse_add(&lp, -gamma * fmax(op - s, 0) * (s - dp));
      } else {
        loss__lse_add(&ln, gamma * fmax(s - on, 0) * (s - dn));
      }
    }
    double Lp = loss__lse_get(&lp), Ln = loss__lse_get(&ln);
    if (Lp == -INFINITY || Ln == -INFINITY) continue; /* no positive or no negative: 0 */
    double Li = loss__softplus(Lp + Ln);
    if (!(Li > 0)) continue;
    total += Li;
    nonzero++;
    /* dL_i/ds_ij, before the 1/nonzero of the reducer (applied below). */
    double zeta = loss__sigmoid(Lp + Ln);
    for (size_t j = 0; j < N; j++) {
      double s = S[i * N + j];
      if (loss__geti(labels, j) == yi) {
        if (j == i) continue;
        double ap = fmax(op - s, 0), lg = -gamma * ap * (s - dp);
        G[i * N + j] = -zeta * exp(lg - Lp) * gamma * ap;
      } else {
        double an = fmax(s - on, 0), lg = gamma * an * (s - dn);
        G[i * N + j] = zeta * exp(lg - Ln) * gamma * an;
      }
    }
  }
  out->loss = nonzero ? total / (double)nonzero : 0.0;
  if (o->grad_mask & 1) {
    double *g = loss__grad(out, "embeddings", E);
    if (!g) goto nomem;
    double inv = nonzero ? 1.0 / (double)nonzero : 0.0;
    for (size_t i = 0; i < N; i++) {
      double *gi = g + i * D; /* first dL/d(unit row i), then through the normalisation */
      for (size_t j = 0; j < N; j++) {
        double c = (G[i * N + j] + G[j * N + i]) * inv;
        if (c != 0)
          for (size_t k = 0; k < D; k++) gi[k] += c * e[j * D + k];
      }
      double dot = 0, c = fmax(nrm[i], NORM_EPS);
      for (size_t k = 0; k < D; k++) dot += gi[k] * e[i * D + k];
      for (size_t k = 0; k < D; k++)
        gi[k] = (gi[k] - (nrm[i] >= NORM_EPS ? dot * e[i * D + k] : 0)) / c;
    }
  }
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  free(e);
  free(nrm);
  free(S);
  free(G);
  return loss__finish(out, rc);
}
