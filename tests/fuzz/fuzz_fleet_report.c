/*
 * libFuzzer target for src/fleet/: a report accepted by the ingest
 * validator, through the blob codec, the stored-report JSON and the
 * fleet exposition.
 *
 * Each input is validated (default limits). If accepted, it is encoded
 * into a 64 KiB buffer (skipped if it does not fit), copied to an
 * exact-size heap blob and viewed; the view must hold the same report.
 *
 * JSON (GET /api/metrics/agents/{id}/latest): rendered from the stored
 * snapshot; the whole body must be strict RFC 8259 JSON (checked here,
 * UTF-8 included), its agentId, organizationId, receivedAt and stale
 * must match the snapshot, and its "report" member, validated again,
 * must give the same report: same presence bits, numbers bit-identical,
 * strings equal, arrays and labels item by item. Rendering into exactly
 * the bytes it needs gives the same body; one byte less gives 0 and
 * writes nothing past the buffer (exact-size heap copies).
 *
 * Exposition (GET /metrics/fleet): the blob is published under three
 * fixed agents (one with escapes in its id, one whose organization id is
 * not UTF-8) into a store made once (16 agents, 1 worker, 8 MiB), at ages
 * and with stale/ttl/max_series options, groups, an organization and a
 * shard from the input's hash. Rendered in pieces of FLEET_EXPO_MIN_CAP
 * bytes, each into an exact-size heap buffer (a quiescent state between
 * pieces), and again with a large cap: both must be identical; every
 * piece ends a line, every call stays within FLEET_EXPO_STEP_BUDGET
 * visits, and a call returns 0 bytes only before the end if it used the
 * whole budget; text 0.0.4 and OpenMetrics (which ends with "# EOF\n").
 * The text must be UTF-8, every line a HELP/TYPE of a new family or a
 * sample of the current one with well-formed labels and a number, lines
 * within FLEET_EXPO_LINE_MAX, no two samples with the same name and
 * labels, exactly the families of the groups asked for, and the counts
 * agree with the cursor: series written, series dropped by reason, one
 * fleet_agent_stale sample per selected live agent with a valid id. A
 * capped exposition must be the uncapped one with the samples past the
 * cap taken out and counted as max_series.
 *
 * The include list parser (?include=) reads the input's first bytes, from
 * an exact-size copy: accepted, it gives host and known groups only;
 * refused, it names a comma-free part of the input.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringside/fleet_expo.h"
#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/ingest.h"

#include "fuzz_util.h"

#define ENC_CAP (64u * 1024u)
#define JSON_CAP (4u * 1024u * 1024u)

static struct ingest_parser pa, pb;
static struct ingest_report ra, rb;
static _Alignas(65536) unsigned char enc[ENC_CAP];
static char json[JSON_CAP];
static struct fleet_store store;
static bool store_ready;


/* ---- A report, wherever it lives: the validator's struct or a blob view ---- */

struct rv {
	const char *root;
	const char *pool[INGEST_TYPE_COUNT];
	uint32_t npool[INGEST_TYPE_COUNT];
	const struct ingest_label *label;
	uint32_t nlabel;
	const char *arena;
	uint32_t arena_len;
};

static size_t item_size(unsigned t)
{
	switch (t) {
	case INGEST_TYPE_service: return sizeof(struct ingest_service);
	case INGEST_TYPE_health_check: return sizeof(struct ingest_health_check);
	case INGEST_TYPE_tcp_check: return sizeof(struct ingest_tcp_check);
	case INGEST_TYPE_cert_check: return sizeof(struct ingest_cert_check);
	case INGEST_TYPE_container: return sizeof(struct ingest_container);
	case INGEST_TYPE_port: return sizeof(struct ingest_port);
	case INGEST_TYPE_mount: return sizeof(struct ingest_mount);
	case INGEST_TYPE_process: return sizeof(struct ingest_process);
	default: CHECK(0); return 0;
	}
}

#define RV_POOLS(X)                                                        \
	X(service) X(health_check) X(tcp_check) X(cert_check)              \
	X(container) X(port) X(mount) X(process)

static void rv_of_report(struct rv *x, const struct ingest_report *r)
{
	memset(x, 0, sizeof *x);
	x->root = (const char *)r;
#define SET_(t) x->pool[INGEST_TYPE_##t] = (const char *)r->t; x->npool[INGEST_TYPE_##t] = r->n_##t;
	RV_POOLS(SET_)
#undef SET_
	x->label = r->label;
	x->nlabel = r->n_label;
	x->arena = r->arena;
	x->arena_len = r->arena_len;
}

static void rv_of_view(struct rv *x, const struct fleet_report *v)
{
	const struct ingest_report_head *h = v->head;

	memset(x, 0, sizeof *x);
	x->root = (const char *)h;
#define SET_(t) x->pool[INGEST_TYPE_##t] = (const char *)v->t; x->npool[INGEST_TYPE_##t] = h->n_##t;
	RV_POOLS(SET_)
#undef SET_
	x->label = v->label;
	x->nlabel = h->n_label;
	x->arena = v->arena;
	x->arena_len = h->arena_len;
}

