/*
 * Black-box: --metrics-listen / RINGSIDE_METRICS_LISTEN move /metrics and
 * /metrics/api/... to a second address (404 on the main one, /health on
 * both); without it they are on the main address. --sse-interval and
 * --metrics-listen validation and --help. Each test starts its own server
 * or runs the binary as a command.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const metrics_paths[] = {
	"/metrics",
	"/metrics/api/metrics/",
	"/metrics/api/metrics",
	"/metrics/api/metrics/stats",
	"/metrics/api/metrics/prometheus",
};

/* GET path on port: checks the status (and the 404 error body). */
static void expect_get(uint16_t port, const char *path, int status,
		       const char *where)
{
	struct http_response *r = resp_new();
	char *req = h_strf("GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);

	h_exchange(port, req, false, r);
	CHECK(r->status == status, "GET %s on the %s port %u: expected %d, got "
	      "\"%s\" (body %.200s)", path, where, port, status,
	      r->raw_status_line, r->body);
	if (status == 404)
		expect_error(r, 404, "NOT_FOUND");
	else
		expect_status(r, status, false);
	free(req);
	free(r);
}

/* The SSE route: only the head is read (the stream never ends). */
static void expect_sse_status(uint16_t port, int status, const char *where)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();
	char err[2048];

	conn_send_str(c, "GET /metrics/api/metrics/sse HTTP/1.1\r\nHost: t\r\n\r\n");
	if (conn_read_response(c, r, true, 5000, err, sizeof(err)) != 0)
		H_FAIL("GET /metrics/api/metrics/sse on the %s port: %s", where, err);
	CHECK(r->status == status, "GET /metrics/api/metrics/sse on the %s port "
	      "%u: expected %d, got \"%s\"", where, port, status,
	      r->raw_status_line);
	conn_close(c);
	free(r);
}

/* The metrics listener may come up a moment after the main one. */
static void wait_for_port(uint16_t port)
{
	int64_t deadline = h_now_ms() + 3000;

	for (int i = 0; i < 300; i++) {
		int fd = h_try_connect(port);

		if (fd >= 0) {
			close(fd);
			return;
		}
		if (h_now_ms() > deadline)
			break;
		h_sleep_ms(10);
	}
	H_FAIL("nothing listens on the metrics port 127.0.0.1:%u within 3 s", port);
}

static void check_split(const struct server *s, uint16_t mport)
{
	wait_for_port(mport);
	for (size_t i = 0; i < sizeof(metrics_paths) / sizeof(metrics_paths[0]); i++) {
		expect_get(s->port, metrics_paths[i], 404, "main (--listen)");
		expect_get(mport, metrics_paths[i], 200, "metrics");
	}
	expect_sse_status(s->port, 404, "main (--listen)");
	expect_sse_status(mport, 200, "metrics");
	expect_get(s->port, "/health", 200, "main (--listen)");
	expect_get(mport, "/health", 200, "metrics");
	expect_get(s->port, "/nope", 404, "main (--listen)");
	expect_get(mport, "/nope", 404, "metrics");
}

static void metrics_listen_moves_metrics_routes_to_the_second_port(void **state)
{
	struct server s;
	uint16_t mport = h_free_port();
	char maddr[32];

	(void)state;
	snprintf(maddr, sizeof(maddr), "127.0.0.1:%u", mport);
	server_start(&s, (const char *const[]){ "--metrics-listen", maddr, NULL });
	check_split(&s, mport);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
}

static void env_metrics_listen_moves_metrics_routes_to_the_second_port(void **state)
{
	struct server s;
	uint16_t mport = h_free_port();
	char *env = h_strf("RINGSIDE_METRICS_LISTEN=127.0.0.1:%u", mport);
	const char *const envs[] = { env, NULL };
	struct server_opts o = { .env = envs };

	(void)state;
	server_start_opts(&s, &o);
	check_split(&s, mport);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(env);
}

