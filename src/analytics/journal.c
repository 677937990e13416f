/*
 * The count journal: the contract and the file format are
 * include/ringside/analytics_journal.h.
 *
 * The writer keeps one fixed buffer; journal_append encodes into it (no
 * syscall) and journal_flush hands it to the kernel in one write(2). The
 * reader preads a small window and returns only records whose length and
 * CRC hold. The two share nothing but the file: an append-only file whose
 * bytes below its size never change, so what a reader validated once stays
 * valid, and what it could not validate yet it reads again next time.
 */
#include "ringside/analytics_journal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ringside/log.h"

static const unsigned char seg_magic[8] = {'R', 'S', 'J', 'O', 'U', 'R', 'N', '\n'};

#define SEG_VERSION 1u
/* magic[8] | u32 version | u32 worker | u64 seq | u32 zero | u32 crc32 of
 * the 28 bytes before it. */
#define SEG_HEAD 32u
/* u32 crc | u16 len | u8 kind | u8 org_len | i64 unix_ms | u8 agent_len */
#define REC_HEAD 17u
#define REC_MAX (REC_HEAD + 2u * JOURNAL_ID_MAX)
#define SEQ_MAX 9999999999999999ull /* 16 decimal digits in the file name */

#define WRITE_BUF (256u * 1024) /* ~2 000 records of 128 bytes: many passes */
#define READ_BUF (64u * 1024)
/* write(2) and pread(2) calls per buffer at most (EINTR, short counts):
 * a regular file makes progress on every call, so this only stops a loop
 * that something outside us broke. */
#define IO_TRIES 1024
/* Steps (a record, a header, a skip, a segment change) one journal_next
 * call takes at most before it answers "nothing now": a backlog of
 * thousands of empty segments is crossed over a few calls. */
#define STEPS_MAX 4096

_Static_assert(WRITE_BUF >= SEG_HEAD + REC_MAX, "a segment header and a record fit the buffer");
_Static_assert(READ_BUF >= REC_MAX && READ_BUF >= SEG_HEAD, "a record fits the read window");
_Static_assert(REC_MAX <= UINT16_MAX, "len is a u16");

