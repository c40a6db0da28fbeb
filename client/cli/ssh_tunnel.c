/*
 * ssh_tunnel.c — an OpenSSH Unix-socket forward to a remote daemon
 * (see ssh_tunnel.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "nq_clock.h"
#include "nq_error.h"
#include "ssh_tunnel.h"

#define MAX_ARGS 96

int
ssh_url_is(const char *url)
{
	return url && strncmp(url, "ssh://", 6) == 0;
}

static int
copy_part(char *dst, size_t len, const char *s, size_t n)
{
	if (n >= len)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

int
ssh_url_parse(const char *url, struct ssh_dest *d, char *msg, size_t msglen)
{
	const char *p, *end, *at, *colon = NULL, *h;
	size_t hlen;

	memset(d, 0, sizeof(*d));
	if (!ssh_url_is(url)) {
		snprintf(msg, msglen, "not an ssh:// URL: %s", url ? url : "");
		return NQ_EBADPARAM;
	}
	p = url + 6;
	end = strchr(p, '/');
	if (!end)
		end = p + strlen(p);
	at = memchr(p, '@', (size_t) (end - p));
	if (at) {
		if (at == p ||
		    copy_part(d->user, sizeof(d->user), p, (size_t) (at - p)))
			goto bad;
		p = at + 1;
	}
	if (*p == '[') { /* [v6 address][:port] */
		const char *rb = memchr(p, ']', (size_t) (end - p));
		if (!rb)
			goto bad;
		h = p + 1;
		hlen = (size_t) (rb - h);
		if (rb + 1 < end) {
			if (rb[1] != ':')
				goto bad;
			colon = rb + 1;
		}
	} else {
		h = p;
		colon = memchr(p, ':', (size_t) (end - p));
		hlen = (size_t) ((colon ? colon : end) - p);
	}
	if (hlen == 0 || h[0] == '-' ||
	    copy_part(d->host, sizeof(d->host), h, hlen))
		goto bad;
	if (colon) {
		size_t n = (size_t) (end - colon - 1);
		if (n == 0 || strspn(colon + 1, "0123456789") < n ||
		    copy_part(d->port, sizeof(d->port), colon + 1, n) ||
		    strtol(d->port, NULL, 10) < 1 || /* digits only */
		    strtol(d->port, NULL, 10) > 65535)
			goto bad;
	}
	if (*end == '\0' || strcmp(end, "/") == 0) {
		snprintf(d->path, sizeof(d->path), "%s", SSH_DEFAULT_REMOTE);
	} else if (strchr(end, ':') ||
	           copy_part(d->path, sizeof(d->path), end, strlen(end))) {
		goto bad;
	}
	return NQ_OK;
bad:
	snprintf(msg, msglen,
	         "bad URL %s (want ssh://[user@]host[:port][/remote/socket], "
	         "the socket path without ':')",
	         url);
	return NQ_EBADPARAM;
}

