/*
 * A response's header fields: lookup, count, comma-separated token lists,
 * the media type. See http_fields.h.
 */
#include "http_fields.h"

#include <string.h>
#include <strings.h>

/* Length of s[0..n) without trailing blanks. */
static size_t rtrim_len(const char *s, size_t n)
{
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

const char *resp_header(const struct http_response *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

int resp_header_count(const struct http_response *r, const char *name)
{
	int n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			n++;
	return n;
}

bool resp_header_has_token(const struct http_response *r, const char *name,
			   const char *token)
{
	size_t tl = strlen(token);

	for (size_t i = 0; i < r->nheaders; i++) {
		if (strcasecmp(r->headers[i].name, name) != 0)
			continue;
		const char *v = r->headers[i].value;

		while (*v) {
			while (*v == ' ' || *v == '\t' || *v == ',')
				v++;
			size_t n = strcspn(v, ",");

			if (rtrim_len(v, n) == tl && strncasecmp(v, token, tl) == 0)
				return true;
			v += n;
		}
	}
	return false;
}

bool resp_connection_has(const struct http_response *r, const char *token)
{
	return resp_header_has_token(r, "Connection", token);
}

bool resp_content_type_is(const struct http_response *r, const char *type)
{
	const char *ct = resp_header(r, "Content-Type");
	size_t n = ct ? rtrim_len(ct, strcspn(ct, ";")) : 0;

	return ct && n == strlen(type) && strncasecmp(ct, type, n) == 0;
}
