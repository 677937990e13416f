/*
 * A connection's HTTP/1.1 life: heads parsed in place in the recv buffer
 * (copied to the connection only when a head spans reads), bodies streamed
 * to the handler, pipelined requests answered in order, deadlines, and
 * the lingering close after a final response.
 *
 * Input invariant: `in` holds unconsumed bytes that start a request head
 * (or, while output is blocked, the whole unread tail); the parser has
 * validated exactly `parser.pos` of them. Nothing else keeps a recv buffer.
 */
#include "worker_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "ringside/log.h"
#include "ringside/metrics.h"

static const char hex_digits[] = "0123456789abcdef";

void conn_format_request_id(struct worker *w, struct http_exchange *x)
{
	/* req_ + process nonce (8 hex) + worker (2 hex) + sequence (10 hex):
	 * unique per process lifetime without any shared counter. */
	const size_t prefix = 14, total = 24;
	memcpy(x->request_id, w->request_id_prefix, prefix);
	uint64_t seq = ++w->request_seq;
	for (size_t i = total; i-- > prefix; seq >>= 4)
		x->request_id[i] = hex_digits[seq & 15];
	x->request_id[total] = '\0';
	x->request_id_len = (uint8_t)total;
}

static uint32_t out_room(const struct conn *c)
{
	return c->out.buf ? c->out.cap - c->out.len : OUT_BUF_SIZE;
}

static void ensure_out(struct worker *w, struct conn *c)
{
	if (!c->out.buf) {
		c->out.buf = buf_pool_get(&w->out_pool);
		c->out.cap = OUT_BUF_SIZE;
		c->out.len = 0;
		c->out_sent = 0;
	}
}

static void release_in(struct worker *w, struct conn *c)
{
	if (c->in && c->in_len == 0) {
		buf_pool_put(&w->in_pool, c->in);
		c->in = NULL;
	}
}

/* Ends the handler's side of the exchange: on_end, once. */
void conn_end_exchange(struct conn *c)
{
	if (c->handler_open) {
		c->handler_open = false;
		if (c->handler->on_end)
			c->handler->on_end(&c->x);
	}
}

void conn_set_pool_state(struct worker *w, struct conn *c, enum pool_state s)
{
	if (c->pool_state == s)
		return;
	struct metrics_worker_view *v = &w->ctx.shard->view;
	_Atomic uint32_t *gauge[] = {NULL, &v->creating, &v->active, &v->idle};
	/* This worker is the only writer: load and store, no locked RMW. */
	if (gauge[c->pool_state])
		metrics_set_u32(gauge[c->pool_state],
				atomic_load_explicit(gauge[c->pool_state], memory_order_relaxed) - 1);
	if (gauge[s])
		metrics_set_u32(gauge[s], atomic_load_explicit(gauge[s], memory_order_relaxed) + 1);
	c->pool_state = (uint8_t)s;
}

static void release_body(struct worker *w, struct conn *c)
{
	if (c->body_buf) {
		buf_pool_put(&w->body_pool, c->body_buf);
		c->body_buf = NULL;
	}
	c->body_len = c->body_sent = 0;
}

/* A response is still going out: the next one must wait behind it (a
 * produced body until it is counted: the count reads the exchange). */
static bool output_busy(const struct conn *c)
{
	return c->body_buf || c->producer || c->count_pending ||
	       out_room(c) < HTTP_RESPONSE_RESERVE;
}

/* Response bytes still to go out, or a body still to be produced. */
static bool output_pending(const struct conn *c)
{
	return c->send_busy || c->out.len > c->out_sent || c->body_len > c->body_sent ||
	       c->producer;
}

static void release_producer(struct worker *w, struct conn *c)
{
	if (c->producer) {
		uint32_t bit = 1u << (c->producer - 1);
		w->producers_used &= ~bit;
		w->producers_again &= ~bit;
		w->producers_due &= ~bit;
		c->producer = 0;
	}
}

/* The producer said HTTP_PRODUCE_AGAIN, or its piece gave nothing to
 * send yet: it is called again on the loop's next pass (worker.c,
 * run_loop), after the completions that arrived meanwhile. */
static void produce_later(struct worker *w, struct conn *c)
{
	w->producers_again |= 1u << (c->producer - 1);
}

/* Waiting for its turn in the next pass: nothing else may call it. */
static bool producer_waiting(const struct worker *w, const struct conn *c)
{
	return c->producer && ((w->producers_again | w->producers_due) >> (c->producer - 1) & 1);
}

