/*
 * The fleet exposition (include/ringside/fleet_expo.h) over a real fleet
 * store holding both samples for several agents and organizations, at
 * different ages, plus hand-made reports for escaping, overlong labels,
 * dates and number formatting. The exposition rendered in pieces of every
 * size from FLEET_EXPO_MIN_CAP up must be the one rendered whole, pass
 * promtool (and, for OpenMetrics, the Python client's strict parser when
 * it is installed), keep each family in one block, and say the numbers of
 * the samples in base units. Every call stays within its step budget,
 * capped or not; shards, organizations and groups split the fleet
 * exactly; no two series are the same.
 *
 * The samples are read from samples/ (tests run from the repo
 * root) or $RINGSIDE_SAMPLES.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringside/fleet_expo.h"
#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/ingest.h"
#include "ringside/metrics_expo.h"

#include "unit_samples.h"

#define NOW 1800000000000LL
#define STALE 180000
#define TTL 300000
#define WHOLE_CAP (4u << 20)

static struct ingest_parser parser;
static struct ingest_report report;
static _Alignas(64) unsigned char blob[FLEET_BLOB_MAX];
static struct fleet_store store;
static char *full, *minimal;
static size_t full_len, minimal_len;

/* Validates doc, encodes it and publishes it for (org, agent). */
static void publish(const char *org, size_t org_len, const char *agent, const char *doc,
		    size_t len, int64_t received_ms)
{
	size_t n;

	ingest_parser_init(&parser, &report, NULL);
	if (ingest_parser_feed(&parser, doc, len) || ingest_parser_finish(&parser)) {
		print_error("%s at %s: %s\n", org, parser.err.path, parser.err.message);
		fail();
	}
	n = fleet_report_encode(&report, blob, sizeof blob);
	assert_true(n > 0);
	assert_int_equal(fleet_publish(&store, 0, org, org_len, agent, strlen(agent), blob, n,
				       received_ms),
			 0);
}

static void publish_s(const char *org, const char *agent, const char *doc, size_t len,
		      int64_t received_ms)
{
	publish(org, strlen(org), agent, doc, len, received_ms);
}

/* Appends printf output to a growing string. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->len + (size_t)n + 1 > b->cap) {
		b->cap = (b->len + (size_t)n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sb_repeat(struct sbuf *b, char c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sb_printf(b, "%c", c);
}

/* Labels that need escaping (and a NUL), overlong ones around the 1 KiB
 * bound, dates in several forms. */
static void publish_odd(void)
{
	struct sbuf b = {0};

	sb_printf(&b, "{\"agentVersion\": \"v\\\"1\\\\\", \"services\": [");
	sb_printf(&b, "{\"containerName\": \"we\\\"ird\\\\name\\nline\", \"cpuPercent\": 1.5, "
		      "\"state\": \"running\"},");
	sb_printf(&b, "{\"containerName\": \"");
	sb_repeat(&b, 'x', FLEET_EXPO_LABEL_MAX); /* exactly at the bound: kept */
	sb_printf(&b, "\", \"cpuPercent\": 2},{\"containerName\": \"");
	sb_repeat(&b, 'x', FLEET_EXPO_LABEL_MAX - 1); /* one \" more: dropped */
	sb_printf(&b, "\\\"\", \"cpuPercent\": 3},{\"containerName\": \"");
	sb_repeat(&b, 'y', 16000); /* two series dropped */
	sb_printf(&b, "\", \"cpuPercent\": 4, \"memoryUsedMb\": 5}],");
	sb_printf(&b, "\"certCheckResults\": ["
		      "{\"containerName\": \"c\", \"host\": \"h\", \"port\": 443, \"success\": false, "
		      "\"durationMs\": 20, \"expiresAt\": \"2027-01-01T01:00:00.250+01:00\"},"
		      "{\"containerName\": \"c\", \"host\": \"h2\", \"port\": 443.5, \"success\": true, "
		      "\"durationMs\": 20, \"expiresAt\": \"1969-12-31t23:59:59.5z\"},"
		      "{\"containerName\": \"c\", \"host\": \"h3\", \"port\": 1, \"success\": true, "
		      "\"durationMs\": 20, \"expiresAt\": \"2027-02-29T00:00:00Z\"},"
		      "{\"containerName\": \"c\", \"host\": \"h4\", \"port\": 1, \"success\": true, "
		      "\"durationMs\": 20, \"expiresAt\": \"soon\"}]}");
	publish_s("org-c", "odd", b.p, b.len, NOW);
	free(b.p);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Numbers of every shape the formatter has a path for. */
static void publish_numbers(void)
{
	struct sbuf b = {0};

	sb_printf(&b, "{\"services\": [");
	for (unsigned i = 0; i < INGEST_CAP_SERVICES; i++) {
		unsigned digits = 1 + (unsigned)(rnd() % 17), k = (unsigned)(rnd() % 9);
		uint64_t m = rnd() % 100000000000000000ull;
		char num[40];

		for (unsigned d = digits; d < 17; d++)
			m /= 10;
		snprintf(num, sizeof num, "%s%llu", i % 3 ? "" : "-", (unsigned long long)m);
		sb_printf(&b, "%s{\"containerName\": \"n%u\", \"cpuPercent\": %se-%u, "
			      "\"memoryUsedMb\": %s.%u, \"networkRxMb\": %.17g}",
			  i ? "," : "", i, num, k, num, i, (double)(rnd() >> 11) * 0x1p-40);
	}
	sb_printf(&b, "]}");
	publish_s("org-n", "numbers", b.p, b.len, NOW);
	free(b.p);
}

static int setup(void **state)
{
	(void)state;
	full = read_sample("ingest-full.json", &full_len);
	minimal = read_sample("ingest-minimal.json", &minimal_len);
	if (fleet_store_init(&store, 1024, 1, 64u << 20))
		return -1;
	publish_s("org-a", "agent-1", full, full_len, NOW - 10877);   /* 1799999989.123 */
	publish_s("org-a", "agent-2", minimal, minimal_len, NOW - 5000);
	publish_s("org-a", "agent-3", full, full_len, NOW - STALE);    /* just stale */
	publish_s("org-a", "agent-4", full, full_len, NOW - TTL);      /* just expired */
	publish_s("org-b", "agent-1", full, full_len, NOW - TTL + 1);  /* stale, kept */
	publish_s("org-b", "agent-5", minimal, minimal_len, NOW - STALE + 1);
	publish_s("o\"q", "a\\b", minimal, minimal_len, NOW);
	publish("bad\xff", 4, "agent-x", minimal, minimal_len, NOW); /* not UTF-8 */
	publish_odd();
	publish_numbers();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fleet_store_fini(&store);
	free(full);
	free(minimal);
	return 0;
}

/* Every group: the host-only default is tested on its own. */
static struct fleet_expo_options opts(enum expo_format f, uint64_t max_series)
{
	return (struct fleet_expo_options){.format = f, .now_ms = NOW, .stale_ms = STALE,
					   .ttl_ms = TTL, .max_series = max_series,
					   .groups = FLEET_GROUP_ALL};
}

/*
 * Checks one call against the piece contract: at most cap bytes, whole
 * lines, at most the budget of visits; a piece ends short of
 * cap - FLEET_EXPO_LINE_MAX (0 bytes included) only at the end or after
 * the whole budget.
 */
static void check_piece(const struct fleet_expo_cursor *c, const char *piece, size_t n, size_t cap)
{
	assert_true(n <= cap);
	if (n)
		assert_int_equal(piece[n - 1], '\n');
	assert_true(c->visits <= FLEET_EXPO_STEP_BUDGET);
	if (n <= cap - FLEET_EXPO_LINE_MAX && !c->done)
		assert_int_equal(c->visits, FLEET_EXPO_STEP_BUDGET);
}

/* The whole exposition from a store, in pieces of cap bytes,
 * NUL-terminated (malloc'd, grown as needed); then 0 for ever. */
static char *render_from(struct fleet_store *st, const struct fleet_expo_options *o, size_t cap,
			 size_t *out_len, struct fleet_expo_cursor *end)
{
	struct fleet_expo_cursor c;
	size_t room = WHOLE_CAP, len = 0, n;
	char *out = malloc(room), *piece = malloc(cap);

	assert_non_null(out);
	assert_non_null(piece);
	fleet_expo_begin(&c, o);
	while (!c.done) {
		n = fleet_expo_next(&c, st, 0, piece, cap);
		check_piece(&c, piece, n, cap);
		if (len + n >= room) {
			room = 2 * (len + n);
			out = realloc(out, room);
			assert_non_null(out);
		}
		memcpy(out + len, piece, n);
		len += n;
	}
	assert_int_equal(fleet_expo_next(&c, st, 0, piece, cap), 0);
	free(piece);
	out[len] = '\0';
	*out_len = len;
	if (end)
		*end = c;
	return out;
}

static char *render(const struct fleet_expo_options *o, size_t cap, size_t *out_len)
{
	return render_from(&store, o, cap, out_len, NULL);
}

static char *render_whole(const struct fleet_expo_options *o, size_t *len)
{
	return render(o, WHOLE_CAP - 1, len);
}

/* Lines that start with `prefix`. */
static size_t count_prefix(const char *text, const char *prefix)
{
	size_t n = 0, pl = strlen(prefix);

	for (const char *l = text; *l; l = strchr(l, '\n') + 1)
		n += !strncmp(l, prefix, pl);
	return n;
}

/* Lines that contain `needle`. */
static size_t count_lines_with(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		const char *hit = strstr(l, needle), *eol = strchr(l, '\n');

		if (hit && hit < eol)
			n++;
	}
	return n;
}

