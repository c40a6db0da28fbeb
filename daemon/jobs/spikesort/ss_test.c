/*
 * ss_test.c — units of the spikesort job: filter response, reference,
 * probe files, whitening, inversion, .npy bytes, matching of overlapping
 * spikes, post-processing labels, checkpoints, and submit-time validation.
 */
#include <complex.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nq_error.h"
#include "nq_npy.h"
#include "nq_test_rng.h"
#include "nq_value.h"
#include "ss.h"
#include "ss_job.h"

static struct kern_backend kb;

static int
setup(void **state)
{
	(void) state;
	return kern_cpu_open(&kb) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void) state;
	kern_close(&kb);
	return 0;
}

static double
gain(const struct ss_filter *f, double fs, double hz)
{
	double complex z = cexp(-I * 2 * M_PI * hz / fs); /* z^-1 */
	double complex h1 = (f->b1[0] + f->b1[1] * z) / (1 + f->a1[1] * z);
	double complex h2 = (f->b2[0] + f->b2[1] * z + f->b2[2] * z * z) /
	                    (1 + f->a2[1] * z + f->a2[2] * z * z);
	return cabs(h1 * h2);
}

static void
test_butterworth(void **state)
{
	struct ss_filter f;
	(void) state;
	assert_int_equal(ss_filter_design(&f, 30000, 300), 0);
	/* Butterworth: -3 dB at the cut-off, flat pass band, 18 dB/octave */
	assert_true(fabs(gain(&f, 30000, 300) - M_SQRT1_2) < 1e-3);
	assert_true(fabs(gain(&f, 30000, 5000) - 1) < 1e-3);
	assert_true(gain(&f, 30000, 75) < 0.02);
	assert_int_equal(ss_filter_design(&f, 30000, 20000), NQ_EBADPARAM);
}

static void
test_filtfilt_zero_phase(void **state)
{
	struct ss_filter f;
	int n = 6000, C = 2;
	float *x = malloc(sizeof(float) * n * C);
	double work[6];
	(void) state;
	ss_filter_design(&f, 30000, 300);
	for (int t = 0; t < n; t++) {
		x[t * C] = (float) (sin(2 * M_PI * 3000 * t / 30000.0) + 50);
		x[t * C + 1] = (float) sin(2 * M_PI * 30 * t / 30000.0);
	}
	ss_filter_filtfilt_batch(&f, x, C, n, work);
	/* 3 kHz passes unchanged in amplitude and phase; DC and 30 Hz go */
	for (int t = 1000; t < 5000; t++) {
		assert_true(fabs(x[t * C] -
		                 sin(2 * M_PI * 3000 * t / 30000.0)) < 0.01);
		assert_true(fabs(x[t * C + 1]) < 0.01);
	}
	free(x);
}

static void
test_preprocess_car(void **state)
{
	struct ss_filter f;
	int C = 8, T = 4000;
	float *X = malloc(sizeof(float) * C * T);
	(void) state;
	ss_filter_design(&f, 30000, 300);
	/* a common 2 kHz signal on every channel, plus a spike-like bump on
	 * channel 3 only: the reference must remove the first, keep the
	 * second */
	for (int t = 0; t < T; t++)
		for (int c = 0; c < C; c++) {
			double com = 100 * sin(2 * M_PI * 2000 * t / 30000.0);
			double own =
			        (c == 3 && t >= 2000 && t < 2010) ? -80 : 0;
			X[t * C + c] = (float) (com + own + 10 * c);
		}
	assert_int_equal(ss_preprocess(&f, X, C, T, 1), 0);
	double common = 0, bump = 0;
	for (int t = 500; t < 3500; t++)
		if (t < 1900 || t > 2100)
			common = fmax(common, fabs(X[t * C + 0]));
	for (int t = 2000; t < 2010; t++)
		bump = fmin(bump, X[t * C + 3]);
	assert_true(common < 1.0);
	assert_true(bump < -40);
	free(X);
}

static void
test_probe_kilosort(void **state)
{
	struct ss_probe p;
	char msg[256];
	const char *js = "{\"chanMap\": [3, 2, 1, 0], \"xc\": [0, 16, 0, 16],"
	                 " \"yc\": [0, 0, 20, 20], \"kcoords\": [1, 1, 1, 1],"
	                 " \"connected\": [true, false, true, true]}";
	(void) state;
	assert_int_equal(
	        ss_probe_parse(&p, js, strlen(js), 5, msg, sizeof(msg)), 0);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.row[0], 3);
	assert_int_equal(p.row[1], 1);
	assert_int_equal(p.row[2], 0);
	assert_true(p.y[2] == 20 && p.x[2] == 16);
	ss_probe_free(&p);
	/* a row the file does not have */
	assert_int_equal(
	        ss_probe_parse(&p, js, strlen(js), 3, msg, sizeof(msg)),
	        NQ_EBADPARAM);
	assert_non_null(strstr(msg, "rows 0..2"));
	/* mismatched lengths */
	const char *bad = "{\"chanMap\": [0, 1], \"xc\": [0], \"yc\": [0, 1]}";
	assert_int_equal(
	        ss_probe_parse(&p, bad, strlen(bad), 4, msg, sizeof(msg)),
	        NQ_EBADPARAM);
	assert_int_equal(
	        ss_probe_parse(&p, "{\"a\": 1}", 8, 4, msg, sizeof(msg)),
	        NQ_EBADPARAM);
	assert_int_equal(ss_probe_parse(&p, "{\"chanMap\": [0,", 15, 4, msg,
	                                sizeof(msg)),
	                 NQ_EBADPARAM);
}

static void
test_probe_probeinterface(void **state)
{
	struct ss_probe p;
	char msg[256];
	const char *js =
	        "{\"specification\": \"probeinterface\", \"probes\": [{"
	        "\"ndim\": 2, \"contact_positions\": [[0, 0], [0, 20], [32, "
	        "40]],"
	        "\"device_channel_indices\": [2, -1, 0],"
	        "\"shank_ids\": [\"0\", \"0\", \"1\"]}]}";
	int idx[2];
	(void) state;
	assert_int_equal(
	        ss_probe_parse(&p, js, strlen(js), 3, msg, sizeof(msg)), 0);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.row[0], 2);
	assert_int_equal(p.row[1], 0);
	assert_true(p.x[1] == 32 && p.y[1] == 40);
	assert_int_not_equal(p.shank[0], p.shank[1]);
	ss_probe_nearest(&p, 1, 2, idx);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 0);
	ss_probe_free(&p);
}

static void
test_nearest(void **state)
{
	struct ss_probe p;
	int idx[4];
	(void) state;
	ss_probe_linear(&p, 10, 20);
	ss_probe_nearest(&p, 5, 4, idx);
	/* itself, then 4 and 6 (tie: lower index first), then 3 */
	assert_int_equal(idx[0], 5);
	assert_int_equal(idx[1], 4);
	assert_int_equal(idx[2], 6);
	assert_int_equal(idx[3], 3);
	ss_probe_free(&p);
}

/* ss_noise_mask: a spike's window is zeroed on its channel and on the
 * channels whose nearest channels include it; the rest is left alone */
static void
test_noise_mask(void **state)
{
	struct ss_probe p;
	enum { C = 10, T = 400 };
	float *X = malloc(sizeof(float) * C * T);
	int64_t kept[C] = {0};
	(void) state;
	assert_non_null(X);
	ss_probe_linear(&p, C, 20);
	/* |x| = 1 (σ = 1 / 0.6745, 5 σ = 7.4) but channel 9, dead */
	for (int t = 0; t < T; t++)
		for (int c = 0; c < C; c++)
			X[c + C * t] =
			        c == 9 ? 0 : ((t + c) % 2 ? 1.0f : -1.0f);
	X[3 + C * 100] = -20;
	X[6 + C * 300] = 7; /* under 5 σ: kept */
	assert_int_equal(ss_noise_mask(&p, X, T, 5.0, 3, 5, 10, kept), 0);
	for (int c = 0; c < C; c++) {
		/* nearest 3 of c: c, c - 1, c + 1: 2, 3 and 4 see channel 3 */
		int masked = c >= 2 && c <= 4;
		assert_int_equal(kept[c], masked ? T - 16 : T);
		for (int t = 0; t < T; t++) {
			float want = c == 9 ? 0 : ((t + c) % 2 ? 1.0f : -1.0f);
			if (c == 6 && t == 300)
				want = 7;
			if (masked && t >= 95 && t <= 110)
				want = 0;
			assert_float_equal(X[c + C * t], want, 0);
		}
	}
	/* kept adds up over batches */
	assert_int_equal(ss_noise_mask(&p, X, T, 5.0, 3, 5, 10, kept), 0);
	assert_int_equal(kept[0], 2 * T);
	assert_int_equal(kept[3], 2 * T - 16);
	ss_probe_free(&p);
	free(X);
}

