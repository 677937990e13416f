/*
 * The standard process collector, from /proc (proc(5)). The contract is
 * include/ringside/metrics_process.h.
 *
 * No allocation and no stdio FILE: files are read with open/read through
 * a stack buffer, line by line, so a file longer than the buffer (the
 * system-wide stat has an "intr" line of thousands of numbers before
 * "btime" on a large machine) is streamed, not truncated.
 */
#include "ringside/metrics_process.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* "<dir>/<name>" into out[cap]; -ENAMETOOLONG if it does not fit. */
static int join(char *out, size_t cap, const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);

	if (dl + 1 + nl + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(out, dir, dl);
	out[dl] = '/';
	memcpy(out + dl + 1, name, nl + 1);
	return 0;
}

/* ---- Reading a file line by line through a fixed buffer ---- */

struct lines {
	int fd;
	size_t start, end; /* unconsumed bytes are buf[start, end) */
	bool eof, skipping; /* skipping: inside a line longer than buf */
	char buf[4096];
};

static int lines_open(struct lines *r, const char *dir, const char *name)
{
	char path[4096];
	int err = join(path, sizeof path, dir, name);

	if (err)
		return err;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	r->start = r->end = 0;
	r->eof = r->skipping = false;
	return 0;
}

/*
 * Next line without its '\n' (the last one may lack it): 1 and the span,
 * 0 at the end, or a negative errno. A line that does not fit in the
 * buffer is skipped whole: none of the lines we want is long.
 */
static int lines_next(struct lines *r, const char **line, size_t *len)
{
	for (;;) {
		char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		ssize_t n;

		if (nl) {
			size_t s = r->start;

			r->start = (size_t)(nl - r->buf) + 1;
			if (r->skipping) {
				r->skipping = false;
				continue;
			}
			*line = r->buf + s;
			*len = (size_t)(nl - r->buf) - s;
			return 1;
		}
		if (r->eof) {
			if (r->start == r->end || r->skipping)
				return 0;
			*line = r->buf + r->start;
			*len = r->end - r->start;
			r->start = r->end;
			return 1;
		}
		/* Keep the partial line, at the front, and read more after it. */
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
		if (r->end == sizeof r->buf) {
			r->skipping = true;
			r->end = 0;
		}
		do
			n = read(r->fd, r->buf + r->end, sizeof r->buf - r->end);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		if (n == 0)
			r->eof = true;
		r->end += (size_t)n;
	}
}

static void lines_close(struct lines *r)
{
	close(r->fd);
}

/* ---- Small parsers over [p, end) ---- */

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* Decimal digits at *pp into *v; false without a digit or on overflow. */
static bool parse_u64(const char **pp, const char *end, uint64_t *v)
{
	const char *p = *pp;
	uint64_t x = 0;

	if (p == end || (unsigned)*p - '0' >= 10u)
		return false;
	for (; p < end && (unsigned)*p - '0' < 10u; p++) {
		unsigned d = (unsigned)*p - '0';

		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*pp = p;
	*v = x;
	return true;
}

static bool starts_with(const char *line, size_t len, const char *key)
{
	size_t kl = strlen(key);

	return len >= kl && !memcmp(line, key, kl);
}

static void keep_first(int *err, int e)
{
	if (e < 0 && *err == 0)
		*err = e;
}

/* ---- status: VmRSS, VmSize, VmData ---- */

/* "VmRSS:\t    5120 kB": proc(5) gives these in kB (KiB). */
static bool parse_kb(const char *line, size_t len, size_t klen, uint64_t *bytes)
{
	const char *p = line + klen, *end = line + len;
	uint64_t kb;

	p = skip_blanks(p, end);
	if (!parse_u64(&p, end, &kb) || kb > UINT64_MAX / 1024)
		return false;
	*bytes = kb * 1024;
	return true;
}

static int read_status(struct process_stats *s, const char *self)
{
	struct lines r;
	const char *line;
	size_t len;
	unsigned found = 0;
	int n = 0, err = lines_open(&r, self, "status");

	if (err)
		return err;
	while (found != 7 && (n = lines_next(&r, &line, &len)) > 0) {
		if (starts_with(line, len, "VmRSS:") && parse_kb(line, len, 6, &s->resident_bytes))
			found |= 1;
		else if (starts_with(line, len, "VmSize:") && parse_kb(line, len, 7, &s->virtual_bytes))
			found |= 2;
		else if (starts_with(line, len, "VmData:") && parse_kb(line, len, 7, &s->heap_bytes))
			found |= 4;
	}
	lines_close(&r);
	if (found != 7)
		return n < 0 ? n : -ENODATA;
	return 0;
}

/* ---- limits: Max open files ---- */

/*
 * "Max open files            1024                 524288               files"
 * The soft limit is the first value. "unlimited" (RLIM_INFINITY) is
 * reported as UINT64_MAX, which is RLIM_INFINITY's own value on Linux and
 * what procfs (behind client_golang's process collector) reports; on
 * Linux it cannot happen for RLIMIT_NOFILE anyway (fs.nr_open caps it).
 */
static int read_limits(struct process_stats *s, const char *self)
{
	static const char key[] = "Max open files";
	struct lines r;
	const char *line;
	size_t len;
	int n, err = lines_open(&r, self, "limits");

	if (err)
		return err;
	err = -ENODATA;
	while ((n = lines_next(&r, &line, &len)) > 0) {
		const char *p, *end = line + len;

		if (!starts_with(line, len, key))
			continue;
		p = skip_blanks(line + sizeof key - 1, end);
		if ((size_t)(end - p) >= 9 && !memcmp(p, "unlimited", 9)) {
			s->max_fds = UINT64_MAX;
			err = 0;
		} else if (parse_u64(&p, end, &s->max_fds)) {
			err = 0;
		}
		break;
	}
	lines_close(&r);
	return n < 0 ? n : err;
}

/* ---- fd/: open descriptors ---- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/*
 * Counts the entries of self/fd with getdents64 (readdir would allocate a
 * DIR). The descriptor this opens to read the directory is among them
 * when self is this process: that entry is the one whose target is the
 * very directory we hold (same st_dev and st_ino), and it is not counted.
 * In a fake tree no entry is that directory, so all count.
 */
static int count_fds(struct process_stats *s, const char *self)
{
	char path[4096];
	/* 8-byte aligned for the dirent's fields; 16 KiB reads ~600 entries a call. */
	_Alignas(8) char buf[16384];
	char own[24];
	struct stat dir;
	uint64_t count = 0;
	int fd, err = join(path, sizeof path, self, "fd");

	if (err)
		return err;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &dir) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	{
		/* The name our own descriptor would have in self/fd. */
		char tmp[12], *d = tmp + sizeof tmp;
		unsigned v = (unsigned)fd;

		*--d = '\0';
		do
			*--d = (char)('0' + v % 10);
		while (v /= 10);
		memcpy(own, d, (size_t)(tmp + sizeof tmp - d));
	}
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof buf);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *de = (struct linux_dirent64 *)(void *)(buf + off);
			const char *name = de->d_name;
			struct stat st;

			off += de->d_reclen;
			if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
				continue;
			if (!strcmp(name, own) && fstatat(fd, name, &st, 0) == 0 &&
			    st.st_dev == dir.st_dev && st.st_ino == dir.st_ino)
				continue;
			count++;
		}
	}
	close(fd);
	if (!err)
		s->open_fds = count;
	return err;
}

