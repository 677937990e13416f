/*
 * Ingest body validation, Ringside against a peer, in one program: the
 * same bytes (samples/ingest-full.json, or argv[1]) validated N
 * times by
 *   ingest_validator  ingest_parser_init + feed (whole body) + finish
 *                     (src/ingest/), filling struct ingest_report
 *   jansson           json_loadb + json_decref (libjansson 2.14): a DOM
 *                     parse and free, no schema check, as a server without
 *                     a streaming validator would start
 * Prints one line: "ingest_validator <ns/doc> <MB/s> jansson <ns/doc>
 * <MB/s>", each the median of 5 runs. A program, not a test: nothing here
 * asserts a time.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -o bench_ingest_validator
 * perf/bench_ingest_validator.c src/ingest/[all .c files] -ljansson -lm
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#include "ringside/ingest.h"

#define RUNS 5

static struct ingest_parser parser;
static struct ingest_report report;
static volatile size_t sink;

static void run_validator(const char *doc, size_t len, long iters)
{
	for (long k = 0; k < iters; k++) {
		ingest_parser_init(&parser, &report, NULL);
		if (ingest_parser_feed(&parser, doc, len) != 0 ||
		    ingest_parser_finish(&parser) != 0) {
			fprintf(stderr, "ingest_validator rejected the document: %s: %s\n",
				parser.err.path, parser.err.message);
			exit(1);
		}
		sink += report.n_container;
	}
}

static void run_jansson(const char *doc, size_t len, long iters)
{
	for (long k = 0; k < iters; k++) {
		json_error_t e;
		json_t *j = json_loadb(doc, len, 0, &e);

		if (!j) {
			fprintf(stderr, "jansson rejected the document: %s\n", e.text);
			exit(1);
		}
		sink += json_object_size(j);
		json_decref(j);
	}
}

/* Median ns per document over RUNS runs of about 0.2 s each. */
static double measure(void (*fn)(const char *, size_t, long), const char *doc, size_t len)
{
	double t[RUNS], t0;
	long iters = 16;

	/* Warm up and size the runs. */
	for (;;) {
		t0 = bench_seconds();
		fn(doc, len, iters);
		if (bench_seconds() - t0 > 0.05)
			break;
		iters *= 2;
	}
	iters = (long)((double)iters * 0.2 / (bench_seconds() - t0)) + 1;
	for (int k = 0; k < RUNS; k++) {
		t0 = bench_seconds();
		fn(doc, len, iters);
		t[k] = (bench_seconds() - t0) * 1e9 / (double)iters;
	}
	return bench_median(t, RUNS);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "samples/ingest-full.json";
	size_t len;
	char *doc = bench_read_file(path, &len);
	double v, j;

	if (!doc) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	v = measure(run_validator, doc, len);
	j = measure(run_jansson, doc, len);
	printf("ingest_validator %.0f %.0f jansson %.0f %.0f\n", v, (double)len / v * 1e3, j,
	       (double)len / j * 1e3);
	free(doc);
	return 0;
}
