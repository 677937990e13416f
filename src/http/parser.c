/*
 * Strict, resumable HTTP/1.1 request-head parser (RFC 9112, RFC 9110). The
 * contract is include/ringside/http_parser.h; chunked bodies are chunked.c.
 *
 * Shape (nginx's ngx_http_parse_request_line): one switch over a state kept
 * in the caller's struct, one byte of input per step, except where a state
 * spends most of its time (method, target, field name, field value): there
 * a tight loop over a 256-entry class table eats the run of ordinary bytes
 * and only the byte that ends it goes back through the switch. Every byte
 * is classified exactly once; a call resumes at p->pos, so feeding a head
 * one byte at a time is O(n) in total.
 *
 * Only offsets are kept across calls: the caller may move the buffer.
 * Semantic checks of the few header fields the server acts on run once per
 * field line, when its CRLF has been seen, over the (already validated)
 * value span.
 */
#include "ringside/http_parser.h"

#include <limits.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "byte_class.h"

static inline unsigned char lower(unsigned char c)
{
	return (unsigned char)((unsigned)c - 'A' < 26u ? c + 32 : c);
}

/*
 * Next element of a comma-separated list (RFC 9110 5.6.1), OWS around it
 * stripped. Empty elements come back with *elen == 0 (callers ignore
 * them, as 5.6.1 asks). Start with *i = 0; returns false past the end.
 */
static bool list_next(const unsigned char *v, size_t len, size_t *i,
		      size_t *eoff, size_t *elen)
{
	size_t j = *i, s, e;

	if (j > len)
		return false;
	while (j < len && (cls[v[j]] & K_OWS))
		j++;
	s = j;
	while (j < len && v[j] != ',')
		j++;
	e = j;
	while (e > s && (cls[v[e - 1]] & K_OWS))
		e--;
	*eoff = s;
	*elen = e - s;
	*i = j + 1;
	return true;
}

bool http_list_has_token(const char *value, size_t len, const char *token)
{
	const unsigned char *v = (const unsigned char *)value;
	size_t tlen = strlen(token), i = 0, off, n;

	if (tlen == 0)
		return false;
	while (list_next(v, len, &i, &off, &n)) {
		if (n != tlen)
			continue;
		size_t k = 0;
		while (k < n && lower(v[off + k]) == lower((unsigned char)token[k]))
			k++;
		if (k == n)
			return true;
	}
	return false;
}

/* ---- Methods ---- */

static const char *const method_names[HTTP_METHOD_COUNT] = {
	[HTTP_METHOD_OTHER] = "OTHER",
	[HTTP_GET] = "GET",
	[HTTP_HEAD] = "HEAD",
	[HTTP_POST] = "POST",
	[HTTP_PUT] = "PUT",
	[HTTP_DELETE] = "DELETE",
	[HTTP_PATCH] = "PATCH",
	[HTTP_OPTIONS] = "OPTIONS",
	[HTTP_TRACE] = "TRACE",
	[HTTP_CONNECT] = "CONNECT",
};

const char *http_method_name(enum http_method m)
{
	if ((unsigned)m >= HTTP_METHOD_COUNT)
		return "OTHER";
	return method_names[m];
}

/* Methods are case-sensitive (RFC 9110 9.1). */
static enum http_method method_lookup(const unsigned char *s, size_t n)
{
#define M(lit, m)                                                          \
	if (memcmp(s, lit, sizeof(lit) - 1) == 0)                          \
		return m
	switch (n) {
	case 3:
		M("GET", HTTP_GET);
		M("PUT", HTTP_PUT);
		break;
	case 4:
		M("HEAD", HTTP_HEAD);
		M("POST", HTTP_POST);
		break;
	case 5:
		M("PATCH", HTTP_PATCH);
		M("TRACE", HTTP_TRACE);
		break;
	case 6:
		M("DELETE", HTTP_DELETE);
		break;
	case 7:
		M("OPTIONS", HTTP_OPTIONS);
		M("CONNECT", HTTP_CONNECT);
		break;
	}
#undef M
	return HTTP_METHOD_OTHER;
}

/*
 * Compares n bytes of an already validated field name or value with a
 * lowercase literal of the same length, case-insensitively, 8 or 4 bytes
 * at a time. OR-ing 0x20 folds case safely here: for the literals' bytes
 * (a-z, 0-9, '-') the only other byte that folds onto one is a control
 * character (e.g. CR onto '-'), and validated names and values hold none
 * but HTAB, which folds onto ')'. Do not use on unvalidated bytes.
 */
