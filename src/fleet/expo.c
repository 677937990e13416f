/*
 * The fleet exposition, GET /metrics/fleet; the contract is
 * include/ringside/fleet_expo.h.
 *
 * Everything is driven by two tables: the families (name, help, which
 * objects of a report they range over, which field, scale, extra labels)
 * and, per kind of object, the labels that identify one (a service by its
 * container, a TCP check by container, host, port and name ...; items of
 * arrays then by their index). A family may have several columns: fields
 * of one object written as one family with a constant label
 * (tcpEstablished, tcpListen ... as state="...").
 *
 * The cursor walks (family, slot, position), position = item * columns +
 * column, and one loop step is one visit (fleet_expo.h): a header, an
 * agent, a position, or an item whose series are all counted as dropped.
 * The budget is checked before every visit, whatever the visit writes:
 * series left out cost as much wall time as series written, and a call
 * that only drops must end like any other (it used to go on until it had
 * written a line, walking a whole family across 100 000 agents past the
 * cap). A line is written only while FLEET_EXPO_LINE_MAX bytes are free,
 * so it never needs to be taken back, and a piece ends wherever the room
 * or the budget runs out: the output does not depend on either.
 */
#include "ringside/fleet_expo.h"

#include "ringside/decimal.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "ringside/fleet_report.h"
#include "ringside/fleet_store.h"
#include "ringside/ingest.h"
#include "ringside/metrics_expo.h"

/* ---- The families ---- */

/* What a family ranges over, per agent. */
enum src {
	SRC_AGENT,     /* the snapshot itself: one item, no report needed */
	SRC_ROOT,      /* the report's root object: one item */
	SRC_STATS,     /* topProcesses.stats: one item if topProcesses is there */
	SRC_SERVICE,   /* services[] */
	SRC_HEALTH,    /* serviceHealthChecks[] */
	SRC_TCP,       /* tcpCheckResults[] */
	SRC_CERT,      /* certCheckResults[] */
	SRC_CONTAINER, /* containers[] */
	SRC_PROCESS,   /* topProcesses.byCpu[] then .byMemory[] */
	SRC_COUNT
};

/* The group (options.groups) of the families of each source. */
static const uint8_t src_group[SRC_COUNT] = {
	[SRC_AGENT] = FLEET_GROUP_HOST,
	[SRC_ROOT] = FLEET_GROUP_HOST,
	[SRC_STATS] = FLEET_GROUP_HOST,
	[SRC_SERVICE] = FLEET_GROUP_SERVICES,
	[SRC_HEALTH] = FLEET_GROUP_CHECKS,
	[SRC_TCP] = FLEET_GROUP_CHECKS,
	[SRC_CERT] = FLEET_GROUP_CHECKS,
	[SRC_CONTAINER] = FLEET_GROUP_CONTAINERS,
	[SRC_PROCESS] = FLEET_GROUP_PROCESSES,
};

/* Items of arrays, which get index="<position>": without it two services
 * of one containerName, or two identical checks, are one series twice,
 * and Prometheus drops the second as a duplicate. */
static bool src_indexed(unsigned src)
{
	return src >= SRC_SERVICE;
}

/* How a sample's value is made. */
enum val {
	V_NUM,      /* a number field * mul / div */
	V_BOOL,     /* a boolean field: 0 or 1 */
	V_TIME,     /* an RFC 3339 string field as Unix seconds (no sample if it does not parse) */
	V_INFO,     /* 1, with the family's info labels; there if any of their fields is */
	V_RECEIVED, /* the snapshot's received_ms, in seconds */
	V_STALE     /* 1 if the agent is stale, else 0 */
};

enum lkind { L_STR, L_NUM, L_LIST };

/* A label from a field of the item (L_LIST: "cpu" or "memory", by the
 * process list the item is in). `name` is written as it goes on a line,
 * ,name=" (the text tables are spelled so that no line needs a strlen). */
struct lspec {
	const char *name;
	uint8_t name_len, bit, kind;
	uint16_t off;
};

struct column {
	uint16_t off;      /* the field, in the item */
	uint8_t bit;       /* its presence bit */
	uint8_t label_len;
	const char *label; /* its constant label as written, ,state="listen"; or "" */
};

struct family {
	const char *name, *help;
	uint8_t name_len;
	uint8_t src, val;
	uint8_t ncol;         /* 0 means 1 */
	double mul, div;      /* 0 means 1 */
	struct column col[4];
	struct lspec info[2]; /* V_INFO's labels */
};

#define MIB 1048576.0
#define GIB 1073741824.0

#define OFF_(T, f) (uint16_t)offsetof(struct ingest_##T, f)
#define COL_(T, B, f, lv) {OFF_(T, f), INGEST_##B##_##f, sizeof(lv) - 1, lv}
#define STATE_(T, B, f, v) COL_(T, B, f, ",state=\"" v "\"")
#define L_(n, T, B, f, k) {"," n "=\"", sizeof(n) + 2, INGEST_##B##_##f, k, OFF_(T, f)}
#define LSTR_(n, T, B, f) L_(n, T, B, f, L_STR)
#define LNUM_(n, T, B, f) L_(n, T, B, f, L_NUM)
#define NAME_(n) .name = n, .name_len = sizeof(n) - 1

/* One family from one field: value = field * mul / div. */
#define NUM_(s, T, B, f, n, m, d, h)                                                      \
	{NAME_(n), .help = h, .src = s, .val = V_NUM, .mul = m, .div = d, .col = {COL_(T, B, f, "")}}
