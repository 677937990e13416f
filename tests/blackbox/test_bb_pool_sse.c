/*
 * Black-box: GET /metrics/api/metrics/sse (seed 004), a chunked
 * text/event-stream with one `data: {pool JSON}\n\n` event per chunk: the
 * first at once, then one per --sse-interval; 1000 concurrent subscribers;
 * a subscriber that stops reading is dropped (bounded backlog) without
 * hurting a reading one; SIGTERM ends every stream with the last chunk.
 * Each test starts its own server. Needs RLIMIT_NOFILE >= 2200 (hard);
 * skips (77) below.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define SSE_REQ "GET /metrics/api/metrics/sse HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
#define NEED_FDS 2200

/*
 * Checks one chunk is exactly one SSE event `data: <JSON>\n\n` carrying the
 * pool JSON. Returns its timestamp (Unix ms) and pool.active, or -1 with
 * the reason in why.
 */
static int64_t check_event(const char *chunk, size_t len, double *active,
			   char *why, size_t wcap)
{
	char jwhy[160], ts[64];
	double size;

	if (len < 8 || strncmp(chunk, "data: ", 6) != 0) {
		snprintf(why, wcap, "chunk does not start with \"data: \": \"%.200s\"", chunk);
		return -1;
	}
	if (chunk[len - 2] != '\n' || chunk[len - 1] != '\n' ||
	    memchr(chunk, '\n', len - 2)) {
		snprintf(why, wcap, "chunk is not one line `data: ...` followed by "
			 "a blank line: \"%.300s\"", chunk);
		return -1;
	}
	if (!json_valid(chunk + 6, len - 8, jwhy, sizeof(jwhy))) {
		snprintf(why, wcap, "event data is not JSON (%s): %.300s", jwhy,
			 chunk + 6);
		return -1;
	}
	if (!json_get_number(chunk, "size", &size, NULL, 0) ||
	    !json_get_number(chunk, "active", active, NULL, 0) ||
	    !json_get_string(chunk, "timestamp", ts, sizeof(ts))) {
		snprintf(why, wcap, "event lacks pool.size, pool.active or "
			 "timestamp: %.300s", chunk + 6);
		return -1;
	}
	int64_t t = h_parse_iso_ms(ts);

	if (t < 0)
		snprintf(why, wcap, "event timestamp \"%s\" is not ISO 8601 with ms", ts);
	return t;
}

/* Reads and checks the head of an SSE response. */
static void expect_sse_head(struct conn *c, struct http_response *r)
{
	char err[2048];

	if (conn_read_response(c, r, true, 5000, err, sizeof(err)) != 0)
		H_FAIL("GET /metrics/api/metrics/sse: %s", err);
	CHECK(r->status == 200, "GET /metrics/api/metrics/sse: expected 200, got \"%s\"",
	      r->raw_status_line);
	CHECK(r->minor == 1, "status line %s", r->raw_status_line);
	CHECK(resp_content_type_is(r, "text/event-stream"),
	      "SSE: expected Content-Type: text/event-stream, got %s",
	      resp_header(r, "Content-Type") ? resp_header(r, "Content-Type") : "(none)");
	expect_header(r, "Cache-Control", "no-cache", true);
	expect_header(r, "Transfer-Encoding", "chunked", true);
	CHECK(!resp_header(r, "Content-Length"),
	      "SSE: Content-Length %s with Transfer-Encoding: chunked (RFC 9112 "
	      "section 6.2 forbids both)", resp_header(r, "Content-Length"));
	CHECK(resp_header_count(r, "Date") == 1, "SSE: expected one Date field");
}

/* Reads one event chunk; fails the test on anything else. */
static int64_t read_event(struct conn *c, char *buf, size_t cap, int timeout_ms,
			  double *active, const char *what)
{
	char err[2048], why[512];
	long n = conn_read_chunk(c, buf, cap, timeout_ms, err, sizeof(err));

	if (n < 0)
		H_FAIL("%s: %s", what, err);
	CHECK(n > 0, "%s: the stream ended (last chunk) unexpectedly", what);
	CHECK((size_t)n < cap, "%s: a %ld-byte event", what, n);
	int64_t t = check_event(buf, (size_t)n, active, why, sizeof(why));

	CHECK(t >= 0, "%s: %s", what, why);
	return t;
}

