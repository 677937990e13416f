/*
 * The database thread and the migrations against a real PostgreSQL
 * (include/ringside/db.h). Needs RINGSIDE_TEST_DATABASE_URL, a URL the
 * test may create databases with (each test makes its own and drops it);
 * without it the binary exits 77 (skipped). The outage test also needs
 * RINGSIDE_TEST_PG_DIR and scripts/pg.sh, to stop and start that cluster.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <cmocka.h>

#include "../../src/db/db_int.h"
#include "../common/test_db.h"
#include "db_sink.h"

static const char *admin_url;

/* ---- a database per test ---- */

/* A database of the test's own (tests/common/test_db.h), its name too. */
struct test_db {
	char name[64];
	char *url;
};

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* "does not exist, skipping" */
}

static PGconn *connect_url(const char *url)
{
	PGconn *pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "connect: %s", PQerrorMessage(pg));
		fail();
	}
	PQsetNoticeProcessor(pg, quiet, NULL);
	return pg;
}

static void exec_ok(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(res));
		fail();
	}
	PQclear(res);
}

/* The first value of the first row of sql's answer, as a long; -1 if the
 * statement failed. */
static long query_long(const char *url, const char *sql)
{
	PGconn *pg = connect_url(url);
	PGresult *res = PQexec(pg, sql);
	long v = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) ? atol(PQgetvalue(res, 0, 0))
									    : -1;
	PQclear(res);
	PQfinish(pg);
	return v;
}

static void make_db(struct test_db *t, const char *label)
{
	t->url = test_db_create(label);
	assert_non_null(t->url);
	PGconn *pg = connect_url(t->url);
	snprintf(t->name, sizeof t->name, "%s", PQdb(pg));
	/* The table T_WRITE writes (prepared on every connection). */
	exec_ok(pg, "CREATE TABLE t (v int NOT NULL)");
	PQfinish(pg);
}

static void drop_db(struct test_db *t)
{
	test_db_drop(t->url);
	free(t->url);
	t->url = NULL;
}

/* ---- statements the tests need beside the production ones ---------- */

enum { T_PING, T_INT, T_SLEEP, T_SLEEP_PING, T_REPEAT, T_PID, T_WRITE };
static const struct db_statement_def test_statements[] = {
	[T_PING] = {"t_ping", DB_CLASS_PING, "SELECT 1"},
	[T_INT] = {"t_int", DB_CLASS_READ, "SELECT $1::int"},
	[T_SLEEP] = {"t_sleep", DB_CLASS_READ, "SELECT pg_sleep($1::float8)"},
	[T_SLEEP_PING] = {"t_sleep_ping", DB_CLASS_PING, "SELECT pg_sleep($1::float8)"},
	[T_REPEAT] = {"t_repeat", DB_CLASS_READ, "SELECT repeat('x', $1::int), NULL::text"},
	[T_PID] = {"t_pid", DB_CLASS_READ, "SELECT pg_backend_pid()"},
	[T_WRITE] = {"t_write", DB_CLASS_WRITE, "INSERT INTO t (v) VALUES ($1::int) RETURNING v"},
};
#define TEST_STATEMENTS (sizeof test_statements / sizeof test_statements[0])

static struct db_config config_for(struct sink *s, const char *url, uint32_t workers,
				   uint32_t connections)
{
	return (struct db_config){
		.url = url,
		.connections = connections,
		.workers = workers,
		.queue_depth = 1024,
		.timeout_ms = {1000, 2000, 5000},
		.post = sink_post,
		.post_arg = s,
	};
}

/* Submits one request from worker 0 and kicks. */
static void submit1(struct db *db, uint16_t st, struct db_result *r, char *buf, uint32_t cap,
		    uint32_t i, int nparams, const char *const *params)
{
	struct db_request q;
	make_request(&q, st, r, buf, cap, sink_token(0, i), nparams, params);
	assert_int_equal(db_submit(db, 0, &q), 0);
}

static bool wait_pool(struct db *db, uint32_t total, int timeout_ms)
{
	struct db_pool_stats st;
	int64_t end = mono_ms() + timeout_ms;
	do {
		db_pool_stats(db, &st);
		if (st.total == total)
			return true;
		sleep_ms(5);
	} while (mono_ms() < end);
	return false;
}

/* A ping answers DB_OK again within timeout_ms; false if not. */
static bool pings_again(struct db *db, struct sink *s, uint32_t *next, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	struct db_result r;
	do {
		uint32_t i = (*next)++;
		submit1(db, DB_PING, &r, NULL, 0, i, 0, NULL);
		db_kick(db, 0);
		if (!sink_wait(s, i + 1, 10000))
			return false;
		if (r.status == DB_OK)
			return true;
		sleep_ms(50);
	} while (mono_ms() < end);
	return false;
}

