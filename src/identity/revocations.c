/*
 * The revocation table (include/ringside/revocations.h): open addressing
 * with linear probing over a fixed array, at most half full. Readers are
 * lock-free; the rare writers take a mutex.
 *
 * A slot is {key, until, cutoff}: a token whose (kind, id) hashes to key
 * is dead while now < until + REUSE_AFTER_S if its iat < cutoff. A
 * revoked jti is {exp, +inf}: dead until an hour past its exp (beyond
 * jwt_verify's leeway); an agent or client {+inf, cut-off}.
 * A key, once in a slot, stays (a probe chain is never broken); a slot of
 * a jti long expired is reused for a new key. The writer stores until and
 * cutoff before the key (release), so a reader that sees the key
 * (acquire) sees its values. A reader that read the old key of a slot
 * being reused may see the new values: it then takes a long-expired
 * token for revoked, which jwt_verify refuses anyway.
 */
#include "ringside/revocations.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "ringside/jwt.h"
#include "ringside/siphash.h"

/* A jti's slot is reused this long after its exp: longer than any
 * leeway jwt_verify allows past exp. */
#define REUSE_AFTER_S 3600

struct slot {
	_Atomic uint64_t key; /* hash | 1; 0: never used */
	_Atomic int64_t until;
	_Atomic int64_t cutoff;
};

struct revocations {
	struct slot *slots;
	uint32_t mask;
	uint32_t capacity;
	_Atomic uint32_t held; /* slots with a key */
	uint64_t seed[2];
	pthread_mutex_t lock;
};

int revocations_init(struct revocations **out, uint32_t capacity)
{
	struct revocations *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	uint32_t n = 1024;
	while (n < 2 * (uint64_t)capacity)
		n <<= 1;
	r->mask = n - 1;
	r->capacity = capacity;
	r->slots = mmap(NULL, (size_t)n * sizeof *r->slots, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->slots == MAP_FAILED ||
	    getrandom(r->seed, sizeof r->seed, 0) != (ssize_t)sizeof r->seed) {
		if (r->slots != MAP_FAILED)
			munmap(r->slots, (size_t)n * sizeof *r->slots);
		free(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

void revocations_fini(struct revocations *r)
{
	if (!r)
		return;
	munmap(r->slots, ((size_t)r->mask + 1) * sizeof *r->slots);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static uint64_t key_of(const struct revocations *r, enum revocation_kind kind, const char *id,
		       size_t len)
{
	char buf[1 + JWT_ID_CAP];
	buf[0] = (char)kind;
	memcpy(buf + 1, id, len);
	return siphash13(r->seed, buf, 1 + len) | 1;
}

static int64_t wall_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return ts.tv_sec;
}

static void raise_to(_Atomic int64_t *v, int64_t to)
{
	if (atomic_load_explicit(v, memory_order_relaxed) < to)
		atomic_store_explicit(v, to, memory_order_release);
}

int revocations_add(struct revocations *r, enum revocation_kind kind, const char *id,
		    size_t len, int64_t value)
{
	if (!len || len >= JWT_ID_CAP ||
	    (kind != REVOKED_TOKEN && kind != REVOKED_AGENT && kind != REVOKED_CLIENT))
		return -EINVAL;
	uint64_t key = key_of(r, kind, id, len);
	bool token = kind == REVOKED_TOKEN;
	int64_t until = token ? value : INT64_MAX, cutoff = token ? INT64_MAX : value;
	int64_t stale = wall_seconds() - REUSE_AFTER_S;
	int rc = 0;
	pthread_mutex_lock(&r->lock);
	struct slot *reuse = NULL;
	for (uint32_t i = (uint32_t)key & r->mask;; i = (i + 1) & r->mask) {
		struct slot *s = &r->slots[i];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_relaxed);
		if (k == key) {
			raise_to(&s->until, until);
			raise_to(&s->cutoff, cutoff);
			goto out;
		}
		if (k && !reuse && atomic_load_explicit(&s->until, memory_order_relaxed) < stale)
			reuse = s;
		if (k)
			continue;
		if (!reuse) {
			if (atomic_load_explicit(&r->held, memory_order_relaxed) >= r->capacity) {
				rc = -ENOSPC;
				goto out;
			}
			reuse = s;
			atomic_fetch_add_explicit(&r->held, 1, memory_order_relaxed);
		}
		atomic_store_explicit(&reuse->until, until, memory_order_relaxed);
		atomic_store_explicit(&reuse->cutoff, cutoff, memory_order_relaxed);
		atomic_store_explicit(&reuse->key, key, memory_order_release);
		goto out;
	}
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int revocations_apply_notice(struct revocations *r, const char *payload, size_t len)
{
	/* "<kind> <value> <id>": one kind byte, a space, digits, a space. */
	if (len < 5 || payload[1] != ' ')
		return -EINVAL;
	size_t i = 2;
	int64_t value = 0;
	if (payload[i] < '0' || payload[i] > '9')
		return -EINVAL;
	while (i < len && payload[i] >= '0' && payload[i] <= '9') {
		if (value > (INT64_MAX - 9) / 10)
			return -EINVAL;
		value = value * 10 + (payload[i++] - '0');
	}
	if (i >= len - 1 || payload[i] != ' ')
		return -EINVAL;
	i++;
	return revocations_add(r, (enum revocation_kind)payload[0], payload + i, len - i, value);
}

/* The slot of (kind, id), or NULL. */
static const struct slot *find(const struct revocations *r, enum revocation_kind kind,
			       const char *id, size_t len)
{
	if (!len || len >= JWT_ID_CAP)
		return NULL;
	uint64_t key = key_of(r, kind, id, len);
	for (uint32_t i = (uint32_t)key & r->mask;; i = (i + 1) & r->mask) {
		const struct slot *s = &r->slots[i];
		uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
		if (k == key)
			return s;
		if (!k)
			return NULL;
	}
}

static bool dead(const struct revocations *r, enum revocation_kind kind, const char *id,
		 size_t len, int64_t iat, int64_t now)
{
	const struct slot *s = find(r, kind, id, len);
	if (!s)
		return false;
	/* A revoked jti stays dead past its exp until its slot may be
	 * reused: jwt_verify still accepts a token for its leeway after exp,
	 * and a revocation must not end before the token does. (now - until
	 * is only computed when now >= until: no overflow.) */
	int64_t until = atomic_load_explicit(&s->until, memory_order_acquire);
	return (now < until || now - until < REUSE_AFTER_S) &&
	       iat < atomic_load_explicit(&s->cutoff, memory_order_acquire);
}

bool revocations_token_dead(const struct revocations *r, const struct jwt_claims *c,
			    int64_t now)
{
	if (!atomic_load_explicit(&r->held, memory_order_relaxed))
		return false;
	return dead(r, REVOKED_TOKEN, c->jti, strlen(c->jti), c->iat, now) ||
	       dead(r, REVOKED_AGENT, c->sub, strlen(c->sub), c->iat, now) ||
	       (c->client_id[0] &&
		dead(r, REVOKED_CLIENT, c->client_id, strlen(c->client_id), c->iat, now));
}

bool revocations_client_dead(const struct revocations *r, const char *client_id, size_t len,
			     int64_t iat)
{
	return dead(r, REVOKED_CLIENT, client_id, len, iat, INT64_MIN);
}

uint32_t revocations_count(const struct revocations *r)
{
	return atomic_load_explicit(&r->held, memory_order_relaxed);
}
