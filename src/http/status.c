#include "ringside/http_status.h"

const char *http_status_reason(unsigned status)
{
	switch (status) {
#define CASE_(code, reason) \
	case code:          \
		return reason;
		HTTP_STATUS_MAP(CASE_)
#undef CASE_
	default:
		return "Unknown";
	}
}
