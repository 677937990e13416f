#include "ringside/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringside/config.h"
#include "ringside/http_parser.h"
#include "ringside/http_status.h"
#include "ringside/metrics_expo.h"
#include "ringside/metrics_process.h"
#include "ringside/router.h"

const double metrics_bucket_bounds[METRICS_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
static const char *const bucket_le[METRICS_BUCKETS + 1] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
};
static uint64_t bucket_bound_ns[METRICS_BUCKETS];

/* The status label set: every status of the table, then "other" for a
 * status a handler invented (never expected; keeps the set fixed). */
static const unsigned status_codes[] = {
#define STATUS_CODE(code, reason) code,
	HTTP_STATUS_MAP(STATUS_CODE)
#undef STATUS_CODE
};
#define STATUS_KNOWN (sizeof status_codes / sizeof status_codes[0])
#define STATUS_SLOTS (STATUS_KNOWN + 1)
#define STATUS_MAX 600
static uint8_t status_slot_of[STATUS_MAX];
static char status_label[STATUS_SLOTS][6];

struct merged_row {
	uint32_t series;
	uint64_t bucket[METRICS_BUCKETS + 1];
	uint64_t sum_ns;
};

struct metrics_merged {
	uint32_t rows;
	struct merged_row row[];
};

static void init_tables(void)
{
	for (size_t i = 0; i < METRICS_BUCKETS; i++)
		bucket_bound_ns[i] = (uint64_t)(metrics_bucket_bounds[i] * 1e9);
	memset(status_slot_of, STATUS_KNOWN, sizeof status_slot_of);
	for (size_t i = 0; i < STATUS_KNOWN; i++) {
		status_slot_of[status_codes[i]] = (uint8_t)i;
		unsigned c = status_codes[i];
		status_label[i][0] = (char)('0' + c / 100);
		status_label[i][1] = (char)('0' + c / 10 % 10);
		status_label[i][2] = (char)('0' + c % 10);
	}
	memcpy(status_label[STATUS_KNOWN], "other", 6);
}

static size_t touched_words(const struct metrics_registry *r)
{
	return (r->series_count + 63) / 64;
}

int metrics_registry_init(struct metrics_registry *r, const struct router *router,
			  uint32_t workers, uint32_t max_connections)
{
	_Static_assert(STATUS_KNOWN < 255, "status slots fit a byte");
	_Static_assert(sizeof(struct metrics_series) == 104, "series size noted in metrics.h");
	memset(r, 0, sizeof *r);
	init_tables();
	r->router = router;
	r->route_slots = (uint32_t)router->count + 1;
	r->series_count = r->route_slots * HTTP_METHOD_COUNT * (uint32_t)STATUS_SLOTS;
	r->shard_count = workers;
	r->max_connections = max_connections;
	r->app = "ringside@" RINGSIDE_VERSION;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	r->start_unix_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (posix_memalign((void **)&r->shards, 64, workers * sizeof *r->shards))
		return -ENOMEM;
	memset(r->shards, 0, workers * sizeof *r->shards);
	for (uint32_t i = 0; i < workers; i++) {
		struct metrics_shard *s = &r->shards[i];
		if (posix_memalign((void **)&s->series, 64,
				   r->series_count * sizeof *s->series) ||
		    !(s->touched = calloc(touched_words(r), sizeof *s->touched)) ||
		    !(s->merged = malloc(sizeof *s->merged +
					 r->series_count * sizeof s->merged->row[0]))) {
			metrics_registry_fini(r);
			return -ENOMEM;
		}
		memset(s->series, 0, r->series_count * sizeof *s->series);
	}
	return 0;
}

void metrics_registry_fini(struct metrics_registry *r)
{
	for (uint32_t i = 0; r->shards && i < r->shard_count; i++) {
		free(r->shards[i].series);
		free(r->shards[i].touched);
		free(r->shards[i].merged);
	}
	free(r->shards);
	r->shards = NULL;
}

uint32_t metrics_route_slot(const struct metrics_registry *r, const struct http_route *route)
{
	return route ? (uint32_t)(route - r->router->routes) : r->route_slots - 1;
}

static uint32_t series_index(uint32_t route_slot, enum http_method m, unsigned status)
{
	uint32_t st = status < STATUS_MAX ? status_slot_of[status] : (uint32_t)STATUS_KNOWN;
	return (route_slot * HTTP_METHOD_COUNT + (uint32_t)m) * (uint32_t)STATUS_SLOTS + st;
}

