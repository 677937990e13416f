/*
 * The cost of one fleet exposition (GET /metrics/fleet's body): N agents
 * (10 000 unless argv[1] says) each holding ingest-full.json, in a real
 * fleet store, rendered text 0.0.4 in 64 KiB pieces as the HTTP stream
 * asks for them. Prints, each the median of 5 runs:
 *   - all groups, no cap (the whole fleet): bytes, series, time, MB/s,
 *     ns per series;
 *   - the host-only default (no ?include=): bytes and time;
 *   - capped at a fifth of the series, and one organization of 97: the
 *     longest single call, which is what the worker serving the scrape
 *     keeps everyone else waiting for, and the calls that wrote nothing.
 *     Calls are timed in thread CPU time: on a shared machine the wall
 *     time of a call mostly measures preemption.
 * The sample is read from $RINGSIDE_SAMPLES or samples/ (run from the
 * repo root). A program, not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#include "ringside/fleet_expo.h"
#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/ingest.h"

static struct ingest_parser parser;
static struct ingest_report report;
static _Alignas(64) unsigned char blob[FLEET_BLOB_MAX];
static char piece[64 * 1024];

static double cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct run {
	double seconds;      /* median of the runs */
	double longest_call; /* the longest call of all runs, CPU time */
	size_t bytes, pieces, empty;
	uint64_t series, dropped;
};

static struct run measure(struct fleet_store *s, const struct fleet_expo_options *o)
{
	struct run r = {0};
	double t[5];

	for (int i = 0; i < 5; i++) {
		struct fleet_expo_cursor c;
		double t0 = bench_seconds();

		r.bytes = r.pieces = r.empty = 0;
		fleet_expo_begin(&c, o);
		while (!c.done) {
			double c0 = cpu_seconds(), dt;
			size_t n = fleet_expo_next(&c, s, 0, piece, sizeof piece);

			dt = cpu_seconds() - c0;
			if (dt > r.longest_call)
				r.longest_call = dt;
			r.bytes += n;
			r.pieces++;
			r.empty += n == 0;
		}
		t[i] = bench_seconds() - t0;
		r.series = c.series;
		r.dropped = c.dropped[FLEET_EXPO_DROP_MAX_SERIES];
	}
	r.seconds = bench_median(t, 5);
	return r;
}

int main(int argc, char **argv)
{
	unsigned agents = argc > 1 ? (unsigned)atoi(argv[1]) : 10000;
	const char *dir = getenv("RINGSIDE_SAMPLES");
	char path[512];
	size_t len, n;
	char *doc;
	struct fleet_store s;
	const int64_t now = 1800000000000;

	snprintf(path, sizeof path, "%s/ingest-full.json", dir && *dir ? dir : "samples");
	doc = bench_read_file(path, &len);
	if (!doc) {
		fprintf(stderr, "cannot read %s (set RINGSIDE_SAMPLES)\n", path);
		return 1;
	}
	ingest_parser_init(&parser, &report, NULL);
	if (ingest_parser_feed(&parser, doc, len) || ingest_parser_finish(&parser) ||
	    !(n = fleet_report_encode(&report, blob, sizeof blob))) {
		fprintf(stderr, "%s: not a valid report\n", path);
		return 1;
	}
	/* A blob of ~11 KB takes a 12 KiB block; room to spare. */
	if (fleet_store_init(&s, agents, 1, (size_t)agents * 16384 + (64u << 20)))
		return 1;
	for (unsigned i = 0; i < agents; i++) {
		char org[32], agent[32];
		int ol = snprintf(org, sizeof org, "org-%u", i % 97);
		int al = snprintf(agent, sizeof agent, "agent-%08u", i);

		if (fleet_publish(&s, 0, org, (size_t)ol, agent, (size_t)al, blob, n, now - i % 60000))
			return 1;
	}

	struct fleet_expo_options o = {.format = EXPO_TEXT_004, .now_ms = now, .stale_ms = 180000,
				       .ttl_ms = 300000, .max_series = 0,
				       .groups = FLEET_GROUP_ALL};
	struct run all = measure(&s, &o);

	printf("fleet_expo agents %u bytes %zu pieces %zu series %llu median %.1f ms "
	       "%.0f MB/s %.1f ns/series\n",
	       agents, all.bytes, all.pieces, (unsigned long long)all.series, all.seconds * 1e3,
	       all.bytes / all.seconds / 1e6, all.seconds * 1e9 / (double)all.series);

	o.groups = 0;
	struct run host = measure(&s, &o);

	printf("fleet_expo host-only default: bytes %zu series %llu median %.1f ms\n", host.bytes,
	       (unsigned long long)host.series, host.seconds * 1e3);

	o.groups = FLEET_GROUP_ALL;
	o.max_series = all.series / 5;
	struct run capped = measure(&s, &o);

	printf("fleet_expo capped at %llu: dropped %llu median %.1f ms longest call %.2f ms "
	       "calls %zu (%zu wrote nothing)\n",
	       (unsigned long long)o.max_series, (unsigned long long)capped.dropped,
	       capped.seconds * 1e3, capped.longest_call * 1e3, capped.pieces, capped.empty);

	o.max_series = 0;
	fleet_expo_select_org(&o, "org-5", 5);
	struct run one = measure(&s, &o);

	printf("fleet_expo one organization of 97: bytes %zu median %.1f ms longest call %.2f ms "
	       "calls %zu (%zu wrote nothing)\n",
	       one.bytes, one.seconds * 1e3, one.longest_call * 1e3, one.pieces, one.empty);
	fleet_store_fini(&s);
	free(doc);
	return 0;
}
