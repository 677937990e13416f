/*
 * A connection's HTTP/1.1 life: heads parsed in place in the bytes the
 * host hands in (copied to the connection only when a head spans reads),
 * bodies streamed to the handler, exchanges parked while another thread
 * works for them, pipelined requests answered in order, deadlines, and
 * the lingering close after a final response. No I/O: the host moves the
 * bytes (struct server_host in ringside/server.h).
 *
 * Input invariant: `in` holds unconsumed bytes that start a request head
 * (or, while input is blocked, the whole unread tail); the parser has
 * validated exactly `parser.pos` of them. Nothing else keeps input bytes.
 */
#include "server_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "ringside/config.h"
#include "ringside/log.h"
#include "ringside/router.h"

const char server_hex_digits[16] = "0123456789abcdef";

void conn_format_request_id(struct server *s, struct http_exchange *x)
{
	/* req_ + process nonce (8 hex) + worker (2 hex) + sequence (10 hex):
	 * unique per process lifetime without any shared counter. */
	const size_t prefix = 14, total = 24;
	memcpy(x->request_id, s->request_id_prefix, prefix);
	uint64_t seq = ++s->request_seq;
	for (size_t i = total; i-- > prefix; seq >>= 4)
		x->request_id[i] = server_hex_digits[seq & 15];
	x->request_id[total] = '\0';
	x->request_id_len = (uint8_t)total;
}

static uint32_t out_room(const struct server_conn *c)
{
	return c->out.buf ? c->out.cap - c->out.len : SERVER_OUT_BUF_SIZE;
}

void conn_ensure_out(struct server *s, struct server_conn *c)
{
	if (!c->out.buf) {
		c->out.buf = buf_pool_get(&s->out_pool);
		c->out.cap = SERVER_OUT_BUF_SIZE;
		c->out.len = 0;
		c->out_sent = 0;
	}
}

static void release_in(struct server *s, struct server_conn *c)
{
	if (c->in && c->in_len == 0) {
		buf_pool_put(&s->in_pool, c->in);
		c->in = NULL;
	}
}

/* Ends the handler's side of the exchange: on_end, once. */
static void end_exchange(struct server_conn *c)
{
	if (c->handler_open) {
		c->handler_open = false;
		if (c->handler->on_end)
			c->handler->on_end(&c->x);
	}
}

void conn_set_pool_state(struct server *s, struct server_conn *c, enum pool_state st)
{
	if (c->pool_state == st)
		return;
	struct metrics_worker_view *v = &s->ctx.shard->view;
	_Atomic uint32_t *gauge[] = {NULL, &v->creating, &v->active, &v->idle};
	/* This worker is the only writer: load and store, no locked RMW. */
	if (gauge[c->pool_state])
		metrics_set_u32(gauge[c->pool_state],
				atomic_load_explicit(gauge[c->pool_state], memory_order_relaxed) - 1);
	if (gauge[st])
		metrics_set_u32(gauge[st], atomic_load_explicit(gauge[st], memory_order_relaxed) + 1);
	c->pool_state = (uint8_t)st;
}

static void release_body(struct server *s, struct server_conn *c)
{
	if (c->body_buf) {
		buf_pool_put(&s->body_pool, c->body_buf);
		c->body_buf = NULL;
	}
	c->body_len = c->body_sent = 0;
}

/* The exchange buffer goes back once nothing may use it: the exchange
 * is over and no other thread still owes a completion that writes
 * there. */
static void release_xbuf(struct server *s, struct server_conn *c)
{
	if (c->xbuf && !c->owed && !c->handler_open && c->phase != SERVER_PHASE_PARKED) {
		buf_pool_put(&s->xbuf_pool, c->xbuf);
		c->xbuf = NULL;
	}
}

/* The next request must wait: a response is still going out (a produced
 * body until it is counted: the count reads the exchange), or an earlier
 * park's completion is owed (the other thread may still write into the
 * exchange's handler_space). */
static bool output_busy(const struct server_conn *c)
{
	return c->body_buf || c->producer || c->count_pending || c->owed ||
	       out_room(c) < HTTP_RESPONSE_RESERVE;
}

/* Response bytes the host has not sent yet (in flight included). */
bool conn_unsent(const struct server_conn *c)
{
	return c->out.len > c->out_sent || c->body_len > c->body_sent;
}

