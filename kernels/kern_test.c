/*
 * kern_test.c — conformance of a kernels backend, op by op, f64 and f32.
 *
 * Built twice (kernels/CMakeLists.txt):
 *  - kern_cpu_test: the cpu backend against small naive implementations
 *    written here (the oracle of the oracle);
 *  - kern_cuda_test (-DKERN_TEST_CUDA=1): the cuda backend against the cpu
 *    backend on the same random inputs; exits 77 without a device.
 *
 * Every op runs through run_<op>(backend, dt, host buffers...) and the
 * expected value comes from WANT(<op>, ...), which is naive_<op> or
 * run_<op> on the cpu backend. Tolerances are relative to max|expected|.
 * f32 inputs are rounded to float on the host first, so both sides see
 * the same numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four above first */

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "kern.h"
#include "kern_impl.h"
#include "nq_error.h"
#include "nq_test_rng.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static struct kern_backend g_dev; /* the backend under test */
#ifdef KERN_TEST_CUDA
static struct kern_backend g_ref; /* cpu, the oracle */
#define WANT(op, ...) run_##op(&g_ref, __VA_ARGS__)
#else
#define WANT(op, ...) naive_##op(__VA_ARGS__)
#endif

static const enum kern_dtype dts[] = {KERN_F64, KERN_F32};
/* NOLINTBEGIN(bugprone-macro-parentheses): dt names the loop variable */
#define FOR_DT(dt)                                          \
	for (enum kern_dtype dt = KERN_F64; dt <= KERN_F32; \
	     dt = (enum kern_dtype)(dt + 1))
/* NOLINTEND(bugprone-macro-parentheses) */

/* Tolerance classes, relative to max|expected|. */
enum tol_class { TOL_ELEM, TOL_BLAS, TOL_EIG };

static double
tol(enum kern_dtype dt, enum tol_class c)
{
	static const double t64[] = {1e-12, 1e-10, 1e-10};
	static const double t32[] = {2e-6, 1e-4, 1e-5};
	return dt == KERN_F64 ? t64[c] : t32[c];
}

/* ---- host helpers */

static struct nq_test_rng rng = NQ_TEST_RNG_INIT(0x9e3779b97f4a7c15ULL);

static double
urand(void) /* [-1, 1) */
{
	return nq_test_rng_sym(&rng);
}

static double
round_dt(enum kern_dtype dt, double v)
{
	return dt == KERN_F32 ? (double) (float) v : v;
}

static double *
hvec(int64_t count)
{
	double *h = calloc(count > 0 ? (size_t) count : 1, sizeof(*h));
	assert_non_null(h);
	return h;
}

static double *
hrand(enum kern_dtype dt, int64_t count)
{
	double *h = hvec(count);
	for (int64_t i = 0; i < count; i++)
		h[i] = round_dt(dt, urand());
	return h;
}

static double *
hdup(const double *h, int64_t count)
{
	double *d = hvec(count);
	if (count > 0)
		memcpy(d, h, (size_t) count * sizeof(*h));
	return d;
}

/* Device buffer of count elements of dt holding h (or zeros). */
static void *
put(struct kern_backend *kb, enum kern_dtype dt, const double *h, int64_t count)
{
	size_t es = kern_dtype_size(dt);
	size_t n = count > 0 ? (size_t) count : 1;
	void *d = NULL, *tmp;

	assert_int_equal(KOP(kb, alloc, n * es, &d), 0);
	assert_non_null(d);
	if (h == NULL || count == 0)
		return d;
	tmp = malloc(n * es);
	assert_non_null(tmp);
	for (int64_t i = 0; i < count; i++) {
		if (dt == KERN_F64)
			((double *) tmp)[i] = h[i];
		else
			((float *) tmp)[i] = (float) h[i];
	}
	assert_int_equal(KOP(kb, upload, d, tmp, n * es), 0);
	free(tmp);
	return d;
}

static void
get(struct kern_backend *kb, enum kern_dtype dt, const void *d, int64_t count,
    double *h)
{
	size_t es = kern_dtype_size(dt);
	void *tmp;

	if (count == 0)
		return;
	tmp = malloc((size_t) count * es);
	assert_non_null(tmp);
	assert_int_equal(KOP(kb, download, tmp, d, (size_t) count * es), 0);
	for (int64_t i = 0; i < count; i++)
		h[i] = dt == KERN_F64 ? ((double *) tmp)[i]
		                      : (double) ((float *) tmp)[i];
	free(tmp);
}

static void
dfree(struct kern_backend *kb, void *d)
{
	KOP(kb, free, d);
}

static double
max_abs(const double *v, int64_t count)
{
	double m = 0;
	for (int64_t i = 0; i < count; i++)
		if (fabs(v[i]) > m)
			m = fabs(v[i]);
	return m;
}

/* |got - want| <= rtol * max|want| everywhere; NaN must match NaN. */
static void
check_close(const char *what, enum kern_dtype dt, const double *got,
            const double *want, int64_t count, double rtol)
{
	double scale = max_abs(want, count);
	if (scale == 0 || isnan(scale))
		scale = 1;
	for (int64_t i = 0; i < count; i++) {
		if (isnan(want[i]) || isnan(got[i])) {
			if (isnan(want[i]) && isnan(got[i]))
				continue;
		} else if (fabs(got[i] - want[i]) <= rtol * scale) {
			continue;
		}
		fail_msg("%s %s: element %lld: got %.17g want %.17g (tol %g)",
		         what, dt == KERN_F64 ? "f64" : "f32", (long long) i,
		         got[i], want[i], rtol * scale);
	}
}

static void
check_scalar(const char *what, enum kern_dtype dt, double got, double want,
             double rtol)
{
	check_close(what, dt, &got, &want, 1, rtol);
}

/* ---- run_<op>: host in, backend op, host out */

static void
run_gemm(struct kern_backend *kb, enum kern_dtype dt, enum kern_trans ta,
         enum kern_trans tb, int64_t m, int64_t n, int64_t k, double alpha,
         const double *A, int64_t lda, const double *B, int64_t ldb,
         double beta, double *C, int64_t ldc)
{
	int64_t na = lda * (ta == KERN_N ? k : m);
	int64_t nb = ldb * (tb == KERN_N ? n : k);
	void *dA = put(kb, dt, A, na), *dB = put(kb, dt, B, nb);
	void *dC = put(kb, dt, C, ldc * n);

	assert_int_equal(KOP(kb, gemm, dt, ta, tb, m, n, k, alpha, dA, lda, dB,
	                     ldb, beta, dC, ldc),
	                 0);
	get(kb, dt, dC, ldc * n, C);
	dfree(kb, dA);
	dfree(kb, dB);
	dfree(kb, dC);
}

static void
run_syrk(struct kern_backend *kb, enum kern_dtype dt, enum kern_trans tr,
         int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
         double beta, double *C, int64_t ldc)
{
	void *dA = put(kb, dt, A, lda * (tr == KERN_N ? k : n));
	void *dC = put(kb, dt, C, ldc * n);

	assert_int_equal(
	        KOP(kb, syrk, dt, tr, n, k, alpha, dA, lda, beta, dC, ldc), 0);
	get(kb, dt, dC, ldc * n, C);
	dfree(kb, dA);
	dfree(kb, dC);
}

static void
run_potrf(struct kern_backend *kb, enum kern_dtype dt, int64_t n, double *A,
          int64_t lda, int *info)
{
	void *dA = put(kb, dt, A, lda * n);

	*info = -1;
	assert_int_equal(KOP(kb, potrf, dt, n, dA, lda, info), 0);
	get(kb, dt, dA, lda * n, A);
	dfree(kb, dA);
}

static void
run_trsm(struct kern_backend *kb, enum kern_dtype dt, int64_t n, int64_t m,
         const double *L, int64_t ldl, double *B, int64_t ldb)
{
	void *dL = put(kb, dt, L, ldl * n), *dB = put(kb, dt, B, ldb * m);

	assert_int_equal(KOP(kb, trsm_lower, dt, n, m, dL, ldl, dB, ldb), 0);
	get(kb, dt, dB, ldb * m, B);
	dfree(kb, dL);
	dfree(kb, dB);
}

static void
run_syevd(struct kern_backend *kb, enum kern_dtype dt, int64_t n, double *A,
          int64_t lda, double *W, int *info)
{
	void *dA = put(kb, dt, A, lda * n), *dW = put(kb, dt, NULL, n);

	*info = -1;
	assert_int_equal(KOP(kb, syevd, dt, n, dA, lda, dW, info), 0);
	get(kb, dt, dA, lda * n, A);
	get(kb, dt, dW, n, W);
	dfree(kb, dA);
	dfree(kb, dW);
}

static void
run_axpby(struct kern_backend *kb, enum kern_dtype dt, int64_t count, double a,
          const double *X, double b, double *Y)
{
	void *dX = put(kb, dt, X, count), *dY = put(kb, dt, Y, count);

	assert_int_equal(KOP(kb, axpby, dt, count, a, dX, b, dY), 0);
	get(kb, dt, dY, count, Y);
	dfree(kb, dX);
	dfree(kb, dY);
}

static void
run_shrink(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
           const double *C, double *Out, double alpha, int keep_diag)
{
	void *dC = put(kb, dt, C, n * n), *dO = put(kb, dt, Out, n * n);

	assert_int_equal(KOP(kb, shrink, dt, n, dC, dO, alpha, keep_diag), 0);
	get(kb, dt, dO, n * n, Out);
	dfree(kb, dC);
	dfree(kb, dO);
}

static void
run_symmetrize(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
               double *A)
{
	void *dA = put(kb, dt, A, n * n);

	assert_int_equal(KOP(kb, symmetrize, dt, n, dA), 0);
	get(kb, dt, dA, n * n, A);
	dfree(kb, dA);
}

static void
run_add_diag(struct kern_backend *kb, enum kern_dtype dt, int64_t n, double *A,
             double v)
{
	void *dA = put(kb, dt, A, n * n);

	assert_int_equal(KOP(kb, add_diag, dt, n, dA, v), 0);
	get(kb, dt, dA, n * n, A);
	dfree(kb, dA);
}

static void
run_get_diag(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
             const double *A, double *d)
{
	void *dA = put(kb, dt, A, n * n), *dd = put(kb, dt, NULL, n);

	assert_int_equal(KOP(kb, get_diag, dt, n, dA, dd), 0);
	get(kb, dt, dd, n, d);
	dfree(kb, dA);
	dfree(kb, dd);
}

static void
run_scale_rc(struct kern_backend *kb, enum kern_dtype dt, int64_t m, int64_t n,
             double *A, int64_t lda, const double *r, const double *c)
{
	void *dA = put(kb, dt, A, lda * n);
	void *dr = r ? put(kb, dt, r, m) : NULL;
	void *dc = c ? put(kb, dt, c, n) : NULL;

	assert_int_equal(KOP(kb, scale_rc, dt, m, n, dA, lda, dr, dc), 0);
	get(kb, dt, dA, lda * n, A);
	dfree(kb, dA);
	dfree(kb, dr);
	dfree(kb, dc);
}

static void
run_row_sumsq(struct kern_backend *kb, enum kern_dtype dt, int64_t m, int64_t n,
              const double *A, int64_t lda, double *out)
{
	void *dA = put(kb, dt, A, lda * n), *dO = put(kb, dt, NULL, m);

	assert_int_equal(KOP(kb, row_sumsq, dt, m, n, dA, lda, dO), 0);
	get(kb, dt, dO, m, out);
	dfree(kb, dA);
	dfree(kb, dO);
}

static void
run_sumsq(struct kern_backend *kb, enum kern_dtype dt, int64_t count,
          const double *X, double *out)
{
	void *dX = put(kb, dt, X, count);

	*out = -1;
	assert_int_equal(KOP(kb, sumsq, dt, count, dX, out), 0);
	dfree(kb, dX);
}

static void
run_sum_log_diag(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                 const double *A, double *out)
{
	void *dA = put(kb, dt, A, n * n);

	*out = -1;
	assert_int_equal(KOP(kb, sum_log_diag, dt, n, dA, out), 0);
	dfree(kb, dA);
}

static void
run_gersh_min(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
              const double *A, double *out)
{
	void *dA = put(kb, dt, A, n * n);

	*out = 7;
	assert_int_equal(KOP(kb, gersh_min, dt, n, dA, out), 0);
	dfree(kb, dA);
}

static void
run_pearson(struct kern_backend *kb, enum kern_dtype dt, int64_t count,
            const double *X, const double *Y, double *out)
{
	void *dX = put(kb, dt, X, count), *dY = put(kb, dt, Y, count);

	*out = -2;
	assert_int_equal(KOP(kb, pearson, dt, count, dX, dY, out), 0);
	dfree(kb, dX);
	dfree(kb, dY);
}

static void
run_pair_cov_acc(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                 const double *Sxx, const double *Sx, const double *Sm,
                 double *acc, double *cnt)
{
	void *d1 = put(kb, dt, Sxx, n * n), *d2 = put(kb, dt, Sx, n * n);
	void *d3 = put(kb, dt, Sm, n * n), *d4 = put(kb, dt, acc, n * n);
	void *d5 = put(kb, dt, cnt, n * n);

	assert_int_equal(KOP(kb, pair_cov_acc, dt, n, d1, d2, d3, d4, d5), 0);
	get(kb, dt, d4, n * n, acc);
	get(kb, dt, d5, n * n, cnt);
	dfree(kb, d1);
	dfree(kb, d2);
	dfree(kb, d3);
	dfree(kb, d4);
	dfree(kb, d5);
}

static void
run_div_pos(struct kern_backend *kb, enum kern_dtype dt, int64_t count,
            double *X, const double *Y)
{
	void *dX = put(kb, dt, X, count), *dY = put(kb, dt, Y, count);

	assert_int_equal(KOP(kb, div_pos, dt, count, dX, dY), 0);
	get(kb, dt, dX, count, X);
	dfree(kb, dX);
	dfree(kb, dY);
}

/* conv_rows on X (ng·group rows, stride ldx), W (rows × nt) into Y (ng rows,
 * stride ldy); Y's padding between rows must come back untouched. */
static void
run_conv_rows(struct kern_backend *kb, enum kern_dtype dt, int64_t ng,
              int64_t group, int64_t n, int64_t nt, const double *X,
              int64_t ldx, const double *W, double *Y, int64_t ldy)
{
	int64_t rows = ng * group;
	void *dX = put(kb, dt, X, rows * ldx), *dW = put(kb, dt, W, rows * nt),
	     *dY = put(kb, dt, Y, ng * ldy);

	assert_int_equal(
	        KOP(kb, conv_rows, dt, ng, group, n, nt, dX, ldx, dW, dY, ldy),
	        0);
	get(kb, dt, dY, ng * ldy, Y);
	dfree(kb, dX);
	dfree(kb, dW);
	dfree(kb, dY);
}

static void
run_convert(struct kern_backend *kb, enum kern_dtype dt_dst,
            enum kern_dtype dt_src, const double *src, int64_t count,
            double *dst)
{
	void *dS = put(kb, dt_src, src, count),
	     *dD = put(kb, dt_dst, NULL, count);

	assert_int_equal(KOP(kb, convert, dt_dst, dD, dt_src, dS, count), 0);
	get(kb, dt_dst, dD, count, dst);
	dfree(kb, dS);
	dfree(kb, dD);
}

/* ---- naive_<op>: the textbook definitions, in double */
#ifndef KERN_TEST_CUDA

