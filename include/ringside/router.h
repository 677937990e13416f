/*
 * Static routing table: (method, path pattern) -> route. Patterns are
 * literal paths with optional single-segment parameters, e.g.
 * "/api/metrics/agents/{agentId}/latest". The table is fixed at build
 * time; matching allocates nothing.
 */
#ifndef RINGSIDE_ROUTER_H
#define RINGSIDE_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "ringside/http_parser.h"

#define ROUTER_MAX_PARAMS 4

/* Route flags, for the server (the router ignores them). With
 * --metrics-listen set, METRICS routes are served only there and every
 * other route only on --listen, except EVERY_LISTENER routes. */
#define HTTP_ROUTE_METRICS 1u
#define HTTP_ROUTE_EVERY_LISTENER 2u

struct http_route {
	enum http_method method;  /* GET routes also answer HEAD */
	const char *pattern;      /* also the `route` label of metrics */
	const void *handler;      /* opaque to the router */
	unsigned flags;           /* HTTP_ROUTE_* */
};

struct router {
	const struct http_route *routes;
	size_t count;
};

enum router_status {
	ROUTER_FOUND = 0,
	ROUTER_NOT_FOUND,          /* no pattern matches the path -> 404 */
	ROUTER_METHOD_NOT_ALLOWED, /* a pattern matches, not the method -> 405 */
	ROUTER_NOT_IMPLEMENTED,    /* no route of the table has the method -> 501 */
};

struct router_match {
	const struct http_route *route; /* ROUTER_FOUND only */
	const struct http_route *path_route; /* first route whose pattern matched the path,
					      * or NULL: its template labels a 405 or
					      * 501 in the metrics */
	uint32_t allow;                 /* bit (1u << method) per method the path has */
	uint8_t param_count;
	struct http_span params[ROUTER_MAX_PARAMS]; /* offsets into path */
};

/* Matches the exact path (no query) against the table. A parameter
 * matches one non-empty segment (no '/'). HEAD matches a GET route; the
 * allow mask of a path with a GET route includes HEAD. A method no route
 * serves (HTTP_METHOD_OTHER always) is ROUTER_NOT_IMPLEMENTED, before
 * 404 and 405. */
enum router_status router_match(const struct router *r, enum http_method m,
				const char *path, size_t len,
				struct router_match *out);

/* Writes the Allow field value for a mask ("GET, HEAD"), in method enum
 * order, NUL-terminated. Returns its length (without NUL), or 0 if cap
 * is too small. */
size_t router_format_allow(uint32_t allow, char *out, size_t cap);

#endif
