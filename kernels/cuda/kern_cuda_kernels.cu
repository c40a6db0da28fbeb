/*
 * kern_cuda_kernels.cu — the cuda backend's own kernels (everything that is
 * not cuBLAS/cuSOLVER), each a template over the element type, launched by
 * the extern "C" functions of kern_cuda_kernels.h.
 *
 * Kernels use grid-stride loops with 64-bit indices, so any grid size is
 * correct and n*n beyond 2^31 is fine. Arithmetic follows the cpu backend
 * operation for operation (kern_cpu.c) so results agree to rounding.
 */
#include "kern_cuda_kernels.h"

#define TPB        256     /* threads per block of the 1-D kernels */
#define MAX_BLOCKS 1048576 /* grid cap; loops stride over the rest */
#define RB         KERN_CUDA_RED_BLOCKS
#define TILE       32

#define GRID_LOOP(i, count)                                               \
	for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; \
	     i < (count); i += (int64_t) blockDim.x * gridDim.x)

static unsigned int
blocks_for(int64_t count)
{
	int64_t b = (count + TPB - 1) / TPB;
	if (b < 1)
		b = 1;
	if (b > MAX_BLOCKS)
		b = MAX_BLOCKS;
	return (unsigned int) b;
}

/* Runs `launch(T{})` with T the element type of dt. */
template <typename F>
static cudaError_t
dispatch(enum kern_dtype dt, F launch)
{
	if (dt == KERN_F64)
		launch(double());
	else
		launch(float());
	return cudaGetLastError();
}

/* ---- block reductions (double, fixed order: deterministic) */

/* v combined over the warp with op, in a fixed tree (lane 0 holds it). */
template <typename Op>
static __device__ double
warp_reduce(double v, Op op)
{
	for (int o = 16; o > 0; o >>= 1)
		v = op(v, __shfl_down_sync(0xffffffffu, v, o));
	return v;
}

/* v combined over the block with op (id: its identity), valid in thread 0.
 * blockDim.x is a multiple of 32; sh has 32 doubles and may be reused by
 * the next call. */
template <typename Op>
static __device__ double
block_reduce(double v, double *sh, Op op, double id)
{
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5;

	v = warp_reduce(v, op);
	__syncthreads(); /* the previous call has read sh */
	if (lane == 0)
		sh[w] = v;
	__syncthreads();
	v = threadIdx.x < (blockDim.x >> 5) ? sh[lane] : id;
	if (w == 0)
		v = warp_reduce(v, op);
	return v;
}

struct op_add {
	__device__ double operator()(double x, double y) const
	{
		return x + y;
	}
};
struct op_min {
	__device__ double operator()(double x, double y) const
	{
		return fmin(x, y);
	}
};

/* Sum / minimum over the block, valid in thread 0. */
static __device__ double
block_sum(double v, double *sh)
{
	return block_reduce(v, sh, op_add(), 0.0);
}

static __device__ double
block_min(double v, double *sh)
{
	return block_reduce(v, sh, op_min(), INFINITY);
}

/* res[v] = (sum of part[v*RB .. v*RB+RB-1]) / div, for v < nvals. */
static __global__ void
k_final(const double *part, int nvals, double *res, double div)
{
	__shared__ double sh[32];

	for (int v = 0; v < nvals; v++) {
		double acc = 0;
		for (int b = threadIdx.x; b < RB; b += blockDim.x)
			acc += part[v * RB + b];
		acc = block_sum(acc, sh);
		if (threadIdx.x == 0)
			res[v] = acc / div;
	}
}

template <typename T>
static __global__ void
k_part_sumsq(int64_t count, const T *x, double *part)
{
	__shared__ double sh[32];
	double acc = 0;

	GRID_LOOP(i, count)
	{
		double v = (double) x[i];
		acc += v * v;
	}
	acc = block_sum(acc, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] = acc;
}

template <typename T>
static __global__ void
k_part_logdiag(int64_t n, const T *a, double *part)
{
	__shared__ double sh[32];
	double acc = 0;

	GRID_LOOP(i, n)
	{
		acc += log((double) a[i + i * n]);
	}
	acc = block_sum(acc, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] = acc;
}

