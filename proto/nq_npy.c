/* nq_npy.c — .npy read/write (format 1.0/2.0/3.0, little-endian, C order). */
#include "nq_npy.h"

#include "nq_error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define NQ_NPY_MAGIC     "\x93NUMPY"
#define NQ_NPY_MAGIC_LEN 6
/* Our headers are tiny; a bigger one is a corrupt or hostile file. */
#define NQ_NPY_MAX_HEADER (1u << 20)

static int
nq_npy_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static int
nq_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t) w;
	}
	return 0;
}

/* Reads up to n bytes; returns the count read (short only at EOF) or -1. */
static ssize_t
nq_read_all(int fd, void *buf, size_t n)
{
	char *p = buf;
	size_t got = 0;

	while (got < n) {
		size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
		ssize_t r = read(fd, p + got, want);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t) r;
	}
	return (ssize_t) got;
}

/* Builds the full preamble (magic, version, length, dict, padding, '\n'). */
static char *
nq_npy_header(const struct nq_array *a, size_t *outlen)
{
	char dict[512];
	size_t o, dlen, pre, total;
	int n;
	char *h;

	n = snprintf(dict, sizeof(dict),
	             "{'descr': '%s', 'fortran_order': False, 'shape': (",
	             nq_dtype_str(a->dtype));
	o = (size_t) n;
	for (int i = 0; i < a->ndim; i++) {
		n = snprintf(dict + o, sizeof(dict) - o, "%lld,%s",
		             (long long) a->shape[i],
		             i + 1 < a->ndim ? " " : "");
		o += (size_t) n;
	}
	/* Python spells a 1-tuple "(3,)" and others "(3, 4)". */
	if (a->ndim > 1)
		o--; /* drop the trailing comma after the last dim */
	n = snprintf(dict + o, sizeof(dict) - o, "), }");
	dlen = o + (size_t) n;
	/* Version 1.0 has a 2-byte length; use 2.0 only when needed. */
	pre = NQ_NPY_MAGIC_LEN + 2 + 2;
	total = (pre + dlen + 1 + 63) / 64 * 64;
	if (total - pre > 65535) {
		pre = NQ_NPY_MAGIC_LEN + 2 + 4;
		total = (pre + dlen + 1 + 63) / 64 * 64;
	}
	h = malloc(total);
	if (h == NULL)
		return NULL;
	memcpy(h, NQ_NPY_MAGIC, NQ_NPY_MAGIC_LEN);
	h[6] = pre == 10 ? 1 : 2;
	h[7] = 0;
	if (pre == 10) {
		h[8] = (char) ((total - pre) & 0xff);
		h[9] = (char) ((total - pre) >> 8);
	} else {
		for (int i = 0; i < 4; i++)
			h[8 + i] = (char) (((total - pre) >> (8 * i)) & 0xff);
	}
	memcpy(h + pre, dict, dlen);
	memset(h + pre + dlen, ' ', total - pre - dlen - 1);
	h[total - 1] = '\n';
	*outlen = total;
	return h;
}

static int
nq_fsync_dir(const char *path)
{
	char *dup = strdup(path);
	char *slash;
	int fd, rc;

	if (dup == NULL)
		return -1;
	/* (strdup("") has no room to write "." into) */
	slash = strrchr(dup, '/');
	if (slash == dup)
		dup[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	fd = open(slash == NULL ? "." : dup,
	          O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dup);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* A unique temporary name beside name, created without following a
 * symlink: mkostemp's contract, relative to a directory fd. */
static int
nq_npy_mktemp(int dirfd, char *tmp, size_t plen, unsigned mode)
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyz"
	                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char r[6];

	for (int tries = 0; tries < 100; tries++) {
		if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r))
			return -1;
		for (int i = 0; i < 6; i++)
			tmp[plen + 5 + i] = al[r[i] % (sizeof(al) - 1)];
		int fd = openat(dirfd, tmp,
		                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		                        O_CLOEXEC,
		                0600);
		if (fd >= 0) {
			/* exactly mode, not mode & ~umask */
			if (fchmod(fd, (mode_t) mode) != 0) {
				close(fd);
				unlinkat(dirfd, tmp, 0);
				return -1;
			}
			return fd;
		}
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

int
nq_npy_stream_open(struct nq_npy_stream *s, const char *path,
                   enum nq_dtype dtype, int ndim, const int64_t *shape)
{
	/* Readable by the group so a lab's users can np.load results. */
	return nq_npy_stream_openat(s, AT_FDCWD, path, 0640, dtype, ndim,
	                            shape);
}

int
nq_npy_stream_openat(struct nq_npy_stream *s, int dirfd, const char *path,
                     unsigned mode, enum nq_dtype dtype, int ndim,
                     const int64_t *shape)
{
	struct nq_array hdr_of = {0};
	char *hdr = NULL;
	size_t hlen, plen, n;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->dirfd = dirfd;
	n = nq_dtype_size(dtype);
	if (path == NULL || n == 0 || ndim < 0 || ndim > NQ_MAXDIM ||
	    (ndim > 0 && shape == NULL))
		return NQ_EIO;
	hdr_of.dtype = dtype;
	hdr_of.ndim = ndim;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 ||
		    (shape[i] > 0 && n > SIZE_MAX / (size_t) shape[i]))
			return NQ_EIO;
		hdr_of.shape[i] = shape[i];
		n *= (size_t) shape[i];
	}
	s->want = n;
	plen = strlen(path);
	s->path = strdup(path);
	s->tmp = malloc(plen + 16);
	hdr = nq_npy_header(&hdr_of, &hlen);
	if (s->path == NULL || s->tmp == NULL || hdr == NULL)
		goto fail;
	memcpy(s->tmp, path, plen);
	memcpy(s->tmp + plen, ".tmp.XXXXXX", 12);
	s->fd = nq_npy_mktemp(dirfd, s->tmp, plen, mode);
	if (s->fd < 0) {
		free(s->tmp);
		s->tmp = NULL;
		goto fail;
	}
	if (nq_write_all(s->fd, hdr, hlen) != 0)
		goto fail;
	free(hdr);
	return 0;
