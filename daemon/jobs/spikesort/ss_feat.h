/*
 * ss_feat.h — phy's PC feature files, from one more streamed pass over the
 * recording once the spikes are final.
 */
#ifndef SS_FEAT_H
#define SS_FEAT_H

#include "ss.h"

/* Channels per spike in pc_features.npy (Kilosort 2's layout). */
#define SS_PC_CHANNELS 32
/* Templates per spike in template_features.npy (Kilosort 2's). */
#define SS_TF_TEMPLATES 32

/*
 * The temporal PCs (npc × nt, row q = PC q, unit norm) of the final
 * templates' channel waveforms (templates: K × nt × C, phy order), energy
 * weighted; the sign makes each PC's value at the trough (nt0min) ≥ 0.
 */
int ss_feat_temporal_pcs(const struct kern_backend *kb, const float *templates,
                         int K, int nt, int C, int nt0min, int npc,
                         double *pcs);

/* ind (K × nc): the nc channels nearest each template's peak channel (the
 * one with the most energy), the peak channel first. */
void ss_feat_channels(const struct ss_probe *p, const float *templates, int K,
                      int nt, int nc, int32_t *ind);

/* ind (K × nn): each template's nn most similar templates (similar: K × K,
 * ss_result's), itself first, then by decreasing similarity, ties by id. */
void ss_feat_neighbours(const float *similar, int K, int nn, int32_t *ind);

/*
 * Writes dir/pc_features.npy (n_spikes × npc × nc, float32: the projection
 * of each spike's filtered, whitened snippet on its template's nc channels
 * onto the temporal PCs) and dir/pc_feature_ind.npy (K × nc, int32),
 * dir/template_features.npy (n_spikes × nn float32, nn = min(K,
 * SS_TF_TEMPLATES): the same snippet on all channels projected on each of
 * its template's nn neighbours scaled to unit norm, ⟨x, W_j⟩ / ‖W_j‖) and
 * dir/template_feature_ind.npy (K × nn int32: ss_feat_neighbours), and
 * phy's spike-waveform subset (ss_wave.h), streaming the recording batch by
 * batch as the sort did (memory does not grow with its length). progress(f)
 * runs from 0 to 1. When res->quality is set (ss_quality_begin), the same pass
 * gathers what the quality metrics need from each batch before whitening. 0 or
 * an nq_err code with msg.
 */
int ss_feat_write(const char *dir, const struct ss_config *cfg,
                  const struct kern_backend *kb, struct ss_source *src,
                  const struct ss_probe *p, const struct ss_result *res,
                  const struct ss_hooks *h, char *msg, size_t msglen);
/* The same into an open output dir (see ss_phy_writeat): files with exactly
 * mode, never through a planted symlink; dir names it in msg. */
int ss_feat_writeat(int dirfd, unsigned mode, const char *dir,
                    const struct ss_config *cfg, const struct kern_backend *kb,
                    struct ss_source *src, const struct ss_probe *p,
                    const struct ss_result *res, const struct ss_hooks *h,
                    char *msg, size_t msglen);

#endif
