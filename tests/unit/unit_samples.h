/*
 * The real-sized ingest bodies of samples/ for unit tests (the
 * runner starts them from the repository root), or of $RINGSIDE_SAMPLES.
 * Include after <cmocka.h>.
 */
#ifndef RINGSIDE_TESTS_UNIT_SAMPLES_H
#define RINGSIDE_TESTS_UNIT_SAMPLES_H

#include <stdio.h>
#include <stdlib.h>

/* The whole file `name`, NUL-terminated, malloc'd; its length in *len.
 * Fails the test if it cannot be read. */
static inline char *read_sample(const char *name, size_t *len)
{
	const char *dir = getenv("RINGSIDE_SAMPLES");
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "samples", name);
	f = fopen(path, "rb");
	if (!f) {
		print_error("cannot open %s (set RINGSIDE_SAMPLES)\n", path);
		fail();
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

#endif