/* ---- the thread ----------------------------------------------------- */

struct producer {
	struct db *db;
	uint32_t worker, n;
	struct db_result *r;
	char (*buf)[16];
	uint32_t eagain;
};

static void *produce_pings(void *arg)
{
	struct producer *p = arg;
	struct db_request q;
	for (uint32_t i = 0; i < p->n; i++) {
		make_request(&q, DB_PING, &p->r[i], p->buf[i], sizeof p->buf[i],
			     sink_token(p->worker, i), 0, NULL);
		while (db_submit(p->db, p->worker, &q) == -EAGAIN) {
			p->eagain++;
			db_kick(p->db, p->worker); /* the worker's pass ends, it comes back */
			sched_yield();
		}
		if (i % 32 == 31) /* a worker kicks once per pass of its loop */
			db_kick(p->db, p->worker);
	}
	db_kick(p->db, p->worker);
	return NULL;
}

/* Two workers, 10 000 pings each, submitted at once after the start:
 * every token comes back once, to its worker, with DB_OK and "1". */
static void pings_from_two_workers_each_come_back_once(void **state)
{
	(void)state;
	enum { WORKERS = 2, N = 10000 };
	struct test_db t;
	struct sink s;
	struct db *db;
	struct producer p[WORKERS];
	pthread_t th[WORKERS];

	make_db(&t, "pings");
	sink_init(&s, WORKERS, N);
	struct db_config c = config_for(&s, t.url, WORKERS, 4);
	assert_int_equal(db_start(&db, &c), 0);
	/* Straight away: requests before the first connects wait for them. */
	int64_t t0 = mono_ms();
	for (uint32_t w = 0; w < WORKERS; w++) {
		p[w] = (struct producer){.db = db, .worker = w, .n = N,
					 .r = calloc(N, sizeof(struct db_result)),
					 .buf = calloc(N, 16)};
		assert_int_equal(pthread_create(&th[w], NULL, produce_pings, &p[w]), 0);
	}
	for (uint32_t w = 0; w < WORKERS; w++)
		pthread_join(th[w], NULL);
	assert_true(sink_wait(&s, WORKERS * N, 60000));
	int64_t took = mono_ms() - t0;
	printf("# %u pings from %u workers over 4 connections in %lld ms: %.0f pings/s "
	       "(connects included; queue full %u + %u times)\n",
	       WORKERS * N, WORKERS, (long long)took, WORKERS * N * 1000.0 / (double)(took ? took : 1),
	       p[0].eagain, p[1].eagain);

	struct db_pool_stats st;
	db_pool_stats(db, &st);
	assert_int_equal(st.total, 4);
	assert_int_equal(st.waiting, 0);
	db_stop(db);
	assert_int_equal(atomic_load(&s.strays), 0);
	for (uint32_t w = 0; w < WORKERS; w++) {
		assert_true(sink_each_once(&s, w, N));
		for (uint32_t i = 0; i < N; i++) {
			uint32_t len;
			assert_int_equal(atomic_load_explicit(&p[w].r[i].done, memory_order_acquire), 1);
			assert_int_equal(p[w].r[i].status, DB_OK);
			const char *v = db_value(&p[w].r[i], 0, 0, &len);
			assert_non_null(v);
			assert_int_equal(len, 1);
			assert_int_equal(v[0], '1');
		}
		free(p[w].r);
		free(p[w].buf);
	}
	sink_fini(&s);
	drop_db(&t);
}

/* The same with the pool connected first: the steady rate. */
static void pings_warm_pool_rate(void **state)
{
	(void)state;
	enum { WORKERS = 2, N = 10000 };
	struct test_db t;
	struct sink s;
	struct db *db;
	struct producer p[WORKERS];
	pthread_t th[WORKERS];

	make_db(&t, "rate");
	sink_init(&s, WORKERS, N);
	struct db_config c = config_for(&s, t.url, WORKERS, 4);
	assert_int_equal(db_start(&db, &c), 0);
	assert_true(wait_pool(db, 4, 5000));
	sleep_ms(100); /* the prepares answered */
	int64_t t0 = mono_ms();
	for (uint32_t w = 0; w < WORKERS; w++) {
		p[w] = (struct producer){.db = db, .worker = w, .n = N,
					 .r = calloc(N, sizeof(struct db_result)),
					 .buf = calloc(N, 16)};
		assert_int_equal(pthread_create(&th[w], NULL, produce_pings, &p[w]), 0);
	}
	for (uint32_t w = 0; w < WORKERS; w++)
		pthread_join(th[w], NULL);
	assert_true(sink_wait(&s, WORKERS * N, 60000));
	int64_t took = mono_ms() - t0;
	printf("# warm pool: %u pings in %lld ms: %.0f pings/s\n", WORKERS * N, (long long)took,
	       WORKERS * N * 1000.0 / (double)(took ? took : 1));
	db_stop(db);
	for (uint32_t w = 0; w < WORKERS; w++) {
		assert_true(sink_each_once(&s, w, N));
		for (uint32_t i = 0; i < N; i++)
			assert_int_equal(p[w].r[i].status, DB_OK);
		free(p[w].r);
		free(p[w].buf);
	}
	sink_fini(&s);
	drop_db(&t);
}

