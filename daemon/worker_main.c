/*
 * worker_main.c — neuroq-worker: runs one job type on one device (the
 * contract is in README.md). The daemon starts one per running job; it
 * works the same by hand:
 *
 *   neuroq-worker run --type gsn --dir JOBDIR --device cpu
 *   neuroq-worker check --type spikesort --dir STAGEDIR --owner UID
 *   neuroq-worker probe
 *
 * With --owner (daemon/runas.h) the worker reads the spool as the service
 * user, then becomes the job's owner before the job type touches a user
 * path; `run` works in the job dir as its working directory ("."), so the
 * dropped process needs no path through the 0700 state dir, and whatever
 * it makes in the spool is given mode 0660 (files) / 02770 (dirs) in one
 * place (spool_modes below), readable and removable by the service group.
 */
#include "devname.h"
#include "job_type.h"
#include "kern.h"
#include "liveness.h"
#include "log.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "nq_json.h"
#include "nq_sysmem.h"
#include "nq_value.h"
#include "runas.h"
#include "spool.h"
#include "userpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_CANCELED = 3 };

#define PROGRESS_MIN_S 0.1 /* at most ~10 progress lines a second */

static const char usage[] =
        "usage: neuroq-worker run --type TYPE --dir JOBDIR --device "
        "cpu|cuda|cuda:N|fake:N\n"
        "                         [--grant BYTES] [--attempt K] [OWNER]\n"
        "       neuroq-worker check --type TYPE --dir STAGEDIR [OWNER]\n"
        "       neuroq-worker probe\n"
        "       neuroq-worker describe [TYPE]\n"
        "       neuroq-worker --version\n"
        "\n"
        "run: reads JOBDIR/params.mp and JOBDIR/in/*.npy, writes JOBDIR/out/ "
        "and\n"
        "exits 0; on failure writes JOBDIR/error and exits 1 (2: bad usage, "
        "3:\n"
        "canceled by SIGTERM). Progress goes to stdout: 'progress <frac> "
        "<stage>',\n"
        "and 'heartbeat' every second once the inputs are read; when the\n"
        "error file cannot be written (a full disk), 'error <CODE> "
        "<message>'.\n"
        "check: the type's submit-time check of STAGEDIR/params.mp as the "
        "owner;\n"
        "prints 'ok <host_bytes> <device_bytes> <flops>' and exits 0, or\n"
        "'error <CODE> <message>' and exits 1.\n"
        "OWNER: --owner UID [--service-gid GID] [--umask 022] [--deny D]...\n"
        "  [--parent PID]\n"
        "  run as UID (its groups, plus GID), files in user paths with that\n"
        "  umask, no user path into a --deny directory; exit 1 at once, the\n"
        "  job dir untouched, when PID (the daemon) is not the parent.\n"
        "probe: one line per device: 'name kind mem_total mem_free'.\n"
        "describe: the job types' tables (the describe op's reply, without "
        "a\n"
        "daemon) as one JSON object {\"types\": [...]}.\n";

static volatile sig_atomic_t worker_stop;

static void
on_term(int sig)
{
	(void) sig;
	worker_stop = 1;
}

struct wpriv {
	const char *dir;
	FILE *log;
	double last_progress;
	char last_stage[64];
	int attempt;
};

static void
ctx_progress(struct job_ctx *ctx, double frac, const char *stage)
{
	struct wpriv *p = ctx->priv;
	double now = nq_mono_s();
	char st[64];
	size_t i;

	if (stage == NULL)
		stage = "";
	for (i = 0; stage[i] != '\0' && i + 1 < sizeof(st); i++)
		st[i] = (char) ((stage[i] == '\n' || stage[i] == '\r')
		                        ? ' '
		                        : stage[i]);
	st[i] = '\0';
	if (!(frac >= 0))
		frac = 0;
	if (frac > 1)
		frac = 1;
	if (now - p->last_progress < PROGRESS_MIN_S &&
	    strcmp(st, p->last_stage) == 0 && frac < 1)
		return;
	p->last_progress = now;
	snprintf(p->last_stage, sizeof(p->last_stage), "%s", st);
	printf("progress %.4f %s\n", frac, st);
	fflush(stdout);
}

