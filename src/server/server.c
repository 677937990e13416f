/*
 * A worker's engine: its buffers (each pool in one lazily touched
 * mapping, so an idle server holds what its busiest moment needed), its
 * clock, timer wheel, event-stream tick and the passes of its producers.
 */
#include "server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "ringside/config.h"
#include "ringside/log.h"
#include "ringside/resident.h"

/* A stream compressor per producer entry: 272 KiB each, 4.25 MiB per
 * worker reserved; resident only as streams use them (~172 KiB for one
 * that compressed a body; its held input only when the output fell
 * short). */
#define GZIP_MEM_SIZE ((size_t)HTTP_STREAMS_MAX * HTTP_GZIP_STREAM_BYTES)

#define TICK_MS 50u

static int buf_pool_init(struct buf_pool *p, uint32_t size, uint32_t count)
{
	p->size = size;
	p->count = count;
	p->base = mmap(NULL, (size_t)size * count, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->base == MAP_FAILED) {
		p->base = NULL;
		return -errno;
	}
	p->free = calloc(count, sizeof *p->free);
	if (!p->free)
		return -ENOMEM;
	/* Lowest index on top, so a quiet server touches few pages. */
	for (uint32_t i = 0; i < count; i++)
		p->free[i] = count - 1 - i;
	p->free_top = count;
	return 0;
}

static void buf_pool_fini(struct buf_pool *p)
{
	if (p->base)
		munmap(p->base, (size_t)p->size * p->count);
	free(p->free);
	memset(p, 0, sizeof *p);
}

char *buf_pool_get(struct buf_pool *p)
{
	/* in and out pools hold one buffer per slot, so they cannot run dry;
	 * the body pool can (its users answer 503). */
	if (p->free_top == 0)
		return NULL;
	return p->base + (size_t)p->free[--p->free_top] * p->size;
}

void buf_pool_put(struct buf_pool *p, char *buf)
{
	p->free[p->free_top++] = (uint32_t)((size_t)(buf - p->base) / p->size);
}

struct http_gzip *server_gzip_stream(struct server *s, unsigned i)
{
	struct http_gzip *g = &s->gzip_streams[i];
	if (!g->ready &&
	    http_gzip_init_in(g, s->gzip_mem + (size_t)i * HTTP_GZIP_STREAM_BYTES,
			      HTTP_GZIP_STREAM_BYTES) < 0) {
		log_error("gzip stream compressor set-up failed", "worker=%u slot=%u", s->id, i);
		return NULL;
	}
	return g;
}