/* PostgreSQL's refusal surfaces as DB_ERROR with its SQLSTATE, and fails
 * that request only: the others of its pipeline group (aborted by it,
 * never run) are sent again and answer. */
static void sql_errors_surface_with_their_sqlstate_and_alone(void **state)
{
	(void)state;
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[6];
	char buf[6][32];
	static const char *const one[] = {"1"}, *const bad[] = {"x"}, *const three[] = {"3"},
				 *const four[] = {"4"};

	make_db(&t, "errors");
	sink_init(&s, 1, 6);
	struct db_config c = config_for(&s, t.url, 1, 1); /* one connection: one group */
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(db, 1, 5000));
	/* One pass: one group on the wire. */
	submit1(db, T_INT, &r[0], buf[0], 32, 0, 1, one);
	submit1(db, T_INT, &r[1], buf[1], 32, 1, 1, bad);
	submit1(db, T_INT, &r[2], buf[2], 32, 2, 1, three);
	submit1(db, T_INT, &r[3], buf[3], 32, 3, 1, four);
	/* A production statement given a parameter it does not take. */
	submit1(db, T_PING, &r[4], buf[4], 32, 4, 1, one);
	submit1(db, T_PING, &r[5], buf[5], 32, 5, 0, NULL);
	db_kick(db, 0);
	assert_true(sink_wait(&s, 6, 10000));
	db_stop(db);
	assert_true(sink_each_once(&s, 0, 6));

	uint32_t len;
	assert_int_equal(r[0].status, DB_OK);
	assert_memory_equal(db_value(&r[0], 0, 0, &len), "1", 1);
	assert_int_equal(r[1].status, DB_ERROR);
	assert_string_equal(r[1].sqlstate, "22P02"); /* invalid_text_representation */
	assert_non_null(strstr(r[1].message, "invalid input syntax"));
	assert_int_equal(r[2].status, DB_OK);
	assert_memory_equal(db_value(&r[2], 0, 0, &len), "3", 1);
	assert_int_equal(r[3].status, DB_OK);
	assert_memory_equal(db_value(&r[3], 0, 0, &len), "4", 1);
	assert_int_equal(r[4].status, DB_ERROR);
	assert_string_equal(r[4].sqlstate, "08P01"); /* bind: wrong parameter count */
	assert_int_equal(r[5].status, DB_OK);
	sink_fini(&s);
	drop_db(&t);
}

/* The production statement list, the same error: what a handler sees. */
static void production_ping_answers_and_refuses(void **state)
{
	(void)state;
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[2];
	static const char *const extra[] = {"1"};

	make_db(&t, "prodping");
	sink_init(&s, 1, 2);
	struct db_config c = config_for(&s, t.url, 1, 2);
	assert_int_equal(db_start(&db, &c), 0);
	submit1(db, DB_PING, &r[0], NULL, 0, 0, 0, NULL);
	submit1(db, DB_PING, &r[1], NULL, 0, 1, 1, extra);
	db_kick(db, 0);
	assert_true(sink_wait(&s, 2, 10000));
	assert_int_equal(r[0].status, DB_OK);
	assert_int_equal(r[0].rows, 1);
	assert_int_equal(r[1].status, DB_ERROR);
	assert_string_equal(r[1].sqlstate, "08P01");
	db_stop(db);
	sink_fini(&s);
	drop_db(&t);
}

/* Each class has its own statement_timeout: a sleep past its class's
 * limit is DB_TIMEOUT (57014); the same sleep under another class's
 * longer limit answers; the connection serves on. */
