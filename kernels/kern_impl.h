/*
 * kern_impl.h — private to kernels/: what the backends share and how
 * kern_close() reaches a backend.
 *
 * struct kern_ops has no close member (the table is what algorithms see);
 * each backend exports its close here and kern.c picks it by ops->name.
 * The argument checks live here so that both backends reject the same
 * calls with the same code (NQ_EBADPARAM).
 */
#ifndef KERN_IMPL_H
#define KERN_IMPL_H

#include <limits.h>
#include <stdint.h>

#include "kern.h"

void kern_cpu_close(void *ctx);
void kern_cuda_close(void *ctx);

static inline int
kern_dt_ok(enum kern_dtype dt)
{
	return dt == KERN_F64 || dt == KERN_F32;
}

/* Dimensions go to BLAS/LAPACK/cuBLAS as 32-bit ints on some paths. */
static inline int
kern_dim_ok(int64_t v)
{
	return v >= 0 && v <= INT_MAX;
}

/* A leading dimension for a matrix with `rows` rows. */
static inline int
kern_ld_ok(int64_t ld, int64_t rows)
{
	return ld >= (rows > 1 ? rows : 1) && ld <= INT_MAX;
}

/* Elementwise ops: valid dt, count >= 0, pointers present when there is
 * anything to touch. */
static inline int
kern_vec_ok(enum kern_dtype dt, int64_t count, const void *a, const void *b)
{
	if (!kern_dt_ok(dt) || count < 0)
		return 0;
	return count == 0 || (a != NULL && b != NULL);
}

/* n×n dense (ld = n): n*n must fit int64_t. */
static inline int
kern_sq_ok(enum kern_dtype dt, int64_t n, const void *a, const void *b)
{
	if (n < 0 || n > 3037000499LL)
		return 0;
	return kern_vec_ok(dt, n * n, a, b);
}

/* m×n with leading dimension lda, for the ops that index it themselves. */
static inline int
kern_mat_ok(enum kern_dtype dt, int64_t m, int64_t n, int64_t lda)
{
	if (!kern_dt_ok(dt) || m < 0 || n < 0 || lda < (m > 1 ? m : 1))
		return 0;
	return n == 0 || lda <= INT64_MAX / n;
}

/* conv_rows: sizes, strides and pointers (X rows hold n + nt - 1 samples). */
static inline int
kern_conv_rows_ok(enum kern_dtype dt, int64_t ng, int64_t group, int64_t n,
                  int64_t nt, const void *X, int64_t ldx, const void *W,
                  const void *Y, int64_t ldy)
{
	if (!kern_dt_ok(dt) || ng < 0 || group < 1 || n < 0 || nt < 1 ||
	    nt > INT_MAX || group > INT_MAX || n > INT64_MAX / 4)
		return 0;
	if (ng == 0 || n == 0)
		return 1;
	if (ng > INT64_MAX / group || ldx < n + nt - 1 || ldy < n)
		return 0;
	if (ldx > INT64_MAX / (ng * group) || ldy > INT64_MAX / ng)
		return 0;
	return X != NULL && W != NULL && Y != NULL;
}

#endif
