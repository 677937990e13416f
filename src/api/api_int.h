/* Handlers of src/api, one per route (the table is in routes.c), and what
 * they share: per-worker state and agent-token authentication. */
#ifndef RINGSIDE_API_INT_H
#define RINGSIDE_API_INT_H

#include "ringside/api.h"
#include "ringside/client_secret.h"
#include "ringside/http_response.h"
#include "ringside/jwt.h"
#include "ringside/metrics.h"
#include "ringside/metrics_expo.h"
#include "ringside/rate_limit.h"
#include "ringside/revocations.h"

struct expo;

extern const struct http_handler api_health;
extern const struct http_handler api_ready;
extern const struct http_handler api_jwks;
extern const struct http_handler api_metrics;
extern const struct http_handler api_pool_json;
extern const struct http_handler api_pool_prometheus;
extern const struct http_handler api_pool_sse;
extern const struct http_handler api_pool_stats;
extern const struct http_handler api_ingest;
extern const struct http_handler api_agent_latest;
extern const struct http_handler api_fleet_metrics;
extern const struct http_handler api_agents_create;
extern const struct http_handler api_agents_list;
extern const struct http_handler api_agents_get;
extern const struct http_handler api_agents_patch;
extern const struct http_handler api_agents_delete;
extern const struct http_handler api_credentials_create;
extern const struct http_handler api_credentials_list;
extern const struct http_handler api_credentials_revoke;
extern const struct http_handler api_token;
extern const struct http_handler api_token_introspect;
extern const struct http_handler api_token_revoke;
extern const struct http_handler api_analytics_tokens;
extern const struct http_handler api_analytics_activity;
extern const struct http_handler api_analytics_agents;

/*
 * Each handler group's part of struct api: made, used and freed by the
 * group's own file (state.c only calls them in order), so a new route
 * group adds its part and no route edits another's.
 */

/* agent_auth.c: the agent-token keys and each worker's cache of verified
 * tokens. keys: taken over, or NULL (the agent routes answer 503). */
int agent_auth_init(struct api *a, struct jwt_keys *keys);
void agent_auth_fini(struct api *a);
uint64_t agent_auth_resident(const struct api *a, uint32_t worker);

/* A bearer token (the bytes after "Bearer "), verified through the
 * worker's cache and checked against the revocations: its claims (valid
 * during this handler call, and only until the next http_scratch use),
 * or NULL with *err a JWT_E_* code or AGENT_AUTH_REVOKED. Needs keys
 * (agent_auth_keys not NULL). Replies nothing. */
#define AGENT_AUTH_REVOKED (-1000)
const struct jwt_claims *agent_auth_bearer(struct http_exchange *x, const char *token,
					   size_t len, int *err);
/* The token keys, or NULL if none is configured. */
const struct jwt_keys *agent_auth_keys(const struct api *a);

/* fleet.c: the fleet store (ingest publishes into it) and each worker's
 * sweep for agents silent past --fleet-forget. */
int fleet_api_init(struct api *a);
void fleet_api_fini(struct api *a);
struct fleet_store *api_fleet_store(struct api *a);
void fleet_api_pass(struct api *a, uint32_t worker);
void fleet_api_stopped(struct api *a, uint32_t worker);
void fleet_api_write_metrics(struct api *a, struct expo *e);

/* ingest.c: per-agent rate limits, the report limits and each worker's
 * validators. */
int ingest_api_init(struct api *a);
void ingest_api_fini(struct api *a);
uint64_t ingest_api_resident(const struct api *a, uint32_t worker);
void ingest_api_write_metrics(struct api *a, struct expo *e);

/* identity.c: what the identity routes share (openapi/identity.yaml):
 * the revocations every authentication checks, the thread that keeps
 * them in step with the database (and the other instances), the key
 * client secrets are stored under, and the per-client token rate
 * limits. */
struct identity_api {
	struct revocations *revocations;
	struct identity_sync *sync;          /* NULL without a database */
	struct client_secret_key client_key; /* len 0: credential and token routes answer 503 */
	struct rate_limit token_rate;        /* per client id; rate 0: off */
};
int identity_api_init(struct api *a);
void identity_api_fini(struct api *a);
void identity_api_write_metrics(struct api *a, struct expo *e);

/* analytics.c: counting for tenant analytics (seed 002) into the count
 * journal, and the flusher that adds it to PostgreSQL. */
int analytics_api_init(struct api *a);
void analytics_api_fini(struct api *a);
void analytics_api_write_metrics(struct api *a, struct expo *e);
bool api_analytics_enabled(const struct api *a);
/* analytics_routes.c: each worker's cache of recent answers. */
int analytics_routes_init(struct api *a);
void analytics_routes_fini(struct api *a);
/* Marks the exchange: counted once it is answered 2xx (api_answered).
 * false: the count journal cannot be written now; the caller answers 503
 * with API_COUNT_UNAVAILABLE instead of acknowledging what it could not
 * count. */
bool api_count_call(struct http_exchange *x, const struct jwt_claims *c);
bool api_count_token(struct http_exchange *x, const char *org, const char *agent);
#define API_COUNT_UNAVAILABLE                                                                  \
	"This server cannot record requests right now: its count journal cannot be written."

/* A /metrics family of one unlabelled sample. */
void api_expo_single(struct expo *e, const char *name, enum expo_type type, const char *help,
		     uint64_t value);

/*
 * The agent token of the request (Authorization: Bearer, RFC 6750),
 * verified through the worker's cache, with `scope` (JWT_SCOPE_* bits, any
 * of them; 0: none needed). Returns its claims (valid during this handler
 * call), or NULL after replying 401 UNAUTHORIZED (no or invalid token,
 * with WWW-Authenticate), 403 FORBIDDEN_SCOPE, or 503 (no key
 * configured). The agent routes' error_code is api_agent_error_code
 * (api_errors.h).
 */
const struct jwt_claims *api_authenticate(struct http_exchange *x, const char *buf,
					  const struct http_request *req, uint32_t scope);

/* The same check, refusing in the identity family's envelope
 * (http_reply_identity_error: 401 UNAUTHORIZED, 403 FORBIDDEN, 503
 * SERVICE_UNAVAILABLE; WWW-Authenticate as above): for the registry and
 * credential routes, whose error_code is api_identity_error_code. */
const struct jwt_claims *api_authenticate_identity(struct http_exchange *x, const char *buf,
						   const struct http_request *req, uint32_t scope);
/* Any valid token, refused in seed 002's envelope (401 UNAUTHORIZED with
 * the seed's message, what was wrong in details.hint): the analytics
 * routes. */
const struct jwt_claims *api_authenticate_analytics(struct http_exchange *x, const char *buf,
						    const struct http_request *req);

/* Appends the handlers' own families to a /metrics exposition: the
 * fleet store and the validators. */
void api_write_metrics(struct api *a, struct expo *e);

/* Counts one event of this worker (a refused report, say). */
static inline void api_count(struct http_exchange *x, enum metrics_counter c)
{
	metrics_add(&x->ctx->shard->counters[c], 1);
}

/* Wall-clock milliseconds (the coarse clock: tokens and snapshot times
 * need no finer). */
int64_t api_now_ms(void);

#endif
