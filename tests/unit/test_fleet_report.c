/*
 * A stored report (include/ringside/fleet_report.h): the blob, its view,
 * and the JSON of GET /api/metrics/agents/{agentId}/latest. The samples
 * go through the validator, the blob and the JSON writer, and the
 * "report" member must be the sample again (jansson reads both; numbers
 * compared as doubles, keys in order).
 *
 * The samples are read from samples/ (tests run from the repo
 * root) or $RINGSIDE_SAMPLES. Links -ljansson.
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

#include <cmocka.h>
#include <jansson.h>

#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/ingest.h"

#include "unit_samples.h"

static struct ingest_parser parser;
static struct ingest_report report;

/* A snapshot as the store holds one: the header, then the blob of doc
 * (which must be valid), 64-byte aligned. Free with free(). */
static struct fleet_snapshot *snapshot_of(const char *doc, size_t len, int64_t received_ms)
{
	ingest_parser_init(&parser, &report, NULL);
	assert_int_equal(ingest_parser_feed(&parser, doc, len), 0);
	assert_int_equal(ingest_parser_finish(&parser), 0);

	size_t size = fleet_report_size(&report);
	size_t total = (sizeof(struct fleet_snapshot) + size + 63) & ~(size_t)63;
	struct fleet_snapshot *s = aligned_alloc(64, total);
	assert_non_null(s);
	memset(s, 0, sizeof *s);
	s->org = "org_\"acme\"";
	s->org_len = (uint8_t)strlen(s->org);
	s->agent = "agent-7";
	s->agent_len = (uint8_t)strlen(s->agent);
	s->received_ms = received_ms;
	assert_int_equal(fleet_report_encode(&report, s->data, size), size);
	s->len = (uint32_t)size;
	return s;
}

/* The body for doc as a heap string (and its length). */
static char *render(const char *doc, size_t len, int64_t received_ms, int64_t now_ms,
		    int64_t stale_ms, size_t *out_len)
{
	struct fleet_snapshot *s = snapshot_of(doc, len, received_ms);
	struct fleet_report v;
	size_t cap = 4 * len + 4096;
	char *out = malloc(cap + 1);

	assert_non_null(out);
	assert_int_equal(fleet_report_view(&v, s->data, s->len), 0);
	size_t n = fleet_report_json(out, cap, s, &v, now_ms, stale_ms);
	assert_true(n > 0 && n < cap);
	out[n] = '\0';
	free(s);
	*out_len = n;
	return out;
}

static char *render_str(const char *doc, size_t *out_len)
{
	return render(doc, strlen(doc), 0, 0, 1, out_len);
}

/*
 * a and b are the same JSON: numbers equal as doubles (jansson tells the
 * integer 1 from the real 1.0), strings byte for byte (U+0000 included),
 * object keys the same and in the same order.
 */
static bool same(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b))
			return false;
		void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
		for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia),
				 ib = json_object_iter_next((json_t *)b, ib)) {
			if (strcmp(json_object_iter_key(ia), json_object_iter_key(ib)) != 0) {
				print_error("key %s where %s was\n", json_object_iter_key(ia),
					    json_object_iter_key(ib));
				return false;
			}
			if (!same(json_object_iter_value(ia), json_object_iter_value(ib))) {
				print_error("at key %s\n", json_object_iter_key(ia));
				return false;
			}
		}
		return !ia && !ib;
	}
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!same(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
	default:
		return json_equal((json_t *)a, (json_t *)b);
	}
}

static json_t *load(const char *text, size_t len)
{
	json_error_t err;
	/* Duplicate keys in the output would be a bug: reject them. */
	json_t *j = json_loadb(text, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);

	if (!j)
		print_error("jansson: %s at %d\n", err.text, err.position);
	assert_non_null(j);
	return j;
}

