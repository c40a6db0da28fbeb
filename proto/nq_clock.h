/*
 * nq_clock.h — the one home of the clocks every part of neuroq reads.
 *
 * Wall clock (CLOCK_REALTIME) for what is stored or shown as a date (job
 * rows, the daemon's start time); monotonic clock for durations, rates and
 * ETAs, which must not jump when the administrator sets the date.
 */
#ifndef NQ_CLOCK_H
#define NQ_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall clock, microseconds since the epoch. */
static inline int64_t
nq_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wall clock, seconds since the epoch. */
static inline double
nq_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Monotonic clock, seconds from an arbitrary origin (durations only). */
static inline double
nq_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Monotonic clock, milliseconds from an arbitrary origin. */
static inline int64_t
nq_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
