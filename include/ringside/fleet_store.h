/*
 * The fleet store (DESIGN.md "Ingest"): each agent's latest accepted report,
 * as an opaque blob (the codec's compact form), published by any worker and
 * read by any worker without locks: no mutex, no spinning on a lock, no
 * syscall, no malloc after init, bounded work per call, and no thread ever
 * waits for another.
 *
 * Agents are keyed by (organization id, agent id), each 1..63 bytes. An
 * agent takes one slot of a fixed table on its first publish and keeps it
 * until it is forgotten (fleet_forget: silent past a cutoff the caller
 * chooses); the slot then serves a later new agent. Publishing copies the
 * blob into a fresh block and swaps the agent's snapshot pointer: readers
 * see the old snapshot or the new one, whole, never a mix.
 *
 * Reclamation is quiescent-state based (QSBR): a snapshot a reader got from
 * fleet_lookup or fleet_snapshot_at stays valid, unchanged, until that
 * reader's worker next calls fleet_quiescent (or fleet_offline), even if it
 * is replaced or its agent forgotten meanwhile. Every worker record
 * 0..workers-1 must therefore call fleet_quiescent once per loop pass (the
 * worker's timer tick guarantees passes), or be offline (fleet_offline)
 * whenever it does not pass; a record that does neither holds back the
 * reuse of every replaced snapshot and forgotten slot, and publishes then
 * fail with -ENOSPC once blob memory runs out. The proof sketch is in
 * src/fleet/store.c.
 *
 * A thread other than the workers (the main thread saving the fleet while
 * they run, include/ringside/fleet_persist.h) takes a record of its own:
 * make the store with one record more than there are workers, put that
 * record offline (fleet_offline) before the workers start, and bracket
 * each use with fleet_online ... fleet_offline. Records start online.
 *
 * Memory: one MAP_NORESERVE mapping of memory_bytes, touched lazily, cut
 * into 192 KiB chunks; a chunk is carved on demand into blocks of one size
 * class and stays in that class. Classes go in half-power steps, 512 B,
 * 768 B, 1 KiB, 1.5 KiB ... 48 KiB, 64 KiB (each divides a chunk), so a
 * block wastes at most a third of itself; a block holds the 64-byte
 * snapshot header and the blob. A publish takes the smallest class that
 * fits, else a free block of a larger class. Because carved memory never
 * changes class, size memory_bytes with headroom over (agents x typical
 * block): a fleet whose blob sizes drift far can strand free blocks in
 * classes it no longer uses.
 */
#ifndef RINGSIDE_FLEET_STORE_H
#define RINGSIDE_FLEET_STORE_H

#include <stddef.h>
#include <stdint.h>

#define FLEET_ID_MAX 63 /* bytes of an organization or agent id */
#define FLEET_CLASSES 15 /* 512 B, 768 B, 1 KiB, 1.5 KiB, ... 48 KiB, 64 KiB */
#define FLEET_CLASS_MAX (64u * 1024)
#define FLEET_CHUNK (3u * FLEET_CLASS_MAX) /* 192 KiB: every class divides it */
#define FLEET_SNAPSHOT_HDR 64
#define FLEET_BLOB_MAX (FLEET_CLASS_MAX - FLEET_SNAPSHOT_HDR) /* 65 472 bytes */
#define FLEET_MAX_AGENTS (1u << 24)
#define FLEET_MAX_WORKERS 1024u
#define FLEET_MAX_MEMORY ((size_t)1 << 39) /* block ids are 256-byte units in 32 bits */

/*
 * One agent's snapshot, at the start of its block; the blob follows.
 * Every field is written before the snapshot is published and never
 * changes while any reader may hold it. 64 bytes, then the blob, which
 * starts 64-byte aligned.
 */
struct fleet_snapshot {
	const char *org;      /* org_len bytes and a NUL, in the agent table */
	const char *agent;    /* agent_len bytes and a NUL, likewise */
	int64_t received_ms;  /* now_ms of the publish */
	uint32_t len;         /* bytes of data */
	uint32_t slot;        /* the agent's slot (see fleet_snapshot_at) */
	uint8_t org_len;
	uint8_t agent_len;
	uint8_t reserved[6];
	uint64_t born;        /* the agent's link number (see fleet_links) */
	uint8_t spare[16];
	unsigned char data[]; /* the blob */
};

