/*
 * The database thread (DESIGN.md "Threads"): one thread runs libpq in
 * non-blocking pipeline mode over --db-connections connections; all SQL
 * runs there and workers never block. A worker hands it a request through
 * its own bounded single-producer queue (db_submit, then db_kick once per
 * loop pass); the thread writes the result into memory the request names
 * and posts the request's token back to that worker (db_post_fn: the ring
 * turns it into a completion in the worker's own io_uring).
 */
#ifndef RINGSIDE_DB_H
#define RINGSIDE_DB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringside/db_analytics.h"
#include "ringside/db_identity.h"

/* Query classes: each has its own statement timeout (--db-timeout-*). */
enum db_class {
	DB_CLASS_PING,  /* round trips that prove the database answers (/ready) */
	DB_CLASS_READ,  /* a few rows by key */
	DB_CLASS_WRITE, /* a few rows written */
	DB_CLASS_COUNT
};

/* The prepared statements, X(name, class, sql): prepared on every
 * connection when it connects; later issues add theirs here.
 * PING and READ statements must have no side effects: the thread sends
 * several under one Sync (one implicit transaction), and sends one again
 * when another statement of its group failed before it ran. A WRITE runs
 * alone in its transaction and is answered once its commit is confirmed.
 * Requests carry no order between them, even from one worker. */
#define DB_STATEMENTS(X)                                                                       \
	X(DB_PING, DB_CLASS_PING, "SELECT 1")                                                  \
	DB_REGISTRY_STATEMENTS(X)                                                              \
	DB_TOKEN_STATEMENTS(X)                                                                 \
	DB_ANALYTICS_STATEMENTS(X)

enum db_statement {
#define DB_STATEMENT_ENUM(name, cls, sql) name,
	DB_STATEMENTS(DB_STATEMENT_ENUM)
#undef DB_STATEMENT_ENUM
	DB_STATEMENT_COUNT
};

enum db_status {
	DB_OK = 0,
	DB_UNAVAILABLE, /* no connection could run it (down, lost mid-query, queue full) */
	DB_TIMEOUT,     /* its class's statement timeout passed (SQLSTATE 57014) */
	DB_ERROR,       /* PostgreSQL refused it: sqlstate and message say why */
	DB_TOO_LARGE,   /* its rows do not fit the caller's buffer */
};

#define DB_PARAMS_MAX 12u
#define DB_PARAM_BYTES 6144u
#define DB_MESSAGE_MAX 160u

/* What the thread writes back: status and, for DB_OK, the rows as text,
 * packed in the caller's buffer (db_value reads them): per value a 4-byte
 * length (UINT32_MAX for NULL), then its bytes; and at the buffer's end,
 * 4 bytes a row: where the row starts (so db_value costs one row's
 * walk). The caller sets buf and cap before db_submit; buf NULL: the caller wants the status (and rows,
 * cols) only. db_submit clears `done`; the thread stores it last, with
 * release order: a reader that sees it set (acquire) sees the rest.
 * DB_UNAVAILABLE and the other failures carry no rows. */
struct db_result {
	_Atomic uint32_t done;
	uint8_t status;             /* enum db_status */
	char sqlstate[6];           /* DB_ERROR / DB_TIMEOUT: NUL-terminated */
	char message[DB_MESSAGE_MAX]; /* always NUL-terminated, "" if none */
	uint32_t rows, cols;
	uint32_t len;               /* bytes of buf the values use (the row
				     * offsets take 4 x rows more, at its end) */
	char *buf;                  /* caller's, with cap bytes */
	uint32_t cap;
};

/* One query: a prepared statement with text parameters packed in
 * `params` (param_len[i] bytes each, in order, each followed by a NUL,
 * as libpq takes them; DB_NULL_PARAM for NULL, which takes no bytes):
 * db_request_param packs them. Start from a zeroed request.
 * The caller keeps *result valid until the token comes back: a worker
 * keeps the connection's slot until then, even if its client left. */
#define DB_NULL_PARAM UINT16_MAX
struct db_request {
	uint16_t statement; /* enum db_statement */
	uint8_t nparams;
	uint16_t param_len[DB_PARAMS_MAX];
	char params[DB_PARAM_BYTES];
	struct db_result *result;
	uint64_t token;     /* handed back to db_post_fn unchanged */
};

/* Appends one text parameter (s NULL: SQL NULL); false if it does not
 * fit, or if it holds a NUL byte (PostgreSQL's text cannot). */
