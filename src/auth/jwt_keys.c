/*
 * Loading the token keys at start (include/ringside/jwt.h, jwt_keys_load):
 * the files are read once, and every key is checked before the server
 * serves: libcrypto tells the key type (ES256 needs P-256, RS256 at least
 * 2048 bits), refuses encrypted keys without prompting, and a private key
 * must match its public key; a signing key is then proved by signing and
 * verifying a probe token. A bad key is a start-up error with a message,
 * never a storm of 401s.
 *
 * Each key is parsed here once into an EVP_PKEY, with sign and verify
 * contexts initialised once (jwt.c copies them per call), and gets its kid
 * (RFC 7638 thumbprint, or for HS256 an HMAC of a fixed label). The JWK
 * Set of the public keys is rendered here too.
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
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "ringside/json_writer.h"
#include "jwt_int.h"

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

/* ---- one key ----------------------------------------------------- */

/* Frees what one key holds; the key is zeroed after. */
static void key_fini(struct jwt_key *key)
{
	EVP_MD_CTX_free(key->sign_tpl);
	EVP_MD_CTX_free(key->verify_tpl);
	EVP_PKEY_free(key->pkey);
	memset(key, 0, sizeof *key);
}

/* The kid: base64url(SHA-256(json)), RFC 7638 3.1. */
static int kid_of(struct jwt_key *key, const char *json, size_t n)
{
	unsigned char md[32];

	if (!EVP_Digest(json, n, md, NULL, EVP_sha256(), NULL))
		return -1;
	key->kid_len = jwt_b64url_encode_(md, sizeof md, key->kid);
	return 0;
}

/* An unsigned big number parameter as base64url, big-endian, without
 * leading zeros unless pad (EC coordinates: RFC 7518 6.2.1.2, the full
 * 32 bytes). Returns the length, or 0. */
static size_t bn_param_b64(const EVP_PKEY *pkey, const char *name, int pad,
			   char *out, size_t cap)
{
	unsigned char bin[JWT_RSA_MAX_BITS / 8];
	BIGNUM *bn = NULL;
	int len;

	if (!EVP_PKEY_get_bn_param(pkey, name, &bn))
		return 0;
	len = pad ? (BN_num_bytes(bn) <= pad ? BN_bn2binpad(bn, bin, pad) : -1)
		  : (BN_num_bytes(bn) <= (int)sizeof bin ? BN_bn2bin(bn, bin) : -1);
	BN_free(bn);
	if (len <= 0 || (size_t)(len + 2) / 3 * 4 + 1 > cap)
		return 0;
	return jwt_b64url_encode_(bin, (size_t)len, out);
}

#define JWK_MEMBER_CAP (JWT_RSA_MAX_BITS / 8 / 3 * 4 + 8)

/* The members of the public JWK of key (RFC 7517, 7518 6): with
 * thumbprint set, only the required ones in lexicographic order (RFC
 * 7638 3.2), else the published form. Writes through w. */
static void jwk_members(struct json_writer *w, const struct jwt_key *key,
			bool thumbprint)
{
	char a[JWK_MEMBER_CAP], b[JWK_MEMBER_CAP];
	size_t na, nb;

	if (key->alg == JWT_PIN_RS256) {
		na = bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_E, 0, a, sizeof a);
		nb = bn_param_b64(key->pkey, OSSL_PKEY_PARAM_RSA_N, 0, b, sizeof b);
		if (!na || !nb) {
			w->overflow = true;
			return;
		}
		if (thumbprint) {
			jsonw_key(w, "e");
			jsonw_string(w, a, na);
			jsonw_key(w, "kty");
			jsonw_cstring(w, "RSA");
			jsonw_key(w, "n");
			jsonw_string(w, b, nb);
			return;
		}
		jsonw_key(w, "kty");
		jsonw_cstring(w, "RSA");
		jsonw_key(w, "use");
		jsonw_cstring(w, "sig");
		jsonw_key(w, "alg");
		jsonw_cstring(w, "RS256");
		jsonw_key(w, "kid");
		jsonw_string(w, key->kid, key->kid_len);
		jsonw_key(w, "n");
		jsonw_string(w, b, nb);
		jsonw_key(w, "e");
		jsonw_string(w, a, na);
		return;
	}
	na = bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32, a, sizeof a);
	nb = bn_param_b64(key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b, sizeof b);
	if (!na || !nb) {
		w->overflow = true;
		return;
	}
	if (thumbprint) {
		jsonw_key(w, "crv");
		jsonw_cstring(w, "P-256");
		jsonw_key(w, "kty");
		jsonw_cstring(w, "EC");
	} else {
		jsonw_key(w, "kty");
		jsonw_cstring(w, "EC");
		jsonw_key(w, "use");
		jsonw_cstring(w, "sig");
		jsonw_key(w, "alg");
		jsonw_cstring(w, "ES256");
		jsonw_key(w, "kid");
		jsonw_string(w, key->kid, key->kid_len);
		jsonw_key(w, "crv");
		jsonw_cstring(w, "P-256");
	}
	jsonw_key(w, "x");
	jsonw_string(w, a, na);
	jsonw_key(w, "y");
	jsonw_string(w, b, nb);
}

