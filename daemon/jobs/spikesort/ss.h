/*
 * ss.h — private interface of the spikesort job (Kilosort-style sorting).
 *
 * Data layout everywhere: a batch is float32, column-major C × T (a sample's
 * channels contiguous, like the int16 file), so "columns" are samples and a
 * time range of a batch is one contiguous block.  Templates are C × nt
 * column-major too (W[c + C*tau]), trough at sample nt0min.
 */
#ifndef SS_H
#define SS_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"

/* ---- probe: the connected channels, in the order the sorter uses */
struct ss_probe {
	int n;    /* connected channels */
	int *row; /* 0-based row of each channel in the binary */
	float *x; /* µm */
	float *y;
	int *shank;
};

void ss_probe_free(struct ss_probe *p);
/* Linear probe: rows 0..n-1, x = 0, y = pitch * i. */
int ss_probe_linear(struct ss_probe *p, int n, double pitch);
/* Kilosort chanMap JSON or probeinterface JSON; n_rows = channels in the
 * file (every row must be < n_rows). 0 or NQ_EBADPARAM/NQ_EIO with msg. */
int ss_probe_load(struct ss_probe *p, const char *path, int n_rows, char *msg,
                  size_t msglen);
/* The same from an open fd (taken over: closed); path names it in msg. */
int ss_probe_load_fd(struct ss_probe *p, int fd, const char *path, int n_rows,
                     char *msg, size_t msglen);
int ss_probe_parse(struct ss_probe *p, const char *text, size_t len, int n_rows,
                   char *msg, size_t msglen);
/* idx[0..k) = the k channels nearest channel c (c first), ties by index. */
void ss_probe_nearest(const struct ss_probe *p, int c, int k, int *idx);
/* Every channel's k nearest (ss_probe_nearest), C × k in nbr; NQ_ENOMEM. */
int ss_probe_neighbours(const struct ss_probe *p, int k, int32_t *nbr);

/* ---- SpikeGLX .meta beside a .bin: imSampRate, nSavedChans.
 * 0 when read (fields left at 0 when absent), 1 when there is no .meta. */
int ss_meta_read(const char *bin_path, double *fs, int *n_chan);

/* ---- recording source: a file read per batch with pread, or memory */
struct ss_source {
	int fd;             /* -1 for memory */
	const int16_t *mem; /* samples × n_rows when fd < 0 */
	int n_rows;         /* channels per sample in the binary */
	int64_t n_samples;
	int16_t *tmp; /* pread scratch */
	size_t tmp_cap;
};

int ss_source_open_file(struct ss_source *s, const char *path, int n_rows,
                        char *msg, size_t msglen);
/* The same from an open fd (taken over: closed by ss_source_close, or on
 * an error); path names it in msg. */
int ss_source_open_fd(struct ss_source *s, int fd, const char *path, int n_rows,
                      char *msg, size_t msglen);
void ss_source_open_mem(struct ss_source *s, const int16_t *data,
                        int64_t n_samples, int n_rows);
void ss_source_close(struct ss_source *s);
/* out (C × n, float) = the probe's channels for samples [t0, t0+n); samples
 * outside the recording are odd reflections about its first/last sample. */
int ss_source_read(struct ss_source *s, const struct ss_probe *p, int64_t t0,
                   int64_t n, float *out);

/* ---- filtering (plain C) */
struct ss_filter {
	/* 3rd-order Butterworth high-pass as a first-order and a second-order
	 * section (b, a normalised with a0 = 1). */
	double b1[2], a1[2];
	double b2[3], a2[3];
};

int ss_filter_design(struct ss_filter *f, double fs, double fc);
/* The sections as kern.h filter_car's h_sos (10 doubles). */
void ss_filter_sos(const struct ss_filter *f, double *sos);
/* Zero-phase (forward-backward) high-pass of every channel of X (C × T);
 * each pass starts in the steady state of its first sample, so an offset
 * gives no transient. work: 3 C doubles. */
void ss_filter_filtfilt_batch(const struct ss_filter *f, float *X, int C,
                              int64_t T, double *work);
