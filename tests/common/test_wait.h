/*
 * Bounded waiting for tests that watch another thread or process: the
 * monotonic clock, a sleep, and WITHIN(ms, cond), which polls cond every
 * 10 ms for at most ms milliseconds.
 */
#ifndef RINGSIDE_TESTS_TEST_WAIT_H
#define RINGSIDE_TESTS_TEST_WAIT_H

#include <stdint.h>
#include <time.h>

static inline int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* Polls cond every 10 ms for up to ms; the time it took, or -1. */
#define WITHIN(ms, cond)                                                                       \
	({                                                                                     \
		int64_t t0_ = mono_ms(), took_ = -1;                                           \
		for (;;) {                                                                     \
			if (cond) {                                                            \
				took_ = mono_ms() - t0_;                                       \
				break;                                                         \
			}                                                                      \
			if (mono_ms() - t0_ > (ms))                                            \
				break;                                                         \
			sleep_ms(10);                                                          \
		}                                                                              \
		took_;                                                                         \
	})

#endif
