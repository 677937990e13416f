/*
 * The access log's line of one exchange (--access-log), in logfmt: ts,
 * remote, method, route, path, status, bytes (the whole response),
 * duration_us and request_id. Where the lines go, and when, is the
 * host's business (struct server_host: log_reserve, log_commit).
 */
#include "server_int.h"

#include <string.h>

#include "ringside/decimal.h"
#include "ringside/rfc3339.h"
#include "ringside/router.h"

static char *put_mem(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_STR(p, s) put_mem((p), (s), strlen(s))

/* A logfmt value: as is when it is plain, else quoted with \" \\ and
 * \xHH escapes, so a client's path cannot forge fields or lines. At most
 * 4 * n + 2 bytes. */
static char *put_logfmt_value(char *p, const char *s, size_t n)
{
	bool plain = n > 0;
	for (size_t i = 0; i < n && plain; i++)
		plain = s[i] > ' ' && s[i] < 0x7f && s[i] != '"' && s[i] != '\\' && s[i] != '=';
	if (plain)
		return put_mem(p, s, n);
	*p++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)s[i];
		if (b == '"' || b == '\\') {
			*p++ = '\\';
			*p++ = (char)b;
		} else if (b < ' ' || b >= 0x7f) {
			*p++ = '\\';
			*p++ = 'x';
			*p++ = server_hex_digits[b >> 4];
			*p++ = server_hex_digits[b & 15];
		} else {
			*p++ = (char)b;
		}
	}
	*p++ = '"';
	return p;
}

/* Room a line may need: the fixed fields and the escaped path. */
#define LOG_LINE_MAX (400u + 4u * SERVER_LOG_PATH_MAX)

void access_line_write(struct server *s, struct server_conn *c, uint64_t end_ns)
{
	char *start = s->host->log_reserve(s, LOG_LINE_MAX), *p = start;
	if (!p)
		return;
	const struct http_exchange *x = &c->x;
	p = PUT_STR(p, "ts=");
	rfc3339_format_ms(p, s->now_wall_ms);
	p += RFC3339_MS_LEN;
	p = PUT_STR(p, " remote=");
	p = PUT_STR(p, s->host->peer(s, c));
	p = PUT_STR(p, " method=");
	p = PUT_STR(p, http_method_name(x->method));
	p = PUT_STR(p, " route=");
	p = PUT_STR(p, x->route ? x->route->pattern : "-");
	p = PUT_STR(p, " path=");
	p = c->log_path_len ? put_logfmt_value(p, c->log_path, c->log_path_len) : PUT_STR(p, "-");
	p = PUT_STR(p, " status=");
	p = decimal_u64(p, x->status);
	p = PUT_STR(p, " bytes=");
	p = decimal_u64(p, x->reply_bytes);
	p = PUT_STR(p, " duration_us=");
	p = decimal_u64(p, end_ns > c->request_start_ns ? (end_ns - c->request_start_ns) / 1000 : 0);
	p = PUT_STR(p, " request_id=");
	p = put_mem(p, x->request_id, x->request_id_len);
	*p++ = '\n';
	s->host->log_commit(s, (size_t)(p - start));
}
