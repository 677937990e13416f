/*
 * The elliptic-curve arithmetic of ECDHE for BearSSL's engine, done by
 * libcrypto (OpenSSL 3, already linked for the JWTs) for the two curves
 * clients offer first, X25519 and P-256; any other curve a client insists
 * on goes to BearSSL's own code.
 *
 * Why: BearSSL 0.6 as Debian builds it has only its 31-bit curve code, in
 * which one X25519 multiplication costs 101 µs on this project's machine
 * and a full handshake needs two (the server's share, then the shared
 * secret); libcrypto's takes 26 µs. BearSSL's engine keeps the protocol;
 * only the br_ec_impl under it changes.
 *
 * The conventions are BearSSL's (bearssl_ec.h): P-256 multipliers are
 * unsigned big-endian, X25519's are RFC 7748's byte strings; X25519
 * points are RFC 7748's 32 bytes, P-256 points uncompressed (65 bytes).
 * A failure returns 0, which fails the handshake.
 */
#include <bearssl.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/thread_object.h"
#include "tls_int.h"

#define X25519_LEN 32
#define P256_POINT_LEN 65 /* 0x04, X, Y */

/* BearSSL's code for what libcrypto is not asked to do: the curves' constants,
 * P-384 and P-521, and muladd (ECDSA verification, which a server without
 * client certificates never does). */
#define BEARSSL_EC (&br_ec_all_m31)

/* ---- X25519 ---- */

/* The multiplier as libcrypto's private key. BearSSL's X25519 code takes
 * RFC 7748's byte string as is (whatever bearssl_ec.h says of
 * multipliers in general), left-padded with zeros when shorter; each
 * side clamps it the same way. test_tls_ec checks both against BearSSL
 * and RFC 7748's vector. */
static bool x25519_scalar(unsigned char k[X25519_LEN], const unsigned char *x, size_t xlen)
{
	if (xlen > X25519_LEN)
		return false;
	memset(k, 0, X25519_LEN - xlen);
	memcpy(k + X25519_LEN - xlen, x, xlen);
	return true;
}

/*
 * The keys mulgen made, kept per worker thread until mul asks for the
 * same multiplier: loading a private key into libcrypto computes its
 * public key (30 µs here, as long as the shared secret's multiplication),
 * and a handshake's mul comes a round trip after its mulgen, with the
 * same multiplier. Other handshakes of the worker may come in between;
 * the key of one that never comes back is dropped when its entry is
 * reused (no secret was agreed with it).
 */
#define X25519_KEPT 16

struct x25519_kept {
	unsigned char k[X25519_LEN];
	EVP_PKEY *key; /* NULL: the entry is free */
};

struct x25519_keys {
	struct x25519_kept e[X25519_KEPT];
	unsigned next; /* the entry to reuse next */
};

static void kept_clear(struct x25519_kept *e)
{
	EVP_PKEY_free(e->key);
	e->key = NULL;
	OPENSSL_cleanse(e->k, sizeof e->k);
}

static void *keys_make(void)
{
	return calloc(1, sizeof(struct x25519_keys));
}

static void keys_free(void *p)
{
	struct x25519_keys *ks = p;
	for (unsigned i = 0; i < X25519_KEPT; i++)
		kept_clear(&ks->e[i]);
	free(ks);
}

static struct thread_object thread_keys = THREAD_OBJECT(keys_make, keys_free);

static size_t x25519_mulgen(unsigned char *R, const unsigned char *x, size_t xlen)
{
	unsigned char k[X25519_LEN];
	EVP_PKEY *key = x25519_scalar(k, x, xlen)
				? EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k, sizeof k)
				: NULL;
	size_t len = X25519_LEN;
	bool ok = key && EVP_PKEY_get_raw_public_key(key, R, &len) == 1 && len == X25519_LEN;
	struct x25519_keys *ks = ok ? thread_object_get(&thread_keys) : NULL;
	if (ks) {
		struct x25519_kept *e = &ks->e[ks->next];
		ks->next = (ks->next + 1) % X25519_KEPT;
		kept_clear(e);
		memcpy(e->k, k, sizeof k);
		e->key = key;
	} else {
		EVP_PKEY_free(key);
	}
	OPENSSL_cleanse(k, sizeof k);
	return ok ? X25519_LEN : 0;
}

/* The private key for x: mulgen's, taken out of the thread's keys, or
 * loaded anew. */
static EVP_PKEY *x25519_key(const unsigned char *x, size_t xlen)
{
	unsigned char k[X25519_LEN];
	if (!x25519_scalar(k, x, xlen))
		return NULL;
	EVP_PKEY *key = NULL;
	struct x25519_keys *ks = thread_object_get(&thread_keys);
	for (unsigned i = 0; ks && i < X25519_KEPT && !key; i++) {
		struct x25519_kept *e = &ks->e[i];
		if (e->key && CRYPTO_memcmp(e->k, k, sizeof k) == 0) {
			key = e->key;
			e->key = NULL;
			kept_clear(e);
		}
	}
	if (!key)
		key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k, sizeof k);
	OPENSSL_cleanse(k, sizeof k);
	return key;
}

