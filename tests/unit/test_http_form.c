/*
 * Form bodies (src/http/form.c): the RFC examples, decoding ('+', %XX in
 * either case, UTF-8), RFC 6749 3.1/3.2's omitted and repeated parameters,
 * every error class with the parameter it names, the cap boundaries, and
 * every truncation and single-byte corruption of valid bodies checked
 * against a reference parser written differently. Every body is read from
 * an exact-size heap copy (ASan) and again ending at a PROT_NONE page.
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

#include "ringside/http_form.h"
#include "ref_urlencoded.h"
#include "unit_inputs.h"

/* A string literal that may hold NUL bytes, and its length. */
#define B(s) (s), sizeof(s) - 1

/* ---- The table the tests parse into (an OAuth token request's) ---- */

enum { F_GRANT, F_SCOPE, F_ID, F_SECRET, NF };
static const char *const names[NF] = {"grant_type", "scope", "client_id", "client_secret"};
static const size_t caps[NF] = {32, 16, 8, 64};

struct form {
	char buf[NF][64];
	struct http_form_field f[NF];
	int field;
	int ret;
};

static void form_init(struct form *t)
{
	memset(t, 0x5A, sizeof *t); /* no output may be left unwritten */
	for (int k = 0; k < NF; k++)
		t->f[k] = (struct http_form_field){.name = names[k], .value = t->buf[k], .cap = caps[k]};
}

/* The outputs hold whatever the status says: terminated, within cap,
 * len the string's length, present exactly when non-empty; all reset on
 * an error. */
static void form_check_invariants(const struct form *t)
{
	for (int k = 0; k < NF; k++) {
		const struct http_form_field *f = &t->f[k];
		assert_true(f->len < f->cap);
		assert_int_equal(strlen(f->value), f->len);
		assert_int_equal(f->present, f->len > 0);
		if (t->ret != HTTP_FORM_OK)
			assert_int_equal(f->len, 0);
	}
	if (t->ret == HTTP_FORM_OK)
		assert_int_equal(t->field, -1);
	else
		assert_true(t->field >= -1 && t->field < NF);
}

/* Parses body[0, len) from a heap copy and from the guard page; both
 * must agree. */
static void parse(struct form *t, const char *body, size_t len)
{
	struct form g;
	char *copy = heap_copy(body, len);
	form_init(t);
	t->ret = http_form_parse(copy, len, t->f, NF, &t->field);
	free(copy);
	form_check_invariants(t);

	form_init(&g);
	g.ret = http_form_parse(guard_place(body, len), len, g.f, NF, &g.field);
	assert_int_equal(g.ret, t->ret);
	assert_int_equal(g.field, t->field);
	for (int k = 0; k < NF; k++) {
		assert_int_equal(g.f[k].len, t->f[k].len);
		assert_memory_equal(g.f[k].value, t->f[k].value, t->f[k].len + 1);
	}
}

static void has_value(const struct form *t, int k, const char *want, size_t want_len)
{
	assert_int_equal(t->f[k].len, want_len);
	assert_memory_equal(t->f[k].value, want, want_len + 1);
	assert_int_equal(t->f[k].present, want_len > 0);
}

static void expect_error(const char *body, size_t len, int ret, int field)
{
	struct form t;
	parse(&t, body, len);
	if (t.ret != ret || t.field != field)
		fail_msg("\"%.*s\": got %d at %d, want %d at %d", (int)len, body, t.ret, t.field,
			 ret, field);
}

/* ---- Cases ---- */

static void rfc_examples_parse(void **state)
{
	(void)state;
	struct form t;
	/* RFC 6749 4.4.2 */
	parse(&t, B("grant_type=client_credentials"));
	assert_int_equal(t.ret, HTTP_FORM_OK);
	has_value(&t, F_GRANT, B("client_credentials"));
	has_value(&t, F_SCOPE, B(""));
	/* RFC 6749 2.3.1, client credentials in the body (refresh_token ignored) */
	parse(&t, B("grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA"
		    "&client_id=s6BhdRk&client_secret=7Fjfp0ZBr1KtDRbnfVdmIw"));
	assert_int_equal(t.ret, HTTP_FORM_OK);
	has_value(&t, F_GRANT, B("refresh_token"));
	has_value(&t, F_ID, B("s6BhdRk"));
	has_value(&t, F_SECRET, B("7Fjfp0ZBr1KtDRbnfVdmIw"));

	/* RFC 7662 2.1 and RFC 7009 2.1, with their own tables */
	char token[64], hint[32];
	struct http_form_field f[] = {
		{.name = "token", .value = token, .cap = sizeof token},
		{.name = "token_type_hint", .value = hint, .cap = sizeof hint},
	};
	int field;
	assert_int_equal(http_form_parse(B("token=mF_9.B5f-4.1JqM&token_type_hint=access_token"), f, 2,
					 &field),
			 HTTP_FORM_OK);
	assert_string_equal(token, "mF_9.B5f-4.1JqM");
	assert_string_equal(hint, "access_token");
	assert_int_equal(http_form_parse(B("token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token"),
					 f, 2, NULL),
			 HTTP_FORM_OK);
	assert_string_equal(token, "45ghiukldjahdnhzdauz");
	assert_string_equal(hint, "refresh_token");
	assert_true(f[0].present && f[1].present);
}