/* Response bytes still to go out, or a body still to be produced. */
static bool output_pending(const struct server_conn *c)
{
	return conn_unsent(c) || c->producer;
}

void conn_send(struct server *s, struct server_conn *c)
{
	if (c->phase != SERVER_PHASE_CLOSING && conn_unsent(c))
		s->host->send(s, c);
}

/* Ends the connection: the handler gives back what it took, a stream is
 * counted with what was sent, and the host closes it. */
void conn_close(struct server *s, struct server_conn *c)
{
	if (c->phase == SERVER_PHASE_CLOSING)
		return;
	c->phase = SERVER_PHASE_CLOSING;
	timer_wheel_cancel(&s->wheel, &c->timer);
	end_exchange(c);
	stream_count_end(s, c);
	conn_set_pool_state(s, c, POOL_NONE);
	stream_remove(s, c);
	s->host->close(s, c);
}

/* The server is stopping, or about to: the worker may not have taken
 * its wake-up yet when a request that began before it completes. */
static bool stopping(const struct server *s)
{
	return s->stopping ||
	       (s->stop_requested && atomic_load_explicit(s->stop_requested, memory_order_relaxed));
}

static void begin_exchange(struct server *s, struct server_conn *c, enum http_method m, bool close)
{
	c->x = (struct http_exchange){
		.method = m,
		.head_only = m == HTTP_HEAD,
		.close = close || stopping(s),
		.date_line = s->date_line,
		.out = &c->out,
		.ctx = &s->ctx,
	};
	conn_format_request_id(s, &c->x);
	c->log_path_len = 0;
	c->body_produced = false;
	conn_ensure_out(s, c);
}

void server_conn_open(struct server *s, struct server_conn *c, unsigned listener, uint32_t slot,
		      uint16_t gen)
{
	memset(c, 0, offsetof(struct server_conn, parser));
	c->slot = slot;
	c->gen = gen;
	c->listener = (uint8_t)listener;
	c->phase = SERVER_PHASE_HEAD;
	c->between_requests = true;
	conn_set_pool_state(s, c, POOL_CREATING);
	http_parser_init(&c->parser);
	/* A connection that never sends a byte is dropped like an idle one. */
	timer_wheel_schedule(&s->wheel, &c->timer, s->now_ms + s->cfg->header_timeout_ms);
}

/* Keeps p[0, n) for later. Returns false (and closes) if it cannot: only a
 * client pipelining far ahead of reading its responses gets there. */
static bool stash(struct server *s, struct server_conn *c, const char *p, size_t n)
{
	if (!c->in)
		c->in = buf_pool_get(&s->in_pool);
	if (n > s->in_buf_size - c->in_len) {
		log_warn("connection closed: pipelined input overflow", "worker=%u slot=%u", s->id,
			 c->slot);
		conn_close(s, c);
		return false;
	}
	memmove(c->in + c->in_len, p, n); /* p may point into `in` itself */
	c->in_len += (uint32_t)n;
	return true;
}

static void start_linger(struct server *s, struct server_conn *c)
{
	c->phase = SERVER_PHASE_LINGER;
	conn_set_pool_state(s, c, POOL_NONE);
	timer_wheel_cancel(&s->wheel, &c->timer);
}

