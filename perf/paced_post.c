/*
 * An open-loop load generator for agent reports: RATE reports a second
 * over CONNECTIONS keep-alive connections, each report POSTed at its
 * scheduled time (connection i sends at start + (i + k * CONNECTIONS) /
 * RATE), from the next agent of a token file. Latency runs from the
 * scheduled time to the last byte of the answer, so a report that had to
 * wait for its connection counts the wait (no coordinated omission).
 *
 * Why not wrk: paced with delay(), wrk builds every 14.5 KB request in
 * Lua and measures from its own send; on two shared cores its floor was
 * a p99 of 10 ms against nginx answering 202 (perf/RESULTS.md, issue 9).
 * Here a request is a small header written in place and the body sent
 * from one shared buffer (writev), one thread, epoll.
 *
 * Usage: paced_post PORT TOKENS BODY CONNECTIONS RATE SECONDS
 *                   [PATH CONTENT_TYPE SCHEME STATUS]
 *   TOKENS: lines "AGENT_ID CREDENTIAL" (perf/mint_tokens); BODY: the report.
 *   The request is by default an agent's report (POST /api/metrics/ingest,
 *   application/json, "Authorization: Bearer CREDENTIAL", answered 202);
 *   the optional four make it another POST, e.g. a token request:
 *   /api/v1/token application/x-www-form-urlencoded Basic 200, or with
 *   BODY "-" a GET (CONTENT_TYPE unused).
 * Prints, like perf/percentiles.lua,
 *   bench-result REQUESTS DURATION_US P50_US P99_US P99.9_US 0 0 0 ERRORS LATE
 * (ERRORS: answers other than 202, or broken connections; LATE: sends
 * more than 1 ms behind schedule) and "Requests/sec: N".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	bool busy;            /* a request is out, its answer not complete */
	uint64_t k;           /* its next send is request k of this connection */
	int64_t scheduled_us; /* of the request in flight */
	char head[1024];
	size_t head_len, sent; /* bytes of head + body written so far */
	char in[4096];
	size_t in_len;
	int64_t body_left;    /* of the answer, once its head is read; -1 before */
};

static char *body;
static size_t body_len;
static bool get; /* BODY "-": a GET, no body */
static char **tokens;
static size_t ntokens, next_token;
static uint32_t *lat;  /* µs, per answered request */
static size_t nlat, lat_cap;
static uint64_t errors, late; /* errors: answers other than `status` (then those never answered) */
static const char *req_path = "/api/metrics/ingest", *content_type = "application/json",
		  *scheme = "Bearer", *status = "202";

/* PACED_TRACE=FILE: "SCHEDULED_US LATENCY_US" per answer, to see when
 * the slow ones were (e.g. every flush, every writeback). */
static FILE *trace;
static int64_t t0_us;

static int64_t now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b) {
		b[n] = '\0';
		*len = (size_t)n;
	}
	return b;
}

