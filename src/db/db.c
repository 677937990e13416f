/*
 * The database thread (include/ringside/db.h; DESIGN.md "Threads").
 *
 * Workers -> thread: one bounded single-producer/single-consumer ring per
 * worker (db_submit copies the request into a slot, db_kick wakes the
 * thread when it may be asleep). Thread -> workers: the result is written
 * into the caller's db_result, `done` stored last with release order, and
 * the token posted (db_post_fn).
 *
 * The thread runs --db-connections libpq connections in non-blocking
 * pipeline mode and sleeps in poll(2) on an eventfd, their sockets and the
 * nearest deadline (reconnect backoff, connect timeout, stall guard).
 *
 * On each connection, requests are sent in groups closed by a Sync. Under
 * the extended protocol the statements of one group share one implicit
 * transaction, and an error aborts the rest of the group. So:
 *  - PING and READ statements share groups (up to GROUP_MAX): a statement
 *    aborted by another's error (PGRES_PIPELINE_ABORTED) never ran, and is
 *    sent again alone. These classes must therefore be free of side
 *    effects (db.h says so beside DB_STATEMENTS).
 *  - A WRITE is alone in its group, and is posted only when its Sync
 *    confirms the commit.
 *  - statement_timeout is set per class with a prepared SET, in a group of
 *    its own, only when the class changes: a SET inside a group that fails
 *    would be rolled back with it, while the groups sent after it still
 *    assume it.
 * One PQpipelineSync per group also means one send(2) per group: libpq 15
 * flushes at every Sync.
 *
 * A Flush message follows each query, so that the server sends each result
 * as soon as it has it instead of holding a whole group's results until the
 * Sync. Then a live server sends something at least every statement
 * timeout, and a connection silent longer than the largest timeout plus
 * GUARD_SLACK_MS while it has work is lost (a stopped server, a network
 * gone quiet): its requests fail DB_UNAVAILABLE and it reconnects.
 */
#include "db_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ringside/log.h"

const struct db_statement_def db_statements[DB_STATEMENT_COUNT] = {
#define DB_STATEMENT_DEF(name, cls, sql) {#name, cls, sql},
	DB_STATEMENTS(DB_STATEMENT_DEF)
#undef DB_STATEMENT_DEF
};

_Static_assert(DB_STATEMENT_COUNT <= DB_STATEMENTS_MAX, "DB_STATEMENTS outgrew DB_STATEMENTS_MAX");

#define CACHE_LINE 64

#define PIPE_MAX 128u     /* queries in flight on one connection */
#define GROUP_MAX 64u     /* queries under one Sync */
/* A query brings at most four more entries (the Sync closing the group
 * before it, its SET and that SET's Sync, its own Sync), and a group whose
 * queries were all sent again leaves its Sync behind: six per query in
 * flight. A connect brings a prepare and a Sync per statement. */
#define ENTRY_MAX (6u * PIPE_MAX + 2u * (DB_STATEMENTS_MAX + DB_CLASS_COUNT))
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define CONNECT_TIMEOUT_MS 5000
#define GUARD_SLACK_MS 1000u
#define QUEUE_DEPTH_MAX 65536u
#define CONNECTIONS_MAX 64u

static const char *const class_names[DB_CLASS_COUNT] = {"ping", "read", "write"};

/* One worker's queue. The worker alone writes `tail` and the fields on its
 * line; the db thread alone writes `head` and the fields on its line; each
 * keeps its last view of the other's index, so the common case touches
 * no line the other side writes. */
struct db_queue {
	_Alignas(CACHE_LINE) _Atomic uint32_t tail;
	uint32_t head_seen; /* producer: head as last loaded */
	bool unkicked;      /* producer: submitted since the last db_kick */

	_Alignas(CACHE_LINE) _Atomic uint32_t head;
	uint32_t tail_seen; /* thread: tail as last loaded */
	uint32_t taken;     /* thread: slots past head sent this pass; head moves after */

	_Alignas(CACHE_LINE) struct db_request *slots; /* read-only after start */
	uint32_t mask;
};

enum entry_kind { E_QUERY, E_SET, E_PREPARE, E_SYNC };

/* What a connection waits for, in the order libpq will answer. */
struct entry {
	uint8_t kind;  /* enum entry_kind */
	uint8_t cls;   /* E_SET: the class it sets */
	bool got;      /* its result came; the NULL after it pops it */
	bool retry;    /* E_QUERY aborted by another's error: send it again */
	bool isolated; /* E_QUERY alone under its Sync: never sent again */
	uint16_t stmt; /* E_PREPARE: which statement (or DB_STATEMENTS_MAX + class) */
};

/* A query in flight: the request (to send again if aborted) and its worker. */
struct inflight {
	struct db_request q;
	uint32_t worker;
};

enum conn_state { C_DOWN, C_CONNECTING, C_UP };

struct conn {
	PGconn *pg;
	enum conn_state state;
	uint32_t id;
	short events;        /* CONNECTING: what PQconnectPoll waits for */
	bool want_write;     /* UP: output not yet flushed */
	bool tried;          /* a first attempt has ended (start-up) */
	bool proven;         /* its prepares were answered: backoff starts over */
	uint32_t unproven;   /* prepare Syncs still to come after a connect */
	bool failing;        /* a failure was logged; quiet until it is up again */
	int cls;             /* statement_timeout class in force; -1 unknown */
	bool group_open;
	uint32_t group_n;
	uint32_t backoff_ms;
	int64_t deadline_ms; /* DOWN: reconnect at; CONNECTING: give up at */
	int64_t progress_ms; /* UP: last answer, or when work began */

