/*
 * What a handler sees of a request, and how it answers: responses are
 * appended to the connection's output buffer, ready to send. Nothing here
 * allocates or does I/O, so handlers and the writer are unit-testable
 * without a ring.
 */
#ifndef RINGSIDE_HTTP_RESPONSE_H
#define RINGSIDE_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringside/http_parser.h"
#include "ringside/router.h"

/* The server keeps at least this much room in the output buffer before it
 * starts a request, so an error envelope always fits. */
#define HTTP_RESPONSE_RESERVE 1024u

/* "Date: Sun, 22 Nov 2026 15:00:00 GMT\r\n" */
#define HTTP_DATE_LINE_LEN 37u

struct http_out {
	char *buf;
	uint32_t len, cap;
};

struct config;
struct metrics_registry;
struct metrics_shard;
struct http_gzip;

/* What a handler may use of the worker it runs on. */
struct http_context {
	const struct config *cfg;
	struct metrics_registry *metrics;
	struct metrics_shard *shard;  /* this worker's */
	struct http_gzip *gzip;       /* this worker's compressor */
	uint32_t worker_id;
};

struct http_exchange {
	enum http_method method;
	const struct http_route *route; /* matched; for 405 the path's route; NULL for
					 * 404 and parse errors */
	bool head_only;      /* HEAD: write the head, not the body */
	uint8_t version_minor; /* of the request: 0 or 1 */
	bool close;          /* the server closes after this response */
	bool keep_alive_10;  /* HTTP/1.0 keep-alive: say so */
	bool replied;
	uint16_t status;     /* of the reply, once replied */
	uint8_t request_id_len;
	char request_id[31];
	const char *date_line;  /* HTTP_DATE_LINE_LEN bytes, owned by the worker */
	struct http_out *out;
	struct http_context *ctx;
	/* The handler's own, from on_head to on_end; zeroed per request. */
	uint32_t handler_flags;
	void *handler_data;
	/* Set by a handler that has seen enough of the body (it failed
	 * validation, say): the server reads and discards the rest, stops
	 * calling on_body, and still calls on_request to answer. */
	bool discard_body;
};

struct http_handler {
	/* Optional. The head is complete and `buf` holds it (valid only during
	 * the call). Return 0 to go on, or a status: the body is then read and
	 * discarded and that status answered with the error envelope. */
	unsigned (*on_head)(struct http_exchange *x, const char *buf,
			    const struct http_request *req);
	/* Optional. Each run of body bytes, de-chunked; same return rule. */
	unsigned (*on_body)(struct http_exchange *x, const char *data, size_t len);
	/* Required. The whole request has arrived: reply. */
	void (*on_request)(struct http_exchange *x);
	/* Optional. Called exactly once for every exchange whose on_head ran,
	 * when it ends: after on_request, or when the connection closed before
	 * the request was complete. Gives back what on_head took. */
	void (*on_end)(struct http_exchange *x);
};

/*
 * Appends a whole response: status line, Date, Content-Type (if not NULL),
 * Content-Length, X-Request-Id, Connection (when closing, or for HTTP/1.0
 * keep-alive), `extra_headers` (complete "Name: value\r\n" lines or NULL),
 * the blank line, and the body unless x->head_only. Returns 0, or -ENOSPC
 * with nothing appended if it does not fit.
 */
int http_reply(struct http_exchange *x, unsigned status, const char *content_type,
	       const char *extra_headers, const void *body, size_t len);

/*
 * Appends the JSON error envelope {code, message, field?, hint?, requestId}
 * as `status`. code/message NULL: the status table's (http_status.h).
 * Strings are JSON-escaped. Returns 0 or -ENOSPC.
 */
int http_reply_error(struct http_exchange *x, unsigned status, const char *code,
		     const char *message, const char *field, const char *hint,
		     const char *extra_headers);

/* Appends only the head of a response whose body of content_length bytes
 * the caller sends otherwise (see http_reply_body_buffer). With
 * HTTP_LENGTH_STREAMED no Content-Length is written (a chunked or
 * close-delimited stream). */
#define HTTP_LENGTH_STREAMED UINT64_MAX
int http_reply_head(struct http_exchange *x, unsigned status, const char *content_type,
		    const char *extra_headers, uint64_t content_length);

/* ---- Server services for handlers (implemented in src/ring/conn.c) ---- */

/* Per-worker scratch memory, valid only during the handler call (and
 * during an event render). */
char *http_scratch(struct http_exchange *x, size_t *cap);

/* A large buffer for this exchange's body (responses past the output
 * buffer, e.g. a scrape): NULL if every one is in use (answer 503). It is
 * given back by the server once the body is sent. */
char *http_body_buffer(struct http_exchange *x, size_t *cap);

/* Replies with the first `len` bytes of the body buffer as the body. */
int http_reply_body_buffer(struct http_exchange *x, unsigned status, const char *content_type,
			   const char *extra_headers, size_t len);

/* Replies with `data` of any size up to a body buffer: copied into the
 * output buffer when it fits (the usual case, holding nothing afterwards),
 * else into a body buffer; 503 with Retry-After if none is free. Meant
 * for bodies rendered in the scratch. Returns 0 or -ENOSPC. */
int http_reply_any(struct http_exchange *x, unsigned status, const char *content_type,
		   const char *extra_headers, const char *data, size_t len);

/* Writes one event's payload (the JSON after "data: ") into buf; returns
 * its length, or 0 if it could not. */
typedef size_t (*http_event_render)(char *buf, size_t cap, struct http_context *ctx);

/*
 * Turns the exchange into a Server-Sent Events stream (200,
 * text/event-stream, chunked): one event now, then one per
 * --sse-interval, each `render`ed once per worker and tick for all its
 * subscribers. A subscriber that falls behind by more than a bounded
 * backlog is dropped. Returns 0 or -ENOSPC.
 */
int http_start_event_stream(struct http_exchange *x, http_event_render render);

/* Appends "HTTP/1.1 100 Continue\r\n\r\n". Returns 0 or -ENOSPC. */
int http_write_continue(struct http_out *out);

/* Writes the Date line for `unix_seconds` (HTTP_DATE_LINE_LEN bytes, no NUL). */
void http_format_date_line(char out[HTTP_DATE_LINE_LEN], int64_t unix_seconds);

/* JSON-escapes s into out (no quotes added). Returns the escaped length,
 * or (size_t)-1 if it does not fit in cap. */
size_t http_json_escape(char *out, size_t cap, const char *s);

#endif
