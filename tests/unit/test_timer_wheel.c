/* Unit tests for the hashed timer wheel (src/ring/timer_wheel.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ringside/timer_wheel.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

struct item {
	struct timer_node node;
	uint64_t deadline;  /* what the test scheduled */
	uint64_t fired_at;  /* now_ms of the advance that fired it */
	unsigned fires;
};

/* Shared by the callbacks: the time being advanced to and the wheel. */
struct env {
	struct timer_wheel *w;
	uint64_t now;
};

static struct timer_wheel wheel; /* 8 KiB: keep it off the stack */

static void record(struct timer_node *n, void *ctx)
{
	struct item *it = container_of(n, struct item, node);
	struct env *e = ctx;

	assert_false(timer_node_armed(n)); /* disarmed before the call */
	it->fired_at = e->now;
	it->fires++;
}

static size_t advance(struct env *e, uint64_t now,
		      void (*fire)(struct timer_node *, void *))
{
	e->now = now;
	return timer_wheel_advance(e->w, now, fire, e);
}

/* Every deadline over a few revolutions, advanced one millisecond at a time:
 * each fires once, never before its deadline, at most one tick after. */
static void test_fires_never_early_at_most_one_tick_late(void **state)
{
	enum { N = 3000 };
	static struct item items[N];
	const uint32_t tick_ms[] = { 1, 7, 10, 250 };

	(void)state;
	for (size_t k = 0; k < sizeof tick_ms / sizeof tick_ms[0]; k++) {
		const uint64_t start = 1000003; /* not a multiple of any tick */
		struct env e = { &wheel, start };

		memset(items, 0, sizeof items);
		timer_wheel_init(&wheel, start, tick_ms[k]);
		for (size_t i = 0; i < N; i++) {
			items[i].deadline = start + 1 + i * (tick_ms[k] / 3 + 1);
			timer_wheel_schedule(&wheel, &items[i].node,
					     items[i].deadline);
		}
		assert_int_equal(wheel.armed, N);
		uint64_t end = items[N - 1].deadline + tick_ms[k];
		for (uint64_t now = start; now <= end; now++)
			advance(&e, now, record);
		assert_int_equal(wheel.armed, 0);
		for (size_t i = 0; i < N; i++) {
			assert_int_equal(items[i].fires, 1);
			assert_true(items[i].fired_at >= items[i].deadline);
			assert_true(items[i].fired_at <=
				    items[i].deadline + tick_ms[k]);
		}
	}
}

static void test_past_deadline_fires_on_next_advance(void **state)
{
	struct item a = { 0 }, b = { 0 };
	struct env e = { &wheel, 0 };

	(void)state;
	timer_wheel_init(&wheel, 5000, 10);
	timer_wheel_schedule(&wheel, &a.node, 10);   /* long past */
	timer_wheel_schedule(&wheel, &b.node, 5000); /* exactly now */
	/* The same now_ms as init: no tick passes, both still fire. */
	assert_int_equal(advance(&e, 5000, record), 2);
	assert_int_equal(a.fires, 1);
	assert_int_equal(b.fires, 1);
	assert_int_equal(advance(&e, 5000, record), 0);
}

static void test_reschedule_moves_node(void **state)
{
	struct item a = { 0 };
	struct env e = { &wheel, 0 };

	(void)state;
	timer_wheel_init(&wheel, 0, 1);
	timer_wheel_schedule(&wheel, &a.node, 100);
	timer_wheel_schedule(&wheel, &a.node, 700); /* other slot, later */
	assert_int_equal(wheel.armed, 1);
	for (uint64_t t = 1; t < 700; t++)
		assert_int_equal(advance(&e, t, record), 0);
	assert_int_equal(advance(&e, 700, record), 1);
	assert_int_equal(a.fired_at, 700);

	/* Moving it earlier works too. */
	timer_wheel_schedule(&wheel, &a.node, 2000);
	timer_wheel_schedule(&wheel, &a.node, 800);
	assert_int_equal(advance(&e, 800, record), 1);
	assert_int_equal(a.fired_at, 800);
	assert_int_equal(advance(&e, 3000, record), 0);
	assert_int_equal(a.fires, 2);
	assert_int_equal(wheel.armed, 0);
}

