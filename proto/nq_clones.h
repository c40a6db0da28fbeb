/*
 * nq_clones.h — NQ_CLONES, for the hot elementwise loops (spikesort's
 * int16 conversion and whitening, the cpu backend's batch ops): gcc builds
 * the function for AVX-512, AVX2 and the x86-64 baseline and picks one at
 * load time. Only in ISO C mode (-std=c11), which keeps -ffp-contract=off:
 * no version fuses a multiply-add on its own, and an explicit fma()/fmaf()
 * rounds once in every version (libm's in the baseline), so every clone
 * gives the same bits. Elsewhere (clang, other targets) it is empty.
 *
 * NQ_CLONE_INLINE marks the helpers of a cloned function: inlined into each
 * clone, so they are built for its target too (a call from an AVX-512
 * clone into baseline SSE code was measured 3x slower).
 */
#ifndef NQ_CLONES_H
#define NQ_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
        defined(__STRICT_ANSI__)
#define NQ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NQ_CLONES
#endif

#define NQ_CLONE_INLINE static inline __attribute__((always_inline))

#endif
