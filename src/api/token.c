/*
 * The OAuth 2.0 endpoints of the identity service (openapi/identity.yaml):
 *
 *   POST /api/v1/token             client credentials (RFC 6749 4.4)
 *   POST /api/v1/token/introspect  RFC 7662
 *   POST /api/v1/token/revoke      RFC 7009
 *
 * Each takes a form body the server collects whole (body_max). A client
 * authenticates with HTTP Basic (2.3.1) or client_id and client_secret in
 * the body, never both; introspection and revocation also take a Bearer
 * token with tokens:read. A client is checked against its database row
 * (one read, the exchange parked meanwhile): the secret's HMAC compared
 * in constant time, the credential active and unexpired, its agent
 * active. Tokens are JWTs, signed here on the worker: nothing is stored
 * per token; a revocation stores the jti until the token's exp.
 *
 * An exchange keeps its state in its exchange buffer, after the body:
 * struct oauth_exchange, then the rows the database thread writes.
 */
#include "api_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ringside/config.h"
#include "ringside/db.h"
#include "ringside/http_basic_auth.h"
#include "ringside/http_form.h"
#include "ringside/json_writer.h"
#include "ringside/log.h"

/* A form body: a token (JWT_TOKEN_LIMIT at most) and a few short values. */
#define OAUTH_BODY_MAX (16u * 1024u)
/* The park outlives the statement timeout, so the database thread's own
 * answer (a timeout, a lost connection) comes first (as for /ready). */
#define DB_SLACK_MS 1000u
#define CLIENT_ID_CAP 64u
#define CLIENT_SECRET_CAP 128u

#define NO_STORE "Cache-Control: no-store\r\nPragma: no-cache\r\n"
#define BASIC_CHALLENGE "WWW-Authenticate: Basic realm=\"ringside\"\r\n"
#define BEARER_CHALLENGE "WWW-Authenticate: Bearer realm=\"ringside\""

enum oauth_endpoint { ENDPOINT_TOKEN, ENDPOINT_INTROSPECT, ENDPOINT_REVOKE };

enum oauth_stage {
	STAGE_NONE,
	STAGE_CLIENT_LOOKUP, /* waiting for the client's row */
	STAGE_REVOKE_WRITE,  /* waiting for the revocation's commit */
};

struct oauth_exchange {
	struct db_result res;
	uint8_t endpoint;      /* enum oauth_endpoint */
	uint8_t stage;         /* enum oauth_stage */
	bool basic;            /* the client authenticated with Basic */
	bool bearer;           /* the caller authenticated with a bearer token */
	bool subject_valid;    /* the token asked about verified (introspect, revoke) */
	uint32_t scopes;       /* token: those asked for */
	char client_id[CLIENT_ID_CAP];
	char client_secret[CLIENT_SECRET_CAP];
	size_t client_id_len, client_secret_len;
	char caller_org[JWT_ID_CAP]; /* introspect, revoke: the caller's organization */
	struct jwt_claims subject;   /* the token asked about */
	_Alignas(8) char rows[];     /* the database thread's */
};

#define STATE_OFFSET OAUTH_BODY_MAX
_Static_assert(STATE_OFFSET + sizeof(struct oauth_exchange) + 4096 <= HTTP_EXCHANGE_BUF_SIZE,
	       "the exchange buffer holds the body, the state and a client's row");

static struct oauth_exchange *state_of(struct http_exchange *x)
{
	char *buf = http_exchange_buffer(x);
	return buf ? (struct oauth_exchange *)(void *)(buf + STATE_OFFSET) : NULL;
}

static struct identity_api *identity_of(struct http_exchange *x)
{
	return x->ctx->api->identity;
}

static void oauth_error(struct http_exchange *x, unsigned status, enum api_oauth_error e,
			const char *description, const char *headers)
{
	http_reply_oauth_error(x, status, e, description, headers);
}

/* invalid_client: 401, with the challenge of Basic when the client used
 * it (RFC 6749 5.2), and always when it sent nothing. */
static void invalid_client(struct http_exchange *x, const struct oauth_exchange *st,
			   const char *description)
{
	oauth_error(x, 401, API_OAUTH_INVALID_CLIENT, description,
		    st->basic || !st->client_id_len ? BASIC_CHALLENGE : NULL);
}

