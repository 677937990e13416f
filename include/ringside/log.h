/*
 * One logfmt line per event on stderr, written with a single write(2) so
 * lines from different workers never interleave:
 *   ts=2026-11-22T15:00:00.123Z level=info msg="listening" addr=127.0.0.1:3000
 * Fields are a printf format of `key=value` pairs; values that may hold
 * spaces must be quoted by the caller (%s inside "...").
 */
#ifndef RINGSIDE_LOG_H
#define RINGSIDE_LOG_H

/* --log-level: a line is written when its level is at most the threshold. */
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

static inline int log_enabled(enum log_level l)
{
	return l <= log_threshold;
}

void log_event(enum log_level l, const char *msg, const char *fields_fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(msg, ...) log_event(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...)  do { if (log_enabled(LOG_WARN)) log_event(LOG_WARN, msg, __VA_ARGS__); } while (0)
#define log_info(msg, ...)  do { if (log_enabled(LOG_INFO)) log_event(LOG_INFO, msg, __VA_ARGS__); } while (0)
#define log_debug(msg, ...) do { if (log_enabled(LOG_DEBUG)) log_event(LOG_DEBUG, msg, __VA_ARGS__); } while (0)

#endif
