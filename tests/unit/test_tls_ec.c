/*
 * Unit tests for the ECDHE arithmetic done by libcrypto under BearSSL's
 * engine (src/net/tls_ec.c): each result equals BearSSL's own code's for
 * the same inputs, X25519 matches RFC 7748's vector, and what BearSSL
 * would refuse (a point off the curve, a small-order point, a compressed
 * point, an oversized multiplier) is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <cmocka.h>

#include "../../src/net/tls_int.h"

#define ROUNDS 64

static void random_bytes(unsigned char *p, size_t n)
{
	assert_int_equal(getrandom(p, n, 0), (ssize_t)n);
}

/* A multiplier BearSSL's contract allows: non-zero and below the curve's
 * order (the top bit cleared is below P-256's and P-384's orders). */
static void random_multiplier(unsigned char *x, size_t n)
{
	do {
		random_bytes(x, n);
		x[0] &= 0x7f;
	} while (x[n - 1] == 0);
}

static void same_as_bearssl(int curve, const br_ec_impl *bearssl, size_t xlen)
{
	for (int i = 0; i < ROUNDS; i++) {
		unsigned char a[66], b[66];
		unsigned char ours[BR_EC_KBUF_PUB_MAX_SIZE], theirs[BR_EC_KBUF_PUB_MAX_SIZE];
		random_multiplier(a, xlen);
		random_multiplier(b, xlen);

		size_t n = tls_ec_libcrypto.mulgen(ours, a, xlen, curve);
		assert_int_not_equal(n, 0);
		assert_int_equal(bearssl->mulgen(theirs, a, xlen, curve), n);
		assert_memory_equal(ours, theirs, n);

		/* b times (a times G), both ways. */
		assert_int_equal(tls_ec_libcrypto.mul(ours, n, b, xlen, curve), 1);
		assert_int_equal(bearssl->mul(theirs, n, b, xlen, curve), 1);
		assert_memory_equal(ours, theirs, n);

		/* And Diffie-Hellman agrees: b(aG) = a(bG). */
		unsigned char other[BR_EC_KBUF_PUB_MAX_SIZE];
		assert_int_equal(tls_ec_libcrypto.mulgen(other, b, xlen, curve), n);
		assert_int_equal(tls_ec_libcrypto.mul(other, n, a, xlen, curve), 1);
		assert_memory_equal(ours, other, n);
	}
}

static void test_x25519_same_as_bearssl(void **state)
{
	(void)state;
	same_as_bearssl(BR_EC_curve25519, &br_ec_c25519_m31, 32);
}

static void test_p256_same_as_bearssl(void **state)
{
	(void)state;
	same_as_bearssl(BR_EC_secp256r1, &br_ec_p256_m31, 32);
}

static void test_p384_goes_to_bearssl(void **state)
{
	(void)state;
	same_as_bearssl(BR_EC_secp384r1, &br_ec_prime_i31, 48);
}

/* X25519 keeps the keys mulgen made for mul (16 per thread): whether
 * mul finds its key kept, finds it evicted by 20 later ones, or is asked
 * twice for one (the second loads it anew), the secret is BearSSL's. */
static void test_x25519_kept_keys(void **state)
{
	(void)state;
	enum { N = 20 };
	unsigned char x[N][32], pub[N][32], peer[32], peer_x[32];
	random_multiplier(peer_x, 32);
	assert_int_equal(br_ec_c25519_m31.mulgen(peer, peer_x, 32, BR_EC_curve25519), 32);
	for (int i = 0; i < N; i++) {
		random_multiplier(x[i], 32);
		assert_int_equal(tls_ec_libcrypto.mulgen(pub[i], x[i], 32, BR_EC_curve25519), 32);
	}
	static const int order[] = {19, 0, 5, 18, 18, 3, 10, 4, 17, 16};
	for (size_t j = 0; j < sizeof order / sizeof order[0]; j++) {
		int i = order[j];
		unsigned char ours[32], theirs[32];
		memcpy(ours, peer, 32);
		memcpy(theirs, peer, 32);
		assert_int_equal(tls_ec_libcrypto.mul(ours, 32, x[i], 32, BR_EC_curve25519), 1);
		assert_int_equal(br_ec_c25519_m31.mul(theirs, 32, x[i], 32, BR_EC_curve25519), 1);
		assert_memory_equal(ours, theirs, 32);
	}
}

