/* npy_test.c — .npy write/read round trips and rejection of bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "nq_npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/npy_test.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void
write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void *
read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long sz;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t) sz + 1);
	assert_int_equal(fread(p, 1, (size_t) sz, f), (size_t) sz);
	fclose(f);
	*n = (size_t) sz;
	return p;
}

static void
test_roundtrip(void **state)
{
	static const int64_t shapes[][3] = {{3, 4, 5}, {7, 0, 2}, {1, 1, 1}};
	char path[300], err[256];

	for (int dt = 0; dt < NQ_DT_COUNT; dt++) {
		for (int nd = 0; nd <= 3; nd++) {
			for (int s = 0; s < 3; s++) {
				struct nq_array a, b;

				assert_int_equal(
				        nq_array_init(&a, (enum nq_dtype) dt,
				                      nd, shapes[s]),
				        0);
				for (size_t i = 0; i < a.nbytes; i++)
					((uint8_t *) a.data)[i] =
					        dt == NQ_DT_BOOL
					                ? (uint8_t) (i & 1)
					                : (uint8_t) (i * 7 + 3);
				path_of(path, sizeof(path), "rt.npy");
				assert_int_equal(nq_npy_write(path, &a), 0);
				assert_int_equal(nq_npy_read(path, &b, 0, err,
				                             sizeof(err)),
				                 0);
				assert_int_equal(b.dtype, a.dtype);
				assert_int_equal(b.ndim, a.ndim);
				for (int k = 0; k < nd; k++)
					assert_int_equal(b.shape[k],
					                 a.shape[k]);
				assert_int_equal(b.nbytes, a.nbytes);
				if (a.nbytes)
					assert_memory_equal(a.data, b.data,
					                    a.nbytes);
				nq_array_fini(&a);
				nq_array_fini(&b);
			}
		}
	}
}

/* The exact bytes numpy writes for np.arange(6.0).reshape(2, 3). */
static void
test_header_bytes(void **state)
{
	static const int64_t sh[] = {2, 3};
	static const char want[] =
	        "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': "
	        "False, 'shape': (2, 3), }";
	struct nq_array a;
	char path[300];
	size_t n;
	char *p;

	assert_int_equal(nq_array_init(&a, NQ_DT_F64, 2, sh), 0);
	for (int i = 0; i < 6; i++)
		((double *) a.data)[i] = i;
	path_of(path, sizeof(path), "h.npy");
	assert_int_equal(nq_npy_write(path, &a), 0);
	p = read_file(path, &n);
	assert_int_equal(n, 128 + 48);
	assert_memory_equal(p, want, sizeof(want) - 1);
	for (size_t i = sizeof(want) - 1; i < 127; i++)
		assert_int_equal(p[i], ' ');
	assert_int_equal(p[127], '\n');
	assert_memory_equal(p + 128, a.data, 48);
	free(p);

	/* 1-d uses Python's 1-tuple spelling */
	struct nq_array b;
	static const int64_t s1[] = {5};

	assert_int_equal(nq_array_init(&b, NQ_DT_I32, 1, s1), 0);
	assert_int_equal(nq_npy_write(path, &b), 0);
	p = read_file(path, &n);
	assert_non_null(strstr(p + 10, "'shape': (5,), }"));
	assert_non_null(strstr(p + 10, "'<i4'"));
	free(p);
	nq_array_fini(&a);
	nq_array_fini(&b);
}

/* Writes a .npy with the given header dict (version 1.0) and data size. */
static void
write_npy(const char *path, int major, const char *dict, size_t ndata)
{
	size_t pre = major == 1 ? 10 : 12;
	size_t dlen = strlen(dict);
	size_t total = (pre + dlen + 1 + 63) / 64 * 64;
	size_t hl = total - pre;
	char *buf = calloc(1, total + ndata + 1);

	memcpy(buf, "\x93NUMPY", 6);
	buf[6] = (char) major;
	buf[7] = 0;
	buf[8] = (char) (hl & 0xff);
	buf[9] = (char) (hl >> 8);
	memcpy(buf + pre, dict, dlen);
	memset(buf + pre + dlen, ' ', hl - dlen - 1);
	buf[total - 1] = '\n';
	write_file(path, buf, total + ndata);
	free(buf);
}

