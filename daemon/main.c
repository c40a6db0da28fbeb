/* main.c — neuroqd: arguments, config, state dir, start-up recovery, the
 * loop, signals (SIGTERM/SIGINT drain, SIGHUP noted). */
#include "access.h"
#include "config.h"
#include "daemon.h"
#include "devices.h"
#include "executor.h"
#include "http.h"
#include "job_type.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "probe.h"
#include "recover.h"
#include "scheduler.h"
#include "server.h"
#include "spool.h"
#include "store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
        "usage: neuroqd [--listen URL]... [--events URL] [--state-dir DIR]\n"
        "               [--config FILE] [--devices cpu,cuda:0,fake:1:8GiB,...] "
        "[--foreground]\n"
        "       neuroqd --print-config [same options]\n"
        "       neuroqd --recover [--state-dir DIR] [--config FILE]\n"
        "       neuroqd --version\n"
        "\n"
        "The command line wins over the config file; --print-config shows the\n"
        "effective settings in the config file's format.\n"
        "neuroqd refuses to start on a damaged job store; --recover (with the\n"
        "daemon stopped) moves it to <state_dir>/damaged-<time>/ and rebuilds\n"
        "the jobs from <state_dir>/jobs, setting aside what it cannot read in\n"
        "<state_dir>/recovered-aside/.\n";

static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t retention_timer;

#define RETENTION_PERIOD_MS (3600 * 1000)
#define RETENTION_BATCH     256

struct expired {
	int64_t ids[RETENTION_BATCH];
	uint32_t owner[RETENTION_BATCH];
	char type[RETENTION_BATCH][32];
	size_t n;
};

static int
expired_cb(void *arg, const struct job_row *row)
{
	struct expired *e = arg;

	if (e->n < RETENTION_BATCH) {
		e->owner[e->n] = row->owner;
		snprintf(e->type[e->n], sizeof(e->type[0]), "%s", row->type);
		e->ids[e->n++] = row->id;
	}
	return e->n == RETENTION_BATCH;
}

/* Removes the spool dirs of jobs that ended more than retention_days ago;
 * their rows stay, marked purged (result then says why). The dir goes
 * first: a crash in between only repeats the removal. */
static void
retention_pass(struct daemon *d)
{
	int64_t before;
	size_t purged = 0;
	int full;

	if (d->cfg->retention_days <= 0)
		return;
	before = nq_wall_us() -
	         (int64_t) d->cfg->retention_days * 86400 * 1000000;
	do {
		struct expired e = {.n = 0};
		size_t ok = 0;
		if (store_list_expired(d->store, before, RETENTION_BATCH,
		                       expired_cb, &e) != 0) {
			log_err("retention: store error=\"%s\"",
			        store_errmsg(d->store));
			break;
		}
		for (size_t i = 0; i < e.n; i++) {
			char jd[4096];

			if (spool_job_dir(config_spool_root(d->cfg), e.ids[i],
			                  jd, sizeof(jd)) != 0) {
				log_warn("retention: cannot remove id=%" PRId64
				         " error=\"state dir path too long\"",
				         e.ids[i]);
				continue;
			}
			/* only the dir this row's submit made: never one
			 * a database that lost rows would misname */
			if (!spool_dir_is_job(jd, e.owner[i], e.type[i])) {
				log_warn("retention: not this job's dir, kept "
				         "id=%" PRId64 " dir=%s owner=%" PRIu32,
				         e.ids[i], jd, e.owner[i]);
				continue;
			}
			if (spool_rm_rf(jd) != 0) {
				log_warn("retention: cannot remove id=%" PRId64
				         " dir=%s error=\"%s\"",
				         e.ids[i], jd, strerror(errno));
				continue;
			}
			if (store_mark_purged(d->store, e.ids[i]) == 0)
				ok++;
		}
		purged += ok;
		/* another batch only when this one went through entirely:
		 * a dir that cannot be removed must not loop forever */
		full = e.n == RETENTION_BATCH && ok == e.n;
	} while (full);
	if (purged > 0)
		log_notice("retention: removed finished jobs' files jobs=%zu "
		           "retention_days=%d",
		           purged, d->cfg->retention_days);
}

static void
on_retention_timer(uv_timer_t *t)
{
	retention_pass(t->data);
}
static int exit_code;

static void
on_quiet(struct daemon *d)
{
	log_notice("drained; stopping");
	uv_stop(d->loop);
}

/* Every worker is gone; requests whose work runs in the threadpool (a
 * submit's staging, a result's reading) are answered before the loop
 * stops, so that no job is half-submitted and net_close finds none. */
