/*
 * The error tables of the contract families (include/ringside/api_errors.h)
 * against the texts that define them, and the writers that send them
 * (src/http/response.c): every code is its seed's or RFC's, the statuses
 * the server answers by itself get each family's code, and an OAuth error
 * is exactly RFC 6749 section 5.2's two members.
 *
 * The seeds' lists are copied here verbatim, so the test stands alone;
 * when the seeds themselves are at hand ($RINGSIDE_SEEDS, or
 * ../shared/seeds from the repo root, where the tests run) they are read
 * too, and the copies are checked against them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "ringside/api_errors.h"
#include "ringside/http_response.h"
#include "ringside/http_status.h"

/* Seed 003, "Allowed values:" of its error `code` (both responses). */
static const char seed_003_codes[] = "VALIDATION_ERROR READONLY_FIELD UNAUTHORIZED "
				     "FORBIDDEN_SCOPE FORBIDDEN_ROLE NOT_FOUND CONFLICT "
				     "IDEMPOTENCY_KEY_REUSED RATE_LIMITED SERVICE_UNAVAILABLE "
				     "INTERNAL";

/* Seeds 000 and 002: each code they name, its status, and the message
 * they give for it (NULL: an example specific to one endpoint). */
static const struct {
	const char *code;
	unsigned status;
	const char *message;
} seed_000_002[] = {
	{"INTERNAL_SERVER_ERROR", 500, "An unexpected error occurred. Please try again later."},
	{"UNAUTHORIZED", 401, "A valid Bearer token is required to access this resource."},
	{"VALIDATION_ERROR", 400, NULL},
	{"NOT_FOUND", 404, NULL},
};

/* The file, NUL-terminated and malloc'd, from the seeds directory; NULL
 * if it is not there. */
static char *read_seed(const char *name)
{
	const char *dir = getenv("RINGSIDE_SEEDS");
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir ? dir : "../shared/seeds", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *copy = malloc(n + 1);
	assert_non_null(copy);
	memcpy(copy, buf, n + 1);
	return copy;
}

static bool in_core(const char *code)
{
	for (unsigned i = 0; i < API_CORE_COUNT; i++)
		if (!strcmp(api_core_errors[i].code, code))
			return true;
	return false;
}

static void core_codes_are_the_seeds_and_core_yamls(void **state)
{
	(void)state;
	/* Generated from one row: the enum's name is the code. */
#define SAME_(name, code, status, message) assert_string_equal(#name, code);
	API_CORE_ERRORS(SAME_)
	API_AGENT_ERRORS(SAME_)
	API_IDENTITY_ERRORS(SAME_)
#undef SAME_
	for (size_t i = 0; i < sizeof seed_000_002 / sizeof seed_000_002[0]; i++) {
		bool found = false;
		for (unsigned k = 0; k < API_CORE_COUNT; k++) {
			const struct api_error *e = &api_core_errors[k];
			if (strcmp(e->code, seed_000_002[i].code))
				continue;
			found = true;
			assert_int_equal(e->status, seed_000_002[i].status);
			if (seed_000_002[i].message)
				assert_string_equal(e->message, seed_000_002[i].message);
		}
		if (!found)
			fail_msg("seed code %s is not in the core table", seed_000_002[i].code);
	}
	/* What the server answers by itself, as openapi/core.yaml's table
	 * says (and as the status table said before the families). */
	static const struct {
		unsigned status;
		const char *code, *message;
	} pinned[] = {
		{400, "BAD_REQUEST", "The request is malformed."},
		{404, "NOT_FOUND", "No resource at this path."},
		{405, "METHOD_NOT_ALLOWED", "This method is not allowed on this path."},
		{408, "REQUEST_TIMEOUT", "The request was not received in time."},
		{413, "PAYLOAD_TOO_LARGE", "The request body is larger than the server accepts."},
		{414, "URI_TOO_LONG", "The request target is longer than the server accepts."},
		{415, "UNSUPPORTED_MEDIA_TYPE",
		 "The request body has a media type this endpoint does not accept."},
		{417, "EXPECTATION_FAILED", "Only the 100-continue expectation is supported."},
		{429, "RATE_LIMITED", "Too many requests."},
		{431, "HEADERS_TOO_LARGE", "The request head is larger than the server accepts."},
		{500, "INTERNAL_SERVER_ERROR", "An unexpected error occurred. Please try again later."},
		{501, "NOT_IMPLEMENTED", "The server does not support this transfer coding."},
		{503, "SERVICE_UNAVAILABLE", "The server is at capacity or shutting down. Retry later."},
		{504, "GATEWAY_TIMEOUT", "The server did not get an answer in time. Retry."},
		{505, "HTTP_VERSION_NOT_SUPPORTED", "Only HTTP/1.0 and HTTP/1.1 are supported."},
		/* Not in the table: a 4xx is the client's, anything else ours. */
		{409, "BAD_REQUEST", "The request is malformed."},
		{599, "INTERNAL_SERVER_ERROR", "An unexpected error occurred. Please try again later."},
	};
	for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
		const struct api_error *e = &api_core_errors[api_core_error_of(pinned[i].status)];
		assert_string_equal(e->code, pinned[i].code);
		assert_string_equal(e->message, pinned[i].message);
	}

	/* The seeds themselves, when they are here: every `code: X` of 000
	 * and 002 is a core code, and their messages are the table's. */
	const char *names[] = {"000-prometheus-metrics.openapi.yaml",
			       "002-tenant-analytics.openapi.yaml"};
	for (size_t f = 0; f < 2; f++) {
		char *text = read_seed(names[f]);
		if (!text) {
			print_message("(seed %s not found: checked against the copies only)\n",
				      names[f]);
			continue;
		}
		unsigned codes = 0;
		for (const char *p = text; (p = strstr(p, "code: ")); p += 6) {
			char code[64];
			size_t n = strspn(p + 6, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
			if (n == 0 || n >= sizeof code)
				continue;
			memcpy(code, p + 6, n);
			code[n] = '\0';
			if (!in_core(code))
				fail_msg("%s names %s, not in the core table", names[f], code);
			codes++;
		}
		assert_true(codes > 0);
		for (size_t i = 0; i < sizeof seed_000_002 / sizeof seed_000_002[0]; i++)
			if (seed_000_002[i].message && strstr(text, seed_000_002[i].code))
				assert_non_null(strstr(text, seed_000_002[i].message));
		free(text);
	}
}

