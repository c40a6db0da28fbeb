/*
 * scheduler_test.c — the scheduling policy on fake devices: a cpu and two GPUs
 * of limited memory (cuda:0 8 GiB, cuda:1 16 GiB), 512 MiB headroom.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nq_clock.h"
#include "nq_error.h"
#include "nq_test_rng.h"
#include "scheduler.h"

#define GiB      (1ull << 30)
#define MiB      (1ull << 20)
#define HEADROOM (512 * MiB)

enum { DEV_CPU = 0, DEV_CUDA0 = 1, DEV_CUDA1 = 2 };

static void
add_dev(struct sched *s, const char *name, enum sched_dev_kind kind, int index,
        uint64_t cap, int slots, int expect_index)
{
	struct sched_device d;

	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "%s", name);
	d.kind = kind;
	d.index = index;
	d.capacity = cap;
	d.slots = slots;
	assert_int_equal(sched_add_device(s, &d), expect_index);
}

/* cpu (64 GiB, cpu_slots), cuda:0 (8 GiB, 4 slots), cuda:1 (16 GiB) */
static struct sched *
fake(int cpu_slots, int gpu_slots)
{
	struct sched *s = sched_new(HEADROOM);

	assert_non_null(s);
	add_dev(s, "cpu", SCHED_CPU, 0, 64 * GiB, cpu_slots, DEV_CPU);
	add_dev(s, "cuda:0", SCHED_CUDA, 0, 8 * GiB, gpu_slots, DEV_CUDA0);
	add_dev(s, "cuda:1", SCHED_CUDA, 1, 16 * GiB, gpu_slots, DEV_CUDA1);
	return s;
}

/* only a cpu with n slots: the fairness tests */
static struct sched *
cpu_only(int slots)
{
	struct sched *s = sched_new(0);

	assert_non_null(s);
	add_dev(s, "cpu", SCHED_CPU, 0, 64 * GiB, slots, 0);
	return s;
}

static uint64_t next_seq = 1;

static struct sched_job
mk(int64_t id, uint32_t owner, int prio, const char *req, uint64_t host,
   uint64_t dev)
{
	struct sched_job j;

	memset(&j, 0, sizeof(j));
	j.id = id;
	j.owner = owner;
	j.priority = prio;
	j.seq = next_seq++;
	j.host_bytes = host;
	j.device_bytes = dev;
	snprintf(j.device_req, sizeof(j.device_req), "%s", req);
	return j;
}

static void
enq(struct sched *s, int64_t id, uint32_t owner, int prio, const char *req,
    uint64_t host, uint64_t dev)
{
	struct sched_job j = mk(id, owner, prio, req, host, dev);

	assert_int_equal(sched_enqueue(s, &j), 0);
}

/* Pick one job; returns its id or -1 when nothing can start. */
static int64_t
pick(struct sched *s, size_t *dev_out, uint64_t *grant_out)
{
	struct sched_job j;
	size_t dev = 999;
	uint64_t grant = 0;

	if (!sched_next(s, &j, &dev, &grant))
		return -1;
	assert_true(dev < sched_device_count(s));
	if (dev_out != NULL)
		*dev_out = dev;
	if (grant_out != NULL)
		*grant_out = grant;
	return j.id;
}

static const struct sched_device *
D(struct sched *s, size_t i)
{
	const struct sched_device *d = sched_device_at(s, i);

	assert_non_null(d);
	return d;
}

/* ---- devices ------------------------------------------------------- */

static void
test_devices(void **state)
{
	struct sched *s = fake(2, 4);
	struct sched_device d;

	(void) state;
	assert_int_equal(sched_device_count(s), 3);
	assert_string_equal(D(s, DEV_CUDA1)->name, "cuda:1");
	assert_true(D(s, DEV_CUDA1)->capacity == 16 * GiB);
	assert_int_equal(D(s, DEV_CPU)->slots, 2);
	assert_null(sched_device_at(s, 3));
	/* a second "cuda:1" or an unnamed device is refused */
	memset(&d, 0, sizeof(d));
	snprintf(d.name, sizeof(d.name), "cuda:1b");
	d.kind = SCHED_CUDA;
	d.index = 1;
	d.capacity = GiB;
	d.slots = 1;
	assert_int_equal(sched_add_device(s, &d), -1);
	snprintf(d.name, sizeof(d.name), "cpu");
	d.kind = SCHED_CPU;
	assert_int_equal(sched_add_device(s, &d), -1);
	d.name[0] = '\0';
	assert_int_equal(sched_add_device(s, &d), -1);
	d.kind = SCHED_CUDA;
	d.index = 2;
	snprintf(d.name, sizeof(d.name), "cuda:2");
	d.slots = -1;
	assert_int_equal(sched_add_device(s, &d), -1);
	d.slots = 1;
	assert_int_equal(sched_add_device(s, &d), 3);
	assert_int_equal(sched_device_count(s), 4);
	/* empty scheduler: nothing to do */
	assert_int_equal(pick(s, NULL, NULL), -1);
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
	sched_free(NULL);
}

/* ---- admission ----------------------------------------------------- */

