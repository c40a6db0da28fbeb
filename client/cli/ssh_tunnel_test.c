/* ssh_tunnel_test.c — ssh:// URL parsing, the ssh command line, and that a
 * failing or hanging ssh gives a message in bounded time and leaves nothing
 * behind (a fake ssh: the real one is exercised by tests/e2e/test_ssh.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_clock.h"
#include "nq_error.h"
#include "ssh_tunnel.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[128];

static int
setup(void **state)
{
	(void) state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sshtun_test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	/* the tunnel's private directories go here: checked empty after */
	return setenv("TMPDIR", tmpdir, 1);
}

static int
teardown(void **state)
{
	char cmd[200];

	(void) state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int
entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_parse(void **state)
{
	struct ssh_dest d;
	char msg[256];

	(void) state;
	assert_int_equal(ssh_url_parse("ssh://host", &d, msg, sizeof(msg)),
	                 NQ_OK);
	assert_string_equal(d.host, "host");
	assert_string_equal(d.user, "");
	assert_string_equal(d.port, "");
	assert_string_equal(d.path, SSH_DEFAULT_REMOTE);

	assert_int_equal(ssh_url_parse("ssh://ann@gpu1.lab:2222/srv/nq/s.sock",
	                               &d, msg, sizeof(msg)),
	                 NQ_OK);
	assert_string_equal(d.user, "ann");
	assert_string_equal(d.host, "gpu1.lab");
	assert_string_equal(d.port, "2222");
	assert_string_equal(d.path, "/srv/nq/s.sock");

	assert_int_equal(ssh_url_parse("ssh://[::1]:22/", &d, msg, sizeof(msg)),
	                 NQ_OK);
	assert_string_equal(d.host, "::1");
	assert_string_equal(d.port, "22");
	assert_string_equal(d.path, SSH_DEFAULT_REMOTE);

	const char *bad[] = {"ipc:///x",        "ssh://",      "ssh://@h",
	                     "ssh://h:",        "ssh://h:x1",  "ssh://h:70000",
	                     "ssh://-oProxy=x", "ssh://h/a:b", "ssh://[::1",
	                     "ssh://[::1]x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		assert_int_equal(ssh_url_parse(bad[i], &d, msg, sizeof(msg)),
		                 NQ_EBADPARAM);
		assert_non_null(strstr(msg, "ssh://"));
	}
	assert_true(ssh_url_is("ssh://h"));
	assert_false(ssh_url_is("ipc:///h"));
	assert_false(ssh_url_is(NULL));
}

static void
test_argv(void **state)
{
	struct ssh_dest d;
	char msg[256], opts[] = "-i /k/id  -o BatchMode=no\t-v", *argv[64];
	int n, i_opt = -1, i_batch = -1, i_l = -1;

	(void) state;
	assert_int_equal(ssh_url_parse("ssh://ann@h:2200/r/s.sock", &d, msg,
	                               sizeof(msg)),
	                 NQ_OK);
	assert_int_equal(ssh_tunnel_argv(&d, "/tmp/x/ctl.sock", "myssh", opts,
	                                 7, argv, 64),
	                 NQ_OK);
	for (n = 0; argv[n]; n++) {
		if (!strcmp(argv[n], "BatchMode=no"))
			i_opt = n;
		if (!strcmp(argv[n], "BatchMode=yes"))
			i_batch = n;
		if (!strcmp(argv[n], "-l"))
			i_l = n;
	}
	assert_string_equal(argv[0], "myssh");
	assert_string_equal(argv[1], "-i");
	assert_string_equal(argv[2], "/k/id");
	assert_string_equal(argv[5], "-v");
	/* the user's -o comes first, so it wins */
	assert_true(i_opt > 0 && i_batch > i_opt);
	assert_true(i_l > 0);
	assert_string_equal(argv[i_l + 1], "ann");
	assert_string_equal(argv[i_l + 2], "-p");
	assert_string_equal(argv[i_l + 3], "2200");
	assert_string_equal(argv[n - 4], "-L");
	assert_string_equal(argv[n - 3], "/tmp/x/ctl.sock:/r/s.sock");
	assert_string_equal(argv[n - 2], "--");
	assert_string_equal(argv[n - 1], "h");
}

static void
fake_ssh(const char *body)
{
	char path[200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/fake-ssh", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(path, 0755);
	setenv("NEUROQ_SSH", path, 1);
}

static void
test_failure_message(void **state)
{
	struct ssh_tunnel t;
	char msg[768];
	int64_t t0;

	(void) state;
	fake_ssh("echo 'Warning: Permanently added x' >&2\n"
	         "echo 'ann@h: Permission denied (publickey).' >&2\nexit 255");
	t0 = nq_mono_ms();
	assert_int_equal(
	        ssh_tunnel_open(&t, "ssh://ann@h", 10, msg, sizeof(msg)),
	        NQ_EIO);
	assert_true(nq_mono_ms() - t0 < 5000);
	assert_non_null(strstr(msg, "Permission denied (publickey)"));
	assert_null(strstr(msg, "Permanently added"));
	assert_non_null(strstr(msg, "exit 255"));
	assert_int_equal(t.pid, 0);
	assert_int_equal(entries(tmpdir), 1); /* only fake-ssh */
	ssh_tunnel_close(&t);                 /* twice is fine */

	setenv("NEUROQ_SSH", "/nonexistent/ssh", 1);
	assert_int_equal(ssh_tunnel_open(&t, "ssh://h", 10, msg, sizeof(msg)),
	                 NQ_EIO);
	assert_non_null(strstr(msg, "cannot run /nonexistent/ssh"));
	assert_int_equal(entries(tmpdir), 1);

	assert_int_equal(ssh_tunnel_open(&t, "ssh://h:0", 10, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	unsetenv("NEUROQ_SSH");
}

static void
test_timeout(void **state)
{
	struct ssh_tunnel t;
	char msg[768];
	int64_t t0;

	(void) state;
	/* an ssh that never forwards: bounded wait, then killed */
	fake_ssh("echo connecting >&2\nexec sleep 60");
	t0 = nq_mono_ms();
	assert_int_equal(ssh_tunnel_open(&t, "ssh://h", 0.5, msg, sizeof(msg)),
	                 NQ_ETIMEDOUT);
	assert_true(nq_mono_ms() - t0 < 4000);
	assert_non_null(strstr(msg, "did not come up within 0.5 s"));
	assert_non_null(strstr(msg, "connecting"));
	assert_int_equal(t.pid, 0);
	assert_int_equal(entries(tmpdir), 1);
	unsetenv("NEUROQ_SSH");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),
	        cmocka_unit_test(test_argv),
	        cmocka_unit_test(test_failure_message),
	        cmocka_unit_test(test_timeout),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
