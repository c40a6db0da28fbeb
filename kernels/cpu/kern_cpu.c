/*
 * kern_cpu.c — the reference backend: OpenBLAS (cblas) + LAPACKE, and plain
 * C loops for the elementwise ops. "Device" memory is host memory.
 *
 * BLAS/LAPACK take 32-bit ints here: kern_check.c has checked that every
 * dimension and leading dimension fits (kern_impl.h lists what an op may
 * assume); element counts of the elementwise ops are int64_t and loops
 * index with int64_t.
 */
#include "kern.h"
#include "nq_sysmem.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kern_impl.h"
#include "nq_clones.h"
#include "nq_error.h"

/* Runs the statements with T bound to the element type of dt. */
#define DT_DISPATCH(dt, T, ...)           \
	do {                              \
		if ((dt) == KERN_F64) {   \
			typedef double T; \
			__VA_ARGS__       \
		} else {                  \
			typedef float T;  \
			__VA_ARGS__       \
		}                         \
	} while (0)

struct kern_cpu_ctx {
	/* bytes of the upload and download calls: what a device backend
	 * would copy for them (the copies here are memcpy) */
	_Atomic uint64_t h2d, d2h;
};

/* ---- memory */

#define HUGE_PAGE ((uintptr_t) 2 << 20)
#define HUGE_MIN  ((size_t) 4 << 20)

/* malloc (calloc when zero) that asks for transparent huge pages for
 * large blocks before their first touch, so filling them costs one fault
 * per 2 MiB instead of one per 4 KiB (a tenth of a gsn run at N = 1000
 * went to page faults). Advice only: ignored where THP is off. */
static void *
host_alloc(size_t bytes, int zero)
{
	void *p;
	uintptr_t a, b;

	if (bytes < HUGE_MIN)
		return zero ? calloc(1, bytes) : malloc(bytes);
	p = malloc(bytes);
	if (p == NULL)
		return NULL;
	a = ((uintptr_t) p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	b = ((uintptr_t) p + bytes) & ~(HUGE_PAGE - 1);
	if (b > a)
		(void) madvise((void *) a, b - a, MADV_HUGEPAGE);
	if (zero)
		memset(p, 0, bytes);
	return p;
}

static int
cpu_alloc(void *ctx, size_t bytes, void **ptr)
{
	void *p;

	p = host_alloc(bytes ? bytes : 1, 1);
	if (p == NULL)
		return NQ_ENOMEM;
	*ptr = p;
	return 0;
}

static void
cpu_free(void *ctx, void *ptr)
{
	free(ptr);
}

static int
cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
	memmove(dst, src, bytes);
	return 0;
}

static int
cpu_upload(void *ctx, void *dst, const void *h_src, size_t bytes)
{
	struct kern_cpu_ctx *c = ctx;

	atomic_fetch_add(&c->h2d, (uint64_t) bytes);
	return cpu_copy(ctx, dst, h_src, bytes);
}

static int
cpu_download(void *ctx, void *h_dst, const void *src, size_t bytes)
{
	struct kern_cpu_ctx *c = ctx;

	atomic_fetch_add(&c->d2h, (uint64_t) bytes);
	return cpu_copy(ctx, h_dst, src, bytes);
}

void
kern_cpu_count_d2h(void *ctx, uint64_t bytes)
{
	struct kern_cpu_ctx *c = ctx;

	atomic_fetch_add(&c->d2h, bytes);
}

static int
cpu_traffic(void *ctx, uint64_t *h2d, uint64_t *d2h)
{
	struct kern_cpu_ctx *c = ctx;

	*h2d = atomic_load(&c->h2d);
	*d2h = atomic_load(&c->d2h);
	return 0;
}

static int
cpu_mem_info(void *ctx, size_t *free_bytes, size_t *total_bytes)
{
	uint64_t total = nq_sysmem_bytes("MemTotal");

	(void) ctx;
	if (total == 0)
		return NQ_EDEVICE;
	*total_bytes = (size_t) total;
	*free_bytes = (size_t) nq_sysmem_available();
	return 0;
}

static int
cpu_sync(void *ctx)
{
	return 0;
}

/* ---- dense linear algebra */

static CBLAS_TRANSPOSE
cblas_trans(enum kern_trans t)
{
	return t == KERN_T ? CblasTrans : CblasNoTrans;
}

static int
cpu_gemm(void *ctx, enum kern_dtype dt, enum kern_trans ta, enum kern_trans tb,
         int64_t m, int64_t n, int64_t k, double alpha, const void *A,
         int64_t lda, const void *B, int64_t ldb, double beta, void *C,
         int64_t ldc)
{
	if (dt == KERN_F32 && ta == KERN_T && tb == KERN_N && beta == 0 &&
	    kern_cpu_skinny_fits(m, n, k))
		return kern_cpu_sgemm_tn_skinny(m, n, k, (float) alpha, A, lda,
		                                B, ldb, C, ldc);
	if (dt == KERN_F64 && ta == KERN_T && tb == KERN_N && beta == 0 &&
	    kern_cpu_tall_fits(m, n, k))
		return kern_cpu_dgemm_tn_tall(m, n, k, alpha, A, lda, B, ldb, C,
		                              ldc);
	if (dt == KERN_F64)
		cblas_dgemm(CblasColMajor, cblas_trans(ta), cblas_trans(tb),
		            (int) m, (int) n, (int) k, alpha, A, (int) lda, B,
		            (int) ldb, beta, C, (int) ldc);
	else
		cblas_sgemm(CblasColMajor, cblas_trans(ta), cblas_trans(tb),
		            (int) m, (int) n, (int) k, (float) alpha, A,
		            (int) lda, B, (int) ldb, (float) beta, C,
		            (int) ldc);
	return 0;
}

/* Copies the strict lower triangle onto the strict upper, in tiles so
 * both sides stay in cache. */
