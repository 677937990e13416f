/*
 * An agent's side of the API, as the identity and analytics tests use it:
 * client authentication by Basic, calls with a Bearer token, a token
 * request, an ingest report.
 */
#ifndef RINGSIDE_TESTS_BB_AGENT_API_H
#define RINGSIDE_TESTS_BB_AGENT_API_H

#include <stddef.h>
#include <stdint.h>

struct http_response;

/* "Authorization: Basic ...\r\n" of id:secret, each form-urlencoded first
 * (RFC 6749 2.3.1). Fails the test if it does not fit out. */
void h_basic_header(const char *id, const char *secret, char *out, size_t cap);

/* method path with "Authorization: Bearer <bearer>" and a JSON body (NULL:
 * none) to the server at port; the answer in r. */
void h_bearer_call(uint16_t port, const char *method, const char *path, const char *bearer,
		   const char *json, struct http_response *r);

/* POST /api/v1/token, client_credentials with Basic (scope NULL: none):
 * the status; the access token in token when 200 (fails the test if a 200
 * has none). */
int h_token_request(uint16_t port, const char *id, const char *secret, const char *scope,
		    char *token, size_t cap);

/* One report (samples/ingest-minimal.json) with the token: the status
 * (out, when given, gets the answer). */
int h_ingest(uint16_t port, const char *token, struct http_response *out);

#endif
