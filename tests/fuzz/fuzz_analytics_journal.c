/*
 * libFuzzer target for the count journal's reader (src/analytics/
 * journal.c): arbitrary bytes as segment files must never crash it, make
 * it read out of bounds, loop, or return an event that is not in the
 * file exactly where its position says.
 *
 * Input: byte 0 holds flags, the rest is the body. Bit 0: segment 1
 * starts with a valid header (so the fuzzer reaches the records without
 * forging a CRC); bit 1: the body is split (at a point from the input's
 * hash) into segment 1, which then has a successor and is final, and
 * segment 2, the newest; bit 2: segment 2 starts with a valid header too;
 * bit 3: the reader starts at a position in segment 1 from the hash
 * instead of 0/0.
 *
 * Every event returned must have a known kind, ids of 1..63 bytes
 * NUL-terminated, and be the bytes of a record that ends at its position
 * in that segment; positions only grow; after the end (0) the next call
 * is the end too; the number of calls is bounded by the bytes.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "ringside/analytics_journal.h"
#include "ringside/log.h"

#include "fuzz_util.h"

#define SEG_HEAD 32u
#define REC_HEAD 17u

static char dir[64];

static void remove_dir(void)
{
	rmdir(dir);
}

static void header(unsigned char *p, uint64_t seq)
{
	uint32_t c;

	memset(p, 0, SEG_HEAD);
	memcpy(p, "RSJOURN\n", 8);
	p[8] = 1;          /* version */
	p[12] = 0;         /* worker 0 */
	for (int i = 0; i < 8; i++)
		p[16 + i] = (unsigned char)(seq >> 8 * i);
	c = (uint32_t)crc32(0, p, 28);
	for (int i = 0; i < 4; i++)
		p[28 + i] = (unsigned char)(c >> 8 * i);
}

/* Writes segment seq: a header if asked, then the bytes. Its content in
 * *out (size in *n), for the checks. */
static void put_segment(uint64_t seq, bool with_header, const uint8_t *b, size_t len,
			unsigned char **out, size_t *n)
{
	char path[128];
	unsigned char *all = malloc(SEG_HEAD + len + 1);
	size_t at = 0;
	int fd;

	CHECK(all);
	if (with_header) {
		header(all, seq);
		at = SEG_HEAD;
	}
	if (len)
		memcpy(all + at, b, len);
	at += len;
	snprintf(path, sizeof path, "%s/w0-%016llu.journal", dir, (unsigned long long)seq);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, all, at) == (ssize_t)at);
	close(fd);
	*out = all;
	*n = at;
}

static void remove_segment(uint64_t seq)
{
	char path[128];

	snprintf(path, sizeof path, "%s/w0-%016llu.journal", dir, (unsigned long long)seq);
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *seg[3] = {NULL, NULL, NULL};
	size_t seg_len[3] = {0, 0, 0};
	struct journal_pos pos = {0, 0}, last = {0, 0};
	struct journal_reader *r;
	struct journal_event ev;
	unsigned flags;
	uint64_t h;
	size_t split, calls = 0;
	int rc;

	if (!dir[0]) {
		strcpy(dir, "/tmp/ringside-fuzz-journal-XXXXXX");
		CHECK(mkdtemp(dir));
		atexit(remove_dir);
		log_threshold = LOG_ERROR; /* skips are logged at warn */
	}
	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	h = fuzz_hash(data, size);
	split = flags & 2 ? (size_t)(h % (size + 1)) : size;
	put_segment(1, flags & 1, data, split, &seg[1], &seg_len[1]);
	if (flags & 2)
		put_segment(2, flags & 4, data + split, size - split, &seg[2], &seg_len[2]);
	if (flags & 8) {
		pos.seq = 1;
		pos.offset = (h >> 32) % (seg_len[1] + 2);
	}
	last = pos;

	CHECK(journal_reader_open(&r, dir, 0, pos) == 0);
	/* A record is at least 19 bytes; skips and segment changes add a
	 * few calls, so this bound is generous and still finite. */
	while ((rc = journal_next(r, &ev, &pos)) == 1) {
		CHECK(++calls <= size / 19 + 4);
		CHECK(ev.kind == JOURNAL_TOKEN_ISSUED || ev.kind == JOURNAL_API_CALL);
		CHECK(ev.org_len >= 1 && ev.org_len <= JOURNAL_ID_MAX);
		CHECK(ev.agent_len >= 1 && ev.agent_len <= JOURNAL_ID_MAX);
		CHECK(ev.org[ev.org_len] == '\0' && ev.agent[ev.agent_len] == '\0');
		CHECK(pos.seq == 1 || (pos.seq == 2 && (flags & 2)));
		CHECK(pos.seq > last.seq || (pos.seq == last.seq && pos.offset > last.offset));
		/* The event is the record that ends at pos, byte for byte. */
		size_t len = REC_HEAD + ev.org_len + ev.agent_len;
		const unsigned char *f = seg[pos.seq];
		CHECK(pos.offset <= seg_len[pos.seq] && pos.offset >= SEG_HEAD + len);
		const unsigned char *rec = f + pos.offset - len;
		CHECK((size_t)(rec[4] | rec[5] << 8) == len);
		CHECK(rec[6] == ev.kind && rec[7] == ev.org_len && rec[16] == ev.agent_len);
		CHECK(memcmp(rec + REC_HEAD, ev.org, ev.org_len) == 0);
		CHECK(memcmp(rec + REC_HEAD + ev.org_len, ev.agent, ev.agent_len) == 0);
		last = pos;
	}
	CHECK(rc == 0);
	CHECK(pos.seq == last.seq && pos.offset == last.offset);
	CHECK(journal_next(r, &ev, &pos) == 0);
	journal_reader_close(r);

	remove_segment(1);
	remove_segment(2);
	free(seg[1]);
	free(seg[2]);
	return 0;
}
