/* test_lift.c - tensor data lifted out of request bodies (server/lift.c): numbers exactly as
 * jansson reads them, and every request decoded the same with and without lifting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "codec.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- numbers: jansson is the oracle --------------------------------------------------------- */

static void check_literal(const char *lit)
{
  char doc[160];
  snprintf(doc, sizeof doc, "[%s]", lit);
  json_t *j = json_loads(doc, 0, NULL);
  int is_int;
  int64_t iv;
  double dv;
  int rc = lift_number(lit, strlen(lit), &is_int, &iv, &dv);
  if (!j || json_array_size(j) != 1) { /* "[]" is an empty array, not a number */
    if (rc == 0) fail_msg("lift accepts %s, jansson does not", lit);
    json_decref(j);
    return;
  }
  json_t *v = json_array_get(j, 0);
  if (rc != 0) fail_msg("lift rejects %s, jansson reads it", lit);
  if (is_int != json_is_integer(v)) fail_msg("%s: integer %d, jansson %d", lit, is_int, !is_int);
  if (is_int && iv != json_integer_value(v)) fail_msg("%s: integer differs", lit);
  double ref = json_number_value(v);
  if (memcmp(&dv, &ref, sizeof dv)) fail_msg("%s: %.17g, jansson %.17g", lit, dv, ref);
  json_decref(j);
}

static void numbers_as_jansson(void **state)
{
  (void)state;
  const char *fixed[] = {"0",
                         "-0",
                         "0.0",
                         "-0.0",
                         "1",
                         "-1",
                         "0.1",
                         "0.30000000000000004",
                         "1e0",
                         "1E+2",
                         "1e-2",
                         "123456789012345678",
                         "9007199254740993",
                         "9007199254740993.0",
                         "9223372036854775807",
                         "9223372036854775808",
                         "-9223372036854775808",
                         "-9223372036854775809",
                         "18446744073709551616",
                         "18446744073709551615",
                         "-18446744073709551617",
                         "36893488147419103232",
                         "1e308",
                         "1.7976931348623157e308",
                         "1.7976931348623159e308",
                         "1e309",
                         "-1e309",
                         "2.2250738585072014e-308",
                         "4.9e-324",
                         "2e-324",
                         "1e-400",
                         "0e999",
                         "0.000000000000000000000000000001",
                         "123456789012345678901234567890",
                         "1234567890123456789012345678.9e-10",
                         "3.141592653589793238462643383279",
                         "1e22",
                         "1e23",
                         "9007199254740992e22",
                         "9007199254740993e-22",
                         "01",
                         "1.",
                         ".5",
                         "+1",
                         "1e",
                         "1e+",
                         "--1",
                         "1.e5",
                         "-",
                         "",
                         "0x10",
                         "1.5e3.2",
                         "Infinity",
                         "NaN",
                         "1e-",
                         "00",
                         "-01",
                         "1ee5"};
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) check_literal(fixed[i]);
  srand(11);
  char lit[96];
  for (int k = 0; k < 200000; k++) {
    double r = ((double)rand() / RAND_MAX - 0.5) * pow(10, rand() % 40 - 20);
    switch (k % 5) {
    case 0:
      snprintf(lit, sizeof lit, "%.17g", r);
      break;
    case 1:
      snprintf(lit, sizeof lit, "%.*g", 1 + rand() % 16, r);
      break;
    case 2:
      snprintf(lit, sizeof lit, "%.9g", (double)(float)r);
      break;
    case 3: { /* random digit strings with random exponents, some past 19 digits */
      int nd = 1 + rand() % 25, pt = rand() % (nd + 1), o = 0;
      if (rand() & 1) lit[o++] = '-';
      for (int d = 0; d < nd; d++) {
        if (d == pt && d) lit[o++] = '.';
        lit[o++] = (char)('0' + (d == 0 && nd > 1 && pt != 1 ? 1 + rand() % 9 : rand() % 10));
      }
      if (rand() & 1) o += snprintf(lit + o, sizeof lit - (size_t)o, "e%d", rand() % 700 - 350);
      lit[o] = 0;
      break;
    }
    default:
      snprintf(lit, sizeof lit, "%lld", (long long)rand() * rand() - (long long)rand() * rand());
    }
    check_literal(lit);
  }
}

/* Reals of up to 19 digits take the Eisel-Lemire path unless they are near a tie: held to
 * strtod on random doubles over the whole exponent range at 15 to 19 digits, and on 19-digit
 * decimals within 1e-19 of the midpoint between two neighbouring doubles (exact in long double),
 * where the path must detect that it cannot decide. */
