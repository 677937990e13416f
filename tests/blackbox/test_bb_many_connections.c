/*
 * Black-box: 10 000 concurrent connections on a server with default flags.
 * Idle connections must not starve new ones, and any of them can still
 * send a request. Needs RLIMIT_NOFILE >= 10 100 (hard); skips (77) below.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NCONN 10000
#define NEED_FDS 10100
#define BUSY_EVERY 100 /* every 100th idle connection sends a request */

static void ten_thousand_idle_connections_do_not_block_new_requests(void **state)
{
	uint16_t port = port_of(state);
	int64_t start = h_now_ms(), deadline = start + 30000;
	int *fds = malloc(NCONN * sizeof(int));
	struct http_response *r = resp_new();
	char err[2048];

	CHECK(fds != NULL, "out of memory");
	for (int i = 0; i < NCONN; i++) {
		fds[i] = h_try_connect(port);
		if (fds[i] < 0) {
			int e = -fds[i];

			for (int j = 0; j < i; j++)
				h_close_rst(fds[j]);
			H_FAIL("connection %d of %d failed: %s", i, NCONN, strerror(e));
		}
		if (i % 500 == 0 && h_now_ms() > deadline) {
			for (int j = 0; j <= i; j++)
				h_close_rst(fds[j]);
			H_FAIL("opening %d connections took over 30 s", i);
		}
	}
	int64_t opened = h_now_ms();

	/* A new client is still answered promptly. */
	struct conn *fresh = conn_open(port);
	int64_t t0 = h_now_ms();

	conn_send_str(fresh, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	int rc = conn_read_response(fresh, r, false, 2000, err, sizeof(err));
	int64_t took = h_now_ms() - t0;

	if (rc != 0) {
		for (int j = 0; j < NCONN; j++)
			h_close_rst(fds[j]);
		H_FAIL("with %d idle connections, GET /health on a new one: %s",
		       NCONN, err);
	}
	expect_health_ok(r);
	CHECK(took < 2000, "GET /health took %lld ms with %d idle connections",
	      (long long)took, NCONN);
	conn_close(fresh);

	/* Some of the idle ones wake up and ask. */
	int sent = 0;

	for (int i = BUSY_EVERY / 2; i < NCONN; i += BUSY_EVERY) {
		int e = h_try_send_str(fds[i], "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");

		CHECK(e == 0, "send on idle connection %d: %s", i, strerror(-e));
		sent++;
	}
	int bad = 0;
	char first_bad[2300] = "";

	for (int i = BUSY_EVERY / 2; i < NCONN; i += BUSY_EVERY) {
		struct conn *c = conn_wrap(fds[i]);
		int left = (int)(deadline - h_now_ms());

		rc = conn_read_response(c, r, false, left > 2000 ? left : 2000, err,
					sizeof(err));
		if (rc != 0 || r->status != 200) {
			if (!bad++)
				snprintf(first_bad, sizeof(first_bad),
					 "connection %d: %s", i,
					 rc ? err : r->raw_status_line);
		}
		c->fd = -1; /* still owned by fds[] */
		conn_close(c);
	}
	fprintf(stderr, "opened %d connections in %lld ms; new request answered "
		"in %lld ms\n", NCONN, (long long)(opened - start), (long long)took);
	for (int j = 0; j < NCONN; j++)
		h_close_rst(fds[j]); /* RST: no 10 000 sockets left in TIME_WAIT */
	free(fds);
	CHECK(bad == 0, "%d of %d requests on long-idle connections failed; first: %s",
	      bad, sent, first_bad);

	expect_health_on_port(port);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(ten_thousand_idle_connections_do_not_block_new_requests),
	};

	h_init();
	h_need_fds(NEED_FDS);
	return H_RUN_GROUP("blackbox_many_connections", tests, h_group_setup,
			   h_group_teardown);
}
