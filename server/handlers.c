/* handlers.c - routes: health, metrics, info, the catalogue, loss calls, batches, OpenAPI.
 * Loss and batch bodies are parsed, decoded, computed and encoded on the pool; the loop only
 * routes and answers. */
#include "http.h"
#include "multitask.h"

#include "openapi_blob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH_CALLS 1024

static void respond_text(req_t *r, int status, const char *ctype, const char *text, size_t len)
{
  char *p = malloc(len + 1);
  if (!p) return;
  memcpy(p, text, len);
  p[len] = 0;
  http_respond(r, status, ctype, p, len);
}

static void fail(req_t *r, int status, const char *fmt, const char *arg)
{
  api_error_t e;
  api_error(&e, status, NULL, fmt, arg);
  http_respond_error(r, &e);
}

static void method_not_allowed(req_t *r, const char *allow)
{
  snprintf(r->allow, sizeof r->allow, "%s", allow);
  fail(r, 405, "this route takes %s", allow);
}

/* ---- the catalogue ------------------------------------------------------------------------- */

static void encode_desc(sb_t *s, const cat_desc_t *d)
{
  static const char *const kinds[] = {"float", "int", "float or int"};
  static const char *const ptypes[] = {"bool", "int",    "number",
                                       "enum", "tensor", "number or tensor"};
  static const char *const reds[] = {"mean", "sum", "none", "batchmean"};
  sb_puts(s, "{\"name\":");
  sb_jstr(s, d->name);
  sb_puts(s, ",\"summary\":");
  sb_jstr(s, d->summary);
  sb_puts(s, ",\"reference\":");
  sb_jstr(s, d->reference);
  sb_puts(s, ",\"inputs\":[");
  for (int i = 0; i < d->n_in; i++) {
    sb_puts(s, i ? ",{\"name\":" : "{\"name\":");
    sb_jstr(s, d->in[i].name);
    sb_puts(s, ",\"shape\":");
    sb_jstr(s, d->in[i].shape);
    sb_printf(s, ",\"dtype\":\"%s\",\"differentiable\":%s", kinds[d->in[i].kind],
              d->in[i].differentiable ? "true" : "false");
    if (d->in[i].doc) {
      sb_puts(s, ",\"doc\":");
      sb_jstr(s, d->in[i].doc);
    }
    sb_puts(s, "}");
  }
  sb_puts(s, "],\"params\":[");
  for (int i = 0; i < d->n_par; i++) {
    const cat_param_t *p = &d->par[i];
    sb_puts(s, i ? ",{\"name\":" : "{\"name\":");
    sb_jstr(s, p->name);
    sb_printf(s, ",\"type\":\"%s\"", ptypes[p->type]);
    if (p->dflt)
      sb_printf(s, ",\"default\":%s", p->dflt);
    else
      sb_puts(s, ",\"required\":true");
    if (p->values) {
      sb_puts(s, ",\"values\":[");
      for (int k = 0; p->values[k]; k++) {
        if (k) sb_puts(s, ",");
        sb_jstr(s, p->values[k]);
      }
      sb_puts(s, "]");
    }
    if (p->doc) {
      sb_puts(s, ",\"doc\":");
      sb_jstr(s, p->doc);
    }
    sb_puts(s, "}");
  }
  sb_puts(s, "],\"reductions\":");
  if (!d->reductions) {
    sb_puts(s, "null");
  } else {
    sb_puts(s, "[");
    for (int k = 0, first = 1; k < 4; k++)
      if (d->reductions & (1u << k)) {
        sb_printf(s, first ? "\"%s\"" : ",\"%s\"", reds[k]);
        first = 0;
      }
    sb_printf(s, "],\"default_reduction\":\"%s\"", d->default_reduction);
  }
  sb_puts(s, ",\"grads\":[");
  for (int i = 0, first = 1; i < d->n_in; i++)
    if (d->in[i].differentiable) {
      sb_printf(s, first ? "\"%s\"" : ",\"%s\"", d->in[i].name);
      first = 0;
    }
  sb_puts(s, "],\"extras\":");
  sb_jstr(s, d->extras);
  sb_puts(s, "}");
}

static void h_losses(req_t *r)
{
  int n;
  const cat_desc_t *all = cat_all(&n);
  sb_t s;
  sb_init(&s);
  sb_puts(&s, "{\"losses\":[");
  for (int i = 0; i < n; i++) {
    if (i) sb_puts(&s, ",");
    encode_desc(&s, &all[i]);
  }
  sb_puts(&s, "]}\n");
  http_respond_json(r, 200, &s);
}

