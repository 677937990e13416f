/* The count journal (include/ringside/analytics_journal.h): every event
 * appended and flushed is read back once, in order, across segment
 * rotations and restarts; a torn tail is "the end" until a restart and
 * then skipped without loss or duplicate; damage in a final segment costs
 * only the damaged record; a failed write keeps its events and a retry
 * writes them once. Files live in a fresh directory under /tmp per test. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "ringside/analytics_journal.h"

#define T0 1700000000000
#define SEG_HEAD 32u  /* the format's sizes (analytics_journal.h) */
#define REC_HEAD 17u

struct dir {
	char path[64];
};

static void dir_make(struct dir *d)
{
	strcpy(d->path, "/tmp/ringside-journal-XXXXXX");
	assert_non_null(mkdtemp(d->path));
}

static void dir_remove(struct dir *d)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
}

static void seg_file(char *path, size_t cap, const struct dir *d, uint32_t worker, uint64_t seq)
{
	snprintf(path, cap, "%s/w%u-%016llu.journal", d->path, worker, (unsigned long long)seq);
}

static off_t size_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* ---- event i of a test stream: ids from 1 to 63 bytes ---- */

struct ids {
	char org[JOURNAL_ID_MAX + 1], agent[JOURNAL_ID_MAX + 1];
	size_t org_len, agent_len;
};

static void ids_of(unsigned i, struct ids *e)
{
	e->org_len = (size_t)snprintf(e->org, sizeof e->org, "org-%u", i % 7);
	e->agent_len = 1 + (i * 13u) % JOURNAL_ID_MAX;
	for (size_t j = 0; j < e->agent_len; j++)
		e->agent[j] = (char)('a' + (i + j) % 26);
	e->agent[e->agent_len] = '\0';
}

static enum journal_kind kind_of(unsigned i)
{
	return i % 3 ? JOURNAL_API_CALL : JOURNAL_TOKEN_ISSUED;
}

static size_t record_bytes(unsigned i)
{
	struct ids e;

	ids_of(i, &e);
	return REC_HEAD + e.org_len + e.agent_len;
}

static int append(struct journal_writer *w, unsigned i)
{
	struct ids e;

	ids_of(i, &e);
	return journal_append(w, kind_of(i), e.org, e.org_len, e.agent, e.agent_len, T0 + i);
}

/* Events [from, to), a flush every `every` of them and at the end. */
static void append_range(struct journal_writer *w, unsigned from, unsigned to, unsigned every)
{
	for (unsigned i = from; i < to; i++) {
		assert_int_equal(append(w, i), 0);
		if ((i - from + 1) % every == 0)
			assert_int_equal(journal_flush(w), 0);
	}
	assert_int_equal(journal_flush(w), 0);
	assert_int_equal(journal_pending(w), 0);
}

static bool is_event(const struct journal_event *ev, unsigned i)
{
	struct ids e;

	ids_of(i, &e);
	return ev->kind == kind_of(i) && ev->unix_ms == T0 + (int64_t)i &&
	       ev->org_len == e.org_len && ev->agent_len == e.agent_len &&
	       strcmp(ev->org, e.org) == 0 && strcmp(ev->agent, e.agent) == 0;
}

/* Reads events [from, to). */
static void read_range(struct journal_reader *r, unsigned from, unsigned to,
		       struct journal_pos *pos)
{
	struct journal_event ev = {0};

	for (unsigned i = from; i < to; i++) {
		int rc = journal_next(r, &ev, pos);
		if (rc != 1 || !is_event(&ev, i))
			fail_msg("event %u: rc=%d unix_ms=%lld", i, rc, (long long)ev.unix_ms);
	}
}

/* Reads events [from, to) then expects the end (0). */
static void expect_range(struct journal_reader *r, unsigned from, unsigned to,
			 struct journal_pos *pos)
{
	struct journal_event ev;

	read_range(r, from, to, pos);
	assert_int_equal(journal_next(r, &ev, pos), 0);
}

static struct journal_writer *writer(const struct dir *d, uint32_t worker, uint64_t seg_bytes)
{
	struct journal_writer *w;
	struct journal_writer_config c = {
		.dir = d->path, .worker = worker, .segment_bytes = seg_bytes};

	assert_int_equal(journal_writer_open(&w, &c), 0);
	return w;
}

static struct journal_reader *reader(const struct dir *d, uint32_t worker, struct journal_pos at)
{
	struct journal_reader *r;