static void
naive_gemm(enum kern_dtype dt, enum kern_trans ta, enum kern_trans tb,
           int64_t m, int64_t n, int64_t k, double alpha, const double *A,
           int64_t lda, const double *B, int64_t ldb, double beta, double *C,
           int64_t ldc)
{
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < m; i++) {
			double s = 0;
			for (int64_t l = 0; l < k; l++) {
				double a = ta == KERN_N ? A[i + l * lda]
				                        : A[l + i * lda];
				double b = tb == KERN_N ? B[l + j * ldb]
				                        : B[j + l * ldb];
				s += a * b;
			}
			double *c = &C[i + j * ldc];
			*c = beta == 0 ? alpha * s : alpha * s + beta * *c;
		}
}

static void
naive_syrk(enum kern_dtype dt, enum kern_trans tr, int64_t n, int64_t k,
           double alpha, const double *A, int64_t lda, double beta, double *C,
           int64_t ldc)
{
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = j; i < n; i++) {
			double s = 0;
			for (int64_t l = 0; l < k; l++) {
				double a = tr == KERN_N ? A[i + l * lda]
				                        : A[l + i * lda];
				double b = tr == KERN_N ? A[j + l * lda]
				                        : A[l + j * lda];
				s += a * b;
			}
			double *c = &C[i + j * ldc];
			*c = beta == 0 ? alpha * s : alpha * s + beta * *c;
			C[j + i * ldc] = *c;
		}
}

static void
naive_potrf(enum kern_dtype dt, int64_t n, double *A, int64_t lda, int *info)
{
	*info = 0;
	for (int64_t j = 0; j < n; j++) {
		double d = A[j + j * lda];
		for (int64_t l = 0; l < j; l++)
			d -= A[j + l * lda] * A[j + l * lda];
		if (!(d > 0)) {
			*info = (int) j + 1;
			return;
		}
		d = sqrt(d);
		A[j + j * lda] = d;
		for (int64_t i = j + 1; i < n; i++) {
			double s = A[i + j * lda];
			for (int64_t l = 0; l < j; l++)
				s -= A[i + l * lda] * A[j + l * lda];
			A[i + j * lda] = s / d;
		}
	}
}

static void
naive_trsm(enum kern_dtype dt, int64_t n, int64_t m, const double *L,
           int64_t ldl, double *B, int64_t ldb)
{
	for (int64_t c = 0; c < m; c++)
		for (int64_t i = 0; i < n; i++) {
			double s = B[i + c * ldb];
			for (int64_t l = 0; l < i; l++)
				s -= L[i + l * ldl] * B[l + c * ldb];
			B[i + c * ldb] = s / L[i + i * ldl];
		}
}

static void
naive_axpby(enum kern_dtype dt, int64_t count, double a, const double *X,
            double b, double *Y)
{
	for (int64_t i = 0; i < count; i++)
		Y[i] = b == 0 ? a * X[i] : a * X[i] + b * Y[i];
}

static void
naive_shrink(enum kern_dtype dt, int64_t n, const double *C, double *Out,
             double alpha, int keep_diag)
{
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < n; i++) {
			double c = C[i + j * n];
			double d = (keep_diag && i == j) ? c : 0;
			Out[i + j * n] =
			        alpha * c + (keep_diag ? (1 - alpha) * d : 0);
		}
}

static void
naive_symmetrize(enum kern_dtype dt, int64_t n, double *A)
{
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = j + 1; i < n; i++) {
			double v = (A[i + j * n] + A[j + i * n]) / 2;
			A[i + j * n] = A[j + i * n] = v;
		}
}

static void
naive_add_diag(enum kern_dtype dt, int64_t n, double *A, double v)
{
	for (int64_t i = 0; i < n; i++)
		A[i + i * n] += v;
}

static void
naive_get_diag(enum kern_dtype dt, int64_t n, const double *A, double *d)
{
	for (int64_t i = 0; i < n; i++)
		d[i] = A[i + i * n];
}

static void
naive_scale_rc(enum kern_dtype dt, int64_t m, int64_t n, double *A, int64_t lda,
               const double *r, const double *c)
{
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < m; i++)
			A[i + j * lda] *= (r ? r[i] : 1) * (c ? c[j] : 1);
}

static void
naive_row_sumsq(enum kern_dtype dt, int64_t m, int64_t n, const double *A,
                int64_t lda, double *out)
{
	for (int64_t i = 0; i < m; i++) {
		out[i] = 0;
		for (int64_t j = 0; j < n; j++)
			out[i] += A[i + j * lda] * A[i + j * lda];
	}
}

static void
naive_sumsq(enum kern_dtype dt, int64_t count, const double *X, double *out)
{
	*out = 0;
	for (int64_t i = 0; i < count; i++)
		*out += X[i] * X[i];
}

static void
naive_sum_log_diag(enum kern_dtype dt, int64_t n, const double *A, double *out)
{
	*out = 0;
	for (int64_t i = 0; i < n; i++)
		*out += log(A[i + i * n]);
}

static void
naive_gersh_min(enum kern_dtype dt, int64_t n, const double *A, double *out)
{
	*out = n > 0 ? INFINITY : -INFINITY;
	for (int64_t i = 0; i < n; i++) {
		double r = 0, m;

		for (int64_t j = 0; j < n; j++)
			if (j != i)
				r += fabs(A[i + j * n]) / sqrt(A[j + j * n]);
		m = 1 - r / sqrt(A[i + i * n]);
		*out = A[i + i * n] > 0 && !isnan(m) ? fmin(*out, m)
		                                     : -INFINITY;
	}
}

static void
naive_pearson(enum kern_dtype dt, int64_t count, const double *X,
              const double *Y, double *out)
{
	double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;

	for (int64_t i = 0; i < count; i++) {
		mx += X[i];
		my += Y[i];
	}
	mx /= (double) count;
	my /= (double) count;
	for (int64_t i = 0; i < count; i++) {
		sxy += (X[i] - mx) * (Y[i] - my);
		sxx += (X[i] - mx) * (X[i] - mx);
		syy += (Y[i] - my) * (Y[i] - my);
	}
	*out = sxy / sqrt(sxx * syy);
}

static void
naive_pair_cov_acc(enum kern_dtype dt, int64_t n, const double *Sxx,
                   const double *Sx, const double *Sm, double *acc, double *cnt)
{
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < n; i++) {
			double m = Sm[i + j * n];
			if (m < 2)
				continue;
			acc[i + j * n] += (Sxx[i + j * n] -
			                   Sx[i + j * n] * Sx[j + i * n] / m) /
			                  (m - 1);
			cnt[i + j * n] += 1;
		}
}

static void
naive_div_pos(enum kern_dtype dt, int64_t count, double *X, const double *Y)
{
	for (int64_t i = 0; i < count; i++)
		X[i] = Y[i] > 0 ? X[i] / Y[i] : 0;
}

static void
naive_convert(enum kern_dtype dt_dst, enum kern_dtype dt_src, const double *src,
              int64_t count, double *dst)
{
	for (int64_t i = 0; i < count; i++)
		dst[i] = round_dt(dt_dst, src[i]);
}

static void
naive_conv_rows(enum kern_dtype dt, int64_t ng, int64_t group, int64_t n,
                int64_t nt, const double *X, int64_t ldx, const double *W,
                double *Y, int64_t ldy)
{
	for (int64_t g = 0; g < ng; g++)
		for (int64_t t = 0; t < n; t++) {
			double s = 0;
			for (int64_t j = 0; j < group; j++)
				for (int64_t tau = 0; tau < nt; tau++)
					s += W[tau + nt * (g * group + j)] *
					     X[t + tau + ldx * (g * group + j)];
			Y[t + ldy * g] = round_dt(dt, s);
		}
}

/* Eigenvalues of the tridiagonal (d, e) by bisection on the Sturm count
 * (negative pivots of T − xI), each to the last bit, from the Gershgorin
 * interval. */
static int64_t
sturm_count(int64_t n, const double *d, const double *e, double x)
{
	double q = d[0] - x;
	int64_t c = q < 0;

	for (int64_t i = 1; i < n; i++) {
		if (q == 0)
			q = 1e-300;
		q = d[i] - x - e[i - 1] * e[i - 1] / q;
		c += q < 0;
	}
	return c;
}

static void
naive_sterf(enum kern_dtype dt, int64_t n, const double *d, const double *e,
            double *w)
{
	double lo = 0, hi = 0;

	for (int64_t i = 0; i < n; i++) {
		double r = (i > 0 ? fabs(e[i - 1]) : 0) +
		           (i + 1 < n ? fabs(e[i]) : 0);
		if (i == 0 || d[i] - r < lo)
			lo = d[i] - r;
		if (i == 0 || d[i] + r > hi)
			hi = d[i] + r;
	}
	for (int64_t k = 0; k < n; k++) {
		double a = lo - 1, b = hi + 1;

		for (int it = 0; it < 200 && a < b; it++) {
			double mid = a + (b - a) / 2;
			if (mid <= a || mid >= b)
				break;
			if (sturm_count(n, d, e, mid) >= k + 1)
				b = mid;
			else
				a = mid;
		}
		w[k] = round_dt(dt, a + (b - a) / 2);
	}
}

#endif /* !KERN_TEST_CUDA */

/* ---- tests: memory and names */

static void
test_alloc_zero_and_copy(void **state)
{
	struct kern_backend *kb = &g_dev;
	unsigned char h[1000], back[1000];
	void *a = NULL, *b = NULL;

	assert_int_equal(KOP(kb, alloc, sizeof(h), &a), 0);
	assert_int_equal(KOP(kb, alloc, sizeof(h), &b), 0);
	memset(back, 0xff, sizeof(back));
	assert_int_equal(KOP(kb, download, back, a, sizeof(back)), 0);
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0);
	for (size_t i = 0; i < sizeof(h); i++)
		h[i] = (unsigned char) (i * 7 + 3);
	assert_int_equal(KOP(kb, upload, a, h, sizeof(h)), 0);
	assert_int_equal(KOP(kb, copy, b, a, sizeof(h)), 0);
	assert_int_equal(kern_sync(kb), 0); /* KOP needs an argument */
	assert_int_equal(KOP(kb, download, back, b, sizeof(back)), 0);
	assert_memory_equal(back, h, sizeof(h));
	/* zero-byte transfers are no-ops */
	assert_int_equal(KOP(kb, upload, a, h, 0), 0);
	assert_int_equal(KOP(kb, download, back, a, 0), 0);
	KOP(kb, free, a);
	KOP(kb, free, b);
	KOP(kb, free, NULL);
}

static void
test_alloc_too_big(void **state)
{
	void *p = (void *) 1;

	assert_int_equal(KOP(&g_dev, alloc, SIZE_MAX, &p), NQ_ENOMEM);
	assert_null(p);
}

static void
test_mem_info(void **state)
{
	size_t fr = 0, tot = 0;

	assert_int_equal(KOP(&g_dev, mem_info, &fr, &tot), 0);
	assert_true(tot > (size_t) 64 << 20);
	assert_true(fr > 0);
	assert_true(fr <= tot);
}

static void
test_names(void **state)
{
	static const char *bad[] = {"gpu",
	                            "cuda:x",
	                            "cuda:-1",
	                            "cuda:",
	                            "",
	                            "cpu ",
	                            "CPU",
	                            "cuda:1x",
	                            "cuda:+1",
	                            "cuda: 1",
	                            "cuda:99999999999"};
	struct kern_backend kb;
	int ndev = kern_cuda_device_count();

	assert_true(ndev >= 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = kern_open_by_name(&kb, bad[i]);
		if (rc != NQ_EBADDEVICE)
			fail_msg("name '%s': rc %d", bad[i], rc);
	}
	assert_int_equal(kern_open_by_name(&kb, NULL), NQ_EBADDEVICE);

	assert_int_equal(kern_open_by_name(&kb, "cpu"), 0);
	assert_string_equal(kb.name, "cpu");
	assert_string_equal(kb.ops->name, "cpu");
	kern_close(&kb);
	assert_null(kb.ops);
	kern_close(&kb); /* closing twice is harmless */

	if (ndev == 0) {
		assert_int_equal(kern_open_by_name(&kb, "cuda"), NQ_ENODEV);
		assert_int_equal(kern_open_by_name(&kb, "cuda:0"), NQ_ENODEV);
	} else {
		char name[32];
		assert_int_equal(kern_open_by_name(&kb, "cuda"), 0);
		assert_string_equal(kb.name, "cuda:0");
		assert_string_equal(kb.ops->name, "cuda");
		kern_close(&kb);
		snprintf(name, sizeof(name), "cuda:%d", ndev - 1);
		assert_int_equal(kern_open_by_name(&kb, name), 0);
		assert_string_equal(kb.name, name);
		kern_close(&kb);
		snprintf(name, sizeof(name), "cuda:%d", ndev);
		assert_int_equal(kern_open_by_name(&kb, name), NQ_ENODEV);
	}
	assert_int_equal(kern_cuda_open(&kb, -1), NQ_ENODEV);
}

static void
test_bad_params(void **state)
{
	struct kern_backend *kb = &g_dev;
	void *A = put(kb, KERN_F64, NULL, 64);
	void *B = put(kb, KERN_F64, NULL, 64);
	void *C = put(kb, KERN_F64, NULL, 64);
	int info = 0;
	double out = 0;

	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_N, -1, 2, 2, 1, A,
	                     2, B, 2, 0, C, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_N, 4, 2, 2, 1, A,
	                     2, B, 2, 0, C, 4),
	                 NQ_EBADPARAM); /* lda < m */
	assert_int_equal(KOP(kb, gemm, (enum kern_dtype) 7, KERN_N, KERN_N, 2,
	                     2, 2, 1, A, 2, B, 2, 0, C, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, syrk, KERN_F64, KERN_N, 4, 2, 1, A, 4, 0, C, 3),
	        NQ_EBADPARAM); /* ldc < n */
	assert_int_equal(KOP(kb, potrf, KERN_F64, 4, A, 3, &info),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, syevd, KERN_F32, -2, A, 1, B, &info),
	                 NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, tridiag_qt, KERN_F64, -1, A, 1, B, C, 0, NULL, 1),
	        NQ_EBADPARAM);
	assert_int_equal(KOP(kb, tridiag_qt, KERN_F64, 4, A, 2, B, C, 1, A, 4),
	                 NQ_EBADPARAM); /* lda < n */
	assert_int_equal(
	        KOP(kb, tridiag_qt, KERN_F64, 4, A, 4, B, C, 2, NULL, 4),
	        NQ_EBADPARAM); /* m > 0 without B */
	assert_int_equal(KOP(kb, axpby, KERN_F64, -1, 1, A, 1, B),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, sumsq, KERN_F64, 4, NULL, &out), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, scale_rc, KERN_F64, 4, 2, A, 3, NULL, NULL),
	                 NQ_EBADPARAM);
	dfree(kb, A);
	dfree(kb, B);
	dfree(kb, C);
}

/* Every op refuses what its contract does not allow, with the same code on
 * every backend (the checks are kern_check.c's), and answers the calls
 * with nothing to do without touching a buffer. */
