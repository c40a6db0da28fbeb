/* spool.c — see spool.h. */
#include "spool.h"

#include "diskspace.h"

#include "nq_error.h"
#include "nq_json.h"
#include "nq_npy.h"
#include "nq_sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPOOL_MAX_RESULT_MP (64u << 20)

/* The spool's modes, the one place for them (README.md, "Spool layout"):
 * the state dir and jobs/ are the service user's alone; a job's dir and
 * the dirs in it are shared with that job's worker only through the
 * service group (the worker, become the owner, keeps the service gid and
 * works in its job dir by "."; setgid: what it makes there stays in the
 * service group); the files the daemon writes there are readable by the
 * group, writable by the daemon only. */
#define SPOOL_PRIVATE_MODE 0700  /* <state_dir>, <state_dir>/jobs */
#define SPOOL_JOB_DIR_MODE 02770 /* jobs/<id> and its dirs (in/, ckpt/) */
#define SPOOL_FILE_MODE    0640  /* params.mp, in/<name>.npy, out/, error */
#define SPOOL_SHARED_MODE  0711  /* slurm_spool_dir, its jobs/ */

static int spool_write_file(const char *path, const void *buf, size_t len);
static int spool_read_file(const char *dir, const char *name, size_t max,
                           char **out, size_t *outlen);

int
spool_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		      ch == '.'))
			return 0;
	}
	return 1;
}

static int
spool_path(char *buf, size_t n, const char *dir, const char *a, const char *b)
{
	size_t ld = strlen(dir), la = strlen(a), lb = b == NULL ? 0 : strlen(b);

	if (ld + 1 + la + lb >= n) {
		if (n > 0)
			buf[0] = '\0';
		return NQ_EINTERNAL;
	}
	memcpy(buf, dir, ld);
	buf[ld] = '/';
	memcpy(buf + ld + 1, a, la);
	if (lb > 0)
		memcpy(buf + ld + 1 + la, b, lb);
	buf[ld + 1 + la + lb] = '\0';
	return 0;
}

int
spool_job_dir(const char *state_dir, int64_t id, char *buf, size_t n)
{
	int w = snprintf(buf, n, "%s/jobs/%" PRId64, state_dir, id);

	return (w < 0 || (size_t) w >= n) ? NQ_EINTERNAL : 0;
}

int
spool_init(const char *state_dir)
{
	char jobs[4096];

	if (spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL) != 0) {
		errno = ENAMETOOLONG;
		return NQ_EIO;
	}
	/* an existing dir keeps its mode through mkdir: set it */
	if (spool_mkdir_p(jobs, SPOOL_PRIVATE_MODE) != 0 ||
	    chmod(state_dir, SPOOL_PRIVATE_MODE) != 0 ||
	    chmod(jobs, SPOOL_PRIVATE_MODE) != 0)
		return NQ_EIO;
	return 0;
}

int
spool_init_shared(const char *root)
{
	char jobs[4096];

	if (spool_path(jobs, sizeof(jobs), root, "jobs", NULL) != 0) {
		errno = ENAMETOOLONG;
		return NQ_EIO;
	}
	if (spool_mkdir_p(jobs, SPOOL_SHARED_MODE) != 0 ||
	    chmod(root, SPOOL_SHARED_MODE) != 0 ||
	    chmod(jobs, SPOOL_SHARED_MODE) != 0)
		return NQ_EIO;
	return 0;
}

static uid_t spool_chown_uid;

static int
spool_chown_one(const char *path, const struct stat *st, int flag,
                struct FTW *ftw)
{
	(void) flag;
	(void) ftw;
	if (st->st_uid == spool_chown_uid)
		return 0;
	/* never through a link: lchown */
	return lchown(path, spool_chown_uid, (gid_t) -1) == 0 ? 0 : -1;
}

int
spool_give_to_owner(const char *job_dir, uid_t uid)
{
	spool_chown_uid = uid;
	/* depth first: a dir is handed over after what is in it, so the
	 * owner cannot swap an entry for a link while the walk still has to
	 * pass through it */
	return nftw(job_dir, spool_chown_one, 16, FTW_PHYS | FTW_DEPTH) == 0
	               ? 0
	               : NQ_EIO;
}

/* strerror, with what spool_open_in's refusals mean */
static const char *
spool_strerror(int e)
{
	if (e == EPERM || e == ELOOP || e == ENOTDIR)
		return "not a plain file in the job dir (a link, or a file "
		       "linked elsewhere too)";
	return strerror(e);
}

/* name in dfd as a plain file with one link, never through a link: the
 * fd, or -1 with errno (ELOOP: a link; EPERM: not a plain file or linked
 * elsewhere too). */
