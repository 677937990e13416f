/*
 * The analytics flusher (tenant analytics, seed 002): a thread with its
 * own PostgreSQL connection that tails every worker's count journal
 * (analytics_journal.h) and adds what it reads to the rollups of
 * 003_analytics.sql, in batches: one transaction per batch holds the
 * upserts (INSERT ... ON CONFLICT DO UPDATE, summed per organization,
 * agent and UTC hour first) and the new read position of each stream
 * (analytics_journal_applied), so a crash anywhere applies each event
 * exactly once. Segments wholly applied are deleted.
 *
 * While PostgreSQL is down the journal grows and nothing is lost; when it
 * returns the backlog drains at --analytics-batch events a transaction,
 * after a jittered backoff, so many instances coming back do not all hit
 * it at once. It also drops rollup rows past their retention.
 */
#ifndef RINGSIDE_ANALYTICS_FLUSHER_H
#define RINGSIDE_ANALYTICS_FLUSHER_H

#include <stdbool.h>
#include <stdint.h>

struct analytics_flusher;

struct analytics_flusher_config {
	const char *url;          /* the database (never logged) */
	const char *dir;          /* the journal directory */
	uint32_t interval_ms;     /* how often it looks for new events */
	uint32_t batch_events;    /* events per transaction at most */
	uint32_t hourly_retention_days; /* hourly rows older than this go */
};

/* Starts the thread; it connects by itself and keeps retrying. On its
 * first connection it binds dir to the database (dir/database-id holds
 * ringside_meta's database_id) and refuses, logged, a directory bound
 * to another. dir/instance-id (made once) names this journal in
 * analytics_journal_applied. 0, or a negative errno after logging. */
int analytics_flusher_start(struct analytics_flusher **out,
			    const struct analytics_flusher_config *c);

/* Tries to apply everything flushed to the journal before the call, for
 * at most timeout_ms; then stops the thread. Whatever is left stays in
 * the journal for the next start. */
void analytics_flusher_stop(struct analytics_flusher *f, uint32_t timeout_ms);

/* Waits until everything flushed to the journal before the call is in
 * the rollups, or timeout_ms: true if it is (tests; /ready could). */
bool analytics_flusher_drain(struct analytics_flusher *f, uint32_t timeout_ms);

struct analytics_flusher_stats {
	bool up;                  /* connected and bound */
	uint64_t events_applied;  /* since start */
	uint64_t batches;
	uint64_t backlog_bytes;   /* journal bytes not yet applied */
};
void analytics_flusher_read_stats(const struct analytics_flusher *f,
				  struct analytics_flusher_stats *out);

#endif
