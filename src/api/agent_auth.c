/*
 * Agent-token authentication for the agent routes (DESIGN.md "JWT"),
 * answering refusals with their family's codes (seed 003) and RFC 6750's
 * WWW-Authenticate.
 */
#include "api_int.h"

#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "ringside/api_errors.h"

int64_t api_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define REALM "Bearer realm=\"ringside\""

const struct jwt_claims *api_authenticate(struct http_exchange *x, const char *buf,
					  const struct http_request *req, uint32_t scope)
{
	struct api *a = x->ctx->api;
	if (!a->keys_loaded) {
		http_reply_agent_error(x, 503, API_AGENT_SERVICE_UNAVAILABLE,
				       "Agent tokens are not configured on this server.", NULL,
				       "Start Ringside with --jwt-secret-file or --jwt-public-key-file.",
				       NULL);
		return NULL;
	}
	struct http_span h = req->hdr[HTTP_HDR_AUTHORIZATION];
	const char *v = http_span_ptr(buf, h);
	/* RFC 6750 2.1: "Bearer" (any case), then the token after spaces. */
	if (h.len < 7 || strncasecmp(v, "Bearer ", 7)) {
		http_reply_agent_error(x, 401, API_AGENT_UNAUTHORIZED, "Missing bearer token.", NULL,
				       "Send the agent token as `Authorization: Bearer <token>`.",
				       "WWW-Authenticate: " REALM "\r\n");
		return NULL;
	}
	const char *token = v + 7;
	size_t len = h.len - 7;
	while (len && *token == ' ')
		token++, len--;

	struct api_worker *aw = api_worker_of(x);
	int64_t now = api_now_ms() / 1000;
	const struct jwt_claims *claims = token_cache_get(&aw->tokens, token, len, now);
	if (!claims) {
		/* The worker's scratch is free during a handler call. */
		size_t cap;
		struct jwt_claims *fresh = (struct jwt_claims *)(void *)http_scratch(x, &cap);
		int r = jwt_verify(&a->keys, token, len, now, fresh);
		if (r) {
			char message[96], headers[96];
			snprintf(message, sizeof message, "Invalid bearer token: %s.",
				 jwt_error_reason(r));
			snprintf(headers, sizeof headers, "WWW-Authenticate: " REALM ", error=\"%s\"\r\n",
				 api_oauth_errors[API_OAUTH_INVALID_TOKEN].code);
			http_reply_agent_error(x, 401, API_AGENT_UNAUTHORIZED, message, NULL,
					       "Get a new agent token.", headers);
			return NULL;
		}
		token_cache_put(&aw->tokens, token, len, fresh, now);
		claims = fresh;
	}
	if (scope && !(claims->scopes & scope)) {
		char needed[96], headers[192], message[160];
		jwt_scope_format(scope, needed, sizeof needed);
		snprintf(message, sizeof message, "The token lacks the scope this needs: %s%s.",
			 scope & (scope - 1) ? "one of " : "", needed);
		snprintf(headers, sizeof headers,
			 "WWW-Authenticate: " REALM ", error=\"%s\", scope=\"%s\"\r\n",
			 api_oauth_errors[API_OAUTH_INSUFFICIENT_SCOPE].code, needed);
		http_reply_agent_error(x, 403, API_AGENT_FORBIDDEN_SCOPE, message, NULL,
				       "Ask for a token with that scope.", headers);
		return NULL;
	}
	return claims;
}
