/* metrics.h - Prometheus counters, gauges and histograms. Touched only on the loop thread. */
#ifndef LOSSD_METRICS_H
#define LOSSD_METRICS_H

#include "codec.h"

typedef enum {
  ROUTE_HEALTHZ,
  ROUTE_READYZ,
  ROUTE_METRICS,
  ROUTE_INFO,
  ROUTE_LOSSES,
  ROUTE_LOSS,
  ROUTE_BATCH,
  ROUTE_OPENAPI,
  ROUTE_MT_SESSIONS,
  ROUTE_MT_SESSION,
  ROUTE_MT_STEPS,
  ROUTE_OTHER,
  ROUTE__COUNT
} route_id_t;

const char *route_name(route_id_t r);

void metrics_init(void);
void metrics_request(route_id_t r, int status, double seconds);
void metrics_loss_eval(const char *loss, unsigned n);
/* One pool item carrying `requests` compute requests (http.c batches small ones). */
void metrics_pool_item(unsigned requests);
void metrics_mt_step(const char *method, double barrier_wait_seconds);

typedef struct {
  long inflight, queue_depth, mt_sessions;
  int ready;
} metrics_gauges_t;

/* The whole exposition text. */
void metrics_render(sb_t *s, const metrics_gauges_t *g);

#endif
