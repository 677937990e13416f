/*
 * Error reports of the validator: the path of where the parser is
 * (`containers[3].ports[0].privatePort`, from its schema frames) and the
 * formatted message. Called only when a body is being rejected.
 */
#include "ringside/ingest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ingest_int.h"

/* Appends s[0, n) to the path, ending it in "..." if it does not fit. */
static void path_put(char *path, size_t *len, const char *s, size_t n)
{
	size_t room = INGEST_PATH_MAX - 1 - *len;

	if (*len >= INGEST_PATH_MAX - 1)
		return;
	if (n > room) {
		memcpy(path + *len, s, room);
		*len = INGEST_PATH_MAX - 1;
		memcpy(path + *len - 3, "...", 3);
		return;
	}
	memcpy(path + *len, s, n);
	*len += n;
}

/* A key as `.name` when it is a plain name (letters, digits, '_', '$',
 * '-'; not starting with a digit or '-'), else as `["name"]` (any byte
 * outside printable ASCII, and '"' and '\', shown as '?'). */
static void path_key(char *path, size_t *len, const char *k, size_t n)
{
	bool ident = n > 0;
	char tmp[INGEST_PATH_MAX];
	size_t m = 0;

	for (size_t j = 0; j < n && ident; j++) {
		unsigned char c = (unsigned char)k[j];
		ident = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			c == '$' || (j > 0 && ((c >= '0' && c <= '9') || c == '-'));
	}
	if (ident) {
		if (*len)
			path_put(path, len, ".", 1);
		path_put(path, len, k, n);
		return;
	}
	for (size_t j = 0; j < n && m < sizeof tmp; j++) {
		unsigned char c = (unsigned char)k[j];
		tmp[m++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
	}
	path_put(path, len, "[\"", 2);
	path_put(path, len, tmp, m);
	path_put(path, len, "\"]", 2);
}

/*
 * The path of where the parser is: each schema frame's array index or
 * key. drop_last and extra as for ingest_fail().
 */
static void build_path(struct ingest_parser *p, bool drop_last, const char *extra)
{
	char *path = p->err.path;
	size_t len = 0;
	char num[16];

	for (unsigned k = 0; k < p->sdepth; k++) {
		const struct ingest_frame *fr = &p->f[k];

		if (drop_last && k + 1 == p->sdepth)
			break;
		if (fr->type & T_ARRAY) {
			if (fr->n == 0)
				continue;
			int n = snprintf(num, sizeof num, "[%u]", fr->n - 1);
			path_put(path, &len, num, (size_t)n);
		} else if (fr->key >= 0) {
			const struct ingest_field *f = &ingest_types[fr->type].fields[fr->key];
			path_key(path, &len, f->name, f->len);
		} else if (fr->key == KEY_UNKNOWN) {
			path_key(path, &len, p->key, p->keylen);
		} else if (fr->key == KEY_LABEL) {
			const struct ingest_label *l = &p->r->label[fr->n];
			path_key(path, &len, ingest_str_ptr(p->r, l->key), l->key.len);
		}
	}
	if (extra)
		path_key(path, &len, extra, strlen(extra));
	path[len] = '\0';
}

int ingest_fail(struct ingest_parser *p, uint16_t status, const char *hint,
		bool drop_last, const char *extra, const char *fmt, ...)
{
	va_list ap;

	build_path(p, drop_last, extra);
	va_start(ap, fmt);
	vsnprintf(p->err.message, sizeof p->err.message, fmt, ap);
	va_end(ap);
	p->err.hint = hint;
	p->err.status = status;
	return status == 413 ? -E2BIG : -EINVAL;
}
