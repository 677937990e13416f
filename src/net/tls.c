/*
 * The TLS transport (ringside/tls.h): BearSSL's server engine between the
 * socket and the connection engine. Records the kernel received go into
 * the engine's input buffer; the application bytes it decrypts go to
 * server_conn_input; the connection engine's output is copied in as
 * application data and goes out as records, from the engine's own output
 * buffer. Plus the identity (loading, checking, hot replacement) and the
 * per-worker memory.
 */
#include "ringside/tls.h"

#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "ringside/log.h"
#include "ringside/resident.h"
#include "ringside/server.h"

/* ---- The identity ---- */

struct tls_identity {
	br_x509_certificate *chain; /* leaf first; each data malloc'd */
	size_t chain_len;
	unsigned key_type;          /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
	unsigned bits;              /* RSA modulus, or the curve's size */
	br_rsa_private_key rsa;     /* its buffers malloc'd */
	br_ec_private_key ec;
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
	return 0;
}

/* Big-endian unsigned integers equal, whatever their leading zeros. */
static bool same_integer(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	while (alen && !*a)
		a++, alen--;
	while (blen && !*b)
		b++, blen--;
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* The private key is the leaf certificate's: the public key derived from
 * it is the one the certificate carries. A mismatch would fail every
 * handshake at the client, far from its cause. */
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
	if (id->key_type == BR_KEYTYPE_RSA) {
		unsigned char n[512]; /* 4 096 bits: the largest BearSSL handles */
		size_t nlen = br_rsa_compute_modulus_get_default()(NULL, &id->rsa);
		if (nlen == 0 || nlen > sizeof n ||
		    br_rsa_compute_modulus_get_default()(n, &id->rsa) != nlen) {
			snprintf(err, errcap, "the RSA key is not valid");
			return -1;
		}
		if (!same_integer(n, nlen, pk->key.rsa.n, pk->key.rsa.nlen)) {
			snprintf(err, errcap, "the key is not the certificate's (RSA moduli differ)");
			return -1;
		}
		/* The exponent: br_rsa_compute_pubexp needs p = q = 3 mod 4, which
		 * OpenSSL's keys need not be; a signature the certificate's key
		 * verifies proves the pair whole. */
		static const unsigned char digest[32] = "ringside: key matches the cert";
		unsigned char sig[512], back[32];
		if (!br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, digest, sizeof digest,
						     &id->rsa, sig) ||
		    !br_rsa_pkcs1_vrfy_get_default()(sig, nlen, BR_HASH_OID_SHA256, sizeof back,
						     &pk->key.rsa, back) ||
		    memcmp(back, digest, sizeof back) != 0) {
			snprintf(err, errcap, "the key is not the certificate's (RSA exponents differ)");
			return -1;
		}
		return 0;
	}
	unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
	size_t qlen = br_ec_compute_pub(br_ec_get_default(), NULL, q, &id->ec);
	if (qlen == 0 || pk->key.ec.curve != id->ec.curve || qlen != pk->key.ec.qlen ||
	    memcmp(q, pk->key.ec.q, qlen) != 0) {
		snprintf(err, errcap, "the key is not the certificate's (EC public points differ)");
		return -1;
	}
	return 0;
}