int
ssh_tunnel_argv(const struct ssh_dest *d, const char *local, const char *ssh,
                char *opts, int connect_timeout_s, char **argv, int max)
{
	static char timeout_opt[32];
	static char fwd[512];
	/* clang-format off */
	static const char *fixed[] = {
	        "-N",
	        "-o", "BatchMode=yes",
	        "-o", "ExitOnForwardFailure=yes",
	        "-o", "StreamLocalBindUnlink=yes",
	        "-o", "ControlPath=none",
	        "-o", "ServerAliveInterval=15",
	};
	/* clang-format on */
	char *save = NULL, *tok;
	int n = 0;

	if (max < 24)
		return NQ_EBADPARAM;
	argv[n++] = (char *) ssh;
	/* the user's options first: for -o, ssh keeps the first value given */
	for (tok = opts ? strtok_r(opts, " \t\n", &save) : NULL; tok;
	     tok = strtok_r(NULL, " \t\n", &save)) {
		if (n >= max - 22)
			return NQ_EBADPARAM;
		argv[n++] = tok;
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		argv[n++] = (char *) fixed[i];
	snprintf(timeout_opt, sizeof(timeout_opt), "ConnectTimeout=%d",
	         connect_timeout_s > 0 ? connect_timeout_s : 1);
	argv[n++] = "-o";
	argv[n++] = timeout_opt;
	if (d->user[0]) {
		argv[n++] = "-l";
		argv[n++] = (char *) d->user;
	}
	if (d->port[0]) {
		argv[n++] = "-p";
		argv[n++] = (char *) d->port;
	}
	snprintf(fwd, sizeof(fwd), "%s:%s", local, d->path);
	argv[n++] = "-L";
	argv[n++] = fwd;
	argv[n++] = "--";
	argv[n++] = (char *) d->host;
	argv[n] = NULL;
	return NQ_OK;
}

/* The last lines ssh wrote, on one line ("a; b"), minus the known-hosts
 * chatter. */
static void
read_ssh_err(const struct ssh_tunnel *t, char *out, size_t outlen)
{
	char path[192], buf[2048], *line, *save = NULL;
	ssize_t n = 0;
	size_t used = 0;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/ssh.err", t->dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	/* the tail is what matters */
	if (lseek(fd, 0, SEEK_END) > (off_t) sizeof(buf) - 1)
		lseek(fd, -(off_t) (sizeof(buf) - 1), SEEK_END);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		if (!*line ||
		    strncmp(line, "Warning: Permanently added", 26) == 0)
			continue;
		if (used && used + 2 < outlen) {
			memcpy(out + used, "; ", 3);
			used += 2;
		}
		used += (size_t) snprintf(out + used, outlen - used, "%s",
		                          line);
		if (used >= outlen)
			break; /* truncated */
	}
}

static int
make_dir(struct ssh_tunnel *t)
{
	const char *tmp = getenv("TMPDIR");

	/* sun_path is ~108 bytes: a long TMPDIR falls back to /tmp */
	if (!tmp || !*tmp || strlen(tmp) > 60)
		tmp = "/tmp";
	snprintf(t->dir, sizeof(t->dir), "%s/neuroq-ssh-XXXXXX", tmp);
	if (!mkdtemp(t->dir)) {
		t->dir[0] = '\0';
		return -1;
	}
	snprintf(t->local, sizeof(t->local), "%s/ctl.sock", t->dir);
	snprintf(t->url, sizeof(t->url), "ipc://%s", t->local);
	return 0;
}

static int
spawn(struct ssh_tunnel *t, char **argv)
{
	char errpath[192];
	pid_t parent = getpid(), pid;
	int errfd, nullfd;

	snprintf(errpath, sizeof(errpath), "%s/ssh.err", t->dir);
	errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (errfd < 0)
		return -1;
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd < 0) {
		close(errfd);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
#ifdef __linux__
		/* ssh dies with us, even when we are killed */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
#endif
		(void) parent;
		dup2(nullfd, 0);
		dup2(nullfd, 1);
		dup2(errfd, 2);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(errfd);
	close(nullfd);
	if (pid < 0)
		return -1;
	t->pid = (int) pid;
	return 0;
}

/* 1: the daemon's first bytes came through; 0: not listening yet;
 * -1: the forward is up but the remote end closed (socket missing, no
 * permission). */
static int
probe(const struct ssh_tunnel *t, int wait_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd pfd;
	char b[8];
	int fd, rv = 0;

	if (strlen(t->local) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, t->local, strlen(t->local) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0)
		goto out;
	/* an NNG pipe sends its 8-byte SP header at once */
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, wait_ms) == 1)
		rv = recv(fd, b, sizeof(b), 0) > 0 ? 1 : -1;
	else
		rv = -2; /* up, but no answer yet */
out:
	close(fd);
	return rv;
}

