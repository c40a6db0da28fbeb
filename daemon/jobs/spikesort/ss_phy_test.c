/* ss_phy_test.c — the phy writer never follows a symlink planted at a
 * temporary name (the old fixed "<name>.tmp") or at a final name, and its
 * files get exactly the mode asked for; template and cluster ids come out
 * without gaps (ss_order_ids), as phylib's load_model wants them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "ss.h"
#include "ss_order.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const names[] = {
        "spike_times.npy",
        "spike_templates.npy",
        "spike_clusters.npy",
        "amplitudes.npy",
        "templates.npy",
        "templates_ind.npy",
        "channel_map.npy",
        "channel_positions.npy",
        "whitening_mat.npy",
        "whitening_mat_inv.npy",
        "similar_templates.npy",
        "cluster_KSLabel.tsv",
        "cluster_group.tsv",
        "cluster_ContamPct.tsv",
        "cluster_Amplitude.tsv",
        "params.py",
        NULL,
};

static void
test_planted_symlinks(void **st)
{
	char tmp[] = "/tmp/ss_phy_test.XXXXXX", out[128], victim[128],
	     path[256], buf[64], msg[256] = "";
	enum { C = 2, K = 2, NS = 3, NT = 4 };
	int64_t times[NS] = {10, 20, 30};
	int32_t templ[NS] = {0, 1, 0}, clust[NS] = {0, 1, 0};
	float amps[NS] = {1, 2, 3}, templates[K * NT * C] = {0},
	      wmat[C * C] = {1, 0, 0, 1}, similar[K * K] = {1, 0, 0, 1},
	      contam[K] = {0, 0}, amp_mean[K] = {1, 2};
	int good[K] = {1, 0};
	int64_t counts[K] = {2, 1};
	struct ss_result r = {.C = C,
	                      .nt = NT,
	                      .K = K,
	                      .n_samples = 100,
	                      .n_spikes = NS,
	                      .times = times,
	                      .templ = templ,
	                      .clust = clust,
	                      .amps = amps,
	                      .templates = templates,
	                      .wmat = wmat,
	                      .wmat_inv = wmat,
	                      .similar = similar,
	                      .good = good,
	                      .contam = contam,
	                      .amp_mean = amp_mean,
	                      .counts = counts};
	struct ss_probe p;
	struct stat sb;
	int fd, i;

	(void) st;
	assert_non_null(mkdtemp(tmp));
	snprintf(out, sizeof(out), "%s/out", tmp);
	snprintf(victim, sizeof(victim), "%s/victim", tmp);
	assert_int_equal(mkdir(out, 0755), 0);
	fd = open(victim, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "victim", 6), 6);
	close(fd);
	/* at every old fixed temporary name, and at every other final name */
	for (i = 0; names[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s.tmp", out, names[i]);
		assert_int_equal(symlink(victim, path), 0);
		if (i % 2 == 0) {
			snprintf(path, sizeof(path), "%s/%s", out, names[i]);
			assert_int_equal(symlink(victim, path), 0);
		}
	}
	assert_int_equal(ss_probe_linear(&p, C, 20), 0);
	fd = open(out, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(ss_phy_writeat(fd, 0640, out, &r, &p, "/x/rec.bin", C,
	                                30000, msg, sizeof(msg)),
	                 0);
	close(fd);
	ss_probe_free(&p);
	/* the victim is untouched */
	fd = open(victim, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	close(fd);
	assert_memory_equal(buf, "victim", 6);
	assert_int_equal(stat(victim, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);
	/* every final name is a regular file with exactly the mode */
	for (i = 0; names[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", out, names[i]);
		assert_int_equal(lstat(path, &sb), 0);
		assert_true(S_ISREG(sb.st_mode));
		assert_int_equal(sb.st_mode & 07777, 0640);
	}
	snprintf(path, sizeof(path), "rm -rf '%s'", tmp);
	assert_int_equal(system(path), 0);
}

/* K = 4 templates: 0 alone, 1 without spikes, 3 merged into 2 (cluster
 * 2 holds templates 2 and 3). Before: templates {0, 2, 3}, clusters {0, 2}
 * (gaps at 1); after: templates {0, 1, 2}, clusters {0, 1}, template 1
 * (no spikes) last, everything else moved along. */
static void
test_order_ids(void **st)
{
	enum { K = 4, NS = 5, NT = 2, C = 1 };
	int32_t templ[NS] = {0, 2, 3, 2, 3}, clust[NS] = {0, 2, 2, 2, 2};
	float templates[K * NT * C] = {0, 0, 10, 10, 20, 20, 30, 30};
	float similar[K * K], contam[K] = {1, 0, 3, 0},
	                      amp_mean[K] = {5, 0, 7, 0};
	int good[K] = {1, 0, 1, 0};
	int64_t counts[K] = {1, 0, 4, 0}, times[NS] = {1, 2, 3, 4, 5};
	struct ss_merge mg = {.a = 2, .b = 3};
	struct ss_result r = {.C = C, .nt = NT, .K = K, .n_spikes = NS};
	const int newid[K] = {0, 3, 1, 2};

	(void) st;
	for (int a = 0; a < K; a++)
		for (int b = 0; b < K; b++)
			similar[a * K + b] = (float) (10 * a + b);
	r.times = times;
	r.templ = templ;
	r.clust = clust;
	r.templates = templates;
	r.similar = similar;
	/* the per-cluster arrays are replaced: heap copies */
	r.good = malloc(sizeof(good));
	r.contam = malloc(sizeof(contam));
	r.amp_mean = malloc(sizeof(amp_mean));
	r.counts = malloc(sizeof(counts));
	assert_non_null(r.good);
	assert_non_null(r.contam);
	assert_non_null(r.amp_mean);
	assert_non_null(r.counts);
	memcpy(r.good, good, sizeof(good));
	memcpy(r.contam, contam, sizeof(contam));
	memcpy(r.amp_mean, amp_mean, sizeof(amp_mean));
	memcpy(r.counts, counts, sizeof(counts));
	r.merges = &mg;
	r.n_merges = 1;
	assert_int_equal(ss_order_ids(&r), 0);
	{
		const int32_t wt[NS] = {0, 1, 2, 1, 2},
		              wc[NS] = {0, 1, 1, 1, 1};
		assert_memory_equal(templ, wt, sizeof(wt));
		assert_memory_equal(clust, wc, sizeof(wc));
	}
	for (int k = 0; k < K; k++) {
		assert_true(templates[newid[k] * NT] == 10.0f * (float) k);
		for (int b = 0; b < K; b++)
			assert_true(similar[newid[k] * K + newid[b]] ==
			            (float) (10 * k + b));
	}
	assert_int_equal(r.counts[0], 1);
	assert_int_equal(r.counts[1], 4);
	assert_int_equal(r.counts[2] + r.counts[3], 0);
	assert_int_equal(r.good[1], 1);
	assert_true(r.contam[1] == 3.0f && r.amp_mean[1] == 7.0f);
	assert_true(r.contam[2] == 0 && r.amp_mean[3] == 0);
	assert_int_equal(mg.a, 1);
	assert_int_equal(mg.b, 2);

	/* a cluster whose own template has no spikes (all in the template
	 * merged into it) takes the id of that template, and nothing is
	 * skipped: templates {1} and cluster {0} become 0 and 0 */
	{
		int32_t t2[2] = {1, 1}, c2[2] = {0, 0};
		r.templ = t2;
		r.clust = c2;
		r.n_spikes = 2;
		r.n_merges = 0;
		memset(r.counts, 0, sizeof(counts));
		r.counts[0] = 2;
		assert_int_equal(ss_order_ids(&r), 0);
		assert_int_equal(t2[0], 0);
		assert_int_equal(c2[1], 0);
		assert_int_equal(r.counts[0], 2);
	}
	/* a template id out of range is refused */
	templ[0] = K;
	r.templ = templ;
	r.clust = clust;
	r.n_spikes = NS;
	assert_int_equal(ss_order_ids(&r), NQ_EINTERNAL);
	free(r.good);
	free(r.contam);
	free(r.amp_mean);
	free(r.counts);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_planted_symlinks),
	        cmocka_unit_test(test_order_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
