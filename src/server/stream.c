/*
 * Responses that outlive the handler's call: bodies produced in pieces
 * as the client reads them (http_reply_stream, gzip-compressed when
 * asked), and Server-Sent Events streams (http_start_event_stream).
 */
#include "server_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ringside/config.h"
#include "ringside/log.h"

void stream_release_producer(struct server *s, struct server_conn *c)
{
	if (c->producer) {
		uint32_t bit = 1u << (c->producer - 1);
		s->producers_used &= ~bit;
		s->producers_again &= ~bit;
		s->producers_due &= ~bit;
		c->producer = 0;
	}
}

/* The producer said HTTP_PRODUCE_AGAIN, or its piece gave nothing to
 * send yet: it is called again on the host loop's next pass
 * (server_pass_begin), after the completions that arrived meanwhile. */
static void produce_later(struct server *s, struct server_conn *c)
{
	s->producers_again |= 1u << (c->producer - 1);
}

bool stream_producer_waiting(const struct server *s, const struct server_conn *c)
{
	return c->producer && ((s->producers_again | s->producers_due) >> (c->producer - 1) & 1);
}

/* What a stream put off, now that it ended: the count of a produced body
 * whose last byte is with the kernel, or whose connection closed first;
 * the log line of an event stream. At a close, a produced body's bytes
 * are those handed to the kernel (not what was still queued). */
void stream_count_end(struct server *s, struct server_conn *c)
{
	if (c->count_pending) {
		c->count_pending = false;
		uint64_t unsent = 0;
		if (c->phase == SERVER_PHASE_CLOSING && c->out.buf)
			unsent = c->out.len - c->out_sent;
		c->x.reply_bytes -= unsent < c->x.reply_bytes ? unsent : c->x.reply_bytes;
		conn_count_now(s, c);
	} else if (c->log_pending) {
		c->log_pending = false;
		access_line_write(s, c, conn_clock_ns());
	}
}

/* ---- Event streams (Server-Sent Events) ---- */

void stream_remove(struct server *s, struct server_conn *c)
{
	if (!c->streaming)
		return;
	stream_count_end(s, c);
	struct server_conn *last = s->streams[--s->stream_count];
	s->streams[c->stream_index] = last;
	last->stream_index = c->stream_index;
	c->streaming = false;
}

/* Frames one event as a chunk (HTTP/1.1) or as is (HTTP/1.0, where the
 * stream ends with the connection) and queues it; drops a subscriber that
 * is too far behind. */
static void append_event(struct server *s, struct server_conn *c, const char *json, size_t len)
{
	static const char prefix[] = "data: ", suffix[] = "\n\n";
	size_t event = sizeof prefix - 1 + len + sizeof suffix - 1;
	bool chunked = c->x.version_minor == 1;
	size_t framed = event + (chunked ? 16 + 4 : 0);
	uint32_t backlog = c->out.buf ? c->out.len - c->out_sent : 0;
	if (backlog + framed > STREAM_MAX_BACKLOG) {
		log_info("event subscriber dropped: not reading", "worker=%u backlog=%u", s->id,
			 backlog);
		conn_close(s, c);
		return;
	}
	conn_ensure_out(s, c);
	char *p = c->out.buf + c->out.len;
	if (chunked) {
		char hex[16];
		size_t n = 0;
		for (size_t v = event; v; v >>= 4)
			hex[n++] = server_hex_digits[v & 15];
		while (n)
			*p++ = hex[--n];
		*p++ = '\r';
		*p++ = '\n';
	}
	memcpy(p, prefix, sizeof prefix - 1);
	p += sizeof prefix - 1;
	memcpy(p, json, len);
	p += len;
	memcpy(p, suffix, sizeof suffix - 1);
	p += sizeof suffix - 1;
	if (chunked) {
		*p++ = '\r';
		*p++ = '\n';
	}
	c->x.reply_bytes += (uint64_t)(p - (c->out.buf + c->out.len));
	c->out.len = (uint32_t)(p - c->out.buf);
	conn_send(s, c);
}

void stream_push_events(struct server *s)
{
	size_t len = s->stream_render(s->scratch, SERVER_SCRATCH_SIZE, &s->ctx);
	/* Backwards: append_event may drop (swap-remove) the current one. */
	for (uint32_t i = s->stream_count; i-- > 0;)
		if (len)
			append_event(s, s->streams[i], s->scratch, len);
}