static void values_decode_plus_escapes_and_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} ok[] = {
		{"scope=a+b", "a b"},
		{"scope=%2B%2b+", "++ "},
		{"scope=%41%4a%4A%6a", "AJJj"},
		{"scope=a%20b%26c%3Dd", "a b&c=d"},
		{"scope=%e2%82%ac", "\xe2\x82\xac"},            /* U+20AC, escaped lower case */
		{"scope=%C3%A9t%C3%A9", "\xc3\xa9t\xc3\xa9"},     /* U+00E9 */
		{"scope=\xc3\xa9", "\xc3\xa9"},                   /* raw UTF-8 */
		{"scope=%F0%9F%98%80", "\xf0\x9f\x98\x80"},       /* U+1F600, four bytes */
		{"scope=%EF%BF%BF%F4%8F%BF%BF", "\xef\xbf\xbf\xf4\x8f\xbf\xbf"}, /* U+FFFF, U+10FFFF */
		{"scope=a=b", "a=b"},                             /* only the first '=' splits */
		{"scope=%0A\t", "\n\t"},                          /* control characters are the caller's */
		{"sc%6Fpe=x", "x"},                               /* an escaped name */
		{"scope=+", " "},                                 /* a space is a value */
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct form t;
		parse(&t, ok[i].in, strlen(ok[i].in));
		assert_int_equal(t.ret, HTTP_FORM_OK);
		has_value(&t, F_SCOPE, ok[i].out, strlen(ok[i].out));
	}
}

/* RFC 6749 3.2: empty means omitted; unknown parameters are ignored. */
static void empty_and_unknown_parameters(void **state)
{
	(void)state;
	struct form t;
	static const char *const omitted[] = {
		"", "&", "&&&", "scope=", "scope", "&scope&", "=", "=x", "x", "scope_=1",
		"Scope=1", "scope%00=1", "scope+=1", "unknown=1&unknown=2&unknown",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1",
	};
	for (size_t i = 0; i < sizeof omitted / sizeof omitted[0]; i++) {
		parse(&t, omitted[i], strlen(omitted[i]));
		assert_int_equal(t.ret, HTTP_FORM_OK);
		for (int k = 0; k < NF; k++)
			has_value(&t, k, B(""));
	}
	parse(&t, B("&&x=1&&grant_type=client_credentials&&x=2&scope=a&&"));
	assert_int_equal(t.ret, HTTP_FORM_OK);
	has_value(&t, F_GRANT, B("client_credentials"));
	has_value(&t, F_SCOPE, B("a"));
	/* Unknown parameters' values are not held to the known ones' rules. */
	parse(&t, B("x=%00&y=%ff%fe&z=" "0123456789012345678901234567890123456789012345678901234567890123456789&scope=s"));
	assert_int_equal(t.ret, HTTP_FORM_OK);
	has_value(&t, F_SCOPE, B("s"));
}

