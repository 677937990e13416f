/*
 * The analytics flusher (include/ringside/analytics_flusher.h).
 *
 * Its connection is a side session (include/ringside/side_session.h), as
 * the revocation sync's is: every wait a poll(2) under a deadline, so a database that stops answering costs
 * a query deadline, never a hung thread or a slow shutdown. Any failure
 * (connect, SQL error, deadline, lost socket) drops the connection and
 * starts again from the connect.
 *
 * Exactly once: a batch's rollup upserts and the new read position of
 * every stream it read go to PostgreSQL in ONE statement (data-modifying
 * CTEs: one implicit transaction, one round trip). A session begins by
 * reading the positions back from the database and opening the readers
 * there, so whatever happened to the last commit (done, rolled back, or
 * unknown because the socket died before its answer) the next batch
 * starts right after what the rollups hold. Segments are pruned only
 * behind a committed position.
 */
#include "ringside/analytics_flusher.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ringside/analytics_journal.h"
#include "ringside/db.h"
#include "ringside/log.h"
#include "ringside/side_session.h"
#include "ringside/siphash.h"

#define CONNECT_TIMEOUT_MS 5000
/* A batch (up to --analytics-batch rows upserted in three tables) that
 * has not ended in this long means the connection is useless: drop it.
 * The server-side statement_timeout is shorter, so a slow statement ends
 * there first, cleanly. */
#define QUERY_TIMEOUT_MS 60000
/* synchronous_commit on whatever the server's default: a batch's commit
 * lets its journal segments be deleted, so it must survive a crash of
 * PostgreSQL (an asynchronous commit acknowledged and then lost would
 * lose the events with it). */
#define SESSION_SQL                                                                            \
	"SET statement_timeout = 50000; SET TimeZone = 'UTC'; SET synchronous_commit = on"
/* A journal bound to another database: nothing will change that soon
 * (an operator must move the directory), so ask again rarely. */
#define REFUSED_RETRY_MS 30000
/* Retention: every hour; each run deletes at most RETENTION_ROUNDS
 * statements of RETENTION_BATCH rows per table (each holds its row locks
 * for one small batch), and comes back after the next batch when it
 * could not finish. */
#define RETENTION_EVERY_MS (3600 * 1000)
#define RETENTION_BATCH 5000
#define RETENTION_BATCH_SQL "5000" /* RETENTION_BATCH, as SQL text */
#define RETENTION_ROUNDS 10
/* Streams (workers) one directory may hold. */
#define STREAMS_MAX 1024

#define SQL_META "SELECT database_id::text FROM ringside_meta"
#define SQL_APPLIED                                                                            \
	"SELECT worker, seq, byte_offset FROM analytics_journal_applied WHERE instance_id = $1"

/*
 * One batch: $1..$6 the rows summed per (organization, UTC hour, agent)
 * as parallel arrays (hour in epoch seconds, last activity in epoch ms),
 * $7 this instance, $8..$10 the new position of every stream read. The
 * org and month rollups are summed from the same rows. ORDER BY: two
 * instances upserting the same keys take their row locks in one order,
 * so they wait for each other instead of deadlocking.
 */
#define SQL_BATCH                                                                              \
	"WITH r AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], " \
	"$5::bigint[], $6::bigint[]) AS r(org, hour_s, agent, tokens, calls, last_ms)), "      \
	"ah AS (INSERT INTO analytics_agent_hourly AS t (organization_id, hour, agent_id, "    \
	"tokens_issued, api_calls, last_active_at) "                                           \
	"SELECT org, to_timestamp(hour_s), agent, tokens, calls, "                             \
	"timestamptz 'epoch' + last_ms * interval '1 millisecond' FROM r "                     \
	"ORDER BY org, hour_s, agent "                                                         \
	"ON CONFLICT (organization_id, hour, agent_id) DO UPDATE SET "                         \
	"tokens_issued = t.tokens_issued + excluded.tokens_issued, "                           \
	"api_calls = t.api_calls + excluded.api_calls, "                                       \
	"last_active_at = greatest(t.last_active_at, excluded.last_active_at)), "              \
	"oh AS (INSERT INTO analytics_org_hourly AS t (organization_id, hour, tokens_issued, " \
	"api_calls) "                                                                          \
	"SELECT org, to_timestamp(hour_s), sum(tokens), sum(calls) FROM r "                    \
	"GROUP BY org, hour_s ORDER BY org, hour_s "                                           \
	"ON CONFLICT (organization_id, hour) DO UPDATE SET "                                   \
	"tokens_issued = t.tokens_issued + excluded.tokens_issued, "                           \
	"api_calls = t.api_calls + excluded.api_calls), "                                      \
	"am AS (INSERT INTO analytics_agent_monthly AS t (organization_id, month, agent_id, "  \
	"tokens_issued, api_calls, last_active_at) "                                           \
	"SELECT org, m, agent, sum(tokens), sum(calls), "                                      \
	"timestamptz 'epoch' + max(last_ms) * interval '1 millisecond' "                       \
	"FROM (SELECT org, date_trunc('month', to_timestamp(hour_s) AT TIME ZONE 'UTC')::date " \
	"AS m, agent, tokens, calls, last_ms FROM r) mr "                                      \
	"GROUP BY org, m, agent ORDER BY org, m, agent "                                       \
	"ON CONFLICT (organization_id, month, agent_id) DO UPDATE SET "                        \
	"tokens_issued = t.tokens_issued + excluded.tokens_issued, "                           \
	"api_calls = t.api_calls + excluded.api_calls, "                                       \
	"last_active_at = greatest(t.last_active_at, excluded.last_active_at)) "               \
	"INSERT INTO analytics_journal_applied AS t (instance_id, worker, seq, byte_offset) "  \
	"SELECT $7::uuid, w, s, o FROM unnest($8::int[], $9::bigint[], $10::bigint[]) "        \
	"AS p(w, s, o) ORDER BY w "                                                            \
	"ON CONFLICT (instance_id, worker) DO UPDATE SET seq = excluded.seq, "                 \
	"byte_offset = excluded.byte_offset, updated_at = now()"
