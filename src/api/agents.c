/*
 * The agent registry (openapi/identity.yaml): POST, GET (list and one),
 * PATCH and DELETE of /api/v1/agents[/{agentId}]. Each request is one
 * statement of DB_REGISTRY_STATEMENTS, parked until it comes back; an
 * agent of another organization is simply not found (404, never 403:
 * a 403 would say that it exists).
 */
#include "registry_int.h"

#include <stdio.h>
#include <string.h>

#include "ringside/api_errors.h"
#include "ringside/http_query.h"
#include "ringside/registry_body.h"

#define LIST_LIMIT_DEFAULT 20
#define LIST_LIMIT_MAX 100
/* "<created_at in Unix microseconds>.<agent id>": opaque to clients. */
#define CURSOR_MAX (20 + 1 + REGISTRY_UUID_LEN)

static const char *const list_statuses[] = {"active", "suspended", "decommissioned"};

/* A body the parser refused: 413 for one too large, else 400 naming the
 * member. */
static void body_refused(struct http_exchange *x, int status, const struct registry_body_error *e,
			 const char *hint)
{
	if (status == REGISTRY_BODY_TOO_LARGE) {
		http_reply_identity_error(x, 413, API_IDENTITY_PAYLOAD_TOO_LARGE, e->message, NULL,
					  NULL, NULL);
		return;
	}
	http_reply_identity_error(x, 400, API_IDENTITY_VALIDATION_ERROR, e->message,
				  e->field[0] ? e->field : NULL, hint, NULL);
}

/* One text parameter, or NULL when the field was not sent. */
static void param_if(struct db_request *q, const struct registry_body *b, unsigned field,
		     const char *s, size_t len)
{
	db_request_param(q, b->present & (1u << field) ? s : NULL, len);
}

/* The capabilities as a PostgreSQL array literal {a:b,c:d}: their bytes
 * ([a-z0-9_-:]) need no quoting there. */
static void param_capabilities(struct db_request *q, const struct registry_body *b)
{
	if (!(b->present & REGISTRY_HAS(CAPABILITIES))) {
		db_request_param(q, NULL, 0);
		return;
	}
	char lit[REGISTRY_CAPS_MAX * (REGISTRY_CAP_MAX + 1) + 2];
	size_t n = 0;
	lit[n++] = '{';
	for (size_t i = 0; i < b->ncapabilities; i++) {
		if (i)
			lit[n++] = ',';
		memcpy(lit + n, b->capabilities[i].s, b->capabilities[i].len);
		n += b->capabilities[i].len;
	}
	lit[n++] = '}';
	db_request_param(q, lit, n);
}

/* $n..$n+5 of CREATE and UPDATE: email, agentType, version, capabilities,
 * owner, deploymentEnv, each NULL when absent. */
static void param_fields(struct db_request *q, const struct registry_body *b)
{
	const char *type = registry_body_agent_type_name(b->agent_type);
	const char *env = registry_body_deployment_env_name(b->deployment_env);
	param_if(q, b, REGISTRY_FIELD_EMAIL, b->email, b->email_len);
	param_if(q, b, REGISTRY_FIELD_AGENT_TYPE, type, type ? strlen(type) : 0);
	param_if(q, b, REGISTRY_FIELD_VERSION, b->version, b->version_len);
	param_capabilities(q, b);
	param_if(q, b, REGISTRY_FIELD_OWNER, b->owner, b->owner_len);
	param_if(q, b, REGISTRY_FIELD_DEPLOYMENT_ENV, env, env ? strlen(env) : 0);
}

/* 200 or 201 with the agent of row 0. */
static void reply_agent(struct http_exchange *x, unsigned status, const char *headers,
			const struct db_result *res)
{
	struct json_writer w;
	registry_writer(x, &w);
	if (!registry_write_agent(&w, res, 0)) {
		registry_internal(x);
		return;
	}
	registry_reply_json(x, status, headers, &w);
}

static void email_in_use(struct http_exchange *x)
{
	registry_conflict(x, "Another agent already uses this email.");
}

