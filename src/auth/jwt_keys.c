/*
 * Loading the token keys at start (include/ringside/jwt.h, jwt_keys_load):
 * the files are read once, and every key is checked before the server
 * serves: libcrypto tells the key type (ES256 needs P-256, RS256 at least
 * 2048 bits), refuses encrypted keys without prompting, and a private key
 * must match its public key; a signing key is then proved by signing and
 * verifying a probe token through libjwt. A bad key is a start-up error
 * with a message, never a storm of 401s.
 */
#include "ringside/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* ---- loading keys -------------------------------------------------- */

#define SECRET_FILE_MAX 4096
#define PEM_FILE_MAX (64 * 1024)

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (cap) {
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The whole file in a new buffer (plus a NUL, not counted in *len).
 * Returns 0 or an errno; EFBIG if it is larger than max. */
static int read_file(const char *path, size_t max, unsigned char **buf,
		     size_t *len)
{
	struct stat st;
	unsigned char *b = NULL;
	size_t got = 0;
	int fd, e = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0) {
		e = errno;
	} else if (!S_ISREG(st.st_mode)) {
		e = EINVAL;
	} else if ((uint64_t)st.st_size > max) {
		e = EFBIG;
	} else if (!(b = malloc((size_t)st.st_size + 1))) {
		e = ENOMEM;
	}
	while (!e && got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			e = n < 0 ? errno : EIO; /* shrank under us */
		else
			got += (size_t)n;
	}
	close(fd);
	if (e) {
		if (b)
			explicit_bzero(b, got);
		free(b);
		return e;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

static const char *file_error(int e)
{
	return e == EFBIG ? "file too large" :
	       e == EINVAL ? "not a regular file" : strerror(e);
}

/* Why OpenSSL refused, for the start-up message. */
static const char *ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unrecognised";
}

static bool name_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, JWT_ISS_CAP);
	if (n == 0 || n == JWT_ISS_CAP)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* Never prompts: an encrypted private key is a start-up error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

static int load_secret(struct jwt_keys *k, const char *path, char *err,
		       size_t errcap)
{
	int e = read_file(path, SECRET_FILE_MAX, &k->verify_key,
			  &k->verify_key_len);

	if (e)
		return fail(err, errcap, "jwt: secret file %s: %s", path,
			    file_error(e));
	/* One line ending, as `openssl rand -hex 32 > file` leaves. */
	if (k->verify_key_len && k->verify_key[k->verify_key_len - 1] == '\n')
		k->verify_key[--k->verify_key_len] = '\0';
	if (k->verify_key_len && k->verify_key[k->verify_key_len - 1] == '\r')
		k->verify_key[--k->verify_key_len] = '\0';
	if (k->verify_key_len < JWT_SECRET_MIN)
		return fail(err, errcap,
			    "jwt: secret file %s: %zu bytes, need at least %d "
			    "(e.g. openssl rand -hex 32)",
			    path, k->verify_key_len, JWT_SECRET_MIN);
	k->alg = JWT_PIN_HS256;
	k->sign_key = k->verify_key;
	k->sign_key_len = k->verify_key_len;
	k->sig_len = 32;
	return 0;
}

/* Picks ES256 or RS256 from the public key, and checks the private key
 * (if any) is its other half. */
static int load_pem(struct jwt_keys *k, const char *pub_path,
		    const char *priv_path, char *err, size_t errcap)
{
	EVP_PKEY *pub = NULL, *priv = NULL;
	BIO *bio = NULL;
	char group[64];
	int e, r = JWT_KEYS_BAD_PUBLIC_KEY;

	e = read_file(pub_path, PEM_FILE_MAX, &k->verify_key, &k->verify_key_len);
	if (e) {
		fail(err, errcap, "jwt: public key file %s: %s", pub_path, file_error(e));
		return JWT_KEYS_BAD_PUBLIC_KEY;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(k->verify_key, (int)k->verify_key_len);
	if (!bio || !(pub = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL))) {
		fail(err, errcap,
		     "jwt: public key file %s: no PEM public key (%s); "
		     "expected \"-----BEGIN PUBLIC KEY-----\"",
		     pub_path, ossl_reason());
		goto out;
	}
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pub, group, sizeof group, NULL) != 1 ||
		    strcmp(group, "prime256v1") != 0) {
			fail(err, errcap,
			     "jwt: public key file %s: EC key not on P-256 "
			     "(prime256v1), which ES256 requires",
			     pub_path);
			goto out;
		}
		k->alg = JWT_PIN_ES256;
		k->sig_len = 64; /* R || S, RFC 7518 3.4 */
		break;
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pub) < 2048) {
			fail(err, errcap,
			     "jwt: public key file %s: RSA key of %d bits, "
			     "RS256 needs at least 2048 (RFC 7518 3.3)",
			     pub_path, EVP_PKEY_get_bits(pub));
			goto out;
		}
		k->alg = JWT_PIN_RS256;
		k->sig_len = (size_t)EVP_PKEY_get_size(pub);
		break;
	default:
		fail(err, errcap,
		     "jwt: public key file %s: neither an EC (ES256) nor an "
		     "RSA (RS256) key",
		     pub_path);
		goto out;
	}

	if (priv_path) {
		r = JWT_KEYS_BAD_PRIVATE_KEY;
		e = read_file(priv_path, PEM_FILE_MAX, &k->sign_key,
			      &k->sign_key_len);
		if (e) {
			fail(err, errcap, "jwt: private key file %s: %s",
			     priv_path, file_error(e));
			goto out;
		}
		BIO_free(bio);
		bio = BIO_new_mem_buf(k->sign_key, (int)k->sign_key_len);
		if (!bio || !(priv = PEM_read_bio_PrivateKey(bio, NULL,
							     no_passphrase, NULL))) {
			fail(err, errcap,
			     "jwt: private key file %s: no unencrypted PEM "
			     "private key (%s)",
			     priv_path, ossl_reason());
			goto out;
		}
		if (EVP_PKEY_eq(pub, priv) != 1) {
			fail(err, errcap,
			     "jwt: private key file %s does not match public key "
			     "file %s",
			     priv_path, pub_path);
			goto out;
		}
	}
	r = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	BIO_free(bio);
	return r;
}