static void reals_as_strtod(void **state)
{
  (void)state;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  char lit[96];
  for (int k = 0; k < 400000; k++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d;
    memcpy(&d, &x, sizeof d);
    if (!isfinite(d) || d == 0) continue;
    long double mid = ((long double)d + (long double)nextafter(d, INFINITY)) / 2;
    /* d at 17, 16, 15 and 19 significant digits; the midpoint at 19 and 18 */
    static const int prec[6] = {17, 16, 15, 18, 17, 18};
    int p = prec[k % 6];
    if (k % 6 == 3 || k % 6 == 4)
      snprintf(lit, sizeof lit, "%.*Le", p, mid);
    else
      snprintf(lit, sizeof lit, k % 6 == 5 ? "%.*e" : "%.*g", p, d);
    int is_int = 0;
    int64_t iv;
    double got, ref = strtod(lit, NULL);
    if (isinf(ref)) continue; /* rejected as jansson does, checked above */
    assert_int_equal(lift_number(lit, strlen(lit), &is_int, &iv, &got), 0);
    if (memcmp(&got, &ref, sizeof got)) fail_msg("%s: %.17g, strtod %.17g", lit, got, ref);
  }
  /* Values below 1 in positional notation, as json.dumps and most encoders write gradients:
   * leading zeros in the fraction (up to 30 of them) before 1 to 40 digits, so that the
   * significant digits start anywhere and run past 19 (truncated) */
  for (int k = 0; k < 200000; k++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d = ldexp((double)(x >> 11), -53) * pow(10, -(double)(x % 31));
    int digits = 1 + (int)((x >> 5) % 40) + (int)(x % 31);
    snprintf(lit, sizeof lit, "%s%.*f", k & 1 ? "-" : "", digits, d);
    int is_int = 0;
    int64_t iv;
    double got, ref = strtod(lit, NULL);
    assert_int_equal(lift_number(lit, strlen(lit), &is_int, &iv, &got), 0);
    if (memcmp(&got, &ref, sizeof got)) fail_msg("%s: %.17g, strtod %.17g", lit, got, ref);
  }
}

/* ---- bodies: the same decode with and without lifting --------------------------------------- */

typedef struct {
  int rc, status, n;
  char field[96], message[256];
  loss_tensor_t t[REQ_MAX_TENSORS];
  void *bufs[REQ_MAX_TENSORS];
} decoded_t;

static void decode_body(const cat_desc_t *d, const char *text, size_t len, int lift,
                        size_t max_elems, decoded_t *out, int *lifted)
{
  char *body = malloc(len + 1);
  memcpy(body, text, len);
  lift_blobs_t blobs = {.count = 0};
  size_t n = lift ? lift_body(body, len, max_elems, &blobs) : len;
  *lifted = blobs.count;
  json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
  memset(out, 0, sizeof *out);
  if (!j) {
    out->rc = -2;
  } else {
    codec_limits_t lim = {max_elems, &blobs};
    loss_req_t req;
    api_error_t e;
    out->rc = codec_decode(d, j, 0, &lim, &req, &e);
    if (out->rc) {
      out->status = e.status;
      snprintf(out->field, sizeof out->field, "%s", e.field);
      snprintf(out->message, sizeof out->message, "%s", e.message);
    } else {
      out->n = req.n_tensors;
      for (int i = 0; i < req.n_tensors; i++) {
        out->t[i] = req.tensors[i];
        out->bufs[i] = req.bufs[i]; /* taken over from req */
        req.bufs[i] = NULL;
      }
      codec_req_free(&req);
    }
    json_decref(j);
  }
  lift_blobs_free(&blobs);
  free(body);
}

static void decoded_free(decoded_t *d)
{
  for (int i = 0; i < d->n; i++) free(d->bufs[i]);
}

/* Decode text plainly and lifted; the two must agree in every byte. Returns the number of arrays
 * lifted. */
