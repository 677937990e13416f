/*
 * The fleet store's cost per call: ns per fleet_publish (1 KiB and 8 KiB
 * blobs) and per fleet_lookup, on one thread and on two (each its own
 * worker, on its own half of the agents, as SO_REUSEPORT spreads them).
 * Each thread calls fleet_quiescent every PASS calls, as a worker loop
 * would once per pass. Agents are visited with a stride, so their slots
 * and blocks are not all hot in L1. Then, on one thread, the sweep for
 * silent agents (fleet_forget): ns per slot visited when nobody is due,
 * ns per agent forgotten, and ns per first publish of an agent that takes
 * a forgotten agent's slot.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -pthread -o build/perf/bench_fleet_store \
 *      perf/bench_fleet_store.c src/fleet/store.c src/common/siphash.c
 *   build/perf/bench_fleet_store
 *
 * Prints one line per figure.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#include "ringside/fleet_store.h"

#define AGENTS 10000
#define PASS 64
#define STRIDE 7919 /* prime, coprime with AGENTS */

static struct fleet_store store;
static char orgs[AGENTS][16], ids[AGENTS][40];
static size_t org_len[AGENTS], id_len[AGENTS];
static unsigned char blob[8192];
static pthread_barrier_t go;
static volatile uint64_t sink;

enum op { PUBLISH, LOOKUP };

struct job {
	pthread_t t;
	uint32_t worker, first, count; /* agents first .. first + count - 1 */
	enum op op;
	size_t len;
	uint64_t ops;
	double ns;
};

static void *run(void *arg)
{
	struct job *j = arg;
	uint32_t k = 0;
	uint64_t acc = 0;

	fleet_online(&store, j->worker);
	pthread_barrier_wait(&go);
	double t0 = (bench_seconds() * 1e9);
	for (uint64_t i = 0; i < j->ops; i++) {
		uint32_t a = j->first + k;
		k = (k + STRIDE) % j->count;
		if (j->op == PUBLISH) {
			if (fleet_publish(&store, j->worker, orgs[a], org_len[a], ids[a], id_len[a],
					  blob, j->len, (int64_t)i)) {
				fprintf(stderr, "bench_fleet_store: publish failed\n");
				exit(1);
			}
		} else {
			const struct fleet_snapshot *p =
				fleet_lookup(&store, j->worker, orgs[a], org_len[a], ids[a], id_len[a]);
			acc += p->len;
		}
		if (i % PASS == PASS - 1)
			fleet_quiescent(&store, j->worker);
	}
	j->ns = (bench_seconds() * 1e9) - t0;
	/* Done: must not hold back the other thread's reclamation. */
	fleet_offline(&store, j->worker);
	sink += acc;
	return NULL;
}

/* Runs op on `threads` threads, each on its share of the agents; returns
 * the mean ns per call of a thread. */
static double measure(enum op op, size_t len, uint32_t threads, uint64_t ops)
{
	struct job j[2];
	double ns = 0;

	pthread_barrier_init(&go, NULL, threads);
	for (uint32_t i = 0; i < threads; i++) {
		j[i] = (struct job){.worker = i, .first = i * (AGENTS / threads),
				    .count = AGENTS / threads, .op = op, .len = len, .ops = ops};
		pthread_create(&j[i].t, NULL, run, &j[i]);
	}
	for (uint32_t i = 0; i < threads; i++) {
		pthread_join(j[i].t, NULL);
		ns += j[i].ns / (double)ops;
	}
	pthread_barrier_destroy(&go);
	return ns / threads;
}

