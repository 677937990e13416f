/*
 * The OAuth 2.0 endpoints against the real binary and PostgreSQL: RFC 6749
 * 4.4 and 5.2 (POST /api/v1/token), RFC 7662 (introspection) and RFC 7009
 * (revocation). The clients are seeded straight into the database (their
 * secrets' HMAC computed here with the server's key), so these tests hold
 * the endpoints to the RFCs whatever the registry routes do; the issued
 * tokens are checked with an independent JWT library (PyJWT) against
 * /.well-known/jwks.json.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "../common/test_db.h"

#define RS256_PUB "tests/auth/test-only-rs256-public.pem"
#define RS256_KEY "tests/auth/test-only-rs256-private.pem"
#define ES256_PUB "tests/auth/test-only-es256-public.pem"
#define ES256_KEY "tests/auth/test-only-es256-private.pem"
/* The HMAC key of client secrets: any 32 bytes or more. */
#define CLIENT_KEY "tests/auth/test-only-hs256.secret"

#define ORG1 "org-one"
#define ORG2 "org-two"
#define AGENT_A "11111111-1111-4111-8111-111111111111"   /* ORG1, active */
#define AGENT_S "22222222-2222-4222-8222-222222222222"   /* ORG1, suspended */
#define AGENT_B "33333333-3333-4333-8333-333333333333"   /* ORG2, active */

/* client id, secret, agent, credential state */
static const struct client {
	const char *id, *secret, *agent, *state;
} clients[] = {
	{"client-a", "secret-a-0123456789", AGENT_A, "active"},
	{"client-s", "secret-s-0123456789", AGENT_S, "active"},
	{"client-b", "secret-b-0123456789", AGENT_B, "active"},
	{"client-revoked", "secret-r-0123456789", AGENT_A, "revoked"},
	{"client-expired", "secret-e-0123456789", AGENT_A, "expired"},
	/* Form-encoding matters (RFC 6749 2.3.1): '+' and '%' in a secret. */
	{"client+odd", "se cret%+x", AGENT_A, "active"},
};

static struct {
	char *url;
	struct server s; /* a copy of the group's server (h_group_setup_with) */
} fx;

