/*
 * spool_test.c — the spool's integrity pieces (issue 10): the inputs'
 * SHA-256 manifest and its check, the `job` file, the highest job dir, and
 * a commit that never replaces an existing job dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nq_error.h"
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_manifest, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_commit_never_replaces,
	                                        setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
