/*
 * libFuzzer target for src/http/parser.c: the request-head parser and the
 * chunked decoder, on the production entry points.
 *
 * Beyond "no crash, no over-read" (every buffer is an exact-size heap
 * copy, so ASan sees a read of buf[len]) it checks that the result does
 * not depend on how the input was split or where it lives, and the
 * invariants a caller relies on: spans inside the head, the head ending in
 * CRLFCRLF, framing never both chunked and Content-Length, limits held.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/http_parser.h"

#include "fuzz_util.h"

/* ---- Head ---- */

static bool span_in(struct http_span s, size_t lo, size_t hi)
{
	return s.len == 0 || (s.off >= lo && (size_t)s.off + s.len <= hi);
}

static bool same(const struct http_parser *a, int ra, const struct http_parser *b,
		 int rb)
{
	const struct http_request *x = &a->req, *y = &b->req;

	if (ra != rb)
		return false;
	if (ra == HTTP_PARSE_ERROR)
		return a->error_status == b->error_status && a->error == b->error;
	if (ra == HTTP_PARSE_AGAIN)
		return true;
	if (x->method != y->method || memcmp(&x->method_token, &y->method_token, sizeof x->method_token) ||
	    memcmp(&x->target, &y->target, sizeof x->target) ||
	    memcmp(&x->path, &y->path, sizeof x->path) ||
	    memcmp(&x->query, &y->query, sizeof x->query) ||
	    x->version_minor != y->version_minor ||
	    x->field_count != y->field_count ||
	    x->has_content_length != y->has_content_length ||
	    x->content_length != y->content_length || x->chunked != y->chunked ||
	    x->keep_alive != y->keep_alive ||
	    x->expect_continue != y->expect_continue)
		return false;
	return memcmp(x->hdr, y->hdr, sizeof x->hdr) == 0;
}

static void check_head(const struct http_parser *p, int r, const char *buf,
		       size_t len, const struct http_limits *lim)
{
	const struct http_request *q = &p->req;
	size_t max_head = lim ? lim->max_head_bytes : HTTP_DEFAULT_MAX_HEAD_BYTES;
	size_t max_target = lim ? lim->max_target_bytes : HTTP_DEFAULT_MAX_TARGET_BYTES;
	size_t max_fields = lim ? lim->max_fields : HTTP_DEFAULT_MAX_FIELDS;

	if (r == HTTP_PARSE_ERROR) {
		unsigned s = p->error_status;

		CHECK(p->error != NULL);
		CHECK(s == 400 || s == 414 || s == 431 || s == 501 || s == 505 ||
		      s == 417);
		return;
	}
	if (r == HTTP_PARSE_AGAIN) {
		/* A head that cannot fit is an error, never a wait. */
		CHECK(len < max_head);
		return;
	}
	CHECK(r >= 16 && (size_t)r <= len && (size_t)r <= max_head);
	CHECK(memcmp(buf + r - 4, "\r\n\r\n", 4) == 0);
	CHECK(q->method_token.len > 0 && span_in(q->method_token, 0, (size_t)r));
	CHECK(q->target.len > 0 && q->target.len <= max_target);
	CHECK(span_in(q->target, q->method_token.off + q->method_token.len + 1, (size_t)r));
	CHECK(buf[q->target.off - 1] == ' ' && buf[q->target.off + q->target.len] == ' ');
	for (size_t i = 0; i < q->target.len; i++)
		CHECK(buf[q->target.off + i] > 0x20 && buf[q->target.off + i] < 0x7f);
	CHECK(span_in(q->path, q->target.off, q->target.off + q->target.len));
	CHECK(span_in(q->query, q->target.off, q->target.off + q->target.len));
	if (q->query.len)
		CHECK(buf[q->query.off - 1] == '?');
	if (q->path.len && q->method != HTTP_OPTIONS)
		CHECK(buf[q->path.off] == '/');
	CHECK(q->version_minor <= 1);
	CHECK(q->field_count <= max_fields);
	CHECK(!(q->chunked && q->has_content_length));
	CHECK(!q->chunked || q->version_minor == 1);
	CHECK(!q->expect_continue || q->version_minor == 1);
	CHECK(!q->has_content_length || q->content_length <= (uint64_t)INT64_MAX);
	for (int h = 0; h < HTTP_HDR_COUNT; h++) {
		struct http_span s = q->hdr[h];

		CHECK(span_in(s, q->target.off + q->target.len, (size_t)r - 4));
		for (size_t i = 0; i < s.len; i++) {
			unsigned char c = (unsigned char)buf[s.off + i];

			CHECK(c >= 0x20 || c == '\t');
			CHECK(c != 0x7f);
		}
		if (s.len) {
			CHECK(buf[s.off] != ' ' && buf[s.off] != '\t');
			CHECK(buf[s.off + s.len - 1] != ' ' && buf[s.off + s.len - 1] != '\t');
		}
	}
}

