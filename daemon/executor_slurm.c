/*
 * executor_slurm.c — the slurm executor (executor.h): one sbatch per job,
 * run as the job's owner, its job dir on the shared spool
 * (slurm_spool_dir); one batched squeue per slurm_poll_s for every job we
 * have in Slurm, plus each job's spool files (status, progress); cancel as
 * scancel --signal=TERM --full, then a plain scancel after the grace
 * period. The pure parts (command lines, parsing, what an end means) are
 * slurm.c's.
 *
 * A job is RUNNING in the store from its sbatch on (its row carries the
 * Slurm job id, backend_job_id); while Slurm keeps it pending the row's
 * pending_reason says why. The daemon may stop and start again at any
 * time: RUNNING rows with a backend_job_id are taken over at start
 * (slurm_open), and a job slurmctld has forgotten is judged by its status
 * file.
 */
#include "child.h"
#include "config.h"
#include "daemon.h"
#include "devices.h"
#include "devname.h"
#include "events.h"
#include "executor.h"
#include "liveness.h"
#include "log.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "nq_value.h"
#include "scheduler.h"
#include "slurm.h"
#include "spool.h"
#include "store.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLURM_SUBMIT_PARALLEL 4 /* sbatch processes at a time */
#define SLURM_CMD_TIMEOUT_MS  60000
#define SLURM_SINFO_MIN_MS    10000 /* devices: sinfo at most this often */
#define SLURM_GPU_CAPACITY    (1ull << 50) /* the node's GPU decides */
#define SLURM_SLOTS           1000000      /* Slurm queues, not neuroq */
#define SLURM_PROGRESS_MAX    65536 /* progress bytes read per job a poll */

enum sjob_phase {
	SJ_WAITING,    /* admitted, its sbatch not started yet */
	SJ_SUBMITTING, /* sbatch runs */
	SJ_IN_SLURM,   /* has a Slurm job id */
};

struct sjob {
	struct sjob *next;
	struct slurm_exec *x;
	struct executor_job j;
	enum sjob_phase phase;
	char bid[32];    /* the Slurm job id */
	char state[32];  /* its last squeue state; "" = not seen yet */
	char reason[64]; /* the pending reason as stored */
	int64_t limit_s;
	int cancel;      /* neuroq asked */
	int cancel_sent; /* 1: TERM sent, 2: plain scancel sent */
	uint64_t cancel_ms;
	int waited;       /* polls since its final state was seen */
	int polled;       /* its id is in the squeue call in flight */
	int64_t prog_off; /* bytes of the progress file read */
	uint64_t last_event_ms;
	char stage[64];
	char sbatch_err[256]; /* sbatch's last line that was not an id */
};

struct slurm_exec {
	struct daemon *d;
	struct sjob *jobs;
	uv_timer_t timer;
	int submitting;         /* sbatch children running */
	struct child *squeue;   /* the poll in flight */
	struct slurm_row *rows; /* its lines so far */
	size_t nrows, caprows;
	struct child *sinfo; /* a devices refresh in flight */
	struct slurm_node nodes[256];
	size_t nnodes, nnodes_new;
	struct slurm_node nodes_new[256];
	double nodes_at;   /* unix s of the snapshot */
	uint64_t sinfo_ms; /* uv_now() of the last refresh */
	void (*drain_done)(struct daemon *d);
};

static void slurm_pump(struct slurm_exec *x);
static void slurm_scancel(struct slurm_exec *x, const char *bid, int graceful);
/* the start-up sinfo (executor_slurm_devices): the devices reply's first
 * picture */
static struct slurm_node slurm_boot_nodes[256];
static size_t slurm_boot_n;
static double slurm_boot_at;

/* ---- helpers ------------------------------------------------------- */

static struct sjob *
sjob_find(struct slurm_exec *x, int64_t id)
{
	for (struct sjob *s = x->jobs; s != NULL; s = s->next) {
		if (s->j.id == id)
			return s;
	}
	return NULL;
}

static void
sjob_remove(struct slurm_exec *x, struct sjob *s)
{
	for (struct sjob **p = &x->jobs; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			free(s);
			return;
		}
	}
}

static void
job_dir(const struct slurm_exec *x, int64_t id, char *jd, size_t n)
{
	spool_job_dir(x->d->cfg->slurm_spool_dir, id, jd, n);
}

static int
file_in(const char *jd, const char *name, char *path, size_t n)
{
	int w = snprintf(path, n, "%s/%s", jd, name);

	return (w < 0 || (size_t) w >= n) ? -1 : 0;
}

/* The job ended in Slurm (or before it got there): the store and the
 * scheduler hear of it, the entry goes. */
static void
sjob_end(struct sjob *s, enum job_state st, int code, const char *msg)
{
	struct slurm_exec *x = s->x;
	struct daemon *d = x->d;

	sched_release(d->sched, s->j.id);
	log_info("slurm job ended id=%" PRId64 " slurm_id=%s slurm_state=%s",
	         s->j.id, s->bid[0] ? s->bid : "-",
	         s->state[0] ? s->state : "-");
	executor_finish(d, s->j.id, s->j.device, st, code, msg);
	sjob_remove(x, s);
}

/* Another attempt per max_attempts, else FAILED. */
static void
sjob_retry(struct sjob *s, const char *why)
{
	struct slurm_exec *x = s->x;
	struct daemon *d = x->d;
	char msg[512];

	sched_release(d->sched, s->j.id);
	log_warn("slurm attempt lost id=%" PRId64 " slurm_id=%s attempt=%d "
	         "reason=\"%s\"",
	         s->j.id, s->bid, s->j.attempt, why);
	/* whatever is left of it must not write into the next attempt's
	 * dir: harmless when it is gone */
	if (s->bid[0] != '\0')
		slurm_scancel(x, s->bid, 0);
	if (executor_retry(d, s->j.id, s->j.attempt, why, msg, sizeof(msg))) {
		sjob_remove(x, s);
		return;
	}
	executor_finish(d, s->j.id, s->j.device, JOB_FAILED, NQ_EFAILED, msg);
	sjob_remove(x, s);
}