static void unavailable(struct http_exchange *x, const char *description)
{
	oauth_error(x, 503, API_OAUTH_TEMPORARILY_UNAVAILABLE, description, "Retry-After: 1\r\n");
}

/* ---- At the head: what the server needs, the media type, Authorization ---- */

/* The pieces an endpoint needs are configured; else answers 503. */
static bool service_ready(struct http_exchange *x, enum oauth_endpoint e)
{
	const struct jwt_keys *keys = agent_auth_keys(x->ctx->api);
	if (!keys || (e == ENDPOINT_TOKEN && !keys->set[0].sign_tpl)) {
		unavailable(x, "No token signing key is configured: start Ringside with "
			       "--jwt-private-key-file.");
		return false;
	}
	if (!x->ctx->api->db) {
		unavailable(x, "No database is configured: start Ringside with --database-url.");
		return false;
	}
	return true;
}

/* Basic credentials into st; false after answering. */
static bool take_basic(struct http_exchange *x, struct oauth_exchange *st, const char *v,
		       size_t len)
{
	struct http_basic_credentials c = {st->client_id, sizeof st->client_id, 0,
					   st->client_secret, sizeof st->client_secret, 0};
	int r = http_basic_parse(v, len, &c);
	st->basic = true;
	if (r == HTTP_BASIC_TOO_LONG) {
		/* No client has an id or a secret that long. */
		invalid_client(x, st, "Client authentication failed.");
		return false;
	}
	if (r < 0) {
		oauth_error(x, 400, API_OAUTH_INVALID_REQUEST, http_basic_strerror(r), NULL);
		return false;
	}
	st->client_id_len = c.id_len;
	st->client_secret_len = c.secret_len;
	return true;
}

/* A bearer caller (introspect, revoke): verified, with tokens:read; its
 * organization into st. false after answering (RFC 6750 3.1). */
static bool take_bearer(struct http_exchange *x, struct oauth_exchange *st, const char *token,
			size_t len)
{
	while (len && *token == ' ')
		token++, len--;
	int err;
	const struct jwt_claims *c = agent_auth_bearer(x, token, len, &err);
	if (!c) {
		char description[96];
		snprintf(description, sizeof description, "The bearer token is invalid: %s.",
			 err == AGENT_AUTH_REVOKED ? "token revoked" : jwt_error_reason(err));
		oauth_error(x, 401, API_OAUTH_INVALID_TOKEN, description,
			    BEARER_CHALLENGE ", error=\"invalid_token\"\r\n");
		return false;
	}
	if (!(c->scopes & JWT_SCOPE_TOKENS_READ)) {
		oauth_error(x, 403, API_OAUTH_INSUFFICIENT_SCOPE,
			    "The bearer token lacks the scope tokens:read.",
			    BEARER_CHALLENGE ", error=\"insufficient_scope\", scope=\"tokens:read\"\r\n");
		return false;
	}
	st->bearer = true;
	memcpy(st->caller_org, c->organization_id, sizeof st->caller_org);
	if (!api_count_call(x, c)) {
		unavailable(x, API_COUNT_UNAVAILABLE);
		return false;
	}
	return true;
}

static unsigned oauth_head(struct http_exchange *x, const char *buf,
			   const struct http_request *req, enum oauth_endpoint e)
{
	struct oauth_exchange *st = state_of(x);
	if (!st) {
		unavailable(x, "No buffer is free for this request. Retry.");
		return 0;
	}
	memset(st, 0, sizeof *st);
	st->endpoint = (uint8_t)e;
	if (!service_ready(x, e))
		return 0;
	struct http_span ct = req->hdr[HTTP_HDR_CONTENT_TYPE];
	if (!http_form_content_type_ok(http_span_ptr(buf, ct), ct.len)) {
		oauth_error(x, 400, API_OAUTH_INVALID_REQUEST,
			    "The body must be application/x-www-form-urlencoded.", NULL);
		return 0;
	}
	struct http_span h = req->hdr[HTTP_HDR_AUTHORIZATION];
	const char *v = http_span_ptr(buf, h);
	if (!h.len)
		return 0;
	if (e != ENDPOINT_TOKEN && h.len >= 7 && !strncasecmp(v, "Bearer ", 7)) {
		take_bearer(x, st, v + 7, h.len - 7);
		return 0;
	}
	take_basic(x, st, v, h.len);
	return 0;
}

