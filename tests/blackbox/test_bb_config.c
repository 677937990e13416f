/*
 * Black-box: command line, environment and logs. --help / --version,
 * the `serve` subcommand, exit 2 naming the culprit for bad flags and
 * variables, RINGSIDE_* variables and their precedence, size and duration
 * syntax (checked by behaviour, not just acceptance), --log-level, and the
 * logfmt start-up line.
 */
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- --help, --version, serve ---- */

static void help_prints_usage_listing_every_flag_and_exits_0(void **state)
{
	static const char *const args[] = { "--help", NULL };
	static const char *const flags[] = {
		"--listen", "--workers", "--max-connections", "--max-header-bytes",
		"--max-body-bytes", "--header-timeout", "--body-timeout",
		"--keepalive-timeout", "--shutdown-timeout", "--log-level",
		"--help", "--version",
	};
	struct run_result *r = run_new();

	(void)state;
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 0, "--help: exit %d, stderr: %.500s", r->exit_code,
	      r->err);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		CHECK(strstr(r->out, flags[i]) != NULL,
		      "--help output (stdout) does not mention %s:\n%.2000s", flags[i],
		      r->out);
	free(r);
}

static void version_prints_ringside_and_a_version_and_exits_0(void **state)
{
	static const char *const args[] = { "--version", NULL };
	struct run_result *r = run_new();

	(void)state;
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 0, "--version: exit %d, stderr: %.500s",
	      r->exit_code, r->err);
	CHECK(strncmp(r->out, "ringside ", 9) == 0 && r->out[9] &&
	      !isspace((unsigned char)r->out[9]),
	      "--version: expected \"ringside <version>\" on stdout, got \"%.200s\"",
	      r->out);
	free(r);
}

static void serve_subcommand_serves_like_no_subcommand(void **state)
{
	static const char *const pre[] = { "serve", NULL };
	struct server_opts o = { .pre_args = pre };
	struct server s;

	(void)state;
	server_start_opts(&s, &o);
	expect_health_on_port(s.port);
	int code = server_stop(&s);

	CHECK(code == 0, "`ringside serve`: exit %d after SIGTERM", code);
}

/* ---- Invalid flags and variables: exit 2, culprit named on stderr ---- */

struct bad_arg {
	const char *flag;    /* also what stderr must contain */
	const char *value;   /* NULL: flag alone */
	bool listen_too;     /* also pass a valid --listen */
};

#define BAD_ARGS(X)                                               \
	X(unknown_flag_bogus_exits_2, "--bogus", NULL, true)      \
	X(workers_zero_exits_2, "--workers", "0", true)           \
	X(workers_abc_exits_2, "--workers", "abc", true)          \
	X(max_body_bytes_negative_exits_2, "--max-body-bytes", "-1", true) \
	X(header_timeout_xyz_exits_2, "--header-timeout", "xyz", true) \
	X(listen_nonsense_exits_2, "--listen", "nonsense", false) \
	X(log_level_unknown_exits_2, "--log-level", "loud", true) \
	X(cpu_affinity_unknown_exits_2, "--cpu-affinity", "pinned", true) \
	/* Key files: the README promised exit 2 naming the flag; it was 1. */ \
	X(missing_secret_file_exits_2, "--jwt-secret-file", "/nonexistent/secret", true) \
	X(short_secret_file_exits_2, "--jwt-secret-file", "tests/auth/test-only-short.secret", true) \
	X(public_key_that_is_not_a_key_exits_2, "--jwt-public-key-file", \
	  "tests/auth/test-only-hs256.secret", true) \
	X(weak_rsa_public_key_exits_2, "--jwt-public-key-file", \
	  "tests/auth/test-only-rsa1024-public.pem", true) \
	X(lone_private_key_exits_2, "--jwt-private-key-file", \
	  "tests/auth/test-only-es256-private.pem", true)

#define X_CASE(id, flag, value, listen)                                \
	static const struct bad_arg arg_##id = { flag, value, listen };
BAD_ARGS(X_CASE)
#undef X_CASE

/* Rotation: a bad previous key is a bad flag too, named, whether given as
 * a flag or as its variable; a good list of previous keys starts. */
