/*
 * Where the parser tests put their inputs so that a read past the end is
 * caught: an exact-size heap copy (ASan's redzone), or the input's last
 * byte right before a PROT_NONE page (a fault in any build). Include
 * after <cmocka.h>.
 */
#ifndef RINGSIDE_TESTS_UNIT_INPUTS_H
#define RINGSIDE_TESTS_UNIT_INPUTS_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_AREA (64u * 1024u)

/* Copies src[0, len) so that its last byte is the last readable one
 * (one area per test binary, reused by every call). */
static inline const char *guard_place(const char *src, size_t len)
{
	static unsigned char *guard_base; /* GUARD_AREA bytes, then a PROT_NONE page */
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	if (!guard_base) {
		void *m = mmap(NULL, GUARD_AREA + pg, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(m != MAP_FAILED);
		assert_int_equal(mprotect((char *)m + GUARD_AREA, pg, PROT_NONE), 0);
		guard_base = m;
	}
	assert_true(len <= GUARD_AREA);
	char *dst = (char *)guard_base + GUARD_AREA - len;
	memmove(dst, src, len);
	return dst;
}

/* A heap copy of exactly len bytes; the caller frees it. */
static inline char *heap_copy(const char *src, size_t len)
{
	char *d = malloc(len ? len : 1);
	assert_non_null(d);
	if (len)
		memcpy(d, src, len);
	return d;
}

#endif
