/* openapi.c - the OpenAPI 3 document, written from the loss descriptors (`lossd --openapi`).
 *
 * proto/openapi.yaml is this output, committed and embedded into the binary; a test checks that
 * the two agree, so a loss added to the catalogue without regenerating the document fails. */
#include "openapi.h"

#include "catalog.h"

#include <string.h>

static void line(sb_t *s, int indent, const char *text)
{
  for (int i = 0; i < indent; i++) sb_puts(s, "  ");
  sb_puts(s, text);
  sb_puts(s, "\n");
}

/* A YAML double-quoted scalar (JSON string syntax is valid YAML). */
static void kv(sb_t *s, int indent, const char *key, const char *val)
{
  for (int i = 0; i < indent; i++) sb_puts(s, "  ");
  sb_printf(s, "%s: ", key);
  sb_jstr(s, val);
  sb_puts(s, "\n");
}

static const char *const static_head[] = {
    "openapi: 3.0.3\n",
    "info:\n",
    "  title: lossd\n",
    "  version: \"" LOSS_VERSION "\"\n",
    "  description: >-\n",
    "    Loss values and their gradients over HTTP/JSON, and multitask loss weighting as a\n",
    "    shared service. Generated from the loss descriptors by `lossd --openapi`; the\n",
    "    contract in prose is ../shared/design/API.md and the decisions it leaves open are in\n",
    "    proto/DECISIONS.md.\n",
    "servers:\n",
    "  - url: http://127.0.0.1:8080\n",
    "components:\n",
    "  securitySchemes:\n",
    "    bearer: {type: http, scheme: bearer}\n",
    "  responses:\n",
    "    Error:\n",
    "      description: An error (API.md §1).\n",
    "      content:\n",
    "        application/json:\n",
    "          schema: {$ref: \"#/components/schemas/Error\"}\n",
    "  schemas:\n",
    "    Error:\n",
    "      type: object\n",
    "      required: [error]\n",
    "      properties:\n",
    "        error:\n",
    "          type: object\n",
    "          required: [code, message]\n",
    "          properties:\n",
    "            code: {type: string, enum: [bad_request, unauthorized, not_found, "
    "method_not_allowed, conflict, too_large, unsupported_media_type, invalid_input, "
    "unavailable, timeout, internal]}\n",
    "            message: {type: string}\n",
    "            field: {type: string, description: \"inputs.<name> or params.<name>\"}\n",
    "    Tensor:\n",
    "      description: A scalar, rectangular nested arrays, {shape, data}, or {shape, dtype, "
    "b64}.\n",
    "      oneOf:\n",
    "        - type: number\n",
    "        - type: array\n",
    "          items: {}\n",
    "        - type: object\n",
    "          required: [shape, data]\n",
    "          additionalProperties: false\n",
    "          properties:\n",
    "            shape: {type: array, items: {type: integer, minimum: 0}}\n",
    "            data: {type: array, items: {type: number}}\n",
    "            dtype: {type: string, enum: [float32, float64, int32, int64]}\n",
    "        - type: object\n",
    "          required: [shape, dtype, b64]\n",
    "          additionalProperties: false\n",
    "          properties:\n",
    "            shape: {type: array, items: {type: integer, minimum: 0}}\n",
    "            dtype: {type: string, enum: [float32, float64, int32, int64]}\n",
    "            b64: {type: string, format: byte, description: little-endian values}\n",
    "    Grad:\n",
    "      description: true (every differentiable input given), false, or input names.\n",
    "      oneOf:\n",
    "        - type: boolean\n",
    "        - type: array\n",
    "          items: {type: string}\n",
    "    LossResponse:\n",
    "      type: object\n",
    "      required: [loss, grads, extra]\n",
    "      properties:\n",
    "        loss:\n",
    "          description: A number (null when not finite), or a tensor for reduction none.\n",
    "          nullable: true\n",
    "          oneOf:\n",
    "            - type: number\n",
    "            - $ref: \"#/components/schemas/Tensor\"\n",
    "        grads:\n",
    "          type: object\n",
    "          additionalProperties: {$ref: \"#/components/schemas/Tensor\"}\n",
    "        extra:\n",
    "          type: object\n",
    "          additionalProperties: {}\n",
    "    MultitaskConfig:\n",
    "      type: object\n",
    "      required: [method, tasks]\n",
    "      properties:\n",
    "        method: {type: string, enum: [static, uncertainty, gradnorm, dwa]}\n",
    "        tasks: {type: array, minItems: 1, maxItems: 64, items: {type: string}}\n",
    "        world_size: {type: integer, minimum: 1, maximum: 4096, default: 1}\n",
    "        step_timeout_ms: {type: integer, minimum: 1, default: 60000}\n",
    "        params:\n",
    "          type: object\n",
    "          description: >-\n",
    "            static: weights [T] (ones). uncertainty: form libmtl|kendall (libmtl), "
    "optimizer\n",
    "            sgd|adam (sgd), lr (0.01), betas ([0.9, 0.999]), eps (1e-8). gradnorm: alpha\n",
    "            (1.5), lr (0.025), optimizer (adam), warmup_steps (1), betas, eps. dwa:\n",
    "            temperature (2), window (1).\n",
    "    Session:\n",
    "      allOf:\n",
    "        - $ref: \"#/components/schemas/MultitaskConfig\"\n",
    "        - type: object\n",
    "          properties:\n",
    "            id: {type: string, pattern: \"^[A-Za-z0-9._-]{1,64}$\"}\n",
    "            step: {type: integer, description: the step being collected}\n",
    "            state: {type: object}\n",
    "            history:\n",
    "              type: array\n",
    "              description: the last 1000 steps (GET of one session)\n",
    "              items:\n",
    "                type: object\n",
    "                properties:\n",
    "                  step: {type: integer}\n",
    "                  total: {type: number}\n",
    "                  losses: {type: array, items: {type: number}}\n",
    "                  weights: {type: array, items: {type: number}}\n",
    "    StepReport:\n",
    "      type: object\n",
    "      required: [step, rank, losses]\n",
    "      properties:\n",
    "        step: {type: integer, minimum: 0}\n",
    "        rank: {type: integer, minimum: 0}\n",
    "        losses: {type: array, items: {type: number}}\n",
    "        grad_norms: {type: array, items: {type: number, minimum: 0}, description: gradnorm}\n",
    "    StepResponse:\n",
    "      type: object\n",
    "      properties:\n",
    "        step: {type: integer}\n",
    "        weights: {type: array, items: {type: number}}\n",
    "        total: {type: number}\n",
    "        grad: {type: array, items: {type: number}}\n"
    "        state: {type: object}\n",
    NULL};

