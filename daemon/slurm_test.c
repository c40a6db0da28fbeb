/* slurm_test.c — the slurm executor's pure parts (slurm.h): the sbatch
 * command line, the batch script (run for real by /bin/sh with a stand-in
 * worker), squeue and sinfo lines as Slurm 22.05 prints them, and what
 * each Slurm end means for neuroq. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "slurm.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void
test_sbatch_argv(void **state)
{
	struct slurm_submit s = {
	        .bin_dir = "/opt/slurm/bin",
	        .id = 42,
	        .job_dir = "/shared/spool/jobs/42",
	        .gpus = 1,
	        .mem_bytes = (3ull << 30) + 1, /* rounds up a MiB */
	        .time_limit_s = 601,           /* rounds up to 11 min */
	        .partition = "gpu",
	        .account = "",
	        .qos = "high",
	        .extra = "  --exclude=node13\t--nice=5 ",
	};
	char *argv[32], buf[4096];
	const char *want[] = {
	        "/opt/slurm/bin/sbatch",
	        "--parsable",
	        "--job-name=neuroq-42",
	        "--chdir=/shared/spool/jobs/42",
	        "--output=/shared/spool/jobs/42/slurm.out",
	        "--no-requeue",
	        "--dependency=singleton",
	        "--gres=gpu:1",
	        "--mem=3073M",
	        "--time=11",
	        "--signal=B:USR1@60",
	        "--partition=gpu",
	        "--qos=high",
	        "--exclude=node13",
	        "--nice=5",
	        "/shared/spool/jobs/42/slurm.sh",
	};
	size_t nw = sizeof(want) / sizeof(want[0]);
	int argc;

	(void) state;
	argc = slurm_sbatch_argv(&s, argv, 32, buf, sizeof(buf));
	assert_int_equal(argc, (int) nw);
	for (size_t i = 0; i < nw; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[nw]);

	/* a cpu job: no gres; a small estimate gets the floor; a short
	 * limit gets no early warning (Slurm may send it a minute early);
	 * PATH lookup without bin_dir; nothing optional */
	struct slurm_submit c = {.bin_dir = "",
	                         .id = 7,
	                         .job_dir = "/s/7",
	                         .mem_bytes = 1000,
	                         .time_limit_s = 60};
	argc = slurm_sbatch_argv(&c, argv, 32, buf, sizeof(buf));
	assert_int_equal(argc, 10);
	assert_string_equal(argv[0], "sbatch");
	assert_string_equal(argv[7], "--mem=256M");
	assert_string_equal(argv[8], "--time=1");
	assert_string_equal(argv[9], "/s/7/slurm.sh");
	/* no limit: no --time */
	c.time_limit_s = 0;
	assert_int_equal(slurm_sbatch_argv(&c, argv, 32, buf, sizeof(buf)), 9);
	/* too small a buffer or argv: refused, not cut */
	assert_int_equal(slurm_sbatch_argv(&s, argv, 32, buf, 100), -1);
	assert_int_equal(slurm_sbatch_argv(&s, argv, 5, buf, sizeof(buf)), -1);
}

static void
test_parse_sbatch(void **state)
{
	char id[32];

	(void) state;
	assert_int_equal(slurm_parse_sbatch("1234\n", id, sizeof(id)), 0);
	assert_string_equal(id, "1234");
	assert_int_equal(slurm_parse_sbatch("77;cluster2", id, sizeof(id)), 0);
	assert_string_equal(id, "77");
	assert_int_equal(slurm_parse_sbatch("sbatch: error: Batch job "
	                                    "submission failed",
	                                    id, sizeof(id)),
	                 -1);
	assert_int_equal(slurm_parse_sbatch("", id, sizeof(id)), -1);
	assert_int_equal(slurm_parse_sbatch("12x", id, sizeof(id)), -1);
	assert_int_equal(slurm_parse_sbatch("123456", id, 4), -1);
}