/* Per-channel mean removal, median common reference, high-pass, in place on
 * X (C × T), on the host's threads: 0, or NQ_ENOMEM (X is then
 * unchanged). */
int ss_preprocess(const struct ss_filter *f, float *X, int C, int64_t T,
                  int car);

/* ---- configuration and results */
struct ss_config {
	double fs;
	int64_t batch; /* samples per batch (core) */
	int nt;        /* template length (61) */
	int nt0min;    /* trough position in a template (20) */
	int pad;       /* matching pad each side (= nt) */
	int fpad;      /* extra filter pad each side */
	double hp_hz;
	int car;
	int whiten_nrange; /* 32 */
	int whiten_every;  /* use every k-th batch for the covariance (25) */
	int whiten_noise;  /* its covariance: the noise's (ss_noise_mask) */
	int th_own;        /* per-template th_match in its own noise */
	double th_detect;  /* threshold crossing, whitened σ units (4) */
	double th_resid;   /* residual detection (ss_resid.c, 6; 0: off) */
	int prune_noise;   /* noise templates dropped (ss_prune.c) */
	double th_match;   /* matching threshold on the projection (6) */
	double lam;        /* amplitude prior weight (Kilosort 2's lam, 10) */
	int nc_feat;       /* channels for features (10) */
	int npc;           /* temporal PCs per channel (3) */
	int rank;          /* template rank (3) */
	double tmpl_radius_um; /* template window radius (150; ≤ 0: all) */
	int max_templates;
	int learn_batches; /* batches used to detect and learn */
	int learn_iters;
	int max_peels;
	double merge_corr;       /* 0.9, with a refractory cross-correlogram */
	double merge_corr_shape; /* 0.97: merged on shape alone */
	double dup_ms;           /* 0.25 */
	/* cross-unit duplicates (ss_post): a unit's spikes within xdup_ms
	 * of a bigger unit's spikes on shared channels are dropped when
	 * its train is locked to that unit's (0.5; 0: off) */
	double xdup_ms;
	double refrac_ms;  /* 1.0 */
	double good_ratio; /* 0.2: the merge's refractory dip */
	/* quality metrics (ss_quality.h) and the good/mua label: good when
	 * isi_violations_ratio < good_isi, presence_ratio ≥ good_presence,
	 * amplitude_cutoff ≤ good_amp_cutoff and snr ≥ good_snr (a metric
	 * that is NaN is not held against a unit) */
	double isi_ms;         /* ISI violation threshold (1.5) */
	double presence_bin_s; /* presence bins (0: duration/20 in [10, 60]) */
	double good_isi;
	double good_presence;
	double good_amp_cutoff;
	double good_snr;
	int min_spikes;      /* a template needs this many spikes in learning */
	double split_dprime; /* cluster split threshold */
	uint64_t seed;
	uint64_t cache_bytes;  /* host memory for cached learning batches */
	int drift;             /* rigid drift correction (ss_drift.h) */
	double drift_bin_um;   /* depth histogram bin (5) */
	double drift_max_um;   /* largest shift searched (50) */
	double drift_sigma_um; /* kriging kernel (20) */
	double drift_smooth;   /* Gaussian smoothing over batches of the
	                        * estimate that decides which batches move
	                        * (1; they move by the unsmoothed one) */
	int drift_blocks;     /* depth blocks, non-rigid (1 = rigid, default) */
	int drift_segs;       /* resampled pieces per batch, each at its time's
	                       * shift (linear between batch centres; 4) */
	const char *ckpt_dir; /* NULL: no checkpoints */
};

void ss_config_defaults(struct ss_config *c);

struct ss_hooks {
	void *u;
	void (*progress)(void *u, double frac, const char *stage);
	int (*canceled)(void *u);
	void (*log)(void *u, const char *line);
};

/* One merge of ss_post: clusters a < b (their template ids at the time;
 * the merged unit is a), their templates' similarity, and the union's
 * cross-correlogram: nc spikes within refrac_ms where independent trains
 * put `expect`, ratio = nc / expect (-1: no baseline). */
