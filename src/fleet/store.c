/*
 * The fleet store; the contract is include/ringside/fleet_store.h.
 *
 * Shared state and who writes it
 * ------------------------------
 *   agents[]      slot: the agent's ids and hash (written while the slot
 *                 is private, before it is linked), `next`, its link in
 *                 the index, and `cur`, its snapshot pointer (swapped by
 *                 whichever worker publishes, or set to DEAD by the one
 *                 that forgets it).
 *   bucket[]      the index: chain heads, slot + 1 or 0.
 *   sh->free[c]   Treiber stack of free blocks of class c, any worker
 *                 pushes and pops. The head is one 64-bit word: block id
 *                 in the low half, a counter bumped by every successful
 *                 CAS in the high half, so a pop that read head A -> B
 *                 cannot succeed after A was popped and pushed back (ABA)
 *                 unless exactly 2^32 successful CASes on that head happened
 *                 while it stood between its load and its CAS.
 *                 Links live beside the blocks (link[], one per 256-byte
 *                 unit), never in them: a stale popper may read a link of a
 *                 block now holding someone's snapshot, and that read must
 *                 be an atomic one of a word nobody else relies on.
 *   sh->slot_free the same for free agent slots (links in slot_link[]).
 *   sh->epoch     the QSBR grace-period counter.
 *   workers[w].qs the epoch worker w saw at its last quiescent state
 *                 (QS_OFFLINE while offline), written by w only.
 * Everything else in a worker record (block caches, limbo lists) is
 * private to that worker.
 *
 * Reclamation (QSBR) and why a block is never reused while a reader holds it
 * --------------------------------------------------------------------------
 * A publish swaps agents[i].cur to the new snapshot (CAS, acq_rel): the
 * old one is now unreachable for any later load of cur. The publisher puts
 * the old block on its own `pending` list. At its next quiescent call it
 * tags the whole pending list with g = fetch_add(epoch, 1) + 1 (acq_rel):
 * the unlink of each of those blocks is sequenced before that RMW. The tagged
 * list becomes a limbo batch, which only this worker will free, and only
 * once every worker v (itself included) has qs[v] >= g or is offline:
 *
 *   - v stored qs[v] = q >= g (release) at a quiescent call after loading
 *     q from epoch (acquire). Value q was written by the RMW that produced q,
 *     which is our RMW or one after it in epoch's modification order, hence
 *     in our RMW's release sequence: the unlinks happen-before v's load of
 *     epoch, so every load of cur v makes after that quiescent state reads
 *     the new pointer or a later one, never the freed block.
 *   - Every pointer v got before that quiescent state is dead by contract,
 *     and v's reads of the block are sequenced before its release store of
 *     qs[v]; our acquire load of qs[v] makes them happen-before the free,
 *     so the next owner's writes never race with them.
 *   - Offline: v's last reads precede its release store of QS_OFFLINE, as
 *     above. Coming online, v stores its qs and then issues a seq_cst
 *     fence before touching the store; a reclaimer issues a seq_cst fence
 *     after its epoch RMW and before it reads any qs. Of the two fences one
 *     is first in the total order: if v's is, the reclaimer reads v's new
 *     qs (< g unless v saw epoch >= g); if the reclaimer's is, v's later
 *     loads of cur see the unlink. Either way v never gets the block.
 *   - The publisher's own qs reaches g only at its own next quiescent
 *     call, so publishing never frees what the publisher itself holds.
 *
 * Only the publisher that replaced a snapshot, or the sweeper that
 * forgot it, retires it (each CAS on cur hands its old pointer to exactly
 * one caller), so no block is freed twice. Free blocks go to a small
 * per-worker cache first (most publishes free into and allocate from it,
 * off the shared CAS), else the shared stack. Work per call is bounded:
 * quiescent frees at most RECLAIM_STEP blocks and slots, a publish at most
 * PUBLISH_RECLAIM, the rest waits for later calls; a scan of the qs words
 * is O(workers). Every reader, sweeper and publisher works between two
 * quiescent states of its record, so the same argument covers every
 * pointer below: a retired thing is reused only after everyone who could
 * have reached it has passed.
 *
 * The index, and why it chains
 * ----------------------------
 * A lock-free Harris-Michael list per bucket, through the slots
 * themselves (M. Michael, "High Performance Dynamic Lock-Free Hash Tables
 * and List-Based Sets", SPAA 2002), each chain sorted by (hash, ids) so an
 * agent has one place. A link word is slot + 1 of the next node, with MARK
 * set once its node is deleted; a marked link never changes again (an
 * insert after, or an unlink of the successor, CASes an unmarked one), so
 * deletion is: mark, then CAS the predecessor's link past the node. Any
 * list_find that meets a marked node unlinks it, and whoever's CAS does it
 * retires the slot: exactly one unlink per node. An insert CASes the
 * predecessor's link from the successor it saw to the new node, so two
 * first publishes of one agent cannot both link it: the loser's CAS fails,
 * it walks again and finds the winner's node. Lookups walk without
 * writing; a node unlinked under them is still readable, and its frozen
 * link leads back into the chain or to its end, which is why a slot waits
 * a grace period before reuse.
 *
 * Open addressing was the first design and is what this replaced: its
 * deletions must leave tombstones, since backward-shift deletion moves
 * entries under concurrent lookups (one that passed the hole before the
 * move and reaches the old place after it misses a present agent) and
 * inserts. Tombstones only go away where a probe can no longer need them,
 * and under churn they pile up: a simulation of 100 000 agents in 2^18
 * positions with every agent replaced ten times over, tombstones reused
 * by inserts and cleared at cluster ends, left 83 % of the positions
 * non-empty and a miss probing 23 positions (under 2 when fresh); without
 * reuse (which a lock-free insert cannot do safely: two first publishes of
 * one agent may then pick different tombstones) a miss probed 49 after two
 * turnovers, and kept growing.
 * Chains hold only live nodes and a few being unlinked, so a store that
 * churns for years probes as when it was new. Cost: a hit reads a head
 * word where it read an index entry, then the slot as before (its first
 * line holds hash, link and cur); with four heads an agent, a hit walks
 * 1.125 nodes on average at most.
 *
 * Forgetting, and publishing while it happens
 * -------------------------------------------
 * cur decides. A sweep reads cur = old, checks old->received_ms, and CASes
 * cur from old to DEAD; a publish CASes cur from whatever it read to its
 * snapshot, unless it read DEAD. So one of them is first: if the publish,
 * the sweep's CAS fails and the agent stays; if the sweep, the publish
 * sees DEAD, walks the index again, and links the agent anew in a fresh
 * slot. (ABA: old cannot come back into cur, being retired and not freed
 * while the sweep, between quiescent states, still holds it.) Then the
 * sweep retires old, marks the node's link and runs list_find for the
 * agent, which returns only after the node is unlinked (by this walk or
 * another). A node is marked only once DEAD, and a walk that meets the
 * agent's node DEAD but not yet marked marks it itself, so a publish
 * never waits for the sweep. Every agent has at most one unmarked node:
 * linking it anew needs a walk past the DEAD one, which unlinks it first.
 *
 * The counts: agents goes up when a node is linked and down when its cur
 * becomes DEAD, so it counts the linked, unforgotten nodes exactly.
 *
 * Why an exposition that skips born > fleet_links() at its start never
 * sees one agent twice: two slots showing agent K in one pass hold two
 * of its nodes, n1 and a later n2, and n2.born <= the mark B. n2's link
 * number was taken (acq_rel RMW on links) after its walk saw n1 DEAD,
 * through acquire reads of the release CASes on cur, the mark and the
 * unlink; the pass read links = B >= n2.born (acquire) before its loads of
 * n1's cur, which therefore see DEAD or a later value: n1's slot free, or
 * another node's. Of K's nodes with born <= B, only the newest can be
 * alive during the pass.
 */
