/*
 * Black-box: http_requests_total counts every request exactly once, per
 * method, route template and status, summed over workers, whatever the
 * connection pattern (keep-alive, one request per connection, pipelined
 * batches); and a scrape counts itself only in the next scrape.
 * Each test starts its own server with --workers 2.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEALTH_OK "http_requests_total{method=\"GET\",route=\"/health\",status_code=\"200\"}"
#define NOPE_404 "http_requests_total{method=\"GET\",route=\"unmatched\",status_code=\"404\"}"
#define POST_405 "http_requests_total{method=\"POST\",route=\"/health\",status_code=\"405\"}"
#define METRICS_OK "http_requests_total{method=\"GET\",route=\"/metrics\",status_code=\"200\"}"

#define GET_HEALTH "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
#define GET_NOPE "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
#define POST_HEALTH "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"

/* The plan: 10 keep-alive x 200 + 10 single + 10 pipelined x 3 x 33
 * = 3000 GET /health; 7 GET /nope inside pipelined batches; 5 POST
 * /health on keep-alive connections. 30 connections. */
#define N_KA 10
#define KA_REQS 200
#define N_SINGLE 10
#define N_PIPE 10
#define PIPE_BATCHES 3
#define PIPE_BATCH 33
#define N_NOPE 7
#define N_POST 5
#define N_HEALTH (N_KA * KA_REQS + N_SINGLE + N_PIPE * PIPE_BATCHES * PIPE_BATCH)

static void scrape(uint16_t port, struct http_response *r)
{
	h_exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_status(r, 200, false);
}

/* The series' value, 0 if absent. */
static double counter(const char *body, const char *series)
{
	double v;

	if (!expo_find(body, series, &v))
		return 0;
	return v;
}

static void read_expect(struct conn *c, struct http_response *r, int status,
			const char *what, int idx)
{
	char err[2048];

	if (conn_read_response(c, r, false, 5000, err, sizeof(err)) != 0)
		H_FAIL("%s #%d: %s", what, idx, err);
	CHECK(r->status == status, "%s #%d: expected %d, got \"%s\"", what, idx,
	      status, r->raw_status_line);
}