static bool str_same(const struct rv *A, struct ingest_str a, const struct rv *B, struct ingest_str b)
{
	CHECK(a.off <= A->arena_len && a.len <= A->arena_len - a.off);
	CHECK(b.off <= B->arena_len && b.len <= B->arena_len - b.off);
	return a.len == b.len && memcmp(A->arena + a.off, B->arena + b.off, a.len) == 0;
}

static void range_in(struct ingest_range g, uint32_t n)
{
	CHECK(g.first <= n && g.count <= n - g.first);
}

/* Objects of type t at oa (in A) and ob (in B) hold the same document. */
static void same_obj(const struct rv *A, const struct rv *B, unsigned t, const char *oa,
		     const char *ob)
{
	unsigned n;
	const struct ingest_field *f = ingest_schema_fields(t, &n);
	uint32_t ha, hb;

	memcpy(&ha, oa, sizeof ha);
	memcpy(&hb, ob, sizeof hb);
	CHECK(ha == hb);
	CHECK(n < 32 && (ha >> n) == 0);
	for (unsigned i = 0; i < n; i++, f++) {
		const char *ma = oa + f->off, *mb = ob + f->off;

		if (!((ha >> i) & 1u))
			continue;
		switch (f->kind) {
		case INGEST_KIND_NUM:
			if (memcmp(ma, mb, sizeof(double)) != 0) {
				double da, db;

				memcpy(&da, ma, sizeof da);
				memcpy(&db, mb, sizeof db);
				fprintf(stderr, "%s: %a (%.17g) became %a (%.17g)\n", f->name, da, da,
					db, db);
				CHECK(0);
			}
			break;
		case INGEST_KIND_BOOL:
			CHECK(*(const bool *)ma == *(const bool *)mb);
			break;
		case INGEST_KIND_STR:
		case INGEST_KIND_DATE: {
			struct ingest_str sa, sb;

			memcpy(&sa, ma, sizeof sa);
			memcpy(&sb, mb, sizeof sb);
			CHECK(str_same(A, sa, B, sb));
			break;
		}
		case INGEST_KIND_ARR: {
			struct ingest_range ga, gb;
			size_t sz = item_size(f->child);

			memcpy(&ga, ma, sizeof ga);
			memcpy(&gb, mb, sizeof gb);
			CHECK(ga.count == gb.count);
			range_in(ga, A->npool[f->child]);
			range_in(gb, B->npool[f->child]);
			for (uint32_t k = 0; k < ga.count; k++)
				same_obj(A, B, f->child, A->pool[f->child] + (ga.first + k) * sz,
					 B->pool[f->child] + (gb.first + k) * sz);
			break;
		}
		case INGEST_KIND_OBJ:
			same_obj(A, B, f->child, ma, mb);
			break;
		case INGEST_KIND_LABELS: {
			struct ingest_range ga, gb;

			memcpy(&ga, ma, sizeof ga);
			memcpy(&gb, mb, sizeof gb);
			CHECK(ga.count == gb.count);
			range_in(ga, A->nlabel);
			range_in(gb, B->nlabel);
			for (uint32_t k = 0; k < ga.count; k++) {
				const struct ingest_label *la = &A->label[ga.first + k];
				const struct ingest_label *lb = &B->label[gb.first + k];

				CHECK(str_same(A, la->key, B, lb->key));
				CHECK(str_same(A, la->value, B, lb->value));
			}
			break;
		}
		default:
			CHECK(0);
		}
	}
}

static void same_report(const struct rv *A, const struct rv *B)
{
	same_obj(A, B, INGEST_TYPE_report, A->root, B->root);
}

/* ---- Strict RFC 8259 JSON ---- */

struct jp {
	const unsigned char *s;
	size_t n, i;
	unsigned depth;
};

static void ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
			       p->s[p->i] == '\r'))
		p->i++;
}

static bool lit(struct jp *p, const char *w)
{
	size_t l = strlen(w);

	if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0)
		return false;
	p->i += l;
	return true;
}

static int hex4(struct jp *p)
{
	int v = 0;

	if (p->n - p->i < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		unsigned char c = p->s[p->i++];

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
	return v;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Length of the UTF-8 sequence at s[0, n), or 0 if it is not one
 * (overlong, surrogate, above U+10FFFF, cut short). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0], len, cp, min;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (unsigned k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static bool utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(s + i, n - i);

		if (!l)
			return false;
		i += l;
	}
	return true;
}

/* A string at p->i (its opening quote); decoded into out[0, cap) if out,
 * *olen bytes (NULL out: only checked). */
