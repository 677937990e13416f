/*
 * The identity service's statements (src/db/migrations/002_identity.sql),
 * X(name, class, sql) as DB_STATEMENTS takes them. Parameters are text;
 * ids are checked by the handler before they are sent (a malformed uuid
 * would be a 22P02 error, not a 404).
 *
 * Every change that ends tokens early also NOTIFYs ringside_revocations
 * (sent at commit) with the payload revocations_apply_notice reads:
 * "<kind> <value> <id>" (include/ringside/revocations.h).
 */
#ifndef RINGSIDE_DB_IDENTITY_H
#define RINGSIDE_DB_IDENTITY_H

/* Times as the API writes them: RFC 3339, UTC, milliseconds. */
#define DB_SQL_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* A cut-off: tokens issued (iat) before it are dead. The second after
 * now, so a token issued in this very second dies too; and past `prev`
 * (the agent's cut-off before), because a token issued after an earlier
 * cut-off in the same second carries that cut-off as its iat (the token
 * endpoint never issues a token dead at birth). iat is the issuing
 * instance's clock and this the database's: like every JWT deployment,
 * this wants clocks in step (NTP). */
#define DB_SQL_CUTOFF_AFTER(prev) \
	"greatest(" prev " + 1, floor(extract(epoch FROM now()))::bigint + 1)"

/* An agent as the registry answers it, columns AGENT_COL_*. */
#define DB_SQL_AGENT(t)                                                                        \
	t "agent_id, " t "organization_id, " t "email, " t "agent_type, " t "version, "         \
	  "array_to_json(" t "capabilities)::text, " t "owner, " t "deployment_env, " t         \
	  "status, " DB_SQL_TIME(t "created_at") ", " DB_SQL_TIME(t "updated_at")
enum db_agent_col {
	AGENT_COL_ID,
	AGENT_COL_ORG,
	AGENT_COL_EMAIL,
	AGENT_COL_TYPE,
	AGENT_COL_VERSION,
	AGENT_COL_CAPABILITIES, /* a JSON array of strings, ready to write */
	AGENT_COL_OWNER,
	AGENT_COL_ENV,
	AGENT_COL_STATUS,
	AGENT_COL_CREATED,
	AGENT_COL_UPDATED,
	AGENT_COLS
};

/* Rows of a list page stop before this many bytes of the result. */
#define DB_AGENT_PAGE_BYTES 49152

#define DB_REGISTRY_STATEMENTS(X)                                                              \
	/* $1 org, $2 email, $3 agentType, $4 version, $5 capabilities as an                  \
	 * array literal {a:b,c:d}, $6 owner, $7 deploymentEnv: the agent;                      \
	 * 23505 for an email already in use. */                                              \
	X(DB_AGENT_CREATE, DB_CLASS_WRITE,                                                     \
	  "INSERT INTO agents (organization_id, email, agent_type, version, capabilities, "    \
	  "owner, deployment_env) VALUES ($1, $2, $3, $4, $5::text[], $6, $7) "                \
	  "RETURNING " DB_SQL_AGENT(""))                                                       \
	/* $1 agent id, $2 org: the agent, or no row. */                                      \
	X(DB_AGENT_GET, DB_CLASS_READ,                                                         \
	  "SELECT " DB_SQL_AGENT("") " FROM agents WHERE agent_id = $1::uuid "                 \
	  "AND organization_id = $2")                                                          \
	/* $1 org, $2 status or NULL (NULL: all but decommissioned), $3 and $4                \
	 * the cursor (created_at in Unix microseconds, agent id) or NULL, $5                    \
	 * rows wanted + 1. Newest first; rows stop before DB_AGENT_PAGE_BYTES;                  \
	 * columns: the agent, then AGENT_COLS: its created_at in microseconds                   \
	 * (the next cursor), AGENT_COLS + 1: rows the page had before that                      \
	 * cut (more than returned, or than wanted - 1: there is a next page). */             \
	X(DB_AGENT_LIST, DB_CLASS_READ,                                                        \
	  "SELECT " DB_SQL_AGENT("p.") ", p.created_us, p.n FROM (SELECT a.*, "                \
	  "(extract(epoch FROM a.created_at) * 1000000)::bigint AS created_us, "                \
	  "count(*) OVER () AS n, sum(octet_length(a.email) + octet_length(a.owner) + "        \
	  "octet_length(array_to_json(a.capabilities)::text) + 256) OVER "                     \
	  "(ORDER BY a.created_at DESC, a.agent_id DESC) AS running FROM (SELECT * FROM agents " \
	  "WHERE organization_id = $1 AND (CASE WHEN $2::text IS NULL THEN status <> "         \
	  "'decommissioned' ELSE status = $2 END) AND ($3::bigint IS NULL OR (created_at, "    \
	  "agent_id) < ('epoch'::timestamptz + $3::bigint * interval '1 microsecond', "         \
	  "$4::uuid)) ORDER BY created_at DESC, agent_id DESC LIMIT $5::int) a) p "             \
	  "WHERE p.running <= 49152 ORDER BY p.created_at DESC, p.agent_id DESC")              \
	/* $1 agent id, $2 org, then each field or NULL (unchanged): $3 email,                  \
	 * $4 agentType, $5 version, $6 capabilities, $7 owner, $8 deploymentEnv,              \
	 * $9 status. One row: AGENT_COLS columns of the changed agent (NULL                    \
	 * if it was not changed), then (AGENT_COLS) its status before: no row,                 \
	 * no such agent; decommissioned, nothing changed; then (AGENT_COLS + 1)                \
	 * the cut-off second if it was suspended now, else NULL. Suspending                    \
	 * announces that cut-off. 23505 for an email in use. */                                \
	X(DB_AGENT_UPDATE, DB_CLASS_WRITE,                                                     \
	  "WITH old AS (SELECT agent_id, status FROM agents WHERE agent_id = $1::uuid AND "    \
	  "organization_id = $2 FOR UPDATE), upd AS (UPDATE agents a SET "                     \
	  "email = coalesce($3, a.email), agent_type = coalesce($4, a.agent_type), "           \
	  "version = coalesce($5, a.version), capabilities = coalesce($6::text[], "            \
	  "a.capabilities), owner = coalesce($7, a.owner), deployment_env = coalesce($8, "     \
	  "a.deployment_env), status = coalesce($9, a.status), tokens_valid_after = CASE "     \
	  "WHEN $9 = 'suspended' AND old.status = 'active' THEN " \
	  DB_SQL_CUTOFF_AFTER("a.tokens_valid_after") " ELSE a.tokens_valid_after END, updated_at = now() FROM old WHERE "  \
	  "a.agent_id = old.agent_id AND old.status <> 'decommissioned' RETURNING a.*, CASE "  \
	  "WHEN $9 = 'suspended' AND old.status = 'active' THEN pg_notify("                    \
	  "'ringside_revocations', 'a ' || a.tokens_valid_after || ' ' || a.agent_id) END) "   \
	  "SELECT " DB_SQL_AGENT("upd.") ", old.status, CASE WHEN $9 = 'suspended' AND "     \
	  "old.status = 'active' THEN upd.tokens_valid_after END FROM old LEFT JOIN upd ON true") \
	/* $1 agent id, $2 org. One row: the cut-off second if decommissioned                   \
	 * now (else NULL), and whether the agent exists in the organization.                  \
	 * Its credentials are revoked with it. */                                            \
	X(DB_AGENT_DECOMMISSION, DB_CLASS_WRITE,                                               \
	  "WITH a AS (UPDATE agents SET status = 'decommissioned', tokens_valid_after = "      \
	  DB_SQL_CUTOFF_AFTER("tokens_valid_after") ", updated_at = now() WHERE "         \
	  "agent_id = $1::uuid AND organization_id = $2 AND status <> 'decommissioned' "       \
	  "RETURNING agent_id, tokens_valid_after, pg_notify('ringside_revocations', 'a ' || " \
	  "tokens_valid_after || ' ' || agent_id)), c AS (UPDATE agent_credentials SET "       \
	  "status = 'revoked', revoked_at = " DB_SQL_CUTOFF_AFTER("0") " WHERE agent_id IN (SELECT "      \
	  "agent_id FROM a) AND status = 'active' RETURNING 1) SELECT (SELECT "                \
	  "tokens_valid_after FROM a), EXISTS (SELECT 1 FROM agents WHERE agent_id = $1::uuid " \
	  "AND organization_id = $2), (SELECT count(*) FROM c)")                               \
	/* $1 agent id, $2 org, $3 client id, $4 the secret's HMAC in hex, $5                   \
	 * days it is valid (0: until revoked). No row: no such agent in the                     \
	 * organization. Else one row: CRED_COL_* of the new credential (NULL                    \
	 * when none was made), then (CRED_COLS) the agent's status and                          \
	 * (CRED_COLS + 1) its active credentials before: decommissioned, or                     \
	 * DB_CREDENTIALS_MAX of them, and none is made. The agent's row is                       \
	 * locked, but the count is of the statement's snapshot: two requests                    \
	 * racing for the last place may both get one. */                                       \
	X(DB_CREDENTIAL_CREATE, DB_CLASS_WRITE,                                                \
	  "WITH a AS (SELECT agent_id, status, (SELECT count(*) FROM agent_credentials c "     \
	  "WHERE c.agent_id = agents.agent_id AND c.status = 'active') AS active FROM agents " \
	  "WHERE agent_id = $1::uuid AND organization_id = $2 FOR UPDATE), ins AS (INSERT "    \
	  "INTO agent_credentials (client_id, agent_id, secret_hash, expires_at) SELECT $3, "  \
	  "a.agent_id, decode($4, 'hex'), CASE WHEN $5::int > 0 THEN now() + $5::int * "       \
	  "interval '1 day' END FROM a WHERE a.status <> 'decommissioned' AND a.active < "     \
	  DB_CREDENTIALS_MAX_SQL " RETURNING *) SELECT " DB_SQL_CREDENTIAL("ins.") ", "        \
	  "a.status, a.active FROM a LEFT JOIN ins ON true")                                    \
	/* $1 agent id, $2 org: no row, no such agent; else one row per                         \
	 * credential, newest first (CRED_COL_*, then the agent's status), or                   \
	 * one row of NULLs and the status if it has none. */                                 \
	X(DB_CREDENTIAL_LIST, DB_CLASS_READ,                                                   \
	  "SELECT " DB_SQL_CREDENTIAL("c.") ", a.status FROM agents a LEFT JOIN "              \
	  "agent_credentials c ON c.agent_id = a.agent_id WHERE a.agent_id = $1::uuid AND "    \
	  "a.organization_id = $2 ORDER BY c.created_at DESC LIMIT 100")                       \
	/* $1 agent id, $2 org, $3 credential id. One row: revoked now (t/f),                   \
	 * and whether the credential exists for that agent and organization.                   \
	 * Announces the client's cut-off. */                                                 \
	X(DB_CREDENTIAL_REVOKE, DB_CLASS_WRITE,                                                \
	  "WITH r AS (UPDATE agent_credentials c SET status = 'revoked', revoked_at = "        \
	  DB_SQL_CUTOFF_AFTER("a.tokens_valid_after") " FROM agents a WHERE c.credential_id = $3::uuid AND c.agent_id = "     \
	  "$1::uuid AND a.agent_id = c.agent_id AND a.organization_id = $2 AND c.status = "    \
	  "'active' RETURNING c.client_id, c.revoked_at, pg_notify('ringside_revocations', "   \
	  "'c ' || c.revoked_at || ' ' || c.client_id)) SELECT (SELECT client_id FROM r), "    \
	  "(SELECT revoked_at FROM r), EXISTS (SELECT 1 FROM agent_credentials c JOIN agents " \
	  "a USING (agent_id) WHERE c.credential_id = $3::uuid AND c.agent_id = $1::uuid AND " \
	  "a.organization_id = $2)")

/* A credential as the registry answers it, columns CRED_COL_*. */
#define DB_SQL_CREDENTIAL(t)                                                                   \
	t "credential_id, " t "client_id, " t "status, " DB_SQL_TIME(t "created_at") ", "      \
	  DB_SQL_TIME(t "expires_at")
enum db_credential_col {
	CRED_COL_ID,
	CRED_COL_CLIENT_ID,
	CRED_COL_STATUS,
	CRED_COL_CREATED,
	CRED_COL_EXPIRES, /* NULL: until revoked */
	CRED_COLS
};
#define DB_CREDENTIALS_MAX 10 /* active credentials per agent */
#define DB_CREDENTIALS_MAX_SQL "10" /* the same, in the SQL */
_Static_assert(DB_CREDENTIALS_MAX == 10, "DB_CREDENTIALS_MAX_SQL says 10");

#define DB_TOKEN_STATEMENTS(X)                                                                 \
	/* $1 client id. One row, LOOKUP_COL_*, or none (unknown client). */                   \
	X(DB_CREDENTIAL_LOOKUP, DB_CLASS_READ,                                                 \
	  "SELECT encode(c.secret_hash, 'hex'), c.agent_id, a.organization_id, a.status, "     \
	  "a.tokens_valid_after, c.status, coalesce(c.expires_at <= now(), false), "           \
	  "c.revoked_at FROM agent_credentials c JOIN agents a USING (agent_id) WHERE "        \
	  "c.client_id = $1")                                                                  \
	/* $1 jti, $2 org, $3 exp. Stores and announces the revocation; no row                  \
	 * if it was already stored. */                                                       \
	X(DB_TOKEN_REVOKE, DB_CLASS_WRITE,                                                     \
	  "WITH ins AS (INSERT INTO revoked_tokens (jti, organization_id, expires_at) VALUES " \
	  "($1, $2, $3::bigint) ON CONFLICT (jti) DO NOTHING RETURNING jti, expires_at) "      \
	  "SELECT pg_notify('ringside_revocations', 'j ' || expires_at || ' ' || jti) FROM ins")
enum db_lookup_col {
	LOOKUP_COL_SECRET_HASH, /* 64 hex digits */
	LOOKUP_COL_AGENT_ID,
	LOOKUP_COL_ORG,
	LOOKUP_COL_AGENT_STATUS,
	LOOKUP_COL_VALID_AFTER, /* the agent's cut-off second */
	LOOKUP_COL_STATUS,      /* the credential's */
	LOOKUP_COL_EXPIRED,     /* t / f */
	LOOKUP_COL_REVOKED_AT,
	LOOKUP_COLS
};

#endif
