/*
 * ss_job.c — the "spikesort" job type: params → struct ss_config, a
 * recording (a raw int16 file the worker can read, or the inline input
 * "data"), ss_sort(), the phy folder, and the result scalars.
 *
 * User paths (recording, probe, output_dir) are opened only by check() and
 * run(), which run in neuroq-worker as the job's owner, each through
 * userpath (daemon/jobs/userpath.h): never into the service's directories,
 * never through a symlink swapped in after the check. check() also measures the
 * recording for the estimate; estimate() alone (the daemon) sees no file.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job_type.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "params.h"
#include "ss.h"
#include "ss_batch.h"
#include "ss_feat.h"
#include "ss_job.h"
#include "ss_quality.h"
#include "ss_sanity.h"
#include "userpath.h"

/* ---- the table (params.h): every accepted key (anything else is a typo
 * the user should hear of), its default and range, and the outputs. The
 * defaults are ss_config_defaults()'s (ss_check_test.c compares them). */

#define F(n, d, l, h, doc_)                                         \
	{                                                           \
		.name = (n), .type = PARAM_FLOAT, .has_def = 1,     \
		.def_num = (d), .lo = (l), .hi = (h), .doc = (doc_) \
	}
#define I(n, d, l, h, doc_)                                                   \
	{                                                                     \
		.name = (n), .type = PARAM_INT, .has_def = 1, .def_num = (d), \
		.ilo = (l), .ihi = (h), .doc = (doc_)                         \
	}
#define B(n, d, doc_)                                                          \
	{                                                                      \
		.name = (n), .type = PARAM_BOOL, .has_def = 1, .def_num = (d), \
		.doc = (doc_)                                                  \
	}
static const struct param_def ss_params[] = {
        {.name = "recording",
         .type = PARAM_PATH,
         .doc = "a flat int16 file, samples x channels, you can read (or "
                "the input data instead)"},
        {.name = "n_channels",
         .type = PARAM_INT,
         .ilo = 1,
         .ihi = 4096,
         .def_text = "from a SpikeGLX .meta beside the recording; data's "
                     "columns",
         .doc = "channels (columns) of the recording"},
        {.name = "sample_rate",
         .type = PARAM_FLOAT,
         .lo = 1000,
         .hi = 1e6,
         .def_text = "from a SpikeGLX .meta beside the recording",
         .doc = "samples per second (Hz); required with data"},
        {.name = "probe",
         .type = PARAM_PATH,
         .def_text = "a linear probe, probe_pitch_um apart",
         .doc = "a Kilosort channel map JSON or a probeinterface JSON"},
        {.name = "output_dir",
         .type = PARAM_PATH,
         .def_text = "phy/ in the job's directory (only for the daemon's own "
                     "user)",
         .doc = "the phy folder to write, made as you with your umask"},
        F("probe_pitch_um", 20, 0.1, 1e4,
          "channel spacing of the default linear probe (µm)"),
        /* at least 4 templates (nt = 61) long: 244 */
        I("batch", 60000, 244, 10000000,
          "samples per batch (smaller under a small memory grant)"),
        F("th_detect", 4, 1, 100, "spike detection threshold (whitened σ)"),
        F("th_match", 6, 1, 100, "template matching threshold"),
        I("max_templates", 1024, 1, 10000, "most templates learned"),
        I("seed", 1, 0, INT64_MAX, "random seed: equal seeds, equal sorts"),
        B("car", 1, "common median reference"),
        F("hp_hz", 300, 10, 1e6 / 2.5,
          "high-pass cut-off (Hz), below sample_rate / 2.5"),
        I("whiten_nrange", 32, 1, 4096,
          "nearest channels of the local whitening"),
        B("whiten_noise", 0,
          "whitening from the noise alone (spikes masked out of its "
          "covariance)"),
        B("th_own", 1,
          "each template's matching threshold in its own projection noise "
          "(th_match the most)"),
        F("th_resid", 6, 0, 100,
          "second detection on a learning pass's residual: pooled "
          "matched-filter score (σ); 0 = off"),
        B("prune_noise", 1,
          "drop templates of noise at the threshold (amplitude cutoff ≥ "
          "0.45 and ISI violations ratio ≥ good_max_isi_ratio)"),
        I("learn_batches", 20, 1, 10000,
          "batches the templates are learned on"),
        I("learn_iters", 3, 0, 20, "template learning passes"),
        I("min_spikes", 20, 1, 1000000, "spikes a template needs to be kept"),
        F("merge_corr", 0.9, 0.5, 1,
          "template correlation above which two units may merge"),
        F("dup_ms", 0.25, 0, 5,
          "a unit's spikes closer than this are duplicates (ms)"),
        F("refrac_ms", 1.0, 0.1, 10,
          "refractory window of the merge check (ms)"),
        F("good_ratio", 0.2, 0, 1,
          "merge check: refractory rate below this of the baseline"),
        F("split_dprime", 4, 1, 100, "d' above which a unit is split"),
        I("max_peels", 50, 1, 1000, "matching pursuit rounds per batch"),
        B("drift", 1, "rigid drift correction"),
        F("drift_max_um", 50, 5, 1000, "largest drift searched (µm)"),
        I("drift_blocks", 1, 1, 32,
          "depth blocks of the drift registration (1 = rigid; more: "
          "non-rigid, one shift per block)"),
        F("xdup_ms", 0.5, 0, 5, "cross-unit duplicate window (ms); 0 = off"),
        F("template_radius_um", 150, 0, 1e5,
          "channels within this of a template's peak (µm); 0 = all"),
        F("isi_threshold_ms", 1.5, 0.1, 10,
          "refractory period of the ISI metrics (ms)"),
        F("presence_bin_s", 0, 0, 1e6,
          "presence-ratio bin (s); 0 = duration / 20 within [10, 60]"),
        F("good_max_isi_ratio", 0.5, 0, 1e6,
          "good: isi_violations_ratio below this"),
        F("good_min_presence", 0.9, 0, 1, "good: presence_ratio at least this"),
        F("good_max_amp_cutoff", 0.1, 0, 0.5,
          "good: amplitude_cutoff at most this"),
        F("good_min_snr", 2, 0, 1e6, "good: snr at least this"),
};
#undef F
#undef I
#undef B

