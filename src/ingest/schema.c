/*
 * The schema as data: the field lists of include/ringside/ingest.h expand
 * into one table per object type (name, kind, offset, required, child
 * type), with per-type limits and pools; and, built once from those, one
 * perfect-hash table of field names per type, which the validator's
 * match_key() (ingest_int.h) reads. Nothing here runs per byte.
 */
#include "ringside/ingest.h"

#include <pthread.h>
#include <string.h>

#include "ingest_int.h"

#define FIELD_(S, n, k, r, c) \
	{ #n, (uint16_t)offsetof(struct S, n), sizeof(#n) - 1, K_##k, T_##c, r },
static const struct ingest_field f_report[] = { INGEST_REPORT_FIELDS(FIELD_, ingest_report) };
static const struct ingest_field f_service[] = { INGEST_SERVICE_FIELDS(FIELD_, ingest_service) };
static const struct ingest_field f_health_check[] = { INGEST_HEALTH_CHECK_FIELDS(FIELD_, ingest_health_check) };
static const struct ingest_field f_tcp_check[] = { INGEST_TCP_CHECK_FIELDS(FIELD_, ingest_tcp_check) };
static const struct ingest_field f_cert_check[] = { INGEST_CERT_CHECK_FIELDS(FIELD_, ingest_cert_check) };
static const struct ingest_field f_container[] = { INGEST_CONTAINER_FIELDS(FIELD_, ingest_container) };
static const struct ingest_field f_port[] = { INGEST_PORT_FIELDS(FIELD_, ingest_port) };
static const struct ingest_field f_mount[] = { INGEST_MOUNT_FIELDS(FIELD_, ingest_mount) };
static const struct ingest_field f_top_processes[] = { INGEST_TOP_PROCESSES_FIELDS(FIELD_, ingest_top_processes) };
static const struct ingest_field f_process[] = { INGEST_PROCESS_FIELDS(FIELD_, ingest_process) };
static const struct ingest_field f_process_stats[] = { INGEST_PROCESS_STATS_FIELDS(FIELD_, ingest_process_stats) };

#define REQ_(a, n, k, r, c) | ((uint32_t)(r) << INGEST_##a##_##n)

_Static_assert(sizeof(struct ingest_limits) == 16 * sizeof(uint32_t),
	       "struct ingest_limits must be uint32_t words");

#define N(a) (uint8_t)(sizeof(a) / sizeof((a)[0]))
#define POOL(x) offsetof(struct ingest_report, x), offsetof(struct ingest_report, n_##x)

const struct type_info ingest_types[T_COUNT] = {
	[T_report] = { f_report, N(f_report), LIM_NONE, LIM_NONE, 0,
		       0 INGEST_REPORT_FIELDS(REQ_, REPORT), 0, 0, 0, NULL },
	[T_service] = { f_service, N(f_service), LIM(services), LIM_NONE,
			sizeof(struct ingest_service), 0 INGEST_SERVICE_FIELDS(REQ_, SERVICE),
			POOL(service), INGEST_CAP_SERVICES, "services" },
	[T_health_check] = { f_health_check, N(f_health_check), LIM(health_checks), LIM_NONE,
			     sizeof(struct ingest_health_check),
			     0 INGEST_HEALTH_CHECK_FIELDS(REQ_, HEALTH_CHECK),
			     POOL(health_check), INGEST_CAP_HEALTH_CHECKS, "health checks" },
	[T_tcp_check] = { f_tcp_check, N(f_tcp_check), LIM(tcp_checks), LIM_NONE,
			  sizeof(struct ingest_tcp_check), 0 INGEST_TCP_CHECK_FIELDS(REQ_, TCP_CHECK),
			  POOL(tcp_check), INGEST_CAP_TCP_CHECKS, "TCP checks" },
	[T_cert_check] = { f_cert_check, N(f_cert_check), LIM(cert_checks), LIM_NONE,
			   sizeof(struct ingest_cert_check), 0 INGEST_CERT_CHECK_FIELDS(REQ_, CERT_CHECK),
			   POOL(cert_check), INGEST_CAP_CERT_CHECKS, "certificate checks" },
	[T_container] = { f_container, N(f_container), LIM(containers), LIM_NONE,
			  sizeof(struct ingest_container), 0 INGEST_CONTAINER_FIELDS(REQ_, CONTAINER),
			  POOL(container), INGEST_CAP_CONTAINERS, "containers" },
	[T_port] = { f_port, N(f_port), LIM(ports_per_container), LIM(ports),
		     sizeof(struct ingest_port), 0 INGEST_PORT_FIELDS(REQ_, PORT),
		     POOL(port), INGEST_CAP_PORTS, "ports" },
	[T_mount] = { f_mount, N(f_mount), LIM(mounts_per_container), LIM(mounts),
		      sizeof(struct ingest_mount), 0 INGEST_MOUNT_FIELDS(REQ_, MOUNT),
		      POOL(mount), INGEST_CAP_MOUNTS, "mounts" },
	[T_top_processes] = { f_top_processes, N(f_top_processes), LIM_NONE, LIM_NONE,
			      sizeof(struct ingest_top_processes),
			      0 INGEST_TOP_PROCESSES_FIELDS(REQ_, TOP_PROCESSES), 0, 0, 0, NULL },
	[T_process] = { f_process, N(f_process), LIM(processes), LIM_NONE,
			sizeof(struct ingest_process), 0 INGEST_PROCESS_FIELDS(REQ_, PROCESS),
			POOL(process), 2 * INGEST_CAP_PROCESSES, "processes" },
	[T_process_stats] = { f_process_stats, N(f_process_stats), LIM_NONE, LIM_NONE,
			      sizeof(struct ingest_process_stats),
			      0 INGEST_PROCESS_STATS_FIELDS(REQ_, PROCESS_STATS), 0, 0, 0, NULL },
	[T_labels] = { NULL, 0, LIM(labels_per_container), LIM(labels),
		       sizeof(struct ingest_label), 0, POOL(label), INGEST_CAP_LABELS, "labels" },
};

const struct ingest_field *ingest_schema_fields(enum ingest_type t, unsigned *n)
{
	if ((unsigned)t >= T_COUNT) {
		*n = 0;
		return NULL;
	}
	*n = ingest_types[t].nfields;
	return ingest_types[t].fields;
}

/* `has` is the first member of every object, and fits every field. */
_Static_assert(INGEST_REPORT_NFIELDS <= 32 && INGEST_SERVICE_NFIELDS <= 32 &&
		       INGEST_CERT_CHECK_NFIELDS <= 32 && INGEST_CONTAINER_NFIELDS <= 32,
	       "presence bits are a uint32_t");
_Static_assert(offsetof(struct ingest_report, service) < 65536, "field offsets are 16 bits");

struct keytab ingest_keytab[T_COUNT];
static pthread_once_t keytab_once = PTHREAD_ONCE_INIT;

static void build_keytab(void)
{
	uint64_t seed = 0x243F6A8885A308D3ull;

	for (int t = 0; t < T_COUNT; t++) {
		const struct type_info *ti = &ingest_types[t];
		struct keytab *kt = &ingest_keytab[t];
		bool ok = false;

		/* splitmix64 candidates until one separates every name; for
		 * 26 names in 64 slots about one in 170 does. */
		while (!ok) {
			uint64_t z = (seed += 0x9E3779B97F4A7C15ull);

			z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
			z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
			kt->mul = (z ^ (z >> 31)) | 1;
			memset(kt->s, 0xff, sizeof kt->s);
			ok = true;
			for (unsigned j = 0; j < ti->nfields && ok; j++) {
				const struct ingest_field *f = &ti->fields[j];
				uint64_t w0, w1;
				unsigned h;

				key_words((const unsigned char *)f->name, f->len, &w0, &w1);
				h = key_slot(kt->mul, w0, w1, f->len);
				if (kt->s[h].len != 0xff) {
					ok = false;
					break;
				}
				kt->s[h].w0 = w0;
				kt->s[h].w1 = w1;
				kt->s[h].len = f->len;
				kt->s[h].idx = (uint8_t)j;
				kt->s[h].kind = f->kind;
				kt->s[h].child = f->child;
				kt->s[h].off = f->off;
			}
		}
	}
}

void ingest_schema_init(void)
{
	pthread_once(&keytab_once, build_keytab);
}
