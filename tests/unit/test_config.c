/* Flags, environment variables and their values (include/ringside/config.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>

#include "ringside/config.h"

static const char *fake_env[8][2];

static char *env_lookup(const char *name)
{
	for (size_t i = 0; i < 8 && fake_env[i][0]; i++)
		if (!strcmp(fake_env[i][0], name))
			return (char *)fake_env[i][1];
	return NULL;
}

static int reset_env(void **state)
{
	(void)state;
	memset(fake_env, 0, sizeof fake_env);
	return 0;
}

/* Loads argv (NULL-terminated) and returns the action; err text in errbuf. */
static enum config_action load(struct config *cfg, char *errbuf, size_t cap, ...)
{
	char *argv[16] = {"ringside"};
	int argc = 1;
	va_list ap;
	va_start(ap, cap);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 15;)
		argv[argc++] = a;
	va_end(ap);
	FILE *out = fopen("/dev/null", "w");
	FILE *err = fmemopen(errbuf, cap, "w");
	enum config_action r = config_load(cfg, argc, argv, env_lookup, out, err);
	fclose(err);
	fclose(out);
	return r;
}

static void defaults_match_the_documented_table(void **state)
{
	(void)state;
	struct config c;
	char err[256] = "";
	assert_int_equal(load(&c, err, sizeof err, NULL), CONFIG_SERVE);
	assert_string_equal(err, "");
	assert_string_equal(c.listen.text, "127.0.0.1:3000");
	assert_int_equal(c.listen.addr.ss_family, AF_INET);
	assert_int_equal(((struct sockaddr_in *)(void *)&c.listen.addr)->sin_port, htons(3000));
	assert_false(c.metrics_listen.set);
	assert_int_equal(c.sse_interval_ms, 1000);
	assert_int_equal(c.workers, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(c.max_connections, 16384);
	assert_int_equal(c.max_header_bytes, 16384);
	assert_int_equal(c.max_body_bytes, 1024 * 1024);
	assert_int_equal(c.header_timeout_ms, 10000);
	assert_int_equal(c.body_timeout_ms, 30000);
	assert_int_equal(c.keepalive_timeout_ms, 60000);
	assert_int_equal(c.shutdown_timeout_ms, 5000);
	assert_int_equal(c.log_level, LOG_INFO);
	assert_string_equal(c.jwt_secret_file, "");
	assert_string_equal(c.jwt_audience, "ringside");
	assert_int_equal(c.ingest_rate_milli, 0);
	assert_int_equal(c.ingest_slots, 256);
	assert_int_equal(c.body_min_rate, 1024);
	assert_int_equal(c.body_rate_grace_ms, 5000);
	assert_int_equal(c.cpu_affinity, CPU_AFFINITY_OFF);
	assert_string_equal(c.access_log, "");
	assert_int_equal(c.fleet_max_agents, 100000);
	assert_true(c.fleet_memory_bytes == 4ull << 30);
	assert_int_equal(c.fleet_stale_ms, 180000);
	assert_int_equal(c.fleet_ttl_ms, 300000);
	assert_int_equal(c.fleet_max_series, 1000000);
	assert_int_equal(c.fleet_forget_ms, 86400000);
	assert_string_equal(c.fleet_state, "");
	assert_int_equal(c.fleet_save_interval_ms, 0);
	assert_string_equal(c.database_url, "");
	assert_int_equal(c.db_connections, 4);
	assert_int_equal(c.db_timeout_ping_ms, 1000);
	assert_int_equal(c.db_timeout_read_ms, 2000);
	assert_int_equal(c.db_timeout_write_ms, 5000);
	assert_int_equal(c.db_queue_depth, 1024);
}

static void flag_overrides_env_which_overrides_default(void **state)
{
	(void)state;
	struct config c;
	char err[256] = "";
	fake_env[0][0] = "RINGSIDE_WORKERS";
	fake_env[0][1] = "3";
	fake_env[1][0] = "RINGSIDE_MAX_BODY_BYTES";
	fake_env[1][1] = "2MiB";
	assert_int_equal(load(&c, err, sizeof err, "--workers", "5", NULL), CONFIG_SERVE);
	assert_int_equal(c.workers, 5);
	assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024);
	assert_int_equal(load(&c, err, sizeof err, "serve", "--workers=7", NULL), CONFIG_SERVE);
	assert_int_equal(c.workers, 7);
}