static void bad_previous_key_exits_2_naming_its_flag(void **state)
{
	(void)state;
	const char *const args[] = {"--jwt-secret-file", "tests/auth/test-only-hs256.secret",
				    "--jwt-previous-public-key-file",
				    "tests/auth/test-only-es256-public.pem,"
				    "tests/auth/test-only-rsa1024-public.pem",
				    NULL};
	static const char *const env[] = {
		"RINGSIDE_JWT_PREVIOUS_SECRET_FILE=tests/auth/test-only-short.secret", NULL};
	const char *const base[] = {"--jwt-secret-file", "tests/auth/test-only-hs256.secret",
				    NULL};
	struct run_result *r = run_new();
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 2 && strstr(r->err, "--jwt-previous-public-key-file") &&
		      strstr(r->err, "1024 bits"),
	      "exit %d, stderr: %.500s", r->exit_code, r->err);
	free(r);
	r = run_new();
	h_run(base, env, 5000, r);
	CHECK(r->exit_code == 2 && strstr(r->err, "--jwt-previous-secret-file"),
	      "exit %d, stderr: %.500s", r->exit_code, r->err);
	free(r);
}

/* Both key kinds at once: exit 2 naming both flags. */
static void secret_and_public_key_together_exit_2_naming_both(void **state)
{
	(void)state;
	const char *const args[] = {"--jwt-secret-file", "tests/auth/test-only-hs256.secret",
				    "--jwt-public-key-file", "tests/auth/test-only-es256-public.pem",
				    NULL};
	struct run_result *r = run_new();
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 2 && strstr(r->err, "--jwt-secret-file") &&
		      strstr(r->err, "--jwt-public-key-file"),
	      "exit %d, stderr: %.500s", r->exit_code, r->err);
	free(r);
}

/* `make run ARGS="--jwt-issuer x"` turned off the automatic key: any
 * --jwt- flag counted as a key. Only key flags do (make -n prints the
 * command it would run). */
static void make_run_keeps_its_key_unless_a_key_flag_is_given(void **state)
{
	(void)state;
	static const struct {
		const char *args;
		bool secret;
	} cases[] = {
		{"ARGS=--jwt-issuer x", true},
		{"ARGS=--jwt-audience y --workers 1", true},
		{"ARGS=--jwt-secret-file /k", false},
		{"ARGS=--jwt-public-key-file=/k", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *const argv[] = {"/usr/bin/make", "-n", "-s", "run", cases[i].args, NULL};
		struct run_result *r = run_new();
		h_run_prog(argv, NULL, 0, 60000, r);
		const char *exec = strstr(r->out, "exec ");
		CHECK(r->exit_code == 0 && exec, "make -n run %s: exit %d: %.500s%.500s",
		      cases[i].args, r->exit_code, r->out, r->err);
		bool secret = strstr(exec, "--jwt-private-key-file var/jwt-private.pem") != NULL;
		CHECK(secret == cases[i].secret, "make run %s: %s", cases[i].args, exec);
		free(r);
	}
}

static void run_bad_arg(void **state)
{
	const struct bad_arg *ba = *state;
	const char *args[8];
	size_t n = 0;
	char addr[32];
	struct run_result *r = run_new();

	if (ba->listen_too) {
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", h_free_port());
		args[n++] = "--listen";
		args[n++] = addr;
	}
	args[n++] = ba->flag;
	if (ba->value)
		args[n++] = ba->value;
	args[n] = NULL;
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 2, "%s %s: expected exit 2, got %d%s; stderr: %.500s",
	      ba->flag, ba->value ? ba->value : "", r->exit_code,
	      r->exit_code == -1 ? " (still running after 5 s)" : "", r->err);
	CHECK(strstr(r->err, ba->flag) != NULL,
	      "%s %s: stderr does not name %s: \"%.500s\"", ba->flag,
	      ba->value ? ba->value : "", ba->flag, r->err);
	free(r);
}

static void env_workers_abc_exits_2_naming_the_variable(void **state)
{
	char addr[32];
	const char *args[] = { "--listen", addr, NULL };
	static const char *const env[] = { "RINGSIDE_WORKERS=abc", NULL };
	struct run_result *r = run_new();

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", h_free_port());
	h_run(args, env, 5000, r);
	CHECK(r->exit_code == 2, "RINGSIDE_WORKERS=abc: expected exit 2, got %d; "
	      "stderr: %.500s", r->exit_code, r->err);
	CHECK(strstr(r->err, "RINGSIDE_WORKERS") != NULL,
	      "RINGSIDE_WORKERS=abc: stderr does not name RINGSIDE_WORKERS: "
	      "\"%.500s\"", r->err);
	free(r);
}

