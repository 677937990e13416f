/*
 * Agent tokens: JWTs (RFC 7519) signed with exactly one algorithm per
 * server, HS256, ES256 (P-256) or RS256 (DESIGN.md "JWT").
 *
 * The base64url, JSON and JWS work is ours and the cryptography is
 * OpenSSL's (EVP_DigestSign, EVP_DigestVerify) over keys parsed once at
 * load; libjwt is no longer on the signing or verifying path (it once
 * re-read the PEM on every call: 0.9 ms per RS256 token). jwt_verify()
 * checks the length first, the shape of the token, the header's `kid` and
 * `alg` against the key it selects before any cryptography runs, the
 * signature, then every claim.
 *
 * Keys form a set (rotation): one current key, which signs, and previous
 * keys that only verify, so tokens signed before a rotation stay valid
 * until they expire. Every key has a `kid`: the RFC 7638 JWK thumbprint
 * for an EC or RSA key, an HMAC of a fixed label for an HS256 secret
 * (never the secret, never published).
 *
 * jwt_verify() and jwt_sign() allocate only inside OpenSSL (its per-call
 * signature state); each uses about 15 KiB of stack.
 */
#ifndef RINGSIDE_JWT_H
#define RINGSIDE_JWT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Our error codes, negative, in one table: the enum and the reasons come
 * from it. A reason is for logs and the `hint` of a 401; the HTTP layer
 * answers 401 UNAUTHORIZED for every verification failure.
 */
#define JWT_ERR_MAP(X)                                                          \
	X(TOO_LONG, -1, "token too long")                                      \
	X(MALFORMED, -2, "malformed token")                                    \
	X(ALG, -3, "wrong algorithm")                                          \
	X(SIGNATURE, -4, "bad signature")                                      \
	X(EXPIRED, -5, "token expired")                                        \
	X(NOT_YET_VALID, -6, "token not yet valid")                            \
	X(IAT_FUTURE, -7, "token issued in the future")                        \
	X(EXP, -8, "exp claim missing or not a positive integer")              \
	X(IAT, -9, "iat claim missing or not a positive integer")              \
	X(NBF, -10, "nbf claim not a positive integer")                        \
	X(ISSUER, -11, "wrong issuer")                                         \
	X(AUDIENCE, -12, "wrong audience")                                     \
	X(SUB, -13, "sub claim missing or not a string")                       \
	X(ORG, -14, "organization_id claim missing or not a string")           \
	X(JTI, -15, "jti claim missing or not a string")                       \
	X(SCOPE, -16, "scope claim missing or not a string")                   \
	X(CLAIM_TOO_LONG, -17, "claim too long")                               \
	X(NOMEM, -18, "out of memory")                                         \
	X(NO_SIGNING_KEY, -19, "no signing key configured")                    \
	X(BUFFER, -20, "output buffer too small")                              \
	X(RANDOM, -21, "no random bytes for jti")                              \
	X(INVALID, -22, "invalid argument")                                    \
	X(SIGNING, -23, "signing failed")                                      \
	X(KID, -24, "unknown key id")

enum jwt_error {
	JWT_OK = 0,
#define JWT_ERR_ENUM_(name, value, reason) JWT_E_##name = (value),
	JWT_ERR_MAP(JWT_ERR_ENUM_)
#undef JWT_ERR_ENUM_
};

/* "token expired" for JWT_E_EXPIRED, "ok" for 0, "unknown error" for a
 * code not in the table. A static string. */
const char *jwt_error_reason(int code);

/* The algorithm of a server. Chosen by jwt_keys_load from the key files:
 * a secret file means HS256, a public key file ES256 (P-256) or RS256
 * (at least 2048 bits) after its key type. */
enum jwt_alg_pin {
	JWT_PIN_NONE = 0, /* not loaded */
	JWT_PIN_HS256,
	JWT_PIN_ES256,
	JWT_PIN_RS256,
};

/* "HS256", "ES256", "RS256"; "none" otherwise. */
const char *jwt_alg_pin_name(enum jwt_alg_pin alg);

#define JWT_SECRET_MIN 32      /* bytes; RFC 7518 3.2: at least the hash size */
#define JWT_ISS_CAP 256        /* issuer and audience: at most 255 bytes */
#define JWT_TOKEN_DEFAULT 4096 /* default max_token_bytes */
#define JWT_TOKEN_LIMIT 8192   /* max_token_bytes is clamped to this */
#define JWT_LEEWAY_DEFAULT 30  /* seconds */

#define JWT_KID_CAP 48  /* a kid: 43 base64url characters of SHA-256, NUL */
#define JWT_KEYS_MAX 8  /* the current key and up to 7 previous ones */
#define JWT_RSA_MAX_BITS 8192 /* larger RSA keys are refused: verify cost */

/* One key of the set. pkey is an EVP_PKEY (public, and private too for
 * a current key that signs; the HMAC key for HS256); the two contexts
 * are initialised once at load and copied per call, so no call parses a
 * key or fetches an algorithm. */
