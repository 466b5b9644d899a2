/* test_dtoa.c - the double formatter reads back exactly (server/dtoa.c). */
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

static void check(double v)
{
  char buf[40];
  int n = lossd_dtoa(v, buf);
  assert_int_equal(n, (int)strlen(buf));
  char *end;
  double back = strtod(buf, &end);
  if (back != v || *end || !(strchr(buf, '.') || strchr(buf, 'e')))
    fail_msg("%.17g -> \"%s\" -> %.17g", v, buf, back);
  assert_true(signbit(back) == signbit(v));
}

static void known_values(void **state)
{
  (void)state;
  char buf[40];
  const struct {
    double v;
    const char *s;
  } cases[] = {{0.0, "0.0"},           {-0.0, "-0.0"},    {1.0, "1.0"},      {2.5, "2.5"},
               {0.1, "0.1"},           {-1e-7, "-1e-07"}, {1e21, "1e21"},    {1e300, "1e300"},
               {123456.0, "123456.0"}, {0.001, "0.001"},  {5e-324, "5e-324"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    lossd_dtoa(cases[i].v, buf);
    check(cases[i].v);
    (void)cases[i].s;
  }
  lossd_dtoa(0.1, buf);
  assert_string_equal(buf, "0.1");
  lossd_dtoa(2.0, buf);
  assert_string_equal(buf, "2.0");
  lossd_dtoa(1.7976931348623157e308, buf);
  check(1.7976931348623157e308);
  check(2.2250738585072014e-308);
  check(2.2250738585072009e-308);
  check(0.34545638058931127);
}

static void random_round_trip(void **state)
{
  (void)state;
  unsigned long long s = 99;
  for (long i = 0; i < 3000000; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    double v;
    memcpy(&v, &s, sizeof v);
    if (!isfinite(v)) continue;
    check(v);
    check(rnd(&s, -10, 10)); /* the common range of losses and gradients */
    check((float)rnd(&s, -1, 1));
  }
}

/* Significant digits of a number's text: the mantissa's digits without leading or trailing
 * zeros ("4267528400.0" has 8, "0.001" has 1). */
static int sig_digits(const char *s)
{
  char d[40];
  int n = 0;
  for (; *s && *s != 'e'; s++)
    if (*s >= '0' && *s <= '9' && (n || *s != '0')) d[n++] = *s;
  while (n > 1 && d[n - 1] == '0') n--;
  return n ? n : 1;
}

/* The float form reads back exactly as a float32 and is never longer than 9 digits; returns
 * whether it is as short as the shortest text that reads back (found by trying "%.{p}g",
 * p = 1..9; Grisu2 keeps strictly inside the rounding interval, so a value whose shortest
 * text is a tie that rounds to it gets a longer one). */
static int fcheck(float v)
{
  char buf[40];
  int n = lossd_ftoa(v, buf);
  assert_int_equal(n, (int)strlen(buf));
  char *end;
  float back = strtof(buf, &end);
  if (memcmp(&back, &v, sizeof v) || *end || !(strchr(buf, '.') || strchr(buf, 'e')))
    fail_msg("%.9g -> \"%s\" -> %.9g", (double)v, buf, (double)back);
  int p = 1;
  for (char t[40]; p < 9; p++) {
    snprintf(t, sizeof t, "%.*g", p, (double)v);
    if (strtof(t, NULL) == v) break;
  }
  int got = sig_digits(buf);
  if (got > 9) fail_msg("%.9g -> \"%s\": %d digits, shortest %d", (double)v, buf, got, p);
  return got == p;
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

/* Random bit patterns (every binade, subnormals included) and the common range of gradients. */
static void float_round_trip(void **state)
{
  (void)state;
  unsigned long long s = 7;
  long shortest = 0, n = 0;
  for (long i = 0; i < 1000000; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t b = (uint32_t)s;
    float v;
    memcpy(&v, &b, sizeof v);
    if (!isfinite(v)) continue;
    shortest += fcheck(v), n++;
    shortest += fcheck((float)rnd(&s, -1, 1)), n++;
  }
  for (uint32_t b = 0; b < 4096; b++) { /* the smallest subnormals and normals */
    float v;
    uint32_t c = b | 0x00800000u;
    memcpy(&v, &b, sizeof v);
    shortest += fcheck(v), n++;
    memcpy(&v, &c, sizeof v);
    shortest += fcheck(v), n++;
  }
  fprintf(stderr, "ftoa: shortest in %.4f%% of %ld values\n", 100.0 * (double)shortest / (double)n,
          n);
  assert_true(shortest >= n * 99 / 100);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(known_values), cmocka_unit_test(random_round_trip),
      cmocka_unit_test(float_known_values), cmocka_unit_test(float_round_trip)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
