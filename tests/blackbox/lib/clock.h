/*
 * Time for the black-box tests: the monotonic clock every wait is bounded
 * by, the wall clock to compare with timestamps the server wrote, and the
 * ISO 8601 form the server writes them in.
 */
#ifndef RINGSIDE_TESTS_BB_CLOCK_H
#define RINGSIDE_TESTS_BB_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. */
int64_t h_now_ms(void);
void h_sleep_ms(int ms);

/* Milliseconds from now to deadline (an h_now_ms() value), clamped to
 * 0 .. 60 000: a poll(2) timeout. */
int h_remaining_ms(int64_t deadline);

/* CLOCK_REALTIME in Unix milliseconds, to compare with a timestamp the
 * server wrote. */
int64_t h_wall_ms(void);

/*
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" (exactly that form, UTC) to Unix ms. Returns
 * -1 if s is not in that form or a field is out of range.
 */
int64_t h_parse_iso_ms(const char *s);

#endif