static int connect_to(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("connect");
		exit(1);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Writes what is left of the request; false if the connection broke. */
static bool push(struct conn *c)
{
	while (c->sent < c->head_len + body_len) {
		struct iovec v[2];
		int n = 0;
		if (c->sent < c->head_len)
			v[n++] = (struct iovec){c->head + c->sent, c->head_len - c->sent};
		size_t b = c->sent > c->head_len ? c->sent - c->head_len : 0;
		v[n++] = (struct iovec){body + b, body_len - b};
		ssize_t w = writev(c->fd, v, n);
		if (w < 0)
			return errno == EAGAIN;
		c->sent += (size_t)w;
	}
	return true;
}

static void start_request(struct conn *c, int64_t scheduled)
{
	const char *tok = tokens[next_token++ % ntokens];
	int n = get ? snprintf(c->head, sizeof c->head,
			       "GET %s HTTP/1.1\r\nHost: bench\r\nAuthorization: %s %s\r\n\r\n",
			       req_path, scheme, tok)
		    : snprintf(c->head, sizeof c->head,
			 "POST %s HTTP/1.1\r\nHost: bench\r\n"
			 "Content-Type: %s\r\nAuthorization: %s %s\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 req_path, content_type, scheme, tok, body_len);
	c->head_len = (size_t)n;
	c->sent = 0;
	c->busy = true;
	c->scheduled_us = scheduled;
	c->body_left = -1;
	if (now_us() - scheduled > 1000)
		late++;
	push(c); /* a broken connection shows on the next read */
}

static int ep;
static uint16_t port;

/* The server closed the connection (nginx does after keepalive_requests):
 * a request in flight is lost and counted; the next goes on a new one. */
static void reconnect(struct conn *c)
{
	c->busy = false; /* its request, if any, stays unanswered: an error */
	c->in_len = 0;
	c->body_left = -1;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = connect_to(port);
	struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

/* Reads what arrived; an answer complete: its latency, the connection free. */
static void pull(struct conn *c)
{
	for (;;) {
		ssize_t r = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
		if (r == 0 || (r < 0 && errno != EAGAIN)) {
			reconnect(c);
			return;
		}
		if (r < 0)
			return;
		c->in_len += (size_t)r;
		for (;;) {
			if (c->body_left < 0) {
				char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
				if (!end)
					break;
				size_t head = (size_t)(end - c->in) + 4;
				if (c->in_len < 12 || memcmp(c->in + 9, status, 3))
					errors++;
				char *cl = memmem(c->in, head, "Content-Length: ", 16);
				c->body_left = cl ? atol(cl + 16) : 0;
				memmove(c->in, c->in + head, c->in_len - head);
				c->in_len -= head;
			}
			size_t take = (size_t)c->body_left < c->in_len ? (size_t)c->body_left : c->in_len;
			memmove(c->in, c->in + take, c->in_len - take);
			c->in_len -= take;
			c->body_left -= (int64_t)take;
			if (c->body_left > 0)
				break;
			if (nlat < lat_cap) {
				lat[nlat++] = (uint32_t)(now_us() - c->scheduled_us);
				if (trace)
					fprintf(trace, "%lld %u\n", (long long)(c->scheduled_us - t0_us),
						lat[nlat - 1]);
			}
			c->busy = false;
			c->body_left = -1;
			if (!c->in_len)
				break;
		}
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 7 && argc != 11) {
		fprintf(stderr, "usage: paced_post PORT TOKENS BODY CONNECTIONS RATE SECONDS "
				"[PATH CONTENT_TYPE SCHEME STATUS]\n");
		return 2;
	}
	if (argc == 11) {
		req_path = argv[7];
		content_type = argv[8];
		scheme = argv[9];
		status = argv[10];
		if (strlen(status) != 3) {
			fprintf(stderr, "paced_post: STATUS is three digits\n");
			return 2;
		}
	}
	port = (uint16_t)atoi(argv[1]);
	size_t tlen;
	char *tfile = read_file(argv[2], &tlen);
	get = !strcmp(argv[3], "-");
	body = get ? calloc(1, 1) : read_file(argv[3], &body_len);
	int nconn = atoi(argv[4]);
	double rate = atof(argv[5]);
	int seconds = atoi(argv[6]);
	if (!tfile || !body || nconn < 1 || rate <= 0 || seconds < 1) {
		fprintf(stderr, "paced_post: bad arguments or unreadable files\n");
		return 2;
	}
	for (char *line = strtok(tfile, "\n"); line; line = strtok(NULL, "\n")) {
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		tokens = realloc(tokens, (ntokens + 1) * sizeof *tokens);
		tokens[ntokens++] = sp + 1;
	}
	if (!ntokens) {
		fprintf(stderr, "paced_post: no tokens\n");
		return 2;
	}
	lat_cap = (size_t)(rate * seconds * 1.2) + 1024;
	lat = malloc(lat_cap * sizeof *lat);
	struct conn *conns = calloc((size_t)nconn, sizeof *conns);
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < nconn; i++) {
		conns[i].fd = connect_to(port);
		conns[i].body_left = -1;
		struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &conns[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &e);
	}
	/* Request k of connection i is due at start + (i + k * nconn) / rate. */
	const double gap_us = 1e6 / rate;
	int64_t start = now_us() + 10000, end = start + (int64_t)seconds * 1000000;
	t0_us = start;
	if (getenv("PACED_TRACE") && !(trace = fopen(getenv("PACED_TRACE"), "w"))) {
		perror("PACED_TRACE");
		return 2;
	}
	uint64_t sent = 0;
	for (;;) {
		int64_t now = now_us(), next = end;
		for (int i = 0; i < nconn; i++) {
			struct conn *c = &conns[i];
			int64_t due = start + (int64_t)(((double)i + (double)c->k * nconn) * gap_us);
			if (due >= end)
				continue;
			if (!c->busy && due <= now) {
				start_request(c, due);
				c->k++;
				sent++;
				due = start + (int64_t)(((double)i + (double)c->k * nconn) * gap_us);
			}
			if (!c->busy && due < next)
				next = due;
		}
		bool any_busy = false;
		for (int i = 0; i < nconn && !any_busy; i++)
			any_busy = conns[i].busy;
		if (now >= end && !any_busy)
			break;
		if (now > end + 30000000)
			break; /* answers that never come: counted as missing */
		int timeout = next > now ? (int)((next - now) / 1000) : 0;
		struct epoll_event ev[256];
		int n = epoll_wait(ep, ev, 256, timeout > 100 ? 100 : timeout);
		for (int j = 0; j < n; j++) {
			struct conn *c = ev[j].data.ptr;
			if ((ev[j].events & EPOLLOUT) && c->busy)
				push(c);
			if (ev[j].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				pull(c);
		}
	}
	int64_t took = now_us() - start;
	if (trace)
		fclose(trace);
	errors += sent - nlat; /* never answered (lost with a connection, or late past the end) */
	qsort(lat, nlat, sizeof *lat, cmp_u32);
	uint32_t p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[nlat * 99 / 100] : 0,
		 p999 = nlat ? lat[nlat * 999 / 1000] : 0;
	printf("Requests/sec: %.2f\n", nlat / (took / 1e6));
	printf("bench-result %zu %lld %u %u %u 0 0 0 %llu %llu\n", nlat, (long long)took, p50, p99,
	       p999, (unsigned long long)errors, (unsigned long long)late);
	return 0;
}
