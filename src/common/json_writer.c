/* The bounded, always-terminated JSON writer (include/ringside/json_writer.h). */
#include "ringside/json_writer.h"

#include <math.h>
#include <string.h>

#include "ringside/decimal.h"
#include "ringside/metrics_expo.h"
#include "ringside/rfc3339.h"

void jsonw_init(struct json_writer *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->len = 0;
	w->cap = cap;
	w->overflow = cap == 0;
	w->comma = false;
	if (cap)
		buf[0] = '\0';
}

/*
 * memcpy for the short pieces JSON is made of (keys, numbers, short
 * strings): fixed-size, overlapping copies the compiler inlines, where
 * a call to the library's memcpy costs more than the copy.
 */
static inline void copy(char *d, const char *s, size_t n)
{
	if (n > 32) {
		memcpy(d, s, n);
	} else if (n >= 16) {
		memcpy(d, s, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else if (n) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/*
 * Room for the pending comma, n more bytes and the NUL? Writes the comma
 * and returns where the n bytes go (they are the caller's to write, then
 * end()); NULL, and the writer full for good, if not.
 */
static char *begin(struct json_writer *w, size_t n)
{
	size_t c = w->comma;
	if (w->overflow || n + c >= w->cap - w->len) {
		w->overflow = true;
		return NULL;
	}
	char *p = w->buf + w->len;
	if (c)
		*p++ = ',';
	return p;
}

/* The bytes up to `end` are written: terminate, and say whether a value
 * ended there (the next key or item then needs a comma). */
static void end(struct json_writer *w, char *p, bool value_ended)
{
	*p = '\0';
	w->len = (size_t)(p - w->buf);
	w->comma = value_ended;
}

static void put_value(struct json_writer *w, const char *s, size_t n)
{
	char *p = begin(w, n);
	if (!p)
		return;
	copy(p, s, n);
	end(w, p + n, true);
}

void jsonw_raw(struct json_writer *w, const char *s, size_t n)
{
	if (w->overflow || n >= w->cap - w->len) {
		w->overflow = true;
		return;
	}
	char *p = w->buf + w->len;
	copy(p, s, n);
	end(w, p + n, false);
}

static void open_with(struct json_writer *w, char c)
{
	char *p = begin(w, 1);
	if (!p)
		return;
	*p++ = c;
	end(w, p, false);
}

/* A closing bracket ends a value, and takes no comma before it. */
static void close_with(struct json_writer *w, char c)
{
	w->comma = false;
	char *p = begin(w, 1);
	if (!p)
		return;
	*p++ = c;
	end(w, p, true);
}

void jsonw_start_object(struct json_writer *w) { open_with(w, '{'); }
void jsonw_end_object(struct json_writer *w) { close_with(w, '}'); }
void jsonw_start_array(struct json_writer *w) { open_with(w, '['); }
void jsonw_end_array(struct json_writer *w) { close_with(w, ']'); }

void jsonw_key_n(struct json_writer *w, const char *name, size_t n)
{
	char *p = begin(w, n + 3);
	if (!p)
		return;
	*p++ = '"';
	copy(p, name, n);
	p += n;
	*p++ = '"';
	*p++ = ':';
	end(w, p, false);
}

/* Bytes a string byte takes escaped: 1, 2 (\" \\ \n \r \t) or 6 (\u00XX). */
static const unsigned char escaped_len[256] = {
	6, 6, 6, 6, 6, 6, 6, 6, 6, 2, 2, 6, 6, 2, 6, 6,
	6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
	1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* s[0, n) quoted and escaped, then ':' if it is a key. */
static void put_string(struct json_writer *w, const char *s, size_t n, bool key)
{
	static const char hex[] = "0123456789abcdef";
	size_t tail = 1 + key; /* the closing quote, and the colon of a key */
	size_t start = w->len;
	char *p = begin(w, 1 + tail);
	if (!p)
		return;
	char *o = w->buf;
	size_t at = (size_t)(p - o);
	o[at++] = '"';
	/* Runs of bytes that need no escape are copied whole; the room for
	 * each is checked once (+ tail, + 1 for the NUL). */
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && escaped_len[(unsigned char)s[run]] == 1)
			run++;
		if (run > i) {
			size_t m = run - i;
			if (m + tail >= w->cap - at)
				goto full;
			copy(o + at, s + i, m);
			at += m;
			i = run;
			if (i == n)
				break;
		}
		unsigned char c = (unsigned char)s[i++];
		size_t need = escaped_len[c];
		if (need + tail >= w->cap - at)
			goto full;
		o[at] = '\\';
		switch (c) {
		case '"': o[at + 1] = '"'; break;
		case '\\': o[at + 1] = '\\'; break;
		case '\n': o[at + 1] = 'n'; break;
		case '\r': o[at + 1] = 'r'; break;
		case '\t': o[at + 1] = 't'; break;
		default:
			memcpy(o + at + 1, "u00", 3);
			o[at + 4] = hex[c >> 4];
			o[at + 5] = hex[c & 15];
			break;
		}
		at += need;
	}
	o[at++] = '"';
	if (key)
		o[at++] = ':';
	end(w, o + at, !key);
	return;
full:
	w->overflow = true;
	o[start] = '\0'; /* terminated where the last whole value ended */
}

void jsonw_string(struct json_writer *w, const char *s, size_t n)
{
	put_string(w, s, n, false);
}

void jsonw_key_string(struct json_writer *w, const char *s, size_t n)
{
	put_string(w, s, n, true);
}

void jsonw_double(struct json_writer *w, double v)
{
	char num[33];
	if (!isfinite(v))
		put_value(w, "null", 4);
	/* The exposition writes -0 as "0" (as client_golang does); JSON
	 * gives a value back as it was sent. */
	else if (v == 0 && signbit(v))
		put_value(w, "-0", 2);
	else
		put_value(w, num, expo_format_double(num, v));
}

void jsonw_u64(struct json_writer *w, uint64_t v)
{
	char tmp[20], *d = decimal_u64_digits(tmp, v);
	put_value(w, d, (size_t)(tmp + sizeof tmp - d));
}

void jsonw_i64(struct json_writer *w, int64_t v)
{
	char tmp[21], *d = decimal_u64_digits(tmp + 1, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--d = '-';
	put_value(w, d, (size_t)(tmp + sizeof tmp - d));
}

void jsonw_bool(struct json_writer *w, bool v)
{
	if (v)
		put_value(w, "true", 4);
	else
		put_value(w, "false", 5);
}

void jsonw_null(struct json_writer *w)
{
	put_value(w, "null", 4);
}

void jsonw_time_ms(struct json_writer *w, int64_t unix_ms)
{
	char b[RFC3339_MS_LEN + 2];
	b[0] = '"';
	rfc3339_format_ms(b + 1, unix_ms);
	b[RFC3339_MS_LEN + 1] = '"';
	put_value(w, b, sizeof b);
}
