/* loss.h - libloss: loss functions with their exact gradients, in pure C11.
 *
 * Every loss of the lossd catalogue (see README.md and ../shared/design/LOSSES.md) is one call
 * that computes the value and, on request, the gradient with respect to each differentiable
 * input, with the semantics of its reference implementation (PyTorch, sentence-transformers,
 * pytorch-metric-learning, bert4keras, POT, EMO).
 *
 * Conventions
 *  - Inputs are tensor views (loss_tensor_t): borrowed, row-major, never written.
 *  - Every entry point fills a loss_result_t the caller initialised with loss_result_init();
 *    the library allocates the outputs it returns (per-element losses, gradients, extras) and
 *    the caller releases them with loss_result_free(). Kernels may also use one scratch block
 *    per call; nothing else is allocated and nothing is kept between calls.
 *  - Functions return LOSS_OK (0) or a negative loss_status_t; on error, out->err_field names
 *    the offending argument ("inputs.logits", "params.gamma") and out->err_msg says why, and no
 *    output is left allocated.
 *  - Float inputs may be float32 or float64; accumulation is always in double. Gradients come
 *    back in the dtype of the input they belong to; per-element losses and extras are float64.
 *  - Thread safety: no global state; any number of threads may call any function at once.
 *  - No I/O, no locale use, no threads; libc and libm only.
 *
 * Gradient selection: opts->grad_mask has bit i set to request the gradient with respect to
 * the i-th input of the family, in the order the inputs are listed in each function's comment
 * (LOSS_GRAD_ALL requests all differentiable inputs). */
#ifndef LOSS_H
#define LOSS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOSS_VERSION     "0.1.0"
#define LOSS_MAX_RANK    8
#define LOSS_MAX_OUTPUTS 12
#define LOSS_GRAD_ALL    0xffffffffu

/* Status codes: one table, names and messages generated from it (see loss_strerror). */
#define LOSS_STATUS_MAP(X)                                                                         \
  X(OK, 0, "ok")                                                                                   \
  X(EINVAL, -1, "invalid argument")                                                                \
  X(ESHAPE, -2, "shapes disagree")                                                                 \
  X(EDTYPE, -3, "unsupported dtype")                                                               \
  X(ERANGE, -4, "index out of range")                                                              \
  X(ENONFINITE, -5, "non-finite input")                                                            \
  X(EPARAM, -6, "parameter out of its domain")                                                     \
  X(ENOMEM, -7, "out of memory")                                                                   \
  X(EEMPTY, -8, "empty tensor")                                                                    \
  X(EDUP, -9, "duplicate index")                                                                   \
  X(EMISSING, -10, "missing input")                                                                \
  X(ECONFLICT, -11, "conflicting inputs")                                                          \
  X(EREDUCTION, -12, "reduction not supported by this loss")                                       \
  X(ETOOBIG, -13, "size overflows")

typedef enum {
#define LOSS__STATUS_ENUM(name, value, msg) LOSS_##name = (value),
  LOSS_STATUS_MAP(LOSS__STATUS_ENUM)
#undef LOSS__STATUS_ENUM
} loss_status_t;

/* The message of a status code (static string; "unknown status" for other values). */
const char *loss_strerror(int status);
/* The name of a status code without the prefix ("ESHAPE"); static string. */
const char *loss_status_name(int status);

typedef enum { LOSS_FLOAT32, LOSS_FLOAT64, LOSS_INT32, LOSS_INT64 } loss_dtype_t;

/* Size in bytes of one element of dtype d; 0 for an unknown dtype. */
size_t loss_dtype_size(loss_dtype_t d);
/* "float32", "float64", "int32", "int64". */
const char *loss_dtype_name(loss_dtype_t d);

/* A borrowed, row-major, contiguous view. rank 0 is a scalar (one element). */
typedef struct {
  const void *data;
  loss_dtype_t dtype;
  int rank;
  size_t shape[LOSS_MAX_RANK];
} loss_tensor_t;

/* Number of elements of t (1 for rank 0); 0 if any dimension is 0 or on overflow. */
size_t loss_tensor_numel(const loss_tensor_t *t);

typedef enum {
  LOSS_REDUCTION_MEAN,
  LOSS_REDUCTION_SUM,
  LOSS_REDUCTION_NONE,
  LOSS_REDUCTION_BATCHMEAN, /* kl_div only */
  LOSS_REDUCTION_DEFAULT    /* the family's reference default */
} loss_reduction_t;

