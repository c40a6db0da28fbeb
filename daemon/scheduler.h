/*
 * scheduler.h — which queued job runs next, and where (its names are
 * sched_*). Pure logic: no I/O, no clock, no processes; the daemon feeds it
 * and acts on its answers, and the unit test drives it with fake devices.
 *
 * Admission is by a per-device reservation ledger: a job starts on a device
 * only if reserved + estimate + headroom <= capacity and the device has a
 * free slot; several small jobs may share a GPU.
 *
 * Order: fairness between owners first (the owner with the fewest running
 * jobs goes first; ties go to the owner who started a job least recently),
 * then within an owner by priority (higher first), then FIFO (seq).  A job
 * that fits no device *now* does not block others (no head-of-line
 * blocking); a job that can never fit any device is reported by
 * sched_fits_ever() at submit time.
 */
#ifndef SCHEDULER_H
#define SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

enum sched_dev_kind { SCHED_CPU = 0, SCHED_CUDA = 1 };

struct sched_device {
	char name[32]; /* "cpu", "cuda:0" */
	enum sched_dev_kind kind;
	int index;         /* cuda ordinal; 0 for cpu */
	uint64_t capacity; /* bytes the ledger may hand out */
	uint64_t reserved; /* bytes granted to running jobs */
	int slots;         /* max concurrent jobs */
	int running;
};

struct sched_job {
	int64_t id;
	uint32_t owner;
	int priority;
	uint64_t seq;          /* submit order */
	uint64_t host_bytes;   /* estimate on cpu */
	uint64_t device_bytes; /* estimate on a GPU */
	char device_req[32];   /* "auto", "cpu", "cuda", "cuda:N" */
	double flops;          /* the estimate's work; "auto" policy */
};

/* "auto" jobs above this many estimated flops wait for a GPU instead of
 * falling back to the cpu when GPUs exist (config auto_cpu_max_flops; about
 * a GSN with N ~ 1000 units). */
#define SCHED_AUTO_CPU_MAX_FLOPS_DEFAULT 2e11

struct sched;

struct sched *sched_new(uint64_t headroom_bytes);
void sched_free(struct sched *s);
/* "auto" jobs with flops > max_flops never fall back to the cpu while some
 * GPU could ever hold them (default SCHED_AUTO_CPU_MAX_FLOPS_DEFAULT; a
 * negative value keeps every job on GPUs). */
void sched_set_auto_cpu_max_flops(struct sched *s, double max_flops);
/* Bytes a job reserves on a device of this kind: device_bytes on a GPU;
 * host_bytes + device_bytes on the cpu, where the backend's "device"
 * buffers are host memory too (saturating). The one place this is
 * computed. */
uint64_t sched_job_bytes(const struct sched_job *j, enum sched_dev_kind kind);
/* Devices are added once at start-up. Returns its index or -1. */
int sched_add_device(struct sched *s, const struct sched_device *d);
size_t sched_device_count(const struct sched *s);
const struct sched_device *sched_device_at(const struct sched *s, size_t i);

/* Queue a job (copied). 0 or NQ_ENOMEM. */
int sched_enqueue(struct sched *s, const struct sched_job *j);
/* Remove a queued job (cancel). 0 or NQ_ENOJOB. */
int sched_dequeue(struct sched *s, int64_t id);
size_t sched_queued(const struct sched *s);

/* 0 if the job could run on some device when that device is idle, else
 * NQ_ETOOLARGE (too big everywhere), NQ_ENODEV (a device name this server
 * has no device for) or NQ_EBADDEVICE (not a device name). */
int sched_fits_ever(const struct sched *s, const struct sched_job *j);

/* Pick the next job to start: removes it from the queue, reserves its bytes
 * on the chosen device, bumps the owner's running count, fills *job, *dev
 * (device index) and *grant (bytes reserved). Returns 1 when a job was
 * picked, 0 when nothing can start now. */
int sched_next(struct sched *s, struct sched_job *job, size_t *dev,
               uint64_t *grant);
/* A started job ended (any way): release its reservation. */
void sched_release(struct sched *s, int64_t id);

/* Why a queued job is not running (sched_plan). */
enum sched_wait {
	/* it fits now: the next start pass takes it */
	SCHED_WAIT_READY = 0,
	/* it fits now, but other owners' jobs ahead take the room */
	SCHED_WAIT_BEHIND,
	/* the same, behind its owner's own jobs */
	SCHED_WAIT_BEHIND_OWN,
	/* a device it may use has a free slot, not the memory */
	SCHED_WAIT_MEMORY,
	/* every device it may use has all slots busy */
	SCHED_WAIT_SLOT,
	/* "auto" and too big for the cpu: waits for a GPU */
	SCHED_WAIT_GPU,
	/* no device of this server can hold it */
	SCHED_WAIT_NEVER,
};

struct sched_plan_entry {
	int64_t id;
	uint32_t owner;
	enum sched_wait why;
	int dev;       /* device index the reason is about; -1 = none */
	uint64_t need; /* bytes it needs there (0 when dev < 0) */
};

/* The queue in the order it would start if every job fitted (fairness
 * between owners as sched_next, simulating each start), each with the
 * reason it waits, judged against the ledger now plus the jobs ahead of
 * it in this order that fit (BEHIND). Fills at most max entries; *n gets
 * how many. Changes nothing. 0 or NQ_ENOMEM. */
int sched_plan(const struct sched *s, struct sched_plan_entry *out, size_t max,
               size_t *n);
/* Human text of an entry: "waiting for memory on cuda:0" ... */
void sched_wait_text(const struct sched *s, const struct sched_plan_entry *e,
                     char *buf, size_t len);

#endif
