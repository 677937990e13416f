/*
 * ringside: configuration, listeners and workers, signals, shutdown.
 * Where a request goes from here: src/ring (io_uring workers, connections)
 * -> src/http (parser, router, response writer) -> src/api (handlers).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "ringside/api.h"
#include "ringside/client_secret.h"
#include "ringside/config.h"
#include "ringside/db.h"
#include "ringside/jwt.h"
#include "ringside/log.h"
#include "ringside/metrics.h"
#include "ringside/metrics_process.h"
#include "ringside/ring.h"
#include "ringside/tls.h"

/* Every connection is a descriptor: ask for as many as the hard limit
 * allows, and say so if that is fewer than --max-connections needs. */
static void raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	rlim_t need = (rlim_t)cfg->max_connections + 64u;
	if (rl.rlim_cur < need)
		log_warn("file descriptor limit below --max-connections",
			 "limit=%llu max_connections=%u hint=\"raise the hard limit (ulimit -Hn)\"",
			 (unsigned long long)rl.rlim_cur, cfg->max_connections);
}

#define PROCESS_SAMPLE_MS 1000

static void sample_process(struct metrics_registry *m)
{
	struct process_stats p = {0};
	int r = process_stats_read(&p, "/proc", "/proc/self");
	if (r < 0)
		log_warn("process metrics incomplete", "err=%d", -r);
	metrics_publish_process(m, &p);
}

/* Each worker's resident memory for the pool view, measured here (mincore
 * may block; a worker must not): the ring's part and the handlers'. */
static void sample_workers(struct metrics_registry *m, const struct ring_server *s,
			   const struct api *a)
{
	for (uint32_t i = 0; i < s->worker_count; i++)
		atomic_store_explicit(&m->shards[i].view.memory_resident,
				      ring_worker_resident(s, i) + api_worker_resident(a, i),
				      memory_order_relaxed);
}

/* The flag of the input jwt_keys_load refused. */
static const char *key_flag(int culprit)
{
	switch (culprit) {
	case JWT_KEYS_BAD_PUBLIC_KEY:
		return "--jwt-public-key-file";
	case JWT_KEYS_BAD_PRIVATE_KEY:
		return "--jwt-private-key-file";
	case JWT_KEYS_BAD_ISSUER:
		return "--jwt-issuer";
	case JWT_KEYS_BAD_AUDIENCE:
		return "--jwt-audience";
	case JWT_KEYS_BAD_COMBINATION:
		return "--jwt-secret-file, --jwt-public-key-file";
	case JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY:
		return "--jwt-previous-public-key-file";
	case JWT_KEYS_BAD_PREVIOUS_SECRET:
		return "--jwt-previous-secret-file";
	default:
		return "--jwt-secret-file";
	}
}

/* Adds the previous keys of a comma-separated list (secret files if
 * secret, else public key files). Returns 0 or a culprit, err set. */
