-- perf/bench_analytics.sh, the raw side: what the platform runs on its events table (pgbench -M prepared, -D org=T -D days=N).
SELECT a.agent_id, a.email, coalesce(e.tokens, 0) AS tokens_issued, coalesce(e.calls, 0) AS api_calls,
	e.last_active_at
FROM agents a
LEFT JOIN (SELECT agent_id, count(*) FILTER (WHERE kind = 'token_issued') AS tokens,
		count(*) FILTER (WHERE kind = 'api_call') AS calls, max(occurred_at) AS last_active_at
	FROM analytics_events
	WHERE organization_id = :org
	AND occurred_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	GROUP BY agent_id) e ON e.agent_id = a.agent_id
WHERE a.organization_id = :org
ORDER BY tokens_issued DESC, a.agent_id;
