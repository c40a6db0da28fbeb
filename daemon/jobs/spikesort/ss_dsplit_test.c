/* ss_dsplit_test.c — the drift-split test: batches grouped by their drift,
 * one unit's complementary pieces told from two units. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nq_test_rng.h"
#include "ss_dsplit.h"

enum { NB = 30, BATCH = 60000 };

static struct nq_test_rng rng = NQ_TEST_RNG_INIT(0x9E3779B97F4A7C15ULL);

/* np2drift128's estimate: a ±20 µm zigzag, two periods over 30 batches */
static void
zigzag(float *d)
{
	for (int b = 0; b < NB; b++) {
		double ph = fmod(b / 15.0 + 0.25, 1.0);
		d[b] = (float) (ph < 0.5 ? -20 + 80 * ph : 60 - 80 * ph);
	}
}

/* a train at rate hz over the NB batches (sorted sample times) */
static int64_t
train(double hz, int64_t *t)
{
	int64_t n = 0;
	double x = 0;

	for (;;) {
		x += -log(1 - nq_test_rng_unif(&rng)) / hz * 30000;
		if (x >= (double) NB * BATCH)
			return n;
		t[n++] = (int64_t) x;
	}
}

static void
test_groups(void **state)
{
	float d[NB], z[NB] = {0};
	int g[NB], cnt[SS_DSPLIT_NG] = {0};

	(void) state;
	zigzag(d);
	assert_int_equal(ss_dsplit_groups(d, NB, 1, g), 1);
	for (int b = 0; b < NB; b++) {
		cnt[g[b]]++;
		/* the low third below the middle one, below the high one */
		for (int e = 0; e < NB; e++)
			if (g[b] < g[e])
				assert_true(d[b] < d[e]);
	}
	for (int k = 0; k < SS_DSPLIT_NG; k++)
		assert_int_equal(cnt[k], NB / SS_DSPLIT_NG);
	/* no batch shifted: no drift to group by */
	assert_int_equal(ss_dsplit_groups(z, NB, 1, g), 0);
	/* blocks: the mean over them */
	{
		float d2[NB * 2];
		int g2[NB];
		for (int b = 0; b < NB; b++) {
			d2[2 * b] = d[b] + 3;
			d2[2 * b + 1] = d[b] - 3;
		}
		assert_int_equal(ss_dsplit_groups(d2, NB, 2, g2), 1);
		assert_memory_equal(g, g2, sizeof(g));
	}
}

/* one neuron (5 Hz) whose spikes go to template a where the drift is
 * above −8 µm, to b below (a tenth of them the other way): split. Two
 * neurons firing throughout: not, however many spikes. */
static void
test_check(void **state)
{
	float d[NB];
	int g[NB];
	int64_t *t = malloc(sizeof(int64_t) * 20000);
	int64_t *a = malloc(sizeof(int64_t) * 20000);
	int64_t *b = malloc(sizeof(int64_t) * 20000);
	int64_t n, na = 0, nb = 0;
	double chi2, range;

	(void) state;
	zigzag(d);
	assert_int_equal(ss_dsplit_groups(d, NB, 1, g), 1);
	n = train(5, t);
	for (int64_t i = 0; i < n; i++) {
		int up = d[t[i] / BATCH] > -8;
		if (nq_test_rng_unif(&rng) < 0.1)
			up = !up;
		if (up)
			a[na++] = t[i];
		else
			b[nb++] = t[i];
	}
	assert_int_equal(
	        ss_dsplit_check(a, na, b, nb, BATCH, g, NB, &chi2, &range), 1);
	assert_true(chi2 > 100 && range > 0.6);
	/* the same, but 12 spikes: too few to tell */
	assert_int_equal(
	        ss_dsplit_check(a, 6, b, 6, BATCH, g, NB, &chi2, &range), 0);
	/* two neurons, 5 and 3 Hz */
	na = train(5, a);
	nb = train(3, b);
	assert_int_equal(
	        ss_dsplit_check(a, na, b, nb, BATCH, g, NB, &chi2, &range), 0);
	assert_true(range < 0.3);
	/* 150 and 200 Hz, the second 40 % busier in the high third: a χ²
	 * far beyond chance, but the shares differ by a tenth, not a split */
	na = train(150, a);
	nb = train(200, t);
	n = 0;
	for (int64_t i = 0; i < nb; i++)
		if (g[t[i] / BATCH] == 2 || nq_test_rng_unif(&rng) < 0.7)
			b[n++] = t[i];
	assert_int_equal(
	        ss_dsplit_check(a, na, b, n, BATCH, g, NB, &chi2, &range), 0);
	assert_true(exp(-0.5 * chi2) < SS_DSPLIT_P && range < 0.3);
	free(t);
	free(a);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_groups),
	        cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
