/*
 * spool_test.c — the spool's integrity pieces (issue 10): the inputs'
 * SHA-256 manifest and its check, the `job` file, the highest job dir, and
 * a commit that never replaces an existing job dir; and every read of a job
 * dir refusing what its owner (under Slurm) could plant there: links,
 * hard links, fifos; writes and removal that never go through a link.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "liveness.h"
#include "nq_error.h"
#include "nq_npy.h"
#include "nq_value.h"
#include "spool.h"

static char sd[64];

static int
setup(void **state)
{
	(void) state;
	snprintf(sd, sizeof(sd), "/tmp/nq_spool_XXXXXX");
	if (mkdtemp(sd) == NULL)
		return -1;
	return spool_init(sd) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void) state;
	return spool_rm_rf(sd) == 0 ? 0 : -1;
}

static void
write_at(const char *path, long off, const char *bytes)
{
	FILE *f = fopen(path, "r+b");

	assert_non_null(f);
	assert_int_equal(fseek(f, off, off < 0 ? SEEK_END : SEEK_SET), 0);
	assert_int_equal(fwrite(bytes, 1, strlen(bytes), f), strlen(bytes));
	fclose(f);
}

/* stage a job with two inputs; tmp gets the staging dir */
static void
stage(char *tmp, size_t n)
{
	struct nq_map *params = nq_map_new(), *inputs = nq_map_new();
	struct nq_array a, b;
	int64_t shape[1] = {300};
	char msg[256];

	assert_int_equal(nq_map_set_int(params, "x", 1), 0);
	assert_int_equal(nq_array_init(&a, NQ_DT_F64, 1, shape), 0);
	assert_int_equal(nq_array_init(&b, NQ_DT_F64, 1, shape), 0);
	for (int i = 0; i < 300; i++)
		((double *) a.data)[i] = i, ((double *) b.data)[i] = -i;
	assert_int_equal(nq_map_set_array(inputs, "data", &a), 0);
	assert_int_equal(nq_map_set_array(inputs, "more", &b), 0);
	assert_int_equal(
	        spool_stage(sd, params, inputs, tmp, n, msg, sizeof(msg)), 0);
	nq_map_free(params);
	nq_map_free(inputs);
}

static void
test_manifest(void **state)
{
	char tmp[512], path[700], msg[512], *buf;
	FILE *f;
	long len;

	(void) state;
	stage(tmp, sizeof(tmp));
	assert_int_equal(spool_verify_inputs(tmp, msg, sizeof(msg)), 0);
	/* the format sha256sum -c reads: one line per input */
	snprintf(path, sizeof(path), "%s/%s", tmp, SPOOL_MANIFEST);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t) len + 1);
	assert_int_equal(fread(buf, 1, (size_t) len, f), (size_t) len);
	fclose(f);
	assert_int_equal(len, 2 * (64 + 2 + strlen("in/data.npy") + 1));
	assert_non_null(strstr(buf, "  in/data.npy\n"));
	assert_non_null(strstr(buf, "  in/more.npy\n"));
	free(buf);

	/* one byte of data changed: EIO naming that input */
	snprintf(path, sizeof(path), "%s/in/more.npy", tmp);
	write_at(path, -9, "x");
	msg[0] = '\0';
	assert_int_equal(spool_verify_inputs(tmp, msg, sizeof(msg)), NQ_EIO);
	assert_non_null(strstr(msg, "in/more.npy"));
	assert_non_null(strstr(msg, "damaged"));
	assert_int_equal(spool_rm_rf(tmp), 0);

	/* a file in in/ the manifest does not name */
	stage(tmp, sizeof(tmp));
	snprintf(path, sizeof(path), "%s/in/extra.npy", tmp);
	f = fopen(path, "wb");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(spool_verify_inputs(tmp, msg, sizeof(msg)), NQ_EIO);
	assert_non_null(strstr(msg, "3 files but 2"));
	unlink(path);
	assert_int_equal(spool_verify_inputs(tmp, msg, sizeof(msg)), 0);

	/* an input gone */
	snprintf(path, sizeof(path), "%s/in/data.npy", tmp);
	unlink(path);
	assert_int_equal(spool_verify_inputs(tmp, msg, sizeof(msg)), NQ_EIO);
	assert_non_null(strstr(msg, "in/data.npy"));
	assert_int_equal(spool_rm_rf(tmp), 0);

	/* the manifest itself damaged */
	stage(tmp, sizeof(tmp));
	snprintf(path, sizeof(path), "%s/%s", tmp, SPOOL_MANIFEST);
	write_at(path, 10, "Z");
	assert_int_equal(spool_verify_inputs(tmp, msg, sizeof(msg)), NQ_EIO);
	assert_non_null(strstr(msg, SPOOL_MANIFEST));
	/* no manifest at all: a job staged before manifests existed */
	unlink(path);
	assert_int_equal(spool_verify_inputs(tmp, msg, sizeof(msg)), 0);
	assert_int_equal(spool_rm_rf(tmp), 0);
}

