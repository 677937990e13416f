/*
 * The identity transport: records are the application bytes. Received
 * bytes go to the engine where the kernel put them (the parser reads
 * them in place), and the engine's output buffer is what is sent.
 */
#include "ringside/transport.h"

#include "ringside/server.h"

static void plain_recv(struct transport *t, struct server *s, struct server_conn *c,
		       const char *data, size_t len)
{
	(void)t;
	server_conn_input(s, c, data, len);
}

static const char *plain_output(struct transport *t, struct server *s, struct server_conn *c,
				size_t *len)
{
	(void)t;
	return server_conn_output(s, c, len);
}

static void plain_sent(struct transport *t, struct server *s, struct server_conn *c, size_t n)
{
	(void)t;
	server_conn_sent(s, c, n);
}

static bool plain_close(struct transport *t, struct server *s, struct server_conn *c)
{
	(void)t;
	(void)s;
	(void)c;
	return false; /* nothing of its own to say */
}

const struct transport_class transport_plain = {
	.name = "plain",
	.recv = plain_recv,
	.output = plain_output,
	.sent = plain_sent,
	.close = plain_close,
};
