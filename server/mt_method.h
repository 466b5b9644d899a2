/* mt_method.h - a multitask session's configuration and learning state, one update of its
 * weighting method (API.md §5), and their JSON forms. Pure: no I/O, no loop. */
#ifndef LOSSD_MT_METHOD_H
#define LOSSD_MT_METHOD_H

#include "codec.h"

#include <jansson.h>
#include <stdint.h>

#define MT_MAX_TASKS 64
#define MT_MAX_WORLD 4096

typedef struct {
  loss_mt_method_t method;
  int T;
  char tasks[MT_MAX_TASKS][65];
  int world;
  uint32_t timeout_ms;
  double weights[MT_MAX_TASKS]; /* static */
  loss_uw_form_t form;          /* uncertainty */
  loss_optimizer_t opt;         /* uncertainty, gradnorm */
  double lr, beta1, beta2, eps;
  double alpha; /* gradnorm */
  int64_t warmup;
  double temperature; /* dwa */
  int64_t window;
} mt_config_t;

typedef struct {
  int64_t step;               /* the next step to collect = completed steps */
  double theta[MT_MAX_TASKS]; /* log_vars (uncertainty) or logits (gradnorm) */
  double m[MT_MAX_TASKS], v[MT_MAX_TASKS];
  int64_t opt_steps;
  double L0[MT_MAX_TASKS]; /* gradnorm: initial losses (sum during warm-up, then mean) */
  int64_t warm_n;
  double win_sum[MT_MAX_TASKS]; /* dwa: the current window's sum and the last two means */
  int64_t win_n, windows_done;
  double prev1[MT_MAX_TASKS], prev2[MT_MAX_TASKS];
} mt_state_t;

/* Parse a create/join body ({"method", "tasks", "world_size", "params", "step_timeout_ms"}).
 * lenient: ignore the other keys of a session document (snapshots). */
int mt_config_parse(json_t *body, int lenient, mt_config_t *c, api_error_t *e);
/* Whether two configurations are the same session (create-or-join). */
int mt_config_equal(const mt_config_t *a, const mt_config_t *b);
void mt_config_json(sb_t *s, const mt_config_t *c);
const char *mt_method_name(loss_mt_method_t m);

void mt_state_init(const mt_config_t *c, mt_state_t *st);
/* The weights step st->step uses. */
void mt_weights(const mt_config_t *c, const mt_state_t *st, double *w);
/* Complete one step with rank-averaged losses L (and grad norms gn, gradnorm only): writes
 * the weights used and the total, updates the state for the next step. */
void mt_apply(const mt_config_t *c, mt_state_t *st, const double *L, const double *gn, double *w,
              double *total);
/* The state as JSON (for answers, GET and snapshots); mt_state_parse reads it back exactly. */
void mt_state_json(sb_t *s, const mt_config_t *c, const mt_state_t *st);
int mt_state_parse(json_t *j, const mt_config_t *c, mt_state_t *st);

#endif