static void
test_bad_params_every_op(void **state)
{
	struct kern_backend *kb = &g_dev;
	const enum kern_dtype bad = (enum kern_dtype) 7;
	void *A = put(kb, KERN_F64, NULL, 64);
	void *B = put(kb, KERN_F64, NULL, 64);
	void *C = put(kb, KERN_F64, NULL, 64);
	unsigned char h[8] = {0};
	int info = 0;
	int64_t k = 0;
	size_t fr = 0, tot = 0;
	double out = 0;
	void *p = (void *) 1;

	/* memory */
	assert_int_equal(KOP(kb, alloc, 8, NULL), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, alloc, (size_t) PTRDIFF_MAX + 1, &p),
	                 NQ_ENOMEM);
	assert_null(p);
	assert_int_equal(KOP(kb, upload, NULL, h, 8), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, upload, A, NULL, 8), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, download, NULL, A, 8), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, download, h, NULL, 8), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, copy, NULL, A, 8), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, copy, A, NULL, 8), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, copy, NULL, NULL, 0), 0);
	assert_int_equal(KOP(kb, mem_info, NULL, &tot), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, mem_info, &fr, NULL), NQ_EBADPARAM);

	/* gemm: dims, leading dims, pointers; empty C is a no-op */
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_N, 2, 2,
	                     (int64_t) INT_MAX + 1, 1, A, 2, B, 2, 0, C, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_T, KERN_N, 2, 2, 4, 1, A,
	                     2, B, 4, 0, C, 2),
	                 NQ_EBADPARAM); /* lda < k (A transposed) */
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_T, 2, 4, 2, 1, A,
	                     2, B, 2, 0, C, 2),
	                 NQ_EBADPARAM); /* ldb < n (B transposed) */
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_N, 2, 2, 2, 1,
	                     NULL, 2, B, 2, 0, C, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_N, 2, 2, 2, 1, A,
	                     2, B, 2, 0, NULL, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_N, 2, 0, 2, 1,
	                     NULL, 2, NULL, 2, 0, NULL, 2),
	                 0);
	assert_int_equal(KOP(kb, gemm, KERN_F64, KERN_N, KERN_N, 2, 2, 0, 1, A,
	                     2, B, 1, 0, C, 2),
	                 0); /* k = 0 (ldb 1 is enough): C = beta C */
	/* syrk */
	assert_int_equal(KOP(kb, syrk, bad, KERN_N, 2, 2, 1, A, 2, 0, C, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, syrk, KERN_F64, KERN_T, 2, 4, 1, A, 2, 0, C, 2),
	        NQ_EBADPARAM); /* lda < k */
	assert_int_equal(
	        KOP(kb, syrk, KERN_F64, KERN_N, 2, 2, 1, NULL, 2, 0, C, 2),
	        NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, syrk, KERN_F64, KERN_N, 2, 2, 1, A, 2, 0, NULL, 2),
	        NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, syrk, KERN_F64, KERN_N, 0, 2, 1, NULL, 2, 0, NULL, 1),
	        0);
	/* potrf */
	assert_int_equal(KOP(kb, potrf, KERN_F64, 2, A, 2, NULL), NQ_EBADPARAM);
	info = 5;
	assert_int_equal(KOP(kb, potrf, bad, 2, A, 2, &info), NQ_EBADPARAM);
	assert_int_equal(info, 0); /* reset before refusing */
	assert_int_equal(KOP(kb, potrf, KERN_F64, -1, A, 1, &info),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, potrf, KERN_F64, 2, NULL, 2, &info),
	                 NQ_EBADPARAM);
	info = 5;
	assert_int_equal(KOP(kb, potrf, KERN_F64, 0, NULL, 1, &info), 0);
	assert_int_equal(info, 0);
	/* trsm_lower */
	assert_int_equal(KOP(kb, trsm_lower, KERN_F64, 2, -1, A, 2, B, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, trsm_lower, KERN_F64, 4, 2, A, 3, B, 4),
	                 NQ_EBADPARAM); /* ldl < n */
	assert_int_equal(KOP(kb, trsm_lower, KERN_F64, 4, 2, A, 4, B, 3),
	                 NQ_EBADPARAM); /* ldb < n */
	assert_int_equal(KOP(kb, trsm_lower, KERN_F64, 2, 2, NULL, 2, B, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, trsm_lower, KERN_F64, 2, 2, A, 2, NULL, 2),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, trsm_lower, KERN_F64, 2, 0, NULL, 2, NULL, 2),
	                 0);
	/* syevd */
	assert_int_equal(KOP(kb, syevd, KERN_F64, 2, A, 2, B, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, syevd, KERN_F64, 4, A, 3, B, &info),
	                 NQ_EBADPARAM); /* lda < n */
	assert_int_equal(KOP(kb, syevd, KERN_F64, 2, A, 2, NULL, &info),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, syevd, KERN_F64, 2, NULL, 2, B, &info),
	                 NQ_EBADPARAM);
	/* syevr_below */
	assert_int_equal(KOP(kb, syevr_below, KERN_F64, 2, A, 2, 0.0, 1, B, C,
	                     2, NULL, &info),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, syevr_below, KERN_F64, 2, A, 2, 0.0, 1, B, C,
	                     2, &k, NULL),
	                 NQ_EBADPARAM);
	k = 7;
	assert_int_equal(KOP(kb, syevr_below, KERN_F64, 2, A, 2, NAN, 1, B, C,
	                     2, &k, &info),
	                 NQ_EBADPARAM); /* vu NaN */
	assert_int_equal(k, 0);
	assert_int_equal(KOP(kb, syevr_below, KERN_F64, 2, A, 2, 0.0, -1, B, C,
	                     2, &k, &info),
	                 NQ_EBADPARAM); /* max_k < 0 */
	assert_int_equal(KOP(kb, syevr_below, KERN_F64, 4, A, 4, 0.0, 1, B, C,
	                     3, &k, &info),
	                 NQ_EBADPARAM); /* ldz < n */
	assert_int_equal(KOP(kb, syevr_below, KERN_F64, 2, A, 2, 0.0, 1, B,
	                     NULL, 2, &k, &info),
	                 NQ_EBADPARAM); /* max_k > 0 without Z */
	assert_int_equal(KOP(kb, syevr_below, KERN_F64, 2, A, 2, 0.0, 1, NULL,
	                     C, 2, &k, &info),
	                 NQ_EBADPARAM);
	/* tridiag_qt */
	assert_int_equal(
	        KOP(kb, tridiag_qt, KERN_F64, 4, A, 4, B, NULL, 0, NULL, 1),
	        NQ_EBADPARAM); /* n > 1 without e */
	assert_int_equal(
	        KOP(kb, tridiag_qt, KERN_F64, 4, A, 4, NULL, C, 0, NULL, 1),
	        NQ_EBADPARAM);
	assert_int_equal(KOP(kb, tridiag_qt, KERN_F64, 4, A, 4, B, C, 1, A, 3),
	                 NQ_EBADPARAM); /* ldb < n */
	/* syev_side */
	{
		int64_t kk = 7;
		int sd = 7;

		assert_int_equal(KOP(kb, syev_side, KERN_F64, 2, A, 2, B, 1, C,
		                     2, NULL, &sd, &info),
		                 NQ_EBADPARAM);
		assert_int_equal(KOP(kb, syev_side, KERN_F64, 2, A, 2, B, 1, C,
		                     2, &kk, NULL, &info),
		                 NQ_EBADPARAM);
		assert_int_equal(KOP(kb, syev_side, KERN_F64, 2, A, 1, B, 1, C,
		                     2, &kk, &sd, &info),
		                 NQ_EBADPARAM);
		assert_int_equal(kk, 0);
		assert_int_equal(sd, -1);
		assert_int_equal(KOP(kb, syev_side, KERN_F64, 2, A, 2, B, -1, C,
		                     2, &kk, &sd, &info),
		                 NQ_EBADPARAM);
		assert_int_equal(KOP(kb, syev_side, KERN_F64, 2, A, 2, B, 1, C,
		                     1, &kk, &sd, &info),
		                 NQ_EBADPARAM);
		assert_int_equal(KOP(kb, syev_side, KERN_F64, 2, A, 2, B, 1,
		                     NULL, 2, &kk, &sd, &info),
		                 NQ_EBADPARAM);
		assert_int_equal(KOP(kb, syev_side, KERN_F64, 0, NULL, 1, NULL,
		                     0, NULL, 1, &kk, &sd, &info),
		                 0);
	}
	/* sterf */
	assert_int_equal(KOP(kb, sterf, KERN_F64, 2, A, B, NULL), NQ_EBADPARAM);
	info = 5;
	assert_int_equal(KOP(kb, sterf, bad, 2, A, B, &info), NQ_EBADPARAM);
	assert_int_equal(info, 0);
	assert_int_equal(KOP(kb, sterf, KERN_F64, -1, A, B, &info),
	                 NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, sterf, KERN_F64, (int64_t) INT_MAX + 1, A, B, &info),
	        NQ_EBADPARAM);
	assert_int_equal(KOP(kb, sterf, KERN_F64, 2, NULL, B, &info),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, sterf, KERN_F64, 2, A, NULL, &info),
	                 NQ_EBADPARAM); /* n > 1 without e */
	assert_int_equal(KOP(kb, sterf, KERN_F64, 0, NULL, NULL, &info), 0);

	/* elementwise and reductions */
	assert_int_equal(KOP(kb, axpby, bad, 4, 1, A, 1, B), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, axpby, KERN_F64, 4, 1, NULL, 1, B),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, axpby, KERN_F64, 0, 1, NULL, 1, NULL), 0);
	assert_int_equal(KOP(kb, shrink, KERN_F64, -1, A, B, 0.5, 1),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, shrink, KERN_F64, 3037000500LL, A, B, 0.5, 1),
	                 NQ_EBADPARAM); /* n·n overflows */
	assert_int_equal(KOP(kb, shrink, KERN_F64, 2, A, NULL, 0.5, 1),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, symmetrize, KERN_F32, 2, NULL), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, symmetrize, bad, 2, A), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, add_diag, KERN_F64, 2, NULL, 1.0),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, add_diag, KERN_F64, -3, A, 1.0), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, get_diag, KERN_F64, 2, A, NULL), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, get_diag, KERN_F64, 2, NULL, B), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, scale_rc, KERN_F64, 2, 2, NULL, 2, NULL, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, scale_rc, KERN_F64, -1, 2, A, 2, NULL, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, scale_rc, KERN_F64, 0, 2, NULL, 1, NULL, NULL),
	                 0);
	assert_int_equal(KOP(kb, row_sumsq, KERN_F64, 2, 2, A, 1, B),
	                 NQ_EBADPARAM); /* lda < m */
	assert_int_equal(KOP(kb, row_sumsq, KERN_F64, 2, 2, A, 2, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, row_sumsq, KERN_F64, 2, 2, NULL, 2, B),
	                 NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, row_sumsq, KERN_F64, 2, INT64_MAX / 2 + 1, A, 2, B),
	        NQ_EBADPARAM); /* lda·n overflows */
	assert_int_equal(KOP(kb, sumsq, KERN_F64, 4, A, NULL), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, sumsq, KERN_F64, -1, A, &out), NQ_EBADPARAM);
	out = 5;
	assert_int_equal(KOP(kb, sumsq, KERN_F64, 0, NULL, &out), 0);
	assert_true(out == 0);
	assert_int_equal(KOP(kb, sum_log_diag, KERN_F64, 2, A, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, sum_log_diag, KERN_F64, 2, NULL, &out),
	                 NQ_EBADPARAM);
	out = 5;
	assert_int_equal(KOP(kb, sum_log_diag, KERN_F64, 0, NULL, &out), 0);
	assert_true(out == 0);
	assert_int_equal(KOP(kb, gersh_min, KERN_F64, 2, A, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, gersh_min, KERN_F64, 2, NULL, &out),
	                 NQ_EBADPARAM);
	out = 5;
	assert_int_equal(KOP(kb, gersh_min, KERN_F64, 0, NULL, &out), 0);
	assert_true(out == -INFINITY);
	assert_int_equal(KOP(kb, pearson, KERN_F64, 4, A, B, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, pearson, KERN_F64, 4, A, NULL, &out),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, pearson, KERN_F64, 0, NULL, NULL, &out), 0);
	assert_true(isnan(out));
	assert_int_equal(KOP(kb, pair_cov_acc, KERN_F64, 2, A, B, C, A, NULL),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, pair_cov_acc, KERN_F64, 2, A, B, NULL, A, B),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, pair_cov_acc, KERN_F64, -2, A, B, C, A, B),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, div_pos, KERN_F64, 4, A, NULL), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, div_pos, bad, 4, A, B), NQ_EBADPARAM);
	assert_int_equal(KOP(kb, convert, bad, A, KERN_F64, B, 4),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, convert, KERN_F32, A, bad, B, 4),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, convert, KERN_F32, NULL, KERN_F64, B, 4),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, convert, KERN_F32, A, KERN_F64, B, -4),
	                 NQ_EBADPARAM);
	assert_int_equal(
	        KOP(kb, conv_rows, KERN_F64, 1, 1, 8, 0, A, 10, B, C, 8),
	        NQ_EBADPARAM); /* nt 0 */
	assert_int_equal(KOP(kb, conv_rows, bad, 1, 1, 8, 3, A, 10, B, C, 8),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(kb, conv_rows, KERN_F64, 0, 1, 8, 3, NULL, 10,
	                     NULL, NULL, 8),
	                 0);
	dfree(kb, A);
	dfree(kb, B);
	dfree(kb, C);
}

/* Asked, not named: the cpu backend keeps host memory and may be called
 * from several threads; the cuda backend neither. */
static void
test_caps(void **state)
{
	struct kern_backend cpu;

	assert_int_equal(kern_cpu_open(&cpu), 0);
	assert_true(kern_mem_is_host(&cpu));
	assert_true(kern_ops_reentrant(&cpu));
	assert_non_null(cpu.ops->close);
	kern_close(&cpu);
#ifdef KERN_TEST_CUDA
	assert_false(kern_mem_is_host(&g_dev));
	assert_false(kern_ops_reentrant(&g_dev));
	assert_non_null(g_dev.ops->close);
#endif
}

/* ---- tests: dense linear algebra */

static void
test_gemm(void **state)
{
	/* m ≥ 128 with n, k ≤ 192: the cpu backend's own Aᵀ B (float, β 0)
	 * for its tiles of 32 and 16 rows, the tail rows, k off the 16-row
	 * transposes, blocks of 256 rows, n off the 8-column blocks; k ≥ 256
	 * with n ≤ 32: its own Aᵀ B (float64, β 0, OpenBLAS on one thread,
	 * as here) for its tiles of 3 columns of A and the 1 or 2 left, n off
	 * and past 8-column blocks, k off and on 8 rows */
	static const int64_t sz[][3] = {
	        {1, 1, 1},     {7, 5, 3},    {33, 17, 65},   {130, 70, 129},
	        {150, 36, 48}, {300, 9, 20}, {529, 192, 17}, {0, 5, 3},
	        {5, 0, 3},     {4, 6, 0},    {17, 8, 256},   {40, 21, 301},
	        {3, 32, 1000}, {1, 1, 257},  {2, 9, 263}};
	int threads = openblas_get_num_threads();

	kern_cpu_set_threads(1);
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++)
		for (int t = 0; t < 4; t++)
			for (int bz = 0; bz < 2; bz++) {
				enum kern_trans ta = t & 1 ? KERN_T : KERN_N;
				enum kern_trans tb = t & 2 ? KERN_T : KERN_N;
				int64_t m = sz[s][0], n = sz[s][1],
				        k = sz[s][2];
				int64_t lda = (ta == KERN_N ? m : k) + 2;
				int64_t ldb = (tb == KERN_N ? k : n) + 1;
				int64_t ldc = m + 3;
				double beta = bz ? 0.0 : -0.7;
				double *A =
				        hrand(dt, lda * (ta == KERN_N ? k : m));
				double *B =
				        hrand(dt, ldb * (tb == KERN_N ? n : k));
				double *C = hrand(dt, ldc * n);
				double *W = hdup(C, ldc * n);

				run_gemm(&g_dev, dt, ta, tb, m, n, k, 1.3, A,
				         lda, B, ldb, beta, C, ldc);
				WANT(gemm, dt, ta, tb, m, n, k, 1.3, A, lda, B,
				     ldb, beta, W, ldc);
				check_close("gemm", dt, C, W, ldc * n,
				            tol(dt, TOL_BLAS));
				free(A);
				free(B);
				free(C);
				free(W);
			}
	kern_cpu_set_threads(threads);
}

