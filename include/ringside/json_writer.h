/*
 * The one way Ringside writes JSON: a bounded writer over a caller's
 * buffer with a sticky overflow. Once something does not fit, the writer
 * is full for good and writes nothing more, so a producer checks once at
 * the end. Every JSON body goes through it: the pool view and its SSE
 * events, /latest, the ingest 202, the error envelopes (both shapes).
 *
 * The text is always NUL-terminated: after every call buf[len] == '\0'
 * (one byte of cap is kept for it), so even a caller that prints buf with
 * %s prints exactly what was written. Strings are escaped on the way in;
 * there is no function that escapes into a bare buffer, which is how the
 * ingest 202 once sent stack bytes (other tenants' ids) after an id.
 *
 * Commas are the writer's: a value (or a closed object or array) leaves
 * one pending, and the next key, array item or opening bracket writes it.
 * So a producer says only what it writes:
 *
 *     jsonw_start_object(&w);
 *     jsonw_key(&w, "ids");
 *     jsonw_start_array(&w);
 *     jsonw_u64(&w, 1);
 *     jsonw_u64(&w, 2);
 *     jsonw_end_array(&w);
 *     jsonw_end_object(&w);          -> {"ids":[1,2]}
 *
 * The writer does not check the nesting: a producer that opens must
 * close, and a key goes only inside an object.
 *
 * The prefix is jsonw_, not json_: jansson, under libjwt, exports json_*,
 * and an executable's symbol of the same name would replace it.
 */
#ifndef RINGSIDE_JSON_WRITER_H
#define RINGSIDE_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct json_writer {
	char *buf;
	size_t len;    /* bytes written; buf[len] is '\0' */
	size_t cap;    /* of buf, the NUL included */
	bool overflow; /* something did not fit: the text is cut, do not send it */
	bool comma;    /* a value ended: the next key or item goes after a ',' */
};

/* Starts writing at buf[0]. cap 0 makes a writer that is full already. */
void jsonw_init(struct json_writer *w, char *buf, size_t cap);

/* Bytes as they are: JSON syntax the caller composes itself (`{`,
 * `,"k":`). The pending comma is dropped, since the caller's bytes say
 * where commas go: code that writes its separators with jsonw_raw works
 * as it did before the writer managed commas. */
void jsonw_raw(struct json_writer *w, const char *s, size_t n);
#define jsonw_lit(w, lit) jsonw_raw((w), (lit), sizeof(lit) - 1)

/* `{` and `[` (after the pending comma, if any), and `}` and `]`. */
void jsonw_start_object(struct json_writer *w);
void jsonw_end_object(struct json_writer *w);
void jsonw_start_array(struct json_writer *w);
void jsonw_end_array(struct json_writer *w);

/* `"name":`, name being a key that needs no escaping (a literal, a
 * schema's field name). */
void jsonw_key_n(struct json_writer *w, const char *name, size_t n);

/* s[0, n) as an escaped key (one that came from a client: a label). */
void jsonw_key_string(struct json_writer *w, const char *s, size_t n);

/* s[0, n) as a JSON string: quoted, `"` `\` escaped, control characters
 * (U+0000 included, RFC 8259 section 7) as \n \r \t or \u00XX; other
 * bytes as they are (s is meant to be UTF-8; it is not checked). */
void jsonw_string(struct json_writer *w, const char *s, size_t n);

/* Inline, so that a literal's length is known when compiling. */
static inline void jsonw_key(struct json_writer *w, const char *name)
{
	jsonw_key_n(w, name, strlen(name));
}

/* jsonw_string for a NUL-terminated s. */
static inline void jsonw_cstring(struct json_writer *w, const char *s)
{
	jsonw_string(w, s, strlen(s));
}

/* A double in its shortest form that reads back the same (-0 as -0;
 * integers below 2^53 as digits), the exposition's formatting
 * (expo_format_double). JSON has no NaN or infinity: those are null. */
void jsonw_double(struct json_writer *w, double v);

/* Integers, exact, in decimal. */
void jsonw_u64(struct json_writer *w, uint64_t v);
void jsonw_i64(struct json_writer *w, int64_t v);

void jsonw_bool(struct json_writer *w, bool v);
void jsonw_null(struct json_writer *w);

/* "2026-11-22T10:00:00.123Z", quoted: rfc3339_format_ms (rfc3339.h). */
void jsonw_time_ms(struct json_writer *w, int64_t unix_ms);

/* The text's length, or 0 if it overflowed (nothing usable was written). */
static inline size_t jsonw_done(const struct json_writer *w)
{
	return w->overflow ? 0 : w->len;
}

#endif