/* The shared secret, over G. libcrypto refuses an all-zero result (a
 * small-order point from the peer), as RFC 7748 section 6.1 allows. */
static uint32_t x25519_mul(unsigned char *G, size_t Glen, const unsigned char *x, size_t xlen)
{
	if (Glen != X25519_LEN)
		return 0;
	EVP_PKEY *key = x25519_key(x, xlen);
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, G, Glen);
	EVP_PKEY_CTX *c = key ? EVP_PKEY_CTX_new(key, NULL) : NULL;
	size_t len = X25519_LEN;
	bool ok = c && peer && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
		  EVP_PKEY_derive(c, G, &len) == 1 && len == X25519_LEN;
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(key);
	return ok;
}

/* ---- P-256 ---- */

/* One group for the process: read-only once made (EC_POINT_mul takes it
 * const), so the workers share it. */
static EC_GROUP *p256;
static pthread_once_t p256_once = PTHREAD_ONCE_INIT;

static void p256_make(void)
{
	p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

/* x times the peer's point G, or the generator when G is NULL, into out
 * (uncompressed). libcrypto checks that G is on the curve; the product
 * may not be the point at infinity. */
static bool p256_mul(unsigned char out[P256_POINT_LEN], const unsigned char *G,
		     const unsigned char *x, size_t xlen)
{
	pthread_once(&p256_once, p256_make);
	if (!p256)
		return false;
	BN_CTX *bc = BN_CTX_new();
	BIGNUM *k = BN_bin2bn(x, (int)xlen, NULL);
	EC_POINT *peer = G ? EC_POINT_new(p256) : NULL;
	EC_POINT *r = EC_POINT_new(p256);
	if (k)
		BN_set_flags(k, BN_FLG_CONSTTIME);
	bool ok = bc && k && r && !BN_is_zero(k) &&
		  (!G || (peer && EC_POINT_oct2point(p256, peer, G, P256_POINT_LEN, bc) == 1)) &&
		  EC_POINT_mul(p256, r, G ? NULL : k, peer, G ? k : NULL, bc) == 1 &&
		  !EC_POINT_is_at_infinity(p256, r) &&
		  EC_POINT_point2oct(p256, r, POINT_CONVERSION_UNCOMPRESSED, out, P256_POINT_LEN,
				     bc) == P256_POINT_LEN;
	EC_POINT_clear_free(r);
	EC_POINT_free(peer);
	BN_clear_free(k);
	BN_CTX_free(bc);
	return ok;
}

/* ---- The br_ec_impl ---- */

static const unsigned char *ec_generator(int curve, size_t *len)
{
	return BEARSSL_EC->generator(curve, len);
}

static const unsigned char *ec_order(int curve, size_t *len)
{
	return BEARSSL_EC->order(curve, len);
}

static size_t ec_xoff(int curve, size_t *len)
{
	return BEARSSL_EC->xoff(curve, len);
}

static uint32_t ec_mul(unsigned char *G, size_t Glen, const unsigned char *x, size_t xlen,
		       int curve)
{
	switch (curve) {
	case BR_EC_curve25519:
		return x25519_mul(G, Glen, x, xlen);
	case BR_EC_secp256r1:
		/* Uncompressed only, as BearSSL's own code and what TLS 1.2
		 * clients send without point-format negotiation. */
		return Glen == P256_POINT_LEN && G[0] == 0x04 && p256_mul(G, G, x, xlen);
	default:
		return BEARSSL_EC->mul(G, Glen, x, xlen, curve);
	}
}

static size_t ec_mulgen(unsigned char *R, const unsigned char *x, size_t xlen, int curve)
{
	switch (curve) {
	case BR_EC_curve25519:
		return x25519_mulgen(R, x, xlen);
	case BR_EC_secp256r1:
		return p256_mul(R, NULL, x, xlen) ? P256_POINT_LEN : 0;
	default:
		return BEARSSL_EC->mulgen(R, x, xlen, curve);
	}
}

static uint32_t ec_muladd(unsigned char *A, const unsigned char *B, size_t len,
			  const unsigned char *x, size_t xlen, const unsigned char *y, size_t ylen,
			  int curve)
{
	return BEARSSL_EC->muladd(A, B, len, x, xlen, y, ylen, curve);
}

const br_ec_impl tls_ec_libcrypto = {
	.supported_curves = (1u << BR_EC_curve25519) | (1u << BR_EC_secp256r1) |
			    (1u << BR_EC_secp384r1) | (1u << BR_EC_secp521r1),
	.generator = ec_generator,
	.order = ec_order,
	.xoff = ec_xoff,
	.mul = ec_mul,
	.mulgen = ec_mulgen,
	.muladd = ec_muladd,
};
