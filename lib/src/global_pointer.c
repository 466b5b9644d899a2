/* global_pointer.c - GlobalPointer span scores (plain, q/k with RoPE, Efficient) with the
 * multi-label categorical cross-entropy or BCE over unmasked cells, decoded entities and F1.
 *
 *   s_h(m,n) = q'_{m,h} . k'_{n,h} / sqrt(D)                       (RoPE-rotated q', k')
 *   MCCE row: log(1 + sum (1-y) e^s) + log(1 + sum y e^-s) over unmasked cells, mean over B*H
 *   (LOSSES.md §3.1, §3.2). Masked cells (padding, start > end, -inf scores) count nowhere.
 * Rows (b, h) are processed one at a time so that scratch is O(L^2), not O(B H L^2). */
#include "internal.h"
#include "vecmath.h"

#include <stdlib.h>
#include <string.h>

loss_gp_params_t loss_gp_params_default(void)
{
  loss_gp_params_t p = {1, 1, LOSS_GP_MCCE, 0.0};
  return p;
}

typedef struct {
  size_t B, H, L, D;
  int form;             /* 0 scores, 1 q/k per head, 2 efficient */
  int hard;             /* labels are all 0 or 1 (spans always are) */
  double *q, *k, *bias; /* rotated q', k' [B,L,(H,)D] and head_bias in double */
} gp_t;

/* Rotate pairs (v_2i, v_2i+1) by angle pos * 10000^(-2i/D); dir -1 applies the transpose. */
static void rope(double *v, size_t D, size_t pos, int dir)
{
  for (size_t i = 0; i < D / 2; i++) {
    double th = (double)pos * pow(10000.0, -2.0 * (double)i / (double)D);
    double c = cos(th), s = sin(th) * dir, a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * c - b * s;
    v[2 * i + 1] = b * c + a * s;
  }
}

