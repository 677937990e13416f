/*
 * The io_uring side of a worker: ring set-up, the accept/recv/send/close
 * operations, the buffer ring, the timer tick and shutdown. What a
 * connection's bytes mean is conn.c's business.
 */
#include "worker_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ringside/log.h"
#include "ringside/resident.h"

#define SQ_ENTRIES 4096u
#define CQ_BATCH 256u
/* The kernel's largest CQ (IORING_MAX_CQ_ENTRIES). */
#define CQ_ENTRIES_MAX 65536u
/* A stream compressor per producer entry: 272 KiB each, 4.25 MiB per
 * worker reserved; resident only as streams use them (~172 KiB for one
 * that compressed a body; its held input only when the output fell
 * short). */
#define GZIP_MEM_SIZE ((size_t)HTTP_STREAMS_MAX * HTTP_GZIP_STREAM_BYTES)

/*
 * A CQ that can hold every completion the worker can have outstanding, so
 * it never overflows (an overflowing CQ makes submits fail with -EBUSY on
 * some kernels, and worker_get_sqe() submits from inside the completion loop):
 * per slot a recv end, a send and a close; one per provided buffer; slack
 * for accepts and timers.
 */
static unsigned cq_entries_for(uint32_t slots)
{
	uint64_t need = 4ull * slots + 2ull * RECV_BUF_COUNT + 1024u;
	unsigned n = 4 * SQ_ENTRIES;
	while (n < need && n < CQ_ENTRIES_MAX)
		n <<= 1;
	return n;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- buffer pools ---- */

static int buf_pool_init(struct buf_pool *p, uint32_t size, uint32_t count)
{
	p->size = size;
	p->count = count;
	p->base = mmap(NULL, (size_t)size * count, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->base == MAP_FAILED)
		return -errno;
	p->free = calloc(count, sizeof *p->free);
	if (!p->free) {
		munmap(p->base, (size_t)size * count);
		return -ENOMEM;
	}
	/* Lowest index on top, so a quiet server touches few pages. */
	for (uint32_t i = 0; i < count; i++)
		p->free[i] = count - 1 - i;
	p->free_top = count;
	return 0;
}

static void buf_pool_fini(struct buf_pool *p)
{
	if (p->base && p->base != MAP_FAILED)
		munmap(p->base, (size_t)p->size * p->count);
	free(p->free);
}

char *buf_pool_get(struct buf_pool *p)
{
	/* in and out pools hold one buffer per slot, so they cannot run dry;
	 * the body pool can (its users answer 503). */
	if (p->free_top == 0)
		return NULL;
	return p->base + (size_t)p->free[--p->free_top] * p->size;
}

void buf_pool_put(struct buf_pool *p, char *buf)
{
	p->free[p->free_top++] = (uint32_t)((size_t)(buf - p->base) / p->size);
}

uint32_t conn_slot(const struct worker *w, const struct conn *c)
{
	return (uint32_t)(c - w->conns);
}

/* ---- submission ---- */

/* A free SQE; when the SQ is full, submit what is queued and retry. */
struct io_uring_sqe *worker_get_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	while (!sqe) {
		int r = io_uring_submit(&w->ring);
		if (r < 0 && r != -EBUSY && r != -EINTR)
			log_error("io_uring submit failed", "worker=%u err=%d", w->id, -r);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

static void arm_accept(struct worker *w, enum listener l)
{
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	io_uring_prep_multishot_accept(sqe, w->listen_fd[l], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_encode(OP_ACCEPT, l, 0));
	w->accept_armed[l] = true;
}

static void arm_recv(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RECV_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, ud_encode(OP_RECV, conn_slot(w, c), c->gen));
	c->recv_armed = true;
}

static void arm_timer(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	io_uring_prep_timeout(sqe, &w->tick, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_encode(OP_TIMER, 0, 0));
}

static void arm_wake(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_value, sizeof w->wake_value, 0);
	io_uring_sqe_set_data64(sqe, ud_encode(OP_WAKE, 0, 0));
}

/* Sends what is pending: the output buffer first, then a body buffer
 * (whose head is the last thing in the output buffer). */