static void statement_timeouts_follow_the_class(void **state)
{
	(void)state;
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[10];
	static const char *const half[] = {"0.5"}, *const seven[] = {"7"};

	make_db(&t, "timeouts");
	sink_init(&s, 1, 10);
	struct db_config c = config_for(&s, t.url, 1, 1);
	c.timeout_ms[DB_CLASS_PING] = 200;
	c.timeout_ms[DB_CLASS_READ] = 1500;
	c.timeout_ms[DB_CLASS_WRITE] = 1500;
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(db, 1, 5000));
	int64_t t0 = mono_ms();
	submit1(db, T_SLEEP_PING, &r[0], NULL, 0, 0, 1, half); /* 500 ms > 200 */
	submit1(db, T_SLEEP, &r[1], NULL, 0, 1, 1, half);      /* 500 ms < 1500 */
	submit1(db, T_SLEEP_PING, &r[2], NULL, 0, 2, 1, half);
	submit1(db, T_INT, &r[3], NULL, 0, 3, 1, seven);
	db_kick(db, 0);
	assert_true(sink_wait(&s, 4, 10000));
	assert_int_equal(r[0].status, DB_TIMEOUT);
	assert_string_equal(r[0].sqlstate, "57014");
	assert_int_equal(r[1].status, DB_OK);
	assert_int_equal(r[2].status, DB_TIMEOUT);
	assert_int_equal(r[3].status, DB_OK);
	/* 2 x 200 ms timed out, 500 ms slept: well under a second and a half. */
	assert_true(mono_ms() - t0 < 1500);
	submit1(db, T_SLEEP, &r[4], NULL, 0, 4, 1, (const char *const[]){"3"});
	db_kick(db, 0);
	assert_true(sink_wait(&s, 5, 10000));
	assert_int_equal(r[4].status, DB_TIMEOUT);
	/* The limit is each statement's, not its group's: five 600 ms reads
	 * in one group (3 s) under a 1.5 s limit all answer. And 3 s is
	 * longer than the stall guard (1.5 s + 1 s): the server sends each
	 * result as it has it (a Flush after each query), so a long group
	 * is not mistaken for a dead server. */
	for (uint32_t i = 5; i < 10; i++)
		submit1(db, T_SLEEP, &r[i], NULL, 0, i, 1, (const char *const[]){"0.6"});
	db_kick(db, 0);
	assert_true(sink_wait(&s, 10, 10000));
	for (uint32_t i = 5; i < 10; i++)
		assert_int_equal(r[i].status, DB_OK);
	db_stop(db);
	assert_true(sink_each_once(&s, 0, 10));
	sink_fini(&s);
	drop_db(&t);
}

/* Rows that do not fit the caller's buffer are DB_TOO_LARGE; rows that
 * do are packed, NULLs included. */
static void rows_fit_the_buffer_or_say_too_large(void **state)
{
	(void)state;
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[2];
	char small[64], big[256];
	static const char *const hundred[] = {"100"};

	make_db(&t, "large");
	sink_init(&s, 1, 2);
	struct db_config c = config_for(&s, t.url, 1, 2);
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	submit1(db, T_REPEAT, &r[0], small, sizeof small, 0, 1, hundred);
	submit1(db, T_REPEAT, &r[1], big, sizeof big, 1, 1, hundred);
	db_kick(db, 0);
	assert_true(sink_wait(&s, 2, 10000));
	db_stop(db);
	assert_int_equal(r[0].status, DB_TOO_LARGE);
	assert_int_equal(r[1].status, DB_OK);
	assert_int_equal(r[1].rows, 1);
	assert_int_equal(r[1].cols, 2);
	uint32_t len;
	const char *v = db_value(&r[1], 0, 0, &len);
	assert_non_null(v);
	assert_int_equal(len, 100);
	assert_int_equal(v[0], 'x');
	assert_int_equal(v[99], 'x');
	assert_null(db_value(&r[1], 0, 1, &len));
	sink_fini(&s);
	drop_db(&t);
}

/* A write is its own transaction: one that fails leaves no row and takes
 * no other request with it; one that answers DB_OK is in the table. */
static void writes_commit_alone(void **state)
{
	(void)state;
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[5];
	char buf[5][32];
	static const char *const five[] = {"5"}, *const bad[] = {"five"}, *const six[] = {"6"};

	make_db(&t, "writes");
	sink_init(&s, 1, 5);
	struct db_config c = config_for(&s, t.url, 1, 1);
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(db, 1, 5000));
	submit1(db, T_WRITE, &r[0], buf[0], 32, 0, 1, five);
	submit1(db, T_INT, &r[1], buf[1], 32, 1, 1, five);
	submit1(db, T_WRITE, &r[2], buf[2], 32, 2, 1, bad);
	submit1(db, T_WRITE, &r[3], buf[3], 32, 3, 1, six);
	submit1(db, T_INT, &r[4], buf[4], 32, 4, 1, six);
	db_kick(db, 0);
	assert_true(sink_wait(&s, 5, 10000));
	db_stop(db);
	uint32_t len;
	assert_int_equal(r[0].status, DB_OK);
	assert_memory_equal(db_value(&r[0], 0, 0, &len), "5", 1);
	assert_int_equal(r[1].status, DB_OK);
	assert_int_equal(r[2].status, DB_ERROR);
	assert_string_equal(r[2].sqlstate, "22P02");
	assert_int_equal(r[3].status, DB_OK);
	assert_int_equal(r[4].status, DB_OK);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM t"), 2);
	assert_int_equal(query_long(t.url, "SELECT sum(v) FROM t"), 11);
	sink_fini(&s);
	drop_db(&t);
}

