/* Per-agent token buckets (include/ringside/rate_limit.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>

#include "ringside/rate_limit.h"

static uint32_t take(struct rate_limit *r, const char *agent, uint64_t now)
{
	return rate_limit_take(r, "org", 3, agent, strlen(agent), now);
}

static void off_allows_everything(void **state)
{
	(void)state;
	struct rate_limit r;
	assert_int_equal(rate_limit_init(&r, 64, 0), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(take(&r, "a", 5), 0);
	rate_limit_fini(&r);
}

static void one_per_second_allows_one_then_says_how_long_to_wait(void **state)
{
	(void)state;
	struct rate_limit r;
	assert_int_equal(rate_limit_init(&r, 64, 1000), 0);
	uint64_t t = 1000000;
	assert_int_equal(take(&r, "a", t), 0);
	assert_int_equal(take(&r, "a", t), 1000);
	assert_int_equal(take(&r, "a", t + 400), 600);
	assert_int_equal(take(&r, "a", t + 1000), 0);
	assert_int_equal(take(&r, "a", t + 1000), 1000);
	/* Another agent, and the same id in another organization, have their
	 * own buckets. */
	assert_int_equal(take(&r, "b", t), 0);
	assert_int_equal(rate_limit_take(&r, "other", 5, "a", 1, t + 1000), 0);
	rate_limit_fini(&r);
}

static void a_long_silence_refills_only_one_bucket(void **state)
{
	(void)state;
	struct rate_limit r;
	assert_int_equal(rate_limit_init(&r, 64, 2000), 0); /* 2/s, bucket of 2 */
	uint64_t t = 5000;
	assert_int_equal(take(&r, "a", t), 0);
	assert_int_equal(take(&r, "a", t), 0);
	assert_int_not_equal(take(&r, "a", t), 0);
	t += 3600 * 1000;
	assert_int_equal(take(&r, "a", t), 0);
	assert_int_equal(take(&r, "a", t), 0);
	assert_int_equal(take(&r, "a", t), 500);
	rate_limit_fini(&r);
}

static void slow_rates_accrue_across_many_early_tries(void **state)
{
	(void)state;
	struct rate_limit r;
	assert_int_equal(rate_limit_init(&r, 64, 100), 0); /* one per 10 s */
	uint64_t t = 0;
	assert_int_equal(take(&r, "a", t), 0);
	/* Refused every 7 ms for 10 s: the refusals must not eat the refill. */
	for (t = 7; t < 10000; t += 7)
		assert_int_not_equal(take(&r, "a", t), 0);
	assert_int_equal(take(&r, "a", 10000), 0);
	rate_limit_fini(&r);
}

static void a_full_table_lets_reports_through(void **state)
{
	(void)state;
	struct rate_limit r;
	char id[32];
	assert_int_equal(rate_limit_init(&r, 16, 1000), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof id, "agent-%d", i);
		assert_int_equal(take(&r, id, 1), 0);
	}
	rate_limit_fini(&r);
}

struct race {
	struct rate_limit *r;
	_Atomic int allowed;
};

static void *race_thread(void *arg)
{
	struct race *rc = arg;
	for (int i = 0; i < 10000; i++)
		if (take(rc->r, "shared", 42) == 0)
			atomic_fetch_add(&rc->allowed, 1);
	return NULL;
}

/* Two workers posting for one agent at the same instant: the bucket hands
 * out exactly its size, never more (the CAS loop). */
static void concurrent_takes_never_exceed_the_bucket(void **state)
{
	(void)state;
	struct rate_limit r;
	assert_int_equal(rate_limit_init(&r, 64, 5000), 0);
	struct race rc = {&r, 0};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, race_thread, &rc);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&rc.allowed), 5);
	rate_limit_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(off_allows_everything),
		cmocka_unit_test(one_per_second_allows_one_then_says_how_long_to_wait),
		cmocka_unit_test(a_long_silence_refills_only_one_bucket),
		cmocka_unit_test(slow_rates_accrue_across_many_early_tries),
		cmocka_unit_test(a_full_table_lets_reports_through),
		cmocka_unit_test(concurrent_takes_never_exceed_the_bucket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
