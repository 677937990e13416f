/*
 * The revocation sync thread (include/ringside/identity_sync.h) against a
 * real PostgreSQL: notifications, the periodic resync, the purge of
 * expired rows, the active-agents gauge, outages and a prompt stop.
 * Needs RINGSIDE_TEST_DATABASE_URL (else exits 77); the outage test also
 * RINGSIDE_TEST_PG_DIR (scripts/with_test_pg.sh sets both).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <libpq-fe.h>

#include "../common/test_db.h"
#include "../common/test_wait.h"
#include "ringside/db.h"
#include "ringside/identity_sync.h"
#include "ringside/jwt.h"
#include "ringside/log.h"
#include "ringside/revocations.h"

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static void sql(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql(const char *url, const char *fmt, ...)
{
	char text[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	PGconn *pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(pg));
	PQsetNoticeProcessor(pg, quiet, NULL);
	PGresult *res = PQexec(pg, text);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", text, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(pg);
}

static long sql_long(const char *url, const char *q)
{
	PGconn *pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(pg));
	PGresult *res = PQexec(pg, q);
	long v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) ? atol(PQgetvalue(res, 0, 0))
									    : -1;
	PQclear(res);
	PQfinish(pg);
	return v;
}

/* A migrated database of the test's own, a table and a running sync. */
struct fixture {
	char *url;
	struct revocations *rev;
	struct identity_sync *sync;
	_Atomic int64_t active;
};

static void setup(struct fixture *f, const char *label)
{
	memset(f, 0, sizeof *f);
	f->url = test_db_create(label);
	assert_non_null(f->url);
	assert_int_equal(db_migrate(f->url), 0);
	assert_int_equal(revocations_init(&f->rev, 1 << 16), 0);
	atomic_store(&f->active, -1);
}

static void start(struct fixture *f, uint32_t resync_ms)
{
	const struct identity_sync_config c = {f->url, resync_ms, f->rev, &f->active};
	assert_int_equal(identity_sync_start(&f->sync, &c), 0);
	assert_true(identity_sync_wait_first(f->sync, 5000));
}

static void teardown(struct fixture *f)
{
	identity_sync_stop(f->sync);
	revocations_fini(f->rev);
	test_db_drop(f->url);
	free(f->url);
}

static struct identity_sync_stats stats(const struct fixture *f)
{
	struct identity_sync_stats st;
	identity_sync_read_stats(f->sync, &st);
	return st;
}

static bool jti_dead(const struct fixture *f, const char *jti)
{
	struct jwt_claims c;
	memset(&c, 0, sizeof c);
	snprintf(c.jti, sizeof c.jti, "%s", jti);
	snprintf(c.sub, sizeof c.sub, "nobody");
	c.iat = now_s() - 1;
	c.exp = now_s() + 600;
	return revocations_token_dead(f->rev, &c, now_s());
}

static bool agent_dead(const struct fixture *f, const char *agent, int64_t iat)
{
	struct jwt_claims c;
	memset(&c, 0, sizeof c);
	snprintf(c.jti, sizeof c.jti, "some-jti");
	snprintf(c.sub, sizeof c.sub, "%s", agent);
	c.iat = iat;
	c.exp = now_s() + 600;
	return revocations_token_dead(f->rev, &c, now_s());
}

/* As the revoke route does it (db_identity.h DB_TOKEN_REVOKE). */
static void revoke_jti(const char *url, const char *jti, int64_t exp, bool notify)
{
	sql(url,
	    "INSERT INTO revoked_tokens (jti, organization_id, expires_at) VALUES ('%s', 'org', "
	    "%lld)",
	    jti, (long long)exp);
	if (notify)
		sql(url, "SELECT pg_notify('ringside_revocations', 'j %lld %s')", (long long)exp, jti);
}

