/*
 * kern_cpu_batch.c — the cpu backend's ops of spikesort's batch path
 * (kern.h: filter_car, peaks_above, sub_spikes), on host memory.
 *
 * filter_car is the one implementation of the per-batch preprocessing:
 * channel means, median common reference, and a 3rd-order Butterworth
 * high-pass (a first- and a second-order section) run forward and backward
 * (zero phase), as Kilosort does before whitening, over the host's
 * OpenMP threads. Moved here from spikesort's ss_filter.c, which keeps the
 * filter design and calls kern_host_filter_car().
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kern.h"
#include "kern_impl.h"
#include "nq_clones.h"
#include "nq_error.h"

/* The hot loops below run across channels, elementwise, in double; gcc
 * builds them for AVX-512, AVX2 and the x86-64 baseline and picks one at
 * load time (NQ_CLONES). ISO C mode (-std=c11) keeps -ffp-contract=off, so no
 * version fuses a multiply-add and all give bit-identical results. */

/* The two sections, normalised with a0 = 1 (kern.h filter_car's h_sos). */
struct kern_sos {
	double b1[2], a1[2];
	double b2[3], a2[3];
};

static void
sos_from(const double *h, struct kern_sos *f)
{
	memcpy(f->b1, h, sizeof(f->b1));
	memcpy(f->a1, h + 2, sizeof(f->a1));
	memcpy(f->b2, h + 4, sizeof(f->b2));
	memcpy(f->a2, h + 7, sizeof(f->a2));
}

/* #{i : v[i] < x}: a compare and an add per value, vectorised. */
NQ_CLONE_INLINE int
count_below(const float *v, int n, float x)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += v[i] < x;
	return c;
}

/* The counts of v below a <= b <= c, in one pass. */
NQ_CLONE_INLINE void
count_below3(const float *v, int n, float a, float b, float c, int *ca, int *cb,
             int *cc)
{
	int x = 0, y = 0, z = 0;

	for (int i = 0; i < n; i++) {
		x += v[i] < a;
		y += v[i] < b;
		z += v[i] < c;
	}
	*ca = x;
	*cb = y;
	*cc = z;
}

/* Order-preserving integer key of a float (-0 as +0), and back. */
NQ_CLONE_INLINE int32_t
fkey(float x)
{
	int32_t k;

	x += 0.0f; /* -0 -> +0 */
	memcpy(&k, &x, sizeof(k));
	return k ^ ((k >> 31) & 0x7fffffff);
}

NQ_CLONE_INLINE float
funkey(int32_t k)
{
	float x;

	k ^= (k >> 31) & 0x7fffffff;
	memcpy(&x, &k, sizeof(x));
	return x;
}

/* Smallest and largest of the values in [lo, hi) (there must be some): an
 * integer min/max over keys, written with masks so that it vectorises. */
NQ_CLONE_INLINE void
min_max_in(const float *v, int n, float lo, float hi, float *mn, float *mx)
{
	int32_t a = INT32_MAX, b = INT32_MIN, klo = fkey(lo), khi = fkey(hi);

	for (int i = 0; i < n; i++) {
		int32_t k = fkey(v[i]);
		int32_t in = -(int32_t) ((k >= klo) & (k < khi)); /* 0 or ~0 */
		int32_t ka = (k & in) | (INT32_MAX & ~in);
		int32_t kb = (k & in) | (INT32_MIN & ~in);
		a = ka < a ? ka : a;
		b = kb > b ? kb : b;
	}
	*mn = funkey(a);
	*mx = funkey(b);
}

/* Largest value in [lo, mid) and smallest in [mid, hi) (both exist), in
 * one pass. */
NQ_CLONE_INLINE void
max_min_split(const float *v, int n, float lo, float mid, float hi,
              float *below, float *above)
{
	int32_t a = INT32_MIN, b = INT32_MAX, klo = fkey(lo), km = fkey(mid);
	int32_t khi = fkey(hi);

	for (int i = 0; i < n; i++) {
		int32_t k = fkey(v[i]);
		int32_t l = -(int32_t) ((k >= klo) & (k < km));
		int32_t u = -(int32_t) ((k >= km) & (k < khi));
		int32_t ka = (k & l) | (INT32_MIN & ~l);
		int32_t kb = (k & u) | (INT32_MAX & ~u);
		a = ka > a ? ka : a;
		b = kb < b ? kb : b;
	}
	*below = funkey(a);
	*above = funkey(b);
}

