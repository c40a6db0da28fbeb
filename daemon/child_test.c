/* child_test.c — child.c on a real uv loop with real /bin/sh children: the
 * line protocol the worker's progress and the device probe rely on, exit
 * status and signal, timeout / SIGTERM -> SIGKILL escalation, and letting go
 * of running children (no callback, nothing leaked: run under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>

#include "child.h"
#include "nq_error.h"

#define MAXREC 64

struct rec {
	struct child *c;
	char *line[MAXREC];
	size_t len[MAXREC];
	int cut[MAXREC];
	size_t n;
	int exits;
	int64_t status;
	int sig;
	size_t lines_at_exit;
	uint64_t t0_ms, exit_ms;
	int kills;
	int kill_sig[4];
	enum child_why kill_why[4];
	int close_on_line; /* child_close() from the first on_line */
	int sent;          /* the test's timer sent a signal */
};

static uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static void
on_line(void *arg, const char *line, size_t len, int cut)
{
	struct rec *r = arg;

	assert_int_equal(strlen(line), len); /* NUL-terminated at len */
	if (r->n < MAXREC) {
		r->line[r->n] = strdup(line);
		r->len[r->n] = len;
		r->cut[r->n] = cut;
	}
	r->n++;
	if (r->close_on_line) {
		r->close_on_line = 0;
		child_close(r->c);
	}
}

static void
on_kill(void *arg, int sig, enum child_why why)
{
	struct rec *r = arg;

	if (r->kills < 4) {
		r->kill_sig[r->kills] = sig;
		r->kill_why[r->kills] = why;
	}
	r->kills++;
}

static void
on_exit_cb(void *arg, int64_t status, int sig)
{
	struct rec *r = arg;

	r->exits++;
	r->status = status;
	r->sig = sig;
	r->lines_at_exit = r->n;
	r->exit_ms = now_ms();
	r->c = NULL; /* freed after this returns */
}

static void
rec_free(struct rec *r)
{
	for (size_t i = 0; i < r->n && i < MAXREC; i++)
		free(r->line[i]);
}

static void
opts_sh(struct child_opts *o, char **argv, const char *script, struct rec *r)
{
	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = (char *) script;
	argv[3] = NULL;
	memset(o, 0, sizeof(*o));
	o->argv = argv;
	o->on_line = on_line;
	o->on_kill = on_kill;
	o->on_exit = on_exit_cb;
	o->arg = r;
}

/* spawn, run the loop until nothing is left, check every handle closed */
static void
run(const struct child_opts *o, struct rec *r)
{
	uv_loop_t loop;
	char msg[256];

	assert_int_equal(uv_loop_init(&loop), 0);
	r->t0_ms = now_ms();
	assert_int_equal(child_spawn(&loop, o, &r->c, msg, sizeof(msg)), 0);
	assert_true(child_pid(r->c) > 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_lines(void **state)
{
	/* two short lines, one of 10000 bytes (more than one 4 KiB read, less
	 * than max_line), one of 100000 (over max_line: cut), a line after it,
	 * an empty line, and a last line without '\n'; then exit 7 */
	const char *script = "echo one; echo two;"
	                     "head -c 10000 /dev/zero | tr '\\0' a; echo;"
	                     "head -c 100000 /dev/zero | tr '\\0' b; echo;"
	                     "echo after; echo; printf tail; exit 7";
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];

	opts_sh(&o, argv, script, &r);
	o.max_line = 16384;
	run(&o, &r);
	assert_int_equal(r.exits, 1);
	assert_int_equal(r.status, 7);
	assert_int_equal(r.sig, 0);
	assert_int_equal(r.kills, 0);
	assert_int_equal(r.n, 7);
	assert_int_equal(r.lines_at_exit, 7); /* every line before on_exit */
	assert_string_equal(r.line[0], "one");
	assert_string_equal(r.line[1], "two");
	assert_int_equal(r.len[2], 10000);
	assert_int_equal(r.cut[2], 0);
	assert_int_equal(strspn(r.line[2], "a"), 10000);
	assert_int_equal(r.len[3], 16384); /* the first max_line bytes */
	assert_int_equal(r.cut[3], 1);
	assert_int_equal(strspn(r.line[3], "b"), 16384);
	assert_string_equal(r.line[4], "after");
	assert_int_equal(r.cut[4], 0);
	assert_string_equal(r.line[5], "");
	assert_string_equal(r.line[6], "tail");
	assert_int_equal(r.cut[6], 0);
	rec_free(&r);
}

static void
test_default_max_line_and_env_cwd(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];
	char *env[] = {"NQ_CHILD_TEST=bar", NULL};

	opts_sh(&o, argv,
	        "echo \"$NQ_CHILD_TEST\"; pwd;"
	        "head -c 1024 /dev/zero | tr '\\0' c; echo",
	        &r);
	o.env = env;
	o.cwd = "/";
	run(&o, &r);
	assert_int_equal(r.exits, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.line[0], "bar");
	assert_string_equal(r.line[1], "/");
	assert_int_equal(r.len[2], CHILD_LINE_DEFAULT);
	assert_int_equal(r.cut[2], 1);
	rec_free(&r);
}

static void
test_signal_reported(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];

	opts_sh(&o, argv, "echo bye; kill -KILL $$", &r);
	run(&o, &r);
	assert_int_equal(r.exits, 1);
	assert_int_equal(r.sig, SIGKILL);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.line[0], "bye");
	rec_free(&r);
}

