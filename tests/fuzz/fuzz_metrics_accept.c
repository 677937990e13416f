/*
 * libFuzzer target for the scrape path's header parsers in
 * src/metrics/expo.c: expo_negotiate (Accept) and expo_accepts_gzip
 * (Accept-Encoding), on the production entry points. The input is the
 * field value.
 *
 * Beyond "no crash, no over-read" (the value is an exact-size heap copy,
 * so ASan sees a read of value[len]) it checks properties RFC 9110 gives
 * the answer, each of which a real bug has broken somewhere:
 *   - deterministic, and independent of where the bytes live;
 *   - trailing OWS changes nothing (5.6.3), nor do empty list elements
 *     before or after (5.6.1: ", , x ,");
 *   - ASCII case changes nothing: types, subtypes, codings and parameter
 *     names are case-insensitive, and the only value compared ("1.0.0",
 *     "0.0.4", a qvalue) has no letters;
 *   - for values without quoted-strings (the common case), the answer is
 *     the same for the list reversed (the choice is by specificity and q,
 *     not order) and equals that of a second, deliberately naive
 *     implementation below (split on ',' then ';', trim, compare).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/metrics_expo.h"

#include "fuzz_util.h"

#define MAX_INPUT 4096

struct answer {
	enum expo_format f;
	bool gz;
};

/* Runs both parsers on an exact-size heap copy of s[0, n). */
static struct answer ask(const char *s, size_t n)
{
	char *c = malloc(n ? n : 1);
	struct answer a;

	CHECK(c);
	if (n)
		memcpy(c, s, n);
	a.f = expo_negotiate(n ? c : NULL, n);
	a.gz = expo_accepts_gzip(n ? c : NULL, n);
	free(c);
	return a;
}

static bool same(struct answer a, struct answer b)
{
	return a.f == b.f && a.gz == b.gz;
}

/* ---- The reference: quote-free values only ---- */

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void trim(const char **s, size_t *n)
{
	while (*n && ows(**s))
		(*s)++, (*n)--;
	while (*n && ows((*s)[*n - 1]))
		(*n)--;
}

static bool all_tchar(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!tchar(s[i]))
			return false;
	return true;
}

static bool ci(const char *s, size_t n, const char *lit)
{
	if (strlen(lit) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c != lit[i])
			return false;
	}
	return true;
}

/* RFC 9110 12.4.2 by table lookup of every legal spelling's value. */
static int ref_q(const char *s, size_t n)
{
	char t[6] = {0};

	if (n == 0 || n > 5)
		return -1;
	memcpy(t, s, n);
	if (!strcmp(t, "1") || !strcmp(t, "1.") || !strcmp(t, "1.0") || !strcmp(t, "1.00") ||
	    !strcmp(t, "1.000"))
		return 1000;
	if (t[0] != '0' || (n > 1 && t[1] != '.'))
		return -1;
	int v = 0;
	for (size_t i = 2; i < 5; i++) {
		int d = 0;

		if (i < n) {
			if (t[i] < '0' || t[i] > '9')
				return -1;
			d = t[i] - '0';
		}
		v = v * 10 + d;
	}
	return v;
}

struct ref_elem {
	const char *head; /* "type/subtype" or coding, trimmed */
	size_t hn;
	int q;
	int ver; /* -1 none, 0 other, 1 "1.0.0", 4 "0.0.4" */
};

/* One ','-separated element; false if malformed (or empty). */
static bool ref_elem(const char *s, size_t n, bool media, struct ref_elem *e)
{
	size_t i = 0, part = 0;
	bool seen_q = false;

	e->q = 1000;
	e->ver = -1;
	while (i <= n) {
		size_t j = i;
		const char *p;
		size_t pn;

		while (j < n && s[j] != ';')
			j++;
		p = s + i;
		pn = j - i;
		trim(&p, &pn);
		if (part == 0) {
			if (media) {
				const char *slash = memchr(p, '/', pn);

				if (!slash || !all_tchar(p, (size_t)(slash - p)) ||
				    !all_tchar(slash + 1, pn - (size_t)(slash - p) - 1))
					return false;
				if (slash - p == 1 && p[0] == '*' && !(pn == 3 && p[2] == '*'))
					return false;
			} else if (!all_tchar(p, pn)) {
				return false;
			}
			e->head = p;
			e->hn = pn;
		} else if (pn) {
			const char *eq = memchr(p, '=', pn);
			size_t kn, vn;

			if (!eq)
				return false;
			kn = (size_t)(eq - p);
			vn = pn - kn - 1;
			if (!all_tchar(p, kn) || !all_tchar(eq + 1, vn))
				return false;
			if (ci(p, kn, "q")) {
				if (seen_q || (e->q = ref_q(eq + 1, vn)) < 0)
					return false;
				seen_q = true;
			} else if (media && ci(p, kn, "version")) {
				if (e->ver != -1)
					return false;
				e->ver = vn == 5 && !memcmp(eq + 1, "1.0.0", 5) ? 1
					 : vn == 5 && !memcmp(eq + 1, "0.0.4", 5) ? 4
										  : 0;
			}
		}
		part++;
		i = j + 1;
	}
	return true;
}