static void
on_drained(struct daemon *d)
{
	server_quiesce(d, on_quiet);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		/* logs go to stderr (journald): nothing to reopen */
		log_notice("SIGHUP received (nothing to reload)");
		return;
	}
	if (d->draining) {
		log_notice(
		        "signal=%d while draining; workers get SIGKILL after "
		        "the grace period",
		        signum);
		return;
	}
	log_notice("shutting down signal=%d running=%zu", signum,
	           executor_count(d));
	d->draining = 1;
	executor_drain(d, on_drained);
}

struct queued {
	struct job_row *rows;
	size_t n, cap;
};

static int
queued_cb(void *arg, const struct job_row *row)
{
	struct queued *q = arg;

	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct job_row *r = realloc(q->rows, cap * sizeof(*r));
		if (r == NULL)
			return 1;
		q->rows = r;
		q->cap = cap;
	}
	q->rows[q->n++] = *row;
	return 0;
}

/* Every QUEUED row goes back into the scheduler, oldest first. */
static int
load_queue(struct daemon *d)
{
	struct store_filter f = {
	        .state = JOB_QUEUED, .any_owner = 1, .oldest_first = 1};
	struct queued q = {0};
	size_t loaded = 0;
	int rc;

	rc = store_list(d->store, &f, queued_cb, &q);
	if (rc != 0) {
		free(q.rows);
		return rc;
	}
	for (size_t i = 0; i < q.n; i++) {
		const struct job_row *row = &q.rows[i];
		struct sched_job sj;
		memset(&sj, 0, sizeof(sj));
		sj.id = row->id;
		sj.owner = row->owner;
		sj.priority = row->priority;
		sj.seq = (uint64_t) row->id;
		sj.host_bytes = row->est_host_bytes;
		sj.device_bytes = row->est_device_bytes;
		sj.flops = row->est_flops;
		snprintf(sj.device_req, sizeof(sj.device_req), "%s",
		         row->device_req);
		rc = sched_fits_ever(d->sched, &sj);
		if (rc != 0) {
			/* the devices changed since the submit */
			char why[256], jd[4096];
			snprintf(why, sizeof(why),
			         "no device of this server can run it any more "
			         "(device %s)",
			         row->device_req);
			if (spool_job_dir(config_spool_root(d->cfg), row->id,
			                  jd, sizeof(jd)) == 0)
				spool_write_error(jd, rc, why);
			store_mark_final(d->store, row->id, JOB_FAILED, rc,
			                 why);
			log_warn("queued job failed id=%" PRId64 " error=%s",
			         row->id, nq_errname(rc));
			rc = 0;
			continue;
		}
		rc = sched_enqueue(d->sched, &sj);
		if (rc != 0)
			break;
		loaded++;
	}
	log_info("queue loaded jobs=%zu", loaded);
	free(q.rows);
	return rc;
}

/* RUNNING rows whose job had ended: its error file was written, the row
 * was not (a full disk, then a stop or a crash: worker.c keeps such ends
 * in memory only). The file's verdict becomes the row, so the restart does
 * not run the job again. ECANCELED files are left to store_recover2 (a
 * drain's SIGTERM also writes one). */
static void
settle_ended(struct daemon *d)
{
	struct store_filter f = {
	        .state = JOB_RUNNING, .any_owner = 1, .oldest_first = 1};
	struct queued q = {0};
	size_t settled = 0;

	if (store_list(d->store, &f, queued_cb, &q) != 0) {
		free(q.rows);
		return;
	}
	for (size_t i = 0; i < q.n; i++) {
		char jd[4096], msg[1024];
		int code;
		if (spool_job_dir(d->cfg->state_dir, q.rows[i].id, jd,
		                  sizeof(jd)) != 0 ||
		    spool_read_error(jd, &code, msg, sizeof(msg)) != 0 ||
		    code == NQ_ECANCELED || code == 0)
			continue;
		if (store_mark_final(d->store, q.rows[i].id, JOB_FAILED, code,
		                     msg) == 0) {
			settled++;
			log_notice("job end recorded from its error file "
			           "id=%" PRId64 " error=%s",
			           q.rows[i].id, nq_errname(code));
		}
	}
	if (settled > 0)
		log_notice("ended jobs recorded at start-up jobs=%zu", settled);
	free(q.rows);
}

static int
socket_dir_mode(const struct config *c)
{
	int mode = c->system ? 0755 : 0700;

	if (c->socket_mode & 0060)
		mode |= 0050;
	if (c->socket_mode & 0006)
		mode |= 0005;
	return mode;
}

