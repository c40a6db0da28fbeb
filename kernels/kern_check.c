/*
 * kern_check.c — the checked entry points kern_<op>() of kern.h: every
 * op's argument checks, written once for every backend, then the
 * backend's op (which assumes valid input: kern_impl.h says what it may
 * assume). A refused call returns NQ_EBADPARAM and touches nothing but
 * the host outputs it resets; a call with nothing to do returns 0 without
 * reaching the backend.
 */
#include "kern.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kern_impl.h"
#include "nq_error.h"

#define OP(kb, op, ...) ((kb)->ops->op((kb)->ctx, __VA_ARGS__))

/* ---- the checks */

static int
dt_ok(enum kern_dtype dt)
{
	return dt == KERN_F64 || dt == KERN_F32;
}

/* Dimensions go to BLAS/LAPACK/cuBLAS as 32-bit ints on some paths. */
static int
dim_ok(int64_t v)
{
	return v >= 0 && v <= INT_MAX;
}

/* A leading dimension for a matrix with `rows` rows. */
static int
ld_ok(int64_t ld, int64_t rows)
{
	return ld >= (rows > 1 ? rows : 1) && ld <= INT_MAX;
}

/* Elementwise ops: valid dt, count >= 0, pointers present when there is
 * anything to touch. */
static int
vec_ok(enum kern_dtype dt, int64_t count, const void *a, const void *b)
{
	if (!dt_ok(dt) || count < 0)
		return 0;
	return count == 0 || (a != NULL && b != NULL);
}

/* n×n dense (ld = n): n*n must fit int64_t. */
static int
sq_ok(enum kern_dtype dt, int64_t n, const void *a, const void *b)
{
	if (n < 0 || n > 3037000499LL)
		return 0;
	return vec_ok(dt, n * n, a, b);
}

/* m×n with leading dimension lda, for the ops that index it themselves. */
static int
mat_ok(enum kern_dtype dt, int64_t m, int64_t n, int64_t lda)
{
	if (!dt_ok(dt) || m < 0 || n < 0 || lda < (m > 1 ? m : 1))
		return 0;
	return n == 0 || lda <= INT64_MAX / n;
}

/* conv_rows: sizes, strides and pointers (X rows hold n + nt - 1 samples). */
static int
conv_rows_ok(enum kern_dtype dt, int64_t ng, int64_t group, int64_t n,
             int64_t nt, const void *X, int64_t ldx, const void *W,
             const void *Y, int64_t ldy)
{
	if (!dt_ok(dt) || ng < 0 || group < 1 || n < 0 || nt < 1 ||
	    nt > INT_MAX || group > INT_MAX || n > INT64_MAX / 4)
		return 0;
	if (ng == 0 || n == 0)
		return 1;
	if (ng > INT64_MAX / group || ldx < n + nt - 1 || ldy < n)
		return 0;
	if (ldx > INT64_MAX / (ng * group) || ldy > INT64_MAX / ng)
		return 0;
	return X != NULL && W != NULL && Y != NULL;
}

/* ---- memory */

int
kern_alloc(const struct kern_backend *kb, size_t bytes, void **ptr)
{
	if (ptr == NULL)
		return NQ_EBADPARAM;
	*ptr = NULL;
	if (bytes > (size_t) PTRDIFF_MAX)
		return NQ_ENOMEM;
	return OP(kb, alloc, bytes, ptr);
}

void
kern_free(const struct kern_backend *kb, void *ptr)
{
	if (ptr != NULL)
		OP(kb, free, ptr);
}

int
kern_upload(const struct kern_backend *kb, void *dst, const void *h_src,
            size_t bytes)
{
	if (bytes == 0)
		return 0;
	if (dst == NULL || h_src == NULL)
		return NQ_EBADPARAM;
	return OP(kb, upload, dst, h_src, bytes);
}

int
kern_download(const struct kern_backend *kb, void *h_dst, const void *src,
              size_t bytes)
{
	if (bytes == 0)
		return 0;
	if (h_dst == NULL || src == NULL)
		return NQ_EBADPARAM;
	return OP(kb, download, h_dst, src, bytes);
}

