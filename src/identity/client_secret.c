#include "ringside/client_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

int client_secret_key_load(struct client_secret_key *k, const char *path, char *err,
			   size_t errcap)
{
	memset(k, 0, sizeof *k);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errcap, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* One byte more than allowed: a longer file is refused, not cut. */
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, k->bytes + n, sizeof k->bytes - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (n += (size_t)r) == sizeof k->bytes)
			break;
	}
	char extra;
	bool longer = n == sizeof k->bytes && read(fd, &extra, 1) == 1;
	close(fd);
	if (n && k->bytes[n - 1] == '\n')
		n--;
	if (n && k->bytes[n - 1] == '\r')
		n--;
	if (longer || n < CLIENT_SECRET_KEY_MIN || n > CLIENT_SECRET_KEY_MAX) {
		snprintf(err, errcap, "%s: want %d to %d secret bytes", path, CLIENT_SECRET_KEY_MIN,
			 CLIENT_SECRET_KEY_MAX);
		client_secret_key_wipe(k);
		return -1;
	}
	k->len = n;
	return 0;
}

void client_secret_key_wipe(struct client_secret_key *k)
{
	OPENSSL_cleanse(k, sizeof *k);
}

static int random_bytes(unsigned char *p, size_t n)
{
	while (n) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static const char hex_digits[] = "0123456789abcdef";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_digits[p[i] >> 4];
		out[2 * i + 1] = hex_digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int client_secret_new(char id[CLIENT_ID_LEN + 1], char secret[CLIENT_SECRET_LEN + 1])
{
	static const char b64url[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char r[16 + 33];
	if (random_bytes(r, sizeof r) < 0)
		return -1;
	to_hex(r, 16, id);
	/* 32 secret bytes as 43 characters of 6 bits: 256 bits, the last
	 * character carrying 4 (its two low bits are zero, as RFC 4648
	 * wants), so every secret has one spelling. */
	const unsigned char *s = r + 16;
	for (size_t i = 0; i < CLIENT_SECRET_LEN; i++) {
		size_t bit = i * 6, byte = bit / 8, shift = bit % 8;
		unsigned v = (unsigned)s[byte] << 8 | (byte + 1 < 32 ? s[byte + 1] : 0);
		secret[i] = b64url[(v >> (10 - shift)) & 63];
	}
	secret[CLIENT_SECRET_LEN] = '\0';
	OPENSSL_cleanse(r, sizeof r);
	return 0;
}

int client_secret_hash(const struct client_secret_key *k, const char *secret, size_t len,
		       char out[CLIENT_SECRET_HASH_HEX + 1])
{
	unsigned char mac[32];
	unsigned mac_len = 0;
	if (!k->len || !HMAC(EVP_sha256(), k->bytes, (int)k->len, (const unsigned char *)secret,
			     len, mac, &mac_len) || mac_len != sizeof mac)
		return -1;
	to_hex(mac, sizeof mac, out);
	return 0;
}

bool client_secret_matches(const struct client_secret_key *k, const char *secret, size_t len,
			   const char *stored_hex, size_t stored_len)
{
	char mine[CLIENT_SECRET_HASH_HEX + 1];
	if (stored_len != CLIENT_SECRET_HASH_HEX || client_secret_hash(k, secret, len, mine) < 0)
		return false;
	return CRYPTO_memcmp(mine, stored_hex, CLIENT_SECRET_HASH_HEX) == 0;
}