static int
ctx_canceled(struct job_ctx *ctx)
{
	(void) ctx;
	return worker_stop != 0;
}

static void
vlog_line(struct wpriv *p, const char *fmt, va_list ap)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;

	if (p->log == NULL)
		return;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(p->log, "%s attempt=%d ", ts, p->attempt);
	vfprintf(p->log, fmt, ap);
	fputc('\n', p->log);
	fflush(p->log);
}

static void wlog(struct wpriv *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
wlog(struct wpriv *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_line(p, fmt, ap);
	va_end(ap);
}

static void
ctx_log(struct job_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_line(ctx->priv, fmt, ap);
	va_end(ap);
}

/* --owner and friends, shared by run and check. */
#define MAX_DENY 16
struct owner_opts {
	int set;
	uid_t uid;
	gid_t service_gid; /* (gid_t) -1: none */
	mode_t umask;      /* the owner's */
	const char *deny[MAX_DENY];
	size_t ndeny;
	struct userpath_id ids[MAX_DENY];
	size_t nids;
	pid_t parent; /* --parent: the daemon; 0: the parent at the start */
};

static void
owner_init(struct owner_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->service_gid = (gid_t) -1;
	o->umask = umask(022);
	umask(o->umask);
}

/* 1: o took the option; 0: not an owner option; -1: a bad value. */
static int
owner_opt(struct owner_opts *o, int opt, const char *arg)
{
	char *end;
	unsigned long v;

	switch (opt) {
	case 'O':
	case 'G':
	case 'U':
		errno = 0;
		v = strtoul(arg, &end, opt == 'U' ? 8 : 10);
		if (errno != 0 || *end != '\0' || arg[0] == '-' ||
		    arg[0] == '\0' || (opt == 'U' && v > 0777) ||
		    v >= 0xffffffffUL) {
			fprintf(stderr, "neuroq-worker: bad --%s\n",
			        opt == 'O'   ? "owner"
			        : opt == 'G' ? "service-gid"
			                     : "umask");
			return -1;
		}
		if (opt == 'O') {
			o->uid = (uid_t) v;
			o->set = 1;
		} else if (opt == 'G') {
			o->service_gid = (gid_t) v;
		} else {
			o->umask = (mode_t) v;
		}
		return 1;
	case 'P':
		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno != 0 || *end != '\0' || arg[0] == '-' ||
		    arg[0] == '\0' || v < 2 || v > 0x7fffffffUL) {
			fprintf(stderr, "neuroq-worker: bad --parent\n");
			return -1;
		}
		o->parent = (pid_t) v;
		return 1;
	case 'D':
		if (o->ndeny == MAX_DENY) {
			fprintf(stderr, "neuroq-worker: at most %d --deny\n",
			        MAX_DENY);
			return -1;
		}
		o->deny[o->ndeny++] = arg;
		return 1;
	}
	return 0;
}

/* Die with the daemon: an orphaned worker would hold a GPU that the
 * restarted daemon hands to someone else, or run a job the restarted daemon
 * runs again. PR_SET_PDEATHSIG acts only from the moment it is set, and a
 * credential change clears it, so it is set (again) and the parent checked
 * after: --parent names the daemon, which may have died between its fork
 * and now (this process is an orphan then, perhaps one that was stopped
 * and continued); without --parent (by hand, under slurm) the parent at
 * the first call counts. 0, or NQ_ECANCELED with msg. */
static int
die_with_parent(struct owner_opts *o, char *msg, size_t msglen)
{
	if (o->parent == 0)
		o->parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == o->parent)
		return 0;
	snprintf(msg, msglen, "the daemon (pid %d) is gone", (int) o->parent);
	return NQ_ECANCELED;
}

/* The denied dirs as ids (as the service user), then become the owner;
 * the parent-death signal, which a credential change clears, again. */
