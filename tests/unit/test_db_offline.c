/*
 * The db module with no server (include/ringside/db.h): parameters and
 * rows packed, the queues and their wake-ups, and what workers get when
 * no database answers. tests/unit/test_db.c runs against a real one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "../../src/db/db_int.h"
#include "db_sink.h"

/* A socket directory that does not exist: every connect fails at once. */
#define NOWHERE "host=/nonexistent-ringside-test port=5432 dbname=none user=none"

static void params_pack_as_c_strings(void **state)
{
	(void)state;
	struct db_request q;
	memset(&q, 0, sizeof q);
	assert_true(db_request_param(&q, "abc", 3));
	assert_true(db_request_param(&q, NULL, 0));
	assert_true(db_request_param(&q, "", 0));
	assert_true(db_request_param(&q, "xy", 1)); /* the first byte only */
	assert_int_equal(q.nparams, 4);
	assert_int_equal(q.param_len[0], 3);
	assert_int_equal(q.param_len[1], DB_NULL_PARAM);
	assert_int_equal(q.param_len[2], 0);
	assert_int_equal(q.param_len[3], 1);
	assert_memory_equal(q.params, "abc\0\0x\0", 7);

	/* A NUL inside would cut the value short where libpq reads it. */
	assert_false(db_request_param(&q, "a\0b", 3));
	assert_int_equal(q.nparams, 4);

	/* Full: by bytes (each value takes its NUL too), then by count. */
	char big[DB_PARAM_BYTES];
	memset(big, 'z', sizeof big);
	memset(&q, 0, sizeof q);
	assert_false(db_request_param(&q, big, DB_PARAM_BYTES));
	assert_true(db_request_param(&q, big, DB_PARAM_BYTES - 1));
	assert_false(db_request_param(&q, "", 0));
	assert_true(db_request_param(&q, NULL, 0)); /* NULL takes no bytes */
	memset(&q, 0, sizeof q);
	for (unsigned i = 0; i < DB_PARAMS_MAX; i++)
		assert_true(db_request_param(&q, "1", 1));
	assert_false(db_request_param(&q, "1", 1));
}

/* A result as libpq would hand it: rows x cols text values, NULL where
 * values[] has NULL. */
static PGresult *make_rows(int rows, int cols, const char *const *values)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc attrs[8];
	memset(attrs, 0, sizeof attrs);
	for (int j = 0; j < cols; j++)
		attrs[j].name = (char *)"v";
	assert_true(PQsetResultAttrs(res, cols, attrs));
	for (int i = 0; i < rows; i++)
		for (int j = 0; j < cols; j++) {
			const char *v = values[i * cols + j];
			assert_true(PQsetvalue(res, i, j, (char *)v, v ? (int)strlen(v) : -1));
		}
	return res;
}

static void rows_pack_into_the_callers_buffer(void **state)
{
	(void)state;
	static const char *const values[] = {"1", NULL, "", "hello", "42", "x"};
	PGresult *res = make_rows(3, 2, values);
	char buf[64];
	struct db_result r = {.buf = buf, .cap = sizeof buf};
	uint32_t len;

	assert_int_equal(db_result_fill(&r, res), DB_OK);
	assert_int_equal(r.status, DB_OK);
	assert_int_equal(r.rows, 3);
	assert_int_equal(r.cols, 2);
	/* 6 lengths, then 1 + 0 + 0 + 5 + 2 + 1 bytes (and 3 row offsets
	 * at the buffer's end). */
	assert_int_equal(r.len, 6 * 4 + 9);
	assert_string_equal(r.sqlstate, "");
	assert_string_equal(r.message, "");
	for (int i = 0; i < 6; i++) {
		const char *v = db_value(&r, (uint32_t)i / 2, (uint32_t)i % 2, &len);
		if (!values[i]) {
			assert_null(v);
			assert_int_equal(len, 0);
		} else {
			assert_non_null(v);
			assert_int_equal(len, strlen(values[i]));
			assert_memory_equal(v, values[i], len);
		}
	}
	assert_null(db_value(&r, 3, 0, &len));
	assert_null(db_value(&r, 0, 2, &len));
	/* The typed readers: exact text, and a plain non-negative integer. */
	assert_true(db_value_is(&r, 1, 1, "hello"));
	assert_false(db_value_is(&r, 1, 1, "hell"));
	assert_false(db_value_is(&r, 0, 1, "")); /* NULL is not "" */
	assert_true(db_value_is(&r, 1, 0, ""));
	int64_t n = -1;
	assert_true(db_value_i64(&r, 2, 0, &n));
	assert_int_equal(n, 42);
	assert_false(db_value_i64(&r, 2, 1, &n)); /* "x" */
	assert_false(db_value_i64(&r, 1, 0, &n)); /* "" */
	assert_false(db_value_i64(&r, 0, 1, &n)); /* NULL */

	/* One byte short: DB_TOO_LARGE, the shape kept, no value readable. */
	r = (struct db_result){.buf = buf, .cap = 6 * 4 + 9 + 3 * 4 - 1};
	assert_int_equal(db_result_fill(&r, res), DB_TOO_LARGE);
	assert_int_equal(r.rows, 3);
	assert_int_equal(r.cols, 2);
	assert_non_null(strstr(r.message, "45 bytes"));
	assert_null(db_value(&r, 0, 0, &len));

	/* Exactly the size: every value still readable. */
	r = (struct db_result){.buf = buf, .cap = 6 * 4 + 9 + 3 * 4};
	assert_int_equal(db_result_fill(&r, res), DB_OK);
	assert_true(db_value_is(&r, 1, 1, "hello"));
	assert_true(db_value_is(&r, 2, 1, "x"));

	/* No buffer: the status and shape only (a ping). */
	r = (struct db_result){0};
	assert_int_equal(db_result_fill(&r, res), DB_OK);
	assert_int_equal(r.rows, 3);
	assert_null(db_value(&r, 0, 0, &len));
	PQclear(res);

	res = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
	r = (struct db_result){.buf = buf, .cap = sizeof buf};
	assert_int_equal(db_result_fill(&r, res), DB_OK);
	assert_int_equal(r.rows, 0);
	assert_int_equal(r.len, 0);
	PQclear(res);
}