static void without_metrics_listen_metrics_routes_are_on_the_main_port(void **state)
{
	struct server s;

	(void)state;
	server_start(&s, NULL);
	for (size_t i = 0; i < sizeof(metrics_paths) / sizeof(metrics_paths[0]); i++)
		expect_get(s.port, metrics_paths[i], 200, "main (--listen)");
	expect_sse_status(s.port, 200, "main (--listen)");
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
}

static void expect_exit_2(const char *const args[], const char *const env[],
			  const char *what, const char *names)
{
	struct run_result *r = run_new();
	char addr[32];
	const char *argv[12];
	size_t n = 0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", h_free_port());
	argv[n++] = "--listen";
	argv[n++] = addr;
	for (size_t i = 0; args && args[i] && n < 11; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	h_run(argv, env, 5000, r);
	CHECK(r->exit_code == 2, "%s: expected exit 2, got %d%s; stderr: %.500s",
	      what, r->exit_code,
	      r->exit_code == -1 ? " (still running after 5 s)" : "", r->err);
	CHECK(strstr(r->err, names) != NULL, "%s: stderr does not name %s: %.500s",
	      what, names, r->err);
	free(r);
}

static void sse_interval_below_10ms_or_malformed_exits_2(void **state)
{
	(void)state;
	expect_exit_2((const char *const[]){ "--sse-interval", "5ms", NULL }, NULL,
		      "--sse-interval 5ms (minimum 10ms)", "--sse-interval");
	expect_exit_2((const char *const[]){ "--sse-interval", "0", NULL }, NULL,
		      "--sse-interval 0", "--sse-interval");
	expect_exit_2((const char *const[]){ "--sse-interval", "abc", NULL }, NULL,
		      "--sse-interval abc", "--sse-interval");
	expect_exit_2(NULL, (const char *const[]){ "RINGSIDE_SSE_INTERVAL=9ms", NULL },
		      "RINGSIDE_SSE_INTERVAL=9ms", "RINGSIDE_SSE_INTERVAL");
}

static void metrics_listen_nonsense_exits_2(void **state)
{
	(void)state;
	expect_exit_2((const char *const[]){ "--metrics-listen", "nonsense", NULL },
		      NULL, "--metrics-listen nonsense", "--metrics-listen");
}

static void sse_interval_10ms_and_1s_are_accepted(void **state)
{
	static const char *const vals[] = { "10ms", "1s" };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct server s;

		server_start(&s, (const char *const[]){ "--sse-interval", vals[i], NULL });
		int code = server_stop(&s);

		CHECK(code == 0, "--sse-interval %s: exit status %d", vals[i], code);
	}
}

static void help_lists_metrics_listen_and_sse_interval(void **state)
{
	struct run_result *r = run_new();

	(void)state;
	h_run((const char *const[]){ "--help", NULL }, NULL, 5000, r);
	CHECK(r->exit_code == 0, "--help: exit %d", r->exit_code);
	static const char *const want[] = { "--metrics-listen",
					    "RINGSIDE_METRICS_LISTEN",
					    "--sse-interval", "RINGSIDE_SSE_INTERVAL" };

	for (size_t i = 0; i < 4; i++)
		CHECK(strstr(r->out, want[i]), "--help does not mention %s:\n%s",
		      want[i], r->out);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(metrics_listen_moves_metrics_routes_to_the_second_port),
		BB_TEST(env_metrics_listen_moves_metrics_routes_to_the_second_port),
		BB_TEST(without_metrics_listen_metrics_routes_are_on_the_main_port),
		BB_TEST(sse_interval_below_10ms_or_malformed_exits_2),
		BB_TEST(metrics_listen_nonsense_exits_2),
		BB_TEST(sse_interval_10ms_and_1s_are_accepted),
		BB_TEST(help_lists_metrics_listen_and_sse_interval),
	};

	h_init();
	return H_RUN_GROUP("blackbox_metrics_listen", tests, NULL, NULL);
}