static void
test_meta(void **state)
{
	struct spool_meta m = {.owner = 4000000000u,
	                       .priority = -3,
	                       .host_bytes = 123456789012ull,
	                       .device_bytes = 7,
	                       .flops = 2.5e11},
	                  r;
	char tmp[512], path[700];
	FILE *f;

	(void) state;
	stage(tmp, sizeof(tmp));
	assert_int_equal(spool_read_meta(tmp, &r), NQ_EIO); /* none yet */
	snprintf(m.type, sizeof(m.type), "spikesort");
	snprintf(m.device_req, sizeof(m.device_req), "cuda:1");
	assert_int_equal(spool_write_meta(tmp, &m), 0);
	assert_int_equal(spool_read_meta(tmp, &r), 0);
	assert_int_equal(r.owner, 4000000000u);
	assert_string_equal(r.type, "spikesort");
	assert_int_equal(r.priority, -3);
	assert_string_equal(r.device_req, "cuda:1");
	assert_int_equal(r.host_bytes, 123456789012ull);
	assert_int_equal(r.device_bytes, 7);
	assert_true(r.flops == 2.5e11);
	assert_string_equal(r.idem, ""); /* none given, none written */
	/* the idempotency key is the client's bytes: hex in the file */
	snprintf(m.idem, sizeof(m.idem), "a b\nidem 00\xff");
	assert_int_equal(spool_write_meta(tmp, &m), 0);
	assert_int_equal(spool_read_meta(tmp, &r), 0);
	assert_string_equal(r.idem, "a b\nidem 00\xff");
	assert_string_equal(r.type, "spikesort");
	memset(m.idem, 'k', sizeof(m.idem) - 1); /* the longest key */
	m.idem[sizeof(m.idem) - 1] = '\0';
	assert_int_equal(spool_write_meta(tmp, &m), 0);
	assert_int_equal(spool_read_meta(tmp, &r), 0);
	assert_string_equal(r.idem, m.idem);

	snprintf(path, sizeof(path), "%s/job", tmp);
	static const char *const bad[] = {
	        "type gsn\n",                    /* no owner */
	        "owner 1000\n",                  /* no type */
	        "owner 99999999999\ntype gsn\n", /* not a uid */
	        "owner 1000\ntype ../x\n",       /* not a word */
	        "owner 1000x\ntype gsn\n",
	        "owner 1000\ntype gsn\nidem 6\n",    /* odd hex */
	        "owner 1000\ntype gsn\nidem 6g\n",   /* not hex */
	        "owner 1000\ntype gsn\nidem 0061\n", /* a NUL byte */
	        "garbage",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = fopen(path, "wb");
		assert_non_null(f);
		fputs(bad[i], f);
		fclose(f);
		assert_int_equal(spool_read_meta(tmp, &r), NQ_EIO);
	}
	assert_int_equal(spool_dir_is_job(tmp, 1000, "gsn"), 0); /* bad */
	f = fopen(path, "wb");
	fputs("owner 1000\ntype gsn\nfuture_key 1\n", f);
	fclose(f);
	assert_int_equal(spool_read_meta(tmp, &r), 0);
	assert_string_equal(r.device_req, "auto");
	/* retention's identity check */
	assert_int_equal(spool_dir_is_job(tmp, 1000, "gsn"), 1);
	assert_int_equal(spool_dir_is_job(tmp, 1001, "gsn"), 0);
	assert_int_equal(spool_dir_is_job(tmp, 1000, "spikesort"), 0);
	unlink(path);
	assert_int_equal(spool_dir_is_job(tmp, 1001, "gsn"), 1); /* older */
	assert_int_equal(spool_rm_rf(tmp), 0);
}