void conn_release_buffers(struct worker *w, struct conn *c)
{
	c->in_len = 0;
	release_in(w, c);
	release_body(w, c);
	release_producer(w, c);
	if (c->out.buf) {
		buf_pool_put(&w->out_pool, c->out.buf);
		c->out.buf = NULL;
		c->out.len = 0;
		c->out_sent = 0;
	}
}

static void begin_exchange(struct worker *w, struct conn *c, enum http_method m, bool close)
{
	c->x = (struct http_exchange){
		.method = m,
		.head_only = m == HTTP_HEAD,
		.close = close || w->stopping,
		.date_line = w->date_line,
		.out = &c->out,
		.ctx = &w->ctx,
	};
	conn_format_request_id(w, &c->x);
	c->log_path_len = 0;
	c->body_produced = false;
	ensure_out(w, c);
}

void conn_open(struct worker *w, struct conn *c)
{
	int fd = c->fd;
	uint16_t gen = c->gen;
	memset(c, 0, offsetof(struct conn, parser));
	c->fd = fd;
	c->gen = gen;
	c->phase = PHASE_HEAD;
	c->between_requests = true;
	conn_set_pool_state(w, c, POOL_CREATING);
	http_parser_init(&c->parser);
	/* A connection that never sends a byte is dropped like an idle one. */
	timer_wheel_schedule(&w->wheel, &c->timer, w->now_ms + w->cfg->header_timeout_ms);
}

/* Keeps p[0, n) for later. Returns false (and closes) if it cannot: only a
 * client pipelining far ahead of reading its responses gets there. */
static bool stash(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (!c->in)
		c->in = buf_pool_get(&w->in_pool);
	if (n > w->in_buf_size - c->in_len) {
		log_warn("connection closed: pipelined input overflow", "worker=%u slot=%u",
			 w->id, conn_slot(w, c));
		worker_close(w, c);
		return false;
	}
	memmove(c->in + c->in_len, p, n); /* p may point into `in` itself */
	c->in_len += (uint32_t)n;
	return true;
}

static void start_linger(struct worker *w, struct conn *c)
{
	c->phase = PHASE_LINGER;
	conn_set_pool_state(w, c, POOL_NONE);
	timer_wheel_cancel(&w->wheel, &c->timer);
}

