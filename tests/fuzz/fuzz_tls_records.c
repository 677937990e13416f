/*
 * The TLS transport (src/net/tls.c) as a server: any bytes, in pieces cut
 * where the input's hash says, go to its recv path, with the records it
 * answers taken as the socket would (whole or in part), time passing now
 * and then (the head deadline closes a handshake that never ends), and
 * the peer's FIN or a reset at the end. Whatever comes in: no crash, no
 * read or write out of bounds, nothing sent once the transport failed,
 * and the connection always releasable once closed. The corpus holds
 * real ClientHellos (openssl s_client) and a plaintext request.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/fake_host.h"
#include "fuzz_util.h"
#include "ringside/api.h"
#include "ringside/config.h"
#include "ringside/metrics.h"
#include "ringside/server.h"
#include "ringside/tls.h"

/* A throwaway EC P-256 pair made for this fuzz target only (CN=fuzz-only):
 * it protects nothing. */
static const char fuzz_key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJWJMiFV2Hy/5rUdI\n"
	"om/Jruc4fDKx/mVr8euGLBbWdmahRANCAAQY3Ew2h9TCe20Tss8J9xH4xBVts2pQ\n"
	"RSUugDXGQdJH1gZ2rHgy5YcjINls+vwaalmRFoVILCwP/LibroJQ8S8o\n"
	"-----END PRIVATE KEY-----\n";
static const char fuzz_cert_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBfjCCASWgAwIBAgIUPeOFhjEO1ofjvJeMikXEZVoG/aYwCgYIKoZIzj0EAwIw\n"
	"FDESMBAGA1UEAwwJZnV6ei1vbmx5MCAXDTI2MTIwMjE2NTIzNloYDzIxMjYxMTA4\n"
	"MTY1MjM2WjAUMRIwEAYDVQQDDAlmdXp6LW9ubHkwWTATBgcqhkjOPQIBBggqhkjO\n"
	"PQMBBwNCAAQY3Ew2h9TCe20Tss8J9xH4xBVts2pQRSUugDXGQdJH1gZ2rHgy5Ycj\n"
	"INls+vwaalmRFoVILCwP/LibroJQ8S8oo1MwUTAdBgNVHQ4EFgQUTMvaz0CQ5G4F\n"
	"mgwrwxNXOEcSBcgwHwYDVR0jBBgwFoAUTMvaz0CQ5G4FmgwrwxNXOEcSBcgwDwYD\n"
	"VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAIDkE3Q4N3Kp00D0h9SVay\n"
	"og0cXDXJhVI+uMVV2ZkBiwIgKJz+BrLlboTd3IwINTzBZet/iS6z8Lhv0Y1Vlj6J\n"
	"AXY=\n"
	"-----END CERTIFICATE-----\n";

static struct transport transport;
static bool closed;

/* The goodbye the worker would send before its close. */
static void send_goodbye(struct server *s, struct server_conn *c)
{
	closed = true;
	if (!transport.error)
		transport.cls->close(&transport, s, c);
}


static struct config cfg;
static struct metrics_registry metrics;
static struct api api;
static struct server server;
static struct server_conn conn;
static struct tls_pool pool;
static uint64_t now_ns = 1000000000000ull;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

static void set_up(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	char dir[] = "/tmp/fuzz-tls-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char cert[64], key[64], err[256];
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	write_file(cert, fuzz_cert_pem);
	write_file(key, fuzz_key_pem);
	char *argv[] = {"ringside", "--workers", "1", "--max-connections", "4", "--log-level",
			"error", "--tls-cert", cert, "--tls-key", key, NULL};
	CHECK(config_load(&cfg, 11, argv, NULL, stdout, stderr) == CONFIG_SERVE);
	struct tls_identity *id = NULL;
	CHECK(tls_identity_load(cert, key, &id, err, sizeof err) == 0);
	tls_identity_install(id);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	CHECK(metrics_registry_init(&metrics, &api_router, 1, cfg.max_connections) == 0);
	CHECK(api_init(&api, &cfg, 1, NULL) == 0);
	struct server_params p = {
		.cfg = &cfg, .router = &api_router, .metrics = &metrics, .api = &api,
		.slots = 4, .request_id_nonce = 1, .host = &fake_server_host,
	};
	fake_host.on_close = send_goodbye;
	CHECK(server_init(&server, &p) == 0);
	CHECK(tls_pool_init(&pool, 1) == 0);
}

/* Takes what the transport has to send, as a socket would: all of it,
 * or part (cut by h). */
static void drain(uint64_t h)
{
	const char *p;
	size_t n;
	for (int i = 0; i < 64 && (p = transport.cls->output(&transport, &server, &conn, &n)) &&
			n;
	     i++) {
		CHECK(!transport.error);
		size_t took = (h & 3) == 0 && n > 1 ? n / 2 : n;
		volatile char first = p[0], last = p[took - 1]; /* readable, as send reads it */
		(void)first;
		(void)last;
		transport.cls->sent(&transport, &server, &conn, took);
		h >>= 2;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	set_up();
	char *in = fuzz_copy(data, size);
	uint64_t h = fuzz_hash(data, size);
	closed = false;
	server_set_clock(&server, now_ns, (int64_t)time(NULL) * 1000000000);
	tls_conn_open(&pool, 0, &transport);
	CHECK(!transport.error);
	server_conn_open(&server, &conn, 0, 0, 0);
	for (size_t at = 0; at < size && !closed;) {
		size_t n = 1 + (h & 0x3ff);
		h = h * 6364136223846793005ull + 1442695040888963407ull;
		if (n > size - at)
			n = size - at;
		transport.cls->recv(&transport, &server, &conn, in + at, n);
		at += n;
		if (transport.error) {
			server_conn_reset(&server, &conn); /* what the worker does */
			break;
		}
		drain(h);
		if ((h >> 60) == 0) { /* now and then, time passes */
			now_ns += 3000000000ull;
			server_set_clock(&server, now_ns, (int64_t)time(NULL) * 1000000000);
			server_tick(&server);
			drain(h);
		}
		server_pass_begin(&server);
		server_pass_end(&server);
		drain(h);
	}
	if (!server_conn_closing(&conn)) {
		if (h & 1)
			server_conn_eof(&server, &conn);
		drain(h);
		server_conn_abort(&server, &conn);
	}
	CHECK(server_conn_releasable(&conn));
	server_conn_release(&server, &conn);
	tls_conn_release(&pool, &server, &transport);
	now_ns += 1000000;
	free(in);
	return 0;
}
