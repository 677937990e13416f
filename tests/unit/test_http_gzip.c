/*
 * gzip for streamed bodies (http_gzip_stream_*): the member inflates to
 * exactly the pieces given, whatever their sizes and whatever the output
 * room (output that does not fit is owed, never dropped), an empty body
 * is a valid member, what was written after each piece decodes to the
 * pieces so far, and misuse is refused. zlib's own inflate is the judge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringside/http_gzip.h"

#define BODY_MAX (1u << 20)

static char *body;      /* BODY_MAX bytes: exposition text, then noise */
static char *packed;    /* what a stream wrote */
static char *unpacked;  /* what it inflated to */
static size_t packed_cap = 4u * BODY_MAX;

static uint64_t rng = 88172645463325252ull;

static uint32_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

/* Mostly what a fleet exposition looks like; one stretch of noise that
 * compresses to more than it is (stored blocks), so that output outgrows
 * the room given for a piece. */
static void make_body(void)
{
	size_t n = 0;
	for (unsigned i = 0; n < BODY_MAX * 3 / 4; i++)
		n += (size_t)snprintf(body + n, BODY_MAX - n,
				      "fleet_container_cpu_percent{organization_id=\"org-%u\","
				      "agent_id=\"agent-%08u\",container=\"c%u\","
				      "index=\"%u\"} %u.%u\n",
				      i % 7, i / 13, i % 5, i % 11, next_random() % 1000,
				      next_random() % 100);
	while (n < BODY_MAX)
		body[n++] = (char)next_random();
}

static int setup(void **state)
{
	(void)state;
	body = malloc(BODY_MAX);
	packed = malloc(packed_cap);
	unpacked = malloc(BODY_MAX + 1);
	if (!body || !packed || !unpacked)
		return -1;
	make_body();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(body);
	free(packed);
	free(unpacked);
	return 0;
}

/* A stream compressor in memory of its own, the way a worker makes one. */
static struct http_gzip *new_stream(void)
{
	struct http_gzip *g = calloc(1, sizeof *g);
	void *mem = aligned_alloc(64, HTTP_GZIP_STREAM_BYTES);
	assert_non_null(g);
	assert_non_null(mem);
	assert_int_equal(http_gzip_init_in(g, mem, HTTP_GZIP_STREAM_BYTES), 0);
	assert_true(g->mem_used <= HTTP_GZIP_STATE_BYTES);
	return g;
}

static void free_stream(struct http_gzip *g)
{
	char *mem = g->mem;
	http_gzip_fini(g);
	free(mem);
	free(g);
}

/* Inflates a whole gzip member; it must end exactly at the end of in. */
static size_t inflate_member(const char *in, size_t n, char *out, size_t cap)
{
	z_stream z = {0};
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	int r = inflate(&z, Z_FINISH);
	assert_int_equal(r, Z_STREAM_END);
	assert_int_equal(z.avail_in, 0); /* nothing after the trailer */
	size_t got = cap - z.avail_out;
	inflateEnd(&z);
	return got;
}

/* Writes into packed what is owed, `room` bytes at a time. */
static size_t drain(struct http_gzip *g, size_t len, size_t room)
{
	while (http_gzip_stream_owes(g)) {
		assert_true(len + room <= packed_cap);
		ssize_t w = http_gzip_stream_more(g, packed + len, room);
		assert_true(w >= 0);
		assert_true((size_t)w <= room);
		len += (size_t)w;
	}
	return len;
}

/* Streams body[0, n) in pieces of `piece` bytes into rooms of `room`
 * bytes; returns the member's length in packed. */
