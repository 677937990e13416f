/*
 * Client sockets on loopback: a free port, connect, send everything, close
 * with a reset, and watch a peer close, every wait under a deadline.
 */
#ifndef RINGSIDE_TESTS_BB_SOCK_H
#define RINGSIDE_TESTS_BB_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Picks a free loopback TCP port (bind port 0, read it, close). */
uint16_t h_free_port(void);

/*
 * Connects to 127.0.0.1:port (blocking, SO_RCVTIMEO/SO_SNDTIMEO 5 s,
 * TCP_NODELAY). Returns the fd, or -errno. h_connect fails the test instead.
 */
int h_try_connect(uint16_t port);
int h_connect(uint16_t port);

/* Closes with SO_LINGER {1, 0}: the peer sees a RST. */
void h_close_rst(int fd);

/* close(fd); over TLS (tls_client.h) a close_notify first. Use it, not
 * close(2), for a socket from h_try_connect. */
void h_close(int fd);

/*
 * The socket calls a test makes on an fd from h_try_connect, TLS or not:
 * plain, exactly recv(2), send(2), shutdown(fd, SHUT_WR) and a POLLIN
 * poll(2). Over TLS they read and write application data: h_recv honours
 * MSG_DONTWAIT, MSG_PEEK and MSG_WAITALL and otherwise waits up to 5 s
 * (the socket's SO_RCVTIMEO), h_send_some likewise; h_shutdown_wr sends
 * close_notify before the FIN; h_poll_in counts bytes already decrypted.
 */
ssize_t h_recv(int fd, void *buf, size_t len, int flags);
/* Over TLS, completes the handshake now (within 5 s) rather than at the
 * first read or write. Returns 0 (at once if plain), or -errno. */
int h_handshake(int fd);
ssize_t h_send_some(int fd, const void *buf, size_t len, int flags);
int h_shutdown_wr(int fd);
int h_poll_in(int fd, int timeout_ms);

/* Sends all bytes (MSG_NOSIGNAL). Returns 0, or -errno. */
int h_send_all(int fd, const void *buf, size_t len);

/* h_send_all of a NUL-terminated string. Returns 0, or -errno. */
int h_try_send_str(int fd, const char *s);

/* h_send_all that fails the test on error. */
void h_send(int fd, const void *buf, size_t len);
void h_send_str(int fd, const char *s);

enum h_peer {
	H_PEER_EOF = 1,     /* recv returned 0 */
	H_PEER_RESET,       /* ECONNRESET (or EPIPE) */
	H_PEER_OPEN,        /* still open and silent at the deadline */
	H_PEER_DATA,        /* bytes arrived (they are consumed) */
};

const char *h_peer_name(enum h_peer p);

/*
 * Waits up to timeout_ms for the peer to close. Consumes and counts any
 * bytes that arrive before the close (*got may be NULL); returns H_PEER_EOF
 * or H_PEER_RESET when closed, H_PEER_DATA if bytes arrived and the peer
 * did not close by the deadline, H_PEER_OPEN if nothing at all happened.
 */
enum h_peer h_wait_close(int fd, int timeout_ms, size_t *got);

#endif
