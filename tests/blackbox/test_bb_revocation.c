/*
 * Black-box: revocations reach every instance. Two servers on one test
 * database (scripts/with_test_pg.sh); a token both accept is revoked
 * through the database as the identity routes do it (the row, then
 * NOTIFY ringside_revocations "<kind> <value> <id>") and both refuse it
 * (401) within a second: a revoked jti, an agent's cut-off
 * (decommissioning). A revocation stored without a notification reaches
 * them by the resync (--revocation-resync). /metrics shows the sync and
 * the active agents counted in the database.
 */
#include "harness.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/test_db.h"

#define SECRET "tests/auth/test-only-hs256.secret"
#define PROMTOOL "/usr/bin/promtool"

static void skip_without_database(void)
{
	if (!test_db_available()) {
		print_message("no test database (RINGSIDE_TEST_DATABASE_URL): skipped\n");
		skip();
	}
}

static void start_on(struct server *s, const char *url, const char *resync)
{
	const char *const args[] = {"--database-url", url, "--workers", "2", "--log-level", "warn",
				    "--jwt-secret-file", SECRET, "--revocation-resync", resync,
				    NULL};
	server_start(s, args);
}

/* One value of a statement on url (row 0, col 0), or "" for none. */
static void sql(const char *url, const char *q, char *out, size_t cap)
{
	PGconn *pg = PQconnectdb(url);
	CHECK(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
	PGresult *res = PQexec(pg, q);
	CHECK(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK,
	      "%s: %s", q, PQresultErrorMessage(res));
	if (out)
		snprintf(out, cap, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	PQfinish(pg);
}

/* The token's jti (from its payload, base64url JSON). */
static void jti_of(const char *token, char *out, size_t cap)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char payload[1024];
	const char *p = strchr(token, '.');
	CHECK(p, "no '.' in %s", token);
	size_t n = 0;
	unsigned bits = 0, acc = 0;
	for (p++; *p && *p != '.' && n + 1 < sizeof payload; p++) {
		const char *d = strchr(alphabet, *p);
		CHECK(d, "non-base64url byte in %s", token);
		acc = acc << 6 | (unsigned)(d - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			payload[n++] = (char)(acc >> bits & 0xff);
		}
	}
	payload[n] = '\0';
	const char *j = strstr(payload, "\"jti\":\"");
	CHECK(j, "no jti in %s", payload);
	j += 7;
	size_t len = strcspn(j, "\"");
	CHECK(len < cap, "jti too long");
	memcpy(out, j, len);
	out[len] = '\0';
}

/* GET /api/metrics/agents/{sub}/latest with the token: its status (404:
 * accepted, no report; 401: refused). */
static int latest_status(uint16_t port, const char *sub, const char *token)
{
	char *req = h_strf("GET /api/metrics/agents/%s/latest HTTP/1.1\r\nHost: t\r\n"
			   "Authorization: Bearer %s\r\n\r\n",
			   sub, token);
	struct http_response *r = resp_new();
	h_exchange(port, req, false, r);
	int status = r->status;
	free(r);
	free(req);
	return status;
}

/* Polls both servers every 20 ms until each answers want, for at most
 * ms; the milliseconds it took, or -1. */
static int64_t both_answer(const struct server *a, const struct server *b, const char *sub,
			   const char *token, int want, int ms)
{
	int64_t t0 = h_now_ms();
	for (int i = 0; i < ms / 20 + 1; i++) {
		if (latest_status(a->port, sub, token) == want &&
		    latest_status(b->port, sub, token) == want)
			return h_now_ms() - t0;
		h_sleep_ms(20);
	}
	return -1;
}

static char *metrics_body(uint16_t port)
{
	struct http_response *r = resp_new();
	h_exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_status(r, 200, false);
	char *body = h_strf("%s", r->body);
	free(r);
	return body;
}

static void a_revocation_reaches_the_other_instance_within_a_second(void **state)
{
	(void)state;
	skip_without_database();
	char *url = test_db_create("bb_revoke");
	CHECK(url, "no database");
	/* A migrates the database; an agent registered before B starts is
	 * in B's first count. */
	struct server a, b;
	start_on(&a, url, "30s"); /* no resync during the test: only NOTIFY can do it */
	char agent[64];
	sql(url, "INSERT INTO agents (organization_id, email, agent_type, version, capabilities, "
		 "owner, deployment_env) VALUES ('org-r', 'd@x', 't', '1', '{}', 'o', 'dev') "
		 "RETURNING agent_id",
	    agent, sizeof agent);
	start_on(&b, url, "30s");

	/* A revoked jti, as the revoke route stores and announces it. */
	char *tok = h_mint_token(SECRET, "agent-j", "org-r", "agents:read");
	char jti[64], q[512];
	jti_of(tok, jti, sizeof jti);
	CHECK(latest_status(b.port, "agent-j", tok) == 404, "B accepts the token first");
	CHECK(latest_status(a.port, "agent-j", tok) == 404, "A accepts the token first");
	snprintf(q, sizeof q,
		 "WITH ins AS (INSERT INTO revoked_tokens (jti, organization_id, expires_at) VALUES "
		 "('%s', 'org-r', extract(epoch FROM now())::bigint + 3600) RETURNING jti, "
		 "expires_at) SELECT pg_notify('ringside_revocations', 'j ' || expires_at || ' ' "
		 "|| jti) FROM ins",
		 jti);
	sql(url, q, NULL, 0);
	int64_t took = both_answer(&a, &b, "agent-j", tok, 401, 1000);
	print_message("# revoked jti refused by both after %lld ms\n", (long long)took);
	CHECK(took >= 0, "the revoked token still passes after 1 s");
	/* Another token of the same agent is untouched. */
	char *tok2 = h_mint_token(SECRET, "agent-j", "org-r", "agents:read");
	CHECK(latest_status(b.port, "agent-j", tok2) == 404, "the agent's other token still passes");

	/* An agent decommissioned, as DB_AGENT_DECOMMISSION does it. */
	char *atok = h_mint_token(SECRET, agent, "org-r", "agents:read");
	CHECK(latest_status(b.port, agent, atok) == 404, "B accepts the agent's token first");
	char *m = metrics_body(b.port);
	double v = -1;
	CHECK(expo_find(m, "sentryagent_active_agents", &v) && v == 1,
	      "one active agent counted: %g", v);
	free(m);
	snprintf(q, sizeof q,
		 "UPDATE agents SET status = 'decommissioned', tokens_valid_after = "
		 "greatest(tokens_valid_after, ceil(extract(epoch FROM now()))::bigint) WHERE "
		 "agent_id = '%s' RETURNING pg_notify('ringside_revocations', 'a ' || "
		 "tokens_valid_after || ' ' || agent_id)",
		 agent);
	sql(url, q, NULL, 0);
	took = both_answer(&a, &b, agent, atok, 401, 1000);
	print_message("# decommissioned agent's token refused by both after %lld ms\n",
		      (long long)took);
	CHECK(took >= 0, "the decommissioned agent's token still passes after 1 s");
	h_sleep_ms(400);
	m = metrics_body(b.port);
	CHECK(expo_find(m, "sentryagent_active_agents", &v) && v == 0,
	      "no active agent after the decommissioning: %g", v);
	CHECK(expo_find(m, "ringside_revocation_sync_up", &v) && v == 1, "sync up: %g", v);
	CHECK(expo_find(m, "ringside_revocation_notices_total", &v) && v == 2, "notices: %g", v);
	CHECK(expo_find(m, "ringside_revocations_held", &v) && v == 2, "held: %g", v);
	CHECK(expo_find(m, "ringside_revocation_resyncs_total", &v) && v == 1, "resyncs: %g", v);
	/* With the sync's families, the exposition still passes promtool. */
	struct run_result *rr = run_new();
	const char *argv[] = {PROMTOOL, "check", "metrics", NULL};
	h_run_prog(argv, m, strlen(m), 60000, rr);
	CHECK(rr->exit_code == 0, "promtool: exit %d: %.2000s%.2000s", rr->exit_code, rr->out,
	      rr->err);
	free(rr);
	free(m);

	free(tok);
	free(tok2);
	free(atok);
	CHECK(server_stop(&a) == 0, "A exit status");
	CHECK(server_stop(&b) == 0, "B exit status");
	test_db_drop(url);
	free(url);
}

static void a_revocation_without_notification_arrives_by_the_resync(void **state)
{
	(void)state;
	skip_without_database();
	char *url = test_db_create("bb_resync");
	CHECK(url, "no database");
	struct server a, b;
	start_on(&a, url, "1s");
	start_on(&b, url, "1s");
	char *tok = h_mint_token(SECRET, "agent-s", "org-r", "agents:read");
	char jti[64], q[512];
	jti_of(tok, jti, sizeof jti);
	CHECK(latest_status(b.port, "agent-s", tok) == 404, "B accepts the token first");
	snprintf(q, sizeof q,
		 "INSERT INTO revoked_tokens (jti, organization_id, expires_at) VALUES ('%s', "
		 "'org-r', extract(epoch FROM now())::bigint + 3600)",
		 jti);
	sql(url, q, NULL, 0);
	int64_t took = both_answer(&a, &b, "agent-s", tok, 401, 2500);
	print_message("# silent revocation refused by both after %lld ms (resync 1 s)\n",
		      (long long)took);
	CHECK(took >= 0, "the silently revoked token still passes after 2.5 s");
	free(tok);
	CHECK(server_stop(&a) == 0, "A exit status");
	CHECK(server_stop(&b) == 0, "B exit status");
	test_db_drop(url);
	free(url);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(a_revocation_reaches_the_other_instance_within_a_second),
		BB_TEST(a_revocation_without_notification_arrives_by_the_resync),
	};
	return H_RUN_GROUP("revocation", tests, NULL, NULL);
}
