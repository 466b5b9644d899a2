/* test_catalog.c - the descriptors (server/catalog.c): unique names, limits, defaults, and which
 * losses may share a pool item. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "catalog.h"

#include <string.h>

static void descriptors_well_formed(void **state)
{
  (void)state;
  int n;
  const cat_desc_t *all = cat_all(&n);
  assert_true(n >= 14);
  for (int i = 0; i < n; i++) {
    const cat_desc_t *d = &all[i];
    assert_ptr_equal(cat_find(d->name), d);
    for (int j = 0; j < i; j++) assert_string_not_equal(all[j].name, d->name);
    assert_true(d->n_in >= 1 && d->n_in <= CAT_MAX_IN);
    assert_true(d->n_par >= 0 && d->n_par <= CAT_MAX_PAR);
    assert_non_null(d->run);
    for (int k = 0; k < d->n_in; k++) assert_int_equal(cat_input_index(d, d->in[k].name), k);
    for (int k = 0; k < d->n_par; k++) assert_int_equal(cat_param_index(d, d->par[k].name), k);
  }
  assert_null(cat_find("no_such_loss"));
}

/* Only losses whose work grows with their body may be batched with other small requests
 * (server/http.c): a small Sinkhorn, EMO, Circle or GlobalPointer q/k body can ask for seconds
 * of work (iterations, N x N pairs, L x L spans), and would hold up its batch. */
static void batchable_losses(void **state)
{
  (void)state;
  static const char *const linear[] = {"cross_entropy", "binary_cross_entropy_with_logits",
                                       "kl_div",        "entropy",
                                       "sigmoid_focal", "softmax_focal",
                                       "multitask"};
  int n;
  const cat_desc_t *all = cat_all(&n);
  for (int i = 0; i < n; i++) {
    int want = 0;
    for (size_t k = 0; k < sizeof linear / sizeof *linear; k++)
      want |= !strcmp(all[i].name, linear[k]);
    if (all[i].batchable != want)
      fail_msg("%s: batchable %d, expected %d", all[i].name, all[i].batchable, want);
  }
  assert_int_equal(cat_find("sinkhorn")->batchable, 0);
  assert_int_equal(cat_find("cross_entropy")->batchable, 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(descriptors_well_formed),
                                     cmocka_unit_test(batchable_losses)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
