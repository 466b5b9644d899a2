/* bench_kernels.c - time one libloss kernel on input files written by bench/bench.py.
 *
 *   bench_kernels CASE DIR REPEATS   prints "CASE <median ms>"
 *   bench_kernels bandwidth          prints "bandwidth <GB/s> read <GB/s> read8 <GB/s>" (a copy
 *                                    pass, a read-only pass, and repeated reads of 8 MiB;
 *                                    1 thread)
 * Inputs are raw little-endian files DIR/<name>.bin with their shapes in DIR/<name>.shape. */
#include "loss.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* The two passes below in 8-lane vectors (as the kernels use), compiled for the machine's vector
 * width: a scalar or SSE loop measured the core's arithmetic instead of the memory on a wide
 * core (16 GB/s reading where AVX-512 loads read 30). */
typedef float v8f __attribute__((vector_size(32)));

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static void
copy_pass(const float *a, float *b, size_t n)
{
  const v8f h = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  for (size_t i = 0; i < n; i += 8) {
    v8f x;
    memcpy(&x, a + i, sizeof x);
    x *= h;
    memcpy(b + i, &x, sizeof x);
  }
}

/* Sums a[0..n) (n a multiple of 32), from the end when backward. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) static float
read_pass(const float *a, size_t n, int backward)
{
  v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  for (size_t k = 0; k < n; k += 32) {
    size_t i = backward ? n - 32 - k : k;
    v8f x0, x1, x2, x3;
    memcpy(&x0, a + i, sizeof x0), memcpy(&x1, a + i + 8, sizeof x1);
    memcpy(&x2, a + i + 16, sizeof x2), memcpy(&x3, a + i + 24, sizeof x3);
    s0 += x0, s1 += x1, s2 += x2, s3 += x3;
  }
  v8f s = (s0 + s1) + (s2 + s3);
  float t = 0;
  for (int k = 0; k < 8; k++) t += s[k];
  return t;
}

/* Memory bandwidth in GB/s, 1 thread, best of 5 passes over 256 MiB: *copy counts the bytes
 * read and written by b = a / 2 (the shape of the softmax kernels: read z, write the gradient);
 * *read the bytes of a summed. *read8 is the read rate of 8 MiB passed over again and again,
 * direction alternating: the shape of Sinkhorn's n=1024 iterations over their kernel matrix,
 * which stays in a cache of that size where the machine has one. */
static void bandwidth(double *copy, double *read, double *read8)
{
  size_t n = (size_t)64 << 20; /* 256 MiB of floats each way */
  /* In huge pages, as lossd's buffers of 8 MiB or more are (lib/src/common.c). */
  float *a = aligned_alloc((size_t)2 << 20, n * sizeof *a);
  float *b = aligned_alloc((size_t)2 << 20, n * sizeof *b);
  madvise(a, n * sizeof *a, MADV_HUGEPAGE), madvise(b, n * sizeof *b, MADV_HUGEPAGE);
  for (size_t i = 0; i < n; i++) a[i] = (float)i, b[i] = 0;
  double best = 1e30, best_r = 1e30, sum = 0;
  for (int r = 0; r < 5; r++) {
    double t0 = now_ms();
    copy_pass(a, b, n);
    double t = now_ms() - t0;
    if (t < best) best = t;
    t0 = now_ms();
    sum += read_pass(a, n, 0);
    t = now_ms() - t0;
    if (t < best_r) best_r = t;
  }
  size_t n8 = (size_t)2 << 20; /* 8 MiB of floats */
  double best8 = 1e30;
  for (int r = 0; r < 5; r++) {
    double t0 = now_ms();
    for (int k = 0; k < 20; k++) sum += read_pass(a, n8, k & 1);
    double t = now_ms() - t0;
    if (t < best8) best8 = t;
  }
  *read8 = 20.0 * (double)n8 * sizeof(float) / (best8 / 1e3) / 1e9;
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
    double copy, read, read8;
    bandwidth(&copy, &read, &read8);
    printf("bandwidth %.2f read %.2f read8 %.2f\n", copy, read, read8);
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