/* Ends a stream on shutdown: the last chunk, then close. */
void stream_end(struct server *s, struct server_conn *c)
{
	stream_remove(s, c);
	if (c->x.version_minor == 1) {
		conn_ensure_out(s, c);
		if (c->out.cap - c->out.len >= 5) {
			memcpy(c->out.buf + c->out.len, "0\r\n\r\n", 5);
			c->out.len += 5;
		}
	}
	c->close_after_send = true;
	if (conn_unsent(c))
		conn_send(s, c);
	else
		conn_on_sent(s, c);
}

int http_start_event_stream(struct http_exchange *x, http_event_render render)
{
	struct server_conn *c = conn_of(x);
	struct server *s = server_of(x);
	bool chunked = x->version_minor == 1;
	if (s->stream_render && s->stream_render != render)
		return -EINVAL; /* one event channel per worker; see openapi/metrics.yaml */
	if (chunked)
		x->close = false;
	else
		x->close = true; /* HTTP/1.0: the stream ends with the connection */
	int r = http_reply_head(x, 200, "text/event-stream",
				chunked ? "Cache-Control: no-cache\r\nConnection: keep-alive\r\n"
					  "Transfer-Encoding: chunked\r\n"
					: "Cache-Control: no-cache\r\n",
				HTTP_LENGTH_STREAMED);
	if (r < 0 || x->head_only)
		return r;
	/* Bounds what a subscriber that stops reading can pile up in the
	 * kernel, so it is found out (and dropped) within seconds. */
	s->host->limit_send_buffer(s, c, STREAM_SNDBUF);
	if (s->stream_count == 0)
		s->next_event_ms = s->now_ms + s->cfg->sse_interval_ms;
	s->stream_render = render;
	c->streaming = true;
	c->stream_index = s->stream_count;
	s->streams[s->stream_count++] = c;
	size_t len = render(s->scratch, SERVER_SCRATCH_SIZE, &s->ctx);
	if (len)
		append_event(s, c, s->scratch, len);
	return 0;
}

/* ---- Bodies produced in pieces ---- */

/* Room a piece leaves for the chunk framing: "xxxxxxxx\r\n" before it,
 * "\r\n" and the last chunk "0\r\n\r\n" after. */
#define CHUNK_HEAD 10u
#define CHUNK_TAIL 7u

/* Appends the n bytes written at out.len (+ CHUNK_HEAD when chunked) to
 * the output, framed as a chunk when the response is chunked. */
static void append_piece(struct server_conn *c, size_t n, bool chunked)
{
	size_t at = c->out.len + (chunked ? CHUNK_HEAD : 0);
	if (chunked) {
		char *h = c->out.buf + c->out.len;
		/* Fixed width: the size is known only after the piece is
		 * written; leading zeros are valid (RFC 9112 7.1). */
		for (size_t i = 8, v = n; i-- > 0; v >>= 4)
			h[i] = server_hex_digits[v & 15];
		h[8] = '\r';
		h[9] = '\n';
		memcpy(c->out.buf + at + n, "\r\n", 2);
		n += 2;
	}
	c->x.reply_bytes += at + n - c->out.len;
	c->out.len = (uint32_t)(at + n);
}

/* The body is complete: the last chunk; the producer entry is free. It
 * is counted once that is with the kernel (conn_on_sent). */
static void end_body(struct server *s, struct server_conn *c, bool chunked)
{
	if (chunked) {
		memcpy(c->out.buf + c->out.len, "0\r\n\r\n", 5);
		c->out.len += 5;
		c->x.reply_bytes += 5;
	}
	stream_release_producer(s, c);
}

/*
 * Calls the producer once and appends what it gave: a piece (a chunk when
 * chunked), the end of the body, or nothing (HTTP_PRODUCE_AGAIN: its turn
 * comes again on the next pass). With gzip the piece is produced in the
 * scratch and compressed into the output; compressed output that does
 * not fit is owed by the compressor, which keeps the rest of the piece,
 * and is written by the next calls, before the producer is called again:
 * nothing is dropped, and the output buffer never grows.
 */
