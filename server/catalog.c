/* catalog.c - the loss descriptors and the adapters from a parsed call to lib/'s entry points. */
#include "catalog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RED(x)  (1u << LOSS_REDUCTION_##x)
#define RED_MSN (RED(MEAN) | RED(SUM) | RED(NONE))

static const char *const gp_variants[] = {"mcce", "bce", NULL};
static const char *const metrics[] = {"sqeuclidean", "euclidean", "cosine", NULL};
static const char *const reg_types[] = {"kl", "entropy", NULL};
static const char *const emo_modes[] = {"emd", "1", "2", NULL};
static const char *const mt_methods[] = {"static", "uncertainty", NULL};
static const char *const uw_forms[] = {"libmtl", "kendall", NULL};

/* A scalar param wrapped as a tensor for lib entry points that take either. */
static const loss_tensor_t *in(const cat_call_t *c, int i)
{
  return c->in[i];
}

static int run_ce(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  loss_ce_params_t p = {c->par[0].t, c->par[1].i, c->par[2].r};
  return loss_cross_entropy(in(c, 0), in(c, 1), &p, &c->opts, out);
}

static int run_bce(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  loss_bce_params_t p = {c->par[0].t, c->par[1].t};
  return loss_bce_with_logits(in(c, 0), in(c, 1), &p, &c->opts, out);
}

static int run_kl(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_kl_div(in(c, 0), in(c, 1), c->par[0].b, &c->opts, out);
}

static int run_entropy(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_entropy(in(c, 0), &c->opts, out);
}

static int run_sfocal(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_sigmoid_focal(in(c, 0), in(c, 1), c->par[0].r, c->par[1].r, &c->opts, out);
}

static int run_mfocal(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  double a = c->par[0].r;
  loss_tensor_t scalar = {&a, LOSS_FLOAT64, 0, {0}};
  const loss_tensor_t *alpha = c->par[0].t ? c->par[0].t : &scalar;
  return loss_softmax_focal(in(c, 0), in(c, 1), alpha, c->par[1].r, &c->opts, out);
}

static int run_cosent(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_cosent(in(c, 0), in(c, 1), in(c, 2), in(c, 3), c->par[0].r, &c->opts, out);
}

static int run_angle(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_angle(in(c, 0), in(c, 1), in(c, 2), c->par[0].r, &c->opts, out);
}

static int run_circle(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_circle(in(c, 0), in(c, 1), c->par[0].r, c->par[1].r, &c->opts, out);
}

static int run_gp(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  loss_gp_params_t p = {c->par[0].b, c->par[1].b, (loss_gp_variant_t)c->par[2].e, c->par[3].r};
  return loss_global_pointer(in(c, 0), in(c, 1), in(c, 2), in(c, 3), in(c, 4), in(c, 5), in(c, 6),
                             &p, &c->opts, out);
}

static int run_smcce(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_sparse_mcce(in(c, 0), in(c, 1), c->par[0].b, &c->opts, out);
}

static int run_sinkhorn(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  loss_sinkhorn_params_t p = {c->par[0].r,
                              (loss_metric_t)c->par[1].e,
                              (loss_reg_type_t)c->par[2].e,
                              c->par[3].i,
                              c->par[4].r,
                              c->par[5].b};
  return loss_sinkhorn(in(c, 0), in(c, 1), in(c, 2), in(c, 3), in(c, 4), &p, &c->opts, out);
}

static int run_emo(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  return loss_emo(in(c, 0), in(c, 1), in(c, 2), in(c, 3), (loss_emo_mode_t)c->par[0].e, c->par[1].i,
                  &c->opts, out);
}

static int run_mt(const cat_desc_t *d, const cat_call_t *c, loss_result_t *out)
{
  (void)d;
  loss_mt_method_t m = c->par[0].e == 0 ? LOSS_MT_STATIC : LOSS_MT_UNCERTAINTY;
  return loss_multitask(in(c, 0), in(c, 1), m, c->par[1].t, (loss_uw_form_t)c->par[2].e, &c->opts,
                        out);
}