static void
test_parse_squeue(void **state)
{
	struct slurm_row r;

	(void) state;
	/* lines of `squeue -h -t all -o '%i %T %r'` (Slurm 22.05) */
	assert_int_equal(slurm_parse_squeue("3 PENDING Resources", &r), 0);
	assert_string_equal(r.id, "3");
	assert_string_equal(r.state, "PENDING");
	assert_string_equal(r.reason, "Resources");
	assert_int_equal(slurm_parse_squeue("1 RUNNING None\n", &r), 0);
	assert_string_equal(r.reason, "None");
	/* a reason with blanks is kept whole */
	assert_int_equal(slurm_parse_squeue("  9 PENDING ReqNodeNotAvail, "
	                                    "UnavailableNodes:nq1  ",
	                                    &r),
	                 0);
	assert_string_equal(r.id, "9");
	assert_string_equal(r.reason, "ReqNodeNotAvail, UnavailableNodes:nq1");
	assert_int_equal(slurm_parse_squeue("12 OUT_OF_MEMORY OutOfMemory", &r),
	                 0);
	assert_string_equal(r.state, "OUT_OF_MEMORY");
	/* squeue's own complaints are no rows */
	assert_int_equal(slurm_parse_squeue("slurm_load_jobs error: Invalid "
	                                    "job id specified",
	                                    &r),
	                 -1);
	assert_int_equal(slurm_parse_squeue("", &r), -1);
	assert_int_equal(slurm_parse_squeue("12", &r), -1);
	assert_int_equal(slurm_parse_squeue("12 running x", &r), -1);
}

static void
test_phase(void **state)
{
	(void) state;
	assert_int_equal(slurm_phase("PENDING"), SLURM_PENDING);
	assert_int_equal(slurm_phase("CONFIGURING"), SLURM_PENDING);
	assert_int_equal(slurm_phase("REQUEUED"), SLURM_PENDING);
	assert_int_equal(slurm_phase("SUSPENDED"), SLURM_PENDING);
	assert_int_equal(slurm_phase("RUNNING"), SLURM_RUNNING);
	assert_int_equal(slurm_phase("COMPLETING"), SLURM_RUNNING);
	const char *ended[] = {"COMPLETED", "CANCELLED",     "FAILED",
	                       "TIMEOUT",   "NODE_FAIL",     "PREEMPTED",
	                       "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE"};
	for (size_t i = 0; i < sizeof(ended) / sizeof(ended[0]); i++)
		assert_int_equal(slurm_phase(ended[i]), SLURM_ENDED);
	assert_int_equal(slurm_phase("WHATEVER"), SLURM_UNKNOWN);
}

static enum slurm_action
decide(const char *state, int have_status, int status, int have_out,
       int canceled, int *code, char *msg)
{
	struct slurm_end e = {.state = state,
	                      .have_status = have_status,
	                      .status = status,
	                      .have_out = have_out,
	                      .canceled = canceled,
	                      .time_limit_s = 600};

	return slurm_decide(&e, code, msg, 256);
}

static void
test_decide(void **state)
{
	char msg[256];
	int code;

	(void) state;
	/* a whole result is DONE, whatever Slurm says of the end (the
	 * daemon may see it forgotten, or COMPLETING->COMPLETED) */
	assert_int_equal(decide("COMPLETED", 1, 0, 1, 0, &code, msg),
	                 SLURM_DONE);
	assert_int_equal(decide(NULL, 1, 0, 1, 0, &code, msg), SLURM_DONE);
	assert_int_equal(decide("CANCELLED", 1, 0, 1, 1, &code, msg),
	                 SLURM_DONE);
	/* our cancel: CANCELED whether it was pending (CANCELLED) or the
	 * worker stopped on SIGTERM (FAILED, status 3) */
	assert_int_equal(decide("CANCELLED", 0, 0, 0, 1, &code, msg),
	                 SLURM_CANCEL);
	assert_int_equal(code, NQ_ECANCELED);
	assert_int_equal(decide("FAILED", 1, 3, 0, 1, &code, msg),
	                 SLURM_CANCEL);
	/* the time limit */
	assert_int_equal(decide("TIMEOUT", 1, 3, 0, 0, &code, msg), SLURM_FAIL);
	assert_int_equal(code, NQ_ETIMEDOUT);
	assert_string_equal(msg,
	                    "time limit of 600 s exceeded (Slurm TIMEOUT)");
	/* ... also once slurmctld forgot it: the status says time_limit */
	struct slurm_end w = {.state = NULL,
	                      .have_status = 1,
	                      .status = 3,
	                      .warned = 1,
	                      .time_limit_s = 60};
	assert_int_equal(slurm_decide(&w, &code, msg, sizeof(msg)), SLURM_FAIL);
	assert_int_equal(code, NQ_ETIMEDOUT);
	assert_int_equal(decide("OUT_OF_MEMORY", 0, 0, 0, 0, &code, msg),
	                 SLURM_FAIL);
	assert_int_equal(code, NQ_ENOMEM);
	/* the node or a higher-priority job took it: another attempt */
	assert_int_equal(decide("NODE_FAIL", 0, 0, 0, 0, &code, msg),
	                 SLURM_RETRY);
	assert_string_equal(msg, "Slurm ended the attempt: NODE_FAIL");
	assert_int_equal(decide("PREEMPTED", 1, 143, 0, 0, &code, msg),
	                 SLURM_RETRY);
	/* an administrator's scancel */
	assert_int_equal(decide("CANCELLED", 0, 0, 0, 0, &code, msg),
	                 SLURM_CANCEL);
	assert_int_equal(code, NQ_ECANCELED);
	assert_non_null(strstr(msg, "administrator"));
	/* the worker failed: its error file tells */
	assert_int_equal(decide("FAILED", 1, 1, 0, 0, &code, msg),
	                 SLURM_ERRFILE);
	assert_int_equal(decide(NULL, 1, 2, 0, 0, &code, msg), SLURM_ERRFILE);
	/* killed by a signal on the node: like a local crash */
	assert_int_equal(decide("FAILED", 1, 137, 0, 0, &code, msg),
	                 SLURM_RETRY);
	assert_string_equal(msg, "worker killed by signal 9 on the node");
	/* exit 0 without out/: not a result */
	assert_int_equal(decide("COMPLETED", 1, 0, 0, 0, &code, msg),
	                 SLURM_FAIL);
	assert_int_equal(code, NQ_EINTERNAL);
	/* forgotten and no status: lost */
	assert_int_equal(decide(NULL, 0, 0, 0, 0, &code, msg), SLURM_RETRY);
	/* ended but its status not visible yet: wait a few polls */
	struct slurm_end f = {.state = "FAILED"};
	assert_int_equal(slurm_decide(&f, &code, msg, sizeof(msg)), SLURM_WAIT);
	f.waited = 3;
	assert_int_equal(slurm_decide(&f, &code, msg, sizeof(msg)), SLURM_FAIL);
	assert_int_equal(code, NQ_EFAILED);
}