	assert_int_equal(journal_reader_open(&r, d->path, worker, at), 0);
	return r;
}

static uint64_t highest_seq(const struct dir *d, uint32_t worker)
{
	char path[128];
	uint64_t s = 0;

	for (;;) {
		seg_file(path, sizeof path, d, worker, s + 1);
		if (!exists(path))
			return s;
		s++;
	}
}

static void write_file(const char *path, const unsigned char *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
}

static unsigned char *read_file(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY);
	unsigned char *b;

	assert_true(fd >= 0);
	*n = (size_t)size_of(path);
	b = malloc(*n ? *n : 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, *n), (ssize_t)*n);
	close(fd);
	return b;
}

/* ---- stderr captured through a pipe (not a file: see the write failure
 * test, which limits file sizes) ---- */

static int saved_stderr = -1, capture_pipe[2];

static void capture_begin(void)
{
	assert_int_equal(pipe2(capture_pipe, O_NONBLOCK | O_CLOEXEC), 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(capture_pipe[1], STDERR_FILENO) >= 0);
}

/* The captured text (up to cap - 1 bytes). */
static void capture_end(char *out, size_t cap)
{
	ssize_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	close(capture_pipe[1]);
	n = read(capture_pipe[0], out, cap - 1);
	out[n > 0 ? n : 0] = '\0';
	close(capture_pipe[0]);
	if (n > 0)
		fprintf(stderr, "%s", out); /* still in the test's output */
}

static unsigned count_of(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* ---- tests ---- */

static void events_come_back_in_order_across_rotations_from_the_start_and_from_saved_positions(
	void **state)
{
	enum { N = 5000 };
	static struct journal_pos after[N]; /* the position after event i */
	struct dir d;
	struct journal_pos pos = {0, 0};
	struct journal_event ev;
	struct journal_writer *w;
	struct journal_reader *r;
	char path[128];

	(void)state;
	dir_make(&d);
	w = writer(&d, 4, 4096);
	append_range(w, 0, N, 37);
	journal_writer_close(w);
	assert_true(highest_seq(&d, 4) >= 20);
	/* Segments close at the first flush that reaches segment_bytes. */
	for (uint64_t s = 1; s < highest_seq(&d, 4); s++) {
		seg_file(path, sizeof path, &d, 4, s);
		assert_true(size_of(path) >= 4096);
		assert_true(size_of(path) < 4096 + 37 * (REC_HEAD + 2 * JOURNAL_ID_MAX));
	}

	r = reader(&d, 4, pos);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(journal_next(r, &ev, &pos), 1);
		assert_true(is_event(&ev, i));
		after[i] = pos;
		if (i)
			assert_true(pos.seq > after[i - 1].seq ||
				    (pos.seq == after[i - 1].seq && pos.offset > after[i - 1].offset));
	}
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	assert_int_equal(pos.seq, after[N - 1].seq); /* 0 leaves *pos */
	assert_int_equal(pos.offset, after[N - 1].offset);
	journal_reader_close(r);

	/* A reader started at a saved position reads on from there: the
	 * middle of a segment, and the last event of each segment (its
	 * position is the segment's end; the next event is in the next). */
	for (unsigned i = 0; i + 1 < N; i++) {
		bool last_in_segment = after[i + 1].seq != after[i].seq;
		if (!last_in_segment && i != 2345 && i != 0)
			continue;
		r = reader(&d, 4, after[i]);
		expect_range(r, i + 1, N, &pos);
		journal_reader_close(r);
	}
	/* From the very end: nothing, and nothing wrongly. */
	r = reader(&d, 4, after[N - 1]);
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	journal_reader_close(r);
	dir_remove(&d);
}

