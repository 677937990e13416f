/* Private to src/ingest: what validator.c needs from number.c. */
#ifndef RINGSIDE_INGEST_INT_H
#define RINGSIDE_INGEST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The double nearest to (mant + 0.xdig) * 10^q, ties to even, negated if
 * neg. mant holds the first significant digits (at most 19; exactly 19 if
 * any digit was dropped); trunc says a nonzero digit was dropped after
 * them; xdig[0, nx) are the dropped digits as ASCII, followed, when
 * sticky, by at least one more nonzero digit that did not fit.
 * Returns 0, or -1 if the result is infinite (the caller's "out of range").
 */
int ingest_decimal_to_double(uint64_t mant, int64_t q, bool neg, bool trunc,
			     const char *xdig, size_t nx, bool sticky,
			     double *out);

/* 10^0 .. 10^22: every one an exact double (Clinger's fast path). */
static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#endif
