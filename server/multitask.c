/* multitask.c - sessions, the step barrier and durability.
 *
 * Everything here runs on the loop thread except the file work of an op (create, append,
 * snapshot, delete), which runs on the pool; a session's ops run one at a time in FIFO order,
 * and the ranks of a completed step are answered only when its journal record is durable. */
#include "multitask.h"

#include "journal.h"
#include "mt_method.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define HISTORY     1000
#define MAX_MT_BODY (1u << 20)

enum { OP_CREATE, OP_APPEND, OP_SNAPSHOT, OP_DELETE };

typedef struct mt_session mt_session_t;

typedef struct mt_op {
  uv_work_t work;
  mt_session_t *sess;
  int kind, err;
  char *data; /* framed record or snapshot text */
  size_t len;
  req_t **reqs; /* answered when the op is durable */
  int nreqs, status;
  char *body;
  size_t blen;
  struct mt_op *next;
} mt_op_t;

typedef struct {
  int64_t step;
  double total;
  double *losses, *weights; /* T each, in one block */
} hist_t;

struct mt_session {
  char id[65];
  mt_config_t cfg;
  mt_state_t st;
  /* the step being collected */
  unsigned char *reported;
  req_t **waiter;
  int nreported;
  double *vals; /* per rank: T losses then T grad norms, averaged in rank order at completion */
  uint64_t first_report;
  uv_timer_t timeout;
  /* history ring */
  hist_t *hist;
  int hist_n, hist_head;
  /* durability */
  char dir[600];
  int fd; /* journal, used by ops on the pool only */
  mt_op_t *ops_head, *ops_tail;
  int op_running, deleted, closing;
  int64_t since_snapshot;
  struct registry *reg;
  mt_session_t *next; /* registry bucket chain */
};

#define NBUCKETS 1024

typedef struct registry {
  mt_session_t *bucket[NBUCKETS];
  long count, ops_inflight;
  uv_timer_t sweep;
  server_t *srv;
} registry_t;

static registry_t *reg_of(server_t *s)
{
  return s->mt;
}

static unsigned hash_id(const char *id)
{
  unsigned h = 2166136261u;
  for (; *id; id++) h = (h ^ (unsigned char)*id) * 16777619u;
  return h % NBUCKETS;
}

static mt_session_t *find(registry_t *g, const char *id)
{
  for (mt_session_t *x = g->bucket[hash_id(id)]; x; x = x->next)
    if (!strcmp(x->id, id)) return x;
  return NULL;
}

static void unlink_session(registry_t *g, mt_session_t *x)
{
  mt_session_t **p = &g->bucket[hash_id(x->id)];
  while (*p && *p != x) p = &(*p)->next;
  if (*p) *p = x->next;
  g->count--;
}

static int valid_id(const char *id)
{
  size_t n = strlen(id);
  if (n < 1 || n > 64) return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return 0;
  return strcmp(id, ".") && strcmp(id, "..");
}

static void on_close_free(uv_handle_t *h)
{
  mt_session_t *x = h->data;
  for (int i = 0; i < x->hist_n; i++) free(x->hist[i].losses);
  free(x->hist);
  free(x->reported);
  free(x->waiter);
  free(x->vals);
  free(x);
}

static void session_free(mt_session_t *x)
{
  if (x->closing) return;
  x->closing = 1;
  if (x->fd >= 0) close(x->fd);
  uv_close((uv_handle_t *)&x->timeout, on_close_free);
}

static mt_session_t *session_new(registry_t *g, const char *id, const mt_config_t *cfg)
{
  mt_session_t *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->reported = calloc((size_t)cfg->world, 1);
  x->waiter = calloc((size_t)cfg->world, sizeof *x->waiter);
  x->vals = calloc((size_t)cfg->world * 2 * (size_t)cfg->T, sizeof *x->vals);
  if (!x->reported || !x->waiter || !x->vals) {
    free(x->reported), free(x->waiter), free(x->vals), free(x);
    return NULL;
  }
  x->reg = g;
  snprintf(x->id, sizeof x->id, "%s", id);
  x->cfg = *cfg;
  mt_state_init(cfg, &x->st);
  x->fd = -1;
  uv_timer_init(g->srv->loop, &x->timeout);
  x->timeout.data = x;
  if (g->srv->cfg.state_dir[0])
    snprintf(x->dir, sizeof x->dir, "%s/sessions/%s", g->srv->cfg.state_dir, id);
  unsigned b = hash_id(id);
  x->next = g->bucket[b];
  g->bucket[b] = x;
  g->count++;
  return x;
}

