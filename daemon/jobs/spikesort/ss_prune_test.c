/* ss_prune_test.c — templates of noise at the threshold: the rule, and
 * their spikes leaving the pass's list. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nq_test_rng.h"
#include "ss.h"
#include "ss_quality.h"

static void
test_prune_rule(void **state)
{
	(void) state;
	/* the bench's noise templates: cutoff 0.47-0.49, ratio 0.64-1.4 */
	assert_true(ss_prune_is_noise(0.473, 0.64, 0.5));
	assert_true(ss_prune_is_noise(0.45, 0.5, 0.5));
	/* a unit near threshold but refractory, or with violations but a
	 * whole amplitude distribution */
	assert_false(ss_prune_is_noise(0.49, 0.3, 0.5));
	assert_false(ss_prune_is_noise(0.07, 2.0, 0.5));
	assert_false(ss_prune_is_noise(0.44, 2.0, 0.5));
	/* too few spikes to say (NaN) */
	assert_false(ss_prune_is_noise(NAN, 2.0, 0.5));
	assert_false(ss_prune_is_noise(0.49, NAN, 0.5));
}

static void
push(struct ss_match_out *o, int64_t t, int k, float a)
{
	assert_int_equal(ss_match_out_push(o, t, k, a), 0);
}

/* Three templates over 60 s: a unit (refractory train, amplitudes
 * 20 ± 2), noise at the threshold (pairs of crossings at 25 Hz,
 * amplitudes 4 + an exponential: most at the threshold), and a small unit (10 ±
 * 1) whose every spike was matched again 3 samples later at 4-5, as a template
 * matched from a low own threshold does: only the noise loses its spikes, the
 * rest keep their order. */
static void
test_prune_noise(void **state)
{
	enum { K = 3, NU = 1000, NN = 3000 };
	struct nq_test_rng rng = NQ_TEST_RNG_INIT(1617);
	struct ss_config cfg;
	struct ss_match_out o = {0};
	int drop[K], nd = -1;
	double cut[K], isi[K], n_samples = 60 * 30000.0;
	(void) state;
	ss_config_defaults(&cfg);
	cfg.fs = 30000;
	for (int i = 0; i < NU; i++) {
		int64_t t = 900 + (int64_t) i * 1790 +
		            (int64_t) (nq_test_rng_unif(&rng) * 400);
		push(&o, t, 0, (float) (20 + 2 * nq_test_rng_normal(&rng)));
		push(&o, t + 600, 2, (float) (10 + nq_test_rng_normal(&rng)));
		push(&o, t + 603, 2,
		     (float) (4 + 0.5 * fabs(nq_test_rng_normal(&rng))));
	}
	for (int i = 0; i < NN; i += 2) {
		/* in pairs 0.3-1.3 ms apart, as noise crossings come */
		int64_t t =
		        (int64_t) (nq_test_rng_unif(&rng) * (n_samples - 40));
		push(&o, t, 1,
		     (float) (4 - 0.7 * log(nq_test_rng_unif_open(&rng))));
		push(&o, t + 10 + (int64_t) (nq_test_rng_unif(&rng) * 30), 1,
		     (float) (4 - 0.7 * log(nq_test_rng_unif_open(&rng))));
	}
	/* template 2 counted with its duplicates looks like noise */
	{
		float a2[2 * NU];
		int64_t t2[2 * NU], m = 0, nv;
		double work[2 * NU];
		for (int64_t i = 0; i < o.n; i++)
			if (o.k[i] == 2) {
				t2[m] = o.t[i];
				a2[m++] = o.a[i];
			}
		assert_true(ss_q_isi_violations(t2, m, 60, 1.5e-3, 0, 30000,
		                                &nv) >= 0.5);
		/* its cutoff 0.48 here: noise by both */
		assert_true(ss_q_amplitude_cutoff(a2, m, 100, 3, 5, work) >=
		            0.45);
	}
	int64_t n0 = o.n;
	assert_int_equal(ss_prune_noise(&cfg, K, (int64_t) n_samples, &o, drop,
	                                cut, isi, &nd),
	                 0);
	assert_int_equal(nd, 1);
	assert_int_equal(drop[0], 0);
	assert_int_equal(drop[1], 1);
	assert_int_equal(drop[2], 0);
	assert_true(cut[1] >= 0.45); /* 0.48 */
	assert_true(isi[1] >= 0.5);  /* 3.5 */
	assert_true(cut[0] < 0.1);
	assert_true(isi[0] == 0);
	/* counted without the duplicates: refractory */
	assert_true(isi[2] == 0);
	assert_int_equal(o.n, n0 - NN);
	/* the survivors in their order: unit, then its small neighbour and
	 * the duplicate, NU times */
	for (int i = 0; i < NU; i++) {
		assert_int_equal(o.k[3 * i], 0);
		assert_int_equal(o.k[3 * i + 1], 2);
		assert_int_equal(o.k[3 * i + 2], 2);
		assert_int_equal(o.t[3 * i + 2] - o.t[3 * i], 603);
	}
	ss_match_out_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_prune_rule),
	        cmocka_unit_test(test_prune_noise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
