/*
 * kern_cuda.c — the cuda backend, host side: one context per opened device
 * holding a stream, a cuBLAS handle and a cuSOLVER handle bound to it.
 *
 * Every op runs on arguments kern_check.c has checked (kern_impl.h says
 * what it may assume), selects the context's device (the calling thread
 * may have another one current), queues its work on the stream and maps
 * every CUDA/cuBLAS/cuSOLVER status to NQ_ENOMEM or NQ_EDEVICE, with one
 * line on stderr naming the call. Ops that return host values synchronize.
 *
 * Built as the module libnq_kern_cuda.so (hidden visibility but for the
 * two entry points of kern_cuda_mod.h; closing is the ops table's), which
 * kern_cuda_dl.c loads only when a cuda device is counted or opened: cpu
 * jobs never map cuBLAS and cuSOLVER.
 */
#include "kern.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern_cuda_kernels.h"
#include "kern_cuda_mod.h"
#include "kern_impl.h"
#include "nq_error.h"

/* Solver workspaces up to this size stay allocated between calls; larger
 * ones (syevd at large n: gigabytes) are freed right after the call so the
 * memory goes back to the algorithm. */
#define WS_CACHE_MAX ((size_t) 64 << 20)
#define RES_DOUBLES  8

struct kern_cuda_ctx {
	int device;
	cudaStream_t stream;
	cublasHandle_t blas;
	cusolverDnHandle_t solver;
	cusolverDnParams_t params;
	int *d_info;    /* factorization info */
	double *d_part; /* reduction partials: RED_BLOCKS * RED_VALS */
	double *d_res;  /* reduction results: RES_DOUBLES */
	void *ws;       /* cached solver workspace */
	size_t ws_bytes;
	uint64_t h2d, d2h; /* bytes copied each way (kern.h traffic) */
};

/* ---- status mapping */

static int
cu_check(const char *what, cudaError_t e)
{
	if (e == cudaSuccess)
		return 0;
	(void) cudaGetLastError(); /* clear a non-sticky error */
	if (e == cudaErrorMemoryAllocation)
		return NQ_ENOMEM;
	fprintf(stderr, "kern cuda error call=%s err=%s msg=\"%s\"\n", what,
	        cudaGetErrorName(e), cudaGetErrorString(e));
	return NQ_EDEVICE;
}

static int
blas_check(const char *what, cublasStatus_t s)
{
	if (s == CUBLAS_STATUS_SUCCESS)
		return 0;
	if (s == CUBLAS_STATUS_ALLOC_FAILED)
		return NQ_ENOMEM;
	fprintf(stderr, "kern cuda error call=%s err=%s\n", what,
	        cublasGetStatusName(s));
	return NQ_EDEVICE;
}

static int
solver_check(const char *what, cusolverStatus_t s)
{
	if (s == CUSOLVER_STATUS_SUCCESS)
		return 0;
	if (s == CUSOLVER_STATUS_ALLOC_FAILED)
		return NQ_ENOMEM;
	fprintf(stderr, "kern cuda error call=%s err=cusolver_status_%d\n",
	        what, (int) s);
	return NQ_EDEVICE;
}

static int
use(struct kern_cuda_ctx *c)
{
	return cu_check("cudaSetDevice", cudaSetDevice(c->device));
}

/* Copies n doubles of device results to the host and waits for them. */
static int
fetch_res(struct kern_cuda_ctx *c, double *h, int n)
{
	int rc = cu_check("cudaMemcpyAsync",
	                  cudaMemcpyAsync(h, c->d_res, (size_t) n * sizeof(*h),
	                                  cudaMemcpyDeviceToHost, c->stream));

	c->d2h += (uint64_t) n * sizeof(*h);
	if (rc == 0)
		rc = cu_check("cudaStreamSynchronize",
		              cudaStreamSynchronize(c->stream));
	return rc;
}

/* ---- device count, open, close */

static const struct kern_ops kern_cuda_ops;

KERN_CUDAMOD_EXPORT int
kern_cudamod_device_count(void)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e != cudaSuccess) { /* no driver, no device, driver too old */
		(void) cudaGetLastError();
		return 0;
	}
	return n > 0 ? n : 0;
}

static void
ctx_destroy(struct kern_cuda_ctx *c)
{
	if (c == NULL)
		return;
	(void) cudaSetDevice(c->device);
	if (c->stream != NULL)
		(void) cudaStreamSynchronize(c->stream);
	if (c->params != NULL)
		(void) cusolverDnDestroyParams(c->params);
	if (c->solver != NULL)
		(void) cusolverDnDestroy(c->solver);
	if (c->blas != NULL)
		(void) cublasDestroy(c->blas);
	(void) cudaFree(c->ws);
	(void) cudaFree(c->d_info);
	(void) cudaFree(c->d_part);
	(void) cudaFree(c->d_res);
	if (c->stream != NULL)
		(void) cudaStreamDestroy(c->stream);
	(void) cudaGetLastError();
	free(c);
}

static void
cuda_close(void *ctx)
{
	ctx_destroy(ctx);
}

KERN_CUDAMOD_EXPORT int
kern_cudamod_open(struct kern_backend *kb, int device)
{
	struct kern_cuda_ctx *c;
	int rc;

	if (kb == NULL)
		return NQ_EBADPARAM;
	memset(kb, 0, sizeof(*kb));
	if (device < 0 || device >= kern_cudamod_device_count())
		return NQ_ENODEV;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NQ_ENOMEM;
	c->device = device;
	rc = use(c);
	if (rc == 0)
		rc = cu_check("cudaStreamCreate",
		              cudaStreamCreateWithFlags(&c->stream,
		                                        cudaStreamNonBlocking));
	if (rc == 0)
		rc = blas_check("cublasCreate", cublasCreate(&c->blas));
	if (rc == 0)
		rc = blas_check("cublasSetStream",
		                cublasSetStream(c->blas, c->stream));
	if (rc == 0)
		rc = solver_check("cusolverDnCreate",
		                  cusolverDnCreate(&c->solver));
	if (rc == 0)
		rc = solver_check("cusolverDnSetStream",
		                  cusolverDnSetStream(c->solver, c->stream));
	if (rc == 0)
		rc = solver_check("cusolverDnCreateParams",
		                  cusolverDnCreateParams(&c->params));
	if (rc == 0)
		rc = cu_check("cudaMalloc", cudaMalloc((void **) &c->d_info,
		                                       sizeof(*c->d_info)));
	if (rc == 0)
		rc = cu_check(
		        "cudaMalloc",
		        cudaMalloc((void **) &c->d_part,
		                   KERN_CUDA_RED_BLOCKS * KERN_CUDA_RED_VALS *
		                           sizeof(double)));
	if (rc == 0)
		rc = cu_check("cudaMalloc",
		              cudaMalloc((void **) &c->d_res,
		                         RES_DOUBLES * sizeof(double)));
	if (rc != 0)
		goto fail;
	kb->ops = &kern_cuda_ops;
	kb->ctx = c;
	snprintf(kb->name, sizeof(kb->name), "cuda:%d", device);
	return 0;
fail:
	ctx_destroy(c);
	return rc;
}