struct evp_pkey_st;
struct evp_md_ctx_st;
struct jwt_key {
	enum jwt_alg_pin alg;
	char kid[JWT_KID_CAP];
	size_t kid_len;
	size_t sig_len;                 /* JWS signature bytes: 32, 64, RSA modulus */
	struct evp_pkey_st *pkey;
	struct evp_md_ctx_st *sign_tpl;   /* NULL unless this key signs (or HS256) */
	struct evp_md_ctx_st *verify_tpl; /* EC and RSA */
};

/*
 * Keys and policy of a server, loaded once at start and then only read, so
 * every worker may share one. Fields may be read; leeway and
 * max_token_bytes may be changed after jwt_keys_load (max_token_bytes is
 * clamped to JWT_TOKEN_LIMIT when used).
 *
 * set[0] is the current key (alg, sig_len and the file bytes below are
 * its own); set[1 .. nkeys) are previous keys, verify only.
 */
struct jwt_keys {
	enum jwt_alg_pin alg;
	unsigned char *verify_key; /* HS256 secret, or PEM public key text */
	size_t verify_key_len;
	unsigned char *sign_key;   /* HS256: == verify_key; PEM private key; or NULL */
	size_t sign_key_len;
	size_t sig_len;            /* signature bytes: 32, 64 or the RSA modulus */
	struct jwt_key set[JWT_KEYS_MAX];
	size_t nkeys;
	char issuer[JWT_ISS_CAP];
	char audience[JWT_ISS_CAP];
	int64_t leeway;            /* seconds of clock skew allowed; default 30 */
	size_t max_token_bytes;    /* longer tokens are rejected unread; 4096 */
};

/* What jwt_keys_load refused, as its negative return. */
enum jwt_keys_culprit {
	JWT_KEYS_BAD_SECRET = -1,      /* unreadable, or under JWT_SECRET_MIN */
	JWT_KEYS_BAD_PUBLIC_KEY = -2,
	JWT_KEYS_BAD_PRIVATE_KEY = -3, /* unreadable, not a key, not the pair, alone */
	JWT_KEYS_BAD_ISSUER = -4,
	JWT_KEYS_BAD_AUDIENCE = -5,
	JWT_KEYS_BAD_COMBINATION = -6, /* both kinds given, or neither */
	JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY = -7,
	JWT_KEYS_BAD_PREVIOUS_SECRET = -8,
};

/*
 * Reads the key files once, at start. Exactly one of secret_file (HS256:
 * raw bytes, one trailing "\n" or "\r\n" stripped, at least JWT_SECRET_MIN
 * bytes) and public_key_file (PEM SubjectPublicKeyInfo: P-256 for ES256,
 * RSA of 2048 bits or more for RS256). private_key_file (PEM, unencrypted,
 * ES/RS only, may be NULL) must match the public key. Keys are parsed
 * once, here, into OpenSSL objects and become set[0], the current key.
 * With a signing key, a probe token is signed and verified, so a key that
 * cannot be used stops the start rather than failing every request. A NULL or empty
 * path is not given. issuer and audience: 1 to 255 printable ASCII bytes
 * without '"' or '\'. Needs libcrypto (-lcrypto).
 *
 * Returns 0, or a negative enum jwt_keys_culprit (which input is wrong,
 * for the caller to name its flag) with a one-line message in err (which
 * names the file and what is wrong) and k left empty. k is overwritten;
 * it must be released with jwt_keys_fini.
 */
int jwt_keys_load(struct jwt_keys *k, const char *secret_file,
		  const char *public_key_file, const char *private_key_file,
		  const char *issuer, const char *audience, char *err,
		  size_t errcap);

/*
 * Adds a previous key, verify only, after jwt_keys_load: exactly one of
 * secret_file (HS256, read as jwt_keys_load reads it) and public_key_file
 * (PEM, P-256 or RSA >= 2048 bits). Tokens whose header names its kid
 * verify with it until they expire; it never signs and, being previous,
 * is published by jwt_keys_jwks after the current key.
 *
 * Returns 0, or JWT_KEYS_BAD_PREVIOUS_SECRET or
 * JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY (unreadable, not a usable key, the
 * same kid as a key already in the set, or the set full at JWT_KEYS_MAX)
 * with a message in err; k is unchanged then.
 */
int jwt_keys_add_previous(struct jwt_keys *k, const char *secret_file,
			  const char *public_key_file, char *err, size_t errcap);

/*
 * Renders the set's public keys as an RFC 7517 JWK Set:
 * {"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":…,"n":…,"e":…},
 * {"kty":"EC","use":"sig","alg":"ES256","crv":"P-256","kid":…,"x":…,"y":…}]}
 * current key first. HS256 keys are never written. Writes the text and a
 * NUL to out; returns its length, or 0 if it does not fit in cap.
 */
size_t jwt_keys_jwks(const struct jwt_keys *k, char *out, size_t cap);