/* The "report" member of the body for doc is doc. */
static void assert_round_trip(const char *doc, size_t len)
{
	size_t n;
	char *body = render(doc, len, 1795348800123, 1795348800123, 60000, &n);
	json_t *got = load(body, n), *want = load(doc, len);

	assert_true(json_is_object(got));
	assert_int_equal(json_object_size(got), 5);
	assert_string_equal(json_string_value(json_object_get(got, "agentId")), "agent-7");
	assert_string_equal(json_string_value(json_object_get(got, "organizationId")),
			    "org_\"acme\"");
	assert_string_equal(json_string_value(json_object_get(got, "receivedAt")),
			    "2026-11-22T12:00:00.123Z");
	assert_true(json_is_false(json_object_get(got, "stale")));
	assert_true(same(json_object_get(got, "report"), want));
	json_decref(got);
	json_decref(want);
	free(body);
}

static void full_sample_round_trips(void **state)
{
	(void)state;
	size_t len;
	char *doc = read_sample("ingest-full.json", &len);

	assert_round_trip(doc, len);
	free(doc);
}

static void minimal_sample_round_trips(void **state)
{
	(void)state;
	size_t len;
	char *doc = read_sample("ingest-minimal.json", &len);

	assert_round_trip(doc, len);
	free(doc);
}

static void body_is_exact_and_drops_unknown_and_absent_fields(void **state)
{
	(void)state;
	size_t n;
	char *body = render_str("{\"serverHealthy\":false,\"x\":[1,{\"y\":null}],\"cpuPercent\":1.0,"
				"\"loadAvg1\":-2.5e-3,\"containers\":[{\"id\":\"c1\",\"name\":\"n\","
				"\"image\":\"i\",\"imageId\":\"sha\",\"state\":\"up\",\"status\":\"s\","
				"\"created\":17e8,\"labels\":{\"z\":\"1\",\"a\":\"2\",\"m\":\"\"},"
				"\"ports\":[]}],\"services\":[]}",
				&n);

	assert_string_equal(body,
			    "{\"agentId\":\"agent-7\",\"organizationId\":\"org_\\\"acme\\\"\","
			    "\"receivedAt\":\"1970-01-01T00:00:00.000Z\",\"stale\":false,\"report\":"
			    "{\"cpuPercent\":1,\"loadAvg1\":-0.0025,\"serverHealthy\":false,"
			    "\"services\":[],\"containers\":[{\"id\":\"c1\",\"name\":\"n\","
			    "\"image\":\"i\",\"imageId\":\"sha\",\"state\":\"up\",\"status\":\"s\","
			    "\"created\":1700000000,\"ports\":[],"
			    "\"labels\":{\"z\":\"1\",\"a\":\"2\",\"m\":\"\"}}]}}");
	assert_int_equal(n, strlen(body));
	free(body);
}

static void empty_report_is_an_empty_object(void **state)
{
	(void)state;
	size_t n;
	char *body = render_str(" {} ", &n);

	assert_non_null(strstr(body, ",\"report\":{}}"));
	assert_ptr_equal(strstr(body, ",\"report\":{}}") + strlen(",\"report\":{}}"), body + n);
	free(body);
}

static void top_processes_keep_by_cpu_by_memory_and_stats(void **state)
{
	(void)state;
	size_t n;
	char *body = render_str(
		"{\"topProcesses\":{\"stats\":{\"total\":3,\"running\":1,\"sleeping\":2,"
		"\"stopped\":0,\"zombie\":0},\"byMemory\":[{\"pid\":2,\"name\":\"b\",\"state\":\"S\","
		"\"cpuPercent\":0,\"memoryMb\":900,\"threads\":4}],\"byCpu\":[{\"pid\":1,\"name\":"
		"\"a\",\"state\":\"R\",\"cpuPercent\":99.5,\"memoryMb\":1,\"threads\":1},{\"pid\":2,"
		"\"name\":\"b\",\"state\":\"S\",\"cpuPercent\":0,\"memoryMb\":900,\"threads\":4}]}}",
		&n);

	/* Seed order (byCpu, byMemory, stats), whatever the document's. */
	assert_non_null(strstr(body,
			       "\"report\":{\"topProcesses\":{\"byCpu\":[{\"pid\":1,\"name\":\"a\","
			       "\"state\":\"R\",\"cpuPercent\":99.5,\"memoryMb\":1,\"threads\":1},"
			       "{\"pid\":2,\"name\":\"b\",\"state\":\"S\",\"cpuPercent\":0,"
			       "\"memoryMb\":900,\"threads\":4}],\"byMemory\":[{\"pid\":2,\"name\":"
			       "\"b\",\"state\":\"S\",\"cpuPercent\":0,\"memoryMb\":900,\"threads\":4}],"
			       "\"stats\":{\"total\":3,\"running\":1,\"sleeping\":2,\"stopped\":0,"
			       "\"zombie\":0}}}}"));
	free(body);
}

