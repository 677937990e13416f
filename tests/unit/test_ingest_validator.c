/*
 * Unit tests for the ingest validator (src/ingest/). Every document is
 * run whole, one byte at a time and split in two at every offset (each
 * piece an exact-size heap copy, so ASan sees any over-read), and the
 * results (status, path, message, and on success every field of the
 * report) must agree. The real samples also end exactly at a PROT_NONE
 * page, and every prefix of the full one must fail.
 *
 * The samples are read from samples/ (tests run from the repo
 * root) or $RINGSIDE_SAMPLES.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringside/ingest.h"

#include "unit_samples.h"

/* Generated paths are short; snprintf truncating them would fail a test anyway. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- Running the validator ---- */

struct result {
	int rc;
	uint16_t status;
	char path[INGEST_PATH_MAX];
	char message[INGEST_MESSAGE_MAX];
};

/* Two parsers and reports: the reference run and the one compared. */
static struct ingest_parser pa, pb;
static struct ingest_report ra, rb;

static char *heap_copy(const char *src, size_t len)
{
	char *d = malloc(len ? len : 1);

	assert_non_null(d);
	if (len)
		memcpy(d, src, len);
	return d;
}

static void snap(const struct ingest_parser *p, int rc, struct result *out)
{
	out->rc = rc;
	out->status = p->err.status;
	snprintf(out->path, sizeof out->path, "%s", rc ? p->err.path : "");
	snprintf(out->message, sizeof out->message, "%s", rc ? p->err.message : "");
}

/* Feeds doc in pieces ending at the offsets cuts[0..ncuts) (increasing),
 * each an exact-size heap copy, then finishes. */
static int run_cuts(struct ingest_parser *p, struct ingest_report *r,
		    const struct ingest_limits *lim, const char *doc, size_t len,
		    const size_t *cuts, size_t ncuts)
{
	size_t at = 0;
	int rc = 0;

	ingest_parser_init(p, r, lim);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		char *piece = heap_copy(doc + at, end - at);
		int x = ingest_parser_feed(p, piece, end - at);

		free(piece);
		if (x && !rc)
			rc = x;
		assert_true(x == 0 || x == rc); /* sticky */
		at = end;
	}
	{
		int x = ingest_parser_finish(p);

		if (!rc)
			rc = x;
		else
			assert_int_equal(x, rc);
	}
	return rc;
}

static int run_whole(const struct ingest_limits *lim, const char *doc, size_t len)
{
	return run_cuts(&pa, &ra, lim, doc, len, NULL, 0);
}

/* ---- Comparing reports, field by field (generated from the schema) ---- */

static bool str_eq(const struct ingest_report *x, struct ingest_str a,
		   const struct ingest_report *y, struct ingest_str b)
{
	return a.off == b.off && a.len == b.len &&
	       memcmp(ingest_str_ptr(x, a), ingest_str_ptr(y, b), a.len) == 0;
}

static bool range_eq(struct ingest_range a, struct ingest_range b)
{
	return a.first == b.first && a.count == b.count;
}

#define EQ_NUM(n, c) (memcmp(&a->n, &b->n, sizeof(double)) == 0)
#define EQ_BOOL(n, c) (a->n == b->n)
#define EQ_STR(n, c) str_eq(x, a->n, y, b->n)
#define EQ_DATE(n, c) str_eq(x, a->n, y, b->n)
#define EQ_OBJ(n, c) eq_##c(x, &a->n, y, &b->n)
#define EQ_ARR(n, c) (range_eq(a->n, b->n) && items_##c(x, a->n, y))
#define EQ_LABELS(n, c) (range_eq(a->n, b->n) && labels_eq(x, a->n, y))
#define EQ_(t, n, k, r, c) && EQ_##k(n, c)

static bool labels_eq(const struct ingest_report *x, struct ingest_range g,
		      const struct ingest_report *y)
{
	for (uint32_t j = g.first; j < g.first + g.count; j++)
		if (!str_eq(x, x->label[j].key, y, y->label[j].key) ||
		    !str_eq(x, x->label[j].value, y, y->label[j].value))
			return false;
	return true;
}

