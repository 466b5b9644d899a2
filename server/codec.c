/* codec.c - tensors from JSON and base64 into contiguous buffers, checked before allocation,
 * and the response text. Every check on the request's structure happens here, once. */
#include "codec.h"

#include "dtoa.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

int api_error(api_error_t *e, int status, const char *field, const char *fmt, ...)
{
  e->status = status;
  e->code = api_code_for(status);
  snprintf(e->field, sizeof e->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  return -1;
}

const char *api_code_for(int status)
{
  switch (status) {
  case 400:
    return "bad_request";
  case 401:
    return "unauthorized";
  case 404:
    return "not_found";
  case 405:
    return "method_not_allowed";
  case 409:
    return "conflict";
  case 413:
    return "too_large";
  case 415:
    return "unsupported_media_type";
  case 422:
    return "invalid_input";
  case 503:
    return "unavailable";
  case 504:
    return "timeout";
  default:
    return "internal";
  }
}

void api_error_from_loss(int status, const loss_result_t *r, api_error_t *e)
{
  int http;
  switch (status) {
  case LOSS_EMISSING:
  case LOSS_ECONFLICT:
    http = 400;
    break;
  case LOSS_ETOOBIG:
    http = 413;
    break;
  case LOSS_ENOMEM:
    http = 500;
    break;
  default:
    http = 422;
  }
  api_error(e, http, r->err_field, "%s", r->err_msg[0] ? r->err_msg : loss_strerror(status));
}

/* ---- string builder ------------------------------------------------------------------------ */

void sb_init(sb_t *s)
{
  memset(s, 0, sizeof *s);
}

void sb_init_in(sb_t *s, char *buf, size_t cap)
{
  sb_init(s);
  s->p = buf;
  s->cap = cap;
  s->borrowed = 1;
  buf[0] = 0;
}

void sb_free(sb_t *s)
{
  if (!s->borrowed) free(s->p);
  sb_init(s);
}

static int sb_reserve(sb_t *s, size_t extra)
{
  if (s->oom) return -1;
  if (s->len + extra + 1 <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 256;
  while (cap < s->len + extra + 1) cap *= 2;
  char *p = s->borrowed ? malloc(cap) : realloc(s->p, cap);
  if (!p) {
    s->oom = 1;
    return -1;
  }
  if (s->borrowed) memcpy(p, s->p, s->len + 1), s->borrowed = 0;
  s->p = p;
  s->cap = cap;
  return 0;
}

void sb_putn(sb_t *s, const char *p, size_t n)
{
  if (sb_reserve(s, n)) return;
  memcpy(s->p + s->len, p, n);
  s->len += n;
  s->p[s->len] = 0;
}

void sb_puts(sb_t *s, const char *p)
{
  sb_putn(s, p, strlen(p));
}

void sb_printf(sb_t *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || sb_reserve(s, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s->len += (size_t)n;
}

/* The JSON text of one real at p, or null when it is not finite: at most REAL_TEXT characters
 * ("-0.0000012345678901234567"), though the formatter may touch 32 bytes from p. Returns its
 * length. */
#define REAL_TEXT 25
static int double_text(double v, char *p)
{
  if (isfinite(v)) return lossd_dtoa(v, p); /* shortest text that reads back as v */
  memcpy(p, "null", 4);
  return 4;
}

static int float_text(float v, char *p)
{
  if (isfinite(v)) return lossd_ftoa(v, p);
  memcpy(p, "null", 4);
  return 4;
}

void sb_double(sb_t *s, double v)
{
  if (sb_reserve(s, 32)) return;
  s->len += (size_t)double_text(v, s->p + s->len);
}

/* A decimal integer without printf (shapes and integer tensors are written per element). */
static void sb_int(sb_t *s, long long v)
{
  if (sb_reserve(s, 24)) return;
  char t[24], *p = s->p + s->len;
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  int n = 0;
  do t[n++] = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0) *p++ = '-';
  while (n) *p++ = t[--n];
  *p = 0;
  s->len = (size_t)(p - s->p);
}

static void sb_float(sb_t *s, float v)
{
  if (sb_reserve(s, 32)) return;
  s->len += (size_t)float_text(v, s->p + s->len);
}

void sb_jstr(sb_t *s, const char *str)
{
  sb_putn(s, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char esc[2] = {'\\', (char)*p};
      sb_putn(s, esc, 2);
    } else if (*p < 0x20) {
      sb_printf(s, "\\u%04x", *p);
    } else {
      sb_putn(s, (const char *)p, 1);
    }
  }
  sb_putn(s, "\"", 1);
}

char *sb_take(sb_t *s, size_t *len)
{
  char *p = s->p;
  if (len) *len = s->len;
  sb_init(s);
  return p;
}

void b64_encode(sb_t *s, const unsigned char *p, size_t n)
{
  size_t len = (n + 2) / 3 * 4;
  if (sb_reserve(s, len)) return;
  b64_encode_raw(p, n, s->p + s->len);
  s->len += len;
  s->p[s->len] = 0;
}

/* ---- tensors ------------------------------------------------------------------------------- */

static int dtype_parse(const char *s, loss_dtype_t *d)
{
  static const char *const names[] = {"float32", "float64", "int32", "int64"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) {
      *d = (loss_dtype_t)i;
      return 0;
    }
  return -1;
}

/* Element count of a shape with the limit applied before anything is allocated. */
static int check_count(const size_t *shape, int rank, const char *field, const codec_limits_t *lim,
                       size_t *n, api_error_t *e)
{
  size_t c = 1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] && c > lim->max_elems / shape[i])
      return api_error(e, 413, field, "%s has more than %zu elements", field, lim->max_elems);
    c *= shape[i];
  }
  if (c > lim->max_elems)
    return api_error(e, 413, field, "%s has more than %zu elements", field, lim->max_elems);
  *n = c;
  return 0;
}

