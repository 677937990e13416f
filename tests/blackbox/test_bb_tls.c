/*
 * Black-box: HTTPS from the workers (--tls-cert, --tls-key). Real clients
 * only: curl for requests, openssl s_client for what the handshake
 * agreed (TLS 1.2, an ECDHE AES-GCM suite, ALPN http/1.1, resumption) and
 * what it must refuse (TLS 1.1, CBC suites). Plaintext HTTP to the TLS
 * port is closed without an answer; a handshake that never comes is
 * closed at --header-timeout; SIGHUP loads a new pair and refuses a bad
 * one; bad or mismatched files exit 2 naming the flag. The throwaway
 * certificates (EC P-256 and RSA 2048) are made by openssl at start.
 */
#include "harness.h"
#include "lib/expo.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET "tests/auth/test-only-hs256.secret"
#define OPENSSL "/usr/bin/openssl"
#define CURL "/usr/bin/curl"

static const char *dir; /* the certificates and keys (h_scratch_dir) */
/* The group's server (h_group_setup_opts). */
#define tls_server (*h_group_server())

static char *path_in_dir(const char *name)
{
	return h_strf("%s/%s", dir, name);
}

/* A self-signed pair for localhost and 127.0.0.1: `newkey` is
 * openssl req's -newkey argument, pkeyopt an optional -pkeyopt. */
static void make_pair(const char *cert, const char *key, const char *newkey, const char *pkeyopt,
		      const char *cn)
{
	char *c = path_in_dir(cert), *k = path_in_dir(key), *subj = h_strf("/CN=%s", cn);
	const char *argv[24] = {OPENSSL, "req", "-x509", "-newkey", newkey, "-nodes", "-days", "2",
				"-subj", subj, "-addext",
				"subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", k, "-out", c};
	size_t n = 16;
	if (pkeyopt) {
		argv[n++] = "-pkeyopt";
		argv[n++] = pkeyopt;
	}
	argv[n] = NULL;
	struct run_result *r = run_new();
	h_run_prog(argv, NULL, 0, 30000, r);
	CHECK(r->exit_code == 0, "openssl req %s: exit %d: %.500s", newkey, r->exit_code, r->err);
	free(r);
	free(c);
	free(k);
	free(subj);
}

/* curl over HTTPS trusting only `ca`: the status, and the body in *body
 * (malloc'd) when asked. extra: more curl arguments, NULL-ended. */
