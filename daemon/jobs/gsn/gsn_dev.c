/*
 * gsn_dev.c — device buffers in the run's precision, host staging in
 * double, progress slices.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gsn_internal.h"
#include "nq_error.h"

int
gsn_dalloc_dt(struct gsn_dev *g, enum kern_dtype dt, int64_t count, void **p)
{
	*p = NULL;
	if (count < 0)
		return NQ_EINTERNAL;
	/* never ask for 0 bytes: a NULL "matrix" trips the ops' checks */
	return KOP(g->kb, alloc,
	           (size_t) (count > 0 ? count : 1) * kern_dtype_size(dt), p);
}

int
gsn_dalloc(struct gsn_dev *g, int64_t count, void **p)
{
	return gsn_dalloc_dt(g, g->dt, count, p);
}

void
gsn_dfree(struct gsn_dev *g, void **p)
{
	if (*p != NULL)
		KOP(g->kb, free, *p);
	*p = NULL;
}

/* Host staging for float32 goes through chunks so a large upload does not
 * need a second full-size host copy. */
#define STAGE_ELEMS ((int64_t) 1 << 20)

int
gsn_up(struct gsn_dev *g, void *dst, const double *h, int64_t count)
{
	float *buf;
	int rc = 0;

	if (count <= 0)
		return 0;
	if (g->dt == KERN_F64)
		return KOP(g->kb, upload, dst, h, (size_t) count * 8);
	buf = malloc((size_t) (count < STAGE_ELEMS ? count : STAGE_ELEMS) *
	             sizeof(float));
	if (buf == NULL)
		return NQ_ENOMEM;
	for (int64_t off = 0; off < count && rc == 0; off += STAGE_ELEMS) {
		int64_t k =
		        count - off < STAGE_ELEMS ? count - off : STAGE_ELEMS;
		for (int64_t i = 0; i < k; i++)
			buf[i] = (float) h[off + i];
		rc = KOP(g->kb, upload, (float *) dst + off, buf,
		         (size_t) k * sizeof(float));
	}
	free(buf);
	return rc;
}

int
gsn_down(struct gsn_dev *g, double *h, const void *src, int64_t count)
{
	float *buf;
	int rc = 0;

	if (count <= 0)
		return 0;
	if (g->dt == KERN_F64)
		return KOP(g->kb, download, h, src, (size_t) count * 8);
	buf = malloc((size_t) (count < STAGE_ELEMS ? count : STAGE_ELEMS) *
	             sizeof(float));
	if (buf == NULL)
		return NQ_ENOMEM;
	for (int64_t off = 0; off < count && rc == 0; off += STAGE_ELEMS) {
		int64_t k =
		        count - off < STAGE_ELEMS ? count - off : STAGE_ELEMS;
		rc = KOP(g->kb, download, buf, (const float *) src + off,
		         (size_t) k * sizeof(float));
		for (int64_t i = 0; rc == 0 && i < k; i++)
			h[off + i] = buf[i];
	}
	free(buf);
	return rc;
}

int
gsn_dcopy(struct gsn_dev *g, void *dst, const void *src, int64_t count)
{
	if (count <= 0)
		return 0;
	return KOP(g->kb, copy, dst, src, (size_t) count * g->es);
}

int
gsn_down_matrix(struct gsn_dev *g, double *h, const void *src, int64_t n)
{
	int rc = gsn_down(g, h, src, n * n);

	if (rc != 0)
		return rc;
	/* column-major → C order; the matrices are symmetric up to rounding
	 * of the ops, so transpose rather than assume it */
	/* in 64×64 tiles: a row-by-row swap strides through all of h */
	for (int64_t ib = 0; ib < n; ib += 64)
		for (int64_t jb = ib; jb < n; jb += 64) {
			int64_t ie = ib + 64 < n ? ib + 64 : n;
			int64_t je = jb + 64 < n ? jb + 64 : n;

			for (int64_t i = ib; i < ie; i++)
				for (int64_t j = jb > i + 1 ? jb : i + 1;
				     j < je; j++) {
					double x = h[i + j * n];
					h[i + j * n] = h[j + i * n];
					h[j + i * n] = x;
				}
		}
	return 0;
}

void
gsn_stage_report(const struct gsn_stage *st, double within)
{
	if (st == NULL || st->prog == NULL || st->prog->fn == NULL)
		return;
	if (within < 0)
		within = 0;
	if (within > 1)
		within = 1;
	st->prog->fn(st->prog->arg, st->f0 + (st->f1 - st->f0) * within,
	             st->name);
}

struct gsn_stage
gsn_substage(const struct gsn_stage *st, double a, double b)
{
	struct gsn_stage sub = {NULL, NULL, 0, 1};

	if (st != NULL) {
		sub = *st;
		sub.f0 = st->f0 + (st->f1 - st->f0) * a;
		sub.f1 = st->f0 + (st->f1 - st->f0) * b;
	}
	return sub;
}

int
gsn_stage_canceled(const struct gsn_stage *st, char *msg, size_t msglen)
{
	if (st == NULL || st->prog == NULL || st->prog->canceled == NULL ||
	    st->prog->canceled(st->prog->arg) == 0)
		return 0;
	snprintf(msg, msglen, "canceled");
	return NQ_ECANCELED;
}