#define DEF_EQ(T, LIST)                                                    \
	static bool eq_##T(const struct ingest_report *x, const struct ingest_##T *a, \
			   const struct ingest_report *y, const struct ingest_##T *b) \
	{                                                                  \
		(void)x;                                                   \
		(void)y;                                                   \
		return a->has == b->has LIST(EQ_, _);                      \
	}                                                                  \
	static inline bool items_##T(const struct ingest_report *x, struct ingest_range g, \
				     const struct ingest_report *y)        \
	{                                                                  \
		for (uint32_t j = g.first; j < g.first + g.count; j++)     \
			if (!eq_##T(x, &x->T[j], y, &y->T[j]))             \
				return false;                              \
		return true;                                               \
	}
#define DEF_EQ_OBJ(T, LIST)                                                \
	static bool eq_##T(const struct ingest_report *x, const struct ingest_##T *a, \
			   const struct ingest_report *y, const struct ingest_##T *b) \
	{                                                                  \
		(void)x;                                                   \
		(void)y;                                                   \
		return a->has == b->has LIST(EQ_, _);                      \
	}

DEF_EQ(port, INGEST_PORT_FIELDS)
DEF_EQ(mount, INGEST_MOUNT_FIELDS)
DEF_EQ(process, INGEST_PROCESS_FIELDS)
DEF_EQ_OBJ(process_stats, INGEST_PROCESS_STATS_FIELDS)
DEF_EQ_OBJ(top_processes, INGEST_TOP_PROCESSES_FIELDS)
DEF_EQ(service, INGEST_SERVICE_FIELDS)
DEF_EQ(health_check, INGEST_HEALTH_CHECK_FIELDS)
DEF_EQ(tcp_check, INGEST_TCP_CHECK_FIELDS)
DEF_EQ(cert_check, INGEST_CERT_CHECK_FIELDS)
DEF_EQ(container, INGEST_CONTAINER_FIELDS)

static bool report_eq(const struct ingest_report *x, const struct ingest_report *y)
{
	const struct ingest_report *a = x, *b = y;

	if (x->arena_len != y->arena_len || memcmp(x->arena, y->arena, x->arena_len) != 0)
		return false;
	if (x->n_service != y->n_service || x->n_health_check != y->n_health_check ||
	    x->n_tcp_check != y->n_tcp_check || x->n_cert_check != y->n_cert_check ||
	    x->n_container != y->n_container || x->n_port != y->n_port ||
	    x->n_label != y->n_label || x->n_mount != y->n_mount ||
	    x->n_process != y->n_process)
		return false;
	return a->has == b->has INGEST_REPORT_FIELDS(EQ_, _);
}

static bool same(const struct result *a, const struct result *b)
{
	return a->rc == b->rc && a->status == b->status && strcmp(a->path, b->path) == 0 &&
	       strcmp(a->message, b->message) == 0;
}

static void expect_same(const char *what, size_t at, const struct result *want,
			const struct result *got, bool reports)
{
	if (same(want, got) && (want->rc || !reports || report_eq(&ra, &rb)))
		return;
	print_error("%s at %zu: whole rc %d %u '%s' '%s'; here rc %d %u '%s' '%s'%s\n", what, at,
		    want->rc, want->status, want->path, want->message, got->rc, got->status,
		    got->path, got->message, same(want, got) ? " (reports differ)" : "");
	fail();
}

/* false: split at 14 offsets, not every one (for the many generated documents). */
static bool every_split = true;

/*
 * Runs doc whole (into pa/ra: the result is left there for the caller),
 * then one byte at a time and split at every offset, each compared with
 * the whole run. Returns the whole run's result.
 */
static struct result check_doc_lim(const struct ingest_limits *lim, const char *doc, size_t len)
{
	struct result whole, got;
	size_t *cuts = malloc((len + 1) * sizeof *cuts);
	int rc;

	assert_non_null(cuts);
	for (size_t k = 0; k < len; k++)
		cuts[k] = k + 1;
	/* Byte by byte (cuts 1, 2, ..., len - 1) into pb/rb. */
	rc = run_cuts(&pb, &rb, lim, doc, len, cuts, len ? len - 1 : 0);
	snap(&pb, rc, &got);
	rc = run_whole(lim, doc, len);
	snap(&pa, rc, &whole);
	expect_same("byte by byte", 0, &whole, &got, true);
	for (size_t k = 0; k <= len; k += every_split ? 1 : 1 + len / 13) {
		cuts[0] = k;
		rc = run_cuts(&pb, &rb, lim, doc, len, cuts, 1);
		snap(&pb, rc, &got);
		expect_same("split", k, &whole, &got, true);
	}
	free(cuts);
	/* Leave the whole run in pa/ra. */
	rc = run_whole(lim, doc, len);
	snap(&pa, rc, &whole);
	return whole;
}

static int check_lim(const struct ingest_limits *lim, const char *doc)
{
	return check_doc_lim(lim, doc, strlen(doc)).rc;
}

static struct result check_doc(const char *doc)
{
	return check_doc_lim(NULL, doc, strlen(doc));
}

static void expect_ok(const char *doc)
{
	struct result r = check_doc(doc);

	if (r.rc != 0) {
		print_error("expected OK: %s\n  got %u %s: %s\n", doc, r.status, r.path, r.message);
		fail();
	}
}

static void expect_err_lim(const struct ingest_limits *lim, const char *doc, uint16_t status,
			   const char *path, const char *msg_prefix)
{
	struct result r = check_doc_lim(lim, doc, strlen(doc));

	if (r.rc == 0 || r.status != status || strcmp(r.path, path) != 0 ||
	    strncmp(r.message, msg_prefix, strlen(msg_prefix)) != 0) {
		print_error("document %.300s\n  want %u '%s' '%s...'\n  got rc %d %u '%s' '%s'\n",
			    doc, status, path, msg_prefix, r.rc, r.status, r.path, r.message);
		fail();
	}
	assert_int_equal(r.rc, status == 413 ? -E2BIG : -EINVAL);
	assert_non_null(pa.err.hint);
}

static void expect_err(const char *doc, uint16_t status, const char *path, const char *msg)
{
	expect_err_lim(NULL, doc, status, path, msg);
}

/* ---- Samples ---- */

/* The text right after the nth (0-based) occurrence of needle. */
static const char *after_nth(const char *doc, const char *needle, int nth)
{
	const char *s = doc;

	for (int k = 0; k <= nth; k++) {
		s = strstr(s, needle);
		assert_non_null(s);
		s += strlen(needle);
	}
	return s;
}

static int count_of(const char *doc, const char *needle)
{
	int n = 0;

	for (const char *s = doc; (s = strstr(s, needle)) != NULL; s += strlen(needle))
		n++;
	return n;
}

static void expect_num(double got, const char *doc, const char *key, int nth)
{
	double want = strtod(after_nth(doc, key, nth), NULL);

	if (memcmp(&got, &want, sizeof got) != 0) {
		print_error("%s #%d: got %.17g, text says %.17g\n", key, nth, got, want);
		fail();
	}
}

static void expect_str(const struct ingest_report *r, struct ingest_str s, const char *doc,
		       const char *key, int nth)
{
	const char *t = after_nth(doc, key, nth);
	size_t n = (size_t)(strchr(t, '"') - t);

	if (s.len != n || memcmp(ingest_str_ptr(r, s), t, n) != 0) {
		print_error("%s #%d: got '%.*s', text says '%.*s'\n", key, nth, (int)s.len,
			    ingest_str_ptr(r, s), (int)n, t);
		fail();
	}
}

static void test_sample_minimal(void **state)
{
	size_t len;
	char *doc = read_sample("ingest-minimal.json", &len);
	struct result r;
	const struct ingest_report *x = &ra;

	(void)state;
	r = check_doc_lim(NULL, doc, len);
	assert_int_equal(r.rc, 0);
	expect_num(x->cpuPercent, doc, "\"cpuPercent\": ", 0);
	expect_num(x->maxFds, doc, "\"maxFds\": ", 0);
	expect_num(x->tcpTotal, doc, "\"tcpTotal\": ", 0);
	assert_true(x->serverHealthy);
	expect_str(x, x->agentVersion, doc, "\"agentVersion\": \"", 0);
	assert_int_equal(x->has, (1u << INGEST_REPORT_services) - 1); /* all scalars, no arrays */
	assert_int_equal(x->services.count + x->containers.count + x->n_process, 0);
	free(doc);
}

static void test_sample_full(void **state)
{
	size_t len;
	char *doc = read_sample("ingest-full.json", &len);
	const struct ingest_report *x = &ra;
	struct result r;

	(void)state;
	r = check_doc_lim(NULL, doc, len);
	if (r.rc) {
		print_error("%s: %s\n", r.path, r.message);
		fail();
	}
	/* Counts, from the text. */
	assert_int_equal(x->services.count, count_of(doc, "\"restartCount\""));
	assert_int_equal(x->serviceHealthChecks.count, count_of(doc, "\"healthCheckUrl\""));
	assert_int_equal(x->tcpCheckResults.count + x->certCheckResults.count,
			 count_of(doc, "\"host\""));
	assert_int_equal(x->certCheckResults.count, count_of(doc, "\"issuer\""));
	assert_int_equal(x->containers.count, count_of(doc, "\"imageId\""));
	assert_int_equal(x->n_port, count_of(doc, "\"privatePort\""));
	assert_int_equal(x->n_mount, count_of(doc, "\"destination\""));
	assert_int_equal(x->n_label, count_of(doc, "\"com.docker.compose."));
	assert_int_equal(x->topProcesses.byCpu.count + x->topProcesses.byMemory.count,
			 count_of(doc, "\"threads\""));
	/* Values, by path, from the text. */
	expect_num(x->cpuPercent, doc, "{\"cpuPercent\": ", 0);
	expect_num(x->memoryUsedMb, doc, "\"memoryUsedMb\": ", 0);
	expect_num(x->loadAvg15, doc, "\"loadAvg15\": ", 0);
	expect_str(x, x->agentVersion, doc, "\"agentVersion\": \"", 0);
	for (int k = 0; k < (int)x->services.count; k++) {
		const struct ingest_service *s = &x->service[x->services.first + k];

		expect_num(s->networkRxMb, doc, "\"networkRxMb\": ", k);
		expect_num(s->memoryLimitMb, doc, "\"memoryLimitMb\": ", k);
		expect_str(x, s->health, doc, "\"health\": \"", k);
		assert_true(ingest_has(s, INGEST_SERVICE_restartCount));
	}
	{
		const struct ingest_health_check *h = &x->health_check[x->serviceHealthChecks.first + 5];

		expect_str(x, h->healthCheckUrl, doc, "\"healthCheckUrl\": \"", 5);
		expect_str(x, h->checkedAt, doc, "\"checkedAt\": \"", 5);
		assert_true(h->success);
		assert_false(ingest_has(h, INGEST_HEALTH_CHECK_error));
	}
	expect_num(x->tcp_check[x->tcpCheckResults.first + 3].durationMs, doc, "\"durationMs\": ",
		   (int)x->serviceHealthChecks.count + 3);
	expect_str(x, x->cert_check[x->certCheckResults.first + 4].issuer, doc, "\"issuer\": \"", 4);
	for (int k = 0; k < (int)x->containers.count; k++) {
		const struct ingest_container *c = &x->container[x->containers.first + k];

		expect_str(x, c->id, doc, "{\"id\": \"", k);
		expect_str(x, c->imageId, doc, "\"imageId\": \"", k);
		expect_num(c->created, doc, "\"created\": ", k);
		assert_int_equal(c->ports.count, 1);
		expect_num(x->port[c->ports.first].publicPort, doc, "\"publicPort\": ", k);
		expect_str(x, x->port[c->ports.first].ip, doc, "\"ip\": \"", k);
		assert_int_equal(c->labels.count, 2);
		expect_str(x, x->label[c->labels.first + 1].value, doc,
			   "\"com.docker.compose.service\": \"", k);
		expect_str(x, x->label[c->labels.first + 1].key, doc, "\"labels\": {\"com.docker.compose.project\": \"app\", \"",
			   k);
		expect_str(x, x->mount[c->mounts.first].source, doc, "\"source\": \"", k);
		expect_str(x, c->networkMode, doc, "\"networkMode\": \"", k);
	}
	{
		const struct ingest_top_processes *t = &x->topProcesses;
		const struct ingest_process *pm = &x->process[t->byMemory.first + 9];

		expect_num(pm->memoryMb, doc, "\"memoryMb\": ", (int)t->byCpu.count + 9);
		expect_str(x, pm->name, doc, "\"pid\": 1019, \"name\": \"", 0);
		expect_num(t->stats.zombie, doc, "\"zombie\": ", 0);
		expect_num(t->stats.sleeping, doc, "\"sleeping\": ", 0);
		assert_int_equal(t->stats.has, (1u << INGEST_PROCESS_STATS_NFIELDS) - 1);
	}
	free(doc);
}

/* ---- Guard page ---- */

static void test_guard_page_and_prefixes(void **state)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), len, area;
	char *doc = read_sample("ingest-full.json", &len), *m, *at;
	const char *end = strrchr(doc, '}');

	(void)state;
	area = (len + pg - 1) / pg * pg;
	m = mmap(NULL, area + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + area, pg, PROT_NONE), 0);

	/* Whole, ending at the guard page. */
	at = m + area - len;
	memcpy(at, doc, len);
	ingest_parser_init(&pa, &ra, NULL);
	assert_int_equal(ingest_parser_feed(&pa, at, len), 0);
	assert_int_equal(ingest_parser_finish(&pa), 0);

	/* Every prefix, ending at the guard page: valid so far, never
	 * complete (the last '}' is the last byte). */
	assert_true(end == doc + len - 1);
	for (size_t k = 0; k < len; k++) {
		at = m + area - k;
		memmove(at, doc, k);
		ingest_parser_init(&pb, &rb, NULL);
		assert_int_equal(ingest_parser_feed(&pb, at, k), 0);
		assert_int_equal(ingest_parser_finish(&pb), -EINVAL);
		assert_int_equal(pb.err.status, 400);
		assert_true(strstr(pb.err.message, k ? "unexpected end of input" : "empty") != NULL);
	}
	munmap(m, area + pg);
	free(doc);
}

