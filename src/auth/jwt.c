/*
 * Agent tokens (see include/ringside/jwt.h for the contract and DESIGN.md
 * "JWT" for what we check). The JWS compact serialization (RFC 7515 3.1,
 * 7.1) is ours: base64url, a strict JSON reader, claims written with the
 * JSON writer; the signatures are OpenSSL's over keys parsed once at load
 * (jwt_keys.c). libjwt is not used: it re-read the PEM key on every call.
 *
 * jwt_verify runs every check before the cryptography: the length, the
 * base64url alphabet, a strict decode of the header and the payload, a
 * syntax check of both as JSON, the header's kid (which key) and alg
 * (that key's, or JWT_E_ALG). So a token that names another algorithm
 * never reaches a signature check (an HMAC keyed with a public key is the
 * classic forgery), and `alg: none` has no key.
 */
#include "ringside/jwt.h"
#include "ringside/thread_object.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ringside/json_writer.h"
#include "json_syntax.h"
#include "jwt_int.h"

/* ---- errors -------------------------------------------------------- */

const char *jwt_error_reason(int code)
{
	switch (code) {
	case JWT_OK:
		return "ok";
#define JWT_ERR_CASE_(name, value, reason) \
	case JWT_E_##name:                 \
		return reason;
		JWT_ERR_MAP(JWT_ERR_CASE_)
#undef JWT_ERR_CASE_
	}
	return "unknown error";
}

/* ---- algorithms ---------------------------------------------------- */

const char *jwt_alg_pin_name(enum jwt_alg_pin alg)
{
	switch (alg) {
	case JWT_PIN_HS256:
		return "HS256";
	case JWT_PIN_ES256:
		return "ES256";
	case JWT_PIN_RS256:
		return "RS256";
	case JWT_PIN_NONE:
		break;
	}
	return "none";
}

/* ---- scopes -------------------------------------------------------- */

static const struct {
	const char *name;
	size_t len;
	uint32_t bit;
} scope_names[] = {
#define SCOPE_(name, bit) {name, sizeof name - 1, bit}
	SCOPE_("agents:read", JWT_SCOPE_AGENTS_READ),
	SCOPE_("agents:write", JWT_SCOPE_AGENTS_WRITE),
	SCOPE_("tokens:read", JWT_SCOPE_TOKENS_READ),
	SCOPE_("metrics:write", JWT_SCOPE_METRICS_WRITE),
#undef SCOPE_
};
#define SCOPE_COUNT (sizeof scope_names / sizeof scope_names[0])

uint32_t jwt_scope_parse(const char *s, size_t len)
{
	uint32_t bits = 0;
	size_t i = 0;

	while (i < len) {
		size_t start, n;

		while (i < len && s[i] == ' ')
			i++;
		start = i;
		while (i < len && s[i] != ' ')
			i++;
		n = i - start;
		for (size_t k = 0; n && k < SCOPE_COUNT; k++)
			if (n == scope_names[k].len &&
			    memcmp(s + start, scope_names[k].name, n) == 0)
				bits |= scope_names[k].bit;
	}
	return bits;
}

int jwt_scope_format(uint32_t scopes, char *out, size_t cap)
{
	size_t n = 0;

	if (cap == 0)
		return JWT_E_BUFFER;
	for (size_t k = 0; k < SCOPE_COUNT; k++) {
		size_t need;

		if (!(scopes & scope_names[k].bit))
			continue;
		need = (n ? 1 : 0) + scope_names[k].len;
		if (n + need + 1 > cap)
			return JWT_E_BUFFER;
		if (n)
			out[n++] = ' ';
		memcpy(out + n, scope_names[k].name, scope_names[k].len);
		n += scope_names[k].len;
	}
	out[n] = '\0';
	return (int)n;
}

/* ---- base64url (RFC 4648 5, no padding, as RFC 7515 2 requires) ---- */

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes n characters already known to be in the alphabet. Rejects a
 * length no encoding produces and set bits past the end: each byte string
 * has exactly one accepted spelling, so a token cannot be re-spelled. */
