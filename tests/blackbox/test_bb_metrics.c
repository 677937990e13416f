/*
 * Black-box: GET /metrics, the Prometheus exposition of the server's own
 * metrics (seed 000-prometheus-metrics.openapi.yaml): content negotiation
 * (text 0.0.4 / OpenMetrics 1.0.0), gzip, the families and their types,
 * the request-duration histogram, `promtool check metrics`, HEAD, 405, and
 * the process collector checked against /proc/PID of the server.
 * One server with --workers 2 for the group.
 */
#include "harness.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PROMTOOL "/usr/bin/promtool"

#define TEXT_CT "text/plain; version=0.0.4; charset=utf-8"
#define OM_CT "application/openmetrics-text; version=1.0.0; charset=utf-8"
/* What Prometheus 2.42 sends by default. */
#define PROM_ACCEPT                                                          \
	"application/openmetrics-text;version=1.0.0,application/openmetrics-text;" \
	"version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
#define TEXT_ACCEPT "text/plain;version=0.0.4;q=1,*/*;q=0.1"

static time_t group_started_before, group_started_after;
static int64_t group_started_ms;

/* GET (or HEAD) /metrics with optional Accept and Accept-Encoding. */
static void scrape_req(uint16_t port, const char *method, const char *accept,
		       const char *accept_encoding, struct http_response *r)
{
	char *req = h_strf("%s /metrics HTTP/1.1\r\nHost: t\r\n%s%s%s%s%s%s\r\n",
			   method, accept ? "Accept: " : "", accept ? accept : "",
			   accept ? "\r\n" : "",
			   accept_encoding ? "Accept-Encoding: " : "",
			   accept_encoding ? accept_encoding : "",
			   accept_encoding ? "\r\n" : "");

	h_exchange(port, req, strcmp(method, "HEAD") == 0, r);
	free(req);
}

static void scrape(uint16_t port, const char *accept, struct http_response *r)
{
	scrape_req(port, "GET", accept, NULL, r);
	expect_status(r, 200, false);
}

static void expect_vary_accept_encoding(const struct http_response *r,
					const char *what)
{
	const char *v = resp_header(r, "Vary");

	CHECK(resp_header_has_token(r, "Vary", "Accept-Encoding"),
	      "%s: expected Vary to list Accept-Encoding, got Vary: %s", what,
	      v ? v : "(none)");
}