static void sse_sends_event_stream_headers_first_event_at_once_then_per_interval(void **state)
{
	struct server s;
	struct http_response *r = resp_new();
	char ev[4096];
	double active;

	(void)state;
	server_start(&s, (const char *const[]){ "--sse-interval", "1s", NULL });
	struct conn *c = conn_open(s.port);
	int64_t t0 = h_now_ms();

	conn_send_str(c, SSE_REQ);
	expect_sse_head(c, r);
	int64_t ts1 = read_event(c, ev, sizeof(ev), 2000, &active, "first SSE event");
	int64_t t1 = h_now_ms();

	CHECK(t1 - t0 <= 300, "with --sse-interval 1s the first event must come "
	      "at once on subscribe; it took %lld ms", (long long)(t1 - t0));
	CHECK(llabs(ts1 - h_wall_ms()) <= 2000, "event timestamp %lld ms off the "
	      "test's clock", (long long)(ts1 - h_wall_ms()));
	CHECK(active >= 1, "the subscriber's own stream is active; event says "
	      "active %g: %s", active, ev);

	/* The open stream counts as active in the pool view. */
	int64_t deadline = h_now_ms() + 1000;
	double a = 0;

	for (int i = 0; i < 20; i++) {
		h_exchange(s.port, "GET /metrics/api/metrics/ HTTP/1.1\r\nHost: t\r\n\r\n",
			   false, r);
		expect_status(r, 200, false);
		CHECK(json_get_number(r->body, "active", &a, NULL, 0),
		      "no pool.active in %s", r->body);
		if (a == 2 || h_now_ms() > deadline)
			break;
		h_sleep_ms(50);
	}
	CHECK(a == 2, "with one SSE subscriber, GET /metrics/api/metrics/ must "
	      "report active 2 (the stream and itself), got %s", r->body);

	int64_t ts2 = read_event(c, ev, sizeof(ev), 3000, &active, "second SSE event");
	int64_t t2 = h_now_ms();

	CHECK(t2 - t1 >= 700 && t2 - t1 <= 1400,
	      "--sse-interval 1s: second event %lld ms after the first",
	      (long long)(t2 - t1));
	CHECK(ts2 - ts1 >= 700 && ts2 - ts1 <= 1400,
	      "--sse-interval 1s: event timestamps %lld ms apart",
	      (long long)(ts2 - ts1));
	conn_close(c);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

/* ---- 1000 subscribers ---- */

#define NSUB 1000
#define WANT_EVENTS 5

struct sub {
	int fd;
	bool head_done, failed;
	int64_t t_sub, t_fifth;
	int events;
	int64_t ts[WANT_EVENTS + 3];
	size_t len;
	char why[600];
	char buf[8192];
};

static void sub_fail(struct sub *s, const char *fmt, const char *detail)
{
	if (s->failed)
		return;
	s->failed = true;
	snprintf(s->why, sizeof(s->why), fmt, detail);
}

/* Consumes what is buffered: the head, then whole chunks. */
static void sub_parse(struct sub *s)
{
	for (int guard = 0; guard < 1000 && !s->failed; guard++) {
		s->buf[s->len] = '\0';
		if (!s->head_done) {
			char *e = strstr(s->buf, "\r\n\r\n");

			if (!e)
				return;
			if (strncmp(s->buf, "HTTP/1.1 200 ", 13) != 0) {
				sub_fail(s, "status line \"%.60s\"", s->buf);
				return;
			}
			*e = '\0';
			if (!strcasestr(s->buf, "\r\nTransfer-Encoding: chunked")) {
				sub_fail(s, "head without Transfer-Encoding: chunked: %.200s",
					 s->buf);
				return;
			}
			size_t hl = (size_t)(e - s->buf) + 4;

			memmove(s->buf, s->buf + hl, s->len - hl);
			s->len -= hl;
			s->head_done = true;
			continue;
		}
		char *eol = strstr(s->buf, "\r\n");

		if (!eol)
			return;
		char *end;
		unsigned long size = strtoul(s->buf, &end, 16);

		if (end == s->buf || (end != eol && *end != ';')) {
			sub_fail(s, "bad chunk-size line \"%.40s\"", s->buf);
			return;
		}
		if (size == 0) {
			sub_fail(s, "stream ended (last chunk)%s", "");
			return;
		}
		size_t hl = (size_t)(eol - s->buf) + 2;

		if (size + hl + 2 > sizeof(s->buf) - 1) {
			sub_fail(s, "chunk too large (%.40s)", s->buf);
			return;
		}
		if (s->len < hl + size + 2)
			return;
		char *data = s->buf + hl;
		char saved = data[size], why[512];
		double active;

		data[size] = '\0';
		int64_t t = check_event(data, size, &active, why, sizeof(why));

		data[size] = saved;
		if (t < 0) {
			sub_fail(s, "%.500s", why);
			return;
		}
		if (data[size] != '\r' || data[size + 1] != '\n') {
			sub_fail(s, "chunk data not followed by CRLF%s", "");
			return;
		}
		if (s->events < WANT_EVENTS + 3)
			s->ts[s->events] = t;
		s->events++;
		if (s->events == WANT_EVENTS)
			s->t_fifth = h_now_ms();
		memmove(s->buf, s->buf + hl + size + 2, s->len - hl - size - 2);
		s->len -= hl + size + 2;
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void thousand_sse_subscribers_each_get_events_200ms_apart(void **state)
{
	struct server s;
	struct sub *subs = calloc(NSUB, sizeof(*subs));
	struct pollfd *pfd = calloc(NSUB, sizeof(*pfd));

	(void)state;
	CHECK(subs && pfd, "out of memory");
	server_start(&s, (const char *const[]){ "--sse-interval", "200ms", NULL });
	int64_t t_start = h_now_ms(), last_sub = 0;

	/* Connected first (over TLS, handshakes and all: one thread's 1 000
	 * handshakes take seconds, which would make the first subscribers'
	 * events look late), then subscribed. */
	for (int i = 0; i < NSUB; i++) {
		subs[i].fd = h_try_connect(s.port);
		int e = subs[i].fd < 0 ? subs[i].fd : h_handshake(subs[i].fd);

		if (e < 0) {
			for (int j = 0; j <= i; j++)
				if (subs[j].fd >= 0)
					h_close(subs[j].fd);
			H_FAIL("subscriber %d of %d: connect: %s", i, NSUB, strerror(-e));
		}
	}
	for (int i = 0; i < NSUB; i++) {
		subs[i].t_sub = h_now_ms();
		int e = h_try_send_str(subs[i].fd, SSE_REQ);

		if (e != 0)
			sub_fail(&subs[i], "send: %s", strerror(-e));
		last_sub = subs[i].t_sub;
	}
	int64_t deadline = last_sub + 1500;

	for (int round = 0; round < 100000 && h_now_ms() < deadline; round++) {
		int n = 0, waiting = 0;

		for (int i = 0; i < NSUB; i++) {
			if (subs[i].failed || subs[i].events >= WANT_EVENTS)
				continue;
			waiting++;
			pfd[n].fd = subs[i].fd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			n++;
		}
		if (!waiting)
			break;
		int pr = poll(pfd, (nfds_t)n, 50);

		if (pr <= 0)
			continue;
		for (int k = 0, i = 0; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			while (subs[i].fd != pfd[k].fd)
				i++;
			struct sub *x = &subs[i];
			ssize_t got = h_recv(x->fd, x->buf + x->len,
					   sizeof(x->buf) - 1 - x->len, MSG_DONTWAIT);

			if (got == 0)
				sub_fail(x, "server closed the stream%s", "");
			else if (got < 0 && errno != EAGAIN && errno != EINTR)
				sub_fail(x, "recv: %s", strerror(errno));
			else if (got > 0) {
				x->len += (size_t)got;
				sub_parse(x);
			}
		}
	}
	int64_t took = h_now_ms() - t_start;
	int failed = 0, few = 0, late = 0, spacing_bad = 0;
	char first[700] = "";
	int64_t *gaps = calloc(NSUB * 3, sizeof(int64_t)), med_all = 0;
	size_t ngaps = 0;

	CHECK(gaps != NULL, "out of memory");
	for (int i = 0; i < NSUB; i++) {
		struct sub *x = &subs[i];

		h_close(x->fd);
		if (x->failed) {
			if (!failed++ && !first[0])
				snprintf(first, sizeof(first), "subscriber %d: %s", i, x->why);
			continue;
		}
		if (x->events < WANT_EVENTS) {
			if (!few++ && !first[0])
				snprintf(first, sizeof(first), "subscriber %d got %d events "
					 "in %lld ms", i, x->events,
					 (long long)(h_now_ms() - x->t_sub));
			continue;
		}
		if (x->t_fifth - x->t_sub > 1400) {
			if (!late++ && !first[0])
				snprintf(first, sizeof(first), "subscriber %d: 5th event "
					 "after %lld ms", i,
					 (long long)(x->t_fifth - x->t_sub));
		}
		/* Gaps after the first (immediate) event: 2-3, 3-4, 4-5. */
		int64_t g[3];

		for (int k = 0; k < 3; k++) {
			g[k] = x->ts[k + 2] - x->ts[k + 1];
			gaps[ngaps++] = g[k];
		}
		qsort(g, 3, sizeof(g[0]), cmp_i64);
		if (g[1] < 100 || g[1] > 300) {
			if (!spacing_bad++ && !first[0])
				snprintf(first, sizeof(first), "subscriber %d: event "
					 "timestamps %lld %lld %lld %lld %lld (median gap "
					 "%lld ms)", i, (long long)x->ts[0],
					 (long long)x->ts[1], (long long)x->ts[2],
					 (long long)x->ts[3], (long long)x->ts[4],
					 (long long)g[1]);
		}
	}
	if (ngaps) {
		qsort(gaps, ngaps, sizeof(gaps[0]), cmp_i64);
		med_all = gaps[ngaps / 2];
	}
	fprintf(stderr, "%d subscribers: %lld ms; median gap %lld ms over %zu gaps\n",
		NSUB, (long long)took, (long long)med_all, ngaps);
	free(gaps);
	free(subs);
	free(pfd);
	CHECK(failed + few + late + spacing_bad == 0,
	      "--sse-interval 200ms, %d subscribers: %d broken streams, %d with "
	      "fewer than %d events, %d whose 5th event came after 1.4 s, %d with "
	      "a median gap outside 200 +- 100 ms; first: %s", NSUB, failed, few,
	      WANT_EVENTS, late, spacing_bad, first);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
}

/* ---- A subscriber that stops reading ---- */

static void stalled_sse_subscriber_is_closed_while_a_reader_keeps_receiving(void **state)
{
	struct server s;
	struct http_response *r = resp_new();
	char ev[4096], err[2048];
	double active = 0;

	(void)state;
	server_start(&s, (const char *const[]){ "--sse-interval", "10ms", NULL });

	/* The stalled one: a small receive buffer, set before connect, and
	 * never a read. */
	int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rcv = 4096;

	CHECK(sfd >= 0, "socket: %s", strerror(errno));
	setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(s.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	CHECK(connect(sfd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
	      strerror(errno));
	if (h_tls_port(s.port))
		CHECK(h_tls_attach(sfd) == 0, "TLS client");
	CHECK(h_try_send_str(sfd, SSE_REQ) == 0, "send");

	struct conn *rd = conn_open(s.port);

	conn_send_str(rd, SSE_REQ);
	expect_sse_head(rd, r);

	int64_t t0 = h_now_ms(), last = t0, max_gap = 0, dropped_at = -1;
	long events = 0;

	/* Until the reader's events show only itself active (the stalled
	 * stream dropped), at most 30 s. */
	for (int i = 0; i < 1000000 && h_now_ms() - t0 < 30000; i++) {
		long n = conn_read_chunk(rd, ev, sizeof(ev), 2000, err, sizeof(err));

		if (n <= 0) {
			h_close(sfd);
			H_FAIL("the reading subscriber stopped receiving after %ld "
			       "events, %lld ms in: %s", events,
			       (long long)(h_now_ms() - t0), n == 0 ? "last chunk" : err);
		}
		int64_t now = h_now_ms();

		if (now - last > max_gap)
			max_gap = now - last;
		last = now;
		events++;
		char why[512];

		CHECK(check_event(ev, (size_t)n, &active, why, sizeof(why)) >= 0,
		      "reader event %ld: %s", events, why);
		if (active <= 1 && now - t0 > 200) {
			dropped_at = now - t0;
			break;
		}
	}

	/* Drain the stalled socket: a closed stream ends in EOF (or RST)
	 * once its queued bytes are read; an open one keeps producing. For
	 * up to 8 s: the server's kernel, facing a zero window, probes with
	 * backoff (3.2 s, then 6.4 s), and a reader that frees its buffer in
	 * small reads (OpenSSL's: a record header, then its body) may not
	 * announce the open window, leaving the rest to the next probe. */
	int64_t d0 = h_now_ms();
	size_t drained = 0;
	bool closed = false;
	char buf[65536];

	for (int i = 0; i < 1000000 && h_now_ms() - d0 < 8000; i++) {
		if (h_poll_in(sfd, 100) <= 0)
			continue;
		ssize_t got = h_recv(sfd, buf, sizeof(buf), MSG_DONTWAIT);

		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
			closed = true;
			break;
		}
		if (got > 0)
			drained += (size_t)got;
	}
	h_close(sfd);
	fprintf(stderr, "reader: %ld events, longest gap %lld ms; stalled stream "
		"%s after %lld ms, %zu bytes were queued for it\n", events,
		(long long)max_gap, closed ? "closed" : "still open",
		(long long)dropped_at, drained);
	CHECK(closed, "a subscriber that never reads (SO_RCVBUF 4096) with "
	      "--sse-interval 10ms was not closed within 30 s: reading it "
	      "afterwards gave %zu bytes and no end of stream%s", drained,
	      dropped_at >= 0 ? " (although pool.active had dropped to 1)" : "");
	CHECK(dropped_at >= 0, "the stalled subscriber was closed, but the "
	      "reader's events never showed pool.active 1 within 30 s "
	      "(last %g)", active);
	CHECK(drained <= (16u << 20), "%zu bytes were queued for a stalled "
	      "subscriber: the backlog is not bounded", drained);
	CHECK(max_gap <= 1000, "the reading subscriber waited %lld ms between "
	      "events (interval 10 ms)", (long long)max_gap);

	/* The reader still receives. */
	read_event(rd, ev, sizeof(ev), 2000, &active, "reader after the drop");
	conn_close(rd);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

/* ---- Shutdown ---- */

#define NSHUT 3

static void sigterm_ends_each_sse_stream_with_the_last_chunk_and_exits_0(void **state)
{
	struct server s;
	struct http_response *r = resp_new();
	struct conn *c[NSHUT];
	char ev[4096], err[2048];
	double active;

	(void)state;
	server_start(&s, (const char *const[]){ "--sse-interval", "200ms",
						"--shutdown-timeout", "3s", NULL });
	for (int i = 0; i < NSHUT; i++) {
		c[i] = conn_open(s.port);
		conn_send_str(c[i], SSE_REQ);
		expect_sse_head(c[i], r);
		read_event(c[i], ev, sizeof(ev), 2000, &active, "first event");
	}
	int64_t t0 = h_now_ms();

	server_signal(&s, SIGTERM);
	for (int i = 0; i < NSHUT; i++) {
		long n = 1;

		for (int k = 0; k < 100 && n > 0; k++) {
			int left = 4000 - (int)(h_now_ms() - t0);

			n = conn_read_chunk(c[i], ev, sizeof(ev), left > 0 ? left : 1, err,
					    sizeof(err));
		}
		CHECK(n == 0, "subscriber %d after SIGTERM: expected the stream to "
		      "end with the last chunk 0\\r\\n\\r\\n within 4 s; %s", i,
		      n < 0 ? err : "more than 100 events");
		expect_conn_closed(c[i], 2000);
		conn_close(c[i]);
	}
	int left = 4000 - (int)(h_now_ms() - t0);

	CHECK(server_wait_exit(&s, left > 0 ? left : 0),
	      "server still running %lld ms after SIGTERM with SSE subscribers "
	      "(--shutdown-timeout 3s)", (long long)(h_now_ms() - t0));
	CHECK(s.exit_code == 0, "exit status after SIGTERM: %d", s.exit_code);
	fprintf(stderr, "streams ended and server exited %lld ms after SIGTERM\n",
		(long long)(h_now_ms() - t0));
	server_stop(&s);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(sse_sends_event_stream_headers_first_event_at_once_then_per_interval),
		BB_TEST(thousand_sse_subscribers_each_get_events_200ms_apart),
		BB_TEST(stalled_sse_subscriber_is_closed_while_a_reader_keeps_receiving),
		BB_TEST(sigterm_ends_each_sse_stream_with_the_last_chunk_and_exits_0),
	};

	h_init();
	h_need_fds(NEED_FDS);
	return H_RUN_GROUP("blackbox_pool_sse", tests, NULL, NULL);
}
