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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "ringside/api_errors.h"
#include "ringside/config.h"
#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/ingest.h"
#include "ringside/json_writer.h"
#include "ringside/log.h"
#include "ringside/metrics_expo.h"
#include "ringside/rate_limit.h"
#include "ringside/resident.h"

/* A validator: taken when the first body bytes of a report arrive (not
 * at its head, so a client that sends a head and then nothing holds
 * none), given back at the exchange's end. 1.7 KB of parser here, and an
 * 880 KB report in a lazily touched mapping: a validator costs what its
 * documents touch (a dripping client's, one page). */
struct ingest_slot {
	struct ingest_parser parser;
	struct ingest_report *report;  /* in the worker's lazily touched mapping */
};

/* A worker's validators. */
struct validators {
	struct ingest_slot *slots;
	uint32_t *free_slots;          /* stack of free slot indexes */
	uint32_t free_top, slot_count;
	_Atomic uint32_t slots_in_use; /* for /metrics; written by this worker */
	struct ingest_report *reports; /* slot_count of them, MAP_NORESERVE */
} __attribute__((aligned(64)));

struct ingest_api {
	struct rate_limit rate;
	struct ingest_limits limits;
	struct validators *per_worker;
};

static int validators_init(struct validators *v, uint32_t slots)
{
	v->slot_count = slots;
	v->slots = calloc(slots, sizeof *v->slots);
	v->free_slots = calloc(slots, sizeof *v->free_slots);
	/* Reports are 880 KB each, but a report's pools and arena are
	 * touched only as far as its documents reach. */
	void *m = mmap(NULL, (size_t)slots * sizeof *v->reports, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	v->reports = m == MAP_FAILED ? NULL : m;
	if (!v->slots || !v->free_slots || !v->reports)
		return -1;
	for (uint32_t i = 0; i < slots; i++) {
		v->slots[i].report = &v->reports[i];
		v->free_slots[i] = slots - 1 - i;
	}
	v->free_top = slots;
	return 0;
}

static void validators_fini(struct validators *v)
{
	free(v->slots);
	free(v->free_slots);
	if (v->reports)
		munmap(v->reports, (size_t)v->slot_count * sizeof *v->reports);
}

/* The rate limiter tracks twice the agents the store keeps (a power of
 * two), so it fills only past that. */
static uint32_t rate_entries(uint32_t agents)
{
	uint32_t n = 1024;
	while (n < 2 * (uint64_t)agents && n < (1u << 26))
		n <<= 1;
	return n;
}

int ingest_api_init(struct api *a)
{
	const struct config *cfg = a->cfg;
	struct ingest_api *in = calloc(1, sizeof *in);
	if (!in)
		goto nomem;
	a->ingest = in;
	in->limits = cfg->ingest_limits;
	if (rate_limit_init(&in->rate, rate_entries(cfg->fleet_max_agents),
			    cfg->ingest_rate_milli) < 0)
		goto nomem;
	size_t bytes = a->worker_count * sizeof *in->per_worker;
	if (posix_memalign((void **)&in->per_worker, 64, bytes))
		goto nomem;
	memset(in->per_worker, 0, bytes);
	for (uint32_t i = 0; i < a->worker_count; i++)
		if (validators_init(&in->per_worker[i], cfg->ingest_slots) < 0)
			goto nomem;
	return 0;
nomem:
	log_error("out of memory for the agent routes", "workers=%u ingest_slots=%u",
		  a->worker_count, cfg->ingest_slots);
	return -1;
}

void ingest_api_fini(struct api *a)
{
	struct ingest_api *in = a->ingest;
	if (!in)
		return;
	if (in->per_worker)
		for (uint32_t i = 0; i < a->worker_count; i++)
			validators_fini(&in->per_worker[i]);
	free(in->per_worker);
	rate_limit_fini(&in->rate);
	free(in);
	a->ingest = NULL;
}

uint64_t ingest_api_resident(const struct api *a, uint32_t worker)
{
	const struct validators *v = &a->ingest->per_worker[worker];
	return resident_bytes(v->slots, (size_t)v->slot_count * sizeof *v->slots) +
	       resident_bytes(v->free_slots, (size_t)v->slot_count * sizeof *v->free_slots) +
	       resident_bytes(v->reports, (size_t)v->slot_count * sizeof *v->reports);
}

void ingest_api_write_metrics(struct api *a, struct expo *e)
{
	uint64_t in_use = 0;
	for (uint32_t i = 0; i < a->worker_count; i++)
		in_use += atomic_load_explicit(&a->ingest->per_worker[i].slots_in_use,
					       memory_order_relaxed);
	expo_family(e, "ringside_ingest_validators", EXPO_GAUGE,
		    "Reports that can be validated at once (--ingest-slots times the workers).");
	expo_sample(e, "ringside_ingest_validators", NULL, NULL, 0, NULL,
		    (double)a->cfg->ingest_slots * a->worker_count);
	expo_family(e, "ringside_ingest_validators_in_use", EXPO_GAUGE,
		    "Reports being validated now.");
	expo_sample(e, "ringside_ingest_validators_in_use", NULL, NULL, 0, NULL, (double)in_use);
}

static struct validators *validators_of(struct http_exchange *x)
{
	return &x->ctx->api->ingest->per_worker[x->ctx->worker_id];
}

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

/* What the head learnt, kept in the exchange until the report is stored:
 * the token's ids (its claims live only during the head's call). */
struct ingest_request {
	struct ingest_slot *slot; /* NULL until body bytes arrive */
	bool no_slot;             /* none was free: the body is dropped, 503 */
	uint8_t org_len, agent_len;
	char org[JWT_ID_CAP];
	char agent[JWT_ID_CAP];
	uint64_t body_bytes;
};
_Static_assert(sizeof(struct ingest_request) <= HTTP_HANDLER_SPACE,
	       "the ingest state lives in the exchange");

static struct ingest_request *request_of(struct http_exchange *x)
{
	return (struct ingest_request *)(void *)x->handler_space;
}

static unsigned ingest_head(struct http_exchange *x, const char *buf,
			    const struct http_request *req)
{
	const struct jwt_claims *c = api_authenticate(x, buf, req, JWT_SCOPE_METRICS_WRITE);
	if (!c) {
		if (x->status == 401)
			api_count(x, METRIC_INGEST_REFUSED_UNAUTHORIZED);
		else if (x->status == 403)
			api_count(x, METRIC_INGEST_REFUSED_FORBIDDEN);
		return 0;
	}
	struct http_span ct = req->hdr[HTTP_HDR_CONTENT_TYPE];
	if (!is_json(http_span_ptr(buf, ct), ct.len)) {
		api_count(x, METRIC_INGEST_REFUSED_MEDIA_TYPE);
		http_reply_agent_error(x, 415, API_AGENT_VALIDATION_ERROR,
				 "The body must be JSON (Content-Type: application/json).",
				 NULL, "Send the report with `Content-Type: application/json`.", NULL);
		return 0;
	}
	struct api *a = x->ctx->api;
	struct ingest_request *r = request_of(x);
	r->org_len = (uint8_t)strlen(c->organization_id);
	r->agent_len = (uint8_t)strlen(c->sub);
	memcpy(r->org, c->organization_id, r->org_len + 1u);
	memcpy(r->agent, c->sub, r->agent_len + 1u);
	uint32_t wait_ms = rate_limit_take(&a->ingest->rate, r->org, r->org_len, r->agent,
					   r->agent_len, (uint64_t)api_now_ms());
	if (wait_ms) {
		char headers[48], hint[96];
		unsigned seconds = (wait_ms + 999) / 1000;
		snprintf(headers, sizeof headers, "Retry-After: %u\r\n", seconds);
		snprintf(hint, sizeof hint, "Send the next report in %u s; this agent may send %g per second.",
			 seconds, a->cfg->ingest_rate_milli / 1000.0);
		api_count(x, METRIC_INGEST_REFUSED_RATE_LIMITED);
		http_reply_agent_error(x, 429, API_AGENT_RATE_LIMITED,
				       "This agent sends reports too often.", NULL, hint, headers);
		return 0;
	}
	x->handler_data = r; /* on_end: there may be a validator to give back */
	return 0;
}

/* A validator for this report, taken from the worker's free stack; false
 * (and the body dropped) when every one is busy. */
static bool take_slot(struct http_exchange *x, struct ingest_request *r)
{
	struct validators *aw = validators_of(x);
	if (aw->free_top == 0) {
		r->no_slot = true;
		x->discard_body = true;
		return false;
	}
	r->slot = &aw->slots[aw->free_slots[--aw->free_top]];
	atomic_store_explicit(&aw->slots_in_use, aw->slot_count - aw->free_top,
			      memory_order_relaxed);
	ingest_parser_init(&r->slot->parser, r->slot->report, &x->ctx->api->ingest->limits);
	return true;
}

static unsigned ingest_body(struct http_exchange *x, const char *data, size_t len)
{
	struct ingest_request *r = request_of(x);
	if (!r->slot && !take_slot(x, r))
		return 0;
	r->body_bytes += len;
	if (ingest_parser_feed(&r->slot->parser, data, len) < 0)
		x->discard_body = true; /* the error is kept in the parser */
	return 0;
}

static void ingest_request(struct http_exchange *x)
{
	struct ingest_request *r = request_of(x);
	struct api *a = x->ctx->api;
	/* An empty body still goes through the validator, for its error. */
	if (!r->slot && !r->no_slot)
		take_slot(x, r);
	if (r->no_slot) {
		api_count(x, METRIC_INGEST_REFUSED_NO_VALIDATOR);
		http_reply_agent_error(x, 503, API_AGENT_SERVICE_UNAVAILABLE,
				       "Too many reports are being received at once. Retry.", NULL,
				       "The operator can raise --ingest-slots.", "Retry-After: 1\r\n");
		return;
	}
	struct ingest_parser *p = &r->slot->parser;
	if (ingest_parser_finish(p) < 0) {
		api_count(x, p->err.status == 413 ? METRIC_INGEST_REFUSED_TOO_LARGE
						  : METRIC_INGEST_REFUSED_INVALID);
		http_reply_agent_error(x, p->err.status, API_AGENT_VALIDATION_ERROR, p->err.message,
				       p->err.path[0] ? p->err.path : NULL, p->err.hint, NULL);
		return;
	}
	const struct ingest_report *rep = r->slot->report;
	size_t cap;
	char *blob = http_scratch(x, &cap);
	size_t len = fleet_report_encode(rep, blob, cap);
	int err = len ? fleet_publish(api_fleet_store(a), x->ctx->worker_id, r->org, r->org_len, r->agent,
				      r->agent_len, blob, len, api_now_ms())
		      : -EMSGSIZE;
	if (err == -EMSGSIZE) {
		api_count(x, METRIC_INGEST_REFUSED_TOO_LARGE);
		http_reply_agent_error(x, 413, API_AGENT_VALIDATION_ERROR,
				       "The report is larger than a stored snapshot may be.", NULL,
				       "Send fewer containers, checks or labels, or shorter texts.", NULL);
		return;
	}
	if (err < 0) {
		bool full = fleet_agent_count(api_fleet_store(a)) >= api_fleet_store(a)->max_agents;
		api_count(x, full ? METRIC_INGEST_REFUSED_FLEET_FULL
				  : METRIC_INGEST_REFUSED_FLEET_MEMORY);
		http_reply_agent_error(x, 503, API_AGENT_SERVICE_UNAVAILABLE,
				       full ? "This server keeps as many agents as it may."
					    : "Snapshot memory is exhausted. Retry.",
				       NULL,
				       full ? "The operator can raise --fleet-max-agents."
					    : "The operator can raise --fleet-memory.",
				       full ? NULL : "Retry-After: 5\r\n");
		return;
	}
	api_count(x, METRIC_INGEST_ACCEPTED);
	/* What was accepted, so an agent can check nothing was cut. The ids
	 * come from the token: the writer escapes them like any client
	 * string, and always terminates what it wrote. */
	char body[512];
	struct json_writer w;
	jsonw_init(&w, body, sizeof body);
	jsonw_start_object(&w);
	jsonw_key(&w, "accepted");
	jsonw_bool(&w, true);
	jsonw_key(&w, "agentId");
	jsonw_string(&w, r->agent, r->agent_len);
	jsonw_key(&w, "organizationId");
	jsonw_string(&w, r->org, r->org_len);
	const struct {
		const char *key;
		uint64_t value;
	} counts[] = {
		{"bytes", r->body_bytes},
		{"services", rep->n_service},
		{"serviceHealthChecks", rep->n_health_check},
		{"tcpCheckResults", rep->n_tcp_check},
		{"certCheckResults", rep->n_cert_check},
		{"containers", rep->n_container},
		{"processes", rep->n_process},
	};
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		jsonw_key(&w, counts[i].key);
		jsonw_u64(&w, counts[i].value);
	}
	jsonw_end_object(&w);
	http_reply(x, 202, "application/json", NULL, body, jsonw_done(&w));
}

static void ingest_end(struct http_exchange *x)
{
	struct ingest_request *r = x->handler_data;
	if (r && r->slot) {
		struct validators *aw = validators_of(x);
		aw->free_slots[aw->free_top++] = (uint32_t)(r->slot - aw->slots);
		atomic_store_explicit(&aw->slots_in_use, aw->slot_count - aw->free_top,
				      memory_order_relaxed);
		r->slot = NULL;
	}
}

const struct http_handler api_ingest = {
	.on_head = ingest_head,
	.on_body = ingest_body,
	.on_request = ingest_request,
	.on_end = ingest_end,
	.error_code = api_agent_error_code,
};
