/*
 * ss_quality_test.c — the quality metrics against values SpikeInterface
 * 0.105 gives on the same inputs (spikeinterface.metrics.quality.
 * misc_metrics: amplitude_cutoff, isi_violations, presence_ratio; the
 * inputs are the deterministic formulas below, repeated in numpy), the
 * noise histogram's median, and the label thresholds.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ss.h"
#include "ss_quality.h"

/* i = 0..2999: a = 10 + 3 sin(0.7 i) cos(0.013 i) + 0.2 (i mod 17), kept
 * when ≥ 9: a distribution cut on its low side, as a threshold cuts */
static int64_t
cut_amplitudes(float *a)
{
	int64_t n = 0;
	for (int i = 0; i < 3000; i++) {
		double x =
		        10 + 3 * sin(i * 0.7) * cos(i * 0.013) + (i % 17) * 0.2;
		if (x >= 9)
			a[n++] = (float) x;
	}
	return n;
}

static void
test_amplitude_cutoff(void **state)
{
	float *a = malloc(sizeof(float) * 3000);
	double *w = malloc(sizeof(double) * 3000);
	(void) state;
	int64_t n = cut_amplitudes(a);
	/* numpy: len 2754, amplitude_cutoff(a, 100, 3, 5) = 0.10816062176 */
	assert_int_equal(n, 2754);
	assert_true(fabs(ss_q_amplitude_cutoff(a, n, 100, 3, 5, w) -
	                 0.10816062176165803) < 1e-9);
	/* negative amplitudes (median < 0) are flipped first */
	for (int64_t i = 0; i < n; i++)
		a[i] = -a[i];
	assert_true(fabs(ss_q_amplitude_cutoff(a, n, 100, 3, 5, w) -
	                 0.10816062176165803) < 1e-9);
	/* fewer than 5 × 100 spikes: undefined */
	assert_true(isnan(ss_q_amplitude_cutoff(a, 499, 100, 3, 5, w)));
	/* a symmetric distribution misses nothing */
	for (int i = 0; i < 1000; i++)
		a[i] = (float) (5 + sin(i * 0.37));
	assert_true(ss_q_amplitude_cutoff(a, 1000, 100, 3, 5, w) < 0.01);
	free(a);
	free(w);
}

static int
cmp64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *) x, b = *(const int64_t *) y;
	return a < b ? -1 : a > b;
}

/* k = 0..4999: t = 1000 + 170 k + (7919 k mod 131); with doublets: every
 * 50th spike again 20 samples later */
static int64_t
train(int64_t *t, int doublets)
{
	int64_t n = 0;
	for (int64_t k = 0; k < 5000; k++)
		t[n++] = 1000 + 170 * k + (k * 7919) % 131;
	if (doublets)
		for (int64_t k = 0; k < 5000; k += 50)
			t[n++] = t[k] + 20;
	qsort(t, (size_t) n, sizeof(int64_t), cmp64);
	return n;
}

static void
test_isi_and_presence(void **state)
{
	int64_t *t = malloc(sizeof(int64_t) * 5100), cnt = -1;
	(void) state;
	int64_t n = train(t, 1);
	/* isi_violations([t / 30000], 30.0, 0.0015, 0) =
	 * (0.03844675124951941, 3.33, 100) */
	assert_int_equal(n, 5100);
	double r = ss_q_isi_violations(t, n, 30.0, 0.0015, 0, 30000, &cnt);
	assert_int_equal(cnt, 100);
	assert_true(fabs(r - 0.03844675124951941) < 1e-12);
	n = train(t, 0);
	assert_true(ss_q_isi_violations(t, n, 30.0, 0.0015, 0, 30000, &cnt) ==
	            0);
	assert_int_equal(cnt, 0);
	assert_true(
	        isnan(ss_q_isi_violations(t, 0, 30.0, 0.0015, 0, 30000, &cnt)));
	/* 5 s bins over 30 s: present in all 6; without 10–20 s in 4 of 6
	 * (presence_ratio with bin_edges 0, 150000, ..., 900000) */
	assert_true(ss_q_presence_ratio(t, n, 900000, 150000) == 1.0);
	int64_t m = 0;
	for (int64_t i = 0; i < n; i++)
		if (t[i] < 300000 || t[i] > 600000)
			t[m++] = t[i];
	assert_int_equal(m, 3236);
	assert_true(fabs(ss_q_presence_ratio(t, m, 900000, 150000) -
	                 2.0 / 3.0) < 1e-12);
	/* shorter than a bin: undefined; the trailing part bin is left out */
	assert_true(isnan(ss_q_presence_ratio(t, m, 100000, 150000)));
	assert_true(fabs(ss_q_presence_ratio(t, m, 1000000, 150000) -
	                 2.0 / 3.0) < 1e-12);
	free(t);
}

