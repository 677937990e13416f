/*
 * The live pool view (seed 004) under /metrics/api/metrics: JSON,
 * Prometheus text, Server-Sent Events and per-worker stats. The seed's
 * "pool of workers" is mapped onto Ringside's connection slots; the
 * mapping is written down in openapi/metrics.yaml.
 */
#include "api_int.h"

#include <stdatomic.h>
#include <time.h>

#include "ringside/decimal.h"
#include "ringside/json_writer.h"
#include "ringside/metrics.h"
#include "ringside/metrics_expo.h"

static void put_pool(struct json_writer *w, const struct metrics_pool *p)
{
	jsonw_start_object(w);
	jsonw_key(w, "size");
	jsonw_u64(w, p->size);
	jsonw_key(w, "active");
	jsonw_u64(w, p->active);
	jsonw_key(w, "idle");
	jsonw_u64(w, p->idle);
	jsonw_key(w, "creating");
	jsonw_u64(w, p->creating);
	jsonw_key(w, "total");
	jsonw_u64(w, p->total);
	jsonw_key(w, "utilization");
	jsonw_double(w, p->utilization);
	jsonw_end_object(w);
}

static int64_t now_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t uptime_seconds(const struct metrics_registry *r, int64_t now_ms)
{
	return now_ms > r->start_unix_ms ? (uint64_t)(now_ms - r->start_unix_ms) / 1000 : 0;
}

/* {"pool":{...},"uptime":N,"timestamp":"..."}: the JSON view and each SSE
 * event's data. */
static size_t render_pool_json(char *buf, size_t cap, struct http_context *ctx)
{
	struct json_writer w;
	struct metrics_pool p;
	int64_t now = now_unix_ms();
	metrics_pool_read(ctx->metrics, &p);
	jsonw_init(&w, buf, cap);
	jsonw_start_object(&w);
	jsonw_key(&w, "pool");
	put_pool(&w, &p);
	jsonw_key(&w, "uptime");
	jsonw_u64(&w, uptime_seconds(ctx->metrics, now));
	jsonw_key(&w, "timestamp");
	jsonw_time_ms(&w, now);
	jsonw_end_object(&w);
	return jsonw_done(&w);
}

static void pool_json_request(struct http_exchange *x)
{
	size_t cap;
	char *buf = http_scratch(x, &cap);
	size_t len = render_pool_json(buf, cap, x->ctx);
	http_reply_any(x, 200, "application/json", NULL, buf, len);
}

static void gauge(struct expo *e, const char *name, const char *help, double v)
{
	expo_family(e, name, EXPO_GAUGE, help);
	expo_sample(e, name, NULL, NULL, 0, NULL, v);
}

static void pool_prometheus_request(struct http_exchange *x)
{
	size_t cap;
	char *buf = http_scratch(x, &cap);
	struct metrics_pool p;
	metrics_pool_read(x->ctx->metrics, &p);
	struct expo e;
	expo_init(&e, buf, cap, EXPO_TEXT_004);
	/* The seed's families, HELP texts and types, in its order. */
	gauge(&e, "buntime_pool_size", "Maximum pool size", (double)p.size);
	gauge(&e, "buntime_pool_active", "Active workers", (double)p.active);
	gauge(&e, "buntime_pool_idle", "Idle workers", (double)p.idle);
	gauge(&e, "buntime_pool_creating", "Workers being created", (double)p.creating);
	gauge(&e, "buntime_pool_total", "Total workers", (double)p.total);
	gauge(&e, "buntime_pool_utilization", "Pool utilization ratio", p.utilization);
	expo_family(&e, "buntime_uptime_seconds", EXPO_COUNTER, "Server uptime in seconds");
	expo_sample(&e, "buntime_uptime_seconds", NULL, NULL, 0, NULL,
		    (double)uptime_seconds(x->ctx->metrics, now_unix_ms()));
	http_reply_any(x, 200, "text/plain; charset=utf-8", NULL, buf, e.overflow ? 0 : e.len);
}

static void pool_sse_request(struct http_exchange *x)
{
	if (http_start_event_stream(x, render_pool_json) < 0)
		http_reply_core_error(x, 500, API_CORE_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
				      NULL);
}

static void pool_stats_request(struct http_exchange *x)
{
	size_t cap;
	char *buf = http_scratch(x, &cap);
	struct json_writer w;
	const struct metrics_registry *r = x->ctx->metrics;
	struct metrics_pool p;
	int64_t now = now_unix_ms();
	metrics_pool_read(r, &p);
	jsonw_init(&w, buf, cap);
	jsonw_start_object(&w);
	jsonw_key(&w, "pool");
	put_pool(&w, &p);
	jsonw_key(&w, "workers");
	jsonw_start_array(&w);
	for (uint32_t i = 0; i < r->shard_count; i++) {
		const struct metrics_worker_view *v = &r->shards[i].view;
		const char *state = atomic_load_explicit(&v->stopping, memory_order_relaxed) ? "terminated"
				    : atomic_load_explicit(&v->active, memory_order_relaxed) ? "active"
											  : "idle";
		char id[32] = "worker-";
		char *end = decimal_u64(id + 7, i);
		jsonw_start_object(&w);
		jsonw_key(&w, "id");
		jsonw_string(&w, id, (size_t)(end - id));
		jsonw_key(&w, "app");
		jsonw_cstring(&w, r->app);
		jsonw_key(&w, "state");
		jsonw_cstring(&w, state);
		jsonw_key(&w, "requests");
		jsonw_u64(&w, atomic_load_explicit(&v->requests, memory_order_relaxed));
		jsonw_key(&w, "uptime");
		jsonw_u64(&w, now > v->started_unix_ms ? (uint64_t)(now - v->started_unix_ms) / 1000 : 0);
		jsonw_key(&w, "memory");
		jsonw_start_object(&w);
		jsonw_key(&w, "rss");
		jsonw_u64(&w, atomic_load_explicit(&v->memory_resident, memory_order_relaxed));
		jsonw_key(&w, "heapUsed");
		jsonw_u64(&w, atomic_load_explicit(&v->memory_in_use, memory_order_relaxed));
		jsonw_end_object(&w);
		jsonw_end_object(&w);
	}
	jsonw_end_array(&w);
	jsonw_end_object(&w);
	http_reply_any(x, 200, "application/json", NULL, buf, jsonw_done(&w));
}

const struct http_handler api_pool_json = {.on_request = pool_json_request};
const struct http_handler api_pool_prometheus = {.on_request = pool_prometheus_request};
const struct http_handler api_pool_sse = {.on_request = pool_sse_request};
const struct http_handler api_pool_stats = {.on_request = pool_stats_request};
