/*
 * The fleet's latest reports: one agent's as JSON
 * (GET /api/metrics/agents/{agentId}/latest) and every fresh one as
 * Prometheus series (GET /metrics/fleet), both read from the fleet store
 * without locks.
 */
#include "api_int.h"

#include <errno.h>
#include <string.h>

#include "ringside/fleet_expo.h"
#include "ringside/fleet_report.h"
#include "ringside/metrics_expo.h"

#define LATEST_PREFIX "/api/metrics/agents/"
#define LATEST_SUFFIX "/latest"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The {agentId} segment, percent-decoded (RFC 3986 2.1) into out.
 * Returns its length, or -1 if it is not a valid id. */
static int agent_id_of(const char *path, size_t len, char out[JWT_ID_CAP])
{
	const size_t pre = sizeof LATEST_PREFIX - 1, suf = sizeof LATEST_SUFFIX - 1;
	if (len <= pre + suf) /* the router matched the pattern: it has both */
		return -1;
	const char *p = path + pre, *end = path + len - suf;
	int n = 0;
	while (p < end) {
		if (n == JWT_ID_CAP - 1)
			return -1;
		if (*p != '%') {
			out[n++] = *p++;
			continue;
		}
		int hi = end - p > 2 ? hex_value(p[1]) : -1, lo = hi < 0 ? -1 : hex_value(p[2]);
		if (lo < 0)
			return -1;
		out[n++] = (char)(hi << 4 | lo);
		p += 3;
	}
	out[n] = '\0';
	return n && (size_t)n == strlen(out) ? n : -1; /* no %00 */
}

static void not_found(struct http_exchange *x)
{
	http_reply_error(x, 404, "NOT_FOUND", "No report from this agent.", NULL,
			 "Agents are visible only to tokens of their organization, once they "
			 "have sent a report.", NULL);
}

/* A GET: everything happens here, while the head is at hand. */
static unsigned latest_head(struct http_exchange *x, const char *buf,
			    const struct http_request *req)
{
	const struct jwt_claims *c =
		api_authenticate(x, buf, req, JWT_SCOPE_AGENTS_READ | JWT_SCOPE_METRICS_WRITE);
	if (!c)
		return 0;
	char agent[JWT_ID_CAP], org[JWT_ID_CAP];
	int agent_len = agent_id_of(http_span_ptr(buf, req->path), req->path.len, agent);
	if (agent_len < 0) {
		not_found(x);
		return 0;
	}
	strcpy(org, c->organization_id); /* c may be in the scratch, used below */
	struct api *a = x->ctx->api;
	uint32_t worker = x->ctx->worker_id;
	/* Keyed by the token's organization: another organization's agent
	 * of the same id is simply not found. */
	const struct fleet_snapshot *s =
		fleet_lookup(&a->fleet, worker, org, strlen(org), agent, (size_t)agent_len);
	struct fleet_report v;
	if (!s || fleet_report_view(&v, s->data, s->len) < 0) {
		not_found(x);
		return 0;
	}
	size_t cap;
	char *out = http_scratch(x, &cap);
	size_t n = fleet_report_json(out, cap, s, &v, api_now_ms(), a->cfg->fleet_stale_ms);
	if (!n) {
		http_reply_error(x, 500, "INTERNAL", "The report could not be rendered.", NULL,
				 NULL, NULL);
		return 0;
	}
	http_reply_any(x, 200, "application/json", "Cache-Control: no-store\r\n", out, n);
	return 0;
}

const struct http_handler api_agent_latest = {
	.on_head = latest_head,
	.error_code = api_agent_error_code,
};

static size_t fleet_piece(void *state, struct http_context *ctx, char *buf, size_t cap)
{
	return fleet_expo_next(state, &ctx->api->fleet, ctx->worker_id, buf, cap);
}

static unsigned fleet_head(struct http_exchange *x, const char *buf,
			   const struct http_request *req)
{
	struct api *a = x->ctx->api;
	struct http_span accept = req->hdr[HTTP_HDR_ACCEPT];
	enum expo_format f = expo_negotiate(http_span_ptr(buf, accept), accept.len);
	int64_t now = api_now_ms();
	struct fleet_expo_options o = {
		.format = f,
		.now_ms = now,
		.stale_ms = a->cfg->fleet_stale_ms,
		.ttl_ms = a->cfg->fleet_ttl_ms,
		.max_series = a->cfg->fleet_max_series,
	};
	struct fleet_expo_cursor cursor;
	fleet_expo_begin(&cursor, &o);
	_Static_assert(sizeof cursor <= HTTP_STREAM_STATE_MAX, "the cursor travels with the stream");
	int r = http_reply_stream(x, 200,
				  f == EXPO_OPENMETRICS_100 ? EXPO_CONTENT_TYPE_OPENMETRICS
							    : EXPO_CONTENT_TYPE_TEXT,
				  "Vary: Accept\r\n", fleet_piece, &cursor, sizeof cursor);
	if (r == -EBUSY)
		http_reply_error(x, 503, NULL, "Too many fleet scrapes at once. Retry.", NULL,
				 NULL, "Retry-After: 1\r\n");
	return 0;
}

const struct http_handler api_fleet_metrics = {
	.on_head = fleet_head,
};
