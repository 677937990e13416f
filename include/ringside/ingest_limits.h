/*
 * What a server may set of the ingest validator (include/ringside/ingest.h):
 * the capacities compiled into its report, and the per-server limits
 * below them (--ingest-limits). Apart from ingest.h so that the
 * configuration, and every file that reads it, need not compile the
 * ingest schema.
 */
#ifndef RINGSIDE_INGEST_LIMITS_H
#define RINGSIDE_INGEST_LIMITS_H

#include <stdint.h>

/*
 * ---- Capacities compiled into struct ingest_report ----
 * Sized for real hosts with room to spare: Kubernetes' default is 110
 * pods per node and a busy Docker host runs a few dozen to ~200
 * containers, so 256 containers, services and checks of each kind; the
 * agent sends top-N process lists, 256 each. Ports, labels and mounts live in pools shared by
 * all containers: a container may have up to 32 ports, 64 labels (compose
 * sets ~10, OCI image labels add ~20) and 32 mounts, and the pools hold an
 * average of 8 ports, 16 labels and 8 mounts for each of 256 containers.
 * The arena holds every string of the report decoded: ~1.5 KB of ids,
 * image digests, labels and mounts per container for 256 containers, with
 * headroom. struct ingest_limits may lower any of these per server, not
 * raise them.
 */
#define INGEST_CAP_SERVICES 256u
#define INGEST_CAP_HEALTH_CHECKS 256u
#define INGEST_CAP_TCP_CHECKS 256u
#define INGEST_CAP_CERT_CHECKS 256u
#define INGEST_CAP_CONTAINERS 256u
#define INGEST_CAP_PROCESSES 256u     /* each of byCpu and byMemory */
#define INGEST_CAP_PORTS_PER_CONTAINER 32u
#define INGEST_CAP_LABELS_PER_CONTAINER 64u
#define INGEST_CAP_MOUNTS_PER_CONTAINER 32u
#define INGEST_CAP_PORTS 2048u        /* all containers together */
#define INGEST_CAP_LABELS 4096u
#define INGEST_CAP_MOUNTS 2048u
#define INGEST_CAP_ARENA (512u * 1024u)
#define INGEST_CAP_KEY 256u           /* bytes of one decoded object key */
#define INGEST_CAP_DEPTH 64u          /* nesting of objects and arrays */

/* Defaults of the limits that are not capacities. */
#define INGEST_DEFAULT_STRING_BYTES (16u * 1024u) /* holds a stack trace in `error` */
#define INGEST_DEFAULT_DEPTH 32u

/*
 * Per-server limits. A field left 0 takes its default, which is the
 * capacity above (INGEST_DEFAULT_* for string_bytes and depth); a value
 * above the capacity is lowered to it. Exceeding any of them is a 413.
 * `depth` counts the root object as 1: the schema itself nests 5 deep
 * (root, containers, a container, its ports, a port).
 */
struct ingest_limits {
	uint32_t services;
	uint32_t health_checks;         /* serviceHealthChecks */
	uint32_t tcp_checks;            /* tcpCheckResults */
	uint32_t cert_checks;           /* certCheckResults */
	uint32_t containers;
	uint32_t processes;             /* each of topProcesses.byCpu, .byMemory */
	uint32_t ports_per_container;
	uint32_t labels_per_container;
	uint32_t mounts_per_container;
	uint32_t ports;                 /* over all containers */
	uint32_t labels;
	uint32_t mounts;
	uint32_t arena_bytes;           /* all strings of the report, decoded */
	uint32_t string_bytes;          /* one string value, decoded (UTF-8 bytes) */
	uint32_t key_bytes;             /* one object key, decoded; <= INGEST_CAP_KEY */
	uint32_t depth;                 /* <= INGEST_CAP_DEPTH */
};

#endif