/* ---- solver workspace */

/* Device workspace of `bytes`: the cached buffer when it fits (growing it
 * up to WS_CACHE_MAX), else a buffer of its own (*own = 1) that
 * ws_release() frees. The stream is in order, so reusing the cached buffer
 * for the next op is safe without a sync. */
static int
ws_acquire(struct kern_cuda_ctx *c, size_t bytes, void **p, int *own)
{
	int rc;

	*p = NULL;
	*own = 0;
	if (bytes == 0)
		return 0;
	if (bytes <= c->ws_bytes) {
		*p = c->ws;
		return 0;
	}
	if (bytes <= WS_CACHE_MAX) {
		/* cudaFree waits for the work that still uses the old one */
		(void) cudaFree(c->ws);
		c->ws = NULL;
		c->ws_bytes = 0;
		rc = cu_check("cudaMalloc", cudaMalloc(&c->ws, bytes));
		if (rc != 0) {
			c->ws = NULL;
			return rc;
		}
		c->ws_bytes = bytes;
		*p = c->ws;
		return 0;
	}
	rc = cu_check("cudaMalloc", cudaMalloc(p, bytes));
	if (rc != 0)
		*p = NULL;
	else
		*own = 1;
	return rc;
}

static void
ws_release(void *p, int own)
{
	if (own)
		(void) cudaFree(p);
}

/* The workspaces of one cuSOLVER call: device (the cached buffer or one
 * of its own) and host (the X API's, often 0 bytes). */
struct solver_ws {
	void *d, *h;
	size_t dbytes, hbytes;
	int own;
};

/* Acquires ws->dbytes of device and ws->hbytes of host workspace; what was
 * acquired before a failure is released by solver_tail(). */
static int
ws_get(struct kern_cuda_ctx *c, struct solver_ws *ws)
{
	int rc = ws_acquire(c, ws->dbytes, &ws->d, &ws->own);

	if (rc == 0 && ws->hbytes > 0) {
		ws->h = malloc(ws->hbytes);
		if (ws->h == NULL)
			rc = NQ_ENOMEM;
	}
	return rc;
}

static int
fetch_info(struct kern_cuda_ctx *c, int *info)
{
	int rc = cu_check("cudaMemcpyAsync",
	                  cudaMemcpyAsync(info, c->d_info, sizeof(*info),
	                                  cudaMemcpyDeviceToHost, c->stream));

	c->d2h += sizeof(*info);
	if (rc == 0)
		rc = cu_check("cudaStreamSynchronize",
		              cudaStreamSynchronize(c->stream));
	return rc;
}

/* The tail of every cuSOLVER call `what`, which writes its devInfo to
 * c->d_info; rc is the status so far (of getting the workspace, of the
 * call itself). When that is 0, devInfo comes back into *h_info (this
 * synchronizes), and a negative one — an argument cuSOLVER refused, which
 * kern_check.c let through: our bug — is logged and becomes NQ_EDEVICE.
 * Then, given ws (NULL: another call on the same workspace follows), the
 * workspaces are released, after waiting for the stream when something
 * failed (work queued before may still use them). */
static int
solver_tail(struct kern_cuda_ctx *c, const char *what, int rc, int *h_info,
            struct solver_ws *ws)
{
	if (rc == 0)
		rc = fetch_info(c, h_info);
	if (rc == 0 && *h_info < 0) {
		fprintf(stderr, "kern cuda error call=%s info=%d\n", what,
		        *h_info);
		rc = NQ_EDEVICE;
	}
	if (ws != NULL) {
		if (rc != 0)
			(void) cudaStreamSynchronize(c->stream);
		ws_release(ws->d, ws->own);
		free(ws->h);
		ws->d = NULL;
		ws->h = NULL;
		ws->own = 0;
	}
	return rc;
}

/* The lower triangle of A reduced to tridiagonal d, e (reflectors in A and
 * tau), in the buffer's precision; tridiag_qt and syev_side both start so. */
static int
sytrd(struct kern_cuda_ctx *c, enum kern_dtype dt, int n, void *A, int lda,
      void *d, void *e, void *tau, void *work, int lwork)
{
	if (dt == KERN_F64)
		return solver_check("cusolverDnDsytrd",
		                    cusolverDnDsytrd(c->solver,
		                                     CUBLAS_FILL_MODE_LOWER, n,
		                                     A, lda, d, e, tau, work,
		                                     lwork, c->d_info));
	return solver_check("cusolverDnSsytrd",
	                    cusolverDnSsytrd(c->solver, CUBLAS_FILL_MODE_LOWER,
	                                     n, A, lda, d, e, tau, work, lwork,
	                                     c->d_info));
}

/* ---- memory */

static int
cuda_alloc(void *ctx, size_t bytes, void **ptr)
{
	struct kern_cuda_ctx *c = ctx;
	void *p = NULL;
	int rc;

	rc = use(c);
	if (rc != 0)
		return rc;
	rc = cu_check("cudaMalloc", cudaMalloc(&p, bytes ? bytes : 1));
	if (rc != 0)
		return rc;
	rc = cu_check("cudaMemsetAsync",
	              cudaMemsetAsync(p, 0, bytes, c->stream));
	if (rc != 0) {
		(void) cudaFree(p);
		return rc;
	}
	*ptr = p;
	return 0;
}

static void
cuda_free(void *ctx, void *ptr)
{
	struct kern_cuda_ctx *c = ctx;

	if (use(c) != 0)
		return;
	(void) cu_check("cudaFree", cudaFree(ptr));
}

/* Every transfer waits: the host buffer may be reused as soon as we
 * return. */
