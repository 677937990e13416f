/*
 * Black-box: routing of /health, HEAD, 404/405, keep-alive, HTTP/1.0,
 * pipelining, request bodies on routes that take none, 100-continue.
 * One server with default flags for the whole group.
 */
#include "harness.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Remembers request ids and fails on a repeat. */
struct id_set {
	size_t n;
	char ids[256][96];
};

static void id_add(struct id_set *s, const struct http_response *r)
{
	const char *id = resp_header(r, "X-Request-Id");

	CHECK(id != NULL, "no X-Request-Id");
	for (size_t i = 0; i < s->n; i++)
		CHECK(strcmp(s->ids[i], id) != 0,
		      "X-Request-Id %s repeated (responses %zu and %zu)", id, i,
		      s->n);
	CHECK(s->n < 256, "id set full");
	snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s", id);
}

static void get_health_returns_200_json_status_ok(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	expect_header(r, "Content-Length", "15", false);
	CHECK(!resp_connection_has(r, "close"),
	      "keep-alive request answered with Connection: close");
	free(r);
	conn_close(c);
}

static void head_health_has_get_headers_and_no_body(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *h = resp_new(), *g = resp_new();

	/* Both in one write: if HEAD sent body bytes, the GET response
	 * would not parse where it must start. */
	conn_send_str(c, "HEAD /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
			 "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, h, true);
	expect_status(h, 200, true);
	expect_header(h, "Content-Length", "15", false);
	CHECK(resp_header(h, "Content-Type") != NULL,
	      "HEAD /health has no Content-Type");
	expect_response(c, g, false);
	expect_health_ok(g);
	expect_header(h, "Content-Type", resp_header(g, "Content-Type"), false);
	/* RFC 9110 section 9.3.2: the same header fields as GET would send. */
	for (size_t i = 0; i < g->nheaders; i++)
		CHECK(resp_header(h, g->headers[i].name) != NULL,
		      "GET /health sends %s, HEAD /health does not",
		      g->headers[i].name);
	for (size_t i = 0; i < h->nheaders; i++)
		CHECK(resp_header(g, h->headers[i].name) != NULL,
		      "HEAD /health sends %s, GET /health does not",
		      h->headers[i].name);
	CHECK(strcmp(resp_header(h, "X-Request-Id"),
		     resp_header(g, "X-Request-Id")) != 0,
	      "HEAD and GET got the same X-Request-Id");
	free(h);
	free(g);
	conn_close(c);
}

static void method_not_allowed(uint16_t port, const char *method)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();
	char *req = h_strf("%s /health HTTP/1.1\r\nHost: localhost\r\n\r\n", method);

	conn_send_str(c, req);
	expect_response(c, r, false);
	expect_error(r, 405, "METHOD_NOT_ALLOWED");
	expect_header(r, "Allow", "GET, HEAD", false);
	/* A 405 leaves the framing intact: the connection stays usable. */
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(req);
	free(r);
	conn_close(c);
}

static void post_health_is_405_with_allow_get_head(void **state)
{
	method_not_allowed(port_of(state), "POST");
}

/* A method served on no route is a 501 (RFC 9110 9.1), on any path: it
 * answered 404 (CONNECT) or 405 before. The framing is intact, so the
 * connection stays usable. */
