/*
 * Basic credentials (src/http/basic_auth.c): the field value is an
 * exact-size copy and each output an exact-size allocation (caps from the
 * input's hash), so ASan flags a read past the value or a write past a
 * cap. Invariants: outputs terminated, within cap, together no longer
 * than the value, without control characters (NUL included); empty on an
 * error; a success only for the Basic scheme with a padded token; and the
 * result the same for a value rebuilt from the outputs, encoded back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "ringside/http_basic_auth.h"

static void check_text(const char *s, size_t n)
{
	CHECK(s[n] == '\0');
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7F);
}

/* RFC 4648 4, padded: what a client would send. */
static size_t b64(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t g = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = a[g >> 18 & 63];
		out[o++] = a[g >> 12 & 63];
		out[o++] = i + 1 < n ? a[g >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? a[g & 63] : '=';
	}
	return o;
}

/* Form-encodes s[0, n) the way RFC 6749 2.3.1 asks a client to. */
static size_t form_encode(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			out[o++] = (char)c;
		} else if (c == ' ') {
			out[o++] = '+';
		} else {
			out[o++] = '%';
			out[o++] = "0123456789ABCDEF"[c >> 4];
			out[o++] = "0123456789ABCDEF"[c & 15];
		}
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *v = fuzz_copy(data, size);
	uint64_t h = fuzz_hash(data, size);
	size_t id_cap = 1 + h % 48, secret_cap = 1 + (h >> 8) % 96;
	struct http_basic_credentials c = {
		.id = malloc(id_cap), .id_cap = id_cap, .id_len = 7,
		.secret = malloc(secret_cap), .secret_cap = secret_cap, .secret_len = 7,
	};
	CHECK(c.id && c.secret);
	int r = http_basic_parse(v, size, &c);
	CHECK(r <= 0 && r >= HTTP_BASIC_TOO_LONG);
	CHECK(c.id_len < id_cap && c.secret_len < secret_cap);
	CHECK(c.id_len + c.secret_len <= size);
	check_text(c.id, c.id_len);
	check_text(c.secret, c.secret_len);
	CHECK(r == HTTP_BASIC_OK || (c.id_len == 0 && c.secret_len == 0));
	if (r == HTTP_BASIC_OK) {
		CHECK(size >= 10 && strncasecmp(v, "Basic ", 6) == 0);
		size_t i = 6;
		while (v[i] == ' ')
			i++;
		CHECK((size - i) % 4 == 0 && size - i >= 4);
		/* What a client sends for these credentials parses back to them. */
		static char up[3 * 4096 + 1], hdr[6 + 4 * 4096];
		size_t n = form_encode(c.id, c.id_len, up);
		up[n++] = ':';
		n += form_encode(c.secret, c.secret_len, up + n);
		memcpy(hdr, "Basic ", 6);
		size_t hn = 6 + b64((unsigned char *)up, n, hdr + 6);
		char *id2 = malloc(id_cap), *secret2 = malloc(secret_cap);
		CHECK(id2 && secret2);
		struct http_basic_credentials c2 = {.id = id2, .id_cap = id_cap,
						    .secret = secret2, .secret_cap = secret_cap};
		char *h2 = fuzz_copy((const uint8_t *)hdr, hn);
		CHECK(http_basic_parse(h2, hn, &c2) == HTTP_BASIC_OK);
		CHECK(c2.id_len == c.id_len && memcmp(id2, c.id, c.id_len + 1) == 0);
		CHECK(c2.secret_len == c.secret_len && memcmp(secret2, c.secret, c.secret_len + 1) == 0);
		free(h2);
		free(id2);
		free(secret2);
	}
	free(c.id);
	free(c.secret);
	free(v);
	return 0;
}