static void
test_read_versions(void **state)
{
	char path[300], err[256];
	struct nq_array a;

	path_of(path, sizeof(path), "v.npy");
	/* other key order, double quotes, trailing-comma-free, v2 and v3 */
	write_npy(path, 2,
	          "{\"shape\": (2,3), \"fortran_order\": False, "
	          "\"descr\": \"<i2\"}",
	          12);
	assert_int_equal(nq_npy_read(path, &a, 0, err, sizeof(err)), 0);
	assert_int_equal(a.dtype, NQ_DT_I16);
	assert_int_equal(a.ndim, 2);
	assert_int_equal(a.shape[1], 3);
	nq_array_fini(&a);
	write_npy(path, 3,
	          "{'descr': '|b1', 'fortran_order': False, 'shape': (), }", 1);
	assert_int_equal(nq_npy_read(path, &a, 0, err, sizeof(err)), 0);
	assert_int_equal(a.ndim, 0);
	assert_int_equal(a.nbytes, 1);
	nq_array_fini(&a);
}

static void
test_rejects(void **state)
{
	static const struct {
		const char *dict;
		size_t ndata;
		const char *why;
	} bad[] = {
	        {"{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }",
	         16, "big-endian"},
	        {"{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }", 16,
	         "fortran"},
	        {"{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }",
	         32, "dtype"},
	        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
	         15, "data bytes"},
	        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
	         17, "data bytes"},
	        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2), }", 16,
	         "header"},
	        {"{'descr': '<f8', 'fortran_order': False}", 16, "header"},
	        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }",
	         16, "header"},
	        {"{'descr': '<f8', 'shape': (2,), 'shape': (2,), "
	         "'fortran_order': False}",
	         16, "header"},
	        {"['descr', '<f8']", 16, "header"},
	        {"{'descr': '<f8', 'fortran_order': False, "
	         "'shape': (4294967296, 4294967296, 4294967296), }",
	         0, "overflow"},
	};
	char path[300], err[256];
	struct nq_array a;

	path_of(path, sizeof(path), "bad.npy");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_npy(path, 1, bad[i].dict, bad[i].ndata);
		int rc = nq_npy_read(path, &a, 0, err, sizeof(err));

		if (rc != NQ_EBADARRAY || strstr(err, bad[i].why) == NULL)
			fail_msg("case %zu: rc %d, err '%s' (want '%s')", i, rc,
			         err, bad[i].why);
		assert_null(a.data);
	}
	/* over max_bytes */
	write_npy(path, 1,
	          "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
	          32);
	assert_int_equal(nq_npy_read(path, &a, 31, err, sizeof(err)),
	                 NQ_EBADARRAY);
	assert_non_null(strstr(err, "limit"));
	assert_int_equal(nq_npy_read(path, &a, 32, err, sizeof(err)), 0);
	nq_array_fini(&a);
	/* bad magic, bad version, truncated preamble, missing file */
	write_file(path, "\x93NUMPZ\x01\x00\x00\x00", 10);
	assert_int_equal(nq_npy_read(path, &a, 0, err, sizeof(err)),
	                 NQ_EBADARRAY);
	write_file(path, "\x93NUMPY\x04\x00\x40\x00", 10);
	assert_int_equal(nq_npy_read(path, &a, 0, err, sizeof(err)),
	                 NQ_EBADARRAY);
	assert_non_null(strstr(err, "version"));
	write_file(path, "\x93NUM", 4);
	assert_int_equal(nq_npy_read(path, &a, 0, err, sizeof(err)),
	                 NQ_EBADARRAY);
	write_file(path, "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
	assert_int_equal(nq_npy_read(path, &a, 0, err, sizeof(err)),
	                 NQ_EBADARRAY);
	path_of(path, sizeof(path), "does-not-exist.npy");
	assert_int_equal(nq_npy_read(path, &a, 0, err, sizeof(err)), NQ_EIO);
}

