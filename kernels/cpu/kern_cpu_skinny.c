/*
 * kern_cpu_skinny.c — the cpu backend's gemm for C = α Aᵀ B (β = 0, float)
 * with few columns and a short inner dimension: spikesort's projections of
 * the residual on a template group's spatial components (m: up to 8192
 * samples, n = rank · templates, 20–100, k = the group's channels, 30–80).
 *
 * OpenBLAS spends most of such a call outside its kernel: it copies A's
 * m × k block into its transposed panels and zeroes C before accumulating
 * into it (np2static128: 8 % and 5 % of a sort's CPU time against 7 % in
 * the kernel). Here A's columns (samples) are transposed in registers,
 * 16 × 16 floats at a time, into a buffer of k vectors per 16 samples,
 * 256 samples at a time; B is packed once, 8 columns per block; then each
 * block of 8 of C's columns is swept over the samples, a tile of 32
 * samples × 8 columns summed in registers, one fused multiply-add per
 * (c, j) and vector, and stored once. C's columns lie far apart (a page
 * each): writing a few at a time over many samples keeps the TLB, where
 * all of them per tile made this slower than OpenBLAS in a sort. Measured
 * on np2static128 (ss-run, three runs each, alternating): the matcher's
 * time 9.73 → 9.33 s. Below 128 samples packing B costs more than it
 * saves, and OpenBLAS runs. Every element of C is one chain of fmas over
 * l = 0 … k−1 (the tail's rows are a tile of their own on a zero-padded
 * copy), so the result does not depend on m, on where the rows start, or
 * on the clone (the baseline's fma is libm's).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern_impl.h"
#include "nq_clones.h"
#include "nq_error.h"

#define SK_L     16  /* floats per vector */
#define SK_NS    2   /* vectors of samples per tile */
#define SK_NJ    8   /* columns of C per register block */
#define SK_MB    256 /* rows of C (samples) per packed block */
#define SK_MIN_M 128 /* fewer rows: OpenBLAS */

typedef float sk_v __attribute__((vector_size(SK_L * sizeof(float))));
typedef float sk_vu __attribute__((vector_size(SK_L * sizeof(float)),
                                   aligned(sizeof(float)), may_alias));

int
kern_cpu_skinny_fits(int64_t m, int64_t n, int64_t k)
{
	/* packing B costs a few µs: OpenBLAS is as fast below SK_MIN_M */
	return m >= SK_MIN_M && n >= 1 && n <= KERN_CPU_SKINNY_N && k >= 1 &&
	       k <= KERN_CPU_SKINNY_K;
}

/* v[0..16) (rows) transposed in place: four rounds of swapping the
 * off-diagonal d × d blocks of each pair of rows d apart (lane l of the
 * first: x[l] where bit d of l is clear, else y[l − d]; of the second:
 * x[l + d] where clear, else y[l]; y's lanes are 16 + l).
 * __builtin_shufflevector: gcc ≥ 12 and clang. */
#define SK_LO8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define SK_HI8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define SK_LO4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define SK_HI4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define SK_LO2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define SK_HI2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define SK_LO1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define SK_HI1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define SK_SWAP(d, LO, HI)                                      \
	_Pragma("GCC unroll 16") for (int i = 0; i < SK_L;      \
	                              i++) if ((i & (d)) == 0)  \
	{                                                       \
		sk_v x = v[i], y = v[i + (d)];                  \
		v[i] = __builtin_shufflevector(x, y, LO);       \
		v[i + (d)] = __builtin_shufflevector(x, y, HI); \
	}

NQ_CLONE_INLINE void
transpose16(sk_v *v){SK_SWAP(8, SK_LO8, SK_HI8) SK_SWAP(4, SK_LO4, SK_HI4)
                             SK_SWAP(2, SK_LO2, SK_HI2)
                                     SK_SWAP(1, SK_LO1, SK_HI1)}

/* At[c] (c < k): lane t = A[c + lda t], for SK_L columns of A. */
NQ_CLONE_INLINE void pack16(const float *A, int64_t lda, int64_t k, sk_v *At)
{
	int64_t c = 0;

	for (; c + SK_L <= k; c += SK_L) {
		sk_v r[SK_L];
#pragma GCC unroll 16
		for (int t = 0; t < SK_L; t++)
			r[t] = *(const sk_vu *) (A + c + lda * t);
		transpose16(r);
#pragma GCC unroll 16
		for (int i = 0; i < SK_L; i++)
			At[c + i] = r[i];
	}
	for (; c < k; c++)
		for (int t = 0; t < SK_L; t++)
			At[c][t] = A[c + lda * t];
}

/* C[0 .. SK_L ns) × columns [0, nj) of the tile from At (ns blocks of k
 * vectors) and B's first nj columns; nj and ns are constants where this
 * is inlined. */
