/*
 * gemm_tall_bench.c — the cpu backend's gemm for gsn's Krylov expansions,
 * C = Aᵀ B with A n × n and B n × b (kernels/cpu/kern_cpu_tall.c), against
 * OpenBLAS's dgemm of the same product as gsn asked for it before (A B, A
 * symmetric), best of 9 calls each, in one process. Issue 17,
 * bench/README.md. Not built by CMake; from a build directory BUILD:
 *
 *   cc -O2 -std=c11 -fopenmp -Ikernels -Iproto -o /tmp/gemm_tall \
 *       bench/gemm_tall_bench.c BUILD/kernels/libnq_kernels.a \
 *       BUILD/proto/libnq_proto.a $(pkg-config --cflags --libs openblas \
 *       lapacke) -lm
 *   OPENBLAS_NUM_THREADS=1 /tmp/gemm_tall 2000 8
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kern.h"

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double) t.tv_sec + (double) t.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	struct kern_backend kb;
	void *A, *Q, *C;
	int n, b;

	if (argc != 3 || (n = atoi(argv[1])) < 1 || (b = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: %s N COLUMNS\n", argv[0]);
		return 2;
	}
	if (kern_cpu_open(&kb) != 0 ||
	    kern_alloc(&kb, sizeof(double) * (size_t) n * (size_t) n, &A) ||
	    kern_alloc(&kb, sizeof(double) * (size_t) n * (size_t) b, &Q) ||
	    kern_alloc(&kb, sizeof(double) * (size_t) n * (size_t) b, &C))
		return 1;
	srand(1);
	for (size_t i = 0; i < (size_t) n * (size_t) n; i++)
		((double *) A)[i] = (double) rand() / RAND_MAX;
	for (size_t i = 0; i < (size_t) n * (size_t) b; i++)
		((double *) Q)[i] = (double) rand() / RAND_MAX;
	for (int v = 0; v < 2; v++) {
		double best = 1e30;

		for (int r = 0; r < 9; r++) {
			double t0 = now(), t;

			if (v == 0)
				KOP(&kb, gemm, KERN_F64, KERN_T, KERN_N, n, b,
				    n, 1.0, A, n, Q, n, 0.0, C, n);
			else
				cblas_dgemm(CblasColMajor, CblasNoTrans,
				            CblasNoTrans, n, b, n, 1.0, A, n, Q,
				            n, 0.0, C, n);
			t = now() - t0;
			best = t < best ? t : best;
		}
		printf("%-26s n = %d, %d columns: %.3f ms, %.1f Gflop/s\n",
		       v == 0 ? "kern gemm A^T B (tall)" : "OpenBLAS dgemm A B",
		       n, b, best * 1e3, 2.0 * n * n * b / best / 1e9);
	}
	kern_free(&kb, A);
	kern_free(&kb, Q);
	kern_free(&kb, C);
	kern_close(&kb);
	return 0;
}
