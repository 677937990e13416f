/*
 * The revocation sync thread: keeps an instance's revocation table
 * (revocations.h) in step with the database every instance shares, so a
 * revocation, suspension or decommissioning made through any instance
 * ends the token on this one within a second, and a lost notification
 * within --revocation-resync.
 *
 * One thread, one libpq connection of its own (never the db thread's
 * pipelines), driven without ever blocking inside libpq: every
 * wait is a poll(2) over the connection's socket and a stop eventfd, with
 * a deadline, so identity_sync_stop returns promptly whatever the database
 * does. On each (re)connect it runs LISTEN ringside_revocations, then
 * re-reads every revocation (after the LISTEN, so a change committed
 * between the two is seen by one or the other); then it applies each
 * notification as it arrives, and every resync_ms re-reads everything
 * again (in single-row mode: no result holds the whole table), deletes
 * revoked_tokens rows expired for over an hour (a bounded batch per
 * statement, a bounded number of statements per round) and counts the
 * active agents for the sentryagent_active_agents gauge (also shortly
 * after an agent's notification, and every few seconds).
 *
 * While the database is unreachable the table keeps what it had (nothing
 * is ever removed by a failure) and the thread retries with jittered
 * exponential backoff (100 ms to 5 s). It logs "revocation sync down"
 * once when it loses the database and "revocation sync up" once when it
 * has it again (host and database name, never the URL: it may hold a
 * password).
 */
#ifndef RINGSIDE_IDENTITY_SYNC_H
#define RINGSIDE_IDENTITY_SYNC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct revocations;
struct identity_sync;

struct identity_sync_config {
	const char *url;                 /* libpq URL or conninfo; copied */
	uint32_t resync_ms;              /* full re-read every (>= 1) */
	struct revocations *revocations; /* must outlive the thread */
	_Atomic int64_t *active_agents;  /* gauge written (relaxed); NULL: none */
};

/* What the thread has done, for /metrics and tests. */
struct identity_sync_stats {
	bool up;            /* connected, listening and resynced at least once */
	uint64_t notices;   /* notifications applied */
	uint64_t resyncs;   /* full re-reads completed */
	uint64_t purged;    /* revoked_tokens rows deleted */
	uint64_t refused;   /* entries the table had no room for (-ENOSPC) */
	uint64_t connects;  /* sessions established (LISTEN done) */
};

/* Starts the thread (it connects by itself, now or whenever the database
 * comes up). Returns 0, or -ENOMEM, -EINVAL (no URL, resync_ms 0) or the
 * errno of eventfd/pthread_create. */
int identity_sync_start(struct identity_sync **out, const struct identity_sync_config *c);

/* Stops and joins the thread, closes its connection, frees s. Returns
 * within a few milliseconds whatever the database's state. NULL is
 * ignored. */
void identity_sync_stop(struct identity_sync *s);

/* Waits until the first resync has completed (true) or timeout_ms has
 * passed (false): at start, so the first requests already meet every
 * revocation stored. */
bool identity_sync_wait_first(const struct identity_sync *s, uint32_t timeout_ms);

/* Any thread (relaxed reads). */
void identity_sync_read_stats(const struct identity_sync *s, struct identity_sync_stats *out);

#endif