#define MIRROR_TILE 64
static void
mirror_lower(enum kern_dtype dt, int64_t n, void *C, int64_t ldc)
{
	DT_DISPATCH(dt, T, {
		T *c = C;
		for (int64_t jb = 0; jb < n; jb += MIRROR_TILE) {
			int64_t je =
			        jb + MIRROR_TILE < n ? jb + MIRROR_TILE : n;
			for (int64_t ib = 0; ib <= jb; ib += MIRROR_TILE) {
				for (int64_t j = jb; j < je; j++) {
					int64_t ie = ib + MIRROR_TILE < j
					                     ? ib + MIRROR_TILE
					                     : j;
					for (int64_t i = ib; i < ie; i++)
						c[i + j * ldc] = c[j + i * ldc];
				}
			}
		}
	});
}

static int
cpu_syrk(void *ctx, enum kern_dtype dt, enum kern_trans trans, int64_t n,
         int64_t k, double alpha, const void *A, int64_t lda, double beta,
         void *C, int64_t ldc)
{
	if (dt == KERN_F64)
		cblas_dsyrk(CblasColMajor, CblasLower, cblas_trans(trans),
		            (int) n, (int) k, alpha, A, (int) lda, beta, C,
		            (int) ldc);
	else
		cblas_ssyrk(CblasColMajor, CblasLower, cblas_trans(trans),
		            (int) n, (int) k, (float) alpha, A, (int) lda,
		            (float) beta, C, (int) ldc);
	mirror_lower(dt, n, C, ldc);
	return 0;
}

static int
cpu_potrf(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
          int *info)
{
	lapack_int r;

	/* _work: no NaN pre-scan; a NaN pivot is reported through info */
	if (dt == KERN_F64)
		r = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int) n,
		                        A, (lapack_int) lda);
	else
		r = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int) n,
		                        A, (lapack_int) lda);
	if (r < 0)
		return NQ_EBADPARAM;
	*info = (int) r;
	return 0;
}

static int
cpu_trsm_lower(void *ctx, enum kern_dtype dt, int64_t n, int64_t m,
               const void *L, int64_t ldl, void *B, int64_t ldb)
{
	if (dt == KERN_F64)
		cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans,
		            CblasNonUnit, (int) n, (int) m, 1.0, L, (int) ldl,
		            B, (int) ldb);
	else
		cblas_strsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans,
		            CblasNonUnit, (int) n, (int) m, 1.0f, L, (int) ldl,
		            B, (int) ldb);
	return 0;
}

/* Divide and conquer (syevd) needs 1 + 6n + 2n² workspace elements, which
 * stops fitting a 32-bit lapack_int past n ≈ 32767 (and may not fit in
 * memory well before); syevr (MRRR) needs an n×n output plus O(n). */
static int
syevd_dc(enum kern_dtype dt, lapack_int n, void *A, lapack_int lda, void *W,
         int *info)
{
	int64_t lwork = 1 + 6 * (int64_t) n + 2 * (int64_t) n * n;
	int64_t liwork = 3 + 5 * (int64_t) n;
	lapack_int qi = 0, r;
	void *work = NULL;
	lapack_int *iwork = NULL;
	int rc;

	if (dt == KERN_F64) {
		double qw = 0;
		r = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, A, lda,
		                        W, &qw, -1, &qi, -1);
		if (r == 0 && qw > (double) lwork)
			lwork = (int64_t) ceil(qw);
	} else {
		float qw = 0;
		r = LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, A, lda,
		                        W, &qw, -1, &qi, -1);
		if (r == 0 && (double) qw > (double) lwork)
			lwork = (int64_t) ceil((double) qw);
	}
	if (r != 0)
		return NQ_EBADPARAM;
	if (qi > liwork)
		liwork = qi;
	if (lwork > INT_MAX || liwork > INT_MAX)
		return NQ_ENOMEM;
	work = host_alloc((size_t) lwork * kern_dtype_size(dt), 0);
	iwork = malloc((size_t) liwork * sizeof(*iwork));
	if (work == NULL || iwork == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	if (dt == KERN_F64)
		r = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, A, lda,
		                        W, work, (lapack_int) lwork, iwork,
		                        (lapack_int) liwork);
	else
		r = LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, A, lda,
		                        W, work, (lapack_int) lwork, iwork,
		                        (lapack_int) liwork);
	rc = r < 0 ? NQ_EBADPARAM : 0;
	*info = r > 0 ? (int) r : 0;
out:
	free(work);
	free(iwork);
	return rc;
}

static int
syevd_mrrr(enum kern_dtype dt, lapack_int n, void *A, lapack_int lda, void *W,
           int *info)
{
	size_t es = kern_dtype_size(dt);
	int64_t lwork = 26 * (int64_t) n, liwork = 10 * (int64_t) n;
	lapack_int found = 0, r;
	void *Z = NULL, *work = NULL;
	lapack_int *iwork = NULL, *isuppz = NULL;
	int rc = NQ_ENOMEM;

	Z = malloc((size_t) n * (size_t) n * es);
	isuppz = malloc(2 * (size_t) n * sizeof(*isuppz));
	work = malloc((size_t) lwork * es);
	iwork = malloc((size_t) liwork * sizeof(*iwork));
	if (Z == NULL || isuppz == NULL || work == NULL || iwork == NULL)
		goto out;
	if (dt == KERN_F64)
		r = LAPACKE_dsyevr_work(LAPACK_COL_MAJOR, 'V', 'A', 'L', n, A,
		                        lda, 0, 0, 0, 0, 0, &found, W, Z, n,
		                        isuppz, work, (lapack_int) lwork, iwork,
		                        (lapack_int) liwork);
	else
		r = LAPACKE_ssyevr_work(LAPACK_COL_MAJOR, 'V', 'A', 'L', n, A,
		                        lda, 0, 0, 0, 0, 0, &found, W, Z, n,
		                        isuppz, work, (lapack_int) lwork, iwork,
		                        (lapack_int) liwork);
	if (r < 0) {
		rc = NQ_EBADPARAM;
		goto out;
	}
	*info = r > 0 ? (int) r : 0;
	if (r == 0)
		for (int64_t j = 0; j < n; j++)
			memcpy((char *) A + (size_t) (j * lda) * es,
			       (char *) Z + (size_t) (j * n) * es,
			       (size_t) n * es);
	rc = 0;
out:
	free(Z);
	free(isuppz);
	free(work);
	free(iwork);
	return rc;
}

