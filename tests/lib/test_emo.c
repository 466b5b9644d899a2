/* test_emo.c - EMO (lib/src/emo.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void golden(void **state)
{
  (void)state;
  GOLDEN("emo");
}

static void fd_emd(void **state)
{
  (void)state;
  unsigned long long s = 121;
  size_t zs[2] = {5, 6}, es[2] = {6, 3}, cs[2] = {6, 6};
  char *z = jt_rand(&s, 2, zs, -3, 3), *e = jt_rand(&s, 2, es, -1, 1),
       *c = jt_rand(&s, 2, cs, 0, 2);
  FD_OK(strf("{\"loss\":\"emo\",\"inputs\":{\"logits\":%s,\"target\":[0,5,-100,2,3],\"embeddings\":"
             "%s},"
             "\"params\":{\"mode\":\"emd\"}}",
             z, e),
        1e-6, 1e-6, 1e-9);
  FD_OK(strf("{\"loss\":\"emo\",\"inputs\":{\"logits\":%s,\"target\":[0,5,1,2,3],\"cost\":%s},"
             "\"params\":{\"mode\":\"emd\"}}",
             z, c),
        1e-6, 1e-6, 1e-9);
  free(z), free(e), free(c);
}

/* Mode 1's value is the MLE (the detached ratio times emo is mle), mode 2's is 2 emo. */
static void mode_values(void **state)
{
  (void)state;
  const char *body =
      "{\"loss\":\"emo\",\"inputs\":{\"logits\":[[1,2,0.5],[0,-1,3]],\"target\":[1,2],"
      "\"embeddings\":[[1,0],[0,1],[1,1]]},\"params\":{\"mode\":\"%s\"}}";
  loss_result_t r;
  char *j = strf(body, "1");
  assert_int_equal(run_request(j, &r), LOSS_OK);
  assert_true(close_enough(r.loss, *(double *)loss_result_extra(&r, "mle")->data, 1e-9, 0));
  loss_result_free(&r);
  free(j);
  j = strf("{\"loss\":\"emo\",\"inputs\":{\"logits\":[[1,2]],\"target\":[-100],\"embeddings\":"
           "[[1,0],[0,1]]}}");
  assert_int_equal(run_request(j, &r), LOSS_OK);
  assert_true(r.loss == 0.0);
  loss_result_free(&r);
  free(j);
}

static void invalid(void **state)
{
  (void)state;
  EXPECT_STATUS(
      strf("{\"loss\":\"emo\",\"inputs\":{\"logits\":[[1,2]],\"target\":[2],\"embeddings\":"
           "[[1,0],[0,1]]}}"),
      LOSS_ERANGE);
  EXPECT_STATUS(strf("{\"loss\":\"emo\",\"inputs\":{\"logits\":[[1,2]],\"target\":[1]}}"),
                LOSS_EMISSING);
  EXPECT_STATUS(
      strf("{\"loss\":\"emo\",\"inputs\":{\"logits\":[[1,2]],\"target\":[1],\"embeddings\":"
           "[[0,0],[0,1]]}}"),
      LOSS_EPARAM);
  EXPECT_STATUS(
      strf("{\"loss\":\"emo\",\"inputs\":{\"logits\":[[1,2]],\"target\":[1],\"cost\":[[0,1]]}}"),
      LOSS_ESHAPE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(golden), cmocka_unit_test(fd_emd),
                                     cmocka_unit_test(mode_values), cmocka_unit_test(invalid)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