static void
test_source_reflect(void **state)
{
	int16_t d[5 * 3];
	struct ss_source s;
	struct ss_probe p;
	float out[9 * 2];
	(void) state;
	for (int t = 0; t < 5; t++)
		for (int c = 0; c < 3; c++)
			d[t * 3 + c] = (int16_t) (10 * t + c);
	ss_source_open_mem(&s, d, 5, 3);
	ss_probe_linear(&p, 2, 20);
	p.row[0] = 2; /* channel 0 reads row 2 */
	p.row[1] = 0;
	assert_int_equal(ss_source_read(&s, &p, -2, 9, out), 0);
	/* t = -2 → 2·x0 − x2 (odd reflection), t = 0..4 data, t = 5, 6 */
	assert_true(out[0] == 2 * 2 - 22);
	assert_true(out[2 * 2] == 2);
	assert_true(out[2 * 2 + 1] == 0);
	assert_true(out[6 * 2] == 42);
	assert_true(out[7 * 2] == 2 * 42 - 32);
	ss_probe_free(&p);
	ss_source_close(&s);
}

static void
test_whiten_full(void **state)
{
	int C = 6, T = 20000;
	struct ss_probe p;
	double *cov = calloc(C * C, sizeof(double));
	float M[36], *X = malloc(sizeof(float) * C * T);
	uint64_t s = 7;
	(void) state;
	ss_probe_linear(&p, C, 20);
	/* correlated data: x = A z */
	for (int t = 0; t < T; t++) {
		double z[6];
		for (int c = 0; c < C; c++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			z[c] = ((double) (s >> 11) / 9007199254740992.0 - 0.5) *
			       3.4641;
		}
		for (int c = 0; c < C; c++)
			X[t * C + c] = (float) (5 * z[c] + 3 * z[(c + 1) % C] +
			                        2 * z[0]);
	}
	for (int t = 0; t < T; t++)
		for (int a = 0; a < C; a++)
			for (int b = 0; b < C; b++)
				cov[a + C * b] += (double) X[t * C + a] *
				                  X[t * C + b] / T;
	assert_int_equal(ss_whiten_from_cov(&kb, cov, &p, C, M), 0);
	struct ss_kbuf dM = {0}, dx = {0}, dy = {0};
	assert_int_equal(ss_kbuf_ensure(&kb, &dM, sizeof(M)), 0);
	KOP(&kb, upload, dM.p, M, sizeof(M));
	assert_int_equal(ss_apply_matrix(&kb, dM.p, C, X, T, &dx, &dy), 0);
	for (int a = 0; a < C; a++)
		for (int b = 0; b < C; b++) {
			double v = 0;
			for (int t = 0; t < T; t++)
				v += (double) X[t * C + a] * X[t * C + b] / T;
			assert_true(fabs(v - (a == b)) < 1e-3);
		}
	/* full-range ZCA is symmetric */
	for (int a = 0; a < C; a++)
		for (int b = 0; b < C; b++)
			assert_true(fabs(M[a + C * b] - M[b + C * a]) < 1e-4);
	float inv[36];
	assert_int_equal(ss_invert(M, C, inv), 0);
	for (int a = 0; a < C; a++)
		for (int b = 0; b < C; b++) {
			double v = 0;
			for (int k = 0; k < C; k++)
				v += M[a + C * k] * inv[k + C * b];
			assert_true(fabs(v - (a == b)) < 1e-4);
		}
	float sing[4] = {1, 2, 2, 4};
	assert_int_equal(ss_invert(sing, 2, inv), NQ_EBADDATA);
	ss_kbuf_free(&kb, &dM);
	ss_kbuf_free(&kb, &dx);
	ss_kbuf_free(&kb, &dy);
	ss_probe_free(&p);
	free(cov);
	free(X);
}

static void
test_npy_bytes(void **state)
{
	char dir[] = "/tmp/ss_testXXXXXX", path[256];
	int64_t shape[2] = {3, 2};
	float d[6] = {1, 2, 3, 4, 5, 6};
	unsigned char buf[256];
	(void) state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.npy", dir);
	assert_int_equal(ss_npy_write(path, "<f4", 2, shape, d, 4), 0);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* 10 + 60 header characters + '\n' → padded to 128 (numpy's own
	 * layout for this array) */
	assert_int_equal(n, 128 + 24);
	assert_memory_equal(buf, "\x93NUMPY\x01\x00", 8);
	assert_int_equal(buf[8] + 256 * buf[9] + 10, 128);
	assert_int_equal(buf[127], '\n');
	assert_int_equal(buf[126], ' ');
	assert_non_null(strstr((char *) buf + 10,
	                       "{'descr': '<f4', 'fortran_order': False, "
	                       "'shape': (3, 2), }"));
	assert_memory_equal(buf + 128, d, 24);
	int64_t s1[1] = {5};
	assert_int_equal(ss_npy_write(path, "<i8", 1, s1, buf, 8), 0);
	f = fopen(path, "rb");
	assert_true(fread(buf, 1, sizeof(buf), f) > 10);
	fclose(f);
	assert_non_null(strstr((char *) buf + 10, "'shape': (5,), }"));
	unlink(path);
	rmdir(dir);
}

/* Two templates, spikes overlapping by 15 samples: both come out with
 * their amplitudes, and the residual is (almost) zero. */
static void
test_match_overlap(void **state)
{
	int C = 8, nt = 61, T = 1000;
	struct ss_config cfg;
	struct ss_templates tp = {0};
	struct ss_matcher *m;
	struct ss_match_out o = {0};
	float *R = calloc((size_t) C * T, sizeof(float));
	(void) state;
	ss_config_defaults(&cfg);
	tp.K = 2;
	tp.C = C;
	tp.nt = nt;
	tp.rank = 3;
	tp.W = calloc((size_t) 2 * C * nt, sizeof(float));
	for (int k = 0; k < 2; k++) {
		double nrm = 0;
		for (int a = 0; a < nt; a++)
			for (int c = 0; c < C; c++) {
				double tt = (a - 20) / (k ? 4.0 : 7.0);
				double v = -exp(-tt * tt) *
				           exp(-pow(c - (k ? 2 : 5), 2) / 4.0);
				tp.W[(size_t) k * C * nt + c + C * a] =
				        (float) v;
				nrm += v * v;
			}
		for (int i = 0; i < C * nt; i++)
			tp.W[(size_t) k * C * nt + i] /= (float) sqrt(nrm);
	}
	assert_int_equal(ss_templates_lowrank(&kb, &tp), 0);
	int64_t st[3] = {200, 215, 600};
	int sk[3] = {0, 1, 0};
	float sa[3] = {20, 30, 12};
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < C * nt; j++)
			R[(size_t) C * st[i] + j] +=
			        sa[i] * tp.W[(size_t) sk[i] * C * nt + j];
	assert_int_equal(ss_matcher_new(&kb, &tp, T, &m), 0);
	assert_int_equal(
	        ss_match_batch(m, &cfg, R, R, T, 0, T, 1000, &o, NULL, NULL),
	        0);
	assert_int_equal(o.n, 3);
	int found = 0;
	for (int64_t i = 0; i < o.n; i++)
		for (int j = 0; j < 3; j++)
			if (o.t[i] == 1000 + st[j] + 20 && o.k[i] == sk[j] &&
			    fabs(o.a[i] - sa[j]) < 0.5)
				found |= 1 << j;
	assert_int_equal(found, 7);
	double res = 0;
	for (int i = 0; i < C * T; i++)
		res = fmax(res, fabs(R[i]));
	assert_true(res < 0.5);
	ss_matcher_free(m);
	ss_match_out_free(&o);
	ss_templates_free(&tp);
	free(R);
}

/* th_own's thresholds: a template whose typical amplitude is at least
 * th_match of its own noise but under twice that is matched from th_lo
 * of its noise, never above th_match; big ones, those under th_match of
 * their noise (noise), those without an amplitude and every template
 * without amplitudes keep th_match */