int
kern_copy(const struct kern_backend *kb, void *dst, const void *src,
          size_t bytes)
{
	if (bytes == 0)
		return 0;
	if (dst == NULL || src == NULL)
		return NQ_EBADPARAM;
	return OP(kb, copy, dst, src, bytes);
}

int
kern_mem_info(const struct kern_backend *kb, size_t *free_bytes,
              size_t *total_bytes)
{
	if (free_bytes == NULL || total_bytes == NULL)
		return NQ_EBADPARAM;
	return OP(kb, mem_info, free_bytes, total_bytes);
}

int
kern_sync(const struct kern_backend *kb)
{
	return kb->ops->sync(kb->ctx);
}

/* ---- dense linear algebra */

int
kern_gemm(const struct kern_backend *kb, enum kern_dtype dt, enum kern_trans ta,
          enum kern_trans tb, int64_t m, int64_t n, int64_t k, double alpha,
          const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
          void *C, int64_t ldc)
{
	if (!dt_ok(dt) || !dim_ok(m) || !dim_ok(n) || !dim_ok(k))
		return NQ_EBADPARAM;
	if (!ld_ok(lda, ta == KERN_N ? m : k) ||
	    !ld_ok(ldb, tb == KERN_N ? k : n) || !ld_ok(ldc, m))
		return NQ_EBADPARAM;
	if (m == 0 || n == 0)
		return 0;
	if (C == NULL || (k > 0 && (A == NULL || B == NULL)))
		return NQ_EBADPARAM;
	return OP(kb, gemm, dt, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C,
	          ldc);
}

int
kern_syrk(const struct kern_backend *kb, enum kern_dtype dt,
          enum kern_trans trans, int64_t n, int64_t k, double alpha,
          const void *A, int64_t lda, double beta, void *C, int64_t ldc)
{
	if (!dt_ok(dt) || !dim_ok(n) || !dim_ok(k))
		return NQ_EBADPARAM;
	if (!ld_ok(lda, trans == KERN_N ? n : k) || !ld_ok(ldc, n))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (C == NULL || (k > 0 && A == NULL))
		return NQ_EBADPARAM;
	return OP(kb, syrk, dt, trans, n, k, alpha, A, lda, beta, C, ldc);
}

int
kern_potrf(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
           void *A, int64_t lda, int *info)
{
	if (info == NULL)
		return NQ_EBADPARAM;
	*info = 0;
	if (!dt_ok(dt) || !dim_ok(n) || !ld_ok(lda, n))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (A == NULL)
		return NQ_EBADPARAM;
	return OP(kb, potrf, dt, n, A, lda, info);
}

int
kern_trsm_lower(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                int64_t m, const void *L, int64_t ldl, void *B, int64_t ldb)
{
	if (!dt_ok(dt) || !dim_ok(n) || !dim_ok(m) || !ld_ok(ldl, n) ||
	    !ld_ok(ldb, n))
		return NQ_EBADPARAM;
	if (n == 0 || m == 0)
		return 0;
	if (L == NULL || B == NULL)
		return NQ_EBADPARAM;
	return OP(kb, trsm_lower, dt, n, m, L, ldl, B, ldb);
}

int
kern_syevd(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
           void *A, int64_t lda, void *W, int *info)
{
	if (info == NULL)
		return NQ_EBADPARAM;
	*info = 0;
	if (!dt_ok(dt) || !dim_ok(n) || !ld_ok(lda, n))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (A == NULL || W == NULL)
		return NQ_EBADPARAM;
	return OP(kb, syevd, dt, n, A, lda, W, info);
}

int
kern_tridiag_qt(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                void *A, int64_t lda, void *d, void *e, int64_t m, void *B,
                int64_t ldb)
{
	if (!dt_ok(dt) || !dim_ok(n) || !dim_ok(m) || !ld_ok(lda, n) ||
	    (m > 0 && !ld_ok(ldb, n)))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (A == NULL || d == NULL || (n > 1 && e == NULL) ||
	    (m > 0 && B == NULL))
		return NQ_EBADPARAM;
	return OP(kb, tridiag_qt, dt, n, A, lda, d, e, m, B, ldb);
}

