/*
 * Agent registry request bodies (include/ringside/registry_body.h).
 *
 * A small whole-buffer reader rather than the ingest validator
 * (src/ingest/validator.c): that one is a resumable state machine over its
 * schema's tables, writing strings into its report's arena, with no entry
 * point for "the string at this byte, into this buffer". jwt.c's reader
 * is whole-buffer but static and shaped to accept what jansson accepts.
 * This one needs only strings, one array and the first byte of any other
 * value (registry_body.h: a wrong type is reported at its first byte), so
 * it has no number or nesting code at all.
 */
#include "ringside/registry_body.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const field_names[REGISTRY_FIELD_COUNT] = {
#define REGISTRY_FIELD_NAME(name, json) json,
	REGISTRY_BODY_FIELDS(REGISTRY_FIELD_NAME)
#undef REGISTRY_FIELD_NAME
};

static const char *const agent_type_names[REGISTRY_AGENT_TYPE_COUNT] = {
	NULL,
#define REGISTRY_NAME(name, json) json,
	REGISTRY_AGENT_TYPES(REGISTRY_NAME)
};
static const char *const deployment_env_names[REGISTRY_DEPLOYMENT_ENV_COUNT] = {
	NULL,
	REGISTRY_DEPLOYMENT_ENVS(REGISTRY_NAME)
};
static const char *const status_names[REGISTRY_STATUS_COUNT] = {
	NULL,
	REGISTRY_STATUSES(REGISTRY_NAME)
#undef REGISTRY_NAME
};

struct rb {
	const unsigned char *b;
	size_t len, i;
	struct registry_body *out;
	struct registry_body_error *err;
	bool patch;
	/* the path of what is being read: field < 0 is the body as a whole;
	 * index >= 0 is an item of capabilities */
	int field;
	int index;
};

/* ---- Errors ---- */

