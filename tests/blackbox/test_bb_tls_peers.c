/*
 * Black-box: HTTPS as independent peers see it.
 *
 * 1. A real Prometheus (/usr/bin/prometheus, Go's TLS client) scrapes
 *    /metrics over TLS (`scheme: https`, `tls_config: {ca_file: ...}`,
 *    the certificate checked against the target's IP) every second, on the
 *    main listener (where /metrics is without --metrics-listen) and, where
 *    the binary has --metrics-tls, on --metrics-listen with
 *    --metrics-tls true; each target must be `up` 1.
 * 2. testssl.sh (Debian's /usr/bin/testssl 3.0.8) scans the TLS port:
 *    protocols, suites, forward secrecy, known flaws (Heartbleed, ROBOT,
 *    CCS, renegotiation, CRIME/BREACH, ...); its JSON must hold no finding
 *    above LOW, and none at all for TLS 1.0, 1.1 or Lucky 13 (CBC), which
 *    testssl rates LOW and we do not serve. Two findings are not the server's and are listed, not
 *    counted: cert_revocation (the test certificate is self-signed, so it
 *    names no CRL or OCSP responder: a real CA's certificate does) and
 *    security_headers (browser-page headers such as X-Frame-Options and
 *    CSP on GET /, a JSON API's 404; not TLS).
 *
 * The certificate is scripts/tls_cert.sh's (EC P-256, localhost and
 * 127.0.0.1), made in a temporary directory.
 *
 * A binary without --tls-cert, or a missing prometheus, testssl or curl
 * (scripts/deps.sh installs them), fails the group: a skip here would
 * pass while HTTPS is broken. Bounded: Prometheus's
 * targets are up within 30 s of its start or the test fails; testssl is
 * killed after 200 s (it takes about 40 s on loopback).
 *
 * RINGSIDE_BB_TLS_PEER=PORT (with RINGSIDE_BB_TLS_CA=PEM) points both at
 * a TLS server already running on 127.0.0.1:PORT instead of Ringside, to
 * check the test itself against another server (nginx); the
 * --metrics-listen target is then left out.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TESTSSL "/usr/bin/testssl"
#define CURL "/usr/bin/curl"
#define TESTSSL_LIMIT_MS 200000

static const char *tmp_dir;
static char cert[192], key[192];
static bool has_metrics_tls; /* false only against a peer (RINGSIDE_BB_TLS_PEER) */
static uint16_t peer_port; /* RINGSIDE_BB_TLS_PEER */

static int group_setup(void **state)
{
	struct run_result *r = run_new();
	const char *peer = getenv("RINGSIDE_BB_TLS_PEER");

	(void)state;
	tmp_dir = h_scratch_dir("tls-peers");
	if (peer && *peer) {
		const char *ca = getenv("RINGSIDE_BB_TLS_CA");

		peer_port = (uint16_t)atoi(peer);
		CHECK(peer_port > 0 && ca && *ca, "RINGSIDE_BB_TLS_PEER=%s needs a port and "
		      "RINGSIDE_BB_TLS_CA=PEM", peer);
		snprintf(cert, sizeof(cert), "%s", ca);
	} else {
		h_run((const char *const[]){ "--help", NULL }, NULL, 5000, r);
		CHECK(strstr(r->out, "--tls-cert") || strstr(r->err, "--tls-cert"),
		      "the binary has no --tls-cert");
		CHECK(strstr(r->out, "--metrics-tls") || strstr(r->err, "--metrics-tls"),
		      "the binary has no --metrics-tls");
		has_metrics_tls = true;
	}
	CHECK(access(H_PROMETHEUS, X_OK) == 0, H_PROMETHEUS " is not installed (scripts/deps.sh)");
	CHECK(access(TESTSSL, X_OK) == 0, TESTSSL " is not installed (scripts/deps.sh)");
	CHECK(access(CURL, X_OK) == 0, CURL " is not installed (scripts/deps.sh)");
	if (!peer_port) {
		const char *const argv[] = { "scripts/tls_cert.sh", tmp_dir, "ec", NULL };

		h_run_prog(argv, NULL, 0, 30000, r);
		CHECK(r->exit_code == 0, "scripts/tls_cert.sh %s: exit %d: %s", tmp_dir,
		      r->exit_code, r->err);
		snprintf(cert, sizeof(cert), "%s/cert.pem", tmp_dir);
		snprintf(key, sizeof(key), "%s/key.pem", tmp_dir);
	}
	free(r);
	return 0;
}

/* GET https://127.0.0.1:PORT/PATH with curl, the certificate checked;
 * returns the status (0: no answer). */
static int https_status(uint16_t port, const char *path)
{
	struct run_result *r = run_new();
	char *url = h_strf("https://127.0.0.1:%u%s", port, path);
	const char *const argv[] = { CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
				     "--max-time", "2", "--cacert", cert, url, NULL };

	h_run_prog(argv, NULL, 0, 5000, r);
	int st = r->exit_code == 0 ? atoi(r->out) : 0;

	free(url);
	free(r);
	return st;
}

