/* mt_method.c - multitask weighting: configuration, state, one update per completed step.
 *
 * Each step answers the weights used for that step, then updates the state for the next one:
 *   static       w = weights
 *   uncertainty  w = 1/(2e^s) (libmtl) or e^-s (kendall); one sgd/adam step on s with dtotal/ds
 *   gradnorm     ones during warm-up (accumulating L0); then w = T softmax(logits) and one
 *                optimiser step on logits with dL_grad/dlogits (lib/ loss_gradnorm_grad)
 *   dwa          ones for the first two windows; then T softmax(r / temperature), r = ratio of
 *                the last two window means */
#include "mt_method.h"

#include <math.h>
#include <string.h>

static const char *const method_names[] = {"static", "uncertainty", "gradnorm", "dwa"};

const char *mt_method_name(loss_mt_method_t m)
{
  return (unsigned)m <= LOSS_MT_DWA ? method_names[m] : "?";
}

static int get_real(json_t *v, const char *field, double lo, double hi, double *out, api_error_t *e)
{
  if (!json_is_number(v)) return api_error(e, 400, field, "%s must be a number", field);
  double x = json_number_value(v);
  if (!(x >= lo && x <= hi))
    return api_error(e, 422, field, "%s must be in [%g, %g]", field, lo, hi);
  *out = x;
  return 0;
}

static int get_int(json_t *v, const char *field, long long lo, long long hi, int64_t *out,
                   api_error_t *e)
{
  if (!json_is_integer(v)) return api_error(e, 400, field, "%s must be an integer", field);
  long long x = json_integer_value(v);
  if (x < lo || x > hi)
    return api_error(e, 422, field, "%s must be in [%lld, %lld]", field, lo, hi);
  *out = x;
  return 0;
}

static int get_enum(json_t *v, const char *field, const char *const *names, int n, int *out,
                    api_error_t *e)
{
  if (!json_is_string(v)) return api_error(e, 400, field, "%s must be a string", field);
  for (int i = 0; i < n; i++)
    if (!strcmp(json_string_value(v), names[i])) {
      *out = i;
      return 0;
    }
  return api_error(e, 422, field, "%s: unknown value \"%s\"", field, json_string_value(v));
}

/* Accept `key` for a method-specific parameter; 1 taken, 0 not this method's, -1 error. */
static int param(mt_config_t *c, const char *key, json_t *v, const char *field, api_error_t *e)
{
  static const char *const forms[] = {"libmtl", "kendall"};
  static const char *const opts[] = {"sgd", "adam"};
  int k, learned = c->method == LOSS_MT_UNCERTAINTY || c->method == LOSS_MT_GRADNORM;
  if (c->method == LOSS_MT_STATIC && !strcmp(key, "weights")) {
    if (!json_is_array(v) || json_array_size(v) != (size_t)c->T)
      return api_error(e, 422, field, "weights must be an array of %d numbers", c->T);
    for (int i = 0; i < c->T; i++)
      if (get_real(json_array_get(v, (size_t)i), field, -1e300, 1e300, &c->weights[i], e))
        return -1;
    return 1;
  }
  if (learned && !strcmp(key, "lr")) return get_real(v, field, 0, 1e6, &c->lr, e) ? -1 : 1;
  if (learned && !strcmp(key, "eps")) return get_real(v, field, 0, 1, &c->eps, e) ? -1 : 1;
  if (learned && !strcmp(key, "optimizer")) {
    if (get_enum(v, field, opts, 2, &k, e)) return -1;
    c->opt = (loss_optimizer_t)k;
    return 1;
  }
  if (learned && !strcmp(key, "betas")) {
    if (!json_is_array(v) || json_array_size(v) != 2)
      return api_error(e, 400, field, "betas must be [beta1, beta2]");
    if (get_real(json_array_get(v, 0), field, 0, 0.999999999, &c->beta1, e) ||
        get_real(json_array_get(v, 1), field, 0, 0.999999999, &c->beta2, e))
      return -1;
    return 1;
  }
  if (c->method == LOSS_MT_UNCERTAINTY && !strcmp(key, "form")) {
    if (get_enum(v, field, forms, 2, &k, e)) return -1;
    c->form = (loss_uw_form_t)k;
    return 1;
  }
  if (c->method == LOSS_MT_GRADNORM && !strcmp(key, "alpha"))
    return get_real(v, field, 0, 100, &c->alpha, e) ? -1 : 1;
  if (c->method == LOSS_MT_GRADNORM && !strcmp(key, "warmup_steps"))
    return get_int(v, field, 1, 1000000000, &c->warmup, e) ? -1 : 1;
  if (c->method == LOSS_MT_DWA && !strcmp(key, "temperature"))
    return get_real(v, field, 1e-6, 1e6, &c->temperature, e) ? -1 : 1;
  if (c->method == LOSS_MT_DWA && !strcmp(key, "window"))
    return get_int(v, field, 1, 1000000000, &c->window, e) ? -1 : 1;
  return 0;
}

