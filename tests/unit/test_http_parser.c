/*
 * Unit tests for the request-head parser and chunked decoder
 * (src/http/parser.c). Every case is fed five ways and must give the same
 * result each time (picohttpparser's test.c does the same):
 *   whole; one byte at a time on one buffer; split in two at every offset;
 *   split at every offset with the buffer moved between the calls (the old
 *   copy freed, so ASan sees a stale pointer); and ending exactly at a
 *   PROT_NONE page, every prefix, so any read of buf[len] faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringside/http_parser.h"

/* A string literal that may hold NUL bytes. */
#define B(s) .in = (s), .len = sizeof(s) - 1

/* ---- Guard page ---- */

#define GUARD_AREA (64u * 1024u)

static unsigned char *guard_base; /* GUARD_AREA bytes, then a PROT_NONE page */

static void guard_setup(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *m;

	if (guard_base)
		return;
	m = mmap(NULL, GUARD_AREA + pg, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect((char *)m + GUARD_AREA, pg, PROT_NONE), 0);
	guard_base = m;
}

/* Copies src[0, len) so that its last byte is the last readable one. */
static const char *guard_place(const char *src, size_t len)
{
	char *dst;

	guard_setup();
	assert_true(len <= GUARD_AREA);
	dst = (char *)guard_base + GUARD_AREA - len;
	memmove(dst, src, len);
	return dst;
}

/* An exact-size heap copy, so ASan flags any read past len. */
static char *heap_copy(const char *src, size_t len)
{
	char *d = malloc(len ? len : 1);

	assert_non_null(d);
	if (len)
		memcpy(d, src, len);
	return d;
}

/* ---- Head parser: running and comparing ---- */

struct result {
	int ret;
	uint16_t status;
	const char *error;
	struct http_request req;
};

static void snap(const struct http_parser *p, int ret, struct result *out)
{
	memset(out, 0, sizeof(*out));
	out->ret = ret;
	out->status = ret == HTTP_PARSE_ERROR ? p->error_status : 0;
	out->error = ret == HTTP_PARSE_ERROR ? p->error : NULL;
	out->req = p->req;
}

static bool span_eq(struct http_span a, struct http_span b)
{
	return a.off == b.off && a.len == b.len;
}

static bool same_result(const struct result *a, const struct result *b)
{
	const struct http_request *x = &a->req, *y = &b->req;

	if (a->ret != b->ret || a->status != b->status || a->error != b->error)
		return false;
	if (x->method != y->method || !span_eq(x->method_token, y->method_token) ||
	    !span_eq(x->target, y->target) || !span_eq(x->path, y->path) ||
	    !span_eq(x->query, y->query) || x->version_minor != y->version_minor ||
	    x->field_count != y->field_count ||
	    x->has_content_length != y->has_content_length ||
	    x->chunked != y->chunked || x->content_length != y->content_length ||
	    x->keep_alive != y->keep_alive ||
	    x->expect_continue != y->expect_continue)
		return false;
	for (int i = 0; i < HTTP_HDR_COUNT; i++)
		if (!span_eq(x->hdr[i], y->hdr[i]))
			return false;
	return true;
}

static void expect_same(const char *name, const char *mode, size_t at,
			const struct result *want, const struct result *got)
{
	if (same_result(want, got))
		return;
	print_error("%s: mode %s (offset %zu): ret %d/%d status %u/%u (%s / %s)\n",
		    name, mode, at, want->ret, got->ret, want->status,
		    got->status, want->error ? want->error : "-",
		    got->error ? got->error : "-");
	fail();
}

static void parse_whole(const char *in, size_t len,
			const struct http_limits *lim, struct result *out)
{
	struct http_parser p;

	http_parser_init(&p);
	snap(&p, http_parse_head(&p, lim, in, len), out);
}

/* One byte at a time, on one buffer or (moving) a fresh exact copy of
 * each prefix, optionally ending at the guard page. */
enum feed { FEED_SAME, FEED_HEAP, FEED_GUARD };

static void parse_bytewise(const char *in, size_t len,
			   const struct http_limits *lim, enum feed how,
			   struct result *out)
{
	struct http_parser p;
	int r = HTTP_PARSE_AGAIN;

	http_parser_init(&p);
	for (size_t l = 0; l <= len && r == HTTP_PARSE_AGAIN; l++) {
		if (how == FEED_SAME) {
			r = http_parse_head(&p, lim, in, l);
		} else if (how == FEED_HEAP) {
			char *c = heap_copy(in, l);

			r = http_parse_head(&p, lim, c, l);
			free(c);
		} else {
			r = http_parse_head(&p, lim, guard_place(in, l), l);
		}
	}
	snap(&p, r, out);
}

static void parse_split(const char *in, size_t len,
			const struct http_limits *lim, size_t k, bool move,
			struct result *out)
{
	struct http_parser p;
	int r;

	http_parser_init(&p);
	if (move) {
		char *a = heap_copy(in, k), *b;

		r = http_parse_head(&p, lim, a, k);
		free(a);
		if (r == HTTP_PARSE_AGAIN) {
			b = heap_copy(in, len);
			r = http_parse_head(&p, lim, b, len);
			free(b);
		}
	} else {
		r = http_parse_head(&p, lim, in, k);
		if (r == HTTP_PARSE_AGAIN)
			r = http_parse_head(&p, lim, in, len);
	}
	snap(&p, r, out);
}

/* Runs every feeding mode; all must agree. Returns the whole-input result. */
static void check_modes(const char *name, const char *in, size_t len,
			const struct http_limits *lim, struct result *out)
{
	struct result got;
	char *heap = heap_copy(in, len);

	parse_whole(heap, len, lim, out);
	parse_whole(guard_place(in, len), len, lim, &got);
	expect_same(name, "guard", len, out, &got);

	parse_bytewise(heap, len, lim, FEED_SAME, &got);
	expect_same(name, "bytewise", 0, out, &got);
	parse_bytewise(in, len, lim, FEED_HEAP, &got);
	expect_same(name, "bytewise-moving", 0, out, &got);
	parse_bytewise(in, len, lim, FEED_GUARD, &got);
	expect_same(name, "bytewise-guard", 0, out, &got);

	for (size_t k = 0; k <= len; k++) {
		parse_split(heap, len, lim, k, false, &got);
		expect_same(name, "split", k, out, &got);
		parse_split(in, len, lim, k, true, &got);
		expect_same(name, "split-moving", k, out, &got);
	}
	free(heap);
}

/* ---- Valid requests ---- */

struct valid_case {
	const char *name;
	const char *in;
	size_t len;
	size_t head_len; /* 0: the whole input; AT_BLANK: up to the first
			  * CRLFCRLF (a body or a second request follows) */
	enum http_method method;
	const char *method_token;
	const char *target, *path, *query; /* NULL: len 0 */
	int minor;
	int fields;
	bool has_cl;
	uint64_t cl;
	bool chunked, keep_alive, expect_continue;
	const char *hdr[HTTP_HDR_COUNT]; /* NULL: len 0 */
};

#define AT_BLANK SIZE_MAX
#define H(k, v) [HTTP_HDR_##k] = (v)

