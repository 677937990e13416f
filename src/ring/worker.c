/*
 * A worker's io_uring: ring set-up, the accept/recv/send/close
 * operations, the buffer ring, the timer tick, completions posted by
 * other threads (MSG_RING) and shutdown. What a connection's bytes mean
 * is the engine's business (ringside/server.h), reached through the
 * connection's transport (ringside/transport.h).
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

/*
 * A CQ that can hold every completion the worker can have outstanding, so
 * it never overflows (an overflowing CQ makes submits fail with -EBUSY on
 * some kernels, and worker_get_sqe() submits from inside the completion loop):
 * per slot a recv end, a send, a close and a posted completion; one per
 * provided buffer; slack for accepts and timers. (A CQ that overflows all
 * the same keeps its CQEs: IORING_FEAT_NODROP.)
 */
static unsigned cq_entries_for(uint32_t slots)
{
	uint64_t need = 5ull * slots + 2ull * RECV_BUF_COUNT + 1024u;
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

static struct worker *worker_of(struct server *s)
{
	return (struct worker *)(void *)((char *)s - offsetof(struct worker, server));
}

static struct ring_conn *ring_conn_of(struct server_conn *c)
{
	return (struct ring_conn *)(void *)((char *)c - offsetof(struct ring_conn, sc));
}

static uint32_t conn_slot(const struct worker *w, const struct ring_conn *c)
{
	return (uint32_t)(c - w->conns);
}

/* ---- submission ---- */

/* A free SQE; when the SQ is full, submit what is queued and retry. */
struct io_uring_sqe *worker_get_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe && w->owner->hooks.flush)
		w->owner->hooks.flush(w->owner->hooks.api, w->id);
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

static void arm_recv(struct worker *w, struct ring_conn *c)
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

/* Cancels whatever is outstanding on the fd and closes it. The close is
 * hard-linked to the cancel so it runs even when there was nothing to
 * cancel. The slot is reused only when every CQE of this connection is
 * in and the engine owes nothing (see maybe_free_slot), never while the
 * kernel or another thread may still write to it. */
static void close_now(struct worker *w, struct ring_conn *c)
{
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
	c->flush_then_close = false;
}

/* Sends what the transport has to send (one send in flight at a time);
 * with nothing left, a goodbye that waited for it ends in the close. */
static void send_next(struct worker *w, struct ring_conn *c)
{
	if (c->send_busy || c->close_pending)
		return;
	size_t len = 0;
	const char *data = c->transport.cls->output(&c->transport, &w->server, &c->sc, &len);
	if (!data || !len) {
		if (c->flush_then_close) {
			close_now(w, c);
		} else if (c->fin_after_flush) {
			c->fin_after_flush = false;
			shutdown(c->fd, SHUT_WR);
		}
		return;
	}
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	/* A goodbye goes out only if the socket has room now: a peer that
	 * stopped reading must not hold the slot for ever (only transports
	 * with a goodbye of their own, TLS, send while closing). */
	io_uring_prep_send(sqe, c->fd, data, len,
			   c->closing ? MSG_NOSIGNAL | MSG_DONTWAIT : MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_encode(OP_SEND, conn_slot(w, c), c->gen));
	c->send_busy = true;
}

/* ---- The engine's host (struct server_host) ---- */

static void host_send(struct server *s, struct server_conn *sc)
{
	struct ring_conn *c = ring_conn_of(sc);
	if (!c->closing)
		send_next(worker_of(s), c);
}

static void host_close(struct server *s, struct server_conn *sc)
{
	struct worker *w = worker_of(s);
	struct ring_conn *c = ring_conn_of(sc);
	if (c->closing)
		return;
	c->closing = true;
	if (!c->transport.error && c->transport.cls->close(&c->transport, s, sc)) {
		c->flush_then_close = true;
		send_next(w, c);
	} else {
		close_now(w, c);
	}
}