void worker_send(struct worker *w, struct conn *c)
{
	if (c->send_busy || c->phase == PHASE_CLOSING)
		return;
	const char *data;
	size_t len;
	c->send_from_body = c->out.len == c->out_sent;
	if (!c->send_from_body) {
		data = c->out.buf + c->out_sent;
		len = c->out.len - c->out_sent;
	} else if (c->body_len > c->body_sent) {
		data = c->body_buf + c->body_sent;
		len = c->body_len - c->body_sent;
	} else {
		return;
	}
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	io_uring_prep_send(sqe, c->fd, data, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_encode(OP_SEND, conn_slot(w, c), c->gen));
	c->send_busy = true;
}

void worker_shutdown_write(struct worker *w, struct conn *c)
{
	(void)w;
	/* Sends our FIN at once; rare (closing responses only), so a plain
	 * syscall is simpler than another operation to track. */
	shutdown(c->fd, SHUT_WR);
}

/*
 * Cancels whatever is outstanding on the fd and closes it. The close is
 * hard-linked to the cancel so it runs even when there was nothing to
 * cancel. The slot is reused only when every CQE of this connection is in
 * (see maybe_free_slot), never while the kernel may still write to it.
 */
void worker_close(struct worker *w, struct conn *c)
{
	if (c->phase == PHASE_CLOSING)
		return;
	c->phase = PHASE_CLOSING;
	timer_wheel_cancel(&w->wheel, &c->timer);
	conn_end_exchange(c); /* a request cut off: its handler gives back */
	conn_count_stream_end(w, c); /* a stream cut off: counted, with what was sent */
	conn_set_pool_state(w, c, POOL_NONE);
	conn_stream_remove(w, c);
	uint64_t ud = ud_encode(OP_CLOSE, conn_slot(w, c), c->gen);
	if (c->recv_armed || c->send_busy) {
		struct io_uring_sqe *cancel = worker_get_sqe(w);
		io_uring_prep_cancel_fd(cancel, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(cancel, ud_encode(OP_CANCEL, UINT32_MAX, 0));
		cancel->flags |= IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
	}
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	io_uring_prep_close(sqe, c->fd);
	io_uring_sqe_set_data64(sqe, ud);
	c->close_pending = true;
}

/* ringside_open_connections{listener}: this worker is the only writer. */
static void count_open(struct worker *w, unsigned listener, int delta)
{
	_Atomic uint32_t *g = &w->ctx.shard->view.open[listener];
	metrics_set_u32(g, atomic_load_explicit(g, memory_order_relaxed) + (uint32_t)delta);
}

static void maybe_free_slot(struct worker *w, struct conn *c)
{
	if (c->phase != PHASE_CLOSING || c->close_pending || c->recv_armed || c->send_busy)
		return;
	conn_release_buffers(w, c);
	c->phase = PHASE_FREE;
	c->fd = -1;
	c->gen++;
	w->free_slots[w->free_top++] = conn_slot(w, c);
	w->open_conns--;
	count_open(w, c->listener, -1);
}

/* ---- completions ---- */

static void return_recv_buffer(struct worker *w, uint32_t bid)
{
	io_uring_buf_ring_add(w->recv_ring, w->recv_bufs + (size_t)bid * RECV_BUF_SIZE,
			      RECV_BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(RECV_BUF_COUNT), (int)w->recv_returned);
	w->recv_returned++;
}

/* The slab is full: say so in a canned 503 and close, without a slot. */
static void reject_connection(struct worker *w, int fd)
{
	char buf[512];
	struct http_out out = {buf, 0, sizeof buf};
	struct http_exchange x = {.close = true, .date_line = w->date_line, .out = &out};
	conn_format_request_id(w, &x);
	if (http_reply_error(&x, 503, NULL, "Too many open connections. Retry later.", NULL,
			     NULL, "Retry-After: 1\r\n") == 0) {
		ssize_t n = send(fd, out.buf, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)n;
	}
	shutdown(fd, SHUT_WR);
	close(fd);
}

static void on_accept(struct worker *w, enum listener l, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		w->accept_armed[l] = false;
		if (!w->stopping) {
			arm_accept(w, l);
		} else if (w->listen_fd[l] >= 0) {
			/* New connections now get a refusal, not a wait. */
			close(w->listen_fd[l]);
			w->listen_fd[l] = -1;
		}
	}
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED)
			log_warn("accept failed", "worker=%u err=%d", w->id, -cqe->res);
		return;
	}
	int fd = cqe->res;
	if (w->stopping) {
		close(fd);
		return;
	}
	if (w->free_top == 0) {
		log_warn("connection refused: all slots busy", "worker=%u slots=%u", w->id,
			 w->conn_count);
		reject_connection(w, fd);
		return;
	}
	uint32_t slot = w->free_slots[--w->free_top];
	struct conn *c = &w->conns[slot];
	w->open_conns++;
	if (slot >= w->slots_used)
		w->slots_used = slot + 1;
	c->fd = fd;
	conn_open(w, c);
	c->listener = (uint8_t)l;
	count_open(w, l, +1);
	arm_recv(w, c);
}

