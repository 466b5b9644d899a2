/* config.c - flags, their environment variables and defaults, and --help from one table. */
#include "config.h"

#include "loss.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { K_STR, K_INT, K_SIZE, K_BOOL, K_TOKENFILE } kind_t;

typedef struct {
  const char *flag, *env, *dflt, *help;
  kind_t kind;
  size_t off, cap;
} opt_t;

#define O(f, e, d, k, field, h)                                                                    \
  {                                                                                                \
    f, e, d, h, k, offsetof(config_t, field), sizeof(((config_t *)0)->field)                       \
  }

static const opt_t opts[] = {
    O("--listen", "LOSSD_LISTEN", "127.0.0.1:8080", K_STR, listen,
      "address:port to serve on (port 0: any free port)"),
    O("--port-file", "LOSSD_PORT_FILE", "", K_STR, port_file,
      "write the bound port to this file once accepting"),
    O("--threads", "LOSSD_THREADS", "0", K_INT, threads,
      "worker threads for compute (0: number of cores)"),
    O("--max-body", "LOSSD_MAX_BODY", "67108864", K_SIZE, max_body,
      "largest request body in bytes (413 beyond)"),
    O("--max-elements", "LOSSD_MAX_ELEMENTS", "33554432", K_SIZE, max_elements,
      "largest tensor in elements (413 beyond)"),
    O("--max-connections", "LOSSD_MAX_CONNECTIONS", "1000", K_INT, max_connections,
      "open connections at most"),
    O("--idle-timeout", "LOSSD_IDLE_TIMEOUT", "60", K_INT, idle_timeout,
      "seconds before an idle connection is closed"),
    O("--queue-depth", "LOSSD_QUEUE_DEPTH", "256", K_INT, queue_depth,
      "compute requests queued or running before 503"),
    O("--max-inflight-bytes", "LOSSD_MAX_INFLIGHT_BYTES", "1073741824", K_SIZE, max_inflight_bytes,
      "request bytes held at once before 503"),
    O("--drain-delay", "LOSSD_DRAIN_DELAY", "0", K_INT, drain_ms,
      "ms to keep serving after SIGTERM with /readyz at 503"),
    O("--shutdown-timeout", "LOSSD_SHUTDOWN_TIMEOUT", "30000", K_INT, shutdown_timeout_ms,
      "ms to wait for in-flight requests when stopping"),
    O("--token-file", "LOSSD_TOKEN_FILE", "", K_TOKENFILE, token,
      "file holding the bearer token (LOSSD_TOKEN gives it directly)"),
    O("--state-dir", "LOSSD_STATE_DIR", "", K_STR, state_dir,
      "directory for durable multitask sessions (none: memory only)"),
    O("--snapshot-every", "LOSSD_SNAPSHOT_EVERY", "1000", K_INT, snapshot_every,
      "multitask steps between session snapshots"),
    O("--max-sessions", "LOSSD_MAX_SESSIONS", "10000", K_INT, max_sessions,
      "multitask sessions at most"),
    O("--access-log", "LOSSD_ACCESS_LOG", "true", K_BOOL, access_log,
      "one JSON line per request on stderr (true|false)"),
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static int set(config_t *c, const opt_t *o, const char *v, const char *from)
{
  char *p = (char *)c + o->off, *end;
  errno = 0;
  switch (o->kind) {
  case K_STR:
    if (strlen(v) >= o->cap) goto bad;
    strcpy(p, v);
    return 0;
  case K_TOKENFILE: {
    if (!*v) return 0;
    FILE *f = fopen(v, "r");
    if (!f) {
      fprintf(stderr, "lossd: %s: cannot read %s\n", from, v);
      return -1;
    }
    size_t n = fread(p, 1, o->cap - 1, f);
    fclose(f);
    p[n] = 0;
    while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ')) p[--n] = 0;
    if (!n) {
      fprintf(stderr, "lossd: %s: %s is empty\n", from, v);
      return -1;
    }
    return 0;
  }
  case K_INT: {
    long x = strtol(v, &end, 10);
    if (errno || *end || x < 0 || x > 1000000000) goto bad;
    if (o->cap == sizeof(int))
      *(int *)p = (int)x;
    else
      *(unsigned *)p = (unsigned)x;
    return 0;
  }
  case K_SIZE: {
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-' || x == 0) goto bad;
    *(size_t *)p = (size_t)x;
    return 0;
  }
  case K_BOOL:
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
      *(int *)p = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
      *(int *)p = 0;
    else
      goto bad;
    return 0;
  }
bad:
  fprintf(stderr, "lossd: %s: invalid value \"%s\"\n", from, v);
  return -1;
}

static void usage(void)
{
  printf("lossd %s - loss functions and their gradients over HTTP/JSON\n\n"
         "usage: lossd [flags]\n\nEvery flag can also come from its environment variable.\n\n",
         LOSS_VERSION);
  for (size_t i = 0; i < N_OPTS; i++)
    printf("  %-22s %-26s %s (default: %s)\n", opts[i].flag, opts[i].env, opts[i].help,
           opts[i].dflt[0] ? opts[i].dflt : "none");
  printf("  %-22s %-26s %s\n", "", "LOSSD_TOKEN", "the bearer token itself (instead of a file)");
  printf("  %-22s %-26s %s\n", "--help", "", "this text");
  printf("  %-22s %-26s %s\n", "--version", "", "print the version");
  printf("  %-22s %-26s %s\n", "--openapi", "", "print the OpenAPI document and exit");
}

int config_load(config_t *c, int argc, char **argv)
{
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < N_OPTS; i++)
    if (opts[i].kind != K_TOKENFILE && set(c, &opts[i], opts[i].dflt, "default")) return -1;
  const char *tok = getenv("LOSSD_TOKEN");
  if (tok && *tok) {
    if (strlen(tok) >= sizeof c->token) return -1;
    strcpy(c->token, tok);
  }
  for (size_t i = 0; i < N_OPTS; i++) {
    const char *v = getenv(opts[i].env);
    if (v && set(c, &opts[i], v, opts[i].env)) return -1;
  }
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
      usage();
      return 1;
    }
    if (!strcmp(argv[a], "--version")) {
      printf("lossd %s\n", LOSS_VERSION);
      return 1;
    }
    const char *arg = argv[a], *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    size_t i;
    for (i = 0; i < N_OPTS; i++)
      if (strlen(opts[i].flag) == len && !strncmp(opts[i].flag, arg, len)) break;
    if (i == N_OPTS) {
      fprintf(stderr, "lossd: unknown flag %s (see --help)\n", arg);
      return -1;
    }
    const char *v = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
    if (!v) {
      fprintf(stderr, "lossd: %s needs a value\n", opts[i].flag);
      return -1;
    }
    if (set(c, &opts[i], v, opts[i].flag)) return -1;
  }
  if (c->threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->threads = n > 0 ? (int)n : 1;
  }
  if (c->threads > 1024) c->threads = 1024;
  if (c->queue_depth == 0) c->queue_depth = 1;
  return 0;
}
