/*
 * Black-box: a real Prometheus (/usr/bin/prometheus, Debian's 2.42) scrapes
 * the server's /metrics every second (it asks for OpenMetrics and gzip by
 * default, so this also runs Prometheus's own parser on our output), then
 * its HTTP API must show `up` 1 at every step and the server counting
 * those scrapes in http_requests_total{route="/metrics"}.
 *
 * Prometheus applies new targets at most every 5 s after start, so the
 * 10 s window starts at its first sample of `up`, not at /-/ready.
 * Skips (77) only if /usr/bin/prometheus is missing. Loopback only; the
 * config and TSDB live in a temporary directory removed at the end.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * GET path from a server that is not Ringside (no X-Request-Id; chunked or
 * Content-Length bodies). Returns the status, or -1 with err set; the
 * body goes to body (NUL-terminated, truncated to cap - 1).
 */
static int http_get_any(uint16_t port, const char *path, char *body, size_t cap,
			char *err, size_t ecap)
{
	int fd = h_try_connect(port);

	body[0] = '\0';
	if (fd < 0) {
		snprintf(err, ecap, "connect 127.0.0.1:%u: %s", port, strerror(-fd));
		return -1;
	}
	struct conn *c = conn_wrap(fd);
	struct http_response *r = malloc(sizeof(*r));
	char *req = h_strf("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
			   "Connection: close\r\n\r\n", path, port);
	int status = -1;

	if (!r || h_send_all(fd, req, strlen(req)) != 0) {
		snprintf(err, ecap, "send failed");
		goto out;
	}
	if (conn_read_response(c, r, true, 5000, err, ecap) != 0)
		goto out;
	const char *te = resp_header(r, "Transfer-Encoding");

	if (te && strcasecmp(te, "chunked") == 0) {
		size_t o = 0;
		char *chunk = malloc(1 << 16);

		if (!chunk)
			goto out;
		for (int i = 0; i < 10000; i++) {
			long n = conn_read_chunk(c, chunk, 1 << 16, 5000, err, ecap);

			if (n < 0) {
				free(chunk);
				goto out;
			}
			if (n == 0)
				break;
			size_t k = (size_t)n < cap - 1 - o ? (size_t)n : cap - 1 - o;

			memcpy(body + o, chunk, k);
			o += k;
		}
		body[o] = '\0';
		free(chunk);
	} else {
		bool closed;
		size_t n = conn_read_until_eof(c, body, cap, 5000, &closed);

		if (r->has_content_length && n > r->content_length)
			body[r->content_length] = '\0';
	}
	status = r->status;
out:
	free(req);
	free(r);
	conn_close(c);
	return status;
}

/* What Prometheus says about its targets, for failure messages. */
static void targets_summary(uint16_t pport, char *out, size_t cap)
{
	char *body = malloc(1 << 16), err[512];

	if (!body) {
		snprintf(out, cap, "(out of memory)");
		return;
	}
	int st = http_get_any(pport, "/api/v1/targets", body, 1 << 16, err, sizeof(err));
	char health[64] = "?", last_error[512] = "?", scrape_url[128] = "?";

	if (st == 200) {
		json_get_string(body, "health", health, sizeof(health));
		json_get_string(body, "lastError", last_error, sizeof(last_error));
		json_get_string(body, "scrapeUrl", scrape_url, sizeof(scrape_url));
		snprintf(out, cap, "Prometheus target %s: health \"%s\", lastError "
			 "\"%s\"", scrape_url, health, last_error);
	} else {
		snprintf(out, cap, "GET /api/v1/targets: %d %s", st, st < 0 ? err : "");
	}
	free(body);
}

/* Parses `[<ts>,"<v>"]` at p; returns the end or NULL. */
static const char *parse_pair(const char *p, double *ts, char *v, size_t vcap)
{
	char *e;

	if (*p != '[')
		return NULL;
	*ts = strtod(p + 1, &e);
	if (e == p + 1 || *e != ',' || e[1] != '"')
		return NULL;
	const char *q = e + 2, *qe = strchr(q, '"');

	if (!qe || qe[1] != ']')
		return NULL;
	snprintf(v, vcap, "%.*s", (int)(qe - q), q);
	return qe + 2;
}