static void
test_noise_histogram(void **state)
{
	uint64_t *h = calloc(SS_QH_BINS, sizeof(uint64_t));
	(void) state;
	/* |x| of a Gaussian, σ = 10: the median of |x| is 0.6745 σ */
	uint64_t s = 88172645463325252ULL;
	for (int i = 0; i < 200000; i++) {
		double u1, u2;
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		u1 = ((double) (s >> 11) + 0.5) / 9007199254740992.0;
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		u2 = ((double) (s >> 11) + 0.5) / 9007199254740992.0;
		double g = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
		h[ss_q_hist_bin((float) (10 * g))]++;
	}
	double med = ss_q_hist_median(h);
	assert_true(fabs(med / 0.6744897501960817 - 10) < 0.1);
	/* bins: monotone, tiny and huge values clamped */
	assert_int_equal(ss_q_hist_bin(0), 0);
	assert_int_equal(ss_q_hist_bin(-1e-6f), 0);
	assert_int_equal(ss_q_hist_bin(1e30f), SS_QH_BINS - 1);
	assert_true(ss_q_hist_bin(5.0f) < ss_q_hist_bin(5.1f));
	assert_int_equal(ss_q_hist_bin(-5.0f), ss_q_hist_bin(5.0f));
	memset(h, 0, sizeof(uint64_t) * SS_QH_BINS);
	assert_true(isnan(ss_q_hist_median(h)));
	free(h);
}

static void
test_labels(void **state)
{
	struct ss_config cfg;
	struct ss_quality q = {0};
	int64_t ns[1] = {100};
	double isi[1] = {0.1}, pr[1] = {1}, ac[1] = {NAN}, snr[1] = {8};
	(void) state;
	ss_config_defaults(&cfg);
	q.K = 1;
	q.num_spikes = ns;
	q.isi_ratio = isi;
	q.presence_ratio = pr;
	q.amp_cutoff = ac;
	q.snr = snr;
	/* NaN amplitude cutoff (too few spikes) does not count against it */
	assert_true(ss_quality_is_good(&cfg, &q, 0));
	isi[0] = cfg.good_isi;
	assert_false(ss_quality_is_good(&cfg, &q, 0));
	isi[0] = 0.1;
	snr[0] = cfg.good_snr - 0.01;
	assert_false(ss_quality_is_good(&cfg, &q, 0));
	snr[0] = 8;
	pr[0] = cfg.good_presence - 0.01;
	assert_false(ss_quality_is_good(&cfg, &q, 0));
	pr[0] = 1;
	ac[0] = cfg.good_amp_cutoff + 0.01;
	assert_false(ss_quality_is_good(&cfg, &q, 0));
	ac[0] = 0;
	assert_true(ss_quality_is_good(&cfg, &q, 0));
	ns[0] = 0;
	assert_false(ss_quality_is_good(&cfg, &q, 0));
	/* presence bins: duration / 20 within [10, 60] s unless set */
	assert_true(ss_quality_presence_bin(&cfg, 120) == 10);
	assert_true(ss_quality_presence_bin(&cfg, 600) == 30);
	assert_true(ss_quality_presence_bin(&cfg, 7200) == 60);
	cfg.presence_bin_s = 5;
	assert_true(ss_quality_presence_bin(&cfg, 7200) == 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_amplitude_cutoff),
	        cmocka_unit_test(test_isi_and_presence),
	        cmocka_unit_test(test_noise_histogram),
	        cmocka_unit_test(test_labels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
