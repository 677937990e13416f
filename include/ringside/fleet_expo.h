/*
 * The body of GET /metrics/fleet: every agent's latest report (the fleet
 * store, include/ringside/fleet_store.h) as Prometheus series, text 0.0.4
 * or OpenMetrics 1.0.0, rendered in resumable pieces so that a fleet of
 * 100 000 agents (hundreds of MB) streams through one 64 KiB buffer, and
 * in calls of bounded work so that the worker serving it keeps serving
 * everything else.
 *
 * Order: family-major, as both formats require (one HELP/TYPE, then all
 * of the family's samples): for each family in a fixed table
 * (src/fleet/expo.c), for each agent slot 0 .. fleet_agent_slots()-1, the
 * agent's samples of that family. Every family is a gauge named fleet_*,
 * in base units (bytes, seconds), with organization_id and agent_id on
 * every series, then the labels that identify its item (container, url,
 * host, port, name, pid, process, list ...), then index, then the
 * family's own labels (info labels, state="..."). A field absent from a
 * report gives no sample; a label whose field is absent or empty is left
 * out; a family with no sample still has its HELP and TYPE. The last
 * family is fleet_series_dropped{reason}: what this exposition left out
 * (below); then "# EOF" in OpenMetrics.
 *
 * Every series is unique: one that comes from an item of an array
 * (services, serviceHealthChecks, tcpCheckResults, certCheckResults,
 * containers, topProcesses.byCpu and .byMemory) carries index="<i>", the
 * item's 0-based position in its array (for processes, in its list, beside
 * list="cpu" or "memory"), so two services of one containerName, or two
 * identical checks, are two series and not one duplicated (which
 * Prometheus would drop).
 *
 * Selection (the options; a part of the fleet for one scraper):
 *   - groups: the families of FLEET_GROUP_HOST (always) and of the groups
 *     asked for; the others are left out entirely (no HELP/TYPE, not
 *     counted as dropped). 0 means host only.
 *   - org_len > 0: only the agents of organization org (exact bytes).
 *   - shards > 0: only the agents with fleet_agent_shard(...) == shard
 *     (shard >= shards selects none).
 * An agent not selected is skipped before any of its series is looked
 * at, and counted nowhere. Everything below applies to what is selected.
 *
 * Age of a report, now_ms - received_ms:
 *   >= ttl_ms    the agent is left out entirely (0: never);
 *   >= stale_ms  its series are written, with fleet_agent_stale 1 (0: never).
 *
 * Bounds, so that the output is always valid and a piece always fits:
 *   - Label values come from the agent (container names, URLs: up to 16 KiB
 *     each). A series whose label values other than organization_id,
 *     agent_id and index take more than FLEET_EXPO_LABEL_MAX bytes escaped
 *     (\\ \" \n count two) is left out and counted as
 *     reason="label_too_long". No line is then longer than
 *     FLEET_EXPO_LINE_MAX (asserted).
 *   - options.max_series (0: no cap) caps the series written (all families
 *     but fleet_series_dropped); every series past it is left out and
 *     counted as reason="max_series". Families come most useful first
 *     (agent liveness, host gauges, services, checks, containers,
 *     processes), so a capped exposition loses the long tail. A capped
 *     exposition is exactly the uncapped one with the samples past the
 *     first max_series removed, and max_series counts those.
 *   - An organization or agent id that is not valid UTF-8 (Prometheus
 *     rejects the whole scrape for one such label) leaves that agent's
 *     series out, counted as reason="invalid_id" (before label_too_long,
 *     which comes before max_series).
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
/*
 * Visits one call makes at most, written or not (see fleet_expo_next for
 * what a visit is). A visit that writes nothing costs from a few ns (an
 * item counted as dropped) to ~0.15 us (an agent slot whose snapshot is
 * out of cache: 100 000 agents hold over 1 GB), so a call takes about
 * 1-2 ms of CPU at worst whatever the cap, the selection or the ages
 * leave out (65 536 took up to 10 ms; perf/bench_fleet_expo). A call
 * that writes is bounded by its cap first: a 64 KiB piece is ~600 visits.
 */
#define FLEET_EXPO_STEP_BUDGET 8192u
/* The cursor travels inside the HTTP stream's state (HTTP_STREAM_STATE_MAX). */
#define FLEET_EXPO_CURSOR_MAX 256u

_Static_assert(FLEET_EXPO_MIN_CAP >= FLEET_EXPO_LINE_MAX, "a piece holds a line");

/* Groups of families (options.groups). */
#define FLEET_GROUP_HOST 0x01u       /* agent liveness and info, host gauges, host TCP and process states: always */
#define FLEET_GROUP_SERVICES 0x02u   /* fleet_service_* */
#define FLEET_GROUP_CHECKS 0x04u     /* fleet_health_check_*, fleet_tcp_check_*, fleet_cert_check_* */
#define FLEET_GROUP_CONTAINERS 0x08u /* fleet_container_* */
#define FLEET_GROUP_PROCESSES 0x10u  /* fleet_process_* */
#define FLEET_GROUP_ALL 0x1fu

/* Plain data (no pointers): it is copied into the cursor. */
struct fleet_expo_options {
	enum expo_format format;
	uint32_t groups;     /* FLEET_GROUP_*; host is always in, so 0 is host only */
	int64_t now_ms;
	int64_t stale_ms;    /* an agent silent this long is marked stale (0: never) */
	int64_t ttl_ms;      /* ... this long is left out entirely (0: never) */
	uint64_t max_series; /* cardinality cap (DESIGN.md "Metrics"); 0: none */
	uint32_t shard;      /* with shards > 0: only agents of this shard ... */
	uint32_t shards;     /* ... of fleet_agent_shard(..., shards); 0: every agent */
	uint8_t org_len;     /* > 0: only agents of the organization org[0 .. org_len) */
	char org[FLEET_ID_MAX + 1];
};