__attribute__((format(printf, 3, 4), cold)) static int rb_fail(struct rb *r, int status,
							     const char *fmt, ...)
{
	struct registry_body_error *e = r->err;
	memset(r->out, 0, sizeof *r->out);
	if (!e)
		return status;
	e->status = status;
	e->offset = r->i;
	if (r->field >= 0 && r->index >= 0)
		snprintf(e->field, sizeof e->field, "%s[%d]", field_names[r->field], r->index);
	else if (r->field >= 0)
		snprintf(e->field, sizeof e->field, "%s", field_names[r->field]);
	/* else the caller set it (an unknown member) or it stays "" */
	char detail[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	if (e->field[0])
		snprintf(e->message, sizeof e->message, "Field \"%s\" %s.", e->field, detail);
	else
		snprintf(e->message, sizeof e->message, "The body %s.", detail);
	return status;
}

static int rb_syntax(struct rb *r, const char *what)
{
	return rb_fail(r, REGISTRY_BODY_SYNTAX, "is not valid JSON: %s (byte %zu)", what, r->i);
}

/* ---- Tokens ---- */

static void rb_ws(struct rb *r)
{
	while (r->i < r->len && (r->b[r->i] == ' ' || r->b[r->i] == '\t' ||
				 r->b[r->i] == '\n' || r->b[r->i] == '\r'))
		r->i++;
}

static void rb_put(char *out, size_t cap, size_t *n, unsigned char c)
{
	if (*n < cap)
		out[*n] = (char)c;
	(*n)++;
}

static void rb_put_cp(char *out, size_t cap, size_t *n, uint32_t cp)
{
	if (cp < 0x80) {
		rb_put(out, cap, n, (unsigned char)cp);
	} else if (cp < 0x800) {
		rb_put(out, cap, n, (unsigned char)(0xC0 | cp >> 6));
		rb_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		rb_put(out, cap, n, (unsigned char)(0xE0 | cp >> 12));
		rb_put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
		rb_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
	} else {
		rb_put(out, cap, n, (unsigned char)(0xF0 | cp >> 18));
		rb_put(out, cap, n, (unsigned char)(0x80 | (cp >> 12 & 0x3F)));
		rb_put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
		rb_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
	}
}

/* Four hex digits at r->i, or -1. */
static long rb_hex4(struct rb *r)
{
	if (r->len - r->i < 4)
		return -1;
	long v = 0;
	for (int k = 0; k < 4; k++) {
		unsigned c = r->b[r->i + (size_t)k], l = c | 0x20;
		if (c >= '0' && c <= '9')
			v = v << 4 | (long)(c - '0');
		else if (l >= 'a' && l <= 'f')
			v = v << 4 | (long)(l - 'a' + 10);
		else
			return -1;
	}
	r->i += 4;
	return v;
}

/*
 * The string whose '"' is at r->i, decoded into out[0, cap) (cap > 0),
 * NUL-terminated within cap. *n gets the whole decoded length, which may
 * exceed cap - 1: the caller's "too long". Returns 0 or an error.
 */
static int rb_string(struct rb *r, char *out, size_t cap, size_t *n)
{
	*n = 0;
	r->i++; /* the opening quote */
	for (;;) {
		if (r->i == r->len)
			return rb_syntax(r, "the body ends inside a string");
		unsigned char c = r->b[r->i];
		if (c == '"') {
			r->i++;
			break;
		}
		if (c < 0x20)
			return rb_syntax(r, "a control character in a string must be escaped");
		if (c < 0x80 && c != '\\') {
			rb_put(out, cap, n, c);
			r->i++;
			continue;
		}
		if (c >= 0x80) {
			/* RFC 3629 section 4: the second byte's range excludes
			 * overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4). */
			size_t more;
			unsigned char lo = 0x80, hi = 0xBF;
			if (c >= 0xC2 && c <= 0xDF)
				more = 1;
			else if (c >= 0xE0 && c <= 0xEF)
				more = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
			else if (c >= 0xF0 && c <= 0xF4)
				more = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
			else
				return rb_syntax(r, "invalid UTF-8");
			if (r->len - r->i - 1 < more || r->b[r->i + 1] < lo || r->b[r->i + 1] > hi)
				return rb_syntax(r, "invalid UTF-8");
			for (size_t k = 2; k <= more; k++)
				if ((r->b[r->i + k] & 0xC0) != 0x80)
					return rb_syntax(r, "invalid UTF-8");
			for (size_t k = 0; k <= more; k++)
				rb_put(out, cap, n, r->b[r->i + k]);
			r->i += more + 1;
			continue;
		}
		/* RFC 8259 section 7: the escapes */
		if (r->len - r->i < 2) {
			r->i++;
			return rb_syntax(r, "the body ends inside an escape");
		}
		static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
		unsigned char e = r->b[r->i + 1];
		const char *from = e ? strchr(esc_in, e) : NULL;
		if (from) {
			rb_put(out, cap, n, (unsigned char)esc_out[from - esc_in]);
			r->i += 2;
			continue;
		}
		if (e != 'u') {
			r->i++;
			return rb_syntax(r, "an invalid escape");
		}
		r->i += 2;
		long cp = rb_hex4(r);
		if (cp < 0)
			return rb_syntax(r, "\\u must be followed by four hex digits");
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return rb_syntax(r, "a lone UTF-16 surrogate escape");
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (r->len - r->i < 2 || r->b[r->i] != '\\' || r->b[r->i + 1] != 'u')
				return rb_syntax(r, "a lone UTF-16 surrogate escape");
			r->i += 2;
			long low = rb_hex4(r);
			if (low < 0)
				return rb_syntax(r, "\\u must be followed by four hex digits");
			if (low < 0xDC00 || low > 0xDFFF)
				return rb_syntax(r, "a lone UTF-16 surrogate escape");
			cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
		}
		rb_put_cp(out, cap, n, (uint32_t)cp);
	}
	out[*n < cap ? *n : cap - 1] = '\0';
	return 0;
}

/*
 * After whitespace, the first byte of a value that must be a string (or,
 * with want_array, an array): returns 0 at it, or the error its type is.
 */
static int rb_value_start(struct rb *r, bool want_array)
{
	rb_ws(r);
	if (r->i == r->len)
		return rb_syntax(r, "the body ends where a value should be");
	unsigned char c = r->b[r->i];
	const char *want = want_array ? "must be an array of strings" : "must be a string";
	if (c == (want_array ? '[' : '"'))
		return 0;
	if (c == 'n') {
		if (r->len - r->i >= 4 && memcmp(r->b + r->i, "null", 4) == 0)
			return rb_fail(r, REGISTRY_BODY_NULL_VALUE, "cannot be null: a field cannot be unset");
		return rb_syntax(r, "expected a value");
	}
	if (c == '"' || c == '[' || c == '{' || c == 't' || c == 'f' || c == '-' ||
	    (c >= '0' && c <= '9'))
		return rb_fail(r, REGISTRY_BODY_WRONG_TYPE, "%s", want);
	return rb_syntax(r, "expected a value");
}

