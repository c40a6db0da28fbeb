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
	/* on a cache line: the host filter shares rows out by lines */
	bt->X = aligned_alloc(
	        64, (sizeof(float) * (size_t) C * (size_t) bt->Tfull + 63) /
	                    64 * 64);
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
	int C = bt->C, S = bt->cfg->drift_segs > 1 ? bt->cfg->drift_segs : 1;
	int rc;

	bt->nseg = S;
	bt->shift_c = malloc(sizeof(double) * (size_t) C);
	bt->seg_sh = malloc(sizeof(float) * (size_t) nblk);
	bt->A = malloc(sizeof(float) * (size_t) C * C);
	bt->AM = malloc(sizeof(float) * (size_t) S * C * C);
	bt->aband = malloc(sizeof(struct ss_band) * (size_t) S *
	                   ((size_t) C / 32 + 2));
	bt->naband = calloc((size_t) S, sizeof(int));
	if (!bt->shift_c || !bt->seg_sh || !bt->A || !bt->AM || !bt->aband ||
	    !bt->naband)
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

/* Piece s of batch b's shift per block into bt->seg_sh: the shifts are
 * those of the batches' centres, the piece's centre lies f of a batch
 * from b's, towards the neighbour on its side. 1 when any is nonzero. */
static int
segment_shift(struct ss_batcher *bt, int64_t b, int s)
{
	double f = ((double) s + 0.5) / bt->nseg - 0.5;
	int64_t o = f < 0 ? b - 1 : b + 1;
	int moved = 0;

	f = f < 0 ? -f : f;
	if (o < 0 || o >= bt->nb)
		o = b;
	for (int j = 0; j < bt->nblk; j++) {
		bt->seg_sh[j] = (float) ((1 - f) * bt->shift[b * bt->nblk + j] +
		                         f * bt->shift[o * bt->nblk + j]);
		moved |= bt->seg_sh[j] != 0;
	}
	return moved;
}

/* The drift resampling of batch b's pieces folded into the whitening (M·A
 * each, made and uploaded once per batch): *dM (nseg × C × C) and the
 * pieces' bands (aband, naband); *moved 0 when no piece moves (then dM is
 * M, band its bands, for the whole batch). */
static int
batch_matrix(struct ss_batcher *bt, int64_t b, const void **dM,
             const struct ss_band **band, int *nband, int *moved, char *msg,
             size_t msglen)
{
	int C = bt->C, rc;
	size_t cc = (size_t) C * C, nbk = (size_t) C / 32 + 2;

	*dM = bt->dM.p;
	*band = bt->band;
	*nband = bt->nband;
	*moved = 0;
	if (bt->shift == NULL)
		return 0;
	if (bt->am_batch != b) {
		bt->am_moved = 0;
		for (int s = 0; s < bt->nseg; s++)
			bt->am_moved |= segment_shift(bt, b, s);
		for (int s = 0; s < bt->nseg && bt->am_moved; s++) {
			float *AM = bt->AM + (size_t) s * cc;
			segment_shift(bt, b, s);
			ss_drift_channel_shifts(bt->p, bt->nblk, bt->blk_y,
			                        bt->seg_sh, bt->shift_c);
			if ((rc = ss_drift_batch_matrix(&bt->krig, bt->p, bt->M,
			                                bt->shift_c, bt->A,
			                                AM)) != 0) {
				snprintf(msg, msglen,
				         "drift correction failed");
				return rc;
			}
			bt->naband[s] =
			        ss_band_blocks(AM, C, 32, bt->aband + s * nbk);
		}
		if (bt->am_moved &&
		    ((rc = ss_kbuf_ensure(bt->kb, &bt->dAM,
		                          sizeof(float) * bt->nseg * cc)) ||
		     (rc = KOP(bt->kb, upload, bt->dAM.p, bt->AM,
		               sizeof(float) * bt->nseg * cc)))) {
			snprintf(msg, msglen, "drift correction failed");
			return rc;
		}
		bt->am_batch = b;
	}
	if (!bt->am_moved)
		return 0;
	*moved = 1;
	*dM = bt->dAM.p;
	*band = bt->aband;
	*nband = bt->naband[0];
	return 0;
}

/* Piece s of a batch: samples [*t0, *t0 + *n) of its Tb (the first takes
 * the leading pad, the last the trailing one) */