/* A Slurm command, stdout and stderr as lines, as the daemon (root) or
 * (uid != euid) as uid with its primary group. */
static int
slurm_spawn(struct slurm_exec *x, char **argv, uint32_t uid, const char *cwd,
            void (*on_line)(void *, const char *, size_t, int),
            void (*on_exit)(void *, int64_t, int), void *arg,
            struct child **out, char *msg, size_t msglen)
{
	char *args[8 + 64];
	struct child_opts o;
	struct child *c = NULL;
	size_t a = 0;

	/* stderr into the line pipe too: sbatch's refusal is the job's
	 * error message */
	args[a++] = "/bin/sh";
	args[a++] = "-c";
	args[a++] = "exec \"$0\" \"$@\" 2>&1";
	for (size_t i = 0; argv[i] != NULL; i++) {
		if (a + 1 >= sizeof(args) / sizeof(args[0])) {
			snprintf(msg, msglen, "too many arguments");
			return NQ_EINTERNAL;
		}
		args[a++] = argv[i];
	}
	args[a] = NULL;
	memset(&o, 0, sizeof(o));
	o.argv = args;
	o.cwd = cwd;
	o.new_session = 1;
	o.timeout_ms = SLURM_CMD_TIMEOUT_MS;
	o.on_line = on_line;
	o.on_exit = on_exit;
	o.arg = arg;
	if (uid != (uint32_t) geteuid()) {
		struct passwd pw, *res = NULL;
		char buf[4096];
		if (getpwuid_r((uid_t) uid, &pw, buf, sizeof(buf), &res) != 0 ||
		    res == NULL) {
			snprintf(msg, msglen,
			         "uid %" PRIu32 " has no passwd entry", uid);
			return NQ_EPERM;
		}
		o.set_ids = 1;
		o.uid = uid;
		o.gid = (uint32_t) pw.pw_gid;
	}
	(void) x;
	if (child_spawn(x->d->loop, &o, &c, msg, msglen) != 0)
		return NQ_EINTERNAL;
	if (out != NULL)
		*out = c;
	return 0;
}

/* ---- scancel ------------------------------------------------------- */

static void
scancel_exit_cb(void *arg, int64_t status, int sig)
{
	char *bid = arg;

	if (status != 0 || sig != 0)
		log_warn("scancel failed slurm_id=%s exit=%" PRId64
		         " signal=%d",
		         bid, status, sig);
	free(bid);
}

static void
scancel_line_cb(void *arg, const char *line, size_t len, int cut)
{
	(void) len;
	(void) cut;
	log_info("scancel slurm_id=%s said=\"%s\"", (char *) arg, line);
}

/* graceful: --signal=TERM --full (the batch shell and the worker) */
static void
slurm_scancel(struct slurm_exec *x, const char *bid, int graceful)
{
	char bin[1024], msg[256];
	char *argv[6];
	char *arg = strdup(bid);
	int a = 0;

	if (arg == NULL ||
	    slurm_bin(x->d->cfg->slurm_bin_dir, "scancel", bin, sizeof(bin))) {
		free(arg);
		return;
	}
	argv[a++] = bin;
	if (graceful) {
		argv[a++] = "--signal=TERM";
		argv[a++] = "--full";
	}
	argv[a++] = arg;
	argv[a] = NULL;
	log_info("scancel slurm_id=%s graceful=%d", bid, graceful);
	if (slurm_spawn(x, argv, (uint32_t) geteuid(), NULL, scancel_line_cb,
	                scancel_exit_cb, arg, NULL, msg, sizeof(msg)) != 0) {
		log_err("cannot run scancel slurm_id=%s error=\"%s\"", bid,
		        msg);
		free(arg);
	}
}

/* the graceful stop first; a pending job has no process: plain */
static void
sjob_send_cancel(struct sjob *s)
{
	struct slurm_exec *x = s->x;
	int pending =
	        s->state[0] == '\0' || slurm_phase(s->state) == SLURM_PENDING;

	s->cancel_sent = pending ? 2 : 1;
	s->cancel_ms = uv_now(x->d->loop);
	slurm_scancel(x, s->bid, !pending);
}

/* ---- sbatch -------------------------------------------------------- */

static void
sbatch_line_cb(void *arg, const char *line, size_t len, int cut)
{
	struct sjob *s = arg;
	char id[32];

	(void) len;
	(void) cut;
	if (s->bid[0] == '\0' && slurm_parse_sbatch(line, id, sizeof(id)) == 0)
		snprintf(s->bid, sizeof(s->bid), "%s", id);
	else if (line[0] != '\0')
		snprintf(s->sbatch_err, sizeof(s->sbatch_err), "%s", line);
}

