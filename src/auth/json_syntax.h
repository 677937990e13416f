/* Between the files of src/auth only: strict JSON reading for tokens. */
#ifndef RINGSIDE_JSON_SYNTAX_H
#define RINGSIDE_JSON_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Accepts what jansson (libjwt's parser, which other services use on our
 * tokens) accepts, and reads the header and the claims itself. Strings are
 * decoded (escapes, surrogate pairs) and their UTF-8 validated as jansson
 * does; \u0000 is rejected as jansson does. Nesting is bounded: a token is
 * at most JWT_TOKEN_LIMIT bytes, but 4000 '[' would still be deep.
 */
struct js {
	const unsigned char *p, *end;
};

/* Skips JSON whitespace. */
void js_ws(struct js *s);
/* Consumes c if it is next; false otherwise. */
bool js_take(struct js *s, unsigned char c);
/* A string at s->p. Its decoded bytes go to out (when not NULL) up to
 * cap; *len gets the whole decoded length, which may exceed cap. 0, or -1
 * if it is not a valid string. */
int js_string(struct js *s, char *out, size_t cap, size_t *len);
/* Consumes one digit if it is next. */
bool js_digit(struct js *s);
/* Any value at s->p (nested at depth), checked and skipped with the
 * whitespace after it. 0 or -1. */
int js_value(struct js *s, int depth);
/* p[0, n) is one JSON object and nothing more: 0, else -1. */
int js_check_object(const unsigned char *p, size_t n);

#endif
