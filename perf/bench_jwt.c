/*
 * Token signing and verification, ns/op, for each algorithm:
 * `bench_jwt FIXTURE_DIR [N]` with the test-only keys of tests/auth (the
 * keys are public; only their sizes matter here). N (default 2000) tokens
 * are signed one after the other, then one token is verified N times.
 * One core, no threads: the number is the cost per token on that core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringside/jwt.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int bench(const char *name, const char *dir, const char *secret,
		 const char *pub, const char *priv, long n)
{
	char p[3][1024], err[256], tok[JWT_TOKEN_LIMIT];
	struct jwt_keys k;
	struct jwt_claims c = {.sub = "agent-1", .organization_id = "org-1",
			       .scopes = JWT_SCOPE_METRICS_WRITE}, out;
	double t0, sign_ns, verify_ns;
	int len = 0;

	snprintf(p[0], sizeof p[0], "%s/%s", dir, secret ? secret : "");
	snprintf(p[1], sizeof p[1], "%s/%s", dir, pub ? pub : "");
	snprintf(p[2], sizeof p[2], "%s/%s", dir, priv ? priv : "");
	if (jwt_keys_load(&k, secret ? p[0] : NULL, pub ? p[1] : NULL,
			  priv ? p[2] : NULL, "https://ringside.test",
			  "ringside-test", err, sizeof err) < 0) {
		fprintf(stderr, "bench_jwt: %s\n", err);
		return 1;
	}
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + 3600;
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		c.jti[0] = '\0';
		len = jwt_sign(&k, &c, tok, sizeof tok);
		if (len < 0) {
			fprintf(stderr, "bench_jwt: sign: %s\n", jwt_error_reason(len));
			return 1;
		}
	}
	sign_ns = (now_ns() - t0) / (double)n;
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		int r = jwt_verify(&k, tok, (size_t)len, c.iat, &out);

		if (r) {
			fprintf(stderr, "bench_jwt: verify: %s\n", jwt_error_reason(r));
			return 1;
		}
	}
	verify_ns = (now_ns() - t0) / (double)n;
	printf("%-6s sign %9.0f ns/op (%7.0f/s)  verify %9.0f ns/op (%7.0f/s)  %d bytes\n",
	       name, sign_ns, 1e9 / sign_ns, verify_ns, 1e9 / verify_ns, len);
	jwt_keys_fini(&k);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_jwt FIXTURE_DIR [N]\n");
		return 2;
	}
	long n = argc > 2 ? atol(argv[2]) : 2000;
	if (n <= 0)
		n = 2000;
	return bench("HS256", argv[1], "test-only-hs256.secret", NULL, NULL, n) ||
	       bench("ES256", argv[1], NULL, "test-only-es256-public.pem",
		     "test-only-es256-private.pem", n) ||
	       bench("RS256", argv[1], NULL, "test-only-rs256-public.pem",
		     "test-only-rs256-private.pem", n);
}
