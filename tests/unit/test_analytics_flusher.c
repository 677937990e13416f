/*
 * The analytics flusher (include/ringside/analytics_flusher.h) against a
 * real PostgreSQL and real journals (analytics_journal.h): exact rollups,
 * exactly once across a lost connection, a server outage and a restart,
 * a journal of another database refused, segments pruned, a prompt stop,
 * and the rate of a 1 000 000-event backlog.
 * Needs RINGSIDE_TEST_DATABASE_URL (else exits 77); the outage test also
 * RINGSIDE_TEST_PG_DIR (scripts/with_test_pg.sh sets both).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <unistd.h>

#include "../common/test_db.h"
#include "../common/test_wait.h"
#include "ringside/analytics_flusher.h"
#include "ringside/analytics_journal.h"
#include "ringside/db.h"
#include "ringside/log.h"

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Runs q; its result (the caller PQclears it). */
static PGresult *query(const char *url, const char *q)
{
	PGconn *pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(pg));
	PQsetNoticeProcessor(pg, quiet, NULL);
	PGresult *res = PQexec(pg, q);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQresultErrorMessage(res));
	PQfinish(pg);
	return res;
}

static void sql(const char *url, const char *q)
{
	PQclear(query(url, q));
}

static long long sql_ll(const char *url, const char *q)
{
	PGresult *res = query(url, q);
	long long v = PQntuples(res) && !PQgetisnull(res, 0, 0) ? atoll(PQgetvalue(res, 0, 0)) : -1;
	PQclear(res);
	return v;
}

/* ---- The events: a deterministic stream and what it must sum to ---- */

#define NORG 3
#define NAGENT 5
#define NHOUR 4
/* Two hours before this UTC month began: hours 0 and 1 in the last
 * month, 2 and 3 in this one (the monthly rollup's UTC boundary). Recent,
 * so that retention (run at every start) keeps them. Set by main. */
static long long BASE_S;
static char month_before[16], month_now[16];

static void set_base(void)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	long long first = (long long)timegm(&tm);
	strftime(month_now, sizeof month_now, "%Y-%m-%d", &tm);
	BASE_S = first - 2 * 3600;
	time_t before = (time_t)BASE_S;
	gmtime_r(&before, &tm);
	tm.tm_mday = 1;
	strftime(month_before, sizeof month_before, "%Y-%m-%d", &tm);
}

struct expect {
	long long tokens[NORG][NHOUR][NAGENT], calls[NORG][NHOUR][NAGENT];
	long long last_ms[NORG][NHOUR][NAGENT];
};

struct event {
	uint32_t worker;
	int org, agent, hour;
	enum journal_kind kind;
	int64_t ms;
};

static struct event gen(uint64_t i)
{
	struct event e;
	e.worker = (uint32_t)(i % 2);
	e.org = (int)(i % NORG);
	e.agent = (int)((i / 3) % NAGENT);
	e.hour = (int)((i / 7) % NHOUR);
	e.kind = i % 3 == 1 ? JOURNAL_TOKEN_ISSUED : JOURNAL_API_CALL;
	e.ms = (BASE_S + e.hour * 3600LL) * 1000 + (int64_t)((i * 7919) % 3600000);
	return e;
}

/* Appends events [from, to) through two writers (workers 0 and 1),
 * flushing every 500, and adds them to x. */
static void write_events(const char *dir, uint64_t from, uint64_t to, uint64_t segment_bytes,
			 struct expect *x)
{
	struct journal_writer *w[2];
	for (uint32_t k = 0; k < 2; k++) {
		const struct journal_writer_config c = {dir, k, segment_bytes, false};
		assert_int_equal(journal_writer_open(&w[k], &c), 0);
	}
	for (uint64_t i = from; i < to; i++) {
		struct event e = gen(i);
		char org[16], agent[16];
		int ol = snprintf(org, sizeof org, "org-%d", e.org);
		int al = snprintf(agent, sizeof agent, "agent-%d", e.agent);
		assert_int_equal(journal_append(w[e.worker], e.kind, org, (size_t)ol, agent, (size_t)al,
						e.ms),
				 0);
		if (x) {
			if (e.kind == JOURNAL_TOKEN_ISSUED)
				x->tokens[e.org][e.hour][e.agent]++;
			else
				x->calls[e.org][e.hour][e.agent]++;
			if (e.ms > x->last_ms[e.org][e.hour][e.agent])
				x->last_ms[e.org][e.hour][e.agent] = e.ms;
		}
		if (i % 500 == 499)
			for (uint32_t k = 0; k < 2; k++)
				assert_int_equal(journal_flush(w[k]), 0);
	}
	for (uint32_t k = 0; k < 2; k++) {
		assert_int_equal(journal_flush(w[k]), 0);
		journal_writer_close(w[k]);
	}
}