/* A large result (the analytics' every-agent answer): every value of
 * every row is where it should be, NULLs and empty values included, read
 * in any order. */
static void many_rows_each_value_found(void **state)
{
	(void)state;
	enum { ROWS = 1000, COLS = 5 };
	static char text[ROWS * COLS][16];
	static const char *values[ROWS * COLS];
	for (int i = 0; i < ROWS * COLS; i++) {
		snprintf(text[i], sizeof text[i], "r%dc%d", i / COLS, i % COLS);
		values[i] = i % 7 == 3 ? NULL : i % 11 == 5 ? "" : text[i];
	}
	PGresult *res = make_rows(ROWS, COLS, values);
	static char buf[ROWS * COLS * 16];
	struct db_result r = {.buf = buf, .cap = sizeof buf};
	assert_int_equal(db_result_fill(&r, res), DB_OK);
	for (int k = 0; k < ROWS * COLS; k++) {
		int i = (k * 7919) % (ROWS * COLS); /* 7919 is prime: each once */
		uint32_t len;
		const char *v = db_value(&r, (uint32_t)(i / COLS), (uint32_t)(i % COLS), &len);
		if (!values[i]) {
			assert_null(v);
		} else {
			assert_non_null(v);
			assert_int_equal(len, strlen(values[i]));
			assert_memory_equal(v, values[i], len);
		}
	}
	PQclear(res);
}

static void log_text_is_one_quoted_logfmt_value(void **state)
{
	(void)state;
	char out[64];
	db_log_text("FATAL:  database \"x\" does not exist\n\tLINE 1\n", out, sizeof out);
	assert_string_equal(out, "FATAL:  database 'x' does not exist  LINE 1");
	db_log_text(NULL, out, sizeof out);
	assert_string_equal(out, "");
	db_log_text("abcdef", out, 4);
	assert_string_equal(out, "abc");
}

static struct db_config config_for(struct sink *s, uint32_t workers, uint32_t depth)
{
	return (struct db_config){
		.url = NOWHERE,
		.connections = 2,
		.workers = workers,
		.queue_depth = depth,
		.timeout_ms = {1000, 2000, 5000},
		.post = sink_post,
		.post_arg = s,
	};
}

static void bad_configurations_are_refused(void **state)
{
	(void)state;
	struct sink s;
	struct db *db = (struct db *)1;
	struct db_config c;

	sink_init(&s, 1, 1);
	c = config_for(&s, 1, 3);
	assert_int_equal(db_start(&db, &c), -EINVAL); /* not a power of two */
	assert_null(db);
	c = config_for(&s, 1, 1024);
	c.connections = 0;
	assert_int_equal(db_start(&db, &c), -EINVAL);
	c = config_for(&s, 1, 1024);
	c.url = "";
	assert_int_equal(db_start(&db, &c), -EINVAL);
	c = config_for(&s, 1, 1024);
	c.timeout_ms[DB_CLASS_READ] = 0;
	assert_int_equal(db_start(&db, &c), -EINVAL);
	c = config_for(&s, 0, 1024);
	assert_int_equal(db_start(&db, &c), -EINVAL);
	sink_fini(&s);
}

