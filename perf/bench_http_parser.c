/*
 * Microbenchmark of http_parse_head() on a typical ~300-byte keep-alive
 * GET head, as wrk or a browser sends it. Standalone:
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -o build/bench_http_parser \
 *      perf/bench_http_parser.c src/http/parser.c
 *   build/bench_http_parser [iterations]
 * Prints ns per request and MB/s of head bytes. A program, not a test:
 * nothing here asserts a time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringside/http_parser.h"

static const char head[] =
	"GET /api/metrics/agents/agent-0042/latest?window=60s HTTP/1.1\r\n"
	"Host: 127.0.0.1:3000\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
	"Accept: application/json\r\n"
	"Accept-Encoding: gzip, deflate, br\r\n"
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2ln\r\n"
	"Connection: keep-alive\r\n"
	"\r\n";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 10000000L;
	size_t len = sizeof head - 1;
	volatile uint64_t sink = 0;
	struct http_parser p;
	double t0, t1;

	if (iters <= 0)
		iters = 1;
	/* Warm up and check the head parses. */
	http_parser_init(&p);
	if (http_parse_head(&p, NULL, head, len) != (int)len) {
		fprintf(stderr, "bench head does not parse: %s\n",
			p.error ? p.error : "incomplete");
		return 1;
	}
	t0 = now();
	for (long i = 0; i < iters; i++) {
		http_parser_init(&p);
		sink += (uint64_t)http_parse_head(&p, NULL, head, len) +
			p.req.path.len + p.req.hdr[HTTP_HDR_HOST].len;
	}
	t1 = now();
	(void)sink;
	printf("http_parse_head: %zu-byte head, %ld iterations: %.1f ns/request, %.0f MB/s\n",
	       len, iters, (t1 - t0) * 1e9 / (double)iters,
	       (double)len * (double)iters / (t1 - t0) / 1e6);
	return 0;
}
