#include "ringside/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ringside/ingest_limits.h"
#include "ringside/log.h"

enum opt_kind { OPT_LISTEN, OPT_COUNT, OPT_SIZE, OPT_DURATION, OPT_CHOICE, OPT_STRING, OPT_RATE, OPT_INGEST_LIMITS };

/* Which command a flag belongs to. */
enum opt_for { FOR_ALL, FOR_SERVE, FOR_TOKEN };

struct option_def {
	const char *flag;  /* without the leading "--" */
	enum opt_kind kind;
	size_t offset;     /* into struct config */
	uint64_t min, max; /* COUNT, SIZE (bytes), DURATION (ms), STRING (length) */
	const char *def;   /* default, in the flag's own syntax */
	const char *help;
	enum opt_for used_by;
	const char *const *choices; /* CHOICE: the names, in enum order, NULL-ended */
};

#define CFG(field) offsetof(struct config, field)
#define MIB (1024ull * 1024ull)

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const cpu_affinity_names[] = {"off", "auto", NULL};
static const char *const boolean_names[] = {"false", "true", NULL};
static const char *const journal_sync_names[] = {"none", "fdatasync", NULL};

/* The one table of settings: parsing, defaults, env names and --help all
 * come from it, so they cannot drift apart. */
static const struct option_def options[] = {
	{"listen", OPT_LISTEN, CFG(listen), 0, 0, "127.0.0.1:3000",
	 "address and port to serve on", FOR_SERVE, NULL},
	{"metrics-listen", OPT_LISTEN, CFG(metrics_listen), 0, 0, "",
	 "if set, /metrics, /metrics/fleet and /metrics/api/* are served only here", FOR_SERVE, NULL},
	{"tls-cert", OPT_STRING, CFG(tls_cert), 0, CONFIG_PATH_MAX, "",
	 "PEM certificate chain (leaf first): with --tls-key, --listen serves HTTPS (TLS 1.2); "
	 "both are read again on SIGHUP", FOR_SERVE, NULL},
	{"tls-key", OPT_STRING, CFG(tls_key), 0, CONFIG_PATH_MAX, "",
	 "PEM private key of --tls-cert: RSA of 2048 bits or more, or EC P-256", FOR_SERVE, NULL},
	{"metrics-tls", OPT_CHOICE, CFG(metrics_tls), 0, 0, "false",
	 "true: --metrics-listen serves HTTPS too, with --tls-cert and --tls-key", FOR_SERVE,
	 boolean_names},
	{"workers", OPT_COUNT, CFG(workers), 1, 1024, "auto",
	 "worker threads (auto: one per online CPU)", FOR_SERVE, NULL},
	{"cpu-affinity", OPT_CHOICE, CFG(cpu_affinity), 0, 0, "off",
	 "off: the scheduler places the workers; auto: worker i pinned to the i-th CPU "
	 "(for a machine the server has to itself)", FOR_SERVE, cpu_affinity_names},
	{"max-connections", OPT_COUNT, CFG(max_connections), 1, 1u << 22, "16384",
	 "open connections, all workers together", FOR_SERVE, NULL},
	{"max-header-bytes", OPT_SIZE, CFG(max_header_bytes), 1024, 1 * MIB, "16KiB",
	 "request line and header fields; over it: 431", FOR_SERVE, NULL},
	{"max-body-bytes", OPT_SIZE, CFG(max_body_bytes), 0, 1024 * MIB, "1MiB",
	 "request body; over it: 413", FOR_SERVE, NULL},
	{"header-timeout", OPT_DURATION, CFG(header_timeout_ms), 100, 3600000, "10s",
	 "time to receive a whole request head; then 408", FOR_SERVE, NULL},
	{"body-timeout", OPT_DURATION, CFG(body_timeout_ms), 100, 3600000, "30s",
	 "longest wait for more body bytes; then 408", FOR_SERVE, NULL},
	{"body-min-rate", OPT_SIZE, CFG(body_min_rate), 0, 1024 * MIB, "1KiB",
	 "bytes per second a request body must average after the grace; slower: 408 (0: off)",
	 FOR_SERVE, NULL},
	{"body-rate-grace", OPT_DURATION, CFG(body_rate_grace_ms), 0, 3600000, "5s",
	 "time a body is given before --body-min-rate counts", FOR_SERVE, NULL},
	{"keepalive-timeout", OPT_DURATION, CFG(keepalive_timeout_ms), 100, 3600000, "60s",
	 "idle time before a keep-alive connection is closed", FOR_SERVE, NULL},
	{"shutdown-timeout", OPT_DURATION, CFG(shutdown_timeout_ms), 0, 3600000, "5s",
	 "on SIGTERM/SIGINT, time to finish in-flight requests", FOR_SERVE, NULL},
	{"sse-interval", OPT_DURATION, CFG(sse_interval_ms), 10, 3600000, "1000ms",
	 "interval between Server-Sent Events of /metrics/api/metrics/sse", FOR_SERVE, NULL},
	{"log-level", OPT_CHOICE, CFG(log_level), 0, 0, "info",
	 "error, warn, info or debug", FOR_SERVE, log_level_names},
	{"access-log", OPT_STRING, CFG(access_log), 0, CONFIG_PATH_MAX, "",
	 "one logfmt line per request to this file (reopened on SIGHUP), or - for stderr",
	 FOR_SERVE, NULL},
	{"ingest-rate-limit", OPT_RATE, CFG(ingest_rate_milli), 0, 1000000000, "0",
	 "reports per second each agent may send, e.g. 0.2 (a burst of 1 s); 0: no limit", FOR_SERVE, NULL},
	{"ingest-slots", OPT_COUNT, CFG(ingest_slots), 1, 4096, "256",
	 "reports validated at once, per worker (taken when body bytes arrive; 880 KB of "
	 "address space each, touched as used); then 503", FOR_SERVE, NULL},
	{"ingest-limits", OPT_INGEST_LIMITS, CFG(ingest_limits), 0, 0, "",
	 "lower validator limits, e.g. containers=64,string=4KiB (see README); past one: 413", FOR_SERVE, NULL},
	{"fleet-max-agents", OPT_COUNT, CFG(fleet_max_agents), 1, 1u << 24, "100000",
	 "agents whose latest report is kept; a new agent past it gets 503", FOR_SERVE, NULL},
	{"fleet-memory", OPT_SIZE, CFG(fleet_memory_bytes), 4 * MIB, 512ull * 1024 * MIB, "4GiB",
	 "address space for the agents' latest reports (used as they arrive)", FOR_SERVE, NULL},
	{"fleet-stale", OPT_DURATION, CFG(fleet_stale_ms), 1000, 86400000, "180s",
	 "an agent silent this long is marked stale in /metrics/fleet and /latest", FOR_SERVE, NULL},
	{"fleet-ttl", OPT_DURATION, CFG(fleet_ttl_ms), 1000, 86400000, "300s",
	 "an agent silent this long drops out of /metrics/fleet", FOR_SERVE, NULL},
	{"fleet-max-series", OPT_COUNT, CFG(fleet_max_series), 0, 4000000000u, "1000000",
	 "samples in one /metrics/fleet exposition; the rest are counted as dropped (0: no cap)",
	 FOR_SERVE, NULL},
	{"fleet-forget", OPT_DURATION, CFG(fleet_forget_ms), 0, 30u * 86400000u, "1d",
	 "an agent silent this long is forgotten: its slot and memory are freed (0: never)",
	 FOR_SERVE, NULL},
	{"fleet-state", OPT_STRING, CFG(fleet_state), 0, CONFIG_PATH_MAX, "",
	 "file the fleet is saved to at shutdown and loaded from at start (unset: none)",
	 FOR_SERVE, NULL},
	{"fleet-save-interval", OPT_DURATION, CFG(fleet_save_interval_ms), 0, 86400000, "0",
	 "with --fleet-state, also save every this often while serving (0: only at shutdown)",
	 FOR_SERVE, NULL},
	{"database-url", OPT_STRING, CFG(database_url), 0, CONFIG_URL_MAX, "",
	 "PostgreSQL URI or conninfo string (else DATABASE_URL); never logged (unset: no database)",
	 FOR_SERVE, NULL},
	{"db-connections", OPT_COUNT, CFG(db_connections), 1, 64, "4",
	 "connections to PostgreSQL, each pipelined", FOR_SERVE, NULL},
	{"db-timeout-ping", OPT_DURATION, CFG(db_timeout_ping_ms), 10, 3600000, "1s",
	 "statement timeout of database pings (/ready)", FOR_SERVE, NULL},
	{"db-timeout-read", OPT_DURATION, CFG(db_timeout_read_ms), 10, 3600000, "2s",
	 "statement timeout of database reads", FOR_SERVE, NULL},
	{"db-timeout-write", OPT_DURATION, CFG(db_timeout_write_ms), 10, 3600000, "5s",
	 "statement timeout of database writes", FOR_SERVE, NULL},
	{"db-queue-depth", OPT_COUNT, CFG(db_queue_depth), 2, 65536, "1024",
	 "database requests each worker may queue, a power of two; past it: 503", FOR_SERVE, NULL},
	{"jwt-secret-file", OPT_STRING, CFG(jwt_secret_file), 0, CONFIG_PATH_MAX, "",
	 "HS256 key: a file of at least 32 secret bytes", FOR_ALL, NULL},
	{"jwt-public-key-file", OPT_STRING, CFG(jwt_public_key_file), 0, CONFIG_PATH_MAX, "",
	 "ES256/RS256: PEM public key that verifies agent tokens", FOR_ALL, NULL},
	{"jwt-private-key-file", OPT_STRING, CFG(jwt_private_key_file), 0, CONFIG_PATH_MAX, "",
	 "ES256/RS256: PEM private key that signs them (with --jwt-public-key-file)", FOR_ALL, NULL},
	{"jwt-previous-public-key-file", OPT_STRING, CFG(jwt_previous_public_key_file), 0,
	 CONFIG_PATH_LIST_MAX, "",
	 "key rotation: PEM public keys (comma-separated) whose tokens are still accepted, "
	 "by their kid, and published in the JWK Set; they never sign", FOR_ALL, NULL},
	{"jwt-previous-secret-file", OPT_STRING, CFG(jwt_previous_secret_file), 0,
	 CONFIG_PATH_LIST_MAX, "",
	 "key rotation: HS256 secret files (comma-separated) whose tokens are still accepted, "
	 "by their kid", FOR_ALL, NULL},
	{"jwt-issuer", OPT_STRING, CFG(jwt_issuer), 1, CONFIG_NAME_MAX, "ringside",
	 "iss of the tokens issued and accepted", FOR_ALL, NULL},
	{"jwt-audience", OPT_STRING, CFG(jwt_audience), 1, CONFIG_NAME_MAX, "ringside",
	 "aud of the tokens issued and accepted", FOR_ALL, NULL},
	{"token-ttl", OPT_DURATION, CFG(token_ttl_ms), 60000, 86400000, "3600s",
	 "lifetime of the tokens POST /api/v1/token issues (exp - iat)", FOR_SERVE, NULL},
	{"token-rate-limit", OPT_COUNT, CFG(token_rate_per_min), 0, 1000000, "100",
	 "token requests per minute per client id at POST /api/v1/token (0: no limit)",
	 FOR_SERVE, NULL},
	{"client-secret-key-file", OPT_STRING, CFG(client_secret_key_file), 0, CONFIG_PATH_MAX, "",
	 "file of at least 32 secret bytes: the HMAC-SHA-256 key client secrets are stored "
	 "under (unset: the credential and token routes answer 503)", FOR_SERVE, NULL},
	{"credential-ttl-days", OPT_COUNT, CFG(credential_ttl_days), 0, 36500, "365",
	 "days a new client credential stays valid (0: until revoked)", FOR_SERVE, NULL},
	{"revocation-resync", OPT_DURATION, CFG(revocation_resync_ms), 1000, 3600000, "30s",
	 "how often every revocation is re-read from the database (LISTEN/NOTIFY between)",
	 FOR_SERVE, NULL},
	{"revocation-capacity", OPT_COUNT, CFG(revocation_capacity), 1024, 1u << 24, "1048576",
	 "live revocations (tokens, agents, clients) held in memory; past it revoking is 503",
	 FOR_SERVE, NULL},
	{"analytics-enabled", OPT_CHOICE, CFG(analytics_enabled), 0, 0, "true",
	 "false: the analytics routes answer 404 and nothing is counted (also ANALYTICS_ENABLED)",
	 FOR_SERVE, boolean_names},
	{"analytics-journal", OPT_STRING, CFG(analytics_journal), 1, CONFIG_PATH_MAX, "var/journal",
	 "directory of the count journal: every counted event is written here before its answer "
	 "goes out, then added to PostgreSQL's rollups (made if missing)", FOR_SERVE, NULL},
	{"journal-sync", OPT_CHOICE, CFG(journal_sync), 0, 0, "none",
	 "none: a count survives a crash of Ringside (the page cache keeps it); fdatasync: "
	 "a power loss too, at a disk flush per loop pass", FOR_SERVE, journal_sync_names},
	{"analytics-batch", OPT_COUNT, CFG(analytics_batch), 100, 1000000, "50000",
	 "counted events added to PostgreSQL per transaction at most", FOR_SERVE, NULL},
	{"sub", OPT_STRING, CFG(token.sub), 1, CONFIG_NAME_MAX, "",
	 "token: the agent id (sub)", FOR_TOKEN, NULL},
	{"org", OPT_STRING, CFG(token.org), 1, CONFIG_NAME_MAX, "",
	 "token: the organization id (organization_id)", FOR_TOKEN, NULL},
	{"scope", OPT_STRING, CFG(token.scope), 1, CONFIG_NAME_MAX, "metrics:write",
	 "token: space-separated scopes", FOR_TOKEN, NULL},
	{"ttl", OPT_DURATION, CFG(token.ttl_ms), 1000, 31u * 86400000u, "3600s",
	 "token: lifetime", FOR_TOKEN, NULL},
};
#define OPTION_COUNT (sizeof options / sizeof options[0])

