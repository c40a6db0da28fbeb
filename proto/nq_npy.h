/*
 * nq_npy.h — .npy files (format 1.0/2.0/3.0, little-endian, C order) for
 * inputs and results in the state dir, so users can np.load them.
 */
#ifndef NQ_NPY_H
#define NQ_NPY_H

#include "nq_value.h"

/* Write atomically (temp file in the same dir + fsync + rename). 0 or NQ_EIO. */
int nq_npy_write(const char *path, const struct nq_array *a);
/* Read; rejects big-endian, Fortran order, unknown dtypes, a size that does
 * not match the header, and arrays over max_bytes (0 = no limit).
 * 0, NQ_EIO (cannot open/read), NQ_EBADARRAY (bad file), NQ_ENOMEM. */
int nq_npy_read(const char *path, struct nq_array *a, size_t max_bytes,
                char *err, size_t errlen);

#endif
