/* probe.c — see probe.h. */
#include "probe.h"

#include "devices.h"
#include "log.h"
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct probe {
	struct daemon *d; /* NULL once the daemon let go of it */
	uv_process_t proc;
	uv_pipe_t out;
	uv_timer_t timer;
	int open_handles;
	int exited, eof, ok;
	size_t len;
	char buf[8192];
};

static double
probe_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
probe_handle_closed(uv_handle_t *h)
{
	struct probe *p = h->data;

	if (--p->open_handles == 0)
		free(p);
}

static void
probe_close_handles(struct probe *p)
{
	uv_handle_t *hs[] = {(uv_handle_t *) &p->proc, (uv_handle_t *) &p->out,
	                     (uv_handle_t *) &p->timer};

	for (size_t i = 0; i < 3; i++) {
		if (hs[i]->data != NULL && !uv_is_closing(hs[i]))
			uv_close(hs[i], probe_handle_closed);
	}
}

/* Copy the fresh figures into the daemon's device list. Devices the probe
 * no longer reports keep their old figures (and old probed_at). */
static void
probe_apply(struct probe *p)
{
	struct daemon *d = p->d;
	double now = probe_now_s();
	char *save = NULL;

	p->buf[p->len] = '\0';
	for (char *line = strtok_r(p->buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		struct device_info di;
		if (devices_parse_line(line, &di) != 0)
			continue;
		for (size_t k = 0; k < d->ndevs; k++) {
			if (strcmp(d->devs[k].name, di.name) != 0)
				continue;
			d->devs[k].mem_total = di.mem_total;
			d->devs[k].mem_free = di.mem_free;
			d->devs[k].probed_at = now;
		}
	}
}

static void
probe_finish(struct probe *p)
{
	if (!p->exited || !p->eof)
		return;
	if (p->d != NULL) {
		if (p->ok)
			probe_apply(p);
		if (p->d->probe == p)
			p->d->probe = NULL;
		p->d = NULL;
	}
	probe_close_handles(p);
}

static void probe_timeout_cb(uv_timer_t *t);

static void
probe_exit_cb(uv_process_t *h, int64_t status, int sig)
{
	struct probe *p = h->data;

	p->exited = 1;
	p->ok = status == 0 && sig == 0;
	/* the pipe's EOF normally follows at once; should something else
	 * hold the pipe open, stop waiting for it after a second */
	uv_timer_start(&p->timer, probe_timeout_cb, 1000, 0);
	if (!p->ok)
		log_warn("device probe failed exit=%lld signal=%d "
		         "action=keep-old-figures",
		         (long long) status, sig);
	probe_finish(p);
}

static void
probe_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct probe *p = h->data;

	(void) suggested;
	*buf = uv_buf_init(p->buf + p->len,
	                   (unsigned int) (sizeof(p->buf) - 1 - p->len));
}

static void
probe_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct probe *p = s->data;

	(void) buf;
	if (nread > 0)
		p->len += (size_t) nread;
	/* EOF, an error, or a full buffer (the rest is ignored) */
	if (nread < 0 || p->len >= sizeof(p->buf) - 1) {
		uv_read_stop(s);
		p->eof = 1;
		probe_finish(p);
	}
}

static void
probe_timeout_cb(uv_timer_t *t)
{
	struct probe *p = t->data;

	if (p->exited) {
		uv_read_stop((uv_stream_t *) &p->out);
		p->eof = 1;
		probe_finish(p);
		return;
	}
	log_warn("device probe killed reason=timeout timeout_s=%d",
	         PROBE_TIMEOUT_MS / 1000);
	uv_process_kill(&p->proc, SIGKILL);
}

static void
probe_start(struct daemon *d)
{
	struct probe *p = calloc(1, sizeof(*p));
	char *args[3];
	uv_process_options_t opt;
	uv_stdio_container_t io[3];
	int rc;

	if (p == NULL)
		return;
	p->d = d;
	if (uv_pipe_init(d->loop, &p->out, 0) != 0) {
		free(p);
		return;
	}
	p->out.data = p;
	p->open_handles++;
	uv_timer_init(d->loop, &p->timer);
	p->timer.data = p;
	p->open_handles++;

	args[0] = (char *) d->cfg->worker_path;
	args[1] = "probe";
	args[2] = NULL;
	memset(&opt, 0, sizeof(opt));
	memset(io, 0, sizeof(io));
	io[0].flags = UV_IGNORE;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *) &p->out;
	io[2].flags = UV_INHERIT_FD;
	io[2].data.fd = 2;
	opt.file = d->cfg->worker_path;
	opt.args = args;
	opt.exit_cb = probe_exit_cb;
	opt.stdio = io;
	opt.stdio_count = 3;
	opt.flags = UV_PROCESS_DETACHED;
	rc = uv_spawn(d->loop, &p->proc, &opt);
	/* uv_spawn leaves an initialised handle to close either way */
	p->proc.data = p;
	p->open_handles++;
	if (rc != 0) {
		log_warn("device probe not started error=\"%s\"",
		         uv_strerror(rc));
		p->d = NULL;
		probe_close_handles(p);
		return;
	}
	uv_read_start((uv_stream_t *) &p->out, probe_alloc_cb, probe_read_cb);
	uv_timer_start(&p->timer, probe_timeout_cb, PROBE_TIMEOUT_MS, 0);
	d->probe = p;
}

void
probe_refresh(struct daemon *d)
{
	uint64_t now = uv_now(d->loop);
	uint64_t avail = devices_mem_available();
	int gpus = 0;

	for (size_t k = 0; k < d->ndevs; k++) {
		if (d->devs[k].kind != SCHED_CPU) {
			gpus = 1;
		} else if (avail > 0) {
			d->devs[k].mem_free = avail;
			d->devs[k].probed_at = probe_now_s();
		}
	}
	if (!gpus || d->probe != NULL || d->draining)
		return;
	if (now - d->probe_last_ms < PROBE_MIN_INTERVAL_MS)
		return;
	d->probe_last_ms = now;
	probe_start(d);
}

void
probe_close(struct daemon *d)
{
	struct probe *p = d->probe;

	if (p == NULL)
		return;
	d->probe = NULL;
	p->d = NULL;
	if (!p->exited)
		uv_process_kill(&p->proc, SIGKILL);
	probe_close_handles(p);
}
