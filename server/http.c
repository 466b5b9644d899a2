/* http.c - libmicrohttpd in external epoll mode on the libuv loop; request lifecycle. */
#include "http.h"

#include "metrics.h"
#include "multitask.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t http_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- driving MHD ----------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);
static void flush_pending(server_t *s);

/* Run MHD, then re-arm the timer from its timeout: MHD registers sockets edge-triggered and
 * keeps its own ready list, so a 0 timeout is how it asks to continue. */
static void run_mhd(server_t *s)
{
  if (!s->mhd) return;
  s->kicked = 0;
  s->in_run = 1;
  MHD_run(s->mhd);
  s->in_run = 0;
  flush_pending(s);
  /* A connection resumed from inside this run (a barrier completed in another rank's handler)
   * needs another run now: 0.9.75's MHD_get_timeout does not account for pending resumes and
   * would re-arm the timer for the idle timeout instead (SERVER-NOTES.md). */
  if (s->kicked) {
    uv_timer_start(&s->timer, on_timer, 0, 0);
    return;
  }
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(s->mhd, &ms) == MHD_YES)
    uv_timer_start(&s->timer, on_timer, ms, 0);
  else
    uv_timer_stop(&s->timer);
}

static void on_timer(uv_timer_t *t)
{
  run_mhd(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
  (void)status, (void)events;
  run_mhd(p->data);
}

/* Ask for an MHD run on the next loop iteration (safe from inside MHD callbacks). */
static void kick(server_t *s)
{
  s->kicked = 1;
  if (s->mhd) uv_timer_start(&s->timer, on_timer, 0, 0);
}

/* ---- requests -------------------------------------------------------------------------------- */

static void req_free(req_t *r)
{
  server_t *s = r->srv;
  if (r->counted_bytes) s->inflight_bytes -= r->cap;
  if (r->body != r->body_buf) free(r->body);
  if (r->resp != r->out_buf) free(r->resp);
  if (r->wbody != r->out_buf) free(r->wbody);
  if (r->path != r->path_buf) free(r->path);
  /* Kept for the next request: with 64 requests in flight the loop thread's allocations and
   * frees of a size class come in runs longer than glibc's per-thread cache holds (7), and
   * the rest go to the arena the workers lock too. */
  if (s->nspare < REQ_SPARE) {
    r->batch_next = s->spare;
    s->spare = r;
    s->nspare++;
  } else {
    free(r);
  }
  s->alive--;
}

static void req_maybe_free(req_t *r)
{
  if (r->completed && !r->work_pending && !r->waiting) req_free(r);
}

static method_t parse_method(const char *m)
{
  if (!strcmp(m, "GET")) return M_GET;
  if (!strcmp(m, "POST")) return M_POST;
  if (!strcmp(m, "PUT")) return M_PUT;
  if (!strcmp(m, "DELETE")) return M_DELETE;
  if (!strcmp(m, "HEAD")) return M_HEAD;
  return M_OTHER;
}

/* Queue r's stored response on its connection (inside the access handler). */
static enum MHD_Result queue_stored(req_t *r)
{
  /* An answer in the request's own buffer stays there until the request is freed, which is
   * after MHD has finished with it (on_completed). */
  int own = r->resp && r->resp != r->out_buf;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(r->resp_len, r->resp ? r->resp : (char *)"",
                                      own ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  if (own) r->resp = NULL; /* MHD frees it */
  MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
  if (r->allow[0]) MHD_add_response_header(resp, "Allow", r->allow);
  if (r->retry_after) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", r->retry_after);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  if (r->srv->quiesced) MHD_add_response_header(resp, "Connection", "close");
  enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  r->queued_response = 1;
  return rc;
}

void http_respond(req_t *r, int status, const char *ctype, char *body, size_t len)
{
  if (r->resp != r->out_buf) free(r->resp);
  r->status = status;
  r->ctype = ctype;
  r->resp = body;
  r->resp_len = len;
  r->sent_bytes = len;
  r->ready = 1;
  if (r->suspended) {
    r->suspended = 0;
    MHD_resume_connection(r->conn);
    kick(r->srv); /* MHD calls the handler again, which queues the stored response */
  }
}

void http_respond_json(req_t *r, int status, sb_t *body)
{
  size_t len;
  if (body->oom) {
    sb_free(body);
    api_error_t e;
    api_error(&e, 500, NULL, "out of memory encoding the response");
    http_respond_error(r, &e);
    return;
  }
  char *p = sb_take(body, &len);
  http_respond(r, status, "application/json", p, len);
}

void http_respond_error(req_t *r, const api_error_t *e)
{
  sb_t s;
  sb_init(&s);
  codec_encode_error(&s, e);
  sb_putn(&s, "\n", 1);
  if (e->status == 503 && !r->retry_after) r->retry_after = 1;
  size_t len;
  char *p = sb_take(&s, &len);
  http_respond(r, e->status, "application/json", p, len);
}

/* ---- work on the pool ------------------------------------------------------------------------ */

/* Each pool item costs a futex wake of an idle worker, and on this kind of VM every wake is an
 * inter-processor interrupt: for a small request the hand-off cost more than its compute. So
 * the compute requests that arrive in one MHD run are handed over when it returns, small ones
 * in up to `threads` batches (every worker still gets work) of at most BATCH_MAX requests;
 * a request with a body above BATCH_BODY, or of a loss whose work a small body does not bound
 * (cat_desc_t.batchable: pairwise, span and iterative losses, /v1/batch), goes alone, so that
 * no small request waits behind a long one. A batch is one uv_queue_work: its work callback runs
 * each request's work in turn, its after-work callback answers each of them on the loop thread. */
#define BATCH_MAX  8
#define BATCH_BODY ((size_t)16 << 10)

static void work_cb(uv_work_t *w)
{
  for (req_t *r = w->data; r; r = r->batch_next) r->work_fn(r);
}

static void after_work_cb(uv_work_t *w, int status)
{
  (void)status;
  for (req_t *r = w->data, *next; r; r = next) {
    server_t *s = r->srv;
    next = r->batch_next;
    r->batch_next = NULL;
    s->queued--;
    r->work_pending = 0;
    if (r->counted_bytes) { /* the body is no longer needed */
      s->inflight_bytes -= r->cap;
      r->counted_bytes = 0;
    }
    r->done_fn(r); /* a request whose work could not be queued answers 500 here */
    req_maybe_free(r);
  }
}

/* One pool item for the n requests linked from head. */
static void submit(server_t *s, req_t *head, unsigned n)
{
  metrics_pool_item(n);
  head->work.data = head;
  if (uv_queue_work(s->loop, &head->work, work_cb, after_work_cb))
    after_work_cb(&head->work, UV_EINVAL); /* only for a NULL callback: not reached */
}

static void flush_pending(server_t *s)
{
  if (!s->npend) return;
  long threads = s->cfg.threads > 0 ? s->cfg.threads : 1;
  long per = (s->npend + threads - 1) / threads, k = 0;
  if (per > BATCH_MAX) per = BATCH_MAX;
  req_t *r = s->pend_head, *head = NULL, *tail = NULL;
  s->pend_head = s->pend_tail = NULL;
  s->npend = 0;
  while (r) {
    req_t *next = r->batch_next;
    r->batch_next = NULL;
    if (r->len > BATCH_BODY || !r->desc || !r->desc->batchable) {
      submit(s, r, 1);
    } else {
      if (head)
        tail->batch_next = r;
      else
        head = r;
      tail = r;
      if (++k == per) {
        submit(s, head, (unsigned)k);
        head = NULL, k = 0;
      }
    }
    r = next;
  }
  if (head) submit(s, head, (unsigned)k);
}

int http_queue_work(req_t *r, void (*work_fn)(req_t *), void (*done_fn)(req_t *))
{
  server_t *s = r->srv;
  if ((unsigned long)s->queued >= s->cfg.queue_depth) return -1;
  r->work_fn = work_fn;
  r->done_fn = done_fn;
  MHD_suspend_connection(r->conn);
  r->suspended = 1;
  r->work_pending = 1;
  s->queued++;
  r->batch_next = NULL;
  if (s->pend_tail)
    s->pend_tail->batch_next = r;
  else
    s->pend_head = r;
  s->pend_tail = r;
  s->npend++;
  if (!s->in_run) flush_pending(s);
  return 0;
}

void http_wait(req_t *r)
{
  MHD_suspend_connection(r->conn);
  r->suspended = 1;
  r->waiting = 1;
}

int http_peer_closed(req_t *r)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci) return 1;
  char c;
  ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- MHD callbacks --------------------------------------------------------------------------- */

static int authorized(server_t *s, struct MHD_Connection *c)
{
  if (!s->cfg.token[0]) return 1;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  const char *tok = s->cfg.token;
  size_t tl = strlen(tok), hl = h ? strlen(h) : 0;
  /* Constant time in the token's length: compare every byte whatever the header holds. */
  unsigned diff = !h || hl != tl + 7 || strncmp(h, "Bearer ", 7) != 0;
  for (size_t i = 0; i < tl; i++)
    diff |= (unsigned char)tok[i] ^ (unsigned char)(h && i + 7 < hl ? h[i + 7] : 0);
  return diff == 0;
}

static int public_path(const char *url)
{
  return !strcmp(url, "/healthz") || !strcmp(url, "/readyz") || !strcmp(url, "/metrics");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
  server_t *s = cls;
  req_t *r = *con_cls;
  (void)version;
  if (!r) { /* headers are in */
    static const req_t zero;
    if ((r = s->spare)) {
      s->spare = r->batch_next;
      s->nspare--;
    } else if (!(r = malloc(sizeof *r))) {
      return MHD_NO;
    }
    memcpy(r, &zero, offsetof(req_t, path_buf)); /* the header; the buffers need no zeroing */
    s->alive++;
    s->inflight++;
    r->srv = s;
    r->conn = conn;
    r->t0 = http_now_ns();
    r->method = parse_method(method);
    size_t plen = strlen(url);
    r->path = plen < sizeof r->path_buf ? memcpy(r->path_buf, url, plen + 1) : strdup(url);
    r->route = ROUTE_OTHER;
    *con_cls = r;
    if (!r->path) return MHD_NO;
    api_error_t e;
    if (!public_path(url) && !authorized(s, conn)) {
      api_error(&e, 401, NULL, "missing or wrong bearer token");
      http_respond_error(r, &e);
      return queue_stored(r);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
      char *end;
      errno = 0;
      unsigned long long n = strtoull(cl, &end, 10);
      if (errno || *end || n > s->cfg.max_body) {
        api_error(&e, 413, NULL, "the body is larger than %zu bytes", s->cfg.max_body);
        http_respond_error(r, &e);
        return queue_stored(r);
      }
      /* Known size: the request's own buffer, or one allocation of that size (if the bytes
       * budget allows), not doubling copies from 4 KiB. */
      if (n > 0 && n + 1 <= sizeof r->body_buf) {
        r->body = r->body_buf;
        r->cap = sizeof r->body_buf;
      } else if (n > 0 && s->inflight_bytes + n + 1 <= s->cfg.max_inflight_bytes &&
                 (r->body = malloc(n + 1))) {
        r->cap = n + 1;
        s->inflight_bytes += r->cap;
        r->counted_bytes = 1;
      }
    }
    return MHD_YES;
  }
  if (r->ready) { /* a resumed request, or one answered while its body was still arriving */
    if (*upload_size) {
      *upload_size = 0;
      return MHD_YES;
    }
    return r->queued_response ? MHD_YES : queue_stored(r);
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (r->too_large) return MHD_YES;
    if (r->len + n > s->cfg.max_body) {
      r->too_large = 1; /* keep reading and discarding; answer 413 at the end */
      return MHD_YES;
    }
    if (!r->body && n + 1 <= sizeof r->body_buf) { /* no Content-Length: start inline */
      r->body = r->body_buf;
      r->cap = sizeof r->body_buf;
    }
    if (r->len + n + 1 > r->cap) {
      size_t cap = r->cap ? r->cap : 4096, counted = r->counted_bytes ? r->cap : 0;
      while (cap < r->len + n + 1) cap *= 2;
      if (cap > s->cfg.max_body + 1) cap = s->cfg.max_body + 1;
      if (s->inflight_bytes + (cap - counted) > s->cfg.max_inflight_bytes) {
        api_error_t e;
        api_error(&e, 503, NULL, "the server holds too many request bytes; retry");
        http_respond_error(r, &e);
        return MHD_YES; /* queued once the body has been read */
      }
      int inl = r->body == r->body_buf;
      char *p = inl ? malloc(cap) : realloc(r->body, cap);
      if (!p) return MHD_NO;
      if (inl) memcpy(p, r->body_buf, r->len);
      s->inflight_bytes += cap - counted;
      r->counted_bytes = 1;
      r->body = p;
      r->cap = cap;
    }
    memcpy(r->body + r->len, upload, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
  }
  /* The whole request is in. */
  if (r->too_large) {
    api_error_t e;
    api_error(&e, 413, NULL, "the body is larger than %zu bytes", s->cfg.max_body);
    http_respond_error(r, &e);
    return queue_stored(r);
  }
  handlers_dispatch(r);
  if (r->ready && !r->suspended) return queue_stored(r);
  return MHD_YES;
}

static void log_access(const req_t *r, double us)
{
  char path[256];
  size_t j = 0;
  for (const char *p = r->path ? r->path : ""; *p && j + 7 < sizeof path; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\' || c < 0x20)
      j += (size_t)snprintf(path + j, sizeof path - j, "\\u%04x", c);
    else
      path[j++] = (char)c;
  }
  path[j] = 0;
  static const char *const names[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "OTHER"};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  fprintf(stderr,
          "{\"ts\":%lld.%03ld,\"method\":\"%s\",\"path\":\"%s\",\"route\":\"%s\",\"status\":%d,"
          "\"bytes\":%zu,\"us\":%.0f}\n",
          (long long)ts.tv_sec, ts.tv_nsec / 1000000, names[r->method], path, route_name(r->route),
          r->status, r->sent_bytes, us);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  server_t *s = cls;
  req_t *r = *con_cls;
  (void)conn, (void)toe;
  if (!r) return;
  *con_cls = NULL;
  double secs = (double)(http_now_ns() - r->t0) / 1e9;
  s->inflight--; /* counted until sent, so that a drain never cuts a response short */
  int status = r->queued_response ? r->status : 499;
  metrics_request(r->route, status, secs);
  if (s->cfg.access_log) {
    r->status = status;
    log_access(r, secs * 1e6);
  }
  r->completed = 1;
  if (r->waiting) mt_forget(s, r); /* a waiting rank whose connection ended */
  req_maybe_free(r);
}

/* ---- start, drain, stop ---------------------------------------------------------------------- */

static int bind_listen(const char *spec, int *port_out)
{
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (!colon || (size_t)(colon - spec) >= sizeof host) {
    fprintf(stderr, "lossd: --listen wants host:port, got \"%s\"\n", spec);
    return -1;
  }
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = 0;
  char *h = host;
  if (h[0] == '[' && h[strlen(h) - 1] == ']') { /* [::1]:8080 */
    h[strlen(h) - 1] = 0;
    h++;
  }
  struct addrinfo hints = {0}, *res;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
  if (rc) {
    fprintf(stderr, "lossd: cannot resolve %s: %s\n", spec, gai_strerror(rc));
    return -1;
  }
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0), one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024)) {
    fprintf(stderr, "lossd: cannot listen on %s: %s\n", spec, strerror(errno));
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return -1;
  }
  freeaddrinfo(res);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