static int
spool_openat_file(int dfd, const char *name)
{
	struct stat st;
	/* O_NONBLOCK: a fifo planted there does not hang the open */
	int fd = openat(dfd, name,
	                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* name in dfd as a dir, never through a link: the fd, or -1 with errno. */
static int
spool_openat_dir(int dfd, const char *name)
{
	return openat(dfd, name,
	              O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int
spool_open_in(const char *dir, const char *rel, int want_dir)
{
	char part[256];
	const char *p = rel;
	int dfd, fd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t) (slash - p) : strlen(p);
		if (n == 0 || n >= sizeof(part) || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			close(dfd);
			errno = EINVAL;
			return -1;
		}
		memcpy(part, p, n);
		part[n] = '\0';
		if (slash == NULL)
			break;
		fd = spool_openat_dir(dfd, part);
		close(dfd);
		if (fd < 0)
			return -1;
		dfd = fd;
		p = slash + 1;
	}
	fd = want_dir ? spool_openat_dir(dfd, part)
	              : spool_openat_file(dfd, part);
	int e = errno;
	close(dfd);
	errno = e;
	return fd;
}

int
spool_dir_in(const char *dir, const char *rel)
{
	int fd = spool_open_in(dir, rel, 1);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

int
spool_write_umask(const char *dir, unsigned um)
{
	char path[4096], buf[16];
	int n = snprintf(buf, sizeof(buf), "%03o\n", um & 0777u);

	if (spool_path(path, sizeof(path), dir, "umask", NULL) != 0)
		return NQ_EIO;
	errno = spool_write_file(path, buf, (size_t) n);
	return errno == 0 ? 0 : NQ_EIO;
}

unsigned
spool_read_umask(const char *job_dir)
{
	char *buf = NULL, *end;
	size_t len;
	unsigned long v;

	if (spool_read_file(job_dir, "umask", 16, &buf, &len) != 0)
		return SPOOL_UMASK_DEFAULT;
	v = strtoul(buf, &end, 8);
	if (end == buf || (*end != '\n' && *end != '\0') || v > 0777)
		v = SPOOL_UMASK_DEFAULT;
	free(buf);
	return (unsigned) v;
}

int
spool_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return NQ_EIO;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return NQ_EIO;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return NQ_EIO;
	return 0;
}

/* Empty the dir open as dfd (closed here), never leaving it: every entry
 * by its name in dfd, a subdir entered only as a dir (O_NOFOLLOW), so an
 * entry swapped for a link while we work is unlinked, not followed. The
 * errno of the last failure, or 0. */
static int
spool_rm_in(int dfd, int depth)
{
	DIR *d;
	struct dirent *e;
	int err = 0;

	if (depth > 64) {
		close(dfd);
		return ELOOP;
	}
	d = fdopendir(dfd);
	if (d == NULL) {
		err = errno;
		close(dfd);
		return err;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 || errno == ENOENT)
			continue;
		int ue = errno;
		int sub = spool_openat_dir(dirfd(d), e->d_name);
		if (sub < 0) {
			err = errno == ENOTDIR ? ue : errno;
			continue;
		}
		int se = spool_rm_in(sub, depth + 1);
		if (se != 0)
			err = se;
		if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) != 0 &&
		    errno != ENOENT)
			err = errno;
	}
	closedir(d);
	return err;
}

int
spool_rm_rf(const char *path)
{
	int fd, err;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR || errno == ELOOP)
			return unlink(path) == 0 ? 0 : NQ_EIO;
		return NQ_EIO;
	}
	err = spool_rm_in(fd, 0);
	if (rmdir(path) != 0 && err == 0)
		err = errno;
	if (err != 0) {
		errno = err;
		return NQ_EIO;
	}
	return 0;
}

int
spool_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return NQ_EIO;
	if (fsync(fd) != 0)
		err = errno;
	close(fd);
	if (err != 0) {
		errno = err;
		return NQ_EIO;
	}
	return 0;
}

/* Write a whole file durably: temp + fsync + rename. */
static int
spool_write_file(const char *path, const void *buf, size_t len)
{
	char tmp[4096];
	const char *p = buf;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp))
		return ENAMETOOLONG;
	/* a new file, never through whatever is at tmp (a link planted by
	 * the owner of a job dir under Slurm) */
	if (unlink(tmp) != 0 && errno != ENOENT)
		return errno;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	          SPOOL_FILE_MODE);
	if (fd < 0)
		return errno;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += w;
		len -= (size_t) w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail : {
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return e;
}
}

/* Read the whole of name in dir (spool_open_in: no link followed) of at
 * most max bytes. 0 or an errno. */
