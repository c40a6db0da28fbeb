/*
 * kern.h — the compute backend interface: { ops, ctx } (ggml's shape).
 *
 * Algorithms (gsn, spikesort) are written once against these ops; the cpu
 * backend (OpenBLAS + LAPACKE) is the reference, the cuda backend (cuBLAS +
 * cuSOLVER + own kernels) must agree with it op by op (kernels/kern_test.c).
 *
 * Conventions, for every op:
 *  - Pointers named A, B, X ... are *device* pointers obtained from alloc()
 *    (on the cpu backend device memory is host memory). Host pointers are
 *    named h_*. Scalars coming back to the host are written to double *out.
 *  - Matrices are column-major with a leading dimension (BLAS/LAPACK).
 *  - dt selects float64 or float32 for every buffer of the call; reductions
 *    that return a double accumulate in float64 whatever dt is.
 *  - Ops return 0 or an nq_err code (NQ_ENOMEM, NQ_EDEVICE, NQ_EBADPARAM);
 *    they never abort. A failed factorization is not an error: it is
 *    reported through *info.
 *  - Ops are ordered on the backend's stream; download() and the ops that
 *    return host scalars synchronize.
 *  - Algorithms call an op as KOP(kb, op, args...), which is kern_<op>(kb,
 *    args...) below: the arguments are checked there, once for every
 *    backend (kern_check.c), and the backend's op runs only on valid ones.
 *    A backend is asked what it can do (kern_mem_is_host(),
 *    kern_ops_reentrant()), never recognised by its name: names are for
 *    logs and for the user's choice of a device.
 */
#ifndef KERN_H
#define KERN_H

#include <stddef.h>
#include <stdint.h>

enum kern_dtype { KERN_F64 = 0, KERN_F32 = 1 };
enum kern_trans { KERN_N = 0, KERN_T = 1 };

static inline size_t
kern_dtype_size(enum kern_dtype dt)
{
	return dt == KERN_F64 ? 8 : 4;
}

/* What a backend is, for the callers that do something else on one kind
 * than on another (struct kern_ops.caps). */
enum kern_cap {
	/* Device pointers are host pointers: host code may read and write a
	 * buffer from alloc() directly (after sync()). */
	KERN_CAP_HOST_MEM = 1u << 0,
	/* Ops on disjoint buffers may be called from several threads at once
	 * (they run on the calling thread and share no scratch). */
	KERN_CAP_REENTRANT = 1u << 1,
};

struct kern_ops {
	const char *name; /* "cpu", "cuda": for logs only */
	unsigned caps;    /* enum kern_cap flags */
	/* Releases the context (and everything of the backend's own in it);
	 * buffers from alloc() must have been freed before. */
	void (*close)(void *ctx);