static void ids_of_1_and_63_bytes_are_kept_and_0_or_64_bytes_or_an_unknown_kind_refused(
	void **state)
{
	static const char id64[] = "0123456789012345678901234567890123456789012345678901234567890123";
	struct dir d;
	struct journal_writer *w;
	struct journal_reader *r;
	struct journal_event ev;
	struct journal_pos pos = {0, 0};

	(void)state;
	assert_int_equal(sizeof id64 - 1, 64);
	dir_make(&d);
	w = writer(&d, 0, 1 << 20);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "o", 1, "a", 1, 1), 0);
	assert_int_equal(journal_append(w, JOURNAL_TOKEN_ISSUED, id64, 63, id64 + 1, 63, -5), 0);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, id64, 64, "a", 1, 2), -EINVAL);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "o", 1, id64, 64, 2), -EINVAL);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "", 0, "a", 1, 2), -EINVAL);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "o", 1, "", 0, 2), -EINVAL);
	assert_int_equal(journal_append(w, (enum journal_kind)3, "o", 1, "a", 1, 2), -EINVAL);
	assert_int_equal(journal_append(w, (enum journal_kind)0, "o", 1, "a", 1, 2), -EINVAL);
	assert_int_equal(journal_pending(w), 2);
	assert_int_equal(journal_flush(w), 0);
	assert_int_equal(journal_pending(w), 0);

	r = reader(&d, 0, pos);
	assert_int_equal(journal_next(r, &ev, &pos), 1);
	assert_int_equal(ev.kind, JOURNAL_API_CALL);
	assert_string_equal(ev.org, "o");
	assert_string_equal(ev.agent, "a");
	assert_int_equal(ev.unix_ms, 1);
	assert_int_equal(journal_next(r, &ev, &pos), 1);
	assert_int_equal(ev.kind, JOURNAL_TOKEN_ISSUED);
	assert_int_equal(ev.org_len, 63);
	assert_int_equal(ev.agent_len, 63);
	assert_memory_equal(ev.org, id64, 63);
	assert_memory_equal(ev.agent, id64 + 1, 63);
	assert_int_equal(ev.org[63], '\0');
	assert_int_equal(ev.unix_ms, -5);
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	journal_reader_close(r);
	journal_writer_close(w);

	/* The CRCs are zlib's crc32, at the shortest and the longest. */
	char path[128];
	size_t size;
	seg_file(path, sizeof path, &d, 0, 1);
	unsigned char *b = read_file(path, &size);
	assert_int_equal(size, SEG_HEAD + (REC_HEAD + 2) + (REC_HEAD + 126));
	for (size_t at = SEG_HEAD; at < size;) {
		size_t n = (size_t)(b[at + 4] | b[at + 5] << 8);
		uint32_t c = (uint32_t)crc32(0, b + at + 4, (uInt)(n - 4));
		uint32_t stored = (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 |
				  (uint32_t)b[at + 2] << 16 | (uint32_t)b[at + 3] << 24;
		assert_int_equal(stored, c);
		at += n;
	}
	free(b);
	dir_remove(&d);
}

/* The documented bytes, built by hand, are read (and the writer writes
 * exactly them). */
static void the_documented_format_is_what_is_written_and_read(void **state)
{
	struct dir d;
	struct journal_writer *w;
	struct journal_reader *r;
	struct journal_event ev;
	struct journal_pos pos = {0, 0};
	unsigned char want[SEG_HEAD + REC_HEAD + 5], got[sizeof want + 1];
	char path[128];
	uint32_t c;
	int fd;

	(void)state;
	memcpy(want, "RSJOURN\n", 8);
	memcpy(want + 8, "\x01\x00\x00\x00" "\x09\x00\x00\x00" "\x01\0\0\0\0\0\0\0" "\0\0\0\0", 20);
	c = (uint32_t)crc32(0, want, 28);
	for (int i = 0; i < 4; i++)
		want[28 + i] = (unsigned char)(c >> 8 * i);
	unsigned char *p = want + SEG_HEAD;
	memcpy(p + 4, "\x16\x00" "\x02" "\x02" "\x08\x07\x06\x05\x04\x03\x02\x01" "\x03" "ababc", 18);
	c = (uint32_t)crc32(0, p + 4, 18);
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(c >> 8 * i);

	dir_make(&d);
	w = writer(&d, 9, 4096);
	assert_int_equal(journal_append(w, JOURNAL_API_CALL, "ab", 2, "abc", 3, 0x0102030405060708),
			 0);
	assert_int_equal(journal_flush(w), 0);
	journal_writer_close(w);
	seg_file(path, sizeof path, &d, 9, 1);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, sizeof got), sizeof want);
	close(fd);
	assert_memory_equal(got, want, sizeof want);

	r = reader(&d, 9, pos);
	assert_int_equal(journal_next(r, &ev, &pos), 1);
	assert_int_equal(ev.unix_ms, 0x0102030405060708);
	assert_int_equal(pos.seq, 1);
	assert_int_equal(pos.offset, sizeof want);
	journal_reader_close(r);
	dir_remove(&d);
}