uint64_t conn_clock_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The exchange in the request metrics and the access log (an event
 * stream's line waits for its end, when its bytes are known). Its
 * duration runs from the loop pass that saw its first byte to a fresh
 * clock read (vDSO, tens of ns): the pass's own time would say 0. */
void conn_count_now(struct server *s, struct server_conn *c)
{
	const struct http_exchange *x = &c->x;
	uint64_t end_ns = conn_clock_ns();
	metrics_observe_request(s->ctx.metrics, s->ctx.shard,
				metrics_route_slot(s->ctx.metrics, x->route), x->method, x->status,
				end_ns > c->request_start_ns ? end_ns - c->request_start_ns : 0);
	if (c->streaming)
		c->log_pending = s->access_log;
	else if (s->access_log)
		access_line_write(s, c, end_ns);
}

/* Counts an answered request: every one, rejected ones too, so 400s and
 * 408s show in http_requests_total (route "unmatched" when no route was
 * found). A produced body is counted when its last byte is with the
 * kernel (stream_count_end), so that the duration covers the body:
 * counted here, a scrape that streamed for 0.37 s said 0.0001 s. An
 * event stream, which never ends, is counted now. */
static void count_request(struct server *s, struct server_conn *c)
{
	if (c->body_produced && output_pending(c)) {
		c->count_pending = true;
		return;
	}
	conn_count_now(s, c);
}

/* The envelope code for a status the server answers by itself on the
 * exchange's route; NULL: the status table's. */
static const char *route_error_code(const struct server_conn *c, unsigned status)
{
	const struct http_handler *h = c->x.route ? c->x.route->handler : NULL;
	return h && h->error_code ? h->error_code(status) : NULL;
}

/* Answers with an error and ends the connection: used when the framing can
 * no longer be trusted or a deadline passed. The exchange has begun. */
static void fail(struct server *s, struct server_conn *c, unsigned status, const char *message)
{
	conn_ensure_out(s, c);
	c->x.close = true;
	end_exchange(c);
	if (http_reply_error(&c->x, status, route_error_code(c, status), message, NULL, NULL,
			     NULL) < 0) {
		conn_close(s, c);
		return;
	}
	count_request(s, c);
	log_debug("request rejected", "worker=%u status=%u reason=\"%s\" request_id=%s", s->id,
		  status, message ? message : "", c->x.request_id);
	c->close_after_send = true;
	start_linger(s, c);
	conn_send(s, c);
}

/* The same, for a head that never completed: no exchange began. The
 * method is known if the parser got past it (else it reads OTHER). */
static void fail_head(struct server *s, struct server_conn *c, unsigned status, const char *message)
{
	begin_exchange(s, c, c->parser.req.method, true);
	fail(s, c, status, message);
}

/* The exchange is answered (or its handler failed to): counted, and the
 * connection goes on to the next request, a stream, or its close. */
static void complete_request(struct server *s, struct server_conn *c)
{
	struct http_exchange *x = &c->x;
	end_exchange(c);
	if (!x->replied)
		http_reply_error(x, 500, route_error_code(c, 500), NULL, NULL, NULL, NULL);
	if (c->body_buf && !c->body_len)
		release_body(s, c); /* borrowed, then answered otherwise */
	release_xbuf(s, c);
	if (x->count_kind && x->status >= 200 && x->status < 300 && s->answered)
		s->answered(x);
	c->requests++;
	count_request(s, c);
	log_debug("request", "worker=%u method=%s route=%s status=%u request_id=%s", s->id,
		  http_method_name(x->method), x->route ? x->route->pattern : "-", x->status,
		  x->request_id);

	c->body_kind = BODY_NONE;
	c->answer_status = 0;
	c->answer_message = NULL;
	http_parser_init(&c->parser);
	if (c->streaming) {
		/* Stays active; events come from the worker's tick. */
		c->phase = SERVER_PHASE_LINGER;
		timer_wheel_cancel(&s->wheel, &c->timer);
	} else if (x->close) {
		c->close_after_send = true;
		start_linger(s, c);
	} else {
		c->phase = SERVER_PHASE_HEAD;
		c->between_requests = true;
		conn_set_pool_state(s, c, POOL_IDLE);
		timer_wheel_schedule(&s->wheel, &c->timer, s->now_ms + s->cfg->keepalive_timeout_ms);
	}
}

/* Runs a handler call that may park (on_request, on_resume). Returns true
 * if it parked: the exchange waits for its completion or its deadline. */
static bool run_parkable(struct server_conn *c, void (*call)(struct server_conn *c, int32_t r),
			 int32_t result)
{
	c->parking = false;
	c->may_park = true;
	call(c, result);
	c->may_park = false;
	if (!c->parking)
		return false;
	c->phase = SERVER_PHASE_PARKED;
	return true;
}

static void call_on_request(struct server_conn *c, int32_t unused)
{
	(void)unused;
	c->handler->on_request(&c->x);
}

static void call_on_resume(struct server_conn *c, int32_t result)
{
	c->handler->on_resume(&c->x, result);
}

static void finish_request(struct server *s, struct server_conn *c)
{
	struct http_exchange *x = &c->x;
	conn_ensure_out(s, c);
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
		if (run_parkable(c, call_on_request, 0))
			return;
	}
	complete_request(s, c);
}

/* With --metrics-listen set, the metrics routes live only on that port
 * (seed 000: never on a public interface) and the others only on --listen. */
