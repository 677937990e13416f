/*
 * Tenant analytics' statements (seed 002; 003_analytics.sql), X(name,
 * class, sql) as DB_STATEMENTS takes them. They read rollups only; the
 * handler computes the window's boundaries (UTC) from its clock and
 * passes them as Unix seconds, so the C side and the SQL agree on "today"
 * and "this month" at a boundary. Intervals are in hours, never days: a
 * session time zone with DST would make a "day" 23 or 25 hours.
 */
#ifndef RINGSIDE_DB_ANALYTICS_H
#define RINGSIDE_DB_ANALYTICS_H

#define DB_ANALYTICS_STATEMENTS(X)                                                             \
	/* $1 org, $2 the first day's start, $3 days. One row per day,                          \
	 * oldest first: the date (YYYY-MM-DD) and its token issuances. */                     \
	X(DB_ANALYTICS_TOKENS, DB_CLASS_READ,                                                  \
	  "SELECT to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD'), coalesce((SELECT "              \
	  "sum(tokens_issued) FROM analytics_org_hourly WHERE organization_id = $1 AND hour "  \
	  ">= d AND hour < d + interval '24 hours'), 0) FROM generate_series(to_timestamp("    \
	  "$2::bigint), to_timestamp($2::bigint) + ($3::int - 1) * interval '24 hours', "      \
	  "interval '24 hours') AS d ORDER BY d")                                              \
	/* $1 org, $2 the window's start. Rows: day of week (0 = Sunday),                       \
	 * UTC hour, token issuances plus API calls; only those above 0. */                    \
	X(DB_ANALYTICS_ACTIVITY, DB_CLASS_READ,                                                \
	  "SELECT extract(dow FROM hour AT TIME ZONE 'UTC')::int AS dow, extract(hour FROM "   \
	  "hour AT TIME ZONE 'UTC')::int AS h, sum(tokens_issued + api_calls) FROM "           \
	  "analytics_org_hourly WHERE organization_id = $1 AND hour >= to_timestamp("          \
	  "$2::bigint) GROUP BY 1, 2 HAVING sum(tokens_issued + api_calls) > 0 ORDER BY 1, 2") \
	/* $1 org, $2 the month's first second. Rows: every agent of the                        \
	 * organization (a decommissioned one only if it was active this                        \
	 * month): id, email, tokens issued, API calls, last activity                           \
	 * (RFC 3339 ms, or NULL); most tokens first, then by id. */                            \
	X(DB_ANALYTICS_AGENTS, DB_CLASS_READ,                                                  \
	  "SELECT a.agent_id::text, a.email, coalesce(m.tokens_issued, 0), "                  \
	  "coalesce(m.api_calls, 0), to_char(m.last_active_at AT TIME ZONE 'UTC', "            \
	  "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM agents a LEFT JOIN "                       \
	  "analytics_agent_monthly m ON m.organization_id = a.organization_id AND m.month = "   \
	  "(to_timestamp($2::bigint) AT TIME ZONE 'UTC')::date AND m.agent_id = "               \
	  "a.agent_id::text WHERE a.organization_id = $1 AND (a.status <> 'decommissioned' "   \
	  "OR m.agent_id IS NOT NULL) ORDER BY 3 DESC, 1")

#endif