static int
spool_read_file(const char *dir, const char *name, size_t max, char **out,
                size_t *outlen)
{
	int fd = spool_open_in(dir, name, 0);
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return errno;
	for (;;) {
		if (len == cap) {
			if (cap >= max + 1)
				break;
			cap = cap == 0 ? 4096 : cap * 2;
			if (cap > max + 1)
				cap = max + 1;
			char *nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				free(buf);
				close(fd);
				return ENOMEM;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return e;
		}
		len += (size_t) r;
		if (r == 0)
			break;
	}
	close(fd);
	if (len > max) {
		free(buf);
		return EFBIG;
	}
	if (buf == NULL) {
		buf = malloc(1);
		if (buf == NULL)
			return ENOMEM;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

int
spool_stage(const char *state_dir, const struct nq_map *params,
            const struct nq_map *inputs, char *tmp, size_t tmplen, char *msg,
            size_t msglen)
{
	char jobs[4096], path[4096];
	void *buf = NULL;
	char *manifest = NULL;
	size_t len = 0;
	int rc, e;

	tmp[0] = '\0';
	if (spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL) != 0 ||
	    spool_path(tmp, tmplen, jobs, ".new-XXXXXX", NULL) != 0) {
		snprintf(msg, msglen, "state dir path too long");
		return NQ_EIO;
	}
	if (mkdtemp(tmp) == NULL) {
		rc = diskspace_msg(msg, msglen, "cannot create", tmp, errno);
		tmp[0] = '\0';
		return rc;
	}
	if (chmod(tmp, SPOOL_JOB_DIR_MODE) != 0) {
		snprintf(msg, msglen, "cannot chmod %s: %s", tmp,
		         strerror(errno));
		rc = NQ_EIO;
		goto fail;
	}
	/* params go to disk as their own msgpack document, re-encoded so
	 * that the worker reads exactly what validate() saw */
	{
		struct nq_value v = {.kind = NQ_MAP};
		v.u.map = (struct nq_map *) params;
		rc = nq_encode(&v, &buf, &len);
	}
	if (rc != 0) {
		snprintf(msg, msglen, "cannot encode params");
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "params.mp", NULL);
	e = spool_write_file(path, buf, len);
	free(buf);
	if (e != 0) {
		rc = diskspace_msg(msg, msglen, "cannot write", path, e);
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "in", NULL);
	if (mkdir(path, SPOOL_JOB_DIR_MODE) != 0 ||
	    chmod(path, SPOOL_JOB_DIR_MODE) != 0) {
		rc = diskspace_msg(msg, msglen, "cannot create", path, errno);
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "ckpt", NULL);
	if (mkdir(path, SPOOL_JOB_DIR_MODE) != 0 ||
	    chmod(path, SPOOL_JOB_DIR_MODE) != 0) {
		rc = diskspace_msg(msg, msglen, "cannot create", path, errno);
		goto fail;
	}
	/* in.sha256: "<hex>  in/<name>.npy" lines (sha256sum -c reads it),
	 * the digest of each input as staged; the worker checks it */
	size_t mcap = 128 + (inputs != NULL ? inputs->n : 0) * 160, mlen = 0;
	manifest = malloc(mcap);
	if (manifest == NULL) {
		snprintf(msg, msglen, "out of memory");
		rc = NQ_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; inputs != NULL && i < inputs->n; i++) {
		const char *name = inputs->keys[i];
		if (!spool_name_ok(name)) {
			snprintf(msg, msglen,
			         "input name '%.64s' is not allowed: use 1..64 "
			         "of A-Z a-z 0-9 _ - .",
			         name);
			rc = NQ_EBADPARAM;
			goto fail;
		}
		if (inputs->vals[i].kind != NQ_ARRAY) {
			snprintf(msg, msglen,
			         "input '%s' is not an array {dtype, shape, "
			         "data}",
			         name);
			rc = NQ_EBADARRAY;
			goto fail;
		}
		char rel[128];
		snprintf(rel, sizeof(rel), "in/%s.npy", name);
		spool_path(path, sizeof(path), tmp, rel, NULL);
		errno = 0;
		rc = nq_npy_write(path, &inputs->vals[i].u.arr);
		if (rc == 0 && chmod(path, SPOOL_FILE_MODE) != 0)
			rc = NQ_EIO;
		if (rc != 0) {
			if (errno != 0)
				rc = diskspace_msg(msg, msglen, "cannot write",
				                   path, errno);
			else
				snprintf(msg, msglen, "cannot write %s", path);
			goto fail;
		}
		char hex[NQ_SHA256_HEX];
		if (nq_sha256_file(path, hex) != 0) {
			snprintf(msg, msglen, "cannot read back %s: %s", path,
			         strerror(errno));
			rc = NQ_EIO;
			goto fail;
		}
		mlen += (size_t) snprintf(manifest + mlen, mcap - mlen,
		                          "%s  %s\n", hex, rel);
	}
	spool_path(path, sizeof(path), tmp, SPOOL_MANIFEST, NULL);
	if ((e = spool_write_file(path, manifest, mlen)) != 0) {
		rc = diskspace_msg(msg, msglen, "cannot write", path, e);
		goto fail;
	}
	free(manifest);
	manifest = NULL;
	spool_path(path, sizeof(path), tmp, "in", NULL);
	spool_fsync_dir(path);
	spool_fsync_dir(tmp);
	return 0;
fail:
	free(manifest);
	spool_rm_rf(tmp);
	tmp[0] = '\0';
	return rc;
}

int
spool_commit(const char *tmp, const char *state_dir, int64_t id, char *msg,
             size_t msglen)
{
	char dir[4096], jobs[4096];

	if (spool_job_dir(state_dir, id, dir, sizeof(dir)) != 0)
		return NQ_EINTERNAL;
	/* never over a dir that exists: one of the same id can only come from
	 * a database that lost rows under a kept spool, and it holds another
	 * job's files (start-up moves the next id past every dir, so this is
	 * a loud failure, never a removal) */
	if (syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, dir,
	            1u /* RENAME_NOREPLACE */) != 0) {
		int e = errno;
		if (e == EEXIST)
			snprintf(msg, msglen,
			         "job dir %s exists already (a database that "
			         "lost jobs?): not replaced",
			         dir);
		else
			snprintf(msg, msglen, "cannot rename %s to %s: %s", tmp,
			         dir, strerror(e));
		return NQ_EIO;
	}
	spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL);
	spool_fsync_dir(jobs);
	return 0;
}

