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

#include "ringside/json_writer.h"

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
	jsonw_lit(w, "}");
}

static void every_capacity_stays_terminated_and_in_bounds(void **state)
{
	(void)state;
	char whole[256], buf[300];
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
		cmocka_unit_test(zero_capacity_is_full_from_the_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