static void string_with_nul_quotes_and_controls_round_trips(void **state)
{
	(void)state;
	/* U+0000, a quote, a backslash, a newline, U+001F, U+007F, é, U+2028, 😀 */
	static const char doc[] =
		"{\"agentVersion\":\"a\\u0000b\\\"c\\\\d\\ne\\u001f\x7f\xc3\xa9\\u2028\\ud83d\\ude00\"}";
	static const char want[] = "a\0b\"c\\d\ne\x1f\x7f\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80";
	size_t n;
	char *body = render(doc, sizeof doc - 1, 0, 0, 1, &n);

	assert_non_null(strstr(body, "\"agentVersion\":\"a\\u0000b\\\"c\\\\d\\ne\\u001f\x7f"
				     "\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80\"}}"));
	json_t *got = load(body, n);
	json_t *v = json_object_get(json_object_get(got, "report"), "agentVersion");
	assert_int_equal(json_string_length(v), sizeof want - 1);
	assert_memory_equal(json_string_value(v), want, sizeof want - 1);
	json_decref(got);
	free(body);
}

static void stale_from_the_boundary_on(void **state)
{
	(void)state;
	static const char doc[] = "{}";
	size_t n;
	char *body;

	/* Received at 1000, stale after 60 s: 60999 is fresh, 61000 stale. */
	body = render(doc, 2, 1000, 60999, 60000, &n);
	assert_non_null(strstr(body, ",\"stale\":false,"));
	free(body);
	body = render(doc, 2, 1000, 61000, 60000, &n);
	assert_non_null(strstr(body, ",\"stale\":true,"));
	free(body);
	/* A clock that went back is not stale. */
	body = render(doc, 2, 1000, 0, 60000, &n);
	assert_non_null(strstr(body, ",\"stale\":false,"));
	free(body);
}

static void received_at_is_rfc3339_utc_with_milliseconds(void **state)
{
	(void)state;
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
		{1795348800123, "2026-11-22T12:00:00.123Z"},
		{0, "1970-01-01T00:00:00.000Z"},
		{951868799999, "2000-02-29T23:59:59.999Z"}, /* leap day, last ms */
		{951868800000, "2000-03-01T00:00:00.000Z"},
		{1700000000007, "2023-11-14T22:13:20.007Z"},
		{-1, "1969-12-31T23:59:59.999Z"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n;
		char *body = render("{}", 2, cases[i].ms, cases[i].ms, 1, &n);
		char want[64];

		snprintf(want, sizeof want, ",\"receivedAt\":\"%s\",", cases[i].text);
		if (!strstr(body, want))
			print_error("%lld: %s\n", (long long)cases[i].ms, body);
		assert_non_null(strstr(body, want));
		free(body);
	}
}

/* Every cap up to the body's length (no room for its NUL) gives 0 and
 * writes nothing past cap (a guard byte, and ASan on the exact-size
 * allocation past it); one more fits, terminated. */
static void check_every_short_cap(const char *doc, size_t len)
{
	struct fleet_snapshot *s = snapshot_of(doc, len, 1795348800123);
	struct fleet_report v;
	size_t need;
	char *full = malloc(8 * len + 4096);

	assert_int_equal(fleet_report_view(&v, s->data, s->len), 0);
	need = fleet_report_json(full, 8 * len + 4096, s, &v, 0, 1);
	assert_true(need > 0);
	for (size_t cap = 0; cap <= need; cap++) {
		char *out = malloc(cap + 1);
		assert_non_null(out);
		out[cap] = (char)0xA5;
		assert_int_equal(fleet_report_json(out, cap, s, &v, 0, 1), 0);
		assert_int_equal((unsigned char)out[cap], 0xA5);
		free(out);
	}
	char *out = malloc(need + 1);
	assert_int_equal(fleet_report_json(out, need + 1, s, &v, 0, 1), need);
	assert_memory_equal(out, full, need);
	assert_int_equal(out[need], '\0');
	free(out);
	free(full);
	free(s);
}

