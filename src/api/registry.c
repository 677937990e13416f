/* What the registry and credential routes share (registry_int.h). */
#include "registry_int.h"

#include <stdatomic.h>
#include <string.h>

#include "ringside/api_errors.h"
#include "ringside/config.h"

/* The park outlives the statement's timeout by this much, so the
 * database thread's own answer (a timeout, a lost connection) comes
 * first, and the park's 504 only if that thread is stuck (ready.c). */
#define REGISTRY_SLACK_MS 1000u

bool registry_is_uuid(const char *s, size_t len)
{
	if (len != REGISTRY_UUID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = s[i];
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		if (dash ? c != '-' : !hex)
			return false;
	}
	return true;
}

void registry_agent_not_found(struct http_exchange *x)
{
	http_reply_identity_error(x, 0, API_IDENTITY_AGENT_NOT_FOUND, NULL, NULL, NULL, NULL);
}

void registry_conflict(struct http_exchange *x, const char *message)
{
	http_reply_identity_error(x, 0, API_IDENTITY_CONFLICT, message, NULL, NULL, NULL);
}

void registry_internal(struct http_exchange *x)
{
	http_reply_identity_error(x, 0, API_IDENTITY_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, NULL);
}

static void unavailable(struct http_exchange *x, const char *message)
{
	http_reply_identity_error(x, 503, API_IDENTITY_SERVICE_UNAVAILABLE, message, NULL, NULL,
				  "Retry-After: 1\r\n");
}

bool registry_head(struct http_exchange *x, const char *buf, const struct http_request *req,
		   uint32_t scope, unsigned uuid_params)
{
	const struct jwt_claims *c = api_authenticate_identity(x, buf, req, scope);
	if (!c)
		return false;
	/* Both fit: a claim is shorter than JWT_ID_CAP or the token is invalid. */
	memcpy(registry_state(x)->org, c->organization_id, sizeof c->organization_id);
	for (unsigned i = 0; i < uuid_params; i++) {
		size_t len = 0;
		const char *id = http_param(x, i, &len);
		if (!id || !registry_is_uuid(id, len)) {
			http_reply_identity_error(x, 0, i ? API_IDENTITY_CREDENTIAL_NOT_FOUND
							  : API_IDENTITY_AGENT_NOT_FOUND,
						  NULL, NULL, NULL, NULL);
			return false;
		}
	}
	if (!x->ctx->api->db) {
		http_reply_identity_error(x, 503, API_IDENTITY_SERVICE_UNAVAILABLE,
					  "No database is configured.", NULL,
					  "Start Ringside with --database-url.", NULL);
		return false;
	}
	return true;
}

unsigned registry_head_write(struct http_exchange *x, const char *buf,
			     const struct http_request *req)
{
	registry_head(x, buf, req, JWT_SCOPE_AGENTS_WRITE, 0);
	return 0;
}

unsigned registry_head_read_agent(struct http_exchange *x, const char *buf,
				  const struct http_request *req)
{
	registry_head(x, buf, req, JWT_SCOPE_AGENTS_READ, 1);
	return 0;
}

unsigned registry_head_write_agent(struct http_exchange *x, const char *buf,
				   const struct http_request *req)
{
	registry_head(x, buf, req, JWT_SCOPE_AGENTS_WRITE, 1);
	return 0;
}

unsigned registry_head_write_credential(struct http_exchange *x, const char *buf,
					const struct http_request *req)
{
	registry_head(x, buf, req, JWT_SCOPE_AGENTS_WRITE, 2);
	return 0;
}

void registry_param_id(struct http_exchange *x, struct db_request *q, unsigned i)
{
	size_t len = 0;
	const char *id = http_param(x, i, &len);
	db_request_param(q, id, len); /* a checked UUID: it fits */
}

void registry_param_org(struct http_exchange *x, struct db_request *q)
{
	const char *org = registry_state(x)->org;
	db_request_param(q, org, strlen(org));
}

void registry_submit(struct http_exchange *x, struct db_request *q, enum db_class cls)
{
	struct api *a = x->ctx->api;
	char *xbuf = http_exchange_buffer(x);
	if (!xbuf) {
		unavailable(x, "The server is at capacity. Retry.");
		return;
	}
	struct db_result *res = (struct db_result *)(void *)xbuf;
	memset(res, 0, sizeof *res);
	res->buf = xbuf + sizeof *res;
	res->cap = HTTP_EXCHANGE_BUF_SIZE - sizeof *res;
	q->result = res;
	uint32_t timeout = cls == DB_CLASS_READ ? a->cfg->db_timeout_read_ms
						: a->cfg->db_timeout_write_ms;
	q->token = http_park(x, timeout + REGISTRY_SLACK_MS);
	if (!q->token || db_submit(a->db, x->ctx->worker_id, q) < 0) {
		http_unpark(x);
		unavailable(x, "Too many database requests are waiting. Retry.");
	}
}

