/* http.h - libmicrohttpd driven by one libuv loop: the request lifecycle, suspend/resume,
 * work handed to the pool, responses, access log, drain and stop.
 *
 * Rules (SERVER-NOTES.md): the loop thread owns MHD; a connection is suspended inside the access
 * handler before work or a wait starts; it is resumed only on the loop thread (http_respond),
 * after which MHD calls the handler again and the stored response is queued. A request's memory
 * is freed when MHD has completed it and no work or wait holds it. */
#ifndef LOSSD_HTTP_H
#define LOSSD_HTTP_H

#include "codec.h"
#include "config.h"
#include "metrics.h"

#include <microhttpd.h>
#include <stdint.h>
#include <uv.h>

typedef struct server server_t;
typedef struct req req_t;

typedef enum { M_GET, M_POST, M_PUT, M_DELETE, M_HEAD, M_OTHER } method_t;

/* A request's small buffers live in it: the path, a body of up to REQ_BODY - 1 bytes, an
 * answer of up to REQ_OUT - 1 bytes. Request objects are kept for reuse by the loop thread
 * (up to REQ_SPARE), so a small request allocates nothing of its own. */
#define REQ_PATH  64
#define REQ_BODY  2048
#define REQ_OUT   4096
#define REQ_SPARE 256

struct req {
  server_t *srv;
  struct MHD_Connection *conn;
  method_t method;
  char *path;
  route_id_t route;
  uint64_t t0;
  /* body */
  char *body;
  size_t len, cap;
  int too_large;
  int counted_bytes; /* body bytes are counted in srv->inflight_bytes */
  /* state */
  int suspended, work_pending, waiting, completed, ready, queued_response;
  /* response */
  int status;
  char *resp;
  size_t resp_len;
  const char *ctype;
  char allow[40];
  int retry_after;
  size_t sent_bytes;
  /* compute */
  uv_work_t work;    /* the pool item of a batch whose first request this is */
  req_t *batch_next; /* the next request of its batch */
  void (*work_fn)(req_t *r);
  void (*done_fn)(req_t *r);
  const cat_desc_t *desc;
  int wstatus; /* the work's answer, handed to http_respond on the loop */
  char *wbody;
  size_t wlen;
  unsigned short evals[32]; /* loss evaluations by catalogue position, for metrics */
  /* multitask: a waiting rank */
  void *wait_owner;
  req_t *wait_next;
  uint64_t wait_deadline;
  /* The inline buffers (not zeroed on reuse): path_buf first, the header ends there. */
  char path_buf[REQ_PATH];
  char body_buf[REQ_BODY];
  char out_buf[REQ_OUT]; /* the worker's answer, when it fits */
};

struct server {
  config_t cfg;
  uv_loop_t *loop;
  struct MHD_Daemon *mhd;
  int listen_fd;
  uv_poll_t poll;
  uv_timer_t timer, drain_timer, stop_timer;
  uv_signal_t sigterm, sigint;
  int ready, draining, quiesced, stopping;
  int kicked; /* a resume asked for another MHD run */
  int in_run; /* inside MHD_run: compute requests collect in pend until it returns */
  req_t *pend_head, *pend_tail;
  long npend;
  long inflight; /* requests received and not answered */
  long queued;   /* compute work queued or running */
  size_t inflight_bytes;
  long alive;   /* req_t objects alive */
  req_t *spare; /* request objects kept for reuse, linked by batch_next */
  long nspare;
  uint64_t stop_deadline;
  void *mt; /* multitask registry */
};

/* Bind, start MHD on the loop, write the port file. Returns 0 or -1 (message on stderr). */
int http_start(server_t *s, uv_loop_t *loop);
/* Begin the SIGTERM sequence (readiness off, drain delay, stop accepting, finish, stop). */
void http_begin_shutdown(server_t *s);

/* Answer r: takes ownership of body (malloc'd). Queues now inside the access handler, or stores
 * it and resumes the suspended connection (loop thread only). */
void http_respond(req_t *r, int status, const char *ctype, char *body, size_t len);
void http_respond_json(req_t *r, int status, sb_t *body);
void http_respond_error(req_t *r, const api_error_t *e);
/* Suspend r and run work_fn on the pool, then done_fn on the loop. Returns -1 when the queue is
 * full (the caller answers 503). The requests that arrive in one MHD run go to the pool
 * together when it returns, small ones in batches (see http.c). */
int http_queue_work(req_t *r, void (*work_fn)(req_t *), void (*done_fn)(req_t *));
/* Suspend r with no work (a multitask rank waiting at a barrier). */
void http_wait(req_t *r);
/* Whether the client of a suspended request has gone away (peeks at the socket). */
int http_peer_closed(req_t *r);
/* Monotonic nanoseconds. */
uint64_t http_now_ns(void);

/* Routing, implemented in handlers.c: called once the body is complete. */
void handlers_dispatch(req_t *r);

#endif
