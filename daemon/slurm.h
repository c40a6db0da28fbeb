/*
 * slurm.h — the pure parts of the slurm executor (executor_slurm.c): the
 * sbatch command line of a job, squeue and sinfo output, and what a Slurm
 * end state plus the job's spool status file mean for neuroq. No I/O, no
 * processes: slurm_test drives them with the text Slurm 22.05 prints
 * (/work/shared/specs/slurm.md).
 */
#ifndef SLURM_H
#define SLURM_H

#include <stddef.h>
#include <stdint.h>

/* The job name neuroq gives a job: "neuroq-<id>". */
#define SLURM_JOB_PREFIX "neuroq-"
/* The batch shell gets SIGUSR1 this long before the time limit. */
#define SLURM_WARN_S 60
/* --mem never below this (MiB): start-up, libraries, the inputs' copy */
#define SLURM_MEM_FLOOR_MB 256

/* Files in the job dir (beside params.mp, in/, out/, error, log). */
#define SLURM_SCRIPT   "slurm.sh"  /* the batch script */
#define SLURM_OUTPUT   "slurm.out" /* its stdout+stderr (--output) */
#define SLURM_PROGRESS "progress"  /* the worker's stdout lines */
#define SLURM_STATUS   "status"    /* "<exit status>\n", renamed in */

struct slurm_submit {
	const char *bin_dir;  /* "" = PATH */
	int64_t id;           /* neuroq's job id */
	const char *job_dir;  /* absolute, on the shared spool */
	int gpus;             /* --gres=gpu:N; 0 for cpu jobs */
	uint64_t mem_bytes;   /* --mem, rounded up to MiB (floor above) */
	int64_t time_limit_s; /* --time, rounded up to minutes; <= 0: none */
	const char *partition, *account, *qos; /* "" or NULL: not passed */
	const char *extra; /* slurm_sbatch_args, whitespace-split */
};

/* argv of the sbatch call (NULL-terminated) in argv[0..max), its strings
 * in buf. Returns argc, or -1 when max or buflen is too small. */
int slurm_sbatch_argv(const struct slurm_submit *s, char **argv, size_t max,
                      char *buf, size_t buflen);
/* "<bin_dir>/<prog>", or prog alone when bin_dir is empty. 0 or -1. */
int slurm_bin(const char *bin_dir, const char *prog, char *out, size_t n);
/* The batch script: runs worker_argv (already quoted-safe: each word is
 * single-quoted here) with stdout to SLURM_PROGRESS, forwards SIGTERM and
 * SIGUSR1 to it as SIGTERM, then writes SLURM_STATUS atomically. Into
 * out; 0 or -1 when it does not fit. */
int slurm_script(char *const *worker_argv, const char *job_dir, char *out,
                 size_t n);

/* sbatch --parsable prints "<id>" or "<id>;<cluster>": the id into out.
 * 0, or -1 when the line is not that. */
int slurm_parse_sbatch(const char *line, char *out, size_t n);

/* One line of `squeue -h -o '%i %T %r'`. */
struct slurm_row {
	char id[32];
	char state[32];  /* "PENDING", "RUNNING", "TIMEOUT" ... */
	char reason[64]; /* "Resources", "Priority", "None" ... */
};
/* 0, or -1 for a line that is not one. */
int slurm_parse_squeue(const char *line, struct slurm_row *r);

/* What a Slurm job state is to neuroq. */
enum slurm_phase {
	SLURM_PENDING, /* waits in Slurm: the reason is shown */
	SLURM_RUNNING, /* RUNNING, COMPLETING, ... */
	SLURM_ENDED,   /* a final state: slurm_decide */
	SLURM_UNKNOWN, /* a state this version does not know: wait */
};
enum slurm_phase slurm_phase(const char *state);

/* The end of a Slurm job as neuroq records it. */
enum slurm_action {
	SLURM_WAIT,    /* not decided yet (status file not there yet) */
	SLURM_DONE,    /* DONE */
	SLURM_FAIL,    /* FAILED with code/message */
	SLURM_CANCEL,  /* CANCELED */
	SLURM_RETRY,   /* another attempt per max_attempts (message: why) */
	SLURM_ERRFILE, /* FAILED/CANCELED as the worker's error file says */
};
struct slurm_end {
	const char *state; /* squeue's final state; NULL: slurmctld forgot it */
	int have_status;   /* the job's status file exists */
	int status;        /* its exit status (worker's; 128+N on signal N) */
	int warned;        /* the status says time_limit (SIGUSR1 came) */
	int have_out;      /* out/ exists (the worker wrote its result) */
	int canceled;      /* neuroq asked for the cancel */
	int waited;        /* polls since the end was first seen */
	int64_t time_limit_s;
};
/* Fills *code (nq error) and msg. Order: a whole result (status 0 and
 * out/) is DONE; a cancel neuroq asked for is CANCELED; TIMEOUT/DEADLINE
 * (or the status's time_limit) FAIL with ETIMEDOUT; OUT_OF_MEMORY with
 * ENOMEM; NODE_FAIL/PREEMPTED/BOOT_FAIL retry; CANCELLED by someone else is
 * CANCELED; then the status file: 1..128 the worker's error file, > 128 a
 * signal (retry); no status and forgotten by slurmctld: retry; no status
 * yet: wait a few polls, then FAIL. */
enum slurm_action slurm_decide(const struct slurm_end *e, int *code, char *msg,
                               size_t msglen);

/* One line of `sinfo -h -N -O NodeList:N,Partition:N,Gres:N,GresUsed:N,
 * Memory:N,CPUsState:N,StateCompact:N` (fields separated by blanks). */
struct slurm_node {
	char node[64];
	char partition[64]; /* without the default's '*' */
	int gpus, gpus_used;
	char gpu_type[32]; /* "a100", "" when untyped */
	uint64_t mem_mb;
	int cpus_alloc, cpus_idle, cpus_other, cpus_total;
	char state[32];
};
int slurm_parse_sinfo(const char *line, struct slurm_node *n);
/* GPUs in a gres string ("gpu:a100:4(S:0-1),shard:8", "gpu:2",
 * "gpu:fake:1(IDX:0)", "(null)"); the first typed GPU's type to type. */
int slurm_gres_gpus(const char *gres, char *type, size_t typelen);

#endif
