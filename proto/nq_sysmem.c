/*
 * nq_sysmem.c — host memory figures from /proc/meminfo.
 */
#include "nq_sysmem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The value of key in kB; -1 when the file or the key is missing. */
static int
meminfo_kb(const char *key, uint64_t *kb)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	size_t kl = strlen(key);
	int rc = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			/* the kernel writes it */
			// NOLINTNEXTLINE(cert-err34-c)
			if (sscanf(line + kl + 1, "%" SCNu64, kb) == 1)
				rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

uint64_t
nq_sysmem_bytes(const char *key)
{
	uint64_t kb = 0;

	return meminfo_kb(key, &kb) == 0 ? kb * 1024 : 0;
}

uint64_t
nq_sysmem_available(void)
{
	uint64_t kb = 0;

	if (meminfo_kb("MemAvailable", &kb) == 0 ||
	    meminfo_kb("MemFree", &kb) == 0)
		return kb * 1024;
	return 0;
}
