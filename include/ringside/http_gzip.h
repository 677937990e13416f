/*
 * gzip for responses: a whole body at once (a scrape, when Accept-Encoding
 * allows it), or a body streamed in pieces (http_reply_stream with
 * HTTP_STREAM_GZIP). zlib at level 1, windowBits 15 + 16 (a gzip header
 * and trailer), memLevel 7.
 *
 * A compressor's state is allocated once, at start (http_gzip_init: by
 * zlib's malloc; http_gzip_init_in: in memory the caller reserved), and
 * reused: deflateReset keeps it, so compressing allocates nothing.
 *
 * Measured on a GET /metrics/fleet body of 2000 agents sending the full
 * sample (35 KB of text per agent, 64 KiB pieces, sync-flushed; best of
 * 15 runs on the 2-core test machine): level 1 gives 1.38 KB per agent
 * (25x) for 52 us of CPU per agent, about twice what rendering the text
 * costs. memLevel 7 compresses exactly as well as 8 and 9, faster (58 and
 * 71 us: smaller tables stay in cache), in 198 KiB of state instead of
 * 262 or 390. libdeflate (level 1) takes 38 us and 1.30 KB per agent, but
 * has no streaming: each piece would be a gzip member of its own, and
 * curl and zlib-based clients decode only the first member of a body.
 */
#ifndef RINGSIDE_HTTP_GZIP_H
#define RINGSIDE_HTTP_GZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

/* zlib's state at windowBits 15, memLevel 7: window 64 KiB, prev 64 KiB,
 * head 32 KiB, pending 32 KiB, deflate_state 6 KiB (202 560 bytes with
 * zlib 1.2.13), rounded up with room for later zlibs' own growth. */
#define HTTP_GZIP_STATE_BYTES (208u * 1024u)
/* The largest piece a stream takes at once (http_gzip_stream_put). */
#define HTTP_GZIP_PIECE_MAX (64u * 1024u)
/* What http_gzip_init_in needs: the state, then room to keep the rest of
 * a piece whose output did not fit. Touched as used: a stream whose
 * output fits keeps nothing (a Prometheus exposition shrinks 25x). */
#define HTTP_GZIP_STREAM_BYTES (HTTP_GZIP_STATE_BYTES + HTTP_GZIP_PIECE_MAX)
/* The least output room a stream call takes. zlib: a sync flush given 6
 * bytes or fewer may repeat its marker for ever. */
#define HTTP_GZIP_ROOM_MIN 64u

struct http_gzip {
	z_stream z;
	bool ready;
	/* A stream (http_gzip_stream_*): */
	bool last;       /* the end of the body was given: finishing the member */
	bool owes;       /* output of the last piece is still to come */
	bool done;       /* the member's trailer is written */
	int error;       /* sticky: 0, or the negative errno every call returns */
	uint32_t held;   /* input not yet compressed, at hold + held_off */
	uint32_t held_off;
	/* With http_gzip_init_in: the caller's memory (zlib's state, then the
	 * held input). */
	char *mem;
	uint32_t mem_used;
};

/* Returns 0, or -ENOMEM. Only http_gzip_compress may use g. */
int http_gzip_init(struct http_gzip *g);

/* The same, with zlib's state carved from mem[0, cap) (cap >=
 * HTTP_GZIP_STREAM_BYTES), which the caller keeps until http_gzip_fini;
 * nothing is malloc'd. Both http_gzip_compress and the stream calls may
 * use g. Returns 0, or -ENOMEM if cap is too small for this zlib. */
int http_gzip_init_in(struct http_gzip *g, void *mem, size_t cap);

/* Gives back what init took (mem stays the caller's). Harmless on a g
 * that was zeroed and never initialized. */
void http_gzip_fini(struct http_gzip *g);

/* Compresses in[0, n) into out as one gzip member. Returns the length, or
 * 0 if it did not fit in cap. Ends any stream in progress on g. */
size_t http_gzip_compress(struct http_gzip *g, const char *in, size_t n, char *out, size_t cap);

/*
 * A body streamed as one gzip member, in pieces, into output room of any
 * size (>= HTTP_GZIP_ROOM_MIN each time):
 *
 *   http_gzip_stream_begin(g);
 *   for each piece, then once more with last (n may be 0):
 *       n = http_gzip_stream_put(g, piece, len, last, out, room);
 *       send out[0, n);
 *       while (http_gzip_stream_owes(g)) {
 *           n = http_gzip_stream_more(g, out, room);
 *           send out[0, n);
 *       }
 *
 * Each piece is sync-flushed (Z_SYNC_FLUSH): once nothing is owed, the
 * bytes written so far inflate to exactly the pieces given so far, so a
 * client decodes the body as it arrives, and every piece gives output (a
 * chunk is never empty). At 64 KiB pieces that costs 3% more bytes and
 * 7% more CPU than Z_NO_FLUSH (1.38 against 1.34 KB, 52 against 49 us per
 * agent). After the last piece, once nothing is owed,
 * http_gzip_stream_done(g) holds: the member is whole.
 */

/* Starts a member, abandoning any earlier one. Returns 0, or -EINVAL if g
 * was not made by http_gzip_init_in. */
int http_gzip_stream_begin(struct http_gzip *g);

/*
 * Gives the next piece, in[0, n) (n <= HTTP_GZIP_PIECE_MAX), or with
 * `last` the final one (n may be 0: an empty body is a valid member), and
 * writes what it can of the output into out[0, cap). `in` is read during
 * the call only: what the output cannot take yet is copied into g. Returns
 * the bytes written to out; -EINVAL if something is still owed, the
 * member is done, n or cap is out of range, or g was not made by
 * http_gzip_init_in; -EIO if zlib failed (sticky: the member cannot be
 * completed).
 */
ssize_t http_gzip_stream_put(struct http_gzip *g, const char *in, size_t n, bool last, char *out,
			     size_t cap);

/* Writes more of what is owed into out[0, cap) (cap >= HTTP_GZIP_ROOM_MIN).
 * Returns the bytes written (0 if nothing was owed), -EINVAL if cap is out
 * of range, or -EIO (sticky). */
ssize_t http_gzip_stream_more(struct http_gzip *g, char *out, size_t cap);

/* Output is still owed for what was given: call http_gzip_stream_more
 * with fresh room, and give no new piece, until this is false. */
static inline bool http_gzip_stream_owes(const struct http_gzip *g)
{
	return g->owes;
}

/* The last piece was given and all its output written: the member is whole. */
static inline bool http_gzip_stream_done(const struct http_gzip *g)
{
	return g->done;
}

#endif
