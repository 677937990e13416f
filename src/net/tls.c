/*
 * The TLS transport (ringside/tls.h): BearSSL's server engine between the
 * socket and the connection engine. Records the kernel received go into
 * the engine's input buffer; the application bytes it decrypts go to
 * server_conn_input; the connection engine's output is copied in as
 * application data and goes out as records, from the engine's own output
 * buffer. Plus the per-worker memory and the shared session cache; the
 * identity is tls_identity.c's, the curve arithmetic tls_ec.c's.
 */
#include "ringside/tls.h"

#include <bearssl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "ringside/log.h"
#include "ringside/metrics.h"
#include "ringside/resident.h"
#include "ringside/server.h"
#include "tls_int.h"

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
		br_hmac_drbg_init(rng, &tls_sha256_libcrypto, seed, sizeof seed);
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
 * Handshake records, copied out of the engine's output buffer so it can
 * make the next one: BearSSL holds one record at a time, and a flight is
 * several (ServerHello, ChangeCipherSpec, Finished when resuming), which
 * one send each would deliver in as many segments, each waking the
 * client. One send per flight saved 2 of 5 sends per resumed connection.
 * Application data goes out from the engine's own buffer, but for a
 * closing answer's last record, which goes here with our close_notify.
 */
#define TLS_FLIGHT_SIZE 4096

/* Slots a worker keeps in RAM when their connections close, for the next
 * ones: faulting a slot in anew (a dozen page faults) and handing it back
 * (madvise, a TLB flush) was 13 % of a resumed handshake's CPU. Beyond
 * these, a closed connection's pages go back to the kernel, so a burst of
 * connections does not stay resident. */
#define TLS_WARM_SLOTS 64

struct tls_conn {
	br_ssl_server_context sc; /* first (the session cache finds the rest from it); 4 128 bytes */
	uint32_t app_in_flight; /* application bytes sealed in records not all sent yet */
	uint32_t stash_len;
	bool session_saved;     /* the handshake made a new session (a full one) */
	bool handshake_counted; /* in ringside_tls_handshakes_total */
	bool goodbye_queued;    /* our close_notify is made */
	bool warm;              /* closed, wiped, kept in RAM (TLS_WARM_SLOTS) */
	uint16_t flight_len, flight_sent; /* flight[flight_sent, flight_len) to send */
	unsigned char flight[TLS_FLIGHT_SIZE];
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI]; /* a record in and a record out */
	unsigned char stash[TLS_STASH_SIZE]; /* last: its pages are touched only when used */
};

/* Counts the connection's handshake once, as it ended. */
static void count_handshake(struct tls_conn *tc, struct server *s, enum metrics_counter result)
{
	if (tc->handshake_counted)
		return;
	tc->handshake_counted = true;
	metrics_add(&s->ctx.shard->counters[result], 1);
}

