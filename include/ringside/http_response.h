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

#include "ringside/api_errors.h"
#include "ringside/http_parser.h"
#include "ringside/router.h"

/* The server keeps at least this much room in the output buffer before it
 * starts a request, so an error envelope always fits. */
#define HTTP_RESPONSE_RESERVE 2048u

/* Bytes of per-request state a handler may keep in the exchange itself
 * (http_exchange.handler_space): what it learnt at the head and needs
 * later (the ids a token named, say), without holding anything else. */
#define HTTP_HANDLER_SPACE 256u

/* Bytes of the route parameters of one request, percent-decoded, each
 * NUL-terminated (http_param). */
#define HTTP_PARAM_BYTES 256u

/* The exchange buffer (http_exchange_buffer): a small request body the
 * server collects for the handler (http_handler.body_max), then whatever
 * the handler keeps across a park (a database result's rows). */
#define HTTP_EXCHANGE_BUF_SIZE (64u * 1024u)

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
struct api;

/* What a handler may use of the worker it runs on. */
struct http_context {
	const struct config *cfg;
	struct metrics_registry *metrics;
	struct metrics_shard *shard;  /* this worker's */
	struct http_gzip *gzip;       /* this worker's compressor */
	struct api *api;              /* the handlers' own state (src/api), or NULL */
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
	uint64_t reply_bytes; /* of the reply queued so far, head included (access log) */
	uint8_t request_id_len;
	char request_id[31];
	const char *date_line;  /* HTTP_DATE_LINE_LEN bytes, owned by the worker */
	struct http_out *out;
	struct http_context *ctx;
	/* The handler's own, from on_head to on_end; zeroed per request. */
	uint32_t handler_flags;
	void *handler_data;
	_Alignas(8) unsigned char handler_space[HTTP_HANDLER_SPACE];
	/* The body, collected whole for a handler with body_max: in the
	 * exchange buffer, body_len bytes (not NUL-terminated); NULL if the
	 * request had none. */
	const char *body;
	uint32_t body_len;
	/* Set by a handler that has seen enough of the body (it failed
	 * validation, say): the server reads and discards the rest, stops
	 * calling on_body, and still calls on_request to answer. */
	bool discard_body;
	/* Tenant analytics: what this exchange counts once it is answered
	 * 2xx (count_kind 0: nothing), set by its authentication or its
	 * handler (src/api/analytics.c) and handed to the server's
	 * `answered` hook when the answer is queued. */
	uint8_t count_kind;
	uint8_t count_org_len, count_agent_len;
	char count_org[64], count_agent[64];
	/* The route's parameters ({agentId}), parsed once by the router and
	 * percent-decoded: http_param. */
	uint8_t param_count;
	uint16_t param_off[ROUTER_MAX_PARAMS], param_len[ROUTER_MAX_PARAMS];
	char param_bytes[HTTP_PARAM_BYTES];
};

/* Route parameter i of the exchange (in pattern order), NUL-terminated
 * and percent-decoded (no NUL inside: the router answers 404 for a %00),
 * and its length; NULL past the last. */
static inline const char *http_param(const struct http_exchange *x, unsigned i, size_t *len)
{
	if (i >= x->param_count)
		return NULL;
	if (len)
		*len = x->param_len[i];
	return x->param_bytes + x->param_off[i];
}

