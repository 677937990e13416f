/*
 * What the harness's files share with one another and not with the tests.
 */
#ifndef RINGSIDE_TESTS_BB_HARNESS_INT_H
#define RINGSIDE_TESTS_BB_HARNESS_INT_H

#include <stdbool.h>

#include "proc.h"

/* check.c: true once a check failed in this process (logs are then kept). */
bool h_failed(void);

/* proc.c: prints the stderr tail of every registered process (h_fail). */
void h_logs_dump(void);

/* proc.c: this process's log directory (made on first use). */
const char *h_log_dir(void);

/* Where a child's stdin, stdout and stderr go. */
struct h_logs {
	char in[192];
	char out[192];
	char err[192];
};

/* proc.c: names the next set of capture files, <kind>-N.stdin, .stdout and
 * .stderr, in this process's log directory (made on first use, removed at
 * exit unless a check failed or RINGSIDE_BB_KEEP is set). */
void h_logs_next(struct h_logs *l, const char *kind);

/*
 * proc.c: spawns argv with env ("NAME=value", NULL-terminated, may be
 * NULL; every inherited RINGSIDE_* variable removed), stdin from
 * /dev/null, stdout and stderr captured in the next <kind> log files
 * (their paths set in s), and registers s. The caller sets s->addr, the
 * name diagnostics give it, first.
 */
void h_proc_spawn(struct server *s, const char *const argv[],
		  const char *const env[], const char *kind);

/* proc.c: spawns argv (env as for h_proc_spawn, stdin from l->in when
 * with_stdin), waits up to timeout_ms (then SIGKILL, exit_code -1) and
 * fills r from the exit status and the captured output. */
void h_run_to_end(const char *const argv[], const char *const env[],
		  const struct h_logs *l, bool with_stdin, int timeout_ms,
		  struct run_result *r);

/* proc.c: kills and reaps every registered process but keep, and forgets
 * them (a test that failed half-way leaves its own running). */
void h_proc_reap_strays(const struct server *keep);

#endif