void stream_produce_piece(struct server *s, struct server_conn *c)
{
	unsigned i = c->producer - 1u;
	struct producer *pr = &s->producers[i];
	bool chunked = c->x.version_minor == 1;
	conn_ensure_out(s, c);
	size_t at = c->out.len + (chunked ? CHUNK_HEAD : 0);
	size_t room = c->out.cap - at - (chunked ? CHUNK_TAIL : 0);
	char *dst = c->out.buf + at;
	size_t n;
	bool end;
	/* A client that stops reading is dropped after this long; one that
	 * waits while the producer has nothing yet is not. */
	timer_wheel_schedule(&s->wheel, &c->timer, s->now_ms + s->cfg->keepalive_timeout_ms);
	if (!pr->gzip) {
		n = pr->produce(pr->state, &s->ctx, dst, room);
		if (n == HTTP_PRODUCE_AGAIN) {
			produce_later(s, c);
			return;
		}
		if (n > room)
			n = 0; /* a broken producer: end the body rather than overrun */
		end = n == 0;
	} else {
		struct http_gzip *g = &s->gzip_streams[i];
		ssize_t z;
		if (http_gzip_stream_owes(g)) {
			z = http_gzip_stream_more(g, dst, room);
		} else {
			size_t p = pr->produce(pr->state, &s->ctx, s->scratch, HTTP_GZIP_PIECE_MAX);
			if (p == HTTP_PRODUCE_AGAIN) {
				produce_later(s, c);
				return;
			}
			if (p > HTTP_GZIP_PIECE_MAX)
				p = 0; /* as above */
			z = http_gzip_stream_put(g, s->scratch, p, p == 0, dst, room);
		}
		if (z < 0) {
			/* zlib refused (a bug): the member cannot be completed.
			 * What was sent goes out, then the close, without a last
			 * chunk: the client sees a body cut short, not a whole one. */
			log_error("gzip stream failed", "worker=%u err=%d request_id=%s", s->id,
				  (int)-z, c->x.request_id);
			stream_release_producer(s, c);
			c->close_after_send = true;
			return;
		}
		n = (size_t)z;
		end = http_gzip_stream_done(g);
	}
	if (n)
		append_piece(c, n, chunked);
	if (end)
		end_body(s, c, chunked);
	else if (!n)
		produce_later(s, c); /* nothing to send: never call it twice in a row */
}

int http_reply_stream(struct http_exchange *x, unsigned status, const char *content_type,
		      const char *extra_headers, unsigned flags, http_produce produce,
		      const void *state, size_t state_len)
{
	struct server_conn *c = conn_of(x);
	struct server *s = server_of(x);
	if (state_len > HTTP_STREAM_STATE_MAX)
		return -EINVAL;
	uint32_t free_mask = ~s->producers_used & ((1u << HTTP_STREAMS_MAX) - 1);
	if (!free_mask && !x->head_only)
		return -EBUSY;
	unsigned i = free_mask ? (unsigned)__builtin_ctz(free_mask) : 0;
	bool gzip = flags & HTTP_STREAM_GZIP;
	if (gzip && !x->head_only) {
		struct http_gzip *g = server_gzip_stream(s, i);
		gzip = g && http_gzip_stream_begin(g) == 0;
	}
	bool chunked = x->version_minor == 1;
	char headers[512];
	int hn = snprintf(headers, sizeof headers, "%s%s%s", extra_headers ? extra_headers : "",
			  gzip ? "Content-Encoding: gzip\r\n" : "",
			  chunked ? "Transfer-Encoding: chunked\r\n" : "");
	if (hn < 0 || (size_t)hn >= sizeof headers)
		return -EINVAL;
	if (!chunked)
		x->close = true; /* HTTP/1.0: the body ends with the connection */
	int r = http_reply_head(x, status, content_type, headers, HTTP_LENGTH_STREAMED);
	if (r < 0 || x->head_only)
		return r;
	s->producers_used |= 1u << i;
	s->producers[i].produce = produce;
	s->producers[i].conn = c;
	s->producers[i].gzip = gzip;
	memcpy(s->producers[i].state, state, state_len);
	c->producer = (uint8_t)(i + 1);
	c->body_produced = true;
	stream_produce_piece(s, c);
	return 0;
}

/*
 * The loop's pass for producers that said HTTP_PRODUCE_AGAIN in the
 * previous one (the host calls it after the pass's completions): each is called once, and what it
 * gave is sent; one that ended with nothing left to send ends its
 * exchange as a drained send would.
 */
void server_pass_end(struct server *s)
{
	while (s->producers_due) {
		unsigned i = (unsigned)__builtin_ctz(s->producers_due);
		s->producers_due &= ~(1u << i);
		struct server_conn *c = s->producers[i].conn;
		if (c->phase == SERVER_PHASE_CLOSING)
			continue; /* its producer goes with the slot */
		stream_produce_piece(s, c);
		if (conn_unsent(c))
			conn_send(s, c);
		else if (!c->producer)
			conn_on_sent(s, c);
	}
}
