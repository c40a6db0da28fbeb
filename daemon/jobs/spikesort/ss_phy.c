/*
 * ss_phy.c — the phy / Kilosort output folder, and checkpoint blobs.
 *
 * Arrays go through proto's .npy writer (nq_npy_write: temporary name, fsync,
 * rename), so a crash never leaves a half file phy would load; checkpoint
 * blobs use the same write-then-rename below.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nq_error.h"
#include "nq_npy.h"
#include "ss.h"

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t) w;
	}
	return 0;
}

/* Write head + body to path via path.tmp and rename. */
static int
atomic_write(const char *path, const void *head, size_t hlen, const void *body,
             size_t blen)
{
	char tmp[4200];
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp))
		return NQ_EIO;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return NQ_EIO;
	if ((hlen && write_all(fd, head, hlen) != 0) ||
	    (blen && write_all(fd, body, blen) != 0) || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return NQ_EIO;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return NQ_EIO;
	}
	return 0;
}

int
ss_npy_write(const char *path, const char *descr, int ndim,
             const int64_t *shape, const void *data, size_t itemsize)
{
	/* A view of the caller's buffer: nq_npy_write only reads it. */
	struct nq_array a = {.ndim = ndim, .data = (void *) data};
	size_t count = 1;

	if (ndim < 0 || ndim > NQ_MAXDIM ||
	    nq_dtype_parse(descr, &a.dtype) != 0 ||
	    nq_dtype_size(a.dtype) != itemsize)
		return NQ_EINTERNAL;
	for (int i = 0; i < ndim; i++) {
		a.shape[i] = shape[i];
		count *= (size_t) shape[i];
	}
	a.nbytes = count * itemsize;
	return nq_npy_write(path, &a);
}

static int
npy(const char *dir, const char *name, const char *descr, int ndim, int64_t d0,
    int64_t d1, int64_t d2, const void *data, size_t isz)
{
	char path[4200];
	int64_t shape[3] = {d0, d1, d2};
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return ss_npy_write(path, descr, ndim, shape, data, isz);
}

static int
text_file(const char *dir, const char *name, const char *text)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return atomic_write(path, NULL, 0, text, strlen(text));
}

/* mkdir -p */
static int
mkdirs(const char *dir)
{
	char p[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(p))
		return -1;
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] == '/' || p[i] == '\0') {
			char c = p[i];
			p[i] = '\0';
			if (mkdir(p, 0755) != 0 && errno != EEXIST)
				return -1;
			p[i] = c;
		}
	}
	return 0;
}

static int
tsv(const char *dir, const char *name, const char *col,
    const struct ss_result *r, int what)
{
	size_t cap = 64 + (size_t) r->K * 64, pos;
	char *s = malloc(cap);
	int rc;

	if (s == NULL)
		return NQ_ENOMEM;
	pos = (size_t) snprintf(s, cap, "cluster_id\t%s\n", col);
	for (int k = 0; k < r->K && pos < cap; k++) {
		if (r->counts[k] == 0)
			continue;
		if (what == 0)
			pos += (size_t) snprintf(s + pos, cap - pos, "%d\t%s\n",
			                         k,
			                         r->good[k] ? "good" : "mua");
		else if (what == 1)
			pos += (size_t) snprintf(s + pos, cap - pos,
			                         "%d\t%.1f\n", k, r->contam[k]);
		else
			pos += (size_t) snprintf(s + pos, cap - pos,
			                         "%d\t%.2f\n", k,
			                         r->amp_mean[k]);
	}
	if (pos >= cap) {
		free(s);
		return NQ_EIO;
	}
	rc = text_file(dir, name, s);
	free(s);
	return rc;
}