static void hist_push(mt_session_t *x, int64_t step, const double *L, const double *w, double total)
{
  int T = x->cfg.T;
  hist_t *h;
  if (x->hist_n < HISTORY) {
    hist_t *nh = realloc(x->hist, (size_t)(x->hist_n + 1) * sizeof *nh);
    double *blk = malloc(2 * (size_t)T * sizeof *blk);
    if (!nh || !blk) {
      if (nh) x->hist = nh;
      free(blk);
      return;
    }
    x->hist = nh;
    h = &x->hist[x->hist_n++];
    h->losses = blk;
    h->weights = blk + T;
  } else {
    h = &x->hist[x->hist_head];
    x->hist_head = (x->hist_head + 1) % HISTORY;
  }
  h->step = step;
  h->total = total;
  memcpy(h->losses, L, (size_t)T * sizeof *L);
  memcpy(h->weights, w, (size_t)T * sizeof *w);
}

static void vec_json(sb_t *s, const double *v, int n)
{
  sb_puts(s, "[");
  for (int i = 0; i < n; i++) {
    if (i) sb_puts(s, ",");
    sb_double(s, v[i]);
  }
  sb_puts(s, "]");
}

/* {"id", config..., "step", "state"[, "history"]} */
static void session_json(sb_t *s, const mt_session_t *x, int with_history)
{
  sb_puts(s, "{\"id\":");
  sb_jstr(s, x->id);
  sb_puts(s, ",");
  mt_config_json(s, &x->cfg);
  sb_printf(s, ",\"step\":%lld,\"state\":", (long long)x->st.step);
  mt_state_json(s, &x->cfg, &x->st);
  if (with_history) {
    sb_puts(s, ",\"history\":[");
    for (int i = 0; i < x->hist_n; i++) {
      const hist_t *h = &x->hist[(x->hist_head + i) % (x->hist_n < HISTORY ? x->hist_n : HISTORY)];
      sb_printf(s, "%s{\"step\":%lld,\"total\":", i ? "," : "", (long long)h->step);
      sb_double(s, h->total);
      sb_puts(s, ",\"losses\":");
      vec_json(s, h->losses, x->cfg.T);
      sb_puts(s, ",\"weights\":");
      vec_json(s, h->weights, x->cfg.T);
      sb_puts(s, "}");
    }
    sb_puts(s, "]");
  }
  sb_puts(s, "}");
}

/* ---- answering --------------------------------------------------------------------------- */

static void answer(req_t *r, int status, const char *body, size_t len)
{
  char *p = malloc(len + 1);
  if (!p) return;
  memcpy(p, body, len);
  p[len] = 0;
  r->waiting = 0;
  r->wait_owner = NULL;
  http_respond(r, status, "application/json", p, len);
}

static void answer_error(req_t *r, int status, const char *field, const char *msg)
{
  api_error_t e;
  api_error(&e, status, field, "%s", msg);
  r->waiting = 0;
  r->wait_owner = NULL;
  http_respond_error(r, &e);
}

static void reset_collection(mt_session_t *x)
{
  memset(x->reported, 0, (size_t)x->cfg.world);
  memset(x->waiter, 0, (size_t)x->cfg.world * sizeof *x->waiter);
  x->nreported = 0;
  uv_timer_stop(&x->timeout);
}

static void fail_barrier(mt_session_t *x, int status, const char *msg)
{
  for (int i = 0; i < x->cfg.world; i++)
    if (x->waiter[i]) answer_error(x->waiter[i], status, NULL, msg);
  reset_collection(x);
}

/* ---- durable ops --------------------------------------------------------------------------- */

static int remove_tree(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : -errno;
  struct dirent *e;
  char p[1200];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  closedir(d);
  return rmdir(dir) ? -errno : 0;
}

