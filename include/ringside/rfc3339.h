/*
 * The one way Ringside writes an instant as text: RFC 3339 (section 5.6),
 * UTC, milliseconds, "Z". Used by the JSON writer (jsonw_time_ms), the
 * log lines and the access log.
 */
#ifndef RINGSIDE_RFC3339_H
#define RINGSIDE_RFC3339_H

#include <stdint.h>

/* "2026-11-22T10:00:00.123Z" */
#define RFC3339_MS_LEN 24u

/*
 * Writes unix_ms (milliseconds since 1970-01-01T00:00:00Z, negative
 * before) as "YYYY-MM-DDTHH:MM:SS.mmmZ": exactly RFC3339_MS_LEN bytes at
 * out, no NUL. Instants are floored to the millisecond (-1 is
 * 1969-12-31T23:59:59.999Z); those outside years 0000 to 9999, which the
 * format cannot show, are clamped to its first or last millisecond.
 * Integer arithmetic only: no gmtime_r (glibc's takes a process-wide
 * lock), no locale; safe from any thread.
 */
void rfc3339_format_ms(char out[RFC3339_MS_LEN], int64_t unix_ms);

#endif
