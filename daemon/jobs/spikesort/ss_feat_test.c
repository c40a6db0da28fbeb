/* ss_feat_test.c — phy's PC feature files: values, layout, batching. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nq_error.h"
#include "nq_npy.h"
#include "nq_test_rng.h"
#include "ss_feat.h"
#include "ss_wave.h"

enum { C = 8, NT = 61, K = 2, NS = 40 };
#define N_SAMPLES 12000
#define FS        30000.0

static struct kern_backend kb;
static char tmpdir[64];

static int
setup(void **state)
{
	(void) state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ss_feat_test.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return kern_cpu_open(&kb) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void) state;
	kern_close(&kb);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct nq_test_rng rng = NQ_TEST_RNG_INIT(88172645463325252ULL);

static double
unif(void)
{
	return nq_test_rng_unif(&rng);
}

/* A trough at sample 20 of a 61-sample template. */
static double
shape(int a, double width)
{
	double x = (a - 20) / width;
	return -exp(-x * x) + 0.3 * exp(-(x - 2) * (x - 2) / 4);
}

/* Two templates on different channels; a recording with noise, an offset
 * and their spikes (times ascending); phy-order templates; identity
 * whitening. */
static void
make(int16_t *rec, struct ss_result *res, float *templates)
{
	static int64_t times[NS];
	static int32_t templ[NS];
	static float wmat[C * C];
	/* template 1 is the less similar to template 0 than to itself */
	static float similar[K * K] = {1, 0.3f, 0.3f, 1};

	for (int64_t i = 0; i < (int64_t) N_SAMPLES * C; i++)
		rec[i] = (int16_t) lround(40 * (unif() - 0.5) + 100);
	memset(templates, 0, sizeof(float) * K * NT * C);
	for (int k = 0; k < K; k++)
		for (int a = 0; a < NT; a++)
			for (int c = 0; c < C; c++) {
				int peak = k == 0 ? 2 : 5;
				double sp = exp(-(c - peak) * (c - peak) / 2.0);
				templates[((size_t) k * NT + a) * C + c] =
				        (float) (sp * shape(a, k ? 5 : 3));
			}
	for (int s = 0; s < NS; s++) {
		/* uneven spacing, some right at the batch edges of 3000 */
		times[s] = 150 + s * 290 + (s % 3) * 7;
		if (s == 10)
			times[s] = 2999;
		if (s == 11)
			times[s] = 3000;
		templ[s] = s % 2;
		for (int a = 0; a < NT; a++)
			for (int c = 0; c < C; c++) {
				int64_t t = times[s] - 20 + a;
				double v = 300 * (1 + 0.3 * (s % 5)) *
				           templates[((size_t) templ[s] * NT +
				                      a) * C +
				                     c];
				rec[t * C + c] =
				        (int16_t) (rec[t * C + c] + lround(v));
			}
	}
	memset(wmat, 0, sizeof(wmat));
	for (int c = 0; c < C; c++)
		wmat[c * C + c] = 1;
	memset(res, 0, sizeof(*res));
	res->C = C;
	res->nt = NT;
	res->K = K;
	res->n_samples = N_SAMPLES;
	res->n_spikes = NS;
	res->times = times;
	res->templ = templ;
	res->templates = templates;
	res->wmat = wmat;
	res->wmat_inv = wmat;
	res->similar = similar;
}

/* Every PC of templates that share one time course u: PC 1 is ±u/|u|. */
static void
test_temporal_pcs(void **state)
{
	float T[K * NT * C];
	double pcs[3 * NT], u[NT], nu = 0, dot = 0;

	(void) state;
	for (int a = 0; a < NT; a++) {
		u[a] = shape(a, 4);
		nu += u[a] * u[a];
		for (int k = 0; k < K; k++)
			for (int c = 0; c < C; c++)
				T[((size_t) k * NT + a) * C + c] =
				        (float) ((k + 1) * (c % 3) * u[a]);
	}
	assert_int_equal(ss_feat_temporal_pcs(&kb, T, K, NT, C, 20, 3, pcs), 0);
	for (int a = 0; a < NT; a++)
		dot += pcs[a] * u[a];
	/* unit norm, parallel to u, and positive at the trough */
	assert_true(fabs(fabs(dot) - sqrt(nu)) < 1e-5 * sqrt(nu));
	assert_true(pcs[20] > 0);
	/* the others are orthogonal to it */
	for (int q = 1; q < 3; q++) {
		double d = 0;
		for (int a = 0; a < NT; a++)
			d += pcs[q * NT + a] * pcs[a];
		assert_true(fabs(d) < 1e-8);
	}
}