/* ---- Field grammars ---- */

static bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* WHATWG HTML, "valid e-mail address":
 * 1*( atext / "." ) "@" label *( "." label ), label = let-dig [ [ ldh-str ] let-dig ]
 * of at most 63 characters. */
static bool email_ok(const char *s, size_t n)
{
	static const char atext_extra[] = "!#$%&'*+/=?^_`{|}~-.";
	size_t i = 0;
	while (i < n && s[i] != '@' &&
	       (is_alnum((unsigned char)s[i]) || (s[i] && strchr(atext_extra, s[i]))))
		i++;
	if (i == 0 || i == n || s[i] != '@')
		return false;
	i++;
	for (;;) {
		size_t start = i;
		while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '-'))
			i++;
		size_t l = i - start;
		if (l == 0 || l > 63 || s[start] == '-' || s[i - 1] == '-')
			return false;
		if (i == n)
			return true;
		if (s[i] != '.')
			return false;
		i++;
	}
}

/* A dot-separated list of identifiers of [0-9A-Za-z-], none empty;
 * numeric ones without a leading zero when numeric_strict (pre-release). */
static bool semver_idents(const char *s, size_t n, bool numeric_strict)
{
	size_t i = 0;
	for (;;) {
		size_t start = i;
		bool digits = true;
		while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '-')) {
			if (s[i] < '0' || s[i] > '9')
				digits = false;
			i++;
		}
		if (i == start)
			return false;
		if (numeric_strict && digits && s[start] == '0' && i - start > 1)
			return false;
		if (i == n)
			return true;
		if (s[i] != '.')
			return false;
		i++;
	}
}

/* SemVer 2.0.0 (semver.org, section 2, 9, 10 and its BNF). */
static bool semver_ok(const char *s, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 3; part++) {
		size_t start = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || (s[start] == '0' && i - start > 1))
			return false;
		if (part < 2) {
			if (i == n || s[i] != '.')
				return false;
			i++;
		}
	}
	size_t plus = i;
	while (plus < n && s[plus] != '+')
		plus++;
	if (i < n && s[i] == '-') {
		if (!semver_idents(s + i + 1, plus - i - 1, true))
			return false;
	} else if (i != plus) {
		return false;
	}
	return plus == n || semver_idents(s + plus + 1, n - plus - 1, false);
}

static bool cap_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* ---- Fields ---- */

/* A string field into out[0, cap): empty -> EMPTY, over max -> TOO_LONG. */
static int rb_string_field(struct rb *r, char *out, size_t cap, size_t max, size_t *len,
			   const char *too_long)
{
	int rc = rb_value_start(r, false);
	if (rc)
		return rc;
	size_t start = r->i;
	rc = rb_string(r, out, cap, len);
	if (rc)
		return rc;
	if (*len == 0) {
		r->i = start;
		return rb_fail(r, REGISTRY_BODY_EMPTY, "must not be empty");
	}
	if (*len > max) {
		r->i = start;
		return rb_fail(r, REGISTRY_BODY_TOO_LONG, "%s", too_long);
	}
	return 0;
}

/* An enumerated string: the index (>= 1) of names[] it matches. */
static int rb_enum_field(struct rb *r, const char *const *names, int count, int *out,
			 const char *allowed)
{
	char buf[16];
	size_t len;
	int rc = rb_value_start(r, false);
	if (rc)
		return rc;
	size_t start = r->i;
	rc = rb_string(r, buf, sizeof buf, &len);
	if (rc)
		return rc;
	for (int k = 1; k < count; k++)
		if (strlen(names[k]) == len && memcmp(names[k], buf, len) == 0) {
			*out = k;
			return 0;
		}
	r->i = start;
	return rb_fail(r, REGISTRY_BODY_NOT_ALLOWED, "must be one of %s", allowed);
}

static int rb_email(struct rb *r)
{
	struct registry_body *o = r->out;
	size_t start;
	rb_ws(r);
	start = r->i;
	int rc = rb_string_field(r, o->email, sizeof o->email, REGISTRY_EMAIL_MAX, &o->email_len,
				 "must be at most 254 bytes");
	if (rc)
		return rc;
	if (!email_ok(o->email, o->email_len)) {
		r->i = start;
		return rb_fail(r, REGISTRY_BODY_BAD_FORMAT,
			       "must be an e-mail address (local@domain, ASCII, no spaces)");
	}
	return 0;
}

