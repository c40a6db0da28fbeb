/*
 * ss_filter.c — the high-pass design, and per-batch preprocessing on the
 * host: channel means, median common reference, and a 3rd-order
 * Butterworth high-pass run forward and backward (zero phase), as Kilosort
 * does before whitening. The preprocessing itself is the kernels' op
 * filter_car (kernels/cpu/kern_cpu_batch.c is its one host
 * implementation); the batch path calls the op on the backend's buffers,
 * these wrappers run it on host memory.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

int
ss_filter_design(struct ss_filter *f, double fs, double fc)
{
	double W, D;

	if (!(fs > 0) || !(fc > 0) || fc >= fs / 2)
		return NQ_EBADPARAM;
	/* bilinear transform of the analogue prototype 1/((s+1)(s²+s+1))
	 * with the high-pass substitution s → Ω (z+1)/(z-1), Ω prewarped */
	W = tan(M_PI * fc / fs);
	f->b1[0] = 1 / (1 + W);
	f->b1[1] = -1 / (1 + W);
	f->a1[0] = 1;
	f->a1[1] = (W - 1) / (W + 1);
	D = W * W + W + 1;
	f->b2[0] = 1 / D;
	f->b2[1] = -2 / D;
	f->b2[2] = 1 / D;
	f->a2[0] = 1;
	f->a2[1] = (2 * W * W - 2) / D;
	f->a2[2] = (W * W - W + 1) / D;
	return 0;
}

void
ss_filter_sos(const struct ss_filter *f, double *sos)
{
	sos[0] = f->b1[0];
	sos[1] = f->b1[1];
	sos[2] = f->a1[0];
	sos[3] = f->a1[1];
	sos[4] = f->b2[0];
	sos[5] = f->b2[1];
	sos[6] = f->b2[2];
	sos[7] = f->a2[0];
	sos[8] = f->a2[1];
	sos[9] = f->a2[2];
}

void
ss_filter_filtfilt_batch(const struct ss_filter *f, float *X, int C, int64_t T,
                         double *work)
{
	double sos[10];

	ss_filter_sos(f, sos);
	kern_host_filtfilt(sos, X, C, T, work);
}

int
ss_preprocess(const struct ss_filter *f, float *X, int C, int64_t T, int car)
{
	double sos[10];

	ss_filter_sos(f, sos);
	return kern_host_filter_car(sos, X, C, T, car);
}