static void bad_values_name_their_source(void **state)
{
	(void)state;
	static const char *const cases[][3] = {
		{"--bogus", "1", "--bogus"},
		{"--workers", "0x2", "--workers"},
		{"--workers", "0", "--workers"},
		{"--workers", "abc", "--workers"},
		{"--max-body-bytes", "-1", "--max-body-bytes"},
		{"--max-header-bytes", "12", "--max-header-bytes"},
		{"--header-timeout", "xyz", "--header-timeout"},
		{"--keepalive-timeout", "10h", "--keepalive-timeout"},
		{"--listen", "nonsense", "--listen"},
		{"--listen", "127.0.0.1:70000", "--listen"},
		{"--log-level", "loud", "--log-level"},
		{"--jwt-issuer", "", "--jwt-issuer"},
		{"--ingest-rate-limit", "-1", "--ingest-rate-limit"},
		{"--ingest-rate-limit", "0.0001", "--ingest-rate-limit"},
		{"--fleet-memory", "1M", "--fleet-memory"},
		{"--fleet-ttl", "0", "--fleet-ttl"},
		{"--ingest-limits", "containers=0", "--ingest-limits"},
		{"--fleet-ttl", "60s", "--fleet-stale"},
		{"--db-connections", "0", "--db-connections"},
		{"--db-connections", "65", "--db-connections"},
		{"--db-queue-depth", "1000", "--db-queue-depth"},
		{"--db-queue-depth", "1", "--db-queue-depth"},
		{"--db-timeout-read", "soon", "--db-timeout-read"},
		{"--db-timeout-ping", "0", "--db-timeout-ping"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct config c;
		char err[512] = "";
		assert_int_equal(load(&c, err, sizeof err, cases[i][0], cases[i][1], NULL),
				 CONFIG_ERROR);
		assert_non_null(strstr(err, cases[i][2]));
	}
	struct config c;
	char err[512] = "";
	assert_int_equal(load(&c, err, sizeof err, "--workers", NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "--workers"));
	fake_env[0][0] = "RINGSIDE_WORKERS";
	fake_env[0][1] = "abc";
	assert_int_equal(load(&c, err, sizeof err, NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "RINGSIDE_WORKERS"));
}

static void sizes_and_durations_parse_with_suffixes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(config_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(config_parse_size("4k", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(config_parse_size("4KiB", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(config_parse_size("2M", &v), 0);
	assert_int_equal(v, 2 << 20);
	assert_int_equal(config_parse_size("", &v), -EINVAL);
	assert_int_equal(config_parse_size("1.5M", &v), -EINVAL);
	assert_int_equal(config_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(config_parse_size("18446744073709551615G", &v), -EINVAL);
	uint32_t ms;
	assert_int_equal(config_parse_duration_ms("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(config_parse_duration_ms("10s", &ms), 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(config_parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(config_parse_duration_ms("7", &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(config_parse_duration_ms("1h", &ms), 0); /* ringside token --ttl 1h */
	assert_int_equal(ms, 3600000);
	assert_int_equal(config_parse_duration_ms("2d", &ms), 0);
	assert_int_equal(ms, 2 * 86400000);
	assert_int_equal(config_parse_duration_ms("50d", &ms), -EINVAL); /* past 32 bits of ms */
	assert_int_equal(config_parse_duration_ms("1H", &ms), -EINVAL);
	assert_int_equal(config_parse_duration_ms("s", &ms), -EINVAL);
	assert_int_equal(config_parse_duration_ms("99999999999", &ms), -EINVAL);
	static const struct {
		const char *text;
		int r;
		uint32_t milli;
	} rates[] = {
		{"0", 0, 0}, {"10", 0, 10000}, {"0.5", 0, 500}, {"2.25", 0, 2250},
		{"0.001", 0, 1}, {"1.2500", 0, 1250}, {"4294967", 0, 4294967000u},
		{"0.0005", -EINVAL, 0}, {"4294968", -EINVAL, 0}, {"", -EINVAL, 0},
		{"1.", -EINVAL, 0}, {".5", -EINVAL, 0}, {"1e3", -EINVAL, 0}, {"1,5", -EINVAL, 0},
	};
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
		ms = 12345;
		assert_int_equal(config_parse_rate_milli(rates[i].text, &ms), rates[i].r);
		if (rates[i].r == 0)
			assert_int_equal(ms, rates[i].milli);
	}
	struct ingest_limits lim = {.depth = 9};
	assert_int_equal(config_parse_ingest_limits("containers=64,string=4KiB", &lim), 0);
	assert_int_equal(lim.containers, 64);
	assert_int_equal(lim.string_bytes, 4096);
	assert_int_equal(lim.depth, 9); /* untouched */
	assert_int_equal(config_parse_ingest_limits("", &lim), 0);
	static const char *const bad_limits[] = {
		"containers", "containers=", "containers=0", "containers=257", "bogus=1",
		"containers=1,", ",containers=1", "depth=65", "arena=1G", "containers=1;depth=2",
	};
	for (size_t i = 0; i < sizeof bad_limits / sizeof bad_limits[0]; i++) {
		struct ingest_limits before = lim;
		assert_int_equal(config_parse_ingest_limits(bad_limits[i], &lim), -EINVAL);
		assert_memory_equal(&before, &lim, sizeof lim); /* nothing half-applied */
	}
	struct sockaddr_storage a;
	char text[64];
	assert_int_equal(config_parse_listen("localhost:0", &a), 0);
	assert_int_equal(a.ss_family, AF_INET);
	assert_int_equal(config_parse_listen(":80", &a), -EINVAL);
	assert_int_equal(config_parse_listen("1.2.3.4:", &a), -EINVAL);
	assert_int_equal(config_parse_listen("1.2.3.4:+5", &a), -EINVAL);
	assert_int_equal(config_parse_listen("1.2.3.4:65536", &a), -EINVAL);
	/* IPv6 in brackets, [::] dual-stack (--listen [::1]:3000 was refused). */
	assert_int_equal(config_parse_listen("[::1]:3000", &a), 0);
	assert_int_equal(a.ss_family, AF_INET6);
	assert_int_equal(config_sockaddr_len(&a), sizeof(struct sockaddr_in6));
	config_format_addr(&a, 3000, text, sizeof text);
	assert_string_equal(text, "[::1]:3000");
	assert_int_equal(config_parse_listen("[::]:0", &a), 0);
	config_format_addr(&a, 41234, text, sizeof text); /* the port bound */
	assert_string_equal(text, "[::]:41234");
	assert_int_equal(config_parse_listen("[fe80::1%eth0]:80", &a), -EINVAL);
	assert_int_equal(config_parse_listen("::1:3000", &a), -EINVAL);
	assert_int_equal(config_parse_listen("[::1]", &a), -EINVAL);
	assert_int_equal(config_parse_listen("[::1:80", &a), -EINVAL);
	assert_int_equal(config_parse_listen("[]:80", &a), -EINVAL);
	assert_int_equal(config_parse_listen("[127.0.0.1]:80", &a), -EINVAL);
	assert_int_equal(config_parse_listen("127.0.0.1:3000", &a), 0);
	config_format_addr(&a, 3000, text, sizeof text);
	assert_string_equal(text, "127.0.0.1:3000");
}

/* An agent forgotten while /metrics/fleet still shows it would vanish
 * mid-life: --fleet-forget is 0 or at least --fleet-ttl. */
static void fleet_forget_is_never_shorter_than_the_ttl(void **state)
{
	(void)state;
	struct config c;
	char err[512] = "";
	assert_int_equal(load(&c, err, sizeof err, "--fleet-forget", "60s", NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "--fleet-forget"));
	assert_int_equal(load(&c, err, sizeof err, "--fleet-forget", "0", NULL), CONFIG_SERVE);
	assert_int_equal(c.fleet_forget_ms, 0);
	assert_int_equal(load(&c, err, sizeof err, "--fleet-forget", "7d", "--fleet-state",
			      "var/fleet.state", NULL),
			 CONFIG_SERVE);
	assert_int_equal(c.fleet_forget_ms, 7u * 86400000u);
	assert_string_equal(c.fleet_state, "var/fleet.state");
}

/* The database URL: the flag, else RINGSIDE_DATABASE_URL, else the
 * conventional DATABASE_URL (what platforms that provision a database
 * set), else none. */
static void database_url_comes_from_flag_then_ours_then_the_conventional_variable(void **state)
{
	(void)state;
	struct config c;
	char err[512] = "";
	fake_env[0][0] = "DATABASE_URL";
	fake_env[0][1] = "postgresql://platform/db";
	assert_int_equal(load(&c, err, sizeof err, NULL), CONFIG_SERVE);
	assert_string_equal(c.database_url, "postgresql://platform/db");
	fake_env[1][0] = "RINGSIDE_DATABASE_URL";
	fake_env[1][1] = "postgresql://ours/db";
	assert_int_equal(load(&c, err, sizeof err, NULL), CONFIG_SERVE);
	assert_string_equal(c.database_url, "postgresql://ours/db");
	assert_int_equal(load(&c, err, sizeof err, "--database-url", "host=/tmp dbname=flag", NULL),
			 CONFIG_SERVE);
	assert_string_equal(c.database_url, "host=/tmp dbname=flag");
	memset(fake_env, 0, sizeof fake_env);
	assert_int_equal(load(&c, err, sizeof err, "--database-url=postgresql:///x", "--db-connections",
			      "16", "--db-timeout-ping", "250ms", "--db-timeout-read", "3s",
			      "--db-timeout-write", "1m", "--db-queue-depth", "4096", NULL),
			 CONFIG_SERVE);
	assert_string_equal(c.database_url, "postgresql:///x");
	assert_int_equal(c.db_connections, 16);
	assert_int_equal(c.db_timeout_ping_ms, 250);
	assert_int_equal(c.db_timeout_read_ms, 3000);
	assert_int_equal(c.db_timeout_write_ms, 60000);
	assert_int_equal(c.db_queue_depth, 4096);
}

/* A URL may hold a password: a message about a bad one never echoes it,
 * and names where it came from. */
static void a_bad_database_url_is_not_echoed(void **state)
{
	(void)state;
	struct config c;
	char err[512] = "";
	static char url[CONFIG_URL_MAX + 64];
	snprintf(url, sizeof url, "postgresql://ringside:hunter2@db.example/ringside?x=");
	memset(url + strlen(url), 'y', CONFIG_URL_MAX);
	assert_int_equal(load(&c, err, sizeof err, "--database-url", url, NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "--database-url"));
	assert_null(strstr(err, "hunter2"));
	fake_env[0][0] = "DATABASE_URL";
	fake_env[0][1] = url;
	assert_int_equal(load(&c, err, sizeof err, NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "DATABASE_URL"));
	assert_null(strstr(err, "hunter2"));
}

static void choices_take_their_names_only(void **state)
{
	(void)state;
	struct config c;
	char err[512] = "";
	assert_int_equal(load(&c, err, sizeof err, "--cpu-affinity", "auto", NULL), CONFIG_SERVE);
	assert_int_equal(c.cpu_affinity, CPU_AFFINITY_AUTO);
	assert_int_equal(load(&c, err, sizeof err, "--cpu-affinity", "pinned", NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "--cpu-affinity"));
	assert_non_null(strstr(err, "off or auto"));
	assert_int_equal(load(&c, err, sizeof err, "--log-level", "DEBUG", NULL), CONFIG_SERVE);
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(load(&c, err, sizeof err, "--log-level", "loud", NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "error, warn, info or debug"));
}

static void token_command_takes_its_claims_and_the_key_flags(void **state)
{
	(void)state;
	struct config c;
	char err[512] = "";
	assert_int_equal(load(&c, err, sizeof err, "token", "--sub", "agent-1", "--org", "org-9",
			      "--ttl", "10m", "--jwt-secret-file", "/k", NULL),
			 CONFIG_TOKEN);
	assert_string_equal(c.token.sub, "agent-1");
	assert_string_equal(c.token.org, "org-9");
	assert_string_equal(c.token.scope, "metrics:write");
	assert_int_equal(c.token.ttl_ms, 600000);
	assert_string_equal(c.jwt_secret_file, "/k");
	assert_string_equal(c.jwt_issuer, "ringside");
	/* Claims are required; serve's flags and token's do not mix. */
	assert_int_equal(load(&c, err, sizeof err, "token", "--sub", "a", NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "--org"));
	assert_int_equal(load(&c, err, sizeof err, "--sub", "a", NULL), CONFIG_ERROR);
	assert_non_null(strstr(err, "--sub"));
	assert_int_equal(load(&c, err, sizeof err, "token", "--sub", "a", "--org", "o",
			      "--workers", "2", NULL),
			 CONFIG_ERROR);
	assert_non_null(strstr(err, "--workers"));
}

static void help_and_version_stop_before_serving(void **state)
{
	(void)state;
	struct config c;
	char err[64] = "";
	assert_int_equal(load(&c, err, sizeof err, "--help", NULL), CONFIG_HELP);
	assert_int_equal(load(&c, err, sizeof err, "--version", NULL), CONFIG_VERSION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(defaults_match_the_documented_table, reset_env),
		cmocka_unit_test_setup(flag_overrides_env_which_overrides_default, reset_env),
		cmocka_unit_test_setup(bad_values_name_their_source, reset_env),
		cmocka_unit_test_setup(sizes_and_durations_parse_with_suffixes, reset_env),
		cmocka_unit_test_setup(help_and_version_stop_before_serving, reset_env),
		cmocka_unit_test_setup(choices_take_their_names_only, reset_env),
		cmocka_unit_test_setup(database_url_comes_from_flag_then_ours_then_the_conventional_variable,
				       reset_env),
		cmocka_unit_test_setup(a_bad_database_url_is_not_echoed, reset_env),
		cmocka_unit_test_setup(fleet_forget_is_never_shorter_than_the_ttl, reset_env),
		cmocka_unit_test_setup(token_command_takes_its_claims_and_the_key_flags, reset_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
