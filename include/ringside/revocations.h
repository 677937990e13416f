/*
 * What ends tokens before their exp, held in memory by every Ringside
 * instance and checked on every authenticated request (every worker, the
 * token caches' hits included) and every introspection.
 *
 * Three kinds of entry, each (kind, id) -> a Unix second:
 *   - REVOKED_TOKEN  id = jti:       the token is dead; the value is its
 *                                    exp; an hour after it (past any
 *                                    jwt leeway) the entry may be
 *                                    forgotten (the token is dead anyway);
 *   - REVOKED_AGENT  id = sub:       tokens of the agent issued (iat)
 *                                    before the value are dead (suspended
 *                                    or decommissioned);
 *   - REVOKED_CLIENT id = client_id: likewise for a revoked credential.
 * An entry's value only grows, so applying the same news twice, or old
 * news after new, changes nothing: local writes, NOTIFY and the periodic
 * re-read may arrive in any order.
 *
 * The database holds the truth (002_identity.sql): a change is stored
 * first, then added here by the worker that made it (at once, before it
 * answers), and announced to the other instances with NOTIFY
 * ringside_revocations, payload "<kind> <value> <id>" (kind 'j', 'a',
 * 'c'), which their sync thread (identity_sync.h: one thread, its own
 * connection, LISTEN) applies; it also re-reads everything at each
 * (re)connect and every --revocation-resync, so a lost notification or a
 * database outage cannot keep a revoked token alive once the database
 * answers again. Nothing is removed when the database is away: entries
 * held stay held.
 *
 * Readers never lock or write (a few hash probes); writers (rare) take a
 * mutex. A fixed table of --revocation-capacity entries, touched as used.
 */
#ifndef RINGSIDE_REVOCATIONS_H
#define RINGSIDE_REVOCATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jwt_claims;
struct revocations;

enum revocation_kind {
	REVOKED_TOKEN = 'j',
	REVOKED_AGENT = 'a',
	REVOKED_CLIENT = 'c',
};

/* capacity: entries held at most. 0 or -ENOMEM. */
int revocations_init(struct revocations **out, uint32_t capacity);
void revocations_fini(struct revocations *r);

/* Any thread. Returns 0, or -ENOSPC when the table is full of live
 * entries (the caller answers 503; the database still has it) or -EINVAL
 * (an empty id, or one over 63 bytes). */
int revocations_add(struct revocations *r, enum revocation_kind kind, const char *id,
		    size_t len, int64_t value);

/* Applies one NOTIFY payload "<kind> <value> <id>"; -EINVAL if it is not
 * one. */
int revocations_apply_notice(struct revocations *r, const char *payload, size_t len);

/* Lock-free, any thread: is the token (its jti, sub and client_id, its
 * iat) revoked at Unix second now? */
bool revocations_token_dead(const struct revocations *r, const struct jwt_claims *c,
			    int64_t now);

/* Is the client's credential revoked (cut-off <= iat): for a token
 * request's client authentication, checked besides the database row. */
bool revocations_client_dead(const struct revocations *r, const char *client_id, size_t len,
			     int64_t iat);

/* Live entries now (for /metrics and tests). */
uint32_t revocations_count(const struct revocations *r);

#endif
