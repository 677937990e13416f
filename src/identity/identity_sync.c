/*
 * The revocation sync thread (include/ringside/identity_sync.h).
 *
 * Its connection is a side session (include/ringside/side_session.h):
 * every wait a poll(2) under a deadline, so a database that stops
 * answering costs a query deadline, never a hung thread or a slow
 * shutdown. Any failure (connect, SQL error, deadline, lost socket) drops
 * the connection and starts again from the connect, LISTEN first.
 */
#include "ringside/identity_sync.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringside/db.h"
#include "ringside/log.h"
#include "ringside/revocations.h"
#include "ringside/side_session.h"

#define CONNECT_TIMEOUT_MS 5000
/* A statement (a resync's read of a big table included) that has not
 * ended in this long means the connection is useless: drop it. The
 * server-side statement_timeout is a little shorter, so a slow statement
 * ends there first, cleanly. */
#define QUERY_TIMEOUT_MS 15000
#define STATEMENT_TIMEOUT_SQL "SET statement_timeout = 10000"
/* The active-agents count: every this often, and this soon after an
 * agent's notification (a burst of them counts once). */
#define COUNT_EVERY_MS 5000
#define COUNT_AFTER_NOTICE_MS 200
/* Expired revoked_tokens rows go this long after their exp (beyond any
 * jwt leeway), PURGE_BATCH rows per statement, at most PURGE_ROUNDS
 * statements per resync: each holds its row locks for one small batch. */
#define PURGE_MARGIN_S "3600"
#define PURGE_BATCH 1000
#define PURGE_BATCH_SQL "1000" /* PURGE_BATCH, as SQL text */
#define PURGE_ROUNDS 10

#define SQL_LISTEN "LISTEN ringside_revocations"
#define SQL_TOKENS                                                                             \
	"SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= "                      \
	"extract(epoch FROM now())::bigint - " PURGE_MARGIN_S
#define SQL_AGENTS                                                                             \
	"SELECT agent_id::text, tokens_valid_after FROM agents WHERE tokens_valid_after > 0"
#define SQL_CLIENTS "SELECT client_id, revoked_at FROM agent_credentials WHERE revoked_at > 0"
/* SKIP LOCKED: instances purging at once take different rows. */
#define SQL_PURGE                                                                              \
	"DELETE FROM revoked_tokens WHERE ctid = ANY(ARRAY(SELECT ctid FROM revoked_tokens "   \
	"WHERE expires_at < extract(epoch FROM now())::bigint - " PURGE_MARGIN_S " LIMIT "      \
	PURGE_BATCH_SQL " FOR UPDATE SKIP LOCKED))"
#define SQL_COUNT "SELECT count(*) FROM agents WHERE status = 'active'"

struct identity_sync {
	uint32_t resync_ms;
	struct revocations *rev;
	_Atomic int64_t *active_agents;
	pthread_t thread;
	struct side_session db; /* the thread's own, but for stop and `up` */

	/* The thread's own. */
	uint64_t refused_this_round;

	_Atomic uint64_t notices, resyncs, purged, refused, connects;
};

static void bump(_Atomic uint64_t *c, uint64_t v)
{
	/* One writer (this thread): no RMW needed. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void apply_notices(struct identity_sync *s, int64_t *count_due)
{
	PGnotify *n;
	while ((n = PQnotifies(s->db.pg))) {
		size_t len = strlen(n->extra);
		int r = revocations_apply_notice(s->rev, n->extra, len);
		if (r == -ENOSPC) {
			/* Logged at the 1st, 2nd, 4th, 8th... refusal: a burst
			 * does not flood the log. */
			uint64_t k = atomic_load_explicit(&s->refused, memory_order_relaxed) + 1;
			bump(&s->refused, 1);
			if (!(k & (k - 1)))
				log_warn("revocation table full", "refused=%llu kind=%c hint=\"raise "
					 "--revocation-capacity\"", (unsigned long long)k, n->extra[0]);
		} else if (r < 0) {
			char text[80];
			db_log_text(n->extra, text, sizeof text);
			log_warn("revocation notice not understood", "payload=\"%s\"", text);
		} else {
			bump(&s->notices, 1);
			if (n->extra[0] == REVOKED_AGENT) {
				int64_t soon = side_session_now_ms() + COUNT_AFTER_NOTICE_MS;
				if (*count_due > soon)
					*count_due = soon;
			}
		}
		PQfreemem(n);
	}
}

