/*
 * ss_feat.c — pc_features.npy / pc_feature_ind.npy for phy's feature view
 * (and users' scripts that read Kilosort's folder): each spike's filtered,
 * whitened snippet on the nc channels nearest its template's peak, projected
 * on npc temporal PCs of the final templates; template_features.npy /
 * template_feature_ind.npy for phy's template-feature view: the same
 * snippet projected on the unit-norm templates most similar to its own;
 * and phy's raw spike-waveform subset (ss_wave.c).
 *
 * A separate pass after post-processing, because only then are the spikes
 * final (merges and duplicate removal change them). It reads, filters and
 * whitens the batches exactly as the sort did and writes the features in
 * time order through a streamed .npy, so host memory is one batch however
 * long the recording. Kilosort projects the residual plus the spike's own
 * template; this projects the data itself, which differs only where spikes
 * overlap.
 */
#include "ss_feat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nq_clones.h"
#include "nq_error.h"
#include "nq_npy.h"
#include "ss_batch.h"
#include "ss_quality.h"
#include "ss_wave.h"

int
ss_feat_temporal_pcs(const struct kern_backend *kb, const float *templates,
                     int K, int nt, int C, int nt0min, int npc, double *pcs)
{
	double *G = calloc((size_t) nt * nt, sizeof(double));
	struct ss_kbuf dA = {0}, dW = {0};
	int info = 0, rc = NQ_ENOMEM;

	if (G == NULL)
		goto out;
	if (npc > nt) {
		rc = NQ_EBADPARAM;
		goto out;
	}
	/* G = Σ_k Σ_c w_kc w_kcᵀ over every channel's time course (lower) */
	for (int k = 0; k < K; k++) {
		const float *T = templates + (size_t) k * nt * C;
		for (int c = 0; c < C; c++)
			for (int a = 0; a < nt; a++) {
				double x = T[(size_t) a * C + c];
				if (x == 0)
					continue;
				for (int b = 0; b <= a; b++)
					G[a + (size_t) nt * b] +=
					        x * T[(size_t) b * C + c];
			}
	}
	if ((rc = ss_kbuf_ensure(kb, &dA, sizeof(double) * nt * nt)) ||
	    (rc = ss_kbuf_ensure(kb, &dW, sizeof(double) * nt)) ||
	    (rc = KOP(kb, upload, dA.p, G, sizeof(double) * nt * nt)) ||
	    (rc = KOP(kb, syevd, KERN_F64, nt, dA.p, nt, dW.p, &info)) ||
	    (rc = KOP(kb, download, G, dA.p, sizeof(double) * nt * nt)))
		goto out;
	if (info != 0) {
		rc = NQ_EBADDATA;
		goto out;
	}
	for (int q = 0; q < npc; q++) {
		/* eigenvalues ascend: PC q is column nt-1-q */
		const double *v = G + (size_t) nt * (nt - 1 - q);
		double sg = v[nt0min] < 0 ? -1 : 1;
		for (int a = 0; a < nt; a++)
			pcs[(size_t) q * nt + a] = sg * v[a];
	}
	rc = 0;
out:
	ss_kbuf_free(kb, &dA);
	ss_kbuf_free(kb, &dW);
	free(G);
	return rc;
}

void
ss_feat_channels(const struct ss_probe *p, const float *templates, int K,
                 int nt, int nc, int32_t *ind)
{
	int C = p->n, *idx = malloc(sizeof(int) * (size_t) (nc > 0 ? nc : 1));

	for (int k = 0; k < K; k++) {
		const float *T = templates + (size_t) k * nt * C;
		double best = -1;
		int peak = 0;
		for (int c = 0; c < C; c++) {
			double e = 0;
			for (int a = 0; a < nt; a++)
				e += (double) T[(size_t) a * C + c] *
				     T[(size_t) a * C + c];
			if (e > best) {
				best = e;
				peak = c;
			}
		}
		if (idx != NULL) {
			ss_probe_nearest(p, peak, nc, idx);
			for (int j = 0; j < nc; j++)
				ind[(size_t) k * nc + j] = idx[j];
		} else {
			/* no memory for the probe order: channels by index */
			for (int j = 0; j < nc; j++)
				ind[(size_t) k * nc + j] = (peak + j) % C;
		}
	}
	free(idx);
}

