/*
 * Unit tests for agent tokens (src/auth/jwt.c): round trips in the three
 * algorithms, interop with RFC 7515's example and with PyJWT, and every
 * rejection DESIGN.md "JWT" asks for. Keys and foreign tokens are the
 * test-only fixtures in tests/auth/ (see its README).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include "ringside/jwt.h"

#define ISS "https://ringside.test"
#define AUD "ringside-test"
#define IAT 1700000000
#define EXP (IAT + 3600)
#define NOW (IAT + 100)

/* ---- fixtures ------------------------------------------------------ */

static char fixture_dir[1024];

/* tests/auth beside this file's tests/unit, or $RINGSIDE_AUTH_FIXTURES. */
static void find_fixtures(void)
{
	const char *env = getenv("RINGSIDE_AUTH_FIXTURES");
	char *slash;

	if (env && *env) {
		snprintf(fixture_dir, sizeof fixture_dir, "%s", env);
		return;
	}
	snprintf(fixture_dir, sizeof fixture_dir, "%s", __FILE__);
	slash = strrchr(fixture_dir, '/');
	if (!slash) {
		snprintf(fixture_dir, sizeof fixture_dir, "../auth");
		return;
	}
	*slash = '\0'; /* tests/unit */
	slash = strrchr(fixture_dir, '/');
	if (slash)
		snprintf(slash + 1, sizeof fixture_dir - (size_t)(slash + 1 - fixture_dir), "auth");
	else
		snprintf(fixture_dir, sizeof fixture_dir, "auth");
}

static const char *fx(const char *name)
{
	static char buf[4][1200];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", fixture_dir, name);
	return buf[i];
}

static size_t read_fixture(const char *name, char *out, size_t cap)
{
	FILE *f = fopen(fx(name), "rb");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, cap - 1, f);
	fclose(f);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
	return n;
}

static struct jwt_keys hs, hs_other, es, es_pub, es_other, rs, rs_pub;

static void load(struct jwt_keys *k, const char *secret, const char *pub,
		 const char *priv)
{
	char err[256] = "";
	int r = jwt_keys_load(k, secret ? fx(secret) : NULL, pub ? fx(pub) : NULL,
			      priv ? fx(priv) : NULL, ISS, AUD, err, sizeof err);

	if (r)
		fail_msg("loading keys: %s", err);
}

static int setup(void **state)
{
	(void)state;
	find_fixtures();
	load(&hs, "test-only-hs256.secret", NULL, NULL);
	load(&hs_other, "test-only-hs256-other.secret", NULL, NULL);
	load(&es, NULL, "test-only-es256-public.pem", "test-only-es256-private.pem");
	load(&es_pub, NULL, "test-only-es256-public.pem", NULL);
	load(&es_other, NULL, "test-only-es256-other-public.pem",
	     "test-only-es256-other-private.pem");
	load(&rs, NULL, "test-only-rs256-public.pem", "test-only-rs256-private.pem");
	load(&rs_pub, NULL, "test-only-rs256-public.pem", NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	jwt_keys_fini(&hs);
	jwt_keys_fini(&hs_other);
	jwt_keys_fini(&es);
	jwt_keys_fini(&es_pub);
	jwt_keys_fini(&es_other);
	jwt_keys_fini(&rs);
	jwt_keys_fini(&rs_pub);
	return 0;
}

/* ---- token crafting ------------------------------------------------ */

static size_t b64url(const void *in, size_t n, char *out)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = in;
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = a[v >> 18];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		out[o++] = a[p[i] >> 2];
		out[o++] = a[(p[i] & 3) << 4];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];

		out[o++] = a[v >> 10];
		out[o++] = a[v >> 4 & 63];
		out[o++] = a[(v & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

/* header.payload signed with HMAC-SHA256 under key, whatever they say. */
static size_t hs_token(const char *header, const char *payload,
		       const void *key, size_t keylen, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t n = b64url(header, strlen(header), out);

	out[n++] = '.';
	n += b64url(payload, strlen(payload), out + n);
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen,
			     (const unsigned char *)out, n, mac, &maclen));
	out[n++] = '.';
	n += b64url(mac, maclen, out + n);
	return n;
}

#define HDR_HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define C_ISS "\"iss\":\"" ISS "\""
#define C_AUD "\"aud\":\"" AUD "\""
#define C_SUB "\"sub\":\"agent-1\""
#define C_ORG "\"organization_id\":\"org-1\""
#define C_SCOPE "\"scope\":\"metrics:write\""
#define C_JTI "\"jti\":\"jti-1\""
#define C_IAT "\"iat\":1700000000"
#define C_EXP "\"exp\":1700003600"
#define GOOD_CLAIMS C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT "," C_EXP

static char tok[8192];

static int verify_hs(const char *header, const char *payload, int64_t now)
{
	struct jwt_claims c;
	size_t n = hs_token(header, payload, hs.verify_key, hs.verify_key_len, tok);

	return jwt_verify(&hs, tok, n, now, &c);
}

static struct jwt_claims sample(void)
{
	struct jwt_claims c = {.sub = "agent-7", .organization_id = "org-3",
			       .scopes = JWT_SCOPE_METRICS_WRITE | JWT_SCOPE_AGENTS_READ,
			       .iat = IAT, .exp = EXP};
	return c;
}

/* Another base64url character in place of *c. */
static void flip(char *c)
{
	*c = *c == 'A' ? 'B' : 'A';
}

static void assert_reason(int got, int want)
{
	if (got != want)
		fail_msg("got %d (%s), want %d (%s)", got, jwt_error_reason(got),
			 want, jwt_error_reason(want));
}

/* ---- loading ------------------------------------------------------- */

/* The load fails naming `culprit` (the input whose flag the user is told
 * to fix) and with `words` in the message. */
static void expect_load_error(const char *secret, const char *pub,
			      const char *priv, const char *iss, const char *words,
			      enum jwt_keys_culprit culprit)
{
	struct jwt_keys k;
	char err[512] = "";
	int r = jwt_keys_load(&k, secret ? fx(secret) : NULL, pub ? fx(pub) : NULL,
			      priv ? fx(priv) : NULL, iss, AUD, err, sizeof err);

	assert_int_equal(r, culprit);
	if (!strstr(err, words))
		fail_msg("error \"%s\" does not say \"%s\"", err, words);
	assert_null(k.verify_key);
	assert_int_equal(k.alg, JWT_PIN_NONE);
}

static void test_load_picks_algorithm_from_key(void **state)
{
	(void)state;
	assert_int_equal(hs.alg, JWT_PIN_HS256);
	assert_int_equal(hs.verify_key_len, 64); /* newline stripped */
	assert_int_equal(es.alg, JWT_PIN_ES256);
	assert_int_equal(es.sig_len, 64);
	assert_int_equal(rs.alg, JWT_PIN_RS256);
	assert_int_equal(rs.sig_len, 256);
	assert_null(es_pub.sign_key);
	assert_int_equal(hs.leeway, 30);
	assert_int_equal(hs.max_token_bytes, 4096);
	assert_string_equal(jwt_alg_pin_name(es.alg), "ES256");
}

