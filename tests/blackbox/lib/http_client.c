/*
 * The tests' HTTP/1.1 client: buffered connections, responses, chunks.
 * See http_client.h.
 */
#include "http_client.h"
#include "http_fields.h"
#include "check.h"
#include "clock.h"
#include "sock.h"
#include "tls_client.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- Buffered connections ---- */

struct conn *conn_wrap(int fd)
{
	struct conn *c = malloc(sizeof(*c));

	if (!c) {
		close(fd);
		H_FAIL("out of memory");
	}
	c->fd = fd;
	c->len = 0;
	c->eof = false;
	c->err = 0;
	return c;
}

struct conn *conn_open(uint16_t port)
{
	return conn_wrap(h_connect(port));
}

void conn_close(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		h_close(c->fd);
	free(c);
}

void conn_close_rst(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		h_close_rst(c->fd);
	free(c);
}

void conn_send(struct conn *c, const void *buf, size_t len)
{
	h_send(c->fd, buf, len);
}

void conn_send_str(struct conn *c, const char *s)
{
	conn_send(c, s, strlen(s));
}

/* Reads more into c->buf. Returns bytes read, 0 on EOF, -1 on error,
 * -2 on timeout, -3 if the buffer is full. */
static int conn_fill(struct conn *c, int64_t deadline)
{
	if (c->eof)
		return 0;
	if (c->err)
		return -1;
	if (c->len >= sizeof(c->buf))
		return -3;
	bool tls = h_tls_fd(c->fd);

	for (int i = 0; i < 1000; i++) {
		struct pollfd pfd = { .fd = c->fd,
				      .events = tls ? h_tls_events(c->fd) : POLLIN };
		int pr = tls && h_tls_pending(c->fd) ? 1 :
			poll(&pfd, 1, h_remaining_ms(deadline));

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return -2;
		ssize_t n = tls ? h_tls_read(c->fd, c->buf + c->len,
					     sizeof(c->buf) - c->len, false) :
			recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len,
			     MSG_DONTWAIT);

		if (n > 0) {
			c->len += (size_t)n;
			return (int)n;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EAGAIN || errno == EINTR)
			continue;
		c->err = errno;
		return -1;
	}
	return -2;
}

/* Fills c until it holds at least want bytes. Returns 1, or the conn_fill
 * result (<= 0) that stopped it. Each round adds a byte or returns. */
static int fill_to(struct conn *c, size_t want, int64_t deadline)
{
	while (c->len < want) {
		int n = conn_fill(c, deadline);

		if (n <= 0)
			return n;
	}
	return 1;
}

/* Fills c until needle[0..nlen) is buffered, *at pointing at its first
 * copy. Returns 1, the conn_fill result (<= 0) that stopped it, or -4 once
 * more than limit bytes are buffered without it (so each round adds a
 * byte, at most limit + 1 rounds). */