void tls_identity_free(struct tls_identity *id)
{
	if (!id)
		return;
	for (size_t i = 0; i < id->chain_len; i++)
		free(id->chain[i].data);
	free(id->chain);
	if (id->key_type == BR_KEYTYPE_RSA) {
		free(id->rsa.p);
		free(id->rsa.q);
		free(id->rsa.dp);
		free(id->rsa.dq);
		free(id->rsa.iq);
	}
	if (id->key_type == BR_KEYTYPE_EC)
		free(id->ec.x);
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

/*
 * The code BearSSL would pick for each primitive, picked once for the
 * process: its br_ssl_engine_set_default_* look for AES-NI, PCLMUL and
 * SSE2 with CPUID on every call, and CPUID traps to the hypervisor on a
 * virtual machine: per connection that was a quarter of a resumed
 * handshake's time here (perf: br_aes_x86ni_supported 9 %,
 * br_ghash_pclmul_get 8 %).
 */
static struct {
	const br_block_ctr_class *aes_ctr;
	br_ghash ghash;
	br_chacha20_run chacha20;
	br_poly1305_run poly1305;
	const br_ec_impl *ec;
	br_ecdsa_sign ecdsa_sign;
	br_rsa_private rsa_private;
	br_rsa_pkcs1_sign rsa_sign;
} impl;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void impl_choose(void)
{
	impl.aes_ctr = br_aes_x86ni_ctr_get_vtable();
	if (!impl.aes_ctr)
		impl.aes_ctr = &br_aes_ct64_ctr_vtable;
	impl.ghash = br_ghash_pclmul_get();
	if (!impl.ghash)
		impl.ghash = &br_ghash_ctmul64;
	impl.chacha20 = br_chacha20_sse2_get();
	if (!impl.chacha20)
		impl.chacha20 = &br_chacha20_ct_run;
	impl.poly1305 = br_poly1305_ctmulq_get();
	if (!impl.poly1305)
		impl.poly1305 = &br_poly1305_ctmul_run;
	impl.ec = br_ec_get_default();
	impl.ecdsa_sign = br_ecdsa_sign_asn1_get_default();
	impl.rsa_private = br_rsa_private_get_default();
	impl.rsa_sign = br_rsa_pkcs1_sign_get_default();
}

/* A connection's engine is seeded from its worker's generator (32 bytes,
 * about a microsecond), not from the system's: BearSSL would otherwise
 * ask the OS (and CPUID whether RDRAND exists) for every connection. The
 * worker's generator is seeded from getrandom(2) and reseeded every
 * RESEED_EVERY connections. */
#define RESEED_EVERY 65536u

static int seed_from_system(br_hmac_drbg_context *rng, bool first)
{
	unsigned char seed[48];
	if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		return -EIO;
	if (first)
		br_hmac_drbg_init(rng, &br_sha256_vtable, seed, sizeof seed);
	else
		br_hmac_drbg_update(rng, seed, sizeof seed);
	memset(seed, 0, sizeof seed);
	return 0;
}

/* ---- Per-worker memory ---- */

/* Input that came while the engine could not take it (its input buffer
 * holds a record it cannot process before its own output is sent): one
 * receive buffer's worth. More than that, from a peer that does not wait
 * for our handshake messages, is refused. */
#define TLS_STASH_SIZE SERVER_INPUT_CHUNK

/*
 * The session cache, one for the process: a client's next connection
 * lands on any worker (SO_REUSEPORT spreads by the 4-tuple, and a new
 * connection has a new port), so a cache per worker would resume only one
 * reconnection in N. BearSSL's LRU behind a mutex: taken once per full
 * handshake (to save) and once per resumption attempt (to look up), each
 * a few hundred nanoseconds beside the handshake's own public-key work.
 * 1 MiB, about 10 000 sessions (100 bytes each), in pages touched as they
 * fill.
 */
#define TLS_SESSION_CACHE_BYTES (1024u * 1024u)

struct shared_session_cache {
	const br_ssl_session_cache_class *vtable; /* first: BearSSL calls through it */
	pthread_mutex_t lock;
	br_ssl_session_cache_lru lru;
};

static unsigned char session_store[TLS_SESSION_CACHE_BYTES];
static struct shared_session_cache session_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t session_cache_once = PTHREAD_ONCE_INIT;

static void shared_save(const br_ssl_session_cache_class **ctx, br_ssl_server_context *server,
			const br_ssl_session_parameters *params)
{
	struct shared_session_cache *c = (struct shared_session_cache *)(void *)ctx;
	pthread_mutex_lock(&c->lock);
	c->lru.vtable->save(&c->lru.vtable, server, params);
	pthread_mutex_unlock(&c->lock);
}

static int shared_load(const br_ssl_session_cache_class **ctx, br_ssl_server_context *server,
		       br_ssl_session_parameters *params)
{
	struct shared_session_cache *c = (struct shared_session_cache *)(void *)ctx;
	pthread_mutex_lock(&c->lock);
	int found = c->lru.vtable->load(&c->lru.vtable, server, params);
	pthread_mutex_unlock(&c->lock);
	return found;
}

static const br_ssl_session_cache_class shared_session_cache_class = {
	.context_size = sizeof(struct shared_session_cache),
	.save = shared_save,
	.load = shared_load,
};

static void session_cache_init(void)
{
	br_ssl_session_cache_lru_init(&session_cache.lru, session_store, sizeof session_store);
	session_cache.vtable = &shared_session_cache_class;
}

struct tls_conn {
	br_ssl_server_context sc;         /* 4 128 bytes with BearSSL 0.6 */
	uint32_t app_in_flight; /* application bytes sealed in records not all sent yet */
	uint32_t stash_len;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI]; /* a record in and a record out */
	unsigned char stash[TLS_STASH_SIZE]; /* last: its pages are touched only when used */
};

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (n + page - 1) / page * page;
}