static int add_previous(struct jwt_keys *keys, const char *list, bool secret, char *err,
			size_t errcap)
{
	char path[CONFIG_PATH_LIST_MAX];
	size_t n = strlen(list);
	if (n >= sizeof path)
		return secret ? JWT_KEYS_BAD_PREVIOUS_SECRET : JWT_KEYS_BAD_PREVIOUS_PUBLIC_KEY;
	memcpy(path, list, n + 1);
	for (char *save = NULL, *p = strtok_r(path, ",", &save); p;
	     p = strtok_r(NULL, ",", &save)) {
		int r = jwt_keys_add_previous(keys, secret ? p : NULL, secret ? NULL : p, err,
					      errcap);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Loads the token keys the flags name: the current key, then the previous
 * ones (rotation). Returns 0, or -1 after printing why, naming the flag
 * (the caller exits 2, as for any bad flag). */
static int load_keys(const struct config *cfg, struct jwt_keys *keys)
{
	char err[256];
	int r = jwt_keys_load(keys, cfg->jwt_secret_file, cfg->jwt_public_key_file,
			      cfg->jwt_private_key_file, cfg->jwt_issuer, cfg->jwt_audience, err,
			      sizeof err);
	if (r == 0)
		r = add_previous(keys, cfg->jwt_previous_public_key_file, false, err, sizeof err);
	if (r == 0)
		r = add_previous(keys, cfg->jwt_previous_secret_file, true, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "ringside: %s: %s\n", key_flag(r), err);
		jwt_keys_fini(keys);
		return -1;
	}
	return 0;
}

/* The database thread's completions go into the asking worker's ring. */
static void post_completion(void *arg, uint32_t worker, uint64_t token)
{
	ring_server_post(arg, worker, token, 0);
}

static void flush_completions(void *arg, bool last)
{
	(void)arg;
	if (last)
		ring_post_thread_done();
	else
		ring_post_flush();
}

/* Applies the migrations (the database must be reachable at start: a
 * migration that fails, or a database that does not answer, stops the
 * start with why) and starts the database thread. */
static int start_database(const struct config *cfg, struct ring_server *server, struct db **out)
{
	if (db_migrate(cfg->database_url) < 0)
		return -1;
	const struct db_config dc = {
		.url = cfg->database_url,
		.connections = cfg->db_connections,
		.workers = cfg->workers,
		.queue_depth = cfg->db_queue_depth,
		.timeout_ms = {[DB_CLASS_PING] = cfg->db_timeout_ping_ms,
			       [DB_CLASS_READ] = cfg->db_timeout_read_ms,
			       [DB_CLASS_WRITE] = cfg->db_timeout_write_ms},
		.post = post_completion,
		.post_flush = flush_completions,
		.post_arg = server,
	};
	return db_start(out, &dc);
}

/* Opens the --access-log file (appending; "-" is stderr). Returns the fd,
 * -1 for none, or -2 after printing why. */
static int open_access_log(const struct config *cfg)
{
	if (!cfg->access_log[0])
		return -1;
	if (!strcmp(cfg->access_log, "-"))
		return STDERR_FILENO;
	int fd = open(cfg->access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "ringside: --access-log: cannot open '%s': %s\n", cfg->access_log,
			strerror(errno));
		return -2;
	}
	return fd;
}

/* Loads the identity --tls-cert and --tls-key name and makes it the one
 * new handshakes use. At start a bad pair is a bad flag (exit 2); on
 * SIGHUP it is refused, logged, and the identity in use is kept. */
static int load_tls_identity(const struct config *cfg, bool at_start)
{
	char err[256];
	struct tls_identity *id = NULL;
	int r = tls_identity_load(cfg->tls_cert, cfg->tls_key, &id, err, sizeof err);
	const char *flag = r == TLS_LOAD_BAD_CERT ? "--tls-cert" : "--tls-key";
	if (r < 0 && at_start) {
		fprintf(stderr, "ringside: %s: %s\n", flag, err);
		return -1;
	}
	if (r < 0) {
		log_error("TLS certificate and key not reloaded; still serving the previous ones",
			  "flag=%s err=\"%s\"", flag, err);
		return -1;
	}
	unsigned bits;
	const char *kind = tls_identity_describe(id, &bits);
	tls_identity_install(id);
	log_info(at_start ? "TLS certificate loaded" : "TLS certificate reloaded",
		 "cert=\"%s\" key_type=%s key_bits=%u", cfg->tls_cert, kind, bits);
	return 0;
}

/* SIGHUP (logrotate, systemctl reload): the access log is opened again
 * under its name and put in place of the old one on the same descriptor,
 * so the workers' next write goes to the new file. */