/* ---- Documents generated from the schema ---- */

enum gk { G_NUM, G_BOOL, G_STR, G_DATE, G_ARR, G_OBJ, G_LABELS };
struct gfield {
	const char *name;
	enum gk kind;
	bool req;
	int child;
};
enum gt { GT_none = -1, GT_report, GT_service, GT_health_check, GT_tcp_check, GT_cert_check,
	  GT_container, GT_port, GT_mount, GT_top_processes, GT_process, GT_process_stats,
	  GT_COUNT };
#define GF_(a, n, k, r, c) { #n, G_##k, r, GT_##c },
static const struct gfield g_report[] = { INGEST_REPORT_FIELDS(GF_, _) };
static const struct gfield g_service[] = { INGEST_SERVICE_FIELDS(GF_, _) };
static const struct gfield g_health_check[] = { INGEST_HEALTH_CHECK_FIELDS(GF_, _) };
static const struct gfield g_tcp_check[] = { INGEST_TCP_CHECK_FIELDS(GF_, _) };
static const struct gfield g_cert_check[] = { INGEST_CERT_CHECK_FIELDS(GF_, _) };
static const struct gfield g_container[] = { INGEST_CONTAINER_FIELDS(GF_, _) };
static const struct gfield g_port[] = { INGEST_PORT_FIELDS(GF_, _) };
static const struct gfield g_mount[] = { INGEST_MOUNT_FIELDS(GF_, _) };
static const struct gfield g_top_processes[] = { INGEST_TOP_PROCESSES_FIELDS(GF_, _) };
static const struct gfield g_process[] = { INGEST_PROCESS_FIELDS(GF_, _) };
static const struct gfield g_process_stats[] = { INGEST_PROCESS_STATS_FIELDS(GF_, _) };
#define GN(a) (sizeof(a) / sizeof((a)[0]))
static const struct {
	const struct gfield *f;
	size_t n;
} gtypes[GT_COUNT] = {
	{ g_report, GN(g_report) }, { g_service, GN(g_service) },
	{ g_health_check, GN(g_health_check) }, { g_tcp_check, GN(g_tcp_check) },
	{ g_cert_check, GN(g_cert_check) }, { g_container, GN(g_container) },
	{ g_port, GN(g_port) }, { g_mount, GN(g_mount) },
	{ g_top_processes, GN(g_top_processes) }, { g_process, GN(g_process) },
	{ g_process_stats, GN(g_process_stats) },
};

/* A mutation: at the field whose path is `path`, omit it or put `value`. */
struct mut {
	const char *path;
	const char *value; /* NULL: omit */
};

struct gbuf {
	char s[16384];
	size_t n;
};

static void put(struct gbuf *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g->n += (size_t)vsnprintf(g->s + g->n, sizeof g->s - g->n, fmt, ap);
	va_end(ap);
	assert_true(g->n < sizeof g->s);
}

/* Calls visit(path, field) for every field of the generated document. */
typedef void (*visit_fn)(const char *path, const struct gfield *f, void *ctx);

static void gen_obj(struct gbuf *g, int t, const char *prefix, const struct mut *mu,
		    visit_fn visit, void *ctx);

static void gen_value(struct gbuf *g, const struct gfield *f, const char *path,
		      const struct mut *mu, visit_fn visit, void *ctx)
{
	char sub[INGEST_PATH_MAX];

	switch (f->kind) {
	case G_NUM:
		put(g, "12.5");
		break;
	case G_BOOL:
		put(g, "true");
		break;
	case G_STR:
		put(g, "\"v-%s\"", f->name);
		break;
	case G_DATE:
		put(g, "\"2024-02-29T23:59:59.125Z\"");
		break;
	case G_LABELS:
		put(g, "{\"a\": \"1\", \"com.example/x\": \"\"}");
		break;
	case G_OBJ:
		gen_obj(g, f->child, path, mu, visit, ctx);
		break;
	case G_ARR:
		/* Two items: mutations are aimed at the second. */
		put(g, "[");
		for (int k = 0; k < 2; k++) {
			snprintf(sub, sizeof sub, "%s[%d]", path, k);
			gen_obj(g, f->child, sub, k == 1 ? mu : NULL, k == 1 ? visit : NULL, ctx);
			put(g, k == 0 ? ", " : "]");
		}
		break;
	}
}

static void gen_obj(struct gbuf *g, int t, const char *prefix, const struct mut *mu,
		    visit_fn visit, void *ctx)
{
	char path[INGEST_PATH_MAX];
	bool first = true;

	put(g, "{");
	for (size_t k = 0; k < gtypes[t].n; k++) {
		const struct gfield *f = &gtypes[t].f[k];

		snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", f->name);
		if (visit)
			visit(path, f, ctx);
		if (mu && strcmp(mu->path, path) == 0 && !mu->value)
			continue;
		put(g, "%s\"%s\": ", first ? "" : ", ", f->name);
		first = false;
		if (mu && strcmp(mu->path, path) == 0)
			put(g, "%s", mu->value);
		else
			gen_value(g, f, path, mu, visit, ctx);
	}
	put(g, "}");
}

static const char *gen_doc(struct gbuf *g, const struct mut *mu, visit_fn visit, void *ctx)
{
	g->n = 0;
	gen_obj(g, GT_report, "", mu, visit, ctx);
	return g->s;
}

static struct gbuf gdoc;

struct fieldlist {
	int n;
	char path[128][INGEST_PATH_MAX];
	struct gfield f[128];
};

static void collect(const char *path, const struct gfield *f, void *ctx)
{
	struct fieldlist *l = ctx;

	assert_true(l->n < 128);
	snprintf(l->path[l->n], INGEST_PATH_MAX, "%s", path);
	l->f[l->n++] = *f;
}

static struct fieldlist fields;

static void test_generated_full_document(void **state)
{
	(void)state;
	gen_doc(&gdoc, NULL, NULL, NULL);
	expect_ok(gdoc.s);
	/* The second of each pair, down to the bottom. */
	assert_int_equal(ra.containers.count, 2);
	{
		const struct ingest_container *c = &ra.container[ra.containers.first + 1];
		const struct ingest_label *l = &ra.label[c->labels.first + 1];

		assert_int_equal(c->has, (1u << INGEST_CONTAINER_NFIELDS) - 1);
		assert_int_equal(c->ports.first, 2);
		assert_int_equal(ra.port[c->ports.first + 1].privatePort, 12.5);
		assert_int_equal(l->key.len, strlen("com.example/x"));
		assert_memory_equal(ingest_str_ptr(&ra, l->key), "com.example/x", l->key.len);
		assert_int_equal(l->value.len, 0);
	}
	assert_int_equal(ra.n_process, 4);
	assert_int_equal(ra.topProcesses.byMemory.first, 2);
}

static void test_required_fields(void **state)
{
	int tested = 0;

	(void)state;
	fields.n = 0;
	gen_doc(&gdoc, NULL, collect, &fields);
	every_split = false;
	for (int k = 0; k < fields.n; k++) {
		struct mut mu = { fields.path[k], NULL };

		gen_doc(&gdoc, &mu, NULL, NULL);
		if (fields.f[k].req) {
			expect_err(gdoc.s, 400, fields.path[k], "is required");
			tested++;
		} else {
			expect_ok(gdoc.s); /* optional: may be left out */
		}
	}
	every_split = true;
	/* Every required field of every object type, once. */
	assert_int_equal(tested, 1 + 3 + 5 + 5 + 7 + 2 + 4 + 3 + 6 * 2 + 5);
}

static const char *kind_msg(enum gk k)
{
	switch (k) {
	case G_NUM: return "must be a number";
	case G_BOOL: return "must be a boolean (true or false)";
	case G_STR: case G_DATE: return "must be a string";
	case G_ARR: return "must be an array";
	case G_OBJ: return "must be an object";
	default: return "must be an object of string values";
	}
}