/* Options common to every entry point. A zeroed struct is not the default: use
 * loss_opts_default() (reduction DEFAULT, all gradients, no grad_output). */
typedef struct {
  loss_reduction_t reduction;
  uint32_t grad_mask;               /* bit i: gradient w.r.t. the family's i-th input */
  const loss_tensor_t *grad_output; /* reduction "none" only: upstream gradient shaped like the
                                       per-element loss; NULL means ones (autograd's default) */
} loss_opts_t;

loss_opts_t loss_opts_default(void);

/* What an output holds, for encoders. */
typedef enum {
  LOSS_OUT_TENSOR, /* data of dtype, shape; rank 0 is a scalar number */
  LOSS_OUT_ROWS,   /* float64 [K, w] meant as a list of K rows (global_pointer entities) */
  LOSS_OUT_BOOL,   /* int64 scalar 0/1 */
  LOSS_OUT_INT     /* int64 scalar */
} loss_out_kind_t;

typedef struct {
  const char *name; /* static string: the input's name for gradients, the extra's name */
  loss_out_kind_t kind;
  loss_dtype_t dtype;
  int rank;
  size_t shape[LOSS_MAX_RANK];
  void *data; /* owned by the result */
} loss_output_t;

typedef struct {
  double loss;          /* the reduced loss; NaN where the reference gives NaN */
  int has_losses;       /* reduction "none": per-element losses in `losses` */
  loss_output_t losses; /* float64, the shape of the per-element loss */
  int n_grads;
  loss_output_t grads[LOSS_MAX_OUTPUTS];
  int n_extras;
  loss_output_t extras[LOSS_MAX_OUTPUTS];
  const char *err_field; /* on error: "inputs.<name>" or "params.<name>" (static), or NULL */
  char err_msg[192];     /* on error: a sentence for a person */
  uint8_t narrow_[LOSS_MAX_OUTPUTS]; /* internal: gradient i is narrowed to float32 at the end */
} loss_result_t;

/* Prepare *r for a call (zeroes it). */
void loss_result_init(loss_result_t *r);
/* Release every output of *r and re-initialise it. Accepts NULL. */
void loss_result_free(loss_result_t *r);
/* The gradient or extra named `name`, or NULL. */
const loss_output_t *loss_result_grad(const loss_result_t *r, const char *name);
const loss_output_t *loss_result_extra(const loss_result_t *r, const char *name);

/* ---------------------------------------------------------------------------------------------
 * Softmax cross-entropy family (PyTorch semantics; LOSSES.md §1).
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  const loss_tensor_t *weight; /* [C] class weights, or NULL */
  int64_t ignore_index;        /* default -100; index targets only (prob targets: must be < 0) */
  double label_smoothing;      /* [0, 1], default 0 */
} loss_ce_params_t;
loss_ce_params_t loss_ce_params_default(void);

/* torch.nn.functional.cross_entropy. Inputs: 0 logits [N,C] or [N,C,d1..] (class dim 1),
 * 1 target: int [N,d1..] class indices, or float probabilities shaped like logits.
 * Reductions mean (default) | sum | none. Index targets, mean: divides by the sum of the
 * weights of the non-ignored samples (NaN when all are ignored, with a zero gradient).
 * Probability targets, mean: divides by the number of samples; extras `entropy` = H(t') and
 * `kl` = KL(t' || softmax z), t' the smoothed target, reduced like the loss, ignoring weight.
 * Gradient: logits (bit 0). Status: ESHAPE, ERANGE (target class), ENONFINITE, EPARAM. */
int loss_cross_entropy(const loss_tensor_t *logits, const loss_tensor_t *target,
                       const loss_ce_params_t *p, const loss_opts_t *o, loss_result_t *out);

typedef struct {
  const loss_tensor_t *weight;     /* broadcasts against logits (trailing dims), or NULL */
  const loss_tensor_t *pos_weight; /* [C] along the last dimension, or NULL */
} loss_bce_params_t;

/* torch binary_cross_entropy_with_logits: l = w[(1-y)x - (1+(pw-1)y) log sigma(x)].
 * Inputs: 0 logits (any shape), 1 target (same shape, float). mean (default) over elements |
 * sum | none. Gradient: logits. */
int loss_bce_with_logits(const loss_tensor_t *logits, const loss_tensor_t *target,
                         const loss_bce_params_t *p, const loss_opts_t *o, loss_result_t *out);