	struct entry *ent;   /* ring of ENTRY_MAX */
	uint32_t ent_head, ent_n;
	struct inflight *req; /* ring of PIPE_MAX, one per E_QUERY */
	uint32_t req_head, req_n;

	/* A write answered OK whose Sync (its commit) has not come yet. */
	bool deferred;
	struct inflight deferred_q;
	uint32_t nulls;      /* NULLs in a row at a Sync (libpq out of step) */
};

struct db {
	struct db_config cfg;
	char *url;
	const struct db_statement_def *stmts;
	size_t nstmts;
	struct db_queue *queues;
	struct conn *conns;
	int efd;
	pthread_t thread;
	uint32_t guard_ms;
	bool starting;       /* some connection has not ended its first attempt */
	bool was_up;         /* some connection was up at the last look */
	uint32_t rr;         /* first queue to take from, rotated each pass */
	uint64_t rng;
	struct pollfd *pfd;
	struct conn **pfd_conn;
	struct staged {
		const struct db_request *q;
		uint32_t worker;
	} *stage;
	char timeout_sql[DB_CLASS_COUNT][64];
	char timeout_name[DB_CLASS_COUNT][32];
	struct inflight resend; /* an aborted query, between its pop and its send */

	/* Written by the thread, read by db_pool_stats from anywhere. */
	_Atomic uint32_t stat_total, stat_idle;
	_Atomic bool stopping;

	/* 1 while the thread may be in poll(2) or about to be: workers read
	 * it at every kick, so it has a line of its own. */
	_Alignas(CACHE_LINE) _Atomic uint32_t sleeping;
	char pad[CACHE_LINE - sizeof(_Atomic uint32_t)];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- results back to the workers --------------------------------- */

/* The result is complete: `done` last, with release order, so a worker
 * that reads it set (acquire) reads everything written before it; then
 * the token goes back. The request's memory is the caller's again. */
static void publish(struct db *db, struct db_result *r, uint32_t worker, uint64_t token)
{
	atomic_store_explicit(&r->done, 1, memory_order_release);
	db->cfg.post(db->cfg.post_arg, worker, token);
}

static void fail(struct db *db, const struct db_request *q, uint32_t worker,
		 enum db_status status, const char *message)
{
	db_result_set(q->result, status, "", message);
	publish(db, q->result, worker, q->token);
}

/* ---- the queues ---------------------------------------------------- */

static uint32_t param_bytes(const struct db_request *q)
{
	uint32_t used = 0;
	for (uint8_t i = 0; i < q->nparams; i++)
		if (q->param_len[i] != DB_NULL_PARAM)
			used += q->param_len[i] + 1u;
	return used;
}

int db_submit(struct db *db, uint32_t worker, const struct db_request *q)
{
	if (worker >= db->cfg.workers || q->statement >= db->nstmts || q->nparams > DB_PARAMS_MAX ||
	    !q->result)
		return -EINVAL;
	/* The thread hands params to libpq as C strings: each must end in
	 * its NUL, inside the array (db_request_param packs them so). */
	uint32_t at = 0;
	for (uint8_t i = 0; i < q->nparams; i++) {
		if (q->param_len[i] == DB_NULL_PARAM)
			continue;
		if (q->param_len[i] >= DB_PARAM_BYTES - at || q->params[at + q->param_len[i]])
			return -EINVAL;
		at += q->param_len[i] + 1u;
	}

	struct db_queue *w = &db->queues[worker];
	uint32_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
	if (t - w->head_seen > w->mask) {
		/* Acquire: the thread's reads of the slot we are about to
		 * reuse happened before it moved head past it. */
		w->head_seen = atomic_load_explicit(&w->head, memory_order_acquire);
		if (t - w->head_seen > w->mask)
			return -EAGAIN;
	}
	struct db_request *s = &w->slots[t & w->mask];
	s->statement = q->statement;
	s->nparams = q->nparams;
	memcpy(s->param_len, q->param_len, sizeof s->param_len);
	memcpy(s->params, q->params, at); /* the bytes in use only */
	s->result = q->result;
	s->token = q->token;
	/* The worker owns the result until the token comes back. */
	atomic_store_explicit(&q->result->done, 0, memory_order_relaxed);
	/* Release: the slot's bytes (and done = 0) before the new tail. */
	atomic_store_explicit(&w->tail, t + 1, memory_order_release);
	w->unkicked = true;
	return 0;
}

/*
 * The wake-up protocol. The thread, before it sleeps, stores sleeping = 1,
 * issues a full fence, then loads every queue's tail; a worker, at its
 * kick, has stored its tail (in db_submit), issues a full fence, then loads
 * `sleeping`. This is Dekker's pattern (store, fence, load on both sides):
 * the two fences are ordered one way or the other, so at least one side
 * sees the other's store. Either the thread sees the new tail and does not
 * sleep, or the worker sees sleeping = 1 and writes the eventfd, which
 * ends (or pre-empts) the poll. A wakeup cannot be lost.
 *
 * The exchange makes the first worker to see the thread asleep the only
 * one to write: the others see 0 and skip their syscall, their items are
 * visible to the thread's next look at the tails all the same (the
 * thread's next sleep runs the same protocol before it blocks).
 */
void db_kick(struct db *db, uint32_t worker)
{
	struct db_queue *w = &db->queues[worker];

	if (!w->unkicked)
		return;
	w->unkicked = false;
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&db->sleeping, memory_order_relaxed))
		return; /* awake: it looks at the tails again before it sleeps */
	if (!atomic_exchange_explicit(&db->sleeping, 0, memory_order_relaxed))
		return; /* another worker is waking it */
	uint64_t one = 1;
	ssize_t n = write(db->efd, &one, sizeof one);
	(void)n; /* only fails when the counter would overflow: it is awake */
}