void
spool_clean_staging(const char *state_dir)
{
	char jobs[4096], sub[4096];
	DIR *d;
	struct dirent *e;

	if (spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL) != 0)
		return;
	d = opendir(jobs);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, ".new-", 5) != 0)
			continue;
		if (spool_path(sub, sizeof(sub), jobs, e->d_name, NULL) == 0)
			spool_rm_rf(sub);
	}
	closedir(d);
}

int
spool_write_error(const char *job_dir, int code, const char *message)
{
	char path[4096];
	char *buf;
	int n, e;

	if (spool_path(path, sizeof(path), job_dir, "error", NULL) != 0)
		return NQ_EIO;
	n = snprintf(NULL, 0, "%d %s\n%s\n", code, nq_errname(code),
	             message == NULL ? "" : message);
	buf = malloc((size_t) n + 1);
	if (buf == NULL)
		return NQ_ENOMEM;
	snprintf(buf, (size_t) n + 1, "%d %s\n%s\n", code, nq_errname(code),
	         message == NULL ? "" : message);
	e = spool_write_file(path, buf, (size_t) n);
	free(buf);
	errno = e;
	return e == 0 ? 0 : diskspace_code(e);
}

int
spool_read_error(const char *job_dir, int *code, char *message, size_t msglen)
{
	char *buf = NULL, *nl;
	size_t len;
	int c;

	if (spool_read_file(job_dir, "error", 64 * 1024, &buf, &len) != 0)
		return NQ_EIO;
	long v = strtol(buf, &nl, 10); /* the worker's code, 1..INT_MAX */
	if (nl == buf || v <= 0 || v > INT_MAX) {
		free(buf);
		return NQ_EIO;
	}
	c = (int) v;
	nl = strchr(buf, '\n');
	const char *m = nl == NULL ? "" : nl + 1;
	snprintf(message, msglen, "%s", m);
	/* drop the trailing newline */
	size_t ml = strlen(message);
	while (ml > 0 && (message[ml - 1] == '\n' || message[ml - 1] == '\r'))
		message[--ml] = '\0';
	*code = c;
	free(buf);
	return 0;
}

int
spool_read_log(const char *job_dir, size_t max, char **text)
{
	struct stat st;
	char *buf;
	int fd;

	*text = NULL;
	fd = spool_open_in(job_dir, "log", 0);
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		*text = strdup("");
		return *text == NULL ? NQ_ENOMEM : 0;
	}
	size_t size = st.st_size > 0 ? (size_t) st.st_size : 0;
	size_t want = size > max ? max : size;
	buf = malloc(want + 1);
	if (buf == NULL) {
		close(fd);
		return NQ_ENOMEM;
	}
	ssize_t got = pread(fd, buf, want, (off_t) (size - want));
	close(fd);
	if (got < 0)
		got = 0;
	buf[got] = '\0';
	/* the wire carries str: no NUL inside */
	for (ssize_t i = 0; i < got; i++) {
		if (buf[i] == '\0')
			buf[i] = ' ';
	}
	*text = buf;
	return 0;
}

