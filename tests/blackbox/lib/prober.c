/*
 * The /health prober thread: see prober.h. It never fails the test from
 * its own thread (cmocka's longjmp belongs to the test's); it writes
 * p->failure and h_prober_stop reports it.
 */
#include "prober.h"
#include "check.h"
#include "clock.h"
#include "sock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *prober_main(void *arg)
{
	struct h_prober *p = arg;
	int fd = h_try_connect(p->port);
	if (fd < 0) {
		snprintf(p->failure, sizeof p->failure, "connect: %d", fd);
		return NULL;
	}
	char buf[4096];
	static const char req[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
	for (int i = 0; i < 1000000 && !atomic_load(&p->stop); i++) {
		int64_t t0 = h_now_ms();
		size_t got = 0;
		if (h_send_all(fd, req, sizeof req - 1) < 0) {
			snprintf(p->failure, sizeof p->failure, "send failed");
			break;
		}
		/* The answer is one small read; wait for its end. */
		while (!memmem(buf, got, "{\"status\":\"ok\"}", 15)) {
			ssize_t n = h_recv(fd, buf + got, sizeof buf - got, 0);
			if (n <= 0) {
				snprintf(p->failure, sizeof p->failure, "recv: %zd", n);
				h_close(fd);
				return NULL;
			}
			got += (size_t)n;
		}
		int64_t took = h_now_ms() - t0;
		if (took > p->worst_ms)
			p->worst_ms = took;
		p->count++;
		h_sleep_ms(p->every_ms);
	}
	h_close(fd);
	return NULL;
}

void h_prober_start(struct h_prober *p, uint16_t port, int every_ms)
{
	memset(p, 0, sizeof *p);
	p->port = port;
	p->every_ms = every_ms;
	CHECK(pthread_create(&p->thread, NULL, prober_main, p) == 0, "prober thread");
}

void h_prober_stop(struct h_prober *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	CHECK(!p->failure[0], "the /health prober failed: %s", p->failure);
}
