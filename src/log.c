#include "ringside/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_event(enum log_level l, const char *msg, const char *fields_fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* Leave one byte for the newline; vsnprintf truncates the rest. */
	const size_t room = sizeof line - 1;
	int r = snprintf(line, room,
			 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
			 level_names[l], msg);
	size_t n = r < 0 ? 0 : (size_t)r < room ? (size_t)r : room - 1;
	if (fields_fmt && n + 1 < room) {
		va_list ap;
		va_start(ap, fields_fmt);
		r = vsnprintf(line + n + 1, room - n - 1, fields_fmt, ap);
		va_end(ap);
		if (r > 0) {
			line[n] = ' ';
			n += 1 + ((size_t)r < room - n - 1 ? (size_t)r : room - n - 2);
		}
	}
	line[n++] = '\n';
	/* One write per line: atomic on a pipe up to PIPE_BUF, so workers'
	 * lines never interleave. Losing a log line beats blocking a worker. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