static void
read_feat(float **f, int64_t *ns, int *nc, int32_t **ind)
{
	char path[128];
	struct nq_array a = {0}, b = {0};

	snprintf(path, sizeof(path), "%s/pc_features.npy", tmpdir);
	assert_int_equal(nq_npy_read(path, &a, 0, NULL, 0), 0);
	assert_int_equal(a.dtype, NQ_DT_F32);
	assert_int_equal(a.ndim, 3);
	assert_int_equal(a.shape[1], 3);
	*ns = a.shape[0];
	*nc = (int) a.shape[2];
	*f = a.data;
	snprintf(path, sizeof(path), "%s/pc_feature_ind.npy", tmpdir);
	assert_int_equal(nq_npy_read(path, &b, 0, NULL, 0), 0);
	assert_int_equal(b.dtype, NQ_DT_I32);
	assert_int_equal(b.ndim, 2);
	assert_int_equal(b.shape[0], K);
	assert_int_equal(b.shape[1], *nc);
	*ind = b.data;
}

static void *
read_npy(const char *name, enum nq_dtype dt, int ndim, int64_t d0, int64_t d1,
         int64_t d2)
{
	char path[160];
	struct nq_array a = {0};
	int64_t d[3] = {d0, d1, d2};

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_int_equal(nq_npy_read(path, &a, 0, NULL, 0), 0);
	assert_int_equal(a.dtype, dt);
	assert_int_equal(a.ndim, ndim);
	for (int i = 0; i < ndim; i++)
		assert_int_equal(a.shape[i], d[i]);
	return a.data;
}

/*
 * template_features.npy (n_spikes × K here, K < 32) holds each spike's
 * projection on the unit-norm templates of template_feature_ind.npy (K × K:
 * itself, then the other), computed here from the whole-recording
 * preprocessing X (the spike's window starts at row off + t − 20); the own
 * template's feature is the larger (the two share no peak channel), save
 * where two spikes overlap.
 */
static void
check_template_features(const struct ss_result *res, const float *templates,
                        const float *X, int64_t off)
{
	float *tf = read_npy("template_features.npy", NQ_DT_F32, 2, NS, K, 0);
	int32_t *ti =
	        read_npy("template_feature_ind.npy", NQ_DT_I32, 2, K, K, 0);
	double nrm[K] = {0};

	assert_int_equal(ti[0], 0);
	assert_int_equal(ti[1], 1);
	assert_int_equal(ti[2], 1);
	assert_int_equal(ti[3], 0);
	for (int k = 0; k < K; k++)
		for (int i = 0; i < NT * C; i++)
			nrm[k] += (double) templates[(size_t) k * NT * C + i] *
			          templates[(size_t) k * NT * C + i];
	for (int s = 0; s < NS; s++) {
		int k = res->templ[s];
		for (int j = 0; j < K; j++) {
			int u = ti[k * K + j];
			double acc = 0, got = tf[s * K + j];
			const float *x =
			        X + (size_t) (off + res->times[s] - 20) * C;
			const float *w = templates + (size_t) u * NT * C;
			/* window and template: NT samples of C channels each */
			for (int i = 0; i < NT * C; i++)
				acc += (double) x[i] * w[i];
			acc /= sqrt(nrm[u]);
			assert_true(fabs(got - acc) <= 1e-4 * (1 + fabs(acc)));
		}
		/* spike 10 (template 0) lies 1 sample before spike 11's
		 * bigger template 1: its window holds both */
		assert_true(s == 10 || tf[s * K] > 2 * fabs(tf[s * K + 1]));
		assert_true(tf[s * K] > 0);
	}
	free(tf);
	free(ti);
}

/*
 * _phy_spikes_subset.*: every spike here (20 per template, under
 * SS_WAVE_PER_TEMPLATE), in order, with the raw int16 samples of rec from
 * t − 30 on the SS_WAVE_CHANNELS channels nearest its template's peak (C
 * = 8 of them, then -1 with zeros), as phylib's extract_waveforms cuts them.
 */
static void
check_waveform_subset(const struct ss_result *res, const int16_t *rec)
{
	enum { W = SS_WAVE_CHANNELS };
	int16_t *wf = read_npy("_phy_spikes_subset.waveforms.npy", NQ_DT_I16, 3,
	                       NS, NT, W);
	int64_t *ids = read_npy("_phy_spikes_subset.spikes.npy", NQ_DT_I64, 1,
	                        NS, 0, 0);
	int32_t *ch = read_npy("_phy_spikes_subset.channels.npy", NQ_DT_I32, 2,
	                       NS, W, 0);

	for (int s = 0; s < NS; s++) {
		assert_int_equal(ids[s], s);
		/* the peak channels of make(): 2 and 5 */
		assert_int_equal(ch[s * W], res->templ[s] ? 5 : 2);
		for (int j = 0; j < W; j++) {
			assert_true(j < C ? ch[s * W + j] >= 0
			                  : ch[s * W + j] == -1);
			for (int a = 0; a < NT; a++) {
				int64_t t = res->times[s] - NT / 2 + a;
				int16_t want =
				        j < C ? rec[t * C + ch[s * W + j]] : 0;
				assert_int_equal(
				        wf[((size_t) s * NT + a) * W + j],
				        want);
			}
		}
	}
	free(wf);
	free(ids);
	free(ch);
}

