/* The engine's host for tests and fuzz targets (fake_host.h). */
#include "fake_host.h"

#include <stdlib.h>

struct fake_host_state fake_host;

static void host_send(struct server *s, struct server_conn *c)
{
	(void)s;
	(void)c; /* drained by the caller after each call, as a ring would */
}

static void host_close(struct server *s, struct server_conn *c)
{
	fake_host.closes++;
	if (fake_host.on_close)
		fake_host.on_close(s, c);
}

static void host_shutdown_write(struct server *s, struct server_conn *c)
{
	(void)s;
	(void)c;
	fake_host.shutdowns++;
}

static void host_limit_send_buffer(struct server *s, struct server_conn *c, int bytes)
{
	(void)s;
	(void)c;
	(void)bytes;
}

static const char *host_peer(struct server *s, struct server_conn *c)
{
	(void)s;
	(void)c;
	return "192.0.2.1:4000";
}

static char log_line[8192];

static char *host_log_reserve(struct server *s, size_t n)
{
	(void)s;
	return n <= sizeof log_line ? log_line : NULL;
}

static void host_log_commit(struct server *s, size_t n)
{
	(void)s;
	if (n > sizeof log_line)
		abort(); /* more than host_log_reserve gave: an engine bug */
}

const struct server_host fake_server_host = {
	.send = host_send,
	.close = host_close,
	.shutdown_write = host_shutdown_write,
	.limit_send_buffer = host_limit_send_buffer,
	.peer = host_peer,
	.log_reserve = host_log_reserve,
	.log_commit = host_log_commit,
};
