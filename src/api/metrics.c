/* GET /metrics (seed 000): the server's own metrics for Prometheus. */
#include "api_int.h"

#include "ringside/http_gzip.h"
#include "ringside/metrics.h"
#include "ringside/metrics_expo.h"

#define WANT_OPENMETRICS 1u
#define WANT_GZIP 2u

/* Negotiated while the head is at hand: Accept and Accept-Encoding. */
static unsigned metrics_head(struct http_exchange *x, const char *buf,
			     const struct http_request *req)
{
	struct http_span accept = req->hdr[HTTP_HDR_ACCEPT];
	struct http_span encoding = req->hdr[HTTP_HDR_ACCEPT_ENCODING];
	if (expo_negotiate(buf + accept.off, accept.len) == EXPO_OPENMETRICS_100)
		x->handler_flags |= WANT_OPENMETRICS;
	if (encoding.len && expo_accepts_gzip(buf + encoding.off, encoding.len))
		x->handler_flags |= WANT_GZIP;
	return 0;
}

/* The seed's 500: a scrape that cannot be produced (it outgrew the
 * buffers, or compression failed). */
static void collection_failed(struct http_exchange *x)
{
	http_reply_core_error(x, 500, API_CORE_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, NULL);
}

static void metrics_request(struct http_exchange *x)
{
	/* Rendered in the first half of the scratch, compressed into the
	 * second, then copied out: no buffer is held while the bytes go out. */
	size_t cap;
	char *scratch = http_scratch(x, &cap);
	size_t half = cap / 2;
	bool gzip = x->handler_flags & WANT_GZIP;
	enum expo_format format =
		x->handler_flags & WANT_OPENMETRICS ? EXPO_OPENMETRICS_100 : EXPO_TEXT_004;

	struct expo e;
	expo_init(&e, scratch, half, format);
	api_sample_db_pool(x->ctx->api, x->ctx->metrics);
	metrics_write_exposition(x->ctx->metrics, x->ctx->shard, &e);
	api_write_metrics(x->ctx->api, &e);
	expo_finish(&e);
	const char *body = scratch;
	size_t len = e.len;
	if (!e.overflow && gzip) {
		body = scratch + half;
		len = http_gzip_compress(x->ctx->gzip, scratch, e.len, scratch + half, half);
	}
	if (e.overflow || len == 0) {
		collection_failed(x);
		return;
	}
	http_reply_any(x, 200,
		       format == EXPO_OPENMETRICS_100 ? EXPO_CONTENT_TYPE_OPENMETRICS
						      : EXPO_CONTENT_TYPE_TEXT,
		       /* RFC 9110 12.5.5: the answer depends on both. */
		       gzip ? "Content-Encoding: gzip\r\nVary: Accept, Accept-Encoding\r\n"
			    : "Vary: Accept, Accept-Encoding\r\n",
		       body, len);
}

const struct http_handler api_metrics = {.on_head = metrics_head, .on_request = metrics_request};
