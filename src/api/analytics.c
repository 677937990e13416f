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
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringside/analytics_flusher.h"
#include "ringside/analytics_journal.h"
#include "ringside/analytics_journal_dir.h"
#include "ringside/config.h"
#include "ringside/db.h"
#include "ringside/log.h"
#include "ringside/metrics_expo.h"

/* A segment is closed past this: small enough that a wholly applied one
 * is soon deleted, large enough that rotation is rare. */
#define SEGMENT_BYTES (64ull << 20)
/* How often the flusher looks for new events: each flush costs PostgreSQL
 * about half a millisecond of CPU (a worker's, on a small machine), so
 * once a second, not five times. */
#define FLUSH_INTERVAL_MS 1000u
/* Hourly rollups are kept for the longest window (90 days) and a margin. */
#define HOURLY_RETENTION_DAYS 92u
/* At shutdown, how long the flusher may take to apply what is left (the
 * rest waits in the journal for the next start). */
#define STOP_DRAIN_MS 2000u

struct analytics_api {
	bool counting;                   /* the journal is open: events are counted */
	struct journal_writer **writers; /* one per worker */
	struct analytics_flusher *flusher;
	int instance_lock;               /* flock()ed: this process's directory */
	char dir[CONFIG_PATH_MAX];       /* <--analytics-journal>/<n> */
};

int analytics_api_init(struct api *a)
{
	struct analytics_api *an = calloc(1, sizeof *an);
	if (!an)
		return -1;
	an->instance_lock = -1;
	a->analytics = an;
	return 0;
}

/* ringside_meta's database_id: which database the journal is for. */
static int read_database_id(const char *url, char out[37])
{
	const char *keys[DB_CONNECT_PARAMS], *values[DB_CONNECT_PARAMS];
	db_connect_params(url, keys, values);
	PGconn *pg = PQconnectdbParams(keys, values, 1);
	PGresult *res = NULL;
	int rc = -1;
	if (PQstatus(pg) == CONNECTION_OK) {
		res = PQexec(pg, "SELECT database_id::text FROM ringside_meta");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		    PQgetlength(res, 0, 0) == 36) {
			memcpy(out, PQgetvalue(res, 0, 0), 36);
			out[36] = '\0';
			rc = 0;
		}
	}
	if (rc < 0) {
		char why[160];
		db_log_text(PQerrorMessage(pg), why, sizeof why);
		log_error("analytics: cannot read the database's id", "error=\"%s\"", why);
	}
	PQclear(res);
	PQfinish(pg);
	return rc;
}

int api_start_analytics(struct api *a)
{
	struct analytics_api *an = a->analytics;
	const struct config *cfg = a->cfg;
	/* Counting needs somewhere to go: without a database there are no
	 * rollups to read, and without analytics nothing is asked. */
	if (!cfg->analytics_enabled || !cfg->database_url[0])
		return 0;
	char db_id[37];
	int r = read_database_id(cfg->database_url, db_id);
	if (r == 0)
		r = journal_dir_take(cfg->analytics_journal, db_id, an->dir, sizeof an->dir,
				     &an->instance_lock);
	if (r < 0) {
		log_error("cannot set up the count journal", "path=\"%s\" err=\"%s\" hint=\"%s\"",
			  cfg->analytics_journal, strerror(-r),
			  "set --analytics-journal to a writable directory");
		return -1;
	}
	an->writers = calloc(a->worker_count, sizeof *an->writers);
	if (!an->writers)
		return -1;
	for (uint32_t w = 0; w < a->worker_count; w++) {
		const struct journal_writer_config jc = {
			.dir = an->dir,
			.worker = w,
			.segment_bytes = SEGMENT_BYTES,
			.sync = cfg->journal_sync == 1,
		};
		if (journal_writer_open(&an->writers[w], &jc) < 0)
			return -1;
	}
	const struct analytics_flusher_config fc = {
		.url = cfg->database_url,
		.dir = an->dir,
		.interval_ms = FLUSH_INTERVAL_MS,
		.batch_events = cfg->analytics_batch,
		.hourly_retention_days = HOURLY_RETENTION_DAYS,
	};
	if (analytics_flusher_start(&an->flusher, &fc) < 0)
		return -1;
	an->counting = true;
	log_info("counting into the journal", "dir=\"%s\"", an->dir);
	return 0;
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
	if (an->instance_lock >= 0)
		close(an->instance_lock);
	free(an);
	a->analytics = NULL;
}

bool api_analytics_enabled(const struct api *a)
{
	return a->cfg->analytics_enabled;
}

/* false: the worker's journal cannot be written (its last flush failed,
 * the events wait in memory), so this request must not be acknowledged:
 * its count could not be kept. */
static bool mark(struct http_exchange *x, enum journal_kind kind, const char *org,
		 const char *agent)
{
	struct analytics_api *an = x->ctx->api->analytics;
	if (!an->counting)
		return true;
	if (journal_failing(an->writers[x->ctx->worker_id]))
		return false;
	size_t org_len = strlen(org), agent_len = strlen(agent);
	if (!org_len || !agent_len || org_len > JOURNAL_ID_MAX || agent_len > JOURNAL_ID_MAX)
		return true; /* claims are at most 63 bytes: cannot happen */
	x->count_kind = (uint8_t)kind;
	x->count_org_len = (uint8_t)org_len;
	x->count_agent_len = (uint8_t)agent_len;
	memcpy(x->count_org, org, org_len);
	memcpy(x->count_agent, agent, agent_len);
	return true;
}

bool api_count_call(struct http_exchange *x, const struct jwt_claims *c)
{
	return mark(x, JOURNAL_API_CALL, c->organization_id, c->sub);
}

bool api_count_token(struct http_exchange *x, const char *org, const char *agent)
{
	return mark(x, JOURNAL_TOKEN_ISSUED, org, agent);
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
