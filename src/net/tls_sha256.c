/*
 * SHA-256 for BearSSL's engine, by libcrypto: its handshake hash, its
 * random generator (HMAC-DRBG), the TLS 1.2 PRF of the SHA-256 suites,
 * and the workers' own generators that seed each engine.
 *
 * Why: BearSSL's SHA-256 is portable C. In a resumed handshake, where no
 * public-key work is left, it was 18 % of the worker's CPU (perf): the
 * generators and the PRF run HMAC over short inputs, a hundred
 * compressions per connection. libcrypto's uses the CPU's SHA
 * instructions where it has them (this project's machines do).
 *
 * The one-block interface BearSSL's hash classes need (a running state
 * to save and restore at block boundaries, for HMAC and the multi-hash)
 * is libcrypto's SHA256_CTX, which OpenSSL 3 declares deprecated without
 * a replacement for it; it is used in this file only, and test_tls_sha256
 * checks every function against BearSSL's own.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final: see above */

#include <bearssl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#include "tls_int.h"

struct sha256_context {
	const br_hash_class *vtable; /* first: BearSSL calls through it */
	SHA256_CTX c;
};

static void sha256_init(const br_hash_class **ctx)
{
	struct sha256_context *h = (struct sha256_context *)(void *)ctx;
	/* As BearSSL's own: HMAC reads the class back from the context. */
	h->vtable = &tls_sha256_libcrypto;
	SHA256_Init(&h->c);
}

static void sha256_update(const br_hash_class **ctx, const void *data, size_t len)
{
	struct sha256_context *h = (struct sha256_context *)(void *)ctx;
	SHA256_Update(&h->c, data, len);
}

static void sha256_out(const br_hash_class *const *ctx, void *dst)
{
	const struct sha256_context *h = (const struct sha256_context *)(const void *)ctx;
	SHA256_CTX done = h->c; /* BearSSL's out leaves the context as it was */
	SHA256_Final(dst, &done);
	OPENSSL_cleanse(&done, sizeof done);
}

/* The running state as BearSSL's SHA-256 saves it: the eight words,
 * big-endian, and the byte count (meaningful after whole blocks, which is
 * where BearSSL's HMAC and multi-hash save and restore it). */
static uint64_t sha256_state(const br_hash_class *const *ctx, void *dst)
{
	const struct sha256_context *h = (const struct sha256_context *)(const void *)ctx;
	unsigned char *p = dst;
	for (int i = 0; i < 8; i++) {
		p[4 * i] = (unsigned char)(h->c.h[i] >> 24);
		p[4 * i + 1] = (unsigned char)(h->c.h[i] >> 16);
		p[4 * i + 2] = (unsigned char)(h->c.h[i] >> 8);
		p[4 * i + 3] = (unsigned char)h->c.h[i];
	}
	return ((uint64_t)h->c.Nh << 32 | h->c.Nl) >> 3;
}

static void sha256_set_state(const br_hash_class **ctx, const void *stb, uint64_t count)
{
	struct sha256_context *h = (struct sha256_context *)(void *)ctx;
	const unsigned char *p = stb;
	SHA256_Init(&h->c);
	for (int i = 0; i < 8; i++)
		h->c.h[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
			    (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	uint64_t bits = count << 3;
	h->c.Nl = (uint32_t)bits;
	h->c.Nh = (uint32_t)(bits >> 32);
}

const br_hash_class tls_sha256_libcrypto = {
	.context_size = sizeof(struct sha256_context),
	.desc = BR_HASHDESC_ID(br_sha256_ID) | BR_HASHDESC_OUT(32) | BR_HASHDESC_STATE(32) |
		BR_HASHDESC_LBLEN(6) | BR_HASHDESC_MD_PADDING | BR_HASHDESC_MD_PADDING_BE,
	.init = sha256_init,
	.update = sha256_update,
	.out = sha256_out,
	.state = sha256_state,
	.set_state = sha256_set_state,
};

/* HMAC(secret, a || label || seed...), BearSSL's HMAC over the class
 * above. */
static void hmac_a_label_seed(const br_hmac_key_context *key, const unsigned char *a,
			      size_t a_len, const char *label, size_t seed_num,
			      const br_tls_prf_seed_chunk *seed, unsigned char out[32])
{
	br_hmac_context h;
	br_hmac_init(&h, key, 0);
	br_hmac_update(&h, a, a_len);
	br_hmac_update(&h, label, strlen(label));
	for (size_t i = 0; i < seed_num; i++)
		br_hmac_update(&h, seed[i].data, seed[i].len);
	br_hmac_out(&h, out);
}

/* TLS 1.2's PRF with SHA-256 (RFC 5246 section 5), as
 * br_tls12_sha256_prf: P_SHA256(secret, label || seed) cut to len. */
void tls_prf_sha256(void *dst, size_t len, const void *secret, size_t secret_len,
		    const char *label, size_t seed_num, const br_tls_prf_seed_chunk *seed)
{
	br_hmac_key_context key;
	unsigned char a[32], block[32];
	unsigned char *out = dst;
	br_hmac_key_init(&key, &tls_sha256_libcrypto, secret, secret_len);
	hmac_a_label_seed(&key, NULL, 0, label, seed_num, seed, a); /* A(1) */
	while (len > 0) {
		hmac_a_label_seed(&key, a, sizeof a, label, seed_num, seed, block);
		size_t n = len < sizeof block ? len : sizeof block;
		memcpy(out, block, n);
		out += n;
		len -= n;
		if (len > 0) {
			br_hmac_context h; /* A(i+1) = HMAC(secret, A(i)) */
			br_hmac_init(&h, &key, 0);
			br_hmac_update(&h, a, sizeof a);
			br_hmac_out(&h, a);
		}
	}
	OPENSSL_cleanse(&key, sizeof key);
	OPENSSL_cleanse(a, sizeof a);
	OPENSSL_cleanse(block, sizeof block);
}
