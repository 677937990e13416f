/*
 * One batch of the analytics flusher (flusher.c): the journal events it
 * read, summed per (organization, agent, UTC hour) in a table sized at
 * start, and rendered as the array parameters of the one statement that
 * adds them to the three rollups and records how far each stream was
 * read (rollup_batch_sql), so both commit together.
 */
#ifndef RINGSIDE_ANALYTICS_ROLLUP_BATCH_H
#define RINGSIDE_ANALYTICS_ROLLUP_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringside/analytics_journal.h"

#define ROLLUP_BATCH_PARAMS 10

/* $1..$6 the sums (org, hour, agent, tokens, calls, last ms), $7 the
 * instance id, $8..$10 the streams' positions (worker, seq, offset). */
extern const char rollup_batch_sql[];

struct agg;
struct rollup_position {
	uint32_t worker;
	struct journal_pos pos;
};

struct rollup_batch {
	/* An open-addressing table of indexes (+1; 0 empty) into aggs,
	 * twice the batch size so probes stay short. */
	struct agg *aggs;
	uint32_t naggs;
	uint32_t *slots;
	uint32_t slot_mask;
	uint64_t hash_key[2];
	struct rollup_position *positions;
	uint32_t npositions, positions_max;
	/* The text parameters, sized for a full batch at start. */
	char *p_org, *p_hour, *p_agent, *p_tokens, *p_calls, *p_last;
	char *p_worker, *p_seq, *p_off;
};

/* For up to `events` events and `streams` positions. 0 or -ENOMEM. */
int rollup_batch_init(struct rollup_batch *b, uint32_t events, uint32_t streams);
void rollup_batch_fini(struct rollup_batch *b);
/* Empties it for the next batch. */
void rollup_batch_reset(struct rollup_batch *b);
/* Adds one event (at most `events` per batch); false if it cannot be
 * counted (an id not UTF-8 or with a NUL, a time before 1970 or after
 * 9999, an unknown kind). */
bool rollup_batch_add(struct rollup_batch *b, const struct journal_event *ev);
/* Where a stream's reading got to in this batch. */
void rollup_batch_position(struct rollup_batch *b, uint32_t worker, struct journal_pos pos);
/* The statement's parameters (valid until the next reset). */
void rollup_batch_params(struct rollup_batch *b, const char *instance_id,
			 const char *values[ROLLUP_BATCH_PARAMS]);

#endif
