/*
 * Threaded stress of the fleet store (include/ringside/fleet_store.h).
 *
 * N threads each play one worker: random publishes of random agents,
 * random lookups and whole iterations, sweeps that forget silent agents,
 * quiescent states at random points, now and then a spell offline. Every
 * blob carries its agent, its length, its receive time and a checksum;
 * every snapshot read is verified, and up to HELD of them are kept until
 * the thread's next quiescent state and verified again then, unchanged: a
 * torn snapshot, a blob in the wrong agent's hands, or a block or slot
 * reused while a reader holds it is reported.
 *
 * Receive times come from one logical clock (a tick per publish), and the
 * sweeps forget agents silent for -w ticks. The first eighth of the
 * agents are hot: any thread publishes them, with times far ahead of
 * every cutoff, so they are never forgotten and a lookup that misses one
 * once published is a lost report. The others churn: each is published
 * by one thread only, so its times only grow, and a lookup that misses it
 * is a lost report unless a sweep with a cutoff above its last publish
 * had begun. Iterations skip agents born after they began and must meet
 * each agent once. At the end every agent that must be there is, once.
 * Build it under ThreadSanitizer and under AddressSanitizer (which also
 * sees reads of reclaimed blocks and slots: the store poisons them):
 *
 *   clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -Iinclude -pthread \
 *     -o build/fleet_store_stress_tsan tests/stress/fleet_store_stress.c src/fleet/store.c src/common/siphash.c
 *   cc -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=address,undefined -Iinclude -pthread \
 *     -o build/fleet_store_stress_asan tests/stress/fleet_store_stress.c src/fleet/store.c src/common/siphash.c
 *
 * Usage: fleet_store_stress [-t threads] [-s seconds] [-a agents] [-m MiB]
 *                           [-w window]
 * (defaults 4, 10, 3000, 64, 4 x agents; a small -m exercises exhaustion,
 * a small -w forgets more). Prints one summary line; exits 1 on any
 * corruption, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringside/fleet_store.h"

#define ORGS 7     /* agent k is ("org-<k % 7>", "agent-<k / 7>") */
#define HELD 16
#define MAGIC 0x466c6565u
#define MIN_BLOB 48

struct blob_head {
	uint32_t magic;
	uint32_t len;
	uint32_t key;     /* k */
	uint32_t writer;  /* thread */
	int64_t received_ms;
	uint64_t seq;
}; /* 32 bytes; the blob's last 8 bytes are the checksum of the rest */

struct held {
	const struct fleet_snapshot *p;
	uint64_t sum;
	int64_t received_ms;
	uint32_t len;
};

struct thread {
	pthread_t id;
	uint32_t worker;
	uint64_t rng;
	uint64_t publishes, refused, lookups, iterations, verified, corrupt;
	uint64_t sweeps, forgot, met_twice; /* met_twice: raw, before the born rule */
	uint32_t cursor;                     /* of this thread's sweep */
	struct held held[HELD];
	unsigned nheld;
	unsigned char *blob;
	uint8_t *seen, *seen_raw; /* per agent, for iteration */
};

#define HOT_AHEAD ((int64_t)1 << 40) /* hot agents' times: past every cutoff */

