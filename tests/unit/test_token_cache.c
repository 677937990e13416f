/* Unit tests for the per-worker token cache (src/auth/token_cache.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ringside/siphash.h"
#include "ringside/token_cache.h"

static const uint8_t test_key[16] = {0, 1, 2, 3, 4, 5, 6, 7,
				     8, 9, 10, 11, 12, 13, 14, 15};

#define T0 1700000000

static struct jwt_claims claims_for(unsigned i, int64_t exp)
{
	struct jwt_claims c = {.scopes = JWT_SCOPE_METRICS_WRITE, .iat = T0, .exp = exp};

	snprintf(c.sub, sizeof c.sub, "agent-%u", i);
	snprintf(c.organization_id, sizeof c.organization_id, "org-%u", i % 7);
	snprintf(c.jti, sizeof c.jti, "jti-%u", i);
	return c;
}

/* A token-like string per i; lengths vary. */
static size_t token_for(unsigned i, char *out, size_t cap)
{
	return (size_t)snprintf(out, cap, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI%u.sig-%0*u",
				i, (int)(i % 5), i);
}

/* The set a token lands in, computed as the cache does. */
static uint32_t set_of(const struct token_cache *c, const char *t, size_t n)
{
	uint8_t h[16];
	uint64_t lo;

	siphash24_128(c->key, t, n, h);
	memcpy(&lo, h, 8); /* little-endian host */
	return (uint32_t)(lo & c->set_mask);
}

/* ---- SipHash-2-4-128: the reference implementation's vectors ------- */

/* vectors_sip128 of github.com/veorq/SipHash vectors.h: key 00..0f, the
 * message 00 01 .. (len-1). */
static const struct {
	size_t len;
	uint8_t out[16];
} sip128[] = {
	{0, {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93}},
	{1, {0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45}},
	{2, {0x81, 0x77, 0x22, 0x8d, 0xa4, 0xa4, 0x5d, 0xc7, 0xfc, 0xa3, 0x8b, 0xde, 0xf6, 0x0a, 0xff, 0xe4}},
	{3, {0x9c, 0x70, 0xb6, 0x0c, 0x52, 0x67, 0xa9, 0x4e, 0x5f, 0x33, 0xb6, 0xb0, 0x29, 0x85, 0xed, 0x51}},
	{4, {0xf8, 0x81, 0x64, 0xc1, 0x2d, 0x9c, 0x8f, 0xaf, 0x7d, 0x0f, 0x6e, 0x7c, 0x7b, 0xcd, 0x55, 0x79}},
	{5, {0x13, 0x68, 0x87, 0x59, 0x80, 0x77, 0x6f, 0x88, 0x54, 0x52, 0x7a, 0x07, 0x69, 0x0e, 0x96, 0x27}},
	{6, {0x14, 0xee, 0xca, 0x33, 0x8b, 0x20, 0x86, 0x13, 0x48, 0x5e, 0xa0, 0x30, 0x8f, 0xd7, 0xa1, 0x5e}},
	{7, {0xa1, 0xf1, 0xeb, 0xbe, 0xd8, 0xdb, 0xc1, 0x53, 0xc0, 0xb8, 0x4a, 0xa6, 0x1f, 0xf0, 0x82, 0x39}},
	{8, {0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83, 0xe2, 0x64, 0xf3, 0x14, 0x97, 0xb4}},
	{9, {0x26, 0x44, 0x99, 0x06, 0x0a, 0xd9, 0xba, 0xab, 0xc4, 0x7f, 0x8b, 0x02, 0xbb, 0x6d, 0x71, 0xed}},
	{15, {0x54, 0x93, 0xe9, 0x99, 0x33, 0xb0, 0xa8, 0x11, 0x7e, 0x08, 0xec, 0x0f, 0x97, 0xcf, 0xc3, 0xd9}},
	{16, {0x6e, 0xe2, 0xa4, 0xca, 0x67, 0xb0, 0x54, 0xbb, 0xfd, 0x33, 0x15, 0xbf, 0x85, 0x23, 0x05, 0x77}},
	{17, {0x47, 0x3d, 0x06, 0xe8, 0x73, 0x8d, 0xb8, 0x98, 0x54, 0xc0, 0x66, 0xc4, 0x7a, 0xe4, 0x77, 0x40}},
	{63, {0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a, 0x50, 0x3e, 0x06, 0x9a, 0x97, 0x3f, 0xbd, 0x7c}},
};

