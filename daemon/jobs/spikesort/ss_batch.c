/* ss_batch.c — batch reading, preprocessing, whitening and drift
 * resampling shared by every stage (ss_batch.h). */
#include "ss_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"

int
ss_batcher_init(struct ss_batcher *bt, const struct ss_config *cfg,
                const struct kern_backend *kb, struct ss_source *src,
                const struct ss_probe *p, char *msg, size_t msglen)
{
	int C = p->n;

	memset(bt, 0, sizeof(*bt));
	bt->cfg = cfg;
	bt->kb = kb;
	bt->src = src;
	bt->p = p;
	bt->C = C;
	bt->N = src->n_samples;
	bt->NT = cfg->batch < bt->N ? cfg->batch : bt->N;
	bt->nb = bt->NT > 0 ? (bt->N + bt->NT - 1) / bt->NT : 0;
	bt->Tb = bt->NT + 2 * (int64_t) cfg->pad;
	bt->Tfull = bt->Tb + 2 * (int64_t) cfg->fpad;
	bt->am_batch = -1;
	if (ss_filter_design(&bt->filt, cfg->fs, cfg->hp_hz) != 0) {
		snprintf(msg, msglen,
		         "high-pass %g Hz needs a sample_rate above %g Hz",
		         cfg->hp_hz, 2 * cfg->hp_hz);
		return NQ_EBADPARAM;
	}
	ss_filter_sos(&bt->filt, bt->sos);
	bt->X = malloc(sizeof(float) * (size_t) C * (size_t) bt->Tfull);
	bt->band = malloc(sizeof(struct ss_band) * ((size_t) C / 32 + 2));
	if (!bt->X || !bt->band) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	return 0;
}

int
ss_batcher_whiten(struct ss_batcher *bt, const float *M)
{
	size_t mb = sizeof(float) * (size_t) bt->C * bt->C;
	int rc;

	if ((rc = ss_kbuf_ensure(bt->kb, &bt->dM, mb)) ||
	    (rc = KOP(bt->kb, upload, bt->dM.p, M, mb)))
		return rc;
	bt->nband = ss_band_blocks(M, bt->C, 32, bt->band);
	bt->M = M;
	return 0;
}

int
ss_batcher_drift(struct ss_batcher *bt, const float *shift, int nblk,
                 const float *blk_y)
{
	int C = bt->C, rc;

	bt->shift_c = malloc(sizeof(double) * (size_t) C);
	if (bt->shift_c == NULL)
		return NQ_ENOMEM;
	bt->A = malloc(sizeof(float) * (size_t) C * C);
	bt->AM = malloc(sizeof(float) * (size_t) C * C);
	bt->aband = malloc(sizeof(struct ss_band) * ((size_t) C / 32 + 2));
	if (!bt->A || !bt->AM || !bt->aband)
		return NQ_ENOMEM;
	if ((rc = ss_krig_init(&bt->krig, bt->kb, bt->p,
	                       bt->cfg->drift_sigma_um)))
		return rc;
	bt->shift = shift;
	bt->nblk = nblk;
	bt->blk_y = blk_y;
	bt->am_batch = -1;
	return 0;
}

/* The drift resampling of batch b folded into the whitening (A·M, made
 * and uploaded once per batch): *dM and its bands. */
static int
batch_matrix(struct ss_batcher *bt, int64_t b, const void **dM,
             const struct ss_band **band, int *nband, char *msg, size_t msglen)
{
	int C = bt->C, rc;

	int moved = 0;

	*dM = bt->dM.p;
	*band = bt->band;
	*nband = bt->nband;
	for (int j = 0; bt->shift != NULL && j < bt->nblk; j++)
		moved |= bt->shift[(size_t) b * bt->nblk + j] != 0;
	if (!moved)
		return 0;
	/* this batch's resampling folded into the whitening */
	if (bt->am_batch != b) {
		size_t mb = sizeof(float) * (size_t) C * C;
		ss_drift_channel_shifts(bt->p, bt->nblk, bt->blk_y,
		                        bt->shift + (size_t) b * bt->nblk,
		                        bt->shift_c);
		if ((rc = ss_drift_batch_matrix(&bt->krig, bt->p, bt->M,
		                                bt->shift_c, bt->A, bt->AM)) ||
		    (rc = ss_kbuf_ensure(bt->kb, &bt->dAM, mb)) ||
		    (rc = KOP(bt->kb, upload, bt->dAM.p, bt->AM, mb))) {
			snprintf(msg, msglen, "drift correction failed");
			return rc;
		}
		bt->naband = ss_band_blocks(bt->AM, C, 32, bt->aband);
		bt->am_batch = b;
	}
	*dM = bt->dAM.p;
	*band = bt->aband;
	*nband = bt->naband;
	return 0;
}

