/*
 * One-pass streaming validator for the body of POST /api/metrics/ingest
 * (../shared/seeds/003-agent-metrics-ingest.txt). The body's bytes go in as
 * they arrive, in any split; out comes a struct ingest_report that mirrors
 * the seed's schema, or an error naming the field path
 * (`containers[3].ports[0].privatePort`), a message, a hint and a status.
 *
 * Contract:
 *   - Allocates nothing. The caller owns the parser (1.7 KB) and the report
 *     (858 KiB, preallocated a few per worker); ingest_parser_init() resets
 *     both for a new body in O(1) (it does not clear the pools or the arena).
 *   - ingest_parser_feed() reads data[0, len) once and keeps no pointer into
 *     it: strings are decoded into the report's arena, so the recv buffer can
 *     be handed back at once. It never reads data[len] or beyond.
 *   - Strict: RFC 8259 JSON (UTF-8 checked: no overlongs, no surrogates, no
 *     code point above U+10FFFF; no unescaped control characters; lone
 *     surrogate escapes rejected; numbers per the grammar, no NaN/Infinity,
 *     no BOM), and the seed's types: a number field takes only a JSON number
 *     (not a string, not null), a boolean only true/false, a string only a
 *     string; `required` fields must be present; checkedAt must match the
 *     seed's date-time pattern (calendar and leap years checked).
 *   - Unknown keys, at any level, are skipped; their values must still be
 *     valid JSON (nested at most `depth` levels).
 *   - A known key twice in one object, or a label key twice in one `labels`
 *     object, is an error ("appears twice"). Duplicates of unknown keys are
 *     not detected: their values are dropped, so no reading of the document
 *     depends on which one wins, and remembering every unknown key would
 *     need memory the validator does not have.
 *   - null is not a value of any field: the seed types every field as a
 *     number, boolean, string, array or object, and an agent that has no
 *     value omits the field (all top-level fields are optional).
 *   - Numbers are stored as double, correctly rounded (round-half-even)
 *     without locale or strtod on the hot path (src/ingest/number.c). A
 *     number whose magnitude rounds to infinity is "out of range"; one that
 *     underflows becomes (signed) zero, which is its correct rounding.
 *   - Errors are sticky: after one, feed and finish return it again. The
 *     error reported is the one of the first offending byte, whatever the
 *     split (a UTF-8 sequence counts as one unit); the rest of the body is
 *     not read. Paths of errors inside an unknown key's value stop at that
 *     key; keys that are not plain names are quoted (`labels["a.b"]`).
 *
 * Statuses (p->err.status):
 *   400  the document is not what the seed describes: syntax, type,
 *        missing required field, duplicate, date-time, out of range.
 *        The agent must change what it sends; retrying cannot help.
 *   413  the document may be valid but exceeds a limit of this server
 *        (one of struct ingest_limits: items in an array, arena bytes,
 *        string or key length, nesting depth); the message names the limit.
 *        The agent can send less (fewer containers, shorter texts); the
 *        operator can raise the limit. The seed's error codes have none for
 *        this case: answer `VALIDATION_ERROR` with status 413.
 */
#ifndef RINGSIDE_INGEST_H
#define RINGSIDE_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringside/ingest_limits.h"

/* A string of the report: bytes [off, off + len) of r->arena, valid UTF-8,
 * not NUL-terminated (it may contain U+0000, sent as \u0000). */
struct ingest_str {
	uint32_t off;
	uint32_t len;
};

/* Items [first, first + count) of the report's pool for that element type. */
struct ingest_range {
	uint32_t first;
	uint32_t count;
};

/*
 * ---- The schema, once ----
 * Each object's fields, in the seed's order, as X(a, name, KIND, required,
 * child): KIND is NUM (double), BOOL (bool), STR (struct ingest_str), DATE
 * (a STR matching the seed's date-time pattern), ARR (struct ingest_range
 * into the pool of `child` objects), OBJ (an embedded struct ingest_child)
 * or LABELS (struct ingest_range into r->label). The members carry the
 * seed's JSON names, so an error path reads like the C expression.
 * The same lists generate the structs below, the presence-bit enums and
 * the validator's tables (src/ingest/validator.c).
 */
