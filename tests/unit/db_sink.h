/*
 * What the db tests stand in for a worker with: a post function that
 * counts each token's returns (a token is worker << 32 | index), a gate
 * that can hold the db thread inside a post, and stderr captured around
 * a call (to read what was logged).
 */
#ifndef RINGSIDE_TEST_DB_SINK_H
#define RINGSIDE_TEST_DB_SINK_H

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringside/db.h"

struct sink {
	uint32_t workers, per_worker;
	_Atomic uint32_t *seen;   /* returns per token */
	_Atomic uint32_t posted;  /* all returns */
	_Atomic uint32_t strays;  /* tokens that name another worker, or none */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool closed;              /* the gate: posts wait while closed */
	_Atomic bool held;        /* a post is waiting at the gate */
};

static inline void sink_init(struct sink *s, uint32_t workers, uint32_t per_worker)
{
	memset(s, 0, sizeof *s);
	s->workers = workers;
	s->per_worker = per_worker;
	s->seen = calloc((size_t)workers * per_worker, sizeof *s->seen);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
}

static inline void sink_fini(struct sink *s)
{
	free(s->seen);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

static inline uint64_t sink_token(uint32_t worker, uint32_t i)
{
	return (uint64_t)worker << 32 | i;
}

static inline void sink_post(void *arg, uint32_t worker, uint64_t token)
{
	struct sink *s = arg;
	uint32_t w = (uint32_t)(token >> 32), i = (uint32_t)token;

	if (w != worker || w >= s->workers || i >= s->per_worker)
		atomic_fetch_add(&s->strays, 1);
	else
		atomic_fetch_add(&s->seen[(size_t)w * s->per_worker + i], 1);
	pthread_mutex_lock(&s->mu);
	while (s->closed) {
		atomic_store(&s->held, true);
		pthread_cond_wait(&s->cv, &s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add_explicit(&s->posted, 1, memory_order_release);
}

static inline void sink_gate(struct sink *s, bool closed)
{
	pthread_mutex_lock(&s->mu);
	s->closed = closed;
	if (!closed)
		atomic_store(&s->held, false);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static inline int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Waits until n posts in all came back; false after timeout_ms. */
static inline bool sink_wait(struct sink *s, uint32_t n, int timeout_ms)
{
	int64_t end = mono_ms() + timeout_ms;
	while (atomic_load_explicit(&s->posted, memory_order_acquire) < n) {
		if (mono_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* Every token of worker w below n came back exactly once. */
static inline bool sink_each_once(struct sink *s, uint32_t w, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (atomic_load(&s->seen[(size_t)w * s->per_worker + i]) != 1)
			return false;
	return true;
}

/* A request for statement st, its result in r (buffer buf of cap bytes,
 * may be NULL), params as C strings (NULL: SQL NULL), nparams of them. */
static inline void make_request(struct db_request *q, uint16_t st, struct db_result *r, char *buf,
				uint32_t cap, uint64_t token, int nparams, const char *const *params)
{
	memset(q, 0, sizeof *q);
	memset(r, 0, sizeof *r);
	q->statement = st;
	q->result = r;
	q->token = token;
	r->buf = buf;
	r->cap = cap;
	for (int i = 0; i < nparams; i++)
		if (!db_request_param(q, params[i], params[i] ? strlen(params[i]) : 0))
			abort();
}

/* stderr into a file while capturing; capture_end returns what was
 * written (malloc'd, NUL-terminated). */
struct capture {
	int saved;
	FILE *f;
};

static inline void capture_begin(struct capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	c->saved = dup(2);
	dup2(fileno(c->f), 2);
}

static inline char *capture_end(struct capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	/* Written through fd 2: the FILE's own position knows nothing of it. */
	off_t n = lseek(fileno(c->f), 0, SEEK_END);
	char *out = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
	if (n > 0 && pread(fileno(c->f), out, (size_t)n, 0) != n)
		out[0] = '\0';
	fclose(c->f);
	return out;
}

#endif