static void
test_fit_wait_release(void **state)
{
	struct sched *s = fake(2, 4);
	size_t dev = (size_t) -1; /* (set by pick) */
	uint64_t grant = 0;

	(void) state;
	/* 12 GiB fits only cuda:1 (16 - 0.5) */
	enq(s, 1, 100, 0, "cuda", GiB, 12 * GiB);
	enq(s, 2, 100, 0, "cuda", GiB, 12 * GiB);
	assert_int_equal(pick(s, &dev, &grant), 1);
	assert_int_equal(dev, DEV_CUDA1);
	assert_true(grant == 12 * GiB);
	assert_true(D(s, DEV_CUDA1)->reserved == 12 * GiB);
	assert_int_equal(D(s, DEV_CUDA1)->running, 1);
	/* the second waits: cuda:1 has 4 GiB left, cuda:0 is too small */
	assert_int_equal(pick(s, NULL, NULL), -1);
	assert_int_equal(sched_queued(s), 1);
	sched_release(s, 1);
	assert_true(D(s, DEV_CUDA1)->reserved == 0);
	assert_int_equal(D(s, DEV_CUDA1)->running, 0);
	assert_int_equal(pick(s, &dev, &grant), 2);
	assert_int_equal(dev, DEV_CUDA1);
	assert_int_equal(sched_queued(s), 0);
	sched_release(s, 2);
	sched_free(s);
}

static void
test_boundary_headroom(void **state)
{
	struct sched *s = fake(2, 4);
	size_t dev = (size_t) -1; /* (set by pick) */

	(void) state;
	/* exactly capacity - headroom fits; one byte more does not */
	enq(s, 1, 1, 0, "cuda:0", 0, 8 * GiB - HEADROOM + 1);
	enq(s, 2, 1, 0, "cuda:0", 0, 8 * GiB - HEADROOM);
	assert_int_equal(pick(s, &dev, NULL), 2);
	assert_int_equal(dev, DEV_CUDA0);
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_release(s, 2);
	assert_int_equal(pick(s, NULL, NULL), -1); /* job 1 never fits */
	assert_int_equal(sched_queued(s), 1);
	sched_free(s);
}

static void
test_share_gpu_memory(void **state)
{
	struct sched *s = fake(2, 8);
	size_t dev = (size_t) -1; /* (set by pick) */
	uint64_t total = 0, grant;
	int started = 0;

	(void) state;
	/* 2 GiB jobs on cuda:0 (8 GiB, 512 MiB headroom): 3 fit, the 4th
	 * would need 8.5 GiB */
	for (int i = 1; i <= 5; i++)
		enq(s, i, 1, 0, "cuda:0", 0, 2 * GiB);
	while (pick(s, &dev, &grant) > 0) {
		assert_int_equal(dev, DEV_CUDA0);
		total += grant;
		started++;
	}
	assert_int_equal(started, 3);
	assert_true(D(s, DEV_CUDA0)->reserved == 6 * GiB);
	assert_true(total == 6 * GiB);
	assert_int_equal(D(s, DEV_CUDA0)->running, 3);
	/* one release lets exactly one more in */
	sched_release(s, 2);
	assert_int_equal(pick(s, NULL, NULL), 4);
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_free(s);
}

static void
test_share_gpu_slots(void **state)
{
	struct sched *s = fake(2, 4);
	size_t dev = (size_t) -1; /* (set by pick) */

	(void) state;
	/* tiny jobs: the 4 slots bind before memory does */
	for (int i = 1; i <= 6; i++)
		enq(s, i, 1, 0, "cuda:1", 0, 100 * MiB);
	for (int i = 1; i <= 4; i++) {
		assert_int_equal(pick(s, &dev, NULL), i);
		assert_int_equal(dev, DEV_CUDA1);
	}
	assert_int_equal(pick(s, NULL, NULL), -1);
	assert_int_equal(D(s, DEV_CUDA1)->running, 4);
	assert_true(D(s, DEV_CUDA1)->reserved == 400 * MiB);
	sched_release(s, 3);
	assert_int_equal(pick(s, NULL, NULL), 5);
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_free(s);
}

static void
test_cpu_uses_host_plus_device_bytes(void **state)
{
	struct sched *s = fake(4, 4);
	size_t dev = (size_t) -1; /* (set by pick) */
	uint64_t grant = 0;

	(void) state;
	/* on the cpu the backend's "device" buffers are host memory too: a
	 * cpu job reserves host + device bytes */
	enq(s, 1, 1, 0, "cpu", 20 * GiB, 10 * GiB);
	enq(s, 2, 1, 0, "cpu", 30 * GiB, 0);
	enq(s, 3, 1, 0, "cpu", 3 * GiB, 1 * GiB);
	assert_int_equal(pick(s, &dev, &grant), 1);
	assert_int_equal(dev, DEV_CPU);
	assert_true(grant == 30 * GiB);
	assert_int_equal(pick(s, &dev, &grant), 2);
	assert_true(D(s, DEV_CPU)->reserved == 60 * GiB);
	/* 60 + 3 + 0.5 would fit; 60 + (3 + 1) + 0.5 does not; and "cpu"
	 * never goes to a GPU */
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_release(s, 2);
	assert_int_equal(pick(s, &dev, &grant), 3);
	assert_true(grant == 4 * GiB);
	assert_true(D(s, DEV_CPU)->reserved == 34 * GiB);
	/* the helper the server's messages use agrees, and saturates */
	struct sched_job j = mk(9, 1, 0, "cpu", 5, 7);
	assert_true(sched_job_bytes(&j, SCHED_CPU) == 12);
	assert_true(sched_job_bytes(&j, SCHED_CUDA) == 7);
	j = mk(9, 1, 0, "cpu", UINT64_MAX - 1, 7);
	assert_true(sched_job_bytes(&j, SCHED_CPU) == UINT64_MAX);
	sched_free(s);
}

static void
enq_flops(struct sched *s, int64_t id, const char *req, uint64_t host,
          uint64_t dev, double flops)
{
	struct sched_job j = mk(id, 1, 0, req, host, dev);

	j.flops = flops;
	assert_int_equal(sched_enqueue(s, &j), 0);
}