/* The next request of queue w not yet taken this pass, or NULL. */
static const struct db_request *peek(struct db_queue *w)
{
	uint32_t h = atomic_load_explicit(&w->head, memory_order_relaxed) + w->taken;
	if (h == w->tail_seen) {
		/* Acquire: the slot's bytes written before the tail. */
		w->tail_seen = atomic_load_explicit(&w->tail, memory_order_acquire);
		if (h == w->tail_seen)
			return NULL;
	}
	return &w->slots[h & w->mask];
}

/* Hands the slots taken this pass back to the worker. */
static void release_taken(struct db *db)
{
	for (uint32_t i = 0; i < db->cfg.workers; i++) {
		struct db_queue *w = &db->queues[i];
		if (!w->taken)
			continue;
		/* Release: our reads of the slots before the worker reuses them. */
		uint32_t h = atomic_load_explicit(&w->head, memory_order_relaxed);
		atomic_store_explicit(&w->head, h + w->taken, memory_order_release);
		w->taken = 0;
	}
}

/* Fails every queued request (no connection, or stopping). */
static void fail_queued(struct db *db, const char *message)
{
	for (uint32_t i = 0; i < db->cfg.workers; i++) {
		struct db_queue *w = &db->queues[i];
		for (const struct db_request *q; (q = peek(w)) != NULL; w->taken++)
			fail(db, q, i, DB_UNAVAILABLE, message);
	}
	release_taken(db);
}

/* ---- one connection ------------------------------------------------ */

static struct entry *push_entry(struct conn *c, enum entry_kind kind, int64_t now)
{
	if (c->ent_n == ENTRY_MAX)
		abort(); /* ENTRY_MAX bounds what PIPE_MAX queries bring */
	if (!c->ent_n)
		c->progress_ms = now; /* the guard's clock starts with the work */
	struct entry *e = &c->ent[(c->ent_head + c->ent_n++) % ENTRY_MAX];
	memset(e, 0, sizeof *e);
	e->kind = (uint8_t)kind;
	return e;
}

static void pop_entry(struct conn *c)
{
	if (c->ent[c->ent_head].kind == E_QUERY) {
		c->req_head = (c->req_head + 1) % PIPE_MAX;
		c->req_n--;
	}
	c->ent_head = (c->ent_head + 1) % ENTRY_MAX;
	c->ent_n--;
}

static bool close_group(struct conn *c, int64_t now)
{
	push_entry(c, E_SYNC, now);
	c->group_open = false;
	c->group_n = 0;
	/* libpq 15 tries to send at every Sync; a full socket is fine (we
	 * flush again when it drains), a broken one is not. */
	return PQpipelineSync(c->pg) == 1;
}

/* Sends q on c (copied into its ring); false if the connection broke:
 * then q has failed already, or is in the ring and fails with the rest
 * of c's requests (conn_lost). Never neither: a request the connection
 * broke under before it reached the ring (while its timeout was being
 * set) was once lost, its token never posted. */
static bool send_query(struct db *db, struct conn *c, const struct db_request *q,
		       uint32_t worker, bool isolated, int64_t now)
{
	enum db_class cls = db->stmts[q->statement].cls;
	bool queued = false;

	if (cls == DB_CLASS_WRITE)
		isolated = true; /* its own transaction, its commit confirmed */
	if (c->cls != (int)cls) {
		if (c->group_open && !close_group(c, now))
			goto broken;
		push_entry(c, E_SET, now)->cls = (uint8_t)cls;
		c->cls = (int)cls;
		if (!PQsendQueryPrepared(c->pg, db->timeout_name[cls], 0, NULL, NULL, NULL, 0) ||
		    !close_group(c, now))
			goto broken;
	}
	if (isolated && c->group_open && !close_group(c, now))
		goto broken;

	struct inflight *f = &c->req[(c->req_head + c->req_n++) % PIPE_MAX];
	uint32_t used = param_bytes(q);
	f->q.statement = q->statement;
	f->q.nparams = q->nparams;
	memcpy(f->q.param_len, q->param_len, sizeof f->q.param_len);
	memcpy(f->q.params, q->params, used);
	f->q.result = q->result;
	f->q.token = q->token;
	f->worker = worker;
	struct entry *e = push_entry(c, E_QUERY, now);
	e->isolated = isolated;
	queued = true;

	const char *values[DB_PARAMS_MAX];
	uint32_t at = 0;
	for (uint8_t i = 0; i < f->q.nparams; i++) {
		if (f->q.param_len[i] == DB_NULL_PARAM) {
			values[i] = NULL;
		} else {
			values[i] = f->q.params + at;
			at += f->q.param_len[i] + 1u;
		}
	}
	if (!PQsendQueryPrepared(c->pg, db->stmts[q->statement].name, f->q.nparams, values, NULL,
				 NULL, 0) ||
	    !PQsendFlushRequest(c->pg))
		goto broken;
	c->group_open = true;
	if ((isolated || ++c->group_n >= GROUP_MAX) && !close_group(c, now))
		goto broken;
	return true;
broken:
	if (!queued)
		fail(db, q, worker, DB_UNAVAILABLE, "connection to the database lost");
	return false;
}

