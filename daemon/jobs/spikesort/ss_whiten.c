/*
 * ss_whiten.c — Kilosort's local ZCA whitening: for every channel, the
 * covariance of its nearest nrange channels is eigendecomposed (kern syevd)
 * and the channel's row of E·diag(1/√(d+ε))·Eᵀ kept. Applying it is one
 * C × C by C × T gemm per batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

int
ss_kbuf_ensure(const struct kern_backend *kb, struct ss_kbuf *b, size_t bytes)
{
	if (b->cap >= bytes && b->p != NULL)
		return 0;
	if (b->p != NULL)
		KOP(kb, free, b->p);
	b->p = NULL;
	b->cap = 0;
	if (KOP(kb, alloc, bytes ? bytes : 1, &b->p) != 0) {
		b->p = NULL;
		return NQ_ENOMEM;
	}
	b->cap = bytes;
	return 0;
}

void
ss_kbuf_free(const struct kern_backend *kb, struct ss_kbuf *b)
{
	if (b->p != NULL)
		KOP(kb, free, b->p);
	b->p = NULL;
	b->cap = 0;
}

int
ss_whiten_from_cov(const struct kern_backend *kb, const double *cov,
                   const struct ss_probe *p, int nrange, float *M)
{
	int C = p->n, nr = nrange < C ? nrange : C, rc, info = 0;
	int *idx = malloc(sizeof(int) * (size_t) nr);
	double *A = malloc(sizeof(double) * (size_t) nr * (size_t) nr);
	double *E = malloc(sizeof(double) * (size_t) nr * (size_t) nr);
	double *d = malloc(sizeof(double) * (size_t) nr);
	struct ss_kbuf dA = {0}, dW = {0};

	rc = NQ_ENOMEM;
	if (!idx || !A || !E || !d)
		goto out;
	if ((rc = ss_kbuf_ensure(kb, &dA, sizeof(double) * nr * nr)) != 0 ||
	    (rc = ss_kbuf_ensure(kb, &dW, sizeof(double) * nr)) != 0)
		goto out;
	memset(M, 0, sizeof(float) * (size_t) C * (size_t) C);
	for (int j = 0; j < C; j++) {
		ss_probe_nearest(p, j, nr, idx);
		for (int a = 0; a < nr; a++)
			for (int b = 0; b < nr; b++)
				A[a + nr * b] =
				        cov[idx[a] + (size_t) C * idx[b]];
		if ((rc = KOP(kb, upload, dA.p, A, sizeof(double) * nr * nr)) ||
		    (rc = KOP(kb, syevd, KERN_F64, nr, dA.p, nr, dW.p,
		              &info)) ||
		    (rc = KOP(kb, download, E, dA.p,
		              sizeof(double) * nr * nr)) ||
		    (rc = KOP(kb, download, d, dW.p, sizeof(double) * nr)))
			goto out;
		if (info != 0) {
			rc = NQ_EBADDATA;
			goto out;
		}
		/* row 0 (channel j itself) of E diag(1/sqrt(d+eps)) E^T */
		for (int b = 0; b < nr; b++) {
			double s = 0;
			for (int e = 0; e < nr; e++) {
				double ev = d[e] > 0 ? d[e] : 0;
				s += E[0 + nr * e] * E[b + nr * e] /
				     sqrt(ev + 1e-6);
			}
			M[j + (size_t) C * idx[b]] = (float) s;
		}
	}
	rc = 0;
out:
	ss_kbuf_free(kb, &dA);
	ss_kbuf_free(kb, &dW);
	free(idx);
	free(A);
	free(E);
	free(d);
	return rc;
}

