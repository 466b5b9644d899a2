/* test_codec.c - tensor decoding, limits, base64 and response encoding (server/codec.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const codec_limits_t lim = {1000, NULL};

static int decode(const char *text, cat_in_kind_t kind, loss_tensor_t *t, void **buf,
                  api_error_t *e)
{
  json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
  assert_non_null(v);
  int rc = codec_tensor(v, kind, "inputs.x", &lim, t, buf, e);
  json_decref(v);
  return rc;
}

static void forms(void **state)
{
  (void)state;
  loss_tensor_t t;
  void *b;
  api_error_t e;
  assert_int_equal(decode("2.5", IN_FLOAT, &t, &b, &e), 0);
  assert_int_equal(t.rank, 0);
  assert_true(((double *)t.data)[0] == 2.5);
  free(b);
  assert_int_equal(decode("[[1, 2, 3], [4, 5, 6]]", IN_FLOAT, &t, &b, &e), 0);
  assert_int_equal(t.rank, 2);
  assert_int_equal(t.shape[1], 3);
  assert_int_equal(t.dtype, LOSS_FLOAT64); /* integers converted for a float input */
  assert_true(((double *)t.data)[5] == 6.0);
  free(b);
  assert_int_equal(decode("[[1, 2], [3, 4]]", IN_ANY, &t, &b, &e), 0);
  assert_int_equal(t.dtype, LOSS_INT64);
  free(b);
  assert_int_equal(decode("[[1, 2.5]]", IN_ANY, &t, &b, &e), 0);
  assert_int_equal(t.dtype, LOSS_FLOAT64);
  free(b);
  assert_int_equal(decode("{\"shape\": [2], \"dtype\": \"float32\", \"b64\": \"AACAPwAAAEA=\"}",
                          IN_FLOAT, &t, &b, &e),
                   0);
  assert_int_equal(t.dtype, LOSS_FLOAT32);
  assert_true(((float *)t.data)[1] == 2.0f);
  free(b);
  assert_int_equal(decode("{\"shape\": [1, 2], \"data\": [7, 8]}", IN_INT, &t, &b, &e), 0);
  assert_true(((int64_t *)t.data)[1] == 8);
  free(b);
}

static void errors(void **state)
{
  (void)state;
  loss_tensor_t t;
  void *b;
  api_error_t e;
  struct {
    const char *text;
    cat_in_kind_t kind;
    int status;
  } cases[] = {
      {"[[1, 2], [3]]", IN_FLOAT, 422},
      {"[[1, 2], [3, [4]]]", IN_FLOAT, 422},
      {"[1, true]", IN_FLOAT, 400},
      {"\"x\"", IN_FLOAT, 400},
      {"[1.5]", IN_INT, 422},
      {"{\"shape\": [3], \"data\": [1, 2]}", IN_FLOAT, 422},
      {"{\"shape\": [40, 40], \"data\": []}", IN_FLOAT, 413}, /* limit 1000 elements */
      {"{\"shape\": [2], \"dtype\": \"float32\", \"b64\": \"AAA\"}", IN_FLOAT, 400},
      {"{\"shape\": [2], \"dtype\": \"float32\", \"b64\": \"AACAPw==\"}", IN_FLOAT, 422},
      {"{\"shape\": [2], \"dtype\": \"bf16\", \"b64\": \"AACAPw==\"}", IN_FLOAT, 400},
      {"{\"shape\": [2], \"data\": [1, 2], \"extra\": 1}", IN_FLOAT, 400},
      {"{\"shape\": [-2], \"data\": []}", IN_FLOAT, 422},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = decode(cases[i].text, cases[i].kind, &t, &b, &e);
    free(b);
    if (rc != -1 || e.status != cases[i].status)
      fail_msg("%s: status %d, expected %d", cases[i].text, e.status, cases[i].status);
    assert_string_equal(e.field, "inputs.x");
  }
}

static void number_text(void **state)
{
  (void)state;
  sb_t s;
  sb_init(&s);
  sb_double(&s, 2.0);
  sb_puts(&s, " ");
  sb_double(&s, NAN);
  sb_puts(&s, " ");
  sb_double(&s, 0.1);
  assert_string_equal(s.p, "2.0 null 0.1");
  sb_free(&s);
  api_error_t e;
  api_error(&e, 422, "params.gamma", "gamma must be %s", "finite");
  sb_init(&s);
  codec_encode_error(&s, &e);
  assert_string_equal(s.p, "{\"error\":{\"code\":\"invalid_input\",\"message\":\"gamma must be "
                           "finite\",\"field\":\"params.gamma\"}}");
  sb_free(&s);
}

static void lifted_b64(void **state)
{
  (void)state;
  enum { N = 3000 }; /* 12000 bytes of float32: 16000 base64 characters, lifted */
  static float v[N];
  for (int i = 0; i < N; i++) v[i] = (float)i * 0.5f;
  sb_t s;
  sb_init(&s);
  sb_puts(&s, "{\"note\": \"a \\\"b64\\\": trap\", \"inputs\": {\"x\": {\"shape\": [3000], "
              "\"dtype\": \"float32\", \"b64\" : \"");
  b64_encode(&s, (const unsigned char *)v, sizeof v);
  sb_puts(&s, "\"}, \"y\": {\"shape\": [1], \"dtype\": \"float32\", \"b64\": \"AACAPw==\"}}, "
              "\"bad\": {\"shape\": [3], \"dtype\": \"float32\", \"b64\": \"");
  for (int i = 0; i < 5000; i++) sb_puts(&s, "*");
  sb_puts(&s, "\"}}");
  codec_blobs_t blobs;
  size_t len = codec_lift_b64(s.p, s.len, &blobs);
  assert_int_equal(blobs.count, 2);
  assert_true(len < 400);
  s.p[len] = 0;
  assert_true(strstr(s.p, "\"#0\"") && strstr(s.p, "\"#1\""));
  json_t *doc = json_loadb(s.p, len, 0, NULL);
  assert_non_null(doc);
  assert_string_equal(json_string_value(json_object_get(doc, "note")), "a \"b64\": trap");
  codec_limits_t l = {100000, &blobs};
  loss_tensor_t t;
  void *buf;
  api_error_t e;
  assert_int_equal(codec_tensor(json_object_get(json_object_get(doc, "inputs"), "x"), IN_FLOAT,
                                "inputs.x", &l, &t, &buf, &e),
                   0);
  assert_memory_equal(t.data, v, sizeof v);
  free(buf);
  assert_int_equal(codec_tensor(json_object_get(json_object_get(doc, "inputs"), "y"), IN_FLOAT,
                                "inputs.y", &l, &t, &buf, &e),
                   0); /* short: parsed as usual */
  assert_true(((float *)t.data)[0] == 1.0f);
  free(buf);
  assert_int_equal(codec_tensor(json_object_get(doc, "bad"), IN_FLOAT, "bad", &l, &t, &buf, &e),
                   -1);
  free(buf);
  assert_int_equal(e.status, 400);
  json_decref(doc);
  codec_blobs_free(&blobs);
  sb_free(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(forms), cmocka_unit_test(errors),
                                     cmocka_unit_test(number_text), cmocka_unit_test(lifted_b64)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
