/*
 * Loose member lookup and a strict syntax check of JSON: see json.h.
 */
#include "json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* JSON number grammar (RFC 8259 section 6); returns the end or NULL. */
static const char *json_number_end(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p >= end || !isdigit((unsigned char)*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && isdigit((unsigned char)*p))
			p++;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !isdigit((unsigned char)*p))
			return NULL;
		while (p < end && isdigit((unsigned char)*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !isdigit((unsigned char)*p))
			return NULL;
		while (p < end && isdigit((unsigned char)*p))
			p++;
	}
	return p;
}

/* ---- Loose lookup ---- */

/*
 * The value of the first member named key, anywhere in body (a `"key"`
 * that no ':' follows was a value and is skipped): a pointer to its first
 * byte after blanks, or NULL.
 */
static const char *member_value(const char *body, const char *key)
{
	char pat[128];
	size_t kl = strlen(key);

	if (kl + 3 > sizeof(pat))
		return NULL;
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	const char *end = body + strlen(body);

	for (const char *p = strstr(body, pat); p; p = strstr(p + 1, pat)) {
		const char *q = json_ws(p + kl + 2, end);

		if (*q == ':')
			return json_ws(q + 1, end);
	}
	return NULL;
}

bool json_get_string(const char *body, const char *key, char *out, size_t cap)
{
	const char *q = cap ? member_value(body, key) : NULL;

	if (!q || *q != '"')
		return false;
	q++;
	size_t o = 0;

	while (*q && *q != '"') {
		char ch = *q++;

		if (ch == '\\') {
			ch = *q++;
			switch (ch) {
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case '\0': return false;
			case 'u': {
				/* A BMP code point, as UTF-8 (no surrogate pairs:
				 * the tests' strings do not need them). */
				unsigned cp = 0;
				for (int i = 0; i < 4; i++) {
					int d = q[i] >= '0' && q[i] <= '9' ? q[i] - '0'
						: (q[i] | 0x20) >= 'a' && (q[i] | 0x20) <= 'f'
							? (q[i] | 0x20) - 'a' + 10 : -1;
					if (d < 0)
						return false;
					cp = cp << 4 | (unsigned)d;
				}
				q += 4;
				if (cp >= 0x80) {
					char u[3];
					size_t un = cp < 0x800 ? 2 : 3;
					if (un == 2) {
						u[0] = (char)(0xc0 | cp >> 6);
						u[1] = (char)(0x80 | (cp & 0x3f));
					} else {
						u[0] = (char)(0xe0 | cp >> 12);
						u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
						u[2] = (char)(0x80 | (cp & 0x3f));
					}
					for (size_t i = 0; i + 1 < un; i++)
						if (o + 1 < cap)
							out[o++] = u[i];
					ch = u[un - 1];
				} else {
					ch = (char)cp;
				}
				break;
			}
			default: break; /* \" \\ \/ */
			}
		}
		if (o + 1 < cap)
			out[o++] = ch;
	}
	if (*q != '"')
		return false;
	out[o] = '\0';
	return true;
}

bool json_get_number(const char *body, const char *key, double *out,
		     char *raw, size_t rawcap)
{
	const char *q = member_value(body, key);
	const char *e = q ? json_number_end(q, body + strlen(body)) : NULL;

	if (!e)
		return false;
	if (raw && rawcap) {
		size_t n = (size_t)(e - q) < rawcap - 1 ? (size_t)(e - q) : rawcap - 1;

		memcpy(raw, q, n);
		raw[n] = '\0';
	}
	*out = strtod(q, NULL);
	return true;
}

/* ---- Strict syntax check ---- */

struct json_cur {
	const char *p, *end, *why;
};

static bool json_value(struct json_cur *j, int depth);

static bool json_string(struct json_cur *j)
{
	if (j->p >= j->end || *j->p != '"') {
		j->why = "expected a string";
		return false;
	}
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		unsigned char ch = (unsigned char)*j->p;

		if (ch < 0x20) {
			j->why = "control character in a string";
			return false;
		}
		if (ch == '\\') {
			j->p++;
			if (j->p >= j->end) {
				j->why = "unterminated escape";
				return false;
			}
			if (*j->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (j->p + i >= j->end ||
					    !isxdigit((unsigned char)j->p[i])) {
						j->why = "bad \\u escape";
						return false;
					}
				j->p += 4;
			} else if (!strchr("\"\\/bfnrt", *j->p)) {
				j->why = "bad escape in a string";
				return false;
			}
		}
		j->p++;
	}
	if (j->p >= j->end) {
		j->why = "unterminated string";
		return false;
	}
	j->p++;
	return true;
}

static bool json_value(struct json_cur *j, int depth)
{
	if (depth > 64) {
		j->why = "nested too deeply";
		return false;
	}
	j->p = json_ws(j->p, j->end);
	if (j->p >= j->end) {
		j->why = "expected a value, got the end";
		return false;
	}
	char ch = *j->p;

	if (ch == '{' || ch == '[') {
		char close = ch == '{' ? '}' : ']';

		j->p = json_ws(j->p + 1, j->end);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (int i = 0; i < 1000000; i++) {
			if (ch == '{') {
				j->p = json_ws(j->p, j->end);
				if (!json_string(j))
					return false;
				j->p = json_ws(j->p, j->end);
				if (j->p >= j->end || *j->p != ':') {
					j->why = "expected ':' after a member name";
					return false;
				}
				j->p++;
			}
			if (!json_value(j, depth + 1))
				return false;
			j->p = json_ws(j->p, j->end);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == close) {
				j->p++;
				return true;
			}
			j->why = ch == '{' ? "expected ',' or '}'" : "expected ',' or ']'";
			return false;
		}
		j->why = "too many members";
		return false;
	}
	if (ch == '"')
		return json_string(j);
	static const char *const lits[] = { "true", "false", "null" };

	for (size_t i = 0; i < 3; i++) {
		size_t l = strlen(lits[i]);

		if ((size_t)(j->end - j->p) >= l && memcmp(j->p, lits[i], l) == 0) {
			j->p += l;
			return true;
		}
	}
	const char *e = json_number_end(j->p, j->end);

	if (!e) {
		j->why = "not a JSON value";
		return false;
	}
	j->p = e;
	return true;
}

bool json_valid(const char *s, size_t n, char *why, size_t wcap)
{
	struct json_cur j = { .p = s, .end = s + n, .why = NULL };
	bool ok = json_value(&j, 0);

	if (ok) {
		j.p = json_ws(j.p, j.end);
		if (j.p != j.end) {
			ok = false;
			j.why = "bytes after the value";
		}
	}
	if (!ok && why && wcap)
		snprintf(why, wcap, "%s at offset %zu", j.why ? j.why : "invalid",
			 (size_t)(j.p - s));
	return ok;
}
