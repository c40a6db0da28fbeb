/*
 * access.h — who may see and act on which job, in one place: a job's owner
 * and the administrators. An administrator is root, the daemon's own user
 * (who owns the state dir and its database anyway), or a member of the
 * configured admin_group (config.h). The group is resolved once at start;
 * a user's membership comes from their passwd entry and getgrouplist(3)
 * (primary and supplementary groups), cached per uid for ACCESS_TTL_MS (at
 * most ACCESS_CACHE uids), so a change to /etc/group takes effect within
 * that time. Thread-safe: the events sockets' pipe checks (net.c) ask on
 * NNG's threads, the op handlers on the loop thread.
 */
#ifndef ACCESS_H
#define ACCESS_H

#include <stddef.h>
#include <stdint.h>

#define ACCESS_TTL_MS 10000
#define ACCESS_CACHE  64

struct access;

/* admin_group: a group name or "" (no group: root and self_uid only).
 * self_uid: the daemon's own uid. 0, NQ_EBADPARAM (no such group) or
 * NQ_ENOMEM, with msg. */
int access_open(struct access **a, const char *admin_group, uint32_t self_uid,
                char *msg, size_t msglen);
void access_close(struct access *a);

/* 1 when uid is an administrator. a may be NULL: then only root is. */
int access_is_admin(struct access *a, uint32_t uid);
/* 1 when uid may see and act on a job of owner (the owner, or an
 * administrator). */
int access_may_see(struct access *a, uint32_t uid, uint32_t owner);
/* 1 when uid is in group gid (primary or supplementary), from the passwd
 * and group databases, uncached; 0 for a uid without a passwd entry. */
int access_in_group(uint32_t uid, uint32_t gid);

#endif