/* The newest segment (seq) of worker 1 holds events up to `last`, whose
 * record is bytes [lo, size) of it. Cut at every offset from `cut_from`
 * to the end: a reader sees the events before the cut record, then the
 * end; a restart (a new writer, a new segment) brings more, which a
 * reader that was waiting at the cut and a new reader from the start
 * both get after skipping the tail (logged only if bytes were skipped),
 * with no event lost but the torn one and none twice. */
static void cut_everywhere(const struct dir *d, uint64_t seq, size_t cut_from, unsigned last)
{
	char path[128], newer[128], log[4096];
	struct journal_event ev;
	unsigned char *orig;
	size_t size;

	seg_file(path, sizeof path, d, 1, seq);
	seg_file(newer, sizeof newer, d, 1, seq + 1);
	orig = read_file(path, &size);
	for (size_t cut = cut_from; cut < size; cut++) {
		struct journal_pos pos = {0, 0}, pos2 = {0, 0};
		struct journal_reader *r, *r2;
		struct journal_writer *w;

		write_file(path, orig, cut);
		r = reader(d, 1, pos);
		expect_range(r, 0, last, &pos);
		assert_int_equal(journal_next(r, &ev, &pos), 0);

		capture_begin();
		w = writer(d, 1, 4096);
		append_range(w, last + 1, last + 11, 4);
		journal_writer_close(w);
		assert_true(exists(newer));
		expect_range(r, last + 1, last + 11, &pos);
		assert_int_equal(pos.seq, seq + 1);
		r2 = reader(d, 1, pos2);
		read_range(r2, 0, last, &pos2);
		expect_range(r2, last + 1, last + 11, &pos2);
		capture_end(log, sizeof log);
		/* Bytes were skipped unless the cut fell on a boundary: the
		 * last record's start, or a header's end. */
		bool torn = cut > cut_from && !(cut_from == 0 && cut == SEG_HEAD);
		assert_int_equal(count_of(log, "segment end skipped"), torn ? 2 : 0); /* r, r2 */

		journal_reader_close(r);
		journal_reader_close(r2);
		assert_int_equal(unlink(newer), 0);
	}
	write_file(path, orig, size);
	free(orig);
}

static void a_torn_tail_is_the_end_until_a_restart_then_skipped_without_loss_or_duplicate(
	void **state)
{
	struct dir d;
	struct journal_writer *w;
	char path[128];
	uint64_t seq;
	size_t size;

	(void)state;
	dir_make(&d);
	/* A newest segment of several records: cut inside the last one. */
	w = writer(&d, 1, 4096);
	append_range(w, 0, 300, 10);
	journal_writer_close(w);
	seq = highest_seq(&d, 1);
	seg_file(path, sizeof path, &d, 1, seq);
	size = (size_t)size_of(path);
	assert_true(size > SEG_HEAD + 2 * record_bytes(299));
	cut_everywhere(&d, seq, size - record_bytes(299), 299);

	/* A newest segment of a header and one record: cut anywhere in
	 * either (a header cut short is "not yet" too). */
	w = writer(&d, 1, 4096);
	append_range(w, 300, 301, 1);
	journal_writer_close(w);
	assert_int_equal(highest_seq(&d, 1), seq + 1);
	cut_everywhere(&d, seq + 1, 0, 300);
	dir_remove(&d);
}

/* Every byte of one record in the middle of an older segment changed in
 * turn: that record is skipped with one log line and every other event
 * is read; a damaged segment header skips its segment, logged. */
