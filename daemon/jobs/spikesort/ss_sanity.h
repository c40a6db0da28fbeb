/*
 * ss_sanity.h — input sanity of a spikesort job: what the probe and the data
 * say about `n_channels`. A wrong channel count still sorts (the file's size
 * is a multiple of either count), into nonsense; these checks only warn, in
 * the result's `warnings` and the job log, so the user can look.
 */
#ifndef SS_SANITY_H
#define SS_SANITY_H

#include <stdint.h>

#include "ss.h"

#define SS_WARN_MAX 4
#define SS_WARN_LEN 384

struct ss_warnings {
	int n;
	char text[SS_WARN_MAX][SS_WARN_LEN];
};

/* Rows of the file that no connected channel of the probe reads. */
void ss_sanity_probe(const struct ss_probe *p, int n_rows,
                     struct ss_warnings *w);

/* What the data's time structure says about the row count. */
struct ss_layout {
	int factor; /* 0: nothing found; else j (2..4) */
	int fewer; /* 1: the file looks like n_rows / j channels, 0: j·n_rows */
	int hits;  /* columns with the evidence */
	int tested;   /* columns tested */
	double score; /* median over the columns of the evidence (correlation)
	               */
};

/* The test on X, n_rows × T (a sample's rows contiguous), high-passed, for
 * j = 2..4: were the file n_rows / j channels, each row of X would hold j
 * consecutive samples, so column c and column c + n_rows / j correlate at
 * lag 0 as one channel does with its next sample, more than column c does
 * with its own next row (j samples apart); were it j·n_rows channels, a
 * column would hold one channel every j rows and correlate more with its
 * j-th next row than with its next. Found when at least 90 % of ≥ 4 columns
 * show the difference, and the correlation itself, beyond 4/√T (several
 * standard errors); the largest median difference wins (the smaller j on a
 * tie: a period of 2 is one of 4), j·n_rows first (its alternation between
 * channels mimics the other). White noise shows none: nothing is claimed. */
void ss_layout_guess(const float *X, int n_rows, int64_t T,
                     struct ss_layout *g);

/* ss_layout_guess on the first second or so of the recording (every row,
 * high-passed at hp_hz), with its warning. 0 or NQ_ENOMEM/NQ_EIO. */
int ss_sanity_layout(struct ss_source *src, double fs, double hp_hz,
                     struct ss_warnings *w);

#endif
