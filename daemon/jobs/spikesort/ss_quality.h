/*
 * ss_quality.h — per-unit quality metrics and the good/mua label.
 *
 * Definitions follow SpikeInterface's quality_metrics (0.105):
 *   num_spikes, firing_rate     spikes, spikes / recording duration (Hz)
 *   presence_ratio              share of the whole presence_bin_s bins of the
 *                               recording in which the unit fires at least
 *                               once (NaN when shorter than one bin; bins
 *                               of duration / 20 within [10, 60] s when
 *                               presence_bin_s is 0, the default)
 *   isi_violations_ratio/_count Hill et al.'s contamination estimate from the
 *                               inter-spike intervals < isi_threshold_ms
 *   amplitude_cutoff            share of spikes missing below the detection
 *                               threshold, from the template-fit amplitudes'
 *                               histogram (100 bins, Gaussian σ 3 bins; NaN
 *                               under 500 spikes)
 *   snr                         |extremum of the mean filtered waveform on
 *                               the main channel| / that channel's noise
 *                               (MAD / 0.6745 of the filtered recording)
 *   amplitude_median            median of each spike's filtered value at its
 *                               trough on the main channel (recording units)
 * The spike-train metrics come from the final spikes; snr, amplitude_median
 * and the noise are gathered in the features pass (ss_feat), which reads
 * every batch with spikes anyway: no extra read of the recording.
 */
#ifndef SS_QUALITY_H
#define SS_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#include "ss.h"

/* noise histogram of |x| per channel: 64 bins per octave from 2^-8 */
#define SS_QH_BINS 2048

struct ss_quality {
	int K, C, nt, nt0min;
	/* metrics per cluster id 0..K-1 (NaN where undefined or empty) */
	int64_t *num_spikes;
	double *firing_rate, *presence_ratio, *isi_ratio, *amp_cutoff, *snr;
	double *amp_median;
	int64_t *isi_count;
	int32_t *main_chan; /* main channel per cluster (sorter's order) */
	double *noise;      /* per channel */
	/* gathered in the features pass */
	double *wsum;   /* K × nt: summed filtered waveform on main_chan */
	int64_t *wcnt;  /* K */
	float *peak;    /* n_spikes: filtered value at the trough, main chan */
	uint64_t *hist; /* C × SS_QH_BINS */
	int64_t next;   /* first spike the pass has not reached */
};

void ss_quality_free(struct ss_quality *q);

/* res->quality: allocated, with each cluster's main channel (the most
 * negative sample of its templates brought back to recording units through
 * wmat_inv, weighted by their spikes' amplitudes). 0 or NQ_ENOMEM. */
int ss_quality_begin(const struct ss_config *cfg, struct ss_result *res);

/* One preprocessed (filtered, not whitened) batch: Y is C × T, column 0 is
 * absolute sample base, its core is absolute [lo, hi). Adds the core to the
 * noise histograms and takes the spikes in [lo, hi). */
void ss_quality_batch(struct ss_quality *q, const struct ss_result *res,
                      const float *Y, int64_t T, int64_t base, int64_t lo,
                      int64_t hi);

/* The metrics from the gathered sums and the spikes, then the labels
 * (res->good, res->n_good) from cfg's thresholds. 0 or NQ_ENOMEM. */
int ss_quality_finish(const struct ss_config *cfg, struct ss_result *res);

/* The presence-ratio bin (s): presence_bin_s, or when that is ≤ 0 the
 * recording's duration / 20 within [10 s, SpikeInterface's 60 s] (a unit
 * at 0.5 Hz leaves a 10 s bin empty 0.7 % of the time). */
double ss_quality_presence_bin(const struct ss_config *cfg, double duration_s);

/* Whether a unit with these metrics is "good" under cfg's thresholds
 * (a NaN metric is not held against it). */
int ss_quality_is_good(const struct ss_config *cfg, const struct ss_quality *q,
                       int k);

/* Median over the clusters with spikes of a metric (NaNs left out; NaN
 * when none is left). */
double ss_quality_median(const struct ss_quality *q, const double *v);

/* The labels and metrics into the phy folder (ss_phy.c): cluster_KSLabel
 * and cluster_group rewritten, cluster_<metric>.tsv per metric and
 * cluster_info.tsv with every column, through dirfd as ss_phy_writeat. */
int ss_phy_quality_writeat(int dirfd, unsigned mode, const char *dir,
                           const struct ss_result *r, char *msg, size_t msglen);

/* ---- single metrics (exposed for the unit test) */
/* Presence ratio of a sorted train (samples) over n_samples, bins of bin
 * samples (SpikeInterface's edges: whole bins from 0, the last edge
 * inclusive). NaN when n_samples < bin or the train is empty. */
double ss_q_presence_ratio(const int64_t *t, int64_t n, int64_t n_samples,
                           int64_t bin);
/* ISI violations of a sorted train: *count of intervals < thr samples;
 * returns the ratio (violation rate over 2 n (thr - min_isi) / total rate).
 * NaN when n == 0. */
double ss_q_isi_violations(const int64_t *t, int64_t n, double duration_s,
                           double thr_s, double min_isi_s, double fs,
                           int64_t *count);
/* Amplitude cutoff of n amplitudes (positive; negated when their median is
 * negative). work: n doubles. NaN when n < 5 × nbins. */
double ss_q_amplitude_cutoff(const float *a, int64_t n, int nbins, double sigma,
                             int min_ratio, double *work);
/* Bin of |x| in the noise histogram, and the median of a histogram. */
int ss_q_hist_bin(float x);
double ss_q_hist_median(const uint64_t *h);

#endif
