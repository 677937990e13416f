/*
 * Checks on Ringside's responses: see http_expect.h.
 */
#include "http_expect.h"
#include "check.h"
#include "http_fields.h"
#include "json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const wkdays[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static int two(const char *p)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/* RFC 9110 section 5.6.7 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
 * Returns the time, or -1 (with why) if malformed. */
static time_t parse_imf_fixdate(const char *d, const char **why)
{
	*why = NULL;
	if (strlen(d) != 29) {
		*why = "length is not 29";
		return -1;
	}
	int wd = -1, mon = -1;

	for (int i = 0; i < 7; i++)
		if (strncmp(d, wkdays[i], 3) == 0)
			wd = i;
	for (int i = 0; i < 12; i++)
		if (strncmp(d + 8, months[i], 3) == 0)
			mon = i;
	int day = two(d + 5), y1 = two(d + 12), y2 = two(d + 14);
	int hh = two(d + 17), mm = two(d + 20), ss = two(d + 23);

	if (wd < 0 || d[3] != ',' || d[4] != ' ' || day < 1 || d[7] != ' ' ||
	    mon < 0 || d[11] != ' ' || y1 < 0 || y2 < 0 || d[16] != ' ' ||
	    hh < 0 || hh > 23 || d[19] != ':' || mm < 0 || mm > 59 ||
	    d[22] != ':' || ss < 0 || ss > 60 || strcmp(d + 25, " GMT") != 0) {
		*why = "not IMF-fixdate";
		return -1;
	}
	struct tm tm = { .tm_year = y1 * 100 + y2 - 1900, .tm_mon = mon,
			 .tm_mday = day, .tm_hour = hh, .tm_min = mm,
			 .tm_sec = ss };
	time_t t = timegm(&tm);

	if (tm.tm_mday != day || tm.tm_mon != mon) {
		*why = "no such day";
		return -1;
	}
	if (tm.tm_wday != wd) {
		*why = "wrong day of the week";
		return -1;
	}
	return t;
}

void expect_common(const struct http_response *r, bool for_head)
{
	CHECK(r->minor == 1, "status line \"%s\": expected HTTP/1.1",
	      r->raw_status_line);
	CHECK(r->reason[0] != '\0', "status line \"%s\": empty reason phrase",
	      r->raw_status_line);

	CHECK(resp_header_count(r, "Date") == 1,
	      "expected exactly one Date field, got %d (status %d)",
	      resp_header_count(r, "Date"), r->status);
	const char *date = resp_header(r, "Date"), *why;
	time_t t = parse_imf_fixdate(date, &why);

	CHECK(t != (time_t)-1, "Date \"%s\" is not an IMF-fixdate: %s", date, why);
	time_t now = time(NULL);

	CHECK(t >= now - 60 && t <= now + 60,
	      "Date \"%s\" is %lld s away from the current time", date,
	      (long long)(t - now));

	/* RFC 9110 8.6: none in a 1xx or 204 (they have no body). */
	int want_length = r->status >= 200 && r->status != 204;
	CHECK(resp_header_count(r, "Content-Length") == want_length,
	      "expected %d Content-Length field, got %d (status %d)", want_length,
	      resp_header_count(r, "Content-Length"), r->status);
	if (!for_head && !(r->status >= 100 && r->status < 200))
		CHECK(r->content_length == r->body_len,
		      "Content-Length %llu but %zu body bytes",
		      (unsigned long long)r->content_length, r->body_len);

	CHECK(resp_header_count(r, "X-Request-Id") == 1,
	      "expected exactly one X-Request-Id field, got %d (status %d)",
	      resp_header_count(r, "X-Request-Id"), r->status);
	const char *id = resp_header(r, "X-Request-Id");

	CHECK(strncmp(id, "req_", 4) == 0 && strlen(id) > 4,
	      "X-Request-Id \"%s\" does not start with \"req_\" followed by an id",
	      id);
}

void expect_status(const struct http_response *r, int status, bool for_head)
{
	CHECK(r->status == status, "expected status %d, got \"%s\" with body: %.400s",
	      status, r->raw_status_line, r->body);
	expect_common(r, for_head);
}

void expect_header(const struct http_response *r, const char *name,
		   const char *value, bool ci)
{
	const char *v = resp_header(r, name);

	CHECK(v != NULL, "expected header %s: %s, it is missing (status %d)",
	      name, value, r->status);
	CHECK(ci ? strcasecmp(v, value) == 0 : strcmp(v, value) == 0,
	      "expected header %s: %s, got %s: %s", name, value, name, v);
}

void expect_no_header(const struct http_response *r, const char *name)
{
	const char *v = resp_header(r, name);

	CHECK(v == NULL, "unexpected header %s: %s (status %d)", name, v,
	      r->status);
}

/* Content-Type application/json, or a failure naming what (e.g. "error
 * 404") expected it. */
static void expect_json_type(const struct http_response *r, const char *what)
{
	const char *ct = resp_header(r, "Content-Type");

	CHECK(resp_content_type_is(r, "application/json"),
	      "%s: expected Content-Type application/json, got %s", what,
	      ct ? ct : "(none)");
}

void expect_error(const struct http_response *r, int status, const char *code)
{
	char what[32];

	expect_status(r, status, false);
	snprintf(what, sizeof(what), "error %d", status);
	expect_json_type(r, what);

	const char *b = r->body;

	while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')
		b++;
	size_t n = strlen(b);

	while (n && (b[n - 1] == ' ' || b[n - 1] == '\n' || b[n - 1] == '\r'))
		n--;
	CHECK(*b == '{' && n && b[n - 1] == '}',
	      "error %d: body is not a JSON object: %.400s", status, r->body);

	char got[256];

	CHECK(json_get_string(r->body, "code", got, sizeof(got)),
	      "error %d: no string \"code\" in body %.400s", status, r->body);
	CHECK(strcmp(got, code) == 0, "error %d: expected code \"%s\", got \"%s\"",
	      status, code, got);
	CHECK(json_get_string(r->body, "message", got, sizeof(got)) && got[0],
	      "error %d: no non-empty string \"message\" in body %.400s", status,
	      r->body);
	CHECK(json_get_string(r->body, "requestId", got, sizeof(got)),
	      "error %d: no string \"requestId\" in body %.400s", status, r->body);
	const char *id = resp_header(r, "X-Request-Id");

	CHECK(id && strcmp(got, id) == 0,
	      "error %d: requestId \"%s\" differs from X-Request-Id \"%s\"",
	      status, got, id ? id : "(none)");
}

void expect_rejected_and_closed(struct conn *c, int status, const char *code)
{
	struct http_response *r = resp_new();

	expect_response(c, r, false);
	expect_error(r, status, code);
	CHECK(resp_connection_has(r, "close"),
	      "%d: expected Connection: close, got %s", status,
	      resp_header(r, "Connection") ? resp_header(r, "Connection") : "(none)");
	expect_conn_closed(c, 2000);
	free(r);
}

void expect_health_ok(const struct http_response *r)
{
	expect_status(r, 200, false);
	expect_json_type(r, "GET /health");
	CHECK(strcmp(r->body, "{\"status\":\"ok\"}") == 0 && r->body_len == 15,
	      "GET /health: expected body {\"status\":\"ok\"}, got \"%s\"", r->body);
}

void expect_health_on_port(uint16_t port)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);
	conn_close(c);
}
