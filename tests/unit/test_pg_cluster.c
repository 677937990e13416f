/*
 * The test cluster's wiring (scripts/with_test_pg.sh, tests/common/test_db):
 * each test gets a database of its own, usable and independent of the
 * others, and a test can take the cluster down and bring it back.
 * Skipped (exit 77) when no test database is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "../common/test_db.h"

static PGconn *connect_ok(const char *url)
{
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", url, PQerrorMessage(c));
	return c;
}

/* The one value of a one-row query, or fails the test. */
static char *value(PGconn *c, const char *sql, char *out, size_t cap)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

static void command(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

/* dbname of a URL test_db_create returned. */
static void dbname_of(const char *url, char *out, size_t cap)
{
	PQconninfoOption *o = PQconninfoParse(url, NULL);
	assert_non_null(o);
	out[0] = '\0';
	for (PQconninfoOption *p = o; p->keyword; p++)
		if (!strcmp(p->keyword, "dbname") && p->val)
			snprintf(out, cap, "%s", p->val);
	PQconninfoFree(o);
}

static void two_databases_distinct_usable_and_dropped(void **state)
{
	(void)state;
	char *a = test_db_create("pg cluster/A");
	char *b = test_db_create("pg cluster/A");
	assert_non_null(a);
	assert_non_null(b);
	assert_string_not_equal(a, b);

	char name_a[64], name_b[64], v[128];
	dbname_of(a, name_a, sizeof name_a);
	dbname_of(b, name_b, sizeof name_b);
	assert_true(!strncmp(name_a, "t_pg_cluster_a_", 15));
	assert_string_not_equal(name_a, name_b);

	PGconn *ca = connect_ok(a), *cb = connect_ok(b);
	assert_string_equal(value(ca, "SELECT 1", v, sizeof v), "1");
	assert_string_equal(value(cb, "SELECT 1", v, sizeof v), "1");
	assert_string_equal(value(ca, "SELECT current_database()", v, sizeof v), name_a);
	assert_string_equal(value(cb, "SELECT current_database()", v, sizeof v), name_b);

	/* What one test writes, the other does not see. */
	command(ca, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
	assert_string_equal(value(ca, "SELECT x FROM t", v, sizeof v), "7");
	assert_string_equal(value(cb, "SELECT to_regclass('t') IS NULL", v, sizeof v), "t");

	/* Dropped even with connections open (a server under test may hold
	 * some): they are closed, and the database is gone. */
	test_db_drop(a);
	test_db_drop(b);
	PQfinish(ca);
	PQfinish(cb);
	PGconn *gone = PQconnectdb(a);
	assert_int_not_equal(PQstatus(gone), CONNECTION_OK);
	assert_non_null(strstr(PQerrorMessage(gone), "does not exist"));
	PQfinish(gone);
	free(a);
	free(b);
}

static void a_long_label_still_makes_a_valid_name(void **state)
{
	(void)state;
	char *u = test_db_create("a label far longer than any PostgreSQL name may be, "
				 "so it is cut to fit in sixty-three bytes");
	assert_non_null(u);
	char name[128], v[128];
	dbname_of(u, name, sizeof name);
	assert_true(strlen(name) <= 63);
	PGconn *c = connect_ok(u);
	assert_string_equal(value(c, "SELECT current_database()", v, sizeof v), name);
	PQfinish(c);
	test_db_drop(u);
	free(u);
}

/* An outage, as a test of the database thread will make one: the
 * cluster stops at once, connections fail, and it comes back. */
static void the_cluster_stops_and_starts_again(void **state)
{
	(void)state;
	if (!test_pg_available())
		skip();
	char *u = test_db_create("outage");
	assert_non_null(u);
	assert_int_equal(test_pg("status"), 0);
	assert_int_equal(test_pg("stop --immediate"), 0);
	assert_int_equal(test_pg("status"), 3);
	PGconn *c = PQconnectdb(u);
	assert_int_not_equal(PQstatus(c), CONNECTION_OK);
	PQfinish(c);
	assert_int_equal(test_pg("start"), 0);
	char v[16];
	c = connect_ok(u);
	assert_string_equal(value(c, "SELECT 1", v, sizeof v), "1");
	PQfinish(c);
	test_db_drop(u);
	free(u);
}

/* A failed outage test must not leave the others without a cluster. */
static int cluster_up(void **state)
{
	(void)state;
	return test_pg_available() && test_pg("start") != 0 ? -1 : 0;
}

int main(void)
{
	if (!test_db_available()) {
		printf("RINGSIDE_TEST_DATABASE_URL is not set (make test sets it)\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_databases_distinct_usable_and_dropped),
		cmocka_unit_test(a_long_label_still_makes_a_valid_name),
		cmocka_unit_test_teardown(the_cluster_stops_and_starts_again, cluster_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
