/*
 * ss_phy.c — the phy / Kilosort output folder, and checkpoint blobs.
 *
 * Every file goes into the folder through one directory fd (opened once,
 * by userpath_open in the worker) under a unique temporary name made with
 * O_CREAT | O_EXCL | O_NOFOLLOW and renamed over the final name: a symlink
 * planted at a temporary or final name is never followed (the rename
 * replaces the link itself), and a crash never leaves a half file phy would
 * load. Arrays go through proto's nq_npy_writeat; text files and checkpoint
 * blobs through atomic_writeat below. Files get exactly the mode asked for
 * (the owner's 0666 & ~umask), not mode & ~the process's umask.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nq_error.h"
#include "nq_npy.h"
#include "ss.h"
#include "ss_quality.h"

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

/* Write head + body to name in dirfd via a unique temporary name (never a
 * followed symlink) and renameat; the file gets exactly mode. */
int
ss_atomic_writeat(int dirfd, const char *name, unsigned mode, const void *head,
                  size_t hlen, const void *body, size_t blen)
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	char tmp[4200];
	unsigned char r[8];
	int fd = -1, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXXXX", name);
	if (n >= (int) sizeof(tmp))
		return NQ_EIO;
	for (int tries = 0; tries < 100 && fd < 0; tries++) {
		if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r))
			return NQ_EIO;
		for (int i = 0; i < 8; i++)
			tmp[n - 8 + i] = al[r[i] % (sizeof(al) - 1)];
		fd = openat(dirfd, tmp,
		            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		                    O_CLOEXEC,
		            0600);
		if (fd < 0 && errno != EEXIST)
			return NQ_EIO;
	}
	if (fd < 0)
		return NQ_EIO;
	if (fchmod(fd, (mode_t) mode) != 0 ||
	    (hlen && write_all(fd, head, hlen) != 0) ||
	    (blen && write_all(fd, body, blen) != 0) || fsync(fd) != 0) {
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return NQ_EIO;
	}
	if (close(fd) != 0 || renameat(dirfd, tmp, dirfd, name) != 0) {
		unlinkat(dirfd, tmp, 0);
		return NQ_EIO;
	}
	return 0;
}

static mode_t
process_umask(void)
{
	mode_t m = umask(022);
	umask(m);
	return m;
}

int
ss_npy_writeat(int dirfd, const char *name, unsigned mode, const char *descr,
               int ndim, const int64_t *shape, const void *data,
               size_t itemsize)
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
	return nq_npy_writeat(dirfd, name, mode, &a);
}

int
ss_npy_write(const char *path, const char *descr, int ndim,
             const int64_t *shape, const void *data, size_t itemsize)
{
	return ss_npy_writeat(AT_FDCWD, path, 0640, descr, ndim, shape, data,
	                      itemsize);
}

struct phy_out {
	int dirfd;
	unsigned mode;
};

static int
npy(const struct phy_out *o, const char *name, const char *descr, int ndim,
    int64_t d0, int64_t d1, int64_t d2, const void *data, size_t isz)
{
	int64_t shape[3] = {d0, d1, d2};
	return ss_npy_writeat(o->dirfd, name, o->mode, descr, ndim, shape, data,
	                      isz);
}

static int
text_file(const struct phy_out *o, const char *name, const char *text)
{
	return ss_atomic_writeat(o->dirfd, name, o->mode, NULL, 0, text,
	                         strlen(text));
}

/* mkdir -p (0777 & ~umask, as mkdir(1)) */
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
			if (mkdir(p, 0777) != 0 && errno != EEXIST)
				return -1;
			p[i] = c;
		}
	}
	return 0;
}

