/*
 * gsn_tri_routes.c — the tridiagonal step of gsn's syev_side on a real
 * signal argument: the k eigenpairs below zero of T (k by a Sturm count)
 * by bisection + inverse iteration (dstebz + dstein, the old route) or by
 * MRRR (dstemr, RANGE 'I', tryrac 0: kern_tri.c's route). Issue 17,
 * bench/README.md. Not built by CMake:
 *
 *   cc -O2 -o /tmp/tri bench/gsn_tri_routes.c -llapacke -lopenblas
 *   # A.bin: the n×n matrix syev_side reduces, doubles, column-major, e.g.
 *   #   gdb -batch -ex 'break *cpu_syev_side' -ex run \
 *   #       -ex 'dump binary memory A.bin $rcx $rcx+N*N*8' -ex kill \
 *   #       --args neuroq-worker run --type gsn --dir JOB --device cpu
 *   /tmp/tri A.bin N                 # writes A.bin.de: d and e of dsytrd(A)
 *   valgrind --tool=callgrind --toggle-collect=LAPACKE_dstebz \
 *       --toggle-collect=LAPACKE_dstein --toggle-collect=LAPACKE_dstemr \
 *       /tmp/tri -s A.bin.de N stein|stemr
 */
#include <lapacke.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
dump(const char *path, int n)
{
	double *A = malloc(sizeof(double) * (size_t) n * (size_t) n);
	double *d = malloc(sizeof(double) * (size_t) n);
	double *e = calloc((size_t) n, sizeof(double));
	double *tau = malloc(sizeof(double) * (size_t) n);
	char out[4096];
	FILE *f = fopen(path, "rb");

	if (A == NULL || d == NULL || e == NULL || tau == NULL || f == NULL ||
	    fread(A, sizeof(double), (size_t) n * (size_t) n, f) !=
	            (size_t) n * (size_t) n)
		return 1;
	fclose(f);
	if (LAPACKE_dsytrd(LAPACK_COL_MAJOR, 'L', n, A, n, d, e, tau) != 0)
		return 1;
	e[n - 1] = 0;
	snprintf(out, sizeof(out), "%s.de", path);
	f = fopen(out, "wb");
	if (f == NULL)
		return 1;
	fwrite(d, sizeof(double), (size_t) n, f);
	fwrite(e, sizeof(double), (size_t) n, f);
	fclose(f);
	return 0;
}

static int
solve(const char *path, int n, const char *route)
{
	double *d = malloc(sizeof(double) * (size_t) n);
	double *e = malloc(sizeof(double) * (size_t) n);
	double *w = malloc(sizeof(double) * (size_t) n);
	double *Z = malloc(sizeof(double) * (size_t) n * (size_t) n);
	int *iw = malloc(sizeof(int) * (size_t) n * 3);
	FILE *f = fopen(path, "rb");
	double q = 0;
	int k = 0, m = 0, ns = 0, r;

	if (d == NULL || e == NULL || w == NULL || Z == NULL || iw == NULL ||
	    f == NULL ||
	    fread(d, sizeof(double), (size_t) n, f) != (size_t) n ||
	    fread(e, sizeof(double), (size_t) n, f) != (size_t) n)
		return 1;
	fclose(f);
	for (int i = 0; i < n; i++) {
		q = i == 0 ? d[0] : d[i] - e[i - 1] * e[i - 1] / q;
		k += q < 0;
	}
	if (k == 0)
		return 1;
	if (strcmp(route, "stein") == 0) {
		r = LAPACKE_dstebz('I', 'B', n, 0, 0, 1, k, 0, d, e, &m, &ns, w,
		                   iw, iw + n);
		if (r == 0)
			r = LAPACKE_dstein(LAPACK_COL_MAJOR, n, d, e, m, w, iw,
			                   iw + n, Z, n, iw + 2 * n);
	} else {
		lapack_logical tryrac = 0;

		r = LAPACKE_dstemr(LAPACK_COL_MAJOR, 'V', 'I', n, d, e, 0, 0, 1,
		                   k, &m, w, Z, n, k, iw, &tryrac);
	}
	printf("%s n=%d k=%d found=%d info=%d lowest=%.6g\n", route, n, k, m, r,
	       w[0]);
	return r != 0 || m != k;
}

int
main(int argc, char **argv)
{
	if (argc == 3)
		return dump(argv[1], atoi(argv[2]));
	if (argc == 5 && strcmp(argv[1], "-s") == 0)
		return solve(argv[2], atoi(argv[3]), argv[4]);
	fprintf(stderr, "usage: %s A.bin N | %s -s A.bin.de N stein|stemr\n",
	        argv[0], argv[0]);
	return 2;
}
