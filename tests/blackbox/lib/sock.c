/*
 * Loopback client sockets with deadlines: see sock.h.
 */
#include "sock.h"
#include "check.h"
#include "clock.h"
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in loopback(uint16_t port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET,
				     .sin_port = htons(port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

uint16_t h_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		H_FAIL("socket: %s", strerror(errno));
	struct sockaddr_in a = loopback(0);
	socklen_t alen = sizeof(a);

	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		int e = errno;

		close(fd);
		H_FAIL("bind port 0: %s", strerror(e));
	}
	close(fd);
	h_tls_port_set(ntohs(a.sin_port), false);
	return ntohs(a.sin_port);
}

int h_try_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = 5 };
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct sockaddr_in a = loopback(port);

	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (h_tls_port(port)) {
		int e = h_tls_attach(fd);

		if (e) {
			close(fd);
			return e;
		}
	}
	return fd;
}

int h_connect(uint16_t port)
{
	int fd = h_try_connect(port);

	if (fd < 0)
		H_FAIL("connect 127.0.0.1:%u: %s", port, strerror(-fd));
	return fd;
}

void h_close_rst(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	h_tls_forget(fd); /* no close_notify: the point is the RST */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

void h_close(int fd)
{
	if (h_tls_fd(fd)) {
		h_tls_close_notify(fd);
		h_tls_forget(fd);
	}
	close(fd);
}

/* Waits up to deadline for what fd's TLS session waits for. */
static int tls_wait(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = h_tls_events(fd) };

	if (h_now_ms() >= deadline)
		return 0;
	int pr = poll(&pfd, 1, h_remaining_ms(deadline));

	return pr < 0 && errno == EINTR ? 1 : pr;
}

ssize_t h_recv(int fd, void *buf, size_t len, int flags)
{
	if (!h_tls_fd(fd))
		return recv(fd, buf, len, flags);
	/* As a blocking socket with SO_RCVTIMEO 5 s would. */
	int64_t deadline = h_now_ms() + 5000;
	bool peek = flags & MSG_PEEK, all = flags & MSG_WAITALL;
	size_t got = 0;

	for (int i = 0; i < 1000000; i++) {
		ssize_t n = h_tls_read(fd, (char *)buf + got, len - got, peek);

		if (n > 0) {
			got += (size_t)n;
			if (!all || peek || got == len)
				return (ssize_t)got;
			continue;
		}
		if (n == 0 || errno != EAGAIN)
			return got ? (ssize_t)got : n;
		if ((flags & MSG_DONTWAIT) || tls_wait(fd, deadline) <= 0)
			break;
	}
	if (got)
		return (ssize_t)got;
	errno = EAGAIN;
	return -1;
}

ssize_t h_send_some(int fd, const void *buf, size_t len, int flags)
{
	if (!h_tls_fd(fd))
		return send(fd, buf, len, flags);
	int64_t deadline = h_now_ms() + 5000;

	for (int i = 0; i < 1000000; i++) {
		ssize_t n = h_tls_write(fd, buf, len);

		if (n >= 0 || errno != EAGAIN || (flags & MSG_DONTWAIT))
			return n;
		if (tls_wait(fd, deadline) <= 0)
			break;
	}
	errno = EAGAIN;
	return -1;
}

int h_handshake(int fd)
{
	if (!h_tls_fd(fd))
		return 0;
	int64_t deadline = h_now_ms() + 5000;

	for (int i = 0; i < 1000000; i++) {
		if (h_tls_handshake(fd) == 1)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		if (tls_wait(fd, deadline) <= 0)
			break;
	}
	return -ETIMEDOUT;
}

int h_shutdown_wr(int fd)
{
	if (h_tls_fd(fd))
		h_tls_close_notify(fd);
	return shutdown(fd, SHUT_WR);
}

int h_poll_in(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (!h_tls_fd(fd))
		return poll(&pfd, 1, timeout_ms);
	/* Readable means application data or the close, not a record of
	 * the handshake. */
	int64_t deadline = h_now_ms() + timeout_ms;

	for (int i = 0; i < 100000; i++) {
		char b;

		if (h_tls_pending(fd))
			return 1;
		int pr = poll(&pfd, 1, h_remaining_ms(deadline));

		if (pr <= 0)
			return pr;
		if (h_tls_read(fd, &b, 1, true) >= 0 || errno != EAGAIN)
			return 1;
		if (h_now_ms() >= deadline)
			return 0;
	}
	return 0;
}

int h_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	int64_t deadline = h_now_ms() + 5000;

	bool tls = h_tls_fd(fd);

	while (len > 0) {
		ssize_t n = tls ? h_tls_write(fd, p, len) :
			send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = { .fd = fd,
					.events = tls ? h_tls_events(fd) : POLLOUT };

				if (h_now_ms() >= deadline)
					return -ETIMEDOUT;
				poll(&pfd, 1, h_remaining_ms(deadline));
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int h_try_send_str(int fd, const char *s)
{
	return h_send_all(fd, s, strlen(s));
}

void h_send(int fd, const void *buf, size_t len)
{
	int r = h_send_all(fd, buf, len);

	if (r != 0)
		H_FAIL("send of %zu bytes failed: %s%s%s", len, strerror(-r),
		       r == -EPROTO && h_tls_fd(fd) ? ": " : "",
		       r == -EPROTO && h_tls_fd(fd) ? h_tls_why(fd) : "");
}

void h_send_str(int fd, const char *s)
{
	h_send(fd, s, strlen(s));
}

const char *h_peer_name(enum h_peer p)
{
	switch (p) {
	case H_PEER_EOF: return "closed (EOF)";
	case H_PEER_RESET: return "reset (ECONNRESET)";
	case H_PEER_OPEN: return "still open, silent";
	case H_PEER_DATA: return "sent bytes and stayed open";
	}
	return "?";
}

enum h_peer h_wait_close(int fd, int timeout_ms, size_t *got)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	size_t total = 0;
	char scratch[4096];

	bool tls = h_tls_fd(fd);

	if (got)
		*got = 0;
	for (int i = 0; i < 100000; i++) {
		struct pollfd pfd = { .fd = fd,
				      .events = tls ? h_tls_events(fd) : POLLIN };
		int pr = tls && h_tls_pending(fd) ? 1 :
			poll(&pfd, 1, h_remaining_ms(deadline));

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		ssize_t n = tls ? h_tls_read(fd, scratch, sizeof(scratch), false) :
			recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);

		/* *got already holds what arrived before a close. */
		if (n == 0)
			return H_PEER_EOF;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return H_PEER_RESET;
		}
		total += (size_t)n;
		if (got)
			*got = total;
		if (h_now_ms() >= deadline)
			break;
	}
	return total ? H_PEER_DATA : H_PEER_OPEN;
}
