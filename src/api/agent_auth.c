/*
 * Agent-token authentication for the agent routes (DESIGN.md "JWT"),
 * answering refusals with their family's codes (seed 003) and RFC 6750's
 * WWW-Authenticate.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ringside/api_errors.h"
#include "ringside/config.h"
#include "ringside/log.h"
#include "ringside/resident.h"
#include "ringside/token_cache.h"

struct agent_auth {
	struct jwt_keys keys;
	bool keys_loaded;      /* no key flag given: the agent routes answer 503 */
	/* GET /.well-known/jwks.json: the keys do not change while the
	 * server runs, so their JWK Set is written once, at start. */
	char jwks[JWT_KEYS_MAX * 1600]; /* an RSA-8192 key is about 1.5 KB */
	size_t jwks_len;
	struct worker_tokens {
		struct token_cache cache;
	} __attribute__((aligned(64))) * per_worker;
};

/* Verified tokens cached per worker: one slot per agent the fleet may
 * hold (a power of two, at least 4096), 320 bytes each, touched as
 * tokens arrive. Every worker sees every agent sooner or later, and a
 * miss costs a full HS256 verification (35-48 us, perf/RESULTS.md): with
 * 4096 slots, 20 000 agents missed four times in five. */
static uint32_t token_cache_entries(uint32_t agents)
{
	uint32_t n = 4096;
	while (n < agents && n < (1u << 22))
		n <<= 1;
	return n;
}

int agent_auth_init(struct api *a, struct jwt_keys *keys)
{
	struct agent_auth *au = calloc(1, sizeof *au);
	if (!au)
		goto nomem;
	a->auth = au;
	if (keys) {
		au->keys = *keys; /* ours now */
		memset(keys, 0, sizeof *keys);
		au->keys_loaded = true;
		au->jwks_len = jwt_keys_jwks(&au->keys, au->jwks, sizeof au->jwks);
		if (!au->jwks_len) {
			log_error("the keys' JWK Set does not fit its buffer", "bytes=%zu",
				  sizeof au->jwks);
			return -1;
		}
	} else {
		log_warn("no agent token key: the agent routes answer 503",
			 "hint=\"%s\"", "start with --jwt-secret-file or --jwt-public-key-file");
	}
	size_t bytes = a->worker_count * sizeof *au->per_worker;
	if (posix_memalign((void **)&au->per_worker, 64, bytes))
		goto nomem;
	memset(au->per_worker, 0, bytes);
	for (uint32_t i = 0; i < a->worker_count; i++)
		if (token_cache_init(&au->per_worker[i].cache,
				     token_cache_entries(a->cfg->fleet_max_agents)) < 0)
			goto nomem;
	return 0;
nomem:
	log_error("out of memory for the token caches", "workers=%u", a->worker_count);
	return -1;
}

void agent_auth_fini(struct api *a)
{
	struct agent_auth *au = a->auth;
	if (!au)
		return;
	if (au->per_worker)
		for (uint32_t i = 0; i < a->worker_count; i++)
			token_cache_fini(&au->per_worker[i].cache);
	free(au->per_worker);
	jwt_keys_fini(&au->keys);
	free(au);
	a->auth = NULL;
}

/* GET /.well-known/jwks.json (RFC 7517 5): the public keys that verify
 * our tokens, current first, with their kid; none for HS256, whose key is
 * the secret. Served as application/json (what JWKS clients expect; the
 * registered application/jwk-set+json is accepted by fewer), cacheable
 * for five minutes: a key added for rotation is published before it
 * signs, so a client's cached set never misses a key in use. */
static void jwks_request(struct http_exchange *x)
{
	const struct agent_auth *au = x->ctx->api->auth;
	if (!au->keys_loaded) {
		http_reply_core_error(x, 503, API_CORE_SERVICE_UNAVAILABLE,
				      "Token keys are not configured on this server.", NULL,
				      "Start Ringside with --jwt-private-key-file.", NULL);
		return;
	}
	http_reply(x, 200, "application/json", "Cache-Control: public, max-age=300\r\n", au->jwks,
		   au->jwks_len);
}

const struct http_handler api_jwks = {.on_request = jwks_request};

uint64_t agent_auth_resident(const struct api *a, uint32_t worker)
{
	const struct token_cache *t = &a->auth->per_worker[worker].cache;
	return resident_bytes(t->sets, (size_t)t->entries / TOKEN_CACHE_WAYS * sizeof *t->sets);
}

int64_t api_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const struct jwt_claims *agent_auth_bearer(struct http_exchange *x, const char *token,
					   size_t len, int *err)
{
	struct agent_auth *au = x->ctx->api->auth;
	struct token_cache *cache = &au->per_worker[x->ctx->worker_id].cache;
	int64_t now = api_now_ms() / 1000;
	const struct jwt_claims *claims = token_cache_get(cache, token, len, now);
	if (!claims) {
		/* The worker's scratch is free during a handler call. */
		size_t cap;
		struct jwt_claims *fresh = (struct jwt_claims *)(void *)http_scratch(x, &cap);
		*err = jwt_verify(&au->keys, token, len, now, fresh);
		if (*err)
			return NULL;
		token_cache_put(cache, token, len, fresh, now);
		claims = fresh;
	}
	/* Checked on every request, cache hits included: a revocation, a
	 * suspension or a decommissioning ends the token at once. */
	if (revocations_token_dead(x->ctx->api->identity->revocations, claims, now)) {
		*err = AGENT_AUTH_REVOKED;
		return NULL;
	}
	*err = 0;
	return claims;
}