static bool served_here(const struct server *s, const struct server_conn *c,
			const struct http_route *r)
{
	if (!s->cfg->metrics_listen.set || (r->flags & HTTP_ROUTE_EVERY_LISTENER))
		return true;
	return !!(r->flags & HTTP_ROUTE_METRICS) == (c->listener == METRICS_LISTENER_METRICS);
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The route's parameters into the exchange, percent-decoded (RFC 3986
 * 2.1) and NUL-terminated. False if one cannot name anything: a bad
 * escape, a %00, or more bytes than HTTP_PARAM_BYTES. */
static bool take_params(struct http_exchange *x, const char *path, const struct router_match *m)
{
	size_t at = 0;
	for (unsigned i = 0; i < m->param_count; i++) {
		const char *p = path + m->params[i].off, *end = p + m->params[i].len;
		x->param_off[i] = (uint16_t)at;
		while (p < end) {
			if (at >= HTTP_PARAM_BYTES - 1)
				return false;
			if (*p != '%') {
				x->param_bytes[at++] = *p++;
				continue;
			}
			int hi = end - p > 2 ? hex_value(p[1]) : -1, lo = hi < 0 ? -1 : hex_value(p[2]);
			if (lo < 0 || (hi | lo) == 0)
				return false;
			x->param_bytes[at++] = (char)(hi << 4 | lo);
			p += 3;
		}
		x->param_len[i] = (uint16_t)(at - x->param_off[i]);
		x->param_bytes[at++] = '\0';
	}
	x->param_count = m->param_count;
	return true;
}

/* One message for a body over --max-body-bytes, however it is framed. */
static const char body_too_large[] = "The request body is larger than the server accepts.";

/* When a body must have made progress by: --body-timeout after its last
 * bytes, and, past --body-rate-grace, --body-min-rate on average since
 * its head (mod_reqtimeout's MinRate: each min_rate bytes buy a second).
 * A gap between reads alone would let a client drip one byte per
 * timeout and hold the request, and what it holds (a validator), for
 * ever. */
static uint64_t body_deadline(const struct server *s, const struct server_conn *c)
{
	uint64_t gap = s->now_ms + s->cfg->body_timeout_ms;
	uint32_t rate = s->cfg->body_min_rate;
	if (!rate)
		return gap;
	uint64_t paced = c->body_start_ms + s->cfg->body_rate_grace_ms +
			 c->body_received * 1000u / rate;
	return paced < gap ? paced : gap;
}

static bool body_too_slow(const struct server *s, const struct server_conn *c)
{
	uint32_t rate = s->cfg->body_min_rate;
	return rate && s->now_ms >= c->body_start_ms + s->cfg->body_rate_grace_ms +
					    c->body_received * 1000u / rate;
}