#define BOOL_(s, T, B, f, n, h) {NAME_(n), .help = h, .src = s, .val = V_BOOL, .col = {COL_(T, B, f, "")}}
#define HOST(f, n, m, h) NUM_(SRC_ROOT, report_head, REPORT, f, n, m, 1, h)
#define SVC(f, n, m, h) NUM_(SRC_SERVICE, service, SERVICE, f, n, m, 1, h)
#define PROC(f, n, m, h) NUM_(SRC_PROCESS, process, PROCESS, f, n, m, 1, h)

/*
 * Most useful first: a capped exposition (max_series) keeps these and
 * loses the tail. Names in base units: MiB -> bytes (* 2^20), GiB -> bytes
 * (* 2^30), ms -> seconds, days -> seconds (promtool check metrics
 * rejects a "days" unit); percentages stay _percent. Totals of a family
 * split by state are families of their own (tcp_connections beside
 * tcp_connection_states{state}), never a state="total" that sum() would
 * count twice, nor a "_total" that says counter.
 */
static const struct family fams[] = {
	{NAME_("fleet_agent_last_report_timestamp_seconds"), .src = SRC_AGENT, .val = V_RECEIVED,
	 .help = "When the agent's latest report was received, in seconds since the Unix epoch."},
	{NAME_("fleet_agent_stale"), .src = SRC_AGENT, .val = V_STALE,
	 .help = "1 if the agent has sent no report for the stale interval (its other series "
		 "then repeat its last report), else 0."},
	{NAME_("fleet_agent_info"), .src = SRC_ROOT, .val = V_INFO,
	 .info = {LSTR_("version", report_head, REPORT, agentVersion)},
	 .help = "The agent's software version (agentVersion) as a label; always 1."},
	BOOL_(SRC_ROOT, report_head, REPORT, serverHealthy, "fleet_host_server_healthy",
	      "1 if the agent reports its host healthy (serverHealthy), else 0."),
	HOST(cpuPercent, "fleet_host_cpu_percent", 0, "CPU use of the host, percent (cpuPercent)."),
	HOST(memoryUsedMb, "fleet_host_memory_used_bytes", MIB, "Memory in use on the host (memoryUsedMb)."),
	HOST(memoryTotalMb, "fleet_host_memory_total_bytes", MIB, "Memory of the host (memoryTotalMb)."),
	HOST(swapUsedMb, "fleet_host_swap_used_bytes", MIB, "Swap in use on the host (swapUsedMb)."),
	HOST(swapTotalMb, "fleet_host_swap_total_bytes", MIB, "Swap of the host (swapTotalMb)."),
	HOST(diskUsedGb, "fleet_host_disk_used_bytes", GIB, "Disk space in use on the host (diskUsedGb)."),
	HOST(diskTotalGb, "fleet_host_disk_total_bytes", GIB, "Disk space of the host (diskTotalGb)."),
	HOST(loadAvg1, "fleet_host_load1", 0, "1-minute load average of the host (loadAvg1)."),
	HOST(loadAvg5, "fleet_host_load5", 0, "5-minute load average of the host (loadAvg5)."),
	HOST(loadAvg15, "fleet_host_load15", 0, "15-minute load average of the host (loadAvg15)."),
	HOST(uptime, "fleet_host_uptime_seconds", 0, "Time since the host booted (uptime)."),
	HOST(openFds, "fleet_host_open_fds", 0, "File descriptors open on the host (openFds)."),
	HOST(maxFds, "fleet_host_max_fds", 0, "Limit of open file descriptors on the host (maxFds)."),
	HOST(tcpTotal, "fleet_host_tcp_connections", 0, "TCP connections on the host, all states (tcpTotal)."),
	{NAME_("fleet_host_tcp_connection_states"), .src = SRC_ROOT, .val = V_NUM, .ncol = 4,
	 .col = {STATE_(report_head, REPORT, tcpEstablished, "established"),
		 STATE_(report_head, REPORT, tcpListen, "listen"),
		 STATE_(report_head, REPORT, tcpTimeWait, "time_wait"),
		 STATE_(report_head, REPORT, tcpCloseWait, "close_wait")},
	 .help = "TCP connections on the host by state (tcpEstablished, tcpListen, tcpTimeWait, "
		 "tcpCloseWait)."},
	NUM_(SRC_STATS, process_stats, PROCESS_STATS, total, "fleet_host_processes", 0, 1,
	     "Processes on the host (topProcesses.stats.total)."),
	{NAME_("fleet_host_process_states"), .src = SRC_STATS, .val = V_NUM, .ncol = 4,
	 .col = {STATE_(process_stats, PROCESS_STATS, running, "running"),
		 STATE_(process_stats, PROCESS_STATS, sleeping, "sleeping"),
		 STATE_(process_stats, PROCESS_STATS, stopped, "stopped"),
		 STATE_(process_stats, PROCESS_STATS, zombie, "zombie")},
	 .help = "Processes on the host by state (topProcesses.stats)."},

	{NAME_("fleet_service_info"), .src = SRC_SERVICE, .val = V_INFO,
	 .info = {LSTR_("state", service, SERVICE, state), LSTR_("health", service, SERVICE, health)},
	 .help = "A service's container state and health as labels; always 1."},
	SVC(cpuPercent, "fleet_service_cpu_percent", 0, "CPU use of a service, percent (cpuPercent)."),
	SVC(memoryUsedMb, "fleet_service_memory_used_bytes", MIB, "Memory a service uses (memoryUsedMb)."),
	SVC(memoryLimitMb, "fleet_service_memory_limit_bytes", MIB, "Memory limit of a service (memoryLimitMb)."),
	SVC(networkRxMb, "fleet_service_network_receive_bytes", MIB, "Network bytes a service received (networkRxMb)."),
	SVC(networkTxMb, "fleet_service_network_transmit_bytes", MIB, "Network bytes a service sent (networkTxMb)."),
	SVC(blockReadMb, "fleet_service_block_read_bytes", MIB, "Block device bytes a service read (blockReadMb)."),
	SVC(blockWriteMb, "fleet_service_block_write_bytes", MIB, "Block device bytes a service wrote (blockWriteMb)."),
	SVC(restartCount, "fleet_service_restarts", 0, "Times a service's container restarted (restartCount)."),

	BOOL_(SRC_HEALTH, health_check, HEALTH_CHECK, success, "fleet_health_check_success",
	      "1 if a service's health check passed, else 0."),
	NUM_(SRC_HEALTH, health_check, HEALTH_CHECK, statusCode, "fleet_health_check_status_code", 0, 1,
	     "HTTP status of a service's health check (statusCode)."),
	NUM_(SRC_HEALTH, health_check, HEALTH_CHECK, durationMs, "fleet_health_check_duration_seconds", 0,
	     1000, "Duration of a service's health check (durationMs)."),

	BOOL_(SRC_TCP, tcp_check, TCP_CHECK, success, "fleet_tcp_check_success",
	      "1 if a TCP connect check passed, else 0."),
	NUM_(SRC_TCP, tcp_check, TCP_CHECK, durationMs, "fleet_tcp_check_duration_seconds", 0, 1000,
	     "Duration of a TCP connect check (durationMs)."),

	BOOL_(SRC_CERT, cert_check, CERT_CHECK, success, "fleet_cert_check_success",
	      "1 if a TLS certificate check passed, else 0."),
	NUM_(SRC_CERT, cert_check, CERT_CHECK, durationMs, "fleet_cert_check_duration_seconds", 0, 1000,
	     "Duration of a TLS certificate check (durationMs)."),
	NUM_(SRC_CERT, cert_check, CERT_CHECK, daysUntilExpiry, "fleet_cert_check_expires_in_seconds",
	     86400, 1, "Time until the certificate expires (daysUntilExpiry)."),
	{NAME_("fleet_cert_check_expiry_timestamp_seconds"), .src = SRC_CERT, .val = V_TIME,
	 .col = {COL_(cert_check, CERT_CHECK, expiresAt, "")},
	 .help = "When the certificate expires (expiresAt), in seconds since the Unix epoch."},

	{NAME_("fleet_container_info"), .src = SRC_CONTAINER, .val = V_INFO,
	 .info = {LSTR_("image", container, CONTAINER, image), LSTR_("state", container, CONTAINER, state)},
	 .help = "A container's image and state as labels; always 1."},
	NUM_(SRC_CONTAINER, container, CONTAINER, created, "fleet_container_created_timestamp_seconds", 0,
	     1, "When a container was created (created), in seconds since the Unix epoch."),

	PROC(cpuPercent, "fleet_process_cpu_percent", 0,
	     "CPU use of a top process, percent (topProcesses.byCpu and .byMemory, as list)."),
	PROC(memoryMb, "fleet_process_memory_bytes", MIB, "Memory of a top process (memoryMb)."),
	PROC(threads, "fleet_process_threads", 0, "Threads of a top process (threads)."),
};
#define NFAMS (sizeof fams / sizeof fams[0])