#ifndef KERN_TEST_CUDA
/* gemm takes the cpu backend's tall kernel (kern_cpu_tall.c) for
 * k ≥ 256, n ≤ 32 only while OpenBLAS runs one thread (test_gemm sets
 * one, so its shapes reach the kernel). */
static void
test_gemm_tall_route(void **state)
{
	int threads = openblas_get_num_threads();

	(void) state;
	kern_cpu_set_threads(1);
	assert_true(kern_cpu_tall_fits(40, 21, 301));
	assert_false(kern_cpu_tall_fits(40, 33, 301));
	assert_false(kern_cpu_tall_fits(40, 21, 255));
	kern_cpu_set_threads(2);
	if (openblas_get_num_threads() == 2)
		assert_false(kern_cpu_tall_fits(40, 21, 301));
	kern_cpu_set_threads(threads);
}
#endif

static void
test_syrk(void **state)
{
	static const int64_t sz[][2] = {{1, 1},    {5, 3}, {33, 70},
	                                {130, 17}, {0, 3}, {4, 0}};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++)
		for (int t = 0; t < 2; t++)
			for (int bz = 0; bz < 2; bz++) {
				enum kern_trans tr = t ? KERN_T : KERN_N;
				int64_t n = sz[s][0], k = sz[s][1];
				int64_t lda = (tr == KERN_N ? n : k) + 1;
				int64_t ldc = n + 2;
				double beta = bz ? 0.0 : 0.5;
				double *A =
				        hrand(dt, lda * (tr == KERN_N ? k : n));
				double *C = hrand(dt, ldc * n);
				double *W;

				for (int64_t j = 0; j < n; j++)
					for (int64_t i = 0; i < j; i++)
						C[i + j * ldc] = C[j + i * ldc];
				W = hdup(C, ldc * n);
				run_syrk(&g_dev, dt, tr, n, k, -0.9, A, lda,
				         beta, C, ldc);
				WANT(syrk, dt, tr, n, k, -0.9, A, lda, beta, W,
				     ldc);
				check_close("syrk", dt, C, W, ldc * n,
				            tol(dt, TOL_BLAS));
				/* both triangles written: exactly symmetric */
				for (int64_t j = 0; j < n; j++)
					for (int64_t i = 0; i < j; i++)
						assert_true(C[i + j * ldc] ==
						            C[j + i * ldc]);
				free(A);
				free(C);
				free(W);
			}
}

/* Well-conditioned SPD (eigenvalues in [1, ~5]) in the lower triangle of an
 * lda×n buffer; strict upper and padding hold `junk`. */
static double *
spd(enum kern_dtype dt, int64_t n, int64_t lda, double junk)
{
	double *B = hrand(dt, n * n), *A = hvec(lda * n);

	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < lda; i++) {
			double s = 0;
			if (i < j || i >= n) {
				A[i + j * lda] = junk;
				continue;
			}
			for (int64_t l = 0; l < n; l++)
				s += B[i + l * n] * B[j + l * n];
			A[i + j * lda] = round_dt(dt, s / n + (i == j));
		}
	free(B);
	return A;
}

static void
test_potrf(void **state)
{
	static const int64_t sz[] = {0, 1, 2, 17, 64, 129};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t n = sz[s], lda = n + 3;
		double *A = spd(dt, n, lda, 7777.0), *W = hdup(A, lda * n);
		int info = -1, winfo = -1;

		run_potrf(&g_dev, dt, n, A, lda, &info);
		WANT(potrf, dt, n, W, lda, &winfo);
		assert_int_equal(winfo, 0);
		assert_int_equal(info, 0);
		check_close("potrf", dt, A, W, lda * n, tol(dt, TOL_BLAS));
		/* strict upper and padding untouched, bit for bit */
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < lda; i++)
				if (i < j || i >= n)
					assert_true(A[i + j * lda] == 7777.0);
		free(A);
		free(W);
	}
}

static void
test_potrf_not_pd(void **state)
{
	/* singular: second pivot is exactly 0; indefinite: second is -1 */
	static const double sing[9] = {1, 1, 0, 1, 1, 0, 0, 0, 1};
	static const double indef[9] = {1, 0, 0, 0, -1, 0, 0, 0, 1};
	double A[9];
	int info;

	FOR_DT(dt)
	{
		memcpy(A, sing, sizeof(A));
		run_potrf(&g_dev, dt, 3, A, 3, &info);
		assert_int_equal(info, 2);
		memcpy(A, indef, sizeof(A));
		run_potrf(&g_dev, dt, 3, A, 3, &info);
		assert_int_equal(info, 2);
		A[0] = -4;
		run_potrf(&g_dev, dt, 1, A, 1, &info);
		assert_int_equal(info, 1);
	}
}

static void
test_trsm(void **state)
{
	static const int64_t sz[][2] = {{1, 1},   {5, 3}, {64, 17},
	                                {130, 1}, {0, 3}, {3, 0}};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t n = sz[s][0], m = sz[s][1];
		int64_t ldl = n + 1, ldb = n + 2;
		double *L = hvec(ldl * n), *B = hrand(dt, ldb * m), *W;

		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < ldl; i++) {
				double v;
				if (i < j)
					v = 1234.5; /* must not be used */
				else if (i == j)
					v = 2 + fabs(urand());
				else if (i < n)
					v = urand() / (double) n;
				else
					v = 0;
				L[i + j * ldl] = round_dt(dt, v);
			}
		W = hdup(B, ldb * m);
		run_trsm(&g_dev, dt, n, m, L, ldl, B, ldb);
		WANT(trsm, dt, n, m, L, ldl, W, ldb);
		check_close("trsm", dt, B, W, ldb * m, tol(dt, TOL_BLAS));
		free(L);
		free(B);
		free(W);
	}
}

/* A = Q diag(lam) Qᵀ with Q a product of three Householder reflectors and
 * lam = 1..n shuffled: a spectrum with unit gaps and known eigenvectors. */
static void
known_spectrum(enum kern_dtype dt, int64_t n, int64_t lda, double *A, double *Q,
               double *lam)
{
	double *u = hvec(n);

	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < n; i++)
			Q[i + j * n] = i == j;
	for (int r = 0; r < 3; r++) {
		double uu = 0;
		for (int64_t i = 0; i < n; i++) {
			u[i] = urand();
			uu += u[i] * u[i];
		}
		/* Q = Q (I - 2 u uᵀ / uᵀu) */
		for (int64_t i = 0; i < n; i++) {
			double qu = 0;
			for (int64_t l = 0; l < n; l++)
				qu += Q[i + l * n] * u[l];
			for (int64_t l = 0; l < n; l++)
				Q[i + l * n] -= 2 * qu * u[l] / uu;
		}
	}
	for (int64_t i = 0; i < n; i++)
		lam[i] = (double) ((i * 7) % n + 1) - (double) n / 3;
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < lda; i++) {
			double s = 0;
			if (i < j || i >= n) { /* not to be read */
				A[i + j * lda] = 999.0;
				continue;
			}
			for (int64_t l = 0; l < n; l++)
				s += Q[i + l * n] * lam[l] * Q[j + l * n];
			A[i + j * lda] = round_dt(dt, s);
		}
	free(u);
}

static double
col_dot(const double *a, int64_t lda, int64_t ja, const double *b, int64_t ldb,
        int64_t jb, int64_t n)
{
	double s = 0;
	for (int64_t i = 0; i < n; i++)
		s += a[i + ja * lda] * b[i + jb * ldb];
	return s;
}

static void
test_syevd(void **state)
{
	static const int64_t sz[] = {0, 1, 2, 17, 64, 101};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t n = sz[s], lda = n + 1;
		double *A = hvec(lda * n), *Q = hvec(n * n), *lam = hvec(n);
		double *W = hvec(n), *sorted = hvec(n);
		double etol = tol(dt, TOL_EIG);
		double vtol = dt == KERN_F64 ? 1e-9 : 1e-4;
		double *A0;
		int info = -1;

		known_spectrum(dt, n, lda, A, Q, lam);
		A0 = hdup(A, lda * n);
		run_syevd(&g_dev, dt, n, A, lda, W, &info);
		assert_int_equal(info, 0);
		for (int64_t i = 0; i < n; i++)
			sorted[i] = (double) (i + 1) - (double) n / 3;
		for (int64_t i = 1; i < n; i++)
			assert_true(W[i] > W[i - 1]);
		check_close("syevd values", dt, W, sorted, n, etol);
		/* column i is ±(the column of Q whose lam is sorted[i]) */
		for (int64_t i = 0; i < n; i++) {
			int64_t q = 0;
			while (q < n && lam[q] != sorted[i])
				q++;
			assert_true(q < n);
			check_scalar("syevd vector", dt,
			             fabs(col_dot(A, lda, i, Q, n, q, n)), 1.0,
			             vtol);
		}
#ifdef KERN_TEST_CUDA
		{ /* and against the cpu backend on the same input */
			double *RW = hvec(n);
			int rinfo = -1;
			run_syevd(&g_ref, dt, n, A0, lda, RW, &rinfo);
			assert_int_equal(rinfo, 0);
			check_close("syevd values vs cpu", dt, W, RW, n, etol);
			for (int64_t i = 0; i < n; i++)
				check_scalar(
				        "syevd vector vs cpu", dt,
				        fabs(col_dot(A, lda, i, A0, lda, i, n)),
				        1.0, vtol);
			free(RW);
		}
#endif
		free(A);
		free(A0);
		free(Q);
		free(lam);
		free(W);
		free(sorted);
	}
}

/* ---- syevr_below */

static void
run_syevr_below(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                double *A, int64_t lda, double vu, int64_t max_k, double *W,
                double *Z, int64_t *k, int *info)
{
	int64_t mz = max_k > 0 ? max_k : 1;
	void *dA = put(kb, dt, A, lda * n), *dW = put(kb, dt, NULL, n);
	void *dZ = put(kb, dt, NULL, n * mz);

	*info = -1;
	*k = -1;
	assert_int_equal(KOP(kb, syevr_below, dt, n, dA, lda, vu, max_k, dW, dZ,
	                     n, k, info),
	                 0);
	get(kb, dt, dW, n, W);
	get(kb, dt, dZ, n * mz, Z);
	dfree(kb, dA);
	dfree(kb, dW);
	dfree(kb, dZ);
}

static void
test_syevr_below(void **state)
{
	static const int64_t sz[] = {1, 2, 17, 64, 101};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t n = sz[s], lda = n + 1, m = n / 3, k = -1;
		double *A = hvec(lda * n), *Q = hvec(n * n), *lam = hvec(n);
		double *W = hvec(n), *Z = hvec(n * (m + 1));
		double etol = tol(dt, TOL_EIG);
		double vtol = dt == KERN_F64 ? 1e-9 : 1e-4;
		/* eigenvalues (i+1) − n/3: exactly m of them lie below vu */
		double vu = (double) m + 0.5 - (double) n / 3;
		double *A0;
		int info = -1;

		known_spectrum(dt, n, lda, A, Q, lam);
		A0 = hdup(A, lda * n);
		run_syevr_below(&g_dev, dt, n, A, lda, vu, m, W, Z, &k, &info);
		assert_int_equal(info, 0);
		assert_int_equal(k, m);
		for (int64_t i = 0; i < m; i++) {
			double want = (double) (i + 1) - (double) n / 3;
			int64_t q = 0;

			check_scalar("syevr_below value", dt, W[i], want,
			             etol * (double) n);
			while (q < n && lam[q] != want)
				q++;
			assert_true(q < n);
			check_scalar("syevr_below vector", dt,
			             fabs(col_dot(Z, n, i, Q, n, q, n)), 1.0,
			             vtol);
		}
#ifdef KERN_TEST_CUDA
		{ /* and against the cpu backend on the same input */
			double *RW = hvec(n), *RZ = hvec(n * (m + 1));
			int64_t rk = -1;
			int rinfo = -1;

			memcpy(A, A0, (size_t) (lda * n) * sizeof(*A));
			run_syevr_below(&g_ref, dt, n, A, lda, vu, m, RW, RZ,
			                &rk, &rinfo);
			assert_int_equal(rinfo, 0);
			assert_int_equal(rk, k);
			check_close("syevr_below values vs cpu", dt, W, RW, k,
			            etol);
			for (int64_t i = 0; i < k; i++)
				check_scalar(
				        "syevr_below vector vs cpu", dt,
				        fabs(col_dot(Z, n, i, RZ, n, i, n)),
				        1.0, vtol);
			free(RW);
			free(RZ);
		}
#endif
		/* more than max_k below vu: the count only */
		if (m > 0) {
			memcpy(A, A0, (size_t) (lda * n) * sizeof(*A));
			run_syevr_below(&g_dev, dt, n, A, lda, vu, m - 1, W, Z,
			                &k, &info);
			assert_int_equal(info, 0);
			assert_int_equal(k, m);
		}
		/* nothing below the smallest eigenvalue */
		memcpy(A, A0, (size_t) (lda * n) * sizeof(*A));
		run_syevr_below(&g_dev, dt, n, A, lda, 0.5 - (double) n / 3, m,
		                W, Z, &k, &info);
		assert_int_equal(info, 0);
		assert_int_equal(k, 0);
		free(A);
		free(A0);
		free(Q);
		free(lam);
		free(W);
		free(Z);
	}
}

/* ---- syev_side */

static void
run_syev_side(struct kern_backend *kb, enum kern_dtype dt, int64_t n, double *A,
              int64_t lda, int64_t max_k, double *W, double *Z, int64_t *k,
              int *side, int *info)
{
	int64_t mz = max_k > 0 ? max_k : 1;
	void *dA = put(kb, dt, A, lda * n), *dW = put(kb, dt, NULL, n);
	void *dZ = put(kb, dt, NULL, n * mz);

	*info = -1;
	*k = -1;
	*side = 0;
	assert_int_equal(KOP(kb, syev_side, dt, n, dA, lda, dW, max_k, dZ, n, k,
	                     side, info),
	                 0);
	get(kb, dt, dW, n, W);
	get(kb, dt, dZ, n * mz, Z);
	dfree(kb, dA);
	dfree(kb, dW);
	dfree(kb, dZ);
}

