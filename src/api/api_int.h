/* Handlers of src/api, one per route; the table is in routes.c. */
#ifndef RINGSIDE_API_INT_H
#define RINGSIDE_API_INT_H

#include "ringside/http_response.h"

extern const struct http_handler api_health;
extern const struct http_handler api_metrics;
extern const struct http_handler api_pool_json;
extern const struct http_handler api_pool_prometheus;
extern const struct http_handler api_pool_sse;
extern const struct http_handler api_pool_stats;

#endif