/* The labels that tell an item from the others of its agent, after
 * organization_id and agent_id; NULL-named after the last. */
static const struct lspec src_labels[SRC_COUNT][4] = {
	[SRC_SERVICE] = {LSTR_("container", service, SERVICE, containerName)},
	[SRC_HEALTH] = {LSTR_("container", health_check, HEALTH_CHECK, containerName),
			LSTR_("url", health_check, HEALTH_CHECK, healthCheckUrl)},
	[SRC_TCP] = {LSTR_("container", tcp_check, TCP_CHECK, containerName),
		     LSTR_("host", tcp_check, TCP_CHECK, host), LNUM_("port", tcp_check, TCP_CHECK, port),
		     LSTR_("name", tcp_check, TCP_CHECK, name)},
	[SRC_CERT] = {LSTR_("container", cert_check, CERT_CHECK, containerName),
		      LSTR_("host", cert_check, CERT_CHECK, host), LNUM_("port", cert_check, CERT_CHECK, port),
		      LSTR_("name", cert_check, CERT_CHECK, name)},
	[SRC_CONTAINER] = {LSTR_("container", container, CONTAINER, name),
			   LSTR_("container_id", container, CONTAINER, id)},
	[SRC_PROCESS] = {LNUM_("pid", process, PROCESS, pid), LSTR_("process", process, PROCESS, name),
			 {",list=\"", 7, 0, L_LIST, 0}},
};

static const char *const drop_reason[FLEET_EXPO_DROPS] = {
	[FLEET_EXPO_DROP_LABEL_TOO_LONG] = "label_too_long",
	[FLEET_EXPO_DROP_MAX_SERIES] = "max_series",
	[FLEET_EXPO_DROP_INVALID_ID] = "invalid_id",
};
#define DROPPED_NAME "fleet_series_dropped"
#define DROPPED_HELP                                                                      \
	"Series this exposition left out, by reason: label_too_long (their own label values " \
	"take over 1024 bytes escaped), max_series (past the cardinality cap), invalid_id "    \
	"(an organization or agent id that is not UTF-8)."