static const struct input_def ss_inputs[] = {
        {.name = "data",
         .dtypes = PARAMS_DT(NQ_DT_I16),
         .shape = "S C",
         .required = 0,
         .doc = "a small recording inline, samples x channels int16 (1..4096 "
                "channels), instead of recording"},
};

#define PER_UNIT(n, doc_)                                               \
	{                                                               \
		(n), OUT_ARRAY, PARAMS_DT(NQ_DT_F32), "K", NULL, (doc_) \
	}
static const struct output_def ss_outputs[] = {
        {"n_units", OUT_INT, 0, NULL, NULL, "units with spikes"},
        {"n_spikes", OUT_INT, 0, NULL, NULL, "spikes sorted"},
        {"n_good", OUT_INT, 0, NULL, NULL, "units labelled good"},
        {"n_mua", OUT_INT, 0, NULL, NULL, "units labelled mua"},
        {"n_templates", OUT_INT, 0, NULL, NULL,
         "templates (K, the length of the per-unit arrays)"},
        {"duration_s", OUT_FLOAT, 0, NULL, NULL, "recording length (s)"},
        {"output_dir", OUT_STR, 0, NULL, NULL, "where the phy folder is"},
        {"warnings", OUT_STRS, 0, NULL, NULL,
         "what looked wrong in the inputs (the probe reads only some of the "
         "file's channels; the data look like another channel count); [] "
         "when nothing did"},
        {"time_preprocess_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds filtering and whitening"},
        {"time_drift_s", OUT_FLOAT, 0, NULL, NULL, "seconds estimating drift"},
        {"time_detect_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds detecting and learning"},
        {"time_match_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds in template matching"},
        {"time_post_s", OUT_FLOAT, 0, NULL, NULL, "seconds post-processing"},
        {"time_features_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds in the features and quality pass"},
        {"device_bytes_per_batch", OUT_INT, 0, NULL, NULL,
         "modelled device memory of one batch (bytes; README: the model)"},
        {"h2d_bytes", OUT_INT, 0, NULL, NULL,
         "bytes copied host to device (the backend's count; cpu: what a "
         "device would copy)"},
        {"d2h_bytes", OUT_INT, 0, NULL, NULL,
         "bytes copied device to host (as h2d_bytes)"},
        {"h2d_bytes_per_s", OUT_FLOAT, 0, NULL, NULL,
         "h2d_bytes per second of recording"},
        {"d2h_bytes_per_s", OUT_FLOAT, 0, NULL, NULL,
         "d2h_bytes per second of recording"},
        {"match_h2d_bytes_per_s", OUT_FLOAT, 0, NULL, NULL,
         "host to device bytes of the matching pass per second of "
         "recording"},
        {"match_d2h_bytes_per_s", OUT_FLOAT, 0, NULL, NULL,
         "device to host bytes of the matching pass per second of "
         "recording"},
        {"drift_um", OUT_ARRAY, PARAMS_DT(NQ_DT_F32), "B D", "drift is true",
         "depth shift per batch and depth block relative to its median "
         "(µm; positive: the tissue sits higher)"},
        {"drift_block_um", OUT_ARRAY, PARAMS_DT(NQ_DT_F32), "D",
         "drift is true", "the depth blocks' centres (µm)"},
        {"drift_batch_s", OUT_FLOAT, 0, NULL, "drift is true",
         "seconds per drift_um entry"},
        {"n_merges", OUT_INT, 0, NULL, NULL,
         "split units merged after the sort"},
        {"merge_units", OUT_ARRAY, PARAMS_DT(NQ_DT_I32), "M 2", NULL,
         "each merge's two units, the kept one first"},
        {"merge_similarity", OUT_ARRAY, PARAMS_DT(NQ_DT_F32), "M", NULL,
         "each merge's template similarity"},
        {"merge_ccg_ratio", OUT_ARRAY, PARAMS_DT(NQ_DT_F32), "M", NULL,
         "each merge's refractory-window pairs over chance (-1: no "
         "baseline)"},
        {"unit_spike_counts", OUT_ARRAY, PARAMS_DT(NQ_DT_I64), "K", NULL,
         "spikes per template id"},
        {"unit_good", OUT_ARRAY, PARAMS_DT(NQ_DT_BOOL), "K", NULL,
         "the good label per template id"},
        PER_UNIT("unit_amplitude", "mean template-fit amplitude"),
        PER_UNIT("unit_firing_rate", "spikes per second (NaN: none)"),
        PER_UNIT("unit_presence_ratio", "presence ratio (NaN: undefined)"),
        PER_UNIT("unit_isi_violations_ratio",
                 "ISI violations ratio (NaN: undefined)"),
        PER_UNIT("unit_amplitude_cutoff",
                 "amplitude cutoff (NaN: under 500 spikes)"),
        PER_UNIT("unit_snr", "signal-to-noise ratio (NaN: undefined)"),
        PER_UNIT("unit_amplitude_median",
                 "median spike amplitude (NaN: undefined)"),
        {"median_firing_rate", OUT_FLOAT, 0, NULL, "some unit has the metric",
         "median over the units"},
        {"median_presence_ratio", OUT_FLOAT, 0, NULL,
         "some unit has the metric", "median over the units"},
        {"median_isi_violations_ratio", OUT_FLOAT, 0, NULL,
         "some unit has the metric", "median over the units"},
        {"median_amplitude_cutoff", OUT_FLOAT, 0, NULL,
         "some unit has the metric", "median over the units"},
        {"median_snr", OUT_FLOAT, 0, NULL, "some unit has the metric",
         "median over the units"},
        {"median_amplitude_median", OUT_FLOAT, 0, NULL,
         "some unit has the metric", "median over the units"},
};
#undef PER_UNIT