static struct answer reference(const char *s, size_t n)
{
	/* Best q per level, -1 when no range: om {bare, 1.0.0}; text {*\/\*, text/\*, plain, 0.0.4}. */
	int om[2] = {-1, -1}, tx[4] = {-1, -1, -1, -1}, gz = -1, star = -1;
	int omq = 0, txq = 0;
	struct answer a;
	size_t i = 0;

	while (i <= n) {
		size_t j = i;
		const char *p;
		size_t pn;
		struct ref_elem e;
		int *slot = NULL;

		while (j < n && s[j] != ',')
			j++;
		p = s + i;
		pn = j - i;
		i = j + 1;
		trim(&p, &pn);
		if (!pn)
			continue;
		if (ref_elem(p, pn, true, &e)) {
			if (ci(e.head, e.hn, "application/openmetrics-text"))
				slot = e.ver == -1 ? &om[0] : e.ver == 1 ? &om[1] : NULL;
			else if (ci(e.head, e.hn, "text/plain"))
				slot = e.ver == -1 ? &tx[2] : e.ver == 4 ? &tx[3] : NULL;
			else if (ci(e.head, e.hn, "text/*"))
				slot = &tx[1];
			else if (ci(e.head, e.hn, "*/*"))
				slot = &tx[0];
			if (slot && e.q > *slot)
				*slot = e.q;
		}
		if (ref_elem(p, pn, false, &e)) {
			slot = ci(e.head, e.hn, "gzip") || ci(e.head, e.hn, "x-gzip") ? &gz
			       : ci(e.head, e.hn, "*")                                 ? &star
											: NULL;
			if (slot && e.q > *slot)
				*slot = e.q;
		}
	}
	for (int l = 1; l >= 0; l--)
		if (om[l] >= 0) {
			omq = om[l];
			break;
		}
	for (int l = 3; l >= 0; l--)
		if (tx[l] >= 0) {
			txq = tx[l];
			break;
		}
	a.f = omq > 0 && omq >= txq ? EXPO_OPENMETRICS_100 : EXPO_TEXT_004;
	a.gz = gz >= 0 ? gz > 0 : star > 0;
	return a;
}

/* ---- Target ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[MAX_INPUT + 8], rev[MAX_INPUT + 8];
	const char *s = (const char *)data;
	struct answer a, b;

	if (size > MAX_INPUT)
		return 0;
	a = ask(s, size);

	/* Deterministic, wherever the bytes are. */
	b = ask(s, size);
	CHECK(same(a, b));

	/* Trailing OWS. */
	memcpy(buf, s, size);
	memcpy(buf + size, " \t ", 3);
	CHECK(same(a, ask(buf, size + 3)));

	/* Empty list elements around it. */
	memcpy(buf, " , ,", 4);
	memcpy(buf + 4, s, size);
	memcpy(buf + 4 + size, ", ,", 3);
	CHECK(same(a, ask(buf, size + 7)));

	/* ASCII case, both ways. */
	for (int up = 0; up < 2; up++) {
		for (size_t i = 0; i < size; i++) {
			char c = s[i];

			if (up && c >= 'a' && c <= 'z')
				c = (char)(c - 32);
			else if (!up && c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			buf[i] = c;
		}
		CHECK(same(a, ask(buf, size)));
	}

	/* Quote-free: the naive reference agrees, and order does not matter. */
	if (!memchr(s, '"', size)) {
		size_t end = size, n = 0;

		CHECK(same(a, reference(s, size)));
		for (bool first = true;; first = false) {
			size_t start = end;

			while (start > 0 && s[start - 1] != ',')
				start--;
			if (!first)
				rev[n++] = ',';
			memcpy(rev + n, s + start, end - start);
			n += end - start;
			if (start == 0)
				break;
			end = start - 1;
		}
		CHECK(n == size);
		CHECK(same(a, ask(rev, n)));
	}
	return 0;
}