static size_t stream(struct http_gzip *g, size_t n, size_t piece, size_t room)
{
	size_t len = 0;
	assert_int_equal(http_gzip_stream_begin(g), 0);
	for (size_t off = 0; off < n; off += piece) {
		size_t k = n - off < piece ? n - off : piece;
		ssize_t w = http_gzip_stream_put(g, body + off, k, false, packed + len, room);
		assert_true(w > 0); /* a sync flush always writes something */
		assert_true((size_t)w <= room);
		len = drain(g, len + (size_t)w, room);
		assert_false(http_gzip_stream_done(g));
	}
	ssize_t w = http_gzip_stream_put(g, NULL, 0, true, packed + len, room);
	assert_true(w > 0); /* at least the trailer */
	len = drain(g, len + (size_t)w, room);
	assert_true(http_gzip_stream_done(g));
	assert_false(http_gzip_stream_owes(g));
	return len;
}

static void expect_round_trip(struct http_gzip *g, size_t n, size_t piece, size_t room)
{
	size_t len = stream(g, n, piece, room);
	size_t got = inflate_member(packed, len, unpacked, BODY_MAX + 1);
	if (got != n || memcmp(unpacked, body, n) != 0)
		fail_msg("piece %zu room %zu: %zu bytes in, %zu out", piece, room, n, got);
}

static void pieces_of_many_sizes_inflate_to_their_concatenation(void **state)
{
	(void)state;
	static const size_t pieces[] = {1,    2,     3,     7,     64,    100,  1000,
					4095, 4096,  16384, 32767, 32768, 65535, 65536};
	static const size_t rooms[] = {64, 65, 100, 1000, 4096, 65536, 300000};
	struct http_gzip *g = new_stream();
	for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
		for (size_t r = 0; r < sizeof rooms / sizeof rooms[0]; r++) {
			/* Tiny pieces over a shorter body: a sync flush each. */
			size_t n = pieces[p] < 1000 ? pieces[p] * 997 : BODY_MAX;
			expect_round_trip(g, n, pieces[p], rooms[r]);
		}
	}
	free_stream(g);
}

static void a_whole_body_in_one_piece_inflates(void **state)
{
	(void)state;
	struct http_gzip *g = new_stream();
	/* The text part only: one put, and nothing owed with room for it. */
	assert_int_equal(http_gzip_stream_begin(g), 0);
	ssize_t w = http_gzip_stream_put(g, body, HTTP_GZIP_PIECE_MAX, true, packed,
					 2 * HTTP_GZIP_PIECE_MAX);
	assert_true(w > 0);
	assert_true(w < (ssize_t)HTTP_GZIP_PIECE_MAX / 4);
	assert_false(http_gzip_stream_owes(g));
	assert_true(http_gzip_stream_done(g));
	assert_int_equal(inflate_member(packed, (size_t)w, unpacked, BODY_MAX),
			 HTTP_GZIP_PIECE_MAX);
	assert_memory_equal(unpacked, body, HTTP_GZIP_PIECE_MAX);
	free_stream(g);
}

/* The looping path: the output of a piece of noise is bigger than the
 * room, so the compressor keeps the rest of the piece (the caller's
 * buffer is gone after the call: it is scribbled over here) and owes. */
static void output_larger_than_the_room_is_owed_not_dropped(void **state)
{
	(void)state;
	static const size_t rooms[] = {64, 333, 4096, 65536 - 17};
	struct http_gzip *g = new_stream();
	const char *noise = body + BODY_MAX - HTTP_GZIP_PIECE_MAX;
	char *piece = malloc(HTTP_GZIP_PIECE_MAX);
	assert_non_null(piece);
	for (size_t r = 0; r < sizeof rooms / sizeof rooms[0]; r++) {
		size_t room = rooms[r], len = 0;
		assert_int_equal(http_gzip_stream_begin(g), 0);
		for (int k = 0; k < 3; k++) {
			memcpy(piece, noise, HTTP_GZIP_PIECE_MAX);
			ssize_t w = http_gzip_stream_put(g, piece, HTTP_GZIP_PIECE_MAX, k == 2,
							 packed + len, room);
			assert_int_equal(w, (ssize_t)room); /* filled, and ... */
			assert_true(http_gzip_stream_owes(g)); /* ... more to come */
			memset(piece, 'x', HTTP_GZIP_PIECE_MAX);
			len = drain(g, len + (size_t)w, room);
		}
		assert_true(http_gzip_stream_done(g));
		size_t got = inflate_member(packed, len, unpacked, BODY_MAX);
		assert_int_equal(got, 3 * HTTP_GZIP_PIECE_MAX);
		for (int k = 0; k < 3; k++)
			assert_memory_equal(unpacked + k * HTTP_GZIP_PIECE_MAX, noise,
					    HTTP_GZIP_PIECE_MAX);
	}
	free(piece);
	free_stream(g);
}

