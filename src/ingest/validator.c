/*
 * One-pass streaming validator for POST /api/metrics/ingest bodies. The
 * contract is include/ringside/ingest.h; number conversion is number.c,
 * the schema tables schema.c, error paths and messages error.c.
 *
 * Shape (as src/http/parser.c): one function, a state kept in the caller's
 * struct, and a label per state; a call jumps to the label of the saved
 * state and the code then flows from state to state with gotos, so a
 * token costs no dispatch beyond its own first byte. Runs of plain string
 * bytes are eaten 16 at a time (SSE2) or through a 256-entry class table,
 * whitespace through the same table; nothing is called per byte (emit()
 * takes a run; the date check runs per byte, but only for checkedAt).
 *
 * The schema is data (schema.c): one table per object type (name, kind,
 * offset, required), and values are stored through the offsets. The
 * current place in the schema is a small stack of frames (objects and
 * arrays, at most 5 deep); the values of unknown keys are walked with a
 * bit stack (1 = array), bounded by the depth limit, and stored nowhere.
 *
 * Nothing is kept across calls that points into the input: a key split
 * between two calls is decoded into p->key, a split string continues in
 * the arena, a split number continues in p->mant.
 */
#include "ringside/ingest.h"

#include <errno.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ingest_int.h"

/* The sizes written in the header. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct ingest_report) == 878912,
	       "struct ingest_report changed size: update its comment");
_Static_assert(sizeof(void *) != 8 || sizeof(struct ingest_parser) == 1672,
	       "struct ingest_parser changed size: update its comment");

/* ---- Byte classes (RFC 8259) ---- */

