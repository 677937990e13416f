/*
 * SipHash (Aumasson and Bernstein), keyed: the hash of every table whose
 * keys clients choose (tokens, agent ids), so collisions cannot be aimed.
 * SipHash-2-4-128 is checked against the reference vectors in
 * tests/unit/test_token_cache.c; SipHash-1-3 runs the same rounds, fewer.
 */
#include "ringside/siphash.h"

#include <string.h>

static inline uint64_t rotl(uint64_t x, int b)
{
	return x << b | x >> (64 - b);
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline void store_le64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

#define SIPROUND                                                              \
	do {                                                                  \
		v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);     \
		v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                        \
		v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                        \
		v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);     \
	} while (0)

void siphash24_128(const uint8_t key[16], const void *msg, size_t len, uint8_t out[16])
{
	const uint8_t *in = msg;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ull ^ k0;
	uint64_t v1 = 0x646f72616e646f6dull ^ k1 ^ 0xee; /* 128-bit mode */
	uint64_t v2 = 0x6c7967656e657261ull ^ k0;
	uint64_t v3 = 0x7465646279746573ull ^ k1;
	uint64_t m, b = (uint64_t)len << 56;
	size_t left = len & 7;
	const uint8_t *end = in + (len - left);

	for (; in != end; in += 8) {
		m = load_le64(in);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	switch (left) {
	case 7:
		b |= (uint64_t)in[6] << 48; /* fall through */
	case 6:
		b |= (uint64_t)in[5] << 40; /* fall through */
	case 5:
		b |= (uint64_t)in[4] << 32; /* fall through */
	case 4:
		b |= (uint64_t)in[3] << 24; /* fall through */
	case 3:
		b |= (uint64_t)in[2] << 16; /* fall through */
	case 2:
		b |= (uint64_t)in[1] << 8; /* fall through */
	case 1:
		b |= (uint64_t)in[0];
		break;
	case 0:
		break;
	}
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;

	v2 ^= 0xee;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	store_le64(out, v0 ^ v1 ^ v2 ^ v3);
	v1 ^= 0xdd;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	store_le64(out + 8, v0 ^ v1 ^ v2 ^ v3);
}

uint64_t siphash13(const uint64_t key[2], const void *msg, size_t len)
{
	const uint8_t *in = msg;
	uint64_t v0 = 0x736f6d6570736575ull ^ key[0];
	uint64_t v1 = 0x646f72616e646f6dull ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ key[0];
	uint64_t v3 = 0x7465646279746573ull ^ key[1];
	uint64_t m, b = (uint64_t)len << 56;
	const uint8_t *end = in + (len & ~(size_t)7);

	for (; in != end; in += 8) {
		m = load_le64(in);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)in[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}
