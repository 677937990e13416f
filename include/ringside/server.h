/*
 * The HTTP/1.1 connection engine (DESIGN.md "Layers and layout"): bytes
 * in, bytes out, and no I/O. A host (the io_uring worker, or a unit test)
 * hands it what a client sent (server_conn_input), asks it what to send
 * (server_conn_output) and says what went out (server_conn_sent); the
 * engine parses, routes, runs the handlers, keeps pipelined responses in
 * order, keeps the deadlines in its timer wheel, and tells the host when
 * there is output or the connection should end (struct server_host).
 *
 * One `struct server` per worker thread; nothing in it is shared.
 */
#ifndef RINGSIDE_SERVER_H
#define RINGSIDE_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringside/http_gzip.h"
#include "ringside/http_parser.h"
#include "ringside/http_response.h"
#include "ringside/timer_wheel.h"

struct config;
struct router;
struct metrics_registry;
struct server;
struct server_conn;

/* Output buffer of a connection with a response in progress. */
#define SERVER_OUT_BUF_SIZE (64u * 1024u)
/* Bytes a transport hands in at once at most (a recv buffer). */
#define SERVER_INPUT_CHUNK (16u * 1024u)

/* What the engine asks of its host. Every call comes from inside an
 * engine call on the host's thread. */
struct server_host {
	/* Output is pending (server_conn_output): send it, now or once the
	 * send in flight is done. */
	void (*send)(struct server *s, struct server_conn *c);
	/* The connection is over (the engine has ended its side): close it.
	 * The host calls server_conn_release once nothing of it is in
	 * flight any more (server_conn_releasable). */
	void (*close)(struct server *s, struct server_conn *c);
	/* Our last response is out: send the FIN, keep reading (lingering). */
	void (*shutdown_write)(struct server *s, struct server_conn *c);
	/* An event stream: bound what the kernel buffers for it. */
	void (*limit_send_buffer)(struct server *s, struct server_conn *c, int bytes);
	/* The client's address as text, for the access log. */
	const char *(*peer)(struct server *s, struct server_conn *c);
	/* Room for an access-log line of n bytes, or NULL (dropped and
	 * counted); and that line is complete. */
	char *(*log_reserve)(struct server *s, size_t n);
	void (*log_commit)(struct server *s, size_t n);
};

struct server_params {
	const struct config *cfg;
	const struct router *router;
	struct metrics_registry *metrics;
	struct api *api;            /* handed to handlers as http_context.api */
	uint32_t worker_id;         /* also its metrics shard */
	uint32_t slots;             /* connections it may hold */
	uint32_t request_id_nonce;  /* per process */
	bool access_log;            /* write a line per request */
	/* Set (by any thread) when the server is told to stop, before the
	 * host calls server_stop: a response begun meanwhile says close. */
	const _Atomic bool *stop_requested;
	const struct server_host *host;
	/* Optional: an exchange with a count_kind was answered 2xx (its
	 * answer is queued, not sent: the host sends it after this pass). */
	void (*answered)(struct http_exchange *x);
};

/* Allocates the per-worker buffers (touched as used). 0 or -ENOMEM. */
int server_init(struct server *s, const struct server_params *p);
void server_fini(struct server *s);

/* The host's clock, once per loop pass: CLOCK_MONOTONIC ns and the
 * wall clock (coarse) in ns. */
void server_set_clock(struct server *s, uint64_t now_ns, int64_t wall_ns);
/* Every tick: deadlines, event streams. */
void server_tick(struct server *s);
/* Start of a loop pass: producers that said AGAIN in the last pass are
 * due in this one. Returns true if any is (the pass must not sleep). */
bool server_pass_begin(struct server *s);
/* End of the pass's completions: the due producers run. */
void server_pass_end(struct server *s);
/* Graceful stop: idle connections close, busy ones close after their
 * response (the host calls this, then server_conn_stop for each). */