static void on_recv(struct worker *w, struct conn *c, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (!more)
		c->recv_armed = false;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (cqe->res > 0 && c->phase != PHASE_CLOSING)
			conn_on_input(w, c, w->recv_bufs + (size_t)bid * RECV_BUF_SIZE,
				      (size_t)cqe->res);
		return_recv_buffer(w, bid);
	}
	if (c->phase == PHASE_CLOSING) {
		maybe_free_slot(w, c);
		return;
	}
	if (cqe->res == 0) {
		conn_on_eof(w, c);
	} else if (cqe->res < 0 && cqe->res != -ENOBUFS) {
		conn_on_reset(w, c); /* -ECONNRESET and friends */
	} else if (!more && !c->recv_armed && c->phase != PHASE_CLOSING) {
		/* The multishot ended (-ENOBUFS, or the kernel's choice): re-arm.
		 * Buffers come back at the end of this loop, before the submit. */
		arm_recv(w, c);
	}
	maybe_free_slot(w, c);
}

static void on_send(struct worker *w, struct conn *c, struct io_uring_cqe *cqe)
{
	c->send_busy = false;
	if (c->phase == PHASE_CLOSING) {
		maybe_free_slot(w, c);
		return;
	}
	if (cqe->res < 0) {
		worker_close(w, c);
		return;
	}
	if (c->send_from_body)
		c->body_sent += (uint32_t)cqe->res;
	else
		c->out_sent += (uint32_t)cqe->res;
	conn_on_sent(w, c);
}

static void fire_timer(struct timer_node *n, void *ctx)
{
	struct worker *w = ctx;
	struct conn *c = (struct conn *)(void *)((char *)n - offsetof(struct conn, timer));
	conn_on_timer(w, c);
}

static void begin_stop(struct worker *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	atomic_store_explicit(&w->ctx.shard->view.stopping, true, memory_order_relaxed);
	w->stop_deadline_ms = w->now_ms + w->cfg->shutdown_timeout_ms;
	for (int l = 0; l < LISTENER_COUNT; l++) {
		if (!w->accept_armed[l])
			continue;
		struct io_uring_sqe *sqe = worker_get_sqe(w);
		io_uring_prep_cancel64(sqe, ud_encode(OP_ACCEPT, (uint32_t)l, 0), 0);
		io_uring_sqe_set_data64(sqe, ud_encode(OP_CANCEL, 0, 0));
	}
	for (uint32_t i = 0; i < w->conn_count; i++)
		if (w->conns[i].phase != PHASE_FREE)
			conn_on_stop(w, &w->conns[i]);
}

/* /metrics/api/metrics/stats's heapUsed: the bytes this worker holds for
 * its open connections now, their state and the request and response
 * bytes waiting in their buffers; every one is in a page it touched, so it
 * never exceeds its rss (measured by the main thread,
 * ring_worker_resident). Once a second: a walk of the slab. */
static void publish_memory(struct worker *w)
{
	if (w->now_ms < w->next_memory_ms)
		return;
	w->next_memory_ms = w->now_ms + 1000;
	uint64_t held = 0;
	/* Only slots ever used: the rest of the slab is untouched pages. */
	for (uint32_t i = 0; i < w->slots_used; i++) {
		const struct conn *c = &w->conns[i];
		if (c->phase != PHASE_FREE)
			held += sizeof *c + c->in_len + (c->out.buf ? c->out.len - c->out_sent : 0) +
				c->body_len - c->body_sent;
	}
	atomic_store_explicit(&w->ctx.shard->view.memory_in_use, held, memory_order_relaxed);
}

