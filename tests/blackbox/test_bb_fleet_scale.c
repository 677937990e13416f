/*
 * Black-box: a fleet scrape never stalls its worker. Past the cardinality
 * cap, the worker serving /metrics/fleet stopped serving everything else
 * for 100-860 ms at a time (/health up to 690 ms): a piece that started in
 * a dropped family walked it across every agent before returning. Here
 * 30 000 agents each send the full sample to a one-worker server with the
 * default cap, and /health, asked every 2 ms on another connection, must
 * answer within 20 ms while a capped scrape of every family streams.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SECRET "tests/auth/test-only-hs256.secret"
#define AGENTS 30000
#define BATCH 32 /* reports pipelined per write */
#define MAX_HEALTH_MS 20

static char *sample;
static size_t sample_len;

/* Posts one report for each of AGENTS agents (10 organizations), BATCH
 * at a time on one keep-alive connection; every answer must be 202. */
static void fill_fleet(uint16_t port)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();
	size_t cap = BATCH * (sample_len + 1024), len;
	char *batch = malloc(cap);
	CHECK(batch != NULL, "out of memory");
	for (int first = 0; first < AGENTS; first += BATCH) {
		len = 0;
		int n = AGENTS - first < BATCH ? AGENTS - first : BATCH;
		for (int i = first; i < first + n; i++) {
			char sub[32], org[32];
			snprintf(sub, sizeof sub, "agent-%d", i);
			snprintf(org, sizeof org, "org-%d", i % 10);
			char *tok = h_mint_token(SECRET, sub, org, "metrics:write");
			len += (size_t)snprintf(batch + len, cap - len,
						"POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n"
						"Authorization: Bearer %s\r\n"
						"Content-Type: application/json\r\n"
						"Content-Length: %zu\r\n\r\n",
						tok, sample_len);
			memcpy(batch + len, sample, sample_len);
			len += sample_len;
			free(tok);
		}
		conn_send(c, batch, len);
		for (int i = 0; i < n; i++) {
			expect_response(c, r, false);
			CHECK(r->status == 202, "report %d: status %d: %.300s", first + i, r->status,
			      r->body);
		}
	}
	free(batch);
	free(r);
	conn_close(c);
}

static void capped_scrape_of_30000_agents_never_holds_health_past_20_ms(void **state)
{
	uint16_t port = port_of(state);
	fill_fleet(port);

	struct h_prober p;
	h_prober_start(&p, port, 2);
	h_sleep_ms(100);
	struct conn *c = conn_open(port);
	conn_send_str(c, "GET /metrics/fleet?include=all HTTP/1.1\r\nHost: t\r\n\r\n");
	struct http_response *r = resp_new();
	expect_response(c, r, true);
	CHECK(r->status == 200, "status %d", r->status);
	size_t total = 0, tail_len = 0;
	char *chunk = malloc(1 << 20), tail[4096] = "", err[256];
	CHECK(chunk != NULL, "out of memory");
	int64_t t0 = h_now_ms();
	for (int i = 0; i < 1000000; i++) {
		long n = conn_read_chunk(c, chunk, 1 << 20, 10000, err, sizeof err);
		CHECK(n >= 0, "chunk: %s", err);
		if (n == 0)
			break;
		total += (size_t)n;
		/* The end of the body holds fleet_series_dropped. */
		size_t keep = (size_t)n < sizeof tail - 1 ? (size_t)n : sizeof tail - 1;
		memcpy(tail, chunk + n - keep, keep);
		tail_len = keep;
	}
	tail[tail_len] = '\0';
	int64_t scrape_ms = h_now_ms() - t0;
	h_prober_stop(&p);
	double dropped = 0;
	CHECK(expo_find(tail, "fleet_series_dropped{reason=\"max_series\"}", &dropped) &&
		      dropped > 0,
	      "the scrape was not capped (no dropped series): ...%s", tail);
	print_message("scrape: %zu bytes in %lld ms, %.0f series past the cap; /health asked %d "
		      "times, worst %lld ms\n",
		      total, (long long)scrape_ms, dropped, p.count, (long long)p.worst_ms);
	CHECK(p.count >= 5, "only %d /health answers during the scrape", p.count);
	CHECK(p.worst_ms <= MAX_HEALTH_MS,
	      "/health took %lld ms during a capped scrape of %d agents (limit %d ms)",
	      (long long)p.worst_ms, AGENTS, MAX_HEALTH_MS);
	free(chunk);
	free(r);
	conn_close(c);
}

static int setup(void **state)
{
	/* One worker: the prober and the scrape share it, as the worst case
	 * of any number of workers. The default cap (1 000 000 series) is
	 * reached: 30 000 agents x about 260 series. */
	static const char *const args[] = {"--workers", "1", "--jwt-secret-file", SECRET,
					   "--max-body-bytes", "64KiB", NULL};
	sample = h_read_sample("ingest-full.json", &sample_len);
	return h_group_setup_with(state, args);
}

static int teardown(void **state)
{
	free(sample);
	return h_group_teardown(state);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(capped_scrape_of_30000_agents_never_holds_health_past_20_ms),
	};
	return H_RUN_GROUP("fleet_scale", tests, setup, teardown);
}