void
ss_feat_neighbours(const float *similar, int K, int nn, int32_t *ind)
{
	for (int k = 0; k < K; k++) {
		int32_t *o = ind + (size_t) k * nn;
		const float *sk = similar + (size_t) k * K;
		int m = 1;
		o[0] = k;
		if (nn < 2)
			continue;
		/* insertion into the nn − 1 best so far (nn is small) */
		for (int j = 0; j < K; j++) {
			int i;
			if (j == k)
				continue;
			if (m == nn && !(sk[j] > sk[o[nn - 1]]))
				continue;
			i = m < nn ? m++ : nn - 1;
			while (i > 1 && sk[j] > sk[o[i - 1]]) {
				o[i] = o[i - 1];
				i--;
			}
			o[i] = j;
		}
	}
}

/* Per template: the channel range [lo, hi) outside which it is 0, and
 * 1 / its norm (0 for a template of zeros). */
struct tf_tmpl {
	int lo, hi;
	double inv;
};

static void
tf_templates(const float *templates, int K, int nt, int C, struct tf_tmpl *tt)
{
	for (int k = 0; k < K; k++) {
		const float *T = templates + (size_t) k * nt * C;
		double e = 0;
		int lo = C, hi = 0;
		for (int a = 0; a < nt; a++)
			for (int c = 0; c < C; c++) {
				double x = T[(size_t) a * C + c];
				if (x == 0)
					continue;
				e += x * x;
				lo = c < lo ? c : lo;
				hi = c + 1 > hi ? c + 1 : hi;
			}
		tt[k].lo = lo < hi ? lo : 0;
		tt[k].hi = hi;
		tt[k].inv = e > 0 ? 1 / sqrt(e) : 0;
	}
}

/* ⟨x, W_k⟩ / ‖W_k‖ for the window x (nt samples of C channels from y).
 * Each sample's channel range is summed in 8 float lanes, in the same
 * order in every clone (no fused multiply-add in ISO C mode), then the
 * lanes in double. */
NQ_CLONES static float
tf_project(const float *y, const float *templates, int nt, int C,
           const struct tf_tmpl *t, int k)
{
	const float *T = templates + (size_t) k * nt * C;
	int lo = t[k].lo, hi = t[k].hi;
	double acc = 0;

	for (int a = 0; a < nt; a++) {
		const float *ya = y + (size_t) a * C, *ta = T + (size_t) a * C;
		float s[8] = {0};
		int c = lo;
		for (; c + 8 <= hi; c += 8)
			for (int i = 0; i < 8; i++)
				s[i] += ya[c + i] * ta[c + i];
		for (int i = 0; c < hi; c++, i++)
			s[i] += ya[c] * ta[c];
		for (int i = 0; i < 8; i++)
			acc += s[i];
	}
	return (float) (acc * t[k].inv);
}

/* Quality metrics' share of the pass: the filtered batch before whitening */
struct feat_q {
	const struct ss_result *res;
	const struct ss_config *cfg;
	int64_t NT;
};

static void
feat_quality(void *u, int64_t b, const float *Y, int64_t Tb, int64_t core)
{
	const struct feat_q *fq = u;
	int64_t lo = b * fq->NT;

	ss_quality_batch(fq->res->quality, fq->res, Y, Tb, lo - fq->cfg->pad,
	                 lo, lo + core);
}

int
ss_feat_write(const char *dir, const struct ss_config *cfg,
              const struct kern_backend *kb, struct ss_source *src,
              const struct ss_probe *p, const struct ss_result *res,
              const struct ss_hooks *h, char *msg, size_t msglen)
{
	mode_t um = umask(022);
	int fd, rc;

	umask(um);
	if ((rc = ss_outdir_open(dir, &fd, msg, msglen)) != 0)
		return rc;
	rc = ss_feat_writeat(fd, 0666 & ~um, dir, cfg, kb, src, p, res, h, msg,
	                     msglen);
	close(fd);
	return rc;
}

