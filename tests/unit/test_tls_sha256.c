/*
 * Unit tests for SHA-256 by libcrypto as a BearSSL hash class, and the
 * TLS 1.2 PRF on it (src/net/tls_sha256.c): every result equals
 * BearSSL's own for the same inputs, fed whole, in random pieces, and
 * through what uses the class (HMAC, HMAC-DRBG, the multi-hash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cmocka.h>

#include "../../src/net/tls_int.h"

static void random_bytes(void *p, size_t n)
{
	assert_int_equal(getrandom(p, n, 0), (ssize_t)n);
}

static size_t random_below(size_t n)
{
	uint32_t r;
	random_bytes(&r, sizeof r);
	return n ? r % n : 0;
}

static void test_class_matches_bearssl(void **state)
{
	(void)state;
	assert_int_equal(tls_sha256_libcrypto.desc, br_sha256_vtable.desc);
	assert_true(tls_sha256_libcrypto.context_size <= sizeof(br_hash_compat_context));
	static unsigned char data[4096];
	for (int round = 0; round < 200; round++) {
		size_t len = random_below(sizeof data);
		random_bytes(data, len);
		br_hash_compat_context ours, theirs;
		tls_sha256_libcrypto.init(&ours.vtable);
		br_sha256_vtable.init(&theirs.vtable);
		/* In random pieces, a piece of every length from 0 up. */
		for (size_t off = 0; off < len;) {
			size_t n = random_below(len - off + 1);
			tls_sha256_libcrypto.update(&ours.vtable, data + off, n);
			br_sha256_vtable.update(&theirs.vtable, data + off, n);
			off += n;
		}
		unsigned char a[32], b[32];
		tls_sha256_libcrypto.out(&ours.vtable, a);
		br_sha256_vtable.out(&theirs.vtable, b);
		assert_memory_equal(a, b, 32);
		/* out leaves the context usable: more input, same answers. */
		tls_sha256_libcrypto.update(&ours.vtable, "x", 1);
		br_sha256_vtable.update(&theirs.vtable, "x", 1);
		tls_sha256_libcrypto.out(&ours.vtable, a);
		br_sha256_vtable.out(&theirs.vtable, b);
		assert_memory_equal(a, b, 32);
	}
}

/* The running state after whole blocks is BearSSL's, byte for byte, and
 * each class can go on from the other's. */
static void test_state_interchangeable(void **state)
{
	(void)state;
	unsigned char data[64 * 5 + 17];
	random_bytes(data, sizeof data);
	br_hash_compat_context ours, theirs;
	tls_sha256_libcrypto.init(&ours.vtable);
	br_sha256_vtable.init(&theirs.vtable);
	tls_sha256_libcrypto.update(&ours.vtable, data, 64 * 5);
	br_sha256_vtable.update(&theirs.vtable, data, 64 * 5);
	unsigned char s1[32], s2[32];
	assert_int_equal(tls_sha256_libcrypto.state(&ours.vtable, s1), 64 * 5);
	assert_int_equal(br_sha256_vtable.state(&theirs.vtable, s2), 64 * 5);
	assert_memory_equal(s1, s2, 32);

	tls_sha256_libcrypto.set_state(&ours.vtable, s2, 64 * 5);
	br_sha256_vtable.set_state(&theirs.vtable, s1, 64 * 5);
	tls_sha256_libcrypto.update(&ours.vtable, data + 64 * 5, 17);
	br_sha256_vtable.update(&theirs.vtable, data + 64 * 5, 17);
	unsigned char a[32], b[32], whole[32];
	tls_sha256_libcrypto.out(&ours.vtable, a);
	br_sha256_vtable.out(&theirs.vtable, b);
	br_sha256_context one;
	br_sha256_init(&one);
	br_sha256_update(&one, data, sizeof data);
	br_sha256_out(&one, whole);
	assert_memory_equal(a, whole, 32);
	assert_memory_equal(b, whole, 32);
}

