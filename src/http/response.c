#include "ringside/http_response.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringside/api_errors.h"
#include "ringside/decimal.h"
#include "ringside/http_status.h"
#include "ringside/json_writer.h"

/* s may be NULL when n is 0 (no body, no extra headers); memcpy may not. */
static char *put(char *p, const char *s, size_t n)
{
	if (n)
		memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* Bytes of the head apart from the content type, extra headers and the
 * length digits: status line (at most ~60) and the fixed fields. */
#define HEAD_FIXED_MAX 160u

/* Writes the head, with the header lines of `fixed` (a literal of the
 * writer's, or NULL) before the caller's `extra_headers`; reserves room
 * for `body_room` more bytes. */
static int write_head(struct http_exchange *x, unsigned status, const char *content_type,
		      const char *fixed, const char *extra_headers, uint64_t content_length,
		      size_t body_room)
{
	const char *reason = http_status_reason(status);
	size_t ct_len = content_type ? strlen(content_type) : 0;
	size_t fixed_len = fixed ? strlen(fixed) : 0;
	size_t extra_len = extra_headers ? strlen(extra_headers) : 0;
	size_t need = HEAD_FIXED_MAX + strlen(reason) + ct_len + fixed_len + extra_len +
		      x->request_id_len + body_room;
	struct http_out *o = x->out;
	if (need > o->cap - o->len)
		return -ENOSPC;

	char *p = o->buf + o->len;
	p = PUT_LIT(p, "HTTP/1.1 ");
	p = decimal_u64(p, status);
	*p++ = ' ';
	p = put(p, reason, strlen(reason));
	p = PUT_LIT(p, "\r\n");
	p = put(p, x->date_line, HTTP_DATE_LINE_LEN);
	if (content_type) {
		p = PUT_LIT(p, "Content-Type: ");
		p = put(p, content_type, ct_len);
		p = PUT_LIT(p, "\r\n");
	}
	/* RFC 9110 8.6: never in a 204 (nor a 1xx), which has no body. */
	if (content_length != HTTP_LENGTH_STREAMED && status != 204 && status >= 200) {
		p = PUT_LIT(p, "Content-Length: ");
		p = decimal_u64(p, content_length); /* HEAD: what a GET would send (RFC 9110 9.3.2) */
		p = PUT_LIT(p, "\r\n");
	}
	p = PUT_LIT(p, "X-Request-Id: ");
	p = put(p, x->request_id, x->request_id_len);
	p = PUT_LIT(p, "\r\n");
	if (x->close)
		p = PUT_LIT(p, "Connection: close\r\n");
	else if (x->keep_alive_10)
		p = PUT_LIT(p, "Connection: keep-alive\r\n");
	p = put(p, fixed, fixed_len);
	p = put(p, extra_headers, extra_len);
	p = PUT_LIT(p, "\r\n");
	x->reply_bytes = (uint64_t)(p - (o->buf + o->len));
	o->len = (uint32_t)(p - o->buf);
	x->replied = true;
	x->status = (uint16_t)status;
	return 0;
}

int http_reply_head(struct http_exchange *x, unsigned status, const char *content_type,
		    const char *extra_headers, uint64_t content_length)
{
	return write_head(x, status, content_type, NULL, extra_headers, content_length, 0);
}

static int reply(struct http_exchange *x, unsigned status, const char *content_type,
		 const char *fixed, const char *extra_headers, const void *body, size_t len)
{
	size_t body_len = x->head_only ? 0 : len;
	int r = write_head(x, status, content_type, fixed, extra_headers, len, body_len);
	if (r == 0) {
		put(x->out->buf + x->out->len, body, body_len);
		x->out->len += (uint32_t)body_len;
		x->reply_bytes += body_len;
	}
	return r;
}

int http_reply(struct http_exchange *x, unsigned status, const char *content_type,
	       const char *extra_headers, const void *body, size_t len)
{
	return reply(x, status, content_type, NULL, extra_headers, body, len);
}

/* The envelope of every family but OAuth's (DESIGN.md "Error envelope"). */
static int reply_envelope(struct http_exchange *x, unsigned status, const char *code,
			  const char *message, const char *field, const char *hint,
			  const char *extra_headers)
{
	char body[HTTP_RESPONSE_RESERVE / 2];
	struct json_writer w;
	jsonw_init(&w, body, sizeof body);
	jsonw_start_object(&w);
	jsonw_key(&w, "code");
	jsonw_cstring(&w, code);
	jsonw_key(&w, "message");
	jsonw_cstring(&w, message);
	if (field) {
		jsonw_key(&w, "field");
		jsonw_cstring(&w, field);
	}
	if (hint) {
		jsonw_key(&w, "hint");
		jsonw_cstring(&w, hint);
	}
	jsonw_key(&w, "requestId");
	jsonw_string(&w, x->request_id, x->request_id_len);
	jsonw_end_object(&w);
	if (w.overflow)
		return -ENOSPC;
	return http_reply(x, status, "application/json", extra_headers, body, w.len);
}

int http_reply_error(struct http_exchange *x, unsigned status, const char *code,
		     const char *message, const char *field, const char *hint,
		     const char *extra_headers)
{
	if (!code || !message) {
		const struct api_error *e = &api_core_errors[api_core_error_of(status)];
		code = code ? code : e->code;
		message = message ? message : e->message;
	}
	return reply_envelope(x, status, code, message, field, hint, extra_headers);
}

/* The table entry e of a family: status 0 and message NULL take its own. */
static int reply_family_error(struct http_exchange *x, unsigned status, const struct api_error *e,
			      const char *message, const char *field, const char *hint,
			      const char *extra_headers)
{
	return reply_envelope(x, status ? status : e->status, e->code, message ? message : e->message,
			      field, hint, extra_headers);
}

int http_reply_core_error(struct http_exchange *x, unsigned status, enum api_core_error code,
			  const char *message, const char *field, const char *hint,
			  const char *extra_headers)
{
	return reply_family_error(x, status, &api_core_errors[code], message, field, hint,
				  extra_headers);
}

int http_reply_agent_error(struct http_exchange *x, unsigned status, enum api_agent_error code,
			   const char *message, const char *field, const char *hint,
			   const char *extra_headers)
{
	return reply_family_error(x, status, &api_agent_errors[code], message, field, hint,
				  extra_headers);
}

/* A details member: a JSON number when it is a plain decimal that fits
 * 64 bits, else a string. */
static void details_number(struct json_writer *w, const char *name, const char *digits)
{
	jsonw_key(w, name);
	size_t n = strlen(digits);
	if (n && n <= 19 && strspn(digits, "0123456789") == n && (digits[0] != '0' || n == 1))
		jsonw_u64(w, strtoull(digits, NULL, 10));
	else
		jsonw_cstring(w, digits);
}

static int reply_detailed(struct http_exchange *x, unsigned status, const struct api_error *e,
			  const char *message, const struct http_error_details *d,
			  const char *extra_headers)
{
	char body[HTTP_RESPONSE_RESERVE / 2];
	struct json_writer w;
	jsonw_init(&w, body, sizeof body);
	jsonw_start_object(&w);
	jsonw_key(&w, "code");
	jsonw_cstring(&w, e->code);
	jsonw_key(&w, "message");
	jsonw_cstring(&w, message ? message : e->message);
	if (d && (d->field || d->hint || d->max || d->provided)) {
		jsonw_key(&w, "details");
		jsonw_start_object(&w);
		if (d->field) {
			jsonw_key(&w, "field");
			jsonw_cstring(&w, d->field);
		}
		if (d->hint) {
			jsonw_key(&w, "hint");
			jsonw_cstring(&w, d->hint);
		}
		if (d->max)
			details_number(&w, "max", d->max);
		if (d->provided)
			details_number(&w, "provided", d->provided);
		jsonw_end_object(&w);
	}
	jsonw_key(&w, "requestId");
	jsonw_string(&w, x->request_id, x->request_id_len);
	jsonw_end_object(&w);
	if (w.overflow)
		return -ENOSPC;
	return http_reply(x, status ? status : e->status, "application/json", extra_headers, body,
			  w.len);
}

int http_reply_identity_error(struct http_exchange *x, unsigned status,
			      enum api_identity_error code, const char *message, const char *field,
			      const char *hint, const char *extra_headers)
{
	const struct http_error_details d = {.field = field, .hint = hint};
	return reply_detailed(x, status, &api_identity_errors[code], message, &d, extra_headers);
}

int http_reply_detailed_error(struct http_exchange *x, unsigned status, enum api_core_error code,
			      const char *message, const struct http_error_details *details,
			      const char *extra_headers)
{
	return reply_detailed(x, status, &api_core_errors[code], message, details, extra_headers);
}

int http_reply_oauth_error(struct http_exchange *x, unsigned status, enum api_oauth_error error,
			   const char *description, const char *extra_headers)
{
	const struct api_error *e = &api_oauth_errors[error];
	const char *d = description && *description ? description : e->message;
	/* RFC 6749 5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ). */
	char text[HTTP_OAUTH_DESCRIPTION_MAX];
	size_t n = 0;
	for (; d[n] && n < sizeof text; n++) {
		unsigned char c = (unsigned char)d[n];
		text[n] = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' ? (char)c : '?';
	}
	char body[HTTP_OAUTH_DESCRIPTION_MAX + 128];
	struct json_writer w;
	jsonw_init(&w, body, sizeof body);
	jsonw_start_object(&w);
	jsonw_key(&w, "error");
	jsonw_cstring(&w, e->code);
	jsonw_key(&w, "error_description");
	jsonw_string(&w, text, n);
	jsonw_end_object(&w);
	if (w.overflow)
		return -ENOSPC;
	/* 5.1, for the answers of the token endpoint: never cached. */
	return reply(x, status ? status : e->status, "application/json",
		     "Cache-Control: no-store\r\nPragma: no-cache\r\n", extra_headers, body, w.len);
}

int http_write_continue(struct http_out *out)
{
	static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	if (sizeof line - 1 > out->cap - out->len)
		return -ENOSPC;
	memcpy(out->buf + out->len, line, sizeof line - 1);
	out->len += sizeof line - 1;
	return 0;
}

void http_format_date_line(char out[HTTP_DATE_LINE_LEN], int64_t unix_seconds)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)unix_seconds;
	struct tm tm;
	gmtime_r(&t, &tm);
	char *p = PUT_LIT(out, "Date: ");
	p = put(p, days[tm.tm_wday], 3);
	p = PUT_LIT(p, ", ");
	*p++ = (char)('0' + tm.tm_mday / 10);
	*p++ = (char)('0' + tm.tm_mday % 10);
	*p++ = ' ';
	p = put(p, months[tm.tm_mon], 3);
	*p++ = ' ';
	int y = tm.tm_year + 1900;
	*p++ = (char)('0' + y / 1000 % 10);
	*p++ = (char)('0' + y / 100 % 10);
	*p++ = (char)('0' + y / 10 % 10);
	*p++ = (char)('0' + y % 10);
	*p++ = ' ';
	const int hms[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
	for (int i = 0; i < 3; i++) {
		*p++ = (char)('0' + hms[i] / 10);
		*p++ = (char)('0' + hms[i] % 10);
		*p++ = i < 2 ? ':' : ' ';
	}
	p = PUT_LIT(p, "GMT\r\n");
}