static void test_wrong_types(void **state)
{
	static const struct {
		const char *text;
		enum gk is;
	} vals[] = {
		{ "0", G_NUM }, { "-1.5e3", G_NUM }, { "\"7\"", G_STR }, { "true", G_BOOL },
		{ "false", G_BOOL }, { "null", (enum gk)-1 }, { "[]", G_ARR },
		{ "[1]", G_ARR }, { "{}", G_OBJ },
	};

	(void)state;
	fields.n = 0;
	gen_doc(&gdoc, NULL, collect, &fields);
	every_split = false;
	for (int k = 0; k < fields.n; k++) {
		const struct gfield *f = &fields.f[k];

		for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
			struct mut mu = { fields.path[k], vals[v].text };
			enum gk want = f->kind == G_DATE ? G_STR : f->kind == G_LABELS ? G_OBJ : f->kind;

			if (vals[v].is == want)
				continue; /* right type: other tests cover the values */
			gen_doc(&gdoc, &mu, NULL, NULL);
			expect_err(gdoc.s, 400, fields.path[k], kind_msg(f->kind));
		}
	}
	every_split = true;
	/* Items of a schema array must be objects; label values strings. */
	expect_err("{\"services\": [{\"containerName\": \"a\"}, 3]}", 400, "services[1]",
		   "must be an object");
	expect_err("{\"containers\": [null]}", 400, "containers[0]", "must be an object");
	expect_err("{\"topProcesses\": {\"byCpu\": [[]]}}", 400, "topProcesses.byCpu[0]",
		   "must be an object");
	expect_err("{\"containers\": [{\"labels\": {\"a\": \"x\", \"b.c\": 1}}]}", 400,
		   "containers[0].labels[\"b.c\"]", "must be a string");
	expect_err("{\"containers\": [{\"labels\": {\"ok\": null}}]}", 400,
		   "containers[0].labels.ok", "must be a string");
	expect_err("[]", 400, "", "must be a JSON object");
	expect_err("\"x\"", 400, "", "must be a JSON object");
	expect_err("12", 400, "", "must be a JSON object");
	expect_err("null", 400, "", "must be a JSON object");
}

/* ---- checkedAt ---- */

static void date_doc(char *buf, size_t n, const char *date)
{
	snprintf(buf, n,
		 "{\"serviceHealthChecks\": [{\"containerName\": \"a\", \"healthCheckUrl\": \"u\", "
		 "\"success\": false, \"checkedAt\": \"%s\"}]}",
		 date);
}

static void test_dates(void **state)
{
	static const char *const good[] = {
		"2026-04-15T12:00:00Z", "2026-04-15T12:00Z", "2026-04-15T12:00:00.5Z",
		"2026-04-15T12:00:00.123456789012Z", "2024-02-29T00:00:00Z",
		"2000-02-29T00:00Z", "1600-02-29T00:00Z", "0000-02-29T00:00Z",
		"2004-02-29T00:00Z", "1996-02-29T10:00Z", "2026-01-31T23:59:59Z",
		"2026-03-31T00:00Z", "2026-04-30T00:00Z", "2026-12-31T23:59Z",
		"2026-02-28T00:00Z", "9999-12-31T23:59:59.999Z",
		"2026-04-15T12:00:00\\u005a", /* Z, escaped: the pattern sees the decoded string */
	};
	static const char *const bad[] = {
		"2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-02-29T00:00Z",
		"2026-02-30T00:00Z", "2026-04-31T00:00Z", "2026-06-31T00:00Z",
		"2026-09-31T00:00Z", "2026-11-31T00:00Z", "2026-01-32T00:00Z",
		"2026-00-10T00:00Z", "2026-13-10T00:00Z", "2026-01-00T00:00Z",
		"2026-04-15T24:00:00Z", "2026-04-15T23:60:00Z", "2026-04-15T23:59:60Z",
		"2026-04-15T12:00:00", "2026-04-15T12:00:00+00:00", "2026-04-15t12:00:00Z",
		"2026-04-15T12:00:00z", "2026-04-15 12:00:00Z", "2026-04-15T12:00:00.Z",
		"2026-04-15T12:00.5Z", "2026-04-15T12Z", "2026-4-15T12:00Z", "26-04-15T12:00Z",
		"2026-04-15T1:00Z", "2026-04-15T12:00:00ZZ", "2026-04-15T12:00:00Z ",
		" 2026-04-15T12:00:00Z", "", "2026-04-15", "2026-04-15T12:00:0Z",
		"+2026-04-15T12:00Z", "2026-04-15T12:00:00.1.2Z", "２026-04-15T12:00Z",
		"2026-04-15T30:00Z",
	};
	char doc[512];

	(void)state;
	for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
		date_doc(doc, sizeof doc, good[k]);
		expect_ok(doc);
	}
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		date_doc(doc, sizeof doc, bad[k]);
		expect_err(doc, 400, "serviceHealthChecks[0].checkedAt",
			   "is not a valid date-time (YYYY-MM-DDTHH:MM[:SS[.frac]]Z)");
	}
	/* expiresAt is a plain string in the seed: anything goes. */
	expect_ok("{\"certCheckResults\": [{\"containerName\": \"a\", \"host\": \"h\", \"port\": 1, "
		  "\"success\": true, \"durationMs\": 1, \"expiresAt\": \"soon\"}]}");
}

/* ---- JSON conformance, as the value of an unknown key ---- */

static void unknown_doc(char *buf, size_t n, const char *value)
{
	snprintf(buf, n, "{\"cpuPercent\": 1, \"x-extra\": %s, \"containers\": [{\"id\": \"i\", "
		 "\"name\": \"n\", \"image\": \"m\", \"imageId\": \"d\", \"state\": \"s\", \"status\": "
		 "\"t\", \"created\": 2, \"more\": %s}]}", value, value);
}

static void test_json_valid_values(void **state)
{
	static const char *const good[] = {
		"0", "-0", "1", "-1", "1E5", "1e-7", "-1.5e+10", "0.5", "1.0", "123456789012345678901234567890",
		"1e400", "-1e-400", "0e0", "0E+0", "1.5E-0", "9007199254740993",
		"true", "false", "null", "\"\"", "\"plain\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
		"\"\\u0000\"", "\"\\u00e9\\u20AC\\uD83D\\uDE00\"", "\"é€😀\"", "\"\\uDBFF\\uDFFF\"",
		"[]", "{}", "[[]]", "[{}]", "{\"\": 1}", "{\"a\": {\"b\": [1, 2, {\"c\": null}]}}",
		"[1, \"2\", true, false, null, [], {}, -0.0e-0]", " \t\n\r 5 \t\n\r ",
		"{\"a\": 1, \"a\": 2}", /* unknown duplicates: not detected (documented) */
		"\"\x7f\"", "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"",
		"\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"",
	};

	(void)state;
	for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
		char doc[1024];

		unknown_doc(doc, sizeof doc, good[k]);
		expect_ok(doc);
		assert_int_equal(ra.cpuPercent, 1);
		assert_int_equal(ra.container[0].created, 2);
		assert_int_equal(ra.has, (1u << INGEST_REPORT_cpuPercent) | (1u << INGEST_REPORT_containers));
	}
}

