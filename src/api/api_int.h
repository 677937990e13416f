/* Handlers of src/api, one per route (the table is in routes.c), and what
 * they share: per-worker state and agent-token authentication. */
#ifndef RINGSIDE_API_INT_H
#define RINGSIDE_API_INT_H

#include "ringside/api.h"
#include "ringside/http_response.h"
#include "ringside/ingest.h"
#include "ringside/jwt.h"
#include "ringside/metrics.h"
#include "ringside/token_cache.h"

struct expo;

extern const struct http_handler api_health;
extern const struct http_handler api_metrics;
extern const struct http_handler api_pool_json;
extern const struct http_handler api_pool_prometheus;
extern const struct http_handler api_pool_sse;
extern const struct http_handler api_pool_stats;
extern const struct http_handler api_ingest;
extern const struct http_handler api_agent_latest;
extern const struct http_handler api_fleet_metrics;

/* A validator: taken when the first body bytes of a report arrive (not
 * at its head, so a client that sends a head and then nothing holds
 * none), given back at the exchange's end. 1.7 KB of parser here, and an
 * 880 KB report in a lazily touched mapping: a validator costs what its
 * documents touch (a dripping client's, one page). */
struct ingest_slot {
	struct ingest_parser parser;
	struct ingest_report *report;  /* in the worker's lazily touched mapping */
};

struct api_worker {
	struct token_cache tokens;
	struct ingest_slot *slots;
	uint32_t *free_slots;          /* stack of free slot indexes */
	uint32_t free_top, slot_count;
	_Atomic uint32_t slots_in_use; /* for /metrics; written by this worker */
	struct ingest_report *reports; /* slot_count of them, MAP_NORESERVE */
	/* The sweep for agents silent past --fleet-forget (api_worker_pass). */
	int64_t next_forget_ms;
	uint32_t forget_cursor;
} __attribute__((aligned(64)));

static inline struct api_worker *api_worker_of(struct http_exchange *x)
{
	return &x->ctx->api->workers[x->ctx->worker_id];
}

/*
 * The agent token of the request (Authorization: Bearer, RFC 6750),
 * verified through the worker's cache, with `scope` (JWT_SCOPE_* bits, any
 * of them; 0: none needed). Returns its claims (valid during this handler
 * call), or NULL after replying 401 UNAUTHORIZED (no or invalid token,
 * with WWW-Authenticate), 403 FORBIDDEN_SCOPE, or 503 (no key
 * configured). The agent routes' error_code is api_agent_error_code
 * (api_errors.h).
 */
const struct jwt_claims *api_authenticate(struct http_exchange *x, const char *buf,
					  const struct http_request *req, uint32_t scope);

/* Appends the handlers' own families to a /metrics exposition: the
 * fleet store and the validators. */
void api_write_metrics(struct api *a, struct expo *e);

/* Counts one event of this worker (a refused report, say). */
static inline void api_count(struct http_exchange *x, enum metrics_counter c)
{
	metrics_add(&x->ctx->shard->counters[c], 1);
}

/* Wall-clock milliseconds (the coarse clock: tokens and snapshot times
 * need no finer). */
int64_t api_now_ms(void);

#endif
