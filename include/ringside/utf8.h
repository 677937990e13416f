/*
 * UTF-8 validation, for every place that takes text from outside (form
 * bodies, Basic credentials, the count journal's ids on their way to
 * PostgreSQL).
 */
#ifndef RINGSIDE_UTF8_H
#define RINGSIDE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Whether s[0, n) is UTF-8 as RFC 3629 section 4 defines it: no overlong
 * form (C0, C1, E0 80-9F, F0 80-8F), no surrogate (ED A0-BF), nothing
 * past U+10FFFF (F4 90-BF, F5-FF). An overlong '/' or NUL is the classic
 * way past a check that looks at bytes.
 */
static inline bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t more;
		unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
		if (c >= 0xC2 && c <= 0xDF) {
			more = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			more = 2;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		} else {
			return false;
		}
		if (n - i - 1 < more || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= more; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		i += more + 1;
	}
	return true;
}

#endif
