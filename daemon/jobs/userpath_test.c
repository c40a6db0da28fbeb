/* userpath_test.c — user paths into a denied directory are refused: "..",
 * symlinks, loops, bind mounts (as root), missing output dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "userpath.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256], state[300], user[300];
static struct userpath_id deny[2];
static size_t ndeny;

static void
p(char *buf, const char *fmt, const char *a)
{
	snprintf(buf, PATH_MAX, fmt, tmp, a);
}

static int
setup(void **st)
{
	char f[PATH_MAX];
	const char *dirs[2];

	(void) st;
	snprintf(tmp, sizeof(tmp), "/tmp/userpath_test.XXXXXX");
	if (mkdtemp(tmp) == NULL)
		return -1;
	snprintf(state, sizeof(state), "%s/state", tmp);
	snprintf(user, sizeof(user), "%s/user", tmp);
	if (mkdir(state, 0700) || mkdir(user, 0755))
		return -1;
	p(f, "%s/state/%s", "jobs");
	mkdir(f, 0700);
	p(f, "%s/state/%s", "db.sqlite");
	close(open(f, O_CREAT | O_WRONLY, 0600));
	p(f, "%s/user/%s", "rec.bin");
	close(open(f, O_CREAT | O_WRONLY, 0644));
	dirs[0] = state;
	dirs[1] = "/nonexistent-neuroq-socket-dir";
	ndeny = userpath_deny_init(dirs, 2, deny);
	return ndeny == 1 ? 0 : -1;
}

static int
teardown(void **st)
{
	char cmd[300];

	(void) st;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static int
check(const char *path, int want, char *res, char *msg)
{
	return userpath_check(want ? "output_dir" : "recording", path, deny,
	                      ndeny, want, res, PATH_MAX, msg, 512);
}

static void
test_plain_allowed(void **st)
{
	char path[PATH_MAX], res[PATH_MAX], msg[512] = "", exp[PATH_MAX];
	int fd;

	(void) st;
	p(path, "%s/user/%s", "rec.bin");
	assert_int_equal(check(path, USERPATH_READ, res, msg), 0);
	assert_non_null(realpath(path, exp));
	assert_string_equal(res, exp);
	assert_int_equal(userpath_open("recording", res, deny, ndeny,
	                               USERPATH_READ, 0, &fd, msg, sizeof(msg)),
	                 0);
	close(fd);
	/* a relative path with a harmless ".." */
	p(path, "%s/user/../user/%s", "rec.bin");
	assert_int_equal(check(path, USERPATH_READ, res, msg), 0);
	assert_string_equal(res, exp);
	/* missing file */
	p(path, "%s/user/%s", "nope.bin");
	assert_int_equal(check(path, USERPATH_READ, res, msg), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "recording '"));
	assert_non_null(strstr(msg, "nope.bin"));
	/* a directory is not a recording */
	p(path, "%s/%s", "user");
	assert_int_equal(check(path, USERPATH_READ, res, msg), NQ_EBADPARAM);
	/* an existing output_dir */
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg), 0);
}

static void
test_dotdot_into_deny(void **st)
{
	char path[PATH_MAX], res[PATH_MAX], msg[512] = "";

	(void) st;
	p(path, "%s/user/../state/%s", "db.sqlite");
	assert_int_equal(check(path, USERPATH_READ, res, msg), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "not allowed"));
	assert_non_null(strstr(msg, path)); /* the user's own path */
	p(path, "%s/user/../state/%s", "jobs");
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "output_dir '"));
	p(path, "%s/user/../%s", "state");
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg),
	                 NQ_EBADPARAM);
}

static void
test_symlink_into_deny(void **st)
{
	char path[PATH_MAX], target[PATH_MAX], res[PATH_MAX], msg[512] = "";

	(void) st;
	p(target, "%s/%s", "state");
	p(path, "%s/user/%s", "link");
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "not allowed"));
	p(path, "%s/user/link/%s", "db.sqlite");
	assert_int_equal(check(path, USERPATH_READ, res, msg), NQ_EBADPARAM);
	/* a missing output_dir below the link */
	p(path, "%s/user/link/jobs/%s", "new/deeper");
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "not allowed"));
	/* a file symlink */
	p(target, "%s/state/%s", "db.sqlite");
	p(path, "%s/user/%s", "db-link");
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(check(path, USERPATH_READ, res, msg), NQ_EBADPARAM);
}