static void
sbatch_exit_cb(void *arg, int64_t status, int sig)
{
	struct sjob *s = arg;
	struct slurm_exec *x = s->x;
	struct daemon *d = x->d;

	x->submitting--;
	if (status != 0 || sig != 0 || s->bid[0] == '\0') {
		char msg[512];
		snprintf(msg, sizeof(msg),
		         "sbatch failed (exit %" PRId64 "%s): %s", status,
		         sig ? ", killed" : "",
		         s->sbatch_err[0] ? s->sbatch_err : "no output");
		s->bid[0] = '\0';
		sjob_end(s, s->cancel ? JOB_CANCELED : JOB_FAILED,
		         s->cancel ? NQ_ECANCELED : NQ_EFAILED,
		         s->cancel ? "canceled" : msg);
		goto more;
	}
	s->phase = SJ_IN_SLURM;
	if (store_set_backend(d->store, s->j.id, s->bid) != 0)
		log_err("store write failed id=%" PRId64 " error=\"%s\"",
		        s->j.id, store_errmsg(d->store));
	log_info("job started id=%" PRId64 " type=%s device=%s attempt=%d "
	         "executor=slurm slurm_id=%s limit_s=%" PRId64,
	         s->j.id, s->j.type, s->j.device, s->j.attempt, s->bid,
	         s->limit_s);
	events_publish_id(d, s->j.id);
	if (s->cancel)
		sjob_send_cancel(s);
more:
	slurm_pump(x);
	if (d->draining && x->submitting == 0 && x->drain_done != NULL) {
		void (*cb)(struct daemon *) = x->drain_done;
		x->drain_done = NULL;
		cb(d);
	}
}

/* the worker's --device on the node: Slurm's CUDA_VISIBLE_DEVICES makes
 * the job's GPU ordinal 0; a test device stays itself */
static const char *
node_device(const struct executor_job *j)
{
	if (j->kind == SCHED_CPU)
		return "cpu";
	if (strncmp(j->device, "fake:", 5) == 0)
		return j->device;
	return "cuda:0";
}

/* Write the batch script and run sbatch as the owner. */
static int
sjob_submit(struct sjob *s, char *msg, size_t msglen)
{
	struct slurm_exec *x = s->x;
	struct daemon *d = x->d;
	const struct config *c = d->cfg;
	char jd[4096], path[4200], grant[32], attempt[16], buf[8192];
	char *wargv[16 + WORKER_OWNER_ARGC], *argv[64];
	struct worker_owner *wo;
	char *script = NULL;
	struct slurm_submit sub;
	int a = 0, fd, rc;
	size_t sl;

	job_dir(x, s->j.id, jd, sizeof(jd));
	/* the GPU's memory on the node decides (the worker reads it), but a
	 * test device keeps its ledger grant */
	snprintf(grant, sizeof(grant), "%" PRIu64,
	         s->j.kind == SCHED_CUDA &&
	                         strncmp(s->j.device, "fake:", 5) != 0
	                 ? (uint64_t) 0
	                 : s->j.grant);
	snprintf(attempt, sizeof(attempt), "%d", s->j.attempt);
	wargv[a++] = (char *) c->worker_path;
	wargv[a++] = "run";
	wargv[a++] = "--type";
	wargv[a++] = s->j.type;
	wargv[a++] = "--dir";
	wargv[a++] = jd;
	wargv[a++] = "--device";
	wargv[a++] = (char *) node_device(&s->j);
	wargv[a++] = "--grant";
	wargv[a++] = grant;
	wargv[a++] = "--attempt";
	wargv[a++] = attempt;
	/* the same owner arguments as locally: on the node the worker
	 * already is the owner (the drop is a no-op), but it then works in
	 * the dir as ".", makes its files 0660/02770 for the daemon's group
	 * and creates user paths with the owner's umask */
	wo = calloc(1, sizeof(*wo));
	script = malloc(16384);
	if (wo == NULL || script == NULL) {
		free(wo);
		free(script);
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	worker_owner_args(d, s->j.owner, spool_read_umask(jd), 0, wo);
	for (int i = 0; i < wo->argc; i++)
		wargv[a++] = wo->argv[i];
	wargv[a] = NULL;
	rc = slurm_script(wargv, jd, script, 16384);
	free(wo);
	if (rc != 0) {
		free(script);
		snprintf(msg, msglen, "batch script too long");
		return NQ_EINTERNAL;
	}
	/* what an earlier attempt left must not be read as this one's */
	static const char *const stale[] = {SLURM_STATUS, SLURM_STATUS ".tmp",
	                                    SLURM_PROGRESS, "error"};
	for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
		if (file_in(jd, stale[i], path, sizeof(path)) == 0)
			unlink(path);
	}
	if (file_in(jd, SLURM_SCRIPT, path, sizeof(path)) != 0) {
		free(script);
		snprintf(msg, msglen, "job dir path too long");
		return NQ_EINTERNAL;
	}
	sl = strlen(script);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          0750);
	rc = fd >= 0 && write(fd, script, sl) == (ssize_t) sl ? 0 : -1;
	if (fd >= 0 && close(fd) != 0)
		rc = -1;
	free(script);
	if (rc != 0) {
		snprintf(msg, msglen, "cannot write %.300s: %s", path,
		         strerror(errno));
		return NQ_EIO;
	}
	/* the job runs as its owner on the node: the dir becomes theirs */
	if (s->j.owner != (uint32_t) geteuid() &&
	    spool_give_to_owner(jd, (uid_t) s->j.owner) != 0) {
		snprintf(msg, msglen,
		         "cannot hand %.300s to uid %" PRIu32 ": %s", jd,
		         s->j.owner, strerror(errno));
		return NQ_EIO;
	}

	memset(&sub, 0, sizeof(sub));
	sub.bin_dir = c->slurm_bin_dir;
	sub.id = s->j.id;
	sub.job_dir = jd;
	sub.gpus = s->j.kind == SCHED_CUDA ? 1 : 0;
	sub.mem_bytes = s->j.kind == SCHED_CUDA
	                        ? s->j.host_bytes
	                        : s->j.host_bytes + s->j.device_bytes;
	sub.mem_bytes += c->headroom_bytes;
	sub.time_limit_s = s->limit_s;
	sub.partition = c->slurm_partition;
	sub.account = c->slurm_account;
	sub.qos = c->slurm_qos;
	sub.extra = c->slurm_sbatch_args;
	if (slurm_sbatch_argv(&sub, argv, sizeof(argv) / sizeof(argv[0]), buf,
	                      sizeof(buf)) < 0) {
		snprintf(msg, msglen, "sbatch command line too long");
		return NQ_EINTERNAL;
	}
	rc = slurm_spawn(x, argv, s->j.owner, jd, sbatch_line_cb,
	                 sbatch_exit_cb, s, NULL, msg, msglen);
	if (rc != 0)
		return rc;
	s->phase = SJ_SUBMITTING;
	x->submitting++;
	return 0;
}