static void request_counter_is_exact_per_method_route_and_status(void **state)
{
	static const char *const args[] = { "--workers", "2", NULL };
	struct server s;
	struct http_response *r = resp_new();
	struct conn *ka[N_KA], *pl[N_PIPE];
	char around[4096];
	int health = 0, nope = 0, post = 0;

	(void)state;
	server_start(&s, args);

	/* Baseline: the harness's readiness probe was a GET /health. */
	scrape(s.port, r);
	double base_health = counter(r->body, HEALTH_OK);

	CHECK(counter(r->body, METRICS_OK) == 0,
	      "the first scrape counts itself: %s",
	      expo_find(r->body, METRICS_OK, NULL));

	for (int i = 0; i < N_KA; i++)
		ka[i] = conn_open(s.port);
	for (int i = 0; i < N_PIPE; i++)
		pl[i] = conn_open(s.port);

	/* Keep-alive, interleaved across connections (and so workers). */
	for (int k = 0; k < KA_REQS; k++) {
		for (int i = 0; i < N_KA; i++) {
			conn_send_str(ka[i], GET_HEALTH);
			read_expect(ka[i], r, 200, "keep-alive GET /health", health);
			health++;
			if (k == KA_REQS / 2 && i < N_POST) {
				conn_send_str(ka[i], POST_HEALTH);
				read_expect(ka[i], r, 405, "POST /health", post);
				post++;
			}
		}
	}
	/* One request per connection; half ask to close, half just close. */
	for (int i = 0; i < N_SINGLE; i++) {
		struct conn *c = conn_open(s.port);

		conn_send_str(c, i % 2 ? "GET /health HTTP/1.1\r\nHost: t\r\n"
					 "Connection: close\r\n\r\n" :
					 GET_HEALTH);
		read_expect(c, r, 200, "single GET /health", health);
		health++;
		conn_close(c);
	}
	/* Pipelined batches, each in one write; the first 7 batches carry
	 * one GET /nope in the middle. */
	int batch = 0;

	for (int b = 0; b < PIPE_BATCHES; b++) {
		for (int i = 0; i < N_PIPE; i++, batch++) {
			size_t cap = (PIPE_BATCH + 1) * sizeof(GET_HEALTH) + 64, o = 0;
			char *buf = malloc(cap);
			bool with_nope = batch < N_NOPE;

			CHECK(buf != NULL, "out of memory");
			for (int k = 0; k < PIPE_BATCH; k++) {
				if (with_nope && k == PIPE_BATCH / 2) {
					memcpy(buf + o, GET_NOPE, sizeof(GET_NOPE) - 1);
					o += sizeof(GET_NOPE) - 1;
				}
				memcpy(buf + o, GET_HEALTH, sizeof(GET_HEALTH) - 1);
				o += sizeof(GET_HEALTH) - 1;
			}
			conn_send(pl[i], buf, o);
			free(buf);
			for (int k = 0; k < PIPE_BATCH; k++) {
				if (with_nope && k == PIPE_BATCH / 2) {
					read_expect(pl[i], r, 404, "pipelined GET /nope",
						    nope);
					nope++;
				}
				read_expect(pl[i], r, 200, "pipelined GET /health",
					    health);
				health++;
			}
		}
	}
	for (int i = 0; i < N_KA; i++)
		conn_close(ka[i]);
	for (int i = 0; i < N_PIPE; i++)
		conn_close(pl[i]);
	CHECK(health == N_HEALTH && nope == N_NOPE && post == N_POST,
	      "test bug: sent %d/%d/%d", health, nope, post);
	/* The clients have every response; give the workers' bookkeeping of
	 * the last sends a moment (a completion may trail the bytes). */
	h_sleep_ms(100);

	scrape(s.port, r);
	expo_lines(r->body, "http_requests_total{", around, sizeof(around));

	/* Every expectation, then one failure naming all that were wrong. */
	char wrong[2048] = "";
	size_t o = 0;
	double got = counter(r->body, HEALTH_OK), hc = -1;
	const struct {
		const char *series;
		double want, got;
	} exp[] = {
		{ HEALTH_OK, base_health + N_HEALTH, got },
		{ NOPE_404, N_NOPE, counter(r->body, NOPE_404) },
		{ POST_405, N_POST, counter(r->body, POST_405) },
		{ METRICS_OK, 1, counter(r->body, METRICS_OK) },
	};

	for (size_t i = 0; i < sizeof(exp) / sizeof(exp[0]); i++)
		if (exp[i].got != exp[i].want && o < sizeof(wrong))
			o += (size_t)snprintf(wrong + o, sizeof(wrong) - o,
					      "\n  expected %s %.0f, got %.0f%s",
					      exp[i].series, exp[i].want, exp[i].got,
					      expo_find(r->body, exp[i].series, NULL) ?
					      "" : " (no such line)");
	/* The histogram counted the same requests. */
	expo_find(r->body, "http_request_duration_seconds_count{method=\"GET\","
		  "route=\"/health\",status_code=\"200\"}", &hc);
	if (hc != got && o < sizeof(wrong))
		snprintf(wrong + o, sizeof(wrong) - o,
			 "\n  http_request_duration_seconds_count for GET /health "
			 "200 is %g, the counter %g", hc, got);
	CHECK(wrong[0] == '\0',
	      "after %d GET /health (%.0f counted before, from the readiness "
	      "probe), %d GET /nope and %d POST /health over 30 connections on "
	      "2 workers, and one earlier scrape:%s\nall series:%s", N_HEALTH,
	      base_health, N_NOPE, N_POST, wrong, around);

	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

static void a_scrape_is_counted_in_the_next_scrape_not_its_own(void **state)
{
	struct server s;
	struct http_response *r = resp_new();
	char around[2048];

	(void)state;
	server_start(&s, (const char *const[]){ "--workers", "2", NULL });
	for (int i = 0; i < 3; i++) {
		scrape(s.port, r);
		expo_lines(r->body, "route=\"/metrics\"", around, sizeof(around));
		CHECK(counter(r->body, METRICS_OK) == i,
		      "scrape %d: expected %s %d (earlier scrapes only), got %.0f; "
		      "lines:%s", i + 1, METRICS_OK, i, counter(r->body, METRICS_OK),
		      around);
		h_sleep_ms(20);
	}
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

static void method_not_allowed_is_counted_under_its_route_template(void **state)
{
	static const char *const reqs[] = {
		"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
		"POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	};
	static const char *const series[] = {
		"http_requests_total{method=\"POST\",route=\"/metrics\",status_code=\"405\"}",
		"http_requests_total{method=\"POST\",route=\"/health\",status_code=\"405\"}",
	};
	struct server s;
	struct http_response *r = resp_new();
	char around[2048];

	(void)state;
	server_start(&s, NULL);
	for (size_t i = 0; i < 2; i++) {
		h_exchange(s.port, reqs[i], false, r);
		expect_error(r, 405, "METHOD_NOT_ALLOWED");
	}
	h_sleep_ms(50);
	scrape(s.port, r);
	expo_lines(r->body, "http_requests_total{", around, sizeof(around));
	for (size_t i = 0; i < 2; i++)
		CHECK(counter(r->body, series[i]) == 1,
		      "%.*s matched a route but not its method: expected %s 1, "
		      "got %.0f; counter series:%s", (int)strcspn(reqs[i], "\r"),
		      reqs[i], series[i], counter(r->body, series[i]), around);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

/* Regression: requests the server rejected (malformed, timed out) were
 * answered but never counted, so 400s were invisible to Prometheus. */
static void rejected_requests_are_counted_with_their_status(void **state)
{
	static const char *const reqs[] = {
		"GET /health HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n", /* 400, method known */
		"GET /health HTTP/9.9\r\nHost: t\r\n\r\n",                   /* 505 */
	};
	static const char *const series[] = {
		"http_requests_total{method=\"GET\",route=\"unmatched\",status_code=\"400\"}",
		"http_requests_total{method=\"GET\",route=\"unmatched\",status_code=\"505\"}",
	};
	static const int status[] = {400, 505};
	struct server s;
	struct http_response *r = resp_new();
	char around[2048];

	(void)state;
	server_start(&s, NULL);
	for (size_t i = 0; i < 2; i++) {
		struct conn *c = conn_open(s.port);
		conn_send_str(c, reqs[i]);
		expect_response(c, r, false);
		CHECK(r->status == status[i], "%s: status %d, want %d", series[i], r->status,
		      status[i]);
		conn_close(c);
	}
	h_sleep_ms(50);
	scrape(s.port, r);
	expo_lines(r->body, "http_requests_total{", around, sizeof(around));
	for (size_t i = 0; i < 2; i++)
		CHECK(counter(r->body, series[i]) == 1, "expected %s 1, got %.0f; counter series:%s",
		      series[i], counter(r->body, series[i]), around);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(request_counter_is_exact_per_method_route_and_status),
		BB_TEST(a_scrape_is_counted_in_the_next_scrape_not_its_own),
		BB_TEST(method_not_allowed_is_counted_under_its_route_template),
		BB_TEST(rejected_requests_are_counted_with_their_status),
	};

	h_init();
	return H_RUN_GROUP("blackbox_metrics_counts", tests, NULL, NULL);
}
