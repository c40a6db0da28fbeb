/*
 * job_type.h — what a kind of job is: a small table of functions.
 *
 * Jobs never see NNG, libuv or SQLite.  validate() and estimate() run in the
 * daemon at submit time (cheap, no device) on a threadpool thread, several
 * at once: they must not touch shared mutable state. run() runs in a worker
 * process (daemon/worker_main.c) with a kernels backend already opened on
 * the device the scheduler picked.
 *
 * Params are a msgpack map decoded into struct nq_map (proto/nq_value.h);
 * inputs are a map of name → NQ_ARRAY values (the submit's "inputs"); outputs
 * are a map the job fills: arrays (written as out/<name>.npy) and scalars
 * (ints, floats, bools, strings; written to out/result.json).
 */
#ifndef JOB_TYPE_H
#define JOB_TYPE_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"
#include "nq_value.h"

struct job_estimate {
	uint64_t host_bytes;   /* peak host memory of run() */
	uint64_t device_bytes; /* peak device memory of run() on a GPU */
	double flops;          /* rough work, for ETA and scheduling hints */
};

struct job_ctx {
	const struct kern_backend *kb; /* opened on the granted device */
	const char *job_dir;           /* the job's spool directory */
	const char *ckpt_dir;          /* job_dir/ckpt, exists, survives requeue */
	uint64_t grant_bytes;          /* device bytes the scheduler granted */
	int attempt;                   /* 1 on the first run */
	/* Report progress in [0,1] and the current stage ("noise", "data",
	 * "biconvex" …). Cheap; rate-limited by the worker. */
	void (*progress)(struct job_ctx *ctx, double frac, const char *stage);
	/* Nonzero once the job was canceled or the worker is draining; run()
	 * should return NQ_ECANCELED at its next safe point. */
	int (*canceled)(struct job_ctx *ctx);
	/* Log one line (key=value style) to the job's log. */
	void (*log)(struct job_ctx *ctx, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));
	void *priv; /* worker's */
};

struct job_type {
	const char *name; /* "gsn", "spikesort" */
	/* Check params and inputs without touching a device. Returns 0, or an
	 * nq_err code (NQ_EBADPARAM, NQ_EBADARRAY, NQ_EBADDATA) with a message
	 * in msg that tells the user what is wrong and what is expected. */
	int (*validate)(const struct nq_map *params, const struct nq_map *inputs,
	                char *msg, size_t msglen);
	/* Memory and work for these params (called after validate() passed).
	 * inputs may be NULL when only shapes are known: shapes then come from
	 * the "shapes" of the caller via params (not used by gsn). */
	int (*estimate)(const struct nq_map *params, const struct nq_map *inputs,
	                struct job_estimate *est);
	/* Run. Fills out (arrays and scalars). Returns 0 or an nq_err code with
	 * a message in msg. */
	int (*run)(struct job_ctx *ctx, const struct nq_map *params,
	           const struct nq_map *inputs, struct nq_map *out, char *msg,
	           size_t msglen);
	/* BLAS threads for a run on the cpu device; 0: the library's default.
	 * A job of many small gemms sets 1: between them OpenBLAS's helper
	 * threads only spin. OPENBLAS_NUM_THREADS / OMP_NUM_THREADS win. */
	int cpu_blas_threads;
};

/* The registry (daemon/jobs/registry.c). NULL when unknown. */
const struct job_type *job_type_find(const char *name);
/* NULL-terminated list of every job type. */
const struct job_type *const *job_type_all(void);

#endif