/* Start sbatch for waiting jobs, a few at a time (slurmctld is shared). */
static void
slurm_pump(struct slurm_exec *x)
{
	struct sjob *next;

	for (struct sjob *s = x->jobs; s != NULL; s = next) {
		char msg[512] = "";
		next = s->next;
		if (x->submitting >= SLURM_SUBMIT_PARALLEL || x->d->draining)
			return;
		if (s->phase != SJ_WAITING)
			continue;
		if (sjob_submit(s, msg, sizeof(msg)) != 0) {
			log_err("sbatch not started id=%" PRId64
			        " error=\"%s\"",
			        s->j.id, msg);
			sjob_end(s, JOB_FAILED, NQ_EFAILED, msg);
		}
	}
}

static int
slurm_start(struct daemon *d, const struct executor_job *j, char *msg,
            size_t msglen)
{
	struct slurm_exec *x = d->slurm;
	struct sjob *s = calloc(1, sizeof(*s));
	char jd[4096];

	if (s == NULL) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	s->x = x;
	s->j = *j;
	s->phase = SJ_WAITING;
	job_dir(x, j->id, jd, sizeof(jd));
	s->limit_s = liveness_limit_s(liveness_read(jd), j->flops,
	                              d->cfg->max_job_seconds);
	snprintf(s->stage, sizeof(s->stage), "start");
	/* FIFO: appended */
	struct sjob **p = &x->jobs;
	while (*p != NULL)
		p = &(*p)->next;
	*p = s;
	slurm_pump(x);
	return 0;
}

/* ---- the poll ------------------------------------------------------ */

/* New lines of the job's progress file: the last progress line counts. */
static void
sjob_tail(struct sjob *s)
{
	struct daemon *d = s->x->d;
	char jd[4096], buf[SLURM_PROGRESS_MAX + 1];
	ssize_t n;
	int fd;

	job_dir(s->x, s->j.id, jd, sizeof(jd));
	fd = spool_open_in(jd, SLURM_PROGRESS, 0);
	if (fd < 0)
		return;
	n = pread(fd, buf, SLURM_PROGRESS_MAX, (off_t) s->prog_off);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* whole lines only; a partial last one is read again next time */
	char *end = strrchr(buf, '\n');
	if (end == NULL) {
		if (n == SLURM_PROGRESS_MAX)
			s->prog_off += n; /* a line longer than this: skip */
		return;
	}
	*end = '\0';
	s->prog_off += (end - buf) + 1;
	char *last = NULL, *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "progress ", 9) == 0)
			last = l;
	}
	if (last != NULL && strlen(last) <= 255)
		executor_progress_line(d, s->j.id, last, &s->last_event_ms,
		                       s->stage, sizeof(s->stage));
}

static void
sjob_set_reason(struct sjob *s, const char *reason)
{
	struct daemon *d = s->x->d;

	if (strcmp(s->reason, reason) == 0)
		return;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
	if (store_set_pending_reason(d->store, s->j.id, reason) != 0)
		log_err("store write failed id=%" PRId64 " error=\"%s\"",
		        s->j.id, store_errmsg(d->store));
	events_publish_id(d, s->j.id);
}

/* The job's status file: 1 with *status and *warned, else 0. */
static int
read_status(const char *jd, int *status, int *warned)
{
	char buf[64] = "";
	ssize_t n;
	int fd;

	*warned = 0;
	fd = spool_open_in(jd, SLURM_STATUS, 0);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *end;
	long v = strtol(buf, &end, 10);
	if (end == buf || v < 0 || v > 255)
		return 0;
	*status = (int) v;
	*warned = strstr(end, "time_limit") != NULL;
	return 1;
}

/* Decide the end of s: state is squeue's final state, or NULL when
 * slurmctld no longer knows the job. */
static void
sjob_judge(struct sjob *s, const char *state)
{
	char jd[4096], msg[1024];
	struct slurm_end e;
	int code = 0;

	job_dir(s->x, s->j.id, jd, sizeof(jd));
	memset(&e, 0, sizeof(e));
	e.state = state;
	e.have_status = read_status(jd, &e.status, &e.warned);
	e.have_out = spool_dir_in(jd, "out");
	e.canceled = s->cancel;
	e.waited = s->waited;
	e.time_limit_s = s->limit_s;
	if (e.have_status || state == NULL)
		sjob_tail(s); /* the last progress first */
	switch (slurm_decide(&e, &code, msg, sizeof(msg))) {
	case SLURM_WAIT:
		s->waited++;
		return;
	case SLURM_DONE:
		sjob_end(s, JOB_DONE, 0, "");
		return;
	case SLURM_FAIL:
		sjob_end(s, JOB_FAILED, code, msg);
		return;
	case SLURM_CANCEL:
		sjob_end(s, JOB_CANCELED, code, msg);
		return;
	case SLURM_RETRY:
		sjob_retry(s, msg);
		return;
	case SLURM_ERRFILE:
		if (spool_read_error(jd, &code, msg, sizeof(msg)) != 0) {
			code = e.status == 2 ? NQ_EINTERNAL : NQ_EFAILED;
			snprintf(msg, sizeof(msg),
			         "worker exited with status %d and no error "
			         "file (see slurm.out in its spool dir)",
			         e.status);
		}
		sjob_end(s, code == NQ_ECANCELED ? JOB_CANCELED : JOB_FAILED,
		         code, msg);
		return;
	}
}