static void
test_timeout_kills(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];

	opts_sh(&o, argv, "exec sleep 60", &r);
	o.timeout_ms = 200; /* no grace: SIGKILL at once */
	run(&o, &r);
	assert_int_equal(r.exits, 1);
	assert_int_equal(r.sig, SIGKILL);
	assert_int_equal(r.kills, 1);
	assert_int_equal(r.kill_sig[0], SIGKILL);
	assert_int_equal(r.kill_why[0], CHILD_TIMEOUT);
	assert_true(r.exit_ms - r.t0_ms >= 200);
	assert_true(r.exit_ms - r.t0_ms < 2000);
}

static void
test_timeout_escalates(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];

	/* sleep inherits the ignored SIGTERM: only SIGKILL ends it */
	opts_sh(&o, argv, "trap '' TERM; exec sleep 60", &r);
	o.timeout_ms = 200;
	o.timeout_grace_ms = 300;
	run(&o, &r);
	assert_int_equal(r.exits, 1);
	assert_int_equal(r.sig, SIGKILL);
	assert_int_equal(r.kills, 2);
	assert_int_equal(r.kill_sig[0], SIGTERM);
	assert_int_equal(r.kill_why[0], CHILD_TIMEOUT);
	assert_int_equal(r.kill_sig[1], SIGKILL);
	assert_int_equal(r.kill_why[1], CHILD_GRACE_OVER);
	assert_true(r.exit_ms - r.t0_ms >= 500);
	assert_true(r.exit_ms - r.t0_ms < 3000);
}

static void
on_tick(uv_timer_t *t)
{
	struct rec *r = t->data;

	/* SIGTERM with a grace period: a plain sleep dies of it, so the
	 * SIGKILL never comes */
	child_kill(r->c, SIGTERM, 5000);
	r->sent = 1;
	uv_close((uv_handle_t *) t, NULL);
}

static void
test_kill_with_grace(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];
	uv_loop_t loop;
	uv_timer_t t;
	char msg[256];

	opts_sh(&o, argv, "echo started; exec sleep 60", &r);
	assert_int_equal(uv_loop_init(&loop), 0);
	r.t0_ms = now_ms();
	assert_int_equal(child_spawn(&loop, &o, &r.c, msg, sizeof(msg)), 0);
	uv_timer_init(&loop, &t);
	t.data = &r;
	uv_timer_start(&t, on_tick, 100, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(r.exits, 1);
	assert_int_equal(r.sig, SIGTERM);
	assert_int_equal(r.sent, 1);
	assert_int_equal(r.kills, 0); /* no on_kill: the caller sent it */
	assert_true(r.exit_ms - r.t0_ms < 2000);
	assert_int_equal(r.n, 1);
	rec_free(&r);
}

static void
test_grandchild_holds_pipe(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];

	/* the background sleep keeps stdout open after sh exits: on_exit
	 * comes CHILD_EOF_WAIT_MS after the exit, not after the sleep */
	opts_sh(&o, argv, "sleep 3 & echo x; exit 0", &r);
	run(&o, &r);
	assert_int_equal(r.exits, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, 1);
	assert_true(r.exit_ms - r.t0_ms >= CHILD_EOF_WAIT_MS);
	assert_true(r.exit_ms - r.t0_ms < 2500);
	rec_free(&r);
}

static void
on_close_tick(uv_timer_t *t)
{
	struct rec *r = t->data;

	child_close(r->c);
	uv_close((uv_handle_t *) t, NULL);
}

static void
test_close_running(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];
	uv_loop_t loop;
	uv_timer_t t;
	char msg[256];
	uint64_t t0;

	/* a child that prints and runs on, let go of by the daemon */
	opts_sh(&o, argv, "echo hi; exec sleep 60", &r);
	o.timeout_ms = 60000;
	assert_int_equal(uv_loop_init(&loop), 0);
	t0 = now_ms();
	assert_int_equal(child_spawn(&loop, &o, &r.c, msg, sizeof(msg)), 0);
	uv_timer_init(&loop, &t);
	t.data = &r;
	uv_timer_start(&t, on_close_tick, 200, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed */
	assert_true(now_ms() - t0 < 2000);
	assert_int_equal(r.exits, 0); /* no callback after child_close */
	assert_int_equal(r.kills, 0);
	rec_free(&r);

	/* let go at once, before the loop ever ran */
	memset(&r, 0, sizeof(r));
	opts_sh(&o, argv, "exec sleep 60", &r);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(child_spawn(&loop, &o, &r.c, msg, sizeof(msg)), 0);
	child_close(r.c);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(r.exits, 0);
}

static void
test_close_from_on_line(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[4];

	/* endless lines: the first on_line lets go; no line after it */
	opts_sh(&o, argv, "exec yes", &r);
	r.close_on_line = 1;
	run(&o, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.line[0], "y");
	assert_int_equal(r.exits, 0);
	rec_free(&r);
}

static void
test_spawn_fails(void **state)
{
	struct child_opts o;
	struct rec r = {0};
	char *argv[] = {"/nonexistent/neuroq-worker", "probe", NULL};
	uv_loop_t loop;
	struct child *c = (struct child *) &r; /* must be reset */
	char msg[256] = "";

	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.on_line = on_line;
	o.on_exit = on_exit_cb;
	o.arg = &r;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(child_spawn(&loop, &o, &c, msg, sizeof(msg)),
	                 NQ_EINTERNAL);
	assert_null(c);
	assert_string_equal(msg, uv_strerror(UV_ENOENT));
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(r.exits, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_lines),
	        cmocka_unit_test(test_default_max_line_and_env_cwd),
	        cmocka_unit_test(test_signal_reported),
	        cmocka_unit_test(test_timeout_kills),
	        cmocka_unit_test(test_timeout_escalates),
	        cmocka_unit_test(test_kill_with_grace),
	        cmocka_unit_test(test_grandchild_holds_pipe),
	        cmocka_unit_test(test_close_running),
	        cmocka_unit_test(test_close_from_on_line),
	        cmocka_unit_test(test_spawn_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