struct ss_merge {
	int a, b;
	float similarity, ratio, expect;
	int64_t nc;
	int by_shape; /* similarity ≥ merge_corr_shape: timing not needed */
	int by_drift; /* split by drift (ss_dsplit.h): its χ² and share range */
	float drift_chi2, drift_range;
};

struct ss_result {
	int C, nt, K;
	int64_t n_samples;
	int64_t n_spikes;
	int64_t *times; /* trough sample, ascending */
	int32_t *templ;
	int32_t *clust;
	float *amps;
	float *templates; /* K × nt × C (phy order, C fastest) */
	float *wmat; /* C × C row-major, phy convention (y_row = x_row W) */
	float *wmat_inv;
	float *similar;  /* K × K */
	int *good;       /* per cluster id 0..K-1 (ss_quality_finish) */
	float *contam;   /* per cluster, percent */
	float *amp_mean; /* per cluster */
	int64_t *counts; /* per cluster */
	int n_good, n_units;
	double t_pre, t_detect, t_match, t_post;
	float *drift_um;       /* n_drift batches of `drift_batch` samples ×
	                          n_drift_blocks depth blocks; NULL: off */
	float *drift_block_um; /* the blocks' centre depths */
	int64_t n_drift, drift_batch;
	int n_drift_blocks;
	double t_drift;
	struct ss_quality *quality; /* ss_quality.h; NULL until measured */
	/* host↔device bytes (kern traffic) of the whole sort (and of the
	 * features pass, added by ss_traffic_add_since) and of its matching
	 * pass, and the modelled device bytes of the batch path
	 * (ss_batch_device_bytes) */
	uint64_t xfer_h2d, xfer_d2h, xfer_match_h2d, xfer_match_d2h;
	uint64_t dev_batch_bytes;
	struct ss_merge *merges; /* ss_post's merges, in order */
	int n_merges;
};

void ss_result_free(struct ss_result *r);

/* The whole pipeline. 0 or an nq_err code with msg. */
int ss_sort(const struct ss_config *cfg, const struct kern_backend *kb,
            struct ss_source *src, const struct ss_probe *probe,
            const struct ss_hooks *hooks, struct ss_result *res, char *msg,
            size_t msglen);

/* ---- stages (used by ss_sort and the unit tests) */
/* Local ZCA: M (C × C column-major) such that y = M x. cov is C × C. */
int ss_whiten_from_cov(const struct kern_backend *kb, const double *cov,
                       const struct ss_probe *p, int nrange, float *M);
/* Noise-only covariance (ss_noise.c): zero, in X (C × T, a sample's
 * channels contiguous), each channel's samples within [t - before,
 * t + after] of every sample t where it or one of its nm nearest channels
 * lies beyond k σ (σ = that channel's MAD / 0.6745 in X); kept[c] += the
 * samples of channel c left. 0 or NQ_ENOMEM. */
int ss_noise_mask(const struct ss_probe *p, float *X, int64_t T, double k,
                  int nm, int before, int after, int64_t *kept);
/* The median of v[0..n) (n ≥ 1), reordering v (quickselect). */
float ss_median_inplace(float *v, int64_t n);
/* A device buffer that grows on demand (kern alloc). */
struct ss_kbuf {
	void *p;
	size_t cap;
};

int ss_kbuf_ensure(const struct kern_backend *kb, struct ss_kbuf *b,
                   size_t bytes);
void ss_kbuf_free(const struct kern_backend *kb, struct ss_kbuf *b);
/* X = M X on a C × T host batch through kern gemm (dM: device C × C). */
int ss_apply_matrix(const struct kern_backend *kb, const void *dM, int C,
                    float *X, int64_t T, struct ss_kbuf *dx,
                    struct ss_kbuf *dy);
/* A block of rows [r0, r1) of a sparse C × C matrix whose nonzeros lie in
 * columns [c0, c1) (local whitening is banded when channels are ordered
 * by position). */
struct ss_band {
	int r0, r1, c0, c1;
};

