/*
 * Black-box test harness: starts the real server binary ($RINGSIDE_BIN,
 * default build/ringside) on a free loopback port and talks HTTP/1.1 to it
 * over plain sockets. External programs (promtool, prometheus) only through
 * h_run_prog / h_proc_start.
 *
 * Every wait is bounded in time and every loop in count. Helpers whose name
 * starts with `expect_` or that say "fails the test" call cmocka's fail_msg()
 * with a message that includes the tail of each running server's stderr, so
 * a red test says what the user would have seen and what the server logged.
 *
 * Include after <setjmp.h>, <stdarg.h>, <stddef.h> (cmocka's rule); this
 * header includes <cmocka.h> itself in the right order.
 */
#ifndef RINGSIDE_TESTS_HARNESS_H
#define RINGSIDE_TESTS_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include <cmocka.h>

/* ---- Time ---- */

/* CLOCK_MONOTONIC in milliseconds. */
int64_t h_now_ms(void);
void h_sleep_ms(int ms);

/* CLOCK_REALTIME in Unix milliseconds, to compare with a timestamp the
 * server wrote. */
int64_t h_wall_ms(void);

/*
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" (exactly that form, UTC) to Unix ms. Returns
 * -1 if s is not in that form or a field is out of range.
 */
int64_t h_parse_iso_ms(const char *s);

/* ---- Failing with diagnostics ---- */

/*
 * Prints the formatted message, then the last lines of stderr of every
 * server this process still runs (or ran and kept logs for), then fails the
 * current cmocka test. Never returns.
 */
void h_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define H_FAIL(...) h_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Records the test's line that called a harness helper, so a failure
 * inside the helper also names it ("called from test_x.c:42"). */
void h_site(const char *file, int line);

/* Fails the test with the message unless cond holds. */
#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond))                                               \
			h_fail(__FILE__, __LINE__, "check `" #cond "` failed: " \
			       __VA_ARGS__);                               \
	} while (0)

/* ---- Server process ---- */

#define H_MAX_ARGS 64

struct server {
	pid_t pid;          /* 0 once reaped */
	uint16_t port;      /* the port it was told to listen on */
	char addr[32];      /* "127.0.0.1:PORT" */
	char stderr_path[192];
	char stdout_path[192];
	bool exited;        /* reaped by server_wait_exit / server_stop */
	int exit_code;      /* WEXITSTATUS, or 128 + signal */
};

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
};

/* Picks a free loopback TCP port (bind port 0, read it, close). */
uint16_t h_free_port(void);

/*
 * Starts the server with `--listen 127.0.0.1:PORT` plus extra_args
 * (NULL-terminated, may be NULL) and waits until GET /health answers 200
 * (polling every 20 ms, at most 5 s). Fails the test, printing the server's
 * stderr, if it exits or does not answer in time.
 */
void server_start(struct server *s, const char *const extra_args[]);

/* Same, with every knob of struct server_opts. */
void server_start_opts(struct server *s, const struct server_opts *o);

/* Sends sig to the server. */
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
 * Harmless on a server already reaped (returns its status).
 */
int server_stop(struct server *s);

/* SIGKILL + reap, no checks; for cleanup after a failure. */
void server_kill(struct server *s);

/*
 * Reads the server's captured stderr (up to cap-1 bytes, NUL-terminated).
 * Returns the number of bytes read.
 */
size_t server_read_stderr(const struct server *s, char *buf, size_t cap);

/* The standard group fixtures: start one server with default flags in
 * *state, stop it in teardown and assert exit status 0. */
int h_group_setup(void **state);
int h_group_teardown(void **state);

/* h_group_setup with extra server arguments (for a group-specific setup
 * function). */
int h_group_setup_with(void **state, const char *const args[]);

/* The server h_group_setup started (for tests whose state is their own). */
struct server *h_group_server(void);

/* The port of the group's server, from the *state h_group_setup filled. */
uint16_t port_of(void **state);

/* Per-test teardown: kills any server the test started and did not stop
 * (a failed check leaves it running). The group's server is kept. */
int h_test_teardown(void **state);

/* A test entry with h_test_teardown. */
#define BB_TEST(f) cmocka_unit_test_teardown(f, h_test_teardown)

/* ---- Running the binary as a command (configuration tests) ---- */

struct run_result {
	int exit_code;      /* WEXITSTATUS, 128 + signal, or -1 on timeout */
	char out[16384];    /* stdout, NUL-terminated (truncated) */
	char err[16384];    /* stderr, NUL-terminated (truncated) */
};