static void
test_syev_side(void **state)
{
	static const int64_t sz[] = {1, 2, 17, 64, 101};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++)
		for (int neg = 0; neg < 2; neg++) {
			int64_t n = sz[s], lda = n + 1, mk = n / 2, k = -1;
			double *A = hvec(lda * n), *Q = hvec(n * n);
			double *lam = hvec(n), *W = hvec(n),
			       *Z = hvec(n * mk + 1);
			double *want = hvec(n), *A0;
			double etol = tol(dt, TOL_EIG);
			double vtol = dt == KERN_F64 ? 1e-9 : 1e-4;
			int64_t nneg = 0, npos = 0, wk, off;
			int info = -1, side = 0;

			/* eigenvalues j + 1 − n/3 (none is 0), or their
			 * negatives: the smaller side is each side in turn */
			known_spectrum(dt, n, lda, A, Q, lam);
			for (int64_t i = 0; i < lda * n; i++)
				A[i] = neg ? -A[i] : A[i];
			for (int64_t i = 0; i < n; i++) {
				lam[i] = neg ? -lam[i] : lam[i];
				nneg += lam[i] < 0;
				npos += lam[i] > 0;
				want[i] = (double) (i + 1) - (double) n / 3;
			}
			if (neg) /* ascending: −(n − i) + n/3 */
				for (int64_t i = 0; i < n; i++)
					want[i] = (double) (i - n) +
					          (double) n / 3;
			A0 = hdup(A, lda * n);
			run_syev_side(&g_dev, dt, n, A, lda, mk, W, Z, &k,
			              &side, &info);
			assert_int_equal(info, 0);
			assert_int_equal(side, nneg <= npos ? -1 : 1);
			wk = side < 0 ? nneg : npos;
			assert_int_equal(k, wk);
			assert_true(k <= mk);
			off = side < 0 ? 0 : n - k;
			check_close("syev_side values", dt, W, want + off, k,
			            etol * (double) n);
			for (int64_t i = 0; i < k; i++) {
				int64_t q = 0;

				while (q < n &&
				       fabs(lam[q] - want[off + i]) > 1e-9)
					q++;
				assert_true(q < n);
				check_scalar("syev_side vector", dt,
				             fabs(col_dot(Z, n, i, Q, n, q, n)),
				             1.0, vtol);
			}
#ifdef KERN_TEST_CUDA
			{ /* and against the cpu backend on the same input */
				double *RW = hvec(n), *RZ = hvec(n * mk + 1);
				int64_t rk = -1;
				int rinfo = -1, rside = 0;

				memcpy(A, A0, (size_t) (lda * n) * sizeof(*A));
				run_syev_side(&g_ref, dt, n, A, lda, mk, RW, RZ,
				              &rk, &rside, &rinfo);
				assert_int_equal(rinfo, 0);
				assert_int_equal(rk, k);
				assert_int_equal(rside, side);
				check_close("syev_side values vs cpu", dt, W,
				            RW, k, etol);
				for (int64_t i = 0; i < k; i++)
					check_scalar("syev_side vector vs cpu",
					             dt,
					             fabs(col_dot(Z, n, i, RZ,
					                          n, i, n)),
					             1.0, vtol);
				free(RW);
				free(RZ);
			}
#endif
			/* more than max_k on the side: the count only */
			if (k > 0) {
				memcpy(A, A0, (size_t) (lda * n) * sizeof(*A));
				run_syev_side(&g_dev, dt, n, A, lda, k - 1, W,
				              Z, &k, &side, &info);
				assert_int_equal(info, 0);
				assert_int_equal(k, wk);
			}
			/* a NaN: no convergence, as syevd */
			memcpy(A, A0, (size_t) (lda * n) * sizeof(*A));
			A[n - 1] = NAN;
			run_syev_side(&g_dev, dt, n, A, lda, mk, W, Z, &k,
			              &side, &info);
			assert_true(info != 0);
			assert_int_equal(k, 0);
			free(A);
			free(A0);
			free(Q);
			free(lam);
			free(W);
			free(Z);
			free(want);
		}
}

/* ---- tridiag_qt */

static void
run_tridiag(struct kern_backend *kb, enum kern_dtype dt, int64_t n, double *A,
            int64_t lda, double *d, double *e, int64_t m, double *B,
            int64_t ldb)
{
	void *dA = put(kb, dt, A, lda * n), *dd = put(kb, dt, NULL, n);
	void *de = put(kb, dt, NULL, n > 1 ? n - 1 : 1);
	void *dB = m > 0 ? put(kb, dt, B, ldb * m) : NULL;

	assert_int_equal(
	        KOP(kb, tridiag_qt, dt, n, dA, lda, dd, de, m, dB, ldb), 0);
	get(kb, dt, dd, n, d);
	get(kb, dt, de, n > 1 ? n - 1 : 0, e);
	if (m > 0) {
		get(kb, dt, dB, ldb * m, B);
		dfree(kb, dB);
	}
	dfree(kb, dA);
	dfree(kb, dd);
	dfree(kb, de);
}

/* Eigenvalues (ascending) of the tridiagonal (d, e), host LAPACK. */
static void
tri_eigvals(int64_t n, const double *d, const double *e, double *w)
{
	double *e2 = hvec(n);

	memcpy(w, d, (size_t) n * sizeof(*w));
	if (n > 1)
		memcpy(e2, e, (size_t) (n - 1) * sizeof(*e2));
	assert_int_equal(LAPACKE_dsterf((lapack_int) n, w, e2), 0);
	free(e2);
}

/* xᵀ (T − σI)⁻¹ x by LDLᵀ of the tridiagonal (positive definite here). */
static double
tri_quad(int64_t n, const double *d, const double *e, double sigma,
         const double *x)
{
	double piv = d[0] - sigma, y = x[0], q = y * y / piv;

	for (int64_t i = 1; i < n; i++) {
		double l = e[i - 1] / piv;

		piv = d[i] - sigma - l * e[i - 1];
		y = x[i] - l * y;
		q += y * y / piv;
	}
	return q;
}

static void
test_tridiag_qt(void **state)
{
	static const int64_t sz[] = {1, 2, 17, 64, 101};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t n = sz[s], lda = n + 1, m = s == 2 ? 0 : 3, ldb = n + 2;
		double *A = hvec(lda * n), *Q = hvec(n * n), *lam = hvec(n);
		double *d = hvec(n), *e = hvec(n), *w = hvec(n);
		double *sorted = hvec(n), *B = hrand(dt, ldb * 3), *B0;
		double *A0, sigma = -(double) n / 3 - (double) n - 1;
		double etol = tol(dt, TOL_EIG), btol = tol(dt, TOL_BLAS);

		known_spectrum(dt, n, lda, A, Q, lam);
		A0 = hdup(A, lda * n);
		B0 = hdup(B, ldb * 3);
		run_tridiag(&g_dev, dt, n, A, lda, d, e, m, B, ldb);
		/* T has A's spectrum */
		tri_eigvals(n, d, e, w);
		for (int64_t i = 0; i < n; i++)
			sorted[i] = (double) (i + 1) - (double) n / 3;
		check_close("tridiag eigenvalues", dt, w, sorted, n, etol);
		for (int64_t j = 0; j < m; j++) {
			const double *b = B0 + j * ldb, *qb = B + j * ldb;
			double nb = 0, nq = 0, want = 0;

			/* Qᵀ is orthogonal: norms kept */
			for (int64_t i = 0; i < n; i++) {
				nb += b[i] * b[i];
				nq += qb[i] * qb[i];
			}
			check_scalar("tridiag |Q^T b|", dt, sqrt(nq), sqrt(nb),
			             btol);
			/* bᵀ (A − σI)⁻¹ b from the known eigenvectors equals
			 * (Qᵀb)ᵀ (T − σI)⁻¹ (Qᵀb) */
			for (int64_t l = 0; l < n; l++) {
				double p = col_dot(Q, n, l, b, n, 0, n);
				want += p * p / (lam[l] - sigma);
			}
			check_scalar("tridiag quadratic form", dt,
			             tri_quad(n, d, e, sigma, qb), want, btol);
		}
#ifdef KERN_TEST_CUDA
		{ /* and against the cpu backend on the same input */
			double *rd = hvec(n), *re = hvec(n), *rw = hvec(n);
			double *RB = hdup(B0, ldb * 3);

			run_tridiag(&g_ref, dt, n, A0, lda, rd, re, m, RB, ldb);
			tri_eigvals(n, rd, re, rw);
			check_close("tridiag eigenvalues vs cpu", dt, w, rw, n,
			            etol);
			for (int64_t j = 0; j < m; j++)
				check_scalar(
				        "tridiag quadratic form vs cpu", dt,
				        tri_quad(n, d, e, sigma, B + j * ldb),
				        tri_quad(n, rd, re, sigma,
				                 RB + j * ldb),
				        btol);
			free(rd);
			free(re);
			free(rw);
			free(RB);
		}
#endif
		free(A);
		free(A0);
		free(B);
		free(B0);
		free(Q);
		free(lam);
		free(d);
		free(e);
		free(w);
		free(sorted);
	}
}

/* ---- sterf */

/* The eigenvalues of (d, e) into w (ascending), info 0 expected. */
static void
run_sterf(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
          const double *d, const double *e, double *w)
{
	void *dd = put(kb, dt, d, n);
	void *de = put(kb, dt, e, n > 1 ? n - 1 : 0);
	int info = -1;

	assert_int_equal(KOP(kb, sterf, dt, n, dd, de, &info), 0);
	assert_int_equal(info, 0);
	get(kb, dt, dd, n, w);
	dfree(kb, dd);
	dfree(kb, de);
}

/* The info of sterf on (d, e). */
static int
sterf_info(struct kern_backend *kb, enum kern_dtype dt, int64_t n,
           const double *d, const double *e)
{
	void *dd = put(kb, dt, d, n);
	void *de = put(kb, dt, e, n > 1 ? n - 1 : 0);
	int info = 99;

	assert_int_equal(KOP(kb, sterf, dt, n, dd, de, &info), 0);
	dfree(kb, dd);
	dfree(kb, de);
	return info;
}

static void
test_sterf(void **state)
{
	static const int64_t sz[] = {0, 1, 2, 17, 64, 101};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t n = sz[s];
		double *d = hrand(dt, n), *e = hrand(dt, n), *w = hvec(n);
		double *want = hvec(n), *one = hvec(n), *mone = hvec(n);
		double etol = tol(dt, TOL_EIG);

		run_sterf(&g_dev, dt, n, d, e, w);
		WANT(sterf, dt, n, d, e, want);
		for (int64_t i = 1; i < n; i++)
			assert_true(w[i] >= w[i - 1]);
		check_close("sterf", dt, w, want, n, etol);
		/* 2 on the diagonal, −1 beside it: 2 − 2 cos(kπ/(n + 1)) */
		for (int64_t i = 0; i < n; i++) {
			one[i] = 2;
			mone[i] = -1;
		}
		run_sterf(&g_dev, dt, n, one, mone, w);
		for (int64_t k = 0; k < n; k++)
			want[k] = 2 - 2 * cos((double) (k + 1) * M_PI /
			                      (double) (n + 1));
		check_close("sterf (2, -1)", dt, w, want, n, etol);
		free(d);
		free(e);
		free(w);
		free(want);
		free(one);
		free(mone);
	}
	FOR_DT(dt)
	{
		double d[3] = {1, 2, 3}, e[2] = {0.5, 0.25}, w[1] = {0};
		void *dd = put(&g_dev, dt, d, 1);
		int info = -1;

		/* n = 1 needs no e */
		assert_int_equal(KOP(&g_dev, sterf, dt, 1, dd, NULL, &info), 0);
		assert_int_equal(info, 0);
		get(&g_dev, dt, dd, 1, w);
		assert_true(w[0] == 1);
		dfree(&g_dev, dd);
		/* a NaN is refused through info (LAPACKE's check) */
		assert_int_equal(sterf_info(&g_dev, dt, 3, d, e), 0);
		d[1] = NAN;
		assert_int_equal(sterf_info(&g_dev, dt, 3, d, e), -2);
		d[1] = 2;
		e[1] = NAN;
		assert_int_equal(sterf_info(&g_dev, dt, 3, d, e), -3);
	}
}

/* ---- tests: elementwise and reductions */

static const int64_t counts[] = {0, 1, 1000, 4099, 70001};

static void
test_axpby(void **state)
{
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(counts) / sizeof(counts[0]); s++)
		for (int bz = 0; bz < 2; bz++) {
			int64_t c = counts[s];
			double *X = hrand(dt, c), *Y = hrand(dt, c);
			double *W = hdup(Y, c);
			double b = bz ? 0.0 : -0.25;

			run_axpby(&g_dev, dt, c, 1.5, X, b, Y);
			WANT(axpby, dt, c, 1.5, X, b, W);
			check_close("axpby", dt, Y, W, c, tol(dt, TOL_ELEM));
			free(X);
			free(Y);
			free(W);
		}
}

static const int64_t sq_sizes[] = {0, 1, 2, 5, 33, 130};

static void
test_shrink(void **state)
{
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sq_sizes) / sizeof(sq_sizes[0]); s++)
		for (int kd = 0; kd < 2; kd++) {
			int64_t n = sq_sizes[s];
			double *C = hrand(dt, n * n), *O = hrand(dt, n * n);
			double *W = hdup(O, n * n);

			run_shrink(&g_dev, dt, n, C, O, 0.3, kd);
			WANT(shrink, dt, n, C, W, 0.3, kd);
			check_close("shrink", dt, O, W, n * n,
			            tol(dt, TOL_ELEM));
			for (int64_t i = 0; kd && i < n; i++)
				assert_true(O[i + i * n] == C[i + i * n]);
			free(C);
			free(O);
			free(W);
		}
}

static void
test_shrink_in_place(void **state)
{
	FOR_DT(dt)
	{
		int64_t n = 9;
		double *C = hrand(dt, n * n), *O = hvec(n * n),
		       *W = hvec(n * n);
		void *d = put(&g_dev, dt, C, n * n);

		assert_int_equal(KOP(&g_dev, shrink, dt, n, d, d, 0.6, 1), 0);
		get(&g_dev, dt, d, n * n, O);
		WANT(shrink, dt, n, C, W, 0.6, 1);
		check_close("shrink in place", dt, O, W, n * n,
		            tol(dt, TOL_ELEM));
		dfree(&g_dev, d);
		free(C);
		free(O);
		free(W);
	}
}

static void
test_symmetrize(void **state)
{
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sq_sizes) / sizeof(sq_sizes[0]); s++) {
		int64_t n = sq_sizes[s];
		double *A = hrand(dt, n * n), *W = hdup(A, n * n);

		run_symmetrize(&g_dev, dt, n, A);
		WANT(symmetrize, dt, n, W);
		check_close("symmetrize", dt, A, W, n * n, tol(dt, TOL_ELEM));
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < j; i++)
				assert_true(A[i + j * n] == A[j + i * n]);
		free(A);
		free(W);
	}
}

/* gersh_min on symmetric matrices whose diagonal is f times the row's
 * off-diagonal sum (margins near 1 − 1/f, of either sign), and the cases
 * where it must prove nothing. */