static void test_load_errors_are_clear(void **state)
{
	(void)state;
	expect_load_error(NULL, NULL, NULL, ISS, "exactly one", JWT_KEYS_BAD_COMBINATION);
	{
		struct jwt_keys k;
		char err[256] = "";

		/* empty paths are unset options */
		assert_int_equal(jwt_keys_load(&k, "", "", "", ISS, AUD, err, sizeof err),
				 JWT_KEYS_BAD_COMBINATION);
		assert_non_null(strstr(err, "exactly one"));
	}
	expect_load_error("test-only-hs256.secret", "test-only-es256-public.pem",
			  NULL, ISS, "exactly one", JWT_KEYS_BAD_COMBINATION);
	expect_load_error("test-only-hs256.secret", NULL,
			  "test-only-es256-private.pem", ISS, "needs its public key",
			  JWT_KEYS_BAD_PRIVATE_KEY);
	expect_load_error("test-only-short.secret", NULL, NULL, ISS,
			  "31 bytes, need at least 32", JWT_KEYS_BAD_SECRET);
	expect_load_error("no-such.secret", NULL, NULL, ISS, "no-such.secret",
			  JWT_KEYS_BAD_SECRET);
	expect_load_error(NULL, "test-only-hs256.secret", NULL, ISS,
			  "no PEM public key", JWT_KEYS_BAD_PUBLIC_KEY);
	expect_load_error(NULL, "test-only-es256-private.pem", NULL, ISS,
			  "no PEM public key", JWT_KEYS_BAD_PUBLIC_KEY);
	expect_load_error(NULL, "test-only-p384-public.pem", NULL, ISS, "P-256",
			  JWT_KEYS_BAD_PUBLIC_KEY);
	expect_load_error(NULL, "test-only-rsa1024-public.pem", NULL, ISS,
			  "1024 bits", JWT_KEYS_BAD_PUBLIC_KEY);
	expect_load_error(NULL, "test-only-ed25519-public.pem", NULL, ISS,
			  "neither an EC", JWT_KEYS_BAD_PUBLIC_KEY);
	expect_load_error(NULL, "test-only-es256-public.pem",
			  "test-only-es256-other-private.pem", ISS, "does not match",
			  JWT_KEYS_BAD_PRIVATE_KEY);
	expect_load_error(NULL, "test-only-es256-public.pem",
			  "test-only-rs256-private.pem", ISS, "does not match",
			  JWT_KEYS_BAD_PRIVATE_KEY);
	/* Never a passphrase prompt on the terminal of a starting server. */
	expect_load_error(NULL, "test-only-es256-public.pem",
			  "test-only-es256-encrypted-private.pem", ISS,
			  "no unencrypted PEM private key", JWT_KEYS_BAD_PRIVATE_KEY);
	expect_load_error("test-only-hs256.secret", NULL, NULL, "a\"b", "issuer",
			  JWT_KEYS_BAD_ISSUER);
	expect_load_error("test-only-hs256.secret", NULL, NULL, "", "issuer",
			  JWT_KEYS_BAD_ISSUER);
}

static void test_fini_twice_is_harmless(void **state)
{
	struct jwt_keys k;

	(void)state;
	load(&k, "test-only-hs256.secret", NULL, NULL);
	jwt_keys_fini(&k);
	jwt_keys_fini(&k);
	assert_null(k.verify_key);
}

/* ---- round trips --------------------------------------------------- */

static void round_trip(struct jwt_keys *signer, struct jwt_keys *verifier,
		       const char *want_alg_b64)
{
	struct jwt_claims c = sample(), got;
	char hdr[128], hdr_b64[200];
	int n;

	n = jwt_sign(signer, &c, tok, sizeof tok);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(tok));
	/* {"alg":"ES256","typ":"JWT","kid":"…"} etc. */
	assert_memory_equal(tok, want_alg_b64, strlen(want_alg_b64) - 3);
	snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		 jwt_alg_pin_name(signer->alg), signer->set[0].kid);
	b64url(hdr, strlen(hdr), hdr_b64);
	assert_int_equal(strcspn(tok, "."), strlen(hdr_b64));
	assert_memory_equal(tok, hdr_b64, strlen(hdr_b64));
	assert_reason(jwt_verify(verifier, tok, (size_t)n, NOW, &got), 0);
	assert_string_equal(got.sub, "agent-7");
	assert_string_equal(got.organization_id, "org-3");
	assert_int_equal(got.scopes, JWT_SCOPE_METRICS_WRITE | JWT_SCOPE_AGENTS_READ);
	assert_int_equal(got.iat, IAT);
	assert_int_equal(got.exp, EXP);
	assert_int_equal(got.nbf, 0);
	/* An empty jti is made up: 128 random bits in hex. */
	assert_int_equal(strlen(got.jti), 32);
	assert_int_equal(strspn(got.jti, "0123456789abcdef"), 32);
}

static void test_hs256_round_trip(void **state)
{
	(void)state;
	round_trip(&hs, &hs, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.");
}

static void test_es256_round_trip(void **state)
{
	(void)state;
	round_trip(&es, &es_pub, "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.");
}

static void test_rs256_round_trip(void **state)
{
	(void)state;
	round_trip(&rs, &rs_pub, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.");
}

static void test_sign_keeps_given_jti_and_checks_input(void **state)
{
	struct jwt_claims c = sample(), got;
	char small[64];
	int n;

	(void)state;
	strcpy(c.jti, "my-jti");
	n = jwt_sign(&hs, &c, tok, sizeof tok);
	assert_true(n > 0);
	assert_reason(jwt_verify(&hs, tok, (size_t)n, NOW, &got), 0);
	assert_string_equal(got.jti, "my-jti");

	assert_reason(jwt_sign(&es_pub, &c, tok, sizeof tok), JWT_E_NO_SIGNING_KEY);
	assert_reason(jwt_sign(&hs, &c, small, sizeof small), JWT_E_BUFFER);
	c.exp = c.iat;
	assert_reason(jwt_sign(&hs, &c, tok, sizeof tok), JWT_E_INVALID);
	c = sample();
	c.sub[0] = '\0';
	assert_reason(jwt_sign(&hs, &c, tok, sizeof tok), JWT_E_INVALID);
	c = sample();
	memset(c.organization_id, 'x', sizeof c.organization_id); /* no NUL */
	assert_reason(jwt_sign(&hs, &c, tok, sizeof tok), JWT_E_INVALID);
}

static void test_new_jti_is_random_hex(void **state)
{
	char a[JWT_ID_CAP], b[JWT_ID_CAP];

	(void)state;
	assert_int_equal(jwt_new_jti(a), 0);
	assert_int_equal(jwt_new_jti(b), 0);
	assert_int_equal(strlen(a), 32);
	assert_string_not_equal(a, b);
}

/* ---- interop ------------------------------------------------------- */

/* RFC 7515 Appendix A.1, byte for byte: a CRLF inside its JSON, typ before
 * alg. It has iss "joe" and no aud, so the strict path must refuse it. */
static void test_rfc7515_a1_hs256_example(void **state)
{
	static const char a1[] =
		"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
		"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
		".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	struct jwt_keys k;
	struct jwt_claims c;
	char err[256];
	char bad[sizeof a1];

	(void)state;
	assert_int_equal(jwt_keys_load(&k, fx("rfc7515-a1-hs256.key"), NULL, NULL,
				       "joe", AUD, err, sizeof err),
			 0);
	assert_int_equal(k.verify_key_len, 64);
	assert_reason(jwt_verify_signature_only(&k, a1, strlen(a1)), 0);
	/* Before its exp (1300819380), the claims fail: it has no iat and
	 * no aud, which our tokens must have. */
	assert_reason(jwt_verify(&k, a1, strlen(a1), 1300819300, &c), JWT_E_IAT);
	assert_reason(jwt_verify(&k, a1, strlen(a1), 1300819380 + 30, &c),
		      JWT_E_EXPIRED);

	memcpy(bad, a1, sizeof a1);
	flip(&bad[sizeof a1 - 10]);
	assert_reason(jwt_verify_signature_only(&k, bad, strlen(bad)), JWT_E_SIGNATURE);
	assert_reason(jwt_verify_signature_only(&hs, a1, strlen(a1)), JWT_E_SIGNATURE);
	assert_reason(jwt_verify_signature_only(&es, a1, strlen(a1)), JWT_E_ALG);
	jwt_keys_fini(&k);
}

static void pyjwt(const char *file, struct jwt_keys *k, const char *sub)
{
	struct jwt_claims c;
	size_t n = read_fixture(file, tok, sizeof tok);

	assert_reason(jwt_verify(k, tok, n, NOW, &c), 0);
	assert_string_equal(c.sub, sub);
	assert_string_equal(c.organization_id, "org-pyjwt");
	assert_int_equal(c.nbf, IAT);
	/* "metrics:write agents:read pyjwt:unknown": the unknown one ignored */
	assert_int_equal(c.scopes, JWT_SCOPE_METRICS_WRITE | JWT_SCOPE_AGENTS_READ);
	assert_true(strncmp(c.jti, "pyjwt-", 6) == 0);
}

static void test_pyjwt_tokens_verify(void **state)
{
	(void)state;
	pyjwt("test-only-pyjwt-hs256.jwt", &hs, "agent-pyjwt-hs256");
	pyjwt("test-only-pyjwt-es256.jwt", &es_pub, "agent-pyjwt-es256"); /* aud array */
	pyjwt("test-only-pyjwt-rs256.jwt", &rs_pub, "agent-pyjwt-rs256");
}

/* ---- kids, rotation, JWKS ----------------------------------------- */

static int splice_header(struct jwt_keys *signer, const char *t, size_t n,
			 struct jwt_keys *verifier, struct jwt_claims *got);

/* The rotation server: ES256 signs (es), RS256 (rs_pub) and an HS256
 * secret (hs_other) are previous keys that only verify. */
static void load_rotation(struct jwt_keys *k)
{
	char err[256] = "";

	load(k, NULL, "test-only-es256-public.pem", "test-only-es256-private.pem");
	if (jwt_keys_add_previous(k, NULL, fx("test-only-rs256-public.pem"), err,
				  sizeof err) ||
	    jwt_keys_add_previous(k, fx("test-only-hs256-other.secret"), NULL, err,
				  sizeof err))
		fail_msg("previous keys: %s", err);
}

static void test_every_key_has_a_distinct_kid(void **state)
{
	const struct jwt_keys *all[] = {&hs, &hs_other, &es, &es_other, &rs};
	unsigned char md[32];
	char plain[64];

	(void)state;
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		assert_int_equal(all[i]->nkeys, 1);
		assert_int_equal(all[i]->set[0].kid_len, 43); /* SHA-256, base64url */
		assert_int_equal(strlen(all[i]->set[0].kid), 43);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(all[i]->set[0].kid, all[j]->set[0].kid);
	}
	/* The public half has the private key's kid: one key, one kid. */
	assert_string_equal(es.set[0].kid, es_pub.set[0].kid);
	assert_string_equal(rs.set[0].kid, rs_pub.set[0].kid);
	/* An HS256 kid is no plain hash of the secret (a dictionary check
	 * against a weak secret). */
	EVP_Digest(hs.verify_key, hs.verify_key_len, md, NULL, EVP_sha256(), NULL);
	b64url(md, sizeof md, plain);
	assert_string_not_equal(hs.set[0].kid, plain);
}

/* RFC 7638 3.1's example key and thumbprint, through our JWK writer:
 * the RSA key is not a fixture, so the check goes through PyJWT below;
 * here, the EC key's kid recomputed from its coordinates. */
static void test_es256_kid_is_the_jwk_thumbprint(void **state)
{
	char jwks[4096], canon[512], want[64];
	unsigned char md[32];
	json_error_t e;
	json_t *root, *k;

	(void)state;
	assert_true(jwt_keys_jwks(&es_pub, jwks, sizeof jwks) > 0);
	root = json_loads(jwks, 0, &e);
	assert_non_null(root);
	k = json_array_get(json_object_get(root, "keys"), 0);
	snprintf(canon, sizeof canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		 json_string_value(json_object_get(k, "x")),
		 json_string_value(json_object_get(k, "y")));
	EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL);
	b64url(md, sizeof md, want);
	assert_string_equal(es_pub.set[0].kid, want);
	assert_string_equal(json_string_value(json_object_get(k, "kid")), want);
	json_decref(root);
}

