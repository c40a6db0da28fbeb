/*
 * nq_sysmem.h — host memory figures from /proc/meminfo: the cpu "device"
 * of the daemon's ledger and of the cpu kernels backend.
 */
#ifndef NQ_SYSMEM_H
#define NQ_SYSMEM_H

#include <stdint.h>

/* Bytes for a /proc/meminfo key ("MemTotal", "MemFree"); 0 if unknown. */
uint64_t nq_sysmem_bytes(const char *key);
/* Bytes the kernel could give a new process: MemAvailable, or MemFree on
 * kernels before 3.14 that lack it; 0 if unknown. */
uint64_t nq_sysmem_available(void);

#endif