/* ---- The body ---- */

enum form_field { F_CLIENT_ID, F_CLIENT_SECRET, F_GRANT_TYPE, F_SCOPE, F_TOKEN, F_HINT, F_COUNT };

struct form {
	struct http_form_field f[F_COUNT];
	char client_id[CLIENT_ID_CAP], client_secret[CLIENT_SECRET_CAP];
	char grant_type[64], scope[256], hint[64];
	char token[JWT_TOKEN_LIMIT + 1];
};

/* Parses the body; false after answering invalid_request. */
static bool parse_form(struct http_exchange *x, struct form *fm)
{
	fm->f[F_CLIENT_ID] = (struct http_form_field){"client_id", fm->client_id,
						      sizeof fm->client_id, 0, false};
	fm->f[F_CLIENT_SECRET] = (struct http_form_field){"client_secret", fm->client_secret,
							  sizeof fm->client_secret, 0, false};
	fm->f[F_GRANT_TYPE] = (struct http_form_field){"grant_type", fm->grant_type,
						       sizeof fm->grant_type, 0, false};
	fm->f[F_SCOPE] = (struct http_form_field){"scope", fm->scope, sizeof fm->scope, 0, false};
	fm->f[F_TOKEN] = (struct http_form_field){"token", fm->token, sizeof fm->token, 0, false};
	fm->f[F_HINT] = (struct http_form_field){"token_type_hint", fm->hint, sizeof fm->hint, 0,
						 false};
	int field = -1;
	int r = http_form_parse(x->body, x->body_len, fm->f, F_COUNT, &field);
	if (r == HTTP_FORM_OK)
		return true;
	char description[128];
	if (field >= 0)
		snprintf(description, sizeof description, "%s %s.", fm->f[field].name,
			 http_form_strerror(r));
	else
		snprintf(description, sizeof description, "A parameter %s.", http_form_strerror(r));
	oauth_error(x, 400, API_OAUTH_INVALID_REQUEST, description, NULL);
	return false;
}

/* The client's credentials from the body, if it sent them there: one
 * method only (RFC 6749 2.3: "MUST NOT use more than one"). false after
 * answering. */
static bool take_body_credentials(struct http_exchange *x, struct oauth_exchange *st,
				  const struct form *fm)
{
	bool id = fm->f[F_CLIENT_ID].present, secret = fm->f[F_CLIENT_SECRET].present;
	if (!id && !secret)
		return true;
	if (st->basic || st->bearer) {
		oauth_error(x, 400, API_OAUTH_INVALID_REQUEST,
			    "Use one client authentication method: the Authorization header or "
			    "client_id and client_secret in the body, not both.",
			    NULL);
		return false;
	}
	if (!id || !secret) {
		invalid_client(x, st, "Send both client_id and client_secret.");
		return false;
	}
	memcpy(st->client_id, fm->client_id, fm->f[F_CLIENT_ID].len + 1);
	memcpy(st->client_secret, fm->client_secret, fm->f[F_CLIENT_SECRET].len + 1);
	st->client_id_len = fm->f[F_CLIENT_ID].len;
	st->client_secret_len = fm->f[F_CLIENT_SECRET].len;
	return true;
}

/* RFC 6749 3.3: space-separated scope tokens, each one we know; 0 for
 * none, -1 for a malformed or unknown one. */
static int64_t parse_scope(const char *s, size_t len)
{
	static const char *const names[] = {"agents:read", "agents:write", "tokens:read",
					    "metrics:write"};
	uint32_t bits = 0;
	for (size_t i = 0; i <= len;) {
		size_t end = i;
		while (end < len && s[end] != ' ')
			end++;
		if (end == i)
			return -1; /* an empty token: doubled, leading or trailing space */
		uint32_t bit = 0;
		for (unsigned k = 0; k < sizeof names / sizeof names[0]; k++)
			if (strlen(names[k]) == end - i && !memcmp(names[k], s + i, end - i))
				bit = 1u << k;
		if (!bit)
			return -1;
		bits |= bit;
		i = end + 1;
	}
	return bits;
}

