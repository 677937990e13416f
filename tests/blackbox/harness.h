/*
 * Black-box test harness: starts the real server binary ($RINGSIDE_BIN,
 * default build/ringside) on a free loopback port and talks HTTP/1.1 to it
 * over plain sockets, or over TLS in the harness's TLS mode
 * (RINGSIDE_BB_TLS=1, tls_client.h; `make test-tls`). External programs (promtool, prometheus) only through
 * h_run_prog / h_proc_start.
 *
 * Every wait is bounded in time and every loop in count. Helpers whose name
 * starts with `expect_` or that say "fails the test" call cmocka's fail_msg()
 * with a message that includes the tail of each running server's stderr, so
 * a red test says what the user would have seen and what the server logged.
 *
 * This is the umbrella a test includes; the harness is a library in lib/
 * (built into libharness.a), one idea per file:
 *
 *   check.h        failing with diagnostics, CHECK, running a group
 *   clock.h        clocks, deadlines, the server's ISO 8601 timestamps
 *   files.h        reading whole files, the sample agent reports
 *   proc.h         child processes: spawn, capture, registry, stop, run
 *   server.h       the server under test, group fixtures, h_run
 *   sock.h         loopback client sockets with deadlines
 *   tls_client.h   the TLS mode (RINGSIDE_BB_TLS=1): HTTPS servers, TLS clients
 *   http_client.h  buffered connections, responses, chunks, exchanges
 *   http_fields.h  a response's header fields
 *   http_expect.h  what every response must carry, checked
 *   json.h         loose JSON member lookup, strict JSON syntax check
 *   expo.h         Prometheus / OpenMetrics bodies, line by line
 *   token.h        HS256 agent tokens minted by the tests
 *   agent_api.h    an agent's side of the API: Basic, Bearer calls, a
 *                  token request, an ingest report
 *   prober.h       a /health prober thread
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

#include "lib/agent_api.h"
#include "lib/check.h"
#include "lib/clock.h"
#include "lib/expo.h"
#include "lib/files.h"
#include "lib/http_client.h"
#include "lib/http_expect.h"
#include "lib/http_fields.h"
#include "lib/json.h"
#include "lib/proc.h"
#include "lib/prober.h"
#include "lib/prometheus.h"
#include "lib/server.h"
#include "lib/sock.h"
#include "lib/tls_client.h"
#include "lib/token.h"

/* Helpers that can fail the test, wrapped to record the caller's line.
 * (A parenthesised name calls the function, not the macro.) They come
 * after every declaration, and the library's own files never include this
 * header: a call between helpers keeps the test's line. */
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