static void damage_in_an_older_segment_costs_only_the_damaged_record(void **state)
{
	enum { N = 400 };
	struct dir d;
	struct journal_writer *w;
	struct journal_reader *r;
	struct journal_event ev;
	struct journal_pos pos = {0, 0}, before = {0, 0};
	char path[128], log[4096];
	unsigned k = 0, first = 0, in_seg2 = 0;
	size_t size;
	unsigned char *orig;

	(void)state;
	dir_make(&d);
	w = writer(&d, 2, 4096);
	append_range(w, 0, N, 5);
	journal_writer_close(w);
	assert_true(highest_seq(&d, 2) >= 4);

	/* Which events segment 2 holds, and where the middle one starts. */
	r = reader(&d, 2, pos);
	for (unsigned i = 0; i < N; i++) {
		struct journal_pos prev = pos;
		assert_int_equal(journal_next(r, &ev, &pos), 1);
		if (pos.seq == 2 && !in_seg2++)
			first = i;
		if (pos.seq == 2 && prev.seq == 2 && i == first + 20) {
			k = i;
			before = prev;
		}
	}
	journal_reader_close(r);
	assert_true(in_seg2 > 40);
	assert_int_equal(before.seq, 2);

	seg_file(path, sizeof path, &d, 2, 2);
	orig = read_file(path, &size);
	for (size_t b = before.offset; b < before.offset + record_bytes(k); b++) {
		orig[b] ^= 0x5a;
		write_file(path, orig, size);
		orig[b] ^= 0x5a;
		capture_begin();
		r = reader(&d, 2, (struct journal_pos){0, 0});
		for (unsigned i = 0; i < N; i++) {
			if (i == k)
				continue;
			int rc = journal_next(r, &ev, &pos);
			if (rc != 1 || !is_event(&ev, i))
				fail_msg("byte %zu changed: event %u rc=%d", b, i, rc);
		}
		assert_int_equal(journal_next(r, &ev, &pos), 0);
		journal_reader_close(r);
		capture_end(log, sizeof log);
		assert_int_equal(count_of(log, "damaged bytes skipped"), 1);
	}

	/* The header of segment 2 damaged: its events are skipped, logged. */
	orig[20] ^= 1;
	write_file(path, orig, size);
	capture_begin();
	r = reader(&d, 2, (struct journal_pos){0, 0});
	for (unsigned i = 0; i < N; i++) {
		if (i >= first && i < first + in_seg2)
			continue;
		assert_int_equal(journal_next(r, &ev, &pos), 1);
		assert_true(is_event(&ev, i));
	}
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	journal_reader_close(r);
	capture_end(log, sizeof log);
	assert_int_equal(count_of(log, "segment end skipped"), 1);
	free(orig);
	dir_remove(&d);
}

/* Damage in the segment still being written is "the end" (said once)
 * until the writer moves on; then the rest of that segment is read. */
static void damage_in_the_newest_segment_waits_for_the_next_segment(void **state)
{
	struct dir d;
	struct journal_writer *w;
	struct journal_reader *r;
	struct journal_event ev;
	struct journal_pos pos = {0, 0};
	char path[128], log[4096];
	unsigned char *b;
	size_t size;

	(void)state;
	dir_make(&d);
	w = writer(&d, 3, 1 << 20);
	append_range(w, 0, 20, 20);
	seg_file(path, sizeof path, &d, 3, 1);
	b = read_file(path, &size);
	b[SEG_HEAD + record_bytes(0) + 3] ^= 0x80; /* event 1's CRC */
	write_file(path, b, size);
	free(b);
	capture_begin();
	r = reader(&d, 3, pos);
	expect_range(r, 0, 1, &pos);
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	append_range(w, 20, 30, 10); /* the same segment grows */
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	journal_writer_close(w);
	w = writer(&d, 3, 1 << 20); /* a restart: segment 2 */
	append_range(w, 30, 35, 10);
	journal_writer_close(w);
	for (unsigned i = 2; i < 35; i++) {
		assert_int_equal(journal_next(r, &ev, &pos), 1);
		assert_true(is_event(&ev, i));
	}
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	capture_end(log, sizeof log);
	assert_int_equal(count_of(log, "damaged record in the newest segment"), 1);
	assert_int_equal(count_of(log, "damaged bytes skipped"), 1);
	journal_reader_close(r);
	dir_remove(&d);
}

struct tail {
	const struct dir *d;
	unsigned n;
	atomic_bool writer_done;
	unsigned read, read_bad, write_bad, pruned;
};

static void *tail_writer(void *arg)
{
	struct tail *t = arg;
	struct journal_writer *w;
	struct journal_writer_config c = {
		.dir = t->d->path, .worker = 5, .segment_bytes = 64 * 1024};

	if (journal_writer_open(&w, &c) != 0) {
		t->write_bad++;
		return NULL;
	}
	for (unsigned i = 0; i < t->n; i++) {
		if (append(w, i) != 0)
			t->write_bad++;
		if (i % 100 == 99 && journal_flush(w) != 0)
			t->write_bad++;
	}
	if (journal_flush(w) != 0)
		t->write_bad++;
	journal_writer_close(w);
	atomic_store(&t->writer_done, true);
	return NULL;
}

