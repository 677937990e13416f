/*
 * The fleet's latest reports: one agent's as JSON
 * (GET /api/metrics/agents/{agentId}/latest) and every fresh one as
 * Prometheus series (GET /metrics/fleet), both read from the fleet store
 * without locks.
 */
#include "api_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringside/api_errors.h"
#include "ringside/config.h"
#include "ringside/fleet_expo.h"
#include "ringside/fleet_persist.h"
#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/http_query.h"
#include "ringside/log.h"
#include "ringside/metrics_expo.h"

struct fleet_api {
	struct fleet_store store;
	/* The sweep for agents silent past --fleet-forget (fleet_api_pass). */
	struct fleet_sweep {
		int64_t next_ms;
		uint32_t cursor;
	} __attribute__((aligned(64))) * sweeps;
};

int fleet_api_init(struct api *a)
{
	const struct config *cfg = a->cfg;
	struct fleet_api *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	a->fleet = f;
	/* One worker record more than there are workers: the main thread's,
	 * to save the fleet while they run (api_save_fleet). */
	int r = fleet_store_init(&f->store, cfg->fleet_max_agents, a->worker_count + 1,
				 (size_t)cfg->fleet_memory_bytes);
	if (r < 0) {
		log_error("cannot make the fleet store", "err=%d max_agents=%u memory=%llu", -r,
			  cfg->fleet_max_agents, (unsigned long long)cfg->fleet_memory_bytes);
		return -1;
	}
	fleet_offline(&f->store, a->worker_count); /* until a save brings it online */
	size_t bytes = a->worker_count * sizeof *f->sweeps;
	if (posix_memalign((void **)&f->sweeps, 64, bytes))
		return -1;
	memset(f->sweeps, 0, bytes);
	/* The workers sweep from spread-out slots, so that together they
	 * cover the fleet sooner than one would. */
	for (uint32_t i = 0; i < a->worker_count; i++)
		f->sweeps[i].cursor = (uint32_t)((uint64_t)cfg->fleet_max_agents * i / a->worker_count);
	return 0;
}

void fleet_api_fini(struct api *a)
{
	struct fleet_api *f = a->fleet;
	if (!f)
		return;
	fleet_store_fini(&f->store);
	free(f->sweeps);
	free(f);
	a->fleet = NULL;
}

struct fleet_store *api_fleet_store(struct api *a)
{
	return &a->fleet->store;
}

/* Slots one worker's sweep looks at a second: 100 000 agents are swept
 * every 25 s by one worker (a slot read each, a few atomics per agent
 * forgotten; tens of microseconds a call). */
#define FORGET_SWEEP_SLOTS 4096u

void fleet_api_pass(struct api *a, uint32_t worker)
{
	struct fleet_api *f = a->fleet;
	fleet_quiescent(&f->store, worker);
	struct fleet_sweep *sw = &f->sweeps[worker];
	if (!a->cfg->fleet_forget_ms)
		return;
	int64_t now = api_now_ms();
	if (now < sw->next_ms)
		return;
	sw->next_ms = now + 1000;
	fleet_forget(&f->store, worker, now - a->cfg->fleet_forget_ms, FORGET_SWEEP_SLOTS,
		     &sw->cursor);
}

void fleet_api_stopped(struct api *a, uint32_t worker)
{
	fleet_offline(&a->fleet->store, worker);
}

int api_load_fleet(struct api *a, const char *path)
{
	char err[256];
	uint64_t agents = 0;
	int64_t forget_before = a->cfg->fleet_forget_ms ? api_now_ms() - a->cfg->fleet_forget_ms
							 : INT64_MIN;
	/* The extra record: a worker's left offline by the load would serve
	 * its first requests before its first quiescent state brings it
	 * online. */
	int r = fleet_load(&a->fleet->store, a->worker_count, path, forget_before, &agents, err,
			   sizeof err);
	if (r < 0)
		log_error("the fleet file is damaged; serving with the agents read before the damage",
			  "path=\"%s\" agents=%llu err=\"%s\"", path, (unsigned long long)agents,
			  err);
	else
		log_info("fleet loaded", "path=\"%s\" agents=%llu", path, (unsigned long long)agents);
	return r;
}