/* Wipes and frees the keys; k is empty after and may be loaded again.
 * Harmless on a zeroed or already finished k. */
void jwt_keys_fini(struct jwt_keys *k);

/* Scopes: the `scope` claim is a space-separated string (RFC 6749 3.3). */
enum jwt_scope {
	JWT_SCOPE_AGENTS_READ = 1u << 0,   /* "agents:read" */
	JWT_SCOPE_AGENTS_WRITE = 1u << 1,  /* "agents:write" */
	JWT_SCOPE_TOKENS_READ = 1u << 2,   /* "tokens:read" */
	JWT_SCOPE_METRICS_WRITE = 1u << 3, /* "metrics:write" */
};
#define JWT_SCOPE_ALL 0xfu

/* The bitmask of the known scopes in a space-separated list of len bytes;
 * unknown scope tokens are ignored. */
uint32_t jwt_scope_parse(const char *s, size_t len);

/* Writes the scopes' names, space-separated in the enum's order, and a NUL.
 * Returns the length, or JWT_E_BUFFER if cap is too small. */
int jwt_scope_format(uint32_t scopes, char *out, size_t cap);

#define JWT_ID_CAP 64 /* sub, organization_id, jti: at most 63 bytes */

/* What a verified token says (288 bytes). A claim longer than its buffer
 * makes the token invalid (JWT_E_CLAIM_TOO_LONG), never truncated. */
struct jwt_claims {
	char sub[JWT_ID_CAP];             /* agent id */
	char client_id[JWT_ID_CAP];       /* OAuth client; "" if absent (optional) */
	char organization_id[JWT_ID_CAP];
	char jti[JWT_ID_CAP];             /* token id, for revocation */
	uint32_t scopes;                  /* enum jwt_scope bits */
	int64_t iat;
	int64_t nbf;                      /* 0 if absent */
	int64_t exp;
};

/*
 * Verifies the len bytes at token (need not be NUL-terminated) at time
 * now (Unix seconds). Fills *out and returns 0 if the token is valid, else
 * returns a JWT_E_* code and *out is unspecified. Rules, in order:
 *
 * - len <= max_token_bytes, else JWT_E_TOO_LONG, before any byte is read;
 * - three non-empty segments of base64url characters (RFC 7515 7.1, no
 *   padding, canonical), JSON objects in the first two, no claim that we
 *   read given twice (RFC 7519 4) (JWT_E_MALFORMED);
 * - the header's kid (a string, at most once) selects the key of the set:
 *   a kid not in the set is JWT_E_KID; without a kid, the current key
 *   (tokens minted before kids); then the header's alg == that key's
 *   algorithm before any cryptography (JWT_E_ALG: catches `none`, HS256
 *   with the public key as the HMAC secret, a kid of a key of another
 *   alg); no `crit` header;
 * - the signature, with that key (JWT_E_SIGNATURE);
 * - exp present and exp > now - leeway; nbf, if present, <= now + leeway;
 *   iat present and iat <= now + leeway; these are integers > 0;
 * - iss == issuer; aud == audience, or an array containing it;
 * - sub, organization_id, jti: non-empty strings that fit JWT_ID_CAP;
 *   scope: a string; client_id, if present: a string that fits JWT_ID_CAP.
 */
int jwt_verify(const struct jwt_keys *k, const char *token, size_t len,
	       int64_t now, struct jwt_claims *out);

/*
 * The first four rules of jwt_verify only: length, shape, algorithm and
 * signature; no claim is read. For tests and tools that check a foreign
 * token's signature (RFC 7515's examples have no aud). It does not
 * authenticate anything: never use it on a request.
 */
int jwt_verify_signature_only(const struct jwt_keys *k, const char *token,
			      size_t len);

/*
 * Signs a token for c with the current key (set[0]): header {alg, typ
 * "JWT", kid}, claims iss and aud from k, sub, client_id (if not empty),
 * organization_id, scope (from c->scopes), jti, iat and exp (nbf is never
 * written). An empty c->jti gets 128
 * random bits in hex; a caller that must record the jti (revocation)
 * makes it first with jwt_new_jti. Writes the token and a NUL to out;
 * returns its length, or JWT_E_NO_SIGNING_KEY, JWT_E_INVALID (sub or
 * organization_id empty or unterminated, client_id unterminated, iat <= 0,
 * exp <= iat), JWT_E_BUFFER, JWT_E_RANDOM, JWT_E_NOMEM or JWT_E_SIGNING.
 * No key is parsed; OpenSSL's signature state comes from a copy of the
 * key's template into a context kept per thread.
 */
int jwt_sign(const struct jwt_keys *k, const struct jwt_claims *c, char *out,
	     size_t cap);

/* Writes 128 bits from getrandom(2) as 32 lowercase hex digits and a NUL.
 * Returns 0 or JWT_E_RANDOM. */
int jwt_new_jti(char out[JWT_ID_CAP]);

#endif
