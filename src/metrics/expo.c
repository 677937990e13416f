/*
 * Prometheus exposition writer and content negotiation. The contract is
 * include/ringside/metrics_expo.h. The formats:
 *
 *   [TEXT]  Prometheus text format 0.0.4, "Text-based format" in
 *           prometheus.io/docs/instrumenting/exposition_formats/
 *   [OM]    OpenMetrics 1.0.0, github.com/OpenObservability/OpenMetrics,
 *           specification/OpenMetrics.md ("Text format", ABNF at the end)
 *
 * This runs on the scrape path (a scrape a second per Prometheus server),
 * so it allocates nothing, uses no stdio except snprintf for non-integral
 * doubles other than short decimals, and does not depend on the locale
 * (see expo_format_double).
 *
 * Overflow. Every call builds its line (expo_family: its two lines) at
 * buf[len] and moves len past it only when all of it fitted. So
 * buf[0, len) always holds whole lines and never half of one; the bytes
 * between len and cap may hold the start of the line that did not fit.
 * The first line that does not fit sets e->overflow, and from then on
 * every call writes nothing, so a later, shorter line cannot slip in after
 * a dropped one. A caller checks e->overflow once at the end and discards
 * the exposition (retry with a bigger buffer, or answer 500): an
 * exposition with lines missing must never be served, since Prometheus
 * would read the missing series as gone.
 */
#include "ringside/metrics_expo.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/decimal.h"

/* ---- Cursor: a write position that becomes NULL when out of room ---- */

/*
 * Every put_* takes the cursor and returns it advanced, or NULL if the
 * bytes do not fit before `end` (or p was NULL already), so a line is a
 * chain of puts with one check at the end.
 */
static inline char *put(char *p, const char *end, const void *src, size_t n)
{
	if (!p || (size_t)(end - p) < n)
		return NULL;
	memcpy(p, src, n);
	return p + n;
}

static inline char *put_c(char *p, const char *end, char c)
{
	if (!p || p == end)
		return NULL;
	*p = c;
	return p + 1;
}

static inline char *put_s(char *p, const char *end, const char *s)
{
	return put(p, end, s, strlen(s));
}

/*
 * Escapes s: '\\' -> "\\\\", '\n' -> "\\n" and, if `quote`, '"' -> "\\"".
 * [TEXT] label values escape all three, HELP only the first two; [OM]
 * ("Escaping") escapes all three in both label values and HELP.
 */
static char *put_escaped(char *p, const char *end, const char *s, bool quote)
{
	const char *special = quote ? "\\\"\n" : "\\\n";

	while (p) {
		size_t n = strcspn(s, special);

		p = put(p, end, s, n);
		s += n;
		if (!*s)
			break;
		p = put_c(p, end, '\\');
		p = put_c(p, end, *s == '\n' ? 'n' : *s);
		s++;
	}
	return p;
}

/*
 * The line starts at buf[len] and may run to *end; NULL once overflowed
 * (nothing more is written) or without a buffer.
 */
static char *line_begin(struct expo *e, const char **end)
{
	if (e->overflow || !e->buf) {
		*end = NULL;
		return NULL;
	}
	*end = e->buf + e->cap;
	return e->buf + e->len;
}

static void line_commit(struct expo *e, char *p)
{
	if (!p) {
		e->overflow = true;
		return;
	}
	e->len = (size_t)(p - e->buf);
	assert(e->len <= e->cap);
}

void expo_init(struct expo *e, char *buf, size_t cap, enum expo_format f)
{
	e->buf = buf;
	e->len = 0;
	e->cap = buf ? cap : 0;
	e->format = f;
	e->overflow = false;
}

/* ---- Escaping (public) ---- */

/*
 * Both write the escaped text and a NUL: (size_t)-1 unless the text plus
 * its NUL fit in cap. The length returned excludes the NUL.
 */
static size_t escape_into(char *out, size_t cap, const char *s, bool quote)
{
	char *p;

	if (!out || cap == 0)
		return (size_t)-1;
	p = put_escaped(out, out + cap - 1, s, quote);
	if (!p)
		return (size_t)-1;
	*p = '\0';
	return (size_t)(p - out);
}

size_t expo_escape_label_value(char *out, size_t cap, const char *s)
{
	return escape_into(out, cap, s, true);
}

size_t expo_escape_help(char *out, size_t cap, const char *s, enum expo_format f)
{
	return escape_into(out, cap, s, f == EXPO_OPENMETRICS_100);
}