static const char *new_agent(const char *url, const char *email, const char *status,
			     char out[40])
{
	PGconn *pg = PQconnectdb(url);
	char q[512];
	snprintf(q, sizeof q,
		 "INSERT INTO agents (organization_id, email, agent_type, version, capabilities, "
		 "owner, deployment_env, status) VALUES ('org', '%s', 't', '1', '{}', 'o', 'dev', "
		 "'%s') RETURNING agent_id",
		 email, status);
	PGresult *res = PQexec(pg, q);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s", PQresultErrorMessage(res));
	snprintf(out, 40, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(pg);
	return out;
}

static void a_notification_is_applied_within_a_second(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "sync_notify");
	start(&f, 600000); /* no resync during the test: only the NOTIFY can do it */
	assert_false(jti_dead(&f, "jti-notified"));
	/* The revoke route's own statement, NOTIFY at commit. */
	sql(f.url, "WITH ins AS (INSERT INTO revoked_tokens (jti, organization_id, expires_at) "
		   "VALUES ('jti-notified', 'org', %lld) RETURNING jti, expires_at) SELECT "
		   "pg_notify('ringside_revocations', 'j ' || expires_at || ' ' || jti) FROM ins",
	    (long long)now_s() + 600);
	int64_t took = WITHIN(1000, jti_dead(&f, "jti-notified"));
	printf("# NOTIFY applied after %lld ms\n", (long long)took);
	assert_true(took >= 0);
	assert_int_equal(stats(&f).notices, 1);
	/* A payload that is not one is counted nowhere and harms nothing. */
	sql(f.url, "SELECT pg_notify('ringside_revocations', 'nonsense')");
	sql(f.url, "SELECT pg_notify('ringside_revocations', 'c %lld client-n')", (long long)now_s());
	assert_true(WITHIN(1000, revocations_client_dead(f.rev, "client-n", 8, now_s() - 1)) >= 0);
	assert_int_equal(stats(&f).notices, 2);
	teardown(&f);
}

static void what_is_stored_is_held_from_the_first_read(void **state)
{
	(void)state;
	struct fixture f;
	char a1[40], a2[40];
	setup(&f, "sync_start");
	int64_t now = now_s();
	revoke_jti(f.url, "jti-before", now + 600, false);
	new_agent(f.url, "a1@x", "suspended", a1);
	new_agent(f.url, "a2@x", "active", a2);
	sql(f.url, "UPDATE agents SET tokens_valid_after = %lld WHERE agent_id = '%s'",
	    (long long)now, a1);
	sql(f.url, "INSERT INTO agent_credentials (client_id, agent_id, secret_hash, status, "
		   "revoked_at) VALUES ('client-r', '%s', decode(repeat('00', 32), 'hex'), "
		   "'revoked', %lld)",
	    a2, (long long)now);
	start(&f, 600000);
	/* No wait: identity_sync_wait_first returned after the read. */
	assert_true(jti_dead(&f, "jti-before"));
	assert_true(agent_dead(&f, a1, now - 1));
	assert_false(agent_dead(&f, a1, now));
	assert_false(agent_dead(&f, a2, now - 1));
	assert_true(revocations_client_dead(f.rev, "client-r", 8, now - 1));
	assert_int_equal(atomic_load(&f.active), 1);
	assert_true(stats(&f).up);
	teardown(&f);
}

static void rows_without_a_notification_arrive_by_the_resync(void **state)
{
	(void)state;
	struct fixture f;
	char a[40];
	setup(&f, "sync_resync");
	start(&f, 1000);
	int64_t now = now_s();
	new_agent(f.url, "r@x", "active", a);
	revoke_jti(f.url, "jti-silent", now + 600, false);
	sql(f.url, "UPDATE agents SET tokens_valid_after = %lld, status = 'suspended' WHERE "
		   "agent_id = '%s'",
	    (long long)now, a);
	sql(f.url, "INSERT INTO agent_credentials (client_id, agent_id, secret_hash, status, "
		   "revoked_at) VALUES ('client-s', '%s', decode(repeat('00', 32), 'hex'), "
		   "'revoked', %lld)",
	    a, (long long)now);
	int64_t took = WITHIN(2500, jti_dead(&f, "jti-silent") && agent_dead(&f, a, now - 1) &&
					    revocations_client_dead(f.rev, "client-s", 8, now - 1));
	printf("# silent rows applied after %lld ms (resync 1000 ms)\n", (long long)took);
	assert_true(took >= 0);
	assert_int_equal(stats(&f).notices, 0);
	teardown(&f);
}

