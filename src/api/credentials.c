/*
 * An agent's client credentials (openapi/identity.yaml): POST and GET
 * /api/v1/agents/{agentId}/credentials, DELETE .../{credentialId}. The
 * secret is made here, shown once in the 201 and never stored: the
 * database keeps its HMAC under --client-secret-key-file
 * (client_secret.h).
 */
#include "registry_int.h"

#include <stdio.h>
#include <string.h>

#include "ringside/api_errors.h"
#include "ringside/config.h"

/* The credential of `row` (CRED_COL_*), with its secret when given. */
static void write_credential(struct json_writer *w, const struct db_result *res, uint32_t row,
			     const char *secret)
{
	static const struct {
		const char *key;
		uint32_t col;
	} cols[] = {{"credentialId", CRED_COL_ID},
		    {"clientId", CRED_COL_CLIENT_ID},
		    {"status", CRED_COL_STATUS},
		    {"createdAt", CRED_COL_CREATED},
		    {"expiresAt", CRED_COL_EXPIRES}};
	jsonw_start_object(w);
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
		if (secret && cols[i].col == CRED_COL_STATUS) {
			jsonw_key(w, "clientSecret");
			jsonw_cstring(w, secret);
		}
		uint32_t len;
		const char *v = db_value(res, row, cols[i].col, &len);
		jsonw_key(w, cols[i].key);
		if (v)
			jsonw_string(w, v, len);
		else
			jsonw_null(w); /* expiresAt: valid until revoked */
	}
	jsonw_end_object(w);
}

/* ---- POST /api/v1/agents/{agentId}/credentials ---- */

static unsigned create_head(struct http_exchange *x, const char *buf,
			    const struct http_request *req)
{
	if (!registry_head(x, buf, req, JWT_SCOPE_AGENTS_WRITE, 1))
		return 0;
	if (!x->ctx->api->identity->client_key.len)
		http_reply_identity_error(x, 503, API_IDENTITY_SERVICE_UNAVAILABLE,
					  "Client credentials are not configured on this server.",
					  NULL, "Start Ringside with --client-secret-key-file.", NULL);
	return 0;
}

static void create_request(struct http_exchange *x)
{
	struct registry_state *st = registry_state(x);
	char hash[CLIENT_SECRET_HASH_HEX + 1], days[12];
	if (client_secret_new(st->client_id, st->secret) < 0 ||
	    client_secret_hash(&x->ctx->api->identity->client_key, st->secret, CLIENT_SECRET_LEN,
			       hash) < 0) {
		registry_internal(x);
		return;
	}
	int n = snprintf(days, sizeof days, "%u", x->ctx->cfg->credential_ttl_days);
	struct db_request q = {.statement = DB_CREDENTIAL_CREATE};
	registry_param_id(x, &q, 0);
	registry_param_org(x, &q);
	db_request_param(&q, st->client_id, CLIENT_ID_LEN);
	db_request_param(&q, hash, CLIENT_SECRET_HASH_HEX);
	db_request_param(&q, days, (size_t)n);
	registry_submit(x, &q, DB_CLASS_WRITE);
}

static void create_refused(struct http_exchange *x, const struct db_result *res)
{
	if (!res->rows) {
		registry_agent_not_found(x);
		return;
	}
	if (db_value_is(res, 0, CRED_COLS, "decommissioned")) {
		registry_conflict(x, "The agent is decommissioned; it gets no new credentials.");
		return;
	}
	char message[96];
	snprintf(message, sizeof message,
		 "The agent holds %u active credentials, the most it may; revoke one first.",
		 DB_CREDENTIALS_MAX);
	registry_conflict(x, message);
}

static void create_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	struct registry_state *st = registry_state(x);
	const struct db_result *res = registry_result(x);
	uint32_t id_len = 0;
	const char *id = res ? db_value(res, 0, CRED_COL_ID, &id_len) : NULL;
	if (res && !id)
		create_refused(x, res);
	if (id) {
		char location[160];
		size_t agent_len = 0;
		const char *agent = http_param(x, 0, &agent_len);
		snprintf(location, sizeof location,
			 "Location: /api/v1/agents/%.*s/credentials/%.*s\r\nCache-Control: no-store\r\n",
			 (int)agent_len, agent, (int)id_len, id);
		struct json_writer w;
		registry_writer(x, &w);
		write_credential(&w, res, 0, st->secret);
		registry_reply_json(x, 201, location, &w);
	}
	/* Shown once: nothing of it stays in the exchange. */
	explicit_bzero(st->secret, sizeof st->secret);
}

const struct http_handler api_credentials_create = {
	.on_head = create_head,
	.on_request = create_request,
	.on_resume = create_resume,
	.error_code = api_identity_error_code,
};

/* ---- GET /api/v1/agents/{agentId}/credentials ---- */

static void list_request(struct http_exchange *x)
{
	struct db_request q = {.statement = DB_CREDENTIAL_LIST};
	registry_param_id(x, &q, 0);
	registry_param_org(x, &q);
	registry_submit(x, &q, DB_CLASS_READ);
}

static void list_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = registry_result(x);
	if (!res)
		return;
	if (!res->rows) {
		registry_agent_not_found(x);
		return;
	}
	struct json_writer w;
	registry_writer(x, &w);
	jsonw_start_object(&w);
	jsonw_key(&w, "data");
	jsonw_start_array(&w);
	for (uint32_t i = 0; i < res->rows; i++) {
		uint32_t len;
		if (db_value(res, i, CRED_COL_ID, &len)) /* else: the agent has none */
			write_credential(&w, res, i, NULL);
	}
	jsonw_end_array(&w);
	jsonw_end_object(&w);
	registry_reply_json(x, 200, NULL, &w);
}

const struct http_handler api_credentials_list = {
	.on_head = registry_head_read_agent,
	.on_request = list_request,
	.on_resume = list_resume,
	.error_code = api_identity_error_code,
};

/* ---- DELETE /api/v1/agents/{agentId}/credentials/{credentialId} ---- */

static void revoke_request(struct http_exchange *x)
{
	struct db_request q = {.statement = DB_CREDENTIAL_REVOKE};
	registry_param_id(x, &q, 0);
	registry_param_org(x, &q);
	registry_param_id(x, &q, 1);
	registry_submit(x, &q, DB_CLASS_WRITE);
}

static void revoke_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	const struct db_result *res = registry_result(x);
	if (!res)
		return;
	if (res->rows != 1 || !db_value_is(res, 0, 2, "t")) {
		http_reply_identity_error(x, 0, API_IDENTITY_CREDENTIAL_NOT_FOUND, NULL, NULL,
					  NULL, NULL);
		return;
	}
	uint32_t client_len;
	const char *client = db_value(res, 0, 0, &client_len);
	int64_t revoked_at;
	/* Revoked now (not before): the tokens it got die here at once. */
	if (client && db_value_i64(res, 0, 1, &revoked_at) &&
	    !registry_revoke_here(x, REVOKED_CLIENT, client, client_len, revoked_at))
		return;
	http_reply(x, 204, NULL, NULL, NULL, 0);
}

const struct http_handler api_credentials_revoke = {
	.on_head = registry_head_write_credential,
	.on_request = revoke_request,
	.on_resume = revoke_resume,
	.error_code = api_identity_error_code,
};
