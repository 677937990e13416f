/* An agent's side of the API (agent_api.h). */
#include "agent_api.h"
#include "check.h"
#include "files.h"
#include "http_client.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

void h_basic_header(const char *id, const char *secret, char *out, size_t cap)
{
	char plain[512];
	size_t n = 0;
	const char *parts[] = {id, secret};
	for (int k = 0; k < 2; k++) {
		for (const char *s = parts[k]; *s; s++) {
			unsigned char c = (unsigned char)*s;
			if (n + 4 >= sizeof plain)
				H_FAIL("h_basic_header: id and secret too long");
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '-' || c == '.' || c == '_' || c == '*')
				plain[n++] = (char)c;
			else if (c == ' ')
				plain[n++] = '+';
			else
				n += (size_t)snprintf(plain + n, sizeof plain - n, "%%%02X", c);
		}
		if (k == 0)
			plain[n++] = ':';
	}
	unsigned char b64[700];
	EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)n);
	int w = snprintf(out, cap, "Authorization: Basic %s\r\n", b64);
	if (w < 0 || (size_t)w >= cap)
		H_FAIL("h_basic_header: %d bytes do not fit in %zu", w, cap);
}

void h_bearer_call(uint16_t port, const char *method, const char *path, const char *bearer,
		   const char *json, struct http_response *r)
{
	char *req = h_strf("%s %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
			   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			   method, path, bearer, json ? strlen(json) : 0, json ? json : "");
	h_exchange(port, req, false, r);
	free(req);
}

int h_token_request(uint16_t port, const char *id, const char *secret, const char *scope,
		    char *token, size_t cap)
{
	char auth[800], body[256];
	h_basic_header(id, secret, auth, sizeof auth);
	snprintf(body, sizeof body, "grant_type=client_credentials%s%s", scope ? "&scope=" : "",
		 scope ? scope : "");
	char *req = h_strf("POST /api/v1/token HTTP/1.1\r\nHost: t\r\n%sContent-Type: "
			   "application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
			   auth, strlen(body), body);
	struct http_response *r = resp_new();
	h_exchange(port, req, false, r);
	int status = r->status;
	if (status == 200 && !json_get_string(r->body, "access_token", token, cap))
		H_FAIL("a 200 without an access_token: %s", r->body);
	free(r);
	free(req);
	return status;
}

int h_ingest(uint16_t port, const char *token, struct http_response *out)
{
	size_t len;
	char *report = h_read_sample("ingest-minimal.json", &len);
	char *req = h_strf("POST /api/metrics/ingest HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
			   "%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			   token, len, report);
	struct http_response *r = out ? out : resp_new();
	h_exchange(port, req, false, r);
	int status = r->status;
	if (!out)
		free(r);
	free(req);
	free(report);
	return status;
}