static inline bool fold_eq(const unsigned char *s, const char *lit, size_t n)
{
	uint64_t a, b;
	uint32_t x, y;
	size_t i = 0;

	if (n >= 8) {
		for (; i + 8 <= n; i += 8) {
			memcpy(&a, s + i, 8);
			memcpy(&b, lit + i, 8);
			if ((a | 0x2020202020202020ull) != b)
				return false;
		}
		if (i == n)
			return true;
		/* The tail, overlapping bytes already compared. */
		memcpy(&a, s + n - 8, 8);
		memcpy(&b, lit + n - 8, 8);
		return (a | 0x2020202020202020ull) == b;
	}
	if (n >= 4) {
		memcpy(&x, s, 4);
		memcpy(&y, lit, 4);
		if ((x | 0x20202020u) != y)
			return false;
		memcpy(&x, s + n - 4, 4);
		memcpy(&y, lit + n - 4, 4);
		return (x | 0x20202020u) == y;
	}
	for (; i < n; i++)
		if ((s[i] | 0x20) != (unsigned char)lit[i])
			return false;
	return true;
}

/* n == length of the literal, then fold_eq. */
#define FOLD_EQ(s, n, lit) ((n) == sizeof(lit) - 1 && fold_eq((s), lit, sizeof(lit) - 1))

/* Field names are case-insensitive (RFC 9110 5.1). */
static int known_header(const unsigned char *s, size_t n)
{
	switch (n) {
	case 4:
		if (fold_eq(s, "host", 4))
			return HTTP_HDR_HOST;
		break;
	case 6:
		if (fold_eq(s, "accept", 6))
			return HTTP_HDR_ACCEPT;
		if (fold_eq(s, "expect", 6))
			return HTTP_HDR_EXPECT;
		break;
	case 10:
		if (fold_eq(s, "connection", 10))
			return HTTP_HDR_CONNECTION;
		break;
	case 12:
		if (fold_eq(s, "content-type", 12))
			return HTTP_HDR_CONTENT_TYPE;
		break;
	case 13:
		if (fold_eq(s, "authorization", 13))
			return HTTP_HDR_AUTHORIZATION;
		break;
	case 14:
		if (fold_eq(s, "content-length", 14))
			return HTTP_HDR_CONTENT_LENGTH;
		break;
	case 15:
		if (fold_eq(s, "accept-encoding", 15))
			return HTTP_HDR_ACCEPT_ENCODING;
		break;
	case 17:
		if (fold_eq(s, "transfer-encoding", 17))
			return HTTP_HDR_TRANSFER_ENCODING;
		break;
	}
	return -1;
}

/* ---- Request head ---- */

/* The size written next to struct http_parser in the header. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct http_parser) == 168,
	       "struct http_parser grew: update its comment");

enum {
	S_START = 0,      /* zeroed struct starts here */
	S_START_LF,       /* CR of a leading empty line seen */
	S_METHOD,
	S_TARGET_START,
	S_PATH,           /* origin-form or absolute-form path */
	S_QUERY,
	S_ASTERISK,       /* '*' seen, SP must follow */
	S_ABS_SCHEME,     /* "http" / "https", case-insensitive */
	S_ABS_SLASH1,
	S_ABS_SLASH2,
	S_ABS_AUTH_START,
	S_ABS_AUTH,
	S_AUTHORITY_FORM, /* CONNECT */
	S_VERSION,        /* mark = first byte of HTTP-version */
	S_RL_LF,
	S_FIELD_START,
	S_NAME,           /* mark = first byte of the field name */
	S_VALUE_START,
	S_VALUE,          /* mark2 = first byte of the field value */
	S_VALUE_LF,
	S_END_LF,
	S_DONE,
	S_ERROR,
};

/* p->flags */
enum {
	F_TE_CHUNKED = 1u << 0,  /* "chunked" seen: nothing may follow it */
	F_TE_OTHER = 1u << 1,    /* a transfer coding we do not implement */
	F_TE_ANY = 1u << 2,      /* a non-empty coding seen */
	F_CONN_CLOSE = 1u << 3,
	F_CONN_KEEP = 1u << 4,
	F_EXPECT_100 = 1u << 5,
	F_EXPECT_OTHER = 1u << 6,
};

/* RFC 9112 2.2: a server SHOULD ignore at least one empty line before the
 * request-line; bound it so a stream of CRLFs cannot hold the slot. */
#define MAX_LEADING_EMPTY_LINES 8u

struct fail {
	uint16_t status;
	const char *why;
};

/*
 * Content-Length = 1*DIGIT (RFC 9110 8.6), or a list of identical values
 * (RFC 9112 6.3 item 5). Returns NULL and the value, or why it is bad.
 */