/* gersh_min: thread j sums row j (coalesced across a warp: column-major,
 * consecutive j), the cpu backend's margin 1 − s_j Σ_{i≠j} |a_ij| s_i with
 * s = 1/sqrt(diag); a block's minimum in part[blockIdx.x], −∞ for a
 * diagonal entry not > 0 or a NaN. */
template <typename T>
static __global__ void
k_part_gersh(int64_t n, const T *a, double *part)
{
	__shared__ double sh[32];
	double m = INFINITY;

	GRID_LOOP(j, n)
	{
		double dj = (double) a[j + j * n], r = 0, mj;

		for (int64_t i = 0; i < n; i++) {
			double di = (double) a[i + i * n];

			if (i != j)
				r += fabs((double) a[j + i * n]) / sqrt(di);
		}
		mj = 1.0 - r / sqrt(dj);
		/* NaN (from a diagonal ≤ 0 or a NaN entry) proves nothing */
		m = dj > 0 && mj == mj ? fmin(m, mj) : -INFINITY;
	}
	m = block_min(m, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] = m;
}

static __global__ void
k_final_min(const double *part, double *res)
{
	__shared__ double sh[32];
	double m = INFINITY;

	for (int b = threadIdx.x; b < RB; b += blockDim.x)
		m = fmin(m, part[b]);
	m = block_min(m, sh);
	if (threadIdx.x == 0)
		res[0] = m;
}

/* Pearson pass 1: sums of the values shifted by the first element. */
template <typename T>
static __global__ void
k_part_shifted(int64_t count, const T *x, const T *y, double *part)
{
	__shared__ double sh[32];
	double x0 = (double) x[0], y0 = (double) y[0];
	double sx = 0, sy = 0;

	GRID_LOOP(i, count)
	{
		sx += (double) x[i] - x0;
		sy += (double) y[i] - y0;
	}
	sx = block_sum(sx, sh);
	sy = block_sum(sy, sh);
	if (threadIdx.x == 0) {
		part[blockIdx.x] = sx;
		part[RB + blockIdx.x] = sy;
	}
}

/* Pearson pass 2: centred cross and square sums; mean[0..1] from pass 1. */
template <typename T>
static __global__ void
k_part_centred(int64_t count, const T *x, const T *y, const double *mean,
               double *part)
{
	__shared__ double sh[32];
	double x0 = (double) x[0], y0 = (double) y[0];
	double mx = mean[0], my = mean[1];
	double sxy = 0, sxx = 0, syy = 0;

	GRID_LOOP(i, count)
	{
		double dx = ((double) x[i] - x0) - mx;
		double dy = ((double) y[i] - y0) - my;
		sxy += dx * dy;
		sxx += dx * dx;
		syy += dy * dy;
	}
	sxy = block_sum(sxy, sh);
	sxx = block_sum(sxx, sh);
	syy = block_sum(syy, sh);
	if (threadIdx.x == 0) {
		part[blockIdx.x] = sxy;
		part[RB + blockIdx.x] = sxx;
		part[2 * RB + blockIdx.x] = syy;
	}
}

/* ---- elementwise */

/* Strict upper from strict lower through a shared tile, so that both the
 * reads (of the lower tile) and the writes (of the upper) are coalesced.
 * Block (bi, bj) with bi <= bj writes upper tile rows bi, columns bj. */
template <typename T>
static __global__ void
k_mirror_lower(int64_t n, T *c, int64_t ldc)
{
	__shared__ T tile[TILE][TILE + 1];
	int64_t bi = blockIdx.x, bj = blockIdx.y;

	if (bi > bj)
		return;
	for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
		int64_t r = bj * TILE + threadIdx.x, col = bi * TILE + k;
		if (r < n && col < n)
			tile[k][threadIdx.x] = c[r + col * ldc];
	}
	__syncthreads();
	for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
		int64_t r = bi * TILE + threadIdx.x, col = bj * TILE + k;
		if (r < n && col < n && r < col)
			c[r + col * ldc] = tile[threadIdx.x][k];
	}
}

template <typename T>
static __global__ void
k_axpby(int64_t count, T a, const T *x, T b, T *y, int bzero)
{
	GRID_LOOP(i, count)
	{
		y[i] = bzero ? a * x[i] : a * x[i] + b * y[i];
	}
}