/* Store JSON number v at index i of t's buffer; kind decides what is accepted. */
static int put_number(json_t *v, loss_tensor_t *t, void *buf, size_t i, const char *field,
                      api_error_t *e)
{
  if (!json_is_number(v)) return api_error(e, 400, field, "%s must hold numbers only", field);
  if (t->dtype == LOSS_INT64) {
    if (!json_is_integer(v)) return api_error(e, 422, field, "%s must hold integers", field);
    ((int64_t *)buf)[i] = json_integer_value(v);
  } else {
    ((double *)buf)[i] = json_number_value(v);
  }
  return 0;
}

/* Walk a nested array of known shape, copying numbers in row-major order. */
static int walk(json_t *v, int depth, loss_tensor_t *t, void *buf, size_t *pos, const char *field,
                api_error_t *e)
{
  if (depth == t->rank) {
    if (json_is_array(v)) return api_error(e, 422, field, "%s is not rectangular", field);
    return put_number(v, t, buf, (*pos)++, field, e);
  }
  if (!json_is_array(v)) {
    if (json_is_number(v)) return api_error(e, 422, field, "%s is not rectangular", field);
    return api_error(e, 400, field, "%s must hold numbers only", field);
  }
  if (json_array_size(v) != t->shape[depth])
    return api_error(e, 422, field, "%s is not rectangular", field);
  for (size_t i = 0; i < t->shape[depth]; i++)
    if (walk(json_array_get(v, i), depth + 1, t, buf, pos, field, e)) return -1;
  return 0;
}

/* The dtype of JSON numbers for an input kind, given whether all of them are integers. */
static loss_dtype_t json_dtype(cat_in_kind_t kind, int all_int)
{
  if (kind == IN_INT) return LOSS_INT64;
  if (kind == IN_FLOAT) return LOSS_FLOAT64;
  return all_int ? LOSS_INT64 : LOSS_FLOAT64;
}

static int all_integers(json_t *v, int depth)
{
  if (json_is_array(v)) {
    if (depth > MAX_DEPTH) return 1;
    for (size_t i = 0; i < json_array_size(v); i++)
      if (!all_integers(json_array_get(v, i), depth + 1)) return 0;
    return 1;
  }
  return !json_is_real(v);
}

/* prefix and key in field (FIELD_MAX bytes), cut as snprintf would cut it: what snprintf did for
 * every input of every request, without parsing a format. */
#define FIELD_MAX 96
static void field_name(char *field, const char *prefix, const char *key)
{
  size_t a = strlen(prefix), b = strnlen(key, FIELD_MAX - 1 - a);
  memcpy(field, prefix, a);
  memcpy(field + a, key, b);
  field[a + b] = 0;
}

/* The lifted numeric array that v ("\u0001<nonce>k") stands for, if it is one of this body's,
 * not yet taken. */