/* Median of v[0..n) (n >= 3; the mean of the two middle values when n is
 * even), exact for values that are not NaN, without sorting or scratch.
 * The median moves little from one sample to the next, so a window
 * [guess - h, guess + h) is checked (counts below its ends and the guess,
 * one pass) to hold the middle ranks, and widened when not; then a pivot
 * placed by interpolating the ranks (every third step: the midpoint)
 * narrows it until the pivot falls between the two middle values or at
 * most two values are left, which a min/max pass gives. Each step is one
 * compare-and-count pass over v with no data-dependent branch (~4 passes
 * on 384 channels of noise; a quickselect of the gathered window
 * mispredicted its way to 5x the time). *half: the window's half-width,
 * adapted from call to call. */
NQ_CLONE_INLINE float
median_near(const float *v, int n, float guess, float *half)
{
	int k2 = n / 2, k1 = n % 2 == 0 ? k2 - 1 : k2, bl, bm, bh, it;
	int split = 0; /* n even and k2 values below mid */
	float h = *half > 0 ? *half : 1, lo, hi, mid, x1, x2, med;

	for (it = 0;; it++) {
		lo = guess - h;
		hi = guess + h;
		if (it == 16 || !(lo > -FLT_MAX) || !(hi < FLT_MAX)) {
			lo = -HUGE_VALF;
			hi = HUGE_VALF;
			bl = 0;
			bh = count_below(v, n, hi);
			if (bh <= k2)
				return hi; /* mostly +inf */
			break;
		}
		count_below3(v, n, lo, guess, hi, &bl, &bm, &bh);
		if (bl <= k1 && bh > k2) {
			/* the guess splits the window too */
			if (bm <= k1) {
				lo = guess;
				bl = bm;
			} else if (bm > k2) {
				hi = guess;
				bh = bm;
			} else {
				mid = guess;
				split = 1;
			}
			break;
		}
		h *= 4;
	}
	for (int step = 0; !split && bh - bl > 2; step++) {
		/* aim at the boundary above rank k1 (n even: between the two
		 * middle values; odd: either side of the middle one) */
		int tc = n % 2 == 0 || bl < k1 ? k2 : k2 + 1;
		float f = (float) (tc - bl) / (float) (bh - bl);
		int64_t kmid = ((int64_t) fkey(lo) + fkey(hi)) / 2;
		if (!isfinite(hi - lo)) /* a window over the whole line */
			mid = funkey((int32_t) kmid);
		else if (step % 3 == 2)
			mid = lo + (hi - lo) / 2;
		else
			mid = lo + (hi - lo) * f;
		if (!(mid > lo && mid < hi))
			mid = lo + (hi - lo) / 2;
		/* [lo, hi) one float wide: every value in it is lo */
		if (!(mid > lo && mid < hi))
			break;
		int c = count_below(v, n, mid);
		if (c <= k1) {
			lo = mid;
			bl = c;
		} else if (c > k2) {
			hi = mid;
			bh = c;
		} else {
			split = 1;
		}
	}
	if (split) {
		/* rank k1 is the largest value below mid, rank k2 the
		 * smallest from mid on */
		max_min_split(v, n, lo, mid, hi, &x1, &x2);
		med = (x2 + x1) / 2;
	} else if (bh - bl > 2) {
		med = (lo + lo) / 2;
	} else {
		/* one or two values left, of ranks bl and bh - 1 */
		min_max_in(v, n, lo, hi, &x1, &x2);
		med = ((k2 == bl ? x1 : x2) + (k1 == bl ? x1 : x2)) / 2;
	}
	/* a hit narrows the next window a little; a miss sizes it on the
	 * jump just seen */
	if (it == 0)
		*half = h * 0.9f;
	else
		*half = isfinite(2 * fabsf(med - guess)) && med != guess
		                ? 2 * fabsf(med - guess)
		                : 1;
	return med;
}

/* Rows ahead to prefetch in the sample sweeps: each row gets ~100 ns of
 * arithmetic, too little for the hardware prefetcher to run ahead of on a
 * 93 MB batch (measured -15 % time on 384 channels). */
