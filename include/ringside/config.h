/*
 * Server configuration: every setting is a flag `--name VALUE` and an
 * environment variable `RINGSIDE_NAME` (upper case, '-' -> '_'). A flag
 * overrides the variable, which overrides the default.
 */
#ifndef RINGSIDE_CONFIG_H
#define RINGSIDE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "ringside/ingest_limits.h"
#include "ringside/log.h"

#define RINGSIDE_VERSION "0.1.0"

#define CONFIG_PATH_MAX 512
#define CONFIG_NAME_MAX 256
#define CONFIG_URL_MAX 1024
#define CONFIG_PATH_LIST_MAX 2048 /* comma-separated paths */

/* An address to listen on: IPv4 (`127.0.0.1:3000`) or IPv6 in brackets
 * (`[::1]:3000`; `[::]:3000` is dual-stack, IPv4 too). */
struct listen_addr {
	struct sockaddr_storage addr; /* sockaddr_in or sockaddr_in6 */
	bool set;
	char text[64];                /* as given, for logs */
};

/* How workers are placed on CPUs (--cpu-affinity). */
enum cpu_affinity {
	CPU_AFFINITY_OFF,  /* the scheduler places them; a short slice is asked for */
	CPU_AFFINITY_AUTO, /* worker i pinned to the i-th CPU the process may use */
};

struct config {
	struct listen_addr listen;    /* --listen HOST:PORT */
	struct listen_addr metrics_listen; /* --metrics-listen: /metrics* only there */
	uint32_t workers;             /* --workers; "auto": online CPUs */
	uint32_t max_connections;     /* --max-connections, all workers together */
	uint32_t max_header_bytes;    /* --max-header-bytes */
	uint64_t max_body_bytes;      /* --max-body-bytes */
	uint32_t header_timeout_ms;   /* --header-timeout: absolute, from first byte */
	uint32_t body_timeout_ms;     /* --body-timeout: longest wait between body reads */
	uint32_t body_min_rate;       /* --body-min-rate: bytes/s a body must keep up; 0 off */
	uint32_t body_rate_grace_ms;  /* --body-rate-grace: before the rate counts */
	uint32_t keepalive_timeout_ms;/* --keepalive-timeout */
	uint32_t shutdown_timeout_ms; /* --shutdown-timeout */
	uint32_t sse_interval_ms;     /* --sse-interval */
	enum log_level log_level;     /* --log-level */
	char access_log[CONFIG_PATH_MAX]; /* --access-log: file, "-" for stderr, "" off */
	enum cpu_affinity cpu_affinity; /* --cpu-affinity */

	/* HTTPS (ringside/tls.h): both set or neither. */
	char tls_cert[CONFIG_PATH_MAX]; /* --tls-cert: PEM chain, leaf first; "" plain HTTP */
	char tls_key[CONFIG_PATH_MAX];  /* --tls-key: PEM private key */
	int metrics_tls;              /* --metrics-tls: 0 false, 1 true (--metrics-listen too) */

	/* Agent tokens (DESIGN.md "JWT"): one key kind per server. */
	char jwt_secret_file[CONFIG_PATH_MAX];      /* HS256 */
	char jwt_public_key_file[CONFIG_PATH_MAX];  /* ES256 / RS256 (verify) */
	char jwt_private_key_file[CONFIG_PATH_MAX]; /* ES256 / RS256 (sign) */
	/* Rotation: keys that verify only, comma-separated (jwt_keys_add_previous). */
	char jwt_previous_public_key_file[CONFIG_PATH_LIST_MAX];
	char jwt_previous_secret_file[CONFIG_PATH_LIST_MAX];
	char jwt_issuer[CONFIG_NAME_MAX];
	char jwt_audience[CONFIG_NAME_MAX];

	/* Ingest and the fleet view (DESIGN.md "Ingest"). */
	uint32_t ingest_rate_milli;   /* --ingest-rate-limit: reports/s per agent x 1000; 0 off */
	uint32_t ingest_slots;        /* --ingest-slots: bodies validated at once, per worker */
	struct ingest_limits ingest_limits; /* --ingest-limits: 0 = the capacity */
	uint32_t fleet_max_agents;    /* --fleet-max-agents */
	uint64_t fleet_memory_bytes;  /* --fleet-memory: snapshot blocks, all agents */
	uint32_t fleet_stale_ms;      /* --fleet-stale */
	uint32_t fleet_ttl_ms;        /* --fleet-ttl */
	uint32_t fleet_max_series;    /* --fleet-max-series: cardinality cap of /metrics/fleet */
	uint32_t fleet_forget_ms;     /* --fleet-forget: 0 never */
	char fleet_state[CONFIG_PATH_MAX]; /* --fleet-state: "" none */
	uint32_t fleet_save_interval_ms;   /* --fleet-save-interval: 0 at shutdown only */