int api_save_fleet(struct api *a, const char *path)
{
	char err[256];
	uint64_t agents = 0;
	int64_t t0 = api_now_ms();
	int r = fleet_save(&a->fleet->store, a->worker_count, path, &agents, err, sizeof err);
	if (r < 0)
		log_error("cannot save the fleet", "path=\"%s\" err=\"%s\"", path, err);
	else
		log_info("fleet saved", "path=\"%s\" agents=%llu ms=%lld", path,
			 (unsigned long long)agents, (long long)(api_now_ms() - t0));
	return r;
}

void fleet_api_write_metrics(struct api *a, struct expo *e)
{
	struct fleet_store *st = &a->fleet->store;
	expo_family(e, "ringside_fleet_agents", EXPO_GAUGE,
		    "Agents whose latest report the fleet store holds.");
	expo_sample(e, "ringside_fleet_agents", NULL, NULL, 0, NULL, (double)fleet_agent_count(st));
	expo_family(e, "ringside_fleet_snapshot_bytes", EXPO_GAUGE,
		    "Bytes of those reports in their stored form (about 11 KB for the full sample).");
	expo_sample(e, "ringside_fleet_snapshot_bytes", NULL, NULL, 0, NULL,
		    (double)fleet_snapshot_bytes(st));
	expo_family(e, "ringside_fleet_agents_forgotten_total", EXPO_COUNTER,
		    "Agents forgotten after --fleet-forget of silence: their slots and memory freed.");
	expo_sample(e, "ringside_fleet_agents_forgotten_total", NULL, NULL, 0, NULL,
		    (double)fleet_forgotten(st));
}

