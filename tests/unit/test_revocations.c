/* The revocation table (include/ringside/revocations.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>

#include "ringside/jwt.h"
#include "ringside/revocations.h"

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static struct jwt_claims claims(const char *jti, const char *sub, const char *client,
				int64_t iat, int64_t exp)
{
	struct jwt_claims c;
	memset(&c, 0, sizeof c);
	snprintf(c.jti, sizeof c.jti, "%s", jti);
	snprintf(c.sub, sizeof c.sub, "%s", sub);
	snprintf(c.client_id, sizeof c.client_id, "%s", client);
	snprintf(c.organization_id, sizeof c.organization_id, "org");
	c.iat = iat;
	c.exp = exp;
	return c;
}

static int add(struct revocations *r, enum revocation_kind k, const char *id, int64_t v)
{
	return revocations_add(r, k, id, strlen(id), v);
}

static int notice(struct revocations *r, const char *p)
{
	return revocations_apply_notice(r, p, strlen(p));
}

static void each_kind_kills_its_tokens_only(void **state)
{
	(void)state;
	struct revocations *r;
	int64_t now = now_s();
	assert_int_equal(revocations_init(&r, 1024), 0);
	struct jwt_claims c = claims("j1", "agent1", "client1", now - 10, now + 600);
	assert_false(revocations_token_dead(r, &c, now));

	assert_int_equal(add(r, REVOKED_TOKEN, "j1", now + 600), 0);
	assert_true(revocations_token_dead(r, &c, now));
	struct jwt_claims other = claims("j2", "agent1", "client1", now - 10, now + 600);
	assert_false(revocations_token_dead(r, &other, now));

	/* The agent's cut-off: tokens issued before it die, later ones live. */
	assert_int_equal(add(r, REVOKED_AGENT, "agent1", now - 5), 0);
	assert_true(revocations_token_dead(r, &other, now));
	struct jwt_claims later = claims("j3", "agent1", "", now - 5, now + 600);
	assert_false(revocations_token_dead(r, &later, now));

	/* The client's cut-off, checked only for tokens that carry one. */
	assert_int_equal(add(r, REVOKED_CLIENT, "client2", now), 0);
	struct jwt_claims c2 = claims("j4", "agent2", "client2", now - 1, now + 600);
	assert_true(revocations_token_dead(r, &c2, now));
	assert_true(revocations_client_dead(r, "client2", 7, now - 1));
	assert_false(revocations_client_dead(r, "client2", 7, now));
	assert_false(revocations_client_dead(r, "client3", 7, 0));
	struct jwt_claims no_client = claims("j5", "agent2", "", now - 1, now + 600);
	assert_false(revocations_token_dead(r, &no_client, now));
	/* Kinds do not mix: a jti named like the agent is not the agent. */
	struct jwt_claims named = claims("agent9", "j1", "", now - 1, now + 600);
	assert_false(revocations_token_dead(r, &named, now));

	assert_int_equal(revocations_count(r), 3);
	revocations_fini(r);
}

static void values_only_grow(void **state)
{
	(void)state;
	struct revocations *r;
	int64_t now = now_s();
	assert_int_equal(revocations_init(&r, 1024), 0);
	assert_int_equal(add(r, REVOKED_AGENT, "a", now), 0);
	assert_int_equal(add(r, REVOKED_AGENT, "a", now - 100), 0); /* old news */
	struct jwt_claims c = claims("j", "a", "", now - 50, now + 600);
	assert_true(revocations_token_dead(r, &c, now));
	assert_int_equal(add(r, REVOKED_AGENT, "a", now + 100), 0);
	c.iat = now + 50;
	assert_true(revocations_token_dead(r, &c, now));

	assert_int_equal(add(r, REVOKED_TOKEN, "j", now + 600), 0);
	assert_int_equal(add(r, REVOKED_TOKEN, "j", now - 7200), 0); /* cannot shorten it */
	struct jwt_claims t = claims("j", "b", "", now - 1, now + 600);
	assert_true(revocations_token_dead(r, &t, now + 500));
	assert_int_equal(revocations_count(r), 2);
	revocations_fini(r);
}

static void a_revoked_token_is_dead_until_past_its_exp_and_leeway(void **state)
{
	(void)state;
	struct revocations *r;
	int64_t now = now_s(), exp = now + 60;
	assert_int_equal(revocations_init(&r, 1024), 0);
	assert_int_equal(add(r, REVOKED_TOKEN, "j", exp), 0);
	struct jwt_claims c = claims("j", "a", "", now - 1, exp);
	assert_true(revocations_token_dead(r, &c, now));
	assert_true(revocations_token_dead(r, &c, exp - 1));
	/* Regression: the entry ended at exp, while jwt_verify still
	 * accepts the token for its leeway after exp. */
	assert_true(revocations_token_dead(r, &c, exp));
	assert_true(revocations_token_dead(r, &c, exp + JWT_LEEWAY_DEFAULT));
	/* An hour past exp it no longer matters (jwt_verify refuses). */
	assert_false(revocations_token_dead(r, &c, exp + 3600));
	/* A cut-off holds for ever, for tokens issued before it only. */
	assert_int_equal(add(r, REVOKED_AGENT, "a", now), 0);
	struct jwt_claims old = claims("k", "a", "", now - 1, now + 60);
	assert_true(revocations_token_dead(r, &old, now + 86400 * 365));
	struct jwt_claims fresh = claims("k", "a", "", now, now + 60);
	assert_false(revocations_token_dead(r, &fresh, now));
	revocations_fini(r);
}

