/*
 * Decimal to double, correctly rounded, for the ingest validator. The
 * validator has already checked the RFC 8259 grammar and reduced the
 * digits to a 64-bit mantissa of at most 19 significant digits and a
 * decimal exponent; this file turns that into the nearest double.
 *
 * Three paths, fastest first:
 *   1. Clinger (1990): mantissa <= 2^53 and |q| <= 22. Both the mantissa and
 *      10^|q| are exact doubles, so one IEEE multiply or divide rounds once,
 *      correctly. Every number of the real samples takes this path.
 *   2. Eisel-Lemire (Lemire, "Number Parsing at a Gigabyte per Second",
 *      2021, as in fast_float): a 64x128-bit product with a table of 5^q,
 *      exact for any 19-digit mantissa (Mushtak and Lemire, "Fast Number
 *      Parsing Without Fallback", 2023). When digits past the 19th were
 *      dropped, it is run for mant and mant + 1; equal results are correct.
 *   3. Otherwise (a near-halfway number of more than 19 digits, which no
 *      agent prints), strtod_l() in a "C" locale made once, on a canonical
 *      copy of the digits: at most 768 significant digits plus a sticky
 *      nonzero digit decide the rounding of any double.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l, newlocale */
#endif
#include "ingest_int.h"

#include <float.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pow5.h"
#include "ringside/ingest.h"

/* Clinger's path is only correct if double arithmetic is done in double
 * (not x87 extended) precision. */
_Static_assert(FLT_EVAL_METHOD == 0, "Clinger's fast path needs FLT_EVAL_METHOD == 0");
_Static_assert(DBL_MANT_DIG == 53, "IEEE double expected");

static inline void mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
	unsigned __int128 r = (unsigned __int128)a * b;

	*hi = (uint64_t)(r >> 64);
	*lo = (uint64_t)r;
}

/*
 * Eisel-Lemire for w != 0, q in any range: the IEEE bits of the double
 * nearest to w * 10^q (infinity as 0x7FF << 52). fast_float's
 * compute_float<double>, in C.
 */
static uint64_t eisel_lemire(int64_t q, uint64_t w)
{
	const int mbits = 52;
	uint64_t hi, lo, m;
	int lz, upper, shift;
	int32_t p2;

	if (q < POW5_MIN_Q)
		return 0;
	if (q > POW5_MAX_Q)
		return 0x7FFull << 52;
	lz = __builtin_clzll(w);
	w <<= lz;

	/* 55 bits of precision: the implicit bit, a rounding bit and one that
	 * the normalization below may drop. The second product only when the
	 * first leaves those bits undecided. */
	const uint64_t *t = pow5_128[q - POW5_MIN_Q];
	mul64(w, t[0], &hi, &lo);
	if ((hi & 0x1FF) == 0x1FF) {
		uint64_t hi2, lo2;

		mul64(w, t[1], &hi2, &lo2);
		lo += hi2;
		if (hi2 > lo)
			hi++;
	}
	upper = (int)(hi >> 63);
	shift = upper + 64 - mbits - 3;
	m = hi >> shift;
	/* floor(log2(10^q)) + 63, then the binary exponent, biased. */
	p2 = (int32_t)(((((152170 + 65536) * (int64_t)q) >> 16) + 63) + upper - lz + 1023);

	if (p2 <= 0) { /* subnormal, or zero */
		if (-p2 + 1 >= 64)
			return 0;
		m >>= -p2 + 1;
		m += m & 1;
		m >>= 1;
		/* Rounding up may have made it the smallest normal. */
		p2 = m < (1ull << mbits) ? 0 : 1;
		return ((uint64_t)p2 << 52) | (m & ((1ull << mbits) - 1));
	}
	/* Exactly halfway (only possible when 5^q fits in 64 bits, q in
	 * [-4, 23]): round half to even, i.e. down when m would round to odd. */
	if (lo <= 1 && q >= -4 && q <= 23 && (m & 3) == 1 && (m << shift) == hi)
		m &= ~1ull;
	m += m & 1;
	m >>= 1;
	if (m >= (2ull << mbits)) {
		m = 1ull << mbits;
		p2++;
	}
	m &= ~(1ull << mbits);
	if (p2 >= 0x7FF)
		return 0x7FFull << 52;
	return ((uint64_t)p2 << 52) | m;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Path 3. The text is "<mant>.<xdig>[1]e<q>": exactly the digits seen, the
 * sticky digit standing for all that did not fit. */
static double slow_path(uint64_t mant, int64_t q, const char *xdig, size_t nx,
			bool sticky)
{
	char buf[32 + INGEST_NUM_XDIGITS + 32];
	int n;

	n = snprintf(buf, 32, "%llu.", (unsigned long long)mant);
	memcpy(buf + n, xdig, nx);
	n += (int)nx;
	if (sticky)
		buf[n++] = '1';
	snprintf(buf + n, 32, "e%lld", (long long)q);
	pthread_once(&c_locale_once, make_c_locale);
	if (c_locale == (locale_t)0)
		return strtod(buf, NULL); /* newlocale failed: the process locale */
	return strtod_l(buf, NULL, c_locale);
}

int ingest_decimal_to_double(uint64_t mant, int64_t q, bool neg, bool trunc,
			     const char *xdig, size_t nx, bool sticky,
			     double *out)
{
	uint64_t bits;
	double d;

	if (mant == 0) {
		*out = neg ? -0.0 : 0.0;
		return 0;
	}
	if (!trunc) {
		if (mant <= (1ull << 53) && q >= -22 && q <= 22) {
			d = (double)mant;
			d = q < 0 ? d / pow10_exact[-q] : d * pow10_exact[q];
			*out = neg ? -d : d;
			return 0;
		}
		bits = eisel_lemire(q, mant);
	} else {
		bits = eisel_lemire(q, mant);
		if (bits != eisel_lemire(q, mant + 1)) {
			d = slow_path(mant, q, xdig, nx, sticky);
			if (d > DBL_MAX)
				return -1;
			*out = neg ? -d : d;
			return 0;
		}
	}
	if ((bits >> 52) == 0x7FF)
		return -1;
	memcpy(&d, &bits, sizeof d);
	*out = neg ? -d : d;
	return 0;
}