#define BATCH_PARAMS 10

/* Retention ($1: days kept, the margin included). SKIP LOCKED: instances
 * purging at once take different rows. */
#define SQL_PURGE_AGENT_HOURLY                                                                 \
	"DELETE FROM analytics_agent_hourly WHERE ctid = ANY(ARRAY(SELECT ctid FROM "          \
	"analytics_agent_hourly WHERE hour < now() - $1::int * interval '1 day' LIMIT "        \
	RETENTION_BATCH_SQL " FOR UPDATE SKIP LOCKED))"
#define SQL_PURGE_ORG_HOURLY                                                                   \
	"DELETE FROM analytics_org_hourly WHERE ctid = ANY(ARRAY(SELECT ctid FROM "            \
	"analytics_org_hourly WHERE hour < now() - $1::int * interval '1 day' LIMIT "          \
	RETENTION_BATCH_SQL " FOR UPDATE SKIP LOCKED))"
#define SQL_PURGE_MONTHLY                                                                      \
	"DELETE FROM analytics_agent_monthly WHERE ctid = ANY(ARRAY(SELECT ctid FROM "         \
	"analytics_agent_monthly WHERE month < (date_trunc('month', now() AT TIME ZONE 'UTC') " \
	"- interval '13 months')::date LIMIT " RETENTION_BATCH_SQL " FOR UPDATE SKIP LOCKED))"

/* One (organization, agent, UTC hour) of a batch: 176 bytes. */
struct agg {
	uint64_t hash;
	int64_t hour_s;
	int64_t last_ms;
	int64_t tokens, calls;
	uint8_t org_len, agent_len;
	char org[JOURNAL_ID_MAX + 1];
	char agent[JOURNAL_ID_MAX + 1];
};

struct stream {
	uint32_t worker;
	struct journal_reader *reader; /* NULL until opened this session */
	struct journal_pos committed;  /* what the database holds */
	struct journal_pos read;       /* past the last event of this batch */
	bool touched;                  /* read moved this batch */
	bool at_end;                   /* journal_next said 0 this batch */
};

struct analytics_flusher {
	char *dir;
	uint32_t interval_ms;
	uint32_t batch_events;
	uint32_t retention_days;
	int wake_fd;  /* drain: look now */
	pthread_t thread;
	char instance_id[37];

	struct side_session db; /* the thread's own, but for stop and `up` */

	/* The thread's own. */
	bool refused;       /* the last session found the journal bound elsewhere */
	bool refused_logged; /* said since the last successful bind */
	int64_t retention_due;
	uint64_t skipped;   /* events whose ids PostgreSQL's text cannot hold */

	struct stream *streams;
	uint32_t nstreams;
	uint32_t *list;     /* journal_list_workers' output, STREAMS_MAX */

	/* The batch: an open-addressing table of indexes (+1; 0 empty) into
	 * aggs, twice the batch size so probes stay short. */
	struct agg *aggs;
	uint32_t naggs;
	uint32_t *slots;
	uint32_t slot_mask;
	uint64_t hash_key[2];

	/* The batch's text parameters, sized for a full batch at start. */
	char *p_org, *p_hour, *p_agent, *p_tokens, *p_calls, *p_last;
	char *p_worker, *p_seq, *p_off;
	size_t id_cap, num_cap, pos_cap;

	_Atomic uint64_t events_applied, batches, backlog_bytes;
	/* drain(): a ticket taken by the caller; the thread publishes the
	 * ticket it read before a batch that reached the end of every
	 * stream and committed. */
	_Atomic uint64_t drain_req, drain_done;
};