/* A setting that may hold a password (a database URL): never echoed. */
static bool secret(const struct option_def *o)
{
	return o->offset == CFG(database_url);
}

/* The conventional variable read when ours is unset: DATABASE_URL, which
 * platforms that provision a database set. */
static const char *env_fallback(const struct option_def *o)
{
	if (o->offset == CFG(analytics_enabled))
		return "ANALYTICS_ENABLED"; /* seed 002's own */
	return o->offset == CFG(database_url) ? "DATABASE_URL" : NULL;
}

/* The decimal digits at the start of s (at least one) as *v, which must
 * not exceed max. Returns the first byte after them, or NULL. */
static const char *leading_number(const char *s, uint64_t max, uint64_t *v)
{
	uint64_t n = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (max - d) / 10)
			return NULL;
		n = n * 10 + d;
	}
	if (p == s)
		return NULL;
	*v = n;
	return p;
}

int config_parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *p = leading_number(s, UINT64_MAX, &v);
	if (!p)
		return -EINVAL;
	uint64_t mult = 1;
	if (!strcmp(p, "") || !strcmp(p, "B"))
		mult = 1;
	else if (!strcmp(p, "k") || !strcmp(p, "K") || !strcmp(p, "KiB"))
		mult = 1024;
	else if (!strcmp(p, "m") || !strcmp(p, "M") || !strcmp(p, "MiB"))
		mult = MIB;
	else if (!strcmp(p, "G") || !strcmp(p, "GiB"))
		mult = 1024 * MIB;
	else
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