static const struct valid_case valid_cases[] = {
	{ "get", B("GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/index.html", "/index.html", NULL, 1, 1, false, 0,
	  false, true, false, { H(HOST, "example.com") } },
	{ "curl-like get with query",
	  B("GET /search?q=a&b=c%20d HTTP/1.1\r\nHost: localhost:3000\r\n"
	    "User-Agent: curl/8.4.0\r\nAccept: */*\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/search?q=a&b=c%20d", "/search", "q=a&b=c%20d", 1, 3,
	  false, 0, false, true, false,
	  { H(HOST, "localhost:3000"), H(ACCEPT, "*/*") } },
	{ "query keeps later question marks", B("GET /p?a?b=/c HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/p?a?b=/c", "/p", "a?b=/c", 1, 1, false, 0, false, true,
	  false, { H(HOST, "h") } },
	{ "empty query", B("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/p?", "/p", NULL, 1, 1, false, 0, false, true,
	  false, { H(HOST, "h") } },
	{ "head", B("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_HEAD, "HEAD", "/", "/", NULL, 1, 1, false, 0, false, true, false,
	  { H(HOST, "h") } },
	{ "post with content-length",
	  B("POST /api/metrics/ingest HTTP/1.1\r\nHost: h\r\n"
	    "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
	    "{\"a\":1234567}"), AT_BLANK,
	  HTTP_POST, "POST", "/api/metrics/ingest", "/api/metrics/ingest", NULL,
	  1, 3, true, 13, false, true, false,
	  { H(HOST, "h"), H(CONTENT_TYPE, "application/json"),
	    H(CONTENT_LENGTH, "13") } },
	{ "chunked post",
	  B("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n"), AT_BLANK,
	  HTTP_POST, "POST", "/up", "/up", NULL, 1, 2, false, 0, true, true,
	  false, { H(HOST, "h"), H(TRANSFER_ENCODING, "chunked") } },
	{ "transfer-encoding list over lines, empty elements, any case",
	  B("PUT /x HTTP/1.1\r\nTransfer-Encoding: ,\r\nHost: h\r\n"
	    "transfer-encoding: , CHUNKED ,\r\n\r\n"), 0,
	  HTTP_PUT, "PUT", "/x", "/x", NULL, 1, 3, false, 0, true, true, false,
	  { H(HOST, "h"), H(TRANSFER_ENCODING, ",") } },
	{ "http/1.0 closes by default", B("GET / HTTP/1.0\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 0, 0, false, 0, false, false, false,
	  { NULL } },
	{ "http/1.0 keep-alive",
	  B("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 0, 2, false, 0, false, true, false,
	  { H(HOST, "h"), H(CONNECTION, "Keep-Alive") } },
	{ "http/1.0 keep-alive and close",
	  B("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 0, 2, false, 0, false, false, false,
	  { H(CONNECTION, "keep-alive") } },
	{ "http/1.1 connection close in a list",
	  B("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade,  CLOSE \r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 1, 2, false, 0, false, false, false,
	  { H(HOST, "h"), H(CONNECTION, "Upgrade,  CLOSE") } },
	{ "absolute-form",
	  B("GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), 0,
	  HTTP_GET, "GET", "http://example.com:8080/a/b?x=1", "/a/b", "x=1", 1, 1,
	  false, 0, false, true, false, { H(HOST, "example.com:8080") } },
	{ "absolute-form https, upper-case scheme, no path",
	  B("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
	  HTTP_GET, "GET", "HTTPS://example.com", NULL, NULL, 1, 1, false, 0,
	  false, true, false, { H(HOST, "example.com") } },
	{ "absolute-form query without path",
	  B("GET http://[::1]:80?x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), 0,
	  HTTP_GET, "GET", "http://[::1]:80?x", NULL, "x", 1, 1, false, 0,
	  false, true, false, { H(HOST, "[::1]:80") } },
	/* Regression: the authority is scanned with the scalar K_HOST loop;
	 * a vector scan there would run past the '/' that starts the path. */
	{ "absolute-form long authority",
	  B("GET http://a-rather-long-host-name.example.com/x?y HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_GET, "GET", "http://a-rather-long-host-name.example.com/x?y", "/x", "y", 1, 1,
	  false, 0, false, true, false, { H(HOST, "h") } },
	{ "options asterisk", B("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_OPTIONS, "OPTIONS", "*", "*", NULL, 1, 1, false, 0, false, true,
	  false, { H(HOST, "h") } },
	{ "connect authority-form",
	  B("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 0,
	  HTTP_CONNECT, "CONNECT", "example.com:443", NULL, NULL, 1, 1, false, 0,
	  false, true, false, { H(HOST, "example.com:443") } },
	{ "pipelined: returns the first head",
	  B("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"), AT_BLANK,
	  HTTP_GET, "GET", "/a", "/a", NULL, 1, 1, false, 0, false, true, false,
	  { H(HOST, "h") } },
	{ "many headers, every known one",
	  B("POST /api/v1/agents HTTP/1.1\r\n"
	    "host: api.example\r\n"
	    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
	    "ACCEPT: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
	    "Accept-Language: en-US,en;q=0.5\r\n"
	    "Accept-Encoding: gzip, deflate, br\r\n"
	    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "content-length: 2\r\n"
	    "Expect: 100-Continue\r\n"
	    "Connection: keep-alive\r\n"
	    "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\nX-E:5\r\n"
	    "X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n"
	    "Cookie: a=b; c=d\r\n"
	    "!#$%&'*+-.^_`|~09azAZ: tchars\r\n"
	    "\r\n"), 0,
	  HTTP_POST, "POST", "/api/v1/agents", "/api/v1/agents", NULL, 1, 18, true,
	  2, false, true, true,
	  { H(HOST, "api.example"),
	    H(ACCEPT, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
	    H(ACCEPT_ENCODING, "gzip, deflate, br"),
	    H(AUTHORIZATION, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"),
	    H(CONTENT_TYPE, "application/json; charset=utf-8"),
	    H(CONTENT_LENGTH, "2"), H(EXPECT, "100-Continue"),
	    H(CONNECTION, "keep-alive") } },
	{ "obs-text in value",
	  B("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9 \xff\x80\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 1, 2, false, 0, false, true, false,
	  { H(HOST, "h") } },
	{ "leading empty lines skipped",
	  B("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 1, 1, false, 0, false, true, false,
	  { H(HOST, "h") } },
	{ "ows trimmed, empty values, htab inside",
	  B("GET / HTTP/1.1\r\nHost: \t example.com \t \r\nX-Empty:\r\n"
	    "Content-Type:   \r\nAccept:a\tb \r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 1, 4, false, 0, false, true, false,
	  { H(HOST, "example.com"), H(ACCEPT, "a\tb") } },
	{ "content-length list of identical values and repeats",
	  B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n"
	    "Content-Length: 005\r\n\r\n"), 0,
	  HTTP_POST, "POST", "/", "/", NULL, 1, 3, true, 5, false, true, false,
	  { H(HOST, "h"), H(CONTENT_LENGTH, "5, 5") } },
	{ "content-length 2^63-1",
	  B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n"), 0,
	  HTTP_POST, "POST", "/", "/", NULL, 1, 2, true, 9223372036854775807ull,
	  false, true, false,
	  { H(HOST, "h"), H(CONTENT_LENGTH, "9223372036854775807") } },
	{ "content-length zero", B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), 0,
	  HTTP_POST, "POST", "/", "/", NULL, 1, 2, true, 0, false, true, false,
	  { H(HOST, "h"), H(CONTENT_LENGTH, "0") } },
	{ "expect 100-continue ignored on http/1.0",
	  B("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"), 0,
	  HTTP_POST, "POST", "/", "/", NULL, 0, 2, true, 1, false, false, false,
	  { H(EXPECT, "100-continue"), H(CONTENT_LENGTH, "1") } },
	{ "unknown method token", B("PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_METHOD_OTHER, "PURGE", "/x", "/x", NULL, 1, 1, false, 0, false,
	  true, false, { H(HOST, "h") } },
	{ "methods are case-sensitive", B("get / HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_METHOD_OTHER, "get", "/", "/", NULL, 1, 1, false, 0, false, true,
	  false, { H(HOST, "h") } },
	{ "every routed method: delete", B("DELETE /a HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_DELETE, "DELETE", "/a", "/a", NULL, 1, 1, false, 0, false, true,
	  false, { H(HOST, "h") } },
	{ "every routed method: patch", B("PATCH /a HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_PATCH, "PATCH", "/a", "/a", NULL, 1, 1, false, 0, false, true,
	  false, { H(HOST, "h") } },
	{ "every routed method: trace", B("TRACE /a HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_TRACE, "TRACE", "/a", "/a", NULL, 1, 1, false, 0, false, true,
	  false, { H(HOST, "h") } },
	{ "empty host allowed", B("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 1, 1, false, 0, false, true, false,
	  { NULL } },
	/* Accept and Accept-Encoding are lists (RFC 9110 12.5): unlike
	 * Authorization and Content-Type they may repeat; the first span is
	 * kept. */
	{ "repeated accept and accept-encoding are lists",
	  B("GET / HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n"
	    "Accept-Encoding: gzip\r\naccept: */*\r\nACCEPT-ENCODING: br\r\n\r\n"), 0,
	  HTTP_GET, "GET", "/", "/", NULL, 1, 5, false, 0, false, true, false,
	  { H(HOST, "h"), H(ACCEPT, "text/html"), H(ACCEPT_ENCODING, "gzip") } },
	{ "absolute-form ipvfuture authority",
	  B("GET http://[v1.fe80::a+en1]:8080/p HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
	  HTTP_GET, "GET", "http://[v1.fe80::a+en1]:8080/p", "/p", NULL, 1, 1,
	  false, 0, false, true, false, { H(HOST, "h") } },
};

static void check_span(const char *name, const char *field, const char *buf,
		       struct http_span s, const char *want)
{
	size_t wl = want ? strlen(want) : 0;

	if (s.len == wl && (wl == 0 || memcmp(buf + s.off, want, wl) == 0))
		return;
	print_error("%s: %s is \"%.*s\", want \"%s\"\n", name, field,
		    (int)s.len, buf + s.off, want ? want : "");
	fail();
}

static void test_valid_requests(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
		const struct valid_case *c = &valid_cases[i];
		const struct http_request *r;
		struct result res;
		size_t want;

		check_modes(c->name, c->in, c->len, NULL, &res);
		r = &res.req;
		if (res.ret == HTTP_PARSE_ERROR)
			print_error("%s: %s\n", c->name, res.error);
		want = c->len;
		if (c->head_len == AT_BLANK)
			want = (size_t)(strstr(c->in, "\r\n\r\n") + 4 - c->in);
		assert_int_equal(res.ret, want);
		assert_int_equal(r->method, c->method);
		check_span(c->name, "method", c->in, r->method_token, c->method_token);
		check_span(c->name, "target", c->in, r->target, c->target);
		check_span(c->name, "path", c->in, r->path, c->path);
		check_span(c->name, "query", c->in, r->query, c->query);
		assert_int_equal(r->version_minor, c->minor);
		assert_int_equal(r->field_count, c->fields);
		assert_int_equal(r->has_content_length, c->has_cl);
		if (c->has_cl)
			assert_int_equal(r->content_length, c->cl);
		assert_int_equal(r->chunked, c->chunked);
		assert_int_equal(r->keep_alive, c->keep_alive);
		assert_int_equal(r->expect_continue, c->expect_continue);
		for (int h = 0; h < HTTP_HDR_COUNT; h++)
			check_span(c->name, "header", c->in, r->hdr[h], c->hdr[h]);
	}
}

/* ---- Invalid requests ---- */

struct bad_case {
	const char *name;
	const char *in;
	size_t len;
	int status;
	const struct http_limits *lim; /* NULL: defaults */
};

static const struct http_limits small = { 64, 8, 3 };

#define GET11 "GET / HTTP/1.1\r\nHost: h\r\n"

static const struct bad_case bad_cases[] = {
	/* Framing, RFC 9112 6 */
	{ "cl then te", B(GET11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, NULL },
	{ "te then cl", B(GET11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400, NULL },
	{ "te gzip then cl", B(GET11 "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"), 400, NULL },
	{ "cl with sign", B(GET11 "Content-Length: +3\r\n\r\n"), 400, NULL },
	{ "cl negative", B(GET11 "Content-Length: -1\r\n\r\n"), 400, NULL },
	{ "cl hex", B(GET11 "Content-Length: 0x5\r\n\r\n"), 400, NULL },
	{ "cl empty", B(GET11 "Content-Length: \r\n\r\n"), 400, NULL },
	{ "cl only commas", B(GET11 "Content-Length: , ,\r\n\r\n"), 400, NULL },
	{ "cl overflow", B(GET11 "Content-Length: 99999999999999999999\r\n\r\n"), 400, NULL },
	{ "cl 2^63", B(GET11 "Content-Length: 9223372036854775808\r\n\r\n"), 400, NULL },
	{ "cl inner space", B(GET11 "Content-Length: 5 5\r\n\r\n"), 400, NULL },
	{ "cl list differs", B(GET11 "Content-Length: 5, 6\r\n\r\n"), 400, NULL },
	{ "cl lines differ", B(GET11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400, NULL },
	{ "te gzip", B(GET11 "Transfer-Encoding: gzip\r\n\r\n"), 501, NULL },
	{ "te foo", B(GET11 "Transfer-Encoding: foo\r\n\r\n"), 501, NULL },
	{ "te gzip, chunked", B(GET11 "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501, NULL },
	{ "te gzip line then chunked line", B(GET11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), 501, NULL },
	{ "te chunked, gzip", B(GET11 "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400, NULL },
	{ "te chunked line then gzip line", B(GET11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 400, NULL },
	{ "te chunked twice", B(GET11 "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400, NULL },
	{ "te chunked on two lines", B(GET11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, NULL },
	{ "te empty", B(GET11 "Transfer-Encoding:  \r\n\r\n"), 400, NULL },
	{ "te not a token", B(GET11 "Transfer-Encoding: \"chunked\"\r\n\r\n"), 400, NULL },
	{ "te on http/1.0", B("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, NULL },
	/* Line endings and folding, RFC 9112 2.2 and 5.2 */
	{ "obs-fold sp", B(GET11 "X-A: a\r\n b\r\n\r\n"), 400, NULL },
	{ "obs-fold htab", B(GET11 "X-A: a\r\n\tb\r\n\r\n"), 400, NULL },
	{ "obs-fold after request line", B("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 400, NULL },
	{ "bare cr in value", B(GET11 "X-A: a\rb\r\n\r\n"), 400, NULL },
	{ "bare cr after value", B(GET11 "X-A: a\rX-B: b\r\n\r\n"), 400, NULL },
	{ "bare cr request line", B("GET / HTTP/1.1\rHost: h\r\n\r\n"), 400, NULL },
	{ "bare cr final line", B(GET11 "\rX"), 400, NULL },
	{ "bare cr leading", B("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "bare cr in target", B("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "bare lf request line", B("GET / HTTP/1.1\nHost: h\r\n\r\n"), 400, NULL },
	{ "bare lf after version digits", B("GET / HTTP/1.1\n\n"), 400, NULL },
	{ "bare lf field line", B(GET11 "X-A: a\n\r\n"), 400, NULL },
	{ "bare lf final line", B(GET11 "\n"), 400, NULL },
	{ "bare lf leading", B("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "bare lf after name", B(GET11 "X-A\n\r\n"), 400, NULL },
	{ "bare lf in method", B("GET\n"), 400, NULL },
	{ "bare lf empty value", B(GET11 "X-A:\n\r\n"), 400, NULL },
	/* Field values, RFC 9110 5.5 */
	{ "nul in value", B(GET11 "X-A: a\0b\r\n\r\n"), 400, NULL },
	{ "nul starts value", B(GET11 "X-A: \0\r\n\r\n"), 400, NULL },
	{ "0x01 in value", B(GET11 "X-A: a\x01\r\n\r\n"), 400, NULL },
	{ "0x1f in value", B(GET11 "X-A: \x1f\r\n\r\n"), 400, NULL },
	{ "del in value", B(GET11 "X-A: a\x7f\r\n\r\n"), 400, NULL },
	{ "del in long value", B(GET11 "X-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x7fzzzzzzzzzzzzzzzzzzzzzz\r\n\r\n"), 400, NULL },
	{ "ctl in known value", B(GET11 "Content-Length: 5\x0b\r\n\r\n"), 400, NULL },
	/* Field names, RFC 9112 5.1 */
	{ "space before colon", B(GET11 "X-A : a\r\n\r\n"), 400, NULL },
	{ "htab before colon", B(GET11 "Content-Length\t: 0\r\n\r\n"), 400, NULL },
	{ "bad name byte @", B(GET11 "Fo@o: x\r\n\r\n"), 400, NULL },
	{ "bad name byte sp", B(GET11 "Fo o: x\r\n\r\n"), 400, NULL },
	{ "obs-text in name", B(GET11 "F\xc3\xa9: x\r\n\r\n"), 400, NULL },
	{ "empty name", B(GET11 ": x\r\n\r\n"), 400, NULL },
	{ "no colon", B(GET11 "Foo\r\n\r\n"), 400, NULL },
	{ "name starts with separator", B(GET11 "(a: x\r\n\r\n"), 400, NULL },
	/* Host, RFC 9112 3.2 */
	{ "missing host on 1.1", B("GET / HTTP/1.1\r\nX-A: a\r\n\r\n"), 400, NULL },
	{ "missing host, absolute-form", B("GET http://h/ HTTP/1.1\r\n\r\n"), 400, NULL },
	{ "repeated host", B(GET11 "Host: h\r\n\r\n"), 400, NULL },
	{ "repeated host, case", B(GET11 "HOST: other\r\n\r\n"), 400, NULL },
	{ "repeated host on 1.0", B("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400, NULL },
	{ "host with space", B("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, NULL },
	{ "host with slash", B("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, NULL },
	{ "host with userinfo", B("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400, NULL },
	{ "host obs-text", B("GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n"), 400, NULL },
	/* Request line, RFC 9112 3 */
	{ "double space", B("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "leading space", B(" GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "htab separator", B("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "bad method byte", B("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "method then crlf", B("GET\r\n\r\n"), 400, NULL },
	{ "empty request line", B("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"), 400, NULL },
	{ "nine leading empty lines", B("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "asterisk with get", B("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "asterisk followed", B("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "relative target", B("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "ftp scheme", B("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "httpx scheme", B("GET httpx://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "one slash", B("GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "empty authority", B("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "empty authority at end", B("GET http:// HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "userinfo after long authority", B("GET http://a-rather-long-host-name@example.com/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "userinfo in target", B("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "nul in target", B("GET /a\0 HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "del in target", B("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "htab in target", B("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "obs-text in target", B("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "obs-text in query", B("GET /?q=\xff HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "obs-text in long path", B("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x80 HTTP/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "no version", B("GET /\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "http/2.0", B("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505, NULL },
	{ "http/1.2", B("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505, NULL },
	{ "http/0.9", B("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), 505, NULL },
	{ "http/1.1x", B("GET / HTTP/1.1x\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "http/1.10", B("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "http/11", B("GET / HTTP/11\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "lower-case http", B("GET / http/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	{ "version trailing space", B("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400, NULL },
	{ "https version", B("GET / HTTPS/1.1\r\nHost: h\r\n\r\n"), 400, NULL },
	/* Expect, RFC 9110 10.1.1 */
	{ "expect foo", B(GET11 "Expect: foo\r\n\r\n"), 417, NULL },
	{ "expect list with foo", B(GET11 "Expect: 100-continue, foo\r\n\r\n"), 417, NULL },
	{ "expect foo on 1.0", B("GET / HTTP/1.0\r\nExpect: foo\r\n\r\n"), 417, NULL },
	/* Syntax wins over semantics decided at the end of the head. */
	{ "expect foo then bare lf", B(GET11 "Expect: foo\r\n\n"), 400, NULL },
	{ "te gzip then missing host", B("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 400, NULL },
	/* Limits, with small = { head 64, target 8, fields 3 } */
	{ "target over limit", B("GET /12345678 HTTP/1.1\r\nHost: h\r\n\r\n"), 414, &small },
	{ "target over limit before head complete", B("GET /12345678"), 414, &small },
	{ "target over limit at question mark", B("GET /1234567? HTTP/1.1\r\n"), 414, &small },
	{ "target over limit in query", B("GET /?2345678 HTTP/1.1\r\n"), 414, &small },
	{ "target over limit in absolute-form", B("GET http://a/ HTTP/1.1\r\n"), 414, &small },
	{ "target over limit in authority", B("GET http://abc HTTP/1.1\r\n"), 414, &small },
	/* The grammar of the authority is checked once its run of bytes has
	 * ended: a run cut at the limit is a 414, not a 400. */
	{ "target over limit inside an ip-literal", B("GET http://[::1]:80/ HTTP/1.1\r\n"), 414, &small },
	{ "target over limit, connect", B("CONNECT abcd:4433 HTTP/1.1\r\n"), 414, &small },
	{ "bad byte right at target limit", B("GET /1234567\x01 HTTP/1.1\r\n"), 400, &small },
	{ "head over limit", B("GET / HTTP/1.1\r\nHost: h\r\nX-A: 0123456789012345678901234567890\r\n\r\n"), 431, &small },
	{ "head over limit, unfinished", B("GET / HTTP/1.1\r\nHost: h\r\nX-A: 0123456789012345678901234567890123456789"), 431, &small },
	{ "head at limit, unfinished", B("GET / HTTP/1.1\r\nHost: h\r\nX-A: 0123456789012345678901234567890123"), 431, &small },
	{ "too many fields", B("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), 431, &small },
};

static void test_invalid_requests(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		struct result res;

		check_modes(c->name, c->in, c->len, c->lim, &res);
		if (res.ret != HTTP_PARSE_ERROR || res.status != c->status) {
			print_error("%s: ret %d status %u (%s), want %d\n", c->name,
				    res.ret, res.status, res.error ? res.error : "-",
				    c->status);
			fail();
		}
		assert_non_null(res.error);
	}
}

/* ---- Limits at their edges ---- */

static void test_target_limit_exact_length_is_accepted(void **state)
{
	static const char in[] = "GET /1234567 HTTP/1.1\r\nHost: h\r\n\r\n";
	static const char q[] = "GET /?234567 HTTP/1.1\r\nHost: h\r\n\r\n";
	struct result res;

	(void)state;
	check_modes("target at limit", in, sizeof in - 1, &small, &res);
	assert_int_equal(res.ret, sizeof in - 1);
	assert_int_equal(res.req.target.len, 8);
	check_modes("query at limit", q, sizeof q - 1, &small, &res);
	assert_int_equal(res.ret, sizeof q - 1);
	assert_int_equal(res.req.query.len, 6);
}

static void test_head_limit_exact_length_is_accepted(void **state)
{
	/* 64 bytes, the final LF being the 64th. */
	static const char in[] =
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: 012345678901234567890123456789\r\n\r\n";
	struct result res;

	(void)state;
	assert_int_equal(sizeof in - 1, 64);
	check_modes("head at limit", in, sizeof in - 1, &small, &res);
	assert_int_equal(res.ret, 64);
}

static void test_default_limits(void **state)
{
	static char buf[HTTP_DEFAULT_MAX_HEAD_BYTES + 64];
	struct result res;
	size_t n;

	(void)state;
	/* 100 fields is the default maximum; 101 is a 431. */
	n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i < 100; i++)
		n += (size_t)sprintf(buf + n, "X-%d: v\r\n", i);
	memcpy(buf + n, "\r\n", 2);
	check_modes("100 fields", buf, n + 2, NULL, &res);
	assert_int_equal(res.ret, n + 2);
	assert_int_equal(res.req.field_count, 100);
	n += (size_t)sprintf(buf + n, "X-100: v\r\n\r\n");
	check_modes("101 fields", buf, n, NULL, &res);
	assert_int_equal(res.ret, HTTP_PARSE_ERROR);
	assert_int_equal(res.status, 431);

	/* A target of 8 KiB + 1 is a 414 before the head is complete. */
	n = (size_t)sprintf(buf, "GET /");
	memset(buf + n, 'a', HTTP_DEFAULT_MAX_TARGET_BYTES);
	n += HTTP_DEFAULT_MAX_TARGET_BYTES;
	parse_whole(buf, n, NULL, &res);
	assert_int_equal(res.status, 414);
	parse_whole(buf, n - 1, NULL, &res);
	assert_int_equal(res.ret, HTTP_PARSE_AGAIN);

	/* A 16 KiB + 1 head is a 431, decided at the 16 KiB mark. */
	n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\nX-A: ");
	memset(buf + n, 'a', sizeof buf - n);
	parse_whole(buf, sizeof buf, NULL, &res);
	assert_int_equal(res.status, 431);
	parse_bytewise(buf, sizeof buf, NULL, FEED_SAME, &res);
	assert_int_equal(res.status, 431);
	assert_int_equal(res.req.field_count, 2);
	parse_whole(buf, HTTP_DEFAULT_MAX_HEAD_BYTES - 1, NULL, &res);
	assert_int_equal(res.ret, HTTP_PARSE_AGAIN);
}

/* ---- Host and authority grammar, RFC 3986 3.2.2 and 3.2.3 ---- */

/* Every feeding mode must reject in[0, len) with 400 and exactly `why`. */
static void expect_400(const char *name, const char *in, size_t len,
		       const char *why)
{
	struct result res;

	check_modes(name, in, len, NULL, &res);
	if (res.ret != HTTP_PARSE_ERROR || res.status != 400 || !res.error ||
	    strcmp(res.error, why) != 0) {
		print_error("%s: ret %d status %u (%s), want 400 (%s)\n", name,
			    res.ret, res.status, res.error ? res.error : "-", why);
		fail();
	}
}

static const struct {
	const char *v;
	bool in_target; /* also a valid absolute-form authority */
} good_hosts[] = {
	{ "example.com", true },
	{ "EXAMPLE.com", true },
	{ "example.com:8080", true },
	{ "127.0.0.1:3000", true },
	{ "127.0.0.1", true },
	{ "xn--bcher-kva.example", true },
	{ "under_score.tilde~", true },
	{ "a%20b", true },
	{ "%41%4a%4A", true },
	{ "a!$&'()*+,;=b", true },
	/* IPv4address is also a reg-name (RFC 3986 3.2.2, first match
	 * wins), so digits and dots out of range are a name, not an error. */
	{ "999.1.2.3", true },
	{ "1.2.3", true },
	/* port = *DIGIT: empty is valid; 5 digits and 65535 are our bound. */
	{ "host:", true },
	{ "host:0", true },
	{ "host:65535", true },
	{ "host:00080", true },
	{ "[::1]:3000", true },
	{ "[::1]", true },
	{ "[::1]:", true },
	{ "[::]", true },
	{ "[2001:db8::1]", true },
	{ "[2001:DB8:0:0:0:0:0:1]", true },
	{ "[1:2:3:4:5:6:7::]", true },
	{ "[::2:3:4:5:6:7:8]", true },
	{ "[1::8]", true },
	{ "[fe80::1:2]", true },
	{ "[::ffff:192.0.2.1]:80", true },
	{ "[::1.2.3.4]", true },
	{ "[1:2:3:4:5:6:1.2.3.4]", true },
	{ "[0:0:0:0:0:ffff:255.255.255.255]", true },
	{ "[v1.fe80::a+en1]", true },
	{ "[V1F.x:y]:443", true },
	{ "[v7.!$&'()*+,;=-._~]", true },
	/* RFC 9112 3.2: an empty Host when the target has no authority.
	 * An empty reg-name with a port is the grammar's too; only an http
	 * URI may not have an empty host (RFC 9110 4.2.1). */
	{ "", false },
	{ ":80", false },
};

/* Regression for "invalid Host values are accepted": the grammar must
 * not refuse any of these, in a Host line or (most) in the target. */
static void test_valid_host_values_are_accepted(void **state)
{
	char in[256];
	struct result res;

	(void)state;
	for (size_t i = 0; i < sizeof good_hosts / sizeof good_hosts[0]; i++) {
		const char *v = good_hosts[i].v;
		int n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", v);

		check_modes(v, in, (size_t)n, NULL, &res);
		if (res.ret != n)
			print_error("Host: %s: %s\n", v, res.error ? res.error : "-");
		assert_int_equal(res.ret, n);
		check_span(v, "host", in, res.req.hdr[HTTP_HDR_HOST], v);
		if (!good_hosts[i].in_target)
			continue;

		n = snprintf(in, sizeof in, "GET http://%s/p?q HTTP/1.1\r\nHost: h\r\n\r\n", v);
		check_modes(v, in, (size_t)n, NULL, &res);
		if (res.ret != n)
			print_error("http://%s/p?q: %s\n", v, res.error ? res.error : "-");
		assert_int_equal(res.ret, n);
		check_span(v, "path", in, res.req.path, "/p");
		check_span(v, "query", in, res.req.query, "q");
	}
}

static const char *const bad_hosts[] = {
	/* port = *DIGIT, at most 5 of them and <= 65535 */
	"probe:abc", "probe:80:80", "a:b:c", "::", "host:65536", "host:99999",
	"host:123456", "host:000080", "host:-1", "host:+80", "host:8o",
	"[::1]:abc", "[::1]:80:80", "[::1]:65536",
	/* pct-encoded = "%" HEXDIG HEXDIG */
	"%zz", "%2", "%", "a%2", "a%g0", "%%41",
	/* IP-literal */
	"[::1", "[::1]x", "[::1]]", "[]", "[", "]", "a[b]", "[[::1]]",
	"[1:2:3:4:5:6:7:8:9]", "[1:2:3:4:5:6:7]", "[1:2:3:4:5:6:7:8::]",
	"[1:2:3:4:5:6:7::8]", "[::1::2]", "[1::2::3]", "[g::1]", "[12345::1]",
	"[:1::]", "[1::2:]", "[:::]", "[::::]", "[1:]", "[:1]", "[1.2.3.4]",
	"[::1.2.3]", "[::1.2.3.256]", "[::1.2.3.04]", "[::1.2.3.4:5]",
	"[::1.2.3.4.5]", "[::1234.1.2.3]", "[1:2:3:4:5:6:7:1.2.3.4]",
	/* RFC 6874 zone IDs are not RFC 3986 and mean nothing to a server. */
	"[fe80::1%25eth0]",
	/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
	"[v1.]", "[v.x]", "[vx.y]", "[v1x]", "[v1.a/b]", "[v1.a%20]", "[v1.a@b]",
	/* bytes that are no part of uri-host */
	"user@host", "u:p@host", "a b", "a\tb", "host: 80", "a\"b", "a<b",
	"a>b", "a\\b", "a{b", "a}b", "a|b", "a^b", "a`b", "a#b", "a/b", "a?b",
	"caf\xc3\xa9", "host\x80",
};

/* Regression: Host was checked byte by byte only, so "probe:abc",
 * "probe:80:80" and "%zz" went through. RFC 9112 3.2: a Host that is
 * not uri-host [ ":" port ] is a 400. */
static void test_invalid_host_values_are_400(void **state)
{
	char in[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
		int n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
				 bad_hosts[i]);

		expect_400(bad_hosts[i], in, (size_t)n, "invalid Host header field value");
		/* The same on HTTP/1.0, where Host is optional. */
		n = snprintf(in, sizeof in, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n",
			     bad_hosts[i]);
		expect_400(bad_hosts[i], in, (size_t)n, "invalid Host header field value");
	}
}

/* Regression: the authority of an absolute-form target was checked byte
 * by byte only ("GET http://a:b:c/" went through). The same grammar as
 * Host, then RFC 9110 4.2.1: no empty host. */
static void test_invalid_absolute_form_authority_is_400(void **state)
{
	static const struct {
		const char *target;
		const char *why;
	} cases[] = {
		{ "http://a:b:c/", "invalid authority in request-target" },
		{ "http://probe:abc/", "invalid authority in request-target" },
		{ "http://probe:80:80/", "invalid authority in request-target" },
		{ "http://%zz/", "invalid authority in request-target" },
		{ "http://a%2", "invalid authority in request-target" },
		{ "http://[::1/", "invalid authority in request-target" },
		{ "http://[::1]x/", "invalid authority in request-target" },
		{ "http://[::1::2]/", "invalid authority in request-target" },
		{ "http://[1:2:3:4:5:6:7:8:9]", "invalid authority in request-target" },
		{ "http://[g::1]?q", "invalid authority in request-target" },
		{ "https://[v1.]/", "invalid authority in request-target" },
		{ "http://[]/", "invalid authority in request-target" },
		{ "http://host:65536/", "invalid authority in request-target" },
		{ "http://host:123456?x", "invalid authority in request-target" },
		{ "http://a]b/", "invalid authority in request-target" },
		{ "http://a#b/", "invalid authority in request-target" },
		{ "http://a{b/", "invalid authority in request-target" },
		{ "http://u@h/", "invalid authority in request-target" },
		{ "http://:80/", "empty host in absolute-form request-target" },
		{ "http://:/", "empty host in absolute-form request-target" },
		{ "http://:", "empty host in absolute-form request-target" },
	};
	char in[256];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int n = snprintf(in, sizeof in, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n",
				 cases[i].target);

		expect_400(cases[i].target, in, (size_t)n, cases[i].why);
	}
}

/* ---- Fields that may appear once ---- */

/* Regression: with two Authorization lines the first won, so a valid
 * token followed by garbage (or a forged one) went through; a proxy
 * taking the last would authorize a different request. RFC 9110 5.3 and
 * 11.6.2: Authorization is not a list. */
static void test_repeated_authorization_is_400(void **state)
{
#define AUTH_REQ "POST /api/metrics/ingest HTTP/1.1\r\nHost: h\r\n"
	static const struct {
		const char *name, *in;
	} cases[] = {
		{ "valid token then garbage",
		  AUTH_REQ "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\r\n"
			   "Authorization: garbage\r\nContent-Length: 0\r\n\r\n" },
		{ "identical lines",
		  AUTH_REQ "Authorization: Bearer x\r\nAuthorization: Bearer x\r\n\r\n" },
		{ "names in different case",
		  AUTH_REQ "authorization: Bearer x\r\nAUTHORIZATION: Bearer y\r\n\r\n" },
		{ "empty first line", AUTH_REQ "Authorization:\r\nAuthorization: Bearer x\r\n\r\n" },
		{ "other fields between",
		  AUTH_REQ "Authorization: Bearer x\r\nX-A: 1\r\nContent-Type: a/b\r\n"
			   "Authorization: Bearer x\r\n\r\n" },
		{ "on http/1.0", "GET / HTTP/1.0\r\nAuthorization: a\r\nAuthorization: a\r\n\r\n" },
	};
#undef AUTH_REQ

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_400(cases[i].name, cases[i].in, strlen(cases[i].in),
			   "repeated Authorization header field");
}

/* Regression: the same for Content-Type (RFC 9110 8.3: one media type):
 * the handler read the first, an intermediary may read the last. */
static void test_repeated_content_type_is_400(void **state)
{
	static const struct {
		const char *name, *in;
	} cases[] = {
		{ "different types",
		  GET11 "Content-Type: application/json\r\nContent-Type: text/plain\r\n\r\n" },
		{ "identical, names in different case",
		  GET11 "content-type: application/json\r\nCONTENT-TYPE: application/json\r\n\r\n" },
		{ "empty first line", GET11 "Content-Type:\r\nContent-Type: a/b\r\n\r\n" },
		{ "after the body framing",
		  "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\nContent-Length: 2\r\n"
		  "Content-Type: c/d\r\n\r\nhi" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_400(cases[i].name, cases[i].in, strlen(cases[i].in),
			   "repeated Content-Type header field");
}

/* ---- Regression tests ---- */

/* After an error every call returns the error again, whatever it is fed. */
static void test_error_is_sticky(void **state)
{
	static const char in[] = "GET / HTTP/1.1\nHost: h\r\n\r\n";
	static const char ok[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_parser p;

	(void)state;
	http_parser_init(&p);
	assert_int_equal(http_parse_head(&p, NULL, in, sizeof in - 1), HTTP_PARSE_ERROR);
	assert_int_equal(p.error_status, 400);
	assert_string_equal(p.error, "bare LF in request line");
	assert_int_equal(http_parse_head(&p, NULL, ok, sizeof ok - 1), HTTP_PARSE_ERROR);
	assert_int_equal(p.error_status, 400);
}

/* A finished parser keeps returning the head length without rereading. */
static void test_done_is_idempotent(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\nGARBAGE\n";
	struct http_parser p;

	(void)state;
	http_parser_init(&p);
	assert_int_equal(http_parse_head(&p, NULL, in, sizeof in - 1), 27);
	assert_int_equal(http_parse_head(&p, NULL, in, sizeof in - 1), 27);
	assert_int_equal(http_parse_head(&p, NULL, in, 27), 27);
}

/* A zeroed struct (no http_parser_init) is a valid start state. */
static void test_zeroed_parser_is_ready(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_parser p;

	(void)state;
	memset(&p, 0, sizeof p);
	assert_int_equal(http_parse_head(&p, NULL, in, sizeof in - 1), 27);
	assert_int_equal(p.req.method, HTTP_GET);
}

/* Trimming trailing OWS walks back from the CR; it must stop at the
 * value's first byte, not run into the name and colon. */
static void test_trailing_ows_trim_stays_inside_value(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nAccept: \t \t\r\n\r\n";
	struct result res;

	(void)state;
	check_modes("whitespace-only value", in, sizeof in - 1, NULL, &res);
	assert_int_equal(res.ret, sizeof in - 1);
	assert_int_equal(res.req.hdr[HTTP_HDR_ACCEPT].len, 0);
	assert_int_equal(res.req.hdr[HTTP_HDR_ACCEPT].off, sizeof in - 5);
}

/* The fast path of the version must not be taken on "HTTP/1.1\r" followed
 * by something other than LF. */
static void test_version_fast_path_needs_lf(void **state)
{
	static const char in[] = "GET / HTTP/1.1\rXHost: h\r\n\r\n";
	struct result res;

	(void)state;
	check_modes("version then bare CR", in, sizeof in - 1, NULL, &res);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.error, "bare CR in request line");
}

/* The vector scan must stop at every byte class it cannot decide (HTAB,
 * obs-text, '?', DEL) at each of the 16 lanes. */
static void test_vector_scan_stops_in_every_lane(void **state)
{
	char in[256];
	struct result res;

	(void)state;
	for (int lane = 0; lane < 20; lane++) {
		static const struct {
			char byte;
			int status;
			const char *where; /* 't': target, 'v': value */
		} probes[] = { { '\t', 0, "v" }, { '\x80', 0, "v" },
			       { '\x7f', 400, "v" }, { '\x01', 400, "v" },
			       { '?', 0, "t" }, { '\x80', 400, "t" },
			       { '\x7f', 400, "t" }, { '\t', 400, "t" } };

		for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
			char fill[40];
			int n;

			memset(fill, 'a', sizeof fill);
			fill[lane] = probes[k].byte;
			if (probes[k].where[0] == 'v')
				n = snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: h\r\nX: %.*s\r\n\r\n",
					     (int)sizeof fill, fill);
			else
				n = snprintf(in, sizeof in, "GET /%.*s HTTP/1.1\r\nHost: h\r\n\r\n",
					     (int)sizeof fill, fill);
			parse_whole(in, (size_t)n, NULL, &res);
			if (probes[k].status == 0) {
				assert_int_equal(res.ret, n);
				if (probes[k].byte == '?')
					assert_int_equal(res.req.path.len, lane + 1);
			} else {
				assert_int_equal(res.status, probes[k].status);
			}
		}
	}
}

static void test_method_name(void **state)
{
	(void)state;
	assert_string_equal(http_method_name(HTTP_GET), "GET");
	assert_string_equal(http_method_name(HTTP_HEAD), "HEAD");
	assert_string_equal(http_method_name(HTTP_POST), "POST");
	assert_string_equal(http_method_name(HTTP_PUT), "PUT");
	assert_string_equal(http_method_name(HTTP_DELETE), "DELETE");
	assert_string_equal(http_method_name(HTTP_PATCH), "PATCH");
	assert_string_equal(http_method_name(HTTP_OPTIONS), "OPTIONS");
	assert_string_equal(http_method_name(HTTP_TRACE), "TRACE");
	assert_string_equal(http_method_name(HTTP_CONNECT), "CONNECT");
	assert_string_equal(http_method_name(HTTP_METHOD_OTHER), "OTHER");
	assert_string_equal(http_method_name(HTTP_METHOD_COUNT), "OTHER");
}

static void test_list_has_token(void **state)
{
	static const struct {
		const char *v, *tok;
		bool want;
	} cases[] = {
		{ "keep-alive, Upgrade", "upgrade", true },
		{ "keep-alive, Upgrade", "keep-alive", true },
		{ "keep-alive,Upgrade", "UPGRADE", true },
		{ " \tclose\t ", "close", true },
		{ ",,close,,", "close", true },
		{ "closed", "close", false },
		{ "xclose", "close", false },
		{ "close-ish, foo", "close", false },
		{ "clo se", "close", false },
		{ "", "close", false },
		{ ",", "close", false },
		{ "a, b , c", "b", true },
		{ "a, b , c", "c", true },
		{ "a, b , c", "", false },
		{ "a,, c", "", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *g = guard_place(cases[i].v, strlen(cases[i].v));

		if (http_list_has_token(g, strlen(cases[i].v), cases[i].tok) !=
		    cases[i].want) {
			print_error("\"%s\" has \"%s\": want %d\n", cases[i].v,
				    cases[i].tok, cases[i].want);
			fail();
		}
	}
	/* Only len bytes count. */
	assert_false(http_list_has_token("closexyz", 4, "close"));
	assert_true(http_list_has_token("close, x", 5, "close"));
}

/* ---- Chunked bodies ---- */

struct chunk_result {
	int status;        /* 0: decoded to done */
	bool done;
	size_t consumed;
	uint64_t total;
	size_t data_len;
	char data[16384];
};

enum { STEP_WHOLE, STEP_SPLIT, STEP_BYTE };

/*
 * Decodes in[0, len) as a server would: the bytes available grow (all at
 * once, k then the rest, or one at a time); unconsumed bytes are handed
 * again, from a fresh place in memory each call when `guard` is set.
 */
static void decode(const char *in, size_t len, uint64_t max_body, int step,
		   size_t k, bool guard, struct chunk_result *out)
{
	struct http_chunked c;
	size_t avail = step == STEP_WHOLE ? len : step == STEP_SPLIT ? k : 0;
	size_t used = 0;

	memset(&c, 0, sizeof c);
	memset(out, 0, offsetof(struct chunk_result, data));
	for (;;) {
		struct http_span d;
		const char *at = in + used;
		ssize_t r;

		if (guard)
			at = guard_place(in + used, avail - used);
		r = http_chunked_next(&c, max_body, at, avail - used, &d);
		if (r < 0) {
			assert_int_equal(r, HTTP_PARSE_ERROR);
			out->status = c.error_status;
			assert_non_null(c.error);
			assert_int_equal(http_chunked_next(&c, max_body, at, avail - used, &d),
					 HTTP_PARSE_ERROR);
			break;
		}
		assert_true((size_t)r <= avail - used);
		if (d.len) {
			assert_true(d.off + d.len <= (size_t)r);
			assert_true(out->data_len + d.len <= sizeof out->data);
			memcpy(out->data + out->data_len, at + d.off, d.len);
			out->data_len += d.len;
		}
		used += (size_t)r;
		if (c.done)
			break;
		if (r == 0 || used == avail) {
			/* Everything offered was framing or data: more bytes. */
			assert_true(r > 0 || avail == used);
			if (avail == len)
				break;
			avail = step == STEP_BYTE ? avail + 1 : len;
		}
	}
	out->done = c.done;
	out->consumed = used;
	out->total = c.total;
	if (c.done) {
		/* Done: nothing more is taken, however much is offered. */
		struct http_span d;

		assert_int_equal(http_chunked_next(&c, max_body, in + used, len - used, &d), 0);
		assert_int_equal(d.len, 0);
	}
}

static void expect_same_chunk(const char *name, const char *mode, size_t k,
			      const struct chunk_result *a,
			      const struct chunk_result *b)
{
	/* On error, how much was consumed before the failing call depends
	 * on the split; the data handed out must not. */
	if (a->status == b->status && a->done == b->done &&
	    (a->status || a->consumed == b->consumed) && a->total == b->total &&
	    a->data_len == b->data_len &&
	    memcmp(a->data, b->data, a->data_len) == 0)
		return;
	print_error("%s: mode %s at %zu: status %d/%d consumed %zu/%zu data %zu/%zu\n",
		    name, mode, k, a->status, b->status, a->consumed,
		    b->consumed, a->data_len, b->data_len);
	fail();
}

static void check_chunk_modes(const char *name, const char *in, size_t len,
			      uint64_t max_body, struct chunk_result *out)
{
	static struct chunk_result got;

	decode(in, len, max_body, STEP_WHOLE, 0, false, out);
	decode(in, len, max_body, STEP_WHOLE, 0, true, &got);
	expect_same_chunk(name, "guard", 0, out, &got);
	decode(in, len, max_body, STEP_BYTE, 0, false, &got);
	expect_same_chunk(name, "bytewise", 0, out, &got);
	decode(in, len, max_body, STEP_BYTE, 0, true, &got);
	expect_same_chunk(name, "bytewise-guard", 0, out, &got);
	for (size_t k = 0; k <= len; k++) {
		decode(in, len, max_body, STEP_SPLIT, k, false, &got);
		expect_same_chunk(name, "split", k, out, &got);
		decode(in, len, max_body, STEP_SPLIT, k, true, &got);
		expect_same_chunk(name, "split-guard", k, out, &got);
	}
}

struct chunk_case {
	const char *name;
	const char *in;
	size_t len;
	const char *want; /* decoded data, or NULL for an error */
	size_t consumed;  /* 0: the whole input */
	int status;
	uint64_t max_body;
};

static const struct chunk_case chunk_cases[] = {
	{ "two chunks", B("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world", 0, 0, 1000 },
	{ "extensions", B("5;ext=1\r\nhello\r\n3 ; a=\"q s\" ;b\r\nabc\r\n0;last\r\n\r\n"),
	  "helloabc", 0, 0, 1000 },
	{ "trailers", B("3\r\nabc\r\n0\r\nX-Trailer: v\r\nY:\r\nZ: caf\xc3\xa9\r\n\r\n"), "abc", 0, 0, 1000 },
	{ "empty body", B("0\r\n\r\n"), "", 0, 0, 1000 },
	{ "empty body, max 0", B("0\r\n\r\n"), "", 0, 0, 0 },
	{ "leading zeros, upper and lower hex", B("000A\r\n0123456789\r\n0b\r\nabcdefghijk\r\n00\r\n\r\n"),
	  "0123456789abcdefghijk", 0, 0, 1000 },
	{ "next request not consumed", B("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), "hi", 12, 0, 1000 },
	{ "crlf in data", B("4\r\n\r\n\r\n\r\n0\r\n\r\n"), "\r\n\r\n", 0, 0, 1000 },
	{ "exactly max_body", B("4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n"), "abcdefghij", 0, 0, 10 },
	{ "bad hex", B("g\r\nhello\r\n"), NULL, 0, 400, 1000 },
	{ "bad hex after digit", B("5x\r\nhello\r\n"), NULL, 0, 400, 1000 },
	{ "empty size", B("\r\nhello\r\n"), NULL, 0, 400, 1000 },
	{ "empty size with extension", B(";a\r\nhello\r\n"), NULL, 0, 400, 1000 },
	{ "sign", B("+5\r\nhello\r\n"), NULL, 0, 400, 1000 },
	{ "0x prefix", B("0x5\r\nhello\r\n"), NULL, 0, 400, 1000 },
	{ "size overflow", B("10000000000000000\r\n"), NULL, 0, 400, UINT64_MAX },
	{ "size 2^64-1 over max", B("ffffffffffffffff\r\n"), NULL, 0, 413, 1000 },
	{ "missing crlf after data", B("5\r\nhelloX\r\n0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "bare lf after data", B("5\r\nhello\n0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "bare cr after data", B("5\r\nhello\rX0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "bare lf after size", B("5\nhello\r\n0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "bare cr after size", B("5\rhello\r\n0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "bare lf in extension", B("5;a\nhello\r\n0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "ctl in extension", B("5;a\x01\r\nhello\r\n0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "space then crlf", B("5 \r\nhello\r\n0\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "bare lf ending body", B("0\r\n\n"), NULL, 0, 400, 1000 },
	{ "bare lf in trailer", B("0\r\nX: y\n\r\n"), NULL, 0, 400, 1000 },
	{ "obs-fold in trailer", B("0\r\nX: y\r\n z\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "ctl in trailer", B("0\r\nX: \x7f\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "space before colon in trailer", B("0\r\nX : y\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "trailer without colon", B("0\r\nXY\r\n\r\n"), NULL, 0, 400, 1000 },
	{ "over max_body in one chunk", B("b\r\nhello world\r\n0\r\n\r\n"), NULL, 0, 413, 10 },
	{ "over max_body over two chunks", B("6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n"), NULL, 0, 413, 10 },
	{ "any data over max 0", B("1\r\na\r\n0\r\n\r\n"), NULL, 0, 413, 0 },
};

static void test_chunked(void **state)
{
	static struct chunk_result res;

	(void)state;
	for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
		const struct chunk_case *c = &chunk_cases[i];

		check_chunk_modes(c->name, c->in, c->len, c->max_body, &res);
		if (c->want) {
			if (res.status != 0 || !res.done)
				print_error("%s: status %d done %d\n", c->name,
					    res.status, res.done);
			assert_int_equal(res.status, 0);
			assert_true(res.done);
			assert_int_equal(res.consumed, c->consumed ? c->consumed : c->len);
			assert_int_equal(res.data_len, strlen(c->want));
			assert_memory_equal(res.data, c->want, res.data_len);
			assert_int_equal(res.total, res.data_len);
		} else {
			if (res.status != c->status)
				print_error("%s: status %d, want %d\n", c->name,
					    res.status, c->status);
			assert_int_equal(res.status, c->status);
		}
	}
}

/* 413 is decided from the chunk-size line: no byte of the oversized
 * chunk is handed out first. */
static void test_chunked_413_before_data(void **state)
{
	static const char in[] = "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
	static struct chunk_result res;

	(void)state;
	decode(in, sizeof in - 1, 10, STEP_WHOLE, 0, false, &res);
	assert_int_equal(res.status, 413);
	assert_int_equal(res.data_len, 3);
	assert_int_equal(res.total, 3);
}

/* Regression: a data run followed in the same input by bad framing must
 * still be handed out; the error comes on the next call. */
static void test_chunked_error_after_data_keeps_data(void **state)
{
	static const char in[] = "3\r\nabcX";
	struct http_chunked c;
	struct http_span d;

	(void)state;
	memset(&c, 0, sizeof c);
	assert_int_equal(http_chunked_next(&c, 10, in, sizeof in - 1, &d), 6);
	assert_int_equal(d.off, 3);
	assert_int_equal(d.len, 3);
	assert_int_equal(http_chunked_next(&c, 10, in + 6, 1, &d), HTTP_PARSE_ERROR);
	assert_int_equal(c.error_status, 400);
	assert_string_equal(c.error, "missing CRLF after chunk data");
	assert_int_equal(c.total, 3);
}

static void test_chunked_line_bounds(void **state)
{
	static char in[12000];
	static struct chunk_result res;
	size_t n;

	(void)state;
	/* Size line with a 4 KiB extension: over the bound. */
	n = (size_t)sprintf(in, "1;");
	memset(in + n, 'e', 4100);
	n += 4100;
	n += (size_t)sprintf(in + n, "\r\na\r\n0\r\n\r\n");
	decode(in, n, 1000, STEP_WHOLE, 0, false, &res);
	assert_int_equal(res.status, 400);
	decode(in, n, 1000, STEP_BYTE, 0, false, &res);
	assert_int_equal(res.status, 400);

	/* A long extension just within the bound is fine. */
	n = (size_t)sprintf(in, "1;");
	memset(in + n, 'e', 4090);
	n += 4090;
	n += (size_t)sprintf(in + n, "\r\na\r\n0\r\n\r\n");
	decode(in, n, 1000, STEP_WHOLE, 0, false, &res);
	assert_int_equal(res.status, 0);
	assert_true(res.done);

	/* So are many leading zeros within it... */
	memset(in, '0', 4000);
	n = 4000 + (size_t)sprintf(in + 4000, "1\r\na\r\n0\r\n\r\n");
	decode(in, n, 1000, STEP_WHOLE, 0, false, &res);
	assert_int_equal(res.status, 0);
	/* ...but not past it. */
	memset(in, '0', 5000);
	n = 5000 + (size_t)sprintf(in + 5000, "1\r\na\r\n0\r\n\r\n");
	decode(in, n, 1000, STEP_WHOLE, 0, false, &res);
	assert_int_equal(res.status, 400);

	/* Trailer section over 8 KiB. */
	n = (size_t)sprintf(in, "0\r\n");
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(in + n, "X-%03d: %080d\r\n", i, 0);
	n += (size_t)sprintf(in + n, "\r\n");
	decode(in, n, 1000, STEP_WHOLE, 0, false, &res);
	assert_int_equal(res.status, 400);
	decode(in, n, 1000, STEP_BYTE, 0, true, &res);
	assert_int_equal(res.status, 400);
}

/* Once done the decoder hands back 0 and leaves the next request alone,
 * even when asked with data == NULL. */
static void test_chunked_done_consumes_nothing(void **state)
{
	static const char in[] = "0\r\n\r\nGET";
	struct http_chunked c;
	struct http_span d;

	(void)state;
	memset(&c, 0, sizeof c);
	assert_int_equal(http_chunked_next(&c, 10, in, sizeof in - 1, NULL), 5);
	assert_true(c.done);
	assert_int_equal(http_chunked_next(&c, 10, in + 5, 3, &d), 0);
	assert_int_equal(d.len, 0);
	assert_int_equal(http_chunked_next(&c, 10, in, 0, &d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_requests),
		cmocka_unit_test(test_invalid_requests),
		cmocka_unit_test(test_target_limit_exact_length_is_accepted),
		cmocka_unit_test(test_head_limit_exact_length_is_accepted),
		cmocka_unit_test(test_default_limits),
		cmocka_unit_test(test_valid_host_values_are_accepted),
		cmocka_unit_test(test_invalid_host_values_are_400),
		cmocka_unit_test(test_invalid_absolute_form_authority_is_400),
		cmocka_unit_test(test_repeated_authorization_is_400),
		cmocka_unit_test(test_repeated_content_type_is_400),
		cmocka_unit_test(test_error_is_sticky),
		cmocka_unit_test(test_done_is_idempotent),
		cmocka_unit_test(test_zeroed_parser_is_ready),
		cmocka_unit_test(test_trailing_ows_trim_stays_inside_value),
		cmocka_unit_test(test_version_fast_path_needs_lf),
		cmocka_unit_test(test_vector_scan_stops_in_every_lane),
		cmocka_unit_test(test_method_name),
		cmocka_unit_test(test_list_has_token),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_chunked_413_before_data),
		cmocka_unit_test(test_chunked_error_after_data_keeps_data),
		cmocka_unit_test(test_chunked_line_bounds),
		cmocka_unit_test(test_chunked_done_consumes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