/* ---- Writing (the caller guarantees FLEET_EXPO_LINE_MAX bytes of room) ---- */

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static char *put_s(char *p, const char *s)
{
	return put(p, s, strlen(s));
}

static bool special(char ch)
{
	return ch == '\\' || ch == '"' || ch == '\n';
}

/* Whether one of the eight bytes of w is \\, " or a newline (a byte of
 * w ^ c is zero where w has c; "Bit Twiddling Hacks", "Determine if a
 * word has a zero byte"). */
static bool word_has_special(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101u, highs = ones << 7;
	uint64_t a = w ^ (ones * '\\'), b = w ^ (ones * '"'), c = w ^ (ones * '\n');

	return (((a - ones) & ~a) | ((b - ones) & ~b) | ((c - ones) & ~c)) & highs;
}

/* A label value: \\ \" and newline escaped; NUL and other bytes as they
 * are (the text formats have no other escapes, and accept them). Eight
 * bytes at a time while there is nothing to escape (most label values). */
static char *put_esc(char *p, const char *s, size_t n)
{
	size_t i = 0;

	for (uint64_t w; i + 8 <= n; i += 8, p += 8) {
		memcpy(&w, s + i, sizeof w);
		if (word_has_special(w))
			break;
		memcpy(p, &w, sizeof w);
	}
	for (; i < n; i++) {
		char ch = s[i];

		if (special(ch)) {
			*p++ = '\\';
			ch = ch == '\n' ? 'n' : ch;
		}
		*p++ = ch;
	}
	return p;
}

static size_t esc_len(const char *s, size_t n)
{
	size_t e = n, i = 0;

	for (uint64_t w; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, sizeof w);
		if (word_has_special(w))
			for (size_t k = 0; k < 8; k++)
				e += special(s[i + k]);
	}
	for (; i < n; i++)
		e += special(s[i]);
	return e;
}

/* ---- RFC 3339 date-times (expiresAt) ---- */

static bool digits(const char *s, size_t n, unsigned *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)(s[i] - '0') > 9)
			return false;
		*v = *v * 10 + (unsigned)(s[i] - '0');
	}
	return true;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar
 * (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

/*
 * RFC 3339 5.6 date-time: YYYY-MM-DD "T" hh:mm:ss [.fraction] ("Z" / +hh:mm /
 * -hh:mm), T and Z in either case; a leap second (:60) reads as the next
 * second. Fraction digits past the 9th are ignored. The seed gives
 * expiresAt no format, so anything else is no sample rather than an error.
 */
static bool parse_time(const char *s, size_t n, int64_t *sec, uint32_t *nsec)
{
	static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, se, oh = 0, om = 0;
	size_t i = 19;
	int64_t off = 0;

	*nsec = 0;
	if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
	    s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
		return false;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	if (s[i] == '.') {
		size_t f0 = ++i;

		while (i < n && (unsigned)(s[i] - '0') <= 9) {
			if (i - f0 < 9)
				*nsec = *nsec * 10 + (uint32_t)(s[i] - '0');
			i++;
		}
		if (i == f0)
			return false;
		for (size_t z = i - f0; z < 9; z++) /* ".5" is 500000000 ns */
			*nsec *= 10;
	}
	if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
		off = 0;
	} else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2, &oh) &&
		   s[i + 3] == ':' && digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
		off = (s[i] == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
	} else {
		return false;
	}
	*sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
	return true;
}

/* ---- UTF-8 (the ids; report strings were checked by the validator) ---- */

static bool utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], len, cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			len = 2, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			len = 3, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			len = 4, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if (n - i < len)
			return false;
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* ---- Selection ---- */

uint32_t fleet_agent_shard(const char *org, size_t org_len, const char *agent, size_t agent_len,
			   uint32_t shards)
{
	const uint64_t prime = 1099511628211u;
	uint64_t h = 14695981039346656037u, b = 0, j = 0;

	for (size_t i = 0; i < org_len; i++)
		h = (h ^ (unsigned char)org[i]) * prime;
	h *= prime; /* the 0 byte between the ids: ("ab", "c") is not ("a", "bc") */
	for (size_t i = 0; i < agent_len; i++)
		h = (h ^ (unsigned char)agent[i]) * prime;
	/*
	 * Jump consistent hash, in integers so that no floating-point mode can
	 * change a shard. (b + 1) << 31 < 2^63 since b < shards <= 2^32 - 1.
	 * The LCG step also spreads FNV's weak low bits: j depends on the high
	 * half of h.
	 */
	while (j < shards) {
		b = j;
		h = h * 2862933555777941757u + 1;
		j = ((b + 1) << 31) / ((h >> 33) + 1);
	}
	return (uint32_t)b;
}

