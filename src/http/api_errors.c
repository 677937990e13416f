/* The error tables of the contract families (include/ringside/api_errors.h). */
#include "ringside/api_errors.h"

#include <stddef.h>

#define ROW_(name, code, status, message) {code, message, status},
const struct api_error api_core_errors[API_CORE_COUNT] = {API_CORE_ERRORS(ROW_)};
const struct api_error api_agent_errors[API_AGENT_COUNT] = {API_AGENT_ERRORS(ROW_)};
const struct api_error api_identity_errors[API_IDENTITY_COUNT] = {API_IDENTITY_ERRORS(ROW_)};
const struct api_error api_oauth_errors[API_OAUTH_COUNT] = {API_OAUTH_ERRORS(ROW_)};
#undef ROW_

/* The first row of `status` in a table of n rows, or -1. */
static int first_of(const struct api_error *t, size_t n, unsigned status)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].status == status)
			return (int)i;
	return -1;
}

enum api_core_error api_core_error_of(unsigned status)
{
	int i = first_of(api_core_errors, API_CORE_COUNT, status);
	if (i >= 0)
		return (enum api_core_error)i;
	return status >= 400 && status < 500 ? API_CORE_BAD_REQUEST : API_CORE_INTERNAL_SERVER_ERROR;
}

enum api_agent_error api_agent_error_of(unsigned status)
{
	int i = first_of(api_agent_errors, API_AGENT_COUNT, status);
	if (i >= 0)
		return (enum api_agent_error)i;
	return status >= 500 && status != 501 ? API_AGENT_INTERNAL : API_AGENT_VALIDATION_ERROR;
}

const char *api_agent_error_code(unsigned status)
{
	return api_agent_errors[api_agent_error_of(status)].code;
}

const char *api_identity_error_code(unsigned status)
{
	int i = first_of(api_identity_errors, API_IDENTITY_COUNT, status);
	if (i >= 0)
		return api_identity_errors[i].code;
	return api_core_errors[api_core_error_of(status)].code;
}
