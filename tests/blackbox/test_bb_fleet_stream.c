/*
 * Black-box: GET /metrics/fleet as a stream. With Accept-Encoding: gzip
 * the body is one gzip member (chunked on HTTP/1.1, close-delimited on
 * HTTP/1.0) that inflates to exactly the plain body; the request's
 * duration in http_request_duration_seconds covers the whole body (it
 * stopped before the body: two 0.37 s scrapes summed to 0.0002 s); and
 * /health on another connection is answered while the body streams.
 *
 * One worker, so that the scrape, the prober and the counting all share
 * it. Agents post the full and the minimal sample with tokens signed here,
 * until the body outgrows a socket's send buffer (4 MiB
 * by default on Linux): a smaller body would be with the kernel at once,
 * and a slow reader would not show in the duration.
 */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define SECRET "tests/auth/test-only-hs256.secret"
#define PROMTOOL "/usr/bin/promtool"
#define FLEET "/metrics/fleet?include=all"
#define BODY_WANTED (6u << 20) /* past the send buffer, with room */
#define AGENTS_MAX 4000
#define BATCH 100
#define MAX_HEALTH_MS 50
#define DURATION_SERIES                                                                  \
	"http_request_duration_seconds_sum{method=\"GET\",route=\"/metrics/fleet\","      \
	"status_code=\"200\"}"
#define COUNT_SERIES                                                                     \
	"http_request_duration_seconds_count{method=\"GET\",route=\"/metrics/fleet\","    \
	"status_code=\"200\"}"

static char *full_sample, *minimal_sample;
static size_t full_len, minimal_len;
static int agents;

/* A body read whole: malloc'd, NUL-terminated. */
struct body {
	char *data;
	size_t len, cap;
};

static void body_room(struct body *b, size_t more)
{
	if (b->cap - b->len > more)
		return;
	while (b->cap - b->len <= more)
		b->cap = b->cap ? b->cap * 2 : 1 << 20;
	b->data = realloc(b->data, b->cap);
	CHECK(b->data != NULL, "out of memory");
}

/* A token signed by the test (h_mint_token), not by the server. */
static char *mint(const char *sub, const char *org)
{
	return h_mint_token(SECRET, sub, org, "metrics:write");
}

/* Agents first..first+n-1 report, pipelined on one connection: three in
 * four the full sample, the others the minimal one, and every fifth a
 * second report over its first (the latest is what the fleet shows). */
static void post_agents(uint16_t port, int first, int n)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();
	size_t cap = (size_t)n * 2 * (full_len + 2048), len = 0;
	char *batch = malloc(cap);
	int sent = 0;
	CHECK(batch != NULL, "out of memory");
	for (int i = first; i < first + n; i++) {
		char sub[32], org[32];
		snprintf(sub, sizeof sub, "agent-%05d", i);
		snprintf(org, sizeof org, "org-%d", i % 7);
		char *tok = mint(sub, org);
		for (int k = 0; k < (i % 5 == 0 ? 2 : 1); k++) {
			bool full = (i + k) % 4 != 3;
			const char *doc = full ? full_sample : minimal_sample;
			size_t doc_len = full ? full_len : minimal_len;
			len += (size_t)snprintf(batch + len, cap - len,
						"POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\n"
						"Authorization: Bearer %s\r\n"
						"Content-Type: application/json\r\n"
						"Content-Length: %zu\r\n\r\n",
						tok, doc_len);
			memcpy(batch + len, doc, doc_len);
			len += doc_len;
			sent++;
		}
		free(tok);
	}
	conn_send(c, batch, len);
	for (int i = 0; i < sent; i++) {
		expect_response(c, r, false);
		CHECK(r->status == 202, "report %d: status %d: %.300s", i, r->status, r->body);
	}
	free(batch);
	free(r);
	conn_close(c);
}

/* Reads a chunked body after its head, every chunk, into b. */
static void read_chunked(struct conn *c, struct body *b)
{
	char err[512];
	b->len = 0;
	for (int i = 0; i < 1000000; i++) {
		body_room(b, 1 << 17);
		long n = conn_read_chunk(c, b->data + b->len, b->cap - b->len, 10000, err,
					 sizeof err);
		CHECK(n >= 0, "chunk %d: %s", i, err);
		CHECK(n > 0 || i > 0, "an empty body");
		if (n == 0)
			break;
		b->len += (size_t)n;
	}
	b->data[b->len] = '\0';
}