static void
squeue_line_cb(void *arg, const char *line, size_t len, int cut)
{
	struct slurm_exec *x = arg;
	struct slurm_row r;

	(void) len;
	if (cut || slurm_parse_squeue(line, &r) != 0) {
		if (line[0] != '\0')
			log_info("squeue said=\"%s\"", line);
		return;
	}
	if (x->nrows == x->caprows) {
		size_t cap = x->caprows ? x->caprows * 2 : 64;
		struct slurm_row *n = realloc(x->rows, cap * sizeof(*n));
		if (n == NULL)
			return;
		x->rows = n;
		x->caprows = cap;
	}
	x->rows[x->nrows++] = r;
}

static const struct slurm_row *
row_find(const struct slurm_exec *x, const char *bid)
{
	for (size_t i = 0; i < x->nrows; i++) {
		if (strcmp(x->rows[i].id, bid) == 0)
			return &x->rows[i];
	}
	return NULL;
}

static void
squeue_exit_cb(void *arg, int64_t status, int sig)
{
	struct slurm_exec *x = arg;
	struct daemon *d = x->d;
	int ok = status == 0 && sig == 0;
	struct sjob *next;
	int ended = 0;

	x->squeue = NULL;
	if (!ok)
		log_warn("squeue failed exit=%" PRId64 " signal=%d jobs=%zu",
		         status, sig, x->nrows);
	for (struct sjob *s = x->jobs; s != NULL; s = next) {
		const struct slurm_row *r;
		next = s->next;
		/* only what was asked: a job submitted meanwhile is not
		 * missing from the answer */
		if (s->phase != SJ_IN_SLURM || !s->polled)
			continue;
		s->polled = 0;
		r = row_find(x, s->bid);
		if (r == NULL) {
			char jd[4096];
			int st, w;
			/* squeue -j with one id fails once slurmctld forgot
			 * it: the status file still tells */
			job_dir(x, s->j.id, jd, sizeof(jd));
			if (ok || read_status(jd, &st, &w)) {
				sjob_judge(s, NULL);
				ended = 1;
			}
			continue;
		}
		snprintf(s->state, sizeof(s->state), "%s", r->state);
		switch (slurm_phase(r->state)) {
		case SLURM_PENDING:
			sjob_set_reason(s, r->reason);
			break;
		case SLURM_RUNNING:
			sjob_set_reason(s, "");
			sjob_tail(s);
			break;
		case SLURM_ENDED:
			sjob_judge(s, r->state);
			ended = 1;
			break;
		case SLURM_UNKNOWN:
			break;
		}
	}
	x->nrows = 0;
	if (ended && !d->draining)
		executor_start_more(d);
}

static void
slurm_poll_cb(uv_timer_t *t)
{
	struct slurm_exec *x = t->data;
	struct daemon *d = x->d;
	char bin[1024], msg[256];
	char *argv[8], *ids;
	size_t n = 0, len = 1, at = 0;
	uint64_t now = uv_now(d->loop);

	/* cancels past their grace period: the hard stop */
	for (struct sjob *s = x->jobs; s != NULL; s = s->next) {
		if (s->phase == SJ_IN_SLURM && s->cancel_sent == 1 &&
		    now - s->cancel_ms >= WORKER_KILL_GRACE_MS) {
			s->cancel_sent = 2;
			slurm_scancel(x, s->bid, 0);
		}
	}
	if (x->squeue != NULL)
		return;
	for (struct sjob *s = x->jobs; s != NULL; s = s->next) {
		if (s->phase == SJ_IN_SLURM) {
			n++;
			len += strlen(s->bid) + 1;
		}
	}
	if (n == 0)
		return;
	ids = malloc(len);
	if (ids == NULL)
		return;
	for (struct sjob *s = x->jobs; s != NULL; s = s->next) {
		if (s->phase != SJ_IN_SLURM)
			continue;
		s->polled = 1;
		at += (size_t) sprintf(ids + at, "%s%s", at ? "," : "", s->bid);
	}
	if (slurm_bin(d->cfg->slurm_bin_dir, "squeue", bin, sizeof(bin))) {
		free(ids);
		return;
	}
	/* one call for all of them (squeue(1), PERFORMANCE); -t all: the
	 * ended ones slurmctld still remembers too */
	argv[0] = bin;
	argv[1] = "-h";
	argv[2] = "-t";
	argv[3] = "all";
	argv[4] = "-o";
	argv[5] = "%i %T %r";
	argv[6] = NULL;
	char jarg[16] = "-j";
	char *full[10] = {argv[0], argv[1], argv[2], argv[3], argv[4],
	                  argv[5], jarg,    ids,     NULL};
	x->nrows = 0;
	if (slurm_spawn(x, full, (uint32_t) geteuid(), NULL, squeue_line_cb,
	                squeue_exit_cb, x, &x->squeue, msg, sizeof(msg)) != 0)
		log_err("cannot run squeue error=\"%s\"", msg);
	free(ids); /* uv_spawn copied it */
}

/* ---- the executor -------------------------------------------------- */

