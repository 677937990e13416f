/* Basic credentials (include/ringside/http_basic_auth.h). */
#include "ringside/http_basic_auth.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "urlencoded_int.h"

/* RFC 4648 table 1: 0-63, or -1 outside the alphabet ('=' included). */
static int basic_b64(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* One part being form-urlencoded-decoded as its bytes come out of the
 * base64; an escape may straddle two base64 groups. */
struct basic_sink {
	char *out;
	size_t cap, len;
	int esc; /* 0, or 1 after '%', or 2 after '%' and one hex digit */
	int hi;
};

static int basic_put(struct basic_sink *s, unsigned char c)
{
	if (s->esc) {
		int h = urlenc_hex(c);
		if (h < 0)
			return HTTP_BASIC_BAD_ESCAPE;
		if (s->esc++ == 1) {
			s->hi = h;
			return 0;
		}
		s->esc = 0;
		c = (unsigned char)(s->hi << 4 | h);
	} else if (c == '%') {
		s->esc = 1;
		return 0;
	} else if (c == '+') {
		c = ' ';
	}
	if (s->len + 1 >= s->cap)
		return HTTP_BASIC_TOO_LONG;
	s->out[s->len++] = (char)c;
	return 0;
}

/* RFC 7617 2 and RFC 6749 A.1: no control character; RFC 3629 UTF-8. */
static bool basic_text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
			return false;
	return utf8_valid((const unsigned char *)s, n);
}

/* RFC 4648 4 with padding and zero pad bits (3.5): whether tok[0, n) is
 * the one canonical encoding of something; *pad gets the '=' count. */
static bool basic_b64_ok(const char *tok, size_t n, size_t *pad)
{
	if (n == 0 || n % 4 != 0)
		return false;
	size_t p = tok[n - 1] == '=' ? (tok[n - 2] == '=' ? 2 : 1) : 0;
	for (size_t k = 0; k < n - p; k++)
		if (basic_b64((unsigned char)tok[k]) < 0)
			return false;
	if (p == 2 && (basic_b64((unsigned char)tok[n - 3]) & 0x0F))
		return false;
	if (p == 1 && (basic_b64((unsigned char)tok[n - 2]) & 0x03))
		return false;
	*pad = p;
	return true;
}

static int basic_decode(const char *tok, size_t n, size_t pad, struct http_basic_credentials *c)
{
	struct basic_sink id = {.out = c->id, .cap = c->id_cap};
	struct basic_sink secret = {.out = c->secret, .cap = c->secret_cap};
	bool colon = false;
	for (size_t q = 0; q < n; q += 4) {
		unsigned long group = 0;
		for (size_t k = 0; k < 4; k++) {
			int d = tok[q + k] == '=' ? 0 : basic_b64((unsigned char)tok[q + k]);
			group = group << 6 | (unsigned long)d;
		}
		size_t bytes = q + 4 == n ? 3 - pad : 3;
		for (size_t k = 0; k < bytes; k++) {
			unsigned char b = (unsigned char)(group >> (16 - 8 * k));
			int r;
			if (colon) {
				r = basic_put(&secret, b);
			} else if (b == ':') { /* RFC 7617: the first ':' ends the user-id */
				colon = true;
				r = id.esc ? HTTP_BASIC_BAD_ESCAPE : 0;
			} else {
				r = basic_put(&id, b);
			}
			if (r)
				return r;
		}
	}
	if (!colon)
		return HTTP_BASIC_NO_COLON;
	if (secret.esc)
		return HTTP_BASIC_BAD_ESCAPE;
	c->id[id.len] = '\0';
	c->secret[secret.len] = '\0';
	if (!basic_text_ok(c->id, id.len) || !basic_text_ok(c->secret, secret.len))
		return HTTP_BASIC_BAD_CHAR;
	c->id_len = id.len;
	c->secret_len = secret.len;
	return HTTP_BASIC_OK;
}

static int basic_parse(const char *v, size_t len, struct http_basic_credentials *c)
{
	if (len == 0) /* no Authorization field (v may be NULL) */
		return HTTP_BASIC_NOT_BASIC;
	/* RFC 9110 11.1: the scheme is case-insensitive. */
	const char *sp = memchr(v, ' ', len);
	size_t scheme_len = sp ? (size_t)(sp - v) : len;
	if (scheme_len != 5 || strncasecmp(v, "Basic", 5) != 0)
		return HTTP_BASIC_NOT_BASIC;
	size_t i = 5;
	while (i < len && v[i] == ' ')
		i++;
	size_t pad;
	if (!basic_b64_ok(v + i, len - i, &pad))
		return HTTP_BASIC_MALFORMED;
	return basic_decode(v + i, len - i, pad, c);
}

int http_basic_parse(const char *v, size_t len, struct http_basic_credentials *c)
{
	assert(c->id && c->id_cap > 0 && c->secret && c->secret_cap > 0);
	int r = basic_parse(v, len, c);
	if (r != HTTP_BASIC_OK) {
		c->id[0] = c->secret[0] = '\0';
		c->id_len = c->secret_len = 0;
	}
	return r;
}

const char *http_basic_strerror(int status)
{
	switch (status) {
	case HTTP_BASIC_OK:
		return "";
#define HTTP_BASIC_CASE(name, value, message)                                          \
	case HTTP_BASIC_##name:                                                        \
		return message;
		HTTP_BASIC_ERRORS(HTTP_BASIC_CASE)
#undef HTTP_BASIC_CASE
	}
	return "The Basic credentials are malformed.";
}