static void
test_match_thresholds(void **state)
{
	float sig[6] = {1, 0.5f, 1, 2, 0.9f, 1};
	float mu[6] = {7, 30, 0, 10, 10.7f, 5.9f}, th2[6];
	(void) state;
	ss_match_thresholds(sig, mu, 6, 6, 4, th2);
	assert_float_equal(th2[0], 16, 1e-5);        /* 7 < 12: 4 × 1 */
	assert_float_equal(th2[1], 36, 1e-5);        /* 30 ≥ 2 × 6 × 0.5 */
	assert_float_equal(th2[2], 36, 1e-5);        /* no amplitude */
	assert_float_equal(th2[3], 36, 1e-5);        /* 4 × 2 = 8 > th_match */
	assert_float_equal(th2[4], 3.6 * 3.6, 1e-4); /* 10.7 < 10.8 */
	assert_float_equal(th2[5], 36, 1e-5);        /* 5.9 < 6 × 1 */
	ss_match_thresholds(sig, NULL, 6, 6, 4, th2);
	for (int k = 0; k < 6; k++)
		assert_float_equal(th2[k], 36, 1e-5);
}

/* A template of typical amplitude 6.5 in unit white noise (its score's
 * spread against the noise: 1): at th_match 6 (with the amplitude prior a
 * fit from about 6) a third of its spikes are not matched; with th_own
 * (its noise measured on the batch, so its threshold 4; a fit from about
 * 4.5) nearly all are, and the noise alone makes next to no spikes. */
static void
test_match_own_threshold(void **state)
{
	enum { C = 8, NT = 61, T = 100000, NS = 200, GAP = 490 };
	struct nq_test_rng rng = NQ_TEST_RNG_INIT(1606);
	struct ss_config cfg;
	struct ss_templates tp = {0};
	float *R0 = malloc(sizeof(float) * C * T);
	float *R = malloc(sizeof(float) * C * T);
	int found[2] = {0, 0}, other[2] = {0, 0};
	double nrm = 0;
	(void) state;
	assert_non_null(R0);
	assert_non_null(R);
	ss_config_defaults(&cfg);
	tp.K = 1;
	tp.C = C;
	tp.nt = NT;
	tp.rank = 3;
	tp.W = calloc((size_t) C * NT, sizeof(float));
	tp.mu = malloc(sizeof(float));
	assert_non_null(tp.W);
	assert_non_null(tp.mu);
	tp.mu[0] = 6.5f;
	for (int a = 0; a < NT; a++)
		for (int c = 0; c < C; c++) {
			double tt = (a - 20) / 5.0;
			double v = -exp(-tt * tt) * exp(-pow(c - 4, 2) / 4.0);
			tp.W[c + C * a] = (float) v;
			nrm += v * v;
		}
	for (int i = 0; i < C * NT; i++)
		tp.W[i] /= (float) sqrt(nrm);
	assert_int_equal(ss_templates_lowrank(&kb, &tp), 0);
	for (int i = 0; i < C * T; i++)
		R0[i] = (float) nq_test_rng_normal(&rng);
	for (int s = 0; s < NS; s++) /* every GAP samples from 100 */
		for (int j = 0; j < C * NT; j++)
			R0[(size_t) C * (100 + GAP * s) + j] += 6.5f * tp.W[j];
	for (int own = 0; own < 2; own++) {
		struct ss_matcher *m;
		struct ss_match_out o = {0};
		cfg.th_own = own;
		memcpy(R, R0, sizeof(float) * C * T);
		assert_int_equal(ss_matcher_new(&kb, &tp, T, &m), 0);
		assert_int_equal(ss_match_batch(m, &cfg, R, R, T, 0, T, 0, &o,
		                                NULL, NULL),
		                 0);
		for (int64_t i = 0; i < o.n; i++) {
			int64_t d = (o.t[i] - cfg.nt0min - 100) % GAP;
			if (o.t[i] - cfg.nt0min >= 100 &&
			    (d <= 2 || d >= GAP - 2))
				found[own]++;
			else
				other[own]++;
		}
		ss_matcher_free(m);
		ss_match_out_free(&o);
	}
	print_message("own threshold: found %d / %d (th_match: %d), "
	              "others %d (%d)\n",
	              found[1], NS, found[0], other[1], other[0]);
	assert_true(found[0] < NS * 8 / 10);
	assert_true(found[1] >= NS * 95 / 100);
	assert_true(other[1] <= 5);
	ss_templates_free(&tp);
	free(R0);
	free(R);
}

static void
test_post_labels(void **state)
{
	struct ss_config cfg;
	struct ss_templates tp = {0};
	struct ss_match_out o = {0};
	struct ss_result r = {0};
	int C = 2, nt = 61;
	(void) state;
	ss_config_defaults(&cfg);
	tp.K = 2;
	tp.C = C;
	tp.nt = nt;
	tp.rank = 3;
	tp.W = calloc((size_t) 2 * C * nt, sizeof(float));
	tp.W[0 + C * 20] = 1;          /* template 0 on channel 0 */
	tp.W[C * nt + 1 + C * 40] = 1; /* template 1 on channel 1 */
	/* unit 0: regular 9 ms spacing (never < 1 ms); unit 1: pairs 0.5 ms
	 * apart every 9 ms (refractory violations). One exact duplicate. */
	for (int i = 0; i < 400; i++) {
		ss_match_out_push(&o, 1000 + 270 * i, 0, 10);
		ss_match_out_push(&o, 1100 + 270 * i, 1, 10);
		ss_match_out_push(&o, 1115 + 270 * i, 1, 10);
	}
	ss_match_out_push(&o, 1000 + 270 * 5 + 3, 0, 12);
	assert_int_equal(ss_post(&cfg, &tp, &o, &r), 0);
	assert_int_equal(r.n_spikes, 1200);
	assert_int_equal(r.counts[0], 400);
	assert_true(r.good[0]);
	assert_false(r.good[1]);
	assert_int_equal(r.n_good, 1);
	for (int64_t i = 1; i < r.n_spikes; i++)
		assert_true(r.times[i] >= r.times[i - 1]);
	/* the duplicate kept the larger amplitude at its own time */
	int seen = 0;
	for (int64_t i = 0; i < r.n_spikes; i++)
		if (r.times[i] == 1000 + 270 * 5 + 3 + 0)
			seen = r.amps[i] == 12;
	assert_true(seen);
	assert_true(r.similar[1] < 0.5);
	ss_result_free(&r);
	ss_match_out_free(&o);
	ss_templates_free(&tp);
}

static void
test_ckpt(void **state)
{
	char dir[] = "/tmp/ss_ckptXXXXXX";
	double a[3] = {1, 2, 3}, b[3] = {0};
	(void) state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ss_ckpt_save(dir, "x.bin", 42, a, sizeof(a)), 0);
	assert_int_equal(ss_ckpt_load(dir, "x.bin", 42, b, sizeof(b)), 0);
	assert_memory_equal(a, b, sizeof(a));
	/* another parameter set: stale */
	assert_int_equal(ss_ckpt_load(dir, "x.bin", 43, b, sizeof(b)), 1);
	assert_int_equal(ss_ckpt_load(dir, "y.bin", 42, b, sizeof(b)), 1);
	char path[128];
	snprintf(path, sizeof(path), "%s/x.bin", dir);
	unlink(path);
	rmdir(dir);
}

static int
validate_with(struct nq_map *p, struct nq_map *in, char *msg, size_t n)
{
	int rc = ss_job_type.validate(p, in, msg, n);
	nq_map_free(p);
	if (in)
		nq_map_free(in);
	return rc;
}

/* The daemon's validate() opens no user path (issue 9): what needs the
 * file passes it and is refused by check(), which runs as the owner. */
static int
validate_then_check(struct nq_map *p, int other_user, char *msg, size_t n)
{
	struct job_check_ctx c = {NULL, 0, 022, other_user};
	struct job_estimate est;
	int rc = ss_job_type.validate(p, NULL, msg, n);

	if (rc == 0) {
		msg[0] = '\0';
		rc = ss_job_type.check(p, NULL, &c, &est, msg, n);
	}
	nq_map_free(p);
	return rc;
}

