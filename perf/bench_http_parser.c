/*
 * Request-head parsing, Ringside against a peer: the same ~330-byte
 * keep-alive GET head (as wrk or a browser sends it) parsed N times.
 * Built twice by `make bench` (the two libraries both define
 * `struct http_parser`, so they cannot share a program):
 *   build/perf/bench_http_parser          http_parse_head() (src/http/parser.c)
 *   build/perf/bench_http_parser_nodejs   Node's http_parser 2.9 (libhttp-parser-dev),
 *                                         with callbacks that only record spans,
 *                                         as a server must do to use the head
 * Prints one line: "<parser> <ns/request> <MB/s>", the median of 5 runs.
 * A program, not a test: nothing here asserts a time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#ifdef PEER_NODEJS
#include <http_parser.h>
#else
#include "ringside/http_parser.h"
#endif

static const char head[] =
	"GET /api/metrics/agents/agent-0042/latest?window=60s HTTP/1.1\r\n"
	"Host: 127.0.0.1:3000\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
	"Accept: application/json\r\n"
	"Accept-Encoding: gzip, deflate, br\r\n"
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2ln\r\n"
	"Connection: keep-alive\r\n"
	"\r\n";
#define HEAD_LEN (sizeof head - 1)

#ifdef PEER_NODEJS
#define PARSER_NAME "nodejs-http_parser-2.9"

struct spans {
	const char *url, *last;
	size_t url_len, fields;
	int complete;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct spans *s = p->data;
	s->url = at;
	s->url_len = len;
	return 0;
}

static int on_header(http_parser *p, const char *at, size_t len)
{
	struct spans *s = p->data;
	s->last = at + len;
	s->fields++;
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	((struct spans *)p->data)->complete = 1;
	return 0;
}

static http_parser_settings settings;

/* Parses the head once; returns bytes consumed when complete, else -1. */
static long parse_once(uint64_t *sink)
{
	http_parser p;
	struct spans s = {0};
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &s;
	size_t n = http_parser_execute(&p, &settings, head, HEAD_LEN);
	*sink += s.url_len + s.fields;
	return s.complete && HTTP_PARSER_ERRNO(&p) == HPE_OK ? (long)n : -1;
}

static void setup(void)
{
	http_parser_settings_init(&settings);
	settings.on_url = on_url;
	settings.on_header_field = on_header;
	settings.on_header_value = on_header;
	settings.on_headers_complete = on_headers_complete;
}
#else
#define PARSER_NAME "ringside"

static long parse_once(uint64_t *sink)
{
	struct http_parser p;
	http_parser_init(&p);
	int r = http_parse_head(&p, NULL, head, HEAD_LEN);
	*sink += p.req.path.len + p.req.hdr[HTTP_HDR_HOST].len;
	return r;
}

static void setup(void)
{
}
#endif

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 2000000L;
	uint64_t sink = 0;
	setup();
	if (parse_once(&sink) != (long)HEAD_LEN) {
		fprintf(stderr, "%s: the bench head does not parse\n", PARSER_NAME);
		return 1;
	}
	double ns[5];
	for (int run = 0; run < 5; run++) {
		double t0 = bench_seconds();
		for (long i = 0; i < iters; i++)
			parse_once(&sink);
		ns[run] = (bench_seconds() - t0) * 1e9 / (double)iters;
	}
	double median = bench_median(ns, 5);
	printf("%s %.1f %.0f\n", PARSER_NAME, median, (double)HEAD_LEN / median * 1e3);
	return sink == 0; /* keeps the work observable */
}
