/*
 * GET /ready and the database thread against the test run's real
 * PostgreSQL (scripts/with_test_pg.sh; each test on a database of its
 * own): 200 with the database, 503 without one; ten thousand requests
 * parked at once across the workers while the database hangs, then
 * stopped --immediate under them: every one answers 503 within its
 * deadline, the server serves everything else meanwhile, and /ready
 * comes back by itself once the database does; migrations applied twice
 * change nothing; two instances started at once on one empty database
 * both come up; a database that cannot be reached stops the start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "../common/test_db.h"

#define PARKED 10000

static void skip_without_database(void)
{
	if (!test_db_available()) {
		print_message("no test database (RINGSIDE_TEST_DATABASE_URL): skipped\n");
		skip();
	}
}

/* Starts a server on the database at url, with extra flags. */
static void start_on(struct server *s, const char *url, const char *const extra[])
{
	const char *args[24] = {"--database-url", url, "--workers", "2", "--log-level", "warn"};
	size_t n = 6;
	for (size_t i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	server_start(s, args);
}

static void get(uint16_t port, const char *path, struct http_response *r)
{
	char req[256];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	h_exchange(port, req, false, r);
}

/* One SQL value (row 0, col 0) of a query on url, as text. */
static void query_one(const char *url, const char *sql, char *out, size_t cap)
{
	PGconn *pg = PQconnectdb(url);
	CHECK(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
	PGresult *res = PQexec(pg, sql);
	CHECK(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s: %s", sql,
	      PQresultErrorMessage(res));
	snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(pg);
}

static void ready_answers_200_with_the_database(void **state)
{
	(void)state;
	skip_without_database();
	char *url = test_db_create("ready_ok");
	CHECK(url, "no database");
	struct server s;
	start_on(&s, url, NULL);
	struct http_response *r = resp_new();
	for (int i = 0; i < 50; i++) {
		get(s.port, "/ready", r);
		expect_status(r, 200, false);
		CHECK(!strcmp(r->body, "{\"status\":\"ready\",\"database\":\"ok\"}"), "body %s", r->body);
		expect_header(r, "Cache-Control", "no-store", false);
	}
	/* The pool gauges are the thread's: four connections by default. */
	get(s.port, "/metrics", r);
	expect_status(r, 200, false);
	CHECK(strstr(r->body, "\nsentryagent_db_pool_total_connections 4\n"), "%s", r->body);
	free(r);
	CHECK(server_stop(&s) == 0, "exit status");
	test_db_drop(url);
	free(url);
}

static void ready_answers_503_without_a_database(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, NULL);
	struct http_response *r = resp_new();
	get(s.port, "/ready", r);
	expect_error(r, 503, "SERVICE_UNAVAILABLE");
	CHECK(strstr(r->body, "No database is configured."), "%s", r->body);
	get(s.port, "/health", r);
	expect_health_ok(r);
	get(s.port, "/metrics", r);
	CHECK(strstr(r->body, "\nsentryagent_db_pool_total_connections 0\n"), "%s", r->body);
	free(r);
	CHECK(server_stop(&s) == 0, "exit status");
}

/* The backends were stopped (SIGSTOP) and not yet continued: a check
 * that fails meanwhile must not leave the cluster frozen for every later
 * test (continue_backends, this file's teardown). */
static bool backends_stopped;

/* The cluster's server processes: the postmaster (postmaster.pid's first
 * line) and, with children, its backends. */
static void signal_backends(int sig)
{
	char path[512], cmd[600];
	snprintf(path, sizeof path, "%s/postmaster.pid", getenv("RINGSIDE_TEST_PG_DIR"));
	FILE *f = fopen(path, "r");
	CHECK(f, "no %s", path);
	long pid = 0;
	int got = fscanf(f, "%ld", &pid);
	CHECK(got == 1 && pid > 1, "postmaster.pid");
	fclose(f);
	snprintf(cmd, sizeof cmd, "pkill -%s -P %ld", sig == SIGSTOP ? "STOP" : "CONT", pid);
	backends_stopped = sig == SIGSTOP;
	CHECK(system(cmd) == 0, "%s", cmd);
}

/* Each test's teardown: the harness's, after the cluster is running
 * again if a failed check left it stopped. */
static int continue_backends(void **state)
{
	if (backends_stopped)
		signal_backends(SIGCONT);
	return h_test_teardown(state);
}

static double metric(uint16_t port, const char *name)
{
	struct http_response *r = resp_new();
	get(port, "/metrics", r);
	char key[128];
	snprintf(key, sizeof key, "\n%s ", name);
	const char *p = strstr(r->body, key);
	CHECK(p, "no %s", name);
	double v = strtod(p + strlen(key), NULL);
	free(r);
	return v;
}

static void parked_requests_answer_503_when_the_database_stops_under_them(void **state)
{
	(void)state;
	skip_without_database();
	if (!test_pg_available()) {
		print_message("no test cluster to stop (RINGSIDE_TEST_PG_DIR): skipped\n");
		skip();
	}
	h_need_fds(PARKED + 200);
	char *url = test_db_create("ready_outage");
	CHECK(url, "no database");
	struct server s;
	/* A ping may take 10 s (the park 11 s), and the thread declares a
	 * silent connection lost only after 21 s: whatever ends these
	 * requests is the stop, not a timeout. */
	const char *extra[] = {"--db-timeout-ping", "10s", "--db-timeout-write", "20s",
				     "--db-queue-depth", "16384", "--max-connections", "12000",
				     NULL, NULL, NULL};
	/* Over TLS (the harness's TLS mode) the connections are made, their
	 * handshakes and all, before the stop: one thread's 10 000 handshakes
	 * take seconds, and the requests must all be sent well within the
	 * park's 11 s. Idle meanwhile, they must outlive the header timeout. */
	if (h_tls_mode()) {
		extra[8] = "--header-timeout";
		extra[9] = "60s";
	}
	start_on(&s, url, extra);
	struct http_response *r = resp_new();
	get(s.port, "/ready", r);
	expect_status(r, 200, false);

	static int fds[PARKED];
	for (int i = 0; i < PARKED && h_tls_mode(); i++) {
		fds[i] = h_connect(s.port);
		CHECK(h_handshake(fds[i]) == 0, "connection %d: TLS handshake: %s", i,
		      h_tls_why(fds[i]));
	}
	signal_backends(SIGSTOP); /* the database hangs: nothing answers */
	for (int i = 0; i < PARKED; i++) {
		if (!h_tls_mode())
			fds[i] = h_connect(s.port);
		h_send_str(fds[i], "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n");
	}
	/* All parked: queued for the thread or sent to PostgreSQL. */
	int64_t deadline = h_now_ms() + 10000;
	double waiting = 0;
	while ((waiting = metric(s.port, "sentryagent_db_pool_waiting_requests")) <
		       PARKED - 4 * 128 &&
	       h_now_ms() < deadline)
		h_sleep_ms(50);
	print_message("parked: %.0f waiting for the database (and up to 512 sent)\n", waiting);
	CHECK(waiting >= PARKED - 4 * 128, "only %.0f waiting", waiting);
	for (int i = 0; i < PARKED; i += 997) {
		CHECK(h_poll_in(fds[i], 0) == 0, "request %d answered while parked", i);
	}
	/* Everything else is served meanwhile. */
	expect_health_on_port(s.port);

	/* Stopped --immediate under them: pg_ctl's SIGQUIT reaches the
	 * backends once they run again. */
	int64_t t0 = h_now_ms();
	pid_t stopper = fork();
	CHECK(stopper >= 0, "fork");
	if (stopper == 0)
		_exit(test_pg("stop --immediate") == 0 ? 0 : 1);
	h_sleep_ms(200);
	signal_backends(SIGCONT);
	int status = 0;
	CHECK(waitpid(stopper, &status, 0) == stopper && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "pg.sh stop --immediate");

	/* Every parked request answers 503, long before its 11 s deadline. */
	int answered_503 = 0;
	char buf[64];
	for (int i = 0; i < PARKED; i++) {
		CHECK(h_poll_in(fds[i], 5000) == 1, "request %d not answered", i);
		ssize_t n = h_recv(fds[i], buf, 12, MSG_WAITALL);
		CHECK(n == 12, "request %d: %d bytes", i, (int)n);
		answered_503 += !memcmp(buf, "HTTP/1.1 503", 12);
		h_close(fds[i]);
	}
	int64_t took = h_now_ms() - t0;
	print_message("%d of %d answered 503, %lld ms after the stop\n", answered_503, PARKED,
		      (long long)took);
	CHECK(answered_503 == PARKED, "%d of %d answered 503", answered_503, PARKED);
	CHECK(took < 8000, "took %lld ms", (long long)took);

	/* While it is down: /ready says so at once, the rest is served. */
	get(s.port, "/ready", r);
	expect_error(r, 503, "SERVICE_UNAVAILABLE");
	expect_health_on_port(s.port);

	/* Back by itself once the database is. */
	CHECK(test_pg("start") == 0, "pg.sh start");
	deadline = h_now_ms() + 15000;
	do {
		h_sleep_ms(100);
		get(s.port, "/ready", r);
	} while (r->status != 200 && h_now_ms() < deadline);
	expect_status(r, 200, false);
	free(r);
	CHECK(server_stop(&s) == 0, "exit status");
	test_db_drop(url);
	free(url);
}

static void migrations_applied_twice_change_nothing(void **state)
{
	(void)state;
	skip_without_database();
	char *url = test_db_create("migrate_twice");
	CHECK(url, "no database");
	char first_id[64], again_id[64], first_n[16], again_n[16];
	struct server s;
	start_on(&s, url, NULL);
	CHECK(server_stop(&s) == 0, "exit status");
	query_one(url, "SELECT count(*) FROM schema_migrations", first_n, sizeof first_n);
	query_one(url, "SELECT database_id::text FROM ringside_meta", first_id, sizeof first_id);
	start_on(&s, url, NULL);
	CHECK(server_stop(&s) == 0, "exit status");
	query_one(url, "SELECT count(*) FROM schema_migrations", again_n, sizeof again_n);
	query_one(url, "SELECT database_id::text FROM ringside_meta", again_id, sizeof again_id);
	CHECK(atoi(first_n) >= 1 && !strcmp(first_n, again_n), "%s then %s", first_n, again_n);
	CHECK(!strcmp(first_id, again_id), "%s then %s", first_id, again_id);
	test_db_drop(url);
	free(url);
}

static void two_instances_started_at_once_on_one_empty_database_both_come_up(void **state)
{
	(void)state;
	skip_without_database();
	char *url = test_db_create("migrate_race");
	CHECK(url, "no database");
	const char *args[] = {"--database-url", url, "--workers", "1", "--log-level", "warn", NULL};
	struct server a, b;
	const struct server_opts oa = {.args = args, .no_wait = true};
	server_start_opts(&a, &oa);
	server_start_opts(&b, &oa);
	struct http_response *r = resp_new();
	const struct server *both[] = {&a, &b};
	for (int i = 0; i < 2; i++) {
		int64_t deadline = h_now_ms() + 10000;
		int fd;
		while ((fd = h_try_connect(both[i]->port)) < 0 && h_now_ms() < deadline)
			h_sleep_ms(20);
		CHECK(fd >= 0, "instance %d never listened", i);
		close(fd);
		get(both[i]->port, "/ready", r);
		expect_status(r, 200, false);
	}
	free(r);
	CHECK(server_stop(&a) == 0 && server_stop(&b) == 0, "exit status");
	char n[16];
	query_one(url, "SELECT count(*) FROM ringside_meta", n, sizeof n);
	CHECK(!strcmp(n, "1"), "ringside_meta has %s rows", n);
	test_db_drop(url);
	free(url);
}

/* Migrations run at start, so a database that cannot be reached stops
 * the start, saying why (and never echoing the URL, which may hold a
 * password). */
static void the_start_fails_when_the_database_cannot_be_reached(void **state)
{
	(void)state;
	const char *const args[] = {
		"--listen", "127.0.0.1:0", "--database-url",
		"postgresql://ringside:s3cret@/ringside?host=/nonexistent-ringside-socket", NULL};
	struct run_result r;
	h_run(args, NULL, 15000, &r);
	CHECK(r.exit_code == 1, "exit code %d; stderr: %s", r.exit_code, r.err);
	CHECK(strstr(r.err, "migration") || strstr(r.err, "database"), "stderr: %s", r.err);
	CHECK(!strstr(r.err, "s3cret"), "the password was logged: %s", r.err);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(ready_answers_200_with_the_database),
		BB_TEST(ready_answers_503_without_a_database),
		BB_TEST(the_start_fails_when_the_database_cannot_be_reached),
		BB_TEST(migrations_applied_twice_change_nothing),
		BB_TEST(two_instances_started_at_once_on_one_empty_database_both_come_up),
		cmocka_unit_test_teardown(parked_requests_answer_503_when_the_database_stops_under_them,
					  continue_backends),
	};
	return H_RUN_GROUP("ready", tests, NULL, NULL);
}
