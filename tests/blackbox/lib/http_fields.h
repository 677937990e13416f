/*
 * A response's header fields, as conn_read_response split them: the value
 * of a field, how many times it came, whether a list field carries a
 * token, whether the media type is the one expected.
 */
#ifndef RINGSIDE_TESTS_BB_HTTP_FIELDS_H
#define RINGSIDE_TESTS_BB_HTTP_FIELDS_H

#include <stdbool.h>

#include "http_client.h"

/* Value of the first header with that name (case-insensitive), or NULL. */
const char *resp_header(const struct http_response *r, const char *name);
/* How many headers carry that name. */
int resp_header_count(const struct http_response *r, const char *name);

/* true if some field `name` lists `token` in its comma-separated value
 * (both compared case-insensitively, blanks around list items ignored). */
bool resp_header_has_token(const struct http_response *r, const char *name,
			   const char *token);

/* resp_header_has_token(r, "Connection", token). */
bool resp_connection_has(const struct http_response *r, const char *token);

/* true if Content-Type is present and its media type (before any
 * `;` parameters) is `type`, case-insensitively. */
bool resp_content_type_is(const struct http_response *r, const char *type);

#endif
