/*
 * spool.h — the job directory layout (<state_dir>/jobs/<id>/, see
 * README.md), shared by neuroqd (submit, result, logs) and neuroq-worker
 * (inputs, outputs, error).
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nq_value.h"

/* Names of inputs and outputs become file names: [A-Za-z0-9_.-], 1..64
 * chars, not starting with '.'. 1 when fine. */
int spool_name_ok(const char *name);
/* <state_dir>/jobs/<id>. 0 or NQ_EINTERNAL (too long). */
int spool_job_dir(const char *state_dir, int64_t id, char *buf, size_t n);
/* <state_dir> and <state_dir>/jobs made when missing, and (new or not)
 * private to the service user (0700). 0 or NQ_EIO with errno. */
int spool_init(const char *state_dir);
/* executor = slurm: <root> and <root>/jobs made when missing, 0711 (the
 * owners' Slurm jobs pass through to their own job dir, list nothing). 0
 * or NQ_EIO with errno. */
int spool_init_shared(const char *root);
/* executor = slurm: the job dir and everything in it (never through a
 * link) handed to uid, the group kept, before its sbatch: the job runs as
 * its owner on a node and reads in/, writes out/ there. 0 or NQ_EIO with
 * errno. */
int spool_give_to_owner(const char *job_dir, uid_t uid);
/* The owner's umask, kept with the job: <dir>/umask, written at staging,
 * read when its worker starts (SPOOL_UMASK_DEFAULT when none or bad). */
#define SPOOL_UMASK_DEFAULT 022u
int spool_write_umask(const char *dir, unsigned um);
unsigned spool_read_umask(const char *job_dir);
/* What the spool alone says about a job (<dir>/job, "key value" lines,
 * written at staging): whose it is and what it asked for, so that
 * `neuroqd --recover` can rebuild its row without the database. The
 * estimate is the submit's (before the job type's check()). */
struct spool_meta {
	uint32_t owner;
	char type[32];
	int priority;
	char device_req[32];
	uint64_t host_bytes, device_bytes;
	double flops;
	char idem[128]; /* the submit's idempotency key, "" = none */
};
/* The `job` file: one "key value" line each; the key idem is written as
 * hex (its bytes are the client's), read back only when it decodes. */
int spool_write_meta(const char *dir, const struct spool_meta *m);
/* 0, or NQ_EIO (missing, or owner/type absent or bad). */
int spool_read_meta(const char *job_dir, struct spool_meta *m);
/* 1 when job_dir's `job` file names this owner and type (or the dir has
 * none: staged by an older neuroqd), 0 when it is another job's or cannot
 * be read: before an rm -rf of a job's dir. */
int spool_dir_is_job(const char *job_dir, uint32_t owner, const char *type);
/* One process at a time on a state dir (neuroqd, neuroqd --recover): an
 * exclusive flock on <state_dir>/neuroqd.lock, held until the process
 * ends. The fd (>= 0), or -NQ_ESTATE when another process holds it, or
 * -NQ_EIO (errno set). */
int spool_lock(const char *state_dir);
/* The highest <id> among <state_dir>/jobs/<id> dirs; 0 when none. */
int64_t spool_max_job_id(const char *state_dir);
/* The staged inputs' SHA-256 digests, "<hex>  in/<name>.npy" a line. */
#define SPOOL_MANIFEST "in.sha256"
/* Worker side, before anything reads in/: each input's digest against the
 * manifest, and no file in in/ that it does not name. 0 (also when the
 * job has no manifest: staged by an older neuroqd), or NQ_EIO with a
 * message naming the damaged input. */
int spool_verify_inputs(const char *job_dir, char *msg, size_t msglen);
/* Files and dirs: 0, or NQ_EIO with errno left set to the cause (for the
 * caller's message: read it at once). rm_rf of a missing path is 0; it
 * works by dir fds and never follows a link, not even one swapped in while
 * it runs. */
int spool_mkdir_p(const char *path, mode_t mode);
int spool_rm_rf(const char *path);
/* rel (names joined by '/', no "." or "..") under dir, opened for reading
 * without following a link anywhere below dir; a file must be a plain file
 * with one link (want_dir: a dir). Under Slurm a job's owner owns its job
 * dir: what they plant there never leads the daemon to another's file.
 * Every read of a job dir goes through here. The fd, or -1 with errno
 * (ELOOP/ENOTDIR: a link on the way, EPERM: not a plain file). */
int spool_open_in(const char *dir, const char *rel, int want_dir);
/* 1 when rel under dir is a dir (spool_open_in: no link followed), else 0:
 * whether a job wrote its out/. */
int spool_dir_in(const char *dir, const char *rel);
int spool_fsync_dir(const char *path);

/* Submit, before the row exists: write params.mp and in/<name>.npy into a
 * fresh staging dir <state_dir>/jobs/.new-XXXXXX (fsynced); its path goes
 * to tmp. 0, NQ_EBADPARAM (a bad input name) or NQ_EIO with msg. */
int spool_stage(const char *state_dir, const struct nq_map *params,
                const struct nq_map *inputs, char *tmp, size_t tmplen,
                char *msg, size_t msglen);
/* Rename the staging dir to the job's dir once the row has its id; never
 * over an existing dir (NQ_EIO, "exists already"). */
int spool_commit(const char *tmp, const char *state_dir, int64_t id, char *msg,
                 size_t msglen);
/* Removes staging dirs a crash left behind. */
void spool_clean_staging(const char *state_dir);

/* error file: "<code> <NAME>\n<message>". */
int spool_write_error(const char *job_dir, int code, const char *message);
/* 0 with code/message, or NQ_EIO when there is no (valid) error file. */
int spool_read_error(const char *job_dir, int *code, char *message,
                     size_t msglen);
/* The tail (last max bytes) of the job's log; "" when none. *text malloc'd. */
int spool_read_log(const char *job_dir, size_t max, char **text);

/* Worker side. */
int spool_read_params(const char *job_dir, struct nq_value *params, char *msg,
                      size_t msglen);
/* Every in/<name>.npy into inputs (name → NQ_ARRAY). */
int spool_read_inputs(const char *job_dir, struct nq_map *inputs, char *msg,
                      size_t msglen);
/* Arrays → out/<name>.npy, everything else → out/result.json and
 * out/result.mp; all into out.tmp/, renamed to out/ at the end. */
int spool_write_outputs(const char *job_dir, const struct nq_map *out,
                        char *msg, size_t msglen);
/* Daemon result: out/<name>.npy and out/result.mp into one map. names: NULL or
 * a list of strings (only those; a missing one is NQ_EBADPARAM). */
int spool_read_outputs(const char *job_dir, const struct nq_value *names,
                       struct nq_map *out, char *msg, size_t msglen);

#endif
