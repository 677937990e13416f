/*
 * An HTTP/1.1 client for the tests: a buffered connection (several
 * responses may arrive in one read), reading one response with
 * Content-Length framing, reading a chunked body chunk by chunk, reading to
 * EOF, and one-shot exchanges. The fields of a response: http_fields.h.
 */
#ifndef RINGSIDE_TESTS_BB_HTTP_CLIENT_H
#define RINGSIDE_TESTS_BB_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A buffered connection: responses may arrive several per read. */
struct conn {
	int fd;
	size_t len;            /* bytes buffered, not yet parsed */
	bool eof;              /* the peer closed its side */
	int err;               /* errno of the last failed recv, 0 if none */
	char buf[1 << 17];
};

/* Opens a connection (fails the test if it cannot). Free with conn_close. */
struct conn *conn_open(uint16_t port);
/* Adopts an already connected fd. */
struct conn *conn_wrap(int fd);
void conn_close(struct conn *c);
void conn_close_rst(struct conn *c);

void conn_send(struct conn *c, const void *buf, size_t len);
void conn_send_str(struct conn *c, const char *s);

#define H_MAX_HEADERS 96

struct http_header {
	char *name;   /* NUL-terminated, points into head[] */
	char *value;  /* NUL-terminated, trimmed */
};

struct http_response {
	int status;
	int minor;                  /* HTTP/1.<minor> */
	char reason[128];
	char head[16384];           /* raw head as received, then split in place */
	size_t head_len;            /* bytes of the head incl. the blank line */
	char raw_status_line[256];  /* first line without CRLF */
	size_t nheaders;
	struct http_header headers[H_MAX_HEADERS];
	bool has_content_length;
	uint64_t content_length;
	char body[1 << 16];         /* NUL-terminated */
	size_t body_len;
};

/* A malloc'd, uninitialised response (too big for the stack); the caller
 * frees it. Fails the test if out of memory. */
struct http_response *resp_new(void);

/*
 * Reads one complete response from c within timeout_ms: the status line,
 * the header section, and a Content-Length body (no body if for_head, for
 * 1xx, 204 and 304). A 1xx interim response is returned by itself; call
 * again for the final one. Returns 0, or -1 with a reason in err[ecap].
 */
int conn_read_response(struct conn *c, struct http_response *r, bool for_head,
		       int timeout_ms, char *err, size_t ecap);

/* conn_read_response that fails the test (with the reason and what was
 * received so far) instead of returning -1. 5 s deadline. */
void expect_response(struct conn *c, struct http_response *r, bool for_head);

/*
 * Reads one chunk of a chunked message body (RFC 9112 section 7.1), after
 * the head was read with conn_read_response(..., for_head = true, ...).
 * Returns the chunk size with its data copied to out (NUL-terminated,
 * truncated to cap - 1), 0 for the last chunk (the trailer section and
 * final CRLF consumed), or -1 with the reason and the bytes seen in err.
 */
long conn_read_chunk(struct conn *c, char *out, size_t cap, int timeout_ms,
		     char *err, size_t ecap);

/* Reads everything until EOF within timeout_ms into buf (NUL-terminated).
 * Returns the byte count; *closed tells whether EOF/RST was seen. */
size_t conn_read_until_eof(struct conn *c, char *buf, size_t cap,
			   int timeout_ms, bool *closed);

/*
 * After a response: waits up to timeout_ms for the peer to close and
 * fails the test if it does not or if more bytes arrive.
 */
void expect_conn_closed(struct conn *c, int timeout_ms);

/* Fails the test unless no bytes arrive and the connection is still open
 * after wait_ms. */
void expect_conn_open(struct conn *c, int wait_ms);

/*
 * Connects, sends req as is, reads one response (no body if for_head),
 * closes. Fails the test, naming the request line, if any step fails.
 */
void h_exchange(uint16_t port, const char *req, bool for_head,
		struct http_response *r);

#endif
