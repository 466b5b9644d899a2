/* codec.h - request decoding (JSON and base64 tensors into one contiguous buffer each) and
 * response encoding (a string builder, not a jansson tree: one number is not one heap object). */
#ifndef LOSSD_CODEC_H
#define LOSSD_CODEC_H

#include "b64.h"
#include "catalog.h"
#include "lift.h"

#include <jansson.h>
#include <stddef.h>

/* An API error: HTTP status, code, message and the offending field (API.md §1). */
typedef struct {
  int status;
  const char *code;
  char message[256];
  char field[96];
} api_error_t;

/* Set *e and return -1. */
int api_error(api_error_t *e, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The code string of a status (400 -> "bad_request", ...). */
const char *api_code_for(int status);
/* Map a lib status and its message into *e. */
void api_error_from_loss(int status, const loss_result_t *r, api_error_t *e);

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
  int borrowed; /* p is the caller's buffer (sb_init_in), not the heap's */
} sb_t;

void sb_init(sb_t *s);
/* Start in the caller's buffer of cap bytes, moving to the heap only if the text outgrows it;
 * sb_take may then hand back buf itself. */
void sb_init_in(sb_t *s, char *buf, size_t cap);
void sb_free(sb_t *s);
void sb_putn(sb_t *s, const char *p, size_t n);
void sb_puts(sb_t *s, const char *p);
void sb_printf(sb_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A double as JSON: the shortest text that reads back exactly (server/dtoa.c), always with a
 * fraction or an exponent; null when not finite. */
void sb_double(sb_t *s, double v);
/* A JSON string literal with escapes. */
void sb_jstr(sb_t *s, const char *str);
/* Take the buffer (caller frees, unless it is the one given to sb_init_in); s is reset. */
char *sb_take(sb_t *s, size_t *len);

typedef struct {
  size_t max_elems;    /* per tensor */
  lift_blobs_t *blobs; /* NULL, or what lift_body took out of the body */
} codec_limits_t;

#define REQ_MAX_TENSORS (CAT_MAX_IN + CAT_MAX_PAR + 1)

/* A decoded loss request: the call plus the buffers its tensors own. */
typedef struct {
  const cat_desc_t *desc;
  cat_call_t call;
  int b64_out;
  int n_tensors;
  loss_tensor_t tensors[REQ_MAX_TENSORS];
  void *bufs[REQ_MAX_TENSORS];
} loss_req_t;

/* Decode {"inputs", "params", "reduction", "grad", "encoding"} (plus "loss" when allow_loss,
 * for /v1/batch) for descriptor d. Borrows body. On error fills *e, frees what it made and
 * returns -1. */
int codec_decode(const cat_desc_t *d, json_t *body, int allow_loss, const codec_limits_t *lim,
                 loss_req_t *req, api_error_t *e);
void codec_req_free(loss_req_t *req);

/* Decode one tensor (any form of API.md §2). Returns -1 with *e set. *owned receives the
 * buffer to free. */
int codec_tensor(json_t *v, cat_in_kind_t kind, const char *field, const codec_limits_t *lim,
                 loss_tensor_t *t, void **owned, api_error_t *e);

/* Append the §4 response object for a successful call. */
void codec_encode_result(sb_t *s, const loss_req_t *req, const loss_result_t *r);
/* Append {"error": {...}}. */
void codec_encode_error(sb_t *s, const api_error_t *e);
/* Append a tensor {"shape": [...], "data": [...]} or its b64 form. */
void codec_encode_tensor(sb_t *s, const loss_output_t *o, int b64);

/* Append the base64 text of n bytes (b64.h has the rest of the codec). */
void b64_encode(sb_t *s, const unsigned char *p, size_t n);

#endif /* LOSSD_CODEC_H */
