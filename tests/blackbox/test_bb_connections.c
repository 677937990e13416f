/*
 * Black-box: connection slots. With --workers 1 --max-connections 8,
 * clients that vanish half-way (close or RST) must give their slot back,
 * and when all 8 slots are busy a 9th connection gets 503 and is closed
 * (over TLS: is closed unanswered, see expect_503_and_close).
 */
#include "harness.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 8

static int slots_setup(void **state)
{
	static const char *const args[] = { "--workers", "1",
					    "--max-connections", "8", NULL };

	return h_group_setup_with(state, args);
}

static void close_all(struct conn **cs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		conn_close(cs[i]);
		cs[i] = NULL;
	}
}

/*
 * Opens n keep-alive connections and gets a 200 on each. Slots are freed
 * asynchronously, so on a refusal it closes them all and retries, for at
 * most timeout_ms. Returns true with cs[] open, or false with the reason
 * in why[].
 */
static bool open_n_healthy(uint16_t port, struct conn **cs, size_t n,
			   int timeout_ms, char *why, size_t wcap)
{
	struct http_response *r = resp_new();
	int64_t deadline = h_now_ms() + timeout_ms;
	char err[2048];

	for (int attempt = 0; attempt < 200; attempt++) {
		bool ok = true;

		for (size_t i = 0; i < n; i++)
			cs[i] = conn_open(port);
		for (size_t i = 0; i < n && ok; i++) {
			if (h_try_send_str(cs[i]->fd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n") != 0) {
				snprintf(why, wcap, "connection %zu: send failed", i);
				ok = false;
				break;
			}
			if (conn_read_response(cs[i], r, false, 2000, err,
					       sizeof(err)) != 0) {
				snprintf(why, wcap, "connection %zu: %s", i, err);
				ok = false;
			} else if (r->status != 200) {
				snprintf(why, wcap, "connection %zu: got \"%s\" %.300s", i,
					 r->raw_status_line, r->body);
				ok = false;
			}
		}
		if (ok) {
			free(r);
			return true;
		}
		close_all(cs, n);
		if (h_now_ms() >= deadline)
			break;
		h_sleep_ms(50);
	}
	free(r);
	return false;
}

/* Reads the answer a connection gets when no slot is free. Over TLS
 * (the harness's TLS mode) there is none: a 503 cannot be said without a
 * handshake, which would take the slot, so the server closes the
 * connection unanswered and the client's handshake sees the close (it
 * used to get a plaintext 503 in its TLS stream: "wrong version number"). */
static void expect_503_and_close(struct conn *c)
{
	if (h_tls_mode()) {
		/* Starts the handshake, which fails. */
		(void)h_try_send_str(c->fd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
		expect_conn_closed(c, 2000);
		return;
	}
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	/* The server may refuse at accept or only after a request. */
	if (poll(&pfd, 1, 300) == 0)
		(void)h_try_send_str(c->fd, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_rejected_and_closed(c, 503, "SERVICE_UNAVAILABLE");
}

static void aborted_half_requests_give_their_slots_back(void **state)
{
	uint16_t port = port_of(state);
	struct conn *cs[SLOTS] = { 0 };
	char why[2400] = "";

	for (int i = 0; i < 200; i++) {
		int fd = h_connect(port);

		(void)h_try_send_str(fd, "GET /health HTTP/1.1\r\nHo");
		if (i % 2)
			h_close_rst(fd);
		else
			close(fd);
	}
	CHECK(open_n_healthy(port, cs, SLOTS, 3000, why, sizeof(why)),
	      "after 200 aborted connections, %d concurrent keep-alive "
	      "connections were not all served within 3 s: %s", SLOTS, why);
	close_all(cs, SLOTS);
}

static void ninth_connection_gets_503_when_8_slots_are_busy(void **state)
{
	uint16_t port = port_of(state);
	struct conn *cs[SLOTS] = { 0 };
	char why[2400] = "";

	CHECK(open_n_healthy(port, cs, SLOTS, 3000, why, sizeof(why)),
	      "could not get %d connections served: %s", SLOTS, why);

	struct conn *ninth = conn_open(port);

	expect_503_and_close(ninth);
	conn_close(ninth);

	/* The 8 are still served. */
	for (size_t i = 0; i < SLOTS; i++) {
		struct http_response *r = resp_new();

		conn_send_str(cs[i], "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
		expect_response(cs[i], r, false);
		expect_health_ok(r);
		free(r);
	}

	/* Freeing one slot lets a new client in. */
	conn_close(cs[SLOTS - 1]);
	cs[SLOTS - 1] = NULL;
	CHECK(open_n_healthy(port, &cs[SLOTS - 1], 1, 2000, why, sizeof(why)),
	      "after closing one of %d busy connections, a new one was not "
	      "served within 2 s: %s", SLOTS, why);
	close_all(cs, SLOTS);
}

static void slots_held_by_half_heads_count_and_are_served(void **state)
{
	uint16_t port = port_of(state);
	struct conn *cs[SLOTS] = { 0 };
	struct http_response *r = resp_new();
	char why[2400] = "";

	/* Wait until all slots are free again, then hold them with half heads. */
	CHECK(open_n_healthy(port, cs, SLOTS, 3000, why, sizeof(why)),
	      "slots not free: %s", why);
	for (size_t i = 0; i < SLOTS; i++)
		conn_send_str(cs[i], "GET /health HTTP/1.1\r\nHo");
	struct conn *ninth = conn_open(port);

	expect_503_and_close(ninth);
	conn_close(ninth);
	for (size_t i = 0; i < SLOTS; i++) {
		conn_send_str(cs[i], "st: a\r\n\r\n");
		expect_response(cs[i], r, false);
		expect_health_ok(r);
	}
	close_all(cs, SLOTS);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(aborted_half_requests_give_their_slots_back),
		BB_TEST(ninth_connection_gets_503_when_8_slots_are_busy),
		BB_TEST(slots_held_by_half_heads_count_and_are_served),
	};

	h_init();
	return H_RUN_GROUP("blackbox_connections", tests, slots_setup,
			   h_group_teardown);
}
