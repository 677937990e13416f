/*
 * The metrics registry (DESIGN.md "Metrics"): counters, gauges and
 * histograms sharded per worker. Each worker writes only its own
 * cache-line-aligned shard, with relaxed atomic stores (plain loads and
 * stores on x86: no lock prefix, no contended line); a scrape, on whatever
 * worker it lands, sums the shards. Label sets are fixed at start:
 * routes (plus "unmatched") x methods x the statuses of http_status.h.
 *
 * Exactness: a request is counted (metrics_observe_request) before its
 * response is handed to the kernel, so once a client has read N responses
 * a later scrape counts at least those N, exactly N if nothing else ran.
 */
#ifndef RINGSIDE_METRICS_H
#define RINGSIDE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringside/http_parser.h"
#include "ringside/metrics_process.h"

struct expo;
struct http_route;
struct router;

/* prom-client's default buckets, in seconds. */
#define METRICS_BUCKETS 11
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

/* Why a report was refused (ringside_ingest_reports_refused_total's
 * `reason`): id, label. */
#define METRICS_INGEST_REFUSALS(X)                                          \
	X(UNAUTHORIZED, "unauthorized")     /* 401: no or bad token */       \
	X(FORBIDDEN, "forbidden")           /* 403: scope */                 \
	X(MEDIA_TYPE, "media_type")         /* 415 */                        \
	X(RATE_LIMITED, "rate_limited")     /* 429 */                        \
	X(NO_VALIDATOR, "no_validator")     /* 503: every --ingest-slots busy */ \
	X(INVALID, "invalid")               /* 400: JSON or schema */        \
	X(TOO_LARGE, "too_large")           /* 413 */                        \
	X(FLEET_FULL, "fleet_full")         /* 503: --fleet-max-agents */    \
	X(FLEET_MEMORY, "fleet_memory")     /* 503: --fleet-memory */

/* Why /metrics/fleet left series out (ringside_fleet_series_dropped_total's
 * `reason`), in the order of enum fleet_expo_drop: id, label. */
#define METRICS_FLEET_DROPS(X)                                              \
	X(LABEL_TOO_LONG, "label_too_long")                                 \
	X(MAX_SERIES, "max_series")                                         \
	X(INVALID_ID, "invalid_id")

/* How a TLS handshake ended (ringside_tls_handshakes_total{result}). */
#define METRICS_TLS_HANDSHAKES(X)                                           \
	X(FULL, "full")                                                     \
	X(RESUMED, "resumed")                                               \
	X(FAILED, "failed")                                                 \
	X(ABANDONED, "abandoned")

/* Counters, each worker counting into its own shard. */
enum metrics_counter {
	/* The identity side (seed 000), wired by later issues. */
	METRIC_TOKENS_ISSUED,
	METRIC_TOKENS_INTROSPECTED,
	METRIC_TOKENS_REVOKED,
	METRIC_AGENTS_REGISTERED,
	METRIC_AGENTS_DECOMMISSIONED,
	/* Ringside's own work. */
	METRIC_INGEST_ACCEPTED,
#define METRIC_REFUSAL_ID(id, label) METRIC_INGEST_REFUSED_##id,
	METRICS_INGEST_REFUSALS(METRIC_REFUSAL_ID)
#undef METRIC_REFUSAL_ID
#define METRIC_FLEET_DROP_ID(id, label) METRIC_FLEET_DROPPED_##id,
	METRICS_FLEET_DROPS(METRIC_FLEET_DROP_ID)
#undef METRIC_FLEET_DROP_ID
#define METRIC_TLS_HANDSHAKE_ID(id, label) METRIC_TLS_HANDSHAKES_##id,
	METRICS_TLS_HANDSHAKES(METRIC_TLS_HANDSHAKE_ID)
#undef METRIC_TLS_HANDSHAKE_ID
	METRIC_UPLOADS_ABORTED,      /* the client left while sending a body */
	METRIC_ACCESS_LOG_DROPPED,   /* lines the access log could not keep */
	METRIC_COUNTER_COUNT
};

