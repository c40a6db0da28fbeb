/*
 * kern_cpu_tall.c — the cpu backend's gemm for C = α Aᵀ B (β = 0, float64)
 * with a long inner dimension and few columns in B: gsn's block Lanczos
 * expansions (gsn_negeig.c), M Q_j = Mᵀ Q_j with M the symmetric n × n
 * projection argument and Q_j a block of 8 (up to 32) basis vectors.
 *
 * OpenBLAS packs A into its panels on every call: for 8 columns that copy
 * of the whole matrix is most of the call (n = 2000: 2.9 ms, 22 Gflop/s;
 * the active data's biconvex step at N = 2000 spent 0.26 s of its 0.64 s
 * there). Here A's columns are read where they lie, contiguous, once: 3
 * of them at a time against each block of 8 of B's columns, 24
 * vectors of partial sums in registers (lane l sums the products j ≡ l mod
 * 8), one fused multiply-add per pair and 8 rows of the inner dimension,
 * the last rows zero-padded; each sum's lanes are then added in a fixed
 * tree. The order of every operation is fixed, so the result depends
 * neither on m nor on the clone (the baseline's fma is libm's).
 *
 * A first version summed rows of A (A B, 24 rows × 8 columns a tile):
 * 25 % faster than OpenBLAS at n = 1000, 19 % slower at n = 2000, where
 * walking 2000 columns for each tile defeats the prefetcher.
 */
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern_impl.h"
#include "nq_clones.h"
#include "nq_error.h"

#define TK_L  8 /* doubles per vector */
#define TK_NI 3 /* columns of A (rows of C) per tile */
#define TK_NJ 8 /* columns of B and C per tile */

typedef double tk_v __attribute__((vector_size(TK_L * sizeof(double))));
typedef double tk_vu __attribute__((vector_size(TK_L * sizeof(double)),
                                    aligned(sizeof(double)), may_alias));

/* Only where OpenBLAS runs on one thread: this kernel does not divide
 * its work, and OpenBLAS's threaded dgemm beat it on two (an AVX2 EPYC,
 * the whole gsn job on the active data at N = 2000: 1.18 s against 1.30;
 * at N = 1000 within the noise). On OpenMP threads of its own it was 25x
 * slower beside OpenBLAS's (bench/README.md). */
int
kern_cpu_tall_fits(int64_t m, int64_t n, int64_t k)
{
	return m >= 1 && k >= KERN_CPU_TALL_K && n >= 1 &&
	       n <= KERN_CPU_TALL_N && openblas_get_num_threads() == 1;
}

/* The lanes of *v summed in a fixed tree (a pointer: a vector argument
 * would change the ABI where AVX-512 is not enabled). */
NQ_CLONE_INLINE double
hsum(const tk_v *v)
{
	return (((*v)[0] + (*v)[4]) + ((*v)[2] + (*v)[6])) +
	       (((*v)[1] + (*v)[5]) + ((*v)[3] + (*v)[7]));
}

/* One step of tile(): av[s] the rows of A's column s, BV(c) those of B's
 * column c, into acc. */
#define TK_STEP(AV, BV)                                                        \
	do {                                                                   \
		tk_v av[TK_NI];                                                \
		_Pragma("GCC unroll 3") for (int s = 0; s < ni; s++) av[s] =   \
		        (AV);                                                  \
		_Pragma("GCC unroll 8") for (int c = 0; c < nj; c++)           \
		{                                                              \
			tk_v bv = (BV);                                        \
			_Pragma("GCC unroll 3") for (int s = 0; s < ni; s++)   \
			        NQ_LANES for (int l = 0; l < TK_L; l++)        \
			                acc[s][c][l] =                         \
			                        __builtin_fma(av[s][l], bv[l], \
			                                      acc[s][c][l]);   \
		}                                                              \
	} while (0)

/* C[i .. i+ni) × [q, q+nj) for ni columns of A (A points at the first) and
 * nj of B (B at column q); ni and nj are constants where this is inlined.
 * Rows [k8, k) of the inner dimension come zero-padded from Ar (ni
 * vectors) and Br (nj vectors). */