static int
transfer(struct kern_cuda_ctx *c, void *dst, const void *src, size_t bytes,
         enum cudaMemcpyKind kind, int wait)
{
	int rc;

	rc = use(c);
	if (kind == cudaMemcpyHostToDevice)
		c->h2d += bytes;
	else if (kind == cudaMemcpyDeviceToHost)
		c->d2h += bytes;
	if (rc == 0)
		rc = cu_check(
		        "cudaMemcpyAsync",
		        cudaMemcpyAsync(dst, src, bytes, kind, c->stream));
	if (rc == 0 && wait)
		rc = cu_check("cudaStreamSynchronize",
		              cudaStreamSynchronize(c->stream));
	return rc;
}

static int
cuda_upload(void *ctx, void *dst, const void *h_src, size_t bytes)
{
	return transfer(ctx, dst, h_src, bytes, cudaMemcpyHostToDevice, 1);
}

static int
cuda_download(void *ctx, void *h_dst, const void *src, size_t bytes)
{
	return transfer(ctx, h_dst, src, bytes, cudaMemcpyDeviceToHost, 1);
}

static int
cuda_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
	return transfer(ctx, dst, src, bytes, cudaMemcpyDeviceToDevice, 0);
}

static int
cuda_mem_info(void *ctx, size_t *free_bytes, size_t *total_bytes)
{
	int rc;

	rc = use(ctx);
	if (rc == 0)
		rc = cu_check("cudaMemGetInfo",
		              cudaMemGetInfo(free_bytes, total_bytes));
	return rc;
}

static int
cuda_sync(void *ctx)
{
	struct kern_cuda_ctx *c = ctx;
	int rc = use(c);

	if (rc == 0)
		rc = cu_check("cudaStreamSynchronize",
		              cudaStreamSynchronize(c->stream));
	return rc;
}

/* ---- dense linear algebra */

static cublasOperation_t
blas_op(enum kern_trans t)
{
	return t == KERN_T ? CUBLAS_OP_T : CUBLAS_OP_N;
}

static cudaDataType
cuda_type(enum kern_dtype dt)
{
	return dt == KERN_F64 ? CUDA_R_64F : CUDA_R_32F;
}

static int
cuda_gemm(void *ctx, enum kern_dtype dt, enum kern_trans ta, enum kern_trans tb,
          int64_t m, int64_t n, int64_t k, double alpha, const void *A,
          int64_t lda, const void *B, int64_t ldb, double beta, void *C,
          int64_t ldc)
{
	struct kern_cuda_ctx *c = ctx;
	cublasStatus_t st;
	int rc;

	rc = use(c);
	if (rc != 0)
		return rc;
	if (dt == KERN_F64) {
		st = cublasDgemm(c->blas, blas_op(ta), blas_op(tb), (int) m,
		                 (int) n, (int) k, &alpha, A, (int) lda, B,
		                 (int) ldb, &beta, C, (int) ldc);
	} else {
		float fa = (float) alpha, fb = (float) beta;
		st = cublasSgemm(c->blas, blas_op(ta), blas_op(tb), (int) m,
		                 (int) n, (int) k, &fa, A, (int) lda, B,
		                 (int) ldb, &fb, C, (int) ldc);
	}
	return blas_check("cublasXgemm", st);
}

static int
cuda_syrk(void *ctx, enum kern_dtype dt, enum kern_trans trans, int64_t n,
          int64_t k, double alpha, const void *A, int64_t lda, double beta,
          void *C, int64_t ldc)
{
	struct kern_cuda_ctx *c = ctx;
	cublasStatus_t st;
	int rc;

	rc = use(c);
	if (rc != 0)
		return rc;
	if (dt == KERN_F64) {
		st = cublasDsyrk(c->blas, CUBLAS_FILL_MODE_LOWER,
		                 blas_op(trans), (int) n, (int) k, &alpha, A,
		                 (int) lda, &beta, C, (int) ldc);
	} else {
		float fa = (float) alpha, fb = (float) beta;
		st = cublasSsyrk(c->blas, CUBLAS_FILL_MODE_LOWER,
		                 blas_op(trans), (int) n, (int) k, &fa, A,
		                 (int) lda, &fb, C, (int) ldc);
	}
	rc = blas_check("cublasXsyrk", st);
	if (rc == 0)
		rc = cu_check("kern_cuda_mirror_lower",
		              kern_cuda_mirror_lower(dt, n, C, ldc, c->stream));
	return rc;
}

static int
cuda_potrf(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
           int *info)
{
	struct kern_cuda_ctx *c = ctx;
	struct solver_ws ws = {0};
	cudaDataType t = cuda_type(dt);
	int rc, h_info = 0;

	rc = use(c);
	if (rc != 0)
		return rc;
	rc = solver_check("cusolverDnXpotrf_bufferSize",
	                  cusolverDnXpotrf_bufferSize(
	                          c->solver, c->params, CUBLAS_FILL_MODE_LOWER,
	                          n, t, A, lda, t, &ws.dbytes, &ws.hbytes));
	if (rc == 0)
		rc = ws_get(c, &ws);
	if (rc == 0)
		rc = solver_check("cusolverDnXpotrf",
		                  cusolverDnXpotrf(c->solver, c->params,
		                                   CUBLAS_FILL_MODE_LOWER, n, t,
		                                   A, lda, t, ws.d, ws.dbytes,
		                                   ws.h, ws.hbytes, c->d_info));
	rc = solver_tail(c, "cusolverDnXpotrf", rc, &h_info, &ws);
	if (rc == 0)
		*info = h_info;
	return rc;
}

static int
cuda_trsm_lower(void *ctx, enum kern_dtype dt, int64_t n, int64_t m,
                const void *L, int64_t ldl, void *B, int64_t ldb)
{
	struct kern_cuda_ctx *c = ctx;
	cublasStatus_t st;
	int rc;

	rc = use(c);
	if (rc != 0)
		return rc;
	if (dt == KERN_F64) {
		const double one = 1.0;
		st = cublasDtrsm(c->blas, CUBLAS_SIDE_LEFT,
		                 CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
		                 CUBLAS_DIAG_NON_UNIT, (int) n, (int) m, &one,
		                 L, (int) ldl, B, (int) ldb);
	} else {
		const float one = 1.0f;
		st = cublasStrsm(c->blas, CUBLAS_SIDE_LEFT,
		                 CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
		                 CUBLAS_DIAG_NON_UNIT, (int) n, (int) m, &one,
		                 L, (int) ldl, B, (int) ldb);
	}
	return blas_check("cublasXtrsm", st);
}