static int b64url_decode(const char *in, size_t n, unsigned char *out,
			 size_t cap, size_t *outlen)
{
	size_t full = n / 4, rem = n % 4, o = 0;
	uint32_t v;

	if (rem == 1 || full * 3 + (rem ? rem - 1 : 0) > cap)
		return -1;
	for (size_t g = 0; g < full; g++, in += 4) {
		v = (uint32_t)b64url_value((unsigned char)in[0]) << 18 |
		    (uint32_t)b64url_value((unsigned char)in[1]) << 12 |
		    (uint32_t)b64url_value((unsigned char)in[2]) << 6 |
		    (uint32_t)b64url_value((unsigned char)in[3]);
		out[o++] = (unsigned char)(v >> 16);
		out[o++] = (unsigned char)(v >> 8);
		out[o++] = (unsigned char)v;
	}
	if (rem == 2) {
		v = (uint32_t)b64url_value((unsigned char)in[0]) << 6 |
		    (uint32_t)b64url_value((unsigned char)in[1]);
		if (v & 0xf)
			return -1;
		out[o++] = (unsigned char)(v >> 4);
	} else if (rem == 3) {
		v = (uint32_t)b64url_value((unsigned char)in[0]) << 12 |
		    (uint32_t)b64url_value((unsigned char)in[1]) << 6 |
		    (uint32_t)b64url_value((unsigned char)in[2]);
		if (v & 0x3)
			return -1;
		out[o++] = (unsigned char)(v >> 10);
		out[o++] = (unsigned char)(v >> 2);
	}
	*outlen = o;
	return 0;
}

