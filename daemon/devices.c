/* devices.c — see devices.h. */
#include "devices.h"
#include "nq_sysmem.h"

#include "log.h"
#include "nq_clock.h"
#include "nq_error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEVICES_PROBE_TIMEOUT_MS 60000 /* CUDA start-up can be slow */

int
devices_parse_line(const char *line, struct device_info *d)
{
	char name[32], kind[16];
	uint64_t tot, fre;
	struct devname dn;
	int idx = 0;

	memset(d, 0, sizeof(*d));
	/* the probe child's line; != 4 if bad */
	// NOLINTNEXTLINE(cert-err34-c)
	if (sscanf(line, "%31s %15s %" SCNu64 " %" SCNu64, name, kind, &tot,
	           &fre) != 4)
		return -1;
	if (devname_parse(name, &dn) != NQ_OK)
		return -1;
	if (strcmp(kind, "cpu") == 0 && dn.kind == DEVNAME_CPU) {
		d->kind = SCHED_CPU;
	} else if (strcmp(kind, "cuda") == 0 && dn.kind == DEVNAME_CUDA_N) {
		d->kind = SCHED_CUDA;
		idx = dn.index;
	} else {
		return -1;
	}
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->index = idx;
	d->mem_total = tot;
	d->mem_free = fre;
	return 0;
}

/* Runs `worker probe`; its stdout (at most len-1 bytes) goes to buf. */
static int
devices_run_probe(const char *worker, char *buf, size_t len, char *msg,
                  size_t msglen)
{
	int pfd[2];
	pid_t pid;
	size_t got = 0;
	int status = 0, rc = 0;
	int64_t deadline = nq_mono_ms() + DEVICES_PROBE_TIMEOUT_MS;

	if (pipe2(pfd, O_CLOEXEC) != 0) {
		snprintf(msg, msglen, "pipe: %s", strerror(errno));
		return NQ_EIO;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(msg, msglen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return NQ_EIO;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		execl(worker, worker, "probe", (char *) NULL);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int64_t left = deadline - nq_mono_ms();
		if (left <= 0) {
			snprintf(msg, msglen, "%.200s probe: no answer in %d s",
			         worker, DEVICES_PROBE_TIMEOUT_MS / 1000);
			kill(pid, SIGKILL);
			rc = NQ_EIO;
			break;
		}
		int pr = poll(&p, 1, (int) left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		ssize_t r = read(pfd[0], buf + got, len - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t) r;
		if (got == len - 1)
			break;
	}
	close(pfd[0]);
	buf[got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		snprintf(msg, msglen, "%.200s probe exited with %s %d", worker,
		         WIFEXITED(status) ? "status" : "signal",
		         WIFEXITED(status) ? WEXITSTATUS(status)
		                           : WTERMSIG(status));
		rc = NQ_EIO;
	}
	return rc;
}

uint64_t
devices_mem_available(void)
{
	return nq_sysmem_available();
}

/* Is name selected by the comma list (empty = all; "cuda" = all cuda)? */
static int
devices_wanted(const char *list, const struct device_info *d)
{
	char buf[256];
	char *save = NULL;

	if (list[0] == '\0')
		return 1;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ", \t", &save); t != NULL;
	     t = strtok_r(NULL, ", \t", &save)) {
		if (d->fake)
			return 1; /* made from the list itself */
		if (strcmp(t, d->name) == 0)
			return 1;
		if (strcmp(t, "cuda") == 0 && d->kind == SCHED_CUDA)
			return 1;
	}
	return 0;
}

static int
devices_check_list(const char *list, const struct device_info *all, size_t n,
                   char *msg, size_t msglen)
{
	char buf[256];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ", \t", &save); t != NULL;
	     t = strtok_r(NULL, ", \t", &save)) {
		int found = 0;
		if (strncmp(t, "fake:", 5) == 0)
			continue; /* devices_fakes */
		for (size_t i = 0; i < n; i++) {
			if (strcmp(t, all[i].name) == 0 ||
			    (strcmp(t, "cuda") == 0 &&
			     all[i].kind == SCHED_CUDA))
				found = 1;
		}
		if (!found) {
			snprintf(
			        msg, msglen,
			        "devices: '%s' was not found (the probe found:",
			        t);
			for (size_t i = 0; i < n; i++)
				snprintf(msg + strlen(msg),
				         msglen - strlen(msg), " %s",
				         all[i].name);
			snprintf(msg + strlen(msg), msglen - strlen(msg), ")");
			return NQ_EBADDEVICE;
		}
	}
	return 0;
}

/* The list's fake devices "fake:N:SIZE" into all[*n..]: GPU N of SIZE
 * bytes, run by the cpu backend. 0 or NQ_EBADDEVICE with msg. */
