/*
 * devices.h — device discovery. The daemon runs `neuroq-worker probe` and
 * parses its lines, so it never opens a CUDA context itself (a driver fault
 * would take the queue down with it).
 */
#ifndef DEVICES_H
#define DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "devname.h" /* DEVICES_MAX */
#include "scheduler.h"

struct device_info {
	char name[32]; /* "cpu", "cuda:0" */
	enum sched_dev_kind kind;
	int index;
	uint64_t mem_total, mem_free; /* as reported at the last probe */
	double probed_at;             /* unix seconds of that probe */
	int fake; /* a test device (--devices fake:N:SIZE): the cpu backend,
	           * admitted as a GPU of mem_total bytes; never probed */
};

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
uint64_t devices_mem_available(void);

/* Parse one probe line "name kind mem_total mem_free". 0 or -1. */
int devices_parse_line(const char *line, struct device_info *d);
/* Probe (with a timeout), keep the devices named in cfg->devices (all when
 * empty; "cuda" = every cuda device), add them to the scheduler with their
 * capacities and slots. "fake:N:SIZE" in the list adds a test device
 * "fake:N" (devname.h) of SIZE bytes (config_parse_bytes) as GPU N; its
 * jobs run on the cpu backend. cpu is always found (the daemon reads
 * /proc/meminfo itself when the probe fails). 0 or NQ_EBADDEVICE / NQ_EIO with
 * msg. */
int devices_discover(const struct config *cfg, struct sched *s,
                     struct device_info *out, size_t *n, char *msg,
                     size_t msglen);

#endif
