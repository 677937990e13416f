/*
 * Black-box: deadlines. A slowloris client trickling its head is cut off
 * at --header-timeout while others are served; an idle keep-alive
 * connection is closed at --keepalive-timeout; a stalled body gets 408 at
 * --body-timeout. One server with all three set to 1 s.
 *
 * Windows are wide (0.8 s .. 3 s) because the server's timer wheel has a
 * tick and the test machine may be loaded; they still catch "never" and
 * "immediately".
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define EARLIEST_MS 800
#define LATEST_MS 3000

static int timeouts_setup(void **state)
{
	static const char *const args[] = { "--header-timeout", "1s",
					    "--keepalive-timeout", "1s",
					    "--body-timeout", "1s", NULL };

	return h_group_setup_with(state, args);
}

/*
 * The connection is readable (or closed): it must be either a bare close,
 * or a complete 408 envelope with Connection: close followed by a close.
 */
static void expect_408_or_close(struct conn *c, const char *what)
{
	struct http_response *r = resp_new();
	char err[2048];

	if (conn_read_response(c, r, false, 2000, err, sizeof(err)) != 0) {
		/* No complete response: acceptable only if nothing at all came
		 * and the connection is closed. */
		CHECK(c->len == 0 && (c->eof || c->err),
		      "%s: expected a 408 or a plain close, got: %s", what, err);
		free(r);
		return;
	}
	expect_error(r, 408, "REQUEST_TIMEOUT");
	CHECK(resp_connection_has(r, "close"), "%s: 408 without Connection: close",
	      what);
	expect_conn_closed(c, 2000);
	free(r);
}

static void slowloris_head_is_cut_off_at_header_timeout_while_others_served(void **state)
{
	static const char head[] =
		"GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: "
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	struct conn *c = conn_open(port_of(state));
	int64_t start = h_now_ms(), ended = 0;
	int64_t other_ms = -1;

	for (size_t i = 0; i < 45 && i < sizeof(head) - 1; i++) {
		if (h_send_some(c->fd, head + i, 1, MSG_NOSIGNAL) != 1) {
			ended = h_now_ms(); /* EPIPE / ECONNRESET: closed */
			break;
		}
		if (h_poll_in(c->fd, 100) > 0) {
			ended = h_now_ms();
			break;
		}
		if (i == 3) {
			/* Mid-trickle, another client is served at once. */
			int64_t t0 = h_now_ms();

			expect_health_on_port(port_of(state));
			other_ms = h_now_ms() - t0;
		}
	}
	CHECK(ended != 0, "a head trickled one byte per 100 ms for %lld ms was "
	      "neither answered nor closed (--header-timeout 1s)",
	      (long long)(h_now_ms() - start));
	int64_t elapsed = ended - start;

	CHECK(elapsed >= EARLIEST_MS && elapsed <= LATEST_MS,
	      "trickling client cut off after %lld ms, expected %d..%d ms",
	      (long long)elapsed, EARLIEST_MS, LATEST_MS);
	expect_408_or_close(c, "slowloris");
	CHECK(other_ms >= 0 && other_ms < 500,
	      "GET /health on another connection during the trickle took %lld ms",
	      (long long)other_ms);
	conn_close(c);
}

static void connection_that_never_sends_is_closed_within_timeouts(void **state)
{
	struct conn *c = conn_open(port_of(state));
	int64_t start = h_now_ms();
	size_t got = 0;
	enum h_peer p = h_wait_close(c->fd, 4000, &got);
	int64_t elapsed = h_now_ms() - start;

	/* Nothing sent, so a 408 is allowed (RFC 9110 section 15.5.9) as is a
	 * plain close. */
	CHECK(p == H_PEER_EOF || p == H_PEER_RESET,
	      "a connection that sent nothing was not closed within 4 s: %s "
	      "(%zu bytes)", h_peer_name(p), got);
	CHECK(elapsed >= EARLIEST_MS && elapsed <= LATEST_MS,
	      "silent connection closed after %lld ms, expected %d..%d ms",
	      (long long)elapsed, EARLIEST_MS, LATEST_MS);
	conn_close(c);
}

static void idle_keepalive_connection_is_closed_at_keepalive_timeout(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);

	int64_t start = h_now_ms();
	size_t got = 0;
	enum h_peer p = h_wait_close(c->fd, 4000, &got);
	int64_t elapsed = h_now_ms() - start;

	CHECK((p == H_PEER_EOF || p == H_PEER_RESET) && got == 0,
	      "idle keep-alive connection (--keepalive-timeout 1s): expected a "
	      "close without bytes within 4 s, got %s with %zu bytes",
	      h_peer_name(p), got);
	CHECK(elapsed >= EARLIEST_MS && elapsed <= LATEST_MS,
	      "idle keep-alive connection closed after %lld ms, expected %d..%d ms",
	      (long long)elapsed, EARLIEST_MS, LATEST_MS);
	free(r);
	conn_close(c);
}

