/*
 * A connection of its own to the same database, outside the database
 * thread (include/ringside/side_session.h).
 *
 * Connects as the database thread does (db_connect_params) but not
 * through it: the db thread's pipelines stay the workers'.
 */
#include "ringside/side_session.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ringside/db.h"
#include "ringside/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

int64_t side_session_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int side_session_init(struct side_session *s, const struct side_session_config *c)
{
	memset(s, 0, sizeof *s);
	s->stop_fd = -1;
	s->name = c->name;
	s->down_hint = c->down_hint;
	s->connect_timeout_ms = c->connect_timeout_ms;
	s->query_timeout_ms = c->query_timeout_ms;
	s->backoff_ms = BACKOFF_MIN_MS;
	if (getrandom(&s->rng, sizeof s->rng, GRND_NONBLOCK) != (ssize_t)sizeof s->rng)
		s->rng = (uint64_t)side_session_now_ms() * 0x9e3779b97f4a7c15u;
	s->rng |= 1; /* xorshift: never zero */
	if (!(s->url = strdup(c->url)))
		return -ENOMEM;
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0) {
		int err = -errno;
		free(s->url);
		s->url = NULL;
		return err;
	}
	return 0;
}

void side_session_fini(struct side_session *s)
{
	side_session_disconnect(s);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	s->stop_fd = -1;
	if (s->url) {
		/* Wipe: the URL may hold a password. */
		explicit_bzero(s->url, strlen(s->url));
		free(s->url);
	}
	s->url = NULL;
}

void side_session_stop(struct side_session *s)
{
	uint64_t one = 1;
	if (write(s->stop_fd, &one, sizeof one) != (ssize_t)sizeof one) {
		char msg[96];
		snprintf(msg, sizeof msg, "%s: cannot signal its stop", s->name);
		log_error(msg, "errno=%d", errno);
	}
}

void side_session_set_error(struct side_session *s, const char *what, const char *text)
{
	char clean[200];
	db_log_text(text ? text : "", clean, sizeof clean);
	snprintf(s->error, sizeof s->error, "%.50s: %s", what, clean);
}

int side_session_wait(struct side_session *s, int fd, short events, int64_t deadline,
		      int wake_fd)
{
	for (;;) {
		struct pollfd p[3] = {{.fd = s->stop_fd, .events = POLLIN},
				      {.fd = fd, .events = events},
				      {.fd = wake_fd, .events = POLLIN}};
		int64_t left = deadline == INT64_MAX ? -1 : deadline - side_session_now_ms();
		if (left < 0 && deadline != INT64_MAX)
			left = 0;
		int r = poll(p, 3, left > 60000 ? 60000 : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* EINVAL, ENOMEM: waiting again would spin. */
			char msg[96];
			snprintf(msg, sizeof msg, "%s stopped: poll failed", s->name);
			log_error(msg, "errno=%d", errno);
			return -ECANCELED;
		}
		if (p[0].revents)
			return -ECANCELED;
		if (r > 0 && p[1].revents)
			return 1;
		if (r > 0 && p[2].revents) {
			uint64_t v;
			if (read(wake_fd, &v, sizeof v) < 0) {
				/* EAGAIN: another reader took it; nothing to do. */
			}
			return 2;
		}
		if (deadline != INT64_MAX && side_session_now_ms() >= deadline)
			return 0;
	}
}

void side_session_disconnect(struct side_session *s)
{
	if (s->pg)
		PQfinish(s->pg);
	s->pg = NULL;
	atomic_store_explicit(&s->up, false, memory_order_relaxed);
}

int side_session_connect(struct side_session *s)
{
	const char *keys[DB_CONNECT_PARAMS], *values[DB_CONNECT_PARAMS];
	db_connect_params(s->url, keys, values);
	s->pg = PQconnectStartParams(keys, values, 1);
	if (!s->pg || PQstatus(s->pg) == CONNECTION_BAD) {
		side_session_set_error(s, "connect",
				       s->pg ? PQerrorMessage(s->pg) : "out of memory");
		return -EIO;
	}
	PQsetNoticeProcessor(s->pg, db_notice_to_log, NULL);
	int64_t deadline = side_session_now_ms() + s->connect_timeout_ms;
	short events = POLLOUT; /* libpq: as if PQconnectPoll said WRITING first */
	for (;;) {
		int w = side_session_wait(s, PQsocket(s->pg), events, deadline, -1);
		if (w < 0)
			return w;
		if (w == 0) {
			char text[48];
			snprintf(text, sizeof text, "no answer in %u ms", s->connect_timeout_ms);
			side_session_set_error(s, "connect", text);
			return -ETIMEDOUT;
		}
		switch (PQconnectPoll(s->pg)) {
		case PGRES_POLLING_READING:
			events = POLLIN;
			break;
		case PGRES_POLLING_WRITING:
			events = POLLOUT;
			break;
		case PGRES_POLLING_OK:
			if (PQsetnonblocking(s->pg, 1)) {
				side_session_set_error(s, "connect", PQerrorMessage(s->pg));
				return -EIO;
			}
			return 0;
		default:
			side_session_set_error(s, "connect", PQerrorMessage(s->pg));
			return -EIO;
		}
	}
}