static uint32_t jitter(struct db *db, uint32_t ms)
{
	/* xorshift64: spreads reconnects of many instances and connections. */
	db->rng ^= db->rng << 13;
	db->rng ^= db->rng >> 7;
	db->rng ^= db->rng << 17;
	return ms / 2 + (uint32_t)(db->rng % (ms / 2 + 1));
}

static void schedule_reconnect(struct db *db, struct conn *c, int64_t now)
{
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = C_DOWN;
	c->deadline_ms = now + jitter(db, c->backoff_ms);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
	c->tried = true;
}

/* Fails everything in flight on c with `message`; leaves the rings empty. */
static void fail_inflight(struct db *db, struct conn *c, const char *message)
{
	while (c->ent_n) {
		if (c->ent[c->ent_head].kind == E_QUERY) {
			struct inflight *f = &c->req[c->req_head];
			fail(db, &f->q, f->worker, DB_UNAVAILABLE, message);
		}
		pop_entry(c);
	}
	if (c->deferred) {
		c->deferred = false;
		fail(db, &c->deferred_q.q, c->deferred_q.worker, DB_UNAVAILABLE,
		     "connection to the database lost before the commit was confirmed");
	}
	c->group_open = false;
	c->group_n = 0;
}

static void conn_lost(struct db *db, struct conn *c, int64_t now, const char *why)
{
	char text[256];

	db_log_text(why, text, sizeof text);
	log_warn("database connection lost", "conn=%u in_flight=%u error=\"%s\"", c->id, c->req_n,
		 text);
	fail_inflight(db, c, "connection to the database lost");
	if (c->proven)
		c->backoff_ms = BACKOFF_MIN_MS;
	c->proven = false;
	c->failing = true;
	schedule_reconnect(db, c, now);
}

static void conn_start(struct db *db, struct conn *c, int64_t now)
{
	const char *keys[DB_CONNECT_PARAMS], *values[DB_CONNECT_PARAMS];

	db_connect_params(db->url, keys, values);
	c->pg = PQconnectStartParams(keys, values, 1);
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		char text[256];
		db_log_text(c->pg ? PQerrorMessage(c->pg) : "out of memory", text, sizeof text);
		if (!c->failing)
			log_warn("database connect failed", "conn=%u error=\"%s\"", c->id, text);
		else
			log_debug("database connect failed", "conn=%u error=\"%s\"", c->id, text);
		c->failing = true;
		schedule_reconnect(db, c, now);
		return;
	}
	PQsetNoticeProcessor(c->pg, db_notice_to_log, NULL);
	/* libpq: before the first PQconnectPoll, wait as if it said WRITING. */
	c->state = C_CONNECTING;
	c->events = POLLOUT;
	c->deadline_ms = now + CONNECT_TIMEOUT_MS;
}

/* Connected: pipeline mode, then every statement prepared, each under a
 * Sync of its own so that one that fails (a table a migration has not
 * made) leaves the others prepared. Queries may follow at once. */
static void conn_up(struct db *db, struct conn *c, int64_t now)
{
	if (PQsetnonblocking(c->pg, 1) || !PQenterPipelineMode(c->pg)) {
		conn_lost(db, c, now, PQerrorMessage(c->pg));
		return;
	}
	c->state = C_UP;
	c->cls = -1;
	c->want_write = false;
	c->nulls = 0;
	c->unproven = DB_CLASS_COUNT + (uint32_t)db->nstmts;
	for (uint32_t k = 0; k < DB_CLASS_COUNT + db->nstmts; k++) {
		bool timeout = k < DB_CLASS_COUNT;
		const char *name = timeout ? db->timeout_name[k] : db->stmts[k - DB_CLASS_COUNT].name;
		const char *sql = timeout ? db->timeout_sql[k] : db->stmts[k - DB_CLASS_COUNT].sql;
		push_entry(c, E_PREPARE, now)->stmt = (uint16_t)k;
		if (!PQsendPrepare(c->pg, name, sql, 0, NULL) || !close_group(c, now)) {
			conn_lost(db, c, now, PQerrorMessage(c->pg));
			return;
		}
	}
	if (c->failing) {
		char host[128], name[128];
		db_log_text(PQhost(c->pg), host, sizeof host);
		db_log_text(PQdb(c->pg), name, sizeof name);
		log_info("database connection back", "conn=%u host=\"%s\" db=\"%s\"", c->id, host,
			 name);
	}
	c->failing = false;
	c->tried = true;
}