int
kern_syevr_below(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                 void *A, int64_t lda, double vu, int64_t max_k, void *W,
                 void *Z, int64_t ldz, int64_t *k, int *info)
{
	if (info == NULL || k == NULL)
		return NQ_EBADPARAM;
	*info = 0;
	*k = 0;
	if (!dt_ok(dt) || !dim_ok(n) || !ld_ok(lda, n) || max_k < 0 ||
	    !ld_ok(ldz, n) || isnan(vu))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (A == NULL || W == NULL || (max_k > 0 && Z == NULL))
		return NQ_EBADPARAM;
	return OP(kb, syevr_below, dt, n, A, lda, vu, max_k, W, Z, ldz, k,
	          info);
}

int
kern_sterf(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
           void *d, void *e, int *info)
{
	if (info == NULL)
		return NQ_EBADPARAM;
	*info = 0;
	if (!dt_ok(dt) || !dim_ok(n))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (d == NULL || (n > 1 && e == NULL))
		return NQ_EBADPARAM;
	return OP(kb, sterf, dt, n, d, e, info);
}

int
kern_syev_side(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
               void *A, int64_t lda, void *W, int64_t max_k, void *Z,
               int64_t ldz, int64_t *k, int *side, int *info)
{
	if (info == NULL || k == NULL || side == NULL)
		return NQ_EBADPARAM;
	*info = 0;
	*k = 0;
	*side = -1;
	if (!dt_ok(dt) || !dim_ok(n) || !ld_ok(lda, n) || max_k < 0 ||
	    !ld_ok(ldz, n))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (A == NULL || W == NULL || (max_k > 0 && Z == NULL))
		return NQ_EBADPARAM;
	return OP(kb, syev_side, dt, n, A, lda, W, max_k, Z, ldz, k, side,
	          info);
}

/* ---- elementwise and reductions */

int
kern_axpby(const struct kern_backend *kb, enum kern_dtype dt, int64_t count,
           double a, const void *X, double b, void *Y)
{
	if (!vec_ok(dt, count, X, Y))
		return NQ_EBADPARAM;
	if (count == 0)
		return 0;
	return OP(kb, axpby, dt, count, a, X, b, Y);
}

int
kern_shrink(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
            const void *C, void *Out, double alpha, int keep_diag)
{
	if (!sq_ok(dt, n, C, Out))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	return OP(kb, shrink, dt, n, C, Out, alpha, keep_diag);
}

int
kern_symmetrize(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                void *A)
{
	if (!sq_ok(dt, n, A, A))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	return OP(kb, symmetrize, dt, n, A);
}

int
kern_add_diag(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
              void *A, double v)
{
	if (!sq_ok(dt, n, A, A))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	return OP(kb, add_diag, dt, n, A, v);
}

int
kern_get_diag(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
              const void *A, void *d)
{
	if (!sq_ok(dt, n, A, d))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	return OP(kb, get_diag, dt, n, A, d);
}

int
kern_scale_rc(const struct kern_backend *kb, enum kern_dtype dt, int64_t m,
              int64_t n, void *A, int64_t lda, const void *r, const void *c)
{
	if (!mat_ok(dt, m, n, lda))
		return NQ_EBADPARAM;
	if (m == 0 || n == 0)
		return 0;
	if (A == NULL)
		return NQ_EBADPARAM;
	return OP(kb, scale_rc, dt, m, n, A, lda, r, c);
}

int
kern_row_sumsq(const struct kern_backend *kb, enum kern_dtype dt, int64_t m,
               int64_t n, const void *A, int64_t lda, void *out)
{
	if (!mat_ok(dt, m, n, lda))
		return NQ_EBADPARAM;
	if (m == 0)
		return 0;
	if (out == NULL || (n > 0 && A == NULL))
		return NQ_EBADPARAM;
	return OP(kb, row_sumsq, dt, m, n, A, lda, out);
}

int
kern_sumsq(const struct kern_backend *kb, enum kern_dtype dt, int64_t count,
           const void *X, double *out)
{
	if (out == NULL || !vec_ok(dt, count, X, X))
		return NQ_EBADPARAM;
	*out = 0;
	if (count == 0)
		return 0;
	return OP(kb, sumsq, dt, count, X, out);
}