static int
owner_drop(struct owner_opts *o, char *msg, size_t msglen)
{
	int rc;

	o->nids = userpath_deny_init(o->deny, o->ndeny, o->ids);
	if (!o->set)
		return 0;
	rc = runas_owner(o->uid, o->service_gid, msg, msglen);
	if (rc != 0)
		return rc;
	return die_with_parent(o, msg, msglen);
}

/* Everything the owner made in the spool: files 0660, dirs 02770, so the
 * daemon (the service group) reads the results and removes the job dir.
 * The one place for these modes; what the service user wrote stays. */
static void
spool_modes(int dfd, int depth)
{
	DIR *d;
	struct dirent *e;
	uid_t me = geteuid();

	if (depth > 16)
		return;
	d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			                         O_CLOEXEC);
			if (sub < 0)
				continue;
			if (st.st_uid == me)
				fchmod(sub, 02770);
			spool_modes(sub, depth + 1);
		} else if (S_ISREG(st.st_mode) && st.st_uid == me) {
			fchmodat(dirfd(d), e->d_name, 0660, 0);
		}
	}
	closedir(d);
}

/* A worker that becomes another user must be single-threaded when it
 * drops (capabilities are per thread: runas.h), but OpenBLAS starts its
 * thread pool as it is loaded. Such a worker runs itself again, once, with
 * OPENBLAS_NUM_THREADS=1 (the value it had kept in WORKER_BLAS_ENV), and
 * gives BLAS its threads back once it is the owner. */
#define WORKER_BLAS_ENV "NEUROQ_WORKER_BLAS_THREADS"

static void
reexec_single_threaded(int argc, char **argv)
{
	const char *blas = getenv("OPENBLAS_NUM_THREADS");
	long uid = -1;

	if (getenv(WORKER_BLAS_ENV) != NULL)
		return; /* this is the second run */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--owner") == 0 && i + 1 < argc)
			uid = strtol(argv[i + 1], NULL, 10);
		else if (strncmp(argv[i], "--owner=", 8) == 0)
			uid = strtol(argv[i] + 8, NULL, 10);
	}
	if (uid < 0 || (uid_t) uid == geteuid())
		return;
	if (setenv(WORKER_BLAS_ENV, blas != NULL ? blas : "", 1) != 0 ||
	    setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0)
		return;
	execv("/proc/self/exe", argv);
	/* not run again: runas_owner() refuses a threaded drop */
	unsetenv(WORKER_BLAS_ENV);
}

/* After the drop: BLAS threads as the daemon's environment set them. */
static void
blas_threads_restore(void)
{
	const char *s = getenv(WORKER_BLAS_ENV);
	long n;

	if (s == NULL)
		return;
	if (*s != '\0') {
		setenv("OPENBLAS_NUM_THREADS", s, 1);
		n = strtol(s, NULL, 10);
	} else {
		unsetenv("OPENBLAS_NUM_THREADS");
		n = sysconf(_SC_NPROCESSORS_ONLN);
	}
	unsetenv(WORKER_BLAS_ENV);
	if (n > 1 && n < 1024)
		kern_cpu_set_threads((int) n);
}

/* The heartbeat (liveness.h): "heartbeat" on stdout every LIVENESS_BEAT_MS
 * from a thread of its own, whatever the job does (a long stage without
 * progress lines still beats; a stopped or hung process does not). One
 * write(2) of a short line: atomic on the pipe, never inside a progress
 * line (printf + fflush writes whole lines). */
static void *
heartbeat_main(void *arg)
{
	static const char line[] = "heartbeat\n";
	struct timespec ts = {.tv_sec = LIVENESS_BEAT_MS / 1000,
	                      .tv_nsec = (LIVENESS_BEAT_MS % 1000) * 1000000L};

	(void) arg;
	for (;;) {
		struct timespec left = ts;
		while (nanosleep(&left, &left) != 0 && errno == EINTR)
			;
		if (write(STDOUT_FILENO, line, sizeof(line) - 1) < 0 &&
		    errno != EINTR)
			return NULL; /* the daemon is gone: nobody listens */
	}
}