bool registry_unique_violation(const struct db_result *r)
{
	return r->status == DB_ERROR && !strcmp(r->sqlstate, "23505");
}

const struct db_result *registry_result(struct http_exchange *x)
{
	const struct db_result *res = (const struct db_result *)(void *)http_exchange_buffer(x);
	/* `done` (release on the database thread, acquire here) orders the
	 * thread's writes of the result before these reads. */
	if (!res || !atomic_load_explicit(&res->done, memory_order_acquire)) {
		registry_internal(x);
		return NULL;
	}
	switch (res->status) {
	case DB_OK:
		return res;
	case DB_UNAVAILABLE:
		unavailable(x, "The database is not reachable. Retry.");
		return NULL;
	case DB_TIMEOUT:
		http_reply_identity_error(x, 504, API_IDENTITY_GATEWAY_TIMEOUT, NULL, NULL, NULL,
					  NULL);
		return NULL;
	default:
		if (registry_unique_violation(res))
			return res;
		registry_internal(x);
		return NULL;
	}
}

const char *registry_value(const struct db_result *r, uint32_t row, uint32_t col, uint32_t *len)
{
	const char *v = db_value(r, row, col, len);
	if (!v)
		*len = 0;
	return v ? v : "";
}

/* A capability as registry_body admits it: [a-z0-9_-] and ':'. */
static bool capability_bytes(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == ':'))
			return false;
	}
	return len > 0;
}

/* array_to_json of the stored capabilities, ["res:act","res:act"],
 * written again item by item through the writer: what is sent is always
 * an array of strings, and a stored value that is not one of ours (an
 * escape, a nested value) is refused rather than passed on. */
static bool write_capabilities(struct json_writer *w, const char *s, uint32_t len)
{
	if (len < 2 || s[0] != '[' || s[len - 1] != ']')
		return false;
	jsonw_start_array(w);
	for (uint32_t i = 1; i + 1 < len;) {
		const char *close = s[i] == '"' ? memchr(s + i + 1, '"', len - 1 - (i + 1)) : NULL;
		if (!close || !capability_bytes(s + i + 1, (size_t)(close - s) - i - 1))
			return false;
		jsonw_string(w, s + i + 1, (size_t)(close - s) - i - 1);
		i = (uint32_t)(close - s) + 1;
		if (i + 1 < len && s[i++] != ',')
			return false;
	}
	jsonw_end_array(w);
	return true;
}

static void write_text(struct json_writer *w, const char *key, const struct db_result *r,
		       uint32_t row, uint32_t col)
{
	uint32_t len;
	const char *v = registry_value(r, row, col, &len);
	jsonw_key(w, key);
	jsonw_string(w, v, len);
}

bool registry_write_agent(struct json_writer *w, const struct db_result *r, uint32_t row)
{
	uint32_t caps_len;
	const char *caps = registry_value(r, row, AGENT_COL_CAPABILITIES, &caps_len);
	jsonw_start_object(w);
	write_text(w, "agentId", r, row, AGENT_COL_ID);
	write_text(w, "organizationId", r, row, AGENT_COL_ORG);
	write_text(w, "email", r, row, AGENT_COL_EMAIL);
	write_text(w, "agentType", r, row, AGENT_COL_TYPE);
	write_text(w, "version", r, row, AGENT_COL_VERSION);
	jsonw_key(w, "capabilities");
	if (!write_capabilities(w, caps, caps_len))
		return false;
	write_text(w, "owner", r, row, AGENT_COL_OWNER);
	write_text(w, "deploymentEnv", r, row, AGENT_COL_ENV);
	write_text(w, "status", r, row, AGENT_COL_STATUS);
	write_text(w, "createdAt", r, row, AGENT_COL_CREATED);
	write_text(w, "updatedAt", r, row, AGENT_COL_UPDATED);
	jsonw_end_object(w);
	return true;
}

void registry_writer(struct http_exchange *x, struct json_writer *w)
{
	size_t cap;
	char *out = http_scratch(x, &cap);
	jsonw_init(w, out, cap);
}

void registry_reply_json(struct http_exchange *x, unsigned status, const char *headers,
			 const struct json_writer *w)
{
	size_t n = jsonw_done(w);
	if (!n) {
		registry_internal(x);
		return;
	}
	http_reply_any(x, status, "application/json", headers, w->buf, n);
}

bool registry_revoke_here(struct http_exchange *x, enum revocation_kind kind, const char *id,
			  size_t len, int64_t cutoff)
{
	if (revocations_add(x->ctx->api->identity->revocations, kind, id, len, cutoff) < 0) {
		unavailable(x, "The revocation table is full; the change is stored and reaches "
			       "this server at its next re-read.");
		return false;
	}
	return true;
}