static void fuzz_head(const uint8_t *data, size_t size,
		      const struct http_limits *lim, uint64_t h, int *ret)
{
	struct http_parser a, b;
	char *buf = fuzz_copy(data, size);
	int ra, rb;
	size_t k = size ? h % (size + 1) : 0;

	/* Whole. */
	http_parser_init(&a);
	ra = http_parse_head(&a, lim, buf, size);
	check_head(&a, ra, buf, size, lim);
	CHECK(http_parse_head(&a, lim, buf, size) == ra); /* sticky / idempotent */

	/* Split in two, the buffer moved between the calls. */
	{
		char *pre = fuzz_copy(data, k);

		http_parser_init(&b);
		rb = http_parse_head(&b, lim, pre, k);
		free(pre);
		if (rb == HTTP_PARSE_AGAIN)
			rb = http_parse_head(&b, lim, buf, size);
		CHECK(same(&a, ra, &b, rb));
	}

	/* One byte at a time. */
	if (size <= 2048) {
		http_parser_init(&b);
		rb = HTTP_PARSE_AGAIN;
		for (size_t l = 0; l <= size && rb == HTTP_PARSE_AGAIN; l++)
			rb = http_parse_head(&b, lim, buf, l);
		CHECK(same(&a, ra, &b, rb));
	}
	free(buf);
	*ret = ra;
}

/* ---- Chunked ---- */

struct dec {
	int status;
	bool done;
	size_t consumed;
	uint64_t total, hash, data_len;
};

/* Feeds in[0, len) growing by `step` bytes (0: all at once), each call on
 * an exact-size copy of what is not consumed yet. */
static void decode(const uint8_t *in, size_t len, uint64_t max_body,
		   size_t first, size_t step, struct dec *out)
{
	struct http_chunked c;
	size_t avail = first < len ? first : len, used = 0;

	memset(&c, 0, sizeof c);
	memset(out, 0, sizeof *out);
	out->hash = 1469598103934665603ull;
	for (;;) {
		struct http_span d;
		char *win = fuzz_copy(in + used, avail - used);
		ssize_t r = http_chunked_next(&c, max_body, win, avail - used, &d);

		if (r < 0) {
			CHECK(r == HTTP_PARSE_ERROR);
			CHECK(c.error != NULL);
			CHECK(c.error_status == 400 || c.error_status == 413);
			out->status = c.error_status;
			free(win);
			break;
		}
		CHECK((size_t)r <= avail - used);
		CHECK((size_t)d.off + d.len <= (size_t)r);
		for (size_t i = 0; i < d.len; i++)
			out->hash = (out->hash ^ (uint8_t)win[d.off + i]) * 1099511628211ull;
		out->data_len += d.len;
		free(win);
		used += (size_t)r;
		CHECK(c.total == out->data_len && c.total <= max_body);
		if (c.done)
			break;
		CHECK(r > 0 || used == avail);
		if (used == avail || r == 0) {
			if (avail == len)
				break;
			avail = step ? (avail + step < len ? avail + step : len) : len;
		}
	}
	out->done = c.done;
	out->consumed = used;
	out->total = c.total;
}

static void fuzz_chunked(const uint8_t *in, size_t len, uint64_t max_body,
			 uint64_t h)
{
	struct dec a, b;

	decode(in, len, max_body, len, 0, &a);
	decode(in, len, max_body, len ? h % (len + 1) : 0, 0, &b);
	CHECK(a.status == b.status && a.done == b.done && a.total == b.total &&
	      a.hash == b.hash && (a.status || a.consumed == b.consumed));
	if (len <= 4096) {
		decode(in, len, max_body, 0, 1, &b);
		CHECK(a.status == b.status && a.done == b.done &&
		      a.total == b.total && a.hash == b.hash &&
		      (a.status || a.consumed == b.consumed));
	}
	if (!a.status && !a.done)
		CHECK(a.consumed == len); /* waits only when all was taken */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_limits tight = { 96, 16, 4 };
	uint64_t h = fuzz_hash(data, size);
	int r;

	fuzz_head(data, size, NULL, h, &r);
	if (r > 0)
		fuzz_chunked(data + r, size - (size_t)r, 1u << 20, h >> 7);
	fuzz_head(data, size, &tight, h >> 3, &r);

	/* The whole input as a chunked body, with a roomy and a tiny max. */
	fuzz_chunked(data, size, UINT64_MAX, h >> 11);
	fuzz_chunked(data, size, 16, h >> 13);
	return 0;
}
