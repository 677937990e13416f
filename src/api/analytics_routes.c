/*
 * Tenant analytics (seed 002, ../shared/seeds/002-tenant-analytics):
 *
 *   GET /api/v1/analytics/tokens?days=N   token issuances per UTC day
 *   GET /api/v1/analytics/agents/activity issuances and API calls of the
 *                                         last 90 days by weekday and hour
 *   GET /api/v1/analytics/agents          every agent's month so far
 *
 * Any valid token of the organization may read (the seed names no
 * scope); the organization is its organization_id claim. Each answer is
 * one statement over the rollups (db_analytics.h), parked until it comes
 * back. Errors are seed 002's envelope {code, message, details?,
 * requestId}; a database failure is its 500.
 *
 * Answers are kept by each worker for ANSWER_TTL_MS: a dashboard asks the
 * same question again and again, the rollups change only when the
 * flusher commits (once a second at most), and counts are promised within
 * about three seconds anyway. So the database sees at most one query a second
 * per organization, question and worker, however many ask, and an answer
 * costs a copy; the p99 is not the database's queue. When an answer
 * expires, one request goes to the database for a new one and the others
 * get the old one meanwhile (a second older at most): were they all to
 * go, every request arriving during that query would queue behind it.
 */
#include "api_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ringside/config.h"
#include "ringside/db.h"
#include "ringside/http_query.h"
#include "ringside/json_writer.h"

#define DAYS_DEFAULT 30
#define DAYS_MAX 90
#define ACTIVITY_DAYS 90
/* The park outlives the read timeout: the database thread's own answer
 * comes first. */
#define DB_SLACK_MS 1000u
/* Answer cache: per worker, direct-mapped, each answer in a buffer of
 * its own (a mapping touched as used). A larger answer (an organization
 * of thousands of agents) is not kept. */
#define ANSWER_TTL_MS 1000
#define ANSWER_SLOTS 64u
#define ANSWER_MAX (256u * 1024u)
#define ANSWER_KEY_MAX 96u

enum analytics_route { ROUTE_TOKENS, ROUTE_ACTIVITY, ROUTE_AGENTS };

struct answer {
	int64_t until_ms;
	int64_t refresh_ms; /* a request went to the database for it then; 0: none */
	uint32_t len;
	uint8_t key_len;
	char key[ANSWER_KEY_MAX];
};

struct analytics_answers {
	struct answer slot[ANSWER_SLOTS];
	char *bodies; /* ANSWER_SLOTS x ANSWER_MAX */
} __attribute__((aligned(64)));