/* After the drop: a threaded process cannot drop (runas.h). */
static void
heartbeat_start(struct wpriv *p)
{
	pthread_attr_t a;
	pthread_t t;
	sigset_t all, old;
	int rc;

	if (pthread_attr_init(&a) != 0)
		return;
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	/* signals (SIGTERM: cancel) go to the job's thread, not this one */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &a, heartbeat_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (rc != 0)
		wlog(p,
		     "cannot start the heartbeat thread: %s (the daemon "
		     "kills a worker that stays silent)",
		     strerror(rc));
}

/* Record the failure for the daemon (error file) and for people (log). */
static int
fail(struct wpriv *p, int code, const char *message)
{
	if (code == 0)
		code = NQ_EFAILED;
	if (message == NULL || message[0] == '\0')
		message = nq_strerror(code);
	wlog(p, "%s error=%s message=\"%s\"",
	     code == NQ_ECANCELED ? "canceled" : "failed", nq_errname(code),
	     message);
	if (spool_write_error(p->dir, code, message) != 0) {
		/* a full disk takes the error file too: the daemon reads this
		 * line instead (worker.c; one line under its 255 bytes) */
		log_err("cannot write error file dir=%s error=\"%s\"", p->dir,
		        strerror(errno));
		printf("error %s %.200s\n", nq_errname(code), message);
		fflush(stdout);
	}
	return code == NQ_ECANCELED ? EXIT_CANCELED : EXIT_FAILED;
}

/* The backend --device names (devname.h; auto is the daemon's to resolve,
 * never a worker's). 0 or an nq_error code (NQ_EBADDEVICE). */
static int
open_device(struct kern_backend *kb, const char *device)
{
	struct devname dn;

	memset(kb, 0, sizeof(*kb));
	if (devname_parse(device, &dn) != NQ_OK)
		return NQ_EBADDEVICE;
	switch (dn.kind) {
	case DEVNAME_CPU:
		return kern_cpu_open(kb);
	case DEVNAME_CUDA:
		return kern_cuda_open(kb, 0);
	case DEVNAME_CUDA_N:
		return kern_cuda_open(kb, dn.index);
	case DEVNAME_FAKE_N: /* a test device: admitted as a GPU, runs here */
		return kern_cpu_open(kb);
	case DEVNAME_AUTO:
		break;
	}
	return NQ_EBADDEVICE;
}