/* Ringside with TLS on --listen (plus extra args), waited for over HTTPS
 * (server_start waits over plain HTTP). */
static void start_tls_server(struct server *s, const char *const extra[])
{
	const char *args[16] = { "--workers", "1", "--tls-cert", cert, "--tls-key", key };
	size_t n = 6;

	for (size_t i = 0; extra && extra[i] && n < 15; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	const struct server_opts o = { .args = args, .no_wait = true };

	server_start_opts(s, &o);
	int64_t deadline = h_now_ms() + 10000;

	for (int i = 0; i < 200 && h_now_ms() < deadline; i++) {
		if (server_wait_exit(s, 0))
			H_FAIL("ringside exited with status %d at start with TLS", s->exit_code);
		if (https_status(s->port, "/health") == 200)
			return;
		h_sleep_ms(50);
	}
	H_FAIL("GET https://127.0.0.1:%u/health (--cacert the test certificate) did not "
	       "answer 200 within 10 s", s->port);
}

/* Prometheus's own API over plain HTTP, through curl: the body. */
static void prom_get(uint16_t pport, const char *path, char *body, size_t cap)
{
	struct run_result *r = run_new();
	char *url = h_strf("http://127.0.0.1:%u%s", pport, path);
	const char *const argv[] = { CURL, "-sS", "--max-time", "2", "-g", url, NULL };

	h_run_prog(argv, NULL, 0, 5000, r);
	snprintf(body, cap, "%s", r->exit_code == 0 ? r->out : "");
	free(url);
	free(r);
}

static void prometheus_scrapes_metrics_over_tls_and_the_targets_are_up(void **state)
{
	struct server rs = { 0 }, rm = { 0 }, prom;
	uint16_t pport, main_port, metrics_port = 0;
	char *body = malloc(1 << 16);

	(void)state;
	CHECK(body != NULL, "out of memory");
	if (peer_port) {
		main_port = peer_port;
	} else {
		start_tls_server(&rs, NULL);
		main_port = rs.port;
		if (has_metrics_tls) {
			metrics_port = h_free_port();
			char *ml = h_strf("127.0.0.1:%u", metrics_port);

			start_tls_server(&rm, (const char *const[]){ "--metrics-listen", ml,
								   "--metrics-tls", "true", NULL });
			free(ml);
		} else {
			print_message("no --metrics-tls in --help: only the main listener is scraped\n");
		}
	}

	char *scrape = h_strf("  - job_name: main\n"
			      "    scheme: https\n"
			      "    tls_config: {ca_file: '%s'}\n"
			      "    static_configs: [{targets: ['127.0.0.1:%u']}]\n", cert, main_port);
	if (metrics_port) {
		char *more = h_strf("%s  - job_name: metrics_listen\n"
				    "    scheme: https\n"
				    "    tls_config: {ca_file: '%s'}\n"
				    "    static_configs: [{targets: ['127.0.0.1:%u']}]\n",
				    scrape, cert, metrics_port);
		free(scrape);
		scrape = more;
	}
	h_prometheus_start(&prom, tmp_dir, scrape, &pport);
	free(scrape);

	/* Each job's `up` is 1 within 30 s of the start (targets are applied
	 * up to 5 s after it, then scraped every second). */
	const char *jobs[2] = { "main", "metrics_listen" };
	int njobs = metrics_port ? 2 : 1;
	bool up[2] = { false, false };
	int64_t deadline = h_now_ms() + 30000;

	while (h_now_ms() < deadline && !(up[0] && (njobs < 2 || up[1]))) {
		if (server_wait_exit(&prom, 0))
			H_FAIL("prometheus exited with status %d", prom.exit_code);
		for (int j = 0; j < njobs; j++) {
			char *q = h_strf("/api/v1/query?query=up{job=\"%s\"}", jobs[j]);

			prom_get(pport, q, body, 1 << 16);
			if (strstr(body, "\"value\":[") && strstr(body, ",\"1\"]"))
				up[j] = true;
			free(q);
		}
		h_sleep_ms(250);
	}
	prom_get(pport, "/api/v1/targets", body, 1 << 16);
	for (int j = 0; j < njobs; j++)
		CHECK(up[j], "job %s: `up` not 1 within 30 s of Prometheus's start; "
		      "targets: %.1500s", jobs[j], body);
	print_message("prometheus: up = 1 over https for %s%s\n", jobs[0],
		      njobs == 2 ? " and metrics_listen" : "");

	int pcode = server_stop(&prom);

	CHECK(pcode == 0 || pcode == 128 + SIGTERM, "prometheus exit status after SIGTERM: %d",
	      pcode);
	if (!peer_port) {
		if (metrics_port)
			CHECK(server_stop(&rm) == 0, "ringside (--metrics-tls) exit status after SIGTERM");
		CHECK(server_stop(&rs) == 0, "ringside exit status after SIGTERM");
	}
	free(body);
}

/* The string value of member "name" between p and end (a flat testssl object). */
static void member(const char *p, const char *end, const char *name, char *out, size_t cap)
{
	char pat[32];
	const char *k, *v, *e;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\"", name);
	k = strstr(p, pat);
	if (!k || k > end || !(v = strchr(k + strlen(pat), ':')) || !(v = strchr(v, '"')) || v > end)
		return;
	for (e = v + 1; *e && *e != '"'; e++)
		if (*e == '\\' && e[1])
			e++;
	snprintf(out, cap, "%.*s", (int)(e - v - 1), v + 1);
}

