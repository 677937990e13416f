/* Unsigned integers in decimal, for the writers that build text by hand
 * (response heads, JSON, the exposition, the access log): the one
 * integer formatter, two digits per division. */
#ifndef RINGSIDE_DECIMAL_H
#define RINGSIDE_DECIMAL_H

#include <stdint.h>

/* Writes v in decimal into the end of tmp[20]; returns where it starts. */
static inline char *decimal_u64_digits(char tmp[20], uint64_t v)
{
	static const char pairs[201] =
		"00010203040506070809101112131415161718192021222324"
		"25262728293031323334353637383940414243444546474849"
		"50515253545556575859606162636465666768697071727374"
		"75767778798081828384858687888990919293949596979899";
	char *d = tmp + 20;

	while (v >= 100) {
		const char *two = pairs + 2 * (v % 100);

		v /= 100;
		*--d = two[1];
		*--d = two[0];
	}
	if (v >= 10) {
		*--d = pairs[2 * v + 1];
		*--d = pairs[2 * v];
	} else {
		*--d = (char)('0' + v);
	}
	return d;
}

/* Writes v in decimal at p: at most 20 bytes, no NUL. Returns the end. */
static inline char *decimal_u64(char *p, uint64_t v)
{
	char tmp[20], *d = decimal_u64_digits(tmp, v);
	while (d < tmp + sizeof tmp)
		*p++ = *d++;
	return p;
}

#endif