static void reopen_access_log(const struct config *cfg, int fd)
{
	if (fd < 0 || fd == STDERR_FILENO)
		return;
	int nfd = open(cfg->access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (nfd < 0 || dup3(nfd, fd, O_CLOEXEC) < 0)
		log_error("cannot reopen the access log; still writing to the old file",
			  "path=\"%s\" err=\"%s\"", cfg->access_log, strerror(errno));
	else
		log_info("access log reopened", "path=\"%s\"", cfg->access_log);
	if (nfd >= 0)
		close(nfd);
}

static int serve(const struct config *cfg)
{
	/* Keys and the access log first: a bad one is a bad flag (exit 2). */
	struct jwt_keys keys;
	bool have_keys = cfg->jwt_secret_file[0] || cfg->jwt_public_key_file[0] ||
			 cfg->jwt_private_key_file[0] || cfg->jwt_previous_public_key_file[0] ||
			 cfg->jwt_previous_secret_file[0];
	if (have_keys && load_keys(cfg, &keys) < 0)
		return 2;
	static struct client_secret_key client_key;
	if (cfg->client_secret_key_file[0]) {
		char err[256];
		if (client_secret_key_load(&client_key, cfg->client_secret_key_file, err,
					   sizeof err) < 0) {
			fprintf(stderr, "ringside: --client-secret-key-file: %s\n", err);
			if (have_keys)
				jwt_keys_fini(&keys);
			return 2;
		}
	}
	if (cfg->tls_cert[0] && load_tls_identity(cfg, true) < 0) {
		if (have_keys)
			jwt_keys_fini(&keys);
		return 2;
	}
	int access_log = open_access_log(cfg);
	if (access_log == -2) {
		if (have_keys)
			jwt_keys_fini(&keys);
		tls_identities_free();
		return 2;
	}

	/* Signals are taken by this thread through a signalfd; blocked before
	 * the workers start so they inherit the mask. SIGPIPE is moot (sends
	 * use MSG_NOSIGNAL) but ignored for any stray write. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit (ulimit -f) makes a write fail with EFBIG, which
	 * the count journal and the fleet state handle, instead of killing
	 * the server. */
	signal(SIGXFSZ, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd failed", "err=\"%s\"", strerror(errno));
		return 1;
	}
	raise_fd_limit(cfg);

	static struct metrics_registry metrics;
	if (metrics_registry_init(&metrics, &api_router, cfg->workers, cfg->max_connections) < 0) {
		log_error("out of memory for the metrics registry", "%s", "");
		return 1;
	}
	static struct api api;
	if (api_init(&api, cfg, cfg->workers, have_keys ? &keys : NULL) < 0)
		return 1;
	if (client_key.len)
		api_take_client_secret_key(&api, &client_key);
	if (cfg->fleet_state[0])
		api_load_fleet(&api, cfg->fleet_state);
	sample_process(&metrics);
	/* The database thread before the workers, whose handlers may ask it
	 * from their first request; it posts into their rings (`server` is
	 * filled by ring_server_start before any request can be asked). */
	static struct ring_server server;
	if (cfg->database_url[0] && start_database(cfg, &server, &api.db) < 0)
		return 1;
	/* The revocation sync after the migrations (it reads their tables);
	 * before the workers, so the first requests already meet the
	 * revocations stored (it waits a little for its first read; a
	 * database down now is retried by the thread). */
	if (api_start_identity_sync(&api, &metrics) < 0 || api_start_analytics(&api) < 0)
		return 1;
	const struct ring_hooks hooks = {&api, api_worker_pass, api_worker_stopped, api_answered,
					 api_worker_flush};
	if (ring_server_start(&server, cfg, &api_router, &metrics, &hooks, access_log) < 0)
		return 1;
	sample_workers(&metrics, &server, &api);
	char addr[80], metrics_addr[80] = "-";
	config_format_addr(&cfg->listen.addr, server.port[0], addr, sizeof addr);
	if (cfg->metrics_listen.set)
		config_format_addr(&cfg->metrics_listen.addr, server.port[1], metrics_addr,
				   sizeof metrics_addr);
	log_info("listening", "addr=%s port=%u metrics_addr=%s metrics_port=%u workers=%u "
		 "max_connections=%u cpu_affinity=%s version=%s",
		 addr, server.port[0], metrics_addr, server.port[1], cfg->workers,
		 cfg->max_connections, cfg->cpu_affinity == CPU_AFFINITY_AUTO ? "auto" : "off",
		 RINGSIDE_VERSION);

	/* Until SIGTERM or SIGINT: sample the process collector once a
	 * second, here, so a scrape on a worker never reads /proc
	 * (DESIGN.md "Threads"); on SIGHUP reopen the access log; save the
	 * fleet every --fleet-save-interval. */
	struct signalfd_siginfo si;
	ssize_t n = -1;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t next_save_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 +
			       cfg->fleet_save_interval_ms;
	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		int r = poll(&pfd, 1, PROCESS_SAMPLE_MS);
		if (r > 0) {
			n = read(sfd, &si, sizeof si);
			if (n == sizeof si && si.ssi_signo == SIGHUP) {
				reopen_access_log(cfg, access_log);
				if (cfg->tls_cert[0])
					load_tls_identity(cfg, false);
				continue;
			}
			if (n == sizeof si)
				break;
		} else if (r == 0) {
			sample_process(&metrics);
			sample_workers(&metrics, &server, &api);
		} else if (errno != EINTR) {
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
		if (cfg->fleet_state[0] && cfg->fleet_save_interval_ms && now_ms >= next_save_ms) {
			api_save_fleet(&api, cfg->fleet_state);
			next_save_ms = now_ms + cfg->fleet_save_interval_ms;
		}
	}
	log_info("shutting down", "signal=%s timeout_ms=%u",
		 n == sizeof si ? strsignal((int)si.ssi_signo) : "?", cfg->shutdown_timeout_ms);
	ring_server_stop(&server);
	/* The workers end once every parked exchange has its completion;
	 * then the database thread stops (it posts nothing more), then the
	 * workers' rings go. */
	ring_server_join(&server);
	if (api.db)
		db_stop(api.db);
	api.db = NULL;
	ring_server_wait(&server);
	tls_identities_free(); /* no connection is left to use one */
	if (cfg->fleet_state[0]) /* the workers are gone: the fleet is still */
		api_save_fleet(&api, cfg->fleet_state);
	api_fini(&api);
	metrics_registry_fini(&metrics);
	if (access_log > STDERR_FILENO)
		close(access_log);
	close(sfd);
	log_info("stopped", "%s", "");
	return 0;
}