	/* PostgreSQL (include/ringside/db.h). The URL may hold a password:
	 * it is never logged or echoed whole. */
	char database_url[CONFIG_URL_MAX]; /* --database-url, else DATABASE_URL; "" none */
	uint32_t db_connections;      /* --db-connections */
	uint32_t db_timeout_ping_ms;  /* --db-timeout-ping: statement timeout per class */
	uint32_t db_timeout_read_ms;  /* --db-timeout-read */
	uint32_t db_timeout_write_ms; /* --db-timeout-write */
	uint32_t db_queue_depth;      /* --db-queue-depth: per worker, a power of two */

	/* The identity service (openapi/identity.yaml). */
	uint32_t token_ttl_ms;        /* --token-ttl: lifetime of issued tokens */
	uint32_t token_rate_per_min;  /* --token-rate-limit: per client; 0 off */
	char client_secret_key_file[CONFIG_PATH_MAX]; /* --client-secret-key-file: HMAC key */
	uint32_t credential_ttl_days; /* --credential-ttl-days: 0 never expires */
	uint32_t revocation_resync_ms; /* --revocation-resync: full re-read every */
	uint32_t revocation_capacity; /* --revocation-capacity: live entries held */

	/* Tenant analytics (seed 002). */
	int analytics_enabled;        /* --analytics-enabled: 0 false, 1 true */
	char analytics_journal[CONFIG_PATH_MAX]; /* --analytics-journal */
	int journal_sync;             /* --journal-sync: 0 none, 1 fdatasync */
	uint32_t analytics_batch;     /* --analytics-batch */

	/* `ringside token`: the claims of the token to print. */
	struct {
		char sub[CONFIG_NAME_MAX];
		char org[CONFIG_NAME_MAX];
		char scope[CONFIG_NAME_MAX];
		uint32_t ttl_ms;
	} token;
};

enum config_action {
	CONFIG_SERVE,
	CONFIG_TOKEN,   /* `ringside token ...`: print a signed token */
	CONFIG_HELP,    /* usage printed to the given stream; exit 0 */
	CONFIG_VERSION, /* version printed; exit 0 */
	CONFIG_ERROR,   /* message naming the flag printed to err; exit 2 */
};

/* Fills cfg from defaults, then `env` (NULL: the process environment, via
 * getenv; DATABASE_URL counts where RINGSIDE_DATABASE_URL is unset), then argv (argv[0] is the program; an optional leading "serve"
 * or "token" subcommand). Prints help/version to out and errors to err. */
enum config_action config_load(struct config *cfg, int argc, char **argv,
			       char *(*env)(const char *name), FILE *out,
			       FILE *err);

/* Value parsers, exposed for tests. Each returns 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *out);         /* 512, 4k, 4KiB, 2M, 2MiB */
int config_parse_duration_ms(const char *s, uint32_t *out);  /* 500ms, 10s, 2m, 1h, 1d, 10 */
/* "127.0.0.1:3000", "localhost:3000", "[::1]:3000", "[::]:0". */
int config_parse_listen(const char *s, struct sockaddr_storage *out);

/* The length of the sockaddr in a (for bind). */
socklen_t config_sockaddr_len(const struct sockaddr_storage *a);

/* "127.0.0.1:3000" or "[::1]:3000" for a, with `port` in place of its own
 * (the port actually bound when it was 0). Always NUL-terminated. */
void config_format_addr(const struct sockaddr_storage *a, uint16_t port, char *out, size_t cap);
int config_parse_rate_milli(const char *s, uint32_t *out);    /* 10, 0.5, 2.25 (per second) */
/* "containers=64,string=4KiB,depth=16": lowers those limits (each from 1
 * to its capacity), leaves the others as they were. */
int config_parse_ingest_limits(const char *s, struct ingest_limits *out);

#endif
