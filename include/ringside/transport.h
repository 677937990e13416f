/*
 * A transport between a socket and the connection engine (src/net/):
 * the identity transport (plain.c: the engine parses where the kernel
 * put the bytes, and its output is sent as it lies) and BearSSL's TLS
 * engine (tls.c, ringside/tls.h), neither touching the ring or the engine.
 *
 * Shaped like BearSSL's br_ssl_engine: caller-owned buffers (the host's
 * received bytes are valid during the call only; the records to send
 * stay valid, unchanged, until the host says how many went), no
 * allocation, an error that is sticky (once set, the host closes and the
 * transport takes nothing more), and an orderly goodbye of its own
 * (TLS: close_notify) sent before the connection closes.
 */
#ifndef RINGSIDE_TRANSPORT_H
#define RINGSIDE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct server_conn;
struct transport;

struct transport_class {
	const char *name;
	/* Bytes received from the socket: the application bytes they carry
	 * go to the engine (server_conn_input). */
	void (*recv)(struct transport *t, struct server *s, struct server_conn *c,
		     const char *data, size_t len);
	/* The bytes to send next, NULL if none now: the engine's output,
	 * as records. Valid and unchanged until `sent`. */
	const char *(*output)(struct transport *t, struct server *s, struct server_conn *c,
			      size_t *len);
	/* n bytes of the last output went out. */
	void (*sent)(struct transport *t, struct server *s, struct server_conn *c, size_t n);
	/* The engine ended the connection: queue the transport's goodbye.
	 * True if the host must send output before closing. */
	bool (*close)(struct transport *t, struct server *s, struct server_conn *c);
};

struct transport {
	const struct transport_class *cls;
	int error; /* sticky: 0, or a negative errno once it failed */
	void *state; /* the connection's own state (TLS: its engine); plain: NULL */
};

/* The identity transport: no state, no copies. */
extern const struct transport_class transport_plain;

#endif