int
ss_apply_matrix(const struct kern_backend *kb, const void *dM, int C, float *X,
                int64_t T, struct ss_kbuf *dx, struct ss_kbuf *dy)
{
	size_t bytes = sizeof(float) * (size_t) C * (size_t) T;
	int rc;

	if ((rc = ss_kbuf_ensure(kb, dx, bytes)) != 0 ||
	    (rc = ss_kbuf_ensure(kb, dy, bytes)) != 0)
		return rc;
	if ((rc = KOP(kb, upload, dx->p, X, bytes)) != 0 ||
	    (rc = KOP(kb, gemm, KERN_F32, KERN_N, KERN_N, C, T, C, 1.0, dM, C,
	              dx->p, C, 0.0, dy->p, C)) != 0 ||
	    (rc = KOP(kb, download, X, dy->p, bytes)) != 0)
		return rc;
	return 0;
}

int
ss_band_blocks(const float *M, int C, int rows, struct ss_band *b)
{
	int n = 0;

	for (int r0 = 0; r0 < C; r0 += rows) {
		int r1 = r0 + rows < C ? r0 + rows : C, c0 = C, c1 = 0;
		for (int c = 0; c < C; c++)
			for (int r = r0; r < r1; r++)
				if (M[r + (size_t) C * c] != 0) {
					c0 = c < c0 ? c : c0;
					c1 = c + 1;
					break;
				}
		if (c1 <= c0) {
			c0 = 0;
			c1 = 1;
		}
		b[n++] = (struct ss_band){r0, r1, c0, c1};
	}
	return n;
}

int
ss_apply_banded(const struct kern_backend *kb, const void *dM, int C,
                const struct ss_band *b, int nb, float *X, int64_t T,
                struct ss_kbuf *dx, struct ss_kbuf *dy)
{
	size_t bytes = sizeof(float) * (size_t) C * (size_t) T;
	int rc;

	if ((rc = ss_kbuf_ensure(kb, dx, bytes)) != 0 ||
	    (rc = ss_kbuf_ensure(kb, dy, bytes)) != 0 ||
	    (rc = KOP(kb, upload, dx->p, X, bytes)) != 0)
		return rc;
	for (int i = 0; i < nb; i++)
		if ((rc = KOP(kb, gemm, KERN_F32, KERN_N, KERN_N,
		              b[i].r1 - b[i].r0, T, b[i].c1 - b[i].c0, 1.0,
		              (const float *) dM + b[i].r0 +
		                      (size_t) C * b[i].c0,
		              C, (float *) dx->p + b[i].c0, C, 0.0,
		              (float *) dy->p + b[i].r0, C)) != 0)
			return rc;
	return KOP(kb, download, X, dy->p, bytes);
}

int
ss_invert(const float *A, int n, float *Ainv)
{
	double *a = malloc(sizeof(double) * (size_t) n * (size_t) n * 2);
	int w = 2 * n;

	if (a == NULL)
		return NQ_ENOMEM;
	/* row-major augmented [A | I], n × 2n; A column-major in */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			a[i * w + j] = A[i + (size_t) n * j];
			a[i * w + n + j] = i == j;
		}
	for (int c = 0; c < n; c++) {
		int piv = c;
		for (int r = c + 1; r < n; r++)
			if (fabs(a[r * w + c]) > fabs(a[piv * w + c]))
				piv = r;
		if (fabs(a[piv * w + c]) < 1e-12) {
			free(a);
			return NQ_EBADDATA;
		}
		if (piv != c)
			for (int j = 0; j < w; j++) {
				double t = a[c * w + j];
				a[c * w + j] = a[piv * w + j];
				a[piv * w + j] = t;
			}
		double inv = 1 / a[c * w + c];
		for (int j = 0; j < w; j++)
			a[c * w + j] *= inv;
		for (int r = 0; r < n; r++) {
			double f = a[r * w + c];
			if (r == c || f == 0)
				continue;
			for (int j = 0; j < w; j++)
				a[r * w + j] -= f * a[c * w + j];
		}
	}
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			Ainv[i + (size_t) n * j] = (float) a[i * w + n + j];
	free(a);
	return 0;
}