int analytics_routes_init(struct api *a)
{
	a->analytics_answers = calloc(a->worker_count, sizeof *a->analytics_answers);
	if (!a->analytics_answers)
		return -1;
	for (uint32_t w = 0; w < a->worker_count; w++) {
		char *m = mmap(NULL, (size_t)ANSWER_SLOTS * ANSWER_MAX, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		a->analytics_answers[w].bodies = m;
	}
	return 0;
}

void analytics_routes_fini(struct api *a)
{
	if (!a->analytics_answers)
		return;
	for (uint32_t w = 0; w < a->worker_count; w++)
		if (a->analytics_answers[w].bodies)
			munmap(a->analytics_answers[w].bodies, (size_t)ANSWER_SLOTS * ANSWER_MAX);
	free(a->analytics_answers);
	a->analytics_answers = NULL;
}

/* What the head learnt, in handler_space. */
struct analytics_state {
	char org[JWT_ID_CAP];
	uint8_t route; /* enum analytics_route */
	uint8_t days;
	uint8_t key_len;
	int64_t now_s; /* the clock the window is computed from */
	char key[ANSWER_KEY_MAX]; /* the question: route, window, organization */
};
_Static_assert(sizeof(struct analytics_state) <= HTTP_HANDLER_SPACE, "fits handler_space");

static struct analytics_state *state_of(struct http_exchange *x)
{
	return (struct analytics_state *)(void *)x->handler_space;
}

/* The result lives at the start of the exchange buffer until the
 * completion is back. */
static struct db_result *result_of(struct http_exchange *x)
{
	return (struct db_result *)(void *)http_exchange_buffer(x);
}

static void internal_error(struct http_exchange *x)
{
	http_reply_detailed_error(x, 500, API_CORE_INTERNAL_SERVER_ERROR, NULL, NULL, NULL);
}

/* `days`: absent is 30; a decimal 1..90 once; the seed's two errors
 * otherwise, byte for byte. false after answering. */
static bool parse_days(struct http_exchange *x, const char *q, size_t len, uint8_t *days)
{
	static const char not_positive[] = "Query parameter `days` must be a positive integer.";
	struct http_query_param p;
	size_t pos = 0;
	bool seen = false;
	char v[32];
	ssize_t n = -1;
	for (unsigned i = 0; i < 256 && http_query_next(q, len, &pos, &p); i++) {
		char key[8];
		if (http_query_decode(p.key, p.key_len, key, sizeof key) != 4 || memcmp(key, "days", 4))
			continue;
		if (seen) {
			n = -1; /* repeated: which would it be? */
			break;
		}
		seen = true;
		n = http_query_decode(p.value, p.value_len, v, sizeof v);
	}
	*days = DAYS_DEFAULT;
	if (!seen)
		return true;
	const struct http_error_details field = {.field = "days"};
	size_t digits = n > 0 ? strspn(v, "0123456789") : 0;
	if (n <= 0 || digits != (size_t)n || strspn(v, "0") == (size_t)n) {
		http_reply_detailed_error(x, 400, API_CORE_VALIDATION_ERROR, not_positive, &field,
					  NULL);
		return false;
	}
	const char *sig = v + strspn(v, "0"); /* "007" is 7 */
	if (strlen(sig) > 2 || atoi(sig) > DAYS_MAX) {
		const struct http_error_details over = {.field = "days", .max = "90",
							.provided = sig};
		http_reply_detailed_error(x, 400, API_CORE_VALIDATION_ERROR,
					  "Query parameter `days` must not exceed 90.", &over, NULL);
		return false;
	}
	*days = (uint8_t)atoi(sig);
	return true;
}

/* The first second of the UTC month of t. */
static int64_t month_start(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return (int64_t)timegm(&tm);
}

/* The window's start: the first day shown, the heatmap's first hour, the
 * month. */
static int64_t window_start(const struct analytics_state *st)
{
	int64_t today = st->now_s - st->now_s % 86400;
	if (st->route == ROUTE_TOKENS)
		return today - (int64_t)(st->days - 1) * 86400;
	if (st->route == ROUTE_ACTIVITY)
		return st->now_s - st->now_s % 3600 - (int64_t)ACTIVITY_DAYS * 86400;
	return month_start(st->now_s);
}

static struct answer *answer_slot(struct http_exchange *x, const struct analytics_state *st,
				  char **body)
{
	struct analytics_answers *c = &x->ctx->api->analytics_answers[x->ctx->worker_id];
	uint32_t h = 2166136261u; /* FNV-1a */
	for (unsigned i = 0; i < st->key_len; i++)
		h = (h ^ (unsigned char)st->key[i]) * 16777619u;
	uint32_t i = h % ANSWER_SLOTS;
	*body = c->bodies + (size_t)i * ANSWER_MAX;
	return &c->slot[i];
}

/* Answers from the worker's cache: a fresh answer, or an expired one
 * while another request fetches its successor. false: this request asks
 * the database (it is the one refreshing, or there is no answer). */
static bool answer_cached(struct http_exchange *x, const struct analytics_state *st)
{
	char *body;
	struct answer *e = answer_slot(x, st, &body);
	if (e->key_len != st->key_len || memcmp(e->key, st->key, st->key_len))
		return false;
	int64_t now = api_now_ms();
	if (e->until_ms <= now) {
		/* A refresh that has not come back in its timeout failed:
		 * this request tries again. */
		if (!e->refresh_ms || now - e->refresh_ms > (int64_t)x->ctx->cfg->db_timeout_read_ms +
								    (int64_t)DB_SLACK_MS) {
			e->refresh_ms = now;
			return false;
		}
	}
	http_reply_any(x, 200, "application/json", "Cache-Control: no-store\r\n", body, e->len);
	return true;
}

static void answer_keep(struct http_exchange *x, const struct analytics_state *st,
			const char *json, size_t len)
{
	char *body;
	struct answer *e = answer_slot(x, st, &body);
	if (len > ANSWER_MAX)
		return;
	memcpy(body, json, len);
	e->len = (uint32_t)len;
	e->key_len = st->key_len;
	memcpy(e->key, st->key, st->key_len);
	e->until_ms = api_now_ms() + ANSWER_TTL_MS;
	e->refresh_ms = 0;
}

static unsigned analytics_head(struct http_exchange *x, const char *buf,
			       const struct http_request *req, enum analytics_route route)
{
	struct api *a = x->ctx->api;
	if (!api_analytics_enabled(a)) {
		http_reply_detailed_error(x, 404, API_CORE_NOT_FOUND,
					  "Analytics is not enabled on this instance.", NULL, NULL);
		return 0;
	}
	const struct jwt_claims *c = api_authenticate_analytics(x, buf, req);
	if (!c)
		return 0;
	struct analytics_state *st = state_of(x);
	memcpy(st->org, c->organization_id, sizeof st->org);
	st->route = (uint8_t)route;
	st->now_s = api_now_ms() / 1000;
	if (route == ROUTE_TOKENS &&
	    !parse_days(x, http_span_ptr(buf, req->query), req->query.len, &st->days))
		return 0;
	int n = snprintf(st->key, sizeof st->key, "%u %lld %s", (unsigned)route,
			 (long long)window_start(st), st->org);
	st->key_len = (uint8_t)(n > 0 && (size_t)n < sizeof st->key ? n : 0);
	if (st->key_len && answer_cached(x, st))
		return 0;
	if (!a->db)
		internal_error(x); /* no database: nothing to read */
	return 0;
}

static unsigned tokens_head(struct http_exchange *x, const char *buf,
			    const struct http_request *req)
{
	return analytics_head(x, buf, req, ROUTE_TOKENS);
}

static unsigned activity_head(struct http_exchange *x, const char *buf,
			      const struct http_request *req)
{
	return analytics_head(x, buf, req, ROUTE_ACTIVITY);
}

static unsigned agents_head(struct http_exchange *x, const char *buf,
			    const struct http_request *req)
{
	return analytics_head(x, buf, req, ROUTE_AGENTS);
}

static bool param_i64(struct db_request *q, int64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof text, "%lld", (long long)v);
	return db_request_param(q, text, (size_t)n);
}

