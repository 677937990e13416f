-- 003_analytics: tenant analytics (seed 002) on rollups.
--
-- Events are never stored one by one: the count journal
-- (include/ringside/analytics_journal.h) is tailed by the flusher, which
-- adds each batch to these rollups in one transaction together with how
-- far it read (analytics_journal_applied), so every acknowledged event
-- counts exactly once, whatever crashes between. The analytics queries
-- read only rollups: their cost follows the window, never the number of
-- events.
--
-- agent_id is the token's sub as text: an operator's token (ringside
-- token) may name any sub, and its calls count too.

-- Per agent and UTC hour: the finest grain, what the exactness tests
-- compare with; kept for the longest window (90 days) and a margin.
CREATE TABLE analytics_agent_hourly (
	organization_id text NOT NULL,
	hour timestamptz NOT NULL,
	agent_id text NOT NULL,
	tokens_issued bigint NOT NULL DEFAULT 0,
	api_calls bigint NOT NULL DEFAULT 0,
	last_active_at timestamptz,
	PRIMARY KEY (organization_id, hour, agent_id)
);

-- Per organization and UTC hour: the daily trend (days <= 90: at most
-- 2 160 rows) and the day-of-week x hour heatmap read this.
CREATE TABLE analytics_org_hourly (
	organization_id text NOT NULL,
	hour timestamptz NOT NULL,
	tokens_issued bigint NOT NULL DEFAULT 0,
	api_calls bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (organization_id, hour)
);

-- Per agent and UTC month: the current month's per-agent summary.
CREATE TABLE analytics_agent_monthly (
	organization_id text NOT NULL,
	month date NOT NULL, -- the first day of the month
	agent_id text NOT NULL,
	tokens_issued bigint NOT NULL DEFAULT 0,
	api_calls bigint NOT NULL DEFAULT 0,
	last_active_at timestamptz,
	PRIMARY KEY (organization_id, month, agent_id)
);

-- How far each journal stream has been applied: (instance, worker) ->
-- (segment, offset), written in the same transaction as the rollups.
CREATE TABLE analytics_journal_applied (
	instance_id uuid NOT NULL,
	worker integer NOT NULL,
	seq bigint NOT NULL,
	byte_offset bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (instance_id, worker)
);