static void bad_ids_are_refused(void **state)
{
	(void)state;
	struct revocations *r;
	assert_int_equal(revocations_init(&r, 1024), 0);
	char long_id[JWT_ID_CAP + 1];
	memset(long_id, 'x', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = 0;
	assert_int_equal(revocations_add(r, REVOKED_TOKEN, "", 0, 1), -EINVAL);
	assert_int_equal(revocations_add(r, REVOKED_TOKEN, long_id, JWT_ID_CAP, 1), -EINVAL);
	assert_int_equal(revocations_add(r, REVOKED_TOKEN, long_id, JWT_ID_CAP - 1, 1), 0);
	assert_int_equal(revocations_add(r, (enum revocation_kind)'x', "id", 2, 1), -EINVAL);
	assert_int_equal(revocations_count(r), 1);
	revocations_fini(r);
}

static void a_full_table_says_enospc_and_reuses_expired_slots(void **state)
{
	(void)state;
	struct revocations *r;
	int64_t now = now_s();
	enum { CAP = 1024 };
	assert_int_equal(revocations_init(&r, CAP), 0);
	char id[32];
	/* Half live; the rest long expired (which may take each other's
	 * slots, so added until the table holds CAP keys). */
	for (int i = 0; i < CAP / 2; i++) {
		snprintf(id, sizeof id, "t%d", 2 * i + 1);
		assert_int_equal(add(r, REVOKED_TOKEN, id, now + 600), 0);
	}
	for (int i = 0; revocations_count(r) < CAP; i++) {
		assert_true(i < 100 * CAP);
		snprintf(id, sizeof id, "e%d", i);
		assert_int_equal(add(r, REVOKED_TOKEN, id, now - 7200), 0);
	}
	snprintf(id, sizeof id, "t%d", 1);
	assert_int_equal(revocations_count(r), CAP);
	/* New keys land in expired slots (their probe chains pass them) or
	 * are refused; none pushes the table past its capacity. */
	int added = 0, refused = 0;
	for (int i = 0; i < 4 * CAP; i++) {
		snprintf(id, sizeof id, "n%d", i);
		int rc = add(r, REVOKED_AGENT, id, now);
		assert_true(rc == 0 || rc == -ENOSPC);
		if (rc == 0) {
			added++;
			struct jwt_claims c = claims("x", id, "", now - 1, now + 60);
			assert_true(revocations_token_dead(r, &c, now));
		} else {
			refused++;
		}
	}
	assert_true(added > 0);
	assert_true(added <= CAP / 2);
	assert_true(refused > 0);
	assert_int_equal(revocations_count(r), CAP);
	/* The live ones are all still there. */
	for (int i = 1; i < CAP; i += 2) {
		snprintf(id, sizeof id, "t%d", i);
		struct jwt_claims c = claims(id, "z", "", now - 1, now + 600);
		assert_true(revocations_token_dead(r, &c, now));
	}
	/* Raising an entry that is already held never needs room. */
	assert_int_equal(add(r, REVOKED_TOKEN, "t1", now + 900), 0);
	revocations_fini(r);
}

static void notices_parse_or_are_refused(void **state)
{
	(void)state;
	struct revocations *r;
	int64_t now = now_s();
	assert_int_equal(revocations_init(&r, 1024), 0);
	char p[128];
	snprintf(p, sizeof p, "j %lld jti-1", (long long)(now + 600));
	assert_int_equal(notice(r, p), 0);
	snprintf(p, sizeof p, "a %lld 7d7a0bd6-0b5a-4c43-9a57-9e4b6c1d2e3f", (long long)now);
	assert_int_equal(notice(r, p), 0);
	snprintf(p, sizeof p, "c %lld client_42", (long long)now);
	assert_int_equal(notice(r, p), 0);
	struct jwt_claims c = claims("jti-1", "s", "", now - 1, now + 600);
	assert_true(revocations_token_dead(r, &c, now));
	c = claims("j", "7d7a0bd6-0b5a-4c43-9a57-9e4b6c1d2e3f", "", now - 1, now + 600);
	assert_true(revocations_token_dead(r, &c, now));
	assert_true(revocations_client_dead(r, "client_42", 9, now - 1));
	/* Not necessarily NUL-terminated: only len bytes are read. */
	assert_int_equal(revocations_apply_notice(r, "j 99999999999 abcdef", 17), 0);
	c = claims("abc", "s", "", 0, 99999999999);
	assert_true(revocations_token_dead(r, &c, now));
	assert_int_equal(revocations_count(r), 4);

	static const char *const bad[] = {
		"",
		"j",
		"j ",
		"j 1",
		"j 1 ",           /* no id */
		"j  1 id",        /* two spaces */
		"j x id",         /* no digits */
		"j -1 id",        /* negative */
		"j 12a id",       /* digits then garbage */
		"jj 1 id",        /* two kind bytes */
		"x 1 id",         /* unknown kind */
		"j 99999999999999999999 id", /* overflows int64 */
		"j 9223372036854775808 id",  /* INT64_MAX + 1 */
		"1 j id",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = notice(r, bad[i]);
		if (rc != -EINVAL)
			fail_msg("\"%s\" gave %d", bad[i], rc);
	}
	/* An id over 63 bytes. */
	char longp[128];
	snprintf(longp, sizeof longp, "j 1 %064d", 0);
	assert_int_equal(notice(r, longp), -EINVAL);
	assert_int_equal(revocations_count(r), 4);
	revocations_fini(r);
}

/* Writers add while readers check: every key added before a reader
 * looked (the reader read `published` after the writer raised it) is
 * seen dead, whatever the writers do meanwhile. */
enum { WRITERS = 2, READERS = 2, PER_WRITER = 20000 };
struct race {
	struct revocations *r;
	int64_t now;
	_Atomic int published[WRITERS];
	_Atomic bool done;
	_Atomic uint64_t checks;
};

struct race_arg {
	struct race *race;
	int id;
};

static void *race_writer(void *arg)
{
	struct race_arg *a = arg;
	char id[32];
	for (int i = 0; i < PER_WRITER; i++) {
		snprintf(id, sizeof id, "w%d-%d", a->id, i);
		if (add(a->race->r, REVOKED_TOKEN, id, a->race->now + 600) != 0)
			break;
		atomic_store_explicit(&a->race->published[a->id], i + 1, memory_order_release);
	}
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race_arg *a = arg;
	struct race *race = a->race;
	uint32_t x = (uint32_t)a->id * 2654435761u + 1;
	char id[32];
	while (!atomic_load_explicit(&race->done, memory_order_acquire)) {
		for (int w = 0; w < WRITERS; w++) {
			int n = atomic_load_explicit(&race->published[w], memory_order_acquire);
			if (!n)
				continue;
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			int i = (int)(x % (uint32_t)n);
			snprintf(id, sizeof id, "w%d-%d", w, i);
			struct jwt_claims c = claims(id, "nobody", "", race->now - 1, race->now + 600);
			if (!revocations_token_dead(race->r, &c, race->now)) {
				fprintf(stderr, "key %s published but not seen\n", id);
				abort();
			}
			/* And one never added is never dead. */
			snprintf(id, sizeof id, "never-%d", (int)(x % 1000));
			c = claims(id, "nobody", "", race->now - 1, race->now + 600);
			if (revocations_token_dead(race->r, &c, race->now))
				abort();
			atomic_fetch_add_explicit(&race->checks, 1, memory_order_relaxed);
		}
	}
	return NULL;
}

static void readers_see_every_key_added_before_they_look(void **state)
{
	(void)state;
	struct race race = {.now = now_s()};
	assert_int_equal(revocations_init(&race.r, WRITERS * PER_WRITER), 0);
	pthread_t w[WRITERS], rd[READERS];
	struct race_arg wa[WRITERS], ra[READERS];
	for (int i = 0; i < READERS; i++) {
		ra[i] = (struct race_arg){&race, i};
		assert_int_equal(pthread_create(&rd[i], NULL, race_reader, &ra[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		wa[i] = (struct race_arg){&race, i};
		assert_int_equal(pthread_create(&w[i], NULL, race_writer, &wa[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	atomic_store_explicit(&race.done, true, memory_order_release);
	for (int i = 0; i < READERS; i++)
		pthread_join(rd[i], NULL);
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(atomic_load(&race.published[i]), PER_WRITER);
	assert_int_equal(revocations_count(race.r), WRITERS * PER_WRITER);
	printf("# %llu checks while %d writers added %d keys\n",
	       (unsigned long long)atomic_load(&race.checks), WRITERS, WRITERS * PER_WRITER);
	assert_true(atomic_load(&race.checks) > 0);
	revocations_fini(race.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(each_kind_kills_its_tokens_only),
		cmocka_unit_test(values_only_grow),
		cmocka_unit_test(a_revoked_token_is_dead_until_past_its_exp_and_leeway),
		cmocka_unit_test(bad_ids_are_refused),
		cmocka_unit_test(a_full_table_says_enospc_and_reuses_expired_slots),
		cmocka_unit_test(notices_parse_or_are_refused),
		cmocka_unit_test(readers_see_every_key_added_before_they_look),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
