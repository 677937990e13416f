/*
 * Child processes a test starts (the server, promtool, prometheus): each
 * one's output is captured in files, it dies with the test process, and it
 * is registered so that a failed check prints its stderr tail and
 * h_test_teardown kills what a failed test left running. Also running a
 * program to its end under a deadline.
 *
 * The record of a process is struct server, whatever the program: the
 * server_* calls below work on any of them.
 */
#ifndef RINGSIDE_TESTS_BB_PROC_H
#define RINGSIDE_TESTS_BB_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_MAX_ARGS 64

struct server {
	pid_t pid;          /* 0 once reaped */
	uint16_t port;      /* the port it was told to listen on */
	char addr[32];      /* "127.0.0.1:PORT" (a label for other programs) */
	char stderr_path[192];
	char stdout_path[192];
	bool exited;        /* reaped by server_wait_exit / server_stop */
	int exit_code;      /* WEXITSTATUS, or 128 + signal */
	bool tls;           /* serves HTTPS with the harness's certificate
			     * (its TLS mode, tls_client.h) */
};

/* Sends sig to the process. */
void server_signal(const struct server *s, int sig);

/*
 * Waits up to timeout_ms for the process to exit. Returns true and fills
 * s->exit_code if it did (the process is reaped), false otherwise.
 */
bool server_wait_exit(struct server *s, int timeout_ms);

/*
 * SIGTERM, then waits up to 10 s; after that SIGKILLs and fails the test.
 * Returns the exit status (WEXITSTATUS, or 128 + signal number). Removes the
 * log files unless a check failed in this process or RINGSIDE_BB_KEEP is set.
 * Harmless on a process already reaped (returns its status).
 */
int server_stop(struct server *s);

/* SIGKILL + reap, no checks; for cleanup after a failure. */
void server_kill(struct server *s);

/*
 * Reads the process's captured stderr (up to cap-1 bytes, NUL-terminated).
 * Returns the number of bytes read.
 */
size_t server_read_stderr(const struct server *s, char *buf, size_t cap);

struct run_result {
	int exit_code;      /* WEXITSTATUS, 128 + signal, or -1 on timeout */
	char out[16384];    /* stdout, NUL-terminated (truncated) */
	char err[16384];    /* stderr, NUL-terminated (truncated) */
};

/* A malloc'd, uninitialised run_result (too big for the stack); the
 * caller frees it. Fails the test if out of memory. */
struct run_result *run_new(void);

/*
 * Runs argv[0] (a path) with argv, stdin fed from input[0..input_len)
 * (through a file: no pipe to keep fed), the inherited environment minus
 * RINGSIDE_*, and waits up to timeout_ms (then SIGKILL, exit_code -1).
 * Fails the test if argv[0] is not executable.
 */
void h_run_prog(const char *const argv[], const void *input, size_t input_len,
		int timeout_ms, struct run_result *r);

/*
 * Starts a long-running program (argv[0] a path) with its output captured
 * like a server's: registered, so a failed check prints its stderr tail
 * under `label` and h_test_teardown kills it. s->port is 0; stop it with
 * server_stop (SIGTERM, 10 s) or server_kill.
 */
void h_proc_start(struct server *s, const char *const argv[], const char *label);

/*
 * A directory of the test's own, <log directory>/<name> (made now; name
 * unique in the process): removed at exit with the server logs unless a
 * check failed or RINGSIDE_BB_KEEP is set. Fails the test if it cannot
 * be made.
 */
const char *h_scratch_dir(const char *name);

#endif
