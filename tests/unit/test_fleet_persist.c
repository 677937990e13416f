/* The fleet store saved and loaded (include/ringside/fleet_persist.h): what
 * comes back is what went out, a damaged file is refused with a message
 * that says where, and a failed save leaves the previous file. Files live
 * in a fresh directory under /tmp per test. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "ringside/fleet_persist.h"
#include "ringside/fleet_store.h"

#include "fleet_blobs.h"

#define KIB 1024u
#define T0 1700000000000

struct dir {
	char path[64];
	char file[96];
};

static void dir_make(struct dir *d)
{
	strcpy(d->path, "/tmp/ringside-fleet-persist-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->file, sizeof d->file, "%s/fleet", d->path);
}

static void dir_remove(struct dir *d)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
}

static int put_at(struct fleet_store *s, uint32_t w, const char *org, const char *agent,
		  size_t len, unsigned agent_no, unsigned version, int64_t received_ms)
{
	static unsigned char b[FLEET_BLOB_MAX];

	fill(b, len, agent_no, version);
	return fleet_publish(s, w, org, strlen(org), agent, strlen(agent), b, len, received_ms);
}

static const struct fleet_snapshot *get(struct fleet_store *s, uint32_t w, const char *org,
					const char *agent)
{
	return fleet_lookup(s, w, org, strlen(org), agent, strlen(agent));
}

/* Agent i of a test fleet: sizes from empty to the largest, ids up to
 * 63 bytes, receive times a second apart. */
static size_t len_of(unsigned i)
{
	return i == 0 ? 0 : i == 1 ? FLEET_BLOB_MAX : (i * 977) % 3000;
}

static void agent_id(char *id, size_t cap, unsigned i)
{
	if (i == 2)
		snprintf(id, cap, "%s", "a-63-byte-agent-id-0123456789012345678901234567890123456789012");
	else
		snprintf(id, cap, "agent-%u", i);
}

static void make_fleet(struct fleet_store *s, unsigned n)
{
	char id[64];

	for (unsigned i = 0; i < n; i++) {
		agent_id(id, sizeof id, i);
		assert_int_equal(put_at(s, 0, i % 3 ? "org-a" : "org-b", id, len_of(i), i, 1,
					T0 + 1000 * (int64_t)i),
				 0);
	}
}

/* Every agent of make_fleet(n) is in s, whole, with its receive time. */
static void check_fleet(struct fleet_store *s, unsigned n)
{
	char id[64];

	for (unsigned i = 0; i < n; i++) {
		agent_id(id, sizeof id, i);
		const struct fleet_snapshot *p = get(s, 0, i % 3 ? "org-a" : "org-b", id);
		assert_true(holds(p, len_of(i), i, 1));
		assert_int_equal(p->received_ms, T0 + 1000 * (int64_t)i);
		assert_string_equal(p->agent, id);
	}
	assert_int_equal(fleet_agent_count(s), n);
}