/* ---- encoding -------------------------------------------------------- */

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> 8 * i);
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> 8 * i);
}

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* CRC-32 (IEEE, zlib's crc32) sliced by 8: zlib 1.2.13 takes ~110 ns on
 * a 50-byte record here, this ~25 ns, and journal_append is on the
 * request path. The tables are built once, by the first open. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_build(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = crc_table[t - 1][i] >> 8 ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc(const unsigned char *p, size_t n)
{
	const uint32_t(*t)[256] = crc_table;
	uint32_t c = 0xffffffffu;

	for (; n >= 8; p += 8, n -= 8) {
		uint32_t a = c ^ get32(p), b = get32(p + 4);
		c = t[7][a & 0xff] ^ t[6][a >> 8 & 0xff] ^ t[5][a >> 16 & 0xff] ^ t[4][a >> 24] ^
		    t[3][b & 0xff] ^ t[2][b >> 8 & 0xff] ^ t[1][b >> 16 & 0xff] ^ t[0][b >> 24];
	}
	while (n--)
		c = t[0][(c ^ *p++) & 0xff] ^ c >> 8;
	return c ^ 0xffffffffu;
}

static void encode_header(unsigned char *p, uint32_t worker, uint64_t seq)
{
	memcpy(p, seg_magic, sizeof seg_magic);
	put32(p + 8, SEG_VERSION);
	put32(p + 12, worker);
	put64(p + 16, seq);
	put32(p + 24, 0);
	put32(p + 28, crc(p, 28));
}

static bool header_valid(const unsigned char *p, uint32_t worker, uint64_t seq)
{
	return memcmp(p, seg_magic, sizeof seg_magic) == 0 && get32(p + 8) == SEG_VERSION &&
	       get32(p + 12) == worker && get64(p + 16) == seq && get32(p + 28) == crc(p, 28);
}

/* The record's length from its fixed part, or 0 if that part cannot
 * begin a record (checked before the CRC, so a scan for the next record
 * rarely computes one). */
static size_t record_len(const unsigned char *p)
{
	unsigned kind = p[6], org_len = p[7], agent_len = p[16];

	if (kind != JOURNAL_TOKEN_ISSUED && kind != JOURNAL_API_CALL)
		return 0;
	if (org_len - 1u >= JOURNAL_ID_MAX || agent_len - 1u >= JOURNAL_ID_MAX)
		return 0;
	if (get16(p + 4) != REC_HEAD + org_len + agent_len)
		return 0;
	return REC_HEAD + org_len + agent_len;
}

static const char *errname(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "unknown";
}

/* ---- the directory ------------------------------------------------- */

static int seg_path(char *path, size_t cap, const char *dir, uint32_t worker, uint64_t seq)
{
	int n = snprintf(path, cap, "%s/w%" PRIu32 "-%016" PRIu64 ".journal", dir, worker, seq);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

bool journal_segment_name(const char *name, uint32_t *worker, uint64_t *seq)
{
	const char *p = name + 1;
	uint64_t w = 0, s = 0;
	int n;

	if (name[0] != 'w')
		return false;
	for (n = 0; *p >= '0' && *p <= '9' && n < 11; p++, n++)
		w = w * 10 + (uint64_t)(*p - '0');
	if (n == 0 || n > 10 || w > UINT32_MAX || (n > 1 && name[1] == '0') || *p++ != '-')
		return false;
	for (n = 0; *p >= '0' && *p <= '9' && n < 17; p++, n++)
		s = s * 10 + (uint64_t)(*p - '0');
	if (n != 16 || s == 0 || strcmp(p, ".journal") != 0)
		return false;
	*worker = (uint32_t)w;
	*seq = s;
	return true;
}

/* The worker's segments in dir: the lowest seq, the highest, and the
 * lowest above `after` (0 where there is none). 0 or a negative errno. */
static int scan_dir(const char *dir, uint32_t worker, uint64_t after, uint64_t *lowest,
		    uint64_t *highest, uint64_t *next)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t lo = 0, hi = 0, nx = 0, seq;
	uint32_t w;

	if (!d)
		return -errno;
	/* Bounded by the directory: readdir returns each entry once. */
	while ((e = readdir(d))) {
		if (!journal_segment_name(e->d_name, &w, &seq) || w != worker)
			continue;
		if (!lo || seq < lo)
			lo = seq;
		if (seq > hi)
			hi = seq;
		if (seq > after && (!nx || seq < nx))
			nx = seq;
	}
	closedir(d);
	if (lowest)
		*lowest = lo;
	if (highest)
		*highest = hi;
	if (next)
		*next = nx;
	return 0;
}

/* fsync of the directory: a new segment's name survives a power loss. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* ---- writing --------------------------------------------------------- */

/* 256 KiB + 64 bytes and the directory's path: allocated once at open. */
struct journal_writer {
	int fd;                   /* the segment `seq`, O_APPEND */
	int lock_fd;              /* w<worker>.lock, flock()ed while open */
	uint32_t worker;
	uint32_t pending;         /* events in buf[0, len) not wholly written */
	bool sync;
	bool failing;             /* in a failure streak (logged at its start) */
	bool rotate_failing;
	uint64_t seq;
	uint64_t seg_size;        /* bytes written to the segment */
	uint64_t segment_bytes;
	size_t len;               /* bytes in buf */
	size_t done;              /* of which written: buf[done, len) is due */
	char dir[PATH_MAX];
	unsigned char buf[WRITE_BUF];
};

/* Makes segment seq (never one that exists: O_EXCL) and starts the
 * buffer, which must be empty, with its header; the header reaches the
 * file with the segment's first events. The fd, or a negative errno. */
static int create_segment(struct journal_writer *w, uint64_t seq)
{
	char path[PATH_MAX];
	int fd, rc;

	assert(w->len == 0 && w->done == 0);
	if (seq > SEQ_MAX)
		return -EOVERFLOW;
	rc = seg_path(path, sizeof path, w->dir, w->worker, seq);
	if (rc < 0)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (w->sync && (rc = sync_dir(w->dir)) < 0) {
		close(fd);
		unlink(path);
		return rc;
	}
	encode_header(w->buf, w->worker, seq);
	w->len = SEG_HEAD;
	return fd;
}

/* One writer per stream: two (two processes given the same directory and
 * worker) would each take the other's new segment as the end of its
 * own, and the reader would drop what either wrote after that. */
static int lock_stream(struct journal_writer *w)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof path, "%s/w%" PRIu32 ".lock", w->dir, w->worker), rc;

	if (n < 0 || (size_t)n >= sizeof path)
		return -ENAMETOOLONG;
	w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (w->lock_fd < 0) {
		rc = -errno;
		log_error("analytics journal: cannot open its lock file",
			  "path=\"%s\" error=%s", path, errname(-rc));
		return rc;
	}
	if (flock(w->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		log_error("analytics journal: the stream has another writer",
			  "path=\"%s\" error=%s hint=\"one process per journal directory\"", path,
			  errname(errno));
		close(w->lock_fd);
		return rc;
	}
	return 0;
}

int journal_writer_open(struct journal_writer **out, const struct journal_writer_config *c)
{
	struct journal_writer *w;
	uint64_t highest;
	int rc;

	*out = NULL;
	pthread_once(&crc_once, crc_build);
	if (!c->dir || c->segment_bytes < SEG_HEAD + REC_MAX) {
		log_error("analytics journal: bad configuration", "segment_bytes=%" PRIu64 " min=%u",
			  c->segment_bytes, SEG_HEAD + REC_MAX);
		return -EINVAL;
	}
	if (strlen(c->dir) >= sizeof w->dir) {
		log_error("analytics journal: directory path too long", "worker=%" PRIu32, c->worker);
		return -ENAMETOOLONG;
	}
	w = aligned_alloc(64, (sizeof *w + 63) & ~(size_t)63);
	if (!w)
		return -ENOMEM;
	memset(w, 0, offsetof(struct journal_writer, buf));
	strcpy(w->dir, c->dir);
	w->worker = c->worker;
	w->sync = c->sync;
	w->segment_bytes = c->segment_bytes;
	rc = lock_stream(w);
	if (rc < 0)
		goto fail;
	rc = scan_dir(c->dir, c->worker, 0, NULL, &highest, NULL);
	if (rc < 0) {
		log_error("analytics journal: cannot read its directory", "dir=\"%s\" error=%s",
			  c->dir, errname(-rc));
		goto unlock;
	}
	/* After the highest, whatever its state: a process that died
	 * mid-write may have left a torn record at that segment's end, and
	 * records after it would be unreachable. */
	w->seq = highest + 1;
	rc = w->fd = create_segment(w, w->seq);
	if (rc < 0) {
		log_error("analytics journal: cannot create a segment",
			  "dir=\"%s\" worker=%" PRIu32 " seq=%" PRIu64 " error=%s", c->dir, c->worker,
			  w->seq, errname(-rc));
		goto unlock;
	}
	*out = w;
	return 0;
unlock:
	close(w->lock_fd);
fail:
	free(w);
	return rc;
}

void journal_writer_close(struct journal_writer *w)
{
	if (!w)
		return;
	if (w->pending && journal_flush(w) < 0)
		log_error("analytics journal: closed with counts not written",
			  "worker=%" PRIu32 " seq=%" PRIu64 " events=%" PRIu32, w->worker, w->seq,
			  w->pending);
	close(w->fd);
	close(w->lock_fd);
	free(w);
}

int journal_append(struct journal_writer *w, enum journal_kind kind, const char *org,
		   size_t org_len, const char *agent, size_t agent_len, int64_t unix_ms)
{
	size_t n = REC_HEAD + org_len + agent_len;
	unsigned char *p;

	if (org_len - 1 >= JOURNAL_ID_MAX || agent_len - 1 >= JOURNAL_ID_MAX ||
	    (kind != JOURNAL_TOKEN_ISSUED && kind != JOURNAL_API_CALL))
		return -EINVAL;
	if (w->len + n > sizeof w->buf) {
		int rc = journal_flush(w);
		if (w->len + n > sizeof w->buf)
			return rc < 0 ? rc : -ENOBUFS;
	}
	p = w->buf + w->len;
	put16(p + 4, (uint16_t)n);
	p[6] = (unsigned char)kind;
	p[7] = (unsigned char)org_len;
	put64(p + 8, (uint64_t)unix_ms);
	p[16] = (unsigned char)agent_len;
	memcpy(p + REC_HEAD, org, org_len);
	memcpy(p + REC_HEAD + org_len, agent, agent_len);
	put32(p, crc(p + 4, n - 4));
	w->len += n;
	w->pending++;
	return 0;
}

/* buf[done, len) to the file. A short write is continued where it
 * stopped (O_APPEND, one writer: the file holds exactly buf[0, done)). */
static int write_due(struct journal_writer *w)
{
	for (int i = 0; w->done < w->len && i < IO_TRIES; i++) {
		ssize_t n = write(w->fd, w->buf + w->done, w->len - w->done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		w->done += (size_t)n;
		w->seg_size += (uint64_t)n;
	}
	return w->done < w->len ? -EIO : 0;
}

static int flush_failed(struct journal_writer *w, int rc, const char *call)
{
	if (!w->failing)
		log_error("analytics journal write failed",
			  "call=%s worker=%" PRIu32 " seq=%" PRIu64 " error=%s pending=%" PRIu32
			  " hint=\"counts are held in memory and retried\"",
			  call, w->worker, w->seq, errname(-rc), w->pending);
	w->failing = true;
	return rc;
}

/* The segment is full: the next begins. If it cannot be made the current
 * one grows on (its events were written; nothing is lost) and the next
 * flush tries again. */
static void rotate(struct journal_writer *w)
{
	int fd = create_segment(w, w->seq + 1);

	if (fd < 0) {
		if (!w->rotate_failing)
			log_warn("analytics journal: cannot begin the next segment",
				 "worker=%" PRIu32 " seq=%" PRIu64 " error=%s size=%" PRIu64, w->worker,
				 w->seq + 1, errname(-fd), w->seg_size);
		w->rotate_failing = true;
		return;
	}
	/* Nothing more goes to the old segment: the reader takes a successor
	 * as the sign that its predecessor is final. */
	close(w->fd);
	w->fd = fd;
	w->seq++;
	w->seg_size = 0;
	w->rotate_failing = false;
}

int journal_flush(struct journal_writer *w)
{
	uint32_t events = w->pending;
	int rc;

	if (!events)
		return 0;
	rc = write_due(w);
	if (rc < 0)
		return flush_failed(w, rc, "write");
	w->len = w->done = 0;
	w->pending = 0;
	/* An fdatasync failure is returned but the events are not written
	 * again: they are in the file (page cache), and a second copy would
	 * count them twice. */
	if (w->sync && fdatasync(w->fd) < 0)
		return flush_failed(w, -errno, "fdatasync");
	if (w->failing) {
		log_warn("analytics journal writes recovered",
			 "worker=%" PRIu32 " seq=%" PRIu64 " events=%" PRIu32, w->worker, w->seq, events);
		w->failing = false;
	}
	if (w->seg_size >= w->segment_bytes)
		rotate(w);
	return 0;
}

uint32_t journal_pending(const struct journal_writer *w)
{
	return w->pending;
}

bool journal_failing(const struct journal_writer *w)
{
	return w->failing && w->pending;
}

/* ---- reading --------------------------------------------------------- */

/* 64 KiB + ~4.2 KiB: allocated once at open. */
struct journal_reader {
	int fd;                   /* segment `seq`, or -1 */
	uint32_t worker;
	bool header_ok;           /* seq's header validated */
	bool final;               /* seq has a successor: it will not grow */
	uint64_t seq;             /* 0: the lowest present, when there is one */
	uint64_t off;             /* where the next record starts */
	uint64_t next;            /* the successor, when final */
	uint64_t warned_seq, warned_off; /* damage in the newest, logged once */
	uint64_t win_at;          /* the file offset of win[0] */
	size_t win_len;
	char dir[PATH_MAX];
	unsigned char win[READ_BUF];
};

enum { AT_SHORT = 0, AT_OK = 1, AT_BAD = 2 };

int journal_reader_open(struct journal_reader **out, const char *dir, uint32_t worker,
			struct journal_pos pos)
{
	struct journal_reader *r;

	*out = NULL;
	pthread_once(&crc_once, crc_build);
	if (strlen(dir) >= sizeof r->dir)
		return -ENAMETOOLONG;
	r = malloc(sizeof *r);
	if (!r)
		return -ENOMEM;
	memset(r, 0, offsetof(struct journal_reader, win));
	strcpy(r->dir, dir);
	r->fd = -1;
	r->worker = worker;
	r->seq = pos.seq;
	r->off = pos.seq ? pos.offset : 0;
	*out = r;
	return 0;
}

void journal_reader_close(struct journal_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* Points *p at the file's bytes [at, at + need): AT_OK, AT_SHORT if the
 * file does not hold them (yet), or a negative errno. The window holds
 * bytes below the file's size, which never change; anything past them is
 * read again. */
static int peek(struct journal_reader *r, uint64_t at, size_t need, const unsigned char **p)
{
	if (at >= r->win_at && at - r->win_at + need <= r->win_len) {
		*p = r->win + (at - r->win_at);
		return AT_OK;
	}
	if (at > (uint64_t)INT64_MAX - READ_BUF)
		return AT_SHORT;
	r->win_at = at;
	r->win_len = 0;
	for (int i = 0; r->win_len < sizeof r->win && i < IO_TRIES; i++) {
		ssize_t n = pread(r->fd, r->win + r->win_len, sizeof r->win - r->win_len,
				  (off_t)(at + r->win_len));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r->win_len = 0;
			return -errno;
		}
		if (n == 0)
			break;
		r->win_len += (size_t)n;
	}
	if (need > r->win_len)
		return AT_SHORT;
	*p = r->win;
	return AT_OK;
}

/* The record at `at`: AT_OK with the event and its length, AT_SHORT if
 * it may still be coming, AT_BAD if the bytes there are not a record. */
static int record_at(struct journal_reader *r, uint64_t at, struct journal_event *ev,
		     size_t *len)
{
	const unsigned char *p;
	size_t n;
	int rc = peek(r, at, REC_HEAD, &p);

	if (rc != AT_OK)
		return rc;
	n = record_len(p);
	if (!n)
		return AT_BAD;
	rc = peek(r, at, n, &p);
	if (rc != AT_OK)
		return rc;
	if (get32(p) != crc(p + 4, n - 4))
		return AT_BAD;
	if (ev) {
		ev->kind = p[6];
		ev->org_len = p[7];
		ev->agent_len = p[16];
		ev->unix_ms = (int64_t)get64(p + 8);
		memcpy(ev->org, p + REC_HEAD, ev->org_len);
		ev->org[ev->org_len] = '\0';
		memcpy(ev->agent, p + REC_HEAD + ev->org_len, ev->agent_len);
		ev->agent[ev->agent_len] = '\0';
	}
	*len = n;
	return AT_OK;
}

static void drop_segment(struct journal_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->header_ok = r->final = false;
	r->win_at = r->win_len = 0;
}

/* Opens segment seq (the lowest present when seq is 0): AT_OK, AT_SHORT
 * when it is not there (yet), AT_BAD when it is gone and the reader moved
 * on to the next one (call again), or a negative errno. */
static int open_segment(struct journal_reader *r)
{
	char path[PATH_MAX];
	uint64_t next;
	int rc;

	if (!r->seq) {
		rc = scan_dir(r->dir, r->worker, 0, &r->seq, NULL, NULL);
		if (rc < 0)
			return rc;
		if (!r->seq)
			return AT_SHORT;
		r->off = 0;
	}
	rc = seg_path(path, sizeof path, r->dir, r->worker, r->seq);
	if (rc < 0)
		return rc;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd >= 0)
		return AT_OK;
	if (errno != ENOENT)
		return -errno;
	/* Gone, or not made yet. A writer makes segments in order and prune
	 * takes only those before the applied position, so a successor here
	 * means this one was deleted behind our back: say so, read on. */
	rc = scan_dir(r->dir, r->worker, r->seq, NULL, NULL, &next);
	if (rc < 0)
		return rc;
	if (!next)
		return AT_SHORT;
	log_warn("analytics journal: segment missing, reading on from the next",
		 "worker=%" PRIu32 " seq=%" PRIu64 " offset=%" PRIu64 " next=%" PRIu64, r->worker,
		 r->seq, r->off, next);
	r->seq = next;
	r->off = 0;
	return AT_BAD;
}

/* The segment's successor (the lowest seq above it): 1 and r->next, 0
 * if there is none, or a negative errno. */
static int find_successor(struct journal_reader *r)
{
	char path[PATH_MAX];
	int rc;

	/* The usual case, one stat: the writer made seq + 1. */
	if (seg_path(path, sizeof path, r->dir, r->worker, r->seq + 1) == 0 &&
	    access(path, F_OK) == 0) {
		r->next = r->seq + 1;
		return 1;
	}
	rc = scan_dir(r->dir, r->worker, r->seq, NULL, NULL, &r->next);
	return rc < 0 ? rc : r->next != 0;
}

/* Past damage at `at` in a final segment of `size` bytes: the next valid
 * record after it (AT_OK, *found), AT_SHORT if there is none, or a
 * negative errno. Positions are tried byte by byte (record_len rejects
 * almost all of them before a CRC is computed); a candidate that would
 * run past the end is not one. Bounded by the size. */
static int resync(struct journal_reader *r, uint64_t at, uint64_t size, uint64_t *found)
{
	size_t n;

	for (uint64_t q = at + 1; q + REC_HEAD <= size; q++) {
		int rc = record_at(r, q, NULL, &n);
		if (rc < 0)
			return rc;
		if (rc == AT_OK) {
			*found = q;
			return AT_OK;
		}
	}
	return AT_SHORT;
}

static uint64_t file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_size > 0 ? (uint64_t)st.st_size : 0;
}

