/*
 * HTTPS from the workers themselves (DESIGN.md "TLS"): BearSSL's server
 * engine behind the transport seam (ringside/transport.h), on the
 * worker's own buffers.
 *
 * Policy: TLS 1.2 only; ECDHE with AES-GCM, then ChaCha20-Poly1305, in
 * the server's order; no renegotiation; ALPN "http/1.1" offered (a
 * client without ALPN is served all the same); close_notify before an
 * orderly close; a session cache shared by the workers (a client's next
 * connection lands on any of them), so a resumed handshake skips the
 * public-key work.
 *
 * The identity (certificate chain and key) is loaded by the main thread
 * and published through an atomic pointer; connections take the one
 * current at their accept. A replaced identity is kept until
 * tls_identities_free (shutdown): connections accepted before a reload
 * still point at it, and a few KB per SIGHUP is cheaper than counting
 * references across workers.
 */
#ifndef RINGSIDE_TLS_H
#define RINGSIDE_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "ringside/transport.h"

/* Which input tls_identity_load refused (the caller names its flag). */
enum tls_load_error {
	TLS_LOAD_BAD_CERT = -1, /* --tls-cert: unreadable, no certificate, bad DER */
	TLS_LOAD_BAD_KEY = -2,  /* --tls-key: unreadable, unsupported, too weak, or not the cert's */
};

struct tls_identity;

/*
 * Reads a PEM certificate chain (leaf first) and a PEM private key (RSA
 * of at least 2048 bits, or EC P-256; PKCS#8 or the traditional form),
 * and checks that the key is the leaf certificate's (the public key
 * derived from the private one equals the certificate's). Returns 0 and
 * *out (free with tls_identity_free unless installed), or a
 * tls_load_error with a reason in err.
 */
int tls_identity_load(const char *cert_path, const char *key_path, struct tls_identity **out,
		      char *err, size_t errcap);
void tls_identity_free(struct tls_identity *id);

/* Makes id the identity of new handshakes (main thread). The one it
 * replaces is kept until tls_identities_free. */
void tls_identity_install(struct tls_identity *id);

/* "ec" or "rsa", and the leaf's size in bits, for the start-up log. */
const char *tls_identity_describe(const struct tls_identity *id, unsigned *bits);

/* Frees the current and every replaced identity: no connection may be
 * open any more (the workers have stopped). */
void tls_identities_free(void);

/*
 * A worker's TLS memory: one slot per connection slot (an engine, its
 * record buffers, input that had to wait), in one mapping touched only as
 * connections use it. A closed connection's slot is wiped and kept for
 * the next ones, up to a few dozen per worker; beyond, its pages go back
 * to the kernel.
 */
struct tls_pool {
	unsigned char *base;
	size_t slot_size;
	uint32_t count;
	void *rng;          /* br_hmac_drbg_context: seeds each connection's engine */
	uint64_t handshakes; /* engines seeded since the last reseed from the system */
	uint32_t warm;       /* closed slots kept in RAM, wiped, for the next connections */
};

/* Reserves the address space for `slots` connections and seeds the
 * worker's generator. 0, -ENOMEM, or -EIO (no system randomness). */
int tls_pool_init(struct tls_pool *p, uint32_t slots);
void tls_pool_fini(struct tls_pool *p);
/* Bytes of the pool in RAM (mincore; any thread). */
uint64_t tls_pool_resident(const struct tls_pool *p);

/*
 * Makes t a TLS server transport for connection slot `slot`, with the
 * identity current now. No allocation. On failure (no identity) t->error
 * is set: the host closes the connection.
 */
void tls_conn_open(struct tls_pool *p, uint32_t slot, struct transport *t);
/* Bytes the connection's TLS state holds now: its engine and record
 * buffers, and input waiting in its stash. */
uint64_t tls_conn_held(const struct transport *t);
/* The connection's slot is free again (nothing of it is in flight): its
 * pages go back to the kernel. A handshake it never finished is counted
 * abandoned in s's metrics. */
void tls_conn_release(struct tls_pool *p, struct server *s, struct transport *t);

extern const struct transport_class transport_tls;

#endif
