/*
 * ss_wave.c — phy's spike-waveform subset (_phy_spikes_subset.*.npy, what
 * `phy extract-waveforms` writes): the raw samples around up to
 * SS_WAVE_PER_TEMPLATE spikes of every template, spread evenly over its
 * spikes in time, on the SS_WAVE_CHANNELS channels nearest the template's
 * peak. phy's waveform view reads them instead of the raw file, and
 * phylib's load_model warns when they are missing.
 *
 * Filled during the features pass (spikes in time order), a batch's worth
 * at a time into three streamed .npy files, so memory stays flat. The
 * samples are the raw int16 ones exactly as phylib's extract_waveforms cuts
 * them from the recording: nt samples from t − nt/2, zeros outside it.
 */
#include "ss_wave.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"

/* peak channel of template k brought back to recording units (W · wmi,
 * phy's unwhitening): the largest max − min over time, as phylib picks it */
static int
raw_peak(const struct ss_result *res, int k, double *u)
{
	int C = res->C, nt = res->nt, lo = C, hi = 0, best = 0;
	const float *T = res->templates + (size_t) k * nt * C;
	double bamp = -1;

	for (int a = 0; a < nt; a++)
		for (int c = 0; c < C; c++)
			if (T[(size_t) a * C + c] != 0) {
				lo = c < lo ? c : lo;
				hi = c + 1 > hi ? c + 1 : hi;
			}
	for (int c = 0; c < C; c++) {
		double mx = -INFINITY, mn = INFINITY;
		for (int a = 0; a < nt; a++)
			u[a] = 0;
		for (int a = 0; a < nt; a++)
			for (int j = lo; j < hi; j++)
				u[a] += (double) T[(size_t) a * C + j] *
				        res->wmat_inv[(size_t) j * C + c];
		for (int a = 0; a < nt; a++) {
			mx = fmax(mx, u[a]);
			mn = fmin(mn, u[a]);
		}
		if (mx - mn > bamp) {
			bamp = mx - mn;
			best = c;
		}
	}
	return best;
}

int
ss_wave_open(struct ss_wave *w, int dirfd, unsigned mode,
             const struct ss_probe *p, const struct ss_result *res)
{
	int K = res->K, C = res->C, nc = SS_WAVE_CHANNELS;
	int *idx = malloc(sizeof(int) * (size_t) nc);
	double *u = malloc(sizeof(double) * (size_t) res->nt);
	int64_t shape[3];
	int rc = NQ_ENOMEM;

	memset(w, 0, sizeof(*w));
	w->st[0].fd = w->st[1].fd = w->st[2].fd = -1;
	w->K = K;
	w->nt = res->nt;
	w->n_samples = res->n_samples;
	w->count = calloc((size_t) K + 1, sizeof(int64_t));
	w->seen = calloc((size_t) K + 1, sizeof(int64_t));
	w->chan = malloc(sizeof(int32_t) * ((size_t) K * nc + 1));
	w->raw = malloc(sizeof(float) * (size_t) w->nt * (size_t) C);
	if (!idx || !u || !w->count || !w->seen || !w->chan || !w->raw)
		goto out;
	for (int64_t i = 0; i < res->n_spikes; i++)
		w->count[res->templ[i]]++;
	for (int k = 0; k < K; k++) {
		int m = C < nc ? C : nc;
		ss_probe_nearest(p, raw_peak(res, k, u), m, idx);
		for (int j = 0; j < nc; j++)
			w->chan[(size_t) k * nc + j] = j < m ? idx[j] : -1;
		w->n += w->count[k] < SS_WAVE_PER_TEMPLATE
		                ? w->count[k]
		                : SS_WAVE_PER_TEMPLATE;
	}
	shape[0] = w->n;
	shape[1] = w->nt;
	shape[2] = nc;
	if ((rc = nq_npy_stream_openat(&w->st[0], dirfd,
	                               "_phy_spikes_subset.waveforms.npy", mode,
	                               NQ_DT_I16, 3, shape)) ||
	    (rc = nq_npy_stream_openat(&w->st[1], dirfd,
	                               "_phy_spikes_subset.spikes.npy", mode,
	                               NQ_DT_I64, 1, shape)) ||
	    (rc = nq_npy_stream_openat(&w->st[2], dirfd,
	                               "_phy_spikes_subset.channels.npy", mode,
	                               NQ_DT_I32, 2, (int64_t[]){w->n, nc})))
		goto out;
	rc = 0;
out:
	free(idx);
	free(u);
	return rc;
}