static uint64_t clock_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The exchange in the request metrics and the access log (an event
 * stream's line waits for its end, when its bytes are known). Its
 * duration runs from the loop pass that saw its first byte to a fresh
 * clock read (vDSO, tens of ns): the pass's own time would say 0. */
static void count_now(struct worker *w, struct conn *c)
{
	const struct http_exchange *x = &c->x;
	uint64_t end_ns = clock_ns();
	metrics_observe_request(w->ctx.metrics, w->ctx.shard,
				metrics_route_slot(w->ctx.metrics, x->route), x->method, x->status,
				end_ns > c->request_start_ns ? end_ns - c->request_start_ns : 0);
	if (c->streaming)
		c->log_pending = w->access_log.fd >= 0;
	else
		access_log_request(w, c, end_ns);
}

/* Counts an answered request: every one, rejected ones too, so 400s and
 * 408s show in http_requests_total (route "unmatched" when no route was
 * found). A produced body is counted when its last byte is with the
 * kernel (conn_count_stream_end), so that the duration covers the body:
 * counted here, a scrape that streamed for 0.37 s said 0.0001 s. An
 * event stream, which never ends, is counted now. */
static void count_request(struct worker *w, struct conn *c)
{
	if (c->body_produced && output_pending(c)) {
		c->count_pending = true;
		return;
	}
	count_now(w, c);
}

/* What a stream put off, now that it ended: the count of a produced body
 * whose last byte is with the kernel, or whose connection closed first;
 * the log line of an event stream. At a close, a produced body's bytes
 * are those handed to the kernel (not what was still queued). */
void conn_count_stream_end(struct worker *w, struct conn *c)
{
	if (c->count_pending) {
		c->count_pending = false;
		uint64_t unsent = 0;
		if (c->phase == PHASE_CLOSING && c->out.buf)
			unsent = c->out.len - c->out_sent;
		c->x.reply_bytes -= unsent < c->x.reply_bytes ? unsent : c->x.reply_bytes;
		count_now(w, c);
	} else if (c->log_pending) {
		c->log_pending = false;
		access_log_request(w, c, clock_ns());
	}
}

/* The envelope code for a status the server answers by itself on the
 * exchange's route; NULL: the status table's. */
static const char *route_error_code(const struct conn *c, unsigned status)
{
	const struct http_handler *h = c->x.route ? c->x.route->handler : NULL;
	return h && h->error_code ? h->error_code(status) : NULL;
}

/* Answers with an error and ends the connection: used when the framing can
 * no longer be trusted or a deadline passed. The exchange has begun. */
static void fail(struct worker *w, struct conn *c, unsigned status, const char *message)
{
	c->x.close = true;
	conn_end_exchange(c);
	if (http_reply_error(&c->x, status, route_error_code(c, status), message, NULL, NULL,
			     NULL) < 0) {
		worker_close(w, c);
		return;
	}
	count_request(w, c);
	log_debug("request rejected", "worker=%u status=%u reason=\"%s\" request_id=%s", w->id,
		  status, message ? message : "", c->x.request_id);
	c->close_after_send = true;
	start_linger(w, c);
	worker_send(w, c);
}

/* The same, for a head that never completed: no exchange began. The
 * method is known if the parser got past it (else it reads OTHER). */
static void fail_head(struct worker *w, struct conn *c, unsigned status, const char *message)
{
	begin_exchange(w, c, c->parser.req.method, true);
	fail(w, c, status, message);
}

static void finish_request(struct worker *w, struct conn *c)
{
	struct http_exchange *x = &c->x;
	ensure_out(w, c);
	if (c->answer_status) {
		char allow[96] = "";
		if (c->answer_status == 405) {
			memcpy(allow, "Allow: ", 7);
			size_t n = router_format_allow(c->allow, allow + 7, sizeof allow - 9);
			memcpy(allow + 7 + n, "\r\n", 3);
		}
		http_reply_error(x, c->answer_status, route_error_code(c, c->answer_status),
				 c->answer_message, NULL, NULL, allow[0] ? allow : NULL);
	} else if (!c->replied_at_head && c->handler->on_request) {
		c->handler->on_request(x);
	}
	conn_end_exchange(c);
	if (!x->replied)
		http_reply_error(x, 500, route_error_code(c, 500), NULL, NULL, NULL, NULL);
	if (c->body_buf && !c->body_len)
		release_body(w, c); /* borrowed, then answered otherwise */
	c->requests++;
	count_request(w, c);
	log_debug("request", "worker=%u method=%s route=%s status=%u request_id=%s", w->id,
		  http_method_name(x->method), x->route ? x->route->pattern : "-", x->status,
		  x->request_id);

	c->body_kind = BODY_NONE;
	c->answer_status = 0;
	c->answer_message = NULL;
	http_parser_init(&c->parser);
	if (c->streaming) {
		/* Stays active; events come from the worker's tick. */
		c->phase = PHASE_LINGER;
		timer_wheel_cancel(&w->wheel, &c->timer);
	} else if (x->close) {
		c->close_after_send = true;
		start_linger(w, c);
	} else {
		c->phase = PHASE_HEAD;
		c->between_requests = true;
		conn_set_pool_state(w, c, POOL_IDLE);
		timer_wheel_schedule(&w->wheel, &c->timer, w->now_ms + w->cfg->keepalive_timeout_ms);
	}
}

/* With --metrics-listen set, the metrics routes live only on that port
 * (seed 000: never on a public interface) and the others only on --listen. */
static bool served_here(const struct worker *w, const struct conn *c, const struct http_route *r)
{
	if (!w->cfg->metrics_listen.set || (r->flags & HTTP_ROUTE_EVERY_LISTENER))
		return true;
	return !!(r->flags & HTTP_ROUTE_METRICS) == (c->listener == LISTENER_METRICS);
}

/* One message for a body over --max-body-bytes, however it is framed. */
static const char body_too_large[] = "The request body is larger than the server accepts.";

/* When a body must have made progress by: --body-timeout after its last
 * bytes, and, past --body-rate-grace, --body-min-rate on average since
 * its head (mod_reqtimeout's MinRate: each min_rate bytes buy a second).
 * A gap between reads alone would let a client drip one byte per
 * timeout and hold the request, and what it holds (a validator), for
 * ever. */
static uint64_t body_deadline(const struct worker *w, const struct conn *c)
{
	uint64_t gap = w->now_ms + w->cfg->body_timeout_ms;
	uint32_t rate = w->cfg->body_min_rate;
	if (!rate)
		return gap;
	uint64_t paced = c->body_start_ms + w->cfg->body_rate_grace_ms +
			 c->body_received * 1000u / rate;
	return paced < gap ? paced : gap;
}

static bool body_too_slow(const struct worker *w, const struct conn *c)
{
	uint32_t rate = w->cfg->body_min_rate;
	return rate && w->now_ms >= c->body_start_ms + w->cfg->body_rate_grace_ms +
					    c->body_received * 1000u / rate;
}

static void on_head(struct worker *w, struct conn *c, const char *base)
{
	const struct http_request *req = &c->parser.req;
	begin_exchange(w, c, req->method, !req->keep_alive);
	c->x.version_minor = req->version_minor;
	c->x.keep_alive_10 = req->version_minor == 0 && req->keep_alive;
	c->handler = NULL;
	c->answer_status = 0;
	c->answer_message = NULL;
	c->replied_at_head = false;
	conn_set_pool_state(w, c, POOL_ACTIVE);
	if (w->access_log.fd >= 0) {
		/* The head's buffer is gone by the time the line is written. */
		size_t n = req->path.len < CONN_LOG_PATH_MAX ? req->path.len : CONN_LOG_PATH_MAX;
		memcpy(c->log_path, base + req->path.off, n);
		c->log_path_len = (uint8_t)n;
	}

	struct router_match m;
	switch (router_match(w->router, req->method, base + req->path.off, req->path.len, &m)) {
	case ROUTER_FOUND:
		if (!served_here(w, c, m.route)) {
			c->answer_status = 404;
			break;
		}
		c->x.route = m.route;
		c->handler = m.route->handler;
		break;
	case ROUTER_NOT_FOUND:
		c->answer_status = 404;
		break;
	case ROUTER_METHOD_NOT_ALLOWED:
		if (!served_here(w, c, m.path_route)) {
			c->answer_status = 404;
			break;
		}
		/* No handler runs; the route only labels the metrics. */
		c->x.route = m.path_route;
		c->answer_status = 405;
		c->allow = m.allow;
		break;
	case ROUTER_NOT_IMPLEMENTED:
		if (m.path_route && served_here(w, c, m.path_route))
			c->x.route = m.path_route;
		c->answer_status = 501;
		c->answer_message = "The server does not implement this method.";
		break;
	}

	c->body_kind = BODY_NONE;
	if (req->chunked) {
		c->body_kind = BODY_CHUNKED;
		memset(&c->chunked, 0, sizeof c->chunked);
	} else if (req->has_content_length && req->content_length > 0) {
		if (req->content_length > w->cfg->max_body_bytes) {
			/* Refuse before reading: the client may still be sending,
			 * which the lingering close absorbs. */
			fail(w, c, 413, body_too_large);
			return;
		}
		c->body_kind = BODY_LENGTH;
		c->body_left = req->content_length;
	}
	/* RFC 9110 10.1.1: the client may wait for this before sending the
	 * body. Sent before the handler sees the head, so that a refusal it
	 * answers at once comes after it, never before. The reserve checked
	 * at head start leaves room for it. */
	if (c->body_kind != BODY_NONE && req->expect_continue && req->version_minor == 1)
		http_write_continue(&c->out);
	if (c->handler && c->handler->on_head) {
		c->handler_open = true;
		c->answer_status = (uint16_t)c->handler->on_head(&c->x, base, req);
		if (c->x.replied && !c->answer_status) {
			c->replied_at_head = true;
			c->x.discard_body = true;
		}
	}

	if (c->body_kind == BODY_NONE) {
		finish_request(w, c);
		return;
	}
	c->phase = PHASE_BODY;
	c->body_start_ms = w->now_ms;
	c->body_received = 0;
	timer_wheel_schedule(&w->wheel, &c->timer, body_deadline(w, c));
}

/* Consumes head bytes from p; returns how many. */
static size_t feed_head(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (c->between_requests) {
		/* The header deadline is absolute from the first byte, so a
		 * client trickling bytes (slowloris) cannot extend it. */
		c->between_requests = false;
		c->request_start_ns = w->now_ns;
		timer_wheel_schedule(&w->wheel, &c->timer, w->now_ms + w->cfg->header_timeout_ms);
	}
	int r;
	if (c->in_len == 0) {
		/* Fast path: the head is parsed where the kernel put it. */
		r = http_parse_head(&c->parser, &w->limits, p, n);
		if (r > 0) {
			on_head(w, c, p);
			return (size_t)r;
		}
		if (r == HTTP_PARSE_AGAIN)
			stash(w, c, p, n);
		else
			fail_head(w, c, c->parser.error_status, c->parser.error);
		return n;
	}
	/* The head spans reads: continue it in the connection's buffer. The
	 * buffer holds max_header_bytes plus a recv buffer, and the parser
	 * fails past max_header_bytes, so a head never outgrows it. */
	size_t m = w->in_buf_size - c->in_len;
	if (m > n)
		m = n;
	memcpy(c->in + c->in_len, p, m);
	c->in_len += (uint32_t)m;
	r = http_parse_head(&c->parser, &w->limits, c->in, c->in_len);
	if (r > 0) {
		/* The parser had seen all earlier bytes without finding the end,
		 * so the bytes past the head all came from p. */
		size_t past_head = c->in_len - (uint32_t)r;
		on_head(w, c, c->in);
		c->in_len = 0;
		release_in(w, c);
		return m - past_head;
	}
	if (r == HTTP_PARSE_ERROR)
		fail_head(w, c, c->parser.error_status, c->parser.error);
	return m;
}

static void deliver_body(struct conn *c, const char *data, size_t len)
{
	if (!c->answer_status && !c->x.discard_body && c->handler && c->handler->on_body)
		c->answer_status = (uint16_t)c->handler->on_body(&c->x, data, len);
}

/* Consumes body bytes from p; returns how many. */
static size_t feed_body(struct worker *w, struct conn *c, const char *p, size_t n)
{
	size_t used;
	bool done;
	if (c->body_kind == BODY_LENGTH) {
		used = n < c->body_left ? n : (size_t)c->body_left;
		deliver_body(c, p, used);
		c->body_left -= used;
		done = c->body_left == 0;
	} else {
		struct http_span data = {0, 0};
		ssize_t r = http_chunked_next(&c->chunked, w->cfg->max_body_bytes, p, n, &data);
		if (r < 0 || (r == 0 && !c->chunked.done)) {
			unsigned status = r < 0 ? c->chunked.error_status : 400;
			fail(w, c, status, status == 413 ? body_too_large : c->chunked.error);
			return n;
		}
		if (data.len)
			deliver_body(c, p + data.off, data.len);
		used = (size_t)r;
		done = c->chunked.done;
	}
	c->body_received += used;
	if (done)
		finish_request(w, c);
	else
		timer_wheel_schedule(&w->wheel, &c->timer, body_deadline(w, c));
	return used;
}

static void consume(struct worker *w, struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t used;
		if (c->phase == PHASE_HEAD) {
			bool new_request = c->parser.pos == 0 && c->in_len == 0;
			if (new_request && output_busy(c)) {
				/* Pipelined faster than the client reads: hold the
				 * rest until the output drains (conn_on_sent). */
				c->input_blocked = true;
				stash(w, c, p, n);
				return;
			}
			used = feed_head(w, c, p, n);
		} else if (c->phase == PHASE_BODY) {
			used = feed_body(w, c, p, n);
		} else {
			return; /* lingering or closing: the rest is discarded */
		}
		p += used;
		n -= used;
	}
}

