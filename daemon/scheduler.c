/*
 * scheduler.c — the scheduling policy of scheduler.h.
 *
 * Each owner keeps its queued jobs in one array sorted by (priority desc,
 * seq asc), live between head and len so that taking the first job (the
 * usual case) is O(1).  Owners live in an array sorted by uid and are kept
 * for the daemon's life: a lab has few uids, and keeping last_start means
 * an owner cannot reset its place in the rotation by draining its queue.
 * A hash table from job id gives O(1) duplicate checks and releases.
 *
 * sched_next() walks owners in fairness order and each owner's jobs in
 * priority order and starts the first job that fits a device now: at most
 * O(queued × devices) per call, with no head-of-line blocking.
 */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devname.h"
#include "nq_error.h"

/* What a job's device_req asks for, parsed once at enqueue. */
enum req_kind { REQ_AUTO, REQ_CPU, REQ_CUDA_ANY, REQ_CUDA_N, REQ_BAD };

struct qjob {
	struct sched_job j;
	enum req_kind req;
	int req_index; /* REQ_CUDA_N */
};

struct owner {
	uint32_t uid;
	int running;
	uint64_t last_start; /* tick of its latest start; 0 = never */
	struct qjob **q;     /* sorted; live in [head, len) */
	size_t head, len, cap;
};

enum { SLOT_EMPTY = 0, SLOT_QUEUED, SLOT_RUNNING };

struct slot {
	int64_t id;
	int kind;
	uint32_t owner;
	size_t dev;     /* SLOT_RUNNING */
	uint64_t grant; /* SLOT_RUNNING */
};

struct sched {
	uint64_t headroom;
	double auto_cpu_max_flops;
	struct sched_device *dev;
	size_t ndev, capdev;
	struct owner **own; /* sorted by uid */
	size_t nown, capown;
	struct owner **cand; /* scratch for sched_next, capown entries */
	size_t nqueued;
	uint64_t tick;
	struct slot *tab; /* open addressing, linear probing */
	size_t tabcap, tabn;
};

/* ---- id table ------------------------------------------------------ */

static size_t
hash_id(int64_t id, size_t mask)
{
	uint64_t x = (uint64_t) id + 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (size_t) (x ^ (x >> 31)) & mask;
}

static struct slot *
tab_find(const struct sched *s, int64_t id)
{
	size_t mask, i;

	if (s->tabcap == 0)
		return NULL;
	mask = s->tabcap - 1;
	for (i = hash_id(id, mask); s->tab[i].kind != SLOT_EMPTY;
	     i = (i + 1) & mask) {
		if (s->tab[i].id == id)
			return &s->tab[i];
	}
	return NULL;
}

static struct slot *
tab_insert_nogrow(struct sched *s, const struct slot *v)
{
	size_t mask = s->tabcap - 1, i = hash_id(v->id, mask);

	while (s->tab[i].kind != SLOT_EMPTY)
		i = (i + 1) & mask;
	s->tab[i] = *v;
	s->tabn++;
	return &s->tab[i];
}

/* Keeps the load at most 1/2 so probes stay short. */
static int
tab_reserve(struct sched *s)
{
	struct slot *old = s->tab;
	size_t oldcap = s->tabcap, ncap;

	if ((s->tabn + 1) * 2 <= s->tabcap)
		return 0;
	ncap = oldcap ? oldcap * 2 : 64;
	s->tab = calloc(ncap, sizeof(*s->tab));
	if (s->tab == NULL) {
		s->tab = old;
		return NQ_ENOMEM;
	}
	s->tabcap = ncap;
	s->tabn = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].kind != SLOT_EMPTY)
			tab_insert_nogrow(s, &old[i]);
	}
	free(old);
	return 0;
}

/* Backward-shift deletion: no tombstones, probes never lengthen. */
static void
tab_remove(struct sched *s, struct slot *e)
{
	size_t mask = s->tabcap - 1, i = (size_t) (e - s->tab), j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (s->tab[j].kind == SLOT_EMPTY)
			break;
		size_t k = hash_id(s->tab[j].id, mask);
		/* can the entry at j move back to i? only if its home k is
		 * not cyclically in (i, j] */
		int between = i <= j ? (k > i && k <= j) : (k > i || k <= j);
		if (!between) {
			s->tab[i] = s->tab[j];
			i = j;
		}
	}
	s->tab[i].kind = SLOT_EMPTY;
	s->tabn--;
}