/* The three rollups hold exactly x: every row, no other. */
static void check_rollups(const char *url, const struct expect *x)
{
	int rows = 0;
	PGresult *res = query(url, "SELECT organization_id, extract(epoch FROM hour)::bigint, "
				   "agent_id, tokens_issued, api_calls, "
				   "(extract(epoch FROM last_active_at) * 1000)::bigint "
				   "FROM analytics_agent_hourly");
	for (int o = 0; o < NORG; o++)
		for (int h = 0; h < NHOUR; h++)
			for (int a = 0; a < NAGENT; a++)
				rows += x->tokens[o][h][a] + x->calls[o][h][a] > 0;
	assert_int_equal(PQntuples(res), rows);
	for (int i = 0; i < PQntuples(res); i++) {
		int o, a;
		assert_int_equal(sscanf(PQgetvalue(res, i, 0), "org-%d", &o), 1);
		assert_int_equal(sscanf(PQgetvalue(res, i, 2), "agent-%d", &a), 1);
		long long hs = atoll(PQgetvalue(res, i, 1)) - BASE_S;
		assert_true(hs >= 0 && hs % 3600 == 0 && hs / 3600 < NHOUR);
		int h = (int)(hs / 3600);
		assert_int_equal(atoll(PQgetvalue(res, i, 3)), x->tokens[o][h][a]);
		assert_int_equal(atoll(PQgetvalue(res, i, 4)), x->calls[o][h][a]);
		assert_int_equal(atoll(PQgetvalue(res, i, 5)), x->last_ms[o][h][a]);
	}
	PQclear(res);

	res = query(url, "SELECT organization_id, extract(epoch FROM hour)::bigint, tokens_issued, "
			 "api_calls FROM analytics_org_hourly");
	assert_int_equal(PQntuples(res), NORG * NHOUR);
	for (int i = 0; i < PQntuples(res); i++) {
		int o;
		assert_int_equal(sscanf(PQgetvalue(res, i, 0), "org-%d", &o), 1);
		int h = (int)((atoll(PQgetvalue(res, i, 1)) - BASE_S) / 3600);
		long long t = 0, c = 0;
		for (int a = 0; a < NAGENT; a++)
			t += x->tokens[o][h][a], c += x->calls[o][h][a];
		assert_int_equal(atoll(PQgetvalue(res, i, 2)), t);
		assert_int_equal(atoll(PQgetvalue(res, i, 3)), c);
	}
	PQclear(res);

	res = query(url, "SELECT organization_id, month::text, agent_id, tokens_issued, api_calls, "
			 "(extract(epoch FROM last_active_at) * 1000)::bigint "
			 "FROM analytics_agent_monthly");
	assert_int_equal(PQntuples(res), NORG * NAGENT * 2);
	for (int i = 0; i < PQntuples(res); i++) {
		int o, a;
		assert_int_equal(sscanf(PQgetvalue(res, i, 0), "org-%d", &o), 1);
		assert_int_equal(sscanf(PQgetvalue(res, i, 2), "agent-%d", &a), 1);
		const char *m = PQgetvalue(res, i, 1);
		int h0 = 0;
		if (!strcmp(m, month_before))
			h0 = 0; /* 22:00 and 23:00 on its last day */
		else if (!strcmp(m, month_now))
			h0 = 2;
		else
			fail_msg("month %s", m);
		long long t = 0, c = 0, last = 0;
		for (int h = h0; h < h0 + 2; h++) {
			t += x->tokens[o][h][a], c += x->calls[o][h][a];
			if (x->last_ms[o][h][a] > last)
				last = x->last_ms[o][h][a];
		}
		assert_int_equal(atoll(PQgetvalue(res, i, 3)), t);
		assert_int_equal(atoll(PQgetvalue(res, i, 4)), c);
		assert_int_equal(atoll(PQgetvalue(res, i, 5)), last);
	}
	PQclear(res);
}

/* ---- The fixture ---- */