int fleet_expo_parse_groups(const char *s, size_t n, uint32_t *groups, const char **bad,
			    size_t *bad_len)
{
	static const struct {
		const char *name;
		uint8_t len;
		uint8_t bits;
	} names[] = {
		{"host", 4, FLEET_GROUP_HOST},
		{"services", 8, FLEET_GROUP_SERVICES},
		{"checks", 6, FLEET_GROUP_CHECKS},
		{"containers", 10, FLEET_GROUP_CONTAINERS},
		{"processes", 9, FLEET_GROUP_PROCESSES},
		{"all", 3, FLEET_GROUP_ALL},
	};
	uint32_t g = FLEET_GROUP_HOST;

	for (size_t i = 0; n > 0;) { /* n == 0: host only */
		const char *name = s + i, *comma = memchr(name, ',', n - i);
		size_t len = comma ? (size_t)(comma - name) : n - i, k = 0;

		while (k < sizeof names / sizeof names[0] &&
		       (len != names[k].len || memcmp(name, names[k].name, len) != 0))
			k++;
		if (k == sizeof names / sizeof names[0]) {
			if (bad)
				*bad = name;
			if (bad_len)
				*bad_len = len;
			return -1;
		}
		g |= names[k].bits;
		if (!comma)
			break;
		i += len + 1; /* a trailing comma leaves an empty name: refused */
	}
	*groups = g;
	return 0;
}

int fleet_expo_select_org(struct fleet_expo_options *o, const char *org, size_t len)
{
	if (len == 0 || len > FLEET_ID_MAX)
		return -EINVAL;
	memcpy(o->org, org, len);
	o->org[len] = '\0';
	o->org_len = (uint8_t)len;
	return 0;
}

int fleet_expo_select_shard(struct fleet_expo_options *o, uint32_t shard, uint32_t shards)
{
	if (shards == 0 || shard >= shards)
		return -EINVAL;
	o->shard = shard;
	o->shards = shards;
	return 0;
}

static bool selected(const struct fleet_expo_options *o, const struct fleet_snapshot *sn)
{
	/* Lengths first: org_len may be anything the caller set, org only has
	 * FLEET_ID_MAX + 1 bytes, and an agent's org_len is <= FLEET_ID_MAX. */
	if (o->org_len && (sn->org_len != o->org_len || memcmp(sn->org, o->org, o->org_len) != 0))
		return false;
	return !o->shards ||
	       fleet_agent_shard(sn->org, sn->org_len, sn->agent, sn->agent_len, o->shards) == o->shard;
}

/* ---- Agents and their items ---- */

/* The agent at the cursor's slot, as far as this call has looked at it,
 * for the cursor's family. */
struct agent {
	uint32_t slot;                     /* UINT32_MAX: none loaded */
	uint32_t npos;                     /* positions (items x columns) it has in the family */
	const struct fleet_snapshot *snap; /* NULL: none, not selected, or older than ttl_ms */
	struct fleet_report v;
	bool viewed; /* v is valid */
	bool stale;
	bool bad_id; /* set when npos > 0 */
	size_t plen; /* of prefix; 0 until a line needs it */
	char prefix[64 + 4 * FLEET_ID_MAX]; /* organization_id="...",agent_id="..." */
};

static uint32_t item_count(const struct family *f, const struct agent *a)
{
	const struct ingest_report_head *h = a->v.head;
	bool top;

	if (!a->snap)
		return 0;
	if (f->src == SRC_AGENT)
		return 1;
	if (!a->viewed)
		return 0;
	top = ingest_has(h, INGEST_REPORT_topProcesses);
	switch (f->src) {
	case SRC_ROOT:
		return 1;
	case SRC_STATS:
		return top;
	case SRC_SERVICE:
		return h->services.count;
	case SRC_HEALTH:
		return h->serviceHealthChecks.count;
	case SRC_TCP:
		return h->tcpCheckResults.count;
	case SRC_CERT:
		return h->certCheckResults.count;
	case SRC_CONTAINER:
		return h->containers.count;
	case SRC_PROCESS:
		return top ? h->topProcesses.byCpu.count + h->topProcesses.byMemory.count : 0;
	}
	return 0;
}

/* Loads slot's agent for family f: whether it is selected and fresh, and
 * how many positions it has; one visit whatever it finds. */
static void agent_load(struct agent *a, struct fleet_store *s, uint32_t worker, uint32_t slot,
		       const struct fleet_expo_options *o, const struct family *f, uint64_t links)
{
	const struct fleet_snapshot *sn = fleet_snapshot_at(s, worker, slot);

	a->slot = slot;
	a->npos = 0;
	a->plen = 0;
	a->snap = NULL;
	a->viewed = a->bad_id = false;
	/* Linked after this family's pass began: it may have been met in its
	 * old slot already (fleet_store.h, fleet_snapshot_at). */
	if (!sn || sn->born > links)
		return;
	int64_t age = o->now_ms - sn->received_ms;

	if ((o->ttl_ms > 0 && age >= o->ttl_ms) || !selected(o, sn))
		return;
	a->snap = sn;
	a->stale = o->stale_ms > 0 && age >= o->stale_ms;
	/* The agent's own families need only the snapshot's header. */
	a->viewed = f->src != SRC_AGENT && fleet_report_view(&a->v, sn->data, sn->len) == 0;
	a->npos = item_count(f, a) * (f->ncol ? f->ncol : 1u);
	if (a->npos)
		a->bad_id = !utf8_valid((const unsigned char *)sn->org, sn->org_len) ||
			    !utf8_valid((const unsigned char *)sn->agent, sn->agent_len);
}

static void agent_prefix(struct agent *a)
{
	const struct fleet_snapshot *sn = a->snap;
	char *p = a->prefix;

	p = put_s(p, "organization_id=\"");
	p = put_esc(p, sn->org, sn->org_len);
	p = put_s(p, "\",agent_id=\"");
	p = put_esc(p, sn->agent, sn->agent_len);
	*p++ = '"';
	a->plen = (size_t)(p - a->prefix);
	assert(a->plen <= sizeof a->prefix);
}

