/*
 * JSON syntax (RFC 8259) for the token's header and claims: no DOM, the
 * caller reads the members it wants and skips the rest (json_syntax.h).
 */
#include "json_syntax.h"

#include <stdint.h>
#include <string.h>

#define JSON_MAX_DEPTH 32

void js_ws(struct js *s)
{
	while (s->p < s->end &&
	       (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

bool js_take(struct js *s, unsigned char c)
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
int js_string(struct js *s, char *out, size_t cap, size_t *len)
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

bool js_digit(struct js *s)
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

int js_value(struct js *s, int depth);

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
int js_value(struct js *s, int depth)
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
int js_check_object(const unsigned char *p, size_t n)
{
	struct js s = {p, p + n};

	js_ws(&s);
	if (s.p >= s.end || *s.p != '{' || js_value(&s, 1))
		return -1;
	return s.p == s.end ? 0 : -1;
}
