/*
 * The cost of one fleet exposition (GET /metrics/fleet's body): N agents
 * (10 000 unless argv[1] says) each holding ingest-full.json, in a real
 * fleet store, rendered text 0.0.4 in 64 KiB pieces as the HTTP stream
 * asks for them. Prints bytes, series, the median of 5 runs, MB/s and ns
 * per series. The sample is read from $RINGSIDE_SAMPLES or
 * samples/ (run from the repo root). A program, not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#include "ringside/fleet_expo.h"
#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/ingest.h"

static struct ingest_parser parser;
static struct ingest_report report;
static _Alignas(64) unsigned char blob[FLEET_BLOB_MAX];
static char piece[64 * 1024];

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
				       .ttl_ms = 300000, .max_series = 0};
	double t[5];
	size_t bytes = 0, pieces = 0;
	uint64_t series = 0;

	for (int run = 0; run < 5; run++) {
		struct fleet_expo_cursor c;
		double t0 = bench_seconds();

		bytes = pieces = 0;
		fleet_expo_begin(&c, &o);
		while ((n = fleet_expo_next(&c, &s, 0, piece, sizeof piece)) > 0) {
			bytes += n;
			pieces++;
		}
		t[run] = bench_seconds() - t0;
		series = c.series;
	}
	double med = bench_median(t, 5);

	printf("fleet_expo agents %u bytes %zu pieces %zu series %llu median %.1f ms "
	       "%.0f MB/s %.1f ns/series\n",
	       agents, bytes, pieces, (unsigned long long)series, med * 1e3, bytes / med / 1e6,
	       med * 1e9 / (double)series);
	fleet_store_fini(&s);
	free(doc);
	return 0;
}
