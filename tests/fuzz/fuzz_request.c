/* fuzz_request.c - libFuzzer target: arbitrary bytes as the body of POST /v1/losses/{name}
 * (the first byte picks the loss), through the same path as the server's pool thread:
 * base64 lifting, jansson, the codec and the loss. Limits are small so that the fuzzer explores
 * structure, not size. Build and run: make fuzz (clang, ASan + UBSan + libFuzzer). */
#include "catalog.h"
#include "codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) return 0;
  int n;
  const cat_desc_t *all = cat_all(&n);
  const cat_desc_t *d = &all[data[0] % n];
  char *body = malloc(size);
  if (!body) return 0;
  memcpy(body, data + 1, size - 1);
  lift_blobs_t blobs;
  size_t len = lift_body(body, size - 1, 4096, &blobs);
  json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
  if (j) {
    codec_limits_t lim = {4096, &blobs};
    loss_req_t req;
    api_error_t e;
    if (!codec_decode(d, j, 0, &lim, &req, &e)) {
      loss_result_t r;
      loss_result_init(&r);
      int rc = d->run(d, &req.call, &r);
      sb_t s;
      sb_init(&s);
      if (rc) {
        api_error_from_loss(rc, &r, &e);
        codec_encode_error(&s, &e);
      } else {
        codec_encode_result(&s, &req, &r);
      }
      sb_free(&s);
      loss_result_free(&r);
      codec_req_free(&req);
    }
    json_decref(j);
  }
  lift_blobs_free(&blobs);
  free(body);
  return 0;
}
