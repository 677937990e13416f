/*
 * Schema migrations (include/ringside/db.h db_migrate): the SQL files of
 * src/db/migrations/, embedded at build time, applied at start-up over one
 * blocking connection.
 *
 * Several instances may start together on one database. All of the work
 * happens under a session advisory lock, so the second instance waits for
 * the first, then finds every migration recorded and applies nothing.
 * CREATE TABLE IF NOT EXISTS alone would not do: two sessions creating the
 * same table at once can both pass the check and one fails on the catalog's
 * unique index.
 */
#include "db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/log.h"

/* The advisory lock's key: "Ringside" in ASCII, a constant no other
 * application is likely to pick. */
#define MIGRATE_LOCK_KEY INT64_C(0x52696e6773696465)

void db_connect_params(const char *url, const char *keys[DB_CONNECT_PARAMS],
		       const char *values[DB_CONNECT_PARAMS])
{
	/* In index order, later wins: ours first, so the URL may override
	 * them. connect_timeout bounds the blocking connect of migrations;
	 * the db thread's non-blocking connect keeps its own deadline. */
	keys[0] = "application_name";
	values[0] = "ringside";
	keys[1] = "connect_timeout";
	values[1] = "5";
	keys[2] = "dbname";
	values[2] = url;
	keys[3] = values[3] = NULL;
}

void db_notice_to_log(void *arg, const char *message)
{
	char text[256];

	(void)arg;
	db_log_text(message, text, sizeof text);
	log_debug("database notice", "notice=\"%s\"", text);
}

/* Runs sql; true if it ended as `want`, else logs the failure (step names
 * what was being done, file the migration, "" if none). */
static bool run(PGconn *pg, const char *sql, ExecStatusType want, const char *step,
		const char *file)
{
	PGresult *res = PQexec(pg, sql);
	bool ok = PQresultStatus(res) == want;

	if (!ok) {
		char text[512];
		db_log_text(res ? PQresultErrorMessage(res) : PQerrorMessage(pg), text, sizeof text);
		if (file[0])
			log_error("database migration failed", "file=%s error=\"%s\"", file, text);
		else
			log_error("database migration failed", "step=\"%s\" error=\"%s\"", step, text);
	}
	PQclear(res);
	return ok;
}

static int by_name(const void *a, const void *b)
{
	const struct db_migration *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* Applies one migration and records it, in one transaction. */
static bool apply_one(PGconn *pg, const struct db_migration *m)
{
	const char *name = m->name;

	if (!run(pg, "BEGIN", PGRES_COMMAND_OK, "begin", name))
		return false;
	PGresult *res = PQexec(pg, m->sql);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
		char text[512];
		db_log_text(res ? PQresultErrorMessage(res) : PQerrorMessage(pg), text, sizeof text);
		log_error("database migration failed", "file=%s error=\"%s\"", name, text);
		PQclear(res);
		PQclear(PQexec(pg, "ROLLBACK"));
		return false;
	}
	PQclear(res);
	/* A COMMIT inside the file would have made its first half
	 * permanent whatever happens to the rest. */
	if (PQtransactionStatus(pg) != PQTRANS_INTRANS) {
		log_error("database migration failed",
			  "file=%s error=\"the file ended the transaction: a migration holds no BEGIN, COMMIT or ROLLBACK\"",
			  name);
		PQclear(PQexec(pg, "ROLLBACK"));
		return false;
	}
	const char *values[1] = {name};
	res = PQexecParams(pg, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, NULL,
			   values, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK) {
		char text[512];
		db_log_text(PQresultErrorMessage(res), text, sizeof text);
		log_error("database migration failed", "file=%s step=record error=\"%s\"", name, text);
		PQclear(res);
		PQclear(PQexec(pg, "ROLLBACK"));
		return false;
	}
	PQclear(res);
	if (!run(pg, "COMMIT", PGRES_COMMAND_OK, "commit", name))
		return false;
	log_info("database migration applied", "file=%s", name);
	return true;
}

int db_migrate_list(const char *url, const struct db_migration *list, size_t n)
{
	const char *keys[DB_CONNECT_PARAMS], *values[DB_CONNECT_PARAMS];
	const struct db_migration **order = NULL;
	PGresult *done = NULL;
	char sql[128], text[512];
	size_t applied = 0;
	int rc = -1;

	db_connect_params(url, keys, values);
	PGconn *pg = PQconnectdbParams(keys, values, 1);
	if (PQstatus(pg) != CONNECTION_OK) {
		/* libpq's message names host and database, never a password. */
		db_log_text(pg ? PQerrorMessage(pg) : "out of memory", text, sizeof text);
		log_error("database migration: cannot connect", "error=\"%s\"", text);
		goto out;
	}
	PQsetNoticeProcessor(pg, db_notice_to_log, NULL);

	order = malloc((n ? n : 1) * sizeof *order);
	if (!order) {
		log_error("database migration: out of memory", "migrations=%zu", n);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = &list[i];
	qsort(order, n, sizeof *order, by_name);
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(order[i - 1]->name, order[i]->name)) {
			log_error("database migration: two migrations share a name", "file=%s",
				  order[i]->name);
			goto out;
		}
	}

	/* Held until the session ends (PQfinish below), whatever happens. */
	snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%" PRId64 ")", MIGRATE_LOCK_KEY);
	if (!run(pg, sql, PGRES_TUPLES_OK, "advisory lock", ""))
		goto out;
	if (!run(pg,
		 "CREATE TABLE IF NOT EXISTS schema_migrations ("
		 "name text PRIMARY KEY, "
		 "applied_at timestamptz NOT NULL DEFAULT now())",
		 PGRES_COMMAND_OK, "create schema_migrations", ""))
		goto out;
	done = PQexec(pg, "SELECT name FROM schema_migrations");
	if (PQresultStatus(done) != PGRES_TUPLES_OK) {
		db_log_text(PQresultErrorMessage(done), text, sizeof text);
		log_error("database migration failed", "step=\"read schema_migrations\" error=\"%s\"",
			  text);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (int r = 0; r < PQntuples(done) && !seen; r++)
			seen = !strcmp(PQgetvalue(done, r, 0), order[i]->name);
		if (seen)
			continue;
		if (!apply_one(pg, order[i]))
			goto out;
		applied++;
	}
	db_log_text(PQdb(pg), text, sizeof text);
	log_info("database migrations up to date", "db=\"%s\" applied=%zu known=%zu", text, applied,
		 n);
	rc = 0;
out:
	PQclear(done);
	free(order);
	PQfinish(pg);
	return rc;
}

int db_migrate(const char *url)
{
	return db_migrate_list(url, db_migrations, db_migrations_count);
}