/* What a query's rows are for. */
enum rows_use { ROWS_NONE, ROWS_TOKEN, ROWS_AGENT, ROWS_CLIENT, ROWS_COUNT };

/* A query's rows and what to do with them: side_query.arg. */
struct rows {
	struct identity_sync *s;
	enum rows_use use;
	int64_t *count_due;
};

static void take_row(void *arg, const PGresult *res, int i)
{
	struct rows *rows = arg;
	struct identity_sync *s = rows->s;
	enum rows_use use = rows->use;
	if (use == ROWS_NONE || PQnfields(res) < 1 || PQgetisnull(res, i, 0))
		return;
	if (use == ROWS_COUNT) {
		if (s->active_agents)
			atomic_store_explicit(s->active_agents, strtoll(PQgetvalue(res, i, 0), NULL, 10),
					      memory_order_relaxed);
		return;
	}
	if (PQnfields(res) < 2 || PQgetisnull(res, i, 1))
		return;
	static const enum revocation_kind kinds[] = {
		[ROWS_TOKEN] = REVOKED_TOKEN, [ROWS_AGENT] = REVOKED_AGENT,
		[ROWS_CLIENT] = REVOKED_CLIENT};
	int r = revocations_add(s->rev, kinds[use], PQgetvalue(res, i, 0),
				(size_t)PQgetlength(res, i, 0),
				strtoll(PQgetvalue(res, i, 1), NULL, 10));
	if (r == -ENOSPC)
		s->refused_this_round++;
	/* -EINVAL: an id our tokens cannot carry (over 63 bytes): no token
	 * can name it, nothing to hold. */
}

static void end_rows(void *arg)
{
	struct rows *rows = arg;
	apply_notices(rows->s, rows->count_due);
}

/*
 * Runs sql (one or more statements) to its end, rows to `use`, one at a
 * time in single-row mode when single_row. *affected (may be NULL): the
 * last command's row count. Notifications that arrive meanwhile are
 * applied. Returns 0, or <0 with s->db.error set (the connection is then
 * to be dropped) or -ECANCELED (stop).
 */
static int run(struct identity_sync *s, const char *sql, enum rows_use use, bool single_row,
	       uint64_t *affected, int64_t *count_due)
{
	struct rows rows = {.s = s, .use = use, .count_due = count_due};
	struct side_query q = {.sql = sql, .single_row = single_row, .row = take_row,
			       .end = end_rows, .arg = &rows};
	int r = side_session_run(&s->db, &q);
	if (affected)
		*affected = q.affected;
	return r;
}

static int count_active(struct identity_sync *s, int64_t *count_due)
{
	*count_due = side_session_now_ms() + COUNT_EVERY_MS;
	return run(s, SQL_COUNT, ROWS_COUNT, false, NULL, count_due);
}

/* Re-reads every revocation, deletes expired rows, counts the active
 * agents. Values only grow, so what a notification applied meanwhile is
 * never undone. */
static int resync(struct identity_sync *s, int64_t *count_due)
{
	int r;
	s->refused_this_round = 0;
	if ((r = run(s, SQL_TOKENS, ROWS_TOKEN, true, NULL, count_due)) < 0 ||
	    (r = run(s, SQL_AGENTS, ROWS_AGENT, true, NULL, count_due)) < 0 ||
	    (r = run(s, SQL_CLIENTS, ROWS_CLIENT, true, NULL, count_due)) < 0)
		return r;
	if (s->refused_this_round) {
		bump(&s->refused, s->refused_this_round);
		log_warn("revocation table full", "refused=%llu hint=\"raise --revocation-capacity\"",
			 (unsigned long long)s->refused_this_round);
	}
	for (int round = 0; round < PURGE_ROUNDS; round++) {
		uint64_t n = 0;
		if ((r = run(s, SQL_PURGE, ROWS_NONE, false, &n, count_due)) < 0)
			return r;
		bump(&s->purged, n);
		if (n < PURGE_BATCH)
			break;
	}
	if ((r = count_active(s, count_due)) < 0)
		return r;
	/* Release: whoever sees the count (identity_sync_wait_first) sees
	 * the entries added before it. */
	atomic_store_explicit(&s->resyncs, atomic_load_explicit(&s->resyncs, memory_order_relaxed) + 1,
			      memory_order_release);
	return 0;
}