#define PF_ROWS 8

NQ_CLONE_INLINE void
prefetch_row(const float *x, int C)
{
	for (int k = 0; k < C; k += 64 / (int) sizeof(float))
		__builtin_prefetch(x + k, 1);
}

/* One step of both sections for every channel: x (C floats) in, filtered
 * out, state st = z1 | s1 | s2 (3 C doubles). sub is subtracted from x
 * first (in float, as a separate reference pass would). */
NQ_CLONE_INLINE void
sections_step(const struct kern_sos *f, float *restrict x, int C, float sub,
              double *restrict z1, double *restrict s1, double *restrict s2)
{
	const double b10 = f->b1[0], b11 = f->b1[1], a11 = f->a1[1];
	const double b20 = f->b2[0], b21 = f->b2[1], b22 = f->b2[2];
	const double a21 = f->a2[1], a22 = f->a2[2];

	for (int c = 0; c < C; c++) {
		double xi = (float) (x[c] - sub);
		double y = b10 * xi + z1[c];
		z1[c] = b11 * xi - a11 * y;
		double u = b20 * y + s1[c];
		s1[c] = b21 * y - a21 * u + s2[c];
		s2[c] = b22 * y - a22 * u;
		x[c] = (float) u;
	}
}

/* Steady state of a constant input x0 per channel (offsets give no
 * transient). */
NQ_CLONE_INLINE void
sections_init(const struct kern_sos *f, const float *x0, int C, float sub,
              double *z1, double *s1, double *s2)
{
	for (int c = 0; c < C; c++) {
		z1[c] = -f->b1[0] * (float) (x0[c] - sub);
		s1[c] = 0;
		s2[c] = 0;
	}
}

/* Both sections over all channels at once, one sample after the other, so
 * the inner loop runs over contiguous channels. dir = +1 or -1. */
NQ_CLONES static void
run_sections_batch(const struct kern_sos *f, float *X, int C, int64_t T,
                   int dir, double *st)
{
	double *z1 = st, *s1 = st + C, *s2 = st + (size_t) 2 * C;

	sections_init(f, X + (size_t) (dir > 0 ? 0 : T - 1) * C, C, 0, z1, s1,
	              s2);
	for (int64_t i = 0; i < T; i++) {
		int64_t ahead = dir > 0 ? i + PF_ROWS : T - 1 - i - PF_ROWS;
		if (i + PF_ROWS < T)
			prefetch_row(X + (size_t) ahead * C, C);
		sections_step(f, X + (size_t) (dir > 0 ? i : T - 1 - i) * C, C,
		              0, z1, s1, s2);
	}
}

static void
filtfilt(const struct kern_sos *f, float *X, int C, int64_t T, double *work)
{
	run_sections_batch(f, X, C, T, +1, work);
	run_sections_batch(f, X, C, T, -1, work);
}

/* Channels [c0, c1): mean[c] = Σ_t X[t C + c] / T (summed in double, in
 * sample order, into sum[c0, c1)). */
NQ_CLONES static void
channel_means(const float *X, int C, int64_t T, int c0, int c1, double *sum,
              float *mean)
{
	int n = c1 - c0;

	memset(sum + c0, 0, sizeof(double) * (size_t) n);
	for (int64_t t = 0; t < T; t++) {
		const float *x = X + (size_t) t * C + c0;
		double *w = sum + c0;
		for (int c = 0; c < n; c++)
			w[c] += x[c];
	}
	for (int c = c0; c < c1; c++)
		mean[c] = (float) (sum[c] / (double) T);
}

/* Samples [t0, t1): med[t] = the median of X's row t less the channel
 * means (row: C floats of scratch); X is not changed. median_near is
 * exact whatever its guess, so the rows may be shared out in any way. */
NQ_CLONES static void
row_medians(const float *X, int C, int64_t t0, int64_t t1, const float *mean,
            float *med, float *row)
{
	float guess = 0, half = 0;

	for (int64_t t = t0; t < t1; t++) {
		const float *x = X + (size_t) t * C;
		if (t + PF_ROWS < t1)
			prefetch_row(x + (size_t) PF_ROWS * C, C);
		for (int c = 0; c < C; c++)
			row[c] = x[c] - mean[c];
		med[t] = median_near(row, C, guess, &half);
		guess = med[t];
	}
}