static void op_work(uv_work_t *w)
{
  mt_op_t *op = w->data;
  mt_session_t *x = op->sess;
  char parent[700];
  snprintf(parent, sizeof parent, "%s", x->dir);
  char *slash = strrchr(parent, '/');
  if (slash) *slash = 0;
  switch (op->kind) {
  case OP_CREATE:
    remove_tree(x->dir); /* a leftover of a session deleted before a crash */
    if (mkdir(x->dir, 0755) && errno != EEXIST) {
      op->err = -errno;
      break;
    }
    op->err = journal_write_file(x->dir, "snapshot.json", op->data, op->len);
    if (!op->err) {
      char jp[700];
      snprintf(jp, sizeof jp, "%s/journal.log", x->dir);
      x->fd = open(jp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
      if (x->fd < 0) op->err = -errno;
    }
    if (!op->err) op->err = journal_sync_dir(x->dir);
    if (!op->err) op->err = journal_sync_dir(parent);
    break;
  case OP_APPEND:
    op->err = x->fd < 0 ? -EBADF : journal_append(x->fd, op->data, op->len);
    break;
  case OP_SNAPSHOT:
    /* Records before the snapshot's step are skipped on replay, so truncating afterwards is
     * safe at any crash point. */
    op->err = journal_write_file(x->dir, "snapshot.json", op->data, op->len);
    if (!op->err && x->fd >= 0 && ftruncate(x->fd, 0)) op->err = -errno;
    if (!op->err && x->fd >= 0 && fsync(x->fd)) op->err = -errno;
    break;
  case OP_DELETE:
    if (x->fd >= 0) close(x->fd);
    x->fd = -1;
    op->err = remove_tree(x->dir);
    if (!op->err) op->err = journal_sync_dir(parent);
    break;
  }
}

static void op_start_next(mt_session_t *x);

static void op_done(uv_work_t *w, int status)
{
  mt_op_t *op = w->data;
  mt_session_t *x = op->sess;
  (void)status;
  x->reg->ops_inflight--;
  if (op->err)
    fprintf(stderr, "{\"event\":\"journal_error\",\"session\":\"%s\",\"op\":%d,\"error\":\"%s\"}\n",
            x->id, op->kind, strerror(-op->err));
  for (int i = 0; i < op->nreqs; i++) {
    if (!op->reqs[i]) continue;
    if (op->err)
      answer_error(op->reqs[i], 503, NULL, "the session's state could not be written; retry");
    else
      answer(op->reqs[i], op->status, op->body, op->blen);
  }
  x->ops_head = op->next;
  if (!x->ops_head) x->ops_tail = NULL;
  x->op_running = 0;
  free(op->data);
  free(op->body);
  free(op->reqs);
  free(op);
  op_start_next(x);
}

static void op_start_next(mt_session_t *x)
{
  if (x->op_running) return;
  if (!x->ops_head) {
    if (x->deleted) session_free(x);
    return;
  }
  x->op_running = 1;
  x->reg->ops_inflight++;
  x->ops_head->work.data = x->ops_head;
  uv_queue_work(x->reg->srv->loop, &x->ops_head->work, op_work, op_done);
}

/* Queue an op; reqs (may be empty) are answered with status/body when it is durable. Without a
 * state directory nothing is written and they are answered now. Takes data and body. */
static void op_push(mt_session_t *x, int kind, char *data, size_t len, req_t **reqs, int nreqs,
                    int status, char *body, size_t blen)
{
  if (!x->dir[0]) {
    for (int i = 0; i < nreqs; i++)
      if (reqs[i]) answer(reqs[i], status, body, blen);
    free(data);
    free(body);
    if (kind == OP_DELETE) session_free(x);
    return;
  }
  mt_op_t *op = calloc(1, sizeof *op);
  req_t **rc = nreqs ? malloc((size_t)nreqs * sizeof *rc) : NULL;
  if (!op || (nreqs && !rc)) {
    free(op), free(rc), free(data), free(body);
    for (int i = 0; i < nreqs; i++)
      if (reqs[i]) answer_error(reqs[i], 500, NULL, "out of memory");
    return;
  }
  if (nreqs) memcpy(rc, reqs, (size_t)nreqs * sizeof *rc);
  for (int i = 0; i < nreqs; i++)
    if (rc[i]) { /* held, suspended, until durable */
      if (!rc[i]->suspended) http_wait(rc[i]);
      rc[i]->waiting = 1;
      rc[i]->wait_owner = NULL;
    }
  *op = (mt_op_t){.sess = x,
                  .kind = kind,
                  .data = data,
                  .len = len,
                  .reqs = rc,
                  .nreqs = nreqs,
                  .status = status,
                  .body = body,
                  .blen = blen};
  if (x->ops_tail)
    x->ops_tail->next = op;
  else
    x->ops_head = op;
  x->ops_tail = op;
  op_start_next(x);
}

static char *snapshot_text(const mt_session_t *x, size_t *len)
{
  sb_t s;
  sb_init(&s);
  session_json(&s, x, 1);
  sb_puts(&s, "\n");
  return sb_take(&s, len);
}

/* ---- the barrier --------------------------------------------------------------------------- */

static void complete_step(mt_session_t *x)
{
  registry_t *g = x->reg;
  int T = x->cfg.T, W = x->cfg.world;
  double L[MT_MAX_TASKS] = {0}, gn[MT_MAX_TASKS] = {0}, w[MT_MAX_TASKS], total;
  for (int k = 0; k < W; k++) /* rank order: the same bits whatever order the ranks came in */
    for (int i = 0; i < T; i++) {
      L[i] += x->vals[(size_t)k * 2 * T + i];
      gn[i] += x->vals[(size_t)k * 2 * T + T + i];
    }
  for (int i = 0; i < T; i++) L[i] /= W, gn[i] /= W;
  int64_t step = x->st.step;
  mt_apply(&x->cfg, &x->st, L, gn, w, &total);
  hist_push(x, step, L, w, total);
  double wait = (double)(http_now_ns() - x->first_report) / 1e9;
  metrics_mt_step(mt_method_name(x->cfg.method), wait);
  /* The answer every rank gets. */
  sb_t s;
  sb_init(&s);
  sb_printf(&s, "{\"step\":%lld,\"weights\":", (long long)step);
  vec_json(&s, w, T);
  sb_puts(&s, ",\"total\":");
  sb_double(&s, total);
  sb_puts(&s, ",\"grad\":");
  vec_json(&s, w, T);
  sb_puts(&s, ",\"state\":");
  mt_state_json(&s, &x->cfg, &x->st);
  sb_puts(&s, "}\n");
  size_t blen;
  char *body = sb_take(&s, &blen);
  /* The journal record: the step's inputs, replayed through the same arithmetic on recovery. */
  sb_init(&s);
  sb_printf(&s, "{\"step\":%lld,\"losses\":", (long long)step);
  vec_json(&s, L, T);
  sb_puts(&s, ",\"grad_norms\":");
  vec_json(&s, gn, T);
  sb_puts(&s, ",\"weights\":");
  vec_json(&s, w, T);
  sb_puts(&s, "}");
  size_t plen, flen;
  char *payload = sb_take(&s, &plen);
  char *frame = payload ? journal_frame(payload, plen, &flen) : NULL;
  free(payload);
  req_t **ws = malloc((size_t)W * sizeof *ws);
  if (!body || !frame || !ws) {
    free(body), free(frame), free(ws);
    fail_barrier(x, 500, "out of memory");
    return;
  }
  memcpy(ws, x->waiter, (size_t)W * sizeof *ws);
  reset_collection(x);
  op_push(x, OP_APPEND, frame, flen, ws, W, 200, body, blen);
  free(ws);
  if (x->dir[0] && ++x->since_snapshot >= (int64_t)g->srv->cfg.snapshot_every) {
    size_t len;
    char *snap = snapshot_text(x, &len);
    if (snap) op_push(x, OP_SNAPSHOT, snap, len, NULL, 0, 0, NULL, 0);
    x->since_snapshot = 0;
  }
}

static void on_step_timeout(uv_timer_t *t)
{
  mt_session_t *x = t->data;
  /* The partial step is discarded so that every rank can report it again. */
  fail_barrier(x, 504, "the other ranks did not report this step in time; report it again");
}

static int read_vec(json_t *v, const char *field, int T, int nonneg, double *out, api_error_t *e)
{
  if (!json_is_array(v)) return api_error(e, 400, field, "%s must be an array of numbers", field);
  if (json_array_size(v) != (size_t)T)
    return api_error(e, 422, field, "%s must have one value per task (%d)", field, T);
  for (int i = 0; i < T; i++) {
    json_t *x = json_array_get(v, (size_t)i);
    if (!json_is_number(x)) return api_error(e, 400, field, "%s must hold numbers", field);
    out[i] = json_number_value(x);
    if (!isfinite(out[i]) || (nonneg && out[i] < 0))
      return api_error(e, 422, field, "%s must be finite%s", field, nonneg ? " and >= 0" : "");
  }
  return 0;
}

static void h_step(req_t *r, mt_session_t *x, json_t *body)
{
  api_error_t e;
  int T = x->cfg.T;
  int64_t step = -1, rank = -1;
  double L[MT_MAX_TASKS], gn[MT_MAX_TASKS] = {0};
  int has_L = 0, has_gn = 0;
  const char *key;
  json_t *v;
  if (!json_is_object(body)) {
    api_error(&e, 400, NULL, "the body must be a JSON object");
    {
      http_respond_error(r, &e);
      return;
    }
  }
  json_object_foreach(body, key, v)
  {
    if (!strcmp(key, "step") || !strcmp(key, "rank")) {
      if (!json_is_integer(v)) {
        api_error(&e, 400, key, "%s must be an integer", key);
        {
          http_respond_error(r, &e);
          return;
        }
      }
      *(!strcmp(key, "step") ? &step : &rank) = json_integer_value(v);
    } else if (!strcmp(key, "losses")) {
      if (read_vec(v, "losses", T, 0, L, &e)) {
        http_respond_error(r, &e);
        return;
      }
      has_L = 1;
    } else if (!strcmp(key, "grad_norms")) {
      if (json_is_null(v)) continue;
      if (read_vec(v, "grad_norms", T, 1, gn, &e)) {
        http_respond_error(r, &e);
        return;
      }
      has_gn = 1;
    } else {
      api_error(&e, 400, key, "unknown field \"%s\"", key);
      {
        http_respond_error(r, &e);
        return;
      }
    }
  }
  if (step < 0 || rank < 0 || !has_L) {
    api_error(&e, 400,
              step < 0   ? "step"
              : rank < 0 ? "rank"
                         : "losses",
              "step (>= 0), rank and losses are required");
    {
      http_respond_error(r, &e);
      return;
    }
  }
  if (rank >= x->cfg.world) {
    api_error(&e, 422, "rank", "rank must be below world_size %d", x->cfg.world);
    {
      http_respond_error(r, &e);
      return;
    }
  }
  if (x->cfg.method == LOSS_MT_GRADNORM && !has_gn) {
    api_error(&e, 422, "grad_norms", "gradnorm reports need grad_norms");
    {
      http_respond_error(r, &e);
      return;
    }
  }
  if (step != x->st.step) {
    api_error(&e, 409, "step", "the session is collecting step %lld; step %lld is %s",
              (long long)x->st.step, (long long)step,
              step < x->st.step ? "complete" : "in the future");
    {
      http_respond_error(r, &e);
      return;
    }
  }
  if (x->reported[rank]) {
    req_t *old = x->waiter[rank]; /* NULL: the sweep already saw its connection drop */
    if (old && !http_peer_closed(old)) {
      api_error(&e, 409, "rank", "rank %lld already reported step %lld", (long long)rank,
                (long long)step);
      {
        http_respond_error(r, &e);
        return;
      }
    }
    /* A rank reconnecting after its connection dropped takes its report over. */
    if (old) answer_error(old, 499, NULL, "replaced by a newer report of the same rank");
    x->reported[rank] = 0;
    x->waiter[rank] = NULL;
    x->nreported--;
  }
  if (x->nreported == 0) {
    x->first_report = http_now_ns();
    uv_timer_start(&x->timeout, on_step_timeout, x->cfg.timeout_ms, 0);
  }
  memcpy(x->vals + (size_t)rank * 2 * T, L, (size_t)T * sizeof *L);
  memcpy(x->vals + (size_t)rank * 2 * T + T, gn, (size_t)T * sizeof *gn);
  x->reported[rank] = 1;
  x->nreported++;
  x->waiter[rank] = r;
  r->wait_owner = x;
  /* The rank that completes the step is answered from inside its own handler (or suspended by
   * the journal op); only the others wait suspended. */
  if (x->nreported == x->cfg.world)
    complete_step(x);
  else
    http_wait(r);
}

/* ---- routes -------------------------------------------------------------------------------- */

static json_t *parse_small(req_t *r)
{
  api_error_t e;
  if (r->len > MAX_MT_BODY) {
    api_error(&e, 413, NULL, "multitask bodies are at most %u bytes", MAX_MT_BODY);
    http_respond_error(r, &e);
    return NULL;
  }
  json_error_t je;
  json_t *j = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    api_error(&e, 400, NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text,
              je.line, je.column);
    http_respond_error(r, &e);
  }
  return j;
}

