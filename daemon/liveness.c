/* liveness.c — see liveness.h. */
#include "liveness.h"

#include "nq_error.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIVENESS_FILE "time_limit"

int64_t
liveness_default_s(double flops)
{
	double s;

	if (!(flops > 0))
		return LIVENESS_FLOOR_S;
	s = ceil(LIVENESS_MULT * flops / LIVENESS_RATE);
	if (s >= (double) LIVENESS_LIMIT_MAX)
		return LIVENESS_LIMIT_MAX;
	return s > LIVENESS_FLOOR_S ? (int64_t) s : LIVENESS_FLOOR_S;
}

int64_t
liveness_limit_s(int64_t requested, double flops, int64_t max_s)
{
	int64_t s = requested > 0 ? requested : liveness_default_s(flops);

	if (max_s > 0 && s > max_s)
		s = max_s;
	return s;
}

enum liveness
liveness_check(uint64_t now_ms, uint64_t started_ms, uint64_t beat_ms,
               uint64_t hb_ms, int64_t limit_s)
{
	if (limit_s > 0 && now_ms >= started_ms &&
	    now_ms - started_ms > (uint64_t) limit_s * 1000)
		return LIVENESS_OVER_LIMIT;
	if (beat_ms < started_ms)
		beat_ms = started_ms;
	if (hb_ms > 0 && now_ms >= beat_ms && now_ms - beat_ms > hb_ms)
		return LIVENESS_HUNG;
	return LIVENESS_OK;
}

int
liveness_write(const char *dir, int64_t limit_s)
{
	char path[4096], buf[32];
	int n, fd, rc = 0;

	n = snprintf(path, sizeof(path), "%s/" LIVENESS_FILE, dir);
	if (n < 0 || (size_t) n >= sizeof(path))
		return NQ_EIO;
	n = snprintf(buf, sizeof(buf), "%" PRId64 "\n", limit_s);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return NQ_EIO;
	if (write(fd, buf, (size_t) n) != n || fsync(fd) != 0)
		rc = NQ_EIO;
	if (close(fd) != 0)
		rc = NQ_EIO;
	return rc;
}

int64_t
liveness_read(const char *job_dir)
{
	char buf[32], *end;
	ssize_t n;
	long long v;
	int fd;

	fd = spool_open_in(job_dir, LIVENESS_FILE, 0);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') ||
	    v <= 0 || v > LIVENESS_LIMIT_MAX)
		return 0;
	return (int64_t) v;
}
