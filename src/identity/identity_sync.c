/*
 * The revocation sync thread (include/ringside/identity_sync.h).
 *
 * libpq is used asynchronously (PQconnectStartParams/PQconnectPoll,
 * PQsendQuery, PQconsumeInput) so that every wait is our poll(2) over the
 * socket and the stop eventfd, under a deadline: a database that stops
 * answering costs a query deadline, never a hung thread or a slow
 * shutdown. Any failure (connect, SQL error, deadline, lost socket) drops
 * the connection and starts again from the connect, LISTEN first.
 *
 * Connects as the database thread does (db_connect_params) but not
 * through it: the db thread's pipelines stay the workers'.
 */
#include "ringside/identity_sync.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ringside/db.h"
#include "ringside/log.h"
#include "ringside/revocations.h"

#define CONNECT_TIMEOUT_MS 5000
/* A statement (a resync's read of a big table included) that has not
 * ended in this long means the connection is useless: drop it. The
 * server-side statement_timeout is a little shorter, so a slow statement
 * ends there first, cleanly. */
#define QUERY_TIMEOUT_MS 15000
#define STATEMENT_TIMEOUT_SQL "SET statement_timeout = 10000"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
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
	char *url;
	uint32_t resync_ms;
	struct revocations *rev;
	_Atomic int64_t *active_agents;
	int stop_fd;
	pthread_t thread;

	/* The thread's own. */
	PGconn *pg;
	bool down_logged;   /* "down" said since the last "up" */
	bool ever_up;
	uint32_t backoff_ms;
	uint64_t rng;
	uint64_t refused_this_round;
	char error[256];    /* why the last attempt failed, for the log */

	_Atomic bool up;
	_Atomic uint64_t notices, resyncs, purged, refused, connects;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bump(_Atomic uint64_t *c, uint64_t v)
{
	/* One writer (this thread): no RMW needed. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void set_error(struct identity_sync *s, const char *what, const char *text)
{
	char clean[200];
	db_log_text(text ? text : "", clean, sizeof clean);
	snprintf(s->error, sizeof s->error, "%s: %s", what, clean);
}

/*
 * Waits until fd is ready for events, the stop eventfd is written, or the
 * deadline (monotonic ms; INT64_MAX: none) passes. fd < 0: only the stop
 * and the deadline. Returns 1 ready, 0 deadline, -ECANCELED stop.
 */
static int wait_fd(struct identity_sync *s, int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = s->stop_fd, .events = POLLIN},
				      {.fd = fd, .events = events}};
		int64_t left = deadline == INT64_MAX ? -1 : deadline - mono_ms();
		if (left < 0 && deadline != INT64_MAX)
			left = 0;
		int r = poll(p, 2, left > 60000 ? 60000 : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* EINVAL, ENOMEM: waiting again would spin. */
			log_error("revocation sync stopped: poll failed", "errno=%d", errno);
			return -ECANCELED;
		}
		if (p[0].revents)
			return -ECANCELED;
		if (r > 0 && p[1].revents)
			return 1;
		if (deadline != INT64_MAX && mono_ms() >= deadline)
			return 0;
	}
}

static void disconnect(struct identity_sync *s)
{
	if (s->pg)
		PQfinish(s->pg);
	s->pg = NULL;
	atomic_store_explicit(&s->up, false, memory_order_relaxed);
}

/* A non-blocking connect under CONNECT_TIMEOUT_MS. 0, or <0 (s->error). */
static int connect_pg(struct identity_sync *s)
{
	const char *keys[DB_CONNECT_PARAMS], *values[DB_CONNECT_PARAMS];
	db_connect_params(s->url, keys, values);
	s->pg = PQconnectStartParams(keys, values, 1);
	if (!s->pg || PQstatus(s->pg) == CONNECTION_BAD) {
		set_error(s, "connect", s->pg ? PQerrorMessage(s->pg) : "out of memory");
		return -EIO;
	}
	PQsetNoticeProcessor(s->pg, db_notice_to_log, NULL);
	int64_t deadline = mono_ms() + CONNECT_TIMEOUT_MS;
	short events = POLLOUT; /* libpq: as if PQconnectPoll said WRITING first */
	for (;;) {
		int w = wait_fd(s, PQsocket(s->pg), events, deadline);
		if (w < 0)
			return w;
		if (w == 0) {
			set_error(s, "connect", "no answer in 5000 ms");
			return -ETIMEDOUT;
		}
		switch (PQconnectPoll(s->pg)) {
		case PGRES_POLLING_READING:
			events = POLLIN;
			break;
		case PGRES_POLLING_WRITING:
			events = POLLOUT;
			break;
		case PGRES_POLLING_OK:
			if (PQsetnonblocking(s->pg, 1)) {
				set_error(s, "connect", PQerrorMessage(s->pg));
				return -EIO;
			}
			return 0;
		default:
			set_error(s, "connect", PQerrorMessage(s->pg));
			return -EIO;
		}
	}
}

