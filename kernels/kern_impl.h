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
 *  - host outputs are non-NULL and already hold the answer of a call that
 *    fails: *info = 0, syevr_below's and syev_side's *k = 0 (and
 *    syev_side's *side = −1), *out = 0 (sumsq,
 *    sum_log_diag) or NaN (pearson); alloc's *ptr = NULL with
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
 * bisection and inverse iteration (stebz + stein, d and e unchanged): values
 * into w[0 .. iu − il], vectors into z's iu − il + 1 columns (host, ldz >= n).
 * *info > 0: no convergence. */
int kern_tri_vecs(enum kern_dtype dt, int64_t n, const void *d, const void *e,
                  int64_t il, int64_t iu, void *w, void *z, int64_t ldz,
                  int *info);

#endif
