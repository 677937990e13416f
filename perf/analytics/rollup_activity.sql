-- perf/bench_analytics.sh, for reference: the same answer from the rollups (003_analytics.sql), as this script writes it (Ringside's own query may differ).
SELECT extract(dow FROM hour AT TIME ZONE 'UTC')::int AS day_of_week,
	extract(hour FROM hour AT TIME ZONE 'UTC')::int AS hour, sum(tokens_issued + api_calls) AS count
FROM analytics_org_hourly
WHERE organization_id = :org AND hour >= date_trunc('hour', now()) - interval '90 days'
GROUP BY 1, 2 HAVING sum(tokens_issued + api_calls) > 0 ORDER BY 1, 2;
