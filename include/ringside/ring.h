/*
 * The io_uring workers (DESIGN.md "Threads"): one pinned thread per CPU,
 * each with its own ring, SO_REUSEPORT listener, connection slab, recv
 * buffer ring and timer wheel. They share nothing on the hot path.
 */
#ifndef RINGSIDE_RING_H
#define RINGSIDE_RING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ringside/config.h"
#include "ringside/http_response.h"
#include "ringside/router.h"

struct worker;
struct metrics_registry;
struct api;

/* What the workers run besides HTTP: the handlers' state, and the hooks
 * it needs from each worker's loop. Any member may be NULL. */
struct http_exchange;

struct ring_hooks {
	struct api *api;  /* handed to handlers as http_context.api */
	/* Once per loop pass of worker `worker` (at least every 50 ms),
	 * between completions: no handler is running. */
	void (*pass)(struct api *api, uint32_t worker);
	/* The worker has stopped for good: it calls nothing more. */
	void (*stopped)(struct api *api, uint32_t worker);
	/* Optional: an exchange with a count_kind was answered 2xx (the
	 * server engine's `answered`). */
	void (*answered)(struct http_exchange *x);
	/* Optional: before the worker hands queued answers to the kernel in
	 * the middle of a pass (its submission queue is full): what must be
	 * written before an answer leaves (the count journal) is written.
	 * The end of each pass (`pass`) does the same. */
	void (*flush)(struct api *api, uint32_t worker);
};

struct ring_server {
	const struct config *cfg;
	const struct router *router;
	struct ring_hooks hooks;
	uint32_t worker_count;
	struct worker **workers;
	uint16_t port[2]; /* ports actually bound: --listen, --metrics-listen */
	int access_log_fd; /* -1: none */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t started, failed; /* under lock: workers that came up / did not */
	_Atomic bool stop_requested; /* ring_server_stop was called */
};

/* Binds the listeners, starts the workers (worker i writes shard i of
 * `metrics`) and waits until every one is serving. access_log_fd: where
 * the workers write one line per request (opened O_APPEND; the caller
 * keeps it and may reopen it in place, dup3), or -1. Returns 0, or a
 * negative errno after logging why (nothing is left running then). */
int ring_server_start(struct ring_server *s, const struct config *cfg,
		      const struct router *router, struct metrics_registry *metrics,
		      const struct ring_hooks *hooks, int access_log_fd);

/* Asks every worker to shut down gracefully: stop accepting, close idle
 * connections, finish in-flight requests, force-close what is left at
 * cfg->shutdown_timeout_ms. Returns at once; safe to call twice. */
void ring_server_stop(struct ring_server *s);

/* Bytes of worker i's own memory in RAM (connection slab, buffers, ring):
 * mincore, for a thread that may block; safe while the worker runs. */
uint64_t ring_worker_resident(const struct ring_server *s, uint32_t i);

/*
 * From any thread but the workers': hands worker `worker` the completion
 * of a parked exchange (http_park's ticket) with `result` for its
 * on_resume. It arrives as a CQE in the worker's own ring
 * (IORING_OP_MSG_RING from a small ring of the calling thread's), so a
 * worker waiting for I/O wakes for it, and no lock or queue is shared.
 * Posts are queued, and submitted when ring_post_flush is called (once
 * per batch) or the thread's queue is full. Returns 0, or a negative
 * errno (logged) if the thread's ring cannot be made.
 */
int ring_server_post(struct ring_server *s, uint32_t worker, http_ticket ticket, int32_t result);
void ring_post_flush(void);
/* The calling thread posts no more: flushes and frees its ring. */
void ring_post_thread_done(void);

/* Joins the workers (they end by themselves after ring_server_stop: a
 * worker waits for the completions its parked exchanges are owed). Their
 * rings stay until ring_server_wait, so a late post still lands. */
void ring_server_join(struct ring_server *s);

/* Joins the workers if not yet done, and frees everything: nothing may
 * post to them any more. */
void ring_server_wait(struct ring_server *s);

#endif
