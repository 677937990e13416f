/*
 * Black-box: POST /api/metrics/ingest with tokens minted by `ringside
 * token`, then the report in GET /api/metrics/agents/{id}/latest and
 * GET /metrics/fleet (checked by promtool); every authentication failure;
 * 400, 413, 415, 429; and a refused report losing nothing accepted.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "tests/auth/test-only-hs256.secret"
#define OTHER_SECRET "tests/auth/test-only-hs256-other.secret"
#define PROMTOOL "/usr/bin/promtool"

static char *full_sample, *minimal_sample;
static size_t full_len, minimal_len;

/* A token from `ringside token` (the same signer the server verifies). */
static char *mint(const char *secret, const char *sub, const char *org, const char *scope)
{
	const char *args[] = {"token", "--sub", sub, "--org", org, "--scope", scope,
			      "--jwt-secret-file", secret, NULL};
	struct run_result *r = run_new();
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 0, "ringside token: exit %d: %s", r->exit_code, r->err);
	r->out[strcspn(r->out, "\n")] = '\0';
	char *t = h_strf("%s", r->out);
	free(r);
	return t;
}

/* The Authorization field of a Bearer token, or "" for NULL. */
static char *auth_field(const char *token)
{
	return token ? h_strf("Authorization: Bearer %s\r\n", token) : h_strf("%s", "");
}

/* Sends head (freed here) and len body bytes on a fresh connection; the
 * response in *r (freed by the caller). */
static struct http_response *exchange(uint16_t port, char *head, const char *body, size_t len)
{
	struct conn *c = conn_open(port);
	conn_send_str(c, head);
	if (len)
		conn_send(c, body, len);
	struct http_response *r = resp_new();
	expect_response(c, r, false);
	conn_close(c);
	free(head);
	return r;
}

/* `auth` NULL: no Authorization field. */
static struct http_response *post(uint16_t port, const char *auth, const char *ctype,
				  const char *body, size_t len)
{
	char *a = auth_field(auth);
	char *head = h_strf("POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n%s"
			    "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n", a, ctype, len);
	free(a);
	return exchange(port, head, body, len);
}

