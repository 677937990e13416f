/*
 * The server under test: start and wait for /health, group fixtures,
 * running the binary as a command. See server.h.
 */
#include "server.h"
#include "clock.h"
#include "harness_int.h"
#include "http_client.h"
#include "sock.h"
#include "tls_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct server *group_server; /* started by h_group_setup */

const char *h_bin(void)
{
	const char *b = getenv("RINGSIDE_BIN");

	return b && *b ? b : "build/ringside";
}

static void check_binary(void)
{
	if (access(h_bin(), X_OK) != 0)
		H_FAIL("server binary %s is not executable (%s); set RINGSIDE_BIN "
		       "to the absolute path of build/ringside",
		       h_bin(), strerror(errno));
}

/* One readiness probe: GET /health answered 200 within 1 s. */
static bool probe_health(uint16_t port)
{
	int fd = h_try_connect(port);

	if (fd < 0)
		return false;
	struct conn *c = conn_wrap(fd);
	struct http_response *r = malloc(sizeof(*r));
	char err[256];
	bool ok = false;

	static const char req[] = "GET /health HTTP/1.1\r\nHost: probe\r\n"
				  "Connection: close\r\n\r\n";

	if (r && h_send_all(fd, req, sizeof(req) - 1) == 0 &&
	    conn_read_response(c, r, false, 1000, err, sizeof(err)) == 0)
		ok = r->status == 200;
	free(r);
	conn_close(c);
	return ok;
}

static bool has_arg(const char *const *args, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; args && args[i]; i++)
		if (strncmp(args[i], name, n) == 0 &&
		    (args[i][n] == '\0' || args[i][n] == '='))
			return true;
	return false;
}

static bool has_env(const char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return true;
	return false;
}

/* The port of `--metrics-listen ADDR` (or --metrics-listen=ADDR) in
 * args, or 0. */
static uint16_t metrics_port(const char *const *args)
{
	for (size_t i = 0; args && args[i]; i++) {
		const char *v = NULL;

		if (strcmp(args[i], "--metrics-listen") == 0)
			v = args[i + 1];
		else if (strncmp(args[i], "--metrics-listen=", 17) == 0)
			v = args[i] + 17;
		const char *colon = v ? strrchr(v, ':') : NULL;

		if (colon)
			return (uint16_t)atoi(colon + 1);
	}
	return 0;
}

/*
 * TLS mode: whether the harness serves HTTPS with its own certificate on
 * this server: not when told not to (no_tls) and not when the test
 * configures TLS itself (a flag or a variable of its own).
 */
static bool harness_tls(const struct server_opts *o)
{
	static const char *const flags[] = { "--tls-cert", "--tls-key",
					     "--metrics-tls" };
	static const char *const vars[] = { "RINGSIDE_TLS_CERT", "RINGSIDE_TLS_KEY",
					    "RINGSIDE_METRICS_TLS" };

	if (!h_tls_mode() || o->no_tls)
		return false;
	for (size_t i = 0; i < 3; i++)
		if (has_arg(o->args, flags[i]) || has_arg(o->pre_args, flags[i]) ||
		    has_env(o->env, vars[i]))
			return false;
	return true;
}

void server_start_opts(struct server *s, const struct server_opts *o)
{
	const char *argv[H_MAX_ARGS + 16];
	size_t n = 0;

	check_binary();
	memset(s, 0, sizeof(*s));
	s->port = o->port ? o->port : h_free_port();
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", s->port);

	argv[n++] = h_bin();
	for (size_t i = 0; o->pre_args && o->pre_args[i]; i++) {
		CHECK(n < H_MAX_ARGS, "too many arguments");
		argv[n++] = o->pre_args[i];
	}
	if (!o->no_listen) {
		argv[n++] = "--listen";
		argv[n++] = s->addr;
	}
	for (size_t i = 0; o->args && o->args[i]; i++) {
		CHECK(n < H_MAX_ARGS, "too many arguments");
		argv[n++] = o->args[i];
	}
	bool tls = harness_tls(o);
	uint16_t mport = tls ? metrics_port(o->args) : 0;

	if (tls) {
		argv[n++] = "--tls-cert";
		argv[n++] = h_tls_cert();
		argv[n++] = "--tls-key";
		argv[n++] = h_tls_key();
		if (mport) {
			argv[n++] = "--metrics-tls";
			argv[n++] = "true";
		}
	}
	s->tls = tls;
	h_tls_port_set(s->port, tls);
	if (mport)
		h_tls_port_set(mport, true);
	argv[n] = NULL;

	h_proc_spawn(s, argv, o->env, "server");
	if (o->no_wait)
		return;

	int64_t deadline = h_now_ms() + 5000;

	for (int i = 0; i < 400; i++) {
		if (server_wait_exit(s, 0))
			H_FAIL("server %s exited with status %d during start-up",
			       s->addr, s->exit_code);
		if (probe_health(s->port))
			return;
		if (h_now_ms() >= deadline)
			break;
		h_sleep_ms(20);
	}
	H_FAIL("server %s did not answer GET /health 200 within 5 s", s->addr);
}

void server_start(struct server *s, const char *const extra_args[])
{
	struct server_opts o = { .args = extra_args };

	server_start_opts(s, &o);
}

int h_group_setup_opts(void **state, const struct server_opts *o)
{
	struct server *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	*state = s;
	group_server = s;
	server_start_opts(s, o);
	return 0;
}

int h_group_setup_with(void **state, const char *const args[])
{
	struct server_opts o = { .args = args };

	return h_group_setup_opts(state, &o);
}

int h_group_setup(void **state)
{
	return h_group_setup_with(state, NULL);
}

int h_group_teardown(void **state)
{
	/* A group whose tests carry their own initial_state clears *state
	 * (cmocka hands a non-NULL group state to every test instead). */
	struct server *s = *state ? *state : (struct server *)group_server;

	if (!s)
		return 0;
	int code = server_stop(s);

	group_server = NULL;
	*state = NULL;
	free(s);
	CHECK(code == 0, "server exit status after SIGTERM: expected 0, got %d",
	      code);
	return 0;
}

struct server *h_group_server(void)
{
	CHECK(group_server != NULL, "no group server");
	return (struct server *)group_server;
}

uint16_t port_of(void **state)
{
	return ((struct server *)*state)->port;
}

int h_test_teardown(void **state)
{
	(void)state;
	h_site(NULL, 0);
	h_proc_reap_strays(group_server);
	return 0;
}

void h_run(const char *const args[], const char *const env[], int timeout_ms,
	   struct run_result *r)
{
	const char *argv[H_MAX_ARGS + 2];
	size_t n = 0;
	struct h_logs l;

	check_binary();
	h_logs_next(&l, "run");
	argv[n++] = h_bin();
	for (size_t i = 0; args && args[i] && n < H_MAX_ARGS; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	h_run_to_end(argv, env, &l, false, timeout_ms, r);
}

void h_plain_only(const char *why)
{
	if (!h_tls_mode())
		return;
	print_message("SKIP over TLS (RINGSIDE_BB_TLS): %s\n", why);
	skip();
}

void h_plain_only_all(const char *why)
{
	if (!h_tls_mode())
		return;
	printf("SKIP over TLS (RINGSIDE_BB_TLS): %s\n", why);
	fflush(stdout);
	exit(77);
}