static void on_head(struct server *s, struct server_conn *c, const char *base)
{
	const struct http_request *req = &c->parser.req;
	const char *path = base + req->path.off;
	begin_exchange(s, c, req->method, !req->keep_alive);
	c->x.version_minor = req->version_minor;
	c->x.keep_alive_10 = req->version_minor == 0 && req->keep_alive;
	c->handler = NULL;
	c->answer_status = 0;
	c->answer_message = NULL;
	c->replied_at_head = false;
	conn_set_pool_state(s, c, POOL_ACTIVE);
	if (s->access_log) {
		/* The head's bytes are gone by the time the line is written. */
		size_t n = req->path.len < SERVER_LOG_PATH_MAX ? req->path.len : SERVER_LOG_PATH_MAX;
		memcpy(c->log_path, path, n);
		c->log_path_len = (uint8_t)n;
	}

	struct router_match m;
	switch (router_match(s->router, req->method, path, req->path.len, &m)) {
	case ROUTER_FOUND:
		if (!served_here(s, c, m.route)) {
			c->answer_status = 404;
			break;
		}
		c->x.route = m.route;
		if (!take_params(&c->x, path, &m)) {
			c->answer_status = 404; /* no resource has such a name */
			break;
		}
		c->handler = m.route->handler;
		break;
	case ROUTER_NOT_FOUND:
		c->answer_status = 404;
		break;
	case ROUTER_METHOD_NOT_ALLOWED:
		if (!served_here(s, c, m.path_route)) {
			c->answer_status = 404;
			break;
		}
		/* No handler runs; the route only labels the metrics. */
		c->x.route = m.path_route;
		c->answer_status = 405;
		c->allow = m.allow;
		break;
	case ROUTER_NOT_IMPLEMENTED:
		if (m.path_route && served_here(s, c, m.path_route))
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
		if (req->content_length > s->cfg->max_body_bytes) {
			/* Refuse before reading: the client may still be sending,
			 * which the lingering close absorbs. */
			fail(s, c, 413, body_too_large);
			return;
		}
		if (c->handler && c->handler->body_max && req->content_length > c->handler->body_max) {
			fail(s, c, 413, body_too_large);
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
	} else if (c->handler) {
		c->handler_open = true;
	}

	if (c->body_kind == BODY_NONE) {
		finish_request(s, c);
		return;
	}
	c->phase = SERVER_PHASE_BODY;
	c->body_start_ms = s->now_ms;
	c->body_received = 0;
	timer_wheel_schedule(&s->wheel, &c->timer, body_deadline(s, c));
}

/* Consumes head bytes from p; returns how many. */
static size_t feed_head(struct server *s, struct server_conn *c, const char *p, size_t n)
{
	if (c->between_requests) {
		/* The header deadline is absolute from the first byte, so a
		 * client trickling bytes (slowloris) cannot extend it. */
		c->between_requests = false;
		c->request_start_ns = s->now_ns;
		timer_wheel_schedule(&s->wheel, &c->timer, s->now_ms + s->cfg->header_timeout_ms);
	}
	int r;
	if (c->in_len == 0) {
		/* Fast path: the head is parsed where the host put it. */
		r = http_parse_head(&c->parser, &s->limits, p, n);
		if (r > 0) {
			on_head(s, c, p);
			return (size_t)r;
		}
		if (r == HTTP_PARSE_AGAIN)
			stash(s, c, p, n);
		else
			fail_head(s, c, c->parser.error_status, c->parser.error);
		return n;
	}
	/* The head spans reads: continue it in the connection's buffer. The
	 * buffer holds max_header_bytes plus an input chunk, and the parser
	 * fails past max_header_bytes, so a head never outgrows it. */
	size_t m = s->in_buf_size - c->in_len;
	if (m > n)
		m = n;
	memcpy(c->in + c->in_len, p, m);
	c->in_len += (uint32_t)m;
	r = http_parse_head(&c->parser, &s->limits, c->in, c->in_len);
	if (r > 0) {
		/* The parser had seen all earlier bytes without finding the end,
		 * so the bytes past the head all came from p. */
		size_t past_head = c->in_len - (uint32_t)r;
		on_head(s, c, c->in);
		c->in_len = 0;
		release_in(s, c);
		return m - past_head;
	}
	if (r == HTTP_PARSE_ERROR)
		fail_head(s, c, c->parser.error_status, c->parser.error);
	return m;
}

/* Appends to the body collected for a handler with body_max; a status
 * to answer if it cannot be. */
static unsigned collect_body(struct server_conn *c, const char *data, size_t len)
{
	struct http_exchange *x = &c->x;
	if (len > c->handler->body_max - x->body_len)
		return 413;
	char *buf = http_exchange_buffer(x);
	if (!buf)
		return 503;
	memcpy(buf + x->body_len, data, len);
	x->body = buf;
	x->body_len += (uint32_t)len;
	return 0;
}

static void deliver_body(struct server_conn *c, const char *data, size_t len)
{
	if (c->answer_status || c->x.discard_body || !c->handler)
		return;
	if (c->handler->body_max) {
		unsigned status = collect_body(c, data, len);
		if (status) {
			c->answer_status = (uint16_t)status;
			c->answer_message = status == 413 ? body_too_large
							  : "No buffer is free for this request. Retry.";
			return;
		}
	}
	if (c->handler->on_body)
		c->answer_status = (uint16_t)c->handler->on_body(&c->x, data, len);
}

/* Consumes body bytes from p; returns how many. */
static size_t feed_body(struct server *s, struct server_conn *c, const char *p, size_t n)
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
		ssize_t r = http_chunked_next(&c->chunked, s->cfg->max_body_bytes, p, n, &data);
		if (r < 0 || (r == 0 && !c->chunked.done)) {
			unsigned status = r < 0 ? c->chunked.error_status : 400;
			fail(s, c, status, status == 413 ? body_too_large : c->chunked.error);
			return n;
		}
		if (data.len)
			deliver_body(c, p + data.off, data.len);
		used = (size_t)r;
		done = c->chunked.done;
	}
	c->body_received += used;
	if (done)
		finish_request(s, c);
	else
		timer_wheel_schedule(&s->wheel, &c->timer, body_deadline(s, c));
	return used;
}

