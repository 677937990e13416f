/*
 * Agent tokens over libjwt 1.10.2 (see include/ringside/jwt.h for the
 * contract and DESIGN.md "JWT" for why we check what libjwt does not).
 *
 * jwt_verify runs our own checks before libjwt sees the token: the length,
 * the base64url alphabet, a strict decode of the header and the payload,
 * a syntax check of both as JSON and the header's alg. So a token that
 * names another algorithm never reaches libjwt's cryptography (libjwt
 * would HMAC with an ES256 public key if the token said HS256), and a
 * failure inside jwt_decode can only be the signature.
 *
 * Loading and checking the key files is jwt_keys.c.
 */
#include "ringside/jwt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <jwt.h>

/* libjwt reads and writes integer claims as long: NumericDates past 2038
 * need it to be 64 bits. */
_Static_assert(sizeof(long) == 8, "64-bit long required for NumericDate");

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

static jwt_alg_t libjwt_alg(enum jwt_alg_pin alg)
{
	switch (alg) {
	case JWT_PIN_HS256:
		return JWT_ALG_HS256;
	case JWT_PIN_ES256:
		return JWT_ALG_ES256;
	case JWT_PIN_RS256:
		return JWT_ALG_RS256;
	case JWT_PIN_NONE:
		break;
	}
	return JWT_ALG_INVAL;
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

/* ---- JSON syntax (RFC 8259), no DOM -------------------------------- */

/*
 * Checks what jansson will accept, so a failure of jwt_decode is known to
 * be the signature, and reads the header's alg and typ itself. Strings are
 * decoded (escapes, surrogate pairs) and their UTF-8 validated as jansson
 * does; \u0000 is rejected as jansson does. Nesting is bounded: a token is
 * at most JWT_TOKEN_LIMIT bytes, but 4000 '[' would still be deep.
 */
#define JSON_MAX_DEPTH 32

struct js {
	const unsigned char *p, *end;
};

static void js_ws(struct js *s)
{
	while (s->p < s->end &&
	       (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool js_take(struct js *s, unsigned char c)
{
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	return false;
}

static int js_hex4(struct js *s, uint32_t *cp)
{
	uint32_t v = 0;

	if (s->end - s->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = *s->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*cp = v;
	return 0;
}

static void js_put(char *out, size_t cap, size_t *n, unsigned char b)
{
	if (out && *n < cap)
		out[*n] = (char)b;
	(*n)++;
}

static void js_put_utf8(char *out, size_t cap, size_t *n, uint32_t cp)
{
	if (cp < 0x80) {
		js_put(out, cap, n, (unsigned char)cp);
	} else if (cp < 0x800) {
		js_put(out, cap, n, (unsigned char)(0xc0 | cp >> 6));
		js_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		js_put(out, cap, n, (unsigned char)(0xe0 | cp >> 12));
		js_put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
		js_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
	} else {
		js_put(out, cap, n, (unsigned char)(0xf0 | cp >> 18));
		js_put(out, cap, n, (unsigned char)(0x80 | (cp >> 12 & 0x3f)));
		js_put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
		js_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
	}
}

/* One UTF-8 sequence of 2 to 4 bytes starting at s->p[-1] == c: no
 * overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629 4). */
static int js_utf8(struct js *s, unsigned char c, char *out, size_t cap,
		   size_t *n)
{
	uint32_t cp, min;
	int more;

	if (c >= 0xc2 && c <= 0xdf) {
		cp = c & 0x1f, more = 1, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		cp = c & 0x0f, more = 2, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		cp = c & 0x07, more = 3, min = 0x10000;
	} else {
		return -1;
	}
	if (s->end - s->p < more)
		return -1;
	for (int i = 0; i < more; i++) {
		unsigned char d = *s->p++;

		if ((d & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (d & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	js_put_utf8(out, cap, n, cp);
	return 0;
}

/* A string at s->p. Its decoded bytes go to out (when not NULL) up to cap;
 * *len gets the whole decoded length, which may exceed cap. */
static int js_string(struct js *s, char *out, size_t cap, size_t *len)
{
	size_t n = 0;

	if (!js_take(s, '"'))
		return -1;
	for (;;) {
		unsigned char c;
		uint32_t cp, lo;

		if (s->p >= s->end)
			return -1;
		c = *s->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			if (js_utf8(s, c, out, cap, &n))
				return -1;
			continue;
		}
		if (c != '\\') {
			js_put(out, cap, &n, c);
			continue;
		}
		if (s->p >= s->end)
			return -1;
		switch (c = *s->p++) {
		case '"':
		case '\\':
		case '/':
			cp = c;
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			if (js_hex4(s, &cp))
				return -1;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return -1; /* a lone low surrogate */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (!js_take(s, '\\') || !js_take(s, 'u') ||
				    js_hex4(s, &lo) || lo < 0xdc00 || lo > 0xdfff)
					return -1;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				return -1; /* jansson rejects NUL in strings */
			break;
		default:
			return -1;
		}
		js_put_utf8(out, cap, &n, cp);
	}
	if (len)
		*len = n;
	return 0;
}

static bool js_digit(struct js *s)
{
	return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static int js_number(struct js *s)
{
	js_take(s, '-');
	if (js_take(s, '0')) {
		/* no leading zeros */
	} else if (js_digit(s)) {
		while (js_digit(s))
			s->p++;
	} else {
		return -1;
	}
	if (js_take(s, '.')) {
		if (!js_digit(s))
			return -1;
		while (js_digit(s))
			s->p++;
	}
	if (js_take(s, 'e') || js_take(s, 'E')) {
		if (!js_take(s, '+'))
			js_take(s, '-');
		if (!js_digit(s))
			return -1;
		while (js_digit(s))
			s->p++;
	}
	return 0;
}

static int js_literal(struct js *s, const char *lit, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

static int js_value(struct js *s, int depth);

static int js_object(struct js *s, int depth)
{
	if (!js_take(s, '{') || depth > JSON_MAX_DEPTH)
		return -1;
	js_ws(s);
	if (js_take(s, '}'))
		return 0;
	for (;;) {
		js_ws(s);
		if (js_string(s, NULL, 0, NULL))
			return -1;
		js_ws(s);
		if (!js_take(s, ':') || js_value(s, depth + 1))
			return -1;
		js_ws(s);
		if (js_take(s, '}'))
			return 0;
		if (!js_take(s, ','))
			return -1;
	}
}

static int js_array(struct js *s, int depth)
{
	if (!js_take(s, '[') || depth > JSON_MAX_DEPTH)
		return -1;
	js_ws(s);
	if (js_take(s, ']'))
		return 0;
	for (;;) {
		if (js_value(s, depth + 1))
			return -1;
		js_ws(s);
		if (js_take(s, ']'))
			return 0;
		if (!js_take(s, ','))
			return -1;
	}
}

/* A value with whitespace around it. */
static int js_value(struct js *s, int depth)
{
	int r;

	js_ws(s);
	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '{':
		r = js_object(s, depth);
		break;
	case '[':
		r = js_array(s, depth);
		break;
	case '"':
		r = js_string(s, NULL, 0, NULL);
		break;
	case 't':
		r = js_literal(s, "true", 4);
		break;
	case 'f':
		r = js_literal(s, "false", 5);
		break;
	case 'n':
		r = js_literal(s, "null", 4);
		break;
	default:
		r = js_number(s);
		break;
	}
	js_ws(s);
	return r;
}

/* The claims set: one JSON object and nothing after it (RFC 7519 7.2). */
static int js_check_object(const unsigned char *p, size_t n)
{
	struct js s = {p, p + n};

	js_ws(&s);
	if (s.p >= s.end || *s.p != '{' || js_value(&s, 1))
		return -1;
	return s.p == s.end ? 0 : -1;
}

static bool key_is(const char *key, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(key, lit, n) == 0;
}

/*
 * The JOSE header: an object whose "alg" (exactly once, a string) must be
 * `want`; "typ", if present, "JWT" in any case (libjwt's rule); no "crit"
 * (RFC 7515 4.1.11: we understand no extension, so we must reject).
 * Returns 0, JWT_E_ALG or JWT_E_MALFORMED.
 */
static int check_header(const unsigned char *p, size_t n, const char *want)
{
	struct js s = {p, p + n};
	char key[8], val[16];
	size_t klen, vlen;
	int algs = 0;
	bool alg_ok = false;

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
			if (klen <= sizeof key &&
			    (key_is(key, klen, "alg") || key_is(key, klen, "typ"))) {
				bool alg = key[0] == 'a';

				if (js_string(&s, val, sizeof val, &vlen))
					return JWT_E_MALFORMED;
				if (alg) {
					algs++;
					alg_ok = vlen == strlen(want) &&
						 memcmp(val, want, vlen) == 0;
				} else if (vlen != 3 || strncasecmp(val, "JWT", 3)) {
					return JWT_E_MALFORMED;
				}
				js_ws(&s);
			} else if (klen == 4 && key_is(key, klen, "crit")) {
				return JWT_E_MALFORMED;
			} else if (js_value(&s, 2)) {
				return JWT_E_MALFORMED;
			}
			if (js_take(&s, '}'))
				break;
			if (!js_take(&s, ','))
				return JWT_E_MALFORMED;
		}
	}
	js_ws(&s);
	if (s.p != s.end || algs > 1)
		return JWT_E_MALFORMED;
	return alg_ok ? 0 : JWT_E_ALG;
}

/* Whether the JSON array text (as jansson dumps it) holds the string aud. */
static bool array_has_string(const char *text, const char *aud)
{
	struct js s = {(const unsigned char *)text,
		       (const unsigned char *)text + strlen(text)};
	size_t want = strlen(aud);

	js_ws(&s);
	if (!js_take(&s, '['))
		return false;
	js_ws(&s);
	if (js_take(&s, ']'))
		return false;
	for (;;) {
		js_ws(&s);
		if (s.p < s.end && *s.p == '"') {
			char v[JWT_ISS_CAP];
			size_t n;

			if (js_string(&s, v, sizeof v, &n))
				return false;
			if (n == want && memcmp(v, aud, n) == 0)
				return true;
			js_ws(&s);
		} else if (js_value(&s, 2)) {
			return false;
		}
		if (js_take(&s, ']'))
			return false;
		if (!js_take(&s, ','))
			return false;
	}
}

/* ---- verification -------------------------------------------------- */

static bool is_b64url(unsigned char c)
{
	return b64url_value(c) >= 0;
}

/* Rules 1 to 4 of jwt_verify (see jwt.h). On success *out holds the
 * decoded token, to be freed with jwt_free. */
static int decode_token(const struct jwt_keys *k, const char *token,
			size_t len, jwt_t **out)
{
	/* The token must be NUL-terminated for libjwt; the decoded header
	 * and payload are checked one after the other in buf. */
	char tok[JWT_TOKEN_LIMIT + 1];
	unsigned char buf[JWT_TOKEN_LIMIT / 4 * 3 + 3];
	size_t max = k->max_token_bytes, dot[2] = {0, 0}, dots = 0, n;
	const char *pin = jwt_alg_pin_name(k->alg);
	jwt_t *j = NULL;
	int r;

	*out = NULL;
	if (max == 0 || max > JWT_TOKEN_LIMIT)
		max = JWT_TOKEN_LIMIT;
	/* Before reading a byte: the bound is what keeps a 1 MiB header
	 * from costing a 1 MiB decode. */
	if (len > max)
		return JWT_E_TOO_LONG;
	if (k->alg == JWT_PIN_NONE || !k->verify_key || !token)
		return JWT_E_INVALID;

	/* header.payload.signature, base64url only (RFC 7515 7.1): this also
	 * rules out the NULs, spaces and '=' that libjwt's decoder skips or
	 * stops at. */
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
	r = check_header(buf, n, pin);
	if (r)
		return r;

	if (b64url_decode(token + dot[0] + 1, dot[1] - dot[0] - 1, buf,
			  sizeof buf, &n) ||
	    js_check_object(buf, n))
		return JWT_E_MALFORMED;

	/* An `alg: none` token with the pinned alg in its header ends here
	 * too: no signature is no valid signature. */
	if (b64url_decode(token + dot[1] + 1, len - dot[1] - 1, buf,
			  sizeof buf, &n))
		return JWT_E_MALFORMED;
	if (n != k->sig_len)
		return JWT_E_SIGNATURE;

	memcpy(tok, token, len);
	tok[len] = '\0';
	/* Never without the key: with none, libjwt checks no signature. */
	r = jwt_decode(&j, tok, k->verify_key, (int)k->verify_key_len);
	if (r)
		return r == ENOMEM ? JWT_E_NOMEM : JWT_E_SIGNATURE;
	/* Checked above from the header; again from libjwt, so no parser
	 * difference between us and jansson can let another alg through. */
	if (jwt_get_alg(j) != libjwt_alg(k->alg)) {
		jwt_free(j);
		return JWT_E_ALG;
	}
	*out = j;
	return 0;
}

int jwt_verify_signature_only(const struct jwt_keys *k, const char *token,
			      size_t len)
{
	jwt_t *j;
	int r = decode_token(k, token, len, &j);

	jwt_free(j);
	return r;
}

/* A NumericDate claim (RFC 7519 2): 1 if present and a positive integer,
 * 0 if absent, -1 otherwise. jansson reads a non-integer (string, real,
 * bool, null) as 0, so "> 0" is also the type check. */
static int get_time(jwt_t *j, const char *name, int64_t *out)
{
	long v;

	errno = 0;
	v = jwt_get_grant_int(j, name);
	if (errno == ENOENT) {
		*out = 0;
		return 0;
	}
	if (v <= 0)
		return -1;
	*out = v;
	return 1;
}

static int copy_claim(jwt_t *j, const char *name, char *dst, size_t cap,
		      int missing)
{
	const char *v = jwt_get_grant(j, name); /* NULL unless a string */
	size_t n;

	if (!v || !*v)
		return missing;
	n = strnlen(v, cap);
	if (n == cap)
		return JWT_E_CLAIM_TOO_LONG;
	memcpy(dst, v, n + 1);
	return 0;
}

static int check_audience(jwt_t *j, const char *audience)
{
	const char *aud = jwt_get_grant(j, "aud");
	char *arr;
	bool ok;

	if (aud)
		return strcmp(aud, audience) == 0 ? 0 : JWT_E_AUDIENCE;
	/* RFC 7519 4.1.3: an array of strings, one of which must be ours. */
	arr = jwt_get_grants_json(j, "aud");
	if (!arr)
		return JWT_E_AUDIENCE;
	ok = array_has_string(arr, audience);
	free(arr);
	return ok ? 0 : JWT_E_AUDIENCE;
}

static int check_claims(const struct jwt_keys *k, jwt_t *j, int64_t now,
			struct jwt_claims *out)
{
	const char *s;
	int r;

	memset(out, 0, sizeof *out);
	/* RFC 7519 4.1.4: valid only before exp; leeway for clock skew. */
	if (get_time(j, "exp", &out->exp) != 1)
		return JWT_E_EXP;
	if (out->exp <= now - k->leeway)
		return JWT_E_EXPIRED;
	r = get_time(j, "nbf", &out->nbf);
	if (r < 0)
		return JWT_E_NBF;
	if (r == 1 && out->nbf > now + k->leeway)
		return JWT_E_NOT_YET_VALID;
	if (get_time(j, "iat", &out->iat) != 1)
		return JWT_E_IAT;
	if (out->iat > now + k->leeway)
		return JWT_E_IAT_FUTURE;

	s = jwt_get_grant(j, "iss");
	if (!s || strcmp(s, k->issuer) != 0)
		return JWT_E_ISSUER;
	r = check_audience(j, k->audience);
	if (r)
		return r;

	r = copy_claim(j, "sub", out->sub, sizeof out->sub, JWT_E_SUB);
	if (!r)
		r = copy_claim(j, "organization_id", out->organization_id,
			       sizeof out->organization_id, JWT_E_ORG);
	if (!r)
		r = copy_claim(j, "jti", out->jti, sizeof out->jti, JWT_E_JTI);
	if (r)
		return r;
	s = jwt_get_grant(j, "scope");
	if (!s)
		return JWT_E_SCOPE;
	out->scopes = jwt_scope_parse(s, strlen(s));
	return 0;
}

int jwt_verify(const struct jwt_keys *k, const char *token, size_t len,
	       int64_t now, struct jwt_claims *out)
{
	jwt_t *j;
	int r = decode_token(k, token, len, &j);

	if (r)
		return r;
	r = check_claims(k, j, now, out);
	jwt_free(j);
	return r;
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

int jwt_sign(const struct jwt_keys *k, const struct jwt_claims *c, char *out,
	     size_t cap)
{
	char jti[JWT_ID_CAP], scope[64];
	jwt_t *j = NULL;
	char *tok = NULL;
	size_t n;
	int r;

	if (!k->sign_key)
		return JWT_E_NO_SIGNING_KEY;
	if (!id_ok(c->sub, false) || !id_ok(c->organization_id, false) ||
	    !id_ok(c->jti, true) || c->iat <= 0 || c->exp <= c->iat)
		return JWT_E_INVALID;
	if (c->jti[0])
		memcpy(jti, c->jti, strlen(c->jti) + 1);
	else if (jwt_new_jti(jti))
		return JWT_E_RANDOM;
	if (jwt_scope_format(c->scopes, scope, sizeof scope) < 0)
		return JWT_E_INVALID;

	if (jwt_new(&j))
		return JWT_E_NOMEM;
	r = JWT_E_NOMEM;
	if (jwt_add_grant(j, "iss", k->issuer) ||
	    jwt_add_grant(j, "aud", k->audience) ||
	    jwt_add_grant(j, "sub", c->sub) ||
	    jwt_add_grant(j, "organization_id", c->organization_id) ||
	    jwt_add_grant(j, "scope", scope) ||
	    jwt_add_grant(j, "jti", jti) ||
	    jwt_add_grant_int(j, "iat", (long)c->iat) ||
	    jwt_add_grant_int(j, "exp", (long)c->exp))
		goto done;
	r = JWT_E_SIGNING;
	if (jwt_set_alg(j, libjwt_alg(k->alg), k->sign_key,
			(int)k->sign_key_len))
		goto done;
	errno = 0;
	tok = jwt_encode_str(j); /* header {"alg":…,"typ":"JWT"} */
	if (!tok) {
		r = errno == ENOMEM ? JWT_E_NOMEM : JWT_E_SIGNING;
		goto done;
	}
	n = strlen(tok);
	if (n + 1 > cap) {
		r = JWT_E_BUFFER;
		goto done;
	}
	memcpy(out, tok, n + 1);
	r = (int)n;
done:
	free(tok);
	jwt_free(j);
	return r;
}