static struct http_response *get(uint16_t port, const char *path, const char *auth)
{
	char *a = auth_field(auth);
	char *head = h_strf("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, a);
	free(a);
	return exchange(port, head, NULL, 0);
}

static int setup(void **state)
{
	static const char *const args[] = {"--jwt-secret-file", SECRET, "--max-body-bytes",
					   "64KiB", "--workers", "2", NULL};
	full_sample = h_read_sample("ingest-full.json", &full_len);
	minimal_sample = h_read_sample("ingest-minimal.json", &minimal_len);
	return h_group_setup_with(state, args);
}

static int teardown(void **state)
{
	free(full_sample);
	free(minimal_sample);
	return h_group_teardown(state);
}

static void full_sample_is_accepted_then_served_as_latest(void **state)
{
	uint16_t port = port_of(state);
	char *tok = mint(SECRET, "agent-full", "org-a", "metrics:write agents:read");
	struct http_response *r = post(port, tok, "application/json", full_sample, full_len);
	expect_status(r, 202, false);
	CHECK(resp_content_type_is(r, "application/json"), "202 Content-Type");
	double n;
	CHECK(json_get_number(r->body, "containers", &n, NULL, 0) && n == 10,
	      "202 says 10 containers: %s", r->body);
	CHECK(json_get_number(r->body, "bytes", &n, NULL, 0) && n == (double)full_len,
	      "202 says %zu bytes: %s", full_len, r->body);
	free(r);

	r = get(port, "/api/metrics/agents/agent-full/latest", tok);
	expect_status(r, 200, false);
	char s[128];
	CHECK(json_get_string(r->body, "agentId", s, sizeof s) && !strcmp(s, "agent-full"),
	      "agentId: %.300s", r->body);
	CHECK(json_get_string(r->body, "organizationId", s, sizeof s) && !strcmp(s, "org-a"),
	      "organizationId: %.300s", r->body);
	CHECK(json_get_number(r->body, "memoryUsedMb", &n, NULL, 0) && n == 6120.5,
	      "memoryUsedMb: %.300s", r->body);
	CHECK(json_get_string(r->body, "receivedAt", s, sizeof s) &&
		      llabs(h_parse_iso_ms(s) - h_wall_ms()) < 60000,
	      "receivedAt near now: %.300s", r->body);
	char why[128];
	CHECK(json_valid(r->body, r->body_len, why, sizeof why), "latest is JSON: %s", why);
	free(r);
	free(tok);
}

static void latest_is_only_for_the_agents_organization(void **state)
{
	uint16_t port = port_of(state);
	char *tok = mint(SECRET, "agent-shared-id", "org-a", "metrics:write");
	struct http_response *r = post(port, tok, "application/json", minimal_sample, minimal_len);
	expect_status(r, 202, false);
	free(r);
	char *other = mint(SECRET, "reader", "org-b", "agents:read");
	r = get(port, "/api/metrics/agents/agent-shared-id/latest", other);
	expect_error(r, 404, "NOT_FOUND");
	free(r);
	r = get(port, "/api/metrics/agents/never-posted/latest", tok);
	expect_error(r, 404, "NOT_FOUND");
	free(r);
	r = get(port, "/api/metrics/agents/agent-shared-id/latest", NULL);
	expect_error(r, 401, "UNAUTHORIZED");
	free(r);
	free(tok);
	free(other);
}

static void every_authentication_failure_is_refused(void **state)
{
	uint16_t port = port_of(state);
	struct http_response *r = post(port, NULL, "application/json", minimal_sample, minimal_len);
	expect_error(r, 401, "UNAUTHORIZED");
	CHECK(resp_header(r, "WWW-Authenticate") &&
		      !strncmp(resp_header(r, "WWW-Authenticate"), "Bearer", 6),
	      "401 names the Bearer scheme");
	free(r);

	r = post(port, "not.a.token", "application/json", minimal_sample, minimal_len);
	expect_error(r, 401, "UNAUTHORIZED");
	CHECK(strstr(resp_header(r, "WWW-Authenticate"), "invalid_token") != NULL,
	      "invalid_token: %s", resp_header(r, "WWW-Authenticate"));
	free(r);

	char *foreign = mint(OTHER_SECRET, "agent-x", "org-a", "metrics:write");
	r = post(port, foreign, "application/json", minimal_sample, minimal_len);
	expect_error(r, 401, "UNAUTHORIZED");
	free(r);
	free(foreign);

	char *reader = mint(SECRET, "agent-x", "org-a", "agents:read");
	r = post(port, reader, "application/json", minimal_sample, minimal_len);
	expect_error(r, 403, "FORBIDDEN_SCOPE");
	CHECK(strstr(resp_header(r, "WWW-Authenticate"), "insufficient_scope") != NULL,
	      "insufficient_scope: %s", resp_header(r, "WWW-Authenticate"));
	free(r);
	free(reader);
}

static void bad_bodies_get_their_status_and_lose_nothing_accepted(void **state)
{
	uint16_t port = port_of(state);
	char *tok = mint(SECRET, "agent-keep", "org-a", "metrics:write agents:read");
	struct http_response *r = post(port, tok, "application/json", full_sample, full_len);
	expect_status(r, 202, false);
	free(r);

	static const char wrong_type[] = "{\"containers\":[{\"id\":1}]}";
	r = post(port, tok, "application/json", wrong_type, sizeof wrong_type - 1);
	expect_error(r, 400, "VALIDATION_ERROR");
	char field[128];
	CHECK(json_get_string(r->body, "field", field, sizeof field) &&
		      !strcmp(field, "containers[0].id"),
	      "field path: %s", r->body);
	free(r);

	r = post(port, tok, "text/plain", full_sample, full_len);
	expect_error(r, 415, "VALIDATION_ERROR");
	free(r);

	/* Over --max-body-bytes (64 KiB): refused before it is read. */
	size_t big = 70 * 1024;
	char *body = malloc(big);
	memset(body, ' ', big);
	body[0] = '{';
	body[big - 1] = '}';
	r = post(port, tok, "application/json", body, big);
	expect_error(r, 413, "VALIDATION_ERROR");
	free(r);
	free(body);

	/* The accepted report is still the agent's latest. */
	r = get(port, "/api/metrics/agents/agent-keep/latest", tok);
	expect_status(r, 200, false);
	CHECK(strstr(r->body, "\"containers\":[{") != NULL, "full report kept: %.300s", r->body);
	free(r);
	free(tok);
}

static void chunked_body_in_small_pieces_is_accepted(void **state)
{
	uint16_t port = port_of(state);
	char *tok = mint(SECRET, "agent-chunked", "org-a", "metrics:write");
	struct conn *c = conn_open(port);
	char *head = h_strf("POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n"
			    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n", tok);
	conn_send_str(c, head);
	for (size_t off = 0; off < full_len; off += 997) {
		size_t n = full_len - off < 997 ? full_len - off : 997;
		char *size = h_strf("%zx\r\n", n);
		conn_send_str(c, size);
		conn_send(c, full_sample + off, n);
		conn_send_str(c, "\r\n");
		free(size);
	}
	conn_send_str(c, "0\r\n\r\n");
	struct http_response *r = resp_new();
	expect_response(c, r, false);
	expect_status(r, 202, false);
	free(r);
	conn_close(c);
	free(head);
	free(tok);
}

/* GET /metrics/fleet: chunked, every chunk read, promtool passes. */
static void fleet_exposition_has_the_agent_and_passes_promtool(void **state)
{
	uint16_t port = port_of(state);
	char *tok = mint(SECRET, "agent-fleet", "org-f", "metrics:write");
	struct http_response *r = post(port, tok, "application/json", full_sample, full_len);
	expect_status(r, 202, false);
	free(r);

	struct conn *c = conn_open(port);
	conn_send_str(c, "GET /metrics/fleet HTTP/1.1\r\nHost: t\r\n\r\n");
	r = resp_new();
	expect_response(c, r, true);
	CHECK(r->status == 200, "status %d", r->status);
	CHECK(resp_header_has_token(r, "Transfer-Encoding", "chunked"), "chunked");
	size_t cap = 32 << 20, len = 0;
	char *body = malloc(cap), err[256];
	for (int i = 0; i < 100000; i++) {
		long n = conn_read_chunk(c, body + len, cap - len, 5000, err, sizeof err);
		CHECK(n >= 0, "chunk: %s", err);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	body[len] = '\0';
	CHECK(strstr(body, "agent_id=\"agent-fleet\"") != NULL, "agent in the exposition");
	CHECK(strstr(body, "organization_id=\"org-f\"") != NULL, "organization label");
	struct run_result *rr = run_new();
	const char *argv[] = {PROMTOOL, "check", "metrics", NULL};
	h_run_prog(argv, body, len, 20000, rr);
	CHECK(rr->exit_code == 0, "promtool: exit %d: %s%s\n%.1500s", rr->exit_code, rr->out,
	      rr->err, body);
	/* The connection serves the next request after the stream. */
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(rr);
	free(body);
	free(r);
	conn_close(c);
	free(tok);
}

/* /metrics said nothing of Ringside's own work. After this group's
 * reports: accepted and refused ones by reason, the fleet store, the
 * validators, connections by listener, the build; promtool-clean. */
static void metrics_count_the_ingest_work(void **state)
{
	uint16_t port = port_of(state);
	struct http_response *r = get(port, "/metrics", NULL);
	expect_status(r, 200, false);
	static const struct {
		const char *series;
		double at_least;
	} want[] = {
		{"ringside_build_info{version=\"0.1.0\"}", 1},
		{"ringside_open_connections{listener=\"main\"}", 1},
		{"ringside_open_connections{listener=\"metrics\"}", 0},
		{"ringside_ingest_reports_accepted_total", 100},
		{"ringside_ingest_reports_refused_total{reason=\"unauthorized\"}", 2},
		{"ringside_ingest_reports_refused_total{reason=\"forbidden\"}", 1},
		{"ringside_ingest_reports_refused_total{reason=\"media_type\"}", 1},
		{"ringside_ingest_reports_refused_total{reason=\"invalid\"}", 1},
		{"ringside_ingest_reports_refused_total{reason=\"no_validator\"}", 0},
		{"ringside_fleet_agents", 60},
		{"ringside_fleet_snapshot_bytes", 1000},
		{"ringside_ingest_validators", 2 * 256},
		{"ringside_ingest_validators_in_use", 0},
		{"ringside_http_uploads_aborted_total", 0},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		double v = -1;
		CHECK(expo_find(r->body, want[i].series, &v) && v >= want[i].at_least,
		      "%s is %g, want at least %g", want[i].series, v, want[i].at_least);
	}
	struct run_result *rr = run_new();
	const char *argv[] = {PROMTOOL, "check", "metrics", NULL};
	h_run_prog(argv, r->body, r->body_len, 20000, rr);
	CHECK(rr->exit_code == 0, "promtool: %s%s", rr->out, rr->err);
	free(rr);
	free(r);
}

/* --ingest-rate-limit 1: a second report at once gets 429 + Retry-After. */
static void reports_past_the_rate_limit_get_429(void **state)
{
	static const char *const args[] = {"--jwt-secret-file", SECRET, "--ingest-rate-limit",
					   "1", NULL};
	struct server s;
	(void)state;
	server_start(&s, args);
	char *tok = mint(SECRET, "agent-fast", "org-a", "metrics:write");
	struct http_response *r = post(s.port, tok, "application/json", minimal_sample, minimal_len);
	expect_status(r, 202, false);
	free(r);
	r = post(s.port, tok, "application/json", minimal_sample, minimal_len);
	expect_error(r, 429, "RATE_LIMITED");
	const char *ra = resp_header(r, "Retry-After");
	CHECK(ra && atoi(ra) == 1, "Retry-After: %s", ra ? ra : "(none)");
	free(r);
	/* Another agent has its own bucket. */
	char *tok2 = mint(SECRET, "agent-slow", "org-a", "metrics:write");
	r = post(s.port, tok2, "application/json", minimal_sample, minimal_len);
	expect_status(r, 202, false);
	free(r);
	free(tok);
	free(tok2);
	CHECK(server_stop(&s) == 0, "clean exit");
}

/* --ingest-limits lowers a capacity: past it, 413 naming the field. */
static void reports_past_an_ingest_limit_get_413(void **state)
{
	static const char *const args[] = {"--jwt-secret-file", SECRET, "--ingest-limits",
					   "containers=2,string=4KiB", NULL};
	struct server s;
	(void)state;
	server_start(&s, args);
	char *tok = mint(SECRET, "agent-big", "org-a", "metrics:write");
	struct http_response *r = post(s.port, tok, "application/json", full_sample, full_len);
	expect_error(r, 413, "VALIDATION_ERROR");
	char field[64];
	CHECK(json_get_string(r->body, "field", field, sizeof field) &&
		      !strncmp(field, "containers", 10),
	      "413 names the array: %s", r->body);
	free(r);
	r = post(s.port, tok, "application/json", minimal_sample, minimal_len);
	expect_status(r, 202, false);
	free(r);
	free(tok);
	CHECK(server_stop(&s) == 0, "clean exit");
}

/* Without a key the agent routes say why, and nothing else breaks. */
static void without_a_key_the_agent_routes_answer_503(void **state)
{
	struct server s;
	(void)state;
	server_start(&s, NULL);
	struct http_response *r = post(s.port, "x.y.z", "application/json", minimal_sample,
				       minimal_len);
	expect_error(r, 503, "SERVICE_UNAVAILABLE");
	free(r);
	CHECK(server_stop(&s) == 0, "clean exit");
}

/* A valid token then garbage was accepted (the first Authorization won):
 * two credentials are one too many, whichever order, and so are two
 * media types. 400, and the report is not stored. */
static void a_second_authorization_or_content_type_is_400(void **state)
{
	uint16_t port = port_of(state);
	char *tok = mint(SECRET, "agent-twice", "org-a", "metrics:write agents:read");
	const char *const pairs[][2] = {
		{"Authorization: Bearer %s\r\nAuthorization: Bearer garbage\r\n"
		 "Content-Type: application/json\r\n", "Authorization"},
		{"Authorization: Bearer garbage\r\nauthorization: Bearer %s\r\n"
		 "Content-Type: application/json\r\n", "Authorization"},
		{"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
		 "Content-Type: text/plain\r\n", "Content-Type"},
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		char *fields = h_strf(pairs[i][0], tok);
		char *head = h_strf("POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n%s"
				    "Content-Length: %zu\r\n\r\n", fields, minimal_len);
		struct conn *c = conn_open(port);
		conn_send_str(c, head);
		conn_send(c, minimal_sample, minimal_len);
		expect_rejected_and_closed(c, 400, "BAD_REQUEST");
		conn_close(c);
		free(head);
		free(fields);
	}
	struct http_response *r = get(port, "/api/metrics/agents/agent-twice/latest", tok);
	expect_error(r, 404, "NOT_FOUND");
	free(r);
	free(tok);
}

/* An id of exactly len bytes made of characters JSON must escape (and
 * some it need not), different for each len and salt. */
static void awkward_id(char *out, size_t len, unsigned salt)
{
	static const char pool[] = "a\"\\\t\x01\x1f/b<\n";
	for (size_t i = 0; i < len; i++)
		out[i] = pool[(i + salt) % (sizeof pool - 1)];
	out[len] = '\0';
}

/* The 202's ids must be exactly the token's, in valid JSON. */
static void expect_accepted_ids(const struct http_response *r, const char *agent,
				const char *org)
{
	char why[128], got[256];
	expect_status(r, 202, false);
	CHECK(json_valid(r->body, r->body_len, why, sizeof why),
	      "202 body is not JSON (%s): %.400s", why, r->body);
	CHECK(json_get_string(r->body, "agentId", got, sizeof got) && !strcmp(got, agent),
	      "agentId of %zu bytes not echoed exactly: %.400s", strlen(agent), r->body);
	CHECK(json_get_string(r->body, "organizationId", got, sizeof got) && !strcmp(got, org),
	      "organizationId of %zu bytes not echoed exactly: %.400s", strlen(org), r->body);
}

/*
 * The 202 printed ids escaped into an unterminated buffer with %s, sending
 * stack bytes after them: ids of other organizations' earlier requests,
 * control bytes, invalid JSON. Every id length from 1 to the cap (63),
 * with characters that need escaping, organizations alternating on one
 * keep-alive connection and each also on a fresh one.
 */
static void ingest_202_carries_exactly_the_tokens_ids_in_valid_json(void **state)
{
	uint16_t port = port_of(state);
	struct conn *shared = conn_open(port);
	struct http_response *r = resp_new();
	for (size_t len = 1; len <= 63; len++) {
		char agent[64], org[64];
		awkward_id(agent, len, (unsigned)len);
		awkward_id(org, 64 - len, (unsigned)len * 7);
		char *tok = mint(SECRET, agent, org, "metrics:write");
		char *a = auth_field(tok);
		char *head = h_strf("POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n%s"
				    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
				    a, minimal_len);
		conn_send_str(shared, head);
		conn_send(shared, minimal_sample, minimal_len);
		expect_response(shared, r, false);
		expect_accepted_ids(r, agent, org);
		free(r);
		r = exchange(port, head, minimal_sample, minimal_len); /* frees head */
		expect_accepted_ids(r, agent, org);
		free(a);
		free(tok);
	}
	free(r);
	conn_close(shared);
}

/* A refusal at the head (401 here) leaves the body to be read and
 * dropped; when that body then breaks its framing (or stalls past the
 * body deadline, or grows past the limit), the server must still answer
 * and close. It crashed instead (the output buffer had been given back
 * once the 401 was sent, and the error was written into none): one
 * unauthenticated client took the whole server down. */
static void a_body_that_breaks_after_a_refusal_does_not_crash_the_server(void **state)
{
	uint16_t port = port_of(state);
	static const char *const tails[] = {
		"zz\r\n",                        /* not a chunk size */
		"5\r\nhelloXX",                  /* no CRLF after the data */
		"FFFFFFFFFFFFFFFFF\r\n",         /* a chunk size past any limit */
	};
	for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
		struct conn *c = conn_open(port);
		conn_send_str(c, "POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n"
				 "Authorization: Bearer not.a.token\r\n"
				 "Content-Type: application/json\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
		struct http_response *r = resp_new();
		expect_response(c, r, false);
		CHECK(r->status == 401, "status %d", r->status);
		h_sleep_ms(100); /* the 401 is sent and its buffer given back */
		conn_send_str(c, tails[i]);
		expect_response(c, r, false);
		CHECK(r->status == 400 || r->status == 413, "status %d after %zu", r->status, i);
		expect_conn_closed(c, 3000);
		conn_close(c);
		free(r);
		expect_health_on_port(port);
	}
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(full_sample_is_accepted_then_served_as_latest),
		BB_TEST(latest_is_only_for_the_agents_organization),
		BB_TEST(every_authentication_failure_is_refused),
		BB_TEST(ingest_202_carries_exactly_the_tokens_ids_in_valid_json),
		BB_TEST(a_second_authorization_or_content_type_is_400),
		BB_TEST(bad_bodies_get_their_status_and_lose_nothing_accepted),
		BB_TEST(chunked_body_in_small_pieces_is_accepted),
		BB_TEST(fleet_exposition_has_the_agent_and_passes_promtool),
		BB_TEST(metrics_count_the_ingest_work),
		BB_TEST(reports_past_the_rate_limit_get_429),
		BB_TEST(reports_past_an_ingest_limit_get_413),
		BB_TEST(without_a_key_the_agent_routes_answer_503),
		BB_TEST(a_body_that_breaks_after_a_refusal_does_not_crash_the_server),
	};
	return H_RUN_GROUP("ingest", tests, setup, teardown);
}
