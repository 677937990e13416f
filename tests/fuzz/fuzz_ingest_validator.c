/*
 * libFuzzer target for src/ingest/: the streaming ingest validator, on its
 * production entry points.
 *
 * Each input is validated whole and split at three offsets derived from
 * its bytes (every piece an exact-size heap copy, so ASan sees a read past
 * a piece). The results must agree: return code, status, path, message,
 * and on success every field of the report. One input in two runs with
 * small limits (derived from its hash) so the 413 paths are reached too.
 * On success the report's invariants are checked: counts within the
 * limits, every range inside its pool, every string inside the arena.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/ingest.h"

#include "fuzz_util.h"

static struct ingest_parser pa, pb;
static struct ingest_report ra, rb;

static int run(struct ingest_parser *p, struct ingest_report *r,
	       const struct ingest_limits *lim, const uint8_t *data, size_t size,
	       const size_t *cuts, size_t ncuts)
{
	size_t at = 0;
	int rc = 0;

	ingest_parser_init(p, r, lim);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : size;
		char *piece = fuzz_copy(data + at, end - at);
		int x = ingest_parser_feed(p, piece, end - at);
		free(piece);
		CHECK(x == 0 || x == -EINVAL || x == -E2BIG);
		CHECK(rc == 0 || x == rc); /* sticky */
		if (!rc)
			rc = x;
		at = end;
	}
	{
		int x = ingest_parser_finish(p);

		CHECK(rc == 0 || x == rc);
		rc = x;
	}
	return rc;
}

/* ---- Report equality, generated from the schema ---- */

static bool str_eq(struct ingest_str a, struct ingest_str b)
{
	return a.off == b.off && a.len == b.len &&
	       memcmp(ra.arena + a.off, rb.arena + b.off, a.len) == 0;
}

static bool range_eq(struct ingest_range a, struct ingest_range b)
{
	return a.first == b.first && a.count == b.count;
}

#define EQ_NUM(n, c) (memcmp(&a->n, &b->n, sizeof(double)) == 0)
#define EQ_BOOL(n, c) (a->n == b->n)
#define EQ_STR(n, c) str_eq(a->n, b->n)
#define EQ_DATE(n, c) str_eq(a->n, b->n)
#define EQ_OBJ(n, c) eq_##c(&a->n, &b->n)
#define EQ_ARR(n, c) range_eq(a->n, b->n) /* items compared pool by pool */
#define EQ_LABELS(n, c) range_eq(a->n, b->n)
#define EQ_(t, n, k, r, c) && EQ_##k(n, c)
#define DEF_EQ(T, LIST)                                                    \
	static bool eq_##T(const struct ingest_##T *a, const struct ingest_##T *b) \
	{                                                                  \
		return a->has == b->has LIST(EQ_, _);                      \
	}

DEF_EQ(port, INGEST_PORT_FIELDS)
DEF_EQ(mount, INGEST_MOUNT_FIELDS)
DEF_EQ(process, INGEST_PROCESS_FIELDS)
DEF_EQ(process_stats, INGEST_PROCESS_STATS_FIELDS)
DEF_EQ(top_processes, INGEST_TOP_PROCESSES_FIELDS)
DEF_EQ(service, INGEST_SERVICE_FIELDS)
DEF_EQ(health_check, INGEST_HEALTH_CHECK_FIELDS)
DEF_EQ(tcp_check, INGEST_TCP_CHECK_FIELDS)
DEF_EQ(cert_check, INGEST_CERT_CHECK_FIELDS)
DEF_EQ(container, INGEST_CONTAINER_FIELDS)

