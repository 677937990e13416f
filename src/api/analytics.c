/*
 * Counting for tenant analytics (seed 002): what is counted, and the
 * journal it goes to before its answer leaves.
 *
 *   - a token issuance: each 200 of POST /api/v1/token, for the agent
 *     the token is for;
 *   - an API call: each 2xx of a request authenticated by an agent's
 *     token (ingest, /latest, the registry, introspection by bearer, the
 *     analytics routes themselves), for the token's sub.
 *
 * A handler (or the authentication) marks the exchange (api_count_*);
 * when the server queues its 2xx answer it calls api_answered, which
 * appends the event to the worker's journal buffer; the worker writes the
 * buffer at the end of its loop pass (api_worker_flush), before the
 * pass's answers go to the kernel. The flusher thread
 * (src/analytics/flusher.c) adds the journal to PostgreSQL's rollups.
 */
#include "api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ringside/analytics_flusher.h"
#include "ringside/analytics_journal.h"
#include "ringside/config.h"
#include "ringside/log.h"
#include "ringside/metrics_expo.h"

/* A segment is closed past this: small enough that a wholly applied one
 * is soon deleted, large enough that rotation is rare. */
#define SEGMENT_BYTES (64ull << 20)
/* How often the flusher looks for new events. */
#define FLUSH_INTERVAL_MS 200u
/* Hourly rollups are kept for the longest window (90 days) and a margin. */
#define HOURLY_RETENTION_DAYS 92u
/* At shutdown, how long the flusher may take to apply what is left (the
 * rest waits in the journal for the next start). */
#define STOP_DRAIN_MS 2000u

struct analytics_api {
	bool counting;                   /* the journal is open: events are counted */
	struct journal_writer **writers; /* one per worker */
	struct analytics_flusher *flusher;
};

/* mkdir -p for the journal directory. */
static int make_dir(const char *path)
{
	char p[CONFIG_PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof p)
		return -ENAMETOOLONG;
	memcpy(p, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		p[i] = c;
	}
	return 0;
}

int analytics_api_init(struct api *a)
{
	struct analytics_api *an = calloc(1, sizeof *an);
	if (!an)
		return -1;
	a->analytics = an;
	const struct config *cfg = a->cfg;
	/* Counting needs somewhere to go: without a database there are no
	 * rollups to read, and without analytics nothing is asked. */
	if (!cfg->analytics_enabled || !cfg->database_url[0])
		return 0;
	int r = make_dir(cfg->analytics_journal);
	if (r < 0) {
		log_error("cannot make the count journal's directory", "path=\"%s\" err=\"%s\" "
			  "hint=\"%s\"", cfg->analytics_journal, strerror(-r),
			  "set --analytics-journal to a writable directory");
		return -1;
	}
	an->writers = calloc(a->worker_count, sizeof *an->writers);
	if (!an->writers)
		return -1;
	for (uint32_t w = 0; w < a->worker_count; w++) {
		const struct journal_writer_config jc = {
			.dir = cfg->analytics_journal,
			.worker = w,
			.segment_bytes = SEGMENT_BYTES,
			.sync = cfg->journal_sync == 1,
		};
		if (journal_writer_open(&an->writers[w], &jc) < 0)
			return -1;
	}
	an->counting = true;
	return 0;
}

int api_start_analytics(struct api *a)
{
	struct analytics_api *an = a->analytics;
	if (!an->counting)
		return 0;
	const struct analytics_flusher_config fc = {
		.url = a->cfg->database_url,
		.dir = a->cfg->analytics_journal,
		.interval_ms = FLUSH_INTERVAL_MS,
		.batch_events = a->cfg->analytics_batch,
		.hourly_retention_days = HOURLY_RETENTION_DAYS,
	};
	return analytics_flusher_start(&an->flusher, &fc) < 0 ? -1 : 0;
}

void analytics_api_fini(struct api *a)
{
	struct analytics_api *an = a->analytics;
	if (!an)
		return;
	if (an->writers) {
		/* The workers are gone: what they counted is written first,
		 * then the flusher gets a moment to apply it. */
		for (uint32_t w = 0; w < a->worker_count; w++)
			if (an->writers[w]) {
				journal_flush(an->writers[w]);
				journal_writer_close(an->writers[w]);
			}
		free(an->writers);
	}
	if (an->flusher)
		analytics_flusher_stop(an->flusher, STOP_DRAIN_MS);
	free(an);
	a->analytics = NULL;
}

bool api_analytics_enabled(const struct api *a)
{
	return a->cfg->analytics_enabled;
}

static void mark(struct http_exchange *x, enum journal_kind kind, const char *org,
		 const char *agent)
{
	if (!x->ctx->api->analytics->counting)
		return;
	size_t org_len = strlen(org), agent_len = strlen(agent);
	if (!org_len || !agent_len || org_len > JOURNAL_ID_MAX || agent_len > JOURNAL_ID_MAX)
		return; /* claims are at most 63 bytes: cannot happen */
	x->count_kind = (uint8_t)kind;
	x->count_org_len = (uint8_t)org_len;
	x->count_agent_len = (uint8_t)agent_len;
	memcpy(x->count_org, org, org_len);
	memcpy(x->count_agent, agent, agent_len);
}

void api_count_call(struct http_exchange *x, const struct jwt_claims *c)
{
	mark(x, JOURNAL_API_CALL, c->organization_id, c->sub);
}

void api_count_token(struct http_exchange *x, const char *org, const char *agent)
{
	mark(x, JOURNAL_TOKEN_ISSUED, org, agent);
}

void api_answered(struct http_exchange *x)
{
	struct analytics_api *an = x->ctx->api->analytics;
	if (!an->counting)
		return;
	/* Buffered only; a full buffer is written first (journal.c). A
	 * failure keeps the event buffered for the next flush. */
	journal_append(an->writers[x->ctx->worker_id], (enum journal_kind)x->count_kind,
		       x->count_org, x->count_org_len, x->count_agent, x->count_agent_len,
		       api_now_ms());
}

void api_worker_flush(struct api *a, uint32_t worker)
{
	struct analytics_api *an = a->analytics;
	if (an->counting && journal_pending(an->writers[worker]))
		journal_flush(an->writers[worker]);
}

void analytics_api_write_metrics(struct api *a, struct expo *e)
{
	struct analytics_api *an = a->analytics;
	if (!an->flusher)
		return;
	struct analytics_flusher_stats st;
	analytics_flusher_read_stats(an->flusher, &st);
	api_expo_single(e, "ringside_analytics_flusher_up", EXPO_GAUGE,
			"1 while the analytics flusher is connected to its database.", st.up);
	api_expo_single(e, "ringside_analytics_events_applied_total", EXPO_COUNTER,
			"Counted events added to the analytics rollups.", st.events_applied);
	api_expo_single(e, "ringside_analytics_journal_backlog_bytes", EXPO_GAUGE,
			"Bytes of the count journal not yet in the rollups (grows while "
			"PostgreSQL is away).",
			st.backlog_bytes);
}
