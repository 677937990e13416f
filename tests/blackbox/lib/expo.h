/*
 * Prometheus text exposition and OpenMetrics bodies, read line by line:
 * one series' sample, the lines that mention something (for a failure
 * message), how many lines start with a prefix. promtool itself runs
 * through h_run_prog (proc.h).
 */
#ifndef RINGSIDE_TESTS_BB_EXPO_H
#define RINGSIDE_TESTS_BB_EXPO_H

#include <stddef.h>

/*
 * The sample line whose series is exactly `series` as written (name and
 * braces, e.g.
 * `http_requests_total{method="GET",route="/health",status_code="200"}`),
 * with its value in *value (NAN if unparseable). NULL if absent.
 */
const char *expo_find(const char *body, const char *series, double *value);

/* Copies every line containing needle into out ("\n  line" each) for a
 * failure message; returns how many lines matched. */
size_t expo_lines(const char *body, const char *needle, char *out, size_t cap);

/* How many lines of body start with prefix. */
int expo_count_prefix(const char *body, const char *prefix);

#endif