int config_parse_duration_ms(const char *s, uint32_t *out)
{
	uint64_t v;
	const char *p = leading_number(s, UINT32_MAX, &v);
	if (!p)
		return -EINVAL;
	uint64_t mult;
	if (!strcmp(p, "ms"))
		mult = 1;
	else if (!strcmp(p, "") || !strcmp(p, "s"))
		mult = 1000;
	else if (!strcmp(p, "m"))
		mult = 60000;
	else if (!strcmp(p, "h"))
		mult = 3600000;
	else if (!strcmp(p, "d"))
		mult = 86400000;
	else
		return -EINVAL;
	if (v * mult > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)(v * mult);
	return 0;
}

int config_parse_listen(const char *s, struct sockaddr_storage *out)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= 64)
		return -EINVAL;
	char host[64];
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	uint64_t port;
	if (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    config_parse_size(colon + 1, &port) || port > 65535)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	size_t hl = strlen(host);
	if (host[0] == '[') {
		/* RFC 3986 3.2.2: an IPv6 address in brackets. */
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)out;
		if (hl < 3 || host[hl - 1] != ']')
			return -EINVAL;
		host[hl - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)(void *)out;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -EINVAL;
}

socklen_t config_sockaddr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

void config_format_addr(const struct sockaddr_storage *a, uint16_t port, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (a->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr, host,
			  sizeof host);
		snprintf(out, cap, "[%s]:%u", host, port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)a)->sin_addr, host,
			  sizeof host);
		snprintf(out, cap, "%s:%u", host, port);
	}
}