static void
segment_span(const struct ss_batcher *bt, int s, int64_t *t0, int64_t *n)
{
	int64_t pad = bt->cfg->pad, S = bt->nseg;
	int64_t a = s == 0 ? 0 : pad + bt->NT * s / S;
	int64_t e = s == S - 1 ? bt->Tb : pad + bt->NT * (s + 1) / S;

	*t0 = a;
	*n = e - a;
}

/* Y (C × Tb, host or device) whitened in place into dY (device: dY
 * distinct) by batch b's matrices: one for the whole batch, or one per
 * piece */
static int
apply_batch(struct ss_batcher *bt, int64_t b, float *Y, const float *dXc,
            float *dY, char *msg, size_t msglen)
{
	const struct ss_band *band;
	const void *dM;
	size_t C = (size_t) bt->C, cc = C * C, nbk = C / 32 + 2;
	int nband, moved, rc = 0;

	if ((rc = batch_matrix(bt, b, &dM, &band, &nband, &moved, msg,
	                       msglen)) != 0)
		return rc;
	for (int s = 0; s < (moved ? bt->nseg : 1) && rc == 0; s++) {
		int64_t t0 = 0, n = bt->Tb;
		const float *m = (const float *) dM + (moved ? s * cc : 0);
		if (moved) {
			segment_span(bt, s, &t0, &n);
			band = bt->aband + s * nbk;
			nband = bt->naband[s];
		}
		if (Y != NULL)
			rc = ss_apply_banded(bt->kb, m, bt->C, band, nband,
			                     Y + C * t0, n, &bt->dx, &bt->dy);
		else
			rc = ss_apply_banded_dev(bt->kb, m, bt->C, band, nband,
			                         dXc + C * t0, dY + C * t0, n);
	}
	if (rc != 0)
		snprintf(msg, msglen, "whitening failed");
	return rc;
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
	int rc;

	if ((rc = batch_read(bt, b, core, msg, msglen)) != 0)
		return rc;
	if ((rc = KOP(bt->kb, filter_car, bt->C, bt->Tfull, bt->X, bt->sos,
	              c->car)) != 0) {
		snprintf(msg, msglen, "preprocessing failed");
		return rc;
	}
	*Y = ss_batcher_work(bt);
	if (bt->pre != NULL)
		bt->pre(bt->pre_u, b, *Y, bt->Tb, *core);
	if (bt->M == NULL)
		return 0;
	return apply_batch(bt, b, *Y, NULL, NULL, msg, msglen);
}

int
ss_batcher_load_dev(struct ss_batcher *bt, int64_t b, const float **dY,
                    int64_t *core, char *msg, size_t msglen)
{
	const struct ss_config *c = bt->cfg;
	const struct kern_backend *kb = bt->kb;
	size_t C = (size_t) bt->C, full = sizeof(float) * C * bt->Tfull;
	size_t yb = sizeof(float) * C * bt->Tb;
	const float *dXc;
	int rc;

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
		float *Y = ss_batcher_work(bt);
		if ((rc = KOP(kb, download, Y, dXc, yb)) != 0) {
			snprintf(msg, msglen, "preprocessing failed");
			return rc;
		}
		bt->pre(bt->pre_u, b, Y, bt->Tb, *core);
	}
	*dY = dXc;
	if (bt->M == NULL)
		return 0;
	if ((rc = ss_kbuf_ensure(kb, &bt->dY, yb)) != 0) {
		snprintf(msg, msglen, "whitening failed");
		return rc;
	}
	if ((rc = apply_batch(bt, b, NULL, dXc, bt->dY.p, msg, msglen)) != 0)
		return rc;
	*dY = bt->dY.p;
	return 0;
}

float *
ss_batcher_work(const struct ss_batcher *bt)
{
	return bt->X + (size_t) bt->C * bt->cfg->fpad;
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
	*Y = ss_batcher_work(bt);
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
	uint64_t segs = (uint64_t) (cfg->drift_segs > 1 ? cfg->drift_segs : 1);

	/* batcher: raw batch, whitened batch, M and a batch's pieces' M·A;
	 * matcher: residual,
	 * projections, one group's scores (≤ K rows), U and V, the
	 * templates with their windows, a round's spike list (≤ one per nt
	 * samples per template group: ≤ K groups), each group's best gain,
	 * amplitude and template per sample, the templates' priors and ids
	 * and the group overlaps (≤ K² entries); with th_own their own
	 * thresholds */
	return 4 * (c * Tf + c * Tb + (1 + segs) * c * c) +
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
	free(bt->seg_sh);
	free(bt->aband);
	free(bt->naband);
	memset(bt, 0, sizeof(*bt));
}
