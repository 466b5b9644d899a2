/* multitask.h - shared multitask weighting sessions (API.md §5): the step barrier of suspended
 * ranks, the session registry owned by the loop thread, durable journals and snapshots. */
#ifndef LOSSD_MULTITASK_H
#define LOSSD_MULTITASK_H

#include "http.h"

/* Load every session from cfg.state_dir (recovery) and start the sweep timer. 0 or -1. */
int mt_init(server_t *s);
/* Route /v1/multitask/sessions<rest>. */
void mt_route(req_t *r, const char *rest);
/* A waiting request's connection ended: drop it from its barrier (its report stays). */
void mt_forget(server_t *s, req_t *r);
/* Ranks waiting at barriers plus durable writes in flight. */
long mt_waiting(server_t *s);
/* Answer every rank waiting at a barrier with an error (shutdown). */
void mt_fail_waiting(server_t *s, int status, const char *msg);
/* Free everything (after all writes finished). */
void mt_shutdown(server_t *s);
long mt_count(server_t *s);

#endif