static void bump(_Atomic uint64_t *c, uint64_t v)
{
	/* One writer (this thread): no RMW needed. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* ---- Files: the directory's identity ---- */

static bool is_uuid(const char *s, size_t len)
{
	if (len != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = s[i];
		if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

/* Reads dir/name into out (a uuid, one line). 0, -ENOENT, or another
 * negative errno (-EINVAL: not a uuid). */
static int read_id_file(const char *dir, const char *name, char out[37])
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	if (!is_uuid(buf, (size_t)n))
		return -EINVAL;
	memcpy(out, buf, 36);
	out[36] = '\0';
	return 0;
}

/* Writes dir/name holding id, atomically and durably: a temporary file,
 * fsync, rename, fsync of the directory (a crash leaves the old state or
 * the new, never a torn id). */
static int write_id_file(const char *dir, const char *name, const char *id)
{
	char path[4096], tmp[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	char line[40];
	int len = snprintf(line, sizeof line, "%s\n", id);
	int err = 0;
	if (write(fd, line, (size_t)len) != len)
		err = errno ? -errno : -EIO;
	else if (fsync(fd))
		err = -errno;
	close(fd);
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd))
			err = -errno;
		close(dfd);
	}
	return err;
}

/* dir/instance-id: read, or made once (a random v4 uuid). */
static int instance_id(const char *dir, char out[37])
{
	int r = read_id_file(dir, "instance-id", out);
	if (r != -ENOENT)
		return r;
	uint8_t b[16];
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		return -errno;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
	return write_id_file(dir, "instance-id", out);
}

/* ---- Waiting and libpq ---- */

static void close_readers(struct analytics_flusher *f)
{
	for (uint32_t i = 0; i < f->nstreams; i++) {
		if (f->streams[i].reader)
			journal_reader_close(f->streams[i].reader);
		f->streams[i].reader = NULL;
	}
}

static void disconnect(struct analytics_flusher *f)
{
	side_session_disconnect(&f->db);
	/* What was read and not committed is read again next session, from
	 * the positions the database holds then (session() reloads them).
	 * The last committed ones stay meanwhile, for backlog_bytes. */
	close_readers(f);
}

/* What a query's rows are for. */
enum rows_use { ROWS_NONE, ROWS_META, ROWS_APPLIED };

struct rows {
	struct analytics_flusher *f;
	enum rows_use use;
	char database_id[37]; /* ROWS_META: "" if none */
	uint64_t affected;    /* the last command's row count */
};

static struct stream *stream_find(struct analytics_flusher *f, uint32_t worker)
{
	for (uint32_t i = 0; i < f->nstreams; i++)
		if (f->streams[i].worker == worker)
			return &f->streams[i];
	return NULL;
}

static struct stream *stream_add(struct analytics_flusher *f, uint32_t worker)
{
	struct stream *s = stream_find(f, worker);
	if (s || f->nstreams == STREAMS_MAX)
		return s;
	s = &f->streams[f->nstreams++];
	memset(s, 0, sizeof *s);
	s->worker = worker;
	return s;
}

static void take_row(void *arg, const PGresult *res, int i)
{
	struct rows *out = arg;
	struct analytics_flusher *f = out->f;
	if (out->use == ROWS_META) {
		if (PQnfields(res) >= 1 && !PQgetisnull(res, i, 0) &&
		    is_uuid(PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0)))
			memcpy(out->database_id, PQgetvalue(res, i, 0), 37);
	} else if (out->use == ROWS_APPLIED && PQnfields(res) >= 3) {
		long long w = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		long long seq = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		long long off = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		if (w < 0 || w > UINT32_MAX || seq < 0 || off < 0)
			return;
		struct stream *s = stream_add(f, (uint32_t)w);
		if (s)
			s->committed = s->read =
				(struct journal_pos){.seq = (uint64_t)seq, .offset = (uint64_t)off};
	}
}

/*
 * Runs sql (text parameters, or several statements when nparams is 0) to
 * its end, rows to `out` (may be NULL; out->f is set here). Returns 0,
 * or <0 with f->db.error set (the connection is then to be dropped) or
 * -ECANCELED (stop).
 */
static int run(struct analytics_flusher *f, const char *sql, int nparams,
	       const char *const *values, struct rows *out)
{
	struct side_query q = {.sql = sql, .nparams = nparams, .values = values};
	if (out) {
		out->f = f;
		q.row = take_row;
		q.arg = out;
	}
	int r = side_session_run(&f->db, &q);
	if (out)
		out->affected = q.affected;
	return r;
}

/* ---- The directory's streams ---- */

/* Parses "w<worker>-<seq>.journal". */
static bool segment_name(const char *name, uint32_t *worker, uint64_t *seq)
{
	if (name[0] != 'w')
		return false;
	char *end;
	errno = 0;
	unsigned long long w = strtoull(name + 1, &end, 10);
	if (end == name + 1 || *end != '-' || errno || w > UINT32_MAX)
		return false;
	const char *s = end + 1;
	unsigned long long q = strtoull(s, &end, 10);
	if (end == s || errno || strcmp(end, ".journal"))
		return false;
	*worker = (uint32_t)w;
	*seq = q;
	return true;
}

