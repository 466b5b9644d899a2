/* test_entropy.c - entropy of categorical logits (lib/src/entropy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void golden(void **state)
{
  (void)state;
  GOLDEN("entropy");
}

static void fd_random(void **state)
{
  (void)state;
  unsigned long long s = 41;
  size_t sh[2] = {5, 7};
  char *z = jt_rand(&s, 2, sh, -4, 4);
  FD_OK(strf("{\"loss\":\"entropy\",\"inputs\":{\"logits\":%s}}", z), 1e-6, 1e-6, 1e-10);
  FD_OK(strf("{\"loss\":\"entropy\",\"inputs\":{\"logits\":%s},\"reduction\":\"sum\"}", z), 1e-6,
        1e-6, 1e-10);
  free(z);
}

static void edge_cases(void **state)
{
  (void)state;
  loss_result_t r;
  assert_int_equal(run_request("{\"loss\":\"entropy\",\"inputs\":{\"logits\":[0,0,0,0]}}", &r),
                   LOSS_OK);
  assert_true(close_enough(r.loss, log(4), 1e-15, 0));
  for (int i = 0; i < 4; i++) assert_true(fabs(((double *)r.grads[0].data)[i]) < 1e-15);
  loss_result_free(&r);
  /* A row that masks every class, and +inf, are refused. */
  EXPECT_STATUS(strf("{\"loss\":\"entropy\",\"inputs\":{\"logits\":{\"shape\":[2],\"dtype\":"
                     "\"float64\",\"b64\":\"AAAAAAAA8P8AAAAAAADw/w==\"}}}"),
                LOSS_EPARAM);
  EXPECT_STATUS(strf("{\"loss\":\"entropy\",\"inputs\":{\"logits\":{\"shape\":[2],\"dtype\":"
                     "\"float64\",\"b64\":\"AAAAAAAA8H8AAAAAAADw/w==\"}}}"),
                LOSS_ENONFINITE);
  EXPECT_STATUS(strf("{\"loss\":\"entropy\",\"inputs\":{\"logits\":[[[1]]]}}"), LOSS_ESHAPE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_random),
                                     cmocka_unit_test(edge_cases)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
