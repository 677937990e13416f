/*
 * The harness's TLS mode: the certificate, the marked ports, the per-fd
 * OpenSSL client sessions. See tls_client.h.
 */
#include "tls_client.h"
#include "check.h"
#include "harness_int.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

bool h_tls_mode(void)
{
	const char *v = getenv("RINGSIDE_BB_TLS");

	return v && *v && strcmp(v, "0") != 0;
}

/* ---- The certificate ---- */

static char cert_path[256], key_path[256];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void make_cert(void)
{
	if (cert_path[0])
		return;
	const char *dir = h_log_dir();
	char cert[256], key[256];

	snprintf(cert, sizeof cert, "%s/tls-cert.pem", dir);
	snprintf(key, sizeof key, "%s/tls-key.pem", dir);
	/* As scripts/tls_cert.sh makes it: EC P-256, names localhost and
	 * 127.0.0.1, its own CA. */
	const char *const argv[] = {
		"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
		"ec_paramgen_curve:P-256", "-nodes", "-sha256", "-days", "2",
		"-subj", "/CN=localhost", "-addext",
		"subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key,
		"-out", cert, NULL
	};
	struct h_logs l;
	struct run_result *r = run_new();

	h_logs_next(&l, "tls-cert");
	h_run_to_end(argv, NULL, &l, false, 20000, r);
	if (r->exit_code != 0) {
		char why[600];

		snprintf(why, sizeof why, "%.500s", r->err);
		free(r);
		H_FAIL("TLS mode: openssl req failed: %s", why);
	}
	free(r);
	snprintf(key_path, sizeof key_path, "%s", key);
	snprintf(cert_path, sizeof cert_path, "%s", cert);
}

const char *h_tls_cert(void)
{
	make_cert();
	return cert_path;
}

const char *h_tls_key(void)
{
	make_cert();
	return key_path;
}

/* ---- Marked ports ---- */

static uint64_t tls_ports[65536 / 64];
/* The last session a server gave on each port, offered to resume: a full
 * handshake (ECDHE and an ECDSA signature each side) costs a millisecond
 * or two, and tests open thousands of connections. */
static SSL_SESSION *sessions[65536];

static bool resume(void)
{
	const char *v = getenv("RINGSIDE_BB_TLS");

	return !v || strcmp(v, "full") != 0;
}

void h_tls_port_set(uint16_t port, bool tls)
{
	pthread_mutex_lock(&lock);
	SSL_SESSION_free(sessions[port]);
	sessions[port] = NULL;
	if (tls)
		tls_ports[port / 64] |= 1ull << (port % 64);
	else
		tls_ports[port / 64] &= ~(1ull << (port % 64));
	pthread_mutex_unlock(&lock);
}

bool h_tls_port(uint16_t port)
{
	pthread_mutex_lock(&lock);
	bool on = tls_ports[port / 64] >> (port % 64) & 1;
	pthread_mutex_unlock(&lock);
	return on;
}

/* ---- Sessions, by fd ---- */

struct tconn {
	SSL *ssl;
	dev_t dev;        /* the socket's identity: a stale entry (its fd */
	ino_t ino;        /* closed by close(2) and reused) is not its */
	short events;     /* what the last EAGAIN waits for */
	uint16_t port;    /* the server's */
	bool saved;       /* its session is in sessions[] */
	char why[256];    /* the last TLS failure */
};

static struct tconn **tab;
static size_t tab_cap;
static SSL_CTX *ctx;

static SSL_CTX *client_ctx(void)
{
	if (ctx)
		return ctx;
	SSL_CTX *x = SSL_CTX_new(TLS_client_method());

	if (!x)
		return NULL;
	SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A peer that closes without close_notify has closed (EOF). */
	SSL_CTX_set_options(x, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(x, cert_path, NULL) != 1) {
		SSL_CTX_free(x);
		return NULL;
	}
	ctx = x;
	return ctx;
}

/* fd's live session, or NULL. Called with lock held. */
static struct tconn *find(int fd)
{
	if (fd < 0 || (size_t)fd >= tab_cap || !tab[fd])
		return NULL;
	struct stat st;
	struct tconn *t = tab[fd];

	if (fstat(fd, &st) != 0 || st.st_dev != t->dev || st.st_ino != t->ino) {
		SSL_free(t->ssl); /* the fd was closed without us */
		free(t);
		tab[fd] = NULL;
		return NULL;
	}
	return t;
}

static struct tconn *get(int fd)
{
	pthread_mutex_lock(&lock);
	struct tconn *t = find(fd);
	pthread_mutex_unlock(&lock);
	return t;
}