static void respond_session(req_t *r, int status, const mt_session_t *x, int history)
{
  sb_t s;
  sb_init(&s);
  session_json(&s, x, history);
  sb_puts(&s, "\n");
  http_respond_json(r, status, &s);
}

static void create(req_t *r, registry_t *g, const char *id, const mt_config_t *cfg)
{
  api_error_t e;
  if ((unsigned long)g->count >= g->srv->cfg.max_sessions) {
    api_error(&e, 503, NULL, "the server holds its maximum of %u sessions",
              g->srv->cfg.max_sessions);
    {
      http_respond_error(r, &e);
      return;
    }
  }
  mt_session_t *x = session_new(g, id, cfg);
  if (!x) {
    api_error(&e, 500, NULL, "out of memory");
    {
      http_respond_error(r, &e);
      return;
    }
  }
  sb_t s;
  sb_init(&s);
  session_json(&s, x, 0);
  sb_puts(&s, "\n");
  size_t blen = 0, slen = 0;
  char *body = sb_take(&s, &blen), *snap = x->dir[0] ? snapshot_text(x, &slen) : NULL;
  op_push(x, OP_CREATE, snap, slen, &r, 1, 201, body, blen);
}

static void h_create(req_t *r, registry_t *g, const char *put_id)
{
  api_error_t e;
  json_t *body = parse_small(r);
  if (!body) return;
  mt_config_t cfg;
  if (mt_config_parse(body, 0, &cfg, &e)) {
    json_decref(body);
    {
      http_respond_error(r, &e);
      return;
    }
  }
  json_decref(body);
  if (put_id) {
    if (!valid_id(put_id)) {
      api_error(&e, 422, "id", "session ids are 1-64 characters of [A-Za-z0-9._-]");
      {
        http_respond_error(r, &e);
        return;
      }
    }
    mt_session_t *x = find(g, put_id);
    if (x) {
      if (!mt_config_equal(&x->cfg, &cfg)) {
        api_error(&e, 409, NULL, "session %s exists with a different configuration", put_id);
        {
          http_respond_error(r, &e);
          return;
        }
      }
      {
        respond_session(r, 200, x, 0);
        return;
      } /* joined */
    }
    {
      create(r, g, put_id, &cfg);
      return;
    }
  }
  char id[40];
  unsigned char rnd[8];
  do {
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
      for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (unsigned char)rand();
    snprintf(id, sizeof id, "mt-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5], rnd[6], rnd[7]);
  } while (find(g, id));
  create(r, g, id, &cfg);
}

static void h_list(req_t *r, registry_t *g)
{
  sb_t s;
  sb_init(&s);
  sb_puts(&s, "{\"sessions\":[");
  int first = 1;
  for (int b = 0; b < NBUCKETS; b++)
    for (mt_session_t *x = g->bucket[b]; x; x = x->next) {
      sb_printf(&s, "%s{\"id\":", first ? "" : ",");
      sb_jstr(&s, x->id);
      sb_printf(&s,
                ",\"method\":\"%s\",\"tasks\":%d,\"world_size\":%d,\"step\":%lld,\"waiting\":%d}",
                mt_method_name(x->cfg.method), x->cfg.T, x->cfg.world, (long long)x->st.step,
                x->nreported);
      first = 0;
    }
  sb_puts(&s, "]}\n");
  http_respond_json(r, 200, &s);
}

static void h_delete(req_t *r, registry_t *g, mt_session_t *x)
{
  unlink_session(g, x);
  x->deleted = 1;
  fail_barrier(x, 404, "the session was deleted");
  sb_t s;
  sb_init(&s);
  sb_puts(&s, "{\"deleted\":");
  sb_jstr(&s, x->id);
  sb_puts(&s, "}\n");
  size_t blen;
  char *body = sb_take(&s, &blen);
  op_push(x, OP_DELETE, NULL, 0, &r, 1, 200, body, blen);
}

static void not_allowed(req_t *r, const char *allow)
{
  api_error_t e;
  snprintf(r->allow, sizeof r->allow, "%s", allow);
  api_error(&e, 405, NULL, "this route takes %s", allow);
  http_respond_error(r, &e);
}

void mt_route(req_t *r, const char *rest)
{
  registry_t *g = reg_of(r->srv);
  api_error_t e;
  method_t m = r->method == M_HEAD ? M_GET : r->method;
  if (!*rest || !strcmp(rest, "/")) {
    r->route = ROUTE_MT_SESSIONS;
    if (m == M_GET) {
      h_list(r, g);
      return;
    }
    if (m == M_POST) {
      h_create(r, g, NULL);
      return;
    }
    {
      not_allowed(r, "GET, POST");
      return;
    }
  }
  char id[80];
  const char *p = rest + 1, *slash = strchr(p, '/');
  size_t n = slash ? (size_t)(slash - p) : strlen(p);
  if (n >= sizeof id) n = sizeof id - 1;
  memcpy(id, p, n);
  id[n] = 0;
  const char *tail = slash ? slash : "";
  if (!strcmp(tail, "/steps")) {
    r->route = ROUTE_MT_STEPS;
    if (m != M_POST) {
      not_allowed(r, "POST");
      return;
    }
  } else if (!*tail) {
    r->route = ROUTE_MT_SESSION;
    if (m == M_PUT) {
      h_create(r, g, id);
      return;
    }
    if (m != M_GET && m != M_DELETE) {
      not_allowed(r, "GET, PUT, DELETE");
      return;
    }
  } else {
    api_error(&e, 404, NULL, "no route %s", r->path);
    {
      http_respond_error(r, &e);
      return;
    }
  }
  mt_session_t *x = find(g, id);
  if (!x) {
    api_error(&e, 404, NULL, "no session %s", id);
    {
      http_respond_error(r, &e);
      return;
    }
  }
  if (r->route == ROUTE_MT_STEPS) {
    if (r->srv->quiesced) {
      api_error(&e, 503, NULL, "the server is shutting down");
      {
        http_respond_error(r, &e);
        return;
      }
    }
    json_t *body = parse_small(r);
    if (!body) return;
    h_step(r, x, body);
    json_decref(body);
    return;
  }
  if (m == M_DELETE) {
    h_delete(r, g, x);
    return;
  }
  respond_session(r, 200, x, 1);
}

/* ---- recovery ------------------------------------------------------------------------------ */

typedef struct {
  mt_session_t *x;
  long applied, mismatched;
} replay_t;

static int replay_record(void *ctx, const char *payload, size_t len)
{
  replay_t *rp = ctx;
  mt_session_t *x = rp->x;
  int T = x->cfg.T;
  json_t *j = json_loadb(payload, len, 0, NULL);
  if (!j) return 1;
  json_t *st = json_object_get(j, "step");
  double L[MT_MAX_TASKS], gn[MT_MAX_TASKS], w[MT_MAX_TASKS], wr[MT_MAX_TASKS], total;
  api_error_t e;
  int rc = 0;
  if (!json_is_integer(st))
    rc = 1;
  else if (json_integer_value(st) < x->st.step)
    rc = 0; /* before the snapshot: skip */
  else if (json_integer_value(st) != x->st.step)
    rc = 1; /* a gap: stop here */
  else if (read_vec(json_object_get(j, "losses"), "losses", T, 0, L, &e) ||
           read_vec(json_object_get(j, "grad_norms"), "grad_norms", T, 1, gn, &e) ||
           read_vec(json_object_get(j, "weights"), "weights", T, 0, wr, &e))
    rc = 1;
  else {
    int64_t step = x->st.step;
    mt_apply(&x->cfg, &x->st, L, gn, w, &total);
    hist_push(x, step, L, w, total);
    rp->applied++;
    if (memcmp(w, wr, (size_t)T * sizeof *w)) rp->mismatched++;
  }
  json_decref(j);
  return rc;
}

static int load_session(registry_t *g, const char *name)
{
  char dir[700], path[800];
  snprintf(dir, sizeof dir, "%s/sessions/%s", g->srv->cfg.state_dir, name);
  snprintf(path, sizeof path, "%s/snapshot.json", dir);
  json_t *j = json_load_file(path, 0, NULL);
  mt_config_t cfg;
  api_error_t e;
  if (!j || !valid_id(name) || mt_config_parse(j, 1, &cfg, &e)) {
    /* Never acknowledged (a create that did not finish): drop it. */
    fprintf(stderr, "{\"event\":\"recovery_drop\",\"session\":\"%s\"}\n", name);
    json_decref(j);
    return remove_tree(dir);
  }
  mt_session_t *x = session_new(g, name, &cfg);
  if (!x) {
    json_decref(j);
    return -1;
  }
  json_t *step = json_object_get(j, "step"), *hist = json_object_get(j, "history");
  if (!json_is_integer(step) || mt_state_parse(json_object_get(j, "state"), &cfg, &x->st)) {
    fprintf(stderr,
            "{\"event\":\"recovery_error\",\"session\":\"%s\",\"error\":\"bad snapshot\"}\n", name);
    json_decref(j);
    return -1;
  }
  /* The history before the snapshot, then the journal on top. */
  for (size_t i = 0; i < json_array_size(hist); i++) {
    json_t *h = json_array_get(hist, i);
    double L[MT_MAX_TASKS], w[MT_MAX_TASKS];
    if (read_vec(json_object_get(h, "losses"), "losses", cfg.T, 0, L, &e) ||
        read_vec(json_object_get(h, "weights"), "weights", cfg.T, 0, w, &e))
      continue;
    hist_push(x, json_integer_value(json_object_get(h, "step")), L, w,
              json_number_value(json_object_get(h, "total")));
  }
  x->st.step = json_integer_value(step);
  json_decref(j);
  snprintf(path, sizeof path, "%s/journal.log", dir);
  replay_t rp = {x, 0, 0};
  long valid_end;
  long n = journal_scan(path, replay_record, &rp, &valid_end);
  struct stat sb;
  if (n >= 0 && !stat(path, &sb) && sb.st_size > valid_end) {
    fprintf(stderr, "{\"event\":\"journal_truncated\",\"session\":\"%s\",\"dropped_bytes\":%lld}\n",
            name, (long long)(sb.st_size - valid_end));
    if (truncate(path, valid_end)) return -1;
  }
  x->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  x->since_snapshot = rp.applied;
  fprintf(stderr, "{\"event\":\"recovered\",\"session\":\"%s\",\"step\":%lld,\"replayed\":%ld%s}\n",
          name, (long long)x->st.step, rp.applied,
          rp.mismatched ? ",\"weights_mismatch\":true" : "");
  return x->fd < 0 ? -1 : 0;
}

static void on_sweep(uv_timer_t *t)
{
  registry_t *g = t->data;
  for (int b = 0; b < NBUCKETS; b++)
    for (mt_session_t *x = g->bucket[b]; x; x = x->next)
      for (int k = 0; x->nreported && k < x->cfg.world; k++)
        if (x->waiter[k] && http_peer_closed(x->waiter[k])) {
          /* Its report stays: the step completes for the others without it waiting. */
          req_t *r = x->waiter[k];
          x->waiter[k] = NULL;
          answer_error(r, 499, NULL, "the client went away");
        }
}

int mt_init(server_t *s)
{
  registry_t *g = calloc(1, sizeof *g);
  if (!g) return -1;
  g->srv = s;
  s->mt = g;
  uv_timer_init(s->loop, &g->sweep);
  g->sweep.data = g;
  uv_timer_start(&g->sweep, on_sweep, 250, 250);
  uv_unref((uv_handle_t *)&g->sweep);
  if (!s->cfg.state_dir[0]) return 0;
  char dir[700];
  snprintf(dir, sizeof dir, "%s/sessions", s->cfg.state_dir);
  if ((mkdir(s->cfg.state_dir, 0755) && errno != EEXIST) || (mkdir(dir, 0755) && errno != EEXIST)) {
    fprintf(stderr, "lossd: cannot create %s: %s\n", dir, strerror(errno));
    return -1;
  }
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' && load_session(g, e->d_name)) rc = -1;
  closedir(d);
  return rc;
}

void mt_forget(server_t *s, req_t *r)
{
  (void)s;
  mt_session_t *x = r->wait_owner;
  r->waiting = 0;
  r->wait_owner = NULL;
  if (!x) return;
  for (int k = 0; k < x->cfg.world; k++)
    if (x->waiter[k] == r) x->waiter[k] = NULL;
}

long mt_waiting(server_t *s)
{
  registry_t *g = reg_of(s);
  long n = g ? g->ops_inflight : 0;
  for (int b = 0; g && b < NBUCKETS; b++)
    for (mt_session_t *x = g->bucket[b]; x; x = x->next)
      for (int k = 0; x->nreported && k < x->cfg.world; k++) n += x->waiter[k] != NULL;
  return n;
}

void mt_fail_waiting(server_t *s, int status, const char *msg)
{
  registry_t *g = reg_of(s);
  for (int b = 0; g && b < NBUCKETS; b++)
    for (mt_session_t *x = g->bucket[b]; x; x = x->next)
      if (x->nreported) fail_barrier(x, status, msg);
}

void mt_shutdown(server_t *s)
{
  registry_t *g = reg_of(s);
  if (!g) return;
  for (int b = 0; b < NBUCKETS; b++) {
    mt_session_t *x = g->bucket[b];
    while (x) {
      mt_session_t *next = x->next;
      session_free(x);
      x = next;
    }
    g->bucket[b] = NULL;
  }
  uv_close((uv_handle_t *)&g->sweep, NULL);
  g->count = 0;
}

long mt_count(server_t *s)
{
  registry_t *g = reg_of(s);
  return g ? g->count : 0;
}
