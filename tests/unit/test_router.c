/* Unit tests for the static router (src/http/router.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ringside/router.h"

#define BIT(m) (1u << (m))

static const struct http_route routes[] = {
	{ HTTP_GET, "/", NULL, 0 },
	{ HTTP_GET, "/health", NULL, 0 },
	{ HTTP_GET, "/metrics", NULL, 0 },
	{ HTTP_POST, "/api/metrics/ingest", NULL, 0 },
	{ HTTP_GET, "/api/metrics/agents/{agentId}/latest", NULL, 0 },
	{ HTTP_POST, "/api/v1/agents", NULL, 0 },
	{ HTTP_GET, "/api/v1/agents/{agentId}", NULL, 0 },
	{ HTTP_PUT, "/api/v1/agents/{agentId}", NULL, 0 },
	{ HTTP_DELETE, "/api/v1/agents/{agentId}", NULL, 0 },
	{ HTTP_GET, "/t/{a}/x/{b}/{c}/{d}", NULL, 0 },
	{ HTTP_GET, "/dir/", NULL, 0 },
	{ HTTP_GET, "/both", NULL, 0 },
	{ HTTP_HEAD, "/both", NULL, 0 }, /* an explicit HEAD beats GET */
	{ HTTP_GET, "/t/1/x/2/3/4", NULL, 0 }, /* shadowed by routes[9] */
};

static const struct router router = {
	routes, sizeof routes / sizeof routes[0]
};

/* Matches a NUL-terminated path. */
static enum router_status match(enum http_method m, const char *path,
				struct router_match *out)
{
	return router_match(&router, m, path, strlen(path), out);
}

static void assert_param(const char *path, const struct router_match *mt,
			 unsigned i, const char *want)
{
	assert_true(i < mt->param_count);
	assert_int_equal(mt->params[i].len, strlen(want));
	assert_memory_equal(path + mt->params[i].off, want, strlen(want));
}

static void test_found(void **state)
{
	struct router_match mt;

	(void)state;
	assert_int_equal(match(HTTP_GET, "/health", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[1]);
	assert_int_equal(mt.param_count, 0);
	assert_int_equal(mt.allow, BIT(HTTP_GET) | BIT(HTTP_HEAD));

	assert_int_equal(match(HTTP_POST, "/api/metrics/ingest", &mt),
			 ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[3]);
	assert_int_equal(mt.allow, BIT(HTTP_POST));

	assert_int_equal(match(HTTP_GET, "/", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[0]);

	/* Same pattern, the method picks the route. */
	assert_int_equal(match(HTTP_DELETE, "/api/v1/agents/a1", &mt),
			 ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[8]);
	assert_int_equal(match(HTTP_PUT, "/api/v1/agents/a1", &mt),
			 ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[7]);
}

static void test_not_found(void **state)
{
	const char *const paths[] = {
		"/nope", "/healthz", "/heal", "/health/x", "/Health",
		"//health", "/api/metrics", "/api/metrics/ingest/more",
		"/api/v1/agents/a1/extra", "/t/1/x/2/3", "/t/1/y/2/3/4",
		"health", "*",
	};
	struct router_match mt;

	(void)state;
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		assert_int_equal(match(HTTP_GET, paths[i], &mt),
				 ROUTER_NOT_FOUND);
		assert_null(mt.route);
		assert_int_equal(mt.allow, 0);
	}
}

static void test_method_not_allowed(void **state)
{
	struct router_match mt;

	(void)state;
	assert_int_equal(match(HTTP_POST, "/health", &mt),
			 ROUTER_METHOD_NOT_ALLOWED);
	assert_null(mt.route);
	assert_int_equal(mt.allow, BIT(HTTP_GET) | BIT(HTTP_HEAD));
	/* The path's route labels the 405 in the metrics (regression: it
	 * was counted as "unmatched"). */
	assert_ptr_equal(mt.path_route, &routes[1]);

	assert_int_equal(match(HTTP_GET, "/api/metrics/ingest", &mt),
			 ROUTER_METHOD_NOT_ALLOWED);
	assert_int_equal(mt.allow, BIT(HTTP_POST));

	/* The mask gathers every route of the path. */
	assert_int_equal(match(HTTP_POST, "/api/v1/agents/a1", &mt),
			 ROUTER_METHOD_NOT_ALLOWED);
	assert_int_equal(mt.allow, BIT(HTTP_GET) | BIT(HTTP_HEAD) |
					   BIT(HTTP_PUT) | BIT(HTTP_DELETE));
	assert_ptr_equal(mt.path_route, &routes[6]); /* the first of the path */
	assert_int_equal(match(HTTP_DELETE, "/health", &mt),
			 ROUTER_METHOD_NOT_ALLOWED);
}

/* RFC 9110 9.1: a method no route serves is a 501 on every path, known
 * or not (CONNECT answered 404); 405 stays for a method served elsewhere. */
static void test_unimplemented_method_is_501_before_404_and_405(void **state)
{
	struct router_match mt;

	(void)state;
	static const enum http_method nowhere[] = {
		HTTP_PATCH, HTTP_OPTIONS, HTTP_TRACE, HTTP_CONNECT, HTTP_METHOD_OTHER,
	};
	for (size_t i = 0; i < sizeof nowhere / sizeof nowhere[0]; i++) {
		assert_int_equal(match(nowhere[i], "/metrics", &mt), ROUTER_NOT_IMPLEMENTED);
		assert_int_equal(match(nowhere[i], "/nowhere", &mt), ROUTER_NOT_IMPLEMENTED);
		assert_null(mt.path_route);
	}
	/* The path's route still labels it in the metrics. */
	assert_int_equal(match(HTTP_PATCH, "/api/v1/agents/a1", &mt), ROUTER_NOT_IMPLEMENTED);
	assert_ptr_equal(mt.path_route, &routes[6]);
	/* HEAD is served wherever GET is; POST, PUT, DELETE somewhere. */
	assert_int_equal(match(HTTP_HEAD, "/nowhere", &mt), ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_PUT, "/nowhere", &mt), ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_PUT, "/health", &mt), ROUTER_METHOD_NOT_ALLOWED);
	/* An empty table implements nothing. */
	const struct router none = { NULL, 0 };
	assert_int_equal(router_match(&none, HTTP_GET, "/", 1, &mt), ROUTER_NOT_IMPLEMENTED);
}

