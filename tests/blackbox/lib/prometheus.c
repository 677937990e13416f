/* A real Prometheus for the tests (prometheus.h). */
#include "prometheus.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "proc.h"
#include "sock.h"

void h_prometheus_start(struct server *prom, const char *dir, const char *scrape_configs,
			uint16_t *port)
{
	char cfg_path[256], flag_cfg[300], flag_data[300], flag_web[64];

	snprintf(cfg_path, sizeof(cfg_path), "%s/prometheus.yml", dir);
	FILE *f = fopen(cfg_path, "we");

	CHECK(f != NULL, "create %s: %s", cfg_path, strerror(errno));
	fprintf(f, "global: {scrape_interval: 1s, scrape_timeout: 900ms}\n"
		   "scrape_configs:\n%s", scrape_configs);
	CHECK(fclose(f) == 0, "write %s: %s", cfg_path, strerror(errno));
	*port = h_free_port();
	snprintf(flag_cfg, sizeof(flag_cfg), "--config.file=%s", cfg_path);
	snprintf(flag_data, sizeof(flag_data), "--storage.tsdb.path=%s/data", dir);
	snprintf(flag_web, sizeof(flag_web), "--web.listen-address=127.0.0.1:%u", *port);
	const char *const argv[] = { H_PROMETHEUS, flag_cfg, flag_data, flag_web, NULL };

	h_proc_start(prom, argv, "prometheus");
}
