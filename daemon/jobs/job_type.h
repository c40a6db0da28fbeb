/*
 * job_type.h — what a kind of job is: a small table of functions.
 *
 * Jobs never see NNG, libuv or SQLite.  validate() and estimate() run in the
 * daemon at submit time (cheap, no device) on a threadpool thread, several
 * at once: they must not touch shared mutable state, and they never open a
 * path the user supplied (the daemon has rights the user has not). check()
 * and run() run in a worker process (daemon/worker_main.c) as the job's
 * owner; run() with a kernels backend already opened on the device the
 * scheduler picked.
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
#include <sys/types.h>

#include "kern.h"
#include "nq_value.h"

struct job_estimate {
	uint64_t host_bytes;   /* peak host memory of run() */
	uint64_t device_bytes; /* peak device memory of run() on a GPU */
	double flops;          /* rough work, for ETA and scheduling hints */
};

struct userpath_id; /* daemon/jobs/userpath.h */
struct job_desc;    /* daemon/jobs/params.h */

/* What check() and run() know of the owner and the service. */
struct job_check_ctx {
	/* Directories no user path may resolve into (the state dir, the socket
	 * dirs), stat()ed before the process dropped to the owner; pass them
	 * to userpath_check() / userpath_open(). */
	const struct userpath_id *deny;
	size_t ndeny;
	mode_t owner_umask; /* files 0666 & ~it, dirs 0777 & ~it */
	/* 1: the owner is not the service user, so the job's spool (0700
	 * state dir) is out of the owner's reach: outputs the owner must read
	 * cannot go there. */
	int other_user;
};

struct job_ctx {
	const struct kern_backend *kb; /* opened on the granted device */
	const char *job_dir;           /* the job's spool directory, to open
	                                * files in ("." with --owner: the
	                                * worker's working directory) */
	const char *ckpt_dir; /* job_dir/ckpt, exists, survives requeue */
	/* Device bytes the scheduler granted. spikesort halves its batch
	 * until its modelled device bytes (ss_batch_device_bytes) fit. gsn
	 * does not read it: its device memory is mostly n×n matrices (the
	 * covariances, their eigenvectors, the biconvex iterates: about 8 n²
	 * elements) that its eigendecompositions need whole, and its N × C·T
	 * residual block, which could be streamed through the Gram in column
	 * chunks, is also the sample matrix the spectral level selection
	 * reads; so a gsn job runs only where its whole estimate fits. */
	uint64_t grant_bytes;
	int attempt; /* 1 on the first run */
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
	/* The owner's umask for files made in user paths, and the denied
	 * directories (see job_check_ctx). run() re-checks every user path:
	 * a symlink may have changed since submit. */
	mode_t owner_umask;
	const struct userpath_id *deny;
	size_t ndeny;
	/* job_dir's name for results and messages (the path the daemon
	 * gave); NULL: job_dir. */
	const char *job_dir_name;
};

struct job_type {
	const char *name; /* "gsn", "spikesort" */
	/* Its parameters, inputs and outputs (params.h): validate() checks
	 * by it, the `describe` op and the generated docs show it. */
	const struct job_desc *desc;
	/* Check params and inputs without touching a device. Returns 0, or an
	 * nq_err code (NQ_EBADPARAM, NQ_EBADARRAY, NQ_EBADDATA) with a message
	 * in msg that tells the user what is wrong and what is expected. */
	int (*validate)(const struct nq_map *params,
	                const struct nq_map *inputs, char *msg, size_t msglen);
	/* Memory and work for these params (called after validate() passed).
	 * inputs may be NULL when only shapes are known: shapes then come from
	 * the "shapes" of the caller via params (not used by gsn). Like
	 * validate(), it never opens a path the user supplied: a figure that
	 * needs a file (spikesort's recording length) comes from check(). */
	int (*estimate)(const struct nq_map *params,
	                const struct nq_map *inputs, struct job_estimate *est);
	/* Optional. The submit-time step that runs as the job's owner: in
	 * `neuroq-worker check`, after the process dropped to the owner's uid,
	 * gid and groups (daemon/runas.h). It is where every user-supplied
	 * path is opened at submit (readable input, creatable and writable
	 * output dir), each through userpath_check() against c->deny, and the
	 * one that may read file sizes: it fills est (which then replaces
	 * estimate()'s). Returns 0 or an nq_err code with a message that names
	 * the parameter and the user's own path. NULL: nothing to check. */
	int (*check)(const struct nq_map *params, const struct nq_map *inputs,
	             const struct job_check_ctx *c, struct job_estimate *est,
	             char *msg, size_t msglen);
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
/* The tables (params.h) of every job type, or of the one named (name not
 * NULL), as a list of describe maps into *list. 0, NQ_EBADTYPE (no such
 * type) or NQ_ENOMEM. */
int job_type_describe(const char *name, struct nq_value *list);

#endif