/* The engine carries application data once the handshake is done. */
static void note_handshake_done(struct tls_conn *tc, struct server *s)
{
	if (!tc->handshake_counted && (br_ssl_engine_current_state(&tc->sc.eng) & BR_SSL_SENDAPP))
		count_handshake(tc, s,
				tc->session_saved ? METRIC_TLS_HANDSHAKES_FULL
						  : METRIC_TLS_HANDSHAKES_RESUMED);
}

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
	/* BearSSL saves a session at the end of a full handshake only. */
	((struct tls_conn *)(void *)server)->session_saved = true;
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
	if (tc->warm) {
		tc->warm = false;
		p->warm--;
	}
	const struct tls_identity *id = tls_identity_current();
	if (!id) {
		t->error = -ENOKEY;
		return;
	}
	tc->app_in_flight = 0;
	tc->stash_len = 0;
	tc->flight_len = tc->flight_sent = 0;
	tc->session_saved = tc->handshake_counted = tc->goodbye_queued = false;
	br_ssl_server_context *sc = &tc->sc;
	br_ssl_engine_context *eng = &sc->eng;
	br_ssl_server_zero(sc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(eng, tls_suites, sizeof tls_suites / sizeof tls_suites[0]);
	/* Each hash set here runs over every handshake message. SHA-256
	 * and SHA-384 are the suites' handshake hashes; the
	 * ServerKeyExchange is signed with SHA-256 (BearSSL prefers it, and
	 * every TLS 1.2 client offers it), or with SHA-1, RFC 5246's default
	 * for a client that sends no signature_algorithms. SHA-224 and
	 * SHA-512 would only be hashed and never used. */
	br_ssl_engine_set_hash(eng, br_sha1_ID, &br_sha1_vtable);
	br_ssl_engine_set_hash(eng, br_sha256_ID, &tls_sha256_libcrypto);
	br_ssl_engine_set_hash(eng, br_sha384_ID, &br_sha384_vtable);
	/* SHA-256, which the engine's own generator also takes from here,
	 * and the PRF of the SHA-256 suites: libcrypto's (tls_sha256.c). */
	br_ssl_engine_set_prf_sha256(eng, tls_prf_sha256);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	/* What BearSSL's defaults would choose (impl_choose): AES-NI and
	 * PCLMUL, or constant-time code. */
	br_ssl_engine_set_gcm(eng, &br_sslrec_in_gcm_vtable, &br_sslrec_out_gcm_vtable);
	br_ssl_engine_set_aes_ctr(eng, impl.aes_ctr);
	br_ssl_engine_set_ghash(eng, impl.ghash);
	br_ssl_engine_set_chapol(eng, &br_sslrec_in_chapol_vtable, &br_sslrec_out_chapol_vtable);
	br_ssl_engine_set_chacha20(eng, impl.chacha20);
	br_ssl_engine_set_poly1305(eng, impl.poly1305);
	br_ssl_engine_set_ec(eng, &tls_ec_libcrypto);
	tls_identity_attach(id, sc);
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

void tls_conn_release(struct tls_pool *p, struct server *s, struct transport *t)
{
	struct tls_conn *tc = t->state;
	count_handshake(tc, s, METRIC_TLS_HANDSHAKES_ABANDONED);
	/* The engine holds the session keys and its generator, the input
	 * buffer the requests it decrypted there: wiped, the slot stays in
	 * RAM for the next connection; or the kernel gets the pages back and
	 * the next connection in this slot gets zeroed ones. */
	if (p->warm < TLS_WARM_SLOTS) {
		explicit_bzero(tc, offsetof(struct tls_conn, stash) + tc->stash_len);
		tc->warm = true;
		p->warm++;
	} else {
		madvise(tc, p->slot_size, MADV_DONTNEED);
	}
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
	if (e != BR_ERR_OK) {
		log_debug("tls connection failed", "worker=%u bearssl_err=%d", s->id, e);
		count_handshake(tls_of(t), s, METRIC_TLS_HANDSHAKES_FAILED);
	}
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
		/* Records are processed as each ends: a client may send its
		 * Finished and its close_notify together. */
		note_handshake_done(tc, s);
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

/* Copies the records the engine has ready, as long as they fit, into the
 * flight; each copied record is acknowledged to the engine, which makes
 * the next (the rest of the flight) there and then. */
static void gather_flight(struct tls_conn *tc)
{
	br_ssl_engine_context *eng = &tc->sc.eng;
	size_t n;
	const unsigned char *rec;
	while ((rec = br_ssl_engine_sendrec_buf(eng, &n)) &&
	       n <= sizeof tc->flight - tc->flight_len) {
		memcpy(tc->flight + tc->flight_len, rec, n);
		tc->flight_len = (uint16_t)(tc->flight_len + n);
		br_ssl_engine_sendrec_ack(eng, n);
	}
}

/* The record just sealed is the connection's last: it goes into the
 * flight with our close_notify behind it, so both leave in one send (one
 * wake-up of the client fewer per closing answer). False, and nothing
 * moved, if the record is too large for the flight. */
static bool goodbye_with_last_record(struct tls_conn *tc)
{
	br_ssl_engine_context *eng = &tc->sc.eng;
	size_t n;
	const unsigned char *rec = br_ssl_engine_sendrec_buf(eng, &n);
	if (!rec || n > sizeof tc->flight - 64) /* room for the alert's record */
		return false;
	memcpy(tc->flight, rec, n);
	tc->flight_len = (uint16_t)n;
	br_ssl_engine_sendrec_ack(eng, n);
	br_ssl_engine_close(eng);
	tc->goodbye_queued = true;
	gather_flight(tc);
	return true;
}

static const char *tls_output(struct transport *t, struct server *s, struct server_conn *c,
			      size_t *len)
{
	struct tls_conn *tc = tls_of(t);
	br_ssl_engine_context *eng = &tc->sc.eng;
	if (t->error)
		return NULL;
	/* Our Finished may end the handshake (a full one). */
	note_handshake_done(tc, s);
	/* Handshake and alert records go out from the flight (a record too
	 * large for it, from the engine's buffer); application records, from
	 * the engine's buffer, so that their bytes count as sent only once
	 * the kernel has them. */
	if (!tc->app_in_flight && !tc->flight_len)
		gather_flight(tc);
	if (tc->flight_len) {
		*len = (size_t)(tc->flight_len - tc->flight_sent);
		return (const char *)tc->flight + tc->flight_sent;
	}
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
	if (server_conn_output_is_last(c, n) && goodbye_with_last_record(tc)) {
		*len = tc->flight_len;
		return (const char *)tc->flight;
	}
	return (const char *)br_ssl_engine_sendrec_buf(eng, len);
}

static void tls_sent(struct transport *t, struct server *s, struct server_conn *c, size_t n)
{
	struct tls_conn *tc = tls_of(t);
	br_ssl_engine_context *eng = &tc->sc.eng;
	if (tc->flight_len) {
		tc->flight_sent = (uint16_t)(tc->flight_sent + n);
		if (tc->flight_sent == tc->flight_len)
			tc->flight_len = tc->flight_sent = 0;
	} else {
		br_ssl_engine_sendrec_ack(eng, n);
	}
	size_t more;
	if (!tc->flight_len && !br_ssl_engine_sendrec_buf(eng, &more)) {
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
	struct tls_conn *tc = tls_of(t);
	br_ssl_engine_context *eng = &tc->sc.eng;
	size_t n;
	/* Our goodbye is made already (it went with the last answer), or
	 * records are still unsent: the peer is not taking what we send (or
	 * we are aborting), and a goodbye behind them could wait for ever. */
	if (tc->goodbye_queued || tc->flight_len || br_ssl_engine_sendrec_buf(eng, &n))
		return false;
	br_ssl_engine_close(eng);
	tc->goodbye_queued = true;
	return br_ssl_engine_sendrec_buf(eng, &n) != NULL;
}

const struct transport_class transport_tls = {
	.name = "tls",
	.recv = tls_recv,
	.output = tls_output,
	.sent = tls_sent,
	.close = tls_close,
};