static int
cuda_syevd(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
           void *W, int *info)
{
	struct kern_cuda_ctx *c = ctx;
	struct solver_ws ws = {0};
	cudaDataType t = cuda_type(dt);
	int rc, h_info = 0;

	rc = use(c);
	if (rc != 0)
		return rc;
	rc = solver_check("cusolverDnXsyevd_bufferSize",
	                  cusolverDnXsyevd_bufferSize(c->solver, c->params,
	                                              CUSOLVER_EIG_MODE_VECTOR,
	                                              CUBLAS_FILL_MODE_LOWER, n,
	                                              t, A, lda, t, W, t,
	                                              &ws.dbytes, &ws.hbytes));
	if (rc == 0)
		rc = ws_get(c, &ws);
	if (rc == 0)
		rc = solver_check(
		        "cusolverDnXsyevd",
		        cusolverDnXsyevd(
		                c->solver, c->params, CUSOLVER_EIG_MODE_VECTOR,
		                CUBLAS_FILL_MODE_LOWER, n, t, A, lda, t, W, t,
		                ws.d, ws.dbytes, ws.h, ws.hbytes, c->d_info));
	rc = solver_tail(c, "cusolverDnXsyevd", rc, &h_info, &ws);
	if (rc == 0)
		*info = h_info;
	return rc;
}

/* ---- elementwise and reductions */

/* Selects the device, then maps the launch status. */
#define LAUNCH(c, name, call)                \
	do {                                 \
		int rc_ = use(c);            \
		if (rc_ != 0)                \
			return rc_;          \
		return cu_check(name, call); \
	} while (0)

static int
cuda_axpby(void *ctx, enum kern_dtype dt, int64_t count, double a,
           const void *X, double b, void *Y)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_axpby",
	       kern_cuda_axpby(dt, count, a, X, b, Y, c->stream));
}

static int
cuda_shrink(void *ctx, enum kern_dtype dt, int64_t n, const void *C, void *Out,
            double alpha, int keep_diag)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_shrink",
	       kern_cuda_shrink(dt, n, C, Out, alpha, keep_diag, c->stream));
}

static int
cuda_symmetrize(void *ctx, enum kern_dtype dt, int64_t n, void *A)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_symmetrize",
	       kern_cuda_symmetrize(dt, n, A, c->stream));
}

static int
cuda_add_diag(void *ctx, enum kern_dtype dt, int64_t n, void *A, double v)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_add_diag",
	       kern_cuda_add_diag(dt, n, A, v, c->stream));
}

static int
cuda_get_diag(void *ctx, enum kern_dtype dt, int64_t n, const void *A, void *d)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_get_diag",
	       kern_cuda_get_diag(dt, n, A, d, c->stream));
}

static int
cuda_scale_rc(void *ctx, enum kern_dtype dt, int64_t m, int64_t n, void *A,
              int64_t lda, const void *r, const void *cv)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_scale_rc",
	       kern_cuda_scale_rc(dt, m, n, A, lda, r, cv, c->stream));
}

static int
cuda_row_sumsq(void *ctx, enum kern_dtype dt, int64_t m, int64_t n,
               const void *A, int64_t lda, void *out)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_row_sumsq",
	       kern_cuda_row_sumsq(dt, m, n, A, lda, out, c->stream));
}

static int
cuda_sumsq(void *ctx, enum kern_dtype dt, int64_t count, const void *X,
           double *out)
{
	struct kern_cuda_ctx *c = ctx;
	int rc;

	rc = use(c);
	if (rc == 0)
		rc = cu_check("kern_cuda_sumsq",
		              kern_cuda_sumsq(dt, count, X, c->d_part, c->d_res,
		                              c->stream));
	if (rc == 0)
		rc = fetch_res(c, out, 1);
	return rc;
}

static int
cuda_sum_log_diag(void *ctx, enum kern_dtype dt, int64_t n, const void *A,
                  double *out)
{
	struct kern_cuda_ctx *c = ctx;
	int rc;

	rc = use(c);
	if (rc == 0)
		rc = cu_check("kern_cuda_sum_log_diag",
		              kern_cuda_sum_log_diag(dt, n, A, c->d_part,
		                                     c->d_res, c->stream));
	if (rc == 0)
		rc = fetch_res(c, out, 1);
	return rc;
}

static int
cuda_gersh_min(void *ctx, enum kern_dtype dt, int64_t n, const void *A,
               double *out)
{
	struct kern_cuda_ctx *c = ctx;
	int rc;

	rc = use(c);
	if (rc == 0)
		rc = cu_check("kern_cuda_gersh_min",
		              kern_cuda_gersh_min(dt, n, A, c->d_part, c->d_res,
		                                  c->stream));
	if (rc == 0)
		rc = fetch_res(c, out, 1);
	return rc;
}

static int
cuda_pearson(void *ctx, enum kern_dtype dt, int64_t count, const void *X,
             const void *Y, double *out)
{
	struct kern_cuda_ctx *c = ctx;
	double s[3];
	int rc;

	rc = use(c);
	if (rc == 0)
		rc = cu_check("kern_cuda_pearson",
		              kern_cuda_pearson(dt, count, X, Y, c->d_part,
		                                c->d_res, c->stream));
	if (rc == 0)
		rc = fetch_res(c, s, 3);
	if (rc != 0)
		return rc;
	/* as the cpu backend: exactly zero spread means a constant vector */
	if (s[1] == 0 || s[2] == 0)
		return 0;
	*out = s[0] / sqrt(s[1] * s[2]);
	/* in [−1, 1] as numpy's corrcoef clips it (rounding gives 1 + ε
	 * on two elements) */
	*out = fmin(fmax(*out, -1.0), 1.0);
	return 0;
}

static int
cuda_pair_cov_acc(void *ctx, enum kern_dtype dt, int64_t n, const void *Sxx,
                  const void *Sx, const void *Sm, void *acc, void *cnt)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_pair_cov_acc",
	       kern_cuda_pair_cov_acc(dt, n, Sxx, Sx, Sm, acc, cnt, c->stream));
}

static int
cuda_div_pos(void *ctx, enum kern_dtype dt, int64_t count, void *X,
             const void *Y)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_div_pos",
	       kern_cuda_div_pos(dt, count, X, Y, c->stream));
}