#define INGEST_REPORT_FIELDS(X, a)                                          \
	X(a, cpuPercent, NUM, 0, none)                                      \
	X(a, memoryUsedMb, NUM, 0, none)                                    \
	X(a, memoryTotalMb, NUM, 0, none)                                   \
	X(a, swapUsedMb, NUM, 0, none)                                      \
	X(a, swapTotalMb, NUM, 0, none)                                     \
	X(a, diskUsedGb, NUM, 0, none)                                      \
	X(a, diskTotalGb, NUM, 0, none)                                     \
	X(a, loadAvg1, NUM, 0, none)                                        \
	X(a, loadAvg5, NUM, 0, none)                                        \
	X(a, loadAvg15, NUM, 0, none)                                       \
	X(a, uptime, NUM, 0, none)                                          \
	X(a, openFds, NUM, 0, none)                                         \
	X(a, maxFds, NUM, 0, none)                                          \
	X(a, tcpEstablished, NUM, 0, none)                                  \
	X(a, tcpListen, NUM, 0, none)                                       \
	X(a, tcpTimeWait, NUM, 0, none)                                     \
	X(a, tcpCloseWait, NUM, 0, none)                                    \
	X(a, tcpTotal, NUM, 0, none)                                        \
	X(a, serverHealthy, BOOL, 0, none)                                  \
	X(a, agentVersion, STR, 0, none)                                    \
	X(a, services, ARR, 0, service)                                     \
	X(a, serviceHealthChecks, ARR, 0, health_check)                     \
	X(a, tcpCheckResults, ARR, 0, tcp_check)                            \
	X(a, certCheckResults, ARR, 0, cert_check)                          \
	X(a, containers, ARR, 0, container)                                 \
	X(a, topProcesses, OBJ, 0, top_processes)

#define INGEST_SERVICE_FIELDS(X, a)                                         \
	X(a, containerName, STR, 1, none)                                   \
	X(a, cpuPercent, NUM, 0, none)                                      \
	X(a, memoryUsedMb, NUM, 0, none)                                    \
	X(a, memoryLimitMb, NUM, 0, none)                                   \
	X(a, networkRxMb, NUM, 0, none)                                     \
	X(a, networkTxMb, NUM, 0, none)                                     \
	X(a, blockReadMb, NUM, 0, none)                                     \
	X(a, blockWriteMb, NUM, 0, none)                                    \
	X(a, restartCount, NUM, 0, none)                                    \
	X(a, state, STR, 0, none)                                           \
	X(a, health, STR, 0, none)

#define INGEST_HEALTH_CHECK_FIELDS(X, a)                                    \
	X(a, containerName, STR, 1, none)                                   \
	X(a, healthCheckUrl, STR, 1, none)                                  \
	X(a, success, BOOL, 1, none)                                        \
	X(a, statusCode, NUM, 0, none)                                      \
	X(a, durationMs, NUM, 0, none)                                      \
	X(a, checkedAt, DATE, 0, none)                                      \
	X(a, error, STR, 0, none)

#define INGEST_TCP_CHECK_FIELDS(X, a)                                       \
	X(a, containerName, STR, 1, none)                                   \
	X(a, host, STR, 1, none)                                            \
	X(a, port, NUM, 1, none)                                            \
	X(a, name, STR, 0, none)                                            \
	X(a, success, BOOL, 1, none)                                        \
	X(a, durationMs, NUM, 1, none)                                      \
	X(a, error, STR, 0, none)

#define INGEST_CERT_CHECK_FIELDS(X, a)                                      \
	X(a, containerName, STR, 1, none)                                   \
	X(a, host, STR, 1, none)                                            \
	X(a, port, NUM, 1, none)                                            \
	X(a, name, STR, 0, none)                                            \
	X(a, success, BOOL, 1, none)                                        \
	X(a, durationMs, NUM, 1, none)                                      \
	X(a, expiresAt, STR, 0, none)                                       \
	X(a, daysUntilExpiry, NUM, 0, none)                                 \
	X(a, issuer, STR, 0, none)                                          \
	X(a, subject, STR, 0, none)                                         \
	X(a, error, STR, 0, none)

#define INGEST_CONTAINER_FIELDS(X, a)                                       \
	X(a, id, STR, 1, none)                                              \
	X(a, name, STR, 1, none)                                            \
	X(a, image, STR, 1, none)                                           \
	X(a, imageId, STR, 1, none)                                         \
	X(a, state, STR, 1, none)                                           \
	X(a, status, STR, 1, none)                                          \
	X(a, created, NUM, 1, none)                                         \
	X(a, ports, ARR, 0, port)                                           \
	X(a, labels, LABELS, 0, none)                                       \
	X(a, mounts, ARR, 0, mount)                                         \
	X(a, networkMode, STR, 0, none)

#define INGEST_PORT_FIELDS(X, a)                                            \
	X(a, privatePort, NUM, 1, none)                                     \
	X(a, publicPort, NUM, 0, none)                                      \
	X(a, type, STR, 1, none)                                            \
	X(a, ip, STR, 0, none)

