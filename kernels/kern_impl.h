/*
 * kern_impl.h — private to kernels/: what a backend's ops may assume.
 *
 * Algorithms reach an op only through its checked entry point kern_<op>()
 * (kern_check.c, declared in kern.h), so the argument checks are written
 * once for every backend and each backend's op is called only on valid
 * input. An op may therefore assume, without checking again:
 *
 *  - dt (and convert's dt_dst, dt_src) is KERN_F64 or KERN_F32;
 *  - every dimension of the dense linear algebra (gemm, syrk, potrf,
 *    trsm_lower, syevd, tridiag_qt, syevr_below, sterf, syev_side) lies in
 *    [0, INT_MAX] and every leading dimension in [max(1, rows), INT_MAX],
 *    so both fit the 32-bit ints of BLAS, LAPACK and cuBLAS; n·n of the
 *    n×n elementwise ops fits int64_t, and so do the extents of scale_rc,
 *    row_sumsq and conv_rows;
 *  - it is not called when there is nothing to do: the sizes that make a
 *    call empty are > 0 (gemm m, n — k may be 0; syrk, potrf, syevd,
 *    tridiag_qt, syevr_below, sterf, syev_side n; trsm_lower n, m; scale_rc m,
 * n; row_sumsq m — n may be 0; conv_rows ng, n; the elementwise ops and
 *    reductions their count or n; upload, download, copy bytes);
 *  - every pointer it touches is non-NULL: A, B of gemm and A of syrk when
 *    k > 0, e of tridiag_qt and sterf when n > 1, B of tridiag_qt when
 *    m > 0, Z of syevr_below and syev_side when max_k > 0, A of
 *    row_sumsq when n > 0
 *    (scale_rc's r and c may be NULL by contract);
 *  - filter_car, peaks_above, sub_spikes: C, T > 0 and C <= INT_MAX,
 *    C·T fits int64_t; peaks_above: 0 <= lo < hi <= T, w >= 0,
 *    1 <= nc <= C, cap >= 0 (h_t, h_c, h_amp non-NULL when cap > 0);
 *    sub_spikes: n > 0, 1 <= nt <= T, K >= 1; snippets: n > 0,
 *    1 <= nt <= T, 1 <= nc <= C; score_best: ng, n > 0, lds >= n;
 *    accept_peaks: ng, n > 0, ld >= n, w >= 1, cap >= 0;
 *  - host outputs are non-NULL and already hold the answer of a call that
 *    fails: *info = 0, syevr_below's and syev_side's *k = 0 (and
 *    syev_side's *side = −1), *out = 0 (sumsq,
 *    sum_log_diag), NaN (pearson) or −∞ (gersh_min); alloc's *ptr = NULL with
 *    bytes <= PTRDIFF_MAX; free's ptr is not NULL.
 *
 * What is left to an op is what only it can know: the status of its own
 * library calls (NQ_ENOMEM, NQ_EDEVICE), and LAPACK's info.
 */
#ifndef KERN_IMPL_H
#define KERN_IMPL_H

#include "kern.h"

/* ---- kern_tri.c: host work on a symmetric tridiagonal T (d, e of n and
 * n − 1 elements of dt; e may be NULL when n = 1), for syev_side */

/* *nneg = how many eigenvalues of T are < 0 (a Sturm count, O(n)); the
 * others count as >= 0. *info = 1 when d or e holds a NaN or Inf. */
int kern_tri_count(enum kern_dtype dt, int64_t n, const void *d, const void *e,
                   int64_t *nneg, int *info);
/* The eigenpairs il..iu (1-based, ascending order, il <= iu) of T by
 * MRRR (stemr), else bisection and inverse iteration (stebz + stein) when
 * stemr does not deliver them (d and e unchanged): values
 * into w[0 .. iu − il] (w has n elements: stemr's scratch beyond), vectors
 * into z's iu − il + 1 columns (host, ldz >= n).
 * *info > 0: no convergence. */
int kern_tri_vecs(enum kern_dtype dt, int64_t n, const void *d, const void *e,
                  int64_t il, int64_t iu, void *w, void *z, int64_t ldz,
                  int *info);

/* The cpu backend's traffic counter: bytes a device backend would have
 * downloaded for an op that writes host arrays (kern_cpu.c). */
void kern_cpu_count_d2h(void *ctx, uint64_t bytes);

/* ---- cpu/kern_cpu_skinny.c */
/* gemm's C = α Aᵀ B (float, β = 0) for few columns and a short inner
 * dimension (kern_cpu_skinny.c): kern_cpu_skinny_fits says when it
 * applies (m ≥ 128, n ≤ KERN_CPU_SKINNY_N, k ≤ KERN_CPU_SKINNY_K); 0 or
 * NQ_ENOMEM. */
#define KERN_CPU_SKINNY_N 192
#define KERN_CPU_SKINNY_K 192
int kern_cpu_skinny_fits(int64_t m, int64_t n, int64_t k);
int kern_cpu_sgemm_tn_skinny(int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *B,
                             int64_t ldb, float *C, int64_t ldc);

/* ---- cpu/kern_cpu_tall.c */
/* gemm's C = α Aᵀ B (float64, β = 0) for a long inner dimension and few
 * columns (kern_cpu_tall.c): kern_cpu_tall_fits says when gemm takes it
 * (k ≥ KERN_CPU_TALL_K, n ≤ KERN_CPU_TALL_N, OpenBLAS on one thread);
 * kern_cpu_dgemm_tn_tall runs on any shape it fits; 0 or NQ_ENOMEM. */
#define KERN_CPU_TALL_K 256
#define KERN_CPU_TALL_N 32
int kern_cpu_tall_fits(int64_t m, int64_t n, int64_t k);
int kern_cpu_dgemm_tn_tall(int64_t m, int64_t n, int64_t k, double alpha,
                           const double *A, int64_t lda, const double *B,
                           int64_t ldb, double *C, int64_t ldc);

/* ---- cpu/kern_cpu_batch.c: the cpu backend's batch-path ops (kern.h) */
int kern_cpu_filter_car(void *ctx, int64_t C, int64_t T, float *X,
                        const double *h_sos, int car);
int kern_cpu_peaks_above(void *ctx, int64_t C, int64_t T, const float *Y,
                         double th, int64_t lo, int64_t hi, int64_t w,
                         int64_t nc, const int32_t *nbr, int64_t cap,
                         int64_t *h_t, int32_t *h_c, float *h_amp, int64_t *n);
int kern_cpu_sub_spikes(void *ctx, int64_t C, int64_t T, float *R, int64_t nt,
                        int64_t K, const float *W, const int32_t *win,
                        int64_t n, const int32_t *tk, const float *a);
int kern_cpu_snippets(void *ctx, int64_t C, int64_t T, const float *Y,
                      int64_t nc, const int32_t *nbr, int64_t nt, int64_t n,
                      const int32_t *tc, float *S);
int kern_cpu_score_best(void *ctx, int64_t ng, int64_t n, const float *S,
                        int64_t lds, const float *mu, double lam,
                        const float *th, const int32_t *kid, float *G, float *A,
                        int32_t *Kb);
int kern_cpu_accept_peaks(void *ctx, int64_t ng, int64_t n, int64_t ld,
                          const float *G, const int32_t *Kb, const float *A,
                          double th, int64_t w, const int32_t *nb0,
                          const int32_t *nb, int64_t cap, int64_t *h_gt,
                          int32_t *h_k, float *h_a, int64_t *cnt);

#endif