/* torch kl_div(input, target, log_target): l = xlogy(p,p) - p x (or e^t (t - x)).
 * Inputs: 0 input (log-probabilities), 1 target (same shape). mean (default, over all
 * elements) | batchmean (sum / size(0)) | sum | none. Gradients: input (bit 0), target (bit 1).
 * Where the reference's target gradient is not finite (p = 0 with log_target false), lossd
 * returns 0: the one-sided derivative is -inf and the target lies on the simplex boundary. */
int loss_kl_div(const loss_tensor_t *input, const loss_tensor_t *target, int log_target,
                const loss_opts_t *o, loss_result_t *out);

/* Entropy of Categorical(logits=z) per row: H = lse(z) - sum_c p_c z_c.
 * Input: 0 logits [N,C] (or [C]); -inf marks masked classes (a row must keep one finite
 * logit). mean (default) | sum | none over rows. Gradient: logits; 0 at masked classes. */
int loss_entropy(const loss_tensor_t *logits, const loss_opts_t *o, loss_result_t *out);

/* torchvision sigmoid_focal_loss: l = alpha_t (1-p_t)^gamma ce. Inputs: 0 logits, 1 target
 * (same shape; soft targets allowed). alpha < 0 disables alpha. Default reduction none.
 * Unlike torch autograd, the gradient stays finite for gamma < 1 at saturated logits: the
 * factor (1-p_t)^(gamma-1) p(1-p) is evaluated as exp of a sum of stable logs. */
int loss_sigmoid_focal(const loss_tensor_t *logits, const loss_tensor_t *target, double alpha,
                       double gamma, const loss_opts_t *o, loss_result_t *out);

/* Softmax focal loss: l = -alpha_y (1 - p_y)^gamma log p_y. Inputs: 0 logits [N,C],
 * 1 target int [N]. alpha: NULL (1), a scalar, or [C]. mean (default, / N) | sum | none. */
int loss_softmax_focal(const loss_tensor_t *logits, const loss_tensor_t *target,
                       const loss_tensor_t *alpha, double gamma, const loss_opts_t *o,
                       loss_result_t *out);

/* ---------------------------------------------------------------------------------------------
 * Sentence-embedding ranking losses (LOSSES.md §2). Scalar losses: reduction must be DEFAULT.
 * ------------------------------------------------------------------------------------------- */

/* CoSENT: L = log(1 + sum_{y_i < y_j} exp(scale (s_i - s_j))), s = scores, or cos(a_i, b_i).
 * Inputs: 0 scores [N] | 1 a [N,D] and 2 b [N,D]; 3 labels [N] (any numeric dtype).
 * O(N log N): labels sorted, running log-sum-exp. Gradients: scores, or a and b. */
int loss_cosent(const loss_tensor_t *scores, const loss_tensor_t *a, const loss_tensor_t *b,
                const loss_tensor_t *labels, double scale, const loss_opts_t *o,
                loss_result_t *out);

/* AnglE (sentence-transformers AnglELoss): CoSENT over |cos(x,y) + (b.c - a.d)/(|x||y|)|,
 * x = [a|b], y = [c|d]. Inputs: 0 a [N,D], 1 b [N,D] (D even), 2 labels [N]. */
int loss_angle(const loss_tensor_t *a, const loss_tensor_t *b, const loss_tensor_t *labels,
               double scale, const loss_opts_t *o, loss_result_t *out);

/* Circle loss as pytorch-metric-learning CircleLoss(m, gamma): cosine similarity, alpha
 * detached, per-anchor softplus(lse_p + lse_n), average over anchors with a positive loss.
 * Inputs: 0 embeddings [N,D], 1 labels int [N]. */
int loss_circle(const loss_tensor_t *embeddings, const loss_tensor_t *labels, double m,
                double gamma, const loss_opts_t *o, loss_result_t *out);

/* ---------------------------------------------------------------------------------------------
 * GlobalPointer and multi-label categorical cross-entropy (LOSSES.md §3).
 * ------------------------------------------------------------------------------------------- */

typedef enum { LOSS_GP_MCCE, LOSS_GP_BCE } loss_gp_variant_t;