static size_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (size_t)st.st_size;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;

	assert_non_null(f);
	*len = file_size(path);
	b = malloc(*len ? *len : 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void spill(const char *path, const unsigned char *b, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Loads path into a fresh store; returns fleet_load's result. */
static int load_fresh(const char *path, int64_t forget_before, uint64_t *agents, char *err,
		      size_t errcap)
{
	struct fleet_store s;
	int rc;

	assert_int_equal(fleet_store_init(&s, 1000, 1, 64 * 1024 * KIB), 0);
	rc = fleet_load(&s, 0, path, forget_before, agents, err, errcap);
	assert_int_equal(fleet_agent_count(&s), *agents);
	fleet_store_fini(&s);
	return rc;
}

static void save_then_load_into_a_fresh_store_gives_the_same_agents_blobs_and_times(void **state)
{
	(void)state;
	struct fleet_store a, b;
	struct dir d;
	uint64_t n = 99;
	char err[256];

	dir_make(&d);
	assert_int_equal(fleet_store_init(&a, 500, 2, 64 * 1024 * KIB), 0);
	make_fleet(&a, 300);
	/* Replaced and forgotten agents are not saved; only latest ones are. */
	assert_int_equal(put_at(&a, 1, "org-a", "agent-1", len_of(1), 1, 1, T0 + 1000), 0);
	assert_int_equal(put_at(&a, 1, "org-x", "gone", 10, 7, 7, T0 - 5), 0);
	assert_int_equal(fleet_forget(&a, 1, T0, 1000, &(uint32_t){0}), 1);
	assert_int_equal(fleet_save(&a, 0, d.file, &n, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_int_equal(n, 300);
	{
		char tmp[128];
		snprintf(tmp, sizeof tmp, "%s.tmp", d.file);
		assert_int_equal(access(tmp, F_OK), -1); /* renamed away */
		struct stat st;
		assert_int_equal(stat(d.file, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* A fresh store draws another hash key: other slots, same agents. */
	assert_int_equal(fleet_store_init(&b, 500, 1, 64 * 1024 * KIB), 0);
	assert_int_equal(fleet_load(&b, 0, d.file, 0, &n, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_int_equal(n, 300);
	check_fleet(&b, 300);
	assert_null(get(&b, 0, "org-x", "gone"));
	assert_int_equal(fleet_snapshot_bytes(&b), fleet_snapshot_bytes(&a));
	fleet_store_fini(&a);
	fleet_store_fini(&b);
	dir_remove(&d);
}

static void a_missing_file_loads_no_agents(void **state)
{
	(void)state;
	struct dir d;
	uint64_t n = 99;
	char err[256] = "x";

	dir_make(&d);
	assert_int_equal(load_fresh(d.file, 0, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	assert_string_equal(err, "");
	dir_remove(&d);
}

static void an_empty_store_saves_a_header_that_loads_no_agents(void **state)
{
	(void)state;
	struct fleet_store s;
	struct dir d;
	uint64_t n = 99;
	char err[256];
	size_t len;

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, 10, 1, FLEET_CHUNK), 0);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	unsigned char *b = slurp(d.file, &len);
	assert_int_equal(len, FLEET_PERSIST_HEADER);
	assert_memory_equal(b, "RSFLEET\n\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24);
	free(b);
	assert_int_equal(load_fresh(d.file, 0, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	fleet_store_fini(&s);
	dir_remove(&d);
}

/* Record boundaries, read per the format in the header. */
static size_t record_ends(const unsigned char *b, size_t len, size_t *ends, size_t cap)
{
	size_t at = FLEET_PERSIST_HEADER, n = 0;

	while (at + 16 <= len && n < cap) {
		uint32_t blob = (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 |
				(uint32_t)b[at + 2] << 16 | (uint32_t)b[at + 3] << 24;
		at += 16 + b[at + 4] + b[at + 5] + blob + 4;
		ends[n++] = at;
	}
	assert_int_equal(at, len);
	return n;
}

static void a_truncated_file_is_refused_and_keeps_the_records_before_the_cut(void **state)
{
	(void)state;
	struct fleet_store s;
	struct dir d;
	uint64_t n;
	char err[256], cut[128];
	size_t len, ends[16];

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, 100, 1, 16 * 1024 * KIB), 0);
	make_fleet(&s, 10);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	unsigned char *b = slurp(d.file, &len);
	assert_int_equal(record_ends(b, len, ends, 16), 10);
	snprintf(cut, sizeof cut, "%s/cut", d.path);
	const size_t at[] = {0, 10, 31, 32 + 3, 32 + 16, ends[2] - 1, ends[2] + 20, len - 1};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		unsigned whole = 0;
		while (whole < 10 && ends[whole] <= at[i])
			whole++;
		spill(cut, b, at[i]);
		assert_int_equal(load_fresh(cut, 0, &n, err, sizeof err), -EBADMSG);
		assert_non_null(strstr(err, "truncated"));
		assert_non_null(strstr(err, cut));
		assert_int_equal(n, whole);
	}
	/* The message says where: record 4 of 10 ends early. */
	spill(cut, b, ends[2] + 20);
	assert_int_equal(load_fresh(cut, 0, &n, err, sizeof err), -EBADMSG);
	assert_non_null(strstr(err, "record 4 of 10"));
	free(b);
	fleet_store_fini(&s);
	dir_remove(&d);
}

/* Each bit of a small file flipped in turn: every one is refused, and
 * nothing at or past the damaged record is loaded. */
static void any_flipped_bit_is_refused(void **state)
{
	(void)state;
	struct fleet_store s;
	struct dir d;
	uint64_t n;
	char err[256], bad[128];
	size_t len, ends[8];

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, 10, 1, 1024 * KIB), 0);
	assert_int_equal(put_at(&s, 0, "o", "a", 40, 1, 1, T0), 0);
	assert_int_equal(put_at(&s, 0, "org", "agent-2", 0, 2, 1, T0 + 1), 0);
	assert_int_equal(put_at(&s, 0, "or", "b", 25, 3, 1, T0 + 2), 0);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	unsigned char *b = slurp(d.file, &len);
	assert_int_equal(record_ends(b, len, ends, 8), 3);
	snprintf(bad, sizeof bad, "%s/bad", d.path);
	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			unsigned before = 0;
			while (before < 3 && ends[before] <= i)
				before++;
			b[i] ^= (unsigned char)(1 << bit);
			spill(bad, b, len);
			int rc = load_fresh(bad, 0, &n, err, sizeof err);
			if (rc != -EBADMSG)
				fail_msg("byte %zu bit %d: %d (%s)", i, bit, rc, err);
			assert_true(n <= before);
			assert_non_null(strstr(err, bad));
			b[i] ^= (unsigned char)(1 << bit);
		}
	free(b);
	fleet_store_fini(&s);
	dir_remove(&d);
}

static void a_wrong_magic_or_version_is_refused(void **state)
{
	(void)state;
	struct fleet_store s;
	struct dir d;
	uint64_t n;
	char err[256];
	size_t len;

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, 10, 1, 1024 * KIB), 0);
	make_fleet(&s, 3);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	unsigned char *b = slurp(d.file, &len);

	/* Not ours at all. */
	spill(d.file, (const unsigned char *)"agent,org\nfoo,bar\n0123456789abcdef", 34);
	assert_int_equal(load_fresh(d.file, 0, &n, err, sizeof err), -EBADMSG);
	assert_non_null(strstr(err, "not a fleet file"));
	b[0] = 'r';
	spill(d.file, b, len);
	assert_int_equal(load_fresh(d.file, 0, &n, err, sizeof err), -EBADMSG);
	assert_non_null(strstr(err, "not a fleet file"));
	b[0] = 'R';
	/* A later version that kept the header: checksum right, version 2. */
	b[8] = 2;
	uint32_t c = (uint32_t)crc32(0, b, 24);
	for (int i = 0; i < 4; i++)
		b[24 + i] = (unsigned char)(c >> 8 * i);
	spill(d.file, b, len);
	assert_int_equal(load_fresh(d.file, 0, &n, err, sizeof err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "version 2"));
	assert_int_equal(n, 0);
	free(b);
	fleet_store_fini(&s);
	dir_remove(&d);
}

static void agents_older_than_forget_before_are_skipped(void **state)
{
	(void)state;
	struct fleet_store s, t;
	struct dir d;
	uint64_t n;
	char err[256], id[64];

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, 100, 1, 16 * 1024 * KIB), 0);
	make_fleet(&s, 20);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	assert_int_equal(fleet_store_init(&t, 100, 1, 16 * 1024 * KIB), 0);
	/* Agents 0..11 are older than the cutoff; 12 is exactly at it. */
	assert_int_equal(fleet_load(&t, 0, d.file, T0 + 12000, &n, err, sizeof err), 0);
	assert_int_equal(n, 8);
	assert_int_equal(fleet_agent_count(&t), 8);
	for (unsigned i = 0; i < 20; i++) {
		agent_id(id, sizeof id, i);
		const struct fleet_snapshot *p = get(&t, 0, i % 3 ? "org-a" : "org-b", id);
		assert_true(i < 12 ? p == NULL : holds(p, len_of(i), i, 1));
	}
	fleet_store_fini(&s);
	fleet_store_fini(&t);
	dir_remove(&d);
}

/* A file built byte by byte from the format in fleet_persist.h, with two
 * records of one agent, the newer first: the newer wins, and a store that
 * already has a newer report keeps it. */
static size_t record(unsigned char *p, const char *org, const char *agent, const char *blob,
		     int64_t received)
{
	size_t o = strlen(org), a = strlen(agent), n = strlen(blob), at = 16;

	memset(p, 0, 16);
	p[0] = (unsigned char)n;
	p[4] = (unsigned char)o;
	p[5] = (unsigned char)a;
	for (int i = 0; i < 8; i++)
		p[8 + i] = (unsigned char)((uint64_t)received >> 8 * i);
	memcpy(p + at, org, o), at += o;
	memcpy(p + at, agent, a), at += a;
	memcpy(p + at, blob, n), at += n;
	uint32_t c = (uint32_t)crc32(0, p, (uInt)at);
	for (int i = 0; i < 4; i++)
		p[at + i] = (unsigned char)(c >> 8 * i);
	return at + 4;
}

static void the_documented_format_loads_and_the_newest_record_of_an_agent_wins(void **state)
{
	(void)state;
	struct fleet_store s;
	struct dir d;
	unsigned char f[512];
	uint64_t n;
	char err[256];
	size_t len = 32;

	dir_make(&d);
	memset(f, 0, 32);
	memcpy(f, "RSFLEET\n", 8);
	f[8] = 1;
	f[16] = 3;
	uint32_t c = (uint32_t)crc32(0, f, 24);
	for (int i = 0; i < 4; i++)
		f[24 + i] = (unsigned char)(c >> 8 * i);
	len += record(f + len, "o", "a", "newer", T0 + 10);
	len += record(f + len, "o", "b", "only", T0 + 5);
	len += record(f + len, "o", "a", "older", T0 + 1);
	spill(d.file, f, len);

	assert_int_equal(fleet_store_init(&s, 10, 1, 1024 * KIB), 0);
	assert_int_equal(fleet_load(&s, 0, d.file, 0, &n, err, sizeof err), 0);
	assert_int_equal(n, 2);
	const struct fleet_snapshot *p = get(&s, 0, "o", "a");
	assert_non_null(p);
	assert_int_equal(p->len, 5);
	assert_memory_equal(p->data, "newer", 5);
	assert_int_equal(p->received_ms, T0 + 10);
	assert_memory_equal(get(&s, 0, "o", "b")->data, "only", 4);
	/* Loading again changes nothing: every record is as old or older. */
	assert_int_equal(fleet_load(&s, 0, d.file, 0, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(get(&s, 0, "o", "a")->received_ms, T0 + 10);
	fleet_store_fini(&s);
	dir_remove(&d);
}

static void a_failed_save_leaves_the_previous_file(void **state)
{
	(void)state;
	struct fleet_store s;
	struct dir d;
	uint64_t n = 99;
	char err[256], tmp[128], path[160];
	size_t len1, len2;

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, 100, 1, 16 * 1024 * KIB), 0);
	make_fleet(&s, 5);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	unsigned char *before = slurp(d.file, &len1);
	make_fleet(&s, 9);

	/* path.tmp cannot be created (a directory is in the way: this fails
	 * for root too, which a read-only directory would not). */
	snprintf(tmp, sizeof tmp, "%s.tmp", d.file);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), -EISDIR);
	assert_int_equal(n, 0);
	assert_non_null(strstr(err, tmp));
	unsigned char *after = slurp(d.file, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(before, after, len1);
	free(after);
	assert_int_equal(load_fresh(d.file, 0, &n, err, sizeof err), 0);
	assert_int_equal(n, 5);
	assert_int_equal(rmdir(tmp), 0);

	/* A directory that is not writable (skipped as root, who writes
	 * anyway). */
	if (geteuid() != 0) {
		assert_int_equal(chmod(d.path, 0500), 0);
		assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), -EACCES);
		assert_int_equal(chmod(d.path, 0700), 0);
		after = slurp(d.file, &len2);
		assert_memory_equal(before, after, len1);
		free(after);
	}
	/* No such directory. */
	snprintf(path, sizeof path, "%s/none/fleet", d.path);
	assert_int_equal(fleet_save(&s, 0, path, &n, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "cannot create"));

	/* And the next save goes through, replacing the file. */
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	assert_int_equal(n, 9);
	assert_int_equal(load_fresh(d.file, 0, &n, err, sizeof err), 0);
	assert_int_equal(n, 9);
	free(before);
	fleet_store_fini(&s);
	dir_remove(&d);
}

