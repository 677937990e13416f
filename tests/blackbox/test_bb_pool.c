/*
 * Black-box: the pool view of seed 004 (plugin-metrics API) mapped onto
 * connections: GET /metrics/api/metrics/ (JSON), .../prometheus (text),
 * .../stats (per worker). size = --max-connections; creating = accepted,
 * first request head not complete; active = request in progress (the one
 * asking included); idle = keep-alive between requests; total = sum;
 * utilization = active / size.
 * The group server runs --workers 2 --max-connections 100; the exact-count
 * tests start their own.
 */
#include "harness.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROMTOOL "/usr/bin/promtool"
#define POOL_PATH "/metrics/api/metrics/"

static int64_t group_started_ms;

/* Checks 200, application/json and JSON syntax of a response. */
static void expect_json_200(const struct http_response *r, const char *what)
{
	char why[160];

	CHECK(r->status == 200, "%s: expected 200, got \"%s\" (body %.300s)", what,
	      r->raw_status_line, r->body);
	expect_status(r, 200, false);
	CHECK(resp_content_type_is(r, "application/json"),
	      "%s: expected Content-Type application/json, got %s", what,
	      resp_header(r, "Content-Type") ? resp_header(r, "Content-Type") :
					       "(none)");
	CHECK(json_valid(r->body, r->body_len, why, sizeof(why)),
	      "%s: body is not valid JSON (%s): %.500s", what, why, r->body);
}

/* The text of the object value of member `key` (braces included), copied
 * into out; strings are skipped when matching braces. */
static bool json_object_of(const char *body, const char *key, char *out, size_t cap)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	const char *p = strstr(body, pat);

	if (!p)
		return false;
	p += strlen(pat);
	while (*p == ' ' || *p == ':' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p != '{' && *p != '[')
		return false;
	int depth = 0;
	bool in_str = false;
	const char *q = p;

	for (; *q; q++) {
		if (in_str) {
			if (*q == '\\' && q[1])
				q++;
			else if (*q == '"')
				in_str = false;
			continue;
		}
		if (*q == '"')
			in_str = true;
		else if (*q == '{' || *q == '[')
			depth++;
		else if ((*q == '}' || *q == ']') && --depth == 0)
			break;
	}
	if (!*q || (size_t)(q - p + 2) > cap)
		return false;
	memcpy(out, p, (size_t)(q - p + 1));
	out[q - p + 1] = '\0';
	return true;
}

struct pool {
	double v[6];
	char raw[6][40];
	char text[512];
};

static const char *const pool_keys[6] = { "size", "active", "idle",
					  "creating", "total", "utilization" };
enum { P_SIZE, P_ACTIVE, P_IDLE, P_CREATING, P_TOTAL, P_UTIL };