static void test_json_invalid_values(void **state)
{
	static const struct {
		const char *value, *msg;
	} bad[] = {
		{ "01", "is not valid JSON: a number must not have a leading zero" },
		{ "-01", "is not valid JSON: a number must not have a leading zero" },
		{ "00", "is not valid JSON: a number must not have a leading zero" },
		{ "+1", "is not valid JSON: unexpected character '+'" },
		{ ".5", "is not valid JSON: unexpected character '.'" },
		{ "5.", "is not valid JSON: unexpected character ','" },
		{ "5.e3", "is not valid JSON: unexpected character 'e'" },
		{ "1e", "is not valid JSON: unexpected character ','" },
		{ "1e+", "is not valid JSON: unexpected character ','" },
		{ "-", "is not valid JSON: unexpected character ','" },
		{ "- 1", "is not valid JSON: unexpected character ' '" },
		{ "0x10", "is not valid JSON: unexpected character 'x'" },
		{ "NaN", "is not valid JSON: unexpected character 'N'" },
		{ "Infinity", "is not valid JSON: unexpected character 'I'" },
		{ "-Infinity", "is not valid JSON: unexpected character 'I'" },
		{ "1.5.2", "is not valid JSON: unexpected character '.'" },
		{ "tru", "is not valid JSON: unexpected character ','" },
		{ "True", "is not valid JSON: unexpected character 'T'" },
		{ "nul", "is not valid JSON: unexpected character ','" },
		{ "nulll", "is not valid JSON: unexpected character 'l'" },
		{ "truefalse", "is not valid JSON: unexpected character 'f'" },
		{ "[1,]", "is not valid JSON: unexpected character ']'" },
		{ "[,1]", "is not valid JSON: unexpected character ','" },
		{ "[1 2]", "is not valid JSON: unexpected character '2'" },
		{ "{\"a\": 1,}", "is not valid JSON: unexpected character '}'" },
		{ "{\"a\" 1}", "is not valid JSON: unexpected character '1'" },
		{ "{\"a\": }", "is not valid JSON: unexpected character '}'" },
		{ "{a: 1}", "is not valid JSON: unexpected character 'a'" },
		{ "{'a': 1}", "is not valid JSON: unexpected character '''" },
		{ "{1: 1}", "is not valid JSON: unexpected character '1'" },
		{ "[1}", "is not valid JSON: unexpected character '}'" },
		{ "{\"a\": 1]", "is not valid JSON: unexpected character ']'" },
		{ "'x'", "is not valid JSON: unexpected character '''" },
		{ "\"a\tb\"", "is not valid JSON: unescaped control character 0x09 in a string" },
		{ "\"a\nb\"", "is not valid JSON: unescaped control character 0x0A in a string" },
		{ "\"\x01\"", "is not valid JSON: unescaped control character 0x01 in a string" },
		{ "\"\\x41\"", "is not valid JSON: invalid escape '\\x'" },
		{ "\"\\a\"", "is not valid JSON: invalid escape '\\a'" },
		{ "\"\\U0041\"", "is not valid JSON: invalid escape '\\U'" },
		{ "\"\\'\"", "is not valid JSON: invalid escape '\\''" },
		{ "\"\\u12\"", "is not valid JSON: \\u must be followed by 4 hex digits" },
		{ "\"\\u12G4\"", "is not valid JSON: \\u must be followed by 4 hex digits" },
		{ "\"\\uD800\"", "is not valid JSON: a \\u escape of a lone UTF-16 surrogate" },
		{ "\"\\uD800x\"", "is not valid JSON: a \\u escape of a lone UTF-16 surrogate" },
		{ "\"\\uD800\\n\"", "is not valid JSON: a \\u escape of a lone UTF-16 surrogate" },
		{ "\"\\uD800\\u0041\"", "is not valid JSON: a \\u escape of a lone UTF-16 surrogate" },
		{ "\"\\uD800\\uD800\"", "is not valid JSON: a \\u escape of a lone UTF-16 surrogate" },
		{ "\"\\uDC00\"", "is not valid JSON: a \\u escape of a lone UTF-16 surrogate" },
		{ "\"\\uDFFF\\uD800\"", "is not valid JSON: a \\u escape of a lone UTF-16 surrogate" },
		{ "\"\xc0\xaf\"", "is not valid UTF-8 (byte 0xC0)" },          /* overlong '/' */
		{ "\"\xc1\xbf\"", "is not valid UTF-8 (byte 0xC1)" },
		{ "\"\xe0\x80\xaf\"", "is not valid UTF-8 (byte 0x80)" },      /* overlong, 3 bytes */
		{ "\"\xf0\x80\x80\xaf\"", "is not valid UTF-8 (byte 0x80)" },  /* overlong, 4 bytes */
		{ "\"\xed\xa0\x80\"", "is not valid UTF-8 (byte 0xA0)" },      /* U+D800 encoded */
		{ "\"\xed\xbf\xbf\"", "is not valid UTF-8 (byte 0xBF)" },      /* U+DFFF encoded */
		{ "\"\xf4\x90\x80\x80\"", "is not valid UTF-8 (byte 0x90)" },  /* U+110000 */
		{ "\"\xf5\x80\x80\x80\"", "is not valid UTF-8 (byte 0xF5)" },
		{ "\"\xff\"", "is not valid UTF-8 (byte 0xFF)" },
		{ "\"\x80\"", "is not valid UTF-8 (byte 0x80)" },               /* lone continuation */
		{ "\"\xc3\"", "is not valid UTF-8 (byte 0x22)" },               /* truncated */
		{ "\"\xe2\x82\"", "is not valid UTF-8 (byte 0x22)" },
		{ "\"\xf0\x9f\x98\"", "is not valid UTF-8 (byte 0x22)" },
		{ "\"\xc3(\"", "is not valid UTF-8 (byte 0x28)" },
		{ "\"\xe2\x28\xa1\"", "is not valid UTF-8 (byte 0x28)" },
		{ "\xef\xbb\xbf" "1", "is not valid JSON: unexpected byte 0xEF" }, /* BOM */
		{ "\"abc", "is not valid JSON: unexpected character 'm'" }, /* the string ends at "memoryUsedMb */
		{ "", "is not valid JSON: unexpected character ','" },
		{ "[", "is not valid JSON: unexpected character ','" },
		{ "{", "is not valid JSON: unexpected character ','" },
		{ "{\"a\"", "is not valid JSON: unexpected character ','" },
		{ "/* c */ 1", "is not valid JSON: unexpected character '/'" },
		{ "\x00", "is not valid JSON: unexpected character ','" },
	};

	(void)state;
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		char doc[1024];

		/* Only the first occurrence matters: it fails first. */
		snprintf(doc, sizeof doc, "{\"cpuPercent\": 1, \"x-extra\": %s, \"memoryUsedMb\": 2}",
			 bad[k].value);
		expect_err(doc, 400, "x-extra", bad[k].msg);
	}
	/* Errors in keys and structure, and where they are reported. */
	expect_err("{\"cpuPercent\": 1,}", 400, "", "is not valid JSON: unexpected character '}'");
	expect_err("{\"cpuPercent\": 1 \"uptime\": 2}", 400, "cpuPercent",
		   "is not valid JSON: unexpected character '\"'");
	expect_err("{\"services\": [{\"containerName\": \"a\",]}", 400, "services[0]",
		   "is not valid JSON: unexpected character ']'");
	expect_err("{\"services\": [{\"containerName\": \"a\"},]}", 400, "services[1]",
		   "is not valid JSON: unexpected character ']'");
	expect_err("{\"cpuPercent\": 1} x", 400, "",
		   "is not valid JSON: unexpected character 'x' after the end of the document");
	expect_err("{\"cpuPercent\": 1}{}", 400, "",
		   "is not valid JSON: unexpected character '{' after the end of the document");
	expect_err("{\"a\\q\": 1}", 400, "", "is not valid JSON: invalid escape '\\q'");
	expect_err("{\"containers\": [{\"id\": \"\xff\"}]}", 400, "containers[0].id",
		   "is not valid UTF-8 (byte 0xFF)");
	expect_err("{\"agentVersion\": \"1\\uDE00\"}", 400, "agentVersion",
		   "is not valid JSON: a \\u escape of a lone UTF-16 surrogate");
	expect_err("{\"cpuPercent\": 1", 400, "cpuPercent",
		   "is not valid JSON: unexpected end of input");
	expect_err("", 400, "", "is not valid JSON: the body is empty");
	expect_err("   ", 400, "", "is not valid JSON: the body is empty");
	expect_err("{\"cpuPercent\": 01}", 400, "cpuPercent",
		   "is not valid JSON: a number must not have a leading zero");
	expect_err("{\"cpuPercent\": 1.}", 400, "cpuPercent",
		   "is not valid JSON: unexpected character '}'");
	expect_err("{\"cpuPercent\": -}", 400, "cpuPercent",
		   "is not valid JSON: unexpected character '}'");
	expect_err("{\"cpuPercent\": 2e}", 400, "cpuPercent",
		   "is not valid JSON: unexpected character '}'");
	expect_err("{\"serverHealthy\": tru}", 400, "serverHealthy",
		   "is not valid JSON: unexpected character '}'");
	expect_err("{\"serverHealthy\": trUe}", 400, "serverHealthy",
		   "is not valid JSON: unexpected character 'U'");
}

