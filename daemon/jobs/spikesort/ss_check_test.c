/* ss_check_test.c — spikesort's check(): the owner-side submit check of
 * recording, probe and output_dir through userpath, and its estimate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "params.h"
#include "ss.h"
#include "ss_job.h"
#include "userpath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[64], rec[128], state[128];
static struct userpath_id deny[1];
static struct job_check_ctx cctx;

static int
setup(void **st)
{
	const char *dirs[1];
	int16_t z[4 * 1000] = {0};
	FILE *f;

	(void) st;
	snprintf(tmp, sizeof(tmp), "/tmp/ss_check_test.XXXXXX");
	if (mkdtemp(tmp) == NULL)
		return -1;
	snprintf(rec, sizeof(rec), "%s/r.bin", tmp);
	snprintf(state, sizeof(state), "%s/state", tmp);
	if (mkdir(state, 0700) != 0 || (f = fopen(rec, "wb")) == NULL)
		return -1;
	fwrite(z, 2, (size_t) 4 * 1000, f);
	fclose(f);
	dirs[0] = state;
	cctx.ndeny = userpath_deny_init(dirs, 1, deny);
	cctx.deny = deny;
	cctx.owner_umask = 027;
	return cctx.ndeny == 1 ? 0 : -1;
}

static int
teardown(void **st)
{
	char cmd[128];

	(void) st;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static int
check_with(const char *recording, const char *out, int n_ch, char *msg,
           struct job_estimate *est)
{
	struct nq_map *p = nq_map_new();
	int rc;

	nq_map_set_str(p, "recording", recording);
	nq_map_set_int(p, "n_channels", n_ch);
	nq_map_set_float(p, "sample_rate", 30000);
	if (out != NULL)
		nq_map_set_str(p, "output_dir", out);
	memset(est, 0, sizeof(*est));
	msg[0] = '\0';
	rc = ss_job_type.check(p, NULL, &cctx, est, msg, 512);
	nq_map_free(p);
	return rc;
}

static void
test_check(void **st)
{
	char msg[512], out[256], path[256];
	struct job_estimate est;
	struct stat sb;

	(void) st;
	assert_non_null(ss_job_type.check);
	/* fine: the estimate has the file's length */
	snprintf(out, sizeof(out), "%s/new/phy", tmp);
	assert_int_equal(check_with(rec, out, 4, msg, &est), 0);
	assert_true(est.host_bytes > 0 && est.device_bytes > 0);
	assert_true(est.flops > 0);
	/* the output dir was made with the owner's umask, and left empty */
	assert_int_equal(stat(out, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	assert_int_equal(rmdir(out), 0); /* empty: the probe file went */
	/* a bad n_channels, a missing file */
	assert_int_equal(check_with(rec, NULL, 3, msg, &est), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "multiple"));
	snprintf(path, sizeof(path), "%s/nope.bin", tmp);
	assert_int_equal(check_with(path, NULL, 4, msg, &est), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "recording '"));
	assert_non_null(strstr(msg, "nope.bin"));
	/* too short */
	assert_int_equal(check_with(rec, NULL, 400, msg, &est), NQ_EBADDATA);
	/* output_dir into the denied dir, by ".." */
	snprintf(out, sizeof(out), "%s/new/../state/x", tmp);
	assert_int_equal(check_with(rec, out, 4, msg, &est), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "output_dir '"));
	assert_non_null(strstr(msg, "not allowed"));
	snprintf(path, sizeof(path), "%s/x", state);
	assert_int_equal(access(path, F_OK), -1);
	/* an output_dir that is a file */
	assert_int_equal(check_with(rec, rec, 4, msg, &est), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "not a directory"));
}

/* The table's defaults (what the describe op and the docs show, and what
 * the job uses) are ss_config_defaults()'s, which ss-run and the sorter's
 * own tests use. */
static void
test_table_defaults(void **st)
{
	const struct job_desc *d = ss_job_type.desc;
	struct ss_config c;
	static const char *const f[] = {
	        "batch",
	        "th_detect",
	        "th_match",
	        "max_templates",
	        "seed",
	        "car",
	        "hp_hz",
	        "whiten_nrange",
	        "whiten_noise",
	        "th_own",
	        "th_resid",
	        "prune_noise",
	        "learn_batches",
	        "learn_iters",
	        "min_spikes",
	        "merge_corr",
	        "dup_ms",
	        "refrac_ms",
	        "good_ratio",
	        "split_dprime",
	        "max_peels",
	        "drift",
	        "drift_max_um",
	        "drift_blocks",
	        "xdup_ms",
	        "template_radius_um",
	        "isi_threshold_ms",
	        "presence_bin_s",
	        "good_max_isi_ratio",
	        "good_min_presence",
	        "good_max_amp_cutoff",
	        "good_min_snr",
	};
	double want[sizeof(f) / sizeof(f[0])];
	size_t i = 0, nd = 0;

	(void) st;
	ss_config_defaults(&c);
	want[i++] = (double) c.batch;
	want[i++] = c.th_detect;
	want[i++] = c.th_match;
	want[i++] = c.max_templates;
	want[i++] = (double) c.seed;
	want[i++] = c.car;
	want[i++] = c.hp_hz;
	want[i++] = c.whiten_nrange;
	want[i++] = c.whiten_noise;
	want[i++] = c.th_own;
	want[i++] = c.th_resid;
	want[i++] = c.prune_noise;
	want[i++] = c.learn_batches;
	want[i++] = c.learn_iters;
	want[i++] = c.min_spikes;
	want[i++] = c.merge_corr;
	want[i++] = c.dup_ms;
	want[i++] = c.refrac_ms;
	want[i++] = c.good_ratio;
	want[i++] = c.split_dprime;
	want[i++] = c.max_peels;
	want[i++] = c.drift;
	want[i++] = c.drift_max_um;
	want[i++] = c.drift_blocks;
	want[i++] = c.xdup_ms;
	want[i++] = c.tmpl_radius_um;
	want[i++] = c.isi_ms;
	want[i++] = c.presence_bin_s;
	want[i++] = c.good_isi;
	want[i++] = c.good_presence;
	want[i++] = c.good_amp_cutoff;
	want[i++] = c.good_snr;
	assert_int_equal(i, sizeof(f) / sizeof(f[0]));
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		const struct param_def *p = params_find(d, f[i]);

		if (p == NULL || !p->has_def || p->def_num != want[i])
			fail_msg("%s: table default %g, ss_config_defaults %g",
			         f[i], p ? p->def_num : -1, want[i]);
	}
	/* every row with a constant default is compared, but the probe's
	 * pitch (not a config field) */
	for (i = 0; i < d->nparams; i++)
		nd += d->params[i].has_def;
	assert_int_equal(nd, sizeof(f) / sizeof(f[0]) + 1);
	/* batch's floor: four templates long */
	assert_int_equal(params_find(d, "batch")->ilo, 4 * c.nt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_check),
	        cmocka_unit_test(test_table_defaults),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
