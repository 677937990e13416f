/* Unsigned integers in decimal, for the writers that build text by hand
 * (response heads, JSON, the exposition, the access log). */
#ifndef RINGSIDE_DECIMAL_H
#define RINGSIDE_DECIMAL_H

#include <stdint.h>

/* Writes v in decimal at p: at most 20 bytes, no NUL. Returns the end. */
static inline char *decimal_u64(char *p, uint64_t v)
{
	char tmp[20], *d = tmp + sizeof tmp;
	do
		*--d = (char)('0' + v % 10);
	while (v /= 10);
	while (d < tmp + sizeof tmp)
		*p++ = *d++;
	return p;
}

#endif