/* Out may alias C: each element is read then written by one thread. */
template <typename T>
static __global__ void
k_shrink(int64_t n, const T *c, T *o, T alpha, int keep_diag)
{
	GRID_LOOP(p, n * n)
	{
		int64_t i = p % n, j = p / n;
		o[p] = (keep_diag && i == j) ? c[p] : alpha * c[p];
	}
}

/* The thread of (i, j) with i < j owns the pair. */
template <typename T>
static __global__ void
k_symmetrize(int64_t n, T *a)
{
	GRID_LOOP(p, n * n)
	{
		int64_t i = p % n, j = p / n;
		if (i < j) {
			T v = (a[i + j * n] + a[j + i * n]) * (T) 0.5;
			a[i + j * n] = v;
			a[j + i * n] = v;
		}
	}
}

template <typename T>
static __global__ void
k_add_diag(int64_t n, T *a, T v)
{
	GRID_LOOP(i, n)
	{
		a[i + i * n] += v;
	}
}

template <typename T>
static __global__ void
k_get_diag(int64_t n, const T *a, T *d)
{
	GRID_LOOP(i, n)
	{
		d[i] = a[i + i * n];
	}
}

template <typename T>
static __global__ void
k_scale_rc(int64_t m, int64_t n, T *a, int64_t lda, const T *r, const T *c)
{
	GRID_LOOP(p, m * n)
	{
		int64_t i = p % m, j = p / m;
		T cj = c ? c[j] : (T) 1;
		T s = r ? r[i] * cj : cj;
		a[i + j * lda] *= s;
	}
}

/* Block (32, 8): the 32 x-threads take 32 consecutive rows (coalesced),
 * the 8 y-threads split the columns; partial sums meet in shared memory. */
template <typename T>
static __global__ void
k_row_sumsq(int64_t m, int64_t n, const T *a, int64_t lda, T *out)
{
	__shared__ double sh[8][32];
	int tx = threadIdx.x, ty = threadIdx.y;

	for (int64_t rb = blockIdx.x; rb * 32 < m; rb += gridDim.x) {
		int64_t i = rb * 32 + tx;
		double acc = 0;
		if (i < m)
			for (int64_t j = ty; j < n; j += 8) {
				double v = (double) a[i + j * lda];
				acc += v * v;
			}
		sh[ty][tx] = acc;
		__syncthreads();
		if (ty == 0 && i < m) {
			double s = 0;
			for (int k = 0; k < 8; k++)
				s += sh[k][tx];
			out[i] = (T) s;
		}
		__syncthreads();
	}
}

template <typename T>
static __global__ void
k_pair_cov_acc(int64_t n, const T *sxx, const T *sx, const T *sm, T *acc,
               T *cnt)
{
	GRID_LOOP(p, n * n)
	{
		int64_t i = p % n, j = p / n;
		double m = (double) sm[p];
		if (!(m >= 2))
			continue;
		double v = ((double) sxx[p] -
		            (double) sx[p] * (double) sx[j + i * n] / m) /
		           (m - 1);
		acc[p] = (T) ((double) acc[p] + v);
		cnt[p] += (T) 1;
	}
}

template <typename T>
static __global__ void
k_div_pos(int64_t count, T *x, const T *y)
{
	GRID_LOOP(i, count)
	{
		x[i] = y[i] > 0 ? x[i] / y[i] : (T) 0;
	}
}

template <typename D, typename S>
static __global__ void
k_convert(int64_t count, D *d, const S *s)
{
	GRID_LOOP(i, count)
	{
		d[i] = (D) s[i];
	}
}

/* conv_rows: block (TPB samples) × (grid-strided) output rows; each row j
 * of the group and each chunk of CONV_CH taps is staged in shared memory,
 * taps summed in the cpu backend's order (j, then τ). */
