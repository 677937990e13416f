/*
 * Private to src/db/: the statement and migration tables, the entry points
 * the tests drive with tables of their own, and the result packing.
 */
#ifndef RINGSIDE_DB_INT_H
#define RINGSIDE_DB_INT_H

#include <libpq-fe.h>

#include "ringside/db.h"

/* One SQL migration: its file name (NNN_name.sql, the key recorded in
 * schema_migrations) and its text. */
struct db_migration {
	const char *name;
	const char *sql;
};

/* src/db/migrations/NNN_name.sql in name order, generated at build time by
 * scripts/embed_sql.sh ($(BUILD)/gen/db_migrations.c). */
extern const struct db_migration db_migrations[];
extern const size_t db_migrations_count;

/* db_migrate over `list` (n entries, applied in name order whatever their
 * order here). Returns 0 or -1 (logged, naming the file that failed). */
int db_migrate_list(const char *url, const struct db_migration *list, size_t n);

/* One prepared statement: the name it is prepared under, its class and
 * its text. */
struct db_statement_def {
	const char *name;
	enum db_class cls;
	const char *sql;
};

/* DB_STATEMENTS as a table, indexed by enum db_statement. */
extern const struct db_statement_def db_statements[DB_STATEMENT_COUNT];

/* db_start over a statement table of the caller's (n entries, at most
 * DB_STATEMENTS_MAX): db_request.statement indexes it. db_start passes
 * db_statements; tests pass statements that sleep or fail. */
#define DB_STATEMENTS_MAX 64u
int db_start_with(struct db **out, const struct db_config *cfg,
		  const struct db_statement_def *stmts, size_t n);

/* Writes res into r (all but `done`): DB_OK with the rows packed into
 * r->buf (per value a 4-byte native-endian length, UINT32_MAX for NULL,
 * then its bytes), DB_TOO_LARGE when they do not fit, DB_TIMEOUT for
 * SQLSTATE 57014, DB_ERROR otherwise. Returns the status. */
enum db_status db_result_fill(struct db_result *r, const PGresult *res);

/* Writes a status and message into r (all but `done`), no rows. */
void db_result_set(struct db_result *r, enum db_status status, const char *sqlstate,
		   const char *message);


#endif