/* Bytes in the journal beyond the committed positions (a stream the
 * database has no position for counts whole). */
static uint64_t backlog(struct analytics_flusher *f)
{
	DIR *d = opendir(f->dir);
	if (!d)
		return 0;
	uint64_t total = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint32_t w;
		uint64_t seq;
		struct stat st;
		if (!segment_name(e->d_name, &w, &seq) ||
		    fstatat(dirfd(d), e->d_name, &st, 0) || st.st_size < 0)
			continue;
		const struct stream *s = stream_find(f, w);
		struct journal_pos c = s ? s->committed : (struct journal_pos){0, 0};
		if (seq > c.seq)
			total += (uint64_t)st.st_size;
		else if (seq == c.seq && (uint64_t)st.st_size > c.offset)
			total += (uint64_t)st.st_size - c.offset;
	}
	closedir(d);
	return total;
}

/* Every stream in the directory, with a reader open at its position.
 * 0, or <0 (f->db.error). */
static int open_streams(struct analytics_flusher *f)
{
	uint32_t n = journal_list_workers(f->dir, f->list, STREAMS_MAX);
	for (uint32_t i = 0; i < n && i < STREAMS_MAX; i++) {
		struct stream *s = stream_add(f, f->list[i]);
		if (!s) {
			side_session_set_error(&f->db, "journal", "more than 1024 streams");
			return -ENOSPC;
		}
		if (s->reader)
			continue;
		int r = journal_reader_open(&s->reader, f->dir, s->worker, s->committed);
		if (r < 0) {
			s->reader = NULL;
			char what[64];
			snprintf(what, sizeof what, "open stream w%u at %llu/%llu", s->worker,
				 (unsigned long long)s->committed.seq,
				 (unsigned long long)s->committed.offset);
			side_session_set_error(&f->db, what, strerror(-r));
			return r;
		}
		s->read = s->committed;
	}
	return 0;
}

/* ---- A batch ---- */

/* PostgreSQL's text holds UTF-8 without NUL: anything else would fail
 * the whole batch, for ever. */
static bool utf8_ok(const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s, *end = p + len;
	while (p < end) {
		uint8_t c = *p;
		size_t n;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += n + 1;
	}
	return true;
}

/* 9999-12-31T23:59:59.999Z: far inside timestamptz's range, so no
 * event's time can make the batch's statement fail. */
#define MS_MAX 253402300799999LL

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Adds one event to the batch's table; false if it cannot be counted. */
static bool aggregate(struct analytics_flusher *f, const struct journal_event *ev)
{
	if ((ev->kind != JOURNAL_TOKEN_ISSUED && ev->kind != JOURNAL_API_CALL) ||
	    !ev->org_len || ev->org_len > JOURNAL_ID_MAX || !ev->agent_len ||
	    ev->agent_len > JOURNAL_ID_MAX || !utf8_ok(ev->org, ev->org_len) ||
	    !utf8_ok(ev->agent, ev->agent_len) || ev->unix_ms < 0 || ev->unix_ms > MS_MAX)
		return false;
	int64_t hour_s = floor_div(ev->unix_ms, 3600000) * 3600;
	/* The key, hashed as one message: hour, lengths, then the ids. */
	uint8_t key[8 + 2 + 2 * JOURNAL_ID_MAX];
	memcpy(key, &hour_s, 8);
	key[8] = ev->org_len;
	key[9] = ev->agent_len;
	memcpy(key + 10, ev->org, ev->org_len);
	memcpy(key + 10 + ev->org_len, ev->agent, ev->agent_len);
	uint64_t h = siphash13(f->hash_key, key, 10u + ev->org_len + ev->agent_len);
	for (uint32_t i = (uint32_t)h & f->slot_mask;; i = (i + 1) & f->slot_mask) {
		uint32_t slot = f->slots[i];
		if (!slot) {
			/* At most one new row per event, and the table has room
			 * for twice the batch: a free slot is always found. */
			struct agg *a = &f->aggs[f->naggs];
			a->hash = h;
			a->hour_s = hour_s;
			a->last_ms = ev->unix_ms;
			a->tokens = ev->kind == JOURNAL_TOKEN_ISSUED;
			a->calls = ev->kind == JOURNAL_API_CALL;
			a->org_len = ev->org_len;
			a->agent_len = ev->agent_len;
			memcpy(a->org, ev->org, ev->org_len);
			memcpy(a->agent, ev->agent, ev->agent_len);
			f->slots[i] = ++f->naggs;
			return true;
		}
		struct agg *a = &f->aggs[slot - 1];
		if (a->hash == h && a->hour_s == hour_s && a->org_len == ev->org_len &&
		    a->agent_len == ev->agent_len && !memcmp(a->org, ev->org, ev->org_len) &&
		    !memcmp(a->agent, ev->agent, ev->agent_len)) {
			a->tokens += ev->kind == JOURNAL_TOKEN_ISSUED;
			a->calls += ev->kind == JOURNAL_API_CALL;
			if (ev->unix_ms > a->last_ms)
				a->last_ms = ev->unix_ms;
			return true;
		}
	}
}