/* A line that starts with `prefix` exactly; NULL if none. */
static const char *line_starting(const char *body, const char *prefix)
{
	size_t pl = strlen(prefix);

	for (const char *line = body; line && *line;) {
		if (strncmp(line, prefix, pl) == 0)
			return line;
		const char *nl = strchr(line, '\n');

		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

/* First sample line of `name` (`name ` or `name{`), or NULL. */
static const char *first_sample(const char *body, const char *name)
{
	size_t nl_ = strlen(name);

	for (const char *line = body; line && *line;) {
		if (strncmp(line, name, nl_) == 0 &&
		    (line[nl_] == ' ' || line[nl_] == '{'))
			return line;
		const char *nl = strchr(line, '\n');

		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

/* The value of an unlabelled sample, failing the test if absent. */
static double sample_value(const char *body, const char *series)
{
	double v;
	char around[1024];

	if (!expo_find(body, series, &v)) {
		expo_lines(body, series, around, sizeof(around));
		H_FAIL("no sample line `%s <value>` in the exposition; lines "
		       "naming it:%s", series, around);
	}
	CHECK(!isnan(v), "sample %s has an unparseable value", series);
	return v;
}

static size_t gunzip(const char *in, size_t len, char *out, size_t cap,
		     char *why, size_t wcap)
{
	z_stream z;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		snprintf(why, wcap, "inflateInit2 failed");
		return (size_t)-1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)(cap - 1);
	int rc = inflate(&z, Z_FINISH);
	size_t n = z.total_out;

	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		snprintf(why, wcap, "inflate returned %d (%s) after %zu bytes in, "
			 "%zu out", rc, z.msg ? z.msg : "no message",
			 (size_t)z.total_in, n);
		return (size_t)-1;
	}
	if (z.total_in != len) {
		snprintf(why, wcap, "%zu bytes after the end of the gzip member",
			 len - (size_t)z.total_in);
		return (size_t)-1;
	}
	out[n] = '\0';
	return n;
}

static void expect_promtool_ok(const char *body, size_t len, const char *what)
{
	struct run_result *rr = malloc(sizeof(*rr));
	const char *argv[] = { PROMTOOL, "check", "metrics", NULL };

	CHECK(rr != NULL, "out of memory");
	h_run_prog(argv, body, len, 20000, rr);
	CHECK(rr->exit_code == 0,
	      "`promtool check metrics` on %s: expected exit 0, got %d "
	      "(1 = parse error, 3 = lint findings); promtool said:\n%s%s\n"
	      "exposition starts:\n%.1500s", what, rr->exit_code, rr->out,
	      rr->err, body);
	free(rr);
}

/* ---- The families ---- */

struct family {
	const char *name; /* as in text 0.0.4 (counters end in _total) */
	const char *type;
};

static const struct family families[] = {
	{ "http_requests_total", "counter" },
	{ "http_request_duration_seconds", "histogram" },
	{ "sentryagent_tokens_issued_total", "counter" },
	{ "sentryagent_tokens_introspected_total", "counter" },
	{ "sentryagent_tokens_revoked_total", "counter" },
	{ "sentryagent_agents_registered_total", "counter" },
	{ "sentryagent_agents_decommissioned_total", "counter" },
	{ "sentryagent_active_agents", "gauge" },
	{ "sentryagent_db_pool_total_connections", "gauge" },
	{ "sentryagent_db_pool_idle_connections", "gauge" },
	{ "sentryagent_db_pool_waiting_requests", "gauge" },
	{ "process_cpu_user_seconds_total", "counter" },
	{ "process_cpu_system_seconds_total", "counter" },
	{ "process_cpu_seconds_total", "counter" },
	{ "process_resident_memory_bytes", "gauge" },
	{ "process_virtual_memory_bytes", "gauge" },
	{ "process_heap_bytes", "gauge" },
	{ "process_open_fds", "gauge" },
	{ "process_max_fds", "gauge" },
	{ "process_start_time_seconds", "gauge" },
};

#define NFAM (sizeof(families) / sizeof(families[0]))

/* Makes sure http_requests_total and the histogram have samples. */
static void warm_up(uint16_t port)
{
	struct http_response *r = resp_new();

	h_exchange(port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_health_ok(r);
	free(r);
}

/* ---- Tests ---- */

static void get_metrics_without_accept_is_text_0_0_4(void **state)
{
	struct http_response *r = resp_new();

	scrape(port_of(state), NULL, r);
	expect_header(r, "Content-Type", TEXT_CT, false);
	expect_no_header(r, "Content-Encoding");
	expect_vary_accept_encoding(r, "GET /metrics without Accept");
	CHECK(line_starting(r->body, "# TYPE http_requests_total counter"),
	      "text format: no line \"# TYPE http_requests_total counter\"; "
	      "body starts:\n%.1500s", r->body);
	CHECK(!strstr(r->body, "# EOF"),
	      "text format 0.0.4 must not carry the OpenMetrics \"# EOF\" line");
	CHECK(r->body_len > 0 && r->body[r->body_len - 1] == '\n',
	      "the exposition must end with a line feed");
	free(r);
}

static void get_metrics_with_text_accept_is_text_0_0_4(void **state)
{
	struct http_response *r = resp_new();

	scrape(port_of(state), TEXT_ACCEPT, r);
	expect_header(r, "Content-Type", TEXT_CT, false);
	CHECK(line_starting(r->body, "# TYPE http_requests_total counter"),
	      "Accept: " TEXT_ACCEPT ": no line \"# TYPE http_requests_total "
	      "counter\"; body starts:\n%.1500s", r->body);
	CHECK(!strstr(r->body, "# EOF"), "text format with \"# EOF\"");
	free(r);
}

static void get_metrics_with_prometheus_accept_is_openmetrics_with_eof(void **state)
{
	struct http_response *r = resp_new();

	warm_up(port_of(state));
	scrape(port_of(state), PROM_ACCEPT, r);
	expect_header(r, "Content-Type", OM_CT, false);
	expect_vary_accept_encoding(r, "GET /metrics, OpenMetrics");
	size_t n = r->body_len;

	CHECK(n >= 6 && strcmp(r->body + n - 6, "# EOF\n") == 0,
	      "OpenMetrics body must end with \"# EOF\\n\"; it ends with "
	      "\"%.40s\"", n > 40 ? r->body + n - 40 : r->body);
	CHECK(expo_count_prefix(r->body, "# EOF") == 1,
	      "\"# EOF\" appears %d times", expo_count_prefix(r->body, "# EOF"));
	free(r);
}

static void openmetrics_counter_metadata_drops_total_but_samples_keep_it(void **state)
{
	struct http_response *r = resp_new();
	char around[2048];

	warm_up(port_of(state));
	scrape(port_of(state), PROM_ACCEPT, r);
	expect_header(r, "Content-Type", OM_CT, false);
	for (size_t i = 0; i < NFAM; i++) {
		const struct family *f = &families[i];
		char base[128], type_line[192], help_line[160], bad[192];
		size_t l = strlen(f->name);
		bool counter = strcmp(f->type, "counter") == 0;

		snprintf(base, sizeof(base), "%.*s",
			 (int)(counter ? l - 6 : l), f->name);
		snprintf(type_line, sizeof(type_line), "# TYPE %s %s\n", base, f->type);
		snprintf(help_line, sizeof(help_line), "# HELP %s ", base);
		expo_lines(r->body, base, around, sizeof(around));
		CHECK(line_starting(r->body, type_line),
		      "OpenMetrics: expected the line \"# TYPE %s %s\"; lines "
		      "naming %s:%s", base, f->type, base, around);
		CHECK(line_starting(r->body, help_line),
		      "OpenMetrics: expected a line \"# HELP %s ...\"; lines:%s",
		      base, around);
		if (counter) {
			snprintf(bad, sizeof(bad), "# TYPE %s ", f->name);
			CHECK(!line_starting(r->body, bad),
			      "OpenMetrics: counter metadata must name the family "
			      "without _total (\"# TYPE %s counter\"); got:%s",
			      base, around);
			CHECK(first_sample(r->body, f->name),
			      "OpenMetrics: counter samples keep the suffix: no "
			      "sample named %s; lines:%s", f->name, around);
		} else {
			const char *s = first_sample(r->body, strcmp(f->type, "histogram") == 0 ?
						     "http_request_duration_seconds_bucket" :
						     f->name);

			CHECK(s, "OpenMetrics: no sample of %s; lines:%s", f->name,
			      around);
		}
	}
	free(r);
}

static void families_have_one_help_and_type_line_before_their_samples(void **state)
{
	struct http_response *r = resp_new();
	char around[2048];

	warm_up(port_of(state));
	scrape(port_of(state), NULL, r);
	for (size_t i = 0; i < NFAM; i++) {
		const struct family *f = &families[i];
		char type_line[192], help_line[160], type_any[160];

		snprintf(type_line, sizeof(type_line), "# TYPE %s %s\n", f->name,
			 f->type);
		snprintf(type_any, sizeof(type_any), "# TYPE %s ", f->name);
		snprintf(help_line, sizeof(help_line), "# HELP %s ", f->name);
		expo_lines(r->body, f->name, around, sizeof(around));

		const char *t = line_starting(r->body, type_line);
		const char *h = line_starting(r->body, help_line);

		CHECK(t, "expected the line \"# TYPE %s %s\"; lines naming %s:%s",
		      f->name, f->type, f->name, around);
		CHECK(h, "expected a line \"# HELP %s <text>\"; lines naming %s:%s",
		      f->name, f->name, around);
		CHECK(h[strlen(help_line)] != '\n',
		      "# HELP %s has an empty text", f->name);
		CHECK(expo_count_prefix(r->body, type_any) == 1 &&
		      expo_count_prefix(r->body, help_line) == 1,
		      "%s: expected one HELP and one TYPE line, got %d and %d:%s",
		      f->name, expo_count_prefix(r->body, help_line),
		      expo_count_prefix(r->body, type_any), around);
		CHECK(h < t, "# HELP %s must precede its # TYPE line:%s", f->name,
		      around);

		const char *s = first_sample(r->body, strcmp(f->type, "histogram") == 0 ?
					     "http_request_duration_seconds_bucket" :
					     f->name);

		CHECK(s, "family %s has no sample line:%s", f->name, around);
		CHECK(s > t, "the first sample of %s comes before its # TYPE line:%s",
		      f->name, around);
	}
	free(r);
}

static void sentryagent_counters_and_gauges_are_zero(void **state)
{
	struct http_response *r = resp_new();

	scrape(port_of(state), NULL, r);
	for (size_t i = 0; i < NFAM; i++) {
		if (strncmp(families[i].name, "sentryagent_", 12) != 0)
			continue;
		double v = sample_value(r->body, families[i].name);

		CHECK(v == 0, "%s: expected 0 (no token or agent code yet), got %g",
		      families[i].name, v);
	}
	free(r);
}

/* Parses `{labels}` of a line that starts with name; copies the label text
 * without `,le="..."` into key and le's value into le. */
static bool split_bucket(const char *line, const char *name, char *key,
			 size_t kcap, char *le, size_t lecap)
{
	size_t nl_ = strlen(name);

	if (strncmp(line, name, nl_) != 0 || line[nl_] != '{')
		return false;
	const char *close = strstr(line, "} ");
	const char *lep = strstr(line, ",le=\"");
	const char *eol = strchr(line, '\n');

	if (!close || !lep || (eol && close > eol) || lep > close)
		return false;
	snprintf(key, kcap, "%.*s}", (int)(lep - line - nl_), line + nl_);
	const char *q = lep + 5, *qe = strchr(q, '"');

	if (!qe || qe > close)
		return false;
	snprintf(le, lecap, "%.*s", (int)(qe - q), q);
	return true;
}

static void request_duration_histogram_has_the_spec_buckets_and_matches_the_counter(void **state)
{
	static const double want_le[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					  0.5, 1, 2.5, 5, 10, INFINITY };
	const size_t nle = sizeof(want_le) / sizeof(want_le[0]);
	struct http_response *r = resp_new();
	char around[4096];
	int series = 0;

	warm_up(port_of(state));
	scrape(port_of(state), NULL, r);

	/* Every http_requests_total series has a histogram with the same
	 * labels, the 12 buckets in order, cumulative, +Inf == _count ==
	 * the counter. */
	for (const char *line = r->body; line && *line;) {
		const char *nl = strchr(line, '\n');

		if (strncmp(line, "http_requests_total{", 20) == 0) {
			const char *close = strstr(line, "} ");

			CHECK(close && (!nl || close < nl), "malformed line %.200s", line);
			char labels[512], probe[700];
			double total = strtod(close + 2, NULL), prev = -1, v;

			snprintf(labels, sizeof(labels), "%.*s", (int)(close - line - 18),
				 line + 19); /* {...} */
			CHECK(strncmp(labels, "{method=\"", 9) == 0 &&
			      strstr(labels, "\",route=\"") &&
			      strstr(labels, "\",status_code=\""),
			      "http_requests_total labels must be method, route, "
			      "status_code in that order; got %s", labels);
			series++;

			size_t k = 0;
			char key[512], le[64];

			for (const char *b = r->body; b && *b;) {
				const char *bn = strchr(b, '\n');

				if (split_bucket(b, "http_request_duration_seconds_bucket",
						 key, sizeof(key), le, sizeof(le)) &&
				    strcmp(key, labels) == 0) {
					expo_lines(r->body, labels, around, sizeof(around));
					CHECK(k < nle, "more than %zu buckets for %s:%s", nle,
					      labels, around);
					double lev = strcmp(le, "+Inf") == 0 ? INFINITY :
						     strtod(le, NULL);

					CHECK(lev == want_le[k] &&
					      (k + 1 < nle || strcmp(le, "+Inf") == 0),
					      "bucket %zu of %s: expected le=\"%g\"%s, got "
					      "le=\"%s\":%s", k, labels, want_le[k],
					      k + 1 == nle ? " (+Inf)" : "", le, around);
					v = strtod(strstr(b, "} ") + 2, NULL);
					CHECK(v >= prev, "buckets of %s are not cumulative:%s",
					      labels, around);
					prev = v;
					k++;
				}
				b = bn ? bn + 1 : NULL;
			}
			expo_lines(r->body, labels, around, sizeof(around));
			CHECK(k == nle, "expected %zu buckets for %s, found %zu:%s",
			      nle, labels, k, around);
			snprintf(probe, sizeof(probe), "http_request_duration_seconds_count%s",
				 labels);
			CHECK(expo_find(r->body, probe, &v),
			      "no %s line:%s", probe, around);
			CHECK(v == total && prev == total,
			      "%s: counter %g, histogram _count %g, +Inf bucket %g; "
			      "all three must be equal:%s", labels, total, v, prev,
			      around);
			snprintf(probe, sizeof(probe), "http_request_duration_seconds_sum%s",
				 labels);
			CHECK(expo_find(r->body, probe, &v), "no %s line:%s", probe,
			      around);
			CHECK(v >= 0 && v <= total * 10.0,
			      "%s = %g is not a plausible sum of %g durations", probe,
			      v, total);
		}
		line = nl ? nl + 1 : NULL;
	}
	CHECK(series > 0, "no http_requests_total{...} series after a GET /health");
	free(r);
}

static void promtool_check_metrics_accepts_the_text_exposition(void **state)
{
	uint16_t port = port_of(state);
	struct http_response *r = resp_new();

	/* Some variety: 404 and 405 label sets, a HEAD. */
	h_exchange(port, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_error(r, 404, "NOT_FOUND");
	h_exchange(port, "POST /health HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_error(r, 405, "METHOD_NOT_ALLOWED");
	h_exchange(port, "HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n", true, r);
	expect_status(r, 200, true);
	scrape(port, NULL, r);
	scrape(port, NULL, r); /* now with a /metrics series too */
	expect_promtool_ok(r->body, r->body_len, "GET /metrics (text 0.0.4)");
	free(r);
}

static void gzip_metrics_when_accepted_decompresses_to_a_valid_exposition(void **state)
{
	uint16_t port = port_of(state);
	struct http_response *r = resp_new();
	char *plain = malloc(1 << 20);
	char why[256];

	CHECK(plain != NULL, "out of memory");
	scrape_req(port, "GET", NULL, "gzip", r);
	expect_status(r, 200, false);
	expect_header(r, "Content-Encoding", "gzip", true);
	expect_header(r, "Content-Type", TEXT_CT, false);
	expect_vary_accept_encoding(r, "GET /metrics with Accept-Encoding: gzip");
	CHECK(r->body_len >= 18 && (unsigned char)r->body[0] == 0x1f &&
	      (unsigned char)r->body[1] == 0x8b,
	      "Content-Encoding: gzip but the body (%zu bytes) does not start "
	      "with the gzip magic 1f 8b", r->body_len);
	size_t n = gunzip(r->body, r->body_len, plain, 1 << 20, why, sizeof(why));

	CHECK(n != (size_t)-1, "gzip body does not decompress: %s", why);
	CHECK(line_starting(plain, "# TYPE http_requests_total counter"),
	      "decompressed body lacks \"# TYPE http_requests_total counter\"; "
	      "starts:\n%.800s", plain);
	expect_promtool_ok(plain, n, "the gunzipped GET /metrics body");

	/* OpenMetrics and gzip together. */
	scrape_req(port, "GET", PROM_ACCEPT, "gzip", r);
	expect_status(r, 200, false);
	expect_header(r, "Content-Encoding", "gzip", true);
	expect_header(r, "Content-Type", OM_CT, false);
	n = gunzip(r->body, r->body_len, plain, 1 << 20, why, sizeof(why));
	CHECK(n != (size_t)-1, "gzip OpenMetrics body does not decompress: %s", why);
	CHECK(n >= 6 && strcmp(plain + n - 6, "# EOF\n") == 0,
	      "gunzipped OpenMetrics body does not end with \"# EOF\\n\"");
	free(plain);
	free(r);
}

static void accept_encoding_without_gzip_gets_identity(void **state)
{
	static const char *const cases[] = { "identity", "gzip;q=0", "br",
					     "deflate, gzip;q=0" };
	uint16_t port = port_of(state);
	struct http_response *r = resp_new();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrape_req(port, "GET", NULL, cases[i], r);
		expect_status(r, 200, false);
		CHECK(!resp_header(r, "Content-Encoding"),
		      "Accept-Encoding: %s: expected no Content-Encoding (RFC 9110 "
		      "section 12.5.3: q=0 means not acceptable), got %s", cases[i],
		      resp_header(r, "Content-Encoding"));
		expect_vary_accept_encoding(r, cases[i]);
		CHECK(line_starting(r->body, "# TYPE http_requests_total counter"),
		      "Accept-Encoding: %s: body is not a plain exposition: %.200s",
		      cases[i], r->body);
	}
	/* A list with gzip acceptable. */
	scrape_req(port, "GET", NULL, "deflate, gzip;q=1.0, *;q=0.5", r);
	expect_status(r, 200, false);
	expect_header(r, "Content-Encoding", "gzip", true);
	free(r);
}

static void head_metrics_sends_the_get_headers_and_no_body(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *h = resp_new(), *g = resp_new();

	/* In one write: body bytes after HEAD would break the next parse. */
	conn_send_str(c, "HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
			 "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	expect_response(c, h, true);
	expect_status(h, 200, true);
	expect_header(h, "Content-Type", TEXT_CT, false);
	expect_vary_accept_encoding(h, "HEAD /metrics");
	expect_response(c, g, false);
	expect_health_ok(g);
	conn_close(c);
	free(h);
	free(g);
}

static void post_metrics_is_405_allow_get_head(void **state)
{
	static const char *const methods[] = { "POST" };
	struct http_response *r = resp_new();

	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		char *req = h_strf("%s /metrics HTTP/1.1\r\nHost: t\r\n"
				   "Content-Length: 0\r\n\r\n", methods[i]);

		h_exchange(port_of(state), req, false, r);
		expect_error(r, 405, "METHOD_NOT_ALLOWED");
		expect_header(r, "Allow", "GET, HEAD", false);
		free(req);
	}
	free(r);
}

/* ---- The process collector against /proc/PID ---- */

static bool proc_read(pid_t pid, const char *file, char *buf, size_t cap)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	size_t n = fread(buf, 1, cap - 1, f);

	fclose(f);
	buf[n] = '\0';
	return true;
}

static long long proc_soft_nofile(pid_t pid)
{
	char buf[4096];

	if (!proc_read(pid, "limits", buf, sizeof(buf)))
		return -1;
	const char *p = strstr(buf, "Max open files");

	if (!p)
		return -1;
	p += 14;
	while (*p == ' ')
		p++;
	return strtoll(p, NULL, 10);
}

static long long proc_status_kb(pid_t pid, const char *key)
{
	char buf[8192];

	if (!proc_read(pid, "status", buf, sizeof(buf)))
		return -1;
	const char *p = strstr(buf, key);

	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* Entries of /proc/PID/fd (the server's open descriptors), or -1. */
static int proc_count_fds(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return -1;
	for (int i = 0; i < 1000000; i++) {
		struct dirent *e = readdir(d);

		if (!e)
			break;
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

static void process_collector_matches_the_server_process(void **state)
{
	struct server *s = *state;
	struct http_response *r = resp_new();
	int64_t since = h_now_ms() - group_started_ms;

	/* Sampled once a second: let a sample of the running server exist. */
	if (since < 1200)
		h_sleep_ms((int)(1200 - since));
	scrape(s->port, NULL, r);
	const char *b = r->body;
	double u = sample_value(b, "process_cpu_user_seconds_total");
	double sy = sample_value(b, "process_cpu_system_seconds_total");
	double cpu = sample_value(b, "process_cpu_seconds_total");
	double rss = sample_value(b, "process_resident_memory_bytes");
	double vm = sample_value(b, "process_virtual_memory_bytes");
	double heap = sample_value(b, "process_heap_bytes");
	double fds = sample_value(b, "process_open_fds");
	double maxfds = sample_value(b, "process_max_fds");
	double start = sample_value(b, "process_start_time_seconds");

	CHECK(u >= 0 && sy >= 0, "negative CPU time: user %g, system %g", u, sy);
	CHECK(fabs(cpu - (u + sy)) <= 0.002,
	      "process_cpu_seconds_total %.6f != user %.6f + system %.6f", cpu, u,
	      sy);

	long long kb = proc_status_kb(s->pid, "VmRSS:");

	CHECK(rss > 0, "process_resident_memory_bytes %g", rss);
	CHECK(kb > 0 && rss >= kb * 1024.0 / 2 && rss <= kb * 1024.0 * 2 + (4 << 20),
	      "process_resident_memory_bytes %.0f vs VmRSS %lld kB of the server "
	      "(expected within a factor of 2)", rss, kb);
	CHECK(vm >= rss, "process_virtual_memory_bytes %.0f < resident %.0f", vm,
	      rss);
	CHECK(heap > 0 && heap <= vm, "process_heap_bytes %.0f (virtual %.0f)",
	      heap, vm);

	long long soft = proc_soft_nofile(s->pid);

	CHECK(maxfds == (double)soft,
	      "process_max_fds %.0f, but /proc/%d/limits says Max open files %lld "
	      "(soft)", maxfds, (int)s->pid, soft);
	int now_fds = proc_count_fds(s->pid);

	CHECK(fds >= 3 && fds <= maxfds && fabs(fds - now_fds) <= 20,
	      "process_open_fds %.0f, /proc/%d/fd has %d entries", fds,
	      (int)s->pid, now_fds);

	CHECK(start >= (double)group_started_before - 3 &&
	      start <= (double)group_started_after + 3,
	      "process_start_time_seconds %.3f, but the server was started "
	      "between %lld and %lld (Unix time)", start,
	      (long long)group_started_before, (long long)group_started_after);
	free(r);
}

#define HOLD 200

static void process_open_fds_follows_200_held_connections(void **state)
{
	struct server *s = *state;
	struct http_response *r = resp_new();
	struct conn *held[HOLD];
	char err[2048];

	scrape(s->port, NULL, r);
	double before = sample_value(r->body, "process_open_fds");

	for (int i = 0; i < HOLD; i++)
		held[i] = NULL;
	for (int i = 0; i < HOLD; i++) {
		int fd = h_try_connect(s->port);

		if (fd < 0) {
			for (int j = 0; j < i; j++)
				conn_close(held[j]);
			H_FAIL("connection %d of %d: %s", i, HOLD, strerror(-fd));
		}
		held[i] = conn_wrap(fd);
		/* A request each: the server has surely accepted it. */
		if (h_try_send_str(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n") != 0 ||
		    conn_read_response(held[i], r, false, 5000, err, sizeof(err)) != 0) {
			for (int j = 0; j <= i; j++)
				conn_close(held[j]);
			H_FAIL("request on held connection %d: %s", i, err);
		}
	}
	h_sleep_ms(1100); /* process metrics are sampled once a second */
	scrape(s->port, NULL, r);
	double during = sample_value(r->body, "process_open_fds");
	int proc_during = proc_count_fds(s->pid);

	for (int i = 0; i < HOLD; i++)
		conn_close(held[i]);
	CHECK(during >= before + HOLD - 10,
	      "process_open_fds was %.0f, then %.0f with %d more connections held "
	      "for 1.1 s (expected at least %.0f; /proc/%d/fd had %d entries)",
	      before, during, HOLD, before + HOLD - 10, (int)s->pid, proc_during);

	h_sleep_ms(1100);
	scrape(s->port, NULL, r);
	double after = sample_value(r->body, "process_open_fds");

	CHECK(after <= during - HOLD + 10,
	      "process_open_fds %.0f with %d connections held, %.0f 1.1 s after "
	      "closing them (expected at most %.0f)", during, HOLD, after,
	      during - HOLD + 10);
	free(r);
}

static int group_setup(void **state)
{
	static const char *const args[] = { "--workers", "2", NULL };

	group_started_before = time(NULL);
	group_started_ms = h_now_ms();
	int rc = h_group_setup_with(state, args);

	group_started_after = time(NULL);
	return rc;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(get_metrics_without_accept_is_text_0_0_4),
		BB_TEST(get_metrics_with_text_accept_is_text_0_0_4),
		BB_TEST(get_metrics_with_prometheus_accept_is_openmetrics_with_eof),
		BB_TEST(openmetrics_counter_metadata_drops_total_but_samples_keep_it),
		BB_TEST(families_have_one_help_and_type_line_before_their_samples),
		BB_TEST(sentryagent_counters_and_gauges_are_zero),
		BB_TEST(request_duration_histogram_has_the_spec_buckets_and_matches_the_counter),
		BB_TEST(promtool_check_metrics_accepts_the_text_exposition),
		BB_TEST(gzip_metrics_when_accepted_decompresses_to_a_valid_exposition),
		BB_TEST(accept_encoding_without_gzip_gets_identity),
		BB_TEST(head_metrics_sends_the_get_headers_and_no_body),
		BB_TEST(post_metrics_is_405_allow_get_head),
		BB_TEST(process_collector_matches_the_server_process),
		BB_TEST(process_open_fds_follows_200_held_connections),
	};

	h_init();
	return H_RUN_GROUP("blackbox_metrics", tests, group_setup,
			   h_group_teardown);
}
