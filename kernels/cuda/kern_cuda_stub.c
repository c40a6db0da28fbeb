/*
 * kern_cuda_stub.c — the cuda entry points of a build without CUDA: no
 * devices, opening one fails with NQ_ENODEV.
 */
#include "kern.h"
#include "nq_error.h"

int
kern_cuda_device_count(void)
{
	return 0;
}

int
kern_cuda_open(struct kern_backend *kb, int device)
{
	return NQ_ENODEV;
}