int
spool_read_params(const char *job_dir, struct nq_value *params, char *msg,
                  size_t msglen)
{
	char path[4096];
	char *buf = NULL;
	size_t len = 0;
	int e, rc;

	spool_path(path, sizeof(path), job_dir, "params.mp", NULL);
	e = spool_read_file(job_dir, "params.mp", 1u << 30, &buf, &len);
	if (e != 0) {
		snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e));
		return NQ_EIO;
	}
	rc = nq_decode(buf, len, params, msg, msglen);
	free(buf);
	if (rc == 0 && params->kind != NQ_MAP) {
		nq_value_free(params);
		snprintf(msg, msglen, "%s: not a msgpack map", path);
		return NQ_EBADPARAM;
	}
	return rc;
}

static int
spool_ends_with(const char *s, const char *suffix, size_t *stem)
{
	size_t n = strlen(s), m = strlen(suffix);

	if (n <= m || strcmp(s + n - m, suffix) != 0)
		return 0;
	*stem = n - m;
	return 1;
}

/* Load every <job_dir>/<sub>/<name>.npy into m (spool_open_in: no link
 * followed, no file linked elsewhere). */
static int
spool_load_npys(const char *job_dir, const char *sub, struct nq_map *m,
                char *msg, size_t msglen)
{
	int dfd = spool_open_in(job_dir, sub, 1);
	DIR *d;
	struct dirent *e;
	char path[4096], name[80];
	int rc = 0;

	if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
		int err = errno;
		if (dfd >= 0)
			close(dfd);
		if (err == ENOENT)
			return 0;
		snprintf(msg, msglen, "cannot open %s/%s: %s", job_dir, sub,
		         strerror(err));
		return NQ_EIO;
	}
	while ((e = readdir(d)) != NULL) {
		size_t stem;
		if (!spool_ends_with(e->d_name, ".npy", &stem) ||
		    stem >= sizeof(name))
			continue;
		memcpy(name, e->d_name, stem);
		name[stem] = '\0';
		if (!spool_name_ok(name))
			continue;
		struct nq_array a;
		memset(&a, 0, sizeof(a));
		spool_path(path, sizeof(path), job_dir, sub, e->d_name);
		int fd = spool_openat_file(dirfd(d), e->d_name);
		if (fd < 0) {
			snprintf(msg, msglen, "cannot read %s: %s", path,
			         spool_strerror(errno));
			rc = NQ_EIO;
			break;
		}
		rc = nq_npy_read_fd(fd, path, &a, 0, msg, msglen);
		if (rc != 0)
			break;
		rc = nq_map_set_array(m, name, &a);
		nq_array_fini(&a);
		if (rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

int
spool_read_inputs(const char *job_dir, struct nq_map *inputs, char *msg,
                  size_t msglen)
{
	return spool_load_npys(job_dir, "in", inputs, msg, msglen);
}

int
spool_write_outputs(const char *job_dir, const struct nq_map *out, char *msg,
                    size_t msglen)
{
	char tmp[4096], fin[4096], path[4096];
	struct nq_map *scal = NULL;
	struct nq_json js;
	void *mp = NULL;
	size_t mplen = 0;
	int rc = NQ_EIO, e;

	nq_json_init_buf(&js, NQ_JSON_LINES);
	spool_path(tmp, sizeof(tmp), job_dir, "out.tmp", NULL);
	spool_path(fin, sizeof(fin), job_dir, "out", NULL);
	spool_rm_rf(tmp);
	if (mkdir(tmp, SPOOL_JOB_DIR_MODE) != 0)
		return diskspace_msg(msg, msglen, "cannot create", tmp, errno);
	scal = nq_map_new();
	if (scal == NULL) {
		rc = NQ_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < out->n; i++) {
		const char *name = out->keys[i];
		const struct nq_value *v = &out->vals[i];
		if (v->kind == NQ_ARRAY) {
			char rel[128];
			if (!spool_name_ok(name)) {
				snprintf(msg, msglen,
				         "output name '%.64s' is not a valid "
				         "file name",
				         name);
				rc = NQ_EINTERNAL;
				goto fail;
			}
			snprintf(rel, sizeof(rel), "%s.npy", name);
			spool_path(path, sizeof(path), tmp, rel, NULL);
			errno = 0;
			rc = nq_npy_write(path, &v->u.arr);
			if (rc != 0) {
				if (errno != 0)
					rc = diskspace_msg(msg, msglen,
					                   "cannot write", path,
					                   errno);
				else
					snprintf(msg, msglen, "cannot write %s",
					         path);
				goto fail;
			}
			continue;
		}
		struct nq_value copy;
		rc = nq_value_copy(&copy, v);
		if (rc == 0)
			rc = nq_map_set(scal, name, &copy);
		if (rc != 0) {
			nq_value_free(&copy);
			snprintf(msg, msglen, "out of memory");
			goto fail;
		}
	}
	/* result.json: the scalars, for people and scripts without msgpack */
	nq_json_result(&js, out);
	if (nq_json_finish(&js) != 0) {
		rc = NQ_ENOMEM;
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "result.json", NULL);
	e = spool_write_file(path, js.buf, js.len);
	if (e != 0) {
		rc = diskspace_msg(msg, msglen, "cannot write", path, e);
		goto fail;
	}
	{
		struct nq_value sv = {.kind = NQ_MAP};
		sv.u.map = scal;
		rc = nq_encode(&sv, &mp, &mplen);
	}
	if (rc != 0) {
		snprintf(msg, msglen, "cannot encode result scalars");
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "result.mp", NULL);
	e = spool_write_file(path, mp, mplen);
	if (e != 0) {
		rc = diskspace_msg(msg, msglen, "cannot write", path, e);
		goto fail;
	}
	spool_fsync_dir(tmp);
	spool_rm_rf(fin);
	if (rename(tmp, fin) != 0) {
		snprintf(msg, msglen, "cannot rename %s: %s", tmp,
		         strerror(errno));
		rc = NQ_EIO;
		goto fail;
	}
	spool_fsync_dir(job_dir);
	free(mp);
	nq_json_free(&js);
	nq_map_free(scal);
	return 0;
fail:
	free(mp);
	nq_json_free(&js);
	nq_map_free(scal);
	spool_rm_rf(tmp);
	return rc;
}

static int
spool_read_scalars(const char *job_dir, struct nq_value *sv, char *msg,
                   size_t msglen)
{
	char path[4096];
	char *buf = NULL;
	size_t len = 0;
	int e, rc;

	spool_path(path, sizeof(path), job_dir, "out", "result.mp");
	e = spool_read_file(job_dir, "out/result.mp", SPOOL_MAX_RESULT_MP, &buf,
	                    &len);
	if (e == ENOENT) {
		sv->kind = NQ_MAP;
		sv->u.map = nq_map_new();
		return sv->u.map == NULL ? NQ_ENOMEM : 0;
	}
	if (e != 0) {
		snprintf(msg, msglen, "cannot read %s: %s", path,
		         spool_strerror(e));
		return NQ_EIO;
	}
	rc = nq_decode(buf, len, sv, msg, msglen);
	free(buf);
	if (rc == 0 && sv->kind != NQ_MAP) {
		nq_value_free(sv);
		snprintf(msg, msglen, "%s is not a map", path);
		rc = NQ_EIO;
	}
	return rc;
}

int
spool_read_outputs(const char *job_dir, const struct nq_value *names,
                   struct nq_map *out, char *msg, size_t msglen)
{
	char path[4096];
	struct nq_value sv = {.kind = NQ_NIL};
	int rc;

	rc = spool_read_scalars(job_dir, &sv, msg, msglen);
	if (rc != 0)
		return rc;
	if (names == NULL) {
		rc = spool_load_npys(job_dir, "out", out, msg, msglen);
		for (size_t i = 0; rc == 0 && i < sv.u.map->n; i++)
			rc = nq_map_set(out, sv.u.map->keys[i],
			                &sv.u.map->vals[i]);
		goto done;
	}
	for (size_t i = 0; i < names->u.list.n; i++) {
		const struct nq_value *nv = &names->u.list.items[i];
		struct nq_array a;
		memset(&a, 0, sizeof(a));
		if (nv->kind != NQ_STR) {
			snprintf(msg, msglen, "names: expected strings");
			rc = NQ_EBADPARAM;
			goto done;
		}
		const char *name = nv->u.str.s;
		for (size_t j = 0; j < sv.u.map->n; j++) {
			if (strcmp(sv.u.map->keys[j], name) == 0 &&
			    sv.u.map->vals[j].kind != NQ_NIL) {
				rc = nq_map_set(out, name, &sv.u.map->vals[j]);
				if (rc != 0)
					goto done;
				goto next;
			}
		}
		if (!spool_name_ok(name)) {
			snprintf(msg, msglen, "names: no output named '%.64s'",
			         name);
			rc = NQ_EBADPARAM;
			goto done;
		}
		char rel[128];
		snprintf(rel, sizeof(rel), "out/%s.npy", name);
		spool_path(path, sizeof(path), job_dir, rel, NULL);
		int fd = spool_open_in(job_dir, rel, 0);
		if (fd < 0 && errno == ENOENT) {
			snprintf(msg, msglen, "names: no output named '%s'",
			         name);
			rc = NQ_EBADPARAM;
			goto done;
		}
		if (fd < 0) {
			snprintf(msg, msglen, "cannot read %s: %s", path,
			         spool_strerror(errno));
			rc = NQ_EIO;
			goto done;
		}
		rc = nq_npy_read_fd(fd, path, &a, 0, msg, msglen);
		if (rc == 0)
			rc = nq_map_set_array(out, name, &a);
		nq_array_fini(&a);
		if (rc != 0)
			goto done;
	next:;
	}
done:
	nq_value_free(&sv);
	return rc;
}

int
spool_write_meta(const char *dir, const struct spool_meta *m)
{
	static const char hex[] = "0123456789abcdef";
	char path[4096], buf[768], idem[2 * sizeof(m->idem) + 1];
	size_t k = strnlen(m->idem, sizeof(m->idem) - 1);
	int n;

	for (size_t i = 0; i < k; i++) {
		idem[2 * i] = hex[(unsigned char) m->idem[i] >> 4];
		idem[2 * i + 1] = hex[(unsigned char) m->idem[i] & 15];
	}
	idem[2 * k] = '\0';
	n = snprintf(buf, sizeof(buf),
	             "owner %" PRIu32 "\ntype %s\npriority %d\ndevice %s\n"
	             "host_bytes %" PRIu64 "\ndevice_bytes %" PRIu64
	             "\nflops %.17g\n%s%s%s",
	             m->owner, m->type, m->priority, m->device_req,
	             m->host_bytes, m->device_bytes, m->flops,
	             k > 0 ? "idem " : "", idem, k > 0 ? "\n" : "");
	if (n < 0 || (size_t) n >= sizeof(buf) ||
	    spool_path(path, sizeof(path), dir, "job", NULL) != 0)
		return NQ_EIO;
	errno = spool_write_file(path, buf, (size_t) n);
	return errno == 0 ? 0 : NQ_EIO;
}

/* Even-length lower-case hex of at most n - 1 bytes, decoded into out
 * (NUL-terminated; a decoded NUL is refused). 0 or -1. */
static int
spool_meta_hex(const char *v, char *out, size_t n)
{
	size_t len = strlen(v);

	if (len % 2 != 0 || len / 2 >= n)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		int b = 0;
		for (int j = 0; j < 2; j++) {
			char ch = v[2 * i + (size_t) j];
			int d = ch >= '0' && ch <= '9'   ? ch - '0'
			        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
			                                 : -1;
			if (d < 0)
				return -1;
			b = b * 16 + d;
		}
		if (b == 0)
			return -1;
		out[i] = (char) b;
	}
	out[len / 2] = '\0';
	return 0;
}

/* A word of [A-Za-z0-9_:.-], 1..31 chars, into out. 0 or -1. */
static int
spool_meta_word(const char *v, char *out, size_t n)
{
	size_t len = strlen(v);

	if (len == 0 || len >= n || len > 31)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') ||
		      (v[i] >= 'A' && v[i] <= 'Z') ||
		      (v[i] >= '0' && v[i] <= '9') || v[i] == '_' ||
		      v[i] == ':' || v[i] == '.' || v[i] == '-'))
			return -1;
	memcpy(out, v, len + 1);
	return 0;
}

