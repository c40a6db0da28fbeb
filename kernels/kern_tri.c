/*
 * kern_tri.c — host work on a symmetric tridiagonal matrix T = (d, e),
 * shared by the backends' syev_side (the cpu one and the cuda one, which
 * reduces on the device and solves T on the host: cuSOLVER has no
 * tridiagonal eigensolver). LAPACKE, so both backends get the same
 * eigenvalues and vectors from the same T.
 */
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kern_impl.h"
#include "nq_error.h"

int
kern_tri_count(enum kern_dtype dt, int64_t n, const void *d, const void *e,
               int64_t *nneg, int *info)
{
	/* Sturm count at 0: the negative pivots of T = L D Lᵀ (Sylvester),
	 * O(n); a zero pivot is nudged below as LAPACK's dlaneg does */
	double q = 0, emax = 1, pivmin;

	*nneg = 0;
	*info = 0;
	for (int64_t i = 0; i + 1 < n; i++) {
		double v = dt == KERN_F64 ? ((const double *) e)[i]
		                          : (double) ((const float *) e)[i];

		if (!isfinite(v)) {
			*info = 1;
			return 0;
		}
		emax = fmax(emax, v * v);
	}
	pivmin = DBL_MIN * emax;
	for (int64_t i = 0; i < n; i++) {
		double di = dt == KERN_F64 ? ((const double *) d)[i]
		                           : (double) ((const float *) d)[i];
		double ei = 0;

		if (!isfinite(di)) {
			*info = 1;
			return 0;
		}
		if (i > 0)
			ei = dt == KERN_F64
			             ? ((const double *) e)[i - 1]
			             : (double) ((const float *) e)[i - 1];
		q = i == 0 ? di : di - ei * ei / q;
		if (fabs(q) < pivmin)
			q = -pivmin;
		*nneg += q < 0;
	}
	return 0;
}

/* MRRR (stemr, RANGE 'I'): the k pairs in O(n k), values ascending (w: n
 * elements, stemr may fill more before it selects). 0 with *ok = 0 when it
 * did not deliver them (the caller then bisects). */