static int rb_version(struct rb *r)
{
	struct registry_body *o = r->out;
	rb_ws(r);
	size_t start = r->i;
	int rc = rb_string_field(r, o->version, sizeof o->version, REGISTRY_VERSION_MAX,
				 &o->version_len, "must be at most 64 bytes");
	if (rc)
		return rc;
	if (!semver_ok(o->version, o->version_len)) {
		r->i = start;
		return rb_fail(r, REGISTRY_BODY_BAD_FORMAT,
			       "must be a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-pre][+build])");
	}
	return 0;
}

static int rb_owner(struct rb *r)
{
	struct registry_body *o = r->out;
	rb_ws(r);
	size_t start = r->i;
	int rc = rb_string_field(r, o->owner, sizeof o->owner, REGISTRY_OWNER_MAX, &o->owner_len,
				 "must be at most 128 characters");
	size_t chars = 0;
	if (rc)
		return rc;
	const unsigned char *s = (const unsigned char *)o->owner;
	for (size_t k = 0; k < o->owner_len; k++) {
		/* Unicode Cc: C0, DEL, and C1 (U+0080-U+009F is C2 80-9F) */
		if (s[k] < 0x20 || s[k] == 0x7F || (s[k] == 0xC2 && s[k + 1] < 0xA0)) {
			r->i = start;
			return rb_fail(r, REGISTRY_BODY_BAD_FORMAT,
				       "must not contain control characters");
		}
		chars += (s[k] & 0xC0) != 0x80;
	}
	if (chars > REGISTRY_OWNER_MAX_CHARS) {
		r->i = start;
		return rb_fail(r, REGISTRY_BODY_TOO_LONG, "must be at most 128 characters");
	}
	o->owner_chars = chars;
	return 0;
}

static int rb_capability(struct rb *r, struct registry_capability *c)
{
	size_t len;
	int rc = rb_value_start(r, false);
	if (rc)
		return rc;
	size_t start = r->i;
	rc = rb_string(r, c->s, sizeof c->s, &len);
	if (rc)
		return rc;
	size_t end = r->i;
	r->i = start; /* the errors below are about the item */
	if (len > REGISTRY_CAP_MAX)
		return rb_fail(r, REGISTRY_BODY_TOO_LONG,
			       "must be resource:action with each part at most 64 characters");
	const char *colon = memchr(c->s, ':', len);
	size_t res = colon ? (size_t)(colon - c->s) : len;
	size_t act = colon ? len - res - 1 : 0;
	bool ok = colon && res >= 1 && act >= 1;
	for (size_t k = 0; ok && k < len; k++)
		ok = k == res || cap_char((unsigned char)c->s[k]);
	if (!ok)
		return rb_fail(r, REGISTRY_BODY_BAD_FORMAT,
			       "must be resource:action, each part of a-z, 0-9, '_' and '-'");
	if (res > REGISTRY_CAP_PART_MAX || act > REGISTRY_CAP_PART_MAX)
		return rb_fail(r, REGISTRY_BODY_TOO_LONG,
			       "must be resource:action with each part at most 64 characters");
	c->len = (uint8_t)len;
	r->i = end;
	return 0;
}

static int rb_capabilities(struct rb *r)
{
	struct registry_body *o = r->out;
	int rc = rb_value_start(r, true);
	if (rc)
		return rc;
	r->i++; /* '[' */
	rb_ws(r);
	if (r->i < r->len && r->b[r->i] == ']')
		return rb_fail(r, REGISTRY_BODY_EMPTY, "must hold 1 to 32 capabilities");
	for (;;) {
		r->index = (int)o->ncapabilities;
		rb_ws(r);
		if (o->ncapabilities == REGISTRY_CAPS_MAX && r->i < r->len)
			return rb_fail(r, REGISTRY_BODY_TOO_MANY,
				       "is one more than 32 capabilities");
		struct registry_capability *c = &o->capabilities[o->ncapabilities];
		size_t start;
		rb_ws(r);
		start = r->i;
		rc = rb_capability(r, c);
		if (rc)
			return rc;
		for (size_t k = 0; k < o->ncapabilities; k++)
			if (o->capabilities[k].len == c->len &&
			    memcmp(o->capabilities[k].s, c->s, c->len) == 0) {
				r->i = start;
				return rb_fail(r, REGISTRY_BODY_DUPLICATE_ITEM,
					       "repeats capabilities[%zu]", k);
			}
		o->ncapabilities++;
		r->index = (int)o->ncapabilities; /* a problem now is where the next item goes */
		rb_ws(r);
		if (r->i == r->len)
			return rb_syntax(r, "the body ends inside an array");
		if (r->b[r->i] == ']') {
			r->i++;
			r->index = -1;
			return 0;
		}
		if (r->b[r->i] != ',')
			return rb_syntax(r, "expected ',' or ']' after an array item");
		r->i++;
		rb_ws(r);
		if (r->i < r->len && r->b[r->i] == ']')
			return rb_syntax(r, "a trailing comma in an array");
	}
}

