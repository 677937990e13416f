/*
 * Query strings (RFC 3986 3.4) as browsers and Prometheus send them:
 * `key=value` elements joined by '&', values percent-encoded, '+' for a
 * space (application/x-www-form-urlencoded, which Go's url.Values uses for
 * a scrape's params). Allocates nothing.
 */
#ifndef RINGSIDE_HTTP_QUERY_H
#define RINGSIDE_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One element; key and value point into the query, still encoded. An
 * element without '=' has value_len 0 and has_value false. */
struct http_query_param {
	const char *key, *value;
	size_t key_len, value_len;
	bool has_value;
};

/*
 * The next element of q[0, len) from *pos (start at 0), empty elements
 * ("a=1&&b=2") skipped. Returns false at the end.
 */
bool http_query_next(const char *q, size_t len, size_t *pos, struct http_query_param *p);

/*
 * Decodes s[0, n) (%XX and '+') into out, NUL-terminated. Returns the
 * decoded length, or -1 if s holds a malformed escape, a NUL (%00 or
 * raw: no id or name holds one, and C strings would cut there), or does
 * not fit in cap with its NUL.
 */
ssize_t http_query_decode(const char *s, size_t n, char *out, size_t cap);

#endif
