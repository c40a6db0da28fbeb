/*
 * userpath.c — user-supplied paths, resolved and opened without a way into
 * the service's directories (userpath.h).
 */
#include "userpath.h"

#include "nq_error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t
userpath_deny_init(const char *const *dirs, size_t n, struct userpath_id *ids)
{
	size_t k = 0;
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		if (dirs[i] == NULL || stat(dirs[i], &st) != 0)
			continue;
		ids[k].dev = st.st_dev;
		ids[k].ino = st.st_ino;
		k++;
	}
	return k;
}

int
userpath_is_denied(int fd, const struct userpath_id *deny, size_t ndeny)
{
	struct stat st;

	if (ndeny == 0)
		return 0;
	if (fstat(fd, &st) != 0)
		return 1; /* cannot tell: refuse */
	for (size_t i = 0; i < ndeny; i++)
		if (deny[i].dev == st.st_dev && deny[i].ino == st.st_ino)
			return 1;
	return 0;
}

enum { WALK_OK = 0, WALK_DENIED = 1, WALK_ERRNO = 2 };

/* Descend abs from "/" one component at a time (O_NOFOLLOW), comparing each
 * directory with deny. final: 0 an O_PATH fd of the last component (check
 * only), 1 the last component opened as a file to read, 2 as a directory to
 * write into, made with dmode when missing (and missing directories above
 * it too). On WALK_ERRNO, *err is the errno. */
static int
walk(const char *abs, const struct userpath_id *deny, size_t ndeny, int final,
     mode_t dmode, int *out, int *err)
{
	char buf[PATH_MAX], *save = NULL, *comp, *next;
	int fd, nfd;
	struct stat st;

	*out = -1;
	*err = 0;
	if (abs[0] != '/' || strlen(abs) >= sizeof(buf)) {
		*err = EINVAL;
		return WALK_ERRNO;
	}
	snprintf(buf, sizeof(buf), "%s", abs);
	fd = open("/",
	          (final == 2 ? O_RDONLY : O_PATH) | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*err = errno;
		return WALK_ERRNO;
	}
	if (userpath_is_denied(fd, deny, ndeny)) {
		close(fd);
		return WALK_DENIED;
	}
	comp = strtok_r(buf, "/", &save);
	while (comp != NULL) {
		next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
			close(fd);
			*err = EINVAL;
			return WALK_ERRNO;
		}
		if (next == NULL && final == 1) {
			nfd = openat(fd, comp,
			             O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
			                     O_NOCTTY | O_CLOEXEC);
			if (nfd >= 0)
				fcntl(nfd, F_SETFL, 0);
		} else {
			int flags = O_PATH | O_DIRECTORY;
			if (next == NULL && final == 2)
				flags = O_RDONLY | O_DIRECTORY;
			else if (next == NULL)
				flags = O_PATH; /* check only: a file too */
			nfd = openat(fd, comp, flags | O_NOFOLLOW | O_CLOEXEC);
			if (nfd < 0 && errno == ENOENT && final == 2) {
				if (mkdirat(fd, comp, dmode) != 0 &&
				    errno != EEXIST) {
					*err = errno;
					close(fd);
					return WALK_ERRNO;
				}
				nfd = openat(fd, comp,
				             O_RDONLY | O_DIRECTORY |
				                     O_NOFOLLOW | O_CLOEXEC);
				/* exactly dmode, whatever the umask */
				if (nfd >= 0 && fchmod(nfd, dmode) != 0) {
					*err = errno;
					close(nfd);
					close(fd);
					return WALK_ERRNO;
				}
				if (nfd >= 0 && next != NULL) {
					/* keep the walk on O_PATH fds */
					int p = openat(nfd, ".",
					               O_PATH | O_DIRECTORY |
					                       O_CLOEXEC);
					close(nfd);
					nfd = p;
				}
			}
		}
		if (nfd < 0) {
			*err = errno;
			close(fd);
			return WALK_ERRNO;
		}
		close(fd);
		fd = nfd;
		/* O_PATH | O_NOFOLLOW may give the link itself */
		if (fstat(fd, &st) != 0) {
			*err = errno;
			close(fd);
			return WALK_ERRNO;
		}
		if (S_ISLNK(st.st_mode)) {
			close(fd);
			*err = ELOOP;
			return WALK_ERRNO;
		}
		if (userpath_is_denied(fd, deny, ndeny)) {
			close(fd);
			return WALK_DENIED;
		}
		comp = next;
	}
	*out = fd;
	return WALK_OK;
}