static int
cuda_convert(void *ctx, enum kern_dtype dt_dst, void *dst,
             enum kern_dtype dt_src, const void *src, int64_t count)
{
	struct kern_cuda_ctx *c = ctx;

	if (dt_dst == dt_src)
		return cuda_copy(ctx, dst, src,
		                 (size_t) count * kern_dtype_size(dt_src));
	LAUNCH(c, "kern_cuda_convert",
	       kern_cuda_convert(dt_dst, dst, dt_src, src, count, c->stream));
}

/* Workspace elements of sytrd and ormtr (legacy API: counts in elements). */
static int
tridiag_lwork(struct kern_cuda_ctx *c, enum kern_dtype dt, int n, void *A,
              int lda, void *d, void *e, void *tau, cublasOperation_t op, int m,
              void *B, int ldb, int *lwork)
{
	int l1 = 0, l2 = 0, rc;

	if (dt == KERN_F64)
		rc = solver_check("cusolverDnDsytrd_bufferSize",
		                  cusolverDnDsytrd_bufferSize(
		                          c->solver, CUBLAS_FILL_MODE_LOWER, n,
		                          A, lda, d, e, tau, &l1));
	else
		rc = solver_check("cusolverDnSsytrd_bufferSize",
		                  cusolverDnSsytrd_bufferSize(
		                          c->solver, CUBLAS_FILL_MODE_LOWER, n,
		                          A, lda, d, e, tau, &l1));
	if (rc == 0 && m > 0) {
		if (dt == KERN_F64)
			rc = solver_check("cusolverDnDormtr_bufferSize",
			                  cusolverDnDormtr_bufferSize(
			                          c->solver, CUBLAS_SIDE_LEFT,
			                          CUBLAS_FILL_MODE_LOWER, op, n,
			                          m, A, lda, tau, B, ldb, &l2));
		else
			rc = solver_check("cusolverDnSormtr_bufferSize",
			                  cusolverDnSormtr_bufferSize(
			                          c->solver, CUBLAS_SIDE_LEFT,
			                          CUBLAS_FILL_MODE_LOWER, op, n,
			                          m, A, lda, tau, B, ldb, &l2));
	}
	*lwork = (l1 > l2 ? l1 : l2) + 1;
	return rc;
}

static int
cuda_tridiag_qt(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
                void *d, void *e, int64_t m, void *B, int64_t ldb)
{
	struct kern_cuda_ctx *c = ctx;
	struct solver_ws ws = {0};
	size_t es = kern_dtype_size(dt);
	void *tau = NULL, *work = NULL;
	int rc, lwork = 0, h_info = 0, ni = (int) n, mi = (int) m;

	rc = use(c);
	if (rc != 0)
		return rc;
	if (n == 1) /* T = A, Q = I */
		return cu_check("cudaMemcpyAsync",
		                cudaMemcpyAsync(d, A, es,
		                                cudaMemcpyDeviceToDevice,
		                                c->stream));
	/* tau first, then the solver work, in one workspace; the size
	 * query does not dereference tau (A stands in for it) */
	rc = tridiag_lwork(c, dt, ni, A, (int) lda, d, e, A, CUBLAS_OP_T, mi, B,
	                   (int) (m > 0 ? ldb : n), &lwork);
	if (rc == 0) {
		ws.dbytes = ((size_t) n + (size_t) lwork) * es;
		rc = ws_get(c, &ws);
	}
	if (rc == 0) {
		tau = ws.d;
		work = (char *) ws.d + (size_t) n * es;
		rc = sytrd(c, dt, ni, A, (int) lda, d, e, tau, work, lwork);
	}
	/* sytrd's devInfo is 0 or negative; ormtr reuses tau and work */
	rc = solver_tail(c, "cusolverDnXsytrd", rc, &h_info,
	                 m > 0 ? NULL : &ws);
	if (m == 0)
		return rc;
	if (rc == 0) {
		if (dt == KERN_F64)
			rc = solver_check(
			        "cusolverDnDormtr",
			        cusolverDnDormtr(c->solver, CUBLAS_SIDE_LEFT,
			                         CUBLAS_FILL_MODE_LOWER,
			                         CUBLAS_OP_T, ni, mi, A,
			                         (int) lda, tau, B, (int) ldb,
			                         work, lwork, c->d_info));
		else
			rc = solver_check(
			        "cusolverDnSormtr",
			        cusolverDnSormtr(c->solver, CUBLAS_SIDE_LEFT,
			                         CUBLAS_FILL_MODE_LOWER,
			                         CUBLAS_OP_T, ni, mi, A,
			                         (int) lda, tau, B, (int) ldb,
			                         work, lwork, c->d_info));
	}
	return solver_tail(c, "cusolverDnXormtr", rc, &h_info, &ws);
}

static int
cuda_conv_rows(void *ctx, enum kern_dtype dt, int64_t ng, int64_t group,
               int64_t n, int64_t nt, const void *X, int64_t ldx, const void *W,
               void *Y, int64_t ldy)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_conv_rows",
	       kern_cuda_conv_rows(dt, ng, group, n, nt, X, ldx, W, Y, ldy,
	                           c->stream));
}

/* cusolverDnXsyevdx over (vl, vu]: the vectors of the selected eigenpairs
 * only, into A's first columns, then copied to Z. vl lies below every
 * eigenvalue: |λ| <= ‖A‖_F <= the norm of the whole n×n block (the upper
 * triangle is not referenced by the solver but may bound it loosely). */