int mt_config_parse(json_t *body, int lenient, mt_config_t *c, api_error_t *e)
{
  static const char *const methods[] = {"static", "uncertainty", "gradnorm", "dwa"};
  memset(c, 0, sizeof *c);
  c->world = 1;
  c->timeout_ms = 60000;
  if (!json_is_object(body)) return api_error(e, 400, NULL, "the body must be a JSON object");
  const char *key;
  json_t *v, *params = NULL;
  int has_method = 0, has_tasks = 0, k;
  json_object_foreach(body, key, v)
  {
    if (!strcmp(key, "method")) {
      if (get_enum(v, "method", methods, 4, &k, e)) return -1;
      c->method = (loss_mt_method_t)k;
      has_method = 1;
    } else if (!strcmp(key, "tasks")) {
      if (!json_is_array(v)) return api_error(e, 400, "tasks", "tasks must be an array of names");
      size_t n = json_array_size(v);
      if (n < 1 || n > MT_MAX_TASKS)
        return api_error(e, 422, "tasks", "a session has 1 to %d tasks", MT_MAX_TASKS);
      for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        if (!json_is_string(t)) return api_error(e, 400, "tasks", "tasks must be strings");
        size_t len = json_string_length(t);
        if (len < 1 || len > 64)
          return api_error(e, 422, "tasks", "task names have 1 to 64 characters");
        memcpy(c->tasks[i], json_string_value(t), len + 1);
        for (size_t j = 0; j < i; j++)
          if (!strcmp(c->tasks[j], c->tasks[i]))
            return api_error(e, 422, "tasks", "task \"%s\" is named twice", c->tasks[i]);
      }
      c->T = (int)n;
      has_tasks = 1;
    } else if (!strcmp(key, "world_size")) {
      int64_t w;
      if (get_int(v, "world_size", 1, MT_MAX_WORLD, &w, e)) return -1;
      c->world = (int)w;
    } else if (!strcmp(key, "step_timeout_ms")) {
      int64_t t;
      if (get_int(v, "step_timeout_ms", 1, 86400000, &t, e)) return -1;
      c->timeout_ms = (uint32_t)t;
    } else if (!strcmp(key, "params")) {
      params = v;
    } else if (strcmp(key, "id") != 0 && !lenient) {
      return api_error(e, 400, key, "unknown field \"%s\"", key);
    }
  }
  if (!has_method) return api_error(e, 400, "method", "method is required");
  if (!has_tasks) return api_error(e, 400, "tasks", "tasks is required");
  for (int i = 0; i < c->T; i++) c->weights[i] = 1.0;
  c->form = LOSS_UW_LIBMTL;
  c->opt = c->method == LOSS_MT_GRADNORM ? LOSS_OPT_ADAM : LOSS_OPT_SGD;
  c->lr = c->method == LOSS_MT_GRADNORM ? 0.025 : 0.01;
  c->beta1 = 0.9, c->beta2 = 0.999, c->eps = 1e-8;
  c->alpha = 1.5, c->warmup = 1;
  c->temperature = 2.0, c->window = 1;
  if (params && !json_is_object(params))
    return api_error(e, 400, "params", "params must be an object");
  char field[96];
  json_object_foreach(params, key, v)
  {
    snprintf(field, sizeof field, "params.%s", key);
    int rc = param(c, key, v, field, e);
    if (rc < 0) return -1;
    if (rc == 0)
      return api_error(e, 400, field, "method %s has no parameter \"%s\"",
                       mt_method_name(c->method), key);
  }
  return 0;
}

int mt_config_equal(const mt_config_t *a, const mt_config_t *b)
{
  if (a->method != b->method || a->T != b->T || a->world != b->world ||
      a->timeout_ms != b->timeout_ms)
    return 0;
  for (int i = 0; i < a->T; i++)
    if (strcmp(a->tasks[i], b->tasks[i]) || a->weights[i] != b->weights[i]) return 0;
  return a->form == b->form && a->opt == b->opt && a->lr == b->lr && a->beta1 == b->beta1 &&
         a->beta2 == b->beta2 && a->eps == b->eps && a->alpha == b->alpha &&
         a->warmup == b->warmup && a->temperature == b->temperature && a->window == b->window;
}

