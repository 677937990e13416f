/*
 * Threaded stress of the database thread's queues, wake-ups and result
 * publication (include/ringside/db.h), meant for ThreadSanitizer.
 *
 * N threads each play one worker: a worker owns S request slots; each
 * pass it submits every free slot (a query that returns its own random
 * parameter), kicks once, then takes back the slots whose token came
 * back, checking that the token is the slot's current generation (not a
 * stale or doubled post) and that the result, read after `done` with
 * acquire order, is DB_OK carrying that slot's own value, or
 * DB_UNAVAILABLE. Worker passes sleep at random now and then, so the db
 * thread goes to sleep and must be woken by kicks: a lost wakeup shows as
 * a worker whose slots never come back (reported after 10 s).
 *
 * With a server (-u URL, or RINGSIDE_TEST_DATABASE_URL) the queries run;
 * without one every request fails at once (no connection), which still
 * drives the queues, the kicks and the publication as fast as they go.
 *
 *   clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=thread -Iinclude \
 *     -I/usr/include/postgresql -Isrc/db -pthread -o build/stress/db_queue_stress \
 *     tests/stress/db_queue_stress.c src/db/db.c src/db/result.c src/db/migrate.c \
 *     src/log.c build/gen/db_migrations.c -lpq
 * (make stress builds and runs it).
 *
 * Usage: db_queue_stress [-t threads] [-s seconds] [-q depth] [-n slots]
 *                        [-c connections] [-u URL]
 * (defaults 3, 10, 64, 256, 2). Prints one summary line; exits 1 on any
 * wrong, lost or doubled result, 2 on bad usage.
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

#include "db_int.h"
#include "ringside/log.h"

#define NOWHERE "host=/nonexistent-ringside-stress dbname=none"

static const struct db_statement_def statements[] = {
	{"echo", DB_CLASS_READ, "SELECT $1::text"},
};

struct slot {
	struct db_result r;
	char buf[64];
	char want[24];
	uint32_t gen;
	bool busy;
	_Atomic bool back; /* set by the post, read by the owning worker */
};

struct worker {
	uint32_t id;
	struct slot *slots;
	uint64_t rng;
	uint64_t sent, ok, unavailable, eagain, bad;
	pthread_t th;
};

static struct db *db;
static struct worker *workers;
static uint32_t nslots = 256;
static _Atomic bool stop_all;
static _Atomic uint64_t strays;

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* token: slot index << 32 | generation. */
static void post(void *arg, uint32_t worker, uint64_t token)
{
	(void)arg;
	uint32_t i = (uint32_t)(token >> 32);
	if (i >= nslots || (uint32_t)token != workers[worker].slots[i].gen) {
		atomic_fetch_add(&strays, 1);
		return;
	}
	/* Release: the worker that sees it sees this post happened. The
	 * result itself is published by `done`, which the worker checks. */
	atomic_store_explicit(&workers[worker].slots[i].back, true, memory_order_release);
}

