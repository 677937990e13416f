/* Between tls.c, tls_identity.c and tls_ec.c only. */
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

#endif
