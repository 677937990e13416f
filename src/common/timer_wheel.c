/*
 * Hashed timer wheel (see include/ringside/timer_wheel.h).
 *
 * Tick t stands for time t * tick_ms. A node due at deadline_ms gets
 * expires_tick = ceil(deadline_ms / tick_ms) and lives in slot
 * expires_tick % TIMER_WHEEL_SLOTS, however many revolutions away that is;
 * advancing to now_ms fires every node with expires_tick <= now_ms / tick_ms,
 * so a node never fires before its deadline.
 *
 * Invariant between calls: every armed node has expires_tick >= w->tick.
 * A node whose deadline had already passed when it was scheduled gets
 * expires_tick == w->tick, which is why advance always visits the slot of
 * w->tick again.
 */
#include "ringside/timer_wheel.h"

#include <assert.h>

#define SLOT_MASK ((uint64_t)TIMER_WHEEL_SLOTS - 1)

_Static_assert((TIMER_WHEEL_SLOTS & (TIMER_WHEEL_SLOTS - 1)) == 0,
	       "TIMER_WHEEL_SLOTS must be a power of two");

static void list_init(struct timer_node *head)
{
	head->next = head;
	head->prev = head;
}

static bool list_empty(const struct timer_node *head)
{
	return head->next == head;
}

static void list_add(struct timer_node *head, struct timer_node *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static void list_del(struct timer_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = NULL;
	n->prev = NULL;
}

/* Moves every node of from onto the empty list to. */
static void list_splice(struct timer_node *from, struct timer_node *to)
{
	assert(list_empty(to));
	if (list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	list_init(from);
}

static struct timer_node *slot_of(struct timer_wheel *w, uint64_t tick)
{
	return &w->slots[tick & SLOT_MASK];
}

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms, uint32_t tick_ms)
{
	assert(tick_ms > 0);
	for (size_t i = 0; i < TIMER_WHEEL_SLOTS; i++)
		list_init(&w->slots[i]);
	w->tick_ms = tick_ms;
	w->tick = now_ms / tick_ms;
	w->armed = 0;
}

void timer_wheel_schedule(struct timer_wheel *w, struct timer_node *n,
			  uint64_t deadline_ms)
{
	/* Round up: the first tick at or after the deadline, never before. */
	uint64_t t = deadline_ms / w->tick_ms + (deadline_ms % w->tick_ms != 0);

	if (timer_node_armed(n))
		list_del(n);
	else
		w->armed++;
	/* Already due: park it on the current tick, which the next advance
	 * visits first, whatever now_ms it is given. */
	if (t < w->tick)
		t = w->tick;
	n->expires_tick = t;
	list_add(slot_of(w, t), n);
}

void timer_wheel_cancel(struct timer_wheel *w, struct timer_node *n)
{
	if (!timer_node_armed(n))
		return;
	assert(w->armed > 0);
	list_del(n);
	w->armed--;
}

/*
 * Fires the due nodes of one slot. The slot is first moved to a local list,
 * so nodes that fire() schedules into this slot wait for the next advance,
 * and nodes fire() cancels or re-schedules simply leave the local list.
 */
static size_t expire_slot(struct timer_wheel *w, struct timer_node *slot,
			  void (*fire)(struct timer_node *n, void *ctx),
			  void *ctx)
{
	struct timer_node pending;
	size_t fired = 0;

	list_init(&pending);
	list_splice(slot, &pending);
	while (!list_empty(&pending)) {
		struct timer_node *n = pending.next;

		list_del(n);
		if (n->expires_tick > w->tick) {
			list_add(slot, n); /* a later revolution */
			continue;
		}
		w->armed--;
		fired++;
		fire(n, ctx);
	}
	return fired;
}

size_t timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms,
			   void (*fire)(struct timer_node *n, void *ctx),
			   void *ctx)
{
	uint64_t now_tick = now_ms / w->tick_ms;
	uint64_t from = w->tick;
	size_t fired = 0;

	if (now_tick < from) /* the clock went back: treat as no time passed */
		now_tick = from;
	w->tick = now_tick;
	if (w->armed == 0)
		return 0;
	/*
	 * After a long stall (process stopped, a slow callback) one revolution
	 * already visits every slot; walking the remaining ticks would only
	 * revisit them.
	 */
	if (now_tick - from >= TIMER_WHEEL_SLOTS)
		from = now_tick - (TIMER_WHEEL_SLOTS - 1);
	/*
	 * The slot of now_tick goes first: a node fire() schedules with a
	 * deadline already past lands there, and must wait for the next
	 * advance rather than fire twice in this one.
	 */
	fired += expire_slot(w, slot_of(w, now_tick), fire, ctx);
	for (uint64_t t = from; t < now_tick; t++)
		fired += expire_slot(w, slot_of(w, t), fire, ctx);
	return fired;
}
