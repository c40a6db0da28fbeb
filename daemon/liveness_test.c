/* liveness_test.c — the time limit a job gets, the fine / hung / over the
 * limit decision from timestamps, and the time_limit file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "liveness.h"
#include "nq_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_default(void **state)
{
	(void) state;
	/* small and unknown work: the 10-minute floor */
	assert_int_equal(liveness_default_s(0), 600);
	assert_int_equal(liveness_default_s(-1), 600);
	assert_int_equal(liveness_default_s(1e9), 600);
	assert_int_equal(liveness_default_s(3e10), 600); /* 20 × 30 s */
	/* above it: 20 × flops / 1e9, rounded up */
	assert_int_equal(liveness_default_s(2e11), 4000);
	assert_int_equal(liveness_default_s(1e12 + 1), 20001);
	/* never past what a submit may ask for */
	assert_int_equal(liveness_default_s(1e30), LIVENESS_LIMIT_MAX);
}

static void
test_limit(void **state)
{
	(void) state;
	/* asked for: taken as is, under the max */
	assert_int_equal(liveness_limit_s(2, 2e11, 0), 2);
	assert_int_equal(liveness_limit_s(2, 2e11, 3600), 2);
	/* not asked: the default, clamped to the max */
	assert_int_equal(liveness_limit_s(0, 2e11, 0), 4000);
	assert_int_equal(liveness_limit_s(0, 2e11, 3600), 3600);
	assert_int_equal(liveness_limit_s(0, 0, 60), 60);
	/* asked above the max: clamped */
	assert_int_equal(liveness_limit_s(7200, 0, 3600), 3600);
}

static void
test_check(void **state)
{
	const uint64_t t0 = 1000000; /* uv_now() of the start */

	(void) state;
	/* just started, nothing printed yet: fine until the timeout */
	assert_int_equal(liveness_check(t0, t0, 0, 60000, 600), LIVENESS_OK);
	assert_int_equal(liveness_check(t0 + 60000, t0, 0, 60000, 600),
	                 LIVENESS_OK);
	assert_int_equal(liveness_check(t0 + 60001, t0, 0, 60000, 600),
	                 LIVENESS_HUNG);
	/* beating: fine however long it runs under the limit */
	assert_int_equal(
	        liveness_check(t0 + 599000, t0, t0 + 598000, 60000, 600),
	        LIVENESS_OK);
	/* last beat 61 s ago */
	assert_int_equal(
	        liveness_check(t0 + 300000, t0, t0 + 239000, 60000, 600),
	        LIVENESS_HUNG);
	/* past the limit: over it, beating or not (over wins) */
	assert_int_equal(
	        liveness_check(t0 + 600001, t0, t0 + 600000, 60000, 600),
	        LIVENESS_OVER_LIMIT);
	assert_int_equal(liveness_check(t0 + 900000, t0, t0, 60000, 600),
	                 LIVENESS_OVER_LIMIT);
	assert_int_equal(
	        liveness_check(t0 + 600000, t0, t0 + 599000, 60000, 600),
	        LIVENESS_OK);
	/* no limit, no heartbeat timeout */
	assert_int_equal(liveness_check(t0 + 1000000000, t0, t0, 0, 0),
	                 LIVENESS_OK);
	assert_int_equal(liveness_check(t0 + 1000000000, t0, t0, 60000, 0),
	                 LIVENESS_HUNG);
	/* a clock that did not move on (uv_now of the same tick) */
	assert_int_equal(liveness_check(t0, t0 + 5, t0 + 5, 1, 1), LIVENESS_OK);
}

static void
test_file(void **state)
{
	char dir[] = "/tmp/liveness_test.XXXXXX", path[256];
	FILE *f;

	(void) state;
	assert_non_null(mkdtemp(dir));
	/* none yet: 0 */
	assert_int_equal(liveness_read(dir), 0);
	assert_int_equal(liveness_write(dir, 3600), 0);
	assert_int_equal(liveness_read(dir), 3600);
	/* damaged: 0, never a wrong limit */
	snprintf(path, sizeof(path), "%s/time_limit", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("12x\n", f);
	fclose(f);
	assert_int_equal(liveness_read(dir), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("-5\n", f);
	fclose(f);
	assert_int_equal(liveness_read(dir), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	/* a dir that is not there */
	assert_int_equal(liveness_write("/nonexistent/neuroq", 1), NQ_EIO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_default),
	        cmocka_unit_test(test_limit),
	        cmocka_unit_test(test_check),
	        cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
