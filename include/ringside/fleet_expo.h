/*
 * The body of GET /metrics/fleet: every agent's latest report (the fleet
 * store, include/ringside/fleet_store.h) as Prometheus series, text 0.0.4
 * or OpenMetrics 1.0.0, rendered in resumable pieces so that a fleet of
 * 100 000 agents (hundreds of MB) streams through one 64 KiB buffer.
 *
 * Order: family-major, as both formats require (one HELP/TYPE, then all
 * of the family's samples): for each family in a fixed table
 * (src/fleet/expo.c), for each agent slot 0 .. fleet_agent_slots()-1, the
 * agent's samples of that family. Every family is a gauge named fleet_*,
 * in base units (bytes, seconds), with organization_id and agent_id on
 * every series plus the labels that identify it (container, url, host,
 * port, name, pid, process, list, state ...). A field absent from a report
 * gives no sample; a family with no sample still has its HELP and TYPE.
 * The last family is fleet_series_dropped{reason}: what this exposition
 * left out (below); then "# EOF" in OpenMetrics.
 *
 * Age of a report, now_ms - received_ms:
 *   >= ttl_ms    the agent is left out entirely (0: never);
 *   >= stale_ms  its series are written, with fleet_agent_stale 1 (0: never).
 *
 * Bounds, so that the output is always valid and a piece always fits:
 *   - Label values come from the agent (container names, URLs: up to 16 KiB
 *     each). A series whose label values other than organization_id and
 *     agent_id take more than FLEET_EXPO_LABEL_MAX bytes escaped (\\ \" \n
 *     count two) is left out and counted as reason="label_too_long".
 *     No line is then longer than FLEET_EXPO_LINE_MAX (asserted).
 *   - options.max_series (0: no cap) caps the series written (all families
 *     but fleet_series_dropped); every series past it is left out and
 *     counted as reason="max_series". Families come most useful first
 *     (agent liveness, host gauges, services, checks, containers,
 *     processes), so a capped exposition loses the long tail.
 *   - An organization or agent id that is not valid UTF-8 (Prometheus
 *     rejects the whole scrape for one such label) leaves that agent's
 *     series out, counted as reason="invalid_id".
 *
 * Snapshots: a piece reads snapshots through fleet_snapshot_at and holds
 * none after it returns, so the caller may pass a quiescent state
 * (fleet_quiescent) between pieces. An agent whose report is replaced
 * between two pieces that both hold samples of it in one family may show
 * items of both reports in that family (Prometheus keeps the first of a
 * duplicated series); agents that appear meanwhile show up from the next
 * family on.
 */
#ifndef RINGSIDE_FLEET_EXPO_H
#define RINGSIDE_FLEET_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringside/fleet_store.h"
#include "ringside/metrics_expo.h"

#define FLEET_EXPO_LABEL_MAX 1024u  /* escaped bytes of a series' own label values */
#define FLEET_EXPO_LINE_MAX 2048u   /* longest line; a family's HELP + TYPE count as one */
#define FLEET_EXPO_MIN_CAP (16u * 1024u)
/* Agents and items one call visits before it returns what it has (it goes
 * on until it has written at least one line: at worst to the end of the
 * family, which always starts with a line). */
#define FLEET_EXPO_STEP_BUDGET 65536u

_Static_assert(FLEET_EXPO_MIN_CAP >= FLEET_EXPO_LINE_MAX, "a piece holds a line");

struct fleet_expo_options {
	enum expo_format format;
	int64_t now_ms;
	int64_t stale_ms;    /* an agent silent this long is marked stale (0: never) */
	int64_t ttl_ms;      /* ... this long is left out entirely (0: never) */
	uint64_t max_series; /* cardinality cap (DESIGN.md "Metrics"); 0: none */
};

enum fleet_expo_drop {
	FLEET_EXPO_DROP_LABEL_TOO_LONG,
	FLEET_EXPO_DROP_MAX_SERIES,
	FLEET_EXPO_DROP_INVALID_ID,
	FLEET_EXPO_DROPS
};

/*
 * Where an exposition stands. Plain data (no pointers): the caller may
 * copy it (the HTTP stream keeps a copy). 88 bytes on x86-64.
 */
struct fleet_expo_cursor {
	struct fleet_expo_options o;
	uint32_t family;  /* index in the family table; the count of it: the end */
	uint32_t slot;    /* agent slot in this family's pass */
	uint32_t item;    /* series position within the agent (item x column); at the end, the line */
	bool header;      /* this family's HELP and TYPE are written */
	bool done;        /* the last line is written */
	uint64_t series;  /* series written */
	uint64_t dropped[FLEET_EXPO_DROPS];
};

/* Starts an exposition with options o (copied). */
void fleet_expo_begin(struct fleet_expo_cursor *c, const struct fleet_expo_options *o);

/*
 * Appends the next whole lines of the exposition to buf (at most cap
 * bytes, cap >= FLEET_EXPO_MIN_CAP; a piece may end up to
 * FLEET_EXPO_LINE_MAX short of cap). Returns the bytes written, > 0 until
 * the end of the exposition has been written; 0 once it was, in an
 * earlier piece. Never splits a line. Reads snapshots as `worker` and
 * holds none afterwards; never publishes or passes a quiescent state.
 * Bounded work: FLEET_EXPO_STEP_BUDGET visits, except that a call whose
 * visits all wrote nothing (expired agents, dropped series) goes on to
 * the next family's first line.
 */
size_t fleet_expo_next(struct fleet_expo_cursor *c, struct fleet_store *s, uint32_t worker,
		       char *buf, size_t cap);

#endif