static void
test_gres(void **state)
{
	char type[32];

	(void) state;
	assert_int_equal(slurm_gres_gpus("gpu:fake:2", type, sizeof(type)), 2);
	assert_string_equal(type, "fake");
	assert_int_equal(slurm_gres_gpus("gpu:fake:0(IDX:N/A)", NULL, 0), 0);
	assert_int_equal(slurm_gres_gpus("gpu:fake:2(IDX:0-1)", NULL, 0), 2);
	assert_int_equal(slurm_gres_gpus("gpu:4", type, sizeof(type)), 4);
	assert_string_equal(type, "");
	assert_int_equal(slurm_gres_gpus("gpu:a100:4(S:0,1),shard:8,"
	                                 "gpu:v100:2",
	                                 type, sizeof(type)),
	                 6);
	assert_string_equal(type, "a100");
	assert_int_equal(slurm_gres_gpus("(null)", type, sizeof(type)), 0);
	assert_int_equal(slurm_gres_gpus("gpus:2", NULL, 0), 0);
}

static void
test_parse_sinfo(void **state)
{
	struct slurm_node n;

	(void) state;
	/* `sinfo -h -N -O NodeList:64,Partition:64,Gres:128,GresUsed:128,
	 * Memory:16,CPUsState:32,StateCompact:32` (padding squeezed) */
	assert_int_equal(slurm_parse_sinfo("nq1   nqtest*   gpu:fake:2   "
	                                   "gpu:fake:1(IDX:0)   6026   "
	                                   "1/1/0/2   mix   ",
	                                   &n),
	                 0);
	assert_string_equal(n.node, "nq1");
	assert_string_equal(n.partition, "nqtest");
	assert_int_equal(n.gpus, 2);
	assert_int_equal(n.gpus_used, 1);
	assert_string_equal(n.gpu_type, "fake");
	assert_true(n.mem_mb == 6026);
	assert_int_equal(n.cpus_alloc, 1);
	assert_int_equal(n.cpus_total, 2);
	assert_string_equal(n.state, "mix");
	assert_int_equal(slurm_parse_sinfo("cpu1 batch (null) (null) 192000 "
	                                   "0/64/0/64 idle",
	                                   &n),
	                 0);
	assert_int_equal(n.gpus, 0);
	assert_int_equal(slurm_parse_sinfo("sinfo: error: foo", &n), -1);
	assert_int_equal(slurm_parse_sinfo("nq1 p g u x 1/1/0/2 idle", &n), -1);
}

/* ---- the batch script, run by /bin/sh ---------------------------- */

static char tmpdir[256];

static void
read_file(const char *name, char *buf, size_t n)
{
	char path[512];
	FILE *f;
	size_t got;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	buf[0] = '\0';
	f = fopen(path, "r");
	if (f == NULL)
		return;
	got = fread(buf, 1, n - 1, f);
	buf[got] = '\0';
	fclose(f);
}