/* ---- owners -------------------------------------------------------- */

static size_t
owner_pos(const struct sched *s, uint32_t uid)
{
	size_t lo = 0, hi = s->nown;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->own[mid]->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct owner *
owner_find(const struct sched *s, uint32_t uid)
{
	size_t p = owner_pos(s, uid);

	return p < s->nown && s->own[p]->uid == uid ? s->own[p] : NULL;
}

static struct owner *
owner_get(struct sched *s, uint32_t uid)
{
	size_t p = owner_pos(s, uid);
	struct owner *o;

	if (p < s->nown && s->own[p]->uid == uid)
		return s->own[p];
	if (s->nown == s->capown) {
		size_t ncap = s->capown ? s->capown * 2 : 8;
		struct owner **no = realloc(s->own, ncap * sizeof(*no));
		if (no == NULL)
			return NULL;
		s->own = no;
		struct owner **nc = realloc(s->cand, ncap * sizeof(*nc));
		if (nc == NULL)
			return NULL;
		s->cand = nc;
		s->capown = ncap;
	}
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	o->uid = uid;
	memmove(&s->own[p + 1], &s->own[p], (s->nown - p) * sizeof(*s->own));
	s->own[p] = o;
	s->nown++;
	return o;
}

/* Does a go before b within one owner? */
static int
job_before(const struct sched_job *a, const struct sched_job *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	if (a->seq != b->seq)
		return a->seq < b->seq;
	return a->id < b->id;
}

static int
owner_push(struct owner *o, struct qjob *qj)
{
	size_t lo = o->head, hi = o->len;

	/* first position whose job goes after qj: equal keys keep
	 * insertion order */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (job_before(&qj->j, &o->q[mid]->j))
			hi = mid;
		else
			lo = mid + 1;
	}
	if (o->len == o->cap) {
		if (o->head > 0) {
			memmove(o->q, o->q + o->head,
			        (o->len - o->head) * sizeof(*o->q));
			o->len -= o->head;
			lo -= o->head;
			o->head = 0;
		} else {
			size_t ncap = o->cap ? o->cap * 2 : 16;
			struct qjob **nq = realloc(o->q, ncap * sizeof(*nq));
			if (nq == NULL)
				return NQ_ENOMEM;
			o->q = nq;
			o->cap = ncap;
		}
	}
	memmove(&o->q[lo + 1], &o->q[lo], (o->len - lo) * sizeof(*o->q));
	o->q[lo] = qj;
	o->len++;
	return 0;
}

static void
owner_remove_at(struct owner *o, size_t i)
{
	if (i == o->head) {
		o->head++;
	} else {
		memmove(&o->q[i], &o->q[i + 1],
		        (o->len - i - 1) * sizeof(*o->q));
		o->len--;
	}
	if (o->head == o->len)
		o->head = o->len = 0;
}

/* ---- devices ------------------------------------------------------- */

/* device_req by devname.h's one rule */
static enum req_kind
parse_req(const char *r, size_t cap, int *index)
{
	struct devname dn;

	*index = 0;
	if (strnlen(r, cap) == cap || devname_parse(r, &dn) != NQ_OK)
		return REQ_BAD;
	switch (dn.kind) {
	case DEVNAME_AUTO:
		return REQ_AUTO;
	case DEVNAME_CPU:
		return REQ_CPU;
	case DEVNAME_CUDA:
		return REQ_CUDA_ANY;
	case DEVNAME_CUDA_N:
	case DEVNAME_FAKE_N: /* a test device stands in for GPU N */
		*index = dn.index;
		return REQ_CUDA_N;
	}
	return REQ_BAD;
}

/* Can a device with the given ledger take est bytes more? Overflow-safe:
 * capacities near UINT64_MAX mean "unlimited" to some callers. */
static int
ledger_fits(uint64_t capacity, uint64_t reserved, uint64_t est,
            uint64_t headroom)
{
	if (reserved > capacity)
		return 0;
	if (est > UINT64_MAX - headroom)
		return 0;
	return est + headroom <= capacity - reserved;
}

uint64_t
sched_job_bytes(const struct sched_job *j, enum sched_dev_kind kind)
{
	if (kind == SCHED_CUDA)
		return j->device_bytes;
	if (j->host_bytes > UINT64_MAX - j->device_bytes)
		return UINT64_MAX;
	return j->host_bytes + j->device_bytes;
}

