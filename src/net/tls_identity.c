/*
 * The server's identity (ringside/tls.h): the certificate chain and the
 * private key, read from PEM, checked against each other, published to
 * the workers through an atomic pointer and replaced on SIGHUP.
 *
 * The key is held twice: as BearSSL's structure, which its engine passes
 * back to the signing callback and which says the key's type and size,
 * and as an EVP_PKEY that does the signing. BearSSL 0.6 as Debian builds
 * it has only its portable public-key code: on this project's machine a
 * P-256 signature costs 302 µs there and 17 µs in libcrypto (already
 * linked for the JWTs), an RSA-2048 one 1.2 ms against 0.26 ms.
 */
#include "ringside/tls.h"

#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringside/thread_object.h"
#include "tls_int.h"

struct tls_identity {
	br_x509_certificate *chain; /* leaf first; each data malloc'd */
	size_t chain_len;
	unsigned key_type;          /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
	unsigned bits;              /* RSA modulus, or the curve's size */
	br_rsa_private_key rsa;     /* its buffers malloc'd */
	br_ec_private_key ec;
	EVP_PKEY *pkey;             /* the same key, for libcrypto's signatures */
	struct tls_identity *replaced; /* the one installed before (kept, see tls.h) */
};

/* The identity of new handshakes; written by the main thread only. */
static _Atomic(struct tls_identity *) current_identity;

/* A certificate or key file is small; anything larger is not one. */
#define TLS_FILE_MAX (1u << 20)