static void test_cancel(void **state)
{
	struct item a = { 0 }, b = { 0 }, never = { 0 };
	struct env e = { &wheel, 0 };

	(void)state;
	timer_wheel_init(&wheel, 0, 10);
	timer_wheel_cancel(&wheel, &never.node); /* never armed: harmless */
	timer_wheel_schedule(&wheel, &a.node, 50);
	timer_wheel_schedule(&wheel, &b.node, 50);
	timer_wheel_cancel(&wheel, &a.node);
	timer_wheel_cancel(&wheel, &a.node); /* twice: harmless */
	assert_false(timer_node_armed(&a.node));
	assert_int_equal(wheel.armed, 1);
	assert_int_equal(advance(&e, 1000, record), 1);
	assert_int_equal(a.fires, 0);
	assert_int_equal(b.fires, 1);
	assert_int_equal(wheel.armed, 0);
}

/* A periodic timer: fire() re-arms the node 30 ms after now. */
static void rearm_30(struct timer_node *n, void *ctx)
{
	struct env *e = ctx;

	record(n, ctx);
	timer_wheel_schedule(e->w, n, e->now + 30);
}

/* fire() re-arms with a deadline already past: it must not fire again in
 * the same advance (that could loop forever), only in the next one. */
static void rearm_past(struct timer_node *n, void *ctx)
{
	struct env *e = ctx;

	record(n, ctx);
	timer_wheel_schedule(e->w, n, 0);
}

static void test_callback_reschedules_itself(void **state)
{
	struct item a = { 0 };
	struct env e = { &wheel, 0 };

	(void)state;
	timer_wheel_init(&wheel, 0, 10);
	timer_wheel_schedule(&wheel, &a.node, 30);
	for (uint64_t t = 1; t <= 300; t++)
		advance(&e, t, rearm_30);
	assert_int_equal(a.fires, 10); /* 30, 60, ..., 300 */
	assert_true(timer_node_armed(&a.node));

	/* A long gap fires it once, not once per period missed. */
	assert_int_equal(advance(&e, 100000, rearm_30), 1);
	assert_int_equal(a.fires, 11);

	timer_wheel_schedule(&wheel, &a.node, 0);
	for (unsigned i = 1; i <= 5; i++) {
		assert_int_equal(advance(&e, 100000, rearm_past), 1);
		assert_int_equal(a.fires, 11 + i);
	}
	/* Also when the advance crosses many slots. */
	assert_int_equal(advance(&e, 200000, rearm_past), 1);
	assert_int_equal(wheel.armed, 1);
}

/* Every item's fire() cancels all the others. */
static struct item killers[64];

static void cancel_others(struct timer_node *n, void *ctx)
{
	struct env *e = ctx;

	record(n, ctx);
	for (size_t i = 0; i < 64; i++)
		if (&killers[i].node != n)
			timer_wheel_cancel(e->w, &killers[i].node);
}