/* Nothing valid at `at` in a segment that has a successor: what follows
 * is skipped (logged if it held bytes) and reading goes on at the next
 * record or segment. 0, or a negative errno. */
static int skip_damage(struct journal_reader *r, uint64_t at)
{
	uint64_t found, size;
	int rc;

	size = file_size(r->fd);
	if (r->header_ok) {
		rc = resync(r, at, size, &found);
		if (rc < 0)
			return rc;
		if (rc == AT_OK) {
			log_warn("analytics journal: damaged bytes skipped",
				 "worker=%" PRIu32 " seq=%" PRIu64 " offset=%" PRIu64 " bytes=%" PRIu64,
				 r->worker, r->seq, at, found - at);
			r->off = found;
			return 0;
		}
	}
	if (size > at)
		log_warn("analytics journal: torn or damaged segment end skipped",
			 "worker=%" PRIu32 " seq=%" PRIu64 " offset=%" PRIu64 " bytes=%" PRIu64
			 " next=%" PRIu64,
			 r->worker, r->seq, at, size - at, r->next);
	drop_segment(r);
	r->seq = r->next;
	r->off = 0;
	return 0;
}

int journal_next(struct journal_reader *r, struct journal_event *ev, struct journal_pos *pos)
{
	for (int step = 0; step < STEPS_MAX; step++) {
		uint64_t at;
		size_t n;
		int rc, what;

		if (r->fd < 0) {
			rc = open_segment(r);
			if (rc == AT_BAD)
				continue;
			if (rc != AT_OK)
				return rc;
		}
		if (!r->header_ok) {
			const unsigned char *p;
			rc = peek(r, 0, SEG_HEAD, &p);
			if (rc < 0)
				return rc;
			if (rc == AT_OK && !header_valid(p, r->worker, r->seq))
				rc = AT_BAD;
			if (rc == AT_OK) {
				r->header_ok = true;
				if (r->off < SEG_HEAD)
					r->off = SEG_HEAD;
				continue;
			}
			at = 0;
		} else {
			rc = record_at(r, r->off, ev, &n);
			if (rc < 0)
				return rc;
			if (rc == AT_OK) {
				r->off += n;
				pos->seq = r->seq;
				pos->offset = r->off;
				return 1;
			}
			at = r->off;
		}
		/* No valid record at `at`: the end of what is written so far,
		 * or damage. Only a successor makes this segment final. */
		if (r->final) {
			rc = skip_damage(r, at);
			if (rc < 0)
				return rc;
			continue;
		}
		what = rc;
		rc = find_successor(r);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			/* Whole bytes that are not a record, in the segment being
			 * written: "the end" until the writer moves on (a
			 * restart), then skipped. Said once. */
			if (what == AT_BAD && (r->warned_seq != r->seq || r->warned_off != at)) {
				log_warn("analytics journal: damaged record in the newest segment",
					 "worker=%" PRIu32 " seq=%" PRIu64 " offset=%" PRIu64
					 " hint=\"reading waits for the next segment\"",
					 r->worker, r->seq, at);
				r->warned_seq = r->seq;
				r->warned_off = at;
			}
			return 0;
		}
		/* The writer made the successor after its last write here: look
		 * once more for what came before that, then skip what is left. */
		r->final = true;
		r->win_len = 0;
	}
	return 0;
}

