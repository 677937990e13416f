/*
 * The cost of one scrape of /metrics, in microseconds: the real registry
 * over the real route table, 2 shards, every route with a few methods and
 * statuses observed (so each has its 15 lines of counter and histogram),
 * merged and written as text 0.0.4, then the same compressed with gzip as
 * Prometheus asks. Prints "scrape <us> <bytes> scrape_gzip <us> <bytes>",
 * medians of 5 runs. A program, not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"

#include "ringside/api.h"
#include "ringside/http_gzip.h"
#include "ringside/metrics.h"
#include "ringside/metrics_expo.h"

static char text[2 << 20], packed[2 << 20];

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 2000;
	struct metrics_registry r;
	if (metrics_registry_init(&r, &api_router, 2, 16384) < 0)
		return 1;
	static const enum http_method methods[] = {HTTP_GET, HTTP_HEAD, HTTP_POST};
	static const unsigned statuses[] = {200, 404, 405, 500};
	uint64_t ns = 1000;
	for (uint32_t route = 0; route < r.route_slots; route++)
		for (size_t m = 0; m < 3; m++)
			for (size_t s = 0; s < 4; s++, ns = ns * 7 % 900000007)
				metrics_observe_request(&r, &r.shards[(route + s) % 2], route,
							methods[m], statuses[s], ns);
	struct process_stats p = {.cpu_user_seconds = 12.345678, .cpu_system_seconds = 3.21,
				  .resident_bytes = 50u << 20, .virtual_bytes = 900u << 20,
				  .heap_bytes = 30u << 20, .open_fds = 1234, .max_fds = 20000,
				  .start_time_seconds = 1795348800.12};
	metrics_publish_process(&r, &p);
	struct http_gzip gz;
	if (http_gzip_init(&gz) < 0)
		return 1;

	double plain[5], zipped[5];
	size_t text_len = 0, packed_len = 0;
	for (int run = 0; run < 5; run++) {
		double t0 = (bench_seconds() * 1e6);
		for (int i = 0; i < iters; i++) {
			struct expo e;
			expo_init(&e, text, sizeof text, EXPO_TEXT_004);
			metrics_write_exposition(&r, &r.shards[0], &e);
			expo_finish(&e);
			text_len = e.len;
		}
		double t1 = (bench_seconds() * 1e6);
		for (int i = 0; i < iters; i++) {
			struct expo e;
			expo_init(&e, text, sizeof text, EXPO_TEXT_004);
			metrics_write_exposition(&r, &r.shards[0], &e);
			expo_finish(&e);
			packed_len = http_gzip_compress(&gz, text, e.len, packed, sizeof packed);
		}
		double t2 = (bench_seconds() * 1e6);
		plain[run] = (t1 - t0) / iters;
		zipped[run] = (t2 - t1) / iters;
	}
	printf("scrape %.1f %zu scrape_gzip %.1f %zu\n", bench_median(plain, 5), text_len,
	       bench_median(zipped, 5), packed_len);
	http_gzip_fini(&gz);
	metrics_registry_fini(&r);
	return 0;
}
