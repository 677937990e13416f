#include "ringside/api.h"

#include "api_int.h"

/* Where every request goes. The pattern is also the `route` label of
 * the request metrics, so it must never be the raw path. */
static const struct http_route routes[] = {
	{HTTP_GET, "/health", &api_health},
};

const struct router api_router = {routes, sizeof routes / sizeof routes[0]};