/* Item j of the family's objects (j < item_count); *list for processes;
 * *index its position in its array (in its list for processes). */
static const unsigned char *item_at(const struct family *f, const struct agent *a, uint32_t j,
				    const char **list, uint32_t *index)
{
	const struct ingest_report_head *h = a->v.head;
	const struct fleet_report *v = &a->v;
	const void *it = NULL;

	*index = j;
	switch (f->src) {
	case SRC_AGENT:
		break;
	case SRC_ROOT:
		it = h;
		break;
	case SRC_STATS:
		it = &h->topProcesses.stats;
		break;
	case SRC_SERVICE:
		it = &v->service[h->services.first + j];
		break;
	case SRC_HEALTH:
		it = &v->health_check[h->serviceHealthChecks.first + j];
		break;
	case SRC_TCP:
		it = &v->tcp_check[h->tcpCheckResults.first + j];
		break;
	case SRC_CERT:
		it = &v->cert_check[h->certCheckResults.first + j];
		break;
	case SRC_CONTAINER:
		it = &v->container[h->containers.first + j];
		break;
	case SRC_PROCESS: {
		struct ingest_range cpu = h->topProcesses.byCpu;

		*list = j < cpu.count ? "cpu" : "memory";
		*index = j < cpu.count ? j : j - cpu.count;
		it = &v->process[j < cpu.count ? cpu.first + j : h->topProcesses.byMemory.first + *index];
		break;
	}
	}
	return it;
}

/* Every object of the report starts with its uint32_t `has`. */
static bool has(const unsigned char *item, unsigned bit)
{
	uint32_t h;

	memcpy(&h, item, sizeof h);
	return h >> bit & 1u;
}

static double num_at(const unsigned char *item, uint16_t off)
{
	double d;

	memcpy(&d, item + off, sizeof d);
	return d;
}

static struct ingest_str str_at(const unsigned char *item, uint16_t off)
{
	struct ingest_str s;

	memcpy(&s, item + off, sizeof s);
	return s;
}

/*
 * Whether position (item, column k) has a sample: exactly when value()
 * has one to write, decided without formatting anything, since series
 * left out are counted by this alone (and must count what an uncapped
 * exposition would have written). item is NULL for SRC_AGENT.
 */
static bool present(const struct family *f, const unsigned char *item, const struct fleet_report *v,
		    unsigned k)
{
	const struct column *col = &f->col[k];

	switch (f->val) {
	case V_NUM:
	case V_BOOL:
		return has(item, col->bit);
	case V_TIME: {
		struct ingest_str st;
		int64_t sec;
		uint32_t ns;

		if (!has(item, col->bit))
			return false;
		st = str_at(item, col->off);
		return parse_time(fleet_str(v, st), st.len, &sec, &ns);
	}
	case V_INFO: /* any of its labels' fields, even empty */
		for (const struct lspec *l = f->info; l < f->info + 2 && l->name; l++)
			if (has(item, l->bit))
				return true;
		return false;
	}
	return true; /* V_RECEIVED, V_STALE */
}

/* The value of position (item, column k) into val, which present() says
 * there is; returns its length. */
static size_t value(const struct family *f, const struct agent *a, const unsigned char *item,
		    unsigned k, char val[40])
{
	const struct column *col = &f->col[k];

	switch (f->val) {
	case V_NUM: {
		double d = num_at(item, col->off);

		if (f->mul)
			d *= f->mul;
		if (f->div)
			d /= f->div;
		return expo_format_double(val, d);
	}
	case V_BOOL:
		val[0] = item[col->off] ? '1' : '0';
		return 1;
	case V_TIME: {
		struct ingest_str st = str_at(item, col->off);
		int64_t sec = 0;
		uint64_t mag;
		uint32_t ns = 0;
		bool ok = parse_time(fleet_str(&a->v, st), st.len, &sec, &ns);

		assert(ok); /* present() */
		(void)ok;
		mag = sec < 0 ? 0 - (uint64_t)sec : (uint64_t)sec;
		if (sec < 0 && ns) { /* -3 s + 0.25 s is -2.75 s */
			mag--;
			ns = 1000000000 - ns;
		}
		return expo_format_fixed(val, sec < 0, mag, ns, 9);
	}
	case V_INFO:
		val[0] = '1';
		return 1;
	case V_RECEIVED: {
		int64_t ms = a->snap->received_ms;
		uint64_t mag = ms < 0 ? 0 - (uint64_t)ms : (uint64_t)ms;

		return expo_format_fixed(val, ms < 0, mag / 1000, mag % 1000, 3);
	}
	case V_STALE:
		val[0] = a->stale ? '1' : '0';
		return 1;
	}
	return 0;
}

/* Label l's value in item, not escaped (NULL if the item lacks the
 * field; an empty one is left out too, being no label to Prometheus);
 * a number is formatted into num. */
static const char *label_value(const struct lspec *l, const unsigned char *item,
			       const struct fleet_report *v, const char *list, char num[33], size_t *n)
{
	struct ingest_str st;

	if (l->kind == L_LIST) {
		*n = strlen(list);
		return list;
	}
	if (!has(item, l->bit))
		return NULL;
	if (l->kind == L_NUM) {
		*n = expo_format_double(num, num_at(item, l->off));
		return num;
	}
	st = str_at(item, l->off);
	*n = st.len;
	return fleet_str(v, st);
}