static int
cuda_syevr_below(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
                 double vu, int64_t max_k, void *W, void *Z, int64_t ldz,
                 int64_t *k, int *info)
{
	struct kern_cuda_ctx *c = ctx;
	struct solver_ws ws = {0};
	size_t es = kern_dtype_size(dt);
	int rc, h_info = 0;
	cudaDataType t = cuda_type(dt);
	double ss = 0, vl, dvl, dvu;
	float fvl, fvu;
	void *pvl = dt == KERN_F64 ? (void *) &dvl : (void *) &fvl;
	void *pvu = dt == KERN_F64 ? (void *) &dvu : (void *) &fvu;
	int64_t meig = 0;

	/* W (n) is scratch for the row sums of squares */
	rc = cuda_row_sumsq(ctx, dt, n, n, A, lda, W);
	if (rc == 0)
		rc = cuda_sumsq(ctx, dt, n, W, &ss);
	if (rc != 0)
		return rc;
	if (!isfinite(ss)) {
		*info = 1; /* as syevd on a NaN/Inf matrix: no convergence */
		return 0;
	}
	vl = -(2 * sqrt(ss) + 1);
	if (vu <= vl)
		return 0;
	dvl = vl;
	dvu = vu;
	fvl = (float) vl;
	fvu = (float) vu;
	rc = solver_check("cusolverDnXsyevdx_bufferSize",
	                  cusolverDnXsyevdx_bufferSize(
	                          c->solver, c->params,
	                          CUSOLVER_EIG_MODE_VECTOR,
	                          CUSOLVER_EIG_RANGE_V, CUBLAS_FILL_MODE_LOWER,
	                          n, t, A, lda, pvl, pvu, 0, 0, &meig, t, W, t,
	                          &ws.dbytes, &ws.hbytes));
	if (rc == 0)
		rc = ws_get(c, &ws);
	if (rc == 0) {
		meig = 0;
		rc = solver_check(
		        "cusolverDnXsyevdx",
		        cusolverDnXsyevdx(
		                c->solver, c->params, CUSOLVER_EIG_MODE_VECTOR,
		                CUSOLVER_EIG_RANGE_V, CUBLAS_FILL_MODE_LOWER, n,
		                t, A, lda, pvl, pvu, 0, 0, &meig, t, W, t, ws.d,
		                ws.dbytes, ws.h, ws.hbytes, c->d_info));
	}
	rc = solver_tail(c, "cusolverDnXsyevdx", rc, &h_info, &ws);
	if (rc != 0)
		return rc;
	*info = h_info;
	if (h_info != 0)
		return 0;
	if (meig < 0 || meig > n) {
		fprintf(stderr,
		        "kern cuda error call=cusolverDnXsyevdx meig=%lld\n",
		        (long long) meig);
		return NQ_EDEVICE;
	}
	/* (vl, vu]: drop eigenvalues equal to vu (ascending: at the end) */
	while (meig > 0) {
		double last = 0;
		float flast = 0;

		rc = cuda_download(
		        ctx, dt == KERN_F64 ? (void *) &last : (void *) &flast,
		        (char *) W + (size_t) (meig - 1) * es, es);
		if (rc != 0)
			return rc;
		if (dt == KERN_F32)
			last = (double) flast;
		if (last < vu)
			break;
		meig--;
	}
	*k = meig;
	if (meig > 0 && meig <= max_k)
		rc = cu_check("cudaMemcpy2DAsync",
		              cudaMemcpy2DAsync(Z, (size_t) ldz * es, A,
		                                (size_t) lda * es,
		                                (size_t) n * es, (size_t) meig,
		                                cudaMemcpyDeviceToDevice,
		                                c->stream));
	return rc;
}

/* syev_side: sytrd on the device, a Sturm count on T (the sides) and the
 * vectors of T for the smaller side on the host (kern_tri.c: the
 * cpu backend's LAPACKE calls on the same T, O(n·k) work next to the
 * O(n³) reduction; n + n − 1 elements down, n·k + n up), then ormtr on the
 * device takes those k vectors back to A's basis (2n²k). */
static int
cuda_syev_side(void *ctx, enum kern_dtype dt, int64_t n, void *A, int64_t lda,
               void *W, int64_t max_k, void *Z, int64_t ldz, int64_t *k,
               int *side, int *info)
{
	struct kern_cuda_ctx *c = ctx;
	struct solver_ws ws = {0};
	size_t es = kern_dtype_size(dt);
	char *h = NULL, *hd, *he, *hw, *hz = NULL;
	void *tau = NULL, *dd = NULL, *de = NULL, *work = NULL;
	int rc, lwork = 0, h_info = 0, ni = (int) n;
	int64_t nneg = 0, npos, kk = 0, il;
	double ss = 0;

	rc = use(c);
	/* W (n) is scratch for the row sums of squares */
	if (rc == 0)
		rc = cuda_row_sumsq(ctx, dt, n, n, A, lda, W);
	if (rc == 0)
		rc = cuda_sumsq(ctx, dt, n, W, &ss);
	if (rc != 0)
		return rc;
	if (!isfinite(ss)) {
		*info = 1; /* as syevd on a NaN/Inf matrix: no convergence */
		return 0;
	}
	h = malloc(3 * (size_t) n * es);
	if (h == NULL)
		return NQ_ENOMEM;
	hd = h;
	he = hd + (size_t) n * es;
	hw = he + (size_t) n * es;
	if (n == 1) { /* T = A, Q = I */
		rc = cuda_download(ctx, hd, A, es);
		goto host;
	}
	rc = tridiag_lwork(c, dt, ni, A, (int) lda, A, A, A, CUBLAS_OP_N,
	                   (int) max_k, Z, (int) ldz, &lwork);
	if (rc == 0) {
		ws.dbytes = (3 * (size_t) n + (size_t) lwork) * es;
		rc = ws_get(c, &ws);
	}
	if (rc == 0) {
		tau = ws.d;
		dd = (char *) tau + (size_t) n * es;
		de = (char *) dd + (size_t) n * es;
		work = (char *) de + (size_t) n * es;
		rc = sytrd(c, dt, ni, A, (int) lda, dd, de, tau, work, lwork);
	}
	/* ws stays: ormtr needs tau and the reflectors' work */
	rc = solver_tail(c, "cusolverDnXsytrd", rc, &h_info, NULL);
	if (rc == 0)
		rc = cuda_download(ctx, hd, dd, (size_t) n * es);
	if (rc == 0)
		rc = cuda_download(ctx, he, de, (size_t) (n - 1) * es);
host:
	if (rc == 0)
		rc = kern_tri_count(dt, n, hd, he, &nneg, info);
	npos = n - nneg;
	if (rc != 0 || *info != 0)
		goto out;
	*side = nneg <= npos ? -1 : 1;
	kk = *side < 0 ? nneg : npos;
	*k = kk;
	if (kk > 0 && kk <= max_k) {
		il = *side < 0 ? 1 : n - kk + 1;
		hz = malloc((size_t) n * (size_t) kk * es);
		rc = hz == NULL ? NQ_ENOMEM : 0;
		if (rc == 0)
			rc = kern_tri_vecs(dt, n, hd, he, il, il + kk - 1, hw,
			                   hz, n, info);
		if (rc != 0 || *info != 0) {
			*k = 0;
			goto out;
		}
		rc = cu_check("cudaMemcpy2DAsync",
		              cudaMemcpy2DAsync(
		                      Z, (size_t) ldz * es, hz, (size_t) n * es,
		                      (size_t) n * es, (size_t) kk,
		                      cudaMemcpyHostToDevice, c->stream));
		if (rc == 0 && n > 1) {
			if (dt == KERN_F64)
				rc = solver_check(
				        "cusolverDnDormtr",
				        cusolverDnDormtr(
				                c->solver, CUBLAS_SIDE_LEFT,
				                CUBLAS_FILL_MODE_LOWER,
				                CUBLAS_OP_N, ni, (int) kk, A,
				                (int) lda, tau, Z, (int) ldz,
				                work, lwork, c->d_info));
			else
				rc = solver_check(
				        "cusolverDnSormtr",
				        cusolverDnSormtr(
				                c->solver, CUBLAS_SIDE_LEFT,
				                CUBLAS_FILL_MODE_LOWER,
				                CUBLAS_OP_N, ni, (int) kk, A,
				                (int) lda, tau, Z, (int) ldz,
				                work, lwork, c->d_info));
			rc = solver_tail(c, "cusolverDnXormtr", rc, &h_info,
			                 NULL);
		}
	}
	/* synchronous: hz and h are freed below */
	if (rc == 0 && kk > 0 && kk <= max_k)
		rc = cuda_upload(ctx, W, hw, (size_t) kk * es);
	if (rc == 0)
		rc = cuda_sync(ctx);
out:
	if (ws.d != NULL)
		ws_release(ws.d, ws.own);
	free(hz);
	free(h);
	return rc;
}

