/*
 * Process collector (include/ringside/metrics_process.h): every field read
 * from a fake /proc tree built in a temporary directory, the awkward parts
 * of the real files (a comm with ") (" and spaces, "unlimited", lines
 * longer than the read buffer, thousands of descriptors), and the real
 * /proc/self against what this test counts itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ringside/metrics_process.h"

struct tree {
	char root[64];
	char self[96];
};

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static const char status_text[] =
	"Name:\tringside\n"
	"Umask:\t0022\n"
	"State:\tS (sleeping)\n"
	"VmPeak:\t  999999 kB\n"
	"VmSize:\t  204800 kB\n"
	"VmLck:\t       0 kB\n"
	"VmHWM:\t    6000 kB\n"
	"VmRSS:\t    5120 kB\n"
	"RssAnon:\t    1000 kB\n"
	"VmData:\t   30720 kB\n"
	"VmStk:\t     132 kB\n"
	"Threads:\t4\n";

static const char limits_1024[] =
	"Limit                     Soft Limit           Hard Limit           Units     \n"
	"Max cpu time              unlimited            unlimited            seconds   \n"
	"Max processes             96365                96365                processes \n"
	"Max open files            1024                 524288               files     \n"
	"Max locked memory         8388608              8388608              bytes     \n";

static const char limits_unlimited[] =
	"Limit                     Soft Limit           Hard Limit           Units     \n"
	"Max open files            unlimited            unlimited            files     \n";

/*
 * comm "a) (b c" (the kernel writes it verbatim between '(' and ')'),
 * tpgid -1, priority 20, nice -5; utime 250, stime 125, starttime 12345.
 */
static const char stat_text[] =
	"4242 (a) (b c) S 1 4242 4242 0 -1 4194560 1500 0 3 0 250 125 7 8 20 -5 4 0 12345 "
	"209715200 1280 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 3 0 0 0 0 0\n";

static const char root_stat[] =
	"cpu  100 0 100 1000 0 0 0 0 0 0\n"
	"cpu0 100 0 100 1000 0 0 0 0 0 0\n"
	"ctxt 123456\n"
	"btime 1700000000\n"
	"processes 4321\n";

static void make_tree(struct tree *t, const char *limits, int nfds)
{
	char fd_dir[128];

	snprintf(t->root, sizeof t->root, "/tmp/ringside-proc-XXXXXX");
	assert_non_null(mkdtemp(t->root));
	snprintf(t->self, sizeof t->self, "%s/4242", t->root);
	assert_int_equal(mkdir(t->self, 0700), 0);
	snprintf(fd_dir, sizeof fd_dir, "%s/fd", t->self);
	assert_int_equal(mkdir(fd_dir, 0700), 0);
	put_file(t->root, "stat", root_stat);
	put_file(t->self, "status", status_text);
	if (limits)
		put_file(t->self, "limits", limits);
	put_file(t->self, "stat", stat_text);
	for (int i = 0; i < nfds; i++) {
		char name[16];

		snprintf(name, sizeof name, "%d", i);
		put_file(fd_dir, name, "");
	}
}

static void rm_tree(struct tree *t)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->root);
	assert_int_equal(system(cmd), 0);
}

static double tck(void)
{
	return (double)sysconf(_SC_CLK_TCK);
}

static void fake_tree_every_field(void **state)
{
	(void)state;
	struct tree t;
	struct process_stats s;

	make_tree(&t, limits_1024, 7);
	memset(&s, 0xa5, sizeof s);
	assert_int_equal(process_stats_read(&s, t.root, t.self), 0);
	assert_int_equal(s.resident_bytes, 5120ull * 1024);
	assert_int_equal(s.virtual_bytes, 204800ull * 1024);
	assert_int_equal(s.heap_bytes, 30720ull * 1024);
	assert_int_equal(s.max_fds, 1024);
	/* Our directory descriptor is not in a fake fd/: all 7 count. */
	assert_int_equal(s.open_fds, 7);
	assert_true(s.cpu_user_seconds == 250 / tck());
	assert_true(s.cpu_system_seconds == 125 / tck());
	/* The fraction of the tick count is kept: 12345 / 100 = 123.45 s. */
	assert_true(s.start_time_seconds == 1700000000.0 + 12345 / tck());
	rm_tree(&t);
}

static void unlimited_open_files_is_uint64_max(void **state)
{
	(void)state;
	struct tree t;
	struct process_stats s;

	make_tree(&t, limits_unlimited, 0);
	assert_int_equal(process_stats_read(&s, t.root, t.self), 0);
	assert_true(s.max_fds == UINT64_MAX);
	assert_int_equal(s.open_fds, 0);
	rm_tree(&t);
}

static void missing_file_reports_error_and_reads_the_rest(void **state)
{
	(void)state;
	struct tree t;
	struct process_stats s;

	make_tree(&t, NULL, 3);
	assert_int_equal(process_stats_read(&s, t.root, t.self), -ENOENT);
	assert_int_equal(s.max_fds, 0);
	assert_int_equal(s.resident_bytes, 5120ull * 1024);
	assert_int_equal(s.open_fds, 3);
	assert_true(s.start_time_seconds > 1700000000.0);
	rm_tree(&t);

	assert_int_equal(process_stats_read(&s, "/nonexistent", "/nonexistent/1"), -ENOENT);
	assert_int_equal(s.resident_bytes, 0);
	assert_int_equal(s.open_fds, 0);
}

