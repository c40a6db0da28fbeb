/*
 * ss_sort.c — the pipeline, batch by batch:
 *   1 whitening   covariance of every k-th preprocessed batch → local ZCA
 *                 (whiten_noise: of its noise, spikes masked: ss_noise.c)
 *   1b drift      every batch: detection → depth histograms → registered
 *                 shifts; later loads resample each batch (ss_drift.h)
 *   2 detect      threshold crossings on the learning batches → clusters
 *   3 learn       a few matching passes over the learning batches, each
 *                 followed by template re-estimation, drops and merges
 *   4 match       every batch, templates fixed; spikes checkpointed per batch
 *   5 post        duplicates, merges, labels
 * Stages 1, 3 and every batch of 4 are checkpointed under a key made of the
 * parameters and the recording's shape, so a requeued job picks up where it
 * stopped and a changed parameter starts afresh.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nq_clock.h"
#include "nq_error.h"
#include "ss.h"
#include "ss_batch.h"
#include "ss_drift.h"

void
ss_config_defaults(struct ss_config *c)
{
	memset(c, 0, sizeof(*c));
	c->fs = 30000;
	c->batch = 60000;
	c->nt = 61;
	c->nt0min = 20;
	c->pad = 61;
	c->fpad = 192;
	c->hp_hz = 300;
	c->car = 1;
	c->whiten_nrange = 32;
	c->whiten_every = 25;
	/* off: it finds small units beside big ones, but loses 1-3 of 20
	 * units on SpikeInterface's 32-channel recordings (README) */
	c->whiten_noise = 0;
	/* a small template matched from th_detect of its own noise: finds
	 * a small unit beside big ones (README, ss_thresh.c) */
	c->th_own = 1;
	/* a second detection on the residual of the next-to-last learning
	 * pass (ss_resid.c): finds small units on big units' channels */
	c->th_resid = 6;
	/* templates of noise at the threshold lose their spikes */
	c->prune_noise = 1;
	/* 6/8 lost 7-9σ units completely. SpikeInterface GT, 6/8 -> 4/6:
	 * 32 ch 120 s 15 -> 16/20, 300 s 14 -> 16/20, 384 ch 60 s 47 -> 56/60,
	 * median precision 1.0 throughout; costs 1.1-1.8x time and extra
	 * redundant units (384 ch: 2 -> 20) for the user to merge. */
	c->th_detect = 4;
	c->th_match = 6;
	c->lam = 10;
	c->nc_feat = 10;
	c->npc = 3;
	c->rank = 3;
	/* a template's matching window: channels within 150 µm of its peak
	 * channel (spikes fade within ~100 µm; averaged noise on far
	 * channels made learned windows span the whole probe) */
	c->tmpl_radius_um = 150;
	c->max_templates = 1024;
	c->learn_batches = 20;
	c->learn_iters = 3;
	c->max_peels = 50;
	c->merge_corr = 0.9;
	c->merge_corr_shape = 0.97;
	c->dup_ms = 0.25;
	c->xdup_ms = 0.5;
	c->refrac_ms = 1.0;
	c->good_ratio = 0.2;
	/* SpikeInterface's defaults for the metrics but the presence bins
	 * (60 s bins say nothing of a short recording); the label
	 * thresholds were chosen on ground truth (README, bench/README.md) */
	c->isi_ms = 1.5;
	c->presence_bin_s = 0; /* duration / 20 within [10, 60] s */
	c->good_isi = 0.5;
	c->good_presence = 0.9;
	c->good_amp_cutoff = 0.1;
	c->good_snr = 2;
	c->min_spikes = 20;
	c->split_dprime = 4.0;
	c->seed = 1;
	c->cache_bytes = (uint64_t) 768 << 20;
	c->drift = 1;
	c->drift_bin_um = 5;
	c->drift_max_um = 50;
	c->drift_sigma_um = 20;
	c->drift_smooth = 1;
	c->drift_blocks = 1;
	c->drift_segs = 4;
}

struct run {
	const struct ss_config *cfg;
	const struct kern_backend *kb;
	struct ss_source *src;
	const struct ss_probe *p;
	const struct ss_hooks *h;
	int C;
	int64_t N, NT, nb, Tb; /* bt's, for short */
	struct ss_batcher bt;
	float *shift;      /* drift per batch (µm); NULL: no correction */
	const float *tpw;  /* templates being merged (same_unit) */
	const float *tpcn; /* and their channel norms */
	float **cache;     /* whitened learning batches kept in memory */
	int64_t *cache_core;
	int ncache;
	uint64_t key;
	char *msg;
	size_t msglen;
};

static void
logf_(struct run *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (r->h == NULL || r->h->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->h->log(r->h->u, line);
}

static void
progress(struct run *r, double f, const char *stage)
{
	if (r->h && r->h->progress)
		r->h->progress(r->h->u, f, stage);
}

static int
canceled(struct run *r)
{
	if (r->h && r->h->canceled && r->h->canceled(r->h->u)) {
		snprintf(r->msg, r->msglen, "canceled");
		return 1;
	}
	return 0;
}

/* Preprocessed (and, once M exists, whitened and drift-resampled) batch b;
 * returns a pointer to its Tb = NT + 2 pad samples, core at
 * [pad, pad + core). */
static int
load_batch(struct run *r, int64_t b, float **Y, int64_t *core)
{
	return ss_batcher_load(&r->bt, b, Y, core, r->msg, r->msglen);
}

/* Learning batch i (of nl) into the work buffer, from the cache when it
 * is there; batches are cached while they fit in cache_bytes. */
static int
learn_load(struct run *r, int i, int nl, float **Y, int64_t *core)
{
	size_t bytes = sizeof(float) * (size_t) r->C * (size_t) r->Tb;
	int64_t b = (int64_t) ((double) i * (double) r->nb / (double) nl);
	int rc;

	if (i < r->ncache && r->cache[i] != NULL) {
		*Y = ss_batcher_work(&r->bt);
		memcpy(*Y, r->cache[i], bytes);
		*core = r->cache_core[i];
		return 0;
	}
	if ((rc = load_batch(r, b, Y, core)) != 0)
		return rc;
	if (i < r->ncache &&
	    (uint64_t) (i + 1) * bytes <= r->cfg->cache_bytes) {
		r->cache[i] = malloc(bytes);
		if (r->cache[i] != NULL) {
			memcpy(r->cache[i], *Y, bytes);
			r->cache_core[i] = *core;
		}
	}
	return 0;
}

/* Learning batch i for reading only: the cached copy itself when there is
 * one (no copy), else learn_load's buffer. *work: the batch buffer, for
 * what is made from it (the residual). */
static int
learn_view(struct run *r, int i, int nl, const float **Y, float **work,
           int64_t *core)
{
	*work = ss_batcher_work(&r->bt);
	if (i < r->ncache && r->cache[i] != NULL) {
		*Y = r->cache[i];
		*core = r->cache_core[i];
		return 0;
	}
	float *w;
	int rc = learn_load(r, i, nl, &w, core);
	*Y = w;
	return rc;
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		/* callers hash set arrays */
		// NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t
config_key(const struct ss_config *c, const struct ss_probe *p, int64_t N,
           int n_rows)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	double d[] = {c->fs,
	              (double) c->batch,
	              c->nt,
	              c->nt0min,
	              c->pad,
	              c->fpad,
	              c->hp_hz,
	              c->car,
	              c->whiten_nrange,
	              c->whiten_every,
	              c->whiten_noise,
	              c->th_own,
	              c->th_resid,
	              c->prune_noise,
	              c->th_detect,
	              c->th_match,
	              c->lam,
	              c->nc_feat,
	              c->npc,
	              c->rank,
	              c->max_templates,
	              c->learn_batches,
	              c->learn_iters,
	              c->max_peels,
	              c->merge_corr,
	              c->merge_corr_shape,
	              c->min_spikes,
	              c->split_dprime,
	              (double) c->seed,
	              c->drift,
	              c->drift_bin_um,
	              c->drift_max_um,
	              c->drift_sigma_um,
	              c->drift_smooth,
	              c->drift_blocks,
	              c->drift_segs,
	              c->tmpl_radius_um,
	              (double) N,
	              n_rows,
	              p->n,
	              9 /* format version (9: min_spikes ramped over the
	                 * learning passes; 8: residual detection; 7: drift
	                 * resampled before the whitening, in pieces) */};
	h = fnv(h, d, sizeof(d));
	h = fnv(h, p->row, sizeof(int) * (size_t) p->n);
	h = fnv(h, p->x, sizeof(float) * (size_t) p->n);
	h = fnv(h, p->y, sizeof(float) * (size_t) p->n);
	return h;
}

/* Spikes' windows out of the whitening covariance (ss_noise_mask): samples
 * beyond NOISE_K robust σ on a channel or its nc_feat nearest, one template
 * either side. Gaussian noise crosses 5 σ about once per 2·10⁶ samples. */
#define NOISE_K 5.0
/* ... and the mask is used only when it leaves every channel at least this
 * share of the samples (else the plain covariance, logged) */
#define NOISE_MIN_KEPT 0.1

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return (x > y) - (x < y);
}