static void h_info(req_t *r)
{
  const config_t *c = &r->srv->cfg;
  int n;
  cat_all(&n);
  sb_t s;
  sb_init(&s);
  sb_printf(
      &s,
      "{\"name\":\"lossd\",\"version\":\"%s\",\"build\":{\"compiler\":\"%s\",\"date\":\"%s\"},"
      "\"threads\":%d,\"losses\":%d,\"limits\":{\"max_body\":%zu,\"max_elements\":%zu,"
      "\"max_connections\":%u,\"idle_timeout_s\":%u,\"queue_depth\":%u,"
      "\"max_inflight_bytes\":%zu,\"max_sessions\":%u},\"auth\":%s,\"state_dir\":%s}\n",
      LOSS_VERSION, __VERSION__, __DATE__, c->threads, n, c->max_body, c->max_elements,
      c->max_connections, c->idle_timeout, c->queue_depth, c->max_inflight_bytes, c->max_sessions,
      c->token[0] ? "true" : "false", c->state_dir[0] ? "true" : "false");
  http_respond_json(r, 200, &s);
}

static void h_metrics(req_t *r)
{
  server_t *srv = r->srv;
  metrics_gauges_t g = {srv->inflight, srv->queued, mt_count(srv), srv->ready};
  sb_t s;
  sb_init(&s);
  metrics_render(&s, &g);
  size_t len;
  char *p = sb_take(&s, &len);
  if (p) http_respond(r, 200, "text/plain; version=0.0.4", p, len);
}

/* ---- loss calls on the pool ---------------------------------------------------------------- */

/* One call: decode, compute, append the response or the error. Returns the HTTP status. */
static int one_call(req_t *r, const cat_desc_t *d, json_t *body, int in_batch, sb_t *out,
                    lift_blobs_t *blobs)
{
  codec_limits_t lim = {r->srv->cfg.max_elements, blobs};
  loss_req_t lr;
  api_error_t e;
  loss_result_t res;
  if (codec_decode(d, body, in_batch, &lim, &lr, &e)) {
    codec_encode_error(out, &e);
    return e.status;
  }
  loss_result_init(&res);
  int rc = d->run(d, &lr.call, &res);
  int ci = (int)(d - cat_all(&(int){0}));
  if (ci >= 0 && ci < 32) r->evals[ci]++;
  if (rc) {
    api_error_from_loss(rc, &res, &e);
    codec_encode_error(out, &e);
  } else {
    codec_encode_result(out, &lr, &res);
  }
  loss_result_free(&res);
  codec_req_free(&lr);
  return rc ? e.status : 200;
}

static json_t *parse_body(req_t *r, sb_t *out, int *status, lift_blobs_t *blobs)
{
  json_error_t je;
  blobs->count = 0, blobs->nonce[0] = 0;
  size_t len = r->body ? lift_body(r->body, r->len, r->srv->cfg.max_elements, blobs) : 0;
  json_t *body = json_loadb(r->body ? r->body : "", len, JSON_REJECT_DUPLICATES, &je);
  if (!body) {
    api_error_t e;
    api_error(&e, 400, NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text,
              je.line, je.column);
    codec_encode_error(out, &e);
    *status = 400;
  }
  return body;
}

/* The answer: in the request's own buffer when it fits. Out of memory, none: the loop thread
 * answers 500 (done_compute). */
static void take_answer(req_t *r, sb_t *out, int status)
{
  r->wstatus = status;
  if (out->oom) {
    sb_free(out);
    r->wbody = NULL;
    return;
  }
  r->wbody = sb_take(out, &r->wlen);
}

static void work_loss(req_t *r)
{
  sb_t out;
  sb_init_in(&out, r->out_buf, sizeof r->out_buf);
  int status;
  lift_blobs_t blobs;
  json_t *body = parse_body(r, &out, &status, &blobs);
  if (body) {
    status = one_call(r, r->desc, body, 0, &out, &blobs);
    json_decref(body);
  }
  lift_blobs_free(&blobs);
  sb_putn(&out, "\n", 1);
  take_answer(r, &out, status);
}

static void work_batch(req_t *r)
{
  sb_t out;
  sb_init_in(&out, r->out_buf, sizeof r->out_buf);
  int status = 200;
  lift_blobs_t blobs;
  json_t *body = parse_body(r, &out, &status, &blobs), *calls = NULL;
  api_error_t e;
  if (!body) goto done;
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v)
  {
    if (strcmp(key, "calls") != 0) {
      api_error(&e, 400, key, "unknown field \"%s\"", key);
      goto error;
    }
  }
  calls = json_object_get(body, "calls");
  if (!json_is_array(calls)) {
    api_error(&e, 400, "calls", "calls must be an array of loss calls");
    goto error;
  }
  if (json_array_size(calls) > MAX_BATCH_CALLS) {
    api_error(&e, 413, "calls", "a batch holds at most %d calls", MAX_BATCH_CALLS);
    goto error;
  }
  sb_puts(&out, "{\"results\":[");
  for (size_t i = 0; i < json_array_size(calls); i++) {
    json_t *c = json_array_get(calls, i), *name = json_object_get(c, "loss");
    if (i) sb_putn(&out, ",", 1);
    const cat_desc_t *d = json_is_string(name) ? cat_find(json_string_value(name)) : NULL;
    if (!json_is_object(c) || !json_is_string(name)) {
      api_error(&e, 400, "loss", "each call is an object with a \"loss\" name");
      codec_encode_error(&out, &e);
    } else if (!d) {
      api_error(&e, 404, "loss", "no loss named \"%s\"", json_string_value(name));
      codec_encode_error(&out, &e);
    } else {
      one_call(r, d, c, 1, &out, &blobs);
    }
  }
  sb_puts(&out, "]}");
  goto done;
