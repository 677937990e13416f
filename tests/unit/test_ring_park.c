/*
 * Parked exchanges through a real server on loopback (two workers), with
 * a thread of the test's own standing in for the database thread: it
 * takes the tickets handlers park with and posts them back
 * (ring_server_post: MSG_RING into the worker's DEFER_TASKRUN ring).
 * Park and resume; a thousand parked at once across the workers; the
 * client gone while parked (the slot waits for the completion); the
 * deadline (504, the late completion dropped, the connection goes on);
 * requests pipelined behind a parked one answered in order; parking
 * twice in one exchange; a park undone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringside/config.h"
#include "ringside/http_response.h"
#include "ringside/metrics.h"
#include "ringside/ring.h"
#include "ringside/router.h"
#include "../common/loopback.h"

#define MANY 1000

static struct config cfg;
static struct metrics_registry metrics;
static struct ring_server server;
static uint16_t port;

/* ---- The stand-in for the database thread ---- */

struct parked {
	http_ticket ticket;
	uint32_t worker;
	int32_t result;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct parked queue[2 * MANY];
static unsigned queued, taken;
static bool hold;           /* the poster waits while set */
static bool poster_stop;
static pthread_t poster;
static atomic_uint resumed;  /* on_resume calls */
static atomic_uint ended;    /* on_end calls */

static void *poster_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (!poster_stop && (hold || taken == queued))
			pthread_cond_wait(&cond, &lock);
		if (poster_stop && taken == queued)
			break;
		while (taken < queued) {
			struct parked p = queue[taken++];
			pthread_mutex_unlock(&lock);
			assert_int_equal(ring_server_post(&server, p.worker, p.ticket, p.result), 0);
			pthread_mutex_lock(&lock);
		}
		ring_post_flush();
	}
	pthread_mutex_unlock(&lock);
	ring_post_thread_done();
	return NULL;
}

