#include "api_int.h"

static void health_request(struct http_exchange *x)
{
	static const char body[] = "{\"status\":\"ok\"}";
	http_reply(x, 200, "application/json", NULL, body, sizeof body - 1);
}

const struct http_handler api_health = {.on_request = health_request};
