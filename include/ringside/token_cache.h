/*
 * Per-worker cache of verified agent tokens (DESIGN.md "JWT": "Verified
 * tokens may be cached per worker until their expiry or a revocation").
 *
 * jwt_verify costs two base64url and JSON decodes and a signature check on every
 * request; an agent sends the same token for its whole lifetime, so after
 * its first sight a worker answers from here: one keyed hash of the token
 * and a look at one cache line of tags. One cache per worker: no locks,
 * no atomics, no allocation after init.
 *
 * Entries are keyed by SipHash-2-4 with a 128-bit output under a random
 * key drawn at init, never by a plain hash: a client that cannot learn the
 * key cannot make a token collide with someone else's cached one (a
 * collision would be an authentication bypass, not a slowdown).
 *
 * Layout: 4-way set associative; a set is the four 128-bit tags (one
 * cache line), their deadlines and insertion times (one line) and the
 * four claims (288 bytes each): 1280 bytes a set, 320 an entry. A full
 * set replaces an entry past its deadline, else the oldest.
 */
#ifndef RINGSIDE_TOKEN_CACHE_H
#define RINGSIDE_TOKEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ringside/jwt.h"

#define TOKEN_CACHE_WAYS 4
#define TOKEN_CACHE_MAX_AGE 300 /* seconds; default of max_age */

struct token_cache_set {
	uint64_t tag[TOKEN_CACHE_WAYS][2]; /* 64 bytes */
	int64_t deadline[TOKEN_CACHE_WAYS]; /* hit while now < deadline; 0: empty */
	int64_t inserted[TOKEN_CACHE_WAYS];
	struct jwt_claims claims[TOKEN_CACHE_WAYS];
};

struct token_cache {
	struct token_cache_set *sets; /* 64-byte aligned */
	uint32_t set_mask;            /* sets - 1 */
	uint32_t entries;
	int64_t max_age; /* seconds an entry may serve; may be changed */
	uint8_t key[16]; /* SipHash key */
};

/*
 * Maps entries slots (a power of two, at least TOKEN_CACHE_WAYS and at
 * most 1 << 24; 256 bytes each: 4096 = 1 MiB), touched as they are used,
 * and draws the hash key from getrandom.
 * max_age starts at TOKEN_CACHE_MAX_AGE. Returns 0, -EINVAL, -ENOMEM, or
 * the negative errno of getrandom.
 */
int token_cache_init(struct token_cache *c, uint32_t entries);

/* The same with a given hash key: for tests, which need collisions to be
 * reproducible. A server uses token_cache_init. */
int token_cache_init_keyed(struct token_cache *c, uint32_t entries,
			   const uint8_t key[16]);

/* Frees the slots; harmless on a zeroed or finished cache. */
void token_cache_fini(struct token_cache *c);

/*
 * The claims cached for these len token bytes, or NULL. A hit requires
 * now < the token's exp and now < put time + max_age, so an entry never
 * outlives its token and a revocation that does not reach this worker
 * (see forget) still ends within max_age. The pointer is valid until the
 * next put, forget or fini on this cache.
 */
const struct jwt_claims *token_cache_get(struct token_cache *c,
					 const char *token, size_t len,
					 int64_t now);

/* Caches claims (copied) for a token jwt_verify has just accepted at now.
 * Does nothing if claims->exp <= now. Replaces the token's entry if it is
 * cached, else an empty or dead entry of its set, else the oldest. */
void token_cache_put(struct token_cache *c, const char *token, size_t len,
		     const struct jwt_claims *claims, int64_t now);

/* Drops every entry whose jti is jti (token revocation, RFC 7009).
 * O(entries). Returns the number dropped. */
size_t token_cache_forget_jti(struct token_cache *c, const char *jti);

/* Drops every entry whose sub is sub (an agent decommissioned: all its
 * tokens are revoked at once). O(entries). Returns the number dropped. */
size_t token_cache_forget_sub(struct token_cache *c, const char *sub);

#endif
