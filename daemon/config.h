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
	uint64_t max_upload_bytes; /* requests held at once; 0 = no limit */
	int max_attempts;
	int max_job_seconds;     /* a job's time limit at most; 0 = none */
	int heartbeat_timeout_s; /* a silent worker is hung after this */
	uint32_t tcp_owner_uid;
	char worker_path[CONFIG_PATH_MAX];
	char log_level[16];
	int socket_mode;           /* permissions of ipc socket files */
	int contexts;              /* concurrent requests in flight */
	int system;                /* running as root: system paths */
	double auto_cpu_max_flops; /* "auto" jobs above this wait for a GPU */
	int retention_days;        /* finished jobs' spool dirs; 0 = forever */
	char admin_group[64];      /* "" = root and the daemon's user only */
	int max_queued_jobs_per_user;      /* 0 = unlimited */
	uint64_t max_spool_bytes_per_user; /* 0 = unlimited */
	int tcp_unauthenticated;           /* tcp:// listening allowed */
	char http_listen[256];             /* monitoring host:port; "" = off */
	uint64_t min_free_bytes; /* state fs free space watermark; 0 = off */
	/* where jobs run (executor.h): "local" or "slurm" */
	char executor[16];
	char slurm_spool_dir[CONFIG_PATH_MAX]; /* shared; required for slurm */
	char slurm_partition[64], slurm_account[64], slurm_qos[64];
	char slurm_sbatch_args[512]; /* extra sbatch options */
	int slurm_poll_s;            /* one batched squeue per interval */
	char slurm_bin_dir[CONFIG_PATH_MAX]; /* "" = PATH */
};

/* 1 when executor = slurm. */
int config_is_slurm(const struct config *c);
/* Where the job dirs live (<root>/jobs/<id>): slurm_spool_dir with the
 * slurm executor, else state_dir. */
const char *config_spool_root(const struct config *c);

/*
 * The settings, one row each, in --print-config order: the defaults, the
 * parser and --print-config all read this table (config.c), and
 * config_test checks deploy/neuroqd.conf.example against it.
 */
enum config_type {
	CONFIG_LISTEN,   /* URLs; the first setting replaces the default */
	CONFIG_PATH,     /* a string, not empty */
	CONFIG_STR,      /* a string, may be empty */
	CONFIG_INT,      /* int, lo..hi (decimal, 0x hex or 0 octal) */
	CONFIG_UID,      /* uint32_t, lo..hi */
	CONFIG_BYTES,    /* uint64_t, config_parse_bytes */
	CONFIG_NUMBER,   /* double, finite */
	CONFIG_LOGLEVEL, /* a log level's name */
	CONFIG_MODE,     /* int, octal permissions 0..0777 */
	CONFIG_BOOL,     /* int 0/1: yes/no, true/false, on/off, 1/0 */
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t off, size; /* the field in struct config */
	long lo, hi;      /* CONFIG_INT, CONFIG_UID */
	/* What a bad value is told: "<name>: expected <expect>, got '<v>'" */
	const char *expect;
	/* The default as the file would spell it; NULL: config_defaults
	 * computes it from the environment (or config_finish does). */
	const char *def;
};

extern const struct config_key config_keys[];
extern const size_t config_nkeys;

/* The row of a setting, or NULL. */
const struct config_key *config_key_find(const char *name);

/* Defaults from the environment (uid, XDG_RUNTIME_DIR, XDG_STATE_HOME,
 * /proc/self/exe, /proc/meminfo) and the table. 0 or NQ_EIO with msg. */
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

/* The default worker_path into out: neuroq-worker in the directory of exe
 * (the daemon's executable) when that file exists, else fallback (the
 * installed worker, NEUROQ_WORKER_DEFAULT at build time); without a
 * fallback, beside exe anyway. 0 or -1 (too long). */
int config_worker_default(const char *exe, const char *fallback, char *out,
                          size_t n);

/* "1G", "512M", "1073741824" → bytes (K/M/G/T powers of 1024, optional
 * trailing "B"/"iB"). 0 or -1. */
int config_parse_bytes(const char *s, uint64_t *out);

#endif
