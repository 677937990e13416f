/*
 * Agent registry bodies (src/identity/registry_body.c): every field's
 * valid and invalid values (semver.org's own example lists, HTML's e-mail
 * grammar, capabilities at their bounds, owner at 128 and 129 code points
 * of multi-byte characters), every error class with the field it names,
 * strict JSON, PATCH's rules, and every truncation and single-byte
 * corruption of valid bodies (a clean error, or a body that writes back
 * and parses to the same struct), each result held against jansson's
 * reading of the same bytes. Every body is read from an exact-size heap
 * copy (ASan) and again ending at a PROT_NONE page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "ringside/json_writer.h"
#include "ringside/registry_body.h"
#include "unit_inputs.h"

/* A string literal that may hold NUL bytes, and its length. */
#define B(s) (s), sizeof(s) - 1

enum mode { CREATE, PATCH };

/* ---- Parsing with the invariants checked ---- */

struct res {
	int ret;
	struct registry_body b;
	struct registry_body_error e;
};

static int run(enum mode m, const char *body, size_t len, struct registry_body *b,
	       struct registry_body_error *e)
{
	memset(b, 0x5A, sizeof *b); /* no output may be left unwritten */
	memset(e, 0x5A, sizeof *e);
	return m == CREATE ? registry_body_parse_create(body, len, b, e)
			   : registry_body_parse_patch(body, len, b, e);
}

static void check_str(const char *s, size_t len, size_t max)
{
	assert_true(len <= max);
	assert_int_equal(strlen(s), len);
}

static void check_invariants(const struct res *r, size_t len)
{
	const struct registry_body *b = &r->b;
	assert_true(r->ret <= 0 && r->ret >= REGISTRY_BODY_DUPLICATE_ITEM);
	assert_int_equal(r->e.status, r->ret);
	assert_true(memchr(r->e.field, '\0', sizeof r->e.field) != NULL);
	assert_true(memchr(r->e.message, '\0', sizeof r->e.message) != NULL);
	assert_true(r->e.offset <= len);
	check_str(b->email, b->email_len, REGISTRY_EMAIL_MAX);
	check_str(b->version, b->version_len, REGISTRY_VERSION_MAX);
	check_str(b->owner, b->owner_len, REGISTRY_OWNER_MAX);
	assert_true(b->owner_chars <= REGISTRY_OWNER_MAX_CHARS);
	assert_true(b->ncapabilities <= REGISTRY_CAPS_MAX);
	for (size_t k = 0; k < b->ncapabilities; k++)
		check_str(b->capabilities[k].s, b->capabilities[k].len, REGISTRY_CAP_MAX);
	assert_true((unsigned)b->agent_type < REGISTRY_AGENT_TYPE_COUNT);
	assert_true((unsigned)b->deployment_env < REGISTRY_DEPLOYMENT_ENV_COUNT);
	assert_true((unsigned)b->status < REGISTRY_STATUS_COUNT);
	if (r->ret != REGISTRY_BODY_OK) {
		assert_int_equal(b->present, 0);
		assert_int_equal(b->email_len + b->version_len + b->owner_len + b->ncapabilities, 0);
		assert_true(strlen(r->e.message) > 0);
		return;
	}
	assert_string_equal(r->e.field, "");
	assert_true(b->present != 0 && b->present < 1u << REGISTRY_FIELD_COUNT);
	assert_int_equal(b->present & REGISTRY_HAS(EMAIL) ? 1 : 0, b->email_len > 0);
	assert_int_equal(b->present & REGISTRY_HAS(VERSION) ? 1 : 0, b->version_len > 0);
	assert_int_equal(b->present & REGISTRY_HAS(OWNER) ? 1 : 0, b->owner_len > 0);
	assert_int_equal(b->present & REGISTRY_HAS(CAPABILITIES) ? 1 : 0, b->ncapabilities > 0);
	assert_int_equal(b->present & REGISTRY_HAS(AGENT_TYPE) ? 1 : 0, b->agent_type != 0);
	assert_int_equal(b->present & REGISTRY_HAS(DEPLOYMENT_ENV) ? 1 : 0, b->deployment_env != 0);
	assert_int_equal(b->present & REGISTRY_HAS(STATUS) ? 1 : 0, b->status != 0);
}

/* Written back with the JSON writer, the struct parses to itself. */
static void check_round_trip(enum mode m, const struct res *r)
{
	char buf[REGISTRY_BODY_MAX];
	struct json_writer w;
	struct res again;
	jsonw_init(&w, buf, sizeof buf);
	registry_body_write_json(&r->b, &w);
	size_t n = jsonw_done(&w);
	assert_true(n > 0);
	again.ret = run(m, buf, n, &again.b, &again.e);
	if (again.ret != REGISTRY_BODY_OK)
		fail_msg("%s -> %s", buf, again.e.message);
	assert_memory_equal(&again.b, &r->b, sizeof r->b);
}

/*
 * jansson (written separately, strict by default) on the same bytes: what
 * we accept it accepts, with the same strings; what we call broken JSON
 * it refuses too.
 */
