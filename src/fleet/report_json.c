/*
 * A stored report back to JSON (GET /api/metrics/agents/{agentId}/latest).
 *
 * One emitter walks the schema's tables (ingest_schema_fields(), made
 * from the same X-macro lists as the structs), so a field added to
 * include/ringside/ingest.h shows up here with no change. All this file
 * knows of its own is where each array's items are in the blob's view.
 */
#include "ringside/fleet_report.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "ringside/fleet_store.h"
#include "ringside/http_response.h"
#include "ringside/metrics_expo.h"

/* A bounded writer: once something does not fit it is full for good and
 * writes nothing more, so callers check once at the end. */
struct jw {
	char *buf;
	size_t len, cap;
	bool full;
};

static void put(struct jw *w, const char *s, size_t n)
{
	if (w->full || n > w->cap - w->len) {
		w->full = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

#define PUT_LIT(w, s) put(w, s, sizeof(s) - 1)

static void put_char(struct jw *w, char c)
{
	put(w, &c, 1);
}

/* s[0, n) as a JSON string (quoted, escaped). */
static void put_str(struct jw *w, const char *s, size_t n)
{
	if (w->full || w->cap - w->len < 2) {
		w->full = true;
		return;
	}
	w->buf[w->len] = '"';
	/* cap - len - 2 keeps room for the closing quote. */
	size_t e = http_json_escape_len(w->buf + w->len + 1, w->cap - w->len - 2, s, n);
	if (e == (size_t)-1) {
		w->full = true;
		return;
	}
	w->len += 1 + e;
	w->buf[w->len++] = '"';
}

/* "name": */
static void put_key(struct jw *w, const char *name, size_t n)
{
	put_char(w, '"');
	put(w, name, n);
	PUT_LIT(w, "\":");
}

static void put_num(struct jw *w, double d)
{
	char num[33];

	/* Validated numbers are finite, so this is a JSON number. The
	 * exposition writes -0 as "0" (as client_golang does); the report is
	 * given back as sent, and -0 (sent, or an underflow) reads back as -0. */
	if (d == 0 && signbit(d)) {
		put(w, "-0", 2);
		return;
	}
	put(w, num, expo_format_double(num, d));
}

/* "2026-11-22T10:00:00.123Z" (RFC 3339, UTC, milliseconds). */
static void put_time(struct jw *w, int64_t ms)
{
	int64_t sec = ms / 1000, frac = ms % 1000;
	if (frac < 0) { /* floor, for instants before 1970 */
		frac += 1000;
		sec--;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	int y = tm.tm_year + 1900;
	const int part[6] = {tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			     (int)frac};
	static const char sep[] = "-T::.";
	char b[32], *p = b; /* 26 used: "YYYY-MM-DDTHH:MM:SS.mmmZ" */
	*p++ = '"';
	*p++ = (char)('0' + y / 1000 % 10);
	*p++ = (char)('0' + y / 100 % 10);
	*p++ = (char)('0' + y / 10 % 10);
	*p++ = (char)('0' + y % 10);
	*p++ = '-';
	for (int i = 0; i < 5; i++) {
		*p++ = (char)('0' + part[i] / 10);
		*p++ = (char)('0' + part[i] % 10);
		*p++ = sep[i];
	}
	*p++ = (char)('0' + part[5] / 100);
	*p++ = (char)('0' + part[5] / 10 % 10);
	*p++ = (char)('0' + part[5] % 10);
	*p++ = 'Z';
	*p++ = '"';
	put(w, b, (size_t)(p - b));
}

/* The types whose objects are items of an array, each in its pool. */
#define FLEET_ITEM_TYPES(X)                                                 \
	X(service) X(health_check) X(tcp_check) X(cert_check)               \
	X(container) X(port) X(mount) X(process)

/* The first item of the pool of type t in v, and the size of one. */
static const char *pool_of(const struct fleet_report *v, unsigned t, size_t *size)
{
	switch (t) {
#define CASE_(x)                                                            \
	case INGEST_TYPE_##x:                                               \
		*size = sizeof *v->x;                                       \
		return (const char *)v->x;
		FLEET_ITEM_TYPES(CASE_)
#undef CASE_
	default:
		*size = 0;
		return NULL;
	}
}

/* The fields present in obj, an object of type t, as a JSON object.
 * Recursion follows the schema's nesting (containers[].ports[]: 3 deep). */
static void put_object(struct jw *w, const struct fleet_report *v, unsigned t, const char *obj)
{
	unsigned n;
	const struct ingest_field *f = ingest_schema_fields(t, &n);
	uint32_t has;
	char sep = '{';

	memcpy(&has, obj, sizeof has); /* the first member of every object */
	for (unsigned i = 0; i < n && !w->full; i++, f++) {
		const char *m = obj + f->off;

		if (!((has >> i) & 1u))
			continue;
		put_char(w, sep);
		sep = ',';
		put_key(w, f->name, f->len);
		switch (f->kind) {
		case INGEST_KIND_NUM: {
			double d;
			memcpy(&d, m, sizeof d);
			put_num(w, d);
			break;
		}
		case INGEST_KIND_BOOL: {
			bool b;
			memcpy(&b, m, sizeof b);
			if (b)
				PUT_LIT(w, "true");
			else
				PUT_LIT(w, "false");
			break;
		}
		case INGEST_KIND_STR:
		case INGEST_KIND_DATE: {
			struct ingest_str s;
			memcpy(&s, m, sizeof s);
			put_str(w, fleet_str(v, s), s.len);
			break;
		}
		case INGEST_KIND_ARR: {
			struct ingest_range r;
			size_t size;
			const char *pool = pool_of(v, f->child, &size);
			memcpy(&r, m, sizeof r);
			put_char(w, '[');
			for (uint32_t k = 0; k < r.count; k++) {
				if (k)
					put_char(w, ',');
				put_object(w, v, f->child, pool + (size_t)(r.first + k) * size);
			}
			put_char(w, ']');
			break;
		}
		case INGEST_KIND_OBJ:
			put_object(w, v, f->child, m);
			break;
		case INGEST_KIND_LABELS: {
			struct ingest_range r;
			memcpy(&r, m, sizeof r);
			put_char(w, '{');
			for (uint32_t k = 0; k < r.count; k++) {
				const struct ingest_label *l = &v->label[r.first + k];
				if (k)
					put_char(w, ',');
				put_str(w, fleet_str(v, l->key), l->key.len);
				put_char(w, ':');
				put_str(w, fleet_str(v, l->value), l->value.len);
			}
			put_char(w, '}');
			break;
		}
		default:
			break;
		}
	}
	if (sep == '{')
		put_char(w, '{');
	put_char(w, '}');
}

size_t fleet_report_json(char *out, size_t cap, const struct fleet_snapshot *s,
			 const struct fleet_report *v, int64_t now_ms, int64_t stale_ms)
{
	struct jw w = {out, 0, cap, false};

	PUT_LIT(&w, "{\"agentId\":");
	put_str(&w, s->agent, s->agent_len);
	PUT_LIT(&w, ",\"organizationId\":");
	put_str(&w, s->org, s->org_len);
	PUT_LIT(&w, ",\"receivedAt\":");
	put_time(&w, s->received_ms);
	if (now_ms - s->received_ms >= stale_ms)
		PUT_LIT(&w, ",\"stale\":true,\"report\":");
	else
		PUT_LIT(&w, ",\"stale\":false,\"report\":");
	put_object(&w, v, INGEST_TYPE_report, (const char *)v->head);
	put_char(&w, '}');
	return w.full ? 0 : w.len;
}