static void on_signal(uv_signal_t *h, int signum)
{
  (void)signum;
  http_begin_shutdown(h->data);
}

/* MHD's per-connection pool holds the request line, the headers and the read buffer (bodies are
 * copied out as they arrive). MHD 0.9.75 zeroes the whole pool before every request on a
 * keep-alive connection: at the default 32 KiB that memset was a sixth of the loop thread's time
 * on small requests. 8 KiB holds any sane header block (431 beyond), and large bodies stream
 * through it as fast as through 32 KiB (measured on the 87 MB request). */
#define CONN_MEMORY (8 * 1024)

int http_start(server_t *s, uv_loop_t *loop)
{
  int port;
  s->loop = loop;
  s->listen_fd = bind_listen(s->cfg.listen, &port);
  if (s->listen_fd < 0) return -1;
  s->mhd = MHD_start_daemon(
      MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
      MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.idle_timeout, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)s->cfg.max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
      MHD_OPTION_END);
  if (!s->mhd) {
    fprintf(stderr, "lossd: libmicrohttpd did not start\n");
    return -1;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  uv_poll_init(loop, &s->poll, di->epoll_fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  uv_timer_init(loop, &s->drain_timer);
  s->drain_timer.data = s;
  uv_timer_init(loop, &s->stop_timer);
  s->stop_timer.data = s;
  uv_signal_init(loop, &s->sigterm);
  uv_signal_init(loop, &s->sigint);
  s->sigterm.data = s->sigint.data = s;
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  s->ready = 1;
  run_mhd(s);
  if (s->cfg.port_file[0]) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->cfg.port_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) || rename(tmp, s->cfg.port_file)) {
      fprintf(stderr, "lossd: cannot write %s\n", s->cfg.port_file);
      return -1;
    }
  }
  fprintf(stderr, "{\"event\":\"listening\",\"listen\":\"%s\",\"port\":%d,\"threads\":%d}\n",
          s->cfg.listen, port, s->cfg.threads);
  return 0;
}

