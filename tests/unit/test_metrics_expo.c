/*
 * Exposition writer and Accept / Accept-Encoding negotiation
 * (include/ringside/metrics_expo.h): exact bytes of families, samples and
 * histograms in both formats, escaping, number formatting, overflow, and
 * the header values real scrapers send. One test feeds a whole text
 * exposition to promtool, Prometheus's own parser, when it is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringside/metrics_expo.h"

static const char *fmt(double v)
{
	static char out[33];
	size_t n = expo_format_double(out, v);

	assert_int_equal(n, strlen(out));
	return out;
}

/* Writes into a fresh buffer of `cap` and returns it NUL-terminated at len. */
static char big[1 << 16];

static void start(struct expo *e, enum expo_format f)
{
	memset(big, 0, sizeof big);
	expo_init(e, big, sizeof big - 1, f);
}

static const char *done(struct expo *e)
{
	assert_false(e->overflow);
	e->buf[e->len] = '\0';
	return e->buf;
}

/* ---- Escaping ---- */

static void label_value_escapes_backslash_quote_and_newline(void **state)
{
	(void)state;
	char out[64];

	assert_int_equal(expo_escape_label_value(out, sizeof out, "a\\b\"c\nd'e\tf"), 14);
	assert_string_equal(out, "a\\\\b\\\"c\\nd'e\tf");
	assert_int_equal(expo_escape_label_value(out, sizeof out, ""), 0);
	assert_string_equal(out, "");
}

static void help_escapes_quote_only_in_openmetrics(void **state)
{
	(void)state;
	char out[64];
	const char *help = "say \"hi\" C:\\dir\nnext";

	/* [TEXT]: "\\" and "\n" only; a '"' in HELP stays as it is. */
	assert_int_not_equal(expo_escape_help(out, sizeof out, help, EXPO_TEXT_004), (size_t)-1);
	assert_string_equal(out, "say \"hi\" C:\\\\dir\\nnext");
	/* [OM]: escaped-string escapes '"' too. */
	assert_int_not_equal(expo_escape_help(out, sizeof out, help, EXPO_OPENMETRICS_100), (size_t)-1);
	assert_string_equal(out, "say \\\"hi\\\" C:\\\\dir\\nnext");
}

static void escape_fails_when_text_and_nul_do_not_fit(void **state)
{
	(void)state;
	char out[8];

	memset(out, 'X', sizeof out);
	assert_int_equal(expo_escape_label_value(out, 5, "a\"bc"), (size_t)-1); /* needs 5 + NUL */
	assert_int_equal(out[5], 'X');                                          /* nothing past cap */
	assert_int_equal(expo_escape_label_value(out, 6, "a\"bc"), 5);
	assert_string_equal(out, "a\\\"bc");
	assert_int_equal(expo_escape_help(out, 0, "", EXPO_TEXT_004), (size_t)-1);
	assert_int_equal(expo_escape_help(out, 1, "", EXPO_TEXT_004), 0);
}

static void writer_escapes_help_and_label_values_in_both_formats(void **state)
{
	(void)state;
	struct expo e;
	const struct expo_label l[] = {{"path", "/a\"b\\c\nd"}};

	start(&e, EXPO_TEXT_004);
	expo_family(&e, "g", EXPO_GAUGE, "a \"q\" \\ and\nline");
	expo_sample(&e, "g", NULL, l, 1, NULL, 1);
	expo_finish(&e);
	assert_string_equal(done(&e), "# HELP g a \"q\" \\\\ and\\nline\n"
				      "# TYPE g gauge\n"
				      "g{path=\"/a\\\"b\\\\c\\nd\"} 1\n");

	start(&e, EXPO_OPENMETRICS_100);
	expo_family(&e, "g", EXPO_GAUGE, "a \"q\" \\ and\nline");
	expo_sample(&e, "g", NULL, l, 1, NULL, 1);
	expo_finish(&e);
	assert_string_equal(done(&e), "# HELP g a \\\"q\\\" \\\\ and\\nline\n"
				      "# TYPE g gauge\n"
				      "g{path=\"/a\\\"b\\\\c\\nd\"} 1\n"
				      "# EOF\n");
}

/* ---- Numbers ---- */

static void integral_doubles_print_as_integers(void **state)
{
	(void)state;
	assert_string_equal(fmt(0), "0");
	assert_string_equal(fmt(1), "1");
	assert_string_equal(fmt(-3), "-3");
	assert_string_equal(fmt(42), "42");
	assert_string_equal(fmt(1e15), "1000000000000000");
	assert_string_equal(fmt(9007199254740991.0), "9007199254740991");   /* 2^53 - 1 */
	assert_string_equal(fmt(-9007199254740991.0), "-9007199254740991");
}

static void large_integers_beyond_2_53_round_trip(void **state)
{
	(void)state;
	assert_string_equal(fmt(9007199254740992.0), "9007199254740992");   /* 2^53 */
	assert_string_equal(fmt(9007199254740994.0), "9007199254740994");   /* 2^53 + 2 */
	assert_string_equal(fmt(-9007199254740992.0), "-9007199254740992");
	assert_string_equal(fmt(18446744073709551616.0), "1.8446744073709552e+19"); /* 2^64 */
	assert_string_equal(fmt(1e21), "1e+21");
	assert_string_equal(fmt(1.7976931348623157e308), "1.7976931348623157e+308");
}

