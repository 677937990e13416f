/*
 * The JSON writer (src/common/json_writer.c): escapes, numbers, times, and
 * above all that what it wrote is always terminated and never longer than
 * what fits, at every capacity: the ingest 202 once printed an escaped id
 * that was not terminated with %s, and sent one tenant's ids to another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ringside/json_writer.h"
#include "ringside/rfc3339.h"

/* U+0000, quote, backslash, \n \r \t, U+0001, U+001F, DEL, é. */
static const char nasty[] = "a\0\"\\\n\r\t\x01\x1f\x7f\xc3\xa9";
#define NASTY_LEN (sizeof nasty - 1)
static const char nasty_json[] = "\"a\\u0000\\\"\\\\\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\"";

static void strings_escape_every_control_character_and_nul(void **state)
{
	(void)state;
	char buf[512];
	struct json_writer w;
	jsonw_init(&w, buf, sizeof buf);
	jsonw_string(&w, nasty, NASTY_LEN);
	assert_false(w.overflow);
	assert_string_equal(buf, nasty_json);
	assert_int_equal(jsonw_done(&w), sizeof nasty_json - 1);
	/* Every byte below 0x20 is escaped; jansson reads back the same bytes. */
	char all[32];
	for (int i = 0; i < 32; i++)
		all[i] = (char)i;
	jsonw_init(&w, buf, sizeof buf);
	jsonw_lit(&w, "[");
	jsonw_string(&w, all, sizeof all);
	jsonw_lit(&w, "]");
	json_error_t e;
	json_t *j = json_loadb(buf, jsonw_done(&w), JSON_ALLOW_NUL, &e);
	if (!j)
		fail_msg("jansson: %s in %s", e.text, buf);
	size_t n = json_string_length(json_array_get(j, 0));
	assert_int_equal(n, sizeof all);
	assert_memory_equal(json_string_value(json_array_get(j, 0)), all, sizeof all);
	json_decref(j);
}

/* At every capacity from 0 to what the text needs: the buffer is
 * terminated, nothing is written past cap, the text is a prefix of the
 * whole one ending where a whole value ended, and overflow says so. */
/* An object with a value of every kind, like the ingest 202. */
static void write_document(struct json_writer *w)
{
	jsonw_lit(w, "{\"agentId\":");
	jsonw_string(w, nasty, NASTY_LEN);
	jsonw_lit(w, ",");
	jsonw_key(w, "bytes");
	jsonw_u64(w, 18446744073709551615u);
	jsonw_lit(w, ",\"t\":");
	jsonw_time_ms(w, 1795348800123);
	jsonw_lit(w, ",\"x\":");
	jsonw_start_array(w);
	jsonw_i64(w, -5);
	jsonw_bool(w, true);
	jsonw_null(w);
	jsonw_start_object(w);
	jsonw_key_string(w, nasty, NASTY_LEN);
	jsonw_double(w, 0.5);
	jsonw_end_object(w);
	jsonw_end_array(w);
	jsonw_end_object(w);
}

static void every_capacity_stays_terminated_and_in_bounds(void **state)
{
	(void)state;
	char whole[512], buf[600];
	struct json_writer w;
	jsonw_init(&w, whole, sizeof whole);
	write_document(&w);
	size_t need = jsonw_done(&w);
	assert_true(need > 0);

	for (size_t cap = 1; cap <= need + 1; cap++) {
		memset(buf, '#', sizeof buf);
		jsonw_init(&w, buf, cap);
		write_document(&w);
		assert_true(w.len < cap);
		assert_int_equal(buf[w.len], '\0');
		assert_int_equal(buf[cap], '#'); /* nothing past cap */
		assert_memory_equal(buf, whole, w.len);
		assert_int_equal(w.overflow, cap <= need);
		assert_int_equal(jsonw_done(&w), cap <= need ? 0 : need);
	}
	/* Once full, a later value that would fit is not written either. */
	jsonw_init(&w, buf, 4);
	jsonw_lit(&w, "12345");
	jsonw_lit(&w, "1");
	assert_int_equal(w.len, 0);
	assert_string_equal(buf, "");
}

static void numbers_and_times(void **state)
{
	(void)state;
	char buf[128];
	struct json_writer w;
	jsonw_init(&w, buf, sizeof buf);
	jsonw_u64(&w, 0);
	jsonw_lit(&w, " ");
	jsonw_double(&w, 0.1);
	jsonw_lit(&w, " ");
	jsonw_double(&w, -0.0);
	jsonw_lit(&w, " ");
	jsonw_double(&w, 1e21);
	jsonw_lit(&w, " ");
	jsonw_time_ms(&w, 0);
	jsonw_lit(&w, " ");
	jsonw_time_ms(&w, -1); /* floor: the last millisecond of 1969 */
	jsonw_lit(&w, " ");
	jsonw_time_ms(&w, 951868799999); /* leap day */
	assert_string_equal(buf, "0 0.1 -0 1e+21 \"1970-01-01T00:00:00.000Z\" "
				 "\"1969-12-31T23:59:59.999Z\" \"2000-02-29T23:59:59.999Z\"");
}