static int fill_until(struct conn *c, const char *needle, size_t nlen,
		      size_t limit, int64_t deadline, char **at)
{
	for (;;) {
		*at = c->len ? memmem(c->buf, c->len, needle, nlen) : NULL;
		if (*at)
			return 1;
		if (c->len > limit)
			return -4;
		int n = conn_fill(c, deadline);

		if (n <= 0)
			return n;
	}
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Printable rendering of raw bytes for messages. */
static void render(const char *in, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < cap; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '\r') {
			out[o++] = '\\';
			out[o++] = 'r';
		} else if (ch == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (ch < 0x20 || ch >= 0x7f || ch == '\\') {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	if (o < cap)
		out[o] = '\0';
	else if (cap)
		out[cap - 1] = '\0';
}

/* err = why, then what is buffered and the connection's state. */
static void fill_err(const struct conn *c, char *err, size_t ecap,
		     const char *why)
{
	char shown[1200];

	render(c->buf, c->len < 400 ? c->len : 400, shown, sizeof(shown));
	snprintf(err, ecap, "%s; %zu bytes buffered: \"%s\"%s%s%s", why, c->len,
		 shown, c->eof ? " [peer closed]" : "",
		 c->err ? " [recv error: " : "",
		 c->err ? strerror(c->err) : "");
	if (c->err && c->err == EPROTO && h_tls_fd(c->fd) &&
	    strlen(err) + strlen(h_tls_why(c->fd)) + 3 < ecap) {
		strcat(err, ": ");
		strcat(err, h_tls_why(c->fd));
	}
	if (c->err && strlen(err) + 2 < ecap)
		strcat(err, "]");
}

/* fill_err with "<why conn_fill result n stopped the read> <where>". */
__attribute__((format(printf, 5, 6)))
static void fill_fail(const struct conn *c, char *err, size_t ecap, int n,
		      const char *where, ...)
{
	char why[256], at[192];
	va_list ap;

	va_start(ap, where);
	vsnprintf(at, sizeof(at), where, ap);
	va_end(ap);
	snprintf(why, sizeof(why), "%s %s",
		 n == 0 ? "connection closed" : n == -1 ? "recv failed" :
		 n == -2 ? "timed out" : "receive buffer full", at);
	fill_err(c, err, ecap, why);
}

/* ---- Responses ---- */

struct http_response *resp_new(void)
{
	struct http_response *r = malloc(sizeof(*r));

	CHECK(r != NULL, "out of memory");
	return r;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static int parse_head(struct http_response *r, char *err, size_t ecap)
{
	char *line = r->head;
	char *eol = strstr(line, "\r\n");

	if (!eol) {
		snprintf(err, ecap, "no status line");
		return -1;
	}
	*eol = '\0';
	snprintf(r->raw_status_line, sizeof(r->raw_status_line), "%.255s", line);
	if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) ||
	    line[8] != ' ' || !isdigit((unsigned char)line[9]) ||
	    !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
	    (line[12] != ' ' && line[12] != '\0')) {
		snprintf(err, ecap, "malformed status line \"%s\"", line);
		return -1;
	}
	r->minor = line[7] - '0';
	r->status = atoi(line + 9);
	snprintf(r->reason, sizeof(r->reason), "%s", line[12] ? line + 13 : "");

	line = eol + 2;
	r->nheaders = 0;
	while (*line) {
		eol = strstr(line, "\r\n");
		if (!eol) {
			snprintf(err, ecap, "header line without CRLF");
			return -1;
		}
		*eol = '\0';
		if (*line == '\0')
			break;
		char *colon = strchr(line, ':');

		if (!colon || colon == line || line[0] == ' ' || line[0] == '\t' ||
		    colon[-1] == ' ' || colon[-1] == '\t') {
			snprintf(err, ecap, "malformed header line \"%s\"", line);
			return -1;
		}
		if (r->nheaders == H_MAX_HEADERS) {
			snprintf(err, ecap, "more than %d header fields",
				 H_MAX_HEADERS);
			return -1;
		}
		*colon = '\0';
		r->headers[r->nheaders].name = line;
		r->headers[r->nheaders].value = trim(colon + 1);
		r->nheaders++;
		line = eol + 2;
	}
	return 0;
}

int conn_read_response(struct conn *c, struct http_response *r, bool for_head,
		       int timeout_ms, char *err, size_t ecap)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	char *end;

	memset(r, 0, offsetof(struct http_response, head));
	r->head[0] = '\0';
	r->head_len = 0;
	r->nheaders = 0;
	r->has_content_length = false;
	r->content_length = 0;
	r->body[0] = '\0';
	r->body_len = 0;

	int n = fill_until(c, "\r\n\r\n", 4, sizeof(r->head) - 2, deadline, &end);

	if (n == -4) {
		fill_err(c, err, ecap, "response head larger than 16 KiB");
		return -1;
	}
	if (n != 1) {
		fill_fail(c, err, ecap, n, "before a complete response head");
		return -1;
	}
	size_t head_len = (size_t)(end - c->buf) + 4;

	if (head_len >= sizeof(r->head)) {
		fill_err(c, err, ecap, "response head larger than 16 KiB");
		return -1;
	}
	memcpy(r->head, c->buf, head_len);
	r->head[head_len] = '\0';
	r->head_len = head_len;
	if (parse_head(r, err, ecap) != 0) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s", err);
		fill_err(c, err, ecap, tmp);
		return -1;
	}
	consume(c, head_len);

	const char *cl = resp_header(r, "Content-Length");

	if (cl) {
		char *e;

		errno = 0;
		unsigned long long v = strtoull(cl, &e, 10);

		if (!isdigit((unsigned char)cl[0]) || *e || errno) {
			snprintf(err, ecap, "bad Content-Length \"%s\" in response", cl);
			return -1;
		}
		r->has_content_length = true;
		r->content_length = v;
	}
	bool no_body = for_head || (r->status >= 100 && r->status < 200) ||
		       r->status == 204 || r->status == 304;

	if (no_body)
		return 0;
	if (resp_header(r, "Transfer-Encoding")) {
		snprintf(err, ecap, "response uses Transfer-Encoding: %s "
			 "(expected Content-Length framing)",
			 resp_header(r, "Transfer-Encoding"));
		return -1;
	}
	if (!r->has_content_length)
		return 0; /* expect_common reports the missing field */
	if (r->content_length >= sizeof(r->body)) {
		snprintf(err, ecap, "response body of %llu bytes too large for the harness",
			 (unsigned long long)r->content_length);
		return -1;
	}
	size_t want = (size_t)r->content_length;

	n = fill_to(c, want, deadline);
	if (n != 1) {
		fill_fail(c, err, ecap, n, "while reading a %zu-byte body (status %d)",
			  want, r->status);
		return -1;
	}
	memcpy(r->body, c->buf, want);
	r->body[want] = '\0';
	r->body_len = want;
	consume(c, want);
	return 0;
}