typedef struct {
  int rope;                  /* default 1: rotary position embedding on q/k forms */
  int tril_mask;             /* default 1: cells with start > end are masked */
  loss_gp_variant_t variant; /* default MCCE: mean over B*H rows; BCE: mean over unmasked cells */
  double threshold;          /* default 0: predictions are unmasked cells with score > it */
} loss_gp_params_t;
loss_gp_params_t loss_gp_params_default(void);

/* GlobalPointer. Inputs: 0 scores [B,H,L,L] | 1 q, 2 k [B,L,H,D] | 1 q, 2 k [B,L,D] with
 * 3 head_bias [B,L,2H] (Efficient GlobalPointer: s_h(m,n) = q'_m.k'_n/sqrt D + bias_2h(n) +
 * bias_2h+1(m)); 4 labels [B,H,L,L] (in [0,1]) | 5 spans int [K,4] (b,h,start,end);
 * 6 mask [B,L] (nonzero = token kept), optional. In the scores form, -inf scores are masked.
 * Extras: entities [K,5] rows (b,h,start,end,score), f1, precision, recall.
 * Gradients: scores (bit 0), q (bit 1), k (bit 2), head_bias (bit 3). */
int loss_global_pointer(const loss_tensor_t *scores, const loss_tensor_t *q, const loss_tensor_t *k,
                        const loss_tensor_t *head_bias, const loss_tensor_t *labels,
                        const loss_tensor_t *spans, const loss_tensor_t *mask,
                        const loss_gp_params_t *p, const loss_opts_t *o, loss_result_t *out);

/* Sparse MCCE (bert4keras sparse_multilabel_categorical_crossentropy), computed exactly:
 * l = log(1 + sum_pos e^-s) + log(1 + sum_neg e^s) with the negative term from a stable
 * log(1 - e^x) rather than the reference's 1e-7 clip. Inputs: 0 scores [...,C], 1 positives
 * int [...,P] (unique per row). mask_zero: index 0 pads positives and class 0 is excluded.
 * mean (default) | sum | none over rows. Gradient: scores. Status EDUP on repeated positives. */
int loss_sparse_mcce(const loss_tensor_t *scores, const loss_tensor_t *positives, int mask_zero,
                     const loss_opts_t *o, loss_result_t *out);

/* ---------------------------------------------------------------------------------------------
 * Optimal transport (LOSSES.md §5).
 * ------------------------------------------------------------------------------------------- */

typedef enum { LOSS_METRIC_SQEUCLIDEAN, LOSS_METRIC_EUCLIDEAN, LOSS_METRIC_COSINE } loss_metric_t;
typedef enum { LOSS_REG_KL, LOSS_REG_ENTROPY } loss_reg_type_t;

typedef struct {
  double reg;               /* required, > 0 */
  loss_metric_t metric;     /* point-cloud form only; default sqeuclidean */
  loss_reg_type_t reg_type; /* default KL */
  int64_t max_iter;         /* default 1000 */
  double tol;               /* default 1e-9 */
  int return_plan;          /* default 0 */
} loss_sinkhorn_params_t;
loss_sinkhorn_params_t loss_sinkhorn_params_default(void);

/* Entropic OT by log-domain Sinkhorn (as POT sinkhorn_log: v then u updates; every 10
 * iterations the L2 column-marginal error is compared to tol). Inputs: 0 a [n], 1 b [m]
 * (positive, equal sums), 2 cost [n,m] | 3 x [n,d], 4 y [m,d]. loss = <T,C> + reg KL(T||ab^T)
 * (or + reg sum T log T). Envelope gradients: cost T; a f - mean f, b g - mean g, with f, g
 * the potentials of the stated objective (for KL: reg(log u - log a)); x, y by the chain rule.
 * Extras: value_linear, iterations, converged, marginal_error, f, g, plan (on request). */
int loss_sinkhorn(const loss_tensor_t *a, const loss_tensor_t *b, const loss_tensor_t *cost,
                  const loss_tensor_t *x, const loss_tensor_t *y, const loss_sinkhorn_params_t *p,
                  const loss_opts_t *o, loss_result_t *out);

typedef enum { LOSS_EMO_EMD, LOSS_EMO_MODE1, LOSS_EMO_MODE2 } loss_emo_mode_t;

/* EMO (DRSY/EMO emo_patch.py). Inputs: 0 logits [N,V], 1 target int [N], 2 embeddings [V,d]
 * (cost 1 - cos) | 3 cost [V,V] indexed C[predicted, target]. mode EMD: plain EMD; MODE1:
 * 0.5 (mle + sg(mle/emo) emo); MODE2: sg(emo/mle) mle + emo, with emo = EMD + q_y as the
 * reference's value. Average sum l mask / (1e-15 + sum mask). Extras emd, mle. */