static void conn_poll_connect(struct db *db, struct conn *c, int64_t now)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		c->events = POLLIN;
		return;
	case PGRES_POLLING_WRITING:
		c->events = POLLOUT;
		return;
	case PGRES_POLLING_OK:
		conn_up(db, c, now);
		return;
	default: {
		char text[256];
		db_log_text(PQerrorMessage(c->pg), text, sizeof text);
		if (!c->failing)
			log_warn("database connect failed", "conn=%u error=\"%s\"", c->id, text);
		else
			log_debug("database connect failed", "conn=%u error=\"%s\"", c->id, text);
		c->failing = true;
		schedule_reconnect(db, c, now);
		return;
	}
	}
}

/* An error result that says the connection itself is gone: libpq's own
 * (no SQLSTATE), or the server's shutdown and crash codes (57P01-57P05). */
static bool connection_error(const struct conn *c, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return PQstatus(c->pg) == CONNECTION_BAD || !state || !state[0] ||
	       !strncmp(state, "57P", 3);
}

/* One result for the entry at the head of c. Returns false if the
 * connection is to be dropped. */
static bool on_result(struct db *db, struct conn *c, PGresult *res)
{
	struct entry *e = &c->ent[c->ent_head];
	ExecStatusType st = PQresultStatus(res);
	bool failed = st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
		      st == PGRES_BAD_RESPONSE;

	c->nulls = 0;
	if (failed && connection_error(c, res))
		return false;
	if (e->kind == E_SYNC) {
		if (st == PGRES_PIPELINE_SYNC) {
			if (c->deferred) {
				c->deferred = false;
				publish(db, c->deferred_q.q.result, c->deferred_q.worker,
					c->deferred_q.q.token);
			}
			pop_entry(c);
			if (c->unproven && !--c->unproven) {
				/* Every prepare answered: the server takes us. */
				c->proven = true;
				c->backoff_ms = BACKOFF_MIN_MS;
			}
		} else if (c->deferred) {
			/* The commit at the Sync failed (a deferred constraint,
			 * a serialization failure): the write did not happen. */
			db_result_fill(c->deferred_q.q.result, res);
		}
		return true;
	}
	if (e->got)
		return true; /* one result per statement: nothing more to say */
	e->got = true;
	switch (e->kind) {
	case E_PREPARE:
	case E_SET:
		if (st != PGRES_COMMAND_OK) {
			char text[256];
			const char *name = e->kind == E_SET || e->stmt < DB_CLASS_COUNT
						   ? "statement_timeout"
						   : db->stmts[e->stmt - DB_CLASS_COUNT].name;
			db_log_text(PQresultErrorMessage(res), text, sizeof text);
			log_error(e->kind == E_SET ? "database statement_timeout not set"
						   : "database statement not prepared",
				  "conn=%u statement=%s error=\"%s\"", c->id, name, text);
			if (e->kind == E_SET)
				c->cls = -1;
		}
		return true;
	case E_QUERY: {
		struct inflight *f = &c->req[c->req_head];
		if (st == PGRES_PIPELINE_ABORTED) {
			/* libpq aborts what was queued on a connection that
			 * died: that is a loss, not another's error. */
			if (PQstatus(c->pg) == CONNECTION_BAD)
				return false;
			if (!e->isolated) {
				e->retry = true; /* sent again when its NULL pops it */
				return true;
			}
			fail(db, &f->q, f->worker, DB_UNAVAILABLE,
			     "aborted by an earlier statement's error");
			return true;
		}
		enum db_status s = db_result_fill(f->q.result, res);
		if ((s == DB_OK || s == DB_TOO_LARGE) &&
		    db->stmts[f->q.statement].cls == DB_CLASS_WRITE) {
			c->deferred = true; /* posted when the Sync confirms the commit */
			c->deferred_q = *f;
			return true;
		}
		publish(db, f->q.result, f->worker, f->q.token);
		return true;
	}
	}
	return true;
}

/* Reads every result libpq holds complete for c. Returns false if the
 * connection is to be dropped (its requests are still in its rings). */
static bool conn_read(struct db *db, struct conn *c, bool readable, int64_t now)
{
	if (readable) {
		if (!PQconsumeInput(c->pg))
			return false;
		c->progress_ms = now;
	}
	while (c->ent_n && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);
		struct entry *e = &c->ent[c->ent_head];
		c->progress_ms = now;
		if (res) {
			bool ok = on_result(db, c, res);
			PQclear(res);
			if (!ok)
				return false;
			continue;
		}
		/* NULL ends a statement's results. */
		if (e->kind == E_SYNC) {
			/* None comes at a Sync; tolerate one, not a stream. */
			if (++c->nulls > 1)
				return false;
			continue;
		}
		if (!e->got)
			return false; /* libpq and our rings disagree: start over */
		bool retry = e->retry;
		if (retry)
			db->resend = c->req[c->req_head];
		pop_entry(c);
		if (retry && !send_query(db, c, &db->resend.q, db->resend.worker, true, now))
			return false;
	}
	return PQstatus(c->pg) != CONNECTION_BAD;
}

/* Sends what libpq holds; false if the connection broke. */
static bool conn_flush(struct conn *c)
{
	int r = PQflush(c->pg);
	c->want_write = r == 1;
	return r >= 0;
}