int
ss_phy_write(const char *dir, const struct ss_result *r,
             const struct ss_probe *p, const char *dat_path, int n_rows,
             double fs, char *msg, size_t msglen)
{
	int C = p->n, K = r->K, rc = NQ_ENOMEM;
	int32_t *cm = malloc(sizeof(int32_t) * (size_t) C);
	float *pos = malloc(sizeof(float) * 2 * (size_t) C);
	int32_t *ind = malloc(sizeof(int32_t) * ((size_t) K * C + 1));
	char *params = NULL, *esc = NULL;
	int64_t ns = r->n_spikes;

	if (!cm || !pos || !ind)
		goto out;
	if (mkdirs(dir) != 0) {
		snprintf(msg, msglen, "cannot create output_dir %s: %s", dir,
		         strerror(errno));
		rc = NQ_EIO;
		goto out;
	}
	for (int c = 0; c < C; c++) {
		cm[c] = p->row[c];
		pos[2 * c] = p->x[c];
		pos[2 * c + 1] = p->y[c];
	}
	for (int k = 0; k < K; k++)
		for (int c = 0; c < C; c++)
			ind[(size_t) k * C + c] = c;
	if ((rc = npy(dir, "spike_times.npy", "<i8", 1, ns, 0, 0, r->times,
	              8)) ||
	    (rc = npy(dir, "spike_templates.npy", "<i4", 1, ns, 0, 0, r->templ,
	              4)) ||
	    (rc = npy(dir, "spike_clusters.npy", "<i4", 1, ns, 0, 0, r->clust,
	              4)) ||
	    (rc = npy(dir, "amplitudes.npy", "<f4", 1, ns, 0, 0, r->amps, 4)) ||
	    (rc = npy(dir, "templates.npy", "<f4", 3, K, r->nt, C, r->templates,
	              4)) ||
	    (rc = npy(dir, "templates_ind.npy", "<i4", 2, K, C, 0, ind, 4)) ||
	    (rc = npy(dir, "channel_map.npy", "<i4", 1, C, 0, 0, cm, 4)) ||
	    (rc = npy(dir, "channel_positions.npy", "<f4", 2, C, 2, 0, pos,
	              4)) ||
	    (rc = npy(dir, "whitening_mat.npy", "<f4", 2, C, C, 0, r->wmat,
	              4)) ||
	    (rc = npy(dir, "whitening_mat_inv.npy", "<f4", 2, C, C, 0,
	              r->wmat_inv, 4)) ||
	    (rc = npy(dir, "similar_templates.npy", "<f4", 2, K, K, 0,
	              r->similar, 4)) ||
	    (rc = tsv(dir, "cluster_KSLabel.tsv", "KSLabel", r, 0)) ||
	    (rc = tsv(dir, "cluster_group.tsv", "group", r, 0)) ||
	    (rc = tsv(dir, "cluster_ContamPct.tsv", "ContamPct", r, 1)) ||
	    (rc = tsv(dir, "cluster_Amplitude.tsv", "Amplitude", r, 2)))
		goto io;
	/* params.py is Python: escape the path as a string literal */
	size_t n = strlen(dat_path);
	esc = malloc(2 * n + 1);
	params = malloc(2 * n + 512);
	rc = NQ_ENOMEM;
	if (!esc || !params)
		goto out;
	size_t e = 0;
	for (size_t i = 0; i < n; i++) {
		if (dat_path[i] == '\\' || dat_path[i] == '\'')
			esc[e++] = '\\';
		esc[e++] = dat_path[i];
	}
	esc[e] = '\0';
	snprintf(params, 2 * n + 512,
	         "dat_path = '%s'\nn_channels_dat = %d\ndtype = 'int16'\n"
	         "offset = 0\nsample_rate = %.17g\nhp_filtered = False\n",
	         esc, n_rows, fs);
	if ((rc = text_file(dir, "params.py", params)) != 0)
		goto io;
	rc = 0;
	goto out;
io:
	snprintf(msg, msglen, "cannot write the phy folder %s: %s", dir,
	         strerror(errno));
out:
	free(cm);
	free(pos);
	free(ind);
	free(params);
	free(esc);
	return rc;
}

/* ---- checkpoints: "SSCK" magic, key, byte count, payload */

int
ss_ckpt_save(const char *dir, const char *name, uint64_t key, const void *data,
             size_t bytes)
{
	char path[4200];
	uint64_t head[3] = {0x4b435353ULL, key, bytes};

	if (dir == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return atomic_write(path, head, sizeof(head), data, bytes);
}

int
ss_ckpt_load_var(const char *dir, const char *name, uint64_t key, void **data,
                 size_t *bytes)
{
	char path[4200];
	uint64_t head[3];
	FILE *f;

	*data = NULL;
	*bytes = 0;
	if (dir == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (f == NULL)
		return 1;
	if (fread(head, sizeof(head), 1, f) != 1 || head[0] != 0x4b435353ULL ||
	    head[1] != key || head[2] > ((uint64_t) 1 << 40)) {
		fclose(f);
		return 1;
	}
	*data = malloc(head[2] ? head[2] : 1);
	if (*data == NULL || (head[2] && fread(*data, head[2], 1, f) != 1)) {
		fclose(f);
		free(*data);
		*data = NULL;
		return 1;
	}
	fclose(f);
	*bytes = head[2];
	return 0;
}

int
ss_ckpt_load(const char *dir, const char *name, uint64_t key, void *data,
             size_t bytes)
{
	void *p;
	size_t n;

	if (ss_ckpt_load_var(dir, name, key, &p, &n) != 0)
		return 1;
	if (n != bytes) {
		free(p);
		return 1;
	}
	memcpy(data, p, bytes);
	free(p);
	return 0;
}