/* Batch b into host X (C × Tfull) and the core's length. */
static int
batch_read(struct ss_batcher *bt, int64_t b, int64_t *core, char *msg,
           size_t msglen)
{
	const struct ss_config *c = bt->cfg;
	int64_t t0 = b * bt->NT - c->pad - c->fpad;
	int rc = ss_source_read(bt->src, bt->p, t0, bt->Tfull, bt->X);

	if (rc != 0) {
		snprintf(msg, msglen, "reading batch %lld failed",
		         (long long) b);
		return rc;
	}
	*core = bt->N - b * bt->NT < bt->NT ? bt->N - b * bt->NT : bt->NT;
	return 0;
}

/* Host-memory backend: everything in place on X. */
static int
load_host(struct ss_batcher *bt, int64_t b, float **Y, int64_t *core, char *msg,
          size_t msglen)
{
	const struct ss_config *c = bt->cfg;
	const struct ss_band *band;
	const void *dM;
	int nband, rc;

	if ((rc = batch_read(bt, b, core, msg, msglen)) != 0)
		return rc;
	if ((rc = KOP(bt->kb, filter_car, bt->C, bt->Tfull, bt->X, bt->sos,
	              c->car)) != 0) {
		snprintf(msg, msglen, "preprocessing failed");
		return rc;
	}
	*Y = bt->X + (size_t) bt->C * c->fpad;
	if (bt->pre != NULL)
		bt->pre(bt->pre_u, b, *Y, bt->Tb, *core);
	if (bt->M == NULL)
		return 0;
	if ((rc = batch_matrix(bt, b, &dM, &band, &nband, msg, msglen)) != 0)
		return rc;
	rc = ss_apply_banded(bt->kb, dM, bt->C, band, nband, *Y, bt->Tb,
	                     &bt->dx, &bt->dy);
	if (rc != 0)
		snprintf(msg, msglen, "whitening failed");
	return rc;
}

int
ss_batcher_load_dev(struct ss_batcher *bt, int64_t b, const float **dY,
                    int64_t *core, char *msg, size_t msglen)
{
	const struct ss_config *c = bt->cfg;
	const struct kern_backend *kb = bt->kb;
	size_t C = (size_t) bt->C, full = sizeof(float) * C * bt->Tfull;
	size_t yb = sizeof(float) * C * bt->Tb;
	const struct ss_band *band;
	const float *dXc;
	const void *dM;
	int nband, rc;

	if (kern_mem_is_host(kb)) {
		float *Y;
		rc = load_host(bt, b, &Y, core, msg, msglen);
		*dY = Y;
		return rc;
	}
	if ((rc = batch_read(bt, b, core, msg, msglen)) != 0)
		return rc;
	if ((rc = ss_kbuf_ensure(kb, &bt->dX, full)) ||
	    (rc = KOP(kb, upload, bt->dX.p, bt->X, full)) ||
	    (rc = KOP(kb, filter_car, bt->C, bt->Tfull, bt->dX.p, bt->sos,
	              c->car))) {
		snprintf(msg, msglen, "preprocessing failed");
		return rc;
	}
	dXc = (const float *) bt->dX.p + C * c->fpad;
	if (bt->pre != NULL) {
		float *Y = bt->X + C * c->fpad;
		if ((rc = KOP(kb, download, Y, dXc, yb)) != 0) {
			snprintf(msg, msglen, "preprocessing failed");
			return rc;
		}
		bt->pre(bt->pre_u, b, Y, bt->Tb, *core);
	}
	*dY = dXc;
	if (bt->M == NULL)
		return 0;
	if ((rc = batch_matrix(bt, b, &dM, &band, &nband, msg, msglen)) != 0)
		return rc;
	if ((rc = ss_kbuf_ensure(kb, &bt->dY, yb)) ||
	    (rc = ss_apply_banded_dev(kb, dM, bt->C, band, nband, dXc, bt->dY.p,
	                              bt->Tb))) {
		snprintf(msg, msglen, "whitening failed");
		return rc;
	}
	*dY = bt->dY.p;
	return 0;
}

