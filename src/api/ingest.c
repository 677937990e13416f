/*
 * POST /api/metrics/ingest (seed 003): an agent's host-metrics report,
 * validated as its bytes arrive (src/ingest) and published as the agent's
 * latest snapshot (src/fleet).
 *
 * At the head: token, scope, media type, rate limit and a validator slot,
 * each refused at once (the body is then read and dropped). Each run of
 * body bytes goes straight into the validator; the first error stops it,
 * and the rest of the body is discarded. At the end: the error, or the
 * encoded report is published and 202 says what was accepted.
 */
#include "api_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ringside/fleet_report.h"

/* application/json or any application/...+json (RFC 6839), with
 * parameters (charset) allowed. */
static bool is_json(const char *v, size_t len)
{
	size_t n = 0;
	while (n < len && v[n] != ';' && v[n] != ' ' && v[n] != '\t')
		n++;
	if (n == 16 && !strncasecmp(v, "application/json", 16))
		return true;
	return n > 17 && !strncasecmp(v, "application/", 12) && !strncasecmp(v + n - 5, "+json", 5);
}

static unsigned ingest_head(struct http_exchange *x, const char *buf,
			    const struct http_request *req)
{
	const struct jwt_claims *c = api_authenticate(x, buf, req, JWT_SCOPE_METRICS_WRITE);
	if (!c)
		return 0;
	struct http_span ct = req->hdr[HTTP_HDR_CONTENT_TYPE];
	if (!is_json(http_span_ptr(buf, ct), ct.len)) {
		http_reply_error(x, 415, "VALIDATION_ERROR",
				 "The body must be JSON (Content-Type: application/json).",
				 NULL, "Send the report with `Content-Type: application/json`.", NULL);
		return 0;
	}
	struct api *a = x->ctx->api;
	size_t org_len = strlen(c->organization_id), agent_len = strlen(c->sub);
	uint32_t wait_ms = rate_limit_take(&a->rate, c->organization_id, org_len, c->sub,
					   agent_len, (uint64_t)api_now_ms());
	if (wait_ms) {
		char headers[48], hint[96];
		unsigned seconds = (wait_ms + 999) / 1000;
		snprintf(headers, sizeof headers, "Retry-After: %u\r\n", seconds);
		snprintf(hint, sizeof hint, "Send the next report in %u s; this agent may send %g per second.",
			 seconds, a->cfg->ingest_rate_milli / 1000.0);
		http_reply_error(x, 429, "RATE_LIMITED", "This agent sends reports too often.",
				 NULL, hint, headers);
		return 0;
	}
	struct api_worker *aw = api_worker_of(x);
	if (aw->free_top == 0) {
		http_reply_error(x, 503, "SERVICE_UNAVAILABLE",
				 "Too many reports are being received at once. Retry.", NULL,
				 "The operator can raise --ingest-slots.", "Retry-After: 1\r\n");
		return 0;
	}
	struct ingest_slot *s = &aw->slots[aw->free_slots[--aw->free_top]];
	ingest_parser_init(&s->parser, s->report, &a->limits);
	memcpy(s->org, c->organization_id, org_len + 1);
	memcpy(s->agent, c->sub, agent_len + 1);
	s->body_bytes = 0;
	x->handler_data = s;
	return 0;
}

static unsigned ingest_body(struct http_exchange *x, const char *data, size_t len)
{
	struct ingest_slot *s = x->handler_data;
	s->body_bytes += len;
	if (ingest_parser_feed(&s->parser, data, len) < 0)
		x->discard_body = true; /* the error is kept in the parser */
	return 0;
}

static void reply_invalid(struct http_exchange *x, const struct ingest_error *e)
{
	http_reply_error(x, e->status, "VALIDATION_ERROR", e->message,
			 e->path[0] ? e->path : NULL, e->hint, NULL);
}

static void ingest_request(struct http_exchange *x)
{
	struct ingest_slot *s = x->handler_data;
	struct api *a = x->ctx->api;
	if (ingest_parser_finish(&s->parser) < 0) {
		reply_invalid(x, &s->parser.err);
		return;
	}
	const struct ingest_report *r = s->report;
	size_t cap;
	char *blob = http_scratch(x, &cap);
	size_t len = fleet_report_encode(r, blob, cap);
	int err = len ? fleet_publish(&a->fleet, x->ctx->worker_id, s->org, strlen(s->org),
				      s->agent, strlen(s->agent), blob, len, api_now_ms())
		      : -EMSGSIZE;
	if (err == -EMSGSIZE) {
		http_reply_error(x, 413, "VALIDATION_ERROR",
				 "The report is larger than a stored snapshot may be.", NULL,
				 "Send fewer containers, checks or labels, or shorter texts.", NULL);
		return;
	}
	if (err < 0) {
		bool full = fleet_agent_count(&a->fleet) >= a->fleet.max_agents;
		http_reply_error(x, 503, "SERVICE_UNAVAILABLE",
				 full ? "This server keeps as many agents as it may."
				      : "Snapshot memory is exhausted. Retry.",
				 NULL,
				 full ? "The operator can raise --fleet-max-agents."
				      : "The operator can raise --fleet-memory.",
				 full ? NULL : "Retry-After: 5\r\n");
		return;
	}
	/* What was accepted, so an agent can check nothing was cut. The
	 * ids come from the token: escape them like any client string. */
	char body[1024], org[JWT_ID_CAP * 6], agent[JWT_ID_CAP * 6];
	http_json_escape(org, sizeof org, s->org);
	http_json_escape(agent, sizeof agent, s->agent);
	int n = snprintf(body, sizeof body,
			 "{\"accepted\":true,\"agentId\":\"%s\",\"organizationId\":\"%s\","
			 "\"bytes\":%llu,\"services\":%u,\"serviceHealthChecks\":%u,"
			 "\"tcpCheckResults\":%u,\"certCheckResults\":%u,\"containers\":%u,"
			 "\"processes\":%u}",
			 agent, org, (unsigned long long)s->body_bytes, r->n_service,
			 r->n_health_check, r->n_tcp_check, r->n_cert_check, r->n_container,
			 r->n_process);
	http_reply(x, 202, "application/json", NULL, body, (size_t)n);
}

static void ingest_end(struct http_exchange *x)
{
	struct ingest_slot *s = x->handler_data;
	if (s) {
		struct api_worker *aw = api_worker_of(x);
		aw->free_slots[aw->free_top++] = (uint32_t)(s - aw->slots);
	}
}

const struct http_handler api_ingest = {
	.on_head = ingest_head,
	.on_body = ingest_body,
	.on_request = ingest_request,
	.on_end = ingest_end,
	.error_code = api_agent_error_code,
};