uint64_t ring_worker_resident(const struct ring_server *s, uint32_t i)
{
	const struct worker *w = s->workers[i];
	const struct io_uring *r = &w->ring;
	const struct buf_pool *pools[] = {&w->in_pool, &w->out_pool, &w->body_pool};
	uint64_t n = resident_bytes(w, sizeof *w) +
		     resident_bytes(w->conns, (size_t)w->conn_count * sizeof *w->conns) +
		     resident_bytes(w->free_slots, (size_t)w->conn_count * sizeof *w->free_slots) +
		     resident_bytes(w->streams, (size_t)w->conn_count * sizeof *w->streams) +
		     resident_bytes(w->recv_ring, RECV_BUF_COUNT * sizeof(struct io_uring_buf)) +
		     resident_bytes(w->recv_bufs, (size_t)RECV_BUF_COUNT * RECV_BUF_SIZE) +
		     resident_bytes(w->scratch, SCRATCH_SIZE) +
		     (w->gzip_mem ? resident_bytes(w->gzip_mem, GZIP_MEM_SIZE) : 0) +
		     resident_bytes(r->sq.ring_ptr, r->sq.ring_sz) +
		     resident_bytes(r->sq.sqes, (size_t)r->sq.ring_entries * sizeof *r->sq.sqes) +
		     (r->cq.ring_ptr != r->sq.ring_ptr ? resident_bytes(r->cq.ring_ptr, r->cq.ring_sz)
						       : 0) +
		     (w->access_log.buf[0] ? resident_bytes(w->access_log.buf[0], 2 * ACCESS_LOG_BUF_SIZE) : 0);
	for (size_t p = 0; p < sizeof pools / sizeof pools[0]; p++)
		n += resident_bytes(pools[p]->base, (size_t)pools[p]->size * pools[p]->count);
	return n;
}

static void on_tick(struct worker *w)
{
	timer_wheel_advance(&w->wheel, w->now_ms, fire_timer, w);
	if (w->stream_count && w->now_ms >= w->next_event_ms) {
		conn_push_events(w);
		w->next_event_ms = w->now_ms + w->cfg->sse_interval_ms;
	}
	publish_memory(w);
	access_log_tick(w);
	if (w->stopping && w->now_ms >= w->stop_deadline_ms) {
		/* Out of time: close what is left, whatever it is doing. */
		for (uint32_t i = 0; i < w->conn_count; i++)
			if (w->conns[i].phase != PHASE_FREE)
				worker_close(w, &w->conns[i]);
	}
	arm_timer(w);
}

static void handle_cqe(struct worker *w, struct io_uring_cqe *cqe)
{
	union user_data ud = ud_decode(io_uring_cqe_get_data64(cqe));
	struct conn *c = NULL;
	if (ud.op == OP_RECV || ud.op == OP_SEND || ud.op == OP_CLOSE) {
		c = &w->conns[ud.slot];
		if (c->gen != ud.gen || c->phase == PHASE_FREE) {
			/* Cannot happen: a slot is freed only after its last CQE.
			 * Still return a buffer rather than leak it. */
			if (cqe->flags & IORING_CQE_F_BUFFER)
				return_recv_buffer(w, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			log_error("stale completion", "worker=%u op=%u slot=%u", w->id, ud.op,
				  ud.slot);
			return;
		}
	}
	switch (ud.op) {
	case OP_ACCEPT:
		on_accept(w, (enum listener)ud.slot, cqe);
		break;
	case OP_RECV:
		on_recv(w, c, cqe);
		break;
	case OP_SEND:
		on_send(w, c, cqe);
		break;
	case OP_CLOSE:
		c->close_pending = false;
		maybe_free_slot(w, c);
		break;
	case OP_TIMER:
		on_tick(w);
		break;
	case OP_WAKE:
		begin_stop(w);
		break;
	case OP_CANCEL:
		break; /* a cancel that found nothing: the op already ended */
	case OP_LOG_WRITE:
		access_log_on_write(w, ud.slot, cqe->res);
		break;
	default:
		log_error("unknown completion", "worker=%u op=%u", w->id, ud.op);
	}
}

static void refresh_clock(struct worker *w)
{
	w->now_ns = monotonic_ns();
	w->now_ms = w->now_ns / 1000000u;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec != w->date_second) {
		w->date_second = ts.tv_sec;
		http_format_date_line(w->date_line, ts.tv_sec);
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(w->log_time, sizeof w->log_time, "%Y-%m-%dT%H:%M:%S.", &tm);
	}
	w->now_wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_loop(struct worker *w)
{
	for (;;) {
		if (w->stopping && w->open_conns == 0 && !w->accept_armed[LISTENER_MAIN] &&
		    !w->accept_armed[LISTENER_METRICS])
			break;
		if (w->stopping && w->now_ms > w->stop_deadline_ms + 1000) {
			log_error("shutdown: connections still open after force-close",
				  "worker=%u open=%u", w->id, w->open_conns);
			break;
		}
		/*
		 * Producers that said HTTP_PRODUCE_AGAIN in the last pass are
		 * called once more in this one, after its completions: every
		 * call of a producer is followed by other connections' events,
		 * and one that makes no bytes for a while cannot hold the
		 * worker (looping in it froze the worker for 860 ms). With
		 * some due, the wait must not sleep (their work is pending)
		 * yet must enter the kernel: under DEFER_TASKRUN completions
		 * are posted only from inside io_uring_enter with GETEVENTS,
		 * which submit_and_get_events always asks for (a bare submit
		 * with nothing queued would not enter, and the loop would
		 * serve the producers alone). The loop then runs hot for as
		 * long as a producer has work and no bytes: that is work, not
		 * spinning, and each pass serves every event.
		 */
		w->producers_due = w->producers_again;
		w->producers_again = 0;
		int r = w->producers_due ? io_uring_submit_and_get_events(&w->ring)
					 : io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR && r != -EBUSY && r != -ETIME) {
			log_error("io_uring wait failed", "worker=%u err=%d", w->id, -r);
			break;
		}
		refresh_clock(w);
		/* In batches, advancing the CQ head after each, so the CQ never
		 * holds more than one batch of completions already handled. */
		struct io_uring_cqe *cqes[CQ_BATCH];
		unsigned n;
		while ((n = io_uring_peek_batch_cqe(&w->ring, cqes, CQ_BATCH)) > 0) {
			for (unsigned i = 0; i < n; i++)
				handle_cqe(w, cqes[i]);
			io_uring_cq_advance(&w->ring, n);
		}
		if (w->recv_returned) {
			io_uring_buf_ring_advance(w->recv_ring, (int)w->recv_returned);
			w->recv_returned = 0;
		}
		conn_produce_due(w);
		if (w->server->hooks.pass)
			w->server->hooks.pass(w->server->hooks.api, w->id);
	}
	access_log_drain(w);
	if (w->server->hooks.stopped)
		w->server->hooks.stopped(w->server->hooks.api, w->id);
}

