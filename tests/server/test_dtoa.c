/* test_dtoa.c - the number writer gives the shortest text that reads back (server/dtoa.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dtoa.h"
#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The significant digits of a number's text (no leading or trailing zeros) into d, and the
 * power of ten of its first digit: "0.00125" -> "125", -3; "-1.25e-7" -> "125", -7. */
static void decimal_of(const char *s, char *d, int *e10)
{
  int n = 0, pos = 0, dot = -1, lead = 0;
  for (; *s && *s != 'e'; s++) {
    if (*s == '-') continue;
    if (*s == '.') {
      dot = pos;
      continue;
    }
    if (n || *s != '0') {
      if (!n) lead = pos;
      d[n++] = *s;
    }
    pos++;
  }
  if (dot < 0) dot = pos;
  while (n > 1 && d[n - 1] == '0') n--;
  d[n] = 0;
  *e10 = dot - lead - 1 + (*s == 'e' ? atoi(s + 1) : 0);
}

/* Whether v's significand is the first of its binade (its rounding interval is then twice as
 * wide above v as below). */
static int binade_start(double v, int f)
{
  if (f) {
    float x = (float)v;
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return !(b & 0x007FFFFFu);
  }
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return !(b & 0x000FFFFFFFFFFFFFull);
}

static long n_checked, n_shorter;

/* The text of v (a float32 when f) reads back to exactly v, is JSON with a '.' or an 'e', and
 * is the shortest such text and of those the closest to v: glibc's correctly rounded "%.{p}e"
 * at the smallest p that reads back. At the start of a binade a decimal with fewer digits can
 * lie in the wider upper half of the interval though the correctly rounded one misses the
 * narrow lower half; the text is then shorter than glibc's, and still reads back. */
static void check_as(double v, int f)
{
  char buf[40], ref[40], d[40], rd[40];
  int n = f ? lossd_ftoa((float)v, buf) : lossd_dtoa(v, buf);
  assert_int_equal(n, (int)strlen(buf));
  char *end;
  double back = f ? (double)strtof(buf, &end) : strtod(buf, &end);
  if (memcmp(&back, &v, sizeof v) || *end || !(strchr(buf, '.') || strchr(buf, 'e')))
    fail_msg("%.17g -> \"%s\" -> %.17g", v, buf, back);
  if (v == 0) return;
  int p = 1, e, re;
  for (;; p++) {
    snprintf(ref, sizeof ref, "%.*e", p - 1, v);
    if (f ? strtof(ref, NULL) == (float)v : strtod(ref, NULL) == v) break;
  }
  decimal_of(buf, d, &e), decimal_of(ref, rd, &re);
  n_checked++;
  if (strlen(d) < strlen(rd) && binade_start(v, f)) {
    n_shorter++;
    return;
  }
  if (strcmp(d, rd) || e != re) fail_msg("%.17g -> \"%s\", the shortest is \"%s\"", v, buf, ref);
}

static void check(double v)
{
  check_as(v, 0);
}

static void fcheck(float v)
{
  check_as(v, 1);
}

static void known_values(void **state)
{
  (void)state;
  char buf[40];
  const struct {
    double v;
    const char *s;
  } cases[] = {{0.0, "0.0"},
               {-0.0, "-0.0"},
               {1.0, "1.0"},
               {2.5, "2.5"},
               {0.1, "0.1"},
               {-1e-7, "-1.0e-7"},
               {1e21, "1.0e21"},
               {1e20, "100000000000000000000.0"},
               {1e300, "1.0e300"},
               {123456.0, "123456.0"},
               {0.001, "0.001"},
               {1e-6, "0.000001"},
               {5e-324, "5.0e-324"},
               {0.30000000000000004, "0.30000000000000004"},
               {-2.302585092994046, "-2.302585092994046"},
               {1.7976931348623157e308, "1.7976931348623157e308"},
               {2.2250738585072014e-308, "2.2250738585072014e-308"},
               {9007199254740993.0, "9007199254740992.0"},
               {123456789012345680.0, "123456789012345680.0"},
               {0.34545638058931127, "0.3454563805893113"},
               {5.684341886080802e-14, "5.684341886080802e-14"}}; /* 2^-44: binade start */
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    lossd_dtoa(cases[i].v, buf);
    assert_string_equal(buf, cases[i].s);
    check(cases[i].v);
  }
  check(2.2250738585072009e-308);
  check(-0.0);
}

static void random_round_trip(void **state)
{
  (void)state;
  unsigned long long s = 99;
  for (long i = 0; i < 50000; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    double v;
    memcpy(&v, &s, sizeof v);
    if (isfinite(v)) check(v); /* every binade, subnormals included */
    check(rnd(&s, -10, 10));   /* the common range of losses and gradients */
    check((float)rnd(&s, -1, 1));
    uint64_t b = s & 0xFFF0000000000000ull; /* the start of a binade */
    memcpy(&v, &b, sizeof v);
    if (isfinite(v)) check(v);
  }
  fprintf(stderr, "dtoa: %ld values, %ld shorter than glibc's at a binade start\n", n_checked,
          n_shorter);
  assert_true(n_shorter > 0); /* the case is reached */
}

static void float_known_values(void **state)
{
  (void)state;
  char buf[40];
  const struct {
    float v;
    const char *s;
  } cases[] = {{0.0f, "0.0"},
               {-0.0f, "-0.0"},
               {1.0f, "1.0"},
               {0.1f, "0.1"},
               {-2.5f, "-2.5"},
               {1e-7f, "1.0e-7"},
               {3.4028235e38f, "3.4028235e38"},
               {1e-45f, "1.0e-45"},
               {1.1754944e-38f, "1.1754944e-38"},
               {16777216.0f, "16777216.0"},
               {0.3f, "0.3"},
               {123456.79f, "123456.79"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    lossd_ftoa(cases[i].v, buf);
    assert_string_equal(buf, cases[i].s);
    fcheck(cases[i].v);
  }
}

/* Random bit patterns (every binade, subnormals included), the common range of gradients, and
 * the smallest subnormals and normals. Every positive float was checked once, offline, to read
 * back and to have no shorter text that reads back. */
static void float_round_trip(void **state)
{
  (void)state;
  unsigned long long s = 7;
  for (long i = 0; i < 50000; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t b = (uint32_t)s;
    float v;
    memcpy(&v, &b, sizeof v);
    if (isfinite(v)) fcheck(v);
    fcheck((float)rnd(&s, -1, 1));
  }
  for (uint32_t b = 0; b < 4096; b++) {
    float v;
    uint32_t c = b | 0x00800000u;
    memcpy(&v, &b, sizeof v);
    fcheck(v);
    memcpy(&v, &c, sizeof v);
    fcheck(v);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(known_values), cmocka_unit_test(random_round_trip),
      cmocka_unit_test(float_known_values), cmocka_unit_test(float_round_trip)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