size_t jwt_b64url_encode_(const unsigned char *in, size_t n, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = abc[v >> 18];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = abc[v >> 18];
		out[o++] = abc[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = abc[v >> 18];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

static bool key_is(const char *key, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(key, lit, n) == 0;
}

/* What the JOSE header says. */
struct header {
	char alg[16];
	size_t alg_len;  /* may exceed the buffer: then no alg of ours */
	char kid[JWT_KID_CAP];
	size_t kid_len;  /* likewise: then no kid of ours */
	bool has_alg, has_kid;
};

/*
 * The JOSE header: an object with "alg" (exactly once, a string); "kid",
 * if present, once and a string; "typ", if present, "JWT" in any case
 * (libjwt's rule); no "crit" (RFC 7515 4.1.11: we understand no
 * extension, so we must reject). Returns 0 or JWT_E_MALFORMED.
 */
static int read_header(const unsigned char *p, size_t n, struct header *h)
{
	struct js s = {p, p + n};
	char key[8], val[16];
	size_t klen, vlen;

	memset(h, 0, sizeof *h);
	js_ws(&s);
	if (!js_take(&s, '{'))
		return JWT_E_MALFORMED;
	js_ws(&s);
	if (!js_take(&s, '}')) {
		for (;;) {
			js_ws(&s);
			if (js_string(&s, key, sizeof key, &klen))
				return JWT_E_MALFORMED;
			js_ws(&s);
			if (!js_take(&s, ':'))
				return JWT_E_MALFORMED;
			js_ws(&s);
			if (key_is(key, klen, "alg")) {
				if (h->has_alg ||
				    js_string(&s, h->alg, sizeof h->alg, &h->alg_len))
					return JWT_E_MALFORMED;
				h->has_alg = true;
			} else if (key_is(key, klen, "kid")) {
				if (h->has_kid ||
				    js_string(&s, h->kid, sizeof h->kid, &h->kid_len))
					return JWT_E_MALFORMED;
				h->has_kid = true;
			} else if (key_is(key, klen, "typ")) {
				if (js_string(&s, val, sizeof val, &vlen) || vlen != 3 ||
				    strncasecmp(val, "JWT", 3))
					return JWT_E_MALFORMED;
			} else if (key_is(key, klen, "crit")) {
				return JWT_E_MALFORMED;
			} else if (js_value(&s, 2)) {
				return JWT_E_MALFORMED;
			}
			js_ws(&s);
			if (js_take(&s, '}'))
				break;
			if (!js_take(&s, ','))
				return JWT_E_MALFORMED;
		}
	}
	js_ws(&s);
	return s.p == s.end ? 0 : JWT_E_MALFORMED;
}

/* The key the header names: by kid among the set, else the current one;
 * its alg must be the header's. Returns 0, JWT_E_KID or JWT_E_ALG. */
static int select_key(const struct jwt_keys *k, const struct header *h,
		      const struct jwt_key **out)
{
	const struct jwt_key *key = NULL;
	const char *want;

	if (!h->has_kid) {
		key = &k->set[0];
	} else {
		for (size_t i = 0; i < k->nkeys && !key; i++)
			if (h->kid_len == k->set[i].kid_len &&
			    memcmp(h->kid, k->set[i].kid, h->kid_len) == 0)
				key = &k->set[i];
		if (!key)
			return JWT_E_KID;
	}
	want = jwt_alg_pin_name(key->alg);
	if (!h->has_alg || h->alg_len != strlen(want) ||
	    memcmp(h->alg, want, h->alg_len) != 0)
		return JWT_E_ALG;
	*out = key;
	return 0;
}

/* ---- signatures ---------------------------------------------------- */

/* One EVP_MD_CTX per thread, reused: each call copies a key's template
 * into it (no key parsing, no algorithm fetch). Freed at thread exit. */
static void *md_ctx_make(void)
{
	return EVP_MD_CTX_new();
}

static void md_ctx_free(void *p)
{
	EVP_MD_CTX_free(p);
}

static struct thread_object md_ctxs = THREAD_OBJECT(md_ctx_make, md_ctx_free);

static EVP_MD_CTX *thread_ctx(const EVP_MD_CTX *tpl)
{
	EVP_MD_CTX *c = tpl ? thread_object_get(&md_ctxs) : NULL;
	return c && EVP_MD_CTX_copy_ex(c, tpl) == 1 ? c : NULL;
}

#define ES_DER_MAX 72 /* SEQUENCE of two INTEGERs of up to 33 bytes */

/* One DER INTEGER (X.690 8.3) of the 32-byte big-endian v: minimal, with
 * a 0 byte before a set high bit. Returns the bytes written. */
static size_t der_int(const unsigned char *v, unsigned char *out)
{
	size_t i = 0, n;

	while (i < 31 && v[i] == 0)
		i++;
	n = 32 - i;
	out[0] = 0x02;
	if (v[i] & 0x80) {
		out[1] = (unsigned char)(n + 1);
		out[2] = 0;
		memcpy(out + 3, v + i, n);
		return n + 3;
	}
	out[1] = (unsigned char)n;
	memcpy(out + 2, v + i, n);
	return n + 2;
}

/* RFC 7518 3.4: JWS carries R || S, OpenSSL speaks DER ECDSA-Sig-Value. */
static size_t es_raw_to_der(const unsigned char raw[64], unsigned char *der)
{
	size_t n = 2;

	n += der_int(raw, der + n);
	n += der_int(raw + 32, der + n);
	der[0] = 0x30;
	der[1] = (unsigned char)(n - 2);
	return n;
}

/* One INTEGER of DER into 32 bytes, left-padded. */
static int der_read_int(const unsigned char **p, const unsigned char *end,
			unsigned char out[32])
{
	const unsigned char *q = *p;
	size_t n;

	if (end - q < 2 || q[0] != 0x02)
		return -1;
	n = q[1];
	q += 2;
	if (n == 0 || n > (size_t)(end - q))
		return -1;
	while (n > 32 && *q == 0)
		q++, n--;
	if (n > 32)
		return -1;
	memset(out, 0, 32 - n);
	memcpy(out + 32 - n, q, n);
	*p = q + n;
	return 0;
}

static int es_der_to_raw(const unsigned char *der, size_t len,
			 unsigned char raw[64])
{
	const unsigned char *p = der + 2, *end = der + len;

	if (len < 8 || der[0] != 0x30 || der[1] != len - 2)
		return -1;
	if (der_read_int(&p, end, raw) || der_read_int(&p, end, raw + 32))
		return -1;
	return p == end ? 0 : -1;
}

/* The JWS signature of data with key: 32 (HS256), 64 (ES256, R || S) or
 * the modulus' bytes (RS256) into sig. Returns the length or JWT_E_*. */
static int sign_data(const struct jwt_key *key, const char *data, size_t n,
		     unsigned char *sig, size_t cap)
{
	unsigned char der[JWT_RSA_MAX_BITS / 8];
	size_t len = sizeof der;
	EVP_MD_CTX *ctx = thread_ctx(key->sign_tpl);

	if (!ctx)
		return key->sign_tpl ? JWT_E_NOMEM : JWT_E_NO_SIGNING_KEY;
	if (EVP_DigestSign(ctx, der, &len, (const unsigned char *)data, n) != 1)
		return JWT_E_SIGNING;
	if (key->alg == JWT_PIN_ES256) {
		if (cap < 64 || es_der_to_raw(der, len, sig))
			return JWT_E_SIGNING;
		return 64;
	}
	if (len != key->sig_len || len > cap)
		return JWT_E_SIGNING;
	memcpy(sig, der, len);
	return (int)len;
}

/* Whether sig (key->sig_len bytes, checked) signs data. */
static int verify_data(const struct jwt_key *key, const char *data, size_t n,
		       const unsigned char *sig)
{
	unsigned char mac[32], der[ES_DER_MAX];
	EVP_MD_CTX *ctx;
	size_t len = sizeof mac;

	if (key->alg == JWT_PIN_HS256) {
		ctx = thread_ctx(key->sign_tpl);
		if (!ctx)
			return JWT_E_NOMEM;
		if (EVP_DigestSign(ctx, mac, &len, (const unsigned char *)data, n) != 1 ||
		    len != sizeof mac)
			return JWT_E_SIGNATURE;
		return CRYPTO_memcmp(mac, sig, sizeof mac) == 0 ? 0 : JWT_E_SIGNATURE;
	}
	ctx = thread_ctx(key->verify_tpl);
	if (!ctx)
		return JWT_E_NOMEM;
	if (key->alg == JWT_PIN_ES256) {
		len = es_raw_to_der(sig, der);
		sig = der;
	} else {
		len = key->sig_len;
	}
	return EVP_DigestVerify(ctx, sig, len, (const unsigned char *)data, n) == 1
		       ? 0 : JWT_E_SIGNATURE;
}

/* ---- verification -------------------------------------------------- */

static bool is_b64url(unsigned char c)
{
	return b64url_value(c) >= 0;
}

#define DECODED_CAP (JWT_TOKEN_LIMIT / 4 * 3 + 3)

/* Rules 1 to 4 of jwt_verify (see jwt.h). On success the decoded claims
 * set (checked JSON syntax) is in payload[0, *plen). */
static int decode_token(const struct jwt_keys *k, const char *token,
			size_t len, unsigned char *payload, size_t *plen)
{
	unsigned char buf[DECODED_CAP];
	size_t max = k->max_token_bytes, dot[2] = {0, 0}, dots = 0, n;
	const struct jwt_key *key = NULL;
	struct header h;
	int r;

	if (max == 0 || max > JWT_TOKEN_LIMIT)
		max = JWT_TOKEN_LIMIT;
	/* Before reading a byte: the bound is what keeps a 1 MiB header
	 * from costing a 1 MiB decode. */
	if (len > max)
		return JWT_E_TOO_LONG;
	if (k->alg == JWT_PIN_NONE || k->nkeys == 0 || !token)
		return JWT_E_INVALID;

	/* header.payload.signature, base64url only (RFC 7515 7.1). */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)token[i];

		if (c == '.') {
			if (dots == 2)
				return JWT_E_MALFORMED;
			dot[dots++] = i;
		} else if (!is_b64url(c)) {
			return JWT_E_MALFORMED;
		}
	}
	if (dots != 2 || dot[0] == 0 || dot[1] == dot[0] + 1)
		return JWT_E_MALFORMED;

	if (b64url_decode(token, dot[0], buf, sizeof buf, &n))
		return JWT_E_MALFORMED;
	r = read_header(buf, n, &h);
	if (!r)
		r = select_key(k, &h, &key);
	if (r)
		return r;

	if (b64url_decode(token + dot[0] + 1, dot[1] - dot[0] - 1, payload,
			  DECODED_CAP, plen) ||
	    js_check_object(payload, *plen))
		return JWT_E_MALFORMED;

	/* An `alg: none` token with the pinned alg in its header ends here
	 * too: no signature is no valid signature. */
	if (b64url_decode(token + dot[1] + 1, len - dot[1] - 1, buf,
			  sizeof buf, &n))
		return JWT_E_MALFORMED;
	if (n != key->sig_len)
		return JWT_E_SIGNATURE;
	return verify_data(key, token, dot[1], buf);
}

