/* devname.c — see devname.h. */
#include "devname.h"

#include "nq_error.h"

#include <string.h>

int
devname_parse(const char *s, struct devname *out)
{
	int v = 0;

	out->kind = DEVNAME_AUTO;
	out->index = 0;
	if (s == NULL)
		return NQ_EBADDEVICE;
	if (strcmp(s, "auto") == 0)
		return NQ_OK;
	if (strcmp(s, "cpu") == 0) {
		out->kind = DEVNAME_CPU;
		return NQ_OK;
	}
	if (strcmp(s, "cuda") == 0) {
		out->kind = DEVNAME_CUDA;
		return NQ_OK;
	}
	if (strncmp(s, "cuda:", 5) != 0)
		return NQ_EBADDEVICE;
	s += 5;
	if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
		return NQ_EBADDEVICE;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return NQ_EBADDEVICE;
		v = v * 10 + (*s - '0');
		if (v >= DEVICES_MAX)
			return NQ_EBADDEVICE;
	}
	out->kind = DEVNAME_CUDA_N;
	out->index = v;
	return NQ_OK;
}
