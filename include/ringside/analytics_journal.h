/*
 * The count journal (tenant analytics, seed 002): every counted event
 * (a token issued, an API call) is appended here by the worker that
 * answered it, and the write(2) is done before that answer is handed to
 * the kernel, so a count the client saw acknowledged survives a SIGKILL
 * (the page cache keeps it) and a PostgreSQL outage (the journal waits).
 * The flusher (analytics_flusher.h) tails the journal into the rollups,
 * recording how far it got in the same transaction, so each event counts
 * exactly once.
 *
 * Layout: one directory (--analytics-journal), one stream of segment
 * files per worker: "w<worker>-<seq>.journal", seq a 16-digit zero-padded
 * decimal that only grows (from 1). A segment starts with a 32-byte
 * header and holds records:
 *
 *   "RSJOURN\n" | u32 version (1) | u32 worker | u64 seq | u32 0 |
 *   u32 crc32 (of the 28 bytes before it)
 *
 *
 *   u32 crc32 (of everything after it in the record) | u16 len (whole
 *   record) | u8 kind | u8 org_len | i64 unix_ms | u8 agent_len |
 *   org bytes | agent bytes
 *
 * little-endian, crc32 as zlib's; len = 17 + org_len + agent_len, each id
 * 1..JOURNAL_ID_MAX bytes, kind one of enum journal_kind. A segment is
 * closed by the first flush that takes it to --analytics-segment-bytes
 * or past (so it may exceed that by one flush) and a new one begun;
 * records never span segments. The header reaches the file with the
 * segment's first events: a segment of 0 bytes is one nothing was
 * written to. A torn tail (a crash in the middle of a write) is a record
 * whose length or CRC does not hold: the reader stops there, and the
 * writer of a restarted process begins a new segment rather than
 * appending after it. The writer makes seq + 1 only after its last write
 * to seq, so a successor is what tells the reader a segment is final.
 *
 * One writer per stream (its worker); readers are other threads (the
 * flusher) reading only what a flush completed. The directory belongs to
 * one database: the flusher binds it (a "database-id" file, ringside_meta's
 * id) on its first connection and refuses to replay it into another.
 */
#ifndef RINGSIDE_ANALYTICS_JOURNAL_H
#define RINGSIDE_ANALYTICS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum journal_kind {
	JOURNAL_TOKEN_ISSUED = 1,
	JOURNAL_API_CALL = 2,
};

#define JOURNAL_ID_MAX 63        /* org and agent ids, bytes */

/* ---- Writing (one worker) ---- */

struct journal_writer;

struct journal_writer_config {
	const char *dir;          /* exists, writable */
	uint32_t worker;
	uint64_t segment_bytes;   /* a segment is closed past this */
	bool sync;                /* fdatasync after each flush (power loss) */
};

/* Opens the worker's stream: a new segment after the highest seq in the
 * directory for this worker (never appending to a segment a previous
 * process wrote). A second writer of the same worker, in this process or
 * another, fails with -EBUSY (an flock on "w<worker>.lock", which stays
 * in the directory). Allocates its buffer (256 KiB) here, nothing after.
 * segment_bytes below 175 (a header and the largest record): -EINVAL.
 * 0, or a negative errno after logging why. */
int journal_writer_open(struct journal_writer **out, const struct journal_writer_config *c);
/* Flushes what is pending (logged if that fails: those counts are
 * lost), closes and frees. NULL is a no-op. */
void journal_writer_close(struct journal_writer *w);

/* Buffers one event (no syscall). ids longer than JOURNAL_ID_MAX or
 * empty, or an unknown kind: -EINVAL. A full buffer is flushed first; if
 * that flush fails its error is returned and this event is not buffered
 * (those before it stay pending). */
int journal_append(struct journal_writer *w, enum journal_kind kind, const char *org,
		   size_t org_len, const char *agent, size_t agent_len, int64_t unix_ms);

/* Writes what was appended since the last flush (one write(2), plus
 * fdatasync when configured), rotating the segment when it is full.
 * Cheap when nothing is pending. 0, or a negative errno (logged once per
 * failure streak; the events stay buffered and are retried; a short
 * write is continued where it stopped, never written twice). An
 * fdatasync failure is returned too, but those events are in the file
 * and are not written again (a copy would count twice). */
int journal_flush(struct journal_writer *w);

/* Events appended and not yet flushed (for tests, and to know whether a
 * flush is due). */
uint32_t journal_pending(const struct journal_writer *w);

/* The last flush failed and its events wait in memory (a full disk, an
 * I/O error): a caller that must not acknowledge what it cannot keep
 * refuses new events until a flush succeeds again. */
bool journal_failing(const struct journal_writer *w);

/* ---- Reading (the flusher) ---- */

/* A position in a worker's stream. */
struct journal_pos {
	uint64_t seq;     /* segment */
	uint64_t offset;  /* bytes into it, header included */
};

struct journal_event {
	uint8_t kind;     /* enum journal_kind */
	uint8_t org_len, agent_len;
	int64_t unix_ms;
	char org[JOURNAL_ID_MAX + 1];   /* NUL-terminated */
	char agent[JOURNAL_ID_MAX + 1];
};

struct journal_reader;

/* Reads the stream of `worker` in dir from pos (0/0: its first segment
 * present; otherwise a position journal_next returned). Touches no file
 * until journal_next. 0, -ENOMEM or -ENAMETOOLONG. */
int journal_reader_open(struct journal_reader **out, const char *dir, uint32_t worker,
			struct journal_pos pos);
/* NULL is a no-op. */
void journal_reader_close(struct journal_reader *r);

/* The next complete event: 1 (and *pos is just past it), 0 at the end of
 * what is written (call again later: more may come), or a negative
 * errno. A torn or corrupt record at the end of a segment that has a
 * successor is skipped with a log line (the crash that tore it ended
 * that segment); in the newest segment it is "the end" for now. Damage
 * in the middle of a final segment skips to the next valid record (one
 * log line, the damaged record lost). A segment missing before a newer
 * one (deleted behind the reader's back) is skipped with a log line. On
 * 0 and errors *pos is not changed. */
int journal_next(struct journal_reader *r, struct journal_event *ev, struct journal_pos *pos);

/* Deletes the worker's segments wholly before pos.seq (all read and
 * applied). The worker's newest segment is never deleted, even for a
 * pos past it: a restarted writer numbers its segment after the highest
 * present, and seq numbers must never go back. Returns how many were
 * deleted, or a negative errno if dir cannot be read. */
int journal_prune(const char *dir, uint32_t worker, struct journal_pos pos);

/* A segment file's name, "w<worker>-<16 digits>.journal" (worker without
 * leading zeros, seq >= 1): true and its numbers; any other name is not
 * the journal's. */
bool journal_segment_name(const char *name, uint32_t *worker, uint64_t *seq);

/* The workers that have streams in dir (for replay at start with a
 * different --workers): fills ids, ascending, up to cap, and returns how
 * many it filled (the cap lowest if there are more; 0 if dir cannot be
 * read). */
uint32_t journal_list_workers(const char *dir, uint32_t *ids, uint32_t cap);

#endif