static int rb_field(struct rb *r, int f)
{
	struct registry_body *o = r->out;
	int v = 0, rc;
	switch (f) {
	case REGISTRY_FIELD_EMAIL:
		return rb_email(r);
	case REGISTRY_FIELD_VERSION:
		return rb_version(r);
	case REGISTRY_FIELD_OWNER:
		return rb_owner(r);
	case REGISTRY_FIELD_CAPABILITIES:
		return rb_capabilities(r);
	case REGISTRY_FIELD_AGENT_TYPE:
		rc = rb_enum_field(r, agent_type_names, REGISTRY_AGENT_TYPE_COUNT, &v,
				   "screener, classifier, orchestrator, extractor, summarizer, "
				   "router, monitor, custom");
		o->agent_type = (enum registry_agent_type)v;
		return rc;
	case REGISTRY_FIELD_DEPLOYMENT_ENV:
		rc = rb_enum_field(r, deployment_env_names, REGISTRY_DEPLOYMENT_ENV_COUNT, &v,
				   "development, staging, production");
		o->deployment_env = (enum registry_deployment_env)v;
		return rc;
	default: /* REGISTRY_FIELD_STATUS */
		rc = rb_enum_field(r, status_names, REGISTRY_STATUS_COUNT, &v, "active, suspended");
		o->status = (enum registry_status)v;
		return rc;
	}
}

/* The field path of an unknown member: cut at a code point, controls as '?'. */
static void unknown_name(struct registry_body_error *e, const char *name, size_t len)
{
	if (!e)
		return;
	size_t n = len, max = REGISTRY_FIELD_PATH_NAME_MAX;
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
			n--; /* name[n] starts the first code point left out */
	}
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)name[k];
		e->field[k] = c < 0x20 || c == 0x7F ? '?' : (char)c;
	}
	memcpy(e->field + n, len > max ? "..." : "", len > max ? 4 : 1);
}

static int rb_parse(const char *body, size_t len, struct registry_body *out,
		    struct registry_body_error *err, bool patch)
{
	struct rb r = {.b = (const unsigned char *)body, .len = len, .out = out, .err = err,
		       .patch = patch, .field = -1, .index = -1};
	memset(out, 0, sizeof *out);
	if (err)
		memset(err, 0, sizeof *err);
	if (len > REGISTRY_BODY_MAX)
		return rb_fail(&r, REGISTRY_BODY_TOO_LARGE, "is larger than 16 KiB");
	rb_ws(&r);
	if (r.i == len)
		return rb_fail(&r, REGISTRY_BODY_NOT_OBJECT, "must be a JSON object, and is empty");
	if (r.b[r.i] != '{')
		return rb_fail(&r, REGISTRY_BODY_NOT_OBJECT, "must be a JSON object");
	r.i++;
	rb_ws(&r);
	if (r.i < len && r.b[r.i] == '}') {
		r.i++;
	} else {
		for (;;) {
			rb_ws(&r);
			if (r.i == len || r.b[r.i] != '"')
				return rb_syntax(&r, r.i == len ? "the body ends inside the object"
								: "expected a member name");
			size_t name_at = r.i, nlen;
			/* one byte past the path's cut, to see where a code point starts */
			char name[REGISTRY_FIELD_PATH_NAME_MAX + 2];
			int rc = rb_string(&r, name, sizeof name, &nlen);
			if (rc)
				return rc;
			int f = -1;
			for (int k = 0; k < REGISTRY_FIELD_COUNT; k++)
				if (strlen(field_names[k]) == nlen &&
				    memcmp(field_names[k], name, nlen) == 0)
					f = k;
			if (f < 0 || (f == REGISTRY_FIELD_STATUS && !patch)) {
				r.i = name_at;
				unknown_name(err, name, nlen);
				return rb_fail(&r, REGISTRY_BODY_UNKNOWN_FIELD,
					       f < 0 ? "is not a field of this request"
						     : "is not a field of a registration (it can be changed with PATCH)");
			}
			r.field = f;
			if (out->present >> f & 1) {
				r.i = name_at;
				return rb_fail(&r, REGISTRY_BODY_DUPLICATE_FIELD, "appears more than once");
			}
			rb_ws(&r);
			if (r.i == len || r.b[r.i] != ':')
				return rb_syntax(&r, "expected ':' after a member name");
			r.i++;
			rc = rb_field(&r, f);
			if (rc)
				return rc;
			out->present |= 1u << f;
			r.field = -1;
			rb_ws(&r);
			if (r.i == len)
				return rb_syntax(&r, "the body ends inside the object");
			if (r.b[r.i] == '}') {
				r.i++;
				break;
			}
			if (r.b[r.i] != ',')
				return rb_syntax(&r, "expected ',' or '}' after a member");
			r.i++;
			rb_ws(&r);
			if (r.i < len && r.b[r.i] == '}')
				return rb_syntax(&r, "a trailing comma in the object");
		}
	}
	rb_ws(&r);
	if (r.i != len)
		return rb_fail(&r, REGISTRY_BODY_TRAILING, "has bytes after the JSON object");
	if (patch) {
		if (!out->present)
			return rb_fail(&r, REGISTRY_BODY_NO_CHANGE,
				       "has no field to change (send at least one)");
		return REGISTRY_BODY_OK;
	}
	uint32_t missing = REGISTRY_CREATE_FIELDS & ~out->present;
	if (missing) {
		r.field = __builtin_ctz(missing);
		return rb_fail(&r, REGISTRY_BODY_MISSING, "is required");
	}
	return REGISTRY_BODY_OK;
}

