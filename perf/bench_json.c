/*
 * The cost of the JSON bodies written by the one JSON writer
 * (src/common/json_writer.c): GET /api/metrics/agents/{agentId}/latest of
 * the full sample (the heavy one: ~14 KB, every kind of value), and a
 * whole error response (head and envelope, http_reply_error). Prints ns per body, the median of 7 runs. The sample
 * is read from $RINGSIDE_SAMPLES or samples/ (run from the repo root).
 * A program, not a test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/http_response.h"
#include "ringside/ingest.h"

static struct ingest_parser parser;
static struct ingest_report report;
static char out[256 * 1024];

#define RUNS 7

/* Median ns per call of fn over `iters` calls, and the last length. */
#define TIME(label, iters, expr)                                                      \
	do {                                                                          \
		double t[RUNS];                                                       \
		size_t n_ = 0;                                                        \
		for (int r_ = 0; r_ < RUNS; r_++) {                                   \
			double t0 = bench_seconds();                                  \
			for (int i_ = 0; i_ < (iters); i_++) {                        \
				n_ = (expr);                                          \
				__asm__ volatile("" : : "r"(out) : "memory");         \
			}                                                             \
			t[r_] = (bench_seconds() - t0) / (iters);                     \
		}                                                                     \
		printf("%-34s %7zu bytes %9.0f ns\n", label, n_, bench_median(t, RUNS) * 1e9); \
	} while (0)

static char date_line[HTTP_DATE_LINE_LEN];

static size_t error_response(void)
{
	struct http_out o = {out, 0, 4096};
	struct http_exchange x = {.method = HTTP_POST, .date_line = date_line, .out = &o};
	memcpy(x.request_id, "req_6eb5775700000000002a", 24);
	x.request_id_len = 24;
	http_reply_error(&x, 400, "VALIDATION_ERROR", "must be a number",
			 "containers[3].ports[0].privatePort", NULL, NULL);
	return o.len;
}

int main(void)
{
	const char *dir = getenv("RINGSIDE_SAMPLES");
	char path[512];
	size_t len;
	snprintf(path, sizeof path, "%s/ingest-full.json", dir ? dir : "samples");
	char *doc = bench_read_file(path, &len);
	if (!doc) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	ingest_parser_init(&parser, &report, NULL);
	if (ingest_parser_feed(&parser, doc, len) || ingest_parser_finish(&parser)) {
		fprintf(stderr, "%s: %s\n", path, parser.err.message);
		return 1;
	}
	size_t size = fleet_report_size(&report);
	struct fleet_snapshot *s = aligned_alloc(64, (sizeof *s + size + 63) & ~(size_t)63);
	memset(s, 0, sizeof *s);
	s->org = "org-1";
	s->org_len = 5;
	s->agent = "agent-1";
	s->agent_len = 7;
	s->received_ms = 1795348800123;
	fleet_report_encode(&report, s->data, size);
	s->len = (uint32_t)size;
	struct fleet_report v;
	fleet_report_view(&v, s->data, s->len);

	TIME("/latest, full sample", 20000,
	     fleet_report_json(out, sizeof out, s, &v, 1795348800123 + 1000, 180000));
	http_format_date_line(date_line, 1795348800);
	TIME("error response (400, field)", 2000000, error_response());
	free(s);
	free(doc);
	return 0;
}
