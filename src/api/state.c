/* The handlers' shared state (include/ringside/api.h): made once before
 * the workers start, so no request allocates. */
#include "api_int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ringside/config.h"
#include "ringside/fleet_persist.h"
#include "ringside/fleet_store.h"
#include "ringside/log.h"
#include "ringside/metrics_expo.h"
#include "ringside/rate_limit.h"
#include "ringside/resident.h"

/* Verified tokens cached per worker: one slot per agent the fleet may
 * hold (a power of two, at least 4096), 256 bytes each, touched as
 * tokens arrive. Every worker sees every agent sooner or later, and a
 * miss costs a full HS256 verification (35-48 us, perf/RESULTS.md): with
 * 4096 slots, 20 000 agents missed four times in five. */
static uint32_t token_cache_entries(uint32_t agents)
{
	uint32_t n = 4096;
	while (n < agents && n < (1u << 22))
		n <<= 1;
	return n;
}

static int worker_init(struct api_worker *aw, uint32_t slots, uint32_t agents)
{
	if (token_cache_init(&aw->tokens, token_cache_entries(agents)) < 0)
		return -1;
	aw->slot_count = slots;
	aw->slots = calloc(slots, sizeof *aw->slots);
	aw->free_slots = calloc(slots, sizeof *aw->free_slots);
	/* Reports are 880 KB each, but a report's pools and arena are
	 * touched only as far as its documents reach. */
	void *m = mmap(NULL, (size_t)slots * sizeof *aw->reports, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	aw->reports = m == MAP_FAILED ? NULL : m;
	if (!aw->slots || !aw->free_slots || !aw->reports)
		return -1;
	for (uint32_t i = 0; i < slots; i++) {
		aw->slots[i].report = &aw->reports[i];
		aw->free_slots[i] = slots - 1 - i;
	}
	aw->free_top = slots;
	return 0;
}

static void worker_fini(struct api_worker *aw)
{
	token_cache_fini(&aw->tokens);
	free(aw->slots);
	free(aw->free_slots);
	if (aw->reports)
		munmap(aw->reports, (size_t)aw->slot_count * sizeof *aw->reports);
}

/* The rate limiter tracks twice the agents the store keeps (a power of
 * two), so it fills only past that. */
static uint32_t rate_entries(uint32_t agents)
{
	uint32_t n = 1024;
	while (n < 2 * (uint64_t)agents && n < (1u << 26))
		n <<= 1;
	return n;
}

int api_init(struct api *a, const struct config *cfg, uint32_t workers, struct jwt_keys *keys)
{
	memset(a, 0, sizeof *a);
	a->cfg = cfg;
	a->worker_count = workers;
	a->limits = cfg->ingest_limits;
	if (keys) {
		a->keys = *keys; /* ours now */
		memset(keys, 0, sizeof *keys);
		a->keys_loaded = true;
	} else {
		log_warn("no agent token key: the agent routes answer 503",
			 "hint=\"%s\"", "start with --jwt-secret-file or --jwt-public-key-file");
	}
	/* One worker record more than there are workers: the main thread's,
	 * to save the fleet while they run (api_save_fleet). */
	int r = fleet_store_init(&a->fleet, cfg->fleet_max_agents, workers + 1,
				 (size_t)cfg->fleet_memory_bytes);
	if (r < 0) {
		log_error("cannot make the fleet store", "err=%d max_agents=%u memory=%llu", -r,
			  cfg->fleet_max_agents, (unsigned long long)cfg->fleet_memory_bytes);
		api_fini(a);
		return -1;
	}
	fleet_offline(&a->fleet, workers); /* until a save brings it online */
	if (rate_limit_init(&a->rate, rate_entries(cfg->fleet_max_agents),
			    cfg->ingest_rate_milli) < 0)
		goto nomem;
	if (posix_memalign((void **)&a->workers, 64, workers * sizeof *a->workers))
		goto nomem;
	memset(a->workers, 0, workers * sizeof *a->workers);
	for (uint32_t i = 0; i < workers; i++) {
		if (worker_init(&a->workers[i], cfg->ingest_slots, cfg->fleet_max_agents) < 0)
			goto nomem;
		/* The workers sweep from spread-out slots, so that together
		 * they cover the fleet sooner than one would. */
		a->workers[i].forget_cursor = (uint32_t)((uint64_t)cfg->fleet_max_agents * i / workers);
	}
	return 0;
nomem:
	log_error("out of memory for the agent routes", "workers=%u ingest_slots=%u", workers,
		  cfg->ingest_slots);
	api_fini(a);
	return -1;
}

void api_fini(struct api *a)
{
	if (a->workers)
		for (uint32_t i = 0; i < a->worker_count; i++)
			worker_fini(&a->workers[i]);
	free(a->workers);
	a->workers = NULL;
	rate_limit_fini(&a->rate);
	fleet_store_fini(&a->fleet);
	jwt_keys_fini(&a->keys);
}

/* Slots one worker's sweep looks at a second: 100 000 agents are swept
 * every 25 s by one worker (a slot read each, a few atomics per agent
 * forgotten; tens of microseconds a call). */
#define FORGET_SWEEP_SLOTS 4096u

void api_worker_pass(struct api *a, uint32_t worker)
{
	fleet_quiescent(&a->fleet, worker);
	struct api_worker *aw = &a->workers[worker];
	if (!a->cfg->fleet_forget_ms)
		return;
	int64_t now = api_now_ms();
	if (now < aw->next_forget_ms)
		return;
	aw->next_forget_ms = now + 1000;
	fleet_forget(&a->fleet, worker, now - a->cfg->fleet_forget_ms, FORGET_SWEEP_SLOTS,
		     &aw->forget_cursor);
}

int api_load_fleet(struct api *a, const char *path)
{
	char err[256];
	uint64_t agents = 0;
	int64_t forget_before = a->cfg->fleet_forget_ms ? api_now_ms() - a->cfg->fleet_forget_ms
							 : INT64_MIN;
	/* The extra record: a worker's left offline by the load would serve
	 * its first requests before its first quiescent state brings it
	 * online. */
	int r = fleet_load(&a->fleet, a->worker_count, path, forget_before, &agents, err,
			   sizeof err);
	if (r < 0)
		log_error("the fleet file is damaged; serving with the agents read before the damage",
			  "path=\"%s\" agents=%llu err=\"%s\"", path, (unsigned long long)agents,
			  err);
	else
		log_info("fleet loaded", "path=\"%s\" agents=%llu", path, (unsigned long long)agents);
	return r;
}

int api_save_fleet(struct api *a, const char *path)
{
	char err[256];
	uint64_t agents = 0;
	int64_t t0 = api_now_ms();
	int r = fleet_save(&a->fleet, a->worker_count, path, &agents, err, sizeof err);
	if (r < 0)
		log_error("cannot save the fleet", "path=\"%s\" err=\"%s\"", path, err);
	else
		log_info("fleet saved", "path=\"%s\" agents=%llu ms=%lld", path,
			 (unsigned long long)agents, (long long)(api_now_ms() - t0));
	return r;
}

void api_worker_stopped(struct api *a, uint32_t worker)
{
	fleet_offline(&a->fleet, worker);
}

uint64_t api_worker_resident(const struct api *a, uint32_t i)
{
	const struct api_worker *aw = &a->workers[i];
	return resident_bytes(aw->tokens.sets, (size_t)aw->tokens.entries / TOKEN_CACHE_WAYS *
						       sizeof *aw->tokens.sets) +
	       resident_bytes(aw->slots, (size_t)aw->slot_count * sizeof *aw->slots) +
	       resident_bytes(aw->free_slots, (size_t)aw->slot_count * sizeof *aw->free_slots) +
	       resident_bytes(aw->reports, (size_t)aw->slot_count * sizeof *aw->reports);
}

void api_write_metrics(struct api *a, struct expo *e)
{
	if (!a)
		return;
	uint64_t in_use = 0;
	for (uint32_t i = 0; i < a->worker_count; i++)
		in_use += atomic_load_explicit(&a->workers[i].slots_in_use, memory_order_relaxed);
	static const struct {
		const char *name, *help;
	} g[] = {
		{"ringside_fleet_agents", "Agents whose latest report the fleet store holds."},
		{"ringside_fleet_snapshot_bytes",
		 "Bytes of those reports in their stored form (about 11 KB for the full sample)."},
		{"ringside_ingest_validators", "Reports that can be validated at once (--ingest-slots "
					       "times the workers)."},
		{"ringside_ingest_validators_in_use", "Reports being validated now."},
	};
	const double v[] = {
		(double)fleet_agent_count(&a->fleet),
		(double)fleet_snapshot_bytes(&a->fleet),
		(double)a->cfg->ingest_slots * a->worker_count,
		(double)in_use,
	};
	for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
		expo_family(e, g[i].name, EXPO_GAUGE, g[i].help);
		expo_sample(e, g[i].name, NULL, NULL, 0, NULL, v[i]);
	}
	expo_family(e, "ringside_fleet_agents_forgotten_total", EXPO_COUNTER,
		    "Agents forgotten after --fleet-forget of silence: their slots and memory freed.");
	expo_sample(e, "ringside_fleet_agents_forgotten_total", NULL, NULL, 0, NULL,
		    (double)fleet_forgotten(&a->fleet));
}