static const char *parse_content_length(const unsigned char *v, size_t len,
					uint64_t *out)
{
	size_t i = 0, off, n;
	bool any = false;
	uint64_t first = 0;

	while (list_next(v, len, &i, &off, &n)) {
		uint64_t x = 0;

		if (n == 0)
			continue;
		for (size_t k = 0; k < n; k++) {
			unsigned d = v[off + k] - (unsigned)'0';

			if (d > 9)
				return "invalid Content-Length";
			if (x > ((uint64_t)INT64_MAX - d) / 10)
				return "Content-Length too large";
			x = x * 10 + d;
		}
		if (any && x != first)
			return "differing Content-Length values";
		first = x;
		any = true;
	}
	*out = first;
	return any ? NULL : "invalid Content-Length";
}

/* Ends of a run of bytes of class k in [pos, stop). */
static inline size_t scan_class(const unsigned char *b, size_t pos,
				size_t stop, uint8_t k)
{
#ifdef __SSE2__
	/* 16 bytes at a time while they are all plainly in the class:
	 * 0x21..0x7e for the target, 0x20..0xff minus 0x7f for a value. A
	 * byte the vector test rejects (e.g. HTAB, '?', obs-text in a
	 * target) goes to the scalar loop, which has the final word. */
	if (k == K_PATH || k == K_TARGET || k == K_VALUE) {
		const __m128i lo = _mm_set1_epi8(k == K_VALUE ? 0x20 : 0x21);
		const __m128i del = _mm_set1_epi8(0x7f);
		const __m128i qm = _mm_set1_epi8(k == K_PATH ? '?' : 0x7f);

		while (stop - pos >= 16) {
			__m128i x = _mm_loadu_si128((const __m128i *)(b + pos));
			/* x >= lo, unsigned */
			__m128i ok = _mm_cmpeq_epi8(_mm_max_epu8(x, lo), x);

			if (k != K_VALUE) /* and x < 0x80 */
				ok = _mm_and_si128(ok, _mm_cmpgt_epi8(x, _mm_setzero_si128()));
			ok = _mm_andnot_si128(_mm_or_si128(_mm_cmpeq_epi8(x, del),
							   _mm_cmpeq_epi8(x, qm)),
					      ok);
			unsigned m = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
			if (m != 0) {
				pos += (unsigned)__builtin_ctz(m);
				break;
			}
			pos += 16;
		}
	}
#endif
	/* Four independent loads and one branch per step. */
	while (stop - pos >= 4 &&
	       (cls[b[pos]] & cls[b[pos + 1]] & cls[b[pos + 2]] & cls[b[pos + 3]] & k))
		pos += 4;
	while (pos < stop && (cls[b[pos]] & k))
		pos++;
	return pos;
}

/* ---- Host and authority (RFC 3986 3.2.2, 3.2.3) ----
 *
 * These run once per Host line or absolute-form target, over bytes the
 * byte loop has already classified, never in the byte loop itself. Each
 * must match the whole of its input: a prefix that parses is not enough.
 */

/*
 * IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet, a
 * dec-octet being 0-255 without a leading zero ("010" is 8 to inet_aton).
 */
static bool ipv4_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		if (part > 0 && (i == n || s[i++] != '.'))
			return false;

		size_t start = i;
		unsigned v = 0;

		while (i < n && i - start < 3 && IS_DIGIT(s[i]))
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return false;
	}
	return i == n;
}

/*
 * IPv6address: eight h16 (1-4 HEXDIG) separated by ':', or fewer with
 * one "::" standing for the missing ones (then at most seven); the last
 * two may be written as an IPv4address (ls32).
 */
static bool ipv6_valid(const unsigned char *s, size_t n)
{
	unsigned groups = 0;
	bool elided = false;
	size_t i = 0;

	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		elided = true;
		i = 2;
	}
	while (i < n) {
		size_t j = i;

		while (j < n && j - i < 5 && (cls[s[j]] & K_HEX))
			j++;
		if (j < n && s[j] == '.') {
			/* ls32 as an IPv4address: it must end the address. */
			if (!ipv4_valid(s + i, n - i))
				return false;
			groups += 2;
			break;
		}
		if (j == i || j - i > 4)
			return false;
		groups++;
		if (j == n)
			break;
		/* ':' then another group, or a second ':' (the "::"). */
		if (s[j] != ':' || ++j == n)
			return false;
		if (s[j] == ':') {
			if (elided)
				return false;
			elided = true;
			j++;
		}
		i = j;
	}
	return elided ? groups <= 7 : groups == 8;
}