int
spool_read_meta(const char *job_dir, struct spool_meta *m)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len;
	unsigned seen = 0;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	if (spool_read_file(job_dir, "job", 4096, &buf, &len) != 0)
		return NQ_EIO;
	for (line = strtok_r(buf, "\n", &save); line != NULL && rc == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char *v = strchr(line, ' '), *end;
		if (v == NULL) {
			rc = NQ_EIO;
			break;
		}
		*v++ = '\0';
		errno = 0;
		if (strcmp(line, "owner") == 0) {
			unsigned long long u = strtoull(v, &end, 10);
			if (*end != '\0' || end == v || u > UINT32_MAX)
				rc = NQ_EIO;
			m->owner = (uint32_t) u;
			seen |= 1;
		} else if (strcmp(line, "type") == 0) {
			if (spool_meta_word(v, m->type, sizeof(m->type)))
				rc = NQ_EIO;
			seen |= 2;
		} else if (strcmp(line, "priority") == 0) {
			long p = strtol(v, &end, 10);
			if (*end != '\0' || end == v || p < -1000000 ||
			    p > 1000000)
				rc = NQ_EIO;
			m->priority = (int) p;
		} else if (strcmp(line, "device") == 0) {
			if (spool_meta_word(v, m->device_req,
			                    sizeof(m->device_req)))
				rc = NQ_EIO;
		} else if (strcmp(line, "host_bytes") == 0) {
			m->host_bytes = strtoull(v, &end, 10);
			if (*end != '\0' || end == v)
				rc = NQ_EIO;
		} else if (strcmp(line, "device_bytes") == 0) {
			m->device_bytes = strtoull(v, &end, 10);
			if (*end != '\0' || end == v)
				rc = NQ_EIO;
		} else if (strcmp(line, "flops") == 0) {
			m->flops = strtod(v, &end);
			if (*end != '\0' || end == v || !(m->flops >= 0))
				rc = NQ_EIO;
		} else if (strcmp(line, "idem") == 0) {
			if (spool_meta_hex(v, m->idem, sizeof(m->idem)))
				rc = NQ_EIO;
		} /* other keys: a newer neuroqd's, ignored */
		if (errno != 0)
			rc = NQ_EIO;
	}
	free(buf);
	if (rc == 0 && seen != 3)
		rc = NQ_EIO; /* owner and type are required */
	if (rc == 0 && m->device_req[0] == '\0')
		snprintf(m->device_req, sizeof(m->device_req), "auto");
	return rc;
}

