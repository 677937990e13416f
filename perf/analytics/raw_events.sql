-- perf/bench_analytics.sh's raw side: the events table of the platform
-- the seed comes from (one row per event, an index on (organization_id,
-- occurred_at)), filled with :events events of tenant :org drawn from the
-- same agent-hours as its rollups (perf/analytics/load.sql must have run):
-- each agent-hour's tokens_issued and api_calls scaled by events / total,
-- rounded at random, each event at a random second of its hour. So the
-- raw table holds the same tenant at a stated fraction of its events,
-- with the same shape over days, hours and agents; its queries' cost is
-- extrapolated from there (bench_analytics.sh says so).
--
--   psql -v org=T -v events=10000000 -f perf/analytics/raw_events.sql
--
-- Rows go in hour by hour (an append-only log's order); the index is
-- built after the load (quicker than growing it row by row; the same
-- index either way).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SELECT setseed(0.17);

DROP TABLE IF EXISTS analytics_events;
CREATE TABLE analytics_events (
	event_id bigserial PRIMARY KEY,
	organization_id text NOT NULL,
	agent_id uuid NOT NULL,
	kind text NOT NULL CHECK (kind IN ('token_issued', 'api_call')),
	occurred_at timestamptz NOT NULL DEFAULT now()
);

SELECT (:events)::float8 / sum(tokens_issued + api_calls) AS f
FROM analytics_agent_hourly WHERE organization_id = :'org' \gset

INSERT INTO analytics_events (organization_id, agent_id, kind, occurred_at)
SELECT h.organization_id, h.agent_id::uuid, k.kind, h.hour + random() * interval '3599 seconds'
FROM analytics_agent_hourly h
CROSS JOIN LATERAL (VALUES ('token_issued', floor(h.tokens_issued * :f + random())::int),
	('api_call', floor(h.api_calls * :f + random())::int)) k(kind, n)
CROSS JOIN LATERAL generate_series(1, k.n) s
WHERE h.organization_id = :'org'
ORDER BY h.hour;

CREATE INDEX analytics_events_org_time ON analytics_events (organization_id, occurred_at);
VACUUM (ANALYZE) analytics_events;
