/*
 * config.h — neuroqd's settings: defaults, the config file (`key = value`
 * lines, # comments; redis.conf style) and the command line, which wins.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LISTEN 8
#define CONFIG_PATH_MAX   1024

struct config {
	char listen[CONFIG_MAX_LISTEN][CONFIG_PATH_MAX];
	int nlisten;
	char events[CONFIG_PATH_MAX];
	char state_dir[CONFIG_PATH_MAX];
	char devices[256]; /* "" = every device found */
	int cpu_slots;
	int gpu_slots;
	uint64_t cpu_memory_bytes; /* 0 = 80% of MemTotal */
	uint64_t headroom_bytes;
	uint64_t max_message_bytes;
	int max_attempts;
	uint32_t tcp_owner_uid;
	char worker_path[CONFIG_PATH_MAX];
	char log_level[16];
	int socket_mode;           /* permissions of ipc socket files */
	int contexts;              /* concurrent requests in flight */
	int system;                /* running as root: system paths */
	double auto_cpu_max_flops; /* "auto" jobs above this wait for a GPU */
	int retention_days;        /* finished jobs' spool dirs; 0 = forever */
};

/* Defaults from the environment (uid, XDG_RUNTIME_DIR, XDG_STATE_HOME,
 * /proc/self/exe, /proc/meminfo). 0 or NQ_EIO with msg. */
int config_defaults(struct config *c, char *msg, size_t msglen);
/* Apply one setting ("cpu_slots", "2"). from_cmdline only changes how a
 * repeated "listen" is treated. 0 or NQ_EBADPARAM with msg. */
int config_set(struct config *c, const char *key, const char *value, char *msg,
               size_t msglen);
/* Read a file. Unknown keys and bad values are errors naming the line.
 * 0, NQ_EIO or NQ_EBADPARAM with msg. */
int config_load(struct config *c, const char *path, char *msg, size_t msglen);
/* Checks that need every setting (called after file + command line). */
int config_finish(struct config *c, char *msg, size_t msglen);
/* The effective settings in the file's format. */
void config_print(const struct config *c, FILE *f);

/* "1G", "512M", "1073741824" → bytes (K/M/G/T powers of 1024, optional
 * trailing "B"/"iB"). 0 or -1. */
int config_parse_bytes(const char *s, uint64_t *out);

#endif
