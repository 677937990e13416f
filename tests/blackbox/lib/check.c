/*
 * Failing a test with diagnostics, running a group, preparing the test
 * process: see check.h.
 */
#include "check.h"
#include "harness_int.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static bool any_failure;
static const char *site_file;
static int site_line;

bool h_failed(void)
{
	return any_failure;
}

void h_site(const char *file, int line)
{
	site_file = file;
	site_line = line;
}

void h_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;

	any_failure = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (site_file && strcmp(site_file, file) != 0)
		fprintf(stderr, "%s:%d: (in a helper called from %s:%d) %s\n", file,
			line, site_file, site_line, msg);
	else
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	h_logs_dump();
	fflush(stderr);
	_fail(file, line);
	abort(); /* _fail longjmps out of the test; never here */
}

char *h_strf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);

	va_end(ap);
	CHECK(n >= 0, "vsnprintf");
	char *s = malloc((size_t)n + 1);

	CHECK(s != NULL, "out of memory");
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

int h_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
		CMFixtureFunction setup, CMFixtureFunction teardown)
{
	const char *filter = getenv("RINGSIDE_BB_FILTER");

	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return _cmocka_run_group_tests(name, tests, n, setup, teardown);
}

void h_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

void h_need_fds(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("getrlimit");
		exit(1);
	}
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		printf("SKIP: RLIMIT_NOFILE hard limit is %llu, below the %u file "
		       "descriptors this test needs (raise it: ulimit -Hn)\n",
		       (unsigned long long)rl.rlim_max, need);
		exit(77);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			perror("setrlimit");
			exit(1);
		}
	}
}