/* Array literals ('{...}'): the caller sized the buffer for the worst
 * case at start, so these never check. */
static char *put_id(char *p, const char *s, size_t len)
{
	*p++ = '"';
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			*p++ = '\\';
		*p++ = s[i];
	}
	*p++ = '"';
	return p;
}

static char *put_i64(char *p, int64_t v)
{
	char tmp[24];
	int n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10));
	if (v < 0)
		*p++ = '-';
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* Worst case per element, separator included. */
#define ID_TEXT_MAX (2 * JOURNAL_ID_MAX + 3)
#define NUM_TEXT_MAX 21

/* Fills the ten parameters from the table and the streams touched. */
static void batch_params(struct analytics_flusher *f, const char *values[BATCH_PARAMS])
{
	char *org = f->p_org, *hour = f->p_hour, *agent = f->p_agent, *tok = f->p_tokens,
	     *calls = f->p_calls, *last = f->p_last;
	*org++ = *hour++ = *agent++ = *tok++ = *calls++ = *last++ = '{';
	for (uint32_t i = 0; i < f->naggs; i++) {
		const struct agg *a = &f->aggs[i];
		if (i)
			*org++ = *hour++ = *agent++ = *tok++ = *calls++ = *last++ = ',';
		org = put_id(org, a->org, a->org_len);
		agent = put_id(agent, a->agent, a->agent_len);
		hour = put_i64(hour, a->hour_s);
		tok = put_i64(tok, a->tokens);
		calls = put_i64(calls, a->calls);
		last = put_i64(last, a->last_ms);
	}
	*org++ = *hour++ = *agent++ = *tok++ = *calls++ = *last++ = '}';
	*org = *hour = *agent = *tok = *calls = *last = '\0';

	char *w = f->p_worker, *seq = f->p_seq, *off = f->p_off;
	*w++ = *seq++ = *off++ = '{';
	bool first = true;
	for (uint32_t i = 0; i < f->nstreams; i++) {
		const struct stream *s = &f->streams[i];
		if (!s->touched)
			continue;
		if (!first)
			*w++ = *seq++ = *off++ = ',';
		first = false;
		w = put_i64(w, s->worker);
		seq = put_i64(seq, (int64_t)s->read.seq);
		off = put_i64(off, (int64_t)s->read.offset);
	}
	*w++ = *seq++ = *off++ = '}';
	*w = *seq = *off = '\0';

	values[0] = f->p_org;
	values[1] = f->p_hour;
	values[2] = f->p_agent;
	values[3] = f->p_tokens;
	values[4] = f->p_calls;
	values[5] = f->p_last;
	values[6] = f->instance_id;
	values[7] = f->p_worker;
	values[8] = f->p_seq;
	values[9] = f->p_off;
}

/*
 * Reads up to batch_events events across the streams (each from where
 * the last left off, taking turns from `first`) and commits them with
 * the new positions. *complete: every stream was read to its end.
 * 0, or <0 (f->db.error; the session ends and the next one reads again
 * from what the database holds).
 */
static int batch(struct analytics_flusher *f, uint32_t first, bool *complete, uint32_t *read_n)
{
	f->naggs = 0;
	memset(f->slots, 0, ((size_t)f->slot_mask + 1) * sizeof *f->slots);
	uint32_t n = 0, counted = 0;
	bool all_end = true;
	for (uint32_t k = 0; k < f->nstreams; k++) {
		struct stream *s = &f->streams[(first + k) % f->nstreams];
		s->touched = false;
		s->at_end = false;
		if (!s->reader) {
			/* In the database, not in the directory (yet). */
			continue;
		}
		while (n < f->batch_events) {
			struct journal_event ev;
			struct journal_pos pos;
			int r = journal_next(s->reader, &ev, &pos);
			if (r < 0) {
				char what[48];
				snprintf(what, sizeof what, "read stream w%u", s->worker);
				side_session_set_error(&f->db, what, strerror(-r));
				return r;
			}
			if (r == 0) {
				s->at_end = true;
				break;
			}
			n++;
			s->read = pos;
			s->touched = true;
			if (aggregate(f, &ev)) {
				counted++;
			} else {
				uint64_t k2 = ++f->skipped;
				if (!(k2 & (k2 - 1)))
					log_warn("analytics event skipped",
						 "worker=%u skipped=%llu hint=\"an id not UTF-8, "
						 "a time before 1970 or after 9999, or an unknown "
						 "kind\"", s->worker, (unsigned long long)k2);
			}
		}
		if (!s->at_end)
			all_end = false;
	}
	*complete = all_end;
	*read_n = n;
	if (!n)
		return 0;
	const char *values[BATCH_PARAMS];
	batch_params(f, values);
	int r = run(f, SQL_BATCH, BATCH_PARAMS, values, NULL);
	if (r < 0)
		return r;
	/* Committed: only now do the positions move, and segments behind
	 * them go. */
	for (uint32_t i = 0; i < f->nstreams; i++) {
		struct stream *s = &f->streams[i];
		if (!s->touched)
			continue;
		s->committed = s->read;
		int p = journal_prune(f->dir, s->worker, s->committed);
		if (p < 0)
			log_warn("analytics journal prune failed", "worker=%u errno=%d", s->worker,
				 -p);
	}
	bump(&f->events_applied, counted);
	bump(&f->batches, 1);
	return 0;
}

