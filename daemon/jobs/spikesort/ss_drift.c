/*
 * ss_drift.c — rigid drift: per-batch depth × amplitude histograms of the
 * detected spikes, registered to their mean (iteratively refined, as
 * Kilosort 2.5 does), and the kriging matrix that resamples a batch at the
 * shifted channel positions.
 */
#include "ss_drift.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"

#define AMP_LO    4.0   /* whitened σ: the detection threshold's order */
#define AMP_HI    200.0 /* the top bin takes everything above */
#define MARGIN_UM 60.0
/*
 * Each spike enters its histogram blurred along depth (Gaussian of
 * SMOOTH_UM), and the lowest amplitude bin (threshold crossings of noise)
 * is left out: depths are centres of mass over whitened channels, which pile
 * up at the channel rows, and that comb and the noise do not move with the
 * tissue; they pinned every batch to shift 0 (SpikeInterface's ±20 µm
 * zigzag came out as ±1 µm) until blurred and dropped.
 */
#define SMOOTH_UM 10.0

int
ss_drift_hist_init(struct ss_drift_hist *d, const struct ss_probe *p, int nb,
                   double bin_um)
{
	double lo = INFINITY, hi = -INFINITY;

	memset(d, 0, sizeof(*d));
	for (int c = 0; c < p->n; c++) {
		lo = fmin(lo, p->y[c]);
		hi = fmax(hi, p->y[c]);
	}
	if (p->n == 0 || nb <= 0 || !(bin_um > 0))
		return NQ_EBADPARAM;
	d->nb = nb;
	d->bin_um = bin_um;
	d->y0 = lo - MARGIN_UM;
	d->ndepth = (int) ceil((hi - lo + 2 * MARGIN_UM) / bin_um) + 1;
	d->h = calloc((size_t) nb * d->ndepth * SS_DRIFT_NAMP, sizeof(float));
	d->hodd =
	        calloc((size_t) nb * d->ndepth * SS_DRIFT_NAMP, sizeof(float));
	return d->h && d->hodd ? 0 : NQ_ENOMEM;
}

void
ss_drift_hist_free(struct ss_drift_hist *d)
{
	free(d->h);
	free(d->hodd);
	free(d->nbr);
	memset(d, 0, sizeof(*d));
}

void
ss_drift_hist_add(struct ss_drift_hist *d, int b, const struct ss_probe *p,
                  const struct ss_spikes *sp, int nt0min)
{
	int nc = sp->nc, nt = sp->nt;
	float *h = d->h + (size_t) b * d->ndepth * SS_DRIFT_NAMP;
	float *ho = d->hodd + (size_t) b * d->ndepth * SS_DRIFT_NAMP;
	double la = log(AMP_LO), lr = log(AMP_HI) - la;
	double sg = SMOOTH_UM / d->bin_um;
	int R = (int) ceil(3 * sg);

	if (b < 0 || b >= d->nb || sp->n == 0)
		return;
	if (d->nbr == NULL || d->nbr_nc != nc) {
		/* once per pass, not per batch: C searches over C channels */
		free(d->nbr);
		d->nbr_nc = nc;
		d->nbr = malloc(sizeof(int32_t) * (size_t) p->n * nc);
		if (d->nbr == NULL || ss_probe_neighbours(p, nc, d->nbr) != 0) {
			free(d->nbr);
			d->nbr = NULL;
			return; /* this batch counts no spikes: no shift signal
			         */
		}
	}
	for (int64_t i = 0; i < sp->n; i++) {
		const float *w = sp->wave + (size_t) i * nc * nt;
		const int32_t *nb = d->nbr + (size_t) sp->chan[i] * nc;
		double sw = 0, sy = 0, amp = -w[nt0min], yb;
		int ba;
		for (int j = 0; j < nc; j++) {
			double a = -w[j * nt + nt0min];
			if (a <= 0)
				continue;
			sw += a * a;
			sy += a * a * p->y[nb[j]];
		}
		if (!(sw > 0) || !(amp > 0))
			continue;
		yb = (sy / sw - d->y0) / d->bin_um;
		ba = (int) floor((log(amp) - la) / lr * SS_DRIFT_NAMP);
		if (ba < 1 || yb < 0 || yb >= d->ndepth)
			continue;
		ba = ba >= SS_DRIFT_NAMP ? SS_DRIFT_NAMP - 1 : ba;
		for (int e = (int) floor(yb) - R; e <= (int) floor(yb) + R;
		     e++) {
			double z = (e + 0.5 - yb) / sg;
			float g = (float) exp(-0.5 * z * z);
			if (e < 0 || e >= d->ndepth)
				continue;
			h[(size_t) e * SS_DRIFT_NAMP + ba] += g;
			/* every other spike into the odd half, too */
			ho[(size_t) e * SS_DRIFT_NAMP + ba] +=
			        (float) (i % 2) * g;
		}
	}
}