/* Private to src/fleet/store.c. */
struct fleet_shared;
struct fleet_worker;
struct fleet_agent;

/* Caller-owned; all of it read-only after init except through the
 * functions below. */
struct fleet_store {
	struct fleet_shared *sh;      /* the words every worker may write */
	struct fleet_worker *workers; /* one cache-line-aligned record each */
	struct fleet_agent *agents;   /* max_agents slots */
	_Atomic uint32_t *bucket;     /* chain heads: slot + 1, or 0 */
	_Atomic uint32_t *slot_link;  /* free-stack links of agent slots */
	_Atomic uint32_t *link;       /* per 256-byte unit: free-stack and limbo links */
	uint8_t *chunk_class;         /* per chunk, set when it is carved */
	unsigned char *mem;           /* the blob mapping */
	size_t mem_bytes;             /* whole chunks */
	size_t bucket_bytes, agents_bytes, link_bytes, slot_link_bytes, chunk_class_bytes;
	uint32_t chunks;
	uint32_t bucket_mask;
	uint32_t max_agents;
	uint32_t nworkers;
	uint64_t key[2];              /* SipHash key, drawn at init */
};

/*
 * Allocates everything the store will ever use: the agent table and its
 * index (4 x max_agents chain heads, rounded up to a power of two), the
 * per-worker records, and the blob mapping (memory_bytes rounded down to
 * whole 192 KiB chunks). Draws the hash key from getrandom. Returns 0,
 * -EINVAL (max_agents 0 or over FLEET_MAX_AGENTS, workers 0 or over
 * FLEET_MAX_WORKERS, memory_bytes under one chunk or over
 * FLEET_MAX_MEMORY), -ENOMEM, or getrandom's negative errno.
 */
int fleet_store_init(struct fleet_store *s, uint32_t max_agents, uint32_t workers,
		     size_t memory_bytes);

/* Frees everything; no worker may use the store any more. Harmless on a
 * zeroed or finished store. Every snapshot pointer dies with it. */
void fleet_store_fini(struct fleet_store *s);

/*
 * Worker `worker` makes len bytes at blob the latest snapshot of the agent
 * (org, agent), received at now_ms; the blob is copied. The agent takes a
 * slot on its first publish (or its first since it was forgotten). Returns:
 *   0        published; readers now find this snapshot, or a later one,
 *            or nothing once a fleet_forget with a cutoff above now_ms has
 *            forgotten the agent;
 *   -EINVAL  an id empty or over FLEET_ID_MAX bytes, or worker out of range;
 *   -EMSGSIZE len over FLEET_BLOB_MAX (answer 413);
 *   -ENOSPC  the agent is new and all max_agents slots are taken (those
 *            of forgotten agents serve again once every worker has passed
 *            a quiescent state), or blob memory is exhausted even after
 *            reclaiming what this worker may (answer 503;
 *            fleet_agent_count tells which: a full table has max_agents
 *            agents, or nearly, while forgotten slots wait).
 * On any error nothing changed: the agent's previous snapshot, if any,
 * stays. A publish racing a fleet_forget of its agent is never lost:
 * either the forget loses and the agent stays, with this snapshot, or the
 * forget wins first and this publish links the agent anew. Snapshot
 * pointers this worker holds stay valid (publishing is not a quiescent
 * state). Bounded work: a hash, a chain walk, a copy, a few steps of
 * reclamation.
 */
int fleet_publish(struct fleet_store *s, uint32_t worker, const char *org, size_t org_len,
		  const char *agent, size_t agent_len, const void *blob, size_t len,
		  int64_t now_ms);

/*
 * The latest snapshot of agent (org, agent), or NULL if the agent is
 * unknown or forgotten (or its first publish is still under way, or the
 * ids are invalid). The snapshot stays valid and unchanged until
 * `worker`'s next fleet_quiescent or fleet_offline, even if it is replaced
 * or its agent forgotten meanwhile.
 */