/*
 * Runs $RINGSIDE_BIN with args (NULL-terminated, may be NULL) and env
 * ("NAME=value", NULL-terminated, may be NULL; RINGSIDE_* inherited ones
 * removed), waits up to timeout_ms (then SIGKILL, exit_code -1).
 */
void h_run(const char *const args[], const char *const env[], int timeout_ms,
	   struct run_result *r);

/* A malloc'd, uninitialised run_result (too big for the stack); the
 * caller frees it. Fails the test if out of memory. */
struct run_result *run_new(void);

/* Path of the binary under test. */
const char *h_bin(void);

/*
 * Call in main(), before any server starts (it inherits the limit): makes
 * the soft RLIMIT_NOFILE at least need, raising it to the hard limit (to
 * need if that is unlimited). If the hard limit is below need, prints why
 * and exits 77 (skipped); if getrlimit/setrlimit fails, exits 1.
 */
void h_need_fds(unsigned need);

/* ---- Other programs (promtool, prometheus) ---- */

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

/* ---- Client sockets ---- */

/*
 * Connects to 127.0.0.1:port (blocking, SO_RCVTIMEO/SO_SNDTIMEO 5 s,
 * TCP_NODELAY). Returns the fd, or -errno. h_connect fails the test instead.
 */
int h_try_connect(uint16_t port);
int h_connect(uint16_t port);

/* Closes with SO_LINGER {1, 0}: the peer sees a RST. */
void h_close_rst(int fd);

/* Sends all bytes (MSG_NOSIGNAL). Returns 0, or -errno. */
int h_send_all(int fd, const void *buf, size_t len);

/* h_send_all of a NUL-terminated string. Returns 0, or -errno. */
int h_try_send_str(int fd, const char *s);

/* h_send_all that fails the test on error. */
void h_send(int fd, const void *buf, size_t len);
void h_send_str(int fd, const char *s);

enum h_peer {
	H_PEER_EOF = 1,     /* recv returned 0 */
	H_PEER_RESET,       /* ECONNRESET (or EPIPE) */
	H_PEER_OPEN,        /* still open and silent at the deadline */
	H_PEER_DATA,        /* bytes arrived (they are consumed) */
};

const char *h_peer_name(enum h_peer p);

/*
 * Waits up to timeout_ms for the peer to close. Consumes and counts any
 * bytes that arrive before the close (*got may be NULL); returns H_PEER_EOF
 * or H_PEER_RESET when closed, H_PEER_DATA if bytes arrived and the peer
 * did not close by the deadline, H_PEER_OPEN if nothing at all happened.
 */
enum h_peer h_wait_close(int fd, int timeout_ms, size_t *got);

/* A buffered connection: responses may arrive several per read. */
struct conn {
	int fd;
	size_t len;            /* bytes buffered, not yet parsed */
	bool eof;              /* the peer closed its side */
	int err;               /* errno of the last failed recv, 0 if none */
	char buf[1 << 17];
};

/* Opens a connection (fails the test if it cannot). Free with conn_close. */
struct conn *conn_open(uint16_t port);
/* Adopts an already connected fd. */
struct conn *conn_wrap(int fd);
void conn_close(struct conn *c);
void conn_close_rst(struct conn *c);

void conn_send(struct conn *c, const void *buf, size_t len);
void conn_send_str(struct conn *c, const char *s);

#define H_MAX_HEADERS 96

struct http_header {
	char *name;   /* NUL-terminated, points into head[] */
	char *value;  /* NUL-terminated, trimmed */
};

struct http_response {
	int status;
	int minor;                  /* HTTP/1.<minor> */
	char reason[128];
	char head[16384];           /* raw head as received, then split in place */
	size_t head_len;            /* bytes of the head incl. the blank line */
	char raw_status_line[256];  /* first line without CRLF */
	size_t nheaders;
	struct http_header headers[H_MAX_HEADERS];
	bool has_content_length;
	uint64_t content_length;
	char body[1 << 16];         /* NUL-terminated */
	size_t body_len;
};

/*
 * Reads one complete response from c within timeout_ms: the status line,
 * the header section, and a Content-Length body (no body if for_head, for
 * 1xx, 204 and 304). A 1xx interim response is returned by itself; call
 * again for the final one. Returns 0, or -1 with a reason in err[ecap].
 */
int conn_read_response(struct conn *c, struct http_response *r, bool for_head,
		       int timeout_ms, char *err, size_t ecap);

