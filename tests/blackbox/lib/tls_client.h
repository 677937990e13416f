/*
 * The harness's TLS mode (RINGSIDE_BB_TLS=1): every server the harness
 * starts serves HTTPS with one self-signed EC P-256 certificate made per
 * test process, and every client socket the harness opens to such a
 * server's port is wrapped in an OpenSSL client that verifies it against
 * that certificate. The wrapping is keyed by the socket's fd, so the
 * socket and connection helpers (sock.h, http_client.h) keep their API:
 * h_send_all(fd, ...) writes application data, conn_read_response reads
 * it. Unset (or "0"), nothing here is used and every socket is plain.
 *
 * A connection resumes the last session the server on its port gave
 * (RINGSIDE_BB_TLS=full: every handshake full), as browsers do.
 * The handshake is made lazily, by the first read or write, so that
 * connect() means what it means in plain mode (the kernel accepted).
 * A wrapped socket is non-blocking; the helpers wait with poll().
 */
#ifndef RINGSIDE_TESTS_BB_TLS_CLIENT_H
#define RINGSIDE_TESTS_BB_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* True when RINGSIDE_BB_TLS is set to anything but "" or "0". */
bool h_tls_mode(void);

/* The certificate and its key (made on first use, in the log directory);
 * the certificate is its own CA. Fail the test if openssl fails. */
const char *h_tls_cert(void);
const char *h_tls_key(void);

/* Whether connections to port are wrapped (the harness marks the ports
 * of the servers it started with its certificate; h_free_port unmarks). */
void h_tls_port_set(uint16_t port, bool tls);
bool h_tls_port(uint16_t port);

/* ---- Per-fd sessions (used by sock.c and http_client.c) ---- */

/* Wraps the connected fd in a client session (non-blocking from now on).
 * Returns 0 or -errno. */
int h_tls_attach(int fd);
/* True if fd carries a session. */
bool h_tls_fd(int fd);
/* SSL_read / SSL_peek / SSL_write on fd's session, never blocking: > 0
 * bytes, 0 at the peer's close (close_notify or EOF), -1 with errno
 * (EAGAIN: wait for h_tls_events(fd); ECONNRESET, EPIPE; EPROTO: a TLS
 * failure, h_tls_why(fd) says which). */
ssize_t h_tls_read(int fd, void *buf, size_t len, bool peek);
ssize_t h_tls_write(int fd, const void *buf, size_t len);
/* One step of the handshake: 1 when done, else -1 with errno as above. */
ssize_t h_tls_handshake(int fd);
/* What the last EAGAIN waits for: POLLIN or POLLOUT. */
short h_tls_events(int fd);
/* Decrypted bytes buffered in the session (readable without poll). */
bool h_tls_pending(int fd);
/* OpenSSL's reason for the last EPROTO, or "". */
const char *h_tls_why(int fd);
/* Sends close_notify (best effort, not waiting). */
void h_tls_close_notify(int fd);
/* Frees fd's session (call before closing fd). */
void h_tls_forget(int fd);

#endif
