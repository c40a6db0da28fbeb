/*
 * nq_npy.h — .npy files (format 1.0/2.0/3.0, little-endian, C order) for
 * inputs and results in the state dir, so users can np.load them.
 */
#ifndef NQ_NPY_H
#define NQ_NPY_H

#include "nq_value.h"

/* Write atomically (temp file in the same dir + fsync + rename). 0 or NQ_EIO.
 */
int nq_npy_write(const char *path, const struct nq_array *a);

/* The same, streamed, for arrays bigger than memory: open with the final
 * shape (the header goes first), put the C-order bytes in any pieces, then
 * commit (only when exactly prod(shape)·itemsize bytes were put: fsync +
 * rename) or abort (the temp file goes; path is untouched). On an error
 * put and commit abort by themselves. */
struct nq_npy_stream {
	int fd;
	char *tmp, *path;
	size_t want, done;
	int dirfd; /* the directory of tmp and path (borrowed) or AT_FDCWD */
};

int nq_npy_stream_open(struct nq_npy_stream *s, const char *path,
                       enum nq_dtype dtype, int ndim, const int64_t *shape);
/* The same as name in the directory dirfd (AT_FDCWD: relative to the
 * working directory), with exactly mode (whatever the umask). The temporary
 * name is unique and made with O_CREAT | O_EXCL | O_NOFOLLOW, so a symlink
 * planted at it is never followed; the rename replaces a symlink at name
 * itself, never its target. dirfd must stay open until commit or abort. */
int nq_npy_stream_openat(struct nq_npy_stream *s, int dirfd, const char *path,
                         unsigned mode, enum nq_dtype dtype, int ndim,
                         const int64_t *shape);
int nq_npy_stream_put(struct nq_npy_stream *s, const void *data, size_t nbytes);
int nq_npy_stream_commit(struct nq_npy_stream *s);
void nq_npy_stream_abort(struct nq_npy_stream *s);
/* nq_npy_write into dirfd with mode (see nq_npy_stream_openat). */
int nq_npy_writeat(int dirfd, const char *path, unsigned mode,
                   const struct nq_array *a);
/* Read; rejects big-endian, Fortran order, unknown dtypes, a size that does
 * not match the header, and arrays over max_bytes (0 = no limit).
 * 0, NQ_EIO (cannot open/read), NQ_EBADARRAY (bad file), NQ_ENOMEM. */
int nq_npy_read(const char *path, struct nq_array *a, size_t max_bytes,
                char *err, size_t errlen);
/* nq_npy_read from an open fd (closed, whatever the outcome); path only
 * names it in messages. */
int nq_npy_read_fd(int fd, const char *path, struct nq_array *a,
                   size_t max_bytes, char *err, size_t errlen);

#endif