/* ---- Environment ---- */

static void env_listen_without_flag_serves_on_that_port(void **state)
{
	struct server s;
	char var[64];
	const char *env[] = { var, NULL };
	uint16_t port = h_free_port();
	struct server_opts o = { .env = env, .no_listen = true, .port = port };

	(void)state;
	snprintf(var, sizeof(var), "RINGSIDE_LISTEN=127.0.0.1:%u", port);
	server_start_opts(&s, &o); /* waits for GET /health on that port */
	int code = server_stop(&s);

	CHECK(code == 0, "exit %d after SIGTERM", code);
}

static void listen_flag_overrides_env_listen(void **state)
{
	struct server s;
	char var[64];
	const char *env[] = { var, NULL };
	uint16_t env_port = h_free_port();
	struct server_opts o = { .env = env };

	(void)state;
	snprintf(var, sizeof(var), "RINGSIDE_LISTEN=127.0.0.1:%u", env_port);
	server_start_opts(&s, &o); /* --listen 127.0.0.1:<another port> */
	CHECK(s.port != env_port, "picked the same port twice");
	int fd = h_try_connect(env_port);

	if (fd >= 0)
		close(fd);
	CHECK(fd == -ECONNREFUSED,
	      "with --listen set, the server also listens on RINGSIDE_LISTEN's port");
	int code = server_stop(&s);

	CHECK(code == 0, "exit %d after SIGTERM", code);
}

/* ---- Sizes: k/K/KiB/m/M/MiB, checked at the 413 boundary ---- */

struct size_case {
	const char *text;
	uint64_t bytes;
};

#define SIZE_CASES(X)                         \
	X(max_body_bytes_plain_number, "1500", 1500)         \
	X(max_body_bytes_1k_is_1024, "1k", 1024)             \
	X(max_body_bytes_1K_is_1024, "1K", 1024)             \
	X(max_body_bytes_1KiB_is_1024, "1KiB", 1024)         \
	X(max_body_bytes_1m_is_1048576, "1m", 1048576)       \
	X(max_body_bytes_1M_is_1048576, "1M", 1048576)       \
	X(max_body_bytes_1MiB_is_1048576, "1MiB", 1048576)   \
	X(max_body_bytes_2MiB_is_2097152, "2MiB", 2097152)

#define X_CASE(id, text, bytes) \
	static const struct size_case size_##id = { text, bytes };
SIZE_CASES(X_CASE)
#undef X_CASE

static void run_size_case(void **state)
{
	const struct size_case *sc = *state;
	const char *args[] = { "--max-body-bytes", sc->text, NULL };
	struct server s;
	struct http_response *r = resp_new();
	char *head;

	server_start(&s, args);

	/* One byte over: 413 from the head alone. */
	struct conn *c = conn_open(s.port);

	head = h_strf("POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: %llu\r\n\r\n",
		      (unsigned long long)sc->bytes + 1);
	conn_send_str(c, head);
	free(head);
	expect_response(c, r, false);
	CHECK(r->status == 413,
	      "--max-body-bytes %s: a declared body of %llu bytes should be 413, "
	      "got \"%s\"", sc->text, (unsigned long long)sc->bytes + 1,
	      r->raw_status_line);
	conn_close(c);

	/* Exactly the limit: accepted (then 405 for /health). */
	char *body = malloc(sc->bytes);

	CHECK(body != NULL, "out of memory");
	memset(body, 'z', sc->bytes);
	c = conn_open(s.port);
	head = h_strf("POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: %llu\r\n\r\n",
		      (unsigned long long)sc->bytes);
	conn_send_str(c, head);
	free(head);
	int e = h_send_all(c->fd, body, sc->bytes);

	expect_response(c, r, false);
	CHECK(r->status == 405,
	      "--max-body-bytes %s: a body of exactly %llu bytes should be "
	      "accepted (405 on /health), got \"%s\" (send: %s)", sc->text,
	      (unsigned long long)sc->bytes, r->raw_status_line,
	      e ? strerror(-e) : "ok");
	conn_close(c);
	free(body);
	free(r);
	int code = server_stop(&s);

	CHECK(code == 0, "exit %d after SIGTERM", code);
}