/* Blocks of `rows` rows of M (C × C column-major); returns their count
 * (≤ C / rows + 1 entries of b). */
int ss_band_blocks(const float *M, int C, int rows, struct ss_band *b);
/* ss_apply_matrix with one gemm per band (each over its column range). On
 * the cpu backend (dM is host memory) X is whitened in place on the host
 * instead, in 16-row blocks of M's nonzero columns (b, dx, dy unused). */
int ss_apply_banded(const struct kern_backend *kb, const void *dM, int C,
                    const struct ss_band *b, int nb, float *X, int64_t T,
                    struct ss_kbuf *dx, struct ss_kbuf *dy);
/* The banded product on the device: dY = M dX (C × T each, dX and dY
 * device buffers of kb that must not overlap), one gemm per band. */
int ss_apply_banded_dev(const struct kern_backend *kb, const void *dM, int C,
                        const struct ss_band *b, int nb, const float *dX,
                        float *dY, int64_t T);
/* Inverse of an n × n matrix (Gauss-Jordan, partial pivoting). 0, or
 * NQ_EBADDATA when singular. */
int ss_invert(const float *A, int n, float *Ainv);

/* Detected snippets for clustering. */
struct ss_spikes {
	int64_t n, cap;
	int nc, nt;
	int64_t *t;  /* trough sample (absolute) */
	int *chan;   /* peak channel */
	float *wave; /* n × (nc × nt): channels of ss_probe_nearest(chan) */
};

void ss_spikes_free(struct ss_spikes *s);
/* [*lo, *hi) of a batch of T samples cut to the troughs whose window
 * (nt0min before, nt − nt0min from the trough) lies in the batch. */
void ss_trough_range(const struct ss_config *cfg, int64_t T, int64_t *lo,
                     int64_t *hi);
/* Threshold crossings that are minima over ±nt0min samples and the nc_feat
 * nearest channels; keeps troughs in [lo, hi) of the batch (batch-relative
 * sample index + t_abs0 = absolute). per_chan_cap bounds memory. Y is a
 * buffer of kb (C × T): the peaks are found there (kern peaks_above) and
 * only their list and snippets (kern snippets) come back. */
int ss_detect_batch(const struct ss_config *cfg, const struct kern_backend *kb,
                    const struct ss_probe *p, const float *Y, int64_t T,
                    int64_t lo, int64_t hi, int64_t t_abs0, int per_chan_cap,
                    int64_t *chan_count, struct ss_spikes *out);
/* One more spike in s (grown as needed); *wave: its nc × nt snippet. */
int ss_spikes_push(struct ss_spikes *s, int64_t t, int c, float **wave);
/* Second detection on a learning pass's residual R (host, C × T): the
 * temporal matched filter h (nh taps, trough at h0; ss_resid_filter) on
 * every channel, in each channel's robust σ, pooled with its nearest
 * channel as sqrt(z_c² + z_n²) (z_c > 0); local maxima over ±nt0min and
 * the nc_feat nearest channels at or above th, troughs in [lo, hi), are
 * pushed to out with their snippets of R, as ss_detect_batch's. */
/* A peak within nt0min / 2 samples of one of the pass's nm spikes (mt:
 * batch-relative trough, increasing; mc: its template's peak channel)
 * whose peak channel has it among its nc_feat nearest is that spike's
 * leftover and is skipped. */
int ss_resid_detect(const struct ss_config *cfg, const struct ss_probe *p,
                    const float *R, int64_t T, int64_t lo, int64_t hi,
                    int64_t t_abs0, const float *h, int nh, int h0, double th,
                    const int64_t *mt, const int *mc, int64_t nm,
                    int per_chan_cap, int64_t *chan_count,
                    struct ss_spikes *out);
/* h (nh taps, trough at h0): the mean of the K templates' peak-channel
 * waveforms (W: K × C × nt, column-major, trough at nt0min), each of unit
 * norm, from nt0min − h0 on; unit norm. NQ_EBADPARAM when K is 0. */
int ss_resid_filter(const float *W, int K, int C, int nt, int nt0min, int nh,
                    int h0, float *h);