static void test_unknown_keys_everywhere(void **state)
{
	(void)state;
	expect_ok("{\"zz\": {\"cpuPercent\": \"not a number: unknown context\"}, \"topProcesses\": "
		  "{\"extra\": [1], \"byCpu\": [{\"pid\": 1, \"name\": \"n\", \"state\": \"S\", "
		  "\"cpuPercent\": 0, \"memoryMb\": 0, \"threads\": 1, \"cmdline\": [\"a\", {}]}], "
		  "\"byMemory\": [], \"stats\": {\"total\": 1, \"running\": 1, \"sleeping\": 0, "
		  "\"stopped\": 0, \"zombie\": 0, \"idle\": 9}}}");
	assert_int_equal(ra.topProcesses.byCpu.count, 1);
	assert_int_equal(ra.topProcesses.stats.total, 1);
	/* Keys are matched after unescaping, and exactly (case-sensitive). */
	expect_ok("{\"cpu\\u0050ercent\": 7, \"CPUPERCENT\": \"x\", \"cpuPercent \": \"y\"}");
	assert_int_equal(ra.cpuPercent, 7);
	assert_int_equal(ra.has, 1u << INGEST_REPORT_cpuPercent);
	expect_ok("{\"serviceHealthChecksX\": 1, \"serviceHealthCheck\": 2, \"\": 3}");
	assert_int_equal(ra.has, 0);
	/* Path of an error inside an unknown value: the unknown key. */
	expect_err("{\"services\": [{\"containerName\": \"a\", \"a b\": [1, 2, [3, tru]]}]}", 400,
		   "services[0][\"a b\"]", "is not valid JSON: unexpected character ']'");
}

/* ---- Strings are decoded into the arena ---- */

static void test_string_decoding(void **state)
{
	static const struct {
		const char *json, *want;
		size_t wlen;
	} cases[] = {
		{ "plain", "plain", 5 },
		{ "\\\"\\\\\\/\\b\\f\\n\\r\\t", "\"\\/\b\f\n\r\t", 8 },
		{ "\\u0041\\u00e9\\u20ac", "A\xc3\xa9\xe2\x82\xac", 6 },
		{ "\\uD83D\\uDE00", "\xf0\x9f\x98\x80", 4 },
		{ "\\udbff\\udfff", "\xf4\x8f\xbf\xbf", 4 },
		{ "a\\u0000b", "a\0b", 3 },
		{ "\xf0\x9f\x98\x80 \xc3\xa9", "\xf0\x9f\x98\x80 \xc3\xa9", 7 },
		{ "", "", 0 },
	};

	(void)state;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		char doc[256];

		snprintf(doc, sizeof doc, "{\"agentVersion\": \"%s\", \"containers\": [{\"id\": \"%s\", "
			 "\"name\": \"n\", \"image\": \"m\", \"imageId\": \"d\", \"state\": \"s\", "
			 "\"status\": \"t\", \"created\": 2, \"labels\": {\"%s\": \"%s\"}}]}",
			 cases[k].json, cases[k].json, cases[k].json, cases[k].json);
		expect_ok(doc);
		{
			const struct ingest_container *c = &ra.container[0];
			const struct ingest_label *l = &ra.label[c->labels.first];
			struct ingest_str all[] = { ra.agentVersion, c->id, l->key, l->value };

			for (size_t j = 0; j < 4; j++) {
				assert_int_equal(all[j].len, cases[k].wlen);
				assert_true(all[j].off + all[j].len <= ra.arena_len);
				assert_memory_equal(ingest_str_ptr(&ra, all[j]), cases[k].want, cases[k].wlen);
			}
		}
	}
}

/* ---- Numbers ---- */

static double parse_num(const char *text, int *rc)
{
	char doc[2048];

	snprintf(doc, sizeof doc, "{\"uptime\": %s}", text);
	*rc = run_whole(NULL, doc, strlen(doc));
	return ra.uptime;
}

/* The validator's double for text must be strtod's, bit for bit, whole
 * and (if split) fed one byte at a time. */