#define INGEST_MOUNT_FIELDS(X, a)                                           \
	X(a, source, STR, 1, none)                                          \
	X(a, destination, STR, 1, none)                                     \
	X(a, mode, STR, 1, none)                                            \
	X(a, type, STR, 1, none)

#define INGEST_TOP_PROCESSES_FIELDS(X, a)                                   \
	X(a, byCpu, ARR, 1, process)                                        \
	X(a, byMemory, ARR, 1, process)                                     \
	X(a, stats, OBJ, 1, process_stats)

#define INGEST_PROCESS_FIELDS(X, a)                                         \
	X(a, pid, NUM, 1, none)                                             \
	X(a, name, STR, 1, none)                                            \
	X(a, state, STR, 1, none)                                           \
	X(a, cpuPercent, NUM, 1, none)                                      \
	X(a, memoryMb, NUM, 1, none)                                        \
	X(a, threads, NUM, 1, none)

#define INGEST_PROCESS_STATS_FIELDS(X, a)                                   \
	X(a, total, NUM, 1, none)                                           \
	X(a, running, NUM, 1, none)                                         \
	X(a, sleeping, NUM, 1, none)                                        \
	X(a, stopped, NUM, 1, none)                                         \
	X(a, zombie, NUM, 1, none)

/* Member types. */
#define INGEST_CTYPE_NUM(c) double
#define INGEST_CTYPE_BOOL(c) bool
#define INGEST_CTYPE_STR(c) struct ingest_str
#define INGEST_CTYPE_DATE(c) struct ingest_str
#define INGEST_CTYPE_ARR(c) struct ingest_range
#define INGEST_CTYPE_LABELS(c) struct ingest_range
#define INGEST_CTYPE_OBJ(c) struct ingest_##c
#define INGEST_MEMBER_(a, name, kind, req, child) INGEST_CTYPE_##kind(child) name;

/*
 * Presence bits: bit INGEST_<OBJECT>_<name> of the object's `has` is set
 * when the field was in the document (always, for required fields of an
 * accepted report). Fields absent have value 0 / false / empty.
 */
#define INGEST_ENUM_(a, name, kind, req, child) INGEST_##a##_##name,
enum { INGEST_REPORT_FIELDS(INGEST_ENUM_, REPORT) INGEST_REPORT_NFIELDS };
enum { INGEST_SERVICE_FIELDS(INGEST_ENUM_, SERVICE) INGEST_SERVICE_NFIELDS };
enum { INGEST_HEALTH_CHECK_FIELDS(INGEST_ENUM_, HEALTH_CHECK) INGEST_HEALTH_CHECK_NFIELDS };
enum { INGEST_TCP_CHECK_FIELDS(INGEST_ENUM_, TCP_CHECK) INGEST_TCP_CHECK_NFIELDS };
enum { INGEST_CERT_CHECK_FIELDS(INGEST_ENUM_, CERT_CHECK) INGEST_CERT_CHECK_NFIELDS };
enum { INGEST_CONTAINER_FIELDS(INGEST_ENUM_, CONTAINER) INGEST_CONTAINER_NFIELDS };
enum { INGEST_PORT_FIELDS(INGEST_ENUM_, PORT) INGEST_PORT_NFIELDS };
enum { INGEST_MOUNT_FIELDS(INGEST_ENUM_, MOUNT) INGEST_MOUNT_NFIELDS };
enum { INGEST_TOP_PROCESSES_FIELDS(INGEST_ENUM_, TOP_PROCESSES) INGEST_TOP_PROCESSES_NFIELDS };
enum { INGEST_PROCESS_FIELDS(INGEST_ENUM_, PROCESS) INGEST_PROCESS_NFIELDS };
enum { INGEST_PROCESS_STATS_FIELDS(INGEST_ENUM_, PROCESS_STATS) INGEST_PROCESS_STATS_NFIELDS };

/* e.g. ingest_has(&r->service[i], INGEST_SERVICE_cpuPercent) */
#define ingest_has(obj, bit) ((((obj)->has) >> (bit)) & 1u)

