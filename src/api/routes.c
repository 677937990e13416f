#include "ringside/api.h"

#include "api_int.h"

#include "ringside/http_parser.h"
#include "ringside/router.h"

/* Where every request goes. The pattern is also the `route` label of
 * the request metrics, so it must never be the raw path. */
static const struct http_route routes[] = {
	{HTTP_GET, "/health", &api_health, HTTP_ROUTE_EVERY_LISTENER},
	{HTTP_GET, "/ready", &api_ready, HTTP_ROUTE_EVERY_LISTENER},
	{HTTP_GET, "/metrics", &api_metrics, HTTP_ROUTE_METRICS},
	/* Seed 004 documents the trailing slash; both forms answer. */
	{HTTP_GET, "/metrics/api/metrics/", &api_pool_json, HTTP_ROUTE_METRICS},
	{HTTP_GET, "/metrics/api/metrics", &api_pool_json, HTTP_ROUTE_METRICS},
	{HTTP_GET, "/metrics/api/metrics/prometheus", &api_pool_prometheus, HTTP_ROUTE_METRICS},
	{HTTP_GET, "/metrics/api/metrics/sse", &api_pool_sse, HTTP_ROUTE_METRICS},
	{HTTP_GET, "/metrics/api/metrics/stats", &api_pool_stats, HTTP_ROUTE_METRICS},
	{HTTP_GET, "/metrics/fleet", &api_fleet_metrics, HTTP_ROUTE_METRICS},
	{HTTP_POST, "/api/metrics/ingest", &api_ingest, 0},
	{HTTP_GET, "/api/metrics/agents/{agentId}/latest", &api_agent_latest, 0},
	{HTTP_GET, "/.well-known/jwks.json", &api_jwks, 0},
	{HTTP_POST, "/api/v1/agents", &api_agents_create, 0},
	{HTTP_GET, "/api/v1/agents", &api_agents_list, 0},
	{HTTP_GET, "/api/v1/agents/{agentId}", &api_agents_get, 0},
	{HTTP_PATCH, "/api/v1/agents/{agentId}", &api_agents_patch, 0},
	{HTTP_DELETE, "/api/v1/agents/{agentId}", &api_agents_delete, 0},
	{HTTP_POST, "/api/v1/agents/{agentId}/credentials", &api_credentials_create, 0},
	{HTTP_GET, "/api/v1/agents/{agentId}/credentials", &api_credentials_list, 0},
	{HTTP_DELETE, "/api/v1/agents/{agentId}/credentials/{credentialId}",
	 &api_credentials_revoke, 0},
	{HTTP_POST, "/api/v1/token", &api_token, 0},
	{HTTP_POST, "/api/v1/token/introspect", &api_token_introspect, 0},
	{HTTP_POST, "/api/v1/token/revoke", &api_token_revoke, 0},
	{HTTP_GET, "/api/v1/analytics/tokens", &api_analytics_tokens, 0},
	{HTTP_GET, "/api/v1/analytics/agents/activity", &api_analytics_activity, 0},
	{HTTP_GET, "/api/v1/analytics/agents", &api_analytics_agents, 0},
};

const struct router api_router = {routes, sizeof routes / sizeof routes[0]};
