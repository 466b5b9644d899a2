/* test_mt_method.c - the weighting methods' arithmetic against the torch trajectories
 * (server/mt_method.c; tests/golden/multitask_trajectories.json), config parsing and state JSON
 * round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "golden.h"
#include "mt_method.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void trajectories(void **state)
{
  (void)state;
  json_t *cases = json_load_file("tests/golden/multitask_trajectories.json", 0, NULL);
  assert_non_null(cases);
  for (size_t c = 0; c < json_array_size(cases); c++) {
    json_t *cs = json_array_get(cases, c);
    mt_config_t cfg;
    api_error_t e;
    assert_int_equal(mt_config_parse(json_object_get(cs, "config"), 0, &cfg, &e), 0);
    mt_state_t st;
    mt_state_init(&cfg, &st);
    json_t *ranks = json_object_get(cs, "ranks"), *exp = json_object_get(cs, "expect");
    json_t *norms = json_object_get(cs, "grad_norms");
    for (size_t t = 0; t < json_array_size(ranks); t++) {
      double L[MT_MAX_TASKS] = {0}, gn[MT_MAX_TASKS] = {0}, w[MT_MAX_TASKS], total;
      for (int k = 0; k < 2; k++)
        for (int i = 0; i < cfg.T; i++) {
          L[i] += json_number_value(
              json_array_get(json_array_get(json_array_get(ranks, t), (size_t)k), (size_t)i));
          if (norms)
            gn[i] += json_number_value(
                json_array_get(json_array_get(json_array_get(norms, t), (size_t)k), (size_t)i));
        }
      for (int i = 0; i < cfg.T; i++) L[i] /= 2, gn[i] /= 2;
      /* A JSON round trip of the state on every step must not change the trajectory. */
      sb_t s;
      sb_init(&s);
      mt_state_json(&s, &cfg, &st);
      json_t *j = json_loads(s.p, 0, NULL);
      int64_t step = st.step;
      assert_int_equal(mt_state_parse(j, &cfg, &st), 0);
      st.step = step;
      json_decref(j);
      sb_free(&s);
      mt_apply(&cfg, &st, L, gn, w, &total);
      json_t *et = json_array_get(exp, t);
      for (int i = 0; i < cfg.T; i++) {
        double want = json_number_value(json_array_get(json_object_get(et, "weights"), (size_t)i));
        if (!close_enough(w[i], want, 1e-10, 1e-13))
          fail_msg("%s step %zu task %d: %.17g vs %.17g",
                   json_string_value(json_object_get(cs, "name")), t, i, w[i], want);
      }
      assert_true(
          close_enough(total, json_number_value(json_object_get(et, "total")), 1e-10, 1e-13));
    }
  }
  json_decref(cases);
}

static void config(void **state)
{
  (void)state;
  const char *ok = "{\"method\": \"gradnorm\", \"tasks\": [\"a\", \"b\"], \"world_size\": 4, "
                   "\"params\": {\"alpha\": 0.5}}";
  json_t *j = json_loads(ok, 0, NULL);
  mt_config_t a, b;
  api_error_t e;
  assert_int_equal(mt_config_parse(j, 0, &a, &e), 0);
  assert_true(a.alpha == 0.5 && a.lr == 0.025 && a.opt == LOSS_OPT_ADAM && a.world == 4);
  assert_int_equal(mt_config_parse(j, 0, &b, &e), 0);
  assert_true(mt_config_equal(&a, &b));
  b.world = 3;
  assert_false(mt_config_equal(&a, &b));
  json_decref(j);
  const char *bad[][2] = {
      {"{\"tasks\": [\"a\"]}", "400"},
      {"{\"method\": \"x\", \"tasks\": [\"a\"]}", "422"},
      {"{\"method\": \"static\", \"tasks\": []}", "422"},
      {"{\"method\": \"static\", \"tasks\": [\"a\"], \"params\": {\"lr\": 1}}", "400"},
      {"{\"method\": \"dwa\", \"tasks\": [\"a\"], \"params\": {\"window\": 0}}", "422"},
      {"{\"method\": \"static\", \"tasks\": [\"a\"], \"world_size\": 5000}", "422"},
      {"{\"method\": \"static\", \"tasks\": [\"a\"], \"nope\": 1}", "400"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    j = json_loads(bad[i][0], 0, NULL);
    assert_int_equal(mt_config_parse(j, 0, &a, &e), -1);
    assert_int_equal(e.status, atoi(bad[i][1]));
    json_decref(j);
  }
}

/* A config's JSON has the shortest digits that read back (0.9, not 0.90000000000000002), and
 * parses back to the same config. */
static void config_json(void **state)
{
  (void)state;
  const char *in[][2] = {
      {"{\"method\": \"gradnorm\", \"tasks\": [\"a\", \"b\"], \"world_size\": 2, "
       "\"params\": {\"alpha\": 0.3, \"betas\": [0.9, 0.999], \"eps\": 1e-8}}",
       "\"params\":{\"alpha\":0.3,\"warmup_steps\":1,\"optimizer\":\"adam\",\"lr\":0.025,"
       "\"betas\":[0.9,0.999],\"eps\":1.0e-8}"},
      {"{\"method\": \"uncertainty\", \"tasks\": [\"a\"], \"params\": {\"lr\": 0.1}}",
       "\"params\":{\"form\":\"libmtl\",\"optimizer\":\"sgd\",\"lr\":0.1,"
       "\"betas\":[0.9,0.999],\"eps\":1.0e-8}"},
      {"{\"method\": \"dwa\", \"tasks\": [\"a\", \"b\"], \"params\": {\"temperature\": 0.7}}",
       "\"params\":{\"temperature\":0.7,\"window\":1}"},
  };
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    json_t *j = json_loads(in[i][0], 0, NULL);
    mt_config_t a, b;
    api_error_t e;
    assert_int_equal(mt_config_parse(j, 0, &a, &e), 0);
    json_decref(j);
    sb_t s;
    sb_init(&s);
    sb_puts(&s, "{");
    mt_config_json(&s, &a);
    sb_puts(&s, "}");
    char *text = sb_take(&s, NULL);
    if (!strstr(text, in[i][1])) fail_msg("%s\nlacks %s", text, in[i][1]);
    j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(mt_config_parse(j, 1, &b, &e), 0);
    assert_true(mt_config_equal(&a, &b));
    json_decref(j);
    free(text);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {cmocka_unit_test(trajectories), cmocka_unit_test(config),
                                     cmocka_unit_test(config_json)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
