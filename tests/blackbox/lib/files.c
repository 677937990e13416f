/*
 * Reading whole files, and the sample agent reports: see files.h.
 */
#include "files.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ssize_t h_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0) {
		int e = errno;

		buf[0] = '\0';
		return -e;
	}
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

char *h_read_sample(const char *name, size_t *len)
{
	const char *dir = getenv("RINGSIDE_SAMPLES");
	char *path = h_strf("%s/%s", dir && *dir ? dir : "samples", name);
	char *buf = malloc(1 << 20);

	CHECK(buf != NULL, "out of memory");
	ssize_t n = h_read_file(path, buf, 1 << 20);

	CHECK(n >= 0, "cannot open %s (run from the repository root, or set RINGSIDE_SAMPLES)",
	      path);
	*len = (size_t)n;
	free(path);
	return buf;
}