#define CONV_CH 256
template <typename T>
static __global__ void
k_conv_rows(int64_t ng, int64_t group, int64_t n, int64_t nt, const T *X,
            int64_t ldx, const T *W, T *Y, int64_t ldy)
{
	__shared__ T xs[TPB + CONV_CH];
	__shared__ T ws[CONV_CH];
	int64_t t0 = (int64_t) blockIdx.x * TPB;

	for (int64_t g = blockIdx.y; g < ng; g += gridDim.y) {
		T acc = 0;
		for (int64_t j = 0; j < group; j++) {
			const T *x = X + ldx * (g * group + j);
			const T *w = W + nt * (g * group + j);
			for (int64_t c0 = 0; c0 < nt; c0 += CONV_CH) {
				int64_t ch =
				        nt - c0 < CONV_CH ? nt - c0 : CONV_CH;
				__syncthreads();
				for (int64_t i = threadIdx.x; i < TPB + ch - 1;
				     i += blockDim.x) {
					int64_t t = t0 + c0 + i;
					xs[i] = t < n + nt - 1 ? x[t] : (T) 0;
				}
				for (int64_t i = threadIdx.x; i < ch;
				     i += blockDim.x)
					ws[i] = w[c0 + i];
				__syncthreads();
				for (int64_t tau = 0; tau < ch; tau++)
					acc += ws[tau] * xs[threadIdx.x + tau];
			}
		}
		if (t0 + threadIdx.x < n)
			Y[ldy * g + t0 + threadIdx.x] = acc;
	}
}

/* ---- launchers */

extern "C" cudaError_t
kern_cuda_mirror_lower(enum kern_dtype dt, int64_t n, void *C, int64_t ldc,
                       cudaStream_t s)
{
	int64_t nt = (n + TILE - 1) / TILE;

	if (nt > 65535)
		return cudaErrorInvalidValue;
	dim3 grid((unsigned) nt, (unsigned) nt), block(TILE, 8);
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_mirror_lower<T><<<grid, block, 0, s>>>(n, (T *) C, ldc);
	});
}

extern "C" cudaError_t
kern_cuda_axpby(enum kern_dtype dt, int64_t count, double a, const void *X,
                double b, void *Y, cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_axpby<T><<<blocks_for(count), TPB, 0, s>>>(
		        count, (T) a, (const T *) X, (T) b, (T *) Y, b == 0);
	});
}

extern "C" cudaError_t
kern_cuda_shrink(enum kern_dtype dt, int64_t n, const void *C, void *Out,
                 double alpha, int keep_diag, cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_shrink<T><<<blocks_for(n * n), TPB, 0, s>>>(
		        n, (const T *) C, (T *) Out, (T) alpha, keep_diag);
	});
}

extern "C" cudaError_t
kern_cuda_symmetrize(enum kern_dtype dt, int64_t n, void *A, cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_symmetrize<T><<<blocks_for(n * n), TPB, 0, s>>>(n, (T *) A);
	});
}

extern "C" cudaError_t
kern_cuda_add_diag(enum kern_dtype dt, int64_t n, void *A, double v,
                   cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_add_diag<T><<<blocks_for(n), TPB, 0, s>>>(n, (T *) A, (T) v);
	});
}

extern "C" cudaError_t
kern_cuda_get_diag(enum kern_dtype dt, int64_t n, const void *A, void *d,
                   cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_get_diag<T><<<blocks_for(n), TPB, 0, s>>>(n, (const T *) A,
		                                            (T *) d);
	});
}

extern "C" cudaError_t
kern_cuda_scale_rc(enum kern_dtype dt, int64_t m, int64_t n, void *A,
                   int64_t lda, const void *r, const void *c, cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_scale_rc<T><<<blocks_for(m * n), TPB, 0, s>>>(
		        m, n, (T *) A, lda, (const T *) r, (const T *) c);
	});
}

extern "C" cudaError_t
kern_cuda_row_sumsq(enum kern_dtype dt, int64_t m, int64_t n, const void *A,
                    int64_t lda, void *out, cudaStream_t s)
{
	int64_t nb = (m + 31) / 32;
	dim3 grid((unsigned) (nb > MAX_BLOCKS ? MAX_BLOCKS : nb)), block(32, 8);

	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_row_sumsq<T><<<grid, block, 0, s>>>(m, n, (const T *) A, lda,
		                                      (T *) out);
	});
}

extern "C" cudaError_t
kern_cuda_sumsq(enum kern_dtype dt, int64_t count, const void *X, double *part,
                double *res, cudaStream_t s)
{
	cudaError_t e = dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_part_sumsq<T><<<RB, TPB, 0, s>>>(count, (const T *) X, part);
	});
	if (e != cudaSuccess)
		return e;
	k_final<<<1, TPB, 0, s>>>(part, 1, res, 1.0);
	return cudaGetLastError();
}