/* a commit onto an existing jobs/<id> fails and leaves that dir whole */
static void
test_commit_never_replaces(void **state)
{
	char tmp[512], dir[512], path[700], msg[512];
	struct stat st;

	(void) state;
	assert_int_equal(spool_max_job_id(sd), 0);
	stage(tmp, sizeof(tmp));
	assert_int_equal(spool_commit(tmp, sd, 151, msg, sizeof(msg)), 0);
	assert_int_equal(spool_max_job_id(sd), 151);
	assert_int_equal(spool_job_dir(sd, 151, dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/out", dir);
	assert_int_equal(mkdir(path, 0700), 0);

	stage(tmp, sizeof(tmp));
	msg[0] = '\0';
	assert_int_equal(spool_commit(tmp, sd, 151, msg, sizeof(msg)), NQ_EIO);
	assert_non_null(strstr(msg, "exists already"));
	assert_int_equal(stat(path, &st), 0); /* the old job's out/ */
	assert_int_equal(stat(tmp, &st), 0);  /* the staged dir untouched */
	assert_int_equal(spool_commit(tmp, sd, 152, msg, sizeof(msg)), 0);
	assert_int_equal(spool_max_job_id(sd), 152);
	/* a staging dir or a stray name is not an id */
	stage(tmp, sizeof(tmp));
	snprintf(path, sizeof(path), "%s/jobs/99999x", sd);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(spool_max_job_id(sd), 152);
}

/* A job dir whose out/ holds one real output (x = [1, 2, 3]) and a
 * "secret" job beside it with an output of 42s. */
static void
two_jobs(char *jd, char *other, size_t n)
{
	struct nq_array a;
	int64_t shape[1] = {3};
	char path[600];

	snprintf(jd, n, "%s/jobs/1", sd);
	snprintf(other, n, "%s/jobs/2", sd);
	for (int k = 0; k < 2; k++) {
		const char *d = k == 0 ? jd : other;
		assert_int_equal(mkdir(d, 0700), 0);
		snprintf(path, sizeof(path), "%s/out", d);
		assert_int_equal(mkdir(path, 0700), 0);
		assert_int_equal(nq_array_init(&a, NQ_DT_F64, 1, shape), 0);
		for (int i = 0; i < 3; i++)
			((double *) a.data)[i] = k == 0 ? i + 1 : 42;
		snprintf(path, sizeof(path), "%s/out/%s.npy", d,
		         k == 0 ? "x" : "secret");
		assert_int_equal(nq_npy_write(path, &a), 0);
		nq_array_fini(&a);
		snprintf(path, sizeof(path), "%s/error", d);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(k == 0 ? "8 EBADDATA\nmine\n" : "8 EBADDATA\nSECRET\n",
		      f);
		fclose(f);
		snprintf(path, sizeof(path), "%s/log", d);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(k == 0 ? "my log\n" : "SECRET log\n", f);
		fclose(f);
	}
}

static int
read_all_outputs(const char *jd, char *msg, size_t n)
{
	struct nq_map *m = nq_map_new();
	int rc;

	assert_non_null(m);
	rc = spool_read_outputs(jd, NULL, m, msg, n);
	/* whatever came back must not be the other job's */
	assert_null(nq_map_get(m, "secret"));
	nq_map_free(m);
	return rc;
}

/* The owner of a job dir links its out/ files (or out/ itself, or error,
 * log, result.mp) to another job's: the daemon reads none of them. */
static void
test_reads_never_follow_links(void **state)
{
	char jd[512], other[512], path[700], target[700], msg[256];
	struct nq_map *m;
	int code = 0;
	char *log = NULL;

	(void) state;
	two_jobs(jd, other, sizeof(jd));

	/* as written: readable */
	assert_int_equal(read_all_outputs(jd, msg, sizeof(msg)), 0);
	assert_int_equal(spool_read_error(jd, &code, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "mine");
	assert_int_equal(spool_read_log(jd, 1024, &log), 0);
	assert_string_equal(log, "my log\n");
	free(log);

	/* a link to the other job's array, under a name of our own */
	snprintf(path, sizeof(path), "%s/out/secret.npy", jd);
	snprintf(target, sizeof(target), "%s/out/secret.npy", other);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(read_all_outputs(jd, msg, sizeof(msg)), NQ_EIO);
	assert_non_null(strstr(msg, "not a plain file"));
	struct nq_value names = {.kind = NQ_LIST};
	struct nq_value item = {.kind = NQ_STR};
	item.u.str.s = "secret";
	item.u.str.len = 6;
	names.u.list.items = &item;
	names.u.list.n = 1;
	m = nq_map_new();
	assert_int_equal(spool_read_outputs(jd, &names, m, msg, sizeof(msg)),
	                 NQ_EIO);
	assert_null(nq_map_get(m, "secret"));
	nq_map_free(m);
	assert_int_equal(unlink(path), 0);

	/* a hard link (where the kernel lets the owner make one) */
	assert_int_equal(link(target, path), 0);
	assert_int_equal(read_all_outputs(jd, msg, sizeof(msg)), NQ_EIO);
	assert_int_equal(unlink(path), 0);

	/* a fifo: refused, and the daemon is not left waiting on it */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(read_all_outputs(jd, msg, sizeof(msg)), NQ_EIO);
	assert_int_equal(unlink(path), 0);

	/* result.mp linked to another's */
	snprintf(path, sizeof(path), "%s/out/result.mp", jd);
	snprintf(target, sizeof(target), "%s/out/secret.npy", other);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(read_all_outputs(jd, msg, sizeof(msg)), NQ_EIO);
	assert_int_equal(unlink(path), 0);

	/* out/ itself a link to the other's out/ */
	snprintf(path, sizeof(path), "%s/out", jd);
	snprintf(target, sizeof(target), "%s/out.mine", jd);
	assert_int_equal(rename(path, target), 0);
	snprintf(target, sizeof(target), "%s/out", other);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(read_all_outputs(jd, msg, sizeof(msg)), NQ_EIO);

	/* error and log linked to the other's */
	snprintf(path, sizeof(path), "%s/error", jd);
	snprintf(target, sizeof(target), "%s/error", other);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	msg[0] = '\0';
	assert_int_equal(spool_read_error(jd, &code, msg, sizeof(msg)), NQ_EIO);
	assert_null(strstr(msg, "SECRET"));
	snprintf(path, sizeof(path), "%s/log", jd);
	snprintf(target, sizeof(target), "%s/log", other);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(spool_read_log(jd, 1024, &log), 0);
	assert_string_equal(log, "");
	free(log);

	/* the time limit file: a fifo does not hang the read */
	snprintf(path, sizeof(path), "%s/time_limit", jd);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(liveness_read(jd), 0);

	/* no way out of the dir by name either */
	assert_int_equal(spool_open_in(jd, "../2/error", 0), -1);
	assert_int_equal(errno, EINVAL);
}

/* The daemon's writes into a job dir (error) never go through a link the
 * owner put at the temp name, and rm -rf never leaves the dir. */
static void
test_writes_and_removal_stay_inside(void **state)
{
	char jd[512], other[512], path[700], target[700], buf[64] = "";
	FILE *f;

	(void) state;
	two_jobs(jd, other, sizeof(jd));
	snprintf(path, sizeof(path), "%s/error.tmp", jd);
	snprintf(target, sizeof(target), "%s/error", other);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(spool_write_error(jd, NQ_ECANCELED, "canceled"), 0);
	f = fopen(target, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "8 EBADDATA\n");
	int code = 0;
	char msg[128];
	assert_int_equal(spool_read_error(jd, &code, msg, sizeof(msg)), 0);
	assert_int_equal(code, NQ_ECANCELED);

	/* rm -rf of a job dir holding links to the other job and its dir */
	snprintf(path, sizeof(path), "%s/out/away", jd);
	snprintf(target, sizeof(target), "%s/out", other);
	assert_int_equal(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/up", jd);
	assert_int_equal(symlink(other, path), 0);
	assert_int_equal(spool_rm_rf(jd), 0);
	assert_int_equal(access(jd, F_OK), -1);
	snprintf(path, sizeof(path), "%s/out/secret.npy", other);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/error", other);
	assert_int_equal(access(path, F_OK), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_manifest, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_commit_never_replaces,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reads_never_follow_links,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_writes_and_removal_stay_inside, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
