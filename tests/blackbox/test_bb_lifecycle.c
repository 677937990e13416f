/*
 * Black-box: what a daemon's life asks of it beyond single requests. A
 * client that half-closes after pipelining still gets every answer;
 * SIGHUP (systemd's reload, logrotate) never kills it; it listens on
 * IPv6 and dual-stack [::]; with port 0 it logs the port it got.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Counts the HTTP/1.1 status lines starting responses in buf[0, n). */
static int count_responses(const char *buf, size_t n, int status)
{
	char line[32];
	int k = 0;
	snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
	for (const char *p = buf; (p = memmem(p, (size_t)(buf + n - p), line, strlen(line)));
	     p++)
		k++;
	return k;
}

/* Reads fd until EOF (true) or 20 s, into buf; *n bytes. */
static bool read_to_eof(int fd, char *buf, size_t cap, size_t *n)
{
	int64_t deadline = h_now_ms() + 20000;
	*n = 0;
	while (h_now_ms() < deadline && *n < cap) {
		ssize_t r = recv(fd, buf + *n, cap - *n, 0);
		if (r == 0)
			return true;
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return false;
		if (r > 0)
			*n += (size_t)r;
	}
	return false;
}

/*
 * 60 pipelined GET /metrics in one write, then shutdown(SHUT_WR): 2 to 54
 * answers came back, then EOF (the requests still waiting for the output
 * to drain were dropped). RFC 9112 9.6: the client only closed its
 * sending side. Every request before the FIN is answered in order.
 */
