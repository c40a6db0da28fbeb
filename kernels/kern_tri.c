/*
 * kern_tri.c — host work on a symmetric tridiagonal matrix T = (d, e),
 * shared by the backends' syev_side (the cpu one and the cuda one, which
 * reduces on the device and solves T on the host: cuSOLVER has no
 * tridiagonal eigensolver). LAPACKE, so both backends get the same
 * eigenvalues and vectors from the same T.
 */
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "kern_impl.h"
#include "nq_error.h"

int
kern_tri_count(enum kern_dtype dt, int64_t n, const void *d, const void *e,
               void *w, int64_t *nneg, int64_t *npos, int *info)
{
	size_t es = kern_dtype_size(dt);
	void *e2 = malloc((size_t) (n > 1 ? n - 1 : 1) * es);
	lapack_int r;

	*nneg = *npos = 0;
	if (e2 == NULL)
		return NQ_ENOMEM;
	memcpy(w, d, (size_t) n * es);
	if (n > 1)
		memcpy(e2, e, (size_t) (n - 1) * es);
	if (dt == KERN_F64)
		r = LAPACKE_dsterf_work((lapack_int) n, w, e2);
	else
		r = LAPACKE_ssterf_work((lapack_int) n, w, e2);
	free(e2);
	*info = (int) r;
	if (r != 0)
		return r < 0 ? NQ_EBADPARAM : 0;
	for (int64_t i = 0; i < n; i++) {
		double v = dt == KERN_F64 ? ((const double *) w)[i]
		                          : (double) ((const float *) w)[i];

		*nneg += v < 0;
		*npos += v > 0;
	}
	return 0;
}

int
kern_tri_vecs(enum kern_dtype dt, int64_t n, const void *d, const void *e,
              int64_t il, int64_t iu, void *w, void *z, int64_t ldz,
              int *info)
{
	size_t es = kern_dtype_size(dt);
	int64_t k = iu - il + 1;
	/* stemr destroys d and e and wants e of n; its eigenvalues go to a
	 * scratch of n, then to w[il-1 .. iu) */
	char *buf = malloc((size_t) (3 * n + 18 * n) * es);
	lapack_int *iw = malloc((size_t) (10 * n + 2 * n) * sizeof(*iw));
	lapack_int m = 0, r, tryrac = 1;
	char *dd, *ee, *ww, *work;
	int rc = 0;

	*info = 0;
	if (buf == NULL || iw == NULL) {
		rc = NQ_ENOMEM;
		goto out;
	}
	dd = buf;
	ee = dd + (size_t) n * es;
	ww = ee + (size_t) n * es;
	work = ww + (size_t) n * es;
	memcpy(dd, d, (size_t) n * es);
	memset(ee, 0, (size_t) n * es);
	if (n > 1)
		memcpy(ee, e, (size_t) (n - 1) * es);
	if (dt == KERN_F64)
		r = LAPACKE_dstemr_work(
		        LAPACK_COL_MAJOR, 'V', 'I', (lapack_int) n,
		        (double *) dd, (double *) ee, 0.0, 0.0,
		        (lapack_int) il, (lapack_int) iu, &m, (double *) ww,
		        z, (lapack_int) ldz, (lapack_int) k,
		        iw + 10 * n, &tryrac, (double *) work,
		        (lapack_int) (18 * n), iw, (lapack_int) (10 * n));
	else
		r = LAPACKE_sstemr_work(
		        LAPACK_COL_MAJOR, 'V', 'I', (lapack_int) n,
		        (float *) dd, (float *) ee, 0.0f, 0.0f,
		        (lapack_int) il, (lapack_int) iu, &m, (float *) ww, z,
		        (lapack_int) ldz, (lapack_int) k, iw + 10 * n,
		        &tryrac, (float *) work, (lapack_int) (18 * n), iw,
		        (lapack_int) (10 * n));
	if (r < 0) {
		rc = NQ_EBADPARAM;
		goto out;
	}
	*info = (int) r;
	if (r == 0 && m != k)
		*info = 1; /* not the pairs asked for: as no convergence */
	if (*info == 0)
		memcpy((char *) w + (size_t) (il - 1) * es, ww,
		       (size_t) k * es);
out:
	free(buf);
	free(iw);
	return rc;
}