/* Not the server's: see the comment at the top. */
static bool not_the_servers(const char *id)
{
	return strcmp(id, "cert_revocation") == 0 || strcmp(id, "security_headers") == 0;
}

static void testssl_finds_nothing_above_low(void **state)
{
	struct server rs = { 0 };
	char json[192], portarg[32];
	struct run_result *r = run_new();
	uint16_t port;

	(void)state;
	if (peer_port) {
		port = peer_port;
	} else {
		start_tls_server(&rs, NULL);
		port = rs.port;
	}
	snprintf(json, sizeof(json), "%s/testssl.json", tmp_dir);
	snprintf(portarg, sizeof(portarg), "127.0.0.1:%u", port);
	remove(json);
	const char *const argv[] = {
		TESTSSL, "--quiet", "--color", "0", "--severity", "LOW", "--warnings", "off",
		"--nodns", "none", "--connect-timeout", "5", "--openssl-timeout", "5",
		"--add-ca", cert, "--jsonfile", json, portarg, NULL
	};
	int64_t t0 = h_now_ms();

	h_run_prog(argv, NULL, 0, TESTSSL_LIMIT_MS, r);
	CHECK(r->exit_code != -1, "testssl did not finish within %d s; its output ends: %s",
	      TESTSSL_LIMIT_MS / 1000, r->out + (strlen(r->out) > 2000 ? strlen(r->out) - 2000 : 0));
	char *body = malloc(1 << 20);

	CHECK(body != NULL, "out of memory");
	ssize_t n = h_read_file(json, body, 1 << 20);

	CHECK(n > 0 && strchr(body, '['), "testssl (exit %d) wrote no JSON to %s; stdout "
	      "ends: %s; stderr: %.1000s", r->exit_code, json,
	      r->out + (strlen(r->out) > 2000 ? strlen(r->out) - 2000 : 0), r->err);
	/* Proof that it reached the server: testssl's stdout says "Done"
	 * with the target, and scan_problem / FATAL would be in the JSON. */
	CHECK(strstr(r->out, "Done") && strstr(r->out, portarg),
	      "testssl's output has no \"Done ... %s\": %.2000s", portarg, r->out);

	char bad[4096] = "", id[128], sev[32], finding[512];
	size_t blen = 0;
	int nbad = 0, nseen = 0;

	for (const char *p = strstr(body, "\"id\""); p; p = strstr(p + 1, "\"id\"")) {
		const char *end = strchr(p, '}');

		if (!end)
			break;
		member(p, end, "id", id, sizeof(id));
		member(p, end, "severity", sev, sizeof(sev));
		member(p, end, "finding", finding, sizeof(finding));
		nseen++;
		bool above_low = strcmp(sev, "MEDIUM") == 0 || strcmp(sev, "HIGH") == 0 ||
				 strcmp(sev, "CRITICAL") == 0 || strcmp(sev, "FATAL") == 0;

		/* testssl 3.0.8 rates TLS 1.0/1.1 offered and CBC suites (Lucky
		 * 13) only LOW; we promise neither: any entry for them fails. */
		if (strcmp(id, "TLS1") == 0 || strcmp(id, "TLS1_1") == 0 ||
		    strcmp(id, "LUCKY13") == 0)
			above_low = true;

		if (above_low && not_the_servers(id)) {
			print_message("testssl: %s %s \"%s\" (not the server's: not counted)\n", sev,
				      id, finding);
		} else if (above_low) {
			nbad++;
			if (blen < sizeof(bad) - 1)
				blen += (size_t)snprintf(bad + blen, sizeof(bad) - blen,
							 "\n  %s %s: %s", sev, id, finding);
		} else {
			print_message("testssl: %s %s \"%s\"\n", sev, id, finding);
		}
	}
	CHECK(nbad == 0, "testssl found %d finding(s) above LOW on %s:%s", nbad, portarg, bad);
	print_message("testssl: %d finding(s) at LOW or above read, none above LOW counted (%lld s)\n",
		      nseen, (long long)((h_now_ms() - t0) / 1000));
	free(body);
	free(r);
	if (!peer_port)
		CHECK(server_stop(&rs) == 0, "ringside exit status after SIGTERM");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BB_TEST(prometheus_scrapes_metrics_over_tls_and_the_targets_are_up),
		BB_TEST(testssl_finds_nothing_above_low),
	};

	h_init();
	h_plain_only_all("the TLS tests configure TLS themselves (curl, testssl, peers); the plain "
			 "pass runs them");
	return H_RUN_GROUP("blackbox_tls_peers", tests, group_setup, NULL);
}
