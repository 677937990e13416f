/*
 * The error codes Ringside sends, one table per contract family, each
 * generated once (libuv's UV_ERRNO_MAP style) into an enum, the code
 * strings, the default statuses and the default messages. Call sites name
 * an error by its enum, never by a string: a code on the wire is always
 * one of its family's table.
 *
 *   CORE   the envelope {code, message, field?, hint?, requestId} of seed
 *          000 (/metrics) and 002 (analytics), which say
 *          INTERNAL_SERVER_ERROR, and of the protocol errors the server
 *          answers itself (openapi/core.yaml's status table)
 *   AGENT  the same envelope with seed 003's codes (ingest, /latest),
 *          which say INTERNAL
 *   IDENTITY  the identity issue's envelope {code, message, details?,
 *          requestId} of the agent registry and its credentials
 *          (/api/v1/agents..., openapi/identity.yaml)
 *   OAUTH  RFC 6749 section 5.2's {error, error_description} of the
 *          token endpoint, with RFC 7009's and RFC 6750's codes
 *
 * Each row is X(NAME, code, status, message): the enum constant is
 * API_<FAMILY>_<NAME>, code is what is sent, status the one it is sent
 * with unless the caller says otherwise, message the default message
 * (error_description). A unit test (tests/unit/test_api_errors.c) holds
 * every code to its seed's or RFC's text.
 */
#ifndef RINGSIDE_API_ERRORS_H
#define RINGSIDE_API_ERRORS_H

#include <stdint.h>

/* The first row of a status is the code the server answers that status
 * with by itself (api_core_error_of). Seed 002 names VALIDATION_ERROR,
 * UNAUTHORIZED, NOT_FOUND and INTERNAL_SERVER_ERROR, and gives the
 * messages of the last two; the other codes are Ringside's, written down
 * in openapi/core.yaml. */