static void test_rotation_previous_keys_verify_current_signs(void **state)
{
	struct jwt_keys rot;
	struct jwt_claims c = sample(), got;
	int n;

	(void)state;
	load_rotation(&rot);
	assert_int_equal(rot.nkeys, 3);
	assert_int_equal(rot.alg, JWT_PIN_ES256);
	/* Tokens of the previous keys (the servers before the rotation). */
	n = jwt_sign(&rs, &c, tok, sizeof tok);
	assert_reason(jwt_verify(&rot, tok, (size_t)n, NOW, &got), 0);
	assert_string_equal(got.sub, "agent-7");
	n = jwt_sign(&hs_other, &c, tok, sizeof tok);
	assert_reason(jwt_verify(&rot, tok, (size_t)n, NOW, &got), 0);
	/* ...until they expire, like any token. */
	assert_reason(jwt_verify(&rot, tok, (size_t)n, EXP + 60, &got), JWT_E_EXPIRED);
	/* The current key signs, with its kid; the previous servers do not
	 * know it. */
	n = jwt_sign(&rot, &c, tok, sizeof tok);
	assert_true(n > 0);
	assert_reason(jwt_verify(&rot, tok, (size_t)n, NOW, &got), 0);
	assert_reason(jwt_verify(&es_pub, tok, (size_t)n, NOW, &got), 0);
	assert_reason(jwt_verify(&rs_pub, tok, (size_t)n, NOW, &got), JWT_E_KID);
	assert_reason(splice_header(&rot, tok, (size_t)n, &rot, &got), 0);
	/* A key not in the set: its kid is unknown. */
	n = jwt_sign(&hs, &c, tok, sizeof tok);
	assert_reason(jwt_verify(&rot, tok, (size_t)n, NOW, &got), JWT_E_KID);
	n = jwt_sign(&es_other, &c, tok, sizeof tok);
	assert_reason(jwt_verify(&rot, tok, (size_t)n, NOW, &got), JWT_E_KID);
	/* A previous key's kid on another key's signature. */
	n = jwt_sign(&es_other, &c, tok, sizeof tok);
	assert_reason(splice_header(&rs, tok, (size_t)n, &rot, &got), JWT_E_SIGNATURE);
	/* Tokens without a kid (before this change) try the current key
	 * only: pyjwt's ES256 token verifies, its RS256 one no longer does
	 * although RS256 is in the set. */
	pyjwt("test-only-pyjwt-es256.jwt", &rot, "agent-pyjwt-es256");
	n = (int)read_fixture("test-only-pyjwt-rs256.jwt", tok, sizeof tok);
	assert_reason(jwt_verify(&rot, tok, (size_t)n, NOW, &got), JWT_E_ALG);
	jwt_keys_fini(&rot);
	jwt_keys_fini(&rot);
	assert_int_equal(rot.nkeys, 0);
}

/* The kid says which key; the key says which alg. A kid of a key of
 * another algorithm is the key confusion again. */
