/* The fleet store (include/ringside/fleet_store.h): agents' latest
 * snapshots, published and read without locks. Threads race only in
 * concurrent_first_publishes_of_one_agent_take_one_slot; the rest plays
 * several workers from one thread, which is enough to pin down when a
 * replaced snapshot may be reused. tests/stress/ has the threaded run. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ringside/fleet_store.h"

#define KIB 1024u
/* A blob of BIG bytes takes a 16 KiB block: a chunk holds BIG_PER_CHUNK. */
#define BIG 16000
#define BIG_PER_CHUNK (FLEET_CHUNK / (16 * KIB))

/* A blob that says which agent and version it is, byte for byte. */
static void fill(unsigned char *b, size_t len, unsigned agent, unsigned version)
{
	uint32_t x = agent * 2654435761u ^ version * 40503u ^ (uint32_t)len;

	for (size_t i = 0; i < len; i++) {
		x = x * 1664525u + 1013904223u;
		b[i] = (unsigned char)(x >> 24);
	}
}

static bool holds(const struct fleet_snapshot *p, size_t len, unsigned agent, unsigned version)
{
	static unsigned char want[FLEET_BLOB_MAX];

	if (!p || p->len != len)
		return false;
	fill(want, len, agent, version);
	return !memcmp(p->data, want, len);
}

static int put(struct fleet_store *s, uint32_t w, const char *org, const char *agent,
	       size_t len, unsigned agent_no, unsigned version)
{
	static unsigned char b[FLEET_BLOB_MAX + 1];

	fill(b, len, agent_no, version);
	return fleet_publish(s, w, org, strlen(org), agent, strlen(agent), b, len,
			     1700000000000 + version);
}

static const struct fleet_snapshot *get(struct fleet_store *s, uint32_t w, const char *org,
					const char *agent)
{
	return fleet_lookup(s, w, org, strlen(org), agent, strlen(agent));
}

static void publish_then_lookup_returns_the_blob_and_the_ids(void **state)
{
	(void)state;
	struct fleet_store s;
	const struct fleet_snapshot *p;

	assert_int_equal(fleet_store_init(&s, 16, 1, 1024 * KIB), 0);
	assert_null(get(&s, 0, "org-1", "agent-1"));
	assert_int_equal(put(&s, 0, "org-1", "agent-1", 700, 1, 1), 0);
	p = get(&s, 0, "org-1", "agent-1");
	assert_true(holds(p, 700, 1, 1));
	assert_int_equal(p->received_ms, 1700000000001);
	assert_int_equal(p->org_len, 5);
	assert_string_equal(p->org, "org-1");
	assert_int_equal(p->agent_len, 7);
	assert_string_equal(p->agent, "agent-1");
	assert_true(((uintptr_t)p->data & 63) == 0);
	assert_ptr_equal(fleet_snapshot_at(&s, 0, p->slot), p);
	assert_int_equal(fleet_agent_count(&s), 1);
	assert_null(get(&s, 0, "org-1", "agent-2"));
	assert_null(get(&s, 0, "org-1", "agent-"));
	fleet_store_fini(&s);
}

static void a_replaced_snapshot_stays_readable_until_the_readers_quiescent_state(void **state)
{
	(void)state;
	struct fleet_store s;
	const struct fleet_snapshot *v1, *v2;

	assert_int_equal(fleet_store_init(&s, 16, 1, 1024 * KIB), 0);
	assert_int_equal(put(&s, 0, "o", "a", 300, 1, 1), 0);
	v1 = get(&s, 0, "o", "a");
	assert_int_equal(put(&s, 0, "o", "a", 5000, 1, 2), 0);
	v2 = get(&s, 0, "o", "a");
	assert_ptr_not_equal(v1, v2);
	assert_true(holds(v2, 5000, 1, 2));
	assert_int_equal(v2->received_ms, 1700000000002);
	assert_true(holds(v1, 300, 1, 1)); /* the old one, untouched */
	fleet_quiescent(&s, 0);
	assert_int_equal(put(&s, 0, "o", "a", 300, 1, 3), 0);
	assert_true(holds(get(&s, 0, "o", "a"), 300, 1, 3));
	assert_int_equal(fleet_agent_count(&s), 1);
	fleet_store_fini(&s);
}

