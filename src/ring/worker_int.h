/*
 * Private to src/ring: the worker (worker.c: ring, accept, buffers,
 * timers, close, shutdown) and a connection's HTTP life (conn.c).
 */
#ifndef RINGSIDE_WORKER_INT_H
#define RINGSIDE_WORKER_INT_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringside/config.h"
#include "ringside/http_parser.h"
#include "ringside/http_gzip.h"
#include "ringside/http_response.h"
#include "ringside/metrics.h"
#include "ringside/ring.h"
#include "ringside/router.h"
#include "ringside/timer_wheel.h"

/* Provided recv buffers, per worker. Each is handed back to the kernel as
 * soon as its bytes are parsed or copied, so the count only has to cover
 * the CQEs of one loop iteration. */
#define RECV_BUF_SIZE (16u * 1024u)
#define RECV_BUF_COUNT 1024u /* power of two */
#define RECV_BUF_GROUP 0

/* Output buffer of a connection with a response in progress. */
#define OUT_BUF_SIZE (64u * 1024u)

/* Responses are rendered in the per-worker scratch and copied into the
 * connection's output buffer; one too large for it goes out of a body
 * buffer instead. Lazily touched; a request finding none free gets 503. */
#define BODY_BUF_SIZE (2u * 1024u * 1024u)
#define BODY_BUF_COUNT 16u
#define SCRATCH_SIZE (2u * BODY_BUF_SIZE) /* a rendering and its gzip */

/* An event-stream subscriber more than this far behind is dropped; its
 * socket send buffer is capped too, so a client that stops reading costs
 * a bounded amount of memory and is found out within seconds. */
#define STREAM_MAX_BACKLOG (16u * 1024u)
#define STREAM_SNDBUF (32 * 1024)

/* The same order as metrics_listener, which labels the open connections. */
enum listener {
	LISTENER_MAIN = METRICS_LISTENER_MAIN,
	LISTENER_METRICS = METRICS_LISTENER_METRICS,
	LISTENER_COUNT
};

#define TICK_MS 50u
/* After a response that closes the connection: how long to drain what the
 * client is still sending, so our response is not destroyed by a RST
 * (nginx's lingering close). */
#define LINGER_MS 2000u

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
};

union user_data {
	uint64_t u64;
	struct {
		uint32_t slot;
		uint16_t gen;
		uint8_t op;
		uint8_t unused;
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

/* LIFO pool of equal buffers in one lazily-touched mapping: the most
 * recently freed (cache-hot) buffer is reused first, and idle connections
 * hold none. */
struct buf_pool {
	char *base;
	uint32_t size, count, free_top;
	uint32_t *free; /* stack of free indexes */
};

enum conn_phase {
	PHASE_FREE = 0,
	PHASE_HEAD,    /* waiting for or reading a request head */
	PHASE_BODY,    /* reading a request body */
	PHASE_LINGER,  /* final response queued or sent; discarding input */
	PHASE_CLOSING, /* cancel + close submitted; slot freed when all CQEs are in */
};

enum body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

#define CONN_LOG_PATH_MAX 200u

/* The connection's state in the pool view (seed 004, openapi/metrics.yaml). */
enum pool_state { POOL_NONE, POOL_CREATING, POOL_ACTIVE, POOL_IDLE };

struct conn {
	int fd;
	uint16_t gen;
	uint8_t phase;
	uint8_t body_kind;
	bool recv_armed;       /* a multishot recv is outstanding */
	bool send_busy;        /* a send is outstanding (one at a time) */
	bool send_from_body;   /* ... and it is from body_buf, not out */
	bool close_pending;    /* OP_CLOSE submitted, CQE not yet in */
	bool close_after_send; /* last response queued: close once it is out */
	bool peer_eof;         /* the client shut its side */
	bool between_requests; /* no byte of the next request yet (keep-alive idle) */
	bool input_blocked;    /* output full: new input waits in `in` */
	bool streaming;        /* an event stream: no more requests on it */
	bool handler_open;     /* on_head ran, on_end not yet */
	bool replied_at_head;  /* on_head answered: no on_request */
	bool body_produced;    /* this exchange's body comes from a producer */
	bool count_pending;    /* ... and is counted when its last byte is out */
	uint8_t producer;      /* 1 + index into worker.producers while a body is produced */
	uint8_t listener;      /* enum listener it was accepted on */
	uint8_t pool_state;    /* enum pool_state */
	uint16_t answer_status; /* != 0: answer this once the body is consumed */
	const char *answer_message;
	uint32_t in_len;       /* unconsumed input in `in` (starts a request head) */
	uint32_t out_sent;     /* bytes of out already sent */
	char *in;              /* from the worker's in_pool, or NULL */
	struct http_out out;   /* buf from out_pool, or NULL */
	char *body_buf;        /* from body_pool, sent after `out` */
	uint32_t body_len, body_sent;
	uint32_t stream_index; /* in worker.streams, while streaming */
	uint64_t request_start_ns;
	uint64_t body_left;    /* BODY_LENGTH */
	uint64_t body_start_ms; /* the head of the request whose body is read */
	uint64_t body_received; /* its bytes so far, framing included */
	uint64_t requests;     /* completed on this connection */
	struct timer_node timer;
	const struct http_handler *handler;
	uint32_t allow;        /* 405: methods the path has */
	struct http_exchange x;
	/* The access log's (only with --access-log): the path of the request
	 * (cut to CONN_LOG_PATH_MAX) and the client's address, once. */
	bool log_pending;       /* a stream, logged when it ends */
	uint8_t log_path_len;
	char log_path[CONN_LOG_PATH_MAX];
	char peer[48];
	struct http_parser parser;
	struct http_chunked chunked;
};

/* A worker's side of the access log (access_log.c): two buffers, one
 * filling while the other is written. */
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
	struct http_context ctx;
	struct ring_server *server;
	const struct config *cfg;
	const struct router *router;
	struct http_limits limits;
	uint32_t id;
	int cpu;
	int listen_fd[LISTENER_COUNT]; /* -1 if not listening */
	bool accept_armed[LISTENER_COUNT];
	int wake_fd;            /* eventfd: the main thread asks us to stop */
	uint64_t wake_value;

