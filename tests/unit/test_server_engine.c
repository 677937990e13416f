/*
 * The connection engine with no ring and no socket: the test is its host
 * (struct server_host), hands it a request whole, byte by byte and split
 * at every point, and reads what it asks to send. The handlers are the
 * real ones of src/api: /health, the pool view, ingest (a real token and
 * a real report), /latest with its route parameter; and the engine's own
 * answers (404, 405, pipelining, the header deadline by its timer wheel),
 * and a small body collected for its handler (body_max) through a park.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ringside/api.h"
#include "ringside/config.h"
#include "ringside/jwt.h"
#include "ringside/metrics.h"
#include "ringside/server.h"
#include "../common/fake_host.h"
#include "unit_samples.h"

/* ---- The host ---- */

static char sent[1 << 20];
static size_t sent_len;

static struct config cfg;
static struct metrics_registry metrics;
static struct api api;
static struct server server;
static struct server_conn conn;
static char token[1024];

static uint64_t clock_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void tick(uint64_t now_ns)
{
	server_set_clock(&server, now_ns, (int64_t)time(NULL) * 1000000000);
}

/* Takes everything the engine has to send, in pieces as a socket would. */
static void drain(void)
{
	const char *p;
	size_t n;
	while ((p = server_conn_output(&server, &conn, &n)) != NULL && n) {
		size_t piece = n > 1000 ? 1000 : n;
		assert_true(sent_len + piece <= sizeof sent);
		memcpy(sent + sent_len, p, piece);
		sent_len += piece;
		server_conn_sent(&server, &conn, piece);
	}
}

static void open_conn(void)
{
	sent_len = 0;
	fake_host.closes = fake_host.shutdowns = 0;
	tick(clock_ns());
	server_conn_open(&server, &conn, METRICS_LISTENER_MAIN, 0, 0);
}

static void end_conn(void)
{
	if (!server_conn_closing(&conn))
		server_conn_abort(&server, &conn);
	assert_true(server_conn_releasable(&conn));
	server_conn_release(&server, &conn);
}

/* Feeds req in pieces of `step` bytes (0: whole), draining after each. */
static void feed(const char *req, size_t len, size_t step)
{
	if (!step)
		step = len;
	for (size_t at = 0; at < len; at += step) {
		size_t n = len - at < step ? len - at : step;
		server_conn_input(&server, &conn, req + at, n);
		drain();
	}
}

static int status_of(const char *resp)
{
	assert_memory_equal(resp, "HTTP/1.1 ", 9);
	return atoi(resp + 9);
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");
	assert_non_null(b);
	return b + 4;
}

static int setup(void **state)
{
	(void)state;
	char *argv[] = {"ringside", "--workers", "1", "--max-connections", "16",
			"--jwt-secret-file", "tests/auth/test-only-hs256.secret",
			"--log-level", "error", NULL};
	if (config_load(&cfg, 9, argv, NULL, stdout, stderr) != CONFIG_SERVE)
		return -1;
	struct jwt_keys keys;
	char err[256];
	if (jwt_keys_load(&keys, cfg.jwt_secret_file, "", "", cfg.jwt_issuer, cfg.jwt_audience,
			  err, sizeof err) < 0)
		return -1;
	struct jwt_claims c = {.sub = "agent-1", .organization_id = "org-1",
			       .scopes = JWT_SCOPE_ALL, .iat = time(NULL),
			       .exp = time(NULL) + 3600};
	if (jwt_sign(&keys, &c, token, sizeof token) < 0)
		return -1;
	if (metrics_registry_init(&metrics, &api_router, 1, cfg.max_connections) < 0 ||
	    api_init(&api, &cfg, 1, &keys) < 0)
		return -1;
	struct server_params p = {
		.cfg = &cfg,
		.router = &api_router,
		.metrics = &metrics,
		.api = &api,
		.worker_id = 0,
		.slots = 16,
		.request_id_nonce = 0x1234,
		.access_log = true,
		.host = &fake_server_host,
	};
	return server_init(&server, &p);
}

static int teardown(void **state)
{
	(void)state;
	server_fini(&server);
	api_fini(&api);
	metrics_registry_fini(&metrics);
	return 0;
}