/* Sample lines, the fleet_series_dropped family left out. */
static size_t count_series(const char *text)
{
	size_t n = 0;

	for (const char *l = text; *l; l = strchr(l, '\n') + 1)
		n += *l != '#' && strncmp(l, "fleet_series_dropped", 20) != 0;
	return n;
}

/* The value of fleet_series_dropped{reason="<reason>"}. */
static unsigned long long dropped(const char *text, const char *reason)
{
	char key[96];
	const char *p;

	snprintf(key, sizeof key, "\nfleet_series_dropped{reason=\"%s\"} ", reason);
	p = strstr(text, key);
	assert_non_null(p);
	return strtoull(p + strlen(key), NULL, 10);
}

static void expect_line(const char *text, const char *line)
{
	size_t n = strlen(line) + 3;
	char *want = malloc(n);

	if (!want)
		abort();
	snprintf(want, n, "\n%s\n", line);
	if (!strstr(text, want)) {
		print_error("missing line: %s\n", line);
		fail();
	}
	free(want);
}

#define A1 "{organization_id=\"org-a\",agent_id=\"agent-1\""

static void expect_scaled(const char *text, const char *series, double v)
{
	char num[33], line[512];

	expo_format_double(num, v);
	snprintf(line, sizeof line, "%s %s", series, num);
	expect_line(text, line);
}

/* Feeds text to a program on stdin; returns its exit status (-1: cannot run). */
static int run_on(const char *cmd, const char *text, size_t len)
{
	char tmpl[] = "/tmp/ringside-fleet-expo-XXXXXX", line[768];
	int fd = mkstemp(tmpl), status;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	/* Its first complaints only, and its status, not head's. */
	snprintf(line, sizeof line, "bash -o pipefail -c '%s < %s 2>&1 | head -20'", cmd, tmpl);
	status = system(line);
	unlink(tmpl);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- Pieces ---- */

static void pieces_of_every_size_give_the_whole_exposition(void **state)
{
	(void)state;
	for (int f = EXPO_TEXT_004; f <= EXPO_OPENMETRICS_100; f++) {
		struct fleet_expo_options o = opts((enum expo_format)f, 0);
		size_t whole_len, len;
		char *whole = render_whole(&o, &whole_len);

		assert_true(whole_len > 8 * FLEET_EXPO_MIN_CAP); /* several pieces of every size below */
		for (size_t cap = FLEET_EXPO_MIN_CAP; cap <= FLEET_EXPO_MIN_CAP + 300; cap++) {
			char *p = render(&o, cap, &len);

			assert_int_equal(len, whole_len);
			assert_memory_equal(p, whole, len);
			free(p);
		}
		for (size_t cap = 20000; cap < 200000; cap = cap * 3 + 7) {
			char *p = render(&o, cap, &len);

			assert_int_equal(len, whole_len);
			assert_memory_equal(p, whole, len);
			free(p);
		}
		free(whole);
	}
}

/* Every line near the length bound, so that pieces end with all kinds of
 * room left: none may pass cap (the piece buffer is exactly cap bytes,
 * for ASan) and the whole is still the same. */
#define LONG_SERVICES 48 /* a blob holds at most FLEET_BLOB_MAX */

static void lines_near_the_bound_never_pass_the_cap(void **state)
{
	(void)state;
	struct fleet_store saved = store;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	struct sbuf b = {0};
	size_t whole_len, len;
	char *whole;

	sb_printf(&b, "{\"services\": [");
	for (unsigned i = 0; i < LONG_SERVICES; i++) {
		sb_printf(&b, "%s{\"containerName\": \"%u", i ? "," : "", i);
		sb_repeat(&b, 'x', FLEET_EXPO_LABEL_MAX - 4);
		sb_printf(&b, "\", \"cpuPercent\": %u.5, \"memoryUsedMb\": 1}", i);
	}
	sb_printf(&b, "]}");
	assert_int_equal(fleet_store_init(&store, 4, 1, 4 * FLEET_CHUNK), 0);
	publish_s("org-l", "long", b.p, b.len, NOW);
	whole = render_whole(&o, &whole_len);
	assert_int_equal(count_lines_with(whole, "xxxxxxxx"), 2 * LONG_SERVICES);
	for (size_t cap = FLEET_EXPO_MIN_CAP; cap <= FLEET_EXPO_MIN_CAP + 1200; cap += 7) {
		char *p = render(&o, cap, &len);

		assert_int_equal(len, whole_len);
		assert_memory_equal(p, whole, len);
		free(p);
	}
	fleet_store_fini(&store);
	store = saved;
	free(whole);
	free(b.p);
}

/* The cursor is plain data: a copy taken between pieces goes on alike
 * (the HTTP stream keeps a copy). */
static void a_copied_cursor_continues_the_same(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	struct fleet_expo_cursor c, d;
	static char a[FLEET_EXPO_MIN_CAP], b[FLEET_EXPO_MIN_CAP];
	size_t n;

	fleet_expo_begin(&c, &o);
	for (int i = 0; i < 5; i++)
		assert_true(fleet_expo_next(&c, &store, 0, a, sizeof a) > 0);
	memcpy(&d, &c, sizeof c);
	while (!c.done) {
		n = fleet_expo_next(&c, &store, 0, a, sizeof a);
		assert_int_equal(fleet_expo_next(&d, &store, 0, b, sizeof b), n);
		assert_memory_equal(a, b, n);
	}
	assert_true(d.done);
	assert_int_equal(fleet_expo_next(&d, &store, 0, b, sizeof b), 0);
}

/* ---- Validity ---- */

static void text_passes_promtool(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len;
	char *text;

	if (access("/usr/bin/promtool", X_OK) != 0) {
		print_message("/usr/bin/promtool not installed (apt-get install prometheus): "
			      "cannot check the exposition with Prometheus's parser\n");
		skip();
	}
	text = render_whole(&o, &len);
	if (getenv("RINGSIDE_FLEET_EXPO_DUMP")) { /* to look at it */
		FILE *f = fopen(getenv("RINGSIDE_FLEET_EXPO_DUMP"), "w");

		assert_non_null(f);
		fwrite(text, 1, len, f);
		fclose(f);
	}
	assert_null(strstr(text, "# EOF"));
	assert_int_equal(run_on("/usr/bin/promtool check metrics", text, len), 0);
	free(text);
}

static void openmetrics_ends_with_eof_and_parses(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_OPENMETRICS_100, 0);
	size_t len, tlen;
	char *om = render_whole(&o, &len), *text;

	assert_true(len > 6);
	assert_memory_equal(om + len - 6, "# EOF\n", 6);
	assert_int_equal(count_prefix(om, "# EOF"), 1);
	/* The same lines as text 0.0.4 but for the EOF. */
	o.format = EXPO_TEXT_004;
	text = render_whole(&o, &tlen);
	assert_int_equal(tlen + 6, len);
	assert_memory_equal(om, text, tlen);
	free(text);
	/* promtool reads it as text ("# EOF" is a comment there). */
	if (access("/usr/bin/promtool", X_OK) == 0)
		assert_int_equal(run_on("/usr/bin/promtool check metrics", om, len), 0);
	/* The Python client's OpenMetrics parser, strict about the format. */
	if (system("/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' "
		   ">/dev/null 2>&1") == 0) {
		assert_int_equal(run_on("/usr/bin/python3 -c \"import sys; from "
					"prometheus_client.openmetrics.parser import "
					"text_string_to_metric_families as p; "
					"[f for f in p(sys.stdin.read())]\"",
					om, len),
				 0);
	} else {
		print_message("python3-prometheus-client not installed: OpenMetrics output "
			      "checked by promtool only\n");
	}
	free(om);
}