static bool jstring(struct jp *p, char *out, size_t cap, size_t *olen)
{
	size_t o = 0;

	if (p->i >= p->n || p->s[p->i] != '"')
		return false;
	p->i++;
	for (;;) {
		char tmp[4];
		size_t tl;
		unsigned char c;

		if (p->i >= p->n)
			return false;
		c = p->s[p->i];
		if (c == '"') {
			p->i++;
			break;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (++p->i >= p->n)
				return false;
			c = p->s[p->i++];
			switch (c) {
			case '"': case '\\': case '/': tmp[0] = (char)c; tl = 1; break;
			case 'b': tmp[0] = '\b'; tl = 1; break;
			case 'f': tmp[0] = '\f'; tl = 1; break;
			case 'n': tmp[0] = '\n'; tl = 1; break;
			case 'r': tmp[0] = '\r'; tl = 1; break;
			case 't': tmp[0] = '\t'; tl = 1; break;
			case 'u': {
				int u = hex4(p);

				if (u < 0 || (u >= 0xdc00 && u <= 0xdfff))
					return false;
				if (u >= 0xd800 && u <= 0xdbff) {
					int lo;

					if (!lit(p, "\\u") || (lo = hex4(p)) < 0xdc00 || lo > 0xdfff)
						return false;
					u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
				}
				tl = put_utf8(tmp, (uint32_t)u);
				break;
			}
			default:
				return false;
			}
		} else {
			tl = utf8_seq(p->s + p->i, p->n - p->i);
			if (!tl)
				return false;
			memcpy(tmp, p->s + p->i, tl);
			p->i += tl;
		}
		if (out) {
			if (cap - o < tl)
				return false;
			memcpy(out + o, tmp, tl);
		}
		o += tl;
	}
	if (olen)
		*olen = o;
	return true;
}

static bool digit(struct jp *p)
{
	return p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9';
}

static bool jnumber(struct jp *p)
{
	if (p->i < p->n && p->s[p->i] == '-')
		p->i++;
	if (!digit(p))
		return false;
	if (p->s[p->i] == '0')
		p->i++;
	else
		while (digit(p))
			p->i++;
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (!digit(p))
			return false;
		while (digit(p))
			p->i++;
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (!digit(p))
			return false;
		while (digit(p))
			p->i++;
	}
	return true;
}

static bool jvalue(struct jp *p)
{
	ws(p);
	if (p->i >= p->n)
		return false;
	switch (p->s[p->i]) {
	case '{':
	case '[': {
		bool obj = p->s[p->i] == '{';
		char close = obj ? '}' : ']';

		if (++p->depth > 64)
			return false;
		p->i++;
		ws(p);
		if (p->i < p->n && p->s[p->i] == close) {
			p->i++;
			p->depth--;
			return true;
		}
		for (;;) {
			if (obj) {
				ws(p);
				if (!jstring(p, NULL, 0, NULL))
					return false;
				ws(p);
				if (!lit(p, ":"))
					return false;
			}
			if (!jvalue(p))
				return false;
			ws(p);
			if (lit(p, ","))
				continue;
			if (p->i < p->n && p->s[p->i] == close) {
				p->i++;
				p->depth--;
				return true;
			}
			return false;
		}
	}
	case '"':
		return jstring(p, NULL, 0, NULL);
	case 't':
		return lit(p, "true");
	case 'f':
		return lit(p, "false");
	case 'n':
		return lit(p, "null");
	default:
		return jnumber(p);
	}
}

/* ---- The JSON of a stored report ---- */

struct member {
	const char *key;
	size_t at, len; /* the value's bytes */
};

static void check_time(const char *s, size_t n, int64_t ms)
{
	struct tm tm = { 0 };
	int v[7];
	static const char pat[] = "\"dddd-dd-ddTdd:dd:dd.dddZ\"";
	int64_t sec;

	CHECK(n == sizeof pat - 1);
	for (size_t k = 0; k < n; k++)
		CHECK(pat[k] == 'd' ? (s[k] >= '0' && s[k] <= '9') : s[k] == pat[k]);
	v[0] = (s[1] - '0') * 1000 + (s[2] - '0') * 100 + (s[3] - '0') * 10 + (s[4] - '0');
	for (int k = 1; k < 6; k++)
		v[k] = (s[3 + 3 * k] - '0') * 10 + (s[4 + 3 * k] - '0');
	v[6] = (s[21] - '0') * 100 + (s[22] - '0') * 10 + (s[23] - '0');
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	CHECK(v[1] >= 1 && v[1] <= 12 && v[2] >= 1 && v[2] <= 31 && v[3] < 24 && v[4] < 60 &&
	      v[5] < 60);
	sec = (int64_t)timegm(&tm);
	CHECK(tm.tm_mday == v[2]); /* not normalized: a real date */
	CHECK(sec * 1000 + v[6] == ms);
}