static void
test_auto_big_job_waits_for_gpu(void **state)
{
	struct sched *s = fake(4, 4);
	struct sched *c = cpu_only(1);
	size_t dev = (size_t) -1; /* (set by pick) */

	(void) state;
	/* fill both GPUs' ledgers */
	enq_flops(s, 1, "cuda:0", 0, 7 * GiB, 0);
	enq_flops(s, 2, "cuda:1", 0, 15 * GiB, 0);
	assert_int_equal(pick(s, NULL, NULL), 1);
	assert_int_equal(pick(s, NULL, NULL), 2);
	/* above the threshold: waits for a GPU although the cpu is idle;
	 * a small job behind it falls back to the cpu */
	enq_flops(s, 3, "auto", GiB, 2 * GiB,
	          SCHED_AUTO_CPU_MAX_FLOPS_DEFAULT * 5);
	enq_flops(s, 4, "auto", GiB, 2 * GiB, 1e9);
	assert_int_equal(pick(s, &dev, NULL), 4);
	assert_int_equal(dev, DEV_CPU);
	assert_int_equal(pick(s, NULL, NULL), -1);
	/* exactly at the threshold still may use the cpu */
	enq_flops(s, 5, "auto", GiB, 2 * GiB, SCHED_AUTO_CPU_MAX_FLOPS_DEFAULT);
	assert_int_equal(pick(s, &dev, NULL), 5);
	assert_int_equal(dev, DEV_CPU);
	sched_release(s, 1);
	assert_int_equal(pick(s, &dev, NULL), 3);
	assert_int_equal(dev, DEV_CUDA0);
	/* a big job no GPU can ever hold still runs on the cpu */
	enq_flops(s, 6, "auto", GiB, 40 * GiB, 1e15);
	assert_int_equal(pick(s, &dev, NULL), 6);
	assert_int_equal(dev, DEV_CPU);
	/* threshold < 0: every job that fits a GPU waits for one */
	sched_set_auto_cpu_max_flops(s, -1);
	enq_flops(s, 7, "auto", 0, 7 * GiB, 0);
	assert_int_equal(pick(s, NULL, NULL), -1);
	/* a huge threshold: the old behaviour, fall back at once */
	sched_set_auto_cpu_max_flops(s, 1e300);
	assert_int_equal(pick(s, &dev, NULL), 7);
	assert_int_equal(dev, DEV_CPU);
	/* without GPUs the threshold does not matter */
	enq_flops(c, 8, "auto", GiB, GiB, 1e18);
	assert_int_equal(pick(c, &dev, NULL), 8);
	assert_int_equal(dev, 0);
	sched_free(s);
	sched_free(c);
}

static void
test_auto(void **state)
{
	struct sched *s = fake(4, 4);
	size_t dev = (size_t) -1; /* (set by pick) */
	uint64_t grant = 0;

	(void) state;
	/* both GPUs idle: the roomier cuda:1 */
	enq(s, 1, 1, 0, "auto", 2 * GiB, 10 * GiB);
	assert_int_equal(pick(s, &dev, &grant), 1);
	assert_int_equal(dev, DEV_CUDA1);
	assert_true(grant == 10 * GiB);
	/* cuda:1 has 6 GiB free, cuda:0 8: now cuda:0 is roomier */
	enq(s, 2, 1, 0, "auto", 2 * GiB, 1 * GiB);
	assert_int_equal(pick(s, &dev, NULL), 2);
	assert_int_equal(dev, DEV_CUDA0);
	/* 7 free on cuda:0, 6 on cuda:1: 5 + 0.5 fits both, cuda:0 roomier */
	enq(s, 3, 1, 0, "auto", 2 * GiB, 5 * GiB);
	assert_int_equal(pick(s, &dev, NULL), 3);
	assert_int_equal(dev, DEV_CUDA0);
	/* now cuda:0 has 2 GiB free, cuda:1 6: a 4 GiB job goes to cuda:1 */
	enq(s, 4, 1, 0, "auto", 2 * GiB, 4 * GiB);
	assert_int_equal(pick(s, &dev, NULL), 4);
	assert_int_equal(dev, DEV_CUDA1);
	/* no GPU has room: a small job falls back to the cpu, reserving
	 * host + device bytes there */
	enq(s, 5, 1, 0, "auto", 3 * GiB, 4 * GiB);
	assert_int_equal(pick(s, &dev, &grant), 5);
	assert_int_equal(dev, DEV_CPU);
	assert_true(grant == 7 * GiB);
	/* a job too big for every GPU runs on the cpu even when they idle */
	sched_release(s, 1);
	sched_release(s, 2);
	sched_release(s, 3);
	sched_release(s, 4);
	enq(s, 6, 1, 0, "auto", 3 * GiB, 40 * GiB);
	assert_int_equal(pick(s, &dev, NULL), 6);
	assert_int_equal(dev, DEV_CPU);
	/* "" is not auto (devname.h: one spelling per name): not a device
	 * name, never picked */
	struct sched_job e = mk(7, 1, 0, "", GiB, GiB);
	assert_int_equal(sched_fits_ever(s, &e), NQ_EBADDEVICE);
	enq(s, 7, 1, 0, "", GiB, GiB);
	assert_int_equal(pick(s, NULL, NULL), -1);
	enq(s, 8, 1, 0, "auto", GiB, GiB);
	assert_int_equal(pick(s, &dev, NULL), 8);
	assert_int_equal(dev, DEV_CUDA1);
	sched_free(s);
}