void conn_on_input(struct worker *w, struct conn *c, const char *data, size_t len)
{
	if (c->input_blocked) {
		stash(w, c, data, len);
		return;
	}
	consume(w, c, data, len);
	worker_send(w, c);
}

/* The client sent its FIN with a request unfinished: that request never
 * completes. Its handler gives back what it took; nothing is answered. */
static void abandon_partial_request(struct worker *w, struct conn *c)
{
	if (c->phase != PHASE_BODY)
		return; /* a partial head holds nothing; it goes with the close */
	if (!c->x.replied)
		metrics_add(&w->ctx.shard->counters[METRIC_UPLOADS_ABORTED], 1);
	conn_end_exchange(c);
	start_linger(w, c);
}

static void produce_piece(struct worker *w, struct conn *c);

void conn_on_sent(struct worker *w, struct conn *c)
{
	if (c->body_len && c->body_sent == c->body_len)
		release_body(w, c);
	if (c->out_sent < c->out.len) {
		/* Short send, or responses appended meanwhile: send the rest. */
		memmove(c->out.buf, c->out.buf + c->out_sent, c->out.len - c->out_sent);
		c->out.len -= c->out_sent;
		c->out_sent = 0;
	} else {
		c->out.len = c->out_sent = 0;
		if (c->producer && c->phase != PHASE_CLOSING && !producer_waiting(w, c))
			produce_piece(w, c);
		if (c->count_pending && !c->producer && !c->send_busy && c->out.len == 0)
			conn_count_stream_end(w, c); /* its last byte is with the kernel */
	}
	if (c->input_blocked && !output_busy(c)) {
		c->input_blocked = false;
		uint32_t n = c->in_len;
		c->in_len = 0; /* consume() re-stashes what it cannot use yet */
		consume(w, c, c->in, n);
		release_in(w, c);
		if (c->peer_eof && !c->input_blocked && c->phase != PHASE_CLOSING)
			abandon_partial_request(w, c);
	}
	if (c->phase == PHASE_CLOSING)
		return;
	if (c->out.len > 0 || c->body_len) {
		worker_send(w, c);
		return;
	}
	if (c->producer)
		return; /* nothing to send until its producer's next turn (AGAIN) */
	if (c->peer_eof && !c->input_blocked) {
		worker_close(w, c); /* everything asked before the FIN is answered */
		return;
	}
	if (c->close_after_send) {
		c->close_after_send = false;
		worker_shutdown_write(w, c);
		c->phase = PHASE_LINGER;
		timer_wheel_schedule(&w->wheel, &c->timer, w->now_ms + LINGER_MS);
	} else if (w->stopping && c->phase == PHASE_HEAD && c->between_requests) {
		worker_close(w, c);
		return;
	}
	if (c->out.buf) {
		buf_pool_put(&w->out_pool, c->out.buf);
		c->out.buf = NULL;
	}
}