static lift_blob_t *lifted(json_t *v, const codec_limits_t *lim)
{
  return lim->blobs && json_is_string(v) ? lift_numbers_ref(lim->blobs, json_string_value(v))
                                         : NULL;
}

/* Give a lifted array to t in dtype want (int64 or float64), as the nested walk would. */
static int take_lifted(lift_blob_t *b, loss_dtype_t want, loss_tensor_t *t, void **owned,
                       const char *field, api_error_t *e)
{
  if (want == LOSS_INT64 && !b->all_int)
    return api_error(e, 422, field, "%s must hold integers", field);
  if (want == LOSS_FLOAT64 && b->all_int) {
    int64_t *iv = b->data;
    double *dv = b->data;
    for (size_t i = 0; i < b->count; i++) dv[i] = (double)iv[i];
  }
  t->dtype = want;
  t->data = *owned = b->data;
  b->data = NULL;
  return 0;
}

static int parse_shape(json_t *s, size_t *shape, int *rank, const char *field, api_error_t *e)
{
  if (!json_is_array(s)) return api_error(e, 400, field, "%s.shape must be an array", field);
  if (json_array_size(s) > LOSS_MAX_RANK)
    return api_error(e, 422, field, "%s has more than %d dimensions", field, LOSS_MAX_RANK);
  *rank = (int)json_array_size(s);
  for (int i = 0; i < *rank; i++) {
    json_t *d = json_array_get(s, (size_t)i);
    if (!json_is_integer(d)) return api_error(e, 400, field, "%s.shape must hold integers", field);
    if (json_integer_value(d) < 0)
      return api_error(e, 422, field, "%s.shape must not be negative", field);
    shape[i] = (size_t)json_integer_value(d);
  }
  return 0;
}

static int tensor_object(json_t *v, cat_in_kind_t kind, const char *field,
                         const codec_limits_t *lim, loss_tensor_t *t, void **owned, api_error_t *e)
{
  const char *key;
  json_t *val, *shape = NULL, *data = NULL, *b64 = NULL, *dtype = NULL;
  json_object_foreach(v, key, val)
  {
    if (strcmp(key, "shape") == 0)
      shape = val;
    else if (strcmp(key, "data") == 0)
      data = val;
    else if (strcmp(key, "b64") == 0)
      b64 = val;
    else if (strcmp(key, "dtype") == 0)
      dtype = val;
    else
      return api_error(e, 400, field, "%s has an unknown key \"%s\"", field, key);
  }
  if (!shape) return api_error(e, 400, field, "%s needs a shape", field);
  if (!!data == !!b64)
    return api_error(e, 400, field, "%s needs exactly one of data and b64", field);
  if (parse_shape(shape, t->shape, &t->rank, field, e)) return -1;
  size_t n;
  if (check_count(t->shape, t->rank, field, lim, &n, e)) return -1;
  int have_dtype = 0;
  if (dtype) {
    if (!json_is_string(dtype) || dtype_parse(json_string_value(dtype), &t->dtype))
      return api_error(e, 400, field, "%s.dtype must be float32, float64, int32 or int64", field);
    have_dtype = 1;
  }
  if (b64) {
    if (!have_dtype) return api_error(e, 400, field, "%s: b64 needs a dtype", field);
    if (!json_is_string(b64)) return api_error(e, 400, field, "%s.b64 must be a string", field);
    size_t len = json_string_length(b64), bytes = n * loss_dtype_size(t->dtype);
    const char *txt = json_string_value(b64);
    lift_blob_t *bl = lift_b64_ref(lim->blobs, txt);
    if (bl) { /* lifted out of the body before parsing */
      if (bl->bytes < 0) return api_error(e, 400, field, "%s.b64 is not valid base64", field);
      if ((size_t)bl->bytes != bytes)
        return api_error(e, 422, field, "%s.b64 holds %ld bytes, shape needs %zu", field, bl->bytes,
                         bytes);
      *owned = bl->data; /* the tensor takes the decoded buffer */
      bl->data = NULL;
      t->data = *owned;
      return 0;
    }
    long have = b64_decoded_size(txt, len);
    if (have < 0) return api_error(e, 400, field, "%s.b64 is not valid base64", field);
    if (!(*owned = malloc(have ? (size_t)have : 1)))
      return api_error(e, 500, field, "out of memory");
    if (b64_decode(txt, len, *owned, (size_t)have) < 0)
      return api_error(e, 400, field, "%s.b64 is not valid base64", field);
    if ((size_t)have != bytes)
      return api_error(e, 422, field, "%s.b64 holds %ld bytes, shape needs %zu", field, have,
                       bytes);
    t->data = *owned;
    return 0;
  }
  lift_blob_t *bl = lifted(data, lim);
  if (bl) {
    if (bl->rank != 1)
      return api_error(e, 400, field, "%s.data must be a flat array of numbers", field);
    if (bl->count != n)
      return api_error(e, 422, field, "%s.data has %zu values, shape needs %zu", field, bl->count,
                       n);
    loss_dtype_t jt = json_dtype(kind, bl->all_int);
    if (have_dtype)
      jt = t->dtype == LOSS_INT32 || t->dtype == LOSS_INT64 ? LOSS_INT64 : LOSS_FLOAT64;
    return take_lifted(bl, jt, t, owned, field, e);
  }
  if (!json_is_array(data)) return api_error(e, 400, field, "%s.data must be an array", field);
  for (size_t i = 0; i < json_array_size(data); i++)
    if (!json_is_number(json_array_get(data, i)))
      return api_error(e, 400, field, "%s.data must be a flat array of numbers", field);
  if (json_array_size(data) != n)
    return api_error(e, 422, field, "%s.data has %zu values, shape needs %zu", field,
                     json_array_size(data), n);
  loss_dtype_t jt = json_dtype(kind, all_integers(data, 0));
  if (have_dtype && (t->dtype == LOSS_INT32 || t->dtype == LOSS_INT64)) jt = LOSS_INT64;
  if (have_dtype && (t->dtype == LOSS_FLOAT32 || t->dtype == LOSS_FLOAT64)) jt = LOSS_FLOAT64;
  t->dtype = jt;
  if (!(*owned = malloc(n ? n * 8 : 1))) return api_error(e, 500, field, "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (put_number(json_array_get(data, i), t, *owned, i, field, e)) return -1;
  }
  t->data = *owned;
  return 0;
}