static int
cpu_syevd(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
          void *W, int *info)
{
	int rc;

	rc = syevd_dc(dt, (lapack_int) n, A, (lapack_int) lda, W, info);
	if (rc == NQ_ENOMEM)
		rc = syevd_mrrr(dt, (lapack_int) n, A, (lapack_int) lda, W,
		                info);
	return rc;
}

/* syevr with RANGE='V' over (vl, vu]: tridiagonalisation, then bisection
 * and inverse iteration for the selected eigenpairs only, and a
 * back-transformation of those k vectors (2n²k instead of syevd's ~2n³ for
 * all of them). The count is only known after the call, so the vectors go
 * to an n×n scratch whose unused columns are never touched (no page is
 * faulted in for them); a count above max_k costs the whole call (the
 * caller then pays syevd too: it picks max_k so that this is rare). vl is
 * below every eigenvalue: |λ| <= ‖A‖_F. */
static int
syevr_range(enum kern_dtype dt, lapack_int n, void *A, lapack_int lda,
            double vl, double vu, void *W, void *Z, lapack_int *found,
            int *info)
{
	size_t es = kern_dtype_size(dt);
	int64_t lwork = 26 * (int64_t) n, liwork = 10 * (int64_t) n;
	lapack_int qi = 0, r;
	lapack_int *iwork = NULL, *isuppz = NULL;
	void *work = NULL;
	int rc = NQ_ENOMEM;

	if (dt == KERN_F64) {
		double qw = 0;
		r = LAPACKE_dsyevr_work(LAPACK_COL_MAJOR, 'V', 'V', 'L', n, A,
		                        lda, vl, vu, 0, 0, 0, found, W, Z, n,
		                        NULL, &qw, -1, &qi, -1);
		if (r == 0 && qw > (double) lwork)
			lwork = (int64_t) ceil(qw);
	} else {
		float qw = 0;
		r = LAPACKE_ssyevr_work(LAPACK_COL_MAJOR, 'V', 'V', 'L', n, A,
		                        lda, (float) vl, (float) vu, 0, 0, 0,
		                        found, W, Z, n, NULL, &qw, -1, &qi, -1);
		if (r == 0 && (double) qw > (double) lwork)
			lwork = (int64_t) ceil((double) qw);
	}
	if (r != 0)
		return NQ_EBADPARAM;
	if (qi > liwork)
		liwork = qi;
	if (lwork > INT_MAX || liwork > INT_MAX)
		return NQ_ENOMEM;
	isuppz = malloc(2 * (size_t) n * sizeof(*isuppz));
	work = malloc((size_t) lwork * es);
	iwork = malloc((size_t) liwork * sizeof(*iwork));
	if (isuppz == NULL || work == NULL || iwork == NULL)
		goto out;
	if (dt == KERN_F64)
		r = LAPACKE_dsyevr_work(LAPACK_COL_MAJOR, 'V', 'V', 'L', n, A,
		                        lda, vl, vu, 0, 0, 0, found, W, Z, n,
		                        isuppz, work, (lapack_int) lwork, iwork,
		                        (lapack_int) liwork);
	else
		r = LAPACKE_ssyevr_work(
		        LAPACK_COL_MAJOR, 'V', 'V', 'L', n, A, lda, (float) vl,
		        (float) vu, 0, 0, 0, found, W, Z, n, isuppz, work,
		        (lapack_int) lwork, iwork, (lapack_int) liwork);
	rc = r < 0 ? NQ_EBADPARAM : 0;
	*info = r > 0 ? (int) r : 0;
out:
	free(isuppz);
	free(work);
	free(iwork);
	return rc;
}

/* LAPACK's norm ('F' Frobenius, 'M' largest |a_ij|) of the symmetric A
 * (lower triangle), in double. */
static double
lansy(enum kern_dtype dt, char norm, int64_t n, const void *A, int64_t lda)
{
	if (dt == KERN_F64)
		return LAPACKE_dlansy_work(LAPACK_COL_MAJOR, norm, 'L',
		                           (lapack_int) n, A, (lapack_int) lda,
		                           NULL);
	return (double) LAPACKE_slansy_work(LAPACK_COL_MAJOR, norm, 'L',
	                                    (lapack_int) n, A, (lapack_int) lda,
	                                    NULL);
}

static int
cpu_syevr_below(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
                double vu, int64_t max_k, void *W, void *Z, int64_t ldz,
                int64_t *k, int *info)
{
	size_t es = kern_dtype_size(dt);
	lapack_int found = 0;
	void *Zs = NULL;
	double nrm;
	int rc;

	nrm = lansy(dt, 'F', n, A, lda);
	if (!isfinite(nrm)) {
		*info = 1; /* as syevd on a NaN/Inf matrix: no convergence */
		return 0;
	}
	if (vu <= -(nrm + 1))
		return 0; /* no eigenvalue below vu */
	Zs = malloc((size_t) n * (size_t) n * es);
	if (Zs == NULL)
		return NQ_ENOMEM;
	rc = syevr_range(dt, (lapack_int) n, A, (lapack_int) lda,
	                 -(2 * nrm + 1), vu, W, Zs, &found, info);
	if (rc != 0 || *info != 0)
		goto out;
	/* syevr's interval is (vl, vu]: drop eigenvalues equal to vu */
	while (found > 0 &&
	       (dt == KERN_F64 ? ((double *) W)[found - 1]
	                       : (double) ((float *) W)[found - 1]) >= vu)
		found--;
	*k = found;
	if (found <= max_k)
		for (int64_t j = 0; j < found; j++)
			memcpy((char *) Z + (size_t) (j * ldz) * es,
			       (char *) Zs + (size_t) (j * n) * es,
			       (size_t) n * es);
out:
	free(Zs);
	return rc;
}

