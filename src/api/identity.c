/* The identity routes' shared state (api_int.h: struct identity_api). */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#include "ringside/config.h"
#include "ringside/log.h"

/* Clients tracked by the token rate limiter: beyond it, requests pass
 * rather than being refused (rate_limit.h). */
#define TOKEN_RATE_CLIENTS (1u << 16)

int identity_api_init(struct api *a)
{
	struct identity_api *id = calloc(1, sizeof *id);
	if (!id)
		goto nomem;
	a->identity = id;
	if (revocations_init(&id->revocations, a->cfg->revocation_capacity) < 0)
		goto nomem;
	/* --token-rate-limit N per minute: a bucket of N that refills at
	 * N/60 per second, so a client may take its minute's worth at once
	 * (as a fixed one-minute window would let it) but no more. */
	uint32_t per_min = a->cfg->token_rate_per_min;
	if (rate_limit_init(&id->token_rate, 2 * TOKEN_RATE_CLIENTS,
			    per_min ? (uint32_t)(((uint64_t)per_min * 1000 + 59) / 60) : 0) < 0)
		goto nomem;
	if (per_min)
		rate_limit_set_burst(&id->token_rate, (uint64_t)per_min * 1000);
	return 0;
nomem:
	log_error("out of memory for the identity service", "revocation_capacity=%u",
		  a->cfg->revocation_capacity);
	return -1;
}

void identity_api_fini(struct api *a)
{
	struct identity_api *id = a->identity;
	if (!id)
		return;
	rate_limit_fini(&id->token_rate);
	revocations_fini(id->revocations);
	client_secret_key_wipe(&id->client_key);
	free(id);
	a->identity = NULL;
}

void api_take_client_secret_key(struct api *a, struct client_secret_key *k)
{
	a->identity->client_key = *k;
	client_secret_key_wipe(k);
}

void identity_api_write_metrics(struct api *a, struct expo *e)
{
	(void)a;
	(void)e;
}