/* the script with worker = sh -c CODE; returns the script's exit status;
 * sig > 0: sent to the script after delay_ms (as Slurm does) */
static int
run_script(const char *code, int sig, int delay_ms)
{
	char *wargv[] = {"/bin/sh", "-c", (char *) code, NULL};
	char script[8192], path[512];
	int status = 0;
	FILE *f;
	pid_t pid;

	assert_int_equal(slurm_script(wargv, tmpdir, script, sizeof(script)),
	                 0);
	snprintf(path, sizeof(path), "%s/" SLURM_SCRIPT, tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/" SLURM_STATUS, tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/" SLURM_PROGRESS, tmpdir);
	unlink(path);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		snprintf(path, sizeof(path), "%s/" SLURM_SCRIPT, tmpdir);
		execl("/bin/sh", "sh", path, (char *) NULL);
		_exit(127);
	}
	if (sig > 0) {
		/* once the worker has started (its first line), then delay_ms:
		 * however slow the machine, the signal reaches a running job */
		struct timespec ts = {0, 10000000L};
		char buf[64];
		for (int i = 0; i < 1000; i++) {
			read_file(SLURM_PROGRESS, buf, sizeof(buf));
			if (strncmp(buf, "started", 7) == 0)
				break;
			nanosleep(&ts, NULL);
		}
		ts.tv_sec = delay_ms / 1000;
		ts.tv_nsec = (long) (delay_ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		kill(pid, sig);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_script(void **state)
{
	char buf[256];

	(void) state;
	/* progress to the progress file, the status renamed in */
	assert_int_equal(run_script("echo progress 0.5 gsn; echo heartbeat; "
	                            "exit 0",
	                            0, 0),
	                 0);
	read_file(SLURM_PROGRESS, buf, sizeof(buf));
	assert_string_equal(buf, "progress 0.5 gsn\nheartbeat\n");
	read_file(SLURM_STATUS, buf, sizeof(buf));
	assert_string_equal(buf, "0\n");
	/* a failure's status, and a stale status.tmp never survives */
	assert_int_equal(run_script("exit 1", 0, 0), 1);
	read_file(SLURM_STATUS, buf, sizeof(buf));
	assert_string_equal(buf, "1\n");
	/* SIGTERM to the batch shell (scancel --signal=TERM, the time
	 * limit): passed on to the worker, whose exit is recorded */
	assert_int_equal(run_script("trap 'exit 3' TERM; echo started; "
	                            "while :; do sleep 0.05; done",
	                            SIGTERM, 50),
	                 3);
	read_file(SLURM_STATUS, buf, sizeof(buf));
	assert_string_equal(buf, "3\n");
	/* SIGUSR1 (--signal=B:USR1@60, the limit is near): the worker runs
	 * on; if it then fails the status says time_limit */
	assert_int_equal(
	        run_script("echo started; sleep 0.5; exit 3", SIGUSR1, 50), 3);
	read_file(SLURM_STATUS, buf, sizeof(buf));
	assert_string_equal(buf, "3 time_limit\n");
	assert_int_equal(
	        run_script("echo started; sleep 0.5; exit 0", SIGUSR1, 50), 0);
	read_file(SLURM_STATUS, buf, sizeof(buf));
	assert_string_equal(buf, "0\n");
	/* a worker killed by a signal: 128 + N */
	assert_int_equal(run_script("kill -9 $$", 0, 0), 137);
	read_file(SLURM_STATUS, buf, sizeof(buf));
	assert_string_equal(buf, "137\n");
	/* quoting: a dir or argument with a quote stays one word */
	char *wargv[] = {"/bin/echo", "it's", NULL};
	char script[4096];
	assert_int_equal(
	        slurm_script(wargv, "/a b/c'd", script, sizeof(script)), 0);
	assert_non_null(strstr(script, "cd '/a b/c'\\''d' || exit 1\n"));
	assert_non_null(strstr(script, "'/bin/echo' 'it'\\''s' >progress &"));
	assert_int_equal(slurm_script(wargv, "/x", script, 64), -1);
}

static int
setup(void **state)
{
	(void) state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/slurm_test.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void) state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sbatch_argv),
	        cmocka_unit_test(test_parse_sbatch),
	        cmocka_unit_test(test_parse_squeue),
	        cmocka_unit_test(test_phase),
	        cmocka_unit_test(test_decide),
	        cmocka_unit_test(test_gres),
	        cmocka_unit_test(test_parse_sinfo),
	        cmocka_unit_test(test_script),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