static int
slurm_cancel(struct daemon *d, int64_t id)
{
	struct slurm_exec *x = d->slurm;
	struct sjob *s = sjob_find(x, id);

	if (s == NULL)
		return NQ_ENOJOB;
	if (s->cancel)
		return 0;
	s->cancel = 1;
	if (s->phase == SJ_WAITING) {
		sjob_end(s, JOB_CANCELED, NQ_ECANCELED, "canceled");
		return 0;
	}
	if (s->phase == SJ_IN_SLURM)
		sjob_send_cancel(s);
	/* SJ_SUBMITTING: sbatch_exit_cb sends it */
	return 0;
}

static void
slurm_drain(struct daemon *d, void (*done)(struct daemon *d))
{
	struct slurm_exec *x = d->slurm;
	struct sjob *next;

	/* jobs in Slurm run on: the next start takes them over; the ones
	 * not submitted yet go back to the queue */
	for (struct sjob *s = x->jobs; s != NULL; s = next) {
		next = s->next;
		if (s->phase != SJ_WAITING)
			continue;
		if (store_requeue(d->store, s->j.id, "daemon stopped") == 0)
			log_info("job requeued id=%" PRId64 " reason=drain",
			         s->j.id);
		sjob_remove(x, s);
	}
	log_notice("slurm jobs keep running in Slurm count=%zu submitting=%d",
	           d->exec->count(d), x->submitting);
	if (x->submitting == 0) {
		done(d);
		return;
	}
	x->drain_done = done;
}

static size_t
slurm_count(const struct daemon *d)
{
	size_t n = 0;

	if (d->slurm == NULL)
		return 0;
	for (const struct sjob *s = d->slurm->jobs; s != NULL; s = s->next)
		n++;
	return n;
}

static size_t
slurm_running_on(const struct daemon *d, const char *device, int64_t *ids,
                 size_t max)
{
	size_t n = 0;

	for (const struct sjob *s = d->slurm->jobs; s != NULL; s = s->next) {
		if (strcmp(s->j.device, device) == 0 && n < max)
			ids[n++] = s->j.id;
	}
	return n;
}

static int64_t
slurm_time_limit_s(const struct daemon *d, int64_t id)
{
	for (const struct sjob *s = d->slurm->jobs; s != NULL; s = s->next) {
		if (s->j.id == id)
			return s->limit_s;
	}
	return 0;
}

struct adopt {
	struct job_row *rows;
	size_t n, cap;
};

static int
adopt_cb(void *arg, const struct job_row *row)
{
	struct adopt *a = arg;

	if (row->backend_job_id[0] == '\0')
		return 0;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		struct job_row *r = realloc(a->rows, cap * sizeof(*r));
		if (r == NULL)
			return 1;
		a->rows = r;
		a->cap = cap;
	}
	a->rows[a->n++] = *row;
	return 0;
}

/* Jobs the store says run in Slurm: tracked again by their Slurm id; the
 * next poll tells where they are (or their status file how they ended). */
static int
slurm_open(struct daemon *d, char *msg, size_t msglen)
{
	struct slurm_exec *x = calloc(1, sizeof(*x));
	struct store_filter f = {
	        .state = JOB_RUNNING, .any_owner = 1, .oldest_first = 1};
	struct adopt a = {0};
	int rc;

	if (x == NULL) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	x->d = d;
	d->slurm = x;
	memcpy(x->nodes, slurm_boot_nodes, slurm_boot_n * sizeof(x->nodes[0]));
	x->nnodes = slurm_boot_n;
	x->nodes_at = slurm_boot_at;
	rc = store_list(d->store, &f, adopt_cb, &a);
	if (rc != 0) {
		snprintf(msg, msglen, "store: %s", store_errmsg(d->store));
		free(a.rows);
		return rc;
	}
	for (size_t i = 0; i < a.n; i++) {
		const struct job_row *row = &a.rows[i];
		struct sjob *s = calloc(1, sizeof(*s));
		char jd[4096];
		if (s == NULL)
			break;
		s->x = x;
		s->phase = SJ_IN_SLURM;
		s->j.id = row->id;
		s->j.owner = row->owner;
		snprintf(s->j.type, sizeof(s->j.type), "%s", row->type);
		snprintf(s->j.device, sizeof(s->j.device), "%s", row->device);
		s->j.attempt = row->attempts;
		s->j.flops = row->est_flops;
		snprintf(s->bid, sizeof(s->bid), "%s", row->backend_job_id);
		snprintf(s->reason, sizeof(s->reason), "%s",
		         row->pending_reason);
		snprintf(s->stage, sizeof(s->stage), "%s", row->stage);
		job_dir(x, row->id, jd, sizeof(jd));
		s->limit_s = liveness_limit_s(liveness_read(jd), row->est_flops,
		                              d->cfg->max_job_seconds);
		s->next = x->jobs;
		x->jobs = s;
		log_notice("slurm job taken over id=%" PRId64 " slurm_id=%s",
		           row->id, s->bid);
		/* the user asked while the daemon was away: stop it now */
		if (row->cancel_requested) {
			s->cancel = 1;
			sjob_send_cancel(s);
		}
	}
	free(a.rows);
	uv_timer_init(d->loop, &x->timer);
	x->timer.data = x;
	uv_unref((uv_handle_t *) &x->timer);
	uv_timer_start(&x->timer, slurm_poll_cb, 0,
	               (uint64_t) d->cfg->slurm_poll_s * 1000);
	log_info("slurm executor spool=%s poll_s=%d taken_over=%zu",
	         d->cfg->slurm_spool_dir, d->cfg->slurm_poll_s, a.n);
	return 0;
}

static void
slurm_timer_closed(uv_handle_t *h)
{
	struct slurm_exec *x = h->data;

	while (x->jobs != NULL)
		sjob_remove(x, x->jobs);
	free(x->rows);
	free(x);
}

