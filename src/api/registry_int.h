/*
 * What the agent registry's routes (agents.c) and the credential routes
 * (credentials.c) share: the caller's organization kept from the head,
 * the ids of the path checked before they reach the database, one parked
 * query per request whose result lives in the exchange buffer, and the
 * identity family's answers (openapi/identity.yaml).
 */
#ifndef RINGSIDE_API_REGISTRY_INT_H
#define RINGSIDE_API_REGISTRY_INT_H

#include "api_int.h"

#include <stdbool.h>

#include "ringside/db.h"
#include "ringside/json_writer.h"

#define REGISTRY_UUID_LEN 36 /* 8-4-4-4-12 hex digits */

/* What a request learnt at its head, kept in x->handler_space until its
 * completion is back (the head's buffer and the token's claims are gone
 * by then). */
struct registry_state {
	char org[JWT_ID_CAP]; /* the token's organization_id */
	/* POST .../credentials: made before the insert, shown once in the
	 * 201 (the database keeps only the secret's HMAC). */
	char client_id[CLIENT_ID_LEN + 1];
	char secret[CLIENT_SECRET_LEN + 1];
	/* GET /api/v1/agents: the query, read at the head. */
	uint8_t limit;
	uint8_t status; /* 0: not given; else 1 + index in registry_list_statuses */
	bool has_cursor;
	int64_t cursor_us;
	char cursor_id[REGISTRY_UUID_LEN + 1];
};
_Static_assert(sizeof(struct registry_state) <= HTTP_HANDLER_SPACE,
	       "the state lives in the exchange's handler space");

static inline struct registry_state *registry_state(struct http_exchange *x)
{
	return (struct registry_state *)(void *)x->handler_space;
}

/* Is s[0, len) a UUID in the form PostgreSQL writes it (any case)? */
bool registry_is_uuid(const char *s, size_t len);

/*
 * The head of every registry route: the Bearer token with `scope`, its
 * organization kept, then the first `uuid_params` route parameters
 * ({agentId}, {credentialId}) checked as UUIDs. Returns true to go on;
 * false after replying (401, 403, 503, or 404 for an id that is not a
 * UUID: it names nothing, and the database would call it a 22P02), or
 * 503 without a database. Either way the caller's on_head returns 0: a
 * reply made there ends the exchange.
 */
bool registry_head(struct http_exchange *x, const char *buf, const struct http_request *req,
		   uint32_t scope, unsigned uuid_params);

/* registry_head as the routes' on_head: the scope, and the ids the path
 * holds (none; {agentId}; {agentId} and {credentialId}). */
unsigned registry_head_write(struct http_exchange *x, const char *buf,
			     const struct http_request *req);
unsigned registry_head_read_agent(struct http_exchange *x, const char *buf,
				  const struct http_request *req);
unsigned registry_head_write_agent(struct http_exchange *x, const char *buf,
				   const struct http_request *req);
unsigned registry_head_write_credential(struct http_exchange *x, const char *buf,
					const struct http_request *req);

/* Starts q: the exchange buffer holds the result (the collected body, if
 * any, is overwritten: read it first, q holds copies), the exchange is
 * parked past the statement class's timeout. On failure, replies 503. */
void registry_submit(struct http_exchange *x, struct db_request *q, enum db_class cls);

/* In on_resume: the result, or NULL after replying (503 unavailable,
 * 504 timeout, 500 anything else). A DB_ERROR of a unique violation
 * (23505) is returned: the caller answers its 409. */
const struct db_result *registry_result(struct http_exchange *x);
bool registry_unique_violation(const struct db_result *r);

/* Appends the route parameter i, and the token's organization, to q. */
void registry_param_id(struct http_exchange *x, struct db_request *q, unsigned i);
void registry_param_org(struct http_exchange *x, struct db_request *q);

/* db_value as a NUL-free span; "" for NULL. */
const char *registry_value(const struct db_result *r, uint32_t row, uint32_t col, uint32_t *len);

/* The agent of row `row` (AGENT_COL_* from its first column) as a JSON
 * object; false if its capabilities are not the array of plain strings
 * the registry stores (the writer's text is then half-written: answer
 * 500). */
bool registry_write_agent(struct json_writer *w, const struct db_result *r, uint32_t row);

/* Renders into the worker's scratch: registry_writer starts it,
 * registry_reply_json sends it as application/json (500 if it did not
 * fit). */
void registry_writer(struct http_exchange *x, struct json_writer *w);
void registry_reply_json(struct http_exchange *x, unsigned status, const char *headers,
			 const struct json_writer *w);

/* 404 AGENT_NOT_FOUND; 409 CONFLICT with a message; 500. */
void registry_agent_not_found(struct http_exchange *x);
void registry_conflict(struct http_exchange *x, const char *message);
void registry_internal(struct http_exchange *x);

/* Ends the tokens of `kind` id at once on this instance (the database
 * told the others): revocations_add, 503 if the table is full. Returns
 * false after replying. */
bool registry_revoke_here(struct http_exchange *x, enum revocation_kind kind, const char *id,
			  size_t len, int64_t cutoff);

#endif
