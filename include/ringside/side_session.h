/*
 * A side session: a connection of its own to the same database, outside
 * the database thread, for a thread that must not queue behind the
 * workers' pipelines (the revocation sync's LISTEN, the analytics
 * flusher's batches).
 *
 * libpq is driven without ever blocking inside it (PQconnectStartParams /
 * PQconnectPoll, PQsendQuery, PQconsumeInput): every wait is a poll(2)
 * over the socket and the session's stop eventfd, under a deadline, so a
 * database that stops answering costs a deadline, never a hung thread or
 * a slow shutdown. Any failure leaves the reason in s->error (kept for
 * the log until the next failure) and asks the owner to start again:
 * disconnect, back off (jittered exponential, 100 ms to 5 s), connect.
 *
 * "<name> down" is logged once per outage and "<name> up" / "<name> up
 * again" once when it ends, with host and database name: never the URL
 * (it may hold a password; side_session_fini wipes the copy).
 *
 * One thread owns the session; only side_session_stop and
 * side_session_is_up may be called from others.
 */
#ifndef RINGSIDE_SIDE_SESSION_H
#define RINGSIDE_SIDE_SESSION_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct side_session_config {
	const char *url;        /* libpq URL or conninfo; copied */
	const char *name;       /* for the log: "revocation sync" */
	const char *down_hint;  /* the hint= of "<name> down" */
	uint32_t connect_timeout_ms;
	uint32_t query_timeout_ms;
};

/* Caller-owned; every field but `up` is the owning thread's. */
struct side_session {
	PGconn *pg;             /* NULL while disconnected */
	char error[256];        /* why the last attempt failed, for the log */
	char *url;
	const char *name, *down_hint;
	uint32_t connect_timeout_ms, query_timeout_ms;
	int stop_fd;
	bool down_logged;       /* "down" said since the last "up" */
	bool ever_up;
	uint32_t backoff_ms;
	uint64_t rng;           /* xorshift64, never zero */
	_Atomic bool up;
};

/* Copies the URL, makes the stop eventfd, seeds the backoff's jitter.
 * 0, -ENOMEM, or the eventfd's negative errno (nothing to fini then).
 * name and down_hint must outlive the session. */
int side_session_init(struct side_session *s, const struct side_session_config *c);

/* Closes the connection and the stop eventfd, wipes and frees the URL.
 * The owning thread must have ended. */
void side_session_fini(struct side_session *s);

/* Any thread: makes every wait of the session return -ECANCELED, now and
 * for ever after. Logs "<name>: cannot signal its stop" if it cannot. */
void side_session_stop(struct side_session *s);

/* Any thread: connected and past the owner's start (side_session_log_up),
 * not yet dropped. Relaxed: a gauge, orders nothing. */
static inline bool side_session_is_up(const struct side_session *s)
{
	return atomic_load_explicit(&s->up, memory_order_relaxed);
}

/* CLOCK_MONOTONIC in ms: the clock of every deadline here. */
int64_t side_session_now_ms(void);

/*
 * Waits until fd is ready for events, the stop eventfd is written,
 * wake_fd (an eventfd, or -1) is written, or the deadline (monotonic ms;
 * INT64_MAX: none) passes. fd < 0: only the others. Returns 1 fd ready,
 * 2 woken (wake_fd read empty), 0 deadline, -ECANCELED stop (or a poll
 * that cannot work: logged).
 */
int side_session_wait(struct side_session *s, int fd, short events, int64_t deadline,
		      int wake_fd);

/* Connects, non-blocking, under connect_timeout_ms; the connection is
 * left non-blocking with notices to the debug log. 0, or <0 with
 * s->error set (the caller then disconnects) or -ECANCELED (stop). */
int side_session_connect(struct side_session *s);

/* Drops the connection (if any) and clears `up`. */
void side_session_disconnect(struct side_session *s);

/* One round trip: see side_session_run. */
struct side_query {
	const char *sql;        /* several statements allowed when nparams is 0 */
	int nparams;
	/* Named: the statement prepared on this connection under that name
	 * (`prepare`: prepare it now, sql with nparams; else: run it, sql
	 * unused). Saves the parse and plan of a statement run again and
	 * again (the flusher's batch: 0.7 of its 1 ms in PostgreSQL). */
	const char *name;
	bool prepare;
	const char *const *values; /* text parameters */
	bool single_row;        /* rows one by one (best effort) */
	/* Each row of each result, in order (may be NULL). */
	void (*row)(void *arg, const PGresult *res, int i);
	/* Once the results are read to their end, whatever they said (not
	 * after a send failure, a lost socket, the deadline or the stop). */
	void (*end)(void *arg);
	void *arg;
	uint64_t affected;      /* out: the last command's row count */
};

/* Sends q->sql (or prepares it, or runs the prepared q->name) and reads
 * every result under query_timeout_ms. A failed
 * statement is read on to the end, so the connection stays in step.
 * Returns 0, or <0 with s->error set (the connection is then to be
 * dropped) or -ECANCELED (stop). */
int side_session_run(struct side_session *s, struct side_query *q);

/* Sets s->error to "<what>: <text>" (text cleaned for logfmt; NULL: ""). */
void side_session_set_error(struct side_session *s, const char *what, const char *text);

/* After the owner's start on a new connection: sets `up`, logs "<name>
 * up" (or "up again") with host, database and fields_fmt's own fields,
 * and resets the backoff. */
void side_session_log_up(struct side_session *s, const char *fields_fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * After a failure and side_session_disconnect: logs "<name> down" with
 * s->error once per outage (quiet: counts as said without saying it, the
 * owner told its own story) and "<name> still down" at debug after that,
 * then sleeps the backoff, or instead_ms when not 0, jittered (half of
 * it plus up to the other half at random, so instances that lost the
 * database together do not come back in step), and doubles the backoff.
 * 0, or -ECANCELED on stop.
 */
int side_session_back_off(struct side_session *s, bool quiet, uint32_t instead_ms);

#endif
