/*
 * nq_test_rng.h — the one pseudo-random generator of the C tests.
 *
 * xorshift64 (Marsaglia's 13/7/17 triple): deterministic, the same sequence
 * on every platform, good enough for test data. Never for production code
 * (daemon/jobs/spikesort/ss_detect.c has its own splitmix64, part of the
 * algorithm).
 *
 *	static struct nq_test_rng rng = NQ_TEST_RNG_INIT(42);
 *	double x = nq_test_rng_unif(&rng);
 *
 * A test's data depends on its seed: keep a test's seed when editing it, or
 * its tolerances and expected counts may no longer hold.
 */
#ifndef NQ_TEST_RNG_H
#define NQ_TEST_RNG_H

#include <math.h>
#include <stdint.h>

struct nq_test_rng {
	uint64_t s;
};

/* The seed is the generator's state: any value but 0 (a zero state stays
 * zero; nq_test_rng_seed maps it to 1). */
#define NQ_TEST_RNG_INIT(seed) \
	{                      \
		(seed)         \
	}

static inline void
nq_test_rng_seed(struct nq_test_rng *r, uint64_t seed)
{
	r->s = seed != 0 ? seed : 1;
}

static inline uint64_t
nq_test_rng_next(struct nq_test_rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

/* The high 32 bits (the low bits of xorshift are its weakest). */
static inline uint32_t
nq_test_rng_u32(struct nq_test_rng *r)
{
	return (uint32_t) (nq_test_rng_next(r) >> 32);
}

/* Uniform in [0, 1), 53 random bits. */
static inline double
nq_test_rng_unif(struct nq_test_rng *r)
{
	return (double) (nq_test_rng_next(r) >> 11) / 9007199254740992.0;
}

/* Uniform in (0, 1): never 0, for a logarithm. */
static inline double
nq_test_rng_unif_open(struct nq_test_rng *r)
{
	return ((double) (nq_test_rng_next(r) >> 11) + 0.5) /
	       9007199254740992.0;
}

/* Uniform in [-1, 1). */
static inline double
nq_test_rng_sym(struct nq_test_rng *r)
{
	return (double) (nq_test_rng_next(r) >> 11) / 4503599627370496.0 - 1.0;
}

/* Standard normal (Box-Muller, one draw per pair of uniforms: the first
 * goes to the radius, the second to the angle). */
static inline double
nq_test_rng_normal(struct nq_test_rng *r)
{
	double u1 = nq_test_rng_unif_open(r);
	double u2 = nq_test_rng_unif_open(r);

	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

#endif