static void a_load_into_a_full_store_says_so_and_keeps_what_fit(void **state)
{
	(void)state;
	struct fleet_store s, t;
	struct dir d;
	uint64_t n;
	char err[256];

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, 100, 1, 16 * 1024 * KIB), 0);
	make_fleet(&s, 20);
	assert_int_equal(fleet_save(&s, 0, d.file, &n, err, sizeof err), 0);
	assert_int_equal(fleet_store_init(&t, 12, 1, 16 * 1024 * KIB), 0);
	assert_int_equal(fleet_load(&t, 0, d.file, 0, &n, err, sizeof err), -ENOSPC);
	assert_int_equal(n, 12);
	assert_int_equal(fleet_agent_count(&t), 12);
	assert_non_null(strstr(err, "record 13 of 20"));
	assert_non_null(strstr(err, "--fleet-max-agents"));
	fleet_store_fini(&s);
	fleet_store_fini(&t);
	dir_remove(&d);
}

/* Records start online; a save or a load with the thread's own record
 * must leave it offline, or every worker's replaced blocks would wait for
 * it for good: in one chunk of 16 KiB blocks, worker 0 could then replace
 * its agent's report only 11 times. */
static void save_and_load_leave_their_record_offline_holding_nothing_back(void **state)
{
	(void)state;
	struct dir d;
	char err[256];
	uint64_t n;

	dir_make(&d);
	for (int load = 0; load < 2; load++) {
		struct fleet_store s;
		assert_int_equal(fleet_store_init(&s, 16, 2, FLEET_CHUNK), 0);
		assert_int_equal(put_at(&s, 0, "o", "a", 16000, 1, 0, T0), 0);
		if (load)
			assert_int_equal(fleet_load(&s, 1, d.file, 0, &n, err, sizeof err), 0);
		else
			assert_int_equal(fleet_save(&s, 1, d.file, &n, err, sizeof err), 0);
		assert_int_equal(n, 1 - load); /* the load finds the agent as new already */
		for (unsigned v = 1; v <= 100; v++) {
			assert_int_equal(put_at(&s, 0, "o", "a", 16000, 1, v, T0 + v), 0);
			fleet_quiescent(&s, 0);
		}
		assert_true(holds(get(&s, 0, "o", "a"), 16000, 1, 100));
		fleet_store_fini(&s);
	}
	dir_remove(&d);
}

