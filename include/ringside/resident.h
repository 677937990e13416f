/*
 * Resident memory of address ranges, for the per-worker memory of the pool
 * view (/metrics/api/metrics/stats): mincore(2) says which pages of a
 * range are in RAM, so a worker's figure is what it has touched, not what
 * it has reserved, and the workers' figures add up to no more than the
 * process's resident set.
 */
#ifndef RINGSIDE_RESIDENT_H
#define RINGSIDE_RESIDENT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of [addr, addr + len) in RAM, whole pages (the pages the range
 * touches, so a small heap object counts its page). 0 for NULL or len 0.
 * A system call per 64 MiB; for a thread that may block (not a worker). */
uint64_t resident_bytes(const void *addr, size_t len);

#endif