void expect_response(struct conn *c, struct http_response *r, bool for_head)
{
	char err[2048];

	if (conn_read_response(c, r, for_head, 5000, err, sizeof(err)) != 0)
		H_FAIL("reading a response: %s", err);
}

/* After the last chunk: trailer fields, if any, up to the empty line. */
static int read_trailer(struct conn *c, int64_t deadline, char *err, size_t ecap)
{
	for (int i = 0; i < 100000; i++) {
		char *eol;
		int n = fill_until(c, "\r\n", 2, 8192, deadline, &eol);

		if (n == -4) {
			fill_err(c, err, ecap, "trailer section too long");
			return -1;
		}
		if (n != 1) {
			fill_fail(c, err, ecap, n,
				  "before the CRLF after the terminating 0-size chunk");
			return -1;
		}
		bool last = eol == c->buf;

		consume(c, (size_t)(eol - c->buf) + 2);
		if (last)
			return 0;
	}
	fill_err(c, err, ecap, "no end of the trailer section");
	return -1;
}

long conn_read_chunk(struct conn *c, char *out, size_t cap, int timeout_ms,
		     char *err, size_t ecap)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	char *eol;

	if (cap)
		out[0] = '\0';
	/* chunk-size [ chunk-ext ] CRLF */
	int n = fill_until(c, "\r\n", 2, 1024, deadline, &eol);

	if (n == -4) {
		fill_err(c, err, ecap, "chunk-size line longer than 1 KiB");
		return -1;
	}
	if (n != 1) {
		fill_fail(c, err, ecap, n, "before a chunk-size line%s",
			  n == 0 ? " (no terminating 0-size chunk)" : "");
		return -1;
	}
	size_t size = 0, digits = 0;
	const char *p = c->buf;

	while (p < eol && isxdigit((unsigned char)*p)) {
		int d = isdigit((unsigned char)*p) ? *p - '0' :
			(tolower((unsigned char)*p) - 'a' + 10);

		if (size > (SIZE_MAX >> 4)) {
			fill_err(c, err, ecap, "chunk size overflows");
			return -1;
		}
		size = size * 16 + (size_t)d;
		digits++;
		p++;
	}
	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	if (!digits || (p < eol && *p != ';')) {
		fill_err(c, err, ecap, "malformed chunk-size line");
		return -1;
	}
	if (size > sizeof(c->buf) - 1100) {
		fill_err(c, err, ecap, "chunk larger than the harness buffer");
		return -1;
	}
	consume(c, (size_t)(eol - c->buf) + 2);

	if (size == 0)
		return read_trailer(c, deadline, err, ecap);
	n = fill_to(c, size + 2, deadline);
	if (n != 1) {
		fill_fail(c, err, ecap, n, "inside a %zu-byte chunk", size);
		return -1;
	}
	if (c->buf[size] != '\r' || c->buf[size + 1] != '\n') {
		fill_err(c, err, ecap, "chunk data not followed by CRLF");
		return -1;
	}
	if (cap) {
		size_t k = size < cap - 1 ? size : cap - 1;

		memcpy(out, c->buf, k);
		out[k] = '\0';
	}
	consume(c, size + 2);
	return (long)size;
}

