/*
 * Keyed hashes for tables whose keys clients choose (src/common/siphash.c):
 * with a random key, a client cannot make its keys collide with others'.
 */
#ifndef RINGSIDE_SIPHASH_H
#define RINGSIDE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 with a 128-bit output (the token cache's tag). */
void siphash24_128(const uint8_t key[16], const void *msg, size_t len, uint8_t out[16]);

/* SipHash-1-3, 64-bit output: the faster variant for hash-table indexes. */
uint64_t siphash13(const uint64_t key[2], const void *msg, size_t len);

#endif