void metrics_observe_request(struct metrics_registry *r, struct metrics_shard *s,
			     uint32_t route_slot, enum http_method m, unsigned status,
			     uint64_t duration_ns)
{
	(void)r;
	uint32_t i = series_index(route_slot, m, status);
	struct metrics_series *series = &s->series[i];
	_Atomic uint64_t *word = &s->touched[i / 64];
	uint64_t bit = 1ull << (i % 64), bits = atomic_load_explicit(word, memory_order_relaxed);
	if (!(bits & bit))
		atomic_store_explicit(word, bits | bit, memory_order_relaxed);
	size_t b = 0;
	while (b < METRICS_BUCKETS && duration_ns > bucket_bound_ns[b])
		b++;
	metrics_add(&series->bucket[b], 1);
	metrics_add(&series->sum_ns, duration_ns);
	metrics_add(&s->view.requests, 1);
}

void metrics_publish_process(struct metrics_registry *r, const struct process_stats *p)
{
	/* Sequence lock, writer side: odd while writing. */
	uint32_t seq = atomic_load_explicit(&r->process_seq, memory_order_relaxed);
	atomic_store_explicit(&r->process_seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	memcpy(&r->process, p, sizeof *p);
	atomic_store_explicit(&r->process_seq, seq + 2, memory_order_release);
}

static void read_process(struct metrics_registry *r, struct process_stats *out)
{
	/* Reader side: retry while a sample is being written. The writer
	 * holds it for one memcpy, once a second, so this ends at once. */
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t before = atomic_load_explicit(&r->process_seq, memory_order_acquire);
		memcpy(out, &r->process, sizeof *out);
		atomic_thread_fence(memory_order_acquire);
		uint32_t after = atomic_load_explicit(&r->process_seq, memory_order_relaxed);
		if (before == after && !(before & 1))
			return;
	}
}

/* Sums every shard's series into the scratch rows, visiting only series
 * some worker has observed. */
static struct metrics_merged *merge_series(struct metrics_registry *r, struct metrics_shard *scratch)
{
	struct metrics_merged *m = scratch->merged;
	m->rows = 0;
	for (size_t word = 0; word < touched_words(r); word++) {
		uint64_t bits = 0;
		for (uint32_t w = 0; w < r->shard_count; w++)
			bits |= atomic_load_explicit(&r->shards[w].touched[word], memory_order_relaxed);
		for (; bits; bits &= bits - 1) {
			uint32_t i = (uint32_t)(word * 64 + (size_t)__builtin_ctzll(bits));
			struct merged_row *row = &m->row[m->rows++];
			memset(row, 0, sizeof *row);
			row->series = i;
			for (uint32_t w = 0; w < r->shard_count; w++) {
				const struct metrics_series *s = &r->shards[w].series[i];
				for (size_t b = 0; b <= METRICS_BUCKETS; b++)
					row->bucket[b] += atomic_load_explicit(&s->bucket[b],
									       memory_order_relaxed);
				row->sum_ns += atomic_load_explicit(&s->sum_ns, memory_order_relaxed);
			}
		}
	}
	return m;
}

/* The label set of a series, rendered once for its 15 lines. */
static void row_labels(const struct metrics_registry *r, uint32_t series, struct expo_labelset *ls)
{
	uint32_t st = series % (uint32_t)STATUS_SLOTS;
	uint32_t rest = series / (uint32_t)STATUS_SLOTS;
	enum http_method m = (enum http_method)(rest % HTTP_METHOD_COUNT);
	uint32_t route = rest / HTTP_METHOD_COUNT;
	const struct expo_label l[3] = {
		{"method", http_method_name(m)},
		{"route", route < r->router->count ? r->router->routes[route].pattern : "unmatched"},
		{"status_code", status_label[st]},
	};
	expo_labelset_init(ls, l, 3);
}

static uint64_t counter_sum(const struct metrics_registry *r, enum metrics_counter c)
{
	uint64_t v = 0;
	for (uint32_t w = 0; w < r->shard_count; w++)
		v += atomic_load_explicit(&r->shards[w].counters[c], memory_order_relaxed);
	return v;
}

static void gauge(struct expo *e, const char *name, const char *help, double v)
{
	expo_family(e, name, EXPO_GAUGE, help);
	expo_sample(e, name, NULL, NULL, 0, NULL, v);
}

static void counter(struct expo *e, const char *name, const char *help, double v)
{
	expo_family(e, name, EXPO_COUNTER, help);
	expo_sample(e, name, NULL, NULL, 0, NULL, v);
}