static void every_family_is_one_block_with_help_and_type_first(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len, nnames = 0;
	char *text = render_whole(&o, &len);
	char names[64][64], cur[64] = "";
	bool help = false, type = false;

	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		const char *name = l;
		char nm[64];
		size_t n;

		if (!strncmp(l, "# HELP ", 7) || !strncmp(l, "# TYPE ", 7))
			name = l + 7;
		n = strcspn(name, "{ \n");
		assert_true(n > 0 && n < sizeof nm);
		memcpy(nm, name, n);
		nm[n] = '\0';
		if (strcmp(nm, cur)) {
			/* A new block: never seen before, starts with HELP then TYPE. */
			for (size_t i = 0; i < nnames; i++)
				assert_string_not_equal(names[i], nm);
			assert_true(nnames < 64);
			strcpy(names[nnames++], nm);
			strcpy(cur, nm);
			assert_memory_equal(l, "# HELP ", 7);
			help = type = false;
		}
		if (!strncmp(l, "# HELP ", 7)) {
			assert_false(help || type);
			/* Nothing to escape, in either format. */
			assert_null(memchr(l, '\\', (size_t)(strchr(l, '\n') - l)));
			assert_null(memchr(l, '"', (size_t)(strchr(l, '\n') - l)));
			help = true;
		} else if (!strncmp(l, "# TYPE ", 7)) {
			assert_true(help && !type);
			assert_memory_equal(name + n, " gauge\n", 7);
			type = true;
		} else {
			assert_true(type);
			assert_memory_equal(nm, "fleet_", 6);
		}
	}
	assert_string_equal(cur, "fleet_series_dropped");
	assert_true(nnames >= 40);
	free(text);
}

/* Every value is written as expo_format_double writes it, or (timestamps)
 * as an exact decimal that reads back to the same. */
static void values_are_written_as_expo_format_double_does(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len, checked = 0;
	char *text = render_whole(&o, &len);

	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		const char *eol = strchr(l, '\n'), *v = eol;
		char num[33], want[33];

		if (*l == '#')
			continue;
		while (v[-1] != ' ')
			v--;
		assert_true((size_t)(eol - v) < sizeof num);
		memcpy(num, v, (size_t)(eol - v));
		num[eol - v] = '\0';
		expo_format_double(want, strtod(num, NULL));
		if (strcmp(num, want)) {
			print_error("%.*s\n", (int)(eol - l), l);
			assert_string_equal(num, want);
		}
		checked++;
	}
	assert_true(checked > 1500);
	free(text);
}

/* ---- What the samples say ---- */

static void full_sample_in_base_units(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len;
	char *t = render_whole(&o, &len);

	expect_line(t, "fleet_agent_last_report_timestamp_seconds" A1 "} 1799999989.123");
	expect_line(t, "fleet_agent_stale" A1 "} 0");
	expect_line(t, "fleet_agent_info" A1 ",version=\"1.4.2\"} 1");
	expect_line(t, "fleet_host_server_healthy" A1 "} 1");
	expect_line(t, "fleet_host_cpu_percent" A1 "} 23.5");
	expect_line(t, "fleet_host_memory_used_bytes" A1 "} 6417809408"); /* 6120.5 * 2^20 */
	expect_line(t, "fleet_host_memory_total_bytes" A1 "} 17179869184");
	expect_line(t, "fleet_host_swap_used_bytes" A1 "} 0");
	expect_scaled(t, "fleet_host_disk_used_bytes" A1 "}", 120.4 * 1073741824.0);
	expect_line(t, "fleet_host_disk_total_bytes" A1 "} 549755813888");
	expect_line(t, "fleet_host_load5" A1 "} 0.98");
	expect_line(t, "fleet_host_uptime_seconds" A1 "} 864000");
	expect_line(t, "fleet_host_max_fds" A1 "} 1048576");
	expect_line(t, "fleet_host_tcp_connections" A1 "} 426");
	expect_line(t, "fleet_host_tcp_connection_states" A1 ",state=\"established\"} 312");
	expect_line(t, "fleet_host_tcp_connection_states" A1 ",state=\"time_wait\"} 88");
	expect_line(t, "fleet_host_processes" A1 "} 312");
	expect_line(t, "fleet_host_process_states" A1 ",state=\"zombie\"} 4");
	expect_line(t, "fleet_service_info" A1 ",container=\"svc-0\",index=\"0\",state=\"running\",health=\"healthy\"} 1");
	expect_line(t, "fleet_service_cpu_percent" A1 ",container=\"svc-1\",index=\"1\"} 11.79");
	expect_line(t, "fleet_service_memory_limit_bytes" A1 ",container=\"svc-0\",index=\"0\"} 4294967296");
	expect_scaled(t, "fleet_service_network_receive_bytes" A1 ",container=\"svc-0\",index=\"0\"}",
		      8022.651 * 1048576.0);
	expect_line(t, "fleet_service_block_write_bytes" A1 ",container=\"svc-9\",index=\"9\"} 3407872");
	expect_line(t, "fleet_service_restarts" A1 ",container=\"svc-9\",index=\"9\"} 0");
	expect_line(t, "fleet_health_check_success" A1 ",container=\"svc-0\",url=\"http://svc-0:8080/health\",index=\"0\"} 1");
	expect_line(t, "fleet_health_check_status_code" A1 ",container=\"svc-0\",url=\"http://svc-0:8080/health\",index=\"0\"} 200");
	expect_line(t, "fleet_health_check_duration_seconds" A1 ",container=\"svc-0\",url=\"http://svc-0:8080/health\",index=\"0\"} 0.012");
	expect_line(t, "fleet_tcp_check_success" A1 ",container=\"svc-4\",host=\"svc-4\",port=\"5432\",name=\"db\",index=\"4\"} 1");
	expect_line(t, "fleet_tcp_check_duration_seconds" A1 ",container=\"svc-0\",host=\"svc-0\",port=\"5432\",name=\"db\",index=\"0\"} 0.0015");
#define CERT0 ",container=\"svc-0\",host=\"svc-0.example.com\",port=\"443\",name=\"tls\",index=\"0\"}"
	expect_line(t, "fleet_cert_check_success" A1 CERT0 " 1");
	expect_line(t, "fleet_cert_check_duration_seconds" A1 CERT0 " 0.02");
	expect_line(t, "fleet_cert_check_expires_in_seconds" A1 CERT0 " 3456000");
	expect_line(t, "fleet_cert_check_expiry_timestamp_seconds" A1 CERT0 " 1798761600");
#define CONT0 ",container=\"svc-0\",container_id=\"19999e3fa46d6753ec148cb48e73ca47ea90a8f0d66b829e6a8ac4ba05805975\",index=\"0\""
	expect_line(t, "fleet_container_info" A1 CONT0 ",image=\"registry.example.com/app/svc-0:1.2.0\",state=\"running\"} 1");
	expect_line(t, "fleet_container_created_timestamp_seconds" A1 CONT0 "} 1760000000");
	expect_line(t, "fleet_process_cpu_percent" A1 ",pid=\"1000\",process=\"proc-0\",list=\"cpu\",index=\"0\"} 29.22");
	expect_line(t, "fleet_process_memory_bytes" A1 ",pid=\"1000\",process=\"proc-0\",list=\"cpu\",index=\"0\"} 451411968");
	expect_line(t, "fleet_process_cpu_percent" A1 ",pid=\"1010\",process=\"proc-10\",list=\"memory\",index=\"0\"} 12.92");
	expect_line(t, "fleet_process_threads" A1 ",pid=\"1019\",process=\"proc-19\",list=\"memory\",index=\"9\"} 21");

	/*
	 * Series of one full report: 3 agent, 24 host (14 gauges, healthy,
	 * 4 TCP states, processes, 4 process states), 10 services x 9,
	 * 10 health checks x 3, 5 TCP checks x 2, 5 cert checks x 4,
	 * 10 containers x 2, 20 processes x 3. The minimal one: 3 agent,
	 * 14 gauges, healthy, 4 TCP states.
	 */
	assert_int_equal(count_lines_with(t, A1), 3 + 24 + 90 + 30 + 10 + 20 + 20 + 60);
	assert_int_equal(count_lines_with(t, "{organization_id=\"org-a\",agent_id=\"agent-2\""), 22);
	expect_line(t, "fleet_host_cpu_percent{organization_id=\"org-a\",agent_id=\"agent-2\"} 23.5");
	free(t);
}

