/* main.c - lossd: configuration to the loop. */
#include "http.h"
#include "multitask.h"
#include "openapi.h"

#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
  static server_t srv;
  if (argc == 2 && !strcmp(argv[1], "--openapi")) { /* regenerates proto/openapi.yaml */
    sb_t s;
    sb_init(&s);
    openapi_write(&s);
    fwrite(s.p, 1, s.len, stdout);
    sb_free(&s);
    return 0;
  }
  int rc = config_load(&srv.cfg, argc, argv);
  if (rc) return rc > 0 ? 0 : 2;
  /* The pool reads its size once, at the first uv_queue_work. */
  char threads[16];
  snprintf(threads, sizeof threads, "%d", srv.cfg.threads);
  setenv("UV_THREADPOOL_SIZE", threads, 1);
  json_object_seed(0);
  /* Keep large blocks (request bodies, tensors, gradients) in the heap for reuse: glibc would
   * otherwise mmap and munmap each one, and the kernel zeroes every fresh page (a sixth of a
   * 64 MB cross-entropy gradient's cost). Up to 1 GiB freed stays with the process for reuse.
   * One arena: a worker's own arena is a 64 MiB mmap'd heap, and glibc mmaps (then munmaps)
   * anything larger there whatever M_MMAP_MAX says; small blocks come from per-thread caches.
   * No fastbins: in one shared arena, every block of 1 KiB or more (a small request's answer)
   * first consolidated them under the arena's lock, which the other threads then waited for
   * (+5% to +9% small requests a second; bench/NOTES.md). */
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_MXFAST, 0);
  signal(SIGPIPE, SIG_IGN);
  metrics_init();
  uv_loop_t *loop = uv_default_loop();
  srv.loop = loop;
  if (mt_init(&srv)) {
    fprintf(stderr, "lossd: could not recover the multitask state\n");
    return 1;
  }
  if (http_start(&srv, loop)) return 1;
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  free(srv.mt);
  return 0;
}