bool db_request_param(struct db_request *q, const char *s, size_t len);

/* Value (row, col) of a DB_OK result: its bytes (not NUL-terminated) and
 * length; NULL for SQL NULL or out of range. */
const char *db_value(const struct db_result *r, uint32_t row, uint32_t col, uint32_t *len);
/* Does value (row, col) hold exactly lit (not NULL)? */
bool db_value_is(const struct db_result *r, uint32_t row, uint32_t col, const char *lit);
/* Value (row, col) as a non-negative integer of at most 18 digits; false
 * for NULL or anything else. */
bool db_value_i64(const struct db_result *r, uint32_t row, uint32_t col, int64_t *out);

/* Called on the db thread, once per request, after its result is
 * written: token is db_request.token. */
typedef void (*db_post_fn)(void *arg, uint32_t worker, uint64_t token);

struct db_config {
	const char *url;            /* libpq connection string or URI */
	uint32_t connections;       /* --db-connections */
	uint32_t workers;           /* queues, one per worker */
	uint32_t queue_depth;       /* per worker, a power of two */
	uint32_t timeout_ms[DB_CLASS_COUNT];
	db_post_fn post;
	/* Optional: called on the db thread after a round of posts, before
	 * it sleeps (posts may be queued until then and submitted in one
	 * go), and once more with last set when the thread ends. */
	void (*post_flush)(void *arg, bool last);
	void *post_arg;
};

struct db;

/* Starts the thread; it connects by itself (without blocking the caller)
 * and keeps reconnecting with backoff. Run db_migrate first: db_start
 * applies no migration, so that it never blocks and a server may start
 * while its database is down. Requests submitted before the first connects
 * end wait for them; afterwards, while no connection is up, requests fail
 * DB_UNAVAILABLE at once. Returns 0, or a negative errno after logging why
 * (-EINVAL: a bad configuration). */
int db_start(struct db **out, const struct db_config *cfg);

/* Worker `worker` only (single producer): queues a copy of q. Never
 * blocks, makes no syscall. -EAGAIN when its queue is full (answer 503),
 * -EINVAL for a request db_request_param could not have made. */
int db_submit(struct db *db, uint32_t worker, const struct db_request *q);

/* Once per loop pass of worker `worker`: wakes the thread if it queued
 * something since the last kick (one syscall at most, none when the
 * thread is awake anyway). */
void db_kick(struct db *db, uint32_t worker);

/* Requests still in flight or queued fail DB_UNAVAILABLE and are posted
 * (on the db thread, before db_stop returns); then the thread ends and
 * everything is freed. After the workers stopped submitting. */
void db_stop(struct db *db);

/* Seed 000's pool gauges: connections open, those with nothing in
 * flight, requests queued and not yet sent to PostgreSQL. Any thread. */
struct db_pool_stats {
	uint32_t total, idle, waiting;
};
void db_pool_stats(const struct db *db, struct db_pool_stats *out);

/* Applies src/db/migrations/NNN_name.sql (built into the binary) in name
 * order, each once, each in a transaction, under an advisory lock (several
 * instances may start together), recording them in schema_migrations.
 * Blocking (connect timeout 5 s); for start-up, before db_start. Returns 0
 * or -1, logged: a failed migration names its file and PostgreSQL's
 * message. */
int db_migrate(const char *url);

/* For other connections to the same database (the revocation sync's
 * LISTEN), made as the database thread makes its own: the libpq
 * keyword/value arrays for `url` with our defaults before it
 * (application_name, connect_timeout), so that the URL's own settings
 * win (PQconnectdbParams with expand_dbname). NULL-terminated. */
#define DB_CONNECT_PARAMS 4
void db_connect_params(const char *url, const char *keys[DB_CONNECT_PARAMS],
		       const char *values[DB_CONNECT_PARAMS]);

/* Copies text into out (cap bytes, NUL-terminated) fit for a quoted
 * logfmt value: '"' and '\\' become '\'', control characters spaces,
 * trailing spaces dropped (libpq's messages end in newlines). */
void db_log_text(const char *text, char *out, size_t cap);

/* A libpq notice processor: PostgreSQL's notices and warnings ("skipping",
 * "terminating connection due to immediate shutdown") become debug log
 * lines instead of raw stderr; what they mean is logged where it matters. */
void db_notice_to_log(void *arg, const char *message);

#endif
