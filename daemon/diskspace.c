/* diskspace.c — see diskspace.h. */
#include "diskspace.h"

#include "nq_error.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

/* \ooo escapes of a mountinfo field into out; 0, or -1 when too long */
static int
diskspace_unescape(const char *f, size_t len, char *out, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = f[i];
		if (c == '\\' && i + 3 < len && f[i + 1] >= '0' &&
		    f[i + 1] <= '3' && f[i + 2] >= '0' && f[i + 2] <= '7' &&
		    f[i + 3] >= '0' && f[i + 3] <= '7') {
			c = (char) ((f[i + 1] - '0') * 64 +
			            (f[i + 2] - '0') * 8 + (f[i + 3] - '0'));
			i += 3;
		}
		if (o + 1 >= n)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* 1 when mount point m contains abspath (whole components) */
static int
diskspace_under(const char *m, const char *abspath)
{
	size_t ml = strlen(m);

	if (strcmp(m, "/") == 0)
		return abspath[0] == '/';
	return strncmp(abspath, m, ml) == 0 &&
	       (abspath[ml] == '\0' || abspath[ml] == '/');
}

int
diskspace_mount_point(FILE *mountinfo, const char *abspath, char *out, size_t n)
{
	char line[4096], m[PATH_MAX];
	size_t best = 0;
	int found = 0;

	snprintf(out, n, "?");
	while (fgets(line, sizeof(line), mountinfo) != NULL) {
		/* id parent major:minor root MOUNT_POINT options ... */
		const char *f = line;
		size_t len;
		for (int k = 0; k < 4 && f != NULL; k++) {
			f = strchr(f, ' ');
			if (f != NULL)
				f++;
		}
		if (f == NULL)
			continue;
		len = strcspn(f, " \n");
		if (diskspace_unescape(f, len, m, sizeof(m)) != 0 ||
		    !diskspace_under(m, abspath))
			continue;
		/* the longest match; of equals the last (mounted on top) */
		if (!found || strlen(m) >= best) {
			best = strlen(m);
			snprintf(out, n, "%s", m);
			found = 1;
		}
	}
	return found ? 0 : NQ_EIO;
}

int
diskspace_stat(const char *path, struct diskspace *ds)
{
	char p[PATH_MAX], abs[PATH_MAX];
	struct statvfs sv;
	FILE *f;

	memset(ds, 0, sizeof(*ds));
	snprintf(ds->mount, sizeof(ds->mount), "?");
	if ((size_t) snprintf(p, sizeof(p), "%s", path) >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return NQ_EIO;
	}
	/* a file that was never made: its dir's filesystem */
	while (statvfs(p, &sv) != 0) {
		char *slash = strrchr(p, '/');
		if (errno != ENOENT && errno != ENOTDIR)
			return NQ_EIO;
		if (slash == NULL)
			snprintf(p, sizeof(p), ".");
		else if (slash == p)
			p[1] = '\0';
		else
			*slash = '\0';
		if (strcmp(p, ".") == 0 || strcmp(p, "/") == 0) {
			if (statvfs(p, &sv) != 0)
				return NQ_EIO;
			break;
		}
	}
	ds->free_bytes = (uint64_t) sv.f_bavail * sv.f_frsize;
	ds->total_bytes = (uint64_t) sv.f_blocks * sv.f_frsize;
	if (realpath(p, abs) == NULL)
		return 0; /* the figures without the name */
	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return 0;
	diskspace_mount_point(f, abs, ds->mount, sizeof(ds->mount));
	fclose(f);
	return 0;
}

int
diskspace_admit(const struct diskspace *ds, uint64_t need,
                uint64_t min_free_bytes, char *msg, size_t msglen)
{
	if (ds->free_bytes >= need && ds->free_bytes - need >= min_free_bytes)
		return 0;
	snprintf(msg, msglen,
	         "not enough free disk space for the daemon's state: "
	         "filesystem %s has %" PRIu64 " bytes free, the watermark "
	         "min_free_bytes is %" PRIu64 " and this submit needs about "
	         "%" PRIu64 " bytes (ENOSPC; ask the administrator to free "
	         "space there)",
	         ds->mount, ds->free_bytes, min_free_bytes, need);
	return NQ_ENOSPACE;
}

int
diskspace_code(int err)
{
	return err == ENOSPC || err == EDQUOT ? NQ_ENOSPACE : NQ_EIO;
}

static void
diskspace_note_as(const char *path, const char *tag, char *buf, size_t n)
{
	struct diskspace ds;

	if (n > 0)
		buf[0] = '\0';
	if (diskspace_stat(path, &ds) != 0)
		return;
	snprintf(buf, n, " (%s: filesystem %s has %" PRIu64 " bytes free)", tag,
	         ds.mount, ds.free_bytes);
}

void
diskspace_note(const char *path, char *buf, size_t n)
{
	diskspace_note_as(path, "ENOSPC", buf, n);
}

int
diskspace_msg(char *msg, size_t msglen, const char *what, const char *path,
              int err)
{
	char note[400] = "";

	if (diskspace_code(err) == NQ_ENOSPACE)
		diskspace_note_as(path, err == EDQUOT ? "EDQUOT" : "ENOSPC",
		                  note, sizeof(note));
	snprintf(msg, msglen, "%s %s: %s%s", what, path, strerror(err), note);
	return diskspace_code(err);
}