static int
devices_fakes(const char *list, struct device_info *all, size_t *n, char *msg,
              size_t msglen)
{
	char buf[256];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ", \t", &save); t != NULL;
	     t = strtok_r(NULL, ", \t", &save)) {
		struct devname dn;
		struct device_info *d;
		const char *size = NULL;
		char name[32];
		uint64_t bytes = 0;

		if (strncmp(t, "fake:", 5) != 0)
			continue;
		if (devname_parse_fake(t, &dn, name, sizeof(name), &size) !=
		            NQ_OK ||
		    config_parse_bytes(size, &bytes) != 0 || bytes == 0) {
			snprintf(msg, msglen,
			         "devices: '%.64s' is not a test device "
			         "fake:N:SIZE (N < %d, SIZE like 8GiB)",
			         t, DEVICES_MAX);
			return NQ_EBADDEVICE;
		}
		for (size_t i = 0; i < *n; i++) {
			if (all[i].kind == SCHED_CUDA &&
			    all[i].index == dn.index) {
				snprintf(msg, msglen,
				         "devices: %s and %s are both GPU %d",
				         all[i].name, name, dn.index);
				return NQ_EBADDEVICE;
			}
		}
		if (*n == DEVICES_MAX) {
			snprintf(msg, msglen, "devices: more than %d",
			         DEVICES_MAX);
			return NQ_EBADDEVICE;
		}
		d = &all[(*n)++];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", name);
		d->kind = SCHED_CUDA;
		d->index = dn.index;
		d->mem_total = d->mem_free = bytes;
		d->probed_at = nq_wall_s();
		d->fake = 1;
	}
	return 0;
}

int
devices_discover(const struct config *cfg, struct sched *s,
                 struct device_info *out, size_t *n, char *msg, size_t msglen)
{
	struct device_info all[DEVICES_MAX];
	size_t nall = 0;
	char buf[8192], emsg[512];
	int have_cpu = 0;
	int rc;

	rc = devices_run_probe(cfg->worker_path, buf, sizeof(buf), emsg,
	                       sizeof(emsg));
	if (rc != 0)
		log_warn("device probe failed error=\"%s\" action=cpu-only",
		         emsg);
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); rc == 0 && line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (nall == DEVICES_MAX)
			break;
		if (devices_parse_line(line, &all[nall]) != 0) {
			log_warn("device probe line ignored line=\"%s\"", line);
			continue;
		}
		if (all[nall].kind == SCHED_CPU)
			have_cpu = 1;
		nall++;
	}
	if (!have_cpu && nall < DEVICES_MAX) {
		struct device_info *c = &all[nall++];
		memset(c, 0, sizeof(*c));
		snprintf(c->name, sizeof(c->name), "cpu");
		c->kind = SCHED_CPU;
		c->mem_total = nq_sysmem_bytes("MemTotal");
		c->mem_free = nq_sysmem_available();
	}
	for (size_t i = 0; i < nall; i++)
		all[i].probed_at = nq_wall_s();
	rc = devices_check_list(cfg->devices, all, nall, msg, msglen);
	if (rc != 0)
		return rc;
	/* a real GPU not asked for does not block its ordinal */
	{
		size_t k = 0;
		for (size_t i = 0; i < nall; i++)
			if (devices_wanted(cfg->devices, &all[i]))
				all[k++] = all[i];
		nall = k;
	}
	rc = devices_fakes(cfg->devices, all, &nall, msg, msglen);
	if (rc != 0)
		return rc;
	*n = 0;
	for (size_t i = 0; i < nall; i++) {
		struct sched_device sd;
		if (!devices_wanted(cfg->devices, &all[i]))
			continue;
		memset(&sd, 0, sizeof(sd));
		memcpy(sd.name, all[i].name, sizeof(sd.name));
		sd.kind = all[i].kind;
		sd.index = all[i].index;
		if (sd.kind == SCHED_CPU) {
			sd.capacity = cfg->cpu_memory_bytes;
			sd.slots = cfg->cpu_slots;
		} else {
			/* the ledger hands out what the card has; what
			 * others use already is the headroom's business */
			sd.capacity = all[i].mem_total;
			sd.slots = cfg->gpu_slots;
		}
		if (sched_add_device(s, &sd) < 0) {
			snprintf(msg, msglen, "cannot add device %s", sd.name);
			return NQ_EINTERNAL;
		}
		out[(*n)++] = all[i];
		log_info("device id=%s kind=%s mem_total=%" PRIu64
		         " mem_free=%" PRIu64 " capacity=%" PRIu64
		         " slots=%d%s",
		         sd.name, sd.kind == SCHED_CPU ? "cpu" : "cuda",
		         all[i].mem_total, all[i].mem_free, sd.capacity,
		         sd.slots, all[i].fake ? " fake=1" : "");
		if (all[i].fake)
			log_warn("fake device: a test device, admitted as GPU "
			         "%d with its memory, its jobs run on the cpu "
			         "backend id=%s mem_total=%" PRIu64,
			         sd.index, sd.name, all[i].mem_total);
	}
	if (*n == 0) {
		snprintf(msg, msglen, "no devices selected");
		return NQ_EBADDEVICE;
	}
	return 0;
}