static void
test_gersh_min(void **state)
{
	static const double fs[] = {0.25, 1.25, 4.0};
	/* [[4, 1], [1, 1]]: H = [[1, ½], [½, 1]], λ_min = ½ exactly */
	double two[4] = {4, 1, 1, 1}, got;

	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sq_sizes) / sizeof(sq_sizes[0]); s++)
		for (size_t f = 0; f < sizeof(fs) / sizeof(fs[0]); f++) {
			int64_t n = sq_sizes[s];
			double *A = hrand(dt, n * n), want;

			for (int64_t j = 0; j < n; j++)
				for (int64_t i = 0; i < j; i++)
					A[i + j * n] = A[j + i * n];
			for (int64_t i = 0; i < n; i++) {
				double r = 0;

				for (int64_t j = 0; j < n; j++)
					r += j != i ? fabs(A[i + j * n]) : 0;
				A[i + i * n] = fs[f] * r + (r == 0);
			}
			run_gersh_min(&g_dev, dt, n, A, &got);
			WANT(gersh_min, dt, n, A, &want);
			if (n == 0)
				assert_true(got == -INFINITY);
			else
				check_scalar("gersh_min", dt, got, want,
				             tol(dt, TOL_ELEM));
			if (n > 2 && f != 1)
				assert_true((got > 0) == (fs[f] > 1));
			free(A);
		}
	FOR_DT(dt)
	{
		run_gersh_min(&g_dev, dt, 2, two, &got);
		assert_true(fabs(got - 0.5) < 1e-15);
		two[3] = 0; /* a zero pivot: nothing proven */
		run_gersh_min(&g_dev, dt, 2, two, &got);
		assert_true(got == -INFINITY);
		two[3] = 1;
		two[1] = two[2] = NAN;
		run_gersh_min(&g_dev, dt, 2, two, &got);
		assert_true(got == -INFINITY);
		two[1] = two[2] = 1;
	}
	(void) state;
}

static void
test_diag_ops(void **state)
{
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sq_sizes) / sizeof(sq_sizes[0]); s++) {
		int64_t n = sq_sizes[s];
		double *A = hrand(dt, n * n), *W = hdup(A, n * n);
		double *d = hvec(n), *wd = hvec(n), got, want;

		run_add_diag(&g_dev, dt, n, A, 2.5);
		WANT(add_diag, dt, n, W, 2.5);
		check_close("add_diag", dt, A, W, n * n, tol(dt, TOL_ELEM));

		run_get_diag(&g_dev, dt, n, A, d);
		WANT(get_diag, dt, n, A, wd);
		check_close("get_diag", dt, d, wd, n, tol(dt, TOL_ELEM));

		/* diagonal now in [1.5, 3.5]: log is defined */
		run_sum_log_diag(&g_dev, dt, n, A, &got);
		WANT(sum_log_diag, dt, n, A, &want);
		check_scalar("sum_log_diag", dt, got, want, tol(dt, TOL_ELEM));
		if (n == 0)
			assert_true(got == 0);
		free(A);
		free(W);
		free(d);
		free(wd);
	}
}

static void
test_scale_rc(void **state)
{
	static const int64_t sz[][2] = {{1, 1}, {7, 5}, {65, 33}, {0, 4}};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++)
		for (int which = 0; which < 4; which++) {
			int64_t m = sz[s][0], n = sz[s][1], lda = m + 1;
			double *A = hrand(dt, lda * n), *W = hdup(A, lda * n);
			double *r = (which & 1) ? hrand(dt, m) : NULL;
			double *c = (which & 2) ? hrand(dt, n) : NULL;

			run_scale_rc(&g_dev, dt, m, n, A, lda, r, c);
			WANT(scale_rc, dt, m, n, W, lda, r, c);
			check_close("scale_rc", dt, A, W, lda * n,
			            tol(dt, TOL_ELEM));
			free(A);
			free(W);
			free(r);
			free(c);
		}
}

static void
test_row_sumsq(void **state)
{
	static const int64_t sz[][2] = {
	        {1, 1}, {7, 0}, {65, 33}, {130, 257}, {3, 5000}};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t m = sz[s][0], n = sz[s][1], lda = m + 2;
		double *A = hrand(dt, lda * n), *o = hvec(m), *w = hvec(m);

		run_row_sumsq(&g_dev, dt, m, n, A, lda, o);
		WANT(row_sumsq, dt, m, n, A, lda, w);
		/* stored in dt: one rounding of the double sum */
		check_close("row_sumsq", dt, o, w, m, tol(dt, TOL_ELEM));
		free(A);
		free(o);
		free(w);
	}
}

static void
test_sumsq(void **state)
{
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(counts) / sizeof(counts[0]); s++) {
		int64_t c = counts[s];
		double *X = hrand(dt, c), got, want;

		run_sumsq(&g_dev, dt, c, X, &got);
		WANT(sumsq, dt, c, X, &want);
		/* double accumulation whatever dt: tight in both */
		check_scalar("sumsq", dt, got, want, 1e-12);
		free(X);
	}
}

static void
test_pearson(void **state)
{
	static const int64_t pc[] = {2, 3, 1000, 70001};
	FOR_DT(dt)
	{
		for (size_t s = 0; s < sizeof(pc) / sizeof(pc[0]); s++) {
			int64_t c = pc[s];
			double *X = hrand(dt, c), *Y = hvec(c), got, want;

			for (int64_t i = 0; i < c; i++) /* r ≈ 0.8 */
				Y[i] = round_dt(dt, 100 + X[i] + 0.7 * urand());
			run_pearson(&g_dev, dt, c, X, Y, &got);
			WANT(pearson, dt, c, X, Y, &want);
			check_scalar("pearson", dt, got, want, 1e-10);
			assert_true(got >= -1 && got <= 1);
			free(X);
			free(Y);
		}
		{
			double X[5] = {0.1, 0.1, 0.1, 0.1, 0.1};
			double Y[5] = {1, 2, 3, 4, 6}, got;
			for (int i = 0; i < 5; i++)
				X[i] = round_dt(dt, X[i]);
			run_pearson(&g_dev, dt, 5, X, Y, &got);
			assert_true(isnan(got)); /* constant X */
			run_pearson(&g_dev, dt, 5, Y, X, &got);
			assert_true(isnan(got));
			run_pearson(&g_dev, dt, 1, X, Y, &got);
			assert_true(isnan(got));
			run_pearson(&g_dev, dt, 5, Y, Y, &got);
			check_scalar("pearson self", dt, got, 1.0, 1e-12);
		}
	}
}

static void
test_pair_cov_acc(void **state)
{
	static const int64_t sz[] = {0, 1, 5, 33};
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(sz) / sizeof(sz[0]); s++) {
		int64_t n = sz[s], nn = n * n;
		double *Sxx = hvec(nn), *Sx = hrand(dt, nn), *Sm = hvec(nn);
		double *acc = hrand(dt, nn), *cnt = hvec(nn);
		double *wacc, *wcnt;

		for (int64_t i = 0; i < nn; i++) {
			Sm[i] = (double) (int) (3 + 3 * urand()); /* 0..5 */
			Sxx[i] = round_dt(dt, 5 + 2 * urand());
			cnt[i] = (double) (int) (4 + 3 * urand());
		}
		wacc = hdup(acc, nn);
		wcnt = hdup(cnt, nn);
		run_pair_cov_acc(&g_dev, dt, n, Sxx, Sx, Sm, acc, cnt);
		WANT(pair_cov_acc, dt, n, Sxx, Sx, Sm, wacc, wcnt);
		check_close("pair_cov_acc acc", dt, acc, wacc, nn,
		            tol(dt, TOL_ELEM));
		check_close("pair_cov_acc cnt", dt, cnt, wcnt, nn, 0);
		free(Sxx);
		free(Sx);
		free(Sm);
		free(acc);
		free(cnt);
		free(wacc);
		free(wcnt);
	}
}

static void
test_conv_rows(void **state)
{
	/* ng, group, n, nt: a single tap, taps longer than the kernel's
	 * shared chunk (256), rows longer than a block, ragged sizes, and
	 * weights past the cpu kernel's 16 KiB of stack scratch */
	static const int64_t cases[][4] = {{1, 1, 1, 1},    {3, 3, 700, 61},
	                                   {5, 2, 33, 300}, {2, 1, 257, 1},
	                                   {2, 4, 40, 600}, {0, 3, 10, 5},
	                                   {4, 3, 0, 7}};
	(void) state;
	FOR_DT(dt)
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int64_t ng = cases[c][0], group = cases[c][1], n = cases[c][2],
		        nt = cases[c][3], ldx = n + nt - 1 + 3, ldy = n + 2;
		int64_t rows = ng * group;
		double *X = hrand(dt, rows * ldx), *W = hrand(dt, rows * nt);
		double *Y = hrand(dt, ng * ldy), *Z = hdup(Y, ng * ldy);

		run_conv_rows(&g_dev, dt, ng, group, n, nt, X, ldx, W, Y, ldy);
		WANT(conv_rows, dt, ng, group, n, nt, X, ldx, W, Z, ldy);
		/* sums of group·nt products of values in [-1, 1) */
		check_close("conv_rows", dt, Y, Z, ng * ldy, tol(dt, TOL_BLAS));
		free(X);
		free(W);
		free(Y);
		free(Z);
	}
	/* bad arguments are refused, not run */
	FOR_DT(dt)
	{
		void *d = put(&g_dev, dt, NULL, 64);
		assert_int_equal(
		        KOP(&g_dev, conv_rows, dt, 1, 1, 8, 4, d, 10, d, d, 8),
		        NQ_EBADPARAM); /* ldx < n + nt - 1 */
		assert_int_equal(
		        KOP(&g_dev, conv_rows, dt, 2, 1, 8, 4, d, 11, d, d, 7),
		        NQ_EBADPARAM); /* ldy < n */
		assert_int_equal(
		        KOP(&g_dev, conv_rows, dt, 1, 0, 8, 4, d, 11, d, d, 8),
		        NQ_EBADPARAM); /* group 0 */
		assert_int_equal(KOP(&g_dev, conv_rows, dt, 1, 1, 8, 4, NULL,
		                     11, d, d, 8),
		                 NQ_EBADPARAM);
		dfree(&g_dev, d);
	}
}

static void
test_div_pos(void **state)
{
	FOR_DT(dt)
	for (size_t s = 0; s < sizeof(counts) / sizeof(counts[0]); s++) {
		int64_t c = counts[s];
		double *X = hrand(dt, c), *Y = hrand(dt, c), *W = hdup(X, c);

		for (int64_t i = 0; i < c; i += 7)
			Y[i] = 0;
		run_div_pos(&g_dev, dt, c, X, Y);
		WANT(div_pos, dt, c, W, Y);
		check_close("div_pos", dt, X, W, c, tol(dt, TOL_ELEM));
		for (int64_t i = 0; i < c; i++)
			if (!(Y[i] > 0))
				assert_true(X[i] == 0);
		free(X);
		free(Y);
		free(W);
	}
}

static void
test_convert(void **state)
{
	for (int d = 0; d < 2; d++)
		for (int sidx = 0; sidx < 2; sidx++)
			for (size_t s = 0; s < 4; s++) {
				enum kern_dtype dd = dts[d], ds = dts[sidx];
				int64_t c = counts[s];
				double *S = hrand(ds, c), *o = hvec(c);
				double *w = hvec(c);

				for (int64_t i = 0; i < c;
				     i++) /* not exact in f32 */
					S[i] = round_dt(ds, S[i] / 3);
				run_convert(&g_dev, dd, ds, S, c, o);
				WANT(convert, dd, ds, S, c, w);
				check_close("convert", dd, o, w, c, 0);
				free(S);
				free(o);
				free(w);
			}
}

#ifdef KERN_TEST_CUDA
/* n*n beyond 2^31 (f32, 8.6 GB): the 64-bit index paths of the own
 * kernels. Skipped when the device has not that much free memory. */
static void
test_large_index(void **state)
{
	struct kern_backend *kb = &g_dev;
	const int64_t n = 46341;
	size_t fr = 0, tot = 0, bytes = (size_t) (n * n) * sizeof(float);
	float one = 3.0f, back = 0;
	double got = 0, *d = hvec(n);
	void *A = NULL, *dd = NULL;

	assert_int_equal(KOP(kb, mem_info, &fr, &tot), 0);
	if (fr < bytes + ((size_t) 1 << 30)) {
		print_message("large index: %zu bytes free, skipped\n", fr);
		free(d);
		return;
	}
	assert_int_equal(KOP(kb, alloc, bytes, &A), 0);
	dd = put(kb, KERN_F32, NULL, n);
	assert_int_equal(KOP(kb, add_diag, KERN_F32, n, A, 1.0), 0);
	/* A[n-1, 0] = 3, then symmetrize: A[0, n-1] (index > 2^31) = 1.5 */
	assert_int_equal(
	        KOP(kb, upload, (float *) A + (n - 1), &one, sizeof(one)), 0);
	assert_int_equal(KOP(kb, symmetrize, KERN_F32, n, A), 0);
	assert_int_equal(KOP(kb, download, &back, (float *) A + (n - 1) * n,
	                     sizeof(back)),
	                 0);
	assert_true(back == 1.5f);
	assert_int_equal(KOP(kb, get_diag, KERN_F32, n, A, dd), 0);
	get(kb, KERN_F32, dd, n, d);
	for (int64_t i = 0; i < n; i++)
		assert_true(d[i] == 1.0);
	assert_int_equal(KOP(kb, sumsq, KERN_F32, n * n, A, &got), 0);
	assert_true(got == (double) n + 2 * 1.5 * 1.5);
	assert_int_equal(KOP(kb, shrink, KERN_F32, n, A, A, 0.5, 1), 0);
	assert_int_equal(KOP(kb, sum_log_diag, KERN_F32, n, A, &got), 0);
	assert_true(got == 0);
	assert_int_equal(KOP(kb, download, &back, (float *) A + (n - 1) * n,
	                     sizeof(back)),
	                 0);
	assert_true(back == 0.75f);
	dfree(kb, A);
	dfree(kb, dd);
	free(d);
}
#endif

/* ---- spikesort's batch path: filter_car, peaks_above, sub_spikes,
 * traffic (float32 only) */

/* Device copy of count host bytes (h NULL: zeros). */
static void *
put_bytes(struct kern_backend *kb, const void *h, size_t bytes)
{
	void *d = NULL;

	assert_int_equal(KOP(kb, alloc, bytes ? bytes : 1, &d), 0);
	if (bytes > 0 && h != NULL)
		assert_int_equal(KOP(kb, upload, d, h, bytes), 0);
	return d;
}

/* A Butterworth high-pass at 300 Hz of 30 kHz data as two sections
 * (spikesort's design, spelled out): b1, a1, b2, a2. */
static void
test_sos(double *sos)
{
	double W = tan(M_PI * 300.0 / 30000.0), D = W * W + W + 1;
	double v[10] = {1 / (1 + W),
	                -1 / (1 + W),
	                1,
	                (W - 1) / (W + 1),
	                1 / D,
	                -2 / D,
	                1 / D,
	                1,
	                (2 * W * W - 2) / D,
	                (W * W - W + 1) / D};
	memcpy(sos, v, sizeof(v));
}

static void
run_filter_car(struct kern_backend *kb, int64_t C, int64_t T, const float *X,
               const double *sos, int car, float *out)
{
	size_t bytes = sizeof(float) * (size_t) (C * T);
	void *d = put_bytes(kb, X, bytes);

	assert_int_equal(KOP(kb, filter_car, C, T, d, sos, car), 0);
	assert_int_equal(KOP(kb, download, out, d, bytes), 0);
	dfree(kb, d);
}

#ifndef KERN_TEST_CUDA
static int
cmp_f(const void *a, const void *b)
{
	float x = *(const float *) a, y = *(const float *) b;
	return (x > y) - (x < y);
}

/* Textbook: float mean removal, sorted median per sample, each channel
 * filtered forward then backward on its own. */
