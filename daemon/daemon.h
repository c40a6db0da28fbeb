/*
 * daemon.h — the daemon's state: one struct, owned by the libuv loop thread
 * (main.c fills it; server, worker, probe and events read and change it).
 * Nothing else: the modules that act on it have their own headers.
 */
#ifndef DAEMON_H
#define DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "devices.h"

struct access;
struct config;
struct executor_ops;
struct metrics;
struct net;
struct probe;
struct sched;
struct store;
struct worker;
struct executor_end;
struct slurm_exec;

struct daemon {
	uv_loop_t *loop;
	const struct config *cfg;
	struct access *access; /* who is an administrator (access.h) */
	struct store *store;
	struct sched *sched;
	struct net *net;
	struct device_info devs[DEVICES_MAX];
	size_t ndevs;
	const struct executor_ops *exec; /* where jobs run (executor.h) */
	struct worker *workers;          /* running jobs (executor_local.c) */
	struct slurm_exec *slurm; /* executor = slurm (executor_slurm.c) */
	int draining;             /* no new submits, no new starts */
	double started;           /* unix seconds */
	struct probe *probe;      /* the background device probe (probe.c) */
	struct metrics *metrics;  /* process-lifetime counters (metrics.c) */
	uint64_t probe_last_ms;   /* uv_now() when the last one started */
	int inflight;             /* requests with a threadpool work item */
	int stopping;             /* server_quiesce: no more work items */
	void (*quiet)(struct daemon *d);
	/* NEUROQ_TEST_SPOOL_DELAY_MS, read once at start (tests only): a
	 * submit's staging work item sleeps this long after writing */
	unsigned test_spool_delay_ms;
	/* a full disk (executor.c): job ends the store has not taken yet, and
	 * starts held; the retry timer writes / tries them every 2 s */
	struct executor_end *ends;
	int starts_held;
	uv_timer_t retry_timer;
	int retry_init;
};

#endif
