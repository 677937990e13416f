-- perf/bench_analytics.sh, for reference: the same answer from the rollups (003_analytics.sql), as this script writes it (Ringside's own query may differ).
SELECT a.agent_id, a.email, coalesce(m.tokens_issued, 0) AS tokens_issued,
	coalesce(m.api_calls, 0) AS api_calls, m.last_active_at
FROM agents a
LEFT JOIN analytics_agent_monthly m ON m.organization_id = a.organization_id
	AND m.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date AND m.agent_id = a.agent_id::text
WHERE a.organization_id = :org
ORDER BY tokens_issued DESC, a.agent_id;