static const struct shape_symbol ss_symbols[] = {
        {"S", "samples of the recording"},
        {"C", "channels of the recording"},
        {"K", "templates (n_templates)"},
        {"B", "drift batches"},
        {"D", "drift depth blocks (drift_blocks)"},
        {"M", "merges (n_merges)"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
static const struct job_desc ss_desc = {
        .summary = "Kilosort-style spike sorting of a raw int16 recording "
                   "into a phy folder, with quality metrics",
        .nil_is_default = 0,
        .params = ss_params,
        .nparams = COUNT(ss_params),
        .inputs = ss_inputs,
        .ninputs = COUNT(ss_inputs),
        .outputs = ss_outputs,
        .noutputs = COUNT(ss_outputs),
        .symbols = ss_symbols,
        .nsymbols = COUNT(ss_symbols),
};

struct ss_jparams {
	struct ss_config cfg;
	const char *recording;
	const char *probe;
	const char *output_dir;
	const struct nq_array *data;
	int n_rows;
	double pitch;
};

/* The table's values (given or default) into the config. */
static void
fill_config(const struct nq_map *p, struct ss_jparams *jp)
{
	struct ss_config *c = &jp->cfg;
	const struct job_desc *d = &ss_desc;

	jp->pitch = params_float(d, p, "probe_pitch_um");
	c->batch = params_int(d, p, "batch");
	c->th_detect = params_float(d, p, "th_detect");
	c->th_match = params_float(d, p, "th_match");
	c->max_templates = (int) params_int(d, p, "max_templates");
	c->seed = (uint64_t) params_int(d, p, "seed");
	c->car = params_bool(d, p, "car");
	c->hp_hz = params_float(d, p, "hp_hz");
	c->whiten_nrange = (int) params_int(d, p, "whiten_nrange");
	c->whiten_noise = params_bool(d, p, "whiten_noise");
	c->th_own = params_bool(d, p, "th_own");
	c->th_resid = params_float(d, p, "th_resid");
	c->prune_noise = params_bool(d, p, "prune_noise");
	c->learn_batches = (int) params_int(d, p, "learn_batches");
	c->learn_iters = (int) params_int(d, p, "learn_iters");
	c->min_spikes = (int) params_int(d, p, "min_spikes");
	c->merge_corr = params_float(d, p, "merge_corr");
	c->dup_ms = params_float(d, p, "dup_ms");
	c->refrac_ms = params_float(d, p, "refrac_ms");
	c->good_ratio = params_float(d, p, "good_ratio");
	c->split_dprime = params_float(d, p, "split_dprime");
	c->max_peels = (int) params_int(d, p, "max_peels");
	c->drift = params_bool(d, p, "drift");
	c->drift_max_um = params_float(d, p, "drift_max_um");
	c->drift_blocks = (int) params_int(d, p, "drift_blocks");
	c->xdup_ms = params_float(d, p, "xdup_ms");
	c->tmpl_radius_um = params_float(d, p, "template_radius_um");
	c->isi_ms = params_float(d, p, "isi_threshold_ms");
	c->presence_bin_s = params_float(d, p, "presence_bin_s");
	c->good_isi = params_float(d, p, "good_max_isi_ratio");
	c->good_presence = params_float(d, p, "good_min_presence");
	c->good_amp_cutoff = params_float(d, p, "good_max_amp_cutoff");
	c->good_snr = params_float(d, p, "good_min_snr");
}

/* Params and inputs → jp: the table's checks, then the cross-field ones
 * that need no device. */
/* files: 0 (the daemon) leaves n_channels and sample_rate at 0 when only a
 * SpikeGLX .meta beside the recording could give them; check() and run()
 * read it. */
static int
parse(const struct nq_map *params, const struct nq_map *inputs,
      struct ss_jparams *jp, int files, char *msg, size_t msglen)
{
	struct ss_config *c = &jp->cfg;
	const struct nq_value *v;
	int64_t n_ch = 0;
	double fs = 0, meta_fs = 0;
	int meta_ch = 0, rc;

	memset(jp, 0, sizeof(*jp));
	ss_config_defaults(c);
	if ((rc = params_check(&ss_desc, "spikesort", params, inputs, msg,
	                       msglen)) != 0)
		return rc;
	jp->recording = params_str(&ss_desc, params, "recording");
	jp->probe = params_str(&ss_desc, params, "probe");
	jp->output_dir = params_str(&ss_desc, params, "output_dir");
	if (inputs != NULL && (v = nq_map_get(inputs, "data")) != NULL)
		jp->data = &v->u.arr;
	if ((jp->recording == NULL) == (jp->data == NULL)) {
		snprintf(msg, msglen,
		         "give exactly one of the parameter 'recording' (path "
		         "of a raw int16 file) or the input 'data' (samples × "
		         "channels int16)");
		return NQ_EBADPARAM;
	}
	if (params_given(&ss_desc, params, "n_channels") != NULL)
		n_ch = params_int(&ss_desc, params, "n_channels");
	if (params_given(&ss_desc, params, "sample_rate") != NULL)
		fs = params_float(&ss_desc, params, "sample_rate");
	if (jp->data != NULL) {
		const struct nq_array *a = jp->data;
		if (a->shape[0] < 1 || a->shape[1] < 1 || a->shape[1] > 4096) {
			snprintf(msg, msglen,
			         "input 'data' must be int16 (samples × "
			         "channels), 1..4096 channels");
			return NQ_EBADARRAY;
		}
		if (n_ch != 0 && n_ch != a->shape[1]) {
			snprintf(msg, msglen,
			         "n_channels = %lld but 'data' has %lld "
			         "channels",
			         (long long) n_ch, (long long) a->shape[1]);
			return NQ_EBADPARAM;
		}
		n_ch = a->shape[1];
	} else if (files) {
		if (ss_meta_read(jp->recording, &meta_fs, &meta_ch) == 0) {
			if (n_ch == 0)
				n_ch = meta_ch;
			if (fs == 0)
				fs = meta_fs;
		}
		if (n_ch <= 0) {
			snprintf(msg, msglen,
			         "n_channels is required (no SpikeGLX .meta "
			         "beside %s)",
			         jp->recording);
			return NQ_EBADPARAM;
		}
	}
	if (fs <= 0 && (files || jp->data != NULL)) {
		snprintf(msg, msglen, "sample_rate is required (Hz)");
		return NQ_EBADPARAM;
	}
	jp->n_rows = (int) n_ch;
	fill_config(params, jp);
	c->fs = fs;
	if (c->hp_hz > (fs > 0 ? fs : 1e6) / 2.5) {
		snprintf(msg, msglen,
		         "parameter 'hp_hz' = %g is out of range [10, %g] "
		         "(sample_rate / 2.5)",
		         c->hp_hz, (fs > 0 ? fs : 1e6) / 2.5);
		return NQ_EBADPARAM;
	}
	return 0;
}

/* The recording and the probe, as the owner (check() and run()): through
 * userpath (resolved, against deny, without a symlink swapped in since). */
static int
open_inputs(const struct ss_jparams *jp, const struct userpath_id *deny,
            size_t ndeny, struct ss_source *src, struct ss_probe *p, char *msg,
            size_t msglen)
{
	char res[4096];
	int rc, fd;

	memset(p, 0, sizeof(*p));
	if (jp->data != NULL) {
		ss_source_open_mem(src, jp->data->data, jp->data->shape[0],
		                   jp->n_rows);
	} else {
		if ((rc = userpath_check("recording", jp->recording, deny,
		                         ndeny, USERPATH_READ, res, sizeof(res),
		                         msg, msglen)) != 0 ||
		    (rc = userpath_open("recording", res, deny, ndeny,
		                        USERPATH_READ, 0, &fd, msg, msglen)) !=
		            0)
			return rc;
		if ((rc = ss_source_open_fd(src, fd, jp->recording, jp->n_rows,
		                            msg, msglen)) != 0)
			return rc;
	}
	if (jp->probe == NULL)
		rc = ss_probe_linear(p, jp->n_rows, jp->pitch);
	else if ((rc = userpath_check("probe", jp->probe, deny, ndeny,
	                              USERPATH_READ, res, sizeof(res), msg,
	                              msglen)) == 0 &&
	         (rc = userpath_open("probe", res, deny, ndeny, USERPATH_READ,
	                             0, &fd, msg, msglen)) == 0)
		rc = ss_probe_load_fd(p, fd, jp->probe, jp->n_rows, msg,
		                      msglen);
	if (rc != 0) {
		ss_source_close(src);
		return rc;
	}
	return 0;
}

/* What the inputs must be, once open. */
static int
inputs_ok(const struct ss_jparams *jp, const struct ss_source *src,
          const struct ss_probe *p, char *msg, size_t msglen)
{
	if (p->n < 1) {
		snprintf(msg, msglen, "probe has no channel");
		return NQ_EBADPARAM;
	}
	if (src->n_samples < 4 * (int64_t) jp->cfg.nt) {
		snprintf(msg, msglen, "recording has only %lld samples",
		         (long long) src->n_samples);
		return NQ_EBADDATA;
	}
	return 0;
}

/* In the daemon: the params alone. The files are the owner's, opened
 * only by check() (at submit, as the owner) and run(). */
static int
ss_validate(const struct nq_map *params, const struct nq_map *inputs, char *msg,
            size_t msglen)
{
	struct ss_jparams jp;

	return parse(params, inputs, &jp, 0, msg, msglen);
}

/* Bytes of one batch's working set: host-only buffers (X; PT, Ps: RK × T;
 * S: K × T) and kern device buffers (ss_batch_device_bytes: the batch path
 * kept on the device), kept apart because the scheduler adds the two on
 * the cpu device. */
static uint64_t
batch_bytes(int C, int64_t batch, const struct ss_config *c, int K, int device)
{
	uint64_t T = (uint64_t) (batch + 2 * (int64_t) c->pad +
	                         2 * (int64_t) c->fpad);

	/* host: the batch and the scores with their download scratch */
	if (device)
		return ss_batch_device_bytes(c, C, batch, K);
	return 4 * T * ((uint64_t) C + (uint64_t) K * 2);
}

static int
guess_templates(int C, const struct ss_config *c)
{
	int k = 2 * C < c->max_templates ? 2 * C : c->max_templates;
	return k < 16 ? 16 : k;
}

/* Host and device bytes and work of a sort of N samples on C channels. */
static void
est_fill(const struct ss_jparams *jp, int C, int64_t N,
         struct job_estimate *est)
{
	int K = guess_templates(C, &jp->cfg);
	int64_t batch = jp->cfg.batch < N ? jp->cfg.batch : N;
	uint64_t bb = batch_bytes(C, batch, &jp->cfg, K, 0);
	uint64_t cache = (uint64_t) C *
	                 (uint64_t) (batch + 2 * (int64_t) jp->cfg.pad) * 4 *
	                 (uint64_t) jp->cfg.learn_batches;
	if (cache > jp->cfg.cache_bytes)
		cache = jp->cfg.cache_bytes;
	/* detection snippets: ≤ 200k spikes × nc × nt floats */
	uint64_t snip = 200000ULL * (uint64_t) jp->cfg.nc_feat * jp->cfg.nt * 4;
	/* drift: per-batch depth histograms (20 µm per channel bounds the
	 * probe's extent; 5 µm bins × 20 amplitude bins of float; twice:
	 * all spikes and every other one) and three C × C matrices */
	uint64_t drift = 0;
	if (jp->cfg.drift && batch > 0)
		drift = (uint64_t) ((N + batch - 1) / batch) *
		                ((uint64_t) C * 20 / 5 + 30) * 20 * 4 * 2 +
		        (uint64_t) C * C * 16;
	memset(est, 0, sizeof(*est));
	est->host_bytes = bb + cache + snip + drift + (uint64_t) N / 10 * 16 +
	                  (64ULL << 20);
	est->device_bytes =
	        batch_bytes(C, batch, &jp->cfg, K, 1) + (16ULL << 20);
	/* per sample, a few passes: banded whitening (row blocks of 32 over
	 * about three whitening ranges), projection on template windows
	 * (≤ 32 channels typical), score convolution */
	double wband = fmin(C, 3.0 * jp->cfg.whiten_nrange);
	est->flops = (double) N *
	             (2.0 * C * wband +
	              2.0 * K * jp->cfg.rank * (fmin(C, 32) + jp->cfg.nt)) *
	             (2 + jp->cfg.learn_iters);
}

/* In the daemon. Inline data: exact. A recording file is not opened here:
 * without it the figures are those of one batch on n_channels (or 1)
 * channels, a floor that check()'s figures (the file's real length and the
 * probe's channel count) replace at submit. */
static int
ss_estimate(const struct nq_map *params, const struct nq_map *inputs,
            struct job_estimate *est)
{
	struct ss_jparams jp;
	char msg[256];
	int rc = parse(params, inputs, &jp, 0, msg, sizeof(msg)), C;
	int64_t N;

	memset(est, 0, sizeof(*est));
	if (rc != 0)
		return rc;
	C = jp.n_rows > 0 ? jp.n_rows : 1;
	N = jp.data != NULL ? jp.data->shape[0] : jp.cfg.batch;
	est_fill(&jp, C, N, est);
	return 0;
}

/* output_dir resolved, made when missing (0777 & ~umask) and opened. */
static int
out_open(const char *path, const struct userpath_id *deny, size_t ndeny,
         mode_t um, int *dirfd, char *msg, size_t msglen)
{
	char res[4096];
	int rc;

	if ((rc = userpath_check("output_dir", path, deny, ndeny,
	                         USERPATH_WRITE_DIR, res, sizeof(res), msg,
	                         msglen)) != 0)
		return rc;
	return userpath_open("output_dir", res, deny, ndeny, USERPATH_WRITE_DIR,
	                     0777 & ~um, dirfd, msg, msglen);
}

/* As the owner, at submit: every user path opened, the output dir made
 * and written to (a file created and removed), and the estimate with the
 * recording's real length. */
static int
ss_check(const struct nq_map *params, const struct nq_map *inputs,
         const struct job_check_ctx *c, struct job_estimate *est, char *msg,
         size_t msglen)
{
	struct ss_jparams jp;
	struct ss_source src;
	struct ss_probe p;
	int rc = parse(params, inputs, &jp, 1, msg, msglen), fd, t;

	if (rc != 0)
		return rc;
	if ((rc = open_inputs(&jp, c->deny, c->ndeny, &src, &p, msg, msglen)) !=
	    0)
		return rc;
	if ((rc = inputs_ok(&jp, &src, &p, msg, msglen)) != 0)
		goto out;
	/* without output_dir the phy folder goes into the spool, which only
	 * the service user can enter */
	if (c->other_user && jp.output_dir == NULL) {
		snprintf(msg, msglen,
		         "output_dir is required: the phy folder must go where "
		         "you can read it");
		rc = NQ_EBADPARAM;
		goto out;
	}
	if (jp.output_dir != NULL) {
		char name[64];
		unsigned char r[8];
		if ((rc = out_open(jp.output_dir, c->deny, c->ndeny,
		                   c->owner_umask, &fd, msg, msglen)) != 0)
			goto out;
		if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r))
			memset(r, 0, sizeof(r));
		snprintf(name, sizeof(name),
		         ".neuroq-check-%02x%02x%02x%02x%02x%02x%02x%02x", r[0],
		         r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
		t = openat(fd, name,
		           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		           0600);
		if (t < 0) {
			snprintf(msg, msglen,
			         "output_dir '%s': cannot create files in it: "
			         "%s",
			         jp.output_dir, strerror(errno));
			rc = NQ_EBADPARAM;
		} else {
			close(t);
			unlinkat(fd, name, 0);
		}
		close(fd);
		if (rc != 0)
			goto out;
	}
	est_fill(&jp, p.n, src.n_samples, est);
out:
	ss_probe_free(&p);
	ss_source_close(&src);
	return rc;
}

/* The sort's progress maps to [0, SORT_PART] of the job's, the feature
 * pass (one more read, filter and whitening of the recording) to the rest. */
#define SORT_PART 0.92

struct hook_part {
	struct job_ctx *ctx;
	double lo, hi;
};

static void
h_progress(void *u, double f, const char *stage)
{
	struct hook_part *hp = u;
	if (hp->ctx->progress)
		hp->ctx->progress(hp->ctx, hp->lo + (hp->hi - hp->lo) * f,
		                  stage);
}

static int
h_canceled(void *u)
{
	struct hook_part *hp = u;
	return hp->ctx->canceled ? hp->ctx->canceled(hp->ctx) : 0;
}

static void
h_log(void *u, const char *line)
{
	struct hook_part *hp = u;
	if (hp->ctx->log)
		hp->ctx->log(hp->ctx, "%s", line);
}

/* Inline data has no file for phy to show: write it beside the results. */
static int
write_raw(int dirfd, unsigned mode, const char *dir, const struct nq_array *a,
          char *path, size_t plen)
{
	snprintf(path, plen, "%s/recording.dat", dir);
	return ss_atomic_writeat(dirfd, "recording.dat", mode, NULL, 0, a->data,
	                         a->nbytes);
}

/* The quality metrics: per unit (unit_<metric>, NaN where undefined) and
 * their medians over the units (median_<metric>; absent when no unit
 * has the metric, e.g. presence_ratio on a recording under one bin). */
/* a as out[name], or freed when the map cannot take it. */
static int
put_array(struct nq_map *out, const char *name, struct nq_array *a)
{
	int rc = nq_map_set_array(out, name, a);

	if (rc != 0)
		nq_array_fini(a);
	return rc;
}

/* A copy of data (dtype dt, the given shape) as out[name]. */
static int
put_copy(struct nq_map *out, const char *name, enum nq_dtype dt, int ndim,
         const int64_t *shape, const void *data)
{
	struct nq_array a;
	int rc = nq_array_init(&a, dt, ndim, shape);

	if (rc != 0)
		return rc;
	memcpy(a.data, data, a.nbytes);
	return put_array(out, name, &a);
}

static int
set_quality(struct nq_map *out, const struct ss_result *r)
{
	const struct ss_quality *q = r->quality;
	const struct {
		const char *name;
		const double *v;
	} m[] = {{"firing_rate", q->firing_rate},
	         {"presence_ratio", q->presence_ratio},
	         {"isi_violations_ratio", q->isi_ratio},
	         {"amplitude_cutoff", q->amp_cutoff},
	         {"snr", q->snr},
	         {"amplitude_median", q->amp_median}};
	int64_t shape[1] = {r->K};
	char key[64];
	int rc;

	if ((rc = nq_map_set_int(out, "n_mua", r->n_units - r->n_good)))
		return rc;
	for (size_t j = 0; j < sizeof(m) / sizeof(m[0]); j++) {
		struct nq_array a;
		double med = ss_quality_median(q, m[j].v);
		snprintf(key, sizeof(key), "median_%s", m[j].name);
		if (!isnan(med) && (rc = nq_map_set_float(out, key, med)))
			return rc;
		if ((rc = nq_array_init(&a, NQ_DT_F32, 1, shape)) != 0)
			return rc;
		for (int k = 0; k < r->K; k++)
			((float *) a.data)[k] = (float) m[j].v[k];
		snprintf(key, sizeof(key), "unit_%s", m[j].name);
		if ((rc = put_array(out, key, &a)) != 0)
			return rc;
	}
	return 0;
}

/* The batch path's host↔device traffic (kern traffic: bytes copied each
 * way per second of recording, the whole sort and its matching pass) and
 * its modelled device bytes per batch. */
static int
set_traffic(struct nq_map *out, const struct ss_result *r, double fs)
{
	double dur = (double) r->n_samples / fs;
	int rc;

	if (!(dur > 0))
		dur = 1;
	if ((rc = nq_map_set_int(out, "device_bytes_per_batch",
	                         (int64_t) r->dev_batch_bytes)) ||
	    (rc = nq_map_set_int(out, "h2d_bytes", (int64_t) r->xfer_h2d)) ||
	    (rc = nq_map_set_int(out, "d2h_bytes", (int64_t) r->xfer_d2h)) ||
	    (rc = nq_map_set_float(out, "h2d_bytes_per_s",
	                           (double) r->xfer_h2d / dur)) ||
	    (rc = nq_map_set_float(out, "d2h_bytes_per_s",
	                           (double) r->xfer_d2h / dur)) ||
	    (rc = nq_map_set_float(out, "match_h2d_bytes_per_s",
	                           (double) r->xfer_match_h2d / dur)) ||
	    (rc = nq_map_set_float(out, "match_d2h_bytes_per_s",
	                           (double) r->xfer_match_d2h / dur)))
		return rc;
	return 0;
}

/* The merges of split units (ss_post): n_merges, merge_units (n × 2,
 * int32: the two units, the merged one first), merge_similarity and
 * merge_ccg_ratio (the union's refractory-window pairs over chance; -1:
 * no baseline). */
static int
set_merges(struct nq_map *out, const struct ss_result *r)
{
	struct nq_array u, s, q;
	int64_t s2[2] = {r->n_merges, 2}, s1[1] = {r->n_merges};
	int rc;

	if ((rc = nq_map_set_int(out, "n_merges", r->n_merges)) != 0)
		return rc;
	if ((rc = nq_array_init(&u, NQ_DT_I32, 2, s2)) != 0)
		return rc;
	for (int i = 0; i < r->n_merges; i++) {
		((int32_t *) u.data)[(size_t) 2 * i] = r->merges[i].a;
		((int32_t *) u.data)[(size_t) 2 * i + 1] = r->merges[i].b;
	}
	if ((rc = put_array(out, "merge_units", &u)) != 0)
		return rc;
	if ((rc = nq_array_init(&s, NQ_DT_F32, 1, s1)) != 0)
		return rc;
	for (int i = 0; i < r->n_merges; i++)
		((float *) s.data)[i] = r->merges[i].similarity;
	if ((rc = put_array(out, "merge_similarity", &s)) != 0)
		return rc;
	if ((rc = nq_array_init(&q, NQ_DT_F32, 1, s1)) != 0)
		return rc;
	for (int i = 0; i < r->n_merges; i++)
		((float *) q.data)[i] = r->merges[i].ratio;
	if ((rc = put_array(out, "merge_ccg_ratio", &q)) != 0)
		return rc;
	return 0;
}

static int
set_outputs(struct nq_map *out, const struct ss_result *r, double fs,
            const char *dir)
{
	struct nq_array good;
	int64_t shape[1] = {r->K};
	int rc;

	if ((rc = nq_map_set_int(out, "n_units", r->n_units)) ||
	    (rc = nq_map_set_int(out, "n_spikes", r->n_spikes)) ||
	    (rc = nq_map_set_int(out, "n_good", r->n_good)) ||
	    (rc = nq_map_set_int(out, "n_templates", r->K)) ||
	    (rc = nq_map_set_float(out, "duration_s",
	                           (double) r->n_samples / fs)) ||
	    (rc = nq_map_set_float(out, "time_preprocess_s", r->t_pre)) ||
	    (rc = nq_map_set_float(out, "time_detect_s", r->t_detect)) ||
	    (rc = nq_map_set_float(out, "time_match_s", r->t_match)) ||
	    (rc = nq_map_set_float(out, "time_post_s", r->t_post)) ||
	    (rc = nq_map_set_float(out, "time_drift_s", r->t_drift)) ||
	    (rc = nq_map_set_str(out, "output_dir", dir)) ||
	    (rc = set_traffic(out, r, fs)))
		return rc;
	if (r->drift_um != NULL) {
		/* the depth shift per batch, for the user to plot */
		int64_t dshape[2] = {r->n_drift, r->n_drift_blocks};
		int64_t bshape[1] = {r->n_drift_blocks};
		if ((rc = put_copy(out, "drift_um", NQ_DT_F32, 2, dshape,
		                   r->drift_um)) != 0 ||
		    (rc = put_copy(out, "drift_block_um", NQ_DT_F32, 1, bshape,
		                   r->drift_block_um)) != 0)
			return rc;
		if ((rc = nq_map_set_float(out, "drift_batch_s",
		                           (double) r->drift_batch / fs)))
			return rc;
	}
	if ((rc = set_merges(out, r)) != 0)
		return rc;
	if ((rc = put_copy(out, "unit_spike_counts", NQ_DT_I64, 1, shape,
	                   r->counts)) != 0)
		return rc;
	if ((rc = nq_array_init(&good, NQ_DT_BOOL, 1, shape)) != 0)
		return rc;
	for (int k = 0; k < r->K; k++)
		((uint8_t *) good.data)[k] = (uint8_t) (r->good[k] != 0);
	if ((rc = put_array(out, "unit_good", &good)) != 0)
		return rc;
	if ((rc = put_copy(out, "unit_amplitude", NQ_DT_F32, 1, shape,
	                   r->amp_mean)) != 0)
		return rc;
	return r->quality ? set_quality(out, r) : 0;
}

static int
set_warnings(struct nq_map *out, const struct ss_warnings *w)
{
	const char *texts[SS_WARN_MAX];

	for (int i = 0; i < w->n; i++)
		texts[i] = w->text[i];
	return nq_map_set_strs(out, "warnings", texts, (size_t) w->n);
}

static int
ss_run_job(struct job_ctx *ctx, const struct nq_map *params,
           const struct nq_map *inputs, struct nq_map *out, char *msg,
           size_t msglen)
{
	struct ss_jparams jp;
	struct ss_source src;
	struct ss_probe p;
	struct ss_result res;
	struct ss_warnings warn = {0};
	struct hook_part part_sort = {ctx, 0, SORT_PART};
	struct hook_part part_feat = {ctx, SORT_PART, 1};
	struct ss_hooks hooks = {&part_sort, h_progress, h_canceled, h_log};
	struct ss_hooks hooks_feat = {&part_feat, h_progress, h_canceled,
	                              h_log};
	char dir[4096], raw[4200];
	const char *dat;
	double t_feat = 0;
	unsigned fmode = 0666 & ~ctx->owner_umask;
	int dirfd = -1;
	int rc = parse(params, inputs, &jp, 1, msg, msglen);

	if (rc != 0)
		return rc;
	/* the paths again: a symlink may have changed since submit. They
	 * passed the submit-time check, so a path that fails now (removed,
	 * made unreadable or swapped since) is the filesystem's doing: EIO,
	 * not EBADPARAM (PROTOCOL.md §6) */
	if ((rc = open_inputs(&jp, ctx->deny, ctx->ndeny, &src, &p, msg,
	                      msglen)) != 0)
		return rc == NQ_EBADPARAM ? NQ_EIO : rc;
	jp.cfg.ckpt_dir = ctx->ckpt_dir;
	/* a small grant gets smaller batches (Kilosort's memory knob) */
	if (ctx->grant_bytes > 0) {
		int K = guess_templates(p.n, &jp.cfg);
		while (jp.cfg.batch > 8192 &&
		       batch_bytes(p.n, jp.cfg.batch, &jp.cfg, K, 1) >
		               ctx->grant_bytes)
			jp.cfg.batch /= 2;
	}
	if (jp.output_dir != NULL) {
		snprintf(dir, sizeof(dir), "%s", jp.output_dir);
		rc = out_open(jp.output_dir, ctx->deny, ctx->ndeny,
		              ctx->owner_umask, &dirfd, msg, msglen);
		if (rc == NQ_EBADPARAM) /* checked at submit, as above */
			rc = NQ_EIO;
	} else {
		/* not under out/: the worker replaces out/ with the result
		 * files after run() returns. In the spool, not a user path. */
		char in_spool[4096];
		snprintf(in_spool, sizeof(in_spool), "%s/phy", ctx->job_dir);
		snprintf(dir, sizeof(dir), "%s/phy",
		         ctx->job_dir_name ? ctx->job_dir_name : ctx->job_dir);
		rc = ss_outdir_open(in_spool, &dirfd, msg, msglen);
	}
	if (rc != 0)
		goto out;
	if (ctx->log)
		ctx->log(ctx, "spikesort channels=%d rows=%d batch=%lld out=%s",
		         p.n, jp.n_rows, (long long) jp.cfg.batch, dir);
	ss_sanity_probe(&p, jp.n_rows, &warn);
	if ((rc = ss_sanity_layout(&src, jp.cfg.fs, jp.cfg.hp_hz, &warn)) !=
	    0) {
		snprintf(msg, msglen, "cannot read the recording");
		goto out;
	}
	for (int i = 0; i < warn.n && ctx->log; i++)
		ctx->log(ctx, "spikesort warning: %s", warn.text[i]);
	rc = ss_sort(&jp.cfg, ctx->kb, &src, &p, &hooks, &res, msg, msglen);
	if (rc != 0)
		goto out;
	dat = jp.recording;
	if (jp.data != NULL) {
		rc = ss_phy_writeat(dirfd, fmode, dir, &res, &p,
		                    "recording.dat", jp.n_rows, jp.cfg.fs, msg,
		                    msglen);
		if (rc == 0 && (rc = write_raw(dirfd, fmode, dir, jp.data, raw,
		                               sizeof(raw))) != 0)
			snprintf(msg, msglen, "cannot write %s", raw);
	} else {
		/* phy resolves a relative dat_path against the folder */
		char *abs = realpath(jp.recording, NULL);
		rc = ss_phy_writeat(dirfd, fmode, dir, &res, &p,
		                    abs ? abs : dat, jp.n_rows, jp.cfg.fs, msg,
		                    msglen);
		free(abs);
	}
	if (rc == 0) {
		t_feat = nq_mono_s();
		/* the features pass also measures the quality metrics, which
		 * decide the labels (cluster_KSLabel.tsv written again) */
		if ((rc = ss_quality_begin(&jp.cfg, &res)) != 0)
			snprintf(msg, msglen, "out of memory");
		if (rc == 0) {
			uint64_t mark[2];
			ss_traffic_mark(ctx->kb, mark);
			rc = ss_feat_writeat(dirfd, fmode, dir, &jp.cfg,
			                     ctx->kb, &src, &p, &res,
			                     &hooks_feat, msg, msglen);
			ss_traffic_add_since(ctx->kb, mark, &res);
		}
		if (rc == 0 && (rc = ss_quality_finish(&jp.cfg, &res)) != 0)
			snprintf(msg, msglen, "quality metrics failed");
		if (rc == 0)
			rc = ss_phy_quality_writeat(dirfd, fmode, dir, &res,
			                            msg, msglen);
		t_feat = nq_mono_s() - t_feat;
	}
	if (rc == 0 &&
	    ((rc = set_outputs(out, &res, jp.cfg.fs, dir)) != 0 ||
	     (rc = set_warnings(out, &warn)) != 0 ||
	     (rc = nq_map_set_float(out, "time_features_s", t_feat)) != 0))
		snprintf(msg, msglen, "out of memory");
	if (rc == 0 && ctx->progress)
		ctx->progress(ctx, 1.0, "done");
	ss_result_free(&res);
out:
	if (dirfd >= 0)
		close(dirfd);
	ss_probe_free(&p);
	ss_source_close(&src);
	return rc;
}

const struct job_type ss_job_type = {
        .name = "spikesort",
        .desc = &ss_desc,
        .validate = ss_validate,
        .estimate = ss_estimate,
        .check = ss_check,
        .run = ss_run_job,
        .cpu_blas_threads = 1,
};