/* Tails the stream until it has every event, pruning what it passed. */
static void *tail_reader(void *arg)
{
	struct tail *t = arg;
	struct journal_reader *r;
	struct journal_event ev;
	struct journal_pos pos = {0, 0};
	uint64_t pruned_to = 0;
	unsigned idle = 0;

	if (journal_reader_open(&r, t->d->path, 5, pos) != 0) {
		t->read_bad++;
		return NULL;
	}
	while (t->read < t->n && idle < 200000) {
		int rc = journal_next(r, &ev, &pos);
		if (rc < 0) {
			t->read_bad++;
			break;
		}
		if (rc == 0) {
			idle++;
			struct timespec ns = {0, 20000};
			nanosleep(&ns, NULL);
			continue;
		}
		idle = 0;
		if (!is_event(&ev, t->read))
			t->read_bad++;
		t->read++;
		if (pos.seq > pruned_to + 4) {
			int n = journal_prune(t->d->path, 5, pos);
			if (n < 0)
				t->read_bad++;
			else
				t->pruned += (unsigned)n;
			pruned_to = pos.seq;
		}
	}
	if (journal_next(r, &ev, &pos) != 0)
		t->read_bad++;
	journal_reader_close(r);
	return NULL;
}

static void a_reader_tailing_a_writer_sees_every_event_once_in_order(void **state)
{
	struct dir d;
	struct tail t = {.d = &d, .n = 200000};
	pthread_t wt, rt;

	(void)state;
	dir_make(&d);
	assert_int_equal(pthread_create(&rt, NULL, tail_reader, &t), 0);
	assert_int_equal(pthread_create(&wt, NULL, tail_writer, &t), 0);
	pthread_join(wt, NULL);
	pthread_join(rt, NULL);
	assert_true(atomic_load(&t.writer_done));
	assert_int_equal(t.write_bad, 0);
	assert_int_equal(t.read_bad, 0);
	assert_int_equal(t.read, t.n);
	assert_true(t.pruned > 100); /* ~12 MB in 64 KiB segments */
	dir_remove(&d);
}

static void touch(const struct dir *d, const char *name)
{
	char path[128];
	int fd;

	snprintf(path, sizeof path, "%s/%s", d->path, name);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static void prune_deletes_only_that_workers_segments_before_the_position_and_list_finds_workers(
	void **state)
{
	struct dir d;
	struct journal_writer *w;
	struct journal_reader *r;
	struct journal_event ev;
	struct journal_pos pos;
	uint32_t ids[8];
	char path[128];

	(void)state;
	dir_make(&d);
	assert_int_equal(journal_list_workers(d.path, ids, 8), 0);
	static const uint32_t workers[] = {12, 0, 7};
	for (unsigned k = 0; k < 3; k++) {
		w = writer(&d, workers[k], 1024);
		append_range(w, 0, 100, 5);
		journal_writer_close(w);
		assert_true(highest_seq(&d, workers[k]) >= 5);
	}
	/* Not ours: ignored by both. */
	touch(&d, "w7-1.journal");
	touch(&d, "w07-0000000000000001.journal");
	touch(&d, "w3-0000000000000000.journal");
	touch(&d, "w3-0000000000000001.journal.tmp");
	touch(&d, "database-id");

	assert_int_equal(journal_list_workers(d.path, ids, 8), 3);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 7);
	assert_int_equal(ids[2], 12);
	assert_int_equal(journal_list_workers(d.path, ids, 2), 2);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 7);
	assert_int_equal(journal_list_workers(d.path, ids, 0), 0);

	uint64_t hi = highest_seq(&d, 7);
	assert_int_equal(journal_prune(d.path, 7, (struct journal_pos){3, SEG_HEAD}), 2);
	assert_int_equal(journal_prune(d.path, 7, (struct journal_pos){3, SEG_HEAD}), 0);
	for (uint64_t s = 1; s <= hi; s++) {
		seg_file(path, sizeof path, &d, 7, s);
		assert_int_equal(exists(path), s >= 3);
		seg_file(path, sizeof path, &d, 0, s);
		assert_true(exists(path));
		seg_file(path, sizeof path, &d, 12, s);
		assert_true(exists(path));
	}
	snprintf(path, sizeof path, "%s/w7-1.journal", d.path);
	assert_true(exists(path));

	/* From 0/0 a reader starts at the first segment left. */
	r = reader(&d, 7, (struct journal_pos){0, 0});
	assert_int_equal(journal_next(r, &ev, &pos), 1);
	assert_int_equal(pos.seq, 3);
	journal_reader_close(r);

	/* The newest segment stays, even asked to go: the seq numbers of a
	 * restarted writer follow it. */
	assert_int_equal(journal_prune(d.path, 7, (struct journal_pos){hi + 1, 0}),
			 (int)(hi - 3));
	seg_file(path, sizeof path, &d, 7, hi);
	assert_true(exists(path));
	assert_int_equal(journal_list_workers(d.path, ids, 8), 3);
	assert_int_equal(journal_prune("/nonexistent-ringside", 7, pos), -ENOENT);
	assert_int_equal(journal_list_workers("/nonexistent-ringside", ids, 8), 0);
	w = writer(&d, 7, 1024);
	journal_writer_close(w);
	seg_file(path, sizeof path, &d, 7, hi + 1);
	assert_true(exists(path));
	seg_file(path, sizeof path, &d, 7, 1);
	assert_false(exists(path));
	dir_remove(&d);
}

