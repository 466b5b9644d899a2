/* golden.c - golden-vector runner and numeric test helpers shared by the cmocka programs. */
#include "golden.h"

#include "internal.h"

#include "catalog.h"
#include "codec.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int close_enough(double a, double b, double rtol, double atol)
{
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  if (isinf(a) || isinf(b)) return a == b;
  return fabs(a - b) <= atol + rtol * fabs(b);
}

double rnd(unsigned long long *s, double lo, double hi)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return lo + (hi - lo) * (double)(*s >> 11) / 9007199254740992.0;
}

loss_tensor_t tview(const void *data, loss_dtype_t dt, int rank, const size_t *shape)
{
  loss_tensor_t t = {data, dt, rank, {0}};
  for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
  return t;
}

double fd_check(fd_fn f, void *ctx, double *x, size_t n, const double *analytic, double h,
                double rtol, double atol)
{
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double x0 = x[i];
    x[i] = x0 + h;
    double fp = f(ctx, x);
    x[i] = x0 - h;
    double fm = f(ctx, x);
    x[i] = x0;
    double fd = (fp - fm) / (2 * h);
    double r = fabs(analytic[i] - fd) / (atol + rtol * fabs(fd));
    if (r > worst) worst = r;
    if (r > 1)
      fprintf(stderr, "  fd mismatch at %zu: analytic %.12g, finite difference %.12g\n", i,
              analytic[i], fd);
  }
  return worst;
}

static double out_get(const loss_output_t *o, size_t i)
{
  loss_tensor_t t = {o->data, o->dtype, 0, {0}}; /* a view, read through the library's accessor */
  return loss__get(&t, i);
}

static double jnum(json_t *v)
{
  return json_is_null(v) ? NAN : json_number_value(v);
}

/* Compare an output with {"shape", "data"}. */
static int cmp_tensor(const char *what, const loss_output_t *o, json_t *exp, double rtol,
                      double atol)
{
  json_t *shape = json_object_get(exp, "shape"), *data = json_object_get(exp, "data");
  if ((size_t)o->rank != json_array_size(shape)) {
    fprintf(stderr, "  %s: rank %d, expected %zu\n", what, o->rank, json_array_size(shape));
    return 1;
  }
  size_t n = 1;
  for (int i = 0; i < o->rank; i++) {
    if (o->shape[i] != (size_t)json_integer_value(json_array_get(shape, (size_t)i))) {
      fprintf(stderr, "  %s: shape differs at dim %d\n", what, i);
      return 1;
    }
    n *= o->shape[i];
  }
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double a = out_get(o, i), b = jnum(json_array_get(data, i));
    if (!close_enough(a, b, rtol, atol)) {
      if (bad++ < 3) fprintf(stderr, "  %s[%zu]: got %.17g, expected %.17g\n", what, i, a, b);
    }
  }
  return bad != 0;
}

static int cmp_extra(const loss_output_t *o, json_t *exp, double rtol, double atol)
{
  if (json_is_boolean(exp)) return (*(const int64_t *)o->data != 0) != json_is_true(exp);
  if (json_is_integer(exp) && o->kind == LOSS_OUT_INT)
    return *(const int64_t *)o->data != json_integer_value(exp);
  if (json_is_number(exp) || json_is_null(exp)) {
    double a = out_get(o, 0), b = jnum(exp);
    if (!close_enough(a, b, rtol, atol)) {
      fprintf(stderr, "  extra %s: got %.17g, expected %.17g\n", o->name, a, b);
      return 1;
    }
    return 0;
  }
  if (json_is_array(exp)) { /* rows */
    size_t k = json_array_size(exp);
    if (o->rank != 2 || o->shape[0] != k) {
      fprintf(stderr, "  extra %s: %zu rows, expected %zu\n", o->name, o->rank ? o->shape[0] : 0,
              k);
      return 1;
    }
    for (size_t r = 0; r < k; r++)
      for (size_t c = 0; c < o->shape[1]; c++)
        if (!close_enough(out_get(o, r * o->shape[1] + c),
                          jnum(json_array_get(json_array_get(exp, r), c)), rtol, atol)) {
          fprintf(stderr, "  extra %s: row %zu differs\n", o->name, r);
          return 1;
        }
    return 0;
  }
  return cmp_tensor(o->name, o, exp, rtol, atol);
}