static int curl_status(uint16_t port, const char *ca, const char *path, const char *const extra[],
		       char **body)
{
	char *url = h_strf("https://localhost:%u%s", port, path);
	char *cacert = path_in_dir(ca);
	const char *argv[32] = {CURL, "-sS", "--max-time", "5", "--cacert", cacert,
				"--resolve", NULL, "-w", "\n%{http_code}", url};
	char *resolve = h_strf("localhost:%u:127.0.0.1", port);
	argv[7] = resolve;
	size_t n = 11;
	for (size_t i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	struct run_result *r = run_new();
	h_run_prog(argv, NULL, 0, 10000, r);
	int status = 0;
	char *last = strrchr(r->out, '\n');
	if (r->exit_code == 0 && last)
		status = atoi(last + 1);
	if (body) {
		if (last)
			*last = '\0';
		*body = h_strf("%s", r->out);
	}
	/* 7: not listening yet (wait_https polls); anything else is news. */
	if (r->exit_code != 0 && r->exit_code != 7)
		print_message("curl exit %d: %.300s\n", r->exit_code, r->err);
	free(r);
	free(url);
	free(cacert);
	free(resolve);
	return status;
}

/* openssl s_client against the port with `flags` (NULL-ended); its
 * whole output (stdout and stderr) in a malloc'd string. */
static char *s_client(uint16_t port, const char *const flags[])
{
	char *connect = h_strf("127.0.0.1:%u", port);
	const char *argv[32] = {OPENSSL, "s_client", "-connect", connect};
	size_t n = 4;
	for (size_t i = 0; flags && flags[i] && n < 31; i++)
		argv[n++] = flags[i];
	argv[n] = NULL;
	struct run_result *r = run_new();
	/* Empty stdin: the client ends the session after the handshake. */
	h_run_prog(argv, "", 0, 10000, r);
	char *out = h_strf("%s\n%s", r->out, r->err);
	free(r);
	free(connect);
	return out;
}

/* The arguments of a TLS server with cert/key (names in dir) and args:
 * a NULL-ended array in all[cap]. */
static void tls_args(const char *all[], size_t cap, char *c, char *k, const char *const args[])
{
	const char *base[] = {"--tls-cert", c, "--tls-key", k, "--workers", "2",
			      "--analytics-enabled", "false"};
	size_t n = 0;
	for (; n < sizeof base / sizeof base[0]; n++)
		all[n] = base[n];
	for (size_t i = 0; args && args[i] && n < cap - 1; i++)
		all[n++] = args[i];
	all[n] = NULL;
}

/* Waits until GET /health answers over HTTPS (the harness's own wait
 * speaks plain HTTP). */
static void wait_https(uint16_t port, const char *cert)
{
	int64_t deadline = h_now_ms() + 5000;
	int status = 0;
	while (status != 200 && h_now_ms() < deadline) {
		status = curl_status(port, cert, "/health", NULL, NULL);
		if (status != 200)
			usleep(50000);
	}
	CHECK(status == 200, "GET /health over HTTPS never answered 200");
}

/* A TLS server of the test's own (stopped by the test). */
static void start_tls(struct server *s, const char *cert, const char *key, const char *const args[])
{
	char *c = path_in_dir(cert), *k = path_in_dir(key);
	const char *all[32];
	tls_args(all, 32, c, k, args);
	struct server_opts o = {.args = all, .no_wait = true};
	server_start_opts(s, &o);
	wait_https(s->port, cert);
	free(c);
	free(k);
}

static int setup(void **state)
{
	dir = h_scratch_dir("tls");
	make_pair("ec.crt", "ec.key", "ec", "ec_paramgen_curve:P-256", "localhost");
	make_pair("rsa.crt", "rsa.key", "rsa:2048", NULL, "localhost");
	make_pair("ec2.crt", "ec2.key", "ec", "ec_paramgen_curve:P-256", "second");
	/* Copies the server is started with, so SIGHUP can find new ones. */
	char *copy = h_strf("cp %s/ec.crt %s/live.crt && cp %s/ec.key %s/live.key", dir, dir, dir,
			    dir);
	const char *const cp[] = {"/bin/sh", "-c", copy, NULL};
	struct run_result *r = run_new();
	h_run_prog(cp, NULL, 0, 5000, r);
	CHECK(r->exit_code == 0, "cp: %s", r->err);
	free(r);
	free(copy);
	static const char *const args[] = {"--jwt-secret-file", SECRET, "--header-timeout",
					   "1s", NULL};
	char *c = path_in_dir("live.crt"), *k = path_in_dir("live.key");
	const char *all[32];
	tls_args(all, 32, c, k, args);
	struct server_opts o = {.args = all, .no_wait = true};
	int rc = h_group_setup_opts(state, &o);
	if (rc == 0)
		wait_https(tls_server.port, "live.crt");
	free(c);
	free(k);
	return rc;
}

static void health_over_https_is_200(void **state)
{
	(void)state;
	char *body = NULL;
	int status = curl_status(tls_server.port, "live.crt", "/health", NULL, &body);
	CHECK(status == 200, "GET /health over HTTPS: %d", status);
	CHECK(strstr(body, "\"status\":\"ok\""), "body: %s", body);
	free(body);
}

/* An agent report, as a fleet would send it, answered 202 over TLS (a
 * body larger than one TLS record: 16 KiB). */
static void ingest_over_https_is_accepted(void **state)
{
	(void)state;
	char *token = h_mint_token(SECRET, "agent-tls-1", "org-tls", "metrics:write");
	char *auth = h_strf("Authorization: Bearer %s", token);
	char *sample = h_strf("@samples/ingest-full.json");
	const char *const extra[] = {"-X", "POST", "-H", auth, "-H",
				     "Content-Type: application/json", "--data-binary", sample,
				     NULL};
	char *body = NULL;
	int status = curl_status(tls_server.port, "live.crt", "/api/metrics/ingest", extra, &body);
	CHECK(status == 202, "POST /api/metrics/ingest over HTTPS: %d: %s", status, body);
	free(body);
	free(sample);
	free(auth);
	free(token);
}

/*
 * Python's ssl client sends `request` (a Python bytes expression) to the
 * group server and reads until the end: the answers, then close_notify,
 * then EOF; without the close_notify it raises (truncation is not
 * suppressed). Prints `report` (a Python expression over the bytes d).
 * The run, for the caller to check and free.
 */
static struct run_result *python_request(const char *request, const char *report)
{
	char *script = h_strf(
		"import socket, ssl, sys\n"
		"ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
		"s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))),\n"
		"                    server_hostname='localhost', suppress_ragged_eofs=False)\n"
		"s.sendall(%s)\n"
		"d = b''\n"
		"while True:\n"
		"    c = s.recv(65536)\n"
		"    if not c: break\n"
		"    d += c\n"
		"print(%s)\n",
		request, report);
	char *port = h_strf("%u", tls_server.port);
	char *ca = path_in_dir("live.crt");
	const char *const argv[] = {"/usr/bin/python3", "-c", script, port, ca, NULL};
	struct run_result *r = run_new();
	h_run_prog(argv, NULL, 0, 20000, r);
	CHECK(r->exit_code == 0, "python exit %d (no close_notify?): %.1000s", r->exit_code, r->err);
	free(script);
	free(port);
	free(ca);
	return r;
}

/* Pipelined requests in one write, whose answers span many records,
 * all answered in order on one connection, then the close the last one
 * asked for, with close_notify. */
static void pipelined_requests_over_https_all_answered(void **state)
{
	(void)state;
	struct run_result *r = python_request(
		"b'GET /metrics HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n' * 39 + "
		"b'GET /metrics HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n'",
		"d.count(b'HTTP/1.1 200 '), len(d)");
	unsigned answered = 0;
	unsigned long bytes = 0;
	int fields = sscanf(r->out, "%u %lu", &answered, &bytes);
	CHECK(fields == 2 && answered == 40 && bytes > 65536, "40 pipelined scrapes: %s", r->out);
	free(r);
}

/* A small closing answer, which the server sends together with its
 * close_notify: the client reads the whole answer, then the close_notify
 * (one ahead of the answer would cut it, none would raise). */
static void a_closing_answer_is_followed_by_close_notify(void **state)
{
	(void)state;
	for (int i = 0; i < 20; i++) {
		struct run_result *r = python_request(
			"b'GET /health HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n'",
			"d.split(b'\\r\\n')[0].decode(), d.endswith(b'}')");
		CHECK(strstr(r->out, "HTTP/1.1 200 OK True"), "answer %d: %s", i, r->out);
		free(r);
	}
}

static void handshake_agrees_tls12_ecdhe_gcm_and_alpn(void **state)
{
	(void)state;
	static const char *const flags[] = {"-tls1_2", "-alpn", "http/1.1", NULL};
	char *out = s_client(tls_server.port, flags);
	CHECK(strstr(out, "ALPN protocol: http/1.1"), "no ALPN http/1.1: %.2000s", out);
	CHECK(strstr(out, "Protocol  : TLSv1.2"), "not TLS 1.2: %.2000s", out);
	const char *suite = strstr(out, "Cipher is ECDHE-");
	CHECK(suite && strstr(suite, "-GCM-") && strstr(suite, "-GCM-") < strchr(suite, '\n'),
	      "not an ECDHE AES-GCM suite: %.2000s", out);
	free(out);
}

/* Without ALPN the client is served all the same. */
static void a_client_without_alpn_is_served(void **state)
{
	(void)state;
	static const char *const flags[] = {"-tls1_2", NULL};
	char *out = s_client(tls_server.port, flags);
	CHECK(strstr(out, "Cipher is ECDHE-"), "handshake without ALPN failed: %.2000s", out);
	CHECK(strstr(out, "No ALPN negotiated"), "ALPN without asking: %.2000s", out);
	free(out);
}

static void tls11_is_refused(void **state)
{
	(void)state;
	static const char *const flags[] = {"-tls1_1", NULL};
	char *out = s_client(tls_server.port, flags);
	CHECK(!strstr(out, "Cipher is ECDHE") && strstr(out, "Cipher is (NONE)"),
	      "TLS 1.1 was accepted: %.2000s", out);
	free(out);
}

static void a_cbc_suite_is_refused(void **state)
{
	(void)state;
	static const char *const flags[] = {"-tls1_2", "-cipher", "AES128-SHA256", NULL};
	char *out = s_client(tls_server.port, flags);
	CHECK(strstr(out, "Cipher is (NONE)"), "a CBC suite was accepted: %.2000s", out);
	free(out);
}

static void chacha20_is_served_to_who_asks_only_for_it(void **state)
{
	(void)state;
	static const char *const flags[] = {"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305",
					    NULL};
	char *out = s_client(tls_server.port, flags);
	CHECK(strstr(out, "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305"), "no ChaCha20: %.2000s", out);
	free(out);
}

static void a_session_is_resumed(void **state)
{
	(void)state;
	char *sess = path_in_dir("session.pem");
	const char *const first[] = {"-tls1_2", "-sess_out", sess, NULL};
	const char *const second[] = {"-tls1_2", "-sess_in", sess, NULL};
	char *out = s_client(tls_server.port, first);
	CHECK(strstr(out, "New, TLSv1.2"), "first handshake: %.2000s", out);
	free(out);
	/* Every reconnection resumes, whichever of the two workers the
	 * kernel hands it to (the cache is shared: with one per worker, eight
	 * in a row would all resume one time in 128). */
	for (int i = 0; i < 8; i++) {
		out = s_client(tls_server.port, second);
		CHECK(strstr(out, "Reused, TLSv1.2"), "reconnection %d not resumed: %.2000s", i, out);
		free(out);
	}
	free(sess);
}

/* Plain HTTP to the TLS port: no answer, a close (the handshake fails),
 * and the server goes on serving. */
static void plaintext_to_the_tls_port_is_closed(void **state)
{
	(void)state;
	int fd = h_connect(tls_server.port);
	h_send_str(fd, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	size_t got = 0;
	enum h_peer p = h_wait_close(fd, 3000, &got);
	CHECK(p == H_PEER_EOF || p == H_PEER_RESET, "plaintext: peer %s", h_peer_name(p));
	CHECK(got < 16, "plaintext got %zu bytes back (an HTTP answer?)", got);
	close(fd);
	CHECK(curl_status(tls_server.port, "live.crt", "/health", NULL, NULL) == 200,
	      "not serving after a plaintext client");
}

/* A client that connects and never completes its handshake is closed
 * at --header-timeout (1 s here). */
static void a_stalled_handshake_is_closed_at_the_head_timeout(void **state)
{
	(void)state;
	int fd = h_connect(tls_server.port);
	/* The first bytes of a ClientHello record, then nothing. */
	static const unsigned char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
	h_send(fd, partial, sizeof partial);
	int64_t t0 = h_now_ms();
	enum h_peer p = h_wait_close(fd, 4000, NULL);
	int64_t waited = h_now_ms() - t0;
	CHECK(p == H_PEER_EOF || p == H_PEER_RESET, "stalled handshake: peer %s after %llu ms",
	      h_peer_name(p), (unsigned long long)waited);
	CHECK(waited >= 700, "closed after %llu ms, before the head timeout",
	      (unsigned long long)waited);
	close(fd);
}

/* SIGHUP: a new pair in place is served to new handshakes; a bad one is
 * refused with a log line and the pair in use stays. */
static void sighup_reloads_the_pair_and_refuses_a_bad_one(void **state)
{
	(void)state;
	char *sh = h_strf("cp %s/ec2.crt %s/live.crt && cp %s/ec2.key %s/live.key", dir, dir, dir,
			  dir);
	const char *const cp[] = {"/bin/sh", "-c", sh, NULL};
	struct run_result *r = run_new();
	h_run_prog(cp, NULL, 0, 5000, r);
	CHECK(r->exit_code == 0, "cp: %s", r->err);
	server_signal(&tls_server, SIGHUP);
	/* The new certificate, with CN=second, is what handshakes present. */
	bool reloaded = false;
	int64_t deadline = h_now_ms() + 3000;
	while (!reloaded && h_now_ms() < deadline) {
		static const char *const flags[] = {"-tls1_2", NULL};
		char *out = s_client(tls_server.port, flags);
		reloaded = strstr(out, "CN = second") != NULL;
		free(out);
		if (!reloaded)
			usleep(50000);
	}
	CHECK(reloaded, "the new certificate was not served after SIGHUP");
	CHECK(curl_status(tls_server.port, "ec2.crt", "/health", NULL, NULL) == 200,
	      "GET /health with the new certificate");

	/* A key that is not the certificate's: refused, the pair in use kept. */
	free(sh);
	sh = h_strf("cp %s/ec.key %s/live.key", dir, dir);
	const char *const bad[] = {"/bin/sh", "-c", sh, NULL};
	h_run_prog(bad, NULL, 0, 5000, r);
	CHECK(r->exit_code == 0, "cp: %s", r->err);
	server_signal(&tls_server, SIGHUP);
	char log[16384];
	deadline = h_now_ms() + 3000;
	bool refused = false;
	while (!refused && h_now_ms() < deadline) {
		server_read_stderr(&tls_server, log, sizeof log);
		refused = strstr(log, "not reloaded") != NULL;
		if (!refused)
			usleep(20000);
	}
	CHECK(refused, "no log line for a refused pair: %s", log);
	CHECK(strstr(log, "flag=--tls-key"), "the refusal does not name --tls-key: %s", log);
	CHECK(curl_status(tls_server.port, "ec2.crt", "/health", NULL, NULL) == 200,
	      "the pair in use was dropped with the bad one");
	free(sh);
	free(r);
}

static void an_rsa_pair_is_served_with_ecdhe_rsa(void **state)
{
	(void)state;
	struct server s;
	start_tls(&s, "rsa.crt", "rsa.key", NULL);
	static const char *const flags[] = {"-tls1_2", "-alpn", "http/1.1", NULL};
	char *out = s_client(s.port, flags);
	CHECK(strstr(out, "Cipher is ECDHE-RSA-AES128-GCM-SHA256"), "RSA suite: %.2000s", out);
	free(out);
	CHECK(server_stop(&s) == 0, "exit status");
}

/* The metrics listener serves HTTPS too with --metrics-tls true. */
static void metrics_tls_serves_the_metrics_listener(void **state)
{
	(void)state;
	uint16_t mport = h_free_port();
	char *listen = h_strf("127.0.0.1:%u", mport);
	const char *const args[] = {"--metrics-listen", listen, "--metrics-tls", "true", NULL};
	struct server s;
	start_tls(&s, "ec.crt", "ec.key", args);
	char *body = NULL;
	int status = curl_status(mport, "ec.crt", "/metrics", NULL, &body);
	CHECK(status == 200 && strstr(body, "http_requests_total"), "/metrics over HTTPS: %d",
	      status);
	free(body);
	CHECK(server_stop(&s) == 0, "exit status");
	free(listen);
}

static void expect_exit_2_naming(const char *const args[], const char *flag, const char *why)
{
	struct run_result *r = run_new();
	h_run(args, NULL, 5000, r);
	CHECK(r->exit_code == 2 && strstr(r->err, flag), "%s: exit %d, stderr: %s", why,
	      r->exit_code, r->err);
	free(r);
}

static void bad_pairs_exit_2_naming_the_flag(void **state)
{
	(void)state;
	char *ec_crt = path_in_dir("ec.crt"), *ec_key = path_in_dir("ec.key");
	char *rsa_crt = path_in_dir("rsa.crt"), *ec2_key = path_in_dir("ec2.key");
	char *missing = path_in_dir("missing.pem");
	const char *const cert_only[] = {"--tls-cert", ec_crt, NULL};
	expect_exit_2_naming(cert_only, "--tls-key", "a certificate without its key");
	const char *const key_only[] = {"--tls-key", ec_key, NULL};
	expect_exit_2_naming(key_only, "--tls-cert", "a key without its certificate");
	const char *const no_file[] = {"--tls-cert", ec_crt, "--tls-key", missing, NULL};
	expect_exit_2_naming(no_file, "--tls-key", "a missing key file");
	const char *const not_a_cert[] = {"--tls-cert", ec_key, "--tls-key", ec_key, NULL};
	expect_exit_2_naming(not_a_cert, "--tls-cert", "a key given as certificate");
	const char *const mismatch[] = {"--tls-cert", ec_crt, "--tls-key", ec2_key, NULL};
	expect_exit_2_naming(mismatch, "--tls-key", "another EC key");
	const char *const kinds[] = {"--tls-cert", rsa_crt, "--tls-key", ec_key, NULL};
	expect_exit_2_naming(kinds, "--tls-key", "an EC key for an RSA certificate");
	const char *const metrics_alone[] = {"--metrics-tls", "true", NULL};
	expect_exit_2_naming(metrics_alone, "--tls-cert", "--metrics-tls without a pair");
	free(ec_crt);
	free(ec_key);
	free(rsa_crt);
	free(ec2_key);
	free(missing);
}

/*
 * 300 connections at once to port (over TLS if ca, else plain), one
 * /health each, then closed: the worker's memory.rss
 * (/metrics/api/metrics/stats) before, with them open, and after.
 */
static void rss_around_300_connections(uint16_t port, const char *ca, double rss[3])
{
	static const char script[] =
		"import json, socket, ssl, sys, time\n"
		"port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])\n"
		"ctx = ca != '-' and ssl.create_default_context(cafile=ca)\n"
		"def conn():\n"
		"    s = socket.create_connection(('127.0.0.1', port))\n"
		"    return s if ca == '-' else ctx.wrap_socket(s, server_hostname='localhost')\n"
		"def ask(s, path):\n"
		"    s.sendall(b'GET ' + path + b' HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')\n"
		"    d = b''\n"
		"    while b'\\r\\n\\r\\n' not in d or len(d.split(b'\\r\\n\\r\\n', 1)[1]) < int(\n"
		"            d.split(b'Content-Length: ', 1)[1].split(b'\\r\\n', 1)[0]):\n"
		"        d += s.recv(65536)\n"
		"    assert d.startswith(b'HTTP/1.1 200'), d[:100]\n"
		"    return d.split(b'\\r\\n\\r\\n', 1)[1]\n"
		"def rss():\n"
		"    time.sleep(1.3)  # the main thread measures once a second\n"
		"    s = conn()\n"
		"    w = json.loads(ask(s, b'/metrics/api/metrics/stats'))['workers'][0]\n"
		"    s.close()\n"
		"    return w['memory']['rss']\n"
		"before = rss()\n"
		"socks = [conn() for _ in range(n)]\n"
		"for s in socks: ask(s, b'/health')\n"
		"peak = rss()\n"
		"for s in socks: s.close()\n"
		"after = rss()\n"
		"print(before, peak, after)\n";
	char *p = h_strf("%u", port);
	const char *const argv[] = {"/usr/bin/python3", "-c", script, p, ca ? ca : "-", "300",
				    NULL};
	struct run_result *r = run_new();
	h_run_prog(argv, NULL, 0, 60000, r);
	CHECK(r->exit_code == 0, "python exit %d: %.2000s", r->exit_code, r->err);
	int got = sscanf(r->out, "%lf %lf %lf", &rss[0], &rss[1], &rss[2]);
	CHECK(got == 3, "output: %s", r->out);
	free(r);
	free(p);
}

/*
 * A closed connection's TLS slot stays resident, wiped, for the next
 * connection, but only 64 per worker. What 300 closed TLS connections
 * leave resident is what 300 plain ones leave, plus at most 64 slots and
 * 10 KiB a connection for the rest of a TLS connection's buffers (here:
 * plain 1.7 MB; TLS 6.3 MB with one kept slot, 9.1 MB with 64; with
 * every slot kept it would be some 16 MB). The peak shows the slots
 * were touched.
 */
static void closed_slots_beyond_the_warm_ones_go_back_to_the_kernel(void **state)
{
	(void)state;
	static const char *const args[] = {"--workers", "1", NULL};
	struct server plain, tls;
	double p[3], t[3];
	server_start(&plain, args);
	rss_around_300_connections(plain.port, NULL, p);
	CHECK(server_stop(&plain) == 0, "exit status");
	start_tls(&tls, "ec.crt", "ec.key", args);
	char *ca = path_in_dir("ec.crt");
	rss_around_300_connections(tls.port, ca, t);
	free(ca);
	CHECK(server_stop(&tls) == 0, "exit status");

	const double slot = 60 * 1024; /* sizeof(struct tls_conn), page-rounded */
	double plain_kept = p[2] - p[0], tls_kept = t[2] - t[0];
	print_message("rss before / with 300 open / after: plain %.0f %.0f %.0f, TLS %.0f %.0f %.0f\n",
		      p[0], p[1], p[2], t[0], t[1], t[2]);
	CHECK((t[1] - t[0]) - (p[1] - p[0]) > 300 * 16 * 1024,
	      "300 open TLS connections took %.0f bytes, plain ones %.0f: under 16 KiB more "
	      "each", t[1] - t[0], p[1] - p[0]);
	CHECK(tls_kept <= plain_kept + 64 * slot + 300 * 10 * 1024,
	      "after 300 connections closed, %.0f bytes stayed resident over TLS, %.0f plain: "
	      "more than 64 closed TLS slots stayed", tls_kept, plain_kept);
}

/* ringside_tls_handshakes_total{result} of a server's /metrics (over
 * HTTPS: the scrape's own handshake is a full one, counted before the
 * answer is made). */
struct handshake_counts {
	double full, resumed, failed, abandoned;
};

static void scrape_handshakes(uint16_t port, struct handshake_counts *n)
{
	char *body = NULL;
	int status = curl_status(port, "ec.crt", "/metrics", NULL, &body);
	CHECK(status == 200, "/metrics over HTTPS: %d", status);
	const struct {
		const char *series;
		double *v;
	} rows[] = {
		{"ringside_tls_handshakes_total{result=\"full\"}", &n->full},
		{"ringside_tls_handshakes_total{result=\"resumed\"}", &n->resumed},
		{"ringside_tls_handshakes_total{result=\"failed\"}", &n->failed},
		{"ringside_tls_handshakes_total{result=\"abandoned\"}", &n->abandoned},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		CHECK(expo_find(body, rows[i].series, rows[i].v), "no %s in /metrics", rows[i].series);
	free(body);
}

/* Each way a handshake ends is counted once: full, resumed, failed (a
 * plaintext request), abandoned (a client that leaves before it ends). */
static void handshakes_are_counted_by_result(void **state)
{
	(void)state;
	struct server s;
	start_tls(&s, "ec.crt", "ec.key", NULL);
	struct handshake_counts before, after;
	scrape_handshakes(s.port, &before);

	char *sess = path_in_dir("counted.pem");
	const char *const first[] = {"-tls1_2", "-sess_out", sess, NULL};
	const char *const again[] = {"-tls1_2", "-sess_in", sess, NULL};
	free(s_client(s.port, first));
	free(s_client(s.port, again));
	free(s_client(s.port, again));
	int fd = h_connect(s.port);
	h_send_str(fd, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
	h_wait_close(fd, 3000, NULL);
	close(fd);
	close(h_connect(s.port)); /* connects and leaves */
	fd = h_connect(s.port);
	static const unsigned char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
	h_send(fd, partial, sizeof partial);
	close(fd); /* leaves in the middle of its ClientHello */

	/* The server counts a client that left when it sees it go: poll. */
	int scrapes = 0;
	int64_t deadline = h_now_ms() + 5000;
	do {
		scrape_handshakes(s.port, &after);
		scrapes++;
	} while (after.abandoned - before.abandoned < 2 && h_now_ms() < deadline &&
		 usleep(50000) == 0);
	CHECK(after.full - before.full == 1 + scrapes, "full: %g more, %d expected",
	      after.full - before.full, 1 + scrapes);
	CHECK(after.resumed - before.resumed == 2, "resumed: %g more", after.resumed - before.resumed);
	CHECK(after.failed - before.failed == 1, "failed: %g more", after.failed - before.failed);
	CHECK(after.abandoned - before.abandoned == 2, "abandoned: %g more",
	      after.abandoned - before.abandoned);
	CHECK(server_stop(&s) == 0, "exit status");
	free(sess);
}

int main(void)
{
	h_init();
	h_plain_only_all("the TLS tests configure TLS themselves (curl, openssl s_client); the plain pass "
			 "runs them");
	const struct CMUnitTest tests[] = {
		BB_TEST(health_over_https_is_200),
		BB_TEST(ingest_over_https_is_accepted),
		BB_TEST(pipelined_requests_over_https_all_answered),
		BB_TEST(a_closing_answer_is_followed_by_close_notify),
		BB_TEST(handshake_agrees_tls12_ecdhe_gcm_and_alpn),
		BB_TEST(a_client_without_alpn_is_served),
		BB_TEST(tls11_is_refused),
		BB_TEST(a_cbc_suite_is_refused),
		BB_TEST(chacha20_is_served_to_who_asks_only_for_it),
		BB_TEST(a_session_is_resumed),
		BB_TEST(plaintext_to_the_tls_port_is_closed),
		BB_TEST(a_stalled_handshake_is_closed_at_the_head_timeout),
		BB_TEST(an_rsa_pair_is_served_with_ecdhe_rsa),
		BB_TEST(metrics_tls_serves_the_metrics_listener),
		BB_TEST(handshakes_are_counted_by_result),
		BB_TEST(closed_slots_beyond_the_warm_ones_go_back_to_the_kernel),
		BB_TEST(bad_pairs_exit_2_naming_the_flag),
		/* Last: it changes the group server's certificate. */
		BB_TEST(sighup_reloads_the_pair_and_refuses_a_bad_one),
	};
	return H_RUN_GROUP("tls", tests, setup, h_group_teardown);
}