int codec_tensor(json_t *v, cat_in_kind_t kind, const char *field, const codec_limits_t *lim,
                 loss_tensor_t *t, void **owned, api_error_t *e)
{
  memset(t, 0, sizeof *t);
  *owned = NULL;
  if (json_is_number(v)) {
    t->rank = 0;
    t->dtype = json_dtype(kind, json_is_integer(v));
    if (!(*owned = malloc(8))) return api_error(e, 500, field, "out of memory");
    t->data = *owned;
    return put_number(v, t, *owned, 0, field, e);
  }
  lift_blob_t *bl = lifted(v, lim);
  if (bl) {
    size_t n;
    t->rank = bl->rank;
    memcpy(t->shape, bl->shape, sizeof t->shape);
    if (check_count(t->shape, t->rank, field, lim, &n, e)) return -1;
    return take_lifted(bl, json_dtype(kind, bl->all_int), t, owned, field, e);
  }
  if (json_is_object(v)) return tensor_object(v, kind, field, lim, t, owned, e);
  if (!json_is_array(v))
    return api_error(e, 400, field, "%s must be a number, an array or a tensor object", field);
  /* Nested arrays: the shape from the first element at each depth, then a checked walk. */
  json_t *cur = v;
  int rank = 0, depth = 0;
  for (json_t *d = v; json_is_array(d) && json_array_size(d); d = json_array_get(d, 0))
    if (++depth > MAX_DEPTH)
      return api_error(e, 400, field, "%s is nested deeper than %d", field, MAX_DEPTH);
  while (json_is_array(cur)) {
    if (rank >= LOSS_MAX_RANK)
      return api_error(e, 422, field, "%s has more than %d dimensions", field, LOSS_MAX_RANK);
    t->shape[rank++] = json_array_size(cur);
    if (json_array_size(cur) == 0) break;
    cur = json_array_get(cur, 0);
  }
  t->rank = rank;
  size_t n;
  if (check_count(t->shape, t->rank, field, lim, &n, e)) return -1;
  t->dtype = json_dtype(kind, all_integers(v, 0));
  if (!(*owned = malloc(n ? n * 8 : 1))) return api_error(e, 500, field, "out of memory");
  t->data = *owned;
  size_t pos = 0;
  return walk(v, 0, t, *owned, &pos, field, e);
}

