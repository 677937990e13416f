/*
 * The agent registry and its credentials (openapi/identity.yaml) against
 * the test run's real PostgreSQL, each test on a database and a server
 * of its own: what a client sees (statuses, envelopes, bodies, headers)
 * and what that does to tokens (a suspended or decommissioned agent's
 * token refused at once, by the same server).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "../common/test_db.h"

#define SECRET "tests/auth/test-only-hs256.secret"
#define ORG "org-reg-1"
#define OTHER_ORG "org-reg-2"
#define UUID_LEN 36

struct registry_server {
	struct server s;
	char *url;
	char key_path[64];
	char *admin;  /* agents:read agents:write of ORG */
	char *reader; /* agents:read of ORG */
	char *other;  /* agents:read agents:write of OTHER_ORG */
};

static void skip_without_database(void)
{
	if (!test_db_available()) {
		print_message("no test database (RINGSIDE_TEST_DATABASE_URL): skipped\n");
		skip();
	}
}

/* A server on a fresh database with a token key and, if with_key, a
 * 48-byte client-secret key. */
static void start(struct registry_server *r, const char *label, bool with_key)
{
	skip_without_database();
	memset(r, 0, sizeof *r);
	r->url = test_db_create(label);
	CHECK(r->url, "no database");
	const char *args[16] = {"--database-url", r->url, "--workers", "2", "--log-level", "warn",
				"--jwt-secret-file", SECRET};
	size_t n = 8;
	if (with_key) {
		snprintf(r->key_path, sizeof r->key_path, "/tmp/ringside-bb-ck.XXXXXX");
		int fd = mkstemp(r->key_path);
		CHECK(fd >= 0, "mkstemp");
		unsigned char key[48];
		for (size_t i = 0; i < sizeof key; i++)
			key[i] = (unsigned char)(i * 37 + 11);
		CHECK(write(fd, key, sizeof key) == (ssize_t)sizeof key, "write key");
		close(fd);
		args[n++] = "--client-secret-key-file";
		args[n++] = r->key_path;
	}
	args[n] = NULL;
	server_start(&r->s, args);
	r->admin = h_mint_token(SECRET, "admin", ORG, "agents:read agents:write");
	r->reader = h_mint_token(SECRET, "reader", ORG, "agents:read");
	r->other = h_mint_token(SECRET, "intruder", OTHER_ORG, "agents:read agents:write");
}

static void stop(struct registry_server *r)
{
	CHECK(server_stop(&r->s) == 0, "exit status");
	test_db_drop(r->url);
	free(r->url);
	free(r->admin);
	free(r->reader);
	free(r->other);
	if (r->key_path[0])
		unlink(r->key_path);
}