/* On the host, after a copy: cuSOLVER has no tridiagonal eigenvalue
 * solver, and sterf's work (O(n²) flops of a QL/QR iteration that sweeps
 * along the diagonal one rotation after another, on 2n − 1 numbers) has
 * nothing in it for a GPU to run in parallel; moving d and e over and d
 * back is 3n elements, nothing next to the O(n³) reduction (tridiag_qt)
 * that made them. It is the cpu backend's LAPACKE call, so the same input
 * gives the same eigenvalues and the same info. */
static int
cuda_sterf(void *ctx, enum kern_dtype dt, int64_t n, void *d, void *e,
           int *info)
{
	size_t es = kern_dtype_size(dt);
	char *h = malloc(2 * (size_t) n * es), *he;
	lapack_int r;
	int rc;

	if (h == NULL)
		return NQ_ENOMEM;
	he = h + (size_t) n * es;
	rc = cuda_download(ctx, h, d, (size_t) n * es);
	if (rc == 0 && n > 1)
		rc = cuda_download(ctx, he, e, (size_t) (n - 1) * es);
	if (rc == 0) {
		if (dt == KERN_F64)
			r = LAPACKE_dsterf((lapack_int) n, (double *) h,
			                   (double *) he);
		else
			r = LAPACKE_ssterf((lapack_int) n, (float *) h,
			                   (float *) he);
		*info = (int) r;
		rc = cuda_upload(ctx, d, h, (size_t) n * es);
	}
	free(h);
	return rc;
}

/* ---- spikesort's batch path */

static int
cuda_traffic(void *ctx, uint64_t *h2d, uint64_t *d2h)
{
	struct kern_cuda_ctx *c = ctx;

	*h2d = c->h2d;
	*d2h = c->d2h;
	return 0;
}

static int
cuda_snippets(void *ctx, int64_t C, int64_t T, const float *Y, int64_t nc,
              const int32_t *nbr, int64_t nt, int64_t n, const int32_t *tc,
              float *S)
{
	struct kern_cuda_ctx *c = ctx;

	(void) T;
	LAUNCH(c, "kern_cuda_snippets",
	       kern_cuda_snippets(C, Y, nc, nbr, nt, n, tc, S, c->stream));
}

/* Stream-ordered scratch: freed in order after the work that uses it. */
static int
scratch_alloc(struct kern_cuda_ctx *c, size_t bytes, void **p)
{
	*p = NULL;
	return cu_check("cudaMallocAsync",
	                cudaMallocAsync(p, bytes, c->stream));
}

static void
scratch_free(struct kern_cuda_ctx *c, void *p)
{
	if (p != NULL)
		(void) cu_check("cudaFreeAsync", cudaFreeAsync(p, c->stream));
}

static int
cuda_filter_car(void *ctx, int64_t C, int64_t T, float *X, const double *h_sos,
                int car)
{
	struct kern_cuda_ctx *c = ctx;
	void *scr = NULL;
	int rc;

	if ((rc = use(c)) != 0 ||
	    (rc = scratch_alloc(c, sizeof(float) * (size_t) (C + T), &scr)))
		return rc;
	rc = cu_check(
	        "kern_cuda_filter_car",
	        kern_cuda_filter_car(C, T, X, h_sos, car, scr, c->stream));
	scratch_free(c, scr);
	return rc;
}

struct peak {
	int64_t t;
	int32_t c;
	float a;
};

static int
peak_cmp(const void *x, const void *y)
{
	const struct peak *p = x, *q = y;

	if (p->t != q->t)
		return p->t < q->t ? -1 : 1;
	return (p->c > q->c) - (p->c < q->c);
}

/* The tail of the list ops (peaks_above, accept_peaks): their kernel
 * appended up to m (t, c, a) triples to the scratch buf in any order —
 * the count (8 bytes), then m int64 t, m int32 c, m float a. The count
 * comes back into *n and, when it fits cap, the list, in (t, c) order. */
static int
list_fetch(struct kern_cuda_ctx *c, const char *buf, size_t m, int64_t cap,
           int64_t *h_t, int32_t *h_c, float *h_a, int64_t *n)
{
	unsigned long long cnt = 0;
	struct peak *pk;
	size_t k;
	int rc;

	rc = transfer(c, &cnt, buf, sizeof(cnt), cudaMemcpyDeviceToHost, 1);
	if (rc != 0)
		return rc;
	if (cnt == 0 || cnt > (unsigned long long) cap) {
		*n = (int64_t) cnt;
		return 0;
	}
	k = (size_t) cnt;
	if ((rc = transfer(c, h_t, buf + 8, 8 * k, cudaMemcpyDeviceToHost,
	                   0)) != 0 ||
	    (rc = transfer(c, h_c, buf + 8 + 8 * m, 4 * k,
	                   cudaMemcpyDeviceToHost, 0)) != 0 ||
	    (rc = transfer(c, h_a, buf + 8 + 12 * m, 4 * k,
	                   cudaMemcpyDeviceToHost, 1)) != 0)
		return rc;
	pk = malloc(sizeof(*pk) * k);
	if (pk == NULL)
		return NQ_ENOMEM;
	for (size_t i = 0; i < k; i++)
		pk[i] = (struct peak){h_t[i], h_c[i], h_a[i]};
	qsort(pk, k, sizeof(*pk), peak_cmp);
	for (size_t i = 0; i < k; i++) {
		h_t[i] = pk[i].t;
		h_c[i] = pk[i].c;
		h_a[i] = pk[i].a;
	}
	free(pk);
	*n = (int64_t) cnt;
	return 0;
}

