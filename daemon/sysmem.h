/*
 * sysmem.h — host memory figures from /proc/meminfo (the cpu "device").
 */
#ifndef SYSMEM_H
#define SYSMEM_H

#include <stdint.h>

/* Bytes for a /proc/meminfo key ("MemTotal", "MemAvailable"); 0 if unknown. */
uint64_t sysmem_bytes(const char *key);

#endif