static void busy_connection_outlives_the_timeouts(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();
	int64_t start = h_now_ms();

	/* A request every 300 ms for 2.4 s: each deadline is per request and
	 * per idle period, not per connection. */
	for (int i = 0; i < 8; i++) {
		conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
		expect_response(c, r, false);
		expect_health_ok(r);
		h_sleep_ms(300);
	}
	CHECK(h_now_ms() - start >= 2000, "loop too fast");
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void stalled_body_gets_408_or_close_at_body_timeout(void **state)
{
	struct conn *c = conn_open(port_of(state));

	conn_send_str(c, "POST /health HTTP/1.1\r\nHost: a\r\n"
			 "Content-Length: 100\r\n\r\n0123456789");
	int64_t start = h_now_ms();
	int pr = h_poll_in(c->fd, 4000);
	int64_t elapsed = h_now_ms() - start;

	CHECK(pr > 0, "a body stalled after 10 of 100 bytes got no answer and no "
	      "close within 4 s (--body-timeout 1s)");
	CHECK(elapsed >= EARLIEST_MS && elapsed <= LATEST_MS,
	      "stalled body answered/closed after %lld ms, expected %d..%d ms",
	      (long long)elapsed, EARLIEST_MS, LATEST_MS);
	expect_408_or_close(c, "stalled body");
	conn_close(c);
}

static void server_still_serves_after_timeouts(void **state)
{
	expect_health_on_port(port_of(state));
}

/*
 * A body dripped a byte at a time held its request (and, on ingest, a
 * validator) for ever: --body-timeout only bounds the gap between reads.
 * With --body-min-rate 100 after --body-rate-grace 1s, a byte every
 * 300 ms is answered 408 "too slowly" soon after the grace, while a
 * client sending faster than the rate, as slowly as it likes, is served.
 */
static void dripping_body_is_cut_off_at_the_minimum_rate(void **state)
{
	static const char *const args[] = {"--body-timeout", "30s", "--body-rate-grace", "1s",
					   "--body-min-rate", "100", NULL};
	struct server s;
	(void)state;
	server_start(&s, args);
	struct conn *c = conn_open(s.port);
	conn_send_str(c, "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
	int64_t start = h_now_ms(), ended = 0;
	for (int i = 0; i < 40 && !ended; i++) {
		if (h_send_some(c->fd, "x", 1, MSG_NOSIGNAL) != 1)
			ended = h_now_ms();
		if (!ended && h_poll_in(c->fd, 300) > 0)
			ended = h_now_ms();
	}
	CHECK(ended, "a body dripped at 3 bytes/s was still open after 12 s");
	int64_t elapsed = ended - start;
	CHECK(elapsed >= EARLIEST_MS && elapsed <= LATEST_MS,
	      "dripping body cut off after %lld ms, expected %d..%d ms", (long long)elapsed,
	      EARLIEST_MS, LATEST_MS);
	struct http_response *r = resp_new();
	expect_response(c, r, false);
	expect_error(r, 408, "REQUEST_TIMEOUT");
	char msg[256];
	CHECK(json_get_string(r->body, "message", msg, sizeof msg) && strstr(msg, "too slowly"),
	      "408 says why: %s", r->body);
	conn_close(c);

	/* 200 bytes/s for 3 s (twice the rate): slow, but served. */
	c = conn_open(s.port);
	conn_send_str(c, "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 600\r\n\r\n");
	char piece[40];
	memset(piece, 'y', sizeof piece);
	for (int i = 0; i < 15; i++) {
		conn_send(c, piece, sizeof piece);
		h_sleep_ms(200);
	}
	expect_response(c, r, false);
	expect_error(r, 405, "METHOD_NOT_ALLOWED");
	free(r);
	conn_close(c);
	CHECK(server_stop(&s) == 0, "clean exit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(slowloris_head_is_cut_off_at_header_timeout_while_others_served),
		BB_TEST(dripping_body_is_cut_off_at_the_minimum_rate),
		BB_TEST(connection_that_never_sends_is_closed_within_timeouts),
		BB_TEST(idle_keepalive_connection_is_closed_at_keepalive_timeout),
		BB_TEST(busy_connection_outlives_the_timeouts),
		BB_TEST(stalled_body_gets_408_or_close_at_body_timeout),
		BB_TEST(server_still_serves_after_timeouts),
	};

	h_init();
	return H_RUN_GROUP("blackbox_timeouts", tests, timeouts_setup,
			   h_group_teardown);
}