/* The sweep on one thread, over a fresh store of AGENTS 1 KiB agents. */
static void measure_forget(void)
{
	uint32_t cursor = 0, forgot = 0;
	double t0, ns;

	if (fleet_store_init(&store, AGENTS, 1, (size_t)64 << 20)) {
		fprintf(stderr, "bench_fleet_store: init failed\n");
		exit(1);
	}
	for (uint32_t a = 0; a < AGENTS; a++)
		if (fleet_publish(&store, 0, orgs[a], org_len[a], ids[a], id_len[a], blob, 1024, 1000)) {
			fprintf(stderr, "bench_fleet_store: publish failed\n");
			exit(1);
		}
	/* Nobody due: a slot read and a received_ms compare each. */
	t0 = bench_seconds() * 1e9;
	for (int i = 0; i < 200; i++)
		forgot += fleet_forget(&store, 0, 1000, AGENTS, &cursor);
	ns = (bench_seconds() * 1e9 - t0) / (200.0 * AGENTS);
	printf("fleet_forget, nobody due (%u agents): %.1f ns per slot visited\n", AGENTS, ns);
	/* Everybody due, in sweeps of 256 slots with a pass between, as the
	 * server runs them; then every agent again, into forgotten slots. */
	for (int round = 0; round < 5; round++) {
		t0 = bench_seconds() * 1e9;
		for (uint32_t n = 0; n < AGENTS; n += 256) {
			forgot += fleet_forget(&store, 0, 2000 + round, 256, &cursor);
			fleet_quiescent(&store, 0);
		}
		ns = (bench_seconds() * 1e9 - t0) / AGENTS;
		fleet_quiescent(&store, 0);
		double t1 = bench_seconds() * 1e9;
		for (uint32_t a = 0; a < AGENTS; a++) {
			uint32_t k = (uint32_t)((uint64_t)a * STRIDE % AGENTS);
			if (fleet_publish(&store, 0, orgs[k], org_len[k], ids[k], id_len[k], blob, 1024,
					  2000 + round)) {
				fprintf(stderr, "bench_fleet_store: publish failed\n");
				exit(1);
			}
			if (a % PASS == PASS - 1)
				fleet_quiescent(&store, 0);
		}
		double relink = (bench_seconds() * 1e9 - t1) / AGENTS;
		if (round == 4)
			printf("fleet_forget, everybody due: %.1f ns per agent forgotten; "
			       "fleet_publish of an agent into a forgotten slot: %.1f ns\n",
			       ns, relink);
	}
	if (forgot != 5 * AGENTS || fleet_agent_count(&store) != AGENTS ||
	    fleet_agent_slots(&store) != AGENTS) {
		fprintf(stderr, "bench_fleet_store: %u forgotten, %u agents in %u slots\n", forgot,
			fleet_agent_count(&store), fleet_agent_slots(&store));
		exit(1);
	}
	fleet_store_fini(&store);
}

int main(void)
{
	static const size_t lens[] = {1024, 8192};

	for (uint32_t a = 0; a < AGENTS; a++) {
		org_len[a] = (size_t)snprintf(orgs[a], sizeof orgs[a], "org-%u", a % 13);
		id_len[a] = (size_t)snprintf(ids[a], sizeof ids[a],
					     "d6a1c0de-7a4f-4e2b-9c1d-%012u", a);
	}
	for (size_t i = 0; i < sizeof blob; i++)
		blob[i] = (unsigned char)(i * 131);
	for (uint32_t threads = 1; threads <= 2; threads++) {
		for (int l = 0; l < 2; l++) {
			/* A fresh store per blob size: a carved chunk stays in its
			 * size class, and the bench should not measure the other
			 * size's leftovers. Memory is touched only as used. */
			if (fleet_store_init(&store, AGENTS, 2, (size_t)512 << 20)) {
				fprintf(stderr, "bench_fleet_store: init failed\n");
				return 1;
			}
			/* A worker not running must not hold back reclamation. */
			fleet_offline(&store, 0);
			fleet_offline(&store, 1);
			measure(PUBLISH, lens[l], threads, AGENTS); /* warm: every agent, blocks carved */
			double ns = measure(PUBLISH, lens[l], threads, lens[l] == 1024 ? 2000000 : 500000);
			printf("fleet_publish %zu KiB blob, %u thread%s: %.1f ns/op per thread (%zu MiB carved)\n",
			       lens[l] / 1024, threads, threads > 1 ? "s" : "", ns,
			       fleet_memory_carved(&store) >> 20);
			if (l == 1) {
				ns = measure(LOOKUP, 0, threads, 4000000);
				printf("fleet_lookup (%u agents), %u thread%s: %.1f ns/op per thread\n",
				       AGENTS, threads, threads > 1 ? "s" : "", ns);
			}
			fleet_store_fini(&store);
		}
	}
	measure_forget();
	return 0;
}