/* ---- the thread ---------------------------------------------------- */

static struct conn *least_loaded(struct db *db)
{
	struct conn *best = NULL;
	for (uint32_t i = 0; i < db->cfg.connections; i++) {
		struct conn *c = &db->conns[i];
		if (c->state == C_UP && c->req_n < PIPE_MAX && (!best || c->req_n < best->req_n))
			best = c;
	}
	return best;
}

/* Takes what the queues hold, as far as the connections have room, and
 * sends it grouped by class (fewer statement_timeout changes). */
static void dispatch(struct db *db, int64_t now)
{
	uint32_t room = 0, up = 0, nstage = 0;

	for (uint32_t i = 0; i < db->cfg.connections; i++) {
		struct conn *c = &db->conns[i];
		if (c->state == C_UP) {
			up++;
			room += PIPE_MAX - c->req_n;
		}
	}
	if (!up) {
		/* At start-up requests wait for the first connects; after,
		 * with no connection up, they fail now rather than wait. */
		if (!db->starting)
			fail_queued(db, "no connection to the database");
		return;
	}
	/* One request per queue in turn, so no worker starves the others. */
	for (bool more = true; more && nstage < room;) {
		more = false;
		for (uint32_t k = 0; k < db->cfg.workers && nstage < room; k++) {
			uint32_t i = (db->rr + k) % db->cfg.workers;
			struct db_queue *w = &db->queues[i];
			const struct db_request *q = peek(w);
			if (!q)
				continue;
			w->taken++;
			db->stage[nstage].q = q;
			db->stage[nstage++].worker = i;
			more = true;
		}
	}
	db->rr++;
	for (uint32_t cls = 0; cls < DB_CLASS_COUNT; cls++) {
		for (uint32_t i = 0; i < nstage; i++) {
			const struct db_request *q = db->stage[i].q;
			if (db->stmts[q->statement].cls != cls)
				continue;
			struct conn *c = least_loaded(db);
			if (!c) {
				/* Connections lost while sending: no room left. */
				fail(db, q, db->stage[i].worker, DB_UNAVAILABLE,
				     "connection to the database lost");
				continue;
			}
			if (!send_query(db, c, q, db->stage[i].worker, false, now))
				conn_lost(db, c, now, PQerrorMessage(c->pg));
		}
	}
	/* The slots are copied (or failed): the workers may reuse them. */
	release_taken(db);
	for (uint32_t i = 0; i < db->cfg.connections; i++) {
		struct conn *c = &db->conns[i];
		if (c->state == C_UP && c->group_open && !close_group(c, now))
			conn_lost(db, c, now, PQerrorMessage(c->pg));
	}
}

/* Deadlines: reconnects due, connects too slow, connections stalled. */
static void timers(struct db *db, int64_t now)
{
	for (uint32_t i = 0; i < db->cfg.connections; i++) {
		struct conn *c = &db->conns[i];
		if (c->state == C_DOWN && now >= c->deadline_ms)
			conn_start(db, c, now);
		if (c->state == C_CONNECTING && now >= c->deadline_ms) {
			if (!c->failing)
				log_warn("database connect failed", "conn=%u error=\"no answer in %d ms\"",
					 c->id, CONNECT_TIMEOUT_MS);
			c->failing = true;
			schedule_reconnect(db, c, now);
		}
		if (c->state == C_UP && c->ent_n && now - c->progress_ms > (int64_t)db->guard_ms) {
			char why[96];
			snprintf(why, sizeof why, "no answer for %lld ms with work in flight",
				 (long long)(now - c->progress_ms));
			conn_lost(db, c, now, why);
		}
	}
	if (db->starting) {
		bool all = true;
		for (uint32_t i = 0; i < db->cfg.connections; i++)
			all = all && db->conns[i].tried;
		db->starting = !all;
	}
}

/* The poll timeout to the nearest deadline (-1: none). */
static int next_timeout(const struct db *db, int64_t now)
{
	int64_t next = INT64_MAX;

	for (uint32_t i = 0; i < db->cfg.connections; i++) {
		const struct conn *c = &db->conns[i];
		int64_t d = c->state != C_UP ? c->deadline_ms
			    : c->ent_n       ? c->progress_ms + db->guard_ms + 1
					     : INT64_MAX;
		if (d < next)
			next = d;
	}
	if (next == INT64_MAX)
		return -1;
	return next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
}

static void update_stats(struct db *db)
{
	uint32_t total = 0, idle = 0;

	for (uint32_t i = 0; i < db->cfg.connections; i++) {
		const struct conn *c = &db->conns[i];
		if (c->state != C_UP)
			continue;
		total++;
		idle += !c->ent_n && !c->deferred;
	}
	atomic_store_explicit(&db->stat_total, total, memory_order_relaxed);
	atomic_store_explicit(&db->stat_idle, idle, memory_order_relaxed);
	if (total && !db->was_up) {
		char host[128], name[128];
		for (uint32_t i = 0; i < db->cfg.connections; i++) {
			if (db->conns[i].state == C_UP) {
				db_log_text(PQhost(db->conns[i].pg), host, sizeof host);
				db_log_text(PQdb(db->conns[i].pg), name, sizeof name);
				break;
			}
		}
		log_info("database up", "host=\"%s\" db=\"%s\" connected=%u of=%u", host, name, total,
			 db->cfg.connections);
	} else if (!total && db->was_up) {
		log_warn("database down", "error=\"no connection up: requests fail until one is\"");
	}
	db->was_up = total != 0;
}