/* The pool gauges: every connection up and idle, nothing waiting; a
 * request held in flight makes its connection busy. */
static void pool_stats_count_connections(void **state)
{
	(void)state;
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r;
	struct db_pool_stats st;
	static const char *const half[] = {"0.5"};

	make_db(&t, "stats");
	sink_init(&s, 1, 1);
	struct db_config c = config_for(&s, t.url, 1, 3);
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(db, 3, 5000));
	sleep_ms(100);
	db_pool_stats(db, &st);
	assert_int_equal(st.total, 3);
	assert_int_equal(st.idle, 3);
	assert_int_equal(st.waiting, 0);
	submit1(db, T_SLEEP, &r, NULL, 0, 0, 1, half);
	db_kick(db, 0);
	sleep_ms(200);
	db_pool_stats(db, &st);
	assert_int_equal(st.total, 3);
	assert_int_equal(st.idle, 2);
	assert_true(sink_wait(&s, 1, 5000));
	sleep_ms(50);
	db_pool_stats(db, &st);
	assert_int_equal(st.idle, 3);
	db_stop(db);
	sink_fini(&s);
	drop_db(&t);
}

/* db_stop with requests in flight and queued: each is posted once, those
 * that had not answered as DB_UNAVAILABLE, before db_stop returns. */
static void stop_posts_everything_in_flight(void **state)
{
	(void)state;
	enum { N = 600 };
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result *r = calloc(N, sizeof *r);
	static const char *const long_sleep[] = {"10"};

	make_db(&t, "stop");
	sink_init(&s, 1, N);
	struct db_config c = config_for(&s, t.url, 1, 2);
	c.timeout_ms[DB_CLASS_READ] = 20000;
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(db, 2, 5000));
	for (uint32_t i = 0; i < N; i++) {
		if (i % 3 == 0)
			submit1(db, T_SLEEP, &r[i], NULL, 0, i, 1, long_sleep);
		else
			submit1(db, T_PING, &r[i], NULL, 0, i, 0, NULL);
		if (i == N / 2)
			db_kick(db, 0); /* the first half on the wire, the rest queued */
	}
	sleep_ms(100);
	int64_t t0 = mono_ms();
	db_stop(db);
	assert_true(mono_ms() - t0 < 1000); /* no waiting out the 10 s sleeps */
	assert_int_equal(atomic_load(&s.posted), N);
	assert_true(sink_each_once(&s, 0, N));
	uint32_t unavailable = 0;
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(atomic_load_explicit(&r[i].done, memory_order_acquire), 1);
		assert_true(r[i].status == DB_OK || r[i].status == DB_UNAVAILABLE);
		unavailable += r[i].status == DB_UNAVAILABLE;
		if (i % 3 == 0)
			assert_int_equal(r[i].status, DB_UNAVAILABLE);
	}
	assert_true(unavailable >= N / 3);
	free(r);
	sink_fini(&s);
	drop_db(&t);
}

/* The server drops the connections (pg_terminate_backend, as a restart or
 * an administrator would): what was in flight fails DB_UNAVAILABLE at
 * once, and the pool reconnects by itself. */