static void test_siphash128_reference_vectors(void **state)
{
	uint8_t msg[64], out[16];

	(void)state;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof sip128 / sizeof sip128[0]; i++) {
		siphash24_128(test_key, msg, sip128[i].len, out);
		if (memcmp(out, sip128[i].out, 16) != 0)
			fail_msg("SipHash-2-4-128 of %zu bytes differs", sip128[i].len);
	}
}

/* ---- init ---------------------------------------------------------- */

static void test_init_checks_size_and_draws_a_key(void **state)
{
	struct token_cache a, b;

	(void)state;
	assert_int_equal(token_cache_init(&a, 0), -EINVAL);
	assert_int_equal(token_cache_init(&a, 2), -EINVAL);
	assert_int_equal(token_cache_init(&a, 4095), -EINVAL);
	assert_int_equal(token_cache_init(&a, (1u << 24) * 2), -EINVAL);
	assert_int_equal(token_cache_init(&a, 4096), 0);
	assert_int_equal(token_cache_init(&b, 4096), 0);
	assert_int_equal(a.entries, 4096);
	assert_int_equal(a.set_mask, 1023);
	assert_int_equal(a.max_age, TOKEN_CACHE_MAX_AGE);
	assert_int_equal((uintptr_t)a.sets % 64, 0);
	/* Two caches, two random keys (equal with probability 2^-128). */
	assert_memory_not_equal(a.key, b.key, sizeof a.key);
	token_cache_fini(&a);
	token_cache_fini(&b);
	token_cache_fini(&b); /* harmless */
}

/* ---- get / put ----------------------------------------------------- */

static void test_hit_and_miss(void **state)
{
	struct token_cache c;
	struct jwt_claims in = claims_for(1, T0 + 3600);
	const struct jwt_claims *got;
	const char *t = "header.payload.signature";

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, 64, test_key), 0);
	assert_null(token_cache_get(&c, t, strlen(t), T0));
	token_cache_put(&c, t, strlen(t), &in, T0);
	got = token_cache_get(&c, t, strlen(t), T0 + 1);
	assert_non_null(got);
	assert_memory_equal(got, &in, sizeof in);
	/* The claims were copied: the caller's struct is its own. */
	strcpy(in.sub, "changed");
	assert_string_equal(got->sub, "agent-1");
	/* Not a prefix, not one byte more, not another byte. */
	assert_null(token_cache_get(&c, t, strlen(t) - 1, T0 + 1));
	assert_null(token_cache_get(&c, "header.payload.signaturf", strlen(t), T0 + 1));
	assert_null(token_cache_get(&c, "header.payload.signature.", strlen(t) + 1, T0 + 1));
	token_cache_fini(&c);
}

static void test_no_hit_at_or_after_exp(void **state)
{
	struct token_cache c;
	struct jwt_claims in = claims_for(2, T0 + 60);
	const char *t = "tok-exp";

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, 64, test_key), 0);
	token_cache_put(&c, t, strlen(t), &in, T0);
	assert_non_null(token_cache_get(&c, t, strlen(t), T0 + 59));
	assert_null(token_cache_get(&c, t, strlen(t), T0 + 60)); /* exactly at exp */
	assert_null(token_cache_get(&c, t, strlen(t), T0 + 61));

	/* A token already expired is not cached at all. */
	token_cache_put(&c, "late", 4, &in, T0 + 60);
	assert_null(token_cache_get(&c, "late", 4, T0 + 59));
	assert_int_equal(token_cache_forget_jti(&c, "jti-2"), 1); /* only "tok-exp" */
	token_cache_fini(&c);
}

static void test_max_age_bounds_a_long_token(void **state)
{
	struct token_cache c;
	struct jwt_claims in = claims_for(3, T0 + 86400);
	const char *t = "tok-age";

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, 64, test_key), 0);
	token_cache_put(&c, t, strlen(t), &in, T0);
	assert_non_null(token_cache_get(&c, t, strlen(t), T0 + TOKEN_CACHE_MAX_AGE - 1));
	assert_null(token_cache_get(&c, t, strlen(t), T0 + TOKEN_CACHE_MAX_AGE));
	/* Verified again (the caller's job), put again: served again. */
	token_cache_put(&c, t, strlen(t), &in, T0 + TOKEN_CACHE_MAX_AGE);
	assert_non_null(token_cache_get(&c, t, strlen(t), T0 + TOKEN_CACHE_MAX_AGE));

	c.max_age = 10;
	token_cache_put(&c, t, strlen(t), &in, T0 + 1000);
	assert_non_null(token_cache_get(&c, t, strlen(t), T0 + 1009));
	assert_null(token_cache_get(&c, t, strlen(t), T0 + 1010));
	token_cache_fini(&c);
}