extern "C" cudaError_t
kern_cuda_sum_log_diag(enum kern_dtype dt, int64_t n, const void *A,
                       double *part, double *res, cudaStream_t s)
{
	cudaError_t e = dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_part_logdiag<T><<<RB, TPB, 0, s>>>(n, (const T *) A, part);
	});
	if (e != cudaSuccess)
		return e;
	k_final<<<1, TPB, 0, s>>>(part, 1, res, 1.0);
	return cudaGetLastError();
}

extern "C" cudaError_t
kern_cuda_gersh_min(enum kern_dtype dt, int64_t n, const void *A, double *part,
                    double *res, cudaStream_t s)
{
	cudaError_t e = dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_part_gersh<T><<<RB, TPB, 0, s>>>(n, (const T *) A, part);
	});
	if (e != cudaSuccess)
		return e;
	k_final_min<<<1, TPB, 0, s>>>(part, res);
	return cudaGetLastError();
}

extern "C" cudaError_t
kern_cuda_pearson(enum kern_dtype dt, int64_t count, const void *X,
                  const void *Y, double *part, double *res, cudaStream_t s)
{
	cudaError_t e = dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_part_shifted<T><<<RB, TPB, 0, s>>>(count, (const T *) X,
		                                     (const T *) Y, part);
	});
	if (e != cudaSuccess)
		return e;
	k_final<<<1, TPB, 0, s>>>(part, 2, res + 3, (double) count);
	e = dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_part_centred<T><<<RB, TPB, 0, s>>>(
		        count, (const T *) X, (const T *) Y, res + 3, part);
	});
	if (e != cudaSuccess)
		return e;
	k_final<<<1, TPB, 0, s>>>(part, 3, res, 1.0);
	return cudaGetLastError();
}

extern "C" cudaError_t
kern_cuda_pair_cov_acc(enum kern_dtype dt, int64_t n, const void *Sxx,
                       const void *Sx, const void *Sm, void *acc, void *cnt,
                       cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_pair_cov_acc<T><<<blocks_for(n * n), TPB, 0, s>>>(
		        n, (const T *) Sxx, (const T *) Sx, (const T *) Sm,
		        (T *) acc, (T *) cnt);
	});
}

extern "C" cudaError_t
kern_cuda_div_pos(enum kern_dtype dt, int64_t count, void *X, const void *Y,
                  cudaStream_t s)
{
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_div_pos<T><<<blocks_for(count), TPB, 0, s>>>(count, (T *) X,
		                                               (const T *) Y);
	});
}

extern "C" cudaError_t
kern_cuda_convert(enum kern_dtype dt_dst, void *dst, enum kern_dtype dt_src,
                  const void *src, int64_t count, cudaStream_t s)
{
	if (dt_dst == KERN_F32 && dt_src == KERN_F64)
		k_convert<float, double><<<blocks_for(count), TPB, 0, s>>>(
		        count, (float *) dst, (const double *) src);
	else if (dt_dst == KERN_F64 && dt_src == KERN_F32)
		k_convert<double, float><<<blocks_for(count), TPB, 0, s>>>(
		        count, (double *) dst, (const float *) src);
	else
		return cudaErrorInvalidValue;
	return cudaGetLastError();
}

extern "C" cudaError_t
kern_cuda_conv_rows(enum kern_dtype dt, int64_t ng, int64_t group, int64_t n,
                    int64_t nt, const void *X, int64_t ldx, const void *W,
                    void *Y, int64_t ldy, cudaStream_t s)
{
	int64_t bx = (n + TPB - 1) / TPB;

	if (bx > 2147483647LL)
		return cudaErrorInvalidValue;
	dim3 grid((unsigned) bx, (unsigned) (ng < 65535 ? ng : 65535));
	return dispatch(dt, [&](auto t) {
		using T = decltype(t);
		k_conv_rows<T>
		        <<<grid, TPB, 0, s>>>(ng, group, n, nt, (const T *) X,
		                              ldx, (const T *) W, (T *) Y, ldy);
	});
}

/* ---- spikesort's batch path (float32; kern.h filter_car, peaks_above,
 * sub_spikes). The arithmetic is the cpu backend's (kern_cpu_batch.c)
 * with every rounding written out (__d*_rn, __f*_rn): nvcc would
 * otherwise fuse multiply-adds, which the cpu build never does. */

/* mean[c] = Σ_t X[c + C t] / T: one thread per channel, in sample order
 * (the cpu's sum exactly). */