/* Channels [c0, c1) of every sample: mean and reference (med[t], or none
 * when med is NULL) removed, in float, in the forward pass of the filter,
 * then the backward pass; st: the sections' state (z1 | s1 | s2, 3 C
 * doubles), of these channels only. Every channel is filtered on its own,
 * so any split of the channels gives the same bits. */
NQ_CLONES static void
filter_channels(const struct kern_sos *f, float *X, int C, int64_t T, int c0,
                int c1, const float *mean, const float *med, double *st)
{
	double *z1 = st + c0, *s1 = st + C + c0, *s2 = st + (size_t) 2 * C + c0;
	int n = c1 - c0;

	for (int64_t t = 0; t < T; t++) {
		float *x = X + (size_t) t * C + c0, sub = med ? med[t] : 0;
		if (t + PF_ROWS < T)
			prefetch_row(x + (size_t) PF_ROWS * C, n);
		for (int c = 0; c < n; c++)
			x[c] -= mean[c0 + c];
		if (t == 0)
			sections_init(f, x, n, sub, z1, s1, s2);
		sections_step(f, x, n, sub, z1, s1, s2);
	}
	sections_init(f, X + (size_t) (T - 1) * C + c0, n, 0, z1, s1, s2);
	for (int64_t i = T - 1; i >= 0; i--) {
		if (i - PF_ROWS >= 0)
			prefetch_row(X + (size_t) (i - PF_ROWS) * C + c0, n);
		sections_step(f, X + (size_t) i * C + c0, n, 0, z1, s1, s2);
	}
}

/* Threads for a C × T batch: the host's (OpenMP's), but one for batches
 * too small to share (a team costs microseconds). */
static int
filter_threads(int C, int64_t T)
{
	return (double) C * (double) T < 65536.0 ? 1 : kern_host_threads(64);
}

/* Channel range i of n of rows at X: about C / n channels, split where a
 * cache line of the first row starts (a line across two threads' ranges
 * would be written by both at every sample). */
static int
line_split(const float *X, int C, int i, int n)
{
	/* channels before X's first line boundary */
	int lead = (int) ((64 - (uintptr_t) X % 64) % 64 / sizeof(float));
	int64_t at = (int64_t) C * i / n - lead;

	if (i <= 0)
		return 0;
	if (i >= n)
		return C;
	at = lead + 16 * ((at + 8) / 16);
	return at < 0 ? 0 : at > C ? C : (int) at;
}

/* Channel means, then (car) each sample's median, then each channel's
 * filter: three sweeps over the batch, the first and last shared out by
 * channels, the medians (which need every channel of a sample) by
 * samples, over the host's threads. Each thread sums, filters and ranks
 * in its own cache lines (a state shared with a neighbour's channels in
 * one line made the filter sweep 4x slower on two threads than on one). The
 * same bits for any number of threads. NQ_ENOMEM when the scratch cannot be
 * had. */
static int
filter_car(const struct kern_sos *f, float *X, int C, int64_t T, int car)
{
	int nth = filter_threads(C, T);
	/* per thread: the sections' state (3 C doubles, the sums in its
	 * first C), a row (C floats); whole cache lines */
	size_t per = ((sizeof(double) * 3 + sizeof(float)) * (size_t) C + 63) /
	             64 * 64;
	char *scr = aligned_alloc(64, per * (size_t) nth);
	float *mean = malloc(sizeof(float) * (size_t) C);
	float *med = NULL;

	car = car && C >= 3;
	if (car)
		med = malloc(sizeof(float) * (size_t) T);
	if (scr == NULL || mean == NULL || (car && med == NULL)) {
		free(scr);
		free(mean);
		free(med);
		return NQ_ENOMEM;
	}
#ifdef _OPENMP
#pragma omp parallel num_threads(nth) if (nth > 1)
#endif
	{
		int tid = 0, n = 1, c0, c1;
#ifdef _OPENMP
		tid = omp_get_thread_num();
		n = omp_get_num_threads();
#endif
		double *st = (double *) (void *) (scr + per * (size_t) tid);
		float *row = (float *) (void *) (st + (size_t) 3 * C);
		c0 = line_split(X, C, tid, n);
		c1 = line_split(X, C, tid + 1, n);
		if (c1 > c0)
			channel_means(X, C, T, c0, c1, st, mean);
#ifdef _OPENMP
#pragma omp barrier
#endif
		if (car) {
			int64_t t0 = T * tid / n, t1 = T * (tid + 1) / n;
			row_medians(X, C, t0, t1, mean, med, row);
#ifdef _OPENMP
#pragma omp barrier
#endif
		}
		if (c1 > c0)
			filter_channels(f, X, C, T, c0, c1, mean, med, st);
	}
	free(scr);
	free(mean);
	free(med);
	return 0;
}