int config_parse_rate_milli(const char *s, uint32_t *out)
{
	uint64_t v;
	const char *p = leading_number(s, UINT32_MAX / 1000, &v);
	if (!p)
		return -EINVAL;
	v *= 1000;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		/* Thousandths; finer digits must be zeros (a rate is never
		 * rounded silently). */
		for (uint64_t scale = 100; *p >= '0' && *p <= '9'; p++, scale /= 10) {
			if (!scale && *p != '0')
				return -EINVAL;
			v += scale * (uint64_t)(*p - '0');
		}
	}
	if (*p || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* The validator's limits by name, with their capacities (ingest.h). */
#define LIMIT(name, field, cap) {name, offsetof(struct ingest_limits, field), cap}
static const struct {
	const char *name;
	size_t offset;
	uint32_t cap;
} ingest_limit_names[] = {
	LIMIT("services", services, INGEST_CAP_SERVICES),
	LIMIT("health-checks", health_checks, INGEST_CAP_HEALTH_CHECKS),
	LIMIT("tcp-checks", tcp_checks, INGEST_CAP_TCP_CHECKS),
	LIMIT("cert-checks", cert_checks, INGEST_CAP_CERT_CHECKS),
	LIMIT("containers", containers, INGEST_CAP_CONTAINERS),
	LIMIT("processes", processes, INGEST_CAP_PROCESSES),
	LIMIT("ports-per-container", ports_per_container, INGEST_CAP_PORTS_PER_CONTAINER),
	LIMIT("labels-per-container", labels_per_container, INGEST_CAP_LABELS_PER_CONTAINER),
	LIMIT("mounts-per-container", mounts_per_container, INGEST_CAP_MOUNTS_PER_CONTAINER),
	LIMIT("ports", ports, INGEST_CAP_PORTS),
	LIMIT("labels", labels, INGEST_CAP_LABELS),
	LIMIT("mounts", mounts, INGEST_CAP_MOUNTS),
	LIMIT("arena", arena_bytes, INGEST_CAP_ARENA),
	LIMIT("string", string_bytes, INGEST_CAP_ARENA),
	LIMIT("key", key_bytes, INGEST_CAP_KEY),
	LIMIT("depth", depth, INGEST_CAP_DEPTH),
};

int config_parse_ingest_limits(const char *s, struct ingest_limits *out)
{
	struct ingest_limits l = *out;
	while (*s) {
		size_t n = strcspn(s, "="), k;
		for (k = 0; k < sizeof ingest_limit_names / sizeof ingest_limit_names[0]; k++)
			if (strlen(ingest_limit_names[k].name) == n &&
			    !strncmp(ingest_limit_names[k].name, s, n))
				break;
		if (k == sizeof ingest_limit_names / sizeof ingest_limit_names[0] || s[n] != '=')
			return -EINVAL;
		s += n + 1;
		char value[32];
		n = strcspn(s, ",");
		uint64_t v;
		if (n >= sizeof value)
			return -EINVAL;
		memcpy(value, s, n);
		value[n] = '\0';
		if (config_parse_size(value, &v) || v < 1 || v > ingest_limit_names[k].cap)
			return -EINVAL;
		*(uint32_t *)(void *)((char *)&l + ingest_limit_names[k].offset) = (uint32_t)v;
		s += n;
		if (*s == ',' && *++s == '\0')
			return -EINVAL;
	}
	*out = l;
	return 0;
}

/* Applies one value; on error prints a message naming `source` (the flag
 * or the variable) and returns -EINVAL. */
static int apply(struct config *cfg, const struct option_def *o,
		 const char *value, const char *source, FILE *err)
{
	char *field = (char *)cfg + o->offset;
	uint64_t v;
	uint32_t ms;
	switch (o->kind) {
	case OPT_LISTEN: {
		struct listen_addr *l = (struct listen_addr *)(void *)field;
		if (!value[0]) { /* unset (the default of --metrics-listen) */
			memset(l, 0, sizeof *l);
			return 0;
		}
		if (config_parse_listen(value, &l->addr)) {
			fprintf(err, "ringside: %s: invalid address '%s' (want HOST:PORT with an IPv4 address, localhost or an IPv6 address in brackets: 127.0.0.1:3000, [::1]:3000, [::]:3000)\n",
				source, value);
			return -EINVAL;
		}
		l->set = true;
		snprintf(l->text, sizeof l->text, "%s", value);
		return 0;
	}
	case OPT_COUNT:
		if (o->offset == CFG(workers) && !strcmp(value, "auto")) {
			long n = sysconf(_SC_NPROCESSORS_ONLN);
			cfg->workers = n > 0 ? (uint32_t)n : 1;
			return 0;
		}
		if (config_parse_size(value, &v) || strspn(value, "0123456789") != strlen(value) ||
		    v < o->min || v > o->max) {
			fprintf(err, "ringside: %s: invalid count '%s' (want a whole number from %llu to %llu)\n",
				source, value, (unsigned long long)o->min, (unsigned long long)o->max);
			return -EINVAL;
		}
		*(uint32_t *)(void *)field = (uint32_t)v;
		return 0;
	case OPT_SIZE:
		if (config_parse_size(value, &v) || v < o->min || v > o->max) {
			fprintf(err, "ringside: %s: invalid size '%s' (want bytes from %llu to %llu, suffix k, KiB, M or MiB allowed)\n",
				source, value, (unsigned long long)o->min, (unsigned long long)o->max);
			return -EINVAL;
		}
		if (o->offset == CFG(max_body_bytes) || o->offset == CFG(fleet_memory_bytes))
			*(uint64_t *)(void *)field = v;
		else
			*(uint32_t *)(void *)field = (uint32_t)v;
		return 0;
	case OPT_DURATION:
		if (config_parse_duration_ms(value, &ms) || ms < o->min || ms > o->max) {
			fprintf(err, "ringside: %s: invalid duration '%s' (want e.g. 500ms, 10s, 2m; from %llums to %llums)\n",
				source, value, (unsigned long long)o->min, (unsigned long long)o->max);
			return -EINVAL;
		}
		*(uint32_t *)(void *)field = ms;
		return 0;
	case OPT_RATE:
		if (config_parse_rate_milli(value, &ms) || ms > o->max) {
			fprintf(err, "ringside: %s: invalid rate '%s' (want reports per second, e.g. 10, 0.5 or 0)\n",
				source, value);
			return -EINVAL;
		}
		*(uint32_t *)(void *)field = ms;
		return 0;
	case OPT_INGEST_LIMITS:
		if (config_parse_ingest_limits(value, (struct ingest_limits *)(void *)field)) {
			fprintf(err, "ringside: %s: invalid limits '%s' (want NAME=N,..., each N from 1 "
				     "to its capacity; names: services, health-checks, tcp-checks, "
				     "cert-checks, containers, processes, ports-per-container, "
				     "labels-per-container, mounts-per-container, ports, labels, "
				     "mounts, arena, string, key, depth)\n",
				source, value);
			return -EINVAL;
		}
		return 0;
	case OPT_STRING: {
		size_t len = strlen(value);
		if (len < o->min || len >= o->max) {
			fprintf(err, "ringside: %s: '%s' must be %llu to %llu characters\n", source,
				secret(o) ? "(value not shown: it may hold a password)" : value,
				(unsigned long long)o->min, (unsigned long long)o->max - 1);
			return -EINVAL;
		}
		memcpy(field, value, len + 1);
		return 0;
	}
	case OPT_CHOICE: {
		/* The choice fields are enums, stored as the int they are. */
		_Static_assert(sizeof(enum log_level) == sizeof(int) &&
				       sizeof(enum cpu_affinity) == sizeof(int),
			       "choice fields are int-sized enums");
		size_t n = 0;
		for (; o->choices[n]; n++) {
			if (!strcasecmp(value, o->choices[n])) {
				*(int *)(void *)field = (int)n;
				return 0;
			}
		}
		char list[128] = "";
		for (size_t i = 0, at = 0; i < n && at < sizeof list; i++)
			at += (size_t)snprintf(list + at, sizeof list - at, "%s%s",
					       i == 0 ? "" : i + 1 == n ? " or " : ", ", o->choices[i]);
		fprintf(err, "ringside: %s: invalid value '%s' (want %s)\n", source, value, list);
		return -EINVAL;
	}
	}
	return -EINVAL;
}

static void env_name(const struct option_def *o, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "RINGSIDE_");
	for (const char *f = o->flag; *f && n + 1 < cap; f++)
		out[n++] = *f == '-' ? '_' : (char)(*f >= 'a' && *f <= 'z' ? *f - 32 : *f);
	out[n] = '\0';
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: ringside [serve] [--flag VALUE]...\n"
		"       ringside token --sub AGENT_ID --org ORG_ID [--scope S] [--ttl D] [key flags]\n"
		"\n"
		"Ringside: telemetry server for agent fleets (io_uring, HTTP/1.1).\n"
		"Every server flag may also be set by the environment variable shown.\n"
		"\n");
	for (size_t i = 0; i < OPTION_COUNT; i++) {
		char env[64] = "(flag only)";
		if (options[i].used_by != FOR_TOKEN)
			env_name(&options[i], env, sizeof env);
		fprintf(out, "  --%-20s %-30s default %s\n      %s\n", options[i].flag,
			env, options[i].def[0] ? options[i].def : "(unset)", options[i].help);
	}
	fprintf(out, "  --help                 this text\n"
		     "  --version              print the version\n");
}