static void
test_cuda_any_and_n(void **state)
{
	struct sched *s = fake(4, 1);
	size_t dev = (size_t) -1; /* (set by pick) */

	(void) state;
	/* "cuda:1" only ever on cuda:1, even with cuda:0 idle */
	enq(s, 1, 1, 0, "cuda:1", 0, GiB);
	enq(s, 2, 1, 0, "cuda:1", 0, GiB);
	assert_int_equal(pick(s, &dev, NULL), 1);
	assert_int_equal(dev, DEV_CUDA1);
	assert_int_equal(pick(s, NULL, NULL), -1); /* 1 slot, taken */
	assert_int_equal(D(s, DEV_CUDA0)->running, 0);
	/* "cuda" takes whichever GPU has room; "cuda:0" its own */
	enq(s, 3, 1, 0, "cuda", 0, GiB);
	assert_int_equal(pick(s, &dev, NULL), 3);
	assert_int_equal(dev, DEV_CUDA0);
	sched_release(s, 1);
	assert_int_equal(pick(s, &dev, NULL), 2);
	assert_int_equal(dev, DEV_CUDA1);
	/* "cuda" never falls back to the cpu */
	enq(s, 4, 1, 0, "cuda", 0, GiB);
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_release(s, 3);
	assert_int_equal(pick(s, &dev, NULL), 4);
	assert_int_equal(dev, DEV_CUDA0);
	/* case matters (devname.h, as the server at submit): "CUDA:0" is
	 * not a device name; never picked */
	sched_release(s, 4);
	struct sched_job u = mk(5, 1, 0, "CUDA:0", 0, GiB);
	assert_int_equal(sched_fits_ever(s, &u), NQ_EBADDEVICE);
	enq(s, 5, 1, 0, "CUDA:0", 0, GiB);
	assert_int_equal(pick(s, NULL, NULL), -1);
	enq(s, 6, 1, 0, "cuda:0", 0, GiB);
	assert_int_equal(pick(s, &dev, NULL), 6);
	assert_int_equal(dev, DEV_CUDA0);
	sched_free(s);
}

static void
test_fits_ever(void **state)
{
	struct sched *s = fake(4, 4);
	struct sched *c = cpu_only(1);
	struct sched_job j;

	(void) state;
	j = mk(1, 1, 0, "cuda:0", 0, 7 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), 0);
	j = mk(1, 1, 0, "cuda:0", 0, 8 * GiB - HEADROOM + 1);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ETOOLARGE);
	j = mk(1, 1, 0, "cuda:1", 0, 12 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), 0);
	j = mk(1, 1, 0, "cuda", 0, 12 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), 0);
	j = mk(1, 1, 0, "cuda", 0, 20 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ETOOLARGE);
	j = mk(1, 1, 0, "cpu", 64 * GiB, 0);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ETOOLARGE);
	/* cpu: host + device bytes against the cpu's capacity */
	j = mk(1, 1, 0, "cpu", 60 * GiB, 3 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), 0);
	j = mk(1, 1, 0, "cpu", 61 * GiB, 3 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ETOOLARGE);
	j = mk(1, 1, 0, "cpu", 63 * GiB, UINT64_MAX);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ETOOLARGE);
	/* auto: the cpu can take what no GPU can */
	j = mk(1, 1, 0, "auto", GiB, 20 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), 0);
	j = mk(1, 1, 0, "auto", 100 * GiB, 20 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ETOOLARGE);
	/* estimates near 2^64 do not wrap around */
	j = mk(1, 1, 0, "auto", UINT64_MAX, UINT64_MAX - HEADROOM + 1);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ETOOLARGE);
	/* names that are not devices: EBADDEVICE */
	static const char *const bad[] = {
	        "cuda:", "cuda:1x", "cuda:-1",         "gpu",
	        "cpu:0", " cpu",    "cuda:99999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = mk(1, 1, 0, bad[i], 0, 0);
		assert_int_equal(sched_fits_ever(s, &j), NQ_EBADDEVICE);
	}
	/* a device name this server has no device for: ENODEV */
	j = mk(1, 1, 0, "cuda:2", 0, 0);
	assert_int_equal(sched_fits_ever(s, &j), NQ_ENODEV);
	/* a cpu-only host: no "cuda" at all, "auto" is the cpu */
	j = mk(1, 1, 0, "cuda", 0, 0);
	assert_int_equal(sched_fits_ever(c, &j), NQ_ENODEV);
	j = mk(1, 1, 0, "cuda:0", 0, 0);
	assert_int_equal(sched_fits_ever(c, &j), NQ_ENODEV);
	j = mk(1, 1, 0, "auto", GiB, 60 * GiB);
	assert_int_equal(sched_fits_ever(c, &j), 0);
	/* on the cpu the device estimate is host memory as well */
	j = mk(1, 1, 0, "auto", GiB, 100 * GiB);
	assert_int_equal(sched_fits_ever(c, &j), NQ_ETOOLARGE);
	/* busy devices do not matter: "ever" means when idle */
	enq(s, 50, 1, 0, "cuda:0", 0, 7 * GiB);
	assert_int_equal(pick(s, NULL, NULL), 50);
	j = mk(1, 1, 0, "cuda:0", 0, 7 * GiB);
	assert_int_equal(sched_fits_ever(s, &j), 0);
	sched_free(s);
	sched_free(c);
}

