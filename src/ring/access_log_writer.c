/*
 * The access log's buffering (--access-log): each worker appends whole
 * lines to one of two buffers and hands a full one (or, every tick, a
 * non-empty one) to the kernel as an io_uring write while it fills the
 * other, so a worker never waits on the disk. A line that finds both
 * buffers busy is dropped and counted (ringside_access_log_dropped_total):
 * a slow disk costs log lines, never requests.
 *
 * Every worker writes to the same descriptor, opened O_APPEND, in writes of
 * whole lines: on a regular file each write lands whole. On a pipe or a
 * terminal only writes up to PIPE_BUF are atomic, so there the buffers
 * are cut to that. SIGHUP makes the main thread reopen the file onto the
 * same descriptor number (dup3), so the workers need not know.
 *
 * The lines themselves are the engine's (src/server/access_line.c).
 */
#include "worker_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringside/log.h"


int access_log_init(struct access_log *l, int fd)
{
	memset(l, 0, sizeof *l);
	l->fd = fd;
	if (fd < 0)
		return 0;
	struct stat st;
	l->cap = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ACCESS_LOG_BUF_SIZE : PIPE_BUF;
	char *m = mmap(NULL, 2 * (size_t)ACCESS_LOG_BUF_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	l->buf[0] = m;
	l->buf[1] = m + ACCESS_LOG_BUF_SIZE;
	return 0;
}

void access_log_fini(struct access_log *l)
{
	if (l->buf[0])
		munmap(l->buf[0], 2 * (size_t)ACCESS_LOG_BUF_SIZE);
	memset(l, 0, sizeof *l);
	l->fd = -1;
}

/* Hands the filling buffer to the kernel and starts on the other. */
static void submit_filling(struct worker *w)
{
	struct access_log *l = &w->access_log;
	unsigned b = l->filling;
	struct io_uring_sqe *sqe = worker_get_sqe(w);
	/* Offset -1: at the file position, which O_APPEND keeps at the end. */
	io_uring_prep_write(sqe, l->fd, l->buf[b], l->len[b], (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, ud_encode(OP_LOG_WRITE, b, 0));
	l->writing = true;
	l->written = 0;
	l->filling ^= 1u;
}

char *access_log_reserve(struct worker *w, size_t n)
{
	struct access_log *l = &w->access_log;
	if (n > l->cap)
		return NULL;
	if (l->len[l->filling] + n > l->cap) {
		if (l->writing) {
			metrics_add(&w->server.ctx.shard->counters[METRIC_ACCESS_LOG_DROPPED], 1);
			return NULL;
		}
		submit_filling(w);
	}
	return l->buf[l->filling] + l->len[l->filling];
}

void access_log_commit(struct worker *w, size_t n)
{
	struct access_log *l = &w->access_log;
	l->len[l->filling] += (uint32_t)n;
	l->lines[l->filling]++;
}

void access_log_tick(struct worker *w)
{
	struct access_log *l = &w->access_log;
	if (l->fd >= 0 && !l->writing && l->len[l->filling])
		submit_filling(w);
}

void access_log_on_write(struct worker *w, unsigned b, int res)
{
	struct access_log *l = &w->access_log;
	if (res > 0 && l->written + (uint32_t)res < l->len[b]) {
		/* A short write: the rest, from where it stopped. */
		l->written += (uint32_t)res;
		struct io_uring_sqe *sqe = worker_get_sqe(w);
		io_uring_prep_write(sqe, l->fd, l->buf[b] + l->written, l->len[b] - l->written,
				    (uint64_t)-1);
		io_uring_sqe_set_data64(sqe, ud_encode(OP_LOG_WRITE, b, 0));
		return;
	}
	if (res < 0) {
		if (!l->failed)
			log_error("access log write failed; its lines are dropped until it works",
				  "worker=%u err=\"%s\"", w->id, strerror(-res));
		l->failed = true;
		metrics_add(&w->server.ctx.shard->counters[METRIC_ACCESS_LOG_DROPPED], l->lines[b]);
	} else {
		l->failed = false;
	}
	l->len[b] = 0;
	l->lines[b] = 0;
	l->writing = false;
}

void access_log_drain(struct worker *w)
{
	struct access_log *l = &w->access_log;
	if (l->fd < 0)
		return;
	/* The worker is stopping: wait (a bounded number of times) for the
	 * write in flight, then write the rest directly. */
	for (int i = 0; l->writing && i < 1000; i++) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(&w->ring, &cqe) < 0)
			break;
		union user_data ud = ud_decode(io_uring_cqe_get_data64(cqe));
		int res = cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
		if (ud.op == OP_LOG_WRITE)
			access_log_on_write(w, ud.slot, res);
		io_uring_submit(&w->ring);
	}
	unsigned b = l->filling;
	for (uint32_t done = 0; !l->writing && done < l->len[b];) {
		ssize_t n = write(l->fd, l->buf[b] + done, l->len[b] - done);
		if (n <= 0)
			break;
		done += (uint32_t)n;
	}
	l->len[b] = 0;
}
