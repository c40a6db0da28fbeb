/*
 * ss_run.c — `ss-run`: the spikesort pipeline on a raw file, without the
 * daemon (used by tests/spikesort and for timing by hand).
 *
 *   ss-run --recording F.bin --n-channels N [--sample-rate HZ] [--probe P]
 *          --out DIR [--ckpt DIR] [--batch N] [--seed S] [--device cpu]
 *          [--th-detect X] [--th-match X] [--drift 0|1]
 *          [--isi-threshold-ms X] [--presence-bin-s X] [--good-max-isi-ratio X]
 *          [--good-min-presence X] [--good-max-amp-cutoff X] [--good-min-snr X]
 * Prints one JSON object with the result scalars.
 *
 *   ss-run --recording F.bin --n-channels N [--sample-rate HZ] [--probe P]
 *          --sanity-only
 * Prints only the input sanity warnings (ss_sanity.h) as {"warnings": [...]}.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nq_clock.h"
#include "nq_error.h"
#include "nq_json.h"
#include "ss.h"
#include "ss_batch.h"
#include "ss_feat.h"
#include "ss_quality.h"
#include "ss_sanity.h"

static void
on_log(void *u, const char *line)
{
	(void) u;
	fprintf(stderr, "%s\n", line);
}

/* x as JSON (no NaN there: null) into b */
static const char *
jnum(char *b, size_t n, double x)
{
	if (isnan(x))
		snprintf(b, n, "null");
	else
		snprintf(b, n, "%.4f", x);
	return b;
}

/* --sanity-only: the warnings as one JSON object; 0, or 1 when the
 * recording cannot be read. Takes src and p. */
static int
print_sanity(struct ss_source *src, struct ss_probe *p, int n_rows, double fs,
             double hp_hz)
{
	struct ss_warnings w = {0};
	struct nq_json js;
	int rc;

	ss_sanity_probe(p, n_rows, &w);
	rc = ss_sanity_layout(src, fs, hp_hz, &w);
	ss_probe_free(p);
	ss_source_close(src);
	if (rc != 0) {
		fprintf(stderr, "ss-run: cannot read the recording\n");
		return 1;
	}
	nq_json_init_file(&js, stdout, 0);
	nq_json_obj_begin(&js);
	nq_json_key(&js, "warnings");
	nq_json_arr_begin(&js);
	for (int i = 0; i < w.n; i++)
		nq_json_str(&js, w.text[i], strlen(w.text[i]));
	nq_json_arr_end(&js);
	nq_json_obj_end(&js);
	rc = nq_json_finish(&js);
	nq_json_free(&js);
	printf("\n");
	return rc != 0;
}

static int
usage(void)
{
	fprintf(stderr,
	        "usage: ss-run --recording F --n-channels N [--sample-rate HZ]"
	        " [--probe P] --out DIR [--ckpt DIR] [--batch N] [--seed S]"
	        " [--device cpu|cuda:N|cpu-dev] [--th-detect X] [--th-match X]"
	        " [--drift 0|1] [--drift-blocks N] [--whiten-noise 0|1]"
	        " [--th-own 0|1] [--th-resid S] [--prune-noise 0|1]"
	        " [--isi-threshold-ms X] "
	        "[--presence-bin-s X]"
	        " [--good-max-isi-ratio X] [--good-min-presence X]"
	        " [--good-max-amp-cutoff X] [--good-min-snr X]\n"
	        "       ss-run --recording F --n-channels N [--sample-rate HZ]"
	        " [--probe P] --sanity-only\n");
	return 2;
}

/* A whole argument as a number in [lo, hi]; 0, or -1 (usage). */
static int
arg_num(const char *v, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(v, &end);
	return end == v || *end != '\0' || errno != 0 || !(*out >= lo) ||
	                       !(*out <= hi)
	               ? -1
	               : 0;
}