/* True if some queue's tail moved since the thread last looked (which it
 * records): new work. Called after sleeping = 1 and a full fence. */
static bool queues_moved(struct db *db)
{
	bool moved = false;
	for (uint32_t i = 0; i < db->cfg.workers; i++) {
		struct db_queue *w = &db->queues[i];
		uint32_t t = atomic_load_explicit(&w->tail, memory_order_acquire);
		if (t != w->tail_seen) {
			w->tail_seen = t;
			moved = true;
		}
	}
	return moved;
}

static void *db_main(void *arg)
{
	struct db *db = arg;
	int64_t now = now_ms();

	for (uint32_t i = 0; i < db->cfg.connections; i++)
		conn_start(db, &db->conns[i], now);
	while (!atomic_load_explicit(&db->stopping, memory_order_acquire)) {
		now = now_ms();
		timers(db, now);
		dispatch(db, now);
		nfds_t n = 1;
		db->pfd[0] = (struct pollfd){.fd = db->efd, .events = POLLIN};
		for (uint32_t i = 0; i < db->cfg.connections; i++) {
			struct conn *c = &db->conns[i];
			if (c->state == C_UP && (c->ent_n || c->want_write) &&
			    (!conn_flush(c) || !conn_read(db, c, false, now)))
				conn_lost(db, c, now, PQerrorMessage(c->pg));
			if (c->state == C_DOWN)
				continue;
			int fd = PQsocket(c->pg);
			if (fd < 0) {
				if (c->state == C_UP)
					conn_lost(db, c, now, "no socket");
				else
					schedule_reconnect(db, c, now);
				continue;
			}
			short ev = c->state == C_CONNECTING ? c->events
							    : (short)(POLLIN | (c->want_write ? POLLOUT : 0));
			db->pfd[n] = (struct pollfd){.fd = fd, .events = ev};
			db->pfd_conn[n++] = c;
		}
		update_stats(db);
		int timeout = next_timeout(db, now);

		atomic_store_explicit(&db->sleeping, 1, memory_order_relaxed);
		/* See db_kick: sleeping = 1, fence, then the tails. */
		atomic_thread_fence(memory_order_seq_cst);
		if (queues_moved(db)) {
			atomic_store_explicit(&db->sleeping, 0, memory_order_relaxed);
			timeout = 0; /* still look at the sockets, without sleeping */
		}
		if (db->cfg.post_flush)
			db->cfg.post_flush(db->cfg.post_arg, false);
		int r = poll(db->pfd, n, timeout);
		atomic_store_explicit(&db->sleeping, 0, memory_order_relaxed);
		if (r < 0)
			continue; /* EINTR; signals are blocked here anyway */
		now = now_ms();
		if (db->pfd[0].revents) {
			uint64_t v;
			ssize_t got = read(db->efd, &v, sizeof v);
			(void)got;
		}
		for (nfds_t k = 1; k < n; k++) {
			struct conn *c = db->pfd_conn[k];
			short rev = db->pfd[k].revents;
			if (!rev)
				continue;
			if (c->state == C_CONNECTING) {
				conn_poll_connect(db, c, now);
				continue;
			}
			if (c->state != C_UP)
				continue;
			if ((rev & (POLLIN | POLLERR | POLLHUP)) && !conn_read(db, c, true, now)) {
				conn_lost(db, c, now, PQerrorMessage(c->pg));
				continue;
			}
			if ((rev & POLLOUT) && !conn_flush(c))
				conn_lost(db, c, now, PQerrorMessage(c->pg));
		}
	}

	/* Stopping: everything outstanding fails, nothing waits. */
	for (uint32_t i = 0; i < db->cfg.connections; i++) {
		struct conn *c = &db->conns[i];
		fail_inflight(db, c, "the server is stopping");
		if (c->pg)
			PQfinish(c->pg);
		c->pg = NULL;
		c->state = C_DOWN;
	}
	fail_queued(db, "the server is stopping");
	if (db->cfg.post_flush)
		db->cfg.post_flush(db->cfg.post_arg, true);
	atomic_store_explicit(&db->stat_total, 0, memory_order_relaxed);
	atomic_store_explicit(&db->stat_idle, 0, memory_order_relaxed);
	return NULL;
}

/* ---- start, stop, stats -------------------------------------------- */

static void db_free(struct db *db)
{
	if (!db)
		return;
	if (db->queues)
		for (uint32_t i = 0; i < db->cfg.workers; i++)
			free(db->queues[i].slots);
	free(db->queues);
	if (db->conns) {
		for (uint32_t i = 0; i < db->cfg.connections; i++) {
			free(db->conns[i].ent);
			free(db->conns[i].req);
		}
	}
	free(db->conns);
	free(db->pfd);
	free(db->pfd_conn);
	free(db->stage);
	free(db->url);
	if (db->efd >= 0)
		close(db->efd);
	free(db);
}