/* ---- requests ------------------------------------------------------------------------------ */

void codec_req_free(loss_req_t *req)
{
  for (int i = 0; i < req->n_tensors; i++) free(req->bufs[i]);
  req->n_tensors = 0;
}

static loss_tensor_t *new_tensor(loss_req_t *req, json_t *v, cat_in_kind_t kind, const char *field,
                                 const codec_limits_t *lim, api_error_t *e)
{
  int i = req->n_tensors;
  if (i >= REQ_MAX_TENSORS) {
    api_error(e, 400, field, "too many tensors");
    return NULL;
  }
  int rc = codec_tensor(v, kind, field, lim, &req->tensors[i], &req->bufs[i], e);
  req->n_tensors++; /* the buffer is owned even when decoding failed half-way */
  return rc ? NULL : &req->tensors[i];
}

static int decode_params(const cat_desc_t *d, json_t *params, const codec_limits_t *lim,
                         loss_req_t *req, api_error_t *e)
{
  const char *key;
  json_t *v;
  char field[FIELD_MAX];
  if (!json_is_object(params)) return api_error(e, 400, "params", "params must be an object");
  json_object_foreach(params, key, v)
  {
    int i = cat_param_index(d, key);
    field_name(field, "params.", key);
    if (i < 0) return api_error(e, 400, field, "%s has no parameter \"%s\"", d->name, key);
    const cat_param_t *p = &d->par[i];
    cat_value_t *val = &req->call.par[i];
    if (json_is_null(v) && (p->type == PAR_TENSOR || p->type == PAR_REAL_OR_TENSOR)) continue;
    val->set = 1;
    switch (p->type) {
    case PAR_BOOL:
      if (!json_is_boolean(v)) return api_error(e, 400, field, "%s must be true or false", field);
      val->b = json_is_true(v);
      break;
    case PAR_INT:
      if (!json_is_integer(v)) return api_error(e, 400, field, "%s must be an integer", field);
      val->i = json_integer_value(v);
      break;
    case PAR_REAL:
      if (!json_is_number(v)) return api_error(e, 400, field, "%s must be a number", field);
      val->r = json_number_value(v);
      break;
    case PAR_ENUM: {
      if (!json_is_string(v) || lifted(v, lim)) /* an array, lifted or not */
        return api_error(e, 400, field, "%s must be a string", field);
      int k;
      for (k = 0; p->values[k]; k++)
        if (strcmp(p->values[k], json_string_value(v)) == 0) break;
      if (!p->values[k])
        return api_error(e, 422, field, "%s: unknown value \"%s\"", field, json_string_value(v));
      val->e = k;
      break;
    }
    case PAR_REAL_OR_TENSOR:
      if (json_is_number(v)) {
        val->r = json_number_value(v);
        break;
      }
      /* fall through */
    case PAR_TENSOR:
      if (!(val->t = new_tensor(req, v, IN_FLOAT, field, lim, e))) return -1;
      break;
    }
  }
  return 0;
}

static int decode_grad(const cat_desc_t *d, json_t *g, loss_req_t *req, api_error_t *e)
{
  uint32_t mask = 0;
  if (!g || json_is_true(g)) {
    for (int i = 0; i < d->n_in; i++)
      if (d->in[i].differentiable && req->call.in[i]) mask |= 1u << i;
  } else if (json_is_false(g)) {
    mask = 0;
  } else if (json_is_array(g)) {
    for (size_t k = 0; k < json_array_size(g); k++) {
      json_t *n = json_array_get(g, k);
      int i = json_is_string(n) ? cat_input_index(d, json_string_value(n)) : -1;
      if (i < 0 || !d->in[i].differentiable)
        return api_error(e, 400, "grad", "grad names an input without a gradient: %s",
                         json_is_string(n) ? json_string_value(n) : "(not a string)");
      if (!req->call.in[i])
        return api_error(e, 400, "grad", "grad names %s, which the request does not give",
                         json_string_value(n));
      mask |= 1u << i;
    }
  } else {
    return api_error(e, 400, "grad", "grad must be true, false or a list of input names");
  }
  req->call.opts.grad_mask = mask;
  return 0;
}

