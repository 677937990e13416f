/*
 * What the form body (form.c) and Basic credentials (basic_auth.c)
 * decoders share: a hex digit's value (and, through ringside/utf8.h, the
 * UTF-8 check).
 */
#ifndef RINGSIDE_HTTP_URLENCODED_INT_H
#define RINGSIDE_HTTP_URLENCODED_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "ringside/utf8.h"

/* 0-15, or -1 if c is not a hex digit (either case). */
static inline int urlenc_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}


#endif