#define ODD_SVC "fleet_service_cpu_percent{organization_id=\"org-c\",agent_id=\"odd\",container=\""

static void labels_are_escaped_and_overlong_ones_dropped(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len;
	char *t = render_whole(&o, &len);
	char *line = malloc(2 * FLEET_EXPO_LABEL_MAX);

	/* Ids and report strings: \" \\ \n escaped. */
	expect_line(t, "fleet_agent_stale{organization_id=\"o\\\"q\",agent_id=\"a\\\\b\"} 0");
	expect_line(t, "fleet_agent_info{organization_id=\"org-c\",agent_id=\"odd\",version=\"v\\\"1\\\\\"} 1");
	expect_line(t, "fleet_service_cpu_percent{organization_id=\"org-c\",agent_id=\"odd\","
		       "container=\"we\\\"ird\\\\name\\nline\",index=\"0\"} 1.5");
	/* 1024 bytes escaped: kept; 1025: dropped, like 16 000. */
	size_t pre = strlen(ODD_SVC);
	memcpy(line, ODD_SVC, pre);
	memset(line + pre, 'x', FLEET_EXPO_LABEL_MAX);
	strcpy(line + pre + FLEET_EXPO_LABEL_MAX, "\",index=\"1\"} 2");
	expect_line(t, line);
	assert_int_equal(count_lines_with(t, "agent_id=\"odd\",container=\"we"), 2); /* info, cpu */
	assert_int_equal(count_lines_with(t, "agent_id=\"odd\",container=\"xxx"), 1);
	assert_null(strstr(t, "yyyy"));
	assert_int_equal(dropped(t, "label_too_long"), 3);
	/* The agent whose organization id is not UTF-8: 22 series left out. */
	assert_null(strstr(t, "agent-x"));
	assert_int_equal(dropped(t, "invalid_id"), 22);
	assert_int_equal(dropped(t, "max_series"), 0);
	/* Dates: offsets, fractions, before 1970; none for a non-date. */
	expect_line(t, "fleet_cert_check_expiry_timestamp_seconds{organization_id=\"org-c\",agent_id=\"odd\","
		       "container=\"c\",host=\"h\",port=\"443\",index=\"0\"} 1798761600.25");
	expect_line(t, "fleet_cert_check_expiry_timestamp_seconds{organization_id=\"org-c\",agent_id=\"odd\","
		       "container=\"c\",host=\"h2\",port=\"443.5\",index=\"1\"} -0.5");
	assert_int_equal(count_lines_with(t, "host=\"h\""), 3);
	assert_int_equal(count_lines_with(t, "host=\"h3\""), 2); /* no Feb 29 in 2027 */
	assert_int_equal(count_lines_with(t, "host=\"h4\""), 2);
	expect_line(t, "fleet_cert_check_success{organization_id=\"org-c\",agent_id=\"odd\","
		       "container=\"c\",host=\"h\",port=\"443\",index=\"0\"} 0");
	free(line);
	free(t);
}

static void expired_agents_are_left_out_and_stale_ones_marked(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len;
	char *t = render_whole(&o, &len);

	assert_null(strstr(t, "agent_id=\"agent-4\""));  /* now - ttl */
	expect_line(t, "fleet_agent_stale{organization_id=\"org-a\",agent_id=\"agent-3\"} 1");
	expect_line(t, "fleet_agent_stale{organization_id=\"org-b\",agent_id=\"agent-1\"} 1");
	expect_line(t, "fleet_agent_stale{organization_id=\"org-b\",agent_id=\"agent-5\"} 0");
	expect_line(t, "fleet_agent_last_report_timestamp_seconds{organization_id=\"org-b\",agent_id=\"agent-1\"} 1799999700.001");
	/* A stale agent keeps its series. */
	assert_int_equal(count_lines_with(t, "{organization_id=\"org-b\",agent_id=\"agent-1\""), 257);
	free(t);

	/* 0: no expiry, no staleness. */
	o.ttl_ms = o.stale_ms = 0;
	t = render_whole(&o, &len);
	assert_int_equal(count_lines_with(t, "{organization_id=\"org-a\",agent_id=\"agent-4\""), 257);
	expect_line(t, "fleet_agent_stale{organization_id=\"org-a\",agent_id=\"agent-3\"} 0");
	free(t);
}

static void max_series_keeps_the_first_ones_and_counts_the_rest(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len, clen, all, cap;
	char *t = render_whole(&o, &len), *capped;

	all = count_series(t);
	cap = all / 3;
	o.max_series = cap;
	capped = render(&o, FLEET_EXPO_MIN_CAP, &clen);
	assert_int_equal(count_series(capped), cap);
	assert_int_equal(dropped(capped, "max_series"), all - cap);
	assert_int_equal(dropped(capped, "label_too_long"), 3);
	assert_int_equal(dropped(capped, "invalid_id"), 22);
	/* The capped samples are the first `cap` of the whole exposition. */
	const char *a = t, *b = capped;
	for (size_t i = 0; i < cap;) {
		const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');

		if (*a == '#') {
			a = ea + 1;
			continue;
		}
		if (*b == '#') {
			b = eb + 1;
			continue;
		}
		assert_int_equal(ea - a, eb - b);
		assert_memory_equal(a, b, (size_t)(ea - a));
		a = ea + 1;
		b = eb + 1;
		i++;
	}
	if (access("/usr/bin/promtool", X_OK) == 0)
		assert_int_equal(run_on("/usr/bin/promtool check metrics", capped, clen), 0);
	free(capped);

	o.max_series = 1; /* one series, every family's metadata */
	capped = render_whole(&o, &clen);
	assert_int_equal(count_series(capped), 1);
	assert_int_equal(dropped(capped, "max_series"), all - 1);
	assert_int_equal(count_prefix(capped, "# TYPE "), count_prefix(t, "# TYPE "));
	free(capped);
	free(t);
}

/* A NUL (\u0000 in the JSON) is valid UTF-8 and has no escape in either
 * format: it is written as it is, and parsers take it. */
static void a_nul_in_a_label_is_written_as_it_is(void **state)
{
	(void)state;
	static const char doc[] = "{\"services\": [{\"containerName\": \"a\\u0000b\", \"cpuPercent\": 7}]}";
	static const char want[] = "fleet_service_cpu_percent{organization_id=\"o\",agent_id=\"n\","
				   "container=\"a\0b\",index=\"0\"} 7\n";
	struct fleet_store saved = store;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len;
	char *t;

	assert_int_equal(fleet_store_init(&store, 4, 1, FLEET_CHUNK), 0);
	publish_s("o", "n", doc, sizeof doc - 1, NOW);
	t = render(&o, FLEET_EXPO_MIN_CAP, &len);
	assert_non_null(memmem(t, len, want, sizeof want - 1));
	if (access("/usr/bin/promtool", X_OK) == 0)
		assert_int_equal(run_on("/usr/bin/promtool check metrics", t, len), 0);
	fleet_store_fini(&store);
	store = saved;
	free(t);
}

/* ---- Work per call ---- */

/* Sample lines (not comments, not fleet_series_dropped) as NUL-terminated
 * copies, sorted. */
struct lines {
	char **v;
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lines_add(struct lines *ls, const char *text, size_t len)
{
	for (const char *l = text; l < text + len;) {
		const char *e = memchr(l, '\n', (size_t)(text + len - l));

		assert_non_null(e);
		if (*l != '#' && strncmp(l, "fleet_series_dropped", 20) != 0) {
			ls->v = realloc(ls->v, (ls->n + 1) * sizeof ls->v[0]);
			assert_non_null(ls->v);
			ls->v[ls->n] = strndup(l, (size_t)(e - l));
			assert_non_null(ls->v[ls->n]);
			ls->n++;
		}
		l = e + 1;
	}
}

static void lines_sort(struct lines *ls)
{
	qsort(ls->v, ls->n, sizeof ls->v[0], cmp_str);
}

static void lines_free(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->v[i]);
	free(ls->v);
	ls->v = NULL;
	ls->n = 0;
}