static int same_decode(const char *loss, const char *text, size_t max_elems)
{
  const cat_desc_t *d = cat_find(loss);
  if (!d) return 0;
  decoded_t a, b;
  int lifted, none;
  size_t len = strlen(text);
  decode_body(d, text, len, 0, max_elems, &a, &none);
  decode_body(d, text, len, 1, max_elems, &b, &lifted);
  if (a.rc != b.rc || a.status != b.status || strcmp(a.field, b.field) ||
      strcmp(a.message, b.message))
    fail_msg("%s: plain rc %d %d %s \"%s\", lifted rc %d %d %s \"%s\"\n%.300s", loss, a.rc,
             a.status, a.field, a.message, b.rc, b.status, b.field, b.message, text);
  assert_int_equal(a.n, b.n);
  for (int i = 0; i < a.n; i++) {
    assert_int_equal(a.t[i].dtype, b.t[i].dtype);
    assert_int_equal(a.t[i].rank, b.t[i].rank);
    assert_memory_equal(a.t[i].shape, b.t[i].shape, sizeof a.t[i].shape);
    size_t n = loss_tensor_numel(&a.t[i]) * loss_dtype_size(a.t[i].dtype);
    if (n) assert_memory_equal(a.t[i].data, b.t[i].data, n);
  }
  decoded_free(&a);
  decoded_free(&b);
  return lifted;
}

static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  s[fread(s, 1, (size_t)n, f)] = 0;
  fclose(f);
  return s;
}

/* Every request of the invalid corpus and of proto/examples. */
static void corpus_same(void **state)
{
  (void)state;
  const char *dirs[] = {"tests/data/http/invalid", "proto/examples"};
  int files = 0, lifted = 0;
  for (int k = 0; k < 2; k++) {
    DIR *dir = opendir(dirs[k]);
    assert_non_null(dir);
    struct dirent *de;
    while ((de = readdir(dir))) {
      if (!strstr(de->d_name, ".json") || strstr(de->d_name, ".response.")) continue;
      char path[512];
      snprintf(path, sizeof path, "%s/%s", dirs[k], de->d_name);
      char *text = slurp(path);
      json_t *doc = json_loads(text, JSON_ALLOW_NUL, NULL);
      free(text);
      if (!doc) fail_msg("%s is not JSON", path);
      const char *route = json_string_value(json_object_get(doc, "path"));
      const char *loss = route && !strncmp(route, "/v1/losses/", 11) ? route + 11 : NULL;
      json_t *body = k ? doc : json_object_get(doc, "body_json");
      char *btext = body ? json_dumps(body, JSON_COMPACT) : NULL;
      /* indented too: every array then has room for its placeholder */
      char *wide = body ? json_dumps(body, JSON_INDENT(8)) : NULL;
      const char *raw = body ? btext : json_string_value(json_object_get(doc, "body"));
      if (k) { /* examples: proto/examples/<loss>.request.json */
        static char name[300];
        snprintf(name, sizeof name, "%s", de->d_name);
        *strstr(name, ".request") = 0;
        loss = name;
      }
      if (loss && raw) {
        lifted += same_decode(loss, raw, 1000000);
        if (wide) lifted += same_decode(loss, wide, 1000000);
        files++;
      }
      free(btext);
      free(wide);
      json_decref(doc);
    }
    closedir(dir);
  }
  assert_true(files > 100);
  assert_true(lifted > 200); /* 247 when written */
}

/* Shapes, types and limits in the places the lift looks at. */
static void arrays_same(void **state)
{
  (void)state;
  const char *ce[] = {
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9]], \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,[10]]], \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,\"x\"]], \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,1e999]], \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,01]], \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10],], \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[[[[[[[[1,2,3,4,5,6,7,8,9,10]]]]]]]]], \"target\": [0]}}",
      "{\"inputs\": {\"logits\": [[1.5,2,3,4,5],[6,7,8,9,10]], \"target\": [0.0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 1.5]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, "
      "9223372036854775807]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, "
      "92233720368547758070]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [[0, 1]]}}",
      "{\"inputs\": {\"logits\": [], \"target\": []}}",
      "{\"inputs\": {\"logits\": [[]], \"target\": [0]}}",
      "{\"inputs\": {\"logits\": {\"shape\": [2, 5], \"data\": [1,2,3,4,5,6,7,8,9,10]}, "
      "\"target\": {\"shape\": [2], \"data\": [1, 2], \"dtype\": \"int32\"}}}",
      "{\"inputs\": {\"logits\": {\"shape\": [2, 5], \"data\": [1,2,3,4,5,6,7,8,9]}, \"target\": "
      "[1, "
      "2]}}",
      "{\"inputs\": {\"logits\": {\"shape\": [2, 5], \"data\": [[1,2,3,4,5],[6,7,8,9,10]]}, "
      "\"target\": [1, 2]}}",
      "{\"inputs\": {\"logits\": {\"shape\": [2, 5], \"dtype\": \"float32\", \"data\": "
      "[1,2,3,4,5,6,7,8,9,10]}, \"target\": {\"shape\": [2], \"data\": [1.0, 2], \"dtype\": "
      "\"int64\"}}}",
      "{\"inputs\": {\"logits\": {\"shape\": [1,2,3,4,5,6,7,8,9,10], \"data\": [1]}, \"target\": "
      "[1]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 4]}, \"params\": "
      "{\"weight\": [1,2,3,4,5], \"label_smoothing\": [1,2,3], \"reduction\": [1]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 4]}, \"grad\": [1,2], "
      "\"reduction\": [1,2,3]}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 4]}, \"reduction\": "
      "[1,2,3]}",
      "{\"inputs\": {\"logits\": {\"\\u0001\": 0}, \"target\": [0, 4]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": {\"\\u0001\": 0}}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 4], \"x\": [1, 2]}}",
      "{\"inputs\": {\"logits\" : [ [ 1 , 2 ] ,\n [ 3 , 4 ] ] , \"target\" : [ 0 , 1 ] } }",
      "{\"note\": \"[1,2,3]\", \"inputs\": {\"logits\": [[1,-0,3e2,-4.5E-1,5]], \"target\": [0]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 4]}, \"inputs\": {}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5],[6,7,8,9,10]], \"target\": [0, 4]",
  };
  int lifted = 0;
  for (size_t i = 0; i < sizeof ce / sizeof *ce; i++) {
    lifted += same_decode("cross_entropy", ce[i], 1000);
    same_decode("cross_entropy", ce[i], 6); /* the element limit (413) */
  }
  assert_true(lifted >= 15); /* 19 when written */
}

