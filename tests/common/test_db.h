/*
 * PostgreSQL for tests. `make test` (scripts/with_test_pg.sh) starts one
 * throwaway cluster for the whole run and exports:
 *
 *   RINGSIDE_TEST_DATABASE_URL  its superuser URL (database postgres)
 *   RINGSIDE_TEST_PG_DIR        the cluster, for test_pg()
 *   RINGSIDE_TEST_PG_SH         scripts/pg.sh, absolute
 *
 * Every database test makes its own database with test_db_create, so
 * tests stay independent whatever order they run in; a test that cannot
 * have one (the URL unset: a test binary run by hand) skips.
 *
 * Plain C11 and libpq (link with -lpq); no cmocka, so unit and black-box
 * tests both use it.
 */
#ifndef RINGSIDE_TESTS_TEST_DB_H
#define RINGSIDE_TESTS_TEST_DB_H

#include <stdbool.h>

/* RINGSIDE_TEST_DATABASE_URL is set (and not empty). */
bool test_db_available(void);

/* The admin URL, or NULL. */
const char *test_db_admin_url(void);

/*
 * Creates a fresh, empty database named t_<label>_<pid>_<n> (label
 * reduced to [a-z0-9_] and shortened to fit PostgreSQL's 63 bytes) and
 * returns a libpq URI that connects to it, malloc'd: the admin URL's
 * host, port, user and other settings with that database. NULL when no
 * database is available or the creation fails (the reason is printed on
 * stderr).
 */
char *test_db_create(const char *label);

/*
 * Drops the database a URL of test_db_create names, closing its
 * connections (a server under test may still hold some). NULL is
 * ignored; so is a database not named t_*.
 */
void test_db_drop(const char *url);

/*
 * Runs `scripts/pg.sh ACTION` on the test cluster, e.g. "stop
 * --immediate" for a database outage and "start" to end it (an outage
 * test restarts the cluster before it ends: the tests after it share
 * it). ACTION is split on spaces. Returns pg.sh's exit status (status:
 * 0 running, 3 not), or -1 when there is no test cluster
 * (RINGSIDE_TEST_PG_DIR unset) or it could not be run.
 */
int test_pg(const char *action);

/* RINGSIDE_TEST_PG_DIR is set: test_pg can stop and start the cluster. */
bool test_pg_available(void);

#endif