static void the_same_agent_id_in_two_organizations_is_two_agents(void **state)
{
	(void)state;
	struct fleet_store s;

	assert_int_equal(fleet_store_init(&s, 16, 1, 1024 * KIB), 0);
	assert_int_equal(put(&s, 0, "org-a", "agent", 100, 1, 1), 0);
	assert_int_equal(put(&s, 0, "org-b", "agent", 200, 2, 1), 0);
	assert_true(holds(get(&s, 0, "org-a", "agent"), 100, 1, 1));
	assert_true(holds(get(&s, 0, "org-b", "agent"), 200, 2, 1));
	assert_null(get(&s, 0, "org-c", "agent"));
	/* The boundary between the ids is part of the key. */
	assert_int_equal(put(&s, 0, "ab", "c", 10, 3, 1), 0);
	assert_null(get(&s, 0, "a", "bc"));
	assert_int_equal(put(&s, 0, "a", "bc", 20, 4, 1), 0);
	assert_true(holds(get(&s, 0, "ab", "c"), 10, 3, 1));
	assert_true(holds(get(&s, 0, "a", "bc"), 20, 4, 1));
	assert_int_equal(fleet_agent_count(&s), 4);
	fleet_store_fini(&s);
}

static void ids_must_be_1_to_63_bytes_and_the_worker_in_range(void **state)
{
	(void)state;
	struct fleet_store s;
	char id63[64], id64[65];

	memset(id63, 'x', 63), id63[63] = '\0';
	memset(id64, 'y', 64), id64[64] = '\0';
	assert_int_equal(fleet_store_init(&s, 16, 2, 1024 * KIB), 0);
	assert_int_equal(put(&s, 0, "", "a", 10, 1, 1), -EINVAL);
	assert_int_equal(put(&s, 0, "o", "", 10, 1, 1), -EINVAL);
	assert_int_equal(put(&s, 0, id64, "a", 10, 1, 1), -EINVAL);
	assert_int_equal(put(&s, 0, "o", id64, 10, 1, 1), -EINVAL);
	assert_int_equal(put(&s, 2, "o", "a", 10, 1, 1), -EINVAL);
	assert_int_equal(put(&s, 0, id63, id63, 10, 1, 1), 0);
	assert_true(holds(get(&s, 1, id63, id63), 10, 1, 1));
	assert_string_equal(get(&s, 1, id63, id63)->agent, id63);
	assert_null(get(&s, 2, id63, id63));
	assert_null(get(&s, 0, id64, "a"));
	assert_null(fleet_snapshot_at(&s, 2, 0));
	assert_int_equal(fleet_agent_count(&s), 1);
	fleet_store_fini(&s);
}

static void the_agent_after_max_agents_is_refused_and_the_others_stay(void **state)
{
	(void)state;
	struct fleet_store s;
	char id[32];

	assert_int_equal(fleet_store_init(&s, 100, 1, 4096 * KIB), 0);
	for (unsigned i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_int_equal(put(&s, 0, "org", id, 400 + i, i, 1), 0);
	}
	assert_int_equal(put(&s, 0, "org", "agent-100", 400, 100, 1), -ENOSPC);
	assert_int_equal(put(&s, 0, "org-2", "agent-0", 400, 100, 1), -ENOSPC);
	assert_null(get(&s, 0, "org", "agent-100"));
	assert_int_equal(fleet_agent_count(&s), 100);
	/* Known agents still publish. */
	assert_int_equal(put(&s, 0, "org", "agent-7", 407, 7, 2), 0);
	for (unsigned i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_true(holds(get(&s, 0, "org", id), 400 + i, i, i == 7 ? 2 : 1));
	}
	fleet_store_fini(&s);
}

static void a_blob_over_the_largest_class_is_refused(void **state)
{
	(void)state;
	struct fleet_store s;

	assert_int_equal(fleet_store_init(&s, 16, 1, 1024 * KIB), 0);
	assert_int_equal(put(&s, 0, "o", "a", FLEET_BLOB_MAX + 1, 1, 1), -EMSGSIZE);
	assert_null(get(&s, 0, "o", "a"));
	assert_int_equal(fleet_agent_count(&s), 0);
	assert_int_equal(put(&s, 0, "o", "a", FLEET_BLOB_MAX, 1, 2), 0);
	assert_int_equal(put(&s, 0, "o", "a", FLEET_BLOB_MAX + 1, 1, 3), -EMSGSIZE);
	assert_true(holds(get(&s, 0, "o", "a"), FLEET_BLOB_MAX, 1, 2));
	assert_int_equal(put(&s, 0, "o", "b", 0, 2, 1), 0);
	assert_true(holds(get(&s, 0, "o", "b"), 0, 2, 1));
	fleet_store_fini(&s);
}