int loss_emo(const loss_tensor_t *logits, const loss_tensor_t *target,
             const loss_tensor_t *embeddings, const loss_tensor_t *cost, loss_emo_mode_t mode,
             int64_t ignore_index, const loss_opts_t *o, loss_result_t *out);

/* ---------------------------------------------------------------------------------------------
 * Multitask weighting (LOSSES.md §4; API.md §5): the arithmetic as pure functions.
 * ------------------------------------------------------------------------------------------- */

typedef enum {
  LOSS_MT_STATIC,
  LOSS_MT_UNCERTAINTY,
  LOSS_MT_GRADNORM,
  LOSS_MT_DWA
} loss_mt_method_t;
typedef enum { LOSS_UW_LIBMTL, LOSS_UW_KENDALL } loss_uw_form_t;
typedef enum { LOSS_OPT_SGD, LOSS_OPT_ADAM } loss_optimizer_t;

/* Stateless combination. Inputs: 0 losses [T], 1 log_vars [T] (uncertainty; default the form's
 * initial value, -0.5 for libmtl, 0 for kendall). static: total = sum w_i L_i.
 * uncertainty libmtl: sum L_i/(2e^s_i) + s_i/2; kendall: sum e^-s_i L_i + s_i.
 * Extras: weights. Gradients: losses (bit 0), log_vars (bit 1). */
int loss_multitask(const loss_tensor_t *losses, const loss_tensor_t *log_vars,
                   loss_mt_method_t method, const loss_tensor_t *weights, loss_uw_form_t form,
                   const loss_opts_t *o, loss_result_t *out);

/* Initial log variance of an uncertainty form. */
double loss_uw_init(loss_uw_form_t form);
/* Weights of an uncertainty form: 1/(2e^s) (libmtl) or e^-s (kendall). */
void loss_uw_weights(loss_uw_form_t form, const double *s, size_t t, double *w);
/* Total of the uncertainty objective and its gradient w.r.t. s (ds may be NULL). */
double loss_uw_total(loss_uw_form_t form, const double *L, const double *s, size_t t, double *ds);

/* Optimiser state for one parameter vector (sgd ignores m, v). */
typedef struct {
  loss_optimizer_t kind;
  double lr, beta1, beta2, eps;
  int64_t step; /* number of updates taken */
} loss_optim_t;
/* One in-place step on theta[t] with gradient g (torch.optim.SGD / Adam, no weight decay).
 * m and v are the Adam moments (t each), updated in place. */
void loss_optim_step(loss_optim_t *opt, double *theta, const double *g, double *m, double *v,
                     size_t t);

/* GradNorm (LibMTL GradNorm.py): weights w = T softmax(logits) and the gradient of
 * L_grad = sum |w_i n_i - sg(mean_j(w_j n_j) r_i^alpha)| w.r.t. logits, where n = grad_norms,
 * r_i = (L_i/L0_i) / mean_j(L_j/L0_j). Writes w (t) and dlogits (t); returns L_grad. */
double loss_gradnorm_grad(const double *logits, const double *L, const double *L0,
                          const double *grad_norms, double alpha, size_t t, double *w,
                          double *dlogits);

/* DWA weights: T softmax(r / temperature), r_i = prev1_i / prev2_i (window means). */
void loss_dwa_weights(const double *prev1, const double *prev2, double temperature, size_t t,
                      double *w);

/* ---------------------------------------------------------------------------------------------
 * Accuracy of the vector elementary functions inside the kernels (lib/src/vecmath.h; tested in
 * tests/lib/test_vecmath.c against libm in double). float32 exp (cross_entropy, sigmoid_focal,
 * global_pointer): relative error <= 1.5e-7 on [-87.33, 88.72], 0 below, +inf above. float32
 * log (kl_div): <= 3e-7 for every x > 0, subnormals included. float32 log1p on [0, 1]
 * (sigmoid_focal's softplus term): <= 1.5e-7. float64 exp (sinkhorn's kernel matrix): within
 * 1 ulp of libm's exp on [-708, 709], libm's exp outside.
 * ------------------------------------------------------------------------------------------- */

#ifdef __cplusplus
}
#endif
#endif /* LOSS_H */