/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static bool ipvfuture_valid(const unsigned char *s, size_t n)
{
	size_t i = 1;

	/* "v" or "V": ABNF literals ignore case (RFC 5234 2.3). */
	if (n == 0 || (s[0] | 0x20) != 'v')
		return false;
	while (i < n && (cls[s[i]] & K_HEX))
		i++;
	if (i == 1 || i == n || s[i] != '.' || ++i == n)
		return false;
	for (; i < n; i++)
		if (!(cls[s[i]] & K_REGNAME) && s[i] != ':')
			return false;
	return true;
}

/*
 * IP-literal = "[" ( IPv6address / IPvFuture ) "]" at the start of
 * v[0, len): its length, or 0 if there is none. Out of line: it is rare,
 * and inlined its registers cost every Host a longer prologue.
 */
__attribute__((noinline, cold))
static size_t ip_literal_len(const unsigned char *v, size_t len)
{
	const unsigned char *close = memchr(v, ']', len);
	size_t n;

	if (!close)
		return 0;
	n = (size_t)(close - v) - 1;
	if (!ipv6_valid(v + 1, n) && !ipvfuture_valid(v + 1, n))
		return 0;
	return n + 2;
}

/*
 * Host = uri-host [ ":" port ] (RFC 9110 7.2), over the whole of
 * v[0, len); the same grammar is the authority of an http(s) URI, which
 * may not carry userinfo (RFC 9110 4.2.4). Sets *host_len to the length
 * of uri-host: it may be 0, a reg-name may be empty.
 *   uri-host = IP-literal / IPv4address / reg-name
 *   IP-literal = "[" ( IPv6address / IPvFuture ) "]"
 *   reg-name = *( unreserved / pct-encoded / sub-delims )
 */
static bool host_port_valid(const unsigned char *v, size_t len,
			    size_t *host_len)
{
	unsigned port = 0;
	size_t i = 0;

	if (len > 0 && v[0] == '[') {
		i = ip_literal_len(v, len);
		if (i == 0)
			return false;
	} else {
		/* An IPv4address is also a reg-name: no rule of its own.
		 * Runs of name bytes four at a time: every request has a
		 * Host. */
		for (;;) {
			i = scan_class(v, i, len, K_REGNAME);
			if (i == len || v[i] != '%' || len - i < 3 ||
			    !(cls[v[i + 1]] & K_HEX) || !(cls[v[i + 2]] & K_HEX))
				break;
			i += 3;
		}
	}
	*host_len = i;
	if (i == len)
		return true;
	if (v[i] != ':')
		return false;
	/* port = *DIGIT (RFC 3986 3.2.3), so "host:" is valid. The grammar
	 * has no bound; we refuse over 5 digits or a value over 65535: no
	 * real Host carries one, and what a receiver makes of it varies. */
	if (len - i - 1 > 5)
		return false;
	for (i++; i < len; i++) {
		if (!IS_DIGIT(v[i]))
			return false;
		port = port * 10 + (unsigned)(v[i] - '0');
	}
	return port <= 65535;
}

/*
 * Acts on a complete line of a known header field; value is [off, end),
 * already validated and trimmed. Runs once per such line.
 */