static void
test_no_head_of_line_blocking(void **state)
{
	struct sched *s = fake(1, 4);
	size_t dev = (size_t) -1; /* (set by pick) */

	(void) state;
	enq(s, 1, 1, 0, "cuda:0", 0, 3 * GiB);
	assert_int_equal(pick(s, NULL, NULL), 1);
	/* owner 1's next job (high priority) does not fit cuda:0 now; its
	 * smaller one behind it does, and so does another owner's */
	enq(s, 2, 1, 9, "cuda:0", 0, 6 * GiB);
	enq(s, 3, 1, 0, "cuda:0", 0, 2 * GiB);
	enq(s, 4, 2, 0, "cuda:0", 0, 2 * GiB);
	enq(s, 5, 2, 0, "nonsense", 0, 0); /* never runs, blocks nothing */
	assert_int_equal(pick(s, &dev, NULL), 4); /* owner 2 has 0 running */
	assert_int_equal(pick(s, &dev, NULL), 3);
	assert_int_equal(dev, DEV_CUDA0);
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_release(s, 1);
	sched_release(s, 3);
	sched_release(s, 4);
	assert_int_equal(pick(s, NULL, NULL), 2);
	assert_int_equal(pick(s, NULL, NULL), -1);
	assert_int_equal(sched_queued(s), 1);
	assert_int_equal(sched_dequeue(s, 5), 0);
	sched_free(s);
}

/* ---- order --------------------------------------------------------- */

static void
test_fairness_big_queue_vs_one(void **state)
{
	struct sched *s = cpu_only(1);
	int64_t first, second;

	(void) state;
	for (int i = 0; i < 500; i++)
		enq(s, 1 + i, 1000, 0, "cpu", MiB, 0);
	enq(s, 9999, 2000, 0, "cpu", MiB, 0);
	first = pick(s, NULL, NULL);
	assert_true(first > 0);
	assert_int_equal(pick(s, NULL, NULL), -1); /* one slot */
	sched_release(s, first);
	second = pick(s, NULL, NULL);
	assert_true(first == 9999 || second == 9999);
	sched_release(s, second);
	/* and A's jobs then continue in order */
	int64_t prev = 0;
	for (int i = 0; i < 499; i++) {
		int64_t id = pick(s, NULL, NULL);
		assert_true(id > prev && id <= 500);
		prev = id;
		sched_release(s, id);
	}
	assert_int_equal(pick(s, NULL, NULL), -1);
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
}

static void
test_round_robin_three_owners(void **state)
{
	struct sched *s = cpu_only(1);
	int count[3] = {0, 0, 0};

	(void) state;
	/* owners submit in bursts: all of A, then B, then C */
	for (int o = 0; o < 3; o++)
		for (int i = 0; i < 100; i++)
			enq(s, o * 1000 + i, (uint32_t) (10 + o), 0, "cpu", MiB,
			    0);
	for (int p = 0; p < 300; p++) {
		int64_t id = pick(s, NULL, NULL);
		assert_true(id >= 0);
		int o = (int) (id / 1000);
		count[o]++;
		int lo = count[0], hi = count[0];
		for (int k = 1; k < 3; k++) {
			lo = count[k] < lo ? count[k] : lo;
			hi = count[k] > hi ? count[k] : hi;
		}
		assert_true(hi - lo <= 1);
		sched_release(s, id);
	}
	assert_int_equal(count[0], 100);
	assert_int_equal(count[1], 100);
	assert_int_equal(count[2], 100);
	sched_free(s);
}

static void
test_fewest_running_first(void **state)
{
	struct sched *s = cpu_only(3);

	(void) state;
	enq(s, 1, 1, 0, "cpu", MiB, 0);
	enq(s, 2, 1, 0, "cpu", MiB, 0);
	enq(s, 3, 1, 0, "cpu", MiB, 0);
	assert_int_equal(pick(s, NULL, NULL), 1);
	/* owner 2 arrives later and with lower priority, but has nothing
	 * running while owner 1 has a job running */
	enq(s, 4, 2, -5, "cpu", MiB, 0);
	assert_int_equal(pick(s, NULL, NULL), 4);
	/* both have one running; owner 1 started least recently */
	enq(s, 5, 2, 0, "cpu", MiB, 0);
	assert_int_equal(pick(s, NULL, NULL), 2);
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_release(s, 1);
	sched_release(s, 2);
	/* owner 1: 0 running, owner 2: 1 running */
	assert_int_equal(pick(s, NULL, NULL), 3);
	assert_int_equal(pick(s, NULL, NULL), 5);
	sched_free(s);
}

static void
test_priority_within_owner(void **state)
{
	struct sched *s = cpu_only(1);
	static const int prio[] = {0, 5, -1, 5, 10, 0, -1};
	/* expected: 10 (id 5), 5 (ids 2, 4), 0 (ids 1, 6), -1 (ids 3, 7) */
	static const int64_t want[] = {5, 2, 4, 1, 6, 3, 7};

	(void) state;
	for (int i = 0; i < 7; i++)
		enq(s, i + 1, 42, prio[i], "cpu", MiB, 0);
	for (int i = 0; i < 7; i++) {
		int64_t id = pick(s, NULL, NULL);
		assert_int_equal(id, want[i]);
		sched_release(s, id);
	}
	assert_int_equal(pick(s, NULL, NULL), -1);
	sched_free(s);
}

static void
test_fifo_equal_priority(void **state)
{
	struct sched *s = cpu_only(1);
	struct sched_job j;
	uint64_t prev = 0;

	(void) state;
	/* enqueued out of seq order (e.g. after a restart's recovery): seq,
	 * not arrival, decides */
	for (int i = 0; i < 64; i++) {
		j = mk(100 + i, 7, 3, "cpu", MiB, 0);
		j.seq = (uint64_t) ((i * 37) % 64); /* a permutation */
		assert_int_equal(sched_enqueue(s, &j), 0);
	}
	for (int i = 0; i < 64; i++) {
		size_t dev;
		uint64_t grant;
		assert_int_equal(sched_next(s, &j, &dev, &grant), 1);
		assert_true(i == 0 || j.seq > prev);
		assert_int_equal(j.seq, (uint64_t) i);
		prev = j.seq;
		/* the job comes back as it went in */
		assert_int_equal(j.owner, 7);
		assert_int_equal(j.priority, 3);
		assert_string_equal(j.device_req, "cpu");
		assert_true(j.host_bytes == MiB);
		sched_release(s, j.id);
	}
	sched_free(s);
}

