-- perf/bench_analytics.sh, the raw side: what the platform runs on its events table (pgbench -M prepared, -D org=T -D days=N).
SELECT extract(dow FROM occurred_at AT TIME ZONE 'UTC')::int AS day_of_week,
	extract(hour FROM occurred_at AT TIME ZONE 'UTC')::int AS hour, count(*) AS count
FROM analytics_events
WHERE organization_id = :org AND occurred_at >= now() - interval '90 days'
GROUP BY 1, 2 ORDER BY 1, 2;
