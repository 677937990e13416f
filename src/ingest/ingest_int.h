/*
 * Private to src/ingest: what validator.c needs from number.c (numbers),
 * schema.c (the schema as tables) and error.c (error reports).
 */
#ifndef RINGSIDE_INGEST_INT_H
#define RINGSIDE_INGEST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ringside/ingest.h"

/* ---- Numbers (number.c) ---- */

/*
 * The double nearest to (mant + 0.xdig) * 10^q, ties to even, negated if
 * neg. mant holds the first significant digits (at most 19; exactly 19 if
 * any digit was dropped); trunc says a nonzero digit was dropped after
 * them; xdig[0, nx) are the dropped digits as ASCII, followed, when
 * sticky, by at least one more nonzero digit that did not fit.
 * Returns 0, or -1 if the result is infinite (the caller's "out of range").
 */
int ingest_decimal_to_double(uint64_t mant, int64_t q, bool neg, bool trunc,
			     const char *xdig, size_t nx, bool sticky,
			     double *out);

/* 10^0 .. 10^22: every one an exact double (Clinger's fast path). */
static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* ---- The schema as tables (schema.c) ---- */

/* The field kinds and object types of ingest.h under short names, then
 * the validator's own value kinds. */
#define K_ALIAS_(k) K_##k = INGEST_KIND_##k,
enum kind {
	INGEST_KINDS(K_ALIAS_)
	K_ANY = INGEST_KIND_COUNT, /* a value inside an unknown key's value: any JSON */
	K_ELEM,   /* an item of a schema array: an object of p->vtype */
	K_LABELV, /* the value of a label: a string */
};
#undef K_ALIAS_

#define T_ALIAS_(t) T_##t = INGEST_TYPE_##t,
enum type { INGEST_TYPES(T_ALIAS_) T_COUNT = INGEST_TYPE_COUNT };
#undef T_ALIAS_
#define T_ARRAY 0x80 /* frame type flag: an array of items of the type */

/* struct ingest_frame.key when not a field index. */
enum { KEY_NONE = -1, KEY_UNKNOWN = -2, KEY_LABEL = -3 };

/* Index of a limit in struct ingest_limits, seen as uint32_t words. */
#define LIM(x) ((uint8_t)(offsetof(struct ingest_limits, x) / sizeof(uint32_t)))
#define LIM_NONE 0xff

struct type_info {
	const struct ingest_field *fields;
	uint8_t nfields;
	uint8_t lim_each;  /* items of one array (or labels object) */
	uint8_t lim_total; /* items of the pool; LIM_NONE: the capacity */
	uint16_t size;     /* of the struct */
	uint32_t req;      /* required-field bits */
	uint32_t pool_off, count_off, cap; /* the pool in struct ingest_report */
	const char *plural;
};

/* Indexed by enum type; T_labels has no fields, only its pool. */
extern const struct type_info ingest_types[T_COUNT];

/*
 * Field names in one perfect hash table per object type, so a key is
 * matched with a multiply and one compare: slot = hash(words, length) *
 * mul >> 58, with mul picked once (at the first init) so that no two
 * names of the type share a slot.
 */
#define NAME_MAX_LEN 20
#define KT_BITS 6
struct kslot {
	uint64_t w0, w1;
	uint8_t len, idx; /* len 0xff: empty */
	uint8_t kind, child; /* copies of the field's, to save a lookup */
	uint16_t off;
};
struct keytab {
	uint64_t mul;
	struct kslot s[1u << KT_BITS];
};

/* Indexed by enum type; valid once ingest_schema_init() has returned. */
extern struct keytab ingest_keytab[T_COUNT];

/* Builds ingest_keytab on the first call (any thread); then a no-op. */
void ingest_schema_init(void);

static inline uint64_t load64(const unsigned char *s)
{
	uint64_t v;
	memcpy(&v, s, 8);
	return v;
}

static inline uint32_t load32(const unsigned char *s)
{
	uint32_t v;
	memcpy(&v, s, 4);
	return v;
}

/*
 * Two words that, with the length, identify any string of up to 16 bytes
 * (overlapping loads; longer names are confirmed with memcmp). Reads only
 * s[0, n).
 */
static inline void key_words(const unsigned char *s, size_t n, uint64_t *w0, uint64_t *w1)
{
	if (n >= 8) {
		*w0 = load64(s);
		*w1 = load64(s + n - 8);
	} else if (n >= 4) {
		*w0 = load32(s) | (uint64_t)load32(s + n - 4) << 32;
		*w1 = 0;
	} else {
		*w0 = n ? s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16 : 0;
		*w1 = 0;
	}
}

static inline unsigned key_slot(uint64_t mul, uint64_t w0, uint64_t w1, size_t n)
{
	uint64_t x = w0 ^ (w1 * 0x9E3779B97F4A7C15ull) ^ n;

	return (unsigned)((x * mul) >> (64 - KT_BITS));
}

/* The slot of the field of type t named s[0, n), or NULL. */
static inline __attribute__((always_inline)) const struct kslot *
match_key(unsigned t, const unsigned char *s, size_t n)
{
	const struct keytab *kt = &ingest_keytab[t];
	const struct kslot *e;
	uint64_t w0, w1;

	if (n > NAME_MAX_LEN)
		return NULL;
	key_words(s, n, &w0, &w1);
	e = &kt->s[key_slot(kt->mul, w0, w1, n)];
	if (e->w0 != w0 || e->w1 != w1 || e->len != n)
		return NULL;
	if (n > 16 && memcmp(s, ingest_types[t].fields[e->idx].name, n) != 0)
		return NULL;
	return e;
}

/* ---- Error reports (error.c) ---- */

/*
 * Sets p->err: status, hint, the path of where the parser is (drop_last
 * leaves out the innermost component, so the object or array itself is
 * meant; extra, if set, is appended as a key) and the message from fmt.
 * Returns -E2BIG for status 413, else -EINVAL. Cold: the caller is failing.
 */
__attribute__((format(printf, 6, 7), noinline, cold))
int ingest_fail(struct ingest_parser *p, uint16_t status, const char *hint,
		bool drop_last, const char *extra, const char *fmt, ...);

#endif
