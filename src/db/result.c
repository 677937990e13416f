/*
 * Requests and results as the workers see them (include/ringside/db.h):
 * parameters packed into a request, rows packed into the caller's buffer.
 */
#include "db_int.h"

#include <stdio.h>
#include <string.h>

/* A packed value: its length (native endian; the buffer never leaves the
 * process), then its bytes. */
#define VALUE_HEAD 4u
#define VALUE_NULL UINT32_MAX
/* Per row, at the buffer's end: where its first value starts. */
#define ROW_OFFSET 4u

bool db_request_param(struct db_request *q, const char *s, size_t len)
{
	size_t used = 0;

	if (q->nparams >= DB_PARAMS_MAX)
		return false;
	for (uint8_t i = 0; i < q->nparams; i++)
		if (q->param_len[i] != DB_NULL_PARAM)
			used += q->param_len[i] + 1u;
	if (!s) {
		q->param_len[q->nparams++] = DB_NULL_PARAM;
		return true;
	}
	/* libpq takes text parameters as C strings, and PostgreSQL's text
	 * holds no NUL: one inside would cut the value short unseen. */
	if (len > DB_PARAM_BYTES || used + len + 1 > DB_PARAM_BYTES || memchr(s, '\0', len))
		return false;
	memcpy(q->params + used, s, len);
	q->params[used + len] = '\0';
	q->param_len[q->nparams++] = (uint16_t)len;
	return true;
}

/* Where row `row` starts: the offsets are stored at the end of the
 * buffer, row 0's last, so a value is found by walking one row, not the
 * rows before it (a 1 000-row answer read value by value was 20 ms of a
 * worker's time when walked from the start each time). */
static uint32_t row_start(const struct db_result *r, uint32_t row)
{
	uint32_t at;
	memcpy(&at, r->buf + r->cap - (size_t)ROW_OFFSET * (row + 1u), ROW_OFFSET);
	return at;
}

const char *db_value(const struct db_result *r, uint32_t row, uint32_t col, uint32_t *len)
{
	*len = 0;
	if (r->status != DB_OK || !r->buf || row >= r->rows || col >= r->cols)
		return NULL;
	uint32_t at = row_start(r, row);
	for (uint32_t j = 0;; j++) {
		uint32_t n;
		if (at > r->len || r->len - at < VALUE_HEAD)
			return NULL; /* cannot happen for a result db_result_fill wrote */
		memcpy(&n, r->buf + at, VALUE_HEAD);
		at += VALUE_HEAD;
		if (j == col) {
			if (n == VALUE_NULL || n > r->len - at)
				return NULL;
			*len = n;
			return r->buf + at;
		}
		if (n != VALUE_NULL) {
			if (n > r->len - at)
				return NULL;
			at += n;
		}
	}
}

static void copy_text(char *out, size_t cap, const char *s)
{
	snprintf(out, cap, "%s", s ? s : "");
}

void db_result_set(struct db_result *r, enum db_status status, const char *sqlstate,
		   const char *message)
{
	r->status = (uint8_t)status;
	copy_text(r->sqlstate, sizeof r->sqlstate, sqlstate);
	copy_text(r->message, sizeof r->message, message);
	r->rows = r->cols = 0;
	r->len = 0;
}

enum db_status db_result_fill(struct db_result *r, const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		/* 57014 query_canceled: we never cancel, so it is the
		 * statement timeout of the query's class. */
		enum db_status s = state && !strcmp(state, "57014") ? DB_TIMEOUT : DB_ERROR;
		db_result_set(r, s, state, msg ? msg : PQresultErrorMessage(res));
		return s;
	}

	uint32_t rows = (uint32_t)PQntuples(res), cols = (uint32_t)PQnfields(res);
	uint64_t need = (uint64_t)ROW_OFFSET * rows;
	for (uint32_t i = 0; i < rows; i++)
		for (uint32_t j = 0; j < cols; j++)
			need += VALUE_HEAD +
				(PQgetisnull(res, (int)i, (int)j) ? 0u
								  : (uint32_t)PQgetlength(res, (int)i, (int)j));
	/* No buffer: the caller wants the status only (a ping). */
	if (r->buf && need > r->cap) {
		char msg[DB_MESSAGE_MAX];
		snprintf(msg, sizeof msg, "the rows need %llu bytes, the buffer holds %u",
			 (unsigned long long)need, r->cap);
		db_result_set(r, DB_TOO_LARGE, "", msg);
		r->rows = rows;
		r->cols = cols;
		return DB_TOO_LARGE;
	}
	db_result_set(r, DB_OK, "", "");
	r->rows = rows;
	r->cols = cols;
	if (!r->buf)
		return DB_OK;
	uint32_t at = 0;
	for (uint32_t i = 0; i < rows; i++) {
		memcpy(r->buf + r->cap - (size_t)ROW_OFFSET * (i + 1u), &at, ROW_OFFSET);
		for (uint32_t j = 0; j < cols; j++) {
			uint32_t n = VALUE_NULL;
			if (!PQgetisnull(res, (int)i, (int)j))
				n = (uint32_t)PQgetlength(res, (int)i, (int)j);
			memcpy(r->buf + at, &n, VALUE_HEAD);
			at += VALUE_HEAD;
			if (n != VALUE_NULL) {
				memcpy(r->buf + at, PQgetvalue(res, (int)i, (int)j), n);
				at += n;
			}
		}
	}
	r->len = at;
	return DB_OK;
}

void db_log_text(const char *text, char *out, size_t cap)
{
	size_t n = 0;

	if (!cap)
		return;
	for (const char *p = text ? text : ""; *p && n + 1 < cap; p++) {
		unsigned char c = (unsigned char)*p;
		out[n++] = c == '"' || c == '\\' ? '\'' : c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

bool db_value_is(const struct db_result *r, uint32_t row, uint32_t col, const char *lit)
{
	uint32_t len;
	const char *v = db_value(r, row, col, &len);
	return v && len == strlen(lit) && !memcmp(v, lit, len);
}

bool db_value_i64(const struct db_result *r, uint32_t row, uint32_t col, int64_t *out)
{
	uint32_t len;
	const char *v = db_value(r, row, col, &len);
	if (!v || !len || len > 18)
		return false;
	int64_t n = 0;
	for (uint32_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		n = n * 10 + (v[i] - '0');
	}
	*out = n;
	return true;
}
