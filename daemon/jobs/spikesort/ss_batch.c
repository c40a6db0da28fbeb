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
	bt->X = malloc(sizeof(float) * (size_t) C * (size_t) bt->Tfull);
	bt->fwork = malloc(sizeof(double) * 3 * (size_t) C);
	bt->cwork = malloc(sizeof(float) * (size_t) C);
	bt->band = malloc(sizeof(struct ss_band) * ((size_t) C / 32 + 2));
	if (!bt->X || !bt->fwork || !bt->cwork || !bt->band) {
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

int
ss_batcher_load(struct ss_batcher *bt, int64_t b, float **Y, int64_t *core,
                char *msg, size_t msglen)
{
	const struct ss_config *c = bt->cfg;
	int64_t t0 = b * bt->NT - c->pad - c->fpad;
	int C = bt->C, rc;

	rc = ss_source_read(bt->src, bt->p, t0, bt->Tfull, bt->X);
	if (rc != 0) {
		snprintf(msg, msglen, "reading batch %lld failed",
		         (long long) b);
		return rc;
	}
	ss_preprocess(&bt->filt, bt->X, C, bt->Tfull, c->car, bt->fwork,
	              bt->cwork);
	*Y = bt->X + (size_t) C * c->fpad;
	*core = bt->N - b * bt->NT < bt->NT ? bt->N - b * bt->NT : bt->NT;
	if (bt->pre != NULL)
		bt->pre(bt->pre_u, b, *Y, bt->Tb, *core);
	if (bt->M == NULL)
		return 0;
	int moved = 0;
	for (int j = 0; bt->shift != NULL && j < bt->nblk; j++)
		moved |= bt->shift[(size_t) b * bt->nblk + j] != 0;
	if (moved) {
		/* this batch's resampling folded into the whitening */
		if (bt->am_batch != b) {
			size_t mb = sizeof(float) * (size_t) C * C;
			ss_drift_channel_shifts(
			        bt->p, bt->nblk, bt->blk_y,
			        bt->shift + (size_t) b * bt->nblk, bt->shift_c);
			if ((rc = ss_drift_batch_matrix(&bt->krig, bt->p, bt->M,
			                                bt->shift_c, bt->A,
			                                bt->AM)) ||
			    (rc = ss_kbuf_ensure(bt->kb, &bt->dAM, mb)) ||
			    (rc = KOP(bt->kb, upload, bt->dAM.p, bt->AM, mb))) {
				snprintf(msg, msglen,
				         "drift correction failed");
				return rc;
			}
			bt->naband = ss_band_blocks(bt->AM, C, 32, bt->aband);
			bt->am_batch = b;
		}
		rc = ss_apply_banded(bt->kb, bt->dAM.p, C, bt->aband,
		                     bt->naband, *Y, bt->Tb, &bt->dx, &bt->dy);
	} else {
		rc = ss_apply_banded(bt->kb, bt->dM.p, C, bt->band, bt->nband,
		                     *Y, bt->Tb, &bt->dx, &bt->dy);
	}
	if (rc != 0)
		snprintf(msg, msglen, "whitening failed");
	return rc;
}

void
ss_batcher_free(struct ss_batcher *bt)
{
	if (bt->kb != NULL) {
		ss_kbuf_free(bt->kb, &bt->dM);
		ss_kbuf_free(bt->kb, &bt->dx);
		ss_kbuf_free(bt->kb, &bt->dy);
		ss_kbuf_free(bt->kb, &bt->dAM);
	}
	ss_krig_free(&bt->krig);
	free(bt->X);
	free(bt->fwork);
	free(bt->cwork);
	free(bt->band);
	free(bt->A);
	free(bt->AM);
	free(bt->shift_c);
	free(bt->aband);
	memset(bt, 0, sizeof(*bt));
}
