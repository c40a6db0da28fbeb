/*
 * gsn.h — perform_gsn (cvnlab/GSN 1.2, numpy path) written once against the
 * kernels interface. See ../shared/specs/gsn.md (in the repo: docs of the
 * gsn job in README and the spec sections cited in the code).
 */
#ifndef GSN_H
#define GSN_H

#include <stddef.h>
#include <stdint.h>

#include "kern.h"

enum gsn_uneven { GSN_UNEVEN_FAST = 0, GSN_UNEVEN_MISSING = 1 };
/* spectral: tridiagonal reduction (default); cholesky: per-level oracle;
 * eigh: the full eigendecomposition path (second oracle). */
enum gsn_nll { GSN_NLL_SPECTRAL = 0, GSN_NLL_CHOLESKY = 1, GSN_NLL_EIGH = 2 };
enum gsn_biconvex { GSN_BICONVEX_LOOP = 0, GSN_BICONVEX_CLOSED = 1 };

/* bits of gsn_opts.returns */
enum {
	GSN_RET_CN = 1 << 0,
	GSN_RET_CS = 1 << 1,
	GSN_RET_CNB = 1 << 2,
	GSN_RET_CSB = 1 << 3,
	GSN_RET_EIG_SIGNAL = 1 << 4,     /* eigvecs_signal + eigvals_signal */
	GSN_RET_EIG_DIFFERENCE = 1 << 5, /* eigvecs/eigvals_difference */
	GSN_RET_DEFAULT = GSN_RET_CN | GSN_RET_CS | GSN_RET_CNB | GSN_RET_CSB
};

struct gsn_opts {
	const double
	        *levels; /* shrink levels in [0,1]; NULL = from wantshrinkage */
	int nlevels;
	int wantshrinkage; /* 1: linspace(0,1,51); 0: {1.0} */
	unsigned returns;  /* GSN_RET_* */
	enum gsn_uneven uneven;
	enum kern_dtype precision;  /* KERN_F64 default */
	enum gsn_nll nll;           /* spectral default; cholesky = oracle */
	enum gsn_biconvex biconvex; /* loop default; closed = oracle */
};

/* Which rule declared the alpha = 1 level singular (spec §3.3). */
enum gsn_singular_rule {
	GSN_SING_NONE = 0,
	GSN_SING_RANK = 1,
	GSN_SING_FACTOR = 2
};

/* GSN 1.2's warnings (warnings.warn there), bits of gsn_result.warnings */
enum {
	GSN_WARN_SINGULAR_N = 1 << 0, /* noise: every level's NLL was NaN */
	GSN_WARN_SINGULAR_D = 1 << 1, /* data: the same */
	GSN_WARN_NTRIALBC = 1 << 2,   /* uneven: ntrialBC < 1, set to 1 */
	GSN_WARN_FALLBACK_N = 1 << 3, /* missing units: noise level 1.0 */
	GSN_WARN_FALLBACK_D = 1 << 4, /* missing units: data level 1.0 */
	GSN_WARN_ALL = (1 << 5) - 1
};

struct gsn_result {
	int64_t n;                   /* units */
	double *mnN, *mnS, *ncsnr;   /* n each (mnN all zero) */
	double *cN, *cS, *cNb, *cSb; /* n×n, C order (symmetric anyway); NULL
	                                when not returned */
	double *eigvals_signal,
	        *eigvecs_signal; /* n, n×n C order: column i is vector i */
	double *eigvals_difference, *eigvecs_difference;
	double shrinklevelN, shrinklevelD;
	int numiters;
	enum gsn_singular_rule singularN, singularD;
	int all_singularN, all_singularD; /* the "All covariance matrices were
	                                     singular." warning */
	double *nllN, *nllD; /* nlevels each (NaN where singular) */
	int nlevels;
	double ntrial_used; /* T, or n_min for uneven data */
	unsigned warnings;  /* GSN_WARN_* */
	/* wall seconds of the stages (noise level, data level, biconvex,
	 * eigen returns) */
	double time_noise_s, time_data_s, time_biconvex_s, time_eigen_s;
};

struct gsn_progress {
	void (*fn)(void *arg, double frac, const char *stage);
	int (*canceled)(void *arg);
	void *arg;
};

/* The shrink levels o asks for into levels (NULL: only the count): the
 * user's levels, else numpy.linspace(0, 1, 51) bit for bit, else {1.0}.
 * Returns the count. */
int gsn_levels(const struct gsn_opts *o, double *levels);
/* numpy.linspace(start, stop, num) (endpoint=True), bit for bit. */
void gsn_linspace(double start, double stop, int num, double *y);

/* Validate shape/NaN pattern for the options (no device): 0 or
 * NQ_EBADDATA / NQ_EBADPARAM with msg. data is N×C×T, C order, float64. */
int gsn_check(const double *data, int64_t n, int64_t c, int64_t t,
              const struct gsn_opts *o, char *msg, size_t msglen);
/* Host and device bytes needed (for the scheduler) and flops. */
void gsn_estimate(int64_t n, int64_t c, int64_t t, const struct gsn_opts *o,
                  uint64_t *host_bytes, uint64_t *device_bytes, double *flops);
/* Run perform_gsn. Result arrays are malloc'd (gsn_result_free).
 * Returns 0 or an nq_err code with msg. */
int gsn_run(const struct kern_backend *kb, const double *data, int64_t n,
            int64_t c, int64_t t, const struct gsn_opts *o,
            const struct gsn_progress *prog, struct gsn_result *r, char *msg,
            size_t msglen);
void gsn_result_free(struct gsn_result *r);

#endif