int
main(int argc, char **argv)
{
	const char *rec = NULL, *probe = NULL, *out = NULL, *dev = "cpu";
	struct ss_config cfg;
	struct kern_backend kb;
	struct ss_source src;
	struct ss_probe p;
	struct ss_result res;
	struct ss_hooks hooks = {NULL, NULL, NULL, on_log};
	char msg[512] = "";
	int n_rows = 0, rc, sanity_only = 0;
	double fs = 0;
	double a, b, f;

	ss_config_defaults(&cfg);
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		double x = 0;
		if (strcmp(k, "--sanity-only") == 0) { /* a flag */
			sanity_only = 1;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(k, "--recording") == 0)
			rec = v;
		else if (strcmp(k, "--n-channels") == 0) {
			if (arg_num(v, 1, 1 << 20, &x) != 0 || x != (int) x)
				return usage();
			n_rows = (int) x;
		} else if (strcmp(k, "--sample-rate") == 0) {
			if (arg_num(v, 0, 1e9, &fs) != 0)
				return usage();
		} else if (strcmp(k, "--probe") == 0)
			probe = v;
		else if (strcmp(k, "--out") == 0)
			out = v;
		else if (strcmp(k, "--ckpt") == 0)
			cfg.ckpt_dir = v;
		else if (strcmp(k, "--batch") == 0) {
			if (arg_num(v, 1, 1e12, &x) != 0)
				return usage();
			cfg.batch = (int64_t) x;
		} else if (strcmp(k, "--seed") == 0)
			cfg.seed = strtoull(v, NULL, 10);
		else if (strcmp(k, "--device") == 0)
			dev = v;
		else if (strcmp(k, "--th-detect") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.th_detect) != 0)
				return usage();
		} else if (strcmp(k, "--th-match") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.th_match) != 0)
				return usage();
		} else if (strcmp(k, "--drift") == 0) {
			if (arg_num(v, 0, 1, &x) != 0)
				return usage();
			cfg.drift = x != 0;
		} else if (strcmp(k, "--drift-blocks") == 0) {
			if (arg_num(v, 1, 32, &x) != 0)
				return usage();
			cfg.drift_blocks = (int) x;
		} else if (strcmp(k, "--whiten-noise") == 0) {
			if (arg_num(v, 0, 1, &x) != 0)
				return usage();
			cfg.whiten_noise = x != 0;
		} else if (strcmp(k, "--th-own") == 0) {
			if (arg_num(v, 0, 1, &x) != 0)
				return usage();
			cfg.th_own = x != 0;
		} else if (strcmp(k, "--th-resid") == 0) {
			if (arg_num(v, 0, 100, &cfg.th_resid) != 0)
				return usage();
		} else if (strcmp(k, "--prune-noise") == 0) {
			if (arg_num(v, 0, 1, &x) != 0)
				return usage();
			cfg.prune_noise = x != 0;
		} else if (strcmp(k, "--isi-threshold-ms") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.isi_ms) != 0)
				return usage();
		} else if (strcmp(k, "--presence-bin-s") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.presence_bin_s) != 0)
				return usage();
		} else if (strcmp(k, "--good-max-isi-ratio") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.good_isi) != 0)
				return usage();
		} else if (strcmp(k, "--good-min-presence") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.good_presence) != 0)
				return usage();
		} else if (strcmp(k, "--good-max-amp-cutoff") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.good_amp_cutoff) != 0)
				return usage();
		} else if (strcmp(k, "--good-min-snr") == 0) {
			if (arg_num(v, 0, 1e6, &cfg.good_snr) != 0)
				return usage();
		} else
			return usage();
	}
	if (rec == NULL || (out == NULL && !sanity_only))
		return usage();
	if (ss_meta_read(rec, &fs, &n_rows) == 0)
		fprintf(stderr, "meta: fs=%g n_channels=%d\n", fs, n_rows);
	if (n_rows <= 0 || fs <= 0) {
		fprintf(stderr, "ss-run: need --n-channels and --sample-rate "
		                "(or a .meta)\n");
		return 2;
	}
	cfg.fs = fs;
	if (cfg.ckpt_dir != NULL && mkdir(cfg.ckpt_dir, 0755) != 0 &&
	    errno != EEXIST) {
		fprintf(stderr, "ss-run: cannot create %s\n", cfg.ckpt_dir);
		return 1;
	}
	if ((rc = ss_source_open_file(&src, rec, n_rows, msg, sizeof(msg))))
		goto fail0;
	if (probe != NULL)
		rc = ss_probe_load(&p, probe, n_rows, msg, sizeof(msg));
	else
		rc = ss_probe_linear(&p, n_rows, 20);
	if (rc != 0)
		goto fail1;
	if (sanity_only)
		return print_sanity(&src, &p, n_rows, fs, cfg.hp_hz);
	/* cpu-dev: the cpu's ops on the device path (kern.h) */
	if ((rc = strcmp(dev, "cpu-dev") == 0
	                  ? kern_cpu_open_as_device(&kb)
	                  : kern_open_by_name(&kb, dev)) != 0) {
		snprintf(msg, sizeof(msg), "cannot open device %s", dev);
		goto fail2;
	}
	a = nq_mono_s();
	rc = ss_sort(&cfg, &kb, &src, &p, &hooks, &res, msg, sizeof(msg));
	if (rc == 0)
		rc = ss_phy_write(out, &res, &p, rec, n_rows, fs, msg,
		                  sizeof(msg));
	f = nq_mono_s();
	if (rc == 0 && (rc = ss_quality_begin(&cfg, &res)) != 0)
		snprintf(msg, sizeof(msg), "out of memory");
	if (rc == 0) {
		uint64_t mark[2];
		ss_traffic_mark(&kb, mark);
		rc = ss_feat_write(out, &cfg, &kb, &src, &p, &res, &hooks, msg,
		                   sizeof(msg));
		ss_traffic_add_since(&kb, mark, &res);
	}
	if (rc == 0 && (rc = ss_quality_finish(&cfg, &res)) != 0)
		snprintf(msg, sizeof(msg), "quality metrics failed");
	if (rc == 0) {
		mode_t um = umask(022);
		int dfd;
		umask(um);
		if ((rc = ss_outdir_open(out, &dfd, msg, sizeof(msg))) == 0) {
			rc = ss_phy_quality_writeat(dfd, 0666 & ~um, out, &res,
			                            msg, sizeof(msg));
			close(dfd);
		}
	}
	b = nq_mono_s();
	if (rc == 0) {
		double wall = b - a;
		char j1[32], j2[32], j3[32];
		double dur = (double) res.n_samples / fs, dmin = 0, dmax = 0;
		for (int64_t i = 0; i < res.n_drift * res.n_drift_blocks; i++) {
			dmin = res.drift_um[i] < dmin ? res.drift_um[i] : dmin;
			dmax = res.drift_um[i] > dmax ? res.drift_um[i] : dmax;
		}
		printf("{\"n_units\": %d, \"n_spikes\": %lld, \"n_good\": %d, "
		       "\"n_templates\": %d, \"duration_s\": %.3f, "
		       "\"wall_s\": %.3f, \"x_realtime\": %.2f, "
		       "\"time_preprocess_s\": %.3f, \"time_detect_s\": %.3f, "
		       "\"time_match_s\": %.3f, \"time_post_s\": %.3f, "
		       "\"time_drift_s\": %.3f, \"time_features_s\": %.3f, "
		       "\"drift_min_um\": %.2f, \"drift_max_um\": %.2f, "
		       "\"n_mua\": %d, \"n_merges\": %d, \"median_snr\": %s, "
		       "\"median_firing_rate\": %s, "
		       "\"median_isi_violations_ratio\": %s, "
		       "\"device_bytes_per_batch\": %llu, "
		       "\"h2d_bytes\": %llu, \"d2h_bytes\": %llu, "
		       "\"h2d_bytes_per_s\": %.1f, \"d2h_bytes_per_s\": %.1f, "
		       "\"match_h2d_bytes_per_s\": %.1f, "
		       "\"match_d2h_bytes_per_s\": %.1f, "
		       "\"device\": \"%s\"}\n",
		       res.n_units, (long long) res.n_spikes, res.n_good, res.K,
		       dur, wall, dur / wall, res.t_pre, res.t_detect,
		       res.t_match, res.t_post, res.t_drift, b - f, dmin, dmax,
		       res.n_units - res.n_good, res.n_merges,
		       jnum(j1, sizeof(j1),
		            ss_quality_median(res.quality, res.quality->snr)),
		       jnum(j2, sizeof(j2),
		            ss_quality_median(res.quality,
		                              res.quality->firing_rate)),
		       jnum(j3, sizeof(j3),
		            ss_quality_median(res.quality,
		                              res.quality->isi_ratio)),
		       (unsigned long long) res.dev_batch_bytes,
		       (unsigned long long) res.xfer_h2d,
		       (unsigned long long) res.xfer_d2h,
		       (double) res.xfer_h2d / dur, (double) res.xfer_d2h / dur,
		       (double) res.xfer_match_h2d / dur,
		       (double) res.xfer_match_d2h / dur, kb.name);
	}
	ss_result_free(&res);
	kern_close(&kb);
fail2:
	ss_probe_free(&p);
fail1:
	ss_source_close(&src);
fail0:
	if (rc != 0) {
		fprintf(stderr, "ss-run: %s: %s\n", nq_errname(rc), msg);
		return 1;
	}
	return 0;
}
