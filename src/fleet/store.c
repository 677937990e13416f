/*
 * The fleet store; the contract is include/ringside/fleet_store.h.
 *
 * Shared state and who writes it
 * ------------------------------
 *   agents[]      slot: the agent's ids (written once, before the slot is
 *                 linked into the index) and `cur`, its snapshot pointer
 *                 (swapped by whichever worker publishes).
 *   index[]       0, or (hash >> 32) << 32 | (slot + 1); set once by CAS.
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
 *   sh->epoch     the QSBR grace-period counter.
 *   workers[w].qs the epoch worker w saw at its last quiescent state
 *                 (QS_OFFLINE while offline), written by w only.
 * Everything else in a worker record (block caches, limbo lists) is
 * private to that worker.
 *
 * Reclamation (QSBR) and why a block is never reused while a reader holds it
 * --------------------------------------------------------------------------
 * A publish swaps agents[i].cur to the new snapshot (exchange, acq_rel): the
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
 * Only the publisher that replaced a snapshot retires it (the exchange
 * returns each old pointer to exactly one caller), so no block is freed
 * twice. Free blocks go to a small per-worker cache first (most publishes
 * free into and allocate from it, off the shared CAS), else the shared
 * stack. Work per call is bounded: quiescent frees at most RECLAIM_STEP
 * blocks and a publish at most PUBLISH_RECLAIM, the rest waits for later
 * calls; a scan of the qs words is O(workers).
 *
 * The index: linear probing with CAS. Two first publishes of one agent
 * probe the same sequence; a position changes once, 0 -> entry, and an
 * inserter that loses the CAS re-examines the same position, so the agent
 * can only appear at the first position of its sequence that was empty:
 * one slot, never two. The loser's slot, filled but never linked, goes
 * back on the slot stack. The index holds at most max_agents entries in
 * at least 2 * max_agents positions, so a probe always ends.
 */
#include "ringside/fleet_store.h"

#include "ringside/siphash.h"

#include <errno.h>
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
#define RECLAIM_STEP 256   /* blocks freed per quiescent call, at most */
#define PUBLISH_RECLAIM 2  /* per publish: more than it retires, so limbo drains */

struct fleet_shared {
	_Alignas(64) _Atomic uint64_t epoch;
	_Alignas(64) _Atomic uint64_t chunk_next; /* chunks carved */
	_Alignas(64) _Atomic uint64_t slot_free;  /* tagged head of returned slots */
	_Atomic uint32_t slot_next;               /* slots handed out: high-water mark */
	_Atomic uint32_t agents;                  /* agents linked into the index */
	struct {
		_Alignas(64) _Atomic uint64_t head;   /* tagged head: counter | block id */
	} free[FLEET_CLASSES];
};
_Static_assert(sizeof(struct fleet_shared) == 64 * (3 + FLEET_CLASSES),
	       "one cache line per shared word");

/* A limbo batch: blocks head..tail (linked through link[]) retired before
 * the epoch RMW that returned `epoch`. 16 bytes. */
struct fleet_batch {
	uint32_t head, tail;
	uint64_t epoch;
};

struct fleet_worker {
	_Alignas(64) _Atomic uint64_t qs; /* line 0: read by every reclaimer */
	/* The rest is private to the worker. */
	_Alignas(64) uint64_t safe;       /* min qs at its last scan */
	/* Bytes of latest snapshots this worker published, less those of the
	 * ones it replaced (any worker's): summed over the workers, the bytes
	 * held now. Written by the worker only; read by scrapes. */
	_Atomic int64_t snapshot_bytes;
	uint32_t pending_head, pending_tail; /* retired since the last quiescent state */
	uint32_t batch_first, batch_count;
	struct fleet_batch batch[BATCHES];
	uint32_t cache_n[FLEET_CLASSES];
	uint32_t cache[FLEET_CLASSES][CACHE_MAX];
};
_Static_assert(sizeof(struct fleet_worker) == 4288, "worker record: 67 cache lines");

/* An agent slot: 192 bytes, cache-line aligned, since publishers on any
 * worker write `cur`. */
struct fleet_agent {
	_Alignas(64) _Atomic(struct fleet_snapshot *) cur;
	uint8_t org_len, agent_len;
	char org[FLEET_ID_MAX + 1];
	char agent[FLEET_ID_MAX + 1];
};
_Static_assert(sizeof(struct fleet_agent) == 192, "agent slot: 3 cache lines");
_Static_assert(sizeof(struct fleet_snapshot) == FLEET_SNAPSHOT_HDR &&
		       offsetof(struct fleet_snapshot, data) == FLEET_SNAPSHOT_HDR,
	       "snapshot header: one cache line, then the blob");
_Static_assert(FLEET_BLOB_MAX + FLEET_SNAPSHOT_HDR <= FLEET_CLASS_MAX,
	       "the largest blob fits the largest class");
_Static_assert(FLEET_MAX_MEMORY >> UNIT_SHIFT < NIL, "block ids fit below NIL");

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