/* Σ_{d,a} (hb − sb)(d + s, a) F(d, a) over depth bins [lo, hi) of F;
 * sb NULL: nothing subtracted */
static double
xcorr(const float *hb, const float *sb, const double *F, int nd, int lo, int hi,
      int s)
{
	double acc = 0;
	int d0 = s < 0 ? -s : 0, d1 = s > 0 ? nd - s : nd;

	d0 = d0 > lo ? d0 : lo;
	d1 = d1 < hi ? d1 : hi;
	for (int dd = d0; dd < d1; dd++) {
		const float *x = hb + (size_t) (dd + s) * SS_DRIFT_NAMP;
		const double *f = F + (size_t) dd * SS_DRIFT_NAMP;
		if (sb == NULL) {
			for (int a = 0; a < SS_DRIFT_NAMP; a++)
				acc += x[a] * f[a];
		} else {
			const float *y = sb + (size_t) (dd + s) * SS_DRIFT_NAMP;
			for (int a = 0; a < SS_DRIFT_NAMP; a++)
				acc += (x[a] - y[a]) * f[a];
		}
	}
	return acc;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return (x > y) - (x < y);
}

/* the median of x[0..n) (sorted in place) */
static double
median(double *x, int n)
{
	qsort(x, (size_t) n, sizeof(double), cmp_double);
	return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/*
 * The best shift of one batch (hb − sb) against F over [lo, hi), in bins,
 * sub-bin by a parabola through the peak; *si: the integer shift.
 */
static double
best_shift(const float *hb, const float *sb, const double *F, int nd, int lo,
           int hi, int S, int *si)
{
	double best = -1, sh, cm, c0, cp;
	int bs = 0;

	for (int s = -S; s <= S; s++) {
		double c = xcorr(hb, sb, F, nd, lo, hi, s);
		/* ties to the smaller |s| (an empty batch: 0) */
		if (c > best + 1e-12 * fabs(best) ||
		    (c >= best && abs(s) < abs(bs))) {
			best = c;
			bs = s;
		}
	}
	*si = bs;
	sh = bs;
	if (bs > -S && bs < S) {
		cm = xcorr(hb, sb, F, nd, lo, hi, bs - 1);
		c0 = best;
		cp = xcorr(hb, sb, F, nd, lo, hi, bs + 1);
		if (cm - 2 * c0 + cp < 0)
			sh += 0.5 * (cm - cp) / (cm - 2 * c0 + cp);
	}
	return sh;
}

/* F: the mean of the batches (H − Hs), each aligned by its shift si */
static void
make_template(const struct ss_drift_hist *d, const float *H, const float *Hs,
              const int *si, double *F)
{
	int nd = d->ndepth;
	size_t plane = (size_t) nd * SS_DRIFT_NAMP;

	memset(F, 0, sizeof(double) * plane);
	for (int b = 0; b < d->nb; b++) {
		const float *hb = H + (size_t) b * plane;
		const float *sb = Hs ? Hs + (size_t) b * plane : NULL;
		for (int dd = 0; dd < nd; dd++) {
			int src = dd + si[b];
			size_t o = (size_t) src * SS_DRIFT_NAMP;
			if (src < 0 || src >= nd)
				continue;
			for (int a = 0; a < SS_DRIFT_NAMP; a++)
				F[(size_t) dd * SS_DRIFT_NAMP + a] +=
				        hb[o + a] - (sb ? sb[o + a] : 0.0f);
		}
	}
}

/* x[0..nb) smoothed over batches (Gaussian of sigma batches; 0 = none),
 * tmp: nb scratch */
static void
smooth_batches(double *x, int nb, double sigma, double *tmp)
{
	if (!(sigma > 0))
		return;
	for (int b = 0; b < nb; b++) {
		double w = 0, s = 0;
		for (int e = 0; e < nb; e++) {
			double z = (e - b) / sigma, g;
			if (fabs(z) > 4)
				continue;
			g = exp(-0.5 * z * z);
			w += g;
			s += g * x[e];
		}
		tmp[b] = s / w;
	}
	memcpy(x, tmp, sizeof(double) * (size_t) nb);
}

/*
 * Registration of the histograms H − Hs (Hs NULL: none) to their
 * iteratively refined mean; sh (nb): µm, smoothed, centred on the median.
 * F (plane) and si (nb) are left holding the final template and integer
 * shifts. 0 or NQ_ENOMEM.
 */
static int
register_hist(const struct ss_drift_hist *d, const float *H, const float *Hs,
              double max_shift_um, double smooth, double *F, int *si,
              double *sh)
{
	int nb = d->nb, nd = d->ndepth,
	    S = (int) floor(max_shift_um / d->bin_um);
	size_t plane = (size_t) nd * SS_DRIFT_NAMP;
	double *tmp = malloc(sizeof(double) * (size_t) nb), med;

	if (tmp == NULL)
		return NQ_ENOMEM;
	if (S >= nd)
		S = nd - 1;
	memset(si, 0, sizeof(int) * (size_t) nb);
	for (int it = 0; it < 10; it++) {
		int moved = 0;
		make_template(d, H, Hs, si, F);
		for (int b = 0; b < nb; b++) {
			int bs;
			sh[b] = best_shift(H + (size_t) b * plane,
			                   Hs ? Hs + (size_t) b * plane : NULL,
			                   F, nd, 0, nd, S, &bs);
			moved |= bs != si[b];
			si[b] = bs;
		}
		if (!moved && it > 0)
			break;
	}
	smooth_batches(sh, nb, smooth, tmp);
	memcpy(tmp, sh, sizeof(double) * (size_t) nb);
	med = median(tmp, nb);
	for (int b = 0; b < nb; b++)
		sh[b] = (sh[b] - med) * d->bin_um;
	free(tmp);
	return 0;
}

int
ss_drift_estimate(const struct ss_drift_hist *d, double max_shift_um,
                  double smooth_batches_, float *shift_um)
{
	size_t plane = (size_t) d->ndepth * SS_DRIFT_NAMP;
	double *F = malloc(sizeof(double) * plane);
	double *sh = malloc(sizeof(double) * (size_t) d->nb);
	int *si = malloc(sizeof(int) * (size_t) d->nb);
	int rc = NQ_ENOMEM;

	if (!F || !sh || !si)
		goto out;
	if ((rc = register_hist(d, d->h, NULL, max_shift_um, smooth_batches_, F,
	                        si, sh)) != 0)
		goto out;
	for (int b = 0; b < d->nb; b++)
		shift_um[b] = (float) sh[b];
out:
	free(F);
	free(sh);
	free(si);
	return rc;
}

/* cc (nblk × (2S + 1)): each block's correlation of hb with F over shifts
 * −S..S, on its stretch of depth (blocks overlap by half a block on each
 * side) */
static void
block_corr(const float *hb, const double *F, int nd, int nblk, int S,
           double *cc)
{
	int NS = 2 * S + 1;

	for (int j = 0; j < nblk; j++) {
		int lo = (int) floor(nd * (j - 0.5) / (double) nblk),
		    hi = (int) ceil(nd * (j + 1.5) / (double) nblk);
		lo = lo < 0 ? 0 : lo;
		hi = hi > nd ? nd : hi;
		for (int s = -S; s <= S; s++)
			cc[(size_t) j * NS + s + S] =
			        xcorr(hb, NULL, F, nd, lo, hi, s);
	}
}

/* cs: cc smoothed across neighbouring blocks (Gaussian, σ = 0.5 block) */
static void
smooth_blocks(const double *cc, int nblk, int NS, double *cs)
{
	for (int j = 0; j < nblk; j++) {
		double w = 0, *o = cs + (size_t) j * NS;
		memset(o, 0, sizeof(double) * (size_t) NS);
		for (int e = 0; e < nblk; e++) {
			double z = (e - j) / 0.5, g = exp(-0.5 * z * z);
			const double *x = cc + (size_t) e * NS;
			if (fabs(z) > 4)
				continue;
			w += g;
			for (int s = 0; s < NS; s++)
				o[s] += g * x[s];
		}
		for (int s = 0; s < NS; s++)
			o[s] /= w;
	}
}

/* the shift (bins) at the peak of c (index s ↔ shift s − S; ties to the
 * smaller |shift|), sub-bin by a parabola through it */
static double
peak_shift(const double *c, int NS, int S)
{
	int bs = S;
	double v;

	for (int s = 0; s < NS; s++)
		if (c[s] > c[bs] + 1e-12 * fabs(c[bs]) ||
		    (c[s] >= c[bs] && abs(s - S) < abs(bs - S)))
			bs = s;
	v = bs - S;
	if (bs > 0 && bs < NS - 1) {
		double cm = c[bs - 1], c0 = c[bs], cp = c[bs + 1];
		if (cm - 2 * c0 + cp < 0)
			v += 0.5 * (cm - cp) / (cm - 2 * c0 + cp);
	}
	return v;
}

int
ss_drift_estimate_blocks(const struct ss_drift_hist *d, double max_shift_um,
                         double smooth_batches_, int nblk, float *shift_um,
                         float *blk_y)
{
	int nb = d->nb, nd = d->ndepth,
	    S = (int) floor(max_shift_um / d->bin_um), NS;
	size_t plane = (size_t) nd * SS_DRIFT_NAMP;
	double *F = malloc(sizeof(double) * plane);
	double *sh = malloc(sizeof(double) * (size_t) nb);
	double *cc = NULL, *cs = NULL, *col = NULL, *tmp = NULL;
	int *si = malloc(sizeof(int) * (size_t) nb);
	int rc = NQ_ENOMEM;

	if (S >= nd)
		S = nd - 1;
	NS = 2 * S + 1;
	cc = calloc((size_t) nblk * NS, sizeof(double));
	cs = malloc(sizeof(double) * (size_t) nblk * NS);
	col = malloc(sizeof(double) * (size_t) nb * nblk);
	tmp = malloc(sizeof(double) * (size_t) nb);
	if (!F || !sh || !si || !cc || !cs || !col || !tmp || nblk < 1)
		goto out;
	/* the rigid registration's template: every batch aligned to it */
	if ((rc = register_hist(d, d->h, NULL, max_shift_um, smooth_batches_, F,
	                        si, sh)) != 0)
		goto out;
	for (int j = 0; j < nblk; j++)
		blk_y[j] = (float) (d->y0 +
		                    d->bin_um * nd * (j + 0.5) / (double) nblk);
	for (int b = 0; b < nb; b++) {
		block_corr(d->h + (size_t) b * plane, F, nd, nblk, S, cc);
		smooth_blocks(cc, nblk, NS, cs);
		for (int j = 0; j < nblk; j++)
			col[(size_t) j * nb + b] =
			        peak_shift(cs + (size_t) j * NS, NS, S);
	}
	for (int j = 0; j < nblk; j++) {
		double *x = col + (size_t) j * nb, med;
		smooth_batches(x, nb, smooth_batches_, tmp);
		memcpy(tmp, x, sizeof(double) * (size_t) nb);
		med = median(tmp, nb);
		for (int b = 0; b < nb; b++)
			shift_um[(size_t) b * nblk + j] =
			        (float) ((x[b] - med) * d->bin_um);
	}
	rc = 0;
out:
	free(F);
	free(sh);
	free(si);
	free(cc);
	free(cs);
	free(col);
	free(tmp);
	return rc;
}

void
ss_drift_channel_shifts(const struct ss_probe *p, int nblk, const float *blk_y,
                        const float *shift_b, double *shift_c)
{
	for (int c = 0; c < p->n; c++) {
		double y = p->y[c];
		int j = 0;
		if (nblk == 1 || y <= blk_y[0]) {
			shift_c[c] = shift_b[0];
			continue;
		}
		if (y >= blk_y[nblk - 1]) {
			shift_c[c] = shift_b[nblk - 1];
			continue;
		}
		while (j + 1 < nblk - 1 && y > blk_y[j + 1])
			j++;
		double f = (y - blk_y[j]) / (blk_y[j + 1] - blk_y[j]);
		shift_c[c] = (1 - f) * shift_b[j] + f * shift_b[j + 1];
	}
}

int
ss_drift_noise(const struct ss_drift_hist *d, double max_shift_um,
               double smooth_batches_, float *half_diff_um, double *sigma_um)
{
	int nb = d->nb;
	size_t plane = (size_t) d->ndepth * SS_DRIFT_NAMP;
	double *F = malloc(sizeof(double) * plane);
	double *a = malloc(sizeof(double) * (size_t) nb);
	double *e = malloc(sizeof(double) * (size_t) nb);
	int *si = malloc(sizeof(int) * (size_t) nb);
	int rc = NQ_ENOMEM;
	double m;

	if (!F || !a || !e || !si)
		goto out;
	/* the odd spikes, then the even ones (all minus the odd) */
	if ((rc = register_hist(d, d->hodd, NULL, max_shift_um, smooth_batches_,
	                        F, si, a)) ||
	    (rc = register_hist(d, d->h, d->hodd, max_shift_um, smooth_batches_,
	                        F, si, e)))
		goto out;
	for (int b = 0; b < nb; b++) {
		e[b] -= a[b];
		if (half_diff_um != NULL)
			half_diff_um[b] = (float) fabs(e[b]);
	}
	m = median(e, nb);
	for (int b = 0; b < nb; b++)
		e[b] = fabs(e[b] - m);
	/* σ of a half's error = σ(difference) / √2, of the whole (twice the
	 * spikes) another / √2; σ from the MAD, robust to a batch whose half
	 * locked onto another peak */
	*sigma_um = 1.4826 * median(e, nb) / 2;
out:
	free(F);
	free(a);
	free(e);
	free(si);
	return rc;
}

static double
kern(const struct ss_probe *p, int i, double xi, double yi, int j, double s2)
{
	double dx = xi - p->x[j], dy = yi - p->y[j];

	if (p->shank[i] != p->shank[j])
		return 0;
	return exp(-(dx * dx + dy * dy) / (2 * s2));
}

/* Kinv = K⁻¹ (K C × C, lower triangle read, column-major) on the backend:
 * K = L Lᵀ (potrf), Y = L⁻¹ (trsm of the identity), Kinv = Yᵀ Y (syrk,
 * both triangles: exactly symmetric). K is overwritten (it holds the
 * identity on return). NQ_EBADDATA when K is not positive definite. */
static int
krig_inverse(const struct kern_backend *kb, int C, double *K, double *Kinv)
{
	size_t bytes = sizeof(double) * (size_t) C * (size_t) C;
	void *dL = NULL, *dY = NULL;
	int rc, info = 0;

	if ((rc = KOP(kb, alloc, bytes, &dL)) ||
	    (rc = KOP(kb, alloc, bytes, &dY)) ||
	    (rc = KOP(kb, upload, dL, K, bytes)) ||
	    (rc = KOP(kb, potrf, KERN_F64, C, dL, C, &info)))
		goto out;
	if (info != 0) {
		rc = NQ_EBADDATA;
		goto out;
	}
	memset(K, 0, bytes);
	for (int i = 0; i < C; i++)
		K[i + (size_t) C * i] = 1;
	if ((rc = KOP(kb, upload, dY, K, bytes)) ||
	    (rc = KOP(kb, trsm_lower, KERN_F64, C, C, dL, C, dY, C)) ||
	    (rc = KOP(kb, syrk, KERN_F64, KERN_T, C, C, 1.0, dY, C, 0.0, dL,
	              C)) ||
	    (rc = KOP(kb, download, Kinv, dL, bytes)))
		goto out;
out:
	KOP(kb, free, dL);
	KOP(kb, free, dY);
	return rc;
}

int
ss_krig_init(struct ss_krig *k, const struct kern_backend *kb,
             const struct ss_probe *p, double sigma_um)
{
	int C = p->n, rc = NQ_ENOMEM;
	double s2 = sigma_um * sigma_um;
	double *K = calloc((size_t) C * C + 1, sizeof(double));

	memset(k, 0, sizeof(*k));
	k->Kinv = malloc(sizeof(double) * ((size_t) C * C + 1));
	if (!K || !k->Kinv)
		goto out;
	k->C = C;
	k->sigma_um = sigma_um;
	/* the lower triangle of K + λI */
	for (int j = 0; j < C; j++)
		for (int i = j; i < C; i++)
			K[i + (size_t) C * j] =
			        kern(p, i, p->x[i], p->y[i], j, s2) +
			        (i == j ? 1e-2 : 0);
	rc = krig_inverse(kb, C, K, k->Kinv);
out:
	free(K);
	if (rc != 0)
		ss_krig_free(k);
	return rc;
}

void
ss_krig_free(struct ss_krig *k)
{
	free(k->Kinv);
	memset(k, 0, sizeof(*k));
}

int
ss_krig_matrix(const struct ss_krig *k, const struct ss_probe *p,
               const double *shift_um, float *A)
{
	int C = k->C;
	double s2 = k->sigma_um * k->sigma_um;
	double *row = malloc(sizeof(double) * (size_t) C);

	if (row == NULL)
		return NQ_ENOMEM;
	/* row t of A = k(target t, sources)ᵀ (K + λI)⁻¹; the kernel row is
	 * sparse (channels within a few sigma), Kinv is symmetric */
	for (int t = 0; t < C; t++) {
		double mx = 0;
		memset(row, 0, sizeof(double) * (size_t) C);
		for (int j = 0; j < C; j++) {
			double g = kern(p, t, p->x[t], p->y[t] + shift_um[t], j,
			                s2);
			const double *kj = k->Kinv + (size_t) C * j;
			if (g < 1e-9)
				continue;
			for (int i = 0; i < C; i++)
				row[i] += g * kj[i];
		}
		for (int i = 0; i < C; i++)
			mx = fmax(mx, fabs(row[i]));
		for (int i = 0; i < C; i++)
			A[t + (size_t) C * i] = fabs(row[i]) < 1e-4 * mx
			                                ? 0.0f
			                                : (float) row[i];
	}
	free(row);
	return 0;
}

int
ss_drift_batch_matrix(const struct ss_krig *k, const struct ss_probe *p,
                      const float *M, const double *shift_um, float *A,
                      float *W)
{
	int C = k->C, rc = ss_krig_matrix(k, p, shift_um, A);

	if (rc != 0)
		return rc;
	memset(W, 0, sizeof(float) * (size_t) C * C);
	/* resampled first, then whitened: W = M A, W[:, j] = Σ_m M[:, m]
	 * A[m, j] over the nonzeros of A's column (see the header) */
	for (int j = 0; j < C; j++) {
		float *w = W + (size_t) C * j;
		for (int m = 0; m < C; m++) {
			float amj = A[m + (size_t) C * j];
			const float *mm = M + (size_t) C * m;
			if (amj == 0)
				continue;
			for (int i = 0; i < C; i++)
				w[i] += mm[i] * amj;
		}
	}
	return 0;
}
