/* quota_test.c — the quota arithmetic and its messages, and the size of a
 * job's spool dir (symlinks not followed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "quota.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
test_unlimited(void **state)
{
	struct quota_limits l = {0, 0};
	struct quota_use u = {1000000, UINT64_MAX - 1};
	char msg[512] = "";

	(void) state;
	assert_int_equal(quota_check(&l, &u, UINT64_MAX, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
}

static void
test_queued(void **state)
{
	struct quota_limits l = {.max_queued = 1000};
	struct quota_use u = {.queued = 999};
	char msg[512];

	(void) state;
	assert_int_equal(quota_check(&l, &u, 0, msg, sizeof(msg)), 0);
	u.queued = 1000;
	assert_int_equal(quota_check(&l, &u, 0, msg, sizeof(msg)), NQ_EQUOTA);
	assert_non_null(
	        strstr(msg, "you have 1000 queued jobs; the limit is 1000"));
	assert_non_null(strstr(msg, "max_queued_jobs_per_user"));
	/* more than the limit (it was lowered): still says both */
	u.queued = 1500;
	assert_int_equal(quota_check(&l, &u, 0, msg, sizeof(msg)), NQ_EQUOTA);
	assert_non_null(
	        strstr(msg, "you have 1500 queued jobs; the limit is 1000"));
}

static void
test_bytes(void **state)
{
	struct quota_limits l = {.max_bytes = 1000};
	struct quota_use u = {.bytes = 900};
	char msg[512];

	(void) state;
	/* exactly at the limit fits */
	assert_int_equal(quota_check(&l, &u, 100, msg, sizeof(msg)), 0);
	assert_int_equal(quota_check(&l, &u, 101, msg, sizeof(msg)), NQ_EQUOTA);
	assert_non_null(strstr(msg, "your jobs hold 900 bytes"));
	assert_non_null(strstr(msg, "this submit adds 101"));
	assert_non_null(strstr(msg, "the limit is 1000 bytes"));
	assert_non_null(strstr(msg, "max_spool_bytes_per_user"));
	/* one submit bigger than the whole limit */
	u.bytes = 0;
	assert_int_equal(quota_check(&l, &u, 1001, msg, sizeof(msg)),
	                 NQ_EQUOTA);
	/* no wrap-around near the top of uint64 */
	l.max_bytes = UINT64_MAX - 10;
	u.bytes = UINT64_MAX - 20;
	assert_int_equal(quota_check(&l, &u, 10, msg, sizeof(msg)), 0);
	assert_int_equal(quota_check(&l, &u, 11, msg, sizeof(msg)), NQ_EQUOTA);
	assert_int_equal(quota_check(&l, &u, UINT64_MAX, msg, sizeof(msg)),
	                 NQ_EQUOTA);
	/* over already (limit lowered): even an empty submit is refused */
	l.max_bytes = 100;
	u.bytes = 200;
	assert_int_equal(quota_check(&l, &u, 0, msg, sizeof(msg)), NQ_EQUOTA);
	/* GiB figures are readable too */
	l.max_bytes = 100ull << 30;
	u.bytes = 99ull << 30;
	assert_int_equal(quota_check(&l, &u, 2ull << 30, msg, sizeof(msg)),
	                 NQ_EQUOTA);
	assert_non_null(strstr(msg, "(99.0 GiB)"));
	assert_non_null(strstr(msg, "(100.0 GiB, max_spool_bytes_per_user)"));
}

static void
test_both_limits(void **state)
{
	struct quota_limits l = {.max_queued = 2, .max_bytes = 1 << 20};
	struct quota_use u = {.queued = 1, .bytes = 1000};
	char msg[512];

	(void) state;
	assert_int_equal(quota_check(&l, &u, 1000, msg, sizeof(msg)), 0);
	u.queued = 2;
	assert_int_equal(quota_check(&l, &u, 1000, msg, sizeof(msg)),
	                 NQ_EQUOTA);
	assert_non_null(strstr(msg, "queued jobs"));
	u.queued = 0;
	assert_int_equal(quota_check(&l, &u, 1 << 20, msg, sizeof(msg)),
	                 NQ_EQUOTA);
	assert_non_null(strstr(msg, "spool"));
}

static void
test_fmt(void **state)
{
	char b[32];

	(void) state;
	quota_fmt_bytes(b, sizeof(b), 512);
	assert_string_equal(b, "512 bytes");
	quota_fmt_bytes(b, sizeof(b), 1536);
	assert_string_equal(b, "1.5 KiB");
	quota_fmt_bytes(b, sizeof(b), 12ull << 20);
	assert_string_equal(b, "12.0 MiB");
	quota_fmt_bytes(b, sizeof(b), 3ull << 39);
	assert_string_equal(b, "1536.0 GiB");
}

static void
write_n(const char *path, size_t n)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('x', f);
	fclose(f);
}

static void
test_dir_bytes(void **state)
{
	char dir[] = "/tmp/nq_quota_XXXXXX";
	char p[256], big[256];
	uint64_t b = 1;

	(void) state;
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/params.mp", dir);
	write_n(p, 10);
	snprintf(p, sizeof(p), "%s/in", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/in/data.npy", dir);
	write_n(p, 1000);
	snprintf(p, sizeof(p), "%s/out", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/out/phy", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/out/phy/spike_times.npy", dir);
	write_n(p, 300);
	/* a link to something big outside counts as nothing */
	snprintf(big, sizeof(big), "%s.big", dir);
	write_n(big, 50000);
	snprintf(p, sizeof(p), "%s/out/link", dir);
	assert_int_equal(symlink(big, p), 0);
	snprintf(p, sizeof(p), "%s/out/dirlink", dir);
	assert_int_equal(symlink("/usr", p), 0);

	assert_int_equal(quota_dir_bytes(dir, &b), 0);
	assert_true(b == 1310);
	/* the dir itself as a link is not followed */
	snprintf(p, sizeof(p), "%s.lnk", dir);
	assert_int_equal(symlink(dir, p), 0);
	assert_int_equal(quota_dir_bytes(p, &b), NQ_EIO);
	assert_true(b == 0);
	unlink(p);
	assert_int_equal(quota_dir_bytes("/nonexistent/nq", &b), NQ_EIO);

	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, big);
		assert_int_equal(system(cmd), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_unlimited),
	        cmocka_unit_test(test_queued),
	        cmocka_unit_test(test_bytes),
	        cmocka_unit_test(test_both_limits),
	        cmocka_unit_test(test_fmt),
	        cmocka_unit_test(test_dir_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
