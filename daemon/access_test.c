/* access_test.c — who is an administrator: root, the daemon's own user, the
 * members of admin_group (primary or supplementary, from the system's
 * databases, cached per uid); an unknown group is refused at start. The
 * supplementary-group cases need root (useradd/groupadd) and skip without. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "access.h"
#include "nq_error.h"

#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_USER  "nq-access-test"
#define TEST_GROUP "nq-access-adm"
#define NO_UID     3999999999u /* no passwd entry */

static void
test_without_config(void **state)
{
	(void) state;
	/* no access object: root only */
	assert_true(access_is_admin(NULL, 0));
	assert_false(access_is_admin(NULL, 1000));
	assert_true(access_may_see(NULL, 1000, 1000));
	assert_false(access_may_see(NULL, 1001, 1000));
	assert_true(access_may_see(NULL, 0, 1000));
}

static void
test_no_group(void **state)
{
	struct access *a;
	char msg[256];

	(void) state;
	assert_int_equal(access_open(&a, "", 4242, msg, sizeof(msg)), 0);
	assert_true(access_is_admin(a, 0));
	assert_true(access_is_admin(a, 4242)); /* the daemon's own user */
	assert_false(access_is_admin(a, 4243));
	assert_false(access_is_admin(a, NO_UID));
	assert_true(access_may_see(a, 4243, 4243));
	assert_false(access_may_see(a, 4243, 4244));
	assert_true(access_may_see(a, 4242, 4244));
	access_close(a);
}

static void
test_unknown_group(void **state)
{
	struct access *a = (struct access *) 1;
	char msg[256];

	(void) state;
	assert_int_equal(
	        access_open(&a, "nq-no-such-group-x", 0, msg, sizeof(msg)),
	        NQ_EBADPARAM);
	assert_null(a);
	assert_non_null(strstr(msg, "admin_group"));
	assert_non_null(strstr(msg, "nq-no-such-group-x"));
}

/* nobody's primary group (nogroup on Debian) makes nobody an admin; the
 * root group does not. */
static void
test_primary_group(void **state)
{
	struct passwd *pw = getpwnam("nobody");
	struct group *gr;
	struct access *a;
	char msg[256], name[64];
	uint32_t uid;

	(void) state;
	if (pw == NULL)
		skip();
	uid = pw->pw_uid;
	gr = getgrgid(pw->pw_gid);
	if (gr == NULL || uid == 0)
		skip();
	snprintf(name, sizeof(name), "%s", gr->gr_name);
	assert_int_equal(access_open(&a, name, 4242, msg, sizeof(msg)), 0);
	assert_true(access_is_admin(a, uid));
	assert_true(access_is_admin(a, uid)); /* cached */
	assert_true(access_may_see(a, uid, 1234));
	assert_false(access_is_admin(a, NO_UID));
	access_close(a);
	if (getgrnam("root") == NULL || pw->pw_gid == 0)
		return;
	assert_int_equal(access_open(&a, "root", 4242, msg, sizeof(msg)), 0);
	assert_false(access_is_admin(a, uid));
	assert_false(access_may_see(a, uid, 1234));
	access_close(a);
}

struct hammer {
	struct access *a;
	uint32_t uid;
	int want, bad;
};

static void *
hammer_run(void *arg)
{
	struct hammer *h = arg;

	for (int i = 0; i < 2000; i++) {
		uint32_t u = i % 3 == 0 ? h->uid : 5000 + (uint32_t) (i % 100);
		int want = i % 3 == 0 ? h->want : 0;
		if (access_is_admin(h->a, u) != want)
			h->bad++;
	}
	return NULL;
}

/* Many threads at once (the events sockets' pipe checks run on NNG's):
 * more uids than the cache holds, the same answers. */
static void
test_threads(void **state)
{
	struct passwd *pw = getpwnam("nobody");
	struct group *gr = NULL;
	struct access *a;
	struct hammer h[4];
	pthread_t t[4];
	char msg[256];

	(void) state;
	if (pw == NULL || pw->pw_uid == 0 ||
	    (gr = getgrgid(pw->pw_gid)) == NULL)
		skip();
	assert_int_equal(access_open(&a, gr->gr_name, 4242, msg, sizeof(msg)),
	                 0);
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){a, pw->pw_uid, 1, 0};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]),
		                 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].bad, 0);
	}
	access_close(a);
}

/* A supplementary member is an admin; removed from the group, the cached
 * answer holds for at most ACCESS_TTL_MS and the uncached lookup says no at
 * once. Root only (it creates a user and a group). */
static void
test_supplementary_group(void **state)
{
	struct access *a;
	struct passwd *pw;
	struct group *gr;
	char msg[256];
	uint32_t uid, gid;
	int made_user = 0, made_group = 0;

	(void) state;
	if (geteuid() != 0)
		skip();
	if (getgrnam(TEST_GROUP) == NULL &&
	    system("groupadd " TEST_GROUP " >/dev/null 2>&1") == 0)
		made_group = 1;
	if (getpwnam(TEST_USER) == NULL &&
	    system("useradd -M -N -s /usr/sbin/nologin " TEST_USER
	           " >/dev/null 2>&1") == 0)
		made_user = 1;
	pw = getpwnam(TEST_USER);
	gr = getgrnam(TEST_GROUP);
	if (pw == NULL || gr == NULL)
		skip();
	uid = pw->pw_uid;
	gid = gr->gr_gid;
	assert_int_equal(system("gpasswd -d " TEST_USER " " TEST_GROUP
	                        " >/dev/null 2>&1 ; true"),
	                 0);
	assert_int_equal(access_open(&a, TEST_GROUP, 4242, msg, sizeof(msg)),
	                 0);
	assert_false(access_in_group(uid, gid));
	assert_false(access_is_admin(a, uid));
	access_close(a);

	assert_int_equal(system("gpasswd -a " TEST_USER " " TEST_GROUP
	                        " >/dev/null 2>&1"),
	                 0);
	assert_int_equal(access_open(&a, TEST_GROUP, 4242, msg, sizeof(msg)),
	                 0);
	assert_true(access_in_group(uid, gid));
	assert_true(access_is_admin(a, uid));
	assert_int_equal(system("gpasswd -d " TEST_USER " " TEST_GROUP
	                        " >/dev/null 2>&1"),
	                 0);
	assert_false(access_in_group(uid, gid));
	assert_true(access_is_admin(a, uid)); /* cached, for a while */
	access_close(a);
	assert_int_equal(access_open(&a, TEST_GROUP, 4242, msg, sizeof(msg)),
	                 0);
	assert_false(access_is_admin(a, uid)); /* a fresh cache */
	access_close(a);

	if (made_user)
		assert_int_equal(
		        system("userdel " TEST_USER " >/dev/null 2>&1"), 0);
	if (made_group)
		assert_int_equal(
		        system("groupdel " TEST_GROUP " >/dev/null 2>&1"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_without_config),
	        cmocka_unit_test(test_no_group),
	        cmocka_unit_test(test_unknown_group),
	        cmocka_unit_test(test_primary_group),
	        cmocka_unit_test(test_threads),
	        cmocka_unit_test(test_supplementary_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
