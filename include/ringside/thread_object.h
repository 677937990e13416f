/*
 * One object per thread, made on its first use and destroyed when the
 * thread exits: for state a worker reuses from one request to the next
 * but may not share with other threads (a libcrypto context, keys a
 * handshake made).
 *
 *   static void *make_thing(void);          NULL if it cannot be made
 *   static void free_thing(void *p);
 *   static struct thread_object things = THREAD_OBJECT(make_thing, free_thing);
 *   struct thing *t = thread_object_get(&things);   NULL: none for now
 */
#ifndef RINGSIDE_THREAD_OBJECT_H
#define RINGSIDE_THREAD_OBJECT_H

#include <pthread.h>
#include <stdatomic.h>

struct thread_object {
	void *(*make)(void);
	void (*destroy)(void *);
	_Atomic int state; /* 0: no key yet; 1: key made; -1: no key can be made */
	pthread_key_t key;
};

#define THREAD_OBJECT(make_fn, destroy_fn) {.make = (make_fn), .destroy = (destroy_fn)}

/* This thread's object, made now if it has none. */
void *thread_object_get(struct thread_object *t);

#endif