static void dropped_connections_fail_fast_and_reconnect(void **state)
{
	(void)state;
	enum { N = 64 };
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[N];
	static const char *const long_sleep[] = {"30"};
	char sql[256];

	make_db(&t, "drop");
	sink_init(&s, 1, 4096);
	struct db_config c = config_for(&s, t.url, 1, 2);
	c.timeout_ms[DB_CLASS_READ] = 60000;
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(db, 2, 5000));
	for (uint32_t i = 0; i < N; i++)
		submit1(db, T_SLEEP, &r[i], NULL, 0, i, 1, long_sleep);
	db_kick(db, 0);
	sleep_ms(300);
	assert_int_equal(atomic_load(&s.posted), 0);
	int64_t t0 = mono_ms();
	PGconn *admin = connect_url(admin_url);
	snprintf(sql, sizeof sql,
		 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		 "WHERE datname = '%s' AND application_name = 'ringside'",
		 t.name);
	exec_ok(admin, sql);
	PQfinish(admin);
	assert_true(sink_wait(&s, N, 3000));
	printf("# %u requests in flight failed %lld ms after the backends were terminated\n", N,
	       (long long)(mono_ms() - t0));
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(r[i].status, DB_UNAVAILABLE);
	uint32_t next = N;
	assert_true(pings_again(db, &s, &next, 10000));
	assert_true(wait_pool(db, 2, 10000));
	db_stop(db);
	assert_true(sink_each_once(&s, 0, next));
	sink_fini(&s);
	drop_db(&t);
}

/* Regression: a connection that broke while the thread was sending a
 * request's statement_timeout change (before the request itself) lost
 * that request: its token never came back. Mixed classes stream in while
 * the backends are terminated again and again; every token comes back
 * once. */
struct stream {
	struct db *db;
	struct db_result *r;
	uint32_t n, sent;
	_Atomic bool stop;
};

static void *stream_requests(void *arg)
{
	struct stream *st = arg;
	static const char *const one[] = {"1"};
	while (st->sent < st->n && !atomic_load(&st->stop)) {
		struct db_request q;
		uint32_t i = st->sent;
		/* PING and READ alternate: a SET before nearly every request. */
		make_request(&q, i % 2 ? T_INT : T_PING, &st->r[i], NULL, 0, sink_token(0, i),
			     i % 2, one);
		if (db_submit(st->db, 0, &q) == 0)
			st->sent++;
		if (i % 16 == 0) {
			db_kick(st->db, 0);
			sleep_ms(1); /* a steady stream for as long as the test runs */
		}
	}
	db_kick(st->db, 0);
	return NULL;
}