/* One session: connect, LISTEN, resync, then notifications and the
 * periodic work until a failure (<0 with s->db.error) or the stop
 * (-ECANCELED). */
static int session(struct identity_sync *s)
{
	int64_t count_due = INT64_MAX;
	int r;
	if ((r = side_session_connect(&s->db)) < 0 ||
	    (r = run(s, STATEMENT_TIMEOUT_SQL "; " SQL_LISTEN, ROWS_NONE, false, NULL,
		     &count_due)) < 0)
		return r;
	bump(&s->connects, 1);
	if ((r = resync(s, &count_due)) < 0)
		return r;
	side_session_log_up(&s->db, "revocations=%u", revocations_count(s->rev));
	int64_t resync_due = side_session_now_ms() + s->resync_ms;
	for (;;) {
		int64_t due = resync_due < count_due ? resync_due : count_due;
		r = side_session_wait(&s->db, PQsocket(s->db.pg), POLLIN, due, -1);
		if (r < 0)
			return r;
		if (r > 0) {
			if (!PQconsumeInput(s->db.pg)) {
				side_session_set_error(&s->db, "listen", PQerrorMessage(s->db.pg));
				return -EIO;
			}
			apply_notices(s, &count_due);
			continue;
		}
		int64_t now = side_session_now_ms();
		if (now >= resync_due) {
			if ((r = resync(s, &count_due)) < 0)
				return r;
			resync_due = side_session_now_ms() + s->resync_ms;
		} else if (now >= count_due && (r = count_active(s, &count_due)) < 0) {
			return r;
		}
	}
}

static void *sync_main(void *arg)
{
	struct identity_sync *s = arg;
	for (;;) {
		int r = session(s);
		side_session_disconnect(&s->db);
		if (r == -ECANCELED || side_session_back_off(&s->db, false, 0) < 0)
			break;
	}
	return NULL;
}

int identity_sync_start(struct identity_sync **out, const struct identity_sync_config *c)
{
	if (!c->url || !c->url[0] || !c->resync_ms || !c->revocations)
		return -EINVAL;
	struct identity_sync *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->resync_ms = c->resync_ms;
	s->rev = c->revocations;
	s->active_agents = c->active_agents;
	const struct side_session_config db = {
		.url = c->url,
		.name = "revocation sync",
		.down_hint = "revocations made on other instances arrive when it is back",
		.connect_timeout_ms = CONNECT_TIMEOUT_MS,
		.query_timeout_ms = QUERY_TIMEOUT_MS,
	};
	int err = side_session_init(&s->db, &db);
	if (err < 0)
		goto fail;
	/* The thread takes no signal: main's mask (blocked) is inherited. */
	if ((err = pthread_create(&s->thread, NULL, sync_main, s)) != 0) {
		err = -err;
		side_session_fini(&s->db);
		goto fail;
	}
	pthread_setname_np(s->thread, "ringside-idsync");
	*out = s;
	return 0;
fail:
	free(s);
	return err;
}

void identity_sync_stop(struct identity_sync *s)
{
	if (!s)
		return;
	side_session_stop(&s->db);
	pthread_join(s->thread, NULL);
	side_session_fini(&s->db);
	free(s);
}

bool identity_sync_wait_first(const struct identity_sync *s, uint32_t timeout_ms)
{
	/* Once, at start: a short poll is simpler than a condition
	 * variable the thread would signal for ever after. */
	int64_t deadline = side_session_now_ms() + timeout_ms;
	while (!atomic_load_explicit(&s->resyncs, memory_order_acquire)) {
		if (side_session_now_ms() >= deadline)
			return false;
		nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
	}
	return true;
}

void identity_sync_read_stats(const struct identity_sync *s, struct identity_sync_stats *out)
{
	out->up = side_session_is_up(&s->db);
	out->notices = atomic_load_explicit(&s->notices, memory_order_relaxed);
	out->resyncs = atomic_load_explicit(&s->resyncs, memory_order_relaxed);
	out->purged = atomic_load_explicit(&s->purged, memory_order_relaxed);
	out->refused = atomic_load_explicit(&s->refused, memory_order_relaxed);
	out->connects = atomic_load_explicit(&s->connects, memory_order_relaxed);
}