static int gp_check(const loss_tensor_t *scores, const loss_tensor_t *q, const loss_tensor_t *k,
                    const loss_tensor_t *hb, const loss_tensor_t *labels,
                    const loss_tensor_t *spans, const loss_tensor_t *mask, gp_t *g,
                    loss_result_t *out)
{
  size_t n;
  int rc;
  if (scores && (q || k || hb))
    return loss__fail(out, LOSS_ECONFLICT, "inputs.scores", "give scores or q and k, not both");
  if (labels && spans)
    return loss__fail(out, LOSS_ECONFLICT, "inputs.spans", "give labels or spans, not both");
  if (!labels && !spans)
    return loss__fail(out, LOSS_EMISSING, "inputs.labels", "labels or spans is required");
  if (scores) {
    if ((rc = loss__check_float(scores, "inputs.scores", out)) ||
        (rc = loss__numel(scores, "inputs.scores", out, &n)) ||
        (rc = loss__check_rank(scores, 4, "inputs.scores", out)) ||
        (rc = loss__check_finite(scores, 1, "inputs.scores", out)))
      return rc;
    if (scores->shape[2] != scores->shape[3])
      return loss__fail(out, LOSS_ESHAPE, "inputs.scores", "scores must be [B, H, L, L]");
    g->form = 0;
    g->B = scores->shape[0], g->H = scores->shape[1], g->L = scores->shape[2];
  } else {
    if (!q || !k)
      return loss__fail(out, LOSS_EMISSING, q ? "inputs.k" : "inputs.q",
                        "give scores [B,H,L,L], or q and k");
    if ((rc = loss__check_float(q, "inputs.q", out)) ||
        (rc = loss__check_float(k, "inputs.k", out)) ||
        (rc = loss__numel(q, "inputs.q", out, &n)) ||
        (rc = loss__check_same_shape(q, k, "inputs.k", out)) ||
        (rc = loss__check_finite(q, 0, "inputs.q", out)) ||
        (rc = loss__check_finite(k, 0, "inputs.k", out)))
      return rc;
    g->form = hb ? 2 : 1;
    if (q->rank != (hb ? 3 : 4))
      return loss__fail(out, LOSS_ESHAPE, "inputs.q",
                        hb ? "q must be [B, L, D] with head_bias" : "q must be [B, L, H, D]");
    g->B = q->shape[0], g->L = q->shape[1], g->D = q->shape[q->rank - 1];
    if (hb) {
      if ((rc = loss__check_float(hb, "inputs.head_bias", out)) ||
          (rc = loss__check_rank(hb, 3, "inputs.head_bias", out)) ||
          (rc = loss__check_finite(hb, 0, "inputs.head_bias", out)))
        return rc;
      if (hb->shape[0] != g->B || hb->shape[1] != g->L || hb->shape[2] % 2 || !hb->shape[2])
        return loss__fail(out, LOSS_ESHAPE, "inputs.head_bias", "head_bias must be [B, L, 2H]");
      g->H = hb->shape[2] / 2;
    } else {
      g->H = q->shape[2];
    }
  }
  if (labels) {
    size_t shp[4] = {g->B, g->H, g->L, g->L};
    loss_tensor_t like = {NULL, LOSS_FLOAT64, 4, {shp[0], shp[1], shp[2], shp[3]}};
    if ((rc = loss__check_same_shape(&like, labels, "inputs.labels", out)) ||
        (rc = loss__check_finite(labels, 0, "inputs.labels", out)))
      return rc;
    size_t nl = loss_tensor_numel(labels);
    int in_range = 1, binary = 1;
    if (labels->dtype == LOSS_FLOAT32) {
      loss__unit_scan_f32(labels->data, nl, &in_range, &binary);
    } else {
      for (size_t i = 0; i < nl; i++) {
        double y = loss__get(labels, i);
        in_range &= y >= 0 && y <= 1;
        binary &= y == 0 || y == 1;
      }
    }
    if (!in_range)
      return loss__fail(out, LOSS_EPARAM, "inputs.labels", "labels must lie in [0, 1]");
    g->hard = binary;
  } else {
    if ((rc = loss__check_int(spans, "inputs.spans", out))) return rc;
    if (!(spans->rank == 2 && spans->shape[1] == 4) && !(spans->rank == 1 && spans->shape[0] == 0))
      return loss__fail(out, LOSS_ESHAPE, "inputs.spans",
                        "spans must be [K, 4] (b, h, start, end)");
    size_t K = spans->rank == 2 ? spans->shape[0] : 0;
    size_t lim[4] = {g->B, g->H, g->L, g->L};
    for (size_t i = 0; i < K * 4; i++) {
      int64_t v = loss__geti(spans, i);
      if (v < 0 || (uint64_t)v >= lim[i % 4])
        return loss__fail(out, LOSS_ERANGE, "inputs.spans", "span %zu is out of range", i / 4);
    }
  }
  if (mask) {
    size_t shp[2] = {g->B, g->L};
    loss_tensor_t like = {NULL, LOSS_FLOAT64, 2, {shp[0], shp[1]}};
    if ((rc = loss__check_same_shape(&like, mask, "inputs.mask", out)) ||
        (rc = loss__check_finite(mask, 0, "inputs.mask", out)))
      return rc;
  }
  if (g->form && g->D % 2)
    return loss__fail(out, LOSS_ESHAPE, "inputs.q", "the head size D must be even for RoPE");
  return LOSS_OK;
}

/* Fill row (b, h) of the scores into s[L*L] (masked cells -inf). */
static void gp_row(const gp_t *g, const loss_tensor_t *scores, const loss_tensor_t *mask, int tril,
                   size_t b, size_t h, double *s)
{
  size_t L = g->L, D = g->D, H = g->H;
  double inv = g->form ? 1.0 / sqrt((double)D) : 0;
  for (size_t m = 0; m < L; m++)
    for (size_t n = 0; n < L; n++) {
      double v;
      if ((tril && m > n) ||
          (mask && (loss__get(mask, b * L + m) == 0 || loss__get(mask, b * L + n) == 0))) {
        s[m * L + n] = -INFINITY;
        continue;
      }
      if (g->form == 0) {
        v = loss__get(scores, ((b * H + h) * L + m) * L + n);
      } else {
        const double *qm, *kn;
        if (g->form == 1) {
          qm = g->q + ((b * L + m) * H + h) * D;
          kn = g->k + ((b * L + n) * H + h) * D;
        } else {
          qm = g->q + (b * L + m) * D;
          kn = g->k + (b * L + n) * D;
        }
        v = 0;
        for (size_t d = 0; d < D; d++) v += qm[d] * kn[d];
        v *= inv;
        if (g->form == 2)
          v += g->bias[(b * L + n) * 2 * H + 2 * h] + g->bias[(b * L + m) * 2 * H + 2 * h + 1];
      }
      s[m * L + n] = v;
    }
}

