/* access.c — see access.h. */
#include "access.h"

#include "nq_clock.h"
#include "nq_error.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct access_entry {
	uint32_t uid;
	int admin;
	int64_t until_ms; /* 0 = empty slot */
};

struct access {
	int has_group;
	uint32_t gid;
	uint32_t self_uid;
	pthread_mutex_t mtx;
	struct access_entry cache[ACCESS_CACHE];
	size_t next; /* the slot the next miss overwrites when all are fresh */
};

/* A passwd/group lookup buffer's size. */
static size_t
access_bufsize(int name)
{
	long n = sysconf(name);

	return n > 0 && n < (1 << 20) ? (size_t) n : 16384;
}

int
access_open(struct access **ap, const char *group, uint32_t self_uid, char *msg,
            size_t msglen)
{
	struct access *a = calloc(1, sizeof(*a));
	struct group gr, *res = NULL;
	size_t blen = access_bufsize(_SC_GETGR_R_SIZE_MAX);
	char *buf = NULL;
	int rc;

	*ap = NULL;
	if (a == NULL)
		goto nomem;
	a->self_uid = self_uid;
	if (group != NULL && group[0] != '\0') {
		for (;;) {
			free(buf);
			if ((buf = malloc(blen)) == NULL)
				goto nomem;
			rc = getgrnam_r(group, &gr, buf, blen, &res);
			if (rc != ERANGE || blen >= (1u << 24))
				break;
			blen *= 2;
		}
		if (res == NULL) {
			snprintf(msg, msglen, "admin_group: no group '%s'%s%s",
			         group, rc != 0 ? ": " : "",
			         rc != 0 ? strerror(rc) : "");
			free(buf);
			free(a);
			return NQ_EBADPARAM;
		}
		a->has_group = 1;
		a->gid = (uint32_t) gr.gr_gid;
		free(buf);
	}
	if (pthread_mutex_init(&a->mtx, NULL) != 0)
		goto nomem;
	*ap = a;
	return 0;
nomem:
	free(a);
	snprintf(msg, msglen, "out of memory");
	return NQ_ENOMEM;
}

void
access_close(struct access *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->mtx);
	free(a);
}

int
access_in_group(uint32_t uid, uint32_t gid)
{
	struct passwd pw, *res = NULL;
	size_t blen = access_bufsize(_SC_GETPW_R_SIZE_MAX);
	char *buf = NULL;
	gid_t *groups = NULL;
	int n = 64, found = 0, rc;

	for (;;) {
		free(buf);
		if ((buf = malloc(blen)) == NULL)
			return 0;
		rc = getpwuid_r((uid_t) uid, &pw, buf, blen, &res);
		if (rc != ERANGE || blen >= (1u << 24))
			break;
		blen *= 2;
	}
	if (res == NULL)
		goto out;
	if ((uint32_t) pw.pw_gid == gid) {
		found = 1;
		goto out;
	}
	for (int tries = 0; tries < 8; tries++) {
		int got = n;
		gid_t *g = realloc(groups, (size_t) n * sizeof(*g));
		if (g == NULL)
			goto out;
		groups = g;
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &got) >= 0) {
			for (int i = 0; i < got; i++)
				found |= (uint32_t) groups[i] == gid;
			goto out;
		}
		/* too small: got is the count needed */
		n = got > n ? got : n * 2;
	}
out:
	free(groups);
	free(buf);
	return found;
}

int
access_is_admin(struct access *a, uint32_t uid)
{
	int64_t now;
	struct access_entry *slot = NULL;
	int admin;

	if (uid == 0)
		return 1;
	if (a == NULL)
		return 0;
	if (uid == a->self_uid)
		return 1;
	if (!a->has_group)
		return 0;
	now = nq_mono_ms();
	pthread_mutex_lock(&a->mtx);
	for (size_t i = 0; i < ACCESS_CACHE; i++) {
		struct access_entry *e = &a->cache[i];
		if (e->until_ms > now && e->uid == uid) {
			admin = e->admin;
			pthread_mutex_unlock(&a->mtx);
			return admin;
		}
		if (slot == NULL && e->until_ms <= now)
			slot = e;
	}
	if (slot == NULL) {
		slot = &a->cache[a->next];
		a->next = (a->next + 1) % ACCESS_CACHE;
	}
	slot->until_ms = 0; /* being refilled */
	pthread_mutex_unlock(&a->mtx);

	/* NSS may be slow (LDAP): not under the lock */
	admin = access_in_group(uid, a->gid);

	pthread_mutex_lock(&a->mtx);
	slot->uid = uid;
	slot->admin = admin;
	slot->until_ms = now + ACCESS_TTL_MS;
	pthread_mutex_unlock(&a->mtx);
	return admin;
}

int
access_may_see(struct access *a, uint32_t uid, uint32_t owner)
{
	return uid == owner || access_is_admin(a, uid);
}
