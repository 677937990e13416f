/* The fleet store (include/ringside/fleet_store.h): agents' latest
 * snapshots, published, read and forgotten without locks. Threads race only
 * in concurrent_first_publishes_of_one_agent_take_one_slot and
 * publishes_racing_forgets_are_never_lost; the rest plays several workers
 * from one thread, which is enough to pin down when a replaced snapshot or
 * a forgotten slot may be reused. tests/stress/ has the threaded run. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ringside/fleet_store.h"

#include "fleet_blobs.h"

#define KIB 1024u
/* A blob of BIG bytes takes a 16 KiB block: a chunk holds BIG_PER_CHUNK. */
#define BIG 16000
#define BIG_PER_CHUNK (FLEET_CHUNK / (16 * KIB))

#define T0 1700000000000 /* received_ms of version 0 */

static int put(struct fleet_store *s, uint32_t w, const char *org, const char *agent,
	       size_t len, unsigned agent_no, unsigned version)
{
	static unsigned char b[FLEET_BLOB_MAX + 1];

	fill(b, len, agent_no, version);
	return fleet_publish(s, w, org, strlen(org), agent, strlen(agent), b, len,
			     T0 + version);
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

/* ---- forgetting silent agents ------------------------------------- */

/* Every worker passes twice: whatever was retired before is free now. */
static void all_pass(struct fleet_store *s)
{
	for (int round = 0; round < 2; round++)
		for (uint32_t w = 0; w < s->nworkers; w++)
			fleet_quiescent(s, w);
}

static uint32_t forget_all_before(struct fleet_store *s, uint32_t w, unsigned version)
{
	uint32_t cursor = 0;

	return fleet_forget(s, w, T0 + version, fleet_agent_slots(s), &cursor);
}

/* One chunk of 16 KiB blocks is full; forgetting gives back the blocks,
 * the slots and the index entries, and the next agents take them. */
static void forgetting_frees_the_slot_the_index_entry_and_the_snapshot_memory(void **state)
{
	(void)state;
	struct fleet_store s;
	char id[32];

	assert_int_equal(fleet_store_init(&s, 16, 2, FLEET_CHUNK), 0);
	for (unsigned i = 0; i < BIG_PER_CHUNK; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_int_equal(put(&s, 0, "org", id, BIG, i, 1), 0);
	}
	assert_int_equal(put(&s, 0, "org", "one-more", BIG, 99, 1), -ENOSPC);
	assert_int_equal(fleet_snapshot_bytes(&s), BIG_PER_CHUNK * BIG);

	assert_int_equal(forget_all_before(&s, 1, 2), BIG_PER_CHUNK);
	assert_int_equal(fleet_agent_count(&s), 0);
	assert_int_equal(fleet_forgotten(&s), BIG_PER_CHUNK);
	assert_int_equal(fleet_snapshot_bytes(&s), 0);
	for (unsigned i = 0; i < BIG_PER_CHUNK; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_null(get(&s, 0, "org", id));
		assert_null(fleet_snapshot_at(&s, 0, i));
	}
	all_pass(&s);
	for (unsigned i = 0; i < BIG_PER_CHUNK; i++) {
		snprintf(id, sizeof id, "new-%u", i);
		assert_int_equal(put(&s, i % 2, "org", id, BIG, 100 + i, 3), 0);
	}
	/* The same slots and the same chunk, nothing more. */
	assert_int_equal(fleet_agent_slots(&s), BIG_PER_CHUNK);
	assert_int_equal(fleet_memory_carved(&s), FLEET_CHUNK);
	assert_int_equal(fleet_agent_count(&s), BIG_PER_CHUNK);
	for (unsigned i = 0; i < BIG_PER_CHUNK; i++) {
		snprintf(id, sizeof id, "new-%u", i);
		assert_true(holds(get(&s, 0, "org", id), BIG, 100 + i, 3));
	}
	assert_int_equal(fleet_forgotten(&s), BIG_PER_CHUNK);
	fleet_store_fini(&s);
}

static void an_agent_that_published_after_the_cutoff_is_kept(void **state)
{
	(void)state;
	struct fleet_store s;
	const struct fleet_snapshot *p;
	uint64_t born;

	assert_int_equal(fleet_store_init(&s, 16, 1, 1024 * KIB), 0);
	assert_int_equal(put(&s, 0, "o", "silent", 100, 1, 10), 0);
	assert_int_equal(put(&s, 0, "o", "chatty", 200, 2, 10), 0);
	assert_int_equal(put(&s, 0, "o", "chatty", 300, 2, 20), 0);
	born = get(&s, 0, "o", "silent")->born;
	/* The cutoff is exclusive: received_ms == cutoff stays. */
	assert_int_equal(forget_all_before(&s, 0, 10), 0);
	assert_int_equal(forget_all_before(&s, 0, 20), 1);
	assert_null(get(&s, 0, "o", "silent"));
	assert_true(holds(get(&s, 0, "o", "chatty"), 300, 2, 20));
	assert_int_equal(fleet_agent_count(&s), 1);
	assert_int_equal(fleet_forgotten(&s), 1);
	assert_int_equal(fleet_snapshot_bytes(&s), 300);
	/* It reports again: a new agent to the store, with a later number. */
	assert_int_equal(put(&s, 0, "o", "silent", 150, 1, 30), 0);
	p = get(&s, 0, "o", "silent");
	assert_true(holds(p, 150, 1, 30));
	assert_true(p->born > born);
	assert_int_equal(p->born, fleet_links(&s));
	assert_int_equal(fleet_agent_count(&s), 2);
	assert_int_equal(fleet_snapshot_bytes(&s), 450);
	/* Forgetting twice forgets once. */
	assert_int_equal(forget_all_before(&s, 0, 20), 0);
	assert_int_equal(fleet_forgotten(&s), 1);
	fleet_store_fini(&s);
}

/* Worker 1 holds a snapshot of an agent worker 0 forgets: the block and
 * the slot (whose ids the snapshot points to) wait for worker 1's
 * quiescent state; until then a new agent at max_agents is refused. */
static void a_forgotten_snapshot_stays_readable_until_the_readers_quiescent_state(void **state)
{
	(void)state;
	struct fleet_store s;
	const struct fleet_snapshot *held;
	char id[32];

	assert_int_equal(fleet_store_init(&s, 4, 2, 1024 * KIB), 0);
	for (unsigned i = 0; i < 4; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_int_equal(put(&s, 0, "org", id, 600, i, i), 0);
	}
	held = get(&s, 1, "org", "agent-0");
	assert_int_equal(fleet_forget(&s, 0, T0 + 1, 4, &(uint32_t){0}), 1);
	assert_null(get(&s, 0, "org", "agent-0"));
	for (int i = 0; i < 5; i++)
		fleet_quiescent(&s, 0);
	assert_int_equal(put(&s, 0, "org", "agent-4", 600, 4, 9), -ENOSPC);
	assert_true(holds(held, 600, 0, 0));
	assert_string_equal(held->org, "org");
	assert_string_equal(held->agent, "agent-0");
	assert_int_equal(held->received_ms, T0);
	fleet_quiescent(&s, 1);
	fleet_quiescent(&s, 0);
	assert_int_equal(put(&s, 0, "org", "agent-4", 600, 4, 9), 0);
	assert_int_equal(fleet_agent_slots(&s), 4);
	assert_int_equal(get(&s, 0, "org", "agent-4")->slot, 0); /* agent-0's */
	assert_true(holds(get(&s, 1, "org", "agent-4"), 600, 4, 9));
	for (unsigned i = 1; i < 4; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_true(holds(get(&s, 1, "org", id), 600, i, i));
	}
	assert_int_equal(fleet_agent_count(&s), 4);
	fleet_store_fini(&s);
}

static void a_store_filled_to_max_agents_accepts_new_agents_after_forgetting(void **state)
{
	(void)state;
	struct fleet_store s;
	char id[32];

	assert_int_equal(fleet_store_init(&s, 100, 2, 8192 * KIB), 0);
	for (unsigned round = 0; round < 5; round++) {
		for (unsigned i = 0; i < 100; i++) {
			snprintf(id, sizeof id, "agent-%u-%u", round, i);
			assert_int_equal(put(&s, i % 2, "org", id, 400, i, round), 0);
		}
		assert_int_equal(put(&s, 0, "org", "refused", 400, 0, round), -ENOSPC);
		assert_int_equal(fleet_agent_count(&s), 100);
		assert_int_equal(forget_all_before(&s, round % 2, round + 1), 100);
		assert_int_equal(fleet_agent_count(&s), 0);
		all_pass(&s);
	}
	assert_int_equal(fleet_agent_slots(&s), 100);
	assert_int_equal(fleet_forgotten(&s), 500);
	assert_null(get(&s, 0, "org", "agent-4-99"));
	fleet_store_fini(&s);
}

static void forget_visits_at_most_budget_slots_from_the_cursor_and_wraps(void **state)
{
	(void)state;
	struct fleet_store s;
	uint32_t cursor = 0;
	char id[32];

	assert_int_equal(fleet_store_init(&s, 16, 1, 1024 * KIB), 0);
	assert_int_equal(fleet_forget(&s, 0, T0 + 100, 5, &cursor), 0); /* empty */
	for (unsigned i = 0; i < 10; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_int_equal(put(&s, 0, "org", id, 100, i, i), 0);
	}
	assert_int_equal(fleet_forget(&s, 0, T0 + 100, 3, &cursor), 3);
	assert_int_equal(cursor, 3);
	for (uint32_t i = 0; i < 10; i++)
		assert_true(!fleet_snapshot_at(&s, 0, i) == (i < 3));
	/* Slots 3..9 are old, 0..2 empty: a budget of 100 visits the 10 slots
	 * once, from 3 round to 3. */
	assert_int_equal(fleet_forget(&s, 0, T0 + 5, 100, &cursor), 2);
	assert_int_equal(cursor, 3);
	cursor = 8;
	assert_int_equal(fleet_forget(&s, 0, T0 + 100, 3, &cursor), 2); /* 8, 9, 0 */
	assert_int_equal(cursor, 1);
	cursor = 1000; /* out of range: starts at 0 */
	assert_int_equal(fleet_forget(&s, 0, T0 + 100, 8, &cursor), 3); /* 0 .. 7 */
	assert_int_equal(cursor, 8);
	assert_int_equal(fleet_agent_count(&s), 0);
	assert_int_equal(fleet_forgotten(&s), 10);
	assert_int_equal(fleet_forget(&s, 1, T0 + 100, 6, &cursor), 0); /* no such worker */
	fleet_store_fini(&s);
}

/* A pass meets agent-0 in slot 0, then agent-0 is forgotten and reports
 * again: it links into a slot ahead of the pass (slot 0 waits for its
 * grace period). The raw pass meets it twice; skipping born > the mark
 * taken at the start meets it once. */
static void a_pass_skipping_agents_born_after_its_start_meets_each_agent_once(void **state)
{
	(void)state;
	struct fleet_store s;
	char id[32];
	unsigned raw = 0, marked = 0;
	uint64_t mark;

	assert_int_equal(fleet_store_init(&s, 16, 1, 1024 * KIB), 0);
	for (unsigned i = 0; i < 4; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_int_equal(put(&s, 0, "org", id, 100, i, 1), 0);
	}
	mark = fleet_links(&s);
	assert_int_equal(mark, 4);
	for (uint32_t i = 0; i < fleet_agent_slots(&s); i++) {
		const struct fleet_snapshot *p = fleet_snapshot_at(&s, 0, i);
		if (i == 1) {
			uint32_t cursor = 0;
			assert_int_equal(fleet_forget(&s, 0, T0 + 2, 1, &cursor), 1);
			assert_int_equal(put(&s, 0, "org", "agent-0", 100, 0, 2), 0);
			assert_int_equal(get(&s, 0, "org", "agent-0")->slot, 4);
		}
		if (p && !strcmp(p->agent, "agent-0")) {
			raw++;
			marked += p->born <= mark;
		}
	}
	assert_int_equal(raw, 2);
	assert_int_equal(marked, 1);
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

/* ---- threads: publishes and forgets of the same agents, at once ---- */

#define CHURN_AGENTS 64   /* 0..31 report often, 32..63 seldom */
#define CHURN_WINDOW 1024 /* ticks of the logical clock an agent may stay silent */

struct churn {
	struct fleet_store *s;
	pthread_barrier_t *go;
	_Atomic int64_t *clock;    /* received_ms of the next publish */
	_Atomic int64_t *issued;   /* the highest cutoff a forget has started with */
	_Atomic bool *stop;
	uint32_t worker;
	unsigned lost, wrong, failed, refused;
	uint32_t forgot;
};

static void *churn_publish(void *arg)
{
	struct churn *c = arg;
	unsigned char blob[64];
	char id[32];
	uint32_t x = c->worker * 2654435761u + 1;

	pthread_barrier_wait(c->go);
	for (unsigned i = 0; i < 100000; i++) {
		x = x * 1664525u + 1013904223u;
		/* The seldom ones come about every 3000 ticks: most of their
		 * reports meet a forget of them. */
		unsigned k = (x >> 8) % 64 ? (x >> 16) % 32 : 32 + (x >> 16) % 32;
		int n = snprintf(id, sizeof id, "agent-%u", k);
		int64_t t = atomic_fetch_add(c->clock, 1);
		int r;
		memset(blob, (int)k, sizeof blob);
		r = fleet_publish(c->s, c->worker, "org", 3, id, (size_t)n, blob, sizeof blob, t);
		if (r) {
			/* Memory or slots still in a grace period: refused whole. */
			c->refused += r == -ENOSPC;
			c->failed += r != -ENOSPC;
			continue;
		}
		const struct fleet_snapshot *p =
			fleet_lookup(c->s, c->worker, "org", 3, id, (size_t)n);
		/* Gone only if a forget whose cutoff passed t began meanwhile. */
		if (!p && atomic_load(c->issued) <= t)
			c->lost++;
		if (p && (p->len != sizeof blob || p->data[0] != k || strcmp(p->agent, id)))
			c->wrong++;
		if (i % 8 == 0)
			fleet_quiescent(c->s, c->worker);
	}
	fleet_offline(c->s, c->worker);
	return NULL;
}

static void *churn_forget(void *arg)
{
	struct churn *c = arg;
	uint32_t cursor = 0;

	pthread_barrier_wait(c->go);
	while (!atomic_load(c->stop)) {
		int64_t cutoff = atomic_load(c->clock) - CHURN_WINDOW;
		if (cutoff > atomic_load(c->issued))
			atomic_store(c->issued, cutoff); /* one forgetting thread */
		c->forgot += fleet_forget(c->s, c->worker, cutoff, 32, &cursor);
		/* Offline while it sleeps, as a worker blocking without a timer:
		 * a record that neither passes nor is offline holds back all
		 * reuse. */
		fleet_offline(c->s, c->worker);
		nanosleep(&(struct timespec){0, 20000}, NULL);
		fleet_online(c->s, c->worker);
	}
	fleet_offline(c->s, c->worker);
	return NULL;
}

/* Two workers publish 64 agents, half of them seldom, while a third
 * forgets every agent silent for 1024 publishes, all at once: a publish
 * is never lost (its worker's next lookup finds the agent unless a forget
 * with a later cutoff began), and in the end each agent has one slot,
 * found by lookup, and the counts add up. */
static void publishes_racing_forgets_are_never_lost(void **state)
{
	(void)state;
	struct fleet_store s;
	pthread_barrier_t go;
	pthread_t t[3];
	struct churn c[3];
	_Atomic int64_t clock = T0, issued = 0;
	_Atomic bool stop = false;
	uint32_t forgot = 0, published = 0, refused = 0;

	for (int round = 0; round < 5; round++) {
		/* Slots and blocks for the agents, and for those forgotten or
		 * replaced within one grace period, which lasts while a worker
		 * is preempted (three threads may share two CPUs). */
		assert_int_equal(fleet_store_init(&s, 8 * CHURN_AGENTS, 3, 65536 * KIB), 0);
		pthread_barrier_init(&go, NULL, 3);
		atomic_store(&stop, false);
		for (uint32_t i = 0; i < 3; i++) {
			c[i] = (struct churn){&s, &go, &clock, &issued, &stop, i, 0, 0, 0, 0, 0};
			void *(*run)(void *) = i < 2 ? churn_publish : churn_forget;
			assert_int_equal(pthread_create(&t[i], NULL, run, &c[i]), 0);
		}
		for (uint32_t i = 0; i < 3; i++) {
			if (i == 2)
				atomic_store(&stop, true);
			pthread_join(t[i], NULL);
			assert_int_equal(c[i].lost, 0);
			assert_int_equal(c[i].wrong, 0);
			assert_int_equal(c[i].failed, 0);
			refused += c[i].refused;
			published += i < 2 ? 100000 - c[i].refused : 0;
		}
		pthread_barrier_destroy(&go);
		forgot += c[2].forgot;
		assert_int_equal(fleet_forgotten(&s), c[2].forgot);

		unsigned found = 0, in_slots = 0;
		bool seen[CHURN_AGENTS] = {false};
		fleet_online(&s, 0);
		for (uint32_t i = 0; i < fleet_agent_slots(&s); i++) {
			const struct fleet_snapshot *p = fleet_snapshot_at(&s, 0, i);
			unsigned k;
			if (!p)
				continue;
			in_slots++;
			assert_int_equal(sscanf(p->agent, "agent-%u", &k), 1);
			assert_false(seen[k]);
			seen[k] = true;
			assert_ptr_equal(get(&s, 0, "org", p->agent), p);
		}
		for (unsigned k = 0; k < CHURN_AGENTS; k++) {
			char id[32];
			snprintf(id, sizeof id, "agent-%u", k);
			found += get(&s, 0, "org", id) != NULL;
		}
		assert_int_equal(found, in_slots);
		assert_int_equal(fleet_agent_count(&s), found);
		fleet_store_fini(&s);
	}
	/* The test raced only if forgets happened, and proved something only
	 * if most publishes went through. */
	assert_true(forgot > 100);
	assert_true(refused < published / 10);
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
		cmocka_unit_test(forgetting_frees_the_slot_the_index_entry_and_the_snapshot_memory),
		cmocka_unit_test(an_agent_that_published_after_the_cutoff_is_kept),
		cmocka_unit_test(a_forgotten_snapshot_stays_readable_until_the_readers_quiescent_state),
		cmocka_unit_test(a_store_filled_to_max_agents_accepts_new_agents_after_forgetting),
		cmocka_unit_test(forget_visits_at_most_budget_slots_from_the_cursor_and_wraps),
		cmocka_unit_test(a_pass_skipping_agents_born_after_its_start_meets_each_agent_once),
		cmocka_unit_test(concurrent_first_publishes_of_one_agent_take_one_slot),
		cmocka_unit_test(publishes_racing_forgets_are_never_lost),
		cmocka_unit_test(init_rejects_what_it_cannot_hold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
