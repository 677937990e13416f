/*
 * Private to src/ring: the worker (worker.c: ring, accept, recv, send,
 * close, timers, shutdown, completions posted by other threads) and its
 * access-log writer (access_log_writer.c). What the bytes mean is the
 * engine's business (ringside/server.h), reached through a transport
 * (ringside/transport.h).
 */
#ifndef RINGSIDE_WORKER_INT_H
#define RINGSIDE_WORKER_INT_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringside/metrics.h"
#include "ringside/ring.h"
#include "ringside/server.h"
#include "ringside/tls.h"
#include "ringside/transport.h"

/* Provided recv buffers, per worker. Each is handed back to the kernel as
 * soon as its bytes are parsed or copied, so the count only has to cover
 * the CQEs of one loop iteration. */
#define RECV_BUF_SIZE SERVER_INPUT_CHUNK
#define RECV_BUF_COUNT 1024u /* power of two */
#define RECV_BUF_GROUP 0

/* The same order as metrics_listener, which labels the open connections. */
enum listener {
	LISTENER_MAIN = METRICS_LISTENER_MAIN,
	LISTENER_METRICS = METRICS_LISTENER_METRICS,
	LISTENER_COUNT
};

/* io_uring user_data: which operation, on which slot, of which generation.
 * The generation guards against a CQE of a slot's previous connection. */
enum op {
	OP_ACCEPT = 1,
	OP_RECV,
	OP_SEND,
	OP_CLOSE,  /* the cancel (hard-linked) and the close of a connection */
	OP_TIMER,
	OP_WAKE,
	OP_CANCEL, /* the result of a cancel: nothing to act on */
	OP_LOG_WRITE, /* an access log buffer written; slot: which buffer */
	OP_RESUME, /* posted by another thread (MSG_RING): extra is the park, res the result */
};

union user_data {
	uint64_t u64;
	struct {
		uint32_t slot;
		uint16_t gen;
		uint8_t op;
		uint8_t extra;
	};
};

static inline uint64_t ud_encode(enum op op, uint32_t slot, uint16_t gen)
{
	union user_data u = {.slot = slot, .gen = gen, .op = (uint8_t)op};
	return u.u64;
}

static inline union user_data ud_decode(uint64_t v)
{
	union user_data u = {.u64 = v};
	return u;
}

/* A connection slot: the socket's operations, its transport and the
 * engine's side. */
struct ring_conn {
	int fd;
	uint16_t gen;
	bool in_use;
	bool recv_armed;       /* a multishot recv is outstanding */
	bool send_busy;        /* a send is outstanding (one at a time) */
	bool closing;          /* the close is decided */
	bool close_pending;    /* OP_CLOSE submitted, CQE not yet in */
	bool flush_then_close; /* the transport's goodbye goes out first */
	bool fin_after_flush;  /* our FIN waits for the transport's goodbye (TLS) */
	uint8_t listener;      /* enum listener it was accepted on */
	char peer[48];         /* the client's address, once the access log asked */
	struct transport transport;
	struct server_conn sc;
};

/* A worker's side of the access log (access_log_writer.c): two buffers,
 * one filling while the other is written. */
#define ACCESS_LOG_BUF_SIZE (64u * 1024u)
struct access_log {
	int fd;              /* -1: no access log */
	uint32_t cap;        /* bytes per write: 64 KiB, PIPE_BUF on a pipe */
	char *buf[2];
	uint32_t len[2], lines[2];
	uint32_t written;    /* of the buffer being written, so far */
	uint8_t filling;     /* the buffer lines go to */
	bool writing;        /* the other one is with the kernel */
	bool failed;         /* the last write failed (logged once) */
};

struct worker {
	struct io_uring ring;
	struct server server;    /* the engine's side of this worker */
	struct ring_server *owner;
	const struct config *cfg;
	uint32_t id;
	int cpu;
	int listen_fd[LISTENER_COUNT]; /* -1 if not listening */
	bool accept_armed[LISTENER_COUNT];
	int wake_fd;            /* eventfd: the main thread asks us to stop */
	uint64_t wake_value;

	struct ring_conn *conns;
	uint32_t conn_count;
	uint32_t *free_slots;
	uint32_t free_top;
	uint32_t open_conns;
	uint32_t slots_used;    /* highest slot ever taken + 1 (lowest are taken first) */

	/* TLS (tls.h): a slot per connection slot, for the listeners that
	 * serve it; untouched address space on a plain-only server. */
	bool tls_on[LISTENER_COUNT];
	struct tls_pool tls;

	struct io_uring_buf_ring *recv_ring;
	char *recv_bufs;
	uint32_t recv_returned;  /* buffers added since the last advance */

	uint64_t next_memory_ms;  /* when publish_memory looks again */
	struct access_log access_log;
	struct __kernel_timespec tick;

	bool stopping;
	uint64_t stop_deadline_ms;
	pthread_t thread;
};

/* worker.c, for access_log_writer.c */
struct io_uring_sqe *worker_get_sqe(struct worker *w);

/* access_log_writer.c, for worker.c */
int access_log_init(struct access_log *l, int fd);
void access_log_fini(struct access_log *l);
/* Room for an n-byte line, or NULL (the line is dropped and counted). */
char *access_log_reserve(struct worker *w, size_t n);
/* The line of n bytes written at the reserved place is complete. */
void access_log_commit(struct worker *w, size_t n);
/* Every tick: hands a non-empty buffer to the kernel. */
void access_log_tick(struct worker *w);
void access_log_on_write(struct worker *w, unsigned buffer, int res);
/* The worker has stopped: writes out what is left. */
void access_log_drain(struct worker *w);

#endif
