/*
 * Black-box: --access-log. One logfmt line per answered request (time,
 * client, method, route, path, status, bytes, duration, request id), a
 * client's path unable to forge fields or lines, streamed answers logged
 * when they end with what they sent, and SIGHUP reopening the file after
 * logrotate moved it.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char log_path[256], rotated_path[256];

static int setup(void **state)
{
	char dir[] = "/tmp/ringside-access-XXXXXX";
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(log_path, sizeof log_path, "%s/access.log", dir);
	snprintf(rotated_path, sizeof rotated_path, "%s/access.log.1", dir);
	const char *const args[] = {"--access-log", log_path, "--workers", "2", NULL};
	return h_group_setup_with(state, args);
}

static int teardown(void **state)
{
	int r = h_group_teardown(state);
	unlink(log_path);
	unlink(rotated_path);
	*strrchr(log_path, '/') = '\0';
	rmdir(log_path);
	return r;
}

/* The whole file (malloc'd, NUL-terminated). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return calloc(1, 1);
	char *buf = malloc(1 << 20);
	CHECK(buf != NULL, "out of memory");
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The line of the log whose request_id is id, copied to out; waits up to
 * 2 s (lines are written every 50 ms). */
static bool find_line(const char *path, const char *id, char *out, size_t cap)
{
	char want[64];
	snprintf(want, sizeof want, "request_id=%s\n", id);
	for (int t = 0; t < 100; t++) {
		char *log = slurp(path);
		const char *at = strstr(log, want);
		if (at) {
			const char *start = at;
			while (start > log && start[-1] != '\n')
				start--;
			size_t n = (size_t)(at + strlen(want) - 1 - start);
			snprintf(out, cap, "%.*s", (int)n, start);
			free(log);
			return true;
		}
		free(log);
		h_sleep_ms(20);
	}
	return false;
}

static void every_request_gets_one_line_with_its_fields(void **state)
{
	struct http_response *r = resp_new();
	h_exchange(port_of(state), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	char line[2048];
	const char *id = resp_header(r, "X-Request-Id");
	CHECK(find_line(log_path, id, line, sizeof line), "no line for %s in %s", id, log_path);
	static const char *const fields[] = {
		"ts=20", " remote=127.0.0.1:", " method=GET ", " route=/health ", " path=/health ",
		" status=200 ", " bytes=", " duration_us=",
	};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		CHECK(strstr(line, fields[i]) != NULL, "no %s in: %s", fields[i], line);
	/* bytes: the whole response, head and body. */
	char want[64];
	snprintf(want, sizeof want, " bytes=%zu ", r->head_len + r->body_len);
	CHECK(strstr(line, want) != NULL, "want%sin: %s", want, line);

	/* Errors are logged too, unmatched ones with route=-. */
	h_exchange(port_of(state), "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	id = resp_header(r, "X-Request-Id");
	CHECK(find_line(log_path, id, line, sizeof line), "no line for %s", id);
	CHECK(strstr(line, " route=- path=/nope status=404 ") != NULL, "404 line: %s", line);
	free(r);
}

/* A path with `"`, `\` and `=` cannot add fields: it is quoted. */
static void a_clients_path_cannot_forge_fields(void **state)
{
	struct http_response *r = resp_new();
	h_exchange(port_of(state),
		   "GET /x\"status=200\\=y HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	char line[2048];
	const char *id = resp_header(r, "X-Request-Id");
	CHECK(find_line(log_path, id, line, sizeof line), "no line for %s", id);
	CHECK(strstr(line, " path=\"/x\\\"status=200\\\\=y\" status=404 ") != NULL,
	      "path quoted and escaped: %s", line);
	free(r);
}

/* A streamed body is logged when it ends, with the bytes it sent. */
static void a_streamed_answer_is_logged_with_its_bytes(void **state)
{
	struct conn *c = conn_open(port_of(state));
	conn_send_str(c, "GET /metrics/fleet HTTP/1.1\r\nHost: t\r\n\r\n");
	struct http_response *r = resp_new();
	expect_response(c, r, true);
	CHECK(r->status == 200, "status %d", r->status);
	char chunk[65536], err[256];
	for (int i = 0; i < 1000; i++) {
		long n = conn_read_chunk(c, chunk, sizeof chunk, 5000, err, sizeof err);
		CHECK(n >= 0, "chunk: %s", err);
		if (n == 0)
			break;
	}
	char line[2048];
	const char *id = resp_header(r, "X-Request-Id");
	CHECK(find_line(log_path, id, line, sizeof line), "no line for %s", id);
	CHECK(strstr(line, " route=/metrics/fleet ") && strstr(line, " status=200 "),
	      "stream line: %s", line);
	const char *b = strstr(line, " bytes=");
	CHECK(b && strtoull(b + 7, NULL, 10) > (unsigned long long)r->head_len,
	      "a stream's bytes include its body: %s", line);
	free(r);
	conn_close(c);
}

/* logrotate: move the file, SIGHUP, the next lines go to a new file. */
static void sighup_reopens_the_log_after_it_was_moved(void **state)
{
	struct http_response *r = resp_new();
	h_exchange(port_of(state), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	char line[2048];
	CHECK(find_line(log_path, resp_header(r, "X-Request-Id"), line, sizeof line),
	      "line before the move");
	h_sleep_ms(100); /* buffered lines out */
	CHECK(rename(log_path, rotated_path) == 0, "rename");
	server_signal(h_group_server(), SIGHUP);
	bool moved = false;
	for (int t = 0; t < 100 && !moved; t++) {
		h_sleep_ms(20);
		moved = access(log_path, F_OK) == 0;
	}
	CHECK(moved, "SIGHUP did not open %s again", log_path);
	h_exchange(port_of(state), "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", false, r);
	CHECK(find_line(log_path, resp_header(r, "X-Request-Id"), line, sizeof line),
	      "the line after SIGHUP is in the new file");
	expect_health_on_port(port_of(state));
	free(r);
}

/* An unopenable log is a bad flag: exit 2 naming it. */
static void an_unopenable_log_exits_2_naming_the_flag(void **state)
{
	(void)state;
	const char *const args[] = {"--access-log", "/nonexistent-dir/access.log", NULL};
	struct run_result *r = run_new();
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 2 && strstr(r->err, "--access-log"),
	      "exit %d, stderr: %s", r->exit_code, r->err);
	free(r);
}

int main(void)
{
	h_init();
	const struct CMUnitTest tests[] = {
		BB_TEST(every_request_gets_one_line_with_its_fields),
		BB_TEST(a_clients_path_cannot_forge_fields),
		BB_TEST(a_streamed_answer_is_logged_with_its_bytes),
		BB_TEST(sighup_reopens_the_log_after_it_was_moved),
		BB_TEST(an_unopenable_log_exits_2_naming_the_flag),
	};
	return H_RUN_GROUP("access log", tests, setup, teardown);
}