/* ---- The database ---- */

/* Parks the exchange on one statement; false after answering 503. */
static bool submit(struct http_exchange *x, struct oauth_exchange *st, struct db_request *q,
		   enum oauth_stage stage, uint32_t timeout_ms)
{
	struct api *a = x->ctx->api;
	memset(&st->res, 0, sizeof st->res);
	st->res.buf = st->rows;
	st->res.cap = (uint32_t)(HTTP_EXCHANGE_BUF_SIZE - STATE_OFFSET - sizeof *st);
	st->stage = (uint8_t)stage;
	q->result = &st->res;
	q->token = http_park(x, timeout_ms + DB_SLACK_MS);
	if (!q->token || db_submit(a->db, x->ctx->worker_id, q) < 0) {
		http_unpark(x);
		unavailable(x, "Too many database requests are waiting. Retry.");
		return false;
	}
	return true;
}

static bool lookup_client(struct http_exchange *x, struct oauth_exchange *st)
{
	if (!identity_of(x)->client_key.len) {
		unavailable(x, "Client credentials are not configured: start Ringside with "
			       "--client-secret-key-file.");
		return false;
	}
	struct db_request q = {.statement = DB_CREDENTIAL_LOOKUP};
	if (!db_request_param(&q, st->client_id, st->client_id_len)) {
		invalid_client(x, st, "Client authentication failed.");
		return false;
	}
	return submit(x, st, &q, STAGE_CLIENT_LOOKUP, x->ctx->cfg->db_timeout_read_ms);
}

/* The database thread's answer is there; false after answering 503. */
static bool db_answered(struct http_exchange *x, const struct oauth_exchange *st)
{
	if (!atomic_load_explicit(&st->res.done, memory_order_acquire) ||
	    st->res.status != DB_OK) {
		unavailable(x, "The database is not reachable. Retry.");
		return false;
	}
	return true;
}

/* Copies value (0, col) into out (cap bytes, NUL-terminated); false if
 * it is NULL or does not fit. */
static bool copy_value(const struct db_result *r, uint32_t col, char *out, size_t cap)
{
	uint32_t len;
	const char *v = db_value(r, 0, col, &len);
	if (!v || len >= cap)
		return false;
	memcpy(out, v, len);
	out[len] = '\0';
	return true;
}

/* The client's row against what it sent; false after answering
 * invalid_client. Every failure says the same to the client but the
 * log says which. */
static bool client_authenticated(struct http_exchange *x, struct oauth_exchange *st)
{
	const struct db_result *r = &st->res;
	const struct client_secret_key *key = &identity_of(x)->client_key;
	uint32_t len = 0;
	const char *hash = r->rows ? db_value(r, 0, LOOKUP_COL_SECRET_HASH, &len) : NULL;
	/* An unknown client costs the same HMAC as a known one. */
	static const char unknown[CLIENT_SECRET_HASH_HEX] = {0};
	bool match = client_secret_matches(key, st->client_secret, st->client_secret_len,
					   hash ? hash : unknown, hash ? len : sizeof unknown);
	const char *why = !hash				       ? "unknown client"
			  : !match			       ? "wrong secret"
			  : !db_value_is(r, 0, LOOKUP_COL_STATUS, "active") ? "credential revoked"
			  : db_value_is(r, 0, LOOKUP_COL_EXPIRED, "t")      ? "credential expired"
			  : !db_value_is(r, 0, LOOKUP_COL_AGENT_STATUS, "active") ? "agent not active"
									   : NULL;
	explicit_bzero(st->client_secret, sizeof st->client_secret);
	if (why) {
		log_info("client authentication failed", "client_id=\"%.*s\" reason=\"%s\"",
			 (int)st->client_id_len, st->client_id, why);
		invalid_client(x, st, !strcmp(why, "agent not active")
					      ? "The client's agent is suspended or decommissioned."
					      : "Client authentication failed.");
		return false;
	}
	return true;
}