/* ---- Durations: 500ms, 10s, 2m, plain seconds ---- */

/* Returns how long an idle keep-alive connection lived (ms), or -1 if it
 * was still open after max_ms. */
static int64_t idle_lifetime(uint16_t port, int max_ms)
{
	struct conn *c = conn_open(port);
	struct http_response *r = resp_new();

	conn_send_str(c, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_response(c, r, false);
	expect_health_ok(r);
	free(r);

	int64_t t0 = h_now_ms();
	size_t got = 0;
	enum h_peer p = h_wait_close(c->fd, max_ms, &got);
	int64_t took = h_now_ms() - t0;

	conn_close(c);
	CHECK(got == 0, "idle keep-alive connection received %zu bytes", got);
	return (p == H_PEER_EOF || p == H_PEER_RESET) ? took : -1;
}

static void keepalive_timeout_500ms_closes_idle_connection_in_half_a_second(void **state)
{
	static const char *const args[] = { "--keepalive-timeout", "500ms", NULL };
	struct server s;

	(void)state;
	server_start(&s, args);
	int64_t t = idle_lifetime(s.port, 3000);

	CHECK(t >= 300 && t <= 2500,
	      "--keepalive-timeout 500ms: idle connection lived %lld ms "
	      "(-1: still open after 3 s), expected 300..2500", (long long)t);
	CHECK(server_stop(&s) == 0, "exit status after SIGTERM");
}

static void keepalive_timeout_plain_number_is_seconds(void **state)
{
	static const char *const args[] = { "--keepalive-timeout", "1", NULL };
	struct server s;

	(void)state;
	server_start(&s, args);
	int64_t t = idle_lifetime(s.port, 3500);

	CHECK(t >= 800 && t <= 3000,
	      "--keepalive-timeout 1: idle connection lived %lld ms "
	      "(-1: still open after 3.5 s), expected 800..3000 (1 s)",
	      (long long)t);
	CHECK(server_stop(&s) == 0, "exit status after SIGTERM");
}

static void long_timeouts_10s_and_2m_keep_connections_open(void **state)
{
	static const char *const args[] = { "--header-timeout", "10s",
					    "--body-timeout", "10s",
					    "--keepalive-timeout", "2m", NULL };
	struct server s;

	(void)state;
	server_start(&s, args);

	/* A stalled body (body timeout) and a half head (header timeout)
	 * run concurrently with the idle keep-alive check. */
	struct conn *body = conn_open(s.port);
	struct conn *head = conn_open(s.port);

	conn_send_str(body, "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01");
	conn_send_str(head, "GET /health HTTP/1.1\r\nHo");
	int64_t t = idle_lifetime(s.port, 2500);

	CHECK(t == -1, "--keepalive-timeout 2m: idle connection closed after "
	      "%lld ms", (long long)t);
	expect_conn_open(body, 0);
	expect_conn_open(head, 0);
	conn_close(body);
	conn_close(head);
	CHECK(server_stop(&s) == 0, "exit status after SIGTERM");
}

/* ---- Logging ---- */

static bool line_has(const char *line, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; i + k <= n; i++)
		if (strncasecmp(line + i, needle, k) == 0)
			return true;
	return false;
}

/* Finds the start-up line: level=info, a msg mentioning listening, and
 * addr=<the address> (bare or quoted). */
static bool has_listen_line(const char *log, const char *addr)
{
	char bare[64], quoted[64];

	snprintf(bare, sizeof(bare), "addr=%s", addr);
	snprintf(quoted, sizeof(quoted), "addr=\"%s\"", addr);
	for (const char *l = log; *l;) {
		size_t n = strcspn(l, "\n");

		if (line_has(l, n, "level=info") && line_has(l, n, "listen")) {
			for (size_t i = 0; i < n; i++) {
				size_t bl = strlen(bare);

				if (strncmp(l + i, bare, bl) == 0 &&
				    (i + bl == n || l[i + bl] == ' '))
					return true;
				if (strncmp(l + i, quoted, strlen(quoted)) == 0)
					return true;
			}
		}
		l += n;
		if (*l)
			l++;
	}
	return false;
}

