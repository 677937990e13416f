/*
 * A stored report back to JSON (GET /api/metrics/agents/{agentId}/latest).
 *
 * One emitter walks the schema's tables (ingest_schema_fields(), made
 * from the same X-macro lists as the structs), so a field added to
 * include/ringside/ingest.h shows up here with no change. All this file
 * knows of its own is where each array's items are in the blob's view.
 */
#include "ringside/fleet_report.h"

#include <stdbool.h>
#include <string.h>

#include "ringside/fleet_store.h"
#include "ringside/ingest.h"
#include "ringside/json_writer.h"

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
static void put_object(struct json_writer *w, const struct fleet_report *v, unsigned t, const char *obj)
{
	unsigned n;
	const struct ingest_field *f = ingest_schema_fields(t, &n);
	uint32_t has;

	memcpy(&has, obj, sizeof has); /* the first member of every object */
	jsonw_start_object(w);
	for (unsigned i = 0; i < n && !w->overflow; i++, f++) {
		const char *m = obj + f->off;

		if (!((has >> i) & 1u))
			continue;
		jsonw_key_n(w, f->name, f->len);
		switch (f->kind) {
		case INGEST_KIND_NUM: {
			double d;
			memcpy(&d, m, sizeof d);
			jsonw_double(w, d);
			break;
		}
		case INGEST_KIND_BOOL: {
			bool b;
			memcpy(&b, m, sizeof b);
			jsonw_bool(w, b);
			break;
		}
		case INGEST_KIND_STR:
		case INGEST_KIND_DATE: {
			struct ingest_str s;
			memcpy(&s, m, sizeof s);
			jsonw_string(w, fleet_str(v, s), s.len);
			break;
		}
		case INGEST_KIND_ARR: {
			struct ingest_range r;
			size_t size;
			const char *pool = pool_of(v, f->child, &size);
			memcpy(&r, m, sizeof r);
			jsonw_start_array(w);
			for (uint32_t k = 0; k < r.count; k++)
				put_object(w, v, f->child, pool + (size_t)(r.first + k) * size);
			jsonw_end_array(w);
			break;
		}
		case INGEST_KIND_OBJ:
			put_object(w, v, f->child, m);
			break;
		case INGEST_KIND_LABELS: {
			struct ingest_range r;
			memcpy(&r, m, sizeof r);
			jsonw_start_object(w);
			for (uint32_t k = 0; k < r.count; k++) {
				const struct ingest_label *l = &v->label[r.first + k];
				jsonw_key_string(w, fleet_str(v, l->key), l->key.len);
				jsonw_string(w, fleet_str(v, l->value), l->value.len);
			}
			jsonw_end_object(w);
			break;
		}
		default:
			jsonw_null(w); /* a kind this file does not know yet */
			break;
		}
	}
	jsonw_end_object(w);
}

size_t fleet_report_json(char *out, size_t cap, const struct fleet_snapshot *s,
			 const struct fleet_report *v, int64_t now_ms, int64_t stale_ms)
{
	struct json_writer w;

	jsonw_init(&w, out, cap);
	jsonw_start_object(&w);
	jsonw_key(&w, "agentId");
	jsonw_string(&w, s->agent, s->agent_len);
	jsonw_key(&w, "organizationId");
	jsonw_string(&w, s->org, s->org_len);
	jsonw_key(&w, "receivedAt");
	jsonw_time_ms(&w, s->received_ms);
	jsonw_key(&w, "stale");
	jsonw_bool(&w, now_ms - s->received_ms >= stale_ms);
	jsonw_key(&w, "report");
	put_object(&w, v, INGEST_TYPE_report, (const char *)v->head);
	jsonw_end_object(&w);
	return jsonw_done(&w);
}
