/* ss_resid_test.c — the residual detection: its score, its filter, and a
 * small unit found under th_detect. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nq_error.h"
#include "nq_test_rng.h"
#include "ss.h"

enum { C = 16, NT = 61, NH = 31, H0 = 10 };

/* the test unit's time course, trough -1 at sample 20 */
static double
shape(int a)
{
	double u = (a - 20) / 4.0, v = (a - 32) / 6.0;
	return -exp(-u * u) + 0.3 * exp(-v * v);
}

/* its footprint: channel 3 and its neighbours */
static double
foot(int c)
{
	static const double f[C] = {0, 0, 0.5, 1, 0.8, 0.2};
	return f[c];
}

static void
test_resid_score(void **state)
{
	(void) state;
	assert_float_equal(ss_resid_score2(3, 4), 25, 1e-6);
	assert_float_equal(ss_resid_score2(3, -4), 25, 1e-6);
	/* the peak channel's score must be a trough's */
	assert_float_equal(ss_resid_score2(-3, 4), 0, 0);
	assert_float_equal(ss_resid_score2(0, 9), 0, 0);
}

/* The mean of unit-norm peak-channel waveforms, a flipped one flipped
 * back; the taps from nt0min − h0. */
static void
test_resid_filter(void **state)
{
	float W[2 * C * NT], h[NH];
	double nrm = 0, want[NH];
	(void) state;
	memset(W, 0, sizeof(W));
	for (int a = 0; a < NT; a++) {
		W[3 + C * a] = (float) (2 * shape(a));
		W[1 + C * a] = (float) (0.1 * shape(a));
		/* the second: the same shape upside down, on channel 6 */
		W[C * NT + 6 + C * a] = (float) (-shape(a));
	}
	for (int i = 0; i < NH; i++) {
		want[i] = shape(20 - H0 + i);
		nrm += want[i] * want[i];
	}
	assert_int_equal(ss_resid_filter(W, 2, C, NT, 20, NH, H0, h), 0);
	for (int i = 0; i < NH; i++)
		assert_float_equal(h[i], want[i] / sqrt(nrm), 1e-5);
	assert_true(h[H0] < 0);
	assert_int_equal(ss_resid_filter(W, 0, C, NT, 20, NH, H0, h),
	                 NQ_EBADPARAM);
	/* taps past the template's end */
	assert_int_equal(ss_resid_filter(W, 2, C, NT, 20, NH, 0, h), 0);
	assert_int_equal(ss_resid_filter(W, 2, C, NT, 20, 42, 0, h),
	                 NQ_EBADPARAM);
}

/* A unit 2.5 σ tall on its peak channel (under th_detect, 4, on every
 * channel for nearly all its spikes) in unit white noise: the residual
 * detection at 6 finds nearly every spike, at its trough and on its
 * footprint, with its snippet, and the noise gives next to nothing. */
