/*
 * ss_sanity.c — does n_channels fit the probe and the data? (ss_sanity.h)
 */
#include "ss_sanity.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"

/* samples the layout test reads (less on very wide files: ≤ 128 MiB) */
#define LAYOUT_T       32768
#define LAYOUT_MAX_F32 (32 << 20)

static void
warn_add(struct ss_warnings *w, const char *fmt, ...)
{
	va_list ap;

	if (w->n >= SS_WARN_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(w->text[w->n++], SS_WARN_LEN, fmt, ap);
	va_end(ap);
}

void
ss_sanity_probe(const struct ss_probe *p, int n_rows, struct ss_warnings *w)
{
	char *used = calloc((size_t) (n_rows > 0 ? n_rows : 1), 1);
	int unused = 0, first = -1, last = -1;

	if (used == NULL)
		return;
	for (int i = 0; i < p->n; i++)
		if (p->row[i] >= 0 && p->row[i] < n_rows)
			used[p->row[i]] = 1;
	for (int r = 0; r < n_rows; r++)
		if (!used[r]) {
			unused++;
			if (first < 0)
				first = r;
			last = r;
		}
	free(used);
	if (unused == 0)
		return;
	if (n_rows % p->n == 0 && last - first + 1 == unused &&
	    last == n_rows - 1)
		warn_add(w,
		         "the probe reads %d of the file's %d channels "
		         "(n_channels); channels %d-%d are not sorted. If the "
		         "file has %d channels, n_channels=%d reads it wrong",
		         p->n, n_rows, first, last, p->n, n_rows);
	else
		warn_add(w,
		         "the probe reads %d of the file's %d channels "
		         "(n_channels); %d are not sorted (the first %d, the "
		         "last %d)",
		         p->n, n_rows, unused, first, last);
}

/* Correlation of a[t·C] with b[t·C], t < T (strided columns of X). */
static double
corr(const float *a, const float *b, int C, int64_t T)
{
	double sab = 0, saa = 0, sbb = 0;

	for (int64_t t = 0; t < T; t++) {
		double x = a[t * C], y = b[t * C];
		sab += x * y;
		saa += x * x;
		sbb += y * y;
	}
	return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;

	return (x > y) - (x < y);
}

/* The evidence for factor j, one way, per column into d; the count of
 * columns tested, and in *hits those with the evidence beyond margin. */
static int
evidence(const float *X, int C, int64_t T, int j, int fewer, double margin,
         double *d, int *hits)
{
	int m = C / j, n = fewer ? C - m : C;

	*hits = 0;
	/* fewer: column c against c + m (C − m columns); more: column c
	 * against its j-th next row */
	for (int c = 0; c < n; c++) {
		const float *x = X + c;
		double r1 = corr(x, x + C, C, T - j);
		double e =
		        corr(x, fewer ? x + m : x + (int64_t) j * C, C, T - j);

		/* e must be a correlation at all, not just less negative than
		 * a filtered lag 1 */
		d[c] = e - r1;
		*hits += e > margin && d[c] > margin;
	}
	return n;
}

void
ss_layout_guess(const float *X, int n_rows, int64_t T, struct ss_layout *g)
{
	int C = n_rows;
	double margin, *d = malloc(sizeof(double) * (size_t) (C > 0 ? C : 1));

	memset(g, 0, sizeof(*g));
	if (d == NULL || C < 2 || T < 64) {
		free(d);
		return;
	}
	margin = 4.0 / sqrt((double) T);
	/* more first: a file of j·n channels read as n makes each column
	 * alternate between channels, an oscillation of period j that also
	 * lends the fewer test its evidence; the converse does not happen */
	for (int fewer = 0; fewer <= 1 && g->factor == 0; fewer++) {
		for (int j = 2; j <= 4; j++) {
			int hits, n;

			if (fewer && C % j != 0)
				continue;
			n = evidence(X, C, T, j, fewer, margin, d, &hits);
			if (n < 4 || hits * 10 < n * 9)
				continue;
			qsort(d, (size_t) n, sizeof(double), cmp_double);
			/* a period of 2 is one of 4 too: the smaller j unless
			 * the larger explains clearly more */
			if (g->factor != 0 && d[n / 2] <= g->score + margin)
				continue;
			g->factor = j;
			g->fewer = fewer;
			g->hits = hits;
			g->tested = n;
			g->score = d[n / 2];
		}
	}
	free(d);
}

int
ss_sanity_layout(struct ss_source *src, double fs, double hp_hz,
                 struct ss_warnings *w)
{
	struct ss_probe all = {0};
	struct ss_filter f;
	struct ss_layout g;
	int C = src->n_rows, rc;
	int64_t T = LAYOUT_T;
	float *X = NULL;
	double *work = NULL;

	if (T * C > LAYOUT_MAX_F32)
		T = LAYOUT_MAX_F32 / C;
	if (T > src->n_samples)
		T = src->n_samples;
	if (T < 64 || C < 2)
		return 0;
	if ((rc = ss_probe_linear(&all, C, 1.0)) != 0)
		return rc;
	X = malloc(sizeof(float) * (size_t) (T * C));
	work = malloc(sizeof(double) * 3 * (size_t) C);
	rc = NQ_ENOMEM;
	if (X == NULL || work == NULL)
		goto out;
	if ((rc = ss_source_read(src, &all, 0, T, X)) != 0)
		goto out;
	/* the LFP and offsets would dominate every correlation */
	if (ss_filter_design(&f, fs, hp_hz) == 0)
		ss_filter_filtfilt_batch(&f, X, C, T, work);
	ss_layout_guess(X, C, T, &g);
	if (g.factor != 0)
		warn_add(w,
		         "n_channels=%d looks wrong: %s in %d of %d columns "
		         "(median excess correlation %.2f over the first %lld "
		         "samples), as when a file of %d channels is read as "
		         "%d; check n_channels",
		         C,
		         g.fewer ? "columns n_channels/k apart correlate like "
		                   "one channel's neighbouring samples"
		                 : "each column correlates more with its k-th "
		                   "next sample than with its next",
		         g.hits, g.tested, g.score, (long long) T,
		         g.fewer ? C / g.factor : C * g.factor, C);
out:
	free(X);
	free(work);
	ss_probe_free(&all);
	return rc;
}