static void set_hold(bool h)
{
	pthread_mutex_lock(&lock);
	hold = h;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static unsigned parked_count(void)
{
	pthread_mutex_lock(&lock);
	unsigned n = queued - taken;
	pthread_mutex_unlock(&lock);
	return n;
}

/* What the handler keeps in its exchange: how many more parks it wants. */
struct park_state {
	int parks_left;
	int32_t sum;
};

static void park_or_fail(struct http_exchange *x, uint32_t timeout_ms, int32_t result)
{
	http_ticket t = http_park(x, timeout_ms);
	if (!t) {
		http_reply(x, 503, "text/plain", NULL, "no park", 7);
		return;
	}
	pthread_mutex_lock(&lock);
	queue[queued++ % (2 * MANY)] = (struct parked){t, x->ctx->worker_id, result};
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* GET /park: parks once (result 7); /park2: twice (7 then 35); /slow:
 * parks with a 200 ms deadline. The answer is the sum of the results. */
static void park_request(struct http_exchange *x)
{
	struct park_state *st = (struct park_state *)(void *)x->handler_space;
	st->parks_left = x->route->pattern[5] == '2' ? 2 : 1;
	bool slow = x->route->pattern[1] == 's';
	st->parks_left--;
	park_or_fail(x, slow ? 200 : 5000, 7);
}

static void park_resume(struct http_exchange *x, int32_t result)
{
	atomic_fetch_add(&resumed, 1);
	struct park_state *st = (struct park_state *)(void *)x->handler_space;
	st->sum += result;
	if (st->parks_left-- > 0) {
		park_or_fail(x, 5000, 35);
		return;
	}
	char body[32];
	int n = snprintf(body, sizeof body, "%d", st->sum);
	http_reply(x, 200, "text/plain", NULL, body, (size_t)n);
}

static void park_end(struct http_exchange *x)
{
	(void)x;
	atomic_fetch_add(&ended, 1);
}

/* GET /unpark: parks, cannot hand the ticket over, undoes it, answers. */
static void unpark_request(struct http_exchange *x)
{
	assert_true(http_park(x, 5000) != 0);
	http_unpark(x);
	http_reply(x, 503, "text/plain", NULL, "full", 4);
}

static void ping_request(struct http_exchange *x)
{
	http_reply(x, 200, "text/plain", NULL, "pong", 4);
}

static const struct http_handler park_h = {
	.on_request = park_request, .on_resume = park_resume, .on_end = park_end};
static const struct http_handler ping_h = {.on_request = ping_request};
static const struct http_handler unpark_h = {.on_request = unpark_request};

static const struct http_route routes[] = {
	{HTTP_GET, "/park", &park_h, 0},
	{HTTP_GET, "/park2", &park_h, 0},
	{HTTP_GET, "/slow", &park_h, 0},
	{HTTP_GET, "/ping", &ping_h, 0},
	{HTTP_GET, "/unpark", &unpark_h, 0},
};
static const struct router router = {routes, sizeof routes / sizeof routes[0]};

static char *no_env(const char *name)
{
	(void)name;
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	char *argv[] = {"ringside", "--listen", "127.0.0.1:0", "--workers", "2",
			"--max-connections", "4096", "--log-level", "warn", NULL};
	if (config_load(&cfg, 9, argv, no_env, stdout, stderr) != CONFIG_SERVE)
		return -1;
	if (metrics_registry_init(&metrics, &router, cfg.workers, cfg.max_connections) < 0)
		return -1;
	if (ring_server_start(&server, &cfg, &router, &metrics, NULL, -1) < 0)
		return -1;
	port = server.port[0];
	return pthread_create(&poster, NULL, poster_main, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	pthread_mutex_lock(&lock);
	poster_stop = true;
	hold = false;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(poster, NULL);
	ring_server_stop(&server);
	ring_server_wait(&server);
	metrics_registry_fini(&metrics);
	return 0;
}

/* ---- A small client ---- */

static int64_t now_ms(void)
{
	return loopback_now_ms();
}

static int connect_to_server(void)
{
	int fd = loopback_connect(port);
	assert_true(fd >= 0);
	return fd;
}

static void send_str(int fd, const char *s)
{
	assert_true(loopback_send_str(fd, s));
}

/* Reads one response (Content-Length framed) into buf: its status, and
 * its body NUL-terminated in body. */
static int read_response(int fd, char *body, size_t cap, int timeout_ms)
{
	static char in[8192];
	static size_t in_len;
	static int in_fd = -1;
	if (in_fd != fd) {
		in_fd = fd;
		in_len = 0;
	}
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		char *end = in_len ? memmem(in, in_len, "\r\n\r\n", 4) : NULL;
		if (end) {
			size_t head = (size_t)(end - in) + 4;
			char *cl = memmem(in, head, "Content-Length: ", 16);
			assert_non_null(cl);
			size_t n = strtoul(cl + 16, NULL, 10);
			if (in_len >= head + n) {
				int status = atoi(in + 9);
				assert_true(n < cap);
				memcpy(body, in + head, n);
				body[n] = '\0';
				memmove(in, in + head + n, in_len - head - n);
				in_len -= head + n;
				return status;
			}
		}
		int left = (int)(deadline - now_ms());
		if (left <= 0)
			fail_msg("no response in time (%zu bytes read)", in_len);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t got = recv(fd, in + in_len, sizeof in - in_len, 0);
		assert_true(got > 0);
		in_len += (size_t)got;
	}
}

static void wait_for(unsigned (*count)(void), unsigned want, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	while (count() != want) {
		if (now_ms() > deadline)
			fail_msg("waited for %u, have %u", want, count());
		usleep(1000);
	}
}

static unsigned open_connections(void)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < cfg.workers; i++)
		n += atomic_load(&metrics_shard(&metrics, i)->view.open[METRICS_LISTENER_MAIN]);
	return n;
}

/* ---- Tests ---- */