typedef struct {
  double loss, tp, npred, ngold;
} gp_acc_t;

/* One (b, h) block of float32 scores with hard labels y (0/1, float32), MCCE: three vector
 * passes over the L x L block (the maxima of both log-sum-exps, their sums, the gradient and
 * the metrics). Masking: cm[n] is 0 for kept tokens and -inf for padding, added to the score;
 * rows of padded tokens and, with tril, cells left of the diagonal are skipped (gradient 0).
 * Predicted cells are appended through `emit`. */
LOSS__HOT static void gp_block_f32(const float *s, const float *y, const float *cm,
                                   const float *rowmask, int tril, size_t L, float sc, float thr,
                                   float *g, gp_acc_t *acc,
                                   void (*emit)(void *, size_t, size_t, float), void *ctx)
{
  const float ninf = -__builtin_inff();
  loss__v8f mn = loss__v8f_splat(0.0f), mp = mn; /* the "0" term of both sums */
  for (size_t m = 0; m < L; m++) {
    if (rowmask && rowmask[m] == 0) continue;
    size_t n = tril ? m : 0;
    const float *sr = s + m * L, *yr = y + m * L;
    for (; n + 8 <= L; n += 8) {
      loss__v8f v = loss__v8f_load(sr + n) + loss__v8f_load(cm + n), yy = loss__v8f_load(yr + n);
      loss__v8i pos = yy > 0.5f, live = v > ninf;
      mn = loss__vselect(~pos & (v > mn), v, mn);
      mp = loss__vselect(pos & live & (-v > mp), -v, mp);
    }
    for (; n < L; n++) {
      float v = sr[n] + cm[n];
      if (yr[n] > 0.5f) {
        if (v > ninf && -v > mp[0]) mp[0] = -v;
      } else if (v > mn[0]) {
        mn[0] = v;
      }
    }
  }
  float Mn = 0, Mp = 0;
  for (int k = 0; k < 8; k++) Mn = fmaxf(Mn, mn[k]), Mp = fmaxf(Mp, mp[k]);
  double Sn = exp(-(double)Mn), Sp = exp(-(double)Mp);
  for (size_t m = 0; m < L; m++) {
    if (rowmask && rowmask[m] == 0) continue;
    size_t n = tril ? m : 0;
    const float *sr = s + m * L, *yr = y + m * L;
    loss__v8f an = loss__v8f_splat(0.0f), ap = an;
    for (; n + 8 <= L; n += 8) {
      loss__v8f v = loss__v8f_load(sr + n) + loss__v8f_load(cm + n), yy = loss__v8f_load(yr + n);
      loss__v8i pos = yy > 0.5f, live = v > ninf;
      an += loss__vexp_neg(loss__vselect(pos, loss__v8f_splat(ninf), v - Mn));
      ap += loss__vexp_neg(loss__vselect(pos & live, -v - Mp, loss__v8f_splat(ninf)));
    }
    Sn += loss__vsum_d(an), Sp += loss__vsum_d(ap);
    for (; n < L; n++) {
      float v = sr[n] + cm[n];
      if (yr[n] > 0.5f)
        Sp += v > ninf ? exp((double)(-v - Mp)) : 0;
      else
        Sn += exp((double)(v - Mn));
    }
  }
  float zn = (float)(Mn + log(Sn)), zp = (float)(Mp + log(Sp));
  acc->loss += ((double)Mn + log(Sn) + (double)Mp + log(Sp)) * sc;
  loss__v8i vtp = {0}, vpred = {0}, vgold = {0};
  for (size_t m = 0; m < L; m++) {
    float *gr = g ? g + m * L : NULL;
    if (rowmask && rowmask[m] == 0) {
      if (gr) memset(gr, 0, L * sizeof *gr);
      continue;
    }
    size_t n0 = tril ? m : 0, n = n0;
    if (gr && n0) memset(gr, 0, n0 * sizeof *gr);
    const float *sr = s + m * L, *yr = y + m * L;
    for (; n + 8 <= L; n += 8) {
      loss__v8f v = loss__v8f_load(sr + n) + loss__v8f_load(cm + n), yy = loss__v8f_load(yr + n);
      loss__v8i pos = yy > 0.5f, live = v > ninf, pred = v > thr;
      if (gr) {
        loss__v8f gn = loss__vexp_neg(loss__vselect(pos, loss__v8f_splat(ninf), v - zn));
        loss__v8f gp = loss__vexp_neg(loss__vselect(pos & live, -v - zp, loss__v8f_splat(ninf)));
        loss__v8f_store(gr + n, (gn - gp) * sc);
      }
      vtp -= pred & pos, vpred -= pred, vgold -= pos & live;
      int any = 0;
      for (int k = 0; k < 8; k++) any |= pred[k];
      if (any)
        for (int k = 0; k < 8; k++)
          if (pred[k]) emit(ctx, m, n + (size_t)k, v[k]);
    }
    for (; n < L; n++) {
      float v = sr[n] + cm[n];
      int pos = yr[n] > 0.5f, live = v > ninf, pred = v > thr;
      if (gr) gr[n] = pos ? (live ? -expf(-v - zp) * sc : 0.0f) : expf(v - zn) * sc;
      acc->tp += pred && pos, acc->npred += pred, acc->ngold += pos && live;
      if (pred) emit(ctx, m, n, v);
    }
  }
  for (int k = 0; k < 8; k++) acc->tp += vtp[k], acc->npred += vpred[k], acc->ngold += vgold[k];
}

