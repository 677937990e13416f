/* The routes Ringside serves (one static table, built at compile time) and
 * the state their handlers share. */
#ifndef RINGSIDE_API_H
#define RINGSIDE_API_H

#include <stdbool.h>
#include <stdint.h>

#include "ringside/jwt.h"

struct config;
struct router;

extern const struct router api_router;

/* The handler groups' parts (private to src/api, each its own file's). */
struct agent_auth;  /* agent_auth.c: token keys, each worker's verified tokens */
struct fleet_api;   /* fleet.c: the fleet store, each worker's forget sweep */
struct ingest_api;  /* ingest.c: rate limits, report limits, each worker's validators */
struct db;          /* the database thread (db.h), which every group may ask */

/* Everything the handlers use beyond one request, made before the workers
 * start: one part per handler group, each owned by its group's file. */
struct api {
	const struct config *cfg;
	uint32_t worker_count;
	struct agent_auth *auth;
	struct fleet_api *fleet;
	struct ingest_api *ingest;
	struct identity_api *identity;
	struct analytics_api *analytics;
	struct analytics_answers *analytics_answers; /* per worker */
	struct db *db;     /* NULL: no --database-url; its routes answer 503 */
};

/* Allocates every table. keys: the agent-token keys (jwt_keys_load),
 * taken over (*keys is left empty; api_fini releases them), or NULL for
 * none (the agent routes answer 503). Returns 0, or -1 after logging why
 * (out of memory). */
int api_init(struct api *a, const struct config *cfg, uint32_t workers, struct jwt_keys *keys);
void api_fini(struct api *a);

/* The key client secrets are stored under (client_secret_key_load),
 * taken over (*k is wiped). Without it the credential and token routes
 * answer 503. */
struct client_secret_key;
void api_take_client_secret_key(struct api *a, struct client_secret_key *k);

/* After the migrations: starts the analytics flusher (with a database
 * and analytics on). 0 or -1 (logged). */
int api_start_analytics(struct api *a);

/* The ring's hooks for counting (src/api/analytics.c): an exchange
 * marked for counting was answered 2xx; and the worker's journal is
 * written before its queued answers go out. */
struct http_exchange;
void api_answered(struct http_exchange *x);
void api_worker_flush(struct api *a, uint32_t worker);

/* --fleet-state: loads the fleet saved in path before the workers start
 * (receive times kept; agents past --fleet-forget skipped), logging what
 * it did; a damaged file leaves the agents read before the damage. And
 * saves it, at shutdown (workers stopped) or while they run, from the
 * main thread only (it uses the store's extra worker record). Return 0
 * or a negative errno (logged). */
int api_load_fleet(struct api *a, const char *path);
int api_save_fleet(struct api *a, const char *path);

/* Bytes of worker i's parts (token cache, validators) in RAM; see
 * resident_bytes. */
uint64_t api_worker_resident(const struct api *a, uint32_t i);

/* Before a /metrics exposition: seed 000's database pool gauges, as the
 * database thread sees them now. */
struct metrics_registry;
void api_sample_db_pool(struct api *a, struct metrics_registry *r);

/* With --database-url, after the migrations: starts the thread that keeps
 * the revocations in step with the database and the other instances
 * (identity_sync.h), writing m's active_agents gauge (m may be NULL).
 * api_fini stops it. Returns 0 (also without a database), or -1 after
 * logging why. */
int api_start_identity_sync(struct api *a, struct metrics_registry *m);

/* struct ring_hooks members: once per loop pass of a worker, and when it
 * has stopped (the fleet store's quiescent states). */
void api_worker_pass(struct api *a, uint32_t worker);
void api_worker_stopped(struct api *a, uint32_t worker);

#endif