/* Candidates appended on the device in any order; their count, and when
 * they fit the caller's arrays the list (16 bytes a peak), come back and
 * are put in (t, c) order here. */
static int
cuda_peaks_above(void *ctx, int64_t C, int64_t T, const float *Y, double th,
                 int64_t lo, int64_t hi, int64_t w, int64_t nc,
                 const int32_t *nbr, int64_t cap, int64_t *h_t, int32_t *h_c,
                 float *h_amp, int64_t *n)
{
	struct kern_cuda_ctx *c = ctx;
	size_t m = cap > 0 ? (size_t) cap : 1;
	char *buf = NULL;
	int64_t *ot;
	int32_t *oc;
	float *oa;
	int rc;

	if ((rc = use(c)) != 0 ||
	    (rc = scratch_alloc(c, 8 + m * 16, (void **) &buf)) != 0)
		return rc;
	ot = (int64_t *) (buf + 8);
	oc = (int32_t *) (buf + 8 + 8 * m);
	oa = (float *) (buf + 8 + 12 * m);
	rc = cu_check("kern_cuda_peaks_above",
	              kern_cuda_peaks_above(C, T, Y, th, lo, hi, w, nc, nbr,
	                                    cap, (unsigned long long *) buf, ot,
	                                    oc, oa, c->stream));
	if (rc == 0)
		rc = list_fetch(c, buf, m, cap, h_t, h_c, h_amp, n);
	scratch_free(c, buf);
	return rc;
}

static int
cuda_sub_spikes(void *ctx, int64_t C, int64_t T, float *R, int64_t nt,
                int64_t K, const float *W, const int32_t *win, int64_t n,
                const int32_t *tk, const float *a)
{
	struct kern_cuda_ctx *c = ctx;

	(void) T;
	(void) K;
	LAUNCH(c, "kern_cuda_sub_spikes",
	       kern_cuda_sub_spikes(C, R, nt, W, win, n, tk, a, c->stream));
}

static int
cuda_score_best(void *ctx, int64_t ng, int64_t n, const float *S, int64_t lds,
                const float *mu, double lam, const float *th,
                const int32_t *kid, float *G, float *A, int32_t *Kb)
{
	struct kern_cuda_ctx *c = ctx;

	LAUNCH(c, "kern_cuda_score_best",
	       kern_cuda_score_best(ng, n, S, lds, mu, lam, th, kid, G, A, Kb,
	                            c->stream));
}

/* Winners appended on the device in any order; their count and, when
 * they fit, the list (16 bytes a winner) come back, put in (g, t) order
 * here (g ld + t is unique). */
static int
cuda_accept_peaks(void *ctx, int64_t ng, int64_t n, int64_t ld, const float *G,
                  const int32_t *Kb, const float *A, double th, int64_t w,
                  const int32_t *nb0, const int32_t *nb, int64_t cap,
                  int64_t *h_gt, int32_t *h_k, float *h_a, int64_t *cnt)
{
	struct kern_cuda_ctx *c = ctx;
	size_t m = cap > 0 ? (size_t) cap : 1;
	char *buf = NULL;
	int64_t *ogt;
	int32_t *ok;
	float *oa;
	int rc;

	if ((rc = use(c)) != 0 ||
	    (rc = scratch_alloc(c, 8 + m * 16, (void **) &buf)) != 0)
		return rc;
	ogt = (int64_t *) (buf + 8);
	ok = (int32_t *) (buf + 8 + 8 * m);
	oa = (float *) (buf + 8 + 12 * m);
	rc = cu_check("kern_cuda_accept_peaks",
	              kern_cuda_accept_peaks(ng, n, ld, G, Kb, A, th, w, nb0,
	                                     nb, cap,
	                                     (unsigned long long *) buf, ogt,
	                                     ok, oa, c->stream));
	if (rc == 0)
		rc = list_fetch(c, buf, m, cap, h_gt, h_k, h_a, cnt);
	scratch_free(c, buf);
	return rc;
}

static const struct kern_ops kern_cuda_ops = {
        .name = "cuda",
        .caps = 0, /* device memory; one stream and shared scratch */
        .close = cuda_close,
        .alloc = cuda_alloc,
        .free = cuda_free,
        .upload = cuda_upload,
        .download = cuda_download,
        .copy = cuda_copy,
        .mem_info = cuda_mem_info,
        .sync = cuda_sync,
        .gemm = cuda_gemm,
        .syrk = cuda_syrk,
        .potrf = cuda_potrf,
        .trsm_lower = cuda_trsm_lower,
        .syevd = cuda_syevd,
        .axpby = cuda_axpby,
        .shrink = cuda_shrink,
        .symmetrize = cuda_symmetrize,
        .add_diag = cuda_add_diag,
        .get_diag = cuda_get_diag,
        .scale_rc = cuda_scale_rc,
        .row_sumsq = cuda_row_sumsq,
        .sumsq = cuda_sumsq,
        .sum_log_diag = cuda_sum_log_diag,
        .gersh_min = cuda_gersh_min,
        .pearson = cuda_pearson,
        .pair_cov_acc = cuda_pair_cov_acc,
        .div_pos = cuda_div_pos,
        .convert = cuda_convert,
        .tridiag_qt = cuda_tridiag_qt,
        .conv_rows = cuda_conv_rows,
        .syevr_below = cuda_syevr_below,
        .sterf = cuda_sterf,
        .syev_side = cuda_syev_side,
        .traffic = cuda_traffic,
        .filter_car = cuda_filter_car,
        .peaks_above = cuda_peaks_above,
        .sub_spikes = cuda_sub_spikes,
        .snippets = cuda_snippets,
        .score_best = cuda_score_best,
        .accept_peaks = cuda_accept_peaks,
};
