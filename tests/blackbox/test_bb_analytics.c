/*
 * Tenant analytics (seed 002) against the real binary and PostgreSQL:
 * the seed's errors byte for byte, the feature flag, and counts that
 * reach the rollups exactly: agents registered through the API get
 * tokens and post reports, and the three routes (and the hourly rollup
 * itself) say exactly how many 200s and 202s they got.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "../common/test_db.h"

#define SECRET "tests/auth/test-only-hs256.secret"
#define ORG "org-analytics"

static struct {
	char *url;
	char journal[64];
	uint16_t port;
} fx;

static int group_setup(void **state)
{
	if (!test_db_available())
		return 0;
	fx.url = test_db_create("analytics");
	if (!fx.url)
		return -1;
	snprintf(fx.journal, sizeof fx.journal, "/tmp/ringside-journal-%d", (int)getpid());
	const char *const args[] = {"--database-url", fx.url, "--workers", "2", "--log-level",
				    "warn", "--jwt-secret-file", SECRET, "--client-secret-key-file",
				    SECRET, "--token-rate-limit", "0", "--analytics-journal",
				    fx.journal, NULL};
	if (h_group_setup_with(state, args) < 0)
		return -1;
	fx.port = h_group_server()->port;
	return 0;
}

static int group_teardown(void **state)
{
	if (!fx.url)
		return 0;
	int rc = h_group_teardown(state);
	test_db_drop(fx.url);
	free(fx.url);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", fx.journal);
	CHECK(system(cmd) == 0, "%s", cmd);
	return rc == 0 ? 0 : -1;
}

static void need_database(void)
{
	if (!fx.url) {
		print_message("no test database (RINGSIDE_TEST_DATABASE_URL): skipped\n");
		skip();
	}
}

static void get(uint16_t port, const char *path, const char *token, struct http_response *r)
{
	char req[8192];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n", path,
		 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
	h_exchange(port, req, false, r);
}

/* The body without its requestId member, for byte-for-byte checks. */
static const char *without_request_id(struct http_response *r)
{
	char *id = strstr(r->body, ",\"requestId\":\"");
	CHECK(id, "no requestId: %s", r->body);
	char *end = strchr(id + 14, '"');
	CHECK(end && end[1] == '}', "%s", r->body);
	memmove(id, end + 1, strlen(end + 1) + 1);
	return r->body;
}

/* The seed's two examples, byte for byte, and every other bad `days`. */
static void days_errors_are_the_seeds(void **state)
{
	(void)state;
	need_database();
	char *token = h_mint_token(SECRET, "reader", ORG, "agents:read");
	struct http_response *r = resp_new();
	get(fx.port, "/api/v1/analytics/tokens?days=120", token, r);
	CHECK(r->status == 400, "%d %s", r->status, r->body);
	CHECK(!strcmp(without_request_id(r),
		      "{\"code\":\"VALIDATION_ERROR\",\"message\":\"Query parameter `days` must not "
		      "exceed 90.\",\"details\":{\"field\":\"days\",\"max\":90,\"provided\":120}}"),
	      "%s", r->body);
	static const char *const bad[] = {"0", "-1", "abc", "", "1.5", "+5", "30&days=30", "1e1",
					  "%20"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char path[128];
		snprintf(path, sizeof path, "/api/v1/analytics/tokens?days=%s", bad[i]);
		get(fx.port, path, token, r);
		CHECK(r->status == 400, "days=%s: %d %s", bad[i], r->status, r->body);
		CHECK(!strcmp(without_request_id(r),
			      "{\"code\":\"VALIDATION_ERROR\",\"message\":\"Query parameter `days` must "
			      "be a positive integer.\",\"details\":{\"field\":\"days\"}}"),
		      "days=%s: %s", bad[i], r->body);
	}
	/* Good ones: the window has exactly `days` points, oldest first,
	 * the last one today (UTC). */
	static const struct {
		const char *q;
		int days;
	} good[] = {{"", 30}, {"?days=1", 1}, {"?days=90", 90}, {"?days=007", 7}, {"?other=1", 30}};
	char today[16];
	time_t now = time(NULL);
	strftime(today, sizeof today, "%Y-%m-%d", gmtime(&now));
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char path[128];
		snprintf(path, sizeof path, "/api/v1/analytics/tokens%s", good[i].q);
		get(fx.port, path, token, r);
		CHECK(r->status == 200, "%s: %d %s", good[i].q, r->status, r->body);
		CHECK(json_valid(r->body, r->body_len, NULL, 0), "%s", r->body);
		double days = 0;
		CHECK(json_get_number(r->body, "days", &days, NULL, 0) && days == good[i].days, "%s",
		      r->body);
		int points = 0;
		for (const char *p = r->body; (p = strstr(p, "\"date\":")) != NULL; p++)
			points++;
		CHECK(points == good[i].days, "%s: %d points", good[i].q, points);
		CHECK(strstr(r->body, today), "today %s missing: %s", today, r->body);
	}
	free(r);
	free(token);
}