/* ---- Numbers ---- */

static const uint64_t pow10u[19] = {
	1,
	10,
	100,
	1000,
	10000,
	100000,
	1000000,
	10000000,
	100000000,
	1000000000,
	10000000000,
	100000000000,
	1000000000000,
	10000000000000,
	100000000000000,
	1000000000000000,
	10000000000000000,
	100000000000000000,
	1000000000000000000,
};

size_t expo_format_fixed(char *out, bool negative, uint64_t whole, uint64_t frac, unsigned scale)
{
	char tmp[20];
	char *d = decimal_u64_digits(tmp, whole);
	size_t dl = (size_t)(tmp + sizeof tmp - d), n = 0;

	assert(scale <= 18 && frac < pow10u[scale]);
	if (negative && (whole || frac))
		out[n++] = '-';
	memcpy(out + n, d, dl);
	n += dl;
	if (frac) { /* trailing zeros, and a bare point, say nothing */
		while (frac % 10 == 0) {
			frac /= 10;
			scale--;
		}
		d = decimal_u64_digits(tmp, frac);
		dl = (size_t)(tmp + sizeof tmp - d);
		out[n++] = '.';
		memset(out + n, '0', scale - dl); /* 0.0015: the zeros after the point */
		n += scale - dl;
		memcpy(out + n, d, dl);
		n += dl;
	}
	return n;
}

/*
 * Both parsers read Go's strconv.ParseFloat syntax ([TEXT] "value is a
 * float represented as required by Go's ParseFloat() function"; [OM]
 * "realnumber" in the ABNF, plus "NaN", "+Inf", "-Inf").
 *
 * Integral values below 2^53 in magnitude are exact in a double and are
 * written with the digit loop: counters and gauges are almost always
 * integers, and they then cost no snprintf. Negative zero is written "0",
 * as client_golang's writeFloat does (its `case f == 0` also catches -0):
 * both parse, and a gauge that reads "-0" only puzzles people.
 *
 * Other finite values: the shortest of %.15g, %.16g, %.17g that reads back
 * to the same double (%.17g always does for IEEE binary64), with a fast
 * path (below) for short decimals that writes the same bytes. printf and
 * strtod both use LC_NUMERIC; the round-trip test runs in whatever locale
 * is current, so it is consistent, and then whatever the locale used as
 * the decimal point (one or more bytes that are none of 0-9 + - e) is
 * replaced by '.'. The server never calls setlocale, but a library might.
 */
size_t expo_format_double(char out[33], double v)
{
	char tmp[20];
	char buf[40];
	size_t n = 0;

	if (isnan(v)) {
		memcpy(out, "NaN", 4);
		return 3;
	}
	if (isinf(v)) {
		memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
		return 4;
	}
	if (v > -0x1p53 && v < 0x1p53) {
		int64_t i = (int64_t)v;

		if ((double)i == v) {
			uint64_t mag = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
			char *d = decimal_u64_digits(tmp, mag);
			size_t dl = (size_t)(tmp + sizeof tmp - d);

			if (i < 0)
				out[n++] = '-';
			memcpy(out + n, d, dl);
			n += dl;
			out[n] = '\0';
			return n;
		}
	}
	/*
	 * Fast path, for the short decimals gauges and agents' reports carry
	 * most (23.5, 8022.651, 0.0015); it saves a snprintf and a strtod.
	 * Here v is finite and not integral (the integer path took those).
	 * If 1e-4 <= |v| < 1e15 and, for some k <= 6, an integer m < 10^15
	 * gives m / 10^k == |v| (m and 10^k are exact in a double and the
	 * division is correctly rounded), then the exact decimal D = m / 10^k
	 * is what the loop below prints:
	 *   - D reads back to v: strtod rounds D correctly, as the division
	 *     did, so "%.15g" stops the loop if it prints D.
	 *   - "%.15g" prints D. |v| = RN(D), so ||v| - D| <= 2^-53 D < 1.2e-16 D.
	 *     Let 10^e <= |v| < 10^(e+1). D is not below 10^e (a decimal of at
	 *     most 15 significant digits below 10^e is at most 10^e -
	 *     10^(e-15), too far from |v|), so D, with at most 15 significant
	 *     digits (m < 10^15), is a multiple of 10^(e-14):
	 *     a point of the grid "%.15g" rounds |v| to. Its distance to |v|,
	 *     under 1.2e-16 D < 2 10^(e-15), is less than half the grid's
	 *     spacing, 5 10^(e-15): D is |v| correctly rounded to 15 digits.
	 *     %g uses no exponent, since -4 <= e and D < 10^15 / 10^k <= 10^14
	 *     (|v| >= fl(1e-4) > 10^-4), and drops trailing zeros, as
	 *     expo_format_fixed does; the loop's copy turns the locale's point
	 *     into '.', the one written here.
	 * m is |v| 10^k rounded: a product rounded the wrong way only fails
	 * the check (a slow-path value, never a wrong one), and t < 1e15
	 * keeps m <= 10^15, where m = 10^15 would be an integral m / 10^k.
	 */
	double a = fabs(v);

	if (a >= 1e-4 && a < 1e15) {
		for (unsigned k = 1; k <= 6; k++) {
			double p = (double)pow10u[k], t = a * p;
			uint64_t m;

			if (t >= 1e15)
				break;
			m = (uint64_t)(t + 0.5);
			if ((double)m / p == a) {
				n = expo_format_fixed(out, v < 0, m / pow10u[k], m % pow10u[k], k);
				out[n] = '\0';
				return n;
			}
		}
	}
	for (int prec = 15;; prec++) {
		int w = snprintf(buf, sizeof buf, "%.*g", prec, v);

		assert(w > 0 && (size_t)w < sizeof buf); /* at most 24 bytes */
		(void)w;
		if (prec == 17 || strtod(buf, NULL) == v)
			break;
	}
	/* Copy, turning the locale's decimal point (any run of other bytes) into '.'. */
	for (const char *s = buf; *s && n < 32;) {
		char c = *s;

		if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e') {
			out[n++] = c;
			s++;
			continue;
		}
		out[n++] = '.';
		while (*s && !((*s >= '0' && *s <= '9') || *s == '+' || *s == '-' || *s == 'e'))
			s++;
	}
	out[n] = '\0';
	return n;
}