/* One request; token and body may be NULL. */
static void call(const struct registry_server *r, const char *method, const char *path,
		 const char *token, const char *body, struct http_response *resp)
{
	size_t blen = body ? strlen(body) : 0;
	char *req = malloc(blen + 4096);
	CHECK(req, "malloc");
	int n = snprintf(req, 4096, "%s %s HTTP/1.1\r\nHost: t\r\n", method, path);
	if (token)
		n += snprintf(req + n, 4096 - (size_t)n, "Authorization: Bearer %s\r\n", token);
	if (body)
		n += snprintf(req + n, 4096 - (size_t)n,
			      "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
	n += snprintf(req + n, 4096 - (size_t)n, "\r\n");
	if (body)
		memcpy(req + n, body, blen + 1);
	h_exchange(r->s.port, req, false, resp);
	free(req);
}

static char *agent_body(const char *email)
{
	return h_strf("{\"email\":\"%s\",\"agentType\":\"screener\",\"version\":\"1.2.3\","
		      "\"capabilities\":[\"fleet:read\",\"metrics:write\"],\"owner\":\"team-a\","
		      "\"deploymentEnv\":\"staging\"}",
		      email);
}

/* Registers an agent of ORG; its id into id. */
static void create_agent(const struct registry_server *r, const char *email,
			 char id[UUID_LEN + 1])
{
	struct http_response *resp = resp_new();
	char *body = agent_body(email);
	call(r, "POST", "/api/v1/agents", r->admin, body, resp);
	expect_status(resp, 201, false);
	CHECK(json_get_string(resp->body, "agentId", id, UUID_LEN + 1) && strlen(id) == UUID_LEN,
	      "%s", resp->body);
	free(body);
	free(resp);
}

/* The "details":{"field":...} of an error body. */
static void expect_field(const struct http_response *resp, const char *field)
{
	char want[128];
	snprintf(want, sizeof want, "\"details\":{\"field\":\"%s\"", field);
	CHECK(strstr(resp->body, want), "want field %s: %s", field, resp->body);
}

static void create_answers_201_with_location_and_the_agent(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_create", false);
	struct http_response *resp = resp_new();
	char *body = agent_body("Screener.One@example.com");
	call(&r, "POST", "/api/v1/agents", r.admin, body, resp);
	expect_status(resp, 201, false);
	char id[64], v[128];
	CHECK(json_get_string(resp->body, "agentId", id, sizeof id) && strlen(id) == UUID_LEN,
	      "%s", resp->body);
	char *location = h_strf("/api/v1/agents/%s", id);
	expect_header(resp, "Location", location, false);
	expect_header(resp, "Content-Type", "application/json", false);
	static const char *const want[][2] = {
		{"status", "active"},      {"email", "Screener.One@example.com"},
		{"agentType", "screener"}, {"version", "1.2.3"},
		{"owner", "team-a"},       {"deploymentEnv", "staging"},
		{"organizationId", ORG},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		CHECK(json_get_string(resp->body, want[i][0], v, sizeof v), "no %s: %s", want[i][0],
		      resp->body);
		CHECK(!strcmp(v, want[i][1]), "%s: %s, want %s", want[i][0], v, want[i][1]);
	}
	CHECK(strstr(resp->body, "\"capabilities\":[\"fleet:read\",\"metrics:write\"]"), "%s",
	      resp->body);
	CHECK(json_get_string(resp->body, "createdAt", v, sizeof v) && strlen(v) == 24 &&
		      v[23] == 'Z',
	      "%s", resp->body);
	CHECK(json_get_string(resp->body, "updatedAt", v, sizeof v), "%s", resp->body);
	CHECK(json_valid(resp->body, resp->body_len, v, sizeof v), "%s: %s", v, resp->body);
	/* And it is there. */
	call(&r, "GET", location, r.reader, NULL, resp);
	expect_status(resp, 200, false);
	CHECK(strstr(resp->body, id), "%s", resp->body);
	free(location);
	free(body);
	free(resp);
	stop(&r);
}

static void create_refuses_each_invalid_field_naming_it(void **state)
{
	(void)state;
	static const struct {
		const char *body, *field;
	} cases[] = {
		{"{\"email\":\"not-an-email\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
		 "\"capabilities\":[\"a:b\"],\"owner\":\"o\",\"deploymentEnv\":\"staging\"}",
		 "email"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"robot\",\"version\":\"1.0.0\","
		 "\"capabilities\":[\"a:b\"],\"owner\":\"o\",\"deploymentEnv\":\"staging\"}",
		 "agentType"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0\","
		 "\"capabilities\":[\"a:b\"],\"owner\":\"o\",\"deploymentEnv\":\"staging\"}",
		 "version"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
		 "\"capabilities\":[],\"owner\":\"o\",\"deploymentEnv\":\"staging\"}",
		 "capabilities"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
		 "\"capabilities\":[\"a:b\",\"nocolon\"],\"owner\":\"o\",\"deploymentEnv\":\"staging\"}",
		 "capabilities[1]"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
		 "\"capabilities\":[\"a:b\"],\"owner\":\"\",\"deploymentEnv\":\"staging\"}",
		 "owner"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
		 "\"capabilities\":[\"a:b\"],\"owner\":\"o\",\"deploymentEnv\":\"qa\"}",
		 "deploymentEnv"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
		 "\"capabilities\":[\"a:b\"],\"owner\":\"o\"}",
		 "deploymentEnv"},
		{"{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
		 "\"capabilities\":[\"a:b\"],\"owner\":\"o\",\"deploymentEnv\":\"staging\","
		 "\"status\":\"active\"}",
		 "status"},
	};
	struct registry_server r;
	start(&r, "reg_invalid", false);
	struct http_response *resp = resp_new();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		call(&r, "POST", "/api/v1/agents", r.admin, cases[i].body, resp);
		expect_error(resp, 400, "VALIDATION_ERROR");
		expect_field(resp, cases[i].field);
	}
	/* An owner of 129 characters (128 is the most). */
	char owner[130];
	memset(owner, 'o', 129);
	owner[129] = '\0';
	char *body = h_strf("{\"email\":\"a@b.io\",\"agentType\":\"screener\",\"version\":\"1.0.0\","
			    "\"capabilities\":[\"a:b\"],\"owner\":\"%s\",\"deploymentEnv\":\"staging\"}",
			    owner);
	call(&r, "POST", "/api/v1/agents", r.admin, body, resp);
	expect_error(resp, 400, "VALIDATION_ERROR");
	expect_field(resp, "owner");
	free(body);
	/* Not JSON at all: the body as a whole, no field. */
	call(&r, "POST", "/api/v1/agents", r.admin, "{", resp);
	expect_error(resp, 400, "VALIDATION_ERROR");
	/* Nothing was stored. */
	call(&r, "GET", "/api/v1/agents", r.admin, NULL, resp);
	expect_status(resp, 200, false);
	CHECK(!strcmp(resp->body, "{\"data\":[],\"nextCursor\":null}"), "%s", resp->body);
	free(resp);
	stop(&r);
}