int jwt_verify_signature_only(const struct jwt_keys *k, const char *token,
			      size_t len)
{
	unsigned char payload[DECODED_CAP];
	size_t n;

	return decode_token(k, token, len, payload, &n);
}

/* The claims jwt_verify reads, as the payload states them. */
struct claims_seen {
	int64_t exp, nbf, iat;
	int exp_st, nbf_st, iat_st; /* 1 a positive integer, 0 absent, -1 not */
	int iss_st, sub_st, org_st, jti_st, scope_st, client_st;
	/* strings: 1 fits, 0 absent or not a string, 2 too long, 3 empty */
	bool aud_ok;
	char iss[JWT_ISS_CAP];
	size_t iss_len;
	char scope[512];
	size_t scope_len;
};

/* A NumericDate (RFC 7519 2) as libjwt read it: a JSON integer (no
 * fraction, no exponent) that fits, > 0; anything else is -1. */
static int read_time(struct js *s, int64_t *out)
{
	const unsigned char *start = s->p;
	int64_t v = 0;

	if (s->p < s->end && *s->p == '"')
		return js_string(s, NULL, 0, NULL) ? -2 : -1;
	if (s->p < s->end && *s->p >= '1' && *s->p <= '9') {
		while (js_digit(s)) {
			int d = *s->p++ - '0';

			if (v > (INT64_MAX - d) / 10)
				v = -1; /* too large: jansson refuses it */
			if (v >= 0)
				v = v * 10 + d;
		}
		if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E')) {
			s->p = start;
			return js_value(s, 2) ? -2 : -1;
		}
		js_ws(s);
		if (v <= 0)
			return -1;
		*out = v;
		return 1;
	}
	return js_value(s, 2) ? -2 : -1;
}