static void test_kid_of_another_alg_rejected(void **state)
{
	struct jwt_keys rot;
	struct jwt_claims got;
	char h[160];
	size_t n;

	(void)state;
	load_rotation(&rot);
	/* HS256 keyed with the RS256 public key, naming the RS256 kid. */
	snprintf(h, sizeof h, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", rot.set[1].kid);
	n = hs_token(h, "{" GOOD_CLAIMS "}", rs_pub.verify_key, rs_pub.verify_key_len, tok);
	assert_reason(jwt_verify(&rot, tok, n, NOW, &got), JWT_E_ALG);
	/* RS256 naming the HS256 key's kid. */
	snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", rot.set[2].kid);
	n = hs_token(h, "{" GOOD_CLAIMS "}", hs_other.verify_key, hs_other.verify_key_len,
		     tok);
	assert_reason(jwt_verify(&rot, tok, n, NOW, &got), JWT_E_ALG);
	/* The right alg for the HS256 kid: it verifies (the control). */
	snprintf(h, sizeof h, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", rot.set[2].kid);
	n = hs_token(h, "{" GOOD_CLAIMS "}", hs_other.verify_key, hs_other.verify_key_len,
		     tok);
	assert_reason(jwt_verify(&rot, tok, n, NOW, &got), 0);
	/* none, with a kid of ours. */
	snprintf(h, sizeof h, "{\"alg\":\"none\",\"kid\":\"%s\"}", rot.set[0].kid);
	n = b64url(h, strlen(h), tok);
	tok[n++] = '.';
	n += b64url("{" GOOD_CLAIMS "}", strlen("{" GOOD_CLAIMS "}"), tok + n);
	tok[n++] = '.';
	tok[n] = '\0';
	assert_reason(jwt_verify(&rot, tok, n, NOW, &got), JWT_E_ALG);
	jwt_keys_fini(&rot);
}

static void test_add_previous_errors(void **state)
{
	struct jwt_keys k;
	char err[256];

	(void)state;
	load(&k, "test-only-hs256.secret", NULL, NULL);
	/* The current key again, a weak key, a missing file, neither, both. */
	assert_int_equal(jwt_keys_add_previous(&k, fx("test-only-hs256.secret"), NULL, err,
					       sizeof err),
			 JWT_KEYS_BAD_PREVIOUS_SECRET);
	assert_non_null(strstr(err, "already in the set"));
	assert_int_equal(jwt_keys_add_previous(&k, NULL, fx("test-only-rsa1024-public.pem"),
					       err, sizeof err),
			 JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY);
	assert_non_null(strstr(err, "1024 bits"));
	assert_int_equal(jwt_keys_add_previous(&k, NULL, fx("test-only-p384-public.pem"), err,
					       sizeof err),
			 JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY);
	assert_int_equal(jwt_keys_add_previous(&k, fx("test-only-short.secret"), NULL, err,
					       sizeof err),
			 JWT_KEYS_BAD_PREVIOUS_SECRET);
	assert_int_equal(jwt_keys_add_previous(&k, fx("nope.secret"), NULL, err, sizeof err),
			 JWT_KEYS_BAD_PREVIOUS_SECRET);
	assert_true(jwt_keys_add_previous(&k, NULL, NULL, err, sizeof err) < 0);
	assert_int_equal(k.nkeys, 1); /* unchanged by every failure */
	/* Up to JWT_KEYS_MAX in all; the same key twice is refused. */
	assert_int_equal(jwt_keys_add_previous(&k, NULL, fx("test-only-es256-public.pem"), err,
					       sizeof err),
			 0);
	assert_int_equal(jwt_keys_add_previous(&k, NULL, fx("test-only-es256-public.pem"), err,
					       sizeof err),
			 JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY);
	assert_int_equal(jwt_keys_add_previous(&k, NULL, fx("test-only-es256-other-public.pem"),
					       err, sizeof err),
			 0);
	assert_int_equal(jwt_keys_add_previous(&k, NULL, fx("test-only-rs256-public.pem"), err,
					       sizeof err),
			 0);
	assert_int_equal(jwt_keys_add_previous(&k, fx("test-only-hs256-other.secret"), NULL,
					       err, sizeof err),
			 0);
	assert_int_equal(k.nkeys, 5);
	jwt_keys_fini(&k);
	/* Nothing to add to. */
	assert_true(jwt_keys_add_previous(&k, fx("test-only-hs256.secret"), NULL, err,
					  sizeof err) < 0);
}

/* RFC 7518 3.4: R || S, 64 bytes, not DER; and checked here with
 * OpenSSL's own DER conversion, not ours. */
static void test_es256_signature_is_raw_r_s(void **state)
{
	struct jwt_claims c = sample();
	unsigned char der[80], *d = der;
	const char *sig;
	int n, dl;
	size_t sn;
	FILE *f;
	EVP_PKEY *pub;
	EVP_MD_CTX *ctx;
	ECDSA_SIG *es_sig;
	unsigned char raw[64];

	(void)state;
	n = jwt_sign(&es, &c, tok, sizeof tok);
	assert_true(n > 0);
	sig = strrchr(tok, '.') + 1;
	assert_int_equal(strlen(sig), 86); /* 64 bytes in base64url */
	/* Decode it with the test's own decoder (via OpenSSL's base64). */
	{
		char std[100];

		sn = strlen(sig);
		for (size_t i = 0; i < sn; i++)
			std[i] = sig[i] == '-' ? '+' : sig[i] == '_' ? '/' : sig[i];
		std[sn] = std[sn + 1] = '=';
		std[sn + 2] = '\0';
		unsigned char out[70];
		assert_int_equal(EVP_DecodeBlock(out, (const unsigned char *)std, 88), 66);
		memcpy(raw, out, 64);
	}
	es_sig = ECDSA_SIG_new();
	assert_non_null(es_sig);
	ECDSA_SIG_set0(es_sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
	dl = i2d_ECDSA_SIG(es_sig, &d);
	ECDSA_SIG_free(es_sig);
	assert_true(dl > 0);
	f = fopen(fx("test-only-es256-public.pem"), "r");
	assert_non_null(f);
	pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(pub);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(ctx, der, (size_t)dl, (const unsigned char *)tok,
					  (size_t)(sig - 1 - tok)),
			 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pub);
}

static void test_client_id_round_trip(void **state)
{
	struct jwt_claims c = sample(), got;
	int n;

	(void)state;
	snprintf(c.client_id, sizeof c.client_id, "client-%d", 42);
	n = jwt_sign(&rs, &c, tok, sizeof tok);
	assert_true(n > 0);
	assert_reason(jwt_verify(&rs_pub, tok, (size_t)n, NOW, &got), 0);
	assert_string_equal(got.client_id, "client-42");
	c = sample();
	n = jwt_sign(&rs, &c, tok, sizeof tok);
	assert_reason(jwt_verify(&rs_pub, tok, (size_t)n, NOW, &got), 0);
	assert_string_equal(got.client_id, "");
	memset(c.client_id, 'x', sizeof c.client_id); /* unterminated */
	assert_reason(jwt_sign(&rs, &c, tok, sizeof tok), JWT_E_INVALID);
}

static void test_jwks_publishes_public_keys_current_first(void **state)
{
	struct jwt_keys rot;
	char jwks[8192];
	json_error_t e;
	json_t *root, *keys, *k;
	size_t n;

	(void)state;
	load_rotation(&rot);
	n = jwt_keys_jwks(&rot, jwks, sizeof jwks);
	assert_true(n > 0);
	assert_int_equal(n, strlen(jwks));
	root = json_loads(jwks, JSON_REJECT_DUPLICATES, &e);
	if (!root)
		fail_msg("JWKS is not JSON: %s: %s", e.text, jwks);
	assert_int_equal(json_object_size(root), 1);
	keys = json_object_get(root, "keys");
	/* The HS256 secret is never published. */
	assert_int_equal(json_array_size(keys), 2);
	k = json_array_get(keys, 0);
	assert_string_equal(json_string_value(json_object_get(k, "kty")), "EC");
	assert_string_equal(json_string_value(json_object_get(k, "crv")), "P-256");
	assert_string_equal(json_string_value(json_object_get(k, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
	assert_string_equal(json_string_value(json_object_get(k, "kid")), rot.set[0].kid);
	assert_int_equal(strlen(json_string_value(json_object_get(k, "x"))), 43);
	assert_int_equal(strlen(json_string_value(json_object_get(k, "y"))), 43);
	assert_null(json_object_get(k, "d")); /* no private member */
	k = json_array_get(keys, 1);
	assert_string_equal(json_string_value(json_object_get(k, "kty")), "RSA");
	assert_string_equal(json_string_value(json_object_get(k, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(k, "kid")), rot.set[1].kid);
	assert_string_equal(json_string_value(json_object_get(k, "e")), "AQAB");
	assert_int_equal(strlen(json_string_value(json_object_get(k, "n"))), 342); /* 256 B */
	assert_null(json_object_get(k, "d"));
	json_decref(root);
	/* Too small: 0, and no cut text. */
	assert_int_equal(jwt_keys_jwks(&rot, jwks, n), 0);
	assert_int_equal(jwt_keys_jwks(&rot, jwks, n + 1), n);
	/* HS256 alone: an empty set. */
	assert_int_equal(jwt_keys_jwks(&hs, jwks, sizeof jwks), strlen("{\"keys\":[]}"));
	assert_string_equal(jwks, "{\"keys\":[]}");
	jwt_keys_fini(&rot);
}

/* Another implementation, PyJWT, reads our JWK Set, recomputes every kid
 * (RFC 7638) and verifies our tokens with the key their kid names: the
 * current ES256 key's and a previous RS256 key's. */
static void test_pyjwt_verifies_our_tokens_with_our_jwks(void **state)
{
	struct jwt_keys rot;
	struct jwt_claims c = sample();
	char jwks[8192], path[] = "/tmp/ringside-jwks-XXXXXX", cmd[8192];
	char t1[2048], t2[2048];
	int fd, st;
	size_t n;

	(void)state;
	load_rotation(&rot);
	n = jwt_keys_jwks(&rot, jwks, sizeof jwks);
	assert_true(n > 0);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, jwks, n), (ssize_t)n);
	close(fd);
	/* PyJWT checks exp against the clock. */
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + 600;
	assert_true(jwt_sign(&rot, &c, t1, sizeof t1) > 0);
	assert_true(jwt_sign(&rs, &c, t2, sizeof t2) > 0);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s '%s' '%s' %s %s",
		 fx("verify_with_jwks.py"), path, ISS, AUD, t1, t2);
	st = system(cmd);
	unlink(path);
	jwt_keys_fini(&rot);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("verify_with_jwks.py failed (status %d); python3-jwt is in "
			 "scripts/deps.sh",
			 st);
}

/* Workers share one set of keys; each thread gets its own OpenSSL
 * context, copied from the key's template. Run under TSan by make stress. */
static void *sign_verify_many(void *arg)
{
	struct jwt_keys *const keys[] = {&hs, &es, &rs};
	struct jwt_claims c = sample(), got;
	char t[2048];
	intptr_t bad = 0;

	(void)arg;
	for (int i = 0; i < 30; i++) {
		struct jwt_keys *k = keys[i % 3];
		int n = jwt_sign(k, &c, t, sizeof t);

		if (n <= 0 || jwt_verify(k, t, (size_t)n, NOW, &got) != 0 ||
		    strcmp(got.sub, c.sub) != 0)
			bad++;
		t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A'; /* and a bad one */
		if (jwt_verify(k, t, (size_t)n, NOW, &got) != JWT_E_SIGNATURE)
			bad++;
	}
	return (void *)bad;
}

static void test_threads_share_the_keys(void **state)
{
	pthread_t th[4];
	void *bad;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, sign_verify_many, NULL), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_int_equal((intptr_t)bad, 0);
	}
}

/* ---- rejections ---------------------------------------------------- */

static void test_alg_none_rejected(void **state)
{
	const char *none = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
	char p[1024];
	size_t n;
	struct jwt_claims c;

	(void)state;
	/* With a signature (HMAC under our own secret, for good measure). */
	assert_reason(verify_hs(none, "{" GOOD_CLAIMS "}", NOW), JWT_E_ALG);
	/* Without one: "header.payload." as RFC 7519 6.1 spells it. */
	n = b64url(none, strlen(none), p);
	p[n++] = '.';
	n += b64url("{" GOOD_CLAIMS "}", strlen("{" GOOD_CLAIMS "}"), p + n);
	p[n++] = '.';
	p[n] = '\0';
	assert_reason(jwt_verify(&hs, p, n, NOW, &c), JWT_E_ALG);
	assert_reason(jwt_verify(&es_pub, p, n, NOW, &c), JWT_E_ALG);
	/* "None", "NONE": libjwt compares alg without case */
	assert_reason(verify_hs("{\"alg\":\"NONE\"}", "{" GOOD_CLAIMS "}", NOW), JWT_E_ALG);
	/* And the pinned name in another case is not the pinned name. */
	assert_reason(verify_hs("{\"alg\":\"hs256\"}", "{" GOOD_CLAIMS "}", NOW), JWT_E_ALG);
}

/* The classic key confusion: a server pinned to ES256 (or RS256) whose
 * public key, which anyone may have, is used as an HMAC secret. libjwt
 * alone would accept this token. */
static void test_hs256_with_public_key_as_secret_rejected(void **state)
{
	struct jwt_claims c;
	size_t n;

	(void)state;
	n = hs_token(HDR_HS, "{" GOOD_CLAIMS "}", es_pub.verify_key,
		     es_pub.verify_key_len, tok);
	assert_reason(jwt_verify(&es_pub, tok, n, NOW, &c), JWT_E_ALG);
	n = hs_token(HDR_HS, "{" GOOD_CLAIMS "}", rs_pub.verify_key,
		     rs_pub.verify_key_len, tok);
	assert_reason(jwt_verify(&rs_pub, tok, n, NOW, &c), JWT_E_ALG);
	/* And the other way round: an ES256 token at an HS256 server: its
	 * kid is none of the server's keys. */
	n = (size_t)jwt_sign(&es, &(struct jwt_claims){.sub = "a", .organization_id = "o",
						       .iat = IAT, .exp = EXP},
			     tok, sizeof tok);
	assert_reason(jwt_verify(&hs, tok, n, NOW, &c), JWT_E_KID);
	assert_reason(jwt_verify(&rs_pub, tok, n, NOW, &c), JWT_E_KID);
	/* With the HS256 server's own kid, ES256 is still the wrong alg. */
	{
		char h[160];

		snprintf(h, sizeof h, "{\"alg\":\"ES256\",\"kid\":\"%s\"}",
			 hs.set[0].kid);
		n = hs_token(h, "{" GOOD_CLAIMS "}", hs.verify_key, hs.verify_key_len, tok);
		assert_reason(jwt_verify(&hs, tok, n, NOW, &c), JWT_E_ALG);
		/* And the ES256 public key as an HMAC secret, with its kid. */
		snprintf(h, sizeof h, "{\"alg\":\"HS256\",\"kid\":\"%s\"}",
			 es_pub.set[0].kid);
		n = hs_token(h, "{" GOOD_CLAIMS "}", es_pub.verify_key,
			     es_pub.verify_key_len, tok);
		assert_reason(jwt_verify(&es_pub, tok, n, NOW, &c), JWT_E_ALG);
	}
}

/* tok with its header replaced by one that signer's jwt_sign writes
 * (its kid), the payload and signature kept; verified by verifier. */
static int splice_header(struct jwt_keys *signer, const char *t, size_t n,
			 struct jwt_keys *verifier, struct jwt_claims *got)
{
	static char other[8192];
	char out[8192];
	int m = jwt_sign(signer, &(struct jwt_claims){.sub = "s", .organization_id = "o",
						       .iat = IAT, .exp = EXP},
			 other, sizeof other);
	size_t h = strcspn(other, "."), th = strcspn(t, ".");

	assert_true(m > 0);
	memcpy(out, other, h);
	memcpy(out + h, t + th, n - th);
	return jwt_verify(verifier, out, h + n - th, NOW, got);
}

static void test_wrong_key_rejected(void **state)
{
	struct jwt_claims c = sample(), got;
	int n;

	(void)state;
	n = jwt_sign(&hs_other, &c, tok, sizeof tok);
	assert_true(n > 0);
	/* Another key's kid is unknown here... */
	assert_reason(jwt_verify(&hs, tok, (size_t)n, NOW, &got), JWT_E_KID);
	/* ...and with no kid (the current key) or our kid, the signature
	 * is wrong. */
	n = (int)hs_token(HDR_HS, "{" GOOD_CLAIMS "}", hs_other.verify_key,
			  hs_other.verify_key_len, tok);
	assert_reason(jwt_verify(&hs, tok, (size_t)n, NOW, &got), JWT_E_SIGNATURE);
	n = jwt_sign(&es_other, &c, tok, sizeof tok);
	assert_true(n > 0);
	assert_reason(jwt_verify(&es_pub, tok, (size_t)n, NOW, &got), JWT_E_KID);
	assert_reason(splice_header(&es, tok, (size_t)n, &es_pub, &got), JWT_E_SIGNATURE);
}

/* A valid token with another payload spliced in, and with one signature
 * character changed, in each algorithm. */
static void tamper(struct jwt_keys *signer, struct jwt_keys *verifier)
{
	struct jwt_claims c = sample(), got;
	char other[sizeof tok], spliced[3 * sizeof tok];
	int n, m;
	const char *d1, *d2, *o1, *o2;

	n = jwt_sign(signer, &c, tok, sizeof tok);
	c.scopes = JWT_SCOPE_ALL; /* what an attacker would like */
	m = jwt_sign(signer, &c, other, sizeof other);
	assert_true(n > 0 && m > 0);
	d1 = strchr(tok, '.'), d2 = strrchr(tok, '.');
	o1 = strchr(other, '.'), o2 = strrchr(other, '.');
	snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(d1 - tok), tok,
		 (int)(o2 - o1), o1, d2);
	assert_reason(jwt_verify(verifier, spliced, strlen(spliced), NOW, &got),
		      JWT_E_SIGNATURE);

	/* A middle character: the last one may only carry padding bits. */
	flip(&tok[(size_t)(d2 - tok) + 10]);
	assert_reason(jwt_verify(verifier, tok, (size_t)n, NOW, &got),
		      JWT_E_SIGNATURE);
}

