/* runas_test.c — as root, a forked child drops to a test user (useradd, or
 * nobody) and keeps no privilege; skipped (77) when not root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "runas.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NQ_TSAN 1
#endif
#endif

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_USER   "nq-runas-test"
#define SERVICE_GID 4242 /* a group the user is not in */

static uid_t user_uid;
static gid_t user_gid;
static int made_user;

static int
setup(void **st)
{
	struct passwd *pw;

	(void) st;
	if (getpwnam(TEST_USER) == NULL &&
	    system("useradd -M -N -s /usr/sbin/nologin " TEST_USER
	           " >/dev/null 2>&1") == 0)
		made_user = 1;
	pw = getpwnam(TEST_USER);
	if (pw == NULL)
		pw = getpwnam("nobody");
	if (pw == NULL)
		return -1;
	user_uid = pw->pw_uid;
	user_gid = pw->pw_gid;
	return 0;
}

static int
teardown(void **st)
{
	(void) st;
	if (made_user && system("userdel " TEST_USER " >/dev/null 2>&1") != 0)
		return -1;
	return 0;
}

/* In a child: 0 when every check held, else the number of the failed one. */
static int
child_drop(void)
{
	char msg[256] = "";
	uid_t r, e, s;
	gid_t rg, eg, sg, gl[256];
	int n, have_service = 0;

	if (runas_owner(user_uid, SERVICE_GID, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "runas_owner: %s\n", msg);
		return 1;
	}
	if (getresuid(&r, &e, &s) != 0 || r != user_uid || e != user_uid ||
	    s != user_uid)
		return 2;
	if (getresgid(&rg, &eg, &sg) != 0 || rg != user_gid || eg != user_gid ||
	    sg != user_gid)
		return 3;
	n = getgroups(256, gl);
	if (n < 0)
		return 4;
	for (int i = 0; i < n; i++) {
		if (gl[i] == 0)
			return 5; /* root's group left behind */
		have_service |= gl[i] == SERVICE_GID;
	}
	if (!have_service)
		return 6;
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return 7;
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
		return 8;
	/* a second call as the same user is a no-op */
	if (runas_owner(user_uid, SERVICE_GID, msg, sizeof(msg)) != 0)
		return 9;
	/* and another user is out of reach now */
	if (runas_owner(0, SERVICE_GID, msg, sizeof(msg)) != NQ_EPERM ||
	    strstr(msg, "cannot run jobs as uid 0") == NULL)
		return 10;
	return 0;
}

static int
run_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_drop(void **st)
{
	(void) st;
	assert_int_equal(run_child(child_drop), 0);
}

static int
child_unknown(void)
{
	char msg[256] = "";

	if (runas_owner((uid_t) 3999999, SERVICE_GID, msg, sizeof(msg)) !=
	    NQ_EPERM)
		return 1;
	if (strstr(msg, "uid 3999999 has no passwd entry") == NULL)
		return 2;
	if (getuid() != 0)
		return 3; /* nothing was dropped */
	return 0;
}

static void
test_unknown_uid(void **st)
{
	(void) st;
	assert_int_equal(run_child(child_unknown), 0);
}

static void
test_same_uid_noop(void **st)
{
	char msg[64] = "";

	(void) st;
	assert_int_equal(runas_owner(geteuid(), SERVICE_GID, msg, sizeof(msg)),
	                 0);
	assert_int_equal(getuid(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_drop),
	        cmocka_unit_test(test_unknown_uid),
	        cmocka_unit_test(test_same_uid_noop),
	};
#if defined(__SANITIZE_THREAD__) || defined(NQ_TSAN)
	/* ThreadSanitizer's runtime keeps a thread of its own, and runas
	 * refuses, by design, to drop in a process with more than one (the
	 * capabilities are per thread) */
	printf("runas_test: ThreadSanitizer build, skipped\n");
	return 77;
#endif
	if (geteuid() != 0) {
		printf("runas_test: not root, skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
