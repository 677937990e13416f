/*
 * GET /ready: readiness, as a load balancer or Kubernetes means it. Each
 * request asks the database thread for a round trip of its own (no cached
 * answer), parked until it comes back: 200 when PostgreSQL answered, 503
 * with the envelope when it did not (or no database is configured).
 * /health stays liveness and never touches the database.
 */
#include "api_int.h"

#include <stdatomic.h>
#include <string.h>

#include "ringside/api_errors.h"
#include "ringside/config.h"
#include "ringside/db.h"

/* The park outlives the ping's statement timeout by this much, so the
 * database thread's own answer (a timeout, a lost connection) comes
 * first and the 504 of the park's deadline only if that thread is stuck. */
#define READY_SLACK_MS 1000u

_Static_assert(sizeof(struct db_result) <= HTTP_HANDLER_SPACE,
	       "the result lives in the exchange until the completion is back");

static struct db_result *result_of(struct http_exchange *x)
{
	return (struct db_result *)(void *)x->handler_space;
}

static void not_ready(struct http_exchange *x, const char *message, const char *hint)
{
	http_reply_core_error(x, 503, API_CORE_SERVICE_UNAVAILABLE, message, NULL, hint,
			      "Cache-Control: no-store\r\nRetry-After: 1\r\n");
}

static void ready_request(struct http_exchange *x)
{
	struct api *a = x->ctx->api;
	if (!a->db) {
		not_ready(x, "No database is configured.",
			  "Start Ringside with --database-url (or RINGSIDE_DATABASE_URL).");
		return;
	}
	struct db_result *res = result_of(x);
	memset(res, 0, sizeof *res);
	struct db_request q = {.statement = DB_PING, .result = res};
	q.token = http_park(x, a->cfg->db_timeout_ping_ms + READY_SLACK_MS);
	if (!q.token || db_submit(a->db, x->ctx->worker_id, &q) < 0) {
		http_unpark(x);
		not_ready(x, "Too many database requests are waiting. Retry.", NULL);
	}
}

static void ready_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = result_of(x);
	/* Written by the database thread before it posted: `done` (release
	 * there, acquire here) orders those writes before these reads. */
	if (!atomic_load_explicit(&res->done, memory_order_acquire) || res->status != DB_OK) {
		not_ready(x, "The database is not reachable.", NULL);
		return;
	}
	static const char body[] = "{\"status\":\"ready\",\"database\":\"ok\"}";
	http_reply(x, 200, "application/json", "Cache-Control: no-store\r\n", body,
		   sizeof body - 1);
}

const struct http_handler api_ready = {.on_request = ready_request, .on_resume = ready_resume};