/* cov (C × C) += X Xᵀ of the C × T host batch X, through kern syrk. */
static int
cov_add(struct run *r, const float *X, int64_t T, struct ss_kbuf *dC, float *cf,
        double *cov)
{
	int C = r->C, rc;

	if ((rc = ss_kbuf_ensure(r->kb, &r->bt.dx, sizeof(float) * C * T)) ||
	    (rc = KOP(r->kb, upload, r->bt.dx.p, X, sizeof(float) * C * T)) ||
	    (rc = KOP(r->kb, syrk, KERN_F32, KERN_N, C, T, 1.0, r->bt.dx.p, C,
	              0.0, dC->p, C)) ||
	    (rc = KOP(r->kb, download, cf, dC->p, sizeof(float) * C * C)))
		return rc;
	for (size_t i = 0; i < (size_t) C * C; i++)
		cov[i] += cf[i];
	return 0;
}

/* cov = the covariance from the sums of whiten_cov: every sample's (cov,
 * over used samples) or, with noise, the masked one (ncov, kept per
 * channel) when it leaves every channel enough samples. */
static int
cov_finish(struct run *r, double *cov, const double *ncov, const int64_t *kept,
           int64_t used, int noise)
{
	int C = r->C;
	int64_t kmin = used;
	double sc = 1;

	for (int i = 0; noise && i < C; i++)
		kmin = kept[i] < kmin ? kept[i] : kmin;
	if (noise && (double) kmin < NOISE_MIN_KEPT * (double) used) {
		logf_(r, "stage=whiten noise_only=0 min_kept=%.3f",
		      (double) kmin / (double) used);
		noise = 0;
	}
	/* the noise's correlations, at the overall scale of every sample's
	 * covariance (the median channel's variance ratio), so the whitened
	 * units, and th_detect and th_match with them, keep their meaning:
	 * only the directions the big units span stop being flattened */
	if (noise) {
		double *ratio = malloc(sizeof(double) * (size_t) C);
		if (ratio == NULL)
			return NQ_ENOMEM;
		for (int i = 0; i < C; i++) {
			size_t ii = (size_t) i * (C + 1);
			double vn = ncov[ii] / (double) kept[i];
			ratio[i] = vn > 0 ? cov[ii] / (double) used / vn : 1;
		}
		qsort(ratio, (size_t) C, sizeof(double), cmp_double);
		sc = ratio[C / 2];
		free(ratio);
		logf_(r, "stage=whiten noise_only=1 min_kept=%.3f scale=%.3f",
		      (double) kmin / (double) used, sc);
	}
	for (int i = 0; i < C; i++)
		for (int j = 0; j < C; j++) {
			size_t ij = (size_t) i + (size_t) C * j;
			/* D^-1/2 S D^-1/2 of the masked sum: positive
			 * semi-definite, as the plain one */
			cov[ij] = noise ? sc * ncov[ij] /
			                          sqrt((double) kept[i] *
			                               (double) kept[j])
			                : cov[ij] / (double) used;
		}
	return 0;
}

/* The whitening's covariance from every k-th batch: every sample's and,
 * with whiten_noise, the noise's (spikes masked), for cov_finish. */
static int
whiten_cov(struct run *r, double *cov, double *ncov, float *cf, int64_t *kept)
{
	const struct ss_config *c = r->cfg;
	int C = r->C, rc = 0, noise = c->whiten_noise;
	int64_t step = c->whiten_every, used = 0;
	struct ss_kbuf dC = {0};

	/* every k-th batch (Kilosort: 25th), but at least a few */
	if (step > r->nb / 4)
		step = r->nb / 4 > 0 ? r->nb / 4 : 1;
	if ((rc = ss_kbuf_ensure(r->kb, &dC, sizeof(float) * C * C)) != 0)
		goto out;
	for (int64_t b = 0; b < r->nb; b += step) {
		float *Y;
		int64_t core;
		if (canceled(r)) {
			rc = NQ_ECANCELED;
			goto out;
		}
		if ((rc = load_batch(r, b, &Y, &core)) != 0)
			goto out;
		float *Yc = Y + (size_t) C * c->pad;
		if ((rc = cov_add(r, Yc, core, &dC, cf, cov)) != 0)
			goto out;
		if (noise &&
		    ((rc = ss_noise_mask(r->p, Yc, core, NOISE_K, c->nc_feat,
		                         c->nt0min, c->nt - c->nt0min, kept)) !=
		             0 ||
		     (rc = cov_add(r, Yc, core, &dC, cf, ncov)) != 0))
			goto out;
		used += core;
		progress(r, 0.03 * (double) (b + 1) / (double) r->nb, "whiten");
	}
	rc = cov_finish(r, cov, ncov, kept, used, noise);
out:
	ss_kbuf_free(r->kb, &dC);
	return rc;
}

