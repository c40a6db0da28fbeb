/*
 * kern_cuda_mod.h — the entry points of the cuda backend module
 * (libnq_kern_cuda.so), looked up by name by kern_cuda_dl.c.
 */
#ifndef KERN_CUDA_MOD_H
#define KERN_CUDA_MOD_H

#include "kern.h"

#define KERN_CUDA_MODULE "libnq_kern_cuda.so"

#define KERN_CUDAMOD_EXPORT __attribute__((visibility("default")))

typedef int (*kern_cudamod_count_fn)(void);
typedef int (*kern_cudamod_open_fn)(struct kern_backend *kb, int device);

KERN_CUDAMOD_EXPORT int kern_cudamod_device_count(void);
KERN_CUDAMOD_EXPORT int kern_cudamod_open(struct kern_backend *kb, int device);

#endif
