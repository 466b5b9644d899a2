/* catalog.h - one descriptor per loss: its inputs, params, reductions and how to call it.
 *
 * The table drives request validation (codec.c), GET /v1/losses, the catalogue part of the
 * OpenAPI document (checked by a test) and dispatch. Adding a loss: its kernel in lib/, one
 * descriptor here, its tests. */
#ifndef LOSSD_CATALOG_H
#define LOSSD_CATALOG_H

#include "loss.h"

#include <stdint.h>

#define CAT_MAX_IN  8
#define CAT_MAX_PAR 8

/* Which JSON numbers an input accepts: floats (integers are converted), integers only, or
 * either (integers give an int64 tensor, any real gives float64: cross_entropy's target). */
typedef enum { IN_FLOAT, IN_INT, IN_ANY } cat_in_kind_t;

typedef struct {
  const char *name;
  const char *shape; /* for people: "[N, C]" */
  cat_in_kind_t kind;
  int differentiable;
  const char *doc;
} cat_input_t;

typedef enum {
  PAR_BOOL,
  PAR_INT,
  PAR_REAL,
  PAR_ENUM,
  PAR_TENSOR,
  PAR_REAL_OR_TENSOR
} cat_par_type_t;

typedef struct {
  const char *name;
  cat_par_type_t type;
  const char *dflt;          /* JSON text of the default ("null" when none, NULL if required) */
  const char *const *values; /* PAR_ENUM: NULL-terminated list */
  const char *doc;
} cat_param_t;

/* A parsed parameter value (set = given by the request). */
typedef struct {
  int set;
  int b;
  int64_t i;
  double r;
  int e; /* index into values */
  const loss_tensor_t *t;
} cat_value_t;

typedef struct {
  const loss_tensor_t *in[CAT_MAX_IN]; /* by descriptor position; NULL = absent */
  cat_value_t par[CAT_MAX_PAR];
  loss_opts_t opts;
} cat_call_t;

typedef struct cat_desc {
  const char *name;
  const char *summary;
  const char *reference;
  int n_in;
  cat_input_t in[CAT_MAX_IN];
  int n_par;
  cat_param_t par[CAT_MAX_PAR];
  unsigned reductions; /* bitmask of 1 << loss_reduction_t; 0 = scalar loss, no reduction */
  const char *default_reduction;
  const char *extras; /* for people */
  int (*run)(const struct cat_desc *d, const cat_call_t *c, loss_result_t *out);
  /* 1: the work grows with the body (every pass and output is about as large as an input), so
   * a small request of this loss may share a pool item with others (http.c); 0: a small body
   * can still ask for much work (pairwise N x N, L x L spans, iterations), so it goes alone. */
  int batchable;
} cat_desc_t;

/* The catalogue, in a stable order. */
const cat_desc_t *cat_all(int *n);
/* The descriptor of `name`, or NULL. */
const cat_desc_t *cat_find(const char *name);
/* Position of an input or param by name, or -1. */
int cat_input_index(const cat_desc_t *d, const char *name);
int cat_param_index(const cat_desc_t *d, const char *name);
/* Fill every param that the request did not set from its default (parsed from dflt). */
void cat_apply_defaults(const cat_desc_t *d, cat_call_t *c);
/* Reduction by name; -1 if unknown. */
int cat_reduction_parse(const char *s);
const char *cat_reduction_name(loss_reduction_t r);

#endif /* LOSSD_CATALOG_H */
