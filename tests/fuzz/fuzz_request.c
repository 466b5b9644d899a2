/* fuzz_request.c - libFuzzer target: arbitrary bytes as the body of POST /v1/losses/{name}
 * (the first byte picks the loss), through the same path as the server's pool thread: the lift
 * of tensor data, jansson, the codec and the loss. It is also differential: the same body decoded
 * without the lift must give the same status, message and tensors, or the target aborts. Limits
 * are small so that the fuzzer explores structure, not size.
 * Build and run: make fuzz (clang, ASan + UBSan + libFuzzer). */
#include "catalog.h"
#include "codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  int parsed, rc, status;
  char message[256];
} outcome_t;

/* Decode body (consumed: it is compacted in place when lifting); with run, compute the loss. */
static void decode(const cat_desc_t *d, char *body, size_t len, int lift, int run, outcome_t *o,
                   loss_req_t *req)
{
  lift_blobs_t blobs = {.count = 0};
  size_t n = lift ? lift_body(body, len, 4096, &blobs) : len;
  json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
  memset(o, 0, sizeof *o);
  o->rc = -1;
  if (j) {
    o->parsed = 1;
    codec_limits_t lim = {4096, &blobs};
    api_error_t e;
    o->rc = codec_decode(d, j, 0, &lim, req, &e);
    if (o->rc) {
      o->status = e.status;
      memcpy(o->message, e.message, sizeof o->message);
    } else if (run) {
      loss_result_t r;
      loss_result_init(&r);
      int rc = d->run(d, &req->call, &r);
      sb_t s;
      sb_init(&s);
      if (rc) {
        api_error_from_loss(rc, &r, &e);
        codec_encode_error(&s, &e);
      } else {
        codec_encode_result(&s, req, &r);
      }
      sb_free(&s);
      loss_result_free(&r);
    }
    json_decref(j);
  }
  lift_blobs_free(&blobs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) return 0;
  int n;
  const cat_desc_t *all = cat_all(&n);
  const cat_desc_t *d = &all[data[0] % n];
  char *a = malloc(size), *b = malloc(size);
  if (!a || !b) {
    free(a);
    free(b);
    return 0;
  }
  memcpy(a, data + 1, size - 1);
  memcpy(b, data + 1, size - 1);
  outcome_t x, y;
  loss_req_t rx, ry;
  decode(d, a, size - 1, 1, 1, &x, &rx);
  decode(d, b, size - 1, 0, 0, &y, &ry);
  if (x.parsed != y.parsed || x.rc != y.rc || x.status != y.status ||
      strcmp(x.message, y.message))
    abort(); /* the lift changed what the request means */
  if (x.parsed && !x.rc) {
    if (rx.n_tensors != ry.n_tensors) abort();
    for (int i = 0; i < rx.n_tensors; i++) {
      const loss_tensor_t *p = &rx.tensors[i], *q = &ry.tensors[i];
      if (p->dtype != q->dtype || p->rank != q->rank ||
          memcmp(p->shape, q->shape, sizeof p->shape))
        abort();
      size_t bytes = loss_tensor_numel(p) * loss_dtype_size(p->dtype);
      if (bytes && memcmp(p->data, q->data, bytes)) abort();
    }
    codec_req_free(&rx);
    codec_req_free(&ry);
  }
  free(a);
  free(b);
  return 0;
}