/* ---- bookkeeping --------------------------------------------------- */

static struct nq_test_rng rng_state = NQ_TEST_RNG_INIT(12345);

static uint32_t
rng(void)
{
	return nq_test_rng_u32(&rng_state);
}

static void
test_release_restores_ledger(void **state)
{
	struct sched *s = fake(3, 3);
	static const char *const reqs[] = {"auto", "cpu", "cuda", "cuda:0",
	                                   "cuda:1"};
	int64_t running[64];
	uint64_t grants[64];
	size_t devs[64];
	int nrun = 0, started = 0;

	(void) state;
	for (int i = 0; i < 400; i++) {
		uint64_t h = (uint64_t) (rng() % 20000) * MiB;
		uint64_t d = (uint64_t) (rng() % 9000) * MiB + 1;
		enq(s, i + 1, rng() % 5, (int) (rng() % 3), reqs[rng() % 5], h,
		    d);
	}
	while (sched_queued(s) > 0 || nrun > 0) {
		size_t dev;
		uint64_t grant;
		int64_t id;
		while (nrun < 64 && (id = pick(s, &dev, &grant)) > 0) {
			running[nrun] = id;
			grants[nrun] = grant;
			devs[nrun] = dev;
			nrun++;
			started++;
		}
		/* the ledger is the sum of the grants, per device */
		for (size_t k = 0; k < sched_device_count(s); k++) {
			uint64_t sum = 0;
			int n = 0;
			for (int r = 0; r < nrun; r++) {
				if (devs[r] == k) {
					sum += grants[r];
					n++;
				}
			}
			assert_true(D(s, k)->reserved == sum);
			assert_int_equal(D(s, k)->running, n);
			assert_true(D(s, k)->running <= D(s, k)->slots);
			assert_true(sum + (n ? HEADROOM : 0) <=
			            D(s, k)->capacity);
		}
		if (nrun == 0)
			break; /* what is left can never start */
		int r = (int) (rng() % (uint32_t) nrun);
		sched_release(s, running[r]);
		running[r] = running[nrun - 1];
		grants[r] = grants[nrun - 1];
		devs[r] = devs[nrun - 1];
		nrun--;
	}
	for (size_t k = 0; k < sched_device_count(s); k++) {
		assert_true(D(s, k)->reserved == 0);
		assert_int_equal(D(s, k)->running, 0);
	}
	/* the only jobs left are ones fits_ever would have refused */
	assert_true(started > 300);
	assert_int_equal((size_t) (400 - started), sched_queued(s));
	/* releasing twice, or an unknown id, changes nothing */
	sched_release(s, 1);
	sched_release(s, 123456);
	for (size_t k = 0; k < sched_device_count(s); k++)
		assert_true(D(s, k)->reserved == 0);
	sched_free(s);
}

static void
test_dequeue(void **state)
{
	struct sched *s = cpu_only(1);

	(void) state;
	enq(s, 1, 1, 0, "cpu", MiB, 0);
	enq(s, 2, 1, 0, "cpu", MiB, 0);
	enq(s, 3, 2, 0, "cpu", MiB, 0);
	enq(s, 4, 1, 0, "cpu", MiB, 0);
	assert_int_equal(sched_queued(s), 4);
	assert_int_equal(sched_dequeue(s, 2), 0);
	assert_int_equal(sched_dequeue(s, 2), NQ_ENOJOB);
	assert_int_equal(sched_dequeue(s, 77), NQ_ENOJOB);
	assert_int_equal(sched_queued(s), 3);
	assert_int_equal(pick(s, NULL, NULL), 1);
	/* a running job is not dequeued (release it instead) */
	assert_int_equal(sched_dequeue(s, 1), NQ_ENOJOB);
	sched_release(s, 1);
	assert_int_equal(pick(s, NULL, NULL), 3);
	sched_release(s, 3);
	assert_int_equal(pick(s, NULL, NULL), 4);
	sched_release(s, 4);
	assert_int_equal(pick(s, NULL, NULL), -1);
	/* an owner's only job, then its queue works again */
	enq(s, 5, 9, 0, "cpu", MiB, 0);
	assert_int_equal(sched_dequeue(s, 5), 0);
	assert_int_equal(pick(s, NULL, NULL), -1);
	enq(s, 6, 9, 0, "cpu", MiB, 0);
	assert_int_equal(pick(s, NULL, NULL), 6);
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
}

static void
test_duplicate_and_requeue(void **state)
{
	struct sched *s = cpu_only(1);
	struct sched_job j = mk(1, 1, 0, "cpu", MiB, 0);

	(void) state;
	assert_int_equal(sched_enqueue(s, &j), 0);
	assert_int_equal(sched_enqueue(s, &j), NQ_ESTATE);
	assert_int_equal(sched_queued(s), 1);
	assert_int_equal(pick(s, NULL, NULL), 1);
	/* running: still a duplicate until released */
	assert_int_equal(sched_enqueue(s, &j), NQ_ESTATE);
	sched_release(s, 1);
	assert_int_equal(sched_enqueue(s, &j), 0); /* a requeue */
	assert_int_equal(pick(s, NULL, NULL), 1);
	sched_release(s, 1);
	sched_free(s);
}