static void loss_schema(sb_t *s, const cat_desc_t *d)
{
  static const char *const ptypes[] = {"boolean", "integer", "number", "string", "", ""};
  static const char *const reds[] = {"mean", "sum", "none", "batchmean"};
  char buf[160];
  snprintf(buf, sizeof buf, "%s_request:", d->name);
  line(s, 2, buf);
  line(s, 3, "type: object");
  line(s, 3, "required: [inputs]");
  line(s, 3, "additionalProperties: false");
  line(s, 3, "properties:");
  line(s, 4, "inputs:");
  line(s, 5, "type: object");
  line(s, 5, "additionalProperties: false");
  line(s, 5, "properties:");
  for (int i = 0; i < d->n_in; i++) {
    snprintf(buf, sizeof buf, "%s:", d->in[i].name);
    line(s, 6, buf);
    line(s, 7, "allOf: [{$ref: \"#/components/schemas/Tensor\"}]");
    snprintf(buf, sizeof buf, "%s%s%s%s", d->in[i].shape, d->in[i].doc ? "; " : "",
             d->in[i].doc ? d->in[i].doc : "", d->in[i].differentiable ? " (differentiable)" : "");
    kv(s, 7, "description", buf);
  }
  if (d->reductions) {
    line(s, 6, "grad_output:");
    line(s, 7, "allOf: [{$ref: \"#/components/schemas/Tensor\"}]");
    kv(s, 7, "description", "reduction none: upstream gradient shaped like the loss");
  }
  line(s, 4, "params:");
  line(s, 5, "type: object");
  line(s, 5, "additionalProperties: false");
  line(s, 5, d->n_par ? "properties:" : "properties: {}");
  for (int i = 0; i < d->n_par; i++) {
    const cat_param_t *p = &d->par[i];
    snprintf(buf, sizeof buf, "%s:", p->name);
    line(s, 6, buf);
    if (p->type == PAR_TENSOR)
      line(s, 7, "allOf: [{$ref: \"#/components/schemas/Tensor\"}]");
    else if (p->type == PAR_REAL_OR_TENSOR)
      line(s, 7, "oneOf: [{type: number}, {$ref: \"#/components/schemas/Tensor\"}]");
    else {
      snprintf(buf, sizeof buf, "type: %s", ptypes[p->type]);
      line(s, 7, buf);
    }
    if (p->values) {
      sb_t e;
      sb_init(&e);
      sb_puts(&e, "enum: [");
      for (int k = 0; p->values[k]; k++) {
        if (k) sb_puts(&e, ", ");
        sb_jstr(&e, p->values[k]);
      }
      sb_puts(&e, "]");
      line(s, 7, e.p);
      sb_free(&e);
    }
    if (p->dflt && strcmp(p->dflt, "null")) {
      snprintf(buf, sizeof buf, "default: %s", p->dflt);
      line(s, 7, buf);
    }
    if (!p->dflt)
      kv(s, 7, "description", p->doc ? p->doc : "required");
    else if (p->doc)
      kv(s, 7, "description", p->doc);
  }
  if (d->reductions) {
    line(s, 4, "reduction:");
    line(s, 5, "type: string");
    sb_t e;
    sb_init(&e);
    sb_puts(&e, "enum: [");
    for (int k = 0, first = 1; k < 4; k++)
      if (d->reductions & (1u << k)) {
        sb_printf(&e, first ? "%s" : ", %s", reds[k]);
        first = 0;
      }
    sb_puts(&e, "]");
    line(s, 5, e.p);
    sb_free(&e);
    snprintf(buf, sizeof buf, "default: %s", d->default_reduction);
    line(s, 5, buf);
  }
  line(s, 4, "grad: {$ref: \"#/components/schemas/Grad\"}");
  line(s, 4, "encoding: {type: string, enum: [json, b64], default: json}");
}

