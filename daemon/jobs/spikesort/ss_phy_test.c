/* ss_phy_test.c — the phy writer never follows a symlink planted at a
 * temporary name (the old fixed "<name>.tmp") or at a final name, and its
 * files get exactly the mode asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "ss.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_planted_symlinks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
