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
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ringside/analytics_journal.h"
#include "ringside/analytics_journal_dir.h"
#include "rollup_batch.h"
#include "ringside/db.h"
#include "ringside/log.h"
#include "ringside/side_session.h"

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
/* The batch's statement (rollup_batch_sql), prepared once a session. */
#define BATCH_STATEMENT "rollup_batch"

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

	struct rollup_batch batch; /* the events read, summed, as the statement's parameters */

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
		    journal_dir_is_uuid(PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0)))
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
		if (!journal_segment_name(e->d_name, &w, &seq) ||
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
/*
 * Reads up to batch_events events across the streams (each from where
 * the last left off, taking turns from `first`) and commits them with
 * the new positions. *complete: every stream was read to its end.
 * 0, or <0 (f->db.error; the session ends and the next one reads again
 * from what the database holds).
 */
static int batch(struct analytics_flusher *f, uint32_t first, bool *complete, uint32_t *read_n)
{
	rollup_batch_reset(&f->batch);
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
			if (rollup_batch_add(&f->batch, &ev)) {
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
		if (s->touched)
			rollup_batch_position(&f->batch, s->worker, s->read);
	}
	*complete = all_end;
	*read_n = n;
	if (!n)
		return 0;
	const char *values[ROLLUP_BATCH_PARAMS];
	rollup_batch_params(&f->batch, f->instance_id, values);
	struct side_query q = {.nparams = ROLLUP_BATCH_PARAMS, .values = values,
			       .name = BATCH_STATEMENT};
	int r = side_session_run(&f->db, &q);
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
	int r = journal_dir_read_id(f->dir, "database-id", held);
	if (r == -ENOENT) {
		r = journal_dir_write_id(f->dir, "database-id", db_id);
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
	struct side_query prep = {.sql = rollup_batch_sql, .nparams = ROLLUP_BATCH_PARAMS,
				  .name = BATCH_STATEMENT, .prepare = true};
	if ((r = side_session_run(&f->db, &prep)) < 0)
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
 * hold a worker's CPU for half a millisecond a flush and show in its p99
 * (measured: a nice 10 thread still ran its burst out before a woken
 * worker got the CPU). SCHED_IDLE yields at once to any other thread that
 * wakes, and still gets about 0.3 % of a CPU kept busy by the workers:
 * some 100 000 events a second at ~30 ns an event. Behind a saturated
 * server the rollups lag; the journal holds the counts meanwhile. */
static void lower_priority(void)
{
	int err = pthread_setschedparam(pthread_self(), SCHED_IDLE, &(struct sched_param){0});
	if (err && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
		log_debug("analytics flusher: could not lower its priority", "err=\"%s\"",
			  strerror(err));
}

static void *flusher_main(void *arg)
{
	struct analytics_flusher *f = arg;
	lower_priority();
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
	rollup_batch_fini(&f->batch);
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
	    rollup_batch_init(&f->batch, c->batch_events, STREAMS_MAX) < 0) {
		log_error("analytics flusher: out of memory", "batch_events=%u", c->batch_events);
		goto fail;
	}
	if ((err = journal_dir_instance_id(f->dir, f->instance_id)) < 0) {
		char dir[200];
		db_log_text(f->dir, dir, sizeof dir);
		log_error("analytics journal: no instance-id", "dir=\"%s\" error=\"%s\"", dir,
			  strerror(-err));
		goto fail;
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
	pthread_setname_np(f->thread, "ringside-flush");
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