/* Sizes on x86-64 are asserted in validator.c. */
struct ingest_service { uint32_t has; INGEST_SERVICE_FIELDS(INGEST_MEMBER_, _) };           /* 96 bytes */
struct ingest_health_check { uint32_t has; INGEST_HEALTH_CHECK_FIELDS(INGEST_MEMBER_, _) }; /* 56 */
struct ingest_tcp_check { uint32_t has; INGEST_TCP_CHECK_FIELDS(INGEST_MEMBER_, _) };       /* 64 */
struct ingest_cert_check { uint32_t has; INGEST_CERT_CHECK_FIELDS(INGEST_MEMBER_, _) };     /* 96 */
struct ingest_container { uint32_t has; INGEST_CONTAINER_FIELDS(INGEST_MEMBER_, _) };       /* 96 */
struct ingest_port { uint32_t has; INGEST_PORT_FIELDS(INGEST_MEMBER_, _) };                 /* 40 */
struct ingest_mount { uint32_t has; INGEST_MOUNT_FIELDS(INGEST_MEMBER_, _) };               /* 36 */
struct ingest_process { uint32_t has; INGEST_PROCESS_FIELDS(INGEST_MEMBER_, _) };           /* 56 */
struct ingest_process_stats { uint32_t has; INGEST_PROCESS_STATS_FIELDS(INGEST_MEMBER_, _) }; /* 48 */
struct ingest_top_processes { uint32_t has; INGEST_TOP_PROCESSES_FIELDS(INGEST_MEMBER_, _) }; /* 72 */

/* One entry of a container's `labels` object, in document order. */
struct ingest_label {
	struct ingest_str key;
	struct ingest_str value;
};

/*
 * ---- The schema as data ----
 * The lists above as one table per object type, for code that walks a
 * report without naming its fields: the validator, and the JSON of a
 * stored report (src/fleet/report_json.c).
 */
#define INGEST_KINDS(X) X(NUM) X(BOOL) X(STR) X(DATE) X(ARR) X(OBJ) X(LABELS)
#define INGEST_KIND_ENUM_(k) INGEST_KIND_##k,
enum ingest_kind { INGEST_KINDS(INGEST_KIND_ENUM_) INGEST_KIND_COUNT };

/* Object types, named as the `child` of the lists. `none` is the child of
 * the scalar kinds; `labels` has no fields, only its pool (struct
 * ingest_label). */
#define INGEST_TYPES(X)                                                     \
	X(none) X(report) X(service) X(health_check) X(tcp_check)           \
	X(cert_check) X(container) X(port) X(mount) X(top_processes)        \
	X(process) X(process_stats) X(labels)
#define INGEST_TYPE_ENUM_(t) INGEST_TYPE_##t,
enum ingest_type { INGEST_TYPES(INGEST_TYPE_ENUM_) INGEST_TYPE_COUNT };

struct ingest_field {
	const char *name;  /* the seed's JSON name, NUL-terminated */
	uint16_t off;      /* of the member in the type's struct (the root's:
			    * in struct ingest_report and ingest_report_head) */
	uint8_t len;       /* of name */
	uint8_t kind;      /* enum ingest_kind */
	uint8_t child;     /* enum ingest_type: ARR items, OBJ struct, else none */
	uint8_t req;       /* required */
};

/*
 * The fields of type t in the seed's order, *n of them; field i is
 * presence bit i of the object's `has` (the first member of every object
 * struct). NULL and *n = 0 for none, labels and any t out of range.
 * Static data: valid forever, readable from any thread.
 */
const struct ingest_field *ingest_schema_fields(enum ingest_type t, unsigned *n);

/*
 * The report: the root object's fields, then one pool per element type
 * (each array of the document is a range of its pool, in document order;
 * the five top-level arrays always start at 0), then the string arena.
 * Valid only after ingest_parser_finish() returned 0; on an error it holds
 * a partial, meaningless state. ingest_parser_init() resets the header
 * (through arena_len); pool items are cleared as they are taken.
 * 878,912 bytes on x86-64 (346 KiB of pools, 512 KiB of arena).
 */
#define INGEST_REPORT_HEAD_MEMBERS                                          \
	uint32_t has;                   /* INGEST_REPORT_* bits */          \
	INGEST_REPORT_FIELDS(INGEST_MEMBER_, _)                             \
	/* Items taken from each pool. */                                   \
	uint32_t n_service, n_health_check, n_tcp_check, n_cert_check;      \
	uint32_t n_container, n_port, n_label, n_mount, n_process;          \
	uint32_t arena_len;             /* bytes of arena in use */

/* The report without its pools and arena: what a stored snapshot keeps
 * whole (include/ringside/fleet_report.h). Same layout as the start of
 * struct ingest_report (asserted in src/fleet/report.c). */
struct ingest_report_head {
	INGEST_REPORT_HEAD_MEMBERS
};

struct ingest_report {
	INGEST_REPORT_HEAD_MEMBERS