static void
test_validate(void **state)
{
	char msg[512], dir[] = "/tmp/ss_valXXXXXX", path[256], probe[256];
	struct nq_map *p;
	(void) state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.bin", dir);
	FILE *f = fopen(path, "wb");
	int16_t z[4 * 1000] = {0};
	fwrite(z, 2, 4 * 1000, f);
	fclose(f);

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)), 0);

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 3); /* 8000 bytes / 6 */
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_then_check(p, 0, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "multiple"));

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	nq_map_set_float(p, "th_detect_typo", 5);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "th_detect_typo"));

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	/* no sample_rate: only a .meta beside the file could give it */
	assert_int_equal(validate_then_check(p, 0, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "sample_rate"));

	p = nq_map_new();
	nq_map_set_str(p, "recording", "/nonexistent/r.bin");
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)), 0);
	p = nq_map_new();
	nq_map_set_str(p, "recording", "/nonexistent/r.bin");
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_then_check(p, 0, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "/nonexistent/r.bin"));

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	nq_map_set_float(p, "th_match", -1);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "th_match"));

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	nq_map_set_float(p, "xdup_ms", 0);
	nq_map_set_float(p, "template_radius_um", 0);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)), 0);

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	nq_map_set_float(p, "xdup_ms", 6);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "xdup_ms"));

	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	nq_map_set_float(p, "template_radius_um", -5);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "template_radius_um"));

	/* probe with more channels than the file has rows */
	snprintf(probe, sizeof(probe), "%s/p.json", dir);
	f = fopen(probe, "w");
	fputs("{\"chanMap\": [0,1,2,3,4], \"xc\": [0,0,0,0,0], "
	      "\"yc\": [0,20,40,60,80]}",
	      f);
	fclose(f);
	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	nq_map_set_str(p, "probe", probe);
	assert_int_equal(validate_then_check(p, 0, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "rows 0..3"));

	/* as another user than the service, the phy folder cannot go into
	 * the spool: output_dir is required */
	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_then_check(p, 1, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "output_dir is required"));
	p = nq_map_new();
	nq_map_set_str(p, "recording", path);
	nq_map_set_int(p, "n_channels", 4);
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_then_check(p, 0, msg, sizeof(msg)), 0);

	/* inline data: int16 samples × channels */
	struct nq_map *in = nq_map_new();
	struct nq_array a;
	int64_t shape[2] = {1000, 4};
	nq_array_init(&a, NQ_DT_I16, 2, shape);
	nq_map_set_array(in, "data", &a);
	p = nq_map_new();
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_with(p, in, msg, sizeof(msg)), 0);

	in = nq_map_new();
	nq_array_init(&a, NQ_DT_F32, 2, shape);
	nq_map_set_array(in, "data", &a);
	p = nq_map_new();
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_with(p, in, msg, sizeof(msg)), NQ_EBADARRAY);

	/* neither or both */
	p = nq_map_new();
	nq_map_set_float(p, "sample_rate", 30000);
	assert_int_equal(validate_with(p, NULL, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	unlink(probe);
	unlink(path);
	rmdir(dir);
}

/* ---- the job type end to end on inline data, with a fake worker ctx */

struct fake {
	struct job_ctx ctx;
	double last;
	int monotone, cancel_after, calls;
};

static void
f_progress(struct job_ctx *ctx, double frac, const char *stage)
{
	struct fake *f = (struct fake *) ctx;
	(void) stage;
	if (frac < f->last - 1e-12)
		f->monotone = 0;
	f->last = frac;
}

static int
f_canceled(struct job_ctx *ctx)
{
	struct fake *f = (struct fake *) ctx;
	return f->cancel_after >= 0 && ++f->calls > f->cancel_after;
}

static void
f_log(struct job_ctx *ctx, const char *fmt, ...)
{
	(void) ctx;
	(void) fmt;
}

static uint64_t
sm64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double
unif(uint64_t *s)
{
	return ((double) (sm64(s) >> 11) + 0.5) / 9007199254740992.0;
}

#define GT_U 3
#define GT_C 8
#define GT_N 240000

/* 3 units on an 8-channel linear probe, 10 Hz with 3 ms refractory, noise
 * σ = 10, troughs of 120-150 at their centre channel. */
static int16_t *
make_data(int64_t *gt_t, int *gt_u, int *n_gt)
{
	int16_t *d = malloc(sizeof(int16_t) * GT_N * GT_C);
	float *x = calloc((size_t) GT_N * GT_C, sizeof(float));
	uint64_t s = 11;
	double ctr[GT_U] = {1.5, 4, 6.5}, wid[GT_U] = {0.12, 0.25, 0.18};
	double amp[GT_U] = {150, 130, 120}, rep[GT_U] = {0.2, 0.5, 0.35};
	int n = 0;
	for (int64_t i = 0; i < (int64_t) GT_N * GT_C; i++)
		x[i] = (float) (10 * sqrt(-2 * log(unif(&s))) *
		                cos(2 * M_PI * unif(&s)));
	for (int u = 0; u < GT_U; u++) {
		double t = 0.01;
		for (;;) {
			t += 0.003 - log(unif(&s)) / 10.0;
			int64_t t0 = (int64_t) (t * 30000);
			if (t0 >= GT_N - 100)
				break;
			for (int a = 0; a < 61; a++) {
				double ms = (a - 20) / 30.0;
				double w =
				        -exp(-0.5 * pow(ms / wid[u], 2)) +
				        rep[u] * exp(-0.5 *
				                     pow((ms - 3 * wid[u]) /
				                                 (1.8 * wid[u]),
				                         2));
				double tap =
				        a < 10 ? 0.5 - 0.5 * cos(M_PI * a / 10)
				        : a > 44 ? 0.5 + 0.5 * cos(M_PI *
				                                   (a - 44) /
				                                   17.0)
				                 : 1;
				for (int c = 0; c < GT_C; c++)
					x[(t0 - 20 + a) * GT_C + c] +=
					        (float) (amp[u] * w * tap *
					                 exp(-0.5 *
					                     pow((c - ctr[u]) /
					                                 1.2,
					                         2)));
			}
			gt_t[n] = t0;
			gt_u[n] = u;
			n++;
		}
	}
	for (int64_t i = 0; i < (int64_t) GT_N * GT_C; i++)
		d[i] = (int16_t) lrintf(x[i]);
	free(x);
	*n_gt = n;
	return d;
}

static void
test_job_run_inline(void **state)
{
	char dir[] = "/tmp/ss_jobXXXXXX", ck[128], path[256], msg[512];
	int64_t *gt_t = malloc(sizeof(int64_t) * 2000), shape[2] = {GT_N, GT_C};
	int *gt_u = malloc(sizeof(int) * 2000), n_gt = 0;
	struct nq_map *p = nq_map_new(), *in = nq_map_new(),
	              *out = nq_map_new();
	struct nq_array a, st, sc;
	struct fake f = {0};
	(void) state;
	assert_non_null(mkdtemp(dir));
	snprintf(ck, sizeof(ck), "%s/ckpt", dir);
	assert_int_equal(mkdir(ck, 0755), 0);
	int16_t *d = make_data(gt_t, gt_u, &n_gt);
	assert_int_equal(nq_array_init(&a, NQ_DT_I16, 2, shape), 0);
	memcpy(a.data, d, a.nbytes);
	free(d);
	nq_map_set_array(in, "data", &a);
	nq_map_set_float(p, "sample_rate", 30000);
	nq_map_set_int(p, "seed", 3);
	f.ctx.kb = &kb;
	f.ctx.job_dir = dir;
	f.ctx.ckpt_dir = ck;
	f.ctx.attempt = 1;
	f.ctx.progress = f_progress;
	f.ctx.canceled = f_canceled;
	f.ctx.log = f_log;
	f.monotone = 1;
	f.cancel_after = -1;
	assert_int_equal(ss_job_type.validate(p, in, msg, sizeof(msg)), 0);
	struct job_estimate est;
	assert_int_equal(ss_job_type.estimate(p, in, &est), 0);
	assert_true(est.host_bytes > (uint64_t) GT_C * 60000 * 4);
	int rc = ss_job_type.run(&f.ctx, p, in, out, msg, sizeof(msg));
	assert_int_equal(rc, 0);
	assert_true(f.monotone);
	assert_true(f.last == 1.0);
	assert_int_equal(nq_map_get(out, "n_units")->u.i, GT_U);
	assert_true(nq_map_get(out, "duration_s")->u.f == 8.0);
	assert_int_equal(nq_map_get(out, "unit_spike_counts")->kind, NQ_ARRAY);
	/* the traffic counters and the device model reach the result */
	assert_true(nq_map_get(out, "device_bytes_per_batch")->u.i > 0);
	assert_true(nq_map_get(out, "d2h_bytes")->u.i > 0);
	assert_true(fabs(nq_map_get(out, "h2d_bytes_per_s")->u.f * 8.0 -
	                 (double) nq_map_get(out, "h2d_bytes")->u.i) < 1);
	assert_true(nq_map_get(out, "match_d2h_bytes_per_s")->u.f > 0);
	/* the phy folder, read back with the protocol's .npy reader */
	snprintf(path, sizeof(path), "%s/phy/spike_times.npy", dir);
	assert_int_equal(nq_npy_read(path, &st, 0, msg, sizeof(msg)), 0);
	snprintf(path, sizeof(path), "%s/phy/spike_clusters.npy", dir);
	assert_int_equal(nq_npy_read(path, &sc, 0, msg, sizeof(msg)), 0);
	assert_int_equal(st.dtype, NQ_DT_I64);
	assert_int_equal(sc.dtype, NQ_DT_I32);
	const int64_t *t = st.data;
	const int32_t *cl = sc.data;
	int64_t ns = st.shape[0];
	/* each ground-truth unit: its best cluster holds ≥ 95 % of its
	 * spikes (±0.4 ms) and ≥ 95 % of that cluster's spikes are its */
	for (int u = 0; u < GT_U; u++) {
		int64_t hit[64] = {0}, size[64] = {0}, nu = 0;
		for (int64_t i = 0; i < ns; i++)
			if (cl[i] < 64)
				size[cl[i]]++;
		for (int g = 0; g < n_gt; g++) {
			if (gt_u[g] != u)
				continue;
			nu++;
			for (int64_t i = 0; i < ns; i++)
				if (llabs(t[i] - gt_t[g]) <= 12 && cl[i] < 64) {
					hit[cl[i]]++;
					break;
				}
		}
		int best = 0;
		for (int k = 1; k < 64; k++)
			if (hit[k] > hit[best])
				best = k;
		assert_true(hit[best] >= 0.95 * nu);
		assert_true(hit[best] >= 0.95 * size[best]);
	}
	nq_array_fini(&st);
	nq_array_fini(&sc);
	snprintf(path, sizeof(path), "%s/phy/recording.dat", dir);
	assert_int_equal(access(path, R_OK), 0);
	snprintf(path, sizeof(path), "%s/whiten.bin", ck);
	assert_int_equal(access(path, R_OK), 0);

	/* a small device grant: smaller batches, the same units */
	struct nq_map *out3 = nq_map_new();
	f.ctx.grant_bytes = 2u << 20;
	f.last = 0;
	assert_int_equal(ss_job_type.run(&f.ctx, p, in, out3, msg, sizeof(msg)),
	                 0);
	assert_int_equal(nq_map_get(out3, "n_units")->u.i, GT_U);
	int64_t n1 = nq_map_get(out, "n_spikes")->u.i;
	int64_t n3 = nq_map_get(out3, "n_spikes")->u.i;
	assert_true(llabs(n1 - n3) <= n1 / 50);
	nq_map_free(out3);
	f.ctx.grant_bytes = 0;

	/* canceled after a few batches: ECANCELED, no crash */
	struct nq_map *out2 = nq_map_new();
	nq_map_set_int(p, "seed", 4); /* not the checkpointed run */
	f.cancel_after = 3;
	f.last = 0;
	assert_int_equal(ss_job_type.run(&f.ctx, p, in, out2, msg, sizeof(msg)),
	                 NQ_ECANCELED);
	nq_map_free(out2);
	nq_map_free(p);
	nq_map_free(in);
	nq_map_free(out);
	free(gt_t);
	free(gt_u);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_meta(void **state)
{
	char dir[] = "/tmp/ss_metaXXXXXX", bin[128], meta[128], msg[256];
	double fs = 0;
	int nc = 0;
	(void) state;
	assert_non_null(mkdtemp(dir));
	snprintf(bin, sizeof(bin), "%s/x.ap.bin", dir);
	snprintf(meta, sizeof(meta), "%s/x.ap.meta", dir);
	assert_int_equal(ss_meta_read(bin, &fs, &nc), 1);
	FILE *f = fopen(meta, "w");
	fputs("typeThis=imec\nimSampRate=30000.5\nnSavedChans=385\n", f);
	fclose(f);
	f = fopen(bin, "wb");
	int16_t z[385 * 300] = {0};
	fwrite(z, 2, 385 * 300, f);
	fclose(f);
	assert_int_equal(ss_meta_read(bin, &fs, &nc), 0);
	assert_true(fs == 30000.5);
	assert_int_equal(nc, 385);
	/* a malformed channel count is no count (atoi read 38 here) */
	f = fopen(meta, "w");
	fputs("imSampRate=30000.5\nnSavedChans=38x5\n", f);
	fclose(f);
	nc = -1;
	assert_int_equal(ss_meta_read(bin, &fs, &nc), 0);
	assert_int_equal(nc, 0);
	f = fopen(meta, "w");
	fputs("imSampRate=30000.5\nnSavedChans=385\n", f);
	fclose(f);
	/* the job takes n_channels and sample_rate from the .meta */
	struct nq_map *p = nq_map_new();
	nq_map_set_str(p, "recording", bin);
	assert_int_equal(ss_job_type.validate(p, NULL, msg, sizeof(msg)), 0);
	nq_map_free(p);
	unlink(bin);
	unlink(meta);
	rmdir(dir);
}

/* The banded whitening equals the dense product when M is banded: a
 * 40-channel matrix with a half-width of 5, blocks of 8 rows. */
static void
test_apply_banded(void **state)
{
	enum { C = 40, T = 50 };
	static float M[C * C], X[C * T], Y[C * T], Z[C * T];
	struct ss_band band[C / 8 + 2];
	uint64_t s = 7;
	(void) state;

	for (int i = 0; i < C * C; i++) {
		int r = i % C, c = i / C;
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		M[i] = abs(r - c) <= 5 ? (float) (s >> 40) / 16777216.0f : 0;
	}
	for (int i = 0; i < C * T; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		X[i] = Y[i] = (float) (s >> 40) / 16777216.0f - 0.5f;
	}
	int nb = ss_band_blocks(M, C, 8, band);
	assert_int_equal(nb, 5);
	assert_int_equal(band[0].c0, 0);
	assert_int_equal(band[0].c1, 13);
	assert_int_equal(band[2].c0, 11);
	assert_int_equal(band[2].c1, 29);
	for (int t = 0; t < T; t++)
		for (int r = 0; r < C; r++) {
			double v = 0;
			for (int c = 0; c < C; c++)
				v += (double) M[r + C * c] * X[c + C * t];
			Z[r + C * t] = (float) v;
		}
	struct ss_kbuf dM = {0}, dx = {0}, dy = {0};
	assert_int_equal(ss_kbuf_ensure(&kb, &dM, sizeof(M)), 0);
	KOP(&kb, upload, dM.p, M, sizeof(M));
	assert_int_equal(
	        ss_apply_banded(&kb, dM.p, C, band, nb, Y, T, &dx, &dy), 0);
	for (int i = 0; i < C * T; i++)
		assert_true(fabsf(Y[i] - Z[i]) < 1e-5f);
	ss_kbuf_free(&kb, &dM);
	ss_kbuf_free(&kb, &dx);
	ss_kbuf_free(&kb, &dy);
}

/* ---- preprocessing against plain reference implementations (ss-pre) */

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *) a, y = *(const float *) b;
	return x < y ? -1 : x > y;
}

