/*
 * Reference decoders for the exhaustive tests of the form and Basic
 * parsers (src/http/form.c, basic_auth.c): written another way (a lookup,
 * code points decoded whole) so that a shared mistake is unlikely.
 */
#ifndef RINGSIDE_TESTS_REF_URLENCODED_H
#define RINGSIDE_TESTS_REF_URLENCODED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline int ref_hex(char c)
{
	const char *d = "0123456789abcdef0123456789ABCDEF";
	const char *p = c ? strchr(d, c) : NULL;
	return p ? (int)((p - d) % 16) : -1;
}

/* Form-decodes s[0, n) ('+' is a space, %XX) into out, which is as long
 * as s; returns the length, or -1 for a bad escape. */
static inline long ref_form_decode(const unsigned char *s, size_t n, unsigned char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n)
				return -1;
			int h = ref_hex((char)s[i + 1]), l = ref_hex((char)s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			out[o++] = (unsigned char)(h * 16 + l);
			i += 2;
		} else {
			out[o++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	return (long)o;
}

/* s[0, n) is UTF-8 (by decoding code points; the parsers check byte
 * ranges), and, with no_controls, holds no C0 control or DEL. */
static inline bool ref_utf8(const unsigned char *s, size_t n, bool no_controls)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t more;
		if (s[i] < 0x80)
			cp = s[i], more = 0;
		else if ((s[i] & 0xE0) == 0xC0)
			cp = s[i] & 0x1F, more = 1;
		else if ((s[i] & 0xF0) == 0xE0)
			cp = s[i] & 0x0F, more = 2;
		else if ((s[i] & 0xF8) == 0xF0)
			cp = s[i] & 0x07, more = 3;
		else
			return false;
		if (more > n - i - 1)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
		if (cp < min[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		if (no_controls && (cp < 0x20 || cp == 0x7F))
			return false;
		i += more + 1;
	}
	return true;
}

#endif