static void expect_number(const char *text, bool split)
{
	double want = strtod(text, NULL), got;
	int rc;

	got = parse_num(text, &rc);
	if (rc != 0 || memcmp(&got, &want, sizeof got) != 0) {
		print_error("%s: got %.17g (rc %d, %s), strtod %.17g\n", text, got, rc,
			    pa.err.message, want);
		fail();
	}
	if (split) {
		char doc[2048];
		size_t len;

		snprintf(doc, sizeof doc, "{\"uptime\": %s}", text);
		len = strlen(doc);
		{
			size_t cuts[2048];

			for (size_t k = 0; k + 1 < len; k++)
				cuts[k] = k + 1;
			assert_int_equal(run_cuts(&pb, &rb, NULL, doc, len, cuts, len - 1), 0);
			assert_memory_equal(&rb.uptime, &want, sizeof want);
		}
	}
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void test_numbers_hard_cases(void **state)
{
	static const char *const hard[] = {
		"0", "-0", "0.0", "-0.0", "1", "-1", "0.1", "0.2", "0.3", "1.5", "23.5", "6120.5",
		"9007199254740992", "9007199254740993", "9007199254740994", "9007199254740995",
		"18014398509481985", "1.7976931348623157e308", "1.7976931348623158e308",
		"4.9e-324", "5e-324", "2.4703282292062327e-324",
		"2.4703282292062328e-324", "2.2250738585072011e-308", "2.2250738585072012e-308",
		"2.2250738585072014e-308", "2.225073858507201136057409796709131975934819546351645648e-308",
		"1e-400", "-1e-400", "1e22", "1e23", "8.98846567431158e307", "123456789012345678",
		"1234567890123456789", "12345678901234567890", "123456789012345678901",
		"0.30000000000000004", "0.1e1", "100e-2", "1E5", "1e-7", "-1.5e+10", "1e+0",
		"3.141592653589793238462643383279502884197169399375105820974944",
		"7.2057594037927933e16", "9223372036854775807", "9223372036854775808",
		"18446744073709551615", "18446744073709551616", "0.000000000000000000000001",
		"1.00000000000000011102230246251565404236316680908203125",
		"1.00000000000000011102230246251565404236316680908203124",
		"1.00000000000000011102230246251565404236316680908203126",
		"9007199254740993.0000000000000000000000000000000000001",
		"2.2250738585072011e-308", "4.9406564584124654e-324", "1e-323", "1e-324",
		"2e-324", "3e-324", "1.18e-38", "3.4028235e38", "1e308", "0.1e309",
		"17976931348623157e292", "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791.9999999999",
		"0e99999999999", "0.000e-99999999999",
	};

	(void)state;
	for (size_t k = 0; k < sizeof hard / sizeof hard[0]; k++)
		expect_number(hard[k], true);
	/* A halfway case longer than 768 digits: the sticky digit decides. */
	{
		static char hw[2100];
		size_t n = 0;

		n += (size_t)sprintf(hw, "9007199254740993.");
		for (int k = 0; k < 1000; k++)
			hw[n++] = '0';
		hw[n++] = '1';
		hw[n] = '\0';
		expect_number(hw, false);
		assert_true(ra.uptime == 9007199254740994.0);
		hw[n - 1] = '0';
		expect_number(hw, false);
		assert_true(ra.uptime == 9007199254740992.0);
	}
}

static void test_numbers_random(void **state)
{
	char text[64];

	(void)state;
	for (int k = 0; k < 100000; k++) {
		uint64_t bits = rnd();
		double d;

		switch (k % 5) {
		case 0: /* any finite double, shortest-ish and full precision */
			memcpy(&d, &bits, sizeof d);
			if (!isfinite(d))
				continue;
			snprintf(text, sizeof text, k % 2 ? "%.17g" : "%.15g", d);
			break;
		case 1: /* 17-19 digit mantissas with small exponents */
			snprintf(text, sizeof text, "%llu.%llue%d",
				 (unsigned long long)(bits % 1000000000ull),
				 (unsigned long long)(rnd() % 10000000000ull), (int)(rnd() % 60) - 30);
			break;
		case 2: /* typical metrics: a few decimals */
			snprintf(text, sizeof text, "%llu.%03llu",
				 (unsigned long long)(bits % 100000000ull),
				 (unsigned long long)(rnd() % 1000));
			break;
		case 3: /* near halfway between doubles: long mantissas */
			memcpy(&d, &bits, sizeof d);
			if (!isfinite(d) || d == 0)
				continue;
			snprintf(text, sizeof text, "%.25e", d);
			break;
		default: /* subnormals and the bottom of the range */
			snprintf(text, sizeof text, "%llue-%d", (unsigned long long)(bits % 100000000000000000ull),
				 300 + (int)(rnd() % 45));
			break;
		}
		/* The grammar wants no leading '+' and digits on both sides of '.'. */
		if (strchr(text, 'n') || strchr(text, 'i'))
			continue;
		expect_number(text, k < 200);
	}
}

static void test_numbers_out_of_range(void **state)
{
	(void)state;
	expect_err("{\"uptime\": 1e400}", 400, "uptime", "is out of range");
	expect_err("{\"uptime\": -1e400}", 400, "uptime", "is out of range");
	expect_err("{\"uptime\": 1.8e308}", 400, "uptime", "is out of range");
	expect_err("{\"uptime\": 1.7976931348623159e308}", 400, "uptime", "is out of range");
	expect_err("{\"uptime\": 179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792}",
		   400, "uptime", "is out of range");
	expect_err("{\"containers\": [{\"created\": 1e999999999999999999}]}", 400,
		   "containers[0].created", "is out of range");
	expect_ok("{\"uptime\": 1e-99999999999999999999}");
	assert_true(ra.uptime == 0 && !signbit(ra.uptime));
	expect_ok("{\"uptime\": -1e-400}");
	assert_true(ra.uptime == 0 && signbit(ra.uptime));
	/* Out of range only matters where the number is stored. */
	expect_ok("{\"x\": 1e400}");
}

/* ---- Duplicates ---- */

static void test_duplicates(void **state)
{
	(void)state;
	expect_err("{\"cpuPercent\": 1, \"cpuPercent\": 1}", 400, "cpuPercent", "appears twice");
	expect_err("{\"services\": [], \"uptime\": 1, \"services\": []}", 400, "services",
		   "appears twice");
	expect_err("{\"cpu\\u0050ercent\": 1, \"cpuPercent\": 2}", 400, "cpuPercent",
		   "appears twice");
	expect_err("{\"topProcesses\": {\"stats\": {\"zombie\": 1, \"zombie\": 2}}}", 400,
		   "topProcesses.stats.zombie", "appears twice");
	expect_err("{\"containers\": [{\"labels\": {\"a\": \"1\", \"b\": \"2\", \"a\": \"1\"}}]}",
		   400, "containers[0].labels.a", "appears twice");
	expect_err("{\"containers\": [{\"labels\": {\"a.b\": \"1\", \"a\\u002eb\": \"2\"}}]}", 400,
		   "containers[0].labels[\"a.b\"]", "appears twice");
	/* Same label key in two containers: fine. */
	expect_ok("{\"containers\": [{\"id\": \"1\", \"name\": \"n\", \"image\": \"m\", \"imageId\": "
		  "\"d\", \"state\": \"s\", \"status\": \"t\", \"created\": 2, \"labels\": {\"a\": \"1\"}}, "
		  "{\"id\": \"2\", \"name\": \"n\", \"image\": \"m\", \"imageId\": \"d\", \"state\": \"s\", "
		  "\"status\": \"t\", \"created\": 2, \"labels\": {\"a\": \"1\", \"ab\": \"2\", \"\": \"3\"}}]}");
	assert_int_equal(ra.n_label, 4);
	/* Unknown keys may repeat (documented). */
	expect_ok("{\"x\": 1, \"x\": {}}");
}

/* ---- Limits ---- */

#define BIG (1u << 20)
static char big[BIG];

/* A document with `n` items in the array at `where`. */
static const char *many(const char *head, const char *item, unsigned n, const char *tail)
{
	size_t at = (size_t)snprintf(big, BIG, "%s", head);

	for (unsigned k = 0; k < n; k++)
		at += (size_t)snprintf(big + at, BIG - at, "%s%s", k ? ", " : "", item);
	snprintf(big + at, BIG - at, "%s", tail);
	return big;
}

#define CONTAINER_HEAD "{\"containers\": [{\"id\": \"i\", \"name\": \"n\", \"image\": \"m\", " \
	"\"imageId\": \"d\", \"state\": \"s\", \"status\": \"t\", \"created\": 2, "

static void expect_limit(const struct ingest_limits *lim, const char *head, const char *item,
			 unsigned n, const char *tail, const char *path, const char *msg)
{
	struct result r;

	many(head, item, n, tail);
	r = check_doc_lim(lim, big, strlen(big));
	if (r.rc != 0) {
		print_error("%u items should fit: %s %s\n", n, r.path, r.message);
		fail();
	}
	many(head, item, n + 1, tail);
	expect_err_lim(lim, big, 413, path, msg);
}

static void test_limits(void **state)
{
	struct ingest_limits lim = { 0 };
	char msg[128];

	(void)state;
	lim.services = lim.health_checks = lim.tcp_checks = lim.cert_checks = 3;
	lim.containers = lim.processes = lim.ports_per_container = lim.mounts_per_container = 3;
	lim.labels_per_container = 3;
	expect_limit(&lim, "{\"services\": [", "{\"containerName\": \"a\"}", 3, "]}", "services",
		     "too many items (at most 3)");
	expect_limit(&lim, "{\"serviceHealthChecks\": [",
		     "{\"containerName\": \"a\", \"healthCheckUrl\": \"u\", \"success\": true}", 3, "]}",
		     "serviceHealthChecks", "too many items (at most 3)");
	expect_limit(&lim, "{\"tcpCheckResults\": [",
		     "{\"containerName\": \"a\", \"host\": \"h\", \"port\": 1, \"success\": true, \"durationMs\": 1}",
		     3, "]}", "tcpCheckResults", "too many items (at most 3)");
	expect_limit(&lim, "{\"certCheckResults\": [",
		     "{\"containerName\": \"a\", \"host\": \"h\", \"port\": 1, \"success\": true, \"durationMs\": 1}",
		     3, "]}", "certCheckResults", "too many items (at most 3)");
	expect_limit(&lim, "{\"containers\": [",
		     "{\"id\": \"i\", \"name\": \"n\", \"image\": \"m\", \"imageId\": \"d\", \"state\": \"s\", \"status\": \"t\", \"created\": 2}",
		     3, "]}", "containers", "too many items (at most 3)");
	expect_limit(&lim, CONTAINER_HEAD "\"ports\": [", "{\"privatePort\": 1, \"type\": \"tcp\"}", 3,
		     "]}]}", "containers[0].ports", "too many items (at most 3)");
	expect_limit(&lim, CONTAINER_HEAD "\"mounts\": [",
		     "{\"source\": \"s\", \"destination\": \"d\", \"mode\": \"m\", \"type\": \"t\"}", 3,
		     "]}]}", "containers[0].mounts", "too many items (at most 3)");
	{
		/* Labels need distinct keys. */
		const char *ok = CONTAINER_HEAD "\"labels\": {\"a\": \"\", \"b\": \"\", \"c\": \"\"}}]}";
		const char *over = CONTAINER_HEAD "\"labels\": {\"a\": \"\", \"b\": \"\", \"c\": \"\", \"d\": \"\"}}]}";

		assert_int_equal(check_lim(&lim, ok), 0);
		expect_err_lim(&lim, over, 413, "containers[0].labels", "too many items (at most 3)");
	}
	{
		const char *tp = "{\"topProcesses\": {\"byMemory\": [], \"byCpu\": [";
		expect_limit(&lim, tp,
			     "{\"pid\": 1, \"name\": \"n\", \"state\": \"S\", \"cpuPercent\": 0, \"memoryMb\": 0, \"threads\": 1}",
			     3, "], \"stats\": {\"total\": 1, \"running\": 1, \"sleeping\": 0, \"stopped\": 0, \"zombie\": 0}}}",
			     "topProcesses.byCpu", "too many items (at most 3)");
	}
	/* Pool totals across containers. */
	{
		struct ingest_limits l2 = { 0 };
		const char *c = "{\"id\": \"i\", \"name\": \"n\", \"image\": \"m\", \"imageId\": \"d\", "
				"\"state\": \"s\", \"status\": \"t\", \"created\": 2, \"ports\": "
				"[{\"privatePort\": 1, \"type\": \"tcp\"}, {\"privatePort\": 2, \"type\": \"udp\"}]}";

		l2.ports = 5;
		many("{\"containers\": [", c, 2, "]}");
		assert_int_equal(check_doc_lim(&l2, big, strlen(big)).rc, 0);
		many("{\"containers\": [", c, 3, "]}");
		expect_err_lim(&l2, big, 413, "containers[2].ports",
			       "does not fit: a report may hold at most 5 ports in all");
	}
	/* Default capacity: 256 services fit, 257 do not. */
	expect_limit(NULL, "{\"services\": [", "{\"containerName\": \"a\"}", 256, "]}", "services",
		     "too many items (at most 256)");
	/* Arena, string and key lengths. */
	{
		struct ingest_limits l3 = { 0 };

		l3.arena_bytes = 10;
		expect_ok("{\"agentVersion\": \"0123456789\"}");
		assert_int_equal(check_lim(&l3, "{\"agentVersion\": \"0123456789\"}"), 0);
		expect_err_lim(&l3, "{\"agentVersion\": \"0123456789a\"}", 413, "agentVersion",
			       "does not fit: the strings of a report may take at most 10 bytes");
		expect_err_lim(&l3, "{\"agentVersion\": \"01234\", \"services\": [{\"containerName\": \"567890\"}]}",
			       413, "services[0].containerName", "does not fit");
		/* Unknown values take no arena. */
		assert_int_equal(check_lim(&l3, "{\"x\": \"0123456789abcdef\"}"), 0);

		memset(&l3, 0, sizeof l3);
		l3.string_bytes = 4;
		l3.key_bytes = 12; /* "agentVersion" */
		expect_ok("{\"agentVersion\": \"\\u20ac\"}");
		assert_int_equal(check_lim(&l3, "{\"agentVersion\": \"a\\u20ac\"}"), 0);
		expect_err_lim(&l3, "{\"agentVersion\": \"ab\\u20ac\"}", 413, "agentVersion",
			       "is longer than 4 bytes");
		expect_err_lim(&l3, "{\"x\": \"abcde\"}", 413, "x", "is longer than 4 bytes");
		expect_err_lim(&l3, "{\"abcdefghijklm\": 1}", 413, "", "has a key longer than 12 bytes");
		expect_err_lim(&l3, "{\"x\": {\"abcdefghijklm\": 1}}", 413, "x",
			       "has a key longer than 12 bytes");
		expect_err_lim(&l3, "{\"x\": {\"abcdefghijk\\u00e9\": 1}}", 413, "x",
			       "has a key longer than 12 bytes");
		expect_err_lim(&l3, "{\"containers\": [{\"labels\": {\"abcdefghijklm\": \"\"}}]}", 413,
			       "containers[0].labels", "has a key longer than 12 bytes");
		/* A known key longer than the limit is too long, not unknown. */
		expect_err_lim(&l3, "{\"certCheckResults\": []}", 413, "",
			       "has a key longer than 12 bytes");
	}
	/* Depth: the root is level 1. */
	{
		char doc[512];
		size_t n = 0;

		n += (size_t)sprintf(doc, "{\"x\": ");
		for (unsigned k = 0; k < INGEST_DEFAULT_DEPTH; k++)
			doc[n++] = '['; /* the last one is level 33 */
		doc[n] = '\0';
		snprintf(msg, sizeof msg, "is nested more than %u levels deep", INGEST_DEFAULT_DEPTH);
		expect_err(doc, 413, "x", msg);
		/* Closing them: 32 levels are fine. */
		n = (size_t)sprintf(doc, "{\"x\": ");
		for (unsigned k = 0; k + 1 < INGEST_DEFAULT_DEPTH; k++)
			doc[n++] = '[';
		for (unsigned k = 0; k + 1 < INGEST_DEFAULT_DEPTH; k++)
			doc[n++] = ']';
		doc[n++] = '}';
		doc[n] = '\0';
		expect_ok(doc);
		{
			/* Deep nesting in a schema path counts too. */
			struct ingest_limits l4 = { 0 };

			l4.depth = 5;
			assert_int_equal(check_lim(&l4, CONTAINER_HEAD "\"ports\": [{\"privatePort\": 1, \"type\": \"t\"}]}]}"), 0);
			expect_err_lim(&l4, CONTAINER_HEAD "\"ports\": [{\"privatePort\": 1, \"type\": \"t\", \"x\": []}]}]}",
				       413, "containers[0].ports[0].x", "is nested more than 5 levels deep");
		}
	}
	/* Limits above the capacity are lowered to it; 0 means the default. */
	{
		struct ingest_limits l5;

		memset(&l5, 0xff, sizeof l5);
		ingest_parser_init(&pa, &ra, &l5);
		assert_int_equal(ingest_parser_limits(&pa)->containers, INGEST_CAP_CONTAINERS);
		assert_int_equal(ingest_parser_limits(&pa)->depth, INGEST_CAP_DEPTH);
		assert_int_equal(ingest_parser_limits(&pa)->key_bytes, INGEST_CAP_KEY);
		ingest_parser_init(&pa, &ra, NULL);
		assert_int_equal(ingest_parser_limits(&pa)->string_bytes, INGEST_DEFAULT_STRING_BYTES);
		assert_int_equal(ingest_parser_limits(&pa)->arena_bytes, INGEST_CAP_ARENA);
	}
}

/* ---- The rest of the contract ---- */

static void test_sticky_and_reuse(void **state)
{
	const char *bad = "{\"cpuPercent\": \"x\"}";

	(void)state;
	ingest_parser_init(&pa, &ra, NULL);
	assert_int_equal(ingest_parser_feed(&pa, bad, 16), -EINVAL);
	assert_string_equal(pa.err.path, "cpuPercent");
	assert_int_equal(ingest_parser_feed(&pa, "}", 1), -EINVAL);
	assert_int_equal(ingest_parser_finish(&pa), -EINVAL);
	assert_string_equal(pa.err.message, "must be a number");
	assert_int_equal(pa.err.status, 400);
	/* The same parser and report, reset, take the next body. */
	ingest_parser_init(&pa, &ra, NULL);
	assert_int_equal(ingest_parser_feed(&pa, "{\"uptime\": 3}", 13), 0);
	assert_int_equal(ingest_parser_feed(&pa, "  \n", 3), 0);
	assert_int_equal(ingest_parser_feed(&pa, "", 0), 0);
	assert_int_equal(ingest_parser_finish(&pa), 0);
	assert_int_equal(ra.has, 1u << INGEST_REPORT_uptime);
	assert_int_equal(ra.uptime, 3);
	assert_int_equal(pa.err.status, 0);
	/* Data after finish is an error. */
	assert_int_equal(ingest_parser_feed(&pa, " ", 1), -EINVAL);
}

static void test_long_path(void **state)
{
	char doc[1024], want[INGEST_PATH_MAX];
	size_t n;

	(void)state;
	snprintf(doc, sizeof doc, "{\"containers\": [{\"labels\": {\"%0250d\": \"\", \"%0250d\": 1}}]}", 1, 2);
	n = (size_t)snprintf(want, sizeof want, "containers[0].labels[\"");
	while (n < INGEST_PATH_MAX - 4)
		want[n++] = '0';
	memcpy(want + n, "...", 4);
	expect_err(doc, 400, want, "must be a string");
	assert_int_equal(strlen(pa.err.path), INGEST_PATH_MAX - 1);
}

/*
 * Regression (found by fuzz_ingest_validator): a string over a length
 * limit that also broke the date pattern (or UTF-8) before the limit gave
 * "is longer than" whole but the content error when split. The first
 * offending byte decides, however the input is split.
 */
static void test_regression_limit_vs_content_error_split_independent(void **state)
{
	struct ingest_limits lim = { 0 };

	(void)state;
	lim.string_bytes = 16;
	expect_err_lim(&lim, "{\"serviceHealthChecks\": [{\"checkedAt\": \"2024-02-R29T23:59:59Z\"}]}", 400,
		       "serviceHealthChecks[0].checkedAt", "is not a valid date-time");
	expect_err_lim(&lim, "{\"serviceHealthChecks\": [{\"checkedAt\": \"2024-02-29T23:59:59.12345Z\"}]}", 413,
		       "serviceHealthChecks[0].checkedAt", "is longer than 16 bytes");
	/* A UTF-8 sequence crossing the limit is checked whole first. */
	expect_err_lim(&lim, "{\"agentVersion\": \"0123456789abcde\xe2(\"}", 400, "agentVersion",
		       "is not valid UTF-8 (byte 0x28)");
	expect_err_lim(&lim, "{\"agentVersion\": \"0123456789abcde\xe2\x82(\"}", 400, "agentVersion",
		       "is not valid UTF-8 (byte 0x28)");
	expect_err_lim(&lim, "{\"agentVersion\": \"0123456789abcde\xe2\x82\xac\"}", 413, "agentVersion",
		       "is longer than 16 bytes");
	/* Bad UTF-8 in a date: the UTF-8 error, split or not. */
	expect_err("{\"serviceHealthChecks\": [{\"checkedAt\": \"2\xc7\xcd\"}]}", 400,
		   "serviceHealthChecks[0].checkedAt", "is not valid UTF-8 (byte 0xCD)");
	memset(&lim, 0, sizeof lim);
	lim.arena_bytes = 16;
	expect_err_lim(&lim, "{\"agentVersion\": \"0123456789abcde\xe2(\"}", 400, "agentVersion",
		       "is not valid UTF-8 (byte 0x28)");
	expect_err_lim(&lim, "{\"agentVersion\": \"0123456789abcde\xe2\x82\xac\"}", 413, "agentVersion",
		       "does not fit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_minimal),
		cmocka_unit_test(test_sample_full),
		cmocka_unit_test(test_guard_page_and_prefixes),
		cmocka_unit_test(test_generated_full_document),
		cmocka_unit_test(test_required_fields),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_json_valid_values),
		cmocka_unit_test(test_json_invalid_values),
		cmocka_unit_test(test_unknown_keys_everywhere),
		cmocka_unit_test(test_string_decoding),
		cmocka_unit_test(test_numbers_hard_cases),
		cmocka_unit_test(test_numbers_random),
		cmocka_unit_test(test_numbers_out_of_range),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_sticky_and_reuse),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_regression_limit_vs_content_error_split_independent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