/* ---- set-up ---- */

static int setup_ring(struct worker *w)
{
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = cq_entries_for(w->conn_count);
	int r = io_uring_queue_init_params(SQ_ENTRIES, &w->ring, &p);
	if (r == -EINVAL) {
		/* Kernels before 6.1 lack DEFER_TASKRUN. */
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = cq_entries_for(w->conn_count);
		r = io_uring_queue_init_params(SQ_ENTRIES, &w->ring, &p);
	}
	if (r < 0)
		return r;
	/* Saves the fd lookup on every io_uring_enter; optional. */
	io_uring_register_ring_fd(&w->ring);

	size_t ring_bytes = RECV_BUF_COUNT * sizeof(struct io_uring_buf);
	w->recv_ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w->recv_bufs = mmap(NULL, (size_t)RECV_BUF_COUNT * RECV_BUF_SIZE,
			    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->recv_ring == MAP_FAILED || w->recv_bufs == MAP_FAILED)
		return -ENOMEM;
	struct io_uring_buf_reg reg = {
		.ring_addr = (unsigned long)w->recv_ring,
		.ring_entries = RECV_BUF_COUNT,
		.bgid = RECV_BUF_GROUP,
	};
	r = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (r < 0)
		return r;
	io_uring_buf_ring_init(w->recv_ring);
	for (uint32_t i = 0; i < RECV_BUF_COUNT; i++)
		return_recv_buffer(w, i);
	io_uring_buf_ring_advance(w->recv_ring, (int)w->recv_returned);
	w->recv_returned = 0;
	return 0;
}

