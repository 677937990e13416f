/*
 * A client's side of a loopback TCP connection, for the unit tests that
 * run a real server in their own process (test_ring_*): connect with
 * TCP_NODELAY, send all, the monotonic clock. Plain C11, no cmocka:
 * failures return -1 or false for the test to assert on.
 */
#ifndef RINGSIDE_TESTS_LOOPBACK_H
#define RINGSIDE_TESTS_LOOPBACK_H

#include <stdbool.h>
#include <stdint.h>

/* A connected socket to 127.0.0.1:port, or -1. */
int loopback_connect(uint16_t port);

/* Sends all of s (MSG_NOSIGNAL); false if the connection refused some. */
bool loopback_send_str(int fd, const char *s);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t loopback_now_ms(void);

#endif