/* ---- elementwise and reductions */

static int
cpu_axpby(void *ctx, enum kern_dtype dt, int64_t count, double a, const void *X,
          double b, void *Y)
{
	DT_DISPATCH(dt, T, {
		const T *x = X;
		T *y = Y;
		T ta = (T) a, tb = (T) b;
		/* b == 0 overwrites Y (BLAS convention: NaN in Y ignored) */
		if (b == 0)
			for (int64_t i = 0; i < count; i++)
				y[i] = ta * x[i];
		else
			for (int64_t i = 0; i < count; i++)
				y[i] = ta * x[i] + tb * y[i];
	});
	return 0;
}

static int
cpu_shrink(void *ctx, enum kern_dtype dt, int64_t n, const void *C, void *Out,
           double alpha, int keep_diag)
{
	DT_DISPATCH(dt, T, {
		const T *c = C;
		T *o = Out;
		T ta = (T) alpha;
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < n; i++) {
				int64_t p = i + j * n;
				/* alpha c + (1 - alpha) c is c: keep it exact
				 */
				o[p] = (keep_diag && i == j) ? c[p] : ta * c[p];
			}
	});
	return 0;
}

static int
cpu_symmetrize(void *ctx, enum kern_dtype dt, int64_t n, void *A)
{
	DT_DISPATCH(dt, T, {
		T *a = A;
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = j + 1; i < n; i++) {
				T v = (a[i + j * n] + a[j + i * n]) * (T) 0.5;
				a[i + j * n] = v;
				a[j + i * n] = v;
			}
	});
	return 0;
}

static int
cpu_add_diag(void *ctx, enum kern_dtype dt, int64_t n, void *A, double v)
{
	DT_DISPATCH(dt, T, {
		T *a = A;
		for (int64_t i = 0; i < n; i++)
			a[i + i * n] += (T) v;
	});
	return 0;
}

static int
cpu_get_diag(void *ctx, enum kern_dtype dt, int64_t n, const void *A, void *d)
{
	DT_DISPATCH(dt, T, {
		const T *a = A;
		T *o = d;
		for (int64_t i = 0; i < n; i++)
			o[i] = a[i + i * n];
	});
	return 0;
}

static int
cpu_scale_rc(void *ctx, enum kern_dtype dt, int64_t m, int64_t n, void *A,
             int64_t lda, const void *r, const void *c)
{
	DT_DISPATCH(dt, T, {
		T *a = A;
		const T *rv = r, *cv = c;
		for (int64_t j = 0; j < n; j++) {
			T cj = cv ? cv[j] : (T) 1;
			for (int64_t i = 0; i < m; i++) {
				T s = rv ? rv[i] * cj : cj;
				a[i + j * lda] *= s;
			}
		}
	});
	return 0;
}

static int
cpu_row_sumsq(void *ctx, enum kern_dtype dt, int64_t m, int64_t n,
              const void *A, int64_t lda, void *out)
{
	double *acc;

	acc = calloc((size_t) m, sizeof(*acc));
	if (acc == NULL)
		return NQ_ENOMEM;
	DT_DISPATCH(dt, T, {
		const T *a = A;
		T *o = out;
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < m; i++) {
				double v = (double) a[i + j * lda];
				acc[i] += v * v;
			}
		for (int64_t i = 0; i < m; i++)
			o[i] = (T) acc[i];
	});
	free(acc);
	return 0;
}

static int
cpu_sumsq(void *ctx, enum kern_dtype dt, int64_t count, const void *X,
          double *out)
{
	double s = 0;

	DT_DISPATCH(dt, T, {
		const T *x = X;
		for (int64_t i = 0; i < count; i++)
			s += (double) x[i] * (double) x[i];
	});
	*out = s;
	return 0;
}

static int
cpu_sum_log_diag(void *ctx, enum kern_dtype dt, int64_t n, const void *A,
                 double *out)
{
	double s = 0;

	DT_DISPATCH(dt, T, {
		const T *a = A;
		for (int64_t i = 0; i < n; i++)
			s += log((double) a[i + i * n]);
	});
	*out = s;
	return 0;
}

/* Σ |a| s over [lo, hi) of one column, four chains (one pass over A is the
 * whole cost: the sums only need to be good to far below the margins a
 * caller compares with). */
#define GERSH_SUM(a, s, lo, hi, out)                                      \
	do {                                                              \
		double g0 = 0, g1 = 0, g2 = 0, g3 = 0;                    \
		int64_t g_i = (lo);                                       \
		for (; g_i + 4 <= (hi); g_i += 4) {                       \
			g0 += fabs((double) (a)[g_i]) * (s)[g_i];         \
			g1 += fabs((double) (a)[g_i + 1]) * (s)[g_i + 1]; \
			g2 += fabs((double) (a)[g_i + 2]) * (s)[g_i + 2]; \
			g3 += fabs((double) (a)[g_i + 3]) * (s)[g_i + 3]; \
		}                                                         \
		for (; g_i < (hi); g_i++)                                 \
			g0 += fabs((double) (a)[g_i]) * (s)[g_i];         \
		(out) += (g0 + g1) + (g2 + g3);                           \
	} while (0)

static int
cpu_gersh_min(void *ctx, enum kern_dtype dt, int64_t n, const void *A,
              double *out)
{
	double *s = malloc((size_t) n * sizeof(double)), m = INFINITY;
	int64_t pos = 0;

	(void) ctx;
	if (s == NULL)
		return NQ_ENOMEM;
	DT_DISPATCH(dt, T, {
		const T *a = A;
		/* s[0..pos) = 1/sqrt(diagonal) while it is > 0 (not NaN) */
		for (; pos < n && (double) a[pos + pos * n] > 0; pos++)
			s[pos] = 1.0 / sqrt((double) a[pos + pos * n]);
		/* A symmetric: column j holds row j */
		for (int64_t j = 0; pos == n && j < n; j++) {
			const T *col = a + j * n;
			double r = 0, mj;

			GERSH_SUM(col, s, 0, j, r);
			GERSH_SUM(col, s, j + 1, n, r);
			mj = 1.0 - r * s[j];
			m = mj == mj ? fmin(m, mj) : -INFINITY;
		}
	});
	free(s);
	*out = pos == n ? m : -INFINITY;
	return 0;
}
#undef GERSH_SUM

