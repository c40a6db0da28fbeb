/*
 * kern_cuda_kernels.h — private: launchers of the own kernels
 * (kern_cuda_kernels.cu), callable from C (kern_cuda.c).
 *
 * Each launcher queues its kernels on `s` and returns the launch status
 * (cudaGetLastError); arguments were validated by the caller. Indices are
 * 64-bit throughout: n*n passes 2^31 at n = 46341.
 *
 * Reductions are deterministic: a fixed grid of KERN_CUDA_RED_BLOCKS blocks
 * writes per-block partial sums into `part` (KERN_CUDA_RED_BLOCKS * 3
 * doubles of device scratch) and one block adds them in a fixed order into
 * the device doubles `res`.
 */
#ifndef KERN_CUDA_KERNELS_H
#define KERN_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "kern.h"

#define KERN_CUDA_RED_BLOCKS 256
#define KERN_CUDA_RED_VALS   3 /* most sums one reduction produces */

#ifdef __cplusplus
extern "C" {
#endif

/* C[i,j] = C[j,i] for i < j (strict upper from strict lower). */
cudaError_t kern_cuda_mirror_lower(enum kern_dtype dt, int64_t n, void *C,
                                   int64_t ldc, cudaStream_t s);
cudaError_t kern_cuda_axpby(enum kern_dtype dt, int64_t count, double a,
                            const void *X, double b, void *Y, cudaStream_t s);
cudaError_t kern_cuda_shrink(enum kern_dtype dt, int64_t n, const void *C,
                             void *Out, double alpha, int keep_diag,
                             cudaStream_t s);
cudaError_t kern_cuda_symmetrize(enum kern_dtype dt, int64_t n, void *A,
                                 cudaStream_t s);
cudaError_t kern_cuda_add_diag(enum kern_dtype dt, int64_t n, void *A, double v,
                               cudaStream_t s);
cudaError_t kern_cuda_get_diag(enum kern_dtype dt, int64_t n, const void *A,
                               void *d, cudaStream_t s);
cudaError_t kern_cuda_scale_rc(enum kern_dtype dt, int64_t m, int64_t n,
                               void *A, int64_t lda, const void *r,
                               const void *c, cudaStream_t s);
cudaError_t kern_cuda_row_sumsq(enum kern_dtype dt, int64_t m, int64_t n,
                                const void *A, int64_t lda, void *out,
                                cudaStream_t s);
/* res[0] = sum of squares. */
cudaError_t kern_cuda_sumsq(enum kern_dtype dt, int64_t count, const void *X,
                            double *part, double *res, cudaStream_t s);
/* res[0] = sum of log(A[i,i]). */
cudaError_t kern_cuda_sum_log_diag(enum kern_dtype dt, int64_t n, const void *A,
                                   double *part, double *res, cudaStream_t s);
/* res[0] = kern.h gersh_min of the n×n A; n > 0. */
cudaError_t kern_cuda_gersh_min(enum kern_dtype dt, int64_t n, const void *A,
                                double *part, double *res, cudaStream_t s);
/* res[0..2] = sxy, sxx, syy of the centred (two-pass) vectors; count > 0.
 * res[3..4] hold the means of the shifted values. */
cudaError_t kern_cuda_pearson(enum kern_dtype dt, int64_t count, const void *X,
                              const void *Y, double *part, double *res,
                              cudaStream_t s);
cudaError_t kern_cuda_pair_cov_acc(enum kern_dtype dt, int64_t n,
                                   const void *Sxx, const void *Sx,
                                   const void *Sm, void *acc, void *cnt,
                                   cudaStream_t s);
cudaError_t kern_cuda_div_pos(enum kern_dtype dt, int64_t count, void *X,
                              const void *Y, cudaStream_t s);
/* dt_dst != dt_src. */
cudaError_t kern_cuda_convert(enum kern_dtype dt_dst, void *dst,
                              enum kern_dtype dt_src, const void *src,
                              int64_t count, cudaStream_t s);
/* kern.h conv_rows; ng, n > 0. */
cudaError_t kern_cuda_conv_rows(enum kern_dtype dt, int64_t ng, int64_t group,
                                int64_t n, int64_t nt, const void *X,
                                int64_t ldx, const void *W, void *Y,
                                int64_t ldy, cudaStream_t s);

/* kern.h filter_car; scratch: C + T device floats; C <= 8192 (a sample's
 * channels are sorted in shared memory for the median). */
cudaError_t kern_cuda_filter_car(int64_t C, int64_t T, float *X,
                                 const double *h_sos, int car, float *scratch,
                                 cudaStream_t s);
/* kern.h peaks_above's candidates, in no particular order: *count (device)
 * = how many, the first cap of them in ot, oc, oa (device). */
cudaError_t kern_cuda_peaks_above(int64_t C, int64_t T, const float *Y,
                                  double th, int64_t lo, int64_t hi, int64_t w,
                                  int64_t nc, const int32_t *nbr, int64_t cap,
                                  unsigned long long *count, int64_t *ot,
                                  int32_t *oc, float *oa, cudaStream_t s);
/* kern.h sub_spikes; n > 0. */
cudaError_t kern_cuda_sub_spikes(int64_t C, float *R, int64_t nt,
                                 const float *W, const int32_t *win, int64_t n,
                                 const int32_t *tk, const float *a,
                                 cudaStream_t s);
/* kern.h snippets; n > 0. */
cudaError_t kern_cuda_snippets(int64_t C, const float *Y, int64_t nc,
                               const int32_t *nbr, int64_t nt, int64_t n,
                               const int32_t *tc, float *S, cudaStream_t s);
/* kern.h score_best; ng, n > 0. */
cudaError_t kern_cuda_score_best(int64_t ng, int64_t n, const float *S,
                                 int64_t lds, const float *mu, double lam,
                                 const float *th, const int32_t *kid, float *G,
                                 float *A, int32_t *Kb, cudaStream_t s);
/* kern.h accept_peaks' winners in no particular order: *count (device),
 * the first cap of them in ogt, ok, oa (device). */
cudaError_t kern_cuda_accept_peaks(int64_t ng, int64_t n, int64_t ld,
                                   const float *G, const int32_t *Kb,
                                   const float *A, double th, int64_t w,
                                   const int32_t *nb0, const int32_t *nb,
                                   int64_t cap, unsigned long long *count,
                                   int64_t *ogt, int32_t *ok, float *oa,
                                   cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
