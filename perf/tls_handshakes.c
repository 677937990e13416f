/*
 * TLS handshakes a second, for perf/bench_tls.sh: CONNECTIONS threads,
 * each in a loop for SECONDS: connect, TLS 1.2 handshake, one
 * `GET /health` (Connection: close), read the whole answer, close. So
 * every request costs a new connection and a handshake, which is what
 * this measures; wrk keeps its connections and cannot.
 *
 *   full    every handshake is a full one (no session offered)
 *   resume  each thread makes one full handshake, keeps its session, and
 *           offers it (SSL_set_session: a session ID, no tickets) on every
 *           later connection; a handshake the server did not resume is a
 *           miss (counted, and its new session is offered next)
 *
 * The first handshake of each thread verifies the server's certificate
 * against CAFILE (if given) and the name "localhost"; later ones do not,
 * so the generator's CPU goes to the handshake itself (the client still
 * checks the server's key-exchange signature: TLS requires it).
 *
 * Usage: tls_handshakes PORT CONNECTIONS SECONDS full|resume [CIPHER [CAFILE]]
 *   CIPHER: an OpenSSL TLS 1.2 cipher list (default
 *   ECDHE-ECDSA-AES128-GCM-SHA256); CAFILE: PEM, "-" for none (default).
 * The client's groups (and anything else) come from OpenSSL's config as
 * for any OpenSSL client (OPENSSL_CONF: perf/bench_tls.sh gives wrk and
 * this program the same one).
 * Prints, like perf/percentiles.lua,
 *   bench-result HANDSHAKES DURATION_US P50_US P99_US P99.9_US
 *                CONNECT_ERRORS TLS_ERRORS IO_ERRORS STATUS_ERRORS RESUME_MISSES
 * (latency: from connect() to the answer's last byte; STATUS_ERRORS:
 * answers other than 200; RESUME_MISSES: in resume mode, full handshakes
 * after the first), then "Handshakes/sec: N" and the protocol, suite and
 * key-exchange group of the first handshake.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#define IO_TIMEOUT_S 5 /* each read or write; a stalled server fails, not hangs */

struct worker {
	pthread_t thread;
	uint32_t *lat; /* µs per completed exchange */
	size_t nlat, cap;
	uint64_t connect_errors, tls_errors, io_errors, status_errors, resume_misses;
	char chosen[128]; /* "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256 X25519": the first */
};

static SSL_CTX *ctx;
static uint16_t port;
static bool resume, verify_first; /* verify_first: a CAFILE was given */
static int64_t deadline_us;
static const char request[] = "GET /health HTTP/1.1\r\nHost: localhost\r\n"
			      "Connection: close\r\n\r\n";

static int64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int dial(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one HTTP/1.1 answer with a Content-Length body. Returns its
 * status, or -1 if the connection broke or the answer is not one. */
static int read_answer(SSL *ssl)
{
	char buf[4096];
	size_t len = 0;
	long need = -1;
	char *end = NULL;

	for (;;) {
		if (len == sizeof(buf) - 1)
			return -1;
		int n = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));

		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "\r\ncontent-length:");

			if (!cl || cl > end)
				return -1;
			need = (long)(end + 4 - buf) + strtol(cl + 17, NULL, 10);
		}
		if (end && (long)len >= need)
			break;
	}
	if (strncmp(buf, "HTTP/1.1 ", 9) != 0)
		return -1;
	return atoi(buf + 9);
}