static int setup_worker_memory(struct worker *w, uint32_t slots)
{
	w->conn_count = slots;
	/* Zeroed pages, touched as slots are first used (lowest first): an
	 * idle server's slab costs what its busiest moment needed. A free
	 * slot is known by its phase, not its fd. */
	void *slab = mmap(NULL, (size_t)slots * sizeof *w->conns, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (slab == MAP_FAILED)
		return -ENOMEM;
	w->conns = slab;
	w->free_slots = calloc(slots, sizeof *w->free_slots);
	if (!w->free_slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < slots; i++)
		w->free_slots[i] = slots - 1 - i;
	w->free_top = slots;
	/* A connection holds at most one of each; room for a whole head plus
	 * one recv buffer that arrives while it waits. */
	w->in_buf_size = w->cfg->max_header_bytes + RECV_BUF_SIZE;
	int r = buf_pool_init(&w->in_pool, w->in_buf_size, slots);
	if (r == 0)
		r = buf_pool_init(&w->out_pool, OUT_BUF_SIZE, slots);
	if (r == 0)
		r = buf_pool_init(&w->body_pool, BODY_BUF_SIZE, BODY_BUF_COUNT);
	if (r < 0)
		return r;
	w->scratch = mmap(NULL, SCRATCH_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	w->streams = calloc(slots, sizeof *w->streams);
	w->ctx.gzip = &w->gzip;
	if (w->scratch == MAP_FAILED) {
		w->scratch = NULL;
		return -ENOMEM;
	}
	if (!w->streams || access_log_init(&w->access_log, w->server->access_log_fd) < 0)
		return -ENOMEM;
	w->gzip_mem = mmap(NULL, GZIP_MEM_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->gzip_mem == MAP_FAILED) {
		w->gzip_mem = NULL;
		return -ENOMEM;
	}
	/* The first stream compressor now: proves that zlib's state fits
	 * HTTP_GZIP_STATE_BYTES (the others are set up alike, when used). */
	if (!worker_gzip_stream(w, 0))
		return -ENOMEM;
	return http_gzip_init(&w->gzip);
}

struct http_gzip *worker_gzip_stream(struct worker *w, unsigned i)
{
	struct http_gzip *g = &w->gzip_streams[i];
	if (!g->ready &&
	    http_gzip_init_in(g, w->gzip_mem + (size_t)i * HTTP_GZIP_STREAM_BYTES,
			      HTTP_GZIP_STREAM_BYTES) < 0) {
		log_error("gzip stream compressor set-up failed", "worker=%u slot=%u", w->id, i);
		return NULL;
	}
	return g;
}

static void worker_fini(struct worker *w)
{
	if (w->ring.ring_fd > 0)
		io_uring_queue_exit(&w->ring);
	if (w->recv_ring && w->recv_ring != MAP_FAILED)
		munmap(w->recv_ring, RECV_BUF_COUNT * sizeof(struct io_uring_buf));
	if (w->recv_bufs && w->recv_bufs != MAP_FAILED)
		munmap(w->recv_bufs, (size_t)RECV_BUF_COUNT * RECV_BUF_SIZE);
	buf_pool_fini(&w->in_pool);
	buf_pool_fini(&w->out_pool);
	buf_pool_fini(&w->body_pool);
	http_gzip_fini(&w->gzip);
	for (unsigned i = 0; i < HTTP_STREAMS_MAX; i++)
		http_gzip_fini(&w->gzip_streams[i]);
	if (w->gzip_mem)
		munmap(w->gzip_mem, GZIP_MEM_SIZE);
	access_log_fini(&w->access_log);
	if (w->scratch)
		munmap(w->scratch, SCRATCH_SIZE);
	if (w->conns)
		munmap(w->conns, (size_t)w->conn_count * sizeof *w->conns);
	free(w->free_slots);
	free(w->streams);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	for (int l = 0; l < LISTENER_COUNT; l++)
		if (w->listen_fd[l] >= 0)
			close(w->listen_fd[l]);
}

static void report_started(struct worker *w, int err)
{
	struct ring_server *s = w->server;
	pthread_mutex_lock(&s->lock);
	if (err)
		s->failed++;
	else
		s->started++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* A worker's time slice when the kernel lets a thread ask for one (EEVDF,
 * Linux 6.12: sched_attr.sched_runtime of a SCHED_OTHER thread; older
 * kernels ignore it). A short slice gives a woken worker an early
 * deadline, so it runs at once instead of after the current task's slice:
 * on a machine shared with other busy processes (a load generator, say)
 * that wait is the p99 (perf/RESULTS.md). */
#ifndef WORKER_SLICE_NS /* perf builds may try others; 0: ask for none */
#define WORKER_SLICE_NS 100000u
#endif

/* --cpu-affinity auto pins worker i to the i-th allowed CPU, which wins on
 * a machine the server has to itself; off leaves placement to the
 * scheduler (nginx's default), which wins where other work shares the
 * CPUs: a pinned worker cannot move away from a busy one. */
static void place_worker(struct worker *w)
{
	/* The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0); glibc 2.36
	 * has neither it nor a wrapper, and <linux/sched/types.h> clashes
	 * with <sched.h>. */
	struct sched_attr {
		uint32_t size, sched_policy;
		uint64_t sched_flags;
		int32_t sched_nice;
		uint32_t sched_priority;
		uint64_t sched_runtime, sched_deadline, sched_period;
	};
	if (w->cfg->cpu_affinity == CPU_AFFINITY_AUTO && w->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	}
	struct sched_attr attr = {
		.size = sizeof attr,
		.sched_policy = SCHED_OTHER,
		.sched_runtime = WORKER_SLICE_NS,
	};
	if (WORKER_SLICE_NS && syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
		log_debug("no custom time slice", "worker=%u err=%d", w->id, errno);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	place_worker(w);
	/* The ring is made here: SINGLE_ISSUER binds it to its creator. */
	int r = setup_ring(w);
	if (r < 0) {
		log_error("io_uring set-up failed", "worker=%u err=%d hint=\"%s\"", w->id, -r,
			  "needs Linux 6.0+ with io_uring enabled (sysctl kernel.io_uring_disabled=0)");
		report_started(w, r);
		return NULL;
	}
	refresh_clock(w);
	timer_wheel_init(&w->wheel, w->now_ms, (uint32_t)(w->tick.tv_nsec / 1000000));
	w->ctx.shard->view.started_unix_ms = (int64_t)time(NULL) * 1000;
	for (int l = 0; l < LISTENER_COUNT; l++)
		if (w->listen_fd[l] >= 0)
			arm_accept(w, (enum listener)l);
	arm_timer(w);
	arm_wake(w);
	report_started(w, 0);
	run_loop(w);
	return NULL;
}

/* The port of a bound socket address. */
static uint16_t port_of(const struct sockaddr_storage *a)
{
	return ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)(const void *)a)->sin6_port
					      : ((const struct sockaddr_in *)(const void *)a)->sin_port);
}

