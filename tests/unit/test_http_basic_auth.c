/*
 * Basic credentials (src/http/basic_auth.c): the RFC examples, the scheme
 * and token68 rules, strict padded base64, the split at the first ':',
 * RFC 6749 2.3.1's form-decoding of each part (escapes straddling base64
 * groups included), every error class, the cap boundaries, and random
 * inputs checked against OpenSSL's base64 (EVP_DecodeBlock and
 * EVP_EncodeBlock) and a reference form decoder. Every value is read from
 * an exact-size heap copy (ASan) and again ending at a PROT_NONE page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "ringside/http_basic_auth.h"
#include "ref_urlencoded.h"
#include "unit_inputs.h"

#define B(s) (s), sizeof(s) - 1

/* ---- Running ---- */

#define ID_CAP 16
#define SECRET_CAP 32

struct result {
	int ret;
	char id[ID_CAP], secret[SECRET_CAP];
	size_t id_len, secret_len;
};

static int run_one(const char *v, size_t len, struct result *r)
{
	memset(r->id, 0x5A, sizeof r->id);
	memset(r->secret, 0x5A, sizeof r->secret);
	struct http_basic_credentials c = {
		.id = r->id, .id_cap = ID_CAP, .id_len = 99,
		.secret = r->secret, .secret_cap = SECRET_CAP, .secret_len = 99,
	};
	r->ret = http_basic_parse(v, len, &c);
	r->id_len = c.id_len;
	r->secret_len = c.secret_len;
	/* Terminated, within cap, no interior NUL; empty unless OK. */
	assert_true(c.id_len < ID_CAP && c.secret_len < SECRET_CAP);
	assert_int_equal(strlen(r->id), c.id_len);
	assert_int_equal(strlen(r->secret), c.secret_len);
	if (r->ret != HTTP_BASIC_OK)
		assert_true(c.id_len == 0 && c.secret_len == 0);
	return r->ret;
}

/* From a heap copy and from the guard page; both must agree. */
static int run(const char *v, size_t len, struct result *r)
{
	struct result g;
	char *copy = heap_copy(v, len);
	run_one(copy, len, r);
	free(copy);
	run_one(guard_place(v, len), len, &g);
	assert_int_equal(g.ret, r->ret);
	assert_string_equal(g.id, r->id);
	assert_string_equal(g.secret, r->secret);
	return r->ret;
}

/* "Basic " and the base64 of user_pass[0, n), as a client sends it. */
static size_t header_for(const char *user_pass, size_t n, char *out, size_t cap)
{
	assert_true(6 + 4 * ((n + 2) / 3) + 1 <= cap);
	memcpy(out, "Basic ", 6);
	return 6 + (size_t)EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)user_pass,
					   (int)n);
}

static void expect_ok(const char *v, size_t len, const char *id, const char *secret)
{
	struct result r;
	if (run(v, len, &r) != HTTP_BASIC_OK)
		fail_msg("\"%.*s\": %d", (int)len, v, r.ret);
	assert_string_equal(r.id, id);
	assert_string_equal(r.secret, secret);
}

static void expect_status(const char *v, size_t len, int want)
{
	struct result r;
	if (run(v, len, &r) != want)
		fail_msg("\"%.*s\": got %d, want %d", (int)len, v, r.ret, want);
}

/* The decoded credentials user_pass, through a real header. */
static void creds_ok(const char *user_pass, const char *id, const char *secret)
{
	char h[256];
	expect_ok(h, header_for(user_pass, strlen(user_pass), h, sizeof h), id, secret);
}

static void creds_status(const char *user_pass, size_t n, int want)
{
	char h[256];
	expect_status(h, header_for(user_pass, n, h, sizeof h), want);
}

/* ---- Cases ---- */