/* One chunk of 16 KiB blocks: BIG_PER_CHUNK snapshots, no more. */
static void when_memory_runs_out_publish_fails_and_the_previous_snapshot_stays(void **state)
{
	(void)state;
	struct fleet_store s;
	char id[32];
	unsigned n = 0;

	assert_int_equal(fleet_store_init(&s, 64, 1, FLEET_CHUNK + 1000), 0);
	for (;; n++) {
		snprintf(id, sizeof id, "agent-%u", n);
		int r = put(&s, 0, "org", id, BIG, n, 1);
		if (r) {
			assert_int_equal(r, -ENOSPC);
			break;
		}
		assert_true(n < 64);
	}
	assert_int_equal(n, BIG_PER_CHUNK);
	assert_int_equal(fleet_agent_count(&s), n); /* the refused agent took no slot */
	assert_int_equal(fleet_memory_carved(&s), FLEET_CHUNK);
	assert_int_equal(put(&s, 0, "org", "agent-3", BIG, 3, 2), -ENOSPC);
	assert_int_equal(put(&s, 0, "org", "agent-3", 100, 3, 2), -ENOSPC);
	fleet_quiescent(&s, 0);
	assert_int_equal(put(&s, 0, "org", "agent-3", BIG, 3, 2), -ENOSPC);
	for (unsigned i = 0; i < n; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_true(holds(get(&s, 0, "org", id), BIG, i, 1));
	}
	fleet_store_fini(&s);
}

static void replaced_blobs_come_back_so_memory_never_runs_out(void **state)
{
	(void)state;
	struct fleet_store s;
	unsigned i;

	/* Two chunks: one of 12 KiB blocks, one of 512-byte blocks. */
	assert_int_equal(fleet_store_init(&s, 16, 2, 2 * FLEET_CHUNK), 0);
	for (i = 0; i < 20000; i++) {
		size_t len = i % 3 ? 8000 : 200;
		assert_int_equal(put(&s, i % 2, "org", "agent", len, 1, i), 0);
		assert_true(holds(get(&s, (i + 1) % 2, "org", "agent"), len, 1, i));
		fleet_quiescent(&s, 0);
		fleet_quiescent(&s, 1);
	}
	assert_int_equal(fleet_memory_carved(&s), 2 * FLEET_CHUNK);
	fleet_store_fini(&s);
}

/* Worker 1 holds a snapshot and does not pass: neither it nor anything
 * replaced after it may be reused; publishes fail instead. */
static void a_held_snapshot_is_not_reused_until_its_worker_passes(void **state)
{
	(void)state;
	struct fleet_store s;
	const struct fleet_snapshot *held;
	unsigned v, ok = 0;

	assert_int_equal(fleet_store_init(&s, 16, 2, FLEET_CHUNK), 0);
	fleet_quiescent(&s, 1);
	assert_int_equal(put(&s, 0, "o", "a", BIG, 1, 0), 0);
	held = get(&s, 1, "o", "a");
	for (v = 1; v < 100; v++) {
		int r = put(&s, 0, "o", "a", BIG, 1, v);
		fleet_quiescent(&s, 0);
		if (r) {
			assert_int_equal(r, -ENOSPC);
			break;
		}
		ok++;
	}
	assert_int_equal(ok, BIG_PER_CHUNK - 1);
	assert_true(holds(held, BIG, 1, 0));
	assert_true(holds(get(&s, 0, "o", "a"), BIG, 1, BIG_PER_CHUNK - 1));
	fleet_quiescent(&s, 1);
	fleet_quiescent(&s, 0);
	assert_int_equal(put(&s, 0, "o", "a", BIG, 1, 100), 0);
	assert_true(holds(get(&s, 1, "o", "a"), BIG, 1, 100));
	fleet_store_fini(&s);
}

static void an_offline_worker_does_not_hold_back_reuse(void **state)
{
	(void)state;
	struct fleet_store s;
	const struct fleet_snapshot *held;
	unsigned v;

	assert_int_equal(fleet_store_init(&s, 16, 2, FLEET_CHUNK), 0);
	fleet_offline(&s, 1);
	for (v = 0; v < 1000; v++) {
		assert_int_equal(put(&s, 0, "o", "a", 8000, 1, v), 0);
		fleet_quiescent(&s, 0);
	}
	/* Back online, it holds one; reuse stops at it. */
	fleet_online(&s, 1);
	held = get(&s, 1, "o", "a");
	for (; v < 1100; v++) {
		if (put(&s, 0, "o", "a", 8000, 1, v))
			break;
		fleet_quiescent(&s, 0);
	}
	assert_true(v < 1100);
	assert_true(holds(held, 8000, 1, 999));
	/* Offline again (a quiescent state too): reuse resumes. */
	fleet_offline(&s, 1);
	fleet_quiescent(&s, 0);
	for (unsigned i = 0; i < 100; i++, v++) {
		assert_int_equal(put(&s, 0, "o", "a", 8000, 1, v), 0);
		fleet_quiescent(&s, 0);
	}
	/* fleet_quiescent on an offline worker brings it online. */
	fleet_quiescent(&s, 1);
	held = get(&s, 1, "o", "a");
	for (unsigned i = 0; i < 20; i++, v++) {
		put(&s, 0, "o", "a", 8000, 1, v);
		fleet_quiescent(&s, 0);
	}
	assert_true(holds(held, 8000, 1, v - 21));
	fleet_store_fini(&s);
}

