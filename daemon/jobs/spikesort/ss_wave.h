/*
 * ss_wave.h — phy's spike-waveform subset files, filled spike by spike
 * during the features pass.
 */
#ifndef SS_WAVE_H
#define SS_WAVE_H

#include "nq_npy.h"
#include "ss.h"

/* Spikes per template (phy's waveform view shows 100 at a time) and
 * channels per spike (`phy extract-waveforms`' default). */
#define SS_WAVE_PER_TEMPLATE 100
#define SS_WAVE_CHANNELS     16

struct ss_wave {
	int K, nt;
	int64_t n_samples;
	int64_t n;      /* subset spikes in all */
	int64_t *count; /* spikes per template */
	int64_t *seen;  /* per template, spikes seen so far */
	int32_t *chan;  /* K × SS_WAVE_CHANNELS, -1 past the probe */
	float *raw;     /* nt × C read scratch */
	int16_t *wbuf;  /* this batch's subset: waveforms, ids, channels */
	int64_t *sbuf;
	int32_t *cbuf;
	size_t m, cap;
	struct nq_npy_stream st[3];
};
/* Before ss_wave_open (ss_wave_free is safe on it). */
#define SS_WAVE_INIT                                         \
	{                                                    \
		.st = { {.fd = -1}, {.fd = -1}, {.fd = -1} } \
	}

/*
 * Opens _phy_spikes_subset.{waveforms,spikes,channels}.npy in dirfd with
 * mode: n × nt × SS_WAVE_CHANNELS int16, n int64 (spike ids, ascending),
 * n × SS_WAVE_CHANNELS int32 (each spike's channels: the nearest to its
 * template's peak in recording units, peak first; -1 past the probe), n =
 * Σ min(spikes of template k, SS_WAVE_PER_TEMPLATE). 0 or an nq_err code;
 * ss_wave_free in every case.
 */
int ss_wave_open(struct ss_wave *w, int dirfd, unsigned mode,
                 const struct ss_probe *p, const struct ss_result *res);
/* Spike s (ids in time order, each once) at sample t of template k: kept
 * when it is one of the evenly spread ranks of its template, its raw
 * samples [t − nt/2, t − nt/2 + nt) read from src (zeros outside the
 * recording) and buffered. */
int ss_wave_take(struct ss_wave *w, struct ss_source *src,
                 const struct ss_probe *p, int64_t s, int64_t t, int k);
/* Writes the buffered spikes (once per batch). */
int ss_wave_flush(struct ss_wave *w);
/* Flushes and commits the three files (each needs all its n rows). */
int ss_wave_commit(struct ss_wave *w);
/* Aborts whatever was not committed; frees. */
void ss_wave_free(struct ss_wave *w);

#endif
