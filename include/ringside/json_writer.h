/*
 * The one way Ringside writes JSON: a bounded writer over a caller's
 * buffer with a sticky overflow. Once something does not fit, the writer
 * is full for good and writes nothing more, so a producer checks once at
 * the end.
 *
 * The text is always NUL-terminated: after every call buf[len] == '\0'
 * (one byte of cap is kept for it), so even a caller that prints buf with
 * %s prints exactly what was written. Strings are escaped on the way in;
 * there is no function that escapes into a bare buffer, which is how the
 * ingest 202 once sent stack bytes (other tenants' ids) after an id.
 *
 * The prefix is jsonw_, not json_: jansson, under libjwt, exports json_*,
 * and an executable's symbol of the same name would replace it.
 */
#ifndef RINGSIDE_JSON_WRITER_H
#define RINGSIDE_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_writer {
	char *buf;
	size_t len;    /* bytes written; buf[len] is '\0' */
	size_t cap;    /* of buf, the NUL included */
	bool overflow; /* something did not fit: the text is cut, do not send it */
};

/* Starts writing at buf[0]. cap must be at least 1. */
void jsonw_init(struct json_writer *w, char *buf, size_t cap);

/* Bytes as they are (JSON syntax the caller composes: `{`, `,"k":`). */
void jsonw_raw(struct json_writer *w, const char *s, size_t n);
#define jsonw_lit(w, lit) jsonw_raw((w), (lit), sizeof(lit) - 1)

/* s[0, n) as a JSON string: quoted, `"` `\` escaped, control characters
 * (U+0000 included, RFC 8259 section 7) as \n \r \t or \u00XX; other
 * bytes as they are (s is meant to be UTF-8; it is not checked). */
void jsonw_string(struct json_writer *w, const char *s, size_t n);

/* The same for a NUL-terminated s. */
void jsonw_cstring(struct json_writer *w, const char *s);

/* `"name":`, name being a literal key that needs no escaping. */
void jsonw_key(struct json_writer *w, const char *name);

/* A finite double, shortest form that reads back the same (-0 as -0). */
void jsonw_double(struct json_writer *w, double v);

void jsonw_u64(struct json_writer *w, uint64_t v);

/* "2026-11-22T10:00:00.123Z": RFC 3339, UTC, milliseconds, quoted. */
void jsonw_time_ms(struct json_writer *w, int64_t unix_ms);

/* The text's length, or 0 if it overflowed (nothing usable was written). */
static inline size_t jsonw_done(const struct json_writer *w)
{
	return w->overflow ? 0 : w->len;
}

#endif