static void set_port(struct sockaddr_storage *a, uint16_t port)
{
	if (a->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)(void *)a)->sin_port = htons(port);
}

/* A stream socket for addr; IPv6 ones take IPv4 too (`[::]` is
 * dual-stack whatever net.ipv6.bindv6only says). */
static int new_socket(const struct sockaddr_storage *addr)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int zero = 0, one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (addr->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* The port is checked once without SO_REUSEPORT, so a second Ringside (or
 * anything else) on the same port is an error, not a silent share. */
static int probe_port(const struct sockaddr_storage *addr, uint16_t *port)
{
	int fd = new_socket(addr);
	if (fd < 0)
		return fd;
	struct sockaddr_storage a = *addr;
	socklen_t len = sizeof a;
	int r = 0;
	if (bind(fd, (struct sockaddr *)&a, config_sockaddr_len(&a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		r = -errno;
	else
		*port = port_of(&a);
	close(fd);
	return r;
}

static int open_listener(const struct sockaddr_storage *addr, uint16_t port)
{
	int fd = new_socket(addr);
	if (fd < 0)
		return fd;
	int one = 1;
	struct sockaddr_storage a = *addr;
	set_port(&a, port);
	/* TCP_NODELAY is inherited by accepted sockets: responses go out
	 * whole, in one send, so Nagle would only add delay. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&a, config_sockaddr_len(&a)) < 0 || listen(fd, 4096) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* CPUs this process may run on, in order; worker i is pinned to the
 * i-th (mod their number). Returns -1 if it cannot tell. */
static int cpu_for_worker(uint32_t i)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) < 0)
		return -1;
	int n = CPU_COUNT(&set);
	if (n <= 0)
		return -1;
	int want = (int)(i % (uint32_t)n);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set) && want-- == 0)
			return cpu;
	return -1;
}

/* Opens worker w's listeners on the ports probed in s->port. */
static int open_listeners(struct ring_server *s, struct worker *w)
{
	const struct listen_addr *addrs[LISTENER_COUNT] = {&s->cfg->listen,
							   &s->cfg->metrics_listen};
	for (int l = 0; l < LISTENER_COUNT; l++) {
		w->listen_fd[l] = -1;
		if (!addrs[l]->set)
			continue;
		w->listen_fd[l] = open_listener(&addrs[l]->addr, s->port[l]);
		if (w->listen_fd[l] < 0) {
			int r = w->listen_fd[l];
			log_error("cannot listen", "addr=%s err=\"%s\"", addrs[l]->text, strerror(-r));
			return r;
		}
	}
	return 0;
}