/* RFC 6749 3.1: included twice is an error, empty copies included. */
static void repeated_known_parameter_is_refused(void **state)
{
	(void)state;
	static const char *const bodies[] = {
		"scope=a&scope=b", "scope=a&scope=a", "scope=&scope=a", "scope=a&scope=",
		"scope&scope", "scope=&scope", "scope=a&sc%6fpe=b", "s%63ope=a&scope=b",
		"scope=a&x=1&&scope=b",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		expect_error(bodies[i], strlen(bodies[i]), HTTP_FORM_REPEATED, F_SCOPE);
	expect_error(B("client_id=a&grant_type=x&client_id=a"), HTTP_FORM_REPEATED, F_ID);
}

static void bad_escapes_are_refused_anywhere(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int field;
	} bad[] = {
		{"scope=%", F_SCOPE},       {"scope=%2", F_SCOPE},     {"scope=%g0", F_SCOPE},
		{"scope=%0g", F_SCOPE},     {"scope=a%%41", F_SCOPE},  {"scope=%+1", F_SCOPE},
		{"scope=%-1", F_SCOPE},     {"scope=% 1", F_SCOPE},    {"scope=a&x=%", -1},
		{"x=%zz&scope=a", -1},      {"%=1", -1},               {"sc%6=a", -1},
		{"scope%", -1},             {"grant_type=x&client_id=%2", F_ID},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_error(bad[i].in, strlen(bad[i].in), HTTP_FORM_BAD_ESCAPE, bad[i].field);
}

static void nul_and_invalid_utf8_are_refused(void **state)
{
	(void)state;
	expect_error(B("scope=%00"), HTTP_FORM_NUL, F_SCOPE);
	expect_error(B("scope=a%00b"), HTTP_FORM_NUL, F_SCOPE);
	expect_error(B("scope=a\0b"), HTTP_FORM_NUL, F_SCOPE);
	expect_error(B("client_secret=\0"), HTTP_FORM_NUL, F_SECRET);
	static const char *const bad[] = {
		"scope=%80",             /* a continuation byte alone */
		"scope=%C0%AF",          /* overlong '/' */
		"scope=%C1%BF",          /* overlong */
		"scope=%E0%80%AF",       /* overlong, three bytes */
		"scope=%F0%80%80%AF",    /* overlong, four bytes */
		"scope=%ED%A0%80",       /* U+D800, a surrogate */
		"scope=%F4%90%80%80",    /* past U+10FFFF */
		"scope=%F5%80%80%80",    /* past U+10FFFF */
		"scope=%FF",             /* never in UTF-8 */
		"scope=%E2%82",          /* cut short */
		"scope=%E2%82a",         /* cut short, then ASCII */
		"scope=%C3",             /* cut short at the end */
		"scope=\xe2\x82",        /* raw, cut short */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_error(bad[i], strlen(bad[i]), HTTP_FORM_BAD_UTF8, F_SCOPE);
}

/* A value of cap - 1 bytes fits with its NUL; cap bytes do not. The
 * decoded length counts, not the encoded one. */
static void value_length_boundaries(void **state)
{
	(void)state;
	char body[512], want[64];
	for (int k = 0; k < NF; k++) {
		for (size_t n = caps[k] - 2; n <= caps[k] + 1; n++) {
			for (int escaped = 0; escaped < 2; escaped++) {
				size_t o = (size_t)snprintf(body, sizeof body, "%s=", names[k]);
				for (size_t j = 0; j < n; j++) {
					if (escaped) { /* %40-%49: '@' to 'I' */
						body[o++] = '%';
						body[o++] = '4';
						body[o++] = (char)('0' + j % 10);
					} else {
						body[o++] = (char)('A' + j % 26);
					}
				}
				struct form t;
				parse(&t, body, o);
				if (n < caps[k]) {
					assert_int_equal(t.ret, HTTP_FORM_OK);
					for (size_t j = 0; j < n; j++)
						want[j] = escaped ? (char)('@' + j % 10) : (char)('A' + j % 26);
					want[n] = '\0';
					has_value(&t, k, want, n);
				} else {
					assert_int_equal(t.ret, HTTP_FORM_TOO_LONG);
					assert_int_equal(t.field, k);
				}
			}
		}
	}
}

/* The first problem in body order is the one reported, and a failed
 * parse leaves nothing behind. */
static void first_problem_wins_and_failure_resets(void **state)
{
	(void)state;
	expect_error(B("scope=%zz&scope=a"), HTTP_FORM_BAD_ESCAPE, F_SCOPE);
	expect_error(B("scope=a&scope=%zz"), HTTP_FORM_BAD_ESCAPE, F_SCOPE);
	expect_error(B("scope=a&scope=%00"), HTTP_FORM_REPEATED, F_SCOPE);
	expect_error(B("client_id=%00&scope=%zz"), HTTP_FORM_NUL, F_ID);
	expect_error(B("client_id=123456789&scope=%00"), HTTP_FORM_TOO_LONG, F_ID);
	expect_error(B("client_id=12345678%zz"), HTTP_FORM_BAD_ESCAPE, F_ID);
	expect_error(B("client_id=12345678%00"), HTTP_FORM_TOO_LONG, F_ID);
	struct form t;
	parse(&t, B("grant_type=client_credentials&scope=a&scope=b"));
	assert_int_equal(t.ret, HTTP_FORM_REPEATED);
	for (int k = 0; k < NF; k++)
		has_value(&t, k, B(""));
	/* The table is reset on entry: a second parse sees nothing of the first. */
	assert_int_equal(http_form_parse(B("scope=a"), t.f, NF, NULL), HTTP_FORM_OK);
	assert_int_equal(http_form_parse(B("grant_type=g"), t.f, NF, NULL), HTTP_FORM_OK);
	assert_false(t.f[F_SCOPE].present);
	assert_string_equal(t.f[F_SCOPE].value, "");
	assert_string_equal(t.f[F_GRANT].value, "g");
	/* No body at all: everything omitted. */
	assert_int_equal(http_form_parse(NULL, 0, t.f, NF, NULL), HTTP_FORM_OK);
	assert_false(t.f[F_GRANT].present);
	assert_string_equal(t.f[F_GRANT].value, "");
}

static void messages_name_each_status(void **state)
{
	(void)state;
	assert_string_equal(http_form_strerror(HTTP_FORM_OK), "");
	assert_string_equal(http_form_strerror(HTTP_FORM_REPEATED), "is included more than once");
	assert_string_equal(http_form_strerror(HTTP_FORM_TOO_LONG), "is too long");
	assert_string_equal(http_form_strerror(-99), "is malformed");
	for (int s = HTTP_FORM_BAD_UTF8; s < 0; s++)
		assert_true(strlen(http_form_strerror(s)) > 0 &&
			    strcmp(http_form_strerror(s), "is malformed") != 0);
}

/* ---- A reference parser, written another way, for the exhaustive tests ---- */

static void ref_parse(struct form *t, const char *body, size_t len)
{
	char *name = malloc(len + 1), *value = malloc(len + 1);
	bool seen[NF] = {false};
	form_init(t);
	for (int k = 0; k < NF; k++)
		t->f[k].value[0] = '\0', t->f[k].len = 0, t->f[k].present = false;
	t->ret = HTTP_FORM_OK;
	t->field = -1;
	size_t start = 0;
	while (start <= len && t->ret == HTTP_FORM_OK) {
		size_t end = start;
		while (end < len && body[end] != '&')
			end++;
		if (end > start) {
			size_t eq = start;
			while (eq < end && body[eq] != '=')
				eq++;
			long nl = ref_form_decode((const unsigned char *)body + start, eq - start,
						  (unsigned char *)name);
			int k = -1;
			for (int j = 0; nl >= 0 && j < NF; j++)
				if (strlen(names[j]) == (size_t)nl && !memcmp(names[j], name, (size_t)nl))
					k = j;
			long vl = eq < end ? ref_form_decode((const unsigned char *)body + eq + 1,
							      end - eq - 1, (unsigned char *)value)
				    : 0;
			if (nl < 0 || vl < 0)
				t->ret = HTTP_FORM_BAD_ESCAPE, t->field = k;
			else if (k >= 0 && seen[k])
				t->ret = HTTP_FORM_REPEATED, t->field = k;
			else if (k >= 0 && (size_t)vl >= caps[k])
				t->ret = HTTP_FORM_TOO_LONG, t->field = k;
			else if (k >= 0 && memchr(value, '\0', (size_t)vl))
				t->ret = HTTP_FORM_NUL, t->field = k;
			else if (k >= 0 && !ref_utf8((unsigned char *)value, (size_t)vl, false))
				t->ret = HTTP_FORM_BAD_UTF8, t->field = k;
			else if (k >= 0) {
				seen[k] = true;
				memcpy(t->f[k].value, value, (size_t)vl);
				t->f[k].value[vl] = '\0';
				t->f[k].len = (size_t)vl;
				t->f[k].present = vl > 0;
			}
		}
		start = end + 1;
	}
	if (t->ret != HTTP_FORM_OK)
		for (int k = 0; k < NF; k++)
			t->f[k].value[0] = '\0', t->f[k].len = 0, t->f[k].present = false;
	free(name);
	free(value);
}

static void same_as_reference(const char *body, size_t len)
{
	struct form t, r;
	parse(&t, body, len);
	ref_parse(&r, body, len);
	if (t.ret != r.ret || t.field != r.field)
		fail_msg("\"%.*s\": got %d at %d, reference %d at %d", (int)len, body, t.ret,
			 t.field, r.ret, r.field);
	for (int k = 0; k < NF; k++) {
		assert_int_equal(t.f[k].len, r.f[k].len);
		assert_memory_equal(t.f[k].value, r.f[k].value, r.f[k].len + 1);
	}
}

static const char *const valid_bodies[] = {
	"grant_type=client_credentials&scope=read+wr%C3%A9te&client_id=s6B%3Adk&client_secret=7Fjf%2Bp0%2fZ",
	"&x=%41&scope=%e2%82%ac&&grant_type&client_id=ab+c",
};

/* Truncated at every length: a clean result, the reference's. */
static void every_truncation_matches_reference(void **state)
{
	(void)state;
	for (size_t b = 0; b < sizeof valid_bodies / sizeof valid_bodies[0]; b++) {
		size_t n = strlen(valid_bodies[b]);
		same_as_reference(valid_bodies[b], n);
		struct form t;
		parse(&t, valid_bodies[b], n);
		assert_int_equal(t.ret, HTTP_FORM_OK);
		for (size_t cut = 0; cut < n; cut++)
			same_as_reference(valid_bodies[b], cut);
	}
	/* Cut inside an escape: a bad escape, never a read past the end. */
	expect_error(B("scope=%e2%8"), HTTP_FORM_BAD_ESCAPE, F_SCOPE);
	expect_error(B("scope=%e2%82"), HTTP_FORM_BAD_UTF8, F_SCOPE);
}

/* Every byte replaced by every value: a clean result, the reference's. */
static void every_single_byte_corruption_matches_reference(void **state)
{
	(void)state;
	for (size_t b = 0; b < sizeof valid_bodies / sizeof valid_bodies[0]; b++) {
		size_t n = strlen(valid_bodies[b]);
		char *body = heap_copy(valid_bodies[b], n);
		for (size_t i = 0; i < n; i++) {
			char was = body[i];
			for (int c = 0; c < 256; c++) {
				body[i] = (char)c;
				same_as_reference(body, n);
			}
			body[i] = was;
		}
		free(body);
	}
}

static void content_type_is_form_urlencoded(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"application/x-www-form-urlencoded",
		"Application/X-WWW-Form-URLEncoded",
		"application/x-www-form-urlencoded;charset=utf-8",
		"application/x-www-form-urlencoded; charset=UTF-8",
		"application/x-www-form-urlencoded ; charset=\"utf-8\"",
		"application/x-www-form-urlencoded;\tCharset=Utf-8;a=b",
		"application/x-www-form-urlencoded; a=\"x y;\\\"z\"",
		"application/x-www-form-urlencoded;",
		"application/x-www-form-urlencoded;;a=b; ",
	};
	static const char *const bad[] = {
		"",
		"application/json",
		"multipart/form-data",
		"application/x-www-form-urlencode",
		"application/x-www-form-urlencodedx",
		"application/x-www-form-urlencoded/x",
		"application/x-www-form-urlencoded, text/plain",
		"application/x-www-form-urlencoded; charset=iso-8859-1",
		"application/x-www-form-urlencoded; charset=utf8",
		"application/x-www-form-urlencoded; charset=\"utf-8",
		"application/x-www-form-urlencoded; charset=\"utf\\-8\"",
		"application/x-www-form-urlencoded; charset",
		"application/x-www-form-urlencoded; charset=",
		"application/x-www-form-urlencoded; =utf-8",
		"application/x-www-form-urlencoded; a=b c",
		"application/x-www-form-urlencoded; a=\"\x01\"",
		" application/x-www-form-urlencoded",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		size_t n = strlen(ok[i]);
		if (!http_form_content_type_ok(guard_place(ok[i], n), n))
			fail_msg("refused \"%s\"", ok[i]);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n = strlen(bad[i]);
		if (http_form_content_type_ok(guard_place(bad[i], n), n))
			fail_msg("accepted \"%s\"", bad[i]);
	}
	/* Every prefix of a valid one, at the guard page. */
	const char *full = ok[6];
	for (size_t n = 0; n < strlen(full); n++)
		(void)http_form_content_type_ok(guard_place(full, n), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc_examples_parse),
		cmocka_unit_test(values_decode_plus_escapes_and_utf8),
		cmocka_unit_test(empty_and_unknown_parameters),
		cmocka_unit_test(repeated_known_parameter_is_refused),
		cmocka_unit_test(bad_escapes_are_refused_anywhere),
		cmocka_unit_test(nul_and_invalid_utf8_are_refused),
		cmocka_unit_test(value_length_boundaries),
		cmocka_unit_test(first_problem_wins_and_failure_resets),
		cmocka_unit_test(messages_name_each_status),
		cmocka_unit_test(every_truncation_matches_reference),
		cmocka_unit_test(every_single_byte_corruption_matches_reference),
		cmocka_unit_test(content_type_is_form_urlencoded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