/* ---- POST /api/v1/token ---- */

static unsigned token_head(struct http_exchange *x, const char *buf,
			   const struct http_request *req)
{
	return oauth_head(x, buf, req, ENDPOINT_TOKEN);
}

static void token_request(struct http_exchange *x)
{
	struct oauth_exchange *st = state_of(x);
	static _Thread_local struct form fm;
	if (!parse_form(x, &fm) || !take_body_credentials(x, st, &fm))
		return;
	if (!st->client_id_len) {
		invalid_client(x, st, "Authenticate the client with HTTP Basic or with "
				      "client_id and client_secret in the body.");
		return;
	}
	if (!fm.f[F_GRANT_TYPE].present) {
		oauth_error(x, 400, API_OAUTH_INVALID_REQUEST, "grant_type is required.", NULL);
		return;
	}
	if (strcmp(fm.grant_type, "client_credentials")) {
		oauth_error(x, 400, API_OAUTH_UNSUPPORTED_GRANT_TYPE, NULL, NULL);
		return;
	}
	int64_t scopes = fm.f[F_SCOPE].present ? parse_scope(fm.scope, fm.f[F_SCOPE].len)
					       : JWT_SCOPE_ALL;
	if (scopes < 0) {
		oauth_error(x, 400, API_OAUTH_INVALID_SCOPE,
			    "scope must be space-separated values among agents:read agents:write "
			    "tokens:read metrics:write.",
			    NULL);
		return;
	}
	st->scopes = (uint32_t)scopes;
	uint32_t wait_ms = rate_limit_take(&identity_of(x)->token_rate, "", 0, st->client_id,
					   st->client_id_len, (uint64_t)api_now_ms());
	if (wait_ms) {
		char headers[96];
		snprintf(headers, sizeof headers, NO_STORE "Retry-After: %u\r\n",
			 (wait_ms + 999) / 1000);
		oauth_error(x, 429, API_OAUTH_TEMPORARILY_UNAVAILABLE,
			    "Too many token requests for this client. Retry later.", headers);
		return;
	}
	lookup_client(x, st);
}

/* Signs the client's token and answers 200 (RFC 6749 5.1). */
static void issue(struct http_exchange *x, struct oauth_exchange *st)
{
	const struct db_result *r = &st->res;
	struct jwt_claims c = {.scopes = st->scopes};
	if (!copy_value(r, LOOKUP_COL_AGENT_ID, c.sub, sizeof c.sub) ||
	    !copy_value(r, LOOKUP_COL_ORG, c.organization_id, sizeof c.organization_id) ||
	    jwt_new_jti(c.jti) < 0) {
		oauth_error(x, 500, API_OAUTH_SERVER_ERROR, NULL, NULL);
		return;
	}
	memcpy(c.client_id, st->client_id, st->client_id_len + 1);
	/* Never before the agent's cut-off (a suspension in this same
	 * second): such a token would be dead at birth. jwt_verify allows
	 * an iat that far ahead (the leeway). */
	int64_t now = api_now_ms() / 1000, cutoff = 0;
	db_value_i64(r, 0, LOOKUP_COL_VALID_AFTER, &cutoff);
	c.iat = now > cutoff ? now : cutoff;
	int64_t ttl = x->ctx->cfg->token_ttl_ms / 1000;
	c.exp = c.iat + ttl;

	size_t cap;
	char *scratch = http_scratch(x, &cap);
	int n = jwt_sign(agent_auth_keys(x->ctx->api), &c, scratch, JWT_TOKEN_LIMIT + 1);
	if (n < 0) {
		log_error("token signing failed", "reason=\"%s\"", jwt_error_reason(n));
		oauth_error(x, 500, API_OAUTH_SERVER_ERROR, NULL, NULL);
		return;
	}
	char scope[96];
	jwt_scope_format(c.scopes, scope, sizeof scope);
	struct json_writer w;
	jsonw_init(&w, scratch + n + 1, cap - (size_t)n - 1);
	jsonw_start_object(&w);
	jsonw_key(&w, "access_token");
	jsonw_string(&w, scratch, (size_t)n);
	jsonw_key(&w, "token_type");
	jsonw_cstring(&w, "Bearer");
	jsonw_key(&w, "expires_in");
	jsonw_i64(&w, c.exp - now);
	jsonw_key(&w, "scope");
	jsonw_cstring(&w, scope);
	jsonw_end_object(&w);
	if (!api_count_token(x, c.organization_id, c.sub)) {
		/* Signed, never sent: a token nobody holds. */
		unavailable(x, API_COUNT_UNAVAILABLE);
		return;
	}
	http_reply(x, 200, "application/json", NO_STORE, w.buf, jsonw_done(&w));
	api_count(x, METRIC_TOKENS_ISSUED);
}