static void a_segment_deleted_under_the_reader_is_read_to_its_end_or_skipped_when_missing(
	void **state)
{
	struct dir d;
	struct journal_writer *w;
	struct journal_reader *r;
	struct journal_event ev;
	struct journal_pos pos = {0, 0}, at5 = {0, 0};
	char path[128], log[4096];
	unsigned at_seg2 = 0;

	(void)state;
	dir_make(&d);
	w = writer(&d, 6, 1024);
	append_range(w, 0, 200, 4);
	journal_writer_close(w);
	assert_true(highest_seq(&d, 6) >= 5);

	/* Open on segment 1, which is then deleted: the reader holds it
	 * open and reads it to its end, then goes on. */
	r = reader(&d, 6, pos);
	assert_int_equal(journal_next(r, &ev, &pos), 1);
	seg_file(path, sizeof path, &d, 6, 1);
	assert_int_equal(unlink(path), 0);
	for (unsigned i = 1; i < 200; i++) {
		assert_int_equal(journal_next(r, &ev, &pos), 1);
		assert_true(is_event(&ev, i));
		if (pos.seq == 2 && !at_seg2)
			at_seg2 = i;
		if (i == 5)
			at5 = pos;
	}
	assert_int_equal(journal_next(r, &ev, &pos), 0);
	journal_reader_close(r);
	assert_int_equal(at5.seq, 1);

	/* A position in a segment that is gone: read on from the next. */
	capture_begin();
	r = reader(&d, 6, at5);
	expect_range(r, at_seg2, 200, &pos);
	journal_reader_close(r);
	capture_end(log, sizeof log);
	assert_int_equal(count_of(log, "segment missing"), 1);
	dir_remove(&d);
}

/* A write that fails (here the file size limit, RLIMIT_FSIZE: EFBIG
 * after a short write) keeps every event pending, says so once, and a
 * later flush writes them all exactly once. */
static void a_failed_write_keeps_the_events_and_the_retry_writes_each_once(void **state)
{
	struct dir d;
	struct journal_writer *w;
	struct journal_reader *r;
	struct journal_pos pos = {0, 0};
	struct rlimit saved, lim;
	char path[128], log[8192];
	unsigned n = 20;
	int rc;

	(void)state;
	dir_make(&d);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	w = writer(&d, 8, 1 << 30);
	append_range(w, 0, n, 10);
	seg_file(path, sizeof path, &d, 8, 1);

	capture_begin();
	lim = saved;
	lim.rlim_cur = (rlim_t)size_of(path) + 50; /* room for part of one record */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (unsigned i = n; i < n + 10; i++)
		assert_int_equal(append(w, i), 0);
	assert_false(journal_failing(w));
	assert_int_equal(journal_flush(w), -EFBIG);
	assert_true(journal_failing(w)); /* the server refuses new events now */
	assert_int_equal(journal_pending(w), 10);
	assert_int_equal(size_of(path), (off_t)lim.rlim_cur); /* a short write happened */
	assert_int_equal(journal_flush(w), -EFBIG);
	/* Appends go on until the buffer is full; then the flush that makes
	 * room fails and the event is refused, nothing else lost. */
	unsigned i = n + 10;
	for (; (rc = append(w, i)) == 0; i++)
		assert_true(i < n + 10 + 256 * 1024 / REC_HEAD);
	assert_int_equal(rc, -EFBIG);
	assert_int_equal(journal_pending(w), i - n);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	assert_int_equal(journal_flush(w), 0);
	assert_int_equal(journal_pending(w), 0);
	assert_false(journal_failing(w));
	capture_end(log, sizeof log);
	assert_int_equal(count_of(log, "write failed"), 1);
	assert_int_equal(count_of(log, "writes recovered"), 1);

	r = reader(&d, 8, pos);
	expect_range(r, 0, i, &pos);
	journal_reader_close(r);
	journal_writer_close(w);
	signal(SIGXFSZ, SIG_DFL);
	dir_remove(&d);
}