int
ss_batcher_load(struct ss_batcher *bt, int64_t b, float **Y, int64_t *core,
                char *msg, size_t msglen)
{
	const float *dY;
	int rc;

	if (kern_mem_is_host(bt->kb))
		return load_host(bt, b, Y, core, msg, msglen);
	if ((rc = ss_batcher_load_dev(bt, b, &dY, core, msg, msglen)) != 0)
		return rc;
	*Y = bt->X + (size_t) bt->C * bt->cfg->fpad;
	rc = KOP(bt->kb, download, *Y, dY,
	         sizeof(float) * (size_t) bt->C * bt->Tb);
	if (rc != 0)
		snprintf(msg, msglen, "whitening failed");
	return rc;
}

int
ss_batcher_put(struct ss_batcher *bt, const float *Y, const float **dY)
{
	size_t yb = sizeof(float) * (size_t) bt->C * bt->Tb;
	int rc;

	*dY = Y;
	if (kern_mem_is_host(bt->kb))
		return 0;
	if ((rc = ss_kbuf_ensure(bt->kb, &bt->dY, yb)) != 0 ||
	    (rc = KOP(bt->kb, upload, bt->dY.p, Y, yb)) != 0)
		return rc;
	*dY = bt->dY.p;
	return 0;
}

void
ss_traffic_mark(const struct kern_backend *kb, uint64_t *mark)
{
	if (KOP(kb, traffic, &mark[0], &mark[1]) != 0)
		mark[0] = mark[1] = 0;
}

void
ss_traffic_add_since(const struct kern_backend *kb, const uint64_t *mark,
                     struct ss_result *res)
{
	uint64_t now[2];

	ss_traffic_mark(kb, now);
	res->xfer_h2d += now[0] - mark[0];
	res->xfer_d2h += now[1] - mark[1];
}

uint64_t
ss_batch_device_bytes(const struct ss_config *cfg, int C, int64_t NT, int K)
{
	uint64_t Tb = (uint64_t) (NT + 2 * (int64_t) cfg->pad);
	uint64_t Tf = Tb + 2 * (uint64_t) cfg->fpad, c = (uint64_t) C;
	uint64_t RK = (uint64_t) cfg->rank * (uint64_t) K, k = (uint64_t) K;
	uint64_t nt = (uint64_t) (cfg->nt > 0 ? cfg->nt : 1);

	/* batcher: raw batch, whitened batch, M and A·M; matcher: residual,
	 * projections, one group's scores (≤ K rows), U and V, the
	 * templates with their windows, a round's spike list (≤ one per nt
	 * samples per template group: ≤ K groups), each group's best gain,
	 * amplitude and template per sample, the templates' priors and ids
	 * and the group overlaps (≤ K² entries); with th_own their own
	 * thresholds */
	return 4 * (c * Tf + c * Tb + 2 * c * c) +
	       4 * (c * Tb + RK * Tb + k * Tb + RK * (c + nt) + k * c * nt +
	            2 * k) +
	       12 * k * (Tb / nt + 2) + 12 * k * Tb + 4 * (3 * k + 1 + k * k) +
	       (cfg->th_own ? 4 * k : 0);
}

void
ss_batcher_free(struct ss_batcher *bt)
{
	if (bt->kb != NULL) {
		ss_kbuf_free(bt->kb, &bt->dM);
		ss_kbuf_free(bt->kb, &bt->dx);
		ss_kbuf_free(bt->kb, &bt->dy);
		ss_kbuf_free(bt->kb, &bt->dAM);
		ss_kbuf_free(bt->kb, &bt->dX);
		ss_kbuf_free(bt->kb, &bt->dY);
	}
	ss_krig_free(&bt->krig);
	free(bt->X);
	free(bt->band);
	free(bt->A);
	free(bt->AM);
	free(bt->shift_c);
	free(bt->aband);
	memset(bt, 0, sizeof(*bt));
}
