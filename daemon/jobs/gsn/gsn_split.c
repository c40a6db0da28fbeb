/*
 * gsn_split.c — the held-out split of spec §2.2: argsort of n doubles from
 * MT19937 seeded with 42, i.e. numpy RandomState(42).random_sample(n)
 * (= MATLAB rng(42,'twister'); rand). Bit-exact by construction: the
 * generator is the reference MT19937 and the 53-bit double is numpy's.
 */
#include <stdlib.h>

#include "gsn_internal.h"
#include "nq_error.h"

#define MT_N 624
#define MT_M 397

struct mt {
	uint32_t s[MT_N];
	int i;
};

static void
mt_seed(struct mt *m, uint32_t seed)
{
	m->s[0] = seed;
	for (int i = 1; i < MT_N; i++)
		m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) +
		          (uint32_t) i;
	m->i = MT_N;
}

static uint32_t
mt_next(struct mt *m)
{
	uint32_t y;

	if (m->i >= MT_N) {
		for (int k = 0; k < MT_N; k++) {
			y = (m->s[k] & 0x80000000u) |
			    (m->s[(k + 1) % MT_N] & 0x7fffffffu);
			m->s[k] = m->s[(k + MT_M) % MT_N] ^ (y >> 1) ^
			          ((y & 1u) ? 0x9908b0dfu : 0u);
		}
		m->i = 0;
	}
	y = m->s[m->i++];
	y ^= y >> 11;
	y ^= (y << 7) & 0x9d2c5680u;
	y ^= (y << 15) & 0xefc60000u;
	y ^= y >> 18;
	return y;
}

void
gsn_mt_uniforms(uint32_t seed, double *u, int64_t n)
{
	struct mt m;

	mt_seed(&m, seed);
	for (int64_t i = 0; i < n; i++) {
		uint32_t a = mt_next(&m) >> 5, b = mt_next(&m) >> 6;
		u[i] = (a * 67108864.0 + b) / 9007199254740992.0;
	}
}

struct keyed {
	double u;
	int64_t i;
};

static int
keyed_cmp(const void *pa, const void *pb)
{
	const struct keyed *a = pa, *b = pb;

	if (a->u != b->u)
		return a->u < b->u ? -1 : 1;
	/* index as tie-break = a stable sort */
	return (a->i > b->i) - (a->i < b->i);
}

int
gsn_perm(int64_t n, int64_t *perm)
{
	struct keyed *k;
	double *u;

	if (n <= 0)
		return 0;
	k = malloc((size_t) n * sizeof(*k));
	u = malloc((size_t) n * sizeof(*u));
	if (k == NULL || u == NULL) {
		free(k);
		free(u);
		return NQ_ENOMEM;
	}
	gsn_mt_uniforms(GSN_SEED, u, n);
	for (int64_t i = 0; i < n; i++) {
		k[i].u = u[i];
		k[i].i = i;
	}
	qsort(k, (size_t) n, sizeof(*k), keyed_cmp);
	for (int64_t i = 0; i < n; i++)
		perm[i] = k[i].i;
	free(k);
	free(u);
	return 0;
}

int64_t
gsn_holdout_count(int64_t n)
{
	/* n mod 5 in {0,1,2} rounds down, {3,4} up: no .5 case exists */
	return (n + 2) / GSN_LEAVEOUT;
}
