/*
 * Agent tokens for the fleet benchmark, signed by Ringside's own signer
 * (src/auth/jwt.c): `mint_tokens SECRET_FILE COUNT [ORGS]` prints COUNT
 * lines "agent-<i> <token>", agent i in organization "org-<i % ORGS>"
 * (ORGS 1 by default), scope metrics:write, valid for a day. Spawning
 * `ringside token` 100 000 times would take minutes; this takes seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringside/jwt.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: mint_tokens SECRET_FILE COUNT [ORGS]\n");
		return 2;
	}
	long count = atol(argv[2]), orgs = argc > 3 ? atol(argv[3]) : 1;
	if (count <= 0 || orgs <= 0) {
		fprintf(stderr, "mint_tokens: COUNT and ORGS must be positive\n");
		return 2;
	}
	struct jwt_keys keys;
	char err[256];
	if (jwt_keys_load(&keys, argv[1], NULL, NULL, "ringside", "ringside", err, sizeof err) < 0) {
		fprintf(stderr, "mint_tokens: %s\n", err);
		return 1;
	}
	struct jwt_claims c = {.scopes = JWT_SCOPE_METRICS_WRITE};
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + 86400;
	char token[JWT_TOKEN_LIMIT];
	for (long i = 0; i < count; i++) {
		snprintf(c.sub, sizeof c.sub, "agent-%ld", i);
		snprintf(c.organization_id, sizeof c.organization_id, "org-%ld", i % orgs);
		c.jti[0] = '\0'; /* a fresh one each */
		int n = jwt_sign(&keys, &c, token, sizeof token);
		if (n < 0) {
			fprintf(stderr, "mint_tokens: %s\n", jwt_error_reason(n));
			return 1;
		}
		printf("%s %.*s\n", c.sub, n, token);
	}
	jwt_keys_fini(&keys);
	return 0;
}