/* Parses nothing: takes pkey (owned from now on, freed on failure too),
 * makes its contexts and kid. sign: also a signing context (pkey holds
 * the private half). Returns 0 or -1 with err set. */
static int key_init(struct jwt_key *key, enum jwt_alg_pin alg, EVP_PKEY *pkey,
		    bool sign, const unsigned char *secret, size_t secret_len,
		    const char *path, char *err, size_t errcap)
{
	char buf[2 * JWK_MEMBER_CAP + 64];
	struct json_writer w;

	memset(key, 0, sizeof *key);
	key->alg = alg;
	key->pkey = pkey;
	key->sig_len = alg == JWT_PIN_HS256 ? 32 :
		       alg == JWT_PIN_ES256 ? 64 : (size_t)EVP_PKEY_get_size(pkey);
	if (sign || alg == JWT_PIN_HS256) {
		key->sign_tpl = EVP_MD_CTX_new();
		if (!key->sign_tpl ||
		    EVP_DigestSignInit(key->sign_tpl, NULL, EVP_sha256(), NULL, pkey) != 1)
			goto fail;
	}
	if (alg != JWT_PIN_HS256) {
		key->verify_tpl = EVP_MD_CTX_new();
		if (!key->verify_tpl ||
		    EVP_DigestVerifyInit(key->verify_tpl, NULL, EVP_sha256(), NULL,
					 pkey) != 1)
			goto fail;
	}
	if (alg == JWT_PIN_HS256) {
		/* Never the secret, nor a plain hash of it (a dictionary
		 * check): a MAC of a fixed label under the secret. */
		static const char label[] = "ringside jwt kid v1";
		unsigned char md[32];
		unsigned int mdlen = 0;

		if (!HMAC(EVP_sha256(), secret, (int)secret_len,
			  (const unsigned char *)label, sizeof label - 1, md, &mdlen) ||
		    mdlen != sizeof md)
			goto fail;
		key->kid_len = jwt_b64url_encode_(md, sizeof md, key->kid);
		explicit_bzero(md, sizeof md);
		return 0;
	}
	jsonw_init(&w, buf, sizeof buf);
	jsonw_start_object(&w);
	jwk_members(&w, key, true);
	jsonw_end_object(&w);
	if (!jsonw_done(&w) || kid_of(key, buf, w.len))
		goto fail;
	return 0;
fail:
	fail(err, errcap, "jwt: %s: OpenSSL cannot use the key (%s)", path,
	     ossl_reason());
	key_fini(key);
	return -1;
}

/* Reads a secret file into *buf: one line ending stripped, at least
 * JWT_SECRET_MIN bytes. */
