/*
 * Agent tokens signed by the tests themselves (HS256 through libcrypto),
 * so that ingest tests do not depend on the server's own signer.
 */
#ifndef RINGSIDE_TESTS_BB_TOKEN_H
#define RINGSIDE_TESTS_BB_TOKEN_H

/*
 * An agent token signed here with HMAC-SHA256 (libcrypto), not by the
 * server's signer, as jwt.c accepts it: header {"alg":"HS256","typ":"JWT"},
 * iss and aud "ringside", the given sub, organization_id and scope, a jti
 * of its own, iat now, exp an hour later. The key is the secret file's
 * bytes as the server loads them. Quick enough for tens of thousands of
 * agents. Returns a malloc'd string; fails the test on a bad key file.
 */
char *h_mint_token(const char *secret_path, const char *sub, const char *org,
		   const char *scope);

#endif