int
kern_host_filter_car(const double *h_sos, float *X, int C, int64_t T, int car)
{
	struct kern_sos f;

	if (C <= 0 || T <= 0)
		return 0;
	sos_from(h_sos, &f);
	return filter_car(&f, X, C, T, car);
}

void
kern_host_filtfilt(const double *h_sos, float *X, int C, int64_t T,
                   double *work)
{
	struct kern_sos f;

	if (C <= 0 || T <= 0)
		return;
	sos_from(h_sos, &f);
	filtfilt(&f, X, C, T, work);
}

int
kern_cpu_filter_car(void *ctx, int64_t C, int64_t T, float *X,
                    const double *h_sos, int car)
{
	(void) ctx;
	return kern_host_filter_car(h_sos, X, (int) C, T, car);
}

/* Is (t, c) a strict minimum of its neighbourhood (kern.h peaks_above)? */
static int
is_peak(int64_t C, int64_t T, const float *Y, int64_t t, int64_t c, int64_t w,
        int64_t nc, const int32_t *nb)
{
	float v = Y[c + C * t];
	int64_t u0 = t - w < 0 ? 0 : t - w, u1 = t + w >= T ? T - 1 : t + w;

	for (int64_t u = u0; u <= u1; u++) {
		const float *cu = Y + u * C;
		for (int64_t j = 0; j < nc; j++) {
			int64_t cj = nb[j];
			float x = cu[cj];
			if (x < v || (x == v && (u < t || (u == t && cj < c))))
				return 0;
		}
	}
	return 1;
}

int
kern_cpu_peaks_above(void *ctx, int64_t C, int64_t T, const float *Y, double th,
                     int64_t lo, int64_t hi, int64_t w, int64_t nc,
                     const int32_t *nbr, int64_t cap, int64_t *h_t,
                     int32_t *h_c, float *h_amp, int64_t *n)
{
	float thf = (float) th;
	int64_t k = 0;

	for (int64_t t = lo; t < hi; t++) {
		const float *col = Y + C * t;
		for (int64_t c = 0; c < C; c++) {
			if (!(col[c] < thf) ||
			    !is_peak(C, T, Y, t, c, w, nc, nbr + nc * c))
				continue;
			if (k < cap) {
				h_t[k] = t;
				h_c[k] = (int32_t) c;
				h_amp[k] = col[c];
			}
			k++;
		}
	}
	*n = k;
	/* what the cuda backend copies back: the count, and the list when
	 * it fits */
	kern_cpu_count_d2h(ctx, 8 + (k <= cap ? 16 * (uint64_t) k : 0));
	return 0;
}

int
kern_cpu_sub_spikes(void *ctx, int64_t C, int64_t T, float *R, int64_t nt,
                    int64_t K, const float *W, const int32_t *win, int64_t n,
                    const int32_t *tk, const float *a)
{
	(void) ctx;
	(void) T;
	(void) K;
	for (int64_t i = 0; i < n; i++) {
		int64_t t = tk[2 * i], k = tk[2 * i + 1];
		int64_t c0 = win[2 * k], c1 = win[2 * k + 1];
		const float *Wk = W + C * nt * k;
		float *Rt = R + C * t, ai = a[i];
		for (int64_t tau = 0; tau < nt; tau++)
			for (int64_t c = c0; c < c1; c++)
				Rt[c + C * tau] -= ai * Wk[c + C * tau];
	}
	return 0;
}

