/*
 * Form bodies (src/http/form.c): the body is an exact-size copy and each
 * value buffer an exact-size allocation (caps from the input's hash), so
 * ASan flags a read past the body or a write past a cap. Invariants:
 * every value terminated, within its cap, no longer than the body, with
 * no interior NUL, present exactly when non-empty; all reset on an error,
 * which names a field of the table or -1; and on success each known name
 * occurs at most once, with the value the query decoder (query.c, written
 * separately) gives it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "ringside/http_form.h"
#include "ringside/http_query.h"

static const char *const names[] = {"grant_type", "scope", "client_id", "client_secret", "a"};
#define NF (sizeof names / sizeof names[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_copy(data, size);
	uint64_t h = fuzz_hash(data, size);
	struct http_form_field f[NF];
	for (size_t k = 0; k < NF; k++) {
		size_t cap = 1 + (h >> (8 * k)) % 24;
		f[k] = (struct http_form_field){.name = names[k], .value = malloc(cap), .cap = cap};
		CHECK(f[k].value);
		memset(f[k].value, 'x', cap);
	}
	int field = 99;
	int r = http_form_parse(body, size, f, NF, &field);
	CHECK(r <= 0 && r >= HTTP_FORM_BAD_UTF8);
	CHECK(field >= -1 && field < (int)NF);
	CHECK(r != HTTP_FORM_OK || field == -1);
	for (size_t k = 0; k < NF; k++) {
		CHECK(f[k].len < f[k].cap && f[k].len <= size);
		CHECK(f[k].value[f[k].len] == '\0');
		CHECK(memchr(f[k].value, '\0', f[k].len) == NULL);
		CHECK(f[k].present == (f[k].len > 0));
		CHECK(r == HTTP_FORM_OK || f[k].len == 0);
	}
	if (r == HTTP_FORM_OK) {
		size_t pos = 0, seen[NF] = {0};
		struct http_query_param p;
		char name[64], value[64];
		while (http_query_next(body, size, &pos, &p)) {
			ssize_t n = http_query_decode(p.key, p.key_len, name, sizeof name);
			for (size_t k = 0; n >= 0 && k < NF; k++) {
				if (strcmp(name, names[k]) != 0)
					continue;
				CHECK(++seen[k] == 1); /* RFC 6749 3.1 */
				if (p.value_len == 0) {
					CHECK(!f[k].present);
				} else {
					ssize_t v = http_query_decode(p.value, p.value_len, value, sizeof value);
					CHECK(v == (ssize_t)f[k].len && memcmp(value, f[k].value, f[k].len) == 0);
				}
			}
		}
		for (size_t k = 0; k < NF; k++)
			CHECK(seen[k] || !f[k].present);
	}
	for (size_t k = 0; k < NF; k++)
		free(f[k].value);

	/* The Content-Type check, on the same bytes. */
	if (http_form_content_type_ok(body, size))
		CHECK(size >= 33 && strncasecmp(body, "application/x-www-form-urlencoded", 33) == 0);
	free(body);
	return 0;
}