/* Signs and verifies one token through libjwt, so a key libjwt cannot use
 * stops the start instead of failing every request. */
static int probe(struct jwt_keys *k, char *err, size_t errcap)
{
	struct jwt_claims c = {.sub = "probe", .organization_id = "probe",
			       .jti = "probe", .scopes = JWT_SCOPE_ALL,
			       .iat = 1700000000, .exp = 1700000060};
	struct jwt_claims back;
	char tok[JWT_TOKEN_LIMIT];
	int r = jwt_sign(k, &c, tok, sizeof tok);

	if (r < 0)
		return fail(err, errcap, "jwt: %s probe token: signing failed: %s",
			    jwt_alg_pin_name(k->alg), jwt_error_reason(r));
	r = jwt_verify(k, tok, (size_t)r, c.iat, &back);
	if (r || strcmp(back.sub, c.sub) != 0 || back.scopes != c.scopes)
		return fail(err, errcap,
			    "jwt: %s probe token did not verify: %s",
			    jwt_alg_pin_name(k->alg), jwt_error_reason(r));
	return 0;
}

int jwt_keys_load(struct jwt_keys *k, const char *secret_file,
		  const char *public_key_file, const char *private_key_file,
		  const char *issuer, const char *audience, char *err,
		  size_t errcap)
{
	memset(k, 0, sizeof *k);
	/* An empty path is an unset option, as the config's defaults are. */
	if (secret_file && !*secret_file)
		secret_file = NULL;
	if (public_key_file && !*public_key_file)
		public_key_file = NULL;
	if (private_key_file && !*private_key_file)
		private_key_file = NULL;
	if (!name_ok(issuer)) {
		fail(err, errcap,
		     "jwt: issuer must be 1 to %d printable ASCII bytes without '\"' or '\\'",
		     JWT_ISS_CAP - 1);
		return JWT_KEYS_BAD_ISSUER;
	}
	if (!name_ok(audience)) {
		fail(err, errcap,
		     "jwt: audience must be 1 to %d printable ASCII bytes without '\"' or '\\'",
		     JWT_ISS_CAP - 1);
		return JWT_KEYS_BAD_AUDIENCE;
	}
	if (private_key_file && !public_key_file) {
		fail(err, errcap,
		     "jwt: a private key file needs its public key file; HS256 signs with the "
		     "secret");
		return JWT_KEYS_BAD_PRIVATE_KEY;
	}
	if (!secret_file == !public_key_file) {
		fail(err, errcap,
		     "jwt: give exactly one of a secret file (HS256) and a public key file "
		     "(ES256, RS256)");
		return JWT_KEYS_BAD_COMBINATION;
	}
	memcpy(k->issuer, issuer, strlen(issuer) + 1);
	memcpy(k->audience, audience, strlen(audience) + 1);
	k->leeway = JWT_LEEWAY_DEFAULT;
	k->max_token_bytes = JWT_TOKEN_DEFAULT;

	int r = secret_file ? load_secret(k, secret_file, err, errcap)
			    : load_pem(k, public_key_file, private_key_file, err, errcap);
	if (r == 0 && k->sign_key && probe(k, err, errcap))
		r = secret_file ? JWT_KEYS_BAD_SECRET : JWT_KEYS_BAD_PRIVATE_KEY;
	if (r < 0) {
		jwt_keys_fini(k);
		return secret_file && r == -1 ? JWT_KEYS_BAD_SECRET : r;
	}
	return 0;
}

void jwt_keys_fini(struct jwt_keys *k)
{
	if (k->sign_key && k->sign_key != k->verify_key) {
		explicit_bzero(k->sign_key, k->sign_key_len);
		free(k->sign_key);
	}
	if (k->verify_key) {
		explicit_bzero(k->verify_key, k->verify_key_len);
		free(k->verify_key);
	}
	memset(k, 0, sizeof *k);
}
