/* ss_sanity_test.c — the input sanity warnings: a probe that reads only
 * some of the file's channels, and a channel count the data contradict
 * (the same int16 samples read with 2× or ½× the true count). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_test_rng.h"
#include "ss.h"
#include "ss_sanity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FS 30000.0
#define HP 300.0

/* n_true channels × T samples of int16: per channel AR(1) noise with
 * coefficient rho (colored like an amplifier's; rho = 0: white), plus a
 * slow wave common to all (LFP, 8 Hz, 20 times the noise) and an offset. */
static int16_t *
make(int n_true, int64_t T, double rho, uint64_t seed)
{
	struct nq_test_rng rng;
	int16_t *d = malloc(sizeof(int16_t) * (size_t) (n_true * T));
	double *state = calloc((size_t) n_true, sizeof(double));

	assert_non_null(d);
	assert_non_null(state);
	nq_test_rng_seed(&rng, seed);
	for (int64_t t = 0; t < T; t++) {
		double lfp = 600.0 * sin(2 * M_PI * 8.0 * (double) t / FS);
		for (int c = 0; c < n_true; c++) {
			state[c] = rho * state[c] +
			           sqrt(1 - rho * rho) * 30.0 *
			                   nq_test_rng_normal(&rng);
			d[t * n_true + c] =
			        (int16_t) lrint(state[c] + lfp + 100.0 * c);
		}
	}
	free(state);
	return d;
}

/* The warnings ss_sanity_layout gives for the samples read as n_rows. */
static struct ss_warnings
layout(const int16_t *d, int64_t total, int n_rows)
{
	struct ss_source src;
	struct ss_warnings w = {0};

	ss_source_open_mem(&src, d, total / n_rows, n_rows);
	assert_int_equal(ss_sanity_layout(&src, FS, HP, &w), 0);
	ss_source_close(&src);
	return w;
}

static void
test_layout_right_count_is_quiet(void **state)
{
	int16_t *d = make(16, 65536, 0.8, 11);
	struct ss_warnings w = layout(d, 16 * 65536, 16);

	(void) state;
	assert_int_equal(w.n, 0);
	free(d);
}

static void
test_layout_twice_the_count(void **state)
{
	/* a 16-channel file declared as 32 channels (the case) */
	int16_t *d = make(16, 65536, 0.8, 12);
	struct ss_warnings w = layout(d, 16 * 65536, 32);

	(void) state;
	assert_int_equal(w.n, 1);
	assert_true(strstr(w.text[0], "n_channels=32 looks wrong") &&
	            strstr(w.text[0], "a file of 16 channels is read as 32"));
	free(d);
}

static void
test_layout_four_times_the_count(void **state)
{
	int16_t *d = make(12, 65536, 0.8, 13);
	struct ss_warnings w = layout(d, 12 * 65536, 48);

	(void) state;
	assert_int_equal(w.n, 1);
	assert_true(strstr(w.text[0], "n_channels=48 looks wrong") &&
	            strstr(w.text[0], "a file of 12 channels is read as 48"));
	free(d);
}

static void
test_layout_half_the_count(void **state)
{
	int16_t *d = make(32, 65536, 0.8, 14);
	struct ss_warnings w = layout(d, 32 * 65536, 16);

	(void) state;
	assert_int_equal(w.n, 1);
	assert_true(strstr(w.text[0], "n_channels=16 looks wrong") &&
	            strstr(w.text[0], "a file of 32 channels is read as 16"));
	free(d);
}

static void
test_layout_white_noise_claims_nothing(void **state)
{
	/* white noise has no time structure to tell the counts apart ... */
	int16_t *d = make(16, 65536, 0.0, 15);
	struct ss_warnings w = layout(d, 16 * 65536, 16);

	(void) state;
	assert_int_equal(w.n, 0);
	w = layout(d, 16 * 65536, 32);
	assert_int_equal(w.n, 0);
	/* ... but read as 8, each column alternates between two channels'
	 * offsets, a period-2 wave the high-pass keeps: still found */
	w = layout(d, 16 * 65536, 8);
	assert_int_equal(w.n, 1);
	assert_true(strstr(w.text[0], "n_channels=8 looks wrong") &&
	            strstr(w.text[0], "a file of 16 channels is read as 8"));
	free(d);
}

static void
test_guess_fields(void **state)
{
	/* ss_layout_guess on filtered data: which factor, which way */
	int16_t *d = make(16, 32768, 0.8, 16);
	float *X = malloc(sizeof(float) * 16 * 32768);
	double work[3 * 32];
	struct ss_filter f;
	struct ss_layout g;

	(void) state;
	assert_non_null(X);
	for (int i = 0; i < 16 * 32768; i++)
		X[i] = d[i];
	assert_int_equal(ss_filter_design(&f, FS, HP), 0);
	ss_filter_filtfilt_batch(&f, X, 32, 16384, work);
	ss_layout_guess(X, 32, 16384, &g);
	assert_int_equal(g.factor, 2);
	assert_int_equal(g.fewer, 1);
	assert_int_equal(g.tested, 16);
	assert_true(g.hits >= 15);
	assert_true(g.score > 0.1);
	free(X);
	free(d);
}

static void
test_probe_coverage(void **state)
{
	struct ss_probe p;
	struct ss_warnings w = {0};
	int rows[4] = {0, 2, 5, 7};

	(void) state;
	/* every row read: nothing */
	assert_int_equal(ss_probe_linear(&p, 32, 20.0), 0);
	ss_sanity_probe(&p, 32, &w);
	assert_int_equal(w.n, 0);
	ss_probe_free(&p);
	/* 16 rows of a file declared 32: the tail unread, the hint */
	assert_int_equal(ss_probe_linear(&p, 16, 20.0), 0);
	ss_sanity_probe(&p, 32, &w);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.text[0], "reads 16 of the file's 32"));
	assert_non_null(strstr(w.text[0], "channels 16-31 are not sorted"));
	assert_non_null(strstr(w.text[0], "If the file has 16 channels"));
	ss_probe_free(&p);
	/* scattered rows: the count, the first and last unread */
	assert_int_equal(ss_probe_linear(&p, 4, 20.0), 0);
	memcpy(p.row, rows, sizeof(rows));
	ss_sanity_probe(&p, 9, &w);
	assert_int_equal(w.n, 2);
	assert_non_null(strstr(w.text[1], "reads 4 of the file's 9 channels"));
	assert_non_null(strstr(w.text[1], "5 are not sorted (the first 1, "
	                                  "the last 8)"));
	ss_probe_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_layout_right_count_is_quiet),
	        cmocka_unit_test(test_layout_twice_the_count),
	        cmocka_unit_test(test_layout_four_times_the_count),
	        cmocka_unit_test(test_layout_half_the_count),
	        cmocka_unit_test(test_layout_white_noise_claims_nothing),
	        cmocka_unit_test(test_guess_fields),
	        cmocka_unit_test(test_probe_coverage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
