/* quota.c — see quota.h. */
#include "quota.h"

#include "nq_error.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUOTA_DEPTH_MAX 16

void
quota_fmt_bytes(char *buf, size_t n, uint64_t b)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%.1f GiB", (double) b / (1ull << 30));
	else if (b >= (1ull << 20))
		snprintf(buf, n, "%.1f MiB", (double) b / (1ull << 20));
	else if (b >= (1ull << 10))
		snprintf(buf, n, "%.1f KiB", (double) b / (1ull << 10));
	else
		snprintf(buf, n, "%" PRIu64 " bytes", b);
}

int
quota_check(const struct quota_limits *l, const struct quota_use *u,
            uint64_t add, char *msg, size_t msglen)
{
	char have[32], need[32], lim[32];

	if (l->max_queued > 0 && u->queued >= l->max_queued) {
		snprintf(msg, msglen,
		         "you have %" PRId64
		         " queued jobs; the limit is %" PRId64
		         " (max_queued_jobs_per_user): wait for some to start "
		         "or cancel some",
		         u->queued, l->max_queued);
		return NQ_EQUOTA;
	}
	/* u->bytes + add > max, without overflow */
	if (l->max_bytes > 0 &&
	    (add > l->max_bytes || u->bytes > l->max_bytes - add)) {
		quota_fmt_bytes(have, sizeof(have), u->bytes);
		quota_fmt_bytes(need, sizeof(need), add);
		quota_fmt_bytes(lim, sizeof(lim), l->max_bytes);
		snprintf(msg, msglen,
		         "your jobs hold %" PRIu64 " bytes (%s) in the spool "
		         "and this submit adds %" PRIu64 " (%s); the limit is "
		         "%" PRIu64 " bytes (%s, max_spool_bytes_per_user). "
		         "Finished jobs' files count until retention_days "
		         "removes them",
		         u->bytes, have, add, need, l->max_bytes, lim);
		return NQ_EQUOTA;
	}
	return 0;
}

/* Adds the sizes of the regular files under the dir fd (which it closes). */
static int
quota_walk(int dfd, int depth, uint64_t *sum)
{
	DIR *dir = fdopendir(dfd);
	struct dirent *e;
	int rc = 0;

	if (dir == NULL) {
		close(dfd);
		return NQ_EIO;
	}
	while ((e = readdir(dir)) != NULL) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
		    0) {
			rc = NQ_EIO;
			continue;
		}
		if (S_ISREG(st.st_mode)) {
			*sum += (uint64_t) st.st_size;
		} else if (S_ISDIR(st.st_mode) && depth < QUOTA_DEPTH_MAX) {
			int sub = openat(dirfd(dir), e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			                         O_CLOEXEC);
			if (sub < 0 || quota_walk(sub, depth + 1, sum) != 0)
				rc = NQ_EIO;
		}
	}
	closedir(dir);
	return rc;
}

int
quota_dir_bytes(const char *path, uint64_t *out)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	*out = 0;
	if (fd < 0)
		return NQ_EIO;
	return quota_walk(fd, 0, out);
}