static void create_refuses_an_oversized_body_with_413(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_large", false);
	struct http_response *resp = resp_new();
	size_t n = 17 * 1024;
	char *body = malloc(n + 1);
	CHECK(body, "malloc");
	memset(body, ' ', n);
	body[0] = '{';
	body[n - 1] = '}';
	body[n] = '\0';
	call(&r, "POST", "/api/v1/agents", r.admin, body, resp);
	expect_error(resp, 413, "PAYLOAD_TOO_LARGE");
	free(body);
	free(resp);
	stop(&r);
}

static void duplicate_email_is_409_in_any_case(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_dup", false);
	char id[UUID_LEN + 1], other[UUID_LEN + 1];
	create_agent(&r, "dup@example.com", id);
	struct http_response *resp = resp_new();
	char *body = agent_body("DUP@Example.COM");
	call(&r, "POST", "/api/v1/agents", r.admin, body, resp);
	expect_error(resp, 409, "CONFLICT");
	/* A PATCH to an email in use, likewise. */
	create_agent(&r, "second@example.com", other);
	char *path = h_strf("/api/v1/agents/%s", other);
	call(&r, "PATCH", path, r.admin, "{\"email\":\"Dup@example.com\"}", resp);
	expect_error(resp, 409, "CONFLICT");
	/* Decommissioned, its email may be registered again. */
	free(path);
	path = h_strf("/api/v1/agents/%s", id);
	call(&r, "DELETE", path, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	call(&r, "POST", "/api/v1/agents", r.admin, body, resp);
	expect_status(resp, 201, false);
	free(path);
	free(body);
	free(resp);
	stop(&r);
}

/* The agentIds of a list body, in order; their count. */
static size_t ids_of(const char *body, char ids[][UUID_LEN + 1], size_t cap)
{
	size_t n = 0;
	for (const char *p = body; (p = strstr(p, "\"agentId\":\"")) && n < cap; n++) {
		p += 11;
		memcpy(ids[n], p, UUID_LEN);
		ids[n][UUID_LEN] = '\0';
	}
	return n;
}

static void list_pages_newest_first_with_a_cursor_and_a_status_filter(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_list", false);
	enum { AGENTS = 7 };
	char made[AGENTS][UUID_LEN + 1];
	for (int i = 0; i < AGENTS; i++) {
		char email[64];
		snprintf(email, sizeof email, "list%d@example.com", i);
		create_agent(&r, email, made[i]);
	}
	struct http_response *resp = resp_new();
	/* Pages of 3: 3 + 3 + 1, newest first, then a null cursor. */
	char seen[AGENTS + 3][UUID_LEN + 1], cursor[128] = "";
	size_t total = 0;
	for (int page = 0; page < 4; page++) {
		char *path = page ? h_strf("/api/v1/agents?limit=3&cursor=%s", cursor)
				  : h_strf("/api/v1/agents?limit=3");
		call(&r, "GET", path, r.reader, NULL, resp);
		free(path);
		expect_status(resp, 200, false);
		size_t n = ids_of(resp->body, seen + total, AGENTS + 3 - total);
		total += n;
		if (strstr(resp->body, "\"nextCursor\":null")) {
			CHECK(n == 1 && page == 2, "page %d: %zu agents, last: %s", page, n, resp->body);
			break;
		}
		CHECK(n == 3, "page %d: %zu agents: %s", page, n, resp->body);
		CHECK(json_get_string(resp->body, "nextCursor", cursor, sizeof cursor), "%s",
		      resp->body);
	}
	CHECK(total == AGENTS, "%zu agents over the pages", total);
	for (int i = 0; i < AGENTS; i++)
		CHECK(!strcmp(seen[i], made[AGENTS - 1 - i]), "position %d: %s, want %s", i,
		      seen[i], made[AGENTS - 1 - i]);
	/* Default limit (20) holds them all; 100 is allowed. */
	call(&r, "GET", "/api/v1/agents", r.reader, NULL, resp);
	CHECK(ids_of(resp->body, seen, AGENTS + 3) == AGENTS, "%s", resp->body);
	call(&r, "GET", "/api/v1/agents?limit=100", r.reader, NULL, resp);
	expect_status(resp, 200, false);

	/* Suspended and decommissioned ones: the filter, and the default
	 * that leaves decommissioned agents out. */
	char *path = h_strf("/api/v1/agents/%s", made[0]);
	call(&r, "PATCH", path, r.admin, "{\"status\":\"suspended\"}", resp);
	expect_status(resp, 200, false);
	free(path);
	path = h_strf("/api/v1/agents/%s", made[1]);
	call(&r, "DELETE", path, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	free(path);
	call(&r, "GET", "/api/v1/agents?status=suspended", r.reader, NULL, resp);
	CHECK(ids_of(resp->body, seen, 3) == 1 && !strcmp(seen[0], made[0]), "%s", resp->body);
	call(&r, "GET", "/api/v1/agents?status=decommissioned", r.reader, NULL, resp);
	CHECK(ids_of(resp->body, seen, 3) == 1 && !strcmp(seen[0], made[1]), "%s", resp->body);
	call(&r, "GET", "/api/v1/agents", r.reader, NULL, resp);
	CHECK(ids_of(resp->body, seen, AGENTS) == AGENTS - 1 && !strstr(resp->body, made[1]),
	      "%s", resp->body);

	/* Bad parameters name themselves. */
	static const struct {
		const char *query, *field;
	} bad[] = {
		{"limit=0", "limit"},         {"limit=101", "limit"},
		{"limit=abc", "limit"},       {"limit=", "limit"},
		{"status=retired", "status"}, {"status=Active", "status"},
		{"cursor=garbage", "cursor"}, {"cursor=12.not-a-uuid", "cursor"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *p = h_strf("/api/v1/agents?%s", bad[i].query);
		call(&r, "GET", p, r.reader, NULL, resp);
		expect_error(resp, 400, "VALIDATION_ERROR");
		expect_field(resp, bad[i].field);
		free(p);
	}
	free(resp);
	stop(&r);
}

/* Rows big enough that 100 do not fit the result buffer: the page stops
 * early with a cursor, and the pages still hold every agent once. */
static void a_page_of_large_agents_stops_early_and_loses_none(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_big_page", false);
	enum { AGENTS = 60 };
	char caps[32 * 32] = "", owner[128 * 2 + 1] = "";
	for (int i = 0; i < 32; i++) {
		char one[32];
		snprintf(one, sizeof one, "%s\"resource-%02d:action-xyz\"", i ? "," : "", i);
		strcat(caps, one);
	}
	for (int i = 0; i < 128; i++)
		strcat(owner, "\xc3\xa9"); /* 128 characters, 256 bytes */
	struct http_response *resp = resp_new();
	for (int i = 0; i < AGENTS; i++) {
		char *body = h_strf("{\"email\":\"big%d@example.com\",\"agentType\":\"custom\","
				    "\"version\":\"1.0.0\",\"capabilities\":[%s],\"owner\":\"%s\","
				    "\"deploymentEnv\":\"production\"}",
				    i, caps, owner);
		call(&r, "POST", "/api/v1/agents", r.admin, body, resp);
		expect_status(resp, 201, false);
		free(body);
	}
	static char seen[AGENTS * 2][UUID_LEN + 1];
	char cursor[128] = "";
	size_t total = 0;
	int pages = 0;
	for (; pages < 10; pages++) {
		char *path = pages ? h_strf("/api/v1/agents?limit=100&cursor=%s", cursor)
				   : h_strf("/api/v1/agents?limit=100");
		call(&r, "GET", path, r.reader, NULL, resp);
		free(path);
		expect_status(resp, 200, false);
		size_t n = ids_of(resp->body, seen + total, AGENTS * 2 - total);
		total += n;
		if (strstr(resp->body, "\"nextCursor\":null"))
			break;
		CHECK(n > 0 && n < AGENTS, "page %d: %zu agents", pages, n);
		CHECK(json_get_string(resp->body, "nextCursor", cursor, sizeof cursor), "%s",
		      resp->body);
	}
	CHECK(pages >= 1 && total == AGENTS, "%d pages, %zu agents", pages + 1, total);
	for (size_t i = 0; i < total; i++)
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(seen[i], seen[k]), "%s twice", seen[i]);
	free(resp);
	stop(&r);
}

static void get_answers_one_agent_a_decommissioned_one_too(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_get", false);
	char id[UUID_LEN + 1];
	create_agent(&r, "get@example.com", id);
	struct http_response *resp = resp_new();
	char *path = h_strf("/api/v1/agents/%s", id);
	call(&r, "DELETE", path, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	call(&r, "GET", path, r.reader, NULL, resp);
	expect_status(resp, 200, false);
	CHECK(strstr(resp->body, "\"status\":\"decommissioned\""), "%s", resp->body);
	/* Unknown, and not a UUID: 404 both. */
	call(&r, "GET", "/api/v1/agents/00000000-0000-4000-8000-000000000000", r.reader, NULL,
	     resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "GET", "/api/v1/agents/not-a-uuid", r.reader, NULL, resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "GET", "/api/v1/agents/00000000-0000-4000-8000-00000000000g", r.reader, NULL,
	     resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	free(path);
	free(resp);
	stop(&r);
}

static void another_organization_gets_404_on_every_route_and_changes_nothing(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_isolation", true);
	char id[UUID_LEN + 1], cred[UUID_LEN + 1];
	create_agent(&r, "mine@example.com", id);
	struct http_response *resp = resp_new();
	char *agent = h_strf("/api/v1/agents/%s", id);
	char *creds = h_strf("/api/v1/agents/%s/credentials", id);
	call(&r, "POST", creds, r.admin, NULL, resp);
	expect_status(resp, 201, false);
	CHECK(json_get_string(resp->body, "credentialId", cred, sizeof cred), "%s", resp->body);
	char *one_cred = h_strf("%s/%s", creds, cred);

	call(&r, "GET", agent, r.other, NULL, resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "PATCH", agent, r.other, "{\"status\":\"suspended\"}", resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "PATCH", agent, r.other, "{\"owner\":\"mallory\"}", resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "DELETE", agent, r.other, NULL, resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "POST", creds, r.other, NULL, resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "GET", creds, r.other, NULL, resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "DELETE", one_cred, r.other, NULL, resp);
	CHECK(resp->status == 404, "%d %s", resp->status, resp->body);
	call(&r, "GET", "/api/v1/agents", r.other, NULL, resp);
	expect_status(resp, 200, false);
	CHECK(!strcmp(resp->body, "{\"data\":[],\"nextCursor\":null}"), "%s", resp->body);

	/* Nothing changed: still active, owner kept, one active credential. */
	call(&r, "GET", agent, r.reader, NULL, resp);
	expect_status(resp, 200, false);
	CHECK(strstr(resp->body, "\"status\":\"active\"") &&
		      strstr(resp->body, "\"owner\":\"team-a\""),
	      "%s", resp->body);
	call(&r, "GET", creds, r.reader, NULL, resp);
	expect_status(resp, 200, false);
	CHECK(strstr(resp->body, "\"status\":\"active\""), "%s", resp->body);
	free(one_cred);
	free(creds);
	free(agent);
	free(resp);
	stop(&r);
}

static void scopes_are_403_and_a_missing_token_401(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_scope", true);
	char id[UUID_LEN + 1];
	create_agent(&r, "scope@example.com", id);
	char *metrics_only = h_mint_token(SECRET, "m", ORG, "metrics:write");
	struct http_response *resp = resp_new();
	char *agent = h_strf("/api/v1/agents/%s", id);
	char *creds = h_strf("/api/v1/agents/%s/credentials", id);
	char *body = agent_body("x@example.com");
	const struct {
		const char *method, *path, *body;
		bool write;
	} routes[] = {
		{"POST", "/api/v1/agents", body, true},  {"GET", "/api/v1/agents", NULL, false},
		{"GET", agent, NULL, false},             {"PATCH", agent, "{\"owner\":\"x\"}", true},
		{"DELETE", agent, NULL, true},           {"POST", creds, NULL, true},
		{"GET", creds, NULL, false},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		call(&r, routes[i].method, routes[i].path, NULL, routes[i].body, resp);
		expect_error(resp, 401, "UNAUTHORIZED");
		CHECK(resp_header(resp, "WWW-Authenticate"), "%s %s", routes[i].method,
		      routes[i].path);
		call(&r, routes[i].method, routes[i].path, metrics_only, routes[i].body, resp);
		expect_error(resp, 403, "FORBIDDEN");
		CHECK(strstr(resp_header(resp, "WWW-Authenticate"), "insufficient_scope"), "%s",
		      resp_header(resp, "WWW-Authenticate"));
		if (routes[i].write) {
			call(&r, routes[i].method, routes[i].path, r.reader, routes[i].body, resp);
			expect_error(resp, 403, "FORBIDDEN");
		}
	}
	call(&r, "GET", agent, "not.a.token", NULL, resp);
	expect_error(resp, 401, "UNAUTHORIZED");
	/* Nothing was changed by the refused writes. */
	call(&r, "GET", agent, r.reader, NULL, resp);
	CHECK(strstr(resp->body, "\"status\":\"active\"") &&
		      strstr(resp->body, "\"owner\":\"team-a\""),
	      "%s", resp->body);
	free(body);
	free(creds);
	free(agent);
	free(metrics_only);
	free(resp);
	stop(&r);
}

static void patch_suspends_reactivates_and_refuses_a_decommissioned_agent(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_patch", false);
	char id[UUID_LEN + 1];
	create_agent(&r, "patch@example.com", id);
	struct http_response *resp = resp_new();
	char *agent = h_strf("/api/v1/agents/%s", id);
	call(&r, "PATCH", agent, r.admin, "{\"status\":\"suspended\",\"owner\":\"team-b\"}", resp);
	expect_status(resp, 200, false);
	CHECK(strstr(resp->body, "\"status\":\"suspended\"") &&
		      strstr(resp->body, "\"owner\":\"team-b\""),
	      "%s", resp->body);
	call(&r, "PATCH", agent, r.admin, "{\"status\":\"active\",\"version\":\"2.0.0-rc.1\"}", resp);
	expect_status(resp, 200, false);
	CHECK(strstr(resp->body, "\"status\":\"active\"") &&
		      strstr(resp->body, "\"version\":\"2.0.0-rc.1\"") &&
		      strstr(resp->body, "\"owner\":\"team-b\""),
	      "%s", resp->body);
	call(&r, "PATCH", agent, r.admin, "{\"status\":\"decommissioned\"}", resp);
	expect_error(resp, 400, "VALIDATION_ERROR");
	expect_field(resp, "status");
	CHECK(strstr(resp->body, "DELETE"), "%s", resp->body);
	call(&r, "PATCH", agent, r.admin, "{}", resp);
	expect_error(resp, 400, "VALIDATION_ERROR");
	call(&r, "PATCH", "/api/v1/agents/00000000-0000-4000-8000-000000000000", r.admin,
	     "{\"owner\":\"x\"}", resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "DELETE", agent, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	call(&r, "PATCH", agent, r.admin, "{\"status\":\"active\"}", resp);
	expect_error(resp, 409, "CONFLICT");
	call(&r, "PATCH", agent, r.admin, "{\"owner\":\"again\"}", resp);
	expect_error(resp, 409, "CONFLICT");
	free(agent);
	free(resp);
	stop(&r);
}

/* sentryagent_... counter value from /metrics, or -1. */
static double counter(const struct registry_server *r, const char *name)
{
	struct http_response *resp = resp_new();
	call(r, "GET", "/metrics", NULL, NULL, resp);
	char key[128];
	snprintf(key, sizeof key, "\n%s ", name);
	const char *p = strstr(resp->body, key);
	double v = p ? strtod(p + strlen(key), NULL) : -1;
	free(resp);
	return v;
}

static void delete_is_204_twice_and_404_for_unknown(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_delete", false);
	char id[UUID_LEN + 1];
	create_agent(&r, "delete@example.com", id);
	struct http_response *resp = resp_new();
	char *agent = h_strf("/api/v1/agents/%s", id);
	call(&r, "DELETE", agent, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	CHECK(resp->body_len == 0, "%s", resp->body);
	call(&r, "DELETE", agent, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	call(&r, "DELETE", "/api/v1/agents/00000000-0000-4000-8000-000000000000", r.admin, NULL,
	     resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	call(&r, "DELETE", "/api/v1/agents/xyz", r.admin, NULL, resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	/* Counted once each: the second DELETE decommissioned nothing. */
	double registered = counter(&r, "sentryagent_agents_registered_total");
	double decommissioned = counter(&r, "sentryagent_agents_decommissioned_total");
	CHECK(registered == 1 && decommissioned == 1, "registered %.0f, decommissioned %.0f",
	      registered, decommissioned);
	free(agent);
	free(resp);
	stop(&r);
}

/* An agent's own token is refused by an authenticated route (its
 * /latest) the moment `change` ends it, on the same server. */
static void expect_token_ends(const char *label, const char *method, const char *body)
{
	struct registry_server r;
	start(&r, label, false);
	char id[UUID_LEN + 1];
	create_agent(&r, "tokens@example.com", id);
	char *own = h_mint_token(SECRET, id, ORG, "metrics:write");
	struct http_response *resp = resp_new();
	char *latest = h_strf("/api/metrics/agents/%s/latest", id);
	call(&r, "GET", latest, own, NULL, resp);
	CHECK(resp->status == 404, "before: %d %s", resp->status, resp->body); /* no report yet */
	char *agent = h_strf("/api/v1/agents/%s", id);
	call(&r, method, agent, r.admin, body, resp);
	CHECK(resp->status == 200 || resp->status == 204, "%d %s", resp->status, resp->body);
	call(&r, "GET", latest, own, NULL, resp);
	expect_error(resp, 401, "UNAUTHORIZED");
	CHECK(strstr(resp->body, "revoked"), "%s", resp->body);
	free(agent);
	free(latest);
	free(own);
	free(resp);
	stop(&r);
}

static void a_suspended_agents_token_is_refused_at_once(void **state)
{
	(void)state;
	expect_token_ends("reg_tok_susp", "PATCH", "{\"status\":\"suspended\"}");
}

static void a_decommissioned_agents_token_is_refused_at_once(void **state)
{
	(void)state;
	expect_token_ends("reg_tok_dec", "DELETE", NULL);
}

static void credentials_show_the_secret_once_hold_ten_and_revoke(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_creds", true);
	char id[UUID_LEN + 1];
	create_agent(&r, "creds@example.com", id);
	struct http_response *resp = resp_new();
	char *creds = h_strf("/api/v1/agents/%s/credentials", id);
	char first[UUID_LEN + 1] = "", v[128];
	for (int i = 0; i < 10; i++) {
		call(&r, "POST", creds, r.admin, i % 2 ? "" : NULL, resp);
		expect_status(resp, 201, false);
		CHECK(json_get_string(resp->body, "clientSecret", v, sizeof v) && strlen(v) == 43,
		      "%s", resp->body);
		CHECK(json_get_string(resp->body, "clientId", v, sizeof v) && strlen(v) == 32, "%s",
		      resp->body);
		CHECK(json_get_string(resp->body, "status", v, sizeof v) && !strcmp(v, "active"),
		      "%s", resp->body);
		CHECK(json_get_string(resp->body, "expiresAt", v, sizeof v), "%s", resp->body);
		expect_header(resp, "Cache-Control", "no-store", false);
		if (!first[0]) {
			CHECK(json_get_string(resp->body, "credentialId", first, sizeof first),
			      "%s", resp->body);
			char *location = h_strf("%s/%s", creds, first);
			expect_header(resp, "Location", location, false);
			free(location);
		}
	}
	call(&r, "POST", creds, r.admin, NULL, resp);
	expect_error(resp, 409, "CONFLICT");
	call(&r, "GET", creds, r.reader, NULL, resp);
	expect_status(resp, 200, false);
	CHECK(!strstr(resp->body, "clientSecret") && !strstr(resp->body, "secret"), "%s",
	      resp->body);
	size_t listed = 0;
	for (const char *p = resp->body; (p = strstr(p, "\"credentialId\"")); p++)
		listed++;
	CHECK(listed == 10, "%zu listed: %s", listed, resp->body);

	char *one = h_strf("%s/%s", creds, first);
	call(&r, "DELETE", one, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	call(&r, "DELETE", one, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	call(&r, "DELETE", "/api/v1/agents/00000000-0000-4000-8000-000000000000/credentials/"
			   "00000000-0000-4000-8000-000000000000",
	     r.admin, NULL, resp);
	expect_error(resp, 404, "CREDENTIAL_NOT_FOUND");
	char *unknown = h_strf("%s/00000000-0000-4000-8000-000000000000", creds);
	call(&r, "DELETE", unknown, r.admin, NULL, resp);
	expect_error(resp, 404, "CREDENTIAL_NOT_FOUND");
	char *malformed = h_strf("%s/nope", creds);
	call(&r, "DELETE", malformed, r.admin, NULL, resp);
	expect_error(resp, 404, "CREDENTIAL_NOT_FOUND");
	/* A place is free again; the list says which is revoked. */
	call(&r, "POST", creds, r.admin, NULL, resp);
	expect_status(resp, 201, false);
	call(&r, "GET", creds, r.reader, NULL, resp);
	CHECK(strstr(resp->body, "\"status\":\"revoked\""), "%s", resp->body);

	/* Decommissioned: 409; absent: 404. */
	char *agent = h_strf("/api/v1/agents/%s", id);
	call(&r, "DELETE", agent, r.admin, NULL, resp);
	expect_status(resp, 204, false);
	call(&r, "POST", creds, r.admin, NULL, resp);
	expect_error(resp, 409, "CONFLICT");
	call(&r, "GET", creds, r.reader, NULL, resp);
	CHECK(!strstr(resp->body, "\"status\":\"active\""), "all revoked with it: %s", resp->body);
	call(&r, "POST", "/api/v1/agents/00000000-0000-4000-8000-000000000000/credentials",
	     r.admin, NULL, resp);
	expect_error(resp, 404, "AGENT_NOT_FOUND");
	free(agent);
	free(malformed);
	free(unknown);
	free(one);
	free(creds);
	free(resp);
	stop(&r);
}

static void credentials_are_503_without_a_client_secret_key(void **state)
{
	(void)state;
	struct registry_server r;
	start(&r, "reg_nokey", false);
	char id[UUID_LEN + 1];
	create_agent(&r, "nokey@example.com", id);
	struct http_response *resp = resp_new();
	char *creds = h_strf("/api/v1/agents/%s/credentials", id);
	call(&r, "POST", creds, r.admin, NULL, resp);
	expect_error(resp, 503, "SERVICE_UNAVAILABLE");
	CHECK(strstr(resp->body, "--client-secret-key-file"), "%s", resp->body);
	free(creds);
	free(resp);
	stop(&r);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(create_answers_201_with_location_and_the_agent),
		BB_TEST(create_refuses_each_invalid_field_naming_it),
		BB_TEST(create_refuses_an_oversized_body_with_413),
		BB_TEST(duplicate_email_is_409_in_any_case),
		BB_TEST(list_pages_newest_first_with_a_cursor_and_a_status_filter),
		BB_TEST(a_page_of_large_agents_stops_early_and_loses_none),
		BB_TEST(get_answers_one_agent_a_decommissioned_one_too),
		BB_TEST(another_organization_gets_404_on_every_route_and_changes_nothing),
		BB_TEST(scopes_are_403_and_a_missing_token_401),
		BB_TEST(patch_suspends_reactivates_and_refuses_a_decommissioned_agent),
		BB_TEST(delete_is_204_twice_and_404_for_unknown),
		BB_TEST(a_suspended_agents_token_is_refused_at_once),
		BB_TEST(a_decommissioned_agents_token_is_refused_at_once),
		BB_TEST(credentials_show_the_secret_once_hold_ten_and_revoke),
		BB_TEST(credentials_are_503_without_a_client_secret_key),
	};
	return H_RUN_GROUP("registry", tests, NULL, NULL);
}