static const cat_desc_t catalogue[] = {
    {"cross_entropy",
     "Softmax cross-entropy with class indices or probabilities",
     "torch.nn.functional.cross_entropy",
     2,
     {{"logits", "[N, C] or [N, C, d...]", IN_FLOAT, 1, "unnormalised scores, class dim 1"},
      {"target", "int [N, d...] or probabilities like logits", IN_ANY, 0,
       "integers: class indices; reals: class probabilities"}},
     3,
     {{"weight", PAR_TENSOR, "null", NULL, "[C] class weights"},
      {"ignore_index", PAR_INT, "-100", NULL, "target value that is skipped"},
      {"label_smoothing", PAR_REAL, "0", NULL, "in [0, 1]"}},
     RED_MSN,
     "mean",
     "entropy, kl (probability targets)",
     run_ce,
     1},
    {"binary_cross_entropy_with_logits",
     "Binary cross-entropy on logits",
     "torch.nn.functional.binary_cross_entropy_with_logits",
     2,
     {{"logits", "any shape", IN_FLOAT, 1, NULL},
      {"target", "same shape, in [0, 1]", IN_FLOAT, 0, NULL}},
     2,
     {{"weight", PAR_TENSOR, "null", NULL, "broadcasts against logits"},
      {"pos_weight", PAR_TENSOR, "null", NULL, "[C] along the last dimension"}},
     RED_MSN,
     "mean",
     "",
     run_bce,
     1},
    {"kl_div",
     "Kullback-Leibler divergence with log-probability input",
     "torch.nn.functional.kl_div",
     2,
     {{"input", "log-probabilities, any shape", IN_FLOAT, 1, NULL},
      {"target", "same shape", IN_FLOAT, 1, "probabilities, or log-probabilities with log_target"}},
     1,
     {{"log_target", PAR_BOOL, "false", NULL, NULL}},
     RED_MSN | RED(BATCHMEAN),
     "mean",
     "",
     run_kl,
     1},
    {"entropy",
     "Entropy of a categorical distribution given logits",
     "torch.distributions.Categorical(logits=z).entropy()",
     1,
     {{"logits", "[N, C] or [C]", IN_FLOAT, 1, "-inf (b64 only) masks a class"}},
     0,
     {{0}},
     RED_MSN,
     "mean",
     "",
     run_entropy,
     1},
    {"sigmoid_focal",
     "Sigmoid focal loss",
     "torchvision.ops.sigmoid_focal_loss",
     2,
     {{"logits", "any shape", IN_FLOAT, 1, NULL},
      {"target", "same shape, in [0, 1]", IN_FLOAT, 0, NULL}},
     2,
     {{"alpha", PAR_REAL, "0.25", NULL, "< 0 disables"}, {"gamma", PAR_REAL, "2", NULL, ">= 0"}},
     RED_MSN,
     "none",
     "",
     run_sfocal,
     1},
    {"softmax_focal",
     "Softmax (multi-class) focal loss",
     "-alpha_y (1 - p_y)^gamma log p_y",
     2,
     {{"logits", "[N, C]", IN_FLOAT, 1, NULL}, {"target", "int [N]", IN_INT, 0, NULL}},
     2,
     {{"alpha", PAR_REAL_OR_TENSOR, "1", NULL, "scalar or [C]"},
      {"gamma", PAR_REAL, "2", NULL, ">= 0"}},
     RED_MSN,
     "mean",
     "",
     run_mfocal,
     1},
    {"cosent",
     "CoSENT ranking loss",
     "sentence_transformers.losses.CoSENTLoss",
     4,
     {{"scores", "[N]", IN_FLOAT, 1, "similarities; or give a and b"},
      {"a", "[N, D]", IN_FLOAT, 1, "first embeddings (cosine taken here)"},
      {"b", "[N, D]", IN_FLOAT, 1, "second embeddings"},
      {"labels", "[N]", IN_ANY, 0, "only their order matters"}},
     1,
     {{"scale", PAR_REAL, "20", NULL, NULL}},
     0,
     NULL,
     "",
     run_cosent,
     0},
    {"angle",
     "AnglE ranking loss",
     "sentence_transformers.losses.AnglELoss",
     3,
     {{"a", "[N, D], D even", IN_FLOAT, 1, NULL},
      {"b", "[N, D]", IN_FLOAT, 1, NULL},
      {"labels", "[N]", IN_ANY, 0, NULL}},
     1,
     {{"scale", PAR_REAL, "20", NULL, NULL}},
     0,
     NULL,
     "",
     run_angle,
     0},
    {"circle",
     "Circle loss",
     "pytorch_metric_learning.losses.CircleLoss",
     2,
     {{"embeddings", "[N, D]", IN_FLOAT, 1, NULL}, {"labels", "int [N]", IN_INT, 0, NULL}},
     2,
     {{"m", PAR_REAL, "0.4", NULL, NULL}, {"gamma", PAR_REAL, "80", NULL, "> 0"}},
     0,
     NULL,
     "",
     run_circle,
     0},
    {"global_pointer",
     "GlobalPointer span loss with decoded entities",
     "bert4keras GlobalPointer / EfficientGlobalPointer + multilabel_categorical_crossentropy",
     7,
     {{"scores", "[B, H, L, L]", IN_FLOAT, 1, "or q and k"},
      {"q", "[B, L, H, D] or [B, L, D] (efficient)", IN_FLOAT, 1, NULL},
      {"k", "like q", IN_FLOAT, 1, NULL},
      {"head_bias", "[B, L, 2H]", IN_FLOAT, 1, "Efficient GlobalPointer"},
      {"labels", "[B, H, L, L] in [0, 1]", IN_FLOAT, 0, "or spans"},
      {"spans", "int [K, 4] (b, h, start, end)", IN_INT, 0, NULL},
      {"mask", "[B, L]", IN_FLOAT, 0, "nonzero keeps a token"}},
     4,
     {{"rope", PAR_BOOL, "true", NULL, "rotary positions on q, k"},
      {"tril_mask", PAR_BOOL, "true", NULL, "mask start > end"},
      {"variant", PAR_ENUM, "\"mcce\"", gp_variants, NULL},
      {"threshold", PAR_REAL, "0", NULL, "prediction threshold"}},
     0,
     NULL,
     "entities, f1, precision, recall",
     run_gp,
     0},
    {"sparse_mcce",
     "Sparse multi-label categorical cross-entropy (exact)",
     "bert4keras sparse_multilabel_categorical_crossentropy",
     2,
     {{"scores", "[..., C]", IN_FLOAT, 1, NULL}, {"positives", "int [..., P]", IN_INT, 0, NULL}},
     1,
     {{"mask_zero", PAR_BOOL, "false", NULL, "index 0 pads positives; class 0 excluded"}},
     RED_MSN,
     "mean",
     "",
     run_smcce,
     0},
    {"sinkhorn",
     "Entropic optimal transport (log-domain Sinkhorn)",
     "ot.sinkhorn / ot.solve",
     5,
     {{"a", "[n]", IN_FLOAT, 1, NULL},
      {"b", "[m]", IN_FLOAT, 1, NULL},
      {"cost", "[n, m]", IN_FLOAT, 1, "or x and y"},
      {"x", "[n, d]", IN_FLOAT, 1, NULL},
      {"y", "[m, d]", IN_FLOAT, 1, NULL}},
     6,
     {{"reg", PAR_REAL, NULL, NULL, "required, > 0"},
      {"metric", PAR_ENUM, "\"sqeuclidean\"", metrics, "point clouds only"},
      {"reg_type", PAR_ENUM, "\"kl\"", reg_types, NULL},
      {"max_iter", PAR_INT, "1000", NULL, NULL},
      {"tol", PAR_REAL, "1e-9", NULL, NULL},
      {"return_plan", PAR_BOOL, "false", NULL, NULL}},
     0,
     NULL,
     "value_linear, iterations, converged, marginal_error, f, g, plan",
     run_sinkhorn,
     0},
    {"emo",
     "Earth Mover distance Optimisation for language models",
     "DRSY/EMO emo_patch.py",
     4,
     {{"logits", "[N, V]", IN_FLOAT, 1, NULL},
      {"target", "int [N]", IN_INT, 0, NULL},
      {"embeddings", "[V, d]", IN_FLOAT, 0, "cost = 1 - cos; or cost"},
      {"cost", "[V, V]", IN_FLOAT, 0, "C[predicted, target]"}},
     2,
     {{"mode", PAR_ENUM, "\"1\"", emo_modes, NULL}, {"ignore_index", PAR_INT, "-100", NULL, NULL}},
     0,
     NULL,
     "emd, mle",
     run_emo,
     0},
    {"multitask",
     "Static or uncertainty-weighted sum of task losses",
     "LibMTL UW / Kendall et al.",
     2,
     {{"losses", "[T]", IN_FLOAT, 1, NULL}, {"log_vars", "[T]", IN_FLOAT, 1, "uncertainty only"}},
     3,
     {{"method", PAR_ENUM, "\"static\"", mt_methods, NULL},
      {"weights", PAR_TENSOR, "null", NULL, "[T], static only"},
      {"form", PAR_ENUM, "\"libmtl\"", uw_forms, NULL}},
     0,
     NULL,
     "weights",
     run_mt,
     1},
};