/*
 * The file holds, per spike, the projections of its whitened, filtered
 * snippet (sample t − 20 on) on the channels of pc_feature_ind, computed
 * here independently from one whole-recording preprocessing pass; small
 * batches (spikes at their edges) give the same features.
 */
static void
test_features_values(void **state)
{
	static int16_t rec[(size_t) N_SAMPLES * C];
	static float templates[K * NT * C];
	struct ss_result res;
	struct ss_config cfg;
	struct ss_probe p = {0};
	struct ss_source src;
	struct ss_filter filt;
	double pcs[3 * NT];
	float *f1, *f2, *X;
	int32_t *ind;
	int64_t ns, Tfull;
	int nc;
	double maxd = 0;
	char msg[256];

	(void) state;
	make(rec, &res, templates);
	ss_config_defaults(&cfg);
	cfg.fs = FS;
	cfg.batch = N_SAMPLES; /* one batch */
	assert_int_equal(ss_probe_linear(&p, C, 20), 0);
	ss_source_open_mem(&src, rec, N_SAMPLES, C);
	assert_int_equal(ss_feat_write(tmpdir, &cfg, &kb, &src, &p, &res, NULL,
	                               msg, sizeof(msg)),
	                 0);
	read_feat(&f1, &ns, &nc, &ind);
	assert_int_equal(ns, NS);
	assert_int_equal(nc, C); /* fewer channels than 32: all of them */
	/* the peak channel first, then by distance */
	assert_int_equal(ind[0], 2);
	assert_int_equal(ind[nc], 5);

	/* reference: one preprocessing of the whole recording */
	Tfull = N_SAMPLES + 2 * cfg.pad + 2 * cfg.fpad;
	X = malloc(sizeof(float) * C * (size_t) Tfull);
	assert_non_null(X);
	assert_int_equal(
	        ss_source_read(&src, &p, -cfg.pad - cfg.fpad, Tfull, X), 0);
	assert_int_equal(ss_filter_design(&filt, FS, cfg.hp_hz), 0);
	assert_int_equal(ss_preprocess(&filt, X, C, Tfull, cfg.car), 0);
	assert_int_equal(
	        ss_feat_temporal_pcs(&kb, templates, K, NT, C, 20, 3, pcs), 0);
	for (int s = 0; s < NS; s++) {
		int k = res.templ[s];
		for (int q = 0; q < 3; q++)
			for (int j = 0; j < nc; j++) {
				double acc = 0, got;
				int ch = ind[k * nc + j];
				for (int a = 0; a < NT; a++) {
					int64_t i = cfg.fpad + cfg.pad +
					            res.times[s] - 20 + a;
					acc += pcs[q * NT + a] *
					       X[(size_t) i * C + ch];
				}
				got = f1[((size_t) s * 3 + q) * nc + j];
				assert_true(fabs(got - acc) <=
				            1e-4 * (1 + fabs(acc)));
			}
	}
	check_template_features(&res, templates, X, cfg.fpad + cfg.pad);
	check_waveform_subset(&res, rec);

	/* PC 1 on the peak channel grows with the spike's amplitude (spikes
	 * 0 and 4: template 0 at 1 and 2.2 times) */
	assert_true(f1[0] < 0 && f1[(size_t) 4 * 3 * nc] < 1.8 * f1[0]);

	/* batches of 3000 samples (spikes at their edges): the same features
	 * up to the per-batch channel means (Kilosort's mean removal), which
	 * move the common median reference a little — here by up to 3.6 on
	 * features of ±400 with a noise σ of ≈ 11.5 (uniform noise of 40
	 * units on a unit-norm PC), because these 26σ spikes shift the means */
	cfg.batch = 3000;
	assert_int_equal(ss_feat_write(tmpdir, &cfg, &kb, &src, &p, &res, NULL,
	                               msg, sizeof(msg)),
	                 0);
	free(ind);
	read_feat(&f2, &ns, &nc, &ind);
	assert_int_equal(ns, NS);
	for (size_t o = 0; o < (size_t) NS * 3 * nc; o++)
		maxd = fmax(maxd, fabs(f2[o] - f1[o]));
	assert_true(maxd < 0.5 * 11.5);
	assert_true(maxd < 0.01 * fabs(f1[0]));
	free(X);
	free(f1);
	free(f2);
	free(ind);
	ss_probe_free(&p);
	ss_source_close(&src);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_temporal_pcs),
	        cmocka_unit_test(test_features_values),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