/* Textbook ss_preprocess: float mean removal, sorted median per sample,
 * each channel filtered forward then backward on its own (double state,
 * steady-state start), one step after the other. */
static void
ref_preprocess(const struct ss_filter *f, float *X, int C, int T, int car)
{
	float *col = malloc(sizeof(float) * C), *x = malloc(sizeof(float) * T);
	if (T <= 0 || col == NULL || x == NULL)
		fail();
	for (int c = 0; c < C; c++) {
		double s = 0;
		for (int t = 0; t < T; t++)
			s += X[t * C + c];
		float m = (float) (s / T);
		for (int t = 0; t < T; t++)
			X[t * C + c] -= m;
	}
	for (int t = 0; t < T && car && C >= 3; t++) {
		memcpy(col, X + t * C, sizeof(float) * C);
		qsort(col, C, sizeof(float), cmp_float);
		float med =
		        C % 2 ? col[C / 2] : (col[C / 2 - 1] + col[C / 2]) / 2;
		for (int c = 0; c < C; c++)
			X[t * C + c] -= med;
	}
	for (int c = 0; c < C; c++) {
		for (int t = 0; t < T; t++)
			x[t] = X[t * C + c];
		for (int pass = 0; pass < 2; pass++) {
			double z1 = -f->b1[0] * x[pass ? T - 1 : 0], s1 = 0,
			       s2 = 0;
			for (int i = 0; i < T; i++) {
				int t = pass ? T - 1 - i : i;
				double xi = x[t], y = f->b1[0] * xi + z1;
				z1 = f->b1[1] * xi - f->a1[1] * y;
				double u = f->b2[0] * y + s1;
				s1 = f->b2[1] * y - f->a2[1] * u + s2;
				s2 = f->b2[2] * y - f->a2[2] * u;
				x[t] = (float) u;
			}
		}
		for (int t = 0; t < T; t++)
			X[t * C + c] = x[t];
	}
	free(col);
	free(x);
}

/* got (ss_preprocess of in, C × T) against ref_preprocess of in: every
 * value within 1e-6 of the largest; returns that largest. */
