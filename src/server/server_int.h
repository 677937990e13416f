/*
 * Private to src/server: what the connection's life (conn.c), the bodies
 * that outlive one call (stream.c: produced bodies, event streams), the
 * per-worker set-up (server.c) and the access-log line (access_line.c)
 * share.
 */
#ifndef RINGSIDE_SERVER_INT_H
#define RINGSIDE_SERVER_INT_H

#include "ringside/server.h"

#include "ringside/metrics.h"

enum body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

/* The connection's state in the pool view (seed 004, openapi/metrics.yaml). */
enum pool_state { POOL_NONE, POOL_CREATING, POOL_ACTIVE, POOL_IDLE };

/* An event-stream subscriber more than this far behind is dropped; its
 * socket send buffer is capped too, so a client that stops reading costs
 * a bounded amount of memory and is found out within seconds. */
#define STREAM_MAX_BACKLOG (16u * 1024u)
#define STREAM_SNDBUF (32 * 1024)

/* After a response that closes the connection: how long to drain what the
 * client is still sending, so our response is not destroyed by a RST
 * (nginx's lingering close). */
#define LINGER_MS 2000u

/* A connection may owe this many completions of earlier parks (each
 * timed out) before it may park again. */
#define PARKS_OWED_MAX 64u

extern const char server_hex_digits[16];

static inline struct server_conn *conn_of(struct http_exchange *x)
{
	return (struct server_conn *)(void *)((char *)x - offsetof(struct server_conn, x));
}

static inline struct server *server_of(struct http_exchange *x)
{
	return (struct server *)(void *)((char *)x->ctx - offsetof(struct server, ctx));
}

char *buf_pool_get(struct buf_pool *p);
void buf_pool_put(struct buf_pool *p, char *buf);

/* conn.c, for stream.c and server.c */
void conn_format_request_id(struct server *s, struct http_exchange *x);
void conn_ensure_out(struct server *s, struct server_conn *c);
void conn_send(struct server *s, struct server_conn *c);
void conn_close(struct server *s, struct server_conn *c);
void conn_on_sent(struct server *s, struct server_conn *c);
void conn_set_pool_state(struct server *s, struct server_conn *c, enum pool_state st);
bool conn_unsent(const struct server_conn *c);
/* The timer wheel's callback (ctx: the server). */
void conn_timer_fired(struct timer_node *n, void *ctx);

/* stream.c, for conn.c and server.c */
void stream_release_producer(struct server *s, struct server_conn *c);
/* Waiting for its turn in the next pass: nothing else may call it. */
bool stream_producer_waiting(const struct server *s, const struct server_conn *c);
void stream_produce_piece(struct server *s, struct server_conn *c);
void stream_remove(struct server *s, struct server_conn *c);
void stream_end(struct server *s, struct server_conn *c);
void stream_push_events(struct server *s);
void stream_count_end(struct server *s, struct server_conn *c);
/* CLOCK_MONOTONIC now, in ns (a vDSO read, tens of ns): where a duration
 * must end at this instant, not at the loop pass's clock. */
uint64_t conn_clock_ns(void);
/* The exchange in the request metrics and the access log, now. */
void conn_count_now(struct server *s, struct server_conn *c);
/* Producer entry i's compressor, set up at its first use; NULL if it
 * cannot be (the body then goes out identity-coded). */
struct http_gzip *server_gzip_stream(struct server *s, unsigned i);

/* access_line.c: appends the access-log line of c's exchange, which
 * ended at end_ns (monotonic). */
void access_line_write(struct server *s, struct server_conn *c, uint64_t end_ns);

#endif