static void close_handle(uv_handle_t *h)
{
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Every in-flight request answered: stop MHD and let the loop end. */
static void on_stop_check(uv_timer_t *t)
{
  server_t *s = t->data;
  int forced = http_now_ns() > s->stop_deadline;
  if (!forced && (s->queued > 0 || s->inflight > 0 || mt_waiting(s) > 0)) return;
  if (forced) fprintf(stderr, "{\"event\":\"shutdown_timeout\",\"inflight\":%ld}\n", s->inflight);
  uv_timer_stop(t);
  if (s->queued > 0) return; /* work still holds requests: wait for the pool regardless */
  mt_shutdown(s);
  close_handle((uv_handle_t *)&s->poll); /* before MHD closes the epoll descriptor it watches */
  MHD_stop_daemon(s->mhd); /* completes every request: they go to the spares or are freed */
  s->mhd = NULL;
  while (s->spare) {
    req_t *r = s->spare;
    s->spare = r->batch_next;
    free(r);
  }
  s->nspare = 0;
  close_handle((uv_handle_t *)&s->timer);
  close_handle((uv_handle_t *)&s->drain_timer);
  close_handle((uv_handle_t *)&s->stop_timer);
  close_handle((uv_handle_t *)&s->sigterm);
  close_handle((uv_handle_t *)&s->sigint);
  fprintf(stderr, "{\"event\":\"stopped\"}\n");
}

static void on_drained(uv_timer_t *t)
{
  server_t *s = t->data;
  /* Stop accepting; in external mode the listening socket is ours to close. */
  MHD_socket fd = MHD_quiesce_daemon(s->mhd);
  if (fd != MHD_INVALID_SOCKET) close(fd);
  s->quiesced = 1;
  mt_fail_waiting(s, 503, "the server is shutting down");
  s->stop_deadline = http_now_ns() + (uint64_t)s->cfg.shutdown_timeout_ms * 1000000u;
  uv_timer_start(&s->stop_timer, on_stop_check, 0, 10);
  kick(s);
}

void http_begin_shutdown(server_t *s)
{
  if (s->draining) return;
  s->draining = 1;
  s->ready = 0;
  fprintf(stderr, "{\"event\":\"draining\",\"delay_ms\":%u}\n", s->cfg.drain_ms);
  uv_timer_start(&s->drain_timer, on_drained, s->cfg.drain_ms, 0);
}