int
spool_dir_is_job(const char *job_dir, uint32_t owner, const char *type)
{
	struct spool_meta m;
	char path[4096];
	struct stat st;

	if (spool_path(path, sizeof(path), job_dir, "job", NULL) != 0)
		return 0;
	if (lstat(path, &st) != 0 && errno == ENOENT)
		return 1; /* staged before job files existed */
	if (spool_read_meta(job_dir, &m) != 0)
		return 0;
	return m.owner == owner && strcmp(m.type, type) == 0;
}

int
spool_lock(const char *state_dir)
{
	char path[4096];
	int fd;

	if (spool_path(path, sizeof(path), state_dir, "neuroqd.lock", NULL) !=
	    0) {
		errno = ENAMETOOLONG;
		return -NQ_EIO;
	}
	/* close-on-exec: a worker must not keep the daemon's lock alive */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -NQ_EIO;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return e == EWOULDBLOCK ? -NQ_ESTATE : -NQ_EIO;
	}
	return fd;
}

int64_t
spool_max_job_id(const char *state_dir)
{
	char jobs[4096];
	DIR *d;
	struct dirent *e;
	int64_t max = 0;

	if (spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL) != 0 ||
	    (d = opendir(jobs)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long long v;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		errno = 0;
		v = strtoll(e->d_name, &end, 10);
		if (errno == 0 && *end == '\0' && v > max)
			max = v;
	}
	closedir(d);
	return max;
}

