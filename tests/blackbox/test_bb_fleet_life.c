/*
 * Black-box: the fleet over time and across Prometheus servers. A scrape
 * may ask for one organization or one shard of the agents, and the parts
 * are disjoint and add up to the whole; agents silent past --fleet-forget
 * are forgotten (their slots reused); a graceful restart with
 * --fleet-state keeps every agent's latest report and its receive time.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET "tests/auth/test-only-hs256.secret"
#define AGENTS 240
#define ORGS 3

static char *sample;
static size_t sample_len;

/* Posts the sample as agent org/sub; returns the status. */
static int try_post(uint16_t port, const char *sub, const char *org)
{
	char *tok = h_mint_token(SECRET, sub, org, "metrics:write agents:read");
	char *head = h_strf("POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n"
			    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
			    "Content-Length: %zu\r\n\r\n",
			    tok, sample_len);
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();
	conn_send_str(c, head);
	conn_send(c, sample, sample_len);
	expect_response(c, r, false);
	int status = r->status;
	free(r);
	conn_close(c);
	free(head);
	free(tok);
	return status;
}

static void post_report(uint16_t port, const char *sub, const char *org)
{
	int status = try_post(port, sub, org);
	CHECK(status == 202, "%s/%s: status %d", org, sub, status);
}

static void fill(uint16_t port, int agents)
{
	for (int i = 0; i < agents; i++) {
		char sub[32], org[32];
		snprintf(sub, sizeof sub, "agent-%d", i);
		snprintf(org, sizeof org, "org-%d", i % ORGS);
		post_report(port, sub, org);
	}
}