/* ---- POST /api/v1/agents ---- */

static void create_request(struct http_exchange *x)
{
	struct registry_body b;
	struct registry_body_error e;
	int r = registry_body_parse_create(x->body, x->body_len, &b, &e);
	if (r < 0) {
		body_refused(x, r, &e, NULL);
		return;
	}
	struct db_request q = {.statement = DB_AGENT_CREATE};
	registry_param_org(x, &q);
	param_fields(&q, &b);
	registry_submit(x, &q, DB_CLASS_WRITE);
}

static void create_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = registry_result(x);
	if (!res)
		return;
	if (registry_unique_violation(res)) {
		email_in_use(x);
		return;
	}
	uint32_t id_len;
	const char *id = registry_value(res, 0, AGENT_COL_ID, &id_len);
	if (res->rows != 1 || id_len != REGISTRY_UUID_LEN) {
		registry_internal(x);
		return;
	}
	char location[64];
	snprintf(location, sizeof location, "Location: /api/v1/agents/%.*s\r\n", (int)id_len, id);
	api_count(x, METRIC_AGENTS_REGISTERED);
	reply_agent(x, 201, location, res);
}

const struct http_handler api_agents_create = {
	.on_head = registry_head_write,
	.on_request = create_request,
	.on_resume = create_resume,
	.error_code = api_identity_error_code,
	.body_max = REGISTRY_BODY_MAX,
};

/* ---- GET /api/v1/agents ---- */

static bool parse_limit(const char *v, size_t len, uint8_t *out)
{
	unsigned n = 0;
	if (!len || len > 3)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		n = n * 10 + (unsigned)(v[i] - '0');
	}
	if (n < 1 || n > LIST_LIMIT_MAX)
		return false;
	*out = (uint8_t)n;
	return true;
}

static bool parse_status(const char *v, size_t len, uint8_t *out)
{
	for (size_t i = 0; i < sizeof list_statuses / sizeof list_statuses[0]; i++)
		if (len == strlen(list_statuses[i]) && !memcmp(v, list_statuses[i], len)) {
			*out = (uint8_t)(i + 1);
			return true;
		}
	return false;
}

static bool parse_cursor(const char *v, size_t len, struct registry_state *st)
{
	const char *dot = memchr(v, '.', len);
	size_t digits = dot ? (size_t)(dot - v) : 0;
	if (!digits || digits > 18 || !registry_is_uuid(dot + 1, len - digits - 1))
		return false;
	int64_t us = 0;
	for (size_t i = 0; i < digits; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		us = us * 10 + (v[i] - '0');
	}
	st->has_cursor = true;
	st->cursor_us = us;
	memcpy(st->cursor_id, dot + 1, REGISTRY_UUID_LEN);
	st->cursor_id[REGISTRY_UUID_LEN] = '\0';
	return true;
}

/* One query parameter into the state; false: it is not valid. Unknown
 * parameters are ignored, as most APIs do. */
static bool list_param(struct registry_state *st, const char *key, size_t key_len,
		       const char *v, size_t len, const char **field)
{
	static const char *const keys[] = {"limit", "status", "cursor"};
	for (size_t k = 0; k < 3; k++) {
		if (key_len != strlen(keys[k]) || memcmp(key, keys[k], key_len))
			continue;
		*field = keys[k];
		return k == 0 ? parse_limit(v, len, &st->limit)
			      : k == 1 ? parse_status(v, len, &st->status) : parse_cursor(v, len, st);
	}
	return true;
}

