/*
 * gsn_internal.h — what the gsn_*.c files share (not part of the API).
 *
 * Layout conventions inside the gsn code:
 *  - the input is N×C×T in C order: x(i,c,t) = data[(i*C + c)*T + t];
 *  - device matrices are column-major; "samples" matrices are N × k with
 *    one column per (condition, trial) or per condition;
 *  - host staging is double whatever the precision; device buffers are in
 *    g->dt and converted on the host on the way in and out.
 */
#ifndef GSN_INTERNAL_H
#define GSN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gsn.h"
#include "kern.h"

/* spec §1.2 fixed values */
#define GSN_LEAVEOUT     5
#define GSN_SEED         42u
#define GSN_MAX_ITERS    100
#define GSN_PSD_RIDGE    1e-10
#define GSN_CONVERGE_R   0.999
#define GSN_CONVERGE_ABS 1e-5
#define GSN_SPECTRAL_TOL 1e-12
#define GSN_NLEVELS_DEF  51

/* ---- gsn_split.c: the MATLAB-compatible permutation (spec §2.2) */

/* u[0..n) = numpy RandomState(42).random_sample(n). */
void gsn_mt_uniforms(uint32_t seed, double *u, int64_t n);
/* perm[0..n) = argsort(u) (stable), u as above. 0 or NQ_ENOMEM. */
int gsn_perm(int64_t n, int64_t *perm);
/* round(n/5): held-out count (n/5 never ends in .5). */
int64_t gsn_holdout_count(int64_t n);

/* ---- device helpers (gsn_dev.c) */

struct gsn_dev {
	const struct kern_backend *kb;
	enum kern_dtype dt;
	size_t es; /* element size of dt */
};

int gsn_dalloc(struct gsn_dev *g, int64_t count, void **p);
int gsn_dalloc_dt(struct gsn_dev *g, enum kern_dtype dt, int64_t count,
                  void **p);
void gsn_dfree(struct gsn_dev *g, void **p);
/* Host doubles → device buffer in g->dt. */
int gsn_up(struct gsn_dev *g, void *dst, const double *h, int64_t count);
/* Device buffer in g->dt → host doubles. */
int gsn_down(struct gsn_dev *g, double *h, const void *src, int64_t count);
int gsn_dcopy(struct gsn_dev *g, void *dst, const void *src, int64_t count);
/* Column-major n×n device matrix → C-order host doubles (transposed). */
int gsn_down_matrix(struct gsn_dev *g, double *h, const void *src, int64_t n);

/* Progress slice [f0, f1] of the whole run for one stage. */
struct gsn_stage {
	const struct gsn_progress *prog;
	const char *name;
	double f0, f1;
};

void gsn_stage_report(const struct gsn_stage *st, double within);
/* The part [a, b] (fractions of st) of a stage, same name. */
struct gsn_stage gsn_substage(const struct gsn_stage *st, double a, double b);
/* 0, or NQ_ECANCELED with msg "canceled" once the job is canceled. Checked
 * between steps: a cancel waits for at most one eigendecomposition. */
int gsn_stage_canceled(const struct gsn_stage *st, char *msg, size_t msglen);

/* ---- gsn_nll.c: shrinkage selection (spec §2.3, §3.3, §4.5) */

struct gsn_sel {
	double *nll; /* nlevels, caller-owned */
	int best;    /* index into levels */
	int all_singular;
	enum gsn_singular_rule rule;
};

/* Pick a level for the training covariance c (n×n device, unchanged) and
 * the held-out samples H (n×m device, one column per sample, already
 * centred; overwritten). rank_def: the rank bound of §3.3 says c is
 * singular. */
int gsn_select(struct gsn_dev *g, int64_t n, const void *c, void *H, int64_t m,
               const double *levels, int nlevels, int rank_def,
               enum gsn_nll mode, const struct gsn_stage *st,
               struct gsn_sel *sel, char *msg, size_t msglen);

/* The training covariance as c = s2·S Sᵀ (S n×r device, g->dt, ld n):
 * lets the spectral curve use the r×r Gram when 2r ≤ n. */