enum {
	OPT_LISTEN = 256,
	OPT_EVENTS,
	OPT_STATE,
	OPT_CONFIG,
	OPT_DEVICES,
	OPT_FG,
	OPT_VERSION,
	OPT_PRINT,
	OPT_RECOVER,
	OPT_HELP
};

static const struct option long_opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"events", required_argument, NULL, OPT_EVENTS},
        {"state-dir", required_argument, NULL, OPT_STATE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"devices", required_argument, NULL, OPT_DEVICES},
        {"foreground", no_argument, NULL, OPT_FG},
        {"version", no_argument, NULL, OPT_VERSION},
        {"print-config", no_argument, NULL, OPT_PRINT},
        {"recover", no_argument, NULL, OPT_RECOVER},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

struct cmdline {
	const char *listen[CONFIG_MAX_LISTEN];
	int nlisten;
	const char *events, *state_dir, *config, *devices;
	int print_config, recover;
};

static int
parse_args(int argc, char **argv, struct cmdline *cl)
{
	int o;

	memset(cl, 0, sizeof(*cl));
	while ((o = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (o) {
		case OPT_LISTEN:
			if (cl->nlisten == CONFIG_MAX_LISTEN) {
				fprintf(stderr,
				        "neuroqd: at most %d --listen\n",
				        CONFIG_MAX_LISTEN);
				return 2;
			}
			cl->listen[cl->nlisten++] = optarg;
			break;
		case OPT_EVENTS:
			cl->events = optarg;
			break;
		case OPT_STATE:
			cl->state_dir = optarg;
			break;
		case OPT_CONFIG:
			cl->config = optarg;
			break;
		case OPT_DEVICES:
			cl->devices = optarg;
			break;
		case OPT_FG:
			break; /* neuroqd never forks: always foreground */
		case OPT_VERSION:
			printf("neuroqd %s (protocol %d)\n", NEUROQ_VERSION,
			       NQ_PROTOCOL_VERSION);
			exit(0);
		case OPT_PRINT:
			cl->print_config = 1;
			break;
		case OPT_RECOVER:
			cl->recover = 1;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "neuroqd: unexpected argument '%s'\n%s",
		        argv[optind], usage);
		return 2;
	}
	return 0;
}

static int
build_config(const struct cmdline *cl, struct config *c)
{
	char msg[1024];
	int rc;

	if ((rc = config_defaults(c, msg, sizeof(msg))) != 0)
		goto fail;
	if (cl->config != NULL &&
	    (rc = config_load(c, cl->config, msg, sizeof(msg))) != 0)
		goto fail;
	if (cl->nlisten > 0) {
		c->nlisten = 0;
		for (int i = 0; i < cl->nlisten; i++) {
			rc = config_set(c, "listen", cl->listen[i], msg,
			                sizeof(msg));
			if (rc != 0)
				goto fail;
			/* the first set may have dropped the default */
		}
	}
	if ((cl->events != NULL &&
	     (rc = config_set(c, "events", cl->events, msg, sizeof(msg)))) ||
	    (cl->state_dir != NULL &&
	     (rc = config_set(c, "state_dir", cl->state_dir, msg,
	                      sizeof(msg)))) ||
	    (cl->devices != NULL &&
	     (rc = config_set(c, "devices", cl->devices, msg, sizeof(msg)))))
		goto fail;
	if ((rc = config_finish(c, msg, sizeof(msg))) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "neuroqd: %s\n", msg);
	return rc;
}

/* Test-only settings from the environment (tests/e2e): never set them in
 * production. NEUROQ_TEST_SPOOL_DELAY_MS: a submit's staging sleeps this
 * long after writing its files, its request still held (so a test can hold
 * it in progress, and its memory: max_upload_bytes). */
static void
test_knobs(struct daemon *d)
{
	const char *s = getenv("NEUROQ_TEST_SPOOL_DELAY_MS");
	char *end;
	unsigned long v;

	if (s == NULL || *s == '\0')
		return;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > 600000) {
		log_warn(
		        "ignoring NEUROQ_TEST_SPOOL_DELAY_MS=%.32s (0..600000)",
		        s);
		return;
	}
	d->test_spool_delay_ms = (unsigned) v;
	log_warn("test setting NEUROQ_TEST_SPOOL_DELAY_MS=%lu: every submit "
	         "is delayed",
	         v);
}

