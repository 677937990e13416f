/*
 * What every fuzz target here uses: a check that traps (so libFuzzer
 * reports the input), exact-size heap copies (so ASan flags a read one
 * byte past the input), and a hash of the input to derive split points.
 */
#ifndef RINGSIDE_FUZZ_UTIL_H
#define RINGSIDE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                           \
	do {                                                               \
		if (!(x))                                                  \
			__builtin_trap();                                  \
	} while (0)

/* A heap copy of exactly len bytes; the caller frees it. */
static inline char *fuzz_copy(const uint8_t *src, size_t len)
{
	char *d = malloc(len ? len : 1);

	CHECK(d);
	if (len)
		memcpy(d, src, len);
	return d;
}

/* FNV-1a: deterministic split points from the input itself. */
static inline uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

#endif