static void an_empty_body_is_a_valid_member(void **state)
{
	(void)state;
	static const size_t rooms[] = {64, 65536};
	struct http_gzip *g = new_stream();
	for (size_t r = 0; r < sizeof rooms / sizeof rooms[0]; r++) {
		assert_int_equal(http_gzip_stream_begin(g), 0);
		ssize_t w = http_gzip_stream_put(g, NULL, 0, true, packed, rooms[r]);
		assert_true(w >= 18); /* header 10, an empty block, trailer 8 */
		assert_false(http_gzip_stream_owes(g));
		assert_true(http_gzip_stream_done(g));
		assert_int_equal((unsigned char)packed[0], 0x1f);
		assert_int_equal((unsigned char)packed[1], 0x8b);
		assert_int_equal(inflate_member(packed, (size_t)w, unpacked, 16), 0);
	}
	free_stream(g);
}

/* Z_SYNC_FLUSH: a client decodes each piece as it arrives. */
static void what_was_written_after_each_piece_decodes_to_the_pieces_so_far(void **state)
{
	(void)state;
	struct http_gzip *g = new_stream();
	z_stream in = {0};
	assert_int_equal(inflateInit2(&in, 15 + 16), Z_OK);
	size_t piece = 20000, room = 1000, len = 0, fed = 0, out = 0;
	assert_int_equal(http_gzip_stream_begin(g), 0);
	for (size_t off = 0; off < BODY_MAX; off += piece) {
		size_t k = BODY_MAX - off < piece ? BODY_MAX - off : piece;
		ssize_t w = http_gzip_stream_put(g, body + off, k, false, packed + len, room);
		assert_true(w > 0);
		len = drain(g, len + (size_t)w, room);
		in.next_in = (Bytef *)packed + fed;
		in.avail_in = (uInt)(len - fed);
		in.next_out = (Bytef *)unpacked + out;
		in.avail_out = (uInt)(BODY_MAX + 1 - out);
		assert_int_equal(inflate(&in, Z_SYNC_FLUSH), Z_OK);
		assert_int_equal(in.avail_in, 0);
		fed = len;
		out = BODY_MAX + 1 - in.avail_out;
		assert_int_equal(out, off + k);
		assert_memory_equal(unpacked, body, out);
	}
	inflateEnd(&in);
	free_stream(g);
}

/* A client that left mid-body: the next member starts clean. */
static void a_member_after_an_abandoned_one_is_whole(void **state)
{
	(void)state;
	struct http_gzip *g = new_stream();
	assert_int_equal(http_gzip_stream_begin(g), 0);
	ssize_t w = http_gzip_stream_put(g, body + BODY_MAX - HTTP_GZIP_PIECE_MAX,
					 HTTP_GZIP_PIECE_MAX, false, packed, 100);
	assert_int_equal(w, 100);
	assert_true(http_gzip_stream_owes(g)); /* abandoned owing */
	expect_round_trip(g, 200000, 30000, 4096);
	/* The one-shot compressor on the same state, then a stream again. */
	size_t n = http_gzip_compress(g, body, 50000, packed, packed_cap);
	assert_true(n > 0);
	assert_int_equal(inflate_member(packed, n, unpacked, BODY_MAX), 50000);
	assert_memory_equal(unpacked, body, 50000);
	expect_round_trip(g, BODY_MAX, 65536, 65536 - 17);
	free_stream(g);
}