static void check_json(const char *out, size_t len, const struct fleet_snapshot *sn,
		       const struct rv *orig, int64_t now_ms, int64_t stale_ms)
{
	static const char *const keys[] = {"agentId", "organizationId", "receivedAt", "stale",
					   "report"};
	struct member m[5];
	struct jp p = {(const unsigned char *)out, len, 0, 0};
	char id[4 * FLEET_ID_MAX + 8];
	size_t idl;
	struct rv B;
	int rc;

	/* The whole body, strictly. */
	CHECK(jvalue(&p));
	ws(&p);
	CHECK(p.i == len);

	/* Its members, in order. */
	p.i = 0;
	CHECK(lit(&p, "{"));
	for (int k = 0; k < 5; k++) {
		char key[32];
		size_t kl;

		if (k)
			CHECK(lit(&p, ","));
		CHECK(jstring(&p, key, sizeof key, &kl));
		CHECK(kl == strlen(keys[k]) && memcmp(key, keys[k], kl) == 0);
		CHECK(lit(&p, ":"));
		m[k].key = keys[k];
		m[k].at = p.i;
		CHECK(jvalue(&p));
		m[k].len = p.i - m[k].at;
	}
	CHECK(lit(&p, "}") && p.i == len);

	p.i = m[0].at;
	CHECK(jstring(&p, id, sizeof id, &idl));
	CHECK(idl == sn->agent_len && memcmp(id, sn->agent, idl) == 0);
	p.i = m[1].at;
	CHECK(jstring(&p, id, sizeof id, &idl));
	CHECK(idl == sn->org_len && memcmp(id, sn->org, idl) == 0);
	check_time(out + m[2].at, m[2].len, sn->received_ms);
	if (now_ms - sn->received_ms >= stale_ms)
		CHECK(m[3].len == 4 && memcmp(out + m[3].at, "true", 4) == 0);
	else
		CHECK(m[3].len == 5 && memcmp(out + m[3].at, "false", 5) == 0);

	/* The report as sent: validated again (an exact-size copy), the same. */
	{
		char *doc = fuzz_copy((const uint8_t *)out + m[4].at, m[4].len);

		ingest_parser_init(&pb, &rb, NULL);
		rc = ingest_parser_feed(&pb, doc, m[4].len);
		if (!rc)
			rc = ingest_parser_finish(&pb);
		free(doc);
	}
	if (rc) {
		fprintf(stderr, "report JSON rejected: %u %s: %s\n", pb.err.status, pb.err.path,
			pb.err.message);
		CHECK(0);
	}
	rv_of_report(&B, &rb);
	same_report(orig, &B);
}

static void json_part(const struct fleet_snapshot *sn, const struct fleet_report *v,
		      const struct rv *orig, int64_t now_ms, int64_t stale_ms, uint64_t h)
{
	size_t len = fleet_report_json(json, sizeof json, sn, v, now_ms, stale_ms);
	char *b;

	CHECK(len > 0 && len < sizeof json);
	check_json(json, len, sn, orig, now_ms, stale_ms);

	/* Exactly the bytes it needs and its NUL: the same body, terminated. */
	b = malloc(len + 1);
	CHECK(b);
	CHECK(fleet_report_json(b, len + 1, sn, v, now_ms, stale_ms) == len);
	CHECK(memcmp(b, json, len) == 0 && b[len] == '\0');
	free(b);
	/* Less (no room for the NUL, or fewer bytes): 0, nothing written past
	 * the buffer. */
	{
		size_t cap = (h & 1) ? len : (size_t)(h >> 1) % (len + 1);

		b = malloc(cap ? cap : 1);
		CHECK(b);
		CHECK(fleet_report_json(b, cap, sn, v, now_ms, stale_ms) == 0);
		free(b);
	}
}

/* ---- The fleet exposition ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
	if (b->cap - b->len >= more)
		return;
	while (b->cap - b->len < more)
		b->cap = b->cap ? 2 * b->cap : 1 << 20;
	b->p = realloc(b->p, b->cap);
	CHECK(b->p);
}

static struct sbuf pieces, whole;

struct agent_spec {
	const char *org, *agent;
	size_t org_len, agent_len;
	bool valid_id;
};

#define IDS_(o, a, ok) {o, a, sizeof(o) - 1, sizeof(a) - 1, ok}
static const struct agent_spec agents[] = {
	IDS_("org-fuzz", "agent-1", true),
	IDS_("org-fuzz", "agent \"2\"\\\n\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80", true),
	IDS_("org-\xff", "agent-3", false),
};
#define NAGENTS (sizeof agents / sizeof agents[0])

static const char *const reasons[FLEET_EXPO_DROPS] = {"label_too_long", "max_series",
						      "invalid_id"};

/* A label value, escaped: ends at the closing quote. */
static size_t label_value(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] != '"') {
		CHECK(s[i] != '\n');
		if (s[i] == '\\') {
			CHECK(i + 1 < n && (s[i + 1] == '\\' || s[i + 1] == '"' || s[i + 1] == 'n'));
			i++;
		}
		i++;
	}
	CHECK(i < n);
	return i;
}

static bool is_name_char(char c, bool first)
{
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first && c >= '0' && c <= '9');
}

/* Where the value of a sample line of ll bytes starts: after its last
 * space (label values may hold spaces, values never do). */
static const char *val_at(const char *l, size_t ll)
{
	const char *v = l + ll;

	while (v > l && v[-1] != ' ')
		v--;
	CHECK(v > l);
	return v - 1; /* the space: the key ends before it */
}

/* The exact decimal of ms / 1000, as expo_format_fixed writes it. */
static size_t ms_decimal(char *o, int64_t ms)
{
	uint64_t mag = ms < 0 ? 0 - (uint64_t)ms : (uint64_t)ms;
	int n = snprintf(o, 40, "%s%llu", ms < 0 ? "-" : "", (unsigned long long)(mag / 1000));

	if (mag % 1000) {
		n += snprintf(o + n, 40 - (size_t)n, ".%03u", (unsigned)(mag % 1000));
		while (o[n - 1] == '0')
			n--;
	}
	return (size_t)n;
}

