/*
 * quota.h — per-user limits checked at submit (config.h:
 * max_queued_jobs_per_user, max_spool_bytes_per_user; 0 = unlimited): the
 * arithmetic and the message, and the size of a job's spool dir. The
 * figures come from the store (store_owner_usage): each job row keeps the
 * bytes its spool dir holds (spool_bytes), the submit's message size at
 * submit and the measured dir once the job ends; purged jobs count 0.
 */
#ifndef QUOTA_H
#define QUOTA_H

#include <stddef.h>
#include <stdint.h>

struct quota_limits {
	int64_t max_queued; /* QUEUED jobs per user; 0 = unlimited */
	uint64_t max_bytes; /* spool bytes per user; 0 = unlimited */
};

struct quota_use {
	int64_t queued; /* the user's QUEUED jobs */
	uint64_t bytes; /* what the user's jobs hold in the spool */
};

/* May the user queue one more job that adds add_bytes to the spool? 0, or
 * NQ_EQUOTA with a message that names the limit, its setting and the
 * current use ("you have 1000 queued jobs; the limit is 1000 ..."). */
int quota_check(const struct quota_limits *l, const struct quota_use *u,
                uint64_t add_bytes, char *msg, size_t msglen);

/* The sizes of the regular files under dir, symlinks not followed (at most
 * 16 levels deep). 0, or NQ_EIO when dir cannot be read (*out: what was
 * counted). */
int quota_dir_bytes(const char *dir, uint64_t *out);

/* "1.5 GiB", "12.0 MiB", "512 bytes". */
void quota_fmt_bytes(char *buf, size_t n, uint64_t b);

#endif