/* conn_read_response that fails the test (with the reason and what was
 * received so far) instead of returning -1. 5 s deadline. */
void expect_response(struct conn *c, struct http_response *r, bool for_head);

/*
 * Reads one chunk of a chunked message body (RFC 9112 section 7.1), after
 * the head was read with conn_read_response(..., for_head = true, ...).
 * Returns the chunk size with its data copied to out (NUL-terminated,
 * truncated to cap - 1), 0 for the last chunk (the trailer section and
 * final CRLF consumed), or -1 with the reason and the bytes seen in err.
 */
long conn_read_chunk(struct conn *c, char *out, size_t cap, int timeout_ms,
		     char *err, size_t ecap);

/* Reads everything until EOF within timeout_ms into buf (NUL-terminated).
 * Returns the byte count; *closed tells whether EOF/RST was seen. */
size_t conn_read_until_eof(struct conn *c, char *buf, size_t cap,
			   int timeout_ms, bool *closed);

/*
 * After a response: waits up to timeout_ms for the peer to close and
 * fails the test if it does not or if more bytes arrive.
 */
void expect_conn_closed(struct conn *c, int timeout_ms);

/* Fails the test unless no bytes arrive and the connection is still open
 * after wait_ms. */
void expect_conn_open(struct conn *c, int wait_ms);

/*
 * Reads one response and fails the test unless it is the JSON error
 * `status` / `code` (expect_error) with Connection: close, and the server
 * then closes the connection within 2 s. The caller still owns c.
 */
void expect_rejected_and_closed(struct conn *c, int status, const char *code);

/* ---- Response inspection ---- */

/* A malloc'd, uninitialised response (too big for the stack); the caller
 * frees it. Fails the test if out of memory. */
struct http_response *resp_new(void);

/* Value of the first header with that name (case-insensitive), or NULL. */
const char *resp_header(const struct http_response *r, const char *name);
/* How many headers carry that name. */
int resp_header_count(const struct http_response *r, const char *name);

/*
 * Checks what every response carries: "HTTP/1.1", a non-empty reason,
 * exactly one Date in IMF-fixdate within a minute of now, exactly one
 * Content-Length (equal to the body length unless for_head), one
 * X-Request-Id starting with "req_". Fails the test otherwise.
 */
void expect_common(const struct http_response *r, bool for_head);

/* expect_common plus the status code. */
void expect_status(const struct http_response *r, int status, bool for_head);

/*
 * A JSON error response: status, Content-Type application/json, and a body
 * object whose "code" is `code`, "message" a non-empty string and
 * "requestId" equal to X-Request-Id.
 */
void expect_error(const struct http_response *r, int status, const char *code);

/* Header present with exactly this value (ASCII case-insensitive compare
 * when ci). */
void expect_header(const struct http_response *r, const char *name,
		   const char *value, bool ci);
void expect_no_header(const struct http_response *r, const char *name);

/* true if some field `name` lists `token` in its comma-separated value
 * (both compared case-insensitively, blanks around list items ignored). */
bool resp_header_has_token(const struct http_response *r, const char *name,
			   const char *token);

/* resp_header_has_token(r, "Connection", token). */
bool resp_connection_has(const struct http_response *r, const char *token);

/* true if Content-Type is present and its media type (before any
 * `;` parameters) is `type`, case-insensitively. */
bool resp_content_type_is(const struct http_response *r, const char *type);

/*
 * Loose JSON: finds the top-level-ish string member `key` in body and copies
 * its unescaped value (NUL-terminated; \uXXXX as UTF-8, \u0000 ends it)
 * into out. Returns false if absent or not a string.
 */
bool json_get_string(const char *body, const char *key, char *out, size_t cap);

/*
 * Loose JSON: the number value of the first member named `key`, anywhere
 * in body. Copies the number's text to raw (may be NULL) so a caller can
 * tell 3 from 3.0. False if absent or not a number.
 */
bool json_get_number(const char *body, const char *key, double *out,
		     char *raw, size_t rawcap);

/* Strict RFC 8259 syntax check of one JSON text; why says where it broke. */
bool json_valid(const char *s, size_t n, char *why, size_t wcap);

/*
 * Prometheus text / OpenMetrics: the sample line whose series is exactly
 * `series` as written (name and braces, e.g.
 * `http_requests_total{method="GET",route="/health",status_code="200"}`),
 * with its value in *value (NAN if unparseable). NULL if absent.
 */
const char *expo_find(const char *body, const char *series, double *value);

/* Copies every line containing needle into out ("\n  line" each) for a
 * failure message; returns how many lines matched. */