struct fixture {
	char *url;
	char dir[256];
	struct analytics_flusher *fl;
	struct expect x;
};

static void setup(struct fixture *f, const char *label)
{
	memset(f, 0, sizeof *f);
	f->url = test_db_create(label);
	assert_non_null(f->url);
	assert_int_equal(db_migrate(f->url), 0);
	/* The test cluster commits asynchronously: an immediate stop could
	 * then lose a batch the flusher saw committed (and pruned behind).
	 * A real server commits synchronously, as this database now does. */
	sql(f->url, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', "
		    "current_database()); END $$");
	sql(f->url, "CHECKPOINT");
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof f->dir, "%s/flusher.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
}

static void start(struct fixture *f, uint32_t interval_ms, uint32_t batch)
{
	const struct analytics_flusher_config c = {f->url, f->dir, interval_ms, batch, 90};
	assert_int_equal(analytics_flusher_start(&f->fl, &c), 0);
}

static void stop(struct fixture *f, uint32_t timeout_ms)
{
	analytics_flusher_stop(f->fl, timeout_ms);
	f->fl = NULL;
}

static void teardown(struct fixture *f)
{
	if (f->fl)
		stop(f, 0);
	DIR *d = opendir(f->dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.' || strlen(e->d_name) > 2)
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	rmdir(f->dir);
	test_db_drop(f->url);
	free(f->url);
}

static struct analytics_flusher_stats stats(const struct fixture *f)
{
	struct analytics_flusher_stats st;
	analytics_flusher_read_stats(f->fl, &st);
	return st;
}

static int segments(const char *dir, uint32_t worker)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	char prefix[16];
	int n = 0, pl = snprintf(prefix, sizeof prefix, "w%u-", worker);
	struct dirent *e;
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, prefix, (size_t)pl) && strstr(e->d_name, ".journal");
	closedir(d);
	return n;
}

static long long total_events(const char *url, const char *table)
{
	char q[160];
	snprintf(q, sizeof q, "SELECT coalesce(sum(tokens_issued + api_calls), 0) FROM %s", table);
	return sql_ll(url, q);
}

/* ---- The tests ---- */

static void events_land_in_the_rollups_with_exact_sums(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_exact");
	write_events(f.dir, 0, 10000, 1 << 20, &f.x);
	start(&f, 20, 1000); /* ten batches at least */
	assert_true(analytics_flusher_drain(f.fl, 20000));
	check_rollups(f.url, &f.x);
	struct analytics_flusher_stats st = stats(&f);
	assert_true(st.up);
	assert_int_equal(st.events_applied, 10000);
	assert_true(st.batches >= 10);
	assert_int_equal(st.backlog_bytes, 0);
	/* The directory is bound to this database, its positions kept. */
	char path[300], id[64] = "";
	snprintf(path, sizeof path, "%s/database-id", f.dir);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(id, sizeof id, fp));
	fclose(fp);
	id[strcspn(id, "\n")] = '\0';
	PGresult *res = query(f.url, "SELECT database_id::text FROM ringside_meta");
	assert_string_equal(id, PQgetvalue(res, 0, 0));
	PQclear(res);
	assert_int_equal(sql_ll(f.url, "SELECT count(*) FROM analytics_journal_applied"), 2);

	/* More events later: added to what is there. */
	write_events(f.dir, 10000, 13000, 1 << 20, &f.x);
	assert_true(analytics_flusher_drain(f.fl, 20000));
	check_rollups(f.url, &f.x);
	assert_int_equal(stats(&f).events_applied, 13000);
	teardown(&f);
}

static void exactly_once_across_lost_connections(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_terminate");
	write_events(f.dir, 0, 40000, 64 << 10, &f.x);
	start(&f, 10, 500);
	/* Its backend is ended again and again, between and during batches,
	 * while more events arrive. */
	long long ended = 0;
	for (int round = 0; round < 12; round++) {
		assert_true(WITHIN(10000, stats(&f).up) >= 0);
		sleep_ms(round % 2 ? 15 : 40);
		ended += sql_ll(f.url, "SELECT count(pg_terminate_backend(pid)) FROM "
				       "pg_stat_activity WHERE datname = current_database() AND "
				       "pid <> pg_backend_pid() AND application_name = 'ringside'");
		if (round == 6)
			write_events(f.dir, 40000, 60000, 64 << 10, &f.x);
	}
	printf("# backend ended %lld times\n", ended);
	assert_true(ended >= 6);
	assert_true(analytics_flusher_drain(f.fl, 60000));
	check_rollups(f.url, &f.x);
	assert_int_equal(total_events(f.url, "analytics_agent_hourly"), 60000);
	teardown(&f);
}

