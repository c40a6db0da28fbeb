/*
 * userpath.h — paths a user supplied (a recording, a probe, an output_dir),
 * checked and opened in neuroq-worker after it dropped to the job's owner
 * (runas.h): never one that resolves into a directory of the service (the
 * state dir with its spool and database, the socket dirs).
 *
 * Directories are compared by (st_dev, st_ino), so a "..", a symlink and a
 * bind mount of a denied directory are all caught. Messages name the
 * parameter and the path as the user wrote it, never what lies behind a
 * directory they cannot read.
 */
#ifndef USERPATH_H
#define USERPATH_H

#include <stddef.h>
#include <sys/types.h>

/* A denied directory, by identity. */
struct userpath_id {
	dev_t dev;
	ino_t ino;
};

enum userpath_want {
	USERPATH_READ = 0,      /* an existing file to read */
	USERPATH_WRITE_DIR = 1, /* a directory to write into, made if missing */
};

/* stat() each of dirs (as the service user, before dropping privileges)
 * into ids[]; a directory that does not exist is left out. Returns the
 * number of ids filled (≤ n). */
size_t userpath_deny_init(const char *const *dirs, size_t n,
                          struct userpath_id *ids);

/* Resolve path (realpath; for USERPATH_WRITE_DIR that does not exist yet:
 * the nearest existing ancestor, plus the missing components, which may
 * not be "." or "..") into resolved, an absolute path with no symlink left,
 * and refuse it when it or any directory above it is one of deny. 0, or
 * NQ_EBADPARAM with msg ("output_dir '/x/..': …"). */
int userpath_check(const char *param, const char *path,
                   const struct userpath_id *deny, size_t ndeny, int want,
                   char *resolved, size_t rlen, char *msg, size_t msglen);

/* Open resolved (from userpath_check) from "/" down, one component at a
 * time without following a symlink, each directory on the way compared
 * with deny again (a path that changed since the check is refused).
 * USERPATH_READ: *fd is the file, O_RDONLY. USERPATH_WRITE_DIR: missing
 * components are made with exactly dmode, and *fd is the directory
 * (O_RDONLY | O_DIRECTORY), ready for openat(). 0 or NQ_EBADPARAM/NQ_EIO
 * with msg. */
int userpath_open(const char *param, const char *resolved,
                  const struct userpath_id *deny, size_t ndeny, int want,
                  mode_t dmode, int *fd, char *msg, size_t msglen);

/* 1 when fd (a directory or file) is one of deny. */
int userpath_is_denied(int fd, const struct userpath_id *deny, size_t ndeny);

#endif
