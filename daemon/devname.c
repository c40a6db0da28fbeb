/* devname.c — see devname.h. */
#include "devname.h"

#include "nq_error.h"

#include <stdio.h>
#include <string.h>

/* The ordinal at s: decimal, no sign, no leading zero, < DEVICES_MAX, ended
 * by end (a NUL or ':'). Returns the character after it, or NULL. */
static const char *
devname_ordinal(const char *s, char end, int *index)
{
	int v = 0;

	if (s[0] < '0' || s[0] > '9' ||
	    (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return NULL;
	for (; *s != end; s++) {
		if (*s < '0' || *s > '9')
			return NULL;
		v = v * 10 + (*s - '0');
		if (v >= DEVICES_MAX)
			return NULL;
	}
	*index = v;
	return s;
}

int
devname_parse(const char *s, struct devname *out)
{
	enum devname_kind kind;
	const char *end;
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
	if (strncmp(s, "cuda:", 5) == 0)
		kind = DEVNAME_CUDA_N;
	else if (strncmp(s, "fake:", 5) == 0)
		kind = DEVNAME_FAKE_N;
	else
		return NQ_EBADDEVICE;
	end = devname_ordinal(s + 5, '\0', &v);
	if (end == NULL)
		return NQ_EBADDEVICE;
	out->kind = kind;
	out->index = v;
	return NQ_OK;
}

int
devname_parse_fake(const char *s, struct devname *out, char *name,
                   size_t namelen, const char **size)
{
	const char *end;
	int v = 0;

	out->kind = DEVNAME_AUTO;
	out->index = 0;
	if (s == NULL || strncmp(s, "fake:", 5) != 0)
		return NQ_EBADDEVICE;
	end = devname_ordinal(s + 5, ':', &v);
	if (end == NULL || end[0] != ':' || end[1] == '\0')
		return NQ_EBADDEVICE;
	if ((size_t) snprintf(name, namelen, "fake:%d", v) >= namelen)
		return NQ_EBADDEVICE;
	out->kind = DEVNAME_FAKE_N;
	out->index = v;
	*size = end + 1;
	return NQ_OK;
}