static void exactly_once_across_a_restart(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_restart");
	write_events(f.dir, 0, 60000, 64 << 10, &f.x);
	start(&f, 10, 500);
	assert_true(WITHIN(20000, stats(&f).batches >= 5) >= 0);
	stop(&f, 0); /* mid-stream, no drain: a commit may be in flight */
	/* A batch sent just before the stop ends (committed or not) with
	 * its backend: count only once that is gone. */
	assert_true(WITHIN(10000, sql_ll(f.url, "SELECT count(*) FROM pg_stat_activity WHERE "
					    "datname = current_database() AND "
					    "application_name = 'ringside'") == 0) >= 0);
	long long part = total_events(f.url, "analytics_agent_hourly");
	printf("# stopped with %lld of 60000 applied\n", part);
	assert_true(part > 0);
	write_events(f.dir, 60000, 70000, 64 << 10, &f.x);
	start(&f, 10, 5000);
	assert_true(analytics_flusher_drain(f.fl, 30000));
	check_rollups(f.url, &f.x);
	/* This run applied exactly what the last one had not. */
	assert_int_equal(stats(&f).events_applied, 70000 - part);
	teardown(&f);
}

static void exactly_once_across_a_server_outage(void **state)
{
	(void)state;
	if (!test_pg_available())
		skip(); /* no cluster of the test run's own to stop */
	struct fixture f;
	setup(&f, "fl_outage");
	write_events(f.dir, 0, 30000, 64 << 10, &f.x);
	start(&f, 10, 500);
	assert_true(WITHIN(20000, stats(&f).batches >= 3) >= 0);
	assert_int_equal(test_pg("stop --immediate"), 0);
	assert_true(WITHIN(3000, !stats(&f).up) >= 0);
	/* The journal grows meanwhile. */
	write_events(f.dir, 30000, 40000, 64 << 10, &f.x);
	/* A stop while the server is down is prompt: its drain gives up. */
	int64_t t0 = mono_ms();
	stop(&f, 10000);
	int64_t took = mono_ms() - t0;
	printf("# stopped in %lld ms while the server was down\n", (long long)took);
	assert_true(took < 1500);
	/* Started while it is down, it waits; up when the server is back. */
	start(&f, 10, 500);
	sleep_ms(500);
	assert_false(stats(&f).up);
	assert_true(stats(&f).backlog_bytes > 0); /* what waits, seen while down */
	assert_int_equal(test_pg("start"), 0);
	assert_true(analytics_flusher_drain(f.fl, 60000));
	check_rollups(f.url, &f.x);
	teardown(&f);
}