const cat_desc_t *cat_all(int *n)
{
  *n = (int)(sizeof catalogue / sizeof catalogue[0]);
  return catalogue;
}

const cat_desc_t *cat_find(const char *name)
{
  int n;
  const cat_desc_t *all = cat_all(&n);
  for (int i = 0; i < n; i++)
    if (strcmp(all[i].name, name) == 0) return &all[i];
  return NULL;
}

int cat_input_index(const cat_desc_t *d, const char *name)
{
  for (int i = 0; i < d->n_in; i++)
    if (strcmp(d->in[i].name, name) == 0) return i;
  return -1;
}

int cat_param_index(const cat_desc_t *d, const char *name)
{
  for (int i = 0; i < d->n_par; i++)
    if (strcmp(d->par[i].name, name) == 0) return i;
  return -1;
}

void cat_apply_defaults(const cat_desc_t *d, cat_call_t *c)
{
  for (int i = 0; i < d->n_par; i++) {
    const cat_param_t *p = &d->par[i];
    cat_value_t *v = &c->par[i];
    if (v->set) continue;
    if (!p->dflt) { /* required and absent: NaN makes the kernel refuse it */
      v->r = NAN;
      continue;
    }
    switch (p->type) {
    case PAR_BOOL:
      v->b = strcmp(p->dflt, "true") == 0;
      break;
    case PAR_INT:
      v->i = strtoll(p->dflt, NULL, 10);
      break;
    case PAR_REAL:
    case PAR_REAL_OR_TENSOR:
      v->r = strtod(p->dflt, NULL);
      break;
    case PAR_ENUM:
      for (int k = 0; p->values[k]; k++) {
        size_t len = strlen(p->values[k]);
        if (strncmp(p->dflt + 1, p->values[k], len) == 0 && p->dflt[len + 1] == '"') v->e = k;
      }
      break;
    case PAR_TENSOR:
      v->t = NULL;
      break;
    }
  }
}

int cat_reduction_parse(const char *s)
{
  static const char *const names[] = {"mean", "sum", "none", "batchmean"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

const char *cat_reduction_name(loss_reduction_t r)
{
  static const char *const names[] = {"mean", "sum", "none", "batchmean", "default"};
  return (unsigned)r <= LOSS_REDUCTION_DEFAULT ? names[r] : "?";
}