/* ---- Lines ---- */

static const char *type_name(enum expo_type t)
{
	switch (t) {
	case EXPO_COUNTER:
		return "counter";
	case EXPO_GAUGE:
		return "gauge";
	case EXPO_HISTOGRAM:
		return "histogram";
	}
	return "unknown";
}

void expo_family(struct expo *e, const char *name, enum expo_type type, const char *help)
{
	const char *end;
	char *p = line_begin(e, &end);
	size_t nlen = strlen(name);
	bool om = e->format == EXPO_OPENMETRICS_100;

	/*
	 * [OM] "Counters": a MetricFamily of type counter is named without
	 * the suffix its samples carry, "foo" for foo_total. A name without
	 * "_total" is written as it is (an invalid OpenMetrics counter, but
	 * the caller's, and still a valid text one).
	 */
	if (om && type == EXPO_COUNTER && nlen > 6 && !memcmp(name + nlen - 6, "_total", 6))
		nlen -= 6;
	if (help) {
		p = put(p, end, "# HELP ", 7);
		p = put(p, end, name, nlen);
		p = put_c(p, end, ' ');
		p = put_escaped(p, end, help, om);
		p = put_c(p, end, '\n');
	}
	p = put(p, end, "# TYPE ", 7);
	p = put(p, end, name, nlen);
	p = put_c(p, end, ' ');
	p = put_s(p, end, type_name(type));
	p = put_c(p, end, '\n');
	line_commit(e, p);
}

void expo_labelset_init(struct expo_labelset *ls, const struct expo_label *labels, size_t count)
{
	const char *end = ls->text + sizeof ls->text;
	char *p = ls->text;

	for (size_t i = 0; i < count; i++) {
		assert(labels[i].name && labels[i].value);
		if (i)
			p = put_c(p, end, ',');
		p = put_s(p, end, labels[i].name);
		p = put(p, end, "=\"", 2);
		p = put_escaped(p, end, labels[i].value, true);
		p = put_c(p, end, '"');
	}
	ls->ok = p != NULL;
	ls->len = p ? (size_t)(p - ls->text) : 0;
}