int
ss_feat_writeat(int dirfd, unsigned mode, const char *dir,
                const struct ss_config *cfg, const struct kern_backend *kb,
                struct ss_source *src, const struct ss_probe *p,
                const struct ss_result *res, const struct ss_hooks *h,
                char *msg, size_t msglen)
{
	struct ss_batcher f = {0};
	struct nq_npy_stream st = {.fd = -1}, tst = {.fd = -1};
	struct ss_wave wv = SS_WAVE_INIT;
	struct nq_array ia = {0};
	int C = p->n, nt = res->nt, npc = cfg->npc, K = res->K, rc;
	int nc = C < SS_PC_CHANNELS ? C : SS_PC_CHANNELS;
	int nn = K < SS_TF_TEMPLATES ? K : SS_TF_TEMPLATES;
	int64_t ns = res->n_spikes, nb, s = 0, shape[3], fcap = 0, tcap = 0;
	double *pcs = NULL, *snip = NULL;
	float *feat = NULL, *tfeat = NULL;
	int32_t *ind = NULL, *tind = NULL;
	struct tf_tmpl *tt = NULL;
	char path[4200];
	struct feat_q fq = {res, cfg, 0};

	if (C != res->C || nt != cfg->nt || npc < 1 || npc > nt) {
		snprintf(msg, msglen, "features: inconsistent shapes");
		return NQ_EINTERNAL;
	}
	/* the sort's batches, preprocessing, whitening (M, column-major, has
	 * the bytes of phy's row-major wmat) and drift shifts */
	if ((rc = ss_batcher_init(&f, cfg, kb, src, p, msg, msglen)))
		goto out;
	nb = f.nb;
	if (res->quality != NULL) {
		fq.NT = f.NT;
		f.pre = feat_quality;
		f.pre_u = &fq;
	}
	snprintf(msg, msglen, "features: out of memory");
	rc = NQ_ENOMEM;
	pcs = calloc((size_t) npc * nt, sizeof(double)); /* K = 0: none */
	snip = malloc(sizeof(double) * (size_t) nc * nt);
	ind = malloc(sizeof(int32_t) * (size_t) (K ? K : 1) * nc);
	tind = malloc(sizeof(int32_t) * (size_t) (K ? K : 1) * (nn ? nn : 1));
	tt = malloc(sizeof(struct tf_tmpl) * (size_t) (K ? K : 1));
	if (!pcs || !snip || !ind || !tind || !tt)
		goto out;
	if ((rc = ss_batcher_whiten(&f, res->wmat)) != 0) {
		snprintf(msg, msglen, "features: device memory");
		goto out;
	}
	if (res->drift_um != NULL) {
		/* the same batches as the sort, or the shifts do not apply */
		if (res->drift_batch != f.NT || res->n_drift != nb) {
			snprintf(msg, msglen, "features: drift batches differ");
			rc = NQ_EINTERNAL;
			goto out;
		}
		if ((rc = ss_batcher_drift(&f, res->drift_um,
		                           res->n_drift_blocks,
		                           res->drift_block_um)) != 0) {
			snprintf(msg, msglen, "features: drift set-up failed");
			goto out;
		}
	}
	if (K > 0 && (rc = ss_feat_temporal_pcs(kb, res->templates, K, nt, C,
	                                        cfg->nt0min, npc, pcs)) != 0) {
		snprintf(msg, msglen, "features: temporal PCs failed");
		goto out;
	}
	ss_feat_channels(p, res->templates, K, nt, nc, ind);
	ss_feat_neighbours(res->similar, K, nn, tind);
	tf_templates(res->templates, K, nt, C, tt);

	snprintf(path, sizeof(path), "%s/pc_features.npy", dir);
	shape[0] = ns;
	shape[1] = npc;
	shape[2] = nc;
	if ((rc = nq_npy_stream_openat(&st, dirfd, "pc_features.npy", mode,
	                               NQ_DT_F32, 3, shape)) != 0) {
		snprintf(msg, msglen, "cannot write %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/template_features.npy", dir);
	shape[1] = nn;
	if ((rc = nq_npy_stream_openat(&tst, dirfd, "template_features.npy",
	                               mode, NQ_DT_F32, 2, shape)) != 0) {
		snprintf(msg, msglen, "cannot write %s", path);
		goto out;
	}
	if ((rc = ss_wave_open(&wv, dirfd, mode, p, res)) != 0) {
		snprintf(msg, msglen, "cannot write %s/_phy_spikes_subset.*",
		         dir);
		goto out;
	}
	for (int64_t b = 0; b < nb && s < ns; b++) {
		int64_t hi = (b + 1) * f.NT, base = b * f.NT - cfg->pad, core;
		float *Y;
		if (h && h->canceled && h->canceled(h->u)) {
			snprintf(msg, msglen, "canceled");
			rc = NQ_ECANCELED;
			goto out;
		}
		if (res->times[s] >= hi)
			continue; /* no spike in this batch: skip its reading */
		if ((rc = ss_batcher_load(&f, b, &Y, &core, msg, msglen))) {
			snprintf(msg, msglen, "features: batch %lld failed",
			         (long long) b);
			goto out;
		}
		int64_t e = s, nbuf, nsp;
		while (e < ns && res->times[e] < hi)
			e++;
		nsp = e - s;
		nbuf = nsp * npc * nc;
		if (nbuf > fcap) {
			float *nf =
			        realloc(feat, sizeof(float) * (size_t) nbuf);
			if (nf == NULL) {
				rc = NQ_ENOMEM;
				goto out;
			}
			feat = nf;
			fcap = nbuf;
		}
		if (nsp * nn > tcap) {
			float *nf = realloc(tfeat, sizeof(float) *
			                                   (size_t) (nsp * nn));
			if (nf == NULL) {
				rc = NQ_ENOMEM;
				goto out;
			}
			tfeat = nf;
			tcap = nsp * nn;
		}
		for (int64_t s0 = s; s < e; s++) {
			float *fs = feat + (size_t) (s - s0) * npc * nc;
			int64_t i0 = res->times[s] - cfg->nt0min - base;
			int k = res->templ[s];
			const int32_t *ik = ind + (size_t) k * nc;
			if (k < 0 || k >= K || i0 < 0 || i0 + nt > f.Tb) {
				snprintf(msg, msglen,
				         "features: spike %lld out of range",
				         (long long) s);
				rc = NQ_EINTERNAL;
				goto out;
			}
			/* gather sample by sample: a sample's channels are
			 * contiguous, and a template's are near each other */
			for (int a = 0; a < nt; a++) {
				const float *y = Y + (size_t) C * (i0 + a);
				for (int j = 0; j < nc; j++)
					snip[(size_t) j * nt + a] = y[ik[j]];
			}
			for (int q = 0; q < npc; q++)
				for (int j = 0; j < nc; j++) {
					const double *v = pcs + (size_t) q * nt;
					const double *x =
					        snip + (size_t) j * nt;
					double acc = 0;
					for (int a = 0; a < nt; a++)
						acc += v[a] * x[a];
					/* e > s, so feat holds nbuf > 0 */
					// NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
					fs[(size_t) q * nc + j] = (float) acc;
				}
			for (int j = 0; j < nn; j++)
				tfeat[(size_t) (s - s0) * nn + j] = tf_project(
				        Y + (size_t) C * i0, res->templates, nt,
				        C, tt, tind[(size_t) k * nn + j]);
			if ((rc = ss_wave_take(&wv, src, p, s, res->times[s],
			                       k)) != 0) {
				snprintf(msg, msglen,
				         "features: waveform subset failed");
				goto out;
			}
		}
		/* one write per batch, not per spike */
		if ((rc = nq_npy_stream_put(&st, feat,
		                            sizeof(float) * (size_t) nbuf)) ||
		    (rc = nq_npy_stream_put(&tst, tfeat,
		                            sizeof(float) *
		                                    (size_t) (nsp * nn))) ||
		    (rc = ss_wave_flush(&wv))) {
			snprintf(msg, msglen, "cannot write the features in %s",
			         dir);
			goto out;
		}
		if (h && h->progress)
			h->progress(h->u, (double) (b + 1) / (double) nb,
			            "features");
	}
	if (s != ns) {
		snprintf(msg, msglen, "features: spikes past the recording");
		rc = NQ_EINTERNAL;
		goto out;
	}
	if ((rc = nq_npy_stream_commit(&st)) != 0 ||
	    (rc = nq_npy_stream_commit(&tst)) != 0 ||
	    (rc = ss_wave_commit(&wv)) != 0) {
		snprintf(msg, msglen, "cannot write the features in %s", dir);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/pc_feature_ind.npy", dir);
	ia.dtype = NQ_DT_I32;
	ia.ndim = 2;
	ia.shape[0] = K;
	ia.shape[1] = nc;
	ia.data = ind;
	ia.nbytes = sizeof(int32_t) * (size_t) K * nc;
	if ((rc = nq_npy_writeat(dirfd, "pc_feature_ind.npy", mode, &ia)) !=
	    0) {
		snprintf(msg, msglen, "cannot write %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/template_feature_ind.npy", dir);
	ia.shape[1] = nn;
	ia.data = tind;
	ia.nbytes = sizeof(int32_t) * (size_t) K * nn;
	if ((rc = nq_npy_writeat(dirfd, "template_feature_ind.npy", mode,
	                         &ia)) != 0) {
		snprintf(msg, msglen, "cannot write %s", path);
		goto out;
	}
	msg[0] = 0;
	rc = 0;
out:
	nq_npy_stream_abort(&st);
	nq_npy_stream_abort(&tst);
	ss_wave_free(&wv);
	ss_batcher_free(&f);
	free(pcs);
	free(snip);
	free(feat);
	free(tfeat);
	free(ind);
	free(tind);
	free(tt);
	return rc;
}
