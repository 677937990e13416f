/*
 * A server_host (ringside/server.h) for code that drives the connection
 * engine with no ring and no socket: the engine's unit tests and its
 * fuzz targets. Sends are left for the caller to drain; closes and write
 * shutdowns are counted, and a close runs on_close if one is set (the
 * TLS fuzz target sends its transport's goodbye there); the peer is
 * 192.0.2.1:4000; access-log lines go to a buffer of 8 KiB, and a commit
 * of more than was reserved aborts.
 */
#ifndef RINGSIDE_TESTS_FAKE_HOST_H
#define RINGSIDE_TESTS_FAKE_HOST_H

#include "ringside/server.h"

struct fake_host_state {
	int closes, shutdowns;
	void (*on_close)(struct server *s, struct server_conn *c);
};

extern struct fake_host_state fake_host;
extern const struct server_host fake_server_host;

#endif
