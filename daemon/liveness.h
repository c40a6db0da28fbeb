/*
 * liveness.h — a running job's time limit and its worker's heartbeat: the
 * limit a job gets (its request, else a default from its estimate, never
 * above the administrator's max_job_seconds), where it is kept (the job's
 * spool dir, file time_limit), and the pure decision worker.c takes every
 * second: fine, hung (no stdout line for heartbeat_timeout_s) or over the
 * time limit.
 */
#ifndef LIVENESS_H
#define LIVENESS_H

#include <stdint.h>

/* The default limit: max(LIVENESS_FLOOR_S, LIVENESS_MULT × flops /
 * LIVENESS_RATE): 20 times the estimate's work at 1 GFLOP/s, a rate the cpu
 * backend beats on either job type even on a loaded 2-core machine (a GPU
 * by far), and never under 10 minutes (small jobs: start-up, reading the
 * inputs, a cold device). */
#define LIVENESS_FLOOR_S 600
#define LIVENESS_MULT    20.0
#define LIVENESS_RATE    1e9
/* what a submit may ask for: 1 s .. about 68 years */
#define LIVENESS_LIMIT_MAX INT32_MAX
/* the worker prints "heartbeat" this often (worker_main.c) */
#define LIVENESS_BEAT_MS 1000

enum liveness {
	LIVENESS_OK,
	LIVENESS_HUNG,       /* no line for the heartbeat timeout */
	LIVENESS_OVER_LIMIT, /* ran past its time limit */
};

/* The default limit in seconds for a job of this many estimated flops. */
int64_t liveness_default_s(double flops);
/* The limit a job runs under: requested (> 0) or the default, clamped to
 * max_s when max_s > 0. */
int64_t liveness_limit_s(int64_t requested, double flops, int64_t max_s);
/* Where a worker stands at now_ms: started at started_ms, its last stdout
 * line at beat_ms (its start before the first), hb_ms the heartbeat timeout
 * and limit_s the time limit (<= 0: none). Over the limit wins over hung. */
enum liveness liveness_check(uint64_t now_ms, uint64_t started_ms,
                             uint64_t beat_ms, uint64_t hb_ms, int64_t limit_s);

/* <dir>/time_limit: decimal seconds and a newline. 0 or NQ_EIO. */
int liveness_write(const char *dir, int64_t limit_s);
/* The job dir's time_limit; 0 when it has none or it is not a number (a
 * job from before this file). */
int64_t liveness_read(const char *job_dir);

#endif