static struct fleet_store store;
static uint32_t agents = 3000, hot, nthreads = 4;
static int64_t window;
static _Atomic bool stop;
static _Atomic uint8_t *published;     /* per agent: ever published */
static _Atomic int64_t *published_ms;  /* per churning agent: its last publish's time */
static _Atomic int64_t clock_ms = 1;   /* the logical clock: a tick per publish */
static _Atomic int64_t issued;         /* the highest cutoff any sweep began with */

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A word-at-a-time checksum: any changed byte changes it. */
static uint64_t checksum(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static size_t ids(uint32_t k, char *org, char *agent)
{
	sprintf(org, "org-%u", k % ORGS);
	return (size_t)sprintf(agent, "agent-%u", k / ORGS);
}

/* Mostly a few hundred bytes to a few KiB, sometimes up to the maximum. */
static size_t blob_len(uint64_t *rng)
{
	uint64_t r = next(rng);

	switch (r % 16) {
	case 0:
		return MIN_BLOB + (r >> 8) % (FLEET_BLOB_MAX - MIN_BLOB + 1);
	case 1: case 2: case 3:
		return MIN_BLOB + (r >> 8) % 16384;
	default:
		return MIN_BLOB + (r >> 8) % 2048;
	}
}

static void corrupt(struct thread *t, const char *what, uint32_t k)
{
	if (t->corrupt++ < 10)
		fprintf(stderr, "fleet_store_stress: thread %u: %s (agent %u)\n", t->worker, what, k);
}

/* Verifies a snapshot read for agent `want` (UINT32_MAX: any). Returns its
 * checksum, 0 after reporting a corruption. */
static uint64_t verify(struct thread *t, const struct fleet_snapshot *p, uint32_t want)
{
	struct blob_head h;
	uint64_t sum, stored;
	unsigned org_no, agent_no;

	t->verified++;
	if (p->len < MIN_BLOB || p->len > FLEET_BLOB_MAX)
		return corrupt(t, "bad length", want), 0;
	memcpy(&h, p->data, sizeof h);
	memcpy(&stored, p->data + p->len - 8, 8);
	sum = checksum(p->data, p->len - 8);
	if (h.magic != MAGIC || h.len != p->len || sum != stored)
		return corrupt(t, "torn or foreign blob", want), 0;
	if (sscanf(p->org, "org-%u", &org_no) != 1 || sscanf(p->agent, "agent-%u", &agent_no) != 1 ||
	    strlen(p->org) != p->org_len || strlen(p->agent) != p->agent_len)
		return corrupt(t, "bad ids in the header", want), 0;
	if (agent_no * ORGS + org_no != h.key || (want != UINT32_MAX && h.key != want))
		return corrupt(t, "blob of another agent", want), 0;
	if (h.received_ms != p->received_ms)
		return corrupt(t, "header and blob from different publishes", want), 0;
	return sum ? sum : 1;
}

static void hold(struct thread *t, const struct fleet_snapshot *p, uint64_t sum)
{
	if (t->nheld < HELD && sum)
		t->held[t->nheld++] = (struct held){p, sum, p->received_ms, p->len};
}

/* What this thread holds must be exactly as it was when first read. */
static void recheck_and_drop(struct thread *t)
{
	for (unsigned i = 0; i < t->nheld; i++) {
		struct held *h = &t->held[i];
		if (h->p->len != h->len || h->p->received_ms != h->received_ms ||
		    verify(t, h->p, UINT32_MAX) != h->sum)
			corrupt(t, "held snapshot changed before the quiescent state", UINT32_MAX);
	}
	t->nheld = 0;
}

/* A miss of agent k by a lookup that began after reading pub (its
 * published_ms then) is a lost report, unless a sweep with a cutoff above
 * pub began before the miss: `issued` is raised before every sweep, and
 * the miss is ordered after the sweep's forget of the agent. */
static bool lost(uint32_t k, int64_t pub)
{
	if (k < hot)
		return atomic_load_explicit(&published[k], memory_order_acquire);
	return pub && atomic_load(&issued) <= pub;
}

static void publish(struct thread *t)
{
	uint64_t r = next(&t->rng);
	/* Half hot (any thread), half this thread's own churning agents. */
	uint32_t per = (agents - hot) / nthreads;
	uint32_t k = r % 2 || !per ? (uint32_t)(r >> 1) % hot
				   : hot + (uint32_t)(r >> 1) % per * nthreads + t->worker;
	size_t len = blob_len(&t->rng), al;
	char org[16], agent[32];
	int64_t now = atomic_fetch_add(&clock_ms, 1) + (k < hot ? HOT_AHEAD : 0);
	struct blob_head h = {MAGIC, (uint32_t)len, k, t->worker, now, t->publishes};
	uint64_t sum;
	int rc;

	memcpy(t->blob, &h, sizeof h);
	for (size_t i = sizeof h; i + 8 < len; i += 8) {
		uint64_t x = next(&t->rng);
		memcpy(t->blob + i, &x, len - 8 - i < 8 ? len - 8 - i : 8);
	}
	sum = checksum(t->blob, len - 8);
	memcpy(t->blob + len - 8, &sum, 8);
	al = ids(k, org, agent);
	rc = fleet_publish(&store, t->worker, org, strlen(org), agent, al, t->blob, len, now);
	t->publishes++;
	if (rc == -ENOSPC) {
		t->refused++;
		return;
	}
	if (rc) {
		corrupt(t, "publish failed", k);
		return;
	}
	atomic_store_explicit(&published[k], 1, memory_order_release);
	if (k >= hot)
		atomic_store_explicit(&published_ms[k], now, memory_order_release);
	/* Ours or a later one, never nothing. */
	const struct fleet_snapshot *p = fleet_lookup(&store, t->worker, org, strlen(org), agent, al);
	if (!p) {
		if (lost(k, now))
			corrupt(t, "lookup after publish found nothing", k);
	} else {
		hold(t, p, verify(t, p, k));
	}
}

static void lookup(struct thread *t)
{
	uint32_t k = (uint32_t)(next(&t->rng) % agents);
	char org[16], agent[32];
	size_t al = ids(k, org, agent);
	const struct fleet_snapshot *p;
	int64_t pub = k < hot ? 0 : atomic_load_explicit(&published_ms[k], memory_order_acquire);

	t->lookups++;
	p = fleet_lookup(&store, t->worker, org, strlen(org), agent, al);
	if (!p) {
		if (lost(k, pub))
			corrupt(t, "published agent lost", k);
		return;
	}
	uint64_t sum = verify(t, p, k);
	if (next(&t->rng) % 4 == 0)
		hold(t, p, sum);
}

/* A pass as the exposition makes it: agents linked after it began are
 * left to the next, so each agent is met once. */
static void iterate(struct thread *t)
{
	uint64_t mark = fleet_links(&store);
	uint32_t n = fleet_agent_slots(&store);

	t->iterations++;
	memset(t->seen, 0, agents);
	memset(t->seen_raw, 0, agents);
	for (uint32_t i = 0; i < n; i++) {
		const struct fleet_snapshot *p = fleet_snapshot_at(&store, t->worker, i);
		if (!p)
			continue;
		if (p->slot != i)
			corrupt(t, "snapshot in the wrong slot", i);
		uint64_t sum = verify(t, p, UINT32_MAX);
		if (!sum)
			continue;
		uint32_t k;
		memcpy(&k, p->data + offsetof(struct blob_head, key), 4);
		if (k >= agents) {
			corrupt(t, "no such agent", k);
			continue;
		}
		t->met_twice += t->seen_raw[k]++ != 0;
		if (p->born <= mark && t->seen[k]++)
			corrupt(t, "agent twice in one iteration", k);
		if (next(&t->rng) % 64 == 0)
			hold(t, p, sum);
	}
}

static void sweep(struct thread *t)
{
	int64_t cutoff = atomic_load(&clock_ms) - window, was = atomic_load(&issued);

	/* Raised before the sweep, to at least its cutoff. */
	while (was < cutoff && !atomic_compare_exchange_weak(&issued, &was, cutoff))
		;
	t->sweeps++;
	t->forgot += fleet_forget(&store, t->worker, cutoff, 64, &t->cursor);
}

static void *run(void *arg)
{
	struct thread *t = arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		uint64_t r = next(&t->rng) % 1000;
		if (r < 450)
			publish(t);
		else if (r < 940)
			lookup(t);
		else if (r < 942)
			iterate(t);
		else if (r < 950)
			sweep(t);
		else if (r < 951) {
			/* A spell offline: others reclaim without us. */
			recheck_and_drop(t);
			fleet_offline(&store, t->worker);
			struct timespec ts = {0, (long)(next(&t->rng) % 2000000)};
			nanosleep(&ts, NULL);
			fleet_online(&store, t->worker);
		} else {
			recheck_and_drop(t);
			fleet_quiescent(&store, t->worker);
		}
	}
	recheck_and_drop(t);
	fleet_offline(&store, t->worker);
	return NULL;
}