static int
denied_msg(const char *param, const char *path, char *msg, size_t msglen)
{
	snprintf(msg, msglen,
	         "%s '%s': not allowed: it resolves into a directory of the "
	         "neuroq service (its state or socket directory)",
	         param, path);
	return NQ_EBADPARAM;
}

int
userpath_check(const char *param, const char *path,
               const struct userpath_id *deny, size_t ndeny, int want,
               char *resolved, size_t rlen, char *msg, size_t msglen)
{
	char buf[PATH_MAX], head[PATH_MAX], tail[PATH_MAX] = "";
	struct stat st;
	int fd, err, w;

	if (path == NULL || path[0] == '\0') {
		snprintf(msg, msglen, "%s: empty path", param);
		return NQ_EBADPARAM;
	}
	if (strlen(path) >= sizeof(head)) {
		snprintf(msg, msglen, "%s: path too long (%zu bytes)", param,
		         strlen(path));
		return NQ_EBADPARAM;
	}
	if (realpath(path, buf) == NULL) {
		err = errno;
		if (want != USERPATH_WRITE_DIR || err != ENOENT)
			goto errno_fail;
		/* the nearest existing ancestor, plus the missing tail */
		snprintf(head, sizeof(head), "%s", path);
		for (;;) {
			size_t n = strlen(head);
			char *slash;
			while (n > 1 && head[n - 1] == '/')
				head[--n] = '\0';
			slash = strrchr(head, '/');
			const char *comp = slash ? slash + 1 : head;
			if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0 ||
			    comp[0] == '\0') {
				snprintf(msg, msglen,
				         "%s '%s': a missing directory may not "
				         "be followed by '.' or '..'",
				         param, path);
				return NQ_EBADPARAM;
			}
			char t[PATH_MAX];
			if (snprintf(t, sizeof(t), "%s%s%s", comp,
			             tail[0] ? "/" : "",
			             tail) >= (int) sizeof(t)) {
				err = ENAMETOOLONG;
				goto errno_fail;
			}
			memcpy(tail, t, strlen(t) + 1);
			if (slash == NULL)
				snprintf(head, sizeof(head), ".");
			else if (slash == head)
				head[1] = '\0';
			else
				*slash = '\0';
			if (realpath(head, buf) != NULL)
				break;
			err = errno;
			if (err != ENOENT)
				goto errno_fail;
		}
	}
	/* the existing part: a type check and the walk against deny */
	w = walk(buf, deny, ndeny, 0, 0, &fd, &err);
	if (w == WALK_DENIED)
		return denied_msg(param, path, msg, msglen);
	if (w != WALK_OK)
		goto errno_fail;
	if (fstat(fd, &st) != 0) {
		err = errno;
		close(fd);
		goto errno_fail;
	}
	close(fd);
	if (tail[0] != '\0' || want == USERPATH_WRITE_DIR) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(msg, msglen, "%s '%s': not a directory", param,
			         path);
			return NQ_EBADPARAM;
		}
	} else if (S_ISDIR(st.st_mode)) {
		snprintf(msg, msglen, "%s '%s': is a directory, not a file",
		         param, path);
		return NQ_EBADPARAM;
	}
	if (snprintf(resolved, rlen, "%s%s%s", buf,
	             tail[0] && strcmp(buf, "/") != 0 ? "/" : "",
	             tail) >= (int) rlen) {
		err = ENAMETOOLONG;
		goto errno_fail;
	}
	return 0;
errno_fail:
	snprintf(msg, msglen, "%s '%s': %s", param, path, strerror(err));
	return NQ_EBADPARAM;
}

int
userpath_open(const char *param, const char *resolved,
              const struct userpath_id *deny, size_t ndeny, int want,
              mode_t dmode, int *fd, char *msg, size_t msglen)
{
	int err, w;

	w = walk(resolved, deny, ndeny, want == USERPATH_WRITE_DIR ? 2 : 1,
	         dmode, fd, &err);
	if (w == WALK_DENIED)
		return denied_msg(param, resolved, msg, msglen);
	if (w != WALK_OK) {
		if (err == ELOOP || err == ENOTDIR)
			snprintf(msg, msglen,
			         "%s '%s': %s (the path changed after it was "
			         "checked?)",
			         param, resolved, strerror(err));
		else
			snprintf(msg, msglen, "%s '%s': %s", param, resolved,
			         strerror(err));
		return NQ_EBADPARAM;
	}
	return 0;
}