void server_stop(struct server *s);
/* Bytes of the engine's own memory in RAM (mincore; any thread). */
uint64_t server_resident(const struct server *s);
/* How often the host should call server_tick. */
uint32_t server_tick_ms(const struct server *s);
/* A whole response refusing a connection the host has no slot for
 * (status, the envelope with message, Connection: close, Retry-After),
 * written into buf; its length, or 0 if cap is too small. */
size_t server_refusal(struct server *s, char *buf, size_t cap, unsigned status,
		      const char *message);

/* ---- One connection ---- */

/* A new connection accepted on listener (enum metrics_listener), in the
 * host's slot `slot` of generation `gen` (they make its tickets). */
void server_conn_open(struct server *s, struct server_conn *c, unsigned listener, uint32_t slot,
		      uint16_t gen);
/* Bytes the client sent, valid during the call only (parsed in place
 * where they lie; what must wait is copied). */
void server_conn_input(struct server *s, struct server_conn *c, const char *data, size_t len);
/* The bytes to send next, NULL if none now. They stay valid and
 * unchanged until server_conn_sent. */
const char *server_conn_output(struct server *s, struct server_conn *c, size_t *len);
/* n bytes of the last server_conn_output went out. */
void server_conn_sent(struct server *s, struct server_conn *c, size_t n);
/* The first len bytes of the last server_conn_output are all the
 * connection will send: once they are out, the engine shuts its side
 * (the answer closes the connection). A transport may send its own
 * goodbye (close_notify) with them. */
bool server_conn_output_is_last(const struct server_conn *c, size_t len);
/* The client shut its side (a read of 0). */
void server_conn_eof(struct server *s, struct server_conn *c);
/* The connection broke (a failed read or send). */
void server_conn_reset(struct server *s, struct server_conn *c);
/* Graceful stop of this connection (after server_stop). */
void server_conn_stop(struct server *s, struct server_conn *c);
/* Ends it now, whatever it does (the host's shutdown deadline). */
void server_conn_abort(struct server *s, struct server_conn *c);
/* A completion for the park `park` of the connection (http_ticket_park
 * of its ticket): resumes the exchange if it is still the one parked;
 * a late one (the deadline answered) or a stale one is dropped. */
void server_conn_resume(struct server *s, struct server_conn *c, uint8_t park, int32_t result);
/* Nothing of the connection is pending in the engine any more (closed,
 * no completion owed): the host may free the slot once its own
 * operations are done, after server_conn_release. */
bool server_conn_releasable(const struct server_conn *c);
void server_conn_release(struct server *s, struct server_conn *c);
/* The connection is closed or closing (server_host.close was called). */
bool server_conn_closing(const struct server_conn *c);
/* Bytes it holds now (its state, and request and response bytes waiting). */
uint64_t server_conn_held(const struct server_conn *c);

/* ---- The engine's state; private to src/server (here for sizeof) ---- */

enum server_phase {
	SERVER_PHASE_FREE = 0,
	SERVER_PHASE_HEAD,    /* waiting for or reading a request head */
	SERVER_PHASE_BODY,    /* reading a request body */
	SERVER_PHASE_PARKED,  /* the whole request is in; its handler waits on another thread */
	SERVER_PHASE_LINGER,  /* final response queued or sent; discarding input */
	SERVER_PHASE_CLOSING, /* host.close called */
};

#define SERVER_LOG_PATH_MAX 200u

