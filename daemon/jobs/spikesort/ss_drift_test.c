/* ss_drift_test.c — drift registration and kriging: recovered shifts and
 * resampled values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nq_error.h"
#include "nq_test_rng.h"
#include "ss_drift.h"

static struct nq_test_rng rng = NQ_TEST_RNG_INIT(0x2545F4914F6CDD1DULL);

static double
unif(void)
{
	return nq_test_rng_unif(&rng);
}

/* A single-column probe: n channels, pitch µm apart along depth. */
static void
probe(struct ss_probe *p, int n, double pitch)
{
	assert_int_equal(ss_probe_linear(p, n, pitch), 0);
}

/*
 * 60 batches whose units sit at depths moved by a known zigzag of ±15 µm:
 * the estimate recovers it (relative to its median) to ~1 µm with 5 µm bins.
 */
static void
test_register(void **state)
{
	struct ss_probe p = {0};
	struct ss_drift_hist d;
	enum { NB = 60, NU = 40 };
	double depth[NU], truth[NB], med;
	int amp[NU];
	float est[NB], hd[NB];
	double sorted[NB], err = 0, sigma = -1, sigma1;

	(void) state;
	probe(&p, 64, 20);
	assert_int_equal(ss_drift_hist_init(&d, &p, NB, 5.0), 0);
	for (int u = 0; u < NU; u++) {
		depth[u] = 80 + 1100 * unif();
		amp[u] = (int) (unif() * SS_DRIFT_NAMP);
	}
	for (int b = 0; b < NB; b++) {
		truth[b] = 15 * sin(2 * M_PI * b / 30.0);
		float *h = d.h + (size_t) b * d.ndepth * SS_DRIFT_NAMP;
		float *ho = d.hodd + (size_t) b * d.ndepth * SS_DRIFT_NAMP;
		for (int u = 0; u < NU; u++)
			for (int k = 0; k < 30; k++) {
				/* each unit: spikes spread ±4 µm around it */
				double y = depth[u] + truth[b] +
				           8 * (unif() - 0.5);
				int bd = (int) floor((y - d.y0) / d.bin_um);
				size_t o = (size_t) bd * SS_DRIFT_NAMP + amp[u];
				h[o] += 1;
				if (k % 2)
					ho[o] += 1;
			}
	}
	assert_int_equal(ss_drift_estimate(&d, 40, 0, est), 0);
	/* the halves agree: the noise is a small part of the ±15 µm */
	assert_int_equal(ss_drift_noise(&d, 40, 0, hd, &sigma), 0);
	assert_true(sigma > 0 && sigma < 1.0);
	for (int b = 0; b < NB; b++)
		assert_true(hd[b] < 3.0);
	memcpy(sorted, truth, sizeof(truth));
	for (int i = 0; i < NB; i++) /* insertion sort: the median */
		for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
			double t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	med = 0.5 * (sorted[NB / 2 - 1] + sorted[NB / 2]);
	for (int b = 0; b < NB; b++)
		err = fmax(err, fabs(est[b] - (truth[b] - med)));
	assert_true(err < 2.0);

	/* no drift: the estimate stays near zero; smoothing keeps it there */
	memset(d.h, 0, sizeof(float) * (size_t) NB * d.ndepth * SS_DRIFT_NAMP);
	memset(d.hodd, 0,
	       sizeof(float) * (size_t) NB * d.ndepth * SS_DRIFT_NAMP);
	for (int b = 0; b < NB; b++) {
		float *h = d.h + (size_t) b * d.ndepth * SS_DRIFT_NAMP;
		float *ho = d.hodd + (size_t) b * d.ndepth * SS_DRIFT_NAMP;
		for (int u = 0; u < NU; u++)
			for (int k = 0; k < 30; k++) {
				double y = depth[u] + 8 * (unif() - 0.5);
				int bd = (int) floor((y - d.y0) / d.bin_um);
				size_t o = (size_t) bd * SS_DRIFT_NAMP + amp[u];
				h[o] += 1;
				if (k % 2)
					ho[o] += 1;
			}
	}
	assert_int_equal(ss_drift_estimate(&d, 40, 1.0, est), 0);
	for (int b = 0; b < NB; b++)
		assert_true(fabs(est[b]) < 1.0);
	/* the noise bounds the estimate: every shift is within 4 σ */
	assert_int_equal(ss_drift_noise(&d, 40, 1.0, hd, &sigma1), 0);
	assert_true(sigma1 > 0);
	for (int b = 0; b < NB; b++)
		assert_true(fabs(est[b]) < fmax(1.0, 4 * sigma1));
	ss_drift_hist_free(&d);
	ss_probe_free(&p);
}