const struct jwt_keys *agent_auth_keys(const struct api *a)
{
	return a->auth->keys_loaded ? &a->auth->keys : NULL;
}

#define REALM "Bearer realm=\"ringside\""

/* Who answers a refusal: the agent routes (seed 003's codes) or the
 * identity routes (the identity issue's). */
enum auth_family { AUTH_AGENT, AUTH_IDENTITY, AUTH_ANALYTICS };
enum auth_refusal { REFUSE_UNAVAILABLE, REFUSE_UNAUTHORIZED, REFUSE_SCOPE };

static void refuse(struct http_exchange *x, enum auth_family family, enum auth_refusal why,
		   const char *message, const char *hint, const char *headers)
{
	static const unsigned status[] = {503, 401, 403};
	static const enum api_agent_error agent[] = {
		API_AGENT_SERVICE_UNAVAILABLE, API_AGENT_UNAUTHORIZED, API_AGENT_FORBIDDEN_SCOPE};
	static const enum api_identity_error identity[] = {
		API_IDENTITY_SERVICE_UNAVAILABLE, API_IDENTITY_UNAUTHORIZED, API_IDENTITY_FORBIDDEN};
	if (family == AUTH_IDENTITY) {
		http_reply_identity_error(x, status[why], identity[why], message, NULL, hint,
					  headers);
	} else if (family == AUTH_ANALYTICS) {
		/* Seed 002: its codes, and its message for every 401; what
		 * was wrong goes into details. */
		static const enum api_core_error core[] = {
			API_CORE_SERVICE_UNAVAILABLE, API_CORE_UNAUTHORIZED, API_CORE_FORBIDDEN};
		const struct http_error_details d = {.hint = message};
		http_reply_detailed_error(x, status[why], core[why],
					  why == REFUSE_UNAUTHORIZED ? NULL : message, &d, headers);
	} else {
		http_reply_agent_error(x, status[why], agent[why], message, NULL, hint, headers);
	}
}

static const struct jwt_claims *authenticate(struct http_exchange *x, const char *buf,
					     const struct http_request *req, uint32_t scope,
					     enum auth_family family)
{
	struct agent_auth *au = x->ctx->api->auth;
	if (!au->keys_loaded) {
		refuse(x, family, REFUSE_UNAVAILABLE, "Agent tokens are not configured on this server.",
		       "Start Ringside with --jwt-secret-file or --jwt-public-key-file.", NULL);
		return NULL;
	}
	struct http_span h = req->hdr[HTTP_HDR_AUTHORIZATION];
	const char *v = http_span_ptr(buf, h);
	/* RFC 6750 2.1: "Bearer" (any case), then the token after spaces. */
	if (h.len < 7 || strncasecmp(v, "Bearer ", 7)) {
		refuse(x, family, REFUSE_UNAUTHORIZED, "Missing bearer token.",
		       "Send the agent token as `Authorization: Bearer <token>`.",
		       "WWW-Authenticate: " REALM "\r\n");
		return NULL;
	}
	const char *token = v + 7;
	size_t len = h.len - 7;
	while (len && *token == ' ')
		token++, len--;
	int r;
	const struct jwt_claims *claims = agent_auth_bearer(x, token, len, &r);
	if (!claims) {
		char message[96], headers[96];
		snprintf(message, sizeof message, "Invalid bearer token: %s.",
			 r == AGENT_AUTH_REVOKED ? "token revoked" : jwt_error_reason(r));
		snprintf(headers, sizeof headers, "WWW-Authenticate: " REALM ", error=\"%s\"\r\n",
			 api_oauth_errors[API_OAUTH_INVALID_TOKEN].code);
		refuse(x, family, REFUSE_UNAUTHORIZED, message, "Get a new agent token.", headers);
		return NULL;
	}
	if (scope && !(claims->scopes & scope)) {
		char needed[96], headers[192], message[160];
		jwt_scope_format(scope, needed, sizeof needed);
		snprintf(message, sizeof message, "The token lacks the scope this needs: %s%s.",
			 scope & (scope - 1) ? "one of " : "", needed);
		snprintf(headers, sizeof headers,
			 "WWW-Authenticate: " REALM ", error=\"%s\", scope=\"%s\"\r\n",
			 api_oauth_errors[API_OAUTH_INSUFFICIENT_SCOPE].code, needed);
		refuse(x, family, REFUSE_SCOPE, message, "Ask for a token with that scope.", headers);
		return NULL;
	}
	if (!api_count_call(x, claims)) {
		refuse(x, family, REFUSE_UNAVAILABLE, API_COUNT_UNAVAILABLE, "Retry shortly.",
		       "Retry-After: 1\r\n");
		return NULL;
	}
	return claims;
}

const struct jwt_claims *api_authenticate(struct http_exchange *x, const char *buf,
					  const struct http_request *req, uint32_t scope)
{
	return authenticate(x, buf, req, scope, AUTH_AGENT);
}

const struct jwt_claims *api_authenticate_identity(struct http_exchange *x, const char *buf,
						   const struct http_request *req, uint32_t scope)
{
	return authenticate(x, buf, req, scope, AUTH_IDENTITY);
}

const struct jwt_claims *api_authenticate_analytics(struct http_exchange *x, const char *buf,
						    const struct http_request *req)
{
	return authenticate(x, buf, req, 0, AUTH_ANALYTICS);
}
