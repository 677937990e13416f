/*
 * How long a small request waits while something else loads the server:
 * `probe_latency PORT SECONDS [EVERY_MS] [PATH]` sends GET PATH (/health)
 * on one keep-alive connection every EVERY_MS (5) for SECONDS and prints
 *   probe count N p50_us X p99_us Y max_us Z
 * The fleet benchmark runs it during a /metrics/fleet scrape and without
 * one: a scrape that holds its worker shows as max_us.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Reads one response (head, then Content-Length bytes of body). */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (!end)
			continue;
		const char *cl = strstr(buf, "Content-Length: ");
		size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
		if (n >= want)
			return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: probe_latency PORT SECONDS [EVERY_MS] [PATH]\n");
		return 2;
	}
	int port = atoi(argv[1]);
	double seconds = atof(argv[2]), every_ms = argc > 3 ? atof(argv[3]) : 5;
	const char *path = argc > 4 ? argv[4] : "/health";
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("probe_latency: connect");
		return 1;
	}
	char req[256], buf[8192];
	int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: probe\r\n\r\n", path);
	size_t cap = (size_t)(seconds * 1000 / every_ms) + 16, n = 0;
	double *lat = malloc(cap * sizeof *lat), end = now_us() + seconds * 1e6;
	if (!lat)
		return 1;
	while (now_us() < end && n < cap) {
		double t0 = now_us();
		if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len || read_response(fd, buf, sizeof buf)) {
			fprintf(stderr, "probe_latency: request %zu failed\n", n);
			return 1;
		}
		double t1 = now_us();
		lat[n++] = t1 - t0;
		double wait = every_ms * 1e3 - (t1 - t0);
		if (wait > 0)
			usleep((useconds_t)wait);
	}
	qsort(lat, n, sizeof *lat, cmp);
	printf("probe count %zu p50_us %.0f p99_us %.0f max_us %.0f\n", n, lat[n / 2],
	       lat[n * 99 / 100], lat[n - 1]);
	close(fd);
	free(lat);
	return 0;
}