/*
 * The client shut its sending side (RFC 9112 9.6: half-close). Every
 * complete request it sent before is still answered, in order, pipelined
 * ones held in `in` included (conn_on_sent keeps consuming them as the
 * output drains); then the connection is closed.
 */
void conn_on_eof(struct worker *w, struct conn *c)
{
	c->peer_eof = true;
	if (c->input_blocked)
		return; /* conn_on_sent gets to the rest */
	abandon_partial_request(w, c);
	if (!output_pending(c))
		worker_close(w, c);
}

/* The connection broke (RST): nobody is left to answer. */
void conn_on_reset(struct worker *w, struct conn *c)
{
	if (c->phase == PHASE_BODY && !c->x.replied)
		metrics_add(&w->ctx.shard->counters[METRIC_UPLOADS_ABORTED], 1);
	worker_close(w, c);
}

void conn_on_timer(struct worker *w, struct conn *c)
{
	switch (c->phase) {
	case PHASE_HEAD:
		if (c->between_requests) {
			worker_close(w, c); /* idle keep-alive: nothing to say */
			return;
		}
		fail_head(w, c, 408, "The request head was not received in time.");
		return;
	case PHASE_BODY:
		fail(w, c, 408, body_too_slow(w, c) ? "The request body arrived too slowly."
						    : "The request body was not received in time.");
		return;
	default:
		worker_close(w, c); /* lingering is over */
	}
}