static void requests_libpq_could_not_take_are_refused(void **state)
{
	(void)state;
	struct sink s;
	struct db *db;
	struct db_config c;
	struct db_request q;
	struct db_result r;

	sink_init(&s, 1, 4);
	c = config_for(&s, 1, 4);
	assert_int_equal(db_start(&db, &c), 0);
	make_request(&q, DB_STATEMENT_COUNT, &r, NULL, 0, 0, 0, NULL);
	assert_int_equal(db_submit(db, 0, &q), -EINVAL);
	make_request(&q, DB_PING, &r, NULL, 0, 0, 0, NULL);
	assert_int_equal(db_submit(db, 1, &q), -EINVAL); /* no such worker */
	q.result = NULL;
	assert_int_equal(db_submit(db, 0, &q), -EINVAL);
	make_request(&q, DB_PING, &r, NULL, 0, 0, 0, NULL);
	q.nparams = 1;
	q.param_len[0] = 3;
	memcpy(q.params, "abcd", 4); /* no NUL after its 3 bytes */
	assert_int_equal(db_submit(db, 0, &q), -EINVAL);
	q.param_len[0] = DB_PARAM_BYTES;
	assert_int_equal(db_submit(db, 0, &q), -EINVAL);
	db_stop(db);
	assert_int_equal(atomic_load(&s.posted), 0);
	sink_fini(&s);
}

/* The "queries waiting for a lost connection fail with a clear
 * 503, never hang": with no server, a request fails DB_UNAVAILABLE as
 * soon as the first connects have failed. */
static void with_no_server_requests_fail_at_once(void **state)
{
	(void)state;
	struct sink s;
	struct db *db;
	struct db_config c;
	struct db_request q;
	struct db_result r[3];
	struct db_pool_stats st;

	sink_init(&s, 1, 3);
	c = config_for(&s, 1, 16);
	assert_int_equal(db_start(&db, &c), 0);
	make_request(&q, DB_PING, &r[0], NULL, 0, sink_token(0, 0), 0, NULL);
	assert_int_equal(db_submit(db, 0, &q), 0);
	db_kick(db, 0);
	assert_true(sink_wait(&s, 1, 2000));
	assert_int_equal(atomic_load_explicit(&r[0].done, memory_order_acquire), 1);
	assert_int_equal(r[0].status, DB_UNAVAILABLE);
	assert_string_equal(r[0].message, "no connection to the database");

	/* Later ones do not wait for a reconnect (backoff up to 5 s). */
	for (uint32_t i = 1; i < 3; i++) {
		int64_t t0 = mono_ms();
		make_request(&q, DB_PING, &r[i], NULL, 0, sink_token(0, i), 0, NULL);
		assert_int_equal(db_submit(db, 0, &q), 0);
		db_kick(db, 0);
		assert_true(sink_wait(&s, i + 1, 2000));
		assert_true(mono_ms() - t0 < 200);
		assert_int_equal(r[i].status, DB_UNAVAILABLE);
	}
	db_pool_stats(db, &st);
	assert_int_equal(st.total, 0);
	assert_int_equal(st.idle, 0);
	assert_int_equal(st.waiting, 0);
	db_stop(db);
	assert_true(sink_each_once(&s, 0, 3));
	assert_int_equal(atomic_load(&s.strays), 0);
	sink_fini(&s);
}

/* A full queue says -EAGAIN (the worker answers 503) and loses nothing:
 * the thread is held inside a post, so the queue cannot drain. */
static void a_full_queue_says_eagain(void **state)
{
	(void)state;
	enum { DEPTH = 8 };
	struct sink s;
	struct db *db;
	struct db_config c;
	struct db_request q;
	struct db_result r[DEPTH + 1];
	struct db_pool_stats st;
	uint32_t n = 0;

	sink_init(&s, 1, DEPTH + 1);
	c = config_for(&s, 1, DEPTH);
	assert_int_equal(db_start(&db, &c), 0);
	sink_gate(&s, true);
	make_request(&q, DB_PING, &r[n], NULL, 0, sink_token(0, n), 0, NULL);
	assert_int_equal(db_submit(db, 0, &q), 0);
	n++;
	db_kick(db, 0);
	for (int64_t end = mono_ms() + 2000; !atomic_load(&s.held); sleep_ms(1))
		assert_true(mono_ms() < end);
	/* The held request's slot goes back only when its pass ends. */
	for (;; n++) {
		make_request(&q, DB_PING, &r[n], NULL, 0, sink_token(0, n), 0, NULL);
		int rc = db_submit(db, 0, &q);
		if (rc) {
			assert_int_equal(rc, -EAGAIN);
			break;
		}
	}
	assert_int_equal(n, DEPTH);
	db_pool_stats(db, &st);
	assert_int_equal(st.waiting, DEPTH); /* the held one, still in its slot, too */
	db_kick(db, 0);
	sink_gate(&s, false);
	assert_true(sink_wait(&s, n, 2000));
	db_stop(db);
	assert_true(sink_each_once(&s, 0, n));
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(r[i].status, DB_UNAVAILABLE);
	sink_fini(&s);
}

