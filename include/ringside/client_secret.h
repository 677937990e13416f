/*
 * Client credentials of the identity service (RFC 6749 2.3.1). A secret
 * is 256 random bits, shown once; the database keeps only its
 * HMAC-SHA-256 under a server key (--client-secret-key-file), compared in
 * constant time. A slow password hash (bcrypt) would protect a
 * human-chosen password from offline guessing; a 256-bit random secret
 * cannot be guessed, so it would only add 14-200 ms to every token
 * request. The key makes a stolen table useless on its own.
 */
#ifndef RINGSIDE_CLIENT_SECRET_H
#define RINGSIDE_CLIENT_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define CLIENT_SECRET_KEY_MIN 32   /* bytes of the server key */
#define CLIENT_SECRET_KEY_MAX 1024
#define CLIENT_SECRET_LEN 43       /* base64url of 32 bytes, no padding */
#define CLIENT_ID_LEN 32           /* hex of 16 random bytes */
#define CLIENT_SECRET_HASH_HEX 64  /* HMAC-SHA-256 in lowercase hex */

struct client_secret_key {
	unsigned char bytes[CLIENT_SECRET_KEY_MAX];
	size_t len; /* 0: not loaded */
};

/* Reads the key file (raw bytes, one trailing "\n" or "\r\n" stripped,
 * CLIENT_SECRET_KEY_MIN..MAX bytes). 0, or -1 with a one-line reason in
 * err (naming the file). */
int client_secret_key_load(struct client_secret_key *k, const char *path, char *err,
			   size_t errcap);
void client_secret_key_wipe(struct client_secret_key *k);

/* A new client id (CLIENT_ID_LEN hex digits) and secret
 * (CLIENT_SECRET_LEN base64url characters), each NUL-terminated, from
 * getrandom(2). 0, or -1 if no random bytes could be had. */
int client_secret_new(char id[CLIENT_ID_LEN + 1], char secret[CLIENT_SECRET_LEN + 1]);

/* The stored form of a secret: its HMAC-SHA-256 under the key, as
 * CLIENT_SECRET_HASH_HEX lowercase hex digits and a NUL. 0 or -1. */
int client_secret_hash(const struct client_secret_key *k, const char *secret, size_t len,
		       char out[CLIENT_SECRET_HASH_HEX + 1]);

/* Does the secret match the stored hash? Constant time in the hash. */
bool client_secret_matches(const struct client_secret_key *k, const char *secret, size_t len,
			   const char *stored_hex, size_t stored_len);

#endif