int tls_pool_init(struct tls_pool *p, uint32_t slots)
{
	memset(p, 0, sizeof *p);
	/* Page-aligned slots, so a closed connection's pages can be given
	 * back without touching its neighbours'. */
	p->slot_size = page_round(sizeof(struct tls_conn));
	p->count = slots;
	void *base = mmap(NULL, p->slot_size * slots, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		memset(p, 0, sizeof *p);
		return -ENOMEM;
	}
	p->rng = malloc(sizeof(br_hmac_drbg_context));
	if (!p->rng || seed_from_system(p->rng, true) < 0) {
		free(p->rng);
		munmap(base, p->slot_size * slots);
		memset(p, 0, sizeof *p);
		return -EIO;
	}
	p->base = base;
	pthread_once(&session_cache_once, session_cache_init);
	pthread_once(&impl_once, impl_choose);
	return 0;
}

void tls_pool_fini(struct tls_pool *p)
{
	if (p->base)
		munmap(p->base, p->slot_size * p->count);
	if (p->rng)
		memset(p->rng, 0, sizeof(br_hmac_drbg_context));
	free(p->rng);
	memset(p, 0, sizeof *p);
}

uint64_t tls_pool_resident(const struct tls_pool *p)
{
	if (!p->base)
		return 0;
	/* The shared session cache (1 MiB at most) is the process's, not a
	 * worker's. */
	return resident_bytes(p->base, p->slot_size * p->count);
}

/* AES-GCM first (AES-NI makes it the cheapest where it exists), then
 * ChaCha20-Poly1305 for clients without AES hardware; ECDHE only
 * (forward secrecy), AEAD only (no CBC: Lucky13 and its kin). The key
 * picks the ECDSA or the RSA ones. */
static const uint16_t tls_suites[] = {
	BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};

static const char *tls_alpn[] = {"http/1.1"};