int codec_decode(const cat_desc_t *d, json_t *body, int allow_loss, const codec_limits_t *lim,
                 loss_req_t *req, api_error_t *e)
{
  memset(req, 0, sizeof *req);
  req->desc = d;
  req->call.opts = loss_opts_default();
  json_t *inputs = NULL, *params = NULL, *grad = NULL, *v;
  const char *key;
  char field[FIELD_MAX];
  if (!json_is_object(body)) return api_error(e, 400, NULL, "the body must be a JSON object");
  json_object_foreach(body, key, v)
  {
    if (strcmp(key, "inputs") == 0)
      inputs = v;
    else if (strcmp(key, "params") == 0)
      params = v;
    else if (strcmp(key, "grad") == 0)
      grad = v;
    else if (strcmp(key, "loss") == 0 && allow_loss)
      continue;
    else if (strcmp(key, "reduction") == 0) {
      if (!json_is_string(v)) return api_error(e, 400, "reduction", "reduction must be a string");
      if (!d->reductions)
        return api_error(e, 400, "reduction", "%s is a scalar loss and takes no reduction",
                         d->name);
      int r = cat_reduction_parse(json_string_value(v));
      if (r < 0 || !(d->reductions & (1u << r)))
        return api_error(e, 422, "reduction", "%s does not take reduction \"%s\"", d->name,
                         json_string_value(v));
      req->call.opts.reduction = (loss_reduction_t)r;
    } else if (strcmp(key, "encoding") == 0) {
      if (!json_is_string(v)) return api_error(e, 400, "encoding", "encoding must be a string");
      if (strcmp(json_string_value(v), "b64") == 0)
        req->b64_out = 1;
      else if (strcmp(json_string_value(v), "json") != 0)
        return api_error(e, 422, "encoding", "encoding must be \"json\" or \"b64\"");
    } else {
      return api_error(e, 400, key, "unknown field \"%s\"", key);
    }
  }
  if (!inputs) return api_error(e, 400, "inputs", "inputs is required");
  if (!json_is_object(inputs)) return api_error(e, 400, "inputs", "inputs must be an object");
  json_object_foreach(inputs, key, v)
  {
    field_name(field, "inputs.", key);
    if (json_is_null(v)) continue;
    if (strcmp(key, "grad_output") == 0) {
      if (!(req->call.opts.grad_output =
                new_tensor(req, v, IN_FLOAT, "inputs.grad_output", lim, e)))
        goto fail;
      continue;
    }
    int i = cat_input_index(d, key);
    if (i < 0) {
      api_error(e, 400, field, "%s has no input \"%s\"", d->name, key);
      goto fail;
    }
    if (!(req->call.in[i] = new_tensor(req, v, d->in[i].kind, field, lim, e))) goto fail;
  }
  if (params && decode_params(d, params, lim, req, e)) goto fail;
  cat_apply_defaults(d, &req->call);
  if (decode_grad(d, grad, req, e)) goto fail;
  return 0;
fail:
  codec_req_free(req);
  return -1;
}

/* ---- responses ----------------------------------------------------------------------------- */

static void encode_shape(sb_t *s, const loss_output_t *o)
{
  sb_puts(s, "[");
  for (int i = 0; i < o->rank; i++) {
    if (i) sb_putn(s, ",", 1);
    sb_int(s, (long long)o->shape[i]);
  }
  sb_puts(s, "]");
}

static size_t out_numel(const loss_output_t *o)
{
  size_t n = 1;
  for (int i = 0; i < o->rank; i++) n *= o->shape[i];
  return n;
}

static void encode_value(sb_t *s, const loss_output_t *o, size_t i)
{
  switch (o->dtype) {
  case LOSS_FLOAT32:
    sb_float(s, ((const float *)o->data)[i]);
    break;
  case LOSS_FLOAT64:
    sb_double(s, ((const double *)o->data)[i]);
    break;
  case LOSS_INT32:
    sb_int(s, ((const int32_t *)o->data)[i]);
    break;
  case LOSS_INT64:
    sb_int(s, (long long)((const int64_t *)o->data)[i]);
    break;
  }
}

/* The n values of a float tensor, comma-separated, written in place after one reservation for
 * all of them (a value and its comma: REAL_TEXT + 1 characters, and 32 bytes of room for the
 * formatter at the last). */