static void check_against_jansson(const struct res *r, const char *body, size_t len)
{
	json_error_t je;
	json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (doc && (r->ret == REGISTRY_BODY_SYNTAX || r->ret == REGISTRY_BODY_TRAILING ||
		    r->ret == REGISTRY_BODY_DUPLICATE_FIELD))
		fail_msg("jansson accepts what we call %d (%s): %.*s", r->ret, r->e.message,
			 (int)len, body);
	if (r->ret == REGISTRY_BODY_NOT_OBJECT)
		assert_true(!doc || !json_is_object(doc));
	if (r->ret == REGISTRY_BODY_OK) {
		if (!doc)
			fail_msg("jansson refuses (%s) what we accept: %.*s", je.text, (int)len, body);
		assert_true(json_is_object(doc));
		const struct registry_body *b = &r->b;
		const struct {
			const char *name, *s;
			size_t len;
		} strs[] = {{"email", b->email, b->email_len},
			    {"version", b->version, b->version_len},
			    {"owner", b->owner, b->owner_len}};
		for (size_t k = 0; k < 3; k++) {
			json_t *v = json_object_get(doc, strs[k].name);
			if (!v) {
				assert_int_equal(strs[k].len, 0);
				continue;
			}
			assert_int_equal(json_string_length(v), strs[k].len);
			assert_memory_equal(json_string_value(v), strs[k].s, strs[k].len);
		}
		json_t *caps = json_object_get(doc, "capabilities");
		assert_int_equal(caps ? json_array_size(caps) : 0, b->ncapabilities);
		for (size_t k = 0; k < b->ncapabilities; k++)
			assert_string_equal(json_string_value(json_array_get(caps, k)),
					    b->capabilities[k].s);
		assert_int_equal(json_object_size(doc), (size_t)__builtin_popcount(b->present));
	}
	json_decref(doc);
}

static void parse(enum mode m, struct res *r, const char *body, size_t len)
{
	char *copy = heap_copy(body, len);
	r->ret = run(m, copy, len, &r->b, &r->e);
	free(copy);
	check_invariants(r, len);

	struct res g;
	g.ret = run(m, guard_place(body, len), len, &g.b, &g.e);
	assert_int_equal(g.ret, r->ret);
	assert_memory_equal(&g.b, &r->b, sizeof g.b);
	assert_string_equal(g.e.field, r->e.field);
	assert_string_equal(g.e.message, r->e.message);
	if (r->ret == REGISTRY_BODY_OK)
		check_round_trip(m, r);
	check_against_jansson(r, body, len);
}

static void expect(enum mode m, const char *body, size_t len, int ret, const char *field)
{
	struct res r;
	parse(m, &r, body, len);
	if (r.ret != ret || strcmp(r.e.field, field) != 0)
		fail_msg("%s \"%.*s\": got %d at \"%s\" (%s), want %d at \"%s\"",
			 m == CREATE ? "POST" : "PATCH", (int)len, body, r.ret, r.e.field,
			 r.e.message, ret, field);
}

#define EXPECT(m, s, ret, field) expect((m), (s), strlen(s), (ret), (field))

/* A POST body with one field's value replaced: the JSON text given. */
static const char *const base_values[REGISTRY_FIELD_COUNT] = {
	"\"ops@example.com\"", "\"classifier\"", "\"1.4.0-rc.1+build.7\"",
	"[\"fleet:read\",\"reports:write\"]", "\"Équipe Données\"", "\"production\"", NULL,
};

static size_t body_with(char *out, size_t cap, int field, const char *value)
{
	static const char *const names[] = {"email", "agentType", "version", "capabilities",
					    "owner", "deploymentEnv"};
	size_t o = 0;
	o += (size_t)snprintf(out + o, cap - o, "{");
	for (int f = 0; f < 6; f++)
		o += (size_t)snprintf(out + o, cap - o, "%s\"%s\":%s", f ? "," : "", names[f],
				      f == field ? value : base_values[f]);
	o += (size_t)snprintf(out + o, cap - o, "}");
	assert_true(o < cap);
	return o;
}

static void expect_field(int field, const char *value, int ret, const char *path)
{
	char body[REGISTRY_BODY_MAX + 64];
	size_t n = body_with(body, sizeof body, field, value);
	expect(CREATE, body, n, ret, path);
	/* The same value alone in a PATCH is judged the same way. */
	n = (size_t)snprintf(body, sizeof body, "{\"%s\":%s}",
			     field == REGISTRY_FIELD_EMAIL          ? "email"
			     : field == REGISTRY_FIELD_AGENT_TYPE   ? "agentType"
			     : field == REGISTRY_FIELD_VERSION      ? "version"
			     : field == REGISTRY_FIELD_CAPABILITIES ? "capabilities"
			     : field == REGISTRY_FIELD_OWNER        ? "owner"
								    : "deploymentEnv",
			     value);
	expect(PATCH, body, n, ret, path);
}

/* ---- Cases ---- */

static void valid_create_body_parses(void **state)
{
	(void)state;
	char body[1024];
	size_t n = body_with(body, sizeof body, -1, NULL);
	struct res r;
	parse(CREATE, &r, body, n);
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.present, REGISTRY_CREATE_FIELDS);
	assert_string_equal(r.b.email, "ops@example.com");
	assert_int_equal(r.b.email_len, 15);
	assert_int_equal(r.b.agent_type, REGISTRY_AGENT_TYPE_CLASSIFIER);
	assert_string_equal(r.b.version, "1.4.0-rc.1+build.7");
	assert_int_equal(r.b.ncapabilities, 2);
	assert_string_equal(r.b.capabilities[0].s, "fleet:read");
	assert_int_equal(r.b.capabilities[1].len, 13);
	assert_string_equal(r.b.owner, "\xc3\x89quipe Donn\xc3\xa9" "es");
	assert_int_equal(r.b.owner_chars, 14);
	assert_int_equal(r.b.owner_len, 16);
	assert_int_equal(r.b.deployment_env, REGISTRY_DEPLOYMENT_ENV_PRODUCTION);
	assert_int_equal(r.b.status, REGISTRY_STATUS_NONE);

	/* Whitespace anywhere RFC 8259 allows it, members in any order, escapes. */
	parse(CREATE, &r, B(" \r\n\t{ \"owner\" :\t\"A\\u00e9\\ud83d\\ude00\\\"\\\\\\/\" ,"
			    "\"deploymentEnv\":\"development\",\n\"capabilities\" : [ \"a:b\" ] ,"
			    "\"version\":\"0.0.0\",\"agentType\":\"custom\",\"email\":\"a@b\" } \n"));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_string_equal(r.b.owner, "A\xc3\xa9\xf0\x9f\x98\x80\"\\/");
	assert_int_equal(r.b.owner_chars, 6);
	assert_int_equal(r.b.agent_type, REGISTRY_AGENT_TYPE_CUSTOM);
	assert_int_equal(r.b.deployment_env, REGISTRY_DEPLOYMENT_ENV_DEVELOPMENT);

	/* Escaped member names are the names they decode to. */
	parse(PATCH, &r, B("{\"\\u0065mail\":\"x@y.z\"}"));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.present, REGISTRY_HAS(EMAIL));
	EXPECT(PATCH, "{\"email\":\"x@y.z\",\"\\u0065mail\":\"x@y.z\"}",
	       REGISTRY_BODY_DUPLICATE_FIELD, "email");
}