const struct fleet_snapshot *fleet_lookup(struct fleet_store *s, uint32_t worker,
					  const char *org, size_t org_len,
					  const char *agent, size_t agent_len);

/*
 * Iteration for the fleet exposition: slots 0 .. fleet_agent_slots(s)-1
 * (a high-water mark: it only grows) hold every agent. fleet_snapshot_at
 * returns slot i's latest snapshot, or NULL for a slot without one (not
 * yet published, forgotten, or free); same validity rule as fleet_lookup.
 * Each call is O(1), so an exposition may stop and resume at any slot,
 * even across quiescent states.
 *
 * An agent has one slot at a time, so a pass over the slots meets each
 * agent once, except one that is forgotten and links anew (a publish
 * after its forget) while the pass runs: its new slot may lie ahead of
 * the pass, which then meets it twice, first with its old report. To
 * exclude that, note fleet_links(s) when the pass starts and skip every
 * snapshot whose `born` is above it: those agents were linked during the
 * pass (they show up in the next one). With that rule a pass never
 * returns one agent twice (proof in src/fleet/store.c).
 */
uint32_t fleet_agent_slots(struct fleet_store *s);
const struct fleet_snapshot *fleet_snapshot_at(struct fleet_store *s, uint32_t worker,
					       uint32_t i);

/* Agents linked so far, ever: every link of an agent into the index
 * (a first publish, or the first after a forget) takes the next number,
 * 1, 2, ..., as its snapshots' `born`. Numbers skipped by a first publish
 * that lost a race are never used. */
uint64_t fleet_links(struct fleet_store *s);

/* Agents in the index now: linked and not forgotten (exact once the
 * publishes and forgets under way have returned). */
uint32_t fleet_agent_count(struct fleet_store *s);

/*
 * The sweep for silent agents, to be called from a worker's loop (it is
 * not a quiescent state): visits `budget` slots (at most
 * fleet_agent_slots), starting at *cursor and wrapping at
 * fleet_agent_slots, and forgets each agent whose latest snapshot has
 * received_ms < older_than_ms: the agent leaves the index at once
 * (fleet_lookup and fleet_snapshot_at return NULL for it, and
 * fleet_agent_count drops), its snapshot's block is freed and its slot
 * returns to the free slots once no reader can hold them (QSBR, as for a
 * replaced snapshot). Stores where to resume in *cursor (start it at 0);
 * returns how many agents it forgot.
 *
 * Any number of workers may sweep at once, each with its own cursor, over
 * the same slots or not: a forget is decided by one compare-and-swap on
 * the agent's snapshot pointer, which the publishes of that agent also
 * go through, so each agent is forgotten once, and a publish racing it is
 * kept (see fleet_publish). Work per call: `budget` slot reads, and per
 * agent forgotten a chain walk and a few compare-and-swaps.
 */
uint32_t fleet_forget(struct fleet_store *s, uint32_t worker, int64_t older_than_ms,
		      uint32_t budget, uint32_t *cursor);

/* Agents forgotten so far, by every worker's fleet_forget. */
uint64_t fleet_forgotten(struct fleet_store *s);

/* Bytes of the agents' latest snapshots (their data, not the blocks
 * holding them). */
uint64_t fleet_snapshot_bytes(struct fleet_store *s);

/* Bytes of the mapping carved into blocks so far (memory in use, free
 * blocks included: a carved chunk stays carved). */
size_t fleet_memory_carved(struct fleet_store *s);

/*
 * `worker` holds no snapshot pointer: every pointer it got before is dead.
 * Call once per loop pass. Announces the quiescent state, then frees a
 * bounded number of the blocks and slots this worker retired that no
 * worker can still hold. Never waits.
 */
void fleet_quiescent(struct fleet_store *s, uint32_t worker);

/*
 * For a worker about to stop passing (it exits, or will block without a
 * timer): like fleet_quiescent, then no longer holds back reclamation.
 * It must call fleet_online before it uses the store again
 * (fleet_quiescent on an offline worker does fleet_online first). Blocks
 * and slots it retired and has not yet freed wait until it passes again.
 */
void fleet_offline(struct fleet_store *s, uint32_t worker);
void fleet_online(struct fleet_store *s, uint32_t worker);

#endif
