/*
 * Failing a black-box test with diagnostics, and the frame of a test
 * program: CHECK and H_FAIL print the message, the test line that called
 * the helper and the stderr tail of every process the test started, then
 * fail the cmocka test; h_run_group runs a group (RINGSIDE_BB_FILTER
 * picks a subset); h_init and h_need_fds prepare the process.
 *
 * cmocka wants <setjmp.h>, <stdarg.h> and <stddef.h> before <cmocka.h>:
 * this header includes all four in that order.
 */
#ifndef RINGSIDE_TESTS_BB_CHECK_H
#define RINGSIDE_TESTS_BB_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/*
 * Prints the formatted message, then the last lines of stderr of every
 * server this process still runs (or ran and kept logs for), then fails the
 * current cmocka test. Never returns.
 */
void h_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define H_FAIL(...) h_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Records the test's line that called a harness helper, so a failure
 * inside the helper also names it ("called from test_x.c:42").
 * h_site(NULL, 0) forgets it. */
void h_site(const char *file, int line);

/* Fails the test with the message unless cond holds. */
#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond))                                               \
			h_fail(__FILE__, __LINE__, "check `" #cond "` failed: " \
			       __VA_ARGS__);                               \
	} while (0)

/* snprintf into a malloc'd string; fails the test on allocation failure. */
char *h_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs the cmocka group, honouring RINGSIDE_BB_FILTER (a cmocka test-name
 * pattern) to run a subset. */
int h_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
		CMFixtureFunction setup, CMFixtureFunction teardown);

#define H_RUN_GROUP(name, tests, setup, teardown)                         \
	h_run_group(name, tests, sizeof(tests) / sizeof((tests)[0]), setup, \
		    teardown)

/* Call first in main(): ignores SIGPIPE, line-buffers stdout. */
void h_init(void);

/*
 * Call in main(), before any server starts (it inherits the limit): makes
 * the soft RLIMIT_NOFILE at least need, raising it to the hard limit (to
 * need if that is unlimited). If the hard limit is below need, prints why
 * and exits 77 (skipped); if getrlimit/setrlimit fails, exits 1.
 */
void h_need_fds(unsigned need);

#endif