int ring_server_start(struct ring_server *s, const struct config *cfg,
		      const struct router *router, struct metrics_registry *metrics,
		      const struct ring_hooks *hooks, int access_log_fd)
{
	memset(s, 0, sizeof *s);
	if (hooks)
		s->hooks = *hooks;
	s->access_log_fd = access_log_fd;
	s->cfg = cfg;
	s->router = router;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	const struct listen_addr *addrs[LISTENER_COUNT] = {&cfg->listen, &cfg->metrics_listen};
	int r = 0;
	for (int l = 0; l < LISTENER_COUNT && r == 0; l++) {
		if (addrs[l]->set && (r = probe_port(&addrs[l]->addr, &s->port[l])) < 0)
			log_error("cannot listen", "addr=%s err=\"%s\"", addrs[l]->text,
				  strerror(-r));
	}
	if (r < 0)
		return r;
	uint32_t n = cfg->workers;
	uint32_t slots = (cfg->max_connections + n - 1) / n;
	uint32_t nonce;
	if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce)
		nonce = (uint32_t)monotonic_ns() ^ (uint32_t)getpid();
	s->workers = calloc(n, sizeof *s->workers);
	if (!s->workers)
		return -ENOMEM;
	s->worker_count = n;
	for (uint32_t i = 0; i < n; i++) {
		struct worker *w = NULL;
		if (posix_memalign((void **)&w, 64, sizeof *w)) {
			r = -ENOMEM;
			break;
		}
		memset(w, 0, sizeof *w);
		s->workers[i] = w;
		w->server = s;
		w->cfg = cfg;
		w->router = router;
		w->id = i;
		w->ctx = (struct http_context){
			.cfg = cfg,
			.metrics = metrics,
			.shard = metrics_shard(metrics, i),
			.api = s->hooks.api,
			.worker_id = i,
		};
		w->cpu = cpu_for_worker(i);
		w->wake_fd = -1;
		w->limits = (struct http_limits){
			.max_head_bytes = cfg->max_header_bytes,
			.max_target_bytes = HTTP_DEFAULT_MAX_TARGET_BYTES,
			.max_fields = HTTP_DEFAULT_MAX_FIELDS,
		};
		/* Ticks fine enough for the event interval, at most 50 ms. */
		uint32_t tick_ms = cfg->sse_interval_ms < TICK_MS ? cfg->sse_interval_ms : TICK_MS;
		w->tick = (struct __kernel_timespec){.tv_nsec = (long)tick_ms * 1000000L};
		snprintf(w->request_id_prefix, sizeof w->request_id_prefix, "req_%08x%02x",
			 nonce, i & 0xff);
		if ((r = open_listeners(s, w)) < 0)
			break;
		w->wake_fd = eventfd(0, EFD_CLOEXEC);
		if (w->wake_fd < 0 || (r = setup_worker_memory(w, slots)) < 0) {
			r = r < 0 ? r : -errno;
			log_error("worker set-up failed", "worker=%u err=\"%s\"", i, strerror(-r));
			break;
		}
		if ((r = -pthread_create(&w->thread, NULL, worker_main, w)) < 0) {
			log_error("cannot start worker", "worker=%u err=\"%s\"", i, strerror(-r));
			break;
		}
		pthread_mutex_lock(&s->lock);
		while (s->started + s->failed <= i)
			pthread_cond_wait(&s->cond, &s->lock);
		r = s->failed ? -EIO : 0;
		pthread_mutex_unlock(&s->lock);
		if (r < 0) {
			pthread_join(w->thread, NULL);
			w->thread = 0;
			break;
		}
	}
	if (r < 0) {
		ring_server_stop(s);
		ring_server_wait(s);
	}
	return r;
}

void ring_server_stop(struct ring_server *s)
{
	for (uint32_t i = 0; i < s->worker_count; i++) {
		struct worker *w = s->workers[i];
		if (w && w->wake_fd >= 0) {
			uint64_t one = 1;
			ssize_t n = write(w->wake_fd, &one, sizeof one);
			(void)n;
		}
	}
}

void ring_server_wait(struct ring_server *s)
{
	for (uint32_t i = 0; i < s->worker_count; i++) {
		struct worker *w = s->workers[i];
		if (!w)
			continue;
		if (w->thread)
			pthread_join(w->thread, NULL);
		worker_fini(w);
		free(w);
	}
	free(s->workers);
	s->workers = NULL;
	s->worker_count = 0;
}