static bool on_known_field(struct http_parser *p, const unsigned char *b,
			   uint32_t off, uint32_t end, struct fail *f)
{
	struct http_request *r = &p->req;
	const unsigned char *v = b + off;
	size_t len = end - off, i = 0, eo, n;
	int h = p->field;

	/* A value span never starts at offset 0 (the request line is there),
	 * so off != 0 means "seen", even for an empty value. */
	bool seen = r->hdr[h].off != 0;

	switch (h) {
	case HTTP_HDR_HOST:
		/* RFC 9112 3.2: more than one Host line, or an invalid value,
		 * is a 400. Host = uri-host [ ":" port ] (RFC 9110 7.2). */
		if (seen) {
			f->why = "repeated Host header field";
			return false;
		}
		/* Empty stays valid: 3.2 asks for an empty Host when the
		 * target has no authority. */
		if (!host_port_valid(v, len, &n)) {
			f->why = "invalid Host header field value";
			return false;
		}
		break;
	case HTTP_HDR_CONTENT_TYPE:
	case HTTP_HDR_AUTHORIZATION:
		/* Neither is a list (RFC 9110 8.3, 11.6.2), so a sender may
		 * not repeat it (5.3). Taking the first while a proxy takes
		 * the last would let each check a different credential or
		 * media type: refuse instead. */
		if (seen) {
			f->why = h == HTTP_HDR_CONTENT_TYPE
					 ? "repeated Content-Type header field"
					 : "repeated Authorization header field";
			return false;
		}
		break;
	case HTTP_HDR_CONTENT_LENGTH: {
		uint64_t cl;

		/* RFC 9112 6.1: CL with TE is a smuggling vector; we reject
		 * instead of letting Transfer-Encoding win. */
		if (r->hdr[HTTP_HDR_TRANSFER_ENCODING].off != 0) {
			f->why = "Content-Length and Transfer-Encoding together";
			return false;
		}
		f->why = parse_content_length(v, len, &cl);
		if (f->why)
			return false;
		/* RFC 9112 6.3 item 5: differing values are unrecoverable. */
		if (r->has_content_length && cl != r->content_length) {
			f->why = "differing Content-Length values";
			return false;
		}
		r->has_content_length = true;
		r->content_length = cl;
		break;
	}
	case HTTP_HDR_TRANSFER_ENCODING:
		/* RFC 9112 6.1: TE in HTTP/1.0 means the framing is faulty. */
		if (r->version_minor == 0) {
			f->why = "Transfer-Encoding in an HTTP/1.0 request";
			return false;
		}
		if (r->has_content_length) {
			f->why = "Content-Length and Transfer-Encoding together";
			return false;
		}
		/* The codings of all TE lines form one list (RFC 9110 5.3);
		 * chunked must be applied once, and last (RFC 9112 6.1). */
		while (list_next(v, len, &i, &eo, &n)) {
			if (n == 0)
				continue;
			if (!(cls[v[eo]] & K_TCHAR)) {
				f->why = "invalid Transfer-Encoding";
				return false;
			}
			if (p->flags & F_TE_CHUNKED) {
				f->why = FOLD_EQ(v + eo, n, "chunked")
						 ? "chunked applied more than once"
						 : "chunked is not the final transfer coding";
				return false;
			}
			p->flags |= F_TE_ANY;
			if (FOLD_EQ(v + eo, n, "chunked"))
				p->flags |= F_TE_CHUNKED;
			else
				p->flags |= F_TE_OTHER;
		}
		break;
	case HTTP_HDR_CONNECTION:
		/* RFC 9112 9.3 and 9.6. */
		while (list_next(v, len, &i, &eo, &n)) {
			if (FOLD_EQ(v + eo, n, "close"))
				p->flags |= F_CONN_CLOSE;
			else if (FOLD_EQ(v + eo, n, "keep-alive"))
				p->flags |= F_CONN_KEEP;
		}
		break;
	case HTTP_HDR_EXPECT:
		/* RFC 9110 10.1.1: 100-continue is the only expectation. */
		while (list_next(v, len, &i, &eo, &n)) {
			if (n == 0)
				continue;
			if (FOLD_EQ(v + eo, n, "100-continue"))
				p->flags |= F_EXPECT_100;
			else
				p->flags |= F_EXPECT_OTHER;
		}
		break;
	default:
		break;
	}
	if (!seen) {
		r->hdr[h].off = off;
		r->hdr[h].len = (uint32_t)len;
	}
	return true;
}

/* Checks that need the whole head; sets the derived fields. */
static bool on_head_end(struct http_parser *p, struct fail *f)
{
	struct http_request *r = &p->req;

	/* RFC 9112 3.2: an HTTP/1.1 request without Host is a 400. */
	if (r->version_minor == 1 && r->hdr[HTTP_HDR_HOST].off == 0) {
		f->status = 400;
		f->why = "missing Host header field";
		return false;
	}
	if (r->hdr[HTTP_HDR_TRANSFER_ENCODING].off != 0) {
		if (!(p->flags & F_TE_ANY)) {
			f->status = 400;
			f->why = "empty Transfer-Encoding";
			return false;
		}
		/* RFC 9112 6.1: a coding we do not understand is a 501. */
		if (p->flags & F_TE_OTHER) {
			f->status = 501;
			f->why = "unsupported transfer coding";
			return false;
		}
		r->chunked = true;
	}
	if (p->flags & F_EXPECT_OTHER) {
		f->status = 417;
		f->why = "unsupported expectation";
		return false;
	}
	/* RFC 9110 10.1.1: ignore 100-continue from an HTTP/1.0 client. */
	r->expect_continue = r->version_minor == 1 && (p->flags & F_EXPECT_100);
	/* RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with
	 * "keep-alive". */
	r->keep_alive = !(p->flags & F_CONN_CLOSE) &&
			(r->version_minor == 1 || (p->flags & F_CONN_KEEP));
	return true;
}

/* Why byte c cannot be in a request-target (or end it). */
static const char *target_byte_error(unsigned c)
{
	if (c == '\n')
		return "bare LF in request line";
	if (c == '\r')
		return "request line without HTTP-version";
	return "invalid byte in request-target";
}

/* Enters state st at pos, going straight to its code (label) when a byte
 * is there instead of through the switch: the field-line cycle is the
 * hot loop. */