static void test_tampered_payload_or_signature_rejected(void **state)
{
	(void)state;
	tamper(&hs, &hs);
	tamper(&es, &es_pub);
	tamper(&rs, &rs_pub);
}

struct reject_case {
	const char *name;
	const char *header;
	const char *payload;
	int want;
};

#define LONG63 "123456789012345678901234567890123456789012345678901234567890123"

static const struct reject_case reject_cases[] = {
	{"valid, as a control", HDR_HS, "{" GOOD_CLAIMS "}", 0},
	{"expired", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT
	 ",\"exp\":1700000060}",
	 JWT_E_EXPIRED},
	{"not yet valid", HDR_HS, "{" GOOD_CLAIMS ",\"nbf\":1700000200}",
	 JWT_E_NOT_YET_VALID},
	{"nbf a string", HDR_HS, "{" GOOD_CLAIMS ",\"nbf\":\"1700000000\"}", JWT_E_NBF},
	{"iat in the future", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_EXP
	 ",\"iat\":1700000200}",
	 JWT_E_IAT_FUTURE},
	{"iat missing", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_EXP "}",
	 JWT_E_IAT},
	{"exp missing", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT "}",
	 JWT_E_EXP},
	{"exp a string", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT
	 ",\"exp\":\"1700003600\"}",
	 JWT_E_EXP},
	{"exp a real", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT
	 ",\"exp\":1700003600.5}",
	 JWT_E_EXP},
	{"exp null", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT
	 ",\"exp\":null}",
	 JWT_E_EXP},
	{"iss wrong", HDR_HS,
	 "{\"iss\":\"https://evil.test\"," C_AUD "," C_SUB "," C_ORG "," C_SCOPE
	 "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_ISSUER},
	{"iss missing", HDR_HS,
	 "{" C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_ISSUER},
	{"aud wrong", HDR_HS,
	 "{" C_ISS ",\"aud\":\"ringside-test2\"," C_SUB "," C_ORG "," C_SCOPE
	 "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_AUDIENCE},
	{"aud missing", HDR_HS,
	 "{" C_ISS "," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_AUDIENCE},
	{"aud array without ours", HDR_HS,
	 "{" C_ISS ",\"aud\":[\"a\",\"ringside-tes\",[\"ringside-test\"],"
	 "{\"x\":\"ringside-test\"}]," C_SUB "," C_ORG "," C_SCOPE "," C_JTI
	 "," C_IAT "," C_EXP "}",
	 JWT_E_AUDIENCE},
	{"aud array with ours, escaped", HDR_HS,
	 "{" C_ISS ",\"aud\":[1,\"x\",\"ringside\\u002dtest\"]," C_SUB "," C_ORG
	 "," C_SCOPE "," C_JTI "," C_IAT "," C_EXP "}",
	 0},
	{"aud empty array", HDR_HS,
	 "{" C_ISS ",\"aud\":[]," C_SUB "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT
	 "," C_EXP "}",
	 JWT_E_AUDIENCE},
	{"sub missing", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_ORG "," C_SCOPE "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_SUB},
	{"sub empty", HDR_HS,
	 "{" C_ISS "," C_AUD ",\"sub\":\"\"," C_ORG "," C_SCOPE "," C_JTI "," C_IAT
	 "," C_EXP "}",
	 JWT_E_SUB},
	/* RFC 7519 4: a claim twice is rejected, not read first or last
	 * (readers that disagree are a forgery). */
	{"sub twice", HDR_HS, "{" GOOD_CLAIMS ",\"sub\":\"admin\"}", JWT_E_MALFORMED},
	{"exp twice", HDR_HS, "{" GOOD_CLAIMS ",\"exp\":1800000000}", JWT_E_MALFORMED},
	{"client_id too long", HDR_HS, "{" GOOD_CLAIMS ",\"client_id\":\"" LONG63 "4\"}",
	 JWT_E_CLAIM_TOO_LONG},
	{"client_id a number is no client", HDR_HS, "{" GOOD_CLAIMS ",\"client_id\":7}", 0},
	{"sub a number", HDR_HS,
	 "{" C_ISS "," C_AUD ",\"sub\":42," C_ORG "," C_SCOPE "," C_JTI "," C_IAT
	 "," C_EXP "}",
	 JWT_E_SUB},
	{"organization_id missing", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_SCOPE "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_ORG},
	{"jti missing", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE "," C_IAT "," C_EXP "}",
	 JWT_E_JTI},
	{"scope missing", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_SCOPE},
	{"scope an array", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG ",\"scope\":[\"metrics:write\"],"
	 C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_SCOPE},
	{"sub of 63 bytes fits", HDR_HS,
	 "{" C_ISS "," C_AUD ",\"sub\":\"" LONG63 "\"," C_ORG "," C_SCOPE "," C_JTI
	 "," C_IAT "," C_EXP "}",
	 0},
	{"sub of 64 bytes", HDR_HS,
	 "{" C_ISS "," C_AUD ",\"sub\":\"" LONG63 "4\"," C_ORG "," C_SCOPE "," C_JTI
	 "," C_IAT "," C_EXP "}",
	 JWT_E_CLAIM_TOO_LONG},
	{"organization_id of 64 bytes", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB ",\"organization_id\":\"" LONG63 "4\","
	 C_SCOPE "," C_JTI "," C_IAT "," C_EXP "}",
	 JWT_E_CLAIM_TOO_LONG},
	{"jti of 64 bytes", HDR_HS,
	 "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE ",\"jti\":\"" LONG63
	 "4\"," C_IAT "," C_EXP "}",
	 JWT_E_CLAIM_TOO_LONG},
	{"bad JSON in the payload", HDR_HS, "{" GOOD_CLAIMS ",}", JWT_E_MALFORMED},
	{"payload not an object", HDR_HS, "[{" GOOD_CLAIMS "}]", JWT_E_MALFORMED},
	{"payload with trailing bytes", HDR_HS, "{" GOOD_CLAIMS "}x", JWT_E_MALFORMED},
	{"NUL escaped in a string", HDR_HS, "{" GOOD_CLAIMS ",\"x\":\"a\\u0000\"}",
	 JWT_E_MALFORMED},
	{"invalid UTF-8", HDR_HS, "{" GOOD_CLAIMS ",\"x\":\"\xc0\xaf\"}",
	 JWT_E_MALFORMED},
	{"lone surrogate", HDR_HS, "{" GOOD_CLAIMS ",\"x\":\"\\ud800\"}",
	 JWT_E_MALFORMED},
	{"deep nesting", HDR_HS,
	 "{" GOOD_CLAIMS ",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1"
	 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	 JWT_E_MALFORMED},
	{"bad JSON in the header", "{\"alg\":\"HS256\",}", "{" GOOD_CLAIMS "}",
	 JWT_E_MALFORMED},
	{"header without alg", "{\"typ\":\"JWT\"}", "{" GOOD_CLAIMS "}", JWT_E_ALG},
	{"alg twice", "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{" GOOD_CLAIMS "}",
	 JWT_E_MALFORMED},
	{"alg escaped", "{\"al\\u0067\":\"HS256\"}", "{" GOOD_CLAIMS "}", 0},
	{"typ lower case", "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{" GOOD_CLAIMS "}", 0},
	{"typ other", "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "{" GOOD_CLAIMS "}",
	 JWT_E_MALFORMED},
	{"crit header", "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
	 "{" GOOD_CLAIMS "}", JWT_E_MALFORMED},
	{"kid header not a string", "{\"alg\":\"HS256\",\"kid\":{\"a\":[1,2.5e3,true]}}",
	 "{" GOOD_CLAIMS "}", JWT_E_MALFORMED},
	{"kid header twice", "{\"alg\":\"HS256\",\"kid\":\"a\",\"kid\":\"b\"}",
	 "{" GOOD_CLAIMS "}", JWT_E_MALFORMED},
	{"kid unknown", "{\"alg\":\"HS256\",\"kid\":\"nope\"}", "{" GOOD_CLAIMS "}",
	 JWT_E_KID},
	{"other headers ignored", "{\"alg\":\"HS256\",\"x5t\":{\"a\":[1,2.5e3,true]}}",
	 "{" GOOD_CLAIMS "}", 0},
};

static void test_claim_and_json_rejections(void **state)
{
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
		const struct reject_case *rc = &reject_cases[i];
		int r = verify_hs(rc->header, rc->payload, NOW);

		if (r != rc->want) {
			print_error("%s: got %d (%s), want %d (%s)\n", rc->name, r,
				    jwt_error_reason(r), rc->want,
				    jwt_error_reason(rc->want));
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void test_claims_fill_out(void **state)
{
	struct jwt_claims c;
	size_t n;

	(void)state;
	n = hs_token(HDR_HS,
		     "{" C_ISS "," C_AUD ",\"sub\":\"" LONG63 "\"," C_ORG
		     ",\"scope\":\"  tokens:read   agents:write metrics:writex\","
		     C_JTI "," C_IAT "," C_EXP ",\"nbf\":1700000050}",
		     hs.verify_key, hs.verify_key_len, tok);
	assert_reason(jwt_verify(&hs, tok, n, NOW, &c), 0);
	assert_string_equal(c.sub, LONG63);
	assert_string_equal(c.organization_id, "org-1");
	assert_string_equal(c.jti, "jti-1");
	assert_int_equal(c.scopes, JWT_SCOPE_TOKENS_READ | JWT_SCOPE_AGENTS_WRITE);
	assert_int_equal(c.nbf, 1700000050);
}

static void test_shape_rejections(void **state)
{
	struct jwt_claims c;
	char t[sizeof tok + 64];
	size_t n;
	char *d1, *d2;

	(void)state;
	n = hs_token(HDR_HS, "{" GOOD_CLAIMS "}", hs.verify_key, hs.verify_key_len, tok);
	assert_reason(jwt_verify(&hs, tok, n, NOW, &c), 0);
	d1 = strchr(tok, '.');
	d2 = strrchr(tok, '.');

	/* two segments */
	assert_reason(jwt_verify(&hs, tok, (size_t)(d2 - tok), NOW, &c), JWT_E_MALFORMED);
	/* four segments */
	snprintf(t, sizeof t, "%s.%s", tok, d2 + 1);
	assert_reason(jwt_verify(&hs, t, strlen(t), NOW, &c), JWT_E_MALFORMED);
	/* empty header, empty payload, empty signature */
	snprintf(t, sizeof t, "%s", d1);
	assert_reason(jwt_verify(&hs, t, strlen(t), NOW, &c), JWT_E_MALFORMED);
	snprintf(t, sizeof t, "%.*s.%s", (int)(d1 - tok), tok, d2);
	assert_reason(jwt_verify(&hs, t, strlen(t), NOW, &c), JWT_E_MALFORMED);
	assert_reason(jwt_verify(&hs, tok, (size_t)(d2 - tok) + 1, NOW, &c),
		      JWT_E_SIGNATURE);
	/* nothing at all */
	assert_reason(jwt_verify(&hs, "", 0, NOW, &c), JWT_E_MALFORMED);

	/* characters outside base64url, each in each segment */
	for (const char *bad = "+/= \t\"%\x80"; *bad; bad++) {
		size_t at[3] = {5, (size_t)(d1 - tok) + 5, (size_t)(d2 - tok) + 5};

		for (int s = 0; s < 3; s++) {
			memcpy(t, tok, n + 1);
			t[at[s]] = *bad;
			assert_reason(jwt_verify(&hs, t, n, NOW, &c), JWT_E_MALFORMED);
		}
	}
	/* a NUL inside the token: len says it is there */
	memcpy(t, tok, n + 1);
	t[(size_t)(d1 - tok) + 5] = '\0';
	assert_reason(jwt_verify(&hs, t, n, NOW, &c), JWT_E_MALFORMED);
	/* padding, which RFC 7515 2 removes */
	snprintf(t, sizeof t, "%s=", tok);
	assert_reason(jwt_verify(&hs, t, strlen(t), NOW, &c), JWT_E_MALFORMED);

	/* A signature re-spelled with a set padding bit (43 characters carry
	 * 258 bits for 256): rejected, not accepted as the same bytes. */
	memcpy(t, tok, n + 1);
	assert_int_equal(n - (size_t)(d2 - tok) - 1, 43);
	{
		static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		const char *p = strchr(a, t[n - 1]);

		t[n - 1] = a[(p - a) ^ 1];
	}
	assert_reason(jwt_verify(&hs, t, n, NOW, &c), JWT_E_MALFORMED);
	/* a signature of the wrong length (31 bytes) */
	{
		unsigned char zero[31] = {0};
		size_t m = (size_t)(d2 - tok) + 1;

		memcpy(t, tok, m);
		m += b64url(zero, sizeof zero, t + m);
		assert_reason(jwt_verify(&hs, t, m, NOW, &c), JWT_E_SIGNATURE);
	}
}

static void test_length_bound_checked_before_reading(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	char *guard;
	struct jwt_claims c;
	struct jwt_keys k = hs; /* same keys, own limits */
	size_t n;

	(void)state;
	/* Unreadable memory: a length over the bound must not touch it. */
	guard = mmap(NULL, (size_t)page * 4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(guard != MAP_FAILED);
	assert_reason(jwt_verify(&hs, guard, 4097, NOW, &c), JWT_E_TOO_LONG);
	assert_reason(jwt_verify(&hs, guard, (size_t)page * 4, NOW, &c), JWT_E_TOO_LONG);
	assert_reason(jwt_verify(&hs, guard, SIZE_MAX, NOW, &c), JWT_E_TOO_LONG);

	n = hs_token(HDR_HS, "{" GOOD_CLAIMS "}", hs.verify_key, hs.verify_key_len, tok);
	k.max_token_bytes = n;
	assert_reason(jwt_verify(&k, tok, n, NOW, &c), 0);
	k.max_token_bytes = n - 1;
	assert_reason(jwt_verify(&k, tok, n, NOW, &c), JWT_E_TOO_LONG);
	/* Raised past the hard limit, the hard limit holds. */
	k.max_token_bytes = 1 << 20;
	assert_reason(jwt_verify(&k, guard, JWT_TOKEN_LIMIT + 1, NOW, &c), JWT_E_TOO_LONG);
	munmap(guard, (size_t)page * 4);
}

/* A token ending exactly at an unreadable page: verify reads len bytes,
 * never the byte after (it is not NUL-terminated in a request buffer). */
static void test_no_read_past_len(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	char *mem;
	struct jwt_claims c;
	size_t n;

	(void)state;
	n = hs_token(HDR_HS, "{" GOOD_CLAIMS "}", hs.verify_key, hs.verify_key_len, tok);
	mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
	memcpy(mem + page - n, tok, n);
	assert_reason(jwt_verify(&hs, mem + page - n, n, NOW, &c), 0);
	/* every prefix is rejected, none reads past its end */
	for (size_t len = 0; len < n; len++)
		assert_true(jwt_verify(&hs, mem + page - len, len, NOW, &c) != 0);
	munmap(mem, (size_t)page * 2);
}

/* Any one byte changed anywhere makes the token invalid. */
static void test_every_single_byte_change_rejected(void **state)
{
	struct jwt_claims c;
	char t[4096];
	size_t n;

	(void)state;
	n = hs_token(HDR_HS, "{" GOOD_CLAIMS "}", hs.verify_key, hs.verify_key_len, tok);
	for (size_t i = 0; i < n; i++) {
		for (int delta = 1; delta < 256; delta += 37) {
			memcpy(t, tok, n);
			t[i] = (char)(t[i] + delta);
			if (jwt_verify(&hs, t, n, NOW, &c) == 0)
				fail_msg("byte %zu + %d accepted", i, delta);
		}
	}
}

static void test_leeway_edges(void **state)
{
	char p[1024];

	(void)state;
	/* exp: valid while now < exp + leeway */
	snprintf(p, sizeof p, "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE
		 "," C_JTI ",\"iat\":%d,\"exp\":%d}", IAT, NOW - 30);
	assert_reason(verify_hs(HDR_HS, p, NOW), JWT_E_EXPIRED);
	snprintf(p, sizeof p, "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE
		 "," C_JTI ",\"iat\":%d,\"exp\":%d}", IAT, NOW - 29);
	assert_reason(verify_hs(HDR_HS, p, NOW), 0);
	/* nbf: valid from nbf - leeway */
	snprintf(p, sizeof p, "{" GOOD_CLAIMS ",\"nbf\":%d}", NOW + 30);
	assert_reason(verify_hs(HDR_HS, p, NOW), 0);
	snprintf(p, sizeof p, "{" GOOD_CLAIMS ",\"nbf\":%d}", NOW + 31);
	assert_reason(verify_hs(HDR_HS, p, NOW), JWT_E_NOT_YET_VALID);
	/* iat: at most leeway in the future */
	snprintf(p, sizeof p, "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE
		 "," C_JTI "," C_EXP ",\"iat\":%d}", NOW + 30);
	assert_reason(verify_hs(HDR_HS, p, NOW), 0);
	snprintf(p, sizeof p, "{" C_ISS "," C_AUD "," C_SUB "," C_ORG "," C_SCOPE
		 "," C_JTI "," C_EXP ",\"iat\":%d}", NOW + 31);
	assert_reason(verify_hs(HDR_HS, p, NOW), JWT_E_IAT_FUTURE);

	/* The same token across the exp edge, in time rather than claims. */
	assert_reason(verify_hs(HDR_HS, "{" GOOD_CLAIMS "}", EXP + 29), 0);
	assert_reason(verify_hs(HDR_HS, "{" GOOD_CLAIMS "}", EXP + 30), JWT_E_EXPIRED);
}

/* ---- scopes and reasons -------------------------------------------- */

static void test_scope_parse_and_format(void **state)
{
	char out[80];

	(void)state;
	assert_int_equal(jwt_scope_parse("", 0), 0);
	assert_int_equal(jwt_scope_parse("metrics:write", 13), JWT_SCOPE_METRICS_WRITE);
	assert_int_equal(jwt_scope_parse("metrics:write", 12), 0); /* a prefix */
	assert_int_equal(jwt_scope_parse("a metrics:writes agents:read b", 30),
			 JWT_SCOPE_AGENTS_READ);
	assert_int_equal(jwt_scope_format(JWT_SCOPE_ALL, out, sizeof out), 50);
	assert_string_equal(out, "agents:read agents:write tokens:read metrics:write");
	assert_int_equal(jwt_scope_parse(out, strlen(out)), JWT_SCOPE_ALL);
	assert_int_equal(jwt_scope_format(0, out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(jwt_scope_format(JWT_SCOPE_METRICS_WRITE, out, 13),
			 JWT_E_BUFFER);
	assert_int_equal(jwt_scope_format(JWT_SCOPE_METRICS_WRITE, out, 14), 13);
}

static void test_every_error_has_a_distinct_reason(void **state)
{
	static const int codes[] = {
#define CODE_(name, value, reason) JWT_E_##name,
		JWT_ERR_MAP(CODE_)
#undef CODE_
	};
	size_t n = sizeof codes / sizeof codes[0];

	(void)state;
	assert_string_equal(jwt_error_reason(JWT_E_EXPIRED), "token expired");
	assert_string_equal(jwt_error_reason(JWT_E_SIGNATURE), "bad signature");
	assert_string_equal(jwt_error_reason(JWT_E_ALG), "wrong algorithm");
	assert_string_equal(jwt_error_reason(0), "ok");
	assert_string_equal(jwt_error_reason(-999), "unknown error");
	for (size_t i = 0; i < n; i++) {
		assert_true(codes[i] < 0);
		assert_string_not_equal(jwt_error_reason(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(codes[i], codes[j]);
			assert_string_not_equal(jwt_error_reason(codes[i]),
						jwt_error_reason(codes[j]));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_picks_algorithm_from_key),
		cmocka_unit_test(test_load_errors_are_clear),
		cmocka_unit_test(test_fini_twice_is_harmless),
		cmocka_unit_test(test_hs256_round_trip),
		cmocka_unit_test(test_es256_round_trip),
		cmocka_unit_test(test_rs256_round_trip),
		cmocka_unit_test(test_sign_keeps_given_jti_and_checks_input),
		cmocka_unit_test(test_new_jti_is_random_hex),
		cmocka_unit_test(test_rfc7515_a1_hs256_example),
		cmocka_unit_test(test_pyjwt_tokens_verify),
		cmocka_unit_test(test_every_key_has_a_distinct_kid),
		cmocka_unit_test(test_es256_kid_is_the_jwk_thumbprint),
		cmocka_unit_test(test_rotation_previous_keys_verify_current_signs),
		cmocka_unit_test(test_kid_of_another_alg_rejected),
		cmocka_unit_test(test_add_previous_errors),
		cmocka_unit_test(test_es256_signature_is_raw_r_s),
		cmocka_unit_test(test_client_id_round_trip),
		cmocka_unit_test(test_jwks_publishes_public_keys_current_first),
		cmocka_unit_test(test_pyjwt_verifies_our_tokens_with_our_jwks),
		cmocka_unit_test(test_threads_share_the_keys),
		cmocka_unit_test(test_alg_none_rejected),
		cmocka_unit_test(test_hs256_with_public_key_as_secret_rejected),
		cmocka_unit_test(test_wrong_key_rejected),
		cmocka_unit_test(test_tampered_payload_or_signature_rejected),
		cmocka_unit_test(test_claim_and_json_rejections),
		cmocka_unit_test(test_claims_fill_out),
		cmocka_unit_test(test_shape_rejections),
		cmocka_unit_test(test_length_bound_checked_before_reading),
		cmocka_unit_test(test_no_read_past_len),
		cmocka_unit_test(test_every_single_byte_change_rejected),
		cmocka_unit_test(test_leeway_edges),
		cmocka_unit_test(test_scope_parse_and_format),
		cmocka_unit_test(test_every_error_has_a_distinct_reason),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