static void a_second_writer_of_a_stream_is_refused_while_the_first_is_open(void **state)
{
	struct dir d;
	struct journal_writer *a, *b;
	struct journal_reader *r;
	struct journal_pos pos = {0, 0};
	struct journal_writer_config c = {.dir = NULL, .worker = 0, .segment_bytes = 4096};
	char log[4096];

	(void)state;
	dir_make(&d);
	c.dir = d.path;
	a = writer(&d, 0, 4096);
	append_range(a, 0, 10, 3);
	capture_begin();
	assert_int_equal(journal_writer_open(&b, &c), -EBUSY);
	assert_null(b);
	capture_end(log, sizeof log);
	assert_int_equal(count_of(log, "another writer"), 1);
	b = writer(&d, 1, 4096); /* another worker's stream is another lock */
	journal_writer_close(b);
	append_range(a, 10, 20, 3);
	journal_writer_close(a);
	b = writer(&d, 0, 4096);
	assert_int_equal(highest_seq(&d, 0), 2);
	append_range(b, 20, 30, 3);
	journal_writer_close(b);
	r = reader(&d, 0, pos);
	expect_range(r, 0, 30, &pos);
	assert_int_equal(pos.seq, 2);
	journal_reader_close(r);
	dir_remove(&d);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Not a benchmark (no assertion on time): what a pass costs, printed. */
static void cost_of_append_and_of_a_flush_of_100_events_printed(void **state)
{
	enum { PASSES = 2000, PER = 100 };
	struct dir d;
	struct journal_writer *w;
	double append_ns = 0, flush_ns = 0, t;
	static struct ids e[PER];
	size_t bytes = 0;

	(void)state;
	for (unsigned i = 0; i < PER; i++) {
		ids_of(i, &e[i]);
		bytes += record_bytes(i);
	}
	dir_make(&d);
	w = writer(&d, 0, 64u << 20);
	for (unsigned p = 0; p < PASSES; p++) {
		t = now_ns();
		for (unsigned i = 0; i < PER; i++)
			journal_append(w, kind_of(i), e[i].org, e[i].org_len, e[i].agent,
				       e[i].agent_len, T0 + p * PER + i);
		append_ns += now_ns() - t;
		t = now_ns();
		assert_int_equal(journal_flush(w), 0);
		flush_ns += now_ns() - t;
	}
	journal_writer_close(w);
	printf("journal: append %.0f ns/event, flush of %u events %.1f us (one write of %zu "
	       "bytes, %s)\n",
	       append_ns / PASSES / PER, PER, flush_ns / PASSES / 1000, bytes, d.path);
	dir_remove(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(events_come_back_in_order_across_rotations_from_the_start_and_from_saved_positions),
		cmocka_unit_test(ids_of_1_and_63_bytes_are_kept_and_0_or_64_bytes_or_an_unknown_kind_refused),
		cmocka_unit_test(the_documented_format_is_what_is_written_and_read),
		cmocka_unit_test(a_torn_tail_is_the_end_until_a_restart_then_skipped_without_loss_or_duplicate),
		cmocka_unit_test(damage_in_an_older_segment_costs_only_the_damaged_record),
		cmocka_unit_test(damage_in_the_newest_segment_waits_for_the_next_segment),
		cmocka_unit_test(a_reader_tailing_a_writer_sees_every_event_once_in_order),
		cmocka_unit_test(prune_deletes_only_that_workers_segments_before_the_position_and_list_finds_workers),
		cmocka_unit_test(a_segment_deleted_under_the_reader_is_read_to_its_end_or_skipped_when_missing),
		cmocka_unit_test(a_failed_write_keeps_the_events_and_the_retry_writes_each_once),
		cmocka_unit_test(a_second_writer_of_a_stream_is_refused_while_the_first_is_open),
		cmocka_unit_test(cost_of_append_and_of_a_flush_of_100_events_printed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