size_t expo_lines(const char *body, const char *needle, char *out, size_t cap);

/* How many lines of body start with prefix. */
int expo_count_prefix(const char *body, const char *prefix);

/* A 200 GET /health response, fully checked. */
void expect_health_ok(const struct http_response *r);

/* Sends `GET /health` on a new connection and checks the 200. */
void expect_health_on_port(uint16_t port);

/*
 * Connects, sends req as is, reads one response (no body if for_head),
 * closes. Fails the test, naming the request line, if any step fails.
 */
void h_exchange(uint16_t port, const char *req, bool for_head,
		struct http_response *r);

/* ---- Request building ---- */

/*
 * An agent token signed here with HMAC-SHA256 (libcrypto), not by the
 * server's signer, as jwt.c accepts it: header {"alg":"HS256","typ":"JWT"},
 * iss and aud "ringside", the given sub, organization_id and scope, a jti
 * of its own, iat now, exp an hour later. The key is the secret file's
 * bytes as the server loads them. Quick enough for tens of thousands of
 * agents. Returns a malloc'd string; fails the test on a bad key file.
 */
char *h_mint_token(const char *secret_path, const char *sub, const char *org,
		   const char *scope);

/*
 * A /health prober: a thread that sends GET /health on a connection of its
 * own every every_ms and keeps the worst wait, to tell whether something
 * else (a long scrape) holds the server. Start it, do the work, stop it:
 * h_prober_stop joins the thread and fails the test if a probe failed.
 */
struct h_prober {
	uint16_t port;
	int every_ms;
	_Atomic bool stop;
	int64_t worst_ms;     /* the longest wait for an answer */
	int count;            /* answers */
	char failure[256];
	pthread_t thread;
};
void h_prober_start(struct h_prober *p, uint16_t port, int every_ms);
void h_prober_stop(struct h_prober *p);

/* A sample agent report from $RINGSIDE_SAMPLES, else samples/ (tests run
 * from the repository root): malloc'd, NUL-terminated, *len bytes. Fails
 * the test if it cannot be read. */
char *h_read_sample(const char *name, size_t *len);

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

#ifndef H_INSIDE_HARNESS
/* Helpers that can fail the test, wrapped to record the caller's line.
 * (A parenthesised name calls the function, not the macro.) */
#define H_AT(f, ...) (h_site(__FILE__, __LINE__), (f)(__VA_ARGS__))
#define resp_new() H_AT(resp_new, )
#define run_new() H_AT(run_new, )
#define server_start(...) H_AT(server_start, __VA_ARGS__)
#define server_start_opts(...) H_AT(server_start_opts, __VA_ARGS__)
#define h_connect(...) H_AT(h_connect, __VA_ARGS__)
#define h_send(...) H_AT(h_send, __VA_ARGS__)
#define h_send_str(...) H_AT(h_send_str, __VA_ARGS__)
#define conn_open(...) H_AT(conn_open, __VA_ARGS__)
#define conn_send(...) H_AT(conn_send, __VA_ARGS__)
#define conn_send_str(...) H_AT(conn_send_str, __VA_ARGS__)
#define expect_response(...) H_AT(expect_response, __VA_ARGS__)
#define expect_conn_closed(...) H_AT(expect_conn_closed, __VA_ARGS__)
#define expect_conn_open(...) H_AT(expect_conn_open, __VA_ARGS__)
#define expect_rejected_and_closed(...) \
	H_AT(expect_rejected_and_closed, __VA_ARGS__)
#define expect_common(...) H_AT(expect_common, __VA_ARGS__)
#define expect_status(...) H_AT(expect_status, __VA_ARGS__)
#define expect_error(...) H_AT(expect_error, __VA_ARGS__)
#define expect_header(...) H_AT(expect_header, __VA_ARGS__)
#define expect_no_header(...) H_AT(expect_no_header, __VA_ARGS__)
#define expect_health_ok(...) H_AT(expect_health_ok, __VA_ARGS__)
#define expect_health_on_port(...) H_AT(expect_health_on_port, __VA_ARGS__)
#define h_exchange(...) H_AT(h_exchange, __VA_ARGS__)
#define h_read_sample(...) H_AT(h_read_sample, __VA_ARGS__)
#define h_mint_token(...) H_AT(h_mint_token, __VA_ARGS__)
#define h_run_prog(...) H_AT(h_run_prog, __VA_ARGS__)
#define h_proc_start(...) H_AT(h_proc_start, __VA_ARGS__)
#endif

#endif