static void
test_resid_detect(void **state)
{
	enum { T = 60000, NS = 118, GAP = 500 };
	struct nq_test_rng rng = NQ_TEST_RNG_INIT(1616);
	struct ss_config cfg;
	struct ss_probe p;
	struct ss_spikes sp = {0};
	float *R = malloc(sizeof(float) * C * T), W[C * NT], h[NH];
	int64_t st[NS], cc[C] = {0};
	int found = 0, crossed = 0, stray = 0;
	(void) state;
	assert_non_null(R);
	ss_config_defaults(&cfg);
	assert_int_equal(ss_probe_linear(&p, C, 20), 0);
	for (int a = 0; a < NT; a++)
		for (int c = 0; c < C; c++)
			W[c + C * a] = (float) (shape(a) * foot(c));
	assert_int_equal(ss_resid_filter(W, 1, C, NT, cfg.nt0min, NH, H0, h),
	                 0);
	for (size_t i = 0; i < (size_t) C * T; i++)
		R[i] = (float) nq_test_rng_normal(&rng);
	for (int s = 0; s < NS; s++) {
		st[s] = 300 + (int64_t) s * GAP +
		        (int64_t) (nq_test_rng_unif(&rng) * 100);
		double low = 0;
		for (int a = 0; a < NT; a++)
			for (int c = 0; c < C; c++) {
				float *x = R + (st[s] - 20 + a) * C + c;
				*x += (float) (2.5 * shape(a) * foot(c));
				if (*x < low)
					low = *x;
			}
		crossed += low < -cfg.th_detect;
	}
	/* th_detect would see few of them (24 of 118 cross -4 here) */
	assert_true(crossed < NS / 3);
	assert_int_equal(ss_resid_detect(&cfg, &p, R, T, 100, T - 100, 1000, h,
	                                 NH, H0, 6, NULL, NULL, 0, 100000, cc,
	                                 &sp),
	                 0);
	assert_int_equal(sp.nc, cfg.nc_feat < C ? cfg.nc_feat : C);
	assert_int_equal(sp.nt, NT);
	for (int64_t i = 0; i < sp.n; i++) {
		int64_t t = sp.t[i] - 1000;
		int hit = -1;
		for (int s = 0; s < NS; s++)
			if (llabs(t - st[s]) <= 2)
				hit = s;
		if (hit < 0 || sp.chan[i] < 2 || sp.chan[i] > 4) {
			stray++;
			continue;
		}
		found++;
		/* the snippet: R from 20 before the trough, its channel
		 * first */
		for (int a = 0; a < NT; a += 10)
			assert_float_equal(sp.wave[i * sp.nc * NT + a],
			                   R[(t - 20 + a) * C + sp.chan[i]], 0);
	}
	/* 108 of 118 here; none stray */
	assert_true(found >= NS * 4 / 5);
	assert_true(stray <= 2);
	/* per-channel counts and their cap */
	int64_t ncc = 0;
	for (int c = 0; c < C; c++)
		ncc += cc[c];
	assert_int_equal(ncc, sp.n);
	int64_t n_all = sp.n;
	ss_spikes_free(&sp);
	memset(cc, 0, sizeof(cc));
	assert_int_equal(ss_resid_detect(&cfg, &p, R, T, 100, T - 100, 0, h, NH,
	                                 H0, 6, NULL, NULL, 0, 5, cc, &sp),
	                 0);
	assert_true(sp.n <= 5 * C);
	for (int c = 0; c < C; c++)
		assert_true(cc[c] <= 5);
	ss_spikes_free(&sp);
	/* a matched spike 8 samples off (nt0min / 2 = 10) on channel 4 hides
	 * the peaks of the even spikes; on channel 15, whose 10 nearest
	 * channels (6-15) miss the footprint's, it hides none */
	int64_t mt[NS / 2];
	int mc[NS / 2];
	for (int i = 0; i < NS / 2; i++) {
		mt[i] = st[2 * i] + 8;
		mc[i] = 4;
	}
	memset(cc, 0, sizeof(cc));
	assert_int_equal(ss_resid_detect(&cfg, &p, R, T, 100, T - 100, 0, h, NH,
	                                 H0, 6, mt, mc, NS / 2, 100000, cc,
	                                 &sp),
	                 0);
	for (int64_t i = 0; i < sp.n; i++)
		for (int j = 0; j < NS / 2; j++)
			assert_true(llabs(sp.t[i] - st[2 * j]) > 10);
	assert_true(sp.n >= n_all - NS / 2 - 2 && sp.n <= n_all - NS / 3);
	ss_spikes_free(&sp);
	for (int i = 0; i < NS / 2; i++)
		mc[i] = 15;
	memset(cc, 0, sizeof(cc));
	assert_int_equal(ss_resid_detect(&cfg, &p, R, T, 100, T - 100, 0, h, NH,
	                                 H0, 6, mt, mc, NS / 2, 100000, cc,
	                                 &sp),
	                 0);
	assert_int_equal(sp.n, n_all);
	ss_spikes_free(&sp);
	ss_probe_free(&p);
	free(R);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_resid_score),
	        cmocka_unit_test(test_resid_filter),
	        cmocka_unit_test(test_resid_detect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
