/*
 * Black-box: malformed requests. Each one must get its status, the JSON
 * error envelope, `Connection: close`, and then the server must close the
 * connection (after a framing error nothing that follows can be trusted:
 * RFC 9112 section 6.3 and 11.2, request smuggling).
 * One server with default flags for the whole group.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

struct bad_case {
	const char *req;
	size_t len;        /* 0 = strlen(req); set for requests with NUL */
	int status;
	const char *code;
};

#define H "Host: localhost\r\n"

#define BAD_CASES(X)                                                          \
	X(content_length_with_transfer_encoding_is_400,                       \
	  "POST /health HTTP/1.1\r\n" H "Content-Length: 5\r\n"               \
	  "Transfer-Encoding: chunked\r\n\r\n", 0, 400, "BAD_REQUEST")        \
	X(transfer_encoding_with_content_length_is_400,                       \
	  "POST /health HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"      \
	  "Content-Length: 5\r\n\r\n", 0, 400, "BAD_REQUEST")                 \
	X(content_length_with_plus_sign_is_400,                               \
	  "POST /health HTTP/1.1\r\n" H "Content-Length: +3\r\n\r\n", 0, 400, \
	  "BAD_REQUEST")                                                      \
	X(content_length_in_hex_is_400,                                       \
	  "POST /health HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", 0, 400,\
	  "BAD_REQUEST")                                                      \
	X(empty_content_length_is_400,                                        \
	  "POST /health HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", 0, 400,   \
	  "BAD_REQUEST")                                                      \
	X(overflowing_content_length_is_400,                                  \
	  "POST /health HTTP/1.1\r\n" H                                       \
	  "Content-Length: 99999999999999999999999\r\n\r\n", 0, 400,          \
	  "BAD_REQUEST")                                                      \
	X(two_different_content_lengths_is_400,                               \
	  "POST /health HTTP/1.1\r\n" H "Content-Length: 5\r\n"               \
	  "Content-Length: 6\r\n\r\n", 0, 400, "BAD_REQUEST")                 \
	X(obs_fold_is_400,                                                    \
	  "GET /health HTTP/1.1\r\n" H "X-Long: a\r\n b\r\n\r\n", 0, 400,     \
	  "BAD_REQUEST")                                                      \
	X(obs_fold_with_tab_is_400,                                           \
	  "GET /health HTTP/1.1\r\n" H "X-Long: a\r\n\tb\r\n\r\n", 0, 400,    \
	  "BAD_REQUEST")                                                      \
	X(bare_cr_in_header_value_is_400,                                     \
	  "GET /health HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", 0, 400,           \
	  "BAD_REQUEST")                                                      \
	X(bare_lf_header_line_ending_is_400,                                  \
	  "GET /health HTTP/1.1\r\n" H "X-A: b\nX-B: c\r\n\r\n", 0, 400,      \
	  "BAD_REQUEST")                                                      \
	X(bare_lf_request_line_ending_is_400,                                 \
	  "GET /health HTTP/1.1\n" H "\r\n", 0, 400, "BAD_REQUEST")           \
	X(all_bare_lf_request_is_400,                                         \
	  "GET /health HTTP/1.1\nHost: localhost\n\n", 0, 400, "BAD_REQUEST") \
	X(nul_in_header_value_is_400,                                         \
	  "GET /health HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n",                   \
	  sizeof("GET /health HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n") - 1, 400,  \
	  "BAD_REQUEST")                                                      \
	X(control_byte_0x01_in_header_value_is_400,                           \
	  "GET /health HTTP/1.1\r\n" H "X-A: a\001b\r\n\r\n", 0, 400,         \
	  "BAD_REQUEST")                                                      \
	X(space_between_field_name_and_colon_is_400,                          \
	  "GET /health HTTP/1.1\r\n" H "X-A : b\r\n\r\n", 0, 400,             \
	  "BAD_REQUEST")                                                      \
	X(tab_between_field_name_and_colon_is_400,                            \
	  "GET /health HTTP/1.1\r\n" H "X-A\t: b\r\n\r\n", 0, 400,            \
	  "BAD_REQUEST")                                                      \
	X(at_sign_in_field_name_is_400,                                       \
	  "GET /health HTTP/1.1\r\n" H "Fo@o: x\r\n\r\n", 0, 400,             \
	  "BAD_REQUEST")                                                      \
	X(space_inside_field_name_is_400,                                     \
	  "GET /health HTTP/1.1\r\n" H "Foo Bar: x\r\n\r\n", 0, 400,          \
	  "BAD_REQUEST")                                                      \
	X(http11_without_host_is_400,                                         \
	  "GET /health HTTP/1.1\r\nAccept: */*\r\n\r\n", 0, 400,              \
	  "BAD_REQUEST")                                                      \
	X(two_host_fields_is_400,                                             \
	  "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400,       \
	  "BAD_REQUEST")                                                      \
	/* RFC 9112 3.2: Host must be uri-host [":" port] (RFC 3986). */      \
	X(host_with_non_numeric_port_is_400,                                  \
	  "GET /health HTTP/1.1\r\nHost: probe:abc\r\n\r\n", 0, 400,          \
	  "BAD_REQUEST")                                                      \
	X(host_with_two_ports_is_400,                                         \
	  "GET /health HTTP/1.1\r\nHost: probe:80:80\r\n\r\n", 0, 400,        \
	  "BAD_REQUEST")                                                      \
	X(host_with_bad_percent_encoding_is_400,                              \
	  "GET /health HTTP/1.1\r\nHost: %zz\r\n\r\n", 0, 400, "BAD_REQUEST") \
	X(host_with_port_over_65535_is_400,                                   \
	  "GET /health HTTP/1.1\r\nHost: localhost:65536\r\n\r\n", 0, 400,    \
	  "BAD_REQUEST")                                                      \
	X(host_with_unclosed_ipv6_literal_is_400,                             \
	  "GET /health HTTP/1.1\r\nHost: [::1:3000\r\n\r\n", 0, 400,          \
	  "BAD_REQUEST")                                                      \
	X(host_with_userinfo_is_400,                                          \
	  "GET /health HTTP/1.1\r\nHost: user@localhost\r\n\r\n", 0, 400,     \
	  "BAD_REQUEST")                                                      \
	X(absolute_form_with_invalid_authority_is_400,                        \
	  "GET http://a:b:c/health HTTP/1.1\r\n" H "\r\n", 0, 400,            \
	  "BAD_REQUEST")                                                      \
	/* Authorization and Content-Type are not lists: a second line is     \
	 * a 400, whichever one a handler would have read. */                 \
	X(two_authorization_fields_on_ingest_is_400,                          \
	  "POST /api/metrics/ingest HTTP/1.1\r\n" H                           \
	  "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln\r\n"           \
	  "Authorization: garbage\r\n"                                        \
	  "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",    \
	  0, 400, "BAD_REQUEST")                                              \
	X(authorization_fields_in_different_case_is_400,                      \
	  "POST /api/metrics/ingest HTTP/1.1\r\n" H                           \
	  "authorization: Bearer a\r\nAUTHORIZATION: Bearer a\r\n"            \
	  "Content-Length: 0\r\n\r\n", 0, 400, "BAD_REQUEST")                 \
	X(two_content_type_fields_is_400,                                     \
	  "POST /api/metrics/ingest HTTP/1.1\r\n" H                           \
	  "Content-Type: application/json\r\nContent-Type: text/plain\r\n"    \
	  "Content-Length: 2\r\n\r\n{}", 0, 400, "BAD_REQUEST")               \
	X(non_hex_chunk_size_is_400,                                          \
	  "POST /health HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"  \
	  "zz\r\n", 0, 400, "BAD_REQUEST")                                    \
	X(overflowing_chunk_size_is_400,                                      \
	  "POST /health HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"  \
	  "ffffffffffffffffffff\r\n", 0, 400, "BAD_REQUEST")                  \
	X(gzip_transfer_encoding_is_501,                                      \
	  "POST /health HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 0, \
	  501, "NOT_IMPLEMENTED")                                             \
	X(http_2_0_request_line_is_505,                                       \
	  "GET / HTTP/2.0\r\n" H "\r\n", 0, 505,                              \
	  "HTTP_VERSION_NOT_SUPPORTED")                                       \
	X(unknown_expectation_is_417,                                         \
	  "GET /health HTTP/1.1\r\n" H "Expect: something\r\n\r\n", 0, 417,   \
	  "EXPECTATION_FAILED")

#define X_CASE(name, req, len, status, code) \
	static const struct bad_case case_##name = { req, len, status, code };
BAD_CASES(X_CASE)
#undef X_CASE

static void run_bad_case(void **state)
{
	const struct bad_case *bc = *state;
	const struct server *s = h_group_server();
	struct conn *c = conn_open(s->port);
	size_t len = bc->len ? bc->len : strlen(bc->req);

	conn_send(c, bc->req, len);
	expect_rejected_and_closed(c, bc->status, bc->code);
	conn_close(c);
}

/* cmocka gives a non-NULL group state to every test in place of its
 * initial_state, so the server is reached through h_group_server(). */
static int bad_input_setup(void **state)
{
	int rc = h_group_setup(state);

	*state = NULL;
	return rc;
}

/* After all the garbage, the server still serves. */
static void server_still_serves_after_bad_input(void **state)
{
	(void)state;
	expect_health_on_port(h_group_server()->port);
}

int main(void)
{
#define X_TEST(id, req, len, status, code)                                   \
	{ .name = #id, .test_func = run_bad_case,                            \
	  .teardown_func = h_test_teardown,                                  \
	  .initial_state = (void *)&case_##id },
	const struct CMUnitTest tests[] = {
		BAD_CASES(X_TEST)
		BB_TEST(server_still_serves_after_bad_input),
	};
#undef X_TEST

	h_init();
	return H_RUN_GROUP("blackbox_bad_input", tests, bad_input_setup,
			   h_group_teardown);
}