#include "ringside/fleet_store.h"

#include "ringside/siphash.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#if defined(__SANITIZE_ADDRESS__)
#define FLEET_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FLEET_ASAN 1
#endif
#endif
#ifdef FLEET_ASAN
/* Free blocks are poisoned, and a snapshot's bytes past its blob too: a
 * read of a reclaimed block, or past len, is reported at once. */
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define NIL UINT32_MAX
#define UNIT_SHIFT 8 /* block ids count 256-byte units (768 = 3 units) */
#define QS_OFFLINE UINT64_MAX
#define BATCHES 16         /* limbo batches per worker; more are merged */
/* Free blocks a worker keeps per class: up to CACHE_MAX and about
 * CACHE_BYTES, at least 2. So a worker holds at most about 0.7 MiB of free
 * blocks the others cannot take (count it in memory_bytes' headroom). */
#define CACHE_MAX 64
#define CACHE_BYTES 32768
#define RECLAIM_STEP 256   /* blocks and slots freed per quiescent call, at most */
#define PUBLISH_RECLAIM 2  /* per publish: more than it retires, so limbo drains */
#define MARK 0x80000000u   /* in a link word: its node is deleted */
/* Chain heads per agent slot, rounded up to a power of two: 4-byte heads,
 * so 16 bytes an agent as the 8-byte open-addressing entries at twice the
 * agents were. A hit walks 1 + load / 2 nodes on average: 1.125 at most. */
#define HEADS_PER_AGENT 4

struct fleet_shared {
	_Alignas(64) _Atomic uint64_t epoch;
	_Alignas(64) _Atomic uint64_t chunk_next; /* chunks carved */
	_Alignas(64) _Atomic uint64_t slot_free;  /* tagged head of free slots */
	_Atomic uint32_t slot_next;               /* slots handed out: high-water mark */
	_Atomic uint32_t agents;                  /* linked, not forgotten */
	_Atomic uint64_t links;                   /* fleet_links */
	_Alignas(64) _Atomic uint64_t forgotten;  /* fleet_forgotten */
	struct {
		_Alignas(64) _Atomic uint64_t head;   /* tagged head: counter | block id */
	} free[FLEET_CLASSES];
};
_Static_assert(sizeof(struct fleet_shared) == 64 * (4 + FLEET_CLASSES),
	       "one cache line per shared word");

/* A limbo batch: blocks head..tail (linked through link[]) and agent slots
 * shead..stail (through slot_link[]), either chain possibly NIL, retired
 * before the epoch RMW that returned `epoch`. 24 bytes. */
struct fleet_batch {
	uint32_t head, tail;
	uint32_t shead, stail;
	uint64_t epoch;
};

struct fleet_worker {
	_Alignas(64) _Atomic uint64_t qs; /* line 0: read by every reclaimer */
	/* The rest is private to the worker. */
	_Alignas(64) uint64_t safe;       /* min qs at its last scan */
	/* Bytes of latest snapshots this worker published, less those of the
	 * ones it replaced or forgot (any worker's): summed over the workers,
	 * the bytes held now. Written by the worker only; read by scrapes. */
	_Atomic int64_t snapshot_bytes;
	uint32_t pending_head, pending_tail; /* blocks retired since the last quiescent state */
	uint32_t spending_head, spending_tail; /* slots, likewise */
	uint32_t batch_first, batch_count;
	struct fleet_batch batch[BATCHES];
	uint32_t cache_n[FLEET_CLASSES];
	uint32_t cache[FLEET_CLASSES][CACHE_MAX];
};
_Static_assert(sizeof(struct fleet_worker) == 4416, "worker record: 69 cache lines");

/* An agent slot: 192 bytes, cache-line aligned, since publishers on any
 * worker write `cur`. A chain step reads the first line (cur, next, hash);
 * a hit, the ids too: an agent id of up to 38 bytes (a UUID) is in that
 * line, an organization id of up to 38 in the next, so a hit reads two
 * lines, as many as the index entry and slot of the open-addressing
 * design did. hash, born and the ids are written only while the slot is
 * private (before its link CAS) and read only after an acquire load of a
 * link to it or of a snapshot in it. */
