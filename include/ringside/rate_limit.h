/*
 * Per-agent token buckets for POST /api/metrics/ingest (--ingest-rate-limit
 * reports per second; a bucket holds one second's worth, at least one
 * report). Shared by every worker, since an agent's connections land on
 * any of them: one table, fixed at start, of 16-byte entries whose state
 * is one 64-bit word updated by compare-and-swap. Two workers touch the
 * same word only when the same agent posts on both at once.
 *
 * Agents are keyed by a SipHash-1-3 of (organization, agent id):
 * only agents with a valid token reach the limiter, so the table (twice
 * the agent capacity) fills only past that capacity, and then it lets
 * reports through rather than refuse agents it cannot track.
 */
#ifndef RINGSIDE_RATE_LIMIT_H
#define RINGSIDE_RATE_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATE_LIMIT_ID_MAX 63 /* bytes of an id that count (as token claims) */

struct rate_limit_entry {
	_Atomic uint64_t key;   /* hash | 1 (0: empty) */
	_Atomic uint64_t state; /* tokens in thousandths (high 24 bits) | last refill ms (low 40) */
}; /* 16 bytes */

struct rate_limit {
	struct rate_limit_entry *table;
	uint32_t mask;          /* entries - 1 */
	uint32_t rate_milli;    /* reports per second x 1000; 0: off */
	uint64_t burst_milli;   /* bucket size x 1000 */
	uint64_t seed[2];
};

/* entries: a power of two (twice the agents to track). rate_milli 0 turns
 * the limiter off. Returns 0 or -ENOMEM. */
int rate_limit_init(struct rate_limit *r, uint32_t entries, uint32_t rate_milli);
void rate_limit_fini(struct rate_limit *r);
/* A bucket of other than one second's worth (at most about 16 000). */
void rate_limit_set_burst(struct rate_limit *r, uint64_t burst_milli);

/* Takes one report from the agent's bucket at now_ms. Returns 0 if allowed,
 * else the milliseconds until the next report would be (> 0). */
uint32_t rate_limit_take(struct rate_limit *r, const char *org, size_t org_len,
			 const char *agent, size_t agent_len, uint64_t now_ms);

#endif
