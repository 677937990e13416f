/*
 * What every benchmark program here uses: a monotonic clock and the
 * median of repeated runs (this machine is noisy; medians, not single
 * times). Header-only, so each program still builds from its own line.
 */
#ifndef RINGSIDE_BENCH_UTIL_H
#define RINGSIDE_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC, in seconds. */
static inline double bench_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v[0, n) in place and returns its median (the upper one for even n). */
static inline double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof v[0], bench_cmp_double);
	return v[n / 2];
}

/* The whole file, NUL-terminated, malloc'd, its length in *len; NULL if it
 * cannot be read. */
static inline char *bench_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = n < 0 ? NULL : malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

#endif