/* Random nested arrays of random literals, in every tensor form. */
static void random_same(void **state)
{
  (void)state;
  srand(5);
  sb_t s;
  for (int k = 0; k < 400; k++) {
    int rows = 1 + rand() % 6, cols = 1 + rand() % 12;
    sb_init(&s);
    sb_puts(&s, "{\"inputs\": {\"logits\": ");
    int flat = k % 3 == 0;
    if (flat) sb_printf(&s, "{\"shape\": [%d, %d], \"data\": ", rows, cols);
    sb_puts(&s, "[");
    for (int r = 0; r < rows; r++) {
      if (!flat) sb_puts(&s, r ? ",[" : "[");
      for (int c = 0; c < cols; c++) {
        double v = ((double)rand() / RAND_MAX - 0.5) * pow(10, rand() % 12 - 6);
        if (flat && (r || c)) sb_puts(&s, ",");
        if (!flat && c) sb_puts(&s, ", ");
        if (rand() % 4 == 0)
          sb_printf(&s, "%d", rand() % 100 - 50);
        else
          sb_printf(&s, "%.*g", 1 + rand() % 17, v);
      }
      if (!flat) sb_puts(&s, "]");
    }
    sb_puts(&s, flat ? "]}" : "]");
    sb_puts(&s, ", \"target\": [");
    for (int r = 0; r < rows; r++) sb_printf(&s, r ? ",%d" : "%d", rand() % cols);
    sb_puts(&s, "]}}");
    same_decode("cross_entropy", s.p, 100000);
    sb_free(&s);
  }
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
  lift_blobs_t blobs;
  size_t len = lift_body(s.p, s.len, 100000, &blobs);
  assert_int_equal(blobs.count, 1); /* not the short one, nor the one that is not base64 */
  assert_true(len < 5400);          /* the 5000 '*' stay for jansson */
  s.p[len] = 0;
  char ph0[32];
  snprintf(ph0, sizeof ph0, "\"#%s0\"", blobs.nonce);
  assert_non_null(strstr(s.p, ph0));
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
  lift_blobs_free(&blobs);
  sb_free(&s);
}

/* A long base64 string with JSON escapes ("\/" is '/', as PHP writes it) means what jansson
 * makes of it: the lift leaves it alone. */
static void escaped_b64(void **state)
{
  (void)state;
  sb_t s;
  sb_init(&s);
  sb_puts(&s, "{\"inputs\": {\"logits\": {\"shape\": [1, 3072], \"dtype\": \"float32\", "
              "\"b64\": \"");
  for (int i = 0; i < 1024; i++) sb_puts(&s, i % 7 ? "AAAAAAAAAAAAAAAA" : "AAAAAAAAAAAAAA\\/A");
  sb_puts(&s, "\"}, \"target\": [0]}}");
  assert_int_equal(same_decode("cross_entropy", s.p, 100000), 0);
  sb_free(&s);
}