/* Deletes rollup rows past retention, a bounded amount; schedules the
 * next run. 0 or <0. */
static int retention(struct analytics_flusher *f)
{
	static const char *const sqls[] = {SQL_PURGE_AGENT_HOURLY, SQL_PURGE_ORG_HOURLY,
					   SQL_PURGE_MONTHLY};
	char days[16];
	snprintf(days, sizeof days, "%u", f->retention_days + 1); /* a day's margin */
	const char *values[1] = {days};
	bool more = false;
	for (size_t t = 0; t < sizeof sqls / sizeof *sqls; t++) {
		int nparams = t < 2 ? 1 : 0;
		for (int round = 0;; round++) {
			struct rows rows = {.use = ROWS_NONE};
			/* The monthly one has no parameter: a plain query. */
			int r = nparams ? run(f, sqls[t], 1, values, &rows)
					: run(f, sqls[t], 0, NULL, &rows);
			if (r < 0)
				return r;
			if (rows.affected)
				log_debug("analytics rows past retention deleted", "rows=%llu",
					  (unsigned long long)rows.affected);
			if (rows.affected < RETENTION_BATCH)
				break;
			if (round + 1 == RETENTION_ROUNDS) {
				more = true;
				break;
			}
		}
	}
	f->retention_due = side_session_now_ms() + (more ? 0 : RETENTION_EVERY_MS);
	return 0;
}

/* ---- The session ---- */

/* Binds the directory to the database (dir/database-id), or refuses one
 * bound to another. 0, or <0 (-EPERM: refused; f->db.error). */
static int bind_dir(struct analytics_flusher *f, const char *db_id)
{
	char held[37];
	int r = read_id_file(f->dir, "database-id", held);
	if (r == -ENOENT) {
		r = write_id_file(f->dir, "database-id", db_id);
		if (r < 0) {
			side_session_set_error(&f->db, "write database-id", strerror(-r));
			return r;
		}
		log_info("analytics journal bound to its database", "database_id=%s", db_id);
		return 0;
	}
	if (r < 0) {
		side_session_set_error(&f->db, "read database-id", strerror(-r));
		return r;
	}
	if (strcmp(held, db_id)) {
		snprintf(f->db.error, sizeof f->db.error,
			 "the journal belongs to database %s, this is %s", held, db_id);
		if (!f->refused_logged)
			log_error("analytics journal refused: it belongs to another database",
				  "journal_database_id=%s database_id=%s hint=\"point "
				  "--analytics-journal at a directory of this database's (the "
				  "events there count only in theirs)\"",
				  held, db_id);
		f->refused = f->refused_logged = true;
		return -EPERM;
	}
	return 0;
}

/* One session: connect, bind, read the positions, then batches until a
 * failure (<0 with f->db.error) or the stop (-ECANCELED). */