int
kern_sum_log_diag(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                  const void *A, double *out)
{
	if (out == NULL || !sq_ok(dt, n, A, A))
		return NQ_EBADPARAM;
	*out = 0;
	if (n == 0)
		return 0;
	return OP(kb, sum_log_diag, dt, n, A, out);
}

int
kern_gersh_min(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
               const void *A, double *out)
{
	if (out == NULL || !sq_ok(dt, n, A, A))
		return NQ_EBADPARAM;
	*out = -INFINITY;
	if (n == 0)
		return 0;
	return OP(kb, gersh_min, dt, n, A, out);
}

int
kern_pearson(const struct kern_backend *kb, enum kern_dtype dt, int64_t count,
             const void *X, const void *Y, double *out)
{
	if (out == NULL || !vec_ok(dt, count, X, Y))
		return NQ_EBADPARAM;
	*out = NAN;
	if (count == 0)
		return 0;
	return OP(kb, pearson, dt, count, X, Y, out);
}

int
kern_pair_cov_acc(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                  const void *Sxx, const void *Sx, const void *Sm, void *acc,
                  void *cnt)
{
	if (!sq_ok(dt, n, Sxx, Sx) || !sq_ok(dt, n, Sm, acc) ||
	    !sq_ok(dt, n, cnt, cnt))
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	return OP(kb, pair_cov_acc, dt, n, Sxx, Sx, Sm, acc, cnt);
}

int
kern_div_pos(const struct kern_backend *kb, enum kern_dtype dt, int64_t count,
             void *X, const void *Y)
{
	if (!vec_ok(dt, count, X, Y))
		return NQ_EBADPARAM;
	if (count == 0)
		return 0;
	return OP(kb, div_pos, dt, count, X, Y);
}

int
kern_convert(const struct kern_backend *kb, enum kern_dtype dt_dst, void *dst,
             enum kern_dtype dt_src, const void *src, int64_t count)
{
	if (!dt_ok(dt_dst) || !vec_ok(dt_src, count, dst, src))
		return NQ_EBADPARAM;
	if (count == 0)
		return 0;
	return OP(kb, convert, dt_dst, dst, dt_src, src, count);
}

int
kern_conv_rows(const struct kern_backend *kb, enum kern_dtype dt, int64_t ng,
               int64_t group, int64_t n, int64_t nt, const void *X, int64_t ldx,
               const void *W, void *Y, int64_t ldy)
{
	if (!conv_rows_ok(dt, ng, group, n, nt, X, ldx, W, Y, ldy))
		return NQ_EBADPARAM;
	if (ng == 0 || n == 0)
		return 0;
	return OP(kb, conv_rows, dt, ng, group, n, nt, X, ldx, W, Y, ldy);
}

/* ---- spikesort's batch path */

int
kern_traffic(const struct kern_backend *kb, uint64_t *h2d, uint64_t *d2h)
{
	if (h2d == NULL || d2h == NULL)
		return NQ_EBADPARAM;
	*h2d = 0;
	*d2h = 0;
	return OP(kb, traffic, h2d, d2h);
}

/* A C × T float batch: C fits an int, C·T an int64_t. */
static int
batch_ok(int64_t C, int64_t T)
{
	return C >= 0 && C <= INT_MAX && T >= 0 &&
	       (C == 0 || T <= INT64_MAX / 4 / C);
}

int
kern_filter_car(const struct kern_backend *kb, int64_t C, int64_t T, float *X,
                const double *h_sos, int car)
{
	if (!batch_ok(C, T) || h_sos == NULL)
		return NQ_EBADPARAM;
	if (C == 0 || T == 0)
		return 0;
	if (X == NULL)
		return NQ_EBADPARAM;
	return OP(kb, filter_car, C, T, X, h_sos, car);
}