static void consume(struct server *s, struct server_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t used;
		if (c->phase == SERVER_PHASE_HEAD) {
			bool new_request = c->parser.pos == 0 && c->in_len == 0;
			if (new_request && output_busy(c)) {
				/* Pipelined faster than the client reads, or behind
				 * an owed completion: hold the rest until that is
				 * over (resume_input). */
				c->input_blocked = true;
				stash(s, c, p, n);
				return;
			}
			used = feed_head(s, c, p, n);
		} else if (c->phase == SERVER_PHASE_BODY) {
			used = feed_body(s, c, p, n);
		} else if (c->phase == SERVER_PHASE_PARKED) {
			/* Requests pipelined behind a parked one wait for it. */
			c->input_blocked = true;
			stash(s, c, p, n);
			return;
		} else {
			return; /* lingering or closing: the rest is discarded */
		}
		p += used;
		n -= used;
	}
}

void server_conn_input(struct server *s, struct server_conn *c, const char *data, size_t len)
{
	if (c->phase == SERVER_PHASE_CLOSING)
		return;
	if (c->input_blocked) {
		stash(s, c, data, len);
		return;
	}
	consume(s, c, data, len);
	conn_send(s, c);
}

/* The client sent its FIN with a request unfinished: that request never
 * completes. Its handler gives back what it took; nothing is answered.
 * A parked request is complete: it is still answered. */
static void abandon_partial_request(struct server *s, struct server_conn *c)
{
	if (c->phase != SERVER_PHASE_BODY)
		return; /* a partial head holds nothing; it goes with the close */
	if (!c->x.replied)
		metrics_add(&s->ctx.shard->counters[METRIC_UPLOADS_ABORTED], 1);
	end_exchange(c);
	start_linger(s, c);
}

/* Input held back (pipelined requests behind a response or a park) goes
 * on once nothing holds it any more. */
static void resume_input(struct server *s, struct server_conn *c)
{
	if (!c->input_blocked || output_busy(c) || c->phase == SERVER_PHASE_PARKED ||
	    c->phase == SERVER_PHASE_CLOSING)
		return;
	c->input_blocked = false;
	uint32_t n = c->in_len;
	c->in_len = 0; /* consume() re-stashes what it cannot use yet */
	consume(s, c, c->in, n);
	release_in(s, c);
	if (c->peer_eof && !c->input_blocked && c->phase != SERVER_PHASE_CLOSING)
		abandon_partial_request(s, c);
}

const char *server_conn_output(struct server *s, struct server_conn *c, size_t *len)
{
	(void)s;
	c->send_from_body = c->out.len == c->out_sent;
	if (!c->send_from_body) {
		*len = c->out.len - c->out_sent;
		return c->out.buf + c->out_sent;
	}
	if (c->body_len > c->body_sent) {
		*len = c->body_len - c->body_sent;
		return c->body_buf + c->body_sent;
	}
	*len = 0;
	return NULL;
}

bool server_conn_output_is_last(const struct server_conn *c, size_t len)
{
	/* After a closing answer nothing else is produced: the connection
	 * lingers, reading and dropping (start_linger), or its stream has
	 * ended (stream_end). */
	return c->close_after_send && !c->producer && c->phase != SERVER_PHASE_CLOSING &&
	       len == (size_t)(c->out.len - c->out_sent) + (c->body_len - c->body_sent);
}

void server_conn_sent(struct server *s, struct server_conn *c, size_t n)
{
	if (c->send_from_body)
		c->body_sent += (uint32_t)n;
	else
		c->out_sent += (uint32_t)n;
	if (c->phase != SERVER_PHASE_CLOSING)
		conn_on_sent(s, c);
}

/* Output went out (or there was none to wait for): the next piece of a
 * produced body, held input, the close after the last response. */
