/*
 * The server's side of bodies produced in pieces (http_reply_stream),
 * through a real one-worker server on loopback and producers of our own:
 * a producer that says HTTP_PRODUCE_AGAIN is called again, once per pass
 * of the worker's loop and never twice in one, and the worker keeps
 * serving other connections meanwhile (also while a producer says AGAIN
 * and nothing else); gzip streams inflate to the pieces; an AGAIN before
 * the first byte, and an empty body, on HTTP/1.1 and HTTP/1.0.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ringside/config.h"
#include "ringside/http_response.h"
#include "ringside/metrics.h"
#include "ringside/ring.h"
#include "ringside/router.h"
#include "../common/loopback.h"

#define PIECES 12
#define PIECE_LEN 40000u
#define AGAINS 40 /* before each piece */

/* Written by the worker thread, read by the test's. */
static atomic_uint passes;           /* loop passes (the pass hook) */
static atomic_uint calls;            /* producer calls */
static atomic_uint twice_in_a_pass;  /* a producer called again in the pass of its last call */
static atomic_bool released;         /* GET /release: the holding producer may go on */

struct gen {
	uint32_t piece, again_left;
	unsigned last_pass;
	bool hold;  /* AGAIN until released, then the pieces */
	bool empty; /* one AGAIN, then the end */
};

/* Piece k: "piece 00000k\n" lines, PIECE_LEN bytes. */
static void fill_piece(char *buf, uint32_t k)
{
	char line[16];
	snprintf(line, sizeof line, "piece %06u\n", k);
	for (size_t i = 0; i < PIECE_LEN; i++)
		buf[i] = line[i % 13];
}

static size_t produce(void *state, struct http_context *ctx, char *buf, size_t cap)
{
	(void)ctx;
	struct gen *g = state;
	unsigned pass = atomic_load(&passes);
	if (atomic_fetch_add(&calls, 1) && pass == g->last_pass)
		atomic_fetch_add(&twice_in_a_pass, 1);
	g->last_pass = pass;
	if (g->empty) {
		if (g->again_left--)
			return HTTP_PRODUCE_AGAIN;
		return 0;
	}
	if (g->hold && !atomic_load(&released))
		return HTTP_PRODUCE_AGAIN;
	if (g->piece == PIECES)
		return 0;
	if (g->again_left) {
		g->again_left--;
		return HTTP_PRODUCE_AGAIN;
	}
	if (cap < PIECE_LEN)
		return 0; /* (no cmocka on the worker's thread) the body comes out short */
	fill_piece(buf, g->piece++);
	g->again_left = g->hold ? 0 : AGAINS;
	return PIECE_LEN;
}

static unsigned stream_head(struct http_exchange *x, unsigned flags, struct gen g)
{
	g.last_pass = ~0u;
	int r = http_reply_stream(x, 200, "text/plain", NULL, flags, produce, &g, sizeof g);
	assert_int_equal(r, 0);
	return 0;
}

static unsigned again_head(struct http_exchange *x, const char *buf, const struct http_request *req)
{
	(void)buf;
	(void)req;
	return stream_head(x, 0, (struct gen){.again_left = AGAINS});
}

static unsigned again_gzip_head(struct http_exchange *x, const char *buf,
				const struct http_request *req)
{
	(void)buf;
	(void)req;
	return stream_head(x, HTTP_STREAM_GZIP, (struct gen){.again_left = AGAINS});
}

static unsigned hold_head(struct http_exchange *x, const char *buf, const struct http_request *req)
{
	(void)buf;
	(void)req;
	return stream_head(x, 0, (struct gen){.hold = true});
}

static unsigned empty_head(struct http_exchange *x, const char *buf, const struct http_request *req)
{
	(void)buf;
	(void)req;
	return stream_head(x, 0, (struct gen){.empty = true, .again_left = 1});
}

static unsigned empty_gzip_head(struct http_exchange *x, const char *buf,
				const struct http_request *req)
{
	(void)buf;
	(void)req;
	return stream_head(x, HTTP_STREAM_GZIP, (struct gen){.empty = true, .again_left = 1});
}

static void ping_request(struct http_exchange *x)
{
	http_reply(x, 200, "text/plain", NULL, "pong", 4);
}

static void release_request(struct http_exchange *x)
{
	atomic_store(&released, true);
	http_reply(x, 200, "text/plain", NULL, "released", 8);
}

static const struct http_handler again_h = {.on_head = again_head};
static const struct http_handler again_gzip_h = {.on_head = again_gzip_head};
static const struct http_handler hold_h = {.on_head = hold_head};
static const struct http_handler empty_h = {.on_head = empty_head};
static const struct http_handler empty_gzip_h = {.on_head = empty_gzip_head};
static const struct http_handler ping_h = {.on_request = ping_request};
static const struct http_handler release_h = {.on_request = release_request};

static const struct http_route routes[] = {
	{HTTP_GET, "/again", &again_h, 0},
	{HTTP_GET, "/again-gzip", &again_gzip_h, 0},
	{HTTP_GET, "/hold", &hold_h, 0},
	{HTTP_GET, "/empty", &empty_h, 0},
	{HTTP_GET, "/empty-gzip", &empty_gzip_h, 0},
	{HTTP_GET, "/ping", &ping_h, 0},
	{HTTP_GET, "/release", &release_h, 0},
};
static const struct router router = {routes, sizeof routes / sizeof routes[0]};