/*
 * Whether the item's own label values (those of its kind and the
 * family's info labels; not the ids, not index) take more than
 * FLEET_EXPO_LABEL_MAX bytes escaped. A bound first (a string's bytes
 * twice, 32 for a number), so that the usual short labels cost a few
 * loads; exact past it, stopping as soon as it is over.
 */
static bool too_long(const struct family *f, const unsigned char *item, const struct fleet_report *v,
		     const char *list)
{
	const struct lspec *const range[2][2] = {{src_labels[f->src], src_labels[f->src] + 4},
						 {f->info, f->info + 2}};
	size_t bound = 0, exact = 0;

	for (int r = 0; r < 2; r++)
		for (const struct lspec *l = range[r][0]; l < range[r][1] && l->name; l++) {
			if (l->kind == L_LIST)
				bound += sizeof "memory" - 1;
			else if (has(item, l->bit))
				bound += l->kind == L_NUM ? 32 : 2 * (size_t)str_at(item, l->off).len;
		}
	if (bound <= FLEET_EXPO_LABEL_MAX)
		return false;
	for (int r = 0; r < 2; r++)
		for (const struct lspec *l = range[r][0]; l < range[r][1] && l->name; l++) {
			char num[33];
			size_t n;
			const char *s = label_value(l, item, v, list, num, &n);

			if (!s)
				continue;
			exact += l->kind != L_STR || n > FLEET_EXPO_LABEL_MAX ? n : esc_len(s, n);
			if (exact > FLEET_EXPO_LABEL_MAX)
				return true;
		}
	return false;
}

/* A label of a series, its value not yet escaped. */
struct lv {
	const struct lspec *l;
	const char *s;
	size_t n;
	char num[33];
};

/* Appends the labels of lspecs [l, end) that item has, non-empty, to
 * ls[*n]. */
static void add_labels(struct lv *ls, unsigned *n, const struct lspec *l, const struct lspec *end,
		       const unsigned char *item, const struct fleet_report *v, const char *list)
{
	for (; l < end && l->name; l++) {
		struct lv *x = &ls[*n];

		x->l = l;
		x->s = label_value(l, item, v, list, x->num, &x->n);
		*n += x->s && x->n > 0;
	}
}

static char *put_labels(char *q, const struct lv *ls, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		q = put(q, ls[i].l->name, ls[i].l->name_len); /* ,name=" */
		q = put_esc(q, ls[i].s, ls[i].n);
		*q++ = '"';
	}
	return q;
}

static void next_agent(struct fleet_expo_cursor *c)
{
	c->slot++;
	c->item = 0;
}

/*
 * Position c->item of agent a (whose id is valid) in family f, with the
 * cap not reached: writes its line at p, or counts it as label_too_long,
 * or nothing if the report lacks the field. Returns the bytes written.
 */
static size_t series(struct fleet_expo_cursor *c, const struct family *f, struct agent *a, char *p)
{
	unsigned ncol = f->ncol ? f->ncol : 1, k = c->item % ncol;
	const struct column *col = &f->col[k];
	const char *list = NULL;
	uint32_t index;
	const unsigned char *item = item_at(f, a, c->item / ncol, &list, &index);
	char val[40];
	size_t vlen;

	if (!present(f, item, &a->v, k))
		return 0;
	/* Labels once, for both the bound and the line: too_long() decides
	 * the same from the item alone, for series left out unwritten. */
	struct lv ls[6];
	unsigned nsrc = 0, nl;
	size_t budget = 0;

	add_labels(ls, &nsrc, src_labels[f->src], src_labels[f->src] + 4, item, &a->v, list);
	nl = nsrc;
	add_labels(ls, &nl, f->info, f->info + 2, item, &a->v, list);
	for (unsigned i = 0; i < nl; i++)
		budget += 2 * ls[i].n; /* at most what they take escaped */
	if (budget > FLEET_EXPO_LABEL_MAX) {
		budget = 0;
		for (unsigned i = 0; i < nl && budget <= FLEET_EXPO_LABEL_MAX; i++)
			budget += ls[i].n > FLEET_EXPO_LABEL_MAX ? ls[i].n : esc_len(ls[i].s, ls[i].n);
		if (budget > FLEET_EXPO_LABEL_MAX) {
			c->dropped[FLEET_EXPO_DROP_LABEL_TOO_LONG]++;
			return 0;
		}
	}
	vlen = value(f, a, item, k, val);
	if (!a->plen)
		agent_prefix(a);

	/*
	 * The longest line: name (< 64) { prefix (<= 64 + 4 * FLEET_ID_MAX)
	 * up to six labels' ,name=" and " (< 16 each) and their values
	 * (<= FLEET_EXPO_LABEL_MAX), ,index="..." (< 20), ,state="..." (< 32)
	 * } value (<= 32) \n: under 1 600 bytes.
	 */
	char *q = put(p, f->name, f->name_len);

	*q++ = '{';
	q = put(q, a->prefix, a->plen);
	q = put_labels(q, ls, nsrc);
	if (src_indexed(f->src)) {
		q = put(q, ",index=\"", 8);
		if (index < 10) /* most arrays are short */
			*q++ = (char)('0' + index);
		else
			q = decimal_u64(q, index);
		*q++ = '"';
	}
	q = put_labels(q, ls + nsrc, nl - nsrc);
	if (col->label_len)
		q = put(q, col->label, col->label_len);
	*q++ = '}';
	*q++ = ' ';
	q = put(q, val, vlen);
	*q++ = '\n';
	assert((size_t)(q - p) <= FLEET_EXPO_LINE_MAX);
	c->series++;
	return (size_t)(q - p);
}