/* Publishes the report doc (validated and encoded once) for `agents`
 * agents in three organizations; every 97th has an organization id that
 * is not UTF-8 and every 89th has expired. */
static void publish_fleet(unsigned agents, const char *doc, size_t len)
{
	size_t n;

	ingest_parser_init(&parser, &report, NULL);
	if (ingest_parser_feed(&parser, doc, len) || ingest_parser_finish(&parser)) {
		print_error("at %s: %s\n", parser.err.path, parser.err.message);
		fail();
	}
	n = fleet_report_encode(&report, blob, sizeof blob);
	assert_true(n > 0);
	for (unsigned i = 0; i < agents; i++) {
		char org[16], id[16];
		int ol = snprintf(org, sizeof org, i % 97 == 13 ? "o\xff%u" : "o%u", i % 3);
		int il = snprintf(id, sizeof id, "a%u", i);

		assert_int_equal(fleet_publish(&store, 0, org, (size_t)ol, id, (size_t)il, blob, n,
					       i % 89 == 7 ? NOW - TTL : NOW),
				 0);
	}
}

/* A report of 10 services and 256 + 256 top processes: the families of
 * processes are long passes (513 visits an agent once its series are all
 * dropped). */
static char *wide_report(size_t *len)
{
	struct sbuf b = {0};

	sb_printf(&b, "{\"cpuPercent\": 5, \"memoryUsedMb\": 100, \"tcpTotal\": 9, \"agentVersion\": \"w\","
		      " \"services\": [");
	for (unsigned i = 0; i < 10; i++)
		sb_printf(&b, "%s{\"containerName\": \"s%u\", \"cpuPercent\": %u, \"state\": \"up\"}",
			  i ? "," : "", i, i);
	sb_printf(&b, "], \"topProcesses\": {\"stats\": {\"total\": 600, \"running\": 3, "
		      "\"sleeping\": 590, \"stopped\": 0, \"zombie\": 7}, \"byCpu\": [");
	for (unsigned i = 0; i < 512; i++) {
		sb_printf(&b, "%s{\"pid\": %u, \"name\": \"p\", \"state\": \"S\", \"cpuPercent\": 1, "
			      "\"memoryMb\": 1, \"threads\": 2}",
			  i == 0 || i == 256 ? "" : ",", i);
		if (i == 255)
			sb_printf(&b, "], \"byMemory\": [");
	}
	sb_printf(&b, "]}}");
	*len = b.len;
	return b.p;
}

/*
 * The exposition o, capped at k series as the cap must make it: the
 * uncapped one (rendered here, in pieces) with the samples past the
 * first k taken out and counted in max_series. Returns it (malloc'd:
 * only what is kept) and the uncapped cursor.
 */
static char *truncated(const struct fleet_expo_options *o, uint64_t k, size_t *out_len,
		       struct fleet_expo_cursor *uncapped)
{
	static const char max_line[] = "fleet_series_dropped{reason=\"max_series\"} ";
	static char piece[64 * 1024];
	struct fleet_expo_options u = *o;
	struct sbuf head = {0}, tail = {0}, *to = &head;
	uint64_t samples = 0;

	u.max_series = 0;
	fleet_expo_begin(uncapped, &u);
	while (!uncapped->done) {
		size_t n = fleet_expo_next(uncapped, &store, 0, piece, sizeof piece);

		for (const char *l = piece; l < piece + n;) {
			const char *e = (const char *)memchr(l, '\n', (size_t)(piece + n - l)) + 1;
			bool sample = *l != '#' && strncmp(l, "fleet_series_dropped", 20) != 0;

			if (!strncmp(l, max_line, sizeof max_line - 1)) {
				assert_int_equal(strtoull(l + sizeof max_line - 1, NULL, 10), 0);
				to = &tail; /* the line itself is written below */
			} else if (!sample || samples++ < k) {
				sb_printf(to, "%.*s", (int)(e - l), l);
			}
			l = e;
		}
	}
	assert_true(to == &tail);
	sb_printf(&head, "%s%llu\n", max_line, (unsigned long long)(samples > k ? samples - k : 0));
	if (tail.len)
		sb_printf(&head, "%s", tail.p);
	free(tail.p);
	*out_len = head.len;
	return head.p;
}

/*
 * Past max_series, a call went on until it had written a line: a piece
 * that started inside a family whose series were all dropped walked it
 * across every agent (100 to 860 ms at 100 000 agents, the worker serving
 * nobody else). Every call now stops after FLEET_EXPO_STEP_BUDGET visits
 * whatever it wrote, 0 bytes included, and the capped exposition is the
 * uncapped one cut after max_series samples, with exact counts.
 */
static void capped_pieces_respect_the_step_budget(void **state)
{
	(void)state;
	struct fleet_store saved = store;
	const unsigned agents = 300;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	struct fleet_expo_cursor whole_c, c;
	static char piece[FLEET_EXPO_MIN_CAP];
	size_t doc_len, want_len;
	char *doc = wide_report(&doc_len), *want;

	assert_int_equal(fleet_store_init(&store, agents, 1, (size_t)agents * FLEET_CLASS_MAX + FLEET_CHUNK), 0);
	publish_fleet(agents, doc, doc_len);
	free(truncated(&o, 0, &want_len, &whole_c));
	assert_true(whole_c.dropped[FLEET_EXPO_DROP_INVALID_ID] > 0);
	/* A family of processes across the agents, all dropped, takes more
	 * than two budgets: some call lies wholly inside it. */
	assert_true((uint64_t)agents * 512 > 2 * FLEET_EXPO_STEP_BUDGET);

	/* The cap reached in the first family, among the services, at the
	 * last series, and not reached. */
	const uint64_t caps[] = {1, 3000, whole_c.series - 1, whole_c.series};

	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		struct sbuf out = {0};
		size_t inside = 0, inside_empty = 0;

		o.max_series = caps[i];
		want = truncated(&o, caps[i], &want_len, &whole_c);
		fleet_expo_begin(&c, &o);
		while (!c.done) {
			/* Inside a family's pass (its header written) past the cap. */
			bool dropping = c.header && c.series >= caps[i];
			size_t n = fleet_expo_next(&c, &store, 0, piece, sizeof piece);

			check_piece(&c, piece, n, sizeof piece);
			sb_printf(&out, "%.*s", (int)n, piece);
			inside += dropping;
			inside_empty += dropping && n == 0;
		}
		if (i < 2) /* the calls the old code let run across the fleet */
			assert_true(inside_empty > 0 && inside > inside_empty);
		assert_int_equal(out.len, want_len);
		assert_memory_equal(out.p, want, want_len);
		assert_int_equal(c.series, caps[i]);
		assert_int_equal(c.dropped[FLEET_EXPO_DROP_MAX_SERIES], whole_c.series - caps[i]);
		assert_int_equal(c.dropped[FLEET_EXPO_DROP_INVALID_ID],
				 whole_c.dropped[FLEET_EXPO_DROP_INVALID_ID]);
		assert_int_equal(c.dropped[FLEET_EXPO_DROP_LABEL_TOO_LONG],
				 whole_c.dropped[FLEET_EXPO_DROP_LABEL_TOO_LONG]);
		free(want);
		free(out.p);
	}
	fleet_store_fini(&store);
	store = saved;
	free(doc);
}

/* Agents left out by the selection cost one visit each, within the
 * budget: an organization nobody has gives the metadata only, over calls
 * that visit exactly every (family, agent) once, each but the last using
 * the whole budget. */
