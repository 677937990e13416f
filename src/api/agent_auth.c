/*
 * Agent-token authentication for the agent routes (DESIGN.md "JWT"), and
 * the error codes of their family (seed 003).
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t api_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *api_agent_error_code(unsigned status)
{
	switch (status) {
	case 401:
		return "UNAUTHORIZED";
	case 403:
		return "FORBIDDEN_SCOPE";
	case 404:
		return "NOT_FOUND";
	case 429:
		return "RATE_LIMITED";
	case 503:
		return "SERVICE_UNAVAILABLE";
	default:
		/* The seed's list has one code for every request the client
		 * must change (bad JSON, too large, wrong media type, wrong
		 * or unimplemented method) and one for the server's own
		 * failures. */
		return status >= 500 && status != 501 ? "INTERNAL" : "VALIDATION_ERROR";
	}
}

#define REALM "Bearer realm=\"ringside\""

const struct jwt_claims *api_authenticate(struct http_exchange *x, const char *buf,
					  const struct http_request *req, uint32_t scope)
{
	struct api *a = x->ctx->api;
	if (!a->keys_loaded) {
		http_reply_error(x, 503, "SERVICE_UNAVAILABLE",
				 "Agent tokens are not configured on this server.", NULL,
				 "Start Ringside with --jwt-secret-file or --jwt-public-key-file.", NULL);
		return NULL;
	}
	struct http_span h = req->hdr[HTTP_HDR_AUTHORIZATION];
	const char *v = http_span_ptr(buf, h);
	/* RFC 6750 2.1: "Bearer" (any case), then the token after spaces. */
	if (h.len < 7 || strncasecmp(v, "Bearer ", 7)) {
		http_reply_error(x, 401, "UNAUTHORIZED", "Missing bearer token.", NULL,
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
			char message[96];
			snprintf(message, sizeof message, "Invalid bearer token: %s.",
				 jwt_error_reason(r));
			http_reply_error(x, 401, "UNAUTHORIZED", message, NULL,
					 "Get a new agent token.",
					 "WWW-Authenticate: " REALM ", error=\"invalid_token\"\r\n");
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
			 "WWW-Authenticate: " REALM ", error=\"insufficient_scope\", scope=\"%s\"\r\n",
			 needed);
		http_reply_error(x, 403, "FORBIDDEN_SCOPE", message, NULL,
				 "Ask for a token with that scope.", headers);
		return NULL;
	}
	return claims;
}
