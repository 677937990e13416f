-- perf/bench_analytics.sh's loader: the registry and the rollups of
-- 003_analytics.sql for a tenant T with :agents agents active every hour
-- of the last :days days, and :others other tenants with fleets of 5 to
-- 50 agents, each agent active in about a quarter of the hours. Run by
-- psql on a database the server has migrated (it creates no table):
--
--   psql -v org=T -v agents=1000 -v days=90 -v others=100 -f perf/analytics/load.sql
--
-- Counts are random (setseed: the same draw every run) around a shape:
-- weekday business hours (08-18 UTC) 1.6x, other hours 0.7x, weekends
-- 0.6x that; per agent-hour tokens_issued 0-20 x w and api_calls 0-80 x w,
-- about 49 events an agent-hour on average for T (agents 0.5x to 1.5x too). Every row goes in in primary-key
-- order (the indexes grow at their right edge), and the org and monthly
-- rollups are sums of the agent-hourly one, as the flusher keeps them.
\set ON_ERROR_STOP 1
\timing off
SET client_min_messages = warning;
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
SET work_mem = '256MB';
SELECT setseed(0.42);

BEGIN;
-- The hours: the last :days x 24 UTC hours, the current one last.
CREATE TEMP TABLE bench_hours ON COMMIT DROP AS
SELECT h AS hour,
	(CASE WHEN extract(hour FROM h AT TIME ZONE 'UTC') BETWEEN 8 AND 18 THEN 1.6 ELSE 0.7 END)
	* (CASE WHEN extract(isodow FROM h AT TIME ZONE 'UTC') >= 6 THEN 0.6 ELSE 1.0 END) AS w
FROM generate_series(date_trunc('hour', now()) - (:days * 24 - 1) * interval '1 hour',
	date_trunc('hour', now()), interval '1 hour') h;

-- The registry: T's agents, then the other tenants' (5 to 50 each).
INSERT INTO agents (organization_id, email, agent_type, version, capabilities, owner,
	deployment_env, created_at, updated_at)
SELECT :'org', format('agent-%s@%s.bench.example', lpad(i::text, 5, '0'), :'org'),
	(ARRAY['screener', 'classifier', 'orchestrator', 'extractor', 'summarizer', 'router',
		'monitor', 'custom'])[1 + i % 8],
	'1.0.0', ARRAY['metrics:write'], 'bench', 'production',
	now() - interval '120 days', now() - interval '120 days'
FROM generate_series(1, :agents) i;
INSERT INTO agents (organization_id, email, agent_type, version, capabilities, owner,
	deployment_env, created_at, updated_at)
SELECT o.org, format('agent-%s@%s.bench.example', lpad(i::text, 5, '0'), o.org), 'custom',
	'1.0.0', ARRAY['metrics:write'], 'bench', 'production',
	now() - interval '120 days', now() - interval '120 days'
FROM (SELECT t, format('%s-other-%s', :'org', lpad(t::text, 3, '0')) AS org
	FROM generate_series(1, :others) t) o,
	generate_series(1, 5 + (o.t * 37) % 46) i;

-- T: every agent, every hour; some agents busier than others (0.5x to
-- 1.5x, from a hash of the id). random() in the subquery's target list is
-- drawn for every row.
INSERT INTO analytics_agent_hourly
SELECT :'org', x.hour, x.id, x.tokens, x.calls,
	CASE WHEN x.tokens + x.calls > 0 THEN x.hour + x.r * interval '3599 seconds' END
FROM (SELECT h.hour, a.id,
		floor(random() * 21 * h.w * a.aw)::bigint AS tokens,
		floor(random() * 81 * h.w * a.aw)::bigint AS calls, random() AS r
	FROM bench_hours h
	CROSS JOIN (SELECT agent_id::text AS id, 0.5 + (abs(hashtext(agent_id::text)) % 1001) / 1000.0 AS aw
		FROM agents WHERE organization_id = :'org') a) x
ORDER BY x.hour, x.id;

-- The others: each agent in about a quarter of the hours, fewer events.
INSERT INTO analytics_agent_hourly
SELECT x.org, x.hour, x.id, x.tokens, x.calls, x.hour + random() * interval '3599 seconds'
FROM (SELECT a.organization_id AS org, h.hour, a.agent_id::text AS id,
		1 + floor(random() * 5 * h.w)::bigint AS tokens,
		floor(random() * 21 * h.w)::bigint AS calls
	FROM bench_hours h
	CROSS JOIN (SELECT organization_id, agent_id FROM agents
		WHERE organization_id LIKE :'org' || '-other-%') a
	WHERE random() < 0.25) x
ORDER BY x.org, x.hour, x.id;

INSERT INTO analytics_org_hourly
SELECT organization_id, hour, sum(tokens_issued), sum(api_calls)
FROM analytics_agent_hourly GROUP BY 1, 2 ORDER BY 1, 2;

INSERT INTO analytics_agent_monthly
SELECT organization_id, (date_trunc('month', hour AT TIME ZONE 'UTC'))::date, agent_id,
	sum(tokens_issued), sum(api_calls), max(last_active_at)
FROM analytics_agent_hourly GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
COMMIT;

VACUUM (ANALYZE) agents, analytics_agent_hourly, analytics_org_hourly, analytics_agent_monthly;
