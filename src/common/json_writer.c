/* The bounded, always-terminated JSON writer (include/ringside/json_writer.h). */
#include "ringside/json_writer.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "ringside/decimal.h"
#include "ringside/metrics_expo.h"

void jsonw_init(struct json_writer *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->len = 0;
	w->cap = cap;
	w->overflow = cap == 0;
	if (cap)
		buf[0] = '\0';
}

/* Room for n more bytes and the NUL? Marks the writer full if not. */
static bool room(struct json_writer *w, size_t n)
{
	if (w->overflow || n >= w->cap - w->len) {
		w->overflow = true;
		return false;
	}
	return true;
}

void jsonw_raw(struct json_writer *w, const char *s, size_t n)
{
	if (!room(w, n))
		return;
	if (n)
		memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

void jsonw_string(struct json_writer *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* Worst case 6 bytes per input byte, plus the quotes: checked once
	 * for the usual short string, byte by byte only near the end. */
	if (!room(w, 2))
		return;
	size_t start = w->len;
	char *o = w->buf;
	size_t at = start;
	o[at++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc = 0;
		switch (c) {
		case '"': esc = '"'; break;
		case '\\': esc = '\\'; break;
		case '\n': esc = 'n'; break;
		case '\r': esc = 'r'; break;
		case '\t': esc = 't'; break;
		default: break;
		}
		size_t need = esc ? 2 : c < 0x20 ? 6 : 1;
		/* + 1 for the closing quote, + 1 for the NUL. */
		if (need + 2 > w->cap - at) {
			w->overflow = true;
			o[start] = '\0'; /* terminated where the last whole value ended */
			return;
		}
		if (esc) {
			o[at++] = '\\';
			o[at++] = esc;
		} else if (c < 0x20) {
			memcpy(o + at, "\\u00", 4);
			o[at + 4] = hex[c >> 4];
			o[at + 5] = hex[c & 15];
			at += 6;
		} else {
			o[at++] = (char)c;
		}
	}
	o[at++] = '"';
	o[at] = '\0';
	w->len = at;
}

void jsonw_cstring(struct json_writer *w, const char *s)
{
	jsonw_string(w, s, strlen(s));
}

void jsonw_key(struct json_writer *w, const char *name)
{
	size_t n = strlen(name);
	if (!room(w, n + 3))
		return;
	char *p = w->buf + w->len;
	*p++ = '"';
	memcpy(p, name, n);
	p += n;
	*p++ = '"';
	*p++ = ':';
	*p = '\0';
	w->len += n + 3;
}

void jsonw_double(struct json_writer *w, double v)
{
	char num[33];
	/* The exposition writes -0 as "0" (as client_golang does); JSON
	 * gives a value back as it was sent. */
	if (v == 0 && signbit(v))
		jsonw_lit(w, "-0");
	else
		jsonw_raw(w, num, expo_format_double(num, v));
}

void jsonw_u64(struct json_writer *w, uint64_t v)
{
	char num[20];
	jsonw_raw(w, num, (size_t)(decimal_u64(num, v) - num));
}

void jsonw_time_ms(struct json_writer *w, int64_t unix_ms)
{
	int64_t sec = unix_ms / 1000, frac = unix_ms % 1000;
	if (frac < 0) { /* floor, for instants before 1970 */
		frac += 1000;
		sec--;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	int y = tm.tm_year + 1900;
	const int part[6] = {tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			     (int)frac};
	static const char sep[] = "-T::.";
	char b[32], *p = b; /* 26 used: "YYYY-MM-DDTHH:MM:SS.mmmZ" with quotes */
	*p++ = '"';
	*p++ = (char)('0' + y / 1000 % 10);
	*p++ = (char)('0' + y / 100 % 10);
	*p++ = (char)('0' + y / 10 % 10);
	*p++ = (char)('0' + y % 10);
	*p++ = '-';
	for (int i = 0; i < 5; i++) {
		*p++ = (char)('0' + part[i] / 10);
		*p++ = (char)('0' + part[i] % 10);
		*p++ = sep[i];
	}
	*p++ = (char)('0' + part[5] / 100);
	*p++ = (char)('0' + part[5] / 10 % 10);
	*p++ = (char)('0' + part[5] % 10);
	*p++ = 'Z';
	*p++ = '"';
	jsonw_raw(w, b, (size_t)(p - b));
}