/* A counter family with one series per value of one label. */
struct label_row {
	enum metrics_counter id;
	const char *value; /* of the label */
};

static void counters_by_label(struct expo *e, const struct metrics_registry *r, const char *name,
			      const char *help, const char *label_name,
			      const struct label_row *rows, size_t n)
{
	expo_family(e, name, EXPO_COUNTER, help);
	for (size_t i = 0; i < n; i++) {
		const struct expo_label label = {label_name, rows[i].value};
		expo_sample(e, name, NULL, &label, 1, NULL, (double)counter_sum(r, rows[i].id));
	}
}

void metrics_write_exposition(struct metrics_registry *r, struct metrics_shard *scratch,
			      struct expo *e)
{
	const struct metrics_merged *m = merge_series(r, scratch);
	struct expo_labelset ls;

	expo_family(e, "http_requests_total", EXPO_COUNTER, "Total number of HTTP requests.");
	for (uint32_t i = 0; i < m->rows; i++) {
		const struct merged_row *row = &m->row[i];
		uint64_t n = 0;
		for (size_t b = 0; b <= METRICS_BUCKETS; b++)
			n += row->bucket[b];
		row_labels(r, row->series, &ls);
		expo_line_u64(e, "http_requests_total", NULL, &ls, NULL, n);
	}

	expo_family(e, "http_request_duration_seconds", EXPO_HISTOGRAM,
		    "Duration of HTTP requests in seconds.");
	for (uint32_t i = 0; i < m->rows; i++) {
		const struct merged_row *row = &m->row[i];
		uint64_t cumulative = 0;
		row_labels(r, row->series, &ls);
		for (size_t b = 0; b <= METRICS_BUCKETS; b++) {
			cumulative += row->bucket[b];
			expo_line_u64(e, "http_request_duration_seconds", "_bucket", &ls,
				      bucket_le[b], cumulative);
		}
		/* Nanoseconds written as exact seconds. */
		expo_line_fixed(e, "http_request_duration_seconds", "_sum", &ls, NULL,
				row->sum_ns, 9);
		expo_line_u64(e, "http_request_duration_seconds", "_count", &ls, NULL, cumulative);
	}

	static const struct {
		enum metrics_counter id;
		const char *name, *help;
	} counters[] = {
		{METRIC_TOKENS_ISSUED, "sentryagent_tokens_issued_total", "Total tokens issued."},
		{METRIC_TOKENS_INTROSPECTED, "sentryagent_tokens_introspected_total",
		 "Total tokens introspected."},
		{METRIC_TOKENS_REVOKED, "sentryagent_tokens_revoked_total", "Total tokens revoked."},
		{METRIC_AGENTS_REGISTERED, "sentryagent_agents_registered_total",
		 "Total agents registered."},
		{METRIC_AGENTS_DECOMMISSIONED, "sentryagent_agents_decommissioned_total",
		 "Total agents decommissioned."},
	};
	for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
		counter(e, counters[i].name, counters[i].help, (double)counter_sum(r, counters[i].id));

	gauge(e, "sentryagent_active_agents", "Number of registered agents that are active.",
	      (double)atomic_load_explicit(&r->active_agents, memory_order_relaxed));
	gauge(e, "sentryagent_db_pool_total_connections",
	      "Connections the database pool holds.",
	      (double)atomic_load_explicit(&r->db_pool_total, memory_order_relaxed));
	gauge(e, "sentryagent_db_pool_idle_connections", "Database connections not in use.",
	      (double)atomic_load_explicit(&r->db_pool_idle, memory_order_relaxed));
	gauge(e, "sentryagent_db_pool_waiting_requests",
	      "Queries waiting for a database connection.",
	      (double)atomic_load_explicit(&r->db_pool_waiting, memory_order_relaxed));

	struct process_stats p;
	read_process(r, &p);
	counter(e, "process_cpu_user_seconds_total", "Total user CPU time spent in seconds.",
		p.cpu_user_seconds);
	counter(e, "process_cpu_system_seconds_total", "Total system CPU time spent in seconds.",
		p.cpu_system_seconds);
	counter(e, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
		p.cpu_user_seconds + p.cpu_system_seconds);
	gauge(e, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
	      p.start_time_seconds);
	gauge(e, "process_resident_memory_bytes", "Resident memory size in bytes.",
	      (double)p.resident_bytes);
	gauge(e, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
	      (double)p.virtual_bytes);
	gauge(e, "process_heap_bytes", "Process heap size in bytes.", (double)p.heap_bytes);
	gauge(e, "process_open_fds", "Number of open file descriptors.", (double)p.open_fds);
	gauge(e, "process_max_fds", "Maximum number of open file descriptors.",
	      (double)p.max_fds);

