/* Between the files of src/net/tls*.c only. */
#ifndef RINGSIDE_TLS_INT_H
#define RINGSIDE_TLS_INT_H

#include <bearssl.h>

struct tls_identity;

/* The identity of new handshakes (any thread), or NULL before the first
 * install. */
const struct tls_identity *tls_identity_current(void);

/* Gives a connection's engine the identity's chain and key, with the
 * ServerKeyExchange signed by libcrypto (tls_identity.c). */
void tls_identity_attach(const struct tls_identity *id, br_ssl_server_context *sc);

/* The ECDHE arithmetic for BearSSL's engine: X25519 and P-256 through
 * libcrypto, any other curve through BearSSL's own code (tls_ec.c). */
extern const br_ec_impl tls_ec_libcrypto;

/* SHA-256 through libcrypto (the CPU's SHA instructions), as a BearSSL
 * hash class, and TLS 1.2's PRF on it (tls_sha256.c). */
extern const br_hash_class tls_sha256_libcrypto;
void tls_prf_sha256(void *dst, size_t len, const void *secret, size_t secret_len,
		    const char *label, size_t seed_num, const br_tls_prf_seed_chunk *seed);

#endif