fail:
	free(hdr);
	nq_npy_stream_abort(s);
	return NQ_EIO;
}

int
nq_npy_stream_put(struct nq_npy_stream *s, const void *data, size_t nbytes)
{
	if (s->fd < 0 || nbytes > s->want - s->done ||
	    (nbytes > 0 && data == NULL) ||
	    nq_write_all(s->fd, data, nbytes) != 0) {
		nq_npy_stream_abort(s);
		return NQ_EIO;
	}
	s->done += nbytes;
	return 0;
}

int
nq_npy_stream_commit(struct nq_npy_stream *s)
{
	int fd = s->fd;

	if (fd < 0 || s->done != s->want || fsync(fd) != 0)
		goto fail;
	s->fd = -1;
	if (close(fd) != 0 ||
	    renameat(s->dirfd, s->tmp, s->dirfd, s->path) != 0)
		goto fail;
	free(s->tmp);
	s->tmp = NULL;
	/* The rename is durable only once the directory is synced. */
	fd = s->dirfd == AT_FDCWD ? nq_fsync_dir(s->path) : fsync(s->dirfd);
	free(s->path);
	s->path = NULL;
	return fd == 0 ? 0 : NQ_EIO;
fail:
	nq_npy_stream_abort(s);
	return NQ_EIO;
}

void
nq_npy_stream_abort(struct nq_npy_stream *s)
{
	int e = errno; /* the failure's cause, for the caller's message */

	if (s->fd >= 0)
		close(s->fd);
	if (s->tmp != NULL)
		unlinkat(s->dirfd, s->tmp, 0);
	free(s->tmp);
	free(s->path);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->dirfd = AT_FDCWD;
	errno = e;
}

int
nq_npy_write(const char *path, const struct nq_array *a)
{
	return nq_npy_writeat(AT_FDCWD, path, 0640, a);
}

int
nq_npy_writeat(int dirfd, const char *path, unsigned mode,
               const struct nq_array *a)
{
	struct nq_npy_stream s;
	int rc;

	if (a == NULL || (a->nbytes > 0 && a->data == NULL))
		return NQ_EIO;
	rc = nq_npy_stream_openat(&s, dirfd, path, mode, a->dtype, a->ndim,
	                          a->shape);
	if (rc != 0)
		return rc;
	if (s.want != a->nbytes) {
		nq_npy_stream_abort(&s);
		return NQ_EIO;
	}
	rc = nq_npy_stream_put(&s, a->data, a->nbytes);
	return rc != 0 ? rc : nq_npy_stream_commit(&s);
}

/* ---- header dict parser: the Python literal numpy writes */

struct nq_hp {
	const char *p, *end;
};

static void
nq_hp_ws(struct nq_hp *h)
{
	while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' ||
	                         *h->p == '\n' || *h->p == '\r'))
		h->p++;
}

static int
nq_hp_eat(struct nq_hp *h, char c)
{
	nq_hp_ws(h);
	if (h->p < h->end && *h->p == c) {
		h->p++;
		return 1;
	}
	return 0;
}