/* name suffix{labels,le="le"} value\n: the one writer of sample lines. */
static void sample_line(struct expo *e, const char *name, const char *suffix,
			const struct expo_labelset *ls, const char *le, const char *value,
			size_t value_len)
{
	const char *end;
	char *p = line_begin(e, &end);
	bool labels = ls && ls->len;

	if (ls && !ls->ok)
		p = NULL; /* a label set that did not fit: fail, never truncate */
	p = put_s(p, end, name);
	if (suffix)
		p = put_s(p, end, suffix);
	if (labels || le) {
		p = put_c(p, end, '{');
		if (labels)
			p = put(p, end, ls->text, ls->len);
		if (le) {
			p = put(p, end, labels ? ",le=\"" : "le=\"", labels ? 5 : 4);
			p = put_s(p, end, le);
			p = put_c(p, end, '"');
		}
		p = put_c(p, end, '}');
	}
	p = put_c(p, end, ' ');
	p = put(p, end, value, value_len);
	p = put_c(p, end, '\n');
	line_commit(e, p);
}

void expo_line_u64(struct expo *e, const char *name, const char *suffix,
		   const struct expo_labelset *ls, const char *le, uint64_t value)
{
	char tmp[20];
	char *d = decimal_u64_digits(tmp, value);

	sample_line(e, name, suffix, ls, le, d, (size_t)(tmp + sizeof tmp - d));
}

void expo_line_fixed(struct expo *e, const char *name, const char *suffix,
		     const struct expo_labelset *ls, const char *le, uint64_t units,
		     unsigned scale)
{
	char out[40];

	assert(scale <= 18);
	sample_line(e, name, suffix, ls, le, out,
		    expo_format_fixed(out, false, units / pow10u[scale], units % pow10u[scale],
				      scale));
}

void expo_sample(struct expo *e, const char *name, const char *suffix,
		 const struct expo_label *labels, size_t label_count, const char *le,
		 double value)
{
	char v[33];
	struct expo_labelset ls;

	if (e->overflow)
		return;
	expo_labelset_init(&ls, labels, label_count);
	sample_line(e, name, suffix, &ls, le, v, expo_format_double(v, value));
}

void expo_sample_u64(struct expo *e, const char *name, const char *suffix,
		     const struct expo_label *labels, size_t label_count, const char *le,
		     uint64_t value)
{
	struct expo_labelset ls;

	if (e->overflow)
		return;
	expo_labelset_init(&ls, labels, label_count);
	expo_line_u64(e, name, suffix, &ls, le, value);
}

void expo_finish(struct expo *e)
{
	/* [OM] "The exposition MUST end with an EOF" line, "# EOF". */
	if (e->format == EXPO_OPENMETRICS_100) {
		const char *end;
		char *p = line_begin(e, &end);

		line_commit(e, put(p, end, "# EOF\n", 6));
	}
}

/* ---- Accept and Accept-Encoding (RFC 9110) ---- */