/*
 * Non-rigid: 60 batches on a 64-channel probe (1260 µm) whose units move by
 * a zigzag scaled with depth (full ±15 µm at the bottom, none at the top).
 * The blocks recover each depth's own motion to a few µm where the rigid
 * estimate is one compromise; each channel's shift interpolates them.
 */
static void
test_register_blocks(void **state)
{
	struct ss_probe p = {0};
	struct ss_drift_hist d;
	enum { NB = 60, NU = 60, NBLK = 5 };
	double depth[NU];
	int amp[NU];
	float est[NB * NBLK], by[NBLK], rig[NB];
	double errb = 0, errr = 0, sc[64];
	(void) state;
	probe(&p, 64, 20);
	assert_int_equal(ss_drift_hist_init(&d, &p, NB, 5.0), 0);
	for (int u = 0; u < NU; u++) {
		depth[u] = 40 + 1180 * unif();
		amp[u] = 1 + (int) (unif() * (SS_DRIFT_NAMP - 1));
	}
	for (int b = 0; b < NB; b++) {
		float *h = d.h + (size_t) b * d.ndepth * SS_DRIFT_NAMP;
		for (int u = 0; u < NU; u++) {
			double g = 1 - depth[u] / 1260.0; /* 1 bottom, 0 top */
			double m = 15 * g * sin(2 * M_PI * b / 30.0);
			for (int k = 0; k < 30; k++) {
				double y = depth[u] + m + 8 * (unif() - 0.5);
				int bd = (int) floor((y - d.y0) / d.bin_um);
				h[(size_t) bd * SS_DRIFT_NAMP + amp[u]] += 1;
			}
		}
	}
	assert_int_equal(ss_drift_estimate(&d, 40, 0, rig), 0);
	assert_int_equal(ss_drift_estimate_blocks(&d, 40, 0, NBLK, est, by), 0);
	for (int j = 0; j < NBLK; j++) {
		/* the motion at the block's centre (medians: sin is symmetric)
		 */
		double g = 1 - (by[j] - p.y[0]) / 1260.0;
		g = g < 0 ? 0 : g > 1 ? 1 : g;
		for (int b = 0; b < NB; b++) {
			double t = 15 * g * sin(2 * M_PI * b / 30.0);
			errb = fmax(errb, fabs(est[b * NBLK + j] - t));
			errr = fmax(errr, fabs(rig[b] - t));
		}
	}
	assert_true(errb < 4.0);
	assert_true(errr > 6.0); /* the rigid compromise misses the ends */
	/* per channel: block values at the centres, linear between */
	ss_drift_channel_shifts(&p, NBLK, by, est + 7 * NBLK, sc);
	for (int c = 0; c < 64; c++) {
		double lo = fmin(est[7 * NBLK], est[7 * NBLK + NBLK - 1]);
		double hi = fmax(est[7 * NBLK], est[7 * NBLK + NBLK - 1]);
		assert_true(sc[c] >= lo - 1e-6 && sc[c] <= hi + 1e-6);
	}
	ss_drift_hist_free(&d);
	ss_probe_free(&p);
}