static void encode_reals(sb_t *s, const loss_output_t *o, size_t n)
{
  if (n > (SIZE_MAX - 64) / (REAL_TEXT + 1)) {
    s->oom = 1;
    return;
  }
  if (!n || sb_reserve(s, n * (REAL_TEXT + 1) + 32)) return;
  char *p = s->p + s->len;
  for (size_t i = 0; i < n; i++) {
    if (i) *p++ = ',';
    p += o->dtype == LOSS_FLOAT64 ? double_text(((const double *)o->data)[i], p)
                                  : float_text(((const float *)o->data)[i], p);
  }
  *p = 0;
  s->len = (size_t)(p - s->p);
}

void codec_encode_tensor(sb_t *s, const loss_output_t *o, int b64)
{
  size_t n = out_numel(o);
  sb_puts(s, "{\"shape\":");
  encode_shape(s, o);
  if (b64) {
    sb_printf(s, ",\"dtype\":\"%s\",\"b64\":\"", loss_dtype_name(o->dtype));
    b64_encode(s, o->data, n * loss_dtype_size(o->dtype));
    sb_puts(s, "\"}");
    return;
  }
  sb_puts(s, ",\"data\":[");
  if (o->dtype == LOSS_FLOAT64 || o->dtype == LOSS_FLOAT32) {
    encode_reals(s, o, n);
  } else {
    for (size_t i = 0; i < n; i++) {
      if (i) sb_putn(s, ",", 1);
      encode_value(s, o, i);
    }
  }
  sb_puts(s, "]}");
}

static void encode_output(sb_t *s, const loss_output_t *o, int b64)
{
  if (o->kind == LOSS_OUT_BOOL) {
    sb_puts(s, *(const int64_t *)o->data ? "true" : "false");
  } else if (o->kind == LOSS_OUT_INT) {
    sb_int(s, (long long)*(const int64_t *)o->data);
  } else if (o->kind == LOSS_OUT_ROWS) {
    /* [[b, h, start, end, score], ...]: the first four are integers. */
    const double *v = o->data;
    sb_puts(s, "[");
    for (size_t r = 0; r < o->shape[0]; r++) {
      sb_puts(s, r ? ",[" : "[");
      for (size_t c = 0; c < o->shape[1]; c++) {
        if (c) sb_putn(s, ",", 1);
        if (c + 1 < o->shape[1])
          sb_int(s, (long long)v[r * o->shape[1] + c]);
        else
          sb_double(s, v[r * o->shape[1] + c]);
      }
      sb_puts(s, "]");
    }
    sb_puts(s, "]");
  } else if (o->rank == 0) {
    encode_value(s, o, 0);
  } else {
    codec_encode_tensor(s, o, b64);
  }
}

void codec_encode_result(sb_t *s, const loss_req_t *req, const loss_result_t *r)
{
  /* Reserve the text of large gradients at once (b64: 4/3 per byte; JSON: a value and a comma). */
  size_t need = 256;
  for (int i = 0; i < r->n_grads; i++) {
    size_t n = out_numel(&r->grads[i]), sz = loss_dtype_size(r->grads[i].dtype);
    need += req->b64_out ? n * sz / 3 * 4 + 64 : n * (REAL_TEXT + 1);
  }
  sb_reserve(s, need);
  sb_puts(s, "{\"loss\":");
  if (r->has_losses)
    codec_encode_tensor(s, &r->losses, req->b64_out);
  else
    sb_double(s, r->loss);
  sb_puts(s, ",\"grads\":{");
  for (int i = 0; i < r->n_grads; i++) {
    if (i) sb_putn(s, ",", 1);
    sb_jstr(s, r->grads[i].name);
    sb_putn(s, ":", 1);
    codec_encode_tensor(s, &r->grads[i], req->b64_out);
  }
  sb_puts(s, "},\"extra\":{");
  for (int i = 0; i < r->n_extras; i++) {
    if (i) sb_putn(s, ",", 1);
    sb_jstr(s, r->extras[i].name);
    sb_putn(s, ":", 1);
    encode_output(s, &r->extras[i], req->b64_out);
  }
  sb_puts(s, "}}");
}

void codec_encode_error(sb_t *s, const api_error_t *e)
{
  sb_puts(s, "{\"error\":{\"code\":");
  sb_jstr(s, e->code ? e->code : api_code_for(e->status));
  sb_puts(s, ",\"message\":");
  sb_jstr(s, e->message);
  if (e->field[0]) {
    sb_puts(s, ",\"field\":");
    sb_jstr(s, e->field);
  }
  sb_puts(s, "}}");
}