static int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"type", required_argument, NULL, 't'},
	        {"dir", required_argument, NULL, 'd'},
	        {"device", required_argument, NULL, 'v'},
	        {"grant", required_argument, NULL, 'g'},
	        {"attempt", required_argument, NULL, 'a'},
	        {"owner", required_argument, NULL, 'O'},
	        {"service-gid", required_argument, NULL, 'G'},
	        {"umask", required_argument, NULL, 'U'},
	        {"deny", required_argument, NULL, 'D'},
	        {"parent", required_argument, NULL, 'P'},
	        {NULL, 0, NULL, 0},
	};
	const char *type = NULL, *dir = NULL, *device = NULL, *jdir;
	struct owner_opts own;
	unsigned long long grant = 0;
	long attempt = 1;
	struct wpriv p;
	struct job_ctx ctx;
	struct kern_backend kb;
	struct nq_value params = {.kind = NQ_NIL};
	struct nq_map *inputs = NULL, *out = NULL;
	const struct job_type *jt;
	char msg[2048] = "", path[4096], ckpt[4096];
	int o, rc, ex, kb_open = 0;
	char *end;

	owner_init(&own);
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int oo = owner_opt(&own, o, optarg);
		if (oo < 0)
			return EXIT_USAGE;
		if (oo > 0)
			continue;
		switch (o) {
		case 't':
			type = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'v':
			device = optarg;
			break;
		case 'g':
			errno = 0;
			grant = strtoull(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || optarg[0] == '-') {
				fprintf(stderr, "neuroq-worker: bad --grant\n");
				return EXIT_USAGE;
			}
			break;
		case 'a':
			attempt = strtol(optarg, &end, 10);
			if (*end != '\0' || attempt < 1 || attempt > 1000000) {
				fprintf(stderr,
				        "neuroq-worker: bad --attempt\n");
				return EXIT_USAGE;
			}
			break;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (type == NULL || dir == NULL || device == NULL || optind < argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}

	/* before anything touches the job dir */
	if (die_with_parent(&own, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "neuroq-worker: %s\n", msg);
		return EXIT_FAILED;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* the owner works in the job dir by "."; no path leads there */
	jdir = dir;
	if (own.set) {
		if (chdir(dir) != 0) {
			fprintf(stderr, "neuroq-worker: cannot enter %s: %s\n",
			        dir, strerror(errno));
			return EXIT_FAILED;
		}
		jdir = ".";
	}
	memset(&p, 0, sizeof(p));
	p.dir = jdir;
	p.attempt = (int) attempt;
	p.last_progress = -1;
	snprintf(path, sizeof(path), "%s/log", jdir);
	p.log = fopen(path, "a");
	snprintf(path, sizeof(path), "%s/error", jdir);
	unlink(path);
	snprintf(ckpt, sizeof(ckpt), "%s/ckpt", jdir);
	wlog(&p, "start type=%s device=%s grant=%llu pid=%d", type, device,
	     grant, (int) getpid());
	/* no ckpt dir: the job runs, without checkpoints */
	if (spool_mkdir_p(ckpt, 0755) != 0)
		wlog(&p,
		     "cannot create the checkpoint dir path=%s error=\"%s\"",
		     ckpt, strerror(errno));
	else if (own.set)
		chmod(ckpt, 02770); /* the owner writes checkpoints there */

	jt = job_type_find(type);
	if (jt == NULL) {
		snprintf(msg, sizeof(msg), "unknown job type '%s'", type);
		ex = fail(&p, NQ_EBADTYPE, msg);
		goto out;
	}
	/* the inputs as staged, or the job never runs on them */
	rc = spool_verify_inputs(jdir, msg, sizeof(msg));
	if (rc == 0)
		rc = spool_read_params(jdir, &params, msg, sizeof(msg));
	if (rc != 0) {
		ex = fail(&p, rc, msg);
		goto out;
	}
	inputs = nq_map_new();
	out = nq_map_new();
	if (inputs == NULL || out == NULL) {
		ex = fail(&p, NQ_ENOMEM, "out of memory");
		goto out;
	}
	rc = spool_read_inputs(jdir, inputs, msg, sizeof(msg));
	if (rc != 0) {
		ex = fail(&p, rc, msg);
		goto out;
	}
	/* the spool is read: from here on the job's owner, files made in
	 * the spool readable and removable by the service group */
	rc = owner_drop(&own, msg, sizeof(msg));
	if (rc != 0) {
		ex = fail(&p, rc, msg);
		goto out;
	}
	blas_threads_restore();
	heartbeat_start(&p);
	if (own.set) {
		umask(007);
		wlog(&p, "owner uid=%u umask=%03o deny=%zu", (unsigned) own.uid,
		     (unsigned) own.umask, own.nids);
	}
	rc = jt->validate(params.u.map, inputs, msg, sizeof(msg));
	if (rc != 0) {
		ex = fail(&p, rc, msg);
		goto out;
	}
	rc = open_device(&kb, device);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "cannot open device %s: %s", device,
		         nq_strerror(rc));
		ex = fail(&p, rc, msg);
		goto out;
	}
	kb_open = 1;
	/* no grant (executor = slurm: Slurm picked this node's GPU): what the
	 * GPU has free is what the job may size its chunks by */
	if (grant == 0 && strncmp(device, "cuda", 4) == 0) {
		size_t fre = 0, tot = 0;
		if (kern_mem_info(&kb, &fre, &tot) == 0 && fre > 0) {
			grant = fre / 10 * 9;
			wlog(&p, "device memory free=%zu total=%zu grant=%llu",
			     fre, tot, grant);
		}
	}
	if (strncmp(device, "fake:", 5) == 0)
		wlog(&p,
		     "fake device: a test device, admitted as a GPU, run "
		     "by the cpu backend device=%s backend=%s",
		     device, kb.name);
	/* e.g. spikesort: 384 channels, 60 s on the shared 2-core dev box
	 * went from 69 to 58 s CPU, 206 to 133 s wall with one BLAS thread */
	if (jt->cpu_blas_threads > 0 && strcmp(device, "cpu") == 0 &&
	    getenv("OPENBLAS_NUM_THREADS") == NULL &&
	    getenv("GOTO_NUM_THREADS") == NULL &&
	    getenv("OMP_NUM_THREADS") == NULL)
		kern_cpu_set_threads(jt->cpu_blas_threads);

	memset(&ctx, 0, sizeof(ctx));
	ctx.kb = &kb;
	ctx.job_dir = jdir;
	ctx.job_dir_name = dir;
	ctx.ckpt_dir = ckpt;
	ctx.owner_umask = own.umask;
	ctx.deny = own.ids;
	ctx.ndeny = own.nids;
	ctx.grant_bytes = grant;
	ctx.attempt = (int) attempt;
	ctx.progress = ctx_progress;
	ctx.canceled = ctx_canceled;
	ctx.log = ctx_log;
	ctx.priv = &p;
	if (worker_stop) {
		ex = fail(&p, NQ_ECANCELED, "canceled before it started");
		goto out;
	}
	ctx_progress(&ctx, 0, "start");
	double t0 = nq_mono_s();
	msg[0] = '\0';
	rc = jt->run(&ctx, params.u.map, inputs, out, msg, sizeof(msg));
	double dt = nq_mono_s() - t0;
	if (rc != 0) {
		/* a job that finished despite a late SIGTERM keeps its
		 * result */
		if (worker_stop)
			rc = NQ_ECANCELED;
		ex = fail(&p, rc, rc == NQ_ECANCELED ? "canceled" : msg);
		goto out;
	}
	if (nq_map_get(out, "time_s") == NULL)
		nq_map_set_float(out, "time_s", dt);
	if (nq_map_get(out, "device") == NULL)
		nq_map_set_str(out, "device", kb.name[0] ? kb.name : device);
	rc = spool_write_outputs(jdir, out, msg, sizeof(msg));
	if (rc != 0) {
		ex = fail(&p, rc, msg);
		goto out;
	}
	ctx_progress(&ctx, 1, "done");
	wlog(&p, "done time_s=%.3f outputs=%zu", dt, out->n);
	ex = EXIT_OK;