/* A quoted string ('...' or "...") without escapes, into buf. */
static int
nq_hp_str(struct nq_hp *h, char *buf, size_t len)
{
	char q;
	size_t n = 0;

	nq_hp_ws(h);
	if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
		return -1;
	q = *h->p++;
	while (h->p < h->end && *h->p != q) {
		if (*h->p == '\\' || n + 1 >= len)
			return -1;
		buf[n++] = *h->p++;
	}
	if (h->p >= h->end)
		return -1;
	h->p++;
	buf[n] = '\0';
	return 0;
}

static int
nq_hp_word(struct nq_hp *h, const char *w)
{
	size_t n = strlen(w);

	nq_hp_ws(h);
	if ((size_t) (h->end - h->p) >= n && memcmp(h->p, w, n) == 0) {
		h->p += n;
		return 1;
	}
	return 0;
}

static int
nq_hp_shape(struct nq_hp *h, int64_t *shape, int *ndim)
{
	*ndim = 0;
	if (!nq_hp_eat(h, '('))
		return -1;
	for (;;) {
		int64_t v = 0;
		int digits = 0;

		if (nq_hp_eat(h, ')'))
			return 0;
		nq_hp_ws(h);
		while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
			if (v > (INT64_MAX - 9) / 10)
				return -1;
			v = v * 10 + (*h->p++ - '0');
			digits++;
		}
		if (digits == 0 || *ndim >= NQ_MAXDIM)
			return -1;
		/* numpy may write Python 2 longs as "3L". */
		if (h->p < h->end && *h->p == 'L')
			h->p++;
		shape[(*ndim)++] = v;
		if (!nq_hp_eat(h, ',')) {
			if (!nq_hp_eat(h, ')'))
				return -1;
			/* "(3)" is an int, not a tuple. */
			return *ndim == 1 ? -1 : 0;
		}
	}
}

static int
nq_npy_parse_dict(const char *path, const char *s, size_t n, struct nq_array *a,
                  char *err, size_t errlen)
{
	struct nq_hp h = {s, s + n};
	char key[32], descr[32];
	int seen = 0; /* bits: 1 descr, 2 fortran_order, 4 shape */

	if (!nq_hp_eat(&h, '{'))
		goto bad;
	while (!nq_hp_eat(&h, '}')) {
		if (nq_hp_str(&h, key, sizeof(key)) != 0 || !nq_hp_eat(&h, ':'))
			goto bad;
		if (strcmp(key, "descr") == 0 && !(seen & 1)) {
			if (nq_hp_str(&h, descr, sizeof(descr)) != 0)
				goto bad;
			if (descr[0] == '>' && descr[1] != '\0' &&
			    strcmp(descr + 1, "u1") != 0 &&
			    strcmp(descr + 1, "b1") != 0)
				return nq_npy_fail(
				        err, errlen, NQ_EBADARRAY,
				        "%s: big-endian dtype '%s' is "
				        "not supported",
				        path, descr);
			if (nq_dtype_parse(descr, &a->dtype) != 0)
				return nq_npy_fail(err, errlen, NQ_EBADARRAY,
				                   "%s: unsupported dtype '%s' "
				                   "(accepted: <f8 <f4 <i2 <i4 "
				                   "<i8 |u1 |b1)",
				                   path, descr);
			seen |= 1;
		} else if (strcmp(key, "fortran_order") == 0 && !(seen & 2)) {
			if (nq_hp_word(&h, "True"))
				return nq_npy_fail(
				        err, errlen, NQ_EBADARRAY,
				        "%s: fortran_order arrays are "
				        "not supported (save C order)",
				        path);
			if (!nq_hp_word(&h, "False"))
				goto bad;
			seen |= 2;
		} else if (strcmp(key, "shape") == 0 && !(seen & 4)) {
			if (nq_hp_shape(&h, a->shape, &a->ndim) != 0)
				goto bad;
			seen |= 4;
		} else {
			goto bad;
		}
		if (!nq_hp_eat(&h, ',')) {
			if (!nq_hp_eat(&h, '}'))
				goto bad;
			break;
		}
	}
	nq_hp_ws(&h);
	if (h.p != h.end || seen != 7)
		goto bad;
	return 0;
bad:
	return nq_npy_fail(err, errlen, NQ_EBADARRAY,
	                   "%s: bad .npy header near offset %zu", path,
	                   (size_t) (h.p - s));
}

int
nq_npy_read(const char *path, struct nq_array *a, size_t max_bytes, char *err,
            size_t errlen)
{
	int fd;

	memset(a, 0, sizeof(*a));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return nq_npy_fail(err, errlen, NQ_EIO, "cannot open %s: %s",
		                   path, strerror(errno));
	return nq_npy_read_fd(fd, path, a, max_bytes, err, errlen);
}

