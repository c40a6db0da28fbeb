/*
 * ss_thresh.c — th_own: a small template's matching threshold in units of
 * its own projection noise. The whitening, estimated from every sample, is
 * dominated by big units and flattens the directions their footprints
 * span, so a small unit whose footprint lies there comes out a few
 * whitened units tall, about th_match, and most of its spikes are never
 * matched. But the noise along what is left of its footprint is not
 * flattened with it (its score against the noise spreads by sig, measured
 * per template: 0.97 where the big units' is 0.5), so it still stands at
 * about 7 sig: a template whose typical amplitude mu is at least th_match
 * of its own noise but under twice that is matched from th_lo of its own
 * noise (never above th_match); every other keeps th_match. The lower
 * bound keeps templates of noise, whose spikes average under th_match sig
 * once the threshold drops, from being fed while templates are learned.
 */
#include "ss.h"

void
ss_match_thresholds(const float *sig, const float *mu, int K, double th_match,
                    double th_lo, float *th2)
{
	for (int k = 0; k < K; k++) {
		double th = th_match, s = sig[k];
		if (mu != NULL && s > 0 && mu[k] >= th_match * s &&
		    mu[k] < 2 * th_match * s && th_lo * s < th)
			th = th_lo * s;
		th2[k] = (float) (th * th);
	}
}
