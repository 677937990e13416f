/* Resident bytes of an address range (include/ringside/resident.h). */
#include "ringside/resident.h"

#include <sys/mman.h>
#include <unistd.h>

/* Pages asked about per mincore call: a 16 KiB vector on the stack. */
#define VEC_PAGES 16384u

uint64_t resident_bytes(const void *addr, size_t len)
{
	if (!addr || !len)
		return 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)addr & ~(uintptr_t)(page - 1);
	uintptr_t end = ((uintptr_t)addr + len + page - 1) & ~(uintptr_t)(page - 1);
	unsigned char vec[VEC_PAGES];
	uint64_t pages = 0;
	for (uintptr_t at = start; at < end;) {
		size_t n = (end - at) / page < VEC_PAGES ? (end - at) / page : VEC_PAGES;
		if (mincore((void *)at, n * page, vec) == 0)
			for (size_t i = 0; i < n; i++)
				pages += vec[i] & 1u;
		at += n * page;
	}
	return pages * page;
}