static void every_enum_value_parses(void **state)
{
	(void)state;
	static const char *const types[] = {"screener", "classifier", "orchestrator", "extractor",
					    "summarizer", "router", "monitor", "custom"};
	static const char *const envs[] = {"development", "staging", "production"};
	char v[64];
	struct res r;
	for (int k = 0; k < 8; k++) {
		snprintf(v, sizeof v, "{\"agentType\":\"%s\"}", types[k]);
		parse(PATCH, &r, v, strlen(v));
		assert_int_equal(r.ret, REGISTRY_BODY_OK);
		assert_int_equal(r.b.agent_type, k + 1);
		assert_string_equal(registry_body_agent_type_name(r.b.agent_type), types[k]);
	}
	for (int k = 0; k < 3; k++) {
		snprintf(v, sizeof v, "{\"deploymentEnv\":\"%s\"}", envs[k]);
		parse(PATCH, &r, v, strlen(v));
		assert_int_equal(r.ret, REGISTRY_BODY_OK);
		assert_int_equal(r.b.deployment_env, k + 1);
		assert_string_equal(registry_body_deployment_env_name(r.b.deployment_env), envs[k]);
	}
	parse(PATCH, &r, B("{\"status\":\"suspended\"}"));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.status, REGISTRY_STATUS_SUSPENDED);
	assert_int_equal(r.b.present, REGISTRY_HAS(STATUS));
	parse(PATCH, &r, B("{\"status\":\"active\"}"));
	assert_int_equal(r.b.status, REGISTRY_STATUS_ACTIVE);
	assert_null(registry_body_agent_type_name(REGISTRY_AGENT_TYPE_NONE));
	assert_null(registry_body_agent_type_name(REGISTRY_AGENT_TYPE_COUNT));
	assert_null(registry_body_status_name((enum registry_status)99));

	static const char *const bad[] = {"\"Screener\"", "\"screener \"", "\"\"", "\"scree\"",
					  "\"screenerx\"", "\"screener\\u0000\"",
					  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
		expect_field(REGISTRY_FIELD_AGENT_TYPE, bad[k], REGISTRY_BODY_NOT_ALLOWED, "agentType");
	expect_field(REGISTRY_FIELD_DEPLOYMENT_ENV, "\"prod\"", REGISTRY_BODY_NOT_ALLOWED,
		     "deploymentEnv");
	expect_field(REGISTRY_FIELD_DEPLOYMENT_ENV, "\"Production\"", REGISTRY_BODY_NOT_ALLOWED,
		     "deploymentEnv");
	EXPECT(PATCH, "{\"status\":\"deleted\"}", REGISTRY_BODY_NOT_ALLOWED, "status");
	EXPECT(PATCH, "{\"status\":\"Active\"}", REGISTRY_BODY_NOT_ALLOWED, "status");
}