/* Listeners, for ringside_open_connections{listener}. */
enum metrics_listener { METRICS_LISTENER_MAIN, METRICS_LISTENER_METRICS, METRICS_LISTENERS };

/* One label set of http_requests_total / http_request_duration_seconds:
 * bucket[i] counts observations in (bound[i-1], bound[i]]; the last one
 * those above every bound. 104 bytes. */
struct metrics_series {
	_Atomic uint64_t bucket[METRICS_BUCKETS + 1];
	_Atomic uint64_t sum_ns;
};

/* What the pool view (seed 004) needs of a worker; written by it only. */
struct metrics_worker_view {
	_Atomic uint32_t creating, active, idle; /* connections by pool state */
	_Atomic uint32_t open[METRICS_LISTENERS]; /* connections by listener */
	_Atomic uint64_t requests;               /* completed */
	_Atomic uint64_t memory_resident;        /* bytes of its buffers touched */
	_Atomic uint64_t memory_in_use;          /* bytes of its buffers held now */
	_Atomic bool stopping;
	int64_t started_unix_ms;
};

struct metrics_merged; /* scrape scratch, private to registry.c */

struct metrics_shard {
	struct metrics_worker_view view;
	_Atomic uint64_t counters[METRIC_COUNTER_COUNT];
	struct metrics_series *series;  /* route_slots x HTTP_METHOD_COUNT x status slots */
	_Atomic uint64_t *touched;      /* bit per series ever observed: scrapes skip the rest */
	struct metrics_merged *merged;  /* scratch of a scrape on this worker */
} __attribute__((aligned(64)));

struct metrics_registry {
	const struct router *router;
	uint32_t route_slots;       /* router->count + 1 ("unmatched", the last) */
	uint32_t series_count;
	uint32_t shard_count;
	struct metrics_shard *shards;
	uint32_t max_connections;
	int64_t start_unix_ms;
	const char *app;            /* "ringside@<version>" */

	/* Gauges with one writer outside the workers (the db thread, later). */
	_Atomic int64_t active_agents;
	_Atomic int64_t db_pool_total, db_pool_idle, db_pool_waiting;

	/* The process collector's last sample, published by the main thread
	 * under a sequence lock (odd: being written). */
	_Atomic uint32_t process_seq;
	struct process_stats process;
};

/* Allocates the shards (the only allocation; at start). Returns 0 or
 * -ENOMEM. */
int metrics_registry_init(struct metrics_registry *r, const struct router *router,
			  uint32_t workers, uint32_t max_connections);
void metrics_registry_fini(struct metrics_registry *r);

/* The calling worker's shard; `id` is its worker index. */
static inline struct metrics_shard *metrics_shard(struct metrics_registry *r, uint32_t id)
{
	return &r->shards[id];
}

/* Single-writer increment: a relaxed load and store, never a locked RMW. */
static inline void metrics_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline void metrics_set_u32(_Atomic uint32_t *g, uint32_t v)
{
	atomic_store_explicit(g, v, memory_order_relaxed);
}

/* The route slot of a matched route, or of "unmatched" for route NULL. */
uint32_t metrics_route_slot(const struct metrics_registry *r, const struct http_route *route);

/* Counts one finished request in the caller's shard. */
void metrics_observe_request(struct metrics_registry *r, struct metrics_shard *s,
			     uint32_t route_slot, enum http_method m, unsigned status,
			     uint64_t duration_ns);

/* Main thread: publishes a process sample. */
void metrics_publish_process(struct metrics_registry *r, const struct process_stats *p);

/* Writes the registry's families of the /metrics exposition, merging
 * every shard, using `scratch` (the caller's shard) for the merge. The
 * caller may add families of its own, then calls expo_finish. Check
 * e->overflow. */
void metrics_write_exposition(struct metrics_registry *r, struct metrics_shard *scratch,
			      struct expo *e);

/* The pool view (seed 004), summed over the workers. */
struct metrics_pool {
	uint64_t size, active, idle, creating, total;
	double utilization;
};
void metrics_pool_read(const struct metrics_registry *r, struct metrics_pool *p);

#endif