static void rfc_examples_parse(void **state)
{
	(void)state;
	expect_ok(B("Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"), "s6BhdRkqt3", "gX1fBat3bV"); /* 6749 2.3.1 */
	expect_ok(B("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), "Aladdin", "open sesame");   /* 7617 2 */
	expect_ok(B("Basic dGVzdDoxMjPCow=="), "test", "123\xc2\xa3");                   /* 7617 2.1 */
}

/* RFC 9110 11.1 and 11.4: the scheme in any case, then 1*SP token68. */
static void scheme_and_token68(void **state)
{
	(void)state;
	expect_ok(B("basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"), "s6BhdRkqt3", "gX1fBat3bV");
	expect_ok(B("BASIC czZCaGRSa3F0MzpnWDFmQmF0M2JW"), "s6BhdRkqt3", "gX1fBat3bV");
	expect_ok(B("bAsIc    czZCaGRSa3F0MzpnWDFmQmF0M2JW"), "s6BhdRkqt3", "gX1fBat3bV");
	static const char *const not_basic[] = {
		"", " ", "Bearer czZCaGRSa3F0MzpnWDFmQmF0M2JW", "Basi czZC", "Basicc czZC",
		"BasicczZCaGRSa3F0MzpnWDFmQmF0M2JW", "Basic\tczZCaGRSa3F0MzpnWDFmQmF0M2JW",
		"Digest username=\"x\"", " Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW", "Basic,",
	};
	for (size_t i = 0; i < sizeof not_basic / sizeof not_basic[0]; i++)
		expect_status(not_basic[i], strlen(not_basic[i]), HTTP_BASIC_NOT_BASIC);
	static const char *const malformed[] = {
		"Basic", "Basic ", "Basic    ",
		"Basic czZCaGRSa3F0 MzpnWDFmQmF0M2JW",      /* a space inside */
		"Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW ",      /* after (OWS is stripped before) */
		"Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW\t",
		"Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW,",
		"Basic realm=\"x\"",                        /* the auth-param form */
		"Basic czZCaGRSa3F0MzpnWDFmQmF0M2J\n",
		"Basic c_ZCaGRSa3F0MzpnWDFmQmF0M2JW",       /* base64url's alphabet */
		"Basic c-ZCaGRSa3F0MzpnWDFmQmF0M2JW",
		"Basic c.ZCaGRSa3F0MzpnWDFmQmF0M2JW",
		"Basic c~ZCaGRSa3F0MzpnWDFmQmF0M2JW",
	};
	for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
		expect_status(malformed[i], strlen(malformed[i]), HTTP_BASIC_MALFORMED);
	expect_status(B("Basic czZCaGRSa3F0\0MzpnWDFmQmF0M2JW"), HTTP_BASIC_MALFORMED);
}

/* RFC 4648 4 with padding, canonical (3.5): one spelling per credential. */
static void base64_is_strict(void **state)
{
	(void)state;
	expect_ok(B("Basic YTpi"), "a", "b");         /* no padding needed */
	expect_ok(B("Basic YTpiYw=="), "a", "bc");    /* two '=' */
	expect_ok(B("Basic YTpiY2Q="), "a", "bcd");   /* one '=' */
	expect_ok(B("Basic Og=="), "", "");           /* ":" */
	static const char *const bad[] = {
		"Basic YTpiYw",        /* padding left out */
		"Basic YTpiYw=",       /* half the padding */
		"Basic YTpiY2Q",
		"Basic YTpiYx==",      /* pad bits not zero */
		"Basic YTpiY2R=",
		"Basic YTpiYw===",     /* too much padding */
		"Basic YTpi====",
		"Basic Y===",
		"Basic ====",
		"Basic =",
		"Basic YT=i",          /* '=' inside */
		"Basic YTpiYw==YTpi",  /* '=' inside a longer token */
		"Basic YTp",           /* not a whole group */
		"Basic Y",
		"Basic YTpi\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_status(bad[i], strlen(bad[i]), HTTP_BASIC_MALFORMED);
}

/* RFC 7617: split at the first ':'; RFC 6749 2.3.1: each part form-decoded. */
static void split_and_form_decoding(void **state)
{
	(void)state;
	creds_ok("a:b:c", "a", "b:c");
	creds_ok("a%3Ab:c%3ad", "a:b", "c:d");
	creds_ok(":secret", "", "secret");
	creds_ok("id:", "id", "");
	creds_ok("a+b:c+d", "a b", "c d");
	creds_ok("a%2Bb:%2b%2B+", "a+b", "++ ");
	creds_ok("%41%4a%4A:%6a", "AJJ", "j");
	creds_ok("%C3%A9:\xc3\xa9%E2%82%AC", "\xc3\xa9", "\xc3\xa9\xe2\x82\xac");
	creds_ok("x:%F0%9F%98%80", "x", "\xf0\x9f\x98\x80");
	creds_status("no colon here", 13, HTTP_BASIC_NO_COLON);
	creds_status("", 0, HTTP_BASIC_MALFORMED); /* nothing to encode: "Basic " */
	creds_status("a%3A", 4, HTTP_BASIC_NO_COLON);
}

/* An escape may straddle base64 groups: every offset of one, in each part. */
static void escapes_across_every_group_boundary(void **state)
{
	(void)state;
	char up[64], want[32];
	for (size_t pre = 0; pre < 6; pre++) {
		memset(up, 'x', pre);
		memcpy(up + pre, "%3a%2B:", 8);
		memset(want, 'x', pre);
		memcpy(want + pre, ":+", 3);
		creds_ok(up, want, "");
		size_t n = (size_t)snprintf(up, sizeof up, "id:%.*s%%3a%%2B", (int)pre, "xxxxxx");
		assert_true(n < sizeof up);
		creds_ok(up, "id", want);
	}
}

static void bad_escapes_and_characters(void **state)
{
	(void)state;
	static const char *const bad_escape[] = {
		"a%:b", "a%4:b", "a:b%", "a:b%4", "a:%zz", "%g0:b", "a:%+1", "a%%41:b",
		"a%zz", /* no colon, but the escape goes wrong first: the stream order */
	};
	for (size_t i = 0; i < sizeof bad_escape / sizeof bad_escape[0]; i++)
		creds_status(bad_escape[i], strlen(bad_escape[i]), HTTP_BASIC_BAD_ESCAPE);
	creds_status("a%", 2, HTTP_BASIC_NO_COLON); /* the end comes first: no colon */
	/* RFC 7617 2: no control characters; RFC 3629 UTF-8. */
	static const char *const bad_char[] = {
		"a\x01:b", "a:b\x7f", "a:%00", "%00:b", "a:%0A", "a:%7F", "a:\t", "a%09:b",
		"a:%C0%AF", "a:%ED%A0%80", "a:%F4%90%80%80", "a:\xff", "a:%E2%82", "\xc3:b",
	};
	for (size_t i = 0; i < sizeof bad_char / sizeof bad_char[0]; i++)
		creds_status(bad_char[i], strlen(bad_char[i]), HTTP_BASIC_BAD_CHAR);
	creds_status("a:b\0c", 5, HTTP_BASIC_BAD_CHAR); /* a raw NUL */
	creds_status("a\0:b", 4, HTTP_BASIC_BAD_CHAR);
}

/* cap - 1 bytes fit with the NUL; cap do not; decoded length counts. */
static void length_boundaries(void **state)
{
	(void)state;
	char up[256], want[64];
	for (int part = 0; part < 2; part++) {
		size_t cap = part ? SECRET_CAP : ID_CAP;
		for (size_t n = cap - 2; n <= cap + 1; n++) {
			for (int escaped = 0; escaped < 2; escaped++) {
				size_t o = 0;
				if (part)
					up[o++] = ':';
				for (size_t j = 0; j < n; j++) {
					if (escaped) {
						o += (size_t)snprintf(up + o, sizeof up - o, "%%4%c", (char)('0' + j % 10));
						want[j] = (char)('@' + j % 10);
					} else {
						up[o++] = want[j] = (char)('A' + j % 26);
					}
				}
				if (!part)
					up[o++] = ':';
				up[o] = '\0';
				want[n] = '\0';
				if (n < cap)
					creds_ok(up, part ? "" : want, part ? want : "");
				else
					creds_status(up, o, HTTP_BASIC_TOO_LONG);
			}
		}
	}
	/* A long token stops at the cap, whatever follows. */
	creds_status("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:b", 50, HTTP_BASIC_TOO_LONG);
}

static void failure_leaves_nothing(void **state)
{
	(void)state;
	char id[8], secret[8];
	struct http_basic_credentials c = {.id = id, .id_cap = sizeof id, .secret = secret,
					   .secret_cap = sizeof secret};
	assert_int_equal(http_basic_parse(B("Basic YTpi"), &c), HTTP_BASIC_OK);
	assert_string_equal(id, "a");
	assert_string_equal(secret, "b");
	/* "abc:defghijk": the id is written before the secret overflows. */
	assert_int_equal(http_basic_parse(B("Basic YWJjOmRlZmdoaWpr"), &c), HTTP_BASIC_TOO_LONG);
	assert_string_equal(id, "");
	assert_string_equal(secret, "");
	assert_true(c.id_len == 0 && c.secret_len == 0);
	/* No field at all. */
	assert_int_equal(http_basic_parse(NULL, 0, &c), HTTP_BASIC_NOT_BASIC);
	assert_string_equal(http_basic_strerror(HTTP_BASIC_OK), "");
	assert_string_equal(http_basic_strerror(HTTP_BASIC_NOT_BASIC),
			    "The Authorization scheme is not Basic.");
	assert_string_equal(http_basic_strerror(-42), "The Basic credentials are malformed.");
}

/* ---- Random inputs against OpenSSL and a reference ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}

enum {
	P_MALFORMED = 1 << 0,
	P_NO_COLON = 1 << 1,
	P_BAD_ESCAPE = 1 << 2,
	P_BAD_CHAR = 1 << 3,
	P_TOO_LONG = 1 << 4,
};

/*
 * The problems of token[0, n) (after "Basic "), as a set; when the set is
 * empty, the id and secret. Base64 by OpenSSL: valid exactly when it
 * decodes and encodes back to the same bytes (the canonical spelling).
 */
static int reference(const char *token, size_t n, unsigned char *id, long *id_len,
		     unsigned char *secret, long *secret_len)
{
	static unsigned char raw[4096], again[4096];
	if (n == 0 || n % 4 || n > 4000)
		return P_MALFORMED;
	int got = EVP_DecodeBlock(raw, (const unsigned char *)token, (int)n);
	if (got < 0)
		return P_MALFORMED;
	size_t pad = token[n - 1] == '=' ? (token[n - 2] == '=' ? 2 : 1) : 0;
	size_t m = (size_t)got - pad;
	if ((size_t)EVP_EncodeBlock(again, raw, (int)m) != n || memcmp(again, token, n))
		return P_MALFORMED;
	const unsigned char *colon = memchr(raw, ':', m);
	if (!colon)
		return P_NO_COLON | (ref_form_decode(raw, m, id) < 0 ? P_BAD_ESCAPE : 0) |
		       (m >= ID_CAP ? P_TOO_LONG : 0); /* whichever the stream meets first */
	size_t il = (size_t)(colon - raw);
	int p = 0;
	*id_len = ref_form_decode(raw, il, id);
	*secret_len = ref_form_decode(colon + 1, m - il - 1, secret);
	if (*id_len < 0 || *secret_len < 0)
		p |= P_BAD_ESCAPE;
	if ((*id_len >= 0 && *id_len >= ID_CAP) || (*secret_len >= 0 && *secret_len >= SECRET_CAP))
		p |= P_TOO_LONG;
	if ((*id_len >= 0 && !ref_utf8(id, (size_t)*id_len, true)) ||
	    (*secret_len >= 0 && !ref_utf8(secret, (size_t)*secret_len, true)))
		p |= P_BAD_CHAR;
	/* Overflow may come before a later bad escape, so both are possible. */
	if (p & P_BAD_ESCAPE)
		p |= P_TOO_LONG;
	return p;
}

/* How often each status came out (index -status), so the random tests
 * are known to reach every one. */
static unsigned seen_status[8];

static void check_against_reference(const char *token, size_t n)
{
	static char v[4200];
	unsigned char id[4096], secret[4096];
	long id_len = 0, secret_len = 0;
	memcpy(v, "Basic ", 6);
	memcpy(v + 6, token, n);
	struct result r;
	run(v, 6 + n, &r);
	seen_status[-r.ret]++;
	int p = reference(token, n, id, &id_len, secret, &secret_len);
	if (p == 0) {
		if (r.ret != HTTP_BASIC_OK)
			fail_msg("\"%.*s\": got %d, reference OK", (int)n, token, r.ret);
		assert_int_equal(r.id_len, id_len);
		assert_memory_equal(r.id, id, (size_t)id_len);
		assert_int_equal(r.secret_len, secret_len);
		assert_memory_equal(r.secret, secret, (size_t)secret_len);
		return;
	}
	int bit = r.ret == HTTP_BASIC_MALFORMED    ? P_MALFORMED
		  : r.ret == HTTP_BASIC_NO_COLON   ? P_NO_COLON
		  : r.ret == HTTP_BASIC_BAD_ESCAPE ? P_BAD_ESCAPE
		  : r.ret == HTTP_BASIC_BAD_CHAR   ? P_BAD_CHAR
		  : r.ret == HTTP_BASIC_TOO_LONG   ? P_TOO_LONG
						   : 0;
	if (!(bit & p))
		fail_msg("\"%.*s\": got %d, reference problems %#x", (int)n, token, r.ret, p);
	/* MALFORMED is exactly OpenSSL's verdict. */
	assert_int_equal(r.ret == HTTP_BASIC_MALFORMED, (p & P_MALFORMED) != 0);
}

static void random_credentials_match_openssl(void **state)
{
	(void)state;
	/* Bytes that matter to some layer, and plain ones. */
	static const char alphabet[] = "::%%++aZ09fFgG=/\x01\x7f\xc3\xa9\xe2\x82\xac\xff\xed\xa0 ";
	unsigned char up[64];
	char token[128];
	for (int iter = 0; iter < 30000; iter++) {
		size_t n = next_rand() % 40;
		for (size_t i = 0; i < n; i++) {
			uint32_t x = next_rand();
			up[i] = (x & 1) ? (unsigned char)alphabet[(x >> 1) % (sizeof alphabet - 1)]
					: (unsigned char)(x >> 8);
		}
		size_t t = (size_t)EVP_EncodeBlock((unsigned char *)token, up, (int)n);
		check_against_reference(token, t);
		/* The same with one character of the token replaced. */
		if (t) {
			static const char b64ish[] =
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/==-_ .";
			token[next_rand() % t] = b64ish[next_rand() % (sizeof b64ish - 1)];
			check_against_reference(token, t);
		}
	}
	/* Short tokens of base64 characters and '=' alone: the padding rules. */
	static const char short_set[] = "AQgwBCDf+/=";
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = next_rand() % 9;
		for (size_t i = 0; i < n; i++)
			token[i] = short_set[next_rand() % (sizeof short_set - 1)];
		check_against_reference(token, n);
	}
	for (int st = HTTP_BASIC_OK; st >= HTTP_BASIC_TOO_LONG; st--)
		if (st != HTTP_BASIC_NOT_BASIC && seen_status[-st] < 100)
			fail_msg("status %d came out %u times", st, seen_status[-st]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc_examples_parse),
		cmocka_unit_test(scheme_and_token68),
		cmocka_unit_test(base64_is_strict),
		cmocka_unit_test(split_and_form_decoding),
		cmocka_unit_test(escapes_across_every_group_boundary),
		cmocka_unit_test(bad_escapes_and_characters),
		cmocka_unit_test(length_boundaries),
		cmocka_unit_test(failure_leaves_nothing),
		cmocka_unit_test(random_credentials_match_openssl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