struct gsn_samples {
	const void *S;
	int64_t r;
	double s2;
};

/* gsn_select with the training samples of c (sm may be NULL). */
int gsn_select_samples(struct gsn_dev *g, int64_t n, const void *c,
                       const struct gsn_samples *sm, void *H, int64_t m,
                       const double *levels, int nlevels, int rank_def,
                       enum gsn_nll mode, const struct gsn_stage *st,
                       struct gsn_sel *sel, char *msg, size_t msglen);

/* ---- gsn_est.c: the noise (§2.4/§2.10) and data (§2.5) estimators */

/* Whole-trial validity: valid[c*T + t] (1 = no unit NaN), kc[c]. */
struct gsn_valid {
	int64_t c, t;
	unsigned char *valid;
	int64_t *kc;
	int64_t kmin;
	int has_nan;
};

int gsn_valid_init(struct gsn_valid *v, const double *data, int64_t n,
                   int64_t c, int64_t t);
void gsn_valid_fini(struct gsn_valid *v);

/* Noise: pooled per-condition covariance over conditions with k_c >= 2,
 * CV level choice, refit on all (raw, unshrunk) into *c_all (device n×n,
 * allocated) when want_full. Returns NQ_EBADDATA with msg when a split
 * has no usable condition. */
int gsn_noise_est(struct gsn_dev *g, const double *data, int64_t n,
                  const struct gsn_valid *v, const double *levels, int nlevels,
                  enum gsn_nll mode, int want_full, const struct gsn_stage *st,
                  void **c_all, struct gsn_sel *sel, char *msg, size_t msglen);

/* Data: rows = condition means, means[i + c*n] (n × ncond host).
 * mu_all (n) gets the mean of all rows; *c_all the raw unbiased covariance
 * (device n×n, allocated) when want_full. */
int gsn_data_est(struct gsn_dev *g, const double *means, int64_t n,
                 int64_t ncond, const double *levels, int nlevels,
                 enum gsn_nll mode, int want_full, const struct gsn_stage *st,
                 void **c_all, double *mu_all, struct gsn_sel *sel, char *msg,
                 size_t msglen);

/* Condition means over the balanced subset of §2.10 (all trials when
 * even): means[i + c*n]. 0 or NQ_ENOMEM. */
int gsn_balanced_means(const double *data, int64_t n, const struct gsn_valid *v,
                       double *means);

/* ---- gsn_psd.c: projection, biconvex, eigen returns (§2.7–2.9) */

struct gsn_negeig;

struct gsn_work {
	void *tmp;  /* n×n */
	void *w;    /* n */
	void *Z;    /* n × n/2, allocated by the first projection that clips */
	double *hw; /* n host */
	/* float64 runs that return eigvecs_signal: the eigendecomposition
	 * of the last projection of cSb, kept so that the eigen returns need
	 * no second eigh. eig_vecs (n×n device, allocated by the caller)
	 * and eig_vals (n host, ascending, clipped at 0, + eig_shift) are
	 * valid when eig_valid. */
	void *eig_vecs;
	double *eig_vals;
	double eig_shift;
	int eig_want, eig_valid;
	/* the Krylov path's buffers (gsn_negeig.c), made by its first use */
	struct gsn_negeig *ne;
	/* which warm start the next projection may use (gsn_negeig.c keeps
	 * the eigenvectors of the last one of each slot): 0 cSb, 1 cNb, −1
	 * none */
	int ne_slot;
};

int gsn_work_init(struct gsn_dev *g, int64_t n, struct gsn_work *wk);
void gsn_work_fini(struct gsn_dev *g, struct gsn_work *wk);

/* M ← P(M) in place (§2.7). */
int gsn_psd(struct gsn_dev *g, int64_t n, void *M, struct gsn_work *wk,
            char *msg, size_t msglen);

/* ---- gsn_negeig.c: P₊(M) from a few negative eigenpairs (block Lanczos) */