int registry_body_parse_create(const char *body, size_t len, struct registry_body *out,
			       struct registry_body_error *err)
{
	return rb_parse(body, len, out, err, false);
}

int registry_body_parse_patch(const char *body, size_t len, struct registry_body *out,
			      struct registry_body_error *err)
{
	return rb_parse(body, len, out, err, true);
}

const char *registry_body_strerror(int status)
{
	switch (status) {
	case REGISTRY_BODY_OK:
		return "";
#define REGISTRY_BODY_CASE(name, value, message)                                       \
	case REGISTRY_BODY_##name:                                                     \
		return message;
		REGISTRY_BODY_ERRORS(REGISTRY_BODY_CASE)
#undef REGISTRY_BODY_CASE
	}
	return "is not valid";
}

const char *registry_body_agent_type_name(enum registry_agent_type t)
{
	return (unsigned)t < REGISTRY_AGENT_TYPE_COUNT ? agent_type_names[t] : NULL;
}

const char *registry_body_deployment_env_name(enum registry_deployment_env e)
{
	return (unsigned)e < REGISTRY_DEPLOYMENT_ENV_COUNT ? deployment_env_names[e] : NULL;
}

const char *registry_body_status_name(enum registry_status s)
{
	return (unsigned)s < REGISTRY_STATUS_COUNT ? status_names[s] : NULL;
}

void registry_body_write_json(const struct registry_body *b, struct json_writer *w)
{
	jsonw_start_object(w);
	for (int f = 0; f < REGISTRY_FIELD_COUNT; f++) {
		if (!(b->present >> f & 1))
			continue;
		jsonw_key(w, field_names[f]);
		switch (f) {
		case REGISTRY_FIELD_EMAIL:
			jsonw_string(w, b->email, b->email_len);
			break;
		case REGISTRY_FIELD_AGENT_TYPE:
			jsonw_cstring(w, registry_body_agent_type_name(b->agent_type));
			break;
		case REGISTRY_FIELD_VERSION:
			jsonw_string(w, b->version, b->version_len);
			break;
		case REGISTRY_FIELD_CAPABILITIES:
			jsonw_start_array(w);
			for (size_t k = 0; k < b->ncapabilities; k++)
				jsonw_string(w, b->capabilities[k].s, b->capabilities[k].len);
			jsonw_end_array(w);
			break;
		case REGISTRY_FIELD_OWNER:
			jsonw_string(w, b->owner, b->owner_len);
			break;
		case REGISTRY_FIELD_DEPLOYMENT_ENV:
			jsonw_cstring(w, registry_body_deployment_env_name(b->deployment_env));
			break;
		default:
			jsonw_cstring(w, registry_body_status_name(b->status));
			break;
		}
	}
	jsonw_end_object(w);
}