static void
test_no_job_picked_twice(void **state)
{
	enum { N = 3000 };
	struct sched *s = fake(4, 4);
	static const char *const reqs[] = {"auto", "cpu", "cuda", "cuda:0",
	                                   "cuda:1"};
	static unsigned char seen[N + 1];
	int64_t running[64];
	int nrun = 0, picked = 0, enqueued = 0;

	(void) state;
	memset(seen, 0, sizeof(seen));
	/* jobs arrive, start, end and get canceled in a random mix; all of
	 * them fit some device, so the loop drains */
	for (long step = 0;; step++) {
		assert_true(step < 10000000);
		if (enqueued == N && sched_queued(s) == 0 && nrun == 0)
			break;
		uint32_t r = rng() % 10;
		if (r < 4 && enqueued < N) {
			enqueued++;
			enq(s, enqueued, rng() % 4, (int) (rng() % 2),
			    reqs[rng() % 5], (rng() % 8) * GiB,
			    (rng() % 7) * GiB);
		} else if (r < 5 && sched_queued(s) > 0 && enqueued > 0) {
			int64_t id =
			        1 + (int64_t) (rng() % (uint32_t) enqueued);
			if (sched_dequeue(s, id) == 0) {
				assert_int_equal(seen[id], 0);
				seen[id] = 2;
			}
		} else if (r < 8) {
			int64_t id;
			if (nrun < 64 && (id = pick(s, NULL, NULL)) > 0) {
				assert_true(id >= 1 && id <= enqueued);
				assert_int_equal(seen[id], 0);
				seen[id] = 1;
				running[nrun++] = id;
				picked++;
			}
		} else if (nrun > 0) {
			int k = (int) (rng() % (uint32_t) nrun);
			sched_release(s, running[k]);
			running[k] = running[--nrun];
		}
	}
	assert_true(picked > N / 2);
	/* every job was picked once or canceled once */
	for (int i = 1; i <= N; i++)
		assert_true(seen[i] == 1 || seen[i] == 2);
	assert_int_equal(sched_queued(s), 0);
	sched_free(s);
}

static void
test_large_queue(void **state)
{
	enum { N = 100000 };
	struct sched *s = cpu_only(8);
	double t0;
	int64_t running[8];
	int nrun = 0, picked = 0;
	double secs;

	(void) state;
	t0 = nq_mono_s();
	for (int i = 0; i < N; i++)
		enq(s, i + 1, (uint32_t) (i % 13), (int) (i % 3), "cpu", MiB,
		    0);
	/* remove some from the middle of queues */
	for (int i = 1; i <= N; i += 97)
		assert_int_equal(sched_dequeue(s, i), 0);
	while (sched_queued(s) > 0) {
		int64_t id;
		while (nrun < 8 && (id = pick(s, NULL, NULL)) > 0) {
			running[nrun++] = id;
			picked++;
		}
		sched_release(s, running[0]);
		running[0] = running[--nrun];
	}
	secs = nq_mono_s() - t0;
	print_message("100k enqueue + pick + release: %.3f s\n", secs);
	assert_int_equal(picked, N - (N + 96) / 97);
	assert_true(secs < 20.0);
	sched_free(s);
}

/* sched_plan: the queue in start order, each with its reason */
static void
plan(struct sched *s, struct sched_plan_entry *e, size_t max, size_t expect_n)
{
	size_t n = 999;

	assert_int_equal(sched_plan(s, e, max, &n), 0);
	assert_int_equal(n, expect_n);
}

static void
test_plan_order_matches_next(void **state)
{
	struct sched *s = cpu_only(1);
	struct sched_plan_entry e[8];
	char txt[128];

	(void) state;
	enq(s, 1, 100, 0, "cpu", GiB, 0);
	enq(s, 2, 100, 0, "cpu", GiB, 0);
	enq(s, 3, 200, 0, "cpu", GiB, 0);
	/* one slot: 1 starts; 3 (another owner) comes before 2 by fairness */
	plan(s, e, 8, 3);
	assert_int_equal(e[0].id, 1);
	assert_int_equal(e[0].why, SCHED_WAIT_READY);
	assert_int_equal(e[1].id, 3);
	assert_int_equal(e[1].why, SCHED_WAIT_BEHIND);
	assert_int_equal(e[1].dev, 0);
	sched_wait_text(s, &e[1], txt, sizeof(txt));
	assert_string_equal(txt, "behind other users' jobs on cpu");
	assert_int_equal(e[2].id, 2);
	assert_int_equal(e[2].why, SCHED_WAIT_BEHIND);
	/* max: only the first entries */
	plan(s, e, 1, 1);
	assert_int_equal(e[0].id, 1);
	/* the plan changed nothing: sched_next starts what it said */
	assert_int_equal(pick(s, NULL, NULL), 1);
	assert_int_equal(pick(s, NULL, NULL), -1);
	plan(s, e, 8, 2);
	assert_int_equal(e[0].id, 3);
	assert_int_equal(e[0].why, SCHED_WAIT_SLOT);
	sched_wait_text(s, &e[0], txt, sizeof(txt));
	assert_string_equal(txt, "no free slot on cpu");
	assert_int_equal(e[1].id, 2);
	sched_release(s, 1);
	assert_int_equal(pick(s, NULL, NULL), 3);
	sched_release(s, 3);
	assert_int_equal(pick(s, NULL, NULL), 2);
	sched_release(s, 2);
	plan(s, e, 8, 0);
	sched_free(s);

	/* several slots: the plan's order is sched_next's order */
	s = cpu_only(8);
	enq(s, 1, 100, 0, "cpu", GiB, 0);
	enq(s, 2, 100, 5, "cpu", GiB, 0);
	enq(s, 3, 200, 0, "cpu", GiB, 0);
	enq(s, 4, 300, 0, "cpu", GiB, 0);
	enq(s, 5, 200, 0, "cpu", GiB, 0);
	plan(s, e, 8, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(e[i].why, SCHED_WAIT_READY);
		assert_int_equal(pick(s, NULL, NULL), e[i].id);
	}
	assert_int_equal(e[0].id, 2); /* priority within owner 100 */
	sched_free(s);

	/* behind its owner's own job */
	s = cpu_only(1);
	enq(s, 1, 100, 0, "cpu", GiB, 0);
	enq(s, 2, 100, 0, "cpu", GiB, 0);
	plan(s, e, 8, 2);
	assert_int_equal(e[1].why, SCHED_WAIT_BEHIND_OWN);
	sched_wait_text(s, &e[1], txt, sizeof(txt));
	assert_string_equal(txt, "behind earlier jobs on cpu");
	sched_free(s);
}