/* A spike whose trough amplitudes fall off around 433 µm lands around the
 * depth bin of 433 µm (centre of mass of squared amplitudes). */
static void
test_hist_depth(void **state)
{
	struct ss_probe p = {0};
	struct ss_drift_hist d;
	struct ss_spikes sp = {0};
	int nbr[10], nt = 61;
	float wave[10 * 61];
	float *h;
	int found = -1;

	(void) state;
	probe(&p, 64, 20);
	assert_int_equal(ss_drift_hist_init(&d, &p, 1, 5.0), 0);
	ss_probe_nearest(&p, 22, 10, nbr); /* channel 22 at 440 µm */
	memset(wave, 0, sizeof(wave));
	for (int j = 0; j < 10; j++) {
		/* a² ∝ exp(-(y - 433)² / (2·15²)) */
		double dy = p.y[nbr[j]] - 433;
		wave[j * nt + 20] = (float) (-30 * exp(-dy * dy / (4 * 225.0)));
	}
	sp.n = 1;
	sp.nc = 10;
	sp.nt = nt;
	sp.t = (int64_t[]){1000};
	sp.chan = (int[]){22};
	sp.wave = wave;
	ss_drift_hist_add(&d, 0, &p, &sp, 20);
	h = d.h;
	{
		/* spread along depth by a 10 µm Gaussian, all of it in one
		 * amplitude bin, the heaviest depth bin at 433 µm */
		double best = 0, tot = 0;
		int ba = -1;
		for (int i = 0; i < d.ndepth * SS_DRIFT_NAMP; i++) {
			if (h[i] == 0)
				continue;
			if (ba < 0)
				ba = i % SS_DRIFT_NAMP;
			assert_int_equal(i % SS_DRIFT_NAMP, ba);
			tot += h[i];
			if (h[i] > best) {
				best = h[i];
				found = i;
			}
		}
		/* the row of found */
		// NOLINTNEXTLINE(bugprone-integer-division)
		double y = d.y0 + (found / SS_DRIFT_NAMP + 0.5) * d.bin_um;
		assert_true(fabs(y - 433) <= 5);
		assert_true(fabs(tot - sqrt(2 * M_PI) * 2) < 0.05);
	}
	/* a spike in the lowest amplitude bin (noise level) is left out */
	memset(d.h, 0, sizeof(float) * d.ndepth * SS_DRIFT_NAMP);
	for (int j = 0; j < 10; j++)
		wave[j * nt + 20] *= 4.5f / 30;
	ss_drift_hist_add(&d, 0, &p, &sp, 20);
	for (int i = 0; i < d.ndepth * SS_DRIFT_NAMP; i++)
		assert_true(d.h[i] == 0);
	ss_drift_hist_free(&d);
	ss_probe_free(&p);
}