enum fleet_expo_drop {
	FLEET_EXPO_DROP_LABEL_TOO_LONG,
	FLEET_EXPO_DROP_MAX_SERIES,
	FLEET_EXPO_DROP_INVALID_ID,
	FLEET_EXPO_DROPS
};

/*
 * Where an exposition stands. Plain data (no pointers): the caller may
 * copy it (the HTTP stream keeps a copy). 176 bytes on x86-64.
 */
struct fleet_expo_cursor {
	struct fleet_expo_options o;
	uint32_t family;  /* index in the family table; the count of it: the end */
	uint32_t slot;    /* agent slot in this family's pass */
	uint32_t item;    /* series position within the agent (item x column); at the end, the line */
	uint32_t visits;  /* visits the last call made, <= FLEET_EXPO_STEP_BUDGET (for tests) */
	uint64_t links;   /* fleet_links when this family's pass began: agents linked
			   * later (forgotten, then back in a slot ahead) wait for the
			   * next family, so a pass meets each agent once */
	bool header;      /* this family's HELP and TYPE are written */
	bool done;        /* the last line is written */
	uint64_t series;  /* series written */
	uint64_t dropped[FLEET_EXPO_DROPS];
};

_Static_assert(sizeof(struct fleet_expo_cursor) <= FLEET_EXPO_CURSOR_MAX,
	       "the cursor travels with the HTTP stream");

/* Starts an exposition with options o (copied). */
void fleet_expo_begin(struct fleet_expo_cursor *c, const struct fleet_expo_options *o);

/*
 * Appends the next whole lines of the exposition to buf (at most cap
 * bytes, cap >= FLEET_EXPO_MIN_CAP) and returns the bytes written. Never
 * splits a line; the lines do not depend on cap or on where calls end.
 * A call ends when the end has been written (c->done is then set), when
 * less than FLEET_EXPO_LINE_MAX bytes of room are left, or after
 * FLEET_EXPO_STEP_BUDGET visits, whichever comes first. So a call may
 * return 0 before the end (all its visits wrote nothing: agents not
 * selected or expired, series dropped): the exposition goes on while
 * !c->done, and the caller should call again at a later loop pass, not
 * at once, so that the worker serves others meanwhile. Once c->done,
 * returns 0.
 *
 * A visit is one of: a family header, or a family of a group not asked
 * for, skipped; an agent slot looked at (one visit for an agent not
 * selected, expired or without samples in the family); one series written
 * or left out for label_too_long; one item of an agent whose remaining
 * series in the family are all left out (invalid_id, or max_series once
 * the cap is reached), all of the item's series at once; one end line.
 *
 * Reads snapshots as `worker` and holds none afterwards; never publishes
 * or passes a quiescent state.
 */
size_t fleet_expo_next(struct fleet_expo_cursor *c, struct fleet_store *s, uint32_t worker,
		       char *buf, size_t cap);

/*
 * The shard of agent (org, agent) among `shards`, in [0, shards) (0 when
 * shards is 0 or 1): the same in every process, version and machine, so
 * that N scrapers asking for shard 0 .. N-1 of N each get a fixed 1/N of
 * the agents. The hash, fixed for good: h = FNV-1a 64 (offset basis
 * 14695981039346656037, prime 1099511628211) over the bytes of org, one 0
 * byte, then the bytes of agent; the shard is then the jump consistent
 * hash of h (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
 * Algorithm", 2014) computed in exact integer arithmetic:
 *     b = 0, j = 0;
 *     while (j < shards)
 *         b = j, h = h * 2862933555777941757 + 1 (mod 2^64),
 *         j = floor((b + 1) * 2^31 / ((h >> 33) + 1));
 *     shard = b.
 * Going from N to N + 1 shards moves only the agents that land in the new
 * shard N (about 1/(N+1) of them); every other agent stays where it was.
 */
uint32_t fleet_agent_shard(const char *org, size_t org_len, const char *agent, size_t agent_len,
			   uint32_t shards);

/*
 * Parses an include list (the value of ?include=) into FLEET_GROUP_* bits:
 * comma-separated names among host, services, checks, containers,
 * processes and all (host is always in; repeats are harmless); n == 0 is
 * host only. Returns 0 and sets *groups; or -1 when a name is empty (",,",
 * a leading or trailing comma) or unknown (names are lower case), and then
 * sets *bad and *bad_len (when not NULL) to that name within s, for the
 * 400 to quote. Allocates nothing.
 */
int fleet_expo_parse_groups(const char *s, size_t n, uint32_t *groups, const char **bad,
			    size_t *bad_len);

/*
 * Sets o to select organization org (len bytes, copied). Returns 0, or
 * -EINVAL if len is 0 or over FLEET_ID_MAX (no agent can have that
 * organization).
 */
int fleet_expo_select_org(struct fleet_expo_options *o, const char *org, size_t len);

/* Sets o to select shard `shard` of `shards`. Returns 0, or -EINVAL if
 * shards is 0 or shard >= shards. */
int fleet_expo_select_shard(struct fleet_expo_options *o, uint32_t shard, uint32_t shards);

#endif