static void
test_plan_reasons(void **state)
{
	struct sched *s = fake(1, 2);
	struct sched_plan_entry e[8];
	struct sched_job j;
	char txt[128];

	(void) state;
	/* cuda:0 (8 GiB): 6 GiB running; cuda:1 (16 GiB): both slots busy */
	enq(s, 1, 100, 0, "cuda:0", 0, 6 * GiB);
	assert_int_equal(pick(s, NULL, NULL), 1);
	enq(s, 2, 100, 0, "cuda:1", 0, GiB);
	enq(s, 3, 100, 0, "cuda:1", 0, GiB);
	assert_int_equal(pick(s, NULL, NULL), 2);
	assert_int_equal(pick(s, NULL, NULL), 3);
	enq(s, 4, 100, 0, "cpu", GiB, 0);
	assert_int_equal(pick(s, NULL, NULL), 4);
	assert_int_equal(pick(s, NULL, NULL), -1);

	enq(s, 10, 200, 0, "cuda:0", 0, 3 * GiB); /* 6+3+0.5 > 8 */
	enq(s, 11, 300, 0, "cuda:1", 0, GiB);
	enq(s, 12, 400, 0, "cpu", GiB, 0);
	enq(s, 13, 500, 0, "cuda:0", 0, 100 * GiB);
	j = mk(14, 600, 0, "auto", GiB, 2 * GiB);
	j.flops = 1e13; /* too big for the cpu while a GPU could hold it */
	assert_int_equal(sched_enqueue(s, &j), 0);
	plan(s, e, 8, 5);
	for (size_t i = 0; i < 5; i++) {
		sched_wait_text(s, &e[i], txt, sizeof(txt));
		switch (e[i].id) {
		case 10:
			assert_int_equal(e[i].why, SCHED_WAIT_MEMORY);
			assert_int_equal(e[i].dev, DEV_CUDA0);
			assert_int_equal(e[i].need, 3 * GiB);
			assert_string_equal(
			        txt,
			        "waiting for memory on cuda:0 (needs 3.0 GiB)");
			break;
		case 11:
			assert_int_equal(e[i].why, SCHED_WAIT_SLOT);
			assert_string_equal(txt, "no free slot on cuda:1");
			break;
		case 12:
			assert_int_equal(e[i].why, SCHED_WAIT_SLOT);
			assert_int_equal(e[i].dev, DEV_CPU);
			break;
		case 13:
			assert_int_equal(e[i].why, SCHED_WAIT_NEVER);
			assert_int_equal(e[i].dev, -1);
			break;
		case 14:
			/* cuda:0 has a slot but not 2 GiB + headroom */
			assert_int_equal(e[i].why, SCHED_WAIT_GPU);
			assert_int_equal(e[i].dev, DEV_CUDA0);
			assert_string_equal(
			        txt, "waiting for a GPU (too big for the cpu)");
			break;
		default:
			fail_msg("unexpected id %lld", (long long) e[i].id);
		}
	}
	/* the first job out frees the room: 10 is ready now */
	sched_release(s, 1);
	plan(s, e, 8, 5);
	for (size_t i = 0; i < 5; i++) {
		if (e[i].id == 10)
			assert_int_equal(e[i].why, SCHED_WAIT_READY);
	}
	sched_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_devices),
	        cmocka_unit_test(test_fit_wait_release),
	        cmocka_unit_test(test_boundary_headroom),
	        cmocka_unit_test(test_share_gpu_memory),
	        cmocka_unit_test(test_share_gpu_slots),
	        cmocka_unit_test(test_cpu_uses_host_plus_device_bytes),
	        cmocka_unit_test(test_auto),
	        cmocka_unit_test(test_auto_big_job_waits_for_gpu),
	        cmocka_unit_test(test_cuda_any_and_n),
	        cmocka_unit_test(test_fits_ever),
	        cmocka_unit_test(test_no_head_of_line_blocking),
	        cmocka_unit_test(test_fairness_big_queue_vs_one),
	        cmocka_unit_test(test_round_robin_three_owners),
	        cmocka_unit_test(test_fewest_running_first),
	        cmocka_unit_test(test_priority_within_owner),
	        cmocka_unit_test(test_fifo_equal_priority),
	        cmocka_unit_test(test_release_restores_ledger),
	        cmocka_unit_test(test_dequeue),
	        cmocka_unit_test(test_duplicate_and_requeue),
	        cmocka_unit_test(test_no_job_picked_twice),
	        cmocka_unit_test(test_large_queue),
	        cmocka_unit_test(test_plan_order_matches_next),
	        cmocka_unit_test(test_plan_reasons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
