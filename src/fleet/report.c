#include "ringside/fleet_report.h"

#include <errno.h>
#include <string.h>

#include "ringside/ingest.h"

_Static_assert(offsetof(struct ingest_report, arena_len) ==
		       offsetof(struct ingest_report_head, arena_len) &&
	       offsetof(struct ingest_report, service) >= sizeof(struct ingest_report_head),
	       "struct ingest_report_head is the start of struct ingest_report");

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

/* The sections after the head, in blob order: where each pool is in the
 * report, how many items it has, and how big one is. */
#define FLEET_POOLS(X)                                                      \
	X(service, n_service)                                               \
	X(health_check, n_health_check)                                     \
	X(tcp_check, n_tcp_check)                                           \
	X(cert_check, n_cert_check)                                         \
	X(container, n_container)                                           \
	X(port, n_port)                                                     \
	X(label, n_label)                                                   \
	X(mount, n_mount)                                                   \
	X(process, n_process)

static size_t size_of(const struct ingest_report_head *h)
{
	size_t n = ALIGN8(sizeof *h);
#define ADD_(pool, count) n += ALIGN8((size_t)h->count * sizeof(((struct ingest_report *)0)->pool[0]));
	FLEET_POOLS(ADD_)
#undef ADD_
	return n + h->arena_len;
}

size_t fleet_report_size(const struct ingest_report *r)
{
	return size_of((const struct ingest_report_head *)(const void *)r);
}

size_t fleet_report_encode(const struct ingest_report *r, void *out, size_t cap)
{
	size_t total = fleet_report_size(r);
	if (total > cap)
		return 0;
	char *p = out;
	memcpy(p, r, sizeof(struct ingest_report_head));
	p += ALIGN8(sizeof(struct ingest_report_head));
#define COPY_(pool, count)                                                  \
	{                                                                   \
		size_t bytes = (size_t)r->count * sizeof r->pool[0];        \
		memcpy(p, r->pool, bytes);                                  \
		memset(p + bytes, 0, ALIGN8(bytes) - bytes);                \
		p += ALIGN8(bytes);                                         \
	}
	FLEET_POOLS(COPY_)
#undef COPY_
	memcpy(p, r->arena, r->arena_len);
	return total;
}

int fleet_report_view(struct fleet_report *v, const void *blob, size_t len)
{
	const struct ingest_report_head *h = blob;
	if (len < sizeof *h || size_of(h) != len)
		return -EINVAL;
	const char *p = (const char *)blob + ALIGN8(sizeof *h);
	v->head = h;
#define VIEW_(pool, count)                                                  \
	v->pool = (const void *)p;                                          \
	p += ALIGN8((size_t)h->count * sizeof v->pool[0]);
	FLEET_POOLS(VIEW_)
#undef VIEW_
	v->arena = p;
	return 0;
}