static void unselected_agents_cost_one_visit_each(void **state)
{
	(void)state;
	struct fleet_store saved = store;
	const unsigned agents = 3000;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	struct fleet_expo_cursor c;
	static char piece[FLEET_EXPO_MIN_CAP];
	uint64_t visits = 0;
	size_t len = 0, calls = 0, helps;
	char *out = malloc(WHOLE_CAP);

	assert_non_null(out);
	assert_int_equal(fleet_store_init(&store, agents, 1, (size_t)agents * 16384 + FLEET_CHUNK), 0);
	publish_fleet(agents, full, full_len);
	assert_int_equal(fleet_expo_select_org(&o, "nobody", 6), 0);
	fleet_expo_begin(&c, &o);
	while (!c.done) {
		size_t n = fleet_expo_next(&c, &store, 0, piece, sizeof piece);

		check_piece(&c, piece, n, sizeof piece);
		memcpy(out + len, piece, n);
		len += n;
		visits += c.visits;
		calls++;
	}
	out[len] = '\0';
	assert_int_equal(count_series(out), 0);
	assert_int_equal(dropped(out, "invalid_id"), 0);
	helps = count_prefix(out, "# HELP ");
	/* Per family: its header, each slot, its end; then the dropped
	 * family's header and three lines. */
	assert_int_equal(visits, (helps - 1) * (2 + (uint64_t)agents) + 4);
	assert_int_equal(calls, (visits + FLEET_EXPO_STEP_BUDGET - 1) / FLEET_EXPO_STEP_BUDGET);
	fleet_store_fini(&store);
	store = saved;
	free(out);
}

/* ---- Selection ---- */

/* The ids of a sample line (none has escapes in these tests). */
static void ids_of(const char *line, char org[64], char agent[64])
{
	const char *o = strstr(line, "{organization_id=\""), *a = strstr(line, "\",agent_id=\"");
	const char *e;

	assert_non_null(o);
	assert_non_null(a);
	o += 18;
	assert_true(a - o < 64);
	memcpy(org, o, (size_t)(a - o));
	org[a - o] = '\0';
	a += 12;
	e = strchr(a, '"');
	assert_true(e - a < 64);
	memcpy(agent, a, (size_t)(e - a));
	agent[e - a] = '\0';
}

/* Sorted sample lines of the whole `whole` and of the union of parts. */
static void assert_same_lines(struct lines *whole, struct lines *parts)
{
	lines_sort(parts);
	assert_int_equal(parts->n, whole->n);
	for (size_t i = 0; i < whole->n; i++)
		assert_string_equal(parts->v[i], whole->v[i]);
}

/*
 * N scrapers, each asking for shard I of N, or one organization, must
 * together get every series exactly once: disjoint parts whose union is
 * the whole fleet, each agent in the shard fleet_agent_shard names, and
 * the dropped counts split the same way.
 */
static void shards_and_organizations_split_the_fleet_exactly(void **state)
{
	(void)state;
	static const char *const orgs[] = {"org-x", "org-y", "org-z", "org-\xff"};
	static const uint32_t shard_counts[] = {1, 2, 4, 7};
	struct fleet_store saved = store;
	const unsigned agents = 300;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0), p;
	struct fleet_expo_cursor whole_c, c;
	struct lines whole_lines = {0};
	size_t whole_len, len;
	char *whole, *t, org[64], agent[64];

	assert_int_equal(fleet_store_init(&store, agents, 1, (size_t)agents * 16384 + FLEET_CHUNK), 0);
	for (unsigned i = 0; i < agents; i++) {
		char id[16];

		snprintf(id, sizeof id, "agent-%u", i);
		publish_s(orgs[i % 50 == 7 ? 3 : i % 3], id, i % 5 ? minimal : full,
			  i % 5 ? minimal_len : full_len, i % 40 == 1 ? NOW - TTL : NOW - i);
	}
	whole = render_from(&store, &o, WHOLE_CAP - 1, &whole_len, &whole_c);
	lines_add(&whole_lines, whole, whole_len);
	lines_sort(&whole_lines);
	assert_true(whole_c.dropped[FLEET_EXPO_DROP_INVALID_ID] > 0);

	for (size_t k = 0; k < sizeof shard_counts / sizeof shard_counts[0]; k++) {
		uint32_t n = shard_counts[k];
		struct lines parts = {0};
		uint64_t drops[FLEET_EXPO_DROPS] = {0};

		for (uint32_t i = 0; i < n; i++) {
			size_t before = parts.n;

			p = o;
			assert_int_equal(fleet_expo_select_shard(&p, i, n), 0);
			t = render_from(&store, &p, FLEET_EXPO_MIN_CAP, &len, &c);
			lines_add(&parts, t, len);
			for (size_t l = before; l < parts.n; l++) {
				ids_of(parts.v[l], org, agent);
				assert_int_equal(fleet_agent_shard(org, strlen(org), agent, strlen(agent), n), i);
			}
			if (n > 1) /* every shard gets some of the 300 */
				assert_true(parts.n - before > whole_lines.n / (2 * n));
			for (int d = 0; d < FLEET_EXPO_DROPS; d++)
				drops[d] += c.dropped[d];
			free(t);
		}
		assert_same_lines(&whole_lines, &parts);
		assert_memory_equal(drops, whole_c.dropped, sizeof drops);
		lines_free(&parts);
	}

	struct lines parts = {0};
	uint64_t drops[FLEET_EXPO_DROPS] = {0};

	for (size_t i = 0; i < sizeof orgs / sizeof orgs[0]; i++) {
		size_t before = parts.n;

		p = o;
		assert_int_equal(fleet_expo_select_org(&p, orgs[i], strlen(orgs[i])), 0);
		t = render_from(&store, &p, FLEET_EXPO_MIN_CAP, &len, &c);
		lines_add(&parts, t, len);
		for (size_t l = before; l < parts.n; l++) {
			ids_of(parts.v[l], org, agent);
			assert_string_equal(org, orgs[i]);
		}
		for (int d = 0; d < FLEET_EXPO_DROPS; d++)
			drops[d] += c.dropped[d];
		free(t);
	}
	assert_same_lines(&whole_lines, &parts);
	assert_memory_equal(drops, whole_c.dropped, sizeof drops);
	lines_free(&parts);

	/* Both: the agents of org-y in shard 1 of 4, no more, no fewer. */
	size_t want = 0;

	for (size_t l = 0; l < whole_lines.n; l++) {
		ids_of(whole_lines.v[l], org, agent);
		want += !strcmp(org, "org-y") &&
			fleet_agent_shard(org, strlen(org), agent, strlen(agent), 4) == 1;
	}
	p = o;
	assert_int_equal(fleet_expo_select_org(&p, "org-y", 5), 0);
	assert_int_equal(fleet_expo_select_shard(&p, 1, 4), 0);
	t = render_from(&store, &p, FLEET_EXPO_MIN_CAP, &len, NULL);
	lines_add(&parts, t, len);
	assert_int_equal(parts.n, want);
	assert_true(want > 0);
	for (size_t l = 0; l < parts.n; l++) {
		ids_of(parts.v[l], org, agent);
		assert_string_equal(org, "org-y");
		assert_int_equal(fleet_agent_shard(org, 5, agent, strlen(agent), 4), 1);
	}
	lines_free(&parts);
	free(t);

	/* A shard past the count, or an organization of another length,
	 * selects nobody. */
	p = o;
	p.shard = 4;
	p.shards = 4;
	t = render_from(&store, &p, FLEET_EXPO_MIN_CAP, &len, NULL);
	assert_int_equal(count_series(t), 0);
	free(t);
	p = o;
	memcpy(p.org, "org-x", 5);
	p.org_len = 200; /* more than org holds: compared by length first */
	t = render_from(&store, &p, FLEET_EXPO_MIN_CAP, &len, NULL);
	assert_int_equal(count_series(t), 0);
	free(t);

	lines_free(&whole_lines);
	fleet_store_fini(&store);
	store = saved;
	free(whole);
}

/* The group of a family, by its name as the contract lists them. */
static uint32_t group_of(const char *line)
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
	const char *name = line[0] == '#' ? line + 7 : line;

	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (!strncmp(name, map[i].prefix, strlen(map[i].prefix)))
			return map[i].group;
	print_error("no group for %.60s\n", line);
	fail();
	return 0;
}

/* Every combination of groups gives exactly the families of those groups
 * (and host), whole, HELP and TYPE included, and nothing of the others;
 * 0, the default, is host only. */