static void a_small_blob_takes_a_larger_free_block_when_its_class_has_none(void **state)
{
	(void)state;
	struct fleet_store s;

	/* One chunk, carved into three 64 KiB blocks. */
	assert_int_equal(fleet_store_init(&s, 16, 1, FLEET_CHUNK), 0);
	assert_int_equal(put(&s, 0, "o", "big", 60000, 1, 1), 0);
	assert_int_equal(put(&s, 0, "o", "small", 100, 2, 1), 0);
	assert_int_equal(put(&s, 0, "o", "tiny", 10, 3, 1), 0);
	assert_int_equal(put(&s, 0, "o", "more", 10, 4, 1), -ENOSPC);
	assert_int_equal(put(&s, 0, "o", "big", 100, 1, 2), -ENOSPC);
	fleet_quiescent(&s, 0);
	assert_true(holds(get(&s, 0, "o", "big"), 60000, 1, 1));
	assert_true(holds(get(&s, 0, "o", "small"), 100, 2, 1));
	assert_true(holds(get(&s, 0, "o", "tiny"), 10, 3, 1));
	assert_int_equal(fleet_memory_carved(&s), FLEET_CHUNK);
	fleet_store_fini(&s);
}

/* A blob takes the smallest half-power class that holds it and the
 * 64-byte header: 1 KiB -> 1.5 KiB blocks, 8 KiB -> 12 KiB, 448 -> 512. */
static void blocks_come_in_half_power_classes(void **state)
{
	(void)state;
	static const struct {
		size_t len, block;
	} cases[] = {{1024, 1536}, {8192, 12288}, {448, 512}, {449, 768}, {FLEET_BLOB_MAX, 65536}};
	char id[32];

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct fleet_store s;
		unsigned n = 0;

		assert_int_equal(fleet_store_init(&s, 1024, 1, FLEET_CHUNK), 0);
		for (;; n++) {
			snprintf(id, sizeof id, "agent-%u", n);
			if (put(&s, 0, "o", id, cases[c].len, n, 1))
				break;
		}
		assert_int_equal(n, FLEET_CHUNK / cases[c].block);
		fleet_store_fini(&s);
	}
}

static void iteration_returns_each_agent_once_with_its_latest_snapshot(void **state)
{
	(void)state;
	struct fleet_store s;
	char id[32];
	bool seen[2][50] = {{false}};
	unsigned found = 0;

	assert_int_equal(fleet_store_init(&s, 200, 1, 8192 * KIB), 0);
	for (unsigned v = 1; v <= 3; v++)
		for (unsigned i = 0; i < 100; i++) {
			snprintf(id, sizeof id, "agent-%u", i % 50);
			assert_int_equal(put(&s, 0, i < 50 ? "org-0" : "org-1", id, 100 * v + i, i, v), 0);
		}
	assert_true(fleet_agent_slots(&s) >= 100);
	for (uint32_t i = 0; i < fleet_agent_slots(&s); i++) {
		const struct fleet_snapshot *p = fleet_snapshot_at(&s, 0, i);
		unsigned org, n;
		if (!p)
			continue;
		assert_int_equal(p->slot, i);
		assert_int_equal(sscanf(p->org, "org-%u", &org), 1);
		assert_int_equal(sscanf(p->agent, "agent-%u", &n), 1);
		assert_true(org < 2 && n < 50);
		assert_false(seen[org][n]);
		seen[org][n] = true;
		assert_true(holds(p, 300 + org * 50 + n, org * 50 + n, 3));
		found++;
	}
	assert_int_equal(found, 100);
	assert_null(fleet_snapshot_at(&s, 0, 200));
	fleet_store_fini(&s);
}

/* ---- threads: first publishes of the same new agents, at once ------- */

#define RACERS 4
#define RACE_AGENTS 2000

