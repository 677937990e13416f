/*
 * libFuzzer target for jwt_verify (src/auth/jwt.c): whatever the bytes,
 * it must not crash, leak or read out of bounds, and it must accept
 * nothing. The only correctly signed tokens in the corpus (the PyJWT
 * fixtures of tests/auth) carry another issuer and audience than the keys
 * here expect, the others are signed with other keys or not at all, and a
 * mutation cannot keep a signature valid over a changed payload: so an
 * acceptance means a check was bypassed.
 *
 * Runs against the HS256 test secret and, for half the inputs chosen by
 * the first byte, the ES256 test public key, so both pinned paths and the
 * key-confusion guard are exercised. Keys are loaded once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/jwt.h"

#include "fuzz_util.h"

static struct jwt_keys hs, es;
static int loaded;

static void load(void)
{
	char err[256];
	if (jwt_keys_load(&hs, "tests/auth/test-only-hs256.secret", NULL, NULL, "ringside",
			  "ringside", err, sizeof err) < 0 ||
	    jwt_keys_load(&es, NULL, "tests/auth/test-only-es256-public.pem", NULL, "ringside",
			  "ringside", err, sizeof err) < 0)
		abort(); /* run from the repository root */
	loaded = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loaded)
		load();
	const struct jwt_keys *k = size && (data[0] & 1) ? &es : &hs;
	struct jwt_claims claims;
	/* See the top: any acceptance is a bug. */
	if (jwt_verify(k, (const char *)data, size, 1700000000, &claims) == 0)
		abort();
	return 0;
}
