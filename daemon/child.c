/* child.c — see child.h. */
#include "child.h"

#include "nq_error.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct child {
	uv_process_t proc;
	uv_pipe_t out;
	uv_timer_t timer;
	struct child_opts o; /* argv/env/cwd are not kept past the spawn */
	int open_handles;    /* initialised and not yet closed */
	int exited, eof;
	int closing;  /* handles are being closed */
	int detached; /* child_close(): no more callbacks */
	int killing;  /* the timer sends SIGKILL (else: the timeout) */
	int64_t status;
	int sig;
	int cut;    /* the current line overflowed */
	size_t len; /* bytes in line */
	char chunk[4096];
	char line[]; /* max_line + 1 */
};

static void
child_handle_closed(uv_handle_t *h)
{
	struct child *c = h->data;

	if (--c->open_handles > 0)
		return;
	if (!c->detached && c->o.on_exit != NULL)
		c->o.on_exit(c->o.arg, c->status, c->sig);
	free(c);
}

static void
child_close_handles(struct child *c)
{
	uv_handle_t *hs[] = {(uv_handle_t *) &c->proc, (uv_handle_t *) &c->out,
	                     (uv_handle_t *) &c->timer};

	c->closing = 1;
	for (size_t i = 0; i < 3; i++) {
		/* data is set once a handle is initialised */
		if (hs[i]->data != NULL && !uv_is_closing(hs[i]))
			uv_close(hs[i], child_handle_closed);
	}
}

/* Both the exit and the EOF seen: close; on_exit follows the last close. */
static void
child_maybe_finish(struct child *c)
{
	if (c->exited && c->eof && !c->closing)
		child_close_handles(c);
}

static void
child_deliver(struct child *c)
{
	c->line[c->len] = '\0';
	if (c->o.on_line != NULL && !c->detached)
		c->o.on_line(c->o.arg, c->line, c->len, c->cut);
	c->len = 0;
	c->cut = 0;
}

static void
child_eof(struct child *c)
{
	uv_read_stop((uv_stream_t *) &c->out);
	if (c->eof)
		return;
	c->eof = 1;
	if (c->len > 0 || c->cut)
		child_deliver(c); /* a last line without '\n' */
	child_maybe_finish(c);
}

static void
child_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct child *c = h->data;

	(void) suggested;
	*buf = uv_buf_init(c->chunk, sizeof(c->chunk));
}

static void
child_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct child *c = s->data;

	if (nread < 0) { /* EOF or an error: no more lines either way */
		child_eof(c);
		return;
	}
	for (ssize_t i = 0; i < nread; i++) {
		char ch = buf->base[i];

		if (ch == '\n') {
			child_deliver(c);
			/* on_line may have let go (child_close) */
			if (c->detached)
				return;
		} else if (c->len < c->o.max_line) {
			c->line[c->len++] = ch;
		} else {
			c->cut = 1;
		}
	}
}

static void
child_signal(struct child *c, int sig, enum child_why why)
{
	if (c->o.on_kill != NULL)
		c->o.on_kill(c->o.arg, sig, why);
	/* on_kill may have let go; child_close() kills by itself */
	if (!c->exited && !c->detached)
		uv_process_kill(&c->proc, sig);
}

static void
child_timer_cb(uv_timer_t *t)
{
	struct child *c = t->data;

	if (c->exited) {
		/* the EOF is overdue: something else (a grandchild) holds the
		 * pipe open; stop waiting for it */
		child_eof(c);
	} else if (c->killing) {
		child_signal(c, SIGKILL, CHILD_GRACE_OVER);
	} else if (c->o.timeout_grace_ms > 0) {
		c->killing = 1;
		uv_timer_start(&c->timer, child_timer_cb, c->o.timeout_grace_ms,
		               0);
		child_signal(c, SIGTERM, CHILD_TIMEOUT);
	} else {
		child_signal(c, SIGKILL, CHILD_TIMEOUT);
	}
}

static void
child_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct child *c = p->data;

	c->exited = 1;
	c->status = status;
	c->sig = sig;
	/* the pipe's EOF normally follows at once */
	uv_timer_start(&c->timer, child_timer_cb, CHILD_EOF_WAIT_MS, 0);
	child_maybe_finish(c);
}

int
child_spawn(uv_loop_t *loop, const struct child_opts *o, struct child **out,
            char *msg, size_t msglen)
{
	size_t max_line = o->max_line > 0 ? o->max_line : CHILD_LINE_DEFAULT;
	struct child *c = calloc(1, sizeof(*c) + max_line + 1);
	uv_process_options_t opt;
	uv_stdio_container_t io[3];
	int rc;

	*out = NULL;
	if (c == NULL) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	c->o = *o;
	c->o.max_line = max_line;
	c->o.argv = NULL;
	c->o.env = NULL;
	c->o.cwd = NULL;
	c->o.file = NULL;
	rc = uv_pipe_init(loop, &c->out, 0);
	if (rc != 0) {
		snprintf(msg, msglen, "%s", uv_strerror(rc));
		free(c);
		return NQ_EINTERNAL;
	}
	c->out.data = c;
	c->open_handles++;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->open_handles++;

	memset(&opt, 0, sizeof(opt));
	memset(io, 0, sizeof(io));
	io[0].flags = UV_IGNORE;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *) &c->out;
	io[2].flags = UV_INHERIT_FD;
	io[2].data.fd = 2;
	opt.file = o->file != NULL ? o->file : o->argv[0];
	opt.args = o->argv;
	opt.env = o->env;
	opt.cwd = o->cwd;
	opt.exit_cb = child_exit_cb;
	opt.stdio = io;
	opt.stdio_count = 3;
	opt.flags = o->new_session ? UV_PROCESS_DETACHED : 0;
	if (o->set_ids) {
		/* libuv: setgroups(0, NULL), setgid, setuid in the child */
		opt.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
		opt.uid = (uv_uid_t) o->uid;
		opt.gid = (uv_gid_t) o->gid;
	}
	rc = uv_spawn(loop, &c->proc, &opt);
	/* uv_spawn leaves an initialised handle to close either way */
	c->proc.data = c;
	c->open_handles++;
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *) &c->out, child_alloc_cb,
		                   child_read_cb);
	if (rc != 0) {
		snprintf(msg, msglen, "%s", uv_strerror(rc));
		child_close(c);
		return NQ_EINTERNAL;
	}
	/* the timeout counts from now, not from the loop's cached time
	 * (which can be older than the spawn by the whole spawn) */
	uv_update_time(loop);
	if (o->timeout_ms > 0)
		uv_timer_start(&c->timer, child_timer_cb, o->timeout_ms, 0);
	*out = c;
	return 0;
}

int
child_pid(const struct child *c)
{
	return c->proc.pid;
}

void
child_kill(struct child *c, int sig, uint64_t grace_ms)
{
	if (c->exited || c->detached)
		return;
	uv_process_kill(&c->proc, sig);
	if (grace_ms > 0 && sig != SIGKILL) {
		c->killing = 1;
		uv_timer_start(&c->timer, child_timer_cb, grace_ms, 0);
	}
}

void
child_close(struct child *c)
{
	if (c == NULL || c->detached)
		return;
	c->detached = 1;
	/* pid > 0: it was started */
	if (!c->exited && c->proc.pid > 0)
		uv_process_kill(&c->proc, SIGKILL);
	if (!c->closing)
		child_close_handles(c);
}