static void a_journal_of_another_database_is_refused(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_refused");
	char path[300];
	snprintf(path, sizeof path, "%s/database-id", f.dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("00000000-0000-4000-8000-000000000001\n", fp);
	fclose(fp);
	write_events(f.dir, 0, 1000, 1 << 20, &f.x);
	start(&f, 10, 500);
	assert_false(analytics_flusher_drain(f.fl, 1000));
	struct analytics_flusher_stats st = stats(&f);
	assert_false(st.up);
	assert_int_equal(st.events_applied, 0);
	assert_int_equal(total_events(f.url, "analytics_agent_hourly"), 0);
	assert_int_equal(sql_ll(f.url, "SELECT count(*) FROM analytics_journal_applied"), 0);
	/* Nothing was pruned either: the events wait for their database. */
	assert_int_equal(segments(f.dir, 0), 1);
	int64_t t0 = mono_ms();
	stop(&f, 5000);
	assert_true(mono_ms() - t0 < 1000);
	teardown(&f);
}

static void segments_applied_are_pruned(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_prune");
	write_events(f.dir, 0, 20000, 4096, &f.x);
	int before = segments(f.dir, 0);
	printf("# %d segments of worker 0 before\n", before);
	assert_true(before > 20);
	start(&f, 10, 2000);
	assert_true(analytics_flusher_drain(f.fl, 20000));
	check_rollups(f.url, &f.x);
	/* The segment holding the committed position stays (and a new empty
	 * one, if the writer rotated at its last flush). */
	assert_true(segments(f.dir, 0) <= 2);
	assert_true(segments(f.dir, 1) <= 2);
	teardown(&f);
}

static void a_million_events_drain_at_a_rate(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_rate");
	enum { N = 1000000, ORGS = 20, AGENTS = 100, HOURS = 3 };
	struct journal_writer *w[2];
	for (uint32_t k = 0; k < 2; k++) {
		const struct journal_writer_config c = {f.dir, k, 16 << 20, false};
		assert_int_equal(journal_writer_open(&w[k], &c), 0);
	}
	int64_t t0 = mono_ms();
	int64_t base_ms = (int64_t)time(NULL) / 3600 * 3600000 - 2 * 3600000;
	for (uint64_t i = 0; i < N; i++) {
		char org[16], agent[24];
		int ol = snprintf(org, sizeof org, "org-%u", (unsigned)(i % ORGS));
		int al = snprintf(agent, sizeof agent, "agent-%u-%u", (unsigned)(i % ORGS),
				  (unsigned)((i / ORGS) % AGENTS));
		int64_t ms = base_ms + (int64_t)((i * 7919) % (HOURS * 3600000ULL));
		assert_int_equal(journal_append(w[i % 2], i % 4 ? JOURNAL_API_CALL : JOURNAL_TOKEN_ISSUED,
						org, (size_t)ol, agent, (size_t)al, ms),
				 0);
		if (i % 1000 == 999)
			assert_int_equal(journal_flush(w[i % 2]), 0);
	}
	for (uint32_t k = 0; k < 2; k++) {
		assert_int_equal(journal_flush(w[k]), 0);
		journal_writer_close(w[k]);
	}
	int64_t t1 = mono_ms();
	start(&f, 100, 50000);
	assert_true(analytics_flusher_drain(f.fl, 120000));
	int64_t t2 = mono_ms();
	double rate = N * 1000.0 / (double)(t2 - t1 ? t2 - t1 : 1);
	printf("# wrote 1000000 events in %lld ms; applied them in %lld ms: %.0f events/s, "
	       "%llu batches\n",
	       (long long)(t1 - t0), (long long)(t2 - t1), rate,
	       (unsigned long long)stats(&f).batches);
	assert_int_equal(stats(&f).events_applied, N);
	assert_int_equal(total_events(f.url, "analytics_agent_hourly"), N);
	assert_int_equal(total_events(f.url, "analytics_org_hourly"), N);
	assert_int_equal(total_events(f.url, "analytics_agent_monthly"), N);
	assert_int_equal(sql_ll(f.url, "SELECT sum(tokens_issued) FROM analytics_org_hourly"), N / 4);
	/* A floor only: the machine may be busy; the rate is printed. */
	assert_true(rate >= 20000);
	teardown(&f);
}

static void events_postgresql_cannot_hold_are_skipped(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_skip");
	struct journal_writer *w;
	const struct journal_writer_config c = {f.dir, 0, 1 << 20, false};
	assert_int_equal(journal_writer_open(&w, &c), 0);
	int64_t now_ms = (int64_t)time(NULL) * 1000;
	/* Each would fail the batch's statement, and so every batch after. */
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "o\xff", 2, "a", 1, now_ms), 0);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "o", 1, "a\xc0\x80", 3, now_ms), 0);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "o", 1, "a", 1, INT64_MAX), 0);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "o", 1, "a", 1, -1), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(journal_append(w, JOURNAL_TOKEN_ISSUED, "o\"{,}\\", 6,
						"\xc3\xa9", 2, now_ms), 0);
	journal_writer_close(w);
	start(&f, 10, 100);
	assert_true(analytics_flusher_drain(f.fl, 20000));
	assert_int_equal(stats(&f).events_applied, 10);
	/* Quotes, braces, commas and backslashes survive the array literal. */
	assert_int_equal(sql_ll(f.url, "SELECT tokens_issued FROM analytics_agent_hourly WHERE "
				       "organization_id = 'o\"{,}\\' AND agent_id = U&'\\00e9'"), 10);
	assert_int_equal(total_events(f.url, "analytics_agent_hourly"), 10);
	teardown(&f);
}