error:
  codec_encode_error(&out, &e);
  status = e.status;
done:
  json_decref(body);
  lift_blobs_free(&blobs);
  sb_putn(&out, "\n", 1);
  take_answer(r, &out, status);
}

static void done_compute(req_t *r)
{
  int n;
  const cat_desc_t *all = cat_all(&n);
  for (int i = 0; i < n && i < 32; i++)
    if (r->evals[i]) metrics_loss_eval(all[i].name, r->evals[i]);
  char *body = r->wbody;
  r->wbody = NULL;
  if (!body) {
    api_error_t e;
    api_error(&e, 500, NULL, "out of memory");
    http_respond_error(r, &e);
    return;
  }
  http_respond(r, r->wstatus, "application/json", body, r->wlen);
}

static void start_compute(req_t *r, void (*fn)(req_t *))
{
  if (r->srv->draining && r->srv->quiesced) {
    fail(r, 503, "%s", "the server is shutting down");
    return;
  }
  if (http_queue_work(r, fn, done_compute)) {
    r->retry_after = 1;
    fail(r, 503, "%s", "the work queue is full; retry");
  }
}

static int json_content(req_t *r)
{
  const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
  if (!ct || !*ct) return 1;
  return !strncasecmp(ct, "application/json", 16) &&
         (ct[16] == 0 || ct[16] == ';' || ct[16] == ' ');
}

/* ---- routing ------------------------------------------------------------------------------- */

void handlers_dispatch(req_t *r)
{
  const char *p = r->path;
  method_t m = r->method == M_HEAD ? M_GET : r->method;
  if (!strcmp(p, "/healthz")) {
    r->route = ROUTE_HEALTHZ;
    if (m != M_GET) {
      method_not_allowed(r, "GET");
      return;
    }
    respond_text(r, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
  } else if (!strcmp(p, "/readyz")) {
    r->route = ROUTE_READYZ;
    if (m != M_GET) {
      method_not_allowed(r, "GET");
      return;
    }
    if (r->srv->ready) {
      respond_text(r, 200, "application/json", "{\"status\":\"ready\"}\n", 19);
    } else {
      r->retry_after = 1;
      respond_text(r, 503, "application/json", "{\"status\":\"draining\"}\n", 22);
    }
  } else if (!strcmp(p, "/metrics")) {
    r->route = ROUTE_METRICS;
    if (m != M_GET) {
      method_not_allowed(r, "GET");
      return;
    }
    h_metrics(r);
  } else if (!strcmp(p, "/v1/info")) {
    r->route = ROUTE_INFO;
    if (m != M_GET) {
      method_not_allowed(r, "GET");
      return;
    }
    h_info(r);
  } else if (!strcmp(p, "/openapi.yaml")) {
    r->route = ROUTE_OPENAPI;
    if (m != M_GET) {
      method_not_allowed(r, "GET");
      return;
    }
    respond_text(r, 200, "application/yaml", (const char *)lossd_openapi_yaml,
                 sizeof lossd_openapi_yaml - 1);
  } else if (!strcmp(p, "/v1/losses") || !strcmp(p, "/v1/losses/")) {
    r->route = ROUTE_LOSSES;
    if (m != M_GET) {
      method_not_allowed(r, "GET");
      return;
    }
    h_losses(r);
  } else if (!strncmp(p, "/v1/losses/", 11)) {
    r->route = ROUTE_LOSS;
    r->desc = cat_find(p + 11);
    if (!r->desc) {
      fail(r, 404, "no loss named \"%s\" (GET /v1/losses lists them)", p + 11);
      return;
    }
    if (m == M_GET) {
      sb_t s;
      sb_init(&s);
      encode_desc(&s, r->desc);
      sb_putn(&s, "\n", 1);
      {
        http_respond_json(r, 200, &s);
        return;
      }
    }
    if (m != M_POST) {
      method_not_allowed(r, "GET, POST");
      return;
    }
    if (!json_content(r)) {
      fail(r, 415, "%s", "send Content-Type: application/json");
      return;
    }
    start_compute(r, work_loss);
  } else if (!strcmp(p, "/v1/batch")) {
    r->route = ROUTE_BATCH;
    if (m != M_POST) {
      method_not_allowed(r, "POST");
      return;
    }
    if (!json_content(r)) {
      fail(r, 415, "%s", "send Content-Type: application/json");
      return;
    }
    start_compute(r, work_batch);
  } else if (!strncmp(p, "/v1/multitask/sessions", 22) && (p[22] == 0 || p[22] == '/')) {
    if (m == M_POST || m == M_PUT)
      if (!json_content(r)) {
        fail(r, 415, "%s", "send Content-Type: application/json");
        return;
      }
    mt_route(r, p + 22);
  } else {
    fail(r, 404, "no route %s", p);
  }
}