/* ---- Introspection and revocation: the caller, then the token ---- */

static unsigned introspect_head(struct http_exchange *x, const char *buf,
				const struct http_request *req)
{
	return oauth_head(x, buf, req, ENDPOINT_INTROSPECT);
}

static unsigned revoke_head(struct http_exchange *x, const char *buf,
			    const struct http_request *req)
{
	return oauth_head(x, buf, req, ENDPOINT_REVOKE);
}

static void answer_subject(struct http_exchange *x, struct oauth_exchange *st);

/* Both: the form, the token asked about (verified now, while the scratch
 * is free), then the caller's client row if it authenticated as a
 * client. */
static void subject_request(struct http_exchange *x)
{
	struct oauth_exchange *st = state_of(x);
	static _Thread_local struct form fm;
	if (!parse_form(x, &fm) || !take_body_credentials(x, st, &fm))
		return;
	if (!st->bearer && !st->client_id_len) {
		oauth_error(x, 401, API_OAUTH_INVALID_CLIENT,
			    "Authenticate with a bearer token holding tokens:read, or as a client.",
			    BASIC_CHALLENGE BEARER_CHALLENGE "\r\n");
		return;
	}
	if (!fm.f[F_TOKEN].present) {
		oauth_error(x, 400, API_OAUTH_INVALID_REQUEST, "token is required.", NULL);
		return;
	}
	/* token_type_hint is a hint (RFC 7662 2.1, RFC 7009 2.1): we hold
	 * one type of token and look it up whatever the hint says. */
	int err;
	const struct jwt_claims *c = agent_auth_bearer(x, fm.token, fm.f[F_TOKEN].len, &err);
	st->subject_valid = c != NULL;
	if (c)
		st->subject = *c;
	if (st->bearer)
		answer_subject(x, st);
	else
		lookup_client(x, st);
}

/* RFC 7662 2.2: the active token's claims, or exactly {"active":false}. */
static void introspection(struct http_exchange *x, const struct oauth_exchange *st)
{
	api_count(x, METRIC_TOKENS_INTROSPECTED);
	const struct jwt_claims *c = &st->subject;
	int64_t now = api_now_ms() / 1000;
	/* Checked again here: a revocation may have come while it waited. */
	bool active = st->subject_valid && !strcmp(c->organization_id, st->caller_org) &&
		      !revocations_token_dead(identity_of(x)->revocations, c, now);
	if (!active) {
		static const char inactive[] = "{\"active\":false}";
		http_reply(x, 200, "application/json", NO_STORE, inactive, sizeof inactive - 1);
		return;
	}
	const struct jwt_keys *keys = agent_auth_keys(x->ctx->api);
	char scope[96], body[1024];
	jwt_scope_format(c->scopes, scope, sizeof scope);
	struct json_writer w;
	jsonw_init(&w, body, sizeof body);
	jsonw_start_object(&w);
	jsonw_key(&w, "active");
	jsonw_bool(&w, true);
	jsonw_key(&w, "scope");
	jsonw_cstring(&w, scope);
	if (c->client_id[0]) {
		jsonw_key(&w, "client_id");
		jsonw_cstring(&w, c->client_id);
	}
	jsonw_key(&w, "sub");
	jsonw_cstring(&w, c->sub);
	jsonw_key(&w, "organization_id");
	jsonw_cstring(&w, c->organization_id);
	jsonw_key(&w, "exp");
	jsonw_i64(&w, c->exp);
	jsonw_key(&w, "iat");
	jsonw_i64(&w, c->iat);
	jsonw_key(&w, "jti");
	jsonw_cstring(&w, c->jti);
	jsonw_key(&w, "iss");
	jsonw_cstring(&w, keys->issuer);
	jsonw_key(&w, "aud");
	jsonw_cstring(&w, keys->audience);
	jsonw_key(&w, "token_type");
	jsonw_cstring(&w, "Bearer");
	jsonw_end_object(&w);
	http_reply(x, 200, "application/json", NO_STORE, body, jsonw_done(&w));
}