/* Values are shifted by the first element before the two passes so that a
 * constant vector gives exactly zero deviations (hence NaN), and so that
 * a large common offset does not eat the precision. */
static int
cpu_pearson(void *ctx, enum kern_dtype dt, int64_t count, const void *X,
            const void *Y, double *out)
{
	double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;

	DT_DISPATCH(dt, T, {
		const T *x = X, *y = Y;
		double x0 = (double) x[0], y0 = (double) y[0];
		for (int64_t i = 0; i < count; i++) {
			mx += (double) x[i] - x0;
			my += (double) y[i] - y0;
		}
		mx /= (double) count;
		my /= (double) count;
		for (int64_t i = 0; i < count; i++) {
			double dx = ((double) x[i] - x0) - mx;
			double dy = ((double) y[i] - y0) - my;
			sxy += dx * dy;
			sxx += dx * dx;
			syy += dy * dy;
		}
	});
	if (sxx == 0 || syy == 0)
		return 0;
	*out = sxy / sqrt(sxx * syy);
	/* in [−1, 1] as numpy's corrcoef clips it (rounding gives 1 + ε
	 * on two elements) */
	*out = fmin(fmax(*out, -1.0), 1.0);
	return 0;
}

static int
cpu_pair_cov_acc(void *ctx, enum kern_dtype dt, int64_t n, const void *Sxx,
                 const void *Sx, const void *Sm, void *acc, void *cnt)
{
	DT_DISPATCH(dt, T, {
		const T *sxx = Sxx, *sx = Sx, *sm = Sm;
		T *ac = acc, *cn = cnt;
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < n; i++) {
				int64_t p = i + j * n;
				double m = (double) sm[p];
				if (!(m >= 2))
					continue;
				/* double: Sxx - Sx Sx/m cancels */
				double v =
				        ((double) sxx[p] -
				         (double) sx[p] *
				                 (double) sx[j + i * n] / m) /
				        (m - 1);
				ac[p] = (T) ((double) ac[p] + v);
				cn[p] += (T) 1;
			}
	});
	return 0;
}

static int
cpu_div_pos(void *ctx, enum kern_dtype dt, int64_t count, void *X,
            const void *Y)
{
	DT_DISPATCH(dt, T, {
		T *x = X;
		const T *y = Y;
		for (int64_t i = 0; i < count; i++)
			x[i] = y[i] > 0 ? x[i] / y[i] : (T) 0;
	});
	return 0;
}

static int
cpu_convert(void *ctx, enum kern_dtype dt_dst, void *dst,
            enum kern_dtype dt_src, const void *src, int64_t count)
{
	if (dt_dst == dt_src) {
		memmove(dst, src, (size_t) count * kern_dtype_size(dt_src));
	} else if (dt_dst == KERN_F32) {
		float *d = dst;
		const double *s = src;
		for (int64_t i = 0; i < count; i++)
			d[i] = (float) s[i];
	} else {
		double *d = dst;
		const float *s = src;
		for (int64_t i = 0; i < count; i++)
			d[i] = (double) s[i];
	}
	return 0;
}

/* Workspace of sytrd + ormtr: LAPACK's query, at least n·64. */
static int
tridiag_lwork(enum kern_dtype dt, lapack_int n, void *A, lapack_int lda,
              void *d, void *e, void *tau, lapack_int m, void *B,
              lapack_int ldb, int64_t *lwork)
{
	lapack_int r1, r2 = 0;

	*lwork = 64 * (int64_t) (n > m ? n : m) + 1;
	DT_DISPATCH(dt, T, {
		T q1 = 0, q2 = 0;
		if (dt == KERN_F64) {
			r1 = LAPACKE_dsytrd_work(
			        LAPACK_COL_MAJOR, 'L', n, (double *) A, lda,
			        (double *) d, (double *) e, (double *) tau,
			        (double *) &q1, -1);
			if (m > 0)
				r2 = LAPACKE_dormtr_work(
				        LAPACK_COL_MAJOR, 'L', 'L', 'T', n, m,
				        (double *) A, lda, (double *) tau,
				        (double *) B, ldb, (double *) &q2, -1);
		} else {
			r1 = LAPACKE_ssytrd_work(LAPACK_COL_MAJOR, 'L', n,
			                         (float *) A, lda, (float *) d,
			                         (float *) e, (float *) tau,
			                         (float *) &q1, -1);
			if (m > 0)
				r2 = LAPACKE_sormtr_work(
				        LAPACK_COL_MAJOR, 'L', 'L', 'T', n, m,
				        (float *) A, lda, (float *) tau,
				        (float *) B, ldb, (float *) &q2, -1);
		}
		if (r1 != 0 || r2 != 0)
			return NQ_EBADPARAM;
		if ((double) q1 > (double) *lwork)
			*lwork = (int64_t) ceil((double) q1);
		if ((double) q2 > (double) *lwork)
			*lwork = (int64_t) ceil((double) q2);
	});
	return *lwork > INT_MAX ? NQ_ENOMEM : 0;
}