static __global__ void
k_chan_mean(int64_t C, int64_t T, const float *X, float *mean)
{
	GRID_LOOP(c, C)
	{
		double s = 0;
		for (int64_t t = 0; t < T; t++)
			s = __dadd_rn(s, (double) X[c + C * t]);
		mean[c] = __double2float_rn(__ddiv_rn(s, (double) T));
	}
}

/* One block per sample (grid-stride): X[:, t] −= mean; med[t] = the
 * median of the column (car), by a bitonic sort of its P >= C values
 * (+inf padding) in shared memory. */
static __global__ void
k_center_median(int64_t C, int64_t T, float *X, const float *mean, float *med,
                int car, int P)
{
	extern __shared__ float sv[];

	for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
		float *col = X + C * t;
		__syncthreads();
		for (int i = threadIdx.x; i < P; i += blockDim.x) {
			float v = HUGE_VALF;
			if (i < C) {
				v = __fsub_rn(col[i], mean[i]);
				col[i] = v;
			}
			sv[i] = v;
		}
		if (!car) {
			if (threadIdx.x == 0)
				med[t] = 0;
			continue;
		}
		for (int k = 2; k <= P; k <<= 1)
			for (int j = k >> 1; j > 0; j >>= 1) {
				__syncthreads();
				for (int i = threadIdx.x; i < P;
				     i += blockDim.x) {
					int l = i ^ j;
					if (l > i) {
						float a = sv[i], b = sv[l];
						int up = (i & k) == 0;
						if ((a > b) == up) {
							sv[i] = b;
							sv[l] = a;
						}
					}
				}
			}
		__syncthreads();
		if (threadIdx.x == 0) {
			int k2 = (int) (C / 2), k1 = C % 2 == 0 ? k2 - 1 : k2;
			med[t] = __fdiv_rn(__fadd_rn(sv[k2], sv[k1]), 2.0f);
		}
	}
}

struct sos_coef {
	double b10, b11, a11, b20, b21, b22, a21, a22, b10i;
};

/* One channel per thread: the forward pass (reference med subtracted
 * first, when given) and the backward pass, as the cpu's sections. */
static __global__ void
k_sections(int64_t C, int64_t T, float *X, const float *med, sos_coef f)
{
	GRID_LOOP(c, C)
	{
		for (int pass = 0; pass < 2; pass++) {
			int64_t first = pass == 0 ? 0 : T - 1;
			float sub0 = pass == 0 ? med[0] : 0.0f;
			double z1 = __dmul_rn(
			        -f.b10,
			        (double) __fsub_rn(X[c + C * first], sub0));
			double s1 = 0, s2 = 0;
			for (int64_t i = 0; i < T; i++) {
				int64_t t = pass == 0 ? i : T - 1 - i;
				float sub = pass == 0 ? med[t] : 0.0f;
				float *x = X + c + C * t;
				double xi = (double) __fsub_rn(*x, sub);
				double y = __dadd_rn(__dmul_rn(f.b10, xi), z1);
				z1 = __dsub_rn(__dmul_rn(f.b11, xi),
				               __dmul_rn(f.a11, y));
				double u = __dadd_rn(__dmul_rn(f.b20, y), s1);
				s1 = __dadd_rn(__dsub_rn(__dmul_rn(f.b21, y),
				                         __dmul_rn(f.a21, u)),
				               s2);
				s2 = __dsub_rn(__dmul_rn(f.b22, y),
				               __dmul_rn(f.a22, u));
				*x = __double2float_rn(u);
			}
		}
	}
}

/* scratch: C + T floats (mean, med) of device memory. */
extern "C" cudaError_t
kern_cuda_filter_car(int64_t C, int64_t T, float *X, const double *h_sos,
                     int car, float *scratch, cudaStream_t s)
{
	float *mean = scratch, *med = scratch + C;
	int P = 1;
	sos_coef f = {h_sos[0], h_sos[1], h_sos[3], h_sos[4], h_sos[5],
	              h_sos[6], h_sos[8], h_sos[9], 0};

	while (P < C)
		P <<= 1;
	if (P > 8192) /* 32 KiB of shared memory per block */
		return cudaErrorInvalidValue;
	k_chan_mean<<<blocks_for(C), TPB, 0, s>>>(C, T, X, mean);
	k_center_median<<<(unsigned) (T < 65535 ? T : 65535), TPB,
	                  sizeof(float) * (size_t) P, s>>>(C, T, X, mean, med,
	                                                   car && C >= 3, P);
	k_sections<<<blocks_for(C), TPB, 0, s>>>(C, T, X, med, f);
	return cudaGetLastError();
}

