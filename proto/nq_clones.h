/*
 * nq_clones.h — NQ_CLONES, for the hot loops (spikesort's int16 conversion,
 * whitening and score convolution, the cpu backend's batch ops and its
 * skinny and tall gemms): gcc builds the function for AVX-512, x86-64-v3
 * (AVX2 with FMA) and the x86-64 baseline and picks one at load time.
 * The middle clone names x86-64-v3, not "avx2": that target leaves FMA
 * off, so its fma() was a call into libm per element (the tall gemm 25x
 * slower on an AVX2 EPYC); tests/clones_fma.sh checks that no clone but
 * the baseline calls it. Only in ISO C mode (-std=c11), which keeps
 * -ffp-contract=off: no version fuses a multiply-add on its own, and an
 * explicit fma()/fmaf() rounds once in every version (libm's in the
 * baseline), so every clone gives the same bits. Elsewhere (clang, other
 * targets) it is empty.
 *
 * NQ_CLONE_INLINE marks the helpers of a cloned function: inlined into each
 * clone, so they are built for its target too (a call from an AVX-512
 * clone into baseline SSE code was measured 3x slower).
 */
#ifndef NQ_CLONES_H
#define NQ_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
        defined(__STRICT_ANSI__)
#define NQ_CLONES \
	__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define NQ_CLONES
#endif

#define NQ_CLONE_INLINE static inline __attribute__((always_inline))

/*
 * NQ_LANES goes before a loop over the lanes of a vector (for (l = 0; l <
 * lanes; l++) acc[l] = fma(a[l], b[l], acc[l])) in a cloned function: the
 * vectorizer makes it one vector instruction. Without it -O3 (a Release
 * build) unrolls such a loop completely first, and gcc 12 does not put
 * the pieces together again: every fused multiply-add of the tall gemm,
 * and those of the AVX-512 clones of the skinny gemm and the score
 * convolution, became scalar (the tall gemm 4x slower; tests/clones_fma.sh
 * on a Release build, .ci/run).
 */
#define NQ_LANES _Pragma("GCC unroll 1")

#endif
