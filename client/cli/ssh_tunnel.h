/*
 * ssh_tunnel.h — reach a remote daemon's ipc:// socket through the user's
 * own SSH login (URL ssh://[user@]host[:port][/remote/control.sock]).
 *
 * OpenSSH forwards a local Unix socket to the remote one
 * (ssh -N -L LOCAL:REMOTE); sshd connects to the daemon's socket as the
 * logged-in user, so the daemon sees that user's uid as the peer: the jobs
 * are theirs, as over a local ipc:// socket.  The local socket lives in a
 * private directory (0700) removed by ssh_tunnel_close().
 *
 * Environment: NEUROQ_SSH (the ssh program, default "ssh"), NEUROQ_SSH_OPTS
 * (extra ssh arguments, split on blanks, no quoting; placed first, so an
 * `-o Name=value` there wins over the defaults, e.g. -o BatchMode=no).
 */
#ifndef NQ_SSH_TUNNEL_H
#define NQ_SSH_TUNNEL_H

#include <stddef.h>

#define SSH_DEFAULT_REMOTE "/run/neuroq/neuroq.sock"

struct ssh_dest {
	char user[64];
	char host[256];
	char port[8];   /* "" when not given */
	char path[256]; /* remote socket, absolute */
};

struct ssh_tunnel {
	int pid;         /* the ssh process; 0 when none */
	char dir[128];   /* private directory */
	char local[160]; /* dir/ctl.sock */
	char url[168];   /* ipc://dir/ctl.sock, for nng_dial */
};

/* 1 when url starts with "ssh://". */
int ssh_url_is(const char *url);
/* Split an ssh:// URL. NQ_OK, or NQ_EBADPARAM with msg. */
int ssh_url_parse(const char *url, struct ssh_dest *d, char *msg,
                  size_t msglen);
/* The ssh command line for dest forwarding local -> dest->path, in argv
 * (at most max - 1 entries, NULL-terminated; pointers into dest, local,
 * opts — a writable copy of NEUROQ_SSH_OPTS, cut here — and static text).
 * NQ_OK or NQ_EBADPARAM (too many options). */
int ssh_tunnel_argv(const struct ssh_dest *d, const char *local,
                    const char *ssh, char *opts, int connect_timeout_s,
                    char **argv, int max);
/* Start ssh and wait (bounded by timeout_s) until the forward answers: a
 * probe connection gets the daemon's first bytes through it. NQ_OK, or an
 * error code with a one-line msg that includes what ssh printed. */
int ssh_tunnel_open(struct ssh_tunnel *t, const char *url, double timeout_s,
                    char *msg, size_t msglen);
/* 1 while the ssh process runs. */
int ssh_tunnel_alive(struct ssh_tunnel *t);
/* Stop ssh, remove the directory. Safe on a zeroed or closed tunnel. */
void ssh_tunnel_close(struct ssh_tunnel *t);
/* The same from a signal handler: no waiting, async-signal-safe calls. */
void ssh_tunnel_kill_now(struct ssh_tunnel *t);

#endif
