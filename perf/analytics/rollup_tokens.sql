-- perf/bench_analytics.sh, for reference: the same answer from the rollups (003_analytics.sql), as this script writes it (Ringside's own query may differ).
SELECT d::date AS date, coalesce(sum(h.tokens_issued), 0) AS count
FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - (:days - 1) * interval '1 day',
	date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') d
LEFT JOIN analytics_org_hourly h ON h.organization_id = :org
	AND h.hour >= d AT TIME ZONE 'UTC' AND h.hour < (d + interval '1 day') AT TIME ZONE 'UTC'
GROUP BY d ORDER BY d;
