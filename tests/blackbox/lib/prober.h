/*
 * A /health prober: a thread that asks GET /health on a connection of its
 * own at a steady pace and keeps the worst wait, to tell whether something
 * else (a long scrape, a big fleet) holds the server up.
 */
#ifndef RINGSIDE_TESTS_BB_PROBER_H
#define RINGSIDE_TESTS_BB_PROBER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Sends GET /health every every_ms. Start it, do the work, stop it:
 * h_prober_stop joins the thread and fails the test if a probe failed.
 */
struct h_prober {
	uint16_t port;
	int every_ms;
	_Atomic bool stop;
	int64_t worst_ms;     /* the longest wait for an answer */
	int count;            /* answers */
	char failure[256];
	pthread_t thread;
};

void h_prober_start(struct h_prober *p, uint16_t port, int every_ms);
void h_prober_stop(struct h_prober *p);

#endif