static void short_cap_gives_0_and_writes_nothing_past_it(void **state)
{
	(void)state;
	static const char doc[] =
		"{\"cpuPercent\":0.1,\"agentVersion\":\"\\u0000\\\"\",\"containers\":[{\"id\":\"c\","
		"\"name\":\"n\",\"image\":\"i\",\"imageId\":\"d\",\"state\":\"s\",\"status\":\"u\","
		"\"created\":1,\"labels\":{\"k\\n\":\"v\\u0001\"},\"networkMode\":\"host\"}]}";
	static const char *const samples[] = {"ingest-minimal.json", "ingest-full.json"};

	check_every_short_cap(doc, sizeof doc - 1);
	for (size_t i = 0; i < 2; i++) {
		size_t len;
		char *sample = read_sample(samples[i], &len);

		check_every_short_cap(sample, len);
		free(sample);
	}
}

static void view_rejects_a_blob_of_the_wrong_length(void **state)
{
	(void)state;
	size_t len;
	char *doc = read_sample("ingest-full.json", &len);
	struct fleet_snapshot *s = snapshot_of(doc, len, 0);
	struct fleet_report v;

	assert_int_equal(fleet_report_view(&v, s->data, s->len), 0);
	assert_int_equal(v.head->n_container, report.n_container);
	assert_int_equal(fleet_report_view(&v, s->data, s->len - 1), -EINVAL);
	assert_int_equal(fleet_report_view(&v, s->data, s->len + 8), -EINVAL);
	assert_int_equal(fleet_report_view(&v, s->data, s->len - 8), -EINVAL);
	assert_int_equal(fleet_report_view(&v, s->data, sizeof(struct ingest_report_head) - 1),
			 -EINVAL);
	assert_int_equal(fleet_report_view(&v, s->data, 0), -EINVAL);
	free(s);
	free(doc);
}

static void encode_into_too_small_a_buffer_writes_nothing(void **state)
{
	(void)state;
	size_t len;
	char *doc = read_sample("ingest-full.json", &len);

	ingest_parser_init(&parser, &report, NULL);
	assert_int_equal(ingest_parser_feed(&parser, doc, len), 0);
	assert_int_equal(ingest_parser_finish(&parser), 0);
	size_t size = fleet_report_size(&report);
	unsigned char *buf = aligned_alloc(64, (size + 63) & ~(size_t)63);
	assert_non_null(buf);
	for (size_t cap = 0; cap < size; cap += cap < 64 ? 1 : 997) {
		memset(buf, 0xA5, size);
		assert_int_equal(fleet_report_encode(&report, buf, cap), 0);
		for (size_t i = 0; i < size; i++)
			assert_int_equal(buf[i], 0xA5);
	}
	assert_int_equal(fleet_report_encode(&report, buf, size - 1), 0);
	assert_int_equal(fleet_report_encode(&report, buf, size), size);
	free(buf);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_sample_round_trips),
		cmocka_unit_test(minimal_sample_round_trips),
		cmocka_unit_test(body_is_exact_and_drops_unknown_and_absent_fields),
		cmocka_unit_test(empty_report_is_an_empty_object),
		cmocka_unit_test(top_processes_keep_by_cpu_by_memory_and_stats),
		cmocka_unit_test(string_with_nul_quotes_and_controls_round_trips),
		cmocka_unit_test(stale_from_the_boundary_on),
		cmocka_unit_test(received_at_is_rfc3339_utc_with_milliseconds),
		cmocka_unit_test(short_cap_gives_0_and_writes_nothing_past_it),
		cmocka_unit_test(view_rejects_a_blob_of_the_wrong_length),
		cmocka_unit_test(encode_into_too_small_a_buffer_writes_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