static void not_found(struct http_exchange *x)
{
	http_reply_agent_error(x, 404, API_AGENT_NOT_FOUND, "No report from this agent.", NULL,
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
	char org[JWT_ID_CAP];
	size_t agent_len = 0;
	const char *agent = http_param(x, 0, &agent_len); /* {agentId}, decoded */
	if (agent_len >= JWT_ID_CAP) {
		not_found(x); /* longer than any agent id a token can carry */
		return 0;
	}
	strcpy(org, c->organization_id); /* c may be in the scratch, used below */
	struct api *a = x->ctx->api;
	uint32_t worker = x->ctx->worker_id;
	/* Keyed by the token's organization: another organization's agent
	 * of the same id is simply not found. */
	const struct fleet_snapshot *s =
		fleet_lookup(&a->fleet->store, worker, org, strlen(org), agent, agent_len);
	struct fleet_report v;
	if (!s || fleet_report_view(&v, s->data, s->len) < 0) {
		not_found(x);
		return 0;
	}
	size_t cap;
	char *out = http_scratch(x, &cap);
	size_t n = fleet_report_json(out, cap, s, &v, api_now_ms(), a->cfg->fleet_stale_ms);
	if (!n) {
		http_reply_agent_error(x, 500, API_AGENT_INTERNAL, "The report could not be rendered.",
				       NULL, NULL, NULL);
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
	struct fleet_expo_cursor *c = state;
	bool was_done = c->done;
	size_t n = fleet_expo_next(c, &ctx->api->fleet->store, ctx->worker_id, buf, cap);
	if (c->done && !was_done) {
		/* What this scrape left out, for /metrics too. */
		_Static_assert(FLEET_EXPO_DROPS == METRIC_FLEET_DROPPED_INVALID_ID -
							   METRIC_FLEET_DROPPED_LABEL_TOO_LONG + 1,
			       "the drop reasons of the exposition and of /metrics agree");
		for (unsigned i = 0; i < FLEET_EXPO_DROPS; i++)
			metrics_add(&ctx->shard->counters[METRIC_FLEET_DROPPED_LABEL_TOO_LONG + i],
				    c->dropped[i]);
	}
	/* A call that wrote nothing (its budget went on left-out series) is
	 * not the end: the stream calls again after serving others. */
	if (n == 0 && !c->done)
		return HTTP_PRODUCE_AGAIN;
	return n;
}

/* A 400 naming the query parameter a scrape got wrong. */
static unsigned bad_selection(struct http_exchange *x, const char *field, const char *message)
{
	http_reply_core_error(x, 400, API_CORE_BAD_REQUEST, message, field,
			      "See the README: ?org=ID, ?shard=I&of=N, "
			      "?include=services,checks,containers,processes or all.",
			      NULL);
	return 0;
}

/*
 * The part of the fleet a scrape asks for (README "Scraping a large
 * fleet"): ?org=ID, ?shard=I&of=N, ?include=GROUPS; any other parameter
 * is ignored, as Prometheus may add its own. Returns 0, or -1 after
 * answering 400 naming the parameter.
 */
static int parse_selection(struct http_exchange *x, const char *q, size_t len,
			   struct fleet_expo_options *o)
{
	struct http_query_param p;
	size_t pos = 0;
	bool seen_org = false, seen_shard = false, seen_of = false, seen_include = false;
	long shard = -1, of = -1;
	char v[256];
	while (http_query_next(q, len, &pos, &p)) {
		bool *seen = NULL;
		const char *name = NULL;
#define KEY_IS(k) (p.key_len == sizeof(k) - 1 && !memcmp(p.key, k, sizeof(k) - 1))
		if (KEY_IS("org"))
			seen = &seen_org, name = "org";
		else if (KEY_IS("shard"))
			seen = &seen_shard, name = "shard";
		else if (KEY_IS("of"))
			seen = &seen_of, name = "of";
		else if (KEY_IS("include"))
			seen = &seen_include, name = "include";
#undef KEY_IS
		if (!seen)
			continue;
		if (*seen)
			return bad_selection(x, name, "A selection parameter is repeated."), -1;
		*seen = true;
		ssize_t n = http_query_decode(p.value, p.value_len, v, sizeof v);
		if (n < 0)
			return bad_selection(x, name, "A selection parameter is badly encoded."), -1;
		if (name[0] == 'o' && name[1] == 'r') {
			if (fleet_expo_select_org(o, v, (size_t)n) < 0)
				return bad_selection(x, "org", "No organization has this id."), -1;
		} else if (name[0] == 'i') {
			const char *bad;
			size_t bad_len;
			if (fleet_expo_parse_groups(v, (size_t)n, &o->groups, &bad, &bad_len) < 0) {
				char message[128];
				snprintf(message, sizeof message, "Unknown family group \"%.*s\".",
					 (int)(bad_len < 40 ? bad_len : 40), bad);
				return bad_selection(x, "include", message), -1;
			}
		} else {
			long number = 0;
			for (ssize_t i = 0; i < n && number <= 65535; i++)
				number = v[i] >= '0' && v[i] <= '9' ? number * 10 + (v[i] - '0') : 65536;
			if (n == 0 || number > 65535) /* digits only: no sign, no space */
				return bad_selection(x, name, "Want a whole number."), -1;
			if (name[0] == 's')
				shard = number;
			else
				of = number;
		}
	}
	if (seen_shard != seen_of)
		return bad_selection(x, seen_shard ? "of" : "shard",
				     "shard and of go together: ?shard=I&of=N."), -1;
	if (seen_shard && fleet_expo_select_shard(o, (uint32_t)shard, (uint32_t)of) < 0)
		return bad_selection(x, "shard", "Want 0 <= shard < of."), -1;
	return 0;
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
	if (parse_selection(x, http_span_ptr(buf, req->query), req->query.len, &o) < 0)
		return 0;
	struct fleet_expo_cursor cursor;
	fleet_expo_begin(&cursor, &o);
	_Static_assert(sizeof cursor <= HTTP_STREAM_STATE_MAX, "the cursor travels with the stream");
	/* Prometheus always offers gzip; the body shrinks 25 times. */
	struct http_span encoding = req->hdr[HTTP_HDR_ACCEPT_ENCODING];
	bool gzip = encoding.len && expo_accepts_gzip(http_span_ptr(buf, encoding), encoding.len);
	int r = http_reply_stream(x, 200,
				  f == EXPO_OPENMETRICS_100 ? EXPO_CONTENT_TYPE_OPENMETRICS
							    : EXPO_CONTENT_TYPE_TEXT,
				  /* RFC 9110 12.5.5: the answer depends on both. */
				  "Vary: Accept, Accept-Encoding\r\n", gzip ? HTTP_STREAM_GZIP : 0,
				  fleet_piece, &cursor, sizeof cursor);
	if (r == -EBUSY)
		http_reply_core_error(x, 503, API_CORE_SERVICE_UNAVAILABLE,
				      "Too many fleet scrapes at once. Retry.", NULL, NULL,
				      "Retry-After: 1\r\n");
	return 0;
}

const struct http_handler api_fleet_metrics = {
	.on_head = fleet_head,
};
