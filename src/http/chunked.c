/*
 * Zero-copy decoder of chunked request bodies (RFC 9112 7.1). The contract
 * is include/ringside/http_parser.h (http_chunked_next): one byte-driven
 * state machine, resumable at any split, reporting each run of body data
 * in place instead of copying it.
 */
#include "ringside/http_parser.h"

#include "byte_class.h"

enum {
	C_SIZE_START = 0, /* zeroed struct starts here */
	C_SIZE,
	C_SIZE_WS,        /* BWS after the size, before ';' */
	C_EXT,
	C_SIZE_LF,
	C_DATA,
	C_DATA_CR,
	C_DATA_LF,
	C_TRAILER_START,
	C_TRAILER_NAME,
	C_TRAILER_VALUE,
	C_TRAILER_LF,
	C_END_LF,
	C_DONE,
	C_ERROR,
};

/* A chunk-size line (size and extensions) may be at most this long, and
 * the trailer section at most TRAILER_MAX: extensions and trailers are
 * skipped, so without a bound a client could stream them forever. */
#define CHUNK_LINE_MAX 4096u
#define TRAILER_MAX (8u * 1024u)

#define FAIL(st, msg)                                                      \
	do {                                                               \
		c->error_status = (st);                                    \
		c->error = (msg);                                          \
		goto fail;                                                 \
	} while (0)

ssize_t http_chunked_next(struct http_chunked *c, uint64_t max_body,
			  const char *in, size_t len, struct http_span *data)
{
	const unsigned char *b = (const unsigned char *)in;
	unsigned state = c->state;
	uint32_t lb = c->line_bytes;
	size_t pos = 0;

	if (data)
		*data = (struct http_span){ 0, 0 };
	if (state == C_ERROR)
		return HTTP_PARSE_ERROR;
	if (c->done)
		return 0;

	while (pos < len) {
		unsigned ch = b[pos];

		/* Every framing byte is counted against its bound. */
		if (state <= C_SIZE_LF) {
			if (++lb > CHUNK_LINE_MAX)
				FAIL(400, "chunk size line too long");
		} else if (state >= C_TRAILER_START) {
			if (++lb > TRAILER_MAX)
				FAIL(400, "trailer section too large");
		}

		switch (state) {
		case C_SIZE_START:
			/* chunk-size = 1*HEXDIG */
			if (!(cls[ch] & K_HEX))
				FAIL(400, ch == '\n' ? "bare LF in chunked body"
					  : ch == '\r' || ch == ';' ? "empty chunk size"
					  : "invalid chunk size");
			c->remaining = IS_DIGIT(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10;
			state = C_SIZE;
			break;
		case C_SIZE:
			if (cls[ch] & K_HEX) {
				if (c->remaining > UINT64_MAX >> 4)
					FAIL(400, "chunk size too large");
				c->remaining = c->remaining << 4 |
					       (IS_DIGIT(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10);
			} else if (ch == ';') {
				state = C_EXT;
			} else if (ch == ' ' || ch == '\t') {
				state = C_SIZE_WS;
			} else if (ch == '\r') {
				state = C_SIZE_LF;
			} else {
				FAIL(400, ch == '\n' ? "bare LF in chunked body"
						     : "invalid chunk size");
			}
			break;
		case C_SIZE_WS:
			/* chunk-ext = *( BWS ";" ... ) (RFC 9112 7.1.1) */
			if (ch == ';')
				state = C_EXT;
			else if (ch != ' ' && ch != '\t')
				FAIL(400, "invalid chunk size");
			break;
		case C_EXT:
			/* Extensions are skipped (RFC 9112 7.1.1 lets a
			 * recipient ignore them); only the bytes are checked. */
			if (ch == '\r')
				state = C_SIZE_LF;
			else if (!(cls[ch] & K_VALUE))
				FAIL(400, ch == '\n' ? "bare LF in chunked body"
						     : "control character in chunk extension");
			break;
		case C_SIZE_LF:
			if (ch != '\n')
				FAIL(400, "bare CR in chunked body");
			lb = 0;
			if (c->remaining == 0) {
				state = C_TRAILER_START; /* last-chunk */
				break;
			}
			/* Refuse before a byte of the chunk is read. */
			if (c->remaining > max_body || c->total > max_body - c->remaining)
				FAIL(413, "request body too large");
			state = C_DATA;
			break;
		case C_DATA: {
			size_t n = len - pos;

			if (n > c->remaining)
				n = (size_t)c->remaining;
			if (n > UINT32_MAX)
				n = UINT32_MAX;
			if (data) {
				data->off = (uint32_t)pos;
				data->len = (uint32_t)n;
			}
			c->remaining -= n;
			c->total += n;
			if (c->remaining == 0)
				state = C_DATA_CR;
			pos += n;
			/* The data run ends the call: an error in the framing
			 * after it must not take back bytes already handed out. */
			goto out;
		}
		case C_DATA_CR:
			if (ch != '\r')
				FAIL(400, "missing CRLF after chunk data");
			state = C_DATA_LF;
			break;
		case C_DATA_LF:
			if (ch != '\n')
				FAIL(400, "missing CRLF after chunk data");
			lb = 0;
			state = C_SIZE_START;
			break;
		case C_TRAILER_START:
			/* trailer-section = *( field-line CRLF ), validated like
			 * the header section, then dropped (RFC 9112 7.1.2). */
			if (ch == '\r')
				state = C_END_LF;
			else if (cls[ch] & K_TCHAR)
				state = C_TRAILER_NAME;
			else if (ch == ' ' || ch == '\t')
				FAIL(400, "obsolete line folding in trailer section");
			else
				FAIL(400, ch == '\n' ? "bare LF in chunked body"
						     : "invalid byte in trailer field name");
			break;
		case C_TRAILER_NAME:
			if (ch == ':')
				state = C_TRAILER_VALUE;
			else if (!(cls[ch] & K_TCHAR))
				FAIL(400, ch == '\n' ? "bare LF in chunked body"
						     : "invalid byte in trailer field name");
			break;
		case C_TRAILER_VALUE:
			if (ch == '\r')
				state = C_TRAILER_LF;
			else if (!(cls[ch] & K_VALUE))
				FAIL(400, ch == '\n' ? "bare LF in chunked body"
						     : "trailer field value contains a control character");
			break;
		case C_TRAILER_LF:
			if (ch != '\n')
				FAIL(400, "bare CR in chunked body");
			state = C_TRAILER_START;
			break;
		case C_END_LF:
			if (ch != '\n')
				FAIL(400, "bare CR in chunked body");
			pos++;
			state = C_DONE;
			c->done = true;
			goto out;
		default:
			FAIL(400, "chunked decoder state corrupt");
		}
		pos++;
	}
out:
	c->state = (uint16_t)state;
	c->line_bytes = lb;
	return (ssize_t)pos;
fail:
	c->state = C_ERROR;
	return HTTP_PARSE_ERROR;
}