static void misuse_is_refused(void **state)
{
	(void)state;
	char out[256];
	struct http_gzip *g = new_stream();
	assert_int_equal(http_gzip_stream_begin(g), 0);
	assert_int_equal(
		http_gzip_stream_put(g, body, HTTP_GZIP_PIECE_MAX + 1, false, out, sizeof out),
		-EINVAL);
	assert_int_equal(http_gzip_stream_put(g, body, 10, false, out, HTTP_GZIP_ROOM_MIN - 1),
			 -EINVAL);
	assert_int_equal(http_gzip_stream_more(g, out, sizeof out), 0); /* nothing owed */
	assert_int_equal(http_gzip_stream_put(g, body, 0, false, out, sizeof out), 0);
	ssize_t w = http_gzip_stream_put(g, body + BODY_MAX - 4096, 4096, false, out, sizeof out);
	assert_int_equal(w, (ssize_t)sizeof out);
	assert_true(http_gzip_stream_owes(g));
	assert_int_equal(http_gzip_stream_put(g, body, 10, false, out, sizeof out), -EINVAL);
	assert_int_equal(http_gzip_stream_more(g, out, HTTP_GZIP_ROOM_MIN - 1), -EINVAL);
	while (http_gzip_stream_owes(g))
		assert_true(http_gzip_stream_more(g, out, sizeof out) >= 0);
	assert_true(http_gzip_stream_put(g, NULL, 0, true, out, sizeof out) > 0);
	assert_true(http_gzip_stream_done(g));
	assert_int_equal(http_gzip_stream_put(g, body, 10, false, out, sizeof out), -EINVAL);
	assert_int_equal(http_gzip_stream_put(g, NULL, 0, true, out, sizeof out), -EINVAL);
	free_stream(g);

	/* Too little memory for the state and a held piece. */
	struct http_gzip small;
	static _Alignas(64) char mem[HTTP_GZIP_STATE_BYTES];
	assert_int_equal(http_gzip_init_in(&small, mem, sizeof mem), -ENOMEM);
	http_gzip_fini(&small);

	/* The one-shot compressor has nowhere to hold a piece: no streams. */
	struct http_gzip one;
	assert_int_equal(http_gzip_init(&one), 0);
	assert_int_equal(http_gzip_stream_begin(&one), -EINVAL);
	size_t n = http_gzip_compress(&one, body, 1000, packed, packed_cap);
	assert_int_equal(inflate_member(packed, n, unpacked, BODY_MAX), 1000);
	http_gzip_fini(&one);
}

/* The held-input part of the memory is touched only when output outgrows
 * the room: a compressible body with room to spare leaves it alone (so a
 * worker's reserve costs RAM only when it has to). */
static void the_hold_is_untouched_while_output_fits(void **state)
{
	(void)state;
	struct http_gzip *g = new_stream();
	char *hold = g->mem + HTTP_GZIP_STATE_BYTES;
	memset(hold, 0x5a, HTTP_GZIP_PIECE_MAX);
	expect_round_trip(g, BODY_MAX * 3 / 4, HTTP_GZIP_PIECE_MAX, 65536 - 17);
	for (size_t i = 0; i < HTTP_GZIP_PIECE_MAX; i++)
		if (hold[i] != 0x5a)
			fail_msg("hold byte %zu written", i);
	free_stream(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pieces_of_many_sizes_inflate_to_their_concatenation),
		cmocka_unit_test(a_whole_body_in_one_piece_inflates),
		cmocka_unit_test(output_larger_than_the_room_is_owed_not_dropped),
		cmocka_unit_test(an_empty_body_is_a_valid_member),
		cmocka_unit_test(what_was_written_after_each_piece_decodes_to_the_pieces_so_far),
		cmocka_unit_test(a_member_after_an_abandoned_one_is_whole),
		cmocka_unit_test(misuse_is_refused),
		cmocka_unit_test(the_hold_is_untouched_while_output_fits),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