static void
test_atomic_write(void **state)
{
	static const int64_t sh[] = {3};
	struct nq_array a;
	char path[300], cmd[400];
	struct stat st;

	assert_int_equal(nq_array_init(&a, NQ_DT_U8, 1, sh), 0);
	path_of(path, sizeof(path), "at.npy");
	assert_int_equal(nq_npy_write(path, &a), 0);
	assert_int_equal(stat(path, &st), 0);
	/* no temp file is left behind */
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q tmp", tmpdir);
	assert_int_not_equal(system(cmd), 0);
	/* unwritable target dir: NQ_EIO, nothing created */
	assert_int_equal(nq_npy_write("/nonexistent-dir/x.npy", &a), NQ_EIO);
	nq_array_fini(&a);
}

/* The streamed writer: pieces of any size give the same file as one write;
 * a short or long stream leaves no file and no temp file behind. */
static void
test_stream(void **state)
{
	char p1[300], p2[300], cmd[400];
	int64_t shape[3] = {5, 3, 4};
	float v[60];
	struct nq_array a = {0}, b = {0};
	struct nq_npy_stream s;
	FILE *f;
	char buf1[512], buf2[512];
	size_t n1, n2;

	(void) state;
	for (int i = 0; i < 60; i++)
		v[i] = (float) i * 0.5f - 3;
	path_of(p1, sizeof(p1), "whole.npy");
	path_of(p2, sizeof(p2), "stream.npy");
	a.dtype = NQ_DT_F32;
	a.ndim = 3;
	memcpy(a.shape, shape, sizeof(shape));
	a.data = v;
	a.nbytes = sizeof(v);
	assert_int_equal(nq_npy_write(p1, &a), 0);
	assert_int_equal(nq_npy_stream_open(&s, p2, NQ_DT_F32, 3, shape), 0);
	assert_int_equal(nq_npy_stream_put(&s, v, 7 * 4), 0);
	assert_int_equal(nq_npy_stream_put(&s, v + 7, 0), 0);
	assert_int_equal(nq_npy_stream_put(&s, v + 7, 53 * 4), 0);
	assert_int_equal(access(p2, F_OK), -1); /* not there before commit */
	assert_int_equal(nq_npy_stream_commit(&s), 0);
	f = fopen(p1, "rb");
	n1 = fread(buf1, 1, sizeof(buf1), f);
	fclose(f);
	f = fopen(p2, "rb");
	n2 = fread(buf2, 1, sizeof(buf2), f);
	fclose(f);
	assert_int_equal(n1, n2);
	assert_memory_equal(buf1, buf2, n1);
	assert_int_equal(nq_npy_read(p2, &b, 0, NULL, 0), 0);
	assert_int_equal(b.ndim, 3);
	assert_int_equal(b.shape[2], 4);
	assert_memory_equal(b.data, v, sizeof(v));
	nq_array_fini(&b);

	/* too many bytes: refused, aborted */
	path_of(p2, sizeof(p2), "long.npy");
	assert_int_equal(nq_npy_stream_open(&s, p2, NQ_DT_F32, 3, shape), 0);
	assert_int_equal(nq_npy_stream_put(&s, v, 60 * 4), 0);
	assert_int_equal(nq_npy_stream_put(&s, v, 4), NQ_EIO);
	assert_int_equal(nq_npy_stream_commit(&s), NQ_EIO);
	assert_int_equal(access(p2, F_OK), -1);
	/* too few: commit refuses */
	path_of(p2, sizeof(p2), "short.npy");
	assert_int_equal(nq_npy_stream_open(&s, p2, NQ_DT_F32, 3, shape), 0);
	assert_int_equal(nq_npy_stream_put(&s, v, 59 * 4), 0);
	assert_int_equal(nq_npy_stream_commit(&s), NQ_EIO);
	assert_int_equal(access(p2, F_OK), -1);
	/* aborted: nothing left, not even the temp file */
	path_of(p2, sizeof(p2), "abort.npy");
	assert_int_equal(nq_npy_stream_open(&s, p2, NQ_DT_F32, 3, shape), 0);
	nq_npy_stream_abort(&s);
	nq_npy_stream_abort(&s); /* twice is harmless */
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c tmp", tmpdir);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fread(buf1, 1, sizeof(buf1), f), 2); /* "0\n" */
	assert_int_equal(buf1[0], '0');
	pclose(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_roundtrip),
	        cmocka_unit_test(test_header_bytes),
	        cmocka_unit_test(test_read_versions),
	        cmocka_unit_test(test_rejects),
	        cmocka_unit_test(test_atomic_write),
	        cmocka_unit_test(test_stream),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