out:
	if (kb_open)
		kern_close(&kb);
	nq_map_free(inputs);
	nq_map_free(out);
	nq_value_free(&params);
	if (p.log != NULL)
		fclose(p.log);
	if (own.set && geteuid() == own.uid) {
		int fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			spool_modes(fd, 0);
	}
	return ex;
}

/* One line on stdout: "ok H D F" or "error NAME message". */
static int
check_reply(int rc, const struct job_estimate *est, const char *msg)
{
	if (rc == 0) {
		printf("ok %" PRIu64 " %" PRIu64 " %.6g\n", est->host_bytes,
		       est->device_bytes, est->flops);
		fflush(stdout);
		return EXIT_OK;
	}
	if (msg == NULL || msg[0] == '\0')
		msg = nq_strerror(rc);
	printf("error %s ", nq_errname(rc));
	for (const char *c = msg; *c != '\0'; c++)
		putchar(*c == '\n' || *c == '\r' ? ' ' : *c);
	putchar('\n');
	fflush(stdout);
	return EXIT_FAILED;
}

static int
cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"type", required_argument, NULL, 't'},
	        {"dir", required_argument, NULL, 'd'},
	        {"owner", required_argument, NULL, 'O'},
	        {"service-gid", required_argument, NULL, 'G'},
	        {"umask", required_argument, NULL, 'U'},
	        {"deny", required_argument, NULL, 'D'},
	        {"parent", required_argument, NULL, 'P'},
	        {NULL, 0, NULL, 0},
	};
	const char *type = NULL, *dir = NULL;
	struct owner_opts own;
	struct nq_value params = {.kind = NQ_NIL};
	struct nq_map *inputs = NULL;
	struct job_estimate est;
	const struct job_type *jt;
	char msg[2048] = "";
	int o, rc;

	owner_init(&own);
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int oo = owner_opt(&own, o, optarg);
		if (oo < 0)
			return EXIT_USAGE;
		if (oo > 0)
			continue;
		switch (o) {
		case 't':
			type = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (type == NULL || dir == NULL || optind < argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (die_with_parent(&own, msg, sizeof(msg)) != 0)
		return check_reply(NQ_ECANCELED, NULL, msg);
	memset(&est, 0, sizeof(est));
	jt = job_type_find(type);
	if (jt == NULL) {
		snprintf(msg, sizeof(msg), "unknown job type '%s'", type);
		return check_reply(NQ_EBADTYPE, NULL, msg);
	}
	/* the staged request, as the service user */
	rc = spool_read_params(dir, &params, msg, sizeof(msg));
	if (rc == 0 && (inputs = nq_map_new()) == NULL)
		rc = NQ_ENOMEM;
	if (rc == 0)
		rc = spool_read_inputs(dir, inputs, msg, sizeof(msg));
	int other = own.set && own.uid != geteuid();
	if (rc == 0)
		rc = owner_drop(&own, msg, sizeof(msg));
	if (rc == 0 && own.set)
		umask(own.umask);
	if (rc == 0) {
		rc = jt->validate(params.u.map, inputs, msg, sizeof(msg));
		if (rc == 0)
			rc = jt->estimate(params.u.map, inputs, &est);
	}
	if (rc == 0 && jt->check != NULL) {
		struct job_check_ctx c = {own.ids, own.nids, own.umask, other};
		msg[0] = '\0';
		rc = jt->check(params.u.map, inputs, &c, &est, msg,
		               sizeof(msg));
	}
	nq_map_free(inputs);
	nq_value_free(&params);
	return check_reply(rc, &est, msg);
}

static int
cmd_probe(void)
{
	int n;

	printf("cpu cpu %" PRIu64 " %" PRIu64 "\n", nq_sysmem_bytes("MemTotal"),
	       nq_sysmem_available());
	n = kern_cuda_device_count();
	for (int i = 0; i < n; i++) {
		struct kern_backend kb;
		size_t fre = 0, tot = 0;
		int rc = kern_cuda_open(&kb, i);
		if (rc != 0) {
			log_warn("cuda device unusable index=%d error=%s", i,
			         nq_errname(rc));
			continue;
		}
		rc = kern_mem_info(&kb, &fre, &tot);
		kern_close(&kb);
		if (rc != 0) {
			log_warn("cuda mem_info failed index=%d error=%s", i,
			         nq_errname(rc));
			continue;
		}
		printf("cuda:%d cuda %zu %zu\n", i, tot, fre);
	}
	fflush(stdout);
	return 0;
}

/* `describe [TYPE]`: what the describe op serves, as JSON (the docs
 * generator, deploy/gen-jobdocs.py, reads it). */
static int
cmd_describe(const char *type)
{
	struct nq_value list;
	struct nq_json w;
	int rc = job_type_describe(type, &list);

	if (rc != 0) {
		fprintf(stderr, "neuroq-worker: describe: %s\n",
		        rc == NQ_EBADTYPE ? "unknown job type"
		                          : nq_strerror(rc));
		return rc == NQ_EBADTYPE ? EXIT_USAGE : 1;
	}
	nq_json_init_file(&w, stdout, 0);
	nq_json_obj_begin(&w);
	nq_json_key(&w, "types");
	nq_json_value(&w, &list);
	nq_json_obj_end(&w);
	nq_json_raw(&w, "\n");
	rc = nq_json_finish(&w);
	nq_value_free(&list);
	return rc == 0 && fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	log_init(LOG_INFO);
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "check") == 0)
		reexec_single_threaded(argc, argv);
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "probe") == 0 && argc == 2)
		return cmd_probe();
	if (strcmp(argv[1], "describe") == 0 && argc <= 3)
		return cmd_describe(argc == 3 ? argv[2] : NULL);
	if (strcmp(argv[1], "--version") == 0) {
		printf("neuroq-worker %s\n", NEUROQ_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fputs(usage, stderr);
	return EXIT_USAGE;
}
