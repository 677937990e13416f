/*
 * The server under test: $RINGSIDE_BIN (default build/ringside) started on
 * a free loopback port and waited for until GET /health answers, the
 * cmocka fixtures that give a group one server, and running the binary as
 * a command (configuration tests). Stopping and signalling: proc.h.
 */
#ifndef RINGSIDE_TESTS_BB_SERVER_H
#define RINGSIDE_TESTS_BB_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "proc.h"
#include "tls_client.h"

struct server_opts {
	/* Arguments placed right after argv[0], before --listen (e.g. "serve").
	 * NULL-terminated; may be NULL. */
	const char *const *pre_args;
	/* Arguments after `--listen ADDR`. NULL-terminated; may be NULL. */
	const char *const *args;
	/* "NAME=value" strings set in the child's environment (every inherited
	 * RINGSIDE_* variable is removed first). NULL-terminated; may be NULL. */
	const char *const *env;
	/* Do not pass --listen (the address comes from the environment). */
	bool no_listen;
	/* Port to use; 0 = pick a free one. */
	uint16_t port;
	/* Do not wait for GET /health to answer. */
	bool no_wait;
	/* In the harness's TLS mode (tls_client.h), serve plain HTTP anyway
	 * (otherwise the harness adds --tls-cert and --tls-key, and
	 * --metrics-tls true if args has --metrics-listen, unless the test
	 * configures TLS itself). */
	bool no_tls;
};

/*
 * In the harness's TLS mode: a test (h_plain_only, in the test function,
 * cmocka's skip) or a whole program (h_plain_only_all, in main, exit 77)
 * that makes sense over plain HTTP only says why and is skipped. Plain
 * mode: no-ops.
 */
void h_plain_only(const char *why);
void h_plain_only_all(const char *why);

/* Path of the binary under test. */
const char *h_bin(void);

/*
 * Starts the server with `--listen 127.0.0.1:PORT` plus extra_args
 * (NULL-terminated, may be NULL) and waits until GET /health answers 200
 * (polling every 20 ms, at most 5 s). Fails the test, printing the server's
 * stderr, if it exits or does not answer in time.
 */
void server_start(struct server *s, const char *const extra_args[]);

/* Same, with every knob of struct server_opts. */
void server_start_opts(struct server *s, const struct server_opts *o);

/* The standard group fixtures: start one server with default flags in
 * *state, stop it in teardown and assert exit status 0. */
int h_group_setup(void **state);
int h_group_teardown(void **state);

/* h_group_setup with extra server arguments (for a group-specific setup
 * function). */
int h_group_setup_with(void **state, const char *const args[]);

/* h_group_setup with every knob of struct server_opts (a group whose
 * server does not answer plain HTTP says no_wait, and waits its own way). */
int h_group_setup_opts(void **state, const struct server_opts *o);

/* The server h_group_setup started (for tests whose state is their own). */
struct server *h_group_server(void);

/* The port of the group's server, from the *state h_group_setup filled. */
uint16_t port_of(void **state);

/* Per-test teardown: kills any process the test started and did not stop
 * (a failed check leaves it running). The group's server is kept. */
int h_test_teardown(void **state);

/* A test entry with h_test_teardown. */
#define BB_TEST(f) cmocka_unit_test_teardown(f, h_test_teardown)

/*
 * Runs $RINGSIDE_BIN with args (NULL-terminated, may be NULL) and env
 * ("NAME=value", NULL-terminated, may be NULL; RINGSIDE_* inherited ones
 * removed), waits up to timeout_ms (then SIGKILL, exit_code -1).
 */
void h_run(const char *const args[], const char *const env[], int timeout_ms,
	   struct run_result *r);

#endif