static void test_callback_cancels_others(void **state)
{
	struct env e = { &wheel, 0 };
	unsigned total;

	(void)state;
	/* Same tick, hence same slot. */
	memset(killers, 0, sizeof killers);
	timer_wheel_init(&wheel, 0, 10);
	for (size_t i = 0; i < 64; i++)
		timer_wheel_schedule(&wheel, &killers[i].node, 100);
	assert_int_equal(advance(&e, 100, cancel_others), 1);
	assert_int_equal(wheel.armed, 0);

	/* Different slots, all due in one advance. */
	memset(killers, 0, sizeof killers);
	for (size_t i = 0; i < 64; i++)
		timer_wheel_schedule(&wheel, &killers[i].node, 110 + i * 70);
	assert_int_equal(advance(&e, 100000, cancel_others), 1);
	total = 0;
	for (size_t i = 0; i < 64; i++)
		total += killers[i].fires;
	assert_int_equal(total, 1);
	assert_int_equal(wheel.armed, 0);

	/* One due now, the others later: they never fire. */
	memset(killers, 0, sizeof killers);
	for (size_t i = 0; i < 64; i++)
		timer_wheel_schedule(&wheel, &killers[i].node,
				     100010 + i * 1000);
	for (uint64_t t = 100001; t <= 200000; t += 7)
		advance(&e, t, cancel_others);
	assert_int_equal(killers[0].fires, 1);
	for (size_t i = 1; i < 64; i++)
		assert_int_equal(killers[i].fires, 0);
}

/* Deadlines in later revolutions share slots with nearer ones and must
 * be skipped, not fired, on each pass. */
static void test_deadlines_several_revolutions_out(void **state)
{
	struct item near = { 0 }, far[4];
	struct env e = { &wheel, 0 };

	(void)state;
	memset(far, 0, sizeof far);
	timer_wheel_init(&wheel, 0, 1);
	timer_wheel_schedule(&wheel, &near.node, 7);
	for (uint64_t r = 0; r < 4; r++) {
		far[r].deadline = (r + 1) * TIMER_WHEEL_SLOTS * 3 + 7;
		timer_wheel_schedule(&wheel, &far[r].node, far[r].deadline);
	}
	for (uint64_t t = 1; t <= 13 * TIMER_WHEEL_SLOTS; t++)
		advance(&e, t, record);
	assert_int_equal(near.fires, 1);
	assert_int_equal(near.fired_at, 7);
	for (size_t r = 0; r < 4; r++) {
		assert_int_equal(far[r].fires, 1);
		assert_int_equal(far[r].fired_at, far[r].deadline);
	}
}

/* The process was stopped for minutes, or the clock jumped by years:
 * advance visits at most one revolution of slots, so a gap of 2^50 ticks
 * returns at once (a tick-by-tick walk would never end). */
static void test_advance_over_large_gap(void **state)
{
	enum { N = 2000 };
	static struct item items[N];
	struct item later = { 0 };
	struct env e = { &wheel, 0 };
	const uint64_t start = 1700000000000ull; /* a wall clock in ms */

	(void)state;
	memset(items, 0, sizeof items);
	timer_wheel_init(&wheel, start, 1);
	for (size_t i = 0; i < N; i++)
		timer_wheel_schedule(&wheel, &items[i].node, start + 1 + i * 97);
	timer_wheel_schedule(&wheel, &later.node, start + 3600000);
	/* Ten minutes later: all but the one-hour timer are due. */
	assert_int_equal(advance(&e, start + 600000, record), N);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(items[i].fires, 1);
	assert_int_equal(later.fires, 0);
	assert_int_equal(advance(&e, start + 3599999, record), 0);
	assert_int_equal(advance(&e, start + 3600000, record), 1);

	timer_wheel_schedule(&wheel, &later.node, start + 3600100);
	assert_int_equal(advance(&e, start + (1ull << 50), record), 1);
	assert_int_equal(later.fires, 2);
	/* The clock going backwards fires nothing and breaks nothing. */
	timer_wheel_schedule(&wheel, &later.node, start + (1ull << 50) + 5);
	assert_int_equal(advance(&e, start, record), 0);
	assert_int_equal(advance(&e, start + (1ull << 50) + 5, record), 1);
}

/* ---- Random operations checked against a reference model ---- */

enum { MODEL_N = 4096 };

struct model {
	struct env e;
	struct item items[MODEL_N];
	bool armed[MODEL_N];
	uint64_t due_tick[MODEL_N]; /* first tick at or after the deadline */
	uint32_t tick_ms;
	uint64_t rng;
	unsigned count;
	bool draining; /* fire() only records */
};