static struct config cfg;
static struct metrics_registry metrics;
static struct ring_server server;
static uint16_t port;

static void on_pass(struct api *api, uint32_t worker)
{
	(void)api;
	(void)worker;
	atomic_fetch_add(&passes, 1);
}

static char *no_env(const char *name)
{
	(void)name;
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	char *argv[] = {"ringside", "--listen", "127.0.0.1:0", "--workers", "1",
			"--max-connections", "64", "--log-level", "warn", NULL};
	if (config_load(&cfg, 9, argv, no_env, stdout, stderr) != CONFIG_SERVE)
		return -1;
	if (metrics_registry_init(&metrics, &router, cfg.workers, cfg.max_connections) < 0)
		return -1;
	const struct ring_hooks hooks = {.pass = on_pass};
	if (ring_server_start(&server, &cfg, &router, &metrics, &hooks, -1) < 0)
		return -1;
	port = server.port[0];
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ring_server_stop(&server);
	ring_server_wait(&server);
	metrics_registry_fini(&metrics);
	return 0;
}

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

/* A response read from a connection: the head, and the body de-chunked
 * (chunked) or to EOF (not). */
struct reply {
	char head[4096];
	char *body;
	size_t len;
	char *in;           /* bytes read, not yet parsed */
	size_t in_len, in_cap;
};