int
nq_npy_read_fd(int fd, const char *path, struct nq_array *a, size_t max_bytes,
               char *err, size_t errlen)
{
	unsigned char pre[12];
	struct stat st;
	struct nq_array t = {0};
	char *dict = NULL;
	size_t hlen, doff, isz;
	uint64_t n = 1, need;
	ssize_t r;
	int rc;

	memset(a, 0, sizeof(*a));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (fstat(fd, &st) != 0) {
		rc = nq_npy_fail(err, errlen, NQ_EIO, "cannot stat %s: %s",
		                 path, strerror(errno));
		goto fail;
	}
	r = nq_read_all(fd, pre, 10);
	if (r < 0) {
		rc = nq_npy_fail(err, errlen, NQ_EIO, "cannot read %s: %s",
		                 path, strerror(errno));
		goto fail;
	}
	if (r < 10 || memcmp(pre, NQ_NPY_MAGIC, NQ_NPY_MAGIC_LEN) != 0) {
		rc = nq_npy_fail(err, errlen, NQ_EBADARRAY,
		                 "%s: not a .npy file (bad magic)", path);
		goto fail;
	}
	if (pre[6] == 1 && pre[7] == 0) {
		hlen = (size_t) pre[8] | (size_t) pre[9] << 8;
		doff = 10;
	} else if ((pre[6] == 2 || pre[6] == 3) && pre[7] == 0) {
		if (nq_read_all(fd, pre + 10, 2) != 2) {
			rc = nq_npy_fail(err, errlen, NQ_EBADARRAY,
			                 "%s: truncated header", path);
			goto fail;
		}
		hlen = (size_t) pre[8] | (size_t) pre[9] << 8 |
		       (size_t) pre[10] << 16 | (size_t) pre[11] << 24;
		doff = 12;
	} else {
		rc = nq_npy_fail(err, errlen, NQ_EBADARRAY,
		                 "%s: unsupported .npy version %u.%u", path,
		                 pre[6], pre[7]);
		goto fail;
	}
	if (hlen == 0 || hlen > NQ_NPY_MAX_HEADER) {
		rc = nq_npy_fail(err, errlen, NQ_EBADARRAY,
		                 "%s: header length %zu is out of range", path,
		                 hlen);
		goto fail;
	}
	dict = malloc(hlen);
	if (dict == NULL) {
		rc = NQ_ENOMEM;
		goto fail;
	}
	r = nq_read_all(fd, dict, hlen);
	if (r < 0 || (size_t) r != hlen || dict[hlen - 1] != '\n') {
		rc = nq_npy_fail(err, errlen, NQ_EBADARRAY,
		                 "%s: truncated or unterminated header", path);
		goto fail;
	}
	rc = nq_npy_parse_dict(path, dict, hlen, &t, err, errlen);
	if (rc != 0)
		goto fail;
	isz = nq_dtype_size(t.dtype);
	for (int i = 0; i < t.ndim; i++) {
		uint64_t s = (uint64_t) t.shape[i];

		if (s != 0 && n > (uint64_t) INT64_MAX / isz / s) {
			rc = nq_npy_fail(err, errlen, NQ_EBADARRAY,
			                 "%s: shape overflows", path);
			goto fail;
		}
		n *= s;
	}
	need = n * isz;
	doff += hlen;
	if ((uint64_t) st.st_size != doff + need) {
		rc = nq_npy_fail(
		        err, errlen, NQ_EBADARRAY,
		        "%s: header says %llu data bytes, file has %lld", path,
		        (unsigned long long) need,
		        (long long) st.st_size - (long long) doff);
		goto fail;
	}
	if (max_bytes > 0 && need > max_bytes) {
		rc = nq_npy_fail(err, errlen, NQ_EBADARRAY,
		                 "%s: array of %llu bytes is over the limit of "
		                 "%zu",
		                 path, (unsigned long long) need, max_bytes);
		goto fail;
	}
	rc = nq_array_init(a, t.dtype, t.ndim, t.shape);
	if (rc != 0) {
		rc = nq_npy_fail(err, errlen, rc,
		                 "%s: cannot allocate %llu "
		                 "bytes",
		                 path, (unsigned long long) need);
		goto fail;
	}
	r = nq_read_all(fd, a->data, a->nbytes);
	if (r < 0 || (size_t) r != a->nbytes) {
		rc = nq_npy_fail(err, errlen, r < 0 ? NQ_EIO : NQ_EBADARRAY,
		                 "%s: short read of array data", path);
		nq_array_fini(a);
		goto fail;
	}
	free(dict);
	close(fd);
	return 0;
fail:
	free(dict);
	close(fd);
	return rc;
}