typedef struct {
  double *ents;
  size_t n, cap;
  size_t b, h;
  int oom;
} ent_list_t;

static void ent_emit(void *ctx, size_t m, size_t n, float score)
{
  ent_list_t *l = ctx;
  if (l->n == l->cap) {
    size_t nc = l->cap ? 2 * l->cap : 64;
    double *ne = realloc(l->ents, nc * 5 * sizeof *ne);
    if (!ne) {
      l->oom = 1;
      return;
    }
    l->ents = ne;
    l->cap = nc;
  }
  double *e = l->ents + 5 * l->n++;
  e[0] = (double)l->b, e[1] = (double)l->h, e[2] = (double)m, e[3] = (double)n, e[4] = score;
}

/* The float32 scores form with hard labels and MCCE; 1 when it handled the call. */
static int gp_fast(const loss_tensor_t *scores, const loss_tensor_t *labels,
                   const loss_tensor_t *spans, const loss_tensor_t *mask, int hard,
                   const loss_gp_params_t *p, const loss_opts_t *o, loss_result_t *out, int *rc)
{
  if (!hard || scores->dtype != LOSS_FLOAT32 || p->variant != LOSS_GP_MCCE ||
      (labels && labels->dtype != LOSS_FLOAT32) ||
      (mask && mask->dtype != LOSS_FLOAT32 && mask->dtype != LOSS_FLOAT64))
    return 0;
  size_t B = scores->shape[0], H = scores->shape[1], L = scores->shape[2], LL = L * L;
  float *cm = loss__scratch(out, 2 * L, sizeof *cm), *rm = cm + L, *ybuf = NULL, *g = NULL;
  ent_list_t ents = {0};
  gp_acc_t acc = {0};
  if (!cm) goto nomem;
  if (spans && !(ybuf = loss__scratch(out, LL, sizeof *ybuf))) goto nomem;
  if ((o->grad_mask & 1) && !(g = loss__grad_native(out, "scores", scores))) goto nomem;
  float sc = (float)(1.0 / (double)(B * H));
  for (size_t b = 0; b < B; b++) {
    for (size_t t = 0; t < L; t++) {
      int keep = !mask || loss__get(mask, b * L + t) != 0;
      cm[t] = keep ? 0.0f : -__builtin_inff();
      rm[t] = (float)keep;
    }
    for (size_t h = 0; h < H; h++) {
      const float *y;
      if (spans) {
        memset(ybuf, 0, LL * sizeof *ybuf);
        size_t K = spans->rank == 2 ? spans->shape[0] : 0;
        for (size_t i = 0; i < K; i++)
          if ((size_t)loss__geti(spans, 4 * i) == b && (size_t)loss__geti(spans, 4 * i + 1) == h)
            ybuf[(size_t)loss__geti(spans, 4 * i + 2) * L + (size_t)loss__geti(spans, 4 * i + 3)] =
                1;
        y = ybuf;
      } else {
        y = (const float *)labels->data + (b * H + h) * LL;
      }
      ents.b = b, ents.h = h;
      gp_block_f32((const float *)scores->data + (b * H + h) * LL, y, cm, mask ? rm : NULL,
                   p->tril_mask, L, sc, (float)p->threshold, g ? g + (b * H + h) * LL : NULL, &acc,
                   ent_emit, &ents);
    }
  }
  if (ents.oom) goto nomem;
  out->loss = acc.loss;
  size_t eshape[2] = {ents.n, 5};
  double *ed = loss__extra(out, "entities", 2, eshape);
  if (!ed) goto nomem;
  out->extras[out->n_extras - 1].kind = LOSS_OUT_ROWS;
  if (ents.n) memcpy(ed, ents.ents, ents.n * 5 * sizeof *ed);
  double prec = acc.npred > 0 ? acc.tp / acc.npred : 0,
         rec = acc.ngold > 0 ? acc.tp / acc.ngold : 0;
  double f1 = acc.npred + acc.ngold > 0 ? 2 * acc.tp / (acc.npred + acc.ngold) : 0;
  if ((*rc = loss__extra_scalar(out, "f1", f1)) ||
      (*rc = loss__extra_scalar(out, "precision", prec)) ||
      (*rc = loss__extra_scalar(out, "recall", rec)))
    goto done;
  *rc = LOSS_OK;
  goto done;
nomem:
  *rc = LOSS_ENOMEM;
done:
  free(cm);
  free(ybuf);
  free(ents.ents);
  return 1;
}