static uint64_t
estimate_on(const struct sched_device *d, const struct sched_job *j)
{
	return sched_job_bytes(j, d->kind);
}

static int
dev_matches(const struct sched_device *d, enum req_kind req, int index,
            enum sched_dev_kind want)
{
	if (d->kind != want)
		return 0;
	return req != REQ_CUDA_N || d->index == index;
}

/* The device of kind `want` (and ordinal `index` for REQ_CUDA_N) with the
 * most free ledger bytes on which the job fits now; -1 when none. */
static long
pick_kind(const struct sched *s, const struct sched_device *ledger,
          const struct qjob *qj, enum sched_dev_kind want)
{
	long best = -1;
	uint64_t best_free = 0;

	for (size_t i = 0; i < s->ndev; i++) {
		const struct sched_device *d = &ledger[i];
		if (!dev_matches(d, qj->req, qj->req_index, want))
			continue;
		if (d->running >= d->slots ||
		    !ledger_fits(d->capacity, d->reserved,
		                 estimate_on(d, &qj->j), s->headroom))
			continue;
		uint64_t free_bytes = d->capacity - d->reserved;
		if (best < 0 || free_bytes > best_free) {
			best = (long) i;
			best_free = free_bytes;
		}
	}
	return best;
}

static int
gpu_fits_ever(const struct sched *s, const struct sched_job *j)
{
	for (size_t i = 0; i < s->ndev; i++) {
		const struct sched_device *d = &s->dev[i];
		if (d->kind == SCHED_CUDA && d->slots > 0 &&
		    ledger_fits(d->capacity, 0, estimate_on(d, j), s->headroom))
			return 1;
	}
	return 0;
}

/* May an "auto" job run on the cpu? A big job waits for a GPU rather
 * than taking the cpu for hours; one no GPU can ever hold still falls
 * back. */
static int
auto_cpu_ok(const struct sched *s, const struct qjob *qj)
{
	return qj->j.flops <= s->auto_cpu_max_flops ||
	       !gpu_fits_ever(s, &qj->j);
}

/* The device the job starts on now by the ledger `ledger` (s->dev, or
 * sched_plan's copy); -1 when none. */
static long
pick_device(const struct sched *s, const struct sched_device *ledger,
            const struct qjob *qj)
{
	long d;

	switch (qj->req) {
	case REQ_CPU:
		return pick_kind(s, ledger, qj, SCHED_CPU);
	case REQ_CUDA_ANY:
	case REQ_CUDA_N:
		return pick_kind(s, ledger, qj, SCHED_CUDA);
	case REQ_AUTO:
		d = pick_kind(s, ledger, qj, SCHED_CUDA);
		if (d >= 0)
			return d;
		if (!auto_cpu_ok(s, qj))
			return -1;
		return pick_kind(s, ledger, qj, SCHED_CPU);
	case REQ_BAD:
		break;
	}
	return -1;
}

/* ---- public -------------------------------------------------------- */

struct sched *
sched_new(uint64_t headroom_bytes)
{
	struct sched *s = calloc(1, sizeof(*s));

	if (s != NULL) {
		s->headroom = headroom_bytes;
		s->auto_cpu_max_flops = SCHED_AUTO_CPU_MAX_FLOPS_DEFAULT;
	}
	return s;
}

void
sched_set_auto_cpu_max_flops(struct sched *s, double max_flops)
{
	s->auto_cpu_max_flops = max_flops;
}

void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nown; i++) {
		struct owner *o = s->own[i];
		for (size_t k = o->head; k < o->len; k++)
			free(o->q[k]);
		free(o->q);
		free(o);
	}
	free(s->own);
	free(s->cand);
	free(s->dev);
	free(s->tab);
	free(s);
}

int
sched_add_device(struct sched *s, const struct sched_device *d)
{
	size_t n = strnlen(d->name, sizeof(d->name));

	if (n == 0 || n == sizeof(d->name) || d->slots < 0 ||
	    (d->kind != SCHED_CPU && d->kind != SCHED_CUDA))
		return -1;
	for (size_t i = 0; i < s->ndev; i++) {
		if (strcmp(s->dev[i].name, d->name) == 0)
			return -1;
		/* "cuda:N" must name one device */
		if (d->kind == SCHED_CUDA && s->dev[i].kind == SCHED_CUDA &&
		    s->dev[i].index == d->index)
			return -1;
	}
	if (s->ndev == s->capdev) {
		size_t ncap = s->capdev ? s->capdev * 2 : 4;
		struct sched_device *nd = realloc(s->dev, ncap * sizeof(*nd));
		if (nd == NULL)
			return -1;
		s->dev = nd;
		s->capdev = ncap;
	}
	s->dev[s->ndev] = *d;
	return (int) s->ndev++;
}