/* The whole body of GET path (chunked), malloc'd and NUL-terminated. */
static char *scrape(uint16_t port, const char *path, int *status)
{
	struct conn *c = conn_open(port);
	char *req = h_strf("GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	struct http_response *r = resp_new();
	conn_send_str(c, req);
	expect_response(c, r, true);
	*status = r->status;
	size_t cap = 64u << 20, len = 0;
	char *body = malloc(cap), err[256];
	CHECK(body != NULL, "out of memory");
	if (r->status != 200) {
		/* An error envelope: Content-Length, read by expect_response
		 * only without for_head; read it again the simple way. */
		conn_close(c);
		h_exchange(port, req, false, r);
		snprintf(body, cap, "%s", r->body);
	} else {
		for (int i = 0; i < 100000; i++) {
			long n = conn_read_chunk(c, body + len, cap - len, 5000, err, sizeof err);
			CHECK(n >= 0, "%s: chunk: %s", path, err);
			if (n == 0)
				break;
			len += (size_t)n;
		}
		body[len] = '\0';
		conn_close(c);
	}
	free(r);
	free(req);
	return body;
}

/* How many lines of body are samples of fleet_agent_stale (one per
 * agent), and whether each agent_id in them is in `seen` (marked). */
static int count_agents(const char *body, unsigned char seen[AGENTS], bool *twice)
{
	int n = 0;
	for (const char *l = body; (l = strstr(l, "\nfleet_agent_stale{")); l++) {
		const char *id = strstr(l, "agent_id=\"agent-");
		const char *eol = strchr(l + 1, '\n');
		CHECK(id && (!eol || id < eol), "a stale line without agent_id");
		int i = atoi(id + strlen("agent_id=\"agent-"));
		CHECK(i >= 0 && i < AGENTS, "agent %d", i);
		if (seen[i])
			*twice = true;
		seen[i] = 1;
		n++;
	}
	return n;
}

/* ?shard=I&of=N and ?org=ID: disjoint parts whose union is the fleet. */
static void shards_and_organizations_split_the_fleet_exactly(void **state)
{
	uint16_t port = port_of(state);
	fill(port, AGENTS);
	for (int split = 0; split < 2; split++) {
		unsigned char seen[AGENTS] = {0};
		bool twice = false;
		int parts = split == 0 ? 4 : ORGS, total = 0;
		for (int p = 0; p < parts; p++) {
			char path[96];
			if (split == 0)
				snprintf(path, sizeof path, "/metrics/fleet?shard=%d&of=4", p);
			else
				snprintf(path, sizeof path, "/metrics/fleet?org=org-%d", p);
			int status;
			char *body = scrape(port, path, &status);
			CHECK(status == 200, "%s: %d %s", path, status, body);
			int n = count_agents(body, seen, &twice);
			CHECK(n > 0, "%s: no agent", path);
			if (split == 0)
				CHECK(n < AGENTS / 2, "%s holds %d of %d agents", path, n, AGENTS);
			else
				CHECK(n == AGENTS / ORGS, "%s holds %d agents", path, n);
			total += n;
			free(body);
		}
		CHECK(!twice, "an agent in two parts (split %d)", split);
		CHECK(total == AGENTS, "the parts hold %d agents, the fleet %d", total, AGENTS);
	}
	/* The default body is the host families only; include adds groups. */
	int status;
	char *host = scrape(port, "/metrics/fleet", &status);
	char *all = scrape(port, "/metrics/fleet?include=services,checks,containers,processes",
			   &status);
	CHECK(!strstr(host, "fleet_container_info") && strstr(all, "fleet_container_info") &&
		      strstr(all, "fleet_process_threads") && strstr(host, "fleet_host_cpu_percent"),
	      "groups: the default body has no container or process family, include has");
	free(host);
	free(all);
	/* A bad selection says which parameter is wrong. */
	static const char *const bad[] = {
		"/metrics/fleet?shard=4&of=4", "/metrics/fleet?shard=1", "/metrics/fleet?of=0",
		"/metrics/fleet?include=bogus", "/metrics/fleet?shard=x&of=2",
		"/metrics/fleet?shard=+1&of=2", "/metrics/fleet?shard=%201&of=2",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *body = scrape(port, bad[i], &status);
		CHECK(status == 400 && strstr(body, "\"field\":"), "%s: %d %s", bad[i], status, body);
		free(body);
	}
}

/* Slots were never reclaimed: churn filled --fleet-max-agents for good. */
static void silent_agents_are_forgotten_and_their_slots_reused(void **state)
{
	static const char *const args[] = {"--jwt-secret-file", SECRET, "--fleet-stale", "1s",
					   "--fleet-ttl", "1s", "--fleet-forget", "2s",
					   "--fleet-max-agents", "4", NULL};
	struct server s;
	(void)state;
	server_start(&s, args);
	fill(s.port, 4);
	/* Full: a fifth agent is refused until the others are forgotten. */
	int status = try_post(s.port, "agent-new", "org-0");
	CHECK(status == 503, "a fifth agent in a store of 4: %d", status);
	double forgotten = 0, held = -1;
	struct http_response *r = resp_new();
	for (int t = 0; t < 100 && !(forgotten >= 4 && held == 0); t++) {
		h_sleep_ms(100);
		h_exchange(s.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
		expo_find(r->body, "ringside_fleet_agents_forgotten_total", &forgotten);
		expo_find(r->body, "ringside_fleet_agents", &held);
	}
	CHECK(forgotten >= 4 && held == 0, "after 10 s: %g forgotten, %g held", forgotten, held);
	/* A forgotten slot serves again once every worker has passed a
	 * quiescent state (a loop pass: within a tick, 50 ms). */
	for (int t = 0; t < 40 && (status = try_post(s.port, "agent-new", "org-0")) == 503; t++)
		h_sleep_ms(50);
	CHECK(status == 202, "a new agent in a forgotten slot: %d", status);
	char *reader = h_mint_token(SECRET, "reader", "org-0", "agents:read");
	char *auth = h_strf("GET /api/metrics/agents/agent-0/latest HTTP/1.1\r\nHost: t\r\n"
			    "Authorization: Bearer %s\r\n\r\n",
			    reader);
	h_exchange(s.port, auth, false, r);
	expect_error(r, 404, "NOT_FOUND");
	free(auth);
	free(reader);
	free(r);
	CHECK(server_stop(&s) == 0, "clean exit");
}

/* After SIGTERM and a restart the fleet was empty until every agent
 * posted again. With --fleet-state it is saved and loaded, receive times
 * and all. */
static void a_graceful_restart_keeps_the_fleet(void **state)
{
	char dir[] = "/tmp/ringside-state-XXXXXX";
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	char *path = h_strf("%s/fleet.state", dir);
	const char *const args[] = {"--jwt-secret-file", SECRET, "--fleet-state", path, NULL};
	struct server s;
	(void)state;
	server_start(&s, args);
	fill(s.port, 30);
	char *reader = h_mint_token(SECRET, "reader", "org-1", "agents:read");
	char *req = h_strf("GET /api/metrics/agents/agent-1/latest HTTP/1.1\r\nHost: t\r\n"
			   "Authorization: Bearer %s\r\n\r\n", reader);
	struct http_response *r = resp_new();
	h_exchange(s.port, req, false, r);
	expect_status(r, 200, false);
	char before[64], after[64];
	CHECK(json_get_string(r->body, "receivedAt", before, sizeof before), "%s", r->body);
	char *body_before = h_strf("%s", r->body);
	CHECK(server_stop(&s) == 0, "clean exit");
	CHECK(access(path, R_OK) == 0, "no %s after SIGTERM", path);

	server_start(&s, args);
	h_exchange(s.port, req, false, r);
	expect_status(r, 200, false);
	CHECK(json_get_string(r->body, "receivedAt", after, sizeof after) &&
		      !strcmp(before, after),
	      "receivedAt %s before the restart, %s after", before, after);
	CHECK(!strcmp(body_before, r->body), "the report changed across the restart");
	double held = 0;
	h_exchange(s.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	CHECK(expo_find(r->body, "ringside_fleet_agents", &held) && held == 30, "%g agents", held);
	CHECK(server_stop(&s) == 0, "clean exit");
	unlink(path);
	rmdir(dir);
	free(body_before);
	free(req);
	free(reader);
	free(path);
	free(r);
}

static int setup(void **state)
{
	static const char *const args[] = {"--jwt-secret-file", SECRET, NULL};
	sample = h_read_sample("ingest-full.json", &sample_len);
	return h_group_setup_with(state, args);
}

static int teardown(void **state)
{
	free(sample);
	return h_group_teardown(state);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(shards_and_organizations_split_the_fleet_exactly),
		BB_TEST(silent_agents_are_forgotten_and_their_slots_reused),
		BB_TEST(a_graceful_restart_keeps_the_fleet),
	};
	return H_RUN_GROUP("fleet_life", tests, setup, teardown);
}