/* Where a string ends and whether it holds an escape, with the escape or the closing quote at
 * every position of the 64-byte steps of the scan and around them: an escaped quote and an
 * escaped backslash before the end of a short string, and a "\/" at either end of a long
 * base64 string (left to jansson). Both are decoded with and without the lift. */
static void string_ends(void **state)
{
  (void)state;
  sb_t s;
  for (int k = 0; k < 140; k++) {
    for (int where = 0; where < 3; where++) {
      sb_init(&s);
      sb_puts(&s, "{\"note\": \"");
      for (int i = 0; i < (where ? 3 : k); i++) sb_puts(&s, "x");
      sb_puts(&s, "\\\"q\\\\\", \"inputs\": {\"logits\": {\"shape\": [1, 3072], "
                  "\"dtype\": \"float32\", \"b64\": \"");
      static const char *esc[4] = {"\\/AAA", "A\\/AA", "AA\\/A", "AAA\\/"}; /* '\\' at k % 4 */
      for (int g = 0; g < 4096; g++) { /* 16384 characters, four at a time */
        int at = where == 1 ? g == k / 4 : where == 2 ? g == 4095 - k / 4 : 0;
        sb_puts(&s, at ? esc[k % 4] : "AAAA");
      }
      sb_puts(&s, "\"}, \"target\": [0]}}");
      int lifted = same_decode("cross_entropy", s.p, 100000);
      assert_int_equal(lifted, where ? 0 : 1); /* an escaped base64 string stays */
      sb_free(&s);
    }
  }
}

/* How a long base64 string may end: padded or not (lifted), or with bad padding, a bad last
 * quad, a length that is not a multiple of 4, or no closing quote (each left to jansson and
 * the codec, which say the same). */