static void *run(void *arg)
{
	struct worker *w = arg;
	int64_t last_progress = now_ms();

	while (!atomic_load_explicit(&stop_all, memory_order_relaxed)) {
		bool progress = false;
		for (uint32_t i = 0; i < nslots; i++) {
			struct slot *s = &w->slots[i];
			if (s->busy) {
				if (!atomic_load_explicit(&s->back, memory_order_acquire))
					continue;
				if (atomic_load_explicit(&s->r.done, memory_order_acquire) != 1) {
					w->bad++; /* posted before done */
				} else if (s->r.status == DB_OK) {
					uint32_t len;
					const char *v = db_value(&s->r, 0, 0, &len);
					if (!v || len != strlen(s->want) || memcmp(v, s->want, len))
						w->bad++;
					else
						w->ok++;
				} else if (s->r.status == DB_UNAVAILABLE) {
					w->unavailable++;
				} else {
					w->bad++;
				}
				s->busy = false;
				progress = true;
			}
			struct db_request q;
			memset(&q, 0, sizeof q);
			s->gen++;
			atomic_store_explicit(&s->back, false, memory_order_relaxed);
			snprintf(s->want, sizeof s->want, "%u:%" PRIu64, w->id, next_rand(&w->rng));
			memset(&s->r, 0, sizeof s->r);
			s->r.buf = s->buf;
			s->r.cap = sizeof s->buf;
			q.statement = 0;
			q.result = &s->r;
			q.token = (uint64_t)i << 32 | s->gen;
			if (!db_request_param(&q, s->want, strlen(s->want)))
				abort();
			int rc = db_submit(db, w->id, &q);
			if (rc == -EAGAIN) {
				w->eagain++;
				break; /* the pass ends; the queue drains meanwhile */
			}
			if (rc)
				abort();
			s->busy = true;
			w->sent++;
		}
		db_kick(db, w->id);
		if (progress)
			last_progress = now_ms();
		else if (now_ms() - last_progress > 10000) {
			fprintf(stderr, "db_queue_stress: worker %u: no result for 10 s (lost wakeup?)\n",
				w->id);
			w->bad++;
			break;
		}
		/* Now and then a quiet spell: the db thread goes to sleep. */
		if (next_rand(&w->rng) % 64 == 0) {
			struct timespec ts = {0, (long)(next_rand(&w->rng) % 2000000)};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	uint32_t threads = 3, seconds = 10, depth = 64, conns = 2;
	const char *url = getenv("RINGSIDE_TEST_DATABASE_URL");
	int c;

	while ((c = getopt(argc, argv, "t:s:q:n:c:u:")) != -1) {
		switch (c) {
		case 't': threads = (uint32_t)atoi(optarg); break;
		case 's': seconds = (uint32_t)atoi(optarg); break;
		case 'q': depth = (uint32_t)atoi(optarg); break;
		case 'n': nslots = (uint32_t)atoi(optarg); break;
		case 'c': conns = (uint32_t)atoi(optarg); break;
		case 'u': url = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-t threads] [-s seconds] [-q depth] [-n slots] "
					"[-c connections] [-u URL]\n", argv[0]);
			return 2;
		}
	}
	if (!threads || !nslots || !conns) {
		fprintf(stderr, "db_queue_stress: -t, -n and -c must be at least 1\n");
		return 2;
	}
	bool server = url && url[0];
	if (!server)
		url = NOWHERE;
	log_threshold = LOG_ERROR; /* connection churn is expected here */
	workers = calloc(threads, sizeof *workers);
	for (uint32_t i = 0; i < threads; i++) {
		workers[i].id = i;
		workers[i].rng = 0x9E3779B97F4A7C15ull * (i + 1);
		workers[i].slots = calloc(nslots, sizeof(struct slot));
	}
	struct db_config cfg = {
		.url = url, .connections = conns, .workers = threads, .queue_depth = depth,
		.timeout_ms = {1000, 2000, 5000}, .post = post, .post_arg = NULL,
	};
	if (db_start_with(&db, &cfg, statements, 1)) {
		fprintf(stderr, "db_queue_stress: db_start failed\n");
		return 1;
	}
	for (uint32_t i = 0; i < threads; i++)
		pthread_create(&workers[i].th, NULL, run, &workers[i]);
	sleep(seconds);
	atomic_store(&stop_all, true);
	for (uint32_t i = 0; i < threads; i++)
		pthread_join(workers[i].th, NULL);
	/* Every slot still out comes back at the stop, once. */
	db_stop(db);
	uint64_t sent = 0, ok = 0, unav = 0, eagain = 0, bad = 0, out = 0;
	for (uint32_t i = 0; i < threads; i++) {
		struct worker *w = &workers[i];
		for (uint32_t k = 0; k < nslots; k++) {
			struct slot *s = &w->slots[k];
			if (!s->busy)
				continue;
			out++;
			if (!atomic_load_explicit(&s->back, memory_order_acquire) ||
			    atomic_load_explicit(&s->r.done, memory_order_acquire) != 1)
				bad++;
		}
		sent += w->sent;
		ok += w->ok;
		unav += w->unavailable;
		eagain += w->eagain;
		bad += w->bad;
		free(w->slots);
	}
	free(workers);
	printf("db_queue_stress: %" PRIu64 " sent, %" PRIu64 " ok, %" PRIu64 " unavailable, %" PRIu64
	       " out at the stop, %" PRIu64 " queue full, %" PRIu64 " strays, %" PRIu64 " bad (%s)\n",
	       sent, ok, unav, out, eagain, (uint64_t)atomic_load(&strays), bad,
	       server ? "server" : "no server");
	return bad || atomic_load(&strays) || sent != ok + unav + out ? 1 : 0;
}