/* One thread per (t, c) of [lo, hi) × C: the cpu's test, appended to the
 * list at *count (entries past cap are counted, not written). */
static __global__ void
k_peaks(int64_t C, int64_t T, const float *Y, float th, int64_t lo, int64_t hi,
        int64_t w, int64_t nc, const int32_t *nbr, int64_t cap,
        unsigned long long *count, int64_t *ot, int32_t *oc, float *oa)
{
	GRID_LOOP(idx, (hi - lo) * C)
	{
		int64_t t = lo + idx / C, c = idx % C;
		float v = Y[c + C * t];
		if (!(v < th))
			continue;
		int64_t u0 = t - w < 0 ? 0 : t - w;
		int64_t u1 = t + w >= T ? T - 1 : t + w;
		const int32_t *nb = nbr + nc * c;
		int ok = 1;
		for (int64_t u = u0; u <= u1 && ok; u++)
			for (int64_t j = 0; j < nc; j++) {
				int64_t cj = nb[j];
				float x = Y[cj + C * u];
				if (x < v ||
				    (x == v && (u < t || (u == t && cj < c)))) {
					ok = 0;
					break;
				}
			}
		if (!ok)
			continue;
		unsigned long long p = atomicAdd(count, 1ULL);
		if ((int64_t) p < cap) {
			ot[p] = t;
			oc[p] = (int32_t) c;
			oa[p] = v;
		}
	}
}

extern "C" cudaError_t
kern_cuda_peaks_above(int64_t C, int64_t T, const float *Y, double th,
                      int64_t lo, int64_t hi, int64_t w, int64_t nc,
                      const int32_t *nbr, int64_t cap,
                      unsigned long long *count, int64_t *ot, int32_t *oc,
                      float *oa, cudaStream_t s)
{
	cudaError_t e = cudaMemsetAsync(count, 0, sizeof(*count), s);

	if (e != cudaSuccess)
		return e;
	k_peaks<<<blocks_for((hi - lo) * C), TPB, 0, s>>>(
	        C, T, Y, (float) th, lo, hi, w, nc, nbr, cap, count, ot, oc,
	        oa);
	return cudaGetLastError();
}

/* One block per spike (grid-stride); footprints do not overlap. */
static __global__ void
k_sub_spikes(int64_t C, float *R, int64_t nt, const float *W,
             const int32_t *win, int64_t n, const int32_t *tk, const float *a)
{
	for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
		int64_t t = tk[2 * i], k = tk[2 * i + 1];
		int64_t c0 = win[2 * k], wd = win[2 * k + 1] - c0;
		const float *Wk = W + C * nt * k;
		float *Rt = R + C * t, ai = a[i];
		for (int64_t e = threadIdx.x; e < wd * nt; e += blockDim.x) {
			int64_t tau = e / wd, c = c0 + e % wd;
			float *r = Rt + c + C * tau;
			*r = __fsub_rn(*r, __fmul_rn(ai, Wk[c + C * tau]));
		}
	}
}

extern "C" cudaError_t
kern_cuda_sub_spikes(int64_t C, float *R, int64_t nt, const float *W,
                     const int32_t *win, int64_t n, const int32_t *tk,
                     const float *a, cudaStream_t s)
{
	unsigned g = (unsigned) (n < MAX_BLOCKS ? n : MAX_BLOCKS);

	k_sub_spikes<<<g, TPB, 0, s>>>(C, R, nt, W, win, n, tk, a);
	return cudaGetLastError();
}

static __global__ void
k_snippets(int64_t C, const float *Y, int64_t nc, const int32_t *nbr,
           int64_t nt, int64_t n, const int32_t *tc, float *S)
{
	GRID_LOOP(e, n * nc * nt)
	{
		int64_t i = e / (nc * nt), j = e / nt % nc, k = e % nt;
		int64_t t = tc[2 * i], c = tc[2 * i + 1];
		S[e] = Y[nbr[nc * c + j] + C * (t + k)];
	}
}

