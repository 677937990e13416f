/*
 * gzip for responses (a scrape, when Accept-Encoding allows it). One
 * compressor per worker, set up at start: zlib allocates its state in
 * deflateInit2, and deflateReset reuses it, so compressing a response
 * allocates nothing.
 */
#ifndef RINGSIDE_HTTP_GZIP_H
#define RINGSIDE_HTTP_GZIP_H

#include <stddef.h>
#include <zlib.h>

struct http_gzip {
	z_stream z;
	int ready;
};

/* Returns 0, or -ENOMEM. */
int http_gzip_init(struct http_gzip *g);
void http_gzip_fini(struct http_gzip *g);

/* Compresses in[0, n) into out as one gzip member. Returns the length, or
 * 0 if it did not fit in cap. */
size_t http_gzip_compress(struct http_gzip *g, const char *in, size_t n, char *out, size_t cap);

#endif