static void
naive_filter_car(int64_t C, int64_t T, const float *X, const double *sos,
                 int car, float *out)
{
	float *col = malloc(sizeof(float) * (size_t) C);
	float *x = malloc(sizeof(float) * (size_t) T);

	assert_non_null(col);
	assert_non_null(x);
	memcpy(out, X, sizeof(float) * (size_t) (C * T));
	for (int64_t c = 0; c < C; c++) {
		double s = 0;
		for (int64_t t = 0; t < T; t++)
			s += out[t * C + c];
		float m = (float) (s / (double) T);
		for (int64_t t = 0; t < T; t++)
			out[t * C + c] -= m;
	}
	for (int64_t t = 0; t < T && car && C >= 3; t++) {
		memcpy(col, out + t * C, sizeof(float) * (size_t) C);
		qsort(col, (size_t) C, sizeof(float), cmp_f);
		float med =
		        C % 2 ? col[C / 2] : (col[C / 2 - 1] + col[C / 2]) / 2;
		for (int64_t c = 0; c < C; c++)
			out[t * C + c] -= med;
	}
	for (int64_t c = 0; c < C; c++) {
		for (int64_t t = 0; t < T; t++)
			x[t] = out[t * C + c];
		for (int pass = 0; pass < 2; pass++) {
			double z1 = -sos[0] * x[pass ? T - 1 : 0], s1 = 0,
			       s2 = 0;
			for (int64_t i = 0; i < T; i++) {
				int64_t t = pass ? T - 1 - i : i;
				double xi = x[t], y = sos[0] * xi + z1;
				z1 = sos[1] * xi - sos[3] * y;
				double u = sos[4] * y + s1;
				s1 = sos[5] * y - sos[8] * u + s2;
				s2 = sos[6] * y - sos[9] * u;
				x[t] = (float) u;
			}
		}
		for (int64_t t = 0; t < T; t++)
			out[t * C + c] = x[t];
	}
	free(col);
	free(x);
}
#endif

/* filter_car against the textbook (cpu) or the cpu backend (cuda) on noise
 * around a drifting common signal with channel offsets, and integer data
 * full of ties; odd and even channel counts, with and without the
 * reference. On cuda the differing elements are counted too (the kernels
 * are written to give the cpu's bits). */
static void
test_filter_car(void **state)
{
	static const int64_t Cs[] = {1, 3, 4, 33, 384};
	double sos[10];

	(void) state;
	test_sos(sos);
	for (size_t ci = 0; ci < sizeof(Cs) / sizeof(Cs[0]); ci++)
		for (int kind = 0; kind < 2; kind++)
			for (int car = 0; car < 2; car++) {
				int64_t C = Cs[ci], T = 700, cnt = C * T,
				        ndiff = 0;
				float *X = malloc(sizeof(float) * (size_t) cnt);
				float *a = malloc(sizeof(float) * (size_t) cnt);
				float *b = malloc(sizeof(float) * (size_t) cnt);
				double com = 0, big = 0, err = 0;
				assert_true(X && a && b);
				for (int64_t t = 0; t < T; t++) {
					com += urand();
					for (int64_t c = 0; c < C; c++)
						X[t * C + c] =
						        kind ? (float) floor(
						                       4 *
						                       urand()) +
						                        (float) (c %
						                                 3)
						             : (float) (3 * urand() +
						                        com +
						                        10 * c);
				}
				run_filter_car(&g_dev, C, T, X, sos, car, a);
				WANT(filter_car, C, T, X, sos, car, b);
				for (int64_t i = 0; i < cnt; i++) {
					big = fmax(big, fabs(b[i]));
					err = fmax(err, fabs(a[i] - b[i]));
					ndiff += a[i] != b[i];
				}
#ifdef KERN_TEST_CUDA
				if (ndiff > 0)
					printf("filter_car C=%lld kind=%d "
					       "car=%d: "
					       "%lld of %lld differ, max %g\n",
					       (long long) C, kind, car,
					       (long long) ndiff,
					       (long long) cnt, err);
#else
				(void) ndiff; /* counted for the cuda build */
#endif
				assert_true(err <= 1e-6 * (big > 0 ? big : 1));
				free(X);
				free(a);
				free(b);
			}
	/* checks: no coefficients, a NULL batch */
	assert_int_equal(KOP(&g_dev, filter_car, 4, 10, NULL, sos, 1),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(&g_dev, filter_car, 4, 10, (float *) sos, NULL, 1),
	                 NQ_EBADPARAM);
	assert_int_equal(KOP(&g_dev, filter_car, 0, 10, NULL, sos, 1), 0);
}

static int64_t
run_peaks_above(struct kern_backend *kb, int64_t C, int64_t T, const float *Y,
                double th, int64_t lo, int64_t hi, int64_t w, int64_t nc,
                const int32_t *nbr, int64_t cap, int64_t *ht, int32_t *hc,
                float *ha)
{
	void *dY = put_bytes(kb, Y, sizeof(float) * (size_t) (C * T));
	void *dn = put_bytes(kb, nbr, sizeof(int32_t) * (size_t) (C * nc));
	int64_t n = -1;

	assert_int_equal(KOP(kb, peaks_above, C, T, dY, th, lo, hi, w, nc, dn,
	                     cap, ht, hc, ha, &n),
	                 0);
	dfree(kb, dY);
	dfree(kb, dn);
	return n;
}

#ifndef KERN_TEST_CUDA
static int64_t
naive_peaks_above(int64_t C, int64_t T, const float *Y, double th, int64_t lo,
                  int64_t hi, int64_t w, int64_t nc, const int32_t *nbr,
                  int64_t cap, int64_t *ht, int32_t *hc, float *ha)
{
	int64_t n = 0;

	for (int64_t t = lo; t < hi; t++)
		for (int64_t c = 0; c < C; c++) {
			float v = Y[t * C + c];
			int ok = v < (float) th;
			for (int64_t u = t - w; u <= t + w && ok; u++)
				for (int64_t j = 0;
				     j < nc && ok && u >= 0 && u < T; j++) {
					int64_t cj = nbr[c * nc + j];
					float x = Y[u * C + cj];
					if (x < v || (x == v && u < t) ||
					    (x == v && u == t && cj < c))
						ok = 0;
				}
			if (!ok)
				continue;
			if (n < cap) {
				ht[n] = t;
				hc[n] = (int32_t) c;
				ha[n] = v;
			}
			n++;
		}
	return n;
}
#endif

/* peaks_above on smooth negative bumps over noise, on integer data full of
 * ties (where the tie rule decides), with neighbourhoods that are not
 * symmetric; the lists must be equal element for element, and a cap
 * below the count still counts them all. */
static void
test_peaks_above(void **state)
{
	(void) state;
	for (int kind = 0; kind < 2; kind++) {
		int64_t C = 37, T = 900, nc = 5, w = 6, cap = 4000;
		float *Y = malloc(sizeof(float) * (size_t) (C * T));
		int32_t *nbr = malloc(sizeof(int32_t) * (size_t) (C * nc));
		int64_t *t1 = malloc(sizeof(int64_t) * (size_t) cap);
		int64_t *t2 = malloc(sizeof(int64_t) * (size_t) cap);
		int32_t *c1 = malloc(sizeof(int32_t) * (size_t) cap);
		int32_t *c2 = malloc(sizeof(int32_t) * (size_t) cap);
		float *a1 = malloc(sizeof(float) * (size_t) cap);
		float *a2 = malloc(sizeof(float) * (size_t) cap);
		assert_true(Y && nbr && t1 && t2 && c1 && c2 && a1 && a2);
		for (int64_t i = 0; i < C * T; i++)
			Y[i] = kind ? (float) floor(6 * urand())
			            : (float) (0.5 * urand());
		for (int s = 0; s < 60 && kind == 0; s++) {
			int64_t t0 = 10 + (int64_t) ((urand() + 1) * 430);
			int64_t c0 = (int64_t) ((urand() + 1) * 18) % C;
			for (int64_t d = -3; d <= 3; d++)
				Y[(t0 + d) * C + c0] -=
				        (float) (8 *
				                 exp(-0.3 * (double) (d * d)));
		}
		for (int64_t c = 0; c < C; c++)
			for (int64_t j = 0; j < nc;
			     j++) /* c first, then near */
				nbr[c * nc + j] =
				        (int32_t) ((c +
				                    (j + 1) / 2 *
				                            (j % 2 ? 1 : -1) +
				                    C) %
				                   C);
		double th = kind ? -4.5 : -2.0;
		uint64_t u0, d0, u1, d1;
		assert_int_equal(KOP(&g_dev, traffic, &u0, &d0), 0);
		int64_t n1 = run_peaks_above(&g_dev, C, T, Y, th, 3, T - 2, w,
		                             nc, nbr, cap, t1, c1, a1);
		/* only the count and the list come back (the cpu counts
		 * what a device would copy) */
		assert_int_equal(KOP(&g_dev, traffic, &u1, &d1), 0);
		assert_true(d1 - d0 == 8 + 16 * (uint64_t) n1);
		int64_t n2 = WANT(peaks_above, C, T, Y, th, 3, T - 2, w, nc,
		                  nbr, cap, t2, c2, a2);
		assert_int_equal(n1, n2);
		assert_true(n1 > 10 && n1 <= cap);
		for (int64_t i = 0; i < n1; i++) {
			assert_int_equal(t1[i], t2[i]);
			assert_int_equal(c1[i], c2[i]);
			assert_true(a1[i] == a2[i]);
			assert_true(a1[i] < th);
		}
		/* a cap below the count: the count still comes back */
		assert_int_equal(run_peaks_above(&g_dev, C, T, Y, th, 3, T - 2,
		                                 w, nc, nbr, 2, t1, c1, a1),
		                 n1);
		free(Y);
		free(nbr);
		free(t1);
		free(t2);
		free(c1);
		free(c2);
		free(a1);
		free(a2);
	}
	{
		int64_t n = 7;
		assert_int_equal(KOP(&g_dev, peaks_above, 4, 10, NULL, -1, 0,
		                     11, 1, 1, NULL, 0, NULL, NULL, NULL, &n),
		                 NQ_EBADPARAM);
		assert_int_equal(n, 0);
		assert_int_equal(KOP(&g_dev, peaks_above, 4, 10, NULL, -1, 5, 5,
		                     1, 1, NULL, 0, NULL, NULL, NULL, &n),
		                 0);
	}
}

static void
run_sub_spikes(struct kern_backend *kb, int64_t C, int64_t T, float *R,
               int64_t nt, int64_t K, const float *W, const int32_t *win,
               int64_t n, const int32_t *tk, const float *a)
{
	size_t rb = sizeof(float) * (size_t) (C * T);
	void *dR = put_bytes(kb, R, rb);
	void *dW = put_bytes(kb, W, sizeof(float) * (size_t) (K * C * nt));
	void *dwin = put_bytes(kb, win, sizeof(int32_t) * 2 * (size_t) K);
	void *dtk = put_bytes(kb, tk, sizeof(int32_t) * 2 * (size_t) n);
	void *da = put_bytes(kb, a, sizeof(float) * (size_t) n);

	assert_int_equal(
	        KOP(kb, sub_spikes, C, T, dR, nt, K, dW, dwin, n, dtk, da), 0);
	assert_int_equal(KOP(kb, download, R, dR, rb), 0);
	dfree(kb, dR);
	dfree(kb, dW);
	dfree(kb, dwin);
	dfree(kb, dtk);
	dfree(kb, da);
}

#ifndef KERN_TEST_CUDA
static void
naive_sub_spikes(int64_t C, int64_t T, float *R, int64_t nt, int64_t K,
                 const float *W, const int32_t *win, int64_t n,
                 const int32_t *tk, const float *a)
{
	(void) T;
	(void) K;
	for (int64_t i = 0; i < n; i++)
		for (int64_t tau = 0; tau < nt; tau++)
			for (int64_t c = win[2 * tk[2 * i + 1]];
			     c < win[2 * tk[2 * i + 1] + 1]; c++) {
				float p =
				        a[i] *
				        W[tk[2 * i + 1] * C * nt + c + C * tau];
				R[(tk[2 * i] + tau) * C + c] -= p;
			}
}
#endif

/* sub_spikes: templates on channel windows placed at non-overlapping
 * footprints (spikes on disjoint windows may share samples); the
 * residuals must be equal bit for bit. */
static void
test_sub_spikes(void **state)
{
	int64_t C = 24, T = 500, nt = 13, K = 3, n = 0;
	int32_t win[6] = {0, 8, 8, 20, 20, 24}, tk[2 * 64];
	float *R1 = malloc(sizeof(float) * (size_t) (C * T));
	float *R2 = malloc(sizeof(float) * (size_t) (C * T));
	float *W = malloc(sizeof(float) * (size_t) (K * C * nt)), a[64];

	(void) state;
	assert_true(R1 && R2 && W);
	for (int64_t i = 0; i < C * T; i++)
		R1[i] = R2[i] = (float) urand();
	for (int64_t i = 0; i < K * C * nt; i++)
		W[i] = (float) urand();
	/* each template k every 3 nt samples, offset by k: footprints on
	 * the same window never overlap, different windows are disjoint */
	for (int64_t k = 0; k < K; k++)
		for (int64_t t = 2 * k; t + nt <= T; t += 3 * nt) {
			tk[2 * n] = (int32_t) t;
			tk[2 * n + 1] = (int32_t) k;
			a[n] = (float) (5 * urand());
			n++;
		}
	run_sub_spikes(&g_dev, C, T, R1, nt, K, W, win, n, tk, a);
	WANT(sub_spikes, C, T, R2, nt, K, W, win, n, tk, a);
	assert_memory_equal(R1, R2, sizeof(float) * (size_t) (C * T));
	assert_int_equal(KOP(&g_dev, sub_spikes, C, T, NULL, nt, K, NULL, NULL,
	                     0, NULL, NULL),
	                 0);
	assert_int_equal(
	        KOP(&g_dev, sub_spikes, C, T, R1, T + 1, K, W, win, 1, tk, a),
	        NQ_EBADPARAM);
	free(R1);
	free(R2);
	free(W);
}

/* snippets: windows of random spikes (at the batch's ends too) gathered
 * on asymmetric neighbourhoods, equal to a host gather element for
 * element (a copy: exact on every backend). */