/* More entries than one 16 KiB getdents64 call returns. */
static void thousands_of_descriptors_are_all_counted(void **state)
{
	(void)state;
	struct tree t;
	struct process_stats s;

	make_tree(&t, limits_1024, 3000);
	assert_int_equal(process_stats_read(&s, t.root, t.self), 0);
	assert_int_equal(s.open_fds, 3000);
	rm_tree(&t);
}

/*
 * A line longer than the 4 KiB read buffer (the "intr" line of a large
 * machine) comes before btime; the part of it past the first buffer
 * starts with "btime 1", which must not be taken for a line.
 */
static void long_lines_are_skipped_whole(void **state)
{
	(void)state;
	static char big[16384];
	struct tree t;
	struct process_stats s;

	make_tree(&t, limits_1024, 0);
	/* Wherever the reader's first buffer ends, some pad puts a "btime 1"
	 * right after it. */
	for (size_t pad = 4080; pad < 4120; pad++) {
		size_t n = (size_t)snprintf(big, sizeof big, "cpu  1 2 3\nintr ");

		while (n < pad)
			big[n++] = '7';
		for (int i = 0; i < 8; i++)
			n += (size_t)snprintf(big + n, sizeof big - n, "btime 1 ");
		snprintf(big + n, sizeof big - n, "\nbtime 1700000000\n");
		put_file(t.root, "stat", big);
		assert_int_equal(process_stats_read(&s, t.root, t.self), 0);
		if (s.start_time_seconds != 1700000000.0 + 12345 / tck())
			fail_msg("pad %zu: start time %f", pad, s.start_time_seconds);
	}
	rm_tree(&t);
}

static void malformed_stat_is_einval(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"4242 no parenthesis S 1 2 3\n",
		"4242 (short) S 1 4242\n",
		"4242 (x) S 1 4242 4242 0 -1 4194560 1500 0 3 0 abc 125\n",
		"",
	};
	struct tree t;
	struct process_stats s;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r;

		make_tree(&t, limits_1024, 1);
		put_file(t.self, "stat", bad[i]);
		r = process_stats_read(&s, t.root, t.self);
		assert_true(r == -EINVAL || r == -ENODATA);
		assert_true(s.start_time_seconds == 0);
		assert_true(s.cpu_user_seconds == 0);
		assert_int_equal(s.resident_bytes, 5120ull * 1024); /* the rest is read */
		rm_tree(&t);
	}
}

static uint64_t count_dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	uint64_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void real_proc_self_is_plausible(void **state)
{
	(void)state;
	struct process_stats s;
	struct rlimit rl;
	struct timespec cpu, rt;
	double now;
	uint64_t direct;

	assert_int_equal(process_stats_read(&s, "/proc", "/proc/self"), 0);
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &rt), 0);
	now = (double)rt.tv_sec + (double)rt.tv_nsec / 1e9;
	/* readdir's DIR holds one descriptor of its own: not ours to count. */
	direct = count_dir_entries("/proc/self/fd") - 1;

	assert_true(s.resident_bytes > 0);
	assert_true(s.virtual_bytes >= s.resident_bytes);
	assert_true(s.heap_bytes > 0);
	assert_true(s.open_fds >= 3);
	assert_int_equal(s.open_fds, direct);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(s.max_fds == (rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur));
	/* Started within the last hour, not in the future (btime and the
	 * tick count both round down). */
	assert_true(s.start_time_seconds <= now);
	assert_true(s.start_time_seconds > now - 3600);
	assert_int_equal(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu), 0);
	assert_true(s.cpu_user_seconds >= 0 && s.cpu_system_seconds >= 0);
	assert_true(s.cpu_user_seconds + s.cpu_system_seconds <=
		    (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9 + 0.02);
}

static void real_open_fds_follow_dup_and_close(void **state)
{
	(void)state;
	struct process_stats a, b;
	int fds[100];

	assert_int_equal(process_stats_read(&a, "/proc", "/proc/self"), 0);
	for (int i = 0; i < 100; i++) {
		fds[i] = dup(0);
		assert_true(fds[i] >= 0);
	}
	assert_int_equal(process_stats_read(&b, "/proc", "/proc/self"), 0);
	assert_int_equal(b.open_fds, a.open_fds + 100);
	for (int i = 0; i < 100; i++)
		close(fds[i]);
	assert_int_equal(process_stats_read(&b, "/proc", "/proc/self"), 0);
	assert_int_equal(b.open_fds, a.open_fds);
}

/* A path for proc_self that is not "/proc/self" reads CPU from its stat. */
static void cpu_from_stat_when_not_self(void **state)
{
	(void)state;
	char self[64];
	struct process_stats s;

	snprintf(self, sizeof self, "/proc/%d", (int)getpid());
	assert_int_equal(process_stats_read(&s, "/proc", self), 0);
	/* Whole ticks: stat's resolution, not getrusage's microseconds. */
	double ticks = s.cpu_user_seconds * tck() + s.cpu_system_seconds * tck();
	double whole = (double)(uint64_t)(ticks + 0.5);
	assert_true(ticks - whole < 1e-6 && whole - ticks < 1e-6);
	assert_true(s.open_fds >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fake_tree_every_field),
		cmocka_unit_test(unlimited_open_files_is_uint64_max),
		cmocka_unit_test(missing_file_reports_error_and_reads_the_rest),
		cmocka_unit_test(thousands_of_descriptors_are_all_counted),
		cmocka_unit_test(long_lines_are_skipped_whole),
		cmocka_unit_test(malformed_stat_is_einval),
		cmocka_unit_test(real_proc_self_is_plausible),
		cmocka_unit_test(real_open_fds_follow_dup_and_close),
		cmocka_unit_test(cpu_from_stat_when_not_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