static int session(struct analytics_flusher *f)
{
	int r;
	struct rows meta = {.use = ROWS_META};
	f->refused = false;
	if ((r = side_session_connect(&f->db)) < 0 || (r = run(f, SESSION_SQL, 0, NULL, NULL)) < 0 ||
	    (r = run(f, SQL_META, 0, NULL, &meta)) < 0)
		return r;
	if (!meta.database_id[0]) {
		side_session_set_error(&f->db, "ringside_meta", "no database_id (migrations not applied?)");
		return -EIO;
	}
	if ((r = bind_dir(f, meta.database_id)) < 0)
		return r;
	f->refused_logged = false;
	f->nstreams = 0; /* the database's positions, and only those */
	struct rows applied = {.use = ROWS_APPLIED};
	const char *iv[1] = {f->instance_id};
	if ((r = run(f, SQL_APPLIED, 1, iv, &applied)) < 0 || (r = open_streams(f)) < 0)
		return r;
	side_session_log_up(&f->db, "streams=%u", f->nstreams);
	uint32_t turn = 0;
	for (;;) {
		if (side_session_now_ms() >= f->retention_due && (r = retention(f)) < 0)
			return r;
		/* Acquire: the caller wrote its ticket after what it waits for
		 * was flushed; reading the streams after this load sees it. */
		uint64_t ticket = atomic_load_explicit(&f->drain_req, memory_order_acquire);
		bool complete;
		uint32_t n;
		if ((r = open_streams(f)) < 0 || (r = batch(f, turn++, &complete, &n)) < 0)
			return r;
		atomic_store_explicit(&f->backlog_bytes, backlog(f), memory_order_relaxed);
		if (complete)
			atomic_store_explicit(&f->drain_done, ticket, memory_order_release);
		if (!complete) {
			/* More backlog: the next batch at once (a stop is
			 * still seen: the wait polls the stop eventfd). */
			if ((r = side_session_wait(&f->db, -1, 0, 0, -1)) < 0)
				return r;
			continue;
		}
		/* Idle: the socket is watched too, so a server that goes
		 * away is noticed (and "up" cleared) at once. */
		r = side_session_wait(&f->db, PQsocket(f->db.pg), POLLIN,
				      side_session_now_ms() + f->interval_ms, f->wake_fd);
		if (r < 0)
			return r;
		if (r == 1 && (!PQconsumeInput(f->db.pg) || PQstatus(f->db.pg) == CONNECTION_BAD)) {
			side_session_set_error(&f->db, "idle", PQerrorMessage(f->db.pg));
			return -EIO;
		}
		if (r == 1) {
			/* A notice, or the error a closing server sends: read
			 * it out so the next poll does not spin on it. */
			PGresult *res;
			while (!PQisBusy(f->db.pg) && (res = PQgetResult(f->db.pg)))
				PQclear(res);
		}
	}
}

/* The side session's backoff; a journal bound elsewhere (refused, said
 * by bind_dir) waits REFUSED_RETRY_MS instead, without "down". */
static int back_off(struct analytics_flusher *f)
{
	/* The journal grows while the database is away: say by how much. */
	atomic_store_explicit(&f->backlog_bytes, backlog(f), memory_order_relaxed);
	return side_session_back_off(&f->db, f->refused, f->refused ? REFUSED_RETRY_MS : 0);
}

/* Below the workers: they answer requests, this only keeps the rollups
 * current, in bursts (a batch read, summed, sent) that would otherwise
 * take their CPU for a millisecond or two and show in their p99. At nice
 * 10 the scheduler still gives it about a tenth of a busy CPU, several
 * times what it needs at 100 000 events a second, so it keeps up. */
#define FLUSHER_NICE 10

static void *flusher_main(void *arg)
{
	struct analytics_flusher *f = arg;
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), FLUSHER_NICE) < 0)
		log_debug("analytics flusher: could not lower its priority", "err=\"%s\"",
			  strerror(errno));
	for (;;) {
		int r = session(f);
		disconnect(f);
		if (r == -ECANCELED || back_off(f) < 0)
			break;
	}
	return NULL;
}

/* ---- The interface ---- */

static void free_flusher(struct analytics_flusher *f)
{
	free(f->dir);
	free(f->streams);
	free(f->list);
	free(f->aggs);
	free(f->slots);
	free(f->p_org);
	free(f->p_hour);
	free(f->p_agent);
	free(f->p_tokens);
	free(f->p_calls);
	free(f->p_last);
	free(f->p_worker);
	free(f->p_seq);
	free(f->p_off);
	free(f);
}