static struct model M;

static uint64_t rnd(void)
{
	/* xorshift64: deterministic, so a failure reproduces. */
	M.rng ^= M.rng << 13;
	M.rng ^= M.rng >> 7;
	M.rng ^= M.rng << 17;
	return M.rng;
}

static void model_schedule(size_t i, uint64_t deadline)
{
	timer_wheel_schedule(M.e.w, &M.items[i].node, deadline);
	M.count += !M.armed[i];
	M.armed[i] = true;
	M.items[i].deadline = deadline;
	M.due_tick[i] = (deadline + M.tick_ms - 1) / M.tick_ms;
}

static void model_cancel(size_t i)
{
	timer_wheel_cancel(M.e.w, &M.items[i].node);
	M.count -= M.armed[i];
	M.armed[i] = false;
}

/* Checks the node is due, then sometimes re-arms it in the future or
 * cancels another node, as connection code does. */
static void model_fire(struct timer_node *n, void *ctx)
{
	struct item *it = container_of(n, struct item, node);
	size_t i = (size_t)(it - M.items);

	(void)ctx;
	assert_true(i < MODEL_N);
	assert_true(M.armed[i]);
	assert_true(M.e.now >= it->deadline);
	M.armed[i] = false;
	M.count--;
	it->fires++;
	if (M.draining)
		return;
	switch (rnd() % 8) {
	case 0:
		model_schedule(i, M.e.now + 1 + rnd() % 5000);
		break;
	case 1:
		model_cancel(rnd() % MODEL_N);
		break;
	default:
		break;
	}
}

static void test_random_against_model(void **state)
{
	const uint32_t tick_ms[] = { 1, 3, 10 };

	(void)state;
	for (size_t k = 0; k < sizeof tick_ms / sizeof tick_ms[0]; k++) {
		memset(&M, 0, sizeof M);
		M.e.w = &wheel;
		M.e.now = 123456789;
		M.tick_ms = tick_ms[k];
		M.rng = 0x9e3779b97f4a7c15ull + k;
		timer_wheel_init(&wheel, M.e.now, M.tick_ms);

		for (unsigned step = 0; step < 40000; step++) {
			uint64_t r = rnd() % 100;
			size_t i = rnd() % MODEL_N;

			if (r < 55) {
				/* Mostly near, some in the past, some several
				 * revolutions out. */
				uint64_t span = TIMER_WHEEL_SLOTS * M.tick_ms;
				uint64_t d = M.e.now - 200 +
					     rnd() % (r < 50 ? span : 6 * span);
				model_schedule(i, d);
			} else if (r < 70) {
				model_cancel(i);
			} else {
				uint64_t step_ms = r < 98 ? rnd() % (4 * M.tick_ms)
							  : rnd() % 5000000;
				M.e.now += step_ms;
				timer_wheel_advance(&wheel, M.e.now, model_fire,
						    &M.e);
				uint64_t now_tick = M.e.now / M.tick_ms;
				for (size_t j = 0; j < MODEL_N; j++)
					if (M.armed[j])
						assert_true(M.due_tick[j] > now_tick);
			}
			assert_int_equal(wheel.armed, M.count);
		}
		/* Drain: everything left fires, once. */
		unsigned left = M.count;

		M.draining = true;
		M.e.now += 100000000;
		assert_int_equal(timer_wheel_advance(&wheel, M.e.now,
						     model_fire, &M.e), left);
		assert_int_equal(wheel.armed, 0);
		assert_int_equal(M.count, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fires_never_early_at_most_one_tick_late),
		cmocka_unit_test(test_past_deadline_fires_on_next_advance),
		cmocka_unit_test(test_reschedule_moves_node),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_callback_reschedules_itself),
		cmocka_unit_test(test_callback_cancels_others),
		cmocka_unit_test(test_deadlines_several_revolutions_out),
		cmocka_unit_test(test_advance_over_large_gap),
		cmocka_unit_test(test_random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
