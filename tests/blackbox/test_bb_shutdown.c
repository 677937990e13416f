/*
 * Black-box: graceful shutdown on SIGTERM. Idle keep-alive connections are
 * closed, a request already started is finished (with Connection: close),
 * new connections are not served, and the process exits 0 within
 * --shutdown-timeout (default 5 s) + 1 s, even if a client never finishes.
 * Each test starts its own server.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void sigterm_closes_idle_finishes_started_request_and_exits_0(void **state)
{
	struct server s;
	struct http_response *r = resp_new();

	(void)state;
	server_start(&s, NULL);

	struct conn *a = conn_open(s.port);

	conn_send_str(a, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(a, r, false);
	expect_health_ok(r);

	struct conn *b = conn_open(s.port);

	conn_send_str(b, "GET /health HTTP/1.1\r\nHo");
	h_sleep_ms(150); /* let the server read B's first half */

	int64_t t0 = h_now_ms();

	server_signal(&s, SIGTERM);

	/* A: idle, so closed soon. */
	size_t got = 0;
	enum h_peer pa = h_wait_close(a->fd, 2000, &got);

	CHECK(pa == H_PEER_EOF && got == 0,
	      "idle keep-alive connection after SIGTERM: expected EOF within "
	      "2 s, got %s (%zu bytes)", h_peer_name(pa), got);

	/* New connections: refused, or accepted and never answered. A SYN
	 * that reached a worker's listener as it closed is reset: refused
	 * too (each worker closes its own SO_REUSEPORT listener). */
	int nfd = h_try_connect(s.port);

	if (nfd < 0)
		CHECK(-nfd == ECONNREFUSED || -nfd == ECONNRESET, "connect after SIGTERM: %s",
		      strerror(-nfd));
	else
		(void)h_try_send_str(nfd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");

	/* B: its request was under way, so it is completed. */
	conn_send_str(b, "st: a\r\n\r\n");
	expect_response(b, r, false);
	expect_health_ok(r);
	CHECK(resp_connection_has(r, "close"),
	      "response finished during shutdown lacks Connection: close (got %s)",
	      resp_header(r, "Connection") ? resp_header(r, "Connection") : "(none)");
	expect_conn_closed(b, 2000);

	int left = 6000 - (int)(h_now_ms() - t0);

	CHECK(server_wait_exit(&s, left > 0 ? left : 0),
	      "server still running %lld ms after SIGTERM (shutdown-timeout 5 s + 1 s)",
	      (long long)(h_now_ms() - t0));
	CHECK(s.exit_code == 0, "exit status after SIGTERM: %d", s.exit_code);

	if (nfd >= 0) {
		enum h_peer pn = h_wait_close(nfd, 2000, &got);

		CHECK((pn == H_PEER_EOF || pn == H_PEER_RESET) && got == 0,
		      "a connection opened after SIGTERM must be refused or closed "
		      "without a response; got %s with %zu bytes", h_peer_name(pn),
		      got);
		close(nfd);
	}
	CHECK(h_try_connect(s.port) == -ECONNREFUSED,
	      "port still accepting after the process exited");
	server_stop(&s);
	conn_close(a);
	conn_close(b);
	free(r);
}

static void shutdown_timeout_bounds_exit_when_a_request_never_completes(void **state)
{
	static const char *const args[] = { "--shutdown-timeout", "1s", NULL };
	struct server s;

	(void)state;
	server_start(&s, args);

	struct conn *b = conn_open(s.port);

	conn_send_str(b, "GET /health HTTP/1.1\r\nHo");
	h_sleep_ms(150);

	int64_t t0 = h_now_ms();

	server_signal(&s, SIGTERM);
	bool exited = server_wait_exit(&s, 2500);
	int64_t took = h_now_ms() - t0;

	CHECK(exited, "with --shutdown-timeout 1s and a request that never "
	      "completes, the server was still running 2.5 s after SIGTERM");
	CHECK(s.exit_code == 0, "exit status after SIGTERM: %d", s.exit_code);
	/* It waited for the unfinished request rather than dropping it. */
	CHECK(took >= 800, "exited %lld ms after SIGTERM, before the 1 s "
	      "shutdown timeout, with a request still under way", (long long)took);

	size_t got = 0;
	enum h_peer pb = h_wait_close(b->fd, 1000, &got);

	CHECK(pb == H_PEER_EOF || pb == H_PEER_RESET,
	      "unfinished connection not closed after exit: %s", h_peer_name(pb));
	server_stop(&s);
	conn_close(b);
}

static void sigterm_on_idle_server_exits_0(void **state)
{
	struct server s;

	(void)state;
	server_start(&s, NULL);
	expect_health_on_port(s.port);

	int64_t t0 = h_now_ms();

	server_signal(&s, SIGTERM);
	CHECK(server_wait_exit(&s, 6000),
	      "idle server still running 6 s after SIGTERM");
	CHECK(s.exit_code == 0, "exit status after SIGTERM: %d", s.exit_code);
	fprintf(stderr, "idle server exited %lld ms after SIGTERM\n",
		(long long)(h_now_ms() - t0));
	server_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(sigterm_closes_idle_finishes_started_request_and_exits_0),
		BB_TEST(shutdown_timeout_bounds_exit_when_a_request_never_completes),
		BB_TEST(sigterm_on_idle_server_exits_0),
	};

	h_init();
	return H_RUN_GROUP("blackbox_shutdown", tests, NULL, NULL);
}