static void agent_codes_are_seed_003s_allowed_values(void **state)
{
	(void)state;
	char joined[512] = "";
	for (unsigned i = 0; i < API_AGENT_COUNT; i++) {
		if (i)
			strcat(joined, " ");
		strcat(joined, api_agent_errors[i].code);
	}
	assert_string_equal(joined, seed_003_codes);

	char *text = read_seed("003-agent-metrics-ingest.txt");
	if (!text) {
		print_message("(seed 003 not found: checked against the copy only)\n");
		return;
	}
	unsigned lists = 0;
	for (char *p = text; (p = strstr(p, "Allowed values: ")); p++) {
		p += strlen("Allowed values: ");
		size_t n = strcspn(p, "\r\n");
		assert_int_equal(n, strlen(seed_003_codes));
		assert_memory_equal(p, seed_003_codes, n);
		lists++;
	}
	assert_true(lists > 0);
	free(text);
}

static void oauth_codes_are_the_rfcs(void **state)
{
	(void)state;
	static const struct {
		const char *code;
		unsigned status;
	} rfc[] = {
		/* RFC 6749 5.2 */
		{"invalid_request", 400},
		{"invalid_client", 401},
		{"invalid_grant", 400},
		{"unauthorized_client", 400},
		{"unsupported_grant_type", 400},
		{"invalid_scope", 400},
		/* RFC 7009 2.2.1 */
		{"unsupported_token_type", 400},
		/* RFC 6750 3.1 */
		{"invalid_token", 401},
		{"insufficient_scope", 403},
		/* RFC 6749 4.1.2.1 */
		{"temporarily_unavailable", 503},
		{"server_error", 500},
	};
	assert_int_equal(API_OAUTH_COUNT, sizeof rfc / sizeof rfc[0]);
	for (unsigned i = 0; i < API_OAUTH_COUNT; i++) {
		const struct api_error *e = &api_oauth_errors[i];
		assert_string_equal(e->code, rfc[i].code);
		assert_int_equal(e->status, rfc[i].status);
		/* 5.2: error and error_description in %x20-21 / %x23-5B / %x5D-7E. */
		for (const char *s = e->message; *s; s++)
			assert_true(*s >= 0x20 && *s <= 0x7e && *s != '"' && *s != '\\');
		assert_true(e->message[0] != '\0');
	}
}

