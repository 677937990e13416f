#include "ringside/http_gzip.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* Level 1: a scrape is compressed on every request, where speed matters
 * more than the last few percent of size (text expositions shrink about
 * tenfold even at level 1). */
#define GZIP_LEVEL 1

int http_gzip_init(struct http_gzip *g)
{
	memset(g, 0, sizeof *g);
	/* windowBits 15 + 16: a gzip header and trailer, not raw zlib. */
	if (deflateInit2(&g->z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	g->ready = 1;
	return 0;
}

void http_gzip_fini(struct http_gzip *g)
{
	if (g->ready)
		deflateEnd(&g->z);
	g->ready = 0;
}

size_t http_gzip_compress(struct http_gzip *g, const char *in, size_t n, char *out, size_t cap)
{
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