static void exec_sql(const char *url, const char *sql)
{
	PGconn *pg = PQconnectdb(url);
	CHECK(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
	PGresult *res = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(res);
	CHECK(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
	      PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(pg);
}

static void hash_hex(const char *secret, char out[65])
{
	char key[256];
	ssize_t n = h_read_file(CLIENT_KEY, key, sizeof key);
	CHECK(n >= 32, "key file");
	while (n && (key[n - 1] == '\n' || key[n - 1] == '\r'))
		n--;
	unsigned char mac[32];
	unsigned len = 0;
	HMAC(EVP_sha256(), key, (int)n, (const unsigned char *)secret, strlen(secret), mac, &len);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static void seed(const char *url)
{
	char sql[4096];
	snprintf(sql, sizeof sql,
		 "INSERT INTO agents (agent_id, organization_id, email, agent_type, version, "
		 "capabilities, owner, deployment_env, status) VALUES "
		 "('%s', '%s', 'a@example.com', 'custom', '1.0.0', '{m:w}', 'o', 'production', 'active'),"
		 "('%s', '%s', 's@example.com', 'custom', '1.0.0', '{m:w}', 'o', 'production', 'suspended'),"
		 "('%s', '%s', 'b@example.com', 'custom', '1.0.0', '{m:w}', 'o', 'production', 'active')",
		 AGENT_A, ORG1, AGENT_S, ORG1, AGENT_B, ORG2);
	exec_sql(url, sql);
	for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
		char hex[65];
		hash_hex(clients[i].secret, hex);
		bool revoked = !strcmp(clients[i].state, "revoked");
		bool expired = !strcmp(clients[i].state, "expired");
		snprintf(sql, sizeof sql,
			 "INSERT INTO agent_credentials (client_id, agent_id, secret_hash, status, "
			 "expires_at) VALUES ('%s', '%s', decode('%s', 'hex'), '%s', %s)",
			 clients[i].id, clients[i].agent, hex, revoked ? "revoked" : "active",
			 expired ? "now() - interval '1 day'" : "now() + interval '1 day'");
		exec_sql(url, sql);
	}
}

static int group_setup(void **state)
{
	if (!test_db_available())
		return 0;
	fx.url = test_db_create("oauth");
	if (!fx.url)
		return -1;
	const char *const args[] = {"--database-url", fx.url, "--workers", "2", "--log-level",
				    "warn", "--jwt-public-key-file", RS256_PUB,
				    "--jwt-private-key-file", RS256_KEY, "--client-secret-key-file",
				    CLIENT_KEY, "--token-rate-limit", "0", NULL};
	if (h_group_setup_with(state, args) < 0)
		return -1;
	fx.s = *h_group_server();
	seed(fx.url);
	return 0;
}

static int group_teardown(void **state)
{
	if (!fx.url)
		return 0;
	int rc = h_group_teardown(state);
	test_db_drop(fx.url);
	free(fx.url);
	return rc == 0 ? 0 : -1;
}

static void need_database(void)
{
	if (!fx.url) {
		print_message("no test database (RINGSIDE_TEST_DATABASE_URL): skipped\n");
		skip();
	}
}

/* POSTs a form to path with extra header lines (NULL: none). */
static void post_form(const char *path, const char *headers, const char *body,
		      struct http_response *r)
{
	size_t cap = strlen(body) + 2048;
	char *req = malloc(cap);
	CHECK(req, "malloc");
	snprintf(req, cap,
		 "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
		 "Content-Length: %zu\r\n%s\r\n%s",
		 path, strlen(body), headers ? headers : "", body);
	h_exchange(fx.s.port, req, false, r);
	free(req);
}

static void expect_oauth_error(const struct http_response *r, int status, const char *error)
{
	CHECK(r->status == status, "want %d %s, got %d: %s", status, error, r->status, r->body);
	char got[64] = "", description[512] = "";
	CHECK(json_get_string(r->body, "error", got, sizeof got) && !strcmp(got, error),
	      "want error %s: %s", error, r->body);
	CHECK(json_get_string(r->body, "error_description", description, sizeof description) &&
		      description[0],
	      "no error_description: %s", r->body);
	expect_header(r, "Cache-Control", "no-store", true);
	expect_header(r, "Pragma", "no-cache", true);
}

/* A token for the client (Basic), or fails. */
static void token_of(const char *id, const char *secret, const char *scope, char *out,
		     size_t cap)
{
	char auth[600], body[256];
	h_basic_header(id, secret, auth, sizeof auth);
	snprintf(body, sizeof body, "grant_type=client_credentials%s%s", scope ? "&scope=" : "",
		 scope ? scope : "");
	struct http_response *r = resp_new();
	post_form("/api/v1/token", auth, body, r);
	CHECK(r->status == 200, "token for %s: %d %s", id, r->status, r->body);
	CHECK(json_get_string(r->body, "access_token", out, cap), "%s", r->body);
	free(r);
}

static void issues_a_token_by_basic_or_body(void **state)
{
	(void)state;
	need_database();
	struct http_response *r = resp_new();
	char auth[600];
	h_basic_header("client-a", "secret-a-0123456789", auth, sizeof auth);
	post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
	expect_status(r, 200, false);
	expect_header(r, "Content-Type", "application/json", true);
	expect_header(r, "Cache-Control", "no-store", true);
	expect_header(r, "Pragma", "no-cache", true);
	CHECK(json_valid(r->body, r->body_len, NULL, 0), "%s", r->body);
	char type[32], scope[128], token[4096];
	double expires = 0;
	CHECK(json_get_string(r->body, "token_type", type, sizeof type) && !strcmp(type, "Bearer"),
	      "%s", r->body);
	CHECK(json_get_number(r->body, "expires_in", &expires, NULL, 0) && expires == 3600, "%s",
	      r->body);
	CHECK(json_get_string(r->body, "scope", scope, sizeof scope) &&
		      !strcmp(scope, "agents:read agents:write tokens:read metrics:write"),
	      "no scope asked: the client's every scope: %s", r->body);
	CHECK(json_get_string(r->body, "access_token", token, sizeof token), "%s", r->body);

	/* In the body instead, with a narrower scope. */
	post_form("/api/v1/token", NULL,
		  "grant_type=client_credentials&client_id=client-a&client_secret=secret-a-0123456789"
		  "&scope=metrics%3Awrite+tokens%3Aread",
		  r);
	expect_status(r, 200, false);
	CHECK(json_get_string(r->body, "scope", scope, sizeof scope) &&
		      !strcmp(scope, "tokens:read metrics:write"),
	      "%s", r->body);

	/* A secret holding '+', '%' and a space, form-encoded inside Basic. */
	h_basic_header("client+odd", "se cret%+x", auth, sizeof auth);
	post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
	expect_status(r, 200, false);

	/* PyJWT checks the token with our published key: signature, kid,
	 * iss, aud, exp; the claims the issue names are there. */
	h_exchange(fx.s.port, "GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_status(r, 200, false);
	char path[] = "/tmp/ringside-oauth-jwks-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, r->body, r->body_len) == (ssize_t)r->body_len, "jwks file");
	close(fd);
	const char *const verify[] = {"/usr/bin/python3", "tests/auth/verify_with_jwks.py", path,
				      "ringside", "ringside", token, NULL};
	struct run_result *v = run_new();
	h_run_prog(verify, NULL, 0, 20000, v);
	unlink(path);
	CHECK(v->exit_code == 0, "PyJWT: exit %d\n%s%s", v->exit_code, v->out, v->err);
	free(v);
	const char *const claims[] = {
		"/usr/bin/python3", "-c",
		"import jwt,sys;c=jwt.decode(sys.argv[1],options={'verify_signature':False});"
		"h=jwt.get_unverified_header(sys.argv[1]);"
		"assert h['alg']=='RS256' and h['kid'],h;"
		"assert c['sub']=='" AGENT_A "' and c['client_id']=='client-a' and "
		"c['organization_id']=='" ORG1 "' and c['jti'] and c['exp']-c['iat']==3600 and "
		"c['iss']=='ringside' and c['aud']=='ringside' and "
		"c['scope']=='agents:read agents:write tokens:read metrics:write',c",
		token, NULL};
	v = run_new();
	h_run_prog(claims, NULL, 0, 20000, v);
	CHECK(v->exit_code == 0, "claims: %s%s", v->out, v->err);
	free(v);
	free(r);
}

/* RFC 6749 5.2, one row per way to get it wrong. */
static void every_token_error_is_the_rfcs(void **state)
{
	(void)state;
	need_database();
	char a_ok[600], a_bad[600], s_ok[600], rev[600], exp[600], unknown[600];
	h_basic_header("client-a", "secret-a-0123456789", a_ok, sizeof a_ok);
	h_basic_header("client-a", "secret-a-012345678X", a_bad, sizeof a_bad);
	h_basic_header("client-s", "secret-s-0123456789", s_ok, sizeof s_ok);
	h_basic_header("client-revoked", "secret-r-0123456789", rev, sizeof rev);
	h_basic_header("client-expired", "secret-e-0123456789", exp, sizeof exp);
	h_basic_header("nobody", "secret-a-0123456789", unknown, sizeof unknown);
	static char big[20000];
	memset(big, 'a', sizeof big - 1);
	memcpy(big, "grant_type=client_credentials&x=", 32);
	const struct {
		const char *what, *headers, *body;
		int status;
		const char *error;
		bool basic_challenge;
	} cases[] = {
		{"wrong grant", a_ok, "grant_type=password&username=u&password=p", 400,
		 "unsupported_grant_type", false},
		{"no grant", a_ok, "scope=tokens%3Aread", 400, "invalid_request", false},
		{"basic, bad secret", a_bad, "grant_type=client_credentials", 401, "invalid_client",
		 true},
		{"unknown client", unknown, "grant_type=client_credentials", 401, "invalid_client",
		 true},
		{"unknown client in the body", NULL,
		 "grant_type=client_credentials&client_id=nobody&client_secret=x", 401,
		 "invalid_client", false},
		{"no client authentication", NULL, "grant_type=client_credentials", 401,
		 "invalid_client", true},
		{"both methods", a_ok,
		 "grant_type=client_credentials&client_id=client-a&client_secret=secret-a-0123456789",
		 400, "invalid_request", false},
		{"id without secret", NULL, "grant_type=client_credentials&client_id=client-a", 401,
		 "invalid_client", false},
		{"suspended agent", s_ok, "grant_type=client_credentials", 401, "invalid_client",
		 true},
		{"revoked credential", rev, "grant_type=client_credentials", 401, "invalid_client",
		 true},
		{"expired credential", exp, "grant_type=client_credentials", 401, "invalid_client",
		 true},
		{"scope escalation", a_ok, "grant_type=client_credentials&scope=admin", 400,
		 "invalid_scope", false},
		{"scope partly unknown", a_ok,
		 "grant_type=client_credentials&scope=tokens%3Aread+agents%3Aadmin", 400,
		 "invalid_scope", false},
		{"scope with a double space", a_ok,
		 "grant_type=client_credentials&scope=tokens%3Aread++agents%3Aread", 400,
		 "invalid_scope", false},
		{"malformed escape", a_ok, "grant_type=client_credentials&scope=%zz", 400,
		 "invalid_request", false},
		{"duplicate parameter", a_ok, "grant_type=client_credentials&grant_type=client_credentials",
		 400, "invalid_request", false},
		{"duplicate, one empty", a_ok, "grant_type=client_credentials&scope=&scope=tokens%3Aread",
		 400, "invalid_request", false},
		{"malformed basic", "Authorization: Basic !!!!\r\n", "grant_type=client_credentials",
		 400, "invalid_request", false},
	};
	struct http_response *r = resp_new();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		post_form("/api/v1/token", cases[i].headers, cases[i].body, r);
		CHECK(r->status == cases[i].status, "%s: want %d, got %d %s", cases[i].what,
		      cases[i].status, r->status, r->body);
		expect_oauth_error(r, cases[i].status, cases[i].error);
		if (cases[i].basic_challenge)
			expect_header(r, "WWW-Authenticate", "Basic realm=\"ringside\"", false);
		else if (cases[i].status != 401)
			expect_no_header(r, "WWW-Authenticate");
	}
	/* Not a form at all. */
	char req[1024];
	snprintf(req, sizeof req,
		 "POST /api/v1/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n%s"
		 "Content-Length: 2\r\n\r\n{}",
		 a_ok);
	h_exchange(fx.s.port, req, false, r);
	expect_oauth_error(r, 400, "invalid_request");
	/* Over the form limit: refused before it is read. */
	post_form("/api/v1/token", a_ok, big, r);
	CHECK(r->status == 413, "oversized body: %d %s", r->status, r->body);
	free(r);
}

static void the_rate_limit_answers_429_with_retry_after(void **state)
{
	(void)state;
	need_database();
	struct server s;
	const char *const args[] = {"--database-url", fx.url, "--workers", "1", "--log-level",
				    "warn", "--jwt-public-key-file", RS256_PUB,
				    "--jwt-private-key-file", RS256_KEY, "--client-secret-key-file",
				    CLIENT_KEY, "--token-rate-limit", "3", NULL};
	server_start(&s, args);
	struct server saved = fx.s;
	fx.s = s;
	char auth[600];
	h_basic_header("client-a", "secret-a-0123456789", auth, sizeof auth);
	struct http_response *r = resp_new();
	for (int i = 0; i < 3; i++) {
		post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
		expect_status(r, 200, false);
	}
	post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
	CHECK(r->status == 429, "the 4th in a minute: %d %s", r->status, r->body);
	const char *after = resp_header(r, "Retry-After");
	CHECK(after && atoi(after) >= 1 && atoi(after) <= 60, "Retry-After %s", after ? after : "-");
	/* Another client has its own budget. */
	h_basic_header("client-b", "secret-b-0123456789", auth, sizeof auth);
	post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
	expect_status(r, 200, false);
	free(r);
	fx.s = saved;
	CHECK(server_stop(&s) == 0, "exit status");
}

static void introspect(const char *headers, const char *token, struct http_response *r)
{
	char body[4200];
	snprintf(body, sizeof body, "token=%s", token);
	post_form("/api/v1/token/introspect", headers, body, r);
}

static void expect_inactive(const struct http_response *r)
{
	CHECK(r->status == 200 && !strcmp(r->body, "{\"active\":false}"),
	      "want exactly {\"active\":false}: %d %s", r->status, r->body);
}

static void introspection_is_rfc_7662(void **state)
{
	(void)state;
	need_database();
	char a_token[4096], b_token[4096], reader[4096], no_read[4096], basic_a[600], bearer[4200];
	token_of("client-a", "secret-a-0123456789", NULL, a_token, sizeof a_token);
	token_of("client-b", "secret-b-0123456789", NULL, b_token, sizeof b_token);
	token_of("client-a", "secret-a-0123456789", "tokens:read", reader, sizeof reader);
	token_of("client-a", "secret-a-0123456789", "metrics:write", no_read, sizeof no_read);
	h_basic_header("client-a", "secret-a-0123456789", basic_a, sizeof basic_a);
	snprintf(bearer, sizeof bearer, "Authorization: Bearer %s\r\n", reader);

	struct http_response *r = resp_new();
	/* By a bearer with tokens:read, and by the client itself. */
	const char *callers[] = {bearer, basic_a};
	for (int i = 0; i < 2; i++) {
		introspect(callers[i], a_token, r);
		expect_status(r, 200, false);
		expect_header(r, "Cache-Control", "no-store", true);
		CHECK(json_valid(r->body, r->body_len, NULL, 0), "%s", r->body);
		static const char *const members[] = {"\"active\":true", "\"scope\":",
						      "\"client_id\":\"client-a\"",
						      "\"sub\":\"" AGENT_A "\"",
						      "\"organization_id\":\"" ORG1 "\"", "\"exp\":",
						      "\"iat\":", "\"jti\":", "\"iss\":\"ringside\"",
						      "\"aud\":\"ringside\"", "\"token_type\":\"Bearer\""};
		for (size_t m = 0; m < sizeof members / sizeof members[0]; m++)
			CHECK(strstr(r->body, members[m]), "no %s in %s", members[m], r->body);
	}
	/* Exactly {"active":false} for anything not active and ours. */
	char tampered[4096];
	snprintf(tampered, sizeof tampered, "%s", a_token);
	size_t n = strlen(tampered);
	tampered[n - 2] = tampered[n - 2] == 'A' ? 'B' : 'A';
	const char *inactive[] = {"garbage", tampered, b_token /* another organization's */};
	for (size_t i = 0; i < 3; i++) {
		introspect(bearer, inactive[i], r);
		expect_inactive(r);
	}
	/* The caller must authenticate, with tokens:read if by bearer. */
	introspect(NULL, a_token, r);
	expect_oauth_error(r, 401, "invalid_client");
	char weak[4200];
	snprintf(weak, sizeof weak, "Authorization: Bearer %s\r\n", no_read);
	introspect(weak, a_token, r);
	expect_oauth_error(r, 403, "insufficient_scope");
	introspect("Authorization: Bearer nope\r\n", a_token, r);
	expect_oauth_error(r, 401, "invalid_token");
	post_form("/api/v1/token/introspect", bearer, "token_type_hint=access_token", r);
	expect_oauth_error(r, 400, "invalid_request");
	free(r);
}

/* What an authenticated route of the server on port says to the token. */
static int latest_status_on(uint16_t port, const char *token)
{
	char req[4400];
	snprintf(req, sizeof req,
		 "GET /api/metrics/agents/%s/latest HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
		 "%s\r\n\r\n",
		 AGENT_A, token);
	struct http_response *r = resp_new();
	h_exchange(port, req, false, r);
	int status = r->status;
	free(r);
	return status;
}

static int latest_status(const char *token)
{
	return latest_status_on(fx.s.port, token);
}

static void revocation_is_rfc_7009(void **state)
{
	(void)state;
	need_database();
	char victim[4096], other_org[4096], basic_a[600], basic_b[600], body[4200];
	token_of("client-a", "secret-a-0123456789", NULL, victim, sizeof victim);
	token_of("client-b", "secret-b-0123456789", NULL, other_org, sizeof other_org);
	h_basic_header("client-a", "secret-a-0123456789", basic_a, sizeof basic_a);
	h_basic_header("client-b", "secret-b-0123456789", basic_b, sizeof basic_b);
	struct http_response *r = resp_new();
	/* Served (404: no report yet, not 401) until revoked. */
	CHECK(latest_status(victim) == 404, "before revocation");

	/* Another organization may not end it: 200, and nothing happens. */
	snprintf(body, sizeof body, "token=%s&token_type_hint=access_token", victim);
	post_form("/api/v1/token/revoke", basic_b, body, r);
	expect_status(r, 200, false);
	introspect(basic_a, victim, r);
	CHECK(strstr(r->body, "\"active\":true"), "still active: %s", r->body);

	post_form("/api/v1/token/revoke", basic_a, body, r);
	expect_status(r, 200, false);
	expect_header(r, "Cache-Control", "no-store", true);
	introspect(basic_a, victim, r);
	expect_inactive(r);
	/* At once, on every worker (two of them; several connections). */
	for (int i = 0; i < 8; i++)
		CHECK(latest_status(victim) == 401, "a revoked token was served");
	/* Again, unknown, garbage: 200 all the same. */
	post_form("/api/v1/token/revoke", basic_a, body, r);
	expect_status(r, 200, false);
	post_form("/api/v1/token/revoke", basic_a, "token=garbage", r);
	expect_status(r, 200, false);
	post_form("/api/v1/token/revoke", NULL, "token=garbage", r);
	expect_oauth_error(r, 401, "invalid_client");
	/* The row is there, with the token's exp; one count. */
	h_exchange(fx.s.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	CHECK(strstr(r->body, "\nsentryagent_tokens_revoked_total 1\n"), "%s", r->body);
	free(r);
}

/* A server of its own on the group's database, for the tests that
 * restart one; fx.s points at it meanwhile. */
static void start_own(struct server *s, const char *pub, const char *key, const char *previous)
{
	const char *args[24] = {"--database-url", fx.url, "--workers", "2", "--log-level", "warn",
				"--jwt-public-key-file", pub, "--jwt-private-key-file", key,
				"--client-secret-key-file", CLIENT_KEY, "--token-rate-limit", "0"};
	size_t n = 14;
	if (previous) {
		args[n++] = "--jwt-previous-public-key-file";
		args[n++] = previous;
	}
	args[n] = NULL;
	server_start(s, args);
	fx.s = *s;
}

static void header_kid(const char *token, char *out, size_t cap)
{
	const char *const argv[] = {"/usr/bin/python3", "-c",
				    "import jwt,sys;print(jwt.get_unverified_header(sys.argv[1])['kid'])",
				    token, NULL};
	struct run_result *v = run_new();
	h_run_prog(argv, NULL, 0, 20000, v);
	CHECK(v->exit_code == 0, "%s", v->err);
	snprintf(out, cap, "%.*s", (int)strcspn(v->out, "\n"), v->out);
	free(v);
}

/* Key rotation: the new key signs, tokens of the previous one stay
 * active until they expire, and both are published. */
static void tokens_of_the_previous_key_stay_valid_after_a_rotation(void **state)
{
	(void)state;
	need_database();
	struct server saved = fx.s, s;
	start_own(&s, RS256_PUB, RS256_KEY, NULL);
	char before[4096], after[4096], basic_a[600], kid_before[64], kid_after[64];
	token_of("client-a", "secret-a-0123456789", NULL, before, sizeof before);
	CHECK(server_stop(&s) == 0, "exit status");

	start_own(&s, ES256_PUB, ES256_KEY, RS256_PUB);
	token_of("client-a", "secret-a-0123456789", NULL, after, sizeof after);
	header_kid(before, kid_before, sizeof kid_before);
	header_kid(after, kid_after, sizeof kid_after);
	CHECK(strcmp(kid_before, kid_after), "the new token names the new key: %s", kid_after);
	h_basic_header("client-a", "secret-a-0123456789", basic_a, sizeof basic_a);
	struct http_response *r = resp_new();
	introspect(basic_a, before, r);
	CHECK(strstr(r->body, "\"active\":true"), "signed by the previous key: %s", r->body);
	introspect(basic_a, after, r);
	CHECK(strstr(r->body, "\"active\":true"), "signed by the new key: %s", r->body);
	CHECK(latest_status(before) == 404 && latest_status(after) == 404, "both served");
	h_exchange(fx.s.port, "GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	CHECK(strstr(r->body, kid_before) && strstr(r->body, kid_after) &&
		      strstr(r->body, kid_after) < strstr(r->body, kid_before),
	      "both keys published, the current first: %s", r->body);
	free(r);
	CHECK(server_stop(&s) == 0, "exit status");

	/* Once the previous key is dropped, its tokens are refused. */
	start_own(&s, ES256_PUB, ES256_KEY, NULL);
	CHECK(latest_status(before) == 401, "the dropped key's token was served");
	CHECK(server_stop(&s) == 0, "exit status");
	fx.s = saved;
}

/* Another instance on the same database refuses a token revoked through
 * this one within a second (NOTIFY), its resync set far away. */
static void a_revocation_reaches_another_instance_within_a_second(void **state)
{
	(void)state;
	need_database();
	struct server other;
	const char *const args[] = {"--database-url", fx.url, "--workers", "2", "--log-level",
				    "warn", "--jwt-public-key-file", RS256_PUB,
				    "--jwt-private-key-file", RS256_KEY, "--client-secret-key-file",
				    CLIENT_KEY, "--revocation-resync", "1h", NULL};
	server_start(&other, args);
	char victim[4096], basic_a[600], body[4200];
	token_of("client-a", "secret-a-0123456789", NULL, victim, sizeof victim);
	CHECK(latest_status_on(other.port, victim) == 404, "the other instance serves it");
	h_basic_header("client-a", "secret-a-0123456789", basic_a, sizeof basic_a);
	snprintf(body, sizeof body, "token=%s", victim);
	struct http_response *r = resp_new();
	post_form("/api/v1/token/revoke", basic_a, body, r);
	expect_status(r, 200, false);
	free(r);
	int64_t t0 = h_now_ms();
	int status = 0;
	while (h_now_ms() - t0 < 1000 && (status = latest_status_on(other.port, victim)) != 401)
		usleep(5000);
	CHECK(status == 401, "still served by the other instance after 1 s");
	print_message("the other instance refused it after %lld ms\n", (long long)(h_now_ms() - t0));
	CHECK(server_stop(&other) == 0, "exit status");
}

/* ---- Through the API, end to end ---- */

/* An operator's token of the organization, minted with the server's key
 * (`ringside token`, as README's bootstrap does). */
static void operator_token(const char *org, char *out, size_t cap)
{
	const char *const args[] = {"token", "--sub", "operator", "--org", org, "--scope",
				    "agents:write agents:read tokens:read", "--jwt-public-key-file",
				    RS256_PUB, "--jwt-private-key-file", RS256_KEY, NULL};
	struct run_result *r = run_new();
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 0, "token: %s", r->err);
	snprintf(out, cap, "%.*s", (int)strcspn(r->out, "\n"), r->out);
	free(r);
}

static void call(const char *method, const char *path, const char *bearer, const char *json,
		 struct http_response *r)
{
	h_bearer_call(fx.s.port, method, path, bearer, json, r);
}

/* A new credential of the agent: its client id and secret. */
static void new_credential(const char *admin, const char *agent, char *id, char *secret)
{
	char path[128];
	snprintf(path, sizeof path, "/api/v1/agents/%s/credentials", agent);
	struct http_response *r = resp_new();
	call("POST", path, admin, NULL, r);
	CHECK(r->status == 201, "credentials: %d %s", r->status, r->body);
	CHECK(json_get_string(r->body, "clientId", id, 64) &&
		      json_get_string(r->body, "clientSecret", secret, 64),
	      "%s", r->body);
	free(r);
}

static int ingest_status(const char *token)
{
	return h_ingest(fx.s.port, token, NULL);
}

static void a_registered_agents_tokens_work_until_its_credential_or_it_ends(void **state)
{
	(void)state;
	need_database();
	char admin[2048], agent[64], id1[64], secret1[64], id2[64], secret2[64];
	char token1[4096], token2[4096];
	operator_token("org-three", admin, sizeof admin);
	struct http_response *r = resp_new();
	call("POST", "/api/v1/agents", admin,
	     "{\"email\":\"e2e@example.com\",\"agentType\":\"monitor\",\"version\":\"2.1.0\","
	     "\"capabilities\":[\"metrics:write\"],\"owner\":\"ops\",\"deploymentEnv\":\"staging\"}",
	     r);
	CHECK(r->status == 201 && json_get_string(r->body, "agentId", agent, sizeof agent),
	      "register: %d %s", r->status, r->body);
	new_credential(admin, agent, id1, secret1);
	token_of(id1, secret1, "metrics:write", token1, sizeof token1);
	/* The ingest route takes it: the report is the agent's (its sub). */
	CHECK(ingest_status(token1) == 202, "ingest with an issued token");

	/* Rotation: a second credential, then the first revoked: its
	 * tokens end with it, the second's live on. */
	new_credential(admin, agent, id2, secret2);
	token_of(id2, secret2, "metrics:write", token2, sizeof token2);
	char path[160];
	struct http_response *c = resp_new();
	snprintf(path, sizeof path, "/api/v1/agents/%s/credentials", agent);
	call("GET", path, admin, NULL, c);
	char cred1[64] = "";
	const char *at = strstr(c->body, id1);
	CHECK(at, "%s", c->body);
	/* The credential whose clientId is id1: its credentialId precedes it. */
	const char *open = at;
	while (open > c->body && *open != '{')
		open--;
	CHECK(json_get_string(open, "credentialId", cred1, sizeof cred1), "%s", c->body);
	free(c);
	snprintf(path, sizeof path, "/api/v1/agents/%s/credentials/%s", agent, cred1);
	call("DELETE", path, admin, NULL, r);
	CHECK(r->status == 204, "revoke credential: %d %s", r->status, r->body);
	CHECK(ingest_status(token1) == 401, "the revoked credential's token still works");
	CHECK(ingest_status(token2) == 202, "the other credential's token stopped");
	char auth[600];
	h_basic_header(id1, secret1, auth, sizeof auth);
	post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
	expect_oauth_error(r, 401, "invalid_client");

	/* Suspended: no new token, the live one ends; active again: new
	 * tokens work, the old one stays ended. */
	snprintf(path, sizeof path, "/api/v1/agents/%s", agent);
	call("PATCH", path, admin, "{\"status\":\"suspended\"}", r);
	CHECK(r->status == 200, "suspend: %d %s", r->status, r->body);
	CHECK(ingest_status(token2) == 401, "a suspended agent's token still works");
	h_basic_header(id2, secret2, auth, sizeof auth);
	post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
	expect_oauth_error(r, 401, "invalid_client");
	introspect(auth, token2, r);
	expect_oauth_error(r, 401, "invalid_client");
	call("PATCH", path, admin, "{\"status\":\"active\"}", r);
	CHECK(r->status == 200, "reactivate: %d %s", r->status, r->body);
	char token3[4096];
	token_of(id2, secret2, "metrics:write", token3, sizeof token3);
	CHECK(ingest_status(token3) == 202, "a token issued after reactivation");
	CHECK(ingest_status(token2) == 401, "a token of before the suspension came back");

	/* Decommissioned: everything ends. */
	call("DELETE", path, admin, NULL, r);
	CHECK(r->status == 204, "decommission: %d %s", r->status, r->body);
	CHECK(ingest_status(token3) == 401, "a decommissioned agent's token still works");
	post_form("/api/v1/token", auth, "grant_type=client_credentials", r);
	expect_oauth_error(r, 401, "invalid_client");
	free(r);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(issues_a_token_by_basic_or_body),
		BB_TEST(every_token_error_is_the_rfcs),
		BB_TEST(the_rate_limit_answers_429_with_retry_after),
		BB_TEST(introspection_is_rfc_7662),
		BB_TEST(revocation_is_rfc_7009),
		BB_TEST(tokens_of_the_previous_key_stay_valid_after_a_rotation),
		BB_TEST(a_registered_agents_tokens_work_until_its_credential_or_it_ends),
		BB_TEST(a_revocation_reaches_another_instance_within_a_second),
	};
	return H_RUN_GROUP("oauth", tests, group_setup, group_teardown);
}