	struct conn *conns;
	uint32_t conn_count;
	uint32_t *free_slots;
	uint32_t free_top;
	uint32_t open_conns;
	uint32_t slots_used;    /* highest slot ever taken + 1 (lowest are taken first) */

	/* Bodies produced in pieces (http_reply_stream). */
	struct producer {
		http_produce produce;
		struct conn *conn;
		bool gzip;        /* through gzip_streams[] of the same index */
		_Alignas(16) unsigned char state[HTTP_STREAM_STATE_MAX];
	} producers[HTTP_STREAMS_MAX];
	uint32_t producers_used;  /* bit per entry in use */
	/* Bit per producer that said HTTP_PRODUCE_AGAIN: `again` in this
	 * pass, called in the next (`due`), after its completions. */
	uint32_t producers_again, producers_due;
	/* A compressor per producer entry, each in its HTTP_GZIP_STREAM_BYTES
	 * of gzip_mem (reserved at start, touched as used; zlib's state is set
	 * up at a slot's first use, slot 0's at start to prove it fits). */
	struct http_gzip gzip_streams[HTTP_STREAMS_MAX];
	char *gzip_mem;

	struct io_uring_buf_ring *recv_ring;
	char *recv_bufs;
	uint32_t recv_returned;  /* buffers added since the last advance */
	struct buf_pool in_pool, out_pool, body_pool;
	struct http_gzip gzip;
	uint32_t in_buf_size;
	char *scratch;

	struct conn **streams;      /* event-stream subscribers */
	uint32_t stream_count;
	http_event_render stream_render;
	uint64_t next_event_ms;
	uint64_t next_memory_ms;  /* when publish_memory looks again */

	struct access_log access_log;
	char log_time[24];       /* "2026-12-02T04:49:55." of date_second */

	struct timer_wheel wheel;
	struct __kernel_timespec tick;
	uint64_t now_ns;         /* CLOCK_MONOTONIC, refreshed per loop */
	uint64_t now_ms;
	int64_t now_wall_ms;     /* CLOCK_REALTIME_COARSE, refreshed per loop */
	int64_t date_second;
	char date_line[HTTP_DATE_LINE_LEN];
	char request_id_prefix[16];
	uint64_t request_seq;

	bool stopping;
	uint64_t stop_deadline_ms;
	pthread_t thread;
};

/* worker.c, for conn.c and access_log.c */
struct io_uring_sqe *worker_get_sqe(struct worker *w);
void worker_send(struct worker *w, struct conn *c);
void worker_close(struct worker *w, struct conn *c);
void worker_shutdown_write(struct worker *w, struct conn *c);
char *buf_pool_get(struct buf_pool *p);
void buf_pool_put(struct buf_pool *p, char *buf);
uint32_t conn_slot(const struct worker *w, const struct conn *c);
/* Producer entry i's compressor, set up at its first use; NULL if it
 * cannot be (the body then goes out identity-coded). */
struct http_gzip *worker_gzip_stream(struct worker *w, unsigned i);

/* access_log.c, for worker.c and conn.c */
int access_log_init(struct access_log *l, int fd);
void access_log_fini(struct access_log *l);
/* Room for an n-byte line, or NULL (the line is dropped and counted). */
char *access_log_reserve(struct worker *w, size_t n);
/* The line of n bytes written at the reserved place is complete. */
void access_log_commit(struct worker *w, size_t n);
/* Appends the line of c's exchange, which ended at end_ns (monotonic). */
void access_log_request(struct worker *w, struct conn *c, uint64_t end_ns);
/* Every tick: hands a non-empty buffer to the kernel. */
void access_log_tick(struct worker *w);
void access_log_on_write(struct worker *w, unsigned buffer, int res);
/* The worker has stopped: writes out what is left. */
void access_log_drain(struct worker *w);

/* conn.c, for worker.c */
void conn_open(struct worker *w, struct conn *c);
void conn_on_input(struct worker *w, struct conn *c, const char *data, size_t len);
void conn_on_sent(struct worker *w, struct conn *c);
void conn_on_eof(struct worker *w, struct conn *c);
void conn_on_reset(struct worker *w, struct conn *c);
void conn_on_timer(struct worker *w, struct conn *c);
void conn_on_stop(struct worker *w, struct conn *c);
void conn_release_buffers(struct worker *w, struct conn *c);
void conn_end_exchange(struct conn *c);
void conn_format_request_id(struct worker *w, struct http_exchange *x);
void conn_set_pool_state(struct worker *w, struct conn *c, enum pool_state s);
void conn_push_events(struct worker *w);
void conn_stream_remove(struct worker *w, struct conn *c);
void conn_count_stream_end(struct worker *w, struct conn *c);
void conn_produce_due(struct worker *w);

#endif