extern "C" cudaError_t
kern_cuda_snippets(int64_t C, const float *Y, int64_t nc, const int32_t *nbr,
                   int64_t nt, int64_t n, const int32_t *tc, float *S,
                   cudaStream_t s)
{
	k_snippets<<<blocks_for(n * nc * nt), TPB, 0, s>>>(C, Y, nc, nbr, nt, n,
	                                                   tc, S);
	return cudaGetLastError();
}

/* score_best: one thread per sample, rows in order (the cpu's loop). */
static __global__ void
k_score_best(int64_t ng, int64_t n, const float *S, int64_t lds,
             const float *mu, double lam, const float *th, const int32_t *kid,
             float *G, float *A, int32_t *Kb)
{
	GRID_LOOP(t, n)
	{
		float g = -HUGE_VALF, a = 0;
		int32_t kb = -1;
		for (int64_t i = 0; i < ng; i++) {
			float s = S[t + lds * i], v;
			if (mu[i] > 0 && lam > 0) {
				float l = (float) lam, lm = __fmul_rn(l, mu[i]);
				float c0 = __fmul_rn(lm, mu[i]);
				float inv = __fdiv_rn(1.0f, __fadd_rn(1.0f, l));
				float x = __fadd_rn(s, lm);
				v = x > 0 ? __fsub_rn(__fmul_rn(__fmul_rn(x, x),
				                                inv),
				                      c0)
				          : -HUGE_VALF;
			} else {
				v = s > 0 ? __fmul_rn(s, s) : -HUGE_VALF;
			}
			if (v > g && (th == NULL || v > th[i])) {
				g = v;
				a = s;
				kb = kid[i];
			}
		}
		G[t] = g;
		A[t] = a;
		Kb[t] = kb;
	}
}

extern "C" cudaError_t
kern_cuda_score_best(int64_t ng, int64_t n, const float *S, int64_t lds,
                     const float *mu, double lam, const float *th,
                     const int32_t *kid, float *G, float *A, int32_t *Kb,
                     cudaStream_t s)
{
	k_score_best<<<blocks_for(n), TPB, 0, s>>>(ng, n, S, lds, mu, lam, th,
	                                           kid, G, A, Kb);
	return cudaGetLastError();
}

/* accept_peaks: one thread per (g, t); winners appended at *count. */
static __global__ void
k_accept(int64_t ng, int64_t n, int64_t ld, const float *G, const int32_t *Kb,
         const float *A, float th, int64_t w, const int32_t *nb0,
         const int32_t *nb, int64_t cap, unsigned long long *count,
         int64_t *ogt, int32_t *ok, float *oa)
{
	GRID_LOOP(idx, ng * n)
	{
		int64_t g = idx / n, t = idx % n;
		float v = G[ld * g + t];
		if (!(v > th))
			continue;
		int64_t u0 = t - w + 1 < 0 ? 0 : t - w + 1;
		int64_t u1 = t + w > n ? n : t + w;
		int win = 1;
		for (int64_t j = nb0[g]; j < nb0[g + 1] && win; j++) {
			int64_t h = nb[j];
			const float *Gh = G + ld * h;
			for (int64_t u = u0; u < u1; u++)
				if (Gh[u] > v ||
				    (Gh[u] == v &&
				     (h < g || (h == g && u < t)))) {
					win = 0;
					break;
				}
		}
		if (!win)
			continue;
		unsigned long long p = atomicAdd(count, 1ULL);
		if ((int64_t) p < cap) {
			ogt[p] = ld * g + t;
			ok[p] = Kb[ld * g + t];
			oa[p] = A[ld * g + t];
		}
	}
}

extern "C" cudaError_t
kern_cuda_accept_peaks(int64_t ng, int64_t n, int64_t ld, const float *G,
                       const int32_t *Kb, const float *A, double th, int64_t w,
                       const int32_t *nb0, const int32_t *nb, int64_t cap,
                       unsigned long long *count, int64_t *ogt, int32_t *ok,
                       float *oa, cudaStream_t s)
{
	cudaError_t e = cudaMemsetAsync(count, 0, sizeof(*count), s);

	if (e != cudaSuccess)
		return e;
	k_accept<<<blocks_for(ng * n), TPB, 0, s>>>(ng, n, ld, G, Kb, A,
	                                            (float) th, w, nb0, nb, cap,
	                                            count, ogt, ok, oa);
	return cudaGetLastError();
}