/* Workers hammering their queues while the thread fails everything: each
 * token comes back once, to its own worker (run under ThreadSanitizer in
 * build/tsan: the queue, the kick and the result's publication). */
struct producer {
	struct db *db;
	uint32_t worker, n;
	struct db_result *r;
	uint32_t eagain;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct db_request q;
	for (uint32_t i = 0; i < p->n; i++) {
		make_request(&q, DB_PING, &p->r[i], NULL, 0, sink_token(p->worker, i), 0, NULL);
		while (db_submit(p->db, p->worker, &q) == -EAGAIN) {
			p->eagain++;
			db_kick(p->db, p->worker); /* a worker's pass ends */
			sched_yield();
		}
		if (i % 16 == 15)
			db_kick(p->db, p->worker);
	}
	db_kick(p->db, p->worker);
	return NULL;
}

static void many_workers_each_token_back_once(void **state)
{
	(void)state;
	enum { WORKERS = 3, N = 20000 };
	struct sink s;
	struct db *db;
	struct db_config c;
	struct producer p[WORKERS];
	pthread_t t[WORKERS];

	sink_init(&s, WORKERS, N);
	c = config_for(&s, WORKERS, 64);
	assert_int_equal(db_start(&db, &c), 0);
	for (uint32_t w = 0; w < WORKERS; w++) {
		p[w] = (struct producer){.db = db, .worker = w, .n = N,
					 .r = calloc(N, sizeof(struct db_result))};
		assert_int_equal(pthread_create(&t[w], NULL, produce, &p[w]), 0);
	}
	for (uint32_t w = 0; w < WORKERS; w++)
		pthread_join(t[w], NULL);
	assert_true(sink_wait(&s, WORKERS * N, 20000));
	db_stop(db);
	assert_int_equal(atomic_load(&s.strays), 0);
	for (uint32_t w = 0; w < WORKERS; w++) {
		assert_true(sink_each_once(&s, w, N));
		for (uint32_t i = 0; i < N; i++) {
			assert_int_equal(atomic_load_explicit(&p[w].r[i].done, memory_order_acquire), 1);
			assert_int_equal(p[w].r[i].status, DB_UNAVAILABLE);
		}
		free(p[w].r);
	}
	sink_fini(&s);
}

static void migrate_without_a_server_fails_and_says_why(void **state)
{
	(void)state;
	struct capture cap;
	capture_begin(&cap);
	int64_t t0 = mono_ms();
	int rc = db_migrate(NOWHERE);
	int64_t took = mono_ms() - t0;
	char *log = capture_end(&cap);
	assert_int_equal(rc, -1);
	assert_true(took < 6000);
	assert_non_null(strstr(log, "cannot connect"));
	assert_non_null(strstr(log, "nonexistent-ringside-test"));
	free(log);
}

static void migrations_are_embedded_in_name_order(void **state)
{
	(void)state;
	assert_true(db_migrations_count >= 1);
	assert_string_equal(db_migrations[0].name, "001_init.sql");
	assert_non_null(strstr(db_migrations[0].sql, "CREATE TABLE ringside_meta"));
	for (size_t i = 1; i < db_migrations_count; i++)
		assert_true(strcmp(db_migrations[i - 1].name, db_migrations[i].name) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(params_pack_as_c_strings),
		cmocka_unit_test(rows_pack_into_the_callers_buffer),
		cmocka_unit_test(many_rows_each_value_found),
		cmocka_unit_test(log_text_is_one_quoted_logfmt_value),
		cmocka_unit_test(bad_configurations_are_refused),
		cmocka_unit_test(requests_libpq_could_not_take_are_refused),
		cmocka_unit_test(with_no_server_requests_fail_at_once),
		cmocka_unit_test(a_full_queue_says_eagain),
		cmocka_unit_test(many_workers_each_token_back_once),
		cmocka_unit_test(migrate_without_a_server_fails_and_says_why),
		cmocka_unit_test(migrations_are_embedded_in_name_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