static void prometheus_scrapes_metrics_every_second_and_sees_its_own_scrapes(void **state)
{
	struct server rs, prom;
	char err[2048], why[1024];
	uint16_t pport;
	char *body = malloc(1 << 16);

	(void)state;
	CHECK(body != NULL, "out of memory");
	server_start(&rs, (const char *const[]){ "--workers", "2", NULL });

	char *scrape = h_strf("  - job_name: ringside\n"
			      "    static_configs:\n"
			      "      - targets: ['127.0.0.1:%u']\n", rs.port);

	h_prometheus_start(&prom, h_scratch_dir("prometheus"), scrape, &pport);
	free(scrape);

	/* Ready within 20 s. */
	int64_t deadline = h_now_ms() + 20000;
	bool ready = false;

	for (int i = 0; i < 400 && h_now_ms() < deadline; i++) {
		if (server_wait_exit(&prom, 0))
			H_FAIL("prometheus exited with status %d while starting",
			       prom.exit_code);
		if (http_get_any(pport, "/-/ready", body, 1 << 16, err, sizeof(err)) == 200) {
			ready = true;
			break;
		}
		h_sleep_ms(100);
	}
	CHECK(ready, "prometheus did not answer GET /-/ready 200 within 20 s");

	/* Its first sample of `up` (targets are applied up to 5 s after
	 * start), within 20 s. */
	double t_first = 0;
	char v[64];

	deadline = h_now_ms() + 20000;
	for (int i = 0; i < 400 && h_now_ms() < deadline; i++) {
		int st = http_get_any(pport, "/api/v1/query?query=up", body, 1 << 16,
				      err, sizeof(err));
		const char *p = st == 200 ? strstr(body, "\"value\":") : NULL;

		if (p && parse_pair(p + 8, &t_first, v, sizeof(v)))
			break;
		t_first = 0;
		h_sleep_ms(200);
	}
	if (t_first == 0) {
		targets_summary(pport, why, sizeof(why));
		H_FAIL("prometheus had no sample of `up` 20 s after it was ready; %s",
		       why);
	}

	/* Let it scrape for 10 s from there. */
	double t0 = ceil(t_first), wait = t0 + 10.5 - wall_s();

	if (wait > 0)
		h_sleep_ms((int)(wait * 1000));

	char *q = h_strf("/api/v1/query_range?query=up&start=%.0f&end=%.0f&step=1",
			 t0, t0 + 10);
	int st = http_get_any(pport, q, body, 1 << 16, err, sizeof(err));

	targets_summary(pport, why, sizeof(why));
	CHECK(st == 200, "GET %s: %d %s; %s", q, st, st < 0 ? err : body, why);
	const char *p = strstr(body, "\"values\":[");
	int n = 0, not_one = 0;
	char bad[128] = "";

	CHECK(p, "query_range up over [%.0f, %.0f]: no values at all: %.600s; %s",
	      t0, t0 + 10, body, why);
	p += 10;
	for (; n < 100 && *p == '['; n++) {
		double ts;

		p = parse_pair(p, &ts, v, sizeof(v));
		CHECK(p, "unexpected query_range answer: %.600s", body);
		if (strcmp(v, "1") != 0 && !not_one++)
			snprintf(bad, sizeof(bad), "up = %s at %.0f (t0 + %.0f)", v, ts,
				 ts - t0);
		if (*p == ',')
			p++;
	}
	CHECK(not_one == 0 && n >= 9,
	      "up over the 10 s after the first scrape, step 1 s: expected >= 9 "
	      "samples all \"1\", got %d samples, %d not 1 (first: %s); %s; "
	      "answer: %.600s", n, not_one, bad, why, body);

	/* The server counted those scrapes (each counts in the next one). */
	st = http_get_any(pport, "/api/v1/query?query=http_requests_total%7Broute%3D%22%2Fmetrics%22%7D",
			  body, 1 << 16, err, sizeof(err));
	CHECK(st == 200, "query http_requests_total{route=\"/metrics\"}: %d %s", st,
	      st < 0 ? err : body);
	double best = -1, ts;

	for (const char *r = strstr(body, "\"value\":"); r; r = strstr(r + 1, "\"value\":")) {
		if (parse_pair(r + 8, &ts, v, sizeof(v)) && atof(v) > best)
			best = atof(v);
	}
	CHECK(best >= 9, "after 10 s of scrapes every second, Prometheus sees "
	      "http_requests_total{route=\"/metrics\"} = %g (expected >= 9); "
	      "answer: %.600s; %s", best, body, why);
	fprintf(stderr, "prometheus: %d samples of up=1, /metrics counted %g "
		"scrapes\n", n, best);

	free(q);
	int pcode = server_stop(&prom);

	CHECK(pcode == 0 || pcode == 128 + SIGTERM,
	      "prometheus exit status after SIGTERM: %d", pcode);
	int code = server_stop(&rs);

	CHECK(code == 0, "ringside exit status after SIGTERM: %d", code);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(prometheus_scrapes_metrics_every_second_and_sees_its_own_scrapes),
	};

	h_init();
	h_plain_only_all("a real Prometheus scrapes the server over plain HTTP (its config "
			 "has no TLS); test_bb_tls_peers has a Prometheus scrape over TLS");
	if (access(H_PROMETHEUS, X_OK) != 0) {
		printf("SKIP: %s is not installed (apt-get install prometheus)\n",
		       H_PROMETHEUS);
		return 77;
	}
	return H_RUN_GROUP("blackbox_prometheus", tests, NULL, NULL);
}
