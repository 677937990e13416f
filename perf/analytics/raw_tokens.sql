-- perf/bench_analytics.sh, the raw side: what the platform runs on its events table (pgbench -M prepared, -D org=T -D days=N).
SELECT d::date AS date, coalesce(c.n, 0) AS count
FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - (:days - 1) * interval '1 day',
	date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') d
LEFT JOIN (SELECT date_trunc('day', occurred_at AT TIME ZONE 'UTC') AS day, count(*) AS n
	FROM analytics_events
	WHERE organization_id = :org AND kind = 'token_issued'
	AND occurred_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - (:days - 1) * interval '1 day') AT TIME ZONE 'UTC'
	GROUP BY 1) c ON c.day = d
ORDER BY d;
