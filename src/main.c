/*
 * ringside: configuration, listeners and workers, signals, shutdown.
 * Where a request goes from here: src/ring (io_uring workers, connections)
 * -> src/http (parser, router, response writer) -> src/api (handlers).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ringside/api.h"
#include "ringside/config.h"
#include "ringside/log.h"
#include "ringside/metrics.h"
#include "ringside/ring.h"

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

static int serve(const struct config *cfg)
{
	/* Signals are taken by this thread through a signalfd; blocked before
	 * the workers start so they inherit the mask. SIGPIPE is moot (sends
	 * use MSG_NOSIGNAL) but ignored for any stray write. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
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
	sample_process(&metrics);
	struct ring_server server;
	if (ring_server_start(&server, cfg, &api_router, &metrics) < 0)
		return 1;
	log_info("listening", "addr=%s port=%u metrics_addr=%s metrics_port=%u workers=%u "
		 "max_connections=%u version=%s",
		 cfg->listen.text, server.port[0],
		 cfg->metrics_listen.set ? cfg->metrics_listen.text : "-", server.port[1],
		 cfg->workers, cfg->max_connections, RINGSIDE_VERSION);

	/* Until a signal: sample the process collector once a second, here,
	 * so a scrape on a worker never reads /proc (DESIGN.md "Threads"). */
	struct signalfd_siginfo si;
	ssize_t n = -1;
	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		int r = poll(&pfd, 1, PROCESS_SAMPLE_MS);
		if (r > 0) {
			n = read(sfd, &si, sizeof si);
			if (n == sizeof si)
				break;
		} else if (r == 0) {
			sample_process(&metrics);
		} else if (errno != EINTR) {
			break;
		}
	}
	log_info("shutting down", "signal=%s timeout_ms=%u",
		 n == sizeof si ? strsignal((int)si.ssi_signo) : "?", cfg->shutdown_timeout_ms);
	ring_server_stop(&server);
	ring_server_wait(&server);
	metrics_registry_fini(&metrics);
	close(sfd);
	log_info("stopped", "%s", "");
	return 0;
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
	case CONFIG_SERVE:
		break;
	}
	log_threshold = cfg.log_level;
	return serve(&cfg);
}