/* A string claim into dst (cap bytes with the NUL): sets *st as
 * claims_seen says. */
static int read_str(struct js *s, char *dst, size_t cap, size_t *len, int *st)
{
	size_t n;

	if (s->p >= s->end || *s->p != '"') {
		*st = 0;
		return js_value(s, 2);
	}
	if (js_string(s, dst, cap, &n))
		return -1;
	js_ws(s);
	if (n >= cap) {
		*st = 2;
	} else {
		dst[n] = '\0';
		*st = n ? 1 : 3;
	}
	if (len)
		*len = n;
	return 0;
}

/* aud: our audience, or an array holding it (RFC 7519 4.1.3). */
static int read_aud(struct js *s, const char *audience, bool *ok)
{
	char v[JWT_ISS_CAP];
	size_t n, want = strlen(audience);

	*ok = false;
	if (s->p < s->end && *s->p == '"') {
		if (js_string(s, v, sizeof v, &n))
			return -1;
		*ok = n == want && memcmp(v, audience, n) == 0;
		js_ws(s);
		return 0;
	}
	if (s->p >= s->end || *s->p != '[')
		return js_value(s, 2);
	s->p++;
	js_ws(s);
	if (js_take(s, ']')) {
		js_ws(s);
		return 0;
	}
	for (;;) {
		js_ws(s);
		if (s->p < s->end && *s->p == '"') {
			if (js_string(s, v, sizeof v, &n))
				return -1;
			if (n == want && memcmp(v, audience, n) == 0)
				*ok = true;
			js_ws(s);
		} else if (js_value(s, 3)) {
			return -1;
		}
		if (js_take(s, ']'))
			break;
		if (!js_take(s, ','))
			return -1;
	}
	js_ws(s);
	return 0;
}

/* Walks the claims set once (its syntax is already checked). A claim we
 * read that appears twice makes the token malformed: jansson keeps the
 * last, another reader the first, and they must not disagree. */