void conn_on_sent(struct server *s, struct server_conn *c)
{
	if (c->body_len && c->body_sent == c->body_len)
		release_body(s, c);
	if (c->out_sent < c->out.len) {
		/* Short send, or responses appended meanwhile: send the rest. */
		memmove(c->out.buf, c->out.buf + c->out_sent, c->out.len - c->out_sent);
		c->out.len -= c->out_sent;
		c->out_sent = 0;
	} else {
		c->out.len = c->out_sent = 0;
		if (c->producer && !stream_producer_waiting(s, c))
			stream_produce_piece(s, c);
		if (c->count_pending && !c->producer && !conn_unsent(c))
			stream_count_end(s, c); /* its last byte is with the kernel */
	}
	resume_input(s, c);
	if (c->phase == SERVER_PHASE_CLOSING)
		return;
	if (conn_unsent(c)) {
		conn_send(s, c);
		return;
	}
	if (c->producer || c->phase == SERVER_PHASE_PARKED)
		return; /* nothing to send until its producer's turn, or the completion */
	if (c->peer_eof && !c->input_blocked) {
		conn_close(s, c); /* everything asked before the FIN is answered */
		return;
	}
	if (c->close_after_send) {
		c->close_after_send = false;
		s->host->shutdown_write(s, c);
		c->phase = SERVER_PHASE_LINGER;
		timer_wheel_schedule(&s->wheel, &c->timer, s->now_ms + LINGER_MS);
	} else if (s->stopping && c->phase == SERVER_PHASE_HEAD && c->between_requests) {
		conn_close(s, c);
		return;
	}
	/* An idle connection holds no output buffer. One whose exchange is
	 * still going (a refusal answered at the head while the body is
	 * read and dropped, say) keeps it: the exchange may still answer. */
	if (c->out.buf && (c->phase == SERVER_PHASE_LINGER || c->between_requests)) {
		buf_pool_put(&s->out_pool, c->out.buf);
		c->out.buf = NULL;
	}
}

/*
 * The client shut its sending side (RFC 9112 9.6: half-close). Every
 * complete request it sent before is still answered, in order, pipelined
 * and parked ones included (conn_on_sent keeps consuming them as the
 * output drains); then the connection is closed.
 */
void server_conn_eof(struct server *s, struct server_conn *c)
{
	if (c->phase == SERVER_PHASE_CLOSING)
		return;
	c->peer_eof = true;
	if (c->input_blocked || c->phase == SERVER_PHASE_PARKED)
		return; /* conn_on_sent gets to the rest */
	abandon_partial_request(s, c);
	if (!output_pending(c))
		conn_close(s, c);
}

/* The connection broke (RST): nobody is left to answer. */
void server_conn_reset(struct server *s, struct server_conn *c)
{
	if (c->phase == SERVER_PHASE_BODY && !c->x.replied)
		metrics_add(&s->ctx.shard->counters[METRIC_UPLOADS_ABORTED], 1);
	conn_close(s, c);
}

void server_conn_abort(struct server *s, struct server_conn *c)
{
	conn_close(s, c);
}

/* What waited on a parked exchange, or on an owed completion, goes on:
 * held input, output, the close after the last answer. */
static void go_on(struct server *s, struct server_conn *c)
{
	resume_input(s, c);
	conn_send(s, c);
	if (c->phase != SERVER_PHASE_CLOSING && !output_pending(c))
		conn_on_sent(s, c);
}

/* A parked exchange is answered (resumed, or past its deadline). */
static void unpark(struct server *s, struct server_conn *c)
{
	complete_request(s, c);
	go_on(s, c);
}

static void conn_on_timer(struct server *s, struct server_conn *c)
{
	switch (c->phase) {
	case SERVER_PHASE_HEAD:
		if (c->between_requests) {
			conn_close(s, c); /* idle keep-alive: nothing to say */
			return;
		}
		fail_head(s, c, 408, "The request head was not received in time.");
		return;
	case SERVER_PHASE_BODY:
		fail(s, c, 408, body_too_slow(s, c) ? "The request body arrived too slowly."
						    : "The request body was not received in time.");
		return;
	case SERVER_PHASE_PARKED:
		/* The completion comes later, or never in time: answer now;
		 * it is dropped when it comes (c->park moved on or the phase
		 * did). */
		http_reply_error(&c->x, 504, route_error_code(c, 504), NULL, NULL, NULL,
				 "Retry-After: 1\r\n");
		unpark(s, c);
		return;
	default:
		conn_close(s, c); /* lingering is over */
	}
}