#define GSN_NEGEIG_MIN_N 128
#define GSN_NEGEIG_SLOTS 2

struct gsn_negeig_stats {
	int64_t m;  /* Krylov basis columns when it stopped */
	int64_t k;  /* eigenpairs subtracted (when done) */
	int checks; /* potrf checks of the result */
};

/* M ← M − X Θ Xᵀ over the eigenpairs with θ < −tol (then the caller adds
 * the ridge), when it found them and M + X|Θ|Xᵀ + ridge·I factors: *done =
 * 1; else *done = 0 and M is untouched (wk->tmp is clobbered either way).
 * n < GSN_NEGEIG_MIN_N: *done = 0 at once. prove = 1: M is not known to be
 * indefinite; *done = 1 only when, besides, its lowest Ritz value lies
 * below −(n+1)² tol, where no Cholesky factorization of M can succeed. */
int gsn_negeig_psd(struct gsn_dev *g, int64_t n, void *M, struct gsn_work *wk,
                   int prove, struct gsn_negeig_stats *st, int *done);
/* 1 when the projection slot wk->ne_slot holds the eigenvectors of its
 * last call (it clipped: a warm start). */
int gsn_negeig_warm(const struct gsn_work *wk);
void gsn_negeig_free(struct gsn_dev *g, struct gsn_negeig **ne);
/* Device bytes of its buffers at n (es bytes an element). */
double gsn_negeig_bytes(int64_t n, double es);

struct gsn_bicon {
	const void *cN, *cD;   /* n×n device */
	const void *inv_alpha; /* n×n device (missing mode) or NULL */
	double n_sig;          /* divisor of the signal step (T or n_min) */
	double n_bc;           /* trial count of the weights */
	int64_t ncond;
};

/* cSb, cNb: n×n device outputs; S_old must hold cS on entry (clobbered). */
int gsn_biconvex(struct gsn_dev *g, int64_t n, const struct gsn_bicon *b,
                 enum gsn_biconvex mode, void *S_old, void *cSb, void *cNb,
                 struct gsn_work *wk, const struct gsn_stage *st, int *numiters,
                 char *msg, size_t msglen);

/* eigh of the n×n device matrix M (not modified), descending, sign rule
 * of §2.9; vals (n) and vecs (n×n C order, column i = vector i) host. */
int gsn_eigh_desc(struct gsn_dev *g, int64_t n, const void *M, double *vals,
                  double *vecs, char *msg, size_t msglen);
/* The same output from a host eigendecomposition: V (n×n column-major,
 * column i for asc[i], ascending), reordered and signed into vals/vecs. */
void gsn_eig_desc_host(int64_t n, const double *asc, const double *V,
                       double *vals, double *vecs);

/* ---- gsn_missing.c (§2.11) */

struct gsn_missing_out {
	void *cN, *cD;   /* shrunk, device n×n (allocated) */
	void *inv_alpha; /* device n×n: 1/alpha where alpha > 0, else 0 */
	double lvlN, lvlD;
	double n_eff;
	double *mnS; /* n host, caller-owned */
	struct gsn_sel selN, selD;
	int selN_ran, selD_ran;
};

int gsn_missing_est(struct gsn_dev *g, const double *data, int64_t n, int64_t c,
                    int64_t t, const struct gsn_opts *o, const double *levels,
                    int nlevels, const struct gsn_stage *stN,
                    const struct gsn_stage *stD, struct gsn_missing_out *mo,
                    char *msg, size_t msglen);

/* ---- gsn.c */

/* gsn_run with flags; GSN_FLAG_FORCE_UNEVEN runs the NaN-aware estimator of
 * o->uneven even on complete data (tests: it must reduce to the even path). */
enum { GSN_FLAG_FORCE_UNEVEN = 1 };
int gsn_run_ex(const struct kern_backend *kb, const double *data, int64_t n,
               int64_t c, int64_t t, const struct gsn_opts *o,
               const struct gsn_progress *prog, unsigned flags,
               struct gsn_result *r, char *msg, size_t msglen);

#endif