void tls_conn_open(struct tls_pool *p, uint32_t slot, struct transport *t)
{
	struct tls_conn *tc = (struct tls_conn *)(void *)(p->base + (size_t)slot * p->slot_size);
	*t = (struct transport){.cls = &transport_tls, .state = tc};
	const struct tls_identity *id =
		atomic_load_explicit(&current_identity, memory_order_acquire);
	if (!id) {
		t->error = -ENOKEY;
		return;
	}
	tc->app_in_flight = 0;
	tc->stash_len = 0;
	br_ssl_server_context *sc = &tc->sc;
	br_ssl_engine_context *eng = &sc->eng;
	br_ssl_server_zero(sc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(eng, tls_suites, sizeof tls_suites / sizeof tls_suites[0]);
	/* The handshake hash, the PRF of the suites, and the hash of the
	 * ServerKeyExchange signature the client asks for. */
	br_ssl_engine_set_hash(eng, br_sha1_ID, &br_sha1_vtable);
	br_ssl_engine_set_hash(eng, br_sha224_ID, &br_sha224_vtable);
	br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
	br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
	br_ssl_engine_set_hash(eng, br_sha512_ID, &br_sha512_vtable);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	/* What BearSSL's defaults would choose (impl_choose): AES-NI and
	 * PCLMUL or constant-time code, the fastest constant-time curves. */
	br_ssl_engine_set_gcm(eng, &br_sslrec_in_gcm_vtable, &br_sslrec_out_gcm_vtable);
	br_ssl_engine_set_aes_ctr(eng, impl.aes_ctr);
	br_ssl_engine_set_ghash(eng, impl.ghash);
	br_ssl_engine_set_chapol(eng, &br_sslrec_in_chapol_vtable, &br_sslrec_out_chapol_vtable);
	br_ssl_engine_set_chacha20(eng, impl.chacha20);
	br_ssl_engine_set_poly1305(eng, impl.poly1305);
	br_ssl_engine_set_ec(eng, impl.ec);
	if (id->key_type == BR_KEYTYPE_EC)
		br_ssl_server_set_single_ec(sc, id->chain, id->chain_len, &id->ec, BR_KEYTYPE_SIGN,
					    BR_KEYTYPE_EC, impl.ec, impl.ecdsa_sign);
	else
		br_ssl_server_set_single_rsa(sc, id->chain, id->chain_len, &id->rsa, BR_KEYTYPE_SIGN,
					     impl.rsa_private, impl.rsa_sign);
	/* No renegotiation: a client-initiated one costs us a full handshake
	 * on demand (a CPU DoS) and HTTP/1.1 has no use for it. */
	br_ssl_engine_add_flags(eng, BR_OPT_ENFORCE_SERVER_PREFERENCES | BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_protocol_names(eng, tls_alpn, 1);
	br_ssl_server_set_cache(sc, &session_cache.vtable);
	br_ssl_engine_set_buffer(eng, tc->iobuf, sizeof tc->iobuf, 1);
	/* Seeded from the worker's generator; "OS seeding attempted" is set
	 * so the engine does not also ask the system (see RESEED_EVERY). The
	 * field is BearSSL's own, public in its context struct (0.6). */
	if (++p->handshakes % RESEED_EVERY == 0 && seed_from_system(p->rng, false) < 0)
		log_warn("tls: cannot reseed from the system", "conn_slot=%u", slot);
	unsigned char seed[32];
	br_hmac_drbg_generate(p->rng, seed, sizeof seed);
	br_ssl_engine_inject_entropy(eng, seed, sizeof seed);
	memset(seed, 0, sizeof seed);
	eng->rng_os_rand_done = 1;
	if (!br_ssl_server_reset(sc))
		t->error = -EPROTO;
}

uint64_t tls_conn_held(const struct transport *t)
{
	const struct tls_conn *tc = t->state;
	return offsetof(struct tls_conn, stash) + tc->stash_len;
}

void tls_conn_release(struct tls_pool *p, struct transport *t)
{
	/* The engine and its buffers hold the session keys: the kernel gets
	 * the pages back, and the next connection in this slot gets zeroed
	 * ones (touched again only by a TLS connection). */
	madvise(t->state, p->slot_size, MADV_DONTNEED);
	t->state = NULL;
}

/* ---- The transport ---- */

static struct tls_conn *tls_of(struct transport *t)
{
	return t->state;
}

/* The engine closed: orderly (the peer's close_notify) or failed (a
 * plaintext request, a bad record, a refused version or suite). Either
 * way the host closes the socket. */
static void engine_closed(struct transport *t, struct server *s, br_ssl_engine_context *eng)
{
	int e = br_ssl_engine_last_error(eng);
	if (e != BR_ERR_OK)
		log_debug("tls connection failed", "worker=%u bearssl_err=%d", s->id, e);
	t->error = e == BR_ERR_OK ? -ESHUTDOWN : -EPROTO;
}

/* Feeds the stash, then data, to the engine as far as it takes them,
 * handing every decrypted byte to the connection engine; what it cannot
 * take yet is stashed. */
static void pump_in(struct transport *t, struct server *s, struct server_conn *c,
		    const char *data, size_t len)
{
	struct tls_conn *tc = tls_of(t);
	br_ssl_engine_context *eng = &tc->sc.eng;
	while (!t->error) {
		if (br_ssl_engine_current_state(eng) == BR_SSL_CLOSED) {
			engine_closed(t, s, eng);
			return;
		}
		size_t n;
		unsigned char *app = br_ssl_engine_recvapp_buf(eng, &n);
		if (app) {
			/* The engine takes it all (it copies what must wait). */
			server_conn_input(s, c, (const char *)app, n);
			br_ssl_engine_recvapp_ack(eng, n);
			continue;
		}
		const char *src = tc->stash_len ? (const char *)tc->stash : data;
		size_t avail = tc->stash_len ? tc->stash_len : len;
		if (avail == 0)
			return;
		unsigned char *room = br_ssl_engine_recvrec_buf(eng, &n);
		if (!room)
			break; /* it sends before it reads on */
		size_t take = avail < n ? avail : n;
		memcpy(room, src, take);
		br_ssl_engine_recvrec_ack(eng, take);
		if (tc->stash_len) {
			tc->stash_len -= (uint32_t)take;
			memmove(tc->stash, tc->stash + take, tc->stash_len);
		} else {
			data += take;
			len -= take;
		}
	}
	if (t->error || len == 0)
		return;
	if (len > TLS_STASH_SIZE - tc->stash_len) {
		log_debug("tls connection closed: input while the handshake waits", "worker=%u",
			  s->id);
		t->error = -ENOBUFS;
		return;
	}
	memcpy(tc->stash + tc->stash_len, data, len);
	tc->stash_len += (uint32_t)len;
}

static void tls_recv(struct transport *t, struct server *s, struct server_conn *c,
		     const char *data, size_t len)
{
	if (t->error)
		return;
	pump_in(t, s, c, data, len);
	/* Handshake messages to answer, or the response just made. */
	if (!t->error)
		s->host->send(s, c);
}

static const char *tls_output(struct transport *t, struct server *s, struct server_conn *c,
			      size_t *len)
{
	struct tls_conn *tc = tls_of(t);
	br_ssl_engine_context *eng = &tc->sc.eng;
	if (t->error)
		return NULL;
	unsigned char *rec = br_ssl_engine_sendrec_buf(eng, len);
	if (rec || tc->app_in_flight)
		return (const char *)rec;
	size_t app_len, room;
	const char *app = server_conn_output(s, c, &app_len);
	if (!app || app_len == 0)
		return NULL;
	unsigned char *dst = br_ssl_engine_sendapp_buf(eng, &room);
	if (!dst)
		return NULL; /* the handshake is not done, or we are closing */
	size_t n = app_len < room ? app_len : room;
	memcpy(dst, app, n);
	br_ssl_engine_sendapp_ack(eng, n);
	/* One record now: the response is complete as handed over (the
	 * connection engine hands whole responses or a produced piece). */
	br_ssl_engine_flush(eng, 0);
	tc->app_in_flight = (uint32_t)n;
	return (const char *)br_ssl_engine_sendrec_buf(eng, len);
}

static void tls_sent(struct transport *t, struct server *s, struct server_conn *c, size_t n)
{
	struct tls_conn *tc = tls_of(t);
	br_ssl_engine_context *eng = &tc->sc.eng;
	br_ssl_engine_sendrec_ack(eng, n);
	size_t more;
	if (!br_ssl_engine_sendrec_buf(eng, &more)) {
		/* The records carrying them are with the kernel: only now is the
		 * connection engine told, as the plain transport tells it when its
		 * bytes are (a close or FIN it decides then must follow them). */
		if (tc->app_in_flight) {
			size_t app = tc->app_in_flight;
			tc->app_in_flight = 0;
			server_conn_sent(s, c, app);
		}
		if (tc->stash_len && !t->error)
			pump_in(t, s, c, NULL, 0);
	}
	if (!t->error)
		s->host->send(s, c);
}

static bool tls_close(struct transport *t, struct server *s, struct server_conn *c)
{
	(void)s;
	(void)c;
	br_ssl_engine_context *eng = &tls_of(t)->sc.eng;
	size_t n;
	/* Records still unsent: the peer is not taking what we send (or we
	 * are aborting); a goodbye behind them could wait for ever. */
	if (br_ssl_engine_sendrec_buf(eng, &n))
		return false;
	br_ssl_engine_close(eng);
	return br_ssl_engine_sendrec_buf(eng, &n) != NULL;
}

const struct transport_class transport_tls = {
	.name = "tls",
	.recv = tls_recv,
	.output = tls_output,
	.sent = tls_sent,
	.close = tls_close,
};