static void vec(sb_t *s, const double *v, int n)
{
  sb_puts(s, "[");
  for (int i = 0; i < n; i++) {
    if (i) sb_puts(s, ",");
    sb_double(s, v[i]);
  }
  sb_puts(s, "]");
}

void mt_config_json(sb_t *s, const mt_config_t *c)
{
  static const char *const opts[] = {"sgd", "adam"}, *const forms[] = {"libmtl", "kendall"};
  sb_printf(s, "\"method\":\"%s\",\"tasks\":[", mt_method_name(c->method));
  for (int i = 0; i < c->T; i++) {
    if (i) sb_puts(s, ",");
    sb_jstr(s, c->tasks[i]);
  }
  sb_printf(s, "],\"world_size\":%d,\"step_timeout_ms\":%u,\"params\":{", c->world, c->timeout_ms);
  switch (c->method) {
  case LOSS_MT_STATIC:
    sb_puts(s, "\"weights\":");
    vec(s, c->weights, c->T);
    break;
  case LOSS_MT_UNCERTAINTY:
  case LOSS_MT_GRADNORM:
    if (c->method == LOSS_MT_UNCERTAINTY)
      sb_printf(s, "\"form\":\"%s\",", forms[c->form]);
    else {
      sb_puts(s, "\"alpha\":");
      sb_double(s, c->alpha);
      sb_printf(s, ",\"warmup_steps\":%lld,", (long long)c->warmup);
    }
    sb_printf(s, "\"optimizer\":\"%s\",\"lr\":", opts[c->opt]);
    sb_double(s, c->lr);
    sb_puts(s, ",\"betas\":");
    double betas[2] = {c->beta1, c->beta2};
    vec(s, betas, 2);
    sb_puts(s, ",\"eps\":");
    sb_double(s, c->eps);
    break;
  case LOSS_MT_DWA:
    sb_puts(s, "\"temperature\":");
    sb_double(s, c->temperature);
    sb_printf(s, ",\"window\":%lld", (long long)c->window);
    break;
  }
  sb_puts(s, "}");
}

void mt_state_init(const mt_config_t *c, mt_state_t *st)
{
  memset(st, 0, sizeof *st);
  if (c->method == LOSS_MT_UNCERTAINTY)
    for (int i = 0; i < c->T; i++) st->theta[i] = loss_uw_init(c->form);
}

static void softmax_t(const double *x, int n, double scale, double *w)
{
  double mx = -INFINITY, s = 0;
  for (int i = 0; i < n; i++) mx = fmax(mx, x[i] * scale);
  for (int i = 0; i < n; i++) s += (w[i] = exp(x[i] * scale - mx));
  for (int i = 0; i < n; i++) w[i] = (double)n * w[i] / s;
}

void mt_weights(const mt_config_t *c, const mt_state_t *st, double *w)
{
  int T = c->T;
  switch (c->method) {
  case LOSS_MT_STATIC:
    memcpy(w, c->weights, (size_t)T * sizeof *w);
    return;
  case LOSS_MT_UNCERTAINTY:
    loss_uw_weights(c->form, st->theta, (size_t)T, w);
    return;
  case LOSS_MT_GRADNORM:
    if (st->step < c->warmup) break;
    softmax_t(st->theta, T, 1.0, w);
    return;
  case LOSS_MT_DWA:
    if (st->windows_done < 2 || st->step / c->window < 2) break;
    loss_dwa_weights(st->prev1, st->prev2, c->temperature, (size_t)T, w);
    return;
  }
  for (int i = 0; i < T; i++) w[i] = 1.0;
}

