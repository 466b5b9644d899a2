/* test_common.c - status table, results, tensor helpers (lib/src/common.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void status_table(void **state)
{
  (void)state;
  assert_string_equal(loss_strerror(LOSS_OK), "ok");
  assert_string_equal(loss_status_name(LOSS_ESHAPE), "ESHAPE");
  assert_string_equal(loss_strerror(LOSS_ERANGE), "index out of range");
  assert_string_equal(loss_strerror(12345), "unknown status");
  assert_string_equal(loss_status_name(-999), "UNKNOWN");
}

static void dtypes_and_numel(void **state)
{
  (void)state;
  assert_int_equal(loss_dtype_size(LOSS_FLOAT32), 4);
  assert_int_equal(loss_dtype_size(LOSS_INT64), 8);
  assert_string_equal(loss_dtype_name(LOSS_INT32), "int32");
  size_t big[3] = {SIZE_MAX / 2, 4, 1};
  loss_tensor_t t = tview(NULL, LOSS_FLOAT32, 3, big);
  assert_int_equal(loss_tensor_numel(&t), 0); /* overflow is reported as 0 */
  size_t s[2] = {3, 5};
  t = tview(NULL, LOSS_FLOAT32, 2, s);
  assert_int_equal(loss_tensor_numel(&t), 15);
  t.rank = 0;
  assert_int_equal(loss_tensor_numel(&t), 1);
}

static void result_lifecycle(void **state)
{
  (void)state;
  loss_result_free(NULL);
  loss_result_t r;
  loss_result_init(&r);
  float z[6] = {1, 2, 3, 0, 0, 0};
  int64_t y[2] = {2, 0};
  size_t zs[2] = {2, 3}, ys[1] = {2};
  loss_tensor_t tz = tview(z, LOSS_FLOAT32, 2, zs), ty = tview(y, LOSS_INT64, 1, ys);
  loss_ce_params_t p = loss_ce_params_default();
  loss_opts_t o = loss_opts_default();
  assert_int_equal(loss_cross_entropy(&tz, &ty, &p, &o, &r), LOSS_OK);
  const loss_output_t *g = loss_result_grad(&r, "logits");
  assert_non_null(g);
  assert_int_equal(g->dtype, LOSS_FLOAT32); /* gradients keep their input's dtype */
  assert_null(loss_result_grad(&r, "target"));
  assert_null(loss_result_extra(&r, "entropy"));
  loss_result_free(&r);
  assert_int_equal(r.n_grads, 0);
  /* Errors leave nothing allocated and say which field. */
  y[0] = 7;
  assert_int_equal(loss_cross_entropy(&tz, &ty, &p, &o, &r), LOSS_ERANGE);
  assert_int_equal(r.n_grads, 0);
  assert_string_equal(r.err_field, "inputs.target");
  assert_non_null(strstr(r.err_msg, "out of bounds"));
  loss_result_free(&r);
}

static void stable_helpers(void **state)
{
  (void)state;
  assert_true(close_enough(loss__log_sigmoid(-800), -800, 0, 1e-12));
  assert_true(close_enough(loss__log_sigmoid(800), 0, 0, 1e-300));
  assert_true(close_enough(loss__softplus(800), 800, 1e-15, 0));
  assert_true(close_enough(loss__log1mexp(-1e-20), log(1e-20), 1e-12, 0));
  assert_true(close_enough(loss__log1mexp(-50), -exp(-50), 1e-12, 0));
  double x[3] = {-INFINITY, -INFINITY, -INFINITY};
  assert_true(loss__lse(x, 3) == -INFINITY);
  assert_true(loss__lse(x, 0) == -INFINITY);
  double y[3] = {1000, 1000, -INFINITY};
  assert_true(close_enough(loss__lse(y, 3), 1000 + log(2), 1e-15, 0));
  loss__lse_t a;
  loss__lse_init(&a);
  for (int i = 0; i < 3; i++) loss__lse_add(&a, y[i]);
  assert_true(close_enough(loss__lse_get(&a), 1000 + log(2), 1e-15, 0));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(status_table), cmocka_unit_test(dtypes_and_numel),
      cmocka_unit_test(result_lifecycle), cmocka_unit_test(stable_helpers)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