static void test_found_reports_the_full_mask(void **state)
{
	struct router_match mt;

	(void)state;

	/* And a found route reports the full mask too. */
	assert_int_equal(match(HTTP_GET, "/api/v1/agents/a1", &mt),
			 ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[6]);
	assert_ptr_equal(mt.path_route, &routes[6]);
	assert_int_equal(mt.allow, BIT(HTTP_GET) | BIT(HTTP_HEAD) |
					   BIT(HTTP_PUT) | BIT(HTTP_DELETE));
}

static void test_params(void **state)
{
	const char *p1 = "/api/metrics/agents/agent-42/latest";
	const char *p2 = "/t/one/x/2/three3/%7E";
	struct router_match mt;

	(void)state;
	assert_int_equal(match(HTTP_GET, p1, &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[4]);
	assert_int_equal(mt.param_count, 1);
	assert_param(p1, &mt, 0, "agent-42");
	assert_int_equal(mt.params[0].off, strlen("/api/metrics/agents/"));

	assert_int_equal(match(HTTP_GET, p2, &mt), ROUTER_FOUND);
	assert_int_equal(mt.param_count, 4);
	assert_param(p2, &mt, 0, "one");
	assert_param(p2, &mt, 1, "2");
	assert_param(p2, &mt, 2, "three3");
	assert_param(p2, &mt, 3, "%7E");

	/* A param on a 405 is not reported. */
	assert_int_equal(match(HTTP_POST, p1, &mt), ROUTER_METHOD_NOT_ALLOWED);
	assert_int_equal(mt.param_count, 0);
}

/* Overlapping patterns: the first in table order wins, for HEAD too. */
static void test_first_route_wins(void **state)
{
	struct router_match mt;

	(void)state;
	assert_int_equal(match(HTTP_GET, "/t/1/x/2/3/4", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[9]);
	assert_int_equal(mt.param_count, 4);
	assert_int_equal(match(HTTP_HEAD, "/t/1/x/2/3/4", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[9]);
	assert_int_equal(mt.param_count, 4);
}

static void test_param_nonempty_no_slash(void **state)
{
	struct router_match mt;

	(void)state;
	assert_int_equal(match(HTTP_GET, "/api/metrics/agents//latest", &mt),
			 ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_GET, "/api/metrics/agents/a/b/latest", &mt),
			 ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_GET, "/api/v1/agents/", &mt),
			 ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_GET, "/api/v1/agents/a/b", &mt),
			 ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_GET, "/t//x/2/3/4", &mt), ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_GET, "/t/1/x/2/3/", &mt), ROUTER_NOT_FOUND);
}

