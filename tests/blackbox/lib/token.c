/*
 * HS256 agent tokens minted by the tests: see token.h.
 */
#include "token.h"
#include "check.h"
#include "clock.h"
#include "files.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* RFC 4648 section 5 without padding (RFC 7515 section 2); the unused low
 * bits of the last character are zero, as the server's strict decoder
 * requires. out needs 4 * ceil(n / 3) + 1 bytes. */
static size_t b64url(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i = 0, o = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

char *h_mint_token(const char *secret_path, const char *sub, const char *org,
		   const char *scope)
{
	static char loaded[256];
	static char key[4096 + 1]; /* h_read_file keeps a byte for the NUL */
	static size_t key_len;
	static unsigned serial;

	if (strcmp(loaded, secret_path) != 0) {
		ssize_t got = h_read_file(secret_path, key, sizeof key);

		CHECK(got >= 0, "cannot open %s (run from the repository root)", secret_path);
		key_len = (size_t)got;
		/* As jwt_keys.c load_secret: one trailing "\n", then one "\r". */
		if (key_len && key[key_len - 1] == '\n')
			key_len--;
		if (key_len && key[key_len - 1] == '\r')
			key_len--;
		CHECK(key_len >= 32, "%s: %zu key bytes", secret_path, key_len);
		snprintf(loaded, sizeof loaded, "%s", secret_path);
	}
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	long long iat = (long long)(h_wall_ms() / 1000);
	char payload[1024], input[2048], sig_b64[64];
	unsigned char sig[EVP_MAX_MD_SIZE];
	unsigned int sig_len = 0;
	int n = snprintf(payload, sizeof payload,
			 "{\"iss\":\"ringside\",\"aud\":\"ringside\",\"sub\":\"%s\","
			 "\"organization_id\":\"%s\",\"scope\":\"%s\","
			 "\"jti\":\"bb-%ld-%u\",\"iat\":%lld,\"exp\":%lld}",
			 sub, org, scope, (long)getpid(), ++serial, iat, iat + 3600);
	CHECK(n > 0 && (size_t)n < sizeof payload, "token payload of %s", sub);
	size_t len = b64url((const unsigned char *)header, sizeof header - 1, input);
	input[len++] = '.';
	CHECK(4 * (((size_t)n + 2) / 3) + 1 < sizeof input - len, "token of %s", sub);
	len += b64url((const unsigned char *)payload, (size_t)n, input + len);
	CHECK(HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)input, len, sig,
		   &sig_len) != NULL && sig_len == 32,
	      "HMAC-SHA256 failed");
	b64url(sig, sig_len, sig_b64);
	return h_strf("%s.%s", input, sig_b64);
}