/* GET FLEET on a new connection (HTTP/1.1, chunked): the head in r, the
 * body (as sent: compressed or not) in b. */
static void fetch(uint16_t port, bool gzip, struct http_response *r, struct body *b)
{
	struct conn *c = conn_open(port);
	conn_send_str(c, gzip ? "GET " FLEET " HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n"
			      : "GET " FLEET " HTTP/1.1\r\nHost: t\r\n\r\n");
	expect_response(c, r, true);
	CHECK(r->status == 200, "status %d", r->status);
	CHECK(resp_header_has_token(r, "Transfer-Encoding", "chunked"), "chunked");
	CHECK(resp_header_has_token(r, "Vary", "Accept-Encoding"),
	      "Vary names Accept-Encoding: %s", resp_header(r, "Vary") ? resp_header(r, "Vary")
								: "(none)");
	read_chunked(c, b);
	/* The connection goes on after the stream. */
	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	struct http_response *h = resp_new();
	expect_response(c, h, false);
	expect_health_ok(h);
	free(h);
	conn_close(c);
}

/* Inflates one gzip member that must end exactly at the end of in. */
static void gunzip(const char *in, size_t n, struct body *out)
{
	z_stream z = {0};
	CHECK(inflateInit2(&z, 15 + 16) == Z_OK, "inflateInit2");
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	out->len = 0;
	int r = Z_OK;
	for (int i = 0; i < 100000 && r == Z_OK; i++) {
		body_room(out, 1 << 20);
		z.next_out = (Bytef *)out->data + out->len;
		z.avail_out = (uInt)(out->cap - out->len - 1);
		r = inflate(&z, Z_NO_FLUSH);
		out->len = out->cap - 1 - z.avail_out;
	}
	CHECK(r == Z_STREAM_END, "inflate: %d (%s) after %zu of %zu bytes", r,
	      z.msg ? z.msg : "no message", n - z.avail_in, n);
	CHECK(z.avail_in == 0, "%u bytes after the gzip member", z.avail_in);
	inflateEnd(&z);
	out->data[out->len] = '\0';
}

static void expect_same_body(const struct body *got, const struct body *want, const char *what)
{
	size_t i = 0;
	while (i < got->len && i < want->len && got->data[i] == want->data[i])
		i++;
	CHECK(got->len == want->len && i == got->len,
	      "%s: %zu bytes, the plain body %zu; they differ from byte %zu:\n%.200s\n---\n%.200s",
	      what, got->len, want->len, i, got->data + (i > 100 ? i - 100 : 0),
	      want->data + (i > 100 ? i - 100 : 0));
}

static void expect_promtool_passes(const struct body *b)
{
	struct run_result *rr = run_new();
	const char *argv[] = {PROMTOOL, "check", "metrics", NULL};
	h_run_prog(argv, b->data, b->len, 60000, rr);
	CHECK(rr->exit_code == 0, "promtool: exit %d: %.2000s%.2000s", rr->exit_code, rr->out,
	      rr->err);
	free(rr);
}

static int setup(void **state)
{
	static const char *const args[] = {"--workers", "1", "--jwt-secret-file", SECRET,
					   "--max-body-bytes", "64KiB",
					   /* The body must not change between two scrapes. */
					   "--fleet-stale", "3600s", "--fleet-ttl", "3600s", NULL};
	full_sample = h_read_sample("ingest-full.json", &full_len);
	minimal_sample = h_read_sample("ingest-minimal.json", &minimal_len);
	int rc = h_group_setup_with(state, args);
	if (rc)
		return rc;
	/* Agents until the plain body is past BODY_WANTED. */
	uint16_t port = port_of(state);
	struct http_response *r = resp_new();
	struct body b = {0};
	for (agents = 0; agents < AGENTS_MAX;) {
		post_agents(port, agents, BATCH);
		agents += BATCH;
		fetch(port, false, r, &b);
		if (b.len >= BODY_WANTED)
			break;
	}
	print_message("%d agents, a plain body of %zu bytes\n", agents, b.len);
	free(b.data);
	free(r);
	return 0;
}

static int teardown(void **state)
{
	free(full_sample);
	free(minimal_sample);
	return h_group_teardown(state);
}