	/* ---- memory */
	int (*alloc)(void *ctx, size_t bytes, void **ptr); /* zero-filled */
	void (*free)(void *ctx, void *ptr);
	int (*upload)(void *ctx, void *dst, const void *h_src, size_t bytes);
	int (*download)(void *ctx, void *h_dst, const void *src, size_t bytes);
	int (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
	/* Bytes free / total of the device (cpu: MemAvailable / MemTotal). */
	int (*mem_info)(void *ctx, size_t *free_bytes, size_t *total_bytes);
	int (*sync)(void *ctx);

	/* ---- dense linear algebra (column-major) */
	/* C = alpha op(A) op(B) + beta C;  op(A) m×k, op(B) k×n, C m×n */
	int (*gemm)(void *ctx, enum kern_dtype dt, enum kern_trans ta,
	            enum kern_trans tb, int64_t m, int64_t n, int64_t k,
	            double alpha, const void *A, int64_t lda, const void *B,
	            int64_t ldb, double beta, void *C, int64_t ldc);
	/* C = alpha A Aᵀ + beta C (trans=N, A n×k) or alpha AᵀA + beta C
	 * (trans=T, A k×n). C is n×n and BOTH triangles are written. */
	int (*syrk)(void *ctx, enum kern_dtype dt, enum kern_trans trans,
	            int64_t n, int64_t k, double alpha, const void *A,
	            int64_t lda, double beta, void *C, int64_t ldc);
	/* In-place lower Cholesky A = L Lᵀ (the strict upper triangle is left
	 * as it was). *info = 0 on success, > 0 (LAPACK's meaning) when A is
	 * not positive definite. */
	int (*potrf)(void *ctx, enum kern_dtype dt, int64_t n, void *A,
	             int64_t lda, int *info);
	/* B = L⁻¹ B, L n×n lower triangular (non-unit), B n×m. */
	int (*trsm_lower)(void *ctx, enum kern_dtype dt, int64_t n, int64_t m,
	                  const void *L, int64_t ldl, void *B, int64_t ldb);
	/* Symmetric eigendecomposition of A (n×n, lower triangle read):
	 * eigenvalues ascending into W (device, n), eigenvectors into A's
	 * columns. *info as LAPACK's syevd. */
	int (*syevd)(void *ctx, enum kern_dtype dt, int64_t n, void *A,
	             int64_t lda, void *W, int *info);

	/* ---- elementwise and reductions (n×n matrices are dense, ld = n) */
	/* Y = a X + b Y over count elements. */
	int (*axpby)(void *ctx, enum kern_dtype dt, int64_t count, double a,
	             const void *X, double b, void *Y);
	/* Out = alpha C + (1 - alpha) diag(C) when keep_diag, else alpha C.
	 * C and Out n×n; Out may equal C. */
	int (*shrink)(void *ctx, enum kern_dtype dt, int64_t n, const void *C,
	              void *Out, double alpha, int keep_diag);
	/* A = (A + Aᵀ) / 2, n×n. */
	int (*symmetrize)(void *ctx, enum kern_dtype dt, int64_t n, void *A);
	/* A[i,i] += v. */
	int (*add_diag)(void *ctx, enum kern_dtype dt, int64_t n, void *A,
	                double v);
	/* d[i] = A[i,i] (d device, n). */
	int (*get_diag)(void *ctx, enum kern_dtype dt, int64_t n, const void *A,
	                void *d);
	/* A[i,j] *= r[i] * c[j] for an m×n matrix with leading dim lda;
	 * r or c may be NULL (treated as ones). r, c device vectors. */
	int (*scale_rc)(void *ctx, enum kern_dtype dt, int64_t m, int64_t n,
	                void *A, int64_t lda, const void *r, const void *c);
	/* out[i] = sum_j A[i,j]^2 for an m×n matrix (row sums of squares),
	 * out device vector of m, accumulated in double then stored in dt. */
	int (*row_sumsq)(void *ctx, enum kern_dtype dt, int64_t m, int64_t n,
	                 const void *A, int64_t lda, void *out);
	/* *out = sum of squares of count elements (double accumulation). */
	int (*sumsq)(void *ctx, enum kern_dtype dt, int64_t count,
	             const void *X, double *out);
	/* *out = sum_i log(A[i,i]) (double accumulation). */
	int (*sum_log_diag)(void *ctx, enum kern_dtype dt, int64_t n,
	                    const void *A, double *out);
	/* Symmetric n×n A (every entry read): *out = min over i of
	 * 1 − Σ_{j≠i} |A[i,j]| / sqrt(A[i,i] A[j,j]), Gershgorin's lower
	 * bound on the lowest eigenvalue of D^{-1/2} A D^{-1/2} (D the
	 * diagonal of A); −∞ when a diagonal entry is not > 0 or an entry
	 * is NaN (float64 accumulation). */
	int (*gersh_min)(void *ctx, enum kern_dtype dt, int64_t n,
	                 const void *A, double *out);
	/* *out = Pearson correlation of two vectors of count elements, float64
	 * accumulation (two-pass: means first), clipped to [−1, 1] as numpy's
	 * corrcoef. NaN when either is constant. */
	int (*pearson)(void *ctx, enum kern_dtype dt, int64_t count,
	               const void *X, const void *Y, double *out);
	/* Per-unit missing data, one condition's contribution (n×n each):
	 * with m = Sm[i,j] (shared trial count), when m >= 2:
	 *   acc[i,j] += (Sxx[i,j] - Sx[i,j] * Sx[j,i] / m) / (m - 1);
	 *   cnt[i,j] += 1
	 * (Sxx = X Xᵀ, Sx = X Mᵀ, Sm = M Mᵀ with X zero-filled, M the mask). */
	int (*pair_cov_acc)(void *ctx, enum kern_dtype dt, int64_t n,
	                    const void *Sxx, const void *Sx, const void *Sm,
	                    void *acc, void *cnt);
	/* X[i] = X[i] / Y[i] where Y[i] > 0, else 0 (count elements). */
	int (*div_pos)(void *ctx, enum kern_dtype dt, int64_t count, void *X,
	               const void *Y);
	/* Convert count elements between precisions (dst dt_dst, src dt_src).
	 */
	int (*convert)(void *ctx, enum kern_dtype dt_dst, void *dst,
	               enum kern_dtype dt_src, const void *src, int64_t count);

	/* ---- appended ops (keep new ops at the end) */
	/* Householder reduction A = Q T Qᵀ of the symmetric n×n A (lower
	 * triangle read, A overwritten by the reflectors); the diagonal d (n)
	 * and subdiagonal e (n−1, n ≥ 2) of T go to device vectors; B (n×m)
	 * ← Qᵀ B (m may be 0, B NULL then). Eigenvalues of T are those of A
	 * and quadratic forms bᵀ f(A) b = (Qᵀb)ᵀ f(T) (Qᵀb). */
	int (*tridiag_qt)(void *ctx, enum kern_dtype dt, int64_t n, void *A,
	                  int64_t lda, void *d, void *e, int64_t m, void *B,
	                  int64_t ldb);
	/* Grouped row correlation (spikesort's template scores): for
	 * g < ng, t < n:
	 *   Y[t + ldy g] = Σ_{j<group} Σ_{τ<nt} W[τ + nt (g group + j)]
	 *                                      · X[t + τ + ldx (g group + j)]
	 * X: ng·group rows of n + nt − 1 samples (row stride ldx), W: those
	 * rows' nt weights (contiguous), Y: ng rows (stride ldy ≥ n).
	 * Accumulates in dt; Y must not overlap X or W. */
	int (*conv_rows)(void *ctx, enum kern_dtype dt, int64_t ng,
	                 int64_t group, int64_t n, int64_t nt, const void *X,
	                 int64_t ldx, const void *W, void *Y, int64_t ldy);
	/* The eigenpairs of the symmetric n×n A (lower triangle read, A
	 * destroyed) with eigenvalue < vu, when there are at most max_k of
	 * them: *k = how many there are; when *k <= max_k their eigenvalues
	 * (ascending) fill W[0..*k) and their vectors Z's first *k columns
	 * (Z n×max_k, ldz >= n); when *k > max_k, W and Z hold nothing
	 * useful (callers fall back to syevd). W is device, n elements (used
	 * as workspace). *info as syevd's (k is then 0). Cheaper than syevd
	 * when few eigenpairs are wanted: the vectors of the others are
	 * never formed. */
	int (*syevr_below)(void *ctx, enum kern_dtype dt, int64_t n, void *A,
	                   int64_t lda, double vu, int64_t max_k, void *W,
	                   void *Z, int64_t ldz, int64_t *k, int *info);
	/* Eigenvalues of the symmetric tridiagonal matrix with diagonal d
	 * (device, n) and subdiagonal e (device, n − 1; may be NULL when
	 * n = 1), no vectors (LAPACK's sterf): ascending into d; e is
	 * destroyed. *info = 0 on success, > 0 when the iteration did not
	 * converge (LAPACK's meaning), −2 / −3 when d / e holds a NaN
	 * (LAPACKE's check: nothing computed). */
	int (*sterf)(void *ctx, enum kern_dtype dt, int64_t n, void *d, void *e,
	             int *info);
	/* The eigenpairs of the symmetric n×n A (lower triangle read, A
	 * destroyed) on the smaller side of zero, from one tridiagonal
	 * reduction: *side = −1 when there are no more eigenvalues < 0 than
	 * >= 0 (a Sturm count on the tridiagonal matrix), else +1; *k = how
	 * many lie on that side (< 0, or > 0 and the zeros with them); when
	 * *k <= max_k, W[0..*k) (device, n elements, the rest scratch) holds
	 * their values ascending and Z's first *k columns (Z n×max_k, ldz >=
	 * n) their vectors (bisection and inverse iteration; a value next to
	 * 0 may carry the other sign). A side has at most n/2 members, so
	 * max_k = n/2 always suffices. *info as syevd's (*k = 0 then). The
	 * PSD part of A is then A − Z diag(W₋) Zᵀ or Z diag(W₊) Zᵀ, whichever
	 * needs fewer vectors: a back-transformation of 2n²·k flops instead
	 * of syevd's ~2n³ for all n vectors. */
	int (*syev_side)(void *ctx, enum kern_dtype dt, int64_t n, void *A,
	                 int64_t lda, void *W, int64_t max_k, void *Z,
	                 int64_t ldz, int64_t *k, int *side, int *info);

	/* Host↔device bytes this context has copied since it was opened:
	 * *h2d uploaded, *d2h downloaded (upload, download, and the ops'
	 * own transfers on the cuda backend; device-to-device copies are
	 * not counted). The cpu backend counts the bytes of its upload and
	 * download calls and the lists peaks_above and accept_peaks write to
	 * the host: what the cuda backend would copy for them. */
	int (*traffic)(void *ctx, uint64_t *h2d, uint64_t *d2h);

	/* ---- spikesort's batch path: float32 only, a batch is C × T
	 * column-major (a sample's C channels contiguous) */
	/* Preprocessing of X (C × T, in place): each channel's mean over the
	 * T samples (a float64 sum in sample order, stored as float) is
	 * subtracted; when car != 0 and C >= 3, then each sample's median
	 * over the channels (the mean of the two middle values when C is
	 * even) too; then every channel is filtered forward and backward by
	 * a first-order and a second-order section, h_sos (host, 10 doubles)
	 * = b1[0..1], a1[0..1], b2[0..2], a2[0..2] with a1[0] = a2[0] = 1,
	 * each pass starting in the steady state of its first sample (an
	 * offset gives no transient), in float64 without fused
	 * multiply-adds, stored as float. */
	int (*filter_car)(void *ctx, int64_t C, int64_t T, float *X,
	                  const double *h_sos, int car);
	/* Spike detection on Y (C × T): every (t, c) with lo <= t < hi and
	 * Y[c + C t] < th (compared in float) that is a strict minimum of
	 * its neighbourhood, the samples u in [t − w, t + w] ∩ [0, T) on the
	 * channels nbr[nc c + j], j < nc (device int32, each in [0, C)),
	 * where an equal value at an earlier sample, or at the same sample
	 * on a lower channel, wins. *n = how many; when *n <= cap, h_t (the
	 * sample), h_c (the channel) and h_amp (Y there) — host arrays of
	 * cap — hold them in (t, c) order; when *n > cap they hold nothing
	 * useful (call again with cap >= *n). Only the list comes back. */
	int (*peaks_above)(void *ctx, int64_t C, int64_t T, const float *Y,
	                   double th, int64_t lo, int64_t hi, int64_t w,
	                   int64_t nc, const int32_t *nbr, int64_t cap,
	                   int64_t *h_t, int32_t *h_c, float *h_amp,
	                   int64_t *n);
	/* Subtraction of placed templates from the residual R (C × T): for
	 * spike i < n, with (t, k) = (tk[2i], tk[2i + 1]) (device int32) and
	 * amplitude a[i] (device),
	 *   R[c + C (t + τ)] −= a[i] · W[c + C τ + C nt k]
	 * for τ < nt and win[2k] <= c < win[2k + 1] (W: K templates of
	 * C × nt; win: their channel windows, device int32 K × 2), each
	 * product rounded to float first. The caller promises 0 <= t <=
	 * T − nt, 0 <= k < K, 0 <= win[2k] <= win[2k + 1] <= C, and that no
	 * two spikes' footprints overlap: then the order does not matter
	 * and every backend gives the same bits. */
	int (*sub_spikes)(void *ctx, int64_t C, int64_t T, float *R, int64_t nt,
	                  int64_t K, const float *W, const int32_t *win,
	                  int64_t n, const int32_t *tk, const float *a);
	/* Snippets of n spikes on Y (C × T): for i < n, j < nc, k < nt,
	 *   S[(nc i + j) nt + k] = Y[nbr[nc c + j] + C (t + k)]
	 * with (t, c) = (tc[2i], tc[2i + 1]) (device int32: a window's
	 * first sample and the spike's channel; the caller promises 0 <= t
	 * <= T − nt and 0 <= c < C) and nbr as peaks_above's. S is a device
	 * buffer of n·nc·nt floats. */
	int (*snippets)(void *ctx, int64_t C, int64_t T, const float *Y,
	                int64_t nc, const int32_t *nbr, int64_t nt, int64_t n,
	                const int32_t *tc, float *S);
	/* Each sample's best template of a group, by the drop in squared
	 * residual: for t < n, over the rows i < ng of S (row stride lds) in
	 * order, with s = S[t + lds i], a row's gain is, when mu[i] > 0 and
	 * lam > 0 (Kilosort 2's amplitude prior; l = (float) lam),
	 *   x = s + l mu;  x > 0 ? x² / (1 + l) − l mu² : −inf
	 * else s > 0 ? s² : −inf, in float (each operation rounded, as
	 * written: (x·x)·(1 / (1 + l)) − (l·mu)·mu); a row replaces the best
	 * when its gain is larger: G[t] (−inf when none), A[t] = its s (0),
	 * Kb[t] = kid[i] (−1). When th is not NULL, a row whose gain is not
	 * larger than th[i] (its own threshold) is skipped. mu, th, kid:
	 * device, ng each. */
	int (*score_best)(void *ctx, int64_t ng, int64_t n, const float *S,
	                  int64_t lds, const float *mu, double lam,
	                  const float *th, const int32_t *kid, float *G,
	                  float *A, int32_t *Kb);
	/* Matching pursuit's acceptance: the candidates (g, t), g < ng,
	 * t < n, with G[g ld + t] > th (float) that are the largest of every
	 * (h, u) with h in nb[nb0[g] .. nb0[g + 1]) (device int32 CSR, nb0:
	 * ng + 1 entries) and u in (t − w, t + w) ∩ [0, n), where an equal
	 * value at a lower h, or the same h and a lower u, wins. *cnt = how
	 * many; when *cnt <= cap, h_gt (g ld + t), h_k (Kb there) and h_a
	 * (A there) — host arrays of cap — hold them in (g, t) order, else
	 * nothing useful. G, Kb, A: device, ng rows of stride ld >= n. */
	int (*accept_peaks)(void *ctx, int64_t ng, int64_t n, int64_t ld,
	                    const float *G, const int32_t *Kb, const float *A,
	                    double th, int64_t w, const int32_t *nb0,
	                    const int32_t *nb, int64_t cap, int64_t *h_gt,
	                    int32_t *h_k, float *h_a, int64_t *cnt);
};

struct kern_backend {
	const struct kern_ops *ops;
	void *ctx;
	char name[32]; /* "cpu", "cuda:0" */
};

/* The cpu backend is always there. 0 or NQ_ENOMEM. */
int kern_cpu_open(struct kern_backend *kb);
/* The cpu backend behind a device's caps (name "cpu-dev"): neither
 * KERN_CAP_HOST_MEM nor KERN_CAP_REENTRANT, so algorithms take the paths
 * they take on a GPU — every copy made, one op at a time — on the cpu's
 * ops, whose results a test compares with the cpu's. For tests and
 * ss-run only; not a device name users can pick. */
int kern_cpu_open_as_device(struct kern_backend *kb);
/* Threads of the cpu backend's BLAS (process-wide; n ≥ 1). */
void kern_cpu_set_threads(int n);
/* Threads for host-side parallel loops: OpenMP's (OMP_NUM_THREADS, or the
 * cores), between 1 and cap; 1 in a build without OpenMP. */
int kern_host_threads(int cap);
/* Number of CUDA devices usable now; 0 when the cuda backend is not built
 * or no driver/device is present (never fails, never aborts). */
int kern_cuda_device_count(void);
/* Open cuda:device. NQ_ENODEV when not built, no device, or bad index;
 * NQ_EDEVICE when the driver fails. */
int kern_cuda_open(struct kern_backend *kb, int device);
/* "cpu", "cuda" or "cuda:N" → backend. NQ_EBADDEVICE on a bad name. */
int kern_open_by_name(struct kern_backend *kb, const char *name);
/* Closes through the backend's own close op; harmless on a closed or
 * zeroed kb. */
void kern_close(struct kern_backend *kb);

/* Does the backend keep its buffers in host memory (KERN_CAP_HOST_MEM)? */
static inline int
kern_mem_is_host(const struct kern_backend *kb)
{
	return (kb->ops->caps & KERN_CAP_HOST_MEM) != 0;
}

/* May its ops run from several threads at once (KERN_CAP_REENTRANT)? */
static inline int
kern_ops_reentrant(const struct kern_backend *kb)
{
	return (kb->ops->caps & KERN_CAP_REENTRANT) != 0;
}

/*
 * The checked entry points, one per op (kern_check.c): each refuses what
 * the op's contract above does not allow with NQ_EBADPARAM (NQ_ENOMEM for
 * an allocation beyond PTRDIFF_MAX), answers the calls with nothing to do
 * itself (zero sizes: 0, with *info, *k and the host scalars set as the op
 * would set them), and passes the rest to kb->ops. Same arguments as the
 * op, with kb in place of ctx.
 */
int kern_alloc(const struct kern_backend *kb, size_t bytes, void **ptr);
void kern_free(const struct kern_backend *kb, void *ptr);
int kern_upload(const struct kern_backend *kb, void *dst, const void *h_src,
                size_t bytes);
int kern_download(const struct kern_backend *kb, void *h_dst, const void *src,
                  size_t bytes);
int kern_copy(const struct kern_backend *kb, void *dst, const void *src,
              size_t bytes);
int kern_mem_info(const struct kern_backend *kb, size_t *free_bytes,
                  size_t *total_bytes);
int kern_sync(const struct kern_backend *kb);
int kern_gemm(const struct kern_backend *kb, enum kern_dtype dt,
              enum kern_trans ta, enum kern_trans tb, int64_t m, int64_t n,
              int64_t k, double alpha, const void *A, int64_t lda,
              const void *B, int64_t ldb, double beta, void *C, int64_t ldc);
int kern_syrk(const struct kern_backend *kb, enum kern_dtype dt,
              enum kern_trans trans, int64_t n, int64_t k, double alpha,
              const void *A, int64_t lda, double beta, void *C, int64_t ldc);
int kern_potrf(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
               void *A, int64_t lda, int *info);
int kern_trsm_lower(const struct kern_backend *kb, enum kern_dtype dt,
                    int64_t n, int64_t m, const void *L, int64_t ldl, void *B,
                    int64_t ldb);
int kern_syevd(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
               void *A, int64_t lda, void *W, int *info);
int kern_axpby(const struct kern_backend *kb, enum kern_dtype dt, int64_t count,
               double a, const void *X, double b, void *Y);
int kern_shrink(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                const void *C, void *Out, double alpha, int keep_diag);
int kern_symmetrize(const struct kern_backend *kb, enum kern_dtype dt,
                    int64_t n, void *A);
int kern_add_diag(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                  void *A, double v);
int kern_get_diag(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                  const void *A, void *d);
int kern_scale_rc(const struct kern_backend *kb, enum kern_dtype dt, int64_t m,
                  int64_t n, void *A, int64_t lda, const void *r,
                  const void *c);
int kern_row_sumsq(const struct kern_backend *kb, enum kern_dtype dt, int64_t m,
                   int64_t n, const void *A, int64_t lda, void *out);
int kern_sumsq(const struct kern_backend *kb, enum kern_dtype dt, int64_t count,
               const void *X, double *out);
int kern_sum_log_diag(const struct kern_backend *kb, enum kern_dtype dt,
                      int64_t n, const void *A, double *out);
int kern_gersh_min(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                   const void *A, double *out);
int kern_pearson(const struct kern_backend *kb, enum kern_dtype dt,
                 int64_t count, const void *X, const void *Y, double *out);
int kern_pair_cov_acc(const struct kern_backend *kb, enum kern_dtype dt,
                      int64_t n, const void *Sxx, const void *Sx,
                      const void *Sm, void *acc, void *cnt);
int kern_div_pos(const struct kern_backend *kb, enum kern_dtype dt,
                 int64_t count, void *X, const void *Y);
int kern_convert(const struct kern_backend *kb, enum kern_dtype dt_dst,
                 void *dst, enum kern_dtype dt_src, const void *src,
                 int64_t count);
int kern_tridiag_qt(const struct kern_backend *kb, enum kern_dtype dt,
                    int64_t n, void *A, int64_t lda, void *d, void *e,
                    int64_t m, void *B, int64_t ldb);
int kern_conv_rows(const struct kern_backend *kb, enum kern_dtype dt,
                   int64_t ng, int64_t group, int64_t n, int64_t nt,
                   const void *X, int64_t ldx, const void *W, void *Y,
                   int64_t ldy);
int kern_syevr_below(const struct kern_backend *kb, enum kern_dtype dt,
                     int64_t n, void *A, int64_t lda, double vu, int64_t max_k,
                     void *W, void *Z, int64_t ldz, int64_t *k, int *info);
int kern_sterf(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
               void *d, void *e, int *info);
int kern_syev_side(const struct kern_backend *kb, enum kern_dtype dt, int64_t n,
                   void *A, int64_t lda, void *W, int64_t max_k, void *Z,
                   int64_t ldz, int64_t *k, int *side, int *info);

int kern_traffic(const struct kern_backend *kb, uint64_t *h2d, uint64_t *d2h);
int kern_filter_car(const struct kern_backend *kb, int64_t C, int64_t T,
                    float *X, const double *h_sos, int car);
int kern_peaks_above(const struct kern_backend *kb, int64_t C, int64_t T,
                     const float *Y, double th, int64_t lo, int64_t hi,
                     int64_t w, int64_t nc, const int32_t *nbr, int64_t cap,
                     int64_t *h_t, int32_t *h_c, float *h_amp, int64_t *n);
int kern_sub_spikes(const struct kern_backend *kb, int64_t C, int64_t T,
                    float *R, int64_t nt, int64_t K, const float *W,
                    const int32_t *win, int64_t n, const int32_t *tk,
                    const float *a);
int kern_snippets(const struct kern_backend *kb, int64_t C, int64_t T,
                  const float *Y, int64_t nc, const int32_t *nbr, int64_t nt,
                  int64_t n, const int32_t *tc, float *S);
int kern_score_best(const struct kern_backend *kb, int64_t ng, int64_t n,
                    const float *S, int64_t lds, const float *mu, double lam,
                    const float *th, const int32_t *kid, float *G, float *A,
                    int32_t *Kb);
int kern_accept_peaks(const struct kern_backend *kb, int64_t ng, int64_t n,
                      int64_t ld, const float *G, const int32_t *Kb,
                      const float *A, double th, int64_t w, const int32_t *nb0,
                      const int32_t *nb, int64_t cap, int64_t *h_gt,
                      int32_t *h_k, float *h_a, int64_t *cnt);

/* The cpu backend's filter_car on host memory (0, or NQ_ENOMEM for its
 * scratch), and its forward-backward filter alone (no mean or reference
 * removed; work: 3 C doubles): for code that preprocesses without a
 * backend (spikesort's ss_preprocess and its tests). */
int kern_host_filter_car(const double *h_sos, float *X, int C, int64_t T,
                         int car);
void kern_host_filtfilt(const double *h_sos, float *X, int C, int64_t T,
                        double *work);

/* KOP(kb, gemm, ...) is kern_gemm(kb, ...): the op, checked. */
#define KOP(kb, op, ...) kern_##op((kb), __VA_ARGS__)

#endif
