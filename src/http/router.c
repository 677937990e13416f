/*
 * Static router (see include/ringside/router.h).
 *
 * The table is small (tens of routes) and fixed, so matching is a linear
 * scan comparing each pattern with the path byte by byte: no compile step,
 * no allocation, and a miss costs one comparison per route that usually
 * stops within the first few bytes. Where patterns overlap, the first in
 * table order wins (for HEAD too), so list a literal route such as
 * "/agents/self" before a "/agents/{id}" it would otherwise lose to.
 */
#include "ringside/router.h"

#include <assert.h>
#include <string.h>

#include "ringside/http_parser.h"

/* Our own names, so the router does not depend on the parser's object. */
static const char *const method_names[HTTP_METHOD_COUNT] = {
	[HTTP_GET] = "GET",         [HTTP_HEAD] = "HEAD",
	[HTTP_POST] = "POST",       [HTTP_PUT] = "PUT",
	[HTTP_DELETE] = "DELETE",   [HTTP_PATCH] = "PATCH",
	[HTTP_OPTIONS] = "OPTIONS", [HTTP_TRACE] = "TRACE",
	[HTTP_CONNECT] = "CONNECT",
};

/*
 * Matches pattern against path[0, len). "{name}" stands for one whole,
 * non-empty segment: it runs to the next '/' or the end of the path.
 * Everything else, slashes included, must match exactly, so "/a/" and "/a"
 * are different paths. Fills params on a match.
 */
static bool pattern_match(const char *pat, const char *path, size_t len,
			  struct http_span *params, uint8_t *count)
{
	size_t i = 0;
	uint8_t n = 0;

	while (*pat != '\0') {
		if (*pat == '{') {
			size_t start = i;

			while (i < len && path[i] != '/')
				i++;
			if (i == start)
				return false;
			/* A table bug, caught by the router tests. */
			assert(n < ROUTER_MAX_PARAMS);
			if (n == ROUTER_MAX_PARAMS)
				return false;
			params[n].off = (uint32_t)start;
			params[n].len = (uint32_t)(i - start);
			n++;
			pat = strchr(pat, '}');
			assert(pat != NULL);
			if (pat == NULL)
				return false;
			pat++;
			continue;
		}
		if (i == len || path[i] != *pat)
			return false;
		i++;
		pat++;
	}
	if (i != len)
		return false;
	*count = n;
	return true;
}

enum router_status router_match(const struct router *r, enum http_method m,
				const char *path, size_t len,
				struct router_match *out)
{
	struct http_span params[ROUTER_MAX_PARAMS];
	const struct http_route *head_via_get = NULL;
	struct http_span get_params[ROUTER_MAX_PARAMS];
	uint8_t get_count = 0;
	uint32_t served = 0; /* methods some route of the table serves */

	memset(out, 0, sizeof *out);
	/* Spans are 32-bit; the parser's target limit is far below that. */
	if (len > UINT32_MAX)
		return ROUTER_NOT_FOUND;
	for (size_t i = 0; i < r->count; i++) {
		const struct http_route *rt = &r->routes[i];
		uint8_t count;

		served |= 1u << rt->method;
		if (!pattern_match(rt->pattern, path, len, params, &count))
			continue;
		if (out->path_route == NULL)
			out->path_route = rt;
		out->allow |= 1u << rt->method;
		if (rt->method == HTTP_GET)
			out->allow |= 1u << HTTP_HEAD;
		if (out->route != NULL)
			continue; /* still collecting the allow mask */
		if (rt->method == m) {
			out->route = rt;
			out->param_count = count;
			memcpy(out->params, params, count * sizeof params[0]);
		} else if (m == HTTP_HEAD && rt->method == HTTP_GET &&
			   head_via_get == NULL) {
			/* Unless the table has its own HEAD route for it. */
			head_via_get = rt;
			get_count = count;
			memcpy(get_params, params, count * sizeof params[0]);
		}
	}
	if (out->route == NULL && head_via_get != NULL) {
		out->route = head_via_get;
		out->param_count = get_count;
		memcpy(out->params, get_params,
		       get_count * sizeof get_params[0]);
	}
	if (out->route != NULL)
		return ROUTER_FOUND;
	/* RFC 9110 9.1: a method the server implements nowhere is a 501,
	 * whatever the path; 405 is for a method it serves elsewhere. */
	if (served & (1u << HTTP_GET))
		served |= 1u << HTTP_HEAD;
	if (m == HTTP_METHOD_OTHER || !(served & (1u << m)))
		return ROUTER_NOT_IMPLEMENTED;
	return out->allow != 0 ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}

size_t router_format_allow(uint32_t allow, char *out, size_t cap)
{
	size_t len = 0;

	for (int m = 0; m < HTTP_METHOD_COUNT; m++) {
		const char *name = method_names[m];
		size_t nlen;

		if (!(allow & (1u << m)) || name == NULL)
			continue;
		nlen = strlen(name);
		if (len + (len ? 2 : 0) + nlen + 1 > cap)
			return 0;
		if (len) {
			out[len++] = ',';
			out[len++] = ' ';
		}
		memcpy(out + len, name, nlen);
		len += nlen;
	}
	if (cap == 0)
		return 0;
	out[len] = '\0';
	return len;
}