int loss_global_pointer(const loss_tensor_t *scores, const loss_tensor_t *q, const loss_tensor_t *k,
                        const loss_tensor_t *head_bias, const loss_tensor_t *labels,
                        const loss_tensor_t *spans, const loss_tensor_t *mask,
                        const loss_gp_params_t *p, const loss_opts_t *o, loss_result_t *out)
{
  gp_t g;
  memset(&g, 0, sizeof g);
  double *s = NULL, *y = NULL, *ds = NULL, *ents = NULL;
  double *gs = NULL, *gq = NULL, *gk = NULL, *gb = NULL;
  size_t n_ent = 0, cap_ent = 0;
  int rc = LOSS_OK;
  if (o->reduction != LOSS_REDUCTION_DEFAULT)
    rc = loss__fail(out, LOSS_EREDUCTION, "reduction", "this loss is a scalar: no reduction");
  if (!rc && !isfinite(p->threshold))
    rc = loss__fail(out, LOSS_EPARAM, "params.threshold", "threshold must be finite");
  if (!rc) rc = gp_check(scores, q, k, head_bias, labels, spans, mask, &g, out);
  if (rc) return loss__finish(out, rc);
  if (scores && gp_fast(scores, labels, spans, mask, !labels || g.hard, p, o, out, &rc))
    return loss__finish(out, rc);
  size_t B = g.B, H = g.H, L = g.L, D = g.D, LL = L * L;
  size_t qn = g.form == 1 ? B * L * H * D : B * L * D;
  if (g.form) {
    if (!(g.q = loss__scratch(out, 2 * qn, sizeof(double)))) goto nomem;
    g.k = g.q + qn;
    loss__to_f64(q, g.q, qn);
    loss__to_f64(k, g.k, qn);
    if (p->rope)
      for (size_t r = 0; r < qn / D; r++) {
        size_t pos = g.form == 1 ? (r / H) % L : r % L;
        rope(g.q + r * D, D, pos, 1);
        rope(g.k + r * D, D, pos, 1);
      }
    if (g.form == 2) {
      if (!(g.bias = loss__scratch(out, B * L * 2 * H, sizeof(double)))) goto nomem;
      loss__to_f64(head_bias, g.bias, B * L * 2 * H);
    }
  }
  if (!(s = loss__scratch(out, 3 * LL, sizeof *s))) goto nomem;
  y = s + LL;
  ds = s + 2 * LL;
  int want[4] = {0};
  for (int i = 0; i < 4; i++) want[i] = (o->grad_mask >> i) & 1;
  if (g.form == 0 && want[0] && !(gs = loss__grad(out, "scores", scores))) goto nomem;
  if (g.form && want[1] && !(gq = loss__scratch(out, qn, sizeof *gq))) goto nomem;
  if (g.form && want[2] && !(gk = loss__scratch(out, qn, sizeof *gk))) goto nomem;
  if (g.form == 2 && want[3] && !(gb = loss__grad(out, "head_bias", head_bias))) goto nomem;

  /* First pass (BCE): the number of unmasked cells is the denominator. */
  size_t cells = 0;
  double total = 0, tp = 0, npred = 0, ngold = 0;
  for (int pass = p->variant == LOSS_GP_BCE ? 0 : 1; pass < 2; pass++)
    for (size_t b = 0; b < B; b++)
      for (size_t h = 0; h < H; h++) {
        gp_row(&g, scores, mask, p->tril_mask, b, h, s);
        if (pass == 0) {
          for (size_t c = 0; c < LL; c++) cells += s[c] != -INFINITY;
          continue;
        }
        if (labels) {
          for (size_t c = 0; c < LL; c++) y[c] = loss__get(labels, (b * H + h) * LL + c);
        } else {
          memset(y, 0, LL * sizeof *y);
          for (size_t i = 0; i < spans->shape[0]; i++)
            if ((size_t)loss__geti(spans, 4 * i) == b && (size_t)loss__geti(spans, 4 * i + 1) == h)
              y[(size_t)loss__geti(spans, 4 * i + 2) * L + (size_t)loss__geti(spans, 4 * i + 3)] =
                  1;
        }
        if (p->variant == LOSS_GP_MCCE) {
          loss__lse_t ln, lp;
          loss__lse_init(&ln);
          loss__lse_init(&lp);
          loss__lse_add(&ln, 0.0);
          loss__lse_add(&lp, 0.0);
          for (size_t c = 0; c < LL; c++) {
            if (s[c] == -INFINITY) continue;
            if (y[c] < 1) loss__lse_add(&ln, log1p(-y[c]) + s[c]);
            if (y[c] > 0) loss__lse_add(&lp, log(y[c]) - s[c]);
          }
          double zn = loss__lse_get(&ln), zp = loss__lse_get(&lp), sc = 1.0 / (double)(B * H);
          total += (zn + zp) * sc;
          for (size_t c = 0; c < LL; c++)
            ds[c] = s[c] == -INFINITY ? 0
                                      : sc * ((y[c] < 1 ? exp(log1p(-y[c]) + s[c] - zn) : 0) -
                                              (y[c] > 0 ? exp(log(y[c]) - s[c] - zp) : 0));
        } else {
          double sc = 1.0 / (double)cells;
          for (size_t c = 0; c < LL; c++) {
            if (s[c] == -INFINITY) {
              ds[c] = 0;
              continue;
            }
            total += sc * ((1 - y[c]) * s[c] - loss__log_sigmoid(s[c]));
            ds[c] = sc * (loss__sigmoid(s[c]) - y[c]);
          }
        }
        for (size_t c = 0; c < LL; c++) {
          if (s[c] == -INFINITY) continue;
          int pred = s[c] > p->threshold;
          tp += pred * y[c];
          npred += pred;
          ngold += y[c];
          if (!pred) continue;
          if (n_ent == cap_ent) {
            size_t nc = cap_ent ? 2 * cap_ent : 64;
            double *ne = realloc(ents, nc * 5 * sizeof *ne);
            if (!ne) goto nomem;
            ents = ne;
            cap_ent = nc;
          }
          double *e = ents + 5 * n_ent++;
          e[0] = (double)b, e[1] = (double)h, e[2] = (double)(c / L), e[3] = (double)(c % L);
          e[4] = s[c];
        }
        /* Gradients of this row. */
        if (gs)
          for (size_t c = 0; c < LL; c++) gs[(b * H + h) * LL + c] = ds[c];
        if (gb)
          for (size_t m = 0; m < L; m++)
            for (size_t n = 0; n < L; n++) {
              gb[(b * L + n) * 2 * H + 2 * h] += ds[m * L + n];
              gb[(b * L + m) * 2 * H + 2 * h + 1] += ds[m * L + n];
            }
        if (gq || gk) {
          double inv = 1.0 / sqrt((double)D);
          for (size_t m = 0; m < L; m++)
            for (size_t n = 0; n < L; n++) {
              double d = ds[m * L + n] * inv;
              if (d == 0) continue;
              size_t qo = g.form == 1 ? ((b * L + m) * H + h) * D : (b * L + m) * D;
              size_t ko = g.form == 1 ? ((b * L + n) * H + h) * D : (b * L + n) * D;
              for (size_t t = 0; t < D; t++) {
                if (gq) gq[qo + t] += d * g.k[ko + t];
                if (gk) gk[ko + t] += d * g.q[qo + t];
              }
            }
        }
      }
  out->loss = p->variant == LOSS_GP_BCE && cells == 0 ? NAN : total;
  /* Gradients w.r.t. the raw q, k: back through the rotation. */
  for (int w = 0; w < 2; w++) {
    double *src = w ? gk : gq;
    if (!src) continue;
    if (p->rope)
      for (size_t r = 0; r < qn / D; r++)
        rope(src + r * D, D, g.form == 1 ? (r / H) % L : r % L, -1);
    double *dst = loss__grad(out, w ? "k" : "q", w ? k : q);
    if (!dst) goto nomem;
    memcpy(dst, src, qn * sizeof *dst);
  }
  size_t eshape[2] = {n_ent, 5};
  loss_output_t *eo = NULL;
  double *ed = loss__extra(out, "entities", 2, eshape);
  if (!ed) goto nomem;
  eo = &out->extras[out->n_extras - 1];
  eo->kind = LOSS_OUT_ROWS;
  if (n_ent) memcpy(ed, ents, n_ent * 5 * sizeof *ed);
  double prec = npred > 0 ? tp / npred : 0, rec = ngold > 0 ? tp / ngold : 0;
  double f1 = npred + ngold > 0 ? 2 * tp / (npred + ngold) : 0;
  if ((rc = loss__extra_scalar(out, "f1", f1)) ||
      (rc = loss__extra_scalar(out, "precision", prec)) ||
      (rc = loss__extra_scalar(out, "recall", rec)))
    goto cleanup;
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
  if (!out->err_msg[0]) loss__fail(out, rc, NULL, "out of memory");
cleanup:
  free(g.q);
  free(g.bias);
  free(s);
  free(gq);
  free(gk);
  free(ents);
  return loss__finish(out, rc);
}

