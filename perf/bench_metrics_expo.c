/*
 * Exposition writing (src/metrics/expo.c): one realistic /metrics page
 * written N times into a preallocated buffer, as the scrape path does:
 *   - 10 counter families x 30 series, 3 labels each (method, route,
 *     code): 300 series, integer values (expo_sample_u64);
 *   - 6 histogram families x 10 series, 2 labels (+ le), 12 buckets each
 *     (11 bounds and +Inf), a non-integral _sum and a _count: 60
 *     histograms, 840 lines.
 * Values move every iteration, so no run formats the same numbers twice.
 * Usage: bench_metrics_expo [N] [openmetrics]. Prints one line,
 * "<ns per exposition> <MB/s>" (MB = 10^6 bytes written), the median of 5
 * runs; the exposition's size goes to stderr. A program, not a test:
 * nothing here asserts a time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#include "ringside/metrics_expo.h"

#define COUNTER_FAMILIES 10
#define SERIES_PER_COUNTER 30
#define HIST_FAMILIES 6
#define SERIES_PER_HIST 10
#define BUCKETS 12

static const char *const counter_names[COUNTER_FAMILIES] = {
	"ringside_http_requests_total",      "ringside_http_request_bytes_total",
	"ringside_http_response_bytes_total", "ringside_ingest_points_total",
	"ringside_ingest_rejected_total",    "ringside_db_queries_total",
	"ringside_db_rows_read_total",       "ringside_auth_failures_total",
	"ringside_ring_sqe_submitted_total", "ringside_ring_cqe_reaped_total",
};
static const char *const hist_names[HIST_FAMILIES] = {
	"ringside_http_request_duration_seconds", "ringside_http_response_size_bytes",
	"ringside_db_query_duration_seconds",     "ringside_ingest_batch_duration_seconds",
	"ringside_ingest_batch_points",           "ringside_ring_wait_seconds",
};
static const char *const les[BUCKETS] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
};
static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
static const char *const routes[] = {"/api/v1/metrics", "/api/v1/agents/:id", "/api/v1/query",
				     "/healthz", "/api/v1/ingest", "/api/v1/agents"};
static const char *const codes[] = {"200", "201", "204", "400", "404", "500"};

static uint64_t counters[COUNTER_FAMILIES][SERIES_PER_COUNTER];
static uint64_t buckets[HIST_FAMILIES][SERIES_PER_HIST][BUCKETS];
static double sums[HIST_FAMILIES][SERIES_PER_HIST];

static void init_values(void)
{
	uint64_t x = 88172645463325252ull;

	for (int f = 0; f < COUNTER_FAMILIES; f++)
		for (int i = 0; i < SERIES_PER_COUNTER; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			counters[f][i] = x % (1ull << (8 + 3 * (i % 10)));
		}
	for (int f = 0; f < HIST_FAMILIES; f++)
		for (int i = 0; i < SERIES_PER_HIST; i++) {
			uint64_t c = 0;

			for (int b = 0; b < BUCKETS; b++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				c += x % 5000;
				buckets[f][i][b] = c;
			}
			sums[f][i] = (double)c * 0.0371234;
		}
}

static void advance(void)
{
	for (int f = 0; f < COUNTER_FAMILIES; f++)
		counters[f][f] += 7;
	for (int f = 0; f < HIST_FAMILIES; f++) {
		for (int b = 3; b < BUCKETS; b++)
			buckets[f][f][b]++;
		sums[f][f] += 0.0123;
	}
}

static size_t write_page(struct expo *e)
{
	for (int f = 0; f < COUNTER_FAMILIES; f++) {
		expo_family(e, counter_names[f], EXPO_COUNTER, "Events since start, by method, route and code.");
		for (int i = 0; i < SERIES_PER_COUNTER; i++) {
			const struct expo_label l[3] = {
				{"method", methods[i % 5]},
				{"route", routes[i % 6]},
				{"code", codes[(i / 5) % 6]},
			};

			expo_sample_u64(e, counter_names[f], NULL, l, 3, NULL, counters[f][i]);
		}
	}
	for (int f = 0; f < HIST_FAMILIES; f++) {
		expo_family(e, hist_names[f], EXPO_HISTOGRAM, "Distribution, by method and route.");
		for (int i = 0; i < SERIES_PER_HIST; i++) {
			const struct expo_label l[2] = {
				{"method", methods[i % 5]},
				{"route", routes[i % 6]},
			};

			for (int b = 0; b < BUCKETS; b++)
				expo_sample_u64(e, hist_names[f], "_bucket", l, 2, les[b], buckets[f][i][b]);
			expo_sample(e, hist_names[f], "_sum", l, 2, NULL, sums[f][i]);
			expo_sample_u64(e, hist_names[f], "_count", l, 2, NULL, buckets[f][i][BUCKETS - 1]);
		}
	}
	expo_finish(e);
	return e->len;
}

int main(int argc, char **argv)
{
	static char buf[1 << 20];
	long n = argc > 1 ? atol(argv[1]) : 5000;
	enum expo_format fmt = argc > 2 && !strcmp(argv[2], "openmetrics") ? EXPO_OPENMETRICS_100
									      : EXPO_TEXT_004;
	double ns[5], mbs[5];
	size_t bytes = 0;
	uint64_t check = 0;
	struct expo e;

	if (n <= 0)
		n = 5000;
	init_values();
	for (int r = 0; r < 5; r++) {
		double t0, t;

		bytes = 0;
		t0 = bench_seconds();
		for (long i = 0; i < n; i++) {
			expo_init(&e, buf, sizeof buf, fmt);
			bytes += write_page(&e);
			if (e.overflow) {
				fprintf(stderr, "buffer too small\n");
				return 1;
			}
			check += (unsigned char)buf[e.len / 2];
			advance();
		}
		t = bench_seconds() - t0;
		ns[r] = t * 1e9 / (double)n;
		mbs[r] = (double)bytes / t / 1e6;
	}
	double ns_median = bench_median(ns, 5), mbs_median = bench_median(mbs, 5);
	fprintf(stderr, "%s exposition: %zu bytes, 300 counter series + 60 histograms (check %llu)\n",
		fmt == EXPO_TEXT_004 ? "text 0.0.4" : "OpenMetrics 1.0.0", (size_t)(bytes / (size_t)n),
		(unsigned long long)check);
	printf("%.0f %.1f\n", ns_median, mbs_median);
	return 0;
}
