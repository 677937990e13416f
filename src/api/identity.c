/* The identity routes' shared state (api_int.h: struct identity_api). */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

#include "ringside/config.h"
#include "ringside/identity_sync.h"
#include "ringside/log.h"
#include "ringside/metrics_expo.h"

/* Clients tracked by the token rate limiter: beyond it, requests pass
 * rather than being refused (rate_limit.h). */
#define TOKEN_RATE_CLIENTS (1u << 16)
/* How long the start waits for the revocation sync's first read. */
#define SYNC_FIRST_WAIT_MS 3000u

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

int api_start_identity_sync(struct api *a, struct metrics_registry *m)
{
	struct identity_api *id = a->identity;
	if (!a->cfg->database_url[0] || id->sync)
		return 0;
	const struct identity_sync_config c = {
		.url = a->cfg->database_url,
		.resync_ms = a->cfg->revocation_resync_ms,
		.revocations = id->revocations,
		.active_agents = m ? &m->active_agents : NULL,
	};
	int r = identity_sync_start(&id->sync, &c);
	if (r < 0) {
		log_error("cannot start the revocation sync thread", "err=%d", -r);
		return -1;
	}
	/* Serve only once the stored revocations are held, unless the
	 * database is down (the thread catches up when it is back). */
	if (!identity_sync_wait_first(id->sync, SYNC_FIRST_WAIT_MS))
		log_warn("serving before the revocations were read", "waited_ms=%u hint=\"tokens "
			 "revoked before this start may pass until the database answers\"",
			 SYNC_FIRST_WAIT_MS);
	return 0;
}

void identity_api_fini(struct api *a)
{
	struct identity_api *id = a->identity;
	if (!id)
		return;
	/* The thread writes into the revocations: it goes first. */
	identity_sync_stop(id->sync);
	id->sync = NULL;
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
	struct identity_api *id = a->identity;
	api_expo_single(e, "ringside_revocations_held", EXPO_GAUGE,
	       "Revocation entries held in memory (revoked tokens, agent and client cut-offs).",
	       revocations_count(id->revocations));
	/* The sync's families only when there is one (--database-url): an
	 * alert on sync_up == 0 then means a database out of reach. */
	if (!id->sync)
		return;
	struct identity_sync_stats st;
	identity_sync_read_stats(id->sync, &st);
	api_expo_single(e, "ringside_revocation_sync_up", EXPO_GAUGE,
	       "1 while the revocation sync thread listens to the database and has resynced.",
	       st.up);
	api_expo_single(e, "ringside_revocation_notices_total", EXPO_COUNTER,
	       "Revocation notifications from the database applied.", st.notices);
	api_expo_single(e, "ringside_revocation_resyncs_total", EXPO_COUNTER,
	       "Full re-reads of the revocations from the database.", st.resyncs);
	api_expo_single(e, "ringside_revoked_tokens_purged_total", EXPO_COUNTER,
	       "Expired revoked_tokens rows deleted by this instance.", st.purged);
	api_expo_single(e, "ringside_revocations_refused_total", EXPO_COUNTER,
	       "Revocations the sync thread could not hold: the table was full "
	       "(--revocation-capacity).",
	       st.refused);
}