static void
test_snippets(void **state)
{
	int64_t C = 19, T = 300, nc = 4, nt = 11, n = 50;
	float *Y = malloc(sizeof(float) * (size_t) (C * T));
	float *S = malloc(sizeof(float) * (size_t) (n * nc * nt));
	int32_t *nbr = malloc(sizeof(int32_t) * (size_t) (C * nc)), tc[100];
	void *dY, *dn, *dtc, *dS;

	(void) state;
	assert_true(Y && S && nbr);
	for (int64_t i = 0; i < C * T; i++)
		Y[i] = (float) urand();
	for (int64_t c = 0; c < C; c++)
		for (int64_t j = 0; j < nc; j++)
			nbr[c * nc + j] = (int32_t) ((c + 3 * j) % C);
	for (int64_t i = 0; i < n; i++) {
		tc[2 * i] = i == 0   ? 0
		            : i == 1 ? (int32_t) (T - nt)
		                     : (int32_t) ((urand() + 1) / 2 *
		                                  (double) (T - nt));
		tc[2 * i + 1] = (int32_t) (i % C);
	}
	dY = put_bytes(&g_dev, Y, sizeof(float) * (size_t) (C * T));
	dn = put_bytes(&g_dev, nbr, sizeof(int32_t) * (size_t) (C * nc));
	dtc = put_bytes(&g_dev, tc, sizeof(tc));
	dS = put_bytes(&g_dev, NULL, sizeof(float) * (size_t) (n * nc * nt));
	assert_int_equal(
	        KOP(&g_dev, snippets, C, T, dY, nc, dn, nt, n, dtc, dS), 0);
	assert_int_equal(KOP(&g_dev, download, S, dS,
	                     sizeof(float) * (size_t) (n * nc * nt)),
	                 0);
	for (int64_t i = 0; i < n; i++)
		for (int64_t j = 0; j < nc; j++)
			for (int64_t k = 0; k < nt; k++)
				assert_true(S[(i * nc + j) * nt + k] ==
				            Y[(tc[2 * i] + k) * C +
				              nbr[tc[2 * i + 1] * nc + j]]);
	assert_int_equal(
	        KOP(&g_dev, snippets, C, T, dY, nc, dn, T + 1, n, dtc, dS),
	        NQ_EBADPARAM);
	dfree(&g_dev, dY);
	dfree(&g_dev, dn);
	dfree(&g_dev, dtc);
	dfree(&g_dev, dS);
	free(Y);
	free(S);
	free(nbr);
}

static void
run_score_best(struct kern_backend *kb, int64_t ng, int64_t n, const float *S,
               const float *mu, double lam, const float *th, const int32_t *kid,
               float *G, float *A, int32_t *Kb)
{
	void *dS = put_bytes(kb, S, sizeof(float) * (size_t) (ng * n));
	void *dmu = put_bytes(kb, mu, sizeof(float) * (size_t) ng);
	void *dth = th ? put_bytes(kb, th, sizeof(float) * (size_t) ng) : NULL;
	void *dk = put_bytes(kb, kid, sizeof(int32_t) * (size_t) ng);
	void *dG = put_bytes(kb, NULL, sizeof(float) * (size_t) n);
	void *dA = put_bytes(kb, NULL, sizeof(float) * (size_t) n);
	void *dK = put_bytes(kb, NULL, sizeof(int32_t) * (size_t) n);

	assert_int_equal(KOP(kb, score_best, ng, n, dS, n, dmu, lam, dth, dk,
	                     dG, dA, dK),
	                 0);
	assert_int_equal(KOP(kb, download, G, dG, sizeof(float) * (size_t) n),
	                 0);
	assert_int_equal(KOP(kb, download, A, dA, sizeof(float) * (size_t) n),
	                 0);
	assert_int_equal(
	        KOP(kb, download, Kb, dK, sizeof(int32_t) * (size_t) n), 0);
	dfree(kb, dS);
	dfree(kb, dmu);
	if (dth != NULL)
		dfree(kb, dth);
	dfree(kb, dk);
	dfree(kb, dG);
	dfree(kb, dA);
	dfree(kb, dK);
}

#ifndef KERN_TEST_CUDA
static void
naive_score_best(int64_t ng, int64_t n, const float *S, const float *mu,
                 double lam, const float *th, const int32_t *kid, float *G,
                 float *A, int32_t *Kb)
{
	for (int64_t t = 0; t < n; t++) {
		G[t] = -INFINITY;
		A[t] = 0;
		Kb[t] = -1;
		for (int64_t i = 0; i < ng; i++) {
			float s = S[i * n + t], v;
			if (mu[i] > 0 && lam > 0) {
				float l = (float) lam, x = s + l * mu[i];
				float xx = x * x, inv = 1 / (1 + l);
				float lmu = l * mu[i];
				v = x > 0 ? xx * inv - lmu * mu[i] : -INFINITY;
			} else {
				v = s > 0 ? s * s : -INFINITY;
			}
			if (v > G[t] && (th == NULL || v > th[i])) {
				G[t] = v;
				A[t] = s;
				Kb[t] = kid[i];
			}
		}
	}
}
#endif

/* score_best with and without the prior, rows with equal scores (the
 * first row keeps a tie), samples where every score is negative, and with
 * per-row thresholds (a row at or under its own is skipped, so a smaller
 * gain over its threshold wins); equal bit for bit. */
static void
test_score_best(void **state)
{
	int64_t ng = 6, n = 333;
	float *S = malloc(sizeof(float) * (size_t) (ng * n)), mu[6];
	float G1[333], G2[333], A1[333], A2[333], th[6];
	int32_t kid[6], K1[333], K2[333];

	(void) state;
	assert_non_null(S);
	for (int64_t i = 0; i < ng * n; i++)
		S[i] = (float) (8 * urand());
	for (int64_t t = 0; t < n; t += 7) /* ties between rows 1 and 4 */
		S[4 * n + t] = S[n + t];
	for (int64_t t = 0; t < n; t += 11) /* nothing positive */
		for (int64_t i = 0; i < ng; i++)
			S[i * n + t] = -(float) (i + 1);
	for (int64_t i = 0; i < ng; i++) {
		mu[i] = i % 3 == 0 ? 0 : (float) (3 + i);
		kid[i] = (int32_t) (10 * i + 1);
	}
	for (int64_t i = 0; i < ng; i++) /* row 2's own: above any gain */
		th[i] = i == 2 ? 1e9f : (float) (4 * i);
	for (int pass = 0; pass < 4; pass++) {
		double lam = pass & 1 ? 10 : 0;
		const float *t = pass & 2 ? th : NULL;
		run_score_best(&g_dev, ng, n, S, mu, lam, t, kid, G1, A1, K1);
		WANT(score_best, ng, n, S, mu, lam, t, kid, G2, A2, K2);
		assert_memory_equal(G1, G2, sizeof(G1));
		assert_memory_equal(A1, A2, sizeof(A1));
		assert_memory_equal(K1, K2, sizeof(K1));
		if (pass == 0) { /* no prior: no positive score, no best */
			assert_int_equal(K1[11], -1);
			assert_true(isinf(G1[11]) && G1[11] < 0);
		}
		for (int64_t u = 0; u < n; u++) {
			if (pass >= 2) /* no row over 1e9 */
				assert_true(K1[u] != kid[2]);
			if (pass >= 2 && K1[u] >= 0)
				assert_true(G1[u] > th[(K1[u] - 1) / 10]);
		}
	}
	free(S);
}

static int64_t
run_accept_peaks(struct kern_backend *kb, int64_t ng, int64_t n, int64_t ld,
                 const float *G, const int32_t *Kb, const float *A, double th,
                 int64_t w, const int32_t *nb0, const int32_t *nb, int64_t cap,
                 int64_t *gt, int32_t *k, float *a)
{
	void *dG = put_bytes(kb, G, sizeof(float) * (size_t) (ng * ld));
	void *dK = put_bytes(kb, Kb, sizeof(int32_t) * (size_t) (ng * ld));
	void *dA = put_bytes(kb, A, sizeof(float) * (size_t) (ng * ld));
	void *d0 = put_bytes(kb, nb0, sizeof(int32_t) * (size_t) (ng + 1));
	void *d1 = put_bytes(kb, nb, sizeof(int32_t) * (size_t) nb0[ng]);
	int64_t cnt = -1;

	assert_int_equal(KOP(kb, accept_peaks, ng, n, ld, dG, dK, dA, th, w, d0,
	                     d1, cap, gt, k, a, &cnt),
	                 0);
	dfree(kb, dG);
	dfree(kb, dK);
	dfree(kb, dA);
	dfree(kb, d0);
	dfree(kb, d1);
	return cnt;
}

#ifndef KERN_TEST_CUDA
static int64_t
naive_accept_peaks(int64_t ng, int64_t n, int64_t ld, const float *G,
                   const int32_t *Kb, const float *A, double th, int64_t w,
                   const int32_t *nb0, const int32_t *nb, int64_t cap,
                   int64_t *gt, int32_t *k, float *a)
{
	int64_t c = 0;

	for (int64_t g = 0; g < ng; g++)
		for (int64_t t = 0; t < n; t++) {
			float v = G[g * ld + t];
			int ok = v > (float) th;
			for (int64_t j = nb0[g]; j < nb0[g + 1] && ok; j++)
				for (int64_t u = t - w + 1; u < t + w; u++) {
					int64_t h = nb[j];
					float x;
					if (u < 0 || u >= n)
						continue;
					x = G[h * ld + u];
					if (x > v || (x == v && h < g) ||
					    (x == v && h == g && u < t))
						ok = 0;
				}
			if (!ok)
				continue;
			if (c < cap) {
				gt[c] = g * ld + t;
				k[c] = Kb[g * ld + t];
				a[c] = A[g * ld + t];
			}
			c++;
		}
	return c;
}
#endif

/* accept_peaks on smooth bumps and on integer gains full of ties, groups
 * overlapping in a chain (g with g ± 1) and one on its own; the lists must
 * be equal, and a cap below the count still counts them. */
static void
test_accept_peaks(void **state)
{
	int64_t ng = 5, n = 400, ld = 420, w = 9, cap = 2000;
	int32_t nb0[6], nb[16], *Kb = malloc(sizeof(int32_t) * 5 * 420);
	float *G = malloc(sizeof(float) * 5 * 420);
	float *A = malloc(sizeof(float) * 5 * 420);
	int64_t gt1[2000], gt2[2000];
	int32_t k1[2000], k2[2000];
	float a1[2000], a2[2000];
	int j = 0;

	(void) state;
	assert_true(Kb && G && A);
	for (int64_t g = 0; g < ng; g++) { /* 0-1-2-3 chain, 4 alone */
		nb0[g] = j;
		nb[j++] = (int32_t) g;
		if (g < 4 && g > 0)
			nb[j++] = (int32_t) (g - 1);
		if (g < 3)
			nb[j++] = (int32_t) (g + 1);
	}
	nb0[ng] = j;
	for (int kind = 0; kind < 2; kind++) {
		for (int64_t i = 0; i < ng * ld; i++) {
			double x = (double) (i % ld);
			int64_t row = i / ld;
			G[i] = kind ? (float) floor(5 * (urand() + 1))
			            : (float) (40 * sin(x / 13.0 +
			                                (double) row) +
			                       urand());
			Kb[i] = (int32_t) (i % 17);
			A[i] = (float) urand();
		}
		double th = kind ? 4.5 : 20;
		int64_t c1 = run_accept_peaks(&g_dev, ng, n, ld, G, Kb, A, th,
		                              w, nb0, nb, cap, gt1, k1, a1);
		int64_t c2 = WANT(accept_peaks, ng, n, ld, G, Kb, A, th, w, nb0,
		                  nb, cap, gt2, k2, a2);
		assert_int_equal(c1, c2);
		assert_true(c1 > 5 && c1 <= cap);
		for (int64_t i = 0; i < c1; i++) {
			assert_int_equal(gt1[i], gt2[i]);
			assert_int_equal(k1[i], k2[i]);
			assert_true(a1[i] == a2[i]);
		}
		assert_int_equal(run_accept_peaks(&g_dev, ng, n, ld, G, Kb, A,
		                                  th, w, nb0, nb, 1, gt1, k1,
		                                  a1),
		                 c1);
	}
	{
		int64_t cnt = 3;
		assert_int_equal(KOP(&g_dev, accept_peaks, 1, 10, 5, G, Kb, A,
		                     1.0, 2, nb0, nb, 0, NULL, NULL, NULL,
		                     &cnt),
		                 NQ_EBADPARAM);
		assert_int_equal(cnt, 0);
	}
	free(Kb);
	free(G);
	free(A);
}

/* The traffic counter: every upload and download counted, each way. */
static void
test_traffic(void **state)
{
	uint64_t u0, d0, u1, d1;
	char h[1000] = {0};
	void *d = put_bytes(&g_dev, NULL, 0);

	(void) state;
	dfree(&g_dev, d);
	assert_int_equal(KOP(&g_dev, alloc, sizeof(h), &d), 0);
	assert_int_equal(KOP(&g_dev, traffic, &u0, &d0), 0);
	assert_int_equal(KOP(&g_dev, upload, d, h, 1000), 0);
	assert_int_equal(KOP(&g_dev, upload, d, h, 24), 0);
	assert_int_equal(KOP(&g_dev, download, h, d, 300), 0);
	assert_int_equal(KOP(&g_dev, copy, d, (char *) d + 500, 400), 0);
	assert_int_equal(KOP(&g_dev, traffic, &u1, &d1), 0);
	assert_true(u1 - u0 == 1024);
	assert_true(d1 - d0 == 300);
	assert_int_equal(KOP(&g_dev, traffic, NULL, &d1), NQ_EBADPARAM);
	dfree(&g_dev, d);
}

static int
setup(void **state)
{
#ifdef KERN_TEST_CUDA
	if (kern_cuda_open(&g_dev, 0) != 0)
		return -1;
	if (kern_cpu_open(&g_ref) != 0)
		return -1;
#else
	if (kern_cpu_open(&g_dev) != 0)
		return -1;
#endif
	return 0;
}

static int
teardown(void **state)
{
	kern_close(&g_dev);
#ifdef KERN_TEST_CUDA
	kern_close(&g_ref);
#endif
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_alloc_zero_and_copy),
	        cmocka_unit_test(test_alloc_too_big),
	        cmocka_unit_test(test_mem_info),
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_bad_params),
	        cmocka_unit_test(test_bad_params_every_op),
	        cmocka_unit_test(test_caps),
	        cmocka_unit_test(test_gemm),
#ifndef KERN_TEST_CUDA
	        cmocka_unit_test(test_gemm_tall_route),
#endif
	        cmocka_unit_test(test_syrk),
	        cmocka_unit_test(test_potrf),
	        cmocka_unit_test(test_potrf_not_pd),
	        cmocka_unit_test(test_trsm),
	        cmocka_unit_test(test_syevd),
	        cmocka_unit_test(test_syevr_below),
	        cmocka_unit_test(test_tridiag_qt),
	        cmocka_unit_test(test_sterf),
	        cmocka_unit_test(test_syev_side),
	        cmocka_unit_test(test_axpby),
	        cmocka_unit_test(test_shrink),
	        cmocka_unit_test(test_shrink_in_place),
	        cmocka_unit_test(test_symmetrize),
	        cmocka_unit_test(test_diag_ops),
	        cmocka_unit_test(test_gersh_min),
	        cmocka_unit_test(test_scale_rc),
	        cmocka_unit_test(test_row_sumsq),
	        cmocka_unit_test(test_sumsq),
	        cmocka_unit_test(test_pearson),
	        cmocka_unit_test(test_pair_cov_acc),
	        cmocka_unit_test(test_div_pos),
	        cmocka_unit_test(test_convert),
	        cmocka_unit_test(test_conv_rows),
	        cmocka_unit_test(test_filter_car),
	        cmocka_unit_test(test_peaks_above),
	        cmocka_unit_test(test_sub_spikes),
	        cmocka_unit_test(test_snippets),
	        cmocka_unit_test(test_score_best),
	        cmocka_unit_test(test_accept_peaks),
	        cmocka_unit_test(test_traffic),
#ifdef KERN_TEST_CUDA
	        cmocka_unit_test(test_large_index),
#endif
	};

#ifdef KERN_TEST_CUDA
	if (kern_cuda_device_count() == 0) {
		printf("kern_cuda_test: no cuda device, skipped\n");
		return 77;
	}
#endif
	return cmocka_run_group_tests(tests, setup, teardown);
}
