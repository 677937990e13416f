/*
 * HTTP Basic credentials (RFC 7617) as OAuth clients send them (RFC 6749
 * 2.3.1): the client_id and client_secret are each form-urlencoded, joined
 * with ':' and base64-encoded. Allocates nothing: the base64 is decoded
 * and the form encoding undone in one pass, straight into the caller's
 * buffers.
 *
 * Decisions:
 *   - The scheme is the bytes before the first SP, matched to "Basic" in
 *     any case (RFC 9110 11.1); anything else is HTTP_BASIC_NOT_BASIC, so
 *     the caller may try another scheme. Then 1*SP and a token68 to the end
 *     of the value (RFC 9110 11.4: credentials = auth-scheme [ 1*SP
 *     ( token68 / ... ) ]); the auth-param form, or no credentials, is
 *     HTTP_BASIC_MALFORMED.
 *   - Base64 is RFC 4648 section 4 with its padding, as RFC 7617 section 2
 *     names it and every common client sends it: the length a multiple of
 *     4, '=' only as the last one or two characters, the unused bits of the
 *     last group zero (RFC 4648 3.5), nothing outside the alphabet (no
 *     whitespace, no base64url "-_"). Each credential then has exactly one
 *     spelling, so a cache or a log keyed on the header cannot be fooled.
 *   - The decoded user-pass is split at the first ':' (RFC 7617: the
 *     user-id cannot hold one); none is HTTP_BASIC_NO_COLON. The password
 *     may hold more.
 *   - Each part is then form-urlencoded-decoded (RFC 6749 2.3.1): '+' is
 *     a space, %XX a byte, a '%' without two hex digits is
 *     HTTP_BASIC_BAD_ESCAPE. A client that sends a secret holding '+' or
 *     '%' without encoding it fails (or authenticates as another secret):
 *     issue secrets made of unreserved characters only.
 *   - The decoded parts must be UTF-8 (RFC 3629) without control
 *     characters (RFC 7617 2: "MUST NOT contain any control characters";
 *     RFC 6749 A.1/A.2: client_id and client_secret are *VSCHAR), so a NUL
 *     ("%00") is refused too: HTTP_BASIC_BAD_CHAR.
 *   - An empty user-id or password is accepted (RFC 7617 allows both);
 *     the caller's client lookup refuses them.
 * The first problem is the one reported, in this order: scheme, token68
 * and base64 syntax (the whole token), then the bytes as they decode.
 */
#ifndef RINGSIDE_HTTP_BASIC_AUTH_H
#define RINGSIDE_HTTP_BASIC_AUTH_H

#include <stddef.h>

/* X(NAME, value, message): message suits an error_description. */
#define HTTP_BASIC_ERRORS(X)                                                           \
	X(NOT_BASIC, -1, "The Authorization scheme is not Basic.")                     \
	X(MALFORMED, -2, "The Basic credentials are not valid base64.")                \
	X(NO_COLON, -3, "The Basic credentials have no ':' between id and secret.")    \
	X(BAD_ESCAPE, -4,                                                              \
	  "The Basic credentials have a '%' that is not followed by two hex digits.")  \
	X(BAD_CHAR, -5,                                                                \
	  "The Basic credentials hold a control character or invalid UTF-8.")          \
	X(TOO_LONG, -6, "The Basic credentials are too long.")

enum http_basic_status {
	HTTP_BASIC_OK = 0,
#define HTTP_BASIC_ENUM(name, value, message) HTTP_BASIC_##name = value,
	HTTP_BASIC_ERRORS(HTTP_BASIC_ENUM)
#undef HTTP_BASIC_ENUM
};

/* The caller's buffers (cap > 0 bytes each, the NUL included) and, out,
 * the decoded lengths. */
struct http_basic_credentials {
	char *id;         /* out: client_id (user-id), decoded, NUL-terminated */
	size_t id_cap;    /* ids up to id_cap - 1 bytes fit */
	size_t id_len;    /* out */
	char *secret;     /* out: client_secret (password), decoded, NUL-terminated */
	size_t secret_cap;
	size_t secret_len; /* out */
};

/*
 * Parses an Authorization field value v[0, len) (OWS around it already
 * stripped, as http_parse_head leaves it) into c. Returns HTTP_BASIC_OK,
 * or a negative enum http_basic_status; on any status but OK both
 * outputs are "" with length 0, so nothing half-decoded can be used.
 * Reads no byte outside v[0, len); v may be NULL if len is 0 (no field:
 * HTTP_BASIC_NOT_BASIC).
 */
int http_basic_parse(const char *v, size_t len, struct http_basic_credentials *c);

/* The message of a status from HTTP_BASIC_ERRORS; "" for HTTP_BASIC_OK,
 * "The Basic credentials are malformed." otherwise. A static string. */
const char *http_basic_strerror(int status);

#endif