static void end_stream(struct worker *w, struct conn *c);

void conn_on_stop(struct worker *w, struct conn *c)
{
	if (c->streaming) {
		end_stream(w, c);
		return;
	}
	if (c->phase == PHASE_HEAD && c->between_requests && !c->send_busy &&
	    c->out.len == c->out_sent && !c->producer) {
		worker_close(w, c);
		return;
	}
	/* In flight: its response says Connection: close, then we close. */
	c->x.close = true;
}

/* ---- Services for handlers (include/ringside/http_response.h) ---- */

static struct conn *conn_of(struct http_exchange *x)
{
	return (struct conn *)(void *)((char *)x - offsetof(struct conn, x));
}

static struct worker *worker_of(struct http_exchange *x)
{
	return (struct worker *)(void *)((char *)x->ctx - offsetof(struct worker, ctx));
}

char *http_scratch(struct http_exchange *x, size_t *cap)
{
	*cap = SCRATCH_SIZE;
	return worker_of(x)->scratch;
}

char *http_body_buffer(struct http_exchange *x, size_t *cap)
{
	struct conn *c = conn_of(x);
	if (!c->body_buf)
		c->body_buf = buf_pool_get(&worker_of(x)->body_pool);
	*cap = BODY_BUF_SIZE;
	return c->body_buf;
}

int http_reply_body_buffer(struct http_exchange *x, unsigned status, const char *content_type,
			   const char *extra_headers, size_t len)
{
	struct conn *c = conn_of(x);
	int r = http_reply_head(x, status, content_type, extra_headers, len);
	if (r < 0 || x->head_only || len == 0) {
		release_body(worker_of(x), c);
		return r;
	}
	c->body_len = (uint32_t)len;
	c->body_sent = 0;
	x->reply_bytes += len;
	return 0;
}