/* Kriging resamples a smooth field at shifted positions. */
static void
test_kriging(void **state)
{
	enum { C = 64 };
	struct ss_probe p = {0};
	struct ss_krig k;
	struct kern_backend kb;
	float *A = malloc(sizeof(float) * C * C);
	double f[C];
	int nz = 0;

	(void) state;
	probe(&p, C, 20);
	assert_int_equal(kern_cpu_open(&kb), 0);
	assert_int_equal(ss_krig_init(&k, &kb, &p, 20), 0);
	/* Kinv (K + λI) = I, and Kinv is symmetric */
	for (int j = 0; j < C; j++)
		for (int i = 0; i < C; i++) {
			double s = 0;
			for (int l = 0; l < C; l++) {
				double dy = p.y[l] - p.y[j];
				s += k.Kinv[i + C * l] *
				     (exp(-dy * dy / (2 * 400.0)) +
				      (l == j ? 1e-2 : 0));
			}
			assert_true(fabs(s - (i == j)) < 1e-9);
			assert_true(k.Kinv[i + C * j] == k.Kinv[j + C * i]);
		}
	for (int c = 0; c < C; c++) {
		double dy = p.y[c] - 600;
		f[c] = exp(-dy * dy / (2 * 60.0 * 60.0));
	}
	/* rigid shifts, then a non-rigid one (0 at the top, 12 µm at the
	 * bottom: each channel resampled at its own shifted depth) */
	for (int si = 0; si < 4; si++) {
		double shift = (double[]){0, 7, -13, 0}[si], err = 0, sc[C];
		for (int c = 0; c < C; c++)
			sc[c] = si < 3 ? shift : 12.0 * c / (C - 1);
		assert_int_equal(ss_krig_matrix(&k, &p, sc, A), 0);
		for (int t = 5; t < C - 5; t++) {
			double y = 0, dy = p.y[t] + sc[t] - 600;
			for (int j = 0; j < C; j++)
				y += A[t + C * j] * f[j];
			err = fmax(err, fabs(y - exp(-dy * dy / (2 * 3600.0))));
		}
		assert_true(err < 0.03);
	}
	/* banded: a row reaches only channels within a few sigma */
	for (int j = 0; j < C; j++)
		nz += A[30 + C * j] != 0;
	assert_true(nz > 3 && nz < 40);
	ss_krig_free(&k);
	kern_close(&kb);
	ss_probe_free(&p);
	free(A);
}

/*
 * The batch matrix resamples before it whitens (W = M A): a unit moved by s
 * and resampled back comes out as the whitened unit unmoved, whatever the
 * whitening M. M here is a local filter that varies along the probe (as a
 * whitening estimated from data does); resampled after it (A M), the
 * footprint came out 16–20 % off (correlation 0.97), since M of the moved
 * footprint is not M of the unmoved one moved.
 */
static void
test_batch_matrix_order(void **state)
{
	enum { C = 64 };
	struct ss_probe p = {0};
	struct ss_krig k;
	struct kern_backend kb;
	float *A = malloc(sizeof(float) * C * C);
	float *M = calloc(C * C, sizeof(float));
	float *W = malloc(sizeof(float) * C * C);
	double f[C], ref[C], sc[C];

	(void) state;
	probe(&p, C, 15);
	assert_int_equal(kern_cpu_open(&kb), 0);
	assert_int_equal(ss_krig_init(&k, &kb, &p, 20), 0);
	for (int c = 0; c < C; c++) {
		M[c + C * c] = 1;
		if (c + 1 < C)
			M[c + C * (c + 1)] = M[c + 1 + C * c] =
			        c % 2 ? -0.1f : -0.45f;
	}
	for (int si = 0; si < 4; si++) {
		double s = (double[]){-20, -7, 7, 20}[si], err = 0, mx = 0;
		for (int c = 0; c < C; c++) {
			double d0 = p.y[c] - 480, d1 = p.y[c] - 480 - s;
			f[c] = exp(-d1 * d1 / (2 * 40.0 * 40.0));
			ref[c] = exp(-d0 * d0 / (2 * 40.0 * 40.0));
			sc[c] = s;
		}
		assert_int_equal(ss_drift_batch_matrix(&k, &p, M, sc, A, W), 0);
		for (int t = 8; t < C - 8; t++) {
			double y = 0, r = 0;
			for (int j = 0; j < C; j++) {
				y += W[t + C * j] * f[j];
				r += M[t + C * j] * ref[j];
			}
			err = fmax(err, fabs(y - r));
			mx = fmax(mx, fabs(r));
		}
		assert_true(err < 0.02 * mx);
	}
	ss_krig_free(&k);
	kern_close(&kb);
	ss_probe_free(&p);
	free(A);
	free(M);
	free(W);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_register),
	        cmocka_unit_test(test_register_blocks),
	        cmocka_unit_test(test_hist_depth),
	        cmocka_unit_test(test_kriging),
	        cmocka_unit_test(test_batch_matrix_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