static void op(sb_t *s, const char *method, const char *summary, const char *req_ref,
               const char *ok_code, const char *ok_ref, const char *errors)
{
  char buf[200];
  snprintf(buf, sizeof buf, "%s:", method);
  line(s, 2, buf);
  kv(s, 3, "summary", summary);
  if (req_ref) {
    line(s, 3, "requestBody:");
    line(s, 4, "required: true");
    line(s, 4, "content:");
    line(s, 5, "application/json:");
    snprintf(buf, sizeof buf, "schema: {$ref: \"#/components/schemas/%s\"}", req_ref);
    line(s, 6, buf);
  }
  line(s, 3, "responses:");
  snprintf(buf, sizeof buf, "\"%s\":", ok_code);
  line(s, 4, buf);
  line(s, 5, "description: OK");
  if (ok_ref) {
    line(s, 5, "content:");
    line(s, 6, ok_ref[0] == 't' ? "text/plain:" : "application/json:");
    if (ok_ref[0] == 't')
      line(s, 7, "schema: {type: string}");
    else {
      snprintf(buf, sizeof buf, "schema: {$ref: \"#/components/schemas/%s\"}", ok_ref);
      line(s, 7, buf);
    }
  }
  for (const char *c = errors; *c; c += 4) {
    snprintf(buf, sizeof buf, "\"%.3s\": {$ref: \"#/components/responses/Error\"}", c);
    line(s, 4, buf);
  }
}

void openapi_write(sb_t *s)
{
  int n;
  const cat_desc_t *all = cat_all(&n);
  for (int i = 0; static_head[i]; i++) sb_puts(s, static_head[i]);
  for (int i = 0; i < n; i++) loss_schema(s, &all[i]);
  sb_puts(s, "security:\n  - {}\n  - bearer: []\npaths:\n");
  line(s, 1, "/healthz:");
  op(s, "get", "Liveness", NULL, "200", NULL, "");
  line(s, 1, "/readyz:");
  op(s, "get", "Readiness: 503 while starting or draining", NULL, "200", NULL, "503 ");
  line(s, 1, "/metrics:");
  op(s, "get", "Prometheus metrics", NULL, "200", "text", "");
  line(s, 1, "/openapi.yaml:");
  op(s, "get", "This document", NULL, "200", NULL, "");
  line(s, 1, "/v1/info:");
  op(s, "get", "Version, build, limits, threads", NULL, "200", NULL, "401 ");
  line(s, 1, "/v1/losses:");
  op(s, "get", "The catalogue: every loss with its inputs, params and outputs", NULL, "200", NULL,
     "401 ");
  line(s, 1, "/v1/losses/{name}:");
  line(s, 2, "parameters:");
  line(s, 3, "- {name: name, in: path, required: true, schema: {type: string}}");
  op(s, "get", "One loss's catalogue entry", NULL, "200", NULL, "401 404 ");
  for (int i = 0; i < n; i++) {
    char path[120], ref[80], summary[200];
    snprintf(path, sizeof path, "/v1/losses/%s:", all[i].name);
    snprintf(ref, sizeof ref, "%s_request", all[i].name);
    snprintf(summary, sizeof summary, "%s (%s)", all[i].summary, all[i].reference);
    line(s, 1, path);
    op(s, "post", summary, ref, "200", "LossResponse", "400 401 413 415 422 503 ");
  }
  line(s, 1, "/v1/batch:");
  op(s, "post", "Several loss calls: {calls: [{loss, inputs, ...}]} -> {results: [...]}", NULL,
     "200", NULL, "400 401 413 415 503 ");
  line(s, 1, "/v1/multitask/sessions:");
  op(s, "get", "List sessions", NULL, "200", NULL, "401 ");
  op(s, "post", "Create a session with a server-chosen id", "MultitaskConfig", "201", "Session",
     "400 401 415 422 503 ");
  line(s, 1, "/v1/multitask/sessions/{id}:");
  line(s, 2, "parameters:");
  line(s, 3, "- {name: id, in: path, required: true, schema: {type: string}}");
  op(s, "get", "Config, state and the last 1000 steps", NULL, "200", "Session", "401 404 ");
  op(s, "put", "Create (201) or join (200) with a client-chosen id; 409 if the config differs",
     "MultitaskConfig", "201", "Session", "400 401 409 415 422 503 ");
  op(s, "delete", "Remove a session", NULL, "200", NULL, "401 404 ");
  line(s, 1, "/v1/multitask/sessions/{id}/steps:");
  line(s, 2, "parameters:");
  line(s, 3, "- {name: id, in: path, required: true, schema: {type: string}}");
  op(s, "post", "Report one rank's losses; answered when every rank has reported the step",
     "StepReport", "200", "StepResponse", "400 401 404 409 415 422 503 504 ");
}