/* Five tokens of one set in a 4-way cache. */
static void same_set(struct token_cache *c, char tok[5][64], size_t len[5])
{
	uint32_t want = UINT32_MAX;
	int found = 0;

	for (unsigned i = 0; found < 5; i++) {
		char t[64];
		size_t n = token_for(i, t, sizeof t);
		uint32_t s = set_of(c, t, n);

		if (want == UINT32_MAX)
			want = s;
		if (s != want)
			continue;
		memcpy(tok[found], t, n + 1);
		len[found++] = n;
	}
}

static void test_full_set_replaces_the_oldest(void **state)
{
	struct token_cache c;
	char tok[5][64];
	size_t len[5];

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, 64, test_key), 0);
	same_set(&c, tok, len);
	for (int i = 0; i < 4; i++) {
		struct jwt_claims in = claims_for((unsigned)i, T0 + 3600);

		token_cache_put(&c, tok[i], len[i], &in, T0 + i);
	}
	for (int i = 0; i < 4; i++)
		assert_non_null(token_cache_get(&c, tok[i], len[i], T0 + 10));

	/* Re-putting a cached token updates it in place, it takes no way. */
	{
		struct jwt_claims in = claims_for(1, T0 + 3600);

		token_cache_put(&c, tok[1], len[1], &in, T0 + 20);
	}
	/* The fifth evicts the oldest: token 0, put at T0. */
	{
		struct jwt_claims in = claims_for(4, T0 + 3600);

		token_cache_put(&c, tok[4], len[4], &in, T0 + 30);
	}
	assert_null(token_cache_get(&c, tok[0], len[0], T0 + 31));
	for (int i = 1; i < 5; i++)
		assert_non_null(token_cache_get(&c, tok[i], len[i], T0 + 31));
	token_cache_fini(&c);
}

static void test_dead_entry_replaced_before_the_oldest(void **state)
{
	struct token_cache c;
	char tok[5][64];
	size_t len[5];
	struct jwt_claims in;

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, 64, test_key), 0);
	same_set(&c, tok, len);
	for (int i = 0; i < 4; i++) {
		/* token 2 expires early */
		in = claims_for((unsigned)i, i == 2 ? T0 + 50 : T0 + 3600);
		token_cache_put(&c, tok[i], len[i], &in, T0 + i);
	}
	in = claims_for(4, T0 + 3600);
	token_cache_put(&c, tok[4], len[4], &in, T0 + 100);
	assert_non_null(token_cache_get(&c, tok[0], len[0], T0 + 100)); /* oldest kept */
	assert_null(token_cache_get(&c, tok[2], len[2], T0 + 100));
	assert_non_null(token_cache_get(&c, tok[4], len[4], T0 + 100));
	assert_int_equal(token_cache_forget_jti(&c, "jti-2"), 0); /* gone, not hidden */
	token_cache_fini(&c);
}

/* Far more tokens than entries: the size holds, the newest always hits,
 * and no token is ever answered with another's claims. */
static void test_eviction_under_load(void **state)
{
	enum { ENTRIES = 256, TOKENS = 20000 };
	struct token_cache c;
	unsigned hits = 0;

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, ENTRIES, test_key), 0);
	for (unsigned i = 0; i < TOKENS; i++) {
		char t[64];
		size_t n = token_for(i, t, sizeof t);
		struct jwt_claims in = claims_for(i, T0 + 3600);
		const struct jwt_claims *got;

		token_cache_put(&c, t, n, &in, T0 + i / 100);
		got = token_cache_get(&c, t, n, T0 + i / 100);
		assert_non_null(got);
		assert_string_equal(got->jti, in.jti);
	}
	for (unsigned i = 0; i < TOKENS; i++) {
		char t[64], want[JWT_ID_CAP];
		size_t n = token_for(i, t, sizeof t);
		const struct jwt_claims *got = token_cache_get(&c, t, n, T0 + 200);

		if (!got)
			continue;
		hits++;
		snprintf(want, sizeof want, "jti-%u", i);
		assert_string_equal(got->jti, want);
	}
	assert_true(hits <= ENTRIES);
	assert_true(hits >= ENTRIES * 9 / 10); /* the sets fill nearly evenly */
	token_cache_fini(&c);
}