static void rows_past_retention_are_deleted_at_start(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_retention");
	/* Hourly rows: kept for 90 days and a day's margin. Monthly rows:
	 * kept 13 months back from this month. */
	sql(f.url, "INSERT INTO analytics_agent_hourly (organization_id, hour, agent_id, "
		   "tokens_issued) SELECT 'o', date_trunc('hour', now()) - d * interval '1 day', "
		   "'a' || g, 1 FROM unnest(ARRAY[100, 92, 90, 1]) AS d, generate_series(1, 6000) AS g");
	sql(f.url, "INSERT INTO analytics_org_hourly (organization_id, hour, tokens_issued) "
		   "SELECT 'o' || g, date_trunc('hour', now()) - d * interval '1 day', 1 "
		   "FROM unnest(ARRAY[100, 92, 90, 1]) AS d, generate_series(1, 10) AS g");
	sql(f.url, "INSERT INTO analytics_agent_monthly (organization_id, month, agent_id, "
		   "tokens_issued) SELECT 'o', (date_trunc('month', now() AT TIME ZONE 'UTC') - "
		   "m * interval '1 month')::date, 'a', 1 FROM unnest(ARRAY[15, 14, 13, 12, 0]) AS m");
	start(&f, 10, 1000);
	assert_true(analytics_flusher_drain(f.fl, 20000)); /* after the start's retention */
	/* 100 and 92 days gone (12 000 rows: several bounded batches). */
	assert_int_equal(sql_ll(f.url, "SELECT count(*) FROM analytics_agent_hourly"), 12000);
	assert_int_equal(sql_ll(f.url, "SELECT count(*) FROM analytics_agent_hourly WHERE hour < "
				       "now() - interval '91 days'"), 0);
	assert_int_equal(sql_ll(f.url, "SELECT count(*) FROM analytics_org_hourly"), 20);
	assert_int_equal(sql_ll(f.url, "SELECT count(*) FROM analytics_agent_monthly"), 3);
	teardown(&f);
}

static void stop_is_prompt_while_the_database_is_down(void **state)
{
	(void)state;
	char dir[256];
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/flusher.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	assert_non_null(mkdtemp(dir));
	/* Refused at once (nothing listens on port 1), then backing off; and
	 * an address that may never answer (TEST-NET-1), mid-connect. */
	static const char *const urls[] = {
		"postgresql://127.0.0.1:1/x?user=u&password=secret",
		"postgresql://192.0.2.1:5432/x?connect_timeout=30",
	};
	for (size_t i = 0; i < 2; i++) {
		struct analytics_flusher *fl;
		const struct analytics_flusher_config c = {urls[i], dir, 100, 1000, 90};
		assert_int_equal(analytics_flusher_start(&fl, &c), 0);
		sleep_ms(300);
		struct analytics_flusher_stats st;
		analytics_flusher_read_stats(fl, &st);
		assert_false(st.up);
		int64_t t0 = mono_ms();
		analytics_flusher_stop(fl, 10000);
		printf("# %s: stopped in %lld ms\n", i ? "no answer" : "refused",
		       (long long)(mono_ms() - t0));
		assert_true(mono_ms() - t0 < 1000);
	}
	char path[300];
	snprintf(path, sizeof path, "%s/instance-id", dir);
	unlink(path);
	rmdir(dir);
}

static void the_instance_id_is_made_once(void **state)
{
	(void)state;
	struct fixture f;
	setup(&f, "fl_instance");
	char path[300], a[64] = "", b[64] = "";
	snprintf(path, sizeof path, "%s/instance-id", f.dir);
	start(&f, 100, 100);
	stop(&f, 0);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(a, sizeof a, fp));
	fclose(fp);
	start(&f, 100, 100);
	stop(&f, 0);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(b, sizeof b, fp));
	fclose(fp);
	assert_int_equal(strlen(a), 37);
	assert_string_equal(a, b);
	teardown(&f);
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
	set_base();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(events_land_in_the_rollups_with_exact_sums),
		cmocka_unit_test(the_instance_id_is_made_once),
		cmocka_unit_test(a_journal_of_another_database_is_refused),
		cmocka_unit_test(segments_applied_are_pruned),
		cmocka_unit_test(exactly_once_across_lost_connections),
		cmocka_unit_test(exactly_once_across_a_restart),
		cmocka_unit_test(rows_past_retention_are_deleted_at_start),
		cmocka_unit_test(events_postgresql_cannot_hold_are_skipped),
		cmocka_unit_test(stop_is_prompt_while_the_database_is_down),
		cmocka_unit_test(a_million_events_drain_at_a_rate),
		cmocka_unit_test(exactly_once_across_a_server_outage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
