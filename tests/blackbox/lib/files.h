/*
 * Reading whole files: one bounded reader that the harness's other files
 * share (captured output, key files), and the sample agent reports in
 * samples/.
 */
#ifndef RINGSIDE_TESTS_BB_FILES_H
#define RINGSIDE_TESTS_BB_FILES_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Reads up to cap - 1 bytes of path into buf and NUL-terminates them
 * (cap > 0). Returns the byte count, or -errno if path cannot be opened
 * (buf is then ""). Does not fail the test.
 */
ssize_t h_read_file(const char *path, char *buf, size_t cap);

/* A sample agent report from $RINGSIDE_SAMPLES, else samples/ (tests run
 * from the repository root): malloc'd, NUL-terminated, *len bytes. Fails
 * the test if it cannot be read. */
char *h_read_sample(const char *name, size_t *len);

#endif
