/*
 * Black-box: `ringside token` prints a signed agent token, and refuses a
 * missing key, an unknown scope and missing claims with exit 2 and a
 * message naming the cause. The token's claims are read back from its
 * payload (base64url JSON); its signature is checked by the unit tests
 * and, through the server, by the ingest tests.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET "tests/auth/test-only-hs256.secret"
#define ES256_PUB "tests/auth/test-only-es256-public.pem"
#define ES256_KEY "tests/auth/test-only-es256-private.pem"
#define RS256_PUB "tests/auth/test-only-rs256-public.pem"
#define RS256_KEY "tests/auth/test-only-rs256-private.pem"

/* Decodes the middle segment of a JWT (base64url, no padding) into out. */
static void payload_of(const char *token, char *out, size_t cap)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(token, '.');
	CHECK(p != NULL, "no '.' in token %s", token);
	p++;
	size_t n = 0;
	unsigned bits = 0, acc = 0;
	for (; *p && *p != '.' && n + 1 < cap; p++) {
		const char *d = strchr(alphabet, *p);
		CHECK(d != NULL, "non-base64url byte in token %s", token);
		acc = acc << 6 | (unsigned)(d - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)(acc >> bits & 0xff);
		}
	}
	out[n] = '\0';
}

static void token_prints_three_segments_with_the_claims_asked_for(void **state)
{
	static const char *const args[] = {
		"token", "--sub", "agent-42", "--org", "org-7", "--scope",
		"metrics:write agents:read", "--ttl", "10m", "--jwt-secret-file", SECRET, NULL,
	};
	struct run_result *r = run_new();
	char payload[2048];

	(void)state;
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 0, "token: exit %d, stderr: %.500s", r->exit_code, r->err);
	r->out[strcspn(r->out, "\n")] = '\0';
	int dots = 0;
	for (const char *c = r->out; *c; c++)
		dots += *c == '.';
	CHECK(dots == 2, "want header.payload.signature, got %s", r->out);
	payload_of(r->out, payload, sizeof payload);
	static const char *const want[] = {
		"\"sub\":\"agent-42\"", "\"organization_id\":\"org-7\"", "\"iss\":\"ringside\"",
		"\"aud\":\"ringside\"", "\"jti\":\"",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		CHECK(strstr(payload, want[i]) != NULL, "payload lacks %s: %s", want[i], payload);
	CHECK(strstr(payload, "metrics:write") && strstr(payload, "agents:read"),
	      "payload lacks the scopes: %s", payload);
	long long iat = -1, exp = -1;
	const char *i = strstr(payload, "\"iat\":"), *e = strstr(payload, "\"exp\":");
	CHECK(i && e, "payload lacks iat or exp: %s", payload);
	iat = atoll(i + 6);
	exp = atoll(e + 6);
	CHECK(exp - iat == 600, "--ttl 10m: exp - iat = %lld", exp - iat);
	free(r);
}

/* `ringside token --ttl 1h` was refused: durations take h and d. */
static void token_ttl_takes_hours_and_days(void **state)
{
	static const struct {
		const char *ttl;
		long long seconds;
	} ttls[] = {{"1h", 3600}, {"1d", 86400}, {"90s", 90}};
	(void)state;
	for (size_t k = 0; k < sizeof ttls / sizeof ttls[0]; k++) {
		const char *const args[] = {"token", "--sub", "a", "--org", "o", "--ttl",
					    ttls[k].ttl, "--jwt-secret-file", SECRET, NULL};
		struct run_result *r = run_new();
		char payload[2048];
		h_run(args, NULL, 5000, r);
		CHECK(r->exit_code == 0, "--ttl %s: exit %d, stderr: %.500s", ttls[k].ttl,
		      r->exit_code, r->err);
		r->out[strcspn(r->out, "\n")] = '\0';
		payload_of(r->out, payload, sizeof payload);
		const char *i = strstr(payload, "\"iat\":"), *e = strstr(payload, "\"exp\":");
		CHECK(i && e && atoll(e + 6) - atoll(i + 6) == ttls[k].seconds,
		      "--ttl %s: %s", ttls[k].ttl, payload);
		free(r);
	}
}

struct bad_token_case {
	const char *const *args;
	const char *names; /* what stderr must mention */
};

static const char *const no_key[] = {"token", "--sub", "a", "--org", "o", NULL};
static const char *const bad_scope[] = {"token", "--sub", "a", "--org", "o", "--scope",
					"metrics:write metrics:delete", "--jwt-secret-file", SECRET,
					NULL};
static const char *const no_org[] = {"token", "--sub", "a", "--jwt-secret-file", SECRET, NULL};
static const char *const short_secret[] = {"token", "--sub", "a", "--org", "o",
					   "--jwt-secret-file", "tests/auth/test-only-short.secret",
					   NULL};