static void gzip_body_inflates_to_the_plain_body_and_passes_promtool(void **state)
{
	uint16_t port = port_of(state);
	struct http_response *r = resp_new();
	struct body plain = {0}, packed = {0}, unpacked = {0};
	fetch(port, false, r, &plain);
	CHECK(!resp_header(r, "Content-Encoding"), "plain: Content-Encoding %s",
	      resp_header(r, "Content-Encoding"));
	fetch(port, true, r, &packed);
	expect_header(r, "Content-Encoding", "gzip", true);
	CHECK(packed.len < plain.len / 5, "gzip: %zu bytes for %zu", packed.len, plain.len);
	gunzip(packed.data, packed.len, &unpacked);
	expect_same_body(&unpacked, &plain, "inflated");
	CHECK(strstr(plain.data, "agent_id=\"agent-00000\"") != NULL, "the first agent is there");
	expect_promtool_passes(&unpacked);
	print_message("plain %zu bytes, gzip %zu (%.1fx)\n", plain.len, packed.len,
		      (double)plain.len / (double)packed.len);
	free(plain.data);
	free(packed.data);
	free(unpacked.data);
	free(r);
}

/* HTTP/1.0: no chunks, the body ends with the connection. */
static void gzip_body_over_http_1_0_ends_with_the_connection(void **state)
{
	uint16_t port = port_of(state);
	struct http_response *r = resp_new();
	struct body plain = {0}, packed = {0}, unpacked = {0};
	fetch(port, false, r, &plain);

	struct conn *c = conn_open(port);
	conn_send_str(c, "GET " FLEET " HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
	expect_response(c, r, true);
	CHECK(r->status == 200, "status %d", r->status);
	expect_header(r, "Content-Encoding", "gzip", true);
	CHECK(!resp_header(r, "Transfer-Encoding"), "no chunks on HTTP/1.0: %s",
	      resp_header(r, "Transfer-Encoding"));
	CHECK(!resp_header(r, "Content-Length"), "no length: it ends with the connection");
	CHECK(resp_connection_has(r, "close"), "Connection: close");
	/* What the harness buffered past the head, then the rest to EOF. */
	body_room(&packed, c->len);
	memcpy(packed.data, c->buf, c->len);
	packed.len = c->len;
	c->len = 0;
	int64_t deadline = h_now_ms() + 30000;
	for (;;) {
		body_room(&packed, 1 << 16);
		CHECK(h_poll_in(c->fd, 1000) >= 0 && h_now_ms() < deadline, "no EOF after %zu bytes",
		      packed.len);
		ssize_t n = h_recv(c->fd, packed.data + packed.len, 1 << 16, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			packed.len += (size_t)n;
	}
	gunzip(packed.data, packed.len, &unpacked);
	expect_same_body(&unpacked, &plain, "inflated (HTTP/1.0)");
	conn_close(c);
	free(plain.data);
	free(packed.data);
	free(unpacked.data);
	free(r);
}

/* The sum and count of the fleet scrapes' durations, from /metrics. */
static void fleet_durations(uint16_t port, double *sum, double *count)
{
	struct http_response *r = resp_new();
	h_exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", false, r);
	expect_status(r, 200, false);
	CHECK(expo_find(r->body, DURATION_SERIES, sum), "no %s in /metrics", DURATION_SERIES);
	CHECK(expo_find(r->body, COUNT_SERIES, count), "no %s in /metrics", COUNT_SERIES);
	free(r);
}

/* A connection whose receive buffer is small: the server can get ahead of
 * it by its own send buffer only. */
static struct conn *open_small_window(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0, "socket");
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect");
	if (h_tls_port(port))
		CHECK(h_tls_attach(fd) == 0, "TLS client");
	return conn_wrap(fd);
}

/* The request is counted when the last byte of the body is with the
 * kernel: a client that reads with 1.2 s of pauses makes the scrape last
 * at least that long, and the duration says so. */
static void a_slow_readers_scrape_lasts_until_its_last_byte(void **state)
{
	uint16_t port = port_of(state);
	double sum0, count0, sum1, count1;
	fleet_durations(port, &sum0, &count0);

	struct conn *c = open_small_window(port);
	conn_send_str(c, "GET " FLEET " HTTP/1.1\r\nHost: t\r\n\r\n");
	struct http_response *r = resp_new();
	expect_response(c, r, true);
	CHECK(r->status == 200, "status %d", r->status);
	int64_t t0 = h_now_ms();
	/* Twelve pauses of 100 ms, a little read between them (into the
	 * connection's buffer, where the chunk reader finds it). */
	for (int i = 0; i < 12; i++) {
		h_sleep_ms(100);
		size_t room = sizeof c->buf - c->len;
		ssize_t n = h_recv(c->fd, c->buf + c->len, room < 4096 ? room : 4096, MSG_DONTWAIT);
		if (n > 0)
			c->len += (size_t)n;
	}
	struct body b = {0};
	read_chunked(c, &b);
	int64_t took = h_now_ms() - t0;
	conn_close(c);
	CHECK(b.len >= BODY_WANTED, "the body (%zu bytes) fits the send buffers: the test cannot "
	      "tell", b.len);

	fleet_durations(port, &sum1, &count1);
	CHECK(count1 == count0 + 1, "counted once: %g then %g", count0, count1);
	print_message("read in %lld ms; the duration sum grew by %.3f s\n", (long long)took,
		      sum1 - sum0);
	CHECK(sum1 - sum0 >= 0.8,
	      "the scrape read with 1.2 s of pauses (%lld ms in all) added %.6f s to %s",
	      (long long)took, sum1 - sum0, DURATION_SERIES);
	free(b.data);
	free(r);
}

/* A client that leaves mid-body is counted when it leaves, not never. */
static void a_scrape_cut_short_is_counted_at_the_close(void **state)
{
	uint16_t port = port_of(state);
	double sum0, count0, sum1, count1;
	fleet_durations(port, &sum0, &count0);
	struct conn *c = open_small_window(port);
	conn_send_str(c, "GET " FLEET " HTTP/1.1\r\nHost: t\r\n\r\n");
	struct http_response *r = resp_new();
	expect_response(c, r, true);
	CHECK(r->status == 200, "status %d", r->status);
	h_sleep_ms(300);
	conn_close_rst(c);
	/* The close reaches the worker at once; the next scrape sees it. */
	for (int i = 0; i < 50; i++) {
		fleet_durations(port, &sum1, &count1);
		if (count1 > count0)
			break;
		h_sleep_ms(20);
	}
	CHECK(count1 == count0 + 1, "a scrape cut short is counted once: %g then %g", count0,
	      count1);
	CHECK(sum1 - sum0 >= 0.25, "its duration runs to the close: +%.6f s", sum1 - sum0);
	free(r);
}

/* The producer is called once per piece and the worker serves its other
 * connections between pieces: /health, on the same (only) worker, waits
 * at most for one piece (render and compress 64 KiB: well under a ms).
 * The scrapes are read as fast as the client can, gzip and plain, for a
 * second at least. */
static void health_is_answered_while_a_fleet_body_streams(void **state)
{
	uint16_t port = port_of(state);
	struct h_prober p;
	h_prober_start(&p, port, 5);
	struct http_response *r = resp_new();
	struct body b = {0};
	int scrapes = 0;
	size_t bytes = 0;
	int64_t t0 = h_now_ms();
	while (h_now_ms() - t0 < 1500 || scrapes < 2) {
		fetch(port, scrapes % 2 == 0, r, &b);
		bytes += b.len;
		scrapes++;
	}
	h_prober_stop(&p);
	print_message("%d scrapes (%zu bytes on the wire) in %lld ms; /health asked %d times, "
		      "worst %lld ms\n",
		      scrapes, bytes, (long long)(h_now_ms() - t0), p.count, (long long)p.worst_ms);
	CHECK(p.count >= 20, "only %d /health answers during the scrapes", p.count);
	CHECK(p.worst_ms <= MAX_HEALTH_MS, "/health took %lld ms while a fleet body streamed "
	      "(limit %d ms)", (long long)p.worst_ms, MAX_HEALTH_MS);
	free(b.data);
	free(r);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(gzip_body_inflates_to_the_plain_body_and_passes_promtool),
		BB_TEST(gzip_body_over_http_1_0_ends_with_the_connection),
		BB_TEST(a_slow_readers_scrape_lasts_until_its_last_byte),
		BB_TEST(a_scrape_cut_short_is_counted_at_the_close),
		BB_TEST(health_is_answered_while_a_fleet_body_streams),
	};
	return H_RUN_GROUP("fleet_stream", tests, setup, teardown);
}