enum {
	C_WS = 0x01,    /* ws: SP, HTAB, LF, CR (section 2) */
	C_PLAIN = 0x02, /* a string byte that stands for itself: ASCII 0x20-0x7F but '"' and '\' (section 7) */
};
#define JCLS(c)                                                            \
	(((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' ? C_WS : 0) | \
	 ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\' ? C_PLAIN : 0))
#define JCLS4(c) JCLS(c), JCLS((c) + 1), JCLS((c) + 2), JCLS((c) + 3)
#define JCLS16(c) JCLS4(c), JCLS4((c) + 4), JCLS4((c) + 8), JCLS4((c) + 12)
#define JCLS64(c) JCLS16(c), JCLS16((c) + 16), JCLS16((c) + 32), JCLS16((c) + 48)
static const uint8_t jcls[256] = { JCLS64(0), JCLS64(64), JCLS64(128), JCLS64(192) };

/* The end of the run of C_PLAIN bytes at b[i]; never reads b[len]. */
static inline size_t plain_run(const unsigned char *b, size_t i, size_t len)
{
#ifdef __SSE2__
	const __m128i lo = _mm_set1_epi8(0x20), q = _mm_set1_epi8('"'),
		      bs = _mm_set1_epi8('\\');

	while (len - i >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(b + i));
		/* Signed: bytes >= 0x80 are negative, so below 0x20 too. */
		__m128i bad = _mm_or_si128(_mm_cmplt_epi8(x, lo),
					   _mm_or_si128(_mm_cmpeq_epi8(x, q),
							_mm_cmpeq_epi8(x, bs)));
		unsigned m = (unsigned)_mm_movemask_epi8(bad);

		if (m)
			return i + (unsigned)__builtin_ctz(m);
		i += 16;
	}
#endif
	while (i < len && (jcls[b[i]] & C_PLAIN))
		i++;
	return i;
}

#define SKIP_WS()                                                          \
	do {                                                               \
		while (i < len && (jcls[b[i]] & C_WS))                     \
			i++;                                               \
	} while (0)

/* ---- States ---- */

enum {
	S_START = 0, /* before the root object; a zeroed parser starts here */
	S_VALUE,     /* a value is due (after ':' or an array's ',') */
	S_OBJ_FIRST, /* after '{': a key or '}' */
	S_OBJ_NEXT,  /* after an object's ',': a key */
	S_COLON,     /* after a key */
	S_ARR_FIRST, /* after '[': a value or ']' */
	S_AFTER,     /* after a value: ',' or the container's end */
	S_STR,
	S_NUM,
	S_LIT,
	S_END,       /* the root object closed: whitespace only */
	S_FINISHED,
};

/* What a string is (p->role). */
enum { R_KEY, R_SKEY, R_LKEY, R_VAL, R_LVAL, R_SKIP };

/* p->esc */
enum { E_NONE, E_BS, E_U, E_LBS, E_LU, E_LHEX };

/* p->num_state */
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

/* p->flags */
enum { F_NEG = 1, F_EXPNEG = 2, F_TRUNC = 4, F_STICKY = 8, F_STORE = 16, F_DATE = 32 };

static const char lit_text[3][6] = { "true", "false", "null" };

/* ---- Errors ---- */

static const char H_SYNTAX[] = "The body must be one JSON object (RFC 8259), UTF-8 encoded.";
static const char H_TYPE[] = "Send the value with the type the ingest API gives it; null is not accepted for any field.";
static const char H_REQUIRED[] = "Add the field: this object requires it.";
static const char H_DUP[] = "Send each key once per object.";
static const char H_DATE[] = "Send a UTC time as YYYY-MM-DDTHH:MM[:SS[.fraction]]Z, e.g. 2026-04-15T12:00:00Z.";
static const char H_RANGE[] = "Send a finite number; a double holds magnitudes up to about 1.8e308.";
static const char H_LIMIT[] = "This is a limit of this server (see its --ingest-limits): send fewer items or shorter values.";

static int rc_of(const struct ingest_parser *p)
{
	return p->err.status == 413 ? -E2BIG : -EINVAL;
}

__attribute__((noinline, cold))
static int unexpected(struct ingest_parser *p, unsigned c, const char *where)
{
	if (c >= 0x20 && c < 0x7f)
		return ingest_fail(p, 400, H_SYNTAX, false, NULL,
				   "is not valid JSON: unexpected character '%c'%s", (int)c, where);
	return ingest_fail(p, 400, H_SYNTAX, false, NULL,
			   "is not valid JSON: unexpected byte 0x%02X%s", c, where);
}

__attribute__((noinline, cold))
static int type_error(struct ingest_parser *p)
{
	static const char *const what[] = {
		[K_NUM] = "must be a number",
		[K_BOOL] = "must be a boolean (true or false)",
		[K_STR] = "must be a string",
		[K_DATE] = "must be a string",
		[K_ARR] = "must be an array",
		[K_OBJ] = "must be an object",
		[K_LABELS] = "must be an object of string values",
		[K_ELEM] = "must be an object",
		[K_LABELV] = "must be a string",
	};
	return ingest_fail(p, 400, H_TYPE, false, NULL, "%s", what[p->vkind]);
}

static int too_long(struct ingest_parser *p)
{
	bool key = p->role == R_KEY || p->role == R_SKEY || p->role == R_LKEY;

	if (key)
		return ingest_fail(p, 413, H_LIMIT, false, NULL, "has a key longer than %u bytes",
				   p->slim);
	return ingest_fail(p, 413, H_LIMIT, false, NULL, "is longer than %u bytes", p->slim);
}

static int arena_full(struct ingest_parser *p)
{
	return ingest_fail(p, 413, H_LIMIT, false, NULL,
			   "does not fit: the strings of a report may take at most %u bytes",
			   p->lim.arena_bytes);
}

static int bad_date(struct ingest_parser *p)
{
	return ingest_fail(p, 400, H_DATE, false, NULL,
			   "is not a valid date-time (YYYY-MM-DDTHH:MM[:SS[.frac]]Z)");
}

/* ---- checkedAt: the seed's pattern, one character at a time ----
 *   ^(leap-year-02-29 | YYYY-(31-day months)-(01..31) | (30-day months)-(01..30)
 *    | 02-(01..28)) T ([01]\d|2[0-3]) : [0-5]\d (: [0-5]\d (\.\d+)?)? Z$
 * p->date_pos is the index of the next character; 22 means "after Z". */
enum { D_END = 22 };

static bool is_leap(unsigned y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static inline bool date_step(struct ingest_parser *p, unsigned c)
{
	static const uint8_t mdays[13] = { 0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned d = c - '0', v;

	switch (p->date_pos) {
	case 0: case 1: case 2: case 3:
		if (d > 9)
			return false;
		p->year = (uint16_t)(p->year * 10 + d);
		break;
	case 4: case 7:
		if (c != '-')
			return false;
		break;
	case 5: case 8: case 11: case 14: case 17:
		if (d > 9 || ((p->date_pos == 14 || p->date_pos == 17) && d > 5))
			return false;
		p->dval = (uint8_t)d;
		break;
	case 6:
		v = p->dval * 10u + d;
		if (d > 9 || v < 1 || v > 12)
			return false;
		p->month = (uint8_t)v;
		break;
	case 9:
		v = p->dval * 10u + d;
		if (d > 9 || v < 1 ||
		    v > mdays[p->month] + (unsigned)(p->month == 2 && is_leap(p->year)))
			return false;
		break;
	case 10:
		if (c != 'T')
			return false;
		break;
	case 12:
		if (d > 9 || p->dval * 10u + d > 23)
			return false;
		break;
	case 13:
		if (c != ':')
			return false;
		break;
	case 15: case 18: case 20:
		if (d > 9)
			return false;
		break;
	case 16: case 19:
		if (c == 'Z') {
			p->date_pos = D_END;
			return true;
		}
		if (c != (p->date_pos == 16 ? ':' : '.'))
			return false;
		break;
	case 21:
		if (c == 'Z')
			p->date_pos = D_END;
		return d <= 9 || c == 'Z';
	default:
		return false;
	}
	p->date_pos++;
	return true;
}

/* ---- Strings ---- */

static int emit_overflow(struct ingest_parser *p, const unsigned char *s, size_t room);

/*
 * Appends decoded bytes of the current string wherever its role says. A
 * run that does not fit is cut where the limit falls, so the error is the
 * same however the input was split (the bytes before it are still
 * checked, e.g. against the date-time pattern).
 */
static inline bool to_arena(const struct ingest_parser *p)
{
	return p->role == R_LKEY || p->role == R_VAL || p->role == R_LVAL;
}

/* Bytes the current string may still take. */
static inline size_t emit_room(const struct ingest_parser *p)
{
	size_t room = p->slim - p->slen;

	if (to_arena(p) && room > p->lim.arena_bytes - p->r->arena_len)
		room = p->lim.arena_bytes - p->r->arena_len;
	return room;
}

static inline int emit(struct ingest_parser *p, const unsigned char *s, size_t n)
{
	bool arena = to_arena(p);
	size_t room = emit_room(p);

	if (n > room)
		return emit_overflow(p, s, room);
	if (p->role == R_KEY) {
		memcpy(p->key + p->slen, s, n);
	} else if (arena) {
		struct ingest_report *r = p->r;

		memcpy(r->arena + r->arena_len, s, n);
		r->arena_len += (uint32_t)n;
		if (p->flags & F_DATE) {
			for (size_t j = 0; j < n; j++)
				if (!date_step(p, s[j]))
					return bad_date(p);
		}
	}
	p->slen += (uint32_t)n;
	return 0;
}

__attribute__((noinline, cold))
static int emit_overflow(struct ingest_parser *p, const unsigned char *s, size_t room)
{
	if (room) {
		int rc = emit(p, s, room);

		if (rc)
			return rc;
	}
	if (p->slen >= p->slim)
		return too_long(p);
	return arena_full(p);
}

/* UTF-8 of a code point from a \u escape (never a surrogate). */
static int emit_cp(struct ingest_parser *p, uint32_t cp)
{
	unsigned char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | cp >> 6);
		u[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xE0 | cp >> 12);
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | cp >> 18);
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return emit(p, u, n);
}

static inline int hexval(unsigned c)
{
	if (c - '0' < 10)
		return (int)(c - '0');
	c |= 0x20;
	if (c - 'a' < 6)
		return (int)(c - 'a' + 10);
	return -1;
}

/*
 * Copies a run of n string bytes into the arena. With `wide` the caller
 * has checked that 32 bytes may be read at src and written at dst: short
 * runs (most values) then take two 16-byte moves instead of a call. The
 * bytes written past dst + n are arena space not yet in use.
 */
static inline void copy_run(char *dst, const unsigned char *src, size_t n, bool wide)
{
	if (wide && n <= 32)
		memcpy(dst, src, 32);
	else
		memcpy(dst, src, n);
}

/* ---- Keys, containers ---- */

/* A key of the innermost schema object has been read: s[0, n). */
static inline __attribute__((always_inline)) int on_key(struct ingest_parser *p, const unsigned char *s, size_t n)
{
	struct ingest_frame *fr = &p->f[p->sdepth - 1];
	const struct kslot *f = match_key(fr->type, s, n);
	uint32_t *has = fr->obj;
	unsigned k;

	if (!f) {
		if (s != (const unsigned char *)p->key)
			memcpy(p->key, s, n);
		p->keylen = (uint16_t)n;
		fr->key = KEY_UNKNOWN;
		p->vkind = K_ANY;
		return 0;
	}
	k = f->idx;
	fr->key = (int8_t)k;
	if (*has & (1u << k))
		return ingest_fail(p, 400, H_DUP, false, NULL, "appears twice");
	*has |= 1u << k;
	p->vkind = f->kind;
	p->vtype = f->child;
	p->dst = (char *)fr->obj + f->off;
	return 0;
}

/* A label key has been decoded into the arena at [sstart, +slen). */
static int on_label_key(struct ingest_parser *p)
{
	struct ingest_report *r = p->r;
	struct ingest_frame *fr = &p->f[p->sdepth - 1];
	struct ingest_range *rg = fr->obj;
	const char *k = r->arena + p->sstart;
	struct ingest_label *l;

	for (uint32_t j = rg->first; j < rg->first + rg->count; j++) {
		if (r->label[j].key.len == p->slen &&
		    memcmp(ingest_str_ptr(r, r->label[j].key), k, p->slen) == 0) {
			fr->key = KEY_LABEL;
			fr->n = j;
			return ingest_fail(p, 400, H_DUP, false, NULL, "appears twice");
		}
	}
	fr->n = r->n_label++;
	rg->count++;
	fr->key = KEY_LABEL;
	l = &r->label[fr->n];
	l->key.off = p->sstart;
	l->key.len = p->slen;
	l->value.off = r->arena_len;
	l->value.len = 0;
	p->vkind = K_LABELV;
	p->dst = &l->value;
	return 0;
}

static inline uint32_t lim_word(const struct ingest_parser *p, uint8_t k)
{
	return ((const uint32_t *)(const void *)&p->lim)[k];
}

/* Room for one more item in the top frame (an array, or labels) and in
 * its pool; 413 otherwise. */
static int room_for_item(struct ingest_parser *p, const struct type_info *ti,
			 const struct ingest_range *rg)
{
	uint32_t each = lim_word(p, ti->lim_each);
	uint32_t total = ti->lim_total == LIM_NONE ? ti->cap : lim_word(p, ti->lim_total);
	uint32_t used = *(const uint32_t *)(const void *)((const char *)p->r + ti->count_off);

	if (rg->count >= each)
		return ingest_fail(p, 413, H_LIMIT, true, NULL, "too many items (at most %u)", each);
	if (used >= total)
		return ingest_fail(p, 413, H_LIMIT, true, NULL,
				   "does not fit: a report may hold at most %u %s in all", total,
				   ti->plural);
	return 0;
}

static inline void push(struct ingest_parser *p, void *obj, unsigned type)
{
	struct ingest_frame *fr = &p->f[p->sdepth++];

	fr->obj = obj;
	fr->type = (uint8_t)type;
	fr->key = KEY_NONE;
	fr->n = 0;
	p->in_arr = (type & T_ARRAY) != 0;
}

/* After a pop: is the innermost container an array? */
static inline void pop_update(struct ingest_parser *p)
{
	p->in_arr = p->udepth ? (p->ustack >> (p->udepth - 1)) & 1
			      : p->sdepth && (p->f[p->sdepth - 1].type & T_ARRAY) != 0;
}

static int too_deep(struct ingest_parser *p)
{
	return ingest_fail(p, 413, H_LIMIT, false, NULL, "is nested more than %u levels deep",
			   p->lim.depth);
}

/* ---- Init ---- */

static const struct ingest_limits caps = {
	.services = INGEST_CAP_SERVICES,
	.health_checks = INGEST_CAP_HEALTH_CHECKS,
	.tcp_checks = INGEST_CAP_TCP_CHECKS,
	.cert_checks = INGEST_CAP_CERT_CHECKS,
	.containers = INGEST_CAP_CONTAINERS,
	.processes = INGEST_CAP_PROCESSES,
	.ports_per_container = INGEST_CAP_PORTS_PER_CONTAINER,
	.labels_per_container = INGEST_CAP_LABELS_PER_CONTAINER,
	.mounts_per_container = INGEST_CAP_MOUNTS_PER_CONTAINER,
	.ports = INGEST_CAP_PORTS,
	.labels = INGEST_CAP_LABELS,
	.mounts = INGEST_CAP_MOUNTS,
	.arena_bytes = INGEST_CAP_ARENA,
	.string_bytes = INGEST_CAP_ARENA,
	.key_bytes = INGEST_CAP_KEY,
	.depth = INGEST_CAP_DEPTH,
};

void ingest_parser_init(struct ingest_parser *p, struct ingest_report *r,
			const struct ingest_limits *lim)
{
	const uint32_t *in = (const uint32_t *)(const void *)lim;
	const uint32_t *cap = (const uint32_t *)(const void *)&caps;
	uint32_t *out = (uint32_t *)(void *)&p->lim;

	ingest_schema_init();
	memset(p, 0, offsetof(struct ingest_parser, key));
	p->err.status = 0;
	p->err.path[0] = '\0';
	p->err.message[0] = '\0';
	p->err.hint = NULL;
	p->r = r;
	for (unsigned k = 0; k < sizeof caps / sizeof *cap; k++) {
		uint32_t v = in ? in[k] : 0;
		out[k] = v == 0 ? cap[k] : v < cap[k] ? v : cap[k];
	}
	if (!in || in[LIM(string_bytes)] == 0)
		p->lim.string_bytes = INGEST_DEFAULT_STRING_BYTES;
	if (!in || in[LIM(depth)] == 0)
		p->lim.depth = INGEST_DEFAULT_DEPTH;
	memset(r, 0, offsetof(struct ingest_report, service));
}

const struct ingest_limits *ingest_parser_limits(const struct ingest_parser *p)
{
	return &p->lim;
}

/* ---- The machine ---- */

#define SAVE(s)                                                            \
	do {                                                               \
		p->state = (s);                                            \
		return 0;                                                  \
	} while (0)

#define CHECK(expr)                                                        \
	do {                                                               \
		int rc_ = (expr);                                          \
		if (rc_)                                                   \
			return rc_;                                        \
	} while (0)

int ingest_parser_feed(struct ingest_parser *p, const char *data, size_t len)
{
	const unsigned char *b = (const unsigned char *)data;
	struct ingest_report *r = p->r;
	struct ingest_frame *fr;
	size_t i = 0;
	unsigned c;

	if (p->err.status)
		return rc_of(p);
	if (p->state == S_FINISHED)
		return ingest_fail(p, 400, H_SYNTAX, false, NULL, "has data after the end of the body");
	if (len == 0)
		return 0;

	switch (p->state) {
	case S_START: goto st_start;
	case S_VALUE: goto st_value;
	case S_OBJ_FIRST: goto st_obj_first;
	case S_OBJ_NEXT: goto st_obj_next;
	case S_COLON: goto st_colon;
	case S_ARR_FIRST: goto st_arr_first;
	case S_AFTER: goto st_after;
	case S_STR: goto st_str;
	case S_NUM: goto st_num;
	case S_LIT: goto st_lit;
	default: goto st_end;
	}

st_start:
	SKIP_WS();
	if (i == len)
		SAVE(S_START);
	c = b[i];
	if (c != '{') {
		if (c == '[' || c == '"' || c == '-' || c - '0' < 10 || c == 't' ||
		    c == 'f' || c == 'n')
			return ingest_fail(p, 400, H_SYNTAX, false, NULL, "must be a JSON object");
		return unexpected(p, c, "");
	}
	i++;
	push(p, r, T_report);
	goto st_obj_first;

st_obj_first:
	SKIP_WS();
	if (i == len)
		SAVE(S_OBJ_FIRST);
	c = b[i];
	if (c == '}') {
		i++;
		goto close_obj;
	}
	if (c != '"')
		return unexpected(p, c, "");
	goto key;

st_obj_next:
	SKIP_WS();
	if (i == len)
		SAVE(S_OBJ_NEXT);
	if (b[i] != '"')
		return unexpected(p, b[i], "");

key: /* b[i] == '"' */
	i++;
	fr = &p->f[p->sdepth - 1];
	if (!p->udepth && fr->type != T_labels) {
		/* The usual case: the whole key is here, with no escape. */
		size_t j = plain_run(b, i, len);

		if (j < len && b[j] == '"') {
			if (j - i > p->lim.key_bytes) {
				p->role = R_KEY;
				p->slim = p->lim.key_bytes;
				return too_long(p);
			}
			CHECK(on_key(p, b + i, j - i));
			i = j + 1;
			/* The usual ": " */
			if (len - i >= 2 && b[i] == ':') {
				i += 1 + (b[i + 1] == ' ');
				goto st_value;
			}
			goto st_colon;
		}
	}
	p->slen = 0;
	p->esc = E_NONE;
	p->u8_need = 0;
	p->flags = 0;
	p->slim = p->lim.key_bytes;
	if (p->udepth) {
		p->role = R_SKEY;
	} else if (fr->type == T_labels) {
		CHECK(room_for_item(p, &ingest_types[T_labels], fr->obj));
		p->role = R_LKEY;
		p->sstart = r->arena_len;
	} else {
		p->role = R_KEY;
	}
	goto st_str;

st_colon:
	SKIP_WS();
	if (i == len)
		SAVE(S_COLON);
	if (b[i] != ':')
		return unexpected(p, b[i], "");
	i++;
	goto st_value;

st_arr_first:
	SKIP_WS();
	if (i == len)
		SAVE(S_ARR_FIRST);
	if (b[i] == ']') {
		i++;
		goto close_arr;
	}
	goto item;

item: /* a value of the current array is due */
	if (p->udepth) {
		p->vkind = K_ANY;
	} else {
		fr = &p->f[p->sdepth - 1];
		fr->n++;
		p->vkind = K_ELEM;
		p->vtype = fr->type & ~T_ARRAY;
	}
	goto st_value;

st_value:
	SKIP_WS();
	if (i == len)
		SAVE(S_VALUE);
	c = b[i];
	switch (c) {
	case '"':
		i++;
		if (p->vkind == K_STR) {
			/* The usual case: the whole string is here, plain ASCII. */
			size_t j = plain_run(b, i, len), n = j - i;

			if (j < len && b[j] == '"' && n <= p->lim.string_bytes &&
			    n <= p->lim.arena_bytes - r->arena_len) {
				struct ingest_str *s = p->dst;

				copy_run(r->arena + r->arena_len, b + i, n,
					 len - i >= 32 && INGEST_CAP_ARENA - r->arena_len >= 32);
				s->off = r->arena_len;
				s->len = (uint32_t)n;
				r->arena_len += (uint32_t)n;
				i = j + 1;
				goto st_after;
			}
		}
		p->slen = 0;
		p->esc = E_NONE;
		p->u8_need = 0;
		p->flags = 0;
		p->slim = p->lim.string_bytes;
		p->sstart = r->arena_len;
		switch (p->vkind) {
		case K_DATE:
			p->flags = F_DATE;
			p->date_pos = 0;
			p->year = 0;
			__attribute__((fallthrough));
		case K_STR:
			p->role = R_VAL;
			break;
		case K_LABELV:
			p->role = R_LVAL;
			break;
		case K_ANY:
			p->role = R_SKIP;
			break;
		default:
			return type_error(p);
		}
		goto st_str;
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		if (p->vkind == K_NUM) {
			/* The usual case: -?int(.frac)? of at most 19 digits, no
			 * exponent, ending here. Anything else goes through the
			 * general machine below, from the number's first byte. */
			size_t j = i + (c == '-');
			uint64_t m = 0;
			unsigned nd = 0, nf = 0, d;
			double v;

			if (j < len && b[j] == '0') {
				j++;
				nd = 1;
			} else {
				while (j < len && (d = b[j] - (unsigned)'0') <= 9) {
					m = m * 10 + d; /* may wrap: then nd > 19 */
					j++;
					nd++;
				}
			}
			if (nd == 0)
				goto num_general;
			if (j < len && b[j] == '.') {
				j++;
				while (j < len && (d = b[j] - (unsigned)'0') <= 9) {
					m = m * 10 + d;
					j++;
					nf++;
				}
				if (nf == 0)
					goto num_general;
			}
			if (j == len || nd + nf > 19 || b[j] - (unsigned)'0' <= 9 ||
			    (b[j] | 0x20) == 'e')
				goto num_general;
			if (m <= (1ull << 53) && nf <= 22)
				v = (double)m / pow10_exact[nf]; /* Clinger: exact operands, one rounding */
			else if (ingest_decimal_to_double(m, -(int64_t)nf, false, false, NULL, 0,
							  false, &v) != 0)
				goto num_general;
			*(double *)p->dst = c == '-' ? -v : v;
			i = j;
			goto st_after;
		}
	num_general:
		if (p->vkind == K_NUM)
			p->flags = F_STORE;
		else if (p->vkind == K_ANY)
			p->flags = 0;
		else
			return type_error(p);
		p->mant = c == '-' ? 0 : c - '0';
		p->ndig = c > '0';
		p->nadj = 0;
		p->nexp = 0;
		p->nx = 0;
		p->num_state = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
		if (c == '-')
			p->flags |= F_NEG;
		i++;
		goto st_num;
	case 't': case 'f': case 'n':
		if (!(p->vkind == K_ANY || (p->vkind == K_BOOL && c != 'n')))
			return type_error(p);
		p->lit_id = c == 't' ? 0 : c == 'f' ? 1 : 2;
		p->lit_len = c == 'f' ? 5 : 4;
		p->lit_pos = 1;
		i++;
		goto st_lit;
	case '{':
		if (p->vkind != K_ANY && p->vkind != K_OBJ && p->vkind != K_ELEM &&
		    p->vkind != K_LABELS)
			return type_error(p);
		if ((unsigned)p->sdepth + p->udepth >= p->lim.depth)
			return too_deep(p);
		i++;
		switch (p->vkind) {
		case K_ANY:
			p->ustack &= ~(1ull << p->udepth);
			p->udepth++;
			p->in_arr = 0;
			break;
		case K_OBJ:
			memset(p->dst, 0, ingest_types[p->vtype].size);
			push(p, p->dst, p->vtype);
			break;
		case K_ELEM: {
			const struct type_info *ti = &ingest_types[p->vtype];
			struct ingest_range *rg = p->f[p->sdepth - 1].obj;
			uint32_t *used = (uint32_t *)(void *)((char *)r + ti->count_off);
			char *item;

			CHECK(room_for_item(p, ti, rg));
			item = (char *)r + ti->pool_off + (size_t)*used * ti->size;
			memset(item, 0, ti->size);
			(*used)++;
			rg->count++;
			push(p, item, p->vtype);
			break;
		}
		default: { /* K_LABELS */
			struct ingest_range *rg = p->dst;

			rg->first = r->n_label;
			rg->count = 0;
			push(p, rg, T_labels);
			break;
		}
		}
		goto st_obj_first;
	case '[':
		if (p->vkind != K_ANY && p->vkind != K_ARR)
			return type_error(p);
		if ((unsigned)p->sdepth + p->udepth >= p->lim.depth)
			return too_deep(p);
		i++;
		if (p->vkind == K_ANY) {
			p->ustack |= 1ull << p->udepth;
			p->udepth++;
			p->in_arr = 1;
		} else {
			struct ingest_range *rg = p->dst;

			rg->first = *(const uint32_t *)(const void *)((const char *)r +
								      ingest_types[p->vtype].count_off);
			rg->count = 0;
			push(p, rg, p->vtype | T_ARRAY);
		}
		goto st_arr_first;
	default:
		return unexpected(p, c, "");
	}

st_after:
	/* The usual ", \"" between members and ", " between items. */
	if (len - i >= 3 && b[i] == ',' && b[i + 1] == ' ') {
		if (p->in_arr) {
			i += 2;
			goto item;
		}
		if (b[i + 2] == '"') {
			if (!p->udepth)
				p->f[p->sdepth - 1].key = KEY_NONE;
			i += 2;
			goto key;
		}
	}
	SKIP_WS();
	if (i == len)
		SAVE(S_AFTER);
	c = b[i];
	{
		bool arr = p->in_arr;

		if (c == ',') {
			i++;
			if (arr)
				goto item;
			if (!p->udepth)
				p->f[p->sdepth - 1].key = KEY_NONE;
			goto st_obj_next;
		}
		if (c == (arr ? ']' : '}')) {
			i++;
			if (arr)
				goto close_arr;
			goto close_obj;
		}
		return unexpected(p, c, "");
	}

close_obj:
	if (p->udepth) {
		p->udepth--;
		pop_update(p);
		goto st_after;
	}
	fr = &p->f[p->sdepth - 1];
	{
		uint32_t miss = ingest_types[fr->type].req & ~*(const uint32_t *)fr->obj;

		if (fr->type != T_labels && miss)
			return ingest_fail(p, 400, H_REQUIRED, true,
					   ingest_types[fr->type].fields[__builtin_ctz(miss)].name,
					   "is required");
	}
	if (--p->sdepth == 0)
		goto st_end;
	pop_update(p);
	goto st_after;

close_arr:
	if (p->udepth)
		p->udepth--;
	else
		p->sdepth--;
	pop_update(p);
	goto st_after;

st_end:
	SKIP_WS();
	if (i == len)
		SAVE(S_END);
	return unexpected(p, b[i], " after the end of the document");

st_str:
	for (;;) {
		if (p->esc == E_NONE && p->u8_need == 0) {
			size_t s = i;

			i = plain_run(b, i, len);
			if (i != s)
				CHECK(emit(p, b + s, i - s));
			if (i == len)
				SAVE(S_STR);
			c = b[i];
			if (c == '"') {
				i++;
				goto str_end;
			}
			if (c == '\\') {
				p->esc = E_BS;
				i++;
				continue;
			}
			if (c < 0x20)
				return ingest_fail(p, 400, H_SYNTAX, false, NULL,
						   "is not valid JSON: unescaped control character 0x%02X in a string",
						   c);
			/* A UTF-8 lead byte (RFC 3629 section 4): C0, C1 and
			 * F5-FF never occur; the first continuation byte is
			 * narrowed to exclude overlongs (E0, F0), surrogates
			 * (ED) and code points above U+10FFFF (F4). */
			if (c < 0xC2 || c > 0xF4)
				goto bad_utf8;
			unsigned need = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
			unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
			unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;

			/* A sequence is emitted only once all of it is checked,
			 * here at once or, split, from p->u8buf: so the date
			 * pattern and the limits see the same bytes either way. */
			if (len - i > need) {
				if (b[i + 1] < lo || b[i + 1] > hi)
					goto bad_utf8_next;
				for (unsigned k = 2; k <= need; k++)
					if ((b[i + k] & 0xC0) != 0x80) {
						i += k;
						goto bad_utf8;
					}
				CHECK(emit(p, b + i, need + 1));
				i += need + 1;
				continue;
			}
			p->u8buf[0] = (unsigned char)c;
			p->u8len = 1;
			p->u8_need = (uint8_t)need;
			p->u8_lo = (uint8_t)lo;
			p->u8_hi = (uint8_t)hi;
			i++;
			continue;
		}
		if (i == len)
			SAVE(S_STR);
		c = b[i];
		if (p->u8_need) {
			if (c < p->u8_lo || c > p->u8_hi)
				goto bad_utf8;
			p->u8_lo = 0x80;
			p->u8_hi = 0xBF;
			p->u8buf[p->u8len++] = (unsigned char)c;
			i++;
			if (--p->u8_need == 0)
				CHECK(emit(p, p->u8buf, p->u8len));
			continue;
		}
		switch (p->esc) {
		case E_BS: {
			unsigned char ch;

			switch (c) {
			case '"': case '\\': case '/': ch = (unsigned char)c; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'n': ch = '\n'; break;
			case 'r': ch = '\r'; break;
			case 't': ch = '\t'; break;
			case 'u':
				p->esc = E_U;
				p->nhex = 0;
				p->ucs = 0;
				i++;
				continue;
			default:
				if (c >= 0x20 && c < 0x7f)
					return ingest_fail(p, 400, H_SYNTAX, false, NULL,
							   "is not valid JSON: invalid escape '\\%c'", (int)c);
				return ingest_fail(p, 400, H_SYNTAX, false, NULL,
						   "is not valid JSON: invalid escape (byte 0x%02X after '\\')", c);
			}
			p->esc = E_NONE;
			i++;
			CHECK(emit(p, &ch, 1));
			continue;
		}
		case E_U:
		case E_LHEX: {
			int h = hexval(c);

			if (h < 0)
				return ingest_fail(p, 400, H_SYNTAX, false, NULL,
						   "is not valid JSON: \\u must be followed by 4 hex digits");
			p->ucs = p->ucs << 4 | (uint32_t)h;
			i++;
			if (++p->nhex < 4)
				continue;
			if (p->esc == E_U) {
				if (p->ucs >= 0xD800 && p->ucs <= 0xDBFF) {
					p->esc = E_LBS; /* a low surrogate must follow */
					continue;
				}
				if (p->ucs >= 0xDC00 && p->ucs <= 0xDFFF)
					goto lone_surrogate;
				p->esc = E_NONE;
				CHECK(emit_cp(p, p->ucs));
				continue;
			}
			/* ucs = high << 16 | low (RFC 8259 section 7) */
			uint32_t hs = p->ucs >> 16, ls = p->ucs & 0xFFFF;

			if (ls < 0xDC00 || ls > 0xDFFF)
				goto lone_surrogate;
			p->esc = E_NONE;
			CHECK(emit_cp(p, 0x10000 + ((hs - 0xD800) << 10) + (ls - 0xDC00)));
			continue;
		}
		case E_LBS:
			if (c != '\\')
				goto lone_surrogate;
			p->esc = E_LU;
			i++;
			continue;
		default: /* E_LU */
			if (c != 'u')
				goto lone_surrogate;
			p->esc = E_LHEX;
			p->nhex = 0;
			i++;
			continue;
		}
	}

lone_surrogate:
	return ingest_fail(p, 400, H_SYNTAX, false, NULL,
			   "is not valid JSON: a \\u escape of a lone UTF-16 surrogate");
bad_utf8_next:
	i++;
bad_utf8:
	return ingest_fail(p, 400, H_SYNTAX, false, NULL,
			   "is not valid UTF-8 (byte 0x%02X)", (unsigned)b[i]);

str_end:
	switch (p->role) {
	case R_KEY:
		CHECK(on_key(p, (const unsigned char *)p->key, p->slen));
		goto st_colon;
	case R_SKEY:
		goto st_colon;
	case R_LKEY:
		CHECK(on_label_key(p));
		goto st_colon;
	case R_VAL:
		if ((p->flags & F_DATE) && p->date_pos != D_END)
			return bad_date(p);
		__attribute__((fallthrough));
	case R_LVAL: {
		struct ingest_str *s = p->dst;

		s->off = p->sstart;
		s->len = p->slen;
		goto st_after;
	}
	default:
		goto st_after;
	}

st_num: {
	uint64_t m = p->mant;
	int64_t adj = p->nadj;
	uint32_t nd = p->ndig, ex = p->nexp;
	unsigned st = p->num_state, d;

	for (; i < len; i++) {
		c = b[i];
		d = c - '0';
		switch (st) {
		case N_MINUS:
			if (d > 9)
				goto num_bad;
			m = d;
			nd = d != 0;
			st = d ? N_INT : N_ZERO;
			continue;
		case N_ZERO:
			if (d <= 9)
				return ingest_fail(p, 400, H_SYNTAX, false, NULL,
						   "is not valid JSON: a number must not have a leading zero");
			goto num_punct;
		case N_INT:
			if (d <= 9) {
				if (nd < 19) {
					m = m * 10 + d;
					nd++;
				} else {
					adj++;
					goto num_extra;
				}
				continue;
			}
			goto num_punct;
		case N_DOT:
			if (d > 9)
				goto num_bad;
			st = N_FRAC;
			goto num_frac;
		case N_FRAC:
			if (d <= 9)
				goto num_frac;
			if ((c | 0x20) == 'e') {
				st = N_E;
				continue;
			}
			goto num_done;
		case N_E:
			if (c == '+' || c == '-') {
				if (c == '-')
					p->flags |= F_EXPNEG;
				st = N_ESIGN;
				continue;
			}
			__attribute__((fallthrough));
		case N_ESIGN:
			if (d > 9)
				goto num_bad;
			ex = d;
			st = N_EXP;
			continue;
		default: /* N_EXP */
			if (d <= 9) {
				if (ex < 100000000) /* saturate: 1e100000000 is out of range anyway */
					ex = ex * 10 + d;
				continue;
			}
			goto num_done;
		}
	num_punct: /* after the integer part */
		if (c == '.') {
			st = N_DOT;
			continue;
		}
		if ((c | 0x20) == 'e') {
			st = N_E;
			continue;
		}
		goto num_done;
	num_frac:
		if (nd == 0 && d == 0) {
			adj--; /* a leading zero of the fraction: not significant */
		} else if (nd < 19) {
			m = m * 10 + d;
			nd++;
			adj--;
		} else {
			goto num_extra;
		}
		continue;
	num_extra: /* a significant digit past the 19th */
		if (d)
			p->flags |= F_TRUNC;
		if (p->flags & F_STORE) {
			if (p->nx < INGEST_NUM_XDIGITS)
				p->xdig[p->nx++] = (char)c;
			else if (d)
				p->flags |= F_STICKY;
		}
		continue;
	}
	p->mant = m;
	p->nadj = adj;
	p->ndig = nd;
	p->nexp = ex;
	p->num_state = (uint8_t)st;
	SAVE(S_NUM);

num_bad:
	return unexpected(p, c, "");
num_done:
	if (st != N_ZERO && st != N_INT && st != N_FRAC && st != N_EXP)
		goto num_bad;
	if (p->flags & F_STORE) {
		int64_t q = adj + ((p->flags & F_EXPNEG) ? -(int64_t)ex : (int64_t)ex);

		if (ingest_decimal_to_double(m, q, p->flags & F_NEG, p->flags & F_TRUNC,
					     p->xdig, p->nx, p->flags & F_STICKY,
					     (double *)p->dst) != 0)
			return ingest_fail(p, 400, H_RANGE, false, NULL, "is out of range");
	}
	goto st_after;
}

st_lit:
	while (p->lit_pos < p->lit_len) {
		if (i == len)
			SAVE(S_LIT);
		if (b[i] != (unsigned char)lit_text[p->lit_id][p->lit_pos])
			return unexpected(p, b[i], "");
		i++;
		p->lit_pos++;
	}
	if (p->vkind == K_BOOL)
		*(bool *)p->dst = p->lit_id == 0;
	goto st_after;
}

int ingest_parser_finish(struct ingest_parser *p)
{
	if (p->err.status)
		return rc_of(p);
	if (p->state == S_END || p->state == S_FINISHED) {
		p->state = S_FINISHED;
		return 0;
	}
	if (p->state == S_START)
		return ingest_fail(p, 400, H_SYNTAX, false, NULL, "is not valid JSON: the body is empty");
	return ingest_fail(p, 400, H_SYNTAX, false, NULL, "is not valid JSON: unexpected end of input");
}