static double
assert_as_textbook(const struct ss_filter *f, const float *in, const float *got,
                   int C, int T, int car)
{
	size_t n = (size_t) C * T;
	float *R = malloc(sizeof(float) * n);
	double big = 0, err = 0;

	assert_non_null(R);
	memcpy(R, in, sizeof(float) * n);
	ref_preprocess(f, R, C, T, car);
	for (size_t i = 0; i < n; i++) {
		big = fmax(big, fabs(R[i]));
		err = fmax(err, fabs(got[i] - R[i]));
	}
	assert_true(err <= 1e-6 * big);
	free(R);
	return big;
}

/* The fused, vectorised ss_preprocess (median by counting, mean/median/
 * forward pass in one sweep) equals the textbook one on data that
 * exercises the median's paths: noise around a drifting common signal,
 * integer data full of ties, all-equal samples, jumps of 1e4 between
 * samples, 1e30-sized values; odd and even channel counts. A median off
 * by one rank would differ by the gap between neighbouring values
 * (>= 1e-3 of the range here), far above the tolerance. */
static void
test_preprocess_reference(void **state)
{
	static const int Cs[] = {3, 4, 5, 16, 33, 384};
	struct ss_filter f;
	uint64_t s = 11;
	(void) state;
	ss_filter_design(&f, 30000, 300);
	for (size_t ci = 0; ci < sizeof(Cs) / sizeof(Cs[0]); ci++)
		for (int kind = 0; kind < 5; kind++) {
			int C = Cs[ci], T = 400;
			float *X = malloc(sizeof(float) * C * T);
			float *R = malloc(sizeof(float) * C * T);
			double com = 0;
			for (int t = 0; t < T; t++) {
				com += unif(&s) - 0.5;
				for (int c = 0; c < C; c++) {
					double v = 3 * (unif(&s) - 0.5) + com;
					if (kind == 1)
						v = floor(4 * unif(&s)) + c % 3;
					else if (kind == 2)
						v = t % 7 == 0 ? 5 : v;
					else if (kind == 3)
						v += (t / 3) % 2 ? 1e4 : -1e4;
					else if (kind == 4)
						v *= 1e30;
					X[t * C + c] = R[t * C + c] = (float) v;
				}
			}
			for (int car = 0; car < 2; car++) {
				if (car) /* fresh copies for the second run */
					for (int i = 0; i < C * T; i++)
						X[i] = R[i];
				float *Y = malloc(sizeof(float) * C * T);
				memcpy(Y, X, sizeof(float) * C * T);
				assert_int_equal(
				        ss_preprocess(&f, X, C, T, car), 0);
				assert_as_textbook(&f, Y, X, C, T, car);
				free(Y);
			}
			free(X);
			free(R);
		}
}

/* ss_preprocess shares a batch over the host's threads (channel means and
 * filters by channels, the medians by samples): 1, 2 and 3 threads give
 * the same bits, equal to the textbook one, on batches big enough to be
 * shared, with channel counts under one, at and off the 16-channel lines
 * each thread takes. */
static void
test_preprocess_threads(void **state)
{
	static const int Cs[] = {16, 20, 64, 129};
	struct ss_filter f;
	uint64_t s = 5;
	(void) state;
	ss_filter_design(&f, 30000, 300);
	for (size_t ci = 0; ci < sizeof(Cs) / sizeof(Cs[0]); ci++)
		for (int car = 0; car < 2; car++) {
			int C = Cs[ci], T = 6000;
			size_t n = (size_t) C * T;
			float *X0 = malloc(sizeof(float) * n);
			float *X[3];
			double com = 0;
			assert_non_null(X0);
			for (int t = 0; t < T; t++) {
				com += unif(&s) - 0.5;
				for (int c = 0; c < C; c++)
					X0[(size_t) t * C + c] =
					        (float) (40 * (unif(&s) - 0.5) +
					                 30 * com + 5 * c);
			}
			for (int v = 0; v < 3; v++) {
				X[v] = malloc(sizeof(float) * n);
				assert_non_null(X[v]);
				memcpy(X[v], X0, sizeof(float) * n);
#ifdef _OPENMP
				omp_set_num_threads(v + 1);
#endif
				assert_int_equal(
				        ss_preprocess(&f, X[v], C, T, car), 0);
			}
#ifdef _OPENMP
			omp_set_num_threads(1);
#endif
			assert_memory_equal(X[0], X[1], sizeof(float) * n);
			assert_memory_equal(X[0], X[2], sizeof(float) * n);
			assert_true(assert_as_textbook(&f, X0, X[0], C, T,
			                               car) > 1);
			for (int v = 0; v < 3; v++)
				free(X[v]);
			free(X0);
		}
}

/* The host (cpu backend) banded whitening against a double-precision
 * dense product, with C not a multiple of the 16-row blocks, bands of
 * irregular width, T crossing the 64-sample tiles and the 4-sample
 * steps, and a fully dense matrix. */
static void
test_apply_banded_host(void **state)
{
	static const int Cs[] = {37, 20, 16, 1};
	static const int Ts[] = {131, 64, 3, 5};
	uint64_t s = 5;
	(void) state;
	for (int k = 0; k < 4; k++) {
		int C = Cs[k], T = Ts[k];
		float *M = malloc(sizeof(float) * C * C);
		float *X = malloc(sizeof(float) * C * T);
		float *Y = malloc(sizeof(float) * C * T);
		struct ss_band *band = malloc(sizeof(*band) * (C / 8 + 2));
		for (int i = 0; i < C * C; i++) {
			int r = i % C, c = i / C, hw = 2 + (r * 7) % 5;
			double v = 2 * unif(&s) - 1;
			M[i] = k == 1 || abs(r - c) <= hw ? (float) v : 0;
		}
		for (int i = 0; i < C * T; i++)
			X[i] = Y[i] = (float) (8 * unif(&s) - 4);
		int nb = ss_band_blocks(M, C, 8, band);
		struct ss_kbuf dM = {0}, dx = {0}, dy = {0};
		assert_int_equal(
		        ss_kbuf_ensure(&kb, &dM, sizeof(float) * C * C), 0);
		KOP(&kb, upload, dM.p, M, sizeof(float) * C * C);
		assert_int_equal(
		        ss_apply_banded(&kb, dM.p, C, band, nb, Y, T, &dx, &dy),
		        0);
		for (int t = 0; t < T; t++)
			for (int r = 0; r < C; r++) {
				double v = 0;
				for (int c = 0; c < C; c++)
					v += (double) M[r + C * c] *
					     X[c + C * t];
				assert_true(fabs(Y[r + C * t] - v) < 1e-5);
			}
		ss_kbuf_free(&kb, &dM);
		ss_kbuf_free(&kb, &dx);
		ss_kbuf_free(&kb, &dy);
		free(M);
		free(X);
		free(Y);
		free(band);
	}
}

/* Reads longer than one pread chunk (1024 samples), from a file and from
 * memory, for a contiguous block of rows (converted without an index)
 * and a scattered set, equal the raw values; samples past the end are
 * odd reflections. */
static void
test_source_read_chunks(void **state)
{
	enum { R = 7, N = 2500 };
	static int16_t d[N * R];
	static float out[2600 * 4];
	static const int rows[2][4] = {{2, 3, 4, 5}, {6, 0, 3, 1}};
	char path[] = "/tmp/ss_readXXXXXX";
	struct ss_source s;
	struct ss_probe p;
	char msg[256];
	(void) state;
	for (int i = 0; i < N * R; i++)
		d[i] = (int16_t) ((i * 37) % 20011 - 10005);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, d, sizeof(d)), (ssize_t) sizeof(d));
	close(fd);
	for (int src = 0; src < 2; src++)
		for (int k = 0; k < 2; k++) {
			if (src == 0)
				assert_int_equal(
				        ss_source_open_file(&s, path, R, msg,
				                            sizeof(msg)),
				        0);
			else
				ss_source_open_mem(&s, d, N, R);
			ss_probe_linear(&p, 4, 20);
			memcpy(p.row, rows[k], sizeof(rows[k]));
			/* samples 100 .. 2599: 2400 in the file, 100 after */
			assert_int_equal(ss_source_read(&s, &p, 100, 2500, out),
			                 0);
			for (int t = 0; t < 2500; t++)
				for (int c = 0; c < 4; c++) {
					int64_t u = 100 + t,
					        m = 2 * (N - 1) - u;
					float e = u < N ? d[u * R + rows[k][c]]
					                : 2.0f * d[(N - 1) * R +
					                           rows[k][c]] -
					                          d[m * R +
					                            rows[k][c]];
					assert_true(out[t * 4 + c] == e);
				}
			ss_probe_free(&p);
			ss_source_close(&s);
		}
	unlink(path);
}