/* One exchange on a new connection. Returns 0 when it completed. */
static int exchange(struct worker *w, SSL_SESSION **sess, bool verify)
{
	int fd = dial(), rc = -1;
	SSL *ssl = NULL;

	if (fd < 0) {
		w->connect_errors++;
		return -1;
	}
	ssl = SSL_new(ctx);
	if (!ssl) {
		w->tls_errors++;
		goto out;
	}
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (verify) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		SSL_set1_host(ssl, "localhost");
	}
	if (*sess)
		SSL_set_session(ssl, *sess);
	if (SSL_connect(ssl) != 1) {
		if (!w->tls_errors++) {
			fprintf(stderr, "tls_handshakes: handshake failed: ");
			ERR_print_errors_fp(stderr);
			fprintf(stderr, "(verify: %s)\n",
				X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
		}
		goto out;
	}
	if (resume) {
		if (*sess && !SSL_session_reused(ssl))
			w->resume_misses++;
		if (!*sess || !SSL_session_reused(ssl)) {
			SSL_SESSION_free(*sess);
			*sess = SSL_get1_session(ssl);
		}
	}
	if (!w->chosen[0]) {
		int group = SSL_get_negotiated_group(ssl);

		snprintf(w->chosen, sizeof(w->chosen), "%s %s %s", SSL_get_version(ssl),
			 SSL_get_cipher_name(ssl), group > 0 ? OBJ_nid2sn(group) : "no-group");
	}
	if (SSL_write(ssl, request, (int)sizeof(request) - 1) != (int)sizeof(request) - 1) {
		w->io_errors++;
		goto out;
	}
	int status = read_answer(ssl);

	if (status < 0)
		w->io_errors++;
	else if (status != 200)
		w->status_errors++;
	else
		rc = 0;
out:
	if (ssl) {
		/* Closed without a close_notify of ours, yet as if shut down
		 * properly: OpenSSL would otherwise mark the session as not
		 * to be resumed. */
		SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(ssl);
	}
	close(fd);
	return rc;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	SSL_SESSION *sess = NULL;
	bool first = verify_first;

	while (now_us() < deadline_us) {
		int64_t t = now_us();

		if (exchange(w, &sess, first) != 0) {
			/* A failure is counted; do not spin on a dead server. */
			usleep(1000);
			continue;
		}
		first = false;
		if (w->nlat == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 4096;
			uint32_t *p = realloc(w->lat, cap * sizeof(*p));

			if (!p) {
				fprintf(stderr, "tls_handshakes: out of memory\n");
				exit(1);
			}
			w->lat = p, w->cap = cap;
		}
		w->lat[w->nlat++] = (uint32_t)(now_us() - t);
	}
	SSL_SESSION_free(sess);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static uint32_t at(const uint32_t *v, size_t n, double q)
{
	size_t i = (size_t)((double)n * q + 0.999999);

	if (n == 0)
		return 0;
	if (i < 1)
		i = 1;
	return v[(i > n ? n : i) - 1];
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 7 || (strcmp(argv[4], "full") != 0 && strcmp(argv[4], "resume") != 0)) {
		fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS full|resume [CIPHER [CAFILE]]\n",
			argv[0]);
		return 2;
	}
	long p = strtol(argv[1], NULL, 10), nconn = strtol(argv[2], NULL, 10);
	double secs = strtod(argv[3], NULL);
	const char *cipher = argc > 5 ? argv[5] : "ECDHE-ECDSA-AES128-GCM-SHA256";
	const char *cafile = argc > 6 ? argv[6] : "-";

	if (p < 1 || p > 65535 || nconn < 1 || nconn > 1024 || !(secs > 0)) {
		fprintf(stderr, "%s: PORT 1-65535, CONNECTIONS 1-1024, SECONDS > 0\n", argv[0]);
		return 2;
	}
	port = (uint16_t)p;
	resume = strcmp(argv[4], "resume") == 0;

	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, cipher)) {
		fprintf(stderr, "%s: cannot set up TLS 1.2 with cipher \"%s\": ", argv[0], cipher);
		ERR_print_errors_fp(stderr);
		return 2;
	}
	/* Resumption by session ID only, as the server's cache does it. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	verify_first = strcmp(cafile, "-") != 0;
	if (verify_first && SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
		fprintf(stderr, "%s: cannot read CA file %s\n", argv[0], cafile);
		return 2;
	}

	struct worker *w = calloc((size_t)nconn, sizeof(*w));

	if (!w) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	int64_t start = now_us();

	deadline_us = start + (int64_t)(secs * 1e6);
	for (long i = 0; i < nconn; i++) {
		if (pthread_create(&w[i].thread, NULL, run, &w[i]) != 0) {
			fprintf(stderr, "%s: pthread_create failed\n", argv[0]);
			return 1;
		}
	}
	struct worker sum = { 0 };
	size_t n = 0;

	for (long i = 0; i < nconn; i++) {
		pthread_join(w[i].thread, NULL);
		n += w[i].nlat;
	}
	int64_t elapsed = now_us() - start;
	uint32_t *all = malloc((n ? n : 1) * sizeof(*all));

	if (!all) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	n = 0;
	for (long i = 0; i < nconn; i++) {
		memcpy(all + n, w[i].lat, w[i].nlat * sizeof(*all));
		n += w[i].nlat;
		sum.connect_errors += w[i].connect_errors;
		sum.tls_errors += w[i].tls_errors;
		sum.io_errors += w[i].io_errors;
		sum.status_errors += w[i].status_errors;
		sum.resume_misses += w[i].resume_misses;
		if (!sum.chosen[0])
			memcpy(sum.chosen, w[i].chosen, sizeof(sum.chosen));
		free(w[i].lat);
	}
	qsort(all, n, sizeof(*all), cmp_u32);
	printf("bench-result %zu %lld %u %u %u %llu %llu %llu %llu %llu\n", n,
	       (long long)elapsed, at(all, n, 0.5), at(all, n, 0.99), at(all, n, 0.999),
	       (unsigned long long)sum.connect_errors, (unsigned long long)sum.tls_errors,
	       (unsigned long long)sum.io_errors, (unsigned long long)sum.status_errors,
	       (unsigned long long)sum.resume_misses);
	printf("Handshakes/sec: %.2f (%s, %ld connections; %s)\n", (double)n / ((double)elapsed / 1e6),
	       resume ? "resumed" : "full", nconn, sum.chosen[0] ? sum.chosen : "no handshake completed");
	free(all);
	free(w);
	SSL_CTX_free(ctx);
	return 0;
}