static void dropped_while_sending_every_request_comes_back_once(void **state)
{
	(void)state;
	enum { N = 200000 };
	struct test_db t;
	struct sink s;
	struct stream st = {.n = N};
	pthread_t th;
	char sql[256];

	make_db(&t, "dropsend");
	sink_init(&s, 1, N);
	st.r = calloc(N, sizeof *st.r);
	struct db_config c = config_for(&s, t.url, 1, 4);
	assert_int_equal(db_start_with(&st.db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(st.db, 4, 5000));
	assert_int_equal(pthread_create(&th, NULL, stream_requests, &st), 0);
	PGconn *admin = connect_url(admin_url);
	snprintf(sql, sizeof sql,
		 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		 "WHERE datname = '%s' AND application_name = 'ringside'",
		 t.name);
	for (int k = 0; k < 40; k++) {
		exec_ok(admin, sql);
		sleep_ms(25 + k % 7);
	}
	PQfinish(admin);
	atomic_store(&st.stop, true);
	pthread_join(th, NULL);
	db_stop(st.db);
	printf("# %u requests sent through 40 rounds of terminated backends\n", st.sent);
	assert_int_equal(atomic_load(&s.posted), st.sent);
	assert_true(sink_each_once(&s, 0, st.sent));
	free(st.r);
	sink_fini(&s);
	drop_db(&t);
}

/* A server that stops answering without closing anything (SIGSTOP, a
 * network gone quiet): the guard declares the connection lost after the
 * largest statement timeout plus its slack, fails what it held, and a
 * fresh connection serves again. Needs the server on this machine. */
static void a_silent_server_is_declared_lost(void **state)
{
	(void)state;
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[2];
	char buf[32];

	make_db(&t, "stall");
	sink_init(&s, 1, 4096);
	struct db_config c = config_for(&s, t.url, 1, 1);
	c.timeout_ms[DB_CLASS_PING] = 200;
	c.timeout_ms[DB_CLASS_READ] = 300;
	c.timeout_ms[DB_CLASS_WRITE] = 500; /* guard: 500 + 1000 ms */
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	submit1(db, T_PID, &r[0], buf, sizeof buf, 0, 0, NULL);
	db_kick(db, 0);
	assert_true(sink_wait(&s, 1, 5000));
	assert_int_equal(r[0].status, DB_OK);
	uint32_t len;
	const char *v = db_value(&r[0], 0, 0, &len);
	char pidtext[16] = "";
	memcpy(pidtext, v, len < 15 ? len : 15);
	pid_t pid = (pid_t)atoi(pidtext);
	if (kill(pid, SIGSTOP)) {
		db_stop(db);
		sink_fini(&s);
		drop_db(&t);
		skip(); /* the server is not ours to signal (another host, another user) */
	}
	int64_t t0 = mono_ms();
	submit1(db, T_PING, &r[1], NULL, 0, 1, 0, NULL);
	db_kick(db, 0);
	bool back = sink_wait(&s, 2, 5000);
	int64_t took = mono_ms() - t0;
	kill(pid, SIGCONT);
	assert_true(back);
	printf("# a stopped backend declared lost after %lld ms (guard 1500 ms)\n", (long long)took);
	assert_int_equal(r[1].status, DB_UNAVAILABLE);
	assert_true(took >= 1400 && took < 3000);
	uint32_t next = 2;
	assert_true(pings_again(db, &s, &next, 10000));
	db_stop(db);
	assert_true(sink_each_once(&s, 0, next));
	sink_fini(&s);
	drop_db(&t);
}

static void a_killed_server_fails_fast_then_comes_back(void **state)
{
	(void)state;
	enum { N = 32 };
	struct test_db t;
	struct sink s;
	struct db *db;
	struct db_result r[N];
	static const char *const long_sleep[] = {"30"};

	if (!test_pg_available())
		skip(); /* no cluster of the test run's own to stop */
	make_db(&t, "outage");
	sink_init(&s, 1, 200000);
	struct db_config c = config_for(&s, t.url, 1, 4);
	c.timeout_ms[DB_CLASS_READ] = 60000;
	assert_int_equal(db_start_with(&db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(db, 4, 5000));
	for (uint32_t i = 0; i < N; i++)
		submit1(db, T_SLEEP, &r[i], NULL, 0, i, 1, long_sleep);
	db_kick(db, 0);
	sleep_ms(300);
	int64_t t0 = mono_ms();
	assert_int_equal(test_pg("stop --immediate"), 0);
	assert_true(sink_wait(&s, N, 3000));
	printf("# in flight failed %lld ms after the stop began\n", (long long)(mono_ms() - t0));
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(r[i].status, DB_UNAVAILABLE);
	/* While it is down, a request fails at once. */
	uint32_t next = N;
	struct db_result down;
	int64_t t1 = mono_ms();
	submit1(db, T_PING, &down, NULL, 0, next++, 0, NULL);
	db_kick(db, 0);
	assert_true(sink_wait(&s, next, 1000));
	assert_int_equal(down.status, DB_UNAVAILABLE);
	assert_true(mono_ms() - t1 < 200);
	assert_int_equal(test_pg("start"), 0);
	assert_true(pings_again(db, &s, &next, 15000));
	db_stop(db);
	assert_true(sink_each_once(&s, 0, next));
	sink_fini(&s);

	/* Regression: requests streaming (classes alternating) while the
	 * server dies and comes back each come back once. A request sent
	 * again on a connection that had just died was lost. */
	struct stream st = {.n = 150000};
	sink_init(&s, 1, st.n);
	st.r = calloc(st.n, sizeof *st.r);
	c.timeout_ms[DB_CLASS_READ] = 2000;
	assert_int_equal(db_start_with(&st.db, &c, test_statements, TEST_STATEMENTS), 0);
	assert_true(wait_pool(st.db, 4, 5000));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, stream_requests, &st), 0);
	for (int k = 0; k < 3; k++) {
		sleep_ms(300);
		assert_int_equal(test_pg("stop --immediate"), 0);
		sleep_ms(100);
		assert_int_equal(test_pg("start"), 0);
	}
	sleep_ms(300);
	atomic_store(&st.stop, true);
	pthread_join(th, NULL);
	db_stop(st.db);
	printf("# %u requests streamed through 3 kills of the server\n", st.sent);
	assert_int_equal(atomic_load(&s.posted), st.sent);
	assert_true(sink_each_once(&s, 0, st.sent));
	free(st.r);
	sink_fini(&s);
	drop_db(&t);
}

/* ---- migrations ------------------------------------------------------ */

static void migrations_apply_once_on_an_empty_database(void **state)
{
	(void)state;
	struct test_db t;
	make_db(&t, "migrate");
	assert_int_equal(db_migrate(t.url), 0);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM schema_migrations"),
			 (long)db_migrations_count);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM ringside_meta"), 1);
	static const char applied_at[] = "SELECT (extract(epoch FROM applied_at) * 1000000)::bigint "
					 "FROM schema_migrations WHERE name = '001_init.sql'";
	long at = query_long(t.url, applied_at);
	assert_true(at > 0);
	/* Twice: nothing changes. */
	assert_int_equal(db_migrate(t.url), 0);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM schema_migrations"),
			 (long)db_migrations_count);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM ringside_meta"), 1);
	assert_int_equal(query_long(t.url, applied_at), at);
	drop_db(&t);
}

