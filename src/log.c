#include "ringside/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ringside/rfc3339.h"

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_event(enum log_level l, const char *msg, const char *fields_fmt, ...)
{
	char line[1024], stamp[RFC3339_MS_LEN];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	rfc3339_format_ms(stamp, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	/* Leave one byte for the newline; vsnprintf truncates the rest. */
	const size_t room = sizeof line - 1;
	int r = snprintf(line, room, "ts=%.*s level=%s msg=\"%s\"", (int)RFC3339_MS_LEN, stamp,
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