/* A multiplier shorter than the curve's (leading zeros dropped) is the
 * same integer. */
static void test_short_multiplier(void **state)
{
	(void)state;
	static const int curves[] = {BR_EC_curve25519, BR_EC_secp256r1};
	for (size_t c = 0; c < 2; c++) {
		unsigned char x[32] = {0}, ours[65], theirs[65];
		random_bytes(x + 3, sizeof x - 3);
		size_t n = tls_ec_libcrypto.mulgen(ours, x + 3, sizeof x - 3, curves[c]);
		assert_int_not_equal(n, 0);
		assert_int_equal(br_ec_all_m31.mulgen(theirs, x, sizeof x, curves[c]), n);
		assert_memory_equal(ours, theirs, n);
	}
}

static void unhex(unsigned char *out, const char *hex)
{
	for (size_t i = 0; hex[2 * i]; i++) {
		unsigned v;
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
}

/* RFC 7748 section 5.2, first vector: BearSSL's X25519 takes the RFC's
 * scalar bytes as they are. */
static void test_x25519_rfc7748_vector(void **state)
{
	(void)state;
	unsigned char k[32], u[32], want[32];
	unhex(k, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
	unhex(u, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
	unhex(want, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
	assert_int_equal(tls_ec_libcrypto.mul(u, 32, k, 32, BR_EC_curve25519), 1);
	assert_memory_equal(u, want, 32);
}

static void test_refusals(void **state)
{
	(void)state;
	unsigned char x[33], p[65], q[65];
	random_multiplier(x, 32);

	/* X25519: a small-order point (u = 0) makes an all-zero secret; a
	 * point or multiplier of the wrong size. */
	memset(p, 0, 32);
	assert_int_equal(tls_ec_libcrypto.mul(p, 32, x, 32, BR_EC_curve25519), 0);
	random_bytes(p, 32);
	assert_int_equal(tls_ec_libcrypto.mul(p, 31, x, 32, BR_EC_curve25519), 0);
	random_bytes(x, 33);
	x[0] = 1;
	assert_int_equal(tls_ec_libcrypto.mul(p, 32, x, 33, BR_EC_curve25519), 0);
	assert_int_equal(tls_ec_libcrypto.mulgen(q, x, 33, BR_EC_curve25519), 0);

	/* P-256: a point off the curve, a compressed one, a short one, the
	 * multiplier zero. */
	random_multiplier(x, 32);
	assert_int_equal(tls_ec_libcrypto.mulgen(p, x, 32, BR_EC_secp256r1), 65);
	memcpy(q, p, 65);
	q[64] ^= 1;
	assert_int_equal(tls_ec_libcrypto.mul(q, 65, x, 32, BR_EC_secp256r1), 0);
	memcpy(q, p, 65);
	q[0] = 0x02 | (p[64] & 1);
	assert_int_equal(tls_ec_libcrypto.mul(q, 33, x, 32, BR_EC_secp256r1), 0);
	assert_int_equal(tls_ec_libcrypto.mul(q, 65, x, 32, BR_EC_secp256r1), 0);
	memset(x, 0, 32);
	memcpy(q, p, 65);
	assert_int_equal(tls_ec_libcrypto.mul(q, 65, x, 32, BR_EC_secp256r1), 0);
	assert_int_equal(tls_ec_libcrypto.mulgen(q, x, 32, BR_EC_secp256r1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_x25519_same_as_bearssl),
		cmocka_unit_test(test_p256_same_as_bearssl),
		cmocka_unit_test(test_p384_goes_to_bearssl),
		cmocka_unit_test(test_x25519_kept_keys),
		cmocka_unit_test(test_short_multiplier),
		cmocka_unit_test(test_x25519_rfc7748_vector),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