/* A free block of class cls, else of a larger class (a chunk once carved
 * stays in its class, so a full mapping may still have room above), or
 * NIL. */
static uint32_t block_alloc(struct fleet_store *s, struct fleet_worker *ws, unsigned cls)
{
	uint32_t id;

	if (ws->cache_n[cls])
		return ws->cache[cls][--ws->cache_n[cls]];
	id = stack_pop(&s->sh->free[cls].head, s->link);
	if (id == NIL)
		id = carve(s, ws, cls);
	for (unsigned c = cls + 1; id == NIL && c < FLEET_CLASSES; c++) {
		if (ws->cache_n[c])
			return ws->cache[c][--ws->cache_n[c]];
		id = stack_pop(&s->sh->free[c].head, s->link);
	}
	return id;
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

/* Frees up to budget blocks of the oldest batches that are safe by the
 * worker's last scan. */
static void reclaim(struct fleet_store *s, struct fleet_worker *ws, unsigned budget)
{
	while (budget && ws->batch_count) {
		struct fleet_batch *b = &ws->batch[ws->batch_first];
		uint32_t id = b->head;

		if (b->epoch > ws->safe)
			return;
		if (id == b->tail) {
			ws->batch_first = (ws->batch_first + 1) % BATCHES;
			ws->batch_count--;
		} else {
			b->head = atomic_load_explicit(&s->link[id], memory_order_relaxed);
		}
		block_free(s, ws, id);
		budget--;
	}
}

/* Tags the pending list with a fresh epoch (after its unlinks) and makes
 * it a batch. Returns the epoch. */
static uint64_t seal_pending(struct fleet_store *s, struct fleet_worker *ws)
{
	uint64_t g = atomic_fetch_add_explicit(&s->sh->epoch, 1, memory_order_acq_rel) + 1;

	if (ws->batch_count == BATCHES) {
		/* No room: join the newest batch, which then waits for g too
		 * (freeing later than needed is always safe). */
		struct fleet_batch *b = &ws->batch[(ws->batch_first + BATCHES - 1) % BATCHES];
		atomic_store_explicit(&s->link[b->tail], ws->pending_head, memory_order_relaxed);
		b->tail = ws->pending_tail;
		b->epoch = g;
	} else {
		ws->batch[(ws->batch_first + ws->batch_count) % BATCHES] =
			(struct fleet_batch){ws->pending_head, ws->pending_tail, g};
		ws->batch_count++;
	}
	ws->pending_head = ws->pending_tail = NIL;
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
	if (ws->pending_head != NIL)
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

/* A slot a lost insert race handed back, else a fresh one, else NIL. A
 * loser hands its slot back at once, but until it does a new agent at
 * exactly max_agents may be refused. */
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

/* The agent's slot, or NIL. */
static uint32_t find(struct fleet_store *s, uint64_t h, const char *org, size_t org_len,
		     const char *agent, size_t agent_len)
{
	uint32_t i = (uint32_t)h & s->index_mask;

	for (uint32_t n = 0; n <= s->index_mask; n++, i = (i + 1) & s->index_mask) {
		/* Acquire: the slot's ids were written before the entry. */
		uint64_t e = atomic_load_explicit(&s->index[i], memory_order_acquire);
		if (!e)
			return NIL;
		if (e >> 32 == h >> 32 &&
		    ids_equal(&s->agents[(uint32_t)e - 1], org, org_len, agent, agent_len))
			return (uint32_t)e - 1;
	}
	return NIL;
}

/* The agent's slot, linking a new one if it is unknown; NIL if it is new
 * and no slot is left. */
static uint32_t find_or_insert(struct fleet_store *s, uint64_t h, const char *org,
			       size_t org_len, const char *agent, size_t agent_len)
{
	uint32_t i = (uint32_t)h & s->index_mask, mine = NIL;

	for (uint32_t n = 0; n <= s->index_mask; n++, i = (i + 1) & s->index_mask) {
		uint64_t e = atomic_load_explicit(&s->index[i], memory_order_acquire);

		if (!e) {
			if (mine == NIL) {
				mine = slot_alloc(s);
				if (mine == NIL)
					return NIL;
				struct fleet_agent *a = &s->agents[mine];
				a->org_len = (uint8_t)org_len;
				a->agent_len = (uint8_t)agent_len;
				memcpy(a->org, org, org_len);
				a->org[org_len] = '\0';
				memcpy(a->agent, agent, agent_len);
				a->agent[agent_len] = '\0';
			}
			uint64_t want = (h >> 32) << 32 | (mine + 1);
			/* Release: the ids above before the entry. On failure e is
			 * the winner's entry, examined below at this same position. */
			if (atomic_compare_exchange_strong_explicit(&s->index[i], &e, want,
								    memory_order_release,
								    memory_order_acquire)) {
				atomic_fetch_add_explicit(&s->sh->agents, 1, memory_order_relaxed);
				return mine;
			}
		}
		if (e >> 32 == h >> 32 &&
		    ids_equal(&s->agents[(uint32_t)e - 1], org, org_len, agent, agent_len)) {
			if (mine != NIL) /* lost the race for this very agent */
				stack_push(&s->sh->slot_free, s->slot_link, mine, mine);
			return (uint32_t)e - 1;
		}
	}
	/* Unreachable: at most max_agents entries in >= 2 * max_agents. */
	if (mine != NIL)
		stack_push(&s->sh->slot_free, s->slot_link, mine, mine);
	return NIL;
}

/* ---- the API ------------------------------------------------------- */

int fleet_publish(struct fleet_store *s, uint32_t worker, const char *org, size_t org_len,
		  const char *agent, size_t agent_len, const void *blob, size_t len,
		  int64_t now_ms)
{
	struct fleet_worker *ws;
	struct fleet_snapshot *snap, *old;
	unsigned cls = class_of(len);
	uint32_t id, slot;

	if (worker >= s->nworkers || !ids_valid(org_len, agent_len))
		return -EINVAL;
	if (len > FLEET_BLOB_MAX)
		return -EMSGSIZE;
	ws = &s->workers[worker];
	/* A little of the backlog first, so the block freed is the one taken
	 * next, still in cache. */
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
	slot = find_or_insert(s, hash_ids(s, org, org_len, agent, agent_len), org, org_len,
			      agent, agent_len);
	if (slot == NIL) {
		block_free(s, ws, id);
		return -ENOSPC;
	}
	snap->org = s->agents[slot].org;
	snap->agent = s->agents[slot].agent;
	snap->received_ms = now_ms;
	snap->len = (uint32_t)len;
	snap->slot = slot;
	snap->org_len = (uint8_t)org_len;
	snap->agent_len = (uint8_t)agent_len;
	memset(snap->reserved, 0, sizeof snap->reserved);
	if (len)
		memcpy(snap->data, blob, len);
	/* Release: the snapshot is whole before a reader can load it. Acquire:
	 * the old one's writer is ordered before its free by this worker. */
	old = atomic_exchange_explicit(&s->agents[slot].cur, snap, memory_order_acq_rel);
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
	uint32_t slot;

	if (worker >= s->nworkers || !ids_valid(org_len, agent_len))
		return NULL;
	slot = find(s, hash_ids(s, org, org_len, agent, agent_len), org, org_len, agent,
		    agent_len);
	if (slot == NIL)
		return NULL;
	/* Acquire: pairs with the publisher's exchange; the snapshot is whole. */
	return atomic_load_explicit(&s->agents[slot].cur, memory_order_acquire);
}

uint32_t fleet_agent_slots(struct fleet_store *s)
{
	return atomic_load_explicit(&s->sh->slot_next, memory_order_relaxed);
}

const struct fleet_snapshot *fleet_snapshot_at(struct fleet_store *s, uint32_t worker,
					       uint32_t i)
{
	if (worker >= s->nworkers || i >= s->max_agents)
		return NULL;
	return atomic_load_explicit(&s->agents[i].cur, memory_order_acquire);
}

uint32_t fleet_agent_count(struct fleet_store *s)
{
	return atomic_load_explicit(&s->sh->agents, memory_order_relaxed);
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
	size_t got = 0, positions = 16;

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
	while (positions < 2 * (size_t)max_agents)
		positions *= 2;
	s->max_agents = max_agents;
	s->nworkers = workers;
	s->index_mask = (uint32_t)(positions - 1);
	s->chunks = (uint32_t)(memory_bytes / FLEET_CHUNK);
	s->mem_bytes = (size_t)s->chunks * FLEET_CHUNK;
	s->index_bytes = positions * sizeof *s->index;
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
	for (unsigned c = 0; c < FLEET_CLASSES; c++)
		atomic_init(&s->sh->free[c].head, NIL);
	s->workers = aligned_alloc(64, workers * sizeof *s->workers);
	s->index = map_zeroed(s->index_bytes);
	s->agents = map_zeroed(s->agents_bytes);
	s->slot_link = map_zeroed(s->slot_link_bytes);
	s->link = map_zeroed(s->link_bytes);
	s->chunk_class = map_zeroed(s->chunk_class_bytes);
	s->mem = map_zeroed(s->mem_bytes);
	if (!s->workers || !s->index || !s->agents || !s->slot_link || !s->link ||
	    !s->chunk_class || !s->mem)
		goto fail;
	memset(s->workers, 0, workers * sizeof *s->workers);
	for (uint32_t w = 0; w < workers; w++) {
		/* Online at epoch 0: nothing retired yet is older. */
		atomic_init(&s->workers[w].qs, 0);
		s->workers[w].pending_head = s->workers[w].pending_tail = NIL;
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
	unmap(s->agents, s->agents_bytes);
	unmap(s->index, s->index_bytes);
	free(s->workers);
	free(s->sh);
	memset(s, 0, sizeof *s);
}