static void groups_select_exactly_their_families(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t whole_len, len;
	char *whole = render_whole(&o, &whole_len), *want = malloc(whole_len + 1);

	assert_non_null(want);
	for (uint32_t g = 0; g <= FLEET_GROUP_ALL; g++) {
		char *t, *q = want, *got;
		size_t got_len = 0;

		o.groups = g;
		t = render_whole(&o, &len);
		/* The whole exposition's lines of these groups, the counts of
		 * what was dropped aside. */
		for (const char *l = whole; *l; l = strchr(l, '\n') + 1) {
			size_t n = (size_t)(strchr(l, '\n') + 1 - l);

			if (strncmp(l, "fleet_series_dropped{", 21) &&
			    group_of(l) & (g | FLEET_GROUP_HOST)) {
				memcpy(q, l, n);
				q += n;
			}
		}
		got = malloc(len + 1);
		assert_non_null(got);
		for (const char *l = t; *l; l = strchr(l, '\n') + 1) {
			size_t n = (size_t)(strchr(l, '\n') + 1 - l);

			if (strncmp(l, "fleet_series_dropped{", 21)) {
				memcpy(got + got_len, l, n);
				got_len += n;
			}
		}
		assert_int_equal(got_len, (size_t)(q - want));
		assert_memory_equal(got, want, got_len);
		/* The odd agent's three overlong services; the agent with a
		 * bad id has the minimal report: host series only. */
		assert_int_equal(dropped(t, "label_too_long"), g & FLEET_GROUP_SERVICES ? 3 : 0);
		assert_int_equal(dropped(t, "invalid_id"), 22);
		if (g == 0 || g == FLEET_GROUP_HOST) /* 21 host families and the dropped one */
			assert_int_equal(count_prefix(t, "# HELP "), 22);
		free(got);
		free(t);
	}
	free(want);
	free(whole);
}

/* Shards must not move between processes, restarts and versions: these
 * values were computed apart (FNV-1a 64, then jump consistent hash, in
 * Python), and a change of the hash fails here. */
static void fleet_agent_shard_is_stable(void **state)
{
	(void)state;
	static const struct {
		const char *org, *agent;
		uint32_t shards, shard;
	} known[] = {
		{"org-a", "agent-1", 4, 2},
		{"org-a", "agent-2", 4, 1},
		{"org-b", "agent-1", 4, 2},
		{"acme", "host-0001", 16, 14},
		{"acme", "host-0002", 16, 9},
		{"acme", "host-0003", 1000, 344},
		{"o", "a", 2, 1},
		{"org-\xff", "agent-x", 7, 0},
		{"ab", "c", 97, 9}, /* the 0 byte between the ids: not ("a", "bc") */
		{"a", "bc", 97, 40},
		{"org-1", "agent-00000042", 3, 0},
		{"", "", 5, 4},
		{"org-a", "agent-1", 0, 0},
		{"org-a", "agent-1", 1, 0},
		{"org-a", "agent-1", 4294967295u, 2315430947u},
	};
	uint32_t count[5] = {0};

	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		assert_int_equal(fleet_agent_shard(known[i].org, strlen(known[i].org), known[i].agent,
						   strlen(known[i].agent), known[i].shards),
				 known[i].shard);
	/* Fair, and consistent: from 4 to 5 shards an agent stays or goes to
	 * the new shard 4. */
	for (unsigned i = 0; i < 100000; i++) {
		char id[32];
		int n = snprintf(id, sizeof id, "agent-%08u", i);
		uint32_t s4 = fleet_agent_shard("org", 3, id, (size_t)n, 4);
		uint32_t s5 = fleet_agent_shard("org", 3, id, (size_t)n, 5);

		assert_true(s4 < 4 && s5 < 5);
		assert_true(s5 == s4 || s5 == 4);
		count[s4]++;
	}
	for (int s = 0; s < 4; s++) /* 25 000 +- 3 %: over 5 standard deviations */
		assert_in_range(count[s], 24250, 25750);
}

static void include_lists_parse_and_unknown_names_are_refused(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int rc;
		uint32_t groups;
		const char *bad;
	} cases[] = {
		{"", 0, FLEET_GROUP_HOST, NULL},
		{"host", 0, FLEET_GROUP_HOST, NULL},
		{"services", 0, FLEET_GROUP_HOST | FLEET_GROUP_SERVICES, NULL},
		{"checks,containers", 0, FLEET_GROUP_HOST | FLEET_GROUP_CHECKS | FLEET_GROUP_CONTAINERS, NULL},
		{"processes,services,processes", 0,
		 FLEET_GROUP_HOST | FLEET_GROUP_PROCESSES | FLEET_GROUP_SERVICES, NULL},
		{"all", 0, FLEET_GROUP_ALL, NULL},
		{"services,all", 0, FLEET_GROUP_ALL, NULL},
		{"service", -1, 0, "service"},
		{"services,bogus,checks", -1, 0, "bogus"},
		{"Services", -1, 0, "Services"},
		{"services,", -1, 0, ""},
		{",services", -1, 0, ""},
		{"services,,checks", -1, 0, ""},
		{",", -1, 0, ""},
		{"services ", -1, 0, "services "},
		{"allx", -1, 0, "allx"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint32_t g = 0xdead;
		const char *bad = NULL;
		size_t bad_len = 99, n = strlen(cases[i].s);
		int rc = fleet_expo_parse_groups(cases[i].s, n, &g, &bad, &bad_len);

		assert_int_equal(rc, cases[i].rc);
		if (rc == 0) {
			assert_int_equal(g, cases[i].groups);
			continue;
		}
		assert_int_equal(g, 0xdead);
		assert_true(bad >= cases[i].s && bad + bad_len <= cases[i].s + n);
		assert_int_equal(bad_len, strlen(cases[i].bad));
		assert_memory_equal(bad, cases[i].bad, bad_len);
		assert_int_equal(fleet_expo_parse_groups(cases[i].s, n, &g, NULL, NULL), -1);
	}
	/* Only the n bytes given are read: each list again, ending at a
	 * PROT_NONE page, so that reading one byte past it faults. */
	uint32_t g;
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);

	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].s);
		char *at = map + page - n;

		memcpy(at, cases[i].s, n);
		assert_int_equal(fleet_expo_parse_groups(at, n, &g, NULL, NULL), cases[i].rc);
	}
	munmap(map, 2 * (size_t)page);
	assert_int_equal(fleet_expo_parse_groups("services,bogus", 8, &g, NULL, NULL), 0);
	assert_int_equal(g, FLEET_GROUP_HOST | FLEET_GROUP_SERVICES);

	struct fleet_expo_options o = {0};
	char long_id[FLEET_ID_MAX + 1];

	memset(long_id, 'x', sizeof long_id);
	assert_int_equal(fleet_expo_select_org(&o, long_id, FLEET_ID_MAX + 1), -EINVAL);
	assert_int_equal(fleet_expo_select_org(&o, "x", 0), -EINVAL);
	assert_int_equal(o.org_len, 0);
	assert_int_equal(fleet_expo_select_org(&o, long_id, FLEET_ID_MAX), 0);
	assert_int_equal(o.org_len, FLEET_ID_MAX);
	assert_int_equal(fleet_expo_select_shard(&o, 0, 0), -EINVAL);
	assert_int_equal(fleet_expo_select_shard(&o, 3, 3), -EINVAL);
	assert_int_equal(o.shards, 0);
	assert_int_equal(fleet_expo_select_shard(&o, 2, 3), 0);
	assert_true(o.shard == 2 && o.shards == 3);
}

/* ---- Unique series ---- */

/* No two samples of text with the same name and labels. */
static void assert_series_unique(const char *text, size_t len)
{
	struct lines ls = {0};

	lines_add(&ls, text, len);
	for (size_t i = 0; i < ls.n; i++)
		*strrchr(ls.v[i], ' ') = '\0'; /* the value goes; labels are kept whole */
	lines_sort(&ls);
	for (size_t i = 1; i < ls.n; i++)
		if (!strcmp(ls.v[i - 1], ls.v[i])) {
			print_error("duplicate series: %s\n", ls.v[i]);
			fail();
		}
	assert_true(ls.n > 0);
	lines_free(&ls);
}

/*
 * Two services of one containerName, or two identical checks, gave
 * series with the same name and labels, which Prometheus drops as
 * duplicates (and reports as an error of the scrape). Each item of an
 * array now carries index, its position.
 */