/* ---- saving while workers publish ---------------------------------- */

#define LIVE_AGENTS 200

struct live {
	struct fleet_store *s;
	uint32_t worker;
	_Atomic bool *stop;
	unsigned failed;    /* refused for any reason but a full memory */
	unsigned published;
};

static void *live_publish(void *arg)
{
	struct live *l = arg;
	unsigned char blob[100 + LIVE_AGENTS]; /* put_at's buffer is not ours to share */
	char id[32];

	for (unsigned v = 2; !atomic_load(l->stop); v++) {
		for (unsigned i = l->worker; i < LIVE_AGENTS; i += 2) {
			int n = snprintf(id, sizeof id, "agent-%u", i);
			fill(blob, 100 + i, i, v);
			/* -ENOSPC is the 503 of a memory full of retired
			 * blobs: a save holds them for as long as it runs,
			 * which on a loaded machine is long. */
			int r = fleet_publish(l->s, l->worker, "org", 3, id, (size_t)n, blob,
					      100 + i, T0 + v);
			if (r == 0)
				l->published++;
			else if (r != -ENOSPC)
				l->failed++;
		}
		fleet_quiescent(l->s, l->worker);
	}
	fleet_offline(l->s, l->worker);
	return NULL;
}

/* Two workers replace every agent's report over and over while a third
 * record (the main thread's) saves: each file holds every agent once,
 * whole. */