static int
stage_whiten(struct run *r, float *M)
{
	int C = r->C, rc;
	double *cov = calloc((size_t) C * C, sizeof(double));
	double *ncov = calloc((size_t) C * C, sizeof(double));
	float *cf = malloc(sizeof(float) * (size_t) C * C);
	int64_t *kept = calloc((size_t) C, sizeof(int64_t));

	rc = NQ_ENOMEM;
	if (!cov || !ncov || !cf || !kept)
		goto out;
	if (ss_ckpt_load(r->cfg->ckpt_dir, "whiten.bin", r->key, M,
	                 sizeof(float) * (size_t) C * C) == 0) {
		logf_(r, "stage=whiten resumed=1");
		rc = 0;
		goto out;
	}
	if ((rc = whiten_cov(r, cov, ncov, cf, kept)) != 0)
		goto out;
	rc = ss_whiten_from_cov(r->kb, cov, r->p, r->cfg->whiten_nrange, M);
	if (rc != 0) {
		snprintf(r->msg, r->msglen,
		         "whitening: eigendecomposition "
		         "failed");
		goto out;
	}
	rc = ss_ckpt_save(r->cfg->ckpt_dir, "whiten.bin", r->key, M,
	                  sizeof(float) * (size_t) C * C);
	if (rc != 0)
		snprintf(r->msg, r->msglen, "cannot write checkpoint");
out:
	free(cov);
	free(ncov);
	free(cf);
	free(kept);
	return rc;
}

/* shifts below this many σ of the estimate's noise are noise (a Gaussian's
 * maximum over a few hundred batches is ~3.4 σ) */
#define DRIFT_NOISE_K 4.0

/*
 * Rigid drift: one pass over every batch (whitened, not yet corrected),
 * detection, depth × amplitude histograms, registration. Sets r->shift
 * (checkpointed) or leaves it NULL when correction is off or the recording
 * is too short to register (under 3 batches).
 */
/* The drift pass: every batch's detected spikes into d's histograms. */
static int
drift_hists(struct run *r, struct ss_drift_hist *d, int64_t *chan_count,
            struct ss_spikes *sp)
{
	const struct ss_config *c = r->cfg;
	int rc;

	for (int64_t b = 0; b < r->nb; b++) {
		const float *Y;
		int64_t core;
		if (canceled(r))
			return NQ_ECANCELED;
		if ((rc = ss_batcher_load_dev(&r->bt, b, &Y, &core, r->msg,
		                              r->msglen)) != 0)
			return rc;
		memset(chan_count, 0, sizeof(int64_t) * (size_t) r->C);
		sp->n = 0;
		/* ≤ 200 spikes per channel and batch: enough for a
		 * histogram, bounded memory */
		if ((rc = ss_detect_batch(c, r->kb, r->p, Y, r->Tb, c->pad,
		                          c->pad + core, b * r->NT - c->pad,
		                          200, chan_count, sp)) != 0)
			return rc;
		ss_drift_hist_add(d, (int) b, r->p, sp, c->nt0min);
		progress(r, 0.03 + 0.02 * (double) (b + 1) / (double) r->nb,
		         "drift");
	}
	return 0;
}

/* The shifts (nb × nblk into shift, block centres into blk_y) from the
 * histograms: rigid and its noise, then per block where there is drift.
 * rigid, hdiff: nb scratch. */
static int
drift_shifts(struct run *r, const struct ss_drift_hist *dh, int nblk,
             float *rigid, float *hdiff, float *shift, float *blk_y)
{
	const struct ss_config *c = r->cfg;
	size_t nsh = (size_t) r->nb * nblk;
	double noise = 0, thr;
	int64_t kept = 0;
	float hi = 0;
	int rc;

	if ((rc = ss_drift_estimate(dh, c->drift_max_um, c->drift_smooth,
	                            rigid)) != 0 ||
	    (rc = ss_drift_noise(dh, c->drift_max_um, c->drift_smooth, hdiff,
	                         &noise)) != 0)
		return rc;
	/* a batch is left as it is (so a recording without drift sorts
	 * exactly as with drift off) when its shift is within the estimate's
	 * noise: under DRIFT_NOISE_K σ (and 1 µm, a twentieth of a channel
	 * pitch), or under the difference between the two halves' estimates
	 * of that batch (at low SNR the registration locks onto noise and
	 * the halves wander apart, batch by batch) */
	thr = fmax(1.0, DRIFT_NOISE_K * noise);
	for (int64_t b = 0; b < r->nb; b++) {
		hi = fmaxf(hi, fabsf(rigid[b]));
		if (fabsf(rigid[b]) < thr || fabsf(rigid[b]) < hdiff[b])
			rigid[b] = 0;
		else
			kept++;
	}
	logf_(r,
	      "stage=drift noise_um=%.2f threshold_um=%.2f "
	      "estimate_max_um=%.2f "
	      "corrected_batches=%lld blocks=%d",
	      noise, thr, hi, (long long) kept, nblk);
	for (int j = 0; j < nblk; j++)
		blk_y[j] = (float) (dh->y0 + dh->bin_um * dh->ndepth *
		                                     (j + 0.5) / (double) nblk);
	if (kept > 0 && nblk > 1) {
		/* non-rigid only where the rigid estimate saw drift at all:
		 * a drift-free recording stays untouched */
		if ((rc = ss_drift_estimate_blocks(dh, c->drift_max_um,
		                                   c->drift_smooth, nblk, shift,
		                                   blk_y)) != 0)
			return rc;
		for (size_t i = 0; i < nsh; i++)
			if (fabsf(shift[i]) < thr)
				shift[i] = 0;
	} else if (kept > 0) {
		/* the smoothed estimate decides which batches move; they move
		 * by the unsmoothed one (hdiff is free now): smoothing over a
		 * batch flattened np2drift128's zigzag peaks by 5 µm, enough
		 * to split units there (bench/README.md), while it keeps a
		 * drift-free recording's one-batch outliers under the noise */
		if ((rc = ss_drift_estimate(dh, c->drift_max_um, 0, hdiff)) !=
		    0)
			return rc;
		for (int64_t b = 0; b < r->nb; b++)
			shift[b] = rigid[b] != 0 ? hdiff[b] : 0;
	}
	return 0;
}