static void expired_rows_are_deleted_in_batches(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "sync_purge");
	int64_t now = now_s();
	/* 2500 long expired (more than two batches), 1 expired lately (kept:
	 * within the hour's margin), 1 live. */
	sql(f.url, "INSERT INTO revoked_tokens SELECT 'old-' || i, 'org', %lld FROM "
		   "generate_series(1, 2500) i",
	    (long long)(now - 7200));
	revoke_jti(f.url, "lately", now - 1800, false);
	revoke_jti(f.url, "live", now + 600, false);
	start(&f, 600000);
	assert_int_equal(sql_long(f.url, "SELECT count(*) FROM revoked_tokens"), 2);
	assert_int_equal(sql_long(f.url, "SELECT count(*) FROM revoked_tokens WHERE jti IN "
					 "('lately', 'live')"),
			 2);
	assert_int_equal(stats(&f).purged, 2500);
	assert_true(jti_dead(&f, "live"));
	teardown(&f);
}

static void the_active_agents_gauge_follows_the_database(void **state)
{
	(void)state;
	struct fixture f;
	char a[3][40], s[40];
	setup(&f, "sync_gauge");
	new_agent(f.url, "g1@x", "active", a[0]);
	new_agent(f.url, "g2@x", "active", a[1]);
	new_agent(f.url, "g3@x", "active", a[2]);
	new_agent(f.url, "g4@x", "suspended", s);
	start(&f, 600000);
	assert_int_equal(atomic_load(&f.active), 3);
	/* Suspended as the registry does it: NOTIFY 'a', the count soon after. */
	sql(f.url, "UPDATE agents SET status = 'suspended', tokens_valid_after = %lld WHERE "
		   "agent_id = '%s' RETURNING pg_notify('ringside_revocations', 'a ' || "
		   "tokens_valid_after || ' ' || agent_id)",
	    (long long)now_s(), a[0]);
	int64_t took = WITHIN(1000, atomic_load(&f.active) == 2);
	printf("# gauge followed a suspension after %lld ms\n", (long long)took);
	assert_true(took >= 0);
	/* Registered without a notification: counted within a few seconds. */
	char b[40];
	new_agent(f.url, "g5@x", "active", b);
	assert_true(WITHIN(6000, atomic_load(&f.active) == 3) >= 0);
	teardown(&f);
}

static const char backend_sql[] = "SELECT pid FROM pg_stat_activity WHERE datname = "
				  "current_database() AND pid <> pg_backend_pid() AND "
				  "application_name = 'ringside'";

static void a_dropped_connection_comes_back_and_resyncs(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "sync_drop");
	start(&f, 600000);
	assert_int_equal(stats(&f).connects, 1);
	/* Stored while the thread is cut off from it (no notification): only
	 * the resync that follows the reconnect can bring it. */
	revoke_jti(f.url, "while-away", now_s() + 600, false);
	sql(f.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
		   "current_database() AND pid <> pg_backend_pid() AND application_name = "
		   "'ringside'");
	int64_t took = WITHIN(3000, jti_dead(&f, "while-away"));
	printf("# reconnected and resynced after %lld ms\n", (long long)took);
	assert_true(took >= 0);
	assert_int_equal(stats(&f).connects, 2);
	assert_true(WITHIN(1000, stats(&f).up) >= 0);
	/* And it listens again. */
	sql(f.url, "SELECT pg_notify('ringside_revocations', 'j %lld after-drop')",
	    (long long)now_s() + 600);
	assert_true(WITHIN(1000, jti_dead(&f, "after-drop")) >= 0);
	teardown(&f);
}