static void
test_symlink_loop(void **st)
{
	char a[PATH_MAX], b[PATH_MAX], res[PATH_MAX], msg[512] = "";

	(void) st;
	p(a, "%s/user/%s", "loop-a");
	p(b, "%s/user/%s", "loop-b");
	assert_int_equal(symlink(a, b), 0);
	assert_int_equal(symlink(b, a), 0);
	assert_int_equal(check(a, USERPATH_READ, res, msg), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "recording '"));
	p(a, "%s/user/loop-a/%s", "out");
	assert_int_equal(check(a, USERPATH_WRITE_DIR, res, msg), NQ_EBADPARAM);
}

static void
test_bind_mount(void **st)
{
	char mnt[PATH_MAX], path[PATH_MAX], res[PATH_MAX], msg[512] = "";

	(void) st;
	p(mnt, "%s/user/%s", "mnt");
	assert_int_equal(mkdir(mnt, 0755), 0);
	if (geteuid() != 0 || mount(state, mnt, NULL, MS_BIND, NULL) != 0) {
		rmdir(mnt);
		skip();
	}
	p(path, "%s/user/mnt/%s", "jobs");
	int rc = check(path, USERPATH_WRITE_DIR, res, msg);
	int rc2 = check(mnt, USERPATH_WRITE_DIR, res, msg);
	p(path, "%s/user/mnt/%s", "db.sqlite");
	int rc3 = check(path, USERPATH_READ, res, msg);
	umount(mnt);
	rmdir(mnt);
	assert_int_equal(rc, NQ_EBADPARAM);
	assert_int_equal(rc2, NQ_EBADPARAM);
	assert_int_equal(rc3, NQ_EBADPARAM);
	assert_non_null(strstr(msg, "not allowed"));
}

static void
test_missing_output_dir(void **st)
{
	char path[PATH_MAX], res[PATH_MAX], exp[PATH_MAX], msg[512] = "";
	struct stat sb;
	int fd;

	(void) st;
	p(path, "%s/user/%s", "new/a/b/");
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg), 0);
	assert_non_null(realpath(tmp, exp));
	assert_true(strlen(exp) + 20 < sizeof(exp));
	memcpy(exp + strlen(exp), "/user/new/a/b", sizeof("/user/new/a/b"));
	assert_string_equal(res, exp);
	assert_int_equal(userpath_open("output_dir", res, deny, ndeny,
	                               USERPATH_WRITE_DIR, 0750, &fd, msg,
	                               sizeof(msg)),
	                 0);
	assert_int_equal(fstat(fd, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0750);
	/* a file can be made in it */
	int f = openat(fd, "x", O_CREAT | O_EXCL | O_WRONLY, 0600);
	assert_true(f >= 0);
	close(f);
	close(fd);
	p(path, "%s/user/%s", "new/a");
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	/* missing under a denied dir */
	p(path, "%s/state/jobs/%s", "new");
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "not allowed"));
	p(path, "%s/user/%s", "new2/../x");
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg),
	                 NQ_EBADPARAM);
	/* under a file */
	p(path, "%s/user/%s", "rec.bin/out");
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg),
	                 NQ_EBADPARAM);
}

static void
test_open_refuses_changed_path(void **st)
{
	char path[PATH_MAX], res[PATH_MAX], target[PATH_MAX], msg[512] = "";
	int fd;

	(void) st;
	p(path, "%s/user/%s", "swap");
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(check(path, USERPATH_WRITE_DIR, res, msg), 0);
	/* swapped for a symlink into the state dir after the check */
	assert_int_equal(rmdir(path), 0);
	p(target, "%s/%s", "state");
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(userpath_open("output_dir", res, deny, ndeny,
	                               USERPATH_WRITE_DIR, 0755, &fd, msg,
	                               sizeof(msg)),
	                 NQ_EBADPARAM);
	/* and nothing was made in the state dir */
	p(path, "%s/state/%s", "swap");
	assert_int_equal(access(path, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plain_allowed),
	        cmocka_unit_test(test_dotdot_into_deny),
	        cmocka_unit_test(test_symlink_into_deny),
	        cmocka_unit_test(test_symlink_loop),
	        cmocka_unit_test(test_bind_mount),
	        cmocka_unit_test(test_missing_output_dir),
	        cmocka_unit_test(test_open_refuses_changed_path),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
