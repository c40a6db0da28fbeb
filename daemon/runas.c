/*
 * runas.c — drop to the job's owner (runas.h).
 */
#include "runas.h"

#include "nq_error.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RUNAS_MAX_GROUPS 4096

/* Threads of this process (/proc/self/status), -1 when unknown. */
static int
runas_threads(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int n = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		/* the kernel writes it */
		// NOLINTNEXTLINE(cert-err34-c)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	}
	fclose(f);
	return n;
}

/* The message for a daemon that lacks the capability `cap` (errno e). */
static void
refuse_uid(char *msg, size_t msglen, uid_t me, uid_t uid, const char *cap,
           int e)
{
	snprintf(msg, msglen,
	         "this daemon runs as uid %u and cannot run jobs as uid %u "
	         "(no %s: %s)",
	         (unsigned) me, (unsigned) uid, cap, strerror(e));
}

int
runas_owner(uid_t uid, gid_t service_gid, char *msg, size_t msglen)
{
	struct passwd pw, *pwp = NULL;
	char *buf = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	gid_t *groups = NULL;
	int ng = 64, rc = NQ_EPERM, e;
	uid_t me = geteuid(), ru, eu, su;
	gid_t rg, eg, sg;

	if (uid == me)
		return 0;
	/* capabilities and PR_SET_NO_NEW_PRIVS are per thread: another
	 * thread would keep them (and glibc aborts when the setuid(0) check
	 * below succeeds in it) */
	if (runas_threads() != 1) {
		snprintf(msg, msglen,
		         "cannot become uid %u: the process has %d threads "
		         "(it must drop while it has one)",
		         (unsigned) uid, runas_threads());
		return NQ_EINTERNAL;
	}
	if (sz < 16384)
		sz = 16384;
	buf = malloc((size_t) sz);
	if (buf == NULL)
		return NQ_ENOMEM;
	e = getpwuid_r(uid, &pw, buf, (size_t) sz, &pwp);
	if (pwp == NULL) {
		snprintf(msg, msglen, "uid %u has no passwd entry%s%s",
		         (unsigned) uid, e ? ": " : "", e ? strerror(e) : "");
		goto out;
	}
	for (;;) {
		int n = ng;
		free(groups);
		groups = malloc(sizeof(gid_t) * ((size_t) ng + 1));
		if (groups == NULL) {
			rc = NQ_ENOMEM;
			goto out;
		}
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) >= 0) {
			ng = n;
			break;
		}
		if (n <= ng || n > RUNAS_MAX_GROUPS) {
			snprintf(msg, msglen,
			         "cannot list the groups of uid %u",
			         (unsigned) uid);
			goto out;
		}
		ng = n;
	}
	if (service_gid != (gid_t) -1) {
		int have = 0;
		for (int i = 0; i < ng; i++)
			have |= groups[i] == service_gid;
		if (!have)
			groups[ng++] = service_gid;
	}
	if (setgroups((size_t) ng, groups) != 0) {
		e = errno;
		refuse_uid(msg, msglen, me, uid, "CAP_SETGID", e);
		goto out;
	}
	if (setgid(pw.pw_gid) != 0) {
		e = errno;
		refuse_uid(msg, msglen, me, uid, "CAP_SETGID", e);
		goto out;
	}
	/* a daemon given CAP_SETUID as ambient capabilities keeps them across
	 * a change between two non-zero uids: none may reach the job */
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (setuid(uid) != 0) {
		e = errno;
		refuse_uid(msg, msglen, me, uid, "CAP_SETUID", e);
		goto out;
	}
	{
		struct __user_cap_header_struct hdr = {
		        _LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct data[2];
		memset(data, 0, sizeof(data));
		if (syscall(SYS_capset, &hdr, data) != 0) {
			snprintf(msg, msglen, "cannot drop capabilities: %s",
			         strerror(errno));
			rc = NQ_EINTERNAL;
			goto out;
		}
	}
	/* nor through a set-user-ID program */
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* nothing of the old identity may be left */
	if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid ||
	    su != uid || getresgid(&rg, &eg, &sg) != 0 || rg != pw.pw_gid ||
	    eg != pw.pw_gid || sg != pw.pw_gid ||
	    (uid != 0 && setuid(0) == 0)) {
		snprintf(msg, msglen,
		         "dropping to uid %u left a privilege behind",
		         (unsigned) uid);
		rc = NQ_EINTERNAL;
		goto out;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(msg, msglen, "prctl(PR_SET_DUMPABLE): %s",
		         strerror(errno));
		rc = NQ_EINTERNAL;
		goto out;
	}
	rc = 0;
out:
	free(groups);
	free(buf);
	return rc;
}

int
runas_user_known(uid_t uid)
{
	struct passwd pw, *pwp = NULL;
	char buf[16384];

	return getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL;
}
