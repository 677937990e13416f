/* Form bodies (include/ringside/http_form.h). */
#include "ringside/http_form.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "urlencoded_int.h"

/* Whether every '%' in s[0, n) starts a %XX escape. */
static bool form_escapes_ok(const char *s, size_t n)
{
	for (const char *p = memchr(s, '%', n); p; p = memchr(p, '%', (size_t)(s + n - p))) {
		size_t left = (size_t)(s + n - p);
		if (left < 3 || urlenc_hex((unsigned char)p[1]) < 0 ||
		    urlenc_hex((unsigned char)p[2]) < 0)
			return false;
		p += 3;
		if (p == s + n)
			break;
	}
	return true;
}

/*
 * Decodes s[0, n), whose escapes form_escapes_ok passed, into out (cap
 * bytes, cap > 0), NUL-terminated. Returns the length, or -1 if it does
 * not fit with its NUL (out then holds a terminated prefix).
 */
static long form_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			c = (char)(urlenc_hex((unsigned char)s[i + 1]) << 4 |
				   urlenc_hex((unsigned char)s[i + 2]));
			i += 2;
		}
		if (o + 1 >= cap) {
			out[o] = '\0';
			return -1;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return (long)o;
}

static void form_reset(struct http_form_field *fields, size_t count)
{
	for (size_t k = 0; k < count; k++) {
		fields[k].value[0] = '\0';
		fields[k].len = 0;
		fields[k].present = false;
	}
}

/* The table index of the decoded name, or -1. */
static int form_lookup(const struct http_form_field *fields, size_t count, const char *name,
		       size_t len)
{
	for (size_t k = 0; k < count; k++)
		if (strlen(fields[k].name) == len && memcmp(fields[k].name, name, len) == 0)
			return (int)k;
	return -1;
}

static int form_fail(struct http_form_field *fields, size_t count, int *field, int status,
		     int idx)
{
	form_reset(fields, count);
	if (field)
		*field = idx;
	return status;
}

int http_form_parse(const char *body, size_t len, struct http_form_field *fields,
		    size_t count, int *field)
{
	assert(count <= HTTP_FORM_FIELDS_MAX);
	for (size_t k = 0; k < count; k++) {
		assert(fields[k].value && fields[k].cap > 0);
		assert(fields[k].name[0] && strlen(fields[k].name) <= HTTP_FORM_NAME_MAX);
	}
	form_reset(fields, count);
	if (field)
		*field = -1;

	if (len == 0) /* body may be NULL */
		return HTTP_FORM_OK;
	uint64_t seen = 0; /* included once already, empty or not (RFC 6749 3.1) */
	size_t i = 0;
	while (i < len) {
		if (body[i] == '&') { /* empty pairs are skipped */
			i++;
			continue;
		}
		const char *pair = body + i;
		const char *amp = memchr(pair, '&', len - i);
		size_t pair_len = amp ? (size_t)(amp - pair) : len - i;
		i += pair_len;
		const char *eq = memchr(pair, '=', pair_len);
		size_t name_len = eq ? (size_t)(eq - pair) : pair_len;
		const char *value = eq ? eq + 1 : pair + pair_len;
		size_t value_len = pair_len - name_len - (eq != NULL);

		if (!form_escapes_ok(pair, name_len))
			return form_fail(fields, count, field, HTTP_FORM_BAD_ESCAPE, -1);
		/* A name too long for the buffer is longer than every known one. */
		char name[HTTP_FORM_NAME_MAX + 1];
		long n = form_decode(pair, name_len, name, sizeof name);
		int idx = n < 0 ? -1 : form_lookup(fields, count, name, (size_t)n);
		if (!form_escapes_ok(value, value_len))
			return form_fail(fields, count, field, HTTP_FORM_BAD_ESCAPE, idx);
		if (idx < 0)
			continue; /* RFC 6749 3.2: unrecognized parameters are ignored */
		if (seen >> idx & 1)
			return form_fail(fields, count, field, HTTP_FORM_REPEATED, idx);
		seen |= UINT64_C(1) << idx;

		struct http_form_field *f = &fields[idx];
		long v = form_decode(value, value_len, f->value, f->cap);
		if (v < 0)
			return form_fail(fields, count, field, HTTP_FORM_TOO_LONG, idx);
		if (memchr(f->value, '\0', (size_t)v))
			return form_fail(fields, count, field, HTTP_FORM_NUL, idx);
		if (!utf8_valid((const unsigned char *)f->value, (size_t)v))
			return form_fail(fields, count, field, HTTP_FORM_BAD_UTF8, idx);
		f->len = (size_t)v;
		f->present = v > 0; /* RFC 6749 3.2: without a value, omitted */
	}
	return HTTP_FORM_OK;
}

const char *http_form_strerror(int status)
{
	switch (status) {
	case HTTP_FORM_OK:
		return "";
#define HTTP_FORM_CASE(name, value, message)                                           \
	case HTTP_FORM_##name:                                                         \
		return message;
		HTTP_FORM_ERRORS(HTTP_FORM_CASE)
#undef HTTP_FORM_CASE
	}
	return "is malformed";
}

/* RFC 9110 5.6.2: tchar. */
static bool form_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t form_token(const char *v, size_t len, size_t i)
{
	while (i < len && form_tchar((unsigned char)v[i]))
		i++;
	return i;
}

bool http_form_content_type_ok(const char *v, size_t len)
{
	static const char type[] = "application/x-www-form-urlencoded";
	size_t i = sizeof type - 1;
	if (len < i || strncasecmp(v, type, i) != 0)
		return false;
	/* RFC 9110 5.6.6: parameters = *( OWS ";" OWS [ parameter ] ) */
	for (;;) {
		while (i < len && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == len)
			return true;
		if (v[i++] != ';')
			return false;
		while (i < len && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == len || v[i] == ';')
			continue;
		size_t name = i;
		i = form_token(v, len, i);
		size_t name_len = i - name;
		if (name_len == 0 || i == len || v[i++] != '=')
			return false;
		size_t val = i, val_len;
		if (i < len && v[i] == '"') {
			/* quoted-string: qdtext, or '\' and one of HTAB, SP, VCHAR, obs-text */
			bool escaped = false;
			val = ++i;
			for (;;) {
				if (i == len)
					return false;
				unsigned char c = (unsigned char)v[i];
				if (c == '\\') {
					escaped = true;
					if (++i == len)
						return false;
					c = (unsigned char)v[i];
					if (c != '\t' && (c < 0x20 || c == 0x7F))
						return false;
				} else if (c == '"') {
					break;
				} else if (c != '\t' && (c < 0x20 || c == 0x7F)) {
					return false;
				}
				i++;
			}
			val_len = i - val;
			i++; /* the closing quote */
			if (escaped)
				val_len = SIZE_MAX; /* no charset name needs one */
		} else {
			i = form_token(v, len, i);
			val_len = i - val;
			if (val_len == 0)
				return false;
		}
		if (name_len == 7 && strncasecmp(v + name, "charset", 7) == 0 &&
		    (val_len != 5 || strncasecmp(v + val, "utf-8", 5) != 0))
			return false;
	}
}