static void methods_served_nowhere_are_501_not_404(void **state)
{
	static const char *const reqs[] = {
		"PUT /health HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"PURGE /nowhere HTTP/1.1\r\nHost: a\r\n\r\n",
		"PUT /api/metrics/ingest HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}",
	};
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		conn_send_str(c, reqs[i]);
		expect_response(c, r, false);
		/* Seed 003's code on the agent routes. */
		expect_error(r, 501, strstr(reqs[i], "ingest") ? "VALIDATION_ERROR"
							       : "NOT_IMPLEMENTED");
		expect_no_header(r, "Allow");
		CHECK(!resp_connection_has(r, "close"), "a 501 keeps the connection: %s", reqs[i]);
	}
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void unknown_path_is_404_envelope(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, r, false);
	expect_error(r, 404, "NOT_FOUND");
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void head_unknown_path_is_404_without_body(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	/* RFC 9110 section 9.3.2: a HEAD response never has content. */
	conn_send_str(c, "HEAD /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"
			 "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, r, true);
	expect_status(r, 404, true);
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void query_string_is_ignored_for_routing(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /health?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	conn_send_str(c, "GET /health?x=1&y=%20z HTTP/1.1\r\nHost: localhost\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void http11_keeps_connection_alive_for_many_requests(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();
	struct id_set *ids = calloc(1, sizeof(*ids));

	CHECK(ids != NULL, "out of memory");
	for (int i = 0; i < 50; i++) {
		conn_send_str(c, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
		expect_response(c, r, false);
		expect_health_ok(r);
		CHECK(!resp_connection_has(r, "close"),
		      "request %d answered with Connection: close", i);
		id_add(ids, r);
	}
	expect_conn_open(c, 50);
	free(ids);
	free(r);
	conn_close(c);
}

static void connection_close_request_gets_close_and_eof(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: localhost\r\n"
			 "Connection: close\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	CHECK(resp_connection_has(r, "close"),
	      "expected Connection: close, got %s",
	      resp_header(r, "Connection") ? resp_header(r, "Connection") : "(none)");
	expect_conn_closed(c, 2000);
	free(r);
	conn_close(c);
}

static void http10_without_keepalive_is_answered_in_11_and_closed(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	/* No Host: fine on HTTP/1.0. */
	conn_send_str(c, "GET /health HTTP/1.0\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r); /* includes "HTTP/1.1" in the status line */
	CHECK(resp_connection_has(r, "close"),
	      "server closes after an HTTP/1.0 response but did not say "
	      "Connection: close (got %s)",
	      resp_header(r, "Connection") ? resp_header(r, "Connection") : "(none)");
	expect_conn_closed(c, 2000);
	free(r);
	conn_close(c);
}

static void http10_with_keepalive_stays_open(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	for (int i = 0; i < 3; i++) {
		conn_send_str(c, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
		expect_response(c, r, false);
		expect_health_ok(r);
		CHECK(resp_connection_has(r, "keep-alive"),
		      "request %d: expected Connection: keep-alive, got %s", i,
		      resp_header(r, "Connection") ? resp_header(r, "Connection") :
						     "(none)");
		CHECK(!resp_connection_has(r, "close"),
		      "request %d: Connection: close on a keep-alive 1.0 request", i);
	}
	expect_conn_open(c, 100);
	free(r);
	conn_close(c);
}

static void pipelined_requests_in_one_write_answer_in_order(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();
	struct id_set *ids = calloc(1, sizeof(*ids));

	CHECK(ids != NULL, "out of memory");
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
			 "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
			 "HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n"
			 "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
			 "GET /health?last HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	id_add(ids, r);
	expect_response(c, r, false);
	expect_error(r, 404, "NOT_FOUND");
	id_add(ids, r);
	expect_response(c, r, true);
	expect_status(r, 200, true);
	expect_header(r, "Content-Length", "15", false);
	id_add(ids, r);
	expect_response(c, r, false);
	expect_error(r, 405, "METHOD_NOT_ALLOWED");
	id_add(ids, r);
	expect_response(c, r, false);
	expect_health_ok(r);
	id_add(ids, r);
	expect_conn_open(c, 50);
	free(ids);
	free(r);
	conn_close(c);
}

static void pipelined_batch_of_64_mixed_requests_answer_in_order(void **state)
{
	enum { N = 64 };
	static const char *const reqs[3] = {
		"GET /health HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n",
	};
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();
	struct id_set *ids = calloc(1, sizeof(*ids));
	char *batch = malloc(N * 64);
	size_t len = 0;

	CHECK(ids && batch, "out of memory");
	for (int i = 0; i < N; i++) {
		size_t n = strlen(reqs[(i * 7) % 3]);

		memcpy(batch + len, reqs[(i * 7) % 3], n);
		len += n;
	}
	conn_send(c, batch, len);
	for (int i = 0; i < N; i++) {
		int kind = (i * 7) % 3;

		expect_response(c, r, kind == 1);
		if (kind == 0) {
			expect_health_ok(r);
		} else if (kind == 1) {
			expect_status(r, 200, true);
			expect_header(r, "Content-Length", "15", false);
		} else {
			expect_error(r, 404, "NOT_FOUND");
		}
		id_add(ids, r);
	}
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(batch);
	free(ids);
	free(r);
	conn_close(c);
}

/* Sends req (a request with a body), expects status/code, then checks the
 * connection still serves GET /health. */
static void body_then_usable(uint16_t port, const char *req, int status,
			     const char *code)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();

	conn_send_str(c, req);
	expect_response(c, r, false);
	expect_error(r, status, code);
	CHECK(!resp_connection_has(r, "close"),
	      "%d after a well-framed body should keep the connection, got "
	      "Connection: close", status);
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void post_health_with_content_length_body_is_405_and_conn_usable(void **state)
{
	body_then_usable(port_of(state),
			 "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
			 "hello",
			 405, "METHOD_NOT_ALLOWED");
}

static void post_health_with_chunked_body_is_405_and_conn_usable(void **state)
{
	body_then_usable(port_of(state),
			 "POST /health HTTP/1.1\r\nHost: a\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n"
			 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			 405, "METHOD_NOT_ALLOWED");
}

static void chunked_body_with_extension_and_trailer_is_consumed(void **state)
{
	/* RFC 9112 section 7.1.1 and 7.1.2: extensions are ignored, trailer
	 * fields may follow the last chunk. */
	body_then_usable(port_of(state),
			 "POST /health HTTP/1.1\r\nHost: a\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n"
			 "5;name=value\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n",
			 405, "METHOD_NOT_ALLOWED");
}

static void chunked_body_to_unknown_path_is_404_and_conn_usable(void **state)
{
	body_then_usable(port_of(state),
			 "POST /nope HTTP/1.1\r\nHost: a\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n"
			 "a\r\n0123456789\r\n0\r\n\r\n",
			 404, "NOT_FOUND");
}

static void body_split_across_writes_is_consumed(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	conn_send_str(c, "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234");
	h_sleep_ms(50);
	conn_send_str(c, "56789GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_error(r, 405, "METHOD_NOT_ALLOWED");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void expect_100_continue_sends_interim_then_final(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();
	char err[2048];

	conn_send_str(c, "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			 "Expect: 100-continue\r\n\r\n");
	/* The body is not sent until the interim response arrives. */
	if (conn_read_response(c, r, false, 2000, err, sizeof(err)) != 0)
		H_FAIL("no 100 Continue before the body was sent: %s", err);
	CHECK(r->status == 100, "expected 100 Continue first, got \"%s\"",
	      r->raw_status_line);
	CHECK(r->head_len == 25 && r->nheaders == 0 &&
	      strcmp(r->raw_status_line, "HTTP/1.1 100 Continue") == 0,
	      "expected exactly \"HTTP/1.1 100 Continue\\r\\n\\r\\n\", got %zu "
	      "bytes starting \"%s\"", r->head_len, r->raw_status_line);
	conn_send_str(c, "hello");
	expect_response(c, r, false);
	expect_error(r, 405, "METHOD_NOT_ALLOWED");
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}

static void request_ids_are_unique_across_connections(void **state)
{
	struct http_response *r = resp_new();
	struct id_set *ids = calloc(1, sizeof(*ids));

	CHECK(ids != NULL, "out of memory");
	for (int i = 0; i < 40; i++) {
		struct conn *c = conn_open(port_of(state));

		conn_send_str(c, i % 2 ? "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n" :
					 "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
		expect_response(c, r, false);
		expect_common(r, false);
		id_add(ids, r);
		conn_close(c);
	}
	free(ids);
	free(r);
}

/*
 * The harness's TLS mode (RINGSIDE_BB_TLS=1) must not pass by speaking
 * plain HTTP: there, the group's server is marked TLS, its connections
 * carry a verified session, and a plaintext request gets no HTTP answer.
 * Plain mode: nothing to check.
 */
static void tls_mode_really_speaks_tls(void **state)
{
	uint16_t port = port_of(state);

	if (!h_tls_mode())
		return;
	CHECK(h_tls_port(port), "port %u is not marked TLS", port);
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();

	CHECK(h_tls_fd(c->fd), "the harness's connection is plain");
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	conn_close(c);
	free(r);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
	      "plain connect: %s", strerror(errno));
	(void)h_try_send_str(fd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	char buf[256] = "";
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n = poll(&p, 1, 2000) > 0 ? recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT) : 0;

	close(fd);
	CHECK(n <= 0 || memcmp(buf, "HTTP/", 5) != 0,
	      "a plaintext request on the TLS port was answered in HTTP: %.60s", buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(get_health_returns_200_json_status_ok),
		BB_TEST(head_health_has_get_headers_and_no_body),
		BB_TEST(post_health_is_405_with_allow_get_head),
		BB_TEST(methods_served_nowhere_are_501_not_404),
		BB_TEST(unknown_path_is_404_envelope),
		BB_TEST(head_unknown_path_is_404_without_body),
		BB_TEST(query_string_is_ignored_for_routing),
		BB_TEST(http11_keeps_connection_alive_for_many_requests),
		BB_TEST(connection_close_request_gets_close_and_eof),
		BB_TEST(http10_without_keepalive_is_answered_in_11_and_closed),
		BB_TEST(http10_with_keepalive_stays_open),
		BB_TEST(pipelined_requests_in_one_write_answer_in_order),
		BB_TEST(pipelined_batch_of_64_mixed_requests_answer_in_order),
		BB_TEST(post_health_with_content_length_body_is_405_and_conn_usable),
		BB_TEST(post_health_with_chunked_body_is_405_and_conn_usable),
		BB_TEST(chunked_body_with_extension_and_trailer_is_consumed),
		BB_TEST(chunked_body_to_unknown_path_is_404_and_conn_usable),
		BB_TEST(body_split_across_writes_is_consumed),
		BB_TEST(expect_100_continue_sends_interim_then_final),
		BB_TEST(request_ids_are_unique_across_connections),
		BB_TEST(tls_mode_really_speaks_tls),
	};

	h_init();
	return H_RUN_GROUP("blackbox_basic", tests, h_group_setup, h_group_teardown);
}
