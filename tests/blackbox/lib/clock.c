/*
 * Clocks, deadlines and the server's ISO 8601 timestamps: see clock.h.
 */
#include "clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t h_now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t h_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

void h_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int h_remaining_ms(int64_t deadline)
{
	int64_t r = deadline - h_now_ms();

	if (r < 0)
		return 0;
	if (r > 60000)
		return 60000;
	return (int)r;
}

int64_t h_parse_iso_ms(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (strlen(s) != sizeof(pat) - 1)
		return -1;
	for (size_t i = 0; i < sizeof(pat) - 1; i++) {
		if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pat[i])
			return -1;
	}
	struct tm tm = { 0 };

	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	tm.tm_hour = atoi(s + 11);
	tm.tm_min = atoi(s + 14);
	tm.tm_sec = atoi(s + 17);
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	return (int64_t)timegm(&tm) * 1000 + atoi(s + 20);
}