/* Templates far apart on a long probe and overlapping ones: every spike
 * comes out with its amplitude, each template's window ends at the radius,
 * and the residual is (almost) zero. */
static void
test_match_local_windows(void **state)
{
	int C = 64, nt = 61, T = 1200, K = 3;
	int ctr[3] = {8, 50, 11};
	double wid[3] = {7.0, 5.0, 4.0};
	float px[64], py[64];
	struct ss_config cfg;
	struct ss_templates tp = {0};
	struct ss_matcher *m;
	struct ss_match_out o = {0};
	float *R = calloc((size_t) C * T, sizeof(float));
	(void) state;
	ss_config_defaults(&cfg);
	for (int c = 0; c < C; c++) {
		px[c] = 0;
		py[c] = 20.0f * (float) c;
	}
	tp.K = K;
	tp.C = C;
	tp.nt = nt;
	tp.rank = 3;
	tp.px = px;
	tp.py = py;
	tp.radius = 60;
	tp.W = calloc((size_t) K * C * nt, sizeof(float));
	for (int k = 0; k < K; k++) {
		double nrm = 0;
		for (int a = 0; a < nt; a++)
			for (int c = 0; c < C; c++) {
				double tt = (a - 20) / wid[k];
				double v = -exp(-tt * tt) *
				           exp(-pow(c - ctr[k], 2) / 8.0);
				tp.W[(size_t) k * C * nt + c + C * a] =
				        (float) v;
				nrm += v * v;
			}
		for (int i = 0; i < C * nt; i++)
			tp.W[(size_t) k * C * nt + i] /= (float) sqrt(nrm);
	}
	assert_int_equal(ss_templates_lowrank(&kb, &tp), 0);
	/* 80 µm from the peak channel: outside the 60 µm window */
	for (int k = 0; k < K; k++)
		for (int a = 0; a < nt; a++) {
			assert_true(tp.W[(size_t) k * C * nt + ctr[k] + 4 +
			                 C * a] == 0);
			assert_true(tp.W[(size_t) k * C * nt + ctr[k] - 4 +
			                 C * a] == 0);
		}
	assert_true(tp.W[ctr[0] + C * 20] < 0);
	int64_t st[5] = {200, 200, 214, 600, 640};
	int sk[5] = {0, 1, 2, 1, 0};
	float sa[5] = {20, 25, 15, 12, 9};
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < C * nt; j++)
			R[(size_t) C * st[i] + j] +=
			        sa[i] * tp.W[(size_t) sk[i] * C * nt + j];
	float *R0 = malloc(sizeof(float) * (size_t) C * T);
	assert_non_null(R0);
	memcpy(R0, R, sizeof(float) * (size_t) C * T);
	assert_int_equal(ss_matcher_new(&kb, &tp, T, &m), 0);
	assert_int_equal(
	        ss_match_batch(m, &cfg, R, R, T, 0, T, 0, &o, NULL, NULL), 0);
	assert_int_equal(o.n, 5);
	/* the device path (residual kept in the matcher, batch untouched)
	 * finds the same spikes, bit for bit */
	{
		struct ss_match_out o2 = {0};
		float *R1 = malloc(sizeof(float) * (size_t) C * T);
		assert_non_null(R1);
		memcpy(R1, R0, sizeof(float) * (size_t) C * T);
		assert_int_equal(
		        ss_match_batch_dev(m, &cfg, R0, T, 0, T, 0, &o2), 0);
		assert_int_equal(o2.n, o.n);
		for (int64_t i = 0; i < o.n; i++) {
			assert_true(o2.t[i] == o.t[i] && o2.k[i] == o.k[i]);
			assert_true(o2.a[i] == o.a[i]);
		}
		assert_memory_equal(R0, R1, sizeof(float) * (size_t) C * T);
		ss_match_out_free(&o2);
		free(R1);
	}
	free(R0);
	int found = 0;
	for (int64_t i = 0; i < o.n; i++)
		for (int j = 0; j < 5; j++)
			if (o.t[i] == st[j] + 20 && o.k[i] == sk[j] &&
			    fabs(o.a[i] - sa[j]) < 0.5)
				found |= 1 << j;
	assert_int_equal(found, 31);
	double res = 0;
	for (int i = 0; i < C * T; i++)
		res = fmax(res, fabs(R[i]));
	assert_true(res < 0.5);
	ss_matcher_free(m);
	ss_match_out_free(&o);
	ss_templates_free(&tp);
	free(R);
}

/* Cross-unit duplicates: copies of a big unit's spikes 8 samples later in
 * a small unit sharing its channels go (the small unit's own spikes
 * stay); a unit on other channels, a unit with only chance coincidences
 * and everything with xdup_ms = 0 are left alone; a unit of copies with a
 * few own spikes is dropped whole. */
static void
test_post_echoes(void **state)
{
	struct ss_config cfg;
	struct ss_templates tp = {0};
	struct ss_match_out o = {0};
	struct ss_result r = {0};
	int C = 4, nt = 61, K = 5;
	/* channels of each unit and its trough sample (distinct shapes) */
	int c0[5] = {0, 1, 3, 1, 0}, c1[5] = {2, 3, 4, 2, 1};
	int tr[5] = {20, 30, 40, 50, 10};
	(void) state;
	ss_config_defaults(&cfg);
	tp.K = K;
	tp.C = C;
	tp.nt = nt;
	tp.rank = 3;
	tp.W = calloc((size_t) K * C * nt, sizeof(float));
	for (int k = 0; k < K; k++)
		for (int c = c0[k]; c < c1[k]; c++)
			tp.W[(size_t) k * C * nt + c + C * tr[k]] = -1;
	for (int pass = 0; pass < 2; pass++) {
		o.n = 0;
		for (int i = 0; i < 400; i++) {
			int64_t t = 1000 + 2700 * i;
			ss_match_out_push(&o, t, 0, 50);
			if (i % 2 == 0)
				ss_match_out_push(&o, t + 8, 1, 10);
			ss_match_out_push(&o, t + 1350, 1, 10);
			ss_match_out_push(&o, t + 8, 2, 5);
			ss_match_out_push(
			        &o, t + 700 + (i % 10 == 0 ? -693 : 0), 3, 9);
			if (i < 100)
				ss_match_out_push(&o, t - 12, 4, 8);
			if (i < 5)
				ss_match_out_push(&o, t + 2000, 4, 8);
		}
		cfg.xdup_ms = pass == 0 ? 0.5 : 0;
		assert_int_equal(ss_post(&cfg, &tp, &o, &r), 0);
		assert_int_equal(r.counts[0], 400);
		assert_int_equal(r.counts[1], pass == 0 ? 400 : 600);
		assert_int_equal(r.counts[2], 400);
		assert_int_equal(r.counts[3], 400);
		assert_int_equal(r.counts[4], pass == 0 ? 0 : 105);
		assert_int_equal(r.n_units, pass == 0 ? 4 : 5);
		for (int64_t i = 0; i < r.n_spikes && pass == 0; i++)
			if (r.clust[i] == 1)
				assert_int_equal((r.times[i] - 1000) % 2700,
				                 1350);
		ss_result_free(&r);
	}
	ss_match_out_free(&o);
	ss_templates_free(&tp);
}

/* The refractory test of a merge decides with an empty centre where ~6
 * pairs are expected (a 15 Hz unit split in two over a minute), not with
 * one pair there, and gives the plain ratio when ≥ 8 are expected. */
static void
test_ccg_ratio(void **state)
{
	int64_t a[400], b[400];
	(void) state;
	for (int i = 0; i < 400; i++) {
		a[i] = 10000 * (int64_t) i;
		b[i] = a[i] + 600; /* one baseline pair per spike */
	}
	/* 244 baseline pairs: 244 · 59 / 2400 = 6.0 expected in ±30 */
	assert_true(ss_ccg_ratio(a, 244, b, 244, 30, 300, 1500) == 0);
	/* 150 pairs: 3.7 expected, undecidable even with none */
	assert_true(ss_ccg_ratio(a, 150, b, 150, 30, 300, 1500) == -1);
	/* one pair in the centre where 6 are expected: undecidable */
	b[0] = a[0] + 10;
	assert_true(ss_ccg_ratio(a, 244, b, 244, 30, 300, 1500) == -1);
	/* 399 baseline pairs, 9.8 expected: one in the centre gives the
	 * ratio */
	double q = ss_ccg_ratio(a, 400, b, 400, 30, 300, 1500);
	assert_true(fabs(q - (1.0 / 59) / (399.0 / 2400)) < 1e-9);
}

