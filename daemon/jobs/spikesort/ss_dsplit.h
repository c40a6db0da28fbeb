/*
 * ss_dsplit.h — units split by drift: one neuron's spikes matched by two
 * templates, each where the drift puts the neuron (a residual motion of a
 * few µm after the correction, or a unit at the probe's end that loses
 * channels as it moves). Their firing is complementary in the drift's
 * position: where one fires, the other does not. Two neurons fire
 * whatever the position, so each keeps its share of the pair's spikes.
 */
#ifndef SS_DSPLIT_H
#define SS_DSPLIT_H

#include <stdint.h>

#define SS_DSPLIT_NG 3 /* drift position groups: low, middle, high third */

/*
 * grp (nb): each batch's group by its mean shift over the nblk blocks
 * (drift_um: nb × nblk), the batches in thirds by that value. Returns 0
 * when no batch was shifted (no drift corrected: no groups), else 1.
 */
int ss_dsplit_groups(const float *drift_um, int64_t nb, int nblk, int *grp);

/*
 * Is the pair of sorted spike trains a and b (sample times, batch samples
 * each, grp the batches' groups) one unit split by drift? The counts of a
 * and b per group, tested for one share of a throughout (χ² of the 2 × 3
 * table, df 2: p = exp(−χ²/2)): split when p < SS_DSPLIT_P and the share
 * of a differs by at least SS_DSPLIT_RANGE between two groups of 5 or more
 * spikes. *chi2 and *range: the statistics (for the log). 1 split, 0 not.
 */
#define SS_DSPLIT_P     1e-6
#define SS_DSPLIT_RANGE 0.3
int ss_dsplit_check(const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
                    int64_t batch, const int *grp, int64_t nbatch, double *chi2,
                    double *range);

#endif