static int read_claims(const struct jwt_keys *k, const unsigned char *p,
		       size_t n, struct claims_seen *cs, struct jwt_claims *out)
{
	struct js s = {p, p + n};
	uint32_t seen = 0;
	char key[24];
	size_t klen;

	js_ws(&s);
	if (!js_take(&s, '{'))
		return JWT_E_MALFORMED;
	js_ws(&s);
	if (js_take(&s, '}'))
		return 0;
	for (;;) {
		int which = -1, r = 0, t;

		js_ws(&s);
		if (js_string(&s, key, sizeof key, &klen))
			return JWT_E_MALFORMED;
		js_ws(&s);
		if (!js_take(&s, ':'))
			return JWT_E_MALFORMED;
		js_ws(&s);
		static const char *const names[] = {
			"exp", "nbf", "iat", "iss", "aud", "sub",
			"organization_id", "jti", "scope", "client_id"};
		for (int i = 0; i < 10 && which < 0; i++)
			if (klen < sizeof key && key_is(key, klen, names[i]))
				which = i;
		if (which >= 0) {
			if (seen & 1u << which)
				return JWT_E_MALFORMED;
			seen |= 1u << which;
		}
		switch (which) {
		case 0:
			t = read_time(&s, &cs->exp);
			r = t == -2;
			cs->exp_st = t < 0 ? -1 : t;
			break;
		case 1:
			t = read_time(&s, &cs->nbf);
			r = t == -2;
			cs->nbf_st = t < 0 ? -1 : t;
			break;
		case 2:
			t = read_time(&s, &cs->iat);
			r = t == -2;
			cs->iat_st = t < 0 ? -1 : t;
			break;
		case 3:
			r = read_str(&s, cs->iss, sizeof cs->iss, &cs->iss_len, &cs->iss_st);
			break;
		case 4:
			r = read_aud(&s, k->audience, &cs->aud_ok);
			break;
		case 5:
			r = read_str(&s, out->sub, sizeof out->sub, NULL, &cs->sub_st);
			break;
		case 6:
			r = read_str(&s, out->organization_id,
				     sizeof out->organization_id, NULL, &cs->org_st);
			break;
		case 7:
			r = read_str(&s, out->jti, sizeof out->jti, NULL, &cs->jti_st);
			break;
		case 8:
			r = read_str(&s, cs->scope, sizeof cs->scope, &cs->scope_len,
				     &cs->scope_st);
			break;
		case 9:
			r = read_str(&s, out->client_id, sizeof out->client_id, NULL,
				     &cs->client_st);
			break;
		default:
			r = js_value(&s, 2);
			break;
		}
		if (r)
			return JWT_E_MALFORMED;
		js_ws(&s);
		if (js_take(&s, '}'))
			return 0;
		if (!js_take(&s, ','))
			return JWT_E_MALFORMED;
	}
}

/* An id claim's status as jwt_verify's code. */
static int id_status(int st, int missing)
{
	return st == 1 ? 0 : st == 2 ? JWT_E_CLAIM_TOO_LONG : missing;
}

static int check_claims(const struct jwt_keys *k, const unsigned char *p,
			size_t n, int64_t now, struct jwt_claims *out)
{
	struct claims_seen cs;
	int r;

	memset(out, 0, sizeof *out);
	memset(&cs, 0, sizeof cs);
	r = read_claims(k, p, n, &cs, out);
	if (r)
		return r;
	/* RFC 7519 4.1.4: valid only before exp; leeway for clock skew. */
	if (cs.exp_st != 1)
		return JWT_E_EXP;
	out->exp = cs.exp;
	if (out->exp <= now - k->leeway)
		return JWT_E_EXPIRED;
	if (cs.nbf_st < 0)
		return JWT_E_NBF;
	out->nbf = cs.nbf_st == 1 ? cs.nbf : 0;
	if (cs.nbf_st == 1 && out->nbf > now + k->leeway)
		return JWT_E_NOT_YET_VALID;
	if (cs.iat_st != 1)
		return JWT_E_IAT;
	out->iat = cs.iat;
	if (out->iat > now + k->leeway)
		return JWT_E_IAT_FUTURE;

	if ((cs.iss_st != 1 && cs.iss_st != 3) || strcmp(cs.iss, k->issuer) != 0)
		return JWT_E_ISSUER;
	if (!cs.aud_ok)
		return JWT_E_AUDIENCE;

	r = id_status(cs.sub_st, JWT_E_SUB);
	if (!r)
		r = id_status(cs.org_st, JWT_E_ORG);
	if (!r)
		r = id_status(cs.jti_st, JWT_E_JTI);
	if (r)
		return r;
	if (cs.scope_st == 0)
		return JWT_E_SCOPE;
	if (cs.scope_st == 2)
		return JWT_E_CLAIM_TOO_LONG;
	out->scopes = jwt_scope_parse(cs.scope, cs.scope_len);
	/* Optional: absent or empty is no client. */
	if (cs.client_st == 2)
		return JWT_E_CLAIM_TOO_LONG;
	if (cs.client_st != 1)
		out->client_id[0] = '\0'; /* a number, say, is no client */
	return 0;
}