#define NEXT(st, label)                                                    \
	do {                                                               \
		state = (st);                                              \
		if (pos == end)                                            \
			goto again;                                        \
		c = b[pos];                                                \
		goto label;                                                \
	} while (0)

#define FAIL(st, msg)                                                      \
	do {                                                               \
		f.status = (st);                                           \
		f.why = (msg);                                             \
		goto fail;                                                 \
	} while (0)

int http_parse_head(struct http_parser *p, const struct http_limits *lim,
		    const char *buf, size_t len)
{
	static const struct http_limits defaults = {
		HTTP_DEFAULT_MAX_HEAD_BYTES, HTTP_DEFAULT_MAX_TARGET_BYTES,
		HTTP_DEFAULT_MAX_FIELDS
	};
	const unsigned char *b = (const unsigned char *)buf;
	struct http_request *r = &p->req;
	struct fail f = { 400, NULL };
	unsigned state = p->state;
	size_t pos = p->pos, end, max_head, tlim = SIZE_MAX;

	if (state == S_DONE)
		return (int)pos;
	if (state == S_ERROR)
		return HTTP_PARSE_ERROR;
	if (!lim)
		lim = &defaults;
	/* The head length is returned as an int and spans are 32-bit. */
	max_head = lim->max_head_bytes < INT_MAX ? lim->max_head_bytes : INT_MAX;
	/* Never look past the head limit: the 431 is decided there. */
	end = len < max_head ? len : max_head;
	if (state >= S_PATH && state <= S_AUTHORITY_FORM)
		tlim = (size_t)r->target.off + lim->max_target_bytes;

	while (pos < end) {
		unsigned c = b[pos];

		switch (state) {
		case S_START:
			if (c == '\r') {
				if (p->mark >= MAX_LEADING_EMPTY_LINES)
					FAIL(400, "too many empty lines before the request line");
				state = S_START_LF;
				pos++;
				break;
			}
			if (!(cls[c] & K_TCHAR))
				FAIL(400, c == '\n' ? "bare LF in request line"
						    : "invalid byte in method");
			r->method_token.off = (uint32_t)pos;
			state = S_METHOD;
			pos++;
			break;

		case S_START_LF:
			if (c != '\n')
				FAIL(400, "bare CR in request line");
			p->mark++;
			state = S_START;
			pos++;
			break;

		case S_METHOD:
			pos = scan_class(b, pos, end, K_TCHAR);
			if (pos == end)
				break;
			c = b[pos];
			/* RFC 9112 3: method SP request-target SP version. */
			if (c != ' ')
				FAIL(400, c == '\n'   ? "bare LF in request line"
					  : c == '\r' ? "malformed request line"
						      : "invalid byte in method");
			r->method_token.len = (uint32_t)(pos - r->method_token.off);
			r->method = method_lookup(b + r->method_token.off,
						  r->method_token.len);
			state = S_TARGET_START;
			pos++;
			break;

		case S_TARGET_START:
			r->target.off = (uint32_t)pos;
			tlim = pos + (size_t)lim->max_target_bytes;
			if (c == ' ')
				FAIL(400, "empty request-target");
			if (!(cls[c] & K_TARGET))
				FAIL(400, target_byte_error(c));
			if (pos >= tlim)
				FAIL(414, "request-target too long");
			/* RFC 9112 3.2.3: CONNECT takes the authority-form. */
			if (r->method == HTTP_CONNECT) {
				state = S_AUTHORITY_FORM;
			} else if (c == '/') { /* origin-form, 3.2.1 */
				r->path.off = (uint32_t)pos;
				state = S_PATH;
			} else if (c == '*') { /* asterisk-form, 3.2.4 */
				if (r->method != HTTP_OPTIONS)
					FAIL(400, "asterisk-form request-target without OPTIONS");
				r->path.off = (uint32_t)pos;
				r->path.len = 1;
				state = S_ASTERISK;
			} else { /* absolute-form, 3.2.2 */
				state = S_ABS_SCHEME;
			}
			pos++;
			break;

		case S_PATH:
			pos = scan_class(b, pos, tlim < end ? tlim : end, K_PATH);
			if (pos == end)
				break;
			c = b[pos];
			if (c == ' ') {
				r->path.len = (uint32_t)(pos - r->path.off);
				goto target_done;
			}
			if (!(cls[c] & K_TARGET))
				FAIL(400, target_byte_error(c));
			if (pos >= tlim)
				FAIL(414, "request-target too long");
			/* c == '?': the query starts (RFC 3986 3.4). */
			r->path.len = (uint32_t)(pos - r->path.off);
			r->query.off = (uint32_t)pos + 1;
			state = S_QUERY;
			pos++;
			break;

		case S_QUERY:
		case S_AUTHORITY_FORM:
			pos = scan_class(b, pos, tlim < end ? tlim : end, K_TARGET);
			if (pos == end)
				break;
			c = b[pos];
			if (c != ' ') {
				if (!(cls[c] & K_TARGET))
					FAIL(400, target_byte_error(c));
				FAIL(414, "request-target too long");
			}
			if (state == S_QUERY)
				r->query.len = (uint32_t)(pos - r->query.off);
			goto target_done;

		case S_ASTERISK:
			if (c != ' ')
				FAIL(400, "invalid asterisk-form request-target");
			goto target_done;

		case S_ABS_SCHEME:
		case S_ABS_SLASH1:
		case S_ABS_SLASH2:
		case S_ABS_AUTH_START:
			/* Byte at a time: these are a handful of bytes. */
			if (!(cls[c] & K_TARGET)) {
				if (c == ' ' && state == S_ABS_AUTH_START)
					FAIL(400, "empty host in absolute-form request-target");
				FAIL(400, "invalid absolute-form request-target");
			}
			if (pos >= tlim)
				FAIL(414, "request-target too long");
			if (state == S_ABS_SCHEME) {
				size_t i = pos - r->target.off;

				if (i < 4) {
					if (lower((unsigned char)c) != "http"[i])
						FAIL(400, "invalid absolute-form request-target");
				} else if (c == ':') {
					state = S_ABS_SLASH1;
				} else if (i != 4 || lower((unsigned char)c) != 's') {
					FAIL(400, "invalid absolute-form request-target");
				}
			} else if (state != S_ABS_AUTH_START) {
				if (c != '/')
					FAIL(400, "invalid absolute-form request-target");
				state++;
			} else {
				/* RFC 9110 4.2.1: reject an http(s) URI
				 * with an empty host. */
				if (c == '/' || c == '?')
					FAIL(400, "empty host in absolute-form request-target");
				if (!(cls[c] & K_HOST))
					FAIL(400, "invalid authority in request-target");
				p->mark = (uint32_t)pos;
				state = S_ABS_AUTH;
			}
			pos++;
			break;

		case S_ABS_AUTH: {
			size_t hl;

			/* mark = first byte of the authority */
			pos = scan_class(b, pos, tlim < end ? tlim : end, K_HOST);
			if (pos == end)
				break;
			c = b[pos];
			if (c != ' ') {
				if (!(cls[c] & K_TARGET))
					FAIL(400, target_byte_error(c));
				if (pos >= tlim)
					FAIL(414, "request-target too long");
				/* '@' (userinfo, RFC 9110 4.2.4), '#', ... */
				if (c != '/' && c != '?')
					FAIL(400, "invalid authority in request-target");
			}
			/* The run of host bytes ends here: now its grammar,
			 * once (RFC 3986 3.2.2, 3.2.3). RFC 9110 4.2.1: an
			 * empty host is invalid in an http(s) URI, with a
			 * port or not. */
			if (!host_port_valid(b + p->mark, pos - p->mark, &hl))
				FAIL(400, "invalid authority in request-target");
			if (hl == 0)
				FAIL(400, "empty host in absolute-form request-target");
			/* The path starts at the first '/' after the authority;
			 * without one the path span stays empty. */
			r->path.off = (uint32_t)pos;
			if (c == ' ')
				goto target_done;
			if (c == '/') {
				state = S_PATH;
			} else {
				r->query.off = (uint32_t)pos + 1;
				state = S_QUERY;
			}
			pos++;
			break;
		}

		target_done:
			/* c == ' ' at pos */
			r->target.len = (uint32_t)(pos - r->target.off);
			pos++;
			p->mark = (uint32_t)pos;
			state = S_VERSION;
			break;

		case S_VERSION: {
			/* RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT,
			 * case-sensitive. The usual case in one compare. */
			size_t i = pos - p->mark;

			if (i == 0 && end - pos >= 10) {
				if (memcmp(b + pos, "HTTP/1.1\r\n", 10) == 0) {
					r->version_minor = 1;
					pos += 10;
					NEXT(S_FIELD_START, field_start);
				}
				if (memcmp(b + pos, "HTTP/1.0\r\n", 10) == 0) {
					r->version_minor = 0;
					pos += 10;
					NEXT(S_FIELD_START, field_start);
				}
			}
			if (i < 5) {
				if (c != (unsigned char)"HTTP/"[i])
					FAIL(400, c == '\n' ? "bare LF in request line"
							    : "malformed HTTP-version");
			} else if (i == 5 || i == 7) {
				if (!IS_DIGIT(c))
					FAIL(400, c == '\n' ? "bare LF in request line"
							    : "malformed HTTP-version");
				if (i == 5)
					p->mark2 = c - '0';
				else
					r->version_minor = (uint8_t)(c - '0');
			} else if (i == 6) {
				if (c != '.')
					FAIL(400, c == '\n' ? "bare LF in request line"
							    : "malformed HTTP-version");
			} else {
				if (c != '\r')
					FAIL(400, c == '\n' ? "bare LF in request line"
							    : "malformed HTTP-version");
				/* Well-formed, but not ours: RFC 9110 15.6.6. */
				if (p->mark2 != 1 || r->version_minor > 1)
					FAIL(505, "HTTP version not supported");
				state = S_RL_LF;
			}
			pos++;
			break;
		}

		case S_RL_LF:
			if (c != '\n')
				FAIL(400, "bare CR in request line");
			state = S_FIELD_START;
			pos++;
			break;

		case S_FIELD_START:
		field_start:
			if (cls[c] & K_TCHAR) {
				if (r->field_count >= lim->max_fields)
					FAIL(431, "too many header fields");
				r->field_count++;
				p->mark = (uint32_t)pos;
				pos++;
				NEXT(S_NAME, name);
			}
			if (c == '\r') {
				pos++;
				NEXT(S_END_LF, end_lf);
			}
			/* RFC 9112 5.2: reject obs-fold. */
			if (c == ' ' || c == '\t')
				FAIL(400, "obsolete line folding in header section");
			if (c == '\n')
				FAIL(400, "bare LF in header section");
			if (c == ':')
				FAIL(400, "empty header field name");
			FAIL(400, "invalid byte in header field name");

		case S_NAME:
		name:
			pos = scan_class(b, pos, end, K_TCHAR);
			if (pos == end)
				break;
			c = b[pos];
			if (c != ':') {
				/* RFC 9112 5.1: no whitespace before the colon. */
				if (c == ' ' || c == '\t')
					FAIL(400, "whitespace between header field name and colon");
				if (c == '\n')
					FAIL(400, "bare LF in header section");
				if (c == '\r')
					FAIL(400, "header field line without a colon");
				FAIL(400, "invalid byte in header field name");
			}
			p->field = (int16_t)known_header(b + p->mark, pos - p->mark);
			pos++;
			NEXT(S_VALUE_START, value_start);

		case S_VALUE_START:
		value_start:
			/* RFC 9112 5.1: OWS before the value is not part of it. */
			while (cls[c] & K_OWS) {
				if (++pos == end)
					goto again;
				c = b[pos];
			}
			p->mark2 = (uint32_t)pos;
			state = S_VALUE;
			/* fall through */
		case S_VALUE:
			pos = scan_class(b, pos, end, K_VALUE);
			if (pos == end)
				break;
			c = b[pos];
			if (c != '\r')
				FAIL(400, c == '\n' ? "bare LF in header section"
						    : "header field value contains a control character");
			pos++;
			NEXT(S_VALUE_LF, value_lf);

		case S_VALUE_LF:
		value_lf: {
			size_t vend = pos - 1;

			if (c != '\n')
				FAIL(400, "bare CR in header section");
			/* Trailing OWS is not part of the value (RFC 9112 5.1);
			 * only the whitespace run is read again. */
			while (vend > p->mark2 && (cls[b[vend - 1]] & K_OWS))
				vend--;
			if (p->field >= 0 &&
			    !on_known_field(p, b, p->mark2, (uint32_t)vend, &f))
				goto fail;
			pos++;
			NEXT(S_FIELD_START, field_start);
		}

		case S_END_LF:
		end_lf:
			if (c != '\n')
				FAIL(400, "bare CR in header section");
			pos++;
			if (!on_head_end(p, &f))
				goto fail;
			p->pos = (uint32_t)pos;
			p->state = S_DONE;
			return (int)pos;

		default:
			FAIL(400, "parser state corrupt");
		}
	}

again:
	/* Every byte up to the limit is valid and the head is not over: it
	 * cannot end within max_head_bytes. Decided without waiting for the
	 * byte past the limit, so a full buffer never stalls. */
	if (pos >= max_head)
		FAIL(431, "request head too large");
	p->pos = (uint32_t)pos;
	p->state = (uint16_t)state;
	return HTTP_PARSE_AGAIN;

fail:
	p->pos = (uint32_t)pos;
	p->state = S_ERROR;
	p->error_status = f.status;
	p->error = f.why;
	return HTTP_PARSE_ERROR;
}

void http_parser_init(struct http_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->field = -1;
}