static void apply_notices(struct identity_sync *s, int64_t *count_due)
{
	PGnotify *n;
	while ((n = PQnotifies(s->pg))) {
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
				int64_t soon = mono_ms() + COUNT_AFTER_NOTICE_MS;
				if (*count_due > soon)
					*count_due = soon;
			}
		}
		PQfreemem(n);
	}
}

/* What a query's rows are for. */
enum rows_use { ROWS_NONE, ROWS_TOKEN, ROWS_AGENT, ROWS_CLIENT, ROWS_COUNT };

static void take_row(struct identity_sync *s, enum rows_use use, const PGresult *res, int i)
{
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

/*
 * Runs sql (one or more statements) to its end, rows to `use`, one at a
 * time in single-row mode when single_row. *affected (may be NULL): the
 * last command's row count. Notifications that arrive meanwhile are
 * applied. Returns 0, or <0 with s->error set (the connection is then
 * to be dropped) or -ECANCELED (stop).
 */
static int run(struct identity_sync *s, const char *sql, enum rows_use use, bool single_row,
	       uint64_t *affected, int64_t *count_due)
{
	int64_t deadline = mono_ms() + QUERY_TIMEOUT_MS;
	if (!PQsendQuery(s->pg, sql)) {
		set_error(s, "send", PQerrorMessage(s->pg));
		return -EIO;
	}
	if (single_row)
		PQsetSingleRowMode(s->pg); /* best effort: else all rows come at once */
	int f;
	while ((f = PQflush(s->pg)) == 1) {
		int w = wait_fd(s, PQsocket(s->pg), POLLOUT | POLLIN, deadline);
		if (w < 0)
			return w;
		if (w == 0 || !PQconsumeInput(s->pg)) {
			set_error(s, "send", w == 0 ? "timed out" : PQerrorMessage(s->pg));
			return -EIO;
		}
	}
	if (f < 0) {
		set_error(s, "send", PQerrorMessage(s->pg));
		return -EIO;
	}
	int rc = 0;
	for (;;) {
		while (PQisBusy(s->pg)) {
			int w = wait_fd(s, PQsocket(s->pg), POLLIN, deadline);
			if (w < 0)
				return w;
			if (w == 0) {
				set_error(s, "query", "no answer in 15000 ms");
				return -ETIMEDOUT;
			}
			if (!PQconsumeInput(s->pg)) {
				set_error(s, "query", PQerrorMessage(s->pg));
				return -EIO;
			}
		}
		PGresult *res = PQgetResult(s->pg);
		if (!res)
			break;
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
		case PGRES_TUPLES_OK:
			for (int i = 0; i < PQntuples(res); i++)
				take_row(s, use, res, i);
			break;
		case PGRES_COMMAND_OK:
			if (affected)
				*affected = strtoull(PQcmdTuples(res), NULL, 10);
			break;
		default:
			if (!rc)
				set_error(s, "query", PQresultErrorMessage(res));
			rc = -EIO; /* read on to the end: the connection stays in step */
			break;
		}
		PQclear(res);
	}
	if (PQstatus(s->pg) == CONNECTION_BAD && !rc) {
		set_error(s, "query", PQerrorMessage(s->pg));
		rc = -EIO;
	}
	apply_notices(s, count_due);
	return rc;
}

