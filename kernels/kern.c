/*
 * kern.c — backend selection by name (the user's choice) and closing
 * (the backend's own close op).
 */
#include "kern.h"

#include <limits.h>
#include <string.h>

#include "nq_error.h"

/* "N" with 1..9 decimal digits only (no sign, no spaces, no suffix). */
static int
parse_index(const char *s, int *out)
{
	long v = 0;
	size_t len = strlen(s);

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = (int) v;
	return 0;
}

int
kern_open_by_name(struct kern_backend *kb, const char *name)
{
	int dev = 0;

	if (kb == NULL)
		return NQ_EBADPARAM;
	memset(kb, 0, sizeof(*kb));
	if (name == NULL)
		return NQ_EBADDEVICE;
	if (strcmp(name, "cpu") == 0)
		return kern_cpu_open(kb);
	if (strcmp(name, "cuda") == 0)
		return kern_cuda_open(kb, 0);
	if (strncmp(name, "cuda:", 5) == 0 && parse_index(name + 5, &dev) == 0)
		return kern_cuda_open(kb, dev);
	return NQ_EBADDEVICE;
}

void
kern_close(struct kern_backend *kb)
{
	if (kb == NULL || kb->ops == NULL)
		return;
	kb->ops->close(kb->ctx);
	memset(kb, 0, sizeof(*kb));
}