static void test_hmac_and_drbg(void **state)
{
	(void)state;
	for (int round = 0; round < 50; round++) {
		unsigned char key[100], msg[300], a[32], b[32];
		size_t klen = random_below(sizeof key + 1), mlen = random_below(sizeof msg + 1);
		random_bytes(key, klen);
		random_bytes(msg, mlen);
		br_hmac_key_context kc1, kc2;
		br_hmac_context h1, h2;
		br_hmac_key_init(&kc1, &tls_sha256_libcrypto, key, klen);
		br_hmac_key_init(&kc2, &br_sha256_vtable, key, klen);
		br_hmac_init(&h1, &kc1, 0);
		br_hmac_init(&h2, &kc2, 0);
		br_hmac_update(&h1, msg, mlen);
		br_hmac_update(&h2, msg, mlen);
		br_hmac_out(&h1, a);
		br_hmac_out(&h2, b);
		assert_memory_equal(a, b, 32);

		br_hmac_drbg_context d1, d2;
		br_hmac_drbg_init(&d1, &tls_sha256_libcrypto, key, klen);
		br_hmac_drbg_init(&d2, &br_sha256_vtable, key, klen);
		br_hmac_drbg_update(&d1, msg, mlen);
		br_hmac_drbg_update(&d2, msg, mlen);
		unsigned char r1[77], r2[77];
		br_hmac_drbg_generate(&d1, r1, sizeof r1);
		br_hmac_drbg_generate(&d2, r2, sizeof r2);
		assert_memory_equal(r1, r2, sizeof r1);
	}
}

/* The handshake hash: BearSSL's multi-hash saves and restores the class's
 * state every 128 bytes. */
static void test_multihash(void **state)
{
	(void)state;
	unsigned char data[2000];
	random_bytes(data, sizeof data);
	br_multihash_context m1, m2;
	br_multihash_zero(&m1);
	br_multihash_zero(&m2);
	br_multihash_setimpl(&m1, br_sha256_ID, &tls_sha256_libcrypto);
	br_multihash_setimpl(&m2, br_sha256_ID, &br_sha256_vtable);
	br_multihash_init(&m1);
	br_multihash_init(&m2);
	for (size_t off = 0; off < sizeof data;) {
		size_t n = random_below(sizeof data - off + 1);
		br_multihash_update(&m1, data + off, n);
		br_multihash_update(&m2, data + off, n);
		off += n;
	}
	unsigned char a[64], b[64];
	assert_int_equal(br_multihash_out(&m1, br_sha256_ID, a), 32);
	assert_int_equal(br_multihash_out(&m2, br_sha256_ID, b), 32);
	assert_memory_equal(a, b, 32);
}

static void test_prf_matches_bearssl(void **state)
{
	(void)state;
	static const char *const labels[] = {"master secret", "key expansion", "client finished",
					      ""};
	for (int round = 0; round < 100; round++) {
		unsigned char secret[80], s1[64], s2[40], a[200], b[200];
		size_t slen = random_below(sizeof secret + 1), len = random_below(sizeof a + 1);
		random_bytes(secret, slen);
		random_bytes(s1, sizeof s1);
		random_bytes(s2, sizeof s2);
		br_tls_prf_seed_chunk seed[2] = {{s1, random_below(sizeof s1 + 1)},
						 {s2, random_below(sizeof s2 + 1)}};
		size_t seed_num = random_below(3);
		const char *label = labels[round % 4];
		memset(a, 0xAA, sizeof a);
		memset(b, 0xAA, sizeof b);
		tls_prf_sha256(a, len, secret, slen, label, seed_num, seed);
		br_tls12_sha256_prf(b, len, secret, slen, label, seed_num, seed);
		assert_memory_equal(a, b, sizeof a); /* and nothing past len written */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class_matches_bearssl),
		cmocka_unit_test(test_state_interchangeable),
		cmocka_unit_test(test_hmac_and_drbg),
		cmocka_unit_test(test_multihash),
		cmocka_unit_test(test_prf_matches_bearssl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