static int run_case(json_t *c)
{
  const char *name = json_string_value(json_object_get(c, "name"));
  json_t *req = json_object_get(c, "request"), *exp = json_object_get(c, "expect");
  double rtol = json_number_value(json_object_get(c, "rtol"));
  double atol = json_number_value(json_object_get(c, "atol"));
  const cat_desc_t *d = cat_find(json_string_value(json_object_get(req, "loss")));
  codec_limits_t lim = {1u << 26, NULL};
  loss_req_t lr;
  api_error_t e;
  loss_result_t r;
  int bad = 0;
  if (!d || codec_decode(d, req, 1, &lim, &lr, &e)) {
    fprintf(stderr, "golden %s: decode failed: %s\n", name, d ? e.message : "unknown loss");
    return 1;
  }
  loss_result_init(&r);
  int rc = d->run(d, &lr.call, &r);
  if (rc) {
    fprintf(stderr, "golden %s: %s (%s)\n", name, r.err_msg, loss_status_name(rc));
    codec_req_free(&lr);
    return 1;
  }
  json_t *el = json_object_get(exp, "loss");
  if (json_is_object(el)) {
    bad |= !r.has_losses || cmp_tensor("loss", &r.losses, el, rtol, atol);
  } else if (!close_enough(r.loss, jnum(el), rtol, atol)) {
    fprintf(stderr, "  loss: got %.17g, expected %.17g\n", r.loss, jnum(el));
    bad = 1;
  }
  json_t *grads = json_object_get(exp, "grads");
  if (json_object_size(grads) != (size_t)r.n_grads) {
    fprintf(stderr, "  %d gradients, expected %zu\n", r.n_grads, json_object_size(grads));
    bad = 1;
  }
  const char *key;
  json_t *v;
  json_object_foreach(grads, key, v)
  {
    const loss_output_t *o = loss_result_grad(&r, key);
    if (!o) {
      fprintf(stderr, "  gradient %s missing\n", key);
      bad = 1;
    } else {
      bad |= cmp_tensor(key, o, v, rtol, atol);
    }
  }
  json_object_foreach(json_object_get(exp, "extra"), key, v)
  {
    const loss_output_t *o = loss_result_extra(&r, key);
    if (!o) {
      fprintf(stderr, "  extra %s missing\n", key);
      bad = 1;
    } else {
      bad |= cmp_extra(o, v, rtol, atol);
    }
  }
  if (bad) fprintf(stderr, "golden %s: FAILED\n", name);
  loss_result_free(&r);
  codec_req_free(&lr);
  return bad;
}

int golden_run(const char *family, int *ran)
{
  char path[512];
  const char *dir = getenv("LOSSD_GOLDEN_DIR");
  snprintf(path, sizeof path, "%s/%s.json", dir ? dir : "tests/golden", family);
  json_error_t err;
  json_t *cases = json_load_file(path, 0, &err);
  *ran = 0;
  if (!cases) {
    fprintf(stderr, "golden: cannot read %s: %s\n", path, err.text);
    return 1;
  }
  int failed = 0;
  for (size_t i = 0; i < json_array_size(cases); i++) {
    failed += run_case(json_array_get(cases, i));
    (*ran)++;
  }
  json_decref(cases);
  return failed;
}

static double scalar_of(const loss_req_t *lr, const loss_result_t *r)
{
  if (!r->has_losses) return r->loss;
  size_t n = 1;
  for (int i = 0; i < r->losses.rank; i++) n *= r->losses.shape[i];
  const loss_tensor_t *go = lr->call.opts.grad_output;
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += ((const double *)r->losses.data)[i] * (go ? ((const double *)go->data)[i] : 1.0);
  return s;
}