int
ss_wave_take(struct ss_wave *w, struct ss_source *src, const struct ss_probe *p,
             int64_t s, int64_t t, int k)
{
	int64_t r = w->seen[k]++, n = w->count[k], S = SS_WAVE_PER_TEMPLATE;
	int C = p->n, nc = SS_WAVE_CHANNELS, nt = w->nt, rc;
	int64_t t0 = t - nt / 2, a0 = t0 < 0 ? -t0 : 0;
	int64_t a1 = t0 + nt > w->n_samples ? w->n_samples - t0 : nt;
	const int32_t *ch = w->chan + (size_t) k * nc;
	int16_t *o;

	/* rank r of n is kept when ⌊(r + 1) S / n⌋ steps: min(S, n) spikes */
	if (n > S && (r + 1) * S / n == r * S / n)
		return 0;
	if (w->m == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		int16_t *wb = realloc(w->wbuf,
		                      sizeof(int16_t) * cap * (size_t) nt * nc);
		if (wb != NULL)
			w->wbuf = wb;
		int64_t *sb = realloc(w->sbuf, sizeof(int64_t) * cap);
		if (sb != NULL)
			w->sbuf = sb;
		int32_t *cb = realloc(w->cbuf, sizeof(int32_t) * cap * nc);
		if (cb != NULL)
			w->cbuf = cb;
		if (!wb || !sb || !cb)
			return NQ_ENOMEM;
		w->cap = cap;
	}
	o = w->wbuf + w->m * (size_t) nt * nc;
	memset(o, 0, sizeof(int16_t) * (size_t) nt * nc);
	if (a1 > a0) {
		if ((rc = ss_source_read(src, p, t0 + a0, a1 - a0, w->raw)) !=
		    0)
			return rc;
		for (int64_t a = a0; a < a1; a++)
			for (int j = 0; j < nc; j++)
				if (ch[j] >= 0)
					o[a * nc + j] = (int16_t) lrintf(
					        w->raw[(a - a0) * C + ch[j]]);
	}
	w->sbuf[w->m] = s;
	memcpy(w->cbuf + w->m * nc, ch, sizeof(int32_t) * nc);
	w->m++;
	return 0;
}

int
ss_wave_flush(struct ss_wave *w)
{
	int nc = SS_WAVE_CHANNELS, rc;

	if (w->m == 0)
		return 0;
	if ((rc = nq_npy_stream_put(&w->st[0], w->wbuf,
	                            sizeof(int16_t) * w->m * w->nt * nc)) ||
	    (rc = nq_npy_stream_put(&w->st[1], w->sbuf,
	                            sizeof(int64_t) * w->m)) ||
	    (rc = nq_npy_stream_put(&w->st[2], w->cbuf,
	                            sizeof(int32_t) * w->m * nc)))
		return rc;
	w->m = 0;
	return 0;
}

int
ss_wave_commit(struct ss_wave *w)
{
	int rc = ss_wave_flush(w);

	for (int i = 0; i < 3 && rc == 0; i++)
		rc = nq_npy_stream_commit(&w->st[i]);
	return rc;
}

void
ss_wave_free(struct ss_wave *w)
{
	for (int i = 0; i < 3; i++)
		nq_npy_stream_abort(&w->st[i]);
	free(w->count);
	free(w->seen);
	free(w->chan);
	free(w->raw);
	free(w->wbuf);
	free(w->sbuf);
	free(w->cbuf);
	memset(w, 0, sizeof(*w));
	w->st[0].fd = w->st[1].fd = w->st[2].fd = -1;
}