/* semver.org's regular-expression examples (regex101.com/r/vkijKf). */
static void semver_spec_examples(void **state)
{
	(void)state;
	static const char *const valid[] = {
		"0.0.4", "1.2.3", "10.20.30", "1.1.2-prerelease+meta", "1.1.2+meta",
		"1.1.2+meta-valid", "1.0.0-alpha", "1.0.0-beta", "1.0.0-alpha.beta",
		"1.0.0-alpha.beta.1", "1.0.0-alpha.1", "1.0.0-alpha0.valid", "1.0.0-alpha.0valid",
		"1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay", "1.0.0-rc.1+build.1",
		"2.0.0-rc.1+build.123", "1.2.3-beta", "10.2.3-DEV-SNAPSHOT", "1.2.3-SNAPSHOT-123",
		"1.0.0", "2.0.0", "1.1.7", "2.0.0+build.1848", "2.0.1-alpha.1227",
		"1.0.0-alpha+beta", "1.2.3----RC-SNAPSHOT.12.9.1--.12+788", "1.2.3----R-S.12.9.1--.12+meta",
		"1.2.3----RC-SNAPSHOT.12.9.1--.12", "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
		"99999999999999999999999.999999999999999999.99999999999999999", "1.0.0-0A.is.legal",
		/* and the spec's own text: */
		"1.0.0-x.7.z.92", "1.0.0-x-y-z.--", "1.0.0+21AF26D3----117B344092BD", "1.0.0+001",
	};
	static const char *const invalid[] = {
		"1", "1.2", "1.2.3-0123", "1.2.3-0123.0123", "1.1.2+.123", "+invalid", "-invalid",
		"-invalid+invalid", "-invalid.01", "alpha", "alpha.beta", "alpha.beta.1",
		"alpha.1", "alpha+beta", "alpha_beta", "alpha.", "alpha..", "beta",
		"1.0.0-alpha_beta", "-alpha.", "1.0.0-alpha..", "1.0.0-alpha..1",
		"1.0.0-alpha...1", "1.0.0-alpha....1", "1.0.0-alpha.....1", "1.0.0-alpha......1",
		"1.0.0-alpha.......1", "01.1.1", "1.01.1", "1.1.01", "1.2", "1.2.3.DEV",
		"1.2-SNAPSHOT", "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788", "1.2-RC-SNAPSHOT",
		"-1.0.3-gamma+b7718", "+justmeta", "9.8.7+meta+meta", "9.8.7-whatever+meta+meta",
		/* 99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT.12.09.1--------------------------------..12
		 * is over 64 bytes: TOO_LONG, below */
		/* ours: */
		"v1.2.3", "1.2.3-", "1.2.3+", "1.2.3 ", " 1.2.3", "1.2.3-a+", "1.2.3-+a",
		"1.2.3-a.", "1.2.3+a..b", "1.2.3-é", "1..3", ".1.2.3", "1.2.3.", "1.2.3-01",
	};
	char v[128];
	for (size_t k = 0; k < sizeof valid / sizeof valid[0]; k++) {
		struct res r;
		char body[256];
		size_t n = (size_t)snprintf(body, sizeof body, "{\"version\":\"%s\"}", valid[k]);
		parse(PATCH, &r, body, n);
		if (r.ret != REGISTRY_BODY_OK)
			fail_msg("refused %s: %s", valid[k], r.e.message);
		assert_string_equal(r.b.version, valid[k]);
	}
	for (size_t k = 0; k < sizeof invalid / sizeof invalid[0]; k++) {
		snprintf(v, sizeof v, "\"%s\"", invalid[k]);
		expect_field(REGISTRY_FIELD_VERSION, v, REGISTRY_BODY_BAD_FORMAT, "version");
	}
	expect_field(REGISTRY_FIELD_VERSION,
		     "\"99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT"
		     ".12.09.1--------------------------------..12\"",
		     REGISTRY_BODY_TOO_LONG, "version");
	/* 64 bytes fit; 65 do not. */
	expect_field(REGISTRY_FIELD_VERSION,
		     "\"1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
		     REGISTRY_BODY_TOO_LONG, "version");
	struct res r;
	parse(PATCH, &r, B("{\"version\":\"1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.version_len, 64);
	expect_field(REGISTRY_FIELD_VERSION, "\"\"", REGISTRY_BODY_EMPTY, "version");
	expect_field(REGISTRY_FIELD_VERSION, "1", REGISTRY_BODY_WRONG_TYPE, "version");
}

static void email_addresses(void **state)
{
	(void)state;
	static const char *const valid[] = {
		"a@b", "ops@example.com", "Ops.Team@Example.COM", "first.last+tag@sub.example.co.uk",
		"x!#$%&'*+/=?^_`{|}~-@a-b.c", ".dots..@x", "u@localhost", "u@1.2.3.4",
		"u@a0-9.b", "u@xn--bcher-kva.example",
	};
	static const char *const invalid[] = {
		"", "@", "a@", "@b", "a", "a b@c", "a@b c", "a@@b", "a@b@c", "a@.b", "a@b.",
		"a@b..c", "a@-b", "a@b-", "a@b_c", "\\\"a\\\"@b", "a(b)@c", "a,b@c", "a;b@c",
		"a@[1.2.3.4]", "\\u00e9@b", "a@\\u00e9", "a@b\\t", "\\ta@b", "a@b:25", "a<b>@c",
	};
	char v[512];
	for (size_t k = 0; k < sizeof valid / sizeof valid[0]; k++) {
		struct res r;
		char body[256];
		size_t n = (size_t)snprintf(body, sizeof body, "{\"email\":\"%s\"}", valid[k]);
		parse(PATCH, &r, body, n);
		if (r.ret != REGISTRY_BODY_OK)
			fail_msg("refused %s: %s", valid[k], r.e.message);
		assert_string_equal(r.b.email, valid[k]); /* kept as given */
	}
	for (size_t k = 0; k < sizeof invalid / sizeof invalid[0]; k++) {
		snprintf(v, sizeof v, "\"%s\"", invalid[k]);
		expect_field(REGISTRY_FIELD_EMAIL, v,
			     k == 0 ? REGISTRY_BODY_EMPTY : REGISTRY_BODY_BAD_FORMAT, "email");
	}
	/* A label of 63 characters fits, 64 does not; 254 bytes fit, 255 do not. */
	char label[70];
	memset(label, 'd', 64);
	label[64] = '\0';
	snprintf(v, sizeof v, "\"u@%s.com\"", label);
	expect_field(REGISTRY_FIELD_EMAIL, v, REGISTRY_BODY_BAD_FORMAT, "email");
	label[63] = '\0';
	snprintf(v, sizeof v, "{\"email\":\"u@%s.com\"}", label);
	struct res r;
	parse(PATCH, &r, v, strlen(v));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	for (size_t n = 253; n <= 255; n++) {
		/* "u@" + labels of 63 and dots, then padding to n bytes */
		char addr[300];
		size_t o = (size_t)snprintf(addr, sizeof addr, "u@%s.%s.%s.", label, label, label);
		while (o < n)
			addr[o++] = 'x';
		addr[o] = '\0';
		snprintf(v, sizeof v, "\"%s\"", addr);
		if (n <= 254) {
			char body[400];
			snprintf(body, sizeof body, "{\"email\":%s}", v);
			parse(PATCH, &r, body, strlen(body));
			assert_int_equal(r.ret, REGISTRY_BODY_OK);
			assert_int_equal(r.b.email_len, n);
		} else {
			expect_field(REGISTRY_FIELD_EMAIL, v, REGISTRY_BODY_TOO_LONG, "email");
		}
	}
}

static void capabilities_bounds(void **state)
{
	(void)state;
	char v[8192], part[80];
	struct res r;
	/* 1 and 32 items; 33 is TOO_MANY at the 33rd. */
	for (int count = 1; count <= 33; count += 31) {
		for (int n = count; n <= count + (count == 32); n++) {
			size_t o = (size_t)snprintf(v, sizeof v, "{\"capabilities\":[");
			for (int k = 0; k < n; k++)
				o += (size_t)snprintf(v + o, sizeof v - o, "%s\"r%d:a\"", k ? "," : "", k);
			o += (size_t)snprintf(v + o, sizeof v - o, "]}");
			if (n <= 32) {
				parse(PATCH, &r, v, o);
				assert_int_equal(r.ret, REGISTRY_BODY_OK);
				assert_int_equal(r.b.ncapabilities, n);
				assert_string_equal(r.b.capabilities[n - 1].s, n == 1 ? "r0:a" : "r31:a");
			} else {
				expect(PATCH, v, o, REGISTRY_BODY_TOO_MANY, "capabilities[32]");
			}
		}
	}
	/* Each part 64 bytes: fits (129 bytes in all); 65: TOO_LONG. */
	memset(part, 'z', 65);
	part[64] = '\0';
	snprintf(v, sizeof v, "{\"capabilities\":[\"%s:%s\"]}", part, part);
	parse(PATCH, &r, v, strlen(v));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.capabilities[0].len, 129);
	part[64] = 'z';
	part[65] = '\0';
	snprintf(v, sizeof v, "[\"a:b\",\"%s:a\"]", part);
	expect_field(REGISTRY_FIELD_CAPABILITIES, v, REGISTRY_BODY_TOO_LONG, "capabilities[1]");
	snprintf(v, sizeof v, "[\"a:%s\"]", part);
	expect_field(REGISTRY_FIELD_CAPABILITIES, v, REGISTRY_BODY_TOO_LONG, "capabilities[0]");
	snprintf(v, sizeof v, "[\"%s:%s\"]", part, part);
	expect_field(REGISTRY_FIELD_CAPABILITIES, v, REGISTRY_BODY_TOO_LONG, "capabilities[0]");

	static const struct {
		const char *v;
		int ret;
		const char *path;
	} bad[] = {
		{"[]", REGISTRY_BODY_EMPTY, "capabilities"},
		{"[ \n]", REGISTRY_BODY_EMPTY, "capabilities"},
		{"\"a:b\"", REGISTRY_BODY_WRONG_TYPE, "capabilities"},
		{"{}", REGISTRY_BODY_WRONG_TYPE, "capabilities"},
		{"null", REGISTRY_BODY_NULL_VALUE, "capabilities"},
		{"[\"a:b\",\"a:b\"]", REGISTRY_BODY_DUPLICATE_ITEM, "capabilities[1]"},
		{"[\"a:b\",\"c:d\",\"a:\\u0062\"]", REGISTRY_BODY_DUPLICATE_ITEM, "capabilities[2]"},
		{"[\"Fleet:read\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"fleet:Read\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"a:b\",\"fleet\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[1]"},
		{"[\":read\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"fleet:\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\":\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"a:b:c\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"a b:c\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"a.b:c\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"a:*\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"\\u00e9:a\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"a:b\\u0000\"]", REGISTRY_BODY_BAD_FORMAT, "capabilities[0]"},
		{"[\"a:b\",1]", REGISTRY_BODY_WRONG_TYPE, "capabilities[1]"},
		{"[\"a:b\",null]", REGISTRY_BODY_NULL_VALUE, "capabilities[1]"},
		{"[[\"a:b\"]]", REGISTRY_BODY_WRONG_TYPE, "capabilities[0]"},
		{"[{\"a\":\"b\"}]", REGISTRY_BODY_WRONG_TYPE, "capabilities[0]"},
		{"[\"a:b\",]", REGISTRY_BODY_SYNTAX, "capabilities[1]"},
		{"[\"a:b\" \"c:d\"]", REGISTRY_BODY_SYNTAX, "capabilities[1]"},
		{"[,\"a:b\"]", REGISTRY_BODY_SYNTAX, "capabilities[0]"},
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
		expect_field(REGISTRY_FIELD_CAPABILITIES, bad[k].v, bad[k].ret, bad[k].path);
	/* The kept characters, every one. */
	parse(PATCH, &r, B("{\"capabilities\":[\"a-z_0:9-_\",\"0:0\",\"_:-\"]}"));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.ncapabilities, 3);
}

/* n copies of the UTF-8 character ch (as raw bytes or as its escape). */
static size_t owner_of(char *v, size_t cap, const char *ch, int n)
{
	size_t o = (size_t)snprintf(v, cap, "{\"owner\":\"");
	for (int k = 0; k < n; k++)
		o += (size_t)snprintf(v + o, cap - o, "%s", ch);
	o += (size_t)snprintf(v + o, cap - o, "\"}");
	return o;
}

static void owner_counts_code_points(void **state)
{
	(void)state;
	static const struct {
		const char *raw;
		size_t bytes;
	} chars[] = {
		{"a", 1}, {"\xc3\xa9", 2}, {"\xe2\x82\xac", 3}, {"\xf0\x9f\x98\x80", 4},
		{"\\u00e9", 2}, {"\\ud83d\\ude00", 4}, {"\\u20ac", 3},
	};
	char v[4096];
	struct res r;
	for (size_t c = 0; c < sizeof chars / sizeof chars[0]; c++) {
		size_t n = owner_of(v, sizeof v, chars[c].raw, 128);
		parse(PATCH, &r, v, n);
		assert_int_equal(r.ret, REGISTRY_BODY_OK);
		assert_int_equal(r.b.owner_chars, 128);
		assert_int_equal(r.b.owner_len, 128 * chars[c].bytes);
		n = owner_of(v, sizeof v, chars[c].raw, 129);
		expect(PATCH, v, n, REGISTRY_BODY_TOO_LONG, "owner");
		n = owner_of(v, sizeof v, chars[c].raw, 1);
		parse(PATCH, &r, v, n);
		assert_int_equal(r.ret, REGISTRY_BODY_OK);
		assert_int_equal(r.b.owner_chars, 1);
	}
	/* Mixed: 127 four-byte characters and one ASCII: 128, 509 bytes. */
	size_t n = owner_of(v, sizeof v, "\xf0\x9f\x98\x80", 127);
	memmove(v + n - 1, v + n - 2, 2);
	v[n - 2] = 'x';
	parse(PATCH, &r, v, n + 1);
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.owner_chars, 128);
	assert_int_equal(r.b.owner_len, 509);

	static const char *const controls[] = {
		"\"a\\u0000b\"", "\"\\u001f\"", "\"a\\tb\"", "\"a\\nb\"", "\"\\u007f\"", "\"\x7f\"",
		"\"\\u0080\"", "\"\\u009f\"", "\"\xc2\x85\"",
	};
	for (size_t k = 0; k < sizeof controls / sizeof controls[0]; k++)
		expect_field(REGISTRY_FIELD_OWNER, controls[k], REGISTRY_BODY_BAD_FORMAT, "owner");
	expect_field(REGISTRY_FIELD_OWNER, "\"a\tb\"", REGISTRY_BODY_SYNTAX, "owner");
	expect_field(REGISTRY_FIELD_OWNER, "\"\"", REGISTRY_BODY_EMPTY, "owner");
	expect_field(REGISTRY_FIELD_OWNER, "[\"a\"]", REGISTRY_BODY_WRONG_TYPE, "owner");
	/* U+00A0 (after C1) and U+2028 are not Cc: kept. */
	parse(PATCH, &r, B("{\"owner\":\"\\u00a0\\u2028 x \"}"));
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	assert_int_equal(r.b.owner_chars, 5);
}