static void *migrate_thread(void *arg)
{
	return (void *)(intptr_t)db_migrate(arg);
}

/* Instances starting together on one empty database: all succeed, each
 * migration applied once (the advisory lock). */
static void concurrent_migrations_apply_once(void **state)
{
	(void)state;
	enum { THREADS = 3 };
	struct test_db t;
	pthread_t th[THREADS];
	make_db(&t, "together");
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, t.url), 0);
	for (int i = 0; i < THREADS; i++) {
		void *rc;
		pthread_join(th[i], &rc);
		assert_int_equal((intptr_t)rc, 0);
	}
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM schema_migrations"),
			 (long)db_migrations_count);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM ringside_meta"), 1);
	drop_db(&t);
}

/* A failing migration is rolled back, unrecorded, stops the run, and the
 * log names its file and PostgreSQL's message; the ones before it stay.
 * Given out of order, they apply in name order (002 needs 001's table). */
static void a_broken_migration_fails_naming_its_file(void **state)
{
	(void)state;
	struct test_db t;
	struct capture cap;
	static const struct db_migration list[] = {
		{"003_c.sql", "CREATE TABLE c (x int);"},
		{"002_b.sql", "CREATE TABLE b (x int);\nINSERT INTO a (x) VALUES (1);\n"
			      "SELECT no_such_column FROM a;\n"},
		{"001_a.sql", "CREATE TABLE a (x int);"},
	};
	make_db(&t, "broken");
	capture_begin(&cap);
	int rc = db_migrate_list(t.url, list, 3);
	char *log = capture_end(&cap);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(log, "file=002_b.sql"));
	assert_non_null(strstr(log, "no_such_column"));
	free(log);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM schema_migrations"), 1);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM schema_migrations WHERE name = '001_a.sql'"), 1);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM a"), 0); /* 002's insert rolled back */
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM b"), -1); /* no table b */
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM c"), -1); /* 003 never ran */

	/* Fixed, the run goes on from where it stopped. */
	static const struct db_migration fixed[] = {
		{"001_a.sql", "CREATE TABLE a (x int);"},
		{"002_b.sql", "CREATE TABLE b (x int);"},
		{"003_c.sql", "CREATE TABLE c (x int);"},
	};
	assert_int_equal(db_migrate_list(t.url, fixed, 3), 0);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM schema_migrations"), 3);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM c"), 0);
	drop_db(&t);
}

/* A COMMIT inside a file would make half of it permanent: refused. */
static void a_migration_may_not_end_its_transaction(void **state)
{
	(void)state;
	struct test_db t;
	struct capture cap;
	static const struct db_migration list[] = {
		{"001_commit.sql", "CREATE TABLE a (x int); COMMIT; CREATE TABLE b (x int);"},
	};
	make_db(&t, "commit");
	capture_begin(&cap);
	int rc = db_migrate_list(t.url, list, 1);
	char *log = capture_end(&cap);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(log, "file=001_commit.sql"));
	free(log);
	assert_int_equal(query_long(t.url, "SELECT count(*) FROM schema_migrations"), 0);
	drop_db(&t);
}

int main(void)
{
	admin_url = getenv("RINGSIDE_TEST_DATABASE_URL");
	if (!admin_url || !admin_url[0]) {
		printf("RINGSIDE_TEST_DATABASE_URL is not set: no PostgreSQL to test against\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pings_from_two_workers_each_come_back_once),
		cmocka_unit_test(pings_warm_pool_rate),
		cmocka_unit_test(sql_errors_surface_with_their_sqlstate_and_alone),
		cmocka_unit_test(production_ping_answers_and_refuses),
		cmocka_unit_test(statement_timeouts_follow_the_class),
		cmocka_unit_test(rows_fit_the_buffer_or_say_too_large),
		cmocka_unit_test(writes_commit_alone),
		cmocka_unit_test(pool_stats_count_connections),
		cmocka_unit_test(stop_posts_everything_in_flight),
		cmocka_unit_test(dropped_connections_fail_fast_and_reconnect),
		cmocka_unit_test(dropped_while_sending_every_request_comes_back_once),
		cmocka_unit_test(a_silent_server_is_declared_lost),
		cmocka_unit_test(a_killed_server_fails_fast_then_comes_back),
		cmocka_unit_test(migrations_apply_once_on_an_empty_database),
		cmocka_unit_test(concurrent_migrations_apply_once),
		cmocka_unit_test(a_broken_migration_fails_naming_its_file),
		cmocka_unit_test(a_migration_may_not_end_its_transaction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