static void each_family_answers_a_status_with_its_code(void **state)
{
	(void)state;
	/* openapi/ingest.yaml's table of the agent routes. */
	static const struct {
		unsigned status;
		const char *code;
	} agent[] = {
		{400, "VALIDATION_ERROR"}, {401, "UNAUTHORIZED"},    {403, "FORBIDDEN_SCOPE"},
		{404, "NOT_FOUND"},        {405, "VALIDATION_ERROR"}, {408, "VALIDATION_ERROR"},
		{413, "VALIDATION_ERROR"}, {414, "VALIDATION_ERROR"}, {415, "VALIDATION_ERROR"},
		{417, "VALIDATION_ERROR"}, {429, "RATE_LIMITED"},    {431, "VALIDATION_ERROR"},
		{500, "INTERNAL"},         {501, "VALIDATION_ERROR"}, {503, "SERVICE_UNAVAILABLE"},
		{504, "INTERNAL"},         {505, "INTERNAL"},
	};
	for (size_t i = 0; i < sizeof agent / sizeof agent[0]; i++)
		assert_string_equal(api_agent_error_code(agent[i].status), agent[i].code);

	/* The identity issue's table, then the server's own answers on its
	 * routes: the core family's names for what the issue does not name. */
	static const struct {
		unsigned status;
		const char *code;
	} identity[] = {
		{400, "VALIDATION_ERROR"},  {401, "UNAUTHORIZED"},       {403, "FORBIDDEN"},
		{404, "AGENT_NOT_FOUND"},   {409, "CONFLICT"},           {413, "PAYLOAD_TOO_LARGE"},
		{405, "METHOD_NOT_ALLOWED"}, {408, "REQUEST_TIMEOUT"},   {415, "UNSUPPORTED_MEDIA_TYPE"},
		{500, "INTERNAL_SERVER_ERROR"}, {503, "SERVICE_UNAVAILABLE"}, {504, "GATEWAY_TIMEOUT"},
	};
	for (size_t i = 0; i < sizeof identity / sizeof identity[0]; i++)
		assert_string_equal(api_identity_error_code(identity[i].status), identity[i].code);

	/* Every status a row may be sent with has its reason phrase. */
	const struct api_error *tables[] = {api_core_errors, api_agent_errors, api_oauth_errors,
					    api_identity_errors};
	const unsigned counts[] = {API_CORE_COUNT, API_AGENT_COUNT, API_OAUTH_COUNT,
				   API_IDENTITY_COUNT};
	for (size_t t = 0; t < 4; t++)
		for (unsigned i = 0; i < counts[t]; i++)
			if (!strcmp(http_status_reason(tables[t][i].status), "Unknown"))
				fail_msg("%s: status %u has no reason phrase", tables[t][i].code,
					 tables[t][i].status);
}

static char date_line[HTTP_DATE_LINE_LEN];
static char buf[8192];
static struct http_out out;

static struct http_exchange exchange(void)
{
	out = (struct http_out){buf, 0, sizeof buf - 1};
	http_format_date_line(date_line, 1795348800);
	struct http_exchange x = {.method = HTTP_POST, .date_line = date_line, .out = &out};
	strcpy(x.request_id, "req_test");
	x.request_id_len = 8;
	return x;
}

/* The body of what was written, its status in *status. */
static const char *body_of(unsigned *status)
{
	buf[out.len] = '\0';
	assert_int_equal(sscanf(buf, "HTTP/1.1 %u ", status), 1);
	const char *body = strstr(buf, "\r\n\r\n");
	assert_non_null(body);
	return body + 4;
}

/* {"error":..,"error_description":..} and nothing else. */
static void assert_oauth_body(const char *body, const char *error, const char *description)
{
	json_error_t e;
	json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &e);
	if (!j)
		fail_msg("jansson: %s in %s", e.text, body);
	assert_true(json_is_object(j));
	assert_int_equal(json_object_size(j), 2);
	assert_string_equal(json_string_value(json_object_get(j, "error")), error);
	assert_string_equal(json_string_value(json_object_get(j, "error_description")),
			    description);
	json_decref(j);
}