struct expo_expect {
	const struct fleet_expo_cursor *c;
	unsigned live;        /* agents with samples of fleet_agent_stale */
	unsigned stale;       /* of which stale */
	int64_t received[NAGENTS];
	bool om;
};

/* The group of a family, by its name as fleet_expo.h lists them. */
static uint32_t family_group(const char *fam)
{
	static const struct {
		const char *prefix;
		uint32_t group;
	} map[] = {
		{"fleet_agent_", FLEET_GROUP_HOST},
		{"fleet_host_", FLEET_GROUP_HOST},
		{"fleet_series_dropped", FLEET_GROUP_HOST},
		{"fleet_service_", FLEET_GROUP_SERVICES},
		{"fleet_health_check_", FLEET_GROUP_CHECKS},
		{"fleet_tcp_check_", FLEET_GROUP_CHECKS},
		{"fleet_cert_check_", FLEET_GROUP_CHECKS},
		{"fleet_container_", FLEET_GROUP_CONTAINERS},
		{"fleet_process_", FLEET_GROUP_PROCESSES},
	};

	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (!strncmp(fam, map[i].prefix, strlen(map[i].prefix)))
			return map[i].group;
	CHECK(0);
	return 0;
}

/* Families per group: 21 host (and fleet_series_dropped), 9 services,
 * 9 checks, 2 containers, 3 processes. */
static unsigned families_of(uint32_t groups)
{
	return 22 + (groups & FLEET_GROUP_SERVICES ? 9 : 0) + (groups & FLEET_GROUP_CHECKS ? 9 : 0) +
	       (groups & FLEET_GROUP_CONTAINERS ? 2 : 0) + (groups & FLEET_GROUP_PROCESSES ? 3 : 0);
}

/* A sample's name and labels: the line up to the space before its value. */
struct series_key {
	const char *p;
	size_t n;
};

static struct series_key *keys;
static size_t nkeys, keys_cap;

