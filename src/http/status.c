#include "ringside/http_status.h"

#include <stddef.h>

struct status_row {
	unsigned status;
	const char *reason, *code, *message;
};

static const struct status_row rows[] = {
#define ROW(status, reason, code, message) {status, reason, code, message},
	HTTP_STATUS_MAP(ROW)
#undef ROW
};

static const struct status_row *find(unsigned status)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (rows[i].status == status)
			return &rows[i];
	return NULL;
}

const char *http_status_reason(unsigned status)
{
	const struct status_row *r = find(status);
	return r ? r->reason : "Unknown";
}

const char *http_status_code(unsigned status)
{
	const struct status_row *r = find(status);
	return r && r->code ? r->code : "INTERNAL_SERVER_ERROR";
}

const char *http_status_message(unsigned status)
{
	const struct status_row *r = find(status);
	return r && r->message ? r->message : "An unexpected error occurred. Please try again later.";
}
