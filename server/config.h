/* config.h - lossd settings from flags and LOSSD_* environment variables. */
#ifndef LOSSD_CONFIG_H
#define LOSSD_CONFIG_H

#include <stddef.h>

typedef struct {
  char listen[256];    /* host:port; port 0 picks a free one */
  char port_file[512]; /* written once the server accepts connections */
  int threads;         /* worker pool size */
  size_t max_body;     /* bytes */
  size_t max_elements; /* per tensor */
  unsigned max_connections;
  unsigned idle_timeout;     /* seconds */
  unsigned queue_depth;      /* compute requests queued or running before 503 */
  size_t max_inflight_bytes; /* request bodies held at once before 503 */
  unsigned drain_ms;         /* after SIGTERM: keep serving this long with /readyz 503 */
  unsigned shutdown_timeout_ms;
  char token[512];         /* bearer token, empty = no auth */
  char state_dir[512];     /* multitask journal directory, empty = memory only */
  unsigned snapshot_every; /* multitask steps between snapshots */
  unsigned max_sessions;
  int access_log;
} config_t;

/* Defaults, then the environment, then argv. Returns 0, 1 when --help/--version printed, or -1
 * with a message on stderr. */
int config_load(config_t *c, int argc, char **argv);

#endif
