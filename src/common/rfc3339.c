/* RFC 3339 times (include/ringside/rfc3339.h). */
#include "ringside/rfc3339.h"

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
#define MIN_MS (-62167219200000LL)
#define MAX_MS (253402300799999LL)

/* Floor division, for instants before 1970. */
static int64_t floor_div(int64_t a, int64_t b, int64_t *rem)
{
	int64_t q = a / b, r = a % b;
	if (r < 0) {
		r += b;
		q--;
	}
	*rem = r;
	return q;
}

static char *two(char *p, unsigned v)
{
	*p++ = (char)('0' + v / 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

void rfc3339_format_ms(char out[RFC3339_MS_LEN], int64_t unix_ms)
{
	if (unix_ms < MIN_MS)
		unix_ms = MIN_MS;
	else if (unix_ms > MAX_MS)
		unix_ms = MAX_MS;
	int64_t ms, sec_of_day;
	int64_t sec = floor_div(unix_ms, 1000, &ms);
	int64_t days = floor_div(sec, 86400, &sec_of_day);

	/* Howard Hinnant's civil_from_days: the proleptic Gregorian date of
	 * a day count, through 400-year eras that start on March 1st (so the
	 * leap day is the last of its year). */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);                        /* [0, 146096] */
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);              /* [0, 365] */
	unsigned mp = (5 * doy + 2) / 153;                                   /* [0, 11] */
	unsigned day = doy - (153 * mp + 2) / 5 + 1;
	unsigned month = mp < 10 ? mp + 3 : mp - 9;
	unsigned year = (unsigned)((int64_t)yoe + era * 400 + (month <= 2));
	unsigned s = (unsigned)sec_of_day;

	char *p = out;
	p = two(p, year / 100);
	p = two(p, year % 100);
	*p++ = '-';
	p = two(p, month);
	*p++ = '-';
	p = two(p, day);
	*p++ = 'T';
	p = two(p, s / 3600);
	*p++ = ':';
	p = two(p, s / 60 % 60);
	*p++ = ':';
	p = two(p, s % 60);
	*p++ = '.';
	*p++ = (char)('0' + ms / 100);
	p = two(p, (unsigned)(ms % 100));
	*p = 'Z';
}