size_t
sched_device_count(const struct sched *s)
{
	return s->ndev;
}

const struct sched_device *
sched_device_at(const struct sched *s, size_t i)
{
	return i < s->ndev ? &s->dev[i] : NULL;
}

/* Also NQ_ESTATE when the id is already queued or running: a job that is
 * requeued must be released first. */
int
sched_enqueue(struct sched *s, const struct sched_job *j)
{
	struct slot v = {.id = j->id, .kind = SLOT_QUEUED, .owner = j->owner};
	struct owner *o;
	struct qjob *qj;
	int err;

	if (tab_find(s, j->id) != NULL)
		return NQ_ESTATE;
	if ((err = tab_reserve(s)))
		return err;
	if ((o = owner_get(s, j->owner)) == NULL)
		return NQ_ENOMEM;
	if ((qj = malloc(sizeof(*qj))) == NULL)
		return NQ_ENOMEM;
	qj->j = *j;
	qj->j.device_req[sizeof(qj->j.device_req) - 1] = '\0';
	qj->req =
	        parse_req(j->device_req, sizeof(j->device_req), &qj->req_index);
	if ((err = owner_push(o, qj))) {
		free(qj);
		return err;
	}
	tab_insert_nogrow(s, &v);
	s->nqueued++;
	return 0;
}

int
sched_dequeue(struct sched *s, int64_t id)
{
	struct slot *e = tab_find(s, id);
	struct owner *o;

	if (e == NULL || e->kind != SLOT_QUEUED)
		return NQ_ENOJOB;
	o = owner_find(s, e->owner);
	for (size_t i = o != NULL ? o->head : 0; o != NULL && i < o->len; i++) {
		if (o->q[i]->j.id == id) {
			free(o->q[i]);
			owner_remove_at(o, i);
			tab_remove(s, e);
			s->nqueued--;
			return 0;
		}
	}
	return NQ_EINTERNAL; /* table and queues disagree: a bug here */
}

size_t
sched_queued(const struct sched *s)
{
	return s->nqueued;
}

int
sched_fits_ever(const struct sched *s, const struct sched_job *j)
{
	struct qjob qj = {.j = *j};
	int exists = 0;

	qj.req = parse_req(j->device_req, sizeof(j->device_req), &qj.req_index);
	if (qj.req == REQ_BAD)
		return NQ_EBADDEVICE;
	for (size_t i = 0; i < s->ndev; i++) {
		const struct sched_device *d = &s->dev[i];
		int ok =
		        qj.req == REQ_AUTO ||
		        dev_matches(d, qj.req, qj.req_index,
		                    qj.req == REQ_CPU ? SCHED_CPU : SCHED_CUDA);
		if (!ok)
			continue;
		exists = 1;
		if (d->slots > 0 &&
		    ledger_fits(d->capacity, 0, estimate_on(d, j), s->headroom))
			return 0;
	}
	/* a well-formed name this server has no device for */
	return exists ? NQ_ETOOLARGE : NQ_ENODEV;
}

/* Fairness order: fewest running, then least recent start, then the
 * owner whose next job was submitted first, then uid (total order, so the
 * result never depends on qsort's stability). */
