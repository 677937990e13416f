/* The response writer: bytes on the wire for replies and error envelopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>

#include "ringside/http_response.h"
#include "ringside/http_status.h"

static char date_line[HTTP_DATE_LINE_LEN];
static char buf[4096];
static struct http_out out;

static struct http_exchange exchange(void)
{
	out = (struct http_out){buf, 0, sizeof buf};
	http_format_date_line(date_line, 1795348800); /* 2026-11-22 12:00:00 UTC */
	struct http_exchange x = {.method = HTTP_GET, .date_line = date_line, .out = &out};
	strcpy(x.request_id, "req_test");
	x.request_id_len = 8;
	return x;
}

static void date_line_is_imf_fixdate(void **state)
{
	(void)state;
	char d[HTTP_DATE_LINE_LEN + 1] = "";
	http_format_date_line(d, 0);
	assert_string_equal(d, "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
	http_format_date_line(d, 1795348800);
	assert_string_equal(d, "Date: Sun, 22 Nov 2026 12:00:00 GMT\r\n");
	http_format_date_line(d, 951868799); /* leap day, last second */
	assert_string_equal(d, "Date: Tue, 29 Feb 2000 23:59:59 GMT\r\n");
}

static void reply_writes_status_headers_and_body(void **state)
{
	(void)state;
	struct http_exchange x = exchange();
	assert_int_equal(http_reply(&x, 200, "application/json", NULL, "{\"a\":1}", 7), 0);
	buf[out.len] = '\0';
	assert_string_equal(buf, "HTTP/1.1 200 OK\r\n"
				 "Date: Sun, 22 Nov 2026 12:00:00 GMT\r\n"
				 "Content-Type: application/json\r\n"
				 "Content-Length: 7\r\n"
				 "X-Request-Id: req_test\r\n"
				 "\r\n{\"a\":1}");
	assert_true(x.replied);
	assert_int_equal(x.status, 200);
}

static void head_reply_has_the_get_length_and_no_body(void **state)
{
	(void)state;
	struct http_exchange x = exchange();
	x.head_only = true;
	x.close = true;
	assert_int_equal(http_reply(&x, 200, NULL, "Cache-Control: no-cache\r\n", "12345", 5), 0);
	buf[out.len] = '\0';
	assert_string_equal(buf, "HTTP/1.1 200 OK\r\n"
				 "Date: Sun, 22 Nov 2026 12:00:00 GMT\r\n"
				 "Content-Length: 5\r\n"
				 "X-Request-Id: req_test\r\n"
				 "Connection: close\r\n"
				 "Cache-Control: no-cache\r\n\r\n");
}

static void http10_keep_alive_is_announced(void **state)
{
	(void)state;
	struct http_exchange x = exchange();
	x.keep_alive_10 = true;
	assert_int_equal(http_reply(&x, 204, NULL, NULL, NULL, 0), 0);
	buf[out.len] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 204 No Content\r\n"));
	assert_non_null(strstr(buf, "\r\nConnection: keep-alive\r\n"));
	/* RFC 9110 8.6: a 204 carries no Content-Length. */
	assert_null(strstr(buf, "Content-Length"));
}

static void error_envelope_escapes_and_carries_the_request_id(void **state)
{
	(void)state;
	struct http_exchange x = exchange();
	assert_int_equal(http_reply_error(&x, 400, "VALIDATION_ERROR", "bad \"x\"\n\x01",
					  "containers[3].ports[0].privatePort", "a\\b", NULL),
			 0);
	buf[out.len] = '\0';
	const char *body = strstr(buf, "\r\n\r\n") + 4;
	assert_string_equal(body, "{\"code\":\"VALIDATION_ERROR\",\"message\":\"bad \\\"x\\\"\\n\\u0001\","
				  "\"field\":\"containers[3].ports[0].privatePort\",\"hint\":\"a\\\\b\","
				  "\"requestId\":\"req_test\"}");
	assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(buf, "Content-Type: application/json\r\n"));
}

static void error_defaults_come_from_the_status_table(void **state)
{
	(void)state;
	struct http_exchange x = exchange();
	assert_int_equal(http_reply_error(&x, 431, NULL, NULL, NULL, NULL, NULL), 0);
	buf[out.len] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
	assert_non_null(strstr(buf, "{\"code\":\"HEADERS_TOO_LARGE\",\"message\":\"The request "
				    "head is larger than the server accepts.\""));
	/* A code of the route's family keeps the status's core message. */
	struct http_exchange y = exchange();
	assert_int_equal(http_reply_error(&y, 413, "VALIDATION_ERROR", NULL, NULL, NULL, NULL), 0);
	buf[out.len] = '\0';
	assert_non_null(strstr(buf, "{\"code\":\"VALIDATION_ERROR\",\"message\":\"The request "
				    "body is larger than the server accepts.\""));
	assert_string_equal(http_status_reason(599), "Unknown");
}

static void reply_that_does_not_fit_appends_nothing(void **state)
{
	(void)state;
	struct http_exchange x = exchange();
	static char big[8192];
	memset(big, 'x', sizeof big);
	out.len = 100;
	assert_int_equal(http_reply(&x, 200, "text/plain", NULL, big, sizeof big), -ENOSPC);
	assert_int_equal(out.len, 100);
	assert_false(x.replied);
	/* An envelope always fits in the reserve the server keeps. */
	out.len = out.cap - HTTP_RESPONSE_RESERVE;
	assert_int_equal(http_reply_error(&x, 500, NULL, NULL, NULL, NULL, NULL), 0);
}

static void continue_line_is_exact(void **state)
{
	(void)state;
	(void)exchange();
	assert_int_equal(http_write_continue(&out), 0);
	buf[out.len] = '\0';
	assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	out.len = out.cap - 3;
	assert_int_equal(http_write_continue(&out), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(date_line_is_imf_fixdate),
		cmocka_unit_test(reply_writes_status_headers_and_body),
		cmocka_unit_test(head_reply_has_the_get_length_and_no_body),
		cmocka_unit_test(http10_keep_alive_is_announced),
		cmocka_unit_test(error_envelope_escapes_and_carries_the_request_id),
		cmocka_unit_test(error_defaults_come_from_the_status_table),
		cmocka_unit_test(reply_that_does_not_fit_appends_nothing),
		cmocka_unit_test(continue_line_is_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