struct fleet_agent {
	_Alignas(64) _Atomic(struct fleet_snapshot *) cur; /* NULL, a snapshot, or DEAD */
	_Atomic uint32_t next;    /* slot + 1 of the next node in the chain, 0 at its end; | MARK */
	uint32_t hash;            /* the SipHash's high half (the low bits pick the chain) */
	uint64_t born;
	uint8_t org_len, agent_len;
	char agent[FLEET_ID_MAX + 1];
	char org[FLEET_ID_MAX + 1];
};
_Static_assert(sizeof(struct fleet_agent) == 192, "agent slot: 3 cache lines");
_Static_assert(offsetof(struct fleet_agent, agent) + 38 <= 64 &&
		       offsetof(struct fleet_agent, org) + 38 <= 128,
	       "a hit on 36-byte ids reads two lines");
_Static_assert(FLEET_MAX_AGENTS < MARK, "a slot + 1 leaves the mark bit free");
_Static_assert(sizeof(struct fleet_snapshot) == FLEET_SNAPSHOT_HDR &&
		       offsetof(struct fleet_snapshot, data) == FLEET_SNAPSHOT_HDR,
	       "snapshot header: one cache line, then the blob");
_Static_assert(FLEET_BLOB_MAX + FLEET_SNAPSHOT_HDR <= FLEET_CLASS_MAX,
	       "the largest blob fits the largest class");
_Static_assert(FLEET_MAX_MEMORY >> UNIT_SHIFT < NIL, "block ids fit below NIL");

/* cur of a forgotten agent's slot until the slot is reused: never a
 * snapshot, never returned to a reader. */
static struct fleet_snapshot dead_snapshot;
#define DEAD (&dead_snapshot)

/* Clients choose agent ids: the key makes collisions unpredictable. The
 * org length byte first keeps ("ab", "c") apart from ("a", "bc"). */
static uint64_t hash_ids(const struct fleet_store *s, const char *org, size_t org_len,
			 const char *agent, size_t agent_len)
{
	unsigned char buf[1 + 2 * FLEET_ID_MAX];

	buf[0] = (unsigned char)org_len;
	memcpy(buf + 1, org, org_len);
	memcpy(buf + 1 + org_len, agent, agent_len);
	return siphash13(s->key, buf, 1 + org_len + agent_len);
}

/* ---- tagged Treiber stacks ----------------------------------------- */

static inline uint64_t tagged(uint64_t old_head, uint32_t id)
{
	return ((old_head >> 32) + 1) << 32 | id;
}

/* Pushes the chain first..last (already linked through link[]). The
 * release CAS publishes the links and, to the popper, everything the
 * pusher did before (its reads of a freed block among them). */
static void stack_push(_Atomic uint64_t *head, _Atomic uint32_t *link, uint32_t first,
		       uint32_t last)
{
	uint64_t h = atomic_load_explicit(head, memory_order_relaxed);

	do
		atomic_store_explicit(&link[last], (uint32_t)h, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(head, &h, tagged(h, first),
						      memory_order_acq_rel,
						      memory_order_relaxed));
}

/* Pops one id, or NIL. The link read may be stale (the block was popped
 * and reused meanwhile); the counter then makes the CAS fail. */
static uint32_t stack_pop(_Atomic uint64_t *head, _Atomic uint32_t *link)
{
	uint64_t h = atomic_load_explicit(head, memory_order_acquire);

	for (;;) {
		uint32_t top = (uint32_t)h;
		if (top == NIL)
			return NIL;
		uint32_t next = atomic_load_explicit(&link[top], memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(head, &h, tagged(h, next),
							  memory_order_acq_rel,
							  memory_order_acquire))
			return top;
	}
}

/* ---- blocks -------------------------------------------------------- */

static inline struct fleet_snapshot *block(const struct fleet_store *s, uint32_t id)
{
	return (struct fleet_snapshot *)(s->mem + ((size_t)id << UNIT_SHIFT));
}

/* Class c: 512 << c/2 bytes for even c, 768 << c/2 for odd c. */
static inline size_t class_bytes(unsigned cls)
{
	return (size_t)(cls & 1 ? 768 : 512) << (cls >> 1);
}

/* The smallest class holding the header and len bytes (len is at most
 * FLEET_BLOB_MAX): with k = ceil(log2(need)), 2^k fits, and so may
 * 3 * 2^(k-2), the class just below. */
static unsigned class_of(size_t len)
{
	size_t need = FLEET_SNAPSHOT_HDR + len;
	unsigned k, cls;

	if (need <= 512)
		return 0;
	k = 64 - (unsigned)__builtin_clzll((unsigned long long)need - 1);
	cls = 2 * (k - 9);
	return (size_t)3 << (k - 2) >= need ? cls - 1 : cls;
}

static inline unsigned class_of_block(const struct fleet_store *s, uint32_t id)
{
	return s->chunk_class[((size_t)id << UNIT_SHIFT) / FLEET_CHUNK];
}

static uint32_t cache_cap(unsigned cls)
{
	size_t n = CACHE_BYTES / class_bytes(cls);

	return n < 2 ? 2 : n > CACHE_MAX ? CACHE_MAX : (uint32_t)n;
}

static void block_free(struct fleet_store *s, struct fleet_worker *ws, uint32_t id)
{
	unsigned cls = class_of_block(s, id);

	POISON(block(s, id), class_bytes(cls));
	if (ws->cache_n[cls] == cache_cap(cls)) {
		/* Full: hand half of it to the shared stack in one CAS. */
		uint32_t half = cache_cap(cls) / 2, *c = ws->cache[cls];
		uint32_t base = ws->cache_n[cls] - half;
		for (uint32_t i = base; i + 1 < ws->cache_n[cls]; i++)
			atomic_store_explicit(&s->link[c[i]], c[i + 1], memory_order_relaxed);
		stack_push(&s->sh->free[cls].head, s->link, c[base], c[ws->cache_n[cls] - 1]);
		ws->cache_n[cls] = base;
	}
	ws->cache[cls][ws->cache_n[cls]++] = id;
}