	/* Ringside's own work (openapi/metrics.yaml). */
	expo_family(e, "ringside_build_info", EXPO_GAUGE,
		    "Always 1; the labels say which Ringside this is.");
	const struct expo_label version = {"version", RINGSIDE_VERSION};
	expo_sample(e, "ringside_build_info", NULL, &version, 1, NULL, 1);

	expo_family(e, "ringside_open_connections", EXPO_GAUGE,
		    "Connections open now, by the listener that accepted them.");
	static const char *const listener_names[METRICS_LISTENERS] = {"main", "metrics"};
	for (int l = 0; l < METRICS_LISTENERS; l++) {
		uint64_t open = 0;
		for (uint32_t w = 0; w < r->shard_count; w++)
			open += atomic_load_explicit(&r->shards[w].view.open[l], memory_order_relaxed);
		const struct expo_label label = {"listener", listener_names[l]};
		expo_sample(e, "ringside_open_connections", NULL, &label, 1, NULL, (double)open);
	}

	counter(e, "ringside_ingest_reports_accepted_total",
		"Agent reports accepted and stored as their agent's latest.",
		(double)counter_sum(r, METRIC_INGEST_ACCEPTED));
	static const struct label_row refusals[] = {
#define REFUSAL_ROW(id, label) {METRIC_INGEST_REFUSED_##id, label},
		METRICS_INGEST_REFUSALS(REFUSAL_ROW)
#undef REFUSAL_ROW
	};
	counters_by_label(e, r, "ringside_ingest_reports_refused_total",
			  "Agent reports refused, by reason (body timeouts are 408s in "
			  "http_requests_total).",
			  "reason", refusals, sizeof refusals / sizeof refusals[0]);
	static const struct label_row fleet_drops[] = {
#define FLEET_DROP_ROW(id, label) {METRIC_FLEET_DROPPED_##id, label},
		METRICS_FLEET_DROPS(FLEET_DROP_ROW)
#undef FLEET_DROP_ROW
	};
	counters_by_label(e, r, "ringside_fleet_series_dropped_total",
			  "Series /metrics/fleet scrapes left out, by reason (summed over the "
			  "scrapes that ended).",
			  "reason", fleet_drops, sizeof fleet_drops / sizeof fleet_drops[0]);
	static const struct label_row tls_handshakes[] = {
#define TLS_HANDSHAKE_ROW(id, label) {METRIC_TLS_HANDSHAKES_##id, label},
		METRICS_TLS_HANDSHAKES(TLS_HANDSHAKE_ROW)
#undef TLS_HANDSHAKE_ROW
	};
	counters_by_label(e, r, "ringside_tls_handshakes_total",
			  "TLS handshakes by how they ended: full (a new session), resumed (from "
			  "the session cache), failed (a protocol error: plaintext, no common "
			  "version or suite, a bad record), abandoned (the connection closed or "
			  "timed out first). All zero without --tls-cert.",
			  "result", tls_handshakes, sizeof tls_handshakes / sizeof tls_handshakes[0]);
	counter(e, "ringside_http_uploads_aborted_total",
		"Request bodies the client stopped sending (it closed or reset the connection).",
		(double)counter_sum(r, METRIC_UPLOADS_ABORTED));
	counter(e, "ringside_access_log_dropped_total",
		"Access log lines dropped because the log file could not keep up.",
		(double)counter_sum(r, METRIC_ACCESS_LOG_DROPPED));
}

void metrics_pool_read(const struct metrics_registry *r, struct metrics_pool *p)
{
	memset(p, 0, sizeof *p);
	for (uint32_t w = 0; w < r->shard_count; w++) {
		const struct metrics_worker_view *v = &r->shards[w].view;
		p->creating += atomic_load_explicit(&v->creating, memory_order_relaxed);
		p->active += atomic_load_explicit(&v->active, memory_order_relaxed);
		p->idle += atomic_load_explicit(&v->idle, memory_order_relaxed);
	}
	p->size = r->max_connections;
	p->total = p->active + p->idle + p->creating;
	p->utilization = p->size ? (double)p->active / (double)p->size : 0;
}