static void host_shutdown_write(struct server *s, struct server_conn *sc)
{
	struct ring_conn *c = ring_conn_of(sc);
	/* TLS: close_notify first, so the client can tell our end from a
	 * truncation; the FIN follows it (send_next). */
	if (c->transport.state && !c->transport.error &&
	    c->transport.cls->close(&c->transport, s, sc)) {
		c->fin_after_flush = true;
		send_next(worker_of(s), c);
		return;
	}
	/* Sends our FIN at once; rare (closing responses only), so a plain
	 * syscall is simpler than another operation to track. */
	shutdown(c->fd, SHUT_WR);
}

static void host_limit_send_buffer(struct server *s, struct server_conn *sc, int bytes)
{
	(void)s;
	setsockopt(ring_conn_of(sc)->fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

/* The client's address, looked up once per connection, when its first
 * line is logged. */
static const char *host_peer(struct server *s, struct server_conn *sc)
{
	(void)s;
	struct ring_conn *c = ring_conn_of(sc);
	if (!c->peer[0]) {
		struct sockaddr_storage a;
		socklen_t len = sizeof a;
		/* sin_port and sin6_port are at the same offset. */
		if (getpeername(c->fd, (struct sockaddr *)&a, &len) == 0)
			config_format_addr(&a, ntohs(((struct sockaddr_in *)(void *)&a)->sin_port),
					   c->peer, sizeof c->peer);
		else
			memcpy(c->peer, "-", 2);
	}
	return c->peer;
}

static char *host_log_reserve(struct server *s, size_t n)
{
	return access_log_reserve(worker_of(s), n);
}

static void host_log_commit(struct server *s, size_t n)
{
	access_log_commit(worker_of(s), n);
}

static const struct server_host ring_host = {
	.send = host_send,
	.close = host_close,
	.shutdown_write = host_shutdown_write,
	.limit_send_buffer = host_limit_send_buffer,
	.peer = host_peer,
	.log_reserve = host_log_reserve,
	.log_commit = host_log_commit,
};

/* ringside_open_connections{listener}: this worker is the only writer. */
static void count_open(struct worker *w, unsigned listener, int delta)
{
	_Atomic uint32_t *g = &w->server.ctx.shard->view.open[listener];
	metrics_set_u32(g, atomic_load_explicit(g, memory_order_relaxed) + (uint32_t)delta);
}

static void maybe_free_slot(struct worker *w, struct ring_conn *c)
{
	if (!c->closing || c->close_pending || c->recv_armed || c->send_busy ||
	    c->flush_then_close || !server_conn_releasable(&c->sc))
		return;
	server_conn_release(&w->server, &c->sc);
	if (c->transport.state)
		tls_conn_release(&w->tls, &w->server, &c->transport);
	c->in_use = false;
	c->closing = false;
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

/* The slab is full: say so in a canned 503 and close, without a slot.
 * On a TLS listener the 503 cannot be said without a handshake (which
 * needs the slot): plaintext bytes there are garbage to the client (its
 * handshake fails on them), so the connection is closed unanswered. */
static void reject_connection(struct worker *w, enum listener l, int fd)
{
	char buf[512];
	size_t n = w->tls_on[l] ? 0 :
		server_refusal(&w->server, buf, sizeof buf, 503,
			       "Too many open connections. Retry later.");
	if (n) {
		ssize_t sent = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)sent;
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
	/* Stopping, or told to and not yet woken for it: a connection the
	 * kernel accepted meanwhile is closed unanswered. */
	if (w->stopping || atomic_load_explicit(&w->owner->stop_requested, memory_order_relaxed)) {
		close(fd);
		return;
	}
	if (w->free_top == 0) {
		log_warn("connection refused: all slots busy", "worker=%u slots=%u", w->id,
			 w->conn_count);
		reject_connection(w, l, fd);
		return;
	}
	uint32_t slot = w->free_slots[--w->free_top];
	struct ring_conn *c = &w->conns[slot];
	w->open_conns++;
	if (slot >= w->slots_used)
		w->slots_used = slot + 1;
	c->fd = fd;
	c->in_use = true;
	c->listener = (uint8_t)l;
	c->peer[0] = '\0';
	c->recv_armed = c->send_busy = c->closing = c->close_pending = c->flush_then_close = false;
	c->fin_after_flush = false;
	if (w->tls_on[l])
		tls_conn_open(&w->tls, slot, &c->transport);
	else
		c->transport = (struct transport){.cls = &transport_plain};
	count_open(w, l, +1);
	server_conn_open(&w->server, &c->sc, l, slot, c->gen);
	if (c->transport.error) {
		server_conn_reset(&w->server, &c->sc); /* no engine: closed unanswered */
		maybe_free_slot(w, c);
		return;
	}
	arm_recv(w, c);
}

static void on_recv(struct worker *w, struct ring_conn *c, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (!more)
		c->recv_armed = false;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (cqe->res > 0 && !c->closing)
			c->transport.cls->recv(&c->transport, &w->server, &c->sc,
					       w->recv_bufs + (size_t)bid * RECV_BUF_SIZE,
					       (size_t)cqe->res);
		return_recv_buffer(w, bid);
	}
	if (!c->closing && c->transport.error)
		server_conn_reset(&w->server, &c->sc); /* the transport gave up */
	if (c->closing) {
		maybe_free_slot(w, c);
		return;
	}
	if (cqe->res == 0) {
		server_conn_eof(&w->server, &c->sc);
	} else if (cqe->res < 0 && cqe->res != -ENOBUFS) {
		server_conn_reset(&w->server, &c->sc); /* -ECONNRESET and friends */
	} else if (!more && !c->recv_armed && !c->closing) {
		/* The multishot ended (-ENOBUFS, or the kernel's choice): re-arm.
		 * Buffers come back at the end of this loop, before the submit. */
		arm_recv(w, c);
	}
	maybe_free_slot(w, c);
}

static void on_send(struct worker *w, struct ring_conn *c, struct io_uring_cqe *cqe)
{
	c->send_busy = false;
	if (c->close_pending) {
		maybe_free_slot(w, c);
		return;
	}
	if (cqe->res < 0) {
		if (c->closing)
			close_now(w, c); /* the goodbye cannot go out */
		else
			server_conn_abort(&w->server, &c->sc);
		return;
	}
	c->transport.cls->sent(&c->transport, &w->server, &c->sc, (size_t)cqe->res);
	if (c->closing)
		send_next(w, c); /* the rest of the goodbye, then the close */
}

/* A completion another thread posted for a parked exchange. The slot is
 * still this connection's: it is freed only once nothing is owed. */
static void on_resume(struct worker *w, union user_data ud, int32_t result)
{
	struct ring_conn *c = ud.slot < w->conn_count ? &w->conns[ud.slot] : NULL;
	if (!c || !c->in_use || c->gen != ud.gen) {
		log_error("completion for no parked exchange", "worker=%u slot=%u", w->id,
			  ud.slot);
		return;
	}
	server_conn_resume(&w->server, &c->sc, ud.extra, result);
	maybe_free_slot(w, c);
}

static void begin_stop(struct worker *w)
{
	if (w->stopping)
		return;
	w->stopping = true;
	atomic_store_explicit(&w->server.ctx.shard->view.stopping, true, memory_order_relaxed);
	w->stop_deadline_ms = w->server.now_ms + w->cfg->shutdown_timeout_ms;
	for (int l = 0; l < LISTENER_COUNT; l++) {
		if (!w->accept_armed[l])
			continue;
		struct io_uring_sqe *sqe = worker_get_sqe(w);
		io_uring_prep_cancel64(sqe, ud_encode(OP_ACCEPT, (uint32_t)l, 0), 0);
		io_uring_sqe_set_data64(sqe, ud_encode(OP_CANCEL, 0, 0));
	}
	server_stop(&w->server);
	for (uint32_t i = 0; i < w->slots_used; i++)
		if (w->conns[i].in_use)
			server_conn_stop(&w->server, &w->conns[i].sc);
}

/* /metrics/api/metrics/stats's heapUsed: the bytes this worker holds for
 * its open connections now, their state and the request and response
 * bytes waiting in their buffers; every one is in a page it touched, so it
 * never exceeds its rss (measured by the main thread,
 * ring_worker_resident). Once a second: a walk of the slab. */
static void publish_memory(struct worker *w)
{
	if (w->server.now_ms < w->next_memory_ms)
		return;
	w->next_memory_ms = w->server.now_ms + 1000;
	uint64_t held = 0;
	/* Only slots ever used: the rest of the slab is untouched pages. */
	for (uint32_t i = 0; i < w->slots_used; i++)
		if (w->conns[i].in_use)
			held += sizeof w->conns[i] - sizeof w->conns[i].sc +
				server_conn_held(&w->conns[i].sc) +
				(w->conns[i].transport.state ? tls_conn_held(&w->conns[i].transport)
							     : 0);
	atomic_store_explicit(&w->server.ctx.shard->view.memory_in_use, held,
			      memory_order_relaxed);
}

uint64_t ring_worker_resident(const struct ring_server *s, uint32_t i)
{
	const struct worker *w = s->workers[i];
	const struct io_uring *r = &w->ring;
	return resident_bytes(w, sizeof *w) +
	       resident_bytes(w->conns, (size_t)w->conn_count * sizeof *w->conns) +
	       resident_bytes(w->free_slots, (size_t)w->conn_count * sizeof *w->free_slots) +
	       resident_bytes(w->recv_ring, RECV_BUF_COUNT * sizeof(struct io_uring_buf)) +
	       resident_bytes(w->recv_bufs, (size_t)RECV_BUF_COUNT * RECV_BUF_SIZE) +
	       tls_pool_resident(&w->tls) +
	       server_resident(&w->server) + resident_bytes(r->sq.ring_ptr, r->sq.ring_sz) +
	       resident_bytes(r->sq.sqes, (size_t)r->sq.ring_entries * sizeof *r->sq.sqes) +
	       (r->cq.ring_ptr != r->sq.ring_ptr ? resident_bytes(r->cq.ring_ptr, r->cq.ring_sz)
						 : 0) +
	       (w->access_log.buf[0] ? resident_bytes(w->access_log.buf[0], 2 * ACCESS_LOG_BUF_SIZE)
				     : 0);
}

static void on_tick(struct worker *w)
{
	server_tick(&w->server);
	publish_memory(w);
	access_log_tick(w);
	if (w->stopping && w->server.now_ms >= w->stop_deadline_ms) {
		/* Out of time: close what is left, whatever it is doing. */
		for (uint32_t i = 0; i < w->slots_used; i++)
			if (w->conns[i].in_use)
				server_conn_abort(&w->server, &w->conns[i].sc);
	}
	arm_timer(w);
}

static void handle_cqe(struct worker *w, struct io_uring_cqe *cqe)
{
	union user_data ud = ud_decode(io_uring_cqe_get_data64(cqe));
	struct ring_conn *c = NULL;
	if (ud.op == OP_RECV || ud.op == OP_SEND || ud.op == OP_CLOSE) {
		c = &w->conns[ud.slot];
		if (c->gen != ud.gen || !c->in_use) {
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
	case OP_RESUME:
		on_resume(w, ud, cqe->res);
		break;
	default:
		log_error("unknown completion", "worker=%u op=%u", w->id, ud.op);
	}
}

static void refresh_clock(struct worker *w)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	server_set_clock(&w->server, monotonic_ns(),
			 (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static void run_loop(struct worker *w)
{
	for (;;) {
		if (w->stopping && w->open_conns == 0 && !w->accept_armed[LISTENER_MAIN] &&
		    !w->accept_armed[LISTENER_METRICS])
			break;
		if (w->stopping && w->server.now_ms > w->stop_deadline_ms + 1000) {
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
		bool due = server_pass_begin(&w->server);
		int r = due ? io_uring_submit_and_get_events(&w->ring)
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
		server_pass_end(&w->server);
		if (w->owner->hooks.pass)
			w->owner->hooks.pass(w->owner->hooks.api, w->id);
	}
	access_log_drain(w);
	if (w->owner->hooks.stopped)
		w->owner->hooks.stopped(w->owner->hooks.api, w->id);
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

static int setup_worker_memory(struct worker *w, uint32_t slots, const struct server_params *p)
{
	w->conn_count = slots;
	/* Zeroed pages, touched as slots are first used (lowest first): an
	 * idle server's slab costs what its busiest moment needed. A free
	 * slot is known by in_use, not its fd. */
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
	if (access_log_init(&w->access_log, w->owner->access_log_fd) < 0)
		return -ENOMEM;
	w->tls_on[LISTENER_MAIN] = w->cfg->tls_cert[0] && w->cfg->listen.set;
	w->tls_on[LISTENER_METRICS] = w->cfg->tls_cert[0] && w->cfg->metrics_tls &&
				      w->cfg->metrics_listen.set;
	if ((w->tls_on[LISTENER_MAIN] || w->tls_on[LISTENER_METRICS]) &&
	    tls_pool_init(&w->tls, slots) < 0)
		return -ENOMEM;
	return server_init(&w->server, p);
}

static void worker_fini(struct worker *w)
{
	if (w->ring.ring_fd > 0)
		io_uring_queue_exit(&w->ring);
	if (w->recv_ring && w->recv_ring != MAP_FAILED)
		munmap(w->recv_ring, RECV_BUF_COUNT * sizeof(struct io_uring_buf));
	if (w->recv_bufs && w->recv_bufs != MAP_FAILED)
		munmap(w->recv_bufs, (size_t)RECV_BUF_COUNT * RECV_BUF_SIZE);
	server_fini(&w->server);
	tls_pool_fini(&w->tls);
	access_log_fini(&w->access_log);
	if (w->conns)
		munmap(w->conns, (size_t)w->conn_count * sizeof *w->conns);
	free(w->free_slots);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	for (int l = 0; l < LISTENER_COUNT; l++)
		if (w->listen_fd[l] >= 0)
			close(w->listen_fd[l]);
}

static void report_started(struct worker *w, int err)
{
	struct ring_server *s = w->owner;
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
	w->server.ctx.shard->view.started_unix_ms = (int64_t)time(NULL) * 1000;
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
		w->owner = s;
		w->cfg = cfg;
		w->id = i;
		w->cpu = cpu_for_worker(i);
		w->wake_fd = -1;
		struct server_params sp = {
			.cfg = cfg,
			.router = router,
			.metrics = metrics,
			.api = s->hooks.api,
			.worker_id = i,
			.slots = slots,
			.request_id_nonce = nonce,
			.access_log = access_log_fd >= 0,
			.stop_requested = &s->stop_requested,
			.host = &ring_host,
			.answered = s->hooks.answered,
		};
		if ((r = open_listeners(s, w)) < 0)
			break;
		w->wake_fd = eventfd(0, EFD_CLOEXEC);
		if (w->wake_fd < 0 || (r = setup_worker_memory(w, slots, &sp)) < 0) {
			r = r < 0 ? r : -errno;
			log_error("worker set-up failed", "worker=%u err=\"%s\"", i, strerror(-r));
			break;
		}
		w->tick = (struct __kernel_timespec){
			.tv_nsec = (long)server_tick_ms(&w->server) * 1000000L};
		if ((r = -pthread_create(&w->thread, NULL, worker_main, w)) < 0) {
			log_error("cannot start worker", "worker=%u err=\"%s\"", i, strerror(-r));
			break;
		}
		/* top -H and perf name each thread: the workers by index. */
		char name[16];
		snprintf(name, sizeof name, "ringside-w%hu", (unsigned short)i);
		pthread_setname_np(w->thread, name);
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
	/* Before the wake-ups: a worker that answers a request before it
	 * takes its wake-up already says Connection: close. */
	atomic_store_explicit(&s->stop_requested, true, memory_order_release);
	for (uint32_t i = 0; i < s->worker_count; i++) {
		struct worker *w = s->workers[i];
		if (w && w->wake_fd >= 0) {
			uint64_t one = 1;
			ssize_t n = write(w->wake_fd, &one, sizeof one);
			(void)n;
		}
	}
}

void ring_server_join(struct ring_server *s)
{
	for (uint32_t i = 0; i < s->worker_count; i++) {
		struct worker *w = s->workers[i];
		if (w && w->thread) {
			pthread_join(w->thread, NULL);
			w->thread = 0;
		}
	}
}

void ring_server_wait(struct ring_server *s)
{
	ring_server_join(s);
	for (uint32_t i = 0; i < s->worker_count; i++) {
		struct worker *w = s->workers[i];
		if (!w)
			continue;
		worker_fini(w);
		free(w);
	}
	free(s->workers);
	s->workers = NULL;
	s->worker_count = 0;
}