/* Strict RFC 8259, each break reported with the field it is in. */
static void strict_json(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		int ret;
		const char *field;
	} bad[] = {
		{"", REGISTRY_BODY_NOT_OBJECT, ""},
		{"  \n", REGISTRY_BODY_NOT_OBJECT, ""},
		{"[]", REGISTRY_BODY_NOT_OBJECT, ""},
		{"\"x\"", REGISTRY_BODY_NOT_OBJECT, ""},
		{"null", REGISTRY_BODY_NOT_OBJECT, ""},
		{"\xef\xbb\xbf{\"status\":\"active\"}", REGISTRY_BODY_NOT_OBJECT, ""}, /* BOM */
		{"{", REGISTRY_BODY_SYNTAX, ""},
		{"{\"status\":\"active\"", REGISTRY_BODY_SYNTAX, ""},
		{"{\"status\":\"active\",}", REGISTRY_BODY_SYNTAX, ""},
		{"{,\"status\":\"active\"}", REGISTRY_BODY_SYNTAX, ""},
		{"{\"status\" \"active\"}", REGISTRY_BODY_SYNTAX, "status"},
		{"{\"status\":\"active\" \"owner\":\"x\"}", REGISTRY_BODY_SYNTAX, ""},
		{"{status:\"active\"}", REGISTRY_BODY_SYNTAX, ""},
		{"{'status':'active'}", REGISTRY_BODY_SYNTAX, ""},
		{"{/* c */\"status\":\"active\"}", REGISTRY_BODY_SYNTAX, ""},
		{"{\"status\":\"active\"// c\n}", REGISTRY_BODY_SYNTAX, ""},
		{"{\"status\":\"active\"}}", REGISTRY_BODY_TRAILING, ""},
		{"{\"status\":\"active\"} x", REGISTRY_BODY_TRAILING, ""},
		{"{\"status\":\"active\"}{}", REGISTRY_BODY_TRAILING, ""},
		{"{\"status\":\"active\"}\0", REGISTRY_BODY_TRAILING, ""},
		{"{\"status\":\"active\"}\f", REGISTRY_BODY_TRAILING, ""},
		{"{\"status\":\"act\\ive\"}", REGISTRY_BODY_SYNTAX, "status"},
		{"{\"status\":\"act\\x41\"}", REGISTRY_BODY_SYNTAX, "status"},
		{"{\"status\":\"act\\u00\"}", REGISTRY_BODY_SYNTAX, "status"},
		{"{\"status\":\"act\\u00g0\"}", REGISTRY_BODY_SYNTAX, "status"},
		{"{\"owner\":\"\\ud800\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"\\udc00\\ud800\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"\\ud800\\u0041\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"\\ud800\\ud800\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"\\ud800x\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"\xc0\xaf\"}", REGISTRY_BODY_SYNTAX, "owner"},       /* overlong */
		{"{\"owner\":\"\xe0\x80\xaf\"}", REGISTRY_BODY_SYNTAX, "owner"},   /* overlong */
		{"{\"owner\":\"\xed\xa0\x80\"}", REGISTRY_BODY_SYNTAX, "owner"},   /* surrogate */
		{"{\"owner\":\"\xf4\x90\x80\x80\"}", REGISTRY_BODY_SYNTAX, "owner"}, /* > U+10FFFF */
		{"{\"owner\":\"\x80\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"\xff\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"\xe2\x82\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"a\nb\"}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"ow\xffner\":\"a\"}", REGISTRY_BODY_SYNTAX, ""},
		{"{\"owner\":}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":nul}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":'x'}", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"x", REGISTRY_BODY_SYNTAX, "owner"},
		{"{\"owner\":\"x\\", REGISTRY_BODY_SYNTAX, "owner"},
		/* a value of another type, at its first byte */
		{"{\"owner\":true}", REGISTRY_BODY_WRONG_TYPE, "owner"},
		{"{\"owner\":false}", REGISTRY_BODY_WRONG_TYPE, "owner"},
		{"{\"owner\":-1}", REGISTRY_BODY_WRONG_TYPE, "owner"},
		{"{\"owner\":12}", REGISTRY_BODY_WRONG_TYPE, "owner"},
		{"{\"owner\":{\"a\":{\"b\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", REGISTRY_BODY_WRONG_TYPE, "owner"},
		{"{\"owner\":[\"x\"]}", REGISTRY_BODY_WRONG_TYPE, "owner"},
		{"{\"owner\":null}", REGISTRY_BODY_NULL_VALUE, "owner"},
		{"{\"email\":null}", REGISTRY_BODY_NULL_VALUE, "email"},
		{"{\"status\":null}", REGISTRY_BODY_NULL_VALUE, "status"},
	};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		size_t n = strlen(bad[k].body);
		if (k == 19) /* the NUL after the object */
			n = sizeof "{\"status\":\"active\"}";
		expect(PATCH, bad[k].body, n, bad[k].ret, bad[k].field);
	}
	/* A body over the server's buffer is refused before it is read. */
	char *big = malloc(REGISTRY_BODY_MAX + 1);
	assert_non_null(big);
	memset(big, ' ', REGISTRY_BODY_MAX + 1);
	memcpy(big, "{\"status\":\"active\"}", 19);
	expect(PATCH, big, REGISTRY_BODY_MAX + 1, REGISTRY_BODY_TOO_LARGE, "");
	struct res r;
	parse(PATCH, &r, big, REGISTRY_BODY_MAX);
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	free(big);
	/* No body at all. */
	struct registry_body b;
	struct registry_body_error e;
	assert_int_equal(registry_body_parse_patch(NULL, 0, &b, &e), REGISTRY_BODY_NOT_OBJECT);
	assert_int_equal(registry_body_parse_create(NULL, 0, &b, NULL), REGISTRY_BODY_NOT_OBJECT);
}

