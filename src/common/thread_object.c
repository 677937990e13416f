/* Per-thread objects (ringside/thread_object.h). */
#include "ringside/thread_object.h"

#include <stddef.h>

/* Guards the making of keys, once per object for the process. */
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;

void *thread_object_get(struct thread_object *t)
{
	int state = atomic_load_explicit(&t->state, memory_order_acquire);
	if (state == 0) {
		pthread_mutex_lock(&keys_lock);
		state = atomic_load_explicit(&t->state, memory_order_relaxed);
		if (state == 0) {
			state = pthread_key_create(&t->key, t->destroy) == 0 ? 1 : -1;
			/* Release: a thread that sees 1 sees the key. */
			atomic_store_explicit(&t->state, state, memory_order_release);
		}
		pthread_mutex_unlock(&keys_lock);
	}
	if (state < 0)
		return NULL;
	void *p = pthread_getspecific(t->key);
	if (!p && (p = t->make()) != NULL && pthread_setspecific(t->key, p) != 0) {
		t->destroy(p);
		p = NULL;
	}
	return p;
}