static void startup_logs_logfmt_line_with_listen_address(void **state)
{
	struct server s;
	char *log = malloc(65536);

	(void)state;
	CHECK(log != NULL, "out of memory");
	server_start(&s, NULL);
	bool found = false;

	for (int i = 0; i < 50 && !found; i++) {
		server_read_stderr(&s, log, 65536);
		found = has_listen_line(log, s.addr);
		if (!found)
			h_sleep_ms(20);
	}
	CHECK(found, "no info line saying it listens with addr=%s in stderr:\n%.2000s",
	      s.addr, log);
	int lines = 0;

	for (const char *l = log; *l;) {
		size_t n = strcspn(l, "\n");

		if (n) {
			lines++;
			CHECK(line_has(l, n, "level=") && line_has(l, n, "msg="),
			      "stderr line %d is not logfmt with level= and msg=: "
			      "\"%.*s\"", lines, (int)(n < 300 ? n : 300), l);
		}
		l += n;
		if (*l)
			l++;
	}
	CHECK(server_stop(&s) == 0, "exit status after SIGTERM");
	free(log);
}

static void log_level_error_hides_info_lines(void **state)
{
	static const char *const args[] = { "--log-level", "error", NULL };
	struct server s;
	char *log = malloc(65536);

	(void)state;
	CHECK(log != NULL, "out of memory");
	server_start(&s, args);
	expect_health_on_port(s.port);
	h_sleep_ms(50);
	server_read_stderr(&s, log, 65536);
	CHECK(strstr(log, "level=info") == NULL && strstr(log, "level=debug") == NULL,
	      "--log-level error still logs info/debug lines:\n%.1000s", log);
	CHECK(server_stop(&s) == 0, "exit status after SIGTERM");
	free(log);
}

static void log_levels_warn_info_debug_are_accepted(void **state)
{
	static const char *const levels[] = { "warn", "info", "debug" };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		const char *args[] = { "--log-level", levels[i], NULL };
		struct server s;

		server_start(&s, args);
		expect_health_on_port(s.port);
		int code = server_stop(&s);

		CHECK(code == 0, "--log-level %s: exit %d after SIGTERM", levels[i],
		      code);
	}
}

int main(void)
{
#define X_BAD(id, flag, value, listen)                                      \
	{ .name = #id, .test_func = run_bad_arg,                            \
	  .teardown_func = h_test_teardown, .initial_state = (void *)&arg_##id },
#define X_SIZE(id, text, bytes)                                             \
	{ .name = #id, .test_func = run_size_case,                          \
	  .teardown_func = h_test_teardown, .initial_state = (void *)&size_##id },
	const struct CMUnitTest tests[] = {
		BB_TEST(help_prints_usage_listing_every_flag_and_exits_0),
		BB_TEST(version_prints_ringside_and_a_version_and_exits_0),
		BB_TEST(serve_subcommand_serves_like_no_subcommand),
		BAD_ARGS(X_BAD)
		BB_TEST(secret_and_public_key_together_exit_2_naming_both),
		BB_TEST(bad_previous_key_exits_2_naming_its_flag),
		BB_TEST(make_run_keeps_its_key_unless_a_key_flag_is_given),
		BB_TEST(env_workers_abc_exits_2_naming_the_variable),
		BB_TEST(env_listen_without_flag_serves_on_that_port),
		BB_TEST(listen_flag_overrides_env_listen),
		SIZE_CASES(X_SIZE)
		BB_TEST(keepalive_timeout_500ms_closes_idle_connection_in_half_a_second),
		BB_TEST(keepalive_timeout_plain_number_is_seconds),
		BB_TEST(long_timeouts_10s_and_2m_keep_connections_open),
		BB_TEST(startup_logs_logfmt_line_with_listen_address),
		BB_TEST(log_level_error_hides_info_lines),
		BB_TEST(log_levels_warn_info_debug_are_accepted),
	};
#undef X_BAD
#undef X_SIZE

	h_init();
	return H_RUN_GROUP("blackbox_config", tests, NULL, NULL);
}