#define POOL_EQ(x)                                                         \
	do {                                                               \
		CHECK(ra.n_##x == rb.n_##x);                               \
		for (uint32_t j = 0; j < ra.n_##x; j++)                    \
			CHECK(eq_##x(&ra.x[j], &rb.x[j]));                 \
	} while (0)

static void reports_equal(void)
{
	const struct ingest_report *a = &ra, *b = &rb;

	CHECK(ra.arena_len == rb.arena_len && memcmp(ra.arena, rb.arena, ra.arena_len) == 0);
	CHECK(a->has == b->has INGEST_REPORT_FIELDS(EQ_, _));
	POOL_EQ(service);
	POOL_EQ(health_check);
	POOL_EQ(tcp_check);
	POOL_EQ(cert_check);
	POOL_EQ(container);
	POOL_EQ(port);
	POOL_EQ(mount);
	POOL_EQ(process);
	CHECK(ra.n_label == rb.n_label);
	for (uint32_t j = 0; j < ra.n_label; j++)
		CHECK(str_eq(ra.label[j].key, rb.label[j].key) &&
		      str_eq(ra.label[j].value, rb.label[j].value));
}

/* ---- Invariants of an accepted report ---- */

static void str_ok(struct ingest_str s)
{
	CHECK(s.off <= ra.arena_len && s.len <= ra.arena_len - s.off);
}

static void range_ok(struct ingest_range g, uint32_t used, uint32_t each)
{
	CHECK(g.first <= used && g.count <= used - g.first && g.count <= each);
}

#define OK_NUM(n, c) CHECK(a->n == a->n && a->n - a->n == 0) /* finite */
#define OK_BOOL(n, c) CHECK(a->n == 0 || a->n == 1)
#define OK_STR(n, c) str_ok(a->n)
#define OK_DATE(n, c) str_ok(a->n)
#define OK_OBJ(n, c) if (a->n.has) ok_##c(&a->n, lim) /* absent: has == 0 */
#define OK_ARR(n, c) (void)0 /* ranges: checked by their owners below */
#define OK_LABELS(n, c) range_ok(a->n, ra.n_label, lim->labels_per_container)
#define OK_(t, n, k, r, c) OK_##k(n, c);
#define DEF_OK(T, LIST, REQ)                                               \
	static void ok_##T(const struct ingest_##T *a, const struct ingest_limits *lim) \
	{                                                                  \
		(void)lim;                                                 \
		CHECK((a->has & (REQ)) == (REQ));                          \
		LIST(OK_, _)                                               \
	}
#define REQ_(a, n, k, r, c) | ((uint32_t)(r) << INGEST_##a##_##n)

DEF_OK(port, INGEST_PORT_FIELDS, 0 INGEST_PORT_FIELDS(REQ_, PORT))
DEF_OK(mount, INGEST_MOUNT_FIELDS, 0 INGEST_MOUNT_FIELDS(REQ_, MOUNT))
DEF_OK(process, INGEST_PROCESS_FIELDS, 0 INGEST_PROCESS_FIELDS(REQ_, PROCESS))
DEF_OK(process_stats, INGEST_PROCESS_STATS_FIELDS, 0 INGEST_PROCESS_STATS_FIELDS(REQ_, PROCESS_STATS))
DEF_OK(top_processes, INGEST_TOP_PROCESSES_FIELDS, 0 INGEST_TOP_PROCESSES_FIELDS(REQ_, TOP_PROCESSES))
DEF_OK(service, INGEST_SERVICE_FIELDS, 0 INGEST_SERVICE_FIELDS(REQ_, SERVICE))
DEF_OK(health_check, INGEST_HEALTH_CHECK_FIELDS, 0 INGEST_HEALTH_CHECK_FIELDS(REQ_, HEALTH_CHECK))
DEF_OK(tcp_check, INGEST_TCP_CHECK_FIELDS, 0 INGEST_TCP_CHECK_FIELDS(REQ_, TCP_CHECK))
DEF_OK(cert_check, INGEST_CERT_CHECK_FIELDS, 0 INGEST_CERT_CHECK_FIELDS(REQ_, CERT_CHECK))
DEF_OK(container, INGEST_CONTAINER_FIELDS, 0 INGEST_CONTAINER_FIELDS(REQ_, CONTAINER))

#define POOL_OK(x, cap)                                                    \
	do {                                                               \
		CHECK(ra.n_##x <= (cap));                                  \
		for (uint32_t j = 0; j < ra.n_##x; j++)                    \
			ok_##x(&ra.x[j], lim);                             \
	} while (0)

static void check_report(const struct ingest_limits *lim)
{
	const struct ingest_report *a = &ra;

	CHECK(ra.arena_len <= lim->arena_bytes);
	INGEST_REPORT_FIELDS(OK_, _)
	range_ok(ra.services, ra.n_service, lim->services);
	range_ok(ra.serviceHealthChecks, ra.n_health_check, lim->health_checks);
	range_ok(ra.tcpCheckResults, ra.n_tcp_check, lim->tcp_checks);
	range_ok(ra.certCheckResults, ra.n_cert_check, lim->cert_checks);
	range_ok(ra.containers, ra.n_container, lim->containers);
	if (ingest_has(&ra, INGEST_REPORT_topProcesses)) {
		range_ok(ra.topProcesses.byCpu, ra.n_process, lim->processes);
		range_ok(ra.topProcesses.byMemory, ra.n_process, lim->processes);
	}
	/* Every item taken belongs to exactly the arrays that hold it. */
	CHECK(ra.n_service == ra.services.count);
	CHECK(ra.n_container == ra.containers.count);
	POOL_OK(service, lim->services);
	POOL_OK(health_check, lim->health_checks);
	POOL_OK(tcp_check, lim->tcp_checks);
	POOL_OK(cert_check, lim->cert_checks);
	POOL_OK(container, lim->containers);
	POOL_OK(port, lim->ports);
	POOL_OK(mount, lim->mounts);
	POOL_OK(process, 2 * lim->processes);
	CHECK(ra.n_label <= lim->labels);
	for (uint32_t j = 0; j < ra.n_container; j++) {
		const struct ingest_container *c = &ra.container[j];

		range_ok(c->ports, ra.n_port, lim->ports_per_container);
		range_ok(c->mounts, ra.n_mount, lim->mounts_per_container);
		for (uint32_t k = c->labels.first; k < c->labels.first + c->labels.count; k++) {
			str_ok(ra.label[k].key);
			str_ok(ra.label[k].value);
			CHECK(ra.label[k].key.len <= lim->key_bytes);
			CHECK(ra.label[k].value.len <= lim->string_bytes);
		}
	}
}

static void check_error(const struct ingest_parser *p, int rc)
{
	size_t n = strnlen(p->err.path, INGEST_PATH_MAX);

	CHECK(rc == (p->err.status == 413 ? -E2BIG : -EINVAL));
	CHECK(p->err.status == 400 || p->err.status == 413);
	CHECK(n < INGEST_PATH_MAX);
	for (size_t k = 0; k < n; k++)
		CHECK(p->err.path[k] >= 0x20 && p->err.path[k] < 0x7f);
	CHECK(p->err.message[0] != '\0' && p->err.hint != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	struct ingest_limits small = { 0 }, *lim = NULL;
	size_t cuts[3];
	int rc, rc2;

	if (h & 1) {
		small.services = small.health_checks = small.tcp_checks = small.cert_checks = 2;
		small.containers = small.processes = 2;
		small.ports_per_container = small.labels_per_container = small.mounts_per_container = 2;
		small.ports = small.labels = small.mounts = 3;
		small.arena_bytes = 64 + (h >> 8) % 64;
		small.string_bytes = 16;
		small.key_bytes = 20;
		small.depth = 6 + (h >> 16) % 4;
		lim = &small;
	}
	rc = run(&pa, &ra, lim, data, size, NULL, 0);
	if (rc)
		check_error(&pa, rc);
	else
		check_report(ingest_parser_limits(&pa));

	/* Three increasing cut points from the hash. */
	for (int k = 0; k < 3; k++)
		cuts[k] = size ? (size_t)((h >> (20 * k + 3)) % (size + 1)) : 0;
	if (cuts[0] > cuts[1]) { size_t t = cuts[0]; cuts[0] = cuts[1]; cuts[1] = t; }
	if (cuts[1] > cuts[2]) { size_t t = cuts[1]; cuts[1] = cuts[2]; cuts[2] = t; }
	if (cuts[0] > cuts[1]) { size_t t = cuts[0]; cuts[0] = cuts[1]; cuts[1] = t; }
	rc2 = run(&pb, &rb, lim, data, size, cuts, 3);
	CHECK(rc == rc2);
	if (rc) {
		CHECK(pa.err.status == pb.err.status);
		CHECK(strcmp(pa.err.path, pb.err.path) == 0);
		CHECK(strcmp(pa.err.message, pb.err.message) == 0);
		CHECK(pa.err.hint == pb.err.hint);
	} else {
		reports_equal();
	}
	return 0;
}