static void b64_endings(void **state)
{
  (void)state;
  static const struct {
    const char *tail;
    int lifted;
  } cases[] = {{"AB==\"", 1}, {"ABC=\"", 1},  {"ABCD\"", 1},     {"A===\"", 0}, {"AB=C\"", 0},
               {"AB=\"", 0},  {"ABCDE\"", 0}, {"AB==AAAA\"", 0}, {"AB*D\"", 0}, {"AAAA", 0}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    for (int len = 4096; len < 4096 + 96; len += 4) { /* the ending at each vector offset */
      sb_t s;
      sb_init(&s);
      sb_puts(&s, "{\"inputs\": {\"target\": [0], \"logits\": {\"shape\": [1, 3075], "
                  "\"dtype\": \"float32\", \"b64\": \"");
      for (int i = 0; i < len / 4; i++) sb_puts(&s, "QUJD");
      sb_puts(&s, cases[c].tail);
      if (cases[c].tail[strlen(cases[c].tail) - 1] == '"') sb_puts(&s, "}}}");
      int lifted = same_decode("cross_entropy", s.p, 100000);
      if (lifted != cases[c].lifted)
        fail_msg("ending %s at %d: lifted %d", cases[c].tail, len, lifted);
      sb_free(&s);
    }
}

/* What the lift leaves in the text: placeholders only where tensors go. */
static void placeholders(void **state)
{
  (void)state;
  char text[] = "{\"shape\": [1,2,3,4,5,6,7,8,9,10,11,12], \"inputs\": {\"a\": "
                "[1,2,3,4,5,6,7,8,9,10,11,12], \"b\": {\"shape\": [12], \"data\": "
                "[1,2,3,4,5,6,7,8,9,10,11,12]}, \"c\": [1,2,3]}, \"params\": {\"w\": "
                "[[1,2,3],[4,5,6],[7,8,9]]}, \"calls\": [[1,2,3,4,5,6,7,8,9,10,11,12]]}";
  lift_blobs_t blobs;
  size_t len = lift_body(text, strlen(text), 1000, &blobs);
  text[len] = 0;
  char want[400];
  snprintf(want, sizeof want,
           "{\"shape\": [1,2,3,4,5,6,7,8,9,10,11,12], \"inputs\": {\"a\": \"\\u0001%s0\", "
           "\"b\": {\"shape\": [12], \"data\": \"\\u0001%s1\"}, \"c\": [1,2,3]}, "
           "\"params\": {\"w\": \"\\u0001%s2\"}, \"calls\": [[1,2,3,4,5,6,7,8,9,10,11,12]]}",
           blobs.nonce, blobs.nonce, blobs.nonce);
  assert_string_equal(text, want);
  assert_int_equal(strlen(blobs.nonce), 8);
  assert_int_equal(blobs.count, 3);
  assert_int_equal(blobs.b[2].rank, 2);
  assert_int_equal(blobs.b[2].shape[0], 3);
  assert_int_equal(blobs.b[2].shape[1], 3);
  assert_true(blobs.b[2].all_int);
  assert_int_equal(((int64_t *)blobs.b[2].data)[8], 9);
  /* Only the exact text names a blob: the mark, the nonce, the index in digits. */
  char ref[32];
  const char *tails[] = {"2", "02", "+2", " 2", "2 ", "2x", "", "3", "-1", "0002"};
  const int good[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 10; i++) {
    snprintf(ref, sizeof ref, "\x01%s%s", blobs.nonce, tails[i]);
    assert_true((lift_numbers_ref(&blobs, ref) == &blobs.b[2]) == good[i]);
    ref[0] = '#'; /* the mark of the other kind */
    assert_null(lift_b64_ref(&blobs, ref));
  }
  lift_blobs_free(&blobs);
  lift_blobs_t other;
  char again[] = "{\"inputs\": {\"a\": [1,2,3,4,5,6,7,8,9,10,11,12]}}";
  lift_body(again, strlen(again), 1000, &other);
  assert_string_not_equal(other.nonce, blobs.nonce); /* drawn per body */
  lift_blobs_free(&other);
}

/* Placeholders written by the client are not the lift's: they keep their plain meaning, also
 * when the body has lifted tensors they could otherwise point at (found by the fuzzer). */
static void forged_placeholders(void **state)
{
  (void)state;
  const char *forged[] = {
      "{\"inputs\": {\"logits\": {\"\\u0001\": 0}, \"target\": [[0,1,2,3,4,5,6,7,8,9]]}}",
      "{\"inputs\": {\"logits\": {\"\\u000100000000\": 0}, \"target\": [[0,1,2,3,4,5,6,7,8,9]]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5,6,7,8,9,10]], \"target\": {\"\\u0001\": 0}}}",
      "{\"inputs\": {\"logits\": \"\\u00010\", \"target\": [[0,1,2,3,4,5,6,7,8,9]]}}",
      "{\"inputs\": {\"logits\": \"\\u0001000000000\", \"target\": [[0,1,2,3,4,5,6,7,8,9]]}}",
      "{\"inputs\": {\"logits\": {\"shape\": [1, 10], \"data\": \"\\u00010\"}, \"target\": "
      "[[0,1,2,3,4,5,6,7,8,9]]}}",
      "{\"inputs\": {\"logits\": [[1,2,3,4,5,6,7,8,9,10]], \"target\": \"\\u00010\"}}",
  };
  for (size_t i = 0; i < sizeof forged / sizeof *forged; i++)
    same_decode("cross_entropy", forged[i], 1000);
  sb_t s;
  sb_init(&s);
  sb_puts(&s, "{\"inputs\": {\"logits\": {\"shape\": [1, 3072], \"dtype\": \"float32\", "
              "\"b64\": \"#0\"}, \"target\": {\"shape\": [1], \"dtype\": \"int64\", \"b64\": \"");
  for (int i = 0; i < 1366; i++) sb_puts(&s, "AAAA"); /* 4098 bytes: a lifted blob #0 */
  sb_puts(&s, "\"}}}");
  same_decode("cross_entropy", s.p, 100000);
  sb_free(&s);
}

/* A lifted array where a parameter takes a string, a number or a flag: the same error as the
 * array itself, never the placeholder's text. */
static void lifted_params(void **state)
{
  (void)state;
  const char *gp = "{\"inputs\": {\"scores\": [[[[1,2],[3,4]]]], \"labels\": [[[[0,1],[0,0]]]]}, "
                   "\"params\": {\"%s\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}}";
  const char *names[] = {"variant", "threshold", "rope", "tril_mask"};
  char text[300];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(text, sizeof text, gp, names[i]);
    assert_int_equal(same_decode("global_pointer", text, 1000), 3); /* the array is lifted */
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(numbers_as_jansson),  cmocka_unit_test(reals_as_strtod),
      cmocka_unit_test(arrays_same),         cmocka_unit_test(corpus_same),
      cmocka_unit_test(random_same),         cmocka_unit_test(lifted_b64),
      cmocka_unit_test(placeholders),        cmocka_unit_test(escaped_b64),
      cmocka_unit_test(string_ends),         cmocka_unit_test(b64_endings),
      cmocka_unit_test(forged_placeholders), cmocka_unit_test(lifted_params)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