static unsigned list_head(struct http_exchange *x, const char *buf, const struct http_request *req)
{
	if (!registry_head(x, buf, req, JWT_SCOPE_AGENTS_READ, 0))
		return 0;
	struct registry_state *st = registry_state(x);
	st->limit = LIST_LIMIT_DEFAULT;
	const char *query = http_span_ptr(buf, req->query);
	struct http_query_param p;
	size_t pos = 0;
	while (http_query_next(query, req->query.len, &pos, &p)) {
		char key[16], value[CURSOR_MAX + 1];
		ssize_t kn = http_query_decode(p.key, p.key_len, key, sizeof key);
		ssize_t vn = http_query_decode(p.value, p.value_len, value, sizeof value);
		const char *field = NULL;
		if (kn < 0)
			continue; /* no parameter of ours is that long */
		/* A value that does not decode (or is too long) is empty: invalid
		 * for each of ours. */
		if (!list_param(st, key, (size_t)kn, value, vn < 0 ? 0 : (size_t)vn, &field)) {
			char message[96];
			snprintf(message, sizeof message, "Query parameter \"%s\" is not valid.",
				 field);
			http_reply_identity_error(x, 400, API_IDENTITY_VALIDATION_ERROR, message,
						  field, NULL, NULL);
			return 0;
		}
	}
	return 0;
}

static void list_request(struct http_exchange *x)
{
	const struct registry_state *st = registry_state(x);
	struct db_request q = {.statement = DB_AGENT_LIST};
	char us[24], wanted[8];
	registry_param_org(x, &q);
	const char *status = st->status ? list_statuses[st->status - 1] : NULL;
	db_request_param(&q, status, status ? strlen(status) : 0);
	int n = snprintf(us, sizeof us, "%lld", (long long)st->cursor_us);
	db_request_param(&q, st->has_cursor ? us : NULL, (size_t)n);
	db_request_param(&q, st->has_cursor ? st->cursor_id : NULL, REGISTRY_UUID_LEN);
	n = snprintf(wanted, sizeof wanted, "%u", st->limit + 1u); /* one more: is there a next page? */
	db_request_param(&q, wanted, (size_t)n);
	registry_submit(x, &q, DB_CLASS_READ);
}

/* The cursor after row `row`: its created_at and id. */
static void write_cursor(struct json_writer *w, const struct db_result *res, uint32_t row)
{
	uint32_t us_len, id_len;
	const char *us = registry_value(res, row, AGENT_COLS, &us_len);
	const char *id = registry_value(res, row, AGENT_COL_ID, &id_len);
	char cursor[CURSOR_MAX + 1];
	int n = snprintf(cursor, sizeof cursor, "%.*s.%.*s", (int)us_len, us, (int)id_len, id);
	jsonw_string(w, cursor, (size_t)n < sizeof cursor ? (size_t)n : 0);
}

static void list_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = registry_result(x);
	if (!res)
		return;
	uint32_t limit = registry_state(x)->limit;
	uint32_t shown = res->rows < limit ? res->rows : limit;
	int64_t before_cut = 0;
	if (res->rows)
		db_value_i64(res, 0, AGENT_COLS + 1, &before_cut);
	struct json_writer w;
	registry_writer(x, &w);
	jsonw_start_object(&w);
	jsonw_key(&w, "data");
	jsonw_start_array(&w);
	for (uint32_t i = 0; i < shown; i++)
		if (!registry_write_agent(&w, res, i)) {
			registry_internal(x);
			return;
		}
	jsonw_end_array(&w);
	jsonw_key(&w, "nextCursor");
	/* Rows past those shown: the one more asked for, or those cut to
	 * keep the page within the result buffer. */
	if (shown && before_cut > (int64_t)shown)
		write_cursor(&w, res, shown - 1);
	else
		jsonw_null(&w);
	jsonw_end_object(&w);
	registry_reply_json(x, 200, NULL, &w);
}

const struct http_handler api_agents_list = {
	.on_head = list_head,
	.on_request = list_request,
	.on_resume = list_resume,
	.error_code = api_identity_error_code,
};

/* ---- GET /api/v1/agents/{agentId} ---- */

/* $1 the agent, $2 the organization: what GET and DELETE send. */
static void submit_by_id(struct http_exchange *x, enum db_statement statement, enum db_class cls)
{
	struct db_request q = {.statement = statement};
	registry_param_id(x, &q, 0);
	registry_param_org(x, &q);
	registry_submit(x, &q, cls);
}

static void get_request(struct http_exchange *x)
{
	submit_by_id(x, DB_AGENT_GET, DB_CLASS_READ);
}

