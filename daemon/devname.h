/*
 * devname.h — the one parser of device names, used wherever one is read:
 * a submit's "device" (ops_submit.c), the scheduler's device_req
 * (scheduler.c), a probe line's name (devices.c) and neuroq-worker's
 * --device (worker_main.c).
 *
 * Exactly these, lower case, nothing before or after:
 *   auto      the scheduler picks (a GPU when one fits, else the cpu)
 *   cpu
 *   cuda      any GPU
 *   cuda:N    GPU N: decimal, no sign, no leading zero ("cuda:0",
 *             "cuda:12"; not "cuda:01", so that a device has one name),
 *             N < DEVICES_MAX
 *   fake:N    a test device standing in for GPU N (same rule for N): the
 *             scheduler admits it as a GPU (a request "fake:N" means the
 *             same as "cuda:N"), neuroq-worker runs the cpu backend on it.
 *             Only `neuroqd --devices fake:N:SIZE` makes one
 *             (devname_parse_fake below); the probe never reports one.
 * Everything else ("CUDA", "", "cuda:", "cuda:-1", "cuda:1x", " cpu") is
 * refused.
 */
#ifndef DEVNAME_H
#define DEVNAME_H

#include <stddef.h>

/* The most devices one daemon keeps (the cpu included); cuda:N has
 * N < DEVICES_MAX. */
#define DEVICES_MAX 32

enum devname_kind {
	DEVNAME_AUTO,
	DEVNAME_CPU,
	DEVNAME_CUDA,   /* any GPU */
	DEVNAME_CUDA_N, /* GPU index */
	DEVNAME_FAKE_N, /* test device standing in for GPU index */
};

struct devname {
	enum devname_kind kind;
	int index; /* DEVNAME_CUDA_N, DEVNAME_FAKE_N; 0 otherwise */
};

/* NQ_OK with *out filled, or NQ_EBADDEVICE (s NULL or not one of the names
 * above; *out then says auto). */
int devname_parse(const char *s, struct devname *out);

/* A fake device's spec "fake:N:SIZE" (neuroqd --devices): NQ_OK with *out
 * (DEVNAME_FAKE_N), the name "fake:N" in name[namelen] and *size pointing at
 * SIZE (non-empty, not checked here: the caller parses the byte count);
 * NQ_EBADDEVICE when s is not "fake:" + N + ':' + something. */
int devname_parse_fake(const char *s, struct devname *out, char *name,
                       size_t namelen, const char **size);

#endif
