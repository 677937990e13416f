/*
 * application/x-www-form-urlencoded request bodies (WHATWG URL "urlencoded
 * parsing", RFC 6749 Appendix B) as the OAuth endpoints receive them:
 * token (RFC 6749 4.4), introspection (RFC 7662) and revocation (RFC
 * 7009). The server buffers these small bodies whole, so the parser takes
 * the whole body; it allocates nothing and writes only into the caller's
 * table of the parameters it knows.
 *
 * Decisions (RFC 6749 3.1 and 3.2 are the rules; the choices are ours):
 *   - '+' is a space and %XX (either case) a byte, in names and values
 *     alike: "grant%5Ftype" is grant_type, so a name cannot be repeated
 *     by spelling it another way.
 *   - Names match the table byte for byte (RFC 6749 names are
 *     case-sensitive); unknown parameters are ignored, repeated or not
 *     (3.2: "The authorization server MUST ignore unrecognized request
 *     parameters").
 *   - Empty pairs ("a=1&&b=2", a leading or trailing '&') are skipped.
 *   - A known parameter with an empty value ("scope=") or without '='
 *     ("scope") is omitted (3.2: "Parameters sent without a value MUST be
 *     treated as if they were omitted"): present stays false.
 *   - A known parameter included twice is HTTP_FORM_REPEATED even if one
 *     or both copies are empty (3.1: "MUST NOT be included more than
 *     once" counts inclusions, not values). Choosing one copy would let a
 *     proxy or an attacker appending "&scope=" change what a request
 *     means, and servers disagree on first-wins against last-wins.
 *   - The whole body must be well-formed: a '%' not followed by two hex
 *     digits is HTTP_FORM_BAD_ESCAPE in any name or value, known or not.
 *     (WHATWG would pass such a '%' through; for credentials a client
 *     that encodes wrongly should fail loudly, not authenticate with a
 *     different secret.)
 *   - A known value must decode to UTF-8 (Appendix B: the octets are
 *     UTF-8; RFC 3629, no overlong forms or surrogates) without a NUL
 *     (raw or %00: C strings would cut there), and fit its cap with the
 *     terminating NUL. Other control characters pass: the caller checks
 *     each parameter's grammar (client_id is *VSCHAR, RFC 6749 A.1).
 * The first parameter in body order with a problem is the one reported;
 * within one parameter: a bad escape (name or value), then a repetition,
 * then the length, then a NUL, then UTF-8.
 */
#ifndef RINGSIDE_HTTP_FORM_H
#define RINGSIDE_HTTP_FORM_H

#include <stdbool.h>
#include <stddef.h>

/* X(NAME, value, message): message is the error_description's tail, after
 * the parameter's name when there is one ("scope: is repeated."). */
#define HTTP_FORM_ERRORS(X)                                                            \
	X(REPEATED, -1, "is included more than once")                                  \
	X(BAD_ESCAPE, -2, "has a '%' that is not followed by two hex digits")          \
	X(TOO_LONG, -3, "is too long")                                                 \
	X(NUL, -4, "contains a NUL byte")                                              \
	X(BAD_UTF8, -5, "is not valid UTF-8")

enum http_form_status {
	HTTP_FORM_OK = 0,
#define HTTP_FORM_ENUM(name, value, message) HTTP_FORM_##name = value,
	HTTP_FORM_ERRORS(HTTP_FORM_ENUM)
#undef HTTP_FORM_ENUM
};

/* Longest known name, and most fields in one table (a 64-bit set). */
#define HTTP_FORM_NAME_MAX 63
#define HTTP_FORM_FIELDS_MAX 64

/*
 * One parameter the caller knows. name and value (cap > 0 bytes, the NUL
 * included) are the caller's; the parser sets value, len and present.
 */
struct http_form_field {
	const char *name;  /* non-empty, at most HTTP_FORM_NAME_MAX bytes */
	char *value;       /* out: decoded, NUL-terminated */
	size_t cap;        /* size of value: values up to cap - 1 bytes fit */
	size_t len;        /* out: decoded length */
	bool present;      /* out: sent once with a non-empty value */
};

/*
 * Decodes body[0, len) into the count fields of the table (count at most
 * HTTP_FORM_FIELDS_MAX). Returns HTTP_FORM_OK, or a negative
 * enum http_form_status for the first problem; then *field (if field is
 * not NULL) is the index in the table of the parameter at fault, or -1
 * when it is an unknown one (a bad escape in its name or value), and
 * every field is reset as below so nothing half-parsed can be used.
 *
 * Each field starts reset: present false, len 0, value "". Reads no byte
 * outside body[0, len); body needs no terminator, may hold any bytes, and
 * may be NULL if len is 0.
 *
 * An error_description from the result: "<name> <strerror>." with
 * fields[*field].name, or "A parameter <strerror>." when *field is -1.
 */
int http_form_parse(const char *body, size_t len, struct http_form_field *fields,
		    size_t count, int *field);

/* The message of a status from HTTP_FORM_ERRORS ("is too long"); "" for
 * HTTP_FORM_OK, "is malformed" for anything else. A static string. */
const char *http_form_strerror(int status);

/*
 * Whether a Content-Type field value v[0, len) (OWS around it already
 * stripped, as http_parse_head leaves it) is application/x-www-form-
 * urlencoded (RFC 9110 8.3.1: type and subtype case-insensitive), with any
 * parameters well-formed (token "=" token / quoted-string). A charset
 * parameter must say UTF-8 (any case, quoted or not): Appendix B's
 * octets are UTF-8, and a body in another charset would decode to other
 * characters.
 */
bool http_form_content_type_ok(const char *v, size_t len);

#endif
