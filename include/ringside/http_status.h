/*
 * The one table of HTTP statuses Ringside sends: reason phrase, the JSON
 * error `code` of the envelope (DESIGN.md "Error envelope"), and the
 * default message. Generated once (libuv's UV_ERRNO_MAP style) for the
 * lookup functions below.
 */
#ifndef RINGSIDE_HTTP_STATUS_H
#define RINGSIDE_HTTP_STATUS_H

#define HTTP_STATUS_MAP(X)                                                             \
	X(100, "Continue", NULL, NULL)                                                 \
	X(200, "OK", NULL, NULL)                                                       \
	X(202, "Accepted", NULL, NULL)                                                 \
	X(204, "No Content", NULL, NULL)                                               \
	X(400, "Bad Request", "BAD_REQUEST", "The request is malformed.")              \
	X(401, "Unauthorized", "UNAUTHORIZED", "Missing or invalid bearer token.")     \
	X(403, "Forbidden", "FORBIDDEN", "The token does not allow this.")             \
	X(404, "Not Found", "NOT_FOUND", "No resource at this path.")                  \
	X(405, "Method Not Allowed", "METHOD_NOT_ALLOWED",                             \
	  "This method is not allowed on this path.")                                  \
	X(408, "Request Timeout", "REQUEST_TIMEOUT",                                   \
	  "The request was not received in time.")                                     \
	X(413, "Content Too Large", "PAYLOAD_TOO_LARGE",                               \
	  "The request body is larger than the server accepts.")                       \
	X(414, "URI Too Long", "URI_TOO_LONG",                                         \
	  "The request target is longer than the server accepts.")                     \
	X(415, "Unsupported Media Type", "UNSUPPORTED_MEDIA_TYPE",                     \
	  "The request body has a media type this endpoint does not accept.")         \
	X(417, "Expectation Failed", "EXPECTATION_FAILED",                             \
	  "Only the 100-continue expectation is supported.")                           \
	X(429, "Too Many Requests", "RATE_LIMITED", "Too many requests.")             \
	X(431, "Request Header Fields Too Large", "HEADERS_TOO_LARGE",                 \
	  "The request head is larger than the server accepts.")                       \
	X(500, "Internal Server Error", "INTERNAL_SERVER_ERROR",                       \
	  "An unexpected error occurred. Please try again later.")                     \
	X(501, "Not Implemented", "NOT_IMPLEMENTED",                                   \
	  "The server does not support this transfer coding.")                         \
	X(503, "Service Unavailable", "SERVICE_UNAVAILABLE",                           \
	  "The server is at capacity or shutting down. Retry later.")                  \
	X(505, "HTTP Version Not Supported", "HTTP_VERSION_NOT_SUPPORTED",             \
	  "Only HTTP/1.0 and HTTP/1.1 are supported.")

/* "Not Found"; "Unknown" for a status not in the table. */
const char *http_status_reason(unsigned status);
/* "NOT_FOUND"; "INTERNAL_SERVER_ERROR" for a status without a code. */
const char *http_status_code(unsigned status);
/* The table's default message for the status. */
const char *http_status_message(unsigned status);

#endif