int analytics_flusher_start(struct analytics_flusher **out,
			    const struct analytics_flusher_config *c)
{
	if (!c->url || !c->url[0] || !c->dir || !c->dir[0] || !c->interval_ms ||
	    !c->batch_events || c->batch_events > (1u << 24) || !c->hourly_retention_days) {
		log_error("analytics flusher: bad configuration",
			  "interval_ms=%u batch_events=%u hourly_retention_days=%u", c->interval_ms,
			  c->batch_events, c->hourly_retention_days);
		return -EINVAL;
	}
	struct analytics_flusher *f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	f->wake_fd = -1;
	f->interval_ms = c->interval_ms;
	f->batch_events = c->batch_events;
	f->retention_days = c->hourly_retention_days;
	uint32_t slots = 1;
	while (slots < 2 * c->batch_events)
		slots <<= 1;
	f->slot_mask = slots - 1;
	size_t b = c->batch_events;
	f->id_cap = 2 + b * ID_TEXT_MAX + 1;
	f->num_cap = 2 + b * NUM_TEXT_MAX + 1;
	f->pos_cap = 2 + STREAMS_MAX * NUM_TEXT_MAX + 1;
	const struct side_session_config db = {
		.url = c->url,
		.name = "analytics flusher",
		.down_hint = "counts wait in the journal and are applied when it is back",
		.connect_timeout_ms = CONNECT_TIMEOUT_MS,
		.query_timeout_ms = QUERY_TIMEOUT_MS,
	};
	int err = side_session_init(&f->db, &db);
	if (err < 0) {
		if (err == -ENOMEM)
			log_error("analytics flusher: out of memory", "batch_events=%u",
				  c->batch_events);
		else
			log_error("analytics flusher: eventfd failed", "errno=%d", -err);
		free_flusher(f);
		return err;
	}
	err = -ENOMEM;
	if (!(f->dir = strdup(c->dir)) ||
	    !(f->streams = calloc(STREAMS_MAX, sizeof *f->streams)) ||
	    !(f->list = calloc(STREAMS_MAX, sizeof *f->list)) ||
	    !(f->aggs = calloc(b, sizeof *f->aggs)) ||
	    !(f->slots = calloc(slots, sizeof *f->slots)) || !(f->p_org = malloc(f->id_cap)) ||
	    !(f->p_agent = malloc(f->id_cap)) || !(f->p_hour = malloc(f->num_cap)) ||
	    !(f->p_tokens = malloc(f->num_cap)) || !(f->p_calls = malloc(f->num_cap)) ||
	    !(f->p_last = malloc(f->num_cap)) || !(f->p_worker = malloc(f->pos_cap)) ||
	    !(f->p_seq = malloc(f->pos_cap)) || !(f->p_off = malloc(f->pos_cap))) {
		log_error("analytics flusher: out of memory", "batch_events=%u", c->batch_events);
		goto fail;
	}
	if ((err = instance_id(f->dir, f->instance_id)) < 0) {
		char dir[200];
		db_log_text(f->dir, dir, sizeof dir);
		log_error("analytics journal: no instance-id", "dir=\"%s\" error=\"%s\"", dir,
			  strerror(-err));
		goto fail;
	}
	if (getrandom(f->hash_key, sizeof f->hash_key, 0) != (ssize_t)sizeof f->hash_key) {
		/* ENOSYS, EINTR: the key stays as it is (what it keys is
		 * only the batch table's probe order). */
	}
	f->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->wake_fd < 0) {
		err = -errno;
		log_error("analytics flusher: eventfd failed", "errno=%d", errno);
		goto fail_fds;
	}
	/* The thread takes no signal: main's mask (blocked) is inherited. */
	if ((err = pthread_create(&f->thread, NULL, flusher_main, f)) != 0) {
		err = -err;
		log_error("analytics flusher: no thread", "errno=%d", -err);
		goto fail_fds;
	}
	*out = f;
	return 0;
fail_fds:
	if (f->wake_fd >= 0)
		close(f->wake_fd);
fail:
	side_session_fini(&f->db);
	free_flusher(f);
	return err;
}

/* give_up_when_down: stop's drain does not wait out its timeout for a
 * database that is not there (what is left stays in the journal). */
static bool drain(struct analytics_flusher *f, uint32_t timeout_ms, bool give_up_when_down)
{
	/* Release: the thread that loads the ticket (acquire) and then
	 * reads the journal sees what was flushed before this call. */
	uint64_t t = atomic_fetch_add_explicit(&f->drain_req, 1, memory_order_acq_rel) + 1;
	uint64_t one = 1;
	if (write(f->wake_fd, &one, sizeof one) != (ssize_t)sizeof one) {
		/* Only at 2^64 - 1 wake-ups unread: the thread is awake anyway. */
	}
	int64_t deadline = side_session_now_ms() + timeout_ms;
	int64_t down_since = -1;
	/* Tests and shutdown only: a short poll is simpler than a condition
	 * variable the thread would signal after every batch. */
	while (atomic_load_explicit(&f->drain_done, memory_order_acquire) < t) {
		int64_t now = side_session_now_ms();
		if (now >= deadline)
			return false;
		if (give_up_when_down) {
			/* Down for 200 ms running: not a blip between two
			 * batches, an outage. */
			if (side_session_is_up(&f->db))
				down_since = -1;
			else if (down_since < 0)
				down_since = now;
			else if (now - down_since >= 200)
				return false;
		}
		nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
	}
	return true;
}

bool analytics_flusher_drain(struct analytics_flusher *f, uint32_t timeout_ms)
{
	return drain(f, timeout_ms, false);
}

void analytics_flusher_stop(struct analytics_flusher *f, uint32_t timeout_ms)
{
	if (!f)
		return;
	if (timeout_ms && !drain(f, timeout_ms, true))
		log_warn("analytics flusher stopped with a backlog", "backlog_bytes=%llu "
			 "hint=\"it is applied at the next start\"",
			 (unsigned long long)atomic_load_explicit(&f->backlog_bytes,
								  memory_order_relaxed));
	side_session_stop(&f->db);
	pthread_join(f->thread, NULL);
	close(f->wake_fd);
	side_session_fini(&f->db);
	free_flusher(f);
}

void analytics_flusher_read_stats(const struct analytics_flusher *f,
				  struct analytics_flusher_stats *out)
{
	out->up = side_session_is_up(&f->db);
	out->events_applied = atomic_load_explicit(&f->events_applied, memory_order_relaxed);
	out->batches = atomic_load_explicit(&f->batches, memory_order_relaxed);
	out->backlog_bytes = atomic_load_explicit(&f->backlog_bytes, memory_order_relaxed);
}
