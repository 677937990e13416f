/*
 * Query strings (src/http/query.c): elements in order with empty ones
 * skipped, percent-decoding with '+' as a space, and every malformed
 * escape, encoded NUL or overflow refused. Each input is read from an
 * exact-size heap copy, so ASan catches a read past its end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ringside/http_query.h"

/* The elements of q joined as "key=value|key|..." for comparison. */
static void elements(const char *q, char *out, size_t cap)
{
	size_t len = strlen(q), pos = 0, o = 0;
	char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, q, len);
	struct http_query_param p;
	out[0] = '\0';
	while (http_query_next(copy, len, &pos, &p)) {
		assert_true(pos <= len);
		o += (size_t)snprintf(out + o, cap - o, "%s%.*s%s%.*s", o ? "|" : "",
				      (int)p.key_len, p.key, p.has_value ? "=" : "",
				      (int)p.value_len, p.value);
	}
	assert_int_equal(pos, len);
	free(copy);
}

static void elements_come_in_order_and_empty_ones_are_skipped(void **state)
{
	(void)state;
	char got[256];
	static const char *const cases[][2] = {
		{"", ""},
		{"&&", ""},
		{"shard=1&of=4", "shard=1|of=4"},
		{"&org=a&&include=all&", "org=a|include=all"},
		{"flag&x=", "flag|x="},
		{"=v", "=v"},
		{"a=b=c", "a=b=c"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		elements(cases[i][0], got, sizeof got);
		assert_string_equal(got, cases[i][1]);
	}
}

static void values_decode_percent_escapes_and_plus(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} ok[] = {
		{"", ""},
		{"org-1", "org-1"},
		{"containers%2Cprocesses", "containers,processes"},
		{"a+b", "a b"},
		{"%2b%2B", "++"},
		{"%e2%82%ac", "\xe2\x82\xac"},
	};
	char out[64];
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		size_t n = strlen(ok[i].in);
		char *copy = malloc(n ? n : 1);
		memcpy(copy, ok[i].in, n);
		assert_int_equal(http_query_decode(copy, n, out, sizeof out), strlen(ok[i].out));
		assert_string_equal(out, ok[i].out);
		free(copy);
	}
	/* A malformed escape, a NUL, or no room: refused. */
	static const char *const bad[] = {"%", "%2", "%zz", "a%g1", "%00", "x%0"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n = strlen(bad[i]);
		char *copy = malloc(n);
		memcpy(copy, bad[i], n);
		assert_int_equal(http_query_decode(copy, n, out, sizeof out), -1);
		free(copy);
	}
	assert_int_equal(http_query_decode("abcd", 4, out, 4), -1); /* no room for the NUL */
	assert_int_equal(http_query_decode("abcd", 4, out, 5), 4);
	assert_int_equal(http_query_decode("", 0, out, 0), -1);
	assert_int_equal(http_query_decode("a\0b", 3, out, sizeof out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(elements_come_in_order_and_empty_ones_are_skipped),
		cmocka_unit_test(values_decode_percent_escapes_and_plus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