static void fractions_use_the_shortest_round_trip_form(void **state)
{
	(void)state;
	assert_string_equal(fmt(0.1), "0.1");
	assert_string_equal(fmt(0.1 + 0.2), "0.30000000000000004"); /* needs 17 digits */
	assert_string_equal(fmt(1.0 / 3), "0.3333333333333333");    /* 16 */
	assert_string_equal(fmt(-2.5), "-2.5");
	assert_string_equal(fmt(1e-9), "1e-09");
	assert_string_equal(fmt(1.5e-7), "1.5e-07");
	assert_string_equal(fmt(0.005), "0.005");
	assert_string_equal(fmt(123456.789), "123456.789");
}

static void special_values_and_negative_zero(void **state)
{
	(void)state;
	assert_string_equal(fmt(NAN), "NaN");
	assert_string_equal(fmt(-NAN), "NaN");
	assert_string_equal(fmt(INFINITY), "+Inf");
	assert_string_equal(fmt(-INFINITY), "-Inf");
	/* -0 is written "0", as client_golang does; Prometheus reads both. */
	assert_string_equal(fmt(-0.0), "0");
}

static void denormals_round_trip(void **state)
{
	(void)state;
	assert_string_equal(fmt(4.9406564584124654e-324), "4.94065645841247e-324"); /* smallest */
	assert_string_equal(fmt(2.2250738585072009e-308), "2.225073858507201e-308"); /* largest */
	assert_true(strtod(fmt(2.2250738585072009e-308), NULL) == 2.2250738585072009e-308);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Any bit pattern: reads back to the same double, in the allowed alphabet. */
static void random_doubles_round_trip_exactly(void **state)
{
	(void)state;
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (int i = 0; i < 200000; i++) {
		uint64_t bits = xorshift(&seed);
		double v, back;
		const char *s;

		if (i & 1) /* also plenty of ordinary magnitudes and integers */
			bits = (bits & 0x800fffffffffffffull) | ((uint64_t)(1000 + i % 100) << 52);
		memcpy(&v, &bits, sizeof v);
		s = fmt(v);
		assert_true(strlen(s) <= 24);
		if (isnan(v)) {
			assert_string_equal(s, "NaN");
			continue;
		}
		assert_int_equal(strspn(s, "0123456789.e+-Inf"), strlen(s));
		back = strtod(s, NULL);
		assert_memory_equal(&back, &v, sizeof v);
	}
}

/*
 * The short-decimal fast path writes exactly what the slow path wrote
 * before it existed. old_format_double is expo_format_double as it was
 * then, for finite v: integers below 2^53 with their digits, anything
 * else the shortest of %.15g, %.16g, %.17g that reads back (C locale).
 */
static const char *old_format_double(double v)
{
	static char buf[40];

	if (v > -0x1p53 && v < 0x1p53 && v == (double)(int64_t)v) {
		snprintf(buf, sizeof buf, "%lld", (long long)v);
		return buf;
	}
	for (int prec = 15;; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (prec == 17 || strtod(buf, NULL) == v)
			return buf;
	}
}

static const uint64_t p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* v: reads back, and is written as the old slow path wrote it. */
static void check_as_before(double v)
{
	const char *got = fmt(v), *want = old_format_double(v);
	double back = strtod(got, NULL);

	if (back != v || strcmp(got, want)) {
		print_error("%.17g: got %s, old path %s\n", v, got, want);
		fail();
	}
}

/*
 * v = (double)m / 10^k, the fast path's domain when 1e-4 <= |v|, m < 10^15
 * and k <= 6: also the exact decimal m / 10^k, and "%.15g" (which reads
 * back). Returns whether v was in that domain.
 */
static bool check_decimal(uint64_t m, unsigned k, bool neg)
{
	double v = (double)m / (double)p10[k];
	char dec[40], g15[40];
	size_t n;

	if (neg)
		v = -v;
	check_as_before(v);
	check_as_before(nextafter(v, INFINITY)); /* one ulp off: not a short decimal */
	check_as_before(nextafter(v, -INFINITY));
	if (fabs(v) < 1e-4 || m >= 1000000000000000ull || k > 6 || m % p10[k] == 0)
		return false;
	n = (size_t)snprintf(dec, sizeof dec, "%s%llu.%0*llu", neg ? "-" : "",
			     (unsigned long long)(m / p10[k]), (int)k,
			     (unsigned long long)(m % p10[k]));
	while (dec[n - 1] == '0')
		dec[--n] = '\0';
	snprintf(g15, sizeof g15, "%.15g", v);
	assert_true(strtod(g15, NULL) == v);
	assert_string_equal(g15, dec);
	assert_string_equal(fmt(v), dec);
	return true;
}

static void short_decimals_are_written_as_the_slow_path_wrote_them(void **state)
{
	(void)state;
	uint64_t seed = 0x2545f4914f6cdd1dull;
	unsigned in_domain = 0;
	double up = 1e-4, down = 1e-4, below = 1e15, above = 1e15;

	/* m of 1 to 17 digits over 10^0..10^8: both sides of 1e-4, of
	 * m = 10^15 and of k = 6; negatives half the time. */
	for (int i = 0; i < 60000; i++) {
		uint64_t r = xorshift(&seed);
		unsigned digits = 1 + (unsigned)(r % 17), k = (unsigned)(r >> 8) % 9;
		uint64_t lo = 1;

		for (unsigned d = 1; d < digits; d++)
			lo *= 10;
		in_domain += check_decimal(lo + xorshift(&seed) % (9 * lo), k, r >> 40 & 1);
	}
	assert_true(in_domain > 15000);

	/* The edges. */
	for (unsigned k = 1; k <= 8; k++)
		for (uint64_t m = 1; m < 2000; m++) { /* around 1e-4 when k >= 4 */
			check_decimal(m, k, false);
			check_decimal(m, k, true);
		}
	for (unsigned k = 0; k <= 8; k++)
		for (uint64_t d = 1; d < 3000; d++) { /* m around 10^15 for each k */
			check_decimal(1000000000000000ull - d, k, d & 1);
			check_decimal(1000000000000000ull + d, k, d & 1);
		}
	for (int i = 0; i < 1000; i++) { /* 1000 ulps either side of 1e-4 and 1e15 */
		check_as_before(up);
		check_as_before(-down);
		check_as_before(below);
		check_as_before(-above);
		up = nextafter(up, 1);
		down = nextafter(down, 0);
		below = nextafter(below, 0);
		above = nextafter(above, 2e15);
	}
	check_as_before(99999999999999.9);
	check_as_before(999999999999999.9);
	check_as_before(999999999999999.4);
	check_as_before(0.00009999999999999999);

	/* Sums and products: mostly not short decimals (0.30000000000000004). */
	static const double specific[] = {0.1 + 0.2, 1.1 * 1.1, 0.1 * 3, 1 - 0.9, 100 * 1.1,
					  0.7 + 0.1, 4.35 * 100, 1.005 * 1000, 0.3 - 0.1};
	for (size_t i = 0; i < sizeof specific / sizeof specific[0]; i++) {
		check_as_before(specific[i]);
		check_as_before(-specific[i]);
	}
	for (int i = 0; i < 20000; i++) {
		uint64_t r = xorshift(&seed), q = xorshift(&seed);
		double a = (double)(r % 1000000) / (double)p10[1 + r % 6];
		double b = (double)(q % 1000000) / (double)p10[1 + q % 6];

		check_as_before(a + b);
		check_as_before(a - b);
		check_as_before(a * b);
		if (b != 0)
			check_as_before(a / b);
	}
	/* Any bits of magnitude 2^-17 (7.6e-6) to 2^54 (1.8e16). */
	for (int i = 0; i < 40000; i++) {
		uint64_t bits = (xorshift(&seed) & 0x800fffffffffffffull) |
				((uint64_t)(1006 + i % 71) << 52);
		double v;

		memcpy(&v, &bits, sizeof v);
		check_as_before(v);
	}
}

static void fixed_decimals_are_exact(void **state)
{
	(void)state;
	char out[48];

#define FIXED(neg, w, f, scale, want)                                                  \
	do {                                                                           \
		size_t n_ = expo_format_fixed(out, neg, w, f, scale);                  \
		assert_true(n_ <= 22 + (scale));                                       \
		out[n_] = '\0';                                                        \
		assert_string_equal(out, want);                                        \
	} while (0)
	FIXED(false, 0, 0, 9, "0");
	FIXED(true, 0, 0, 9, "0");
	FIXED(false, 3, 0, 0, "3");
	FIXED(true, 0, 5, 1, "-0.5");
	FIXED(true, 2, 750, 3, "-2.75");
	FIXED(false, 1800000000, 123000000, 9, "1800000000.123");
	FIXED(false, 0, 15, 4, "0.0015");
	FIXED(false, 0, 1, 18, "0.000000000000000001");
	FIXED(true, UINT64_MAX, 999999999999999999ull, 18,
	      "-18446744073709551615.999999999999999999");
#undef FIXED
}

static void decimal_point_is_a_dot_in_any_locale(void **state)
{
	(void)state;
	static const char *const comma[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
	const char *got = NULL;

	for (size_t i = 0; i < sizeof comma / sizeof comma[0] && !got; i++)
		got = setlocale(LC_NUMERIC, comma[i]);
	if (!got) {
		print_message("no de_DE/fr_FR locale installed (apt-get install locales; locale-gen); "
			      "cannot test a ',' decimal point\n");
		skip();
	}
	assert_string_equal(fmt(0.1), "0.1");
	assert_string_equal(fmt(-1.5e-7), "-1.5e-07");
	assert_string_equal(fmt(0.1 + 0.2), "0.30000000000000004");
	setlocale(LC_NUMERIC, "C");
}

/* ---- Families, samples, histograms ---- */

static void write_counter_family(struct expo *e)
{
	const struct expo_label a[] = {{"method", "GET"}, {"code", "200"}};
	const struct expo_label b[] = {{"method", "POST"}, {"code", "201"}};
	const struct expo_label c[] = {{"method", "GET"}, {"code", "404"}};

	expo_family(e, "http_requests_total", EXPO_COUNTER, "Requests served.");
	expo_sample_u64(e, "http_requests_total", NULL, a, 2, NULL, 1027);
	expo_sample_u64(e, "http_requests_total", NULL, b, 2, NULL, 3);
	expo_sample(e, "http_requests_total", NULL, c, 2, NULL, 0);
	expo_family(e, "temperature_celsius", EXPO_GAUGE, "Now.");
	expo_sample(e, "temperature_celsius", NULL, NULL, 0, NULL, -3.5);
	expo_finish(e);
}

static void text_counter_family_keeps_total_in_metadata(void **state)
{
	(void)state;
	struct expo e;

	start(&e, EXPO_TEXT_004);
	write_counter_family(&e);
	assert_string_equal(done(&e),
			    "# HELP http_requests_total Requests served.\n"
			    "# TYPE http_requests_total counter\n"
			    "http_requests_total{method=\"GET\",code=\"200\"} 1027\n"
			    "http_requests_total{method=\"POST\",code=\"201\"} 3\n"
			    "http_requests_total{method=\"GET\",code=\"404\"} 0\n"
			    "# HELP temperature_celsius Now.\n"
			    "# TYPE temperature_celsius gauge\n"
			    "temperature_celsius -3.5\n");
}

static void openmetrics_counter_metadata_drops_total_and_ends_with_eof(void **state)
{
	(void)state;
	struct expo e;

	start(&e, EXPO_OPENMETRICS_100);
	write_counter_family(&e);
	assert_string_equal(done(&e),
			    "# HELP http_requests Requests served.\n"
			    "# TYPE http_requests counter\n"
			    "http_requests_total{method=\"GET\",code=\"200\"} 1027\n"
			    "http_requests_total{method=\"POST\",code=\"201\"} 3\n"
			    "http_requests_total{method=\"GET\",code=\"404\"} 0\n"
			    "# HELP temperature_celsius Now.\n"
			    "# TYPE temperature_celsius gauge\n"
			    "temperature_celsius -3.5\n"
			    "# EOF\n");
}

static void openmetrics_counter_without_total_is_written_as_is(void **state)
{
	(void)state;
	struct expo e;

	start(&e, EXPO_OPENMETRICS_100);
	expo_family(&e, "restarts", EXPO_COUNTER, "x");
	expo_family(&e, "_total", EXPO_COUNTER, NULL); /* nothing left to name it: kept */
	expo_family(&e, "sessions_total", EXPO_GAUGE, NULL); /* only counters drop it */
	assert_string_equal(done(&e), "# HELP restarts x\n# TYPE restarts counter\n"
				      "# TYPE _total counter\n"
				      "# TYPE sessions_total gauge\n");
}

static void histogram_lines_append_le_last(void **state)
{
	(void)state;
	static const char *const want =
		"# HELP rpc_duration_seconds RPC latency.\n"
		"# TYPE rpc_duration_seconds histogram\n"
		"rpc_duration_seconds_bucket{service=\"db\",le=\"0.005\"} 2\n"
		"rpc_duration_seconds_bucket{service=\"db\",le=\"0.1\"} 7\n"
		"rpc_duration_seconds_bucket{service=\"db\",le=\"+Inf\"} 9\n"
		"rpc_duration_seconds_sum{service=\"db\"} 1.25\n"
		"rpc_duration_seconds_count{service=\"db\"} 9\n"
		"rpc_duration_seconds_bucket{le=\"+Inf\"} 0\n"
		"rpc_duration_seconds_sum 0\n"
		"rpc_duration_seconds_count 0\n";
	const struct expo_label l[] = {{"service", "db"}};
	struct expo e;

	for (int f = 0; f < 2; f++) {
		start(&e, f ? EXPO_OPENMETRICS_100 : EXPO_TEXT_004);
		expo_family(&e, "rpc_duration_seconds", EXPO_HISTOGRAM, "RPC latency.");
		expo_sample_u64(&e, "rpc_duration_seconds", "_bucket", l, 1, "0.005", 2);
		expo_sample_u64(&e, "rpc_duration_seconds", "_bucket", l, 1, "0.1", 7);
		expo_sample_u64(&e, "rpc_duration_seconds", "_bucket", l, 1, "+Inf", 9);
		expo_sample(&e, "rpc_duration_seconds", "_sum", l, 1, NULL, 1.25);
		expo_sample_u64(&e, "rpc_duration_seconds", "_count", l, 1, NULL, 9);
		expo_sample_u64(&e, "rpc_duration_seconds", "_bucket", NULL, 0, "+Inf", 0);
		expo_sample(&e, "rpc_duration_seconds", "_sum", NULL, 0, NULL, 0);
		expo_sample_u64(&e, "rpc_duration_seconds", "_count", NULL, 0, NULL, 0);
		if (f) {
			expo_finish(&e);
			assert_int_equal(strlen(done(&e)), strlen(want) + 6);
			assert_memory_equal(e.buf, want, strlen(want));
			assert_string_equal(e.buf + strlen(want), "# EOF\n");
		} else {
			assert_string_equal(done(&e), want);
		}
	}
}

static void u64_values_are_exact(void **state)
{
	(void)state;
	struct expo e;

	start(&e, EXPO_TEXT_004);
	expo_sample_u64(&e, "a", NULL, NULL, 0, NULL, 0);
	expo_sample_u64(&e, "a", NULL, NULL, 0, NULL, 9);
	expo_sample_u64(&e, "a", NULL, NULL, 0, NULL, 10);
	expo_sample_u64(&e, "a", NULL, NULL, 0, NULL, 18446744073709551615ull);
	expo_sample(&e, "b", NULL, NULL, 0, NULL, NAN);
	expo_sample(&e, "b", NULL, NULL, 0, NULL, -INFINITY);
	assert_string_equal(done(&e), "a 0\na 9\na 10\na 18446744073709551615\nb NaN\nb -Inf\n");
}

/* ---- Overflow ---- */

static void overflow_keeps_whole_lines_and_is_sticky(void **state)
{
	(void)state;
	char buf[64];
	struct expo e;

	memset(buf, 0, sizeof buf);
	/* "x_total 1\n" is 10 bytes: two fit in 25, the third does not. */
	expo_init(&e, buf, 25, EXPO_TEXT_004);
	expo_sample_u64(&e, "x_total", NULL, NULL, 0, NULL, 1);
	expo_sample_u64(&e, "x_total", NULL, NULL, 0, NULL, 2);
	assert_false(e.overflow);
	assert_int_equal(e.len, 20);
	expo_sample_u64(&e, "x_total", NULL, NULL, 0, NULL, 3);
	assert_true(e.overflow);
	assert_int_equal(e.len, 20);
	/* Sticky: a line that would fit is not written after a dropped one. */
	expo_sample_u64(&e, "y", NULL, NULL, 0, NULL, 4);
	expo_finish(&e);
	assert_int_equal(e.len, 20);
	assert_memory_equal(buf, "x_total 1\nx_total 2\n", 20);
	assert_int_equal(buf[25], 0); /* never past cap */
}

static void line_that_fills_cap_exactly_fits(void **state)
{
	(void)state;
	char buf[16];
	struct expo e;

	memset(buf, 0, sizeof buf);
	expo_init(&e, buf, 6, EXPO_OPENMETRICS_100);
	expo_finish(&e);
	assert_false(e.overflow);
	assert_int_equal(e.len, 6);
	assert_memory_equal(buf, "# EOF\n", 6);
}

static void family_is_committed_whole_or_not_at_all(void **state)
{
	(void)state;
	char buf[64];
	struct expo e;

	/* The HELP line (14 bytes) fits in 20, the TYPE line does not. */
	expo_init(&e, buf, 20, EXPO_TEXT_004);
	expo_family(&e, "abc", EXPO_GAUGE, "help");
	assert_true(e.overflow);
	assert_int_equal(e.len, 0);

	expo_init(&e, NULL, 100, EXPO_TEXT_004);
	expo_sample(&e, "a", NULL, NULL, 0, NULL, 1);
	assert_true(e.overflow);
	assert_int_equal(e.len, 0);
}

static void overflow_in_a_label_value_escape(void **state)
{
	(void)state;
	char buf[32];
	struct expo e;
	const struct expo_label l[] = {{"k", "\"\"\"\"\"\"\"\"\"\""}};

	/* 10 quotes escape to 20 bytes: m{k=""} 1\n plus those needs 30. */
	expo_init(&e, buf, 29, EXPO_TEXT_004);
	expo_sample(&e, "m", NULL, l, 1, NULL, 1);
	assert_true(e.overflow);
	assert_int_equal(e.len, 0);
	expo_init(&e, buf, 30, EXPO_TEXT_004);
	expo_sample(&e, "m", NULL, l, 1, NULL, 1);
	assert_false(e.overflow);
	assert_int_equal(e.len, 30);
}

/* ---- promtool ---- */

static void text_exposition_passes_promtool_check_metrics(void **state)
{
	(void)state;
	const struct expo_label path[] = {{"path", "/api/\"x\"\\y\nz"}, {"method", "GET"}};
	static const char *const les[] = {"0.005", "0.01", "0.1", "1", "+Inf"};
	char tmpl[] = "/tmp/ringside-expo-XXXXXX";
	char cmd[256];
	struct expo e;
	int fd, status;

	if (access("/usr/bin/promtool", X_OK) != 0) {
		print_message("/usr/bin/promtool not installed (apt-get install prometheus): "
			      "cannot check the exposition with Prometheus's parser\n");
		skip();
	}
	start(&e, EXPO_TEXT_004);
	expo_family(&e, "ringside_http_requests_total", EXPO_COUNTER,
		    "Requests by \"path\" \\ method.\nSecond line.");
	expo_sample_u64(&e, "ringside_http_requests_total", NULL, path, 2, NULL, 12);
	expo_sample_u64(&e, "ringside_http_requests_total", NULL, NULL, 0, NULL, 0);
	expo_family(&e, "ringside_temperature_celsius", EXPO_GAUGE, "Odd values.");
	expo_sample(&e, "ringside_temperature_celsius", NULL, (struct expo_label[]){{"k", "nan"}}, 1, NULL, NAN);
	expo_sample(&e, "ringside_temperature_celsius", NULL, (struct expo_label[]){{"k", "pinf"}}, 1, NULL, INFINITY);
	expo_sample(&e, "ringside_temperature_celsius", NULL, (struct expo_label[]){{"k", "ninf"}}, 1, NULL, -INFINITY);
	expo_sample(&e, "ringside_temperature_celsius", NULL, (struct expo_label[]){{"k", "small"}}, 1, NULL, 4.9406564584124654e-324);
	expo_sample(&e, "ringside_temperature_celsius", NULL, (struct expo_label[]){{"k", "big"}}, 1, NULL, 1e300);
	expo_sample(&e, "ringside_temperature_celsius", NULL, (struct expo_label[]){{"k", "negzero"}}, 1, NULL, -0.0);
	expo_family(&e, "ringside_request_duration_seconds", EXPO_HISTOGRAM, "Latency.");
	for (size_t i = 0; i < 5; i++)
		expo_sample_u64(&e, "ringside_request_duration_seconds", "_bucket", path, 2, les[i], 3 * i);
	expo_sample(&e, "ringside_request_duration_seconds", "_sum", path, 2, NULL, 0.30000000000000004);
	expo_sample_u64(&e, "ringside_request_duration_seconds", "_count", path, 2, NULL, 12);
	expo_finish(&e);
	done(&e);

	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, e.buf, e.len), (ssize_t)e.len);
	close(fd);
	snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s 2>&1", tmpl);
	status = system(cmd);
	unlink(tmpl);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		print_message("exposition was:\n%s", e.buf);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- Accept ---- */

#define PROM_242 "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
#define PROM_NO_OM "text/plain;version=0.0.4;q=1,*/*;q=0.1"

static enum expo_format neg(const char *s)
{
	return expo_negotiate(s, strlen(s));
}

static void prometheus_scrape_headers(void **state)
{
	(void)state;
	assert_int_equal(neg(PROM_242), EXPO_OPENMETRICS_100);
	assert_int_equal(neg(PROM_NO_OM), EXPO_TEXT_004);
	/* Prometheus 3 style: an escaping parameter, text 1.0.0 offered too. */
	assert_int_equal(neg("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
			     "application/openmetrics-text;version=0.0.1;q=0.4,"
			     "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
			     "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
			 EXPO_OPENMETRICS_100);
	/* Protobuf first, as with scrape_protocols: [PrometheusProto, ...]. */
	assert_int_equal(neg("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
			     "encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
			 EXPO_TEXT_004);
}

static void curl_empty_and_garbage_get_text(void **state)
{
	(void)state;
	assert_int_equal(neg("*/*"), EXPO_TEXT_004);
	assert_int_equal(neg(""), EXPO_TEXT_004);
	assert_int_equal(expo_negotiate(NULL, 0), EXPO_TEXT_004);
	assert_int_equal(neg("\x01\xff;;,,==\"\\"), EXPO_TEXT_004);
	assert_int_equal(neg("application/json"), EXPO_TEXT_004);
	assert_int_equal(neg("application/*"), EXPO_TEXT_004);
	assert_int_equal(neg("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), EXPO_TEXT_004);
}

static void openmetrics_needs_version_1_0_0_or_none(void **state)
{
	(void)state;
	assert_int_equal(neg("application/openmetrics-text"), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("application/openmetrics-text;version=1.0.0"), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("application/openmetrics-text;version=0.0.1"), EXPO_TEXT_004);
	assert_int_equal(neg("application/openmetrics-text;version=1.0.0;q=0"), EXPO_TEXT_004);
	assert_int_equal(neg("application/openmetrics-text;version=\"1.0.0\""), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("application/openmetrics-text;version=\"1.0.\\0\""), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("application/openmetrics-text;version=\"1.0.0 \""), EXPO_TEXT_004);
	assert_int_equal(neg("application/openmetrics-text;version=1.0.0;charset=utf-8"), EXPO_OPENMETRICS_100);
}

static void openmetrics_wins_ties_and_loses_to_higher_text(void **state)
{
	(void)state;
	assert_int_equal(neg("application/openmetrics-text;q=0.5,text/plain;version=0.0.4;q=0.5"), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("application/openmetrics-text;q=0.4,text/plain;q=0.5"), EXPO_TEXT_004);
	assert_int_equal(neg("application/openmetrics-text;q=0.4,text/*;q=0.5"), EXPO_TEXT_004);
	assert_int_equal(neg("application/openmetrics-text;q=0.4,*/*;q=0.5"), EXPO_TEXT_004);
	assert_int_equal(neg("application/openmetrics-text;q=0.001,*/*;q=0.000"), EXPO_OPENMETRICS_100);
	/* qvalue = "0" [ "." 0*3DIGIT ]: "0." and "1." are valid. */
	assert_int_equal(neg("application/openmetrics-text;q=1.,text/plain;q=0."), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("application/openmetrics-text;q=0.,text/plain;q=0.1"), EXPO_TEXT_004);
	/* text/plain of another version does not count for text 0.0.4. */
	assert_int_equal(neg("application/openmetrics-text;q=0.4,text/plain;version=1.0.0"), EXPO_OPENMETRICS_100);
}

/* RFC 9110 12.5.1: the most specific range has precedence, even with q=0. */
static void the_most_specific_range_decides(void **state)
{
	(void)state;
	assert_int_equal(neg("application/openmetrics-text;version=1.0.0;q=0,application/openmetrics-text"),
			 EXPO_TEXT_004);
	assert_int_equal(neg("application/openmetrics-text;q=0,application/openmetrics-text;version=1.0.0;q=0.2"),
			 EXPO_OPENMETRICS_100);
	assert_int_equal(neg("text/plain;q=0,*/*;q=1,application/openmetrics-text;q=0.1"), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("text/plain;version=0.0.4;q=0,text/plain;q=1,application/openmetrics-text;q=0.1"),
			 EXPO_OPENMETRICS_100);
	assert_int_equal(neg("text/*;q=0,*/*,application/openmetrics-text;q=0.1"), EXPO_OPENMETRICS_100);
	/* Within one level the best q counts, whatever the order. */
	assert_int_equal(neg("text/plain;q=0.9,text/plain;q=0,application/openmetrics-text;q=0.5"), EXPO_TEXT_004);
	assert_int_equal(neg("text/plain;q=0,text/plain;q=0.9,application/openmetrics-text;q=0.5"), EXPO_TEXT_004);
}

static void case_whitespace_and_empty_elements(void **state)
{
	(void)state;
	assert_int_equal(neg("Application/OpenMetrics-Text; Version=1.0.0; Q=0.9, TEXT/PLAIN;q=0.1"), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("text/plain ; q=0.3 ,\tapplication/openmetrics-text ; version=1.0.0 ; q=0.6 "), EXPO_OPENMETRICS_100);
	assert_int_equal(neg(" , ,application/openmetrics-text,,"), EXPO_OPENMETRICS_100);
	assert_int_equal(neg("application/openmetrics-text;;q=0.5;,text/plain;q=0.4"), EXPO_OPENMETRICS_100);
	/* The version value is case-sensitive, but "1.0.0" has no letters. */
	assert_int_equal(neg("APPLICATION/OPENMETRICS-TEXT;VERSION=1.0.0"), EXPO_OPENMETRICS_100);
}

/* RFC 9110 12.5.1 read as: a malformed element is ignored as a whole. */
static void malformed_elements_are_ignored(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool open_quote; /* an unterminated quoted-string swallows the rest */
	} bad_om[] = {
		{"application/openmetrics-text;q=1.5", false},
		{"application/openmetrics-text;q=0.1234", false},
		{"application/openmetrics-text;q=.5", false},
		{"application/openmetrics-text;q=", false},
		{"application/openmetrics-text;q=\"0.5\"", false},
		{"application/openmetrics-text;q=1.001", false},
		{"application/openmetrics-text;q=0.5;q=0.6", false},
		{"application/openmetrics-text;version = 1.0.0", false},
		{"application/openmetrics-text;version=1.0.0;version=1.0.0", false},
		{"application/openmetrics-text version=1.0.0", false},
		{"application/openmetrics-text;=1", false},
		{"application/openmetrics-text;x", false},
		{"application/openmetrics-text/x", false},
		{"application/", false},
		{"/openmetrics-text", false},
		{"*/openmetrics-text", false},
		{"application/openmetrics-text;x=\"a\x01\"", false},
		{"application/openmetrics-text;version=\"1.0.0", true},
		{"application/openmetrics-text;version=\"1.0.0\\", true},
	};
	char hdr[256];

	for (size_t i = 0; i < sizeof bad_om / sizeof bad_om[0]; i++) {
		/* The bad element is dropped... */
		snprintf(hdr, sizeof hdr, "%s,text/plain;q=0.1", bad_om[i].s);
		if (neg(hdr) != EXPO_TEXT_004)
			fail_msg("OpenMetrics chosen for \"%s\"", hdr);
		/* ...and a good one after it still counts. */
		snprintf(hdr, sizeof hdr, "%s,application/openmetrics-text;q=0.2,text/plain;q=0.1", bad_om[i].s);
		if (neg(hdr) != (bad_om[i].open_quote ? EXPO_TEXT_004 : EXPO_OPENMETRICS_100))
			fail_msg("wrong choice for \"%s\"", hdr);
	}
}

static void quoted_commas_do_not_split_elements(void **state)
{
	(void)state;
	assert_int_equal(neg("text/plain;q=0.1;x=\"a,application/openmetrics-text\""), EXPO_TEXT_004);
	assert_int_equal(neg("text/plain;q=0.1;x=\"a\\\",application/openmetrics-text\""), EXPO_TEXT_004);
	assert_int_equal(neg("text/plain;q=0.1;x=\"a,b\",application/openmetrics-text"), EXPO_OPENMETRICS_100);
	/* A malformed element with a quoted comma: skipped up to the real comma. */
	assert_int_equal(neg("text/plain;q=9;x=\"a,application/openmetrics-text\",application/openmetrics-text;q=0.5"),
			 EXPO_OPENMETRICS_100);
}

static void length_bounds_the_value(void **state)
{
	(void)state;
	const char *s = "application/openmetrics-textXYZ";

	assert_int_equal(expo_negotiate(s, 28), EXPO_OPENMETRICS_100);
	assert_int_equal(expo_negotiate(s, 29), EXPO_TEXT_004);
	assert_int_equal(expo_accepts_gzip("gzipped", 4), true);
	assert_int_equal(expo_accepts_gzip("gzipped", 5), false);
}

/* ---- Accept-Encoding ---- */

static bool gz(const char *s)
{
	return expo_accepts_gzip(s, strlen(s));
}

static void accept_encoding_gzip(void **state)
{
	(void)state;
	assert_true(gz("gzip")); /* what Prometheus sends */
	assert_true(gz("gzip, deflate, br"));
	assert_true(gz("br;q=1.0, gzip;q=0.8, *;q=0.1"));
	assert_true(gz("GZIP;Q=0.5"));
	assert_true(gz("x-gzip"));
	assert_true(gz("*"));
	assert_true(gz("deflate, *;q=0.5"));
	assert_true(gz("gzip;q=0.001"));
	assert_false(gz("gzip;q=0"));
	assert_false(gz("gzip;q=0.000"));
	assert_false(gz("gzip;q=0, *"));
	assert_false(gz("*, gzip;q=0"));
	assert_false(gz("*;q=0"));
	assert_false(gz("deflate, br"));
	assert_false(gz("identity"));
	assert_false(gz(""));
	assert_false(expo_accepts_gzip(NULL, 0));
	assert_false(gz("gzip;q=1.5"));
	assert_false(gz("gzip;q=0.5;q=0.6"));
	assert_false(gz("gzip q=1"));
	assert_false(gz("gzipx"));
	assert_true(gz("gzip;q=1.5, *"));
	assert_true(gz(" , gzip ,"));
}

/* ---- Never past len: every prefix ending at a PROT_NONE page ---- */

static void header_parsers_never_read_past_len(void **state)
{
	(void)state;
	static const char *const inputs[] = {
		PROM_242, PROM_NO_OM, "*/*", "gzip;q=0, *",
		"text/plain;x=\"a\\\"b,c\";q=0.5, application/openmetrics-text;version=\"1.0.0\"",
		"a/b;c=\"\\", "x;y=\"", "application/openmetrics-text;q=0.", " \t,",
	};
	long pg = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	for (size_t k = 0; k < sizeof inputs / sizeof inputs[0]; k++) {
		size_t n = strlen(inputs[k]);

		for (size_t len = 0; len <= n; len++) {
			char *p = m + pg - len;
			enum expo_format f;
			bool g;
			char copy[256];

			memcpy(p, inputs[k], len);
			f = expo_negotiate(p, len);
			g = expo_accepts_gzip(p, len);
			/* Same answer when the bytes live elsewhere with a NUL after. */
			memcpy(copy, inputs[k], len);
			copy[len] = '\0';
			assert_int_equal(f, expo_negotiate(copy, len));
			assert_int_equal(g, expo_accepts_gzip(copy, len));
		}
	}
	assert_int_equal(expo_negotiate(m + pg - strlen(PROM_242), strlen(PROM_242)), EXPO_OPENMETRICS_100);
	munmap(m, (size_t)pg * 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(label_value_escapes_backslash_quote_and_newline),
		cmocka_unit_test(help_escapes_quote_only_in_openmetrics),
		cmocka_unit_test(escape_fails_when_text_and_nul_do_not_fit),
		cmocka_unit_test(writer_escapes_help_and_label_values_in_both_formats),
		cmocka_unit_test(integral_doubles_print_as_integers),
		cmocka_unit_test(large_integers_beyond_2_53_round_trip),
		cmocka_unit_test(fractions_use_the_shortest_round_trip_form),
		cmocka_unit_test(special_values_and_negative_zero),
		cmocka_unit_test(denormals_round_trip),
		cmocka_unit_test(random_doubles_round_trip_exactly),
		cmocka_unit_test(short_decimals_are_written_as_the_slow_path_wrote_them),
		cmocka_unit_test(fixed_decimals_are_exact),
		cmocka_unit_test(decimal_point_is_a_dot_in_any_locale),
		cmocka_unit_test(text_counter_family_keeps_total_in_metadata),
		cmocka_unit_test(openmetrics_counter_metadata_drops_total_and_ends_with_eof),
		cmocka_unit_test(openmetrics_counter_without_total_is_written_as_is),
		cmocka_unit_test(histogram_lines_append_le_last),
		cmocka_unit_test(u64_values_are_exact),
		cmocka_unit_test(overflow_keeps_whole_lines_and_is_sticky),
		cmocka_unit_test(line_that_fills_cap_exactly_fits),
		cmocka_unit_test(family_is_committed_whole_or_not_at_all),
		cmocka_unit_test(overflow_in_a_label_value_escape),
		cmocka_unit_test(text_exposition_passes_promtool_check_metrics),
		cmocka_unit_test(prometheus_scrape_headers),
		cmocka_unit_test(curl_empty_and_garbage_get_text),
		cmocka_unit_test(openmetrics_needs_version_1_0_0_or_none),
		cmocka_unit_test(openmetrics_wins_ties_and_loses_to_higher_text),
		cmocka_unit_test(the_most_specific_range_decides),
		cmocka_unit_test(case_whitespace_and_empty_elements),
		cmocka_unit_test(malformed_elements_are_ignored),
		cmocka_unit_test(quoted_commas_do_not_split_elements),
		cmocka_unit_test(length_bounds_the_value),
		cmocka_unit_test(accept_encoding_gzip),
		cmocka_unit_test(header_parsers_never_read_past_len),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