int loss_sparse_mcce(const loss_tensor_t *scores, const loss_tensor_t *positives, int mask_zero,
                     const loss_opts_t *o, loss_result_t *out)
{
  loss_reduction_t red;
  size_t ns = 0, np = 0;
  double *ls = NULL, *g = NULL;
  unsigned char *pos = NULL;
  int rc = loss__require(scores, "inputs.scores", out);
  if (!rc) rc = loss__require(positives, "inputs.positives", out);
  if (!rc) rc = loss__check_float(scores, "inputs.scores", out);
  if (!rc) rc = loss__numel(scores, "inputs.scores", out, &ns);
  if (!rc) rc = loss__check_finite(scores, 0, "inputs.scores", out);
  if (!rc) rc = loss__check_int(positives, "inputs.positives", out);
  if (!rc) rc = loss__numel(positives, "inputs.positives", out, &np);
  if (!rc && (scores->rank < 1 || positives->rank != scores->rank))
    rc = loss__fail(out, LOSS_ESHAPE, "inputs.positives",
                    "positives must be [..., P] with the "
                    "leading dimensions of scores [..., C]");
  for (int d = 0; !rc && d < scores->rank - 1; d++)
    if (scores->shape[d] != positives->shape[d])
      rc = loss__fail(out, LOSS_ESHAPE, "inputs.positives",
                      "positives' leading dimensions differ from scores'");
  if (!rc) rc = loss__reduction(o, 7, LOSS_REDUCTION_MEAN, &red, out);
  if (rc) return loss__finish(out, rc);
  size_t C = scores->shape[scores->rank - 1], P = positives->shape[positives->rank - 1];
  size_t R = ns / C;
  if ((rc = loss__check_grad_output(o, scores->rank - 1, scores->shape, out))) goto cleanup;
  if (!(pos = loss__scratch(out, C, 1))) goto nomem;
  if (!(ls = red == LOSS_REDUCTION_NONE ? loss__losses(out, scores->rank - 1, scores->shape)
                                        : loss__scratch(out, R, sizeof *ls)))
    goto nomem;
  if ((o->grad_mask & 1) && !(g = loss__grad(out, "scores", scores))) goto nomem;
  double sc = red == LOSS_REDUCTION_MEAN ? 1.0 / (double)R : 1.0;
  for (size_t r = 0; r < R; r++) {
    memset(pos, 0, C);
    for (size_t j = 0; j < P; j++) {
      int64_t c = loss__geti(positives, r * P + j);
      if (c < 0 || (uint64_t)c >= C) {
        rc = loss__fail(out, LOSS_ERANGE, "inputs.positives",
                        "positive %lld is out of bounds "
                        "for %zu classes",
                        (long long)c, C);
        goto cleanup;
      }
      if (mask_zero && c == 0) continue;
      if (pos[c]) {
        rc = loss__fail(out, LOSS_EDUP, "inputs.positives", "row %zu repeats positive %lld", r,
                        (long long)c);
        goto cleanup;
      }
      pos[c] = 1;
    }
    /* log(1 + sum_neg e^s) straight from the negatives: exact, no log(1 - e^x) cancellation. */
    loss__lse_t ln, lp;
    loss__lse_init(&ln);
    loss__lse_init(&lp);
    loss__lse_add(&ln, 0.0);
    loss__lse_add(&lp, 0.0);
    const size_t c0 = mask_zero ? 1 : 0;
    for (size_t c = c0; c < C; c++) {
      double v = loss__get(scores, r * C + c);
      if (pos[c])
        loss__lse_add(&lp, -v);
      else
        loss__lse_add(&ln, v);
    }
    double zn = loss__lse_get(&ln), zp = loss__lse_get(&lp);
    ls[r] = zn + zp;
    if (!g) continue;
    double s = o->grad_output ? loss__get(o->grad_output, r) : sc;
    for (size_t c = c0; c < C; c++) {
      double v = loss__get(scores, r * C + c);
      g[r * C + c] = s * (pos[c] ? -exp(-v - zp) : exp(v - zn));
    }
  }
  out->loss = red == LOSS_REDUCTION_NONE ? NAN : loss__reduce(ls, R, red, (double)R);
  goto cleanup;
nomem:
  rc = LOSS_ENOMEM;
cleanup:
  if (red != LOSS_REDUCTION_NONE) free(ls);
  free(pos);
  return loss__finish(out, rc);
}
