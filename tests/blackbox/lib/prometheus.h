/*
 * A real Prometheus (Debian's /usr/bin/prometheus) for the tests that
 * have it scrape Ringside.
 */
#ifndef RINGSIDE_TESTS_BB_PROMETHEUS_H
#define RINGSIDE_TESTS_BB_PROMETHEUS_H

#include <stdint.h>

#include "server.h"

#define H_PROMETHEUS "/usr/bin/prometheus"

/*
 * Starts Prometheus with scrape_configs (YAML list items, each line
 * indented by two spaces) under a global scrape every 1 s (timeout
 * 900 ms), its configuration and data in dir, its web API on a free
 * loopback port (*port). Registered like a server: a failed check prints
 * its stderr; stop it with server_stop.
 */
void h_prometheus_start(struct server *prom, const char *dir, const char *scrape_configs,
			uint16_t *port);

#endif