/* Carves a fresh chunk into blocks of cls: one for the caller, some for
 * the worker's cache, the rest onto the shared stack as one chain. */
static uint32_t carve(struct fleet_store *s, struct fleet_worker *ws, unsigned cls)
{
	uint64_t c = atomic_load_explicit(&s->sh->chunk_next, memory_order_relaxed);

	do {
		if (c >= s->chunks)
			return NIL;
	} while (!atomic_compare_exchange_weak_explicit(&s->sh->chunk_next, &c, c + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	uint32_t units = (uint32_t)(class_bytes(cls) >> UNIT_SHIFT);
	uint32_t n = (uint32_t)(FLEET_CHUNK / class_bytes(cls)), i = 1;
	uint32_t first = (uint32_t)(c * (FLEET_CHUNK >> UNIT_SHIFT));

	/* Before any block of it is handed out: every later free of one is
	 * ordered after this by the handing out (cache, or the release push). */
	s->chunk_class[c] = (uint8_t)cls;
	POISON(block(s, first), FLEET_CHUNK);
	for (; i < n && ws->cache_n[cls] < cache_cap(cls); i++)
		ws->cache[cls][ws->cache_n[cls]++] = first + i * units;
	if (i < n) {
		for (uint32_t j = i; j + 1 < n; j++)
			atomic_store_explicit(&s->link[first + j * units], first + (j + 1) * units,
					      memory_order_relaxed);
		stack_push(&s->sh->free[cls].head, s->link, first + i * units,
			   first + (n - 1) * units);
	}
	return first;
}

/* A free block of class cls from the shared stack or a fresh chunk,
 * else of a larger class (a chunk once carved stays in its class, so a
 * full mapping may still have room above), or NIL. */
static uint32_t block_alloc_shared(struct fleet_store *s, struct fleet_worker *ws, unsigned cls)
{
	uint32_t id = stack_pop(&s->sh->free[cls].head, s->link);

	if (id == NIL)
		id = carve(s, ws, cls);
	for (unsigned c = cls + 1; id == NIL && c < FLEET_CLASSES; c++) {
		if (ws->cache_n[c])
			return ws->cache[c][--ws->cache_n[c]];
		id = stack_pop(&s->sh->free[c].head, s->link);
	}
	return id;
}

/* A free block of class cls, or NIL. Most publishes take the one the
 * last freed, from the cache: inlined, that costs no call. */
static inline uint32_t block_alloc(struct fleet_store *s, struct fleet_worker *ws, unsigned cls)
{
	if (ws->cache_n[cls])
		return ws->cache[cls][--ws->cache_n[cls]];
	return block_alloc_shared(s, ws, cls);
}

/* ---- reclamation --------------------------------------------------- */

static void retire(struct fleet_store *s, struct fleet_worker *ws, uint32_t id)
{
	atomic_store_explicit(&s->link[id], NIL, memory_order_relaxed);
	if (ws->pending_head == NIL)
		ws->pending_head = id;
	else
		atomic_store_explicit(&s->link[ws->pending_tail], id, memory_order_relaxed);
	ws->pending_tail = id;
}

/* An unlinked slot: walks that reached it before may still read it. */
static void retire_slot(struct fleet_store *s, struct fleet_worker *ws, uint32_t slot)
{
	atomic_store_explicit(&s->slot_link[slot], NIL, memory_order_relaxed);
	if (ws->spending_head == NIL)
		ws->spending_head = slot;
	else
		atomic_store_explicit(&s->slot_link[ws->spending_tail], slot, memory_order_relaxed);
	ws->spending_tail = slot;
}

/* Everything but cur, which fleet_snapshot_at reads in any slot: a walk
 * that reaches a free slot is reported at once under ASan. */
#define SLOT_POISON_OFF offsetof(struct fleet_agent, next)

/* A slot nobody can reach (never linked, or past its grace period) back
 * to the free stack. Its cur stays NULL or DEAD: iteration skips it. */
static void slot_free(struct fleet_store *s, uint32_t slot)
{
	POISON((char *)&s->agents[slot] + SLOT_POISON_OFF,
	       sizeof(struct fleet_agent) - SLOT_POISON_OFF);
	stack_push(&s->sh->slot_free, s->slot_link, slot, slot);
}

/* The lowest qs of all workers: batches tagged at or below it are free. */
static uint64_t scan_safe(struct fleet_store *s)
{
	uint64_t min = QS_OFFLINE;

	/* Pairs with fleet_online's fence: see the proof at the top. */
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t v = 0; v < s->nworkers; v++) {
		uint64_t q = atomic_load_explicit(&s->workers[v].qs, memory_order_acquire);
		if (q < min)
			min = q;
	}
	return min;
}

static inline uint32_t chain_next(_Atomic uint32_t *links, uint32_t id)
{
	return atomic_load_explicit(&links[id], memory_order_relaxed);
}

/* Frees up to budget blocks and slots of the oldest batches that are safe
 * by the worker's last scan. */
static void reclaim(struct fleet_store *s, struct fleet_worker *ws, unsigned budget)
{
	while (budget && ws->batch_count) {
		struct fleet_batch *b = &ws->batch[ws->batch_first];
		uint32_t id;

		if (b->epoch > ws->safe)
			return;
		if (b->head != NIL) {
			id = b->head;
			b->head = id == b->tail ? NIL : chain_next(s->link, id);
			block_free(s, ws, id);
		} else {
			id = b->shead;
			b->shead = id == b->stail ? NIL : chain_next(s->slot_link, id);
			slot_free(s, id);
		}
		if (b->head == NIL && b->shead == NIL) {
			ws->batch_first = (ws->batch_first + 1) % BATCHES;
			ws->batch_count--;
		}
		budget--;
	}
}

/* Appends chain first..last to a batch's chain head..tail (link words in
 * links[]). */
static void chain_join(_Atomic uint32_t *links, uint32_t *head, uint32_t *tail, uint32_t first,
		       uint32_t last)
{
	if (first == NIL)
		return;
	if (*head == NIL)
		*head = first;
	else
		atomic_store_explicit(&links[*tail], first, memory_order_relaxed);
	*tail = last;
}

/* Tags the pending lists with a fresh epoch (after their unlinks) and
 * makes them a batch. Returns the epoch. */
static uint64_t seal_pending(struct fleet_store *s, struct fleet_worker *ws)
{
	uint64_t g = atomic_fetch_add_explicit(&s->sh->epoch, 1, memory_order_acq_rel) + 1;
	struct fleet_batch *b;

	if (ws->batch_count == BATCHES) {
		/* No room: join the newest batch, which then waits for g too
		 * (freeing later than needed is always safe). */
		b = &ws->batch[(ws->batch_first + BATCHES - 1) % BATCHES];
	} else {
		b = &ws->batch[(ws->batch_first + ws->batch_count) % BATCHES];
		*b = (struct fleet_batch){NIL, NIL, NIL, NIL, 0};
		ws->batch_count++;
	}
	chain_join(s->link, &b->head, &b->tail, ws->pending_head, ws->pending_tail);
	chain_join(s->slot_link, &b->shead, &b->stail, ws->spending_head, ws->spending_tail);
	b->epoch = g;
	ws->pending_head = ws->pending_tail = NIL;
	ws->spending_head = ws->spending_tail = NIL;
	return g;
}

void fleet_online(struct fleet_store *s, uint32_t worker)
{
	struct fleet_worker *ws;
	uint64_t g;

	if (worker >= s->nworkers)
		return;
	ws = &s->workers[worker];
	g = atomic_load_explicit(&s->sh->epoch, memory_order_acquire);
	/* Release, like every store of qs, so a reclaimer that reads this one
	 * is also ordered after this worker's reads before it went offline. */
	atomic_store_explicit(&ws->qs, g, memory_order_release);
	/* Before any load of cur: pairs with scan_safe's fence. */
	atomic_thread_fence(memory_order_seq_cst);
}

void fleet_quiescent(struct fleet_store *s, uint32_t worker)
{
	struct fleet_worker *ws;
	uint64_t g;

	if (worker >= s->nworkers)
		return;
	ws = &s->workers[worker];
	if (atomic_load_explicit(&ws->qs, memory_order_relaxed) == QS_OFFLINE)
		fleet_online(s, worker);
	if (ws->pending_head != NIL || ws->spending_head != NIL)
		g = seal_pending(s, ws);
	else
		g = atomic_load_explicit(&s->sh->epoch, memory_order_acquire);
	/* Release: this worker's reads of any snapshot come before. Skipped
	 * when the epoch has not moved, so idle workers do not keep
	 * invalidating the line every reclaimer reads: a block that this
	 * worker could read since its last store was not unlinked before
	 * epoch reached g, so its tag is above g and this qs frees nothing of
	 * it. */
	if (atomic_load_explicit(&ws->qs, memory_order_relaxed) != g)
		atomic_store_explicit(&ws->qs, g, memory_order_release);
	if (ws->batch_count && ws->batch[ws->batch_first].epoch > ws->safe)
		ws->safe = scan_safe(s);
	reclaim(s, ws, RECLAIM_STEP);
}

void fleet_offline(struct fleet_store *s, uint32_t worker)
{
	if (worker >= s->nworkers)
		return;
	fleet_quiescent(s, worker);
	atomic_store_explicit(&s->workers[worker].qs, QS_OFFLINE, memory_order_release);
}

/* ---- agents and the index ------------------------------------------ */

static bool ids_valid(size_t org_len, size_t agent_len)
{
	return org_len && org_len <= FLEET_ID_MAX && agent_len && agent_len <= FLEET_ID_MAX;
}

static bool ids_equal(const struct fleet_agent *a, const char *org, size_t org_len,
		      const char *agent, size_t agent_len)
{
	return a->org_len == org_len && a->agent_len == agent_len &&
	       !memcmp(a->org, org, org_len) && !memcmp(a->agent, agent, agent_len);
}

/* The chain order: the hash's high half, then the ids (a total order, so
 * two agents whose hashes collide still each have one place). */
static int key_cmp(const struct fleet_agent *a, uint64_t h, const char *org, size_t org_len,
		   const char *agent, size_t agent_len)
{
	uint32_t hi = (uint32_t)(h >> 32);
	int c;

	if (a->hash != hi)
		return a->hash < hi ? -1 : 1;
	if (a->org_len != org_len)
		return a->org_len < org_len ? -1 : 1;
	if (a->agent_len != agent_len)
		return a->agent_len < agent_len ? -1 : 1;
	c = memcmp(a->org, org, org_len);
	return c ? c : memcmp(a->agent, agent, agent_len);
}

/* A free slot (returned by a forget or a lost insert race), else a fresh
 * one, else NIL. A loser hands its slot back at once and a forgotten slot
 * comes back a grace period after its unlink, so until then a new agent
 * at exactly max_agents may be refused. */
static uint32_t slot_alloc(struct fleet_store *s)
{
	uint32_t id = stack_pop(&s->sh->slot_free, s->slot_link), n;

	if (id != NIL)
		return id;
	n = atomic_load_explicit(&s->sh->slot_next, memory_order_relaxed);
	do {
		if (n >= s->max_agents)
			return NIL;
	} while (!atomic_compare_exchange_weak_explicit(&s->sh->slot_next, &n, n + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	return n;
}

/* Fills a private slot for agent (org, agent). */
static void agent_init(struct fleet_store *s, uint32_t slot, uint64_t h, const char *org,
		       size_t org_len, const char *agent, size_t agent_len)
{
	struct fleet_agent *a = &s->agents[slot];

	UNPOISON((char *)a + SLOT_POISON_OFF, sizeof *a - SLOT_POISON_OFF);
	/* DEAD from its last agent, if any: nobody can CAS it any more (its
	 * publishers passed a quiescent state), iteration only loads it. */
	atomic_store_explicit(&a->cur, NULL, memory_order_relaxed);
	a->hash = (uint32_t)(h >> 32);
	a->org_len = (uint8_t)org_len;
	a->agent_len = (uint8_t)agent_len;
	memcpy(a->org, org, org_len);
	a->org[org_len] = '\0';
	memcpy(a->agent, agent, agent_len);
	a->agent[agent_len] = '\0';
}

/* The agent's slot, or NIL if no unmarked node has its key: the walk of
 * lookups and of publishes to known agents, which writes nothing.
 * Marked nodes are passed (their link still leads on, in order). Inlined:
 * it is most of a lookup, and a call would save and restore the registers
 * the ids compare needs. */
static inline __attribute__((always_inline)) uint32_t
find_live(struct fleet_store *s, uint64_t h, const char *org, size_t org_len, const char *agent,
	  size_t agent_len)
{
	/* Acquire, here and on each link: the node's fields were written
	 * before the release CAS that linked it. */
	uint32_t e = atomic_load_explicit(&s->bucket[h & s->bucket_mask], memory_order_acquire);
	uint32_t hi = (uint32_t)(h >> 32);

	while (e) {
		const struct fleet_agent *a = &s->agents[e - 1];
		uint32_t next = atomic_load_explicit(&a->next, memory_order_acquire);

		if (a->hash >= hi) {
			if (a->hash > hi)
				return NIL; /* sorted: the agent would be before */
			if (!(next & MARK) && ids_equal(a, org, org_len, agent, agent_len))
				return e - 1;
		}
		e = next & ~MARK;
	}
	return NIL;
}

/*
 * Michael's search: the first unmarked node at or after the key, and the
 * link word that points to it (*prevp, *currp = slot + 1, or 0 at the end
 * of the chain); true if that node has the key. Unlinks every marked node
 * it passes (and retires its slot, in ws, if its own CAS did it), and
 * marks the key's node if its agent is forgotten (cur DEAD), so it never
 * returns a DEAD node and never waits for the forgetting sweep.
 */
static bool list_find(struct fleet_store *s, struct fleet_worker *ws, uint64_t h,
		      const char *org, size_t org_len, const char *agent, size_t agent_len,
		      _Atomic uint32_t **prevp, uint32_t *currp)
{
	_Atomic uint32_t *prev;
	uint32_t curr;

retry:
	prev = &s->bucket[h & s->bucket_mask];
	curr = atomic_load_explicit(prev, memory_order_acquire);
	while (curr) {
		struct fleet_agent *a = &s->agents[curr - 1];
		uint32_t next = atomic_load_explicit(&a->next, memory_order_acquire);

		/* prev must still link to curr, unmarked: else its node was
		 * deleted or something was linked between, and `next` may be
		 * of a node already out of the chain. */
		if (atomic_load_explicit(prev, memory_order_acquire) != curr)
			goto retry;
		if (next & MARK) {
			uint32_t want = curr;
			/* acq_rel: a walk that reads the new link is ordered after
			 * the mark, hence after the DEAD (fleet_links' proof). */
			if (!atomic_compare_exchange_strong_explicit(prev, &want, next & ~MARK,
								     memory_order_acq_rel,
								     memory_order_relaxed))
				goto retry;
			retire_slot(s, ws, curr - 1);
			curr = next & ~MARK;
			continue;
		}
		int c = key_cmp(a, h, org, org_len, agent, agent_len);
		if (c > 0)
			break;
		if (c == 0) {
			if (atomic_load_explicit(&a->cur, memory_order_acquire) != DEAD) {
				*prevp = prev;
				*currp = curr;
				return true;
			}
			/* Forgotten, not yet marked: mark it for its sweep, then
			 * look again (and unlink it). */
			atomic_fetch_or_explicit(&a->next, MARK, memory_order_acq_rel);
			continue;
		}
		prev = &a->next;
		curr = next;
	}
	*prevp = prev;
	*currp = curr;
	return false;
}

/* The agent's slot, linking a new one if it has none; NIL if it has none
 * and no slot is left. */
static uint32_t find_or_insert(struct fleet_store *s, struct fleet_worker *ws, uint64_t h,
			       const char *org, size_t org_len, const char *agent,
			       size_t agent_len)
{
	uint32_t mine = NIL;

	for (;;) {
		_Atomic uint32_t *prev;
		uint32_t curr;

		if (list_find(s, ws, h, org, org_len, agent, agent_len, &prev, &curr)) {
			if (mine != NIL) /* lost the race for this very agent */
				slot_free(s, mine); /* never linked: nobody reached it */
			return curr - 1;
		}
		if (mine == NIL) {
			mine = slot_alloc(s);
			if (mine == NIL)
				return NIL;
			agent_init(s, mine, h, org, org_len, agent, agent_len);
		}
		struct fleet_agent *a = &s->agents[mine];
		/* Taken after this walk, which saw any earlier node of the agent
		 * DEAD: acq_rel makes that visible to whoever reads the count. */
		a->born = atomic_fetch_add_explicit(&s->sh->links, 1, memory_order_acq_rel) + 1;
		atomic_store_explicit(&a->next, curr, memory_order_relaxed);
		/* Release: the slot's fields before the link. Fails if prev's
		 * node was marked or another node was linked there: walk again. */
		if (atomic_compare_exchange_strong_explicit(prev, &curr, mine + 1,
							    memory_order_release,
							    memory_order_relaxed)) {
			atomic_fetch_add_explicit(&s->sh->agents, 1, memory_order_relaxed);
			return mine;
		}
	}
}

/* ---- the API ------------------------------------------------------- */

int fleet_publish(struct fleet_store *s, uint32_t worker, const char *org, size_t org_len,
		  const char *agent, size_t agent_len, const void *blob, size_t len,
		  int64_t now_ms)
{
	struct fleet_worker *ws;
	struct fleet_snapshot *snap, *old;
	struct fleet_agent *a;
	unsigned cls = class_of(len);
	uint32_t id, slot;
	uint64_t h;

	if (worker >= s->nworkers || !ids_valid(org_len, agent_len))
		return -EINVAL;
	if (len > FLEET_BLOB_MAX)
		return -EMSGSIZE;
	ws = &s->workers[worker];
	/* A little of the backlog first, so the block freed is the one taken
	 * next, still in cache (tested here: the call is not free). */
	if (ws->batch_count)
		reclaim(s, ws, PUBLISH_RECLAIM);
	/* Memory first: a new agent that cannot be stored takes no slot. */
	id = block_alloc(s, ws, cls);
	if (id == NIL) {
		ws->safe = scan_safe(s);
		reclaim(s, ws, RECLAIM_STEP);
		id = block_alloc(s, ws, cls);
		if (id == NIL)
			return -ENOSPC;
	}
	snap = block(s, id);
	UNPOISON(snap, FLEET_SNAPSHOT_HDR + len);
	h = hash_ids(s, org, org_len, agent, agent_len);
	for (bool known = true;; known = false) {
		/* Known agents (nearly every publish) take the walk that writes
		 * nothing; after a DEAD, list_find's, which marks the DEAD node
		 * instead of returning it again until its sweep gets there. */
		slot = known ? find_live(s, h, org, org_len, agent, agent_len) : NIL;
		if (slot == NIL)
			slot = find_or_insert(s, ws, h, org, org_len, agent, agent_len);
		if (slot == NIL) {
			block_free(s, ws, id);
			return -ENOSPC;
		}
		a = &s->agents[slot];
		if (known) {
			/* Once: the loads of the walk overlap the copy's stores. */
			snap->received_ms = now_ms;
			snap->len = (uint32_t)len;
			snap->org_len = (uint8_t)org_len;
			snap->agent_len = (uint8_t)agent_len;
			memset(snap->reserved, 0, sizeof snap->reserved);
			memset(snap->spare, 0, sizeof snap->spare);
			if (len)
				memcpy(snap->data, blob, len);
		}
		snap->org = a->org;
		snap->agent = a->agent;
		snap->slot = slot;
		snap->born = a->born;
		/* Release: the snapshot is whole before a reader can load it.
		 * Acquire: the old one's writer is ordered before its free by
		 * this worker. A sweep's DEAD is final for this slot: the agent
		 * is being forgotten, so link it anew (the next walk marks and
		 * unlinks the DEAD node if its sweep has not yet). */
		old = atomic_load_explicit(&a->cur, memory_order_relaxed);
		while (old != DEAD &&
		       !atomic_compare_exchange_weak_explicit(&a->cur, &old, snap,
							      memory_order_acq_rel,
							      memory_order_relaxed))
			;
		if (old != DEAD)
			break;
	}
	int64_t held = atomic_load_explicit(&ws->snapshot_bytes, memory_order_relaxed) +
		       (int64_t)len - (old ? (int64_t)old->len : 0);
	atomic_store_explicit(&ws->snapshot_bytes, held, memory_order_relaxed);
	if (old)
		retire(s, ws, (uint32_t)(((unsigned char *)old - s->mem) >> UNIT_SHIFT));
	return 0;
}

const struct fleet_snapshot *fleet_lookup(struct fleet_store *s, uint32_t worker,
					  const char *org, size_t org_len,
					  const char *agent, size_t agent_len)
{
	const struct fleet_snapshot *p;
	uint32_t slot;

	if (worker >= s->nworkers || !ids_valid(org_len, agent_len))
		return NULL;
	slot = find_live(s, hash_ids(s, org, org_len, agent, agent_len), org, org_len, agent,
			 agent_len);
	if (slot == NIL)
		return NULL;
	/* Acquire: pairs with the publisher's CAS; the snapshot is whole. */
	p = atomic_load_explicit(&s->agents[slot].cur, memory_order_acquire);
	return p == DEAD ? NULL : p;
}

uint32_t fleet_agent_slots(struct fleet_store *s)
{
	return atomic_load_explicit(&s->sh->slot_next, memory_order_relaxed);
}

const struct fleet_snapshot *fleet_snapshot_at(struct fleet_store *s, uint32_t worker,
					       uint32_t i)
{
	const struct fleet_snapshot *p;

	if (worker >= s->nworkers || i >= s->max_agents)
		return NULL;
	p = atomic_load_explicit(&s->agents[i].cur, memory_order_acquire);
	return p == DEAD ? NULL : p;
}

uint64_t fleet_links(struct fleet_store *s)
{
	/* Acquire: see the proof at the top. */
	return atomic_load_explicit(&s->sh->links, memory_order_acquire);
}

uint32_t fleet_agent_count(struct fleet_store *s)
{
	return atomic_load_explicit(&s->sh->agents, memory_order_relaxed);
}

/* Forgets slot i's agent if its latest snapshot is older than the cutoff.
 * The proof that a racing publish is kept is at the top. */
static bool forget_slot(struct fleet_store *s, struct fleet_worker *ws, uint32_t i,
			int64_t older_than_ms)
{
	struct fleet_agent *a = &s->agents[i];
	/* Acquire: the snapshot is whole (received_ms below). NULL: a free
	 * slot, or a first publish under way; DEAD: being forgotten. */
	struct fleet_snapshot *old = atomic_load_explicit(&a->cur, memory_order_acquire);
	_Atomic uint32_t *prev;
	uint32_t curr;

	if (!old || old == DEAD || old->received_ms >= older_than_ms)
		return false;
	/* acq_rel: as a publish's (we retire old); fails if one came first. */
	if (!atomic_compare_exchange_strong_explicit(&a->cur, &old, DEAD, memory_order_acq_rel,
						     memory_order_relaxed))
		return false;
	atomic_fetch_sub_explicit(&s->sh->agents, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->sh->forgotten, 1, memory_order_relaxed);
	atomic_store_explicit(&ws->snapshot_bytes,
			      atomic_load_explicit(&ws->snapshot_bytes, memory_order_relaxed) -
				      (int64_t)old->len,
			      memory_order_relaxed);
	retire(s, ws, (uint32_t)(((unsigned char *)old - s->mem) >> UNIT_SHIFT));
	/* The node was linked (a publish found it) and, not DEAD until now,
	 * unmarked; a walk may have marked it since. The ids stay until the
	 * slot's grace period, which this sweep holds back. */
	atomic_fetch_or_explicit(&a->next, MARK, memory_order_acq_rel);
	(void)list_find(s, ws, hash_ids(s, a->org, a->org_len, a->agent, a->agent_len), a->org,
			a->org_len, a->agent, a->agent_len, &prev, &curr);
	return true;
}

uint32_t fleet_forget(struct fleet_store *s, uint32_t worker, int64_t older_than_ms,
		      uint32_t budget, uint32_t *cursor)
{
	uint32_t n = fleet_agent_slots(s), i, forgot = 0;
	struct fleet_worker *ws;

	if (worker >= s->nworkers || !n)
		return 0;
	ws = &s->workers[worker];
	i = *cursor < n ? *cursor : 0;
	for (budget = budget < n ? budget : n; budget; budget--) {
		forgot += forget_slot(s, ws, i, older_than_ms);
		i = i + 1 < n ? i + 1 : 0;
	}
	*cursor = i;
	return forgot;
}

uint64_t fleet_forgotten(struct fleet_store *s)
{
	return atomic_load_explicit(&s->sh->forgotten, memory_order_relaxed);
}

uint64_t fleet_snapshot_bytes(struct fleet_store *s)
{
	int64_t sum = 0;

	for (uint32_t w = 0; w < s->nworkers; w++)
		sum += atomic_load_explicit(&s->workers[w].snapshot_bytes, memory_order_relaxed);
	return sum > 0 ? (uint64_t)sum : 0; /* relaxed reads may see a replace first */
}

size_t fleet_memory_carved(struct fleet_store *s)
{
	uint64_t c = atomic_load_explicit(&s->sh->chunk_next, memory_order_relaxed);

	return (size_t)(c < s->chunks ? c : s->chunks) * FLEET_CHUNK;
}

/* ---- init ---------------------------------------------------------- */

/* Zeroed pages, touched lazily; NULL on failure. Atomics here start as
 * all-zero bytes, which is their zero value on every target we build. */
static void *map_zeroed(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void unmap(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

int fleet_store_init(struct fleet_store *s, uint32_t max_agents, uint32_t workers,
		     size_t memory_bytes)
{
	size_t got = 0, heads = 16;

	memset(s, 0, sizeof *s);
	if (!max_agents || max_agents > FLEET_MAX_AGENTS || !workers ||
	    workers > FLEET_MAX_WORKERS || memory_bytes < FLEET_CHUNK ||
	    memory_bytes > FLEET_MAX_MEMORY)
		return -EINVAL;
	while (got < sizeof s->key) {
		ssize_t n = getrandom((char *)s->key + got, sizeof s->key - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	while (heads < HEADS_PER_AGENT * (size_t)max_agents)
		heads *= 2;
	s->max_agents = max_agents;
	s->nworkers = workers;
	s->bucket_mask = (uint32_t)(heads - 1);
	s->chunks = (uint32_t)(memory_bytes / FLEET_CHUNK);
	s->mem_bytes = (size_t)s->chunks * FLEET_CHUNK;
	s->bucket_bytes = heads * sizeof *s->bucket;
	s->agents_bytes = (size_t)max_agents * sizeof *s->agents;
	s->slot_link_bytes = (size_t)max_agents * sizeof *s->slot_link;
	s->link_bytes = (s->mem_bytes >> UNIT_SHIFT) * sizeof *s->link;
	s->chunk_class_bytes = s->chunks;

	s->sh = aligned_alloc(64, sizeof *s->sh);
	if (!s->sh)
		goto fail;
	memset(s->sh, 0, sizeof *s->sh);
	atomic_init(&s->sh->epoch, 0);
	atomic_init(&s->sh->chunk_next, 0);
	atomic_init(&s->sh->slot_free, NIL);
	atomic_init(&s->sh->slot_next, 0);
	atomic_init(&s->sh->agents, 0);
	atomic_init(&s->sh->links, 0);
	atomic_init(&s->sh->forgotten, 0);
	for (unsigned c = 0; c < FLEET_CLASSES; c++)
		atomic_init(&s->sh->free[c].head, NIL);
	s->workers = aligned_alloc(64, workers * sizeof *s->workers);
	s->bucket = map_zeroed(s->bucket_bytes);
	s->agents = map_zeroed(s->agents_bytes);
	s->slot_link = map_zeroed(s->slot_link_bytes);
	s->link = map_zeroed(s->link_bytes);
	s->chunk_class = map_zeroed(s->chunk_class_bytes);
	s->mem = map_zeroed(s->mem_bytes);
	if (!s->workers || !s->bucket || !s->agents || !s->slot_link || !s->link ||
	    !s->chunk_class || !s->mem)
		goto fail;
	memset(s->workers, 0, workers * sizeof *s->workers);
	for (uint32_t w = 0; w < workers; w++) {
		/* Online at epoch 0: nothing retired yet is older. */
		atomic_init(&s->workers[w].qs, 0);
		s->workers[w].pending_head = s->workers[w].pending_tail = NIL;
		s->workers[w].spending_head = s->workers[w].spending_tail = NIL;
	}
	return 0; /* uncarved memory is never read: carve() poisons a chunk */

fail:
	fleet_store_fini(s);
	return -ENOMEM;
}

void fleet_store_fini(struct fleet_store *s)
{
	if (s->mem) {
		/* ASan's shadow outlives the mapping: clear what carve() set. */
		UNPOISON(s->mem, s->sh ? fleet_memory_carved(s) : 0);
		munmap(s->mem, s->mem_bytes);
	}
	unmap(s->chunk_class, s->chunk_class_bytes);
	unmap(s->link, s->link_bytes);
	unmap(s->slot_link, s->slot_link_bytes);
	if (s->agents) {
		UNPOISON(s->agents, s->agents_bytes); /* free slots, likewise */
		munmap(s->agents, s->agents_bytes);
	}
	unmap(s->bucket, s->bucket_bytes);
	free(s->workers);
	free(s->sh);
	memset(s, 0, sizeof *s);
}