static inline unsigned char lower(unsigned char c)
{
	return (unsigned char)((unsigned)c - 'A' < 26u ? c + 32 : c);
}

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char c)
{
	if ((unsigned)(c | 0x20) - 'a' < 26u || (unsigned)c - '0' < 10u)
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* RFC 9110 5.6.4: qdtext and the second byte of a quoted-pair. */
static bool is_qdtext(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f && c != '"' && c != '\\');
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* s[0, n) equals the lowercase literal lit, ignoring ASCII case. */
static bool ieq(const char *s, size_t n, const char *lit)
{
	size_t i = 0;

	for (; i < n; i++)
		if (!lit[i] || lower((unsigned char)s[i]) != (unsigned char)lit[i])
			return false;
	return lit[i] == '\0';
}

/*
 * RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ),
 * in thousandths: "0." and "1." are valid. Anything else ("1.5",
 * "0.1234", ".5", "") is malformed.
 */
static bool parse_q(const char *s, size_t n, unsigned *q)
{
	unsigned v = 0, scale = 100;

	if (n == 0 || (s[0] != '0' && s[0] != '1') || n > 5)
		return false;
	if (n > 1 && s[1] != '.')
		return false;
	for (size_t i = 2; i < n; i++, scale /= 10) {
		if ((unsigned)s[i] - '0' >= 10u)
			return false;
		v += ((unsigned)s[i] - '0') * scale;
	}
	if (s[0] == '1') {
		if (v)
			return false;
		v = 1000;
	}
	*q = v;
	return true;
}

/* One element of an Accept / Accept-Encoding list. */
struct list_elem {
	const char *tok, *sub; /* type and subtype; sub unused for codings */
	size_t tlen, slen;
	const char *ver;       /* version parameter's value, as written */
	size_t vlen;
	bool has_ver, ver_quoted;
	unsigned q;            /* thousandths; 1000 when absent (RFC 9110 12.4.2) */
};

/* Past the ',' that ends the element starting at i, skipping quoted-strings. */
static size_t resync(const char *s, size_t len, size_t i)
{
	bool in_quote = false;

	for (; i < len; i++) {
		char c = s[i];

		if (in_quote) {
			if (c == '\\')
				i++; /* a quoted-pair; past len ends the loop */
			else if (c == '"')
				in_quote = false;
		} else if (c == '"') {
			in_quote = true;
		} else if (c == ',') {
			return i + 1;
		}
	}
	return len;
}

/*
 * Parses the list element at *pos:
 *   Accept          = #( media-range [ weight ] )            (12.5.1)
 *   media-range     = ( "*\/\*" / ( type "/" "*" ) / ( type "/" subtype ) ) parameters
 *   Accept-Encoding = #( codings [ weight ] )                (12.5.3)
 *   parameters      = *( OWS ";" OWS [ parameter ] )         (5.6.6)
 *   parameter       = parameter-name "=" parameter-value     (no space around '=')
 * A weight is the parameter named "q" (case-insensitive), so it may appear
 * anywhere among the parameters; other parameters of a coding are
 * tolerated and ignored. Moves *pos past the element's ',' (or to len).
 * Returns 1 for a valid element, 0 for an empty one (5.6.1: recipients
 * ignore them) and -1 for a malformed one, which the caller ignores as a
 * whole (a malformed weight does not become q=1).
 */
static int list_elem_next(const char *s, size_t len, size_t *pos, bool media,
			  struct list_elem *el)
{
	size_t start = *pos, i = *pos, t;
	bool seen_q = false;

	while (i < len && is_ows((unsigned char)s[i]))
		i++;
	if (i == len || s[i] == ',') {
		*pos = i == len ? len : i + 1;
		return 0;
	}
	memset(el, 0, sizeof *el);
	el->q = 1000;
	for (t = i; i < len && is_tchar((unsigned char)s[i]);)
		i++;
	if (i == t)
		goto bad;
	el->tok = s + t;
	el->tlen = i - t;
	if (media) {
		if (i == len || s[i] != '/')
			goto bad;
		for (t = ++i; i < len && is_tchar((unsigned char)s[i]);)
			i++;
		if (i == t)
			goto bad;
		el->sub = s + t;
		el->slen = i - t;
		/* "*\/plain" is not a media-range. */
		if (el->tlen == 1 && el->tok[0] == '*' && !(el->slen == 1 && el->sub[0] == '*'))
			goto bad;
	}
	for (;;) {
		size_t n0, nlen, v0, vlen;
		bool quoted = false;

		while (i < len && is_ows((unsigned char)s[i]))
			i++;
		if (i == len)
			break;
		if (s[i] == ',') {
			i++;
			break;
		}
		if (s[i] != ';')
			goto bad;
		i++;
		while (i < len && is_ows((unsigned char)s[i]))
			i++;
		if (i == len || s[i] == ',' || s[i] == ';')
			continue; /* "[ parameter ]": an empty one */
		for (n0 = i; i < len && is_tchar((unsigned char)s[i]);)
			i++;
		nlen = i - n0;
		if (nlen == 0 || i == len || s[i] != '=')
			goto bad;
		v0 = ++i;
		if (i < len && s[i] == '"') {
			quoted = true;
			for (i++;; i++) {
				unsigned char c;

				if (i == len)
					goto bad;
				c = (unsigned char)s[i];
				if (c == '"')
					break;
				if (c == '\\') {
					/* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
					if (++i == len)
						goto bad;
					c = (unsigned char)s[i];
					if (c != '\t' && (c < 0x20 || c == 0x7f))
						goto bad;
				} else if (!is_qdtext(c)) {
					goto bad;
				}
			}
			i++;
		} else {
			while (i < len && is_tchar((unsigned char)s[i]))
				i++;
			if (i == v0)
				goto bad;
		}
		vlen = i - v0;
		if (nlen == 1 && lower((unsigned char)s[n0]) == 'q') {
			/* 12.4.2: the weight is a bare qvalue, once. */
			if (seen_q || quoted || !parse_q(s + v0, vlen, &el->q))
				goto bad;
			seen_q = true;
		} else if (media && ieq(s + n0, nlen, "version")) {
			if (el->has_ver)
				goto bad;
			el->has_ver = true;
			el->ver = s + v0;
			el->vlen = vlen;
			el->ver_quoted = quoted;
		}
	}
	*pos = i;
	return 1;
bad:
	*pos = resync(s, len, start);
	return -1;
}

/* The version parameter equals lit (parameter values are case-sensitive). */
static bool version_is(const struct list_elem *el, const char *lit)
{
	const char *v = el->ver, *end = el->ver + el->vlen;

	if (!el->ver_quoted)
		return el->vlen == strlen(lit) && !memcmp(v, lit, el->vlen);
	for (v++, end--; v < end; v++, lit++) { /* inside the quotes */
		if (*v == '\\')
			v++;
		if (*lit == '\0' || *v != *lit)
			return false;
	}
	return *lit == '\0';
}

/*
 * RFC 9110 12.5.1: "Media ranges can be overridden by more specific media
 * ranges or specific media types. If more than one media range applies to
 * a given type, the most specific reference has precedence." So each
 * candidate keeps the best q per specificity level and the most specific
 * level present decides (its q, even 0, wins over a wildcard's):
 *   OpenMetrics: application/openmetrics-text;version=1.0.0 (1) over
 *                application/openmetrics-text without a version (0).
 *                Wildcards never choose it: like the Prometheus client
 *                libraries we send OpenMetrics only to a scraper that
 *                names it, curl's "*\/\*" gets text.
 *   text 0.0.4:  text/plain;version=0.0.4 (3) over text/plain (2) over
 *                text/\* (1) over *\/\* (0).
 * A range with another version (openmetrics 0.0.1, text/plain 1.0.0) does
 * not match. Parameters other than q and version (charset, escaping) do
 * not change the match. Levels with no range are -1; "not acceptable" is 0.
 */
static int most_specific(const int *level_q, int levels)
{
	for (int l = levels - 1; l >= 0; l--)
		if (level_q[l] >= 0)
			return level_q[l];
	return 0;
}

static void keep_max(int *slot, unsigned q)
{
	if ((int)q > *slot)
		*slot = (int)q;
}

enum expo_format expo_negotiate(const char *accept, size_t len)
{
	int om[2] = {-1, -1}, text[4] = {-1, -1, -1, -1};
	struct list_elem el;
	size_t pos = 0;
	int omq, textq;

	if (!accept)
		return EXPO_TEXT_004;
	while (pos < len) {
		if (list_elem_next(accept, len, &pos, true, &el) != 1)
			continue;
		if (ieq(el.tok, el.tlen, "application") && ieq(el.sub, el.slen, "openmetrics-text")) {
			if (!el.has_ver)
				keep_max(&om[0], el.q);
			else if (version_is(&el, "1.0.0"))
				keep_max(&om[1], el.q);
		} else if (ieq(el.tok, el.tlen, "text") && ieq(el.sub, el.slen, "plain")) {
			if (!el.has_ver)
				keep_max(&text[2], el.q);
			else if (version_is(&el, "0.0.4"))
				keep_max(&text[3], el.q);
		} else if (ieq(el.tok, el.tlen, "text") && ieq(el.sub, el.slen, "*")) {
			keep_max(&text[1], el.q);
		} else if (ieq(el.tok, el.tlen, "*")) { /* sub is "*" (checked) */
			keep_max(&text[0], el.q);
		}
	}
	omq = most_specific(om, 2);
	textq = most_specific(text, 4);
	return omq > 0 && omq >= textq ? EXPO_OPENMETRICS_100 : EXPO_TEXT_004;
}

/*
 * RFC 9110 12.5.3: a coding with q=0 is "not acceptable"; "*" matches any
 * coding not listed, so "gzip;q=0, *" refuses gzip and "*;q=0.5" allows
 * it; 8.4.1.3: "x-gzip" is equivalent to "gzip". An empty value (or no
 * header) allows no coding but identity.
 */
bool expo_accepts_gzip(const char *accept_encoding, size_t len)
{
	int gzip = -1, star = -1;
	struct list_elem el;
	size_t pos = 0;

	if (!accept_encoding)
		return false;
	while (pos < len) {
		if (list_elem_next(accept_encoding, len, &pos, false, &el) != 1)
			continue;
		if (ieq(el.tok, el.tlen, "gzip") || ieq(el.tok, el.tlen, "x-gzip"))
			keep_max(&gzip, el.q);
		else if (el.tlen == 1 && el.tok[0] == '*')
			keep_max(&star, el.q);
	}
	return gzip >= 0 ? gzip > 0 : star > 0;
}