static void oauth_error_is_exactly_two_members(void **state)
{
	(void)state;
	for (unsigned i = 0; i < API_OAUTH_COUNT; i++) {
		struct http_exchange x = exchange();
		assert_int_equal(http_reply_oauth_error(&x, 0, (enum api_oauth_error)i, NULL, NULL), 0);
		unsigned status;
		const char *body = body_of(&status);
		assert_int_equal(status, api_oauth_errors[i].status);
		assert_oauth_body(body, api_oauth_errors[i].code, api_oauth_errors[i].message);
		assert_non_null(strstr(buf, "\r\nContent-Type: application/json\r\n"));
		assert_non_null(strstr(buf, "\r\nCache-Control: no-store\r\nPragma: no-cache\r\n\r\n"));
	}

	/* invalid_client as 401 with the scheme the client used; the
	 * headers of 5.1 come first, the caller's after. */
	struct http_exchange x = exchange();
	assert_int_equal(http_reply_oauth_error(&x, 401, API_OAUTH_INVALID_CLIENT,
						"Unknown client or wrong secret.",
						"WWW-Authenticate: Basic realm=\"ringside\"\r\n"),
			 0);
	unsigned status;
	const char *body = body_of(&status);
	assert_int_equal(status, 401);
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	assert_non_null(strstr(buf, "\r\nCache-Control: no-store\r\nPragma: no-cache\r\n"
				    "WWW-Authenticate: Basic realm=\"ringside\"\r\n\r\n"));
	assert_string_equal(body, "{\"error\":\"invalid_client\","
				  "\"error_description\":\"Unknown client or wrong secret.\"}");

	/* Bytes 5.2 does not allow become '?'; empty is the default. */
	x = exchange();
	assert_int_equal(http_reply_oauth_error(&x, 400, API_OAUTH_INVALID_SCOPE,
						"scope \"a\\b\"\n\x01 \xc3\xa9", NULL),
			 0);
	assert_oauth_body(body_of(&status), "invalid_scope", "scope ?a?b??? ??");
	x = exchange();
	assert_int_equal(http_reply_oauth_error(&x, 0, API_OAUTH_INVALID_GRANT, "", NULL), 0);
	assert_oauth_body(body_of(&status), "invalid_grant",
			  api_oauth_errors[API_OAUTH_INVALID_GRANT].message);

	/* A long description is cut at HTTP_OAUTH_DESCRIPTION_MAX. */
	static char longer[HTTP_OAUTH_DESCRIPTION_MAX + 100];
	memset(longer, 'd', sizeof longer - 1);
	x = exchange();
	assert_int_equal(http_reply_oauth_error(&x, 0, API_OAUTH_INVALID_REQUEST, longer, NULL), 0);
	longer[HTTP_OAUTH_DESCRIPTION_MAX] = '\0';
	assert_oauth_body(body_of(&status), "invalid_request", longer);

	/* HEAD: the head, with the length a GET would get, and no body. */
	x = exchange();
	x.head_only = true;
	assert_int_equal(http_reply_oauth_error(&x, 0, API_OAUTH_INVALID_REQUEST, NULL, NULL), 0);
	assert_string_equal(body_of(&status), "");
	assert_non_null(strstr(buf, "\r\nContent-Length: "));

	/* No room: nothing written. */
	x = exchange();
	out.len = out.cap - 100;
	assert_int_equal(http_reply_oauth_error(&x, 0, API_OAUTH_INVALID_REQUEST, NULL, NULL),
			 -ENOSPC);
	assert_int_equal(out.len, out.cap - 100);
}

static void typed_envelopes_carry_their_familys_code(void **state)
{
	(void)state;
	unsigned status;
	struct http_exchange x = exchange();
	assert_int_equal(http_reply_agent_error(&x, 413, API_AGENT_VALIDATION_ERROR, "too big",
						"containers", "send less", "Retry-After: 1\r\n"),
			 0);
	const char *body = body_of(&status);
	assert_int_equal(status, 413);
	assert_string_equal(body, "{\"code\":\"VALIDATION_ERROR\",\"message\":\"too big\","
				  "\"field\":\"containers\",\"hint\":\"send less\","
				  "\"requestId\":\"req_test\"}");
	assert_non_null(strstr(buf, "\r\nRetry-After: 1\r\n\r\n"));

	/* Status 0 and message NULL: the row's. */
	x = exchange();
	assert_int_equal(http_reply_agent_error(&x, 0, API_AGENT_INTERNAL, NULL, NULL, NULL, NULL), 0);
	body = body_of(&status);
	assert_int_equal(status, 500);
	assert_string_equal(body, "{\"code\":\"INTERNAL\",\"message\":\"An unexpected error "
				  "occurred. Please try again later.\",\"requestId\":\"req_test\"}");
	x = exchange();
	assert_int_equal(http_reply_core_error(&x, 0, API_CORE_NOT_FOUND, NULL, NULL, NULL, NULL), 0);
	body = body_of(&status);
	assert_int_equal(status, 404);
	assert_string_equal(body, "{\"code\":\"NOT_FOUND\",\"message\":\"No resource at this "
				  "path.\",\"requestId\":\"req_test\"}");
	/* The same bytes as the engine's writer given the same code. */
	char typed[1024];
	strcpy(typed, buf);
	x = exchange();
	assert_int_equal(http_reply_error(&x, 404, NULL, NULL, NULL, NULL, NULL), 0);
	buf[out.len] = '\0';
	assert_string_equal(buf, typed);
}

