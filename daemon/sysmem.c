/*
 * sysmem.c — host memory figures from /proc/meminfo.
 */
#include "sysmem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

uint64_t
sysmem_bytes(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	uint64_t kb = 0;
	size_t kl = strlen(key);

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			/* the kernel writes it */
			// NOLINTNEXTLINE(cert-err34-c)
			if (sscanf(line + kl + 1, "%" SCNu64, &kb) != 1)
				kb = 0;
			break;
		}
	}
	fclose(f);
	return kb * 1024;
}