static void test_head(void **state)
{
	struct router_match mt;

	(void)state;
	/* HEAD is answered by the GET route. */
	assert_int_equal(match(HTTP_HEAD, "/health", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[1]);
	assert_int_equal(match(HTTP_HEAD, "/api/v1/agents/z", &mt),
			 ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[6]);
	assert_param("/api/v1/agents/z", &mt, 0, "z");

	/* Not by a POST route. */
	assert_int_equal(match(HTTP_HEAD, "/api/metrics/ingest", &mt),
			 ROUTER_METHOD_NOT_ALLOWED);
	assert_int_equal(mt.allow, BIT(HTTP_POST));

	/* An explicit HEAD route wins, whatever the table order. */
	assert_int_equal(match(HTTP_HEAD, "/both", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[12]);
	assert_int_equal(match(HTTP_GET, "/both", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[11]);
}

static void test_trailing_slash_significant(void **state)
{
	struct router_match mt;

	(void)state;
	assert_int_equal(match(HTTP_GET, "/health/", &mt), ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_GET, "/dir/", &mt), ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[10]);
	assert_int_equal(match(HTTP_GET, "/dir", &mt), ROUTER_NOT_FOUND);
	assert_int_equal(match(HTTP_GET, "/dir//", &mt), ROUTER_NOT_FOUND);
}

static void test_empty_path_and_length(void **state)
{
	/* The path is a span: nothing past len may be read or matched. */
	const char buf[] = "/healthXYZ";
	struct router_match mt;

	(void)state;
	assert_int_equal(router_match(&router, HTTP_GET, "", 0, &mt),
			 ROUTER_NOT_FOUND);
	assert_int_equal(router_match(&router, HTTP_GET, buf, 0, &mt),
			 ROUTER_NOT_FOUND);
	assert_int_equal(router_match(&router, HTTP_GET, buf, 7, &mt),
			 ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[1]);
	assert_int_equal(router_match(&router, HTTP_GET, buf, 5, &mt),
			 ROUTER_NOT_FOUND);
	assert_int_equal(router_match(&router, HTTP_GET, buf, 1, &mt),
			 ROUTER_FOUND);
	assert_ptr_equal(mt.route, &routes[0]);

}

static void test_format_allow(void **state)
{
	char out[128];
	uint32_t all = 0;

	(void)state;
	assert_int_equal(router_format_allow(BIT(HTTP_POST) | BIT(HTTP_HEAD) |
						     BIT(HTTP_GET),
					     out, sizeof out),
			 strlen("GET, HEAD, POST"));
	assert_string_equal(out, "GET, HEAD, POST");

	for (int m = 0; m < HTTP_METHOD_COUNT; m++)
		all |= BIT(m);
	router_format_allow(all, out, sizeof out);
	/* Enum order; HTTP_METHOD_OTHER has no name to send. */
	assert_string_equal(out, "GET, HEAD, POST, PUT, DELETE, PATCH, "
				 "OPTIONS, TRACE, CONNECT");

	assert_int_equal(router_format_allow(BIT(HTTP_DELETE), out, sizeof out),
			 6);
	assert_string_equal(out, "DELETE");

	assert_int_equal(router_format_allow(0, out, sizeof out), 0);
	assert_string_equal(out, "");

	/* "GET, HEAD" is 9 bytes: 10 fit with the NUL, 9 do not. */
	memset(out, 'x', sizeof out);
	assert_int_equal(router_format_allow(BIT(HTTP_GET) | BIT(HTTP_HEAD),
					     out, 10),
			 9);
	assert_string_equal(out, "GET, HEAD");
	memset(out, 'x', sizeof out);
	assert_int_equal(router_format_allow(BIT(HTTP_GET) | BIT(HTTP_HEAD),
					     out, 9),
			 0);
	assert_int_equal(out[9], 'x'); /* nothing past cap written */
	assert_int_equal(router_format_allow(BIT(HTTP_GET), out, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_found),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_unimplemented_method_is_501_before_404_and_405),
		cmocka_unit_test(test_found_reports_the_full_mask),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_first_route_wins),
		cmocka_unit_test(test_param_nonempty_no_slash),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_trailing_slash_significant),
		cmocka_unit_test(test_empty_path_and_length),
		cmocka_unit_test(test_format_allow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