NQ_CLONE_INLINE void
tile(const double *A, int64_t lda, const double *B, int64_t ldb, int64_t k8,
     int64_t k, const tk_v *Ar, const tk_v *Br, double alpha, double *C,
     int64_t ldc, int ni, int nj)
{
	tk_v acc[TK_NI][TK_NJ];

#pragma GCC unroll 3
	for (int s = 0; s < ni; s++)
#pragma GCC unroll 8
		for (int c = 0; c < nj; c++)
			acc[s][c] = (tk_v){0};
	for (int64_t j = 0; j < k8; j += TK_L)
		TK_STEP(*(const tk_vu *) (A + j + lda * s),
		        *(const tk_vu *) (B + j + ldb * c));
	if (k8 < k)
		TK_STEP(Ar[s], Br[c]);
#undef TK_STEP
#pragma GCC unroll 3
	for (int s = 0; s < ni; s++)
#pragma GCC unroll 8
		for (int c = 0; c < nj; c++)
			C[s + ldc * c] = alpha * hsum(&acc[s][c]);
}

/* tile() with ni (≤ TK_NI) and nj (≤ TK_NJ) made constants. */
NQ_CLONE_INLINE void
cols(const double *A, int64_t lda, const double *B, int64_t ldb, int64_t k8,
     int64_t k, const tk_v *Ar, const tk_v *Br, double alpha, double *C,
     int64_t ldc, int ni, int nj)
{
	switch (nj * 4 + ni) {
#define TK_CASE(r)                                                            \
	case (r) *4 + 1:                                                      \
		tile(A, lda, B, ldb, k8, k, Ar, Br, alpha, C, ldc, 1, r);     \
		break;                                                        \
	case (r) *4 + 2:                                                      \
		tile(A, lda, B, ldb, k8, k, Ar, Br, alpha, C, ldc, 2, r);     \
		break;                                                        \
	case (r) *4 + TK_NI:                                                  \
		tile(A, lda, B, ldb, k8, k, Ar, Br, alpha, C, ldc, TK_NI, r); \
		break;
		TK_CASE(1)
		TK_CASE(2)
		TK_CASE(3)
		TK_CASE(4)
		TK_CASE(5)
		TK_CASE(6)
		TK_CASE(7)
		TK_CASE(8)
#undef TK_CASE
	default:
		break;
	}
}

/* *v = the last k − k8 rows of a column, zero-padded to a vector. */
NQ_CLONE_INLINE void
rest(const double *x, int64_t k8, int64_t k, tk_v *v)
{
	*v = (tk_v){0};
	for (int64_t j = k8; j < k; j++)
		(*v)[j - k8] = x[j];
}

NQ_CLONES int
kern_cpu_dgemm_tn_tall(int64_t m, int64_t n, int64_t k, double alpha,
                       const double *A, int64_t lda, const double *B,
                       int64_t ldb, double *C, int64_t ldc)
{
	/* B's last rows, zero-padded: one vector per column */
	int64_t k8 = k - k % TK_L;
	tk_v *Br = aligned_alloc(sizeof(tk_v), sizeof(tk_v) * (size_t) n);

	if (Br == NULL)
		return NQ_ENOMEM;
	for (int64_t c = 0; c < n; c++)
		rest(B + ldb * c, k8, k, &Br[c]);
	/* A's columns once each, against every block of B's */
	for (int64_t i = 0; i < m; i += TK_NI) {
		int ni = m - i < TK_NI ? (int) (m - i) : TK_NI;
		tk_v Ar[TK_NI];

		for (int s = 0; s < ni; s++)
			rest(A + lda * (i + s), k8, k, &Ar[s]);
		for (int64_t q = 0; q < n; q += TK_NJ)
			cols(A + lda * i, lda, B + ldb * q, ldb, k8, k, Ar,
			     Br + q, alpha, C + i + ldc * q, ldc, ni,
			     n - q < TK_NJ ? (int) (n - q) : TK_NJ);
	}
	free(Br);
	return 0;
}