/* The pooled score of one sample, squared: zc² + zn² when zc > 0, else
 * 0 (compared with th² — the same peaks as the score, without a root). */
float ss_resid_score2(float zc, float zn);
/* Cluster the snippets into initial templates: W (K × C × nt, unit norm). */
int ss_cluster(const struct ss_config *cfg, const struct kern_backend *kb,
               const struct ss_probe *p, const struct ss_spikes *sp, float **W,
               int *K);

/* Low-rank templates and matching */
struct ss_templates {
	int K, C, nt, rank;
	float *W;  /* K × (C × nt), unit Frobenius norm */
	float *U;  /* C × (rank K), column r + rank k: U_k s_r */
	float *V;  /* K × (nt × rank) */
	float *mu; /* K typical amplitudes for the prior (0: none) */
	/* Channel positions (µm, not owned; NULL: no geometry) and the
	 * radius around a template's peak channel that its window may
	 * span (ss_templates_lowrank; ≤ 0: unlimited). */
	const float *px, *py;
	double radius;
};

void ss_templates_free(struct ss_templates *t);
/* Rank-r projection + renormalisation of every W; fills U, V. Channels
 * outside the window where U carries ≥ 1 % of the peak channel's energy
 * are zeroed (W, U alike), so matching works on each template's window. */
int ss_templates_lowrank(const struct kern_backend *kb, struct ss_templates *t);
/* Per-channel norms of K templates (cn: K × C). */
void ss_template_chan_norms(const float *W, int K, int C, int nt, float *cn);
/* ss_template_corr from precomputed channel norms: 0 when the per-channel
 * Cauchy–Schwarz bound is below floor, else the exact value over the
 * channels both templates use (error < 1e-4). */
double ss_template_corr_sparse(const float *A, const float *B, const float *ca,
                               const float *cb, int C, int nt, int maxlag,
                               double floor);
/* th_own (ss_thresh.c): th2[k], template k's squared matching gain
 * threshold from sig[k], the spread of its score against the noise, and
 * mu[k], its typical amplitude (NULL: none): th_lo sig[k] when th_match
 * sig[k] <= mu[k] < 2 th_match sig[k] and that is lower than th_match,
 * else th_match. */
void ss_match_thresholds(const float *sig, const float *mu, int K,
                         double th_match, double th_lo, float *th2);
/* Max normalised cross-correlation over lags |d| ≤ maxlag. */
double ss_template_corr(const float *A, const float *B, int C, int nt,
                        int maxlag);

struct ss_match_out {
	int64_t n, cap;
	int64_t *t; /* trough, absolute */
	int32_t *k;
	float *a;
};

void ss_match_out_free(struct ss_match_out *o);
int ss_match_out_push(struct ss_match_out *o, int64_t t, int k, float a);

struct ss_matcher; /* scratch for one batch size */
int ss_matcher_new(const struct kern_backend *kb, const struct ss_templates *t,
                   int64_t Tmax, struct ss_matcher **out);
void ss_matcher_free(struct ss_matcher *m);
/* ss_match_batch on a batch that is already on the device (a buffer of
 * the matcher's backend, C × T, left as it is): the residual stays on the
 * device, so only spike lists and scores move (acc must be NULL). */
int ss_match_batch_dev(struct ss_matcher *m, const struct ss_config *cfg,
                       const float *dY, int64_t T, int64_t lo, int64_t hi,
                       int64_t t_abs0, struct ss_match_out *out);
/* Peel spikes off Y (C × T, host); the residual goes to R (may be Y; NULL:
 * not wanted, except with acc on a device backend, which fetches it there).
 * Spikes whose trough lies in [lo, hi) are appended to out (absolute times
 * t_abs0 + i). When acc != NULL (K × C × nt) and cnt (K), the clean
 * waveform of each kept spike (residual + its own template) is added for
 * template learning. */
int ss_match_batch(struct ss_matcher *m, const struct ss_config *cfg,
                   const float *Y, float *R, int64_t T, int64_t lo, int64_t hi,
                   int64_t t_abs0, struct ss_match_out *out, double *acc,
                   int64_t *cnt);

