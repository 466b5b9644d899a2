/* metrics.c - lossd's Prometheus metrics (API.md §6) and process metrics from /proc. */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_BUCKETS 14
static const double buckets[N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define MAX_CODES 16

typedef struct {
  unsigned long long count[N_BUCKETS + 1];
  double sum;
  unsigned long long n;
} hist_t;

static struct {
  struct {
    int code[MAX_CODES];
    unsigned long long n[MAX_CODES];
    int ncodes;
    hist_t dur;
  } route[ROUTE__COUNT];
  struct {
    char name[40];
    unsigned long long n;
  } loss[32];
  int nloss;
  unsigned long long pool_items, pool_requests;
  struct {
    char method[16];
    unsigned long long n;
  } mt[8];
  int nmt;
  hist_t barrier;
  double start;
} M;

static const char *const route_names[ROUTE__COUNT] = {"healthz",
                                                      "readyz",
                                                      "metrics",
                                                      "info",
                                                      "losses",
                                                      "loss",
                                                      "batch",
                                                      "openapi",
                                                      "multitask_sessions",
                                                      "multitask_session",
                                                      "multitask_steps",
                                                      "other"};

const char *route_name(route_id_t r)
{
  return (unsigned)r < ROUTE__COUNT ? route_names[r] : "other";
}

void metrics_init(void)
{
  memset(&M, 0, sizeof M);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  M.start = (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void observe(hist_t *h, double v)
{
  int i = 0;
  while (i < N_BUCKETS && v > buckets[i]) i++;
  h->count[i]++;
  h->sum += v;
  h->n++;
}

void metrics_request(route_id_t r, int status, double seconds)
{
  if ((unsigned)r >= ROUTE__COUNT) r = ROUTE_OTHER;
  int i;
  for (i = 0; i < M.route[r].ncodes; i++)
    if (M.route[r].code[i] == status) break;
  if (i == M.route[r].ncodes) {
    if (i == MAX_CODES)
      i--; /* a pathological spread of codes folds into the last slot */
    else
      M.route[r].ncodes++;
    M.route[r].code[i] = status;
  }
  M.route[r].n[i]++;
  observe(&M.route[r].dur, seconds);
}

void metrics_pool_item(unsigned requests)
{
  M.pool_items++;
  M.pool_requests += requests;
}

void metrics_loss_eval(const char *loss, unsigned n)
{
  int i;
  for (i = 0; i < M.nloss; i++)
    if (!strcmp(M.loss[i].name, loss)) break;
  if (i == M.nloss) {
    if (M.nloss == 32) return;
    snprintf(M.loss[i].name, sizeof M.loss[i].name, "%s", loss);
    M.nloss++;
  }
  M.loss[i].n += n;
}

void metrics_mt_step(const char *method, double wait)
{
  int i;
  for (i = 0; i < M.nmt; i++)
    if (!strcmp(M.mt[i].method, method)) break;
  if (i == M.nmt && M.nmt < 8) {
    snprintf(M.mt[i].method, sizeof M.mt[i].method, "%s", method);
    M.nmt++;
  }
  if (i < 8) M.mt[i].n++;
  observe(&M.barrier, wait);
}

static void render_hist(sb_t *s, const char *name, const char *labels, const hist_t *h)
{
  unsigned long long cum = 0;
  for (int i = 0; i <= N_BUCKETS; i++) {
    cum += h->count[i];
    if (i < N_BUCKETS)
      sb_printf(s, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "", buckets[i],
                cum);
    else
      sb_printf(s, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "", cum);
  }
  sb_printf(s, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels, h->n);
}

static void process_metrics(sb_t *s)
{
  FILE *f = fopen("/proc/self/stat", "r");
  if (f) {
    unsigned long ut = 0, st = 0;
    long rss = 0;
    /* Fields 14, 15 (utime, stime) and 24 (rss pages), after the parenthesised command. */
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (p && sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                    "%*d %*d %*u %*u %ld",
                    &ut, &st, &rss) == 3) {
      double hz = (double)sysconf(_SC_CLK_TCK);
      sb_printf(s, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
                (double)(ut + st) / hz);
      sb_printf(s,
                "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
                rss * sysconf(_SC_PAGESIZE));
    }
    fclose(f);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    long n = -1; /* the DIR's own descriptor */
    while (readdir(d)) n++;
    closedir(d);
    sb_printf(s, "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", n - 2);
  }
  sb_printf(s, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
            M.start);
}

void metrics_render(sb_t *s, const metrics_gauges_t *g)
{
  sb_puts(s, "# HELP lossd_http_requests_total HTTP requests by route and status.\n"
             "# TYPE lossd_http_requests_total counter\n");
  for (int r = 0; r < ROUTE__COUNT; r++)
    for (int i = 0; i < M.route[r].ncodes; i++)
      sb_printf(s, "lossd_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n", route_names[r],
                M.route[r].code[i], M.route[r].n[i]);
  sb_puts(s,
          "# HELP lossd_http_request_duration_seconds Time from first byte to response, by route.\n"
          "# TYPE lossd_http_request_duration_seconds histogram\n");
  for (int r = 0; r < ROUTE__COUNT; r++) {
    if (!M.route[r].dur.n) continue;
    char lab[64];
    snprintf(lab, sizeof lab, "route=\"%s\"", route_names[r]);
    render_hist(s, "lossd_http_request_duration_seconds", lab, &M.route[r].dur);
  }
  sb_printf(s,
            "# HELP lossd_inflight_requests Requests received and not yet answered.\n"
            "# TYPE lossd_inflight_requests gauge\nlossd_inflight_requests %ld\n",
            g->inflight);
  sb_printf(s,
            "# HELP lossd_queue_depth Compute requests queued or running.\n"
            "# TYPE lossd_queue_depth gauge\nlossd_queue_depth %ld\n",
            g->queue_depth);
  sb_printf(s,
            "# HELP lossd_pool_items_total Work items handed to the worker pool (a batch of "
            "small requests is one).\n"
            "# TYPE lossd_pool_items_total counter\nlossd_pool_items_total %llu\n"
            "# HELP lossd_pool_requests_total Compute requests handed to the worker pool.\n"
            "# TYPE lossd_pool_requests_total counter\nlossd_pool_requests_total %llu\n",
            M.pool_items, M.pool_requests);
  sb_puts(s, "# HELP lossd_loss_evaluations_total Loss evaluations by loss.\n"
             "# TYPE lossd_loss_evaluations_total counter\n");
  for (int i = 0; i < M.nloss; i++)
    sb_printf(s, "lossd_loss_evaluations_total{loss=\"%s\"} %llu\n", M.loss[i].name, M.loss[i].n);
  sb_printf(s,
            "# HELP lossd_multitask_sessions Multitask sessions held.\n"
            "# TYPE lossd_multitask_sessions gauge\nlossd_multitask_sessions %ld\n",
            g->mt_sessions);
  sb_puts(s, "# HELP lossd_multitask_steps_total Completed multitask steps by method.\n"
             "# TYPE lossd_multitask_steps_total counter\n");
  for (int i = 0; i < M.nmt; i++)
    sb_printf(s, "lossd_multitask_steps_total{method=\"%s\"} %llu\n", M.mt[i].method, M.mt[i].n);
  sb_puts(
      s,
      "# HELP lossd_multitask_barrier_wait_seconds From a step's first report to its completion.\n"
      "# TYPE lossd_multitask_barrier_wait_seconds histogram\n");
  render_hist(s, "lossd_multitask_barrier_wait_seconds", "", &M.barrier);
  sb_printf(s, "# TYPE lossd_ready gauge\nlossd_ready %d\n", g->ready);
  process_metrics(s);
}