int http_reply_any(struct http_exchange *x, unsigned status, const char *content_type,
		   const char *extra_headers, const char *data, size_t len)
{
	if (http_reply(x, status, content_type, extra_headers, data, len) == 0)
		return 0;
	size_t cap;
	char *body = http_body_buffer(x, &cap);
	if (!body || len > cap)
		return http_reply_error(x, 503, NULL, "No buffer is free for this response. Retry.",
					NULL, NULL, "Retry-After: 1\r\n");
	memcpy(body, data, len);
	return http_reply_body_buffer(x, status, content_type, extra_headers, len);
}

/* ---- Event streams (Server-Sent Events) ---- */

void conn_stream_remove(struct worker *w, struct conn *c)
{
	if (!c->streaming)
		return;
	conn_count_stream_end(w, c);
	struct conn *last = w->streams[--w->stream_count];
	w->streams[c->stream_index] = last;
	last->stream_index = c->stream_index;
	c->streaming = false;
}

/* Frames one event as a chunk (HTTP/1.1) or as is (HTTP/1.0, where the
 * stream ends with the connection) and queues it; drops a subscriber that
 * is too far behind. */
static void append_event(struct worker *w, struct conn *c, const char *json, size_t len)
{
	static const char prefix[] = "data: ", suffix[] = "\n\n";
	size_t event = sizeof prefix - 1 + len + sizeof suffix - 1;
	bool chunked = c->x.version_minor == 1;
	size_t framed = event + (chunked ? 16 + 4 : 0);
	uint32_t backlog = c->out.buf ? c->out.len - c->out_sent : 0;
	if (backlog + framed > STREAM_MAX_BACKLOG) {
		log_info("event subscriber dropped: not reading", "worker=%u backlog=%u", w->id,
			 backlog);
		worker_close(w, c);
		return;
	}
	ensure_out(w, c);
	char *p = c->out.buf + c->out.len;
	if (chunked) {
		char hex[16];
		size_t n = 0;
		for (size_t v = event; v; v >>= 4)
			hex[n++] = hex_digits[v & 15];
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
	worker_send(w, c);
}

void conn_push_events(struct worker *w)
{
	size_t len = w->stream_render(w->scratch, SCRATCH_SIZE, &w->ctx);
	/* Backwards: append_event may drop (swap-remove) the current one. */
	for (uint32_t i = w->stream_count; i-- > 0;)
		if (len)
			append_event(w, w->streams[i], w->scratch, len);
}

/* Ends a stream on shutdown: the last chunk, then close. */
static void end_stream(struct worker *w, struct conn *c)
{
	conn_stream_remove(w, c);
	if (c->x.version_minor == 1) {
		ensure_out(w, c);
		if (c->out.cap - c->out.len >= 5) {
			memcpy(c->out.buf + c->out.len, "0\r\n\r\n", 5);
			c->out.len += 5;
		}
	}
	c->close_after_send = true;
	if (c->send_busy || c->out.len > c->out_sent)
		worker_send(w, c);
	else
		conn_on_sent(w, c);
}

int http_start_event_stream(struct http_exchange *x, http_event_render render)
{
	struct conn *c = conn_of(x);
	struct worker *w = worker_of(x);
	bool chunked = x->version_minor == 1;
	if (w->stream_render && w->stream_render != render)
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
	int sndbuf = STREAM_SNDBUF;
	setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	if (w->stream_count == 0)
		w->next_event_ms = w->now_ms + w->cfg->sse_interval_ms;
	w->stream_render = render;
	c->streaming = true;
	c->stream_index = w->stream_count;
	w->streams[w->stream_count++] = c;
	size_t len = render(w->scratch, SCRATCH_SIZE, &w->ctx);
	if (len)
		append_event(w, c, w->scratch, len);
	return 0;
}

/* ---- Bodies produced in pieces ---- */

/* Room a piece leaves for the chunk framing: "xxxxxxxx\r\n" before it,
 * "\r\n" and the last chunk "0\r\n\r\n" after. */
#define CHUNK_HEAD 10u
#define CHUNK_TAIL 7u

/* Appends the n bytes written at out.len (+ CHUNK_HEAD when chunked) to
 * the output, framed as a chunk when the response is chunked. */
static void append_piece(struct conn *c, size_t n, bool chunked)
{
	size_t at = c->out.len + (chunked ? CHUNK_HEAD : 0);
	if (chunked) {
		char *h = c->out.buf + c->out.len;
		/* Fixed width: the size is known only after the piece is
		 * written; leading zeros are valid (RFC 9112 7.1). */
		for (size_t i = 8, v = n; i-- > 0; v >>= 4)
			h[i] = hex_digits[v & 15];
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
static void end_body(struct worker *w, struct conn *c, bool chunked)
{
	if (chunked) {
		memcpy(c->out.buf + c->out.len, "0\r\n\r\n", 5);
		c->out.len += 5;
		c->x.reply_bytes += 5;
	}
	release_producer(w, c);
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
static void produce_piece(struct worker *w, struct conn *c)
{
	unsigned i = c->producer - 1u;
	struct producer *pr = &w->producers[i];
	bool chunked = c->x.version_minor == 1;
	ensure_out(w, c);
	size_t at = c->out.len + (chunked ? CHUNK_HEAD : 0);
	size_t room = c->out.cap - at - (chunked ? CHUNK_TAIL : 0);
	char *dst = c->out.buf + at;
	size_t n;
	bool end;
	/* A client that stops reading is dropped after this long; one that
	 * waits while the producer has nothing yet is not. */
	timer_wheel_schedule(&w->wheel, &c->timer, w->now_ms + w->cfg->keepalive_timeout_ms);
	if (!pr->gzip) {
		n = pr->produce(pr->state, &w->ctx, dst, room);
		if (n == HTTP_PRODUCE_AGAIN) {
			produce_later(w, c);
			return;
		}
		if (n > room)
			n = 0; /* a broken producer: end the body rather than overrun */
		end = n == 0;
	} else {
		struct http_gzip *g = &w->gzip_streams[i];
		ssize_t z;
		if (http_gzip_stream_owes(g)) {
			z = http_gzip_stream_more(g, dst, room);
		} else {
			size_t p = pr->produce(pr->state, &w->ctx, w->scratch, HTTP_GZIP_PIECE_MAX);
			if (p == HTTP_PRODUCE_AGAIN) {
				produce_later(w, c);
				return;
			}
			if (p > HTTP_GZIP_PIECE_MAX)
				p = 0; /* as above */
			z = http_gzip_stream_put(g, w->scratch, p, p == 0, dst, room);
		}
		if (z < 0) {
			/* zlib refused (a bug): the member cannot be completed.
			 * What was sent goes out, then the close, without a last
			 * chunk: the client sees a body cut short, not a whole one. */
			log_error("gzip stream failed", "worker=%u err=%d request_id=%s", w->id,
				  (int)-z, c->x.request_id);
			release_producer(w, c);
			c->close_after_send = true;
			return;
		}
		n = (size_t)z;
		end = http_gzip_stream_done(g);
	}
	if (n)
		append_piece(c, n, chunked);
	if (end)
		end_body(w, c, chunked);
	else if (!n)
		produce_later(w, c); /* nothing to send: never call it twice in a row */
}

int http_reply_stream(struct http_exchange *x, unsigned status, const char *content_type,
		      const char *extra_headers, unsigned flags, http_produce produce,
		      const void *state, size_t state_len)
{
	struct conn *c = conn_of(x);
	struct worker *w = worker_of(x);
	if (state_len > HTTP_STREAM_STATE_MAX)
		return -EINVAL;
	uint32_t free_mask = ~w->producers_used & ((1u << HTTP_STREAMS_MAX) - 1);
	if (!free_mask && !x->head_only)
		return -EBUSY;
	unsigned i = free_mask ? (unsigned)__builtin_ctz(free_mask) : 0;
	bool gzip = flags & HTTP_STREAM_GZIP;
	if (gzip && !x->head_only) {
		struct http_gzip *g = worker_gzip_stream(w, i);
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
	w->producers_used |= 1u << i;
	w->producers[i].produce = produce;
	w->producers[i].conn = c;
	w->producers[i].gzip = gzip;
	memcpy(w->producers[i].state, state, state_len);
	c->producer = (uint8_t)(i + 1);
	c->body_produced = true;
	produce_piece(w, c);
	return 0;
}

/*
 * The loop's pass for producers that said HTTP_PRODUCE_AGAIN in the
 * previous one (worker.c, run_loop): each is called once, and what it
 * gave is sent; one that ended with nothing left to send ends its
 * exchange as a drained send would.
 */
void conn_produce_due(struct worker *w)
{
	while (w->producers_due) {
		unsigned i = (unsigned)__builtin_ctz(w->producers_due);
		w->producers_due &= ~(1u << i);
		struct conn *c = w->producers[i].conn;
		if (c->phase == PHASE_CLOSING)
			continue; /* its producer goes with the slot */
		produce_piece(w, c);
		if (c->send_busy || c->out.len > c->out_sent)
			worker_send(w, c);
		else if (!c->producer)
			conn_on_sent(w, c);
	}
}
