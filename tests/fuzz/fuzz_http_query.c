/*
 * Query strings (src/http/query.c): every element lies inside the input,
 * the walk ends at its end, and every value either decodes to no more
 * bytes than it had, terminated, or is refused; never a read past the
 * input (an exact-size copy) or past the output.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "ringside/http_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = fuzz_copy(data, size);
	size_t pos = 0, count = 0;
	struct http_query_param p;
	char out[64];
	while (http_query_next(q, size, &pos, &p)) {
		CHECK(p.key >= q && p.key + p.key_len <= q + size);
		CHECK(p.value >= q && p.value + p.value_len <= q + size);
		CHECK(++count <= size);
		ssize_t n = http_query_decode(p.value, p.value_len, out, sizeof out);
		CHECK(n == -1 || ((size_t)n <= p.value_len && (size_t)n < sizeof out &&
				  out[n] == '\0' && memchr(out, '\0', (size_t)n) == NULL));
	}
	CHECK(pos == size);
	free(q);
	return 0;
}