/* Post-processing on the final spikes (sorted by time inside). */
/* Noise at the threshold (ss_prune.c): amplitude cutoff ≥ 0.45 and ISI
 * violations ratio ≥ good_isi (NaN: no). */
int ss_prune_is_noise(double amp_cutoff, double isi_ratio, double good_isi);
/* Each of the K templates' amplitude cutoff (cut) and ISI violations ratio
 * (isi) over its spikes in sp (NaN: none, or too few); the spikes of those
 * that are noise (dropped[k] = 1; *n_dropped of them) leave sp, the others
 * keep their order. */
int ss_prune_noise(const struct ss_config *cfg, int K, int64_t n_samples,
                   struct ss_match_out *sp, int *dropped, double *cut,
                   double *isi, int *n_dropped);
int ss_post(const struct ss_config *cfg, const struct ss_templates *t,
            struct ss_match_out *sp, struct ss_result *res);
/* ss_post's within-unit duplicates: ord (sp->n) gets sp's spikes in time
 * order (then template, then index), and keep[i] = 0 for a spike within
 * dup_ms of its template's last kept spike, of which the larger amplitude
 * stays (keep[i] = 1 for the rest). K: the number of templates. */
int ss_post_dedup(const struct ss_config *cfg, int K,
                  const struct ss_match_out *sp, int64_t *ord, uint8_t *keep);

/* The cross-correlogram of two sorted trains: nc pairs within ±ref (lag
 * in samples, exclusive) and the count that independent trains would put
 * there, from its b0..b1 baseline. */
void ss_ccg_counts(const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
                   int64_t ref, int64_t b0, int64_t b1, int64_t *nc,
                   double *expect);
/* Cross-correlogram rate within ±ref over its 10–50 ms baseline (lags in
 * samples b0..b1) of two sorted trains; -1 when the baseline is empty. */
double ss_ccg_ratio(const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
                    int64_t ref, int64_t b0, int64_t b1);

/* phy folder */
int ss_phy_write(const char *dir, const struct ss_result *r,
                 const struct ss_probe *p, const char *dat_path, int n_rows,
                 double fs, char *msg, size_t msglen);
/* The same into an open output dir (ss_outdir_open, or userpath_open in
 * the worker): every file under a unique O_EXCL | O_NOFOLLOW temporary
 * name, renamed over its final name, with exactly mode; dir names the
 * folder in msg. */
int ss_phy_writeat(int dirfd, unsigned mode, const char *dir,
                   const struct ss_result *r, const struct ss_probe *p,
                   const char *dat_path, int n_rows, double fs, char *msg,
                   size_t msglen);
/* mkdir -p dir (0777 & ~umask) and open it for the *at writers. */
int ss_outdir_open(const char *dir, int *dirfd, char *msg, size_t msglen);
/* head + body → name in dirfd, atomically (see ss_phy_writeat). */
int ss_atomic_writeat(int dirfd, const char *name, unsigned mode,
                      const void *head, size_t hlen, const void *body,
                      size_t blen);
/* Minimal .npy v1.0 writer (descr "<i8", "<i4", "<f4"), atomic. */
int ss_npy_write(const char *path, const char *descr, int ndim,
                 const int64_t *shape, const void *data, size_t itemsize);
int ss_npy_writeat(int dirfd, const char *name, unsigned mode,
                   const char *descr, int ndim, const int64_t *shape,
                   const void *data, size_t itemsize);

/* checkpoints (raw little-endian blobs with a magic and a config key) */
int ss_ckpt_save(const char *dir, const char *name, uint64_t key,
                 const void *data, size_t bytes);
/* 0 when loaded (bytes must match), 1 when absent or stale. */
int ss_ckpt_load(const char *dir, const char *name, uint64_t key, void *data,
                 size_t bytes);
/* Variable-size blob: *data malloc'd. 0 loaded, 1 absent/stale. */
int ss_ckpt_load_var(const char *dir, const char *name, uint64_t key,
                     void **data, size_t *bytes);

#endif
