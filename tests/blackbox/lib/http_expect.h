/*
 * What every Ringside response must carry, checked: the status line, Date,
 * Content-Length, X-Request-Id, the JSON error envelope, a header's value,
 * the /health answer. Each fails the test with what it saw.
 */
#ifndef RINGSIDE_TESTS_BB_HTTP_EXPECT_H
#define RINGSIDE_TESTS_BB_HTTP_EXPECT_H

#include <stdbool.h>
#include <stdint.h>

#include "http_client.h"

/*
 * Checks what every response carries: "HTTP/1.1", a non-empty reason,
 * exactly one Date in IMF-fixdate within a minute of now, exactly one
 * Content-Length (equal to the body length unless for_head), one
 * X-Request-Id starting with "req_". Fails the test otherwise.
 */
void expect_common(const struct http_response *r, bool for_head);

/* expect_common plus the status code. */
void expect_status(const struct http_response *r, int status, bool for_head);

/*
 * A JSON error response: status, Content-Type application/json, and a body
 * object whose "code" is `code`, "message" a non-empty string and
 * "requestId" equal to X-Request-Id.
 */
void expect_error(const struct http_response *r, int status, const char *code);

/*
 * Reads one response and fails the test unless it is the JSON error
 * `status` / `code` (expect_error) with Connection: close, and the server
 * then closes the connection within 2 s. The caller still owns c.
 */
void expect_rejected_and_closed(struct conn *c, int status, const char *code);

/* Header present with exactly this value (ASCII case-insensitive compare
 * when ci). */
void expect_header(const struct http_response *r, const char *name,
		   const char *value, bool ci);
void expect_no_header(const struct http_response *r, const char *name);

/* A 200 GET /health response, fully checked. */
void expect_health_ok(const struct http_response *r);

/* Sends `GET /health` on a new connection and checks the 200. */
void expect_health_on_port(uint16_t port);

#endif