static int
tri_mrrr(enum kern_dtype dt, int64_t n, const void *d, const void *e,
         int64_t il, int64_t iu, void *w, void *z, int64_t ldz, int *ok)
{
	size_t es = kern_dtype_size(dt);
	int64_t k = iu - il + 1;
	/* d and e are overwritten, e needs n; work 18n, iwork 10n (LAPACK's
	 * minima), isuppz 2k */
	char *buf = malloc((size_t) (2 * n + 18 * n) * es);
	lapack_int *iw = malloc((size_t) (10 * n + 2 * k) * sizeof(*iw));
	lapack_int m = 0, r, tryrac = 0;
	char *dd, *ee, *work;
	int rc = 0;

	*ok = 0;
	if (buf == NULL || iw == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	dd = buf;
	ee = dd + (size_t) n * es;
	work = ee + (size_t) n * es;
	memcpy(dd, d, (size_t) n * es);
	memset(ee, 0, (size_t) n * es);
	if (n > 1)
		memcpy(ee, e, (size_t) (n - 1) * es);
	/* tryrac 0: T is the reduction of a dense matrix, absolute accuracy
	 * (ε‖T‖) is what its eigenvalues carry anyway */
	if (dt == KERN_F64)
		r = LAPACKE_dstemr_work(
		        LAPACK_COL_MAJOR, 'V', 'I', (lapack_int) n,
		        (double *) dd, (double *) ee, 0.0, 0.0, (lapack_int) il,
		        (lapack_int) iu, &m, w, z, (lapack_int) ldz,
		        (lapack_int) k, iw + 10 * n, &tryrac, (double *) work,
		        (lapack_int) (18 * n), iw, (lapack_int) (10 * n));
	else
		r = LAPACKE_sstemr_work(
		        LAPACK_COL_MAJOR, 'V', 'I', (lapack_int) n,
		        (float *) dd, (float *) ee, 0.0f, 0.0f, (lapack_int) il,
		        (lapack_int) iu, &m, w, z, (lapack_int) ldz,
		        (lapack_int) k, iw + 10 * n, &tryrac, (float *) work,
		        (lapack_int) (18 * n), iw, (lapack_int) (10 * n));
	if (r < 0)
		rc = NQ_EBADPARAM;
	*ok = r == 0 && m == k;
out:
	free(buf);
	free(iw);
	return rc;
}

int
kern_tri_vecs(enum kern_dtype dt, int64_t n, const void *d, const void *e,
              int64_t il, int64_t iu, void *w, void *z, int64_t ldz, int *info)
{
	/* MRRR first: on the spectra gsn projects (155 of 2000 eigenvalues
	 * packed into [−0.12, 0)) it takes about half the instructions of
	 * bisection and inverse iteration (bench/README.md, issue 17) */
	size_t es = kern_dtype_size(dt);
	int64_t k = iu - il + 1;
	char *buf = malloc((size_t) (2 * n + 5 * n + 4 * n) * es);
	lapack_int *iw = malloc((size_t) (2 * n + 3 * n + n + k) * sizeof(*iw));
	lapack_int m = 0, nsplit = 0, r;
	lapack_int *iblock, *isplit, *iwork, *ifail;
	char *ee, *ww, *work;
	int rc = 0, ok = 0;

	*info = 0;
	if (buf == NULL || iw == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	rc = tri_mrrr(dt, n, d, e, il, iu, w, z, ldz, &ok);
	if (rc != 0 || ok)
		goto out;
	/* else bisection (stebz) and inverse iteration (stein): what syevr
	 * runs for a part of the spectrum */
	iblock = iw;
	isplit = iblock + n;
	iwork = isplit + n;
	ifail = iwork + 3 * n;
	ee = buf;
	ww = ee + (size_t) n * es;
	work = ww + (size_t) n * es;
	memset(ee, 0, (size_t) n * es);
	if (n > 1)
		memcpy(ee, e, (size_t) (n - 1) * es);
	if (dt == KERN_F64)
		r = LAPACKE_dstebz_work('I', 'B', (lapack_int) n, 0.0, 0.0,
		                        (lapack_int) il, (lapack_int) iu, 0.0,
		                        d, (const double *) ee, &m, &nsplit,
		                        (double *) ww, iblock, isplit,
		                        (double *) work, iwork);
	else
		r = LAPACKE_sstebz_work('I', 'B', (lapack_int) n, 0.0f, 0.0f,
		                        (lapack_int) il, (lapack_int) iu, 0.0f,
		                        d, (const float *) ee, &m, &nsplit,
		                        (float *) ww, iblock, isplit,
		                        (float *) work, iwork);
	if (r == 0 && m == k) {
		if (dt == KERN_F64)
			r = LAPACKE_dstein_work(
			        LAPACK_COL_MAJOR, (lapack_int) n, d,
			        (const double *) ee, m, (const double *) ww,
			        iblock, isplit, z, (lapack_int) ldz,
			        (double *) work, iwork, ifail);
		else
			r = LAPACKE_sstein_work(
			        LAPACK_COL_MAJOR, (lapack_int) n, d,
			        (const float *) ee, m, (const float *) ww,
			        iblock, isplit, z, (lapack_int) ldz,
			        (float *) work, iwork, ifail);
	}
	if (r < 0) {
		rc = NQ_EBADPARAM;
		goto out;
	}
	*info = (int) r;
	if (r == 0 && m != k)
		*info = 1; /* not the pairs asked for: as no convergence */
	if (*info != 0)
		goto out;
	/* ascending, the vectors with their values (stebz orders by block) */
	for (int64_t j = 0; j < k - 1; j++) {
		int64_t b = j;
		double vb, vi;

		for (int64_t i = j + 1; i < k; i++) {
			vb = dt == KERN_F64 ? ((double *) ww)[b]
			                    : (double) ((float *) ww)[b];
			vi = dt == KERN_F64 ? ((double *) ww)[i]
			                    : (double) ((float *) ww)[i];
			if (vi < vb)
				b = i;
		}
		if (b == j)
			continue;
		/* swap values j, b and columns j, b (work holds n) */
		memcpy(work, ww + (size_t) j * es, es);
		memcpy(ww + (size_t) j * es, ww + (size_t) b * es, es);
		memcpy(ww + (size_t) b * es, work, es);
		memcpy(work, (char *) z + (size_t) (j * ldz) * es,
		       (size_t) n * es);
		memcpy((char *) z + (size_t) (j * ldz) * es,
		       (char *) z + (size_t) (b * ldz) * es, (size_t) n * es);
		memcpy((char *) z + (size_t) (b * ldz) * es, work,
		       (size_t) n * es);
	}
	memcpy(w, ww, (size_t) k * es);
out:
	free(buf);
	free(iw);
	return rc;
}
