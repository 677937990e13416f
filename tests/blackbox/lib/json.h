/*
 * JSON for the tests, with no library: a loose reader that picks one
 * member's string or number out of a body, and a strict RFC 8259 syntax
 * check.
 */
#ifndef RINGSIDE_TESTS_BB_JSON_H
#define RINGSIDE_TESTS_BB_JSON_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Loose JSON: finds the top-level-ish string member `key` in body and copies
 * its unescaped value (NUL-terminated; \uXXXX as UTF-8, \u0000 ends it)
 * into out. Returns false if absent or not a string.
 */
bool json_get_string(const char *body, const char *key, char *out, size_t cap);

/*
 * Loose JSON: the number value of the first member named `key`, anywhere
 * in body. Copies the number's text to raw (may be NULL) so a caller can
 * tell 3 from 3.0. False if absent or not a number.
 */
bool json_get_number(const char *body, const char *key, double *out,
		     char *raw, size_t rawcap);

/* Strict RFC 8259 syntax check of one JSON text; why says where it broke. */
bool json_valid(const char *s, size_t n, char *why, size_t wcap);

#endif