int main(int argc, char **argv)
{
	double seconds = 10;
	size_t mib = 64;
	struct thread *th;
	struct timespec t0, t1;
	int c, rc;

	while ((c = getopt(argc, argv, "t:s:a:m:w:")) != -1) {
		switch (c) {
		case 't': nthreads = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 's': seconds = strtod(optarg, NULL); break;
		case 'a': agents = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'm': mib = strtoul(optarg, NULL, 10); break;
		case 'w': window = strtoll(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: %s [-t threads] [-s seconds] [-a agents] [-m MiB] "
				"[-w window]\n", argv[0]);
			return 2;
		}
	}
	if (!nthreads || nthreads > 256 || agents < 16 || agents > 1000000 || !mib ||
	    window < 0) {
		fprintf(stderr, "fleet_store_stress: bad arguments\n");
		return 2;
	}
	hot = agents / 8;
	if (!window)
		window = 4 * (int64_t)agents; /* about a fifth of the churning agents lapse */
	/* Twice the slots: a forgotten slot comes back a grace period after
	 * its agent left, and the agent may be back first. */
	rc = fleet_store_init(&store, 2 * agents, nthreads, mib << 20);
	if (rc) {
		fprintf(stderr, "fleet_store_stress: init: %s\n", strerror(-rc));
		return 1;
	}
	published = calloc(agents, 1);
	published_ms = calloc(agents, sizeof *published_ms);
	th = calloc(nthreads, sizeof *th);
	if (!published || !published_ms || !th)
		return 1;
	for (uint32_t i = 0; i < nthreads; i++) {
		th[i].worker = i;
		th[i].rng = 0x9e3779b97f4a7c15ull * (i + 1) ^ (uint64_t)time(NULL);
		th[i].blob = malloc(FLEET_BLOB_MAX);
		th[i].seen = malloc(agents);
		th[i].seen_raw = malloc(agents);
		if (!th[i].blob || !th[i].seen || !th[i].seen_raw)
			return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 0; i < nthreads; i++)
		if (pthread_create(&th[i].id, NULL, run, &th[i]))
			return 1;
	struct timespec d = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&d, NULL);
	atomic_store(&stop, true);
	for (uint32_t i = 0; i < nthreads; i++)
		pthread_join(th[i].id, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	/* Quiet now: every agent that must be there is, whole, exactly once,
	 * and the counts match what lookups find. */
	struct thread fin = {.worker = 0, .seen = th[0].seen, .seen_raw = th[0].seen_raw};
	uint32_t lost_n = 0, found = 0;
	uint64_t forgot = 0;
	fleet_online(&store, 0);
	for (uint32_t k = 0; k < agents; k++) {
		char org[16], agent[32];
		size_t al = ids(k, org, agent);
		const struct fleet_snapshot *p = fleet_lookup(&store, 0, org, strlen(org), agent, al);
		if (!p) {
			lost_n += lost(k, atomic_load(&published_ms[k]));
			continue;
		}
		found++;
		verify(&fin, p, k);
	}
	iterate(&fin);
	fin.nheld = 0;
	uint32_t in_slots = 0;
	for (uint32_t i = 0; i < fleet_agent_slots(&store); i++)
		in_slots += fleet_snapshot_at(&store, 0, i) != NULL;
	if (lost_n)
		corrupt(&fin, "published agents not found at the end", lost_n);
	if (fin.met_twice)
		corrupt(&fin, "an agent in two slots at the end", UINT32_MAX);
	if (fleet_agent_count(&store) != found || in_slots != found)
		corrupt(&fin, "agent count differs from the agents found", found);
	for (uint32_t i = 0; i < nthreads; i++)
		forgot += th[i].forgot;
	if (fleet_forgotten(&store) != forgot)
		corrupt(&fin, "forgotten count differs from the sweeps' sum", (uint32_t)forgot);

	uint64_t pub = 0, ref = 0, look = 0, it = 0, ver = fin.verified, bad = fin.corrupt;
	uint64_t sw = 0, twice = 0;
	for (uint32_t i = 0; i < nthreads; i++) {
		pub += th[i].publishes, ref += th[i].refused, look += th[i].lookups;
		it += th[i].iterations, ver += th[i].verified, bad += th[i].corrupt;
		sw += th[i].sweeps, twice += th[i].met_twice;
	}
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("fleet_store_stress: %u threads, %.1f s, %u agents, %zu MiB, window %" PRId64
	       ": %" PRIu64 " publishes (%" PRIu64 " refused: memory or slots), %" PRIu64
	       " lookups, %" PRIu64 " iterations (%" PRIu64 " agents met again in a later"
	       " slot, skipped), %" PRIu64 " sweeps forgot %" PRIu64 " agents, %" PRIu64
	       " snapshots verified, %zu MiB carved, %u agents at the end, %" PRIu64
	       " corrupt: %s\n",
	       nthreads, secs, agents, mib, window, pub, ref, look, it, twice, sw, forgot, ver,
	       fleet_memory_carved(&store) >> 20, found, bad, bad ? "FAIL" : "OK");

	for (uint32_t i = 0; i < nthreads; i++) {
		free(th[i].blob);
		free(th[i].seen);
		free(th[i].seen_raw);
	}
	free(th);
	free(published);
	free(published_ms);
	fleet_store_fini(&store);
	return bad ? 1 : 0;
}