int side_session_run(struct side_session *s, struct side_query *q)
{
	int64_t deadline = side_session_now_ms() + s->query_timeout_ms;
	int ok = q->prepare ? PQsendPrepare(s->pg, q->name, q->sql, q->nparams, NULL)
		 : q->name  ? PQsendQueryPrepared(s->pg, q->name, q->nparams, q->values, NULL, NULL, 0)
		 : q->nparams
			? PQsendQueryParams(s->pg, q->sql, q->nparams, NULL, q->values, NULL, NULL, 0)
			: PQsendQuery(s->pg, q->sql);
	if (!ok) {
		side_session_set_error(s, "send", PQerrorMessage(s->pg));
		return -EIO;
	}
	if (q->single_row)
		PQsetSingleRowMode(s->pg); /* best effort: else all rows come at once */
	int f;
	while ((f = PQflush(s->pg)) == 1) {
		int w = side_session_wait(s, PQsocket(s->pg), POLLOUT | POLLIN, deadline, -1);
		if (w < 0)
			return w;
		if (w == 0 || !PQconsumeInput(s->pg)) {
			side_session_set_error(s, "send",
					       w == 0 ? "timed out" : PQerrorMessage(s->pg));
			return -EIO;
		}
	}
	if (f < 0) {
		side_session_set_error(s, "send", PQerrorMessage(s->pg));
		return -EIO;
	}
	int rc = 0;
	for (;;) {
		while (PQisBusy(s->pg)) {
			int w = side_session_wait(s, PQsocket(s->pg), POLLIN, deadline, -1);
			if (w < 0)
				return w;
			if (w == 0) {
				char text[48];
				snprintf(text, sizeof text, "no answer in %u ms",
					 s->query_timeout_ms);
				side_session_set_error(s, "query", text);
				return -ETIMEDOUT;
			}
			if (!PQconsumeInput(s->pg)) {
				side_session_set_error(s, "query", PQerrorMessage(s->pg));
				return -EIO;
			}
		}
		PGresult *res = PQgetResult(s->pg);
		if (!res)
			break;
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
		case PGRES_TUPLES_OK:
			for (int i = 0; q->row && i < PQntuples(res); i++)
				q->row(q->arg, res, i);
			break;
		case PGRES_COMMAND_OK:
			q->affected = strtoull(PQcmdTuples(res), NULL, 10);
			break;
		default:
			if (!rc)
				side_session_set_error(s, "query", PQresultErrorMessage(res));
			rc = -EIO; /* read on to the end: the connection stays in step */
			break;
		}
		PQclear(res);
	}
	if (PQstatus(s->pg) == CONNECTION_BAD && !rc) {
		side_session_set_error(s, "query", PQerrorMessage(s->pg));
		rc = -EIO;
	}
	if (q->end)
		q->end(q->arg);
	return rc;
}

void side_session_log_up(struct side_session *s, const char *fields_fmt, ...)
{
	atomic_store_explicit(&s->up, true, memory_order_relaxed);
	char host[128], name[128], fields[256], msg[96];
	db_log_text(PQhost(s->pg), host, sizeof host);
	db_log_text(PQdb(s->pg), name, sizeof name);
	va_list ap;
	va_start(ap, fields_fmt);
	vsnprintf(fields, sizeof fields, fields_fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof msg, s->ever_up ? "%s up again" : "%s up", s->name);
	log_info(msg, "host=\"%s\" db=\"%s\" %s", host, name, fields);
	s->ever_up = true;
	s->down_logged = false;
	s->backoff_ms = BACKOFF_MIN_MS;
}

int side_session_back_off(struct side_session *s, bool quiet, uint32_t instead_ms)
{
	char msg[96];
	if (!s->down_logged) {
		if (!quiet) {
			snprintf(msg, sizeof msg, "%s down", s->name);
			log_warn(msg, "error=\"%s\" hint=\"%s\"", s->error, s->down_hint);
		}
		s->down_logged = true;
	} else {
		snprintf(msg, sizeof msg, "%s still down", s->name);
		log_debug(msg, "error=\"%s\"", s->error);
	}
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	uint32_t half = (instead_ms ? instead_ms : s->backoff_ms) / 2;
	int64_t ms = half + (int64_t)(s->rng % (half + 1));
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	return side_session_wait(s, -1, 0, side_session_now_ms() + ms, -1) < 0 ? -ECANCELED : 0;
}