void mt_apply(const mt_config_t *c, mt_state_t *st, const double *L, const double *gn, double *w,
              double *total)
{
  int T = c->T;
  double g[MT_MAX_TASKS], wg[MT_MAX_TASKS];
  loss_optim_t opt = {c->opt, c->lr, c->beta1, c->beta2, c->eps, st->opt_steps};
  mt_weights(c, st, w);
  *total = 0;
  for (int i = 0; i < T; i++) *total += w[i] * L[i];
  switch (c->method) {
  case LOSS_MT_STATIC:
    break;
  case LOSS_MT_UNCERTAINTY:
    *total = loss_uw_total(c->form, L, st->theta, (size_t)T, g);
    loss_optim_step(&opt, st->theta, g, st->m, st->v, (size_t)T);
    st->opt_steps = opt.step;
    break;
  case LOSS_MT_GRADNORM:
    if (st->step < c->warmup) {
      for (int i = 0; i < T; i++) st->L0[i] += L[i];
      if (++st->warm_n == c->warmup)
        for (int i = 0; i < T; i++) st->L0[i] /= (double)c->warmup;
    } else {
      loss_gradnorm_grad(st->theta, L, st->L0, gn, c->alpha, (size_t)T, wg, g);
      loss_optim_step(&opt, st->theta, g, st->m, st->v, (size_t)T);
      st->opt_steps = opt.step;
    }
    break;
  case LOSS_MT_DWA:
    for (int i = 0; i < T; i++) st->win_sum[i] += L[i];
    if (++st->win_n == c->window) {
      for (int i = 0; i < T; i++) {
        st->prev2[i] = st->prev1[i];
        st->prev1[i] = st->win_sum[i] / (double)c->window;
        st->win_sum[i] = 0;
      }
      st->win_n = 0;
      st->windows_done++;
    }
    break;
  }
  st->step++;
}

void mt_state_json(sb_t *s, const mt_config_t *c, const mt_state_t *st)
{
  int T = c->T;
  double w[MT_MAX_TASKS];
  mt_weights(c, st, w);
  sb_puts(s, "{\"weights\":");
  vec(s, w, T);
  switch (c->method) {
  case LOSS_MT_STATIC:
    break;
  case LOSS_MT_UNCERTAINTY:
  case LOSS_MT_GRADNORM:
    sb_puts(s, c->method == LOSS_MT_UNCERTAINTY ? ",\"log_vars\":" : ",\"logits\":");
    vec(s, st->theta, T);
    sb_printf(s, ",\"optimizer_steps\":%lld,\"m\":", (long long)st->opt_steps);
    vec(s, st->m, T);
    sb_puts(s, ",\"v\":");
    vec(s, st->v, T);
    if (c->method == LOSS_MT_GRADNORM) {
      sb_printf(s, ",\"warmup_done\":%lld,\"initial_losses\":", (long long)st->warm_n);
      vec(s, st->L0, T);
    }
    break;
  case LOSS_MT_DWA:
    sb_printf(s, ",\"windows_done\":%lld,\"window_fill\":%lld,\"window_sum\":",
              (long long)st->windows_done, (long long)st->win_n);
    vec(s, st->win_sum, T);
    sb_puts(s, ",\"last_window_means\":");
    vec(s, st->prev1, T);
    sb_puts(s, ",\"previous_window_means\":");
    vec(s, st->prev2, T);
    break;
  }
  sb_puts(s, "}");
}

static int read_vec(json_t *j, const char *name, int T, double *out)
{
  json_t *a = json_object_get(j, name);
  if (!json_is_array(a) || json_array_size(a) != (size_t)T) return -1;
  for (int i = 0; i < T; i++) {
    json_t *x = json_array_get(a, (size_t)i);
    if (!json_is_number(x)) return -1;
    out[i] = json_number_value(x);
  }
  return 0;
}

static int read_int(json_t *j, const char *name, int64_t *out)
{
  json_t *x = json_object_get(j, name);
  if (!json_is_integer(x)) return -1;
  *out = json_integer_value(x);
  return 0;
}

int mt_state_parse(json_t *j, const mt_config_t *c, mt_state_t *st)
{
  int T = c->T;
  mt_state_init(c, st);
  switch (c->method) {
  case LOSS_MT_STATIC:
    return 0;
  case LOSS_MT_UNCERTAINTY:
  case LOSS_MT_GRADNORM:
    if (read_vec(j, c->method == LOSS_MT_UNCERTAINTY ? "log_vars" : "logits", T, st->theta) ||
        read_vec(j, "m", T, st->m) || read_vec(j, "v", T, st->v) ||
        read_int(j, "optimizer_steps", &st->opt_steps))
      return -1;
    if (c->method == LOSS_MT_GRADNORM &&
        (read_int(j, "warmup_done", &st->warm_n) || read_vec(j, "initial_losses", T, st->L0)))
      return -1;
    return 0;
  case LOSS_MT_DWA:
    return read_int(j, "windows_done", &st->windows_done) ||
                   read_int(j, "window_fill", &st->win_n) ||
                   read_vec(j, "window_sum", T, st->win_sum) ||
                   read_vec(j, "last_window_means", T, st->prev1) ||
                   read_vec(j, "previous_window_means", T, st->prev2)
               ? -1
               : 0;
  }
  return -1;
}
