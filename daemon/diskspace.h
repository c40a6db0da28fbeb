/*
 * diskspace.h — free space on a path's filesystem (statvfs) and the
 * messages that name it: a full disk is reported as ENOSPC with the
 * filesystem's mount point and its free bytes, never as a bare EIO.
 */
#ifndef DISKSPACE_H
#define DISKSPACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct diskspace {
	uint64_t free_bytes;  /* f_bavail * f_frsize: what a writer gets */
	uint64_t total_bytes; /* f_blocks * f_frsize */
	char mount[256];      /* the filesystem's mount point; "?" unknown */
};

/* The filesystem holding path (or, when path does not exist, its nearest
 * existing parent). 0, or NQ_EIO with errno set. */
int diskspace_stat(const char *path, struct diskspace *ds);
/* The mount point of abspath (absolute, no symlinks) from a
 * /proc/self/mountinfo stream: the longest mount point that is a prefix
 * of it by whole components (octal escapes such as \040 decoded). 0, or
 * NQ_EIO when none matches (out is then "?"). */
int diskspace_mount_point(FILE *mountinfo, const char *abspath, char *out,
                          size_t n);
/* The free-space watermark: NQ_ENOSPACE (msg naming the filesystem, its
 * free bytes, the watermark and need) when writing need more bytes would
 * leave less than min_free_bytes free, else 0. */
int diskspace_admit(const struct diskspace *ds, uint64_t need,
                    uint64_t min_free_bytes, char *msg, size_t msglen);
/* errno → an nq_error code: NQ_ENOSPACE for ENOSPC and EDQUOT, NQ_EIO for
 * the rest. */
int diskspace_code(int err);
/* "<what> <path>: <strerror(err)>", and for ENOSPC/EDQUOT
 * " (ENOSPC: filesystem <mount> has <N> bytes free)"; returns
 * diskspace_code(err), for `return diskspace_msg(...)`. */
int diskspace_msg(char *msg, size_t msglen, const char *what, const char *path,
                  int err);
/* " (ENOSPC: filesystem <mount> has <N> bytes free)" for path, or "" when
 * its filesystem cannot be read: to append to another layer's message
 * (SQLite's "database or disk is full"). */
void diskspace_note(const char *path, char *buf, size_t n);

#endif