static int
cpu_tridiag_qt(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
               void *d, void *e, int64_t m, void *B, int64_t ldb)
{
	size_t es = kern_dtype_size(dt);
	void *tau = NULL, *work = NULL, *e1 = NULL;
	int64_t lwork = 0;
	lapack_int r = 0;
	int rc;

	/* n = 1: LAPACK still writes e[0]; give it a scratch element */
	tau = malloc((size_t) n * es);
	e1 = n == 1 ? malloc(es) : e;
	if (tau == NULL || e1 == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	rc = tridiag_lwork(dt, (lapack_int) n, A, (lapack_int) lda, d, e1, tau,
	                   (lapack_int) m, B, (lapack_int) (m > 0 ? ldb : n),
	                   &lwork);
	if (rc != 0)
		goto out;
	work = malloc((size_t) lwork * es);
	if (work == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	if (dt == KERN_F64) {
		r = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'L', (lapack_int) n,
		                        A, (lapack_int) lda, d, e1, tau, work,
		                        (lapack_int) lwork);
		if (r == 0 && m > 0)
			r = LAPACKE_dormtr_work(
			        LAPACK_COL_MAJOR, 'L', 'L', 'T', (lapack_int) n,
			        (lapack_int) m, A, (lapack_int) lda, tau, B,
			        (lapack_int) ldb, work, (lapack_int) lwork);
	} else {
		r = LAPACKE_ssytrd_work(LAPACK_COL_MAJOR, 'L', (lapack_int) n,
		                        A, (lapack_int) lda, d, e1, tau, work,
		                        (lapack_int) lwork);
		if (r == 0 && m > 0)
			r = LAPACKE_sormtr_work(
			        LAPACK_COL_MAJOR, 'L', 'L', 'T', (lapack_int) n,
			        (lapack_int) m, A, (lapack_int) lda, tau, B,
			        (lapack_int) ldb, work, (lapack_int) lwork);
	}
	rc = r != 0 ? NQ_EBADPARAM : 0;
out:
	if (e1 != e)
		free(e1);
	free(tau);
	free(work);
	return rc;
}

/* One output row of conv_rows, y[t] = Σ_j Σ_tau W[tau + nt·j] · x_j[t + tau],
 * one fused multiply-add per tap, in that order (j, then tau) for every t.
 * A tile of NA 64-byte vectors of L samples stays in registers across all
 * taps, and the weights come as vectors instead of the samples:
 *   y[t0 + L v + i] += x[t0 + L v + m] · w[m − i]   for m < nt + L − 1,
 * lane i of the weight vector of m being w[m − i] (0 outside [0, nt)), a
 * load from the row's weights reversed and padded with zeros. A tap then
 * takes one weight load for the whole tile and one broadcast of a sample
 * per vector, none across a cache line. (Sliding the samples, as this did
 * before, cost two line-crossing loads per tap and vector: loads, not
 * arithmetic, bound it, so fused multiply-adds alone gained nothing; this
 * is 1.5x faster on 512 samples and more.) The L − 1 extra taps add exact
 * zeros, and the last samples are a tile of their own on a zero-padded
 * copy, so every tile size, every clone (the baseline's fma is libm's) and
 * every split of the samples give the same bits (a scalar tail, one chain
 * of dependent fmas per sample, took a quarter of the kernel's time). */
#define CONV_VBYTES 64
/* scratch on the stack up to this many bytes per call */
#define CONV_SCRATCH_STACK 16384

/* conv_row_<T>: NAME, element type T; its vector type VT (CONV_VBYTES),
 * FMA its scalar fused multiply-add. */
// clang-format off
/* T is a type: it cannot be parenthesised */
// NOLINTBEGIN(bugprone-macro-parentheses)
#define CONV_ROW_DEF(NAME, T, VT, FMA)                                         \
	typedef T VT __attribute__((vector_size(CONV_VBYTES)));                \
	/* the same at any address: unaligned loads */                         \
	typedef T VT##_u __attribute__((vector_size(CONV_VBYTES),              \
	                                aligned(sizeof(T)), may_alias));       \
	enum { VT##_lanes = CONV_VBYTES / sizeof(T) };                         \
	/* y[t0, t0 + na·lanes); na is a constant where this is inlined */     \
	NQ_CLONE_INLINE void                                                   \
	NAME##_tile(T *restrict y, const T *X, int64_t ldx, const T *Q,        \
	            int64_t group, int64_t nq, int64_t t0, int na)             \
	{                                                                      \
		VT a[8];                                                       \
		_Pragma("GCC unroll 8")                                        \
		for (int i = 0; i < na; i++) {                                 \
			for (int l = 0; l < VT##_lanes; l++)                   \
				a[i][l] = 0;                                   \
		}                                                              \
		for (int64_t j = 0; j < group; j++) {                          \
			const T *x = X + ldx * j + t0;                         \
			/* lane l of tap m: q[nq − lanes − m + l] */           \
			const T *q = Q + nq * j + nq - VT##_lanes;             \
			for (int64_t m = 0; m <= nq - VT##_lanes; m++) {       \
				VT w = *(const VT##_u *) (q - m);              \
				_Pragma("GCC unroll 8")                        \
				for (int i = 0; i < na; i++) {                 \
					T b = x[m + i * VT##_lanes];           \
					NQ_LANES                               \
					for (int l = 0; l < VT##_lanes; l++)   \
						a[i][l] = FMA(b, w[l],         \
						              a[i][l]);        \
				}                                              \
			}                                                      \
		}                                                              \
		_Pragma("GCC unroll 8")                                        \
		for (int i = 0; i < na; i++)                                   \
			for (int l = 0; l < VT##_lanes; l++)                   \
				y[t0 + i * VT##_lanes + l] = a[i][l];          \
	}                                                                      \
	NQ_CLONES static int                                                   \
	NAME(T *restrict y, const T *X, int64_t ldx, const T *W,               \
	     int64_t group, int64_t n, int64_t nt)                             \
	{                                                                      \
		/* scratch: each row's weights reversed, lanes − 1 zeros       \
		 * either side (nq); the last samples' rows, zero-padded to a  \
		 * whole vector (nx); their outputs (lanes) */                 \
		int64_t t0 = 0, nq = nt + 2 * (VT##_lanes - 1);                \
		int64_t nx = nt + VT##_lanes - 1;                              \
		size_t bytes = sizeof(T) * (size_t) (group * (nq + nx) +      \
		                                     VT##_lanes);              \
		T stack[CONV_SCRATCH_STACK / sizeof(T)];                       \
		T *Q = stack;                                                  \
		if (bytes > sizeof(stack) && (Q = malloc(bytes)) == NULL)      \
			return NQ_ENOMEM;                                      \
		T *Xt = Q + group * nq, *yt = Xt + group * nx;                 \
		for (int64_t j = 0; j < group; j++)                            \
			for (int64_t k = 0; k < nq; k++) {                     \
				int64_t tau = nt + VT##_lanes - 2 - k;         \
				Q[nq * j + k] = tau >= 0 && tau < nt           \
				                        ? W[nt * j + tau]      \
				                        : 0;                   \
			}                                                      \
		for (; t0 + 8 * VT##_lanes <= n; t0 += 8 * VT##_lanes)         \
			NAME##_tile(y, X, ldx, Q, group, nq, t0, 8);           \
		for (; t0 + 4 * VT##_lanes <= n; t0 += 4 * VT##_lanes)         \
			NAME##_tile(y, X, ldx, Q, group, nq, t0, 4);           \
		for (; t0 + VT##_lanes <= n; t0 += VT##_lanes)                 \
			NAME##_tile(y, X, ldx, Q, group, nq, t0, 1);           \
		if (t0 < n) {                                                  \
			/* the last few samples as one more vector, on a copy  \
			 * of their rows: every lane sums as in a tile */      \
			int64_t have = n - t0 + nt - 1;                        \
			for (int64_t j = 0; j < group; j++)                    \
				for (int64_t k = 0; k < nx; k++)               \
					Xt[nx * j + k] =                       \
					        k < have ? X[ldx * j + t0 + k] \
					                 : 0;                  \
			NAME##_tile(yt, Xt, nx, Q, group, nq, 0, 1);           \
			memcpy(y + t0, yt, sizeof(T) * (size_t) (n - t0));     \
		}                                                              \
		if (Q != stack)                                                \
			free(Q);                                               \
		return 0;                                                      \
	}
// NOLINTEND(bugprone-macro-parentheses)
// clang-format on

CONV_ROW_DEF(conv_row_f32, float, conv_vf, fmaf)
CONV_ROW_DEF(conv_row_f64, double, conv_vd, fma)

static int
cpu_conv_rows(void *ctx, enum kern_dtype dt, int64_t ng, int64_t group,
              int64_t n, int64_t nt, const void *X, int64_t ldx, const void *W,
              void *Y, int64_t ldy)
{
	int rc = 0;

	(void) ctx;
	for (int64_t g = 0; g < ng && rc == 0; g++) {
		if (dt == KERN_F32)
			rc = conv_row_f32((float *) Y + ldy * g,
			                  (const float *) X + ldx * group * g,
			                  ldx,
			                  (const float *) W + nt * group * g,
			                  group, n, nt);
		else
			rc = conv_row_f64((double *) Y + ldy * g,
			                  (const double *) X + ldx * group * g,
			                  ldx,
			                  (const double *) W + nt * group * g,
			                  group, n, nt);
	}
	return rc;
}

/* LAPACKE's sterf, its NaN check included (kern.h: info −2 / −3). */
static int
cpu_sterf(void *ctx, enum kern_dtype dt, int64_t n, void *d, void *e, int *info)
{
	lapack_int r;

	if (dt == KERN_F64)
		r = LAPACKE_dsterf((lapack_int) n, d, e);
	else
		r = LAPACKE_ssterf((lapack_int) n, d, e);
	*info = (int) r;
	return 0;
}

/* 1 when every entry of A's lower triangle is finite: the exponent bits of
 * each tested as integers (a loop the compiler vectorises; LAPACK's lansy
 * calls disnan per entry, a sixtieth of a gsn biconvex stage at N = 1000) */
static int
lower_finite(enum kern_dtype dt, int64_t n, const void *A, int64_t lda)
{
	unsigned bad = 0;

	for (int64_t j = 0; j < n; j++) {
		if (dt == KERN_F64) {
			const char *a =
			        (const char *) A + (size_t) (j * lda) * 8;
			const uint64_t ex = 0x7ff0000000000000u;

			for (int64_t i = j; i < n; i++) {
				uint64_t u;

				memcpy(&u, a + (size_t) i * 8, 8);
				bad |= (u & ex) == ex;
			}
		} else {
			const char *a =
			        (const char *) A + (size_t) (j * lda) * 4;
			const uint32_t ex = 0x7f800000u;

			for (int64_t i = j; i < n; i++) {
				uint32_t u;

				memcpy(&u, a + (size_t) i * 4, 4);
				bad |= (u & ex) == ex;
			}
		}
	}
	return !bad;
}

/* syev_side: sytrd, a Sturm count on T for the sides, the vectors of T for the
 * smaller side only (kern_tri.c), and ormtr to take them back to A's basis:
 * one reduction whatever the side. */
static int
cpu_syev_side(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
              void *W, int64_t max_k, void *Z, int64_t ldz, int64_t *k,
              int *side, int *info)
{
	size_t es = kern_dtype_size(dt);
	void *tau = NULL, *work = NULL, *d = NULL, *e = NULL;
	int64_t lwork = 0, nneg = 0, npos, kk, il;
	lapack_int r = 0;
	int rc;

	(void) ctx;
	if (!lower_finite(dt, n, A, lda)) {
		*info = 1; /* as syevd on a NaN/Inf matrix: no convergence */
		return 0;
	}
	tau = malloc((size_t) n * es);
	d = malloc((size_t) n * es);
	e = malloc((size_t) n * es); /* n: sytrd writes e[0] when n = 1 */
	if (tau == NULL || d == NULL || e == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	rc = tridiag_lwork(dt, (lapack_int) n, A, (lapack_int) lda, d, e, tau,
	                   (lapack_int) max_k, Z, (lapack_int) ldz, &lwork);
	if (rc != 0)
		goto out;
	work = malloc((size_t) lwork * es);
	if (work == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	if (dt == KERN_F64)
		r = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'L', (lapack_int) n,
		                        A, (lapack_int) lda, d, e, tau, work,
		                        (lapack_int) lwork);
	else
		r = LAPACKE_ssytrd_work(LAPACK_COL_MAJOR, 'L', (lapack_int) n,
		                        A, (lapack_int) lda, d, e, tau, work,
		                        (lapack_int) lwork);
	if (r != 0) {
		rc = NQ_EBADPARAM;
		goto out;
	}
	rc = kern_tri_count(dt, n, d, e, &nneg, info);
	npos = n - nneg;
	if (rc != 0 || *info != 0)
		goto out;
	*side = nneg <= npos ? -1 : 1;
	kk = *side < 0 ? nneg : npos;
	*k = kk;
	if (kk == 0 || kk > max_k)
		goto out;
	il = *side < 0 ? 1 : n - kk + 1;
	rc = kern_tri_vecs(dt, n, d, e, il, il + kk - 1, W, Z, ldz, info);
	if (rc != 0 || *info != 0) {
		*k = 0;
		goto out;
	}
	if (dt == KERN_F64)
		r = LAPACKE_dormtr_work(
		        LAPACK_COL_MAJOR, 'L', 'L', 'N', (lapack_int) n,
		        (lapack_int) kk, A, (lapack_int) lda, tau, Z,
		        (lapack_int) ldz, work, (lapack_int) lwork);
	else
		r = LAPACKE_sormtr_work(
		        LAPACK_COL_MAJOR, 'L', 'L', 'N', (lapack_int) n,
		        (lapack_int) kk, A, (lapack_int) lda, tau, Z,
		        (lapack_int) ldz, work, (lapack_int) lwork);
	rc = r != 0 ? NQ_EBADPARAM : 0;
out:
	free(tau);
	free(d);
	free(e);
	free(work);
	return rc;
}

static void
cpu_close(void *ctx)
{
	free(ctx);
}

static const struct kern_ops kern_cpu_ops = {
        .name = "cpu",
        .caps = KERN_CAP_HOST_MEM | KERN_CAP_REENTRANT,
        .close = cpu_close,
        .alloc = cpu_alloc,
        .free = cpu_free,
        .upload = cpu_upload,
        .download = cpu_download,
        .copy = cpu_copy,
        .mem_info = cpu_mem_info,
        .sync = cpu_sync,
        .gemm = cpu_gemm,
        .syrk = cpu_syrk,
        .potrf = cpu_potrf,
        .trsm_lower = cpu_trsm_lower,
        .syevd = cpu_syevd,
        .axpby = cpu_axpby,
        .shrink = cpu_shrink,
        .symmetrize = cpu_symmetrize,
        .add_diag = cpu_add_diag,
        .get_diag = cpu_get_diag,
        .scale_rc = cpu_scale_rc,
        .row_sumsq = cpu_row_sumsq,
        .sumsq = cpu_sumsq,
        .sum_log_diag = cpu_sum_log_diag,
        .gersh_min = cpu_gersh_min,
        .pearson = cpu_pearson,
        .pair_cov_acc = cpu_pair_cov_acc,
        .div_pos = cpu_div_pos,
        .convert = cpu_convert,
        .tridiag_qt = cpu_tridiag_qt,
        .conv_rows = cpu_conv_rows,
        .syevr_below = cpu_syevr_below,
        .sterf = cpu_sterf,
        .syev_side = cpu_syev_side,
        .traffic = cpu_traffic,
        .filter_car = kern_cpu_filter_car,
        .peaks_above = kern_cpu_peaks_above,
        .sub_spikes = kern_cpu_sub_spikes,
        .snippets = kern_cpu_snippets,
        .score_best = kern_cpu_score_best,
        .accept_peaks = kern_cpu_accept_peaks,
};

/* The cpu ops behind a device's caps (kern_cpu_open_as_device). */
static struct kern_ops kern_cpu_dev_ops;
static pthread_once_t kern_cpu_dev_once = PTHREAD_ONCE_INIT;

static void
cpu_dev_ops_init(void)
{
	kern_cpu_dev_ops = kern_cpu_ops;
	kern_cpu_dev_ops.name = "cpu-dev";
	kern_cpu_dev_ops.caps = 0;
}

int
kern_cpu_open_as_device(struct kern_backend *kb)
{
	int rc = kern_cpu_open(kb);

	if (rc != 0)
		return rc;
	pthread_once(&kern_cpu_dev_once, cpu_dev_ops_init);
	kb->ops = &kern_cpu_dev_ops;
	snprintf(kb->name, sizeof(kb->name), "cpu-dev");
	return 0;
}

void
kern_cpu_set_threads(int n)
{
	if (n >= 1)
		openblas_set_num_threads(n);
}

int
kern_host_threads(int cap)
{
	int n = 1;

#ifdef _OPENMP
	n = omp_get_max_threads();
#endif
	return n < 1 ? 1 : n > cap ? cap : n;
}

int
kern_cpu_open(struct kern_backend *kb)
{
	struct kern_cpu_ctx *c;

	if (kb == NULL)
		return NQ_EBADPARAM;
	memset(kb, 0, sizeof(*kb));
	/* Device buffers are n×n host blocks allocated and freed again and
	 * again; glibc would mmap each and munmap it on free, so every
	 * alloc page-faulted its whole size afresh (about a fifth of a gsn
	 * run at N = 1000). Keep them in the heap instead, up to glibc's
	 * largest threshold (32 MiB on 64-bit). */
	mallopt(M_MMAP_THRESHOLD,
	        (int) ((size_t) 4 * 1024 * 1024 * sizeof(long)));
	mallopt(M_TRIM_THRESHOLD, INT_MAX);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NQ_ENOMEM;
	kb->ops = &kern_cpu_ops;
	kb->ctx = c;
	snprintf(kb->name, sizeof(kb->name), "cpu");
	return 0;
}
