/*
 * The HTTP statuses Ringside sends and their reason phrases (RFC 9110
 * section 15), generated once (libuv's UV_ERRNO_MAP style). The JSON
 * error codes and messages of each status are the contract families'
 * (api_errors.h), not HTTP's.
 */
#ifndef RINGSIDE_HTTP_STATUS_H
#define RINGSIDE_HTTP_STATUS_H

#define HTTP_STATUS_MAP(X)                                                             \
	X(100, "Continue")                                                             \
	X(200, "OK")                                                                   \
	X(201, "Created")                                                              \
	X(202, "Accepted")                                                             \
	X(204, "No Content")                                                           \
	X(400, "Bad Request")                                                          \
	X(401, "Unauthorized")                                                         \
	X(403, "Forbidden")                                                            \
	X(404, "Not Found")                                                            \
	X(405, "Method Not Allowed")                                                   \
	X(408, "Request Timeout")                                                      \
	X(409, "Conflict")                                                             \
	X(413, "Content Too Large")                                                    \
	X(414, "URI Too Long")                                                         \
	X(415, "Unsupported Media Type")                                               \
	X(417, "Expectation Failed")                                                   \
	X(422, "Unprocessable Content")                                                \
	X(429, "Too Many Requests")                                                    \
	X(431, "Request Header Fields Too Large")                                      \
	X(500, "Internal Server Error")                                                \
	X(501, "Not Implemented")                                                      \
	X(503, "Service Unavailable")                                                  \
	X(504, "Gateway Timeout")                                                      \
	X(505, "HTTP Version Not Supported")

/* "Not Found"; "Unknown" for a status not in the table. */
const char *http_status_reason(unsigned status);

#endif
