/*
 * Strict, resumable HTTP/1.1 request-head parser (RFC 9112) and chunked
 * body decoder. Allocates nothing; all state lives in caller-owned structs
 * that start zeroed (memset 0 or http_parser_init).
 *
 * Contract of http_parse_head():
 *   - `buf` holds the request head from its first byte (leading empty lines
 *     included). Across calls for one request the caller keeps bytes
 *     [0, len) unchanged, only appending; the base pointer MAY change (the
 *     server moves a partial head from a recv buffer into a connection
 *     buffer), which is why every position below is an offset, not a pointer.
 *   - Each call validates only the bytes it has not seen yet: feeding a head
 *     one byte at a time costs O(n) in total, never O(n^2).
 *   - It never reads buf[len] or beyond.
 */
#ifndef RINGSIDE_HTTP_PARSER_H
#define RINGSIDE_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum http_method {
	HTTP_METHOD_OTHER = 0, /* a valid token we do not route on */
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PUT,
	HTTP_DELETE,
	HTTP_PATCH,
	HTTP_OPTIONS,
	HTTP_TRACE,
	HTTP_CONNECT,
	HTTP_METHOD_COUNT
};

/* "GET", "HEAD", ...; "OTHER" for HTTP_METHOD_OTHER. */
const char *http_method_name(enum http_method m);

/* A byte range inside the head buffer. len == 0 means absent. */
struct http_span {
	uint32_t off;
	uint32_t len;
};

/*
 * Header fields the server acts on. The parser stores the value span of
 * each (value trimmed of leading/trailing SP/HTAB); every other field is
 * validated and counted but not stored.
 */
enum http_known_header {
	HTTP_HDR_HOST,
	HTTP_HDR_CONTENT_LENGTH,
	HTTP_HDR_TRANSFER_ENCODING,
	HTTP_HDR_CONNECTION,
	HTTP_HDR_EXPECT,
	HTTP_HDR_CONTENT_TYPE,
	HTTP_HDR_AUTHORIZATION,
	HTTP_HDR_ACCEPT,
	HTTP_HDR_ACCEPT_ENCODING,
	HTTP_HDR_COUNT
};

struct http_limits {
	uint32_t max_head_bytes;   /* whole head incl. request line; over -> 431 */
	uint32_t max_target_bytes; /* request-target; over -> 414 */
	uint16_t max_fields;       /* header field lines; over -> 431 */
};

#define HTTP_DEFAULT_MAX_HEAD_BYTES (16u * 1024u)
#define HTTP_DEFAULT_MAX_TARGET_BYTES (8u * 1024u)
#define HTTP_DEFAULT_MAX_FIELDS 100u

/* The parsed head. Valid once http_parse_head() returned > 0. */
struct http_request {
	enum http_method method;
	struct http_span method_token; /* the method as sent */
	struct http_span target;       /* raw request-target */
	struct http_span path;         /* abs-path of origin- or absolute-form; "*" for asterisk-form */
	struct http_span query;        /* after '?', without it; len 0 if none */
	uint8_t version_minor;         /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
	uint16_t field_count;          /* header field lines seen */

	/* Framing, already checked against RFC 9112 section 6. */
	bool has_content_length;
	bool chunked;                  /* Transfer-Encoding: chunked (final, only coding) */
	uint64_t content_length;       /* valid if has_content_length */

	bool keep_alive;               /* from version + Connection tokens */
	bool expect_continue;          /* Expect: 100-continue */

	/* Value span of each known header (first occurrence); len 0 if absent
	 * or empty. Host, Content-Type and Authorization repeated are an
	 * error, not a second span; Content-Length only if the values differ. */
	struct http_span hdr[HTTP_HDR_COUNT];
};

/*
 * Parser state. Zero it (or call http_parser_init) before a new request.
 * 168 bytes on x86-64 (32 of state, then the request).
 */
struct http_parser {
	uint32_t pos;          /* bytes of buf already validated */
	uint16_t state;        /* private */
	uint16_t flags;        /* private: Transfer-Encoding, Connection, Expect seen */
	uint32_t mark;         /* private: start of the field name, HTTP-version
				* or absolute-form authority; before the
				* request line, empty lines skipped */
	uint32_t mark2;        /* private: start of the field value; major version */
	int16_t field;         /* private: known header of the current line, or -1 */
	uint16_t error_status; /* set when http_parse_head() returns HTTP_PARSE_ERROR */
	const char *error;     /* static string: why, for the error body */
	struct http_request req;
};

enum {
	HTTP_PARSE_AGAIN = 0,  /* all of buf valid so far; need more bytes */
	HTTP_PARSE_ERROR = -1, /* p->error_status and p->error say why */
};

void http_parser_init(struct http_parser *p);

/*
 * Parses buf[p->pos, len). Returns the length of the complete head (the
 * offset of the first body or next-request byte) when the blank line ending
 * it has been seen; HTTP_PARSE_AGAIN if the head is valid so far but not
 * complete; HTTP_PARSE_ERROR otherwise. After an error the connection must
 * be closed after the error response: the framing can no longer be trusted.
 *
 * Statuses set on error:
 *   400  syntax, bare CR/LF, obs-fold, CTL/NUL in a value, space before
 *        colon, bad name byte; Host missing on 1.1 or repeated; a Host
 *        value that is not uri-host [":" port] (RFC 3986 3.2.2, with a
 *        port of at most 5 digits and 65535; empty Host is valid); an
 *        absolute-form authority that is not one, or has userinfo or an
 *        empty host; Authorization or Content-Type repeated; CL+TE; bad
 *        or differing Content-Length; chunked not final or repeated;
 *        Transfer-Encoding on HTTP/1.0
 *   414  target over limit
 *   417  Expect other than 100-continue
 *   431  head over limit or too many fields
 *   501  a transfer coding other than chunked
 *   505  HTTP version other than 1.0/1.1
 */
int http_parse_head(struct http_parser *p, const struct http_limits *lim,
		    const char *buf, size_t len);

/* Points into buf: the bytes of a span. */
static inline const char *http_span_ptr(const char *buf, struct http_span s)
{
	return buf + s.off;
}

/*
 * Case-insensitive test for `token` in a comma-separated header value
 * (e.g. Connection: "keep-alive, Upgrade"). Exposed for handlers.
 */
bool http_list_has_token(const char *value, size_t len, const char *token);

/* ---- Chunked request bodies (RFC 9112 section 7.1) ---- */

struct http_chunked {
	uint64_t remaining;    /* bytes left in the current chunk's data (while
				* a chunk-size line is read: the size so far) */
	uint64_t total;        /* decoded body bytes so far */
	uint32_t line_bytes;   /* private: bytes of the current size line, or of
				* the trailer section so far */
	uint16_t state;        /* private */
	uint16_t error_status; /* 400 on malformed framing, 413 over max_body */
	const char *error;
	bool done;             /* last-chunk and trailer section consumed */
};

/*
 * Decodes chunked framing from in[0, len) with no copy. Returns the number
 * of input bytes consumed (> 0 unless len == 0 or done), or HTTP_PARSE_ERROR.
 * If the consumed bytes contained body data, *data is set to its offset and
 * length inside in[0, consumed) (one contiguous run per call; call again
 * with the rest). Total decoded bytes over max_body -> error 413. Chunk
 * extensions are skipped; trailer fields are validated and discarded.
 * Once c->done, the bytes after the returned count belong to the next
 * request.
 */
ssize_t http_chunked_next(struct http_chunked *c, uint64_t max_body,
			  const char *in, size_t len, struct http_span *data);

#endif