int
ss_outdir_open(const char *dir, int *dirfd, char *msg, size_t msglen)
{
	if (mkdirs(dir) != 0 ||
	    (*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(msg, msglen, "cannot create output_dir %s: %s", dir,
		         strerror(errno));
		return NQ_EIO;
	}
	return 0;
}

static int
tsv(const struct phy_out *dir, const char *name, const char *col,
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
	int fd, rc = ss_outdir_open(dir, &fd, msg, msglen);

	if (rc != 0)
		return rc;
	rc = ss_phy_writeat(fd, 0666 & ~process_umask(), dir, r, p, dat_path,
	                    n_rows, fs, msg, msglen);
	close(fd);
	return rc;
}

int
ss_phy_writeat(int dirfd, unsigned mode, const char *dir,
               const struct ss_result *r, const struct ss_probe *p,
               const char *dat_path, int n_rows, double fs, char *msg,
               size_t msglen)
{
	const struct phy_out o = {dirfd, mode}, *out = &o;
	int C = p->n, K = r->K, rc = NQ_ENOMEM;
	int32_t *cm = malloc(sizeof(int32_t) * (size_t) C);
	float *pos = malloc(sizeof(float) * 2 * (size_t) C);
	int32_t *ind = malloc(sizeof(int32_t) * ((size_t) K * C + 1));
	char *params = NULL, *esc = NULL;
	int64_t ns = r->n_spikes;

	if (!cm || !pos || !ind)
		goto out;
	for (int c = 0; c < C; c++) {
		cm[c] = p->row[c];
		pos[2 * c] = p->x[c];
		pos[2 * c + 1] = p->y[c];
	}
	for (int k = 0; k < K; k++)
		for (int c = 0; c < C; c++)
			ind[(size_t) k * C + c] = c;
	if ((rc = npy(out, "spike_times.npy", "<i8", 1, ns, 0, 0, r->times,
	              8)) ||
	    (rc = npy(out, "spike_templates.npy", "<i4", 1, ns, 0, 0, r->templ,
	              4)) ||
	    (rc = npy(out, "spike_clusters.npy", "<i4", 1, ns, 0, 0, r->clust,
	              4)) ||
	    (rc = npy(out, "amplitudes.npy", "<f4", 1, ns, 0, 0, r->amps, 4)) ||
	    (rc = npy(out, "templates.npy", "<f4", 3, K, r->nt, C, r->templates,
	              4)) ||
	    (rc = npy(out, "templates_ind.npy", "<i4", 2, K, C, 0, ind, 4)) ||
	    (rc = npy(out, "channel_map.npy", "<i4", 1, C, 0, 0, cm, 4)) ||
	    (rc = npy(out, "channel_positions.npy", "<f4", 2, C, 2, 0, pos,
	              4)) ||
	    (rc = npy(out, "whitening_mat.npy", "<f4", 2, C, C, 0, r->wmat,
	              4)) ||
	    (rc = npy(out, "whitening_mat_inv.npy", "<f4", 2, C, C, 0,
	              r->wmat_inv, 4)) ||
	    (rc = npy(out, "similar_templates.npy", "<f4", 2, K, K, 0,
	              r->similar, 4)) ||
	    (rc = tsv(out, "cluster_KSLabel.tsv", "KSLabel", r, 0)) ||
	    (rc = tsv(out, "cluster_group.tsv", "group", r, 0)) ||
	    (rc = tsv(out, "cluster_ContamPct.tsv", "ContamPct", r, 1)) ||
	    (rc = tsv(out, "cluster_Amplitude.tsv", "Amplitude", r, 2)))
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
	if ((rc = text_file(out, "params.py", params)) != 0)
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

/* ---- quality metrics: cluster_<metric>.tsv (one column each: phy shows
 * them in its cluster view, and skips cluster_info.tsv) and cluster_info.tsv
 * with every column (SpikeInterface's read_kilosort reads only that file
 * when it exists, so it repeats the labels, ContamPct and Amplitude) */

enum { Q_I64, Q_F64 };

struct qcol {
	const char *name;
	int type;
	const void *v;
	const char *fmt;
};

static size_t
put_cell(char *s, size_t cap, size_t pos, const struct qcol *c, int k)
{
	if (pos >= cap)
		return pos;
	if (c->type == Q_I64)
		return pos + (size_t) snprintf(
		                     s + pos, cap - pos, "%lld",
		                     (long long) ((const int64_t *) c->v)[k]);
	double x = ((const double *) c->v)[k];
	if (isnan(x))
		return pos + (size_t) snprintf(s + pos, cap - pos, "nan");
	return pos + (size_t) snprintf(s + pos, cap - pos, c->fmt, x);
}

int
ss_phy_quality_writeat(int dirfd, unsigned mode, const char *dir,
                       const struct ss_result *r, char *msg, size_t msglen)
{
	const struct ss_quality *q = r->quality;
	const struct phy_out o = {dirfd, mode};
	int K = r->K, rc = NQ_ENOMEM, ncol;
	size_t cap = 256 + (size_t) K * 512, pos;
	int64_t *ch = malloc(sizeof(int64_t) * (size_t) (K ? K : 1));
	double *contam = malloc(sizeof(double) * (size_t) (K ? K : 1));
	double *amp = malloc(sizeof(double) * (size_t) (K ? K : 1));
	char *s = malloc(cap), name[128];

	if (q == NULL || q->K != K) {
		snprintf(msg, msglen, "quality metrics were not measured");
		rc = NQ_EINTERNAL;
		goto out;
	}
	if (!ch || !contam || !amp || !s)
		goto nomem;
	for (int k = 0; k < K; k++) {
		ch[k] = q->main_chan[k];
		contam[k] = r->contam[k];
		amp[k] = r->amp_mean[k];
	}
	const struct qcol cols[] = {
	        {"num_spikes", Q_I64, q->num_spikes, NULL},
	        {"firing_rate", Q_F64, q->firing_rate, "%.4f"},
	        {"presence_ratio", Q_F64, q->presence_ratio, "%.4f"},
	        {"isi_violations_ratio", Q_F64, q->isi_ratio, "%.4f"},
	        {"isi_violations_count", Q_I64, q->isi_count, NULL},
	        {"amplitude_cutoff", Q_F64, q->amp_cutoff, "%.4f"},
	        {"snr", Q_F64, q->snr, "%.3f"},
	        {"amplitude_median", Q_F64, q->amp_median, "%.2f"},
	        {"ch", Q_I64, ch, NULL},
	        {"ContamPct", Q_F64, contam, "%.1f"},
	        {"Amplitude", Q_F64, amp, "%.2f"},
	};
	ncol = (int) (sizeof(cols) / sizeof(cols[0]));
	/* the labels the metrics decided, then one file per metric (not
	 * ContamPct/Amplitude: ss_phy_writeat wrote them; not ch: phy has
	 * its own) */
	if ((rc = tsv(&o, "cluster_KSLabel.tsv", "KSLabel", r, 0)) ||
	    (rc = tsv(&o, "cluster_group.tsv", "group", r, 0)))
		goto io;
	for (int j = 0; j < 8; j++) {
		pos = (size_t) snprintf(s, cap, "cluster_id\t%s\n",
		                        cols[j].name);
		for (int k = 0; k < K; k++) {
			if (q->num_spikes[k] == 0 || pos >= cap)
				continue;
			pos += (size_t) snprintf(s + pos, cap - pos, "%d\t", k);
			pos = put_cell(s, cap, pos, &cols[j], k);
			if (pos < cap)
				s[pos++] = '\n';
		}
		if (pos >= cap) {
			rc = NQ_EINTERNAL;
			goto io;
		}
		s[pos] = 0;
		snprintf(name, sizeof(name), "cluster_%s.tsv", cols[j].name);
		if ((rc = text_file(&o, name, s)) != 0)
			goto io;
	}
	pos = (size_t) snprintf(s, cap, "cluster_id\tKSLabel\tgroup");
	for (int j = 0; j < ncol; j++)
		pos += (size_t) snprintf(s + pos, cap - pos, "\t%s",
		                         cols[j].name);
	for (int k = 0; k < K && pos < cap; k++) {
		const char *lab = r->good[k] ? "good" : "mua";
		if (q->num_spikes[k] == 0)
			continue;
		pos += (size_t) snprintf(s + pos, cap - pos, "\n%d\t%s\t%s", k,
		                         lab, lab);
		for (int j = 0; j < ncol && pos < cap; j++) {
			s[pos++] = '\t';
			pos = put_cell(s, cap, pos, &cols[j], k);
		}
	}
	if (pos + 1 >= cap) {
		rc = NQ_EINTERNAL;
		goto io;
	}
	s[pos++] = '\n';
	s[pos] = 0;
	if ((rc = text_file(&o, "cluster_info.tsv", s)) != 0)
		goto io;
	rc = 0;
	goto out;
nomem:
	snprintf(msg, msglen, "quality metrics: out of memory");
	goto out;
io:
	snprintf(msg, msglen, "cannot write the phy folder %s: %s", dir,
	         strerror(errno));
out:
	free(ch);
	free(contam);
	free(amp);
	free(s);
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
	/* in the spool: readable and removable by the service's group */
	return ss_atomic_writeat(AT_FDCWD, path, 0660, head, sizeof(head), data,
	                         bytes);
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