static void members_unknown_duplicate_missing(void **state)
{
	(void)state;
	char body[1024];
	size_t n;
	/* Unknown members are refused by name, known or not, value unread. */
	EXPECT(PATCH, "{\"deploymentEnvs\":\"staging\"}", REGISTRY_BODY_UNKNOWN_FIELD, "deploymentEnvs");
	EXPECT(PATCH, "{\"Email\":\"a@b\"}", REGISTRY_BODY_UNKNOWN_FIELD, "Email");
	EXPECT(PATCH, "{\"owner\":\"x\",\"id\":5}", REGISTRY_BODY_UNKNOWN_FIELD, "id");
	EXPECT(PATCH, "{\"\":1}", REGISTRY_BODY_UNKNOWN_FIELD, "");
	EXPECT(PATCH, "{\"a\\u0000b\\n\":1}", REGISTRY_BODY_UNKNOWN_FIELD, "a?b?");
	EXPECT(PATCH, "{\"x\":{\"y\":[1,2,", REGISTRY_BODY_UNKNOWN_FIELD, "x");
	/* A long name is cut at 64 bytes, at a code point. */
	n = (size_t)snprintf(body, sizeof body, "{\"%s\":1}",
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaZZ");
	expect(PATCH, body, n, REGISTRY_BODY_UNKNOWN_FIELD,
	       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...");
	n = (size_t)snprintf(body, sizeof body, "{\"%s\":1}",
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xe2\x82\xac");
	expect(PATCH, body, n, REGISTRY_BODY_UNKNOWN_FIELD,
	       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...");
	n = (size_t)snprintf(body, sizeof body, "{\"%s\":1}",
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xe2\x82\xac");
	expect(PATCH, body, n, REGISTRY_BODY_UNKNOWN_FIELD,
	       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xe2\x82\xac");
	/* status is a PATCH field only. */
	n = body_with(body, sizeof body, -1, NULL);
	memcpy(body + n - 1, ",\"status\":\"active\"}", 20);
	expect(CREATE, body, n + 18, REGISTRY_BODY_UNKNOWN_FIELD, "status");
	/* Twice: refused at the second. */
	EXPECT(PATCH, "{\"owner\":\"x\",\"owner\":\"x\"}", REGISTRY_BODY_DUPLICATE_FIELD, "owner");
	EXPECT(PATCH, "{\"status\":\"active\",\"owner\":\"x\",\"status\":\"suspended\"}",
	       REGISTRY_BODY_DUPLICATE_FIELD, "status");
	EXPECT(PATCH, "{\"capabilities\":[\"a:b\"],\"capabilities\":[\"a:b\"]}",
	       REGISTRY_BODY_DUPLICATE_FIELD, "capabilities");
	/* POST: each field is required, reported in the table's order. */
	static const char *const names[] = {"email", "agentType", "version", "capabilities",
					    "owner", "deploymentEnv"};
	for (int f = 0; f < 6; f++) {
		size_t o = (size_t)snprintf(body, sizeof body, "{");
		for (int g = 0; g < 6; g++)
			if (g != f)
				o += (size_t)snprintf(body + o, sizeof body - o, "%s\"%s\":%s",
						      o > 1 ? "," : "", names[g], base_values[g]);
		o += (size_t)snprintf(body + o, sizeof body - o, "}");
		expect(CREATE, body, o, REGISTRY_BODY_MISSING, names[f]);
	}
	EXPECT(CREATE, "{}", REGISTRY_BODY_MISSING, "email");
	EXPECT(CREATE, "{\"owner\":\"x\"}", REGISTRY_BODY_MISSING, "email");
	/* PATCH: something to change. */
	EXPECT(PATCH, "{}", REGISTRY_BODY_NO_CHANGE, "");
	EXPECT(PATCH, " { \n } ", REGISTRY_BODY_NO_CHANGE, "");
	/* The first problem in body order wins. */
	EXPECT(PATCH, "{\"owner\":1,\"zz\":1}", REGISTRY_BODY_WRONG_TYPE, "owner");
	EXPECT(PATCH, "{\"zz\":1,\"owner\":1}", REGISTRY_BODY_UNKNOWN_FIELD, "zz");
	EXPECT(CREATE, "{\"owner\":\"x\"} x", REGISTRY_BODY_TRAILING, "");
	EXPECT(CREATE, "{\"owner\":\"\"", REGISTRY_BODY_EMPTY, "owner");
}

static void messages_and_offsets(void **state)
{
	(void)state;
	struct registry_body b;
	struct registry_body_error e;
	assert_int_equal(registry_body_parse_patch(B("{\"capabilities\":[\"a:b\",\"A:b\"]}"), &b, &e),
			 REGISTRY_BODY_BAD_FORMAT);
	assert_string_equal(e.field, "capabilities[1]");
	assert_int_equal(e.offset, 23);
	assert_string_equal(e.message, "Field \"capabilities[1]\" must be resource:action, each part "
				       "of a-z, 0-9, '_' and '-'.");
	assert_int_equal(registry_body_parse_patch(B("{\"capabilities\":[\"a:b\",\"a:b\"]}"), &b, &e),
			 REGISTRY_BODY_DUPLICATE_ITEM);
	assert_string_equal(e.message, "Field \"capabilities[1]\" repeats capabilities[0].");
	assert_int_equal(registry_body_parse_patch(B("{\"owner\":\"x\"} ]"), &b, &e),
			 REGISTRY_BODY_TRAILING);
	assert_string_equal(e.field, "");
	assert_int_equal(e.offset, 14);
	assert_string_equal(e.message, "The body has bytes after the JSON object.");
	assert_int_equal(registry_body_parse_patch(B("{\"owner\" \"x\"}"), &b, &e),
			 REGISTRY_BODY_SYNTAX);
	assert_string_equal(e.message,
			    "Field \"owner\" is not valid JSON: expected ':' after a member name (byte 9).");
	assert_int_equal(registry_body_parse_patch(B("{\"owner\":null}"), &b, &e),
			 REGISTRY_BODY_NULL_VALUE);
	assert_string_equal(e.message, "Field \"owner\" cannot be null: a field cannot be unset.");
	assert_int_equal(registry_body_parse_create(B("{}"), &b, &e), REGISTRY_BODY_MISSING);
	assert_string_equal(e.message, "Field \"email\" is required.");

	assert_string_equal(registry_body_strerror(REGISTRY_BODY_OK), "");
	assert_string_equal(registry_body_strerror(REGISTRY_BODY_MISSING), "is required");
	assert_string_equal(registry_body_strerror(-99), "is not valid");
	for (int s = REGISTRY_BODY_DUPLICATE_ITEM; s < 0; s++)
		assert_true(strlen(registry_body_strerror(s)) > 0 &&
			    strcmp(registry_body_strerror(s), "is not valid") != 0);
}

/* ---- Exhaustive: truncations and single-byte corruptions ---- */

static const char *const valid_create[] = {
	"{\"email\":\"ops@example.com\",\"agentType\":\"orchestrator\",\"version\":\"2.0.0-rc.1+b.7\","
	"\"capabilities\":[\"fleet:read\",\"reports:write\",\"a-b:c_d\"],"
	"\"owner\":\"\\u00c9quipe \xe2\x82\xac \\ud83d\\ude00\",\"deploymentEnv\":\"staging\"}",
	"{ \"deploymentEnv\" : \"production\" , \"owner\" : \"x\" , \"capabilities\" : [ \"a:b\" ] ,"
	" \"version\" : \"0.1.0\" , \"agentType\" : \"router\" , \"email\" : \"a@b.c\" }",
};
static const char *const valid_patch[] = {
	"{\"status\":\"suspended\",\"owner\":\"Ops \\\"Team\\\"\",\"capabilities\":[\"x:y\"]}",
	"{\"version\":\"1.0.0+001\"}",
};

static void each_valid(void (*fn)(enum mode, const char *, size_t))
{
	for (size_t k = 0; k < 2; k++)
		fn(CREATE, valid_create[k], strlen(valid_create[k]));
	for (size_t k = 0; k < 2; k++)
		fn(PATCH, valid_patch[k], strlen(valid_patch[k]));
}

static void truncations(enum mode m, const char *body, size_t n)
{
	struct res r;
	parse(m, &r, body, n);
	assert_int_equal(r.ret, REGISTRY_BODY_OK);
	for (size_t cut = 0; cut < n; cut++) {
		parse(m, &r, body, cut);
		if (r.ret == REGISTRY_BODY_OK)
			fail_msg("accepted a cut at %zu: %.*s", cut, (int)cut, body);
	}
}

static void every_truncation_is_a_clean_error(void **state)
{
	(void)state;
	each_valid(truncations);
}

static void corruptions(enum mode m, const char *body, size_t n)
{
	char *b = heap_copy(body, n);
	for (size_t i = 0; i < n; i++) {
		char was = b[i];
		for (int c = 0; c < 256; c++) {
			struct res r;
			b[i] = (char)c;
			parse(m, &r, b, n); /* invariants, guard page, round trip */
		}
		b[i] = was;
	}
	free(b);
}

static void every_single_byte_corruption_is_valid_or_clean(void **state)
{
	(void)state;
	each_valid(corruptions);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_create_body_parses),
		cmocka_unit_test(every_enum_value_parses),
		cmocka_unit_test(semver_spec_examples),
		cmocka_unit_test(email_addresses),
		cmocka_unit_test(capabilities_bounds),
		cmocka_unit_test(owner_counts_code_points),
		cmocka_unit_test(strict_json),
		cmocka_unit_test(members_unknown_duplicate_missing),
		cmocka_unit_test(messages_and_offsets),
		cmocka_unit_test(every_truncation_is_a_clean_error),
		cmocka_unit_test(every_single_byte_corruption_is_valid_or_clean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
