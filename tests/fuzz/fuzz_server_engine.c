/*
 * The connection engine (src/server/) with the real routes and handlers
 * of src/api, fed any bytes in pieces cut where the input's hash says,
 * with the clock moved on between pieces now and then (deadlines fire)
 * and the client's FIN or a reset at the end. Whatever comes in: no
 * crash, no read or write out of bounds, the output is one or more
 * complete-looking HTTP/1.1 responses, and the connection is always
 * releasable once closed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../common/fake_host.h"
#include "fuzz_util.h"
#include "ringside/api.h"
#include "ringside/config.h"
#include "ringside/metrics.h"
#include "ringside/server.h"

static char out[1 << 20];
static size_t out_len;


static struct config cfg;
static struct metrics_registry metrics;
static struct api api;
static struct server server;
static struct server_conn conn;
static uint64_t now_ns = 1000000000000ull;

static void set_up(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	char *argv[] = {"ringside", "--workers", "1", "--max-connections", "4",
			"--max-body-bytes", "65536", "--log-level", "error",
			"--access-log", "-", NULL};
	CHECK(config_load(&cfg, 11, argv, NULL, stdout, stderr) == CONFIG_SERVE);
	CHECK(metrics_registry_init(&metrics, &api_router, 1, cfg.max_connections) == 0);
	CHECK(api_init(&api, &cfg, 1, NULL) == 0); /* no key: agent routes answer 503 */
	struct server_params p = {
		.cfg = &cfg, .router = &api_router, .metrics = &metrics, .api = &api,
		.slots = 4, .request_id_nonce = 1, .access_log = true, .host = &fake_server_host,
	};
	CHECK(server_init(&server, &p) == 0);
}

static void drain(void)
{
	const char *p;
	size_t n;
	while ((p = server_conn_output(&server, &conn, &n)) != NULL && n) {
		if (out_len + n <= sizeof out) {
			memcpy(out + out_len, p, n);
			out_len += n;
		}
		server_conn_sent(&server, &conn, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	set_up();
	char *in = fuzz_copy(data, size);
	uint64_t h = fuzz_hash(data, size);
	out_len = 0;
	server_set_clock(&server, now_ns, (int64_t)time(NULL) * 1000000000);
	server_conn_open(&server, &conn, 0, 0, 0);
	for (size_t at = 0; at < size && !server_conn_closing(&conn);) {
		size_t n = 1 + (h & 0xff);
		h = h * 6364136223846793005ull + 1442695040888963407ull;
		if (n > size - at)
			n = size - at;
		server_conn_input(&server, &conn, in + at, n);
		drain();
		at += n;
		if ((h >> 60) == 0) { /* now and then, time passes */
			now_ns += 3000000000ull;
			server_set_clock(&server, now_ns, (int64_t)time(NULL) * 1000000000);
			server_tick(&server);
			drain();
		}
		server_pass_begin(&server);
		server_pass_end(&server);
		drain();
	}
	if (!server_conn_closing(&conn)) {
		if (h & 1)
			server_conn_eof(&server, &conn);
		drain();
		server_conn_abort(&server, &conn);
	}
	CHECK(server_conn_releasable(&conn));
	server_conn_release(&server, &conn);
	/* What was sent begins as a response. */
	CHECK(out_len == 0 || (out_len >= 12 && memcmp(out, "HTTP/1.", 7) == 0));
	now_ns += 1000000;
	free(in);
	return 0;
}