static int
stage_drift(struct run *r, struct ss_result *res)
{
	const struct ss_config *c = r->cfg;
	struct ss_drift_hist d = {0};
	struct ss_spikes sp = {0};
	int64_t *chan_count = NULL;
	int nblk = c->drift_blocks > 1 ? c->drift_blocks : 1;
	size_t nsh = (size_t) r->nb * nblk;
	/* the shifts (nb × nblk), then the blocks' centre depths */
	size_t bytes = sizeof(float) * (nsh + (size_t) nblk);
	float *shift = NULL, *blk_y, *rigid = NULL, lo = 0, hi = 0;
	float *hdiff = NULL;
	int rc;

	if (!c->drift || r->nb < 3)
		return 0;
	rc = NQ_ENOMEM;
	shift = calloc(1, bytes);
	rigid = malloc(sizeof(float) * (size_t) r->nb);
	hdiff = malloc(sizeof(float) * (size_t) r->nb);
	chan_count = calloc((size_t) r->C, sizeof(int64_t));
	if (!shift || !rigid || !hdiff || !chan_count)
		goto out;
	blk_y = shift + nsh;
	if (ss_ckpt_load(c->ckpt_dir, "drift.bin", r->key, shift, bytes) == 0) {
		logf_(r, "stage=drift resumed=1");
		goto done;
	}
	if ((rc = ss_drift_hist_init(&d, r->p, (int) r->nb, c->drift_bin_um)) ||
	    (rc = drift_hists(r, &d, chan_count, &sp)))
		goto out;
	if ((rc = drift_shifts(r, &d, nblk, rigid, hdiff, shift, blk_y)) != 0)
		goto out;
	if ((rc = ss_ckpt_save(c->ckpt_dir, "drift.bin", r->key, shift,
	                       bytes)) != 0) {
		snprintf(r->msg, r->msglen, "cannot write checkpoint");
		goto out;
	}
done:
	for (size_t i = 0; i < nsh; i++) {
		lo = fminf(lo, shift[i]);
		hi = fmaxf(hi, shift[i]);
	}
	logf_(r, "stage=drift batches=%lld min_um=%.1f max_um=%.1f",
	      (long long) r->nb, lo, hi);
	res->drift_um = malloc(sizeof(float) * (nsh + 1));
	res->drift_block_um = malloc(sizeof(float) * ((size_t) nblk + 1));
	if (res->drift_um == NULL || res->drift_block_um == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	memcpy(res->drift_um, shift, sizeof(float) * nsh);
	memcpy(res->drift_block_um, blk_y, sizeof(float) * (size_t) nblk);
	res->n_drift = r->nb;
	res->n_drift_blocks = nblk;
	res->drift_batch = r->NT;
	if ((rc = ss_batcher_drift(&r->bt, shift, nblk, blk_y)) != 0) {
		if (rc == NQ_EBADDATA)
			snprintf(
			        r->msg, r->msglen,
			        "drift: the probe's kriging matrix is singular "
			        "(duplicate channel positions?)");
		goto out;
	}
	r->shift = shift;
	shift = NULL;
out:
	ss_drift_hist_free(&d);
	ss_spikes_free(&sp);
	free(chan_count);
	free(shift);
	free(rigid);
	free(hdiff);
	return rc;
}

static int64_t
learn_batch(struct run *r, int i, int nl)
{
	return (int64_t) ((double) i * (double) r->nb / (double) nl);
}

static int
by_k_t(const void *x, const void *y, void *arg)
{
	int64_t i = *(const int64_t *) x, j = *(const int64_t *) y;
	const struct ss_match_out *o = arg;
	if (o->k[i] != o->k[j])
		return o->k[i] < o->k[j] ? -1 : 1;
	if (o->t[i] != o->t[j])
		return o->t[i] < o->t[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* Is the pair (a, b) one unit? Near-identical shapes and, when the spikes
 * say anything, a refractory dip in their cross-correlogram. */
static int
same_unit(struct run *r, const struct ss_match_out *mo, const int64_t *st,
          const int64_t *tk, int a, int b)
{
	const struct ss_config *c = r->cfg;
	double q;

	if (mo == NULL)
		return 1;
	if (ss_template_corr_sparse(r->tpw + (size_t) a * r->C * c->nt,
	                            r->tpw + (size_t) b * r->C * c->nt,
	                            r->tpcn + (size_t) a * r->C,
	                            r->tpcn + (size_t) b * r->C, r->C, c->nt,
	                            c->nt0min / 2,
	                            c->merge_corr_shape) >= c->merge_corr_shape)
		return 1;
	q = ss_ccg_ratio(tk + st[a], st[a + 1] - st[a], tk + st[b],
	                 st[b + 1] - st[b],
	                 (int64_t) llround(c->refrac_ms * 1e-3 * c->fs),
	                 (int64_t) llround(0.010 * c->fs),
	                 (int64_t) llround(0.050 * c->fs));
	return q >= 0 && q < c->good_ratio;
}

/* Re-estimate templates from accumulated clean waveforms; drop rare ones
 * and the smaller of near-duplicate pairs (mo: the pass's spikes, for the
 * cross-correlogram test; NULL merges on shape alone). */
static int
update_templates(struct run *r, struct ss_templates *tp, const double *acc,
                 const int64_t *cnt, int min_cnt, const struct ss_match_out *mo,
                 double thr)
{
	int64_t *st = NULL, *tk = NULL, *ord = NULL;
	if (mo != NULL) {
		st = calloc((size_t) tp->K + 1, sizeof(int64_t));
		tk = malloc(sizeof(int64_t) * (size_t) (mo->n + 1));
		ord = malloc(sizeof(int64_t) * (size_t) (mo->n + 1));
		if (!st || !tk || !ord) {
			free(st);
			free(tk);
			free(ord);
			return NQ_ENOMEM;
		}
		for (int64_t i = 0; i < mo->n; i++)
			ord[i] = i;
		qsort_r(ord, (size_t) mo->n, sizeof(int64_t), by_k_t,
		        (void *) mo);
		for (int64_t i = 0; i < mo->n; i++) {
			tk[i] = mo->t[ord[i]];
			st[mo->k[ord[i]] + 1]++;
		}
		for (int k = 0; k < tp->K; k++)
			st[k + 1] += st[k];
		free(ord);
	}

	int C = r->C, nt = r->cfg->nt, K = tp->K, k2 = 0;
	size_t L = (size_t) C * nt;
	int *alive = malloc(sizeof(int) * (size_t) (K ? K : 1));
	float *mu = calloc((size_t) K + 1, sizeof(float));

	if (alive == NULL || mu == NULL) {
		free(alive);
		free(mu);
		free(st);
		free(tk);
		return NQ_ENOMEM;
	}
	/* the prior's typical amplitude: the mean over this pass's spikes */
	if (mo != NULL) {
		for (int64_t i = 0; i < mo->n; i++)
			mu[mo->k[i]] += mo->a[i];
		for (int k = 0; k < K; k++)
			mu[k] = cnt[k] > 0 ? mu[k] / (float) cnt[k] : 0;
	}
	for (int k = 0; k < K; k++) {
		alive[k] = cnt[k] >= min_cnt && cnt[k] > 0;
		if (!alive[k])
			continue;
		double nrm = 0;
		for (size_t i = 0; i < L; i++)
			/* acc is calloc'd */
			// NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
			nrm += acc[k * L + i] * acc[k * L + i];
		nrm = sqrt(nrm);
		for (size_t i = 0; i < L; i++)
			tp->W[k * L + i] =
			        nrm > 0 ? (float) (acc[k * L + i] / nrm) : 0;
		/* Spikes are aligned on their trough at nt0min; a mean whose
		 * trough drifted away is noise or the tail of a neighbour's
		 * spike (low thresholds learn a few), not a unit. */
		int tmin = 0;
		float vmin = 0;
		const float *w = tp->W + k * L;
		for (int t = 0; t < nt; t++)
			for (int ch = 0; ch < C; ch++)
				if (w[(size_t) t * C + ch] < vmin) {
					vmin = w[(size_t) t * C + ch];
					tmin = t;
				}
		if (abs(tmin - r->cfg->nt0min) > 2)
			alive[k] = 0;
	}
	float *cn = malloc(sizeof(float) * ((size_t) K * C + 1));
	if (cn == NULL) {
		free(alive);
		free(mu);
		free(st);
		free(tk);
		return NQ_ENOMEM;
	}
	ss_template_chan_norms(tp->W, K, C, nt, cn);
	r->tpw = tp->W;
	r->tpcn = cn;
	for (int a = 0; a < K; a++) {
		if (!alive[a])
			continue;
		for (int b = a + 1; b < K; b++) {
			if (!alive[b])
				continue;
			double s = ss_template_corr_sparse(
			        tp->W + a * L, tp->W + b * L,
			        cn + (size_t) a * C, cn + (size_t) b * C, C, nt,
			        r->cfg->nt0min / 2, thr);
			if (s >= thr && same_unit(r, mo, st, tk, a, b)) {
				if (cnt[b] > cnt[a]) {
					alive[a] = 0;
					break;
				}
				alive[b] = 0;
			}
		}
	}
	for (int k = 0; k < K; k++)
		if (alive[k]) {
			if (k2 != k)
				memmove(tp->W + k2 * L, tp->W + k * L,
				        sizeof(float) * L);
			mu[k2] = mu[k];
			k2++;
		}
	tp->K = k2;
	free(tp->mu);
	tp->mu = mu;
	free(cn);
	free(alive);
	free(st);
	free(tk);
	return ss_templates_lowrank(r->kb, tp);
}

/* The residual filter's taps: 31, the trough 10 in (ss_resid.c) */
#define RESID_NH 31
#define RESID_H0 10

/* Each template's peak channel (largest |W| over its time course);
 * malloc'd. */
static int *
peak_chans(const struct ss_templates *tp)
{
	int *pk = malloc(sizeof(int) * (size_t) (tp->K + 1));
	size_t L = (size_t) tp->C * tp->nt;

	if (pk == NULL)
		return NULL;
	for (int k = 0; k < tp->K; k++) {
		const float *w = tp->W + L * k;
		float best = -1;
		pk[k] = 0;
		for (int c = 0; c < tp->C; c++) {
			const float *wc = w + c;
			float a = 0;
			for (int t = 0; t < tp->nt; t++)
				if (fabsf(wc[(size_t) t * tp->C]) > a)
					a = fabsf(wc[(size_t) t * tp->C]);
			if (a > best) {
				best = a;
				pk[k] = c;
			}
		}
	}
	return pk;
}

/* One batch's matched spikes, batch-relative and in time order, with
 * their templates' peak channels. */
struct resid_near {
	int64_t n, cap;
	int64_t *t, *ord;
	int *c;
};

static int
by_t(const void *x, const void *y, void *arg)
{
	const int64_t *t = arg;
	int64_t i = *(const int64_t *) x, j = *(const int64_t *) y;
	if (t[i] != t[j])
		return t[i] < t[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

static int
resid_near_set(struct resid_near *rn, const struct ss_match_out *mo, int64_t n0,
               const int *pk, int64_t t0)
{
	int64_t n = mo->n - n0;

	if (n > rn->cap) {
		int64_t *t = realloc(rn->t, sizeof(int64_t) * (size_t) n);
		if (t != NULL)
			rn->t = t;
		int64_t *o = realloc(rn->ord, sizeof(int64_t) * (size_t) n);
		if (o != NULL)
			rn->ord = o;
		int *c = realloc(rn->c, sizeof(int) * (size_t) n);
		if (c != NULL)
			rn->c = c;
		if (t == NULL || o == NULL || c == NULL)
			return NQ_ENOMEM;
		rn->cap = n;
	}
	for (int64_t i = 0; i < n; i++)
		rn->ord[i] = n0 + i;
	qsort_r(rn->ord, (size_t) n, sizeof(int64_t), by_t, (void *) mo->t);
	for (int64_t i = 0; i < n; i++) {
		rn->t[i] = mo->t[rn->ord[i]] - t0;
		rn->c[i] = pk[mo->k[rn->ord[i]]];
	}
	rn->n = n;
	return 0;
}

/* The residual's spikes clustered into more templates, appended to tp
 * (typical amplitude unknown: 0) for the next learning pass to refine or
 * drop. */
static int
resid_add(struct run *r, struct ss_templates *tp, const struct ss_spikes *rsp)
{
	const struct ss_config *c = r->cfg;
	size_t L = (size_t) r->C * c->nt;
	float *W1 = NULL;
	int K1 = 0, K = tp->K, rc;

	int K2 = 0;
	float *cn = NULL;

	if ((rc = ss_cluster(c, r->kb, r->p, rsp, &W1, &K1)) != 0)
		return rc;
	/* a leftover of a learned unit (its shape, at merge_corr) is not
	 * another unit: the next pass would drop it at some cost */
	cn = malloc(sizeof(float) * (size_t) (K + K1 + 1) * r->C);
	if (cn == NULL) {
		free(W1);
		return NQ_ENOMEM;
	}
	ss_template_chan_norms(tp->W, K, r->C, c->nt, cn);
	ss_template_chan_norms(W1, K1, r->C, c->nt, cn + (size_t) K * r->C);
	for (int j = 0; j < K1 && K + K2 < c->max_templates; j++) {
		const float *cj = cn + (size_t) (K + j) * r->C;
		int dup = 0;
		for (int k = 0; k < K && !dup; k++)
			dup = ss_template_corr_sparse(
			              W1 + L * j, tp->W + L * k, cj,
			              cn + (size_t) k * r->C, r->C, c->nt,
			              c->nt0min / 2,
			              c->merge_corr) >= c->merge_corr;
		if (dup)
			continue;
		if (K2 != j)
			memmove(W1 + L * K2, W1 + L * j, sizeof(float) * L);
		K2++;
	}
	free(cn);
	logf_(r,
	      "stage=learn residual_spikes=%lld residual_clusters=%d "
	      "residual_new=%d",
	      (long long) rsp->n, K1, K2);
	K1 = K2;
	if (K1 == 0) {
		free(W1);
		return 0;
	}
	float *W = realloc(tp->W, sizeof(float) * L * (size_t) (K + K1));
	if (W != NULL)
		tp->W = W;
	float *mu = realloc(tp->mu, sizeof(float) * (size_t) (K + K1));
	if (mu != NULL)
		tp->mu = mu;
	if (W == NULL || mu == NULL) {
		free(W1);
		return NQ_ENOMEM;
	}
	memcpy(tp->W + L * (size_t) K, W1, sizeof(float) * L * (size_t) K1);
	for (int k = K; k < K + K1; k++)
		tp->mu[k] = 0;
	tp->K = K + K1;
	free(W1);
	return ss_templates_lowrank(r->kb, tp);
}

/* Spikes a template needs to stay after learning pass it: min_spikes after
 * the last, a share of it growing with the passes before (passes 1 and 2 of
 * 3: 6, 13), where 1 let the first pass keep every cluster of a few spikes:
 * np2static128 147 -> 122 -> 105 templates through three passes where 51
 * remain, 147 -> 72 -> 57 with the ramp: 18 % less CPU time (np2drift128
 * 7 %), the same units >= 0.8 on the 8 recordings of bench/README.md and
 * 8 -> 6 false-positive units labelled good. A template that gains its
 * spikes late (the residual pass's, added after the next-to-last pass)
 * meets only min_spikes, once. */
static int
learn_min_spikes(const struct ss_config *c, int it)
{
	if (it >= c->learn_iters - 1)
		return c->min_spikes;
	int m = (int) ((int64_t) c->min_spikes * (it + 1) / c->learn_iters);
	return m > 1 ? m : 1;
}

static int
stage_learn(struct run *r, struct ss_templates *tp, double *t_detect)
{
	const struct ss_config *c = r->cfg;
	int C = r->C, nt = c->nt, rc, K0 = 0, nl;
	struct ss_spikes sp = {0}, rsp = {0};
	int64_t *chan_count = calloc((size_t) C, sizeof(int64_t));
	/* the pass whose residual is searched again (-1: none); not with
	 * the noise's whitening, which does not flatten small units under
	 * big ones but leaves their leftovers bigger (smallbig32: 14
	 * false-positive units more) */
	int rit = c->th_resid > 0 && !c->whiten_noise && c->learn_iters >= 2
	                  ? c->learn_iters - 2
	                  : -1;
	float h[RESID_NH];
	int *pk = NULL;             /* each template's peak channel */
	struct resid_near rn = {0}; /* a batch's spikes, for resid_detect */
	double *acc = NULL;
	int64_t *cnt = NULL;
	struct ss_matcher *m = NULL;
	struct ss_match_out mo = {0};
	float *W0 = NULL;
	void *blob = NULL;
	size_t bytes;
	double t0 = nq_mono_s();

	if (chan_count == NULL)
		return NQ_ENOMEM;
	memset(tp, 0, sizeof(*tp));
	tp->C = C;
	tp->nt = nt;
	tp->rank = c->rank;
	tp->px = r->p->x;
	tp->py = r->p->y;
	tp->radius = c->tmpl_radius_um;
	if (ss_ckpt_load_var(c->ckpt_dir, "templates.bin", r->key, &blob,
	                     &bytes) == 0 &&
	    bytes % (sizeof(float) * (C * nt + 1)) == 0) {
		/* W (K × C × nt) then mu (K) */
		tp->K = (int) (bytes / (sizeof(float) * (C * nt + 1)));
		tp->W = blob;
		tp->mu = malloc(sizeof(float) * ((size_t) tp->K + 1));
		if (tp->mu == NULL) {
			free(chan_count);
			return NQ_ENOMEM;
		}
		memcpy(tp->mu, tp->W + (size_t) tp->K * C * nt,
		       sizeof(float) * (size_t) tp->K);
		logf_(r, "stage=learn resumed=1 templates=%d", tp->K);
		free(chan_count);
		*t_detect = 0;
		return ss_templates_lowrank(r->kb, tp);
	}
	free(blob);
	nl = (int) (r->nb < c->learn_batches ? r->nb : c->learn_batches);
	r->ncache = nl;
	r->cache = calloc((size_t) nl, sizeof(float *));
	r->cache_core = calloc((size_t) nl, sizeof(int64_t));
	if (r->cache == NULL || r->cache_core == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	int per_chan_cap = (int) (200000 / C);
	if (per_chan_cap < 300)
		per_chan_cap = 300;
	for (int i = 0; i < nl; i++) {
		float *Y;
		int64_t core, b = learn_batch(r, i, nl);
		if (canceled(r)) {
			rc = NQ_ECANCELED;
			goto out;
		}
		const float *dY;
		if ((rc = learn_load(r, i, nl, &Y, &core)) != 0 ||
		    (rc = ss_batcher_put(&r->bt, Y, &dY)) != 0)
			goto out;
		rc = ss_detect_batch(c, r->kb, r->p, dY, r->Tb, c->pad,
		                     c->pad + core, b * r->NT - c->pad,
		                     per_chan_cap, chan_count, &sp);
		if (rc != 0)
			goto out;
		progress(r, 0.05 + 0.10 * (i + 1) / nl, "detect");
	}
	rc = ss_cluster(c, r->kb, r->p, &sp, &W0, &K0);
	if (rc != 0) {
		snprintf(r->msg, r->msglen, "clustering failed");
		goto out;
	}
	logf_(r, "stage=detect spikes=%lld clusters=%d", (long long) sp.n, K0);
	ss_spikes_free(&sp);
	*t_detect = nq_mono_s() - t0;
	tp->K = K0;
	tp->W = W0;
	W0 = NULL;
	/* initial duplicates go before the first pass */
	{
		int64_t *ones = malloc(sizeof(int64_t) * (size_t) (K0 + 1));
		double *a0 =
		        malloc(sizeof(double) * ((size_t) K0 * C * nt + 1));
		if (!ones || !a0) {
			free(ones);
			free(a0);
			rc = NQ_ENOMEM;
			goto out;
		}
		for (int k = 0; k < K0; k++)
			ones[k] = K0 - k; /* clusters come largest first */
		for (size_t i = 0; i < (size_t) K0 * C * nt; i++)
			a0[i] = tp->W[i];
		/* shape alone is weak evidence: only near copies */
		rc = update_templates(r, tp, a0, ones, 1, NULL,
		                      fmax(c->merge_corr, 0.97));
		free(ones);
		free(a0);
		if (rc != 0)
			goto out;
	}
	for (int it = 0; it < c->learn_iters && tp->K > 0; it++) {
		size_t L = (size_t) C * nt;
		free(acc);
		free(cnt);
		/* K > 0, C * nt > 0 */
		// NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI)
		acc = calloc((size_t) tp->K * L, sizeof(double));
		cnt = calloc((size_t) tp->K, sizeof(int64_t));
		if (!acc || !cnt) {
			rc = NQ_ENOMEM;
			goto out;
		}
		ss_matcher_free(m);
		if ((rc = ss_matcher_new(r->kb, tp, r->Tb, &m)) != 0)
			goto out;
		mo.n = 0;
		if (it == rit) {
			if (ss_resid_filter(tp->W, tp->K, C, nt, c->nt0min,
			                    RESID_NH, RESID_H0, h) != 0)
				rit = -1;
			memset(chan_count, 0, sizeof(int64_t) * (size_t) C);
			free(pk);
			if ((pk = peak_chans(tp)) == NULL) {
				rc = NQ_ENOMEM;
				goto out;
			}
		}
		for (int i = 0; i < nl; i++) {
			const float *Y;
			float *Rb;
			int64_t core, b = learn_batch(r, i, nl);
			if (canceled(r)) {
				rc = NQ_ECANCELED;
				goto out;
			}
			if ((rc = learn_view(r, i, nl, &Y, &Rb, &core)) != 0)
				goto out;
			int64_t n0 = mo.n;
			/* every other batch's residual is searched (half
			 * the cost, and a unit that fires at 1 Hz still
			 * gives 20 spikes over 20 batches of 2 s); the
			 * others' is not needed on the host */
			int search = it == rit && i % 2 == 0;
			rc = ss_match_batch(
			        m, c, Y,
			        search || !kern_mem_is_host(r->kb) ? Rb : NULL,
			        r->Tb, c->pad, c->pad + core,
			        b * r->NT - c->pad, &mo, acc, cnt);
			if (rc != 0)
				goto out;
			if (search &&
			    ((rc = resid_near_set(&rn, &mo, n0, pk,
			                          b * r->NT - c->pad)) != 0 ||
			     (rc = ss_resid_detect(
			              c, r->p, Rb, r->Tb, c->pad, c->pad + core,
			              b * r->NT - c->pad, h, RESID_NH, RESID_H0,
			              c->th_resid, rn.t, rn.c, rn.n,
			              per_chan_cap, chan_count, &rsp)) != 0))
				goto out;
			progress(r,
			         0.15 + 0.25 * (it * nl + i + 1) /
			                         (c->learn_iters * nl),
			         "learn");
		}
		int K1 = tp->K;
		rc = update_templates(r, tp, acc, cnt, learn_min_spikes(c, it),
		                      &mo, c->merge_corr);
		if (rc != 0)
			goto out;
		logf_(r, "stage=learn iter=%d templates=%d->%d", it + 1, K1,
		      tp->K);
		if (it == rit) {
			rc = resid_add(r, tp, &rsp);
			ss_spikes_free(&rsp);
			if (rc != 0)
				goto out;
		}
	}
	{
		size_t L = (size_t) tp->K * C * nt;
		float *blob2 = malloc(sizeof(float) * (L + (size_t) tp->K + 1));
		if (blob2 == NULL) {
			rc = NQ_ENOMEM;
			goto out;
		}
		if (L > 0)
			memcpy(blob2, tp->W, sizeof(float) * L);
		if (tp->K > 0)
			memcpy(blob2 + L, tp->mu,
			       sizeof(float) * (size_t) tp->K);
		rc = ss_ckpt_save(c->ckpt_dir, "templates.bin", r->key, blob2,
		                  sizeof(float) * (L + (size_t) tp->K));
		free(blob2);
	}
	if (rc != 0)
		snprintf(r->msg, r->msglen, "cannot write checkpoint");
out:
	for (int i = 0; i < r->ncache; i++)
		/* ncache > 0 only with a cache */
		// NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
		free(r->cache[i]);
	free(r->cache);
	free(r->cache_core);
	r->cache = NULL;
	r->ncache = 0;
	ss_spikes_free(&sp);
	ss_spikes_free(&rsp);
	free(pk);
	free(rn.t);
	free(rn.c);
	free(rn.ord);
	ss_match_out_free(&mo);
	ss_matcher_free(m);
	free(chan_count);
	free(acc);
	free(cnt);
	free(W0);
	return rc;
}

/* Templates of noise at the threshold lose their spikes (ss_prune.c), one
 * job-log line each. */
static int
stage_prune(struct run *r, int K, struct ss_match_out *all)
{
	int *drop = malloc(sizeof(int) * (size_t) (K + 1)), nd = 0, rc;
	double *cut = malloc(sizeof(double) * (size_t) (K + 1));
	double *isi = malloc(sizeof(double) * (size_t) (K + 1));
	int64_t *n = calloc((size_t) K + 1, sizeof(int64_t));

	if (drop == NULL || cut == NULL || isi == NULL || n == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	for (int64_t i = 0; i < all->n; i++)
		n[all->k[i]]++;
	rc = ss_prune_noise(r->cfg, K, r->N, all, drop, cut, isi, &nd);
	for (int k = 0; rc == 0 && k < K; k++)
		if (drop[k])
			logf_(r,
			      "stage=prune template=%d spikes=%lld "
			      "amplitude_cutoff=%.3f isi_violations_ratio=%.2f",
			      k, (long long) n[k], cut[k], isi[k]);
out:
	free(drop);
	free(cut);
	free(isi);
	free(n);
	return rc;
}

static int
stage_match(struct run *r, const struct ss_templates *tp,
            struct ss_match_out *all)
{
	const struct ss_config *c = r->cfg;
	struct ss_matcher *m = NULL;
	struct ss_match_out mo = {0};
	int rc, resumed = 0;
	char name[64];

	if ((rc = ss_matcher_new(r->kb, tp, r->Tb, &m)) != 0)
		return rc;
	for (int64_t b = 0; b < r->nb; b++) {
		const float *Y;
		int64_t core;
		void *blob;
		size_t bytes;
		if (canceled(r)) {
			rc = NQ_ECANCELED;
			goto out;
		}
		snprintf(name, sizeof(name), "b%07lld.spk", (long long) b);
		mo.n = 0;
		if (ss_ckpt_load_var(c->ckpt_dir, name, r->key, &blob,
		                     &bytes) == 0 &&
		    bytes % 16 == 0) {
			/* records: int64 t, int32 k, float a */
			int64_t n = (int64_t) (bytes / 16);
			for (int64_t i = 0; i < n; i++) {
				int64_t t;
				int32_t k;
				float a;
				memcpy(&t, (char *) blob + 16 * i, 8);
				memcpy(&k, (char *) blob + 16 * i + 8, 4);
				memcpy(&a, (char *) blob + 16 * i + 12, 4);
				if (k < 0 || k >= tp->K)
					continue;
				if ((rc = ss_match_out_push(all, t, k, a)) !=
				    0) {
					free(blob);
					goto out;
				}
			}
			free(blob);
			resumed++;
			continue;
		}
		if ((rc = ss_batcher_load_dev(&r->bt, b, &Y, &core, r->msg,
		                              r->msglen)) != 0)
			goto out;
		rc = ss_match_batch_dev(m, c, Y, r->Tb, c->pad, c->pad + core,
		                        b * r->NT - c->pad, &mo);
		if (rc != 0)
			goto out;
		if (c->ckpt_dir != NULL) {
			char *rec = malloc(16 * (size_t) (mo.n ? mo.n : 1));
			if (rec == NULL) {
				rc = NQ_ENOMEM;
				goto out;
			}
			for (int64_t i = 0; i < mo.n; i++) {
				memcpy(rec + 16 * i, &mo.t[i], 8);
				memcpy(rec + 16 * i + 8, &mo.k[i], 4);
				memcpy(rec + 16 * i + 12, &mo.a[i], 4);
			}
			rc = ss_ckpt_save(c->ckpt_dir, name, r->key, rec,
			                  16 * (size_t) mo.n);
			free(rec);
			if (rc != 0) {
				snprintf(r->msg, r->msglen,
				         "cannot write checkpoint");
				goto out;
			}
		}
		for (int64_t i = 0; i < mo.n; i++)
			if ((rc = ss_match_out_push(all, mo.t[i], mo.k[i],
			                            mo.a[i])) != 0)
				goto out;
		progress(r, 0.40 + 0.55 * (double) (b + 1) / (double) r->nb,
		         "match");
	}
	if (resumed)
		logf_(r, "stage=match resumed_batches=%d", resumed);
	rc = 0;
out:
	ss_match_out_free(&mo);
	ss_matcher_free(m);
	return rc;
}

int
ss_sort(const struct ss_config *cfg, const struct kern_backend *kb,
        struct ss_source *src, const struct ss_probe *probe,
        const struct ss_hooks *hooks, struct ss_result *res, char *msg,
        size_t msglen)
{
	struct run r = {0};
	struct ss_templates tp = {0};
	struct ss_match_out all = {0};
	int C = probe->n, rc;
	float *M = NULL;
	double t0, t1;
	uint64_t u0 = 0, d0 = 0, um = 0, dm = 0;

	memset(res, 0, sizeof(*res));
	(void) KOP(kb, traffic, &u0, &d0);
	r.cfg = cfg;
	r.kb = kb;
	r.src = src;
	r.p = probe;
	r.h = hooks;
	r.msg = msg;
	r.msglen = msglen;
	snprintf(msg, msglen, "out of memory");
	if ((rc = ss_batcher_init(&r.bt, cfg, kb, src, probe, msg, msglen)))
		goto out;
	r.C = C;
	r.N = r.bt.N;
	r.NT = r.bt.NT;
	r.nb = r.bt.nb;
	r.Tb = r.bt.Tb;
	r.key = config_key(cfg, probe, r.N, src->n_rows);
	rc = NQ_ENOMEM;
	M = malloc(sizeof(float) * (size_t) C * C);
	res->wmat = malloc(sizeof(float) * (size_t) C * C);
	res->wmat_inv = malloc(sizeof(float) * (size_t) C * C);
	if (!M || !res->wmat || !res->wmat_inv)
		goto out;
	res->n_samples = r.N;
	logf_(&r,
	      "stage=start samples=%lld channels=%d batches=%lld "
	      "batch=%lld",
	      (long long) r.N, C, (long long) r.nb, (long long) r.NT);

	t0 = nq_mono_s();
	if ((rc = stage_whiten(&r, M)) != 0)
		goto out;
	if ((rc = ss_batcher_whiten(&r.bt, M)) != 0)
		goto out;
	/* phy: y_row = x_row · whitening_mat, i.e. whitening_mat = Mᵀ */
	for (int i = 0; i < C; i++)
		for (int j = 0; j < C; j++)
			res->wmat[i * C + j] = M[j + (size_t) C * i];
	{
		float *inv = malloc(sizeof(float) * (size_t) C * C);
		if (inv == NULL)
			goto out;
		/* res->wmat row-major = column-major M; invert that matrix
		 * (column-major), then its row-major is (M⁻¹)ᵀ = (Mᵀ)⁻¹ */
		rc = ss_invert(M, C, inv);
		if (rc != 0) {
			free(inv);
			snprintf(msg, msglen,
			         "whitening matrix is singular "
			         "(a dead channel set?)");
			goto out;
		}
		for (int i = 0; i < C; i++)
			for (int j = 0; j < C; j++)
				res->wmat_inv[i * C + j] =
				        inv[j + (size_t) C * i];
		free(inv);
	}
	t1 = nq_mono_s();
	res->t_pre = t1 - t0;
	if ((rc = stage_drift(&r, res)) != 0)
		goto out;
	t0 = nq_mono_s();
	res->t_drift = t0 - t1;
	t1 = t0;

	rc = stage_learn(&r, &tp, &res->t_detect);
	if (rc != 0)
		goto out;
	logf_(&r, "stage=learned templates=%d", tp.K);
	t0 = nq_mono_s();
	(void) KOP(kb, traffic, &um, &dm);
	rc = stage_match(&r, &tp, &all);
	if (rc != 0)
		goto out;
	/* host↔device bytes: the whole sort (the callers add the features
	 * pass), and the matching pass (every batch through the
	 * device-resident path) */
	(void) KOP(kb, traffic, &res->xfer_match_h2d, &res->xfer_match_d2h);
	res->xfer_match_h2d -= um;
	res->xfer_match_d2h -= dm;
	res->dev_batch_bytes = ss_batch_device_bytes(cfg, C, r.NT, tp.K);
	res->t_match = nq_mono_s() - t0 + (t0 - t1 - res->t_detect);
	t0 = nq_mono_s();
	progress(&r, 0.96, "post");
	if (cfg->prune_noise && (rc = stage_prune(&r, tp.K, &all)) != 0)
		goto out;
	rc = ss_post(cfg, &tp, &all, res);
	if (rc != 0)
		goto out;
	res->t_post = nq_mono_s() - t0;
	(void) KOP(kb, traffic, &res->xfer_h2d, &res->xfer_d2h);
	res->xfer_h2d -= u0;
	res->xfer_d2h -= d0;
	for (int i = 0; i < res->n_merges; i++) {
		const struct ss_merge *g = &res->merges[i];
		logf_(&r,
		      "stage=post merge=%d+%d->%d similarity=%.3f "
		      "ccg_pairs=%lld "
		      "ccg_expected=%.1f ccg_ratio=%.2f by_shape=%d "
		      "by_drift=%d drift_chi2=%.1f drift_range=%.2f",
		      g->a, g->b, g->a, g->similarity, (long long) g->nc,
		      g->expect, g->ratio, g->by_shape, g->by_drift,
		      g->drift_chi2, g->drift_range);
	}
	logf_(&r, "stage=done spikes=%lld units=%d good=%d",
	      (long long) res->n_spikes, res->n_units, res->n_good);
	rc = 0;
out:
	if (rc == NQ_ENOMEM)
		snprintf(msg, msglen, "out of memory");
	else if (rc == NQ_ECANCELED)
		snprintf(msg, msglen, "canceled");
	if (rc != 0)
		ss_result_free(res);
	ss_match_out_free(&all);
	ss_templates_free(&tp);
	ss_batcher_free(&r.bt);
	free(r.shift);
	free(M);
	return rc;
}