static void analytics_request(struct http_exchange *x)
{
	struct api *a = x->ctx->api;
	const struct analytics_state *st = state_of(x);
	struct db_result *res = result_of(x);
	if (!res) {
		http_reply_detailed_error(x, 503, API_CORE_SERVICE_UNAVAILABLE,
					  "No buffer is free for this request. Retry.", NULL,
					  "Retry-After: 1\r\n");
		return;
	}
	memset(res, 0, sizeof *res);
	size_t cap = HTTP_EXCHANGE_BUF_SIZE - sizeof *res;
	res->buf = (char *)(res + 1);
	if (st->route == ROUTE_AGENTS) {
		/* Every agent of the organization: past the exchange buffer
		 * for a large one, so the rows go to a body buffer, which
		 * then carries the answer. */
		res->buf = http_body_buffer(x, &cap);
		if (!res->buf) {
			http_reply_detailed_error(x, 503, API_CORE_SERVICE_UNAVAILABLE,
						  "No buffer is free for this request. Retry.",
						  NULL, "Retry-After: 1\r\n");
			return;
		}
	}
	res->cap = (uint32_t)cap;
	static const uint16_t statements[] = {DB_ANALYTICS_TOKENS, DB_ANALYTICS_ACTIVITY,
					      DB_ANALYTICS_AGENTS};
	struct db_request q = {.statement = statements[st->route], .result = res};
	bool ok = db_request_param(&q, st->org, strlen(st->org)) &&
		  param_i64(&q, window_start(st)) &&
		  (st->route != ROUTE_TOKENS || param_i64(&q, st->days));
	if (!ok) {
		internal_error(x);
		return;
	}
	q.token = http_park(x, a->cfg->db_timeout_read_ms + DB_SLACK_MS);
	if (!q.token || db_submit(a->db, x->ctx->worker_id, &q) < 0) {
		http_unpark(x);
		http_reply_detailed_error(x, 503, API_CORE_SERVICE_UNAVAILABLE,
					  "Too many database requests are waiting. Retry.", NULL,
					  "Retry-After: 1\r\n");
	}
}

