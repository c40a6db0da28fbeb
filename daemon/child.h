/*
 * child.h — one child process on a uv loop: uv_spawn (argv, env, cwd), its
 * stdout handed over line by line, an optional timeout, SIGTERM -> SIGKILL
 * escalation, and one exit callback once the process has exited AND every
 * handle is closed (so all its lines came first). Used by worker.c (one
 * neuroq-worker per job) and probe.c (`neuroq-worker probe`).
 *
 * stdin is /dev/null, stderr is the daemon's (the worker logs there), stdout
 * is the line pipe. All calls and callbacks run on the loop's thread.
 */
#ifndef CHILD_H
#define CHILD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct child;

#define CHILD_LINE_DEFAULT 1023 /* bytes of a line kept when max_line = 0 */
#define CHILD_EOF_WAIT_MS  1000 /* after the exit: wait this long for EOF */

/* why the module itself sends a signal (on_kill) */
enum child_why {
	CHILD_TIMEOUT,    /* timeout_ms passed */
	CHILD_GRACE_OVER, /* a child_kill()/timeout grace period passed */
};

struct child_opts {
	const char *file; /* the program; NULL: argv[0] */
	char **argv;      /* NULL-terminated */
	char **env;       /* NULL-terminated "K=V"; NULL: the daemon's */
	const char *cwd;  /* NULL: the daemon's */
	int new_session;  /* setsid(): a terminal's Ctrl-C does not reach it */
	/* run as uid:gid (no supplementary groups); needs CAP_SETUID/GID */
	int set_ids;
	uint32_t uid, gid;
	/* A line longer than max_line bytes comes as its first max_line bytes
	 * with cut = 1; the rest up to the newline is dropped. 0: default. */
	size_t max_line;
	/* 0: none. Else at timeout_ms SIGTERM, then SIGKILL timeout_grace_ms
	 * later (timeout_grace_ms = 0: SIGKILL at once). */
	uint64_t timeout_ms;
	uint64_t timeout_grace_ms;
	/* Each stdout line without its '\n'; line[len] is '\0'. A last line
	 * without a newline comes at EOF too. Optional. */
	void (*on_line)(void *arg, const char *line, size_t len, int cut);
	/* Just before the module sends sig by itself (to log it). Optional. */
	void (*on_kill)(void *arg, int sig, enum child_why why);
	/* Once, after the last line and with every handle closed: exit status,
	 * or the signal that ended it (sig != 0). The child is freed when it
	 * returns. Never after child_close(). */
	void (*on_exit)(void *arg, int64_t status, int sig);
	void *arg;
};

/* Start it. 0 and *out, or NQ_ENOMEM / NQ_EINTERNAL with msg (libuv's text,
 * e.g. "no such file or directory") and no callback will run; the loop must
 * still run to free what was set up. */
int child_spawn(uv_loop_t *loop, const struct child_opts *o, struct child **out,
                char *msg, size_t msglen);
int child_pid(const struct child *c);
/* Send sig unless it exited already (a reaped pid may be reused). grace_ms >
 * 0: SIGKILL if it still runs grace_ms later (replaces a pending timeout or
 * escalation). */
void child_kill(struct child *c, int sig, uint64_t grace_ms);
/* Let go of it (daemon shutdown): SIGKILL if it still runs, close the
 * handles; no callback runs after this. Memory is freed by the close
 * callbacks, so run the loop afterwards. NULL is a no-op. */
void child_close(struct child *c);

#endif