static void unauthorized_is_the_seeds(void **state)
{
	(void)state;
	need_database();
	static const char *const paths[] = {"/api/v1/analytics/tokens",
					    "/api/v1/analytics/agents/activity",
					    "/api/v1/analytics/agents"};
	struct http_response *r = resp_new();
	for (int i = 0; i < 3; i++) {
		get(fx.port, paths[i], NULL, r);
		CHECK(r->status == 401, "%s: %d", paths[i], r->status);
		CHECK(strstr(r->body, "\"code\":\"UNAUTHORIZED\",\"message\":\"A valid Bearer token is "
				      "required to access this resource.\""),
		      "%s", r->body);
		get(fx.port, paths[i], "not.a.token", r);
		CHECK(r->status == 401, "%s: %d", paths[i], r->status);
	}
	free(r);
}

/* ANALYTICS_ENABLED=false (the seed's variable) and the flag: 404 with
 * the seed's message on all three. */
static void disabled_analytics_is_404(void **state)
{
	(void)state;
	need_database();
	char *token = h_mint_token(SECRET, "reader", ORG, "agents:read");
	static const char *const paths[] = {"/api/v1/analytics/tokens",
					    "/api/v1/analytics/agents/activity",
					    "/api/v1/analytics/agents"};
	for (int how = 0; how < 2; how++) {
		struct server s;
		const char *const args[] = {"--database-url", fx.url, "--jwt-secret-file", SECRET,
					    "--log-level", "warn", how ? "--analytics-enabled" : NULL,
					    "false", NULL};
		const char *const env[] = {"ANALYTICS_ENABLED=false", NULL};
		const struct server_opts o = {.args = args, .env = how ? NULL : env};
		server_start_opts(&s, &o);
		struct http_response *r = resp_new();
		for (int i = 0; i < 3; i++) {
			get(s.port, paths[i], token, r);
			CHECK(r->status == 404, "%s: %d %s", paths[i], r->status, r->body);
			CHECK(!strcmp(without_request_id(r),
				      "{\"code\":\"NOT_FOUND\",\"message\":\"Analytics is not enabled on "
				      "this instance.\"}"),
			      "%s", r->body);
		}
		free(r);
		CHECK(server_stop(&s) == 0, "exit status");
	}
	free(token);
}

/* ---- Counting ---- */

static void call(const char *method, const char *path, const char *bearer, const char *json,
		 struct http_response *r)
{
	h_bearer_call(fx.port, method, path, bearer, json, r);
}

struct agent {
	char id[64], client_id[64], secret[64];
};

static void register_agent(const char *admin, int n, struct agent *a)
{
	struct http_response *r = resp_new();
	char body[512];
	snprintf(body, sizeof body,
		 "{\"email\":\"counted-%d@example.com\",\"agentType\":\"monitor\",\"version\":"
		 "\"1.0.0\",\"capabilities\":[\"metrics:write\"],\"owner\":\"ops\","
		 "\"deploymentEnv\":\"production\"}",
		 n);
	call("POST", "/api/v1/agents", admin, body, r);
	CHECK(r->status == 201 && json_get_string(r->body, "agentId", a->id, sizeof a->id),
	      "register: %d %s", r->status, r->body);
	char path[128];
	snprintf(path, sizeof path, "/api/v1/agents/%s/credentials", a->id);
	call("POST", path, admin, NULL, r);
	CHECK(r->status == 201 &&
		      json_get_string(r->body, "clientId", a->client_id, sizeof a->client_id) &&
		      json_get_string(r->body, "clientSecret", a->secret, sizeof a->secret),
	      "credentials: %d %s", r->status, r->body);
	free(r);
}