void server_conn_resume(struct server *s, struct server_conn *c, uint8_t park, int32_t result)
{
	if (c->owed)
		c->owed--;
	if (c->phase == SERVER_PHASE_PARKED && park == c->park) {
		timer_wheel_cancel(&s->wheel, &c->timer);
		conn_ensure_out(s, c);
		if (run_parkable(c, call_on_resume, result)) {
			conn_send(s, c); /* parked again: whatever it wrote meanwhile */
			return;
		}
		unpark(s, c);
		return;
	}
	/* Late (answered 504 meanwhile) or its client is gone: dropped.
	 * What waited for the owed completion may go on now. */
	release_xbuf(s, c);
	if (c->phase != SERVER_PHASE_CLOSING)
		go_on(s, c);
}

void server_conn_stop(struct server *s, struct server_conn *c)
{
	if (c->phase == SERVER_PHASE_CLOSING)
		return;
	if (c->streaming) {
		stream_end(s, c);
		return;
	}
	if (c->phase == SERVER_PHASE_HEAD && c->between_requests && !conn_unsent(c) &&
	    !c->producer) {
		conn_close(s, c);
		return;
	}
	/* In flight: its response says Connection: close, then we close. */
	c->x.close = true;
}

bool server_conn_closing(const struct server_conn *c)
{
	return c->phase == SERVER_PHASE_CLOSING;
}

bool server_conn_releasable(const struct server_conn *c)
{
	return c->phase == SERVER_PHASE_CLOSING && !c->owed;
}

void server_conn_release(struct server *s, struct server_conn *c)
{
	c->in_len = 0;
	release_in(s, c);
	release_body(s, c);
	release_xbuf(s, c);
	stream_release_producer(s, c);
	if (c->out.buf) {
		buf_pool_put(&s->out_pool, c->out.buf);
		c->out.buf = NULL;
		c->out.len = 0;
		c->out_sent = 0;
	}
	c->phase = SERVER_PHASE_FREE;
}

uint64_t server_conn_held(const struct server_conn *c)
{
	if (c->phase == SERVER_PHASE_FREE)
		return 0;
	return sizeof *c + c->in_len + (c->out.buf ? c->out.len - c->out_sent : 0) + c->body_len -
	       c->body_sent;
}

void conn_timer_fired(struct timer_node *n, void *ctx)
{
	struct server_conn *c =
		(struct server_conn *)(void *)((char *)n - offsetof(struct server_conn, timer));
	conn_on_timer(ctx, c);
}

/* ---- Services for handlers (include/ringside/http_response.h) ---- */

http_ticket http_park(struct http_exchange *x, uint32_t timeout_ms)
{
	struct server_conn *c = conn_of(x);
	struct server *s = server_of(x);
	if (!c->may_park || c->parking || x->replied || c->owed >= PARKS_OWED_MAX)
		return 0;
	if (++c->park == 0)
		c->park = 1; /* a ticket is never 0 */
	c->owed++;
	c->parking = true;
	timer_wheel_schedule(&s->wheel, &c->timer, s->now_ms + timeout_ms);
	return (http_ticket)c->slot | (http_ticket)c->gen << 32 | (http_ticket)c->park << 48;
}

void http_unpark(struct http_exchange *x)
{
	struct server_conn *c = conn_of(x);
	if (!c->parking)
		return;
	c->parking = false;
	c->owed--;
	c->park--; /* the ticket was never handed over: reuse its number */
	timer_wheel_cancel(&server_of(x)->wheel, &c->timer);
}

char *http_scratch(struct http_exchange *x, size_t *cap)
{
	*cap = SERVER_SCRATCH_SIZE;
	return server_of(x)->scratch;
}

char *http_body_buffer(struct http_exchange *x, size_t *cap)
{
	struct server_conn *c = conn_of(x);
	if (!c->body_buf)
		c->body_buf = buf_pool_get(&server_of(x)->body_pool);
	*cap = SERVER_BODY_BUF_SIZE;
	return c->body_buf;
}

char *http_exchange_buffer(struct http_exchange *x)
{
	struct server_conn *c = conn_of(x);
	if (!c->xbuf)
		c->xbuf = buf_pool_get(&server_of(x)->xbuf_pool);
	return c->xbuf;
}

int http_reply_body_buffer(struct http_exchange *x, unsigned status, const char *content_type,
			   const char *extra_headers, size_t len)
{
	struct server_conn *c = conn_of(x);
	int r = http_reply_head(x, status, content_type, extra_headers, len);
	if (r < 0 || x->head_only || len == 0) {
		release_body(server_of(x), c);
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