int
main(int argc, char **argv)
{
	static struct config cfg;
	struct cmdline cl;
	struct daemon d;
	struct http *http = NULL;
	char msg[1024], path[4096];
	enum log_level lv = LOG_INFO;
	int rc, requeued = 0, failed = 0, canceled = 0;

	if ((rc = parse_args(argc, argv, &cl)) != 0)
		return rc;
	if (build_config(&cl, &cfg) != 0)
		return 1;
	if (cl.print_config) {
		config_print(&cfg, stdout);
		return 0;
	}
	if (cl.recover) {
		struct recover_counts rcn;
		/* run while no neuroqd is: it moves the database */
		return recover_state_dir(cfg.state_dir, config_spool_root(&cfg),
		                         stdout, &rcn);
	}
	log_level_parse(cfg.log_level, &lv);
	log_init(lv);
	signal(SIGPIPE, SIG_IGN);

	memset(&d, 0, sizeof(d));
	d.cfg = &cfg;
	d.loop = uv_default_loop();
	/* whole seconds */
	// NOLINTNEXTLINE(bugprone-integer-division)
	d.started = (double) (nq_wall_us() / 1000000);
	test_knobs(&d);

	if (spool_init(cfg.state_dir) != 0) {
		log_err("cannot create state dir path=%s error=\"%s\"",
		        cfg.state_dir, strerror(errno));
		return 1;
	}
	/* one neuroqd per state dir (held until exit; --recover waits) */
	if ((rc = spool_lock(cfg.state_dir)) < 0) {
		if (rc == -NQ_ESTATE)
			log_err("another neuroqd uses this state dir path=%s",
			        cfg.state_dir);
		else
			log_err("cannot lock the state dir path=%s "
			        "error=\"%s\"",
			        cfg.state_dir, strerror(errno));
		return 1;
	}
	/* executor = slurm: the job dirs live on the shared spool */
	if (config_is_slurm(&cfg) &&
	    spool_init_shared(cfg.slurm_spool_dir) != 0) {
		log_err("cannot create the slurm spool dir path=%s "
		        "error=\"%s\"",
		        cfg.slurm_spool_dir, strerror(errno));
		return 1;
	}
	spool_clean_staging(config_spool_root(&cfg));
	snprintf(path, sizeof(path), "%s/neuroq.db", cfg.state_dir);
	/* a damaged database is never opened for writing: it would take
	 * submits and lose them (or reuse ids) later */
	if ((rc = store_verify(path, msg, sizeof(msg))) != 0) {
		if (rc == NQ_EBADDATA)
			log_err("the job store is damaged; neuroqd will not "
			        "start on it: run `neuroqd --recover` (same "
			        "--state-dir or --config): it moves the "
			        "damaged database to %s/damaged-<time>/ (kept, "
			        "never deleted) and rebuilds the jobs from "
			        "%s/jobs path=%s error=\"%s\"",
			        cfg.state_dir, cfg.state_dir, path, msg);
		else
			log_err("cannot check the job store path=%s "
			        "error=\"%s\"",
			        path, msg);
		return 1;
	}
	if (store_open(&d.store, path, msg, sizeof(msg)) != 0) {
		log_err("cannot open the job store path=%s error=\"%s\"", path,
		        msg);
		return 1;
	}
	/* ids never go backwards: a database that lost rows (restored,
	 * rolled back, deleted) must not hand out an id whose dir exists */
	{
		int64_t top = spool_max_job_id(config_spool_root(&cfg));
		int64_t last = 0;
		if (store_max_id(d.store, &last) == 0 && top > last)
			log_warn("job dirs have no rows (the store was "
			         "restored, rolled back or lost?): their files "
			         "are kept and new jobs get ids past them; "
			         "`neuroqd --recover` (daemon stopped) gives "
			         "them their rows back "
			         "last_row=%" PRId64 " last_dir=%" PRId64,
			         last, top);
		if (store_raise_next_id(d.store, top + 1) != 0) {
			log_err("cannot set the next job id error=\"%s\"",
			        store_errmsg(d.store));
			exit_code = 1;
			goto out_store;
		}
	}
	settle_ended(&d);
	if (store_recover2(d.store, cfg.max_attempts, &requeued, &failed,
	                   &canceled) != 0) {
		log_err("start-up recovery failed error=\"%s\"",
		        store_errmsg(d.store));
		exit_code = 1;
		goto out_store;
	}
	if (requeued || failed || canceled)
		log_notice("recovered interrupted jobs requeued=%d failed=%d "
		           "canceled=%d",
		           requeued, failed, canceled);
	d.sched = sched_new(cfg.headroom_bytes);
	d.metrics = metrics_new();
	if (d.sched == NULL || d.metrics == NULL) {
		log_err("out of memory");
		exit_code = 1;
		goto out_store;
	}
	sched_set_auto_cpu_max_flops(d.sched, cfg.auto_cpu_max_flops);
	if ((config_is_slurm(&cfg)
	             ? executor_slurm_devices(&cfg, d.sched, d.devs, &d.ndevs,
	                                      msg, sizeof(msg))
	             : devices_discover(&cfg, d.sched, d.devs, &d.ndevs, msg,
	                                sizeof(msg))) != 0) {
		log_err("device discovery failed error=\"%s\"", msg);
		exit_code = 1;
		goto out_sched;
	}
	d.probe_last_ms = uv_now(d.loop); /* discovery just probed */
	if (load_queue(&d) != 0) {
		log_err("cannot load the queue error=\"%s\"",
		        store_errmsg(d.store));
		exit_code = 1;
		goto out_sched;
	}

	if (executor_open(&d, msg, sizeof(msg)) != 0) {
		log_err("cannot start the executor executor=%s error=\"%s\"",
		        cfg.executor, msg);
		exit_code = 1;
		goto out_sched;
	}

	if (access_open(&d.access, cfg.admin_group, (uint32_t) geteuid(), msg,
	                sizeof(msg)) != 0) {
		log_err("cannot start error=\"%s\"", msg);
		exit_code = 1;
		goto out_sched;
	}
	struct net_config nc = {
	        .contexts = cfg.contexts,
	        .max_message_bytes = (size_t) cfg.max_message_bytes,
	        .max_upload_bytes = (size_t) cfg.max_upload_bytes,
	        .socket_mode = cfg.socket_mode,
	        .tcp_owner_uid = cfg.tcp_owner_uid,
	        .access = d.access,
	};
	if (net_open(&d.net, d.loop, &nc, server_handle, &d, msg,
	             sizeof(msg)) != 0) {
		log_err("cannot open sockets error=\"%s\"", msg);
		exit_code = 1;
		goto out_sched;
	}
	for (int i = 0; i < cfg.nlisten; i++) {
		if (net_listen(d.net, cfg.listen[i], socket_dir_mode(&cfg), msg,
		               sizeof(msg)) != 0) {
			log_err("listen failed error=\"%s\"", msg);
			exit_code = 1;
			goto out_net;
		}
		log_info("listening url=%s", cfg.listen[i]);
	}
	if (net_listen_events(d.net, cfg.events, socket_dir_mode(&cfg), msg,
	                      sizeof(msg)) != 0) {
		log_err("events listen failed error=\"%s\"", msg);
		exit_code = 1;
		goto out_net;
	}
	log_info("events url=%s", cfg.events);
	net_start(d.net, msg, sizeof(msg));
	if (cfg.http_listen[0] != '\0' &&
	    http_open(&http, &d, cfg.http_listen, msg, sizeof(msg)) != 0) {
		log_err("monitoring port failed error=\"%s\"", msg);
		exit_code = 1;
		goto out_net;
	}

	uv_signal_init(d.loop, &sig_term);
	uv_signal_init(d.loop, &sig_int);
	uv_signal_init(d.loop, &sig_hup);
	sig_term.data = sig_int.data = sig_hup.data = &d;
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	/* start-up pass, then hourly; unref'd so it never keeps the loop */
	uv_timer_init(d.loop, &retention_timer);
	retention_timer.data = &d;
	uv_unref((uv_handle_t *) &retention_timer);
	if (cfg.retention_days > 0)
		uv_timer_start(&retention_timer, on_retention_timer, 0,
		               RETENTION_PERIOD_MS);

	log_notice("neuroqd started version=%s state_dir=%s pid=%d",
	           NEUROQ_VERSION, cfg.state_dir, (int) getpid());
	executor_start_more(&d);
	uv_run(d.loop, UV_RUN_DEFAULT);

	uv_close((uv_handle_t *) &sig_term, NULL);
	uv_close((uv_handle_t *) &sig_int, NULL);
	uv_close((uv_handle_t *) &sig_hup, NULL);
	uv_close((uv_handle_t *) &retention_timer, NULL);
	probe_close(&d);
	executor_close(&d);
out_net:
	http_close(http);
	net_close(d.net);
	uv_run(d.loop, UV_RUN_DEFAULT); /* let closed handles finish */
out_sched:
	access_close(d.access);
	sched_free(d.sched);
	metrics_free(d.metrics);
out_store:
	store_close(d.store);
	uv_loop_close(d.loop);
	if (exit_code == 0)
		log_notice("neuroqd stopped");
	return exit_code;
}