enum config_action config_load(struct config *cfg, int argc, char **argv,
			       char *(*env)(const char *name), FILE *out,
			       FILE *err)
{
	if (!env)
		env = getenv;
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < OPTION_COUNT; i++) {
		if (!options[i].def[0])
			continue; /* unset */
		int r = apply(cfg, &options[i], options[i].def, "default", err);
		(void)r; /* the table's defaults are valid: see test_config */
	}
	for (size_t i = 0; i < OPTION_COUNT; i++) {
		char name[64];
		if (options[i].used_by == FOR_TOKEN)
			continue; /* the token command's claims come from flags only */
		env_name(&options[i], name, sizeof name);
		const char *v = env(name);
		/* Ours wins over the conventional name (DATABASE_URL). */
		if (!v && env_fallback(&options[i]) && (v = env(env_fallback(&options[i]))) != NULL)
			snprintf(name, sizeof name, "%s", env_fallback(&options[i]));
		if (v && apply(cfg, &options[i], v, name, err))
			return CONFIG_ERROR;
	}
	int i = 1;
	enum opt_for command = FOR_SERVE;
	if (i < argc && !strcmp(argv[i], "serve")) {
		i++;
	} else if (i < argc && !strcmp(argv[i], "token")) {
		command = FOR_TOKEN;
		i++;
	}
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(out);
			return CONFIG_HELP;
		}
		if (!strcmp(a, "--version")) {
			fprintf(out, "ringside %s\n", RINGSIDE_VERSION);
			return CONFIG_VERSION;
		}
		const struct option_def *o = NULL;
		const char *value = NULL;
		if (a[0] == '-' && a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			for (size_t k = 0; k < OPTION_COUNT; k++)
				if (strlen(options[k].flag) == len && !strncmp(options[k].flag, a + 2, len))
					o = &options[k];
			if (eq)
				value = eq + 1;
		}
		if (!o) {
			fprintf(err, "ringside: unknown flag '%s' (see --help)\n", a);
			return CONFIG_ERROR;
		}
		char flag[64];
		snprintf(flag, sizeof flag, "--%s", o->flag);
		if (o->used_by != FOR_ALL && o->used_by != command) {
			fprintf(err, "ringside: %s is for `ringside %s` (see --help)\n", flag,
				o->used_by == FOR_TOKEN ? "token" : "serve");
			return CONFIG_ERROR;
		}
		if (!value) {
			if (i + 1 >= argc) {
				fprintf(err, "ringside: %s needs a value\n", flag);
				return CONFIG_ERROR;
			}
			value = argv[++i];
		}
		if (apply(cfg, o, value, flag, err))
			return CONFIG_ERROR;
	}
	if (command == FOR_TOKEN && (!cfg->token.sub[0] || !cfg->token.org[0])) {
		fprintf(err, "ringside: token needs --sub AGENT_ID and --org ORG_ID\n");
		return CONFIG_ERROR;
	}
	if (cfg->fleet_forget_ms && cfg->fleet_forget_ms < cfg->fleet_ttl_ms) {
		/* An agent would be forgotten while /metrics/fleet still shows it. */
		fprintf(err, "ringside: --fleet-forget (%u ms) must be 0 or at least --fleet-ttl (%u ms)\n",
			cfg->fleet_forget_ms, cfg->fleet_ttl_ms);
		return CONFIG_ERROR;
	}
	if (!cfg->tls_cert[0] != !cfg->tls_key[0] || (cfg->metrics_tls && !cfg->tls_cert[0])) {
		/* A certificate without its key (or the reverse) cannot serve:
		 * name the one missing rather than serve plain HTTP. */
		fprintf(err, "ringside: %s is missing: HTTPS needs --tls-cert and --tls-key\n",
			cfg->tls_cert[0] ? "--tls-key" : "--tls-cert");
		return CONFIG_ERROR;
	}
	if (cfg->db_queue_depth & (cfg->db_queue_depth - 1)) {
		/* The queue indexes by masking. */
		fprintf(err, "ringside: --db-queue-depth (%u) must be a power of two (e.g. 1024)\n",
			cfg->db_queue_depth);
		return CONFIG_ERROR;
	}
	if (cfg->fleet_ttl_ms < cfg->fleet_stale_ms) {
		/* Agents would leave /metrics/fleet before ever showing stale. */
		fprintf(err, "ringside: --fleet-ttl (%u ms) must be at least --fleet-stale (%u ms)\n",
			cfg->fleet_ttl_ms, cfg->fleet_stale_ms);
		return CONFIG_ERROR;
	}
	return command == FOR_TOKEN ? CONFIG_TOKEN : CONFIG_SERVE;
}
