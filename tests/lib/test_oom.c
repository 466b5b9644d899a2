/* test_oom.c - allocation failure: every allocation a loss makes fails in turn, on every
 * golden case; the call must answer LOSS_ENOMEM with no output left allocated (and, under
 * ASan/LSan in make check, nothing leaked). The library's malloc, calloc and realloc are
 * wrapped at link time (-Wl,--wrap), so jansson's own allocations are untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "catalog.h"
#include "codec.h"
#include "golden.h"

#include <stdio.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);

static long countdown = -1; /* fail the allocation that takes it to 0; -1: never */
static long failures;

static int fail_now(void)
{
  if (countdown < 0) return 0;
  if (--countdown == 0) {
    failures++;
    return 1;
  }
  return 0;
}

void *__wrap_malloc(size_t n)
{
  return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t s)
{
  return fail_now() ? NULL : __real_calloc(n, s);
}

void *__wrap_realloc(void *p, size_t n)
{
  return fail_now() ? NULL : __real_realloc(p, n);
}

static void every_allocation_fails_cleanly(void **state)
{
  (void)state;
  const char *fams[] = {"cross_entropy",  "bce",      "kl_div", "entropy",  "focal", "ranking",
                        "global_pointer", "sinkhorn", "emo",    "multitask"};
  long calls = 0, injected = 0;
  for (size_t f = 0; f < sizeof fams / sizeof *fams; f++) {
    char path[256];
    snprintf(path, sizeof path, "tests/golden/%s.json", fams[f]);
    json_t *cases = json_load_file(path, 0, NULL);
    assert_non_null(cases);
    for (size_t c = 0; c < json_array_size(cases); c++) {
      json_t *req = json_object_get(json_array_get(cases, c), "request");
      const cat_desc_t *d = cat_find(json_string_value(json_object_get(req, "loss")));
      codec_limits_t lim = {1u << 26, NULL};
      loss_req_t lr;
      api_error_t e;
      assert_int_equal(codec_decode(d, req, 1, &lim, &lr, &e), 0);
      for (long nth = 1;; nth++) {
        loss_result_t r;
        loss_result_init(&r);
        failures = 0;
        countdown = nth;
        int rc = d->run(d, &lr.call, &r);
        countdown = -1;
        calls++;
        if (!failures) { /* every allocation of this case has been failed once */
          assert_int_equal(rc, LOSS_OK);
          loss_result_free(&r);
          break;
        }
        injected++;
        if (rc != LOSS_ENOMEM)
          fail_msg("%s case %zu, allocation %ld: status %d", fams[f], c, nth, rc);
        assert_int_equal(r.n_grads, 0);
        assert_int_equal(r.n_extras, 0);
        assert_false(r.has_losses);
        loss_result_free(&r);
      }
      codec_req_free(&lr);
    }
    json_decref(cases);
  }
  fprintf(stderr, "oom: %ld calls, %ld with an allocation failed\n", calls, injected);
  assert_true(injected > 100);
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(every_allocation_fails_cleanly)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
