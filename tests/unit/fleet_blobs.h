/*
 * Blobs that say which agent and version they are, byte for byte, for the
 * fleet store's unit tests (test_fleet_store.c, test_fleet_persist.c): a
 * snapshot read back is checked against the bytes it must hold.
 */
#ifndef RINGSIDE_TESTS_FLEET_BLOBS_H
#define RINGSIDE_TESTS_FLEET_BLOBS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ringside/fleet_store.h"

static inline void fill(unsigned char *b, size_t len, unsigned agent, unsigned version)
{
	uint32_t x = agent * 2654435761u ^ version * 40503u ^ (uint32_t)len;

	for (size_t i = 0; i < len; i++) {
		x = x * 1664525u + 1013904223u;
		b[i] = (unsigned char)(x >> 24);
	}
}

/* p holds the len-byte blob of (agent, version). */
static inline bool holds(const struct fleet_snapshot *p, size_t len, unsigned agent,
			 unsigned version)
{
	static unsigned char want[FLEET_BLOB_MAX];

	if (!p || p->len != len)
		return false;
	fill(want, len, agent, version);
	return !memcmp(p->data, want, len);
}

#endif