struct http_handler {
	/* Optional. The head is complete and `buf` holds it (valid only during
	 * the call). Return 0 to go on, or a status: the body is then read and
	 * discarded and that status answered with the error envelope. It may
	 * also reply itself (a refusal with its own headers, or a GET that
	 * needs nothing more): the body is then discarded and on_request is
	 * not called. */
	unsigned (*on_head)(struct http_exchange *x, const char *buf,
			    const struct http_request *req);
	/* Optional. Each run of body bytes, de-chunked; same return rule. */
	unsigned (*on_body)(struct http_exchange *x, const char *data, size_t len);
	/* The whole request has arrived: reply, or park (http_park).
	 * Required, unless on_head always replies (a GET answered at its
	 * head). */
	void (*on_request)(struct http_exchange *x);
	/* Required by a handler that parks: the completion of its park came
	 * back (`result` as posted, ring_server_post): reply, or park again.
	 * Runs on the exchange's worker. */
	void (*on_resume)(struct http_exchange *x, int32_t result);
	/* Optional. Called exactly once for every exchange routed to the
	 * handler, when it ends: after its reply (a parked one's too, or the
	 * 504 of its deadline), or when the connection closed before the
	 * request was complete. Gives back what on_head took. A parked
	 * exchange's handler_space stays untouched until its completion is
	 * back, even after on_end. */
	void (*on_end)(struct http_exchange *x);
	/* Optional. The `code` of the error envelope for a status the server
	 * answers on this route by itself (413 for a body over
	 * --max-body-bytes, say), where the route family's contract names
	 * its own (seed 003: VALIDATION_ERROR): a family's table
	 * (api_errors.h: api_agent_error_code). NULL: the core family's. */
	const char *(*error_code)(unsigned status);
	/* Optional, at most HTTP_EXCHANGE_BUF_SIZE. The server collects the
	 * body (de-chunked) into the exchange buffer, and on_request finds
	 * it whole in x->body: for small bodies read in one pass (a form, a
	 * registry document). A longer one is 413 (a Content-Length over it
	 * before a byte is read); no free buffer, 503. 0: on_body only. */
	uint32_t body_max;
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
 * Appends the JSON error envelope {code, message, field?, hint?,
 * requestId} as `status`. code NULL: the core family's for the status
 * (api_core_error_of); message NULL: that status's core message. Strings
 * are JSON-escaped. Returns 0 or -ENOSPC.
 *
 * For the server's own answers, whose code comes from the route's
 * error_code hook. Handlers name their error by its enum instead
 * (http_reply_core_error, http_reply_agent_error).
 */
int http_reply_error(struct http_exchange *x, unsigned status, const char *code,
		     const char *message, const char *field, const char *hint,
		     const char *extra_headers);

/*
 * The same envelope with an error of the core family (seed 000/002,
 * openapi/core.yaml) or of the agent family (seed 003), named by its
 * enum (api_errors.h). status 0: the error's own; message NULL: the
 * error's default message. field, hint, extra_headers: as for
 * http_reply_error. Returns 0 or -ENOSPC.
 */
int http_reply_core_error(struct http_exchange *x, unsigned status, enum api_core_error code,
			  const char *message, const char *field, const char *hint,
			  const char *extra_headers);
int http_reply_agent_error(struct http_exchange *x, unsigned status, enum api_agent_error code,
			   const char *message, const char *field, const char *hint,
			   const char *extra_headers);

/*
 * The envelope of the identity routes (openapi/identity.yaml) and of
 * seed 002's analytics: {code, message, details?, requestId}. details is
 * written when any member of it is set: field (the member or query
 * parameter at fault), hint (what to do about a 503), max and provided
 * (a limit and the value that passed it, as seed 002's `days` error
 * shows them: JSON numbers, given as their decimal digits; anything but
 * digits is written as a string).
 */
struct http_error_details {
	const char *field, *hint;
	const char *max, *provided;
};
/* status 0: the error's own; message NULL: its default. Strings are
 * JSON-escaped. Returns 0 or -ENOSPC. */
int http_reply_identity_error(struct http_exchange *x, unsigned status,
			      enum api_identity_error code, const char *message, const char *field,
			      const char *hint, const char *extra_headers);
/* The same envelope with a core code (seed 002 names VALIDATION_ERROR,
 * UNAUTHORIZED, NOT_FOUND and INTERNAL_SERVER_ERROR) and any details. */
int http_reply_detailed_error(struct http_exchange *x, unsigned status, enum api_core_error code,
			      const char *message, const struct http_error_details *details,
			      const char *extra_headers);

/*
 * An OAuth 2.0 error (RFC 6749 section 5.2): the body is exactly
 * {"error":"<code>","error_description":"<description>"}, with
 * Cache-Control: no-store and Pragma: no-cache (sections 5.1, 5.2)
 * before extra_headers. status 0: the error's own (400, 401 for
 * invalid_client and invalid_token, 403 for insufficient_scope); an
 * invalid_client answered 401 needs the WWW-Authenticate of the scheme
 * the client used, in extra_headers. description NULL or "": the table's
 * (5.2 wants at least one character).
 * Bytes section 5.2 does not allow in a description (outside %x20-21 /
 * %x23-5B / %x5D-7E: '"', backslash, control bytes, non-ASCII) are sent
 * as '?'; one longer than HTTP_OAUTH_DESCRIPTION_MAX bytes is cut there.
 * Returns 0 or -ENOSPC.
 */
#define HTTP_OAUTH_DESCRIPTION_MAX 512u
int http_reply_oauth_error(struct http_exchange *x, unsigned status, enum api_oauth_error error,
			   const char *description, const char *extra_headers);

/* Appends only the head of a response whose body of content_length bytes
 * the caller sends otherwise (see http_reply_body_buffer). With
 * HTTP_LENGTH_STREAMED no Content-Length is written (a chunked or
 * close-delimited stream). */
#define HTTP_LENGTH_STREAMED UINT64_MAX
int http_reply_head(struct http_exchange *x, unsigned status, const char *content_type,
		    const char *extra_headers, uint64_t content_length);

/* ---- Server services for handlers (implemented in src/server/) ---- */

/*
 * Parks the exchange: the handler returns from on_request (or on_resume)
 * without replying, and hands the ticket to another thread, which posts
 * it back exactly once with a result (ring_server_post; a database
 * request's token, say). The worker then calls on_resume with that
 * result. Past timeout_ms the server answers 504 (the route family's
 * code) itself, calls on_end, and drops the completion when it comes.
 * The connection's slot, and the exchange's handler_space, stay the
 * handler's until the completion is back, whatever happens to the
 * client: the other thread may write there until it posts. Requests
 * pipelined behind wait; their answers stay in order.
 * Returns the ticket, or 0 if the exchange cannot park (it is not in
 * on_request or on_resume, or too many earlier parks of the
 * connection are still owed): answer otherwise.
 */
typedef uint64_t http_ticket;
http_ticket http_park(struct http_exchange *x, uint32_t timeout_ms);
/* Undoes the park of this same handler call, whose ticket could not be
 * handed over (a full queue, say): nothing is owed, and the handler
 * answers as if it had never parked. */
void http_unpark(struct http_exchange *x);

/* Per-worker scratch memory, valid only during the handler call (and
 * during an event render). */
char *http_scratch(struct http_exchange *x, size_t *cap);

/* A large buffer for this exchange's body (responses past the output
 * buffer, e.g. a scrape): NULL if every one is in use (answer 503). It is
 * given back by the server once the body is sent. */
char *http_body_buffer(struct http_exchange *x, size_t *cap);

/* The exchange's own buffer of HTTP_EXCHANGE_BUF_SIZE bytes (it holds
 * the collected body, if any, at its start): kept from its first use
 * until the exchange has ended and no completion of its parks is owed,
 * so another thread may write there (a database result) while it is
 * parked. NULL if every one is in use (answer 503). */
char *http_exchange_buffer(struct http_exchange *x);

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

/*
 * A body of any length, produced in pieces as the client reads it (a
 * fleet exposition of hundreds of MB, say). `produce` writes the next
 * piece into buf (at most cap bytes, cap >= HTTP_STREAM_MIN_PIECE) and
 * returns:
 *   - its length, > 0;
 *   - 0: the body is complete (it is not called again);
 *   - HTTP_PRODUCE_AGAIN: no bytes this time; call again soon, after the
 *     worker has served its other events. A producer does a bounded
 *     amount of work per call and says this when that work wrote
 *     nothing; it never loops until bytes appear (the whole worker would
 *     wait on it).
 * It is called at once, then each time the previous piece has been
 * handed to the kernel, or on the next pass of the event loop after an
 * AGAIN: never twice without the worker's other events in between. Its
 * arguments: `state`, a copy of the state_len (<= HTTP_STREAM_STATE_MAX)
 * bytes given here, and the worker's context.
 *
 * Sent chunked (HTTP/1.1) or close-delimited (HTTP/1.0). With
 * HTTP_STREAM_GZIP in flags the body is one gzip member
 * (Content-Encoding: gzip), each piece compressed as it is produced and
 * sync-flushed, so that what arrived so far always decodes. The handler
 * negotiated it (Accept-Encoding) and says Vary: Accept-Encoding itself,
 * on both answers. The pieces are then produced in the worker's scratch
 * (buf is not the output buffer; the first piece is produced during this
 * call, so what the handler kept in the scratch is gone when it returns)
 * and cap is HTTP_GZIP_PIECE_MAX (http_gzip.h). Should the worker fail to
 * set up a compressor, the body goes out identity-coded: a client that
 * accepts gzip accepts that too.
 *
 * The connection takes no other request meanwhile; a client that reads
 * nothing for --keepalive-timeout is dropped. The request is counted
 * (http_request_duration_seconds, the access log line) when the last
 * byte of the body has been handed to the kernel, so its duration covers
 * the whole body; or, if the connection closes before that, at the
 * close, with its status and the bytes handed to the kernel by then.
 * Returns 0, or -EBUSY when the worker already runs HTTP_STREAMS_MAX of
 * them (nothing was written: answer 503), -ENOSPC, or -EINVAL
 * (state_len).
 */
#define HTTP_STREAM_STATE_MAX 256u
#define HTTP_STREAM_MIN_PIECE (32u * 1024u)
#define HTTP_STREAMS_MAX 16u
#define HTTP_PRODUCE_AGAIN ((size_t)-1)
#define HTTP_STREAM_GZIP 1u /* flags: compress the body (above) */
typedef size_t (*http_produce)(void *state, struct http_context *ctx, char *buf, size_t cap);
int http_reply_stream(struct http_exchange *x, unsigned status, const char *content_type,
		      const char *extra_headers, unsigned flags, http_produce produce,
		      const void *state, size_t state_len);

/* Appends "HTTP/1.1 100 Continue\r\n\r\n". Returns 0 or -ENOSPC. */
int http_write_continue(struct http_out *out);

/* Writes the Date line for `unix_seconds` (HTTP_DATE_LINE_LEN bytes, no NUL). */
void http_format_date_line(char out[HTTP_DATE_LINE_LEN], int64_t unix_seconds);

#endif