static void it_survives_the_server_going_down(void **state)
{
	(void)state;
	if (!test_pg_available())
		skip(); /* no cluster of the test run's own to stop */
	struct fixture f;
	setup(&f, "sync_outage");
	start(&f, 1000);
	/* The test cluster commits asynchronously: without a checkpoint an
	 * immediate stop may lose the migrations just made. */
	sql(f.url, "CHECKPOINT");
	assert_int_equal(test_pg("stop --immediate"), 0);
	assert_true(WITHIN(3000, !stats(&f).up) >= 0);
	/* What it held stays held. */
	revocations_add(f.rev, REVOKED_TOKEN, "held", 4, now_s() + 600);
	/* A sync that starts while the server is down, and its stop. */
	struct identity_sync *other;
	struct revocations *r2;
	assert_int_equal(revocations_init(&r2, 1024), 0);
	const struct identity_sync_config c = {f.url, 1000, r2, NULL};
	assert_int_equal(identity_sync_start(&other, &c), 0);
	assert_false(identity_sync_wait_first(other, 500));
	int64_t t0 = mono_ms();
	identity_sync_stop(other);
	printf("# stopped in %lld ms while the server was down\n", (long long)(mono_ms() - t0));
	assert_true(mono_ms() - t0 < 200);
	revocations_fini(r2);
	sleep_ms(1500); /* a few failed attempts (backoff, never a spin) */
	assert_int_equal(test_pg("start"), 0);
	int64_t took = WITHIN(10000, stats(&f).up);
	printf("# up again %lld ms after the server\n", (long long)took);
	assert_true(took >= 0);
	assert_int_equal(stats(&f).connects, 2);
	assert_true(jti_dead(&f, "held"));
	sql(f.url, "SELECT pg_notify('ringside_revocations', 'j %lld after-outage')",
	    (long long)now_s() + 600);
	assert_true(WITHIN(1000, jti_dead(&f, "after-outage")) >= 0);
	revoke_jti(f.url, "silent-after", now_s() + 600, false);
	assert_true(WITHIN(2500, jti_dead(&f, "silent-after")) >= 0);
	teardown(&f);
}

static void stop_is_prompt_whatever_the_database_does(void **state)
{
	(void)state;
	struct revocations *r;
	assert_int_equal(revocations_init(&r, 1024), 0);
	/* Refused at once (nothing listens on port 1), then backing off; and
	 * an address that may never answer (TEST-NET-1), mid-connect. */
	static const char *const urls[] = {
		"postgresql://127.0.0.1:1/x?user=u&password=secret",
		"postgresql://192.0.2.1:5432/x?connect_timeout=30",
	};
	for (size_t i = 0; i < 2; i++) {
		struct identity_sync *s;
		const struct identity_sync_config c = {urls[i], 1000, r, NULL};
		assert_int_equal(identity_sync_start(&s, &c), 0);
		sleep_ms(300);
		struct identity_sync_stats st;
		identity_sync_read_stats(s, &st);
		assert_false(st.up);
		int64_t t0 = mono_ms();
		identity_sync_stop(s);
		printf("# %s: stopped in %lld ms\n", i ? "no answer" : "refused",
		       (long long)(mono_ms() - t0));
		assert_true(mono_ms() - t0 < 200);
	}

	/* A backend that stops answering mid-query (SIGSTOP): the thread is
	 * in a resync's read, and still stops at once. */
	struct fixture f;
	setup(&f, "sync_stall");
	start(&f, 500);
	pid_t pid = (pid_t)sql_long(f.url, backend_sql);
	assert_true(pid > 0);
	if (kill(pid, SIGSTOP)) {
		teardown(&f);
		revocations_fini(r);
		skip(); /* the server is not ours to signal */
	}
	sleep_ms(1200); /* a resync is now waiting on the stopped backend */
	int64_t t0 = mono_ms();
	identity_sync_stop(f.sync);
	f.sync = NULL;
	int64_t took = mono_ms() - t0;
	kill(pid, SIGCONT);
	printf("# stalled backend: stopped in %lld ms\n", (long long)took);
	assert_true(took < 200);
	teardown(&f);
	revocations_fini(r);
}

int main(void)
{
	if (!test_db_available()) {
		printf("RINGSIDE_TEST_DATABASE_URL is not set: no PostgreSQL to test against\n");
		return 77;
	}
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	if (getenv("TEST_DEBUG"))
		log_threshold = LOG_DEBUG;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_notification_is_applied_within_a_second),
		cmocka_unit_test(what_is_stored_is_held_from_the_first_read),
		cmocka_unit_test(rows_without_a_notification_arrive_by_the_resync),
		cmocka_unit_test(expired_rows_are_deleted_in_batches),
		cmocka_unit_test(the_active_agents_gauge_follows_the_database),
		cmocka_unit_test(a_dropped_connection_comes_back_and_resyncs),
		cmocka_unit_test(stop_is_prompt_whatever_the_database_does),
		cmocka_unit_test(it_survives_the_server_going_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