/* ---- stat: CPU times and start time ---- */

/*
 * proc(5) /proc/pid/stat: "pid (comm) state ppid ...". comm is the
 * executable's name as the process set it: it may hold spaces and ')'
 * ("a) (b"), so the fields after it start past the LAST ')' of the line.
 * Field 3 (state) is then the first; we want 14 utime, 15 stime and 22
 * starttime, all in clock ticks.
 */
static int read_self_stat(const char *self, uint64_t *utime, uint64_t *stime,
			  uint64_t *starttime)
{
	struct lines r;
	const char *line = NULL, *p, *end;
	size_t len = 0;
	int n, err = lines_open(&r, self, "stat");

	if (err)
		return err;
	n = lines_next(&r, &line, &len);
	if (n <= 0) {
		lines_close(&r);
		return n < 0 ? n : -ENODATA;
	}
	end = line + len;
	p = memrchr(line, ')', len);
	err = -EINVAL;
	if (p) {
		p++;
		for (int field = 3; field <= 22; field++) {
			uint64_t v;

			if (p == end || *p != ' ')
				break;
			p++;
			if (field == 3) { /* state: one letter */
				while (p < end && *p != ' ')
					p++;
				continue;
			}
			/* Fields 4-8 and 16-21 may be negative; we skip those. */
			if (field != 14 && field != 15 && field != 22) {
				if (p < end && *p == '-')
					p++;
				if (!parse_u64(&p, end, &v))
					break;
				continue;
			}
			if (!parse_u64(&p, end, &v))
				break;
			if (field == 14)
				*utime = v;
			else if (field == 15)
				*stime = v;
			else {
				*starttime = v;
				err = 0;
			}
		}
	}
	lines_close(&r);
	return err;
}

/* proc(5) /proc/stat: "btime 1700000000", boot time in Unix seconds. */
static int read_btime(const char *root, uint64_t *btime)
{
	struct lines r;
	const char *line;
	size_t len;
	int n, err = lines_open(&r, root, "stat");

	if (err)
		return err;
	err = -ENODATA;
	while ((n = lines_next(&r, &line, &len)) > 0) {
		const char *p = line + 6;

		if (starts_with(line, len, "btime ")) {
			p = skip_blanks(p, line + len);
			if (parse_u64(&p, line + len, btime))
				err = 0;
			break;
		}
	}
	lines_close(&r);
	return n < 0 ? n : err;
}

int process_stats_read(struct process_stats *s, const char *proc_root, const char *proc_self)
{
	long tck = sysconf(_SC_CLK_TCK);
	uint64_t utime = 0, stime = 0, starttime = 0, btime = 0;
	bool have_stat;
	int err = 0, e;

	memset(s, 0, sizeof *s);
	if (tck <= 0)
		tck = 100; /* USER_HZ on every Linux architecture */
	keep_first(&err, read_status(s, proc_self));
	keep_first(&err, read_limits(s, proc_self));
	keep_first(&err, count_fds(s, proc_self));

	e = read_self_stat(proc_self, &utime, &stime, &starttime);
	keep_first(&err, e);
	have_stat = e == 0;
	if (have_stat) {
		e = read_btime(proc_root, &btime);
		keep_first(&err, e);
		if (e == 0)
			s->start_time_seconds = (double)btime + (double)starttime / (double)tck;
	}

	/*
	 * Our own CPU time from getrusage has microseconds; stat's ticks
	 * have 10 ms. Only the real self can be asked that way.
	 */
	if (!strcmp(proc_self, "/proc/self")) {
		struct rusage ru;

		if (getrusage(RUSAGE_SELF, &ru) == 0) {
			s->cpu_user_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
			s->cpu_system_seconds = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		} else {
			keep_first(&err, -errno);
		}
	} else if (have_stat) {
		s->cpu_user_seconds = (double)utime / (double)tck;
		s->cpu_system_seconds = (double)stime / (double)tck;
	}
	return err;
}