int jwt_verify(const struct jwt_keys *k, const char *token, size_t len,
	       int64_t now, struct jwt_claims *out)
{
	unsigned char payload[DECODED_CAP];
	size_t n;
	int r = decode_token(k, token, len, payload, &n);

	if (r)
		return r;
	return check_claims(k, payload, n, now, out);
}

/* ---- signing ------------------------------------------------------- */

int jwt_new_jti(char out[JWT_ID_CAP])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	size_t got = 0;

	while (got < sizeof r) {
		ssize_t n = getrandom(r + got, sizeof r - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return JWT_E_RANDOM;
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof r; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 0xf];
	}
	out[2 * sizeof r] = '\0';
	return 0;
}

static bool id_ok(const char *s, bool may_be_empty)
{
	size_t n = strnlen(s, JWT_ID_CAP);

	return n < JWT_ID_CAP && (may_be_empty || n > 0);
}

#define B64_LEN(n) (((n) + 2) / 3 * 4)

int jwt_sign(const struct jwt_keys *k, const struct jwt_claims *c, char *out,
	     size_t cap)
{
	/* Claims: iss and aud (255 bytes each, never escaped), four ids of
	 * up to 63 bytes that may each escape to 6 bytes a byte, the scope. */
	char jti[JWT_ID_CAP], scope[64], hdr[128], body[2048];
	unsigned char sig[JWT_RSA_MAX_BITS / 8];
	const struct jwt_key *key = &k->set[0];
	struct json_writer w;
	size_t hn, bn, n;
	int r;

	if (!k->sign_key || k->nkeys == 0 || !key->sign_tpl)
		return JWT_E_NO_SIGNING_KEY;
	if (!id_ok(c->sub, false) || !id_ok(c->organization_id, false) ||
	    !id_ok(c->jti, true) || !id_ok(c->client_id, true) || c->iat <= 0 ||
	    c->exp <= c->iat)
		return JWT_E_INVALID;
	if (c->jti[0])
		memcpy(jti, c->jti, strlen(c->jti) + 1);
	else if (jwt_new_jti(jti))
		return JWT_E_RANDOM;
	if (jwt_scope_format(c->scopes, scope, sizeof scope) < 0)
		return JWT_E_INVALID;

	jsonw_init(&w, hdr, sizeof hdr);
	jsonw_start_object(&w);
	jsonw_key(&w, "alg");
	jsonw_cstring(&w, jwt_alg_pin_name(key->alg));
	jsonw_key(&w, "typ");
	jsonw_cstring(&w, "JWT");
	jsonw_key(&w, "kid");
	jsonw_string(&w, key->kid, key->kid_len);
	jsonw_end_object(&w);
	hn = jsonw_done(&w);

	jsonw_init(&w, body, sizeof body);
	jsonw_start_object(&w);
	jsonw_key(&w, "iss");
	jsonw_cstring(&w, k->issuer);
	jsonw_key(&w, "aud");
	jsonw_cstring(&w, k->audience);
	jsonw_key(&w, "sub");
	jsonw_cstring(&w, c->sub);
	if (c->client_id[0]) {
		jsonw_key(&w, "client_id");
		jsonw_cstring(&w, c->client_id);
	}
	jsonw_key(&w, "organization_id");
	jsonw_cstring(&w, c->organization_id);
	jsonw_key(&w, "scope");
	jsonw_cstring(&w, scope);
	jsonw_key(&w, "jti");
	jsonw_cstring(&w, jti);
	jsonw_key(&w, "iat");
	jsonw_i64(&w, c->iat);
	jsonw_key(&w, "exp");
	jsonw_i64(&w, c->exp);
	jsonw_end_object(&w);
	bn = jsonw_done(&w);
	if (!hn || !bn)
		return JWT_E_INVALID;

	/* At most 8 KiB with an 8192-bit RSA signature: the int return fits. */
	if (B64_LEN(hn) + 1 + B64_LEN(bn) + 1 + B64_LEN(key->sig_len) + 1 > cap)
		return JWT_E_BUFFER;
	n = jwt_b64url_encode_((const unsigned char *)hdr, hn, out);
	out[n++] = '.';
	n += jwt_b64url_encode_((const unsigned char *)body, bn, out + n);
	r = sign_data(key, out, n, sig, sizeof sig);
	if (r < 0)
		return r;
	out[n++] = '.';
	n += jwt_b64url_encode_(sig, (size_t)r, out + n);
	return (int)n;
}