/* Reads more input within the deadline; false at EOF. */
static bool read_more(int fd, struct reply *r, int64_t deadline)
{
	if (r->in_cap - r->in_len < 65536) {
		r->in_cap = r->in_cap ? r->in_cap * 2 : 1 << 20;
		r->in = realloc(r->in, r->in_cap);
		assert_non_null(r->in);
	}
	for (;;) {
		int left = (int)(deadline - now_ms());
		if (left <= 0)
			fail_msg("timed out with %zu bytes unparsed", r->in_len);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t n = recv(fd, r->in + r->in_len, r->in_cap - r->in_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		r->in_len += (size_t)n;
		return n > 0;
	}
}

static void consume(struct reply *r, size_t n)
{
	memmove(r->in, r->in + n, r->in_len - n);
	r->in_len -= n;
}

static void read_reply(int fd, struct reply *r, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char *end;
	while (!r->in_len || !(end = memmem(r->in, r->in_len, "\r\n\r\n", 4)))
		assert_true(read_more(fd, r, deadline));
	size_t head = (size_t)(end - r->in) + 4;
	assert_true(head < sizeof r->head);
	memcpy(r->head, r->in, head);
	r->head[head] = '\0';
	consume(r, head);
	free(r->body);
	r->body = NULL;
	r->len = 0;
	size_t cap = 0;
	bool chunked = strstr(r->head, "Transfer-Encoding: chunked") != NULL;
	char *cl = strstr(r->head, "Content-Length: ");
	if (!chunked && cl) {
		size_t n = strtoul(cl + 16, NULL, 10);
		while (r->in_len < n)
			assert_true(read_more(fd, r, deadline));
		r->body = malloc(n + 1);
		memcpy(r->body, r->in, n);
		r->len = n;
		consume(r, n);
		return;
	}
	for (;;) {
		if (!chunked) {
			if (!read_more(fd, r, deadline)) {
				r->body = realloc(r->body, r->in_len + 1);
				memcpy(r->body, r->in, r->in_len);
				r->len = r->in_len;
				consume(r, r->in_len);
				return;
			}
			continue;
		}
		char *eol = r->in_len ? memmem(r->in, r->in_len, "\r\n", 2) : NULL;
		if (!eol) {
			assert_true(read_more(fd, r, deadline));
			continue;
		}
		size_t size = strtoul(r->in, NULL, 16), at = (size_t)(eol - r->in) + 2;
		while (r->in_len < at + size + 2)
			assert_true(read_more(fd, r, deadline));
		assert_memory_equal(r->in + at + size, "\r\n", 2);
		if (size == 0) {
			consume(r, at + 2);
			return;
		}
		if (cap - r->len <= size) {
			cap = (r->len + size) * 2;
			r->body = realloc(r->body, cap);
			assert_non_null(r->body);
		}
		memcpy(r->body + r->len, r->in + at, size);
		r->len += size;
		consume(r, at + size + 2);
	}
}

static void free_reply(struct reply *r)
{
	free(r->body);
	free(r->in);
}

static void expect_pieces(const char *body, size_t len)
{
	char want[PIECE_LEN];
	assert_int_equal(len, (size_t)PIECES * PIECE_LEN);
	for (uint32_t k = 0; k < PIECES; k++) {
		fill_piece(want, k);
		assert_memory_equal(body + (size_t)k * PIECE_LEN, want, PIECE_LEN);
	}
}

static void expect_ping(int fd, struct reply *r)
{
	send_str(fd, "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n");
	read_reply(fd, r, 5000);
	assert_non_null(strstr(r->head, "HTTP/1.1 200"));
	assert_int_equal(r->len, 4);
	assert_memory_equal(r->body, "pong", 4);
}

static void again_calls_the_producer_once_per_pass(void **state)
{
	(void)state;
	atomic_store(&calls, 0);
	atomic_store(&twice_in_a_pass, 0);
	int fd = connect_to_server();
	struct reply r = {0};
	send_str(fd, "GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
	read_reply(fd, &r, 10000);
	assert_non_null(strstr(r.head, "HTTP/1.1 200"));
	expect_pieces(r.body, r.len);
	/* Each piece after AGAINS calls, then the end. */
	assert_int_equal(atomic_load(&calls), PIECES * (AGAINS + 1) + 1);
	assert_int_equal(atomic_load(&twice_in_a_pass), 0);
	/* The connection serves the next request. */
	expect_ping(fd, &r);
	close(fd);
	free_reply(&r);
}

/* While a producer says AGAIN and has nothing else to do, the worker
 * still sees and answers other connections: its wait does not sleep, yet
 * it reaps their completions. The one that releases the producer is one
 * of them. */
static void a_producer_saying_again_leaves_the_worker_serving(void **state)
{
	(void)state;
	atomic_store(&released, false);
	atomic_store(&twice_in_a_pass, 0);
	int held = connect_to_server(), other = connect_to_server();
	struct reply r = {0}, h = {0};
	send_str(held, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
	usleep(50 * 1000);
	unsigned calls0 = atomic_load(&calls);
	for (int i = 0; i < 20; i++) {
		int64_t t0 = now_ms();
		expect_ping(other, &r);
		assert_true(now_ms() - t0 < 1000);
	}
	/* It was asked again and again meanwhile, not once per ping. */
	assert_true(atomic_load(&calls) - calls0 > 20);
	send_str(other, "GET /release HTTP/1.1\r\nHost: t\r\n\r\n");
	read_reply(other, &r, 5000);
	assert_non_null(strstr(r.head, "HTTP/1.1 200"));
	read_reply(held, &h, 10000);
	expect_pieces(h.body, h.len);
	assert_int_equal(atomic_load(&twice_in_a_pass), 0);
	close(held);
	close(other);
	free_reply(&r);
	free_reply(&h);
}

static void a_gzip_stream_with_agains_inflates_to_the_pieces(void **state)
{
	(void)state;
	int fd = connect_to_server();
	struct reply r = {0};
	send_str(fd, "GET /again-gzip HTTP/1.1\r\nHost: t\r\n\r\n");
	read_reply(fd, &r, 10000);
	assert_non_null(strstr(r.head, "Content-Encoding: gzip\r\n"));
	size_t cap = (size_t)PIECES * PIECE_LEN + 1;
	char *out = malloc(cap);
	z_stream z = {0};
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)r.body;
	z.avail_in = (uInt)r.len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.avail_in, 0);
	expect_pieces(out, cap - z.avail_out);
	inflateEnd(&z);
	free(out);
	expect_ping(fd, &r);
	close(fd);
	free_reply(&r);
}

/* An AGAIN before the first byte, then the end: an empty body, chunked
 * on HTTP/1.1 (the connection goes on), close-delimited on HTTP/1.0. */
static void an_empty_body_after_an_again(void **state)
{
	(void)state;
	struct reply r = {0};
	int fd = connect_to_server();
	send_str(fd, "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_reply(fd, &r, 5000);
	assert_non_null(strstr(r.head, "Transfer-Encoding: chunked"));
	assert_int_equal(r.len, 0);
	expect_ping(fd, &r);
	close(fd);

	fd = connect_to_server();
	send_str(fd, "GET /empty HTTP/1.0\r\n\r\n");
	read_reply(fd, &r, 5000);
	assert_null(strstr(r.head, "Transfer-Encoding"));
	assert_non_null(strstr(r.head, "Connection: close"));
	assert_int_equal(r.len, 0);
	close(fd);

	/* gzip: an empty member, 20 bytes, over both. */
	static const char *const reqs[] = {"GET /empty-gzip HTTP/1.1\r\nHost: t\r\n\r\n",
					   "GET /empty-gzip HTTP/1.0\r\n\r\n"};
	for (size_t i = 0; i < 2; i++) {
		fd = connect_to_server();
		send_str(fd, reqs[i]);
		read_reply(fd, &r, 5000);
		assert_non_null(strstr(r.head, "Content-Encoding: gzip\r\n"));
		char out[16];
		z_stream z = {0};
		assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
		z.next_in = (Bytef *)r.body;
		z.avail_in = (uInt)r.len;
		z.next_out = (Bytef *)out;
		z.avail_out = sizeof out;
		assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
		assert_int_equal(z.avail_out, sizeof out);
		inflateEnd(&z);
		close(fd);
	}
	free_reply(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(again_calls_the_producer_once_per_pass),
		cmocka_unit_test(a_producer_saying_again_leaves_the_worker_serving),
		cmocka_unit_test(a_gzip_stream_with_agains_inflates_to_the_pieces),
		cmocka_unit_test(an_empty_body_after_an_again),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