#define API_CORE_ERRORS(X)                                                             \
	X(BAD_REQUEST, "BAD_REQUEST", 400, "The request is malformed.")                \
	X(VALIDATION_ERROR, "VALIDATION_ERROR", 400, "The request is not valid.")      \
	X(UNAUTHORIZED, "UNAUTHORIZED", 401,                                           \
	  "A valid Bearer token is required to access this resource.")                 \
	X(FORBIDDEN, "FORBIDDEN", 403, "The token does not allow this.")               \
	X(NOT_FOUND, "NOT_FOUND", 404, "No resource at this path.")                    \
	X(METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", 405,                               \
	  "This method is not allowed on this path.")                                  \
	X(REQUEST_TIMEOUT, "REQUEST_TIMEOUT", 408, "The request was not received in time.") \
	X(PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", 413,                                 \
	  "The request body is larger than the server accepts.")                       \
	X(URI_TOO_LONG, "URI_TOO_LONG", 414,                                           \
	  "The request target is longer than the server accepts.")                     \
	X(UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", 415,                       \
	  "The request body has a media type this endpoint does not accept.")         \
	X(EXPECTATION_FAILED, "EXPECTATION_FAILED", 417,                               \
	  "Only the 100-continue expectation is supported.")                           \
	X(RATE_LIMITED, "RATE_LIMITED", 429, "Too many requests.")                     \
	X(HEADERS_TOO_LARGE, "HEADERS_TOO_LARGE", 431,                                 \
	  "The request head is larger than the server accepts.")                       \
	X(INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", 500,                         \
	  "An unexpected error occurred. Please try again later.")                     \
	X(NOT_IMPLEMENTED, "NOT_IMPLEMENTED", 501,                                     \
	  "The server does not support this transfer coding.")                         \
	X(SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", 503,                             \
	  "The server is at capacity or shutting down. Retry later.")                  \
	X(GATEWAY_TIMEOUT, "GATEWAY_TIMEOUT", 504,                                     \
	  "The server did not get an answer in time. Retry.")                           \
	X(HTTP_VERSION_NOT_SUPPORTED, "HTTP_VERSION_NOT_SUPPORTED", 505,               \
	  "Only HTTP/1.0 and HTTP/1.1 are supported.")

/* Seed 003's "Allowed values", in its order. The statuses are ours (the
 * seed gives none but 400 and 401); the first row of a status is the
 * code the server answers it with by itself (api_agent_error_of). */
#define API_AGENT_ERRORS(X)                                                            \
	X(VALIDATION_ERROR, "VALIDATION_ERROR", 400,                                   \
	  "The request is not what this endpoint accepts.")                            \
	X(READONLY_FIELD, "READONLY_FIELD", 400, "This field is read-only.")          \
	X(UNAUTHORIZED, "UNAUTHORIZED", 401, "Missing or invalid bearer token.")       \
	X(FORBIDDEN_SCOPE, "FORBIDDEN_SCOPE", 403, "The token lacks the scope this needs.") \
	X(FORBIDDEN_ROLE, "FORBIDDEN_ROLE", 403, "The caller's role does not allow this.") \
	X(NOT_FOUND, "NOT_FOUND", 404, "No resource at this path.")                    \
	X(CONFLICT, "CONFLICT", 409, "The request conflicts with the resource's state.") \
	X(IDEMPOTENCY_KEY_REUSED, "IDEMPOTENCY_KEY_REUSED", 422,                       \
	  "This Idempotency-Key was used with another request.")                       \
	X(RATE_LIMITED, "RATE_LIMITED", 429, "Too many requests.")                     \
	X(SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", 503,                             \
	  "The service is unavailable. Retry later.")                                  \
	X(INTERNAL, "INTERNAL", 500, "An unexpected error occurred. Please try again later.")

/* The identity issue's codes (VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN,
 * AGENT_NOT_FOUND, CREDENTIAL_NOT_FOUND, CONFLICT with their statuses),
 * then the server's own answers on those routes, named as the core
 * family names them. The first row of a status is the code the server
 * answers it with by itself (api_identity_error_code). */
#define API_IDENTITY_ERRORS(X)                                                         \
	X(VALIDATION_ERROR, "VALIDATION_ERROR", 400, "The request is not valid.")      \
	X(UNAUTHORIZED, "UNAUTHORIZED", 401, "A valid Bearer token is required.")      \
	X(FORBIDDEN, "FORBIDDEN", 403, "The token does not allow this.")               \
	X(AGENT_NOT_FOUND, "AGENT_NOT_FOUND", 404, "No such agent.")                   \
	X(CREDENTIAL_NOT_FOUND, "CREDENTIAL_NOT_FOUND", 404, "No such credential.")    \
	X(CONFLICT, "CONFLICT", 409, "The request conflicts with the agent's state.")  \
	X(PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", 413,                                 \
	  "The request body is larger than the server accepts.")                       \
	X(INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", 500,                         \
	  "An unexpected error occurred. Please try again later.")                     \
	X(SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", 503,                             \
	  "The service is unavailable. Retry later.")                                  \
	X(GATEWAY_TIMEOUT, "GATEWAY_TIMEOUT", 504,                                     \
	  "The server did not get an answer in time. Retry.")

/* RFC 6749 section 5.2 (the token endpoint), then RFC 7009 section 2.2.1
 * (revocation) and RFC 6750 section 3.1 (a resource's answer to a bearer
 * token), then section 4.1.2.1's temporarily_unavailable and
 * server_error, which the token endpoints send for 503 (the database is
 * down, RFC 7009 2.2.1's case; a client over its rate, with 429) and
 * 500. Section 5.2: 400, but 401 for invalid_client (with a
 * WWW-Authenticate of the scheme the client used). Descriptions keep to
 * the characters 5.2 allows (%x20-21 / %x23-5B / %x5D-7E). */
#define API_OAUTH_ERRORS(X)                                                            \
	X(INVALID_REQUEST, "invalid_request", 400,                                     \
	  "The request is missing a parameter, repeats one, or is otherwise malformed.") \
	X(INVALID_CLIENT, "invalid_client", 401, "Client authentication failed.")      \
	X(INVALID_GRANT, "invalid_grant", 400,                                         \
	  "The grant is invalid, expired or revoked.")                                 \
	X(UNAUTHORIZED_CLIENT, "unauthorized_client", 400,                             \
	  "This client may not use this grant type.")                                  \
	X(UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type", 400,                       \
	  "Only the client_credentials grant type is supported.")                      \
	X(INVALID_SCOPE, "invalid_scope", 400,                                         \
	  "The requested scope is invalid, unknown, or beyond what this client may have.") \
	X(UNSUPPORTED_TOKEN_TYPE, "unsupported_token_type", 400,                       \
	  "This server does not revoke tokens of this type.")                          \
	X(INVALID_TOKEN, "invalid_token", 401,                                         \
	  "The access token is invalid, expired or revoked.")                          \
	X(INSUFFICIENT_SCOPE, "insufficient_scope", 403,                               \
	  "The access token lacks the scope this needs.")                              \
	X(TEMPORARILY_UNAVAILABLE, "temporarily_unavailable", 503,                     \
	  "The server cannot handle the request now. Retry later.")                    \
	X(SERVER_ERROR, "server_error", 500,                                           \
	  "The server met an unexpected condition.")

#define API_CORE_ENUM_(name, code, status, message) API_CORE_##name,
#define API_AGENT_ENUM_(name, code, status, message) API_AGENT_##name,
#define API_IDENTITY_ENUM_(name, code, status, message) API_IDENTITY_##name,
#define API_OAUTH_ENUM_(name, code, status, message) API_OAUTH_##name,
enum api_core_error { API_CORE_ERRORS(API_CORE_ENUM_) API_CORE_COUNT };
enum api_agent_error { API_AGENT_ERRORS(API_AGENT_ENUM_) API_AGENT_COUNT };
enum api_identity_error { API_IDENTITY_ERRORS(API_IDENTITY_ENUM_) API_IDENTITY_COUNT };
enum api_oauth_error { API_OAUTH_ERRORS(API_OAUTH_ENUM_) API_OAUTH_COUNT };

/* One row of a table. */
struct api_error {
	const char *code;    /* as sent: "INTERNAL_SERVER_ERROR", "invalid_client" */
	const char *message; /* the default message (error_description) */
	uint16_t status;     /* the default status */
};

/* The tables, indexed by their enum. Static data, any thread. */
extern const struct api_error api_core_errors[API_CORE_COUNT];
extern const struct api_error api_agent_errors[API_AGENT_COUNT];
extern const struct api_error api_identity_errors[API_IDENTITY_COUNT];
extern const struct api_error api_oauth_errors[API_OAUTH_COUNT];

/* The error a family answers a status with that the server sends by
 * itself (a 413 for a body over --max-body-bytes, a 408, a 500 when a
 * handler failed to answer):
 *   core:  the status's first row; another 4xx is BAD_REQUEST, anything
 *          else INTERNAL_SERVER_ERROR;
 *   agent: the status's first row; other 5xx but 501 are INTERNAL, and
 *          the rest VALIDATION_ERROR: seed 003 has one code for every
 *          request the client must change (too large, wrong media type,
 *          a method served nowhere) and one for the server's failures. */
enum api_core_error api_core_error_of(unsigned status);
enum api_agent_error api_agent_error_of(unsigned status);

/* api_agent_errors[api_agent_error_of(status)].code: the agent routes'
 * struct http_handler.error_code. */
const char *api_agent_error_code(unsigned status);

/* The identity routes' struct http_handler.error_code: the status's
 * first row of the identity table; a status it does not name (405, 408,
 * 415...) takes the core family's code, which says what happened. */
const char *api_identity_error_code(unsigned status);

#endif
