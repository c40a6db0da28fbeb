/*
 * runas.h — neuroq-worker becomes the job's owner (the way a Slurm job step
 * runs as its user): uid, gid and groups of the owner, plus the service's
 * group so it can still reach its own job's spool through its working
 * directory (the state dir stays 0700: no path leads there).
 */
#ifndef RUNAS_H
#define RUNAS_H

#include <stddef.h>
#include <sys/types.h>

/* Drop to uid (and its primary gid and supplementary groups from the group
 * database, plus service_gid unless it is (gid_t) -1): setgroups, setgid,
 * setuid, in that order, with every capability dropped (ambient ones
 * too) and no_new_privs set; then verifies that no privilege is left
 * (real, effective and saved ids; setuid(0) must fail) and makes the
 * process non-dumpable, so the owner cannot ptrace it or read its open
 * spool files through /proc. Nothing to do when uid is already the
 * effective uid. 0, or NQ_EPERM with msg (no passwd entry; no
 * CAP_SETUID/CAP_SETGID); on any error the process may be half-dropped and
 * must exit. Note: a credential change clears PR_SET_PDEATHSIG, set it
 * again afterwards. */
int runas_owner(uid_t uid, gid_t service_gid, char *msg, size_t msglen);

/* 1 when uid has a passwd entry (a job can run as it), else 0. Thread-safe
 * (getpwuid_r). */
int runas_user_known(uid_t uid);

#endif