struct racer {
	struct fleet_store *s;
	pthread_barrier_t *go;
	uint32_t worker;
	unsigned failed;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	unsigned char blob[64];
	char id[32];

	memset(blob, (int)r->worker, sizeof blob);
	pthread_barrier_wait(r->go);
	for (unsigned i = 0; i < RACE_AGENTS; i++) {
		int n = snprintf(id, sizeof id, "agent-%u", i);
		if (fleet_publish(r->s, r->worker, "org", 3, id, (size_t)n, blob, sizeof blob, i))
			r->failed++;
		if (i % 16 == 0)
			fleet_quiescent(r->s, r->worker);
	}
	fleet_offline(r->s, r->worker);
	return NULL;
}

static void concurrent_first_publishes_of_one_agent_take_one_slot(void **state)
{
	(void)state;
	struct fleet_store s;
	pthread_barrier_t go;
	pthread_t t[RACERS];
	struct racer r[RACERS];
	unsigned found = 0;
	static bool seen[RACE_AGENTS];

	for (int round = 0; round < 20; round++) {
		/* Room for the agents, plus a slot per racer that may be between
		 * losing a race and handing its slot back. */
		assert_int_equal(fleet_store_init(&s, RACE_AGENTS + RACERS, RACERS, 16384 * KIB), 0);
		pthread_barrier_init(&go, NULL, RACERS);
		for (uint32_t i = 0; i < RACERS; i++) {
			r[i] = (struct racer){&s, &go, i, 0};
			assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
		}
		for (uint32_t i = 0; i < RACERS; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(r[i].failed, 0);
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(fleet_agent_count(&s), RACE_AGENTS);
		memset(seen, 0, sizeof seen);
		found = 0;
		for (uint32_t i = 0; i < fleet_agent_slots(&s); i++) {
			const struct fleet_snapshot *p = fleet_snapshot_at(&s, 0, i);
			unsigned n;
			if (!p)
				continue;
			assert_int_equal(sscanf(p->agent, "agent-%u", &n), 1);
			assert_true(n < RACE_AGENTS);
			assert_false(seen[n]);
			seen[n] = true;
			found++;
		}
		assert_int_equal(found, RACE_AGENTS);
		fleet_store_fini(&s);
	}
}

static void init_rejects_what_it_cannot_hold(void **state)
{
	(void)state;
	struct fleet_store s;

	assert_int_equal(fleet_store_init(&s, 0, 1, FLEET_CHUNK), -EINVAL);
	assert_int_equal(fleet_store_init(&s, FLEET_MAX_AGENTS + 1, 1, FLEET_CHUNK), -EINVAL);
	assert_int_equal(fleet_store_init(&s, 1, 0, FLEET_CHUNK), -EINVAL);
	assert_int_equal(fleet_store_init(&s, 1, FLEET_MAX_WORKERS + 1, FLEET_CHUNK), -EINVAL);
	assert_int_equal(fleet_store_init(&s, 1, 1, FLEET_CHUNK - 1), -EINVAL);
	fleet_store_fini(&s); /* harmless after a failed init */
	assert_int_equal(fleet_store_init(&s, 1, 1, FLEET_CHUNK), 0);
	fleet_store_fini(&s);
	fleet_store_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(publish_then_lookup_returns_the_blob_and_the_ids),
		cmocka_unit_test(a_replaced_snapshot_stays_readable_until_the_readers_quiescent_state),
		cmocka_unit_test(the_same_agent_id_in_two_organizations_is_two_agents),
		cmocka_unit_test(ids_must_be_1_to_63_bytes_and_the_worker_in_range),
		cmocka_unit_test(the_agent_after_max_agents_is_refused_and_the_others_stay),
		cmocka_unit_test(a_blob_over_the_largest_class_is_refused),
		cmocka_unit_test(when_memory_runs_out_publish_fails_and_the_previous_snapshot_stays),
		cmocka_unit_test(replaced_blobs_come_back_so_memory_never_runs_out),
		cmocka_unit_test(a_held_snapshot_is_not_reused_until_its_worker_passes),
		cmocka_unit_test(an_offline_worker_does_not_hold_back_reuse),
		cmocka_unit_test(a_small_blob_takes_a_larger_free_block_when_its_class_has_none),
		cmocka_unit_test(blocks_come_in_half_power_classes),
		cmocka_unit_test(iteration_returns_each_agent_once_with_its_latest_snapshot),
		cmocka_unit_test(concurrent_first_publishes_of_one_agent_take_one_slot),
		cmocka_unit_test(init_rejects_what_it_cannot_hold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
