/*
 * Prometheus exposition writer: text format 0.0.4 and OpenMetrics 1.0.0,
 * into a caller-owned buffer. Allocates nothing. On overflow the writer
 * becomes sticky-failed (e->overflow) and writes nothing more, so callers
 * write a whole exposition and check once at the end.
 *
 * Differences handled here (so callers write one sequence of calls):
 *   - OpenMetrics: a counter family's metadata names the family without
 *     its "_total" suffix (# TYPE http_requests counter), while its samples
 *     keep it; HELP escapes '"' too; the exposition ends with "# EOF\n".
 *   - text 0.0.4: metadata uses the sample name as given.
 */
#ifndef RINGSIDE_METRICS_EXPO_H
#define RINGSIDE_METRICS_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum expo_format { EXPO_TEXT_004, EXPO_OPENMETRICS_100 };

#define EXPO_CONTENT_TYPE_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define EXPO_CONTENT_TYPE_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

enum expo_type { EXPO_COUNTER, EXPO_GAUGE, EXPO_HISTOGRAM };

struct expo {
	char *buf;
	size_t len, cap;
	enum expo_format format;
	bool overflow;
};

void expo_init(struct expo *e, char *buf, size_t cap, enum expo_format f);

/* "# HELP name help\n# TYPE name type\n". `name` is the sample name for
 * counters (ending in _total; OpenMetrics metadata drops the suffix) and
 * the base name for gauges and histograms. help is escaped. */
void expo_family(struct expo *e, const char *name, enum expo_type type, const char *help);

/*
 * One sample line: name{labels} value\n. `labels` is an array of
 * label_count (name, value) pairs; values are escaped (\\, \", \n);
 * label_count 0 writes no braces. `suffix` (may be NULL) is appended to
 * name ("_bucket", "_sum", "_count"). An extra label le=`le` is appended
 * last when le is not NULL (histogram buckets; "+Inf" for the last).
 */
struct expo_label {
	const char *name, *value;
};
void expo_sample(struct expo *e, const char *name, const char *suffix,
		 const struct expo_label *labels, size_t label_count, const char *le,
		 double value);
/* The same with an exact unsigned integer value (counters, bucket counts). */
void expo_sample_u64(struct expo *e, const char *name, const char *suffix,
		     const struct expo_label *labels, size_t label_count, const char *le,
		     uint64_t value);

/*
 * A label set rendered (escaped) once for the many lines of one series: a
 * histogram's buckets, _sum and _count share it, so a scrape escapes each
 * label once per series, not once per line. ok is false if it did not fit.
 */
#define EXPO_LABELSET_MAX 1024
struct expo_labelset {
	size_t len;
	bool ok;
	char text[EXPO_LABELSET_MAX]; /* a="x",b="y" (no braces) */
};
void expo_labelset_init(struct expo_labelset *ls, const struct expo_label *labels, size_t count);

/* A sample line with a rendered label set (NULL: none) and, if le is not
 * NULL, le="<le>" after it (le is written as given: a number or +Inf). */
void expo_line_u64(struct expo *e, const char *name, const char *suffix,
		   const struct expo_labelset *ls, const char *le, uint64_t value);
/* The same with the value units / 10^scale written exactly in decimal
 * (scale <= 18), e.g. nanoseconds as seconds with scale 9: no rounding
 * through a double, and no printf. */
void expo_line_fixed(struct expo *e, const char *name, const char *suffix,
		     const struct expo_labelset *ls, const char *le, uint64_t units,
		     unsigned scale);

/* Appends "# EOF\n" for OpenMetrics; nothing for text 0.0.4. */
void expo_finish(struct expo *e);

/*
 * Formats a double as Prometheus and OpenMetrics parsers read it:
 * integers without a fraction or exponent ("42", "-3"), other finite
 * values in the shortest form that reads back to the same double
 * ("0.1", "1.5e-07"), "NaN", "+Inf", "-Inf". Writes at most 32 bytes plus
 * a NUL; returns the length.
 */
size_t expo_format_double(char out[33], double v);

/*
 * Writes the exact decimal of (whole + frac / 10^scale), negated if
 * `negative`, with no trailing zeros in the fraction and no bare point:
 * "1800000000.123", "-0.5", "3" (zero is "0", never "-0"). Needs
 * frac < 10^scale and scale <= 18; writes at most 22 + scale bytes (no
 * NUL) and returns the length. No rounding through a double, no printf.
 */
size_t expo_format_fixed(char *out, bool negative, uint64_t whole, uint64_t frac, unsigned scale);

/* Escapes s for a label value (\\ \" \n) or HELP text (\\ \n, and \" in
 * OpenMetrics) into out; returns the length or (size_t)-1 if it does not
 * fit in cap. */
size_t expo_escape_label_value(char *out, size_t cap, const char *s);
size_t expo_escape_help(char *out, size_t cap, const char *s, enum expo_format f);

/*
 * Chooses the format from an Accept header value as Prometheus 2.x sends
 * it, e.g. "application/openmetrics-text;version=1.0.0,application/
 * openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,
 * *\/\*;q=0.1": OpenMetrics 1.0.0 when it is acceptable (version 1.0.0 or
 * none, q > 0) with a q at least that of text/plain; text 0.0.4 otherwise
 * (also when accept is NULL or empty).
 */
enum expo_format expo_negotiate(const char *accept, size_t len);

/* True if an Accept-Encoding value allows gzip (q > 0, or "*" with q > 0
 * and gzip not refused). */
bool expo_accepts_gzip(const char *accept_encoding, size_t len);

#endif
