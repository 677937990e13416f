/*
 * Completions posted to a worker by other threads (the database thread):
 * IORING_OP_MSG_RING from a small ring owned by the posting thread into
 * the worker's ring, carrying the parked exchange's slot, generation and
 * park in user_data and the result in res.
 *
 * Why MSG_RING and not an eventfd: the worker sleeps in io_uring_enter
 * anyway, so a CQE in its own ring wakes it with no extra read to arm,
 * and the ticket travels in the CQE instead of a shared queue. Into a
 * DEFER_TASKRUN ring (our workers') the kernel delivers it as task work
 * to the ring's owner (Linux 6.3 and later; tests/unit/test_ring_park.c
 * proves it on the running kernel).
 */
#include "worker_int.h"

#include <errno.h>

#include "ringside/log.h"

#define POST_RING_ENTRIES 256u

static _Thread_local struct io_uring post_ring;
static _Thread_local bool post_ready;
static _Thread_local unsigned post_queued;

/* Failed posts show as CQEs (successful ones skip theirs). A post that
 * failed is lost to its exchange, which then answers at its deadline. */
static void reap(void)
{
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&post_ring, &cqe) == 0) {
		log_error("completion post failed", "err=%d", -cqe->res);
		io_uring_cqe_seen(&post_ring, cqe);
	}
}

void ring_post_flush(void)
{
	if (!post_ready || !post_queued)
		return;
	int r;
	do
		r = io_uring_submit(&post_ring);
	while (r == -EINTR || r == -EAGAIN);
	if (r < 0)
		log_error("completion post submit failed", "err=%d", -r);
	post_queued = 0;
	reap();
}

int ring_server_post(struct ring_server *s, uint32_t worker, http_ticket ticket, int32_t result)
{
	if (!post_ready) {
		int r = io_uring_queue_init(POST_RING_ENTRIES, &post_ring, 0);
		if (r < 0) {
			log_error("completion post ring set-up failed", "err=%d", -r);
			return r;
		}
		post_ready = true;
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(&post_ring);
	if (!sqe) {
		ring_post_flush();
		sqe = io_uring_get_sqe(&post_ring);
	}
	union user_data ud = {
		.slot = (uint32_t)ticket,
		.gen = (uint16_t)(ticket >> 32),
		.op = OP_RESUME,
		.extra = (uint8_t)(ticket >> 48),
	};
	io_uring_prep_msg_ring(sqe, s->workers[worker]->ring.ring_fd, (unsigned)result, ud.u64, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	post_queued++;
	return 0;
}

void ring_post_thread_done(void)
{
	if (!post_ready)
		return;
	ring_post_flush();
	io_uring_queue_exit(&post_ring);
	post_ready = false;
}
