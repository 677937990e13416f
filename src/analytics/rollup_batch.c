/* One batch of the analytics flusher (rollup_batch.h). */
#include "rollup_batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ringside/siphash.h"
#include "ringside/utf8.h"

const char rollup_batch_sql[] =
	"WITH r AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], "
	"$5::bigint[], $6::bigint[]) AS r(org, hour_s, agent, tokens, calls, last_ms)), "
	"ah AS (INSERT INTO analytics_agent_hourly AS t (organization_id, hour, agent_id, "
	"tokens_issued, api_calls, last_active_at) "
	"SELECT org, to_timestamp(hour_s), agent, tokens, calls, "
	"timestamptz 'epoch' + last_ms * interval '1 millisecond' FROM r "
	"ORDER BY org, hour_s, agent "
	"ON CONFLICT (organization_id, hour, agent_id) DO UPDATE SET "
	"tokens_issued = t.tokens_issued + excluded.tokens_issued, "
	"api_calls = t.api_calls + excluded.api_calls, "
	"last_active_at = greatest(t.last_active_at, excluded.last_active_at)), "
	"oh AS (INSERT INTO analytics_org_hourly AS t (organization_id, hour, tokens_issued, "
	"api_calls) "
	"SELECT org, to_timestamp(hour_s), sum(tokens), sum(calls) FROM r "
	"GROUP BY org, hour_s ORDER BY org, hour_s "
	"ON CONFLICT (organization_id, hour) DO UPDATE SET "
	"tokens_issued = t.tokens_issued + excluded.tokens_issued, "
	"api_calls = t.api_calls + excluded.api_calls), "
	"am AS (INSERT INTO analytics_agent_monthly AS t (organization_id, month, agent_id, "
	"tokens_issued, api_calls, last_active_at) "
	"SELECT org, m, agent, sum(tokens), sum(calls), "
	"timestamptz 'epoch' + max(last_ms) * interval '1 millisecond' "
	"FROM (SELECT org, date_trunc('month', to_timestamp(hour_s) AT TIME ZONE 'UTC')::date "
	"AS m, agent, tokens, calls, last_ms FROM r) mr "
	"GROUP BY org, m, agent ORDER BY org, m, agent "
	"ON CONFLICT (organization_id, month, agent_id) DO UPDATE SET "
	"tokens_issued = t.tokens_issued + excluded.tokens_issued, "
	"api_calls = t.api_calls + excluded.api_calls, "
	"last_active_at = greatest(t.last_active_at, excluded.last_active_at)) "
	"INSERT INTO analytics_journal_applied AS t (instance_id, worker, seq, byte_offset) "
	"SELECT $7::uuid, w, s, o FROM unnest($8::int[], $9::bigint[], $10::bigint[]) "
	"AS p(w, s, o) ORDER BY w "
	"ON CONFLICT (instance_id, worker) DO UPDATE SET seq = excluded.seq, "
	"byte_offset = excluded.byte_offset, updated_at = now()";

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

/* Worst case per element, separator included. */
#define ID_TEXT_MAX (2 * JOURNAL_ID_MAX + 3)
#define NUM_TEXT_MAX 21

int rollup_batch_init(struct rollup_batch *b, uint32_t events, uint32_t streams)
{
	memset(b, 0, sizeof *b);
	uint32_t slots = 1;
	while (slots < 2 * events)
		slots <<= 1;
	b->slot_mask = slots - 1;
	b->positions_max = streams;
	size_t id_cap = 2 + (size_t)events * ID_TEXT_MAX + 1;
	size_t num_cap = 2 + (size_t)events * NUM_TEXT_MAX + 1;
	size_t pos_cap = 2 + (size_t)streams * NUM_TEXT_MAX + 1;
	if (!(b->aggs = calloc(events, sizeof *b->aggs)) ||
	    !(b->slots = calloc(slots, sizeof *b->slots)) ||
	    !(b->positions = calloc(streams, sizeof *b->positions)) ||
	    !(b->p_org = malloc(id_cap)) || !(b->p_agent = malloc(id_cap)) ||
	    !(b->p_hour = malloc(num_cap)) || !(b->p_tokens = malloc(num_cap)) ||
	    !(b->p_calls = malloc(num_cap)) || !(b->p_last = malloc(num_cap)) ||
	    !(b->p_worker = malloc(pos_cap)) || !(b->p_seq = malloc(pos_cap)) ||
	    !(b->p_off = malloc(pos_cap))) {
		rollup_batch_fini(b);
		return -ENOMEM;
	}
	if (getrandom(b->hash_key, sizeof b->hash_key, 0) != (ssize_t)sizeof b->hash_key) {
		/* ENOSYS, EINTR: the key stays as it is (what it keys is
		 * only the table's probe order). */
	}
	return 0;
}

void rollup_batch_fini(struct rollup_batch *b)
{
	free(b->aggs);
	free(b->slots);
	free(b->positions);
	free(b->p_org);
	free(b->p_hour);
	free(b->p_agent);
	free(b->p_tokens);
	free(b->p_calls);
	free(b->p_last);
	free(b->p_worker);
	free(b->p_seq);
	free(b->p_off);
	memset(b, 0, sizeof *b);
}

void rollup_batch_reset(struct rollup_batch *b)
{
	b->naggs = 0;
	b->npositions = 0;
	memset(b->slots, 0, ((size_t)b->slot_mask + 1) * sizeof *b->slots);
}

/* An id PostgreSQL's text can hold: UTF-8 without NUL. */
static bool id_ok(const char *s, size_t len)
{
	return !memchr(s, 0, len) && utf8_valid((const unsigned char *)s, len);
}

/* 9999-12-31T23:59:59.999Z: far inside timestamptz's range, so no
 * event's time can make the batch's statement fail. */
#define MS_MAX 253402300799999LL

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

bool rollup_batch_add(struct rollup_batch *f, const struct journal_event *ev)
{
	if ((ev->kind != JOURNAL_TOKEN_ISSUED && ev->kind != JOURNAL_API_CALL) ||
	    !ev->org_len || ev->org_len > JOURNAL_ID_MAX || !ev->agent_len ||
	    ev->agent_len > JOURNAL_ID_MAX || !id_ok(ev->org, ev->org_len) ||
	    !id_ok(ev->agent, ev->agent_len) || ev->unix_ms < 0 || ev->unix_ms > MS_MAX)
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

void rollup_batch_position(struct rollup_batch *b, uint32_t worker, struct journal_pos pos)
{
	if (b->npositions < b->positions_max)
		b->positions[b->npositions++] = (struct rollup_position){worker, pos};
}

void rollup_batch_params(struct rollup_batch *f, const char *instance_id,
			 const char *values[ROLLUP_BATCH_PARAMS])
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
	for (uint32_t i = 0; i < f->npositions; i++) {
		const struct rollup_position *p = &f->positions[i];
		if (i)
			*w++ = *seq++ = *off++ = ',';
		w = put_i64(w, p->worker);
		seq = put_i64(seq, (int64_t)p->pos.seq);
		off = put_i64(off, (int64_t)p->pos.offset);
	}
	*w++ = *seq++ = *off++ = '}';
	*w = *seq = *off = '\0';

	values[0] = f->p_org;
	values[1] = f->p_hour;
	values[2] = f->p_agent;
	values[3] = f->p_tokens;
	values[4] = f->p_calls;
	values[5] = f->p_last;
	values[6] = instance_id;
	values[7] = f->p_worker;
	values[8] = f->p_seq;
	values[9] = f->p_off;
}