static int read_whole(const char *path, unsigned char **out, size_t *len, char *err,
		      size_t errcap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	unsigned char *buf = malloc(TLS_FILE_MAX);
	size_t n = 0;
	ssize_t r = 0;
	while (buf && n < TLS_FILE_MAX && (r = read(fd, buf + n, TLS_FILE_MAX - n)) > 0)
		n += (size_t)r;
	int e = errno;
	close(fd);
	if (!buf || r < 0 || n == TLS_FILE_MAX) {
		snprintf(err, errcap, "cannot read %s: %s", path,
			 !buf ? "out of memory" : r < 0 ? strerror(e) : "larger than 1 MiB");
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* A growing DER buffer the PEM decoder writes into. */
struct der_buf {
	unsigned char *data;
	size_t len, cap;
	bool oom;
};

static void der_append(void *ctx, const void *src, size_t len)
{
	struct der_buf *d = ctx;
	if (d->oom)
		return;
	if (d->len + len > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		while (cap < d->len + len)
			cap *= 2;
		unsigned char *p = realloc(d->data, cap);
		if (!p) {
			d->oom = true;
			return;
		}
		d->data = p;
		d->cap = cap;
	}
	memcpy(d->data + d->len, src, len);
	d->len += len;
}

/* Called for each PEM object with its name and DER bytes; returns 0 to go
 * on, -1 to stop (err set). */
typedef int (*pem_visit)(void *ctx, const char *name, const unsigned char *der, size_t len,
			 char *err, size_t errcap);

static int pem_each(const unsigned char *buf, size_t len, pem_visit visit, void *ctx, char *err,
		    size_t errcap)
{
	br_pem_decoder_context pc;
	br_pem_decoder_init(&pc);
	struct der_buf d = {0};
	char name[128] = "";
	bool inside = false;
	int r = 0;
	/* The decoder ends an object at a newline: one more, in case the
	 * file's last line has none. */
	for (int pass = 0; pass < 2 && r == 0; pass++) {
		const unsigned char *p = pass == 0 ? buf : (const unsigned char *)"\n";
		size_t left = pass == 0 ? len : 1;
		while (left > 0 && r == 0) {
			size_t n = br_pem_decoder_push(&pc, p, left);
			p += n;
			left -= n;
			switch (br_pem_decoder_event(&pc)) {
			case BR_PEM_BEGIN_OBJ:
				snprintf(name, sizeof name, "%s", br_pem_decoder_name(&pc));
				d.len = 0;
				br_pem_decoder_setdest(&pc, der_append, &d);
				inside = true;
				break;
			case BR_PEM_END_OBJ:
				inside = false;
				if (d.oom) {
					snprintf(err, errcap, "out of memory");
					r = -1;
				} else {
					r = visit(ctx, name, d.data, d.len, err, errcap);
				}
				break;
			case BR_PEM_ERROR:
				snprintf(err, errcap, "not valid PEM (in a %s block)", name);
				r = -1;
				break;
			}
		}
	}
	if (r == 0 && inside) {
		snprintf(err, errcap, "PEM block %s has no END line", name);
		r = -1;
	}
	free(d.data);
	return r;
}

static int add_certificate(void *ctx, const char *name, const unsigned char *der, size_t len,
			   char *err, size_t errcap)
{
	struct tls_identity *id = ctx;
	if (strcmp(name, "CERTIFICATE") && strcmp(name, "X509 CERTIFICATE"))
		return 0; /* other blocks (parameters, comments) are not the chain */
	br_x509_decoder_context xd;
	br_x509_decoder_init(&xd, NULL, NULL);
	br_x509_decoder_push(&xd, der, len);
	if (!br_x509_decoder_get_pkey(&xd)) {
		snprintf(err, errcap, "certificate %zu is not valid X.509 (BearSSL error %d)",
			 id->chain_len + 1, br_x509_decoder_last_error(&xd));
		return -1;
	}
	br_x509_certificate *chain = realloc(id->chain, (id->chain_len + 1) * sizeof *chain);
	unsigned char *copy = malloc(len);
	if (!chain || !copy) {
		if (chain)
			id->chain = chain;
		free(copy);
		snprintf(err, errcap, "out of memory");
		return -1;
	}
	memcpy(copy, der, len);
	id->chain = chain;
	id->chain[id->chain_len++] = (br_x509_certificate){.data = copy, .data_len = len};
	return 0;
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n)
{
	unsigned char *q = malloc(n ? n : 1);
	if (q && n)
		memcpy(q, p, n);
	return q;
}

static int take_private_key(void *ctx, const char *name, const unsigned char *der, size_t len,
			    char *err, size_t errcap)
{
	struct tls_identity *id = ctx;
	if (!strcmp(name, "ENCRYPTED PRIVATE KEY")) {
		snprintf(err, errcap, "the key is encrypted; give it unencrypted (mode 0600)");
		return -1;
	}
	if (strcmp(name, "PRIVATE KEY") && strcmp(name, "RSA PRIVATE KEY") &&
	    strcmp(name, "EC PRIVATE KEY"))
		return 0; /* EC PARAMETERS and the like */
	if (id->key_type) {
		snprintf(err, errcap, "more than one private key");
		return -1;
	}
	br_skey_decoder_context kd;
	br_skey_decoder_init(&kd);
	br_skey_decoder_push(&kd, der, len);
	int e = br_skey_decoder_last_error(&kd);
	if (e) {
		snprintf(err, errcap, "not a private key BearSSL can read (error %d)", e);
		return -1;
	}
	if (br_skey_decoder_key_type(&kd) == BR_KEYTYPE_RSA) {
		const br_rsa_private_key *k = br_skey_decoder_get_rsa(&kd);
		id->rsa = (br_rsa_private_key){
			.n_bitlen = k->n_bitlen,
			.p = dup_bytes(k->p, k->plen), .plen = k->plen,
			.q = dup_bytes(k->q, k->qlen), .qlen = k->qlen,
			.dp = dup_bytes(k->dp, k->dplen), .dplen = k->dplen,
			.dq = dup_bytes(k->dq, k->dqlen), .dqlen = k->dqlen,
			.iq = dup_bytes(k->iq, k->iqlen), .iqlen = k->iqlen,
		};
		id->key_type = BR_KEYTYPE_RSA;
		id->bits = k->n_bitlen;
		if (!id->rsa.p || !id->rsa.q || !id->rsa.dp || !id->rsa.dq || !id->rsa.iq) {
			snprintf(err, errcap, "out of memory");
			return -1;
		}
	} else {
		const br_ec_private_key *k = br_skey_decoder_get_ec(&kd);
		id->ec = (br_ec_private_key){.curve = k->curve, .x = dup_bytes(k->x, k->xlen),
					     .xlen = k->xlen};
		id->key_type = BR_KEYTYPE_EC;
		id->bits = 256;
		if (!id->ec.x) {
			snprintf(err, errcap, "out of memory");
			return -1;
		}
	}
	const unsigned char *p = der;
	id->pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
	if (!id->pkey) {
		snprintf(err, errcap, "not a private key libcrypto can read");
		return -1;
	}
	return 0;
}

/* ---- Signing, through libcrypto ---- */

static const struct tls_identity *identity_of_ec(const br_ec_private_key *sk)
{
	return (const struct tls_identity *)(const void *)((const char *)sk -
							  offsetof(struct tls_identity, ec));
}

static const struct tls_identity *identity_of_rsa(const br_rsa_private_key *sk)
{
	return (const struct tls_identity *)(const void *)((const char *)sk -
							  offsetof(struct tls_identity, rsa));
}

/* A signing context per worker thread, for the identity it last signed
 * with: a context made and initialised per signature would fetch the
 * algorithm from the provider each time. It holds a reference to the
 * key, so a replaced identity's key lives until the context moves on.
 * Freed at thread exit. */
struct sign_ctx {
	const struct tls_identity *id;
	EVP_PKEY_CTX *ctx;
};

static void *sign_ctx_make(void)
{
	return calloc(1, sizeof(struct sign_ctx));
}

static void sign_ctx_free(void *p)
{
	struct sign_ctx *s = p;
	EVP_PKEY_CTX_free(s->ctx);
	free(s);
}

static struct thread_object sign_ctxs = THREAD_OBJECT(sign_ctx_make, sign_ctx_free);

static EVP_PKEY_CTX *new_sign_ctx(const struct tls_identity *id)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(id->pkey, NULL);
	if (c && EVP_PKEY_sign_init(c) != 1) {
		EVP_PKEY_CTX_free(c);
		c = NULL;
	}
	return c;
}

static EVP_PKEY_CTX *thread_sign_ctx(const struct tls_identity *id)
{
	struct sign_ctx *s = thread_object_get(&sign_ctxs);
	if (!s)
		return NULL;
	if (s->id != id) {
		EVP_PKEY_CTX_free(s->ctx);
		s->ctx = new_sign_ctx(id);
		s->id = s->ctx ? id : NULL;
	}
	return s->ctx;
}

/* ECDSA over a hash BearSSL computed, DER-encoded as TLS wants it;
 * returns the signature's length, 0 on failure. */
static size_t ecdsa_sign_with(EVP_PKEY_CTX *c, const void *hash, size_t hash_len,
			      unsigned char *sig)
{
	size_t len = 72; /* the largest P-256 signature in DER */
	return c && EVP_PKEY_sign(c, sig, &len, hash, hash_len) == 1 ? len : 0;
}

/* The hash a PKCS#1 signature names (BearSSL gives the OID, a length
 * byte first); NULL for TLS 1.0's MD5+SHA-1, which is never negotiated. */
static const EVP_MD *pkcs1_hash(const unsigned char *oid)
{
	static const struct {
		const unsigned char *oid;
		const EVP_MD *(*md)(void);
	} known[] = {
		{BR_HASH_OID_SHA1, EVP_sha1},     {BR_HASH_OID_SHA224, EVP_sha224},
		{BR_HASH_OID_SHA256, EVP_sha256}, {BR_HASH_OID_SHA384, EVP_sha384},
		{BR_HASH_OID_SHA512, EVP_sha512},
	};
	for (size_t i = 0; oid && i < sizeof known / sizeof known[0]; i++)
		if (oid[0] == known[i].oid[0] && memcmp(oid, known[i].oid, 1u + oid[0]) == 0)
			return known[i].md();
	return NULL;
}

/* RSA PKCS#1 v1.5 into x (the modulus's size); 1 on success, 0 not. */
static uint32_t rsa_sign_with(EVP_PKEY_CTX *c, const unsigned char *oid, const void *hash,
			      size_t hash_len, unsigned char *x, size_t modulus_len)
{
	const EVP_MD *md = pkcs1_hash(oid);
	size_t len = modulus_len;
	return c && md && EVP_PKEY_CTX_set_signature_md(c, md) == 1 &&
	       EVP_PKEY_sign(c, x, &len, hash, hash_len) == 1 && len == modulus_len;
}

/* BearSSL's br_ecdsa_sign and br_rsa_pkcs1_sign, as its single-key
 * policies call them for the ServerKeyExchange: sk is the identity's own
 * BearSSL key, which leads back to the identity and its EVP_PKEY. */
static size_t handshake_ecdsa_sign(const br_ec_impl *impl, const br_hash_class *hf,
				   const void *hash, const br_ec_private_key *sk, void *sig)
{
	(void)impl;
	const struct tls_identity *id = identity_of_ec(sk);
	size_t hash_len = (hf->desc >> BR_HASHDESC_OUT_OFF) & BR_HASHDESC_OUT_MASK;
	return ecdsa_sign_with(thread_sign_ctx(id), hash, hash_len, sig);
}

static uint32_t handshake_rsa_sign(const unsigned char *oid, const unsigned char *hash,
				   size_t hash_len, const br_rsa_private_key *sk, unsigned char *x)
{
	const struct tls_identity *id = identity_of_rsa(sk);
	return rsa_sign_with(thread_sign_ctx(id), oid, hash, hash_len, x,
			     (sk->n_bitlen + 7) / 8);
}

void tls_identity_attach(const struct tls_identity *id, br_ssl_server_context *sc)
{
	if (id->key_type == BR_KEYTYPE_EC)
		br_ssl_server_set_single_ec(sc, id->chain, id->chain_len, &id->ec, BR_KEYTYPE_SIGN,
					    BR_KEYTYPE_EC, &tls_ec_libcrypto,
					    handshake_ecdsa_sign);
	else
		/* The RSA "core" would decrypt a static RSA key exchange, which
		 * no suite we offer has. */
		br_ssl_server_set_single_rsa(sc, id->chain, id->chain_len, &id->rsa, BR_KEYTYPE_SIGN,
					     br_rsa_private_get_default(), handshake_rsa_sign);
}

/* The private key is the leaf certificate's, and libcrypto signs with it
 * as handshakes will: a signature made by the handshake's own signing
 * code verifies under the certificate's public key (BearSSL's verifier).
 * A mismatch would otherwise fail every handshake at the client, far
 * from its cause. */
static int key_matches_leaf(const struct tls_identity *id, char *err, size_t errcap)
{
	br_x509_decoder_context xd;
	br_x509_decoder_init(&xd, NULL, NULL);
	br_x509_decoder_push(&xd, id->chain[0].data, id->chain[0].data_len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	if (!pk || pk->key_type != id->key_type) {
		snprintf(err, errcap, "the key is %s, the certificate's is not",
			 id->key_type == BR_KEYTYPE_RSA ? "RSA" : "EC");
		return -1;
	}
	static const unsigned char digest[32] = "ringside: key matches the cert";
	unsigned char sig[512]; /* 4 096-bit RSA: the largest BearSSL handles */
	EVP_PKEY_CTX *c = new_sign_ctx(id);
	bool ok;
	if (id->key_type == BR_KEYTYPE_RSA) {
		size_t n = (id->rsa.n_bitlen + 7) / 8;
		unsigned char back[sizeof digest];
		ok = n <= sizeof sig &&
		     rsa_sign_with(c, BR_HASH_OID_SHA256, digest, sizeof digest, sig, n) &&
		     br_rsa_pkcs1_vrfy_get_default()(sig, n, BR_HASH_OID_SHA256, sizeof back,
						     &pk->key.rsa, back) &&
		     memcmp(back, digest, sizeof back) == 0;
	} else {
		size_t n = ecdsa_sign_with(c, digest, sizeof digest, sig);
		ok = n > 0 && pk->key.ec.curve == id->ec.curve &&
		     br_ecdsa_vrfy_asn1_get_default()(br_ec_get_default(), digest, sizeof digest,
						      &pk->key.ec, sig, n);
	}
	EVP_PKEY_CTX_free(c);
	if (!ok) {
		snprintf(err, errcap, "the key is not the certificate's (its signature does not "
				      "verify under the certificate's public key)");
		return -1;
	}
	return 0;
}

static void free_secret(unsigned char *p, size_t n)
{
	if (p)
		explicit_bzero(p, n);
	free(p);
}

void tls_identity_free(struct tls_identity *id)
{
	if (!id)
		return;
	for (size_t i = 0; i < id->chain_len; i++)
		free(id->chain[i].data);
	free(id->chain);
	if (id->key_type == BR_KEYTYPE_RSA) {
		free_secret(id->rsa.p, id->rsa.plen);
		free_secret(id->rsa.q, id->rsa.qlen);
		free_secret(id->rsa.dp, id->rsa.dplen);
		free_secret(id->rsa.dq, id->rsa.dqlen);
		free_secret(id->rsa.iq, id->rsa.iqlen);
	}
	if (id->key_type == BR_KEYTYPE_EC)
		free_secret(id->ec.x, id->ec.xlen);
	EVP_PKEY_free(id->pkey);
	free(id);
}

int tls_identity_load(const char *cert_path, const char *key_path, struct tls_identity **out,
		      char *err, size_t errcap)
{
	struct tls_identity *id = calloc(1, sizeof *id);
	unsigned char *buf = NULL;
	size_t len = 0;
	int culprit = TLS_LOAD_BAD_CERT;
	if (!id) {
		snprintf(err, errcap, "out of memory");
		return culprit;
	}
	if (read_whole(cert_path, &buf, &len, err, errcap) < 0 ||
	    pem_each(buf, len, add_certificate, id, err, errcap) < 0)
		goto fail;
	if (id->chain_len == 0) {
		snprintf(err, errcap, "no CERTIFICATE block in %s", cert_path);
		goto fail;
	}
	free(buf);
	buf = NULL;
	culprit = TLS_LOAD_BAD_KEY;
	if (read_whole(key_path, &buf, &len, err, errcap) < 0 ||
	    pem_each(buf, len, take_private_key, id, err, errcap) < 0)
		goto fail;
	if (!id->key_type) {
		snprintf(err, errcap, "no private key block in %s", key_path);
		goto fail;
	}
	/* Below 2048 bits RSA is breakable in reach of a well-funded
	 * attacker (NIST SP 800-131A); P-256 is what every client has. */
	if (id->key_type == BR_KEYTYPE_RSA && id->rsa.n_bitlen < 2048) {
		snprintf(err, errcap, "RSA key of %u bits; at least 2048 are needed", id->rsa.n_bitlen);
		goto fail;
	}
	if (id->key_type == BR_KEYTYPE_EC && id->ec.curve != BR_EC_secp256r1) {
		snprintf(err, errcap, "EC key on curve %d; only P-256 (prime256v1) is served",
			 id->ec.curve);
		goto fail;
	}
	if (key_matches_leaf(id, err, errcap) < 0)
		goto fail;
	/* The key's bytes do not stay in a buffer we free unwiped. */
	explicit_bzero(buf, len);
	free(buf);
	*out = id;
	return 0;
fail:
	if (buf)
		explicit_bzero(buf, len);
	free(buf);
	tls_identity_free(id);
	return culprit;
}

const struct tls_identity *tls_identity_current(void)
{
	return atomic_load_explicit(&current_identity, memory_order_acquire);
}

void tls_identity_install(struct tls_identity *id)
{
	id->replaced = atomic_load_explicit(&current_identity, memory_order_relaxed);
	/* Release: a worker that sees the pointer sees the identity whole. */
	atomic_store_explicit(&current_identity, id, memory_order_release);
}

const char *tls_identity_describe(const struct tls_identity *id, unsigned *bits)
{
	*bits = id->bits;
	return id->key_type == BR_KEYTYPE_RSA ? "rsa" : "ec";
}

void tls_identities_free(void)
{
	struct tls_identity *id = atomic_exchange(&current_identity, NULL);
	while (id) {
		struct tls_identity *older = id->replaced;
		tls_identity_free(id);
		id = older;
	}
}