static void identity_envelope_has_details_not_field(void **state)
{
	(void)state;
	unsigned status;
	struct http_exchange x = exchange();
	assert_int_equal(http_reply_identity_error(&x, 0, API_IDENTITY_VALIDATION_ERROR,
						   "Field \"email\" is bad", "email", NULL, NULL),
			 0);
	assert_string_equal(body_of(&status),
			    "{\"code\":\"VALIDATION_ERROR\",\"message\":\"Field \\\"email\\\" is bad\","
			    "\"details\":{\"field\":\"email\"},\"requestId\":\"req_test\"}");
	assert_int_equal(status, 400);
	x = exchange();
	assert_int_equal(http_reply_identity_error(&x, 0, API_IDENTITY_CREDENTIAL_NOT_FOUND, NULL,
						   NULL, NULL, NULL),
			 0);
	assert_string_equal(body_of(&status), "{\"code\":\"CREDENTIAL_NOT_FOUND\",\"message\":"
					      "\"No such credential.\",\"requestId\":\"req_test\"}");
	assert_int_equal(status, 404);
	x = exchange();
	assert_int_equal(http_reply_identity_error(&x, 0, API_IDENTITY_SERVICE_UNAVAILABLE, NULL,
						   NULL, "Start with --x.", NULL),
			 0);
	assert_non_null(strstr(body_of(&status), "\"details\":{\"hint\":\"Start with --x.\"}"));
	assert_int_equal(status, 503);
}

/* Seed 002's two `days` examples, byte for byte but the requestId. */
static void seed_002_days_errors_are_its_examples(void **state)
{
	(void)state;
	unsigned status;
	struct http_exchange x = exchange();
	const struct http_error_details over = {.field = "days", .max = "90", .provided = "120"};
	assert_int_equal(http_reply_detailed_error(&x, 400, API_CORE_VALIDATION_ERROR,
						   "Query parameter `days` must not exceed 90.", &over,
						   NULL),
			 0);
	assert_string_equal(body_of(&status),
			    "{\"code\":\"VALIDATION_ERROR\",\"message\":\"Query parameter `days` must "
			    "not exceed 90.\",\"details\":{\"field\":\"days\",\"max\":90,"
			    "\"provided\":120},\"requestId\":\"req_test\"}");
	assert_int_equal(status, 400);
	x = exchange();
	const struct http_error_details bad = {.field = "days"};
	assert_int_equal(http_reply_detailed_error(&x, 400, API_CORE_VALIDATION_ERROR,
						   "Query parameter `days` must be a positive integer.",
						   &bad, NULL),
			 0);
	assert_string_equal(body_of(&status),
			    "{\"code\":\"VALIDATION_ERROR\",\"message\":\"Query parameter `days` must "
			    "be a positive integer.\",\"details\":{\"field\":\"days\"},"
			    "\"requestId\":\"req_test\"}");
	/* Not digits (or a leading zero): a string, never raw JSON. */
	x = exchange();
	const struct http_error_details odd = {.provided = "1e9\"}"};
	assert_int_equal(http_reply_detailed_error(&x, 400, API_CORE_VALIDATION_ERROR, "m", &odd,
						   NULL),
			 0);
	assert_non_null(strstr(body_of(&status), "\"provided\":\"1e9\\\"}\""));
	x = exchange();
	assert_int_equal(http_reply_detailed_error(&x, 404, API_CORE_NOT_FOUND,
						   "Analytics is not enabled on this instance.", NULL,
						   NULL),
			 0);
	assert_string_equal(body_of(&status),
			    "{\"code\":\"NOT_FOUND\",\"message\":\"Analytics is not enabled on this "
			    "instance.\",\"requestId\":\"req_test\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(core_codes_are_the_seeds_and_core_yamls),
		cmocka_unit_test(agent_codes_are_seed_003s_allowed_values),
		cmocka_unit_test(oauth_codes_are_the_rfcs),
		cmocka_unit_test(each_family_answers_a_status_with_its_code),
		cmocka_unit_test(oauth_error_is_exactly_two_members),
		cmocka_unit_test(typed_envelopes_carry_their_familys_code),
		cmocka_unit_test(identity_envelope_has_details_not_field),
		cmocka_unit_test(seed_002_days_errors_are_its_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