/* A token for the agent from the server at port: its status (the token
 * in out when 200). */
static int issue_at(uint16_t port, const struct agent *a, char *out, size_t cap)
{
	return h_token_request(port, a->client_id, a->secret, NULL, out, cap);
}

/* A token for the agent: 200, or fails. */
static void issue(const struct agent *a, char *out, size_t cap)
{
	int status = issue_at(fx.port, a, out, cap);
	CHECK(status == 200, "token: %d", status);
}

static int ingest(const char *token)
{
	return h_ingest(fx.port, token, NULL);
}

/* The number in `"key":N` right after the first occurrence of `after`. */
static long number_after(const char *body, const char *after, const char *key)
{
	const char *p = strstr(body, after);
	if (!p)
		return -1;
	char k[64];
	snprintf(k, sizeof k, "\"%s\":", key);
	p = strstr(p, k);
	return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

static void counts_reach_every_route_exactly(void **state)
{
	(void)state;
	need_database();
	char *admin = h_mint_token(SECRET, "operator", ORG, "agents:write agents:read");
	struct agent busy, idle;
	register_agent(admin, 1, &busy);
	register_agent(admin, 2, &idle);
	/* busy: 3 tokens, 5 reports accepted, 1 refused (not counted). */
	char token[4096];
	for (int i = 0; i < 3; i++)
		issue(&busy, token, sizeof token);
	for (int i = 0; i < 5; i++)
		CHECK(ingest(token) == 202, "report %d", i);
	struct http_response *r = resp_new();
	call("POST", "/api/metrics/ingest", token, "{", r);
	CHECK(r->status == 400, "a bad report: %d", r->status);

	/* The routes read the rollups: poll until the flusher got there. */
	const char *reader = admin;
	char today[16];
	time_t now = time(NULL);
	strftime(today, sizeof today, "%Y-%m-%d", gmtime(&now));
	char after[64];
	snprintf(after, sizeof after, "\"date\":\"%s\"", today);
	long issued = -1;
	for (int i = 0; i < 200 && issued != 3; i++) {
		get(fx.port, "/api/v1/analytics/tokens?days=1", reader, r);
		CHECK(r->status == 200, "%d %s", r->status, r->body);
		issued = number_after(r->body, after, "count");
		if (issued != 3)
			usleep(50000);
	}
	CHECK(issued == 3, "tokens today: %ld: %s", issued, r->body);

	get(fx.port, "/api/v1/analytics/agents", reader, r);
	CHECK(r->status == 200 && json_valid(r->body, r->body_len, NULL, 0), "%d %s", r->status,
	      r->body);
	char month[8];
	strftime(month, sizeof month, "%Y-%m", gmtime(&now));
	CHECK(strstr(r->body, month), "month %s: %s", month, r->body);
	char key[96];
	snprintf(key, sizeof key, "\"agentId\":\"%s\"", busy.id);
	CHECK(number_after(r->body, key, "tokensIssued") == 3, "%s", r->body);
	CHECK(number_after(r->body, key, "apiCalls") == 5, "the 202s only: %s", r->body);
	snprintf(key, sizeof key, "\"agentId\":\"%s\"", idle.id);
	const char *idle_at = strstr(r->body, key);
	CHECK(idle_at && strstr(idle_at, "\"tokensIssued\":0,\"apiCalls\":0,\"lastActiveAt\":null"),
	      "a registered agent with no activity is listed: %s", r->body);
	CHECK(strstr(r->body, busy.id) < idle_at, "most tokens first: %s", r->body);

	get(fx.port, "/api/v1/analytics/agents/activity", reader, r);
	CHECK(r->status == 200 && json_valid(r->body, r->body_len, NULL, 0), "%s", r->body);
	struct tm tm;
	gmtime_r(&now, &tm);
	char cell[64];
	snprintf(cell, sizeof cell, "\"dayOfWeek\":%d,\"hour\":%d,\"count\":", tm.tm_wday,
		 tm.tm_hour);
	CHECK(strstr(r->body, cell), "no cell for now (%s): %s", cell, r->body);
	free(r);
	free(admin);
}

/* ---- Nothing acknowledged is lost ---- */

/* One request on a new connection; its status, or -1 if the server did
 * not answer (refused, reset): then the request is "in doubt" if it was
 * sent, not if the connection never opened. */
static int try_request(uint16_t port, const char *req, bool *sent, char *body, size_t cap)
{
	*sent = false;
	int fd = h_try_connect(port);
	if (fd < 0)
		return -1;
	struct conn *c = conn_wrap(fd);
	struct http_response *r = resp_new();
	int status = -1;
	char err[128];
	if (h_send_all(fd, req, strlen(req)) == 0) {
		*sent = true;
		if (conn_read_response(c, r, false, 5000, err, sizeof err) == 0) {
			status = r->status;
			if (body) {
				size_t n = r->body_len < cap - 1 ? r->body_len : cap - 1;
				memcpy(body, r->body, n);
				body[n] = '\0';
			}
		}
	}
	free(r);
	conn_close(c);
	return status;
}

#define CRASH_AGENTS 3

struct tally {
	long tokens, calls, doubt; /* acknowledged 200 tokens, 202 reports; in doubt */
};

/* One round for agent a: a token, then reports with it. */
static void crash_round(uint16_t port, const struct agent *a, struct tally *t, char *token,
			size_t cap)
{
	char auth[800], req[16384], body[4096];
	bool sent;
	h_basic_header(a->client_id, a->secret, auth, sizeof auth);
	snprintf(req, sizeof req,
		 "POST /api/v1/token HTTP/1.1\r\nHost: t\r\n%s"
		 "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n"
		 "Connection: close\r\n\r\ngrant_type=client_credentials",
		 auth);
	int st = try_request(port, req, &sent, body, sizeof body);
	if (st == 200) {
		t->tokens++;
		json_get_string(body, "access_token", token, cap);
	} else if (st < 0 && sent) {
		t->doubt++;
	}
	if (!token[0])
		return;
	size_t len;
	char *report = h_read_sample("ingest-minimal.json", &len);
	snprintf(req, sizeof req,
		 "POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close"
		 "\r\n\r\n%s",
		 token, len, report);
	free(report);
	for (int i = 0; i < 3; i++) {
		st = try_request(port, req, &sent, NULL, 0);
		if (st == 202)
			t->calls++;
		else if (st < 0 && sent)
			t->doubt++;
	}
}

/* Sums of the hourly rollup for the agent: what the analytics hold. */
static void rollup_of(const char *agent, long *tokens, long *calls)
{
	PGconn *pg = PQconnectdb(fx.url);
	CHECK(PQstatus(pg) == CONNECTION_OK, "%s", PQerrorMessage(pg));
	const char *params[] = {agent};
	PGresult *res = PQexecParams(pg,
				     "SELECT coalesce(sum(tokens_issued), 0), coalesce(sum(api_calls), 0) "
				     "FROM analytics_agent_hourly WHERE agent_id = $1",
				     1, NULL, params, NULL, NULL, 0);
	CHECK(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	*tokens = atol(PQgetvalue(res, 0, 0));
	*calls = atol(PQgetvalue(res, 0, 1));
	PQclear(res);
	PQfinish(pg);
}

/*
 * Agents get tokens and post reports while PostgreSQL is stopped
 * --immediate and started again, and Ringside is killed with SIGKILL and
 * started again on the same journal: afterwards the rollups hold every
 * acknowledged 200 and 202, per agent, and nothing else but requests cut
 * by the kill (in doubt: sent, never answered).
 */
static void counts_survive_a_database_outage_and_a_sigkill(void **state)
{
	(void)state;
	need_database();
	if (!test_pg_available()) {
		print_message("no test cluster to stop: skipped\n");
		skip();
	}
	char *admin = h_mint_token(SECRET, "operator", ORG, "agents:write agents:read");
	struct agent agents[CRASH_AGENTS];
	for (int i = 0; i < CRASH_AGENTS; i++)
		register_agent(admin, 100 + i, &agents[i]);
	free(admin);
	/* A server of its own on a fixed port, so the clients find it again
	 * after the restart; the group's stays up but unused. */
	char journal[96];
	snprintf(journal, sizeof journal, "%s-crash", fx.journal);
	const char *const args[] = {"--database-url", fx.url, "--workers", "2", "--log-level",
				    "warn", "--jwt-secret-file", SECRET, "--client-secret-key-file",
				    SECRET, "--token-rate-limit", "0", "--analytics-journal", journal,
				    "--db-timeout-read", "500ms", NULL};
	uint16_t port = h_free_port();
	struct server s;
	const struct server_opts o = {.args = args, .port = port};
	server_start_opts(&s, &o);

	struct tally t[CRASH_AGENTS] = {{0}};
	char tokens[CRASH_AGENTS][4096] = {{0}};
	int64_t t0 = h_now_ms();
	enum { RUNNING, DB_DOWN, DB_BACK, KILLED, RESTARTED } phase = RUNNING;
	/* Six seconds of traffic, longer if a phase change came late (a slow
	 * pg.sh under the sanitizers), 30 s at most. */
	for (int round = 0;
	     (h_now_ms() - t0 < 6000 || phase != RESTARTED) && h_now_ms() - t0 < 30000 &&
	     round < 100000;
	     round++) {
		int64_t at = h_now_ms() - t0;
		if (phase == RUNNING && at > 1000) {
			CHECK(test_pg("stop --immediate") == 0, "pg stop");
			phase = DB_DOWN;
		} else if (phase == DB_DOWN && at > 2500) {
			CHECK(test_pg("start") == 0, "pg start");
			phase = DB_BACK;
		} else if (phase == DB_BACK && at > 3500) {
			server_signal(&s, SIGKILL);
			CHECK(server_wait_exit(&s, 5000), "the server did not die");
			phase = KILLED;
		} else if (phase == KILLED && at > 4000) {
			server_start_opts(&s, &o);
			phase = RESTARTED;
		}
		for (int i = 0; i < CRASH_AGENTS; i++)
			crash_round(port, &agents[i], &t[i], tokens[i], sizeof tokens[i]);
	}
	CHECK(phase == RESTARTED, "the run ended in phase %d", phase);
	/* The flusher drains the backlog by itself; poll the rollups. */
	for (int i = 0; i < CRASH_AGENTS; i++) {
		long tokens_n = -1, calls_n = -1;
		int64_t deadline = h_now_ms() + 20000;
		do {
			rollup_of(agents[i].id, &tokens_n, &calls_n);
			if (tokens_n >= t[i].tokens && calls_n >= t[i].calls)
				break;
			usleep(100000);
		} while (h_now_ms() < deadline);
		print_message("agent %d: acknowledged %ld tokens, %ld reports (%ld in doubt); "
			      "counted %ld, %ld\n",
			      i, t[i].tokens, t[i].calls, t[i].doubt, tokens_n, calls_n);
		CHECK(t[i].tokens > 0 && t[i].calls > 0, "the run made no traffic for agent %d", i);
		CHECK(tokens_n >= t[i].tokens && calls_n >= t[i].calls,
		      "an acknowledged count was lost: agent %d", i);
		CHECK(tokens_n + calls_n <= t[i].tokens + t[i].calls + t[i].doubt,
		      "counted more than was answered or in doubt: agent %d", i);
	}
	CHECK(server_stop(&s) == 0, "exit status");
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", journal);
	CHECK(system(cmd) == 0, "%s", cmd);
}

/*
 * The journal cannot be written (here the file size limit, EFBIG, as a
 * full disk gives ENOSPC): counted requests are refused with 503 and
 * Retry-After instead of being acknowledged, other routes go on, and once
 * writes work again the rollups hold exactly the acknowledged requests.
 */
static void a_journal_that_cannot_be_written_refuses_counted_requests(void **state)
{
	(void)state;
	need_database();
	char *admin = h_mint_token(SECRET, "operator", ORG, "agents:write agents:read");
	struct agent a;
	register_agent(admin, 200, &a);
	free(admin);
	char journal[96];
	snprintf(journal, sizeof journal, "%s-full", fx.journal);
	const char *const args[] = {"--database-url", fx.url, "--workers", "1", "--log-level",
				    "warn", "--jwt-secret-file", SECRET, "--client-secret-key-file",
				    SECRET, "--token-rate-limit", "0", "--ingest-rate-limit", "0",
				    "--analytics-journal", journal, NULL};
	struct server s;
	const struct server_opts o = {.args = args, .port = h_free_port()};
	/* The server inherits a 64 KiB file size limit (ours is back at once):
	 * about a thousand events fit in its journal segment. */
	struct rlimit saved, lim;
	CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0, "getrlimit");
	lim = saved;
	lim.rlim_cur = 64 * 1024;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
	server_start_opts(&s, &o);
	CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0, "setrlimit back");

	char token[4096];
	CHECK(issue_at(s.port, &a, token, sizeof token) == 200, "the first token");
	long tokens_ok = 1, calls_ok = 0;
	struct http_response *r = resp_new();
	int status = 0;
	for (int i = 0; i < 20000 && (status = h_ingest(s.port, token, r)) == 202; i++)
		calls_ok++;
	CHECK(status == 503, "the journal filled without a refusal: %d after %ld reports: %s",
	      status, calls_ok, r->body);
	CHECK(calls_ok > 100, "refused after only %ld reports", calls_ok);
	const char *retry = resp_header(r, "Retry-After");
	CHECK(retry && !strcmp(retry, "1"), "Retry-After: %s", retry ? retry : "(none)");
	CHECK(strstr(r->body, "\"code\":\"SERVICE_UNAVAILABLE\"") &&
		      strstr(r->body, "count journal cannot be written"),
	      "%s", r->body);
	/* A token is refused alike; what is not counted is still served. */
	CHECK(issue_at(s.port, &a, token + 2048, 2048) == 503, "a token while the journal fails");
	get(s.port, "/health", NULL, r);
	CHECK(r->status == 200, "/health: %d", r->status);

	/* Room again: the next loop pass writes what waited, and reports
	 * are taken again. */
	CHECK(prlimit(s.pid, RLIMIT_FSIZE, &saved, NULL) == 0, "prlimit");
	int back = 0;
	for (int i = 0; i < 100 && back < 20; i++) {
		status = h_ingest(s.port, token, NULL);
		CHECK(status == 202 || status == 503, "%d", status);
		if (status == 202) {
			back++;
			calls_ok++;
		}
	}
	CHECK(back == 20, "reports not taken again after the limit was lifted (%d)", back);
	long tokens_n = -1, calls_n = -1;
	int64_t deadline = h_now_ms() + 20000;
	do {
		rollup_of(a.id, &tokens_n, &calls_n);
		if (tokens_n >= tokens_ok && calls_n >= calls_ok)
			break;
		usleep(100000);
	} while (h_now_ms() < deadline);
	CHECK(tokens_n == tokens_ok && calls_n == calls_ok,
	      "acknowledged %ld tokens and %ld reports, counted %ld and %ld", tokens_ok, calls_ok,
	      tokens_n, calls_n);
	free(r);
	CHECK(server_stop(&s) == 0, "exit status");
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", journal);
	CHECK(system(cmd) == 0, "%s", cmd);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(days_errors_are_the_seeds),
		BB_TEST(unauthorized_is_the_seeds),
		BB_TEST(disabled_analytics_is_404),
		BB_TEST(counts_reach_every_route_exactly),
		BB_TEST(counts_survive_a_database_outage_and_a_sigkill),
		BB_TEST(a_journal_that_cannot_be_written_refuses_counted_requests),
	};
	return H_RUN_GROUP("analytics", tests, group_setup, group_teardown);
}