static void parks_and_resumes_from_another_thread(void **state)
{
	(void)state;
	char body[64];
	int fd = connect_to_server();
	for (int i = 0; i < 20; i++) {
		send_str(fd, "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
		assert_int_equal(read_response(fd, body, sizeof body, 5000), 200);
		assert_string_equal(body, "7");
	}
	send_str(fd, "GET /park2 HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(read_response(fd, body, sizeof body, 5000), 200);
	assert_string_equal(body, "42"); /* parked twice: 7 + 35 */
	close(fd);
}

static void a_thousand_parked_at_once_across_workers(void **state)
{
	(void)state;
	static int fds[MANY];
	char body[64];
	set_hold(true);
	unsigned before = atomic_load(&resumed);
	for (int i = 0; i < MANY; i++) {
		fds[i] = connect_to_server();
		send_str(fds[i], "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
	}
	wait_for(parked_count, MANY, 10000);
	/* Every one is parked and none is answered. */
	for (int i = 0; i < MANY; i += 97) {
		struct pollfd p = {.fd = fds[i], .events = POLLIN};
		assert_int_equal(poll(&p, 1, 0), 0);
	}
	unsigned per_worker[2] = {0, 0};
	pthread_mutex_lock(&lock);
	for (unsigned i = taken; i < queued; i++)
		per_worker[queue[i % (2 * MANY)].worker]++;
	pthread_mutex_unlock(&lock);
	set_hold(false);
	for (int i = 0; i < MANY; i++) {
		assert_int_equal(read_response(fds[i], body, sizeof body, 10000), 200);
		assert_string_equal(body, "7");
		close(fds[i]);
	}
	assert_int_equal(atomic_load(&resumed) - before, MANY);
	print_message("parked at once: %u on worker 0, %u on worker 1\n", per_worker[0],
		      per_worker[1]);
	assert_true(per_worker[0] > 0 && per_worker[1] > 0);
}

static void a_client_gone_while_parked_frees_its_slot_after_the_completion(void **state)
{
	(void)state;
	wait_for(open_connections, 0, 5000);
	unsigned ended_before = atomic_load(&ended), resumed_before = atomic_load(&resumed);
	set_hold(true);
	int fd = connect_to_server();
	send_str(fd, "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
	wait_for(parked_count, 1, 5000);
	struct linger rst = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
	close(fd); /* a reset: the server closes its side at once */
	usleep(100 * 1000);
	/* Closed, but the slot waits: another thread may still write into
	 * the exchange. The handler has given back what it took. */
	assert_int_equal(open_connections(), 1);
	assert_int_equal(atomic_load(&ended) - ended_before, 1);
	set_hold(false);
	wait_for(open_connections, 0, 5000);
	assert_int_equal(atomic_load(&resumed), resumed_before); /* dropped, not resumed */
}

static void past_its_deadline_a_parked_exchange_answers_504(void **state)
{
	(void)state;
	char body[256];
	unsigned resumed_before = atomic_load(&resumed);
	set_hold(true);
	int fd = connect_to_server();
	int64_t t0 = now_ms();
	send_str(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(read_response(fd, body, sizeof body, 5000), 504);
	int64_t took = now_ms() - t0;
	assert_true(took >= 200 && took < 1000);
	assert_non_null(strstr(body, "\"requestId\""));
	/* The connection goes on: the next request waits for the owed
	 * completion (which may write into the exchange), then is answered. */
	send_str(fd, "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n");
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 100), 0);
	set_hold(false);
	assert_int_equal(read_response(fd, body, sizeof body, 5000), 200);
	assert_string_equal(body, "pong");
	assert_int_equal(atomic_load(&resumed), resumed_before); /* the late one dropped */
	close(fd);
}

static void pipelined_requests_behind_a_parked_one_stay_in_order(void **state)
{
	(void)state;
	char body[64];
	set_hold(true);
	int fd = connect_to_server();
	send_str(fd, "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /park HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /park2 HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(read_response(fd, body, sizeof body, 5000), 200);
	assert_string_equal(body, "pong");
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 100), 0); /* the ping behind the park waits */
	set_hold(false);
	const char *want[] = {"7", "pong", "42", "pong"};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(read_response(fd, body, sizeof body, 5000), 200);
		assert_string_equal(body, want[i]);
	}
	close(fd);
}

static void half_closed_while_parked_is_still_answered(void **state)
{
	(void)state;
	char body[64];
	set_hold(true);
	int fd = connect_to_server();
	send_str(fd, "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
	wait_for(parked_count, 1, 5000);
	shutdown(fd, SHUT_WR);
	usleep(50 * 1000);
	set_hold(false);
	assert_int_equal(read_response(fd, body, sizeof body, 5000), 200);
	assert_string_equal(body, "7");
	char c;
	assert_int_equal(recv(fd, &c, 1, 0), 0); /* then the close */
	close(fd);
}

static void an_undone_park_owes_nothing(void **state)
{
	(void)state;
	char body[64];
	int fd = connect_to_server();
	for (int i = 0; i < 300; i++) { /* past PARKS_OWED_MAX and a wrap of the park count */
		send_str(fd, "GET /unpark HTTP/1.1\r\nHost: t\r\n\r\n");
		assert_int_equal(read_response(fd, body, sizeof body, 5000), 503);
	}
	send_str(fd, "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(read_response(fd, body, sizeof body, 5000), 200);
	assert_string_equal(body, "7");
	close(fd);
	wait_for(open_connections, 0, 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parks_and_resumes_from_another_thread),
		cmocka_unit_test(a_thousand_parked_at_once_across_workers),
		cmocka_unit_test(a_client_gone_while_parked_frees_its_slot_after_the_completion),
		cmocka_unit_test(past_its_deadline_a_parked_exchange_answers_504),
		cmocka_unit_test(pipelined_requests_behind_a_parked_one_stay_in_order),
		cmocka_unit_test(half_closed_while_parked_is_still_answered),
		cmocka_unit_test(an_undone_park_owes_nothing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
