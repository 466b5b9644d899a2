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

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(known_values),
                                     cmocka_unit_test(random_round_trip)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