static void health_answers_whole_byte_by_byte_and_split_anywhere(void **state)
{
	(void)state;
	static const char req[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
	const size_t len = sizeof req - 1;
	for (size_t step = 0; step <= len; step++) {
		open_conn();
		feed(req, len, step);
		sent[sent_len] = '\0';
		assert_int_equal(status_of(sent), 200);
		assert_string_equal(body_of(sent), "{\"status\":\"ok\"}");
		assert_non_null(strstr(sent, "X-Request-Id: req_00001234"));
		end_conn();
	}
	/* Every split point into two reads. */
	for (size_t cut = 1; cut < len; cut++) {
		open_conn();
		server_conn_input(&server, &conn, req, cut);
		drain();
		assert_int_equal(sent_len, 0);
		server_conn_input(&server, &conn, req + cut, len - cut);
		drain();
		sent[sent_len] = '\0';
		assert_int_equal(status_of(sent), 200);
		end_conn();
	}
}

static void the_pool_view_is_served(void **state)
{
	(void)state;
	static const char req[] = "GET /metrics/api/metrics/ HTTP/1.1\r\nHost: t\r\n\r\n";
	open_conn();
	feed(req, sizeof req - 1, 7);
	sent[sent_len] = '\0';
	assert_int_equal(status_of(sent), 200);
	assert_non_null(strstr(body_of(sent), "\"size\":16"));
	end_conn();
}

static void a_report_is_ingested_then_read_back_by_its_route_parameter(void **state)
{
	(void)state;
	size_t body_len;
	char *body = read_sample("ingest-minimal.json", &body_len);
	size_t cap = body_len + 4096;
	char *req = malloc(cap);
	assert_non_null(req);
	int n = snprintf(req, cap,
			 "POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n"
			 "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s",
			 token, body_len, body);
	for (size_t step = 0; step < 3; step++) {
		open_conn();
		feed(req, (size_t)n, step == 0 ? 0 : step == 1 ? 1 : 1500);
		sent[sent_len] = '\0';
		assert_int_equal(status_of(sent), 202);
		end_conn();
		api_worker_pass(&api, 0); /* the store publishes between passes */
	}
	/* {agentId} percent-encoded: the router decodes it once. */
	n = snprintf(req, cap,
		     "GET /api/metrics/agents/agent%%2D1/latest HTTP/1.1\r\nHost: t\r\n"
		     "Authorization: Bearer %s\r\n\r\n",
		     token);
	open_conn();
	feed(req, (size_t)n, 0);
	sent[sent_len] = '\0';
	assert_int_equal(status_of(sent), 200);
	assert_non_null(strstr(body_of(sent), "\"agent-1\""));
	end_conn();
	/* A %00 names nothing. */
	n = snprintf(req, cap,
		     "GET /api/metrics/agents/agent%%00/latest HTTP/1.1\r\nHost: t\r\n"
		     "Authorization: Bearer %s\r\n\r\n",
		     token);
	open_conn();
	feed(req, (size_t)n, 0);
	sent[sent_len] = '\0';
	assert_int_equal(status_of(sent), 404);
	end_conn();
	free(req);
	free(body);
}

static void pipelined_requests_are_answered_in_order(void **state)
{
	(void)state;
	static const char req[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
				  "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"
				  "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
				  "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	open_conn();
	feed(req, sizeof req - 1, 0);
	sent[sent_len] = '\0';
	const int want[] = {200, 404, 405, 200};
	const char *p = sent;
	for (int i = 0; i < 4; i++) {
		assert_non_null(p);
		assert_int_equal(status_of(p), want[i]);
		p = strstr(p + 1, "HTTP/1.1 ");
	}
	assert_null(p);
	assert_int_equal(fake_host.shutdowns, 1); /* Connection: close: the FIN after the last */
	end_conn();
}

static void the_header_deadline_comes_from_the_engines_own_timer(void **state)
{
	(void)state;
	open_conn();
	uint64_t t0 = clock_ns();
	tick(t0);
	feed("GET /health HTTP/1.1\r\n", 22, 0);
	tick(t0 + (uint64_t)(cfg.header_timeout_ms - 100) * 1000000u);
	server_tick(&server);
	assert_int_equal(sent_len, 0);
	tick(t0 + (uint64_t)(cfg.header_timeout_ms + 200) * 1000000u);
	server_tick(&server);
	drain();
	sent[sent_len] = '\0';
	assert_int_equal(status_of(sent), 408);
	end_conn();
}

/* ---- The body collected for a handler with body_max ---- */

/* An echo route of its own server: answers the collected body's length
 * and bytes, after a park (the test posts the completion), so the body
 * must outlive the handler call that parked. */
static struct server echo_server;
static struct server_conn echo_conn;
static struct metrics_registry echo_metrics; /* labelled by its own routes */
static http_ticket echo_ticket;

static void echo_request(struct http_exchange *x)
{
	echo_ticket = http_park(x, 1000);
	assert_true(echo_ticket != 0);
}

static void echo_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	char *buf = http_exchange_buffer(x);
	assert_true(!x->body || x->body == buf); /* the body is at its start */
	http_reply(x, 200, "text/plain", NULL, x->body ? x->body : "", x->body_len);
}

static const struct http_handler echo_handler = {
	.on_request = echo_request, .on_resume = echo_resume, .body_max = 64};
static const struct http_route echo_routes[] = {{HTTP_POST, "/echo", &echo_handler, 0}};
static const struct router echo_router = {echo_routes, 1};

static int echo_setup(void **state)
{
	(void)state;
	if (metrics_registry_init(&echo_metrics, &echo_router, 1, cfg.max_connections) < 0)
		return -1;
	struct server_params p = {
		.cfg = &cfg, .router = &echo_router, .metrics = &echo_metrics, .api = &api,
		.worker_id = 0, .slots = 4, .request_id_nonce = 0x4321, .host = &fake_server_host,
	};
	return server_init(&echo_server, &p);
}

static int echo_teardown(void **state)
{
	(void)state;
	server_fini(&echo_server);
	metrics_registry_fini(&echo_metrics);
	return 0;
}

/* Feeds req to the echo server in pieces of `step`, resumes its park,
 * and returns what it sent (NUL-terminated, in sent). */
static const char *echo_exchange(const char *req, size_t len, size_t step)
{
	sent_len = 0;
	echo_ticket = 0;
	server_set_clock(&echo_server, clock_ns(), (int64_t)time(NULL) * 1000000000);
	server_conn_open(&echo_server, &echo_conn, METRICS_LISTENER_MAIN, 0, 0);
	if (!step)
		step = len;
	for (size_t at = 0; at < len; at += step)
		server_conn_input(&echo_server, &echo_conn, req + at,
				  len - at < step ? len - at : step);
	if (echo_ticket)
		server_conn_resume(&echo_server, &echo_conn, (uint8_t)(echo_ticket >> 48), 0);
	const char *p;
	size_t n;
	while ((p = server_conn_output(&echo_server, &echo_conn, &n)) != NULL && n) {
		memcpy(sent + sent_len, p, n);
		sent_len += n;
		server_conn_sent(&echo_server, &echo_conn, n);
	}
	sent[sent_len] = '\0';
	if (!server_conn_closing(&echo_conn))
		server_conn_abort(&echo_server, &echo_conn);
	server_conn_release(&echo_server, &echo_conn);
	return sent;
}

static void a_small_body_is_collected_whole_and_outlives_a_park(void **state)
{
	(void)state;
	static const char plain[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n"
				    "a=1&b=2&c=3";
	static const char chunked[] = "POST /echo HTTP/1.1\r\nHost: t\r\n"
				      "Transfer-Encoding: chunked\r\n\r\n"
				      "4\r\na=1&\r\n7\r\nb=2&c=3\r\n0\r\n\r\n";
	const char *const reqs[] = {plain, chunked};
	const size_t lens[] = {sizeof plain - 1, sizeof chunked - 1};
	for (int r = 0; r < 2; r++)
		for (size_t step = 0; step <= lens[r]; step++) {
			const char *resp = echo_exchange(reqs[r], lens[r], step);
			assert_int_equal(status_of(resp), 200);
			assert_string_equal(body_of(resp), "a=1&b=2&c=3");
		}
	/* No body at all: NULL, 0. */
	static const char none[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(status_of(echo_exchange(none, sizeof none - 1, 0)), 200);
	assert_string_equal(body_of(sent), "");
	/* Every buffer came back: as many exchanges again as the pool holds. */
	for (int i = 0; i < 8; i++)
		assert_int_equal(status_of(echo_exchange(plain, sizeof plain - 1, 0)), 200);
}

static void a_body_over_body_max_is_413(void **state)
{
	(void)state;
	char req[512], body[65];
	memset(body, 'x', 65);
	/* By its Content-Length, before a byte of it is read. */
	int n = snprintf(req, sizeof req,
			 "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 65\r\n\r\n%.65s", body);
	assert_int_equal(status_of(echo_exchange(req, (size_t)n, 0)), 413);
	/* Chunked: when the collected bytes pass it. */
	n = snprintf(req, sizeof req,
		     "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "20\r\n%.32s\r\n21\r\n%.33s\r\n0\r\n\r\n",
		     body, body);
	for (size_t step = 1; step <= (size_t)n; step += 7)
		assert_int_equal(status_of(echo_exchange(req, (size_t)n, step)), 413);
	/* Exactly body_max is fine. */
	n = snprintf(req, sizeof req,
		     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 64\r\n\r\n%.64s", body);
	assert_int_equal(status_of(echo_exchange(req, (size_t)n, 3)), 200);
	assert_int_equal(strlen(body_of(sent)), 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(health_answers_whole_byte_by_byte_and_split_anywhere),
		cmocka_unit_test(the_pool_view_is_served),
		cmocka_unit_test(a_report_is_ingested_then_read_back_by_its_route_parameter),
		cmocka_unit_test(pipelined_requests_are_answered_in_order),
		cmocka_unit_test(the_header_deadline_comes_from_the_engines_own_timer),
		cmocka_unit_test_setup_teardown(a_small_body_is_collected_whole_and_outlives_a_park,
						echo_setup, echo_teardown),
		cmocka_unit_test_setup_teardown(a_body_over_body_max_is_413, echo_setup,
						echo_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