static int
cmp_owner(const void *pa, const void *pb)
{
	const struct owner *a = *(struct owner *const *) pa;
	const struct owner *b = *(struct owner *const *) pb;
	uint64_t sa = a->q[a->head]->j.seq, sb = b->q[b->head]->j.seq;

	if (a->running != b->running)
		return a->running < b->running ? -1 : 1;
	if (a->last_start != b->last_start)
		return a->last_start < b->last_start ? -1 : 1;
	if (sa != sb)
		return sa < sb ? -1 : 1;
	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

int
sched_next(struct sched *s, struct sched_job *job, size_t *dev, uint64_t *grant)
{
	size_t nc = 0;

	if (s->nqueued == 0)
		return 0;
	for (size_t i = 0; i < s->nown; i++) {
		if (s->own[i]->len > s->own[i]->head)
			s->cand[nc++] = s->own[i];
	}
	qsort(s->cand, nc, sizeof(*s->cand), cmp_owner);
	for (size_t c = 0; c < nc; c++) {
		struct owner *o = s->cand[c];
		for (size_t i = o->head; i < o->len; i++) {
			struct qjob *qj = o->q[i];
			long d = pick_device(s, s->dev, qj);
			if (d < 0)
				continue;
			struct sched_device *sd = &s->dev[d];
			struct slot *e = tab_find(s, qj->j.id);
			uint64_t est = estimate_on(sd, &qj->j);

			sd->reserved += est;
			sd->running++;
			o->running++;
			o->last_start = ++s->tick;
			e->kind = SLOT_RUNNING;
			e->dev = (size_t) d;
			e->grant = est;
			*job = qj->j;
			*dev = (size_t) d;
			*grant = est;
			free(qj);
			owner_remove_at(o, i);
			s->nqueued--;
			return 1;
		}
	}
	return 0;
}

void
sched_release(struct sched *s, int64_t id)
{
	struct slot *e = tab_find(s, id);
	struct sched_device *d;
	struct owner *o;

	if (e == NULL || e->kind != SLOT_RUNNING)
		return;
	d = &s->dev[e->dev];
	d->reserved = d->reserved >= e->grant ? d->reserved - e->grant : 0;
	if (d->running > 0)
		d->running--;
	o = owner_find(s, e->owner);
	if (o != NULL && o->running > 0)
		o->running--;
	tab_remove(s, e);
}

/* ---- the plan (a query: changes nothing) --------------------------- */

struct plan_owner {
	const struct owner *o;
	int running;
	uint64_t last_start;
	size_t next; /* its next job in o->q */
};

/* cmp_owner on the simulated state */
static int
plan_before(const struct plan_owner *a, const struct plan_owner *b)
{
	uint64_t sa = a->o->q[a->next]->j.seq, sb = b->o->q[b->next]->j.seq;

	if (a->running != b->running)
		return a->running < b->running;
	if (a->last_start != b->last_start)
		return a->last_start < b->last_start;
	if (sa != sb)
		return sa < sb;
	return a->o->uid < b->o->uid;
}

/* Why qj does not start on the real ledger now: the device it could ever
 * use with the most free bytes, and whether that one lacks memory or
 * every such device lacks a slot. */
static enum sched_wait
plan_why(const struct sched *s, const struct qjob *qj, int *dev)
{
	int cpu_ok, any = -1, slot = -1;
	uint64_t slot_free = 0;

	*dev = -1;
	if (qj->req == REQ_BAD || sched_fits_ever(s, &qj->j) != 0)
		return SCHED_WAIT_NEVER;
	cpu_ok = qj->req == REQ_CPU ||
	         (qj->req == REQ_AUTO && auto_cpu_ok(s, qj));
	for (size_t i = 0; i < s->ndev; i++) {
		const struct sched_device *d = &s->dev[i];
		int want = qj->req == REQ_CPU || (qj->req == REQ_AUTO &&
		                                  d->kind == SCHED_CPU)
		                   ? SCHED_CPU
		                   : SCHED_CUDA;
		if (d->kind == SCHED_CPU && !cpu_ok)
			continue;
		if (!dev_matches(d, qj->req, qj->req_index,
		                 (enum sched_dev_kind) want) ||
		    d->slots <= 0 ||
		    !ledger_fits(d->capacity, 0, estimate_on(d, &qj->j),
		                 s->headroom))
			continue;
		if (any < 0)
			any = (int) i;
		if (d->running < d->slots) {
			uint64_t f = d->capacity > d->reserved
			                     ? d->capacity - d->reserved
			                     : 0;
			if (slot < 0 || f > slot_free) {
				slot = (int) i;
				slot_free = f;
			}
		}
	}
	if (qj->req == REQ_AUTO && !cpu_ok) {
		*dev = slot >= 0 ? slot : any;
		return SCHED_WAIT_GPU;
	}
	if (slot >= 0) {
		*dev = slot;
		return SCHED_WAIT_MEMORY;
	}
	*dev = any;
	return SCHED_WAIT_SLOT;
}

int
sched_plan(const struct sched *s, struct sched_plan_entry *out, size_t max,
           size_t *n)
{
	struct sched_device *led = NULL;
	struct plan_owner *po = NULL;
	uint32_t *first = NULL; /* per device: owner of the first planned */
	unsigned char *mixed = NULL, *used = NULL;
	size_t npo = 0, k = 0;
	uint64_t tick = s->tick;
	int rc = NQ_ENOMEM;

	*n = 0;
	if (s->nqueued == 0 || max == 0)
		return 0;
	led = calloc(s->ndev ? s->ndev : 1, sizeof(*led));
	po = malloc((s->nown ? s->nown : 1) * sizeof(*po));
	first = calloc(s->ndev ? s->ndev : 1, sizeof(*first));
	mixed = calloc(s->ndev ? s->ndev : 1, 1);
	used = calloc(s->ndev ? s->ndev : 1, 1);
	if (led == NULL || po == NULL || first == NULL || mixed == NULL ||
	    used == NULL)
		goto out;
	memcpy(led, s->dev, s->ndev * sizeof(*led));
	for (size_t i = 0; i < s->nown; i++) {
		const struct owner *o = s->own[i];
		if (o->len > o->head)
			po[npo++] = (struct plan_owner){
			        .o = o,
			        .running = o->running,
			        .last_start = o->last_start,
			        .next = o->head,
			};
	}
	while (k < max && npo > 0) {
		size_t b = 0;
		for (size_t i = 1; i < npo; i++) {
			if (plan_before(&po[i], &po[b]))
				b = i;
		}
		const struct qjob *qj = po[b].o->q[po[b].next++];
		struct sched_plan_entry *e = &out[k++];
		long d = pick_device(s, led, qj);

		po[b].running++;
		po[b].last_start = ++tick;
		memset(e, 0, sizeof(*e));
		e->id = qj->j.id;
		e->owner = qj->j.owner;
		if (d >= 0) {
			e->why = SCHED_WAIT_READY;
			led[d].reserved += estimate_on(&led[d], &qj->j);
			led[d].running++;
		} else if ((d = pick_device(s, s->dev, qj)) >= 0) {
			/* the room is there, but jobs ahead take it */
			e->why = (mixed[d] || first[d] != qj->j.owner)
			                 ? SCHED_WAIT_BEHIND
			                 : SCHED_WAIT_BEHIND_OWN;
		} else {
			int dv;
			e->why = plan_why(s, qj, &dv);
			d = dv;
		}
		if (e->why == SCHED_WAIT_READY || e->why == SCHED_WAIT_BEHIND ||
		    e->why == SCHED_WAIT_BEHIND_OWN) {
			/* whose jobs are ahead on d, for the ones after */
			if (used[d] && first[d] != qj->j.owner)
				mixed[d] = 1;
			if (!used[d])
				first[d] = qj->j.owner;
			used[d] = 1;
		}
		e->dev = (int) d;
		e->need = d >= 0 ? estimate_on(&s->dev[d], &qj->j) : 0;
		if (po[b].next == po[b].o->len)
			po[b] = po[--npo];
	}
	*n = k;
	rc = 0;
out:
	free(led);
	free(po);
	free(first);
	free(mixed);
	free(used);
	return rc;
}

static void
fmt_bytes(uint64_t b, char *buf, size_t len)
{
	if (b >= (1ull << 30))
		snprintf(buf, len, "%.1f GiB",
		         (double) b / (double) (1ull << 30));
	else
		snprintf(buf, len, "%.0f MiB",
		         (double) b / (double) (1ull << 20));
}

void
sched_wait_text(const struct sched *s, const struct sched_plan_entry *e,
                char *buf, size_t len)
{
	const char *dn = e->dev >= 0 && (size_t) e->dev < s->ndev
	                         ? s->dev[e->dev].name
	                         : "?";
	char need[32];

	fmt_bytes(e->need, need, sizeof(need));
	switch (e->why) {
	case SCHED_WAIT_READY:
		snprintf(buf, len, "starting on %s", dn);
		return;
	case SCHED_WAIT_BEHIND:
		snprintf(buf, len, "behind other users' jobs on %s", dn);
		return;
	case SCHED_WAIT_BEHIND_OWN:
		snprintf(buf, len, "behind earlier jobs on %s", dn);
		return;
	case SCHED_WAIT_MEMORY:
		snprintf(buf, len, "waiting for memory on %s (needs %s)", dn,
		         need);
		return;
	case SCHED_WAIT_SLOT:
		snprintf(buf, len, "no free slot on %s", dn);
		return;
	case SCHED_WAIT_GPU:
		snprintf(buf, len, "waiting for a GPU (too big for the cpu)");
		return;
	case SCHED_WAIT_NEVER:
		break;
	}
	snprintf(buf, len, "no device of this server can hold it");
}
