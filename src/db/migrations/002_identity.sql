-- 002_identity: the agent registry, its client credentials, and revoked
-- tokens (openapi/identity.yaml).
--
-- No row per issued token: a JWT carries everything needed to check it.
-- What is stored is what can end a token before its exp:
--   - revoked_tokens: one row per revoked jti, deleted once its exp has
--     passed (the token is dead anyway), so the table stays bounded;
--   - agents.tokens_valid_after: a token of the agent issued (iat) before
--     this Unix second is dead (set when the agent is suspended or
--     decommissioned);
--   - agent_credentials.revoked_at: likewise for the tokens a credential
--     obtained.
-- Every change to them is announced with NOTIFY ringside_revocations (in
-- the statement that makes it, so it is sent at commit), and each
-- Ringside instance keeps them all in memory (src/identity/revocations.c).

CREATE TABLE agents (
	agent_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	organization_id text NOT NULL,
	email text NOT NULL,
	agent_type text NOT NULL,
	version text NOT NULL,
	capabilities text[] NOT NULL,
	owner text NOT NULL,
	deployment_env text NOT NULL,
	status text NOT NULL DEFAULT 'active'
		CHECK (status IN ('active', 'suspended', 'decommissioned')),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	tokens_valid_after bigint NOT NULL DEFAULT 0
);

-- An email names one live agent (any case); a decommissioned agent's
-- stays in its history and may be registered again.
CREATE UNIQUE INDEX agents_email_live ON agents (lower(email))
	WHERE status <> 'decommissioned';
-- The registry's list: an organization's agents, newest first.
CREATE INDEX agents_by_org ON agents (organization_id, created_at DESC, agent_id DESC);
CREATE INDEX agents_not_active ON agents (agent_id) WHERE tokens_valid_after > 0;

CREATE TABLE agent_credentials (
	credential_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	client_id text NOT NULL UNIQUE,
	agent_id uuid NOT NULL REFERENCES agents (agent_id),
	-- HMAC-SHA-256 of the secret under --client-secret-key-file: the
	-- secret itself is shown once and never stored.
	secret_hash bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
	status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz,
	revoked_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX agent_credentials_by_agent ON agent_credentials (agent_id, created_at DESC);
CREATE INDEX agent_credentials_revoked ON agent_credentials (client_id) WHERE revoked_at > 0;

CREATE TABLE revoked_tokens (
	jti text PRIMARY KEY,
	organization_id text NOT NULL,
	expires_at bigint NOT NULL -- the token's exp (Unix seconds)
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
