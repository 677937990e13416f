/*
 * Hashed timer wheel: one per worker, ticked by a single io_uring timeout,
 * so a deadline costs no SQE and no syscall (DESIGN.md "Deadlines").
 *
 * Nodes are intrusive (embedded in the connection slot) and the wheel
 * allocates nothing. Schedule, cancel and re-schedule are O(1); advancing
 * visits only the slots passed, and in each only the nodes that are due or
 * due in a later revolution.
 */
#ifndef RINGSIDE_TIMER_WHEEL_H
#define RINGSIDE_TIMER_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMER_WHEEL_SLOTS 512u /* power of two */

struct timer_node {
	struct timer_node *next, *prev; /* NULL when not armed */
	uint64_t expires_tick;
};

struct timer_wheel {
	struct timer_node slots[TIMER_WHEEL_SLOTS]; /* list heads (circular) */
	uint64_t tick;     /* last tick processed */
	uint32_t tick_ms;  /* resolution */
	uint32_t armed;    /* nodes currently scheduled */
};

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms, uint32_t tick_ms);

/* Arms n to fire at the first tick at or after deadline_ms (never earlier
 * than deadline_ms, never later than deadline_ms + tick_ms). Re-arms if n
 * was armed. A deadline already past fires on the next advance. */
void timer_wheel_schedule(struct timer_wheel *w, struct timer_node *n,
			  uint64_t deadline_ms);

/* Disarms n; harmless if it is not armed. */
void timer_wheel_cancel(struct timer_wheel *w, struct timer_node *n);

static inline bool timer_node_armed(const struct timer_node *n)
{
	return n->next != NULL;
}

/* Moves the wheel to now_ms and calls fire(n, ctx) for every node due,
 * in no particular order. Each node is disarmed before its call, so fire
 * may re-schedule it or cancel any other node. Returns the number fired. */
size_t timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms,
			   void (*fire)(struct timer_node *n, void *ctx),
			   void *ctx);

#endif