/* ---- housekeeping ---------------------------------------------------- */

int journal_prune(const char *dir, uint32_t worker, struct journal_pos pos)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;
	uint64_t seq, highest;
	uint32_t w;
	int deleted = 0, rc;

	/* The newest segment stays whatever pos says: a restarted writer
	 * numbers its segment after it, so seq numbers never go back and a
	 * saved position never points past a segment made later. */
	rc = scan_dir(dir, worker, 0, NULL, &highest, NULL);
	if (rc < 0)
		return rc;
	if (pos.seq > highest)
		pos.seq = highest;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!journal_segment_name(e->d_name, &w, &seq) || w != worker || seq >= pos.seq)
			continue;
		if (seg_path(path, sizeof path, dir, worker, seq) < 0)
			continue;
		if (unlink(path) == 0)
			deleted++;
		else if (errno != ENOENT)
			log_warn("analytics journal: cannot delete a segment",
				 "worker=%" PRIu32 " seq=%" PRIu64 " error=%s", worker, seq,
				 errname(errno));
	}
	closedir(d);
	return deleted;
}

uint32_t journal_list_workers(const char *dir, uint32_t *ids, uint32_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t seq;
	uint32_t w, n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		uint32_t i = 0;
		if (!journal_segment_name(e->d_name, &w, &seq))
			continue;
		while (i < n && ids[i] < w)
			i++;
		if (i < n && ids[i] == w)
			continue;
		if (i == cap)
			continue;
		/* Sorted insert; past cap the largest falls off. */
		if (n == cap)
			n--;
		memmove(ids + i + 1, ids + i, (n - i) * sizeof *ids);
		ids[i] = w;
		n++;
	}
	closedir(d);
	return n;
}
