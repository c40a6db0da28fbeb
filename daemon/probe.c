/* probe.c — see probe.h. */
#include "probe.h"

#include "child.h"
#include "config.h"
#include "daemon.h"
#include "devices.h"
#include "log.h"
#include "nq_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct probe {
	struct daemon *d;
	struct child *child;
	/* figures read so far, by index in d->devs; applied on a clean exit */
	struct device_info got[DEVICES_MAX];
	char seen[DEVICES_MAX];
};

static void
probe_line_cb(void *arg, const char *line, size_t len, int cut)
{
	struct probe *p = arg;
	struct daemon *d = p->d;
	struct device_info di;

	(void) len;
	if (cut || devices_parse_line(line, &di) != 0)
		return;
	for (size_t k = 0; k < d->ndevs; k++) {
		if (strcmp(d->devs[k].name, di.name) == 0) {
			p->got[k] = di;
			p->seen[k] = 1;
		}
	}
}

static void
probe_kill_cb(void *arg, int sig, enum child_why why)
{
	(void) arg;
	(void) sig;
	(void) why; /* only the timeout, SIGKILL at once */
	log_warn("device probe killed reason=timeout timeout_s=%d",
	         PROBE_TIMEOUT_MS / 1000);
}

/* Copy the fresh figures into the daemon's device list. Devices the probe
 * no longer reports keep their old figures (and old probed_at). */
static void
probe_exit_cb(void *arg, int64_t status, int sig)
{
	struct probe *p = arg;
	struct daemon *d = p->d;
	double now = nq_wall_s();

	d->probe = NULL;
	if (status != 0 || sig != 0) {
		log_warn("device probe failed exit=%lld signal=%d "
		         "action=keep-old-figures",
		         (long long) status, sig);
		free(p);
		return;
	}
	for (size_t k = 0; k < d->ndevs; k++) {
		if (!p->seen[k])
			continue;
		d->devs[k].mem_total = p->got[k].mem_total;
		d->devs[k].mem_free = p->got[k].mem_free;
		d->devs[k].probed_at = now;
	}
	free(p);
}

static void
probe_start(struct daemon *d)
{
	struct probe *p = calloc(1, sizeof(*p));
	char *args[3], err[256];
	struct child_opts o;

	if (p == NULL)
		return;
	p->d = d;
	args[0] = (char *) d->cfg->worker_path;
	args[1] = "probe";
	args[2] = NULL;
	memset(&o, 0, sizeof(o));
	o.argv = args;
	o.new_session = 1;
	o.timeout_ms = PROBE_TIMEOUT_MS;
	o.on_line = probe_line_cb;
	o.on_kill = probe_kill_cb;
	o.on_exit = probe_exit_cb;
	o.arg = p;
	if (child_spawn(d->loop, &o, &p->child, err, sizeof(err)) != 0) {
		log_warn("device probe not started error=\"%s\"", err);
		free(p);
		return;
	}
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
			gpus |= !d->devs[k].fake; /* a fake has no probe */
		} else if (avail > 0) {
			d->devs[k].mem_free = avail;
			d->devs[k].probed_at = nq_wall_s();
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
	child_close(p->child); /* no callback after this */
	free(p);
}