static void
slurm_close(struct daemon *d)
{
	struct slurm_exec *x = d->slurm;

	if (x == NULL)
		return;
	d->slurm = NULL;
	if (x->squeue != NULL)
		child_close(x->squeue);
	if (x->sinfo != NULL)
		child_close(x->sinfo);
	/* sbatch children: their jobs are in Slurm or not; a RUNNING row
	 * without a Slurm id is requeued at the next start */
	uv_timer_stop(&x->timer);
	uv_close((uv_handle_t *) &x->timer, slurm_timer_closed);
}

const struct executor_ops executor_slurm_ops = {
        .name = "slurm",
        .open = slurm_open,
        .start = slurm_start,
        .cancel = slurm_cancel,
        .drain = slurm_drain,
        .count = slurm_count,
        .running_on = slurm_running_on,
        .time_limit_s = slurm_time_limit_s,
        .close = slurm_close,
};

/* ---- devices ------------------------------------------------------- */

#define SINFO_FORMAT                                                \
	"NodeList:64,Partition:64,Gres:128,GresUsed:128,Memory:16," \
	"CPUsState:32,StateCompact:32"

static int
sinfo_argv(const struct config *c, char *bin, size_t n, char **argv)
{
	if (slurm_bin(c->slurm_bin_dir, "sinfo", bin, n) != 0)
		return -1;
	argv[0] = bin;
	argv[1] = "-h";
	argv[2] = "-N";
	argv[3] = "-O";
	argv[4] = SINFO_FORMAT;
	argv[5] = NULL;
	return 0;
}

/* One sinfo at start-up, synchronously (the loop does not run yet): its
 * lines into nodes. 0, or NQ_EIO with msg. */
static int
sinfo_sync(const struct config *c, struct slurm_node *nodes, size_t max,
           size_t *n, char *msg, size_t msglen)
{
	char bin[1024], buf[65536], *argv[6];
	size_t got = 0;
	int p[2], status = 0;
	pid_t pid;

	*n = 0;
	if (sinfo_argv(c, bin, sizeof(bin), argv) != 0 ||
	    pipe2(p, O_CLOEXEC) != 0) {
		snprintf(msg, msglen, "cannot run sinfo");
		return NQ_EIO;
	}
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		snprintf(msg, msglen, "fork: %s", strerror(errno));
		return NQ_EIO;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		if (strchr(bin, '/') != NULL)
			execv(bin, argv);
		else
			execvp(bin, argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t r = read(p[0], buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t) r;
		if (got == sizeof(buf) - 1)
			break;
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	buf[got] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(msg, msglen, "%s failed (exit %d): %.300s", bin,
		         WIFEXITED(status) ? WEXITSTATUS(status) : -1, buf);
		return NQ_EIO;
	}
	char *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l != NULL && *n < max;
	     l = strtok_r(NULL, "\n", &save)) {
		if (slurm_parse_sinfo(l, &nodes[*n]) == 0)
			(*n)++;
		else
			log_warn("sinfo line not understood line=\"%.200s\"",
			         l);
	}
	return 0;
}

static int
add_dev(struct sched *s, struct device_info *out, size_t *n, const char *name,
        enum sched_dev_kind kind, int index, uint64_t cap, int fake)
{
	struct sched_device sd;
	struct device_info *di;

	if (*n == DEVICES_MAX)
		return -1;
	memset(&sd, 0, sizeof(sd));
	snprintf(sd.name, sizeof(sd.name), "%s", name);
	sd.kind = kind;
	sd.index = index;
	sd.capacity = cap;
	sd.slots = SLURM_SLOTS;
	if (sched_add_device(s, &sd) < 0)
		return -1;
	di = &out[(*n)++];
	memset(di, 0, sizeof(*di));
	snprintf(di->name, sizeof(di->name), "%s", name);
	di->kind = kind;
	di->index = index;
	di->mem_total = di->mem_free = cap;
	di->probed_at = nq_wall_s();
	di->fake = 1; /* nothing on this machine to probe */
	return 0;
}

int
executor_slurm_devices(const struct config *c, struct sched *s,
                       struct device_info *out, size_t *n, char *msg,
                       size_t msglen)
{
	struct slurm_node *nodes = slurm_boot_nodes;
	size_t nn = 0;
	uint64_t mem_max = 0;
	int gpus = 0, fakes = 0, rc;

	*n = 0;
	if ((rc = sinfo_sync(c, nodes, 256, &nn, msg, msglen)) != 0)
		return rc;
	slurm_boot_n = nn;
	slurm_boot_at = nq_wall_s();
	for (size_t i = 0; i < nn; i++) {
		if (c->slurm_partition[0] != '\0' &&
		    strcmp(nodes[i].partition, c->slurm_partition) != 0)
			continue;
		if (nodes[i].mem_mb << 20 > mem_max)
			mem_max = nodes[i].mem_mb << 20;
		gpus += nodes[i].gpus;
	}
	if (mem_max == 0) {
		snprintf(msg, msglen, "sinfo shows no node%s%s",
		         c->slurm_partition[0] ? " in partition " : "",
		         c->slurm_partition);
		return NQ_EBADDEVICE;
	}
	/* the largest node's memory: a job needing more can never run */
	if (add_dev(s, out, n, "cpu", SCHED_CPU, 0, mem_max, 1) != 0)
		goto full;
	/* test devices (fake:N:SIZE) stand for the cluster's GPUs */
	char list[256], *save = NULL;
	snprintf(list, sizeof(list), "%s", c->devices);
	for (char *t = strtok_r(list, " \t,", &save); t != NULL;
	     t = strtok_r(NULL, " \t,", &save)) {
		struct devname dn;
		char name[32];
		const char *size;
		uint64_t bytes;
		if (devname_parse_fake(t, &dn, name, sizeof(name), &size) !=
		            NQ_OK ||
		    config_parse_bytes(size, &bytes) != 0 || bytes == 0)
			continue;
		if (add_dev(s, out, n, name, SCHED_CUDA, dn.index, bytes, 1))
			goto full;
		fakes++;
	}
	/* one GPU pool: Slurm picks the node and the GPU */
	if (fakes == 0 && gpus > 0 &&
	    add_dev(s, out, n, "cuda:0", SCHED_CUDA, 0, SLURM_GPU_CAPACITY,
	            1) != 0)
		goto full;
	log_info("slurm cluster nodes=%zu gpus=%d node_mem_max=%" PRIu64
	         " partition=%s",
	         nn, gpus, mem_max,
	         c->slurm_partition[0] ? c->slurm_partition : "(default)");
	return 0;
full:
	snprintf(msg, msglen, "cannot add the cluster's devices");
	return NQ_EINTERNAL;
}

