/*
 * Reading exposition bodies line by line: see expo.h.
 */
#include "expo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The line after line, or NULL after the last one. */
static const char *next_line(const char *line)
{
	const char *nl = strchr(line, '\n');

	return nl ? nl + 1 : NULL;
}

const char *expo_find(const char *body, const char *series, double *value)
{
	size_t sl = strlen(series);

	for (const char *line = body; line && *line; line = next_line(line)) {
		if (strncmp(line, series, sl) != 0 || line[sl] != ' ')
			continue;
		if (value) {
			char *e;

			*value = strtod(line + sl + 1, &e);
			if (e == line + sl + 1)
				*value = NAN;
		}
		return line;
	}
	return NULL;
}

size_t expo_lines(const char *body, const char *needle, char *out, size_t cap)
{
	size_t o = 0, count = 0;

	if (cap)
		out[0] = '\0';
	for (const char *line = body; line && *line; line = next_line(line)) {
		size_t ll = strcspn(line, "\n");

		if (!memmem(line, ll, needle, strlen(needle)))
			continue;
		count++;
		if (cap && o + ll + 5 < cap) {
			memcpy(out + o, "\n  ", 3);
			memcpy(out + o + 3, line, ll);
			o += ll + 3;
			out[o] = '\0';
		} else if (cap && o + 8 < cap && !strstr(out, "\n  ...")) {
			memcpy(out + o, "\n  ...", 7);
			o += 6;
		}
	}
	if (cap && count == 0)
		snprintf(out, cap, " (no line contains \"%s\")", needle);
	return count;
}

int expo_count_prefix(const char *body, const char *prefix)
{
	size_t pl = strlen(prefix);
	int n = 0;

	for (const char *line = body; line && *line; line = next_line(line))
		if (strncmp(line, prefix, pl) == 0)
			n++;
	return n;
}
