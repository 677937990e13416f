/*
 * The standard process collector (prom-client's defaults), read from
 * /proc. Reading /proc/self/fd costs time proportional to the open
 * descriptors (milliseconds at 10 000 connections), so the main thread
 * samples once a second and workers only copy the last sample.
 */
#ifndef RINGSIDE_METRICS_PROCESS_H
#define RINGSIDE_METRICS_PROCESS_H

#include <stdint.h>

struct process_stats {
	double cpu_user_seconds;    /* process_cpu_user_seconds_total */
	double cpu_system_seconds;  /* process_cpu_system_seconds_total */
	uint64_t resident_bytes;    /* process_resident_memory_bytes (VmRSS) */
	uint64_t virtual_bytes;     /* process_virtual_memory_bytes (VmSize) */
	uint64_t heap_bytes;        /* process_heap_bytes (VmData, as prom-client on Linux) */
	uint64_t open_fds;          /* process_open_fds (entries of fd/) */
	uint64_t max_fds;           /* process_max_fds (soft "Max open files") */
	double start_time_seconds;  /* process_start_time_seconds (Unix time) */
};

/*
 * Reads every field. `proc_self` is the directory to read ("/proc/self";
 * tests pass a fake tree with status, limits, stat, fd/ and a "stat" of
 * the whole system at `proc_root`/stat for btime). `proc_root` is "/proc".
 * CPU times come from getrusage when proc_self is "/proc/self" (microsecond
 * precision), else from utime/stime of proc_self/stat. Returns 0 or a
 * negative errno (the fields it could read are still set).
 */
int process_stats_read(struct process_stats *s, const char *proc_root, const char *proc_self);

#endif