static void
sinfo_line_cb(void *arg, const char *line, size_t len, int cut)
{
	struct slurm_exec *x = arg;

	(void) len;
	if (!cut && x->nnodes_new < 256 &&
	    slurm_parse_sinfo(line, &x->nodes_new[x->nnodes_new]) == 0)
		x->nnodes_new++;
}

static void
sinfo_exit_cb(void *arg, int64_t status, int sig)
{
	struct slurm_exec *x = arg;

	x->sinfo = NULL;
	if (status != 0 || sig != 0) {
		log_warn("sinfo failed exit=%" PRId64 " signal=%d", status,
		         sig);
		return;
	}
	memcpy(x->nodes, x->nodes_new, x->nnodes_new * sizeof(x->nodes[0]));
	x->nnodes = x->nnodes_new;
	x->nodes_at = nq_wall_s();
}

/* partitions with their totals: one entry per partition name */
static int
describe_partitions(const struct slurm_exec *x, struct nq_value *list)
{
	size_t np = 0;
	struct nq_map *parts[64];

	list->kind = NQ_LIST;
	list->u.list.items = calloc(65, sizeof(struct nq_value));
	if (list->u.list.items == NULL)
		return NQ_ENOMEM;
	for (size_t i = 0; i < x->nnodes; i++) {
		const struct slurm_node *sn = &x->nodes[i];
		size_t k;
		for (k = 0; k < np; k++) {
			const struct nq_value *v = nq_map_get(parts[k], "name");
			if (v != NULL && strcmp(v->u.str.s, sn->partition) == 0)
				break;
		}
		if (k == np) {
			if (np == 64)
				continue;
			parts[np] = nq_map_new();
			if (parts[np] == NULL)
				return NQ_ENOMEM;
			list->u.list.items[np] = nq_val_map(parts[np]);
			list->u.list.n = ++np;
			nq_map_set_str(parts[k], "name", sn->partition);
			nq_map_set_str(parts[k], "gpu_type", sn->gpu_type);
		}
		struct nq_map *m = parts[k];
		const char *keys[] = {"nodes", "gpus", "gpus_used", "cpus",
		                      "cpus_used"};
		int64_t add[] = {1, sn->gpus, sn->gpus_used, sn->cpus_total,
		                 sn->cpus_alloc};
		for (size_t q = 0; q < 5; q++) {
			const struct nq_value *v = nq_map_get(m, keys[q]);
			int rc = nq_map_set_int(m, keys[q],
			                        (v ? v->u.i : 0) + add[q]);
			if (rc != 0)
				return rc;
		}
		const struct nq_value *mv = nq_map_get(m, "node_mem_max");
		int64_t mem = (int64_t) (sn->mem_mb << 20);
		if (mv == NULL || mv->u.i < mem)
			nq_map_set_int(m, "node_mem_max", mem);
	}
	return 0;
}

int
executor_slurm_describe(struct daemon *d, struct nq_map *out)
{
	struct slurm_exec *x = d->slurm;
	struct nq_map *m;
	struct nq_value parts = {.kind = NQ_NIL};
	uint64_t now;
	int rc;

	if (x == NULL)
		return 0;
	/* a fresh picture for the next request (probe.c's way) */
	now = uv_now(d->loop);
	if (x->sinfo == NULL && !d->draining &&
	    (x->sinfo_ms == 0 || now - x->sinfo_ms >= SLURM_SINFO_MIN_MS)) {
		char bin[1024], msg[256], *argv[6];
		x->sinfo_ms = now;
		x->nnodes_new = 0;
		if (sinfo_argv(d->cfg, bin, sizeof(bin), argv) == 0 &&
		    slurm_spawn(x, argv, (uint32_t) geteuid(), NULL,
		                sinfo_line_cb, sinfo_exit_cb, x, &x->sinfo, msg,
		                sizeof(msg)) != 0)
			log_warn("cannot run sinfo error=\"%s\"", msg);
	}
	m = nq_map_new();
	if (m == NULL)
		return NQ_ENOMEM;
	if ((rc = describe_partitions(x, &parts)) != 0 ||
	    (rc = nq_map_set(m, "partitions", &parts)) ||
	    (rc = nq_map_set_float(m, "at", x->nodes_at)) ||
	    (rc = nq_map_set_int(m, "jobs", (int64_t) slurm_count(d)))) {
		nq_value_free(&parts);
		nq_map_free(m);
		return rc;
	}
	nq_value_free(&parts);
	struct nq_value v = nq_val_map(m);
	rc = nq_map_set(out, "slurm", &v);
	nq_value_free(&v);
	return rc;
}