static int count_active(struct identity_sync *s, int64_t *count_due)
{
	*count_due = mono_ms() + COUNT_EVERY_MS;
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

static void log_up(struct identity_sync *s)
{
	char host[128], name[128];
	db_log_text(PQhost(s->pg), host, sizeof host);
	db_log_text(PQdb(s->pg), name, sizeof name);
	log_info(s->ever_up ? "revocation sync up again" : "revocation sync up",
		 "host=\"%s\" db=\"%s\" revocations=%u", host, name, revocations_count(s->rev));
	s->ever_up = true;
	s->down_logged = false;
}

/* Sleeps the backoff (jittered: half of it, plus up to the other half at
 * random, so instances that lost the database together do not return in
 * step), then doubles it. -ECANCELED on stop. */
static int back_off(struct identity_sync *s)
{
	if (!s->down_logged) {
		log_warn("revocation sync down", "error=\"%s\" hint=\"revocations made on other "
			 "instances arrive when it is back\"", s->error);
		s->down_logged = true;
	} else {
		log_debug("revocation sync still down", "error=\"%s\"", s->error);
	}
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	uint32_t half = s->backoff_ms / 2;
	int64_t ms = half + (int64_t)(s->rng % (half + 1));
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	return wait_fd(s, -1, 0, mono_ms() + ms) < 0 ? -ECANCELED : 0;
}

/* One session: connect, LISTEN, resync, then notifications and the
 * periodic work until a failure (<0 with s->error) or the stop
 * (-ECANCELED). */
static int session(struct identity_sync *s)
{
	int64_t count_due = INT64_MAX;
	int r;
	if ((r = connect_pg(s)) < 0 ||
	    (r = run(s, STATEMENT_TIMEOUT_SQL "; " SQL_LISTEN, ROWS_NONE, false, NULL,
		     &count_due)) < 0)
		return r;
	bump(&s->connects, 1);
	if ((r = resync(s, &count_due)) < 0)
		return r;
	atomic_store_explicit(&s->up, true, memory_order_relaxed);
	log_up(s);
	s->backoff_ms = BACKOFF_MIN_MS;
	int64_t resync_due = mono_ms() + s->resync_ms;
	for (;;) {
		int64_t due = resync_due < count_due ? resync_due : count_due;
		r = wait_fd(s, PQsocket(s->pg), POLLIN, due);
		if (r < 0)
			return r;
		if (r > 0) {
			if (!PQconsumeInput(s->pg)) {
				set_error(s, "listen", PQerrorMessage(s->pg));
				return -EIO;
			}
			apply_notices(s, &count_due);
			continue;
		}
		int64_t now = mono_ms();
		if (now >= resync_due) {
			if ((r = resync(s, &count_due)) < 0)
				return r;
			resync_due = mono_ms() + s->resync_ms;
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
		disconnect(s);
		if (r == -ECANCELED || back_off(s) < 0)
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
	s->url = strdup(c->url);
	if (!s->url) {
		free(s);
		return -ENOMEM;
	}
	s->resync_ms = c->resync_ms;
	s->rev = c->revocations;
	s->active_agents = c->active_agents;
	s->backoff_ms = BACKOFF_MIN_MS;
	if (getrandom(&s->rng, sizeof s->rng, GRND_NONBLOCK) != (ssize_t)sizeof s->rng)
		s->rng = (uint64_t)mono_ms() * 0x9e3779b97f4a7c15u;
	s->rng |= 1; /* xorshift: never zero */
	int err;
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0) {
		err = -errno;
		goto fail;
	}
	/* The thread takes no signal: main's mask (blocked) is inherited. */
	if ((err = pthread_create(&s->thread, NULL, sync_main, s)) != 0) {
		err = -err;
		close(s->stop_fd);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	free(s->url);
	free(s);
	return err;
}

void identity_sync_stop(struct identity_sync *s)
{
	if (!s)
		return;
	uint64_t one = 1;
	if (write(s->stop_fd, &one, sizeof one) != (ssize_t)sizeof one)
		log_error("revocation sync: cannot signal its stop", "errno=%d", errno);
	pthread_join(s->thread, NULL);
	close(s->stop_fd);
	/* Wipe: the URL may hold a password. */
	explicit_bzero(s->url, strlen(s->url));
	free(s->url);
	free(s);
}

bool identity_sync_wait_first(const struct identity_sync *s, uint32_t timeout_ms)
{
	/* Once, at start: a short poll is simpler than a condition
	 * variable the thread would signal for ever after. */
	int64_t deadline = mono_ms() + timeout_ms;
	while (!atomic_load_explicit(&s->resyncs, memory_order_acquire)) {
		if (mono_ms() >= deadline)
			return false;
		nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
	}
	return true;
}

void identity_sync_read_stats(const struct identity_sync *s, struct identity_sync_stats *out)
{
	out->up = atomic_load_explicit(&s->up, memory_order_relaxed);
	out->notices = atomic_load_explicit(&s->notices, memory_order_relaxed);
	out->resyncs = atomic_load_explicit(&s->resyncs, memory_order_relaxed);
	out->purged = atomic_load_explicit(&s->purged, memory_order_relaxed);
	out->refused = atomic_load_explicit(&s->refused, memory_order_relaxed);
	out->connects = atomic_load_explicit(&s->connects, memory_order_relaxed);
}