NQ_CLONE_INLINE void
tile(const sk_v *At, int64_t k, const float *Bp, float alpha, float *C,
     int64_t ldc, int nj, int ns)
{
	sk_v acc[SK_NS][SK_NJ];

#pragma GCC unroll 2
	for (int s = 0; s < ns; s++)
#pragma GCC unroll 8
		for (int j = 0; j < nj; j++)
			acc[s][j] = (sk_v){0};
	for (int64_t c = 0; c < k; c++) {
		sk_v a[SK_NS];
#pragma GCC unroll 2
		for (int s = 0; s < ns; s++)
			a[s] = At[k * s + c];
#pragma GCC unroll 8
		for (int j = 0; j < nj; j++) {
			float b = Bp[SK_NJ * c + j];
#pragma GCC unroll 2
			for (int s = 0; s < ns; s++) {
				NQ_LANES
				for (int l = 0; l < SK_L; l++)
					acc[s][j][l] = __builtin_fmaf(
					        a[s][l], b, acc[s][j][l]);
			}
		}
	}
#pragma GCC unroll 2
	for (int s = 0; s < ns; s++)
#pragma GCC unroll 8
		for (int j = 0; j < nj; j++) {
			sk_v r = acc[s][j];
			if (alpha != 1)
				for (int l = 0; l < SK_L; l++)
					r[l] *= alpha;
			*(sk_vu *) (C + SK_L * s + ldc * j) = r;
		}
}

/* tile() for nj ≤ SK_NJ columns, nj made a constant. */
NQ_CLONE_INLINE void
cols(const sk_v *At, int64_t k, const float *Bp, float alpha, float *C,
     int64_t ldc, int nj, int ns)
{
	switch (nj) {
#define SK_NJ_CASE(r)                                  \
	case r:                                        \
		tile(At, k, Bp, alpha, C, ldc, r, ns); \
		break;
		SK_NJ_CASE(1)
		SK_NJ_CASE(2)
		SK_NJ_CASE(3)
		SK_NJ_CASE(4)
		SK_NJ_CASE(5)
		SK_NJ_CASE(6)
		SK_NJ_CASE(7)
		SK_NJ_CASE(8)
#undef SK_NJ_CASE
	default:
		break;
	}
}

/* Rows [i, i + mb) of C (mb a multiple of SK_L): A's columns packed
 * (mb / SK_L blocks of k vectors), then every column block of C swept over
 * the rows, so that C's columns (far apart: one page each) are written one
 * block at a time. */
NQ_CLONE_INLINE void
row_block(int64_t mb, int64_t n, int64_t k, float alpha, const float *A,
          int64_t lda, const float *Bp, float *C, int64_t ldc, sk_v *At)
{
	for (int64_t t = 0; t < mb; t += SK_L)
		pack16(A + lda * t, lda, k, At + k * (t / SK_L));
	for (int64_t j = 0; j < n; j += SK_NJ) {
		int64_t t = 0;
		int nj = n - j < SK_NJ ? (int) (n - j) : SK_NJ;
		for (; t + SK_NS * SK_L <= mb; t += SK_NS * SK_L)
			cols(At + k * (t / SK_L), k, Bp + k * j, alpha,
			     C + t + ldc * j, ldc, nj, SK_NS);
		for (; t < mb; t += SK_L)
			cols(At + k * (t / SK_L), k, Bp + k * j, alpha,
			     C + t + ldc * j, ldc, nj, 1);
	}
}

NQ_CLONES int
kern_cpu_sgemm_tn_skinny(int64_t m, int64_t n, int64_t k, float alpha,
                         const float *A, int64_t lda, const float *B,
                         int64_t ldb, float *C, int64_t ldc)
{
	/* B in blocks of SK_NJ columns, each k rows of SK_NJ (zeros past n),
	 * after A's packed block */
	int64_t nb = (n + SK_NJ - 1) / SK_NJ;
	size_t na = (size_t) (k * (m < SK_MB ? m / SK_L + 1 : SK_MB / SK_L));
	/* B's blocks take whole vectors (aligned_alloc wants a multiple) */
	size_t nbv = ((size_t) (nb * SK_NJ * k) + SK_L - 1) / SK_L;
	sk_v *At = aligned_alloc(sizeof(sk_v), sizeof(sk_v) * (na + nbv));
	float Ct[SK_L * KERN_CPU_SKINNY_N], *Bp;
	int64_t i = 0, tail = m % SK_L;

	if (At == NULL)
		return NQ_ENOMEM;
	Bp = (float *) (void *) (At + na);
	for (int64_t j = 0; j < nb * SK_NJ; j++)
		for (int64_t c = 0; c < k; c++)
			Bp[k * (j - j % SK_NJ) + SK_NJ * c + j % SK_NJ] =
			        j < n ? B[c + ldb * j] : 0;
	for (; i + SK_L <= m; i += SK_MB) {
		int64_t mb = m - tail - i < SK_MB ? m - tail - i : SK_MB;
		row_block(mb, n, k, alpha, A + lda * i, lda, Bp, C + i, ldc,
		          At);
	}
	i = m - tail;
	if (tail > 0) {
		/* the last rows: lanes past m are zeros, and dropped */
		memset(At, 0, sizeof(sk_v) * (size_t) k);
		for (int64_t t = 0; t < tail; t++)
			for (int64_t c = 0; c < k; c++)
				At[c][t] = A[c + lda * (i + t)];
		for (int64_t j = 0; j < n; j += SK_NJ)
			cols(At, k, Bp + k * j, alpha, Ct + SK_L * j, SK_L,
			     n - j < SK_NJ ? (int) (n - j) : SK_NJ, 1);
		for (int64_t j = 0; j < n; j++)
			memcpy(C + i + ldc * j, Ct + SK_L * j,
			       sizeof(float) * (size_t) tail);
	}
	free(At);
	return 0;
}