int h_tls_attach(int fd)
{
	make_cert();
	pthread_mutex_lock(&lock);
	int e = 0;
	struct tconn *t = NULL;
	struct stat st;

	if ((size_t)fd >= tab_cap) {
		size_t cap = tab_cap ? tab_cap : 256;

		while (cap <= (size_t)fd)
			cap *= 2;
		struct tconn **n = realloc(tab, cap * sizeof(*n));

		if (!n) {
			e = -ENOMEM;
			goto out;
		}
		memset(n + tab_cap, 0, (cap - tab_cap) * sizeof(*n));
		tab = n;
		tab_cap = cap;
	}
	if (tab[fd]) {
		SSL_free(tab[fd]->ssl);
		free(tab[fd]);
		tab[fd] = NULL;
	}
	if (!client_ctx() || fstat(fd, &st) != 0 || !(t = calloc(1, sizeof(*t)))) {
		e = -ENOMEM;
		goto out;
	}
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->ssl = SSL_new(ctx);
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(t->ssl, "localhost") != 1 ||
	    SSL_set1_host(t->ssl, "localhost") != 1) {
		SSL_free(t->ssl);
		free(t);
		e = -ENOMEM;
		goto out;
	}
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;

	/* sin_port and sin6_port are at the same offset. */
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
		t->port = ntohs(((struct sockaddr_in *)(void *)&peer)->sin_port);
	if (t->port && sessions[t->port] && resume())
		SSL_set_session(t->ssl, sessions[t->port]);
	SSL_set_connect_state(t->ssl);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	tab[fd] = t;
out:
	pthread_mutex_unlock(&lock);
	return e;
}

bool h_tls_fd(int fd)
{
	return tab_cap && get(fd) != NULL;
}

/* After a successful call: keeps the session to resume. */
static void remember(struct tconn *t)
{
	if (t->saved || !t->port || !SSL_is_init_finished(t->ssl))
		return;
	t->saved = true;
	SSL_SESSION *ss = SSL_get1_session(t->ssl);

	pthread_mutex_lock(&lock);
	SSL_SESSION_free(sessions[t->port]);
	sessions[t->port] = ss;
	pthread_mutex_unlock(&lock);
}

/* The result of an SSL call that returned n <= 0, as read(2) would say. */
static ssize_t result(struct tconn *t, int n)
{
	int saved = errno;
	int e = SSL_get_error(t->ssl, n);

	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
		t->events = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		t->events = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (saved == 0)
			return 0;
		errno = saved == EPIPE ? EPIPE : saved;
		return -1;
	default:
		snprintf(t->why, sizeof t->why, "TLS: %s",
			 ERR_reason_error_string(ERR_peek_error()) ?
			 ERR_reason_error_string(ERR_peek_error()) : "failure");
		if (SSL_get_verify_result(t->ssl) != X509_V_OK)
			snprintf(t->why, sizeof t->why, "TLS: certificate: %s",
				 X509_verify_cert_error_string(
					 SSL_get_verify_result(t->ssl)));
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t h_tls_read(int fd, void *buf, size_t len, bool peek)
{
	struct tconn *t = get(fd);

	if (!t) {
		errno = EBADF;
		return -1;
	}
	if (len > INT32_MAX)
		len = INT32_MAX;
	ERR_clear_error();
	errno = 0;
	int n = peek ? SSL_peek(t->ssl, buf, (int)len) :
		SSL_read(t->ssl, buf, (int)len);

	if (n > 0)
		remember(t);
	return n > 0 ? n : result(t, n);
}

ssize_t h_tls_write(int fd, const void *buf, size_t len)
{
	struct tconn *t = get(fd);

	if (!t) {
		errno = EBADF;
		return -1;
	}
	if (len == 0)
		return 0;
	if (len > INT32_MAX)
		len = INT32_MAX;
	ERR_clear_error();
	errno = 0;
	int n = SSL_write(t->ssl, buf, (int)len);

	if (n > 0) {
		remember(t);
		return n;
	}
	ssize_t r = result(t, n);

	if (r == 0) { /* EOF while writing (in the handshake): a reset */
		errno = ECONNRESET;
		r = -1;
	}
	return r;
}

ssize_t h_tls_handshake(int fd)
{
	struct tconn *t = get(fd);

	if (!t) {
		errno = EBADF;
		return -1;
	}
	ERR_clear_error();
	errno = 0;
	int n = SSL_do_handshake(t->ssl);

	if (n == 1) {
		remember(t);
		return 1;
	}
	ssize_t r = result(t, n);

	if (r == 0) { /* the peer closed in the handshake */
		errno = ECONNRESET;
		r = -1;
	}
	return r;
}

short h_tls_events(int fd)
{
	struct tconn *t = get(fd);

	return t && t->events ? t->events : POLLIN;
}

bool h_tls_pending(int fd)
{
	struct tconn *t = get(fd);

	return t && SSL_pending(t->ssl) > 0;
}

const char *h_tls_why(int fd)
{
	struct tconn *t = get(fd);

	return t ? t->why : "";
}

void h_tls_close_notify(int fd)
{
	struct tconn *t = get(fd);

	if (t && SSL_is_init_finished(t->ssl)) {
		ERR_clear_error();
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
	}
}

void h_tls_forget(int fd)
{
	if (!tab_cap)
		return;
	pthread_mutex_lock(&lock);
	if (fd >= 0 && (size_t)fd < tab_cap && tab[fd]) {
		SSL_free(tab[fd]->ssl);
		free(tab[fd]);
		tab[fd] = NULL;
	}
	pthread_mutex_unlock(&lock);
}
