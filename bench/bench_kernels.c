/* bench_kernels.c - time one libloss kernel on input files written by bench/bench.py.
 *
 *   bench_kernels CASE DIR REPEATS   prints "CASE <median ms>"
 *   bench_kernels bandwidth          prints "bandwidth <GB/s> read <GB/s>" (a copy pass and a
 *                                    read-only pass, 1 thread)
 * Inputs are raw little-endian files DIR/<name>.bin with their shapes in DIR/<name>.shape. */
#include "loss.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static loss_tensor_t load(const char *dir, const char *name, loss_dtype_t dt)
{
  char path[512];
  loss_tensor_t t;
  memset(&t, 0, sizeof t);
  t.dtype = dt;
  snprintf(path, sizeof path, "%s/%s.shape", dir, name);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "bench: missing %s\n", path);
    exit(2);
  }
  size_t d;
  while (t.rank < LOSS_MAX_RANK && fscanf(f, "%zu", &d) == 1) t.shape[t.rank++] = d;
  fclose(f);
  size_t n = loss_tensor_numel(&t), bytes = n * loss_dtype_size(dt);
  void *buf = malloc(bytes);
  snprintf(path, sizeof path, "%s/%s.bin", dir, name);
  f = fopen(path, "rb");
  if (!buf || !f || fread(buf, 1, bytes, f) != bytes) {
    fprintf(stderr, "bench: cannot read %s\n", path);
    exit(2);
  }
  fclose(f);
  t.data = buf;
  return t;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Memory bandwidth in GB/s, 1 thread, best of 5 passes over 256 MiB: *copy counts the bytes
 * read and written by b = a / 2 (the shape of the softmax kernels: read z, write the gradient);
 * *read the bytes of a summed (the shape of a Sinkhorn iteration's pass over its kernel). */
static void bandwidth(double *copy, double *read)
{
  size_t n = (size_t)64 << 20; /* 256 MiB of floats each way */
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  for (size_t i = 0; i < n; i++) a[i] = (float)i, b[i] = 0;
  double best = 1e30, best_r = 1e30, sum = 0;
  for (int r = 0; r < 5; r++) {
    double t0 = now_ms();
    for (size_t i = 0; i < n; i++) b[i] = a[i] * 0.5f;
    double t = now_ms() - t0;
    if (t < best) best = t;
    float s[16] = {0};
    t0 = now_ms();
    for (size_t i = 0; i < n; i += 16)
      for (int k = 0; k < 16; k++) s[k] += a[i + k];
    t = now_ms() - t0;
    if (t < best_r) best_r = t;
    for (int k = 0; k < 16; k++) sum += s[k];
  }
  volatile float sink = b[n / 2] + (float)sum;
  (void)sink;
  free(a), free(b);
  *copy = 2.0 * (double)n * sizeof(float) / (best / 1e3) / 1e9;
  *read = (double)n * sizeof(float) / (best_r / 1e3) / 1e9;
}

int main(int argc, char **argv)
{
  mallopt(M_MMAP_MAX, 0); /* as lossd's main.c: large blocks stay in the heap and are reused */
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (argc == 2 && !strcmp(argv[1], "bandwidth")) {
    double copy, read;
    bandwidth(&copy, &read);
    printf("bandwidth %.2f read %.2f\n", copy, read);
    return 0;
  }
  if (argc != 4) {
    fprintf(stderr, "usage: bench_kernels CASE DIR REPEATS | bandwidth\n");
    return 2;
  }
  const char *c = argv[1], *dir = argv[2];
  int reps = atoi(argv[3]);
  loss_tensor_t x = {0}, y = {0}, z = {0};
  loss_opts_t o = loss_opts_default();
  loss_ce_params_t cep = loss_ce_params_default();
  loss_gp_params_t gpp = loss_gp_params_default();
  loss_sinkhorn_params_t skp = loss_sinkhorn_params_default();
  int kind;
  if (!strncmp(c, "cross_entropy", 13)) {
    kind = 0;
    x = load(dir, "logits", LOSS_FLOAT32), y = load(dir, "target", LOSS_INT64);
    if (strstr(c, "smoothing")) cep.label_smoothing = 0.1;
  } else if (!strncmp(c, "kl_div", 6)) {
    kind = 1;
    x = load(dir, "input", LOSS_FLOAT32), y = load(dir, "target", LOSS_FLOAT32);
    o.reduction = LOSS_REDUCTION_BATCHMEAN;
  } else if (!strncmp(c, "cosent", 6)) {
    kind = 2;
    x = load(dir, "scores", LOSS_FLOAT32), y = load(dir, "labels", LOSS_FLOAT32);
  } else if (!strncmp(c, "global_pointer", 14)) {
    kind = 3;
    x = load(dir, "scores", LOSS_FLOAT32), y = load(dir, "labels", LOSS_FLOAT32);
  } else if (!strncmp(c, "sinkhorn", 8)) {
    kind = 4;
    x = load(dir, "a", LOSS_FLOAT64), y = load(dir, "b", LOSS_FLOAT64),
    z = load(dir, "cost", LOSS_FLOAT64);
    skp.reg = atof(getenv("BENCH_REG") ? getenv("BENCH_REG") : "0.05");
    skp.max_iter = 100, skp.tol = 0;
  } else if (!strncmp(c, "sigmoid_focal", 13)) {
    kind = 5;
    x = load(dir, "logits", LOSS_FLOAT32), y = load(dir, "target", LOSS_FLOAT32);
    o.reduction = LOSS_REDUCTION_MEAN;
  } else {
    fprintf(stderr, "bench: unknown case %s\n", c);
    return 2;
  }
  double *t = calloc((size_t)reps + 1, sizeof *t);
  for (int r = -1; r < reps; r++) { /* one warm-up run */
    loss_result_t res;
    loss_result_init(&res);
    double t0 = now_ms();
    int rc = 0;
    switch (kind) {
    case 0:
      rc = loss_cross_entropy(&x, &y, &cep, &o, &res);
      break;
    case 1:
      rc = loss_kl_div(&x, &y, 0, &o, &res);
      break;
    case 2:
      rc = loss_cosent(&x, NULL, NULL, &y, 20, &o, &res);
      break;
    case 3:
      rc = loss_global_pointer(&x, NULL, NULL, NULL, &y, NULL, NULL, &gpp, &o, &res);
      break;
    case 4:
      rc = loss_sinkhorn(&x, &y, &z, NULL, NULL, &skp, &o, &res);
      break;
    case 5:
      rc = loss_sigmoid_focal(&x, &y, 0.25, 2, &o, &res);
      break;
    }
    double dt = now_ms() - t0;
    if (rc) {
      fprintf(stderr, "bench %s: %s\n", c, res.err_msg);
      return 1;
    }
    if (r == -1) printf("value %s %.10g\n", c, res.loss);
    if (r >= 0) t[r] = dt;
    loss_result_free(&res);
  }
  qsort(t, (size_t)reps, sizeof *t, cmp);
  printf("%s %.4f\n", c, t[reps / 2]);
  return 0;
}
