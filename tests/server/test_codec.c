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

/* Float tensors are written in place after one reservation: values with the longest texts
 * (25 characters for a double, 24 for a float), non-finite ones as null, each text checked
 * against the formatter's (under ASan, a short reservation would be a heap overflow). */
static void tensor_text(void **state)
{
  (void)state;
  enum { N = 777 };
  static double d[N];
  static float f[N];
  for (int i = 0; i < N; i++) {
    d[i] = i % 97 == 3 ? NAN : i % 89 == 5 ? -INFINITY : -1.2345678901234567e-6;
    f[i] = i % 97 == 3 ? NAN : -9.276687e20f;
  }
  for (int k = 0; k < 2; k++) {
    loss_output_t o = {"x", LOSS_OUT_TENSOR, k ? LOSS_FLOAT32 : LOSS_FLOAT64, 1, {N}, NULL};
    o.data = k ? (void *)f : (void *)d;
    sb_t s;
    sb_init(&s);
    codec_encode_tensor(&s, &o, 0);
    const char *want = k ? "-927668700000000000000.0" : "-0.0000012345678901234567";
    const char *p = strstr(s.p, "\"data\":[");
    assert_non_null(p);
    p += 8;
    for (int i = 0; i < N; i++) {
      int bad = isnan(k ? (double)f[i] : d[i]) || isinf(k ? (double)f[i] : d[i]);
      const char *t = bad ? "null" : want;
      assert_memory_equal(p, t, strlen(t));
      p += strlen(t);
      assert_int_equal(*p++, i + 1 < N ? ',' : ']');
    }
    assert_string_equal(p, "}");
    assert_int_equal(strlen(s.p), s.len);
    sb_free(&s);
  }
}

/* An unknown input or parameter with a long name: the error's field is the name cut to fit its
 * 96 bytes, the message names it whole. */
static void long_names(void **state)
{
  (void)state;
  const cat_desc_t *d = cat_find("cross_entropy");
  assert_non_null(d);
  char name[151], text[400], want[96];
  memset(name, 'k', 150);
  name[150] = 0;
  const char *forms[] = {"{\"inputs\": {\"%s\": 1}}",
                         "{\"inputs\": {\"logits\": [[1, 2]], \"target\": [0]}, "
                         "\"params\": {\"%s\": 1}}"};
  const char *prefix[] = {"inputs.", "params."};
  for (int k = 0; k < 2; k++) {
    snprintf(text, sizeof text, forms[k], name);
    json_t *body = json_loads(text, 0, NULL);
    assert_non_null(body);
    loss_req_t req;
    api_error_t e;
    assert_int_equal(codec_decode(d, body, 0, &lim, &req, &e), -1);
    json_decref(body);
    assert_int_equal(e.status, 400);
    memcpy(want, prefix[k], 7); /* "inputs." or "params.", then the name's first 88 bytes */
    memcpy(want + 7, name, 88);
    want[95] = 0;
    assert_int_equal(strlen(e.field), 95);
    assert_string_equal(e.field, want);
    assert_non_null(strstr(e.message, name));
  }
}

/* A text builder started in the caller's buffer keeps it while the text fits (sb_take hands
 * the buffer back), and moves to the heap with the text so far when it outgrows it. */
static void borrowed_buffer(void **state)
{
  (void)state;
  char buf[16];
  sb_t s;
  sb_init_in(&s, buf, sizeof buf);
  sb_puts(&s, "0123456789");
  size_t len;
  char *p = sb_take(&s, &len);
  assert_ptr_equal(p, buf);
  assert_string_equal(p, "0123456789");
  assert_int_equal(len, 10);
  sb_init_in(&s, buf, sizeof buf);
  sb_puts(&s, "0123456789");
  sb_puts(&s, "abcdefghij"); /* 21 bytes with the terminator: to the heap */
  p = sb_take(&s, &len);
  assert_ptr_not_equal(p, buf);
  assert_string_equal(p, "0123456789abcdefghij");
  assert_int_equal(len, 20);
  free(p);
  sb_init_in(&s, buf, sizeof buf);
  sb_puts(&s, "abc");
  sb_free(&s); /* not the heap's: nothing to free (ASan would say otherwise) */
  assert_null(s.p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(forms),       cmocka_unit_test(errors),
      cmocka_unit_test(number_text), cmocka_unit_test(tensor_text),
      cmocka_unit_test(long_names),  cmocka_unit_test(borrowed_buffer)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