static bool is_int_token(const char *raw)
{
	if (*raw == '-')
		return false;
	for (const char *p = raw; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return *raw != '\0';
}

/* Parses and checks the pool object's shape and invariants. */
static void parse_pool(const char *body, struct pool *p, const char *what)
{
	CHECK(json_object_of(body, "pool", p->text, sizeof(p->text)),
	      "%s: no \"pool\" object in %.500s", what, body);
	for (int i = 0; i < 6; i++) {
		CHECK(json_get_number(p->text, pool_keys[i], &p->v[i], p->raw[i],
				      sizeof(p->raw[i])),
		      "%s: pool.%s missing or not a number in %s", what, pool_keys[i],
		      p->text);
		if (i != P_UTIL)
			CHECK(is_int_token(p->raw[i]),
			      "%s: pool.%s must be a non-negative integer, got %s",
			      what, pool_keys[i], p->raw[i]);
	}
	CHECK(p->v[P_TOTAL] == p->v[P_ACTIVE] + p->v[P_IDLE] + p->v[P_CREATING],
	      "%s: total must be active + idle + creating: %s", what, p->text);
	CHECK(p->v[P_SIZE] > 0, "%s: pool.size %s", what, p->raw[P_SIZE]);
	double want = p->v[P_ACTIVE] / p->v[P_SIZE];

	CHECK(fabs(p->v[P_UTIL] - want) <= 1e-6 + want * 1e-3,
	      "%s: utilization must be active / size = %g, got %s: %s", what,
	      want, p->raw[P_UTIL], p->text);
	CHECK(p->v[P_ACTIVE] >= 1,
	      "%s: active must count the request asking (>= 1): %s", what, p->text);
}

/* ---- Exact counts ---- */

static bool pool_is(const struct pool *p, double size, double active, double idle,
		    double creating)
{
	return p->v[P_SIZE] == size && p->v[P_ACTIVE] == active &&
	       p->v[P_IDLE] == idle && p->v[P_CREATING] == creating &&
	       p->v[P_TOTAL] == active + idle + creating &&
	       fabs(p->v[P_UTIL] - active / size) < 1e-9;
}

/*
 * Asks GET POOL_PATH on q until the pool counts are exactly those (see
 * pool_is), at most 50 times over 1 s: counts may take a moment to settle.
 * Returns whether they were reached; *p holds the last pool seen and
 * *tries the number of requests made, less one.
 */
static bool wait_pool_is(struct conn *q, struct http_response *r,
			 struct pool *p, double size, double active,
			 double idle, double creating, int *tries)
{
	int64_t deadline = h_now_ms() + 1000;
	char err[2048];

	for (*tries = 0; *tries < 50; ++*tries) {
		conn_send_str(q, "GET " POOL_PATH " HTTP/1.1\r\nHost: t\r\n\r\n");
		if (conn_read_response(q, r, false, 5000, err, sizeof(err)) != 0)
			H_FAIL("GET " POOL_PATH " (try %d): %s", *tries + 1, err);
		expect_json_200(r, "GET " POOL_PATH);
		parse_pool(r->body, p, "GET " POOL_PATH);
		if (pool_is(p, size, active, idle, creating))
			return true;
		if (h_now_ms() > deadline)
			return false;
		h_sleep_ms(50);
	}
	return false;
}

static void pool_counts_idle_creating_and_active(const char *workers)
{
	const char *const args[] = { "--workers", workers, "--max-connections",
				     "100", NULL };
	struct server s;
	struct http_response *r = resp_new();
	struct conn *idle[5], *silent[3], *half[2], *q;
	struct pool p;
	int tries;

	server_start(&s, args);
	for (int i = 0; i < 5; i++) {
		idle[i] = conn_open(s.port);
		conn_send_str(idle[i], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
		expect_response(idle[i], r, false);
		expect_health_ok(r);
	}
	for (int i = 0; i < 3; i++)
		silent[i] = conn_open(s.port);
	for (int i = 0; i < 2; i++) {
		half[i] = conn_open(s.port);
		conn_send_str(half[i], "GET /health HTTP/1.1\r\nHo");
	}
	/* One keep-alive connection asks repeatedly: while it asks, it is
	 * the one active connection. Counts may take a moment to settle. */
	q = conn_open(s.port);
	CHECK(wait_pool_is(q, r, &p, 100, 1, 5, 5, &tries),
	      "--workers %s --max-connections 100, holding 5 idle keep-alive "
	      "connections, 3 silent ones and 2 with half a request head, and "
	      "asking on one more: expected pool {size 100, active 1, idle 5, "
	      "creating 5, total 11, utilization 0.01}; after %d tries over "
	      "1 s got %s", workers, tries + 1, p.text);

	for (int i = 0; i < 5; i++)
		conn_close(idle[i]);
	for (int i = 0; i < 3; i++)
		conn_close(silent[i]);
	for (int i = 0; i < 2; i++)
		conn_close(half[i]);
	conn_close(q);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

static void pool_counts_connections_by_state_one_worker(void **state)
{
	(void)state;
	pool_counts_idle_creating_and_active("1");
}

static void pool_counts_are_summed_across_two_workers(void **state)
{
	(void)state;
	pool_counts_idle_creating_and_active("2");
}

/* A keep-alive connection part-way through the head of its second request
 * is between requests: idle, not creating (first request only) and not
 * active (no complete head). */
static void pool_counts_a_half_sent_second_request_as_idle(void **state)
{
	const char *const args[] = { "--workers", "1", "--max-connections", "100",
				     NULL };
	struct server s;
	struct http_response *r = resp_new();
	struct pool p;
	int tries;

	(void)state;
	server_start(&s, args);
	struct conn *c = conn_open(s.port), *q = conn_open(s.port);

	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	conn_send_str(c, "GET /health HTTP/1.1\r\nHo");
	CHECK(wait_pool_is(q, r, &p, 100, 1, 1, 0, &tries),
	      "one keep-alive connection with half the head of its second "
	      "request, one asking: expected pool {size 100, active 1, idle 1, "
	      "creating 0, total 2, utilization 0.01}; after %d tries over 1 s "
	      "got %s", tries + 1, p.text);
	conn_close(c);
	conn_close(q);
	int code = server_stop(&s);

	CHECK(code == 0, "exit status after SIGTERM: %d", code);
	free(r);
}

/* ---- Shape ---- */

static void check_pool_response(const struct http_response *r, const char *what,
				struct pool *p, double *uptime)
{
	char raw[40], ts[64];

	expect_json_200(r, what);
	parse_pool(r->body, p, what);
	CHECK(p->v[P_SIZE] == 100, "%s: pool.size must be --max-connections "
	      "(100), got %s", what, p->raw[P_SIZE]);
	CHECK(json_get_number(r->body, "uptime", uptime, raw, sizeof(raw)),
	      "%s: no number \"uptime\" in %.400s", what, r->body);
	CHECK(is_int_token(raw), "%s: uptime must be an integer number of "
	      "seconds, got %s", what, raw);
	double elapsed = (double)(h_now_ms() - group_started_ms) / 1000.0;

	CHECK(*uptime >= floor(elapsed) - 1 && *uptime <= ceil(elapsed) + 1,
	      "%s: uptime %s, but the server started %.1f s ago", what, raw,
	      elapsed);
	CHECK(json_get_string(r->body, "timestamp", ts, sizeof(ts)),
	      "%s: no string \"timestamp\" in %.400s", what, r->body);
	int64_t t = h_parse_iso_ms(ts), now = h_wall_ms();

	CHECK(t >= 0, "%s: timestamp \"%s\" is not YYYY-MM-DDTHH:MM:SS.mmmZ",
	      what, ts);
	CHECK(llabs(t - now) <= 2000, "%s: timestamp %s is %lld ms from the "
	      "test's clock", what, ts, (long long)(t - now));
}

static void pool_json_has_pool_uptime_and_iso_timestamp(void **state)
{
	struct http_response *r = resp_new();
	struct pool p;
	double up1, up2;

	h_exchange(port_of(state), "GET " POOL_PATH " HTTP/1.1\r\nHost: t\r\n\r\n",
		   false, r);
	check_pool_response(r, "GET " POOL_PATH, &p, &up1);
	h_sleep_ms(1100);
	h_exchange(port_of(state), "GET /metrics/api/metrics HTTP/1.1\r\nHost: t\r\n\r\n",
		   false, r);
	check_pool_response(r, "GET /metrics/api/metrics (no trailing slash)", &p,
			    &up2);
	CHECK(up2 >= up1 + 1, "uptime %g, then %g 1.1 s later", up1, up2);
	free(r);
}

static void head_pool_json_sends_headers_only(void **state)
{
	struct conn *c = conn_open(port_of(state));
	struct http_response *r = resp_new();

	conn_send_str(c, "HEAD " POOL_PATH " HTTP/1.1\r\nHost: t\r\n\r\n"
			 "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	expect_response(c, r, true);
	expect_status(r, 200, true);
	CHECK(resp_content_type_is(r, "application/json"),
	      "HEAD " POOL_PATH ": Content-Type %s", resp_header(r, "Content-Type"));
	expect_response(c, r, false);
	expect_health_ok(r);
	conn_close(c);
	free(r);
}

/* ---- Prometheus view ---- */

struct seed_family {
	const char *name, *help, *type;
};

/* The seed's example response, verbatim. */
static const struct seed_family seed_families[] = {
	{ "buntime_pool_size", "Maximum pool size", "gauge" },
	{ "buntime_pool_active", "Active workers", "gauge" },
	{ "buntime_pool_idle", "Idle workers", "gauge" },
	{ "buntime_pool_creating", "Workers being created", "gauge" },
	{ "buntime_pool_total", "Total workers", "gauge" },
	{ "buntime_pool_utilization", "Pool utilization ratio", "gauge" },
	{ "buntime_uptime_seconds", "Server uptime in seconds", "counter" },
};

static void pool_prometheus_has_exactly_the_seed_families(void **state)
{
	struct http_response *r = resp_new();
	char line[256];
	double v[7];

	h_exchange(port_of(state),
		   "GET /metrics/api/metrics/prometheus HTTP/1.1\r\nHost: t\r\n\r\n",
		   false, r);
	expect_status(r, 200, false);
	expect_header(r, "Content-Type", "text/plain; charset=utf-8", false);
	for (size_t i = 0; i < 7; i++) {
		const struct seed_family *f = &seed_families[i];

		snprintf(line, sizeof(line), "# HELP %s %s\n", f->name, f->help);
		CHECK(strstr(r->body, line), "expected the line \"# HELP %s %s\"; "
		      "body:\n%s", f->name, f->help, r->body);
		snprintf(line, sizeof(line), "# TYPE %s %s\n", f->name, f->type);
		CHECK(strstr(r->body, line), "expected the line \"# TYPE %s %s\"; "
		      "body:\n%s", f->name, f->type, r->body);
		CHECK(expo_find(r->body, f->name, &v[i]) && !isnan(v[i]),
		      "expected a sample line \"%s <value>\"; body:\n%s", f->name,
		      r->body);
	}
	CHECK(expo_count_prefix(r->body, "# TYPE ") == 7 &&
	      expo_count_prefix(r->body, "# HELP ") == 7,
	      "expected exactly the 7 seed families, got %d TYPE and %d HELP "
	      "lines:\n%s", expo_count_prefix(r->body, "# TYPE "),
	      expo_count_prefix(r->body, "# HELP "), r->body);
	CHECK(v[0] == 100, "buntime_pool_size %g, expected --max-connections 100", v[0]);
	CHECK(v[1] >= 1, "buntime_pool_active %g: the request asking is active", v[1]);
	CHECK(v[4] == v[1] + v[2] + v[3], "buntime_pool_total %g != active %g + "
	      "idle %g + creating %g", v[4], v[1], v[2], v[3]);
	CHECK(fabs(v[5] - v[1] / v[0]) <= 1e-6, "buntime_pool_utilization %g != "
	      "active / size = %g", v[5], v[1] / v[0]);
	double elapsed = (double)(h_now_ms() - group_started_ms) / 1000.0;

	CHECK(v[6] >= 0 && v[6] <= ceil(elapsed) + 1,
	      "buntime_uptime_seconds %g, server started %.1f s ago", v[6], elapsed);
	free(r);
}

/* Non-empty lines of promtool's stdout and stderr. */
static int promtool_findings(const struct run_result *rr, char lines[][256], int max)
{
	int n = 0;
	const char *srcs[2] = { rr->out, rr->err };

	for (int s = 0; s < 2; s++) {
		for (const char *l = srcs[s]; l && *l;) {
			const char *nl = strchr(l, '\n');
			size_t len = nl ? (size_t)(nl - l) : strlen(l);

			if (len && n < max)
				snprintf(lines[n], 256, "%.*s", (int)len, l);
			if (len)
				n++;
			l = nl ? nl + 1 : NULL;
		}
	}
	return n;
}

static void pool_prometheus_passes_promtool_but_for_the_two_seed_name_lints(void **state)
{
	struct http_response *r = resp_new();
	struct run_result *rr = malloc(sizeof(*rr));
	const char *argv[] = { PROMTOOL, "check", "metrics", NULL };
	char lines[8][256];

	CHECK(rr != NULL, "out of memory");
	h_exchange(port_of(state),
		   "GET /metrics/api/metrics/prometheus HTTP/1.1\r\nHost: t\r\n\r\n",
		   false, r);
	expect_status(r, 200, false);
	h_run_prog(argv, r->body, r->body_len, 20000, rr);
	int n = promtool_findings(rr, lines, 8);

	/* Two names of seed 004 trip promtool's lint (exit 3), and nothing
	 * else may: buntime_uptime_seconds is a counter without _total, and
	 * buntime_pool_total is a gauge ending in _total. Exit 1 would be a
	 * parse error. */
	static const char *const lints[2] = {
		"buntime_pool_total non-counter metrics should not have \"_total\" suffix",
		"buntime_uptime_seconds counter metrics should have \"_total\" suffix",
	};
	bool seen[2] = { false, false }, other = false;

	for (int i = 0; i < n && i < 8; i++) {
		bool known = false;

		for (int k = 0; k < 2; k++)
			if (strcmp(lines[i], lints[k]) == 0 && !seen[k])
				known = seen[k] = true;
		other |= !known;
	}
	CHECK(rr->exit_code == 3 && n == 2 && seen[0] && seen[1] && !other,
	      "promtool check metrics on /metrics/api/metrics/prometheus: "
	      "expected exit 3 with exactly the two lint findings the seed's "
	      "names cause:\n  %s\n  %s\ngot exit %d and %d line(s):\n%s%s\n"
	      "body:\n%s", lints[0], lints[1], rr->exit_code, n, rr->out,
	      rr->err, r->body);
	free(rr);
	free(r);
}

/* ---- Stats ---- */

struct worker_view {
	char id[64], app[96], state[32];
	double requests, uptime, rss, heap;
	char raw_req[40], raw_up[40], raw_rss[40], raw_heap[40];
};

static int parse_workers(const char *body, struct worker_view *w, int max,
			 const char *what)
{
	char arr[16384];
	int n = 0;

	CHECK(json_object_of(body, "workers", arr, sizeof(arr)) && arr[0] == '[',
	      "%s: no \"workers\" array in %.600s", what, body);
	for (const char *p = arr + 1; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r')
			p++;
		if (*p != '{')
			break;
		/* Wrap the element so json_object_of can cut it out. */
		char wrapped[4096], obj[4096];
		const char *start = p;
		int depth = 0;
		bool in_str = false;

		for (; *p; p++) {
			if (in_str) {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '"')
					in_str = false;
				continue;
			}
			if (*p == '"')
				in_str = true;
			else if (*p == '{')
				depth++;
			else if (*p == '}' && --depth == 0)
				break;
		}
		CHECK(*p == '}', "%s: unterminated worker object", what);
		p++;
		snprintf(wrapped, sizeof(wrapped), "{\"w\":%.*s}", (int)(p - start), start);
		CHECK(json_object_of(wrapped, "w", obj, sizeof(obj)), "%s: worker %d",
		      what, n);
		CHECK(n < max, "%s: more than %d workers: %.600s", what, max, body);
		struct worker_view *x = &w[n];
		char mem[512];

		CHECK(json_get_string(obj, "id", x->id, sizeof(x->id)) &&
		      json_get_string(obj, "app", x->app, sizeof(x->app)) &&
		      json_get_string(obj, "state", x->state, sizeof(x->state)),
		      "%s: worker %d lacks string id, app or state: %s", what, n, obj);
		CHECK(json_get_number(obj, "requests", &x->requests, x->raw_req,
				      sizeof(x->raw_req)) &&
		      json_get_number(obj, "uptime", &x->uptime, x->raw_up,
				      sizeof(x->raw_up)),
		      "%s: worker %d lacks number requests or uptime: %s", what, n, obj);
		CHECK(json_object_of(obj, "memory", mem, sizeof(mem)) &&
		      json_get_number(mem, "rss", &x->rss, x->raw_rss, sizeof(x->raw_rss)) &&
		      json_get_number(mem, "heapUsed", &x->heap, x->raw_heap,
				      sizeof(x->raw_heap)),
		      "%s: worker %d lacks memory {rss, heapUsed}: %s", what, n, obj);
		n++;
	}
	return n;
}

static double requests_sum(const struct worker_view *w, int n)
{
	double s = 0;

	for (int i = 0; i < n; i++)
		s += w[i].requests;
	return s;
}

static void stats_lists_each_worker_with_requests_summing_to_completed(void **state)
{
	uint16_t port = port_of(state);
	struct http_response *r = resp_new();
	struct run_result *rr = malloc(sizeof(*rr));
	struct worker_view w[8];
	struct pool p;
	char app[96], ver[64] = "";

	CHECK(rr != NULL, "out of memory");
	h_run((const char *const[]){ "--version", NULL }, NULL, 5000, rr);
	int got_ver = sscanf(rr->out, "ringside %63s", ver);

	CHECK(got_ver == 1, "--version printed %.200s", rr->out);
	snprintf(app, sizeof(app), "ringside@%s", ver);

	/* Every request this server completed, as /metrics counts them. */
	double scraped = 0;

	h_exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_status(r, 200, false);
	for (const char *l = r->body; l && *l;) {
		const char *nl = strchr(l, '\n'), *sp;

		if (strncmp(l, "http_requests_total{", 20) == 0 &&
		    (sp = strstr(l, "} ")) && (!nl || sp < nl))
			scraped += strtod(sp + 2, NULL);
		l = nl ? nl + 1 : NULL;
	}
	h_sleep_ms(100); /* a completion may trail the bytes the client got */

	h_exchange(port, "GET /metrics/api/metrics/stats HTTP/1.1\r\nHost: t\r\n\r\n",
		   false, r);
	expect_json_200(r, "GET /metrics/api/metrics/stats");
	parse_pool(r->body, &p, "stats");
	CHECK(p.v[P_SIZE] == 100, "stats: pool.size %s, expected 100", p.raw[P_SIZE]);
	int n = parse_workers(r->body, w, 8, "stats");

	CHECK(n == 2, "--workers 2: expected 2 entries in workers, got %d: %.800s",
	      n, r->body);
	double elapsed = (double)(h_now_ms() - group_started_ms) / 1000.0;
	int active = 0;

	for (int i = 0; i < n; i++) {
		char want_id[16];
		bool found = false;

		snprintf(want_id, sizeof(want_id), "worker-%d", i);
		for (int k = 0; k < n; k++)
			found |= strcmp(w[k].id, want_id) == 0;
		CHECK(found, "stats: no worker with id \"%s\": %.800s", want_id, r->body);
		CHECK(strcmp(w[i].app, app) == 0, "stats: worker %s app \"%s\", "
		      "expected \"%s\"", w[i].id, w[i].app, app);
		CHECK(strcmp(w[i].state, "active") == 0 || strcmp(w[i].state, "idle") == 0,
		      "stats: worker %s state \"%s\", expected active or idle",
		      w[i].id, w[i].state);
		active += strcmp(w[i].state, "active") == 0;
		CHECK(is_int_token(w[i].raw_req) && is_int_token(w[i].raw_up) &&
		      is_int_token(w[i].raw_rss) && is_int_token(w[i].raw_heap),
		      "stats: worker %s: requests %s, uptime %s, rss %s, heapUsed %s "
		      "must be non-negative integers", w[i].id, w[i].raw_req,
		      w[i].raw_up, w[i].raw_rss, w[i].raw_heap);
		CHECK(w[i].uptime <= ceil(elapsed) + 1,
		      "stats: worker %s uptime %g, the server started %.1f s ago",
		      w[i].id, w[i].uptime, elapsed);
		CHECK(w[i].rss >= w[i].heap && w[i].heap >= 0,
		      "stats: worker %s memory rss %s < heapUsed %s", w[i].id,
		      w[i].raw_rss, w[i].raw_heap);
	}
	CHECK(active == 1, "stats: exactly the worker serving the stats request "
	      "should be active, %d are: %.800s", active, r->body);

	double before = requests_sum(w, n);

	CHECK(before == scraped + 1,
	      "stats: workers' requests sum to %g, but /metrics counted %g "
	      "requests before that scrape, so %g had completed: %.800s", before,
	      scraped, scraped + 1, r->body);

	/* 17 more on one keep-alive connection. */
	struct conn *c = conn_open(port);

	for (int i = 0; i < 17; i++) {
		conn_send_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
		expect_response(c, r, false);
		expect_health_ok(r);
	}
	conn_close(c);
	h_sleep_ms(100); /* a completion may trail the bytes the client got */
	h_exchange(port, "GET /metrics/api/metrics/stats HTTP/1.1\r\nHost: t\r\n\r\n",
		   false, r);
	expect_json_200(r, "GET /metrics/api/metrics/stats");
	n = parse_workers(r->body, w, 8, "stats");
	double after = requests_sum(w, n);

	CHECK(after == before + 18,
	      "stats: requests summed %g; after that stats request and 17 GET "
	      "/health, expected %g, got %g: %.800s", before, before + 18, after,
	      r->body);
	free(rr);
	free(r);
}

/* The process's resident set, from /proc/PID/status, in bytes. */
static double process_rss(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL, "open %s", path);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *v = strstr(buf, "VmRSS:");
	CHECK(v != NULL, "no VmRSS in %s", path);
	return strtod(v + 6, NULL) * 1024;
}

/*
 * Each worker's memory.rss was its whole connection slab (both workers
 * 22.7 MB with the process at 21 MB). Now it is what the worker touched:
 * the workers together stay under the process, and an idle worker of a
 * 16384-connection server holds a few MB, not its slab. heapUsed is what
 * its open connections hold now: never more than its rss.
 */
static void stats_memory_is_what_each_worker_touched(void **state)
{
	static const char *const args[] = {"--workers", "2", "--max-connections", "16384", NULL};
	struct server s;
	struct http_response *r = resp_new();
	struct worker_view w[8];
	(void)state;
	server_start(&s, args);
	for (int i = 0; i < 20; i++)
		expect_health_on_port(s.port);
	h_sleep_ms(1200); /* the main thread measures once a second */
	h_exchange(s.port, "GET /metrics/api/metrics/stats HTTP/1.1\r\nHost: t\r\n\r\n", false,
		   r);
	expect_json_200(r, "stats");
	int n = parse_workers(r->body, w, 8, "stats");
	double proc = process_rss(s.pid), sum = 0;
	CHECK(n == 2, "two workers: %.400s", r->body);
	for (int i = 0; i < n; i++) {
		sum += w[i].rss;
		CHECK(w[i].rss > 0 && w[i].rss < 8e6,
		      "worker %s rss %s: want more than 0 and under 8 MB (its slab is 15 MB)",
		      w[i].id, w[i].raw_rss);
		CHECK(w[i].heap <= w[i].rss, "worker %s heapUsed %s over rss %s", w[i].id,
		      w[i].raw_heap, w[i].raw_rss);
	}
	CHECK(sum <= proc, "workers' rss sum to %.0f, the process's is %.0f: %.400s", sum, proc,
	      r->body);
	free(r);
	CHECK(server_stop(&s) == 0, "clean exit");
}

/* ---- Methods and unknown paths ---- */

static void pool_routes_answer_405_to_post_and_404_to_unknown_subpaths(void **state)
{
	static const char *const paths[] = { POOL_PATH, "/metrics/api/metrics",
					     "/metrics/api/metrics/stats",
					     "/metrics/api/metrics/prometheus",
					     "/metrics/api/metrics/sse" };
	struct http_response *r = resp_new();

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char *req = h_strf("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
				   paths[i]);

		h_exchange(port_of(state), req, false, r);
		CHECK(r->status == 405, "POST %s: expected 405, got \"%s\"", paths[i],
		      r->raw_status_line);
		expect_error(r, 405, "METHOD_NOT_ALLOWED");
		expect_header(r, "Allow", "GET, HEAD", false);
		free(req);
	}
	h_exchange(port_of(state), "GET /metrics/api/metrics/nope HTTP/1.1\r\nHost: t\r\n\r\n",
		   false, r);
	expect_error(r, 404, "NOT_FOUND");
	free(r);
}

static int group_setup(void **state)
{
	static const char *const args[] = { "--workers", "2", "--max-connections",
					    "100", NULL };

	group_started_ms = h_now_ms();
	return h_group_setup_with(state, args);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(pool_counts_connections_by_state_one_worker),
		BB_TEST(pool_counts_are_summed_across_two_workers),
		BB_TEST(pool_counts_a_half_sent_second_request_as_idle),
		BB_TEST(pool_json_has_pool_uptime_and_iso_timestamp),
		BB_TEST(head_pool_json_sends_headers_only),
		BB_TEST(pool_prometheus_has_exactly_the_seed_families),
		BB_TEST(pool_prometheus_passes_promtool_but_for_the_two_seed_name_lints),
		BB_TEST(stats_lists_each_worker_with_requests_summing_to_completed),
		BB_TEST(stats_memory_is_what_each_worker_touched),
		BB_TEST(pool_routes_answer_405_to_post_and_404_to_unknown_subpaths),
	};

	h_init();
	return H_RUN_GROUP("blackbox_pool", tests, group_setup, h_group_teardown);
}
