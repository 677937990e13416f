/*
 * The live pool view (seed 004) under /metrics/api/metrics: JSON,
 * Prometheus text, Server-Sent Events and per-worker stats. The seed's
 * "pool of workers" is mapped onto Ringside's connection slots; the
 * mapping is written down in openapi/metrics.yaml.
 */
#include "api_int.h"

#include <string.h>
#include <time.h>

#include "ringside/metrics.h"
#include "ringside/metrics_expo.h"

/* A tiny appender for the few fixed JSON and text shapes here. */
struct text {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void put(struct text *t, const char *s, size_t n)
{
	if (t->overflow || n > t->cap - t->len) {
		t->overflow = true;
		return;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

static void put_str(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

static void put_num(struct text *t, double v)
{
	char buf[33];
	put(t, buf, expo_format_double(buf, v));
}

static void put_pool(struct text *t, const struct metrics_pool *p)
{
	put_str(t, "{\"size\":");
	put_num(t, (double)p->size);
	put_str(t, ",\"active\":");
	put_num(t, (double)p->active);
	put_str(t, ",\"idle\":");
	put_num(t, (double)p->idle);
	put_str(t, ",\"creating\":");
	put_num(t, (double)p->creating);
	put_str(t, ",\"total\":");
	put_num(t, (double)p->total);
	put_str(t, ",\"utilization\":");
	put_num(t, p->utilization);
	put_str(t, "}");
}

static int64_t now_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2024-01-23T10:30:00.000Z" */
static void put_timestamp(struct text *t, int64_t unix_ms)
{
	time_t secs = (time_t)(unix_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char buf[32];
	size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	int ms = (int)(unix_ms % 1000);
	buf[n++] = '.';
	buf[n++] = (char)('0' + ms / 100);
	buf[n++] = (char)('0' + ms / 10 % 10);
	buf[n++] = (char)('0' + ms % 10);
	buf[n++] = 'Z';
	put(t, buf, n);
}

static uint64_t uptime_seconds(const struct metrics_registry *r, int64_t now_ms)
{
	return now_ms > r->start_unix_ms ? (uint64_t)(now_ms - r->start_unix_ms) / 1000 : 0;
}

/* {"pool":{...},"uptime":N,"timestamp":"..."}: the JSON view and each SSE
 * event's data. */
static size_t render_pool_json(char *buf, size_t cap, struct http_context *ctx)
{
	struct text t = {buf, 0, cap, false};
	struct metrics_pool p;
	int64_t now = now_unix_ms();
	metrics_pool_read(ctx->metrics, &p);
	put_str(&t, "{\"pool\":");
	put_pool(&t, &p);
	put_str(&t, ",\"uptime\":");
	put_num(&t, (double)uptime_seconds(ctx->metrics, now));
	put_str(&t, ",\"timestamp\":\"");
	put_timestamp(&t, now);
	put_str(&t, "\"}");
	return t.overflow ? 0 : t.len;
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
		http_reply_error(x, 500, "INTERNAL_SERVER_ERROR",
				 "An unexpected error occurred. Please try again later.", NULL, NULL,
				 NULL);
}

static void pool_stats_request(struct http_exchange *x)
{
	size_t cap;
	char *buf = http_scratch(x, &cap);
	struct text t = {buf, 0, cap, false};
	const struct metrics_registry *r = x->ctx->metrics;
	struct metrics_pool p;
	int64_t now = now_unix_ms();
	metrics_pool_read(r, &p);
	put_str(&t, "{\"pool\":");
	put_pool(&t, &p);
	put_str(&t, ",\"workers\":[");
	for (uint32_t i = 0; i < r->shard_count; i++) {
		const struct metrics_worker_view *v = &r->shards[i].view;
		const char *state = atomic_load_explicit(&v->stopping, memory_order_relaxed) ? "terminated"
				    : atomic_load_explicit(&v->active, memory_order_relaxed) ? "active"
											  : "idle";
		put_str(&t, i ? ",{\"id\":\"worker-" : "{\"id\":\"worker-");
		put_num(&t, i);
		put_str(&t, "\",\"app\":\"");
		put_str(&t, r->app);
		put_str(&t, "\",\"state\":\"");
		put_str(&t, state);
		put_str(&t, "\",\"requests\":");
		put_num(&t, (double)atomic_load_explicit(&v->requests, memory_order_relaxed));
		put_str(&t, ",\"uptime\":");
		put_num(&t, (double)(now > v->started_unix_ms ? (now - v->started_unix_ms) / 1000 : 0));
		put_str(&t, ",\"memory\":{\"rss\":");
		put_num(&t, (double)atomic_load_explicit(&v->memory_resident, memory_order_relaxed));
		put_str(&t, ",\"heapUsed\":");
		put_num(&t, (double)atomic_load_explicit(&v->memory_in_use, memory_order_relaxed));
		put_str(&t, "}}");
	}
	put_str(&t, "]}");
	http_reply_any(x, 200, "application/json", NULL, buf, t.overflow ? 0 : t.len);
}

const struct http_handler api_pool_json = {.on_request = pool_json_request};
const struct http_handler api_pool_prometheus = {.on_request = pool_prometheus_request};
const struct http_handler api_pool_sse = {.on_request = pool_sse_request};
const struct http_handler api_pool_stats = {.on_request = pool_stats_request};