static void get_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = registry_result(x);
	if (!res)
		return;
	if (!res->rows) {
		registry_agent_not_found(x);
		return;
	}
	reply_agent(x, 200, NULL, res);
}

const struct http_handler api_agents_get = {
	.on_head = registry_head_read_agent,
	.on_request = get_request,
	.on_resume = get_resume,
	.error_code = api_identity_error_code,
};

/* ---- PATCH /api/v1/agents/{agentId} ---- */

static void patch_request(struct http_exchange *x)
{
	struct registry_body b;
	struct registry_body_error e;
	int r = registry_body_parse_patch(x->body, x->body_len, &b, &e);
	if (r < 0) {
		/* "decommissioned" is not a status PATCH sets: it is final, and
		 * revokes the credentials too. */
		bool decommission = r == REGISTRY_BODY_NOT_ALLOWED && !strcmp(e.field, "status");
		body_refused(x, r, &e,
			     decommission ? "Decommission an agent with DELETE /api/v1/agents/{agentId}."
					  : NULL);
		return;
	}
	const char *status = registry_body_status_name(b.status);
	struct db_request q = {.statement = DB_AGENT_UPDATE};
	registry_param_id(x, &q, 0);
	registry_param_org(x, &q);
	param_fields(&q, &b);
	param_if(&q, &b, REGISTRY_FIELD_STATUS, status, status ? strlen(status) : 0);
	registry_submit(x, &q, DB_CLASS_WRITE);
}

static void patch_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = registry_result(x);
	if (!res)
		return;
	if (registry_unique_violation(res)) {
		email_in_use(x);
		return;
	}
	if (!res->rows) {
		registry_agent_not_found(x);
		return;
	}
	uint32_t id_len;
	const char *id = registry_value(res, 0, AGENT_COL_ID, &id_len);
	if (!id_len) { /* not changed: it was decommissioned */
		registry_conflict(x, "The agent is decommissioned; it cannot be changed.");
		return;
	}
	int64_t cutoff;
	/* Suspended now: its live tokens die here at once (the database's
	 * NOTIFY tells the other instances). */
	if (db_value_i64(res, 0, AGENT_COLS + 1, &cutoff) &&
	    !registry_revoke_here(x, REVOKED_AGENT, id, id_len, cutoff))
		return;
	reply_agent(x, 200, NULL, res);
}

const struct http_handler api_agents_patch = {
	.on_head = registry_head_write_agent,
	.on_request = patch_request,
	.on_resume = patch_resume,
	.error_code = api_identity_error_code,
	.body_max = REGISTRY_BODY_MAX,
};

/* ---- DELETE /api/v1/agents/{agentId} ---- */

static void delete_request(struct http_exchange *x)
{
	submit_by_id(x, DB_AGENT_DECOMMISSION, DB_CLASS_WRITE);
}

static void delete_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = registry_result(x);
	if (!res)
		return;
	if (res->rows != 1 || !db_value_is(res, 0, 1, "t")) {
		registry_agent_not_found(x);
		return;
	}
	int64_t cutoff;
	if (db_value_i64(res, 0, 0, &cutoff)) { /* decommissioned now, not before */
		/* Keyed as tokens name the agent (sub): the database's form,
		 * lower case, whatever case the path used. */
		char id[REGISTRY_UUID_LEN];
		const char *param = http_param(x, 0, NULL);
		for (size_t i = 0; i < REGISTRY_UUID_LEN; i++)
			id[i] = param[i] >= 'A' && param[i] <= 'F' ? (char)(param[i] + 32) : param[i];
		if (!registry_revoke_here(x, REVOKED_AGENT, id, sizeof id, cutoff))
			return;
		api_count(x, METRIC_AGENTS_DECOMMISSIONED);
	}
	http_reply(x, 204, NULL, NULL, NULL, 0);
}

const struct http_handler api_agents_delete = {
	.on_head = registry_head_write_agent,
	.on_request = delete_request,
	.on_resume = delete_resume,
	.error_code = api_identity_error_code,
};