/* `ringside token`: prints one signed agent token on stdout. */
static int token_command(const struct config *cfg)
{
	struct jwt_keys keys;
	if (load_keys(cfg, &keys) < 0)
		return 2;
	int status = 2;
	struct jwt_claims c = {0};
	const char *scope = cfg->token.scope;
	if (!keys.sign_key) {
		fprintf(stderr, "ringside: token: no signing key (--jwt-secret-file, or "
				"--jwt-private-key-file with --jwt-public-key-file)\n");
		goto out;
	}
	if (strlen(cfg->token.sub) >= sizeof c.sub || strlen(cfg->token.org) >= sizeof c.organization_id) {
		fprintf(stderr, "ringside: token: --sub and --org are at most %zu bytes\n",
			sizeof c.sub - 1);
		goto out;
	}
	/* Every scope named must be one we know: a typo would mint a token
	 * that is refused later, far from its cause. */
	for (size_t i = 0, n; scope[i]; i += n) {
		while (scope[i] == ' ')
			i++;
		n = strcspn(scope + i, " ");
		if (n && !jwt_scope_parse(scope + i, n)) {
			fprintf(stderr, "ringside: token: --scope: unknown scope '%.*s' (want "
					"agents:read, agents:write, tokens:read, metrics:write)\n",
				(int)n, scope + i);
			goto out;
		}
	}
	strcpy(c.sub, cfg->token.sub);
	strcpy(c.organization_id, cfg->token.org);
	c.scopes = jwt_scope_parse(scope, strlen(scope));
	c.iat = (int64_t)time(NULL);
	c.exp = c.iat + cfg->token.ttl_ms / 1000;
	char token[8192];
	int n = jwt_new_jti(c.jti);
	if (n >= 0)
		n = jwt_sign(&keys, &c, token, sizeof token);
	if (n < 0) {
		fprintf(stderr, "ringside: token: %s\n", jwt_error_reason(n));
		status = 1;
		goto out;
	}
	printf("%.*s\n", n, token);
	status = 0;
out:
	jwt_keys_fini(&keys);
	return status;
}

int main(int argc, char **argv)
{
	struct config cfg;
	switch (config_load(&cfg, argc, argv, NULL, stdout, stderr)) {
	case CONFIG_HELP:
	case CONFIG_VERSION:
		return 0;
	case CONFIG_ERROR:
		return 2;
	case CONFIG_TOKEN:
		return token_command(&cfg);
	case CONFIG_SERVE:
		break;
	}
	log_threshold = cfg.log_level;
	return serve(&cfg);
}