/* RFC 7009 2.2: 200 whether or not there was anything to revoke. */
static void revoked(struct http_exchange *x)
{
	http_reply(x, 200, NULL, NO_STORE, "", 0);
}

static void revocation(struct http_exchange *x, struct oauth_exchange *st)
{
	const struct jwt_claims *c = &st->subject;
	/* Invalid, expired, revoked already, or another organization's
	 * (which the caller may not end and must not learn about): nothing
	 * to do, and the same answer. */
	if (!st->subject_valid || strcmp(c->organization_id, st->caller_org)) {
		revoked(x);
		return;
	}
	struct db_request q = {.statement = DB_TOKEN_REVOKE};
	char exp[24];
	int n = snprintf(exp, sizeof exp, "%lld", (long long)c->exp);
	if (!db_request_param(&q, c->jti, strlen(c->jti)) ||
	    !db_request_param(&q, c->organization_id, strlen(c->organization_id)) ||
	    !db_request_param(&q, exp, (size_t)n)) {
		oauth_error(x, 500, API_OAUTH_SERVER_ERROR, NULL, NULL);
		return;
	}
	submit(x, st, &q, STAGE_REVOKE_WRITE, x->ctx->cfg->db_timeout_write_ms);
}

/* Stored: now in this instance's table, before the answer (the others
 * learn it by NOTIFY). */
static void revocation_stored(struct http_exchange *x, struct oauth_exchange *st)
{
	const struct jwt_claims *c = &st->subject;
	if (revocations_add(identity_of(x)->revocations, REVOKED_TOKEN, c->jti, strlen(c->jti),
			    c->exp) < 0) {
		log_error("revocation table full", "capacity=%u hint=\"%s\"",
			  x->ctx->cfg->revocation_capacity, "raise --revocation-capacity");
		unavailable(x, "The revocation table is full. Retry later.");
		return;
	}
	if (st->res.rows)
		api_count(x, METRIC_TOKENS_REVOKED);
	revoked(x);
}

static void answer_subject(struct http_exchange *x, struct oauth_exchange *st)
{
	if (st->endpoint == ENDPOINT_INTROSPECT)
		introspection(x, st);
	else
		revocation(x, st);
}

/* ---- Completions ---- */

static void oauth_resume(struct http_exchange *x, int32_t result)
{
	(void)result;
	struct oauth_exchange *st = state_of(x);
	if (!db_answered(x, st))
		return;
	if (st->stage == STAGE_REVOKE_WRITE) {
		revocation_stored(x, st);
		return;
	}
	if (!client_authenticated(x, st))
		return;
	if (st->endpoint == ENDPOINT_TOKEN) {
		issue(x, st);
		return;
	}
	if (!copy_value(&st->res, LOOKUP_COL_ORG, st->caller_org, sizeof st->caller_org)) {
		oauth_error(x, 500, API_OAUTH_SERVER_ERROR, NULL, NULL);
		return;
	}
	answer_subject(x, st);
}

const struct http_handler api_token = {
	.on_head = token_head,
	.on_request = token_request,
	.on_resume = oauth_resume,
	.body_max = OAUTH_BODY_MAX,
};

const struct http_handler api_token_introspect = {
	.on_head = introspect_head,
	.on_request = subject_request,
	.on_resume = oauth_resume,
	.body_max = OAUTH_BODY_MAX,
};

const struct http_handler api_token_revoke = {
	.on_head = revoke_head,
	.on_request = subject_request,
	.on_resume = oauth_resume,
	.body_max = OAUTH_BODY_MAX,
};