static int read_secret(const char *path, unsigned char **buf, size_t *len,
		       char *err, size_t errcap)
{
	int e = read_file(path, SECRET_FILE_MAX, buf, len);

	if (e)
		return fail(err, errcap, "jwt: secret file %s: %s", path,
			    file_error(e));
	/* One line ending, as `openssl rand -hex 32 > file` leaves. */
	if (*len && (*buf)[*len - 1] == '\n')
		(*buf)[--*len] = '\0';
	if (*len && (*buf)[*len - 1] == '\r')
		(*buf)[--*len] = '\0';
	if (*len < JWT_SECRET_MIN) {
		fail(err, errcap,
		     "jwt: secret file %s: %zu bytes, need at least %d "
		     "(e.g. openssl rand -hex 32)",
		     path, *len, JWT_SECRET_MIN);
		explicit_bzero(*buf, *len);
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}

static int secret_key(struct jwt_key *key, const unsigned char *secret,
		      size_t len, const char *path, char *err, size_t errcap)
{
	EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL,
						       secret, len);

	if (!pkey)
		return fail(err, errcap, "jwt: secret file %s: OpenSSL refused it (%s)",
			    path, ossl_reason());
	return key_init(key, JWT_PIN_HS256, pkey, true, secret, len, path, err,
			errcap);
}

static int load_secret(struct jwt_keys *k, const char *path, char *err,
		       size_t errcap)
{
	if (read_secret(path, &k->verify_key, &k->verify_key_len, err, errcap))
		return -1;
	k->alg = JWT_PIN_HS256;
	k->sign_key = k->verify_key;
	k->sign_key_len = k->verify_key_len;
	k->sig_len = 32;
	if (secret_key(&k->set[0], k->verify_key, k->verify_key_len, path, err,
		       errcap))
		return -1;
	k->nkeys = 1;
	return 0;
}

/* A PEM public key from text: its algorithm from its type (ES256 needs
 * P-256, RS256 2048 to JWT_RSA_MAX_BITS bits). Returns the key or NULL
 * with err set. */
static EVP_PKEY *public_key(const unsigned char *pem, size_t len,
			    const char *path, enum jwt_alg_pin *alg, char *err,
			    size_t errcap)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pub = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
	char group[64];

	BIO_free(bio);
	if (!pub) {
		fail(err, errcap,
		     "jwt: public key file %s: no PEM public key (%s); "
		     "expected \"-----BEGIN PUBLIC KEY-----\"",
		     path, ossl_reason());
		return NULL;
	}
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pub, group, sizeof group, NULL) != 1 ||
		    strcmp(group, "prime256v1") != 0) {
			fail(err, errcap,
			     "jwt: public key file %s: EC key not on P-256 "
			     "(prime256v1), which ES256 requires",
			     path);
			break;
		}
		*alg = JWT_PIN_ES256;
		return pub;
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pub) < 2048 ||
		    EVP_PKEY_get_bits(pub) > JWT_RSA_MAX_BITS) {
			fail(err, errcap,
			     "jwt: public key file %s: RSA key of %d bits, "
			     "RS256 needs 2048 (RFC 7518 3.3) to %d",
			     path, EVP_PKEY_get_bits(pub), JWT_RSA_MAX_BITS);
			break;
		}
		*alg = JWT_PIN_RS256;
		return pub;
	default:
		fail(err, errcap,
		     "jwt: public key file %s: neither an EC (ES256) nor an "
		     "RSA (RS256) key",
		     path);
		break;
	}
	EVP_PKEY_free(pub);
	return NULL;
}

/* Picks ES256 or RS256 from the public key, and checks the private key
 * (if any) is its other half. */
