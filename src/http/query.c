/* Query strings (include/ringside/http_query.h). */
#include "ringside/http_query.h"

#include <string.h>

bool http_query_next(const char *q, size_t len, size_t *pos, struct http_query_param *p)
{
	size_t i = *pos;
	while (i < len && q[i] == '&')
		i++;
	if (i >= len) {
		*pos = len;
		return false;
	}
	size_t end = i;
	while (end < len && q[end] != '&')
		end++;
	const char *eq = memchr(q + i, '=', end - i);
	p->key = q + i;
	p->key_len = (eq ? (size_t)(eq - q) : end) - i;
	p->has_value = eq != NULL;
	p->value = eq ? eq + 1 : q + end;
	p->value_len = eq ? (size_t)(q + end - (eq + 1)) : 0;
	*pos = end;
	return true;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

ssize_t http_query_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = n - i >= 3 ? hex_value(s[i + 1]) : -1;
			int lo = hi < 0 ? -1 : hex_value(s[i + 2]);
			if (lo < 0) /* malformed; %00 is refused below */
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= cap) /* a raw NUL too (the parser lets none in) */
			return -1;
		out[o++] = c;
	}
	if (cap == 0)
		return -1;
	out[o] = '\0';
	return (ssize_t)o;
}