static void same_named_services_and_identical_checks_gave_duplicate_series(void **state)
{
	(void)state;
	static const char doc[] =
		"{\"services\": [{\"containerName\": \"web\", \"cpuPercent\": 1, \"state\": \"running\"},"
		" {\"containerName\": \"web\", \"cpuPercent\": 2, \"state\": \"running\"}],"
		" \"serviceHealthChecks\": ["
		"{\"containerName\": \"web\", \"healthCheckUrl\": \"http://web/\", \"success\": true},"
		"{\"containerName\": \"web\", \"healthCheckUrl\": \"http://web/\", \"success\": false}],"
		" \"tcpCheckResults\": ["
		"{\"containerName\": \"web\", \"host\": \"db\", \"port\": 5432, \"name\": \"db\", \"success\": true, \"durationMs\": 1},"
		"{\"containerName\": \"web\", \"host\": \"db\", \"port\": 5432, \"name\": \"db\", \"success\": true, \"durationMs\": 1}],"
		" \"certCheckResults\": ["
		"{\"containerName\": \"\", \"host\": \"h\", \"port\": 443, \"success\": true, \"durationMs\": 5, \"daysUntilExpiry\": 3},"
		"{\"containerName\": \"\", \"host\": \"h\", \"port\": 443, \"success\": true, \"durationMs\": 5, \"daysUntilExpiry\": 3}],"
		" \"containers\": ["
		"{\"id\": \"c1\", \"name\": \"web\", \"image\": \"i\", \"imageId\": \"i\", \"state\": \"up\", "
		"\"status\": \"up\", \"created\": 1},"
		"{\"id\": \"c1\", \"name\": \"web\", \"image\": \"i\", \"imageId\": \"i\", \"state\": \"up\", "
		"\"status\": \"up\", \"created\": 1}],"
		" \"topProcesses\": {\"stats\": {\"total\": 1, \"running\": 1, \"sleeping\": 0, "
		"\"stopped\": 0, \"zombie\": 0}, \"byCpu\": ["
		"{\"pid\": 7, \"name\": \"p\", \"state\": \"S\", \"cpuPercent\": 1, \"memoryMb\": 1, \"threads\": 1},"
		"{\"pid\": 7, \"name\": \"p\", \"state\": \"S\", \"cpuPercent\": 1, \"memoryMb\": 1, \"threads\": 1}],"
		" \"byMemory\": ["
		"{\"pid\": 7, \"name\": \"p\", \"state\": \"S\", \"cpuPercent\": 1, \"memoryMb\": 1, \"threads\": 1}]}}";
	struct fleet_store saved = store;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	size_t len;
	char *t = render_whole(&o, &len);

	assert_series_unique(t, len); /* the main fleet */
	free(t);

	assert_int_equal(fleet_store_init(&store, 4, 1, FLEET_CHUNK), 0);
	publish_s("o", "dup", doc, sizeof doc - 1, NOW);
	t = render(&o, FLEET_EXPO_MIN_CAP, &len);
	assert_series_unique(t, len);
	expect_line(t, "fleet_service_cpu_percent{organization_id=\"o\",agent_id=\"dup\","
		       "container=\"web\",index=\"0\"} 1");
	expect_line(t, "fleet_service_cpu_percent{organization_id=\"o\",agent_id=\"dup\","
		       "container=\"web\",index=\"1\"} 2");
	expect_line(t, "fleet_tcp_check_success{organization_id=\"o\",agent_id=\"dup\","
		       "container=\"web\",host=\"db\",port=\"5432\",name=\"db\",index=\"1\"} 1");
	expect_line(t, "fleet_health_check_success{organization_id=\"o\",agent_id=\"dup\","
		       "container=\"web\",url=\"http://web/\",index=\"1\"} 0");
	expect_line(t, "fleet_cert_check_expires_in_seconds{organization_id=\"o\",agent_id=\"dup\","
		       "host=\"h\",port=\"443\",index=\"1\"} 259200");
	expect_line(t, "fleet_container_created_timestamp_seconds{organization_id=\"o\",agent_id=\"dup\","
		       "container=\"web\",container_id=\"c1\",index=\"1\"} 1");
	expect_line(t, "fleet_process_cpu_percent{organization_id=\"o\",agent_id=\"dup\","
		       "pid=\"7\",process=\"p\",list=\"cpu\",index=\"1\"} 1");
	expect_line(t, "fleet_process_cpu_percent{organization_id=\"o\",agent_id=\"dup\","
		       "pid=\"7\",process=\"p\",list=\"memory\",index=\"0\"} 1");
	/* Items x families with a sample: services (info, cpu), health checks
	 * (success), TCP checks (success, duration), certs (success,
	 * duration, expires in), containers (info, created), processes (cpu,
	 * memory, threads). Host series have no index: one per agent already. */
	assert_int_equal(count_lines_with(t, "index="), 2 * 2 + 2 * 1 + 2 * 2 + 2 * 3 + 2 * 2 + 3 * 3);
	if (access("/usr/bin/promtool", X_OK) == 0)
		assert_int_equal(run_on("/usr/bin/promtool check metrics", t, len), 0);
	fleet_store_fini(&store);
	store = saved;
	free(t);
}

/* ---- The store changing underneath ---- */

static void an_empty_store_gives_metadata_and_the_dropped_family(void **state)
{
	(void)state;
	struct fleet_store saved = store;
	struct fleet_expo_options o = opts(EXPO_OPENMETRICS_100, 0);
	size_t len;
	char *t;

	assert_int_equal(fleet_store_init(&store, 4, 1, FLEET_CHUNK), 0);
	t = render(&o, FLEET_EXPO_MIN_CAP, &len);
	assert_int_equal(count_series(t), 0);
	assert_int_equal(dropped(t, "max_series"), 0);
	assert_memory_equal(t + len - 6, "# EOF\n", 6);
	fleet_store_fini(&store);
	store = saved;
	free(t);
}

static void agents_published_between_pieces_appear_from_a_family_on(void **state)
{
	(void)state;
	struct fleet_expo_options o = opts(EXPO_TEXT_004, 0);
	struct fleet_expo_cursor c;
	char *out = malloc(WHOLE_CAP), piece[FLEET_EXPO_MIN_CAP];
	size_t len = 0, n;
	int i = 0;

	fleet_expo_begin(&c, &o);
	while (!c.done) {
		n = fleet_expo_next(&c, &store, 0, piece, sizeof piece);
		memcpy(out + len, piece, n);
		len += n;
		if (++i % 7 == 0) { /* a new agent, and a new report of an old one */
			char id[32];

			snprintf(id, sizeof id, "late-%d", i);
			publish_s("org-z", id, full, full_len, NOW);
			publish_s("org-a", "agent-1", i % 2 ? minimal : full,
				  i % 2 ? minimal_len : full_len, NOW - 10877);
		}
		fleet_quiescent(&store, 0);
	}
	out[len] = '\0';
	assert_non_null(strstr(out, "agent_id=\"late-7\""));
	if (access("/usr/bin/promtool", X_OK) == 0)
		assert_int_equal(run_on("/usr/bin/promtool check metrics", out, len), 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pieces_of_every_size_give_the_whole_exposition),
		cmocka_unit_test(lines_near_the_bound_never_pass_the_cap),
		cmocka_unit_test(a_copied_cursor_continues_the_same),
		cmocka_unit_test(text_passes_promtool),
		cmocka_unit_test(openmetrics_ends_with_eof_and_parses),
		cmocka_unit_test(every_family_is_one_block_with_help_and_type_first),
		cmocka_unit_test(values_are_written_as_expo_format_double_does),
		cmocka_unit_test(full_sample_in_base_units),
		cmocka_unit_test(labels_are_escaped_and_overlong_ones_dropped),
		cmocka_unit_test(expired_agents_are_left_out_and_stale_ones_marked),
		cmocka_unit_test(max_series_keeps_the_first_ones_and_counts_the_rest),
		cmocka_unit_test(an_empty_store_gives_metadata_and_the_dropped_family),
		cmocka_unit_test(a_nul_in_a_label_is_written_as_it_is),
		cmocka_unit_test(capped_pieces_respect_the_step_budget),
		cmocka_unit_test(unselected_agents_cost_one_visit_each),
		cmocka_unit_test(shards_and_organizations_split_the_fleet_exactly),
		cmocka_unit_test(groups_select_exactly_their_families),
		cmocka_unit_test(fleet_agent_shard_is_stable),
		cmocka_unit_test(include_lists_parse_and_unknown_names_are_refused),
		cmocka_unit_test(same_named_services_and_identical_checks_gave_duplicate_series),
		/* Last: it changes the store. */
		cmocka_unit_test(agents_published_between_pieces_appear_from_a_family_on),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