static int load_pem(struct jwt_keys *k, const char *pub_path,
		    const char *priv_path, char *err, size_t errcap)
{
	EVP_PKEY *pub = NULL, *priv = NULL;
	BIO *bio = NULL;
	enum jwt_alg_pin alg = JWT_PIN_NONE;
	int e, r = JWT_KEYS_BAD_PUBLIC_KEY;

	e = read_file(pub_path, PEM_FILE_MAX, &k->verify_key, &k->verify_key_len);
	if (e) {
		fail(err, errcap, "jwt: public key file %s: %s", pub_path, file_error(e));
		return JWT_KEYS_BAD_PUBLIC_KEY;
	}
	ERR_clear_error();
	pub = public_key(k->verify_key, k->verify_key_len, pub_path, &alg, err,
			 errcap);
	if (!pub)
		goto out;
	k->alg = alg;
	k->sig_len = alg == JWT_PIN_ES256 ? 64 : (size_t)EVP_PKEY_get_size(pub);

	if (priv_path) {
		r = JWT_KEYS_BAD_PRIVATE_KEY;
		e = read_file(priv_path, PEM_FILE_MAX, &k->sign_key,
			      &k->sign_key_len);
		if (e) {
			fail(err, errcap, "jwt: private key file %s: %s",
			     priv_path, file_error(e));
			goto out;
		}
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
	/* The private key holds the public half: one object does both. */
	if (priv ? key_init(&k->set[0], alg, priv, true, NULL, 0, priv_path, err, errcap)
		 : key_init(&k->set[0], alg, pub, false, NULL, 0, pub_path, err, errcap)) {
		if (priv)
			priv = NULL;
		else
			pub = NULL;
		goto out;
	}
	if (priv)
		priv = NULL;
	else
		pub = NULL;
	k->nkeys = 1;
	r = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	BIO_free(bio);
	return r;
}

/* Signs and verifies one token, so a key that cannot be used stops the
 * start instead of failing every request. */
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

int jwt_keys_add_previous(struct jwt_keys *k, const char *secret_file,
			  const char *public_key_file, char *err, size_t errcap)
{
	int culprit = secret_file ? JWT_KEYS_BAD_PREVIOUS_SECRET
				  : JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY;
	const char *path = secret_file ? secret_file : public_key_file;
	struct jwt_key key;
	unsigned char *buf = NULL;
	size_t len = 0;
	int r = -1;

	if (!secret_file == !public_key_file || !path || !*path) {
		fail(err, errcap, "jwt: a previous key is a secret file or a public key file");
		return culprit;
	}
	if (k->nkeys == 0) {
		fail(err, errcap, "jwt: previous key %s: no current key loaded", path);
		return culprit;
	}
	if (k->nkeys >= JWT_KEYS_MAX) {
		fail(err, errcap, "jwt: previous key %s: at most %d keys in all", path,
		     JWT_KEYS_MAX);
		return culprit;
	}
	ERR_clear_error();
	if (secret_file) {
		if (read_secret(path, &buf, &len, err, errcap) == 0)
			r = secret_key(&key, buf, len, path, err, errcap);
	} else {
		enum jwt_alg_pin alg = JWT_PIN_NONE;
		int e = read_file(path, PEM_FILE_MAX, &buf, &len);
		EVP_PKEY *pub;

		if (e) {
			fail(err, errcap, "jwt: public key file %s: %s", path, file_error(e));
		} else if ((pub = public_key(buf, len, path, &alg, err, errcap))) {
			r = key_init(&key, alg, pub, false, NULL, 0, path, err, errcap);
		}
	}
	ERR_clear_error();
	if (buf) {
		explicit_bzero(buf, len);
		free(buf);
	}
	if (r)
		return culprit;
	for (size_t i = 0; i < k->nkeys; i++) {
		if (strcmp(k->set[i].kid, key.kid) == 0) {
			fail(err, errcap,
			     "jwt: previous key %s: already in the set (kid %s)", path,
			     key.kid);
			key_fini(&key);
			return culprit;
		}
	}
	k->set[k->nkeys++] = key;
	return 0;
}

size_t jwt_keys_jwks(const struct jwt_keys *k, char *out, size_t cap)
{
	struct json_writer w;

	jsonw_init(&w, out, cap);
	jsonw_start_object(&w);
	jsonw_key(&w, "keys");
	jsonw_start_array(&w);
	for (size_t i = 0; i < k->nkeys; i++) {
		if (k->set[i].alg == JWT_PIN_HS256)
			continue; /* a secret is never published */
		jsonw_start_object(&w);
		jwk_members(&w, &k->set[i], false);
		jsonw_end_object(&w);
	}
	jsonw_end_array(&w);
	jsonw_end_object(&w);
	return jsonw_done(&w);
}

void jwt_keys_fini(struct jwt_keys *k)
{
	for (size_t i = 0; i < JWT_KEYS_MAX; i++)
		key_fini(&k->set[i]);
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
