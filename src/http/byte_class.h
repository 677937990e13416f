/*
 * Private to src/http: the byte classes of RFC 9110/9112 as one 256-entry
 * table, shared by the head parser and the chunked decoder. Every byte is
 * classified by one load; the table is built at compile time.
 */
#ifndef RINGSIDE_HTTP_BYTE_CLASS_H
#define RINGSIDE_HTTP_BYTE_CLASS_H

#include <stdint.h>

enum {
	K_TCHAR = 0x01,  /* token character, RFC 9110 5.6.2 */
	K_VALUE = 0x02,  /* field-vchar / obs-text / SP / HTAB, RFC 9110 5.5 */
	K_TARGET = 0x04, /* visible ASCII 0x21-0x7E: any request-target byte */
	K_PATH = 0x08,   /* K_TARGET except '?' (ends the path) */
	K_HOST = 0x10,   /* any byte of uri-host [":" port], RFC 3986 3.2.2 */
	K_HEX = 0x20,    /* HEXDIG */
	K_OWS = 0x40,    /* SP / HTAB, RFC 9110 5.6.3 */
	K_REGNAME = 0x80, /* unreserved / sub-delims, RFC 3986 2.2, 2.3 */
};

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_TCHAR(c)                                                        \
	(IS_DIGIT(c) || IS_ALPHA(c) || (c) == '!' || (c) == '#' ||         \
	 (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||          \
	 (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||           \
	 (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
/* unreserved / sub-delims: a reg-name is these and pct-encoded. */
#define IS_REGCH(c)                                                        \
	(IS_DIGIT(c) || IS_ALPHA(c) || (c) == '-' || (c) == '.' ||         \
	 (c) == '_' || (c) == '~' || (c) == '!' || (c) == '$' ||           \
	 (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
	 (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')
/* Those, '%' of pct-encoded, ":" for the port, "[" "]" for an
 * IP-literal: the bytes an authority is scanned over. Only a run of them;
 * their order is checked by the parser's host_port_valid(). */
#define IS_HOSTCH(c)                                                       \
	(IS_REGCH(c) || (c) == '%' || (c) == ':' || (c) == '[' || (c) == ']')
#define IS_HEX(c)                                                          \
	(IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))

#define CLS(c)                                                             \
	((IS_TCHAR(c) ? K_TCHAR : 0) |                                     \
	 (IS_VCHAR(c) || (c) >= 0x80 || (c) == ' ' || (c) == '\t' ? K_VALUE : 0) | \
	 (IS_VCHAR(c) ? K_TARGET : 0) |                                    \
	 (IS_VCHAR(c) && (c) != '?' ? K_PATH : 0) |                        \
	 (IS_HOSTCH(c) ? K_HOST : 0) | (IS_HEX(c) ? K_HEX : 0) |           \
	 ((c) == ' ' || (c) == '\t' ? K_OWS : 0) |                         \
	 (IS_REGCH(c) ? K_REGNAME : 0))
#define CLS4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)

static const uint8_t cls[256] = { CLS64(0), CLS64(64), CLS64(128), CLS64(192) };

#endif
