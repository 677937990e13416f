#include "ringside/rate_limit.h"

#include "ringside/siphash.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MS_BITS 40
#define MS_MASK ((1ull << MS_BITS) - 1)
#define TOKENS_MAX ((1ull << (64 - MS_BITS)) - 1) /* thousandths: up to 16 777 reports */
#define PROBES 16

int rate_limit_init(struct rate_limit *r, uint32_t entries, uint32_t rate_milli)
{
	memset(r, 0, sizeof *r);
	r->rate_milli = rate_milli;
	/* One second's worth, at least one report, within the state bits. */
	r->burst_milli = rate_milli < 1000 ? 1000 : rate_milli;
	if (r->burst_milli > TOKENS_MAX)
		r->burst_milli = TOKENS_MAX;
	if (!rate_milli)
		return 0;
	if (entries & (entries - 1))
		return -EINVAL;
	r->table = calloc(entries, sizeof *r->table);
	if (!r->table)
		return -ENOMEM;
	r->mask = entries - 1;
	if (getrandom(r->seed, sizeof r->seed, 0) != sizeof r->seed)
		r->seed[0] = (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ull;
	return 0;
}

void rate_limit_set_burst(struct rate_limit *r, uint64_t burst_milli)
{
	r->burst_milli = burst_milli > TOKENS_MAX ? TOKENS_MAX : burst_milli;
}

void rate_limit_fini(struct rate_limit *r)
{
	free(r->table);
	r->table = NULL;
}

/* Clients choose agent ids: a keyed hash makes collisions (which would
 * only share a bucket) unpredictable. The org length byte first keeps
 * ("ab", "c") apart from ("a", "bc"). */
static uint64_t hash_key(const struct rate_limit *r, const char *org, size_t org_len,
			 const char *agent, size_t agent_len)
{
	unsigned char buf[1 + 2 * RATE_LIMIT_ID_MAX];
	if (org_len > RATE_LIMIT_ID_MAX)
		org_len = RATE_LIMIT_ID_MAX;
	if (agent_len > RATE_LIMIT_ID_MAX)
		agent_len = RATE_LIMIT_ID_MAX;
	buf[0] = (unsigned char)org_len;
	memcpy(buf + 1, org, org_len);
	memcpy(buf + 1 + org_len, agent, agent_len);
	return siphash13(r->seed, buf, 1 + org_len + agent_len) | 1;
}

static struct rate_limit_entry *find(struct rate_limit *r, uint64_t key, uint64_t now_ms)
{
	uint32_t i = (uint32_t)(key >> 32) & r->mask;
	for (int probe = 0; probe < PROBES; probe++, i = (i + 1) & r->mask) {
		struct rate_limit_entry *e = &r->table[i];
		uint64_t k = atomic_load_explicit(&e->key, memory_order_acquire);
		if (k == key)
			return e;
		if (k == 0) {
			/* Claim it with a full bucket; another worker may win the
			 * slot, for this agent or another. */
			uint64_t full = r->burst_milli << MS_BITS | (now_ms & MS_MASK);
			atomic_store_explicit(&e->state, full, memory_order_relaxed);
			uint64_t expected = 0;
			if (atomic_compare_exchange_strong_explicit(&e->key, &expected, key,
								    memory_order_release,
								    memory_order_acquire) ||
			    expected == key)
				return e;
		}
	}
	return NULL; /* full around here: let it through */
}

uint32_t rate_limit_take(struct rate_limit *r, const char *org, size_t org_len,
			 const char *agent, size_t agent_len, uint64_t now_ms)
{
	if (!r->rate_milli)
		return 0;
	struct rate_limit_entry *e = find(r, hash_key(r, org, org_len, agent, agent_len), now_ms);
	if (!e)
		return 0;
	uint64_t old = atomic_load_explicit(&e->state, memory_order_relaxed);
	for (;;) {
		uint64_t tokens = old >> MS_BITS, last = old & MS_MASK;
		uint64_t elapsed = ((now_ms & MS_MASK) - last) & MS_MASK; /* wraps after 35 years */
		if (elapsed > 1000000000u)
			elapsed = 1000000000u; /* keeps the product below 2^64 */
		/* rate_milli thousandths of a report per second, in thousandths. */
		uint64_t refill = elapsed * r->rate_milli / 1000, next_last;
		tokens += refill;
		if (tokens >= r->burst_milli) {
			tokens = r->burst_milli;
			next_last = now_ms; /* full: time past this point is not owed */
		} else {
			/* Advance only by the time that made whole thousandths, so
			 * slow rates lose nothing to rounding. */
			next_last = last + refill * 1000 / r->rate_milli;
		}
		if (tokens < 1000) {
			uint64_t wait = ((1000 - tokens) * 1000 + r->rate_milli - 1) / r->rate_milli;
			return wait ? (uint32_t)wait : 1;
		}
		uint64_t next = (tokens - 1000) << MS_BITS | (next_last & MS_MASK);
		if (atomic_compare_exchange_weak_explicit(&e->state, &old, next, memory_order_relaxed,
							  memory_order_relaxed))
			return 0;
	}
}
