/*
 * gzip for responses; the contract is include/ringside/http_gzip.h.
 */
#include "ringside/http_gzip.h"

#include <errno.h>
#include <string.h>

/* Level 1: a scrape is compressed on every request, where speed matters
 * more than the last few percent of size (text expositions shrink 10 to
 * 25 times even at level 1). */
#define GZIP_LEVEL 1
/* windowBits 15 + 16: a gzip header and trailer, not raw zlib. A smaller
 * window is slower (it slides more often) and compresses worse. */
#define GZIP_WINDOW_BITS (15 + 16)
#define GZIP_MEM_LEVEL 7

_Static_assert(HTTP_GZIP_PIECE_MAX <= UINT32_MAX / 2, "held counts fit in 32 bits");

/* zlib's allocations, carved in order from the caller's memory and given
 * back all at once (http_gzip_fini): deflateInit2 asks for five blocks. */
static voidpf arena_alloc(voidpf opaque, uInt items, uInt size)
{
	struct http_gzip *g = opaque;
	size_t n = ((size_t)items * size + 63) & ~(size_t)63; /* cache-line aligned */
	if (n > HTTP_GZIP_STATE_BYTES - g->mem_used)
		return Z_NULL;
	voidpf p = g->mem + g->mem_used;
	g->mem_used += (uint32_t)n;
	return p;
}

static void arena_free(voidpf opaque, voidpf p)
{
	(void)opaque;
	(void)p;
}

static int init(struct http_gzip *g)
{
	if (deflateInit2(&g->z, GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	g->ready = true;
	return 0;
}

int http_gzip_init(struct http_gzip *g)
{
	memset(g, 0, sizeof *g);
	return init(g);
}

int http_gzip_init_in(struct http_gzip *g, void *mem, size_t cap)
{
	memset(g, 0, sizeof *g);
	if (cap < HTTP_GZIP_STREAM_BYTES)
		return -ENOMEM;
	g->mem = mem;
	g->z.zalloc = arena_alloc;
	g->z.zfree = arena_free;
	g->z.opaque = g;
	return init(g);
}

void http_gzip_fini(struct http_gzip *g)
{
	if (g->ready)
		deflateEnd(&g->z);
	g->ready = false;
	g->mem_used = 0;
}

size_t http_gzip_compress(struct http_gzip *g, const char *in, size_t n, char *out, size_t cap)
{
	g->owes = g->done = g->last = false;
	g->held = 0;
	if (!g->ready || deflateReset(&g->z) != Z_OK)
		return 0;
	g->z.next_in = (Bytef *)(uintptr_t)in;
	g->z.avail_in = (uInt)n;
	g->z.next_out = (Bytef *)out;
	g->z.avail_out = (uInt)cap;
	if (deflate(&g->z, Z_FINISH) != Z_STREAM_END)
		return 0;
	return cap - g->z.avail_out;
}

/* ---- Streams ---- */

static char *hold(struct http_gzip *g)
{
	return g->mem + HTTP_GZIP_STATE_BYTES;
}

int http_gzip_stream_begin(struct http_gzip *g)
{
	if (!g->ready || !g->mem)
		return -EINVAL;
	g->owes = g->done = g->last = false;
	g->held = g->held_off = 0;
	g->error = deflateReset(&g->z) == Z_OK ? 0 : -EIO;
	return g->error;
}

/*
 * One deflate call over whatever z.next_in holds, into out[0, cap).
 * Sync flush (the pieces so far decode) or finish (the member ends).
 * zlib's rules: a flush is complete when deflate returns with output room
 * left (else it must be called again with the same flush and no new
 * input); a finish, when it returns Z_STREAM_END.
 */
static ssize_t run(struct http_gzip *g, char *out, size_t cap)
{
	g->z.next_out = (Bytef *)out;
	g->z.avail_out = (uInt)cap;
	int r = deflate(&g->z, g->last ? Z_FINISH : Z_SYNC_FLUSH);
	/* Z_BUF_ERROR: no progress was possible, nothing lost (a flush
	 * repeated with nothing new); anything else but these is a bug. */
	if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
		g->error = -EIO;
		g->owes = false;
		return g->error;
	}
	size_t wrote = cap - g->z.avail_out;
	if (g->last) {
		g->done = r == Z_STREAM_END;
		g->owes = !g->done;
	} else {
		/* Room left means all input was taken and flushed. */
		g->owes = g->z.avail_out == 0;
	}
	return (ssize_t)wrote;
}

ssize_t http_gzip_stream_put(struct http_gzip *g, const char *in, size_t n, bool last, char *out,
			     size_t cap)
{
	if (g->error)
		return g->error;
	if (!g->mem || g->owes || g->done || g->last || n > HTTP_GZIP_PIECE_MAX ||
	    cap < HTTP_GZIP_ROOM_MIN || cap > UINT32_MAX)
		return -EINVAL;
	if (n == 0 && !last)
		return 0;
	g->last = last;
	g->z.next_in = (Bytef *)(uintptr_t)in;
	g->z.avail_in = (uInt)n;
	ssize_t wrote = run(g, out, cap);
	if (wrote >= 0 && g->z.avail_in) {
		/* The output is full: keep the rest, `in` is gone after this. */
		g->held = g->z.avail_in;
		g->held_off = 0;
		memcpy(hold(g), g->z.next_in, g->held);
	}
	g->z.next_in = NULL;
	g->z.avail_in = 0;
	return wrote;
}

ssize_t http_gzip_stream_more(struct http_gzip *g, char *out, size_t cap)
{
	if (g->error)
		return g->error;
	if (!g->owes)
		return 0;
	if (cap < HTTP_GZIP_ROOM_MIN || cap > UINT32_MAX)
		return -EINVAL;
	g->z.next_in = (Bytef *)(hold(g) + g->held_off);
	g->z.avail_in = g->held;
	ssize_t wrote = run(g, out, cap);
	g->held_off += g->held - g->z.avail_in;
	g->held = g->z.avail_in;
	g->z.next_in = NULL;
	g->z.avail_in = 0;
	return wrote;
}