/* Value (row, col) as a JSON number (the database wrote it: digits). */
static void number(struct json_writer *w, const struct db_result *r, uint32_t row, uint32_t col)
{
	int64_t v = 0;
	db_value_i64(r, row, col, &v);
	jsonw_i64(w, v);
}

static void string_value(struct json_writer *w, const struct db_result *r, uint32_t row,
			 uint32_t col)
{
	uint32_t len;
	const char *v = db_value(r, row, col, &len);
	if (v)
		jsonw_string(w, v, len);
	else
		jsonw_null(w);
}

static void write_tokens(struct json_writer *w, const struct db_result *r,
			 const struct analytics_state *st)
{
	jsonw_key(w, "days");
	jsonw_u64(w, st->days);
	jsonw_key(w, "data");
	jsonw_start_array(w);
	for (uint32_t i = 0; i < r->rows; i++) {
		jsonw_start_object(w);
		jsonw_key(w, "date");
		string_value(w, r, i, 0);
		jsonw_key(w, "count");
		number(w, r, i, 1);
		jsonw_end_object(w);
	}
	jsonw_end_array(w);
}

static void write_activity(struct json_writer *w, const struct db_result *r)
{
	jsonw_key(w, "data");
	jsonw_start_array(w);
	for (uint32_t i = 0; i < r->rows; i++) {
		jsonw_start_object(w);
		jsonw_key(w, "dayOfWeek");
		number(w, r, i, 0);
		jsonw_key(w, "hour");
		number(w, r, i, 1);
		jsonw_key(w, "count");
		number(w, r, i, 2);
		jsonw_end_object(w);
	}
	jsonw_end_array(w);
}

static void write_agents(struct json_writer *w, const struct db_result *r,
			 const struct analytics_state *st)
{
	char month[8];
	time_t t = (time_t)st->now_s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(month, sizeof month, "%Y-%m", &tm);
	jsonw_key(w, "month");
	jsonw_cstring(w, month);
	jsonw_key(w, "data");
	jsonw_start_array(w);
	for (uint32_t i = 0; i < r->rows; i++) {
		jsonw_start_object(w);
		jsonw_key(w, "agentId");
		string_value(w, r, i, 0);
		jsonw_key(w, "agentEmail");
		string_value(w, r, i, 1);
		jsonw_key(w, "tokensIssued");
		number(w, r, i, 2);
		jsonw_key(w, "apiCalls");
		number(w, r, i, 3);
		jsonw_key(w, "lastActiveAt");
		string_value(w, r, i, 4);
		jsonw_end_object(w);
	}
	jsonw_end_array(w);
}

static void analytics_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *r = result_of(x);
	const struct analytics_state *st = state_of(x);
	/* Written by the database thread before it posted (release there,
	 * acquire here). */
	if (!atomic_load_explicit(&r->done, memory_order_acquire) || r->status != DB_OK) {
		internal_error(x);
		return;
	}
	size_t cap;
	char *out = http_scratch(x, &cap);
	struct json_writer w;
	jsonw_init(&w, out, cap);
	jsonw_start_object(&w);
	jsonw_key(&w, "organizationId");
	jsonw_cstring(&w, st->org);
	if (st->route == ROUTE_TOKENS)
		write_tokens(&w, r, st);
	else if (st->route == ROUTE_ACTIVITY)
		write_activity(&w, r);
	else
		write_agents(&w, r, st);
	jsonw_end_object(&w);
	size_t n = jsonw_done(&w);
	if (!n) {
		internal_error(x);
		return;
	}
	if (st->key_len)
		answer_keep(x, st, out, n);
	/* The rows (a body buffer, for the agents) are read: the answer may
	 * take their place. */
	http_reply_any(x, 200, "application/json", "Cache-Control: no-store\r\n", out, n);
}

/* The server's own answers on these routes (413, 504) are the core
 * family's, seed 002's codes among them (error_code NULL). */
#define ANALYTICS_HANDLER(head)                                                                \
	{.on_head = head, .on_request = analytics_request, .on_resume = analytics_resume}

const struct http_handler api_analytics_tokens = ANALYTICS_HANDLER(tokens_head);
const struct http_handler api_analytics_activity = ANALYTICS_HANDLER(activity_head);
const struct http_handler api_analytics_agents = ANALYTICS_HANDLER(agents_head);