static void *map_lazy(size_t n)
{
	void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

int server_init(struct server *s, const struct server_params *p)
{
	memset(s, 0, sizeof *s);
	s->host = p->host;
	s->cfg = p->cfg;
	s->router = p->router;
	s->id = p->worker_id;
	s->slots = p->slots;
	s->access_log = p->access_log;
	s->stop_requested = p->stop_requested;
	s->answered = p->answered;
	s->ctx = (struct http_context){
		.cfg = p->cfg,
		.metrics = p->metrics,
		.shard = metrics_shard(p->metrics, p->worker_id),
		.gzip = &s->gzip,
		.api = p->api,
		.worker_id = p->worker_id,
	};
	s->limits = (struct http_limits){
		.max_head_bytes = p->cfg->max_header_bytes,
		.max_target_bytes = HTTP_DEFAULT_MAX_TARGET_BYTES,
		.max_fields = HTTP_DEFAULT_MAX_FIELDS,
	};
	snprintf(s->request_id_prefix, sizeof s->request_id_prefix, "req_%08x%02x",
		 p->request_id_nonce, p->worker_id & 0xff);
	/* A connection holds at most one of each; room for a whole head plus
	 * one chunk of input that arrives while it waits. */
	s->in_buf_size = p->cfg->max_header_bytes + SERVER_INPUT_CHUNK;
	int r = buf_pool_init(&s->in_pool, s->in_buf_size, p->slots);
	if (r == 0)
		r = buf_pool_init(&s->out_pool, SERVER_OUT_BUF_SIZE, p->slots);
	if (r == 0)
		r = buf_pool_init(&s->body_pool, SERVER_BODY_BUF_SIZE, SERVER_BODY_BUF_COUNT);
	if (r == 0)
		r = buf_pool_init(&s->xbuf_pool, HTTP_EXCHANGE_BUF_SIZE, p->slots);
	if (r < 0)
		return r;
	s->scratch = map_lazy(SERVER_SCRATCH_SIZE);
	s->gzip_mem = map_lazy(GZIP_MEM_SIZE);
	s->streams = calloc(p->slots, sizeof *s->streams);
	if (!s->scratch || !s->gzip_mem || !s->streams)
		return -ENOMEM;
	/* The first stream compressor now: proves that zlib's state fits
	 * HTTP_GZIP_STATE_BYTES (the others are set up alike, when used). */
	if (!server_gzip_stream(s, 0))
		return -ENOMEM;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Ticks fine enough for the event interval, at most 50 ms. */
	uint32_t tick = p->cfg->sse_interval_ms < TICK_MS ? p->cfg->sse_interval_ms : TICK_MS;
	s->now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	timer_wheel_init(&s->wheel, s->now_ms, tick);
	return http_gzip_init(&s->gzip);
}

void server_fini(struct server *s)
{
	buf_pool_fini(&s->in_pool);
	buf_pool_fini(&s->out_pool);
	buf_pool_fini(&s->body_pool);
	buf_pool_fini(&s->xbuf_pool);
	http_gzip_fini(&s->gzip);
	for (unsigned i = 0; i < HTTP_STREAMS_MAX; i++)
		http_gzip_fini(&s->gzip_streams[i]);
	if (s->gzip_mem)
		munmap(s->gzip_mem, GZIP_MEM_SIZE);
	if (s->scratch)
		munmap(s->scratch, SERVER_SCRATCH_SIZE);
	free(s->streams);
	s->gzip_mem = s->scratch = NULL;
	s->streams = NULL;
}

uint32_t server_tick_ms(const struct server *s)
{
	return s->wheel.tick_ms;
}

void server_set_clock(struct server *s, uint64_t now_ns, int64_t wall_ns)
{
	s->now_ns = now_ns;
	s->now_ms = now_ns / 1000000u;
	int64_t second = wall_ns / 1000000000;
	if (second != s->date_second) {
		s->date_second = second;
		http_format_date_line(s->date_line, second);
	}
	s->now_wall_ms = wall_ns / 1000000;
}

void server_tick(struct server *s)
{
	timer_wheel_advance(&s->wheel, s->now_ms, conn_timer_fired, s);
	if (s->stream_count && s->now_ms >= s->next_event_ms) {
		stream_push_events(s);
		s->next_event_ms = s->now_ms + s->cfg->sse_interval_ms;
	}
}

bool server_pass_begin(struct server *s)
{
	s->producers_due = s->producers_again;
	s->producers_again = 0;
	return s->producers_due != 0;
}

void server_stop(struct server *s)
{
	s->stopping = true;
}

uint64_t server_resident(const struct server *s)
{
	const struct buf_pool *pools[] = {&s->in_pool, &s->out_pool, &s->body_pool,
					  &s->xbuf_pool};
	uint64_t n = resident_bytes(s->streams, (size_t)s->slots * sizeof *s->streams) +
		     resident_bytes(s->scratch, SERVER_SCRATCH_SIZE) +
		     (s->gzip_mem ? resident_bytes(s->gzip_mem, GZIP_MEM_SIZE) : 0);
	for (size_t p = 0; p < sizeof pools / sizeof pools[0]; p++)
		n += resident_bytes(pools[p]->base, (size_t)pools[p]->size * pools[p]->count);
	return n;
}

size_t server_refusal(struct server *s, char *buf, size_t cap, unsigned status,
		      const char *message)
{
	struct http_out out = {buf, 0, (uint32_t)cap};
	struct http_exchange x = {.close = true, .date_line = s->date_line, .out = &out};
	conn_format_request_id(s, &x);
	if (http_reply_error(&x, status, NULL, message, NULL, NULL, "Retry-After: 1\r\n") < 0)
		return 0;
	return out.len;
}