/*
 * Agent a's positions from c->item on in family f when all of them are
 * left out: its id is not UTF-8, or the cap is reached. Counts them an
 * item at a time, all the item's columns at once and nothing formatted,
 * for at most `room` items (the visits left); returns the items counted,
 * >= 1 (c->item < a->npos). Moves on to the next agent after the last.
 * The reasons are those series() and the uncapped exposition would give.
 */
static uint32_t drop_rest(struct fleet_expo_cursor *c, const struct family *f, struct agent *a,
			  uint32_t room)
{
	unsigned ncol = f->ncol ? f->ncol : 1;
	uint32_t used = 0;

	assert(c->item < a->npos && room > 0);
	while (c->item < a->npos && used < room) {
		uint32_t j = c->item / ncol, index;
		const char *list = NULL;
		const unsigned char *item = item_at(f, a, j, &list, &index);
		uint64_t n = 0;

		for (unsigned k = c->item % ncol; k < ncol; k++)
			n += present(f, item, &a->v, k);
		if (n) {
			enum fleet_expo_drop why = FLEET_EXPO_DROP_MAX_SERIES;

			if (a->bad_id)
				why = FLEET_EXPO_DROP_INVALID_ID;
			else if (too_long(f, item, &a->v, list))
				why = FLEET_EXPO_DROP_LABEL_TOO_LONG;
			c->dropped[why] += n;
		}
		c->item = (j + 1) * ncol;
		used++;
	}
	if (c->item >= a->npos)
		next_agent(c);
	return used;
}

static size_t header(char *p, const char *name, const char *help)
{
	char *q = put_s(p, "# HELP ");

	q = put_s(q, name);
	*q++ = ' ';
	q = put_s(q, help); /* constant, nothing to escape (tested) */
	q = put_s(q, "\n# TYPE ");
	q = put_s(q, name);
	q = put_s(q, " gauge\n");
	assert((size_t)(q - p) <= FLEET_EXPO_LINE_MAX);
	return (size_t)(q - p);
}

/* Line c->item of the end: the dropped family, then "# EOF" (OpenMetrics). */
static size_t end_line(struct fleet_expo_cursor *c, char *p)
{
	uint32_t i = c->item++;
	char *q = p;

	if (i == 0)
		return header(p, DROPPED_NAME, DROPPED_HELP);
	if (i <= FLEET_EXPO_DROPS) {
		q = put_s(q, DROPPED_NAME "{reason=\"");
		q = put_s(q, drop_reason[i - 1]);
		q = put_s(q, "\"} ");
		q = decimal_u64(q, c->dropped[i - 1]);
		*q++ = '\n';
		if (i == FLEET_EXPO_DROPS && c->o.format != EXPO_OPENMETRICS_100)
			c->done = true;
		return (size_t)(q - p);
	}
	/* [OM] "The exposition MUST end with an EOF" line. */
	c->done = true;
	return (size_t)(put_s(q, "# EOF\n") - p);
}

/* ---- The walk ---- */

void fleet_expo_begin(struct fleet_expo_cursor *c, const struct fleet_expo_options *o)
{
	memset(c, 0, sizeof *c);
	c->o = *o;
	c->o.groups |= FLEET_GROUP_HOST;
}

static void next_family(struct fleet_expo_cursor *c, struct agent *a)
{
	c->family++;
	c->slot = c->item = 0;
	c->header = false;
	a->slot = UINT32_MAX; /* its positions were counted for the last family */
}

size_t fleet_expo_next(struct fleet_expo_cursor *c, struct fleet_store *s, uint32_t worker,
		       char *buf, size_t cap)
{
	struct agent a = {.slot = UINT32_MAX};
	size_t len = 0;
	uint32_t visits = 0;

	assert(cap >= FLEET_EXPO_MIN_CAP);
	/* The budget holds whatever the visits write, nothing included: see
	 * the top of this file. */
	while (!c->done && visits < FLEET_EXPO_STEP_BUDGET && cap - len >= FLEET_EXPO_LINE_MAX) {
		visits++;
		if (c->family == NFAMS) {
			len += end_line(c, buf + len);
			continue;
		}
		const struct family *f = &fams[c->family];

		if (!c->header) {
			if (src_group[f->src] & c->o.groups) {
				len += header(buf + len, f->name, f->help);
				c->header = true;
				c->links = fleet_links(s);
			} else {
				next_family(c, &a);
			}
		} else if (c->slot >= fleet_agent_slots(s)) {
			next_family(c, &a);
		} else if (a.slot != c->slot) {
			agent_load(&a, s, worker, c->slot, &c->o, f, c->links);
			if (c->item >= a.npos) /* none; or a new report with fewer items */
				next_agent(c);
		} else if (a.bad_id || (c->o.max_series && c->series >= c->o.max_series)) {
			visits += drop_rest(c, f, &a, FLEET_EXPO_STEP_BUDGET - visits + 1) - 1;
		} else {
			len += series(c, f, &a, buf + len);
			if (++c->item >= a.npos)
				next_agent(c);
		}
	}
	c->visits = visits;
	return len;
}