static void a_save_while_workers_publish_holds_every_agent_once(void **state)
{
	(void)state;
	struct fleet_store s, t;
	struct dir d;
	pthread_t th[2];
	struct live l[2];
	_Atomic bool stop = false;
	uint64_t n;
	char err[256], id[32];

	dir_make(&d);
	assert_int_equal(fleet_store_init(&s, LIVE_AGENTS, 3, 64 * 1024 * KIB), 0);
	fleet_offline(&s, 2); /* the saver's record, offline until it saves */
	for (unsigned i = 0; i < LIVE_AGENTS; i++) {
		snprintf(id, sizeof id, "agent-%u", i);
		assert_int_equal(put_at(&s, i % 2, "org", id, 100 + i, i, 1, T0 + 1), 0);
	}
	for (uint32_t w = 0; w < 2; w++) {
		l[w] = (struct live){&s, w, &stop, 0, 0};
		assert_int_equal(pthread_create(&th[w], NULL, live_publish, &l[w]), 0);
	}
	for (int round = 0; round < 10; round++) {
		assert_int_equal(fleet_save(&s, 2, d.file, &n, err, sizeof err), 0);
		assert_int_equal(n, LIVE_AGENTS);
		assert_int_equal(fleet_store_init(&t, LIVE_AGENTS, 1, 16 * 1024 * KIB), 0);
		assert_int_equal(fleet_load(&t, 0, d.file, 0, &n, err, sizeof err), 0);
		assert_int_equal(n, LIVE_AGENTS);
		for (unsigned i = 0; i < LIVE_AGENTS; i++) {
			snprintf(id, sizeof id, "agent-%u", i);
			const struct fleet_snapshot *p = get(&t, 0, "org", id);
			assert_non_null(p);
			assert_true(holds(p, 100 + i, i, (unsigned)(p->received_ms - T0)));
		}
		fleet_store_fini(&t);
	}
	atomic_store(&stop, true);
	for (uint32_t w = 0; w < 2; w++) {
		pthread_join(th[w], NULL);
		assert_int_equal(l[w].failed, 0);
		assert_true(l[w].published > 0);
	}
	fleet_store_fini(&s);
	dir_remove(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(save_then_load_into_a_fresh_store_gives_the_same_agents_blobs_and_times),
		cmocka_unit_test(a_missing_file_loads_no_agents),
		cmocka_unit_test(an_empty_store_saves_a_header_that_loads_no_agents),
		cmocka_unit_test(a_truncated_file_is_refused_and_keeps_the_records_before_the_cut),
		cmocka_unit_test(any_flipped_bit_is_refused),
		cmocka_unit_test(a_wrong_magic_or_version_is_refused),
		cmocka_unit_test(agents_older_than_forget_before_are_skipped),
		cmocka_unit_test(the_documented_format_loads_and_the_newest_record_of_an_agent_wins),
		cmocka_unit_test(a_failed_save_leaves_the_previous_file),
		cmocka_unit_test(a_load_into_a_full_store_says_so_and_keeps_what_fit),
		cmocka_unit_test(save_and_load_leave_their_record_offline_holding_nothing_back),
		cmocka_unit_test(a_save_while_workers_publish_holds_every_agent_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