static int key_cmp(const void *a, const void *b)
{
	const struct series_key *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void check_expo(const char *t, size_t n, const struct expo_expect *x)
{
	char fam[128] = "";
	char seen[64][64];
	unsigned nseen = 0, nstale = 0, nstale1 = 0, ndropped = 0, nreceived = 0;
	uint64_t series = 0;
	bool end = false;

	CHECK(utf8_ok((const unsigned char *)t, n));
	CHECK(n > 0 && t[n - 1] == '\n');
	nkeys = 0;
	for (size_t i = 0; i < n;) {
		const char *l = t + i, *nl = memchr(l, '\n', n - i);
		size_t ll = (size_t)(nl - l);

		CHECK(nl);
		CHECK(ll + 1 <= FLEET_EXPO_LINE_MAX);
		CHECK(!end); /* nothing after # EOF */
		i += ll + 1;
		if (ll >= 7 && memcmp(l, "# HELP ", 7) == 0) {
			size_t k = 7;

			while (k < ll && l[k] != ' ')
				k++;
			CHECK(k - 7 > 0 && k - 7 < sizeof fam && k < ll);
			memcpy(fam, l + 7, k - 7);
			fam[k - 7] = '\0';
			for (unsigned s = 0; s < nseen; s++)
				CHECK(strcmp(seen[s], fam) != 0); /* one HELP per family */
			CHECK(nseen < 64 && strlen(fam) < 64);
			strcpy(seen[nseen++], fam);
			CHECK(family_group(fam) & x->c->o.groups);
			/* TYPE follows at once. */
			nl = memchr(t + i, '\n', n - i);
			CHECK(nl);
			ll = (size_t)(nl - (t + i));
			{
				char want[160];
				int w = snprintf(want, sizeof want, "# TYPE %s gauge", fam);

				CHECK((size_t)w == ll && memcmp(t + i, want, ll) == 0);
			}
			i += ll + 1;
			continue;
		}
		if (ll == 5 && memcmp(l, "# EOF", 5) == 0) {
			CHECK(x->om);
			end = true;
			continue;
		}
		/* A sample of the current family: name{labels} value */
		{
			size_t k = 0, fl = strlen(fam);
			const char *lab0;
			char val[64];
			char *endp;
			double d;

			CHECK(l[0] != '#' && fl > 0);
			CHECK(ll > fl && memcmp(l, fam, fl) == 0 && l[fl] == '{');
			k = fl + 1;
			lab0 = l + k;
			for (bool first = true; l[k] != '}'; first = false) {
				size_t s0;

				if (!first) {
					CHECK(l[k] == ',');
					k++;
				}
				s0 = k;
				while (k < ll && is_name_char(l[k], k == s0))
					k++;
				CHECK(k > s0 && k + 1 < ll && l[k] == '=' && l[k + 1] == '"');
				k += 2;
				k += label_value(l + k, ll - k) + 1;
				CHECK(k < ll);
			}
			k++;
			CHECK(k < ll && l[k] == ' ');
			k++;
			CHECK(ll - k > 0 && ll - k < sizeof val);
			memcpy(val, l + k, ll - k);
			val[ll - k] = '\0';
			if (strcmp(val, "+Inf") && strcmp(val, "-Inf") && strcmp(val, "NaN")) {
				CHECK(val[0] != ' ' && val[0] != '+');
				d = strtod(val, &endp);
				CHECK(*endp == '\0');
				(void)d;
			}
			if (strcmp(fam, "fleet_series_dropped") == 0) {
				char want[64];
				int w;

				CHECK(ndropped < FLEET_EXPO_DROPS);
				w = snprintf(want, sizeof want, "reason=\"%s\"} %llu", reasons[ndropped],
					     (unsigned long long)x->c->dropped[ndropped]);
				CHECK((size_t)w == (size_t)(l + ll - lab0) &&
				      memcmp(lab0, want, (size_t)w) == 0);
				ndropped++;
				continue;
			}
			CHECK(ndropped == 0);
			series++;
			if (nkeys == keys_cap) {
				keys_cap = keys_cap ? 2 * keys_cap : 4096;
				keys = realloc(keys, keys_cap * sizeof keys[0]);
				CHECK(keys);
			}
			keys[nkeys++] = (struct series_key){l, (size_t)(val_at(l, ll) - l)};
			CHECK(memcmp(lab0, "organization_id=\"", 17) == 0);
			if (strcmp(fam, "fleet_agent_stale") == 0) {
				nstale++;
				CHECK(strcmp(val, "0") == 0 || strcmp(val, "1") == 0);
				nstale1 += val[0] == '1';
			}
			if (strcmp(fam, "fleet_agent_last_report_timestamp_seconds") == 0) {
				char want[40];
				size_t w = ms_decimal(want, x->received[0]);
				bool any = false;

				/* One of the agents' receipt times, exactly. */
				for (unsigned a = 0; a < NAGENTS; a++) {
					w = ms_decimal(want, x->received[a]);
					any |= strlen(val) == w && memcmp(val, want, w) == 0;
				}
				CHECK(any);
				nreceived++;
			}
		}
	}
	CHECK(end == x->om);
	CHECK(ndropped == FLEET_EXPO_DROPS);
	CHECK(series == x->c->series);
	CHECK(nseen == families_of(x->c->o.groups));
	/* Unique series: Prometheus drops a repeated one. */
	if (nkeys) /* keys is NULL before the first sample */
		qsort(keys, nkeys, sizeof keys[0], key_cmp);
	for (size_t k = 1; k < nkeys; k++)
		CHECK(key_cmp(&keys[k - 1], &keys[k]) != 0);
	if (x->c->o.max_series) {
		CHECK(series <= x->c->o.max_series);
	} else {
		CHECK(x->c->dropped[FLEET_EXPO_DROP_MAX_SERIES] == 0);
		CHECK(nstale == x->live && nstale1 == x->stale && nreceived == x->live);
	}
}

static struct sbuf uncapped;

/* The whole exposition o with a large cap into b. */
static void render_whole(const struct fleet_expo_options *o, struct fleet_expo_cursor *c,
			 struct sbuf *b)
{
	const size_t cap = 4u << 20;
	unsigned calls = 0;

	fleet_expo_begin(c, o);
	b->len = 0;
	while (!c->done) {
		size_t n;

		sb_reserve(b, cap);
		n = fleet_expo_next(c, &store, 0, b->p + b->len, cap);
		CHECK(n <= cap && c->visits <= FLEET_EXPO_STEP_BUDGET);
		CHECK(n > 0 || c->done || c->visits == FLEET_EXPO_STEP_BUDGET);
		CHECK(n == 0 || b->p[b->len + n - 1] == '\n');
		b->len += n;
		CHECK(++calls < 100000);
	}
}

/* The next line of t (n bytes) from *i; its length, newline included. */
static size_t next_line(const char *t, size_t n, size_t *i, const char **l)
{
	const char *nl;

	CHECK(*i < n);
	*l = t + *i;
	nl = memchr(*l, '\n', n - *i);
	CHECK(nl);
	*i += (size_t)(nl - *l) + 1;
	return (size_t)(nl - *l) + 1;
}

/* The capped exposition in `whole` (cursor c) is the uncapped one with
 * the samples past the first max_series left out, counted as max_series;
 * every other line the same. */
static void check_truncation(const struct fleet_expo_options *o, const struct fleet_expo_cursor *c)
{
	static const char max_line[] = "fleet_series_dropped{reason=\"max_series\"} ";
	struct fleet_expo_options u = *o;
	struct fleet_expo_cursor cu;
	size_t i = 0, j = 0;
	uint64_t samples = 0;

	u.max_series = 0;
	render_whole(&u, &cu, &uncapped);
	CHECK(c->series == (cu.series < o->max_series ? cu.series : o->max_series));
	CHECK(c->dropped[FLEET_EXPO_DROP_MAX_SERIES] == cu.series - c->series);
	CHECK(c->dropped[FLEET_EXPO_DROP_LABEL_TOO_LONG] == cu.dropped[FLEET_EXPO_DROP_LABEL_TOO_LONG]);
	CHECK(c->dropped[FLEET_EXPO_DROP_INVALID_ID] == cu.dropped[FLEET_EXPO_DROP_INVALID_ID]);
	while (i < uncapped.len) {
		const char *a, *b;
		size_t la = next_line(uncapped.p, uncapped.len, &i, &a), lb;
		bool sample = a[0] != '#' && strncmp(a, "fleet_series_dropped", 20) != 0;

		if (sample && samples++ >= o->max_series)
			continue;
		lb = next_line(whole.p, whole.len, &j, &b);
		if (la > sizeof max_line - 1 && !memcmp(a, max_line, sizeof max_line - 1)) {
			char want[64];
			int w = snprintf(want, sizeof want, "%s%llu\n", max_line,
					 (unsigned long long)c->dropped[FLEET_EXPO_DROP_MAX_SERIES]);

			CHECK((size_t)w == lb && !memcmp(b, want, lb));
			continue;
		}
		CHECK(la == lb && !memcmp(a, b, la));
	}
	CHECK(j == whole.len);
}

static void expo_part(const struct fleet_expo_options *o, const struct expo_expect *base)
{
	struct fleet_expo_cursor c1, c2;
	struct expo_expect x = *base;
	unsigned calls = 0;

	/* In pieces of the smallest cap, each an exact-size heap buffer. */
	fleet_expo_begin(&c1, o);
	pieces.len = 0;
	while (!c1.done) {
		char *b = malloc(FLEET_EXPO_MIN_CAP);
		size_t n;

		CHECK(b);
		n = fleet_expo_next(&c1, &store, 0, b, FLEET_EXPO_MIN_CAP);
		CHECK(n <= FLEET_EXPO_MIN_CAP);
		CHECK(c1.visits <= FLEET_EXPO_STEP_BUDGET);
		if (n == 0) { /* before the end only once the budget is spent */
			free(b);
			CHECK(c1.done || c1.visits == FLEET_EXPO_STEP_BUDGET);
			CHECK(++calls < 100000);
			continue;
		}
		CHECK(b[n - 1] == '\n');
		sb_reserve(&pieces, n);
		memcpy(pieces.p + pieces.len, b, n);
		pieces.len += n;
		free(b);
		CHECK(++calls < 100000);
		fleet_quiescent(&store, 0); /* no snapshot is held between pieces */
	}
	{
		char b[FLEET_EXPO_MIN_CAP];

		CHECK(fleet_expo_next(&c1, &store, 0, b, sizeof b) == 0);
	}

	/* With a large cap. */
	render_whole(o, &c2, &whole);
	CHECK(c2.done);
	CHECK(pieces.len == whole.len && memcmp(pieces.p, whole.p, whole.len) == 0);
	CHECK(c1.series == c2.series && memcmp(c1.dropped, c2.dropped, sizeof c1.dropped) == 0);
	if (o->format == EXPO_OPENMETRICS_100)
		CHECK(whole.len >= 6 && memcmp(whole.p + whole.len - 6, "# EOF\n", 6) == 0);
	x.c = &c2;
	x.om = o->format == EXPO_OPENMETRICS_100;
	check_expo(whole.p, whole.len, &x);
	if (o->max_series)
		check_truncation(o, &c2);
}

/* ---- The include list (?include=) ---- */

static void include_part(const uint8_t *data, size_t size)
{
	size_t n = size < 64 ? size : 64, bad_len = 0;
	char *s = fuzz_copy(data, n);
	const char *bad = NULL;
	uint32_t g = 0;

	if (fleet_expo_parse_groups(s, n, &g, &bad, &bad_len) == 0) {
		CHECK((g & FLEET_GROUP_HOST) && !(g & ~FLEET_GROUP_ALL));
		CHECK(n > 0 || g == FLEET_GROUP_HOST);
	} else {
		CHECK(bad >= s && bad_len <= n && bad + bad_len <= s + n);
		CHECK(!memchr(bad, ',', bad_len));
		CHECK(bad + bad_len == s + n || bad[bad_len] == ',');
	}
	free(s);
}

/* ---- The target ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	struct rv A, V, S;
	struct fleet_report v, vs;
	size_t need, n;
	unsigned char *blob;
	int rc;

	if (!store_ready) {
		CHECK(fleet_store_init(&store, 16, 1, 8u << 20) == 0);
		store_ready = true;
	}
	include_part(data, size);

	/* Validate (default limits), whole, from an exact-size copy. */
	{
		char *doc = fuzz_copy(data, size);

		ingest_parser_init(&pa, &ra, NULL);
		rc = ingest_parser_feed(&pa, doc, size);
		if (!rc)
			rc = ingest_parser_finish(&pa);
		free(doc);
	}
	if (rc)
		return 0;
	rv_of_report(&A, &ra);

	/* Encode; view an exact-size copy: the same report. */
	need = fleet_report_size(&ra);
	n = fleet_report_encode(&ra, enc, sizeof enc);
	CHECK(n == (need <= sizeof enc ? need : 0));
	if (!n)
		return 0;
	blob = malloc(n);
	CHECK(blob && ((uintptr_t)blob & 7) == 0);
	memcpy(blob, enc, n);
	CHECK(fleet_report_view(&v, blob, n) == 0);
	CHECK(fleet_report_view(&vs, blob, n - 1) == -EINVAL);
	CHECK(fleet_report_view(&vs, blob, n - 8) == -EINVAL);
	rv_of_view(&V, &v);
	CHECK(V.arena_len == ra.arena_len && memcmp(V.arena, ra.arena, ra.arena_len) == 0);
	same_report(&A, &V);

	/* Times and options from the hash. */
	int64_t now_ms = 1763805600123 + (int64_t)((h >> 4) % 1000000000000ull);
	int64_t received[NAGENTS];
	int64_t stale_ms = (h >> 44) & 1 ? 0 : 1 + (int64_t)((h >> 20) % 600000);
	int64_t ttl_ms = (h >> 45) & 1 ? 0 : 1 + (int64_t)((h >> 24) % 1200000);
	uint64_t max_series = ((h >> 46) & 3) == 0 ? 1 + (h >> 48) % 64 : 0;

	if (((h >> 50) & 7) == 0) /* now and then, anywhere in years 0001 .. 9999 */
		now_ms = -62135596800000 + (int64_t)((h >> 3) % 315537897599999ull);
	for (unsigned a = 0; a < NAGENTS; a++) {
		received[a] = now_ms - (int64_t)((h >> (8 * a + 1)) % 1500000);
		if (received[a] < -62135596800000)
			received[a] = -62135596800000;
	}

	/* Publish under the fixed agents (every input replaces all three, so
	 * the store holds this input's blob only). */
	bool published = true;

	for (unsigned a = 0; a < NAGENTS; a++) {
		rc = fleet_publish(&store, 0, agents[a].org, agents[a].org_len, agents[a].agent,
				   agents[a].agent_len, blob, n, received[a]);
		if (n > FLEET_BLOB_MAX) {
			CHECK(rc == -EMSGSIZE);
			published = false;
		} else {
			CHECK(rc == 0);
		}
	}

	/* JSON: from the stored snapshots of the two agents with valid ids
	 * (or, for a blob too big to store, a snapshot made here). */
	if (published) {
		for (unsigned a = 0; a < 2; a++) {
			const struct fleet_snapshot *sn =
				fleet_lookup(&store, 0, agents[a].org, agents[a].org_len,
					     agents[a].agent, agents[a].agent_len);

			CHECK(sn && sn->len == n && memcmp(sn->data, blob, n) == 0);
			CHECK(sn->received_ms == received[a]);
			CHECK(fleet_report_view(&vs, sn->data, sn->len) == 0);
			rv_of_view(&S, &vs);
			same_report(&A, &S);
			json_part(sn, &vs, &A, now_ms, stale_ms ? stale_ms : 300000, h >> (7 * a));
		}
		CHECK(fleet_agent_slots(&store) == NAGENTS && fleet_agent_count(&store) == NAGENTS);
	} else {
		static struct fleet_snapshot sn;

		sn.org = agents[1].org;
		sn.agent = agents[1].agent;
		sn.org_len = (uint8_t)agents[1].org_len;
		sn.agent_len = (uint8_t)agents[1].agent_len;
		sn.received_ms = received[1];
		sn.len = (uint32_t)n;
		json_part(&sn, &v, &A, now_ms, stale_ms ? stale_ms : 300000, h);
	}
	fleet_quiescent(&store, 0);

	/* The exposition, both formats, if the store holds this input. */
	if (published) {
		struct expo_expect x = { 0 };
		struct fleet_expo_options o = {
			.now_ms = now_ms, .stale_ms = stale_ms, .ttl_ms = ttl_ms,
			.max_series = max_series,
		};

		/* A part of the fleet: groups, an organization, a shard (at
		 * times one past the last: nobody). */
		uint64_t h2 = (h ^ (h >> 31)) * 0x9E3779B97F4A7C15ull;
		static const char *const orgs[] = {"org-fuzz", "org-\xff", "org-none"};

		h2 ^= h2 >> 29;
		o.groups = h2 & 1 ? FLEET_GROUP_ALL : (uint32_t)(h2 >> 1) & FLEET_GROUP_ALL;
		if ((h2 >> 8) % 4)
			CHECK(fleet_expo_select_org(&o, orgs[(h2 >> 8) % 4 - 1],
						    strlen(orgs[(h2 >> 8) % 4 - 1])) == 0);
		if ((h2 >> 12) % 3 == 0) {
			o.shards = 1 + (uint32_t)((h2 >> 16) % 4);
			o.shard = (uint32_t)((h2 >> 20) % (o.shards + 1));
		}
		memcpy(x.received, received, sizeof received);
		for (unsigned a = 0; a < NAGENTS; a++) {
			int64_t age = now_ms - received[a];

			if (!agents[a].valid_id || (ttl_ms > 0 && age >= ttl_ms))
				continue;
			if (o.org_len && (o.org_len != agents[a].org_len ||
					  memcmp(o.org, agents[a].org, o.org_len) != 0))
				continue;
			if (o.shards && fleet_agent_shard(agents[a].org, agents[a].org_len, agents[a].agent,
							  agents[a].agent_len, o.shards) != o.shard)
				continue;
			x.live++;
			x.stale += stale_ms > 0 && age >= stale_ms;
		}
		o.format = EXPO_TEXT_004;
		expo_part(&o, &x);
		o.format = EXPO_OPENMETRICS_100;
		expo_part(&o, &x);
	}
	fleet_quiescent(&store, 0);
	free(blob);
	return 0;
}