size_t conn_read_until_eof(struct conn *c, char *buf, size_t cap,
			   int timeout_ms, bool *closed)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	bool done = false;

	for (int i = 0; i < 100000; i++) {
		int n = conn_fill(c, deadline);

		if (n == 0 || n == -1) {
			done = true;
			break;
		}
		if (n == -2)
			break;
		if (n == -3) {
			/* Keep the tail only. */
			consume(c, c->len / 2);
		}
	}
	size_t n = c->len < cap - 1 ? c->len : cap - 1;

	memcpy(buf, c->buf, n);
	buf[n] = '\0';
	consume(c, c->len);
	if (closed)
		*closed = done;
	return n;
}

void expect_conn_closed(struct conn *c, int timeout_ms)
{
	if (c->len) {
		char shown[600];

		render(c->buf, c->len < 200 ? c->len : 200, shown, sizeof(shown));
		H_FAIL("expected the server to close the connection, but %zu more "
		       "bytes arrived: \"%s\"", c->len, shown);
	}
	if (c->eof || c->err)
		return;
	size_t got = 0;
	enum h_peer p = h_wait_close(c->fd, timeout_ms, &got);

	if ((p == H_PEER_EOF || p == H_PEER_RESET) && got == 0) {
		c->eof = true;
		return;
	}
	H_FAIL("expected the server to close the connection within %d ms: %s "
	       "(%zu unexpected bytes)", timeout_ms, h_peer_name(p), got);
}

void expect_conn_open(struct conn *c, int wait_ms)
{
	CHECK(c->len == 0 && !c->eof && !c->err,
	      "connection not idle: %zu bytes buffered, eof %d, err %d", c->len,
	      c->eof, c->err);
	int pr = h_poll_in(c->fd, wait_ms);

	if (pr > 0) {
		char b[256];
		ssize_t n = h_recv(c->fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK);

		H_FAIL("expected the connection to stay open and silent, but %s",
		       n == 0 ? "the server closed it" :
		       n < 0 ? "it was reset" : "bytes arrived");
	}
}

void h_exchange(uint16_t port, const char *req, bool for_head,
		struct http_response *r)
{
	struct conn *c = conn_open(port);
	char err[2048];

	conn_send_str(c, req);
	if (conn_read_response(c, r, for_head, 5000, err, sizeof(err)) != 0) {
		conn_close(c);
		H_FAIL("request \"%.*s\" on port %u: %s",
		       (int)strcspn(req, "\r\n"), req, port, err);
	}
	conn_close(c);
}