static void test_forget_jti_and_sub(void **state)
{
	struct token_cache c;
	struct jwt_claims a = claims_for(1, T0 + 3600), b = claims_for(2, T0 + 3600);
	struct jwt_claims a2 = a;

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, 64, test_key), 0);
	/* the same jti under two spellings of a token (ES256 signatures are
	 * malleable): revocation must drop both */
	token_cache_put(&c, "tok-a", 5, &a, T0);
	token_cache_put(&c, "tok-a2", 6, &a2, T0);
	token_cache_put(&c, "tok-b", 5, &b, T0);
	assert_int_equal(token_cache_forget_jti(&c, "jti-1"), 2);
	assert_null(token_cache_get(&c, "tok-a", 5, T0));
	assert_null(token_cache_get(&c, "tok-a2", 6, T0));
	assert_non_null(token_cache_get(&c, "tok-b", 5, T0));
	assert_int_equal(token_cache_forget_jti(&c, "jti-1"), 0);
	assert_int_equal(token_cache_forget_jti(&c, ""), 0);
	assert_int_equal(token_cache_forget_jti(&c, "jti-"), 0); /* no prefix match */

	assert_int_equal(token_cache_forget_sub(&c, "agent-2"), 1);
	assert_null(token_cache_get(&c, "tok-b", 5, T0));
	/* A forgotten token, verified and put again, is served again. */
	token_cache_put(&c, "tok-b", 5, &b, T0 + 1);
	assert_non_null(token_cache_get(&c, "tok-b", 5, T0 + 1));
	token_cache_fini(&c);
}

/* With another key the same tokens land elsewhere: a client who does not
 * know the key cannot aim at a set, let alone a tag. */
static void test_key_decides_placement(void **state)
{
	struct token_cache a, b;
	uint8_t other[16];
	unsigned same = 0;

	(void)state;
	memcpy(other, test_key, sizeof other);
	other[0] ^= 1;
	assert_int_equal(token_cache_init_keyed(&a, 4096, test_key), 0);
	assert_int_equal(token_cache_init_keyed(&b, 4096, other), 0);
	for (unsigned i = 0; i < 1000; i++) {
		char t[64];
		size_t n = token_for(i, t, sizeof t);

		same += set_of(&a, t, n) == set_of(&b, t, n);
	}
	assert_true(same < 20); /* 1000 / 1024 expected */
	token_cache_fini(&a);
	token_cache_fini(&b);
}

/* Both 64-bit halves of the 128-bit tag must match (white-box: a real
 * 64-bit collision cannot be made for a test). */
static void test_whole_tag_must_match(void **state)
{
	struct token_cache c;
	struct jwt_claims in = claims_for(5, T0 + 3600);
	const char *t = "tok-tag";
	struct token_cache_set *s;
	int way = -1;

	(void)state;
	assert_int_equal(token_cache_init_keyed(&c, 64, test_key), 0);
	token_cache_put(&c, t, strlen(t), &in, T0);
	s = &c.sets[set_of(&c, t, strlen(t))];
	for (int w = 0; w < TOKEN_CACHE_WAYS; w++)
		if (s->deadline[w] != 0)
			way = w;
	assert_true(way >= 0);
	for (int half = 0; half < 2; half++) {
		s->tag[way][half] ^= 1;
		assert_null(token_cache_get(&c, t, strlen(t), T0));
		s->tag[way][half] ^= 1;
		assert_non_null(token_cache_get(&c, t, strlen(t), T0));
	}
	token_cache_fini(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash128_reference_vectors),
		cmocka_unit_test(test_init_checks_size_and_draws_a_key),
		cmocka_unit_test(test_hit_and_miss),
		cmocka_unit_test(test_no_hit_at_or_after_exp),
		cmocka_unit_test(test_max_age_bounds_a_long_token),
		cmocka_unit_test(test_full_set_replaces_the_oldest),
		cmocka_unit_test(test_dead_entry_replaced_before_the_oldest),
		cmocka_unit_test(test_eviction_under_load),
		cmocka_unit_test(test_forget_jti_and_sub),
		cmocka_unit_test(test_key_decides_placement),
		cmocka_unit_test(test_whole_tag_must_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