static void half_close_after_pipelining_answers_every_request(void **state)
{
	h_plain_only("TCP half-close: TLS 1.2 has none (a close_notify asks the peer to close "
		     "at once, discarding pending writes, RFC 5246 7.2.1; a bare FIN is a "
		     "truncation)");
	char *reqs = malloc(60 * 64);
	size_t len = 0;
	CHECK(reqs != NULL, "out of memory");
	for (int i = 0; i < 60; i++)
		len += (size_t)sprintf(reqs + len, "GET /metrics?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
	size_t cap = 64u << 20;
	char *got = malloc(cap);
	CHECK(got != NULL, "out of memory");
	for (int round = 0; round < 5; round++) {
		struct conn *c = conn_open(port_of(state));
		conn_send(c, reqs, len);
		CHECK(shutdown(c->fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
		size_t n;
		bool closed = read_to_eof(c->fd, got, cap, &n);
		CHECK(closed, "round %d: no EOF after %zu bytes", round, n);
		int answers = count_responses(got, n, 200);
		CHECK(answers == 60, "round %d: %d of 60 pipelined requests answered before EOF",
		      round, answers);
		conn_close(c);
	}
	/* A request cut short by the FIN is dropped; those before it are not. */
	struct conn *c = conn_open(port_of(state));
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
			 "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
			 "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
	CHECK(shutdown(c->fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
	size_t n;
	bool closed = read_to_eof(c->fd, got, cap, &n);
	CHECK(closed && count_responses(got, n, 200) == 2 && count_responses(got, n, 405) == 0,
	      "two answers then EOF, the partial POST dropped: %.*s", (int)(n < 2000 ? n : 2000),
	      got);
	conn_close(c);
	free(got);
	free(reqs);
}

/* A body the client abandons is counted, and holds nothing afterwards. */
static void abandoned_upload_is_counted(void **state)
{
	struct conn *c = conn_open(port_of(state));
	conn_send_str(c, "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab");
	h_sleep_ms(50);
	conn_close_rst(c);
	c = conn_open(port_of(state));
	conn_send_str(c, "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab");
	CHECK(h_shutdown_wr(c->fd) == 0, "shutdown: %s", strerror(errno));
	CHECK(h_wait_close(c->fd, 3000, NULL) == H_PEER_EOF, "closed after the FIN");
	conn_close(c);
	struct http_response *r = resp_new();
	double v = 0;
	for (int i = 0; i < 50; i++) {
		h_exchange(port_of(state), "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
		if (expo_find(r->body, "ringside_http_uploads_aborted_total", &v) && v >= 2)
			break;
		h_sleep_ms(20);
	}
	CHECK(v >= 2, "ringside_http_uploads_aborted_total is %g after two abandoned bodies", v);
	free(r);
}

/* SIGHUP killed the server at once; systemd sends it on reload. */
static void sighup_does_not_kill_the_server(void **state)
{
	struct server *s = h_group_server();
	(void)state;
	for (int i = 0; i < 3; i++) {
		server_signal(s, SIGHUP);
		h_sleep_ms(100);
		CHECK(!server_wait_exit(s, 10), "the server exited on SIGHUP (status %d)",
		      s->exit_code);
		expect_health_on_port(s->port);
	}
}

/* A connected socket to [addr]:port of the given family, or -errno. */
static int connect_to(int family, const char *addr, uint16_t port)
{
	struct sockaddr_storage a = {0};
	socklen_t len;
	if (family == AF_INET6) {
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a;
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &v6->sin6_addr);
		len = sizeof *v6;
	} else {
		struct sockaddr_in *v4 = (struct sockaddr_in *)&a;
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		inet_pton(AF_INET, addr, &v4->sin_addr);
		len = sizeof *v4;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&a, len) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (h_tls_port(port)) {
		int e = h_tls_attach(fd);
		if (e) {
			close(fd);
			return e;
		}
	}
	return fd;
}

static void expect_health_over(int family, const char *addr, uint16_t port)
{
	int fd = connect_to(family, addr, port);
	CHECK(fd >= 0, "connect to %s port %u: %s", addr, port, strerror(-fd));
	struct conn *c = conn_wrap(fd);
	struct http_response *r = resp_new();
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: [::1]\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

/* `--listen [::1]:3000` and `[::]:3000` were refused. */
static void listens_on_ipv6_and_dual_stack(void **state)
{
	(void)state;
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	if (probe < 0) {
		print_message("no IPv6 on this machine: %s\n", strerror(errno));
		skip();
	}
	close(probe);
	for (int i = 0; i < 2; i++) {
		uint16_t port = h_free_port();
		char addr[48];
		snprintf(addr, sizeof addr, i == 0 ? "[::1]:%u" : "[::]:%u", port);
		const char *const args[] = {"--listen", addr, NULL};
		struct server_opts o = {.args = args, .no_listen = true, .port = port,
					.no_wait = true};
		struct server s;
		server_start_opts(&s, &o);
		/* server_start waits on 127.0.0.1; wait on ::1 instead. */
		int fd = -1;
		for (int t = 0; t < 250 && fd < 0; t++) {
			fd = connect_to(AF_INET6, "::1", port);
			if (fd < 0)
				h_sleep_ms(20);
		}
		CHECK(fd >= 0, "nothing listening on %s", addr);
		h_close(fd);
		expect_health_over(AF_INET6, "::1", port);
		if (i == 1) /* dual-stack: IPv4 clients too */
			expect_health_over(AF_INET, "127.0.0.1", port);
		/* The line may follow the first answers: the workers serve as
		 * soon as they are up. */
		char log[8192] = "", want[64];
		snprintf(want, sizeof want, "addr=%s ", addr);
		for (int t = 0; t < 250 && !strstr(log, want); t++) {
			if (t)
				h_sleep_ms(20);
			server_read_stderr(&s, log, sizeof log);
		}
		CHECK(strstr(log, want) != NULL, "listening line says %s: %s", want, log);
		CHECK(server_stop(&s) == 0, "clean exit");
	}
}

/* With port 0 the log said addr=127.0.0.1:0: a user cannot find it. */
static void port_zero_logs_the_port_it_got(void **state)
{
	(void)state;
	const char *const args[] = {"--listen", "127.0.0.1:0", NULL};
	struct server_opts o = {.args = args, .no_listen = true, .no_wait = true};
	struct server s;
	server_start_opts(&s, &o);
	char log[8192] = "";
	const char *at = NULL;
	for (int t = 0; t < 250 && !at; t++) {
		server_read_stderr(&s, log, sizeof log);
		at = strstr(log, "addr=127.0.0.1:");
		if (!at)
			h_sleep_ms(20);
	}
	CHECK(at != NULL, "no listening line: %s", log);
	unsigned port = (unsigned)atoi(at + strlen("addr=127.0.0.1:"));
	CHECK(port > 0 && port < 65536, "addr gives port %u: %s", port, log);
	h_tls_port_set((uint16_t)port, s.tls);
	expect_health_on_port((uint16_t)port);
	CHECK(server_stop(&s) == 0, "clean exit");
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(half_close_after_pipelining_answers_every_request),
		BB_TEST(abandoned_upload_is_counted),
		BB_TEST(sighup_does_not_kill_the_server),
		BB_TEST(listens_on_ipv6_and_dual_stack),
		BB_TEST(port_zero_logs_the_port_it_got),
	};
	return H_RUN_GROUP("lifecycle", tests, h_group_setup, h_group_teardown);
}