/* Poisson train at rate hz (per sample 1/30000) with a 2 ms refractory
 * period from t0 over n samples; returns its count. */
static int
poisson_train(uint64_t *s, double hz, int64_t n, int64_t *t, int cap)
{
	int m = 0;
	double x = 100;

	while (m < cap) {
		x += 60 - log(unif(s)) * 30000.0 / hz;
		if (x >= (double) n)
			break;
		t[m++] = (int64_t) x;
	}
	return m;
}

/* A unit split between two templates of similarity 0.95 whose pieces
 * share too few spikes for the old pairwise test (~4.5 pairs expected
 * within ±1 ms, none there) is merged, and the merge is recorded; a
 * distinct unit of the same similarity firing independently is not. */
static void
test_post_merge_splits(void **state)
{
	struct ss_config cfg;
	struct ss_templates tp = {0};
	struct ss_match_out o = {0};
	struct ss_result r = {0};
	int C = 4, nt = 61, K = 3, na, nb;
	/* trough values on channels 0..3 at sample 20 */
	float w[3][4] = {{-1, -0.5f, 0, 0},
	                 {-1, -0.8f, -0.3f, 0},
	                 {-1, -0.3f, 0, -0.25f}};
	int64_t ta[1000], tb[1000];
	uint64_t seed = 7;
	(void) state;
	ss_config_defaults(&cfg);
	cfg.xdup_ms = 0;
	tp.K = K;
	tp.C = C;
	tp.nt = nt;
	tp.rank = 3;
	tp.W = calloc((size_t) K * C * nt, sizeof(float));
	for (int k = 0; k < K; k++)
		for (int c = 0; c < C; c++)
			tp.W[(size_t) k * C * nt + c + C * 20] = w[k][c];
	/* 10 Hz over 60 s each */
	na = poisson_train(&seed, 10, 1800000, ta, 1000);
	nb = poisson_train(&seed, 10, 1800000, tb, 1000);
	for (int i = 0; i < na; i++)
		ss_match_out_push(&o, ta[i], i % 2, 10);
	for (int i = 0; i < nb; i++)
		ss_match_out_push(&o, tb[i], 2, 10);
	assert_int_equal(ss_post(&cfg, &tp, &o, &r), 0);
	/* the shapes are as similar as meant: over merge_corr, under shape
	 * alone */
	assert_true(r.similar[1] >= 0.95 && r.similar[1] < 0.97);
	assert_true(r.similar[2] >= 0.95 && r.similar[2] < 0.97);
	assert_int_equal(r.n_units, 2);
	/* ids without gaps (ss_order_ids): units 0 (templates 0 and 1) and
	 * 1 (template 2, now id 1); the merged-away template 1 is now 2 */
	assert_int_equal(r.counts[0], na);
	assert_int_equal(r.counts[1], nb);
	assert_int_equal(r.counts[2], 0);
	assert_int_equal(r.n_merges, 1);
	assert_int_equal(r.merges[0].a, 0);
	assert_int_equal(r.merges[0].b, 2);
	assert_int_equal(r.merges[0].nc, 0);
	assert_true(r.merges[0].expect > 3 && r.merges[0].expect < 5);
	assert_false(r.merges[0].by_shape);
	/* the old pairwise test could not decide it */
	{
		int64_t p0[600], p1[600];
		int n0 = 0, n1 = 0;
		for (int i = 0; i < na; i++) {
			if (i % 2 == 0 && n0 < 600)
				p0[n0++] = ta[i];
			else if (i % 2 == 1 && n1 < 600)
				p1[n1++] = ta[i];
		}
		assert_true(ss_ccg_ratio(p0, n0, p1, n1, 30, 300, 1500) == -1);
	}
	ss_result_free(&r);
	ss_match_out_free(&o);
	ss_templates_free(&tp);
}

/* Matching on the host refreshes groups of templates in parallel: the
 * spikes and residual do not depend on the number of threads. */
static void
test_match_threads(void **state)
{
	int C = 96, nt = 61, T = 6000, K = 8;
	float px[96], py[96];
	struct ss_config cfg;
	struct ss_templates tp = {0};
	float *R0 = malloc(sizeof(float) * (size_t) C * T);
	float *R[2];
	struct ss_match_out o[2] = {{0}, {0}};
	uint64_t s = 12345;
	(void) state;
	ss_config_defaults(&cfg);
	for (int c = 0; c < C; c++) {
		px[c] = 0;
		py[c] = 20.0f * (float) c;
	}
	tp.K = K;
	tp.C = C;
	tp.nt = nt;
	tp.rank = 3;
	tp.px = px;
	tp.py = py;
	tp.radius = 100;
	tp.W = calloc((size_t) K * C * nt, sizeof(float));
	for (int k = 0; k < K; k++) {
		double nrm = 0, w = 3 + k % 3;
		for (int a = 0; a < nt; a++)
			for (int c = 0; c < C; c++) {
				double tt = (a - 20) / w;
				double v = -exp(-tt * tt) *
				           exp(-pow(c - 6 - 12 * k, 2) / 8.0);
				tp.W[(size_t) k * C * nt + c + C * a] =
				        (float) v;
				nrm += v * v;
			}
		for (int i = 0; i < C * nt; i++)
			tp.W[(size_t) k * C * nt + i] /= (float) sqrt(nrm);
	}
	assert_int_equal(ss_templates_lowrank(&kb, &tp), 0);
	for (int i = 0; i < C * T; i++) { /* uniform noise, var 1 */
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		R0[i] = (float) (((s >> 40) / 16777216.0 - 0.5) * 3.4641);
	}
	for (int j = 0; j < 300; j++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		int k = (int) ((s >> 33) % K);
		int64_t t = (int64_t) ((s >> 8) % (uint64_t) (T - nt));
		for (int i = 0; i < C * nt; i++)
			R0[(size_t) C * t + i] += (float) (10 + j % 7) *
			                          tp.W[(size_t) k * C * nt + i];
	}
	for (int v = 0; v < 2; v++) {
		struct ss_matcher *m;
#ifdef _OPENMP
		omp_set_num_threads(v == 0 ? 1 : 3);
#endif
		R[v] = malloc(sizeof(float) * (size_t) C * T);
		memcpy(R[v], R0, sizeof(float) * (size_t) C * T);
		assert_int_equal(ss_matcher_new(&kb, &tp, T, &m), 0);
		assert_int_equal(ss_match_batch(m, &cfg, R[v], R[v], T, 0, T, 0,
		                                &o[v], NULL, NULL),
		                 0);
		ss_matcher_free(m);
	}
	assert_true(o[0].n > 250);
	assert_int_equal(o[0].n, o[1].n);
	assert_memory_equal(o[0].t, o[1].t, sizeof(int64_t) * (size_t) o[0].n);
	assert_memory_equal(o[0].k, o[1].k, sizeof(int32_t) * (size_t) o[0].n);
	assert_memory_equal(o[0].a, o[1].a, sizeof(float) * (size_t) o[0].n);
	assert_memory_equal(R[0], R[1], sizeof(float) * (size_t) C * T);
	for (int v = 0; v < 2; v++) {
		ss_match_out_free(&o[v]);
		free(R[v]);
	}
	free(R0);
	ss_templates_free(&tp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_butterworth),
	        cmocka_unit_test(test_apply_banded),
	        cmocka_unit_test(test_apply_banded_host),
	        cmocka_unit_test(test_preprocess_reference),
	        cmocka_unit_test(test_preprocess_threads),
	        cmocka_unit_test(test_source_read_chunks),
	        cmocka_unit_test(test_filtfilt_zero_phase),
	        cmocka_unit_test(test_preprocess_car),
	        cmocka_unit_test(test_probe_kilosort),
	        cmocka_unit_test(test_probe_probeinterface),
	        cmocka_unit_test(test_nearest),
	        cmocka_unit_test(test_noise_mask),
	        cmocka_unit_test(test_match_thresholds),
	        cmocka_unit_test(test_match_own_threshold),
	        cmocka_unit_test(test_source_reflect),
	        cmocka_unit_test(test_whiten_full),
	        cmocka_unit_test(test_npy_bytes),
	        cmocka_unit_test(test_match_overlap),
	        cmocka_unit_test(test_post_labels),
	        cmocka_unit_test(test_match_local_windows),
	        cmocka_unit_test(test_post_echoes),
	        cmocka_unit_test(test_ccg_ratio),
	        cmocka_unit_test(test_post_merge_splits),
	        cmocka_unit_test(test_match_threads),
	        cmocka_unit_test(test_ckpt),
	        cmocka_unit_test(test_validate),
	        cmocka_unit_test(test_meta),
	        cmocka_unit_test(test_job_run_inline),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
