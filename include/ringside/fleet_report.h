/*
 * An accepted report as the fleet store keeps it (the blob of a
 * struct fleet_snapshot), and the readers' view of one.
 *
 * The blob is the validator's struct ingest_report cut to what it uses:
 * the head (root fields and pool counts), then each pool's first n items,
 * then the used arena. Ranges and string offsets keep their meaning, so
 * encoding is a few copies and decoding is pointer arithmetic: no
 * parsing, no allocation. The full sample (14.5 KB of JSON) encodes to
 * about 11 KB.
 *
 * Layout: [head][service][health_check][tcp_check][cert_check][container]
 * [port][label][mount][process][arena], each section padded to 8 bytes.
 */
#ifndef RINGSIDE_FLEET_REPORT_H
#define RINGSIDE_FLEET_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ringside/ingest.h"

struct fleet_report {
	const struct ingest_report_head *head;
	const struct ingest_service *service;           /* head->n_service items */
	const struct ingest_health_check *health_check; /* n_health_check */
	const struct ingest_tcp_check *tcp_check;
	const struct ingest_cert_check *cert_check;
	const struct ingest_container *container;
	const struct ingest_port *port;
	const struct ingest_label *label;
	const struct ingest_mount *mount;
	const struct ingest_process *process;           /* byCpu and byMemory ranges */
	const char *arena;                              /* head->arena_len bytes */
};

/* Bytes the blob of a valid report takes. */
size_t fleet_report_size(const struct ingest_report *r);

/* Writes the blob of r into out. Returns its size, or 0 (nothing
 * written) if it exceeds cap. out must be 8-byte aligned. */
size_t fleet_report_encode(const struct ingest_report *r, void *out, size_t cap);

/* Points v into a blob of len bytes (8-byte aligned) made by
 * fleet_report_encode. Returns 0, or -EINVAL if len does not match the
 * counts in its head (a blob from elsewhere, or cut short). */
int fleet_report_view(struct fleet_report *v, const void *blob, size_t len);

struct fleet_snapshot;

/*
 * The body of GET /api/metrics/agents/{agentId}/latest for snapshot s
 * (whose blob is viewed by v): written to out and NUL-terminated, returns
 * its length, or 0 if it and its NUL do not fit in cap (out[0, cap) may
 * then have been written, nothing past it). Allocates nothing.
 *
 *   {"agentId":"..","organizationId":"..","receivedAt":"2026-11-22T10:00:00.123Z",
 *    "stale":false,"report":{..}}
 *
 * stale: now_ms - s->received_ms >= stale_ms. report: the document as the
 * agent sent it, cut to what the seed names: every field that was present,
 * in the seed's order, absent ones left out (never null); labels in
 * document order; numbers in their shortest round-trip form.
 */
size_t fleet_report_json(char *out, size_t cap, const struct fleet_snapshot *s,
			 const struct fleet_report *v, int64_t now_ms, int64_t stale_ms);

/* The bytes of a string of the report (s.len of them, not NUL-terminated). */
static inline const char *fleet_str(const struct fleet_report *v, struct ingest_str s)
{
	return v->arena + s.off;
}

#endif