	struct ingest_service service[INGEST_CAP_SERVICES];
	struct ingest_health_check health_check[INGEST_CAP_HEALTH_CHECKS];
	struct ingest_tcp_check tcp_check[INGEST_CAP_TCP_CHECKS];
	struct ingest_cert_check cert_check[INGEST_CAP_CERT_CHECKS];
	struct ingest_container container[INGEST_CAP_CONTAINERS];
	struct ingest_port port[INGEST_CAP_PORTS];
	struct ingest_label label[INGEST_CAP_LABELS];
	struct ingest_mount mount[INGEST_CAP_MOUNTS];
	struct ingest_process process[2 * INGEST_CAP_PROCESSES]; /* byCpu and byMemory */
	char arena[INGEST_CAP_ARENA];
};

/* The bytes of a report string (not NUL-terminated; s.len of them). */
static inline const char *ingest_str_ptr(const struct ingest_report *r,
					 struct ingest_str s)
{
	return r->arena + s.off;
}

#define INGEST_PATH_MAX 256     /* longer paths end in "..." */
#define INGEST_MESSAGE_MAX 128

struct ingest_error {
	uint16_t status;                /* 0 (none), 400 or 413 */
	char path[INGEST_PATH_MAX];     /* "" for the document itself, e.g. "containers[3].ports[0].privatePort",
					 * "containers[0].labels[\"com.docker.compose.service\"]"; ASCII */
	char message[INGEST_MESSAGE_MAX]; /* e.g. "must be a number", "is required" */
	const char *hint;               /* static, one sentence; NULL if none */
};

/* Private: one level of the schema being filled. 16 bytes. */
struct ingest_frame {
	void *obj;                      /* the object's struct, or the array's / labels' range */
	uint8_t type;                   /* object type; | 0x80 for an array of it */
	int8_t key;                     /* object: field of the current key, or < 0 */
	uint16_t pad;
	uint32_t n;                     /* array: items started; labels: current label */
};

#define INGEST_MAX_FRAMES 6             /* the schema nests 5 deep */
#define INGEST_NUM_XDIGITS 752          /* significant digits kept past the 19th */

/*
 * Parser state, caller-owned. Everything is private but `err`.
 * 1,672 bytes on x86-64; the hot part is the first two cache lines.
 */
struct ingest_parser {
	/* Lexer state. */
	uint8_t state, role, esc, u8_need;
	uint8_t u8_lo, u8_hi, num_state, lit_pos;
	uint8_t lit_len, vkind, vtype, sdepth;
	uint8_t udepth, nhex, date_pos, flags;
	uint32_t slen, slim;            /* current string: decoded bytes, limit */
	uint32_t sstart;                /* current string: arena offset */
	uint32_t ucs;                   /* \u escape being read; high surrogate */
	uint64_t ustack;                /* unknown containers: bit set = array */
	uint64_t mant;                  /* number: first 19 significant digits */
	int64_t nadj;                   /* number: decimal exponent from the digits */
	uint32_t nexp, ndig;            /* number: exponent digits, significant digits */
	uint16_t nx, year;              /* digits in xdig; date being checked */
	uint8_t month, dval, lit_id, in_arr; /* in_arr: the innermost container is an array */
	uint8_t u8buf[4], u8len;        /* a UTF-8 sequence split between calls */
	void *dst;                      /* where the current value goes */
	struct ingest_report *r;
	struct ingest_frame f[INGEST_MAX_FRAMES];
	struct ingest_limits lim;
	uint16_t keylen;
	char key[INGEST_CAP_KEY];       /* current key of the innermost schema object */
	struct ingest_error err;
	char xdig[INGEST_NUM_XDIGITS];
};

/*
 * Resets p and r for a new body. lim may be NULL (all defaults); it is
 * copied. O(1): clears r's header, not its pools or arena.
 */
void ingest_parser_init(struct ingest_parser *p, struct ingest_report *r,
			const struct ingest_limits *lim);

/* The limits p uses (defaults and capacities applied). */
const struct ingest_limits *ingest_parser_limits(const struct ingest_parser *p);

/*
 * Validates data[0, len), the next bytes of the body, storing what it
 * describes into the report. Returns 0 (valid so far), or a negative errno
 * with p->err set: -EINVAL (status 400) or -E2BIG (status 413). Errors are
 * sticky: later calls return the same value and read nothing.
 */
int ingest_parser_feed(struct ingest_parser *p, const char *data, size_t len);

/*
 * The body has ended. Returns 0 if it held one complete JSON object,
 * followed by nothing but whitespace, that satisfies the schema: the
 * report is then valid. Otherwise as ingest_parser_feed() (a body cut
 * short is a 400 "unexpected end of input"). Feeding after finish is an
 * error (400).
 */
int ingest_parser_finish(struct ingest_parser *p);

#endif
