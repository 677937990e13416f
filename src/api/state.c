/* The handlers' state (include/ringside/api.h): each group's part made
 * once before the workers start, so no request allocates, and the hooks
 * the workers call, passed on to the groups that need them. */
#include "api_int.h"

#include <stdatomic.h>
#include <string.h>

#include "ringside/db.h"
#include "ringside/metrics_expo.h"

int api_init(struct api *a, const struct config *cfg, uint32_t workers, struct jwt_keys *keys)
{
	memset(a, 0, sizeof *a);
	a->cfg = cfg;
	a->worker_count = workers;
	if (agent_auth_init(a, keys) < 0 || fleet_api_init(a) < 0 || ingest_api_init(a) < 0 ||
	    identity_api_init(a) < 0 || analytics_api_init(a) < 0 ||
	    analytics_routes_init(a) < 0) {
		api_fini(a);
		return -1;
	}
	return 0;
}

void api_fini(struct api *a)
{
	analytics_routes_fini(a);
	analytics_api_fini(a);
	identity_api_fini(a);
	ingest_api_fini(a);
	fleet_api_fini(a);
	agent_auth_fini(a);
}

void api_worker_pass(struct api *a, uint32_t worker)
{
	/* Before this pass's answers go to the kernel: the counts they
	 * acknowledge are written (analytics.c). */
	api_worker_flush(a, worker);
	fleet_api_pass(a, worker);
	if (a->db)
		db_kick(a->db, worker); /* what this pass's handlers asked of it */
}

void api_sample_db_pool(struct api *a, struct metrics_registry *r)
{
	struct db_pool_stats st = {0, 0, 0};
	if (a && a->db)
		db_pool_stats(a->db, &st);
	atomic_store_explicit(&r->db_pool_total, st.total, memory_order_relaxed);
	atomic_store_explicit(&r->db_pool_idle, st.idle, memory_order_relaxed);
	atomic_store_explicit(&r->db_pool_waiting, st.waiting, memory_order_relaxed);
}

void api_worker_stopped(struct api *a, uint32_t worker)
{
	api_worker_flush(a, worker);
	fleet_api_stopped(a, worker);
}

uint64_t api_worker_resident(const struct api *a, uint32_t i)
{
	return agent_auth_resident(a, i) + ingest_api_resident(a, i);
}

void api_write_metrics(struct api *a, struct expo *e)
{
	if (!a)
		return;
	fleet_api_write_metrics(a, e);
	ingest_api_write_metrics(a, e);
	identity_api_write_metrics(a, e);
	analytics_api_write_metrics(a, e);
}

void api_expo_single(struct expo *e, const char *name, enum expo_type type, const char *help,
		     uint64_t value)
{
	expo_family(e, name, type, help);
	expo_sample_u64(e, name, NULL, NULL, 0, NULL, value);
}
