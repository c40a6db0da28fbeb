/*
 * ss_whiten.c — Kilosort's local ZCA whitening: for every channel, the
 * covariance of its nearest nrange channels is eigendecomposed (kern syevd)
 * and the channel's row of E·diag(1/√(d+ε))·Eᵀ kept. Applying it is one
 * C × C by C × T gemm per batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nq_clones.h"
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

/* ---- host whitening (cpu backend: "device" memory is host memory)
 *
 * One gemm per 32-row band through the kern interface costs, per batch,
 * an upload and a download of the whole batch, OpenBLAS packing each
 * band's 64 × T panel, and its threads spinning between the calls. On the
 * host the batch is instead swept once in tiles of WT samples: for each
 * block of WR rows, the block's nonzero columns (packed, WR floats per
 * column) times each sample, into a tile buffer copied back over X. Each
 * output is one sum over the block's columns in ascending order with
 * separate multiplies and adds (ISO C: no contraction), so every clone
 * gives the same bits. */
#define WR 16 /* rows per block: one AVX-512 vector */
#define WT 64 /* samples per tile */

typedef float vrow __attribute__((vector_size(WR * sizeof(float))));

struct hblock {
	int r0, r1, c0, c1;
	const vrow *m; /* (c1 - c0) columns of WR rows */
};

/* Y (ldy) = the blocks' rows for samples [0, n) of X (C × n, ld C). */
NQ_CLONES static void
host_band_tile(const struct hblock *bk, int nbk, int C, const float *X, int n,
               float *Y, int ldy)
{
	for (int i = 0; i < nbk; i++) {
		const struct hblock *b = &bk[i];
		const vrow *m = b->m - b->c0;
		int t = 0;
		for (; t + 4 <= n; t += 4) {
			const float *x0 = X + (size_t) t * C, *x1 = x0 + C;
			const float *x2 = x1 + C, *x3 = x2 + C;
			vrow a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
			for (int c = b->c0; c < b->c1; c++) {
				vrow w = m[c];
				a0 += w * x0[c];
				a1 += w * x1[c];
				a2 += w * x2[c];
				a3 += w * x3[c];
			}
			memcpy(Y + (size_t) t * ldy + b->r0, &a0, sizeof(a0));
			memcpy(Y + (size_t) (t + 1) * ldy + b->r0, &a1,
			       sizeof(a1));
			memcpy(Y + (size_t) (t + 2) * ldy + b->r0, &a2,
			       sizeof(a2));
			memcpy(Y + (size_t) (t + 3) * ldy + b->r0, &a3,
			       sizeof(a3));
		}
		for (; t < n; t++) {
			const float *x0 = X + (size_t) t * C;
			vrow a0 = {0};
			for (int c = b->c0; c < b->c1; c++)
				a0 += m[c] * x0[c];
			memcpy(Y + (size_t) t * ldy + b->r0, &a0, sizeof(a0));
		}
	}
}

/* X = M X in place on the host; M (C × C column-major) is host memory. */
static int
host_apply_banded(const float *M, int C, float *X, int64_t T)
{
	int nbk = (C + WR - 1) / WR, ldy = nbk * WR, rc = NQ_ENOMEM;
	struct ss_band *band = malloc(sizeof(*band) * ((size_t) nbk + 1));
	struct hblock *bk = malloc(sizeof(*bk) * ((size_t) nbk + 1));
	size_t ncol = 0, off = 0;
	vrow *pack = NULL;
	float *Y = NULL;

	if (C <= 0 || T <= 0) {
		rc = 0;
		goto out;
	}
	if (band == NULL || bk == NULL)
		goto out;
	nbk = ss_band_blocks(M, C, WR, band);
	for (int i = 0; i < nbk; i++)
		ncol += (size_t) (band[i].c1 - band[i].c0);
	pack = aligned_alloc(sizeof(vrow), sizeof(vrow) * (ncol + 1));
	/* one tile of Y per thread: the tiles are independent */
	int nth = kern_host_threads(64);
	Y = aligned_alloc(sizeof(vrow),
	                  sizeof(float) * (size_t) ldy * WT * (size_t) nth);
	if (pack == NULL || Y == NULL)
		goto out;
	for (int i = 0; i < nbk; i++) {
		struct ss_band *b = &band[i];
		bk[i] = (struct hblock){b->r0, b->r1, b->c0, b->c1, pack + off};
		for (int c = b->c0; c < b->c1; c++, off++) {
			float col[WR] = {0};
			for (int r = b->r0; r < b->r1; r++)
				col[r - b->r0] = M[r + (size_t) C * c];
			memcpy(&pack[off], col, sizeof(col));
		}
	}
#ifdef _OPENMP
#pragma omp parallel for schedule(static) \
        num_threads(nth) if (nth > 1 && T >= 8 * WT)
#endif
	for (int64_t t0 = 0; t0 < T; t0 += WT) {
		int n = T - t0 < WT ? (int) (T - t0) : WT, tid = 0;
#ifdef _OPENMP
		tid = omp_get_thread_num();
#endif
		float *Xt = X + (size_t) t0 * C;
		float *Yt = Y + (size_t) ldy * WT * (size_t) tid;
		host_band_tile(bk, nbk, C, Xt, n, Yt, ldy);
		for (int t = 0; t < n; t++)
			memcpy(Xt + (size_t) t * C, Yt + (size_t) t * ldy,
			       sizeof(float) * (size_t) C);
	}
	rc = 0;
out:
	free(band);
	free(bk);
	free(pack);
	free(Y);
	return rc;
}

int
ss_apply_banded(const struct kern_backend *kb, const void *dM, int C,
                const struct ss_band *b, int nb, float *X, int64_t T,
                struct ss_kbuf *dx, struct ss_kbuf *dy)
{
	size_t bytes = sizeof(float) * (size_t) C * (size_t) T;
	int rc;

	if (kern_mem_is_host(kb)) /* dM is readable here: no copies */
		return host_apply_banded(dM, C, X, T);
	if ((rc = ss_kbuf_ensure(kb, dx, bytes)) != 0 ||
	    (rc = ss_kbuf_ensure(kb, dy, bytes)) != 0 ||
	    (rc = KOP(kb, upload, dx->p, X, bytes)) != 0 ||
	    (rc = ss_apply_banded_dev(kb, dM, C, b, nb, dx->p, dy->p, T)) != 0)
		return rc;
	return KOP(kb, download, X, dy->p, bytes);
}

int
ss_apply_banded_dev(const struct kern_backend *kb, const void *dM, int C,
                    const struct ss_band *b, int nb, const float *dX, float *dY,
                    int64_t T)
{
	int rc;

	for (int i = 0; i < nb; i++)
		if ((rc = KOP(kb, gemm, KERN_F32, KERN_N, KERN_N,
		              b[i].r1 - b[i].r0, T, b[i].c1 - b[i].c0, 1.0,
		              (const float *) dM + b[i].r0 +
		                      (size_t) C * b[i].c0,
		              C, dX + b[i].c0, C, 0.0, dY + b[i].r0, C)) != 0)
			return rc;
	return 0;
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
