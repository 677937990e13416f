/*
 * What the token cache buys: ns per token_cache_get hit against ns per
 * full jwt_verify, for HS256, ES256 and RS256 with the test-only keys of
 * tests/auth/ (run from the repository root, or give that directory).
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -o build/perf/bench_token_cache \
 *      perf/bench_token_cache.c src/auth/jwt.c src/auth/jwt_keys.c \
 *      src/auth/token_cache.c src/common/siphash.c src/common/json_writer.c \
 *      src/common/rfc3339.c src/metrics/expo.c -lcrypto -lm -pthread
 *   build/perf/bench_token_cache [tests/auth]
 *
 * Prints one line. The hit is measured over 1024 distinct tokens in a
 * 4096-entry cache, visited in turn, so the sets are not all hot in L1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#include "ringside/jwt.h"
#include "ringside/token_cache.h"

#define ISS "https://ringside.test"
#define AUD "ringside-test"
#define NOW 1700000100
#define TOKENS 1024

static char toks[TOKENS][1024];
static size_t lens[TOKENS];

static void load(struct jwt_keys *k, const char *dir, const char *secret,
		 const char *pub, const char *priv)
{
	char a[512], b[512], c[512], err[256];

	snprintf(a, sizeof a, "%s/%s", dir, secret ? secret : "");
	snprintf(b, sizeof b, "%s/%s", dir, pub ? pub : "");
	snprintf(c, sizeof c, "%s/%s", dir, priv ? priv : "");
	if (jwt_keys_load(k, secret ? a : NULL, pub ? b : NULL, priv ? c : NULL,
			  ISS, AUD, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
}

static void make_tokens(struct jwt_keys *k)
{
	for (int i = 0; i < TOKENS; i++) {
		struct jwt_claims c = {.organization_id = "org-bench",
				       .scopes = JWT_SCOPE_METRICS_WRITE,
				       .iat = NOW - 100, .exp = NOW + 3600};
		int n;

		snprintf(c.sub, sizeof c.sub, "agent-%d", i);
		n = jwt_sign(k, &c, toks[i], sizeof toks[i]);
		if (n < 0) {
			fprintf(stderr, "sign: %s\n", jwt_error_reason(n));
			exit(1);
		}
		lens[i] = (size_t)n;
	}
}

/* ns per jwt_verify, over at least 0.3 s. */
static double verify_ns(struct jwt_keys *k)
{
	struct jwt_claims c;
	long ops = 0;
	double t0, t;

	make_tokens(k);
	t0 = (bench_seconds() * 1e9);
	do {
		for (int i = 0; i < 64; i++, ops++)
			if (jwt_verify(k, toks[ops % TOKENS], lens[ops % TOKENS], NOW, &c)) {
				fprintf(stderr, "verify failed\n");
				exit(1);
			}
		t = (bench_seconds() * 1e9);
	} while (t - t0 < 3e8);
	return (t - t0) / (double)ops;
}

/* ns per token_cache_get hit; *toklen gets the length of a token. */
static double hit_ns(struct jwt_keys *k, size_t *toklen)
{
	struct token_cache tc;
	struct jwt_claims c;
	volatile uint32_t sink = 0;
	static int cached[TOKENS];
	long ops = 0, ncached = 0;
	double t0, t;

	if (token_cache_init(&tc, 4096)) {
		fprintf(stderr, "token_cache_init failed\n");
		exit(1);
	}
	make_tokens(k);
	*toklen = lens[0];
	for (int i = 0; i < TOKENS; i++) {
		if (jwt_verify(k, toks[i], lens[i], NOW, &c))
			exit(1);
		token_cache_put(&tc, toks[i], lens[i], &c, NOW);
	}
	/* A set that drew more than four of the tokens kept four: time only
	 * the tokens still cached. */
	for (int i = 0; i < TOKENS; i++)
		if (token_cache_get(&tc, toks[i], lens[i], NOW))
			cached[ncached++] = i;
	t0 = (bench_seconds() * 1e9);
	do {
		for (int i = 0; i < 1024; i++, ops++) {
			int j = cached[ops % ncached];
			const struct jwt_claims *h = token_cache_get(&tc, toks[j], lens[j], NOW);

			if (!h)
				exit(1);
			sink += h->scopes;
		}
		t = (bench_seconds() * 1e9);
	} while (t - t0 < 3e8);
	token_cache_fini(&tc);
	(void)sink;
	return (t - t0) / (double)ops;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/auth";
	struct jwt_keys hs, es, rs;
	double h_hs, h_es, v_hs, v_es, v_rs;
	size_t n_hs, n_es;

	load(&hs, dir, "test-only-hs256.secret", NULL, NULL);
	load(&es, dir, NULL, "test-only-es256-public.pem", "test-only-es256-private.pem");
	load(&rs, dir, NULL, "test-only-rs256-public.pem", "test-only-rs256-private.pem");
	h_hs = hit_ns(&hs, &n_hs);
	h_es = hit_ns(&es, &n_es);
	v_hs = verify_ns(&hs);
	v_es = verify_ns(&es);
	v_rs = verify_ns(&rs);
	/* The RS256 ratio is against the ES256 hit: RS256 tokens are longer
	 * still (a 256-byte signature), so it flatters RS256 a little. */
	printf("token_cache hit %.0f ns (HS256 token, %zu B), %.0f ns (ES256, %zu B); "
	       "jwt_verify HS256 %.0f ns (%.0fx), ES256 %.0f ns (%.0fx), "
	       "RS256 %.0f ns (%.0fx)\n",
	       h_hs, n_hs, h_es, n_es, v_hs, v_hs / h_hs, v_es, v_es / h_es, v_rs,
	       v_rs / h_es);
	jwt_keys_fini(&hs);
	jwt_keys_fini(&es);
	jwt_keys_fini(&rs);
	return 0;
}