/* The writer places the commas: nested objects and arrays, every kind
 * of value, empty containers, and keys that need escaping. */
static void commas_come_from_the_writer(void **state)
{
	(void)state;
	char buf[512];
	struct json_writer w;
	jsonw_init(&w, buf, sizeof buf);
	jsonw_start_object(&w);
	jsonw_key(&w, "a");
	jsonw_start_array(&w);
	jsonw_u64(&w, 1);
	jsonw_i64(&w, -9223372036854775807 - 1);
	jsonw_double(&w, 2.5);
	jsonw_bool(&w, true);
	jsonw_bool(&w, false);
	jsonw_null(&w);
	jsonw_cstring(&w, "s");
	jsonw_time_ms(&w, 0);
	jsonw_start_object(&w);
	jsonw_end_object(&w);
	jsonw_start_array(&w);
	jsonw_end_array(&w);
	jsonw_end_array(&w);
	jsonw_key_n(&w, "bcd", 1);
	jsonw_start_object(&w);
	jsonw_key_string(&w, "k\"\n", 3);
	jsonw_i64(&w, 7);
	jsonw_key(&w, "n");
	jsonw_double(&w, NAN);
	jsonw_end_object(&w);
	jsonw_key(&w, "e");
	jsonw_start_array(&w);
	jsonw_end_array(&w);
	jsonw_end_object(&w);
	assert_false(w.overflow);
	assert_string_equal(buf, "{\"a\":[1,-9223372036854775808,2.5,true,false,null,\"s\","
				 "\"1970-01-01T00:00:00.000Z\",{},[]],\"b\":{\"k\\\"\\n\":7,"
				 "\"n\":null},\"e\":[]}");
	json_error_t e;
	json_t *j = json_loadb(buf, jsonw_done(&w), 0, &e);
	if (!j)
		fail_msg("jansson: %s in %s", e.text, buf);
	json_decref(j);

	/* Separators written with jsonw_raw drop the pending comma: code
	 * that composes its own syntax writes what it always wrote. */
	jsonw_init(&w, buf, sizeof buf);
	jsonw_lit(&w, "{\"a\":");
	jsonw_u64(&w, 1);
	jsonw_lit(&w, ",");
	jsonw_key(&w, "b");
	jsonw_cstring(&w, "x");
	jsonw_lit(&w, ",\"c\":[");
	jsonw_u64(&w, 2);
	jsonw_u64(&w, 3);
	jsonw_lit(&w, "]}");
	assert_string_equal(buf, "{\"a\":1,\"b\":\"x\",\"c\":[2,3]}");
}

/* The one RFC 3339 writer against the C library's calendar, at random
 * instants over years 0 to 9999, and its clamping past them. */
static void rfc3339_agrees_with_gmtime(void **state)
{
	(void)state;
	char got[RFC3339_MS_LEN + 1] = "", want[64];
	srand(12345);
	for (int i = 0; i < 200000; i++) {
		int64_t r = ((int64_t)rand() << 31 | rand()) % 316000000000000LL;
		int64_t ms = r - 62167219200000LL; /* from 0000-01-01 */
		if (i < 1000) /* and days around 1970 and 2000 */
			ms = (i & 1 ? 951868800000 : 0) + (i - 500) * 43200007LL;
		time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
		struct tm tm;
		gmtime_r(&t, &tm);
		if (tm.tm_year + 1900 > 9999)
			continue;
		snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (int)(((ms % 1000) + 1000) % 1000));
		rfc3339_format_ms(got, ms);
		if (strcmp(got, want))
			fail_msg("%lld: %s, want %s", (long long)ms, got, want);
	}
	rfc3339_format_ms(got, INT64_MIN);
	assert_string_equal(got, "0000-01-01T00:00:00.000Z");
	rfc3339_format_ms(got, INT64_MAX);
	assert_string_equal(got, "9999-12-31T23:59:59.999Z");
	rfc3339_format_ms(got, 253402300800000);
	assert_string_equal(got, "9999-12-31T23:59:59.999Z");
}

static void zero_capacity_is_full_from_the_start(void **state)
{
	(void)state;
	char buf[1] = {'#'};
	struct json_writer w;
	jsonw_init(&w, buf, 0);
	jsonw_lit(&w, "x");
	assert_true(w.overflow);
	assert_int_equal(buf[0], '#');
	assert_int_equal(jsonw_done(&w), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(strings_escape_every_control_character_and_nul),
		cmocka_unit_test(every_capacity_stays_terminated_and_in_bounds),
		cmocka_unit_test(numbers_and_times),
		cmocka_unit_test(commas_come_from_the_writer),
		cmocka_unit_test(rfc3339_agrees_with_gmtime),
		cmocka_unit_test(zero_capacity_is_full_from_the_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
