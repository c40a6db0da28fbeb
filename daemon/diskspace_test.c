/* diskspace_test.c — the free-space watermark, errno → code, the mount
 * point from mountinfo text, and the ENOSPC message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "diskspace.h"
#include "nq_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
test_code(void **state)
{
	(void) state;
	assert_int_equal(diskspace_code(ENOSPC), NQ_ENOSPACE);
	assert_int_equal(diskspace_code(EDQUOT), NQ_ENOSPACE);
	assert_int_equal(diskspace_code(EIO), NQ_EIO);
	assert_int_equal(diskspace_code(EACCES), NQ_EIO);
	assert_int_equal(diskspace_code(0), NQ_EIO);
}

static void
test_admit(void **state)
{
	struct diskspace ds = {.free_bytes = 10000, .total_bytes = 50000};
	char msg[512] = "";

	(void) state;
	snprintf(ds.mount, sizeof(ds.mount), "/var/lib/neuroq");
	/* fits with the watermark to spare, and exactly at it */
	assert_int_equal(diskspace_admit(&ds, 1000, 8000, msg, sizeof(msg)), 0);
	assert_int_equal(diskspace_admit(&ds, 2000, 8000, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	/* one byte over */
	assert_int_equal(diskspace_admit(&ds, 2001, 8000, msg, sizeof(msg)),
	                 NQ_ENOSPACE);
	assert_non_null(strstr(msg, "filesystem /var/lib/neuroq"));
	assert_non_null(strstr(msg, "10000 bytes free"));
	assert_non_null(strstr(msg, "min_free_bytes is 8000"));
	assert_non_null(strstr(msg, "needs about 2001 bytes"));
	/* already below the watermark: even an empty submit */
	ds.free_bytes = 7999;
	assert_int_equal(diskspace_admit(&ds, 0, 8000, msg, sizeof(msg)),
	                 NQ_ENOSPACE);
	/* no watermark: only what does not fit at all */
	assert_int_equal(diskspace_admit(&ds, 7999, 0, msg, sizeof(msg)), 0);
	assert_int_equal(diskspace_admit(&ds, 8000, 0, msg, sizeof(msg)),
	                 NQ_ENOSPACE);
	/* need larger than free: no unsigned wrap-around */
	ds.free_bytes = 10;
	assert_int_equal(diskspace_admit(&ds, UINT64_MAX, 0, msg, sizeof(msg)),
	                 NQ_ENOSPACE);
}

static const char mountinfo[] =
        "22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw\n"
        "40 22 0:40 / /var/lib rw shared:9 - xfs /dev/vdb rw\n"
        "41 40 0:41 / /var/lib/neuroq rw shared:10 - tmpfs tmpfs rw\n"
        "42 22 0:42 / /mnt/my\\040disk rw shared:11 - tmpfs tmpfs rw\n"
        "43 22 0:43 / /var/li rw shared:12 - tmpfs tmpfs rw\n"
        "bad line\n";

static void
mp(const char *path, const char *want, int rc_want)
{
	char out[256];
	FILE *f = fmemopen((void *) mountinfo, sizeof(mountinfo) - 1, "r");

	assert_non_null(f);
	assert_int_equal(diskspace_mount_point(f, path, out, sizeof(out)),
	                 rc_want);
	assert_string_equal(out, want);
	fclose(f);
}

static void
test_mount_point(void **state)
{
	(void) state;
	mp("/var/lib/neuroq/jobs/7/out.tmp", "/var/lib/neuroq", 0);
	mp("/var/lib/neuroq", "/var/lib/neuroq", 0);
	/* a name that only starts like a mount point is not under it */
	mp("/var/lib/neuroqx", "/var/lib", 0);
	mp("/var/lib", "/var/lib", 0);
	mp("/var/library", "/", 0);
	mp("/var/li/x", "/var/li", 0);
	mp("/home/me", "/", 0);
	mp("/mnt/my disk/state", "/mnt/my disk", 0);
	mp("relative/path", "?", NQ_EIO);
}

static void
test_stat_and_msg(void **state)
{
	struct diskspace ds;
	char msg[1024];

	(void) state;
	assert_int_equal(diskspace_stat("/", &ds), 0);
	assert_string_equal(ds.mount, "/");
	assert_true(ds.total_bytes > 0 && ds.free_bytes <= ds.total_bytes);
	/* a file not made yet: its existing parent's filesystem */
	assert_int_equal(diskspace_stat("/no-such-dir-nq/sub/file.npy", &ds),
	                 0);
	assert_string_equal(ds.mount, "/");
	assert_int_equal(diskspace_msg(msg, sizeof(msg), "cannot write",
	                               "/no-such-dir-nq/x.npy", ENOSPC),
	                 NQ_ENOSPACE);
	assert_non_null(strstr(msg, "cannot write /no-such-dir-nq/x.npy: "));
	assert_non_null(strstr(msg, strerror(ENOSPC)));
	assert_non_null(strstr(msg, "(ENOSPC: filesystem / has "));
	assert_non_null(strstr(msg, " bytes free)"));
	/* another error: no space note */
	assert_int_equal(
	        diskspace_msg(msg, sizeof(msg), "cannot write", "/x", EACCES),
	        NQ_EIO);
	assert_null(strstr(msg, "ENOSPC"));
	assert_non_null(strstr(msg, strerror(EACCES)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_code),
	        cmocka_unit_test(test_admit),
	        cmocka_unit_test(test_mount_point),
	        cmocka_unit_test(test_stat_and_msg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
