/*
 * ss_prune.c — templates of noise at the threshold, dropped before the
 * merges.
 *
 * On the six ground-truth recordings of bench/README.md (issue 16) the
 * false-positive units that are not pieces of real units are noise picked
 * at the matching threshold: their fit amplitudes are a half distribution
 * cut at the threshold (amplitude cutoff 0.47–0.49, SpikeInterface's
 * estimate caps at 0.5) and their spikes are not refractory (ISI violations
 * ratio 0.64–1.4, Hill's contamination near or above that of independent
 * spikes), with thousands of spikes each on the drifting recording. Every
 * well-sorted unit there has an amplitude cutoff of at most 0.07. A
 * template with both (cutoff ≥ PRUNE_CUTOFF and ratio ≥ good_max_isi_ratio),
 * measured on its spikes less their duplicates within dup_ms (ss_post_dedup,
 * as ss_post drops them next: a small template matched from a low th_own
 * threshold picks the same spike again beside itself), loses its spikes;
 * the caller logs each.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"
#include "ss_quality.h"

#define PRUNE_CUTOFF 0.45

int
ss_prune_is_noise(double amp_cutoff, double isi_ratio, double good_isi)
{
	/* NaN (too few spikes) is never held against a template */
	return amp_cutoff >= PRUNE_CUTOFF && isi_ratio >= good_isi;
}

int
ss_prune_noise(const struct ss_config *cfg, int K, int64_t n_samples,
               struct ss_match_out *sp, int *dropped, double *cut, double *isi,
               int *n_dropped)
{
	int64_t n = sp->n;
	int64_t *st = calloc((size_t) K + 2, sizeof(int64_t));
	int64_t *fill = calloc((size_t) K + 1, sizeof(int64_t));
	int64_t *ord = malloc(sizeof(int64_t) * (size_t) (n + 1));
	uint8_t *keep = malloc((size_t) (n + 1));
	int64_t *tt = malloc(sizeof(int64_t) * (size_t) (n + 1));
	float *aa = malloc(sizeof(float) * (size_t) (n + 1));
	double *work = malloc(sizeof(double) * (size_t) (n + 1));
	double dur = (double) n_samples / cfg->fs;
	int rc = NQ_ENOMEM, nd = 0;

	*n_dropped = 0;
	if (st == NULL || fill == NULL || ord == NULL || keep == NULL ||
	    tt == NULL || aa == NULL || work == NULL)
		goto out;
	/* each template's spikes less the duplicates ss_post drops next, in
	 * time order */
	if ((rc = ss_post_dedup(cfg, K, sp, ord, keep)) != 0)
		goto out;
	for (int64_t i = 0; i < n; i++)
		st[sp->k[i] + 1] += keep[i];
	for (int k = 0; k < K; k++)
		st[k + 1] += st[k];
	for (int64_t j = 0; j < n; j++) {
		int64_t i = ord[j];
		if (!keep[i])
			continue;
		int k = sp->k[i];
		int64_t w = st[k] + fill[k]++;
		tt[w] = sp->t[i];
		aa[w] = sp->a[i];
	}
	for (int k = 0; k < K; k++) {
		int64_t m = st[k + 1] - st[k], nv;
		dropped[k] = 0;
		cut[k] = isi[k] = NAN;
		if (m == 0)
			continue;
		cut[k] = ss_q_amplitude_cutoff(aa + st[k], m, 100, 3, 5, work);
		isi[k] = ss_q_isi_violations(tt + st[k], m, dur,
		                             cfg->isi_ms * 1e-3, 0, cfg->fs,
		                             &nv);
		dropped[k] = ss_prune_is_noise(cut[k], isi[k], cfg->good_isi);
		nd += dropped[k];
	}
	if (nd > 0) {
		int64_t w = 0;
		for (int64_t i = 0; i < n; i++) {
			if (dropped[sp->k[i]])
				continue;
			sp->t[w] = sp->t[i];
			sp->k[w] = sp->k[i];
			sp->a[w] = sp->a[i];
			w++;
		}
		sp->n = w;
	}
	*n_dropped = nd;
	rc = 0;
out:
	free(st);
	free(fill);
	free(ord);
	free(keep);
	free(tt);
	free(aa);
	free(work);
	return rc;
}