int run_request(const char *json, loss_result_t *r)
{
  json_error_t jerr;
  json_t *body = json_loads(json, 0, &jerr);
  loss_result_init(r);
  if (!body) {
    fprintf(stderr, "run_request: bad JSON: %s\n", jerr.text);
    return -1000;
  }
  const cat_desc_t *d = cat_find(json_string_value(json_object_get(body, "loss")));
  codec_limits_t lim = {1u << 26, NULL};
  loss_req_t lr;
  api_error_t e;
  int rc;
  if (!d || codec_decode(d, body, 1, &lim, &lr, &e)) {
    fprintf(stderr, "run_request: %s\n", d ? e.message : "unknown loss");
    json_decref(body);
    return -1001;
  }
  rc = d->run(d, &lr.call, r);
  codec_req_free(&lr);
  json_decref(body);
  return rc;
}

double fd_request(const char *json, double h, double rtol, double atol)
{
  json_error_t jerr;
  json_t *body = json_loads(json, 0, &jerr);
  if (!body) return 1e300;
  const cat_desc_t *d = cat_find(json_string_value(json_object_get(body, "loss")));
  codec_limits_t lim = {1u << 26, NULL};
  loss_req_t lr;
  api_error_t e;
  loss_result_t r, rp;
  double worst = 1e300;
  if (!d || codec_decode(d, body, 1, &lim, &lr, &e)) {
    json_decref(body);
    return worst;
  }
  loss_result_init(&r);
  if (d->run(d, &lr.call, &r) || r.n_grads == 0) {
    fprintf(stderr, "fd_request: %s\n", r.err_msg);
    goto out;
  }
  worst = 0;
  cat_call_t probe = lr.call;
  probe.opts.grad_mask = 0;
  for (int g = 0; g < r.n_grads; g++) {
    int idx = cat_input_index(d, r.grads[g].name);
    loss_tensor_t *t = (loss_tensor_t *)lr.call.in[idx];
    if (t->dtype != LOSS_FLOAT64) continue;
    double *x = (double *)t->data;
    size_t n = loss_tensor_numel(t);
    for (size_t i = 0; i < n; i++) {
      double x0 = x[i], f[2];
      for (int s = 0; s < 2; s++) {
        x[i] = x0 + (s ? -h : h);
        loss_result_init(&rp);
        d->run(d, &probe, &rp);
        f[s] = scalar_of(&lr, &rp);
        loss_result_free(&rp);
      }
      x[i] = x0;
      double fd = (f[0] - f[1]) / (2 * h), an = out_get(&r.grads[g], i);
      double ratio = fabs(an - fd) / (atol + rtol * fabs(fd));
      if (!(ratio <= 1))
        fprintf(stderr, "  fd %s %s[%zu]: analytic %.12g, fd %.12g\n", d->name, r.grads[g].name, i,
                an, fd);
      if (!(ratio <= worst)) worst = ratio;
    }
  }
out:
  loss_result_free(&r);
  codec_req_free(&lr);
  json_decref(body);
  return worst;
}

#include <stdarg.h>

char *strf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

static char *jt_gen(unsigned long long *s, int rank, const size_t *shape, double lo, double hi,
                    int ints)
{
  sb_t b;
  sb_init(&b);
  size_t n = 1;
  sb_puts(&b, "{\"shape\":[");
  for (int i = 0; i < rank; i++) {
    sb_printf(&b, i ? ",%zu" : "%zu", shape[i]);
    n *= shape[i];
  }
  sb_puts(&b, "],\"data\":[");
  for (size_t i = 0; i < n; i++) {
    if (i) sb_puts(&b, ",");
    double v = rnd(s, lo, hi);
    if (ints)
      sb_printf(&b, "%ld", (long)floor(v));
    else
      sb_double(&b, v);
  }
  sb_puts(&b, "]}");
  return sb_take(&b, NULL);
}

char *jt_rand(unsigned long long *s, int rank, const size_t *shape, double lo, double hi)
{
  return jt_gen(s, rank, shape, lo, hi, 0);
}

char *jt_randint(unsigned long long *s, int rank, const size_t *shape, long lo, long hi)
{
  return jt_gen(s, rank, shape, (double)lo, (double)hi + 1, 1);
}