struct server_conn {
	uint8_t phase;
	uint8_t body_kind;
	bool send_from_body;   /* the last output came from body_buf, not out */
	bool close_after_send; /* last response queued: close once it is out */
	bool peer_eof;         /* the client shut its side */
	bool between_requests; /* no byte of the next request yet (keep-alive idle) */
	bool input_blocked;    /* output full or a park pending: new input waits in `in` */
	bool streaming;        /* an event stream: no more requests on it */
	bool handler_open;     /* on_head ran, on_end not yet */
	bool replied_at_head;  /* on_head answered: no on_request */
	bool body_produced;    /* this exchange's body comes from a producer */
	bool count_pending;    /* ... and is counted when its last byte is out */
	bool log_pending;      /* a stream, logged when it ends */
	bool may_park;         /* in on_request or on_resume: http_park may be called */
	bool parking;          /* ... and was */
	uint8_t producer;      /* 1 + index into server.producers while a body is produced */
	uint8_t listener;      /* accepted on (enum metrics_listener) */
	uint8_t pool_state;    /* the pool view's state */
	uint8_t park;          /* which park of this connection is the current one */
	uint8_t owed;          /* completions of parks not yet come back */
	uint8_t log_path_len;
	uint16_t answer_status; /* != 0: answer this once the body is consumed */
	const char *answer_message;
	uint32_t slot;         /* the host's, for tickets */
	uint16_t gen;
	uint32_t in_len;       /* unconsumed input in `in` (starts a request head) */
	uint32_t out_sent;     /* bytes of out already sent */
	char *in;              /* from the server's in_pool, or NULL */
	struct http_out out;   /* buf from out_pool, or NULL */
	char *body_buf;        /* from body_pool, sent after `out` */
	char *xbuf;            /* from xbuf_pool: http_exchange_buffer */
	uint32_t body_len, body_sent;
	uint32_t stream_index; /* in server.streams, while streaming */
	uint64_t request_start_ns;
	uint64_t body_left;    /* a Content-Length body */
	uint64_t body_start_ms; /* the head of the request whose body is read */
	uint64_t body_received; /* its bytes so far, framing included */
	uint64_t requests;     /* completed on this connection */
	struct timer_node timer;
	const struct http_handler *handler;
	uint32_t allow;        /* 405: methods the path has */
	struct http_exchange x;
	char log_path[SERVER_LOG_PATH_MAX]; /* the request's path, for the access log */
	struct http_parser parser;
	struct http_chunked chunked;
};

/* LIFO pool of equal buffers in one lazily-touched mapping: the most
 * recently freed (cache-hot) buffer is reused first, and idle connections
 * hold none. */
struct buf_pool {
	char *base;
	uint32_t size, count, free_top;
	uint32_t *free; /* stack of free indexes */
};

#define SERVER_BODY_BUF_SIZE (2u * 1024u * 1024u)
#define SERVER_BODY_BUF_COUNT 16u
#define SERVER_SCRATCH_SIZE (2u * SERVER_BODY_BUF_SIZE) /* a rendering and its gzip */

struct server {
	const struct server_host *host;
	const struct config *cfg;
	const struct router *router;
	void (*answered)(struct http_exchange *x);
	struct http_context ctx;
	struct http_limits limits;
	uint32_t id;
	bool stopping;
	bool access_log;
	const _Atomic bool *stop_requested;

	struct buf_pool in_pool, out_pool, body_pool, xbuf_pool;
	uint32_t in_buf_size;
	char *scratch;
	struct http_gzip gzip;

	/* Bodies produced in pieces (http_reply_stream). */
	struct producer {
		http_produce produce;
		struct server_conn *conn;
		bool gzip;        /* through gzip_streams[] of the same index */
		_Alignas(16) unsigned char state[HTTP_STREAM_STATE_MAX];
	} producers[HTTP_STREAMS_MAX];
	uint32_t producers_used;  /* bit per entry in use */
	/* Bit per producer that said HTTP_PRODUCE_AGAIN: `again` in this
	 * pass, called in the next (`due`), after its completions. */
	uint32_t producers_again, producers_due;
	/* A compressor per producer entry, each in its HTTP_GZIP_STREAM_BYTES
	 * of gzip_mem (reserved at start, touched as used). */
	struct http_gzip gzip_streams[HTTP_STREAMS_MAX];
	char *gzip_mem;

	struct server_conn **streams; /* event-stream subscribers */
	uint32_t stream_count, slots;
	http_event_render stream_render;
	uint64_t next_event_ms;

	struct timer_wheel wheel;
	uint64_t now_ns, now_ms;
	int64_t now_wall_ms, date_second;
	char date_line[HTTP_DATE_LINE_LEN];
	char request_id_prefix[16];
	uint64_t request_seq;
};

#endif
