/*
 * ss_drift.h — rigid drift correction (Kilosort 2.5's "datashift", rigid):
 * the probe moves along its depth axis over minutes; every batch gets one
 * depth shift, estimated by registering per-batch histograms of spike depth
 * × amplitude to their common mean, and the batch is resampled at the
 * shifted channel positions (kriging), folded into the whitening matrix.
 */
#ifndef SS_DRIFT_H
#define SS_DRIFT_H

#include <stdint.h>

#include "ss.h"

#define SS_DRIFT_NAMP 20 /* log-amplitude bins */

/* Per-batch histograms of spike depth × log amplitude. */
struct ss_drift_hist {
	int nb;     /* batches */
	int ndepth; /* depth bins of bin_um, from y0 */
	double y0, bin_um;
	float *h;     /* nb × ndepth × SS_DRIFT_NAMP, batch-major */
	float *hodd;  /* the same of every other spike (the noise estimate) */
	int32_t *nbr; /* each channel's nbr_nc nearest (the snippets' order) */
	int nbr_nc;
};

/* Bins covering the probe's depth extent ± margin. 0 or NQ_ENOMEM. */
int ss_drift_hist_init(struct ss_drift_hist *d, const struct ss_probe *p,
                       int nb, double bin_um);
void ss_drift_hist_free(struct ss_drift_hist *d);

/*
 * Adds batch b's detected spikes (snippets of ss_detect_batch: nc nearest
 * channels of the peak channel, trough at nt0min): depth = centre of mass
 * of the squared trough amplitudes over those channels, amplitude = the
 * peak channel's trough (whitened σ units); each spike is spread along
 * depth by a 10 µm Gaussian, and spikes of the lowest amplitude bin are
 * left out (see ss_drift.c).
 */
void ss_drift_hist_add(struct ss_drift_hist *d, int b, const struct ss_probe *p,
                       const struct ss_spikes *sp, int nt0min);

/*
 * Registers every batch's histogram to their iteratively refined mean over
 * integer bin shifts within ±max_shift_um (sub-bin by a parabola through
 * the correlation peak), smooths the shifts over batches (Gaussian, sigma
 * in batches; 0 = none) and centres them on their median.
 * shift_um[b]: the depth by which batch b's content sits higher than the
 * reference (a unit at depth y there appears at y + shift).
 */
int ss_drift_estimate(const struct ss_drift_hist *d, double max_shift_um,
                      double smooth_batches, float *shift_um);

/*
 * Non-rigid (Kilosort 2.5's blocks): every batch registered to the rigid
 * registration's template on each of nblk depth blocks (equal stretches of
 * the histogram's depth, each widened by half a block on both sides), the
 * correlations smoothed across blocks (Gaussian, σ half a block), each
 * block's peak, smoothed over batches and centred on the block's median.
 * shift_um: nb × nblk (batch-major), blk_y: the blocks' centre depths.
 * 0 or NQ_ENOMEM.
 */
int ss_drift_estimate_blocks(const struct ss_drift_hist *d, double max_shift_um,
                             double smooth_batches, int nblk, float *shift_um,
                             float *blk_y);

/* Each channel's shift (C) from one batch's block shifts: linear between
 * block centres, constant beyond the outer ones. */
void ss_drift_channel_shifts(const struct ss_probe *p, int nblk,
                             const float *blk_y, const float *shift_b,
                             double *shift_c);

/*
 * The noise of ss_drift_estimate's shifts (σ, µm): the same registration on
 * each half of the spikes (alternate spikes of each batch) separately; the
 * halves' estimates differ by noise alone, so σ of the whole estimate is
 * the spread (1.4826 MAD) of their difference / 2. half_diff_um (nb, or
 * NULL): each batch's |difference| between the halves. 0 or NQ_ENOMEM.
 */
int ss_drift_noise(const struct ss_drift_hist *d, double max_shift_um,
                   double smooth_batches, float *half_diff_um,
                   double *sigma_um);

/*
 * Kriging (Gaussian kernel of sigma_um between channel positions; zero
 * across shanks): Kinv = (K(source, source) + 1e-2 I)⁻¹, once per probe,
 * factorized and inverted on the backend kb (float64).
 * 0, NQ_ENOMEM, NQ_EBADDATA (kernel matrix not positive definite) or the
 * backend's error.
 */
struct ss_krig {
	int C;
	double sigma_um;
	double *Kinv; /* C × C */
};

int ss_krig_init(struct ss_krig *k, const struct kern_backend *kb,
                 const struct ss_probe *p, double sigma_um);
void ss_krig_free(struct ss_krig *k);

/*
 * A (C × C, column-major, y = A x): the data at the channel positions moved
 * along depth, each by its own shift (C of them; equal for a rigid shift),
 * (x_c, y_c + shift_c), from the channels' values:
 * A = K(target, source) · Kinv. Entries below 1e-4 of their row's largest
 * are zeroed, so A stays banded like the local whitening. 0 or NQ_ENOMEM.
 */
int ss_krig_matrix(const struct ss_krig *k, const struct ss_probe *p,
                   const double *shift_um, float *A);

/*
 * The whitening matrix of batch b: W = M · A(shift) (both C × C column-
 * major and sparse), computed into W: the filtered data are resampled at
 * the moved positions, then whitened. Not A · M: the whitening sharpens a
 * footprint (it flattens the noise's spatial correlation), and a sharp
 * footprint does not survive interpolation from 15 µm rows — resampled
 * after the whitening, a unit moved ±20 µm correlated 0.95–0.96 with itself
 * unmoved on an NP2 layout (0.998–1.0 resampled first), enough for the
 * sort to split it by the drift's phase (issue 16, np2drift128). A: C × C
 * scratch. 0 or NQ_ENOMEM.
 */
int ss_drift_batch_matrix(const struct ss_krig *k, const struct ss_probe *p,
                          const float *M, const double *shift_um, float *A,
                          float *W);

#endif