/* One line of the manifest: "<64 hex>  in/<name>.npy". 0 or -1. */
static int
spool_manifest_line(char *line, char **hex, char **rel)
{
	size_t n = strlen(line);

	if (n < 64 + 2 + 4 || line[64] != ' ' || line[65] != ' ')
		return -1;
	for (int i = 0; i < 64; i++)
		if (!((line[i] >= '0' && line[i] <= '9') ||
		      (line[i] >= 'a' && line[i] <= 'f')))
			return -1;
	line[64] = '\0';
	*hex = line;
	*rel = line + 66;
	if (strncmp(*rel, "in/", 3) != 0 || !spool_name_ok(*rel + 3))
		return -1;
	return 0;
}

int
spool_verify_inputs(const char *job_dir, char *msg, size_t msglen)
{
	char path[4096], *buf = NULL, *line, *save = NULL;
	size_t len, listed = 0, present = 0;
	DIR *d;
	struct dirent *e;
	int rc = 0, e0;

	if (spool_path(path, sizeof(path), job_dir, SPOOL_MANIFEST, NULL) != 0)
		return NQ_EINTERNAL;
	if ((e0 = spool_read_file(job_dir, SPOOL_MANIFEST, 16u << 20, &buf,
	                          &len)) != 0) {
		if (e0 == ENOENT)
			return 0; /* staged before manifests existed */
		snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e0));
		return NQ_EIO;
	}
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *hex, *rel, have[NQ_SHA256_HEX], file[4096];
		if (spool_manifest_line(line, &hex, &rel) != 0) {
			snprintf(msg, msglen,
			         "the input checksums (%s) are damaged: the "
			         "inputs cannot be trusted",
			         SPOOL_MANIFEST);
			rc = NQ_EIO;
			goto out;
		}
		listed++;
		if (spool_path(file, sizeof(file), job_dir, rel, NULL) != 0 ||
		    nq_sha256_file(file, have) != 0) {
			snprintf(msg, msglen,
			         "input file %s is missing or "
			         "unreadable: %s",
			         rel, strerror(errno));
			rc = NQ_EIO;
			goto out;
		}
		if (strcmp(have, hex) != 0) {
			snprintf(msg, msglen,
			         "input file %s was damaged after submit "
			         "(sha256 %.16s..., staged as %.16s...): the "
			         "job did not run; submit it again",
			         rel, have, hex);
			rc = NQ_EIO;
			goto out;
		}
	}
	/* and nothing was added that the manifest does not name */
	spool_path(path, sizeof(path), job_dir, "in", NULL);
	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				present++;
		closedir(d);
	}
	if (present != listed) {
		snprintf(msg, msglen,
		         "in/ holds %zu files but %zu were staged: the inputs "
		         "cannot be trusted",
		         present, listed);
		rc = NQ_EIO;
	}
out:
	free(buf);
	return rc;
}