int
kern_cpu_snippets(void *ctx, int64_t C, int64_t T, const float *Y, int64_t nc,
                  const int32_t *nbr, int64_t nt, int64_t n, const int32_t *tc,
                  float *S)
{
	(void) ctx;
	(void) T;
	for (int64_t i = 0; i < n; i++) {
		const float *Yt = Y + C * tc[2 * i];
		const int32_t *nb = nbr + nc * tc[2 * i + 1];
		float *s = S + nc * nt * i;
		for (int64_t j = 0; j < nc; j++)
			for (int64_t k = 0; k < nt; k++)
				s[j * nt + k] = Yt[k * C + nb[j]];
	}
	return 0;
}

/* One template's row of scores into the best so far (kern.h score_best):
 * with the prior (lm = λμ, c0 = λμ², inv = 1/(1 + λ)) or without. A
 * compare and three blends per sample: vectorised in every clone. */
NQ_CLONES static void
best_of_row(const float *S, int64_t n, int prior, float lm, float c0, float inv,
            float lo, int32_t k, float *G, float *A, int32_t *Kb)
{
	if (prior) {
		for (int64_t t = 0; t < n; t++) {
			float x = S[t] + lm;
			float v = x > 0 ? x * x * inv - c0 : -INFINITY;
			int up = v > G[t] && v > lo;
			G[t] = up ? v : G[t];
			A[t] = up ? S[t] : A[t];
			Kb[t] = up ? k : Kb[t];
		}
	} else {
		for (int64_t t = 0; t < n; t++) {
			float x = S[t];
			float v = x > 0 ? x * x : -INFINITY;
			int up = v > G[t] && v > lo;
			G[t] = up ? v : G[t];
			A[t] = up ? x : A[t];
			Kb[t] = up ? k : Kb[t];
		}
	}
}

int
kern_cpu_score_best(void *ctx, int64_t ng, int64_t n, const float *S,
                    int64_t lds, const float *mu, double lam, const float *th,
                    const int32_t *kid, float *G, float *A, int32_t *Kb)
{
	(void) ctx;
	for (int64_t t = 0; t < n; t++) {
		G[t] = -INFINITY;
		A[t] = 0;
		Kb[t] = -1;
	}
	for (int64_t i = 0; i < ng; i++) {
		float lo = th != NULL ? th[i] : -INFINITY;
		int prior = mu[i] > 0 && lam > 0;
		float l = (float) lam, lm = prior ? l * mu[i] : 0;
		best_of_row(S + lds * i, n, prior, lm, lm * mu[i], 1 / (1 + l),
		            lo, kid[i], G, A, Kb);
	}
	return 0;
}

/* Is (g, t) with value v the largest of its neighbourhood (kern.h
 * accept_peaks)? */
static int
peak_wins(int64_t n, int64_t ld, const float *G, int64_t g, int64_t t, float v,
          int64_t w, const int32_t *nb0, const int32_t *nb)
{
	int64_t u0 = t - w + 1 < 0 ? 0 : t - w + 1;
	int64_t u1 = t + w > n ? n : t + w;

	for (int64_t j = nb0[g]; j < nb0[g + 1]; j++) {
		int64_t h = nb[j];
		const float *Gh = G + ld * h;
		for (int64_t u = u0; u < u1; u++)
			if (Gh[u] > v ||
			    (Gh[u] == v && (h < g || (h == g && u < t))))
				return 0;
	}
	return 1;
}

int
kern_cpu_accept_peaks(void *ctx, int64_t ng, int64_t n, int64_t ld,
                      const float *G, const int32_t *Kb, const float *A,
                      double th, int64_t w, const int32_t *nb0,
                      const int32_t *nb, int64_t cap, int64_t *h_gt,
                      int32_t *h_k, float *h_a, int64_t *cnt)
{
	float thf = (float) th;
	int64_t k = 0;

	for (int64_t g = 0; g < ng; g++) {
		const float *Gg = G + ld * g;
		for (int64_t t = 0; t < n; t++) {
			if (!(Gg[t] > thf) ||
			    !peak_wins(n, ld, G, g, t, Gg[t], w, nb0, nb))
				continue;
			if (k < cap) {
				h_gt[k] = ld * g + t;
				h_k[k] = Kb[ld * g + t];
				h_a[k] = A[ld * g + t];
			}
			k++;
			/* the next w − 1 lose to this one */
			t += w - 1;
		}
	}
	*cnt = k;
	kern_cpu_count_d2h(ctx, 8 + (k <= cap ? 16 * (uint64_t) k : 0));
	return 0;
}