static const char *const serve_flag[] = {"token", "--sub", "a", "--org", "o", "--workers",
					 "2", "--jwt-secret-file", SECRET, NULL};

static const struct bad_token_case cases[] = {
	{no_key, "secret"},
	{bad_scope, "metrics:delete"},
	{no_org, "--org"},
	{short_secret, "32"},
	{serve_flag, "--workers"},
};

static void token_refuses_what_it_cannot_sign_with_exit_2(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct run_result *r = run_new();
		h_run(cases[i].args, NULL, 5000, r);
		CHECK(r->exit_code == 2, "case %zu: exit %d (want 2), stderr: %.500s", i,
		      r->exit_code, r->err);
		CHECK(strstr(r->err, cases[i].names) != NULL, "case %zu: stderr lacks '%s': %.500s",
		      i, cases[i].names, r->err);
		CHECK(r->out[0] == '\0', "case %zu: printed a token: %.200s", i, r->out);
		free(r);
	}
}

/* Mints a token with `ringside token` and the given key flags, into out. */
static void mint_with(const char *const key_args[], char *out, size_t cap)
{
	const char *args[16] = {"token", "--sub", "agent-1", "--org", "org-1", "--scope",
				"metrics:write"};
	size_t n = 7;
	for (size_t i = 0; key_args[i]; i++)
		args[n++] = key_args[i];
	args[n] = NULL;
	struct run_result *r = run_new();
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 0, "token: exit %d, stderr: %.500s", r->exit_code, r->err);
	size_t len = strcspn(r->out, "\n");
	CHECK(len < cap, "token of %zu bytes", len);
	memcpy(out, r->out, len);
	out[len] = '\0';
	free(r);
}

/* GET /.well-known/jwks.json publishes the public keys, current first:
 * an independent implementation (PyJWT) recomputes each kid and verifies
 * a token signed by the current key and one by the previous key with the
 * published set alone. A server with only an HS256 secret publishes none. */
static void jwks_publishes_the_keys_that_verify_our_tokens(void **state)
{
	(void)state;
	static const char *const current[] = {"--jwt-public-key-file", ES256_PUB,
					      "--jwt-private-key-file", ES256_KEY, NULL};
	static const char *const previous[] = {"--jwt-public-key-file", RS256_PUB,
					       "--jwt-private-key-file", RS256_KEY, NULL};
	char token_now[2048], token_before[2048];
	mint_with(current, token_now, sizeof token_now);
	mint_with(previous, token_before, sizeof token_before);

	struct server s;
	const char *const args[] = {"--jwt-public-key-file", ES256_PUB, "--jwt-private-key-file",
				    ES256_KEY, "--jwt-previous-public-key-file", RS256_PUB, NULL};
	server_start(&s, args);
	struct http_response *r = resp_new();
	h_exchange(s.port, "GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_status(r, 200, false);
	expect_header(r, "Content-Type", "application/json", true);
	CHECK(json_valid(r->body, r->body_len, NULL, 0), "not JSON: %s", r->body);
	const char *ec = strstr(r->body, "\"kty\":\"EC\""), *rsa = strstr(r->body, "\"kty\":\"RSA\"");
	CHECK(ec && rsa && ec < rsa, "want the EC key (current) then the RSA one: %s", r->body);
	CHECK(!strstr(r->body, "\"d\""), "a private member was published: %s", r->body);

	char path[] = "/tmp/ringside-jwks-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	CHECK(write(fd, r->body, r->body_len) == (ssize_t)r->body_len, "write");
	close(fd);
	const char *const verify[] = {"/usr/bin/python3", "tests/auth/verify_with_jwks.py", path,
				      "ringside", "ringside", token_now, token_before, NULL};
	struct run_result *v = run_new();
	h_run_prog(verify, NULL, 0, 20000, v);
	unlink(path);
	CHECK(v->exit_code == 0, "PyJWT: exit %d\n%s%s", v->exit_code, v->out, v->err);
	free(v);
	CHECK(server_stop(&s) == 0, "exit status");

	const char *const hs[] = {"--jwt-secret-file", SECRET, NULL};
	server_start(&s, hs);
	h_exchange(s.port, "GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	expect_status(r, 200, false);
	CHECK(!strcmp(r->body, "{\"keys\":[]}"), "an HS256 server publishes no key: %s", r->body);
	free(r);
	CHECK(server_stop(&s) == 0, "exit status");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(token_prints_three_segments_with_the_claims_asked_for),
		BB_TEST(token_ttl_takes_hours_and_days),
		BB_TEST(token_refuses_what_it_cannot_sign_with_exit_2),
		BB_TEST(jwks_publishes_the_keys_that_verify_our_tokens),
	};

	h_init();
	return H_RUN_GROUP("blackbox_token", tests, NULL, NULL);
}
