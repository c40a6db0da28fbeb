/*
 * ss_batch.h — reading batch b the one way every stage does: NT samples
 * with pad + fpad on each side (odd reflections beyond the recording),
 * mean removal, median reference and high-pass, then — once set — the
 * whitening, with the batch's drift resampling folded in once shifts are
 * set. The sort and the feature pass both read through it, so they see the
 * same bytes.
 */
#ifndef SS_BATCH_H
#define SS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ss.h"
#include "ss_drift.h"

struct ss_batcher {
	const struct ss_config *cfg;
	const struct kern_backend *kb;
	struct ss_source *src;
	const struct ss_probe *p;
	int C;
	int64_t N, NT, nb, Tb, Tfull;
	struct ss_filter filt;
	float *X; /* C × Tfull */
	/* whitening M (C × C column-major, not owned; NULL: none yet) on the
	 * device, with the row blocks of its nonzeros */
	const float *M;
	struct ss_kbuf dM, dx, dy;
	struct ss_band *band;
	int nband;
	/* drift: per-batch shifts (µm, not owned; NULL: none) and the M·A of
	 * each of batch am_batch's nseg pieces (am_moved 0: none moved, M
	 * for all) */
	const float *shift; /* nb × nblk */
	const float *blk_y; /* the blocks' centre depths */
	int nblk, nseg;
	double *shift_c; /* C: a piece's shift per channel */
	float *seg_sh;   /* nblk: a piece's shift per block */
	struct ss_krig krig;
	float *A, *AM; /* C × C, nseg × C × C */
	int64_t am_batch;
	int am_moved;
	struct ss_kbuf dAM;
	struct ss_band *aband; /* nseg × (C / 32 + 2) */
	int *naband;           /* nseg */
	/* on a device backend: the raw batch (C × Tfull) and the whitened
	 * one (C × Tb), and the filter's sections (kern filter_car) */
	struct ss_kbuf dX, dY;
	double sos[10];
	/* NULL, or called by ss_batcher_load with the preprocessed batch
	 * (Y: Tb samples, core at [pad, pad + core)) before whitening */
	void (*pre)(void *u, int64_t b, const float *Y, int64_t Tb,
	            int64_t core);
	void *pre_u;
};

/* Geometry from cfg and the recording (NT = min(batch, N)). 0, NQ_ENOMEM,
 * or NQ_EBADPARAM when the high-pass is not below Nyquist; msg says so. */
int ss_batcher_init(struct ss_batcher *bt, const struct ss_config *cfg,
                    const struct kern_backend *kb, struct ss_source *src,
                    const struct ss_probe *p, char *msg, size_t msglen);
/* Whiten every later batch with M (kept by pointer). 0 or an nq_err. */
int ss_batcher_whiten(struct ss_batcher *bt, const float *M);
/* Resample every later batch b by its shifts shift[b nblk ..] µm at the
 * block depths blk_y (both kept by pointer; ss_drift_channel_shifts; all 0
 * leaves a batch as it is). Each batch is resampled in cfg->drift_segs
 * pieces of equal length, each at the shift of its centre's time, linear
 * between the centres of batch b and its neighbour (held beyond the first
 * and last), so a unit moving within a batch is followed. 0, NQ_ENOMEM or
 * NQ_EBADDATA (kriging matrix singular: duplicate channel positions). */
int ss_batcher_drift(struct ss_batcher *bt, const float *shift, int nblk,
                     const float *blk_y);
/* The host work buffer: a batch's Tb samples (C × Tb, after fpad), where
 * ss_batcher_load puts them and callers make what they derive from them. */
float *ss_batcher_work(const struct ss_batcher *bt);
/* Batch b: *Y points at its Tb = NT + 2 pad samples, core samples at
 * [pad, pad + core). 0 or an nq_err code with msg. */
int ss_batcher_load(struct ss_batcher *bt, int64_t b, float **Y, int64_t *core,
                    char *msg, size_t msglen);
/* Batch b as a buffer of the backend (*dY: C × Tb, core at [pad, pad +
 * core), valid until the next load): on a host-memory backend the host
 * batch of ss_batcher_load; on a device the raw batch goes up once and is
 * filtered, referenced and whitened there, and nothing comes back (but
 * the batch the pre hook is given). */
int ss_batcher_load_dev(struct ss_batcher *bt, int64_t b, const float **dY,
                        int64_t *core, char *msg, size_t msglen);
/* A host batch (C × Tb) as a buffer of the backend: Y itself on a
 * host-memory backend, else uploaded into the batcher's (valid until the
 * next load or put). */
int ss_batcher_put(struct ss_batcher *bt, const float *Y, const float **dY);
/* The backend's traffic counters now (kern traffic), into mark[2]; and
 * res's whole-run counters (xfer_h2d, xfer_d2h) increased by the traffic
 * since a mark: the features pass after ss_sort counts in them too. */
void ss_traffic_mark(const struct kern_backend *kb, uint64_t *mark);
void ss_traffic_add_since(const struct kern_backend *kb, const uint64_t *mark,
                          struct ss_result *res);
/* Modelled device bytes of the batch path (the batcher's and the
 * matcher's buffers) for batches of NT samples on C channels with K
 * templates, on a device backend. */
uint64_t ss_batch_device_bytes(const struct ss_config *cfg, int C, int64_t NT,
                               int K);
void ss_batcher_free(struct ss_batcher *bt);

#endif