int db_start_with(struct db **out, const struct db_config *cfg,
		  const struct db_statement_def *stmts, size_t n)
{
	const struct db_config *k = cfg;
	*out = NULL;
	if (!k->url || !k->url[0] || !k->post || k->connections < 1 ||
	    k->connections > CONNECTIONS_MAX || k->workers < 1 || k->queue_depth < 2 ||
	    k->queue_depth > QUEUE_DEPTH_MAX || (k->queue_depth & (k->queue_depth - 1)) || n < 1 ||
	    n > DB_STATEMENTS_MAX) {
		log_error("database: invalid configuration",
			  "connections=%u workers=%u queue_depth=%u statements=%zu", k->connections,
			  k->workers, k->queue_depth, n);
		return -EINVAL;
	}
	for (uint32_t c = 0; c < DB_CLASS_COUNT; c++) {
		if (!k->timeout_ms[c] || k->timeout_ms[c] > INT32_MAX) {
			log_error("database: invalid configuration", "timeout_%s_ms=%u", class_names[c],
				  k->timeout_ms[c]);
			return -EINVAL;
		}
	}

	/* Start-up allocation: the thread allocates nothing after this
	 * (libpq's own buffers aside). */
	struct db *db = aligned_alloc(CACHE_LINE, (sizeof *db + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE);
	if (!db)
		return -ENOMEM;
	memset(db, 0, sizeof *db);
	db->efd = -1;
	db->cfg = *k;
	db->stmts = stmts;
	db->nstmts = n;
	db->starting = true;
	db->rng = (uint64_t)now_ms() * 0x9E3779B97F4A7C15ull | 1;
	uint32_t maxt = 0;
	for (uint32_t c = 0; c < DB_CLASS_COUNT; c++) {
		snprintf(db->timeout_name[c], sizeof db->timeout_name[c], "ringside_timeout_%s",
			 class_names[c]);
		snprintf(db->timeout_sql[c], sizeof db->timeout_sql[c], "SET statement_timeout = %u",
			 k->timeout_ms[c]);
		if (k->timeout_ms[c] > maxt)
			maxt = k->timeout_ms[c];
	}
	db->guard_ms = maxt + GUARD_SLACK_MS;

	size_t qbytes = (sizeof *db->queues * k->workers + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	db->url = strdup(k->url);
	db->cfg.url = db->url;
	db->queues = aligned_alloc(CACHE_LINE, qbytes);
	db->conns = calloc(k->connections, sizeof *db->conns);
	db->pfd = calloc(k->connections + 1, sizeof *db->pfd);
	db->pfd_conn = calloc(k->connections + 1, sizeof *db->pfd_conn);
	db->stage = calloc((size_t)k->connections * PIPE_MAX, sizeof *db->stage);
	if (!db->url || !db->queues || !db->conns || !db->pfd || !db->pfd_conn || !db->stage)
		goto nomem;
	memset(db->queues, 0, qbytes);
	for (uint32_t i = 0; i < k->workers; i++) {
		db->queues[i].mask = k->queue_depth - 1;
		db->queues[i].slots = calloc(k->queue_depth, sizeof(struct db_request));
		if (!db->queues[i].slots)
			goto nomem;
	}
	for (uint32_t i = 0; i < k->connections; i++) {
		struct conn *c = &db->conns[i];
		c->id = i;
		c->backoff_ms = BACKOFF_MIN_MS;
		c->cls = -1;
		c->ent = calloc(ENTRY_MAX, sizeof *c->ent);
		c->req = calloc(PIPE_MAX, sizeof *c->req);
		if (!c->ent || !c->req)
			goto nomem;
	}
	db->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (db->efd < 0) {
		int e = errno;
		log_error("database: eventfd failed", "errno=%d", e);
		db_free(db);
		return -e;
	}

	/* The thread takes no signal: the main thread's signalfd has them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = pthread_create(&db->thread, NULL, db_main, db);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		log_error("database: cannot start its thread", "errno=%d", r);
		db_free(db);
		return -r;
	}
	pthread_setname_np(db->thread, "ringside-db");
	*out = db;
	return 0;
nomem:
	log_error("database: out of memory", "workers=%u queue_depth=%u", k->workers,
		  k->queue_depth);
	db_free(db);
	return -ENOMEM;
}

int db_start(struct db **out, const struct db_config *cfg)
{
	return db_start_with(out, cfg, db_statements, DB_STATEMENT_COUNT);
}

void db_stop(struct db *db)
{
	if (!db)
		return;
	atomic_store_explicit(&db->stopping, true, memory_order_release);
	uint64_t one = 1;
	ssize_t n = write(db->efd, &one, sizeof one);
	(void)n;
	pthread_join(db->thread, NULL);
	db_free(db);
}

void db_pool_stats(const struct db *db, struct db_pool_stats *out)
{
	uint32_t waiting = 0;

	out->total = atomic_load_explicit(&db->stat_total, memory_order_relaxed);
	out->idle = atomic_load_explicit(&db->stat_idle, memory_order_relaxed);
	/* Queued and not yet handed back: head moves once a pass is sent. */
	for (uint32_t i = 0; i < db->cfg.workers; i++) {
		uint32_t t = atomic_load_explicit(&db->queues[i].tail, memory_order_relaxed);
		uint32_t h = atomic_load_explicit(&db->queues[i].head, memory_order_relaxed);
		waiting += t - h;
	}
	out->waiting = waiting;
}