int
kern_peaks_above(const struct kern_backend *kb, int64_t C, int64_t T,
                 const float *Y, double th, int64_t lo, int64_t hi, int64_t w,
                 int64_t nc, const int32_t *nbr, int64_t cap, int64_t *h_t,
                 int32_t *h_c, float *h_amp, int64_t *n)
{
	if (n == NULL)
		return NQ_EBADPARAM;
	*n = 0;
	if (!batch_ok(C, T) || lo < 0 || hi > T || w < 0 || cap < 0 ||
	    isnan(th))
		return NQ_EBADPARAM;
	if (cap > 0 && (h_t == NULL || h_c == NULL || h_amp == NULL))
		return NQ_EBADPARAM;
	if (C == 0 || T == 0 || lo >= hi)
		return 0;
	if (nc < 1 || nc > C || Y == NULL || nbr == NULL)
		return NQ_EBADPARAM;
	return OP(kb, peaks_above, C, T, Y, th, lo, hi, w, nc, nbr, cap, h_t,
	          h_c, h_amp, n);
}

int
kern_sub_spikes(const struct kern_backend *kb, int64_t C, int64_t T, float *R,
                int64_t nt, int64_t K, const float *W, const int32_t *win,
                int64_t n, const int32_t *tk, const float *a)
{
	if (!batch_ok(C, T) || n < 0 || nt < 1 || K < 0)
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (C == 0 || nt > T || K < 1 || K > INT64_MAX / 4 / C / nt ||
	    R == NULL || W == NULL || win == NULL || tk == NULL || a == NULL)
		return NQ_EBADPARAM;
	return OP(kb, sub_spikes, C, T, R, nt, K, W, win, n, tk, a);
}

int
kern_snippets(const struct kern_backend *kb, int64_t C, int64_t T,
              const float *Y, int64_t nc, const int32_t *nbr, int64_t nt,
              int64_t n, const int32_t *tc, float *S)
{
	if (!batch_ok(C, T) || n < 0 || nt < 1 || nc < 1)
		return NQ_EBADPARAM;
	if (n == 0)
		return 0;
	if (nc > C || nt > T || n > INT64_MAX / 4 / nc / nt || Y == NULL ||
	    nbr == NULL || tc == NULL || S == NULL)
		return NQ_EBADPARAM;
	return OP(kb, snippets, C, T, Y, nc, nbr, nt, n, tc, S);
}

int
kern_score_best(const struct kern_backend *kb, int64_t ng, int64_t n,
                const float *S, int64_t lds, const float *mu, double lam,
                const float *th, const int32_t *kid, float *G, float *A,
                int32_t *Kb)
{
	if (ng < 0 || n < 0 || isnan(lam))
		return NQ_EBADPARAM;
	if (ng == 0 || n == 0)
		return 0;
	if (lds < n || ng > INT64_MAX / 4 / lds || S == NULL || mu == NULL ||
	    kid == NULL || G == NULL || A == NULL || Kb == NULL)
		return NQ_EBADPARAM;
	return OP(kb, score_best, ng, n, S, lds, mu, lam, th, kid, G, A, Kb);
}

int
kern_accept_peaks(const struct kern_backend *kb, int64_t ng, int64_t n,
                  int64_t ld, const float *G, const int32_t *Kb, const float *A,
                  double th, int64_t w, const int32_t *nb0, const int32_t *nb,
                  int64_t cap, int64_t *h_gt, int32_t *h_k, float *h_a,
                  int64_t *cnt)
{
	if (cnt == NULL)
		return NQ_EBADPARAM;
	*cnt = 0;
	if (ng < 0 || n < 0 || w < 1 || cap < 0 || isnan(th))
		return NQ_EBADPARAM;
	if (cap > 0 && (h_gt == NULL || h_k == NULL || h_a == NULL))
		return NQ_EBADPARAM;
	if (ng == 0 || n == 0)
		return 0;
	if (ld < n || ng > INT64_MAX / 4 / ld || ng > INT32_MAX || G == NULL ||
	    Kb == NULL || A == NULL || nb0 == NULL || nb == NULL)
		return NQ_EBADPARAM;
	return OP(kb, accept_peaks, ng, n, ld, G, Kb, A, th, w, nb0, nb, cap,
	          h_gt, h_k, h_a, cnt);
}