int
ssh_tunnel_open(struct ssh_tunnel *t, const char *url, double timeout_s,
                char *msg, size_t msglen)
{
	struct ssh_dest d;
	char *argv[MAX_ARGS], *opts = NULL, sshout[600];
	const char *ssh = getenv("NEUROQ_SSH"), *o = getenv("NEUROQ_SSH_OPTS");
	int64_t deadline;
	int rv, status, ct = (int) (timeout_s + 0.999);

	memset(t, 0, sizeof(*t));
	if ((rv = ssh_url_parse(url, &d, msg, msglen)) != NQ_OK)
		return rv;
	if (!ssh || !*ssh)
		ssh = "ssh";
	if (o && !(opts = strdup(o)))
		goto nomem;
	if (make_dir(t) != 0) {
		snprintf(msg, msglen, "cannot make a private directory: %s",
		         strerror(errno));
		free(opts);
		return NQ_EIO;
	}
	if (ssh_tunnel_argv(&d, t->local, ssh, opts, ct, argv, MAX_ARGS)) {
		snprintf(msg, msglen, "too many words in NEUROQ_SSH_OPTS");
		rv = NQ_EBADPARAM;
		goto fail;
	}
	if (spawn(t, argv) != 0) {
		snprintf(msg, msglen, "cannot start %s: %s", ssh,
		         strerror(errno));
		rv = NQ_EIO;
		goto fail;
	}
	deadline = nq_mono_ms() + (int64_t) (timeout_s * 1000.0);
	for (;;) {
		int left = (int) (deadline - nq_mono_ms());
		int pr = probe(t, left > 0 ? (left < 2000 ? left : 2000) : 1);

		if (pr == 1)
			break;
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			t->pid = 0;
			read_ssh_err(t, sshout, sizeof(sshout));
			snprintf(msg, msglen, "ssh to %s failed (%s %d): %s",
			         d.host, WIFEXITED(status) ? "exit" : "signal",
			         WIFEXITED(status) ? WEXITSTATUS(status)
			                           : WTERMSIG(status),
			         sshout[0] ? sshout : "no message");
			rv = NQ_EIO;
			goto fail;
		}
		if (pr == -1) {
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL); /* let ssh say why */
			read_ssh_err(t, sshout, sizeof(sshout));
			snprintf(msg, msglen,
			         "ssh to %s is up but %s on %s did not answer "
			         "(is neuroqd running there, and may you open "
			         "its socket?): %s",
			         d.host, d.path, d.host,
			         sshout[0] ? sshout : "connection closed");
			rv = NQ_EIO;
			goto fail;
		}
		if (nq_mono_ms() >= deadline) {
			read_ssh_err(t, sshout, sizeof(sshout));
			snprintf(msg, msglen,
			         "the ssh tunnel to %s did not come up within "
			         "%g s%s%s",
			         d.host, timeout_s, sshout[0] ? ": " : "",
			         sshout);
			rv = NQ_ETIMEDOUT;
			goto fail;
		}
		if (pr == 0) {
			struct timespec ts = {0, 20 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	free(opts);
	return NQ_OK;
nomem:
	snprintf(msg, msglen, "out of memory");
	return NQ_ENOMEM;
fail:
	free(opts);
	ssh_tunnel_close(t);
	return rv;
}

int
ssh_tunnel_alive(struct ssh_tunnel *t)
{
	int status;

	if (t->pid <= 0)
		return 0;
	if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
		t->pid = 0;
		return 0;
	}
	return 1;
}

static void
remove_dir(const struct ssh_tunnel *t)
{
	static const char *names[] = {"ctl.sock", "ssh.err"};
	char path[192];

	if (!t->dir[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		/* snprintf is not async-signal-safe: build by hand */
		size_t a = strlen(t->dir), b = strlen(names[i]);
		if (a + 1 + b >= sizeof(path))
			continue;
		memcpy(path, t->dir, a);
		path[a] = '/';
		memcpy(path + a + 1, names[i], b + 1);
		unlink(path);
	}
	rmdir(t->dir);
}

void
ssh_tunnel_kill_now(struct ssh_tunnel *t)
{
	if (t->pid > 0)
		kill(t->pid, SIGTERM);
	remove_dir(t);
}

void
ssh_tunnel_close(struct ssh_tunnel *t)
{
	int status;

	if (t->pid > 0) {
		kill(t->pid, SIGTERM);
		for (int i = 0; i < 100; i++) { /* up to 1 s, then SIGKILL */
			struct timespec ts = {0, 10 * 1000000L};
			if (waitpid(t->pid, &status, WNOHANG) != 0)
				break;
			if (i == 99) {
				kill(t->pid, SIGKILL);
				waitpid(t->pid, &status, 0);
			}
			nanosleep(&ts, NULL);
		}
		t->pid = 0;
	}
	remove_dir(t);
	t->dir[0] = '\0';
}
